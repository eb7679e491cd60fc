"""The benchmark on a user's own corpus (bench/ --dataset_path): checks, queue, report and the whole path.

Synthetic data and the smoke models only; the queue's real runs are never started here.
"""

import json
import sys
from pathlib import Path

import pytest

from clinical_ner_crf.files import run_predictions_path
from clinical_ner_crf.metrics import LENIENT_MICRO_F1, STRICT_MACRO_F1, STRICT_MICRO_F1
from clinical_ner_crf.prediction_records import read_predictions
from clinical_ner_crf.token_metrics import entity_scores, headline_metrics
from conftest import command

prepare_n2c2 = command("prepare_n2c2")  # the command, called in-process as from its command line

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "bench"))

# The feature-CRF packages of requirements-dev.txt (installed by `make test`): a plain import, so that their absence
# fails the module instead of skipping its tests unseen.
import psutil  # noqa: E402,F401
import sklearn_crfsuite  # noqa: E402,F401


def rescored(run_dir):
    """The headline metrics recomputed from the predictions a run folder holds."""
    records = read_predictions(run_predictions_path(run_dir))
    gold, pred = [r["gold_tags"] for r in records], [r["pred_tags"] for r in records]
    return headline_metrics(entity_scores(gold, pred, "strict"), entity_scores(gold, pred, "lenient"))


@pytest.fixture(scope="module")
def user_dataset(tmp_path_factory):

    out = tmp_path_factory.mktemp("user") / "clinic_notes"
    prepare_n2c2.main(["--synthetic", "12", "--seed", "7", "--output_dir", str(out)])
    return out


@pytest.mark.parametrize("script", ["quality", "feature_crf"])
def test_a_bad_dataset_path_stops_with_one_line_before_any_work(script, user_dataset, tmp_path, capsys):
    main = __import__(script).main
    not_prepared = tmp_path / "raw_notes"
    not_prepared.mkdir()
    (not_prepared / "note.txt").write_text("Aspirin 81 mg daily.")
    for argv, named, expected in (
            (["--dataset_path", str(tmp_path / "missing")], str(tmp_path / "missing"), "no such folder"),
            (["--dataset_path", str(not_prepared)], str(not_prepared),
             "dataset_dict.json, stats.json, train, test missing"),
            (["--dataset_path", str(user_dataset), "--corpus_name", "phee"], "'phee'", "not a built-in corpus"),
            (["--dataset_path", str(user_dataset), "--corpus_name", "my__notes"], "'my__notes'", "single '_'")):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        message = str(stop.value.code)
        assert "\n" not in message and named in message and expected in message
        assert "prepare_n2c2.py output folder" in message or "--corpus_name" in message
    assert capsys.readouterr().out == ""  # nothing ran


def test_the_queue_lists_a_user_corpus_like_the_built_in_ones(user_dataset, capsys):
    import quality

    assert quality.drops_sentences(user_dataset)  # synthetic notes are 75% all-O: down-sampling drops some
    assert quality.main(["--dataset_path", str(user_dataset), "--systems", "transformer-crf", "--seeds", "42",
                         "--list"]) == 0
    listed = [line.split()[1] for line in capsys.readouterr().out.splitlines()[:-1]]
    assert listed == [f"clinic_notes__transformer-crf__s42__{split}" for split in
                      ("train__f1", "train_downsampled__f1", "train__f0.1", "train__f0.25", "train__f0.5")]
    # named, and beside a built-in corpus: after it at each step, as NCBI comes after PHEE
    items = list(quality.queue(["phee", "mine"], ["minilm-crf"], [42], quality.EFFICIENT | {"mine": False}))
    assert items[:2] == [("phee", "minilm-crf", 42, "train", 1.0), ("mine", "minilm-crf", 42, "train", 1.0)]
    assert ("mine", "minilm-crf", 42, "train_downsampled", 1.0) not in items


def test_report_gives_a_user_corpus_its_own_section():
    import report

    def run(corpus, system, f1, split="train"):
        time_key = "train_seconds" if system == "feature-crf" else "train_wall_seconds"
        return {"corpus": corpus, "system": system, "seed": 42, "train_split": split, "train_fraction": 1.0,
                STRICT_MICRO_F1: f1, STRICT_MACRO_F1: f1, LENIENT_MICRO_F1: f1, time_key: 10.0, "peak_rss_mb": 500.0}

    built_in = [run("phee", "feature-crf", 0.6)]
    assert report.user_corpus_sections(built_in) == []  # the built-in report is unchanged
    lines = report.user_corpus_sections(built_in + [run("clinic_notes", "feature-crf", 0.70),
                                                    run("clinic_notes", "minilm-crf", 0.78)])
    assert lines[0] == "### clinic_notes"
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| System")]
    assert [row.split(" | ")[0] for row in rows] == ["| Feature CRF (sklearn-crfsuite, peer)", "| MiniLM-CRF"]
    assert "| 78.0 (n=1) |" in rows[1]
    assert any("MiniLM-CRF vs feature CRF (micro-F1): +8.0 points" in line for line in lines)
    assert not any("pending" in line for line in lines)


@pytest.mark.slow  # a run_ner_crf.py subprocess: 15-30 s on 2 shared cores
@pytest.mark.bench_smoke
def test_a_user_corpus_runs_end_to_end(user_dataset, tmp_path, monkeypatch):
    """The user's path: prepare_n2c2.py output -> the feature CRF -> a smoke run of the queue on it."""
    import feature_crf
    import quality

    assert feature_crf.main(["--dataset_path", str(user_dataset), "--seeds", "42", "--train_splits", "train",
                             "--max_iterations", "10", "--results_dir", str(tmp_path / "results"),
                             "--output_dir", str(tmp_path / "runs")]) == 0
    peer = json.loads((tmp_path / "results" / "quality" / "clinic_notes__feature-crf__s42__train__f1.json").read_text())
    # Above the all-O baseline (0): measured 0.54 after 10 iterations; the scorer's numbers on the tags its run
    # folder holds.
    assert peer["corpus"] == "clinic_notes" and peer[STRICT_MICRO_F1] > 0.2
    peer_run = tmp_path / "runs" / "clinic_notes__feature-crf__s42__train__f1"
    assert (peer_run / "run_info.json").is_file()
    headline = rescored(peer_run)
    assert {name: peer[name] for name in headline} == headline

    monkeypatch.setenv("BENCH_SMOKE_DIR", str(tmp_path / "smoke"))
    assert quality.main(["--dataset_path", str(user_dataset), "--smoke", "--systems", "transformer-crf"]) == 0
    key = "clinic_notes__transformer-crf__s42__train__f1"
    result = json.loads((tmp_path / "smoke" / "smoke_results" / f"{key}.json").read_text())
    assert result["key"] == key and result["corpus"] == "clinic_notes" and result["smoke"] is True
    assert result["run_info"]["synthetic"] is True
    # The scorer's numbers on the predictions the run wrote; and the 2-epoch smoke model found some entities
    # (measured, repeatably: strict micro-F1 0.17), where the all-O baseline scores 0.
    headline = rescored(tmp_path / "smoke" / "smoke_runs" / key)
    assert {name: result[name] for name in headline} == pytest.approx(headline, abs=1e-12)
    assert result[STRICT_MICRO_F1] > 0.05
    for saved in (peer, result):  # numbers and settings only
        assert "tokens" not in json.dumps(saved) and str(user_dataset.parent) not in json.dumps(saved)
