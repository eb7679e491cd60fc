#!/usr/bin/env python
"""Annotate clinical notes with a trained model: text in, entities out, from Python or a folder.

From Python, one call for a note or a list of notes (CRF or linear "Apt" models)::

    from annotate_notes import NoteAnnotator
    annotator = NoteAnnotator.from_pretrained("runs/bert_crf")
    annotator("Started metoprolol 25 mg PO BID.")      # [Entity(type, start, end, text, confidence, ...)]
    annotator([note_1, note_2])                         # one list of entities per note

From the command line, a folder of ``.txt`` in, brat ``.ann`` out::

    python annotate_notes.py --model_name_or_path runs/bert_crf --input_dir notes/ --output_dir notes_annotated/
    python annotate_notes.py --model_name_or_path ORG/clinical-ner-crf --trust_remote_code \\
        --input_dir notes/ --output_dir out/ --device cuda --bf16 --batch_size 64 --min_confidence 0.5

Both run the one inference path of ``windows.py`` (``predict_notes``), which the
``pipeline("token-classification")`` of a saved CRF model also runs: sentences and words as in
training (``tagging.py``), so offsets are exact to the character of the raw text (CRLF
included). No text is dropped: a sentence longer than ``max_seq_length`` subwords is cut into
overlapping windows (``stride`` subwords of overlap); a word seen in several windows takes the
prediction of the window where it has the most context on both sides, so an entity that crosses
a window edge comes out whole. Notes of any length work.

Decoding and confidences
    CRF models decode each window with Viterbi over the positions they were trained on (the
    first subword of every word, or every subword for ``label_alignment="all_subwords"``). A
    word's confidence is the CRF marginal probability (forward-backward) of its decoded tag; an
    entity's confidence is the mean over its words. Linear ("Apt") models, stock
    ``AutoModelForTokenClassification``, tag each word with the softmax argmax at its first
    subword, and the word confidence is that softmax probability. Entities are read from the
    word tags with strict IOB2 decoding (an ``I-X`` that continues nothing starts no entity).
    ``min_confidence`` drops entities whose confidence is below it (from the ``.ann`` and
    ``entities.jsonl``; the word-level ``predictions.jsonl`` keeps the model's raw tags).

Outputs of the command line (``--output_dir``; it may be the input folder)
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

Needs torch, transformers and the project's ``tagging.py``, ``windows.py``, ``corpus_io.py`` and
``modeling_crf.py`` (no ``datasets``, no training script).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

import torch
from transformers import AutoModelForTokenClassification, HfArgumentParser

import modeling_crf  # noqa: F401  (registers the CRF model with the Auto classes: no remote code needed)
from corpus_io import (
    ENTITIES_FILE, SUMMARY_FILE, WORD_PREDICTIONS_FILE, BratFormatError, atomic_open, jsonl_line, prediction_record,
    read_text, round_confidence, write_brat_ann, write_json_atomically,
)
from windows import (
    DEFAULT_BATCH_SIZE, DEFAULT_MAX_SEQ_LENGTH, DEFAULT_STRIDE, Entity, NotePrediction, is_crf_model, load_tokenizer,
    max_input_length, model_labels, predict_notes, window_budget, word_tokenizer,
)

logger = logging.getLogger(__name__)

# The CLI predicts notes in groups of about this many words (length-grouped batches are formed
# inside a group), writing each group's .ann files before it reads the next.
WORDS_PER_GROUP = 50_000


# ---------------------------------------------------------------------------
# The Python API
# ---------------------------------------------------------------------------


def load_model_and_tokenizer(
    model_name_or_path: str,
    *,
    device: str | torch.device | None = None,
    bf16: bool = False,
    trust_remote_code: bool = False,
    revision: str = "main",
    token: str | None = None,
):
    """Model (eval mode, on ``device``) and fast tokenizer from a folder or Hub id.

    CRF models load with this project's ``modeling_crf`` (imported above); only with
    ``trust_remote_code=True`` is the code shipped with the model run instead. ``bf16`` loads
    the weights in bfloat16 (the CRF itself stays float32).
    """
    kwargs: dict[str, Any] = {"revision": revision, "token": token, "trust_remote_code": trust_remote_code}
    if bf16:
        kwargs["dtype"] = torch.bfloat16
    model = AutoModelForTokenClassification.from_pretrained(model_name_or_path, **kwargs)
    model_labels(model)
    tokenizer = load_tokenizer(model_name_or_path, revision=revision, token=token, trust_remote_code=trust_remote_code)
    if device is not None:
        model.to(device)
    return model.eval(), tokenizer


class NoteAnnotator:
    """Entities of clinical notes, in one call: ``NoteAnnotator.from_pretrained(path)(text)``.

    Calls :func:`windows.predict_notes`, the same path as the command line and the saved CRF
    model's pipeline. A string gives a list of :class:`windows.Entity` (``type``, ``start``,
    ``end``, ``text``, ``confidence``, ``word_confidences``); a list of strings gives one list
    per note; :meth:`predict` gives the word-level predictions too.
    """

    def __init__(self, model, tokenizer, *, batch_size: int = DEFAULT_BATCH_SIZE,
                 max_seq_length: int | None = None, stride: int = DEFAULT_STRIDE,
                 device: str | torch.device | None = None, bf16: bool = False, min_confidence: float = 0.0):
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        self.model, self.tokenizer = model.eval(), word_tokenizer(tokenizer)
        model_labels(model)
        self.max_seq_length = max_input_length(model, self.tokenizer, max_seq_length)
        window_budget(self.tokenizer, self.max_seq_length, stride)  # bad window settings fail here, not mid-run
        self.settings = {"batch_size": batch_size, "max_seq_length": self.max_seq_length, "stride": stride,
                         "device": device, "bf16": bf16, "min_confidence": min_confidence}

    @classmethod
    def from_pretrained(cls, model_name_or_path: str, *, device: str | torch.device | None = None,
                        bf16: bool = False, trust_remote_code: bool = False, revision: str = "main",
                        token: str | None = None, **settings) -> "NoteAnnotator":
        """Load a model folder or Hub id (``settings``: batch_size, max_seq_length, stride, min_confidence)."""
        model, tokenizer = load_model_and_tokenizer(model_name_or_path, device=device, bf16=bf16,
                                                    trust_remote_code=trust_remote_code, revision=revision,
                                                    token=token)
        return cls(model, tokenizer, device=device, bf16=bf16, **settings)

    @property
    def is_crf(self) -> bool:
        return is_crf_model(self.model)

    def predict(self, texts: Mapping[str, str], progress: bool | None = False) -> dict[str, NotePrediction]:
        """Word tags, confidences and entities of ``{document_id: text}``."""
        return predict_notes(self.model, self.tokenizer, texts, progress=progress, **self.settings)

    def __call__(self, notes: str | Sequence[str]) -> list[Entity] | list[list[Entity]]:
        if isinstance(notes, str):
            return self.predict({"note": notes})["note"].entities
        if not all(isinstance(note, str) for note in notes):
            raise TypeError("NoteAnnotator takes a string or a list of strings")
        predictions = self.predict({str(index): note for index, note in enumerate(notes)})
        return [predictions[str(index)].entities for index in range(len(notes))]


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def entity_records(note: NotePrediction) -> list[dict[str, Any]]:
    """``entities.jsonl`` objects of a note; ``id`` is the entity's ``T`` line in the ``.ann``."""
    return [{
        "document_id": note.document_id,
        "id": f"T{number}",
        "type": entity.type,
        "start": entity.start,
        "end": entity.end,
        "text": entity.text,
        "confidence": round_confidence(entity.confidence),
        "word_confidences": [round_confidence(c) for c in entity.word_confidences],
    } for number, entity in enumerate(note.entities, start=1)]


