"""clinical_ner_crf/n2c2_scoring.py: entities and relations scored as the official n2c2 script scores them, checked by hand.

A relation is ``(type, arg1, arg2)``, each argument its entity's ``(type, first start, last end)``; Arg1 is the
attribute, Arg2 the drug. Strict: same relation type, arguments equal (entity type, start and end); lenient: same
relation type, arguments of the same entity type that overlap. Matching pares down like the entity matcher.
"""

import json
import random

import pytest

from clinical_ner_crf.brat import read_brat_document, write_brat_ann
from clinical_ner_crf.documents import BratDocument, BratEntity, BratFormatError, BratRelation
from clinical_ner_crf.n2c2_scoring import (
    RELATION_SETTINGS, document_relations, match_relation_counts, score_brat_folders, score_relations,
)
from clinical_ner_crf.tagging import N2C2_RELATION_TYPES, bio_to_char_spans, tokenize_words
from clinical_ner_crf.token_metrics import entity_scores
from conftest import assert_plain, command

main = command("evaluate_ablations").main


def approx(value):
    return pytest.approx(value, abs=1e-9)


def counts(section):
    return {name: (row["tp"], row["fp"], row["fn"]) for name, row in section["per_type"].items()}


# ---------------------------------------------------------------------------
# match_relation_counts: one document, tuples
# ---------------------------------------------------------------------------

# "Aspirin 81 mg PO daily": Drug 0-7, Strength 8-13, Route 14-16, Frequency 17-22.
DRUG, STRENGTH, ROUTE, FREQUENCY = ("Drug", 0, 7), ("Strength", 8, 13), ("Route", 14, 16), ("Frequency", 17, 22)
GOLD = [("Strength-Drug", STRENGTH, DRUG)]


def both(gold, pred):
    return match_relation_counts(gold, pred, "strict"), match_relation_counts(gold, pred, "lenient")


def test_exact_relation_is_a_true_positive_both_ways():
    assert both(GOLD, [("Strength-Drug", STRENGTH, DRUG)]) == ({"Strength-Drug": {"tp": 1, "fp": 0, "fn": 0}},) * 2


def test_reversed_arguments_never_match():
    # Both arguments are the right entities, but the drug is given as Arg1 and the strength as Arg2.
    strict, lenient = both(GOLD, [("Strength-Drug", DRUG, STRENGTH)])
    assert strict == lenient == {"Strength-Drug": {"tp": 0, "fp": 1, "fn": 1}}


def test_drug_span_off_by_one_character_is_lenient_only():
    strict, lenient = both(GOLD, [("Strength-Drug", STRENGTH, ("Drug", 0, 6))])  # "Aspiri"
    assert strict == {"Strength-Drug": {"tp": 0, "fp": 1, "fn": 1}}
    assert lenient == {"Strength-Drug": {"tp": 1, "fp": 0, "fn": 0}}


def test_wrong_relation_type_is_a_false_positive_of_its_type_and_a_miss_of_the_gold_type():
    strict, lenient = both(GOLD, [("Dosage-Drug", STRENGTH, DRUG)])
    assert strict == lenient == {"Strength-Drug": {"tp": 0, "fp": 0, "fn": 1},
                                 "Dosage-Drug": {"tp": 0, "fp": 1, "fn": 0}}


def test_argument_of_another_entity_type_on_the_same_span_does_not_match():
    # The official script compares arguments with ClinicalConcept.equals, which includes the entity type.
    strict, lenient = both(GOLD, [("Strength-Drug", ("Dosage", 8, 13), DRUG)])
    assert strict == lenient == {"Strength-Drug": {"tp": 0, "fp": 1, "fn": 1}}


def test_duplicates_of_a_right_relation_count_once_and_of_a_wrong_one_each():
    # The script's pare-down: a repeat that matches an already matched gold relation is dropped (neither tp
    # nor fp); repeats that match nothing are kept, each a false positive.
    pred = [("Strength-Drug", STRENGTH, DRUG)] * 3 + [("Route-Drug", ROUTE, FREQUENCY)] * 2
    strict, lenient = both(GOLD, pred)
    assert strict == lenient == {"Strength-Drug": {"tp": 1, "fp": 0, "fn": 0},
                                 "Route-Drug": {"tp": 0, "fp": 2, "fn": 0}}


# "Tylenol or Advil 200 mg": Drug 0-7, Drug 11-16, Strength 17-23.
TYLENOL, ADVIL, MG200 = ("Drug", 0, 7), ("Drug", 11, 16), ("Strength", 17, 23)
SHARED = [("Strength-Drug", MG200, TYLENOL), ("Strength-Drug", MG200, ADVIL)]


