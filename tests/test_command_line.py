"""clinical_ner_crf/command_line.py: exit statuses and one-line errors, JSON configs overridden by flags, config and flag parsing, library logs, and no heavy imports."""

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Optional

import pytest

from clinical_ner_crf.command_line import (
    DATA_EXIT_STATUS, DEPRECATED_FLAGS, SHARED_FLAG_HELP, USAGE_EXIT_STATUS, DataError, TrainingFlags, UsageError,
    answer_help, config_to_argv, exit_status, first_line, flag_value, parse_command, parse_config_overrides,
    parse_script_args, read_config, rewrite_deprecated_flags, run_flags, run_main, take_run_flags,
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


def test_run_main_a_bug_is_one_line_too_and_debug_shows_the_traceback(no_debug, monkeypatch, capsys):
    # An error of no listed kind is a bug: one line that says so and how to see the traceback, exit status 1.
    with pytest.raises(SystemExit) as info:
        run_main(_raise(KeyError("oops")), "s.py")
    assert info.value.code == 1
    assert capsys.readouterr().err == ("s.py: error: KeyError: 'oops' (unexpected: run again with --debug for the "
                                       "traceback, and report it)\n")
    # A path the system cannot open: the path and the reason, not "[Errno 2] ...".
    with pytest.raises(SystemExit) as info:
        run_main(_raise(PermissionError(13, "Permission denied", "notes/a.txt")), "s.py")
    assert info.value.code == 1
    assert capsys.readouterr().err == "s.py: error: notes/a.txt: permission denied\n"
    # --debug on the command line: the error itself, with its traceback.
    monkeypatch.setattr(sys, "argv", ["s.py", "--debug"])
    with pytest.raises(KeyError):
        run_main(_raise(KeyError("oops")), "s.py")
    monkeypatch.setattr(sys, "argv", ["s.py"])
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
    with pytest.raises(UsageError, match=r"^unrecognized arguments: \S*config.json \(see .* --help\)$"):
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
    # An empty list cannot be said to argparse (a flag of several values takes at least one): one line, not a flag
    # with no value that the parser then misreads.
    with pytest.raises(UsageError, match="^--text_splits: an empty list in a config"):
        config_to_argv({"text_splits": []})


def test_parse_config_overrides():
    assert parse_config_overrides("n_layers=2,dim=128,activation=gelu") == {
        "n_layers": 2, "dim": 128, "activation": "gelu"}
    assert parse_config_overrides(" dropout = 0.1 ,tie=true,,pad=null,name= bert small ") == {
        "dropout": 0.1, "tie": True, "pad": None, "name": "bert small"}
    assert type(parse_config_overrides("n=2")["n"]) is int
    # A comma inside a value (a JSON list) is the value's: only one before "name=" starts a new setting.
    assert parse_config_overrides("labels=[1,2],dim=8,name=a,b") == {"labels": [1, 2], "dim": 8, "name": "a,b"}
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
    ("annotate_spark", "--output", "--output_dir"), ("review_notes", "--output", "--output_dir"),
])
def test_no_command_takes_a_prefix_for_a_flag(name, abbreviated, flag, tmp_path, capsys):
    """argparse's abbreviations are off everywhere: ``--output x`` is not ``--output_dir x`` (issue 28)."""
    argv = [abbreviated, str(tmp_path / "x")]
    if name == "export_onnx":  # its required flags given: the prefix is the one thing wrong
        argv = ["--model_name_or_path", str(tmp_path / "model"), "--output_dir", str(tmp_path / "onnx"), "--quant", "int8"]
    with pytest.raises(SystemExit) as raised:  # as a user runs it: main() under run_main
        run_main(lambda: command(name).main(argv), f"{name}.py")
    assert raised.value.code == 2
    (message,) = capsys.readouterr().err.splitlines()  # one line
    # It names what it could not take: the prefix, or the full flag still missing (a prefix would have filled it).
    named = re.search(rf"(^|[\s'\"]){re.escape(abbreviated)}([\s'\",]|$)", message)
    assert named and "unrecognized" in message or (" required: " in message and flag in message), message
    assert not (tmp_path / "x").exists() and not (tmp_path / "onnx").exists()


