"""Smoke test of the benchmark harness (bench/): the feature-CRF peer, speed.py in smoke mode, the report.

Tiny synthetic data and a tiny random encoder; no shared corpora, no MiniLM, well under a minute.
Needs the feature-CRF packages of requirements-dev.txt (installed by `make test`).
"""

import json
import os
import statistics
import sys
from pathlib import Path

import pytest

from clinical_ner_crf.files import RUN_INFO_FILE, run_predictions_path
from clinical_ner_crf.metrics import LENIENT_MICRO_F1, STRICT_MACRO_F1, STRICT_MICRO_F1, entity_view, metric_name
from clinical_ner_crf.prediction_records import read_predictions
from clinical_ner_crf.token_metrics import entity_scores, headline_metrics
from conftest import command

evaluate_ablations = command("evaluate_ablations")  # the command, called in-process as from its command line
prepare_n2c2 = command("prepare_n2c2")  # the command, called in-process as from its command line

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "bench"))

# The feature-CRF packages of requirements-dev.txt (installed by `make test`): a plain import, so that their absence
# fails the module instead of skipping its tests unseen.
import psutil  # noqa: E402,F401
import sklearn_crfsuite  # noqa: E402,F401


def rescored(run_dir):
    """(headline metrics, strict scores, records) recomputed from the predictions a run folder holds."""
    records = read_predictions(run_predictions_path(run_dir))
    gold, pred = [r["gold_tags"] for r in records], [r["pred_tags"] for r in records]
    strict = entity_scores(gold, pred, "strict")
    return headline_metrics(strict, entity_scores(gold, pred, "lenient")), strict, records


@pytest.fixture(scope="module")
def synthetic_dataset(tmp_path_factory):

    out = tmp_path_factory.mktemp("bench") / "data"
    prepare_n2c2.main(["--synthetic", "12", "--seed", "7", "--output_dir", str(out)])
    return out


def test_feature_crf_scores_and_is_deterministic(synthetic_dataset, tmp_path):
    import feature_crf

    first = feature_crf.train_and_score(synthetic_dataset, "train", seed=1, max_iterations=30,
                                        run_dir=tmp_path / "run")
    second = feature_crf.train_and_score(synthetic_dataset, "train", seed=2, max_iterations=30)
    # Synthetic notes are easy: a working CRF learns them (measured: strict micro-F1 0.93, P 0.97, R 0.89), where
    # the all-O baseline scores 0.
    assert 0.3 < first[STRICT_MICRO_F1] <= 1.0
    assert min(first[metric_name(entity_view("strict"), "micro", s)] for s in "pr") > 0.3
    # Every number is the scorer's on the tags the run wrote (gold and predictions not swapped, the test split,
    # the model's own predictions), per type too.
    headline, strict, records = rescored(tmp_path / "run")
    assert set(headline) == {STRICT_MICRO_F1, STRICT_MACRO_F1, LENIENT_MICRO_F1} | {
        metric_name(entity_view("strict"), "micro", s) for s in "pr"}
    assert {name: first[name] for name in headline} == headline
    assert first["per_type"] == {t: {k: row[k] for k in ("precision", "recall", "f1", "support")}
                                 for t, row in strict["per_type"].items()}
    assert len(records) == first["num_test_sentences"]
    # support: the gold entities of the test split (IOB2: one B- tag each)
    gold_entities = sum(tag.startswith("B-") for r in records for tag in r["gold_tags"])
    assert sum(row["support"] for row in first["per_type"].values()) == gold_entities > 0
    # L-BFGS is deterministic: the seed changes nothing (the report states sd 0 for this reason)
    assert first[STRICT_MICRO_F1] == second[STRICT_MICRO_F1]
    assert first["train_seconds"] > 0 and first["num_train_sentences"] > 0
    # the CLI writes a numbers-only JSON, named after the dataset folder
    assert feature_crf.main(["--dataset_path", str(synthetic_dataset), "--max_iterations", "10", "--seeds", "1",
                             "--train_splits", "train", "--results_dir", str(tmp_path),
                             "--output_dir", str(tmp_path / "runs")]) == 0
    result = json.loads((tmp_path / "quality" / "data__feature-crf__s1__train__f1.json").read_text())
    assert set(result) >= {STRICT_MICRO_F1, STRICT_MACRO_F1, "per_type", "train_seconds"}
    assert "tokens" not in json.dumps(result)


