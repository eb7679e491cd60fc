"""clinical_ner_crf/n2c2_scoring.py: entities and relations scored as the official n2c2 script scores them, checked by hand.

A relation is ``(type, arg1, arg2)``, each argument its entity's ``(type, first written start, last written
end)``; Arg1 is the attribute, Arg2 the drug. Strict: same relation type, arguments equal (entity type, start and
end); lenient: same relation type, arguments of the same entity type that overlap. Matching pares down like the
entity matcher. The last section: how the official script reads files and averages, and where the project differs.
"""

import json
import random

import pytest

from clinical_ner_crf.brat import read_brat_document, write_brat_ann
from clinical_ner_crf.documents import BratDocument, BratEntity, BratFormatError, BratRelation
from clinical_ner_crf.n2c2_scoring import (
    RELATION_SETTINGS, document_relations, match_relation_counts, score_brat_folders, score_relations,
)
from clinical_ner_crf.tagging import N2C2_ENTITY_TYPES, N2C2_RELATION_TYPES, bio_to_char_spans, tokenize_words
from clinical_ner_crf.token_metrics import entity_scores
from conftest import assert_plain, command

main = command("evaluate_ablations").main


def approx(value):
    return pytest.approx(value, abs=1e-9)


def counts(section):
    """The per-type rows that count something, ``{type: (tp, fp, fn)}`` (the rows are a fixed set of types: the
    others are zeros)."""
    return {name: (row["tp"], row["fp"], row["fn"]) for name, row in section["per_type"].items()
            if row["tp"] or row["fp"] or row["fn"]}


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
                 ("R5", "Strength-Drug", "T99", "T1")])  # unknown argument: one fp under no type (line 9)


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
#   doc3 R5 names no entity of its file: one more false positive in micro, under no type.
EXPECTED_STRICT = {"Strength-Drug": (3, 1, 2), "Dosage-Drug": (0, 1, 0), "Frequency-Drug": (0, 0, 1),
                   "Route-Drug": (0, 2, 2)}
EXPECTED_LENIENT = {**EXPECTED_STRICT, "Strength-Drug": (4, 0, 1)}


