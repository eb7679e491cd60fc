#!/usr/bin/env python
"""Build an Arrow BIO dataset for drug and attribute NER from n2c2-2018 Track 2 brat notes.

This file is also the single home of the project's label scheme, brat reader/writer,
sentence splitter and word tokenizer: every other script imports them from here.

    python prepare_n2c2.py --train_dir n2c2/train --test_dir n2c2/test --output_dir data/n2c2
    python prepare_n2c2.py --synthetic 120 --output_dir data/synthetic
    python prepare_n2c2.py --train_dir phee/brat/train --validation_dir phee/brat/dev \\
        --test_dir phee/brat/test --label_map configs/label_maps/phee_to_n2c2.json --output_dir data/phee
    python prepare_n2c2.py --train_file ncbi/train.tsv --validation_file ncbi/devel.tsv \\
        --test_file ncbi/test.tsv --output_dir data/ncbi

Input
    Brat standoff: ``T`` lines are entities (contiguous ``start end`` or discontinuous
    ``start end;start end`` spans); ``R``, ``E``, ``A``, ``M``, ``N``, ``*`` and ``#`` lines
    are ignored. Text is read with ``newline=""`` so offsets are character offsets of the
    raw file (CRLF files included). ``--label_map FILE.json`` maps source types to target
    types; unmapped types are ignored and counted. CoNLL ``token<TAB>tag`` files become
    documents whose text is the tokens joined by single spaces and the sentences joined by
    newlines (documents split at ``-DOCSTART-``, else one document per sentence).

Policies (every entity that does not end up as its own ``B-`` tag is counted per type in
``stats.json``: nothing disappears silently)
    discontinuous  ``span`` (default): one span from the first start to the last end, as
                   the official n2c2 scorer does; ``first``: the first fragment only;
                   ``drop``: discontinuous entities are dropped.
    word boundary  Words are ``\\w+|[^\\w\\s]`` matches. An entity boundary inside a word
                   expands the entity to the whole word (counted as ``expanded``).
    overlap        Overlaps are resolved per document on words, after expansion. Exact
                   duplicates (same type and words) keep one copy. ``longest`` (default)
                   keeps the longest entity and drops the others; ``shortest`` keeps the
                   innermost; ``first`` keeps the earliest start; ``clip`` keeps the
                   longest intact and trims each other entity to its longest run of free
                   words (dropped when none is left). Ties go to the earlier start, then to
                   the label order.
    sentences      Newline-aware splitting for discharge summaries (lists, headings and
                   vitals lines break; wrapped prose does not), never inside an entity.

Output (``--output_dir``, written to a temporary directory and moved into place)
    A ``DatasetDict`` (``save_to_disk``) with ``train``, ``validation``, ``test``,
    ``train_downsampled`` and ``validation_downsampled``; ``documents/`` (document_id,
    split, text); ``stats.json`` (counts only, never corpus text); ``label_distribution.png``.
    The printed summary holds counts only; error messages may quote the offending span of
    the user's own file. Same inputs and seed give the same dataset.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import random
import re
import shutil
import sys
import tempfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal, Optional, Sequence

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# Label scheme
# ---------------------------------------------------------------------------

# n2c2-2018 Track 2 entity types in the paper's tag-id order (O first, then a B/I pair each).
N2C2_ENTITY_TYPES: tuple[str, ...] = (
    "Drug", "Reason", "Route", "Strength", "Form", "Dosage", "Frequency", "Duration", "ADE",
)


def bio_labels(entity_types: Iterable[str]) -> list[str]:
    """IOB2 tag names: ``O`` then ``B-X``, ``I-X`` for each type, in the given order."""
    labels = ["O"]
    for entity_type in entity_types:
        labels += [f"B-{entity_type}", f"I-{entity_type}"]
    return labels


N2C2_LABELS: list[str] = bio_labels(N2C2_ENTITY_TYPES)  # 19 tags


def entity_types_of(labels: Sequence[str]) -> list[str]:
    """The entity types of a tag list, in order of first appearance (``O`` excluded)."""
    types: list[str] = []
    for label in labels:
        entity_type = tag_type(label)
        if entity_type is not None and entity_type not in types:
            types.append(entity_type)
    return types


def tag_type(tag: str) -> str | None:
    """``"B-Drug"`` -> ``"Drug"``; ``"O"`` -> ``None``."""
    return None if tag == "O" else tag[2:]


def bio_to_spans(tags: Sequence[str], strict: bool = True) -> list[tuple[str, int, int]]:
    """Entity chunks of an IOB2 tag sequence as ``(type, first_word, end_word_exclusive)``.

    ``strict=True`` follows seqeval's ``mode="strict", scheme=IOB2``: a chunk starts only
    at ``B-X`` and continues over ``I-X``; an ``I-X`` that continues nothing starts no
    entity. ``strict=False`` follows conlleval: such an ``I-X`` starts a new chunk.
    """
    spans: list[tuple[str, int, int]] = []
    current_type, current_start = None, 0
    for index, tag in enumerate(list(tags) + ["O"]):
        prefix, entity_type = (tag[0], tag[2:]) if tag != "O" else ("O", None)
        continues = prefix == "I" and entity_type == current_type
        if current_type is not None and not continues:
            spans.append((current_type, current_start, index))
            current_type = None
        if prefix == "B" or (prefix == "I" and not continues and not strict):
            current_type, current_start = entity_type, index
    return spans


def spans_to_bio(num_words: int, spans: Iterable[tuple[str, int, int]]) -> list[str]:
    """Inverse of :func:`bio_to_spans` for non-overlapping word spans."""
    tags = ["O"] * num_words
    for entity_type, start, end in spans:
        tags[start] = f"B-{entity_type}"
        for index in range(start + 1, end):
            tags[index] = f"I-{entity_type}"
    return tags


def bio_to_char_spans(
    tags: Sequence[str], token_starts: Sequence[int], token_ends: Sequence[int], strict: bool = True
) -> list[tuple[str, int, int]]:
    """Entity chunks of an IOB2 tag sequence as ``(type, char_start, char_end)`` document offsets."""
    return [(entity_type, token_starts[first], token_ends[last - 1])
            for entity_type, first, last in bio_to_spans(tags, strict=strict)]


# ---------------------------------------------------------------------------
# Words and sentences
# ---------------------------------------------------------------------------

# A word is a run of word characters or one other non-space character: the split BERT's
# basic pre-tokenizer makes, so a fast tokenizer given raw text finds the same words.
def _bert_punctuation_class() -> str:
    """A regex character class of what BERT's pre-tokenizer splits off as punctuation: ASCII
    punctuation (``_``, ``$``, ``+``, ... included) and every Unicode ``P*`` character."""
    import unicodedata

    characters = [chr(c) for c in range(sys.maxunicode + 1)
                  if (chr(c).isascii() and not chr(c).isalnum() and 33 <= c <= 126)
                  or unicodedata.category(chr(c)).startswith("P")]
    return "[" + "".join(re.escape(c) for c in characters) + "]"


_PUNCTUATION = _bert_punctuation_class()
# A word is a run of characters that are neither whitespace nor punctuation, or one punctuation
# character: exactly BERT's basic pre-tokenizer, so a fast tokenizer given raw text (the
# `pipeline`) finds the same words as our scripts. Symbols such as "°" or "±" stay inside words.
WORD_PATTERN = re.compile(rf"{_PUNCTUATION}|(?:(?!{_PUNCTUATION})\S)+")


def tokenize_words(text: str, start: int = 0, end: int | None = None) -> list[tuple[str, int, int]]:
    """Words of ``text[start:end]`` as ``(word, start, end)`` with offsets into ``text``."""
    end = len(text) if end is None else end
    return [(match.group(), match.start(), match.end()) for match in WORD_PATTERN.finditer(text, start, end)]


# A period after one of these words (lowercased, without the period) does not end a sentence.
_ABBREVIATIONS = frozenset(
    "dr mr mrs ms prof st vs no nos approx appt pt pts hx dx tx sx fx rx cf fig jr sr dept".split()
)
# A line ending with one of these words runs on into the next line (wrapped prose).
_CONTINUATION_WORDS = frozenset(
    "a an and as at after before but by due for from in into of on or per secondary than the then "
    "to was were with without is are be been his her their".split()
)
_LIST_ITEM = re.compile(r"(?:\d{1,3}[.)]|\(\d{1,3}\)|[-*\u2022#>])(?:\s|$)")
_HEADING = re.compile(r"[A-Z][A-Za-z0-9 /&,'()-]{0,60}:")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _ends_sentence(text: str, position: int) -> bool:
    """Whether the punctuation just before ``position`` closes a sentence.

    Guards against the abbreviations of clinical notes: a period after a single letter or a
    dotted word (``p.o.``, ``b.i.d.``, ``q.4h.``), after a list marker (``1.`` opening a
    line or after a colon) or after a title such as ``Dr.`` does not end a sentence.
    """
    end = position
    while end > 0 and text[end - 1] in "\"')]":
        end -= 1
    if end == 0 or text[end - 1] not in ".!?":
        return False
    if text[end - 1] in "!?":
        return True
    word_start = end - 1
    while word_start > 0 and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start:end - 1].lower()
    if word.isdigit():
        # "1." opening a line or following a colon is a list marker; "on day 3." ends a sentence.
        before = text[:word_start].rstrip(" \t")
        return not (before == "" or before.endswith(("\n", "\r", ":")))
    dotted = "." in word and not word.replace(".", "").replace(",", "").isdigit()  # p.o., b.i.d, q.4h (not 1.5)
    return not (len(word) <= 1 or dotted or word in _ABBREVIATIONS)


def _line_break_ends_sentence(previous_line: str, next_line: str, blank_line: bool) -> bool:
    """Whether a line break ends a sentence (discharge-summary layout).

    Blank lines, list items, headings (``Vitals:``) and lines ending with ``:``, ``;``,
    ``!``, ``?`` or a sentence-final period break. A line that runs on into a lowercase
    line, or that ends with a comma or a joining word ("started on"), is wrapped prose and
    does not. Anything else (label lines, vitals, table rows) breaks.
    """
    if blank_line or _LIST_ITEM.match(next_line) or _HEADING.match(next_line):
        return True
    if previous_line.endswith((":", ";", "!", "?")):
        return True
    if next_line[:1].islower():
        return False
    if previous_line.endswith(".") and _ends_sentence(previous_line, len(previous_line)):
        return True
    last_word = previous_line.rsplit(None, 1)[-1].lower() if previous_line.strip() else ""
    return not (previous_line.endswith((",", "-", "(", "/", "&")) or last_word in _CONTINUATION_WORDS)


def _entity_bounds(entity) -> tuple[int, int]:
    """``(start, end)`` of a :class:`BratEntity`, a ``(start, end)`` pair or a ``(type, start, end)`` triple."""
    if hasattr(entity, "start") and hasattr(entity, "end"):
        return entity.start, entity.end
    return entity[-2], entity[-1]


def split_sentences(text: str, entities: Iterable = ()) -> list[tuple[int, int]]:
    """Sentence character spans of a clinical note: newline-aware, never cutting an entity.

    A line break ends a sentence unless the line is wrapped prose (see
    :func:`_line_break_ends_sentence`); inside a line, ``.``, ``!`` or ``?`` followed by
    whitespace and a capital letter or a digit ends one unless the period belongs to an
    abbreviation. No cut is made inside an entity: ``entities`` holds ``(start, end)``
    pairs, ``(type, start, end)`` triples or :class:`BratEntity` objects (first start to
    last end). The spans are whitespace-trimmed, non-empty and in document order.
    """
    # Merged entity intervals: a cut through whitespace (gap_start, gap_end) is refused when
    # an interval starts before the gap ends and ends after it starts.
    protected_starts: list[int] = []
    protected_ends: list[int] = []
    for start, end in sorted(_entity_bounds(entity) for entity in entities):
        if protected_starts and start < protected_ends[-1]:
            protected_ends[-1] = max(protected_ends[-1], end)
        else:
            protected_starts.append(start)
            protected_ends.append(end)

    first = len(text) - len(text.lstrip())
    last = len(text.rstrip())
    if first >= last:
        return []
    sentences: list[tuple[int, int]] = []
    sentence_start = first
    for gap in re.finditer(r"\s+", text[:last]):
        gap_start, gap_end = gap.span()
        if gap_start <= first:
            continue
        line_breaks = len(_LINE_BREAK.findall(gap.group()))
        if line_breaks:
            line_start = max(text.rfind("\n", 0, gap_start), text.rfind("\r", 0, gap_start)) + 1
            next_break = _LINE_BREAK.search(text, gap_end)
            next_line = text[gap_end:next_break.start() if next_break else len(text)]
            is_boundary = _line_break_ends_sentence(
                text[line_start:gap_start].strip(), next_line.strip(), line_breaks > 1
            )
        else:
            next_char = text[gap_end]
            is_boundary = (next_char.isupper() or next_char.isdigit()) and _ends_sentence(text, gap_start)
        if not is_boundary:
            continue
        index = bisect.bisect_left(protected_starts, gap_end) - 1
        if index >= 0 and protected_ends[index] > gap_start:
            continue  # the cut would fall inside an entity
        sentences.append((sentence_start, gap_start))
        sentence_start = gap_end
    sentences.append((sentence_start, last))
    return sentences


# ---------------------------------------------------------------------------
# Brat standoff: reader and writer
# ---------------------------------------------------------------------------


class BratFormatError(ValueError):
    """Bad input, naming the file, the 1-based line (``None`` for a whole file) and the reason.

    ``kind`` is a short machine-readable reason (``missing_txt``, ``missing_ann``,
    ``not_utf8``, ``offsets_out_of_range``, ``text_mismatch``, ``malformed_line``,
    ``unknown_type``, ``duplicate_id``, ``empty_folder``, ``not_a_folder``); ``skipped``
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