def test_feature_crf_run_folder_gives_the_full_report(synthetic_dataset, tmp_path):
    import feature_crf

    assert feature_crf.main(["--dataset_path", str(synthetic_dataset), "--corpus_name", "notes",
                             "--max_iterations", "10", "--seeds", "42", "43", "--train_splits", "train",
                             "--results_dir", str(tmp_path / "results"), "--output_dir", str(tmp_path / "runs")]) == 0
    result = json.loads((tmp_path / "results" / "quality" / "notes__feature-crf__s42__train__f1.json").read_text())
    run_dir = tmp_path / "runs" / "notes__feature-crf__s42__train__f1"
    run_info = json.loads((run_dir / RUN_INFO_FILE).read_text())
    expected = {"model_label": "feature-CRF", "seed": 42, "train_split": "train", "train_fraction": 1.0,
                "use_crf": False, "synthetic": True}
    assert {k: run_info[k] for k in expected} == expected
    assert run_info["num_train_sentences"] == result["num_train_sentences"]
    records = read_predictions(run_predictions_path(run_dir))
    assert len(records) == result["num_test_sentences"]
    assert all(r["gold_tags"] and 0.0 < c <= 1.0 for r in records for c in r["confidences"])

    report = evaluate_ablations.main(["--predictions", str(run_dir), "--output_dir", str(tmp_path / "report")])
    strict = report["runs"][run_dir.name]["entity"]["strict"]
    assert strict["micro"]["f1"] == result[STRICT_MICRO_F1] and strict["macro"]["f1"] == result[STRICT_MACRO_F1]
    assert [strict["micro"][k] for k in ("precision", "recall")] == [
        result[metric_name(entity_view("strict"), "micro", s)] for s in "pr"]
    assert report["runs"][run_dir.name]["ablations"] and (tmp_path / "report" / "report.md").is_file()
    # seed 43 is the same deterministic model: its own run folder, the same predictions
    reused = tmp_path / "runs" / "notes__feature-crf__s43__train__f1"
    assert json.loads((reused / RUN_INFO_FILE).read_text()) == run_info | {"seed": 43, "reused_from_seed": 42}
    assert run_predictions_path(reused).read_bytes() == run_predictions_path(run_dir).read_bytes()


def test_report_leaves_readme_alone_when_only_the_time_changes(tmp_path):
    import common
    import report

    assert report.REBUILT_TIME.fullmatch(report.REBUILT + common.machine_info()["date_utc"])
    path = tmp_path / "README.md"
    text = "# Benchmarks\n\nQuality rows carry their own time. " + report.REBUILT + "{}.\n\n| row | 1 |\n"
    assert report.write_readme(text.format("2026-12-02 06:43 UTC"), path)
    os.utime(path, ns=(10**18, 10**18))  # an mtime that a rewrite could not keep
    before = path.read_bytes(), path.stat().st_mtime_ns
    assert not report.write_readme(text.format("2026-12-03 07:05 UTC"), path)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    changed = text.format("2026-12-03 07:05 UTC").replace("| 1 |", "| 2 |")
    assert report.write_readme(changed, path) and path.read_text() == changed