def test_two_relations_sharing_one_attribute():
    assert both(SHARED, SHARED) == ({"Strength-Drug": {"tp": 2, "fp": 0, "fn": 0}},) * 2
    assert both(SHARED, SHARED[1:]) == ({"Strength-Drug": {"tp": 1, "fp": 0, "fn": 1}},) * 2
    # One predicted drug span over both drugs ("Tylenol or Advil"): strict nothing; lenient it overlaps both
    # gold relations and, as for entities, finds one of them.
    strict, lenient = both(SHARED, [("Strength-Drug", MG200, ("Drug", 0, 16))])
    assert strict == {"Strength-Drug": {"tp": 0, "fp": 1, "fn": 2}}
    assert lenient == {"Strength-Drug": {"tp": 1, "fp": 0, "fn": 1}}


def test_lenient_official_corner_case_as_for_entities():
    # The second prediction hits the gold relation the first one found (drop) and a new one: it is dropped and
    # the new one stays unfound, as match_counts does for entities.
    pred = [("Strength-Drug", MG200, ("Drug", 0, 3)), ("Strength-Drug", MG200, ("Drug", 0, 16))]
    assert match_relation_counts(SHARED, pred, "lenient") == {"Strength-Drug": {"tp": 1, "fp": 0, "fn": 1}}


def test_bad_mode_is_an_error():
    with pytest.raises(ValueError, match="strict' or 'lenient"):
        match_relation_counts(GOLD, GOLD, "partial")


# ---------------------------------------------------------------------------
# score_brat_folders: three documents, counted by hand
# ---------------------------------------------------------------------------


def ann(text, entities, relations=()):
    """``.ann`` text: entities ``(id, type, start, end)`` (surface from the text), relations ``(id, type, a1, a2)``."""
    lines = [f"{i}\t{t} {s} {e}\t{text[s:e]}" for i, t, s, e in entities]
    lines += [f"{i}\t{t} Arg1:{a1} Arg2:{a2}" for i, t, a1, a2 in relations]
    return "\n".join(lines) + "\n"


def span(text, surface, length=None):
    start = text.index(surface)
    return start, start + (len(surface) if length is None else length)


DOC1 = "Aspirin 81 mg PO daily. Tylenol or Advil 200 mg.\n"
DOC1_ENTITIES = [("Drug", "Aspirin"), ("Strength", "81 mg"), ("Route", "PO"), ("Frequency", "daily"),
                 ("Drug", "Tylenol"), ("Drug", "Advil"), ("Strength", "200 mg")]
DOC1_GOLD = ann(DOC1, [(f"T{n}", t, *span(DOC1, w)) for n, (t, w) in enumerate(DOC1_ENTITIES, start=1)],
                [("R1", "Strength-Drug", "T2", "T1"), ("R2", "Route-Drug", "T3", "T1"),
                 ("R3", "Frequency-Drug", "T4", "T1"),
                 ("R4", "Strength-Drug", "T7", "T5"), ("R5", "Strength-Drug", "T7", "T6")])  # 200 mg shared
# System entities, numbered in another order (matching is by offsets, never by id); "Advi" one character short.
DOC1_PRED = ann(DOC1, [("T11", "Strength", *span(DOC1, "81 mg")), ("T12", "Drug", *span(DOC1, "Aspirin")),
                       ("T13", "Route", *span(DOC1, "PO")), ("T14", "Frequency", *span(DOC1, "daily")),
                       ("T15", "Drug", *span(DOC1, "Tylenol")), ("T16", "Drug", *span(DOC1, "Advil", 4)),
                       ("T17", "Strength", *span(DOC1, "200 mg"))],
                [("R1", "Strength-Drug", "T11", "T12"),  # exact: tp
                 ("R2", "Route-Drug", "T12", "T13"),  # reversed: fp (and gold R2 fn); listed as invalid (line 9)
                 ("R3", "Dosage-Drug", "T14", "T12"),  # wrong type: Dosage-Drug fp, gold Frequency-Drug fn; invalid
                 ("R4", "Strength-Drug", "T17", "T15"),  # shared attribute, first drug: tp
                 ("R5", "Strength-Drug", "T17", "T16")])  # drug off by one: strict fp + fn, lenient tp

DOC2 = "Metoprolol 25 mg.\n"  # no prediction file: its relation is a false negative
DOC2_GOLD = ann(DOC2, [("T1", "Drug", *span(DOC2, "Metoprolol")), ("T2", "Strength", *span(DOC2, "25 mg"))],
                [("R1", "Strength-Drug", "T2", "T1")])

DOC3 = "Heparin 5000 units SC q8h.\n"
DOC3_GOLD = ann(DOC3, [("T1", "Drug", *span(DOC3, "Heparin")), ("T2", "Strength", *span(DOC3, "5000 units")),
                       ("T3", "Route", *span(DOC3, "SC")), ("T4", "Frequency", *span(DOC3, "q8h"))],
                [("R1", "Strength-Drug", "T2", "T1"), ("R2", "Route-Drug", "T3", "T1")])
