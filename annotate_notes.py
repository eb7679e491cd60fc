#!/usr/bin/env python
"""Annotate clinical notes with a trained model: a folder of ``.txt`` in, brat ``.ann`` out.

    python annotate_notes.py --model runs/bert_crf --input_dir notes/ --output_dir notes_annotated/
    python annotate_notes.py --model ORG/clinical-ner-crf --trust_remote_code --input_dir notes/ \\
        --output_dir out/ --device cuda --bf16 --batch_size 64 --min_confidence 0.5

Every note is split into sentences and words with the very functions ``prepare_n2c2.py``
uses (``split_sentences``, ``tokenize_words``), so offsets are exact to the character of
the raw file (CRLF included). No text is dropped: a sentence longer than
``--max_seq_length`` subwords is cut into overlapping windows (``--stride`` subwords of
overlap); a word seen in several windows takes the prediction of the window where it has
the most context on both sides (``run_ner_crf.merge_window_predictions``), so an entity
that crosses a window edge comes out whole. Notes of any length work.

Decoding and confidences
    CRF models (``CRFForTokenClassification``, ``modeling_crf.py``) decode each sentence
    window with Viterbi over the first subword of every word (every subword for models
    trained with ``label_alignment="all_subwords"``). The confidence of a word is the CRF
    marginal probability (forward-backward) of its decoded tag; the confidence of an
    entity is the mean over its words (``run_ner_crf.entity_confidences``). Linear ("Apt")
    models, stock ``AutoModelForTokenClassification``, tag each word with the argmax of the
    softmax at its first subword, and the word confidence is that softmax probability.
    Entities are read from the word tags with strict IOB2 decoding (an ``I-X`` that
    continues nothing starts no entity). ``--min_confidence`` drops entities whose
    confidence is below it (from the ``.ann`` and ``entities.jsonl``; the word-level
    ``predictions.jsonl`` keeps the model's raw tags).

Outputs (``--output_dir``; it may be the input folder, brat keeps ``.ann`` beside ``.txt``)
    ``NOTE.ann``        one per note: ``T`` lines with type, offsets and surface text; an
                        entity that crosses a line break is written as fragments split at
                        the break (n2c2 style). Written atomically; an existing ``.ann``
                        is only replaced with ``--overwrite``. An empty note gets an empty
                        ``.ann``.
    ``entities.jsonl``  one object per entity: ``document_id``, ``id`` (its ``T`` line),
                        ``type``, ``start``, ``end``, ``text`` (exactly ``text[start:end]``),
                        ``confidence`` and ``word_confidences``. Records of notes that this
                        run did not annotate are kept, so the file always matches the
                        ``.ann`` files of the folder. Written to a temporary file and renamed.
    ``predictions.jsonl`` (``--word_predictions``) one object per sentence in the word-level
                        format of docs/architecture.md (``gold_tags`` null), readable by
                        ``evaluate_ablations.py``.
    ``summary.json``    counts (notes, sentences, windows, entities per type, failures by
                        kind), the names of the files that failed, settings and time: never
                        note text.

Bad input does not stop the run: a file that cannot be read, is not UTF-8 or would
overwrite an ``.ann`` gets one message (file name and reason, never its text) and is
counted; the exit status is 1 when any note failed. A folder without ``.txt`` files is an
error.

From Python (the same code path as the command line)::

    from annotate_notes import annotate_texts, load_model_and_tokenizer
    model, tokenizer = load_model_and_tokenizer("runs/bert_crf")
    entities = annotate_texts(model, tokenizer, {"note1": text})
    # {"note1": [Entity(type, start, end, text, confidence, word_confidences), ...]}

For raw text, ``pipeline("token-classification", model="runs/bert_crf", trust_remote_code=True,
aggregation_strategy="first")`` gives the same CRF-decoded entities and scores on a sentence
that fits in one window (the pipeline does not split sentences).
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import math
import os
import sys
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import torch
from transformers import AutoModelForTokenClassification

import modeling_crf  # noqa: F401  (registers the CRF model with the Auto classes)
from prepare_n2c2 import (
    BratFormatError, atomic_open, bio_to_spans, read_text, split_sentences, tokenize_words, write_brat_ann,
)
from run_ner_crf import (
    ModelArguments,
    WindowCollator,
    encode_word_windows,
    entity_confidences,
    load_tokenizer,
    merge_window_predictions,
    select_predictions,
    tags_to_char_entities,
)

logger = logging.getLogger(__name__)

ENTITIES_FILE = "entities.jsonl"
WORD_PREDICTIONS_FILE = "predictions.jsonl"
SUMMARY_FILE = "summary.json"
CRF_MODEL_TYPE = "crf_token_classification"
# The CLI predicts notes in groups of about this many words (length-grouped batches are formed
# inside a group), writing each group's .ann files before it reads the next.
WORDS_PER_GROUP = 50_000


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Entity:
    """A predicted entity: ``text == note[start:end]``; ``confidence`` is the mean of ``word_confidences``."""

    type: str
    start: int
    end: int
    text: str
    confidence: float
    word_confidences: tuple[float, ...] = ()


@dataclass
class SentencePrediction:
    """Word-level output for one sentence (offsets into the note)."""

    sentence_index: int
    tokens: list[str]
    token_starts: list[int]
    token_ends: list[int]
    pred_tags: list[str]
    confidences: list[float]
    num_windows: int = 1


@dataclass
class NotePrediction:
    """Everything predicted for one note. ``entities`` are after ``min_confidence``."""

    document_id: str
    sentences: list[SentencePrediction] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)
    num_below_min_confidence: int = 0

    @property
    def num_windows(self) -> int:
        return sum(sentence.num_windows for sentence in self.sentences)


# ---------------------------------------------------------------------------
# Model and tokenizer
# ---------------------------------------------------------------------------


def is_crf_model(model) -> bool:
    """A CRF model (decoded with Viterbi), also when loaded from a Hub copy of modeling_crf.py."""
    return getattr(model.config, "model_type", None) == CRF_MODEL_TYPE


def model_labels(model) -> list[str]:
    """The model's tags in id order; they must be IOB2 (``O``, ``B-X``, ``I-X``)."""
    id2label = model.config.id2label
    labels = [id2label[key] for key in sorted(id2label, key=int)]
    bad = [label for label in labels if not (label == "O" or (len(label) > 2 and label[:2] in ("B-", "I-")))]
    if bad:
        raise ValueError(f"the model's labels are not IOB2 tags (O, B-X, I-X): {bad[:5]}")
    return labels


