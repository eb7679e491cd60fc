"""Hand-computed checks of every number evaluate_ablations.py reports (issue 5)."""

import errno
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from clinical_ner_crf import reports
from clinical_ner_crf.documents import BratFormatError
from clinical_ner_crf.files import (
    PREDICTIONS_DIRNAME, REPORT_JSON_FILE, REPORT_MARKDOWN_FILE, RUN_INFO_FILE, TEST_PREDICTIONS_FILE,
    run_predictions_path, write_json_atomically,
)
from clinical_ner_crf.folder_safety import MANIFEST_FILE, Manifest
from clinical_ner_crf.n2c2_scoring import score_brat_folders
from clinical_ner_crf.command_line import run_main
from clinical_ner_crf.prediction_records import PredictionFormatError, prediction_record, write_predictions_file
from clinical_ner_crf.reports import plot_confusion_matrix
from conftest import REPO_ROOT, command
from test_n2c2_scoring import (
    BRAT_DOC1_GOLD, BRAT_DOC1_PRED, BRAT_DOC1_TEXT, BRAT_DOC2_GOLD, BRAT_DOC2_TEXT, DOC2, DOC2_GOLD, EXPECTED_STRICT,
    INVALID, counts,
)
from test_n2c2_scoring import brat_folders, relation_folders  # noqa: F401 (fixtures)
from test_token_metrics import approx

EVALUATE = command("evaluate_ablations")


def main(argv):
    """The command as a user runs it: ``main()`` under ``command_line.run_main``, so that a problem is one line
    on stderr and an exit status (SystemExit); on success, the report."""
    outcome = {}

    def run():
        outcome["report"] = EVALUATE.main(argv)

    try:
        run_main(run, "evaluate_ablations.py", data_errors=(BratFormatError, PredictionFormatError))
    except SystemExit as done:
        if done.code:
            raise
    return outcome["report"]


# ---------------------------------------------------------------------------
# Entity level
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Tag level, ablations, confusions
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Reading predictions
# ---------------------------------------------------------------------------


def _row(tokens, gold, pred, **extra):
    return {"id": "d-0", "document_id": "d", "sentence_index": 0, "tokens": tokens,
            "token_starts": list(range(len(tokens))), "token_ends": list(range(1, len(tokens) + 1)),
            "gold_tags": gold, "pred_tags": pred, "confidences": [1.0] * len(tokens), **extra}


# ---------------------------------------------------------------------------
# Brat folders
# ---------------------------------------------------------------------------


