"""subwords.py (a deterministic WordPiece from the training words) and pretrain_mlm.py (self-pretraining)."""

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pretrain_mlm
import prepare_n2c2
from conftest import REPO_ROOT
from subwords import CONTINUATION, train_subword_tokenizer, vocabulary_report

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


def test_the_vocabulary_is_a_wordpiece_of_at_most_the_size_asked(words):
    train, test = words
    tokenizer = train_subword_tokenizer(train, vocab_size=300, min_frequency=2)
    assert len(tokenizer) == 300
    vocab = tokenizer.get_vocab()
    assert any(piece.startswith(CONTINUATION) for piece in vocab) and "[UNK]" in vocab
    # Every character of the training words is in the vocabulary, so no training word is unknown.
    assert vocabulary_report(tokenizer, train)["unknown_rate"] == 0.0
    report = vocabulary_report(tokenizer, test)
    assert 1.0 <= report["pieces_per_word"] < 3 and report["unknown_rate"] < 0.01
    # A larger size gives longer pieces; a size the corpus cannot fill stops at what it has.
    larger = train_subword_tokenizer(train, vocab_size=100_000)
    assert len(larger) < 100_000 and vocabulary_report(larger, test)["pieces_per_word"] < report["pieces_per_word"]


def test_the_vocabulary_is_the_same_in_every_process(dataset, tmp_path):
    code = (
        "import sys, hashlib\n"
        f"sys.path.insert(0, {str(REPO_ROOT)!r})\n"
        "from datasets import load_from_disk\n"
        "from subwords import train_subword_tokenizer\n"
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


def test_blocks_hold_every_word_in_order_and_are_nearly_full(words):
    train, _ = words
    tokenizer = train_subword_tokenizer(train, vocab_size=300)
    sentences = train[:300] + [["x" * 300]]  # a word longer than a block
    blocks = pretrain_mlm.pack_blocks(sentences, tokenizer, max_seq_length=32)
    expected = [i for ids in tokenizer(sentences, is_split_into_words=True, add_special_tokens=False)["input_ids"]
                for i in ids]
    assert [i for ids in blocks["input_ids"] for i in ids[1:-1]] == expected
    for ids, word_ids in zip(blocks["input_ids"], blocks["word_ids"]):
        assert len(ids) <= 32 and ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        assert word_ids[0] == word_ids[-1] == -1 and word_ids[1:-1] == sorted(word_ids[1:-1])
    lengths = [len(ids) for ids in blocks["input_ids"]]
    assert pretrain_mlm.padding_share(lengths, batch_size=16) < 0.05


def test_context_free_loss_is_the_entropy_of_the_pieces_predicted():
    cls, sep, a, b, c = 2, 3, 10, 11, 12
    blocks = {"input_ids": [[cls, a, a, b, sep], [cls, a, c, sep]]}  # a: 3 of 5, b and c: 1 of 5 each
    expected = -(0.6 * math.log(0.6) + 2 * 0.2 * math.log(0.2))
    assert pretrain_mlm.context_free_loss(blocks, [cls, sep]) == pytest.approx(expected, abs=1e-4)
    assert pretrain_mlm.context_free_loss({"input_ids": [[cls, a, a, sep]]}, [cls, sep]) == 0.0  # one piece: no doubt


def test_whole_words_are_masked_together(words):
    train, _ = words
    tokenizer = train_subword_tokenizer(train, vocab_size=200)
    blocks = pretrain_mlm.pack_blocks(train[:400], tokenizer, max_seq_length=64)
    features = [{"input_ids": i, "word_ids": w} for i, w in zip(blocks["input_ids"], blocks["word_ids"])][:64]
    torch.manual_seed(0)
    batch = pretrain_mlm.WholeWordMaskCollator(tokenizer, 0.15)(features)
    masked = batch["labels"] != -100
    assert 0.08 < masked.sum() / batch["attention_mask"].sum() < 0.25
    for row, feature in enumerate(features):
        word_ids = torch.tensor(feature["word_ids"])
        for word in set(feature["word_ids"]) - {-1}:
            pieces = masked[row, :len(word_ids)][word_ids == word]
            assert pieces.all() or not pieces.any(), "a word is masked whole or not at all"
        assert not masked[row, 0] and batch["input_ids"][row, 0] == tokenizer.cls_token_id
    replaced = batch["input_ids"][masked] == tokenizer.mask_token_id
    assert 0.6 < replaced.float().mean() < 0.95  # 80% [MASK], the rest random or kept


# ---------------------------------------------------------------------------
# The script: the user's path, pre-train then fine-tune
# ---------------------------------------------------------------------------


def test_pretrain_then_fine_tune_with_run_ner_crf(dataset, tmp_path):
    import run_ner_crf

    results = pretrain_mlm.main(["--dataset_paths", str(dataset), "--output_dir", str(tmp_path / "mlm"), "--do_train",
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
    with pytest.raises(pretrain_mlm.UsageError, match="is not empty"):
        pretrain_mlm.main(["--dataset_paths", str(dataset), "--output_dir", str(tmp_path / "mlm"), "--do_train",
                           "--max_steps", "12", *TINY])
    resumed = pretrain_mlm.main(["--dataset_paths", str(dataset), "--output_dir", str(tmp_path / "mlm"), "--do_train",
                                 "--max_steps", "18", "--resume_from_checkpoint", "true", *TINY])
    assert resumed["train_epochs_run"] < results["train_epochs_run"]  # only the 6 steps after the checkpoint


def test_test_text_is_never_used(dataset, tmp_path):
    with pytest.raises(pretrain_mlm.UsageError, match="test text is never used"):
        pretrain_mlm.main(["--dataset_paths", str(dataset), "--text_splits", "train", "test", "--output_dir",
                           str(tmp_path / "a"), "--do_train", *TINY])
    # A folder of notes holding a test document (a copy under another name) is refused too.
    from datasets import load_from_disk

    documents = load_from_disk(str(dataset / "documents"))
    test_text = next(text for text, split in zip(documents["text"], documents["split"]) if split == "test")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "copy.txt").write_text(test_text, encoding="utf-8")
    with pytest.raises(pretrain_mlm.UsageError, match="1 notes are test documents"):
        pretrain_mlm.main(["--dataset_paths", str(dataset), "--notes_dirs", str(notes), "--output_dir",
                           str(tmp_path / "b"), "--do_train", *TINY])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_readme_commands_with_a_folder_of_unlabelled_notes(dataset, tmp_path):
    """The README's two self-pretraining commands as written, in fresh processes: only the paths, the step count
    and a tiny model changed (and CPU flags added)."""
    import re

    from datasets import load_from_disk

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```bash\n(.*?)```", readme, flags=re.S) if "pretrain_mlm.py" in b)
    commands = [line.split("#")[0].split() for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    assert [c[:3] for c in commands] == [["python", "pretrain_mlm.py", "--dataset_paths"],
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
    assert "Encoder pre-trained on" in result.stdout and "tokens/s" in result.stdout
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
    args = ["--dataset_paths", str(dataset), "--do_train", "--max_steps", "4", "--save_strategy", "steps",
            "--save_steps", "2", "--push_to_hub", "--hub_model_id", "someone/encoder", *TINY]
    with pytest.raises(pretrain_mlm.UsageError, match="--push_corpus_vocabulary"):
        pretrain_mlm.main([*args, "--output_dir", str(tmp_path / "refused")])
    assert not uploads and not (tmp_path / "refused").exists()  # refused before any work
    pretrain_mlm.main([*args, "--output_dir", str(tmp_path / "mlm"), "--push_corpus_vocabulary"])
    assert [u["repo_id"] for u in uploads] == ["someone/encoder"]  # once, at the end (not at each checkpoint)
    uploaded = pretrain_mlm.hub_upload_files(tmp_path / "mlm")
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