def test_speed_smoke_writes_ratios(tmp_path, monkeypatch):
    import speed

    monkeypatch.setenv("BENCH_SMOKE_DIR", str(tmp_path))
    output = tmp_path / "speed.json"
    result = speed.main(["--smoke", "--steps", "1", "--num_sentences", "32", "--num_notes", "4", "--repeats", "1",
                         "--rounds", "2", "--pipeline_batch_sizes", "8", "--annotator_batch_sizes", "16", "--skip_rss", "--output", str(output)])
    saved = json.loads(output.read_text())
    assert saved["settings"]["smoke"] is True
    throughput = saved["training_throughput"]
    assert throughput["ours_words_per_second"] > 0 and throughput["paper_words_per_second"] > 0
    # the paper side pads every row to 180 subwords; ours pads to the batch's longest window
    assert saved["settings"]["mean_padded_length_paper"] == 180
    assert saved["settings"]["mean_padded_length_ours"] < 180
    assert saved["crf_overhead"]["ratio"] > 0
    inference = saved["inference"]
    assert inference["num_sentences"] > 0 and inference["annotator_crf_sentences_per_second"] > 0
    assert inference["pipeline_best_batch_size"] == 8
    assert len(inference["pipeline_seconds_by_round"]) == 2 and len(inference["annotator_crf_seconds_by_round"]) == 2
    assert inference["pipeline_seconds"] == min(inference["pipeline_seconds_by_round"])
    assert min(inference["pipeline_padded_positions"], inference["annotator_padded_positions"]) >= inference["real_positions"]
    assert inference["padding_ceiling"] == inference["pipeline_padded_positions"] / inference["annotator_padded_positions"]
    assert result["training_throughput"]["ratio"] == throughput["ratio"]


@pytest.mark.slow
@pytest.mark.bench_smoke
def test_onnx_speed_smoke_times_every_backend_with_and_without_spinning(tmp_path, monkeypatch):
    import onnx_speed

    monkeypatch.setenv("BENCH_SMOKE_DIR", str(tmp_path))
    output = tmp_path / "onnx_speed.json"
    onnx_speed.main(["--smoke", "--num_notes", "4", "--num_long_notes", "1", "--rounds", "2", "--calibration_notes", "8",
                     "--pipeline_batch_sizes", "8", "--output", str(output)])
    saved = json.loads(output.read_text())
    sentences, long_notes = saved["sentences"], saved["long_notes"]
    for head in ("crf", "apt"):
        for backend in ("torch", "onnx_fp32", "onnx_int8", "onnx_int8_dynamic", "onnx_int8_nospin"):
            name = f"{head}_{backend}"
            rounds = sentences[f"{name}_seconds_by_round"]
            assert len(rounds) == 2 and sentences[f"{name}_seconds"] == {
                "median": statistics.median(rounds), "min": min(rounds), "max": max(rounds)}
            assert sentences[f"ratio_{name}_over_pipeline"] == pytest.approx(
                statistics.median(sentences["pipeline_apt_seconds_by_round"]) / statistics.median(rounds))
            assert long_notes[f"{name}_characters_per_second"]["median"] > 0
    assert min(saved["settings"]["long_note_characters"]) >= 10_000
    assert saved["settings"]["onnxruntime_intra_op_num_threads"] >= 1 and "cpu_isa_flags" in saved["machine"]
    parts = saved["time_parts_sentences"]["crf_onnx_int8"]
    assert parts["model_seconds"] > 0 and parts["decode_seconds"] > 0 and parts["assemble_seconds"] > 0
    assert parts["padding_seconds"] > 0 and parts["windows"] > 0
    # Static int8 and fp32 give each note the same output alone, in a batch and reversed; notes are counted.
    for name in ("crf_onnx_fp32", "crf_onnx_int8", "apt_onnx_int8"):
        row = saved["batch_invariance"][name]
        assert row["notes_identical_every_way"] == row["notes"] == saved["settings"]["num_notes"] > 0, (name, row)
    assert saved["batch_invariance"]["crf_onnx_int8_dynamic"]["notes"] == saved["settings"]["num_notes"]
    assert saved["quantization"]["static"]["method"].endswith("quantize_static")
    assert saved["quantization"]["dynamic"]["op_types_after"].get("MatMulInteger", 0) > 0
    assert all(row["mb"] > 0 for row in saved["peak_rss"].values())
    assert saved["peak_rss"]["crf_torch"]["torch_imported"] is True


