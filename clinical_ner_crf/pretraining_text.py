"""Pre-training text: the unlabelled notes and prepared documents a masked-LM run reads, in bounded pieces (a note longer than :data:`SEGMENT_CHARS` is cut on a line break or whitespace), checked (text, regular files), counted and hashed (:func:`texts_digest`), never the test split."""

from __future__ import annotations

import codecs
import hashlib
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .command_line import DataError, UsageError
from .files import DOCUMENTS_DIRNAME
from .folder_safety import NotARegularFile, irregular_reason, open_regular_file
from .tagging import split_sentences, tokenize_words

logger = logging.getLogger(__name__)


# Text is read, hashed and split in bounded pieces, never all at once (a 50 MB note of one line peaked at 4.8 GB when
# it was held whole): files are read in chunks of READ_BYTES, and a document longer than SEGMENT_CHARS characters is
# cut into segments of at most that many (after a line break where one falls in the second half of the window, else
# after whitespace, else, in a run of non-space characters that long, at the limit; nothing is lost or added), each
# split into sentences as a document of its own. Documents up to SEGMENT_CHARS (every ordinary note) are split whole,
# exactly as before.
READ_BYTES = 1 << 20
SEGMENT_CHARS = 1_000_000


class TextDigest:
    """The SHA-256 recorded for the pre-training text: every document's UTF-8 bytes, in order, joined by ``\\n\\0``
    (:func:`texts_digest`), fed in pieces. ``copy()`` keeps a state to return to when a document is dropped."""

    SEPARATOR = b"\n\x00"

    def __init__(self):
        self._hash, self._documents = hashlib.sha256(), 0

    def start_document(self) -> None:
        if self._documents:
            self._hash.update(self.SEPARATOR)
        self._documents += 1

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def copy(self) -> "TextDigest":
        other = TextDigest()
        other._hash, other._documents = self._hash.copy(), self._documents
        return other

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def texts_digest(texts: Iterable[str]) -> str:
    """The SHA-256 recorded for the pre-training text (all documents, in order)."""
    digest = TextDigest()
    for text in texts:
        digest.start_document()
        digest.update(text.encode("utf-8"))
    return digest.hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class UnreadableNote(Exception):
    """A ``.txt`` note that is not text (not UTF-8, or holding NUL bytes): skipped and counted, never read on."""