DOC3_PRED = ann(DOC3, [("T1", "Drug", *span(DOC3, "Heparin")), ("T2", "Strength", *span(DOC3, "5000 units")),
                       ("T3", "Route", *span(DOC3, "SC")), ("T4", "Route", *span(DOC3, "q8h"))],  # not a gold entity
                [("R1", "Strength-Drug", "T2", "T1"),  # tp
                 ("R2", "Strength-Drug", "T2", "T1"),  # exact repeat of a right one: counted once
                 ("R3", "Route-Drug", "T4", "T1"),  # arg1 is no gold entity: fp
                 ("R4", "Route-Drug", "T4", "T1"),  # exact repeat of a wrong one: counted once, no second fp
                 ("R5", "Strength-Drug", "T99", "T1")])  # unknown argument: a skipped line (line 9)


@pytest.fixture
def relation_folders(tmp_path):
    gold, pred = tmp_path / "gold", tmp_path / "pred"
    gold.mkdir()
    pred.mkdir()
    for name, text, gold_ann, pred_ann in (("doc1", DOC1, DOC1_GOLD, DOC1_PRED), ("doc2", DOC2, DOC2_GOLD, None),
                                           ("doc3", DOC3, DOC3_GOLD, DOC3_PRED)):
        (gold / f"{name}.txt").write_text(text)
        (gold / f"{name}.ann").write_text(gold_ann)
        if pred_ann is not None:
            (pred / f"{name}.ann").write_text(pred_ann)
    return gold, pred


# By hand, per relation type (tp, fp, fn):
#   Strength-Drug  strict: doc1 R1, R4 tp, R5 fp + fn; doc2 fn; doc3 R1 tp (R2 a repeat)  -> (3, 1, 2)
#                  lenient: doc1 R5 found too                                           -> (4, 0, 1)
#   Dosage-Drug    doc1 R3 (a Frequency-Drug given the wrong type)                       -> (0, 1, 0)
#   Frequency-Drug doc1 R3 missed                                                        -> (0, 0, 1)
#   Route-Drug     doc1 R2 reversed fp, gold fn; doc3 R3 fp (R4 a repeat), gold R2 fn      -> (0, 2, 2)
EXPECTED_STRICT = {"Strength-Drug": (3, 1, 2), "Dosage-Drug": (0, 1, 0), "Frequency-Drug": (0, 0, 1),
                   "Route-Drug": (0, 2, 2)}
EXPECTED_LENIENT = {**EXPECTED_STRICT, "Strength-Drug": (4, 0, 1)}


def test_relations_strict_and_lenient_by_hand(relation_folders):
    report = score_brat_folders(*relation_folders)
    relations = report["relations"]
    assert relations["setting"] == "end_to_end"
    assert relations["num_documents"] == 3
    assert relations["num_gold_relations"] == 8  # 5 + 1 + 2
    # 5 + 0 + 2 distinct (the unknown argument is not read; doc3 R2 and R4 are exact repeats, counted once).
    assert relations["num_pred_relations"] == 7
    assert relations["duplicate_relations"] == {"gold": 0, "pred": 2}
    # doc1 R5 (the short drug), doc3 R3 (q8h is a Frequency in gold, not a Route).
    assert relations["pred_relations_with_unmatched_argument"] == 2
    # Scored as false positives (as the official script does) and listed: doc1 R2 reversed, R3 a Frequency as Arg1.
    assert relations["invalid_pred_relations"] == {
        "by_kind": {"relation_argument_type": 1, "reversed_relation": 1},
        "lines": [{"document": "doc1", "line": 9, "kind": "reversed_relation"},
                  {"document": "doc1", "line": 10, "kind": "relation_argument_type"}]}
    strict, lenient = relations["strict"], relations["lenient"]
    assert counts(strict) == EXPECTED_STRICT
    assert list(strict["per_type"]) == ["Strength-Drug", "Dosage-Drug", "Frequency-Drug", "Route-Drug"]  # n2c2 order
    assert counts(lenient) == EXPECTED_LENIENT
    # Micro strict: tp 3, fp 4, fn 5 (7 distinct predicted = 3 + 4; 8 gold = 3 + 5).
    assert strict["micro"] == {"precision": approx(3 / 7), "recall": 3 / 8, "f1": approx(0.4), "support": 8,
                               "tp": 3, "fp": 4, "fn": 5}
    assert lenient["micro"] == {"precision": approx(4 / 7), "recall": 0.5, "f1": approx(8 / 15), "support": 8,
                                "tp": 4, "fp": 3, "fn": 4}
    strength = strict["per_type"]["Strength-Drug"]
    assert (strength["precision"], strength["recall"], strength["f1"], strength["support"]) == \
        (approx(3 / 4), approx(3 / 5), approx(2 / 3), 5)
    assert lenient["per_type"]["Strength-Drug"]["f1"] == approx(8 / 9)  # P 1, R 4/5
    assert strict["macro"]["f1"] == approx((2 / 3) / 4)
    assert strict["per_type"]["Dosage-Drug"]["support"] == 0
    # The unknown argument is a skipped prediction line, named by document, line and kind only.
    assert report["skipped_prediction_lines"] == [{"document": "doc3", "line": 9, "kind": "unknown_argument"}]
    assert report["missing_predictions"] == ["doc2"]
    # The entity scores are those of the same files: doc1 "Advi" and doc3 q8h-as-Route are wrong, doc2 missed.
    assert (report["strict"]["micro"]["tp"], report["strict"]["micro"]["fp"], report["strict"]["micro"]["fn"]) \
        == (9, 2, 4)
    for word in ("Aspirin", "Advil", "Heparin", "q8h"):
        assert word not in json.dumps(report)


