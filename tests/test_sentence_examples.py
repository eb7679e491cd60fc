"""clinical_ner_crf/sentence_examples.py: documents as sentence rows, the overlap and discontinuity policies, what is dropped or changed and why."""

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings

from clinical_ner_crf.brat import read_brat_document, write_brat_ann
from clinical_ner_crf.documents import BratDocument, BratEntity, BratRelation
from clinical_ner_crf.sentence_examples import DROP_CATEGORIES, document_to_examples, kept_relations, relation_cases
from clinical_ner_crf.tagging import N2C2_LABELS, bio_to_char_spans, tokenize_words
from test_prepare_n2c2 import NESTED, doc_with, documents_with_entities, tagged


def test_document_to_examples_rows_and_tags():
    doc = doc_with("Aspirin 81 mg daily.\nHe had chest pain.", ("Drug", "Aspirin"), ("Strength", "81 mg"),
                   ("Frequency", "daily"), ("Reason", "chest pain"))
    rows, counts = document_to_examples(doc, N2C2_LABELS)
    assert [row["id"] for row in rows] == ["d1-0", "d1-1"] and [row["sentence_index"] for row in rows] == [0, 1]
    assert tagged(rows) == [
        ["Aspirin/B-Drug", "81/B-Strength", "mg/I-Strength", "daily/B-Frequency", "."],
        ["He", "had", "chest/B-Reason", "pain/I-Reason", "."]]
    assert rows[1]["token_starts"][2] == doc.text.index("chest")
    assert counts["kept", "Reason"] == counts["source", "Reason"] == 1


def test_discontinuous_policies():
    text = "liver and kidney injury after ibuprofen"
    doc = doc_with(text, ("ADE", [("liver", 0), ("injury", 0)]), ("Drug", "ibuprofen"))
    rows, counts = document_to_examples(doc, N2C2_LABELS, discontinuous="span")
    assert tagged(rows)[0][:4] == ["liver/B-ADE", "and/I-ADE", "kidney/I-ADE", "injury/I-ADE"]
    assert counts["discontinuous_spanned", "ADE"] == 1
    rows, counts = document_to_examples(doc, N2C2_LABELS, discontinuous="first")
    assert tagged(rows)[0][:2] == ["liver/B-ADE", "and"] and counts["discontinuous_first_fragment", "ADE"] == 1
    rows, counts = document_to_examples(doc, N2C2_LABELS, discontinuous="drop")
    assert tagged(rows)[0][0] == "liver" and counts["dropped_discontinuous", "ADE"] == 1
    assert counts["kept", "Drug"] == 1


@pytest.mark.parametrize("policy, expected, dropped, clipped", [
    ("longest", ["clozapine/B-Reason", "-/I-Reason", "induced/I-Reason", "granulocytopenia/I-Reason"],
     {"Drug": 1, "ADE": 1}, {}),
    ("shortest", ["clozapine/B-Drug", "-", "induced", "granulocytopenia/B-ADE"], {"Reason": 1}, {}),
    ("first", ["clozapine/B-Reason", "-/I-Reason", "induced/I-Reason", "granulocytopenia/I-Reason"],
     {"Drug": 1, "ADE": 1}, {}),
])
def test_overlap_policies_on_nested_entities(policy, expected, dropped, clipped):
    doc = doc_with(NESTED, ("Reason", "clozapine-induced granulocytopenia"), ("Drug", "clozapine"),
                   ("ADE", "granulocytopenia"))
    rows, counts = document_to_examples(doc, N2C2_LABELS, overlap=policy)
    assert tagged(rows)[0][:4] == expected
    assert {t: counts["dropped_overlap", t] for t in ("Drug", "ADE", "Reason") if counts["dropped_overlap", t]} == dropped


