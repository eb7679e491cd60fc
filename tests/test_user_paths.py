"""The paths a Hugging Face user takes with run_ner_crf.py: run_ner.py-style data, re-runs, logs, errors, security.

Each test calls the script the way a user does (a subprocess where the command line itself matters).
"""

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from clinical_ner_crf.command_line import UsageError
from clinical_ner_crf.metrics import STRICT_MICRO_F1
from clinical_ner_crf.model_cards import default_model_label
from conftest import LIBRARY, REPO_ROOT, build_wordpiece_tokenizer, command, hub_uploaded_files
from test_run_ner_crf import COMMON_ARGS, TINY_MODEL_ARGS, read_jsonl, run

prepare_n2c2 = command("prepare_n2c2")  # the command, called in-process as from its command line
run_ner_crf = command("run_ner_crf")  # the command, called in-process as from its command line
run_re = command("run_re")  # the command, called in-process as from its command line

SECRET = "Zyxolimab"  # a made-up drug name that must never reach a log, a card or a results file


def script(*args, cwd=REPO_ROOT, env=None, timeout=600):
    """``python run_ner_crf.py ...`` in a fresh process: (return code, stdout + stderr)."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    result = subprocess.run([sys.executable, str(REPO_ROOT / "run_ner_crf.py"), *map(str, args)], cwd=cwd,
                            env=environment, capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    return result.returncode, result.stdout + result.stderr


def run_ner_style_rows(dataset_path: Path, split: str, secret_every: int = 0) -> list[dict]:
    """Rows as run_ner.py reads them: "tokens" and string "ner_tags" (no offsets, no documents)."""
    from datasets import load_from_disk

    data = load_from_disk(str(dataset_path))[split]
    names = data.features["ner_tags"].feature.names
    rows = []
    for index, (tokens, tags) in enumerate(zip(data["tokens"], data["ner_tags"])):
        tokens = list(tokens)
        if secret_every and index % secret_every == 0:
            tokens.append(SECRET)
            tags = list(tags) + [names.index("B-Drug")]
        rows.append({"id": str(index), "tokens": tokens, "ner_tags": [names[t] for t in tags]})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------
# run_ner.py-style data
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_folder_of_json_files_with_string_tags(synthetic_dataset, tmp_path):
    folder = tmp_path / "conll_like"
    for split in ("train", "validation", "test"):
        write_jsonl(folder / f"{split}.json", run_ner_style_rows(synthetic_dataset, split))
    results = run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_name", folder, "--output_dir", tmp_path / "out",
                   "--num_train_epochs", "4", "--max_predict_samples", "200"])
    assert results[f"test_{STRICT_MICRO_F1}"] > 0.3
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    # The tag set is built from the strings in the data, n2c2 types in the paper's order.
    assert list(config["id2label"].values())[:5] == ["O", "B-Drug", "I-Drug", "B-Reason", "I-Reason"]
    rows = read_jsonl(tmp_path / "out" / "predictions" / "test_predictions.jsonl")
    assert len(rows) == 200 and rows[0]["gold_tags"] is not None and rows[0]["token_starts"] is None


@pytest.mark.slow
def test_train_validation_test_files_and_a_tag_that_is_not_iob2(synthetic_dataset, tmp_path):
    files = {split: write_jsonl(tmp_path / f"{split}.jsonl", run_ner_style_rows(synthetic_dataset, split)[:60])
             for split in ("train", "validation", "test")}
    results = run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--train_file", files["train"], "--validation_file",
                   files["validation"], "--test_file", files["test"], "--output_dir", tmp_path / "out",
                   "--num_train_epochs", "1"])
    assert results["test_sentences"] == 60
    # A tag that is not IOB2: one line naming the file and the line, before any model is built.
    rows = run_ner_style_rows(synthetic_dataset, "train")[:30]
    rows[16]["ner_tags"][0] = "DRUG"
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    code, output = script(*TINY_MODEL_ARGS, *COMMON_ARGS, "--train_file", bad, "--output_dir", tmp_path / "bad_out",
                          "--do_eval", "false", "--do_predict", "false")
    assert code == 2
    assert f"run_ner_crf.py: error: {bad}:17: tag 'DRUG' is not IOB2" in output
    assert "Traceback" not in output and not (tmp_path / "bad_out" / "config.json").exists()


def test_a_dataset_with_classlabel_tags(synthetic_dataset, tmp_path):
    """Hub datasets (e.g. conll2003) keep their tags as ClassLabel ids: the names are used as they are."""
    from datasets import load_from_disk

    folder = tmp_path / "parquet"
    data = load_from_disk(str(synthetic_dataset))
    for split in ("train", "validation", "test"):
        folder.mkdir(exist_ok=True)
        data[split].select(range(80)).select_columns(["tokens", "ner_tags"]).to_parquet(folder / f"{split}.parquet")
    results = run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_name", folder, "--output_dir", tmp_path / "out",
                   "--num_train_epochs", "1"])
    assert results["test_sentences"] == 80
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert list(config["id2label"].values()) == data["train"].features["ner_tags"].feature.names


def test_missing_or_ambiguous_data_is_a_one_line_error_at_start(tmp_path):
    # As the user sees it: one line, exit status 2, before any work.
    code, output = script(*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", tmp_path / "nope", "--output_dir",
                          tmp_path / "out")
    assert code == 2 and f"run_ner_crf.py: error: --dataset_path {tmp_path / 'nope'}: no such folder" in output
    assert "Traceback" not in output and "Tokenizing" not in output, "the error comes before any work"
    data = tmp_path / "data"
    data.mkdir()
    for args, message in (
        ([], "give one data source"),
        (["--dataset_path", data, "--train_file", data / "t.json"], "give one data source"),
        (["--dataset_path", data], "not a dataset saved by prepare_n2c2.py"),
        (["--train_file", data / "t.txt"], "no such file"),
        (["--dataset_path", tmp_path], "is inside --dataset_path"),  # the user's data is never written into
    ):
        with pytest.raises(UsageError, match=message):
            run([*TINY_MODEL_ARGS, *COMMON_ARGS, *args, "--output_dir", tmp_path / "out"])
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------
# Re-runs, logs, throughput
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_rerun_into_a_run_folder_is_refused_unless_told_to_start_afresh_or_resume(synthetic_dataset, tmp_path,
                                                                                      caplog):
    args = [*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir", tmp_path / "run",
            "--max_train_samples", "64", "--save_strategy", "epoch", "--num_train_epochs", "1",
            "--max_predict_samples", "40"]
    code, first = script(*args)
    assert code == 0, first[-3000:]
    # Quiet by default: no INFO lines and no logged losses; the last lines say where everything went.
    assert "***** Running training *****" not in first and "'train_runtime'" not in first, first[-3000:]
    assert "run_ner_crf.py wrote:" in first and str(tmp_path / "run" / "model.safetensors") in first
    weights = (tmp_path / "run" / "model.safetensors").read_bytes()
    # The same command again, as the user sees it, and with another seed: refused, nothing touched.
    code, again = script(*args)
    assert code == 2 and "is not empty" in again and "--overwrite" in again, again[-2000:]
    assert "--resume_from_checkpoint true" in again
    with pytest.raises(UsageError, match="is not empty"):
        run([*args, "--seed", "99"])
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == weights
    # Resuming checks that the run is the same one.
    with pytest.raises(UsageError, match=r"belongs to another run \(seed: 7 in the checkpoint, 99 now"):
        run([*args, "--num_train_epochs", "2", "--resume_from_checkpoint", "true", "--seed", "99"])
    resumed = run([*args, "--num_train_epochs", "2", "--resume_from_checkpoint", "true"])
    assert "Resuming from" in caplog.text
    assert json.loads((tmp_path / "run" / "trainer_state.json").read_text())["global_step"] == 8
    # Resumed, not restarted: this train() call ran only the 4 steps after checkpoint-4 (a restart runs all 8).
    assert round(resumed["train_steps_per_second"] * resumed["train_runtime"]) == 4
    # Starting afresh removes the earlier run's model, checkpoints and predictions first.
    run([*args, "--overwrite", "--max_predict_samples", "10", "--seed", "99"])
    assert "--overwrite: removed" in caplog.text
    assert len(read_jsonl(tmp_path / "run" / "predictions" / "test_predictions.jsonl")) == 10
    run_info = json.loads((tmp_path / "run" / "run_info.json").read_text())
    assert run_info["seed"] == 99 and json.loads((tmp_path / "run" / "trainer_state.json").read_text())["global_step"] == 4
    documents = {row["document_id"] for row in read_jsonl(tmp_path / "run" / "predictions" / "test_predictions.jsonl")}
    assert {path.stem for path in (tmp_path / "run" / "predictions" / "brat").glob("*.ann")} == documents


@pytest.mark.slow
def test_a_checkpoint_killed_while_saving_is_skipped_by_name(synthetic_dataset, tmp_path):
    args = [*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir", tmp_path / "run",
            "--max_train_samples", "64", "--save_strategy", "epoch", "--num_train_epochs", "1", "--do_eval", "false",
            "--do_predict", "false"]
    run(args)
    # What a SIGKILL during the next save leaves: a checkpoint folder with its first files only.
    partial = tmp_path / "run" / "checkpoint-8"
    partial.mkdir()
    for name in ("config.json", "modeling_crf.py"):
        (partial / name).write_bytes((tmp_path / "run" / "checkpoint-4" / name).read_bytes())
    code, output = script(*args, "--num_train_epochs", "2", "--resume_from_checkpoint", "true")
    assert code == 0, output[-3000:]
    assert "checkpoint-8: incomplete" in output and f"Resuming from {tmp_path / 'run' / 'checkpoint-4'}:" in output
    # What only a resume from checkpoint-4 gives (not a restart from scratch that logs the same, nor the incomplete
    # checkpoint-8): 64 sentences / batch 16 = 4 steps an epoch, so this process trained steps 5-8 only, 4 steps of
    # 64 sentences (a restart trains 8 steps, 128 sentences; checkpoint-8 would leave none to train). The Trainer's
    # speed metrics count the steps and samples of this train() call only.
    results = json.loads((tmp_path / "run" / "train_results.json").read_text())
    assert round(results["train_steps_per_second"] * results["train_runtime"]) == 4
    assert round(results["train_samples_per_second"] * results["train_runtime"]) == 64
    assert json.loads((tmp_path / "run" / "trainer_state.json").read_text())["global_step"] == 8
    # The second epoch's save replaced the killed folder with a whole checkpoint, marked complete at step 8.
    assert (partial / "run_args.json").is_file() and (partial / "model.safetensors").is_file()
    assert json.loads((partial / "trainer_state.json").read_text())["global_step"] == 8
    # With no complete checkpoint, resuming says so in one line.
    shutil.rmtree(tmp_path / "run" / "checkpoint-4")
    shutil.rmtree(tmp_path / "run" / "checkpoint-8")
    partial.mkdir()
    code, output = script(*args, "--resume_from_checkpoint", "true")
    assert code == 2 and "has no complete checkpoint" in output and "Couldn't instantiate" not in output


def test_prediction_only_runs_keep_the_models_description(synthetic_dataset, tmp_path):
    run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir", tmp_path / "model",
         "--max_train_samples", "64", "--num_train_epochs", "1", "--max_predict_samples", "20"])
    model_info = (tmp_path / "model" / "run_info.json").read_text()
    card = (tmp_path / "model" / "README.md").read_text()
    # Predicting again into the model's own folder, with another seed: its card and run_info still describe it.
    run(["--model_name_or_path", tmp_path / "model", "--dataset_path", synthetic_dataset, "--output_dir",
         tmp_path / "model", "--do_predict", "--use_cpu", "--report_to", "none", "--seed", "5",
         "--max_predict_samples", "30"])
    assert (tmp_path / "model" / "run_info.json").read_text() == model_info
    assert (tmp_path / "model" / "README.md").read_text() == card
    assert len(read_jsonl(tmp_path / "model" / "predictions" / "test_predictions.jsonl")) == 30


@pytest.mark.slow
def test_info_logs_show_the_run_but_never_corpus_text(synthetic_dataset, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", run_ner_style_rows(synthetic_dataset, "train", secret_every=3)[:90])
    test = write_jsonl(tmp_path / "test.jsonl", run_ner_style_rows(synthetic_dataset, "test", secret_every=3)[:40])
    code, output = script(*TINY_MODEL_ARGS, *COMMON_ARGS, "--train_file", train, "--test_file", test,
                          "--do_eval", "false", "--output_dir", tmp_path / "out", "--num_train_epochs", "1",
                          "--tokenizer_min_frequency", "100", "--verbose")
    assert code == 0, output[-3000:]
    assert " - INFO - " in output and "Tokenizing the training split" in output  # --verbose: the INFO lines
    assert SECRET not in output
    for path in (tmp_path / "out").iterdir():
        if path.suffix in (".json", ".md"):
            assert SECRET not in path.read_text(), path.name


def test_throughput_counts_the_epochs_really_run(synthetic_dataset, tmp_path):
    results = run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir",
                   tmp_path / "steps", "--max_steps", "5", "--num_train_epochs", "30", "--do_eval", "false",
                   "--do_predict", "false"])
    words = sum(len(tokens) for tokens in __import__("datasets").load_from_disk(str(synthetic_dataset))["train"]["tokens"])
    assert 0 < results["train_epochs_run"] < 1  # 5 steps of 16 windows: part of one epoch, not 30
    expected = words * results["train_epochs_run"] / results["train_wall_seconds"]
    assert results["train_words_per_second"] == pytest.approx(expected, rel=0.05)  # (seconds are rounded)


def test_no_pin_memory_warning_on_cpu(synthetic_dataset, tmp_path):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir", tmp_path / "out",
             "--max_train_samples", "32", "--max_eval_samples", "32", "--max_predict_samples", "32",
             "--num_train_epochs", "1"])
    assert not [w for w in caught if "pin_memory" in str(w.message)]


def test_windows_that_start_inside_an_entity_are_not_blamed_on_the_gold_data(synthetic_dataset, tmp_path, caplog):
    results = run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir",
                   tmp_path / "w", "--max_seq_length", "8", "--stride", "2", "--num_train_epochs", "1",
                   "--max_train_samples", "200", "--do_eval", "false", "--do_predict", "false", "--verbose"])
    assert results["train_windowed_sentences"] > 0
    assert "not valid IOB2" not in caplog.text
    assert "windows start inside an entity" in caplog.text


def test_a_config_file_label_is_dropped_when_another_model_is_named():
    model_args, _, _ = run_ner_crf.parse_args(["configs/bert_crf.json", "--output_dir", "x"])
    assert model_args.model_label == "BERT-CRF"
    model_args, _, _ = run_ner_crf.parse_args(["configs/bert_crf.json", "--output_dir", "x",
                                               "--model_name_or_path", "emilyalsentzer/Bio_ClinicalBERT"])
    assert model_args.model_label is None
    assert default_model_label(model_args) == "Bio_ClinicalBERT-CRF"
    model_args, _, _ = run_ner_crf.parse_args(["configs/bert_crf.json", "--output_dir", "x", "--use_crf", "false",
                                               "--model_label", "Mine"])
    assert model_args.model_label == "Mine"


# ---------------------------------------------------------------------------
# Types the data does not have
# ---------------------------------------------------------------------------


def test_types_the_corpus_lacks_are_neither_trained_nor_reported(tmp_path):

    brat = tmp_path / "brat"
    prepare_n2c2.main(["--synthetic", "30", "--seed", "5", "--output_dir", str(tmp_path / "synthetic"),
                       "--write_brat", str(brat)])
    label_map = tmp_path / "map.json"  # 5 of the 9 types, as a user's own corpus might have
    label_map.write_text(json.dumps({"Drug": "Drug", "Strength": "Strength", "Route": "Route",
                                     "Frequency": "Frequency", "Reason": "Reason"}))
    stats = prepare_n2c2.main(["--train_dir", str(brat / "train"), "--test_dir", str(brat / "test"),
                               "--label_map", str(label_map), "--output_dir", str(tmp_path / "mapped")])
    assert stats["entity_types"] == ["Drug", "Reason", "Route", "Strength", "Frequency"]
    assert stats["entity_types_absent"] == ["Form", "Dosage", "Duration", "ADE"] and len(stats["labels"]) == 11
    run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", tmp_path / "mapped", "--output_dir", tmp_path / "out",
         "--num_train_epochs", "1"])
    assert len(json.loads((tmp_path / "out" / "config.json").read_text())["id2label"]) == 11
    card = (tmp_path / "out" / "README.md").read_text()
    assert "nan" not in card.lower().split() and "| ADE |" not in card and "| Drug |" in card


# ---------------------------------------------------------------------------
# Two real processes
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_two_cpu_processes_train_evaluate_and_predict_every_sentence_once(synthetic_dataset, tmp_path):
    args = [*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", str(synthetic_dataset), "--num_train_epochs", "1",
            "--max_train_samples", "96", "--max_eval_samples", "77", "--max_predict_samples", "301",
            "--do_eval", "true"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    accelerate = Path(sys.executable).with_name("accelerate")
    double = subprocess.run([str(accelerate), "launch", "--config_file", "configs/accelerate/cpu_2proc.yaml",
                             "run_ner_crf.py", *args, "--output_dir", str(tmp_path / "two")],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert double.returncode == 0, double.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "run_info.json").read_text())["world_size"] == 2
    # Training: each process took half of every epoch (DistributedSampler), so half the single-process steps.
    two_state = json.loads((tmp_path / "two" / "trainer_state.json").read_text())
    windows = 96  # the 96 sentences fit one window each at the default length
    assert two_state["global_step"] == -(-windows // (16 * 2))
    # Evaluation and prediction: every sentence exactly once, as one process scores the same model.
    predicted = read_jsonl(tmp_path / "two" / "predictions" / "test_predictions.jsonl")
    assert len(predicted) == 301 and len({row["id"] for row in predicted}) == 301
    single = subprocess.run([sys.executable, "run_ner_crf.py", "--model_name_or_path", str(tmp_path / "two"),
                             "--dataset_path", str(synthetic_dataset), "--output_dir", str(tmp_path / "one"),
                             "--do_eval", "--do_predict", "--max_eval_samples", "77", "--max_predict_samples", "301",
                             "--use_cpu", "--report_to", "none", "--per_device_eval_batch_size", "64"],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    one_results = json.loads((tmp_path / "one" / "all_results.json").read_text())
    two_results = json.loads((tmp_path / "two" / "all_results.json").read_text())
    assert two_results["eval_samples"] == one_results["eval_samples"] == 77
    assert two_results[f"eval_{STRICT_MICRO_F1}"] == pytest.approx(one_results[f"eval_{STRICT_MICRO_F1}"])
    assert [r["pred_tags"] for r in read_jsonl(tmp_path / "one" / "predictions" / "test_predictions.jsonl")] == \
           [r["pred_tags"] for r in predicted]


def test_two_processes_that_are_not_connected_refuse_to_train_twice(synthetic_dataset, tmp_path, monkeypatch):
    for name, value in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)  # what a launcher sets
    with pytest.raises(UsageError, match="machine without GPU: pass --use_cpu"):
        run([*TINY_MODEL_ARGS, "--dataset_path", synthetic_dataset, "--output_dir", tmp_path / "o", "--do_train",
             "--report_to", "none"])


# ---------------------------------------------------------------------------
# Security: no remote code unasked
# ---------------------------------------------------------------------------


def test_naming_a_repo_with_custom_code_runs_none_of_it(synthetic_dataset, tmp_path):
    model_dir = tmp_path / "evil"
    model_dir.mkdir()
    marker = tmp_path / "remote_code_ran"
    (model_dir / "configuration_evil.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from transformers import PreTrainedConfig\n\nclass EvilConfig(PreTrainedConfig):\n    model_type = 'evil'\n")
    (model_dir / "config.json").write_text(json.dumps(
        {"model_type": "evil", "auto_map": {"AutoConfig": "configuration_evil.EvilConfig"}}))
    build_wordpiece_tokenizer().save_pretrained(model_dir)  # a complete-looking repository
    with pytest.raises(UsageError, match="pass --trust_remote_code to run it"):
        run(["--model_name_or_path", model_dir, "--dataset_path", synthetic_dataset, "--output_dir", tmp_path / "out",
             "--do_train", "--use_cpu", "--report_to", "none"])
    assert not marker.exists()


def test_a_crf_checkpoint_loads_with_the_projects_code_not_its_saved_copy(synthetic_dataset, tmp_path):
    run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir", tmp_path / "first",
         "--max_train_samples", "32", "--num_train_epochs", "1", "--do_eval", "false", "--do_predict", "false"])
    marker = tmp_path / "saved_copy_ran"
    saved = tmp_path / "first" / "modeling_crf.py"
    saved.write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n" + saved.read_text())
    run(["--model_name_or_path", tmp_path / "first", "--dataset_path", synthetic_dataset, "--output_dir",
         tmp_path / "second", "--do_train", "--use_cpu", "--report_to", "none", "--max_train_samples", "32",
         "--num_train_epochs", "1"])
    assert not marker.exists()


# ---------------------------------------------------------------------------
# Repository hygiene
# ---------------------------------------------------------------------------


def readme_commands() -> list[list[str]]:
    """Every command of the README's ``bash`` blocks, as its words (continuation lines joined, comments dropped)."""
    import re
    import shlex

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", readme, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