@pytest.mark.slow
@pytest.mark.bench_smoke
def test_int8_accuracy_smoke_scores_every_backend_against_fp32(tmp_path, monkeypatch):
    import int8_accuracy

    monkeypatch.setenv("BENCH_SMOKE_DIR", str(tmp_path))
    from test_annotate_notes import train_tiny_crf

    trained = train_tiny_crf(tmp_path / "trained_crf")  # n2c2 labels, like the smoke corpus
    output = tmp_path / "int8_accuracy.json"
    int8_accuracy.main(["--smoke", "--model", f"synthetic={trained}", "--calibration_notes", "8",
                        "--output", str(output)])
    run = json.loads(output.read_text())["runs"][0]
    assert run["onnx_fp32_entities_identical_to_torch"] is True
    assert run["onnx_fp32"]["strict_micro_f1"] == run["torch"]["strict_micro_f1"] > 50
    static = run["onnx_int8"]
    assert static["minus_fp32"] == pytest.approx(static["strict_micro_f1"] - run["onnx_fp32"]["strict_micro_f1"])
    assert set(static["per_type_minus_fp32"]) == set(run["onnx_fp32"]["per_type"])
    assert run["quantization"]["calibration_notes"] == 8 and run["quantization"]["kept_fp32_by_reason"]
    assert 0 <= static["notes_same_entities_as_fp32"] <= run["test_notes"]


def test_padded_positions_counts_each_batch_at_its_longest_row():
    import speed

    assert speed.padded_positions([3, 1, 2, 5], 2, sort=False) == 2 * 3 + 2 * 5
    assert speed.padded_positions([3, 1, 2, 5], 2, sort=True) == 2 * 5 + 2 * 2
    assert speed.padded_positions([3, 1, 2, 5], 1, sort=False) == 11  # batch 1: no padding at all


def test_feature_crf_lowercase_diagnostic_hides_case(synthetic_dataset, tmp_path):
    import feature_crf

    cased = feature_crf.sentence_features(["Took", "ASPIRIN", "81", "mg"])
    blind = feature_crf.sentence_features(["Took", "ASPIRIN", "81", "mg"], lowercase=True)
    assert cased[1]["upper"] and cased[0]["title"] and "X" in cased[1]["shape"]
    # the uncased view: no feature of any word (or its window) reveals a capital
    assert not any(value is True and name.endswith(("upper", "title")) for word in blind for name, value in word.items())
    assert not any("X" in str(value) for word in blind for name, value in word.items() if "shape" in name)
    assert blind[2]["shape"] == cased[2]["shape"] == "dd"  # digits and the rest of the shape stay
    assert feature_crf.main(["--dataset_path", str(synthetic_dataset), "--max_iterations", "10", "--lowercase",
                             "--seeds", "42", "--train_splits", "train", "--results_dir", str(tmp_path),
                             "--output_dir", str(tmp_path / "runs")]) == 0
    result = json.loads((tmp_path / "diagnostics" / "data__feature-crf__s42__train__f1__lowercase.json").read_text())
    # Above the all-O baseline (0) even blind to case (measured 0.42 after 10 iterations), and the scorer's numbers
    # on the tags its run folder holds.
    assert result["settings"]["lowercase"] is True and result[STRICT_MICRO_F1] > 0.1
    headline, _, _ = rescored(tmp_path / "runs" / "data__feature-crf__s42__train__f1__lowercase")
    assert {name: result[name] for name in headline} == headline
    assert feature_crf.result_path("ncbi", 42, "train", lowercase=True).parent.name == "diagnostics"


