"""clinical_ner_crf/command_line.py: exit statuses and one-line errors, JSON configs overridden by flags, config and flag parsing, library logs, and no heavy imports."""

import json
import logging
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Optional

import pytest

from clinical_ner_crf.command_line import (
    DATA_EXIT_STATUS, USAGE_EXIT_STATUS, DataError, UsageError, config_to_argv, exit_status, first_line, flag_value,
    parse_config_overrides, parse_script_args, run_main, show_info_logs,
)
from clinical_ner_crf.documents import BratFormatError
from conftest import REPO_ROOT, command

# ---------------------------------------------------------------------------
# Exit statuses and one-line errors
# ---------------------------------------------------------------------------


def test_exit_statuses_are_two_for_usage_and_one_for_data():
    assert (USAGE_EXIT_STATUS, DATA_EXIT_STATUS) == (2, 1)
    assert exit_status(UsageError("bad flag")) == 2
    assert exit_status(FileNotFoundError("no such file")) == 2
    assert exit_status(DataError("bad line")) == 1
    assert exit_status(ValueError("anything else")) == 1
    # A reader error that says a path on the command line is not there is a usage error, whatever the reader.
    assert exit_status(BratFormatError("notes", None, "not a folder", "not_a_folder")) == 2
    assert exit_status(BratFormatError("a.tsv", None, "no such file", "missing_file")) == 2
    assert exit_status(BratFormatError("a.ann", 3, "malformed line", "malformed_line")) == 1


def _raise(error):
    def main():
        raise error
    return main


@pytest.fixture
def no_debug(monkeypatch):
    monkeypatch.delenv("CLINICAL_NER_DEBUG", raising=False)


@pytest.mark.parametrize("error, status", [
    (UsageError("--output_dir runs/x holds input"), 2),
    (DataError("notes/a.ann:3: malformed line, fix or pass --skip_invalid"), 1),
])
def test_run_main_reports_one_line_and_exits(no_debug, capsys, error, status):
    with pytest.raises(SystemExit) as info:
        run_main(_raise(error), "annotate_notes.py")
    assert info.value.code == status
    captured = capsys.readouterr()
    assert captured.err == f"annotate_notes.py: error: {error}\n"  # one line, no traceback
    assert captured.out == ""


def test_run_main_script_data_errors_and_missing_input(no_debug, capsys):
    class ReaderError(ValueError):
        pass

    with pytest.raises(SystemExit) as info:
        run_main(_raise(ReaderError("x.jsonl:2: not JSON")), "evaluate.py", data_errors=(ReaderError,))
    assert info.value.code == 1
    assert capsys.readouterr().err == "evaluate.py: error: x.jsonl:2: not JSON\n"

    missing = BratFormatError("corpus/test", None, "not a folder (expected brat .txt/.ann files)", "not_a_folder")
    with pytest.raises(SystemExit) as info:
        run_main(_raise(missing), "prepare.py", data_errors=(BratFormatError,))
    assert info.value.code == 2
    assert capsys.readouterr().err == "prepare.py: error: corpus/test: not a folder (expected brat .txt/.ann files)\n"


def test_run_main_lets_bugs_through_and_debug_shows_the_traceback(no_debug, monkeypatch, capsys):
    # An error of no listed kind is a bug: it propagates (with its traceback), not turned into one line.
    with pytest.raises(KeyError):
        run_main(_raise(KeyError("oops")), "s.py")
    # A script's reader error that it did not list is not caught either.
    with pytest.raises(BratFormatError):
        run_main(_raise(BratFormatError("a.ann", 1, "bad", "malformed_line")), "s.py")
    monkeypatch.setenv("CLINICAL_NER_DEBUG", "1")
    with pytest.raises(UsageError, match="bad flag"):
        run_main(_raise(UsageError("bad flag")), "s.py")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("result, status", [(None, 0), (3, 3), (0, 0), ({"f1": 0.5}, 0)])
def test_run_main_exit_status_from_main_result(result, status):
    with pytest.raises(SystemExit) as info:
        run_main(lambda: result, "s.py")
    assert info.value.code == status