def max_input_length(model, tokenizer, requested: int) -> int:
    """``requested`` capped at what the encoder's position embeddings and the tokenizer allow."""
    limits = []
    encoder_config = getattr(model.config, "encoder_config", None) or model.config
    positions = getattr(encoder_config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        # RoBERTa-style position ids start after the padding index.
        offset = encoder_config.pad_token_id + 1 if getattr(encoder_config, "model_type", "") in (
            "roberta", "xlm-roberta", "camembert", "longformer") and encoder_config.pad_token_id is not None else 0
        limits.append(positions - offset)
    model_max_length = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max_length, int) and 0 < model_max_length < 1_000_000:
        limits.append(model_max_length)
    limit = min(limits, default=requested)
    if requested > limit:
        logger.warning("max_seq_length %d is more than the model takes; using %d", requested, limit)
        return limit
    return requested


def load_model_and_tokenizer(
    name_or_path: str,
    *,
    device: str | torch.device | None = None,
    bf16: bool = False,
    trust_remote_code: bool = False,
    revision: str = "main",
    token: str | None = None,
):
    """Model (eval mode, on ``device``) and fast tokenizer from a folder or Hub id.

    CRF models load with this project's ``modeling_crf`` (imported above); with
    ``trust_remote_code=True`` the code shipped with the model is used instead. ``bf16``
    loads the weights in bfloat16 (the CRF itself stays float32).
    """
    kwargs: dict[str, Any] = {"revision": revision, "token": token, "trust_remote_code": trust_remote_code}
    if bf16:
        kwargs["dtype"] = torch.bfloat16
    model = AutoModelForTokenClassification.from_pretrained(name_or_path, **kwargs)
    model_labels(model)
    tokenizer = load_tokenizer(
        ModelArguments(model_name_or_path=name_or_path, model_revision=revision, token=token,
                       trust_remote_code=trust_remote_code), None, "tokens")
    if device is not None:
        model.to(device)
    return model.eval(), tokenizer


