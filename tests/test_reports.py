"""clinical_ner_crf/reports.py: runs aggregated over seeds (mean, sample sd, repeated seeds left out), the Markdown and CSV tables holding the numbers given, learning-curve points, the PNG plots and the synthetic banner."""

import csv
import struct

import pytest

from clinical_ner_crf.n2c2_scoring import score_brat_folders
from clinical_ner_crf.reports import (
    SYNTHETIC_SAMPLE, aggregate_runs, flat_metrics, learning_curve, plot_confusion_matrix, plot_learning_curve,
    render_brat_markdown, render_comparison_markdown, render_learning_curve_markdown, render_run_markdown, run_title,
    synthetic_banner, synthetic_status, write_comparison_csv, write_confusion_csv, write_learning_curve_csv,
)
from clinical_ner_crf.token_metrics import evaluate_run
from conftest import assert_plain

BIO, STRICT = "bio_macro_f1", "entity_strict_micro_f1"  # the learning-curve metrics


def run(name, metrics, seed=1, label="BERT", path="bert-base", sentences=100, fraction=1.0, **info):
    return {"name": name, "metrics": metrics,
            "run_info": {"model_label": label, "model_name_or_path": path, "seed": seed, "use_crf": True,
                         "train_fraction": fraction, "num_train_sentences": sentences, **info}}


def seed_runs():
    """Three seeds of BERT (and a repeat of seed 1), one CRF run, one run without run_info."""
    return [
        run("bert-s1", {BIO: 0.5, STRICT: 0.8, "only_here": 0.1}, seed=1, sentences=100),
        run("bert-s2", {BIO: 0.6, STRICT: 0.9}, seed=2, sentences=100),
        run("crf-s1", {BIO: 0.4, STRICT: 0.6, "token_macro_f1": 0.3}, seed=1, label="CRF", path="crf"),
        run("bert-s3", {BIO: 0.7, STRICT: 1.0}, seed=3, sentences=103),
        run("bert-s1-again", {BIO: 0.0, STRICT: 0.0}, seed=1),
        {"name": "loose", "run_info": None, "metrics": {BIO: 0.25}},
    ]


# ---------------------------------------------------------------------------
# Aggregation over seeds
# ---------------------------------------------------------------------------


def test_aggregate_runs_mean_and_sample_sd_over_seeds():
    bert, crf, loose = aggregate_runs(seed_runs())  # first-seen order
    assert bert["label"] == bert["series"] == "BERT"
    assert bert["runs"] == ["bert-s1", "bert-s2", "bert-s3"]
    assert bert["seeds"] == [1, 2, 3]
    assert bert["n"] == 3
    assert bert["num_train_sentences"] == 101.0  # (100 + 100 + 103) / 3
    assert list(bert["mean"]) == [BIO, STRICT]  # "only_here" is not in every run: no column
    assert bert["mean"] == {BIO: pytest.approx(0.6), STRICT: pytest.approx(0.9)}
    assert bert["std"] == {BIO: pytest.approx(0.1), STRICT: pytest.approx(0.1)}  # sample sd (n - 1), not 0.0816
    assert bert["config"] == {"model_label": "BERT", "model_name_or_path": "bert-base", "config_name": None,
                              "use_crf": True, "train_split": None, "train_fraction": 1.0, "efficient_training": None}
    # A repeated seed is the same sample twice: left out, said why.
    assert bert["left_out"] == [{"run": "bert-s1-again", "seed": 1, "same_seed_as": "bert-s1",
                                 "reason": "same seed (1) as bert-s1: not an independent sample"}]

    assert (crf["label"], crf["runs"], crf["n"]) == ("CRF", ["crf-s1"], 1)
    assert crf["mean"] == {BIO: 0.4, STRICT: 0.6, "token_macro_f1": 0.3}
    assert crf["std"] == {BIO: None, STRICT: None, "token_macro_f1": None}  # one run: no spread
    assert crf["left_out"] == []

    assert (loose["label"], loose["series"], loose["seeds"], loose["n"]) == ("loose", "loose", [None], 1)
    assert loose["num_train_sentences"] is None
    assert loose["mean"] == {BIO: 0.25}
    assert_plain([bert, crf, loose])