def test_run_main_in_a_real_process_prints_no_traceback():
    code = ("from clinical_ner_crf.command_line import UsageError, run_main\n"
            "def main():\n    raise UsageError('--max_length must be positive')\n"
            "run_main(main, 'run_ner_crf.py')\n")
    env = {key: value for key, value in os.environ.items() if key != "CLINICAL_NER_DEBUG"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 2
    assert done.stderr == "run_ner_crf.py: error: --max_length must be positive\n"
    assert done.stdout == ""


# ---------------------------------------------------------------------------
# JSON configs and flags
# ---------------------------------------------------------------------------


@dataclass
class ModelOptions:
    model_name: str = "default-model"
    use_crf: bool = False
    labels: list[str] = field(default_factory=lambda: ["O"])
    note: Optional[str] = None


@dataclass
class TrainOptions:
    epochs: int = 1
    learning_rate: float = 5e-5
    use_cpu: bool = False


def test_parse_script_args_flags_after_a_json_config_override_it(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_name": "from-config", "use_crf": True, "labels": ["Drug", "Dose"],
                                  "note": None, "epochs": 3, "learning_rate": 0.001}))
    model, train = parse_script_args([ModelOptions, TrainOptions], [str(config), "--epochs", "7", "--use_crf", "false"])
    assert model == ModelOptions(model_name="from-config", use_crf=False, labels=["Drug", "Dose"], note=None)
    assert train == TrainOptions(epochs=7, learning_rate=0.001, use_cpu=False)

    # Without a config file: flags only, defaults elsewhere.
    model, train = parse_script_args([ModelOptions, TrainOptions], ["--labels", "A", "B", "--note", "x"])
    assert model == ModelOptions(labels=["A", "B"], note="x")
    assert train == TrainOptions()

    # A flag given before the config file: the file is not read as a config, and is an argument nothing takes.
    with pytest.raises(ValueError, match="not used by the HfArgumentParser"):
        parse_script_args([ModelOptions, TrainOptions], ["--epochs", "2", str(config)])


def test_parse_script_args_refuses_several_cpu_processes_without_use_cpu(tmp_path, monkeypatch):
    import torch

    if torch.cuda.is_available():
        pytest.skip("the check is for machines without GPU")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UsageError, match="started as 2 processes on a machine without GPU: pass --use_cpu"):
        parse_script_args([ModelOptions, TrainOptions], ["--epochs", "2"])
    # --use_cpu in a JSON config counts as well as on the command line.
    config = tmp_path / "cpu.json"
    config.write_text(json.dumps({"use_cpu": True}))
    _, train = parse_script_args([ModelOptions, TrainOptions], [str(config)])
    assert train.use_cpu is True
    _, train = parse_script_args([ModelOptions, TrainOptions], ["--use_cpu"])
    assert train.use_cpu is True


def test_config_to_argv_bools_lists_and_none():
    config = {"do_train": True, "fp16": False, "labels": ["Drug", 2], "resume": None, "learning_rate": 2.5e-5,
              "output_dir": "runs/a b", "epochs": 3}
    assert config_to_argv(config) == ["--do_train", "true", "--fp16", "false", "--labels", "Drug", "2",
                                      "--learning_rate", "2.5e-05", "--output_dir", "runs/a b", "--epochs", "3"]
    assert config_to_argv({}) == []
    assert config_to_argv({"resume": None}) == []


def test_parse_config_overrides():
    assert parse_config_overrides("n_layers=2,dim=128,activation=gelu") == {
        "n_layers": 2, "dim": 128, "activation": "gelu"}
    assert parse_config_overrides(" dropout = 0.1 ,tie=true,,pad=null,name= bert small ") == {
        "dropout": 0.1, "tie": True, "pad": None, "name": "bert small"}
    assert type(parse_config_overrides("n=2")["n"]) is int
    assert parse_config_overrides(None) == {}
    assert parse_config_overrides("") == {}