# ---------------------------------------------------------------------------
# One vocabulary: deprecated spellings, --verbose/--debug, configs, help
# ---------------------------------------------------------------------------


def test_deprecated_spellings_become_the_new_ones_with_one_line_each(capsys):
    argv = ["--overwrite_output_dir", "--dataset_paths", "a", "b", "--overwrite_output_dir=false", "--output_dir", "x"]
    assert rewrite_deprecated_flags(argv, "s.py") == ["--overwrite", "--dataset_path", "a", "b", "--overwrite=false",
                                                       "--output_dir", "x"]
    assert capsys.readouterr().err.splitlines() == [
        "s.py: --overwrite_output_dir is deprecated, use --overwrite (the old spelling goes in the next release)",
        "s.py: --dataset_paths is deprecated, use --dataset_path (the old spelling goes in the next release)"]
    assert set(DEPRECATED_FLAGS.values()) <= {"overwrite", "dataset_path"}


def test_take_run_flags_leaves_training_arguments_own_debug_mode(monkeypatch):
    monkeypatch.delenv("CLINICAL_NER_DEBUG", raising=False)
    assert take_run_flags(["--verbose", "--epochs", "2", "--debug"]) == ["--epochs", "2"]
    assert (run_flags.verbose, run_flags.debug) == (True, True)
    # TrainingArguments' --debug takes a mode: not ours, left for it.
    assert take_run_flags(["--debug", "underflow_overflow"]) == ["--debug", "underflow_overflow"]
    assert (run_flags.verbose, run_flags.debug) == (False, False)


def test_parse_command_one_line_usage_errors_and_config_files(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(UsageError) as error:
        parse_command("s.py", [ModelOptions, TrainOptions], ["--epochs", "x"])
    assert str(error.value) == "argument --epochs: invalid int value: 'x' (see s.py --help)"
    with pytest.raises(UsageError, match=r"^unrecognized arguments: --epoch 2 \(see s.py --help\)$"):
        parse_command("s.py", [ModelOptions, TrainOptions], ["--epoch", "2"])  # no prefixes
    # A config that is not there or not JSON: one line naming it.
    with pytest.raises(UsageError, match=r"missing.json: no such config file$"):
        parse_command("s.py", [ModelOptions], [str(tmp_path / "missing.json")])
    (tmp_path / "bad.json").write_bytes(b"\xff{not json")
    with pytest.raises(UsageError, match=r"bad.json: not a readable JSON config \(.*\); fix it or pass the flags"):
        read_config(str(tmp_path / "bad.json"))
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(UsageError, match="a config is a JSON object"):
        read_config(str(tmp_path / "list.json"))
    # Old spellings in a config file are taken too, with the same line.
    (tmp_path / "old.json").write_text(json.dumps({"overwrite_output_dir": True}))

    @dataclass
    class Folder:
        overwrite: bool = False

    assert parse_command("s.py", [Folder], [str(tmp_path / "old.json")]) == (Folder(overwrite=True),)
    assert "--overwrite_output_dir is deprecated" in capsys.readouterr().err


def test_answer_help_shows_training_flags_without_importing_training_arguments(capsys):
    code = ("import sys\nfrom dataclasses import dataclass\n"
            "from clinical_ner_crf.command_line import answer_help\n"
            "@dataclass\nclass Options:\n    epochs_of_mine: int = 1\n"
            "try:\n    answer_help('s.py', [Options], 'What s does.', ['--help'], training_flags=True)\n"
            "except SystemExit as done:\n    print('exit', done.code)\n"
            "print(sorted(name for name in ('torch', 'transformers.training_args') if name in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: s.py")
    for flag in ("--epochs_of_mine", "--output_dir", "--num_train_epochs", "--seed", "--verbose", "--debug"):
        assert flag in done.stdout
    assert "Every flag of transformers' TrainingArguments is taken too" in done.stdout
    assert done.stdout.splitlines()[-2:] == ["exit 0", "[]"]
    # Without --help it returns and prints nothing.
    answer_help("s.py", [ModelOptions], argv=["--epochs", "2"])
    assert capsys.readouterr().out == ""


def test_training_flags_are_training_arguments_own_with_their_defaults():
    from dataclasses import fields

    from transformers import TrainingArguments

    theirs = {f.name: f for f in fields(TrainingArguments)}
    for flag in fields(TrainingFlags):
        assert flag.name in theirs, flag.name
        assert flag.default == theirs[flag.name].default, flag.name


# ---------------------------------------------------------------------------
# Every command, as a user runs it: help, the same names, one-line errors
# ---------------------------------------------------------------------------

COMMANDS = ("prepare_n2c2", "run_ner_crf", "run_re", "pretrain_mlm", "evaluate_ablations", "annotate_notes",
            "export_onnx", "parameter_table", "annotate_spark", "review_notes")
HEAVY_MODULES = ("torch", "datasets", "transformers.training_args", "onnxruntime", "modeling_crf")


def _run(args, cwd=REPO_ROOT, timeout=120, **env):
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **env}
    environment.pop("CLINICAL_NER_DEBUG", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=environment, stdin=subprocess.DEVNULL)


