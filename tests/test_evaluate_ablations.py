"""Hand-computed checks of every number evaluate_ablations.py reports (issue 5)."""

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from clinical_ner_crf.brat import write_brat_ann
from clinical_ner_crf.documents import BratFormatError
from clinical_ner_crf.files import (
    PREDICTIONS_DIRNAME, REPORT_JSON_FILE, REPORT_MARKDOWN_FILE, RUN_INFO_FILE, TEST_PREDICTIONS_FILE,
    run_predictions_path, write_json_atomically,
)
from clinical_ner_crf.folder_safety import MANIFEST_FILE, Manifest
from clinical_ner_crf.metrics import (
    LENIENT_MICRO_F1, STRICT_MACRO_F1, STRICT_MICRO_F1, entity_view, metric_name, summarize_counts, type_metric_name,
)
from clinical_ner_crf.n2c2_scoring import score_brat_folders
from clinical_ner_crf.prediction_records import (
    PredictionFormatError, prediction_record, read_predictions, write_predictions_file,
)
from clinical_ner_crf.reports import (
    aggregate_runs, flat_metrics, plot_confusion_matrix, render_comparison_markdown, render_run_markdown,
)
from clinical_ner_crf.tagging import N2C2_ENTITY_TYPES, bio_to_char_spans, bio_to_spans, tokenize_words
from clinical_ner_crf.token_metrics import (
    ENTITY_MODES, TAG_VIEWS, entity_scores, evaluate_run, match_counts, ner_metrics, paper_ablations, tag_confusion,
    tag_scores, top_confusions,
)
from clinical_ner_crf import reports
from conftest import REPO_ROOT, command


main = command("evaluate_ablations").main


def approx(value):
    return pytest.approx(value, abs=1e-9)