@dataclass
class BratDocument:
    """A document's raw text and its entities (types already mapped).

    ``unmapped_types`` counts the source types a label map ignored; ``sentence_spans`` is
    set when the input fixes the sentences (CoNLL); ``repaired_tags`` counts CoNLL ``I-X``
    tags that started an entity (read as ``B-X``).
    """

    doc_id: str
    text: str
    entities: list[BratEntity]
    unmapped_types: Counter = field(default_factory=Counter)
    sentence_spans: Optional[list[tuple[int, int]]] = None
    repaired_tags: Counter = field(default_factory=Counter)


_IGNORED_LINE_PREFIXES = ("R", "E", "A", "M", "N", "*", "#")
_SPANS_PATTERN = re.compile(r"(\S+) (\d+ \d+(?:;\d+ \d+)*)")


def _decode_utf8(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise BratFormatError(
            path, line, f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at byte offset {error.start})", "not_utf8"
        ) from None


def read_text(path) -> str:
    """A document's text exactly as stored: UTF-8, newlines untranslated (CRLF stays two characters)."""
    path = Path(path)
    # newline="" semantics: decode the bytes ourselves so no newline translation happens.
    return _decode_utf8(path, path.read_bytes())


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_types(label_map: dict | None, entity_types: Sequence[str] | None) -> tuple[dict | None, set[str]]:
    """The allowed target types: ``entity_types``, else the label map's targets, else the n2c2 types."""
    if label_map is not None:
        targets = {target for target in label_map.values() if target is not None}
        if entity_types is not None:
            missing = sorted(targets - set(entity_types))
            if missing:
                raise ValueError(f"label map targets {missing} are not in the entity types {list(entity_types)}")
        return label_map, set(entity_types) if entity_types is not None else targets
    return None, set(entity_types) if entity_types is not None else set(N2C2_ENTITY_TYPES)


