"""clinical_ner_crf/subwords.py (a deterministic WordPiece from the training words) and pretrain_mlm.py (self-pretraining)."""

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clinical_ner_crf import pretraining_text
from clinical_ner_crf.command_line import UsageError
from clinical_ner_crf.mlm_blocks import (
    WholeWordMaskCollator, blocks_dataset, context_free_loss, iter_blocks, pack_blocks, padding_share, piece_entropy,
)
from clinical_ner_crf.pretraining_text import document_segments, gather_texts, texts_digest
from clinical_ner_crf.subwords import CONTINUATION, train_subword_tokenizer, vocabulary_report
from clinical_ner_crf.tagging import split_sentences
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


def test_the_vocabulary_is_a_wordpiece_of_at_most_the_size_asked(words):
    train, test = words
    tokenizer = train_subword_tokenizer(train, vocab_size=400, min_frequency=2)  # 291 of them: the base alphabet
    assert len(tokenizer) == 400
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
    tokenizer = train_subword_tokenizer(train, vocab_size=600)
    sentences = train[:300] + [["x" * 300]]  # a word longer than a block
    blocks = pack_blocks(sentences, tokenizer, max_seq_length=32)
    expected = [i for ids in tokenizer(sentences, is_split_into_words=True, add_special_tokens=False)["input_ids"]
                for i in ids]
    assert [i for ids in blocks["input_ids"] for i in ids[1:-1]] == expected
    for ids, word_ids in zip(blocks["input_ids"], blocks["word_ids"]):
        assert len(ids) <= 32 and ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        assert word_ids[0] == word_ids[-1] == -1 and word_ids[1:-1] == sorted(word_ids[1:-1])
    lengths = [len(ids) for ids in blocks["input_ids"]]
    assert padding_share(lengths, batch_size=16) < 0.05


def test_context_free_loss_is_the_entropy_of_the_pieces_predicted():
    cls, sep, a, b, c = 2, 3, 10, 11, 12
    blocks = {"input_ids": [[cls, a, a, b, sep], [cls, a, c, sep]]}  # a: 3 of 5, b and c: 1 of 5 each
    expected = -(0.6 * math.log(0.6) + 2 * 0.2 * math.log(0.2))
    assert context_free_loss(blocks, [cls, sep]) == pytest.approx(expected, abs=1e-4)
    assert context_free_loss({"input_ids": [[cls, a, a, sep]]}, [cls, sep]) == 0.0  # one piece: no doubt


def test_whole_words_are_masked_together(words):
    train, _ = words
    tokenizer = train_subword_tokenizer(train, vocab_size=300)
    blocks = pack_blocks(train[:400], tokenizer, max_seq_length=64)
    features = [{"input_ids": i, "word_ids": w} for i, w in zip(blocks["input_ids"], blocks["word_ids"])][:64]
    torch.manual_seed(0)
    batch = WholeWordMaskCollator(tokenizer, 0.15)(features)
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
    with pytest.raises(UsageError, match="is not empty"):
        pretrain_mlm.main(["--dataset_paths", str(dataset), "--output_dir", str(tmp_path / "mlm"), "--do_train",
                           "--max_steps", "12", *TINY])
    resumed = pretrain_mlm.main(["--dataset_paths", str(dataset), "--output_dir", str(tmp_path / "mlm"), "--do_train",
                                 "--max_steps", "18", "--resume_from_checkpoint", "true", *TINY])
    assert resumed["train_epochs_run"] < results["train_epochs_run"]
    # Resumed from checkpoint-12, not restarted: this train() call ran only the 6 steps after it (a restart runs 18).
    # train_epochs_run alone cannot tell: it subtracts the checkpoint's epoch whether or not training started there.
    assert round(resumed["train_steps_per_second"] * resumed["train_runtime"]) == 6


def test_test_text_is_never_used(dataset, tmp_path):
    with pytest.raises(UsageError, match="test text is never used"):
        pretrain_mlm.main(["--dataset_paths", str(dataset), "--text_splits", "train", "test", "--output_dir",
                           str(tmp_path / "a"), "--do_train", *TINY])
    # A folder of notes holding a test document (a copy under another name) is refused too.
    from datasets import load_from_disk

    documents = load_from_disk(str(dataset / "documents"))
    test_text = next(text for text, split in zip(documents["text"], documents["split"]) if split == "test")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "copy.txt").write_text(test_text, encoding="utf-8")
    with pytest.raises(UsageError, match="1 notes are test documents"):
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


