"""End-to-end runs of run_ner_crf.py on the synthetic sample with tiny models (CPU, offline)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import load_from_disk

from clinical_ner_crf.command_line import UsageError
from clinical_ner_crf.metrics import STRICT_MACRO_F1, STRICT_MICRO_F1
from clinical_ner_crf.model_cards import CARD_EXAMPLE
from clinical_ner_crf.sampling import sample_documents
from conftest import REPO_ROOT, command, hub_uploaded_files

run_ner_crf = command("run_ner_crf")  # the command, called in-process as from its command line

TEST_F1 = f"test_{STRICT_MICRO_F1}"

TINY_MODEL_ARGS = [
    "--config_name", "configs/architectures/distilbert-base-cased.json",
    "--config_overrides", "dim=32,n_layers=1,n_heads=2,hidden_dim=64,max_position_embeddings=256",
    "--train_tokenizer", "true", "--tokenizer_vocab_size", "600",
]
COMMON_ARGS = [
    "--do_train", "--do_eval", "--do_predict", "--use_cpu", "--report_to", "none", "--seed", "7",
    "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "64", "--learning_rate", "2e-3",
    "--crf_learning_rate", "1e-2", "--logging_steps", "1000", "--disable_tqdm", "true",
    "--save_strategy", "no", "--eval_strategy", "no", "--dataloader_num_workers", "0",
]


def run(args, cwd=REPO_ROOT):
    """run_ner_crf.main in this process, from the repository root (configs use relative paths)."""
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        return run_ner_crf.main([str(arg) for arg in args])
    finally:
        os.chdir(previous)


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.mark.parametrize("config", sorted((REPO_ROOT / "configs").glob("*.json")), ids=lambda p: p.stem)
def test_every_config_parses(config, tmp_path):
    model_args, data_args, training_args = run_ner_crf.parse_args([str(config), "--output_dir", str(tmp_path)])
    values = json.loads(config.read_text())
    assert training_args.output_dir == str(tmp_path), "flags after the config file override it"
    assert model_args.use_crf == values["use_crf"]
    assert training_args.learning_rate == values["learning_rate"]
    assert training_args.num_train_epochs == values["num_train_epochs"]
    assert (model_args.model_name_or_path is None) == (model_args.config_name is not None)
    if model_args.config_name:
        assert (REPO_ROOT / model_args.config_name).is_file()


def test_train_fraction_samples_whole_documents(synthetic_dataset):
    train = load_from_disk(str(synthetic_dataset))["train"]
    half = sample_documents(train, 0.5, seed=1)
    documents, kept = set(train["document_id"]), set(half["document_id"])
    assert len(kept) == round(0.5 * len(documents))
    # Every sentence of a kept document is kept.
    for document_id in kept:
        assert train["document_id"].count(document_id) == half["document_id"].count(document_id)
    assert sample_documents(train, 0.5, seed=1)["id"] == half["id"], "seeded"


def test_crf_run_learns_and_writes_its_outputs(synthetic_dataset, tmp_path):
    untrained = run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir",
                     tmp_path / "untrained", "--num_train_epochs", "0.01", "--learning_rate", "1e-12",
                     "--crf_learning_rate", "1e-12"])
    results = run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir",
                   tmp_path / "crf", "--train_split", "train_downsampled", "--num_train_epochs", "8"])
    # A trained model is far above an untrained one on the sample's test split.
    assert results[TEST_F1] > 0.6
    assert results[TEST_F1] > untrained[TEST_F1] + 0.4

    output_dir = tmp_path / "crf"
    config = json.loads((output_dir / "config.json").read_text())
    assert config["model_type"] == "crf_token_classification"
    assert "AutoModelForTokenClassification" in config["auto_map"]
    assert (output_dir / "modeling_crf.py").is_file()
    # The pipeline of pipeline(model=output_dir, trust_remote_code=True) travels beside the model.
    assert config["custom_pipelines"]["token-classification"]["impl"] == "windows.NerPipeline"
    assert (output_dir / "windows.py").is_file() and (output_dir / "tagging.py").is_file()
    # The saved tokenizer says what the encoder takes (max_position_embeddings=256), not its default 512.
    assert json.loads((output_dir / "tokenizer_config.json").read_text())["model_max_length"] == 256
    for name in ("all_results.json", "train_results.json", "eval_results.json", "test_results.json", "README.md",
                 "run_info.json", "tokenizer.json"):
        assert (output_dir / name).is_file(), name
    all_results = json.loads((output_dir / "all_results.json").read_text())
    assert all_results["num_parameters"] > 0 and all_results["train_words_per_second"] > 0

    test = load_from_disk(str(synthetic_dataset))["test"]
    rows = read_jsonl(output_dir / "predictions" / "test_predictions.jsonl")
    assert [row["id"] for row in rows] == test["id"]
    for row in rows:
        assert len(row["pred_tags"]) == len(row["tokens"]) == len(row["confidences"]) == len(row["gold_tags"])
        assert all(0.0 <= c <= 1.0 for c in row["confidences"])
    brat_files = sorted(p.stem for p in (output_dir / "predictions" / "brat").glob("*.ann"))
    assert brat_files == sorted(set(test["document_id"]))

    run_info = json.loads((output_dir / "run_info.json").read_text())
    assert run_info["efficient_training"] is True and run_info["use_crf"] is True

    card = (output_dir / "README.md").read_text()
    assert "trust_remote_code=True" in card and "Not for clinical decisions" in card
    assert f"{results[TEST_F1]:.4f}" in card


def test_apt_run_uses_the_stock_head(synthetic_dataset, tmp_path):
    results = run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir",
                   tmp_path / "apt", "--use_crf", "false", "--train_split", "train_downsampled",
                   "--num_train_epochs", "8"])
    assert results[TEST_F1] > 0.5
    config = json.loads((tmp_path / "apt" / "config.json").read_text())
    assert config["model_type"] == "distilbert" and "auto_map" not in config and "custom_pipelines" not in config
    assert not [name for name in ("modeling_crf.py", "windows.py", "tagging.py") if (tmp_path / "apt" / name).exists()]
    rows = read_jsonl(tmp_path / "apt" / "predictions" / "test_predictions.jsonl")
    assert all(0.0 < c <= 1.0 for row in rows for c in row["confidences"])


def test_long_sentences_are_windowed_not_truncated(synthetic_dataset, tmp_path):
    results = run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir",
                   tmp_path / "windows", "--max_seq_length", "12", "--stride", "4", "--num_train_epochs", "1",
                   "--max_train_samples", "200"])
    assert results["train_windowed_sentences"] > 0 and results["test_windowed_sentences"] > 0
    rows = read_jsonl(tmp_path / "windows" / "predictions" / "test_predictions.jsonl")
    assert all(len(row["pred_tags"]) == len(row["tokens"]) for row in rows)
    assert max(len(row["tokens"]) for row in rows) > 12


def test_early_stopping_ends_training_when_validation_stops_improving(synthetic_dataset, tmp_path):
    # A learning rate of ~0 cannot improve macro-F1, so patience 1 stops after the second evaluation.
    run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir", tmp_path / "early",
         "--max_train_samples", "64", "--num_train_epochs", "10", "--learning_rate", "1e-12",
         "--crf_learning_rate", "1e-12", "--eval_strategy", "epoch", "--save_strategy", "epoch",
         "--load_best_model_at_end", "true", "--metric_for_best_model", STRICT_MACRO_F1,
         "--early_stopping_patience", "1", "--do_predict", "false"])
    state = json.loads((tmp_path / "early" / "trainer_state.json").read_text())
    evaluations = [entry for entry in state["log_history"] if f"eval_{STRICT_MACRO_F1}" in entry]
    assert len(evaluations) == 2 and state["global_step"] == 8


def test_bf16_mixed_precision_run(synthetic_dataset, tmp_path):
    # CPU autocast in bfloat16: the CRF itself stays float32, so the loss is finite.
    import torch

    seen = []  # (training?, module class, autocast on the CPU, its dtype, input dtype, output dtype) of each forward

    def record(module, inputs, output):
        name = type(module).__name__
        if name in ("Linear", "CRF"):
            tensor_in = next((t for t in inputs if torch.is_tensor(t) and t.is_floating_point()), None)
            seen.append((module.training, name, torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"),
                         None if tensor_in is None else tensor_in.dtype,
                         output.dtype if torch.is_tensor(output) else None))

    hook = torch.nn.modules.module.register_module_forward_hook(record)  # every module's forward, this run's too
    try:
        results = run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir",
                       tmp_path / "bf16", "--bf16", "true", "--num_train_epochs", "1", "--max_train_samples", "64",
                       "--max_predict_samples", "50"])
    finally:
        hook.remove()
    # --bf16 is active: every training forward of the encoder's and the head's linear layers ran under CPU autocast
    # in bfloat16 and gave bfloat16 activations; the CRF's own forward (its NLL) got float32 emissions.
    linear = [entry for entry in seen if entry[0] and entry[1] == "Linear"]
    crf = [entry for entry in seen if entry[0] and entry[1] == "CRF"]
    assert linear and crf, "no training forward seen"
    assert {entry[2:4] + entry[5:] for entry in linear} == {(True, torch.bfloat16, torch.bfloat16)}
    assert {entry[2] for entry in crf} == {False} and {entry[4] for entry in crf} == {torch.float32}
    assert torch.load(tmp_path / "bf16" / "training_args.bin", weights_only=False).bf16 is True
    assert results["train_loss"] == results["train_loss"] and results["train_loss"] < 1e3
    rows = read_jsonl(tmp_path / "bf16" / "predictions" / "test_predictions.jsonl")
    assert len(rows) == 50 and all(len(row["pred_tags"]) == len(row["tokens"]) for row in rows)


def test_resume_from_last_checkpoint(synthetic_dataset, tmp_path):
    args = [*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir", tmp_path / "resume",
            "--max_train_samples", "64", "--save_strategy", "epoch", "--do_eval", "false", "--do_predict", "false"]
    run([*args, "--num_train_epochs", "1"])
    assert (tmp_path / "resume" / "checkpoint-4").is_dir()
    run([*args, "--num_train_epochs", "2", "--resume_from_checkpoint", "true"])
    state = json.loads((tmp_path / "resume" / "trainer_state.json").read_text())
    assert state["global_step"] == 8
    results = json.loads((tmp_path / "resume" / "train_results.json").read_text())
    assert results["train_sentences"] == 64
    # Resumed: this process trained only the second epoch's 4 steps (64 sentences), where a restart from scratch
    # trains all 8 (128). The Trainer's speed metrics count the steps and samples of this train() call only.
    assert round(results["train_steps_per_second"] * results["train_runtime"]) == 4
    assert round(results["train_samples_per_second"] * results["train_runtime"]) == 64


def test_push_to_hub_uploads_no_corpus_text(synthetic_dataset, tmp_path, monkeypatch):
    import huggingface_hub

    uploads = []
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kwargs: repo_id)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder",
                        lambda self, **kwargs: uploads.append(kwargs) or "intercepted")
    output_dir = tmp_path / "pushed"
    # --calibrate_confidence without --do_eval (as bench runs train): the validation split is still predicted.
    run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir", output_dir,
         "--num_train_epochs", "1", "--max_train_samples", "100", "--save_strategy", "epoch",
         "--push_to_hub", "--hub_model_id", "someone/tiny-crf", "--push_corpus_vocabulary",
         "--calibrate_confidence", "--do_eval", "false"])
    assert len(uploads) == 1 and uploads[0]["repo_id"] == "someone/tiny-crf"
    uploaded = hub_uploaded_files(uploads[0], output_dir)  # what the upload received: the allow-list, no predictions
    assert {"config.json", "model.safetensors", "modeling_crf.py", "windows.py", "tagging.py", "README.md",
            "tokenizer.json", "calibration.json"} <= set(uploaded)
    assert not (output_dir / "eval_results.json").exists()

    # The temperature, fitted on validation, travels in the config (loaded without remote code) and calibration.json
    # says what it does on validation and, applied as it is, on test.
    from transformers import AutoConfig

    calibration = json.loads((output_dir / "calibration.json").read_text())
    assert set(calibration) == {"temperature", "fitted_on", "validation", "test"}
    assert calibration["fitted_on"] == "validation" and calibration["temperature"] > 0
    config = AutoConfig.from_pretrained(output_dir, trust_remote_code=False)
    assert config.model_type == "crf_token_classification"
    assert config.entity_confidence_temperature == calibration["temperature"]
    for split in ("validation", "test"):
        report = calibration[split]
        assert report["temperature"] == calibration["temperature"] and report["num_gold_entities"] > 0
        for key in ("uncalibrated", "calibrated"):
            assert len(report[key]["reliability"]) == 10 and len(report[key]["thresholds"]) == 8
            assert sum(row["count"] for row in report[key]["reliability"]) == report[key]["num_entities"]
            assert report[key]["num_entities"] == 0 or 0 <= report[key]["ece"] <= 1
    assert [p for p in (output_dir / "predictions").rglob("*") if p.is_file()], "predictions exist but stay local"
    card = (output_dir / "README.md").read_text()
    assert f"a temperature of {calibration['temperature']:.3g} on their log-odds" in card
    assert f"{calibration['test']['uncalibrated']['ece']:.3f} before, {calibration['test']['calibrated']['ece']:.3f} " \
           "after" in card

    # No run of 4 consecutive corpus words appears in any uploaded file.
    dataset = load_from_disk(str(synthetic_dataset))
    ngrams = {" ".join(tokens[i:i + 4]) for split in dataset.values() for tokens in split["tokens"]
              for i in range(len(tokens) - 3) if all(re.search(r"\w", t) for t in tokens[i:i + 4])}
    assert len(ngrams) > 1000
    for name in uploaded:
        data = (output_dir / name).read_bytes()
        if name.endswith(".safetensors"):
            continue  # weights: numbers only
        # (the card's example sentence is the project's own text, not the corpus's)
        words = re.findall(r"\w+|[^\w\s]", data.decode("utf-8").replace(CARD_EXAMPLE, ""))
        text = " ".join(words)
        leaked = [gram for gram in ngrams if gram in text]
        assert not leaked, f"{name} holds corpus text: {leaked[:3]}"


# Issue 25 item 12: training on the test split is refused unless --allow_test_training says so.
@pytest.mark.parametrize("train_split, extra", [("test", []), ("train+test", []), ("train + test", []),
                                                ("train+validation", ["--test_split", "validation"])])
def test_training_on_the_test_split_is_refused_before_any_model_is_built(tmp_path, monkeypatch, train_split, extra):
    monkeypatch.setattr(sys.modules["run_ner_crf"], "run", lambda *args: pytest.fail("reached the run (model building)"))
    output_dir = tmp_path / "out"
    with pytest.raises(UsageError, match="trains on the test split") as info:
        run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", tmp_path, "--output_dir", output_dir,
             "--train_split", train_split, *extra])
    assert "\n" not in str(info.value) and "--allow_test_training" in str(info.value)
    assert not output_dir.exists(), "refused before the output folder is touched"


def test_training_on_the_test_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules["run_ner_crf"], "run", lambda *args: pytest.fail("reached the run (model building)"))
    data = tmp_path / "notes.json"
    data.write_text("{}\n")
    with pytest.raises(UsageError, match="is the --test_file"):
        run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--train_file", data, "--test_file", data, "--output_dir", tmp_path / "o"])


def test_allow_test_training_lets_the_run_start(tmp_path, monkeypatch):
    reached = []
    monkeypatch.setattr(sys.modules["run_ner_crf"], "run", lambda model_args, data_args, training_args: reached.append(data_args))
    data = tmp_path / "data"
    data.mkdir()
    run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", data, "--output_dir", tmp_path / "out",
         "--train_split", "train+test", "--allow_test_training"])
    assert reached and reached[0].allow_test_training and reached[0].train_split == "train+test"
    # Without training, --train_split is not used: nothing to refuse.
    run(["--dataset_path", data, "--output_dir", tmp_path / "predict", "--do_predict", "--train_split", "test",
         "--model_name_or_path", data])
    assert len(reached) == 2


def test_calibration_needs_a_held_out_validation_split(tmp_path, monkeypatch):
    data = tmp_path / "notes.json"
    data.write_text('{"tokens": ["Aspirin"], "ner_tags": ["B-Drug"]}\n')
    args = [*TINY_MODEL_ARGS, *COMMON_ARGS, "--calibrate_confidence", "--output_dir", tmp_path / "out"]
    with pytest.raises(UsageError, match="give --validation_file"):
        run([*args, "--train_file", data, "--test_file", data, "--allow_test_training"])
    with pytest.raises(UsageError, match="which --train_split train[+]validation trains on"):
        run([*args, "--dataset_path", tmp_path, "--train_split", "train+validation"])
    with pytest.raises(UsageError, match="the model this run trains"):
        run([*args, "--dataset_path", tmp_path, "--do_train", "false"])
    assert not (tmp_path / "out").exists()
    # A data source without the split: once it is read, before any model is built.
    from datasets import Dataset, DatasetDict

    rows = Dataset.from_dict({"tokens": [["Aspirin", "daily"]], "ner_tags": [["B-Drug", "O"]]})
    DatasetDict({"train": rows, "test": rows}).save_to_disk(str(tmp_path / "no_validation"))
    monkeypatch.setattr(sys.modules["run_ner_crf"], "build_model", lambda *a: pytest.fail("reached the model"))
    with pytest.raises(UsageError, match="has no 'validation' split [(]has: train, test[)]"):
        run([*args, "--dataset_path", tmp_path / "no_validation"])
    assert not (tmp_path / "out").exists()


def test_the_refusal_is_one_line_and_exit_status_2(tmp_path):
    (tmp_path / "dataset_dict.json").write_text("{}")  # looks like a dataset: the split is what is refused
    result = subprocess.run([sys.executable, "run_ner_crf.py", "--dataset_path", str(tmp_path), "--output_dir",
                             str(tmp_path / "out"), "--do_train", "--train_split", "test", "--config_name",
                             "configs/architectures/distilbert-base-cased.json"],
                            cwd=REPO_ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = [text for text in result.stderr.splitlines() if "error:" in text]
    assert line.startswith("run_ner_crf.py: error: --train_split test trains on the test split (test)")