def _resolve_type(source_type: str, label_map: dict | None, allowed_types, unmapped: Counter
                  ) -> tuple[str | None, str | None]:
    """The dataset type of a source entity type, as ``(target_type, error)``.

    With a label map, an unmapped type is counted in ``unmapped`` and gives ``(None, None)``
    (ignored). Without one, a type outside ``allowed_types`` (``None``: any) is an error.
    """
    if label_map is not None:
        target_type = label_map.get(source_type)
        if target_type is None:
            unmapped[source_type] += 1
        return target_type, None
    if allowed_types is not None and source_type not in allowed_types:
        return None, (f"unknown entity type {source_type!r} (expected one of {', '.join(sorted(allowed_types))}; "
                      f"use --label_map or --entity_types for other corpora)")
    return source_type, None


def read_brat_document(
    txt_path,
    ann_path=None,
    *,
    label_map: dict[str, str | None] | None = None,
    entity_types: Sequence[str] | None = None,
    validate_text: bool = True,
    problems: list[BratFormatError] | None = None,
) -> BratDocument:
    """Read one ``.txt``/``.ann`` pair.

    ``label_map`` maps source types to target types; types it does not map (or maps to
    ``None``) are ignored and counted in ``unmapped_types``. Without a label map every type
    must be in ``entity_types`` (default: the nine n2c2 types). With ``validate_text`` each
    span's surface text must match the ``.txt`` (whitespace runs compare equal, since brat
    writes fragments joined by a space). Problems raise :class:`BratFormatError`; when a
    ``problems`` list is given, bad lines are recorded there and skipped instead.
    """
    txt_path = Path(txt_path)
    ann_path = txt_path.with_suffix(".ann") if ann_path is None else Path(ann_path)
    label_map, allowed_types = _check_types(label_map, entity_types)
    if not txt_path.is_file():
        raise BratFormatError(ann_path, None, f"no matching .txt file (expected {txt_path.name})", "missing_txt")
    if not ann_path.is_file():
        raise BratFormatError(txt_path, None, f"no matching .ann file (expected {ann_path.name})", "missing_ann")
    text = read_text(txt_path)
    ann_text = _decode_utf8(ann_path, ann_path.read_bytes())

    entities: list[BratEntity] = []
    unmapped: Counter = Counter()
    first_line_of_id: dict[str, int] = {}

    def problem(line_number: int, reason: str, kind: str) -> None:
        error = BratFormatError(ann_path, line_number, reason, kind, skipped="annotation")
        if problems is None:
            error.skipped = None
            raise error
        problems.append(error)

    for line_number, line in enumerate(ann_text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        if line.startswith(_IGNORED_LINE_PREFIXES):
            continue
        if not line.startswith("T"):
            problem(line_number, f"malformed line: expected an annotation id such as T1, R1, E1, A1 or #1, "
                                 f"got {_short(line)!r}", "malformed_line")
            continue
        fields = line.split("\t", 2)
        match = _SPANS_PATTERN.fullmatch(fields[1]) if len(fields) >= 2 else None
        if match is None or (validate_text and len(fields) < 3) or not fields[0].strip():
            problem(line_number, f"malformed T line: expected 'ID<TAB>TYPE START END[;START END...]<TAB>TEXT', "
                                 f"got {_short(line)!r}", "malformed_line")
            continue
        entity_id, source_type, offsets = fields[0], match.group(1), match.group(2)
        surface = fields[2] if len(fields) > 2 else ""
        if entity_id in first_line_of_id:
            problem(line_number, f"duplicate id {entity_id} (first on line {first_line_of_id[entity_id]})",
                    "duplicate_id")
            continue
        first_line_of_id[entity_id] = line_number
        spans = tuple(tuple(int(number) for number in pair.split()) for pair in offsets.split(";"))
        if any(start >= end for start, end in spans):
            problem(line_number, f"empty or reversed span {offsets.replace(' ', '-')}", "malformed_line")
            continue
        if max(end for _, end in spans) > len(text):
            problem(line_number, f"offsets {offsets.replace(' ', '-')} are outside the text "
                                 f"({txt_path.name} has {len(text)} characters)", "offsets_out_of_range")
            continue
        actual = " ".join(text[start:end] for start, end in spans)
        if validate_text and actual.split() != surface.split():
            problem(line_number, f"span text {surface!r} does not match the .txt at "
                                 f"{offsets.replace(' ', '-')} ({actual!r})", "text_mismatch")
            continue
        target_type, error = _resolve_type(source_type, label_map, allowed_types, unmapped)
        if error:
            problem(line_number, error, "unknown_type")
        if target_type is None:
            continue
        entities.append(BratEntity(entity_id, target_type, spans, surface or actual, line_number))
    return BratDocument(txt_path.stem, text, entities, unmapped_types=unmapped)


def read_brat_folder(
    folder,
    *,
    label_map: dict[str, str | None] | None = None,
    entity_types: Sequence[str] | None = None,
    skip_invalid: bool = False,
    validate_text: bool = True,
    require_ann: bool = True,
    progress: bool | None = False,
) -> tuple[list[BratDocument], list[BratFormatError]]:
    """Read every ``.txt``/``.ann`` pair of a folder (not recursive), sorted by file name.

    Returns ``(documents, problems)``. ``problems`` is empty unless ``skip_invalid``: then
    each bad document or annotation line is skipped and reported there as a
    :class:`BratFormatError` whose ``skipped`` is ``"document"`` or ``"annotation"``.
    With ``require_ann=False`` a ``.txt`` without ``.ann`` is an unannotated document.
    ``progress=None`` shows a tqdm bar on a terminal.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BratFormatError(folder, None, "not a folder (expected brat .txt/.ann files)", "not_a_folder")
    txt_stems = {path.stem for path in folder.glob("*.txt")}
    ann_stems = {path.stem for path in folder.glob("*.ann")}
    if not txt_stems and not ann_stems:
        raise BratFormatError(folder, None, "no .txt or .ann files found", "empty_folder")
    _check_types(label_map, entity_types)  # fail on a bad label map before reading anything

    documents: list[BratDocument] = []
    problems: list[BratFormatError] = []
    stems = sorted(txt_stems | ann_stems)
    from tqdm.auto import tqdm

    for stem in tqdm(stems, desc=f"reading {folder.name}", unit="doc", disable=None if progress is None else not progress):
        txt_path, ann_path = folder / f"{stem}.txt", folder / f"{stem}.ann"
        try:
            if stem not in txt_stems:
                raise BratFormatError(ann_path, None, f"no matching .txt file (expected {txt_path.name})", "missing_txt")
            if stem not in ann_stems and not require_ann:
                documents.append(BratDocument(stem, read_text(txt_path), []))
                continue
            documents.append(read_brat_document(
                txt_path, ann_path, label_map=label_map, entity_types=entity_types,
                validate_text=validate_text, problems=problems if skip_invalid else None,
            ))
        except BratFormatError as error:
            if not skip_invalid:
                raise
            error.skipped = "document"
            problems.append(error)
    if not documents:
        raise BratFormatError(folder, None, "no valid documents (all were skipped)", "empty_folder")
    return documents, problems


def split_at_line_breaks(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Fragments of ``text[start:end]`` between line breaks, whitespace-trimmed and non-empty."""
    fragments = []
    for piece in re.finditer(r"[^\r\n]+", text[start:end]):
        fragment_start = start + piece.start() + (len(piece.group()) - len(piece.group().lstrip()))
        fragment_end = start + piece.start() + len(piece.group().rstrip())
        if fragment_start < fragment_end:
            fragments.append((fragment_start, fragment_end))
    return fragments


def write_brat_entities(
    path, entities: Iterable[tuple[str, Sequence[tuple[int, int]]]], text: str, *, overwrite: bool = False
) -> Path:
    """Write ``T1..Tn`` lines for ``(type, fragments)`` pairs; atomic, refusing to overwrite by default."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)")
    lines = []
    for number, (entity_type, fragments) in enumerate(entities, start=1):
        fragments = [(int(start), int(end)) for start, end in fragments]
        if not fragments or any(not 0 <= start < end <= len(text) for start, end in fragments):
            raise ValueError(f"entity {number} ({entity_type}) has spans {fragments} outside the text "
                             f"({len(text)} characters)")
        offsets = ";".join(f"{start} {end}" for start, end in fragments)
        # Brat's surface field is one line without tabs; the reader compares whitespace-normalised.
        surface = " ".join(" ".join(text[start:end].split()) for start, end in fragments)
        lines.append(f"T{number}\t{entity_type} {offsets}\t{surface}\n")
    with atomic_open(path, newline="\n") as handle:
        handle.writelines(lines)
    return path


@contextmanager
def atomic_open(path, encoding: str = "utf-8", newline: str | None = None):
    """Open ``path`` for writing text through a temporary sibling file that replaces it only when
    the block succeeds: an interrupted run never leaves a truncated file. The result gets the
    usual permissions (0666 less the umask), not the owner-only ones of a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding=encoding, newline=newline) as handle:
            yield handle
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_brat_ann(path, entities: Iterable[tuple[str, int, int]], text: str, *, overwrite: bool = False) -> Path:
    """Write ``(type, start, end)`` entities as a brat ``.ann`` next to its text.

    A span that crosses line breaks is written as discontinuous fragments split at the
    breaks (``s1 e1;s2 e2``, surface fragments joined by a space), as n2c2 does. The file
    is written to a temporary file in the same folder and moved into place; an existing
    file is only replaced with ``overwrite=True``.
    """
    pairs = []
    for entity_type, start, end in entities:
        if not 0 <= start < end <= len(text):
            raise ValueError(f"{entity_type} span {start}-{end} is outside the text ({len(text)} characters)")
        fragments = split_at_line_breaks(text, start, end)
        if not fragments:
            raise ValueError(f"{entity_type} span {start}-{end} holds only whitespace")
        pairs.append((entity_type, fragments))
    return write_brat_entities(path, pairs, text, overwrite=overwrite)