def test_every_folder_the_readme_writes_is_its_own_and_ignored_by_git():
    """Each README command writes a folder no earlier command wrote (or says --overwrite/--resume), so running the
    blocks in order never meets a folder in use; and git ignores every one of them (they hold note text)."""
    written = {}
    for words in readme_commands():
        script = next((word for word in words if word.endswith(".py")), words[0])
        for flag in ("--output_dir", "--write_brat"):
            if flag in words:
                folder = words[words.index(flag) + 1].rstrip("/")
                if script.endswith("review_notes.py"):  # its --output_dir is annotate_notes.py's: it writes review/
                    folder += "/review"
                again = {"--overwrite", "--resume_from_checkpoint"} & set(words)
                assert folder not in written or again, f"{folder} is written by {written[folder]} and {script}"
                written.setdefault(folder, script)
    assert len(written) >= 15, sorted(written)  # the README's runs, reports and annotated folders are all seen
    paths = [f"{folder}/file.txt" for folder in sorted(written)]
    ignored = subprocess.run(["git", "check-ignore", *paths], cwd=REPO_ROOT, capture_output=True, text=True).stdout
    assert sorted(ignored.split()) == sorted(paths), sorted(set(paths) - set(ignored.split()))


def test_every_pinned_runtime_requirement_is_used():
    """requirements.txt pins only what the project imports (accelerate: the launcher the README uses)."""
    import ast

    imported = set()
    for path in [*REPO_ROOT.glob("*.py"), *(REPO_ROOT / LIBRARY).glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    import_names = {"pytorch-crf": "torchcrf", "huggingface-hub": "huggingface_hub"}
    launchers = {"accelerate"}
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            package = line.split("=")[0].split(">")[0].split("<")[0].strip()
            name = import_names.get(package, package.replace("-", "_"))
            assert name in imported or package in launchers, f"{package} is pinned but never imported"


# ---------------------------------------------------------------------------
# What --push_to_hub would upload
# ---------------------------------------------------------------------------


def intercept_uploads(monkeypatch) -> list[dict]:
    import huggingface_hub

    uploads = []
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kwargs: repo_id)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder",
                        lambda self, **kwargs: uploads.append(kwargs) or "intercepted")
    return uploads