def test_aggregate_runs_labels_training_extras_and_same_label_configs():
    groups = aggregate_runs([
        run("eff-s1", {BIO: 0.5}, seed=1, fraction=0.25, efficient_training=True),
        run("eff-s2", {BIO: 0.7}, seed=2, fraction=0.25, efficient_training=True),
        run("base", {BIO: 0.6}, seed=1, path="bert-base"),
        run("large", {BIO: 0.8}, seed=1, path="bert-large"),
    ])
    assert [g["label"] for g in groups] == ["BERT (efficient, 0.25 of train)", "BERT [bert-base]", "BERT [bert-large]"]
    assert [g["series"] for g in groups] == ["BERT (efficient)", "BERT", "BERT"]
    assert [g["n"] for g in groups] == [2, 1, 1]
    assert groups[0]["mean"][BIO] == pytest.approx(0.6)
    # Seeds repeat across groups, never within one: nothing left out.
    assert [g["left_out"] for g in groups] == [[], [], []]


def test_run_title():
    assert run_title("runs/x", None) == "runs/x"
    assert run_title("runs/x", {}) == "runs/x"
    assert run_title("runs/x", {"seed": 7}) == "runs/x, seed 7"
    assert run_title("runs/x", {"model_label": "BERT", "seed": 3, "efficient_training": True,
                                "train_fraction": 0.5}) == "BERT (efficient, 0.5 of train), seed 3"
    assert run_title("runs/x", {"model_label": "BERT", "train_fraction": 1}) == "BERT"


# ---------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report():
    # Sentence 1 all right; sentence 2 misses a Drug. Entities: Drug 1 of 2 found, Strength 1 of 1.
    return evaluate_run([
        {"tokens": ["Aspirin", "daily", "81", "mg"], "gold_tags": ["B-Drug", "O", "B-Strength", "I-Strength"],
         "pred_tags": ["B-Drug", "O", "B-Strength", "I-Strength"]},
        {"tokens": ["Heparin", "was", "held"], "gold_tags": ["B-Drug", "O", "O"], "pred_tags": ["O", "O", "O"]},
    ])


def test_flat_metrics_of_a_run(report):
    metrics = flat_metrics(report)
    # 4 tag views x (9 scores + accuracy) + 2 entity modes x 9 + the one ablation (remove_O) x 9.
    assert len(metrics) == 4 * 10 + 2 * 9 + 9
    assert metrics[STRICT] == pytest.approx(0.8)  # P 1, R 2/3
    assert metrics["entity_strict_macro_f1"] == pytest.approx((2 / 3 + 1) / 2)
    assert metrics["entity_strict_weighted_r"] == pytest.approx((2 * 0.5 + 1) / 3)
    assert metrics["bio_accuracy"] == pytest.approx(6 / 7)
    # BIO tags O (P 3/4, R 1), B-Drug (P 1, R 1/2), B-Strength and I-Strength (1, 1).
    assert metrics["bio_macro_p"] == pytest.approx((0.75 + 1 + 1 + 1) / 4)
    assert metrics[BIO] == pytest.approx((6 / 7 + 2 / 3 + 1 + 1) / 4)
    assert metrics["remove_O_micro_r"] == pytest.approx(3 / 4)  # Drug 1 of 2 words, Strength 2 of 2