def test_learning_curve_points_average_the_same_seeds():
    import report

    def run(system, seed, fraction):
        return {"corpus": "phee", "system": system, "seed": seed, "train_split": "train",
                "train_fraction": fraction, "flat_metrics": {}}

    results = [run(system, 42, f) for system in report.CURVE_SYSTEMS for f in (0.1, 1.0)]
    results += [run(system, 43, 1.0) for system in report.CURVE_SYSTEMS]  # seed 43: no 10% runs yet
    results += [run("minilm-crf", 44, f) for f in (0.1, 1.0)]  # seed 44: one system only
    results += [run("minilm-apt", 45, f) for f in (0.1, 1.0)]  # not a curve system
    runs, seeds = report.curve_runs(results, "phee")
    assert seeds == [42]
    assert sorted((r["system"], r["train_fraction"]) for r in runs) == sorted(
        (s, f) for s in report.CURVE_SYSTEMS for f in (0.1, 1.0))
    results += [run(system, 43, 0.1) for system in report.CURVE_SYSTEMS]
    assert report.curve_runs(results, "phee")[1] == [42, 43]


def test_seed_interval_is_welch_by_hand_and_marks_an_interval_across_zero():
    """Seeds (0.70, 0.72, 0.74) against a deterministic peer (0.65 three times): difference 7 points, variance of the
    mean 0.0004 / 3, all from one side, so Welch's degrees of freedom are 2 and t(0.975, 2) = 4.3027."""
    import report

    low, high = report.seed_interval([0.70, 0.72, 0.74], [0.65] * 3)
    half = 4.302653 * (0.0004 / 3) ** 0.5 * 100
    assert (low, high) == (pytest.approx(7 - half, abs=1e-4), pytest.approx(7 + half, abs=1e-4))
    assert report.seed_interval([0.70], [0.65] * 3) is None  # one seed: no spread to estimate
    # A rule run once, known to be deterministic: the same interval as the peer's three equal seeds.
    assert report.seed_interval([0.70, 0.72, 0.74], [0.65], fixed_reference=True) == (pytest.approx(low),
                                                                                       pytest.approx(high))
    assert report.seed_interval([0.70, 0.72, 0.74], [0.65]) is None
    assert report.seed_interval([0.7] * 3, [0.65] * 3) == (pytest.approx(5.0), pytest.approx(5.0))
    results = [{"corpus": "phee", "system": system, "seed": seed, "train_split": "train", "train_fraction": 1.0,
                STRICT_MICRO_F1: value} for system, values in (("minilm-crf", (0.60, 0.70, 0.80)),
                                                               ("feature-crf", (0.65,) * 3))
               for seed, value in zip((42, 43, 44), values)]
    evidence = report._evidence(results, "phee", "minilm-crf", "feature-crf")
    assert "95% CI over seeds [-" in evidence and "includes 0, not a significant difference" in evidence


@pytest.mark.slow
@pytest.mark.bench_smoke
def test_self_pretraining_smoke_fine_tunes_the_pretrained_encoder(tmp_path, monkeypatch):
    import self_pretraining

    monkeypatch.setenv("BENCH_SMOKE_DIR", str(tmp_path))
    assert self_pretraining.main(["--smoke"]) == 0
    encoder = self_pretraining.pretrained_dir("smoke", smoke=True)
    assert encoder.is_relative_to(tmp_path) and (encoder / "model.safetensors").is_file()
    pretraining = json.loads((encoder / "pretraining_data.json").read_text())
    assert [source["splits"] for source in pretraining["sources"]] == [["train"]], "training text only"
    assert 0.0 <= pretraining["padding_share"] < 0.05
    result = json.loads((tmp_path / "smoke_results" / "smoke__transformer-crf-self__s42__train__f1.json").read_text())
    # The fine-tuned model learned the synthetic notes (measured: strict micro-F1 0.75; the all-O baseline scores 0),
    # and its result is the scorer's on the predictions its run folder holds.
    assert result[STRICT_MICRO_F1] > 0.3
    headline, _, _ = rescored(tmp_path / "smoke_runs" / "smoke__transformer-crf-self__s42__train__f1")
    assert {name: result[name] for name in headline} == pytest.approx(headline, abs=1e-12)
    # fine-tuning started from the pre-trained encoder, with its vocabulary (no new tokenizer trained)
    argv = result["argv"]
    assert argv[argv.index("--model_name_or_path") + 1] == encoder.name and "--train_tokenizer" not in argv
    run_dir = tmp_path / "smoke_runs" / "smoke__transformer-crf-self__s42__train__f1"
    def vocabulary(folder):
        return json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]

    assert vocabulary(run_dir) == vocabulary(encoder)