def test_relations_on_gold_entities_have_no_unmatched_argument(tmp_path):
    gold, pred = tmp_path / "gold", tmp_path / "pred"
    gold.mkdir()
    pred.mkdir()
    (gold / "doc1.txt").write_text(DOC1)
    (gold / "doc1.ann").write_text(DOC1_GOLD)
    # The gold entities, and relations between them: two right, one reversed.
    (pred / "doc1.ann").write_text(ann(DOC1, [(f"T{n}", t, *span(DOC1, w))
                                              for n, (t, w) in enumerate(DOC1_ENTITIES, start=1)],
                                       [("R1", "Strength-Drug", "T2", "T1"), ("R2", "Route-Drug", "T1", "T3"),
                                        ("R3", "Strength-Drug", "T7", "T6")]))
    relations = score_brat_folders(gold, pred, relation_setting="gold_entities")["relations"]
    assert relations["setting"] == "gold_entities"
    assert relations["setting_title"] == RELATION_SETTINGS["gold_entities"]
    assert relations["pred_relations_with_unmatched_argument"] == 0
    assert counts(relations["strict"]) == {"Strength-Drug": (2, 0, 1), "Route-Drug": (0, 1, 1),
                                           "Frequency-Drug": (0, 0, 1)}
    with pytest.raises(ValueError, match="relation setting"):
        score_brat_folders(gold, pred, relation_setting="pipeline")


def test_a_system_relation_type_outside_n2c2_counts_as_a_false_positive(tmp_path):
    gold, pred = tmp_path / "gold", tmp_path / "pred"
    gold.mkdir()
    pred.mkdir()
    (gold / "doc2.txt").write_text(DOC2)
    (gold / "doc2.ann").write_text(DOC2_GOLD)
    (pred / "doc2.ann").write_text(DOC2_GOLD + "R2\tDose-Of Arg1:T2 Arg2:T1\n")
    report = score_brat_folders(gold, pred)
    assert counts(report["relations"]["strict"]) == {"Strength-Drug": (1, 0, 0), "Dose-Of": (0, 1, 0)}
    assert report["skipped_prediction_lines"] == []


# Relations whose arguments cannot be right, after DOC2_GOLD's three lines (T1 Drug, T2 Strength, R1): line 4.
INVALID = [("R2\tStrength-Drug Arg1:T2 Arg2:T2\n", "self_relation", "Arg1 and Arg2 are the same entity T2"),
           ("R2\tStrength-Drug Arg1:T1 Arg2:T2\n", "reversed_relation", "arguments reversed"),
           ("R2\tDosage-Drug Arg1:T2 Arg2:T1\n", "relation_argument_type", "Arg1 T2 is a Strength, but Dosage-Drug")]


def test_predicted_relations_that_cannot_be_right_are_false_positives_and_listed(tmp_path):
    gold, pred = tmp_path / "gold", tmp_path / "pred"
    gold.mkdir()
    pred.mkdir()
    (gold / "doc2.txt").write_text(DOC2)
    (gold / "doc2.ann").write_text(DOC2_GOLD)
    # The right relation, then each kind (a repeat of the self relation under another id: counted once).
    (pred / "doc2.ann").write_text(DOC2_GOLD + "".join(line.replace("R2", f"R{n}") for n, (line, _, _)
                                                       in enumerate(INVALID, start=2))
                                   + "R9\tStrength-Drug Arg1:T2 Arg2:T2\n")
    report = score_brat_folders(gold, pred)
    relations = report["relations"]
    # As the official script counts them: each a false positive of its type (the reversed and the self relation
    # are Strength-Drug), never a match, and nothing skipped.
    assert counts(relations["strict"]) == counts(relations["lenient"]) == {"Strength-Drug": (1, 2, 0),
                                                                           "Dosage-Drug": (0, 1, 0)}
    assert report["skipped_prediction_lines"] == []
    assert relations["duplicate_relations"] == {"gold": 0, "pred": 1}
    assert relations["invalid_pred_relations"] == {
        "by_kind": {"relation_argument_type": 1, "reversed_relation": 1, "self_relation": 2},
        "lines": [{"document": "doc2", "line": 4, "kind": "self_relation"},
                  {"document": "doc2", "line": 5, "kind": "reversed_relation"},
                  {"document": "doc2", "line": 6, "kind": "relation_argument_type"},
                  {"document": "doc2", "line": 7, "kind": "self_relation"}]}