def test_relations_strict_and_lenient_by_hand(relation_folders):
    report = score_brat_folders(*relation_folders)
    relations = report["relations"]
    assert relations["setting"] == "end_to_end"
    assert relations["num_documents"] == 3
    assert relations["num_gold_relations"] == 8  # 5 + 1 + 2
    # 5 + 0 + 2 distinct (the unknown argument is no relation; doc3 R2 and R4 are exact repeats, counted once).
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
    # The gold uses n2c2 relation types: the rows are the eight, in the official order.
    assert list(strict["per_type"]) == list(N2C2_RELATION_TYPES)
    assert counts(lenient) == EXPECTED_LENIENT
    assert relations["unparseable_pred_lines"] == {"count": 1, "lines": [{"document": "doc3", "line": 9,
                                                                          "kind": "unknown_argument"}]}
    # Micro strict: tp 3, fp 4 + 1 unparseable, fn 5 (7 distinct predicted = 3 + 4; 8 gold = 3 + 5).
    assert strict["micro"] == {"precision": approx(3 / 8), "recall": 3 / 8, "f1": approx(3 / 8), "support": 8,
                               "tp": 3, "fp": 5, "fn": 5}
    assert lenient["micro"] == {"precision": approx(4 / 8), "recall": 0.5, "f1": approx(0.5), "support": 8,
                                "tp": 4, "fp": 4, "fn": 4}
    strength = strict["per_type"]["Strength-Drug"]
    assert (strength["precision"], strength["recall"], strength["f1"], strength["support"]) == \
        (approx(3 / 4), approx(3 / 5), approx(2 / 3), 5)
    assert lenient["per_type"]["Strength-Drug"]["f1"] == approx(8 / 9)  # P 1, R 4/5
    # The rows are the eight n2c2 relation types; the macro is over the four either side has (the others have no F1).
    assert strict["macro"]["f1"] == approx((2 / 3) / 4) and strict["macro"]["types"] == 4
    assert strict["per_type"]["Dosage-Drug"]["support"] == 0
    # Nothing is skipped: the unknown argument is counted (above), named by document, line and kind only.
    assert report["skipped_prediction_lines"] == []
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
    # Not a row of its own (the rows are the eight n2c2 types the gold uses): counted apart, a false positive in micro.
    assert counts(report["relations"]["strict"]) == {"Strength-Drug": (1, 0, 0)}
    assert report["relations"]["stray_pred_types"] == {"Dose-Of": 1}
    micro = report["relations"]["strict"]["micro"]
    assert (micro["tp"], micro["fp"], micro["fn"]) == (1, 1, 0)
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
    # Documents have no unparseable lines: leave out doc3's R5, whose argument is no entity of its file.
    (pred_dir / "doc3.ann").write_text(DOC3_PRED.split("R5\t")[0])
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
    # ADE: discontinuous spans collapse to 12..31 on both sides, a match. Problem: a type the gold does not have.
    expected_strict = {"Drug": (2, 0, 1), "Reason": (0, 0, 1), "Route": (0, 0, 1), "Strength": (0, 2, 1),
                       "Form": (0, 1, 0), "Frequency": (1, 0, 0), "ADE": (1, 0, 0)}
    assert counts(strict) == expected_strict
    assert list(strict["per_type"]) == list(N2C2_ENTITY_TYPES)  # the gold uses n2c2 types: the nine, paper order
    assert report["stray_pred_types"] == {"Problem": 1}  # not a row; a false positive in micro
    assert strict["micro"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 8, "tp": 4, "fp": 4, "fn": 4}
    assert strict["per_type"]["Drug"]["f1"] == approx(0.8)
    # Lenient: "81" overlaps "81 mg" (found), "mg" on the same gold span is dropped.
    assert (lenient["per_type"]["Strength"]["tp"], lenient["per_type"]["Strength"]["fp"]) == (1, 0)
    assert (lenient["micro"]["tp"], lenient["micro"]["fp"], lenient["micro"]["fn"]) == (5, 2, 3)
    assert lenient["micro"]["precision"] == approx(5 / 7)
    assert lenient["micro"]["recall"] == approx(5 / 8)
    assert lenient["micro"]["f1"] == approx(2 / 3)
    assert_plain(report)


def test_brat_malformed_prediction_lines_are_scored_or_counted_and_listed(brat_folders):
    gold, pred = brat_folders
    (pred / "doc1.ann").write_text(BRAT_DOC1_PRED + "T7\tDrug 40 30\treversed\nT8 no tabs here\n")
    report = score_brat_folders(gold, pred)
    # T7 has a type and offsets (start > end, past the text): scored, a false positive, and listed. T8 cannot be read:
    # one false positive under no type. Before: tp 4, fp 4.
    assert report["malformed_pred_lines"] == {"by_kind": {"malformed_line": 1},
                                              "lines": [{"document": "doc1", "line": 7, "kind": "malformed_line"}]}
    assert report["unparseable_pred_lines"] == {"count": 1, "lines": [{"document": "doc1", "line": 8,
                                                                       "kind": "malformed_line"}]}
    assert report["skipped_prediction_lines"] == []
    assert report["strict"]["micro"]["tp"] == 4 and report["strict"]["micro"]["fp"] == 6
    assert counts(report["strict"])["Drug"] == (2, 1, 1)
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
    assert counts(report["strict"]) == {"Drug": (1, 0, 0), "Strength": (0, 1, 1), "Route": (0, 1, 0)}
    assert report["strict"]["micro"]["precision"] == approx(1 / 3) and report["strict"]["micro"]["recall"] == 0.5
    # Lenient: 81 overlaps 81 mg (tp); Route PO fp once, not twice.
    assert counts(report["lenient"]) == {"Drug": (1, 0, 0), "Strength": (1, 0, 0), "Route": (0, 1, 0)}
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
        # The word-level scores are over the types of gold and predictions; the brat scorer's over a fixed set: here
        # the three types both can have.
        chars = score_brat_folders(gold_folder, pred_folder, entity_types=("Drug", "Strength", "ADE"))[mode]
        assert set(words["per_type"]) <= set(chars["per_type"])
        for entity_type, row in words["per_type"].items():
            assert {k: chars["per_type"][entity_type][k] for k in row} == pytest.approx(row)
        averages = ("micro", "macro", "weighted") if set(words["per_type"]) == set(chars["per_type"]) else ("micro",)
        for average in averages:
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
        # The same fixed types, macro and official per-document macro as the folder scorer.
        for key in ("per_type", "macro", "weighted", "per_document_macro"):
            assert from_files[mode][key] == report[mode][key], key


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
    # Per scored type, each document's counts: the eight n2c2 relation types; with the unparseable line (doc3's R5,
    # one fp under no type) they add up to each document's micro counts.
    relations_by_type = per_document["relations_by_type"]["strict"]
    assert list(relations_by_type) == list(N2C2_RELATION_TYPES)
    assert relations_by_type["Strength-Drug"] == [(2, 1, 1), (0, 0, 1), (1, 0, 0)]
    summed = [tuple(map(sum, zip(*rows))) for rows in zip(*relations_by_type.values())]
    assert [(tp, fp + extra, fn) for (tp, fp, fn), extra in zip(summed, (0, 0, 1))] == \
        list(per_document["relations"]["strict"])
    assert list(per_document["entities_by_type"]["lenient"]) == list(N2C2_ENTITY_TYPES)
    assert "per_document" not in score_brat_folders(gold, pred)


