"""clinical_ner_crf/corpus_formats.py: one table of input formats: a brat folder and a CoNLL file of the same notes read into the same documents, the reading options passed on, an unknown format refused."""

from collections import Counter

import pytest

from clinical_ner_crf.command_line import exit_status
from clinical_ner_crf.corpus_formats import CORPUS_FORMATS, read_corpus
from clinical_ner_crf.documents import BratFormatError

# Two notes, as brat (.txt + .ann) and as CoNLL (one document per -DOCSTART-, a sentence per line of text).
NOTE_A = "Aspirin 81 mg daily .\nHeparin q8h"
ANN_A = ("T1\tDrug 0 7\tAspirin\n"
         "T2\tStrength 8 13\t81 mg\n"
         "T3\tFrequency 14 19\tdaily\n"
         "R1\tStrength-Drug Arg1:T2 Arg2:T1\n"
         "T4\tDrug 22 29\tHeparin\n"
         "T5\tFrequency 30 33\tq8h\n")
NOTE_B = "Lisinopril 10 mg"
ANN_B = "T1\tDrug 0 10\tLisinopril\nT2\tStrength 11 16\t10 mg\n"
CONLL = ("-DOCSTART-\tO\n\n"
         "Aspirin\tB-Drug\n81\tB-Strength\nmg\tI-Strength\ndaily\tB-Frequency\n.\tO\n\n"
         "Heparin\tB-Drug\nq8h\tB-Frequency\n\n"
         "-DOCSTART-\tO\n\n"
         "Lisinopril\tB-Drug\n10\tB-Strength\nmg\tI-Strength\n")

ENTITIES_A = [("Drug", 0, 7, "Aspirin"), ("Strength", 8, 13, "81 mg"), ("Frequency", 14, 19, "daily"),
              ("Drug", 22, 29, "Heparin"), ("Frequency", 30, 33, "q8h")]
ENTITIES_B = [("Drug", 0, 10, "Lisinopril"), ("Strength", 11, 16, "10 mg")]


@pytest.fixture
def corpus(tmp_path):
    brat = tmp_path / "brat"
    brat.mkdir()
    # Written as bytes: the brat offsets count the characters of the raw file.
    for stem, text, ann in (("note_b", NOTE_B, ANN_B), ("note_a", NOTE_A, ANN_A)):
        (brat / f"{stem}.txt").write_bytes(text.encode("utf-8"))
        (brat / f"{stem}.ann").write_bytes(ann.encode("utf-8"))
    conll = tmp_path / "notes.conll"
    conll.write_bytes(CONLL.encode("utf-8"))
    return brat, conll


def spans(document):
    return [(entity.type, entity.start, entity.end, entity.text) for entity in document.entities]


def test_the_table_names_brat_and_conll():
    assert list(CORPUS_FORMATS) == ["brat", "conll"]
    assert [fmt.name for fmt in CORPUS_FORMATS.values()] == ["brat", "conll"]


def test_brat_folder_and_conll_file_give_the_same_documents(corpus):
    brat, conll = corpus
    brat_documents, brat_problems = read_corpus("brat", brat)
    conll_documents, conll_problems = read_corpus("conll", conll)
    assert brat_problems == [] and conll_problems == []
    assert [d.doc_id for d in brat_documents] == ["note_a", "note_b"]  # sorted by file name
    assert [d.doc_id for d in conll_documents] == ["notes-000000", "notes-000001"]
    for brat_document, conll_document, text, entities in zip(brat_documents, conll_documents, (NOTE_A, NOTE_B),
                                                             (ENTITIES_A, ENTITIES_B)):
        assert brat_document.text == conll_document.text == text
        assert spans(brat_document) == spans(conll_document) == entities
    # What only one format carries: CoNLL fixes the sentences, brat has relations.
    assert conll_documents[0].sentence_spans == [(0, 21), (22, 33)]
    assert brat_documents[0].sentence_spans is None
    assert [(r.type, r.arg1, r.arg2) for r in brat_documents[0].relations] == [("Strength-Drug", "T2", "T1")]
    assert conll_documents[0].relations == [] and brat_documents[1].relations == []
    # Each format's read is the one the table names.
    assert CORPUS_FORMATS["conll"].read(conll)[0][1].text == NOTE_B


@pytest.mark.parametrize("name", ["xml", "BRAT", "", "conll2003"])
def test_an_unknown_format_is_an_error(corpus, name):
    brat, _ = corpus
    with pytest.raises(ValueError) as info:
        read_corpus(name, brat)
    assert str(info.value) == f"unknown input format {name!r} (known: brat, conll)"
    assert not isinstance(info.value, BratFormatError)


