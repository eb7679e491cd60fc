#!/usr/bin/env python
"""Pre-train an encoder from scratch on your own notes (masked language modelling), for run_ner_crf.py.

In the style of transformers' ``examples/pytorch/language-modeling/run_mlm.py``:

    python pretrain_mlm.py --dataset_paths data/n2c2 --output_dir runs/self_pretrained --do_train \\
        --config_overrides "dim=256,n_layers=4,n_heads=4,hidden_dim=1024" --num_train_epochs 10
    python run_ner_crf.py --model_name_or_path runs/self_pretrained --dataset_path data/n2c2 \\
        --output_dir runs/self_pretrained_crf --do_train --do_eval --do_predict

Between a pre-trained encoder trained on outside text and a Transformer trained from scratch (the
paper's two answers) lies a third: an encoder pre-trained on the task's own text ("self-pretraining").
The text is (a) the training documents of prepared datasets (``--dataset_paths``: prepare_n2c2.py
output; only the splits named in ``--text_splits``, never ``test``) and/or (b) folders of unlabelled
``.txt`` notes (``--notes_dirs``); a note whose text is a test document of a given dataset is refused.
A ``.txt`` file that is not text (not UTF-8, or holding NUL bytes) or not a regular file (a FIFO, a folder
named ``*.txt``) is skipped with a warning naming it and the reason, and counted in ``pretraining_data.json``.
The text is never held whole: it is read, hashed and split in bounded pieces at each pass over it (a note of
one 50 MB line included), with a progress bar; see :class:`PretrainingText`.

- Architecture: the paper's ``distilbert-base-cased`` config (``--config_name``, ``--config_overrides``),
  random weights, and a WordPiece vocabulary learned from the pre-training words (``subwords.py``:
  deterministic; or ``--tokenizer_name``).
- Input: sentences and words as everywhere in the project (``tagging.py``), as one stream packed into
  blocks of ``--max_seq_length`` tokens (only the last block is short; the padding share is reported).
- Whole-word masking: ``--mlm_probability`` of the words are chosen, and every piece of a chosen word is
  masked (80% ``[MASK]``, 10% a random piece, 10% kept), BERT's recipe at word level. (transformers'
  ``DataCollatorForLanguageModeling(whole_word_mask=True)`` finds words from character offsets, which
  packed blocks do not keep, and drops the random replacement.)
- Runs follow run_folders.py: an output folder that is not empty needs ``--overwrite_output_dir`` or
  ``--resume_from_checkpoint``; progress bar and ETA from the Trainer; multi-process with accelerate.
- Outputs: the encoder (``AutoModelForMaskedLM``) and tokenizer, which ``run_ner_crf.py
  --model_name_or_path`` fine-tunes with a CRF or linear head; ``pretraining_data.json`` records what text
  was seen (sources, counts and a SHA-256 of the text, never the text) and the throughput;
  the tokenizer's ``tokenizer_config.json`` (``"vocabulary_from_corpus": true``, which travels with it) and
  ``run_info.json`` mark the vocabulary as corpus-derived; ``README.md`` is a model card (counts, no text).
- ``--push_to_hub`` uploads the allow-listed files only (model, tokenizer, config, card: run_folders.py's
  ``HUB_UPLOAD_PATTERNS``; never checkpoints or logs), and only with ``--push_corpus_vocabulary`` when the
  vocabulary was learned from the notes (its entries are words of them).
"""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch
from transformers import AutoConfig, AutoModelForMaskedLM, Trainer, TrainingArguments, set_seed

from clinical_ner_crf.command_line import DataError
from clinical_ner_crf.files import DOCUMENTS_DIRNAME, PRETRAINING_DATA_FILE, RUN_INFO_FILE, write_json_atomically
from clinical_ner_crf.folder_safety import NotARegularFile, irregular_reason, open_regular_file
from clinical_ner_crf.model_cards import write_pretraining_model_card
from clinical_ner_crf.run_folders import (
    RecordRunArguments, UsageError, check_resume_matches, output_folder_lock,
    prepare_output_dir, save_final_model,
)
from clinical_ner_crf.hub_upload import check_vocabulary_upload, hub_upload_files, push_model_to_hub
from clinical_ner_crf.command_line import parse_config_overrides, parse_script_args, setup_logging
from clinical_ner_crf.subwords import (
    PAPER_VOCABULARY_SIZE, sentence_batches, train_subword_tokenizer, vocabulary_figures,
)
from clinical_ner_crf.tagging import split_sentences, tokenize_words
from clinical_ner_crf.command_line import run_main