# ---------------------------------------------------------------------------
# As the official script (Track2-evaluate-ver4.py) reads and averages, and where the project differs: by hand
# ---------------------------------------------------------------------------


def write_brat(tmp_path, notes):
    """Gold and prediction folders from ``{name: (text, gold_ann, pred_ann)}``; ``pred_ann`` None: no prediction
    file."""
    gold, pred = tmp_path / "gold", tmp_path / "pred"
    gold.mkdir()
    pred.mkdir()
    for name, (text, gold_ann, pred_ann) in notes.items():
        (gold / f"{name}.txt").write_text(text)
        (gold / f"{name}.ann").write_text(gold_ann)
        if pred_ann is not None:
            (pred / f"{name}.ann").write_text(pred_ann)
    return gold, pred


def prf(row):
    return row["precision"], row["recall"], row["f1"]


def micro(section):
    return section["micro"]["tp"], section["micro"]["fp"], section["micro"]["fn"]


def test_type_macro_is_over_the_gold_types_and_a_stray_type_is_a_false_positive_counted_apart(tmp_path):
    # A corpus with types of its own (no n2c2 type): the rows are the gold's two types. "Aspirin 81 mg for headache":
    # Aspirin 0-7, 81 mg 8-13, headache 18-26.
    text = "Aspirin 81 mg for headache\n"
    gold, pred = write_brat(tmp_path, {"a": (
        text, "T1\tMedication 0 7\tAspirin\nT2\tDose 8 13\t81 mg\n",
        "T1\tMedication 0 7\tAspirin\nT2\tDose 8 10\t81\nT3\tSymptom 18 26\theadache\n")})
    report = score_brat_folders(gold, pred)
    strict, lenient = report["strict"], report["lenient"]
    assert list(strict["per_type"]) == ["Dose", "Medication"]  # the gold's types only, never Symptom
    assert report["stray_pred_types"] == {"Symptom": 1}
    # Strict: Medication (1, 0, 0) -> P R F 1; Dose "81" for "81 mg" (0, 1, 1) -> 0. Macro over the two: 1/2 each
    # (with Symptom, (0, 1, 0), it would be 1/3). Micro: tp 1, fp 2 (81 and the stray Symptom), fn 1:
    # P 1/3, R 1/2, F 2 * 1/3 * 1/2 / (1/3 + 1/2) = 2/5.
    assert counts(strict) == {"Dose": (0, 1, 1), "Medication": (1, 0, 0)}
    assert prf(strict["macro"]) == (approx(1 / 2), approx(1 / 2), approx(1 / 2))
    assert micro(strict) == (1, 2, 1)
    assert prf(strict["micro"]) == (approx(1 / 3), approx(1 / 2), approx(2 / 5))
    # Lenient: "81" overlaps "81 mg": both types (1, 0, 0), macro 1; micro tp 2, fp 1 (Symptom), fn 0:
    # P 2/3, R 1, F 2 * 2/3 / (5/3) = 4/5.
    assert prf(lenient["macro"]) == (1.0, 1.0, 1.0)
    assert micro(lenient) == (2, 1, 0)
    assert prf(lenient["micro"]) == (approx(2 / 3), 1.0, approx(4 / 5))