def test_a_corpus_derived_vocabulary_is_uploaded_only_when_acknowledged(synthetic_dataset, tmp_path, monkeypatch):
    uploads = intercept_uploads(monkeypatch)
    train = write_jsonl(tmp_path / "train.jsonl", run_ner_style_rows(synthetic_dataset, "train", secret_every=5)[:100])
    args = [*TINY_MODEL_ARGS, *COMMON_ARGS, "--train_file", train, "--do_eval", "false", "--do_predict", "false",
            "--num_train_epochs", "1", "--push_to_hub", "--hub_model_id", "someone/tiny"]
    with pytest.raises(UsageError, match="vocabulary is learned from the training notes"):
        run([*args, "--output_dir", tmp_path / "refused"])
    assert not uploads and not (tmp_path / "refused").exists()  # refused before any work
    run([*args, "--output_dir", tmp_path / "acknowledged", "--push_corpus_vocabulary"])
    assert [u["repo_id"] for u in uploads] == ["someone/tiny"]
    uploaded = hub_uploaded_files(uploads[0], tmp_path / "acknowledged")  # what the upload received, not what it should
    assert "tokenizer.json" in uploaded
    # The single rare word the notes hold is in the acknowledged vocabulary, and nowhere else that is uploaded.
    assert SECRET in (tmp_path / "acknowledged" / "tokenizer.json").read_text()
    for name in uploaded:
        if name not in ("tokenizer.json", "vocab.txt", "model.safetensors"):
            assert SECRET not in (tmp_path / "acknowledged" / name).read_text(errors="replace"), name
    assert "vocabulary is derived from them" in (tmp_path / "acknowledged" / "README.md").read_text()
    assert json.loads((tmp_path / "acknowledged" / "run_info.json").read_text())["vocabulary_from_corpus"] is True


