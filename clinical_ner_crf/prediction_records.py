"""Prediction records: the word-level JSON lines a run writes for each sentence (words, offsets, gold and predicted tags, confidences) and reads back for its reports (docs/architecture.md gives the format)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .files import atomic_open
from .tagging import is_tag

# The fields of a record, in file order. `gold_tags` is null for unlabelled text; `confidences`
# is the probability of each predicted tag (CRF marginal or softmax), null where unknown.
PREDICTION_FIELDS = ("id", "document_id", "sentence_index", "tokens", "token_starts", "token_ends",
                     "gold_tags", "pred_tags", "confidences")
_PER_WORD_FIELDS = ("pred_tags", "gold_tags", "token_starts", "token_ends", "confidences")


class PredictionFormatError(ValueError):
    """A prediction JSONL file that does not follow docs/architecture.md ("Predictions")."""


def prediction_record(
    *, document_id: str | None, sentence_index: int | None, tokens: Sequence[str], pred_tags: Sequence[str],
    confidences: Sequence[float | None], token_starts: Sequence[int] | None = None,
    token_ends: Sequence[int] | None = None, gold_tags: Sequence[str] | None = None, id: str | None = None,
) -> dict[str, Any]:
    """One sentence's record; ``id`` defaults to ``"{document_id}-{sentence_index}"``."""
    if id is None and document_id is not None and sentence_index is not None:
        id = f"{document_id}-{sentence_index}"
    return {
        "id": id,
        "document_id": document_id,
        "sentence_index": sentence_index,
        "tokens": list(tokens),
        "token_starts": None if token_starts is None else list(token_starts),
        "token_ends": None if token_ends is None else list(token_ends),
        "gold_tags": None if gold_tags is None else list(gold_tags),
        "pred_tags": list(pred_tags),
        "confidences": [round_confidence(c) for c in confidences],
    }


def round_confidence(value: float | None) -> float | None:
    """A probability for a JSON file: 6 decimals, NaN (unknown) as null."""
    return None if value is None or value != value else round(float(value), 6)  # NaN -> null


def jsonl_line(record: Mapping[str, Any]) -> str:
    """A record as one JSONL line (UTF-8 text kept as is)."""
    return json.dumps(record, ensure_ascii=False) + "\n"


def write_predictions_file(path, records: Iterable[Mapping[str, Any]]) -> Path:
    """Prediction records as JSONL, atomically."""
    with atomic_open(path) as handle:
        handle.writelines(jsonl_line(record) for record in records)
    return Path(path)


def read_predictions(path) -> list[dict[str, Any]]:
    """Records of a prediction JSONL file, checked: errors name the file and line."""
    path = Path(path)
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise PredictionFormatError(f"{where}: not valid JSON ({error.msg}, column {error.colno})") from None
            if not isinstance(row, dict):
                raise PredictionFormatError(f"{where}: expected a JSON object, got {type(row).__name__}")
            for key in ("tokens", "pred_tags"):
                if not isinstance(row.get(key), list):
                    raise PredictionFormatError(f"{where}: '{key}' is missing or not a list")
            num_words = len(row["tokens"])
            for key in _PER_WORD_FIELDS:
                value = row.get(key)
                if value is None:
                    continue
                if not isinstance(value, list) or len(value) != num_words:
                    length = len(value) if isinstance(value, list) else type(value).__name__
                    raise PredictionFormatError(
                        f"{where}: '{key}' has {length} items but 'tokens' has {num_words} (id={row.get('id')!r})")
            for key in ("gold_tags", "pred_tags"):
                for tag in row.get(key) or ():
                    if not is_tag(tag):
                        raise PredictionFormatError(f"{where}: '{key}' holds {tag!r}, not an IOB2 tag")
            rows.append(row)
    return rows