def test_n2c2_gold_gets_the_nine_rows_and_a_type_neither_side_has_stays_out_of_the_macro(tmp_path):
    # n2c2 gold with Drug and Strength only; the system also writes a Form (an n2c2 type the gold lacks) and a Symptom.
    text = "Aspirin 81 mg tab for headache\n"  # Aspirin 0-7, 81 mg 8-13, tab 14-17, headache 22-30
    gold, pred = write_brat(tmp_path, {"a": (
        text, "T1\tDrug 0 7\tAspirin\nT2\tStrength 8 13\t81 mg\n",
        "T1\tDrug 0 7\tAspirin\nT2\tStrength 8 13\t81 mg\nT3\tForm 14 17\ttab\nT4\tSymptom 22 30\theadache\n")})
    strict = score_brat_folders(gold, pred)["strict"]
    assert list(strict["per_type"]) == list(N2C2_ENTITY_TYPES)  # every n2c2 row, zeros included; never Symptom
    # Drug and Strength F1 1, Form (0, 1, 0) F1 0: macro (1 + 1 + 0) / 3. The six types nobody has are rows of zeros
    # but no F1 to average (counted, they would make it 2/9).
    assert strict["macro"]["f1"] == approx(2 / 3) and strict["macro"]["types"] == 3
    assert strict["per_type"]["ADE"]["f1"] == 0.0 and strict["per_type"]["ADE"]["support"] == 0
    # Micro: tp 2, fp 2 (Form, Symptom), fn 0: P 1/2, R 1, F 2/3.
    assert micro(strict) == (2, 2, 0) and strict["micro"]["f1"] == approx(2 / 3)