def test_self_pretraining_queue_order_and_report_targets():
    import quality
    import report
    import self_pretraining

    todo = list(self_pretraining.steps(["phee", "bc2gm"]))
    kinds = [step[0] for step in todo]
    # vocabularies, then encoders, before any run that needs them; every pre-trained run after its encoder
    assert kinds[:4] == ["vocabulary", "vocabulary", "pretrain", "pretrain"]
    for index, step in enumerate(todo):
        if step[0] == "run" and "-self" in step[2]:
            assert ("pretrain", step[1], self_pretraining.system_variant(step[2])) in todo[:index]
    assert ("run", "bc2gm", "transformer-crf-self", 43, 1.0) not in todo  # BC2GM: one seed
    # the twice-as-long diagnostic: PHEE only, its own encoder folder, after everything else
    assert todo[-2:] == [("pretrain", "phee", "long"), ("run", "phee", "transformer-crf-self-long", 42, 1.0)]
    assert ("pretrain", "bc2gm", "long") not in todo
    assert self_pretraining.pretrained_dir("phee", "long").name == "phee__long"
    assert self_pretraining.record_variant({"plus": True}) == "plus"  # records from before variants
    assert ("run", "phee", "minilm-crf", 44, 0.1) in todo
    assert len({self_pretraining.result_path(step) for step in todo}) == len(todo)
    assert set(quality.SYSTEM_LABELS) >= set(report.SELF_SYSTEMS) - {"feature-crf"}

    def row(system, f1):
        return {"corpus": "phee", "system": system, "seed": 42, "train_split": "train", "train_fraction": 1.0,
                STRICT_MICRO_F1: f1}

    results = [row("feature-crf", 0.60), row("transformer-crf", 0.50), row("transformer-crf-wp", 0.55),
               row("transformer-crf-self", 0.62), row("minilm-crf", 0.70)]
    lines = report.self_pretraining_targets(results, "phee")
    assert lines[0].endswith("+2.0 points: **met**")
    assert "+7.0 points" in lines[1] and "+12.0 points" in lines[2] and "+5.0 points" in lines[3]
    assert lines[4].endswith("pending") and "budget" in lines[5] and "): pending" in lines[5]
    assert "+8.0 points" in lines[6]
    results.append(row("transformer-crf-self-long", 0.65))
    assert "+3.0 points" in report.self_pretraining_targets(results, "phee")[5]
    assert not any("budget" in line for line in report.self_pretraining_targets(results, "bc2gm"))
    results[3][STRICT_MICRO_F1] = 0.58
    assert report.self_pretraining_targets(results, "phee")[0].endswith("**MISSED by 2.0**")