def test_an_upload_with_an_outside_tokenizer_holds_no_corpus_word(synthetic_dataset, tmp_path, monkeypatch):
    uploads = intercept_uploads(monkeypatch)
    build_wordpiece_tokenizer().save_pretrained(tmp_path / "outside_tokenizer")
    train = write_jsonl(tmp_path / "train.jsonl", run_ner_style_rows(synthetic_dataset, "train", secret_every=5)[:100])
    run(["--config_name", "configs/architectures/distilbert-base-cased.json", "--config_overrides",
         "dim=32,n_layers=1,n_heads=2,hidden_dim=64,max_position_embeddings=256", "--tokenizer_name",
         tmp_path / "outside_tokenizer", *COMMON_ARGS, "--train_file", train, "--do_eval", "false",
         "--do_predict", "false", "--num_train_epochs", "1", "--output_dir", tmp_path / "out", "--push_to_hub",
         "--hub_model_id", "someone/tiny"])
    assert [u["repo_id"] for u in uploads] == ["someone/tiny"]
    for name in hub_uploaded_files(uploads[0], tmp_path / "out"):
        if name != "model.safetensors":
            assert SECRET not in (tmp_path / "out" / name).read_text(errors="replace"), name


@pytest.mark.parametrize("data_mode, prediction_mode", [(0o600, 0o600), (0o644, 0o644)])
def test_predictions_are_no_more_readable_than_the_data_and_the_model_has_usual_permissions(
        synthetic_dataset, tmp_path, data_mode, prediction_mode):
    data = tmp_path / "data"
    shutil.copytree(synthetic_dataset, data)
    (data / "dataset_dict.json").chmod(data_mode)
    previous = os.umask(0o022)
    try:
        run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", data, "--output_dir", tmp_path / "out",
             "--max_train_samples", "32", "--num_train_epochs", "1", "--max_predict_samples", "20"])
    finally:
        os.umask(previous)
    predictions = [path for path in (tmp_path / "out" / "predictions").rglob("*") if path.is_file()]
    assert predictions and {path.stat().st_mode & 0o777 for path in predictions} == {prediction_mode}
    for name in ("model.safetensors", "config.json", "tokenizer.json", "run_info.json", "README.md"):
        assert (tmp_path / "out" / name).stat().st_mode & 0o777 == 0o644, name