# ---------------------------------------------------------------------------
# CoNLL token<TAB>tag input
# ---------------------------------------------------------------------------

_TAG_PATTERN = re.compile(r"O|[BI]-\S+")


def read_conll_file(
    path,
    *,
    label_map: dict[str, str | None] | None = None,
    entity_types: Sequence[str] | None = None,
) -> list[BratDocument]:
    """Read a CoNLL-style file (``token<TAB>tag``, or whitespace columns with the tag last).

    Blank lines end sentences; ``-DOCSTART-`` lines end documents. Without them each
    sentence is its own document. Document text is the tokens joined by single spaces and
    the sentences joined by newlines; ids are ``{file_stem}-{n:06d}``. An ``I-X`` that
    continues nothing starts an entity (conlleval reading) and is counted in
    ``repaired_tags``. Without ``label_map`` and ``entity_types`` every type is accepted.
    """
    path = Path(path)
    if not path.is_file():
        raise BratFormatError(path, None, "no such file", "missing_file")
    label_map, allowed_types = _check_types(label_map, entity_types) if (label_map or entity_types) else (None, None)
    lines = _decode_utf8(path, path.read_bytes()).split("\n")

    # Group (token, tag, line) rows into sentences and sentences into documents.
    documents_rows: list[list[list[tuple[str, str, int]]]] = []
    sentences: list[list[tuple[str, str, int]]] = []
    sentence: list[tuple[str, str, int]] = []
    has_docstart = any(line.startswith("-DOCSTART-") for line in lines)
    for line_number, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if line.startswith("-DOCSTART-") or not line.strip():
            if sentence:
                sentences.append(sentence)
                sentence = []
            if line.startswith("-DOCSTART-") or not has_docstart:
                if sentences:
                    documents_rows.append(sentences)
                sentences = []
            continue
        columns = line.split("\t") if "\t" in line else line.split()
        if len(columns) < 2 or not columns[0].strip():
            raise BratFormatError(path, line_number, f"malformed line: expected 'TOKEN<TAB>TAG', got {_short(line)!r}",
                                  "malformed_line")
        tag = columns[-1].strip()
        if not _TAG_PATTERN.fullmatch(tag):
            raise BratFormatError(path, line_number, f"malformed tag {tag!r} (expected O, B-TYPE or I-TYPE)",
                                  "malformed_line")
        sentence.append((columns[0].strip(), tag, line_number))
    if sentence:
        sentences.append(sentence)
    if sentences:
        documents_rows.append(sentences)
    if not documents_rows:
        raise BratFormatError(path, None, "no tokens found", "empty_folder")

    documents = []
    for document_number, document_sentences in enumerate(documents_rows):
        text_parts: list[str] = []
        sentence_spans: list[tuple[int, int]] = []
        entities: list[BratEntity] = []
        unmapped: Counter = Counter()
        repaired: Counter = Counter()
        offset = 0
        for sentence_rows in document_sentences:
            if text_parts:
                text_parts.append("\n")
                offset += 1
            token_starts, token_ends = [], []
            for index, (token, _, _) in enumerate(sentence_rows):
                if index:
                    text_parts.append(" ")
                    offset += 1
                token_starts.append(offset)
                text_parts.append(token)
                offset += len(token)
                token_ends.append(offset)
            sentence_spans.append((token_starts[0], token_ends[-1]))
            tags = [tag for _, tag, _ in sentence_rows]
            strict_starts = {first for _, first, _ in bio_to_spans(tags, strict=True)}
            for source_type, first, last in bio_to_spans(tags, strict=False):
                line_number = sentence_rows[first][2]
                if first not in strict_starts:
                    repaired[source_type] += 1
                target_type, error = _resolve_type(source_type, label_map, allowed_types, unmapped)
                if error:
                    raise BratFormatError(path, line_number, error, "unknown_type")
                if target_type is None:
                    continue
                start, end = token_starts[first], token_ends[last - 1]
                entities.append(BratEntity(f"T{len(entities) + 1}", target_type, ((start, end),), "", line_number))
        text = "".join(text_parts)
        entities = [BratEntity(e.id, e.type, e.spans, text[e.start:e.end], e.line) for e in entities]
        documents.append(BratDocument(f"{path.stem}-{document_number:06d}", text, entities, unmapped, sentence_spans,
                                      repaired))
    return documents


def conll_entity_types(paths: Iterable) -> list[str]:
    """The entity types of the tags in CoNLL files, sorted."""
    types = set()
    for path in paths:
        for line in _decode_utf8(Path(path), Path(path).read_bytes()).split("\n"):
            columns = line.rstrip("\r").split("\t") if "\t" in line else line.split()
            if len(columns) >= 2 and _TAG_PATTERN.fullmatch(columns[-1].strip()) and columns[-1].strip() != "O":
                types.add(columns[-1].strip()[2:])
    return sorted(types)