def _help_flags(text: str) -> dict[str, str]:
    """Each flag of a --help text and its help, whitespace normalised."""
    flags, current = {}, None
    for line in text.splitlines():
        match = re.match(r"^  (--[a-z_0-9]+)(?:/--[a-z-0-9]+)?(?: [A-Z_{},\[\].0-9a-z-]+)*(?:\s{2,}(.*))?$", line)
        if match:
            current = match.group(1)
            flags[current] = match.group(2) or ""
        elif current and line.startswith(" " * 10):
            flags[current] += " " + line.strip()
        else:
            current = None
    return {flag: " ".join(text.split()) for flag, text in flags.items()}


@pytest.fixture(scope="module")
def help_texts():
    """Each command's ``--help`` as a user runs it (a fresh process), with what it imported and how long it took
    beside an empty interpreter's start (the best of three), measured side by side."""
    import time

    def timed(args):
        started = time.perf_counter()
        done = _run(args)
        return done, time.perf_counter() - started

    empty = min(timed(["-c", "pass"])[1] for _ in range(3))
    texts = {}
    for name in COMMANDS:
        code = (f"import runpy, sys\nsys.argv = ['{name}.py', '--help']\n"
                f"try:\n    runpy.run_path('{name}.py', run_name='__main__')\nexcept SystemExit as done:\n"
                f"    assert done.code == 0\n"
                f"print('HEAVY', sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n")
        done, seconds = timed(["-c", code])
        assert done.returncode == 0 and done.stderr == "", (name, done.stderr)
        *help_lines, heavy = done.stdout.splitlines()
        texts[name] = {"help": "\n".join(help_lines) + "\n", "heavy": heavy, "ratio": seconds / empty,
                       "seconds": seconds}
    return texts


def test_every_command_lists_the_same_names_for_the_same_things(help_texts):
    shared = {flag: " ".join(text.split()) for flag, text in SHARED_FLAG_HELP.items()}
    for name, shown in help_texts.items():
        text = shown["help"]
        assert text.startswith(f"usage: {name}.py"), name  # its own name, never __main__.py
        flags = _help_flags(text)
        assert {"--verbose", "--debug"} <= set(flags), name
        # One name for each thing: none of the old spellings or other names for them.
        for other in ("--overwrite_output_dir", "--dataset_paths", "--revision", "--hub_token", "--model_dir",
                      "--model_path", "--input_folder", "--output_folder", "--out_dir", "--data_dir", "--force"):
            assert other not in flags, (name, other)
        if "--output_dir" in flags and name != "parameter_table":
            assert "--overwrite" in flags, name
        # A shared flag says what it says everywhere (a command may add a sentence of its own after it).
        for flag, help_text in flags.items():
            if flag[2:] in shared:
                assert help_text.startswith(shared[flag[2:]].split(" (default")[0][:60]) or \
                    shared[flag[2:]][:60] in help_text, (name, flag, help_text)
    models = [name for name, shown in help_texts.items() if "--model_name_or_path" in _help_flags(shown["help"])]
    assert set(models) == {"run_ner_crf", "run_re", "pretrain_mlm", "annotate_notes", "export_onnx", "annotate_spark"}
    datasets = [name for name, shown in help_texts.items() if "--dataset_path" in _help_flags(shown["help"])]
    assert set(datasets) == {"run_ner_crf", "run_re", "pretrain_mlm", "export_onnx"}  # export: calibration notes