# ---------------------------------------------------------------------------
# The README's walk from a corpus of one's own to a scored end-to-end relation run
# ---------------------------------------------------------------------------

OWN_CORPUS_WORDS = {
    "Medication": ["metoprolol", "lisinopril", "aspirin", "heparin", "furosemide", "atorvastatin", "metformin",
                   "amoxicillin", "warfarin", "omeprazole", "gabapentin", "prednisone", "vancomycin", "amlodipine"],
    "Dose": ["25 mg", "10 mg", "81 mg", "5000 units", "40 mg", "500 mg", "20 mg", "1 g", "300 mg", "12.5 mg"],
    "Administration": ["PO", "IV", "SC", "by mouth", "orally"],
    "Timing": ["BID", "daily", "q8h", "TID", "at bedtime", "every 6 hours", "twice a day"],
    "Indication": ["hypertension", "chest pain", "DVT prophylaxis", "edema", "pneumonia", "GERD", "neuropathy"],
    "Formulation": ["tablet", "capsule", "patch"],
    "Duration": ["7 days", "two weeks", "5 days"],
}


def own_scheme_note(rng) -> tuple[str, list[tuple[str, int, int]], list[tuple[str, int, int]]]:
    """A short note in a scheme of its own: ``(text, entities (type, start, end), relations (name, arg1, arg2))``.
    Every link is ``MODIFY``: attribute -> medication, and in some sentences timing -> dose; ``Formulation`` and
    ``Duration`` are types a user's label map may leave out."""
    text, entities, relations = "", [], []

    def sentence(*parts: str) -> list[int]:
        """Plain text, and entity types in angle brackets (``"<Dose>"``) filled with a word of that type: the
        entities' indices."""
        nonlocal text
        indices = []
        for part in parts:
            if part.startswith("<"):
                entity_type = part.strip("<>")
                words = rng.choice(OWN_CORPUS_WORDS[entity_type])
                if not text or text.endswith("\n"):
                    words = words.capitalize()
                indices.append(len(entities))
                entities.append((entity_type, len(text), len(text) + len(words)))
                part = words
            text += part
        text += ".\n"
        return indices

    for _ in range(rng.randint(4, 6)):
        kind = rng.randrange(5)
        if kind == 0:
            drug, dose, route, timing, reason = sentence("<Medication>", " ", "<Dose>", " ", "<Administration>", " ",
                                                         "<Timing>", " for ", "<Indication>")
            relations += [("MODIFY", a, drug) for a in (dose, route, timing, reason)] + [("MODIFY", timing, dose)]
        elif kind == 1:
            drug, dose, form, timing = sentence("Started ", "<Medication>", " ", "<Dose>", " ", "<Formulation>", " ",
                                                "<Timing>")
            relations += [("MODIFY", a, drug) for a in (dose, form, timing)]
        elif kind == 2:
            drug, route, timing, duration = sentence("<Medication>", " ", "<Administration>", " ", "<Timing>", " for ",
                                                     "<Duration>")
            relations += [("MODIFY", a, drug) for a in (route, timing, duration)]
        elif kind == 3:  # one indication, two medications
            reason, first, first_dose, second, second_dose = sentence("For ", "<Indication>", ", ", "<Medication>", " ",
                                                                      "<Dose>", " and ", "<Medication>", " ", "<Dose>")
            relations += [("MODIFY", reason, first), ("MODIFY", first_dose, first), ("MODIFY", reason, second),
                          ("MODIFY", second_dose, second)]
        else:
            sentence(rng.choice(["Patient seen and examined", "Vitals stable overnight", "No acute distress"]))
    return text, entities, relations