# ---------------------------------------------------------------------------
# Prediction
# ---------------------------------------------------------------------------


def _forward_keys(model) -> set[str]:
    """The inputs the model's forward names (DistilBERT takes no token_type_ids; stock heads no label_mask)."""
    return set(inspect.signature(model.forward).parameters)


def predict_notes(
    model,
    tokenizer,
    texts: Mapping[str, str],
    *,
    batch_size: int = 32,
    max_seq_length: int = 256,
    stride: int = 32,
    device: str | torch.device | None = None,
    bf16: bool = False,
    min_confidence: float = 0.0,
    progress: bool | None = False,
) -> dict[str, NotePrediction]:
    """Word tags, confidences and entities for each note of ``texts`` (``{document_id: text}``).

    Sentences and words come from ``prepare_n2c2`` (``split_sentences``, ``tokenize_words``);
    long sentences become overlapping windows; windows are sorted by length into batches of
    ``batch_size`` and padded per batch. CRF models are decoded with Viterbi and scored with
    CRF marginals, Apt models with the softmax (see the module docstring). ``device``
    defaults to where the model is; ``bf16`` runs the encoder under bfloat16 autocast on a
    GPU. ``progress``: a tqdm bar over batches (``None``: only on a terminal).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if stride < 0:
        raise ValueError(f"stride must be at least 0, got {stride}")
    labels = model_labels(model)
    crf = is_crf_model(model)
    label_all_tokens = crf and getattr(model.config, "label_alignment", "first_subword") == "all_subwords"
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).eval()
    max_seq_length = max_input_length(model, tokenizer, max_seq_length)
    budget = max_seq_length - tokenizer.num_special_tokens_to_add(pair=False)
    if stride >= budget:
        raise ValueError(f"stride {stride} must be smaller than the {budget} subwords of a window "
                         f"(max_seq_length {max_seq_length})")

    results = {document_id: NotePrediction(document_id) for document_id in texts}
    sentence_words: list[list[tuple[str, int, int]]] = []
    owners: list[tuple[str, int]] = []
    for document_id, text in texts.items():
        for sentence_index, (start, end) in enumerate(split_sentences(text)):
            words = tokenize_words(text, start, end)
            if words:
                sentence_words.append(words)
                owners.append((document_id, sentence_index))
    if not sentence_words:
        return results

    rows = encode_word_windows([[w for w, _, _ in words] for words in sentence_words],
                               tokenizer, max_seq_length, stride, label_all_tokens=label_all_tokens)
    num_rows = len(rows["input_ids"])
    keys = [key for key in ("input_ids", "attention_mask", "token_type_ids", "label_mask")
            if key in rows and key in _forward_keys(model) and (crf or key != "label_mask")]
    on_gpu = device.type == "cuda"
    collator = WindowCollator(tokenizer, pad_to_multiple_of=8 if on_gpu else None)
    # Longest first: batches of similar length, and an out-of-memory error shows at once.
    order = sorted(range(num_rows), key=lambda row: len(rows["input_ids"][row]), reverse=True)
    position_tags: list[list[int]] = [[] for _ in range(num_rows)]
    position_confidences: list[list[float]] = [[] for _ in range(num_rows)]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 and on_gpu else nullcontext()
    if bf16 and not on_gpu:
        logger.warning("bf16 is for GPUs; running in the model's own precision on %s", device)

    from tqdm.auto import tqdm

    batches = range(0, num_rows, batch_size)
    with torch.inference_mode(), autocast:
        for first in tqdm(batches, desc="annotating", unit="batch", disable=None if progress is None else not progress,
                          leave=False):
            batch_rows = order[first:first + batch_size]
            batch = collator([{key: rows[key][row] for key in keys} for row in batch_rows])
            batch = {key: value.to(device) for key, value in batch.items()}
            outputs = model(**batch, return_marginals=True) if crf else model(**batch)
            tag_ids, confidences = select_predictions(outputs)
            tag_ids, confidences = tag_ids.cpu().tolist(), confidences.float().cpu().tolist()
            for index, row in enumerate(batch_rows):
                length = len(rows["input_ids"][row])
                position_tags[row] = tag_ids[index][:length]
                position_confidences[row] = confidences[index][:length]

    merged = merge_window_predictions(rows, position_tags, position_confidences,
                                      [len(words) for words in sentence_words])
    windows_per_sentence = Counter(rows["sentence_index"])
    for sentence, ((document_id, sentence_index), words, (tag_ids, word_confidences)) in enumerate(
            zip(owners, sentence_words, merged)):
        note, text = results[document_id], texts[document_id]
        tags = [labels[tag] for tag in tag_ids]
        starts, ends = [start for _, start, _ in words], [end for _, _, end in words]
        note.sentences.append(SentencePrediction(sentence_index, [word for word, _, _ in words], starts, ends, tags,
                                                 word_confidences, windows_per_sentence[sentence]))
        spans = zip(tags_to_char_entities(tags, starts, ends), entity_confidences(tags, word_confidences),
                    bio_to_spans(tags))
        for (entity_type, start, end), confidence, (_, first_word, end_word) in spans:
            if confidence < min_confidence:
                note.num_below_min_confidence += 1
                continue
            note.entities.append(Entity(entity_type, start, end, text[start:end], confidence,
                                        tuple(word_confidences[first_word:end_word])))
    return results


def annotate_texts(
    model,
    tokenizer,
    texts: Mapping[str, str],
    *,
    batch_size: int = 32,
    max_seq_length: int = 256,
    stride: int = 32,
    device: str | torch.device | None = None,
    bf16: bool = False,
    min_confidence: float = 0.0,
    progress: bool | None = False,
) -> dict[str, list[Entity]]:
    """Entities of each note of ``texts`` (``{document_id: text}``): :func:`predict_notes` without the words."""
    predictions = predict_notes(model, tokenizer, texts, batch_size=batch_size, max_seq_length=max_seq_length,
                                stride=stride, device=device, bf16=bf16, min_confidence=min_confidence,
                                progress=progress)
    return {document_id: note.entities for document_id, note in predictions.items()}


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)


def entity_records(note: NotePrediction) -> list[dict[str, Any]]:
    """``entities.jsonl`` objects of a note; ``id`` is the entity's ``T`` line in the ``.ann``."""
    return [{
        "document_id": note.document_id,
        "id": f"T{number}",
        "type": entity.type,
        "start": entity.start,
        "end": entity.end,
        "text": entity.text,
        "confidence": _round(entity.confidence),
        "word_confidences": [_round(c) for c in entity.word_confidences],
    } for number, entity in enumerate(note.entities, start=1)]