def test_clip_policy_trims_partial_overlaps():
    text = "severe chest pain radiating to arm"
    doc = doc_with(text, ("Reason", "severe chest pain"), ("ADE", "chest pain radiating to arm"))
    rows, counts = document_to_examples(doc, N2C2_LABELS, overlap="clip")
    # The longer ADE stays whole; the Reason keeps its one free word.
    assert tagged(rows)[0] == ["severe/B-Reason", "chest/B-ADE", "pain/I-ADE", "radiating/I-ADE", "to/I-ADE",
                               "arm/I-ADE"]
    assert counts["clipped_overlap", "Reason"] == 1 and counts["kept", "Reason"] == 1
    rows, counts = document_to_examples(doc, N2C2_LABELS, overlap="longest")
    assert counts["dropped_overlap", "Reason"] == 1 and counts["kept", "ADE"] == 1


def test_boundaries_inside_words_expand_and_duplicates_are_counted():
    doc = doc_with("Aspirin 81mg daily", ("Drug", "spiri"), ("Strength", "81"), ("Drug", "Aspirin"), ("Route", " "))
    rows, counts = document_to_examples(doc, N2C2_LABELS)
    assert tagged(rows) == [["Aspirin/B-Drug", "81mg/B-Strength", "daily"]]
    assert counts["expanded_to_words", "Drug"] == 1 and counts["expanded_to_words", "Strength"] == 1
    assert counts["dropped_duplicate", "Drug"] == 1 and counts["dropped_no_words", "Route"] == 1
    for entity_type in ("Drug", "Strength", "Route"):
        dropped = sum(counts[c, entity_type] for c in DROP_CATEGORIES)
        assert counts["kept", entity_type] + dropped == counts["source", entity_type]


def test_bad_policy_names_are_rejected():
    with pytest.raises(ValueError, match="overlap policy"):
        document_to_examples(doc_with("a"), N2C2_LABELS, overlap="merge")
    with pytest.raises(ValueError, match="discontinuous policy"):
        document_to_examples(doc_with("a"), N2C2_LABELS, discontinuous="join")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents_with_entities())
def test_property_bio_tags_and_offsets_give_back_the_entities(tmp_path_factory, document):
    text, entities = document
    doc = BratDocument("doc", text, [BratEntity(f"T{i}", t, ((s, e),), text[s:e], i) for i, (t, s, e) in
                                     enumerate(entities, start=1)])
    rows, counts = document_to_examples(doc, N2C2_LABELS)
    recovered = [span for row in rows for span in bio_to_char_spans(row["ner_tags"], row["token_starts"],
                                                                     row["token_ends"])]
    assert recovered == sorted(entities, key=lambda entity: entity[1])
    assert sum(counts[c, t] for c, t in counts if c in DROP_CATEGORIES) == 0
    # Every word is in exactly one sentence, with its own text.
    assert [w for row in rows for w in row["tokens"]] == [w for w, _, _ in tokenize_words(text)]
    # And the same through the brat writer and reader (entities crossing lines become fragments).
    if entities and text.strip():
        folder = tmp_path_factory.mktemp("brat")
        (folder / "doc.txt").write_bytes(text.encode())
        write_brat_ann(folder / "doc.ann", [(t, s, e) for t, s, e in entities], text)
        reread = read_brat_document(folder / "doc.txt")
        assert [(e.type, e.start, e.end) for e in reread.entities] == entities


def test_relations_whose_arguments_merge_into_one_entity_are_dropped_and_counted():
    # Another scheme's relation between two exact duplicates: after the duplicates merge, it would link T1 to itself.
    text = "Aspirin 81 mg."
    doc = relation_doc(text, [("T1", "Drug", "Aspirin"), ("T2", "Drug", "Aspirin")], [("same_as", "T2", "T1")])
    _, _, kept = document_to_examples(doc, N2C2_LABELS, return_entities=True)
    relations, counts = kept_relations(doc, kept)
    assert relations == []
    assert counts == Counter({("source", "same_as"): 1, ("self_relation", "same_as"): 1})