def test_render_run_markdown_holds_the_numbers(report):
    text = render_run_markdown("bert-s1", report, {"model_label": "BERT", "seed": 1, "synthetic": True,
                                                   "num_train_sentences": 100}, confusion_png="confusion.png")
    lines = text.splitlines()
    assert lines[:7] == ["## bert-s1", "", f"**Scored on {SYNTHETIC_SAMPLE}.**", "",
                         "model_label: BERT, seed: 1, num_train_sentences: 100", "", "2 sentences, 7 words scored."]
    tables = sections(text)
    # Strict and lenient entity tables (the same here: no partial overlaps).
    for title in ("Entity level, strict (seqeval mode=strict, scheme=IOB2)",
                  "Entity level, lenient (same type, any overlap)"):
        assert tables[title] == ["| Type | P | R | F1 | Support |", "|---|---:|---:|---:|---:|",
                                 "| Drug | 1.000 | 0.500 | 0.667 | 2 |",
                                 "| Strength | 1.000 | 1.000 | 1.000 | 1 |",
                                 "| **micro avg** | 1.000 | 0.667 | 0.800 | 3 |",
                                 "| **macro avg** | 1.000 | 0.750 | 0.833 | 3 |",
                                 "| **weighted avg** | 1.000 | 0.667 | 0.778 | 3 |"]
    # BIO tags: O (P 3/4), B-Drug (R 1/2), the Strength tags right.
    assert tables["BIO-strict, per tag (paper Tables II-III)"][2:] == [
        "| O | 0.750 | 1.000 | 0.857 | 3 |", "| B-Drug | 1.000 | 0.500 | 0.667 | 2 |",
        "| B-Strength | 1.000 | 1.000 | 1.000 | 1 |", "| I-Strength | 1.000 | 1.000 | 1.000 | 1 |",
        "| **micro avg** | 0.857 | 0.857 | 0.857 | 7 |", "| **macro avg** | 0.938 | 0.875 | 0.881 | 7 |",
        "| **weighted avg** | 0.893 | 0.857 | 0.844 | 7 |", "| **accuracy** |  |  | 0.857 |  |"]
    # Token level: Strength is 2 words now.
    assert tables["Token level, prefix stripped (paper Figures 6-7)"][4] == "| Strength | 1.000 | 1.000 | 1.000 | 2 |"
    assert tables["Ablations at token level (paper Table IV)"][2:] == [
        "| *Removing label 'O': only the entity labels* |  |  |  |", "| micro avg | 1.000 | 0.750 | 0.857 |",
        "| macro avg | 1.000 | 0.750 | 0.833 |", "| weighted avg | 1.000 | 0.750 | 0.833 |"]
    # Confusions, the figure, the notes.
    assert tables["Most frequent confusions (BIO tags; gold -> predicted)"][:4] == [
        "| Gold | Predicted | Words |", "|---|---|---:|", "| B-Drug | O | 1 |", "![confusion matrix](confusion.png)"]
    assert [line for line in lines if line.startswith("> ")] == [f"> {note}" for note in report["notes"]]
    # Three decimals by default, as asked otherwise.
    assert sections(render_run_markdown("r", report, digits=5))["Entity level, lenient (same type, any overlap)"][2] \
        == "| Drug | 1.00000 | 0.50000 | 0.66667 | 2 |"


def sections(markdown: str) -> dict[str, list[str]]:
    """The non-empty lines under each ``### `` heading."""
    result, title = {}, None
    for line in markdown.splitlines():
        if line.startswith("### "):
            title = line[4:]
            result[title] = []
        elif title is not None and line:
            result[title].append(line)
    return result


def test_render_run_markdown_without_run_info_or_confusions():
    perfect = evaluate_run([{"tokens": ["a"], "gold_tags": ["B-Drug"], "pred_tags": ["B-Drug"]}])
    text = render_run_markdown("plain", perfect)
    assert text.splitlines()[:3] == ["## plain", "", "1 sentences, 1 words scored."]
    assert "No confusions." in text.splitlines()
    assert "SYNTHETIC" not in text and "![confusion matrix]" not in text


