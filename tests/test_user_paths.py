"""The paths a Hugging Face user takes with run_ner_crf.py: run_ner.py-style data, re-runs, logs, errors, security.

Each test calls the script the way a user does (a subprocess where the command line itself matters).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import run_ner_crf
from conftest import REPO_ROOT, build_wordpiece_tokenizer
from evaluate_ablations import STRICT_MICRO_F1
from test_run_ner_crf import COMMON_ARGS, TINY_MODEL_ARGS, read_jsonl, run, synthetic_dataset  # noqa: F401

SECRET = "Zyxolimab"  # a made-up drug name that must never reach a log, a card or a results file


def script(*args, cwd=REPO_ROOT, env=None, timeout=600):
    """``python run_ner_crf.py ...`` in a fresh process: (return code, stdout + stderr)."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
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
    for args, message in (
        (["--dataset_path", tmp_path / "nope"], f"--dataset_path {tmp_path / 'nope'}: no such folder"),
        ([], "give one data source"),
        (["--dataset_path", tmp_path, "--train_file", tmp_path / "t.json"], "give one data source"),
        (["--train_file", tmp_path / "t.txt"], "no such file"),
    ):
        code, output = script(*TINY_MODEL_ARGS, *COMMON_ARGS, *args, "--output_dir", tmp_path / "out")
        assert code == 2 and "run_ner_crf.py: error: " in output and message in output, output[-2000:]
        assert "Traceback" not in output
        assert "Tokenizing" not in output, "the error comes before any work"


# ---------------------------------------------------------------------------
# Re-runs, logs, throughput
# ---------------------------------------------------------------------------


def test_a_rerun_resumes_loudly_and_overwrite_output_dir_starts_afresh(synthetic_dataset, tmp_path):
    args = [*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir", tmp_path / "run",
            "--max_train_samples", "64", "--save_strategy", "epoch", "--num_train_epochs", "1"]
    code, first = script(*args)
    assert code == 0, first[-3000:]
    assert "***** Running training *****" in first  # INFO is shown, as in run_ner.py
    code, again = script(*args)
    assert code == 0 and "RESUMING from" in again and "--overwrite_output_dir" in again
    code, fresh = script(*args, "--overwrite_output_dir")
    assert code == 0 and "RESUMING" not in fresh and "removed" in fresh
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and json.loads((tmp_path / "run" / "train_results.json").read_text())["train_loss"] > 0


def test_info_logs_show_the_run_but_never_corpus_text(synthetic_dataset, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", run_ner_style_rows(synthetic_dataset, "train", secret_every=3)[:90])
    test = write_jsonl(tmp_path / "test.jsonl", run_ner_style_rows(synthetic_dataset, "test", secret_every=3)[:40])
    code, output = script(*TINY_MODEL_ARGS, *COMMON_ARGS, "--train_file", train, "--test_file", test,
                          "--do_eval", "false", "--output_dir", tmp_path / "out", "--num_train_epochs", "1",
                          "--tokenizer_min_frequency", "100")
    assert code == 0, output[-3000:]
    assert " - INFO - " in output and "Tokenizing the training split" in output
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
    assert results["train_words_per_second"] == pytest.approx(expected, rel=0.01)


def test_no_pin_memory_warning_on_cpu(synthetic_dataset, tmp_path):
    code, output = script(*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir",
                          tmp_path / "out", "--max_train_samples", "32", "--max_eval_samples", "32",
                          "--max_predict_samples", "32", "--num_train_epochs", "1")
    assert code == 0, output[-3000:]
    assert not [line for line in output.splitlines() if "Warning" in line and "pin_memory" in line]


def test_windows_that_start_inside_an_entity_are_not_blamed_on_the_gold_data(synthetic_dataset, tmp_path, caplog):
    results = run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir",
                   tmp_path / "w", "--max_seq_length", "8", "--stride", "2", "--num_train_epochs", "1",
                   "--max_train_samples", "200", "--do_eval", "false", "--do_predict", "false"])
    assert results["train_windowed_sentences"] > 0
    assert "not valid IOB2" not in caplog.text
    assert "windows start inside an entity" in caplog.text


