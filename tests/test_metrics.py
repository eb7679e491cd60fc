"""clinical_ner_crf/metrics.py: metric names, and the one way counts become precision, recall and F1."""

import pytest

from clinical_ner_crf.metrics import (
    LENIENT_MICRO_F1, STRICT_MACRO_F1, STRICT_MICRO_F1, entity_view, metric_name, type_metric_name,
)
from clinical_ner_crf.reports import aggregate_runs, flat_metrics, render_comparison_markdown, render_run_markdown
from clinical_ner_crf.token_metrics import ENTITY_MODES, TAG_VIEWS, evaluate_run, ner_metrics, tag_scores
from test_token_metrics import ABLATION_GOLD, ABLATION_PRED, approx


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