def test_no_relations_section_without_gold_relations(tmp_path, caplog):
    gold, pred = tmp_path / "gold", tmp_path / "pred"
    gold.mkdir()
    pred.mkdir()
    (gold / "doc1.txt").write_text(DOC1)
    (gold / "doc1.ann").write_text(DOC1_GOLD.split("\nR1")[0] + "\n")  # the T lines only
    (pred / "doc1.ann").write_text(DOC1_PRED)  # the system's relations cannot be scored
    report = score_brat_folders(gold, pred)
    assert "relations" not in report
    assert "relations are not scored" in caplog.text


def test_no_relations_section_for_an_entity_only_system(tmp_path):
    """Gold with R lines, predictions with T lines only (an NER model's): no table of zeros, a reason instead."""
    gold, pred = tmp_path / "gold", tmp_path / "pred"
    gold.mkdir()
    pred.mkdir()
    (gold / "doc1.txt").write_text(DOC1)
    (gold / "doc1.ann").write_text(DOC1_GOLD)
    (pred / "doc1.ann").write_text(DOC1_PRED.split("\nR1")[0] + "\n")
    report = score_brat_folders(gold, pred)
    assert "relations" not in report
    assert report["relations_not_scored"].startswith("the prediction files hold no relations")
    assert report["strict"]["micro"]["f1"] > 0


def test_written_relations_round_trip_to_a_perfect_score(tmp_path):
    gold, pred = tmp_path / "gold", tmp_path / "pred"
    gold.mkdir()
    pred.mkdir()
    entities = [(t, *span(DOC1, w)) for t, w in DOC1_ENTITIES]
    relations = [("Strength-Drug", 1, 0), ("Route-Drug", 2, 0), ("Strength-Drug", 6, 4), ("Strength-Drug", 6, 5)]
    (gold / "doc1.txt").write_text(DOC1)
    write_brat_ann(gold / "doc1.ann", entities, DOC1, relations=relations)
    write_brat_ann(pred / "doc1.ann", entities[::-1], DOC1,  # other ids, same relations
                   relations=[(t, 6 - a1, 6 - a2) for t, a1, a2 in relations])
    relations_report = score_brat_folders(gold, pred)["relations"]
    assert relations_report["strict"]["micro"]["f1"] == relations_report["lenient"]["micro"]["f1"] == 1.0
    assert relations_report["strict"]["micro"]["tp"] == 4


# ---------------------------------------------------------------------------
# score_relations: documents without files
# ---------------------------------------------------------------------------


def _entity(entity_id, entity_type, start, end):
    return BratEntity(entity_id, entity_type, ((start, end),), "", 0)


def test_score_relations_on_documents_equals_the_folder_scores(relation_folders):
    gold_dir, pred_dir = relation_folders
    names = ("doc1", "doc2", "doc3")
    types = {"entity_types": ["Drug", "Strength", "Route", "Frequency"]}
    gold = [read_brat_document(gold_dir / f"{n}.txt", gold_dir / f"{n}.ann", **types) for n in names]
    # Predictions are read as the folder scorer reads them: relations that cannot be right are kept (false positives).
    pred = [read_brat_document(gold_dir / f"{n}.txt", pred_dir / f"{n}.ann", problems=[], check_relations=False,
                               **types)
            if (pred_dir / f"{n}.ann").exists() else None for n in names]
    assert score_relations(gold, pred) == score_brat_folders(gold_dir, pred_dir)["relations"]