def test_per_document_macro_is_the_mean_of_each_documents_scores(tmp_path):
    gold, pred = write_brat(tmp_path, {
        # a: all three right: (3, 0, 0) -> P 1, R 1, F 1.
        "a": ("Aspirin 81 mg daily\n", "T1\tDrug 0 7\tAspirin\nT2\tStrength 8 13\t81 mg\nT3\tFrequency 14 19\tdaily\n",
              "T1\tDrug 0 7\tAspirin\nT2\tStrength 8 13\t81 mg\nT3\tFrequency 14 19\tdaily\n"),
        # b: the drug right, 5000 units given as a Route: (1, 1, 2) -> P 1/2, R 1/3, F 2 * 1/6 / (5/6) = 2/5.
        "b": ("Heparin 5000 units SC\n", "T1\tDrug 0 7\tHeparin\nT2\tStrength 8 18\t5000 units\nT3\tRoute 19 21\tSC\n",
              "T1\tDrug 0 7\tHeparin\nT2\tRoute 8 18\t5000 units\n"),
        # c: an empty prediction file: (0, 0, 1) -> P 0 (nothing predicted), R 0, F 0.
        "c": ("Tylenol PRN\n", "T1\tDrug 0 7\tTylenol\n", ""),
    })
    report = score_brat_folders(gold, pred, per_document=True)
    for mode in ("strict", "lenient"):  # no overlap changes anything here
        section = report[mode]
        # Micro: tp 4, fp 1, fn 3 -> P 4/5, R 4/7, F 2 * 16/35 / (48/35) = 2/3.
        assert micro(section) == (4, 1, 3)
        assert prf(section["micro"]) == (approx(4 / 5), approx(4 / 7), approx(2 / 3))
        # The official macro: P (1 + 1/2 + 0) / 3 = 1/2, R (1 + 1/3 + 0) / 3 = 4/9, F (1 + 2/5 + 0) / 3 = 7/15.
        by_document = section["per_document_macro"]
        assert prf(by_document) == (approx(1 / 2), approx(4 / 9), approx(7 / 15))
        assert by_document["documents"] == 3
        # Per type, every document counts, with 0 where it has nothing of the type. Drug: a 1, b 1, c (0, 0, 1) 0
        # -> 2/3. Strength: a 1, b (0, 0, 1) 0, c (0, 0, 0) 0 -> 1/3. Dosage: nobody -> 0.
        assert prf(by_document["per_type"]["Drug"]) == (approx(2 / 3),) * 3
        assert prf(by_document["per_type"]["Strength"]) == (approx(1 / 3),) * 3
        assert prf(by_document["per_type"]["Dosage"]) == (0.0, 0.0, 0.0)
        assert list(by_document["per_type"]) == list(N2C2_ENTITY_TYPES)
    # Each document's counts per scored type, for per-type significance tests.
    per_document = report["per_document"]
    assert per_document["entities"]["strict"] == [(3, 0, 0), (1, 1, 2), (0, 0, 1)]
    by_type = per_document["entities_by_type"]["strict"]
    assert list(by_type) == list(N2C2_ENTITY_TYPES)
    assert by_type["Drug"] == [(1, 0, 0), (1, 0, 0), (0, 0, 1)]
    assert by_type["Route"] == [(0, 0, 0), (0, 1, 1), (0, 0, 0)]
    assert by_type["Dosage"] == [(0, 0, 0)] * 3
    assert "relations_by_type" not in per_document  # no gold relations


def test_a_prediction_past_the_end_of_the_text_is_a_false_positive_and_listed(tmp_path):
    text = "Aspirin 81 mg\n"  # 14 characters
    gold, pred = write_brat(tmp_path, {"a": (text, "T1\tDrug 0 7\tAspirin\n",
                                             "T1\tDrug 0 7\tAspirin\nT2\tStrength 8 40\t81 mg\n")})
    report = score_brat_folders(gold, pred)
    # Scored as the official script scores it (it never reads the text): tp 1, fp 1, fn 0 -> P 1/2, R 1, F 2/3.
    for mode in ("strict", "lenient"):
        assert micro(report[mode]) == (1, 1, 0)
        assert prf(report[mode]["micro"]) == (approx(1 / 2), 1.0, approx(2 / 3))
    assert report["malformed_pred_lines"] == {
        "by_kind": {"offsets_out_of_range": 1}, "lines": [{"document": "a", "line": 2, "kind": "offsets_out_of_range"}]}
    assert report["unparseable_pred_lines"] == {"count": 0, "lines": []}
    assert report["skipped_prediction_lines"] == []


def test_of_two_lines_with_one_id_the_last_is_scored(tmp_path):
    text = "Aspirin 81 mg\n"
    gold, pred = write_brat(tmp_path, {"a": (
        text, "T1\tDrug 0 7\tAspirin\nT2\tStrength 8 13\t81 mg\nR1\tStrength-Drug Arg1:T2 Arg2:T1\n",
        "T1\tDrug 8 13\t81 mg\n"  # line 1: replaced by line 3
        "T2\tStrength 8 13\t81 mg\n"
        "T1\tDrug 0 7\tAspirin\n"  # line 3: T1 is this one
        "R1\tStrength-Drug Arg1:T1 Arg2:T2\n"  # line 4: replaced by line 5
        "R1\tStrength-Drug Arg1:T2 Arg2:T1\n")})
    report = score_brat_folders(gold, pred)
    # Last wins: Drug 0-7 and Strength 8-13, both right: tp 2, fp 0, fn 0 (the first T1 kept would give Drug 8-13:
    # tp 1, fp 1, fn 1). The relation likewise: tp 1 (the first R1 has its arguments reversed).
    assert counts(report["strict"]) == {"Drug": (1, 0, 0), "Strength": (1, 0, 0)}
    assert micro(report["strict"]) == (2, 0, 0)
    assert micro(report["relations"]["strict"]) == (1, 0, 0)
    assert report["relations"]["invalid_pred_relations"]["lines"] == []
    # The replaced lines are not scored; the lines that replace them are scored, and listed.
    assert report["skipped_prediction_lines"] == [{"document": "a", "line": 1, "kind": "duplicate_id"},
                                                  {"document": "a", "line": 4, "kind": "duplicate_id"}]
    assert report["malformed_pred_lines"]["lines"] == [{"document": "a", "line": 3, "kind": "duplicate_id"},
                                                       {"document": "a", "line": 5, "kind": "duplicate_id"}]