def test_a_gold_folder_scored_against_itself_is_perfect_with_a_duplicated_span(tmp_path):
    """Issue 25 item 12: one note holds the same span (type, offsets) twice, and a relation twice. The official script
    counts the copy, so gold against itself gave recall < 1; each exact duplicate now counts once, and is reported."""
    gold = tmp_path / "gold"
    gold.mkdir()
    (gold / "doc1.txt").write_text(BRAT_DOC1_TEXT)
    (gold / "doc1.ann").write_text(BRAT_DOC1_GOLD + "T6\tFrequency 17 22\tdaily\nT7\tReason 27 31\tpain\n"
                                   "R2\tReason-Drug Arg1:T7 Arg2:T1\n")
    (gold / "doc2.txt").write_text(BRAT_DOC2_TEXT)
    (gold / "doc2.ann").write_text(BRAT_DOC2_GOLD)
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
    Markdown, whatever --relation_setting says (relations: tests/test_n2c2_scoring.py)."""
    gold, pred = brat_folders
    # The fixture's one gold relation, and predictions without any: not scored (no table of zeros), said why.
    assert "relations_not_scored" in score_brat_folders(gold, pred)
    (gold / "doc1.ann").write_text(BRAT_DOC1_GOLD.replace("R1\tReason-Drug Arg1:T5 Arg2:T1\n", ""))
    report = _brat_main(gold, pred, tmp_path / "out", "--relation_setting", "gold_entities")
    assert set(report) == {"mode", "unit", "semantics", "gold_dir", "pred_dir", "num_documents", "num_gold_documents",
                           "num_gold_entities", "num_pred_entities", "duplicate_entities", "missing_predictions",
                           "num_missing_predictions", "unmatched_predictions", "skipped_prediction_files",
                           "skipped_prediction_lines", "malformed_pred_lines", "unparseable_pred_lines",
                           "stray_pred_types", "strict", "lenient", "notes"}
    assert "relations" not in json.loads((tmp_path / "out" / REPORT_JSON_FILE).read_text())
    assert "relation" not in (tmp_path / "out" / REPORT_MARKDOWN_FILE).read_text().lower()


@pytest.mark.parametrize("argv, message", [
    ([], "give either --predictions or --gold_brat/--pred_brat"),  # missing: neither mode
    (["--predictions", "run", "--gold_brat", "gold", "--pred_brat", "pred"],
     "give either --predictions or --gold_brat/--pred_brat"),  # mixed: both modes
    (["--gold_brat", "gold"], "--gold_brat and --pred_brat go together"),  # half of brat mode
])
def test_cli_rejects_mixed_or_missing_inputs(tmp_path, capsys, argv, message):
    capsys.readouterr()
    with pytest.raises(SystemExit) as raised:
        main([*(str(tmp_path / a) if a in ("run", "gold", "pred") else a for a in argv), "--output_dir",
              str(tmp_path / "out")])
    assert raised.value.code == 2  # a usage error (command_line's convention)
    assert _error_line(capsys.readouterr().err) == f"evaluate_ablations.py: error: {message}"
    assert not (tmp_path / "out").exists()


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


def _make_unreadable(path, how, monkeypatch):
    if how == "not_utf8":
        # A Latin-1 byte on line 2 (the surface text of T2 in BRAT_DOC1_PRED).
        path.write_bytes(BRAT_DOC1_PRED.replace("81\n", "81 \xb5g\n").encode("latin-1"))
    elif how == "folder":
        path.mkdir()
        (path / "inside.txt").write_text("x")
    elif how == "dangling_symlink":
        path.symlink_to(path.parent / "gone.ann")
    elif how == "no_permission":
        # chmod 000, as the kernel refuses it to a user who is not root: os.open fails with EACCES. Simulated, so
        # that the case runs as root too (CI runs as root, and root reads a file without permissions).
        path.write_text(BRAT_DOC1_PRED)
        real_open = os.open

        def refusing_open(file, flags, *args, **kwargs):
            if Path(os.fsdecode(file)) == path:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(file))
            return real_open(file, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", refusing_open)


# (how the file is broken, the kind in report.json, its line, the reason in the warning)
UNREADABLE = [("not_utf8", "not_utf8", 2, "not valid UTF-8"), ("folder", "not_a_file", None, "not a regular file"),
              ("dangling_symlink", "dangling_symlink", None, "dangling symbolic link"),
              ("no_permission", "unreadable", None, "Permission denied")]


@pytest.mark.parametrize("how, kind, line, reason", UNREADABLE)
def test_cli_brat_unreadable_prediction_file_is_skipped_and_reported(brat_folders, tmp_path, caplog, monkeypatch, how,
                                                                     kind, line, reason):
    gold, pred = brat_folders
    out = tmp_path / "report"
    (pred / "doc1.ann").unlink()
    _make_unreadable(pred / "doc1.ann", how, monkeypatch)
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
    (gold / "doc2.ann").write_bytes(BRAT_DOC2_GOLD.encode("utf-8") + b"T3\tDrug 0 7\tPatient \xff\n")
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
    assert str(out) in line and "--overwrite" in line
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before  # nothing touched
    assert not any("micro F1" in r.getMessage() for r in caplog.records)  # refused before scoring

    # --overwrite never removes a file the toolkit did not write: with the user's file there, it refuses.
    with pytest.raises(SystemExit) as raised:
        _brat_main(gold, pred, out, "--overwrite")
    assert raised.value.code == 2
    assert "holds 1 entries this toolkit did not write (my_notes.md)" in _error_line(capsys.readouterr().err)
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before
    (out / "my_notes.md").rename(tmp_path / "my_notes.md")
    report = _brat_main(gold, pred, out, "--overwrite")
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
    assert "--overwrite" in _error_line(capsys.readouterr().err)
    assert not any("micro F1" in r.getMessage() for r in caplog.records)
    assert [path.name for path in out.iterdir()] == ["my_notes.md"]
    with pytest.raises(SystemExit):  # the user's file would go with the folder: refused
        main(args + ["--overwrite"])
    assert [path.name for path in out.iterdir()] == ["my_notes.md"]

    (out / "my_notes.md").unlink()
    main(args + ["--overwrite"])
    (out / "runs" / "stale-run").mkdir()  # a run of the earlier report that the new one does not have
    main(args + ["--overwrite"])
    assert not (out / "runs" / "stale-run").exists()
    assert (out / "runs" / "bert-s1" / "confusion_matrix.png").is_file()


@pytest.mark.parametrize("line, kind, fragment", INVALID, ids=[kind for _, kind, _ in INVALID])
def test_a_gold_relation_that_cannot_be_right_is_an_error_naming_file_and_line(tmp_path, capsys, line, kind, fragment):
    gold, pred = tmp_path / "gold", tmp_path / "pred"
    gold.mkdir()
    pred.mkdir()
    (gold / "doc2.txt").write_text(DOC2)
    (gold / "doc2.ann").write_text(DOC2_GOLD + line)
    (pred / "doc2.ann").write_text(DOC2_GOLD)
    with pytest.raises(BratFormatError) as info:
        score_brat_folders(gold, pred)
    assert (info.value.path, info.value.line, info.value.kind) == (str(gold / "doc2.ann"), 4, kind)
    assert str(info.value).startswith(f"{gold / 'doc2.ann'}:4: relation R2: ") and fragment in str(info.value)
    # The command line: one line naming file and line, exit status 1 (bad data), no report written.
    with pytest.raises(SystemExit) as exit_info:
        main(["--gold_brat", str(gold), "--pred_brat", str(pred), "--output_dir", str(tmp_path / "out")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Metoprolol" not in err
    (error_line,) = [text for text in err.splitlines() if "error:" in text]
    assert error_line.startswith(f"evaluate_ablations.py: error: {gold / 'doc2.ann'}:4: relation R2: ")
    assert not (tmp_path / "out").exists()


def test_cli_relations_in_report_json_and_markdown(relation_folders, tmp_path):
    gold, pred = relation_folders
    out = tmp_path / "report"
    main(["--gold_brat", str(gold), "--pred_brat", str(pred), "--output_dir", str(out)])
    report = json.loads((out / REPORT_JSON_FILE).read_text())
    assert counts(report["relations"]["strict"]) == EXPECTED_STRICT
    markdown = (out / REPORT_MARKDOWN_FILE).read_text()
    assert "# n2c2-2018 official-style relation scores, end to end" in markdown
    assert "| Relation | Strict P | Strict R | Strict F1 | Lenient P | Lenient R | Lenient F1 | Gold |" in markdown
    assert "| Strength-Drug | 0.7500 | 0.6000 | 0.6667 | 1.0000 | 0.8000 | 0.8889 | 5 |" in markdown
    assert "| Dosage-Drug | 0.0000 | 0.0000 | 0.0000 | 0.0000 | 0.0000 | 0.0000 | 0 |" in markdown
    # Micro counts doc3's R5 (its argument is no entity of the file) as one more false positive.
    assert "| **Overall (micro)** | 0.3750 | 0.3750 | 0.3750 | 0.5000 | 0.5000 | 0.5000 | 8 |" in markdown
    assert "| **micro** | 3 | 5 | 5 | 4 | 4 | 4 |" in markdown  # the counts table
    assert "8 gold and 7 predicted relations; 2 predicted relations have an argument that matches no gold " \
           "entity" in markdown
    assert "Exact duplicate relations (same type and arguments in one note) counted once: 0 gold, 2 predicted." \
        in markdown
    assert "Predicted relations that cannot be right, scored as false positives: 2 (relation_argument_type 1, " \
           "reversed_relation 1;" in markdown
    # The entity report comes first, unchanged in form.
    assert markdown.index("official-style entity scores") < markdown.index("official-style relation scores")

    out2 = tmp_path / "report-gold-entities"
    report2 = main(["--gold_brat", str(gold), "--pred_brat", str(pred), "--output_dir", str(out2),
                    "--relation_setting", "gold_entities"])
    assert report2["relations"]["setting"] == "gold_entities"
    assert "relation scores, on gold entities" in (out2 / REPORT_MARKDOWN_FILE).read_text()
    assert counts(report2["relations"]["strict"]) == EXPECTED_STRICT  # a label only


def test_cli_rejects_an_unknown_relation_setting(relation_folders, tmp_path, capsys):
    gold, pred = relation_folders
    with pytest.raises(SystemExit) as exit_info:
        main(["--gold_brat", str(gold), "--pred_brat", str(pred), "--output_dir", str(tmp_path / "out"),
              "--relation_setting", "pipeline"])
    assert exit_info.value.code == 2
    assert "--relation_setting" in capsys.readouterr().err


def test_cli_compare_brat_gives_differences_intervals_and_p_values(relation_folders, tmp_path):
    """--compare_brat: the same predictions twice differ by 0, CI [0, 0], p = 1 (exact on 3 notes); the gold itself
    against the predictions differs by exactly the two reports' F1 difference, and comparison.json and report.md
    say so; the same seed gives the same numbers."""
    gold, pred = relation_folders
    same = tmp_path / "same"
    shutil.copytree(pred, same)
    report = main(["--gold_brat", str(gold), "--pred_brat", str(pred), "--compare_brat", str(same), "--output_dir",
                   str(tmp_path / "same_report")])
    metrics = report["comparison"]["metrics"]
    # The micro rows first, then one per scored type (the nine n2c2 entity and eight relation types, both modes).
    assert list(metrics)[:4] == ["entity_strict_micro_f1", "entity_lenient_micro_f1", "relation_strict_micro_f1",
                                 "relation_lenient_micro_f1"]
    assert len(metrics) == 4 + 2 * 9 + 2 * 8 and "entity_strict_Dosage_f1" in metrics
    for row in metrics.values():
        assert (row["difference"], row["ci95"], row["p_value"], row["p_value_exact"]) == (0.0, [0.0, 0.0], 1.0, True)
    written = (tmp_path / "same_report" / REPORT_JSON_FILE).read_text()
    assert "per_document" not in report and "per_document" not in json.loads(written)

    out = tmp_path / "gold_vs_pred"
    perfect = main(["--gold_brat", str(gold), "--pred_brat", str(gold), "--compare_brat", str(pred), "--output_dir",
                    str(out), "--seed", "3"])
    alone = score_brat_folders(gold, pred)
    strict = perfect["comparison"]["metrics"]["entity_strict_micro_f1"]
    assert strict["difference"] == pytest.approx(1.0 - alone["strict"]["micro"]["f1"]) and strict["difference"] > 0
    assert perfect["comparison"]["reference_scores"]["entity_strict_micro_f1"] == alone["strict"]["micro"]["f1"]
    assert strict["ci95"][0] <= strict["difference"] <= strict["ci95"][1]
    assert json.loads((out / "comparison.json").read_text()) == perfect["comparison"]
    markdown = (out / REPORT_MARKDOWN_FILE).read_text()
    assert "# Two systems compared on the same notes" in markdown and "| entity_strict_micro_f1 | +" in markdown
    again = main(["--gold_brat", str(gold), "--pred_brat", str(gold), "--compare_brat", str(pred), "--output_dir",
                  str(tmp_path / "again"), "--seed", "3"])
    assert again["comparison"] == perfect["comparison"]


def test_cli_compare_brat_needs_brat_mode(tmp_path, capsys):
    with pytest.raises(SystemExit) as raised:
        main(["--predictions", str(tmp_path / "run"), "--compare_brat", str(tmp_path), "--output_dir",
              str(tmp_path / "out")])
    assert raised.value.code == 2
    assert "--compare_brat compares two brat folders" in capsys.readouterr().err


def test_the_last_lines_say_how_many_notes_had_no_prediction_file(brat_folders, tmp_path, capsys):
    """A note without a prediction file counts its gold as false negatives (the official script skips it): the
    F1 a user quotes from the last lines comes with that count beside it."""
    gold, pred = brat_folders  # doc3 has no prediction file
    capsys.readouterr()
    _brat_main(gold, pred, tmp_path / "out")
    (headline,) = [line for line in capsys.readouterr().out.splitlines() if "entity strict micro-F1" in line]
    assert "(1 of 3 notes without a readable prediction file: all their gold counted as missed; the official " \
           "script would skip them)" in headline


def test_cli_official_scores_as_the_official_script_and_says_so(brat_folders, tmp_path, capsys):
    """--official: doc3, without a prediction file, is skipped instead of missed. By hand (the figures of
    test_brat_strict_and_lenient_by_hand less doc3's one missed Drug; doc1's duplicate Frequency, counted twice, is
    dropped by the pare-down): tp 4, fp 4, fn 3 -> P 1/2, R 4/7, F 2 * 2/7 / (15/14) = 8/15."""
    gold, pred = brat_folders
    capsys.readouterr()
    report = _brat_main(gold, pred, tmp_path / "out", "--official")
    strict = report["strict"]["micro"]
    assert (strict["tp"], strict["fp"], strict["fn"]) == (4, 4, 3)
    assert (strict["precision"], strict["recall"], strict["f1"]) == (0.5, approx(4 / 7), approx(8 / 15))
    assert (report["semantics"], report["num_documents"], report["num_missing_predictions"]) == ("official", 2, 1)
    assert json.loads((tmp_path / "out" / REPORT_JSON_FILE).read_text())["semantics"] == "official"
    markdown = (tmp_path / "out" / REPORT_MARKDOWN_FILE).read_text()
    assert "> Semantics: official (--official)" in markdown
    assert "Documents without a prediction file (skipped, as the official script skips them): 1." in markdown
    assert "counted every time, as the official script counts them" in markdown
    # The official macro, the mean over the two scored documents, has a row of its own beside the type macro.
    documents = report["strict"]["per_document_macro"]
    assert documents["documents"] == 2
    assert f"| **Per-document macro (the official script's macro, 2 documents)** | {documents['precision']:.4f} |" \
        in markdown
    (headline,) = [line for line in capsys.readouterr().out.splitlines() if "entity strict micro-F1" in line]
    assert "(the official script's semantics; 1 of 3 notes without a prediction file skipped)" in headline
    assert _brat_main(gold, pred, tmp_path / "default")["semantics"] == "project"


def test_cli_official_is_for_brat_folders(tmp_path, capsys):
    good = _document_run(tmp_path, "good", ())
    with pytest.raises(SystemExit) as raised:
        main(["--predictions", str(good), "--official", "--output_dir", str(tmp_path / "out")])
    assert raised.value.code == 2 and "--official scores brat folders" in capsys.readouterr().err


def _document_run(root, name, wrong_documents):
    """A run over 30 one-sentence notes, each with a Drug and a Reason; in ``wrong_documents`` the Reason is missed."""
    records = []
    for index in range(30):
        gold = ["B-Drug", "O", "B-Reason", "I-Reason"]
        pred = ["B-Drug", "O", "O", "O"] if index in wrong_documents else list(gold)
        records.append(prediction_record(document_id=f"note{index:02d}", sentence_index=0, tokens=[SECRET] * 4,
                                         gold_tags=gold, pred_tags=pred, confidences=[0.9] * 4))
    write_predictions_file(run_predictions_path(root / name), records)
    return root / name


def test_cli_compare_predictions_gives_differences_intervals_and_p_values_per_type(tmp_path):
    """--compare_predictions: two runs on the same 30 notes. Against itself: difference 0, CI [0, 0], p = 1. A run that
    misses the Reason in 20 notes: it finds 40 of 60 entities (micro-F1 2*40/(2*40+20) = 0.8) against 1.0, so the
    difference is -0.2, Drug's is 0 and Reason's -(1 - 2*10/(2*10+20)) = -0.5, and it is significant."""
    good, worse = _document_run(tmp_path, "good", ()), _document_run(tmp_path, "worse", range(20))
    same = main(["--predictions", str(good), "--compare_predictions", str(good), "--output_dir", str(tmp_path / "a"),
                 "--no_paper_ablations"])
    for row in same["significance"]["metrics"].values():
        assert (row["difference"], row["ci95"], row["p_value"]) == (0.0, [0.0, 0.0], 1.0)
    report = main(["--predictions", str(worse), "--compare_predictions", str(good), "--output_dir",
                   str(tmp_path / "b"), "--no_paper_ablations", "--seed", "4"])
    metrics = report["significance"]["metrics"]
    assert list(metrics)[:2] == ["entity_strict_micro_f1", "entity_lenient_micro_f1"]
    assert metrics["entity_strict_micro_f1"]["difference"] == pytest.approx(-0.2)
    assert metrics["entity_strict_Drug_f1"]["difference"] == 0.0
    assert metrics["entity_strict_Reason_f1"]["difference"] == pytest.approx(-0.5)
    strict = metrics["entity_strict_micro_f1"]
    assert strict["ci95"][1] < 0 and strict["p_value"] < 0.05 and strict["documents"] == 30
    assert json.loads((tmp_path / "b" / "comparison.json").read_text()) == report["significance"]
    assert "| entity_strict_Reason_f1 | -50.00 |" in (tmp_path / "b" / REPORT_MARKDOWN_FILE).read_text()
    again = main(["--predictions", str(worse), "--compare_predictions", str(good), "--output_dir",
                  str(tmp_path / "c"), "--no_paper_ablations", "--seed", "4"])
    assert again["significance"] == report["significance"]


def test_cli_compare_predictions_takes_one_run_on_each_side(tmp_path, capsys):
    good = _document_run(tmp_path, "good", ())
    with pytest.raises(SystemExit) as raised:
        main(["--predictions", str(good), str(good), "--compare_predictions", str(good), "--output_dir",
              str(tmp_path / "out")])
    assert raised.value.code == 2 and "--compare_predictions compares two runs" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