@pytest.mark.parametrize("name", COMMANDS)
def test_help_answers_at_once_without_the_heavy_imports(help_texts, name):
    """--help imports neither torch nor datasets (the seconds a user waited), and takes a small multiple of an
    empty interpreter's start."""
    shown = help_texts[name]
    assert shown["heavy"] == "HEAVY []"
    # About 60x here (0.65 s against 0.011 s: transformers' argument parser); importing torch alone is about 120x,
    # TrainingArguments about 200x, the heavy imports a command needs for its work 400x.
    assert shown["ratio"] < 150, f"{name}.py --help took {shown['seconds']:.2f} s, {shown['ratio']:.0f}x an empty " \
                                 "interpreter"


@pytest.fixture(scope="module")
def broken_inputs(tmp_path_factory):
    """What users give by mistake: paths that are not there, and inputs that are there but cannot be read."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "garbage.bin").write_bytes(b"\xff\xfe\x00\x81 not text, not JSON\n")
    for folder, name in (("bad_dataset", "dataset_dict.json"), ("bad_model", "config.json")):
        (root / folder).mkdir()
        (root / folder / name).write_bytes(b"\xff\xfe\x00{ truncated")
    (root / "notes").mkdir()
    (root / "notes" / "a.txt").write_text("Aspirin 81 mg daily.\n")
    (root / "bad_gold").mkdir()
    (root / "bad_gold" / "a.txt").write_text("Aspirin 81 mg daily.\n")
    (root / "bad_gold" / "a.ann").write_bytes(b"T1\tDrug 0 7\tAspirin\n\xff\xfe garbage line\n")
    (root / "pred").mkdir()
    return root


ARCHITECTURE = "configs/architectures/distilbert-base-cased.json"
# command -> case -> (arguments: {T} the inputs' folder, {O} the output folder; exit statuses; what the line names).
# Input that is there but cannot be read: 1 (bad data), or 2 where it is not the kind of input asked for at all.
MISTAKES = {
    "prepare_n2c2": {
        "missing": (["--train_dir", "{T}/missing", "--output_dir", "{O}"], (2,), "{T}/missing"),
        "bad_value": (["--synthetic", "many", "--output_dir", "{O}"], (2,), "--synthetic"),
        "unreadable": (["--train_file", "{T}/garbage.bin", "--output_dir", "{O}"], (1, 2), "{T}/garbage.bin")},
    "run_ner_crf": {
        "missing": (["--config_name", ARCHITECTURE, "--dataset_path", "{T}/missing", "--output_dir", "{O}",
                     "--do_train"], (2,), "{T}/missing"),
        "bad_value": (["--num_train_epochs", "many", "--output_dir", "{O}"], (2,), "--num_train_epochs"),
        "unreadable": (["--config_name", ARCHITECTURE, "--dataset_path", "{T}/bad_dataset", "--output_dir",
                        "{O}", "--do_train"], (1, 2), "{T}/bad_dataset")},
    "run_re": {
        "missing": (["--model_name_or_path", "{T}/missing_model", "--dataset_path", "{T}/notes", "--output_dir",
                     "{O}", "--do_train"], (2,), "{T}/missing_model"),
        "bad_value": (["--link_threshold", "high", "--output_dir", "{O}"], (2,), "--link_threshold"),
        "unreadable": (["--model_name_or_path", "{T}/bad_model", "--dataset_path", "{T}/bad_dataset",
                        "--output_dir", "{O}", "--do_train"], (1, 2), "{T}/bad_"),
    },
    "pretrain_mlm": {
        "missing": (["--dataset_path", "{T}/missing", "--output_dir", "{O}", "--do_train"], (2,), "{T}/missing"),
        "bad_value": (["--mlm_probability", "half", "--output_dir", "{O}"], (2,), "--mlm_probability"),
        "unreadable": (["--dataset_path", "{T}/bad_dataset", "--output_dir", "{O}", "--do_train"], (1, 2),
                       "{T}/bad_dataset")},
    "evaluate_ablations": {
        "missing": (["--gold_brat", "{T}/missing", "--pred_brat", "{T}/pred", "--output_dir", "{O}"], (2,),
                    "{T}/missing"),
        "bad_value": (["--digits", "three", "--output_dir", "{O}"], (2,), "--digits"),
        "unreadable": (["--gold_brat", "{T}/bad_gold", "--pred_brat", "{T}/pred", "--output_dir", "{O}"], (1, 2),
                       "{T}/bad_gold/a.ann")},
    "annotate_notes": {
        "missing": (["--model_name_or_path", "{T}/missing_model", "--input_dir", "{T}/notes", "--output_dir",
                     "{O}"], (2,), "{T}/missing_model"),
        "bad_value": (["--batch_size", "big", "--model_name_or_path", "m", "--input_dir", "{T}/notes",
                       "--output_dir", "{O}"], (2,), "--batch_size"),
        "unreadable": (["--model_name_or_path", "{T}/bad_model", "--input_dir", "{T}/notes", "--output_dir",
                        "{O}"], (1, 2), "{T}/bad_model")},
    "export_onnx": {
        "missing": (["--model_name_or_path", "{T}/missing_model", "--output_dir", "{O}"], (2,), "{T}/missing_model"),
        "bad_value": (["--opset", "latest", "--model_name_or_path", "m", "--output_dir", "{O}"], (2,), "--opset"),
        "unreadable": (["--model_name_or_path", "{T}/bad_model", "--output_dir", "{O}"], (1, 2), "{T}/bad_model")},
    "annotate_spark": {
        "missing": (["--model_name_or_path", "{T}/missing_model", "--input_table", "{T}/notes.parquet", "--output_dir",
                     "{O}"], (2,), "{T}/missing_model"),
        "bad_value": (["--notes_per_batch", "many", "--model_name_or_path", "m", "--input_table", "{T}/notes.parquet",
                       "--output_dir", "{O}"], (2,), "--notes_per_batch"),
        "unreadable": (["--model_name_or_path", "{T}/notes", "--input_table", "{T}/garbage.bin", "--input_format",
                        "parquet", "--output_dir", "{O}"], (1, 2), "{T}/garbage.bin")},
    "review_notes": {
        "missing": (["--output_dir", "{T}/missing"], (2,), "{T}/missing"),
        "bad_value": (["--rank", "many", "--output_dir", "{O}"], (2,), "--rank"),
        "unreadable": (["--output_dir", "{T}/bad_gold", "--input_dir", "{T}/notes"], (1, 2), "{T}/bad_gold/a.ann")},
    "parameter_table": {
        "missing": (["--config_names", "{T}/missing.json"], (2,), "{T}/missing.json"),
        "bad_value": (["--config_names", ARCHITECTURE, "--num_labels", "nineteen"], (2,), "--num_labels"),
        "unreadable": (["--config_names", "{T}/garbage.bin"], (1, 2), "{T}/garbage.bin")},
}


@pytest.mark.slow
@pytest.mark.parametrize("name, case", [(name, case) for name in COMMANDS for case in MISTAKES[name]])
def test_every_command_reports_a_mistake_in_one_line_with_its_status(broken_inputs, name, case):
    """A missing path, a bad flag value and an input that cannot be read, in a real process: one line on stderr
    (what, where, what to do), exit status 2 for what the run cannot start on, 1 for bad data; no traceback, no
    "unexpected", and no output folder left behind."""
    arguments, status, named = MISTAKES[name][case]
    output_dir = broken_inputs / f"out-{name}-{case}"
    done = _run([f"{name}.py", *(a.replace("{T}", str(broken_inputs)).replace("{O}", str(output_dir))
                                 for a in arguments)])
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr[-3000:]
    (line,) = lines
    assert line.startswith(f"{name}.py: error: ") and "unexpected" not in line, line
    assert named.replace("{T}", str(broken_inputs)) in line, line
    assert done.returncode in status, (done.returncode, line)
    assert not output_dir.exists(), line