def write_own_scheme_corpus(folder: Path, notes: dict[str, int], seed: int = 0) -> dict[str, Counter]:
    """``folder/<split>/noteNNN.txt/.ann`` in the scheme of :func:`own_scheme_note`; per split, the relations written,
    counted by (name, Arg1 type, Arg2 type)."""
    import random

    rng = random.Random(seed)
    written = {}
    for split, count in notes.items():
        (folder / split).mkdir(parents=True)
        written[split] = Counter()
        for index in range(count):
            text, entities, relations = own_scheme_note(rng)
            lines = [f"T{number}\t{kind} {start} {end}\t{text[start:end]}"
                     for number, (kind, start, end) in enumerate(entities, 1)]
            lines += [f"R{number}\t{name} Arg1:T{arg1 + 1} Arg2:T{arg2 + 1}"
                      for number, (name, arg1, arg2) in enumerate(relations, 1)]
            written[split].update((name, entities[arg1][0], entities[arg2][0]) for name, arg1, arg2 in relations)
            (folder / split / f"note{index:03d}.txt").write_text(text, encoding="utf-8")
            (folder / split / f"note{index:03d}.ann").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return written


@pytest.mark.slow
def test_the_readme_takes_a_corpus_of_ones_own_to_a_scored_end_to_end_relation_run(tmp_path):
    """The README's "Your own corpus, end to end" commands as written, in fresh processes, on brat notes with types of
    their own and one relation name (MODIFY) told apart by argument types. The commands run in a folder holding
    ``my_corpus/`` (and a link to ``configs/``), with only the interpreter's and the scripts' paths changed: the
    README's models are the quickstart's tiny ones, quick enough as they are (one CPU thread each: on a busy machine
    two threads per process run several times slower)."""
    import re
    import shlex

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Your own corpus, end to end: entities and relations\n")[1].split("\n## ")[0]
    commands = [shlex.split(line, comments=True) for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)
                for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    scripts = ["prepare_n2c2.py", "run_ner_crf.py", "run_re.py", "annotate_notes.py", "evaluate_ablations.py"]
    assert [command[:2] for command in commands] == [[".venv/bin/python", name] for name in scripts]
    prepare, ner, relations, annotate, evaluate = commands

    def value(command: list[str], flag: str) -> str:
        return command[command.index(flag) + 1]

    written = write_own_scheme_corpus(tmp_path / "my_corpus", {"train": 10, "test": 4})
    (tmp_path / "configs").symlink_to(REPO_ROOT / "configs", target_is_directory=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}

    def run_as_written(command: list[str]) -> str:
        result = subprocess.run([sys.executable, str(REPO_ROOT / command[1]), *command[2:]], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, f"{shlex.join(command)}\n{(result.stdout + result.stderr)[-3000:]}"
        return result.stdout + result.stderr

    # 1. The maps, and what stats.json says of them: every relation written is kept under its mapped type or
    # counted as unmapped by name and argument types (a pair both of whose types are mapped included).
    label_map = json.loads(value(prepare, "--label_map"))
    relation_rules = json.loads(value(prepare, "--relation_map"))["MODIFY"]
    output = run_as_written(prepare)
    stats = json.loads((tmp_path / value(prepare, "--output_dir") / "stats.json").read_text())
    expected_kept, expected_unmapped = {}, {}
    for split, counts in written.items():
        expected_kept[split], expected_unmapped[split] = Counter(), Counter()
        for (name, arg1, arg2), count in counts.items():
            rule = relation_rules.get(f"{arg1}>{arg2}") if arg1 in label_map and arg2 in label_map else None
            if rule:
                expected_kept[split][rule] += count
            else:
                expected_unmapped[split][f"{name} {arg1}>{arg2}"] += count
    assert {"Strength-Drug", "Route-Drug", "Frequency-Drug", "Reason-Drug"} == set(expected_kept["train"])
    assert {"MODIFY Timing>Dose", "MODIFY Formulation>Medication", "MODIFY Duration>Medication"} == \
        set(expected_unmapped["train"])
    # (train and validation: the training notes, split by prepare_n2c2.py)
    kept = {split: Counter(stats["relations"][split]["kept"]) for split in ("train", "validation", "test")}
    unmapped = {split: Counter(stats["unmapped_relation_types"][split]) for split in ("train", "validation", "test")}
    assert kept["test"] == expected_kept["test"] and kept["train"] + kept["validation"] == expected_kept["train"]
    assert unmapped["test"] == expected_unmapped["test"]
    assert unmapped["train"] + unmapped["validation"] == expected_unmapped["train"]
    assert not any(any(reasons.values()) for split in stats["relations"].values()
                   for reasons in split["dropped"].values())
    total_kept = sum(sum(counts.values()) for counts in expected_kept.values())
    total_unmapped = sum(sum(counts.values()) for counts in expected_unmapped.values())
    assert f"relations: {total_kept} read, {total_kept} kept, dropped: none; {total_unmapped} ignored as unmapped" \
           in output
    assert set(sum((Counter(counts) for counts in stats["unmapped_types"].values()), Counter())) == \
           {"Formulation", "Duration"}
    # The mapped gold written by --write_brat: n2c2 types, T and R lines.
    assert {path.name for path in (tmp_path / value(prepare, "--write_brat")).iterdir() if path.is_dir()} == \
           {"train", "validation", "test"}
    gold = tmp_path / value(prepare, "--write_brat") / "test"
    gold_lines = [line.split("\t") for path in sorted(gold.glob("*.ann")) for line in path.read_text().splitlines()]
    assert len(list(gold.glob("*.ann"))) == len(list(gold.glob("*.txt"))) == 4
    assert {fields[1].split()[0] for fields in gold_lines if fields[0].startswith("T")} == \
           {"Drug", "Strength", "Route", "Frequency", "Reason"}
    gold_relations = Counter(fields[1].split()[0] for fields in gold_lines if fields[0].startswith("R"))
    assert gold_relations == expected_kept["test"]

    # 2. The NER model, then the relation model: the model's, the rule's and every candidate's scores side by side.
    run_as_written(ner)
    run_as_written(relations)
    relation_dir = tmp_path / value(relations, "--output_dir")
    results = json.loads((relation_dir / "all_results.json").read_text())
    for key in ("validation_relation_strict_micro_f1", "validation_rule_relation_strict_micro_f1",
                "validation_every_candidate_relation_strict_micro_f1", "test_relation_strict_micro_f1",
                "test_rule_relation_strict_micro_f1", "test_every_candidate_relation_strict_micro_f1",
                "selected_epoch", "link_threshold"):
        assert key in results, key
    assert results["validation_history"] and results["preferred_on_validation"] in ("model", "rule")
    card = (relation_dir / "README.md").read_text()
    assert "| this model |" in card and "| nearest-drug rule |" in card and "| every candidate linked |" in card

    # 3. The test notes annotated: T and R lines in n2c2 types, linked as the relation model's validation chose.
    run_as_written(annotate)
    annotated = tmp_path / value(annotate, "--output_dir")
    predicted = [line for path in annotated.glob("*.ann") for line in path.read_text().splitlines()]
    assert [line for line in predicted if line.startswith("R")] and "MODIFY" not in "\n".join(predicted)
    assert (annotated / "medications.jsonl").read_text().strip()
    summary = json.loads((annotated / "summary.json").read_text())
    assert summary["relations_by"] == results["preferred_on_validation"] and summary["relations"] > 0

    # 4. Scored end to end against the mapped gold: every gold relation counted, and some found.
    run_as_written(evaluate)
    report_dir = tmp_path / value(evaluate, "--output_dir")
    assert (report_dir / "report.md").is_file()
    report = json.loads((report_dir / "report.json").read_text())["relations"]
    assert report["setting"] == "end_to_end"
    assert report["num_gold_relations"] == sum(gold_relations.values())
    assert report["strict"]["micro"]["f1"] > 0 and report["lenient"]["micro"]["f1"] > 0
