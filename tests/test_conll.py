"""clinical_ner_crf/conll.py: CoNLL token<TAB>tag files read into documents, bad lines named."""

from collections import Counter

import pytest

from clinical_ner_crf import conll, tagging
from clinical_ner_crf.conll import read_conll_file
from clinical_ner_crf.documents import BratFormatError
from clinical_ner_crf.sentence_examples import document_to_examples


def test_conll_documents_text_and_entities(tmp_path):
    path = tmp_path / "genes.tsv"
    path.write_text("-DOCSTART-\tO\n\nBRCA1\tB-GENE\nmutation\tO\n.\tO\n\nTP53\tI-GENE\nbinds\tO\n\n"
                    "-DOCSTART-\tO\n\nNo\tO\ngenes\tO\n")
    documents = read_conll_file(path)
    assert [d.doc_id for d in documents] == ["genes-000000", "genes-000001"]
    assert documents[0].text == "BRCA1 mutation .\nTP53 binds"
    assert documents[0].sentence_spans == [(0, 16), (17, 27)]
    assert [(e.type, e.start, e.end, e.text) for e in documents[0].entities] == [
        ("GENE", 0, 5, "BRCA1"), ("GENE", 17, 21, "TP53")]
    assert documents[0].repaired_tags == Counter({"GENE": 1})
    rows, _ = document_to_examples(documents[0], tagging.bio_labels(["GENE"]))
    assert [row["ner_tags"] for row in rows] == [["B-GENE", "O", "O"], ["B-GENE", "O"]]
    assert conll.conll_entity_types([path]) == ["GENE"]


def test_conll_without_docstart_and_bad_lines(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("a\tO\nb\tB-X\n\nc\tO\n")
    assert [d.text for d in read_conll_file(path)] == ["a b", "c"]
    path.write_text("a\tO\nb\tB_X\n")
    with pytest.raises(BratFormatError, match="malformed tag") as info:
        read_conll_file(path)
    assert info.value.line == 2
    path.write_text("a\tO\nb\n")
    with pytest.raises(BratFormatError, match="malformed line") as info:
        read_conll_file(path)
    assert info.value.line == 2
    path.write_text("a\tB-X\n")
    with pytest.raises(BratFormatError, match="unknown entity type 'X'"):
        read_conll_file(path, entity_types=["Y"])