# ---------------------------------------------------------------------------
# Documents to BIO sentences
# ---------------------------------------------------------------------------

OVERLAP_POLICIES = ("longest", "shortest", "first", "clip")
DISCONTINUOUS_POLICIES = ("span", "first", "drop")
# Counter categories of :func:`document_to_examples`. Every source entity ends in exactly
# one of "kept" or a DROP_CATEGORIES entry; the others describe kept entities.
DROP_CATEGORIES = (
    "dropped_overlap", "dropped_duplicate", "dropped_discontinuous", "dropped_no_words",
    "dropped_crosses_sentence", "dropped_not_in_labels",
)
CHANGE_CATEGORIES = ("clipped_overlap", "expanded_to_words", "discontinuous_spanned", "discontinuous_first_fragment")


def document_to_examples(
    doc: BratDocument,
    labels: Sequence[str],
    *,
    overlap: str = "longest",
    discontinuous: str = "span",
    sentence_spans: Sequence[tuple[int, int]] | None = None,
) -> tuple[list[dict], Counter]:
    """Split a document into sentences of words with IOB2 tags.

    Returns ``(rows, counts)``. Each row has ``id``, ``document_id``, ``sentence_index``,
    ``tokens``, ``ner_tags`` (tag strings), ``token_starts`` and ``token_ends``.
    ``counts`` is a Counter keyed by ``(category, entity_type)``: ``source`` (entities in),
    ``kept`` (entities that became a ``B-`` tag), each of :data:`DROP_CATEGORIES` and each of
    :data:`CHANGE_CATEGORIES`, so that ``source == kept + dropped`` per type. Sentences come
    from ``sentence_spans``, else ``doc.sentence_spans``, else :func:`split_sentences`.
    The policies are described at the top of this file.
    """
    if overlap not in OVERLAP_POLICIES:
        raise ValueError(f"overlap policy must be one of {OVERLAP_POLICIES}, got {overlap!r}")
    if discontinuous not in DISCONTINUOUS_POLICIES:
        raise ValueError(f"discontinuous policy must be one of {DISCONTINUOUS_POLICIES}, got {discontinuous!r}")
    type_rank = {entity_type: rank for rank, entity_type in enumerate(entity_types_of(labels))}
    counts: Counter = Counter()

    # 1. One character span per entity (discontinuous policy).
    char_spans: list[tuple[str, int, int]] = []
    for entity in doc.entities:
        counts["source", entity.type] += 1
        if entity.type not in type_rank:
            counts["dropped_not_in_labels", entity.type] += 1
            continue
        if entity.is_discontinuous:
            if discontinuous == "drop":
                counts["dropped_discontinuous", entity.type] += 1
                continue
            if discontinuous == "first":
                counts["discontinuous_first_fragment", entity.type] += 1
                char_spans.append((entity.type, *min(entity.spans)))
                continue
            counts["discontinuous_spanned", entity.type] += 1
        char_spans.append((entity.type, entity.start, entity.end))

    # 2. Sentences and their words.
    if sentence_spans is None:
        sentence_spans = doc.sentence_spans
    if sentence_spans is None:
        sentence_spans = split_sentences(doc.text, char_spans)
    words: list[tuple[str, int, int]] = []
    sentence_of_word: list[int] = []
    sentence_word_ranges: list[tuple[int, int]] = []
    for sentence_index, (start, end) in enumerate(sentence_spans):
        sentence_words = tokenize_words(doc.text, start, end)
        sentence_word_ranges.append((len(words), len(words) + len(sentence_words)))
        words.extend(sentence_words)
        sentence_of_word.extend([sentence_index] * len(sentence_words))
    word_starts = [start for _, start, _ in words]
    word_ends = [end for _, _, end in words]

    # 3. Character spans to word ranges [first, last), expanding to whole words.
    candidates: list[tuple[str, int, int]] = []
    seen: set[tuple[str, int, int]] = set()
    for entity_type, start, end in char_spans:
        first = bisect.bisect_right(word_ends, start)  # first word ending after the start
        last = bisect.bisect_left(word_starts, end)  # words starting before the end
        if first >= last:
            counts["dropped_no_words", entity_type] += 1
            continue
        if sentence_of_word[first] != sentence_of_word[last - 1]:
            counts["dropped_crosses_sentence", entity_type] += 1
            continue
        if word_starts[first] < start or word_ends[last - 1] > end:
            counts["expanded_to_words", entity_type] += 1
        if (entity_type, first, last) in seen:
            counts["dropped_duplicate", entity_type] += 1
            continue
        seen.add((entity_type, first, last))
        candidates.append((entity_type, first, last))

    # 4. Overlaps: greedy in policy order over word occupancy.
    def priority(candidate):
        entity_type, first, last = candidate
        length = last - first
        if overlap == "shortest":
            return (length, first, type_rank[entity_type])
        if overlap == "first":
            return (first, -length, type_rank[entity_type])
        return (-length, first, type_rank[entity_type])  # longest, clip

    occupied = [False] * len(words)
    kept: list[tuple[str, int, int]] = []
    for entity_type, first, last in sorted(candidates, key=priority):
        free = [not occupied[index] for index in range(first, last)]
        if not all(free):
            if overlap != "clip" or not any(free):
                counts["dropped_overlap", entity_type] += 1
                continue
            # Longest run of free words (earliest on ties).
            best_first, best_length, run_first = first, 0, None
            for index in range(first, last + 1):
                if index < last and not occupied[index]:
                    run_first = index if run_first is None else run_first
                elif run_first is not None:
                    if index - run_first > best_length:
                        best_first, best_length = run_first, index - run_first
                    run_first = None
            first, last = best_first, best_first + best_length
            counts["clipped_overlap", entity_type] += 1
        for index in range(first, last):
            occupied[index] = True
        kept.append((entity_type, first, last))
        counts["kept", entity_type] += 1

    # 5. IOB2 tags per sentence.
    tags = spans_to_bio(len(words), kept)
    rows = []
    for sentence_index, (first, last) in enumerate(sentence_word_ranges):
        rows.append({
            "id": f"{doc.doc_id}-{sentence_index}",
            "document_id": doc.doc_id,
            "sentence_index": sentence_index,
            "tokens": [word for word, _, _ in words[first:last]],
            "ner_tags": tags[first:last],
            "token_starts": word_starts[first:last],
            "token_ends": word_ends[first:last],
        })
    return rows, counts


def is_all_o(tags: Sequence) -> bool:
    """Whether a sentence has no entity (tags as strings, or ids with ``O`` = 0)."""
    return all(tag == "O" or tag == 0 for tag in tags)


def downsample_plain(examples, plain_ratio: float, seed: int = 42):
    """Drop all-O sentences at random until they make up ``plain_ratio`` of the result.

    ``examples`` is a list of rows (dicts with ``ner_tags``) or a ``datasets.Dataset``
    (whose ``O`` must be label id 0); the same kind comes back, in the original order.
    Sentences with entities are all kept. The number of all-O sentences kept is the one
    that brings their share nearest ``plain_ratio``; when the input has fewer, all are kept
    and the share stays below the target. Seeded and deterministic.
    """
    if not 0.0 <= plain_ratio <= 1.0:
        raise ValueError(f"plain_ratio must be in [0, 1], got {plain_ratio}")
    is_dataset = not isinstance(examples, list)
    all_tags = examples["ner_tags"] if is_dataset else [row["ner_tags"] for row in examples]
    plain = [index for index, tags in enumerate(all_tags) if is_all_o(tags)]
    num_entity_sentences = len(all_tags) - len(plain)
    if plain_ratio >= 1.0:
        keep_plain = len(plain)
    else:
        exact = plain_ratio * num_entity_sentences / (1.0 - plain_ratio)
        # floor or ceil, whichever share is nearer the target
        keep_plain = min(
            (int(exact), int(exact) + 1),
            key=lambda k: abs(k / max(k + num_entity_sentences, 1) - plain_ratio),
        )
        keep_plain = min(keep_plain, len(plain))
    dropped = set(plain) - set(random.Random(seed).sample(plain, keep_plain))
    kept_indices = [index for index in range(len(all_tags)) if index not in dropped]
    if is_dataset:
        return examples.select(kept_indices)
    return [examples[index] for index in kept_indices]