def read_note_chunks(path: Path) -> Iterator[tuple[bytes, str]]:
    """A note's bytes and their text, a chunk at a time (:data:`READ_BYTES`), from a regular file only
    (``folder_safety.open_regular_file``: a FIFO raises ``NotARegularFile`` at once). Raises :class:`UnreadableNote`
    (the reason: byte offsets, never the text) at the first byte that is not UTF-8 text."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open_regular_file(path) as handle:
        while True:
            raw = handle.read(READ_BYTES)
            nul = raw.find(b"\x00")
            if nul >= 0:
                raise UnreadableNote(f"holds a NUL byte at byte offset {offset + nul} (a binary file?)")
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as error:
                pending = len(decoder.getstate()[0]) if raw else 0
                where = offset - pending + error.start
                raise UnreadableNote(f"not valid UTF-8 (byte 0x{error.object[error.start]:02x} at byte offset "
                                     f"{max(where, 0)})") from None
            if not raw:
                return
            offset += len(raw)
            yield raw, text


def _cut_point(buffer: str, limit: int) -> int:
    """Where to end a segment of ``buffer`` (longer than ``limit``): after the last line break in the second half of
    the first ``limit`` characters, else after the last whitespace there, else at ``limit``."""
    half = limit // 2
    line_break = max(buffer.rfind("\n", half, limit), buffer.rfind("\r", half, limit))
    if line_break >= 0:
        return line_break + 1
    last_space = None
    for last_space in re.finditer(r"\s+", buffer[half:limit]):
        pass
    return half + last_space.end() if last_space is not None else limit


def document_segments(chunks: Iterable[str], limit: int | None = None) -> Iterator[str]:
    """A document given in chunks, as segments of at most about ``limit`` (default :data:`SEGMENT_CHARS`) characters
    whose concatenation is the document (one segment when it is no longer than ``limit``)."""
    limit = SEGMENT_CHARS if limit is None else limit
    buffer = ""
    for chunk in chunks:
        buffer += chunk
        while len(buffer) > limit:
            cut = _cut_point(buffer, limit)
            yield buffer[:cut]
            buffer = buffer[cut:]
    if buffer:
        yield buffer


def segment_sentences(segment: str) -> Iterator[list[str]]:
    """Word lists of the sentences of one segment (tagging.py's sentences and words)."""
    for start, end in split_sentences(segment):
        yield [word for word, _, _ in tokenize_words(segment, start, end)]


class PretrainingText:
    """The pre-training documents: checked and hashed once (:func:`gather_texts`), then read again from their files
    (or dataset) in bounded pieces for each pass over them (the vocabulary, its report, the blocks): never all in
    memory. ``sentence_pass(desc)`` is an iterable of sentences (word lists) that reads the text afresh each time it
    is iterated, with a progress bar over the characters read."""

    def __init__(self, show_progress: bool = False):
        self.parts: list[tuple[str, Any]] = []  # ("dataset", (documents, splits)) or ("note", path), in order
        self.documents = 0
        self.characters = 0
        self.sentences = 0  # counted by each full pass
        self.digest = TextDigest()
        self.has_text = False
        self.skipped: Counter = Counter()  # reason -> notes skipped
        self.show_progress = show_progress

    def _documents(self) -> Iterator[Iterable[str]]:
        """Each document as an iterable of text chunks."""
        for kind, value in self.parts:
            if kind == "dataset":
                documents, splits = value
                for text in _dataset_texts(documents, splits):
                    yield (text,)
            else:
                yield self._note_text(value)

    @staticmethod
    def _note_text(path: Path) -> Iterator[str]:
        try:
            for _, text in read_note_chunks(path):
                yield text
        except (UnreadableNote, OSError) as error:  # it was text when it was checked: it changed since
            raise DataError(f"{path}: {error}; it changed while pre-training read it: run again") from None

    def sentences_of_text(self, desc: str) -> Iterator[list[str]]:
        from tqdm.auto import tqdm

        count = 0
        with tqdm(total=self.characters, desc=desc, unit="char", unit_scale=True, leave=False,
                  disable=not self.show_progress) as bar:
            for chunks in self._documents():
                for segment in document_segments(chunks):
                    for sentence in segment_sentences(segment):
                        count += 1
                        yield sentence
                    bar.update(len(segment))
        self.sentences = count

    def sentence_pass(self, desc: str) -> "_SentencePass":
        return _SentencePass(self, desc)


class _SentencePass:
    """An iterable over every sentence of the text that reads it afresh each time (see PretrainingText)."""

    def __init__(self, text: PretrainingText, desc: str):
        self.text, self.desc = text, desc

    def __iter__(self) -> Iterator[list[str]]:
        return self.text.sentences_of_text(self.desc)


def _dataset_texts(documents, splits: Sequence[str]) -> Iterator[str]:
    """The texts of a prepared dataset's ``documents/`` in ``splits`` (in order), a batch of rows at a time."""
    for batch in documents.select_columns(["text", "split"]).iter(batch_size=64):
        for text, split in zip(batch["text"], batch["split"]):
            if split in splits:
                yield text


def gather_texts(*, dataset_paths: Sequence[str] = (), notes_dirs: Sequence[str] = (),
                 text_splits: Sequence[str] = ("train",), show_progress: bool = False
                 ) -> tuple[PretrainingText, list[dict[str, Any]]]:
    """The documents to pre-train on (checked, counted and hashed in one bounded pass: :class:`PretrainingText`), and
    a description of each source (paths, counts). A ``.txt`` note that is not text (not UTF-8, NUL bytes) or not a
    regular file (a FIFO, a socket, a folder named ``*.txt``) is skipped with a warning naming it and the reason,
    and counted."""
    if "test" in text_splits:
        raise UsageError("--text_splits: test text is never used for pre-training (the test set would no longer "
                         "measure what it should)")
    if not dataset_paths and not notes_dirs:
        raise UsageError("give --dataset_path (prepare_n2c2.py output) and/or --notes_dirs (folders of .txt notes)")
    for path in dataset_paths:  # every source is checked before any is read (or a progress bar shown)
        if not (Path(path) / DOCUMENTS_DIRNAME).is_dir():
            raise UsageError(f"--dataset_path {path}: not a prepare_n2c2.py output folder (no {DOCUMENTS_DIRNAME}/)"
                             if Path(path).exists() else f"--dataset_path {path}: no such folder")
    for folder in notes_dirs:
        if not Path(folder).is_dir():
            raise UsageError(f"--notes_dirs {folder} " + ("is not a folder" if Path(folder).exists() else
                                                          "does not exist") + ": give folders of .txt notes")
    from datasets import load_from_disk
    from tqdm.auto import tqdm

    text, sources, test_digests = PretrainingText(show_progress), [], set()
    note_lists = []
    for folder in notes_dirs:
        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() == ".txt" and not p.name.startswith("."))
        if not paths:
            raise UsageError(f"--notes_dirs {folder}: no .txt notes")
        note_lists.append((folder, paths))
    total_bytes = sum(path.stat().st_size for _, paths in note_lists for path in paths
                      if irregular_reason(path) is None)
    with tqdm(total=total_bytes, desc="reading the pre-training text", unit="B", unit_scale=True, leave=False,
              disable=not show_progress) as bar:
        for path in dataset_paths:
            documents = load_from_disk(str(Path(path) / DOCUMENTS_DIRNAME))
            chosen = 0
            for batch in documents.select_columns(["text", "split"]).iter(batch_size=64):
                for document, split in zip(batch["text"], batch["split"]):
                    if split == "test":
                        test_digests.add(_digest(document))
                    if split in text_splits:
                        chosen += 1
                        text.digest.start_document()
                        for start in range(0, len(document), SEGMENT_CHARS):
                            piece = document[start:start + SEGMENT_CHARS].encode("utf-8")
                            text.digest.update(piece)
                            bar.total += len(piece)
                            bar.update(len(piece))
                        text.characters += len(document)
                        text.has_text = text.has_text or not document.isspace() and bool(document)
            text.parts.append(("dataset", (documents, list(text_splits))))
            text.documents += chosen
            sources.append({"dataset_path": str(path), "splits": list(text_splits), "documents": chosen})
        for folder, paths in note_lists:
            accepted = leaked = 0
            for path in paths:
                before, note_hash, characters, has_text = text.digest.copy(), hashlib.sha256(), 0, False
                text.digest.start_document()
                try:
                    for raw, chunk in read_note_chunks(path):
                        text.digest.update(raw)
                        note_hash.update(raw)
                        characters += len(chunk)
                        has_text = has_text or bool(chunk) and not chunk.isspace()
                        bar.update(len(raw))
                except (UnreadableNote, NotARegularFile) as error:
                    text.digest = before  # as if it were not there
                    reason = error.reason if isinstance(error, NotARegularFile) else str(error)
                    text.skipped[_reason_kind(reason)] += 1
                    logger.warning(f"{path}: skipped, {reason}")
                    continue
                leaked += note_hash.hexdigest() in test_digests
                accepted += 1
                text.parts.append(("note", path))
                text.characters += characters
                text.has_text = text.has_text or has_text
            if leaked:
                raise UsageError(f"--notes_dirs {folder}: {leaked} notes are test documents of --dataset_path")
            text.documents += accepted
            sources.append({"notes_dir": str(folder), "documents": accepted})
    if text.skipped:
        logger.warning(f"{sum(text.skipped.values()):,} .txt notes skipped (named above): "
                       + ", ".join(f"{count:,} {reason}" for reason, count in sorted(text.skipped.items())))
    if not text.has_text:
        raise UsageError("the pre-training sources hold no text")
    return text, sources


def _reason_kind(reason: str) -> str:
    """A skipped note's reason without its offsets, to count notes by reason."""
    return reason.split(" (", 1)[0].split(" at byte offset", 1)[0]