def word_prediction_records(note: NotePrediction) -> list[dict[str, Any]]:
    """``predictions.jsonl`` objects of a note (docs/architecture.md, "Predictions"; no gold tags)."""
    return [{
        "id": f"{note.document_id}-{sentence.sentence_index}",
        "document_id": note.document_id,
        "sentence_index": sentence.sentence_index,
        "tokens": sentence.tokens,
        "token_starts": sentence.token_starts,
        "token_ends": sentence.token_ends,
        "gold_tags": None,
        "pred_tags": sentence.pred_tags,
        "confidences": [_round(c) for c in sentence.confidences],
    } for sentence in note.sentences]


class JsonlUpdate:
    """A JSONL file rewritten atomically: this run's records go to a temporary file, and on
    :meth:`commit` the records of documents this run did not write are carried over from the
    existing file before the temporary file replaces it. Nothing changes if the run stops early."""

    def __init__(self, path: Path):
        self.path = path
        self.documents: set[str] = set()
        # Entered here and left in commit()/discard(): the file spans the whole run.
        self._writer = atomic_open(path)
        self.handle = self._writer.__enter__()

    def write(self, document_id: str, records: Iterable[dict[str, Any]]) -> None:
        self.documents.add(document_id)
        for record in records:
            self.handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    def commit(self) -> None:
        if self.path.is_file():
            kept = 0
            with self.path.open(encoding="utf-8", errors="replace") as old:
                for line in old:
                    try:
                        document_id = json.loads(line).get("document_id")
                    except (json.JSONDecodeError, AttributeError):
                        continue
                    if document_id not in self.documents:
                        self.handle.write(line if line.endswith("\n") else line + "\n")
                        kept += 1
            if kept:
                logger.info("%s: kept %d records of notes not annotated in this run", self.path.name, kept)
        self._writer.__exit__(None, None, None)

    def discard(self) -> None:
        error = RuntimeError("annotation run stopped")
        self._writer.__exit__(type(error), error, None)  # removes the temporary file


