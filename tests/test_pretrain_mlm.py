"""clinical_ner_crf/subwords.py (a deterministic WordPiece from the training words) and pretrain_mlm.py (self-pretraining)."""

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clinical_ner_crf.command_line import UsageError
from conftest import REPO_ROOT, command, hub_uploaded_files

prepare_n2c2 = command("prepare_n2c2")  # the command, called in-process as from its command line
pretrain_mlm = command("pretrain_mlm")  # the command, called in-process as from its command line
run_ner_crf = command("run_ner_crf")  # the command, called in-process as from its command line

TINY = ["--config_overrides", "dim=32,n_layers=1,n_heads=2,hidden_dim=64,max_position_embeddings=128",
        "--per_device_train_batch_size", "16", "--learning_rate", "1e-3", "--use_cpu", "--report_to", "none",
        "--disable_tqdm", "true", "--seed", "3"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "synthetic"
    prepare_n2c2.main(["--synthetic", "30", "--seed", "11", "--output_dir", str(path)])
    return path


@pytest.fixture(scope="module")
def words(dataset):
    from datasets import load_from_disk

    data = load_from_disk(str(dataset))
    return [list(tokens) for tokens in data["train"]["tokens"]], [list(tokens) for tokens in data["test"]["tokens"]]


# ---------------------------------------------------------------------------
# The vocabulary
# ---------------------------------------------------------------------------


def test_the_vocabulary_is_the_same_in_every_process(dataset, tmp_path):
    code = (
        "import sys, hashlib\n"
        f"sys.path.insert(0, {str(REPO_ROOT)!r})\n"
        "from datasets import load_from_disk\n"
        "from clinical_ner_crf.subwords import train_subword_tokenizer\n"
        f"data = load_from_disk({str(dataset)!r})['train']['tokens']\n"
        "tokenizer = train_subword_tokenizer(data, vocab_size=500)\n"
        "tokenizer.save_pretrained(sys.argv[1])\n"
    )
    digests = set()
    for index in range(2):
        folder = tmp_path / f"process{index}"
        subprocess.run([sys.executable, "-c", code, str(folder)], check=True, capture_output=True,
                       env={**os.environ, "PYTHONHASHSEED": str(index + 1)})  # different string hashing
        digests.add(hashlib.sha256((folder / "tokenizer.json").read_bytes()).hexdigest())
    assert len(digests) == 1


# ---------------------------------------------------------------------------
# Packing and masking
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# The script: the user's path, pre-train then fine-tune
# ---------------------------------------------------------------------------


def test_pretrain_then_fine_tune_with_run_ner_crf(dataset, tmp_path):

    results = pretrain_mlm.main(["--dataset_path", str(dataset), "--output_dir", str(tmp_path / "mlm"), "--do_train",
                                 "--max_steps", "12", "--save_strategy", "steps", "--save_steps", "6",
                                 "--logging_steps", "6", *TINY])
    assert results["train_loss"] > 0 and results["padding_share"] < 0.05
    record = json.loads((tmp_path / "mlm" / "pretraining_data.json").read_text())
    from datasets import load_from_disk

    train_documents = load_from_disk(str(dataset / "documents"))["split"].count("train")
    assert record["sources"] == [{"dataset_path": str(dataset), "splits": ["train"], "documents": train_documents}]
    assert record["tokens"] > 1000 and len(record["text_sha256"]) == 64 and record["vocabulary_learned_from_text"]
    assert json.loads((tmp_path / "mlm" / "run_info.json").read_text())["vocabulary_from_corpus"] is True
    # Losses: the run's mean (the Trainer's train_loss), where it ended, and what ignoring context scores.
    assert record["mean_train_loss"] == pytest.approx(results["train_loss"])
    assert record["last_logged_loss"] > 0 and 0 < record["context_free_loss"] < math.log(record["vocabulary"]["vocabulary_size"])
    # Only counts and a hash: no sentence of the corpus is in what the run wrote.
    sentences = [" ".join(tokens) for tokens in load_from_disk(str(dataset))["train"]["tokens"] if len(tokens) > 5]
    written = "".join(path.read_text(errors="replace") for path in (tmp_path / "mlm").glob("*.json"))
    assert not [sentence for sentence in sentences if sentence in written]
    for use_crf in ("true", "false"):
        fine_tuned = run_ner_crf.main(["--model_name_or_path", str(tmp_path / "mlm"), "--dataset_path", str(dataset),
                                       "--output_dir", str(tmp_path / f"ner_{use_crf}"), "--use_crf", use_crf,
                                       "--do_train", "--do_predict", "--num_train_epochs", "1",
                                       "--max_train_samples", "64", "--max_predict_samples", "32", "--use_cpu",
                                       "--report_to", "none", "--disable_tqdm", "true"])
        assert fine_tuned["test_sentences"] == 32
    # The same command again resumes only when asked, from a complete checkpoint of the same run.
    with pytest.raises(UsageError, match="is not empty"):
        pretrain_mlm.main(["--dataset_path", str(dataset), "--output_dir", str(tmp_path / "mlm"), "--do_train",
                           "--max_steps", "12", *TINY])
    resumed = pretrain_mlm.main(["--dataset_path", str(dataset), "--output_dir", str(tmp_path / "mlm"), "--do_train",
                                 "--max_steps", "18", "--resume_from_checkpoint", "true", *TINY])
    assert resumed["train_epochs_run"] < results["train_epochs_run"]
    # Resumed from checkpoint-12, not restarted: this train() call ran only the 6 steps after it (a restart runs 18).
    # train_epochs_run alone cannot tell: it subtracts the checkpoint's epoch whether or not training started there.
    assert round(resumed["train_steps_per_second"] * resumed["train_runtime"]) == 6


def test_test_text_is_never_used(dataset, tmp_path):
    with pytest.raises(UsageError, match="test text is never used"):
        pretrain_mlm.main(["--dataset_path", str(dataset), "--text_splits", "train", "test", "--output_dir",
                           str(tmp_path / "a"), "--do_train", *TINY])
    # A folder of notes holding a test document (a copy under another name) is refused too.
    from datasets import load_from_disk

    documents = load_from_disk(str(dataset / "documents"))
    test_text = next(text for text, split in zip(documents["text"], documents["split"]) if split == "test")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "copy.txt").write_text(test_text, encoding="utf-8")
    with pytest.raises(UsageError, match="1 notes are test documents"):
        pretrain_mlm.main(["--dataset_path", str(dataset), "--notes_dirs", str(notes), "--output_dir",
                           str(tmp_path / "b"), "--do_train", *TINY])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_the_readme_commands_with_a_folder_of_unlabelled_notes(dataset, tmp_path):
    """The README's two self-pretraining commands as written, in fresh processes: only the paths, the step count
    and a tiny model changed (and CPU flags added)."""
    import re

    from datasets import load_from_disk

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```bash\n(.*?)```", readme, flags=re.S) if "pretrain_mlm.py" in b)
    commands = [line.split("#")[0].split() for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    assert [c[:3] for c in commands] == [["python", "pretrain_mlm.py", "--dataset_path"],
                                         ["accelerate", "launch", "run_ner_crf.py"]]
    documents = load_from_disk(str(dataset / "documents"))
    notes = tmp_path / "notes"
    notes.mkdir()
    for index, (text, split) in enumerate(zip(documents["text"], documents["split"])):
        if split == "train":
            (notes / f"note{index}.txt").write_text(text, encoding="utf-8")
    paths = {"data/n2c2": str(dataset), "/path/to/unlabelled_notes": str(notes)}
    pretrain, fine_tune = ([paths.get(arg, arg.replace("runs/", f"{tmp_path}/runs/")) for arg in command]
                           for command in commands)
    pretrain[pretrain.index("--max_steps") + 1] = "4"
    pretrain = [sys.executable, *pretrain[1:], *TINY]
    fine_tune = [str(Path(sys.executable).with_name("accelerate")), *fine_tune[1:], "--num_train_epochs", "1",
                 "--max_train_samples", "32", "--max_eval_samples", "16", "--max_predict_samples", "16",
                 "--use_cpu", "--report_to", "none", "--disable_tqdm", "true"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(pretrain, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pretrain_mlm.py wrote:" in result.stdout and "tokens seen" in result.stdout
    record = json.loads((tmp_path / "runs" / "self_pretrained" / "pretraining_data.json").read_text())
    assert [source.get("notes_dir") for source in record["sources"]][-1] == str(notes)
    result = subprocess.run(fine_tune, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "runs" / "transformer_crf_self" / "model.safetensors").is_file()
    assert len((tmp_path / "runs" / "transformer_crf_self" / "predictions" / "test_predictions.jsonl")
               .read_text().splitlines()) == 16


def test_push_to_hub_uploads_the_encoder_only_and_a_learned_vocabulary_only_when_acknowledged(dataset, tmp_path,
                                                                                              monkeypatch):
    import huggingface_hub

    uploads = []
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kwargs: repo_id)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", lambda self, **kwargs: uploads.append(kwargs) or "ok")
    args = ["--dataset_path", str(dataset), "--do_train", "--max_steps", "4", "--save_strategy", "steps",
            "--save_steps", "2", "--push_to_hub", "--hub_model_id", "someone/encoder", *TINY]
    with pytest.raises(UsageError, match="--push_corpus_vocabulary"):
        pretrain_mlm.main([*args, "--output_dir", str(tmp_path / "refused")])
    assert not uploads and not (tmp_path / "refused").exists()  # refused before any work
    pretrain_mlm.main([*args, "--output_dir", str(tmp_path / "mlm"), "--push_corpus_vocabulary"])
    assert [u["repo_id"] for u in uploads] == ["someone/encoder"]  # once, at the end (not at each checkpoint)
    uploaded = hub_uploaded_files(uploads[0], tmp_path / "mlm")  # what the upload received, not what it should
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= set(uploaded)
    assert not [name for name in uploaded if name.startswith("checkpoint-") or "pretraining_data" in name
                or "trainer_state" in name]
    # Only the acknowledged vocabulary (and the weights) hold corpus-derived content; the card says so.
    from datasets import load_from_disk

    sentences = [" ".join(tokens) for tokens in load_from_disk(str(dataset))["train"]["tokens"] if len(tokens) > 5]
    for name in set(uploaded) - {"tokenizer.json", "vocab.txt", "model.safetensors"}:
        text = (tmp_path / "mlm" / name).read_text(errors="replace")
        assert not [sentence for sentence in sentences if sentence in text], name
    assert "vocabulary was learned from the pre-training notes" in (tmp_path / "mlm" / "README.md").read_text()


# ---------------------------------------------------------------------------
# The user's notes as they come: a missing folder, files that are not text, a note of one 50 MB line
# ---------------------------------------------------------------------------


def run_script(argv, capsys) -> tuple[int, list[str]]:
    """pretrain_mlm.py as its command line runs it (command_line.run_main): exit status and stderr's lines."""
    from clinical_ner_crf.command_line import run_main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        run_main(lambda: pretrain_mlm.main([str(arg) for arg in argv]), "pretrain_mlm.py")
    return exited.value.code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_a_missing_notes_folder_is_one_line(tmp_path, capsys):
    for missing, says in ((tmp_path / "no_such_notes", "does not exist"), (tmp_path / "file.txt", "is not a folder")):
        if missing.name == "file.txt":
            missing.write_text("a note")
        status, lines = run_script(["--notes_dirs", missing, "--output_dir", tmp_path / "out", "--do_train", *TINY],
                                   capsys)
        assert status == 2 and lines == [f"pretrain_mlm.py: error: --notes_dirs {missing} {says}: give folders of "
                                         ".txt notes"]
        assert not (tmp_path / "out").exists()