def test_label_map_and_entity_types_reach_both_readers(corpus):
    brat, conll = corpus
    options = dict(label_map={"Drug": "Medication", "Strength": None}, entity_types=["Medication"])
    for name, path in (("brat", brat), ("conll", conll)):
        documents, problems = read_corpus(name, path, **options)
        assert problems == []
        assert [spans(d) for d in documents] == [
            [("Medication", 0, 7, "Aspirin"), ("Medication", 22, 29, "Heparin")],
            [("Medication", 0, 10, "Lisinopril")]], name
        assert [d.unmapped_types for d in documents] == [Counter({"Strength": 1, "Frequency": 2}),
                                                         Counter({"Strength": 1})], name
    for name, path in (("brat", brat), ("conll", conll)):
        with pytest.raises(BratFormatError, match="unknown entity type 'Strength'") as info:
            read_corpus(name, path, entity_types=["Drug", "Frequency"])
        assert info.value.kind == "unknown_type"


def test_default_types_brat_n2c2_and_conll_any(tmp_path):
    # Without a label map or entity types, brat expects the n2c2 types and CoNLL takes any type.
    (tmp_path / "brat").mkdir()
    (tmp_path / "brat" / "g.txt").write_text("BRCA1 mutation")
    (tmp_path / "brat" / "g.ann").write_text("T1\tGENE 0 5\tBRCA1\n")
    (tmp_path / "g.tsv").write_text("BRCA1\tB-GENE\nmutation\tO\n")
    with pytest.raises(BratFormatError, match="unknown entity type 'GENE'"):
        read_corpus("brat", tmp_path / "brat")
    documents, _ = read_corpus("conll", tmp_path / "g.tsv")
    assert spans(documents[0]) == [("GENE", 0, 5, "BRCA1")]
    documents, _ = read_corpus("brat", tmp_path / "brat", entity_types=["GENE"])
    assert spans(documents[0]) == [("GENE", 0, 5, "BRCA1")]


def test_relation_map_reaches_the_brat_reader(corpus):
    brat, _ = corpus
    documents, _ = read_corpus("brat", brat, relation_map={"Strength-Drug": "HAS_STRENGTH"})
    assert [(r.id, r.type, r.arg1, r.arg2) for r in documents[0].relations] == [("R1", "HAS_STRENGTH", "T2", "T1")]
    documents, _ = read_corpus("brat", brat, relation_map={"Strength-Drug": None})
    assert documents[0].relations == []
    assert documents[0].unmapped_relation_types == Counter({"Strength-Drug Strength>Drug": 1})


def test_skip_invalid_and_validate_text(corpus):
    brat, conll = corpus
    (brat / "note_b.ann").write_text(ANN_B + "T3\tDrug 0 10\tTylenol123\n")  # text that is not in the note
    with pytest.raises(BratFormatError) as info:
        read_corpus("brat", brat)
    assert (info.value.kind, info.value.line) == ("text_mismatch", 3)

    documents, problems = read_corpus("brat", brat, skip_invalid=True)
    assert spans(documents[1]) == ENTITIES_B  # the bad annotation skipped, the rest kept
    assert [(p.kind, p.line, p.skipped) for p in problems] == [("text_mismatch", 3, "annotation")]
    assert problems[0].path == str(brat / "note_b.ann")

    documents, problems = read_corpus("brat", brat, validate_text=False)
    assert problems == []
    assert spans(documents[1]) == ENTITIES_B + [("Drug", 0, 10, "Tylenol123")]

    # CoNLL: a bad line is always an error, whatever skip_invalid says.
    conll.write_text(CONLL + "oops\n")
    for skip_invalid in (False, True):
        with pytest.raises(BratFormatError, match="malformed line") as info:
            read_corpus("conll", conll, skip_invalid=skip_invalid)
        assert (info.value.kind, info.value.line) == ("malformed_line", 17)


def test_a_missing_input_is_a_usage_error_in_both_formats(tmp_path):
    with pytest.raises(BratFormatError) as info:
        read_corpus("brat", tmp_path / "no_such_folder")
    assert info.value.kind == "not_a_folder"
    assert exit_status(info.value) == 2
    with pytest.raises(BratFormatError) as info:
        read_corpus("conll", tmp_path / "no_such.conll")
    assert info.value.kind == "missing_file"
    assert exit_status(info.value) == 2
