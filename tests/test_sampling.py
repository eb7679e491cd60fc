"""clinical_ner_crf/sampling.py: the seeded validation hold-out by document and the paper's down-sampling of all-O sentences."""

import pytest

from clinical_ner_crf import tagging
from clinical_ner_crf.documents import BratDocument
from clinical_ner_crf.sampling import all_o_share, downsample_plain, split_validation
from test_prepare_n2c2 import make_rows


@pytest.mark.parametrize("plain_ratio", [0.0, 0.08, 0.2, 0.5])
def test_downsample_plain_reaches_the_ratio_keeping_entity_sentences(plain_ratio):
    rows = make_rows(300, 900)
    sampled = downsample_plain(rows, plain_ratio, seed=1)
    assert abs(all_o_share(sampled) - plain_ratio) <= 0.005
    assert sum(not tagging.is_all_o(r["ner_tags"]) for r in sampled) == 300
    assert [int(r["id"]) for r in sampled] == sorted(int(r["id"]) for r in sampled)  # order kept
    assert downsample_plain(rows, plain_ratio, seed=1) == sampled


def test_downsample_plain_is_seeded_and_keeps_all_when_target_unreachable():
    rows = make_rows(300, 900)
    assert downsample_plain(rows, 0.2, seed=1) != downsample_plain(rows, 0.2, seed=2)
    few_plain = make_rows(300, 10)
    assert downsample_plain(few_plain, 0.2, seed=1) == few_plain
    assert downsample_plain(rows, 1.0, seed=1) == rows
    with pytest.raises(ValueError):
        downsample_plain(rows, 1.5)


def test_downsample_plain_accepts_a_dataset():
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    rows = make_rows(40, 160)
    dataset = Dataset.from_dict({"id": [r["id"] for r in rows], "ner_tags": [r["ner_tags"] for r in rows]},
                                features=Features({"id": Value("string"),
                                                   "ner_tags": Sequence(ClassLabel(names=["O", "B-Drug", "I-Drug"]))}))
    sampled = downsample_plain(dataset, 0.2, seed=3)
    assert len(sampled) == 50 and all_o_share(sampled) == 0.2
    assert sampled["id"] == [r["id"] for r in downsample_plain(rows, 0.2, seed=3)]


def test_split_validation_by_document_seeded():
    documents = [BratDocument(f"doc{i:03d}", "", []) for i in range(303)]
    train, validation = split_validation(documents, 0.1, seed=42)
    assert (len(train), len(validation)) == (273, 30)
    assert not {d.doc_id for d in train} & {d.doc_id for d in validation}
    assert [d.doc_id for d in split_validation(documents, 0.1, seed=42)[1]] == [d.doc_id for d in validation]
    assert [d.doc_id for d in split_validation(documents, 0.1, seed=7)[1]] != [d.doc_id for d in validation]
    assert len(split_validation(documents[:5], 0.1, seed=1)[1]) == 1