def all_o_share(examples) -> float:
    """Share of sentences without entities (0.0 for no sentences)."""
    all_tags = examples["ner_tags"] if not isinstance(examples, list) else [row["ner_tags"] for row in examples]
    return sum(is_all_o(tags) for tags in all_tags) / len(all_tags) if len(all_tags) else 0.0


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


@dataclass
class DataArguments:
    """Arguments of ``prepare_n2c2.py`` (one input mode: brat folders, CoNLL files or synthetic notes)."""

    output_dir: str = field(metadata={"help": "Where the DatasetDict, documents/, stats.json and the PNG go."})
    train_dir: Optional[str] = field(default=None, metadata={"help": "Brat folder of training .txt/.ann pairs."})
    validation_dir: Optional[str] = field(
        default=None, metadata={"help": "Brat folder used as validation (e.g. PHEE dev) instead of carving it from train."}
    )
    test_dir: Optional[str] = field(default=None, metadata={"help": "Brat folder of test documents (never down-sampled)."})
    train_file: Optional[str] = field(default=None, metadata={"help": "CoNLL token<TAB>tag training file."})
    validation_file: Optional[str] = field(default=None, metadata={"help": "CoNLL validation file."})
    test_file: Optional[str] = field(default=None, metadata={"help": "CoNLL test file."})
    synthetic: Optional[int] = field(
        default=None, metadata={"help": "Generate this many synthetic n2c2-style notes (train + test) and convert them."}
    )
    synthetic_test_notes: Optional[int] = field(
        default=None, metadata={"help": "How many of the --synthetic notes are test notes (default: one sixth)."}
    )
    write_brat: Optional[str] = field(
        default=None, metadata={"help": "With --synthetic: also keep the generated brat files here (train/, test/)."}
    )
    label_map: Optional[str] = field(
        default=None, metadata={"help": "JSON object mapping source entity types to target types; others are ignored."}
    )
    entity_types: Optional[str] = field(
        default=None, metadata={"help": "Comma-separated entity types, in tag order (overrides the default scheme)."}
    )
    validation_ratio: float = field(
        default=0.1, metadata={"help": "Share of training documents held out as validation (by document, seeded)."}
    )
    plain_ratio: float = field(
        default=0.2, metadata={"help": "Target share of all-O sentences in the *_downsampled splits."}
    )
    seed: int = field(default=42, metadata={"help": "Seed for the validation split, down-sampling and synthetic notes."})
    overlap: Literal["longest", "shortest", "first", "clip"] = field(
        default="longest", metadata={"help": "Policy for overlapping entities (see the module docstring)."}
    )
    discontinuous: Literal["span", "first", "drop"] = field(
        default="span", metadata={"help": "Policy for discontinuous entities (span = first start to last end)."}
    )
    skip_invalid: bool = field(
        default=False, metadata={"help": "Skip bad documents and annotation lines (each is reported) instead of failing."}
    )
    validate_text: bool = field(
        default=True, metadata={"help": "Check that each span's surface text matches the .txt."}
    )
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing --output_dir."})


def load_label_map(path) -> dict[str, str | None]:
    """A label map JSON object ``{source_type: target_type or null}``."""
    path = Path(path)
    try:
        label_map = json.loads(_decode_utf8(path, path.read_bytes()))
    except FileNotFoundError:
        raise BratFormatError(path, None, "label map file not found", "missing_file") from None
    except json.JSONDecodeError as error:
        raise BratFormatError(path, error.lineno, f"invalid JSON: {error.msg}", "malformed_line") from None
    if not isinstance(label_map, dict) or not all(
        isinstance(key, str) and (value is None or isinstance(value, str)) for key, value in label_map.items()
    ):
        raise BratFormatError(path, None, "a label map must be a JSON object of source type -> target type (or null)",
                              "malformed_line")
    return label_map


def resolve_labels(
    label_map: dict | None = None, entity_types: Sequence[str] | None = None, conll_types: Sequence[str] | None = None
) -> list[str]:
    """The tag list: ``entity_types`` if given; else the label map's targets (the full n2c2
    scheme when they are all n2c2 types, else in order of first appearance); else the CoNLL
    types; else the n2c2 scheme."""
    if entity_types:
        return bio_labels(entity_types)
    if label_map is not None:
        targets = list(dict.fromkeys(target for target in label_map.values() if target is not None))
        if not targets:
            raise ValueError("the label map maps no type to a target")
        return list(N2C2_LABELS) if set(targets) <= set(N2C2_ENTITY_TYPES) else bio_labels(targets)
    if conll_types is not None:
        return bio_labels(conll_types)
    return list(N2C2_LABELS)