def test_fragments_are_read_from_the_first_written_start_to_the_last_written_end(tmp_path):
    text = "".join(f"word{index:02d} " for index in range(12)) + "\n"  # 85 characters: 10-20 and 50-60 in it
    gold_ann = "T1\tADE 50 60;10 20\tfirst second\n"
    # Written in the same order: both read as 50..20, a strict match. The official lenient test (gold end > system
    # start and gold start < system end) never holds for a span that ends before it starts: lenient, it is a false
    # positive and a miss, as in the official script.
    gold, pred = write_brat(tmp_path, {"a": (text, gold_ann, gold_ann)})
    report = score_brat_folders(gold, pred)
    assert micro(report["strict"]) == (1, 0, 0)
    assert micro(report["lenient"]) == (0, 1, 1)
    # Written the other way round, 10..60: strict no match (fp 1, fn 1); lenient 20 > 10 and 50 < 60, a match.
    (pred / "a.ann").write_text("T1\tADE 10 20;50 60\tsecond first\n")
    report = score_brat_folders(gold, pred)
    assert micro(report["strict"]) == (0, 1, 1)
    assert micro(report["lenient"]) == (1, 0, 0)
    # Neither is malformed in brat.
    assert report["malformed_pred_lines"]["lines"] == [] and report["unparseable_pred_lines"]["count"] == 0


def test_a_note_without_a_prediction_file_is_missed_by_default_and_skipped_with_official(tmp_path):
    gold, pred = write_brat(tmp_path, {
        "a": ("Aspirin 81 mg\n", "T1\tDrug 0 7\tAspirin\nT2\tStrength 8 13\t81 mg\n", "T1\tDrug 0 7\tAspirin\n"),
        "b": ("Heparin SC\n", "T1\tDrug 0 7\tHeparin\nT2\tRoute 8 10\tSC\n", None),  # no prediction file
    })
    project = score_brat_folders(gold, pred)
    # a: (1, 0, 1); b: (0, 0, 2). Micro tp 1, fp 0, fn 3 -> P 1, R 1/4, F 2 * 1/4 / (5/4) = 2/5.
    assert project["semantics"] == "project"
    assert (project["num_documents"], project["num_gold_documents"]) == (2, 2)
    assert micro(project["strict"]) == (1, 0, 3)
    assert prf(project["strict"]["micro"]) == (1.0, approx(1 / 4), approx(2 / 5))
    # Per document: a P 1, R 1/2, F 2/3; b 0, 0, 0 -> 1/2, 1/4, 1/3.
    assert prf(project["strict"]["per_document_macro"]) == (approx(1 / 2), approx(1 / 4), approx(1 / 3))
    assert project["missing_predictions"] == ["b"] and project["num_missing_predictions"] == 1
    assert project["notes"][0].startswith("Semantics: project")
    assert "1 of 2 gold notes have no prediction file: all their gold counted as missed." in project["notes"][0]

    official = score_brat_folders(gold, pred, official=True, per_document=True)
    # b is left out of every count: a alone, tp 1, fp 0, fn 1 -> P 1, R 1/2, F 2/3, and the same per document.
    assert official["semantics"] == "official"
    assert (official["num_documents"], official["num_gold_documents"]) == (1, 2)
    assert official["missing_predictions"] == ["b"] and official["num_missing_predictions"] == 1
    assert (official["num_gold_entities"], official["num_pred_entities"]) == (2, 1)
    assert micro(official["strict"]) == (1, 0, 1)
    assert prf(official["strict"]["micro"]) == (1.0, approx(1 / 2), approx(2 / 3))
    assert prf(official["strict"]["per_document_macro"]) == (1.0, approx(1 / 2), approx(2 / 3))
    assert official["per_document"]["documents"] == ["a"]
    assert official["notes"][0].startswith("Semantics: official")
    assert "1 of 2 gold notes have no prediction file: skipped." in official["notes"][0]