def test_document_to_examples_reports_the_kept_entities_with_final_spans():
    text = "Digoxin toxicity after aspirin 81mg daily."
    doc = relation_doc(text, [("T1", "ADE", "Digoxin toxicity"), ("T2", "Drug", "Digoxin"), ("T3", "Drug", "aspirin"),
                          ("T4", "Strength", "81"), ("T5", "Drug", "aspirin"), ("T6", "Frequency", "daily")])
    rows, counts = document_to_examples(doc, N2C2_LABELS)  # the two-value form is unchanged
    again, counts_again, kept = document_to_examples(doc, N2C2_LABELS, return_entities=True)
    assert again == rows and counts_again == counts
    at = text.index
    assert kept == {
        "T1": {"id": "T1", "type": "ADE", "start": 0, "end": 16},
        "T3": {"id": "T3", "type": "Drug", "start": at("aspirin"), "end": at("aspirin") + 7},
        "T4": {"id": "T4", "type": "Strength", "start": at("81mg"), "end": at("81mg") + 4},  # expanded to the word
        "T6": {"id": "T6", "type": "Frequency", "start": at("daily"), "end": at("daily") + 5},
        "T5": {"id": "T3", "type": "Drug", "start": at("aspirin"), "end": at("aspirin") + 7},  # a duplicate of T3
    }
    assert "T2" not in kept and counts["dropped_overlap", "Drug"] == 1 and counts["dropped_duplicate", "Drug"] == 1


def test_document_relations_keep_or_count_every_relation():
    text = "Digoxin toxicity after aspirin 81mg daily."
    doc = relation_doc(text, [("T1", "ADE", "Digoxin toxicity"), ("T2", "Drug", "Digoxin"), ("T3", "Drug", "aspirin"),
                          ("T4", "Strength", "81"), ("T5", "Drug", "aspirin"), ("T6", "Frequency", "daily")],
                   [("ADE-Drug", "T1", "T2"), ("Strength-Drug", "T4", "T3"), ("Frequency-Drug", "T6", "T5"),
                    ("Frequency-Drug", "T6", "T3"), ("Strength-Drug", "T4", "T7")])
    _, _, kept = document_to_examples(doc, N2C2_LABELS, return_entities=True)
    relations, counts = kept_relations(doc, kept)
    assert relations == [{"type": "Strength-Drug", "arg1": "T4", "arg2": "T3"},
                         {"type": "Frequency-Drug", "arg1": "T6", "arg2": "T3"}]  # T5 is T3's duplicate
    assert counts == Counter({("source", "Strength-Drug"): 2, ("source", "Frequency-Drug"): 2,
                              ("source", "ADE-Drug"): 1, ("kept", "Strength-Drug"): 1, ("kept", "Frequency-Drug"): 1,
                              ("argument_dropped", "ADE-Drug"): 1, ("duplicate", "Frequency-Drug"): 1,
                              ("argument_missing", "Strength-Drug"): 1})


def test_relation_cases_are_counted():
    text = "1. Senna 8.6 mg and Colace 100 mg PO BID\nShe developed a rash. This was attributed to Keflex.\nAspirin.\n"
    doc = relation_doc(text, [("T1", "Drug", "Senna"), ("T2", "Strength", "8.6 mg"), ("T3", "Drug", "Colace"),
                          ("T4", "Strength", "100 mg"), ("T5", "Frequency", "BID"), ("T6", "ADE", "rash"),
                          ("T7", "Drug", "Keflex"), ("T8", "Drug", "Aspirin")],
                   [("Strength-Drug", "T2", "T1"), ("Strength-Drug", "T4", "T3"), ("Frequency-Drug", "T5", "T1"),
                    ("Frequency-Drug", "T5", "T3"), ("ADE-Drug", "T6", "T7")])
    rows, _, kept = document_to_examples(doc, N2C2_LABELS, return_entities=True)
    relations, _ = kept_relations(doc, kept)
    cases = relation_cases(text, list(kept.values()), relations, rows)
    assert cases == Counter({("across_sentences", "ADE-Drug"): 1, ("shared_attributes", "Frequency-Drug"): 1,
                             ("drugs_without_attributes", None): 1, ("lines_with_several_drugs", None): 1})


def relation_doc(text, entities, relations=()):
    """entities: (id, type, surface); relations: (type, arg1, arg2)."""
    return BratDocument("d1", text, [BratEntity(i, t, ((text.index(s), text.index(s) + len(s)),), s, n)
                                     for n, (i, t, s) in enumerate(entities, start=1)],
                        relations=[BratRelation(f"R{n}", *r, n) for n, r in enumerate(relations, start=1)])