def word_prediction_records(note: NotePrediction) -> list[dict[str, Any]]:
    """``predictions.jsonl`` records of a note (docs/architecture.md, "Predictions"; no gold tags)."""
    return [prediction_record(document_id=note.document_id, sentence_index=sentence.sentence_index,
                              tokens=sentence.tokens, token_starts=sentence.token_starts,
                              token_ends=sentence.token_ends, pred_tags=sentence.pred_tags,
                              confidences=sentence.confidences)
            for sentence in note.sentences]


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
            self.handle.write(jsonl_line(record))

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
    """A note's text exactly as stored (corpus_io.read_text); errors name the file and the reason only."""
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


@dataclass
class AnnotationArguments:
    """Arguments of ``annotate_notes.py``: a model, a folder of notes, where the annotations go."""

    model_name_or_path: str = field(metadata={"help": "Model folder (run_ner_crf.py output) or Hub id."})
    input_dir: str = field(metadata={"help": "Folder of .txt notes (UTF-8; not recursive)."})
    output_dir: str = field(metadata={"help": "Where the .ann files, entities.jsonl and summary.json go "
                                              "(may be --input_dir)."})
    batch_size: int = field(default=DEFAULT_BATCH_SIZE, metadata={"help": "Windows per batch (grouped by length)."})
    max_seq_length: Optional[int] = field(default=None, metadata={
        "help": f"Subwords per window, special tokens included (default: {DEFAULT_MAX_SEQ_LENGTH}, or what the model "
                "takes if less; a larger value is capped)."})
    stride: int = field(default=DEFAULT_STRIDE, metadata={"help": "Subwords of overlap between consecutive windows."})
    device: Optional[str] = field(default=None, metadata={"help": "cpu, cuda or cuda:N (default: cuda when available)."})
    bf16: bool = field(default=False, metadata={"help": "bfloat16 weights and autocast (GPU only; the CRF stays float32)."})
    min_confidence: float = field(default=0.0, metadata={
        "help": "Drop entities whose confidence (mean CRF marginal, or softmax probability, over their words) is "
                "below this, in [0, 1]."})
    overwrite: bool = field(default=False, metadata={"help": "Replace existing .ann files."})
    word_predictions: bool = field(default=False, metadata={
        "help": "Also write predictions.jsonl: word-level tags and confidences per sentence (docs/architecture.md "
                "format, gold_tags null)."})
    trust_remote_code: bool = field(default=False, metadata={
        "help": "Run the code shipped with the model (its modeling_crf.py, which you should read first) instead of "
                "this project's copy; needed for Hub models with custom code that this project does not have."})
    model_revision: str = field(default="main", metadata={"help": "Model version on the Hub (branch, tag or commit)."})
    token: Optional[str] = field(default=None, metadata={"help": "Hub token for private models (default: the cached login)."})