def test_score_relations_api():
    entities = [_entity("T1", "Drug", 0, 7), _entity("T2", "Strength", 8, 13)]
    gold = BratDocument("a", DOC1, entities, relations=[BratRelation("R1", "Strength-Drug", "T2", "T1", 0)])
    reversed_ = BratDocument("a", DOC1, entities, relations=[BratRelation("R1", "Strength-Drug", "T1", "T2", 0)])
    report = score_relations([gold, gold], [gold, reversed_])
    assert (report["strict"]["micro"]["tp"], report["strict"]["micro"]["fp"], report["strict"]["micro"]["fn"]) \
        == (1, 1, 1)
    assert set(report) >= {"strict", "lenient", "setting", "num_gold_relations", "num_pred_relations",
                           "pred_relations_with_unmatched_argument", "notes"}
    assert score_relations([gold], [None])["strict"]["micro"]["fn"] == 1
    assert score_relations([gold], [gold], setting="gold_entities")["setting"] == "gold_entities"
    assert document_relations(gold) == [("Strength-Drug", ("Strength", 8, 13), ("Drug", 0, 7))]
    with pytest.raises(ValueError, match="paired by position"):
        score_relations([gold], [BratDocument("b", DOC1, entities)])
    with pytest.raises(ValueError, match="1 gold documents but 2"):
        score_relations([gold], [gold, gold])
    dangling = BratDocument("a", DOC1, entities[:1], relations=[BratRelation("R1", "Strength-Drug", "T2", "T1", 0)])
    with pytest.raises(ValueError, match="R1's Arg1 T2 is not one of its entities"):
        score_relations([gold], [dangling])
    with pytest.raises(ValueError, match="relation setting"):
        score_relations([gold], [gold], setting="pipeline")
    assert set(N2C2_RELATION_TYPES) >= set(report["strict"]["per_type"])


# ---------------------------------------------------------------------------
# The command line: report.json and the Markdown table
# ---------------------------------------------------------------------------


def test_brat_strict_and_lenient_by_hand(brat_folders):
    report = score_brat_folders(*brat_folders)
    assert report["num_documents"] == 3
    assert report["missing_predictions"] == ["doc3"]
    assert report["unmatched_predictions"] == ["extra"]
    strict, lenient = report["strict"], report["lenient"]
    # Strict. Drug: aspirin, morphine right; heparin missed. Strength: 81 / mg both wrong.
    # Route PO predicted Form. Frequency: daily right, its exact duplicate counted once. Reason missed.
    # ADE: discontinuous spans collapse to 12..31 on both sides, a match. Problem: extra type.
    expected_strict = {"Drug": (2, 0, 1), "Reason": (0, 0, 1), "Route": (0, 0, 1), "Strength": (0, 2, 1),
                       "Form": (0, 1, 0), "Frequency": (1, 0, 0), "ADE": (1, 0, 0), "Problem": (0, 1, 0)}
    assert {t: (r["tp"], r["fp"], r["fn"]) for t, r in strict["per_type"].items()} == expected_strict
    assert list(strict["per_type"]) == list(expected_strict)  # paper order, then others
    assert strict["micro"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 8, "tp": 4, "fp": 4, "fn": 4}
    assert strict["per_type"]["Drug"]["f1"] == approx(0.8)
    # Lenient: "81" overlaps "81 mg" (found), "mg" on the same gold span is dropped.
    assert (lenient["per_type"]["Strength"]["tp"], lenient["per_type"]["Strength"]["fp"]) == (1, 0)
    assert (lenient["micro"]["tp"], lenient["micro"]["fp"], lenient["micro"]["fn"]) == (5, 2, 3)
    assert lenient["micro"]["precision"] == approx(5 / 7)
    assert lenient["micro"]["recall"] == approx(5 / 8)
    assert lenient["micro"]["f1"] == approx(2 / 3)
    assert_plain(report)


def test_brat_malformed_prediction_lines_are_skipped_and_listed(brat_folders):
    gold, pred = brat_folders
    (pred / "doc1.ann").write_text(BRAT_DOC1_PRED + "T7\tDrug 40 30\treversed\nT8 no tabs here\n")
    report = score_brat_folders(gold, pred)
    assert [(s["document"], s["line"]) for s in report["skipped_prediction_lines"]] == [("doc1", 7), ("doc1", 8)]
    assert report["strict"]["micro"]["tp"] == 4 and report["strict"]["micro"]["fp"] == 4
    assert "reversed" not in json.dumps(report)
    (gold / "doc1.ann").write_text(BRAT_DOC1_GOLD + "T9 broken\n")
    with pytest.raises(BratFormatError, match="doc1.ann:8"):
        score_brat_folders(gold, pred)


def test_brat_entity_type_filter(brat_folders):
    report = score_brat_folders(*brat_folders, entity_types=["Drug"])
    assert list(report["strict"]["per_type"]) == ["Drug"]
    assert report["strict"]["micro"]["tp"] == 2 and report["strict"]["micro"]["fn"] == 1


