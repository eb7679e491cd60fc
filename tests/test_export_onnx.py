"""export_onnx.py and annotate_notes.py --backend onnx as a user meets them: one line and an exit status for each
mistake (a missing model, a relation model, a truncated or malformed file), and an export that appears whole or not
at all, also when it is killed (docs/architecture.md, "Output folders, re-runs and interruptions")."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clinical_ner_crf.command_line import run_main
from clinical_ner_crf.folder_safety import MANIFEST_FILE
from conftest import REPO_ROOT, command, tiny_encoder_config
from test_annotate_notes import train_tiny_crf, write_txt

annotate_notes = command("annotate_notes")  # the command, called in-process as from its command line
export_onnx = command("export_onnx")  # the command, called in-process as from its command line

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def run_export(argv, capsys) -> tuple[int, list[str]]:
    """export_onnx.py as its command line runs it (command_line.run_main): the exit status and stderr's lines that
    are not logging."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        run_main(lambda: export_onnx.main([str(arg) for arg in argv]), "export_onnx.py")
    err = capsys.readouterr().err
    return exited.value.code, [line for line in err.splitlines() if line.strip() and " - INFO - " not in line]


def fingerprint(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def crf_dir(tmp_path_factory):
    return train_tiny_crf(tmp_path_factory.mktemp("crf") / "model", steps=0)


@pytest.fixture(scope="module")
def relation_dir(tmp_path_factory, wordpiece_tokenizer):
    """As run_re.py saves a relation model: a stock sequence classifier with its relation settings in the config."""
    from transformers import AutoModelForSequenceClassification

    config = tiny_encoder_config("distilbert", num_labels=2, id2label={0: "none", 1: "linked"},
                                 label2id={"none": 0, "linked": 1})
    model = AutoModelForSequenceClassification.from_config(config)
    model.config.relation_sentence_window = 1
    path = tmp_path_factory.mktemp("relations") / "model"
    model.save_pretrained(path)
    wordpiece_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def onnx_dir(crf_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "export"
    assert export_onnx.main(["--model_name_or_path", str(crf_dir), "--output_dir", str(out)]) == 0
    return out


# ---------------------------------------------------------------------------------------------
# export_onnx.py: one line for each mistake, nothing left behind
# ---------------------------------------------------------------------------------------------


def test_a_missing_model_is_one_line_and_leaves_no_folder(tmp_path, capsys):
    for missing in (tmp_path / "no_such_model", "runs/no_such_model"):  # a path; a name that reads as a Hub id
        status, lines = run_export(["--model_name_or_path", missing, "--output_dir", tmp_path / "new" / "onnx"], capsys)
        assert status == 2 and len(lines) == 1, lines
        assert lines[0].startswith("export_onnx.py: error: --model_name_or_path ") and str(missing) in lines[0]
        assert not (tmp_path / "new").exists()  # nothing created, not even the parent or a lock


def test_a_relation_model_is_refused_saying_what_exports(relation_dir, tmp_path, capsys):
    status, lines = run_export(["--model_name_or_path", relation_dir, "--output_dir", tmp_path / "onnx"], capsys)
    assert status == 2 and len(lines) == 1, lines
    assert "is a relation model (run_re.py output" in lines[0] and "only token-classification" in lines[0]
    assert "export the entity model (run_ner_crf.py output)" in lines[0]
    assert not (tmp_path / "onnx").exists()


def test_a_truncated_or_malformed_model_folder_is_one_line(crf_dir, tmp_path, capsys):
    truncated = tmp_path / "truncated"
    shutil.copytree(crf_dir, truncated)
    weights = (crf_dir / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(weights[:len(weights) // 3])
    status, lines = run_export(["--model_name_or_path", truncated, "--output_dir", tmp_path / "a"], capsys)
    assert status == 1 and len(lines) == 1, lines
    assert f"{truncated / 'model.safetensors'}: the model cannot be loaded" in lines[0] and "truncated" in lines[0]

    for broken in ('{"model_type": "crf_tok', "{}", "[1, 2]"):  # cut short; no model type; not an object
        folder = tmp_path / f"config{len(broken)}"
        shutil.copytree(crf_dir, folder)
        (folder / "config.json").write_text(broken)
        status, lines = run_export(["--model_name_or_path", folder, "--output_dir", tmp_path / "b"], capsys)
        assert status == 1 and len(lines) == 1, (broken, lines)
        assert lines[0].startswith(f"export_onnx.py: error: {folder / 'config.json'}: not a readable model config")

    no_config = tmp_path / "no_config"
    no_config.mkdir()
    status, lines = run_export(["--model_name_or_path", no_config, "--output_dir", tmp_path / "c"], capsys)
    assert status == 2 and len(lines) == 1 and "holds no config.json" in lines[0]
    assert not [path for path in tmp_path.iterdir() if path.name in ("a", "b", "c") or path.name.startswith(".")]


def test_overwrite_is_a_flag_of_its_own_never_an_abbreviation(crf_dir, onnx_dir, tmp_path, capsys):
    status, lines = run_export(["--model_name_or_path", crf_dir, "--output_dir", onnx_dir], capsys)
    assert status == 2 and len(lines) == 1 and "--overwrite" in lines[0]
    for prefix in ("--over", "--overwrite_out", "--quant", "int8"):  # prefixes are not taken for a flag
        status, lines = run_export(["--model_name_or_path", crf_dir, "--output_dir", onnx_dir, prefix], capsys)
        assert status == 2 and lines == [f"export_onnx.py: error: unrecognized arguments: {prefix} "
                                         "(see export_onnx.py --help)"]
    # A file the toolkit did not write keeps the folder from being replaced, --overwrite or not.
    mine = onnx_dir / "my_notes.md"
    mine.write_text("mine")
    before = fingerprint(onnx_dir)
    try:
        status, lines = run_export(["--model_name_or_path", crf_dir, "--output_dir", onnx_dir, "--overwrite"], capsys)
        assert status == 2 and len(lines) == 1 and "my_notes.md" in lines[0] and "did not write" in lines[0]
        assert fingerprint(onnx_dir) == before
    finally:
        mine.unlink()
    status, _ = run_export(["--model_name_or_path", crf_dir, "--output_dir", onnx_dir, "--overwrite"], capsys)
    assert status == 0
    assert MANIFEST_FILE in os.listdir(onnx_dir) and not [p for p in onnx_dir.parent.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------------------------------
# annotate_notes.py --backend onnx: a broken export folder is one line naming the file, exit status 1
# ---------------------------------------------------------------------------------------------


def annotate_onnx(model_dir: Path, tmp_path: Path, capsys) -> tuple[int, list[str]]:
    notes = tmp_path / "notes"
    write_txt(notes / "a.txt", "Aspirin 81 mg PO daily.\n")
    capsys.readouterr()
    status = annotate_notes.main(["--model_name_or_path", str(model_dir), "--backend", "onnx", "--input_dir",
                                  str(notes), "--output_dir", str(tmp_path / "annotated")])
    err = capsys.readouterr().err
    return status, [line for line in err.splitlines() if line.strip() and " - INFO - " not in line]


@pytest.mark.parametrize("damage", ["truncated_graph", "crf_json_cut_short", "crf_json_without_labels",
                                    "crf_json_bad_scores", "config_json_cut_short"])
def test_a_broken_export_folder_is_one_line_naming_the_file(onnx_dir, tmp_path, capsys, damage):
    broken = tmp_path / "broken_onnx"
    shutil.copytree(onnx_dir, broken)
    if damage == "truncated_graph":
        graph = (broken / "model.onnx").read_bytes()
        (broken / "model.onnx").write_bytes(graph[:len(graph) // 2])
        name, reason = "model.onnx", "onnxruntime cannot load it"
    elif damage == "crf_json_cut_short":
        (broken / "crf.json").write_text((onnx_dir / "crf.json").read_text()[:200])
        name, reason = "crf.json", "not valid JSON"
    elif damage == "crf_json_without_labels":
        crf = json.loads((onnx_dir / "crf.json").read_text())
        del crf["labels"]
        (broken / "crf.json").write_text(json.dumps(crf))
        name, reason = "crf.json", "no 'labels'"
    elif damage == "crf_json_bad_scores":
        crf = json.loads((onnx_dir / "crf.json").read_text())
        crf["transitions"] = crf["transitions"][:3]
        (broken / "crf.json").write_text(json.dumps(crf))
        name, reason = "crf.json", "CRF scores of shapes"
    else:
        (broken / "config.json").write_text((onnx_dir / "config.json").read_text()[:50])
        name, reason = "config.json", "not valid JSON"
    status, lines = annotate_onnx(broken, tmp_path, capsys)
    assert status == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"annotate_notes.py: error: {broken / name}: ") and reason in lines[0], lines[0]
    assert "export the model again: python export_onnx.py --model_name_or_path" in lines[0]


# ---------------------------------------------------------------------------------------------
# Killed while exporting: the target is absent (or as it was); the next run removes the sibling and says so
# ---------------------------------------------------------------------------------------------


def start_export(model_dir: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "export_onnx.py", "--model_name_or_path", str(model_dir), "--output_dir",
                             str(out), "--quantize", "int8", "--quantization_method", "dynamic", *extra], cwd=REPO_ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_while_writing(process: subprocess.Popen, out: Path) -> Path:
    """SIGKILL the export once its hidden sibling holds the fp32 graph (verification and int8 still to come)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        partial = [path for path in out.parent.glob(f".{out.name}.partial-*") if (path / "model.onnx").exists()]
        if partial:
            process.send_signal(signal.SIGKILL)
            process.communicate()
            return partial[0]
        time.sleep(0.005)
    process.kill()
    out_text, err_text = process.communicate()
    raise AssertionError(f"the export ended before it could be killed (status {process.returncode}): {err_text[-2000:]}")


def rerun(model_dir: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "export_onnx.py", "--model_name_or_path", str(model_dir), "--output_dir",
                           str(out), "--quantize", "int8", "--quantization_method", "dynamic", *extra], cwd=REPO_ROOT, env=ENV, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_an_export_killed_while_writing_leaves_no_half_folder_and_the_next_run_cleans_up(crf_dir, onnx_dir, tmp_path):
    # A new target: absent after the kill, with the hidden sibling beside it.
    out = tmp_path / "export"
    partial = kill_while_writing(start_export(crf_dir, out), out)
    assert not out.exists() and partial.is_dir()
    result = rerun(crf_dir, out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"removed {partial}, the unfinished output of an earlier run that was stopped" in result.stderr
    assert "took over the lock left by export_onnx.py" in result.stderr
    assert {"model.onnx", "model.int8.onnx", "crf.json", "onnx_export.json", MANIFEST_FILE} <= set(os.listdir(out))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["export"]  # no sibling, no lock file

    # Over an earlier export (--overwrite): the old folder stays as it was until the new one is complete.
    old = tmp_path / "old_export"
    shutil.copytree(onnx_dir, old)
    before = fingerprint(old)
    partial = kill_while_writing(start_export(crf_dir, old, "--overwrite"), old)
    assert fingerprint(old) == before and partial.is_dir()
    result = rerun(crf_dir, old, "--overwrite")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"removed {partial}" in result.stderr
    assert "model.int8.onnx" in os.listdir(old) and fingerprint(old) != before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["export", "old_export"]


# ---------------------------------------------------------------------------------------------
# Static int8: scales fixed from calibration notes, so a note's scores never depend on its batch (issue 30)
# ---------------------------------------------------------------------------------------------


CALIBRATION_NOTES = {f"note{i}": f"Started aspirin {10 * i + 5} mg daily for chest pain; metoprolol {i + 1} mg PO BID "
                                 f"since {i + 1} days.\nNo rash.\n" for i in range(6)}


def test_static_int8_scores_each_window_the_same_alone_in_a_batch_and_in_reverse(crf_dir, tmp_path):
    import numpy as np

    from clinical_ner_crf.files import ONNX_INT8_FILE
    from clinical_ner_crf.onnx_backend import OnnxTokenClassifier, pad_batch
    from clinical_ner_crf.windows import encode_notes, load_tokenizer

    notes = tmp_path / "calibration"
    for name, text in CALIBRATION_NOTES.items():
        write_txt(notes / f"{name}.txt", text)
    before = fingerprint(notes)
    out = tmp_path / "export"
    assert export_onnx.main(["--model_name_or_path", str(crf_dir), "--output_dir", str(out), "--quantize", "int8",
                             "--quantization_method", "static", "--calibration_dir", str(notes)]) == 0
    assert fingerprint(notes) == before  # an input: read, never written
    quantization = json.loads((out / "quantization.json").read_text())
    assert quantization["method"].endswith("quantize_static") and quantization["calibration_notes"] == 6
    assert len(quantization["calibration"]["input_ids_sha256"]) == 64 and quantization["kept_fp32"]
    for name in ("quantization.json", "README.md", "onnx_export.json"):
        assert "aspirin" not in (out / name).read_text()  # the calibration set by hash, never by text
    assert "static int8 quantization" in (out / "README.md").read_text()

    model, tokenizer = OnnxTokenClassifier(out, model_file=ONNX_INT8_FILE), load_tokenizer(out)
    encoded = encode_notes(CALIBRATION_NOTES, tokenizer, 32, 8)  # short windows: several per note
    rows = list(range(len(encoded.rows["input_ids"])))
    keys = [key for key in ("input_ids", "attention_mask", "token_type_ids") if key in model.input_names]

    def scores(order):
        """Each window's emissions at its own positions, with the windows batched in ``order``."""
        emissions = model.emissions(pad_batch(encoded.rows, order, keys, tokenizer.pad_token_id))
        return {row: emissions[index, :len(encoded.rows["input_ids"][row])] for index, row in enumerate(order)}

    together, reversed_order = scores(rows), scores(rows[::-1])
    assert len(rows) > 6
    for row in rows:
        alone = scores([row])[row]
        assert np.abs(alone - together[row]).max() <= 1e-6 and np.abs(alone - reversed_order[row]).max() <= 1e-6


@pytest.mark.parametrize("extra, message", [
    (["--quantize", "int8"], "--quantize int8 (static, the default) measures activation ranges on notes like yours: "
                             "give --calibration_dir NOTES"),
    (["--quantize", "int8", "--calibration_dir", ".", "--dataset_path", "."], "not both"),
    (["--calibration_dir", "."], "add --quantize int8"),
    (["--quantize", "int8", "--quantization_method", "dynamic", "--dataset_path", "."], "drop it"),
    (["--quantize", "int8", "--calibration_dir", "no_such_notes"], "--calibration_dir no_such_notes: no such folder"),
    (["--quantize", "int8", "--dataset_path", "."], "not a prepare_n2c2.py output folder"),
])
def test_static_quantization_flags_that_do_not_go_together_are_one_line(crf_dir, tmp_path, capsys, extra, message):
    status, lines = run_export(["--model_name_or_path", crf_dir, "--output_dir", tmp_path / "out", *extra], capsys)
    assert status == 2 and len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "out").exists()