@pytest.mark.slow
@pytest.mark.bench_smoke
def test_parallel_annotation_smoke_times_one_and_two_processes(tmp_path, monkeypatch):
    import parallel_annotation

    monkeypatch.setenv("BENCH_SMOKE_DIR", str(tmp_path))
    output = tmp_path / "parallel_annotation.json"
    parallel_annotation.main(["--smoke", "--num_notes", "12", "--num_long_notes", "1", "--rounds", "1",
                              "--configs", "torch_1x1", "torch_2x1", "onnx_int8_1x1", "onnx_int8_2x1",
                              "--output", str(output)])
    saved = json.loads(output.read_text())
    runs = saved["runs"]
    assert saved["settings"]["num_notes"] == 13
    agreement = runs["torch_2x1_agreement"]  # every note's outputs compared with one process's
    # Two processes give one process's outputs: the same model and code on the same notes, only other batch
    # neighbours (ulp-level differences: confidences, rounded to 6 decimals, move by 1e-6 at most; the README's
    # full-size run has every .ann identical too).
    assert agreement["notes"] == 13 and agreement["notes_same_ann"] == 13 and agreement["notes_same_entities"] == 13
    assert agreement["max_confidence_difference"] <= 2e-6
    import report

    monkeypatch.setattr(report.common, "RESULTS_DIR", tmp_path)
    assert any("notes with the same .ann" in line for line in report.parallel_section())
    assert runs["ratio_torch_2x1_over_torch_1x1"] == pytest.approx(runs["torch_1x1_seconds"] / runs["torch_2x1_seconds"])
    assert runs["torch_2x1_annotation_seconds"] < runs["torch_2x1_seconds"]  # process start and model load aside
    # Static int8 (the export's default, calibrated on the smoke corpus's training notes): two processes give exactly
    # one process's outputs, confidences included.
    int8 = runs["onnx_int8_2x1_agreement"]
    assert int8["notes_same_ann"] == 13 and int8["max_confidence_difference"] == 0.0 and int8["identical"] is True
    assert runs["ratio_onnx_int8_2x1_over_onnx_int8_1x1"] > 0


