"""clinical_ner_crf/pretraining_text.py: pre-training text read in bounded pieces, nothing lost; notes that are not text skipped, named and counted."""

import json
import os
import subprocess
import sys

from clinical_ner_crf import pretraining_text
from clinical_ner_crf.pretraining_text import document_segments, gather_texts, texts_digest
from clinical_ner_crf.tagging import split_sentences
from conftest import REPO_ROOT, command
from test_pretrain_mlm import dataset  # noqa: F401 (fixtures)
from test_pretrain_mlm import TINY

pretrain_mlm = command("pretrain_mlm")


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
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
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