def test_notes_that_are_not_text_are_skipped_named_and_counted(dataset, tmp_path):
    from datasets import load_from_disk

    documents = load_from_disk(str(dataset / "documents"))
    good = [text for text, split in zip(documents["text"], documents["split"]) if split == "train"][:12]
    notes = tmp_path / "notes"
    notes.mkdir()
    for index, text in enumerate(good):
        (notes / f"note{index:02d}.txt").write_text(text, encoding="utf-8")
    secret = "Zyxwvut Qponmlk"  # would show up in a message that quoted a skipped file
    (notes / "note03b.txt").write_bytes(f"{secret} 81 mg\x00\x01\x02".encode() * 50)  # NUL bytes
    (notes / "note05b.txt").write_bytes(f"{secret} \xe9t\xe9".encode("latin-1") * 50)  # not UTF-8
    os.mkfifo(notes / "pipe.txt")  # never opened: reading it would wait for a writer forever
    (notes / "folder.txt").mkdir()
    result = subprocess.run([sys.executable, "pretrain_mlm.py", "--notes_dirs", str(notes), "--output_dir",
                             str(tmp_path / "mlm"), "--do_train", "--max_steps", "1", "--tokenizer_vocab_size", "400",
                             *TINY], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    for name, reason in (("note03b.txt", "holds a NUL byte at byte offset 21 (a binary file?)"),
                         ("note05b.txt", "not valid UTF-8 (byte 0xe9 at byte offset 16)"),
                         ("pipe.txt", "is a named pipe (FIFO), not a regular file"),
                         ("folder.txt", "is a folder, not a file")):
        assert f"{notes / name}: skipped, {reason}" in output
    assert "4 .txt notes skipped" in output and secret not in output
    record = json.loads((tmp_path / "mlm" / "pretraining_data.json").read_text())
    assert record["notes_skipped"] == 4 and record["notes_skipped_by_reason"] == {
        "holds a NUL byte": 1, "is a folder, not a file": 1, "is a named pipe": 1, "not valid UTF-8": 1}
    assert record["sources"] == [{"notes_dir": str(notes), "documents": len(good)}]
    # The text seen is exactly the good notes, hashed as before (texts_digest, the one home of the hash).
    assert record["text_sha256"] == texts_digest(good)
    assert secret not in "".join(path.read_text(errors="replace") for path in (tmp_path / "mlm").glob("*.json"))


def test_long_documents_are_read_in_bounded_pieces_and_nothing_is_lost(monkeypatch, tmp_path):
    """A note of one long line (no line break, then none and no space either) is read in chunks and split in
    segments of a bounded size: the words are those of the whole text, the hash is texts_digest's, and sentence
    splitting and word splitting never see more than a segment."""
    import random

    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefgh") for _ in range(rng.randint(1, 9))) for _ in range(3000)]
    one_line = " ".join(words) + ". Then a sentence.\nAnd a line é, " + "x" * 2500 + " end"
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "long.txt").write_text(one_line, encoding="utf-8")
    (notes / "short.txt").write_text("Aspirin 81 mg daily.\n", encoding="utf-8")
    monkeypatch.setattr(pretraining_text, "SEGMENT_CHARS", 1000)
    monkeypatch.setattr(pretraining_text, "READ_BYTES", 333)
    seen = []
    split = split_sentences
    monkeypatch.setattr(pretraining_text, "split_sentences", lambda text: seen.append(len(text)) or split(text))

    segments = list(document_segments([one_line[i:i + 333] for i in range(0, len(one_line), 333)], 1000))
    assert "".join(segments) == one_line and max(map(len, segments)) <= 1001 and len(segments) > 10
    assert all(segment[-1].isspace() for segment in segments[:-4])  # cut between words while there are spaces

    text, sources = gather_texts(notes_dirs=[str(notes)])
    assert sources == [{"notes_dir": str(notes), "documents": 2}] and text.documents == 2
    assert text.digest.hexdigest() == texts_digest([one_line, "Aspirin 81 mg daily.\n"])
    sentences = list(text.sentence_pass("test"))
    from clinical_ner_crf.tagging import tokenize_words

    expected = [word for word, _, _ in tokenize_words(one_line)]
    got = [word for sentence in sentences for word in sentence][:-5]  # the short note's 5 words at the end
    assert got[:len(expected) - 3] == expected[:-3]  # every word, in order (the 2,500 x's are cut in pieces)
    assert "".join(got[len(expected) - 3:]) == "".join(expected[-3:])
    assert max(seen) <= 1001 and text.sentences == len(sentences)


def test_packing_counts_what_vocabulary_report_counts(words):
    from clinical_ner_crf.subwords import vocabulary_figures

    train, test = words
    tokenizer = train_subword_tokenizer(train[:200], vocab_size=400)
    sentences = test[:300] + [["∑∂", "x"]]  # unknown pieces too
    counts = {"words": 0, "pieces": 0, "unknown": 0}
    blocks = list(iter_blocks(sentences, tokenizer, 32, vocabulary_counts=counts))
    report = vocabulary_report(tokenizer, sentences)
    assert vocabulary_figures(len(tokenizer), **counts) == report and report["unknown_rate"] > 0
    packed = pack_blocks(sentences, tokenizer, 32)
    assert [ids for ids, _ in blocks] == packed["input_ids"] and [w for _, w in blocks] == packed["word_ids"]
    dataset, lengths, piece_counts = blocks_dataset(iter(blocks), tokenizer.all_special_ids,
                                                                 rows_per_part=7)
    assert dataset["input_ids"] == packed["input_ids"] and lengths == [len(ids) for ids in packed["input_ids"]]
    assert piece_entropy(piece_counts) == context_free_loss(packed,
                                                                                      tokenizer.all_special_ids)