def test_a_config_file_label_is_dropped_when_another_model_is_named():
    model_args, _, _ = run_ner_crf.parse_args(["configs/bert_crf.json", "--output_dir", "x"])
    assert model_args.model_label == "BERT-CRF"
    model_args, _, _ = run_ner_crf.parse_args(["configs/bert_crf.json", "--output_dir", "x",
                                               "--model_name_or_path", "emilyalsentzer/Bio_ClinicalBERT"])
    assert model_args.model_label is None
    assert run_ner_crf.default_model_label(model_args) == "Bio_ClinicalBERT-CRF"
    model_args, _, _ = run_ner_crf.parse_args(["configs/bert_crf.json", "--output_dir", "x", "--use_crf", "false",
                                               "--model_label", "Mine"])
    assert model_args.model_label == "Mine"


# ---------------------------------------------------------------------------
# Types the data does not have
# ---------------------------------------------------------------------------


def test_types_the_corpus_lacks_are_neither_trained_nor_reported(tmp_path):
    import prepare_n2c2

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
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
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


def test_two_processes_that_are_not_connected_refuse_to_train_twice(synthetic_dataset, tmp_path):
    code, output = script(*TINY_MODEL_ARGS, "--dataset_path", synthetic_dataset, "--output_dir", tmp_path / "o",
                          "--do_train", "--report_to", "none", env={"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0",
                                                                     "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511"},
                          timeout=120)
    assert code == 2 and "machine without GPU: pass --use_cpu" in output, output[-2000:]


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
    code, output = script("--model_name_or_path", model_dir, "--dataset_path", synthetic_dataset, "--output_dir",
                          tmp_path / "out", "--do_train", "--use_cpu", "--report_to", "none", timeout=120)
    assert not marker.exists()
    assert code == 2 and "pass --trust_remote_code to run it" in output, output[-2000:]


def test_a_crf_checkpoint_loads_with_the_projects_code_not_its_saved_copy(synthetic_dataset, tmp_path):
    run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir", tmp_path / "first",
         "--max_train_samples", "32", "--num_train_epochs", "1", "--do_eval", "false", "--do_predict", "false"])
    marker = tmp_path / "saved_copy_ran"
    saved = tmp_path / "first" / "modeling_crf.py"
    saved.write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n" + saved.read_text())
    code, output = script("--model_name_or_path", tmp_path / "first", "--dataset_path", synthetic_dataset,
                          "--output_dir", tmp_path / "second", "--do_train", "--use_cpu", "--report_to", "none",
                          "--max_train_samples", "32", "--num_train_epochs", "1")
    assert code == 0, output[-3000:]
    assert not marker.exists()


# ---------------------------------------------------------------------------
# Repository hygiene
# ---------------------------------------------------------------------------


def test_output_folders_of_the_readme_are_ignored_by_git():
    result = subprocess.run(["git", "check-ignore", "runs/x/predictions/test_predictions.jsonl", "reports/paper/r.md",
                             "outputs/quickstart/model/README.md", "data/n2c2/stats.json"], cwd=REPO_ROOT,
                            capture_output=True, text=True)
    assert len(result.stdout.split()) == 4, result.stdout


def test_every_pinned_runtime_requirement_is_used():
    """requirements.txt pins only what the project imports (accelerate: the launcher the README uses)."""
    import ast

    imported = set()
    for path in REPO_ROOT.glob("*.py"):
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


@pytest.mark.slow
def test_the_readme_example_is_tagged_right_by_the_quickstart_model(tmp_path):
    """make quickstart's model (its config, its sample) tags the README's example sentence as the README implies."""
    import re

    import prepare_n2c2
    from annotate_notes import NoteAnnotator

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    sentence = re.search(r'annotator\("([^"]+)"\)', readme).group(1)
    prepare_n2c2.main(["--synthetic", "120", "--seed", "42", "--output_dir", str(tmp_path / "data")])
    run(["configs/quickstart.json", "--dataset_path", tmp_path / "data", "--output_dir", tmp_path / "model",
         "--report_to", "none", "--disable_tqdm", "true"])
    entities = [(e.type, e.text) for e in NoteAnnotator.from_pretrained(str(tmp_path / "model"))(sentence)]
    assert entities == [("Drug", "metoprolol"), ("Strength", "25 mg"), ("Route", "PO"), ("Frequency", "BID"),
                        ("Reason", "hypertension")]