def _write_json_atomically(path: Path, data: Any) -> None:
    with atomic_open(path) as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")


class InputError(Exception):
    """A problem with the input folder as a whole (the run cannot start)."""


def list_notes(input_dir) -> list[Path]:
    """The ``.txt`` files of a folder (not recursive), sorted by name."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise InputError(f"{input_dir} is not a folder")
    paths = sorted(path for path in input_dir.iterdir() if path.suffix == ".txt" and not path.name.startswith("."))
    if not paths:
        raise InputError(f"no .txt files in {input_dir}")
    return paths


def _read_note(path: Path) -> str:
    """A note's text exactly as stored (prepare_n2c2.read_text); errors name the file and the reason only."""
    try:
        return read_text(path)
    except BratFormatError as error:
        raise _NoteError(error.kind, error.reason) from None
    except IsADirectoryError:
        raise _NoteError("unreadable", "is a folder, not a file") from None
    except OSError as error:
        raise _NoteError("unreadable", f"cannot be read ({error.strerror or type(error).__name__})") from None


class _NoteError(Exception):
    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind, self.reason = kind, reason


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="annotate_notes.py",
        description="Annotate a folder of clinical notes (.txt) with a trained token-classification model: one brat "
                    ".ann per note, entities.jsonl with confidences and summary.json (counts only).",
        epilog="Confidences: for CRF models the word confidence is the CRF marginal probability of its Viterbi tag "
               "and an entity's confidence is the mean over its words (run_ner_crf.entity_confidences); for linear "
               "(Apt) models it is the softmax probability of the argmax tag, averaged the same way. Sentences and "
               "words come from prepare_n2c2.py; sentences longer than --max_seq_length subwords are processed in "
               "overlapping windows, so notes of any length are covered character for character.",
    )
    parser.add_argument("--model", required=True, help="Model folder (run_ner_crf.py output) or Hub id.")
    parser.add_argument("--input_dir", required=True, help="Folder of .txt notes (UTF-8; not recursive).")
    parser.add_argument("--output_dir", required=True,
                        help="Where the .ann files, entities.jsonl and summary.json go (may be --input_dir).")
    parser.add_argument("--batch_size", type=int, default=32, help="Windows per batch (grouped by length).")
    parser.add_argument("--max_seq_length", type=int, default=256,
                        help="Subwords per window, special tokens included (capped at what the model takes).")
    parser.add_argument("--stride", type=int, default=32, help="Subwords of overlap between consecutive windows.")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available).")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 weights and autocast (GPU only; the CRF stays "
                                                             "float32).")
    parser.add_argument("--min_confidence", type=float, default=0.0,
                        help="Drop entities whose confidence (mean CRF marginal, or softmax probability, over their "
                             "words) is below this, in [0, 1].")
    parser.add_argument("--overwrite", action="store_true", help="Replace existing .ann files.")
    parser.add_argument("--word_predictions", action="store_true",
                        help="Also write predictions.jsonl: word-level tags and confidences per sentence "
                             "(docs/architecture.md format, gold_tags null).")
    parser.add_argument("--trust_remote_code", action="store_true",
                        help="Run the code shipped with the model (its modeling_crf.py, which you should read first) "
                             "instead of this project's copy; needed for Hub models with custom code that this "
                             "project does not have.")
    parser.add_argument("--revision", default="main", help="Model version on the Hub (branch, tag or commit).")
    parser.add_argument("--token", default=None, help="Hub token for private models (default: the cached login).")
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.batch_size < 1:
        parser.error("--batch_size must be at least 1")
    if args.stride < 0:
        parser.error("--stride must be at least 0")
    if not 0.0 <= args.min_confidence <= 1.0:
        parser.error("--min_confidence must be in [0, 1]")
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(args.device)
    except RuntimeError:
        parser.error(f"--device {args.device!r} is not a device (cpu, cuda, cuda:N)")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is available")
    if args.bf16 and device.type != "cuda":
        parser.error("--bf16 needs a GPU (--device cuda)")


