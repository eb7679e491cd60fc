"""Durable JSON lines: an output file that a run appends to record by record and that a killed run leaves readable (a torn last line is found and cut, and each append reaches the disk before the run goes on)."""

from __future__ import annotations

import json
import logging
import os
from array import array
from collections import Counter
from pathlib import Path
from typing import Any, Collection, Iterable, Mapping, Sequence

from .files import atomic_open
from .prediction_records import jsonl_line

logger = logging.getLogger(__name__)


_MALFORMED, _BLANK = -1, -2


def _record_position(record: Mapping[str, Any]) -> int | None:
    """Where a record sits in its note (sentence index, or the number of its ``T`` line); None if unknown."""
    if isinstance(record.get("sentence_index"), int):
        return record["sentence_index"]
    record_id = record.get("id")
    if isinstance(record_id, str) and record_id[:1] == "T" and record_id[1:].isdigit():
        return int(record_id[1:])
    return None


class JsonlScan:
    """One pass over an ``entities.jsonl`` or ``predictions.jsonl`` (and the parts of it that the processes of a
    multi-process run wrote, read after it as if appended): the block of records of each line.

    A block is one write of one note's records, in order (``T1, T2, ...`` or sentence 0, 1, ...), so a
    note written again (``--overwrite``, or redone after an interruption) starts a new block even right
    after its old one, and only its last block is current. A line that is not a JSON object with a
    ``document_id`` (the torn last line of a killed run) is malformed and belongs to no block.
    """

    def __init__(self, path: Path, parts: Sequence[Path] = ()):
        self.path, self.parts = path, list(parts)
        self.line_blocks = array("q")
        self.block_documents: list[str] = []
        self.block_starts = array("q")  # where each block starts, in bytes from the start of the main file
        self.last_block: dict[str, int] = {}
        self.malformed = 0
        self.ends_with_newline = True
        self.main_size = path.stat().st_size if path.is_file() else 0
        offset = 0
        for source in [self.path, *self.parts]:
            if not source.is_file():
                continue
            document, position = None, None  # a part starts new blocks
            with source.open("rb") as handle:
                for line in handle:
                    line_start, offset = offset, offset + len(line)
                    if source == self.path:
                        self.ends_with_newline = line.endswith(b"\n")
                    if not line.strip():
                        self.line_blocks.append(_BLANK)
                        continue
                    try:
                        record = json.loads(line.decode("utf-8"))
                        record_document = record["document_id"]
                        if not isinstance(record_document, str):
                            raise TypeError
                    except (ValueError, TypeError, KeyError, IndexError):
                        self.malformed += 1
                        self.line_blocks.append(_MALFORMED)
                        continue
                    record_position = _record_position(record)
                    if record_document != document or (record_position is not None and position is not None
                                                       and record_position <= position):
                        self.block_documents.append(record_document)
                        self.block_starts.append(line_start)
                    document, position = record_document, record_position
                    self.last_block[document] = len(self.block_documents) - 1
                    self.line_blocks.append(len(self.block_documents) - 1)

    @property
    def documents(self) -> set[str]:
        return set(self.last_block)

    def compact(self, keep: Mapping[str, bool], mode: int, rewritten: Collection[str] = frozenset(),
                since: int | None = None) -> Counter:
        """Keep the last block of each document that ``keep`` says, merging the parts into the main file; rewrite
        it atomically only when a line goes, a part comes in (or the last line lacks its newline), else just set
        ``mode``. The documents ``rewritten`` by the run whose records start at byte ``since`` (default: the
        parts) keep only a block of that run: none when the run wrote them no record here (no entity, or a
        file its options did not write). Returns what was dropped."""
        since = self.main_size if since is None else since
        dropped = Counter()
        if self.malformed:
            dropped["malformed_lines"] = self.malformed
        current = {block for document, block in self.last_block.items()
                   if keep[document] and (document not in rewritten or self.block_starts[block] >= since)}
        for block in self.line_blocks:
            if block >= 0 and block not in current:
                document = self.block_documents[block]
                dropped["records_without_ann" if not keep[document] else "superseded_records"] += 1
        if not dropped and self.ends_with_newline and not any(part.is_file() for part in self.parts):
            if self.path.is_file():
                os.chmod(self.path, mode)
            return dropped
        if self.path.is_file() or self.parts:
            lines = iter(self.line_blocks)
            with atomic_open(self.path, newline="\n", mode=mode) as new:
                for source in [self.path, *self.parts]:
                    if not source.is_file():
                        continue
                    with source.open("rb") as old:
                        for line, block in zip(old, lines):
                            if block in current:
                                new.write(line.decode("utf-8").rstrip("\n") + "\n")
                new.flush()
                os.fsync(new.fileno())  # the compacted file is durable before it replaces the old one
            for part in self.parts:  # only now: a crash before this leaves copies that the next run drops
                part.unlink(missing_ok=True)
        if dropped["malformed_lines"]:
            # A count only: a malformed line may hold note text.
            logger.warning("%s: dropped %d malformed lines (an interrupted write)", self.path.name,
                           dropped["malformed_lines"])
        return dropped


class JsonlAppender:
    """A JSONL output file open for appending: each group's records are durable before its ``.ann`` files."""

    def __init__(self, path: Path, mode: int):
        self.path = path
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
        self.handle = os.fdopen(descriptor, "a", encoding="utf-8", newline="\n")
        self.mode = None
        self.restrict(mode)

    def restrict(self, mode: int) -> None:
        """Set the file's mode (before records of a more private note go in)."""
        if mode != self.mode:
            os.fchmod(self.handle.fileno(), mode)
            self.mode = mode

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        self.handle.write("".join(jsonl_line(record) for record in records))
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()


def sync_folder(folder: Path) -> None:
    """Make removals in ``folder`` durable before what follows them (not every system can open a folder)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
