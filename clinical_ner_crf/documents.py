"""Documents: the in-memory note every reader returns (text, entities, relations), how note text is read, and how a bad line is reported.

:class:`BratDocument` (with :class:`BratEntity` and :class:`BratRelation`) is the one document type of the
toolkit, whatever the input format. :func:`read_text` reads a note's bytes as UTF-8 exactly (no newline
translation: offsets count characters of the raw file). :class:`BratFormatError` names the file, the line and the
reason; :func:`describe_text` shows an offset, a length and a hash instead of note text unless asked."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .files import split_lines
from .folder_safety import read_regular_file


class BratFormatError(ValueError):
    """Bad input, naming the file, the 1-based line (``None`` for a whole file) and the reason.

    ``kind`` is a short machine-readable reason (``missing_txt``, ``missing_ann``,
    ``not_utf8``, ``offsets_out_of_range``, ``text_mismatch``, ``malformed_line``,
    ``unknown_type``, ``unknown_argument``, ``duplicate_id``, ``empty_folder``, ``not_a_folder``, and the
    :data:`INVALID_RELATION_KINDS`); ``skipped``
    says what ``--skip_invalid`` skipped (``"document"`` or ``"annotation"``).
    """

    def __init__(self, path, line: int | None, reason: str, kind: str = "invalid", skipped: str | None = None):
        self.path = str(path)
        self.line = line
        self.reason = reason
        self.kind = kind
        self.skipped = skipped
        super().__init__(self.__str__())

    def __str__(self) -> str:
        location = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{location}: {self.reason}"

    def __reduce__(self):  # picklable for multiprocessing
        return (self.__class__, (self.path, self.line, self.reason, self.kind, self.skipped))


@dataclass(frozen=True)
class BratEntity:
    """One ``T`` line: ``spans`` are the ``(start, end)`` fragments in file order."""

    id: str
    type: str
    spans: tuple[tuple[int, int], ...]
    text: str
    line: int

    @property
    def start(self) -> int:
        """First start (the smallest: a few corpora list fragments out of order)."""
        return min(start for start, _ in self.spans)

    @property
    def end(self) -> int:
        """Last end."""
        return max(end for _, end in self.spans)

    @property
    def is_discontinuous(self) -> bool:
        return len(self.spans) > 1


@dataclass(frozen=True)
class BratRelation:
    """One ``R`` line: ``arg1`` (the attribute in n2c2) and ``arg2`` (the drug) are entity ids; an event
    given as an argument (``E3``) is read as its trigger entity."""

    id: str
    type: str
    arg1: str
    arg2: str
    line: int


@dataclass
class BratDocument:
    """A document's raw text, its entities and relations (types already mapped).

    ``unmapped_types`` counts the source types a label map ignored; ``sentence_spans`` is
    set when the input fixes the sentences (CoNLL); ``repaired_tags`` counts CoNLL ``I-X``
    tags that started an entity (read as ``B-X``); ``unmapped_relation_types`` counts the
    relation types a relation map ignored.
    """

    doc_id: str
    text: str
    entities: list[BratEntity]
    unmapped_types: Counter = field(default_factory=Counter)
    sentence_spans: Optional[list[tuple[int, int]]] = None
    repaired_tags: Counter = field(default_factory=Counter)
    relations: list[BratRelation] = field(default_factory=list)
    unmapped_relation_types: Counter = field(default_factory=Counter)


def decode_utf8(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = len(split_lines(raw[:error.start].decode("utf-8", errors="replace")))
        raise BratFormatError(
            path, line, f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at byte offset {error.start})", "not_utf8"
        ) from None


def read_text(path) -> str:
    """A document's text exactly as stored: UTF-8, newlines untranslated (CRLF stays two characters). Only a
    regular file is read: a FIFO, socket, device or folder raises ``folder_safety.NotARegularFile`` (an
    ``OSError``) at once, without waiting for a writer."""
    path = Path(path)
    # newline="" semantics: decode the bytes ourselves so no newline translation happens.
    return decode_utf8(path, read_regular_file(path))


# Messages about the user's files give offsets, lengths and a hash of any text, never the text itself,
# unless a debug switch allows it (prepare_n2c2.py --show_text_in_messages).
SHOW_TEXT_IN_MESSAGES = False


def describe_text(text: str, limit: int = 80) -> str:
    """Text for a message: its length and a short hash, or (debug switch on) the text itself."""
    if SHOW_TEXT_IN_MESSAGES:
        return repr(text if len(text) <= limit else text[: limit - 3] + "...")
    return f"<{len(text)} characters, sha256 {hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]}>"