def test_a_predicted_duplicate_counts_once_right_or_wrong(tmp_path):
    # Gold: aspirin (Drug), 81 mg (Strength). Predicted: aspirin twice (right), 81 twice (wrong strict, overlapping
    # lenient), PO as Route twice (no gold: wrong in both modes).
    gold, pred = tmp_path / "gold", tmp_path / "pred"
    gold.mkdir()
    pred.mkdir()
    (gold / "doc1.txt").write_text(BRAT_DOC1_TEXT)
    (gold / "doc1.ann").write_text("T1\tDrug 0 7\taspirin\nT2\tStrength 8 13\t81 mg\n")
    (pred / "doc1.ann").write_text("T1\tDrug 0 7\taspirin\nT2\tStrength 8 10\t81\nT3\tDrug 0 7\taspirin\n"
                                   "T4\tRoute 14 16\tPO\nT5\tStrength 8 10\t81\nT6\tRoute 14 16\tPO\n")
    report = score_brat_folders(gold, pred)
    # By hand, counting each distinct span once. Strict: Drug tp 1; Strength 81 fp 1, 81 mg fn 1; Route fp 1.
    strict = {t: (r["tp"], r["fp"], r["fn"]) for t, r in report["strict"]["per_type"].items()}
    assert strict == {"Drug": (1, 0, 0), "Strength": (0, 1, 1), "Route": (0, 1, 0)}
    assert report["strict"]["micro"]["precision"] == approx(1 / 3) and report["strict"]["micro"]["recall"] == 0.5
    # Lenient: 81 overlaps 81 mg (tp); Route PO fp once, not twice.
    lenient = {t: (r["tp"], r["fp"], r["fn"]) for t, r in report["lenient"]["per_type"].items()}
    assert lenient == {"Drug": (1, 0, 0), "Strength": (1, 0, 0), "Route": (0, 1, 0)}
    assert report["duplicate_entities"] == {"gold": 0, "pred": 3}
    assert report["num_pred_entities"] == 3


@pytest.mark.parametrize("seed", range(6))
def test_word_level_and_brat_character_level_agree(tmp_path, seed):
    """Round trip: text -> tokenize_words -> tags -> bio_to_char_spans -> write_brat_ann ->
    score_brat_folders gives the word-level entity scores, strict and lenient."""
    rng = random.Random(seed)
    vocabulary = ["aspirin", "81", "mg", "PO", "daily", ",", "pain", "(", "x", "nausea"]
    gold_dir, strict_dir, lenient_dir = (tmp_path / n for n in ("gold", "strict", "lenient"))
    gold_lenient_dir = tmp_path / "gold_lenient"
    for folder in (gold_dir, strict_dir, lenient_dir, gold_lenient_dir):
        folder.mkdir()
    all_gold, all_pred = [], []
    for doc in range(4):
        lines = [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 9)))
                 for _ in range(rng.randint(1, 4))]
        text = "\n".join(lines) + "\n"
        spans = {"gold": [], "pred": [], "gold_l": [], "pred_l": []}
        line_start = 0
        for line in lines:  # one sentence per line
            words = tokenize_words(text, line_start, line_start + len(line))
            line_start += len(line) + 1
            starts, ends = [w[1] for w in words], [w[2] for w in words]
            gold, pred = _random_tags(rng, len(words)), _random_tags(rng, len(words))
            all_gold.append(gold)
            all_pred.append(pred)
            for key, tags, strict in (("gold", gold, True), ("pred", pred, True),
                                      ("gold_l", gold, False), ("pred_l", pred, False)):
                spans[key] += bio_to_char_spans(tags, starts, ends, strict=strict)
        for folder, key in ((gold_dir, "gold"), (strict_dir, "pred"), (gold_lenient_dir, "gold_l"),
                            (lenient_dir, "pred_l")):
            (folder / f"doc{doc}.txt").write_text(text)
            write_brat_ann(folder / f"doc{doc}.ann", spans[key], text)

    for mode, gold_folder, pred_folder in (("strict", gold_dir, strict_dir),
                                           ("lenient", gold_lenient_dir, lenient_dir)):
        words = entity_scores(all_gold, all_pred, mode)
        chars = score_brat_folders(gold_folder, pred_folder)[mode]
        assert list(chars["per_type"]) == list(words["per_type"])
        for entity_type, row in words["per_type"].items():
            assert {k: chars["per_type"][entity_type][k] for k in row} == pytest.approx(row)
        for average in ("micro", "macro", "weighted"):
            assert {k: chars[average][k] for k in words[average]} == pytest.approx(words[average])