logger = logging.getLogger(__name__)

PAPER_ARCHITECTURE = "configs/architectures/distilbert-base-cased.json"


@dataclass
class ModelArguments:
    """The encoder to pre-train and its vocabulary."""

    config_name: str = field(default=PAPER_ARCHITECTURE, metadata={
        "help": "Architecture config (JSON file or Hub name), random weights (default: the paper's "
                "distilbert-base-cased)."})
    config_overrides: str | None = field(default=None, metadata={
        "help": "Override architecture settings, e.g. 'dim=256,n_layers=4,n_heads=4,hidden_dim=1024'."})
    model_name_or_path: str | None = field(default=None, metadata={
        "help": "Continue pre-training this masked-LM checkpoint (with its tokenizer) instead of a random encoder."})
    tokenizer_name: str | None = field(default=None, metadata={
        "help": "A tokenizer to use as it is (default: learn a WordPiece vocabulary from the pre-training words)."})
    tokenizer_vocab_size: int = field(default=PAPER_VOCABULARY_SIZE, metadata={
        "help": "Largest vocabulary to learn (default: the paper's 28,996; a small corpus reaches fewer, logged)."})
    tokenizer_min_frequency: int = field(default=2, metadata={"help": "A piece must occur this often to enter it."})
    tokenizer_lowercase: bool = field(default=False, metadata={"help": "Lower-case in a learned tokenizer."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Run custom code of --model_name_or_path."})
    push_corpus_vocabulary: bool = field(default=False, metadata={
        "help": "With --push_to_hub and a vocabulary learned from the notes: acknowledge that its words are corpus "
                "text and upload it (check your data's terms first)."})


@dataclass
class DataArguments:
    """The unlabelled text, and how it becomes model inputs."""

    dataset_paths: list[str] = field(default_factory=list, metadata={
        "help": "prepare_n2c2.py output folders: the text of their documents in --text_splits."})
    text_splits: list[str] = field(default_factory=lambda: ["train"], metadata={
        "help": "Which documents of --dataset_paths to read (train, validation; test is refused)."})
    notes_dirs: list[str] = field(default_factory=list, metadata={
        "help": "Folders of unlabelled .txt notes (UTF-8; not recursive)."})
    max_seq_length: int = field(default=128, metadata={
        "help": "Tokens per packed block, special tokens included (at most the encoder's positions)."})
    mlm_probability: float = field(default=0.15, metadata={"help": "Share of words masked in each block."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Start afresh in an existing --output_dir (the earlier run's outputs are removed)."})


# ---------------------------------------------------------------------------
# Text: what is read, and what is recorded about it (never the text)
# ---------------------------------------------------------------------------


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


def gather_texts(data_args: DataArguments, show_progress: bool = False) -> tuple[PretrainingText, list[dict[str, Any]]]:
    """The documents to pre-train on (checked, counted and hashed in one bounded pass: :class:`PretrainingText`), and
    a description of each source (paths, counts). A ``.txt`` note that is not text (not UTF-8, NUL bytes) or not a
    regular file (a FIFO, a socket, a folder named ``*.txt``) is skipped with a warning naming it and the reason,
    and counted."""
    if "test" in data_args.text_splits:
        raise UsageError("--text_splits: test text is never used for pre-training (the test set would no longer "
                         "measure what it should)")
    if not data_args.dataset_paths and not data_args.notes_dirs:
        raise UsageError("give --dataset_paths (prepare_n2c2.py output) and/or --notes_dirs (folders of .txt notes)")
    for folder in data_args.notes_dirs:  # every source is checked before any is read
        if not Path(folder).is_dir():
            raise UsageError(f"--notes_dirs {folder} " + ("is not a folder" if Path(folder).exists() else
                                                          "does not exist") + ": give folders of .txt notes")
    from datasets import load_from_disk
    from tqdm.auto import tqdm

    text, sources, test_digests = PretrainingText(show_progress), [], set()
    note_lists = []
    for folder in data_args.notes_dirs:
        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() == ".txt" and not p.name.startswith("."))
        if not paths:
            raise UsageError(f"--notes_dirs {folder}: no .txt notes")
        note_lists.append((folder, paths))
    total_bytes = sum(path.stat().st_size for _, paths in note_lists for path in paths
                      if irregular_reason(path) is None)
    with tqdm(total=total_bytes, desc="reading the pre-training text", unit="B", unit_scale=True, leave=False,
              disable=not show_progress) as bar:
        for path in data_args.dataset_paths:
            if not (Path(path) / DOCUMENTS_DIRNAME).is_dir():
                raise UsageError(f"--dataset_paths {path}: not a prepare_n2c2.py output folder (no "
                                 f"{DOCUMENTS_DIRNAME}/)")
            documents = load_from_disk(str(Path(path) / DOCUMENTS_DIRNAME))
            chosen = 0
            for batch in documents.select_columns(["text", "split"]).iter(batch_size=64):
                for document, split in zip(batch["text"], batch["split"]):
                    if split == "test":
                        test_digests.add(_digest(document))
                    if split in data_args.text_splits:
                        chosen += 1
                        text.digest.start_document()
                        for start in range(0, len(document), SEGMENT_CHARS):
                            piece = document[start:start + SEGMENT_CHARS].encode("utf-8")
                            text.digest.update(piece)
                            bar.total += len(piece)
                            bar.update(len(piece))
                        text.characters += len(document)
                        text.has_text = text.has_text or not document.isspace() and bool(document)
            text.parts.append(("dataset", (documents, list(data_args.text_splits))))
            text.documents += chosen
            sources.append({"dataset_path": str(path), "splits": list(data_args.text_splits), "documents": chosen})
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
                raise UsageError(f"--notes_dirs {folder}: {leaked} notes are test documents of --dataset_paths")
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


def text_sentences(texts: Sequence[str]) -> list[list[str]]:
    """Word lists of every sentence of every document (tagging.py's sentences and words), documents longer than
    :data:`SEGMENT_CHARS` cut into segments as the pre-training text is."""
    return [sentence for text in texts for segment in document_segments((text,)) for sentence in
            segment_sentences(segment)]


# ---------------------------------------------------------------------------
# Blocks and whole-word masking
# ---------------------------------------------------------------------------


def iter_blocks(sentences: Iterable[Sequence[str]], tokenizer, max_seq_length: int,
                vocabulary_counts: dict[str, int] | None = None) -> Iterator[tuple[list[int], list[int]]]:
    """:func:`pack_blocks`'s blocks one at a time, ``(input_ids, word_ids)``, the sentences tokenized in bounded
    batches (``subwords.sentence_batches``): the same blocks, in bounded memory whatever the text's length.
    ``vocabulary_counts`` (``words``, ``pieces``, ``unknown``), when given, is filled as ``subwords.vocabulary_report``
    counts, from the same encodings (``subwords.vocabulary_figures`` turns them into its figures)."""
    budget = max_seq_length - 2
    if budget < 1:
        raise UsageError(f"--max_seq_length {max_seq_length} leaves no room for words")
    ids: list[int] = []
    words: list[int] = []

    def block() -> tuple[list[int], list[int]]:
        nonlocal ids, words
        done = ([tokenizer.cls_token_id, *ids, tokenizer.sep_token_id], [-1, *words, -1])
        ids, words = [], []
        return done

    for batch in sentence_batches(sentences):
        encoding = tokenizer(batch, is_split_into_words=True, add_special_tokens=False)
        for row, sentence_ids in enumerate(encoding["input_ids"]):
            word_of = encoding.word_ids(row)
            if vocabulary_counts is not None:
                vocabulary_counts["pieces"] += len(sentence_ids)
                vocabulary_counts["unknown"] += sentence_ids.count(tokenizer.unk_token_id)
            first = 0
            while first < len(sentence_ids):  # one word at a time: its pieces are first..last
                last = first
                while last + 1 < len(sentence_ids) and word_of[last + 1] == word_of[first]:
                    last += 1
                pieces = sentence_ids[first:last + 1]
                if vocabulary_counts is not None:
                    vocabulary_counts["words"] += 1
                if len(ids) + len(pieces) > budget and ids:
                    yield block()
                for offset in range(0, len(pieces), budget):  # a word longer than a block: cut between pieces
                    if offset and ids:
                        yield block()
                    part = pieces[offset:offset + budget]
                    number = words[-1] + 1 if words else 0
                    ids += part
                    words += [number] * len(part)
                first = last + 1
    if ids:
        yield block()


def pack_blocks(sentences: Iterable[Sequence[str]], tokenizer, max_seq_length: int) -> dict[str, list[list[int]]]:
    """The text as one stream of words, packed into blocks of ``max_seq_length`` tokens: ``[CLS] pieces ...
    [SEP]``, with the word each piece belongs to (``word_ids``, -1 for the special tokens; numbered within the
    block). Blocks are filled up to the last word that fits (sentences run on across blocks, as run_mlm.py's
    grouped texts do), so only the last block is short; a word longer than a block is cut between pieces.
    """
    blocks: dict[str, list[list[int]]] = {"input_ids": [], "word_ids": []}
    for ids, words in iter_blocks(sentences, tokenizer, max_seq_length):
        blocks["input_ids"].append(ids)
        blocks["word_ids"].append(words)
    return blocks


def blocks_dataset(blocks: Iterable[tuple[list[int], list[int]]], special_ids: Sequence[int],
                   rows_per_part: int = 10_000):
    """The blocks as a ``datasets.Dataset`` (int32 columns, built a part of ``rows_per_part`` blocks at a time, so
    that no Python list of every block is ever held), their lengths, and the piece counts of
    :func:`context_free_loss`."""
    from datasets import Dataset, Features, Sequence as FeatureSequence, Value, concatenate_datasets

    features = Features({"input_ids": FeatureSequence(Value("int32")), "word_ids": FeatureSequence(Value("int32"))})
    special, counts, lengths, parts = set(special_ids), {}, [], []
    part: dict[str, list[list[int]]] = {"input_ids": [], "word_ids": []}
    for ids, words in blocks:
        part["input_ids"].append(ids)
        part["word_ids"].append(words)
        lengths.append(len(ids))
        count_pieces([ids], special, counts)
        if len(part["input_ids"]) >= rows_per_part:
            parts.append(Dataset.from_dict(part, features=features))
            part = {"input_ids": [], "word_ids": []}
    if part["input_ids"] or not parts:
        parts.append(Dataset.from_dict(part, features=features))
    return (parts[0] if len(parts) == 1 else concatenate_datasets(parts)), lengths, counts


def padding_share(lengths: Sequence[int], batch_size: int) -> float:
    """Padded positions over all positions when batches of ``batch_size`` blocks (in order) are padded to their longest."""
    real = sum(lengths)
    padded = sum(max(lengths[i:i + batch_size]) * len(lengths[i:i + batch_size]) for i in range(0, len(lengths), batch_size))
    return round(1 - real / padded, 6) if padded else 0.0


def count_pieces(rows: Iterable[Sequence[int]], special: set[int], counts: dict[int, int]) -> None:
    """Add how often each piece (not a special token) occurs in ``rows`` to ``counts`` (in order of first sight)."""
    for ids in rows:
        for piece in ids:
            if piece not in special:
                counts[piece] = counts.get(piece, 0) + 1


def piece_entropy(counts: dict[int, int]) -> float:
    """The entropy (nats) of the pieces' frequencies: :func:`context_free_loss` of counted blocks."""
    total = sum(counts.values())
    return round(-sum(c / total * math.log(c / total) for c in counts.values()), 4) if total else 0.0


def context_free_loss(blocks: dict[str, list[list[int]]], special_ids: Sequence[int]) -> float:
    """The masked-LM loss (nats per masked piece) of the best predictor that ignores context: each piece's
    frequency in the blocks. Every piece of a masked word is a target, so the targets follow the pieces'
    frequencies, and this is their entropy. An encoder whose loss is not well below it has learnt little from
    context yet (MLM from scratch sits near it for its first thousands of steps)."""
    counts: dict[int, int] = {}
    count_pieces(blocks["input_ids"], set(special_ids), counts)
    return piece_entropy(counts)


class WholeWordMaskCollator:
    """Pads blocks and masks whole words: each word is chosen with ``mlm_probability``; every piece of a chosen
    word becomes ``[MASK]`` (80%), a random piece (10%) or stays (10%), chosen per word."""

    def __init__(self, tokenizer, mlm_probability: float = 0.15):
        if not 0 < mlm_probability < 1:
            raise UsageError(f"--mlm_probability must be in (0, 1), got {mlm_probability}")
        self.tokenizer, self.mlm_probability = tokenizer, mlm_probability
        special = set(tokenizer.all_special_ids)
        self.random_ids = torch.tensor([i for i in range(len(tokenizer)) if i not in special])

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        length = max(len(f["input_ids"]) for f in features)
        input_ids = torch.full((len(features), length), self.tokenizer.pad_token_id)
        word_ids = torch.full((len(features), length), -1)
        for row, feature in enumerate(features):
            input_ids[row, :len(feature["input_ids"])] = torch.tensor(feature["input_ids"])
            word_ids[row, :len(feature["word_ids"])] = torch.tensor(feature["word_ids"])
        attention_mask = (torch.arange(length)[None, :] < torch.tensor([len(f["input_ids"]) for f in features])[:, None])
        # One draw per word (words are numbered within each block), applied to all its pieces.
        num_words = int(word_ids.max()) + 1 if (word_ids >= 0).any() else 0
        chosen = torch.rand(len(features), max(num_words, 1)) < self.mlm_probability
        if num_words and not (chosen[:, :num_words].any()):
            chosen[0, torch.randint(int(word_ids[0].max()) + 1, ())] = True  # a batch with nothing to predict has no loss
        action = torch.rand(len(features), max(num_words, 1))
        safe = word_ids.clamp(min=0)
        masked = chosen.gather(1, safe) & (word_ids >= 0)
        labels = torch.where(masked, input_ids, -100)
        word_action = action.gather(1, safe)
        inputs = input_ids.clone()
        inputs[masked & (word_action < 0.8)] = self.tokenizer.mask_token_id
        randomized = masked & (word_action >= 0.8) & (word_action < 0.9)
        inputs[randomized] = self.random_ids[torch.randint(len(self.random_ids), (int(randomized.sum()),))]
        return {"input_ids": inputs, "attention_mask": attention_mask.long(), "labels": labels}


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

# What a resumed pre-training run must share with its checkpoint.
RESUME_MUST_MATCH = ("config_name", "config_overrides", "model_name_or_path", "tokenizer_name", "text_sha256",
                     "max_seq_length", "mlm_probability", "seed", "learning_rate", "per_device_train_batch_size",
                     "gradient_accumulation_steps", "world_size")


def parse_args(argv: Sequence[str] | None = None):
    """``pretrain_mlm.py [CONFIG.json] [--flag value ...]``: flags override the config file."""
    return parse_script_args((ModelArguments, DataArguments, TrainingArguments), argv)


def build_encoder(model_args: ModelArguments, tokenizer, max_seq_length: int):
    """A masked-LM encoder: continued from a checkpoint, or the architecture with random weights."""
    hub_kwargs = {"trust_remote_code": model_args.trust_remote_code}
    if model_args.model_name_or_path:
        return AutoModelForMaskedLM.from_pretrained(model_args.model_name_or_path, **hub_kwargs)
    config = AutoConfig.from_pretrained(model_args.config_name, **hub_kwargs)
    config.update(parse_config_overrides(model_args.config_overrides))
    config.vocab_size, config.pad_token_id = len(tokenizer), tokenizer.pad_token_id
    if getattr(config, "max_position_embeddings", max_seq_length) < max_seq_length:
        raise UsageError(f"--max_seq_length {max_seq_length} is more than the encoder's "
                         f"{config.max_position_embeddings} positions")
    return AutoModelForMaskedLM.from_config(config)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    model_args, data_args, training_args = parse_args(argv)
    # The output folder is never where the text is, and one command writes it at a time.
    inputs = {"--dataset_paths": data_args.dataset_paths, "--notes_dirs": data_args.notes_dirs}
    with output_folder_lock(training_args, "pretrain_mlm.py", inputs):
        return run(model_args, data_args, training_args)


def run(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments) -> dict[str, Any]:
    # We push ourselves, with an allow-list: the Trainer would upload the whole output_dir, checkpoints included.
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    setup_logging(training_args, logger)
    output_dir = Path(training_args.output_dir)
    if not training_args.do_train:
        raise UsageError("pre-training trains: pass --do_train")
    # The tokenizer trained with (and uploaded): learned here from the text, or the one given, whose
    # tokenizer_config.json says whether its vocabulary was learned from notes.
    corpus_vocabulary = check_vocabulary_upload(
        push_to_hub, acknowledged=model_args.push_corpus_vocabulary,
        tokenizer=model_args.tokenizer_name or model_args.model_name_or_path,
        learned_here=not (model_args.tokenizer_name or model_args.model_name_or_path))
    # One line for a bad source, before anything slow; the text is checked, counted and hashed here, read again below.
    text, sources = gather_texts(data_args, show_progress=not training_args.disable_tqdm)
    resume_checkpoint = prepare_output_dir(output_dir, training_args, data_args.overwrite_output_dir)
    set_seed(training_args.seed)

    # Text -> sentences -> words; the vocabulary from those words (or the one given).
    started = time.perf_counter()
    text_sha256 = text.digest.hexdigest()  # texts_digest of the documents, computed as they were read
    if model_args.model_name_or_path or model_args.tokenizer_name or resume_checkpoint:
        from clinical_ner_crf.windows import load_tokenizer

        tokenizer = load_tokenizer(resume_checkpoint or model_args.tokenizer_name or model_args.model_name_or_path)
    else:
        try:
            tokenizer = train_subword_tokenizer(text.sentence_pass("learning the vocabulary"),
                                                model_args.tokenizer_vocab_size,
                                                model_args.tokenizer_min_frequency, model_args.tokenizer_lowercase,
                                                model_max_length=data_args.max_seq_length)
        except DataError:  # a note that changed while it was read again: as it says
            raise
        except ValueError as error:  # a size too small for the base alphabet, no words: the user's arguments
            raise UsageError(f"--tokenizer_vocab_size: {error}") from None
    # Again on the tokenizer object (a Hub tokenizer unreadable before; a resumed checkpoint's), before training.
    corpus_vocabulary = check_vocabulary_upload(
        push_to_hub, acknowledged=model_args.push_corpus_vocabulary, tokenizer=tokenizer,
        learned_here=not (model_args.tokenizer_name or model_args.model_name_or_path))

    # Blocks of packed sentences, built a part at a time (never a list of every block); the vocabulary's figures
    # (subwords.vocabulary_report's) counted from the same encodings, in the same pass over the text.
    counts = {"words": 0, "pieces": 0, "unknown": 0}
    train_dataset, lengths, piece_counts = blocks_dataset(
        iter_blocks(text.sentence_pass("tokenizing and packing blocks"), tokenizer, data_args.max_seq_length,
                    vocabulary_counts=counts),
        tokenizer.all_special_ids)
    vocabulary = vocabulary_figures(len(tokenizer), counts["words"], counts["pieces"], counts["unknown"])
    logger.info(f"Pre-training text: {text.documents:,} documents, {text.sentences:,} sentences, "
                f"{vocabulary['words']:,} words; vocabulary {vocabulary['vocabulary_size']:,} pieces, "
                f"{vocabulary['pieces_per_word']} pieces per word")
    prepare_seconds = time.perf_counter() - started
    share = padding_share(lengths, training_args.per_device_train_batch_size)
    baseline_loss = piece_entropy(piece_counts)  # context_free_loss of the blocks
    logger.info(f"{len(lengths):,} blocks of at most {data_args.max_seq_length} tokens ({sum(lengths):,} tokens; "
                f"{share:.2%} of batch positions would be padding); a predictor that ignores context "
                f"scores a masked-LM loss of {baseline_loss:.2f}")

    model = build_encoder(model_args, tokenizer, data_args.max_seq_length)
    tokenizer.model_max_length = getattr(model.config, "max_position_embeddings", data_args.max_seq_length)
    run_args = {**{key: getattr(model_args, key) for key in ("config_name", "config_overrides", "model_name_or_path",
                                                               "tokenizer_name")},
                "text_sha256": text_sha256, "max_seq_length": data_args.max_seq_length,
                "mlm_probability": data_args.mlm_probability,
                **{key: getattr(training_args, key) for key in ("seed", "learning_rate", "per_device_train_batch_size",
                                                                  "gradient_accumulation_steps", "world_size")}}
    if resume_checkpoint is not None:
        check_resume_matches(resume_checkpoint, run_args, RESUME_MUST_MATCH)

    training_args.remove_unused_columns = False  # word_ids feed the collator, not the model
    trainer = Trainer(model=model, args=training_args, train_dataset=train_dataset, processing_class=tokenizer,
                      data_collator=WholeWordMaskCollator(tokenizer, data_args.mlm_probability),
                      callbacks=[RecordRunArguments(run_args)])
    started = time.perf_counter()
    train_result = trainer.train(resume_from_checkpoint=resume_checkpoint)
    train_seconds = time.perf_counter() - started
    save_final_model(trainer, output_dir)
    epochs_run = trainer.state.epoch - (json.loads((Path(resume_checkpoint) / "trainer_state.json").read_text())
                                        ["epoch"] if resume_checkpoint else 0.0)
    metrics = dict(train_result.metrics)
    metrics.update(train_tokens_per_second=round(sum(lengths) * epochs_run / train_seconds, 1),
                   train_epochs_run=round(epochs_run, 4), train_wall_seconds=round(train_seconds, 2),
                   prepare_seconds=round(prepare_seconds, 2), padding_share=share)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()

    if trainer.is_world_process_zero():
        record = {
            "sources": sources,
            "text_sha256": text_sha256,
            "documents": text.documents,
            # .txt notes that were not text or not regular files: skipped, named in a warning, counted here by reason.
            "notes_skipped": sum(text.skipped.values()),
            "notes_skipped_by_reason": dict(sorted(text.skipped.items())),
            "sentences": text.sentences,
            "words": vocabulary["words"],
            "tokens": sum(lengths),
            "blocks": len(lengths),
            "max_seq_length": data_args.max_seq_length,
            "padding_share": share,
            "vocabulary": vocabulary,
            "vocabulary_learned_from_text": not (model_args.tokenizer_name or model_args.model_name_or_path),
            "vocabulary_from_corpus": corpus_vocabulary,
            "train_tokens_per_second": metrics["train_tokens_per_second"],
            "train_wall_seconds": metrics["train_wall_seconds"],
            "prepare_seconds": metrics["prepare_seconds"],
            "epochs": round(epochs_run, 4),
            # The Trainer's train_loss is the mean over the run; the last logged loss is where it ended.
            "mean_train_loss": metrics.get("train_loss"),
            "last_logged_loss": next((h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), None),
            "context_free_loss": baseline_loss,
        }
        write_json_atomically(output_dir / PRETRAINING_DATA_FILE, record)
        write_json_atomically(output_dir / RUN_INFO_FILE, {
            "model_label": f"{Path(model_args.config_name).stem}-MLM",
            "pretrained_with": "pretrain_mlm.py",
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "seed": training_args.seed,
            "vocabulary_from_corpus": corpus_vocabulary,
        })
        write_pretraining_model_card(output_dir, record, training_args, model.config.model_type)
        if push_to_hub:
            repo_id = training_args.hub_model_id or output_dir.name
            push_model_to_hub(output_dir, repo_id, training_args.hub_token, private=training_args.hub_private_repo,
                              script="pretrain_mlm.py",
                              corpus_vocabulary_acknowledged=model_args.push_corpus_vocabulary)
            logger.info(f"Pushed {', '.join(hub_upload_files(output_dir))} to {repo_id}")
        print(f"\nEncoder pre-trained on {text.documents:,} documents ({sum(lengths) * epochs_run:,.0f} tokens, "
              f"{metrics['train_tokens_per_second']:,.0f} tokens/s, {share:.1%} padding) -> {output_dir}/\n"
              + (f"Masked-LM loss at the end {record['last_logged_loss']:.2f} (a predictor that ignores context: "
                 f"{baseline_loss:.2f})\n" if record["last_logged_loss"] is not None else "") +
              f"Fine-tune it: run_ner_crf.py --model_name_or_path {output_dir} --dataset_path ...", flush=True)
    return {**metrics, "pretraining_data": str(output_dir / PRETRAINING_DATA_FILE)}


if __name__ == "__main__":
    run_main(main, "pretrain_mlm.py")