def assert_plain(obj):
    """Results hold plain Python numbers, never numpy scalars."""
    if isinstance(obj, dict):
        for value in obj.values():
            assert_plain(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            assert_plain(value)
    else:
        assert obj is None or type(obj) in (float, int, str, bool), type(obj)


# ---------------------------------------------------------------------------
# Entity level
# ---------------------------------------------------------------------------


def test_entity_starting_with_i_is_no_entity_when_strict_but_found_when_lenient():
    gold = [["B-Drug", "I-Drug", "O"]]
    pred = [["I-Drug", "I-Drug", "O"]]
    strict = entity_scores(gold, pred, "strict")
    assert strict["micro"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    lenient = entity_scores(gold, pred, "lenient")
    assert lenient["micro"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}


def test_boundary_off_by_one_word():
    gold = [["B-Strength", "I-Strength", "O", "O"]]
    pred = [["B-Strength", "I-Strength", "I-Strength", "O"]]
    assert entity_scores(gold, pred, "strict")["per_type"]["Strength"]["f1"] == 0.0
    assert entity_scores(gold, pred, "lenient")["per_type"]["Strength"]["f1"] == 1.0
    # Starting one word late: still an overlap.
    pred = [["O", "B-Strength", "O", "O"]]
    assert entity_scores(gold, pred, "strict")["micro"]["f1"] == 0.0
    assert entity_scores(gold, pred, "lenient")["micro"]["f1"] == 1.0


def test_type_mismatch_matches_neither_way():
    gold, pred = [["B-ADE", "I-ADE"]], [["B-Reason", "I-Reason"]]
    for mode in ("strict", "lenient"):
        scores = entity_scores(gold, pred, mode)
        assert scores["per_type"]["ADE"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
        assert scores["per_type"]["Reason"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
        assert scores["micro"]["f1"] == 0.0


def test_entity_micro_macro_weighted_by_hand():
    gold = [["B-Drug", "O", "B-Drug", "O", "B-Strength", "I-Strength"], ["B-Drug", "O", "B-Route"]]
    pred = [["B-Drug", "O", "O", "O", "B-Strength", "I-Strength"], ["B-Drug", "B-Route", "B-Route"]]
    # Drug: 3 gold, 2 predicted, 2 right. Strength: 1/1/1. Route: 1 gold, 2 predicted, 1 right.
    for mode in ("strict", "lenient"):
        scores = entity_scores(gold, pred, mode)
        assert list(scores["per_type"]) == ["Drug", "Route", "Strength"]  # paper order
        assert scores["per_type"]["Drug"] == {"precision": 1.0, "recall": approx(2 / 3), "f1": approx(0.8), "support": 3}
        assert scores["per_type"]["Route"] == {"precision": 0.5, "recall": 1.0, "f1": approx(2 / 3), "support": 1}
        assert scores["micro"] == {"precision": approx(0.8), "recall": approx(0.8), "f1": approx(0.8), "support": 5}
        assert scores["macro"]["precision"] == approx((1 + 1 + 0.5) / 3)
        assert scores["macro"]["recall"] == approx((2 / 3 + 1 + 1) / 3)
        assert scores["macro"]["f1"] == approx((0.8 + 1 + 2 / 3) / 3)
        assert scores["weighted"]["precision"] == approx((3 * 1 + 1 + 0.5) / 5)
        assert scores["weighted"]["recall"] == approx((3 * 2 / 3 + 1 + 1) / 5)
        assert scores["weighted"]["f1"] == approx((3 * 0.8 + 1 + 2 / 3) / 5)
        assert_plain(scores)


def test_lenient_several_predictions_on_one_gold_count_once():
    gold = [["B-Strength", "I-Strength", "I-Strength", "I-Strength"]]
    pred = [["B-Strength", "I-Strength", "B-Strength", "I-Strength"]]
    lenient = entity_scores(gold, pred, "lenient")
    # n2c2 script: the second prediction on the same gold span is dropped, not a false positive.
    assert lenient["micro"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    strict = entity_scores(gold, pred, "strict")
    assert (strict["micro"]["precision"], strict["micro"]["recall"]) == (0.0, 0.0)


def test_lenient_one_prediction_over_two_golds_finds_one():
    # n2c2 script: tp counts system spans, fn = gold - tp.
    lenient = entity_scores([["B-Drug", "B-Drug"]], [["B-Drug", "I-Drug"]], "lenient")
    assert lenient["micro"]["precision"] == 1.0
    assert lenient["micro"]["recall"] == 0.5


def test_match_counts_follows_official_script_corner_case():
    gold = [("Drug", 0, 5), ("Drug", 6, 10)]
    pred = [("Drug", 0, 3), ("Drug", 2, 8)]
    # The second prediction hits an already matched gold: the script drops it, and the
    # second gold, marked matched on the way, stays unfound.
    assert match_counts(gold, pred, "lenient") == {"Drug": {"tp": 1, "fp": 0, "fn": 1}}
    assert match_counts(gold, pred, "strict") == {"Drug": {"tp": 0, "fp": 2, "fn": 2}}
    with pytest.raises(ValueError):
        match_counts(gold, pred, "partial")


def test_no_entities_anywhere_gives_zeros_not_nan():
    for mode in ("strict", "lenient"):
        scores = entity_scores([["O", "O"]], [["O", "O"]], mode)
        assert scores["per_type"] == {}
        assert scores["macro"]["f1"] == 0.0
        assert_plain(scores)


tag_strategy = st.sampled_from(["O", "O", "B-Drug", "I-Drug", "B-ADE", "I-ADE", "B-Reason", "I-Reason"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=8), min_size=1, max_size=5).flatmap(
    lambda lengths: st.tuples(*[st.tuples(st.lists(tag_strategy, min_size=n, max_size=n),
                                          st.lists(tag_strategy, min_size=n, max_size=n)) for n in lengths])))
def test_seqeval_strict_equals_exact_span_counting(pairs):
    gold, pred = [list(g) for g, _ in pairs], [list(p) for _, p in pairs]
    counts = {}
    for g, p in zip(gold, pred):
        for entity_type, row in match_counts(bio_to_spans(g, strict=True), bio_to_spans(p, strict=True)).items():
            total = counts.setdefault(entity_type, {"tp": 0, "fp": 0, "fn": 0})
            for key in total:
                total[key] += row[key]
    ours, seqeval = summarize_counts(counts), entity_scores(gold, pred, "strict")
    assert list(ours["per_type"]) == list(seqeval["per_type"])
    for name in ours["per_type"]:
        assert ours["per_type"][name] == pytest.approx(seqeval["per_type"][name])
    for average in ("micro", "macro", "weighted"):
        assert ours[average] == pytest.approx(seqeval[average])


def test_mismatched_lengths_and_bad_tags_are_errors():
    with pytest.raises(ValueError, match="sentence 1"):
        entity_scores([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="sentences"):
        tag_scores([["O"]], [])
    with pytest.raises(ValueError, match="IOB2"):
        tag_scores([["S-Drug"]], [["O"]])


# ---------------------------------------------------------------------------
# Tag level, ablations, confusions
# ---------------------------------------------------------------------------


def test_bio_strict_micro_macro_weighted_by_hand():
    gold = [["B-Drug", "I-Drug", "O", "O", "B-ADE"]]
    pred = [["B-Drug", "O", "O", "B-Drug", "B-Reason"]]
    scores = tag_scores(gold, pred, "bio")
    # O: 1 of 2 predicted right, 1 of 2 found; B-Drug: 1/2 P, 1/1 R; I-Drug, B-Reason, B-ADE: 0.
    assert list(scores["per_type"]) == ["O", "B-Drug", "I-Drug", "B-Reason", "B-ADE"]
    assert scores["per_type"]["O"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert scores["per_type"]["B-Drug"] == {"precision": 0.5, "recall": 1.0, "f1": approx(2 / 3), "support": 1}
    assert scores["per_type"]["B-Reason"]["support"] == 0
    assert scores["micro"] == {"precision": approx(0.4), "recall": approx(0.4), "f1": approx(0.4), "support": 5}
    assert scores["accuracy"] == approx(0.4)
    assert scores["macro"]["precision"] == approx((0.5 + 0.5) / 5)
    assert scores["macro"]["recall"] == approx((0.5 + 1.0) / 5)
    assert scores["macro"]["f1"] == approx((0.5 + 2 / 3) / 5)
    assert scores["weighted"]["precision"] == approx((2 * 0.5 + 0.5) / 5)
    assert scores["weighted"]["recall"] == approx((2 * 0.5 + 1.0) / 5)
    assert scores["weighted"]["f1"] == approx((2 * 0.5 + 2 / 3) / 5)
    assert_plain(scores)


# Token level: gold Drug Drug O ADE Reason O, predicted Drug O Drug Reason Reason Drug.
ABLATION_GOLD = [["B-Drug", "I-Drug", "O", "B-ADE", "B-Reason", "O"]]
ABLATION_PRED = [["B-Drug", "O", "B-Drug", "B-Reason", "B-Reason", "B-Drug"]]


def test_token_level_strips_prefixes():
    scores = tag_scores(ABLATION_GOLD, ABLATION_PRED, "token")
    assert list(scores["per_type"]) == ["O", "Drug", "Reason", "ADE"]
    # Drug: gold words 0,1; predicted 0,2,5. O: gold 2,5; predicted 1. Reason: gold 4; predicted 3,4.
    assert scores["per_type"]["Drug"] == {"precision": approx(1 / 3), "recall": 0.5, "f1": approx(0.4), "support": 2}
    assert scores["per_type"]["O"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert scores["per_type"]["Reason"] == {"precision": 0.5, "recall": 1.0, "f1": approx(2 / 3), "support": 1}
    assert scores["accuracy"] == approx(2 / 6)
    assert scores["macro"]["f1"] == approx((0.4 + 2 / 3) / 4)


def test_paper_ablations_by_hand():
    ablations = {name: (exclude, merge) for name, exclude, merge in paper_ablations(N2C2_ENTITY_TYPES)}
    assert list(ablations) == ["remove_O", "remove_ADE_Reason", "remove_O_ADE_Reason", "merge_ADE_into_Reason"]

    def run(name):
        exclude, merge = ablations[name]
        return tag_scores(ABLATION_GOLD, ABLATION_PRED, "token", exclude_labels=exclude, merge=merge)

    # Remove O: labels Drug, Reason, ADE; true positives 1 + 1 + 0 out of 3 + 2 + 0 predicted
    # and 2 + 1 + 1 gold words. The O word predicted Drug still counts against Drug.
    scores = run("remove_O")
    assert list(scores["per_type"]) == ["Drug", "Reason", "ADE"]
    assert scores["micro"]["precision"] == approx(2 / 5)
    assert scores["micro"]["recall"] == approx(2 / 4)
    assert scores["micro"]["f1"] == approx(2 * 0.4 * 0.5 / 0.9)
    assert scores["macro"]["precision"] == approx((1 / 3 + 1 / 2 + 0) / 3)
    assert scores["macro"]["recall"] == approx((1 / 2 + 1 + 0) / 3)
    assert scores["macro"]["f1"] == approx((0.4 + 2 / 3 + 0) / 3)
    assert scores["weighted"]["precision"] == approx((2 / 3 + 1 / 2 + 0) / 4)
    assert scores["weighted"]["recall"] == approx((1 + 1 + 0) / 4)
    assert scores["weighted"]["f1"] == approx((0.8 + 2 / 3 + 0) / 4)
    assert scores["accuracy"] == approx(2 / 6)  # over every word

    # Remove ADE and Reason: labels O, Drug; 0 + 1 right of 1 + 3 predicted, 2 + 2 gold.
    scores = run("remove_ADE_Reason")
    assert list(scores["per_type"]) == ["O", "Drug"]
    assert scores["micro"] == {"precision": approx(0.25), "recall": approx(0.25), "f1": approx(0.25), "support": 4}
    assert scores["macro"]["precision"] == approx(1 / 6)
    assert scores["macro"]["recall"] == approx(0.25)
    assert scores["macro"]["f1"] == approx(0.2)
    assert scores["weighted"]["f1"] == approx(0.2)

    # Remove O, ADE and Reason: Drug alone.
    scores = run("remove_O_ADE_Reason")
    for average in ("micro", "macro", "weighted"):
        assert scores[average] == {"precision": approx(1 / 3), "recall": 0.5, "f1": approx(0.4), "support": 2}

    # Merge ADE into Reason: gold Reason words 3,4 both predicted Reason.
    scores = run("merge_ADE_into_Reason")
    assert list(scores["per_type"]) == ["O", "Drug", "Reason"]
    assert scores["per_type"]["Reason"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert scores["micro"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 6}
    assert scores["accuracy"] == 0.5
    assert scores["macro"]["precision"] == approx((0 + 1 / 3 + 1) / 3)
    assert scores["macro"]["recall"] == approx((0 + 0.5 + 1) / 3)
    assert scores["macro"]["f1"] == approx((0 + 0.4 + 1) / 3)


def test_paper_ablations_without_ade_and_reason_only_remove_o():
    assert paper_ablations(["Gene"]) == [("remove_O", ("O",), None)]


def test_excluding_a_type_at_bio_level_drops_both_tags():
    scores = tag_scores(ABLATION_GOLD, ABLATION_PRED, "bio", exclude_labels=("ADE", "O"))
    assert list(scores["per_type"]) == ["B-Drug", "I-Drug", "B-Reason"]


def test_confusion_matrix_and_top_confusions():
    confusion = tag_confusion(ABLATION_GOLD, ABLATION_PRED, "bio")
    labels = confusion["labels"]
    assert labels == ["O", "B-Drug", "I-Drug", "B-Reason", "B-ADE"]
    cell = {(g, p): confusion["matrix"][i][j] for i, g in enumerate(labels) for j, p in enumerate(labels)}
    assert cell[("O", "B-Drug")] == 2
    assert cell[("B-Drug", "B-Drug")] == 1
    assert cell[("I-Drug", "O")] == 1
    assert cell[("B-ADE", "B-Reason")] == 1
    assert sum(map(sum, confusion["matrix"])) == 6
    top = top_confusions(confusion, k=2)
    assert top == [{"gold": "O", "pred": "B-Drug", "count": 2}, {"gold": "I-Drug", "pred": "O", "count": 1}]


def test_metric_names():
    assert STRICT_MICRO_F1 == metric_name(entity_view("strict"), "micro") == "entity_strict_micro_f1"
    assert STRICT_MACRO_F1 == "entity_strict_macro_f1"
    assert LENIENT_MICRO_F1 == "entity_lenient_micro_f1"
    assert metric_name("entity_strict", "micro", "p") == "entity_strict_micro_p"
    assert metric_name("bio", "macro") == "bio_macro_f1"
    assert type_metric_name("Drug") == "entity_strict_Drug_f1"
    for view, average, stat in (("bio", "mean", "f1"), ("bio", "macro", "precision")):
        with pytest.raises(ValueError, match="no metric"):
            metric_name(view, average, stat)


def test_ner_metrics_flat_plain_floats():
    metrics = ner_metrics(ABLATION_GOLD, ABLATION_PRED)
    assert set(metrics) == {
        "entity_strict_micro_p", "entity_strict_micro_r", "entity_strict_micro_f1", "entity_strict_macro_f1",
        "entity_strict_weighted_f1", "entity_lenient_micro_f1", "token_macro_f1",
        "entity_strict_Drug_f1", "entity_strict_Reason_f1", "entity_strict_ADE_f1"}
    assert all(type(value) is float for value in metrics.values())
    # Strict entities: gold Drug(0-2), ADE(3), Reason(4); predicted Drug(0), Drug(2), Reason(3), Reason(4), Drug(5).
    assert metrics["entity_strict_micro_p"] == approx(1 / 5)
    assert metrics["entity_strict_micro_r"] == approx(1 / 3)
    assert metrics[type_metric_name("Reason")] == approx(2 / 3)
    # Lenient: Drug(0) overlaps gold Drug; Reason(4) matches; 2 right of 5 kept, 2 of 3 found.
    assert metrics[LENIENT_MICRO_F1] == approx(2 * 0.4 * (2 / 3) / (0.4 + 2 / 3))
    assert metrics["token_macro_f1"] == approx((0.4 + 2 / 3) / 4)


def test_ner_metrics_names_are_those_of_the_reports():
    """compute_metrics and the reports name a number alike: ner_metrics' keys are flat_metrics'
    keys of the same predictions, plus the per-type strict F1."""
    rows = [{"tokens": ["w"] * 6, "gold_tags": ABLATION_GOLD[0], "pred_tags": ABLATION_PRED[0]}]
    metrics, flat = ner_metrics(ABLATION_GOLD, ABLATION_PRED), flat_metrics(evaluate_run(rows))
    per_type = {type_metric_name(t) for t in ("Drug", "Reason", "ADE")}
    assert set(metrics) <= set(flat) | per_type
    for name in set(metrics) - per_type:
        assert metrics[name] == approx(flat[name]), name


def test_view_table_drives_report_metrics_and_markdown():
    rows = [{"tokens": ["w"] * 6, "gold_tags": ABLATION_GOLD[0], "pred_tags": ABLATION_PRED[0]}]
    report = evaluate_run(rows)
    flat = flat_metrics(report)
    run_md = render_run_markdown("run", report)
    groups = aggregate_runs([{"name": "run", "run_info": None, "metrics": flat}])
    comparison_md = render_comparison_markdown(groups, list(report["ablations"]))
    assert list(report["tag"]) == [view.name for view in TAG_VIEWS]
    assert list(report["entity"]) == [mode for mode, _ in ENTITY_MODES]
    for view in TAG_VIEWS:
        assert report["tag"][view.name] == tag_scores(ABLATION_GOLD, ABLATION_PRED, view.level, view.exclude_labels)
        assert view.accuracy_name in flat
        assert {metric_name(view.name, average, stat) for average in ("micro", "macro", "weighted")
                for stat in ("p", "r", "f1")} <= set(flat)
        assert f"### {view.title}\n" in run_md
    for mode, title in ENTITY_MODES:
        assert metric_name(entity_view(mode), "micro") in flat
        assert f"### {title}\n" in run_md
    # Every number of the comparison tables is a flat metric: no cell after Model, sentences, runs is blank.
    rows = [line.strip("|").split("|")[3:] for line in comparison_md.splitlines() if line.startswith("| run |")]
    assert rows and all(cell.strip() for row in rows for cell in row)


def test_evaluate_run_report_shape():
    rows = [{"tokens": ["w"] * 6, "gold_tags": ABLATION_GOLD[0], "pred_tags": ABLATION_PRED[0]},
            {"tokens": ["w"], "gold_tags": None, "pred_tags": ["O"]}]
    report = evaluate_run(rows)
    assert report["num_sentences"] == 1 and report["num_unlabelled_sentences_skipped"] == 1
    assert set(report["tag"]) == {"bio", "bio_without_O", "token", "token_without_O"}
    assert list(report["ablations"]) == ["remove_O", "remove_ADE_Reason", "remove_O_ADE_Reason",
                                         "merge_ADE_into_Reason"]
    assert report["ablations"]["remove_O"]["scores"]["micro"]["precision"] == approx(2 / 5)
    assert "subword" in " ".join(report["notes"])
    assert_plain(report)
    with pytest.raises(ValueError, match="gold_tags"):
        evaluate_run([{"tokens": ["w"], "gold_tags": None, "pred_tags": ["O"]}])


# ---------------------------------------------------------------------------
# Reading predictions
# ---------------------------------------------------------------------------


def _row(tokens, gold, pred, **extra):
    return {"id": "d-0", "document_id": "d", "sentence_index": 0, "tokens": tokens,
            "token_starts": list(range(len(tokens))), "token_ends": list(range(1, len(tokens) + 1)),
            "gold_tags": gold, "pred_tags": pred, "confidences": [1.0] * len(tokens), **extra}


def test_read_predictions_errors_name_file_and_line(tmp_path):
    good = json.dumps(_row(["a", "b"], ["B-Drug", "O"], ["B-Drug", "O"]))
    path = tmp_path / "test_predictions.jsonl"
    path.write_text(good + "\n{not json\n")
    with pytest.raises(PredictionFormatError, match=r"test_predictions\.jsonl:2: not valid JSON"):
        read_predictions(path)
    path.write_text(good + "\n\n" + json.dumps(_row(["a", "b"], ["B-Drug"], ["B-Drug", "O"])) + "\n")
    with pytest.raises(PredictionFormatError, match=r":3: 'gold_tags' has 1 items but 'tokens' has 2"):
        read_predictions(path)
    path.write_text(json.dumps(_row(["a"], ["O"], ["Drug"])) + "\n")
    with pytest.raises(PredictionFormatError, match=r":1: 'pred_tags' holds 'Drug'"):
        read_predictions(path)
    path.write_text(json.dumps({"tokens": ["a"]}) + "\n")
    with pytest.raises(PredictionFormatError, match="'pred_tags' is missing"):
        read_predictions(path)
    path.write_text(good + "\n")
    assert len(read_predictions(path)) == 1


# ---------------------------------------------------------------------------
# Brat folders
# ---------------------------------------------------------------------------

DOC1_TEXT = "aspirin 81 mg PO daily for pain\n"
DOC1_GOLD = """T1\tDrug 0 7\taspirin
T2\tStrength 8 13\t81 mg
T3\tRoute 14 16\tPO
T4\tFrequency 17 22\tdaily
T5\tReason 27 31\tpain
R1\tReason-Drug Arg1:T5 Arg2:T1
#1\tAnnotatorNotes T1\tchecked
"""
DOC1_PRED = """T1\tDrug 0 7\taspirin
T2\tStrength 8 10\t81
T3\tStrength 11 13\tmg
T4\tForm 14 16\tPO
T5\tFrequency 17 22\tdaily
T6\tFrequency 17 22\tdaily
"""
DOC2_TEXT = "Patient had nausea and\nvomiting due to morphine.\n"
DOC2_GOLD = "T1\tADE 12 18;23 31\tnausea vomiting\nT2\tDrug 39 47\tmorphine\n"
DOC2_PRED = "T1\tADE 12 22;23 31\tnausea and vomiting\nT2\tDrug 39 47\tmorphine\nT3\tProblem 0 7\tPatient\n"
DOC3_TEXT = "Heparin 5000 units SC.\n"
DOC3_GOLD = "T1\tDrug 0 7\tHeparin\n"


@pytest.fixture
def brat_folders(tmp_path):
    gold, pred = tmp_path / "gold", tmp_path / "pred"
    gold.mkdir()
    pred.mkdir()
    for name, text, gold_ann, pred_ann in (("doc1", DOC1_TEXT, DOC1_GOLD, DOC1_PRED),
                                           ("doc2", DOC2_TEXT, DOC2_GOLD, DOC2_PRED),
                                           ("doc3", DOC3_TEXT, DOC3_GOLD, None)):
        (gold / f"{name}.txt").write_text(text)
        (gold / f"{name}.ann").write_text(gold_ann)
        if pred_ann is not None:
            (pred / f"{name}.ann").write_text(pred_ann)
    (pred / "extra.ann").write_text("T1\tDrug 0 3\tabc\n")
    return gold, pred


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
    (pred / "doc1.ann").write_text(DOC1_PRED + "T7\tDrug 40 30\treversed\nT8 no tabs here\n")
    report = score_brat_folders(gold, pred)
    assert [(s["document"], s["line"]) for s in report["skipped_prediction_lines"]] == [("doc1", 7), ("doc1", 8)]
    assert report["strict"]["micro"]["tp"] == 4 and report["strict"]["micro"]["fp"] == 4
    assert "reversed" not in json.dumps(report)
    (gold / "doc1.ann").write_text(DOC1_GOLD + "T9 broken\n")
    with pytest.raises(BratFormatError, match="doc1.ann:8"):
        score_brat_folders(gold, pred)


def test_brat_entity_type_filter(brat_folders):
    report = score_brat_folders(*brat_folders, entity_types=["Drug"])
    assert list(report["strict"]["per_type"]) == ["Drug"]
    assert report["strict"]["micro"]["tp"] == 2 and report["strict"]["micro"]["fn"] == 1


def test_a_gold_folder_scored_against_itself_is_perfect_with_a_duplicated_span(tmp_path):
    """Issue 25 item 12: one note holds the same span (type, offsets) twice, and a relation twice. The official script
    counts the copy, so gold against itself gave recall < 1; each exact duplicate now counts once, and is reported."""
    gold = tmp_path / "gold"
    gold.mkdir()
    (gold / "doc1.txt").write_text(DOC1_TEXT)
    (gold / "doc1.ann").write_text(DOC1_GOLD + "T6\tFrequency 17 22\tdaily\nT7\tReason 27 31\tpain\n"
                                   "R2\tReason-Drug Arg1:T7 Arg2:T1\n")
    (gold / "doc2.txt").write_text(DOC2_TEXT)
    (gold / "doc2.ann").write_text(DOC2_GOLD)
    report = _brat_main(gold, gold, tmp_path / "out")
    for mode in ("strict", "lenient"):
        micro = report[mode]["micro"]
        assert (micro["precision"], micro["recall"], micro["f1"]) == (1.0, 1.0, 1.0), mode
        assert (micro["tp"], micro["fp"], micro["fn"]) == (7, 0, 0), mode
        relations = report["relations"][mode]["micro"]
        assert (relations["precision"], relations["recall"], relations["f1"]) == (1.0, 1.0, 1.0), mode
    assert report["duplicate_entities"] == {"gold": 2, "pred": 2}
    assert report["num_gold_entities"] == report["num_pred_entities"] == 7  # 9 lines, 7 distinct
    assert report["relations"]["duplicate_relations"] == {"gold": 1, "pred": 1}
    assert report["relations"]["num_gold_relations"] == 1
    markdown = (tmp_path / "out" / REPORT_MARKDOWN_FILE).read_text()
    assert "Exact duplicate entities (same type, start and end in one note) counted once: 2 gold, 2 predicted." \
        in markdown
    assert "Exact duplicate relations (same type and arguments in one note) counted once: 1 gold, 1 predicted." \
        in markdown
    assert json.loads((tmp_path / "out" / REPORT_JSON_FILE).read_text())["duplicate_entities"] == {"gold": 2, "pred": 2}


def test_a_predicted_duplicate_counts_once_right_or_wrong(tmp_path):
    # Gold: aspirin (Drug), 81 mg (Strength). Predicted: aspirin twice (right), 81 twice (wrong strict, overlapping
    # lenient), PO as Route twice (no gold: wrong in both modes).
    gold, pred = tmp_path / "gold", tmp_path / "pred"
    gold.mkdir()
    pred.mkdir()
    (gold / "doc1.txt").write_text(DOC1_TEXT)
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


def _random_tags(rng, n):
    types = ("Drug", "Strength", "ADE")
    return [rng.choice(["O", "O", "O"] + [f"{p}-{t}" for p in "BI" for t in types]) for _ in range(n)]


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


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

SECRET = "Zyxwvutsrq"  # a corpus word that must never reach a report


def _make_run(root, name, info, quality, seed):
    """A run folder as run_ner_crf.py --do_predict leaves it: run_info.json and the prediction records
    (``info=None``: no run_info.json, as for predictions made elsewhere)."""
    rng = random.Random(seed)
    run_dir = root / name
    run_dir.mkdir(parents=True)
    if info is not None:
        write_json_atomically(run_dir / RUN_INFO_FILE, info)
    records = []
    for index in range(12):
        gold = ["B-Drug", "I-Drug", "O", "B-Strength", "I-Strength", "O", "B-ADE", "O", "B-Reason", "I-Reason"]
        pred = [tag if rng.random() < quality else rng.choice(["O", "B-Drug", "I-Reason", "B-ADE"]) for tag in gold]
        records.append(prediction_record(
            document_id="d", sentence_index=index, tokens=[SECRET] * len(gold), token_starts=list(range(len(gold))),
            token_ends=list(range(1, len(gold) + 1)), gold_tags=gold, pred_tags=pred, confidences=[1.0] * len(gold)))
    write_predictions_file(run_predictions_path(run_dir), records)
    return run_dir


def _info(label, seed, fraction, sentences, synthetic=False):
    """Every field run_ner_crf.py writes to run_info.json."""
    return {"model_label": label, "model_name_or_path": label.lower(), "config_name": None, "use_crf": True,
            "seed": seed, "train_split": "train", "train_fraction": fraction, "num_train_sentences": sentences,
            "num_train_documents": 3, "efficient_training": False, "num_parameters": 1000, "synthetic": synthetic}


def _table_rows(markdown, label):
    """The cells of every Markdown table row that starts with ``label``."""
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in markdown.splitlines() if line.startswith(f"| {label} |")]


def _run_sections(markdown):
    """``{heading: text}`` of the ``## `` sections of a report."""
    return {part.split("\n", 1)[0]: part for part in markdown.split("\n## ")[1:]}


def test_cli_predictions_report_comparison_and_learning_curve(tmp_path):
    runs_root, out = tmp_path / "runs", tmp_path / "report"
    run_dirs = [
        _make_run(runs_root, "bert-s1", _info("BERT-CRF", 1, 1.0, 100), 0.9, 1),
        _make_run(runs_root, "bert-s2", _info("BERT-CRF", 2, 1.0, 100), 0.8, 2),
        _make_run(runs_root, "bert-half", _info("BERT-CRF", 1, 0.5, 50), 0.7, 3),
        _make_run(runs_root, "scratch-s1", _info("TransformerCRF", 1, 1.0, 100), 0.6, 4),
        _make_run(runs_root, "scratch-half", _info("TransformerCRF", 1, 0.5, 50), 0.5, 5),
    ]
    report = main(["--predictions", *map(str, run_dirs), "--output_dir", str(out),
                   "--exclude_labels", "O", "Drug", "--merge", "ADE=Reason"])
    for name in (REPORT_JSON_FILE, REPORT_MARKDOWN_FILE, "comparison.md", "comparison.csv", "learning_curve.png",
                 "learning_curve.csv", "runs/bert-s1/confusion_matrix.png", "runs/bert-s1/confusion_matrix.csv",
                 f"runs/bert-s1/{REPORT_MARKDOWN_FILE}"):
        assert (out / name).is_file(), name
    assert (out / "runs/bert-s1/confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / REPORT_JSON_FILE).read_text())
    assert set(saved["runs"]) == {d.name for d in run_dirs}
    ablations = saved["runs"]["bert-s1"]["ablations"]
    assert list(ablations)[:4] == ["remove_O", "remove_ADE_Reason", "remove_O_ADE_Reason", "merge_ADE_into_Reason"]
    custom = ablations["custom_exclude_O_Drug_merge_ADE_into_Reason"]
    assert custom["merge"] == {"ADE": "Reason"} and "Drug" not in custom["scores"]["per_type"]

    groups = {g["label"]: g for g in saved["comparison"]}
    bert = groups["BERT-CRF"]
    assert bert["n"] == 2 and sorted(bert["seeds"]) == [1, 2]
    values = [saved["runs"][n]["tag"]["bio"]["macro"]["f1"] for n in ("bert-s1", "bert-s2")]
    assert bert["mean"]["bio_macro_f1"] == approx(statistics.fmean(values))
    assert bert["std"]["bio_macro_f1"] == approx(statistics.stdev(values))
    assert groups["BERT-CRF (0.5 of train)"]["n"] == 1
    curve = saved["learning_curve"]
    assert curve["x"] == "num_train_sentences"
    assert [p["x"] for p in curve["series"]["BERT-CRF"]] == [50.0, 100.0]

    assert "## Learning curve" in (out / REPORT_MARKDOWN_FILE).read_text()
    comparison_md = (out / "comparison.md").read_text()
    assert "±" in comparison_md and "Table II" in comparison_md and "Table IV" in comparison_md
    assert len((out / "comparison.csv").read_text().strip().splitlines()) == 1 + 4
    for path in out.rglob("*"):
        if path.suffix in (".json", ".md", ".csv"):
            assert SECRET not in path.read_text(), path
    assert SECRET not in json.dumps(report)


def test_cli_single_jsonl_file_without_run_info(tmp_path):
    path = tmp_path / "preds.jsonl"
    path.write_text(json.dumps(_row(["a", "b"], ["B-Drug", "O"], ["B-Drug", "O"])) + "\n")
    report = main(["--predictions", str(path), "--output_dir", str(tmp_path / "out"), "--no_paper_ablations"])
    assert list(report["runs"]) == ["preds"]
    assert report["runs"]["preds"]["ablations"] == {}
    assert report["learning_curve"] is None
    assert report["runs"]["preds"]["entity"]["strict"]["micro"]["f1"] == 1.0


def test_cli_brat_mode(brat_folders, tmp_path):
    gold, pred = brat_folders
    out = tmp_path / "brat_report"
    main(["--gold_brat", str(gold), "--pred_brat", str(pred), "--output_dir", str(out)])
    report = json.loads((out / REPORT_JSON_FILE).read_text())
    assert report["strict"]["micro"]["f1"] == 0.5
    assert report["lenient"]["micro"]["f1"] == approx(2 / 3)
    assert report["lenient"]["micro"]["precision"] == approx(5 / 7)
    assert report["strict"]["per_type"]["Frequency"]["f1"] == 1.0
    markdown = (out / REPORT_MARKDOWN_FILE).read_text()
    assert "Overall (micro)" in markdown and "Strict F1" in markdown
    for word in ("aspirin", "morphine", "nausea"):
        assert word not in markdown and word not in json.dumps(report)


def test_cli_brat_mode_without_relations_reports_as_before(brat_folders, tmp_path):
    """Gold files without R lines: no relations section in report.json, nothing about relations in the
    Markdown, whatever --relation_setting says (relations: tests/test_relation_scoring.py)."""
    gold, pred = brat_folders
    # The fixture's one gold relation (no prediction has it) is scored; without it there is nothing to score.
    assert score_brat_folders(gold, pred)["relations"]["strict"]["micro"]["fn"] == 1
    (gold / "doc1.ann").write_text(DOC1_GOLD.replace("R1\tReason-Drug Arg1:T5 Arg2:T1\n", ""))
    report = _brat_main(gold, pred, tmp_path / "out", "--relation_setting", "gold_entities")
    assert set(report) == {"mode", "unit", "gold_dir", "pred_dir", "num_documents", "num_gold_entities",
                           "num_pred_entities", "duplicate_entities", "missing_predictions", "unmatched_predictions",
                           "skipped_prediction_files", "skipped_prediction_lines", "strict", "lenient", "notes"}
    assert "relations" not in json.loads((tmp_path / "out" / REPORT_JSON_FILE).read_text())
    assert "relation" not in (tmp_path / "out" / REPORT_MARKDOWN_FILE).read_text().lower()


def test_cli_rejects_mixed_or_missing_inputs(tmp_path):
    with pytest.raises(SystemExit):
        main(["--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["--gold_brat", str(tmp_path), "--output_dir", str(tmp_path)])


def test_cli_runs_that_share_a_seed_count_once(tmp_path, caplog):
    runs_root, out = tmp_path / "runs", tmp_path / "report"
    run_dirs = [
        _make_run(runs_root, "bert-s1", _info("BERT-CRF", 1, 1.0, 100), 0.9, 1),
        _make_run(runs_root, "bert-s1-rerun", _info("BERT-CRF", 1, 1.0, 100), 0.5, 2),
        _make_run(runs_root, "bert-s2", _info("BERT-CRF", 2, 1.0, 100), 0.8, 3),
        _make_run(runs_root, "scratch-s1", _info("TransformerCRF", 1, 1.0, 100), 0.6, 4),
        _make_run(runs_root, "scratch-s1-rerun", _info("TransformerCRF", 1, 1.0, 100), 0.7, 5),
    ]
    main(["--predictions", *map(str, run_dirs), "--output_dir", str(out), "--no_paper_ablations"])
    saved = json.loads((out / REPORT_JSON_FILE).read_text())
    groups = {g["label"]: g for g in saved["comparison"]}

    # The first run given with a seed counts; the rerun is neither in the mean nor in the sd.
    bert = groups["BERT-CRF"]
    assert (bert["n"], bert["runs"], bert["seeds"]) == (2, ["bert-s1", "bert-s2"], [1, 2])
    values = [saved["runs"][name]["tag"]["bio"]["macro"]["f1"] for name in ("bert-s1", "bert-s2")]
    assert bert["mean"]["bio_macro_f1"] == approx(statistics.fmean(values))
    assert bert["std"]["bio_macro_f1"] == approx(statistics.stdev(values))
    assert [(item["run"], item["seed"], item["same_seed_as"]) for item in bert["left_out"]] == [
        ("bert-s1-rerun", 1, "bert-s1")]
    # Two runs of one seed are one run, with no spread to report (not "2 runs, sd 0.000").
    scratch = groups["TransformerCRF"]
    assert (scratch["n"], scratch["runs"]) == (1, ["scratch-s1"])
    assert scratch["std"]["bio_macro_f1"] is None
    assert scratch["mean"]["bio_macro_f1"] == approx(saved["runs"]["scratch-s1"]["tag"]["bio"]["macro"]["f1"])
    assert set(saved["runs"]) == {d.name for d in run_dirs}  # left out of the means, still scored

    markdown = (out / REPORT_MARKDOWN_FILE).read_text()
    assert {row[2] for row in _table_rows(markdown, "BERT-CRF")} == {"2"}  # Runs column: distinct seeds
    assert {row[2] for row in _table_rows(markdown, "TransformerCRF")} == {"1"}
    assert not any("±" in cell for row in _table_rows(markdown, "TransformerCRF") for cell in row)
    comparison = markdown.split("## Comparison across runs", 1)[1].split("\n## ", 1)[0]
    for left_out, kept in (("bert-s1-rerun", "bert-s1"), ("scratch-s1-rerun", "scratch-s1")):
        line = next(line for line in comparison.splitlines() if line.startswith(f"- {left_out}:"))
        assert "same seed" in line and kept in line

    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "same seed" in r.getMessage()]
    assert len(warnings) == 2
    assert "bert-s1-rerun" in warnings[0] and "scratch-s1-rerun" in warnings[1]
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_cli_confusion_matrix_titles_name_the_model_and_seed(tmp_path, monkeypatch):
    titles = {}
    plot = plot_confusion_matrix

    def recording_plot(confusion, path, title=""):
        titles[path.parent.name] = title
        plot(confusion, path, title)

    monkeypatch.setattr(reports, "plot_confusion_matrix", recording_plot)
    runs_root, out = tmp_path / "runs", tmp_path / "report"
    run_dirs = [_make_run(runs_root, "run-a", _info("BERT-CRF", 7, 1.0, 100), 0.9, 1),
                _make_run(runs_root, "run-b", _info("TransformerCRF", 3, 0.5, 50), 0.8, 2),
                _make_run(runs_root, "run-c", None, 0.7, 3)]
    main(["--predictions", *map(str, run_dirs), "--output_dir", str(out), "--no_paper_ablations"])
    assert titles["run-a"].startswith("BERT-CRF, seed 7:") and "run-a" not in titles["run-a"]
    assert titles["run-b"].startswith("TransformerCRF (0.5 of train), seed 3:")
    assert titles["run-c"].startswith("run-c:")  # no run_info: the folder name is all there is
    for name in titles:
        assert (out / "runs" / name / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_report_on_synthetic_runs_says_so(tmp_path):
    runs_root = tmp_path / "runs"
    synthetic = [_make_run(runs_root, f"synthetic-s{seed}", _info("TransformerCRF", seed, 1.0, 100, synthetic=True),
                           0.8, seed) for seed in (1, 2)]
    real = _make_run(runs_root, "real-s1", _info("BERT-CRF", 1, 1.0, 100), 0.9, 3)
    bare = _make_run(runs_root, "bare", None, 0.9, 4)

    def report(name, run_dirs):
        out = tmp_path / name
        main(["--predictions", *map(str, run_dirs), "--output_dir", str(out), "--no_paper_ablations"])
        return out, json.loads((out / REPORT_JSON_FILE).read_text()), (out / REPORT_MARKDOWN_FILE).read_text()

    out, saved, markdown = report("all-synthetic", synthetic)
    assert saved["synthetic"] is True
    first = markdown.splitlines()[0]
    assert "SYNTHETIC sample" in first and "not real patient notes" in first
    assert (out / "comparison.md").read_text().splitlines()[0] == first
    sections = _run_sections(markdown)
    for run_dir in synthetic:
        assert "SYNTHETIC sample" in sections[run_dir.name]
        assert "SYNTHETIC sample" in (out / "runs" / run_dir.name / REPORT_MARKDOWN_FILE).read_text()

    out, saved, markdown = report("mixed", [synthetic[0], real])
    assert saved["synthetic"] == "mixed"
    first = markdown.splitlines()[0]
    assert "SYNTHETIC" in first and "synthetic-s1" in first and "real-s1" not in first
    sections = _run_sections(markdown)
    assert "SYNTHETIC" in sections["synthetic-s1"] and "SYNTHETIC" not in sections["real-s1"]

    for name, run_dirs in (("real", [real]), ("no-run-info", [bare])):
        out, saved, markdown = report(name, run_dirs)
        assert saved["synthetic"] is False
        assert "SYNTHETIC" not in markdown and markdown.startswith("# Evaluation report")


@pytest.mark.parametrize("bad", [("missing",), ("no-predictions",), ("missing", "no-predictions")])
def test_cli_missing_inputs_fail_in_one_line_before_anything_is_scored(tmp_path, capsys, caplog, bad):
    runs_root, out = tmp_path / "runs", tmp_path / "report"
    good = _make_run(runs_root, "bert-s1", _info("BERT-CRF", 1, 1.0, 100), 0.9, 1)
    paths = {"missing": runs_root / "bert-s2", "no-predictions": runs_root / "bert-s3"}
    (runs_root / "bert-s3").mkdir()
    write_json_atomically(runs_root / "bert-s3" / RUN_INFO_FILE, _info("BERT-CRF", 3, 1.0, 100))
    capsys.readouterr()
    with pytest.raises(SystemExit) as raised:
        main(["--predictions", str(good), *(str(paths[b]) for b in bad), "--output_dir", str(out)])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "error:" in line]
    for name in bad:
        assert str(paths[name]) in line
    if "missing" in bad:
        assert "does not exist" in line
    assert f"{PREDICTIONS_DIRNAME}/{TEST_PREDICTIONS_FILE}" in line  # what was expected
    assert not out.exists()  # no report, not even half of one
    assert not any("micro F1" in r.getMessage() for r in caplog.records)  # the good run was not scored


# ---------------------------------------------------------------------------
# Brat mode on a user's files: unreadable predictions, line endings, input errors, an existing report
# ---------------------------------------------------------------------------

SCRIPT = Path(str(REPO_ROOT / "evaluate_ablations.py"))


def _brat_main(gold, pred, out, *extra):
    return main(["--gold_brat", str(gold), "--pred_brat", str(pred), "--output_dir", str(out), *extra])


def _error_line(err):
    """The one error line of a usage failure (and proof there is no traceback)."""
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "error:" in line]
    assert line.startswith("evaluate_ablations.py: error: ")
    return line


def _make_unreadable(path, how):
    if how == "not_utf8":
        # A Latin-1 byte on line 2 (the surface text of T2 in DOC1_PRED).
        path.write_bytes(DOC1_PRED.replace("81\n", "81 \xb5g\n").encode("latin-1"))
    elif how == "folder":
        path.mkdir()
        (path / "inside.txt").write_text("x")
    elif how == "dangling_symlink":
        path.symlink_to(path.parent / "gone.ann")
    elif how == "no_permission":
        path.write_text(DOC1_PRED)
        path.chmod(0)


# (how the file is broken, the kind in report.json, its line, the reason in the warning)
UNREADABLE = [("not_utf8", "not_utf8", 2, "not valid UTF-8"), ("folder", "not_a_file", None, "not a regular file"),
              ("dangling_symlink", "dangling_symlink", None, "dangling symbolic link"),
              pytest.param("no_permission", "unreadable", None, "Permission denied", marks=pytest.mark.skipif(
                  os.geteuid() == 0, reason="root reads a file without permissions"))]


@pytest.mark.parametrize("how, kind, line, reason", UNREADABLE)
def test_cli_brat_unreadable_prediction_file_is_skipped_and_reported(brat_folders, tmp_path, caplog, how, kind, line,
                                                                     reason):
    gold, pred = brat_folders
    out = tmp_path / "report"
    (pred / "doc1.ann").unlink()
    _make_unreadable(pred / "doc1.ann", how)
    report = _brat_main(gold, pred, out)  # no traceback: the other documents are scored

    # doc1 counts as no predictions: its 5 gold entities are false negatives; doc2 is scored as before.
    strict = report["strict"]
    assert (strict["micro"]["tp"], strict["micro"]["fp"], strict["micro"]["fn"]) == (2, 1, 6)
    assert (strict["per_type"]["Drug"]["tp"], strict["per_type"]["Drug"]["fn"]) == (1, 2)
    assert report["skipped_prediction_files"] == [{"document": "doc1", "line": line, "kind": kind}]
    assert report["missing_predictions"] == ["doc3"]  # an unreadable file is not a missing one
    saved = json.loads((out / REPORT_JSON_FILE).read_text())
    assert saved["skipped_prediction_files"] == report["skipped_prediction_files"]
    markdown = (out / REPORT_MARKDOWN_FILE).read_text()
    assert "could not be read, skipped (their documents scored as no predictions): 1" in markdown

    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    location = f"{pred / 'doc1.ann'}:{line}" if line else f"{pred / 'doc1.ann'}: "
    (named,) = [w for w in warnings if location in w]
    assert reason in named and "document doc1 is scored as no predictions" in named
    assert any("1 of 2 prediction files could not be read and were skipped" in w for w in warnings)
    for record in caplog.records:  # names and reasons only, never the note's words
        assert "aspirin" not in record.getMessage() and "\xb5" not in record.getMessage()
    assert "aspirin" not in markdown and "aspirin" not in json.dumps(saved)


def _with_line_endings(folder, target, ending):
    """A copy of a brat folder whose .ann files end their lines with ``ending`` (the .txt stay as they are)."""
    target.mkdir()
    for path in folder.iterdir():
        data = path.read_bytes()
        if path.suffix == ".ann":
            data = data.replace(b"\n", ending.encode())
        (target / path.name).write_bytes(data)
    return target


def test_cli_brat_cr_crlf_and_lf_files_score_alike(brat_folders, tmp_path):
    gold, pred = brat_folders
    reports = {}
    for name, ending in (("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")):
        gold_copy = _with_line_endings(gold, tmp_path / f"gold-{name}", ending)
        pred_copy = _with_line_endings(pred, tmp_path / f"pred-{name}", ending)
        report = _brat_main(gold_copy, pred_copy, tmp_path / f"report-{name}")
        reports[name] = {key: report[key] for key in ("strict", "lenient", "num_gold_entities", "num_pred_entities",
                                                      "skipped_prediction_lines", "missing_predictions")}
    # 9 predicted lines, one an exact duplicate (counted once).
    assert reports["lf"]["num_gold_entities"] == 8 and reports["lf"]["num_pred_entities"] == 8
    assert reports["lf"]["strict"]["micro"]["f1"] == 0.5  # the hand-computed figures above
    # A CR-only file is read line by line too: T2 onwards are not merged into T1's text field.
    assert reports["crlf"] == reports["lf"]
    assert reports["cr"] == reports["lf"]


def _bad_gold_text(gold, pred):
    (gold / "doc2.txt").unlink()
    return gold / "doc2.ann", "no matching .txt file"


def _bad_gold_utf8(gold, pred):
    (gold / "doc2.ann").write_bytes(DOC2_GOLD.encode("utf-8") + b"T3\tDrug 0 7\tPatient \xff\n")
    return f"{gold / 'doc2.ann'}:3", "not valid UTF-8"


def _bad_gold_folder(gold, pred):
    (gold / "doc4.ann").mkdir()
    (gold / "doc4.txt").write_text("x\n")
    return gold / "doc4.ann", "not a regular file"


def _no_gold_folder(gold, pred):
    shutil.rmtree(gold)
    return gold, "no such folder (--gold_brat)"


def _no_pred_folder(gold, pred):
    shutil.rmtree(pred)
    return pred, "no such folder (--pred_brat)"


def _empty_gold_folder(gold, pred):
    for path in gold.iterdir():
        path.unlink()
    return gold, "no .ann files"


@pytest.mark.parametrize("breakage, status", [(_bad_gold_text, 1), (_bad_gold_utf8, 1), (_bad_gold_folder, 1),
                                              (_no_gold_folder, 2), (_no_pred_folder, 2), (_empty_gold_folder, 1)])
def test_cli_brat_input_problems_are_one_line_with_their_status(brat_folders, tmp_path, capsys, breakage, status):
    """A missing path is a usage error (2); bad data in the files is a data error (1): command_line's convention."""
    gold, pred = brat_folders
    out = tmp_path / "report"
    where, what = breakage(gold, pred)
    capsys.readouterr()
    with pytest.raises(SystemExit) as raised:
        _brat_main(gold, pred, out)
    assert raised.value.code == status
    line = _error_line(capsys.readouterr().err)
    assert f"{where}: " in line and what in line
    assert "aspirin" not in line and "Patient" not in line
    assert not out.exists()  # inputs are checked before anything is written


def test_cli_brat_gold_without_text_as_the_user_runs_it(brat_folders, tmp_path):
    gold, pred = brat_folders
    (gold / "doc2.txt").unlink()
    out = tmp_path / "report"
    result = subprocess.run([sys.executable, str(SCRIPT), "--gold_brat", str(gold), "--pred_brat", str(pred),
                             "--output_dir", str(out)], capture_output=True, text=True, cwd=SCRIPT.parent)
    assert result.returncode == 1  # bad data (command_line's convention)
    line = _error_line(result.stderr)
    assert line == f"evaluate_ablations.py: error: {gold / 'doc2.ann'}: no matching .txt file (looked for doc2.txt " \
                   f"in the gold folder, then in the prediction folder)"
    assert not out.exists()


@pytest.mark.parametrize("given", [("--gold_brat",), ("--pred_brat",)])
def test_cli_brat_needs_both_folders_one_line(brat_folders, tmp_path, capsys, given):
    folders = dict(zip(("--gold_brat", "--pred_brat"), brat_folders))
    with pytest.raises(SystemExit) as raised:
        main([*(item for flag in given for item in (flag, str(folders[flag]))), "--output_dir", str(tmp_path / "r")])
    assert raised.value.code == 2
    assert "--gold_brat and --pred_brat go together" in _error_line(capsys.readouterr().err)


def _earlier_report(out):
    """A folder holding an earlier predictions-mode report and a file of the user's."""
    for name in (REPORT_JSON_FILE, REPORT_MARKDOWN_FILE, "comparison.md", "comparison.csv", "learning_curve.png",
                 "learning_curve.csv", "runs/bert-s1/confusion_matrix.csv", "runs/bert-s1/report.md"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("earlier\n")
    Manifest(out).claim(path.name for path in out.iterdir())  # written by the toolkit
    (out / "my_notes.md").write_text("mine\n")  # not


def test_cli_existing_report_folder_is_refused_unless_overwrite(brat_folders, tmp_path, capsys, caplog):
    gold, pred = brat_folders
    out = tmp_path / "report"
    out.mkdir()
    _brat_main(gold, pred, out)  # an existing empty folder is fine
    _earlier_report(out)
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    capsys.readouterr()
    caplog.clear()
    with pytest.raises(SystemExit) as raised:
        _brat_main(gold, pred, out)
    assert raised.value.code == 2
    line = _error_line(capsys.readouterr().err)
    assert str(out) in line and "--overwrite_output_dir" in line
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before  # nothing touched
    assert not any("micro F1" in r.getMessage() for r in caplog.records)  # refused before scoring

    # --overwrite_output_dir never removes a file the toolkit did not write: with the user's file there, it refuses.
    with pytest.raises(SystemExit) as raised:
        _brat_main(gold, pred, out, "--overwrite_output_dir")
    assert raised.value.code == 2
    assert "holds 1 entries this toolkit did not write (my_notes.md)" in _error_line(capsys.readouterr().err)
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before
    (out / "my_notes.md").rename(tmp_path / "my_notes.md")
    report = _brat_main(gold, pred, out, "--overwrite_output_dir")
    assert sorted(path.relative_to(out).as_posix() for path in out.rglob("*")) == [
        MANIFEST_FILE, REPORT_JSON_FILE, REPORT_MARKDOWN_FILE]  # the earlier report is replaced as a whole
    assert json.loads((out / REPORT_JSON_FILE).read_text())["strict"] == report["strict"]
    assert not list(tmp_path.glob(".report*"))  # no temporary folder, no lock left


def test_cli_predictions_mode_existing_report_folder_is_refused_unless_overwrite(tmp_path, capsys, caplog):
    run_dir = _make_run(tmp_path / "runs", "bert-s1", _info("BERT-CRF", 1, 1.0, 100), 0.9, 1)
    out = tmp_path / "report"
    args = ["--predictions", str(run_dir), "--output_dir", str(out), "--no_paper_ablations"]
    out.mkdir()
    (out / "my_notes.md").write_text("mine\n")
    capsys.readouterr()
    with pytest.raises(SystemExit) as raised:
        main(args)
    assert raised.value.code == 2
    assert "--overwrite_output_dir" in _error_line(capsys.readouterr().err)
    assert not any("micro F1" in r.getMessage() for r in caplog.records)
    assert [path.name for path in out.iterdir()] == ["my_notes.md"]
    with pytest.raises(SystemExit):  # the user's file would go with the folder: refused
        main(args + ["--overwrite_output_dir"])
    assert [path.name for path in out.iterdir()] == ["my_notes.md"]

    (out / "my_notes.md").unlink()
    main(args + ["--overwrite_output_dir"])
    (out / "runs" / "stale-run").mkdir()  # a run of the earlier report that the new one does not have
    main(args + ["--overwrite_output_dir"])
    assert not (out / "runs" / "stale-run").exists()
    assert (out / "runs" / "bert-s1" / "confusion_matrix.png").is_file()


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