@pytest.mark.slow
@pytest.mark.bench_smoke
def test_active_learning_smoke_runs_both_strategies_and_counts_their_cost(tmp_path, monkeypatch):
    import active_learning

    monkeypatch.setenv("BENCH_SMOKE_DIR", str(tmp_path))
    assert active_learning.main(["--smoke", "--threads", "1"]) == 0
    saved = json.loads((tmp_path / "smoke_results" / "active_learning.json").read_text())
    runs = {path.stem: json.loads(path.read_text())
            for path in (tmp_path / "smoke_results" / "active_learning").glob("*.json")}
    # 1 seed: round 0 shared, then 2 rounds of each strategy; every run finished and aggregated
    assert sorted(runs) == sorted(["smoke__s42__shared__r0"] + [f"smoke__s42__{s}__r{r}" for s in
                                                                ("uncertainty", "random") for r in (1, 2)])
    assert saved["seeds"] == [42] and saved["runs_done"] == saved["runs_total"] == 5
    pool = active_learning.Corpus("smoke", tmp_path / "active_learning_data")
    for strategy in ("uncertainty", "random"):
        curve = saved["curves"][strategy]
        assert [p["round"] for p in curve] == [0, 1, 2]
        assert [p["notes"]["mean"] for p in curve] == [10, 20, 30]
        # annotation cost grows with every round, counted in words and gold entities as well as notes
        for cost in ("words", "entities"):
            assert all(a[cost]["mean"] < b[cost]["mean"] for a, b in zip(curve, curve[1:])), (strategy, cost)
        assert curve[0] == saved["curves"]["random"][0]  # round 0 is one model for both
        # each round's notes are the last round's plus the ones it chose, all from the pool; the costs are theirs
        chain = [runs["smoke__s42__shared__r0"]] + [runs[f"smoke__s42__{strategy}__r{r}"] for r in (1, 2)]
        for before, after in zip(chain, chain[1:]):
            added = before["next_ids"][strategy]
            assert len(added) == 10 and not set(added) & set(before["labelled_ids"])
            assert after["labelled_ids"] == sorted(before["labelled_ids"] + added)
        for run in chain:
            assert set(run["labelled_ids"]) <= set(pool.pool)
            assert {k: run[k] for k in ("notes", "words", "entities")} == pool.costs(run["labelled_ids"])
            assert run["train_sentences"] == sum(len(pool.rows[n]) for n in run["labelled_ids"])
            # the F1 is the scorer's on the test predictions the run wrote
            headline, _, _ = rescored(tmp_path / "smoke_runs" / "active_learning" / run["key"])
            assert {name: run[name] for name in headline} == pytest.approx(headline, abs=1e-12)
        assert chain[-1]["next_ids"] == {}  # the last round chooses nothing
    # Uncertainty chose by the model's uncertainty (the top of the ranking over the unannotated pool), not as random did
    first = runs["smoke__s42__shared__r0"]
    choice = first["selection"]["uncertainty"]
    assert choice["pool_notes"] == len(pool.pool) - 10
    assert choice["chosen_min_uncertainty"] >= choice["others_max_uncertainty"]
    assert choice["chosen_mean_uncertainty"] >= choice["pool_mean_uncertainty"]
    assert set(first["next_ids"]["uncertainty"]) != set(first["next_ids"]["random"])
    # the savings are read off the curves: random's final F1 is the target
    savings = saved["savings"]
    assert savings["target_f1"] == saved["curves"]["random"][-1][STRICT_MICRO_F1]["mean"]
    assert savings["random_final"]["words"] == saved["curves"]["random"][-1]["words"]["mean"]
    assert savings["reached"] == any(p[STRICT_MICRO_F1]["mean"] >= savings["target_f1"]
                                     for p in saved["curves"]["uncertainty"])
    reached = active_learning.cost_to_reach([(0.2, {"words": 100}), (0.4, {"words": 300}), (0.6, {"words": 500})], 0.5)
    assert reached == (pytest.approx({"words": 400.0}), pytest.approx(1.5))
    assert active_learning.cost_to_reach([(0.2, {"words": 100}), (0.3, {"words": 300})], 0.5) is None
    lines = active_learning.summary(tmp_path / "smoke_results" / "active_learning.json", tmp_path / "curves.png")
    # (a smoke model may not rise above round 0: then no saving can be read, and the section says so)
    expected = "- words: **saves" if savings["measurable"] else "- no saving can be read"
    assert savings["measurable"] == (not savings["reached"] or savings["uncertainty_round_at_target"] > 0)
    assert (tmp_path / "curves.png").is_file() and any(line.startswith(expected) for line in lines)
    # numbers and ids only: no text of any note in the results
    texts = [text for text in pool.texts.values() if len(text) > 40]
    for text in [json.dumps(saved)] + [json.dumps(run) for run in runs.values()]:
        assert "tokens" not in text and not any(note[:40] in text for note in texts)
    # a second call resumes: nothing is trained again
    before = {key: run["finished_utc"] for key, run in runs.items()}
    assert active_learning.main(["--smoke", "--threads", "1"]) == 0
    assert {path.stem: json.loads(path.read_text())["finished_utc"]
            for path in (tmp_path / "smoke_results" / "active_learning").glob("*.json")} == before


@pytest.mark.slow
@pytest.mark.bench_smoke
def test_spark_annotation_smoke_times_local_1_and_local_2(tmp_path, monkeypatch):
    pytest.importorskip("pyspark", reason="pyspark is not installed: `pip install -r requirements-spark.txt`")
    import spark_annotation

    monkeypatch.setenv("BENCH_SMOKE_DIR", str(tmp_path))
    output = tmp_path / "spark_annotation.json"
    spark_annotation.main(["--smoke", "--driver_memory", "1g", "--output", str(output)])
    saved = json.loads(output.read_text())
    assert saved["notes"]["notes"] == 300 and saved["entities_identical_local_1_local_2"] is True
    for name, master in (("local_1", "local[1]"), ("local_2", "local[2]")):
        (run,) = saved["runs"][name]
        assert run["master"] == master and run["notes"] == 300 and run["partitions"] == 4 * int(master[6])
        # the JVM and one Python worker per task slot were seen, and the annotation started after Spark did
        assert run["peak_rss_mb"]["jvm"] > 100 and run["peak_rss_mb"]["python_worker"] > 50
        assert 0 < run["seconds_to_first_worker"] < run["seconds"]
    assert saved["speedup_local_2_over_local_1"] > 0