def build_parser() -> HfArgumentParser:
    return HfArgumentParser(AnnotationArguments, prog="annotate_notes.py", description=__doc__.split("\n\n")[0])


def parse_args(argv: Sequence[str] | None = None) -> AnnotationArguments:
    parser = build_parser()
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    # The window, batch and confidence settings are checked where they are used (windows.py, NoteAnnotator).
    problems = []
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(args.device)
    except RuntimeError:
        problems.append(f"--device {args.device!r} is not a device (cpu, cuda, cuda:N)")
    else:
        if device.type == "cuda" and not torch.cuda.is_available():
            problems.append("--device cuda: no CUDA GPU is available")
        if args.bf16 and device.type != "cuda":
            problems.append("--bf16 needs a GPU (--device cuda)")
    if problems:
        parser.error("; ".join(problems))
    return args


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
    annotator: NoteAnnotator,
    input_dir,
    output_dir,
    *,
    overwrite: bool = False,
    word_predictions: bool = False,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Annotate every ``.txt`` of ``input_dir`` into ``output_dir`` (see the module docstring); returns the summary."""
    started = time.perf_counter()
    paths = list_notes(input_dir)
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
            predictions = annotator.predict(texts, progress=progress)
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
        "model_type": "crf" if annotator.is_crf else "linear",
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
        "settings": {**annotator.settings, "device": str(annotator.settings["device"] if annotator.settings["device"]
                                                          is not None else next(annotator.model.parameters()).device)},
        "seconds": round(seconds, 3),
        "characters_per_second": round(counts["characters"] / seconds, 1) if seconds > 0 else None,
    }
    write_json_atomically(output_dir / SUMMARY_FILE, summary)
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
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%m/%d/%Y %H:%M:%S",
                        level=logging.INFO)
    logger.setLevel(logging.INFO)
    try:
        list_notes(args.input_dir)  # fail on the input before loading a model
        annotator = NoteAnnotator.from_pretrained(
            args.model_name_or_path, device=args.device, bf16=args.bf16, trust_remote_code=args.trust_remote_code,
            revision=args.model_revision, token=args.token, batch_size=args.batch_size,
            max_seq_length=args.max_seq_length, stride=args.stride, min_confidence=args.min_confidence)
        summary = annotate_folder(annotator, args.input_dir, args.output_dir, overwrite=args.overwrite,
                                  word_predictions=args.word_predictions, progress=None)
    except (InputError, OSError, ValueError) as error:
        print(f"annotate_notes.py: error: {error}", file=sys.stderr)
        return 1
    print(format_summary(summary, args.output_dir))
    return 1 if summary["notes_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