def test_official_counts_every_copy_of_a_duplicate(tmp_path):
    text = "Aspirin 81 mg\n"
    gold, pred = write_brat(tmp_path, {"a": (
        text, "T1\tDrug 0 7\tAspirin\nT2\tDrug 0 7\tAspirin\nT3\tStrength 8 13\t81 mg\n",  # a gold copy
        "T1\tDrug 0 7\tAspirin\nT2\tDrug 0 7\tAspirin\nT3\tRoute 8 13\t81 mg\nT4\tRoute 8 13\t81 mg\n")})
    # Project: each distinct once. Gold {Drug, Strength}, predicted {Drug, Route}: tp 1, fp 1, fn 1 -> 1/2 each.
    project = score_brat_folders(gold, pred)
    assert micro(project["strict"]) == (1, 1, 1)
    assert prf(project["strict"]["micro"]) == (approx(1 / 2),) * 3
    assert (project["num_gold_entities"], project["num_pred_entities"]) == (2, 2)
    # Official: the first predicted Drug finds both gold copies (tp 1), the second is dropped by the pare-down; the
    # second gold copy is a miss (fn 1), Strength too (fn 1); each Route copy a false positive (fp 2):
    # tp 1, fp 2, fn 2 -> 1/3 each.
    official = score_brat_folders(gold, pred, official=True)
    assert counts(official["strict"]) == {"Drug": (1, 0, 1), "Strength": (0, 0, 1), "Route": (0, 2, 0)}
    assert prf(official["strict"]["micro"]) == (approx(1 / 3),) * 3
    assert (official["num_gold_entities"], official["num_pred_entities"]) == (3, 4)
    assert official["duplicate_entities"] == project["duplicate_entities"] == {"gold": 1, "pred": 2}


def test_an_unparseable_prediction_line_is_one_false_positive(tmp_path):
    text = "Aspirin 81 mg\n"
    gold, pred = write_brat(tmp_path, {"a": (text, "T1\tDrug 0 7\tAspirin\n", "T1\tDrug 0 7\tAspirin\n")})
    clean = score_brat_folders(gold, pred)
    assert prf(clean["strict"]["micro"]) == (1.0, 1.0, 1.0)
    # Line 2 has a type but no offsets; line 3 is no annotation at all. Each one false positive under no type:
    # tp 1, fp 2, fn 0 -> P 1/3, R 1, F 2 * 1/3 / (4/3) = 1/2; never more than the clean file's.
    (pred / "a.ann").write_text("T1\tDrug 0 7\tAspirin\nT2\tDrug\tno offsets\nnot an annotation\n")
    report = score_brat_folders(gold, pred, per_document=True)
    for mode in ("strict", "lenient"):
        assert micro(report[mode]) == (1, 2, 0)
        assert prf(report[mode]["micro"]) == (approx(1 / 3), 1.0, approx(1 / 2))
        assert counts(report[mode]) == {"Drug": (1, 0, 0)}  # under no type
    assert report["unparseable_pred_lines"] == {"count": 2, "lines": [
        {"document": "a", "line": 2, "kind": "malformed_line"}, {"document": "a", "line": 3, "kind": "malformed_line"}]}
    assert report["per_document"]["entities"]["strict"] == [(1, 2, 0)]  # the documents still sum to micro
    assert report["strict"]["per_document_macro"]["precision"] == approx(1 / 3)