@pytest.mark.parametrize("argv, expected", [
    ([], False),
    (["--epochs", "2"], False),
    (["--use_cpu"], True),
    (["--use_cpu", "--epochs", "2"], True),
    (["--use_cpu", "true"], True),
    (["--use_cpu", "False"], False),
    (["--use_cpu", "0"], False),
    (["--use_cpu", "no"], False),
    (["--use_cpu=no"], False),
    (["--use_cpu=True"], True),
    (["--use_cpu", "--use_cpu", "false"], False),  # the last one counts
    (["--use_cpu", "false", "--use_cpu=yes"], True),
    (["--use_cpu_only"], False),  # another flag
])
def test_flag_value(argv, expected):
    assert flag_value(argv, "use_cpu") is expected


def test_first_line():
    assert first_line(ValueError("\n   first line  \nsecond line\n")) == "first line"
    assert first_line(OSError("disk full")) == "disk full"
    assert first_line(ValueError("")) == "ValueError"
    assert first_line(UsageError("  \n \n")) == "UsageError"


# ---------------------------------------------------------------------------
# Logs
# ---------------------------------------------------------------------------


def test_show_info_logs_makes_library_info_lines_visible(caplog):
    library, script = logging.getLogger("clinical_ner_crf"), logging.getLogger("test_command_line_script")
    root = logging.getLogger()
    saved = library.level, script.level, root.level
    try:
        library.setLevel(logging.WARNING)
        script.setLevel(logging.WARNING)
        root.setLevel(logging.WARNING)
        caplog.clear()
        logging.getLogger("clinical_ner_crf.files").info("before: hidden")
        script.info("script before: hidden")
        assert caplog.messages == []

        show_info_logs(script)
        logging.getLogger("clinical_ner_crf.files").info("wrote %d files", 3)
        script.info("script line")
        logging.getLogger("clinical_ner_crf.brat").debug("debug: still hidden")
        logging.getLogger("other_package").info("other: hidden")
        assert caplog.messages == ["wrote 3 files", "script line"]
        assert (library.level, script.level, root.level) == (logging.INFO, logging.INFO, logging.WARNING)
    finally:
        library.setLevel(saved[0])
        script.setLevel(saved[1])
        root.setLevel(saved[2])


# ---------------------------------------------------------------------------
# Light to import
# ---------------------------------------------------------------------------


def test_importing_command_line_imports_no_torch_transformers_or_datasets():
    code = ("import sys\nimport clinical_ner_crf.command_line\n"
            "print(sorted(name for name in ('torch', 'transformers', 'datasets') if name in sys.modules))\n"
            "print('clinical_ner_crf.command_line' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "True"]


@pytest.mark.parametrize("name, abbreviated, flag", [
    ("prepare_n2c2", "--output", "--output_dir"), ("run_ner_crf", "--output", "--output_dir"),
    ("run_re", "--output", "--output_dir"), ("pretrain_mlm", "--output", "--output_dir"),
    ("evaluate_ablations", "--output", "--output_dir"), ("annotate_notes", "--output", "--output_dir"),
    ("export_onnx", "--quant", "--quantize"), ("parameter_table", "--config", "--config_names"),
])
def test_no_command_takes_a_prefix_for_a_flag(name, abbreviated, flag, tmp_path, capsys):
    """argparse's abbreviations are off everywhere: ``--output x`` is not ``--output_dir x`` (issue 28)."""
    argv = [abbreviated, str(tmp_path / "x")]
    if name == "export_onnx":  # its required flags given: the prefix is the one thing wrong
        argv = ["--model_name_or_path", str(tmp_path / "model"), "--output_dir", str(tmp_path / "onnx"), "--quant", "int8"]
    with pytest.raises((SystemExit, ValueError)) as raised:
        command(name).main(argv)
    if isinstance(raised.value, SystemExit):  # argparse: exit status 2 and its error line
        assert raised.value.code == 2
        message = [line for line in capsys.readouterr().err.splitlines() if "error:" in line][-1]
    else:  # the training commands' HfArgumentParser: run_main makes this the one-line usage error
        message = str(raised.value)
    # It names what it could not take: the prefix, or the full flag still missing (a prefix would have filled it).
    named = re.search(rf"(^|[\s'\"]){re.escape(abbreviated)}([\s'\",]|$)", message)
    assert named and ("unrecognized" in message or "not used" in message) or (" required: " in message and flag in message), \
        message
    assert not (tmp_path / "x").exists() and not (tmp_path / "onnx").exists()