def _note_groups(paths: Sequence[Path], words_per_group: int) -> Iterator[list[tuple[Path, str | _NoteError]]]:
    """Notes read lazily, grouped by about ``words_per_group`` words (a rough count by spaces)."""
    group, size = [], 0
    for path in paths:
        try:
            text: str | _NoteError = _read_note(path)
            size += len(text.split())
        except _NoteError as error:
            text = error
        group.append((path, text))
        if size >= words_per_group:
            yield group
            group, size = [], 0
    if group:
        yield group


def annotate_folder(
    model,
    tokenizer,
    input_dir,
    output_dir,
    *,
    batch_size: int = 32,
    max_seq_length: int = 256,
    stride: int = 32,
    device: str | torch.device | None = None,
    bf16: bool = False,
    min_confidence: float = 0.0,
    overwrite: bool = False,
    word_predictions: bool = False,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Annotate every ``.txt`` of ``input_dir`` into ``output_dir`` (see the module docstring); returns the summary."""
    started = time.perf_counter()
    paths = list_notes(input_dir)
    max_seq_length = max_input_length(model, tokenizer, max_seq_length)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    failures: list[dict[str, str]] = []
    counts: Counter = Counter()
    entity_types: Counter = Counter()

    def fail(path: Path, kind: str, reason: str) -> None:
        # The file name and the reason only: never the note's text.
        logger.error("%s: skipped: %s", path.name, reason)
        failures.append({"file": path.name, "kind": kind})

    todo = []
    for path in paths:
        if (output_dir / f"{path.stem}.ann").exists() and not overwrite:
            fail(path, "ann_exists", f"{path.stem}.ann exists in {output_dir} (pass --overwrite to replace it)")
        else:
            todo.append(path)

    from tqdm.auto import tqdm

    entities_file = JsonlUpdate(output_dir / ENTITIES_FILE)
    words_file = JsonlUpdate(output_dir / WORD_PREDICTIONS_FILE) if word_predictions else None
    bar = tqdm(total=len(todo), desc="notes", unit="note", disable=None if progress is None else not progress)
    try:
        for group in _note_groups(todo, WORDS_PER_GROUP):
            texts = {}
            for path, text in group:
                if isinstance(text, _NoteError):
                    fail(path, text.kind, text.reason)
                elif not text.strip():
                    logger.warning("%s: empty note (no text): writing an empty .ann", path.name)
                    counts["empty_notes"] += 1
                    texts[path.stem] = text
                else:
                    texts[path.stem] = text
            predictions = predict_notes(model, tokenizer, texts, batch_size=batch_size, max_seq_length=max_seq_length,
                                        stride=stride, device=device, bf16=bf16, min_confidence=min_confidence,
                                        progress=progress)
            for document_id, note in predictions.items():
                text = texts[document_id]
                try:
                    write_brat_ann(output_dir / f"{document_id}.ann",
                                   [(e.type, e.start, e.end) for e in note.entities], text, overwrite=overwrite)
                except FileExistsError:
                    fail(Path(f"{document_id}.txt"), "ann_exists",
                         f"{document_id}.ann appeared in {output_dir} during the run (pass --overwrite)")
                    continue
                entities_file.write(document_id, entity_records(note))
                if words_file is not None:
                    words_file.write(document_id, word_prediction_records(note))
                counts["notes_annotated"] += 1
                counts["characters"] += len(text)
                counts["sentences"] += len(note.sentences)
                counts["words"] += sum(len(sentence.tokens) for sentence in note.sentences)
                counts["windows"] += note.num_windows
                counts["windowed_sentences"] += sum(sentence.num_windows > 1 for sentence in note.sentences)
                counts["entities_below_min_confidence"] += note.num_below_min_confidence
                entity_types.update(entity.type for entity in note.entities)
            bar.update(len(group))
        entities_file.commit()
        if words_file is not None:
            words_file.commit()
    except BaseException:
        entities_file.discard()
        if words_file is not None:
            words_file.discard()
        raise
    finally:
        bar.close()

    seconds = time.perf_counter() - started
    summary = {
        "model_type": "crf" if is_crf_model(model) else "linear",
        "notes_found": len(paths),
        "notes_annotated": counts["notes_annotated"],
        "empty_notes": counts["empty_notes"],
        "notes_failed": len(failures),
        "failures_by_kind": dict(sorted(Counter(f["kind"] for f in failures).items())),
        "failed_files": failures,
        "characters": counts["characters"],
        "sentences": counts["sentences"],
        "words": counts["words"],
        "windows": counts["windows"],
        "windowed_sentences": counts["windowed_sentences"],
        "entities": sum(entity_types.values()),
        "entities_by_type": dict(sorted(entity_types.items())),
        "entities_below_min_confidence": counts["entities_below_min_confidence"],
        "settings": {"batch_size": batch_size, "max_seq_length": max_seq_length,
                     "stride": stride, "device": str(device if device is not None else next(model.parameters()).device),
                     "bf16": bf16, "min_confidence": min_confidence},
        "seconds": round(seconds, 3),
        "characters_per_second": round(counts["characters"] / seconds, 1) if seconds > 0 else None,
    }
    _write_json_atomically(output_dir / SUMMARY_FILE, summary)
    return summary


def format_summary(summary: Mapping[str, Any], output_dir) -> str:
    """Counts only."""
    by_type = ", ".join(f"{t} {n}" for t, n in summary["entities_by_type"].items()) or "none"
    lines = [
        f"Annotated {summary['notes_annotated']} of {summary['notes_found']} notes into {output_dir} "
        f"in {summary['seconds']:.1f} s: {summary['sentences']} sentences, {summary['windows']} windows "
        f"({summary['windowed_sentences']} sentences needed more than one), {summary['entities']} entities ({by_type})",
    ]
    if summary["entities_below_min_confidence"]:
        lines.append(f"{summary['entities_below_min_confidence']} entities below --min_confidence "
                     f"{summary['settings']['min_confidence']} were dropped")
    if summary["empty_notes"]:
        lines.append(f"{summary['empty_notes']} empty notes (empty .ann written)")
    if summary["notes_failed"]:
        kinds = ", ".join(f"{kind} {n}" for kind, n in summary["failures_by_kind"].items())
        lines.append(f"{summary['notes_failed']} notes failed ({kinds}); see {SUMMARY_FILE}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%m/%d/%Y %H:%M:%S",
                        level=logging.INFO)
    logger.setLevel(logging.INFO)
    try:
        list_notes(args.input_dir)  # fail on the input before loading a model
        model, tokenizer = load_model_and_tokenizer(args.model, device=args.device, bf16=args.bf16,
                                                    trust_remote_code=args.trust_remote_code,
                                                    revision=args.revision, token=args.token)
        summary = annotate_folder(model, tokenizer, args.input_dir, args.output_dir, batch_size=args.batch_size,
                                  max_seq_length=args.max_seq_length, stride=args.stride, device=args.device,
                                  bf16=args.bf16, min_confidence=args.min_confidence, overwrite=args.overwrite,
                                  word_predictions=args.word_predictions, progress=None)
    except (InputError, OSError, ValueError) as error:
        print(f"annotate_notes.py: error: {error}", file=sys.stderr)
        return 1
    print(format_summary(summary, args.output_dir))
    return 1 if summary["notes_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
