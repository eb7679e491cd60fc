"""clinical_ner_crf/console.py: quiet by default and loud with --verbose, the last lines of a command, and the table
of a folder of runs."""

import json
import logging
import subprocess
import sys
import warnings

import pytest

from clinical_ner_crf.command_line import run_flags
from clinical_ner_crf.console import configure_output, outputs_table, print_outputs, show_info_logs
from conftest import REPO_ROOT


@pytest.fixture
def saved_levels():
    names = ("clinical_ner_crf", "console_script", "transformers", "datasets", "")
    saved = {name: logging.getLogger(name).level for name in names}
    verbose = run_flags.verbose
    with warnings.catch_warnings():
        yield
    run_flags.verbose = verbose
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize("verbose", [False, True])
def test_configure_output_quiet_unless_verbose(saved_levels, verbose, caplog):
    run_flags.verbose = verbose
    script = logging.getLogger("console_script")
    assert configure_output(script) is verbose
    assert script.level == logging.getLogger("clinical_ner_crf").level == (logging.INFO if verbose else logging.WARNING)
    assert logging.getLogger("transformers").level == (logging.INFO if verbose else logging.ERROR)
    # What libraries log on the root logger itself (onnxruntime's quantizer): only with --verbose.
    assert logging.getLogger().level == (logging.INFO if verbose else logging.ERROR)
    caplog.clear()
    script.info("settings and counts")
    script.warning("a warning that matters")
    assert caplog.messages == ["settings and counts", "a warning that matters"][0 if verbose else 1:]
    # The libraries' Python warnings (a TracerWarning, say) only with --verbose; the toolkit's own always.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        configure_output(script)  # (its filter goes in front of the default one)
        exec(compile("import warnings\nwarnings.warn('traced', UserWarning)", "x", "exec"),
             {"__name__": "torch.jit.fake"})
        exec(compile("import warnings\nwarnings.warn('ours', UserWarning)", "x", "exec"),
             {"__name__": "clinical_ner_crf.fake"})
    assert [str(w.message) for w in caught] == (["traced", "ours"] if verbose else ["ours"])


def test_configure_output_a_replica_process_is_quieter(saved_levels):
    run_flags.verbose = True
    configure_output(logging.getLogger("console_script"), process_log_level=logging.WARNING)
    assert logging.getLogger("console_script").level == logging.WARNING


def test_show_info_logs_makes_library_info_lines_visible(saved_levels, caplog):
    library, script, root = (logging.getLogger(name) for name in ("clinical_ner_crf", "console_script", ""))
    for log in (library, script, root):
        log.setLevel(logging.WARNING)
    caplog.clear()
    logging.getLogger("clinical_ner_crf.files").info("before: hidden")
    assert caplog.messages == []
    show_info_logs(script)
    logging.getLogger("clinical_ner_crf.files").info("wrote %d files", 3)
    script.info("script line")
    logging.getLogger("other_package").info("other: hidden")
    assert caplog.messages == ["wrote 3 files", "script line"]
    assert root.level == logging.WARNING


def test_print_outputs_one_aligned_row_per_output(capsys):
    print_outputs("run.py wrote:", [("model", "runs/a/model.safetensors", "test F1 97.7"),
                                    ("card", "runs/a/README.md", "")])
    assert capsys.readouterr().out.splitlines() == [
        "run.py wrote:",
        "  model  runs/a/model.safetensors  test F1 97.7",
        "  card   runs/a/README.md"]
    print_outputs("nothing:", [])
    assert capsys.readouterr().out == ""


def _write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))


def test_outputs_table_says_what_each_folder_is_and_its_headline(tmp_path):
    _write(tmp_path / "data" / "dataset_dict.json", "{}")
    _write(tmp_path / "data" / "stats.json", {"splits": {"train": {"documents": 9}, "test": {"documents": 2}}})
    _write(tmp_path / "model" / "config.json", "{}")
    _write(tmp_path / "model" / "all_results.json", {"test_entity_strict_micro_f1": 0.5})
    _write(tmp_path / "relations" / "all_results.json", {"test_relation_strict_micro_f1": 0.75,
                                                         "test_rule_relation_strict_micro_f1": 0.5})
    _write(tmp_path / "scores" / "report.json", {"strict": {"micro": {"f1": 0.25}}})
    _write(tmp_path / "scores" / "report.md", "# scores")
    _write(tmp_path / "annotated" / "summary.json", {"notes_annotated": 2, "entities": 7})
    _write(tmp_path / "my_own_folder" / "notes.txt", "not the toolkit's")
    _write(tmp_path / ".hidden" / "summary.json", "{}")
    assert outputs_table(tmp_path) == [
        ("annotated notes", str(tmp_path / "annotated"), "2 notes, 7 entities"),
        ("dataset", str(tmp_path / "data"), "notes: train 9, test 2"),
        ("NER model", str(tmp_path / "model"), "test entity strict micro-F1 50.0"),
        ("relation model", str(tmp_path / "relations"), "test relation strict micro-F1 75.0 (nearest-drug rule 50.0)"),
        ("brat scores", str(tmp_path / "scores" / "report.md"), "entity strict micro-F1 25.0")]
    done = subprocess.run([sys.executable, "-m", "clinical_ner_crf.console", str(tmp_path)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.splitlines()[0] == f"Outputs under {tmp_path}:"
    assert len(done.stdout.splitlines()) == 6