def test_confusion_csv_and_png(report, tmp_path):
    write_confusion_csv(report["confusion"], tmp_path / "confusion.csv")
    with open(tmp_path / "confusion.csv", newline="") as handle:
        assert list(csv.reader(handle)) == [["gold \\ predicted", "O", "B-Drug", "B-Strength", "I-Strength"],
                                            ["O", "3", "0", "0", "0"], ["B-Drug", "1", "1", "0", "0"],
                                            ["B-Strength", "0", "0", "1", "0"], ["I-Strength", "0", "0", "0", "1"]]
    plot_confusion_matrix(report["confusion"], tmp_path / "confusion.png", title="bert-s1")
    assert png_size(tmp_path / "confusion.png") == (750, 600)  # 4 labels: the 5 x 4 inch minimum at 150 dpi
    # Eleven labels: a bigger figure; an all-zero matrix has no log scale to draw and still plots.
    labels = ["O"] + [f"{prefix}-T{i}" for i in range(5) for prefix in "BI"]
    plot_confusion_matrix({"labels": labels, "matrix": [[0] * 11 for _ in labels]}, tmp_path / "empty.png")
    assert png_size(tmp_path / "empty.png") == (1192, 1042)  # (0.45 * 11 + 2 + 1, 0.45 * 11 + 2) = (7.95, 6.95) in


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert len(data) > 1000  # a drawn figure, not an empty file
    return struct.unpack(">II", data[16:24])


# ---------------------------------------------------------------------------
# Runs compared
# ---------------------------------------------------------------------------


def test_render_comparison_markdown_holds_the_means_and_sds():
    groups = aggregate_runs(seed_runs())
    lines = render_comparison_markdown(groups, ["remove_O"]).splitlines()
    assert lines[:4] == ["## Comparison across runs", "",
                         "Mean ± sample standard deviation over runs that differ only by seed.", ""]
    assert "- bert-s1-again: same seed (1) as bert-s1: not an independent sample" in lines
    # BIO-strict macro table (P, R, F1): only F1 was given.
    table = lines[lines.index("### BIO-strict macro average (paper Table II)"):]
    assert table[2:7] == ["| Model | Train sentences | Runs | P | R | F1 |", "|---|---|---:|---|---|---:|",
                          "| BERT | 101 | 3 |  |  | 0.600 ± 0.100 |", "| CRF | 100 | 1 |  |  | 0.400 |",
                          "| loose |  | 1 |  |  | 0.250 |"]
    # Entity table: strict micro F1 (third numeric column), the rest not given.
    table = lines[lines.index("### Entity level"):]
    assert table[4:7] == ["| BERT | 101 | 3 |  |  | 0.900 ± 0.100 |  |  |", "| CRF | 100 | 1 |  |  | 0.600 |  |  |",
                          "| loose |  | 1 |  |  |  |  |  |"]
    assert "| CRF | 100 | 1 | 0.300 |  |  |  |" in lines  # token macro F1, CRF only
    assert "### Removing label 'O': only the entity labels (token level, paper Table IV)" in lines
    assert "0.6000 ± 0.1000" in render_comparison_markdown(groups, [], digits=4)