def split_validation(documents: list, ratio: float, seed: int) -> tuple[list, list]:
    """Hold out ``round(ratio * n)`` documents (at least one when ratio > 0), seeded, by document id."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"validation_ratio must be in [0, 1), got {ratio}")
    ids = sorted(doc.doc_id for doc in documents)
    count = round(ratio * len(ids))
    if ratio > 0 and len(ids) > 1:
        count = min(max(count, 1), len(ids) - 1)
    random.Random(seed).shuffle(ids)
    held_out = set(ids[:count])
    return ([doc for doc in documents if doc.doc_id not in held_out],
            [doc for doc in documents if doc.doc_id in held_out])


def _check_output_dir(output_dir: Path, overwrite: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise FileExistsError(f"{output_dir} exists and is not a folder")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"output folder {output_dir} exists and is not empty (pass --overwrite to replace it)")


def write_atomically(output_dir, overwrite: bool, write) -> None:
    """Call ``write(tmp_dir)`` on a fresh sibling folder, then move it into place.

    A failure leaves nothing behind; an existing ``output_dir`` is only replaced with
    ``overwrite`` (the old one is removed after the new one is in place).
    """
    output_dir = Path(output_dir)
    _check_output_dir(output_dir, overwrite)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.partial-", dir=output_dir.parent))
    old_dir = None
    try:
        write(tmp_dir)
        _check_output_dir(output_dir, overwrite)  # again: it may have appeared meanwhile
        if output_dir.exists():
            old_dir = output_dir.parent / f".{output_dir.name}.old-{os.getpid()}"
            os.replace(output_dir, old_dir)
        try:
            os.replace(tmp_dir, output_dir)
        except BaseException:
            if old_dir is not None:
                os.replace(old_dir, output_dir)
                old_dir = None
            raise
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    if old_dir is not None:
        shutil.rmtree(old_dir, ignore_errors=True)


def _type_order(entity_types: Sequence[str]):
    """Sort key: label order first, then other types alphabetically."""
    return lambda entity_type: (list(entity_types).index(entity_type), "") if entity_type in entity_types else (
        len(entity_types), entity_type)


def _per_type(counts: Counter, category: str, entity_types: Sequence[str]) -> dict[str, int]:
    """``{type: n}`` for one category of a ``(category, type)`` Counter, label order first, no zeros."""
    types = list(entity_types) + sorted({t for c, t in counts if c == category and t not in entity_types})
    return {t: counts[category, t] for t in types if counts[category, t]}


def _split_stats(rows: list[dict], labels: Sequence[str], num_documents: int | None = None) -> dict:
    tag_counts = Counter(tag for row in rows for tag in row["ner_tags"])
    all_o = sum(is_all_o(row["ner_tags"]) for row in rows)
    return {
        "documents": num_documents if num_documents is not None else len({row["document_id"] for row in rows}),
        "sentences": len(rows),
        "tokens": sum(len(row["tokens"]) for row in rows),
        "entities": {t: tag_counts[f"B-{t}"] for t in entity_types_of(labels)},
        "all_o_sentences": all_o,
        "all_o_share": round(all_o / len(rows), 6) if rows else 0.0,
        "tag_counts": {label: tag_counts[label] for label in labels},
    }


def plot_label_distribution(stats: dict, path, synthetic: bool = False) -> None:
    """The paper's Figure 3: tag counts and all-O share of train before and after down-sampling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = stats["labels"]
    splits = [name for name in ("train", "train_downsampled") if name in stats["splits"]]
    figure, (tags_axis, share_axis) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / len(splits)
    for offset, name in enumerate(splits):
        counts = [max(stats["splits"][name]["tag_counts"][label], 0) for label in labels]
        positions = [index + offset * width for index in range(len(labels))]
        tags_axis.bar(positions, counts, width=width, label=name)
    tags_axis.set_xticks([index + width * (len(splits) - 1) / 2 for index in range(len(labels))])
    tags_axis.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    tags_axis.set_yscale("log")
    tags_axis.set_ylabel("tokens (log scale)")
    tags_axis.legend()
    tags_axis.set_title("Tag counts, train before / after down-sampling")
    for offset, name in enumerate(s for s in ("train", "train_downsampled", "validation", "validation_downsampled")
                                  if s in stats["splits"]):
        share = stats["splits"][name]["all_o_share"]
        share_axis.bar(offset, share, color="C0" if "downsampled" not in name else "C1")
        share_axis.text(offset, share, f"{share:.2f}", ha="center", va="bottom", fontsize=8)
    share_axis.axhline(stats["plain_ratio"], color="gray", linestyle="--", linewidth=1)
    names = [s for s in ("train", "train_downsampled", "validation", "validation_downsampled") if s in stats["splits"]]
    share_axis.set_xticks(range(len(names)))
    share_axis.set_xticklabels([n.replace("_downsampled", "\ndown-sampled") for n in names], fontsize=8)
    share_axis.set_ylim(0, 1)
    share_axis.set_title("All-O sentence share")
    if synthetic:
        figure.suptitle("SYNTHETIC data (not real patient notes)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def parse_args(argv: Sequence[str] | None = None) -> DataArguments:
    from transformers import HfArgumentParser

    parser = HfArgumentParser(DataArguments, description=__doc__.split("\n\n")[0])
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 1 and argv[0].endswith(".json"):
        (args,) = parser.parse_json_file(argv[0])
    else:
        (args,) = parser.parse_args_into_dataclasses(args=argv)
    return args


def _read_inputs(args: DataArguments, label_map, entity_types, synthetic_dir: Path | None):
    """Documents per split (``train``, maybe ``validation``, maybe ``test``) and the skipped problems."""
    documents: dict[str, list[BratDocument]] = {}
    problems: list[BratFormatError] = []
    if args.train_file:
        for split, path in (("train", args.train_file), ("validation", args.validation_file),
                            ("test", args.test_file)):
            if path:
                documents[split] = read_conll_file(path, label_map=label_map, entity_types=entity_types)
        return documents, problems
    if synthetic_dir is not None:
        folders = {"train": synthetic_dir / "train", "test": synthetic_dir / "test"}
    else:
        folders = {"train": args.train_dir, "validation": args.validation_dir, "test": args.test_dir}
    for split, folder in folders.items():
        if folder is None or (synthetic_dir is not None and not Path(folder).exists()):
            continue
        split_documents, split_problems = read_brat_folder(
            folder, label_map=label_map, entity_types=entity_types, skip_invalid=args.skip_invalid,
            validate_text=args.validate_text, progress=None,
        )
        documents[split] = split_documents
        problems.extend(split_problems)
    return documents, problems


def main(argv: Sequence[str] | None = None) -> dict:
    """Build the dataset and return the statistics written to ``stats.json``."""
    args = parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    modes = [bool(args.train_dir), bool(args.train_file), args.synthetic is not None]
    if sum(modes) != 1:
        raise ValueError("give exactly one input: --train_dir (brat), --train_file (CoNLL) or --synthetic N")
    if args.synthetic is not None and (args.label_map or args.entity_types):
        raise ValueError("--synthetic notes use the n2c2 scheme: drop --label_map / --entity_types")
    if args.write_brat and args.synthetic is None:
        raise ValueError("--write_brat only applies to --synthetic")
    if not 0.0 <= args.plain_ratio <= 1.0:
        raise ValueError(f"--plain_ratio must be in [0, 1], got {args.plain_ratio}")
    output_dir = Path(args.output_dir)
    _check_output_dir(output_dir, args.overwrite)  # fail before the work, not after

    label_map = load_label_map(args.label_map) if args.label_map else None
    requested_types = [t for t in re.split(r"[,\s]+", args.entity_types or "") if t] or None
    conll_types = None
    if args.train_file and not requested_types:
        conll_paths = [p for p in (args.train_file, args.validation_file, args.test_file) if p]
        for path in conll_paths:
            if not Path(path).is_file():
                raise BratFormatError(path, None, "no such file", "missing_file")
        conll_types = conll_entity_types(conll_paths)
    labels = resolve_labels(label_map, requested_types, conll_types)
    entity_types = entity_types_of(labels)

    with tempfile.TemporaryDirectory(prefix="synthetic-brat-") as scratch:
        synthetic_dir = None
        if args.synthetic is not None:
            from synthetic_n2c2 import write_synthetic_corpus

            num_test = args.synthetic_test_notes if args.synthetic_test_notes is not None else round(args.synthetic / 6)
            if not 0 <= num_test < args.synthetic:
                raise ValueError(f"--synthetic_test_notes must be in [0, {args.synthetic}), got {num_test}")
            synthetic_dir = Path(args.write_brat) if args.write_brat else Path(scratch)
            write_synthetic_corpus(synthetic_dir, args.synthetic - num_test, num_test, seed=args.seed,
                                   overwrite=args.overwrite)
        documents, problems = _read_inputs(args, label_map, entity_types, synthetic_dir)

    if "validation" not in documents:
        documents["train"], documents["validation"] = split_validation(
            documents["train"], args.validation_ratio, args.seed)
        validation_source = f"{args.validation_ratio:g} of the training documents (seed {args.seed})"
    else:
        validation_source = "given (--validation_dir / --validation_file)"
    for error in problems:
        logger.warning("skipped %s: %s", error.skipped, error)

    # Convert every document; counts are keyed by (category, type) per split.
    from tqdm.auto import tqdm

    rows: dict[str, list[dict]] = {}
    counts: dict[str, Counter] = {}
    for split in ("train", "validation", "test"):
        if split not in documents:
            continue
        rows[split], counts[split] = [], Counter()
        for doc in tqdm(documents[split], desc=f"converting {split}", unit="doc", disable=None):
            doc_rows, doc_counts = document_to_examples(doc, labels, overlap=args.overlap,
                                                        discontinuous=args.discontinuous)
            rows[split].extend(doc_rows)
            counts[split].update(doc_counts)
    for split in ("train", "validation"):
        rows[f"{split}_downsampled"] = downsample_plain(rows[split], args.plain_ratio, args.seed)

    stats = _build_stats(args, labels, documents, rows, counts, problems, validation_source)

    def write(tmp_dir: Path) -> None:
        from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence as DatasetSequence, Value

        features = Features({
            "id": Value("string"),
            "document_id": Value("string"),
            "sentence_index": Value("int32"),
            "tokens": DatasetSequence(Value("string")),
            "ner_tags": DatasetSequence(ClassLabel(names=list(labels))),
            "token_starts": DatasetSequence(Value("int32")),
            "token_ends": DatasetSequence(Value("int32")),
        })
        dataset = DatasetDict({
            split: Dataset.from_dict({name: [row[name] for row in split_rows] for name in features}, features=features)
            for split, split_rows in rows.items()
        })
        # An empty split saved with zero shards cannot be loaded back: give it one.
        dataset.save_to_disk(str(tmp_dir), num_shards={split: 1 for split, r in rows.items() if not r})
        split_of = [(doc, split) for split in ("train", "validation", "test") for doc in documents.get(split, [])]
        Dataset.from_dict({
            "document_id": [doc.doc_id for doc, _ in split_of],
            "split": [split for _, split in split_of],
            "text": [doc.text for doc, _ in split_of],
        }, features=Features({"document_id": Value("string"), "split": Value("string"), "text": Value("string")})
        ).save_to_disk(str(tmp_dir / "documents"))
        (tmp_dir / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
        plot_label_distribution(stats, tmp_dir / "label_distribution.png", synthetic=stats["synthetic"])

    write_atomically(output_dir, args.overwrite, write)
    print(format_summary(stats, output_dir))
    return stats


def _build_stats(args, labels, documents, rows, counts, problems, validation_source) -> dict:
    entity_types = entity_types_of(labels)
    splits = {name: _split_stats(split_rows, labels, len(documents[name]) if name in documents else None)
              for name, split_rows in rows.items()}
    total = sum(counts.values(), Counter())
    source_entities = {split: _per_type(c, "source", entity_types) for split, c in counts.items()}
    dropped_total: Counter = Counter()
    changes = {}
    for split, split_counts in counts.items():
        dropped = Counter()
        for category in DROP_CATEGORIES:
            for entity_type, number in _per_type(split_counts, category, entity_types).items():
                dropped[entity_type] += number
        dropped_total.update(dropped)
        changes[split] = {"dropped": dict(dropped)}
        changes[split].update({category: _per_type(split_counts, category, entity_types)
                               for category in DROP_CATEGORIES + CHANGE_CATEGORIES})
    # The guarantee: every source entity is a B- tag or counted as dropped.
    for split, split_counts in counts.items():
        for entity_type in {t for _, t in split_counts}:
            b_tags = splits[split]["entities"].get(entity_type, 0)
            dropped = changes[split]["dropped"].get(entity_type, 0)
            if b_tags + dropped != split_counts["source", entity_type]:
                raise RuntimeError(f"entity bookkeeping error in {split} for {entity_type}: {b_tags} B- tags + "
                                   f"{dropped} dropped != {split_counts['source', entity_type]} read")
    downsampling = {}
    for split in ("train", "validation"):
        before, after = splits[split], splits[f"{split}_downsampled"]
        downsampling[split] = {
            "sentences_before": before["sentences"],
            "sentences_after": after["sentences"],
            "all_o_removed": before["sentences"] - after["sentences"],
            "all_o_share_before": before["all_o_share"],
            "all_o_share_after": after["all_o_share"],
            "target_reached": abs(after["all_o_share"] - args.plain_ratio) <= 0.02,
        }
        if after["sentences"] and before["all_o_share"] < args.plain_ratio - 0.02:
            logger.warning("%s: the all-O share cannot reach %.2f by removing all-O sentences (it is %.4f before "
                           "down-sampling): all sentences kept", split, args.plain_ratio, before["all_o_share"])
        elif after["sentences"] and not downsampling[split]["target_reached"]:
            logger.warning("%s: too few sentences to reach an all-O share of %.2f; nearest is %.4f",
                           split, args.plain_ratio, after["all_o_share"])
    unmapped = {split: dict(sorted(sum((doc.unmapped_types for doc in docs), Counter()).items()))
                for split, docs in documents.items()}
    repaired = {split: dict(sorted(sum((doc.repaired_tags for doc in docs), Counter()).items()))
                for split, docs in documents.items()}
    input_format = "synthetic" if args.synthetic is not None else ("conll" if args.train_file else "brat")
    stats = {
        "synthetic": args.synthetic is not None,
        "input": {
            "format": input_format,
            "train": args.train_dir or args.train_file,
            "validation": args.validation_dir or args.validation_file,
            "test": args.test_dir or args.test_file,
            "label_map": args.label_map,
            "synthetic_notes": args.synthetic,
        },
        "labels": list(labels),
        "entity_types": entity_types,
        "seed": args.seed,
        "validation": validation_source,
        "plain_ratio": args.plain_ratio,
        "policies": {
            "discontinuous": args.discontinuous,
            "overlap": args.overlap,
            "word_boundaries": "expand to whole words",
            "sentences": "newline-aware, never inside an entity" if input_format != "conll" else "as in the file",
        },
        "splits": splits,
        "downsampling": downsampling,
        "source_entities": source_entities,
        "dropped": {t: dropped_total[t] for t in sorted(dropped_total, key=_type_order(entity_types)) if dropped_total[t]},
        "entity_changes": changes,
        "unmapped_types": unmapped,
        "skipped_invalid": {
            "documents": sum(error.skipped == "document" for error in problems),
            "annotations": sum(error.skipped == "annotation" for error in problems),
            "by_kind": dict(sorted(Counter(error.kind for error in problems).items())),
        },
        "totals": {"source_entities": _per_type(total, "source", entity_types),
                   "kept_entities": _per_type(total, "kept", entity_types)},
    }
    if any(repaired.values()):
        stats["repaired_i_tags"] = repaired
    return stats


def format_summary(stats: dict, output_dir) -> str:
    """A short, counts-only summary of the build."""
    lines = [f"Wrote {output_dir}" + ("  [SYNTHETIC data, not real patient notes]" if stats["synthetic"] else "")]
    lines.append(f"{'split':<24}{'docs':>7}{'sentences':>11}{'tokens':>10}{'entities':>10}{'all-O':>8}")
    for name, split in stats["splits"].items():
        lines.append(f"{name:<24}{split['documents']:>7}{split['sentences']:>11}{split['tokens']:>10}"
                     f"{sum(split['entities'].values()):>10}{split['all_o_share']:>8.3f}")
    dropped = ", ".join(f"{t} {n}" for t, n in stats["dropped"].items()) or "none"
    lines.append(f"dropped entities (overlap={stats['policies']['overlap']}, "
                 f"discontinuous={stats['policies']['discontinuous']}): {dropped}")
    unmapped = sum((Counter(u) for u in stats["unmapped_types"].values()), Counter())
    if unmapped:
        lines.append(f"ignored by the label map: {sum(unmapped.values())} entities of {len(unmapped)} types")
    skipped = stats["skipped_invalid"]
    if skipped["documents"] or skipped["annotations"]:
        lines.append(f"skipped as invalid: {skipped['documents']} documents, {skipped['annotations']} annotation lines")
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        main()
    except (BratFormatError, FileExistsError, ValueError) as error:
        print(f"{Path(sys.argv[0]).name}: error: {error}", file=sys.stderr)
        sys.exit(1)