def test_score_entities_scores_documents_as_the_brat_folder_scorer_does(tmp_path):
    from clinical_ner_crf.brat import write_brat_ann
    from clinical_ner_crf.documents import BratDocument, BratEntity
    from clinical_ner_crf.n2c2_scoring import score_brat_folders, score_entities

    text = "Aspirin 81 mg daily for pain."
    gold = BratDocument("d1", text, [BratEntity("T1", "Drug", ((0, 7),), "Aspirin", 0),
                                     BratEntity("T2", "Strength", ((8, 13),), "81 mg", 0)])
    pred = BratDocument("d1", text, [BratEntity("T1", "Drug", ((0, 7),), "Aspirin", 0),
                                     BratEntity("T2", "Strength", ((8, 10),), "81", 0)])  # overlaps, not exact
    report = score_entities([gold], [pred])
    assert report["strict"]["micro"]["tp"] == 1 and report["strict"]["micro"]["fp"] == 1
    assert report["strict"]["micro"]["fn"] == 1 and report["lenient"]["micro"]["tp"] == 2
    assert score_entities([gold], [None])["strict"]["micro"]["fn"] == 2
    for folder, document in (("gold", gold), ("pred", pred)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "d1.txt").write_text(text)
        write_brat_ann(tmp_path / folder / "d1.ann", [(e.type, e.start, e.end) for e in document.entities], text)
    from_files = score_brat_folders(tmp_path / "gold", tmp_path / "pred")
    for mode in ("strict", "lenient"):
        assert from_files[mode]["micro"] == report[mode]["micro"]


@pytest.fixture
def brat_folders(tmp_path):
    gold, pred = tmp_path / "gold", tmp_path / "pred"
    gold.mkdir()
    pred.mkdir()
    for name, text, gold_ann, pred_ann in (("doc1", BRAT_DOC1_TEXT, BRAT_DOC1_GOLD, BRAT_DOC1_PRED),
                                           ("doc2", BRAT_DOC2_TEXT, BRAT_DOC2_GOLD, BRAT_DOC2_PRED),
                                           ("doc3", BRAT_DOC3_TEXT, BRAT_DOC3_GOLD, None)):
        (gold / f"{name}.txt").write_text(text)
        (gold / f"{name}.ann").write_text(gold_ann)
        if pred_ann is not None:
            (pred / f"{name}.ann").write_text(pred_ann)
    (pred / "extra.ann").write_text("T1\tDrug 0 3\tabc\n")
    return gold, pred


BRAT_DOC1_TEXT = "aspirin 81 mg PO daily for pain\n"


BRAT_DOC1_GOLD = """T1\tDrug 0 7\taspirin
T2\tStrength 8 13\t81 mg
T3\tRoute 14 16\tPO
T4\tFrequency 17 22\tdaily
T5\tReason 27 31\tpain
R1\tReason-Drug Arg1:T5 Arg2:T1
#1\tAnnotatorNotes T1\tchecked
"""


BRAT_DOC1_PRED = """T1\tDrug 0 7\taspirin
T2\tStrength 8 10\t81
T3\tStrength 11 13\tmg
T4\tForm 14 16\tPO
T5\tFrequency 17 22\tdaily
T6\tFrequency 17 22\tdaily
"""


BRAT_DOC2_TEXT = "Patient had nausea and\nvomiting due to morphine.\n"


BRAT_DOC2_GOLD = "T1\tADE 12 18;23 31\tnausea vomiting\nT2\tDrug 39 47\tmorphine\n"


BRAT_DOC2_PRED = "T1\tADE 12 22;23 31\tnausea and vomiting\nT2\tDrug 39 47\tmorphine\nT3\tProblem 0 7\tPatient\n"


BRAT_DOC3_TEXT = "Heparin 5000 units SC.\n"


BRAT_DOC3_GOLD = "T1\tDrug 0 7\tHeparin\n"


def _random_tags(rng, n):
    types = ("Drug", "Strength", "ADE")
    return [rng.choice(["O", "O", "O"] + [f"{p}-{t}" for p in "BI" for t in types]) for _ in range(n)]


def test_per_document_counts_add_up_to_the_micro_counts(relation_folders):
    """score_brat_folders(per_document=True): each gold note's micro (tp, fp, fn), strict and lenient, in gold file
    order, for entities and relations; summed over the notes they are the report's micro counts (a note without a
    prediction file is all false negatives)."""
    gold, pred = relation_folders
    report = score_brat_folders(gold, pred, per_document=True)
    per_document = report["per_document"]
    assert per_document["documents"] == ["doc1", "doc2", "doc3"]
    for level, section in (("entities", report), ("relations", report["relations"])):
        for mode in ("strict", "lenient"):
            counts = per_document[level][mode]
            assert len(counts) == 3
            micro = section[mode]["micro"]
            assert [sum(column) for column in zip(*counts)] == [micro["tp"], micro["fp"], micro["fn"]]
    assert per_document["entities"]["strict"][1][:2] == (0, 0)  # doc2 has no prediction file: no tp, no fp
    assert "per_document" not in score_brat_folders(gold, pred)