def test_write_comparison_csv_columns_and_values(tmp_path):
    groups = aggregate_runs(seed_runs())
    write_comparison_csv(groups, tmp_path / "comparison.csv")
    with open(tmp_path / "comparison.csv", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert header == ["model", "model_name_or_path", "train_fraction", "efficient_training", "num_train_sentences",
                      "n_runs", "seeds", "runs", f"{BIO}_mean", f"{BIO}_std", f"{STRICT}_mean", f"{STRICT}_std",
                      "token_macro_f1_mean", "token_macro_f1_std"]
    assert rows == [
        ["BERT", "bert-base", "1.0", "", "101.0", "3", "1 2 3", "bert-s1 bert-s2 bert-s3", "0.6", "0.1", "0.9", "0.1",
         "", ""],
        ["CRF", "crf", "1.0", "", "100.0", "1", "1", "crf-s1", "0.4", "", "0.6", "", "0.3", ""],
        ["loose", "", "", "", "", "1", "", "loose", "0.25", "", "", "", "", ""],
    ]


# ---------------------------------------------------------------------------
# Learning curves
# ---------------------------------------------------------------------------


def curve_runs():
    return [
        run("bert-full", {BIO: 0.7, STRICT: 0.95}, seed=1, sentences=100, fraction=1.0),
        run("bert-half-s1", {BIO: 0.5, STRICT: 0.7}, seed=1, sentences=50, fraction=0.5),
        run("bert-half-s2", {BIO: 0.6, STRICT: 0.9}, seed=2, sentences=50, fraction=0.5),
        run("crf-full", {BIO: 0.4, STRICT: 0.6}, seed=1, label="CRF", path="crf", sentences=100),
    ]


def test_learning_curve_points_per_series_sorted_by_size():
    curve = learning_curve(aggregate_runs(curve_runs()))
    assert curve["x"] == "num_train_sentences"
    assert curve["metrics"] == [BIO, STRICT]
    assert list(curve["series"]) == ["BERT", "CRF"]
    half, full = curve["series"]["BERT"]
    assert half == {"x": 50.0, "train_fraction": 0.5, "n": 2, BIO: pytest.approx(0.55),
                    f"{BIO}_std": pytest.approx(0.1 / 2 ** 0.5), STRICT: pytest.approx(0.8),
                    f"{STRICT}_std": pytest.approx(0.2 / 2 ** 0.5)}
    assert full == {"x": 100.0, "train_fraction": 1.0, "n": 1, BIO: 0.7, f"{BIO}_std": None, STRICT: 0.95,
                    f"{STRICT}_std": None}
    assert curve["series"]["CRF"] == [{"x": 100.0, "train_fraction": 1.0, "n": 1, BIO: 0.4, f"{BIO}_std": None,
                                       STRICT: 0.6, f"{STRICT}_std": None}]


def test_learning_curve_by_fraction_when_a_size_is_unknown():
    runs = curve_runs()[:2]
    runs[1]["run_info"]["num_train_sentences"] = None
    curve = learning_curve(aggregate_runs(runs))
    assert curve["x"] == "train_fraction"
    assert [point["x"] for point in curve["series"]["BERT"]] == [0.5, 1.0]


def test_no_learning_curve_without_two_sizes_in_one_series():
    assert learning_curve(aggregate_runs(curve_runs()[:1] + curve_runs()[3:])) is None  # one size only
    # Full and efficient training of one model: two series of one point each, however the sizes differ.
    runs = [run("full", {BIO: 0.7, STRICT: 0.9}, sentences=100),
            run("efficient", {BIO: 0.6, STRICT: 0.8}, sentences=80, efficient_training=True)]
    assert learning_curve(aggregate_runs(runs)) is None


def test_learning_curve_markdown_csv_and_png(tmp_path):
    curve = learning_curve(aggregate_runs(curve_runs()))
    lines = render_learning_curve_markdown(curve).splitlines()
    assert "F1 by training sentences (mean ± sd over seeds): where the lines cross is where pre-training " \
           "stops paying off." in lines
    bio = lines[lines.index("### BIO-strict macro F1"):]
    assert bio[2:6] == ["| Model | 50 | 100 |", "|---|---|---:|", "| BERT | 0.550 ± 0.071 | 0.700 |",
                        "| CRF |  | 0.400 |"]
    strict = lines[lines.index("### entity strict micro F1"):]
    assert strict[4:6] == ["| BERT | 0.800 ± 0.141 | 0.950 |", "| CRF |  | 0.600 |"]

    write_learning_curve_csv(curve, tmp_path / "curve.csv")
    with open(tmp_path / "curve.csv", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert header == ["series", "num_train_sentences", "train_fraction", "n_runs", f"{BIO}_mean", f"{BIO}_std",
                      f"{STRICT}_mean", f"{STRICT}_std"]
    assert [row[:5] + row[6:7] for row in rows] == [["BERT", "50.0", "0.5", "2", "0.55", "0.8"],
                                                    ["BERT", "100.0", "1.0", "1", "0.7", "0.95"],
                                                    ["CRF", "100.0", "1.0", "1", "0.4", "0.6"]]
    assert float(rows[0][5]) == pytest.approx(0.1 / 2 ** 0.5) and float(rows[0][7]) == pytest.approx(0.2 / 2 ** 0.5)
    assert [row[5] for row in rows[1:]] == ["", ""]

    plot_learning_curve(curve, tmp_path / "curve.png")
    assert png_size(tmp_path / "curve.png") == (1650, 630)  # two panels of 5.5 x 4.2 inches at 150 dpi


# ---------------------------------------------------------------------------
# Synthetic data said so
# ---------------------------------------------------------------------------


def test_synthetic_banner_and_status():
    synthetic, real = {"synthetic": True}, {"synthetic": False}
    runs = [{"name": "a", "run_info": synthetic}, {"name": "b", "run_info": dict(synthetic)}]
    assert synthetic_status(run["run_info"] for run in runs) is True
    assert synthetic_banner(runs) == [
        "**SYNTHETIC DATA: every number in this report comes from the SYNTHETIC sample (synthetic_n2c2.py), "
        "not real patient notes.**", ""]
    mixed = [{"name": "a", "run_info": synthetic}, {"name": "b", "run_info": None},
             {"name": "c", "run_info": synthetic}, {"name": "d", "run_info": real}]
    assert synthetic_status(run["run_info"] for run in mixed) == "mixed"
    assert synthetic_banner(mixed) == [
        f"**SYNTHETIC DATA in part: the numbers of a, c come from {SYNTHETIC_SAMPLE}.**", ""]
    plain = [{"name": "b", "run_info": None}, {"name": "d", "run_info": real}, {"name": "e", "run_info": {}}]
    assert synthetic_status(run["run_info"] for run in plain) is False
    assert synthetic_banner(plain) == []


# ---------------------------------------------------------------------------
# Brat (official-style) scores
# ---------------------------------------------------------------------------


def test_render_brat_markdown_holds_the_scores_and_counts(tmp_path):
    gold, pred = tmp_path / "gold", tmp_path / "pred"
    gold.mkdir()
    pred.mkdir()
    (gold / "a.txt").write_text("Aspirin 81 mg")
    (gold / "a.ann").write_text("T1\tDrug 0 7\tAspirin\nT2\tStrength 8 13\t81 mg\n")
    (pred / "a.ann").write_text("T1\tDrug 0 7\tAspirin\nT2\tStrength 8 10\t81\n")  # Strength: lenient only
    (gold / "b.txt").write_text("Heparin")
    (gold / "b.ann").write_text("T1\tDrug 0 7\tHeparin\n")  # no prediction file
    lines = render_brat_markdown(score_brat_folders(gold, pred)).splitlines()
    assert lines[:3] == ["# n2c2-2018 official-style entity scores", "",
                         "2 documents; 3 gold and 2 predicted entities."]
    assert "| Drug | 1.0000 | 0.5000 | 0.6667 | 1.0000 | 0.5000 | 0.6667 | 2 |" in lines
    assert "| Strength | 0.0000 | 0.0000 | 0.0000 | 1.0000 | 1.0000 | 1.0000 | 1 |" in lines
    assert "| **Overall (micro)** | 0.5000 | 0.3333 | 0.4000 | 1.0000 | 0.6667 | 0.8000 | 3 |" in lines
    # Counts: strict TP FP FN, lenient TP FP FN.
    assert "| Drug | 1 | 0 | 1 | 1 | 0 | 1 |" in lines
    assert "| Strength | 0 | 1 | 1 | 1 | 0 | 0 |" in lines
    assert "| **micro** | 1 | 1 | 2 | 2 | 0 | 1 |" in lines
    assert "Documents without a prediction file (all their gold counted as missed): 1." in lines
    assert not any(line.startswith("# n2c2-2018 official-style relation scores") for line in lines)
