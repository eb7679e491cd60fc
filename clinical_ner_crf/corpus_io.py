"""Corpus I/O: documents and entities, brat and CoNLL in, brat and prediction records out.

The one home of how the project reads and writes files (standard library and tqdm, beside
``tagging.py``):

- documents (:class:`BratDocument`, :class:`BratEntity`, :class:`BratRelation`) and the readers of each
  input format, behind one table (:data:`CORPUS_FORMATS`): brat standoff folders and CoNLL
  ``token<TAB>tag`` files; errors name the file, the line and the reason (:class:`BratFormatError`);
- the brat writer (:func:`write_brat_ann`, entities and relations), exact to the character;
- the one atomic writer (:func:`atomic_open`; :func:`write_json_atomically` and
  :func:`write_folder_atomically` are built the same way): an interrupted run never leaves a
  truncated file;
- the word-level prediction records (:func:`prediction_record`, :func:`read_predictions`);
- the names of the files the scripts write.
"""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import os
import re
import shutil
import tempfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from .folder_safety import claim_whole_folder, irregular_reason, read_regular_file, refuse_foreign_files
from .tagging import N2C2_ENTITY_TYPES, N2C2_RELATION_TYPES, bio_to_spans, is_tag, relation_argument_types

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# File names (one home; every script imports them)
# ---------------------------------------------------------------------------

# prepare_n2c2.py output, beside the DatasetDict splits
DOCUMENTS_DIRNAME = "documents"
STATS_FILE = "stats.json"
LABEL_DISTRIBUTION_FILE = "label_distribution.png"
# run_ner_crf.py output (a run folder)
RUN_INFO_FILE = "run_info.json"
RUN_ARGS_FILE = "run_args.json"  # in each checkpoint, written last: what the run was (and that it is complete)
PRETRAINING_DATA_FILE = "pretraining_data.json"  # pretrain_mlm.py: counts and a hash of the text seen
ALL_RESULTS_FILE = "all_results.json"
PREDICTIONS_DIRNAME = "predictions"  # never uploaded: it holds note text
TEST_PREDICTIONS_FILE = "test_predictions.jsonl"
TEST_RELATIONS_FILE = "test_relations.jsonl"  # run_re.py: one predicted link per line
BRAT_DIRNAME = "brat"
# annotate_notes.py output
ENTITIES_FILE = "entities.jsonl"
WORD_PREDICTIONS_FILE = "predictions.jsonl"
MEDICATIONS_FILE = "medications.jsonl"  # with a relation model: one record per drug and its attributes
SUMMARY_FILE = "summary.json"
# Several annotate_notes.py processes: each appends to its own hidden part of each JSONL file (and logs the
# notes it wrote, names only, in parts of ANNOTATED_LOG_FILE); process 0 merges them (process_part_name).
ANNOTATED_LOG_FILE = "annotated.jsonl"
# export_onnx.py output (an ONNX folder beside the config and tokenizer)
ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"  # --quantize int8
CRF_FILE = "crf.json"  # the CRF's scores and constraints, decoded in numpy
EXPORT_INFO_FILE = "onnx_export.json"
QUANTIZATION_FILE = "quantization.json"
# evaluate_ablations.py output
REPORT_JSON_FILE = "report.json"
REPORT_MARKDOWN_FILE = "report.md"


def run_predictions_path(run_dir) -> Path:
    """Where a run folder keeps its word-level test predictions."""
    return Path(run_dir) / PREDICTIONS_DIRNAME / TEST_PREDICTIONS_FILE


# ---------------------------------------------------------------------------
# Documents and the brat reader
# ---------------------------------------------------------------------------


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


_IGNORED_LINE_PREFIXES = ("A", "M", "N", "*", "#")
_SPANS_PATTERN = re.compile(r"(\S+) (\d+ \d+(?:;\d+ \d+)*)")
# A relation argument or event trigger: "Arg1:T5", "Drug:T3" (any role name).
_ARGUMENT_PATTERN = re.compile(r"[^\s:]+:([^\s:]+)")


def _decode_utf8(path: Path, raw: bytes) -> str:
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
    return _decode_utf8(path, read_regular_file(path))


# Messages about the user's files give offsets, lengths and a hash of any text, never the text itself,
# unless a debug switch allows it (prepare_n2c2.py --show_text_in_messages).
SHOW_TEXT_IN_MESSAGES = False


def describe_text(text: str, limit: int = 80) -> str:
    """Text for a message: its length and a short hash, or (debug switch on) the text itself."""
    if SHOW_TEXT_IN_MESSAGES:
        return repr(text if len(text) <= limit else text[: limit - 3] + "...")
    return f"<{len(text)} characters, sha256 {hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]}>"


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


def unmapped_relation_key(source_type: str, argument_types: Sequence[str | None]) -> str:
    """How an unmapped relation is counted: its name and its arguments' source entity types, ``MODIFY Dose>Drug``."""
    return f"{source_type} {argument_types[0] or '?'}>{argument_types[1] or '?'}"


def _resolve_relation_type(source_type: str, argument_types: Sequence[str | None], relation_map: dict | None,
                           label_map: dict | None) -> tuple[str | None, str | None]:
    """The dataset type of a source relation, as ``(target_type, error)`` (see :func:`read_brat_document`): a relation
    map's rule for the name is a target type, or, for corpora that give every link one name (``MODIFY``), a table
    keyed by the arguments' source types (``{"Dosage>Medication": "Dosage-Drug"}``). ``None``: not mapped."""
    if relation_map is None and label_map is None:
        if source_type not in N2C2_RELATION_TYPES:
            return None, (f"unknown relation type {source_type!r} (expected one of {', '.join(N2C2_RELATION_TYPES)}; "
                          f"use --relation_map for other corpora)")
        return source_type, None
    # A label map means another scheme: its relations need a relation map of their own, else none is kept.
    rule = relation_map.get(source_type) if relation_map is not None else None
    if isinstance(rule, dict):
        rule = rule.get(f"{argument_types[0]}>{argument_types[1]}")
    return rule, None


# Relations whose arguments cannot be right (BratFormatError kinds; --skip_invalid drops and counts them by kind): an
# entity related to itself, and, for a relation type of the n2c2 ``Attribute-Drug`` shape
# (tagging.relation_argument_types, after mapping), the drug as Arg1 and the attribute as Arg2, or an argument of
# another entity type.
INVALID_RELATION_KINDS = ("self_relation", "reversed_relation", "relation_argument_type")


def relation_argument_problem(relation_id: str, relation_type: str, arg1: BratEntity, arg2: BratEntity,
                              known_types: Iterable[str] | None = None) -> tuple[str, str] | None:
    """Why a relation's arguments cannot be right, as ``(kind, reason)`` (kinds: :data:`INVALID_RELATION_KINDS`), or
    ``None``. The types are checked only where the relation type names them (``Strength-Drug``: Arg1 a Strength, Arg2 a
    Drug) and, given ``known_types``, both are entity types of the corpus: other schemes' relations are not judged.
    The reason names ids and types only, never text."""
    if arg1.id == arg2.id:
        return "self_relation", (f"relation {relation_id}: Arg1 and Arg2 are the same entity {arg1.id} (a relation "
                                 f"links two entities); fix or remove the line")
    expected = relation_argument_types(relation_type)
    if expected is None or (known_types is not None and not set(expected) <= set(known_types)):
        return None
    attribute, drug = expected
    if (arg1.type, arg2.type) == (drug, attribute):
        return "reversed_relation", (f"relation {relation_id}: arguments reversed: Arg1 {arg1.id} is the {drug} and "
                                     f"Arg2 {arg2.id} the {attribute}, but in {relation_type} Arg1 is the {attribute} "
                                     f"and Arg2 the {drug}; swap them")
    for role, entity, wanted in (("Arg1", arg1, attribute), ("Arg2", arg2, drug)):
        if entity.type != wanted:
            return "relation_argument_type", (f"relation {relation_id}: {role} {entity.id} is a {entity.type}, but "
                                              f"{relation_type} links a {attribute} (Arg1) to a {drug} (Arg2); fix the "
                                              f"argument or the relation type")
    return None


def read_brat_document(
    txt_path,
    ann_path=None,
    *,
    label_map: dict[str, str | None] | None = None,
    relation_map: dict[str, str | None] | None = None,
    entity_types: Sequence[str] | None = None,
    validate_text: bool = True,
    problems: list[BratFormatError] | None = None,
    check_relations: bool = True,
) -> BratDocument:
    """Read one ``.txt``/``.ann`` pair: ``T`` lines (entities), ``R`` lines (relations) and ``E`` lines
    (events, read only as relation arguments: an event stands for its trigger entity).

    ``label_map`` maps source types to target types; types it does not map (or maps to
    ``None``) are ignored and counted in ``unmapped_types``. Without a label map every type
    must be in ``entity_types`` (default: the nine n2c2 types). ``relation_map`` does the same
    for relation types (``unmapped_relation_types``); without one, relation types must be the
    n2c2 ones, unless a label map is given (another scheme): then every relation is ignored and
    counted. A relation's two arguments (brat's ``Arg1:T5 Arg2:T3``; other role names are taken
    in the same order) must be entities of the file that were read, and (``check_relations``) two entities that
    the relation type allows (:func:`relation_argument_problem`: no entity related to itself, and an n2c2-shaped
    ``Attribute-Drug`` type with the attribute as Arg1 and the drug as Arg2). With ``validate_text`` each
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
    ann_text = _decode_utf8(ann_path, read_regular_file(ann_path))

    entities: list[BratEntity] = []
    unmapped: Counter = Counter()
    first_line_of_id: dict[str, int] = {}
    not_read: set[str] = set()  # T ids of the file that are not entities (bad line, unmapped type)
    ignored: set[str] = set()  # ... of which those of a type the label map leaves out
    source_types: dict[str, str] = {}  # T id -> its type in the file (before any label map)
    triggers: dict[str, str] = {}  # event id -> its trigger's T id
    relation_lines: list[tuple[int, str, str, list[str]]] = []  # resolved once every T and E line is known

    def new_id(line_number: int, annotation_id: str) -> bool:
        if annotation_id in first_line_of_id:
            problem(line_number, f"duplicate id {annotation_id} (first on line {first_line_of_id[annotation_id]})",
                    "duplicate_id")
            return False
        first_line_of_id[annotation_id] = line_number
        return True

    def problem(line_number: int, reason: str, kind: str) -> None:
        error = BratFormatError(ann_path, line_number, reason, kind, skipped="annotation")
        if problems is None:
            error.skipped = None
            raise error
        problems.append(error)

    for line_number, line in enumerate(split_lines(ann_text), start=1):
        if not line.strip():
            continue
        if line.startswith(_IGNORED_LINE_PREFIXES):
            continue
        if line.startswith(("R", "E")):
            is_relation = line.startswith("R")
            fields = line.split("\t")  # a third field (brat may write an empty one) is ignored
            parts = fields[1].split() if len(fields) >= 2 else []
            arguments = [_ARGUMENT_PATTERN.fullmatch(part) for part in (parts[1:] if is_relation else parts)]
            if not fields[0].strip() or not arguments or not all(arguments) or (is_relation and len(arguments) != 2):
                expected = "ID<TAB>TYPE Arg1:ID Arg2:ID" if is_relation else "ID<TAB>TYPE:TRIGGER_ID [ROLE:ID ...]"
                problem(line_number, f"malformed {line[0]} line: expected '{expected}', got {describe_text(line)}",
                        "malformed_line")
            elif new_id(line_number, fields[0]):
                if is_relation:
                    relation_lines.append((line_number, fields[0], parts[0], [a.group(1) for a in arguments]))
                else:
                    triggers[fields[0]] = arguments[0].group(1)
            continue
        if not line.startswith("T"):
            problem(line_number, f"malformed line: expected an annotation id such as T1, R1, E1, A1 or #1, "
                                 f"got {describe_text(line)}", "malformed_line")
            continue
        fields = line.split("\t", 2)
        match = _SPANS_PATTERN.fullmatch(fields[1]) if len(fields) >= 2 else None
        if match is None or (validate_text and len(fields) < 3) or not fields[0].strip():
            problem(line_number, f"malformed T line: expected 'ID<TAB>TYPE START END[;START END...]<TAB>TEXT', "
                                 f"got {describe_text(line)}", "malformed_line")
            continue
        entity_id, source_type, offsets = fields[0], match.group(1), match.group(2)
        surface = fields[2] if len(fields) > 2 else ""
        if not new_id(line_number, entity_id):
            continue
        source_types[entity_id] = source_type
        not_read.add(entity_id)  # until it is read
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
            problem(line_number, f"span text {describe_text(surface)} does not match the .txt at "
                                 f"{offsets.replace(' ', '-')}, which holds {describe_text(actual)}", "text_mismatch")
            continue
        target_type, error = _resolve_type(source_type, label_map, allowed_types, unmapped)
        if error:
            problem(line_number, error, "unknown_type")
        if target_type is None:
            if not error:
                ignored.add(entity_id)  # a type the label map leaves out: its relations are counted, not errors
            continue
        not_read.discard(entity_id)
        entities.append(BratEntity(entity_id, target_type, spans, surface or actual, line_number))

    relations: list[BratRelation] = []
    unmapped_relations: Counter = Counter()
    entity_by_id = {entity.id: entity for entity in entities}
    entity_ids = set(entity_by_id)
    for line_number, relation_id, source_type, arguments in relation_lines:
        resolved = [triggers.get(argument, argument) for argument in arguments]
        argument_types = [source_types.get(entity_id) for entity_id in resolved]
        target_type, error = _resolve_relation_type(source_type, argument_types, relation_map, label_map)
        if error:
            problem(line_number, error, "unknown_type")
        if target_type is None or any(entity_id in ignored for entity_id in resolved):
            # Not mapped (by name, or by its arguments' types), or an argument of a type the label map leaves out:
            # counted by name and argument types, never an error and never kept with a wrong type.
            if not error:
                unmapped_relations[unmapped_relation_key(source_type, argument_types)] += 1
            continue
        bad = [(role, argument, entity_id) for role, argument, entity_id in zip(("Arg1", "Arg2"), arguments, resolved)
               if entity_id not in entity_ids]
        if bad:
            role, argument, entity_id = bad[0]
            what = f"{entity_id} (the trigger of event {argument})" if entity_id != argument else entity_id
            why = ("an entity that was not read (a bad line)" if entity_id in not_read
                   else "not an entity or event of this file")
            problem(line_number, f"relation {relation_id}: {role} {what} is {why}", "unknown_argument")
            continue
        invalid = relation_argument_problem(relation_id, target_type, entity_by_id[resolved[0]],
                                            entity_by_id[resolved[1]], allowed_types) if check_relations else None
        if invalid:
            problem(line_number, invalid[1], invalid[0])
            continue
        relations.append(BratRelation(relation_id, target_type, resolved[0], resolved[1], line_number))
    return BratDocument(txt_path.stem, text, entities, unmapped_types=unmapped, relations=relations,
                        unmapped_relation_types=unmapped_relations)


def _brat_files(folder: Path) -> tuple[dict[str, Path], dict[str, Path], Counter, list[BratFormatError]]:
    """The ``.txt`` and ``.ann`` files of a folder by stem (suffixes in any case), what else was seen
    (counts by kind), and the entries that look like notes but cannot be (reported, never dropped silently)."""
    texts: dict[str, Path] = {}
    annotations: dict[str, Path] = {}
    seen: Counter = Counter()
    problems: list[BratFormatError] = []
    for path in sorted(folder.iterdir()):
        suffix = path.suffix.lower()
        if suffix not in (".txt", ".ann"):
            seen["other"] += 1
            continue
        if path.name.startswith("."):
            seen["hidden"] += 1  # e.g. editor backups and temporary files: not notes
            continue
        if path.is_symlink() and not path.exists():
            problems.append(BratFormatError(path, None, "a symbolic link whose target does not exist", "dangling_link"))
            continue
        if path.is_dir():
            problems.append(BratFormatError(path, None, f"a folder named like a {suffix} file, not a file", "not_a_file"))
            continue
        irregular = irregular_reason(path)
        if irregular:  # a FIFO, socket or device: reported, never opened (reading a FIFO would wait forever)
            problems.append(BratFormatError(path, None, f"{irregular}; only regular files are read", "not_a_file"))
            continue
        if path.is_symlink() and folder.resolve() not in path.resolve().parents:
            seen["links_outside_folder"] += 1  # followed, and reported by count
        files = texts if suffix == ".txt" else annotations
        if path.stem in files:
            problems.append(BratFormatError(path, None, f"a second {suffix} file for {path.stem} (also "
                                                        f"{files[path.stem].name})", "duplicate_file"))
            continue
        files[path.stem] = path
        seen[suffix[1:]] += 1
    return texts, annotations, seen, problems


def read_brat_folder(
    folder,
    *,
    label_map: dict[str, str | None] | None = None,
    relation_map: dict[str, str | None] | None = None,
    entity_types: Sequence[str] | None = None,
    skip_invalid: bool = False,
    validate_text: bool = True,
    require_ann: bool = True,
    progress: bool | None = False,
) -> tuple[list[BratDocument], list[BratFormatError]]:
    """Read every ``.txt``/``.ann`` pair of a folder (not recursive), sorted by file name.

    Suffixes match in any case (``NOTE.TXT`` + ``NOTE.ANN``). Hidden files and other files are
    counted and logged, not read; a dangling link or a folder named ``x.txt`` is a problem naming
    what it is; a link leading outside the folder is followed and counted. Returns
    ``(documents, problems)``. ``problems`` is empty unless ``skip_invalid``: then each bad
    document or annotation line (an unreadable file included) is skipped and reported there as a
    :class:`BratFormatError` whose ``skipped`` is ``"document"`` or ``"annotation"``. With
    ``require_ann=False`` a ``.txt`` without ``.ann`` is an unannotated document. ``progress=None``
    shows a tqdm bar on a terminal.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BratFormatError(folder, None, "not a folder (expected brat .txt/.ann files)", "not_a_folder")
    texts, annotations, seen, entry_problems = _brat_files(folder)
    if not texts and not annotations and not entry_problems:
        raise BratFormatError(folder, None, "no .txt or .ann files found", "empty_folder")
    _check_types(label_map, entity_types)  # fail on a bad label map before reading anything
    if seen["hidden"] or seen["other"]:
        logger.info("%s: %d hidden and %d other files are not notes and were not read", folder, seen["hidden"],
                    seen["other"])
    if seen["links_outside_folder"]:
        logger.warning("%s: %d files are links to files outside the folder (followed)", folder,
                       seen["links_outside_folder"])

    documents: list[BratDocument] = []
    problems: list[BratFormatError] = []
    for error in entry_problems:
        if not skip_invalid:
            raise error
        error.skipped = "document"
        problems.append(error)
    from tqdm.auto import tqdm

    stems = sorted(set(texts) | set(annotations))
    for stem in tqdm(stems, desc=f"reading {folder.name}", unit="doc", disable=None if progress is None else not progress):
        txt_path = texts.get(stem, folder / f"{stem}.txt")
        ann_path = annotations.get(stem, folder / f"{stem}.ann")
        try:
            if stem not in texts:
                raise BratFormatError(ann_path, None, f"no matching .txt file (expected {txt_path.name})", "missing_txt")
            if stem not in annotations and not require_ann:
                documents.append(BratDocument(stem, read_text(txt_path), []))
                continue
            documents.append(read_brat_document(
                txt_path, ann_path, label_map=label_map, relation_map=relation_map, entity_types=entity_types,
                validate_text=validate_text, problems=problems if skip_invalid else None,
            ))
        except OSError as error:  # unreadable (permissions, I/O): a bad file like any other
            failed = Path(error.filename) if error.filename else txt_path
            error = BratFormatError(failed, None, f"cannot be read ({error.strerror or type(error).__name__})",
                                    "unreadable")
            if not skip_invalid:
                raise error from None
            error.skipped = "document"
            problems.append(error)
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
    path, entities: Iterable[tuple[str, Sequence[tuple[int, int]]]], text: str, *,
    relations: Iterable[tuple[str, int, int]] = (), overwrite: bool = False, mode: int | None = None,
) -> Path:
    """Write ``T1..Tn`` lines for ``(type, fragments)`` pairs, then ``R1..Rm`` lines for ``(type, arg1, arg2)``
    relations (0-based indices into ``entities``: ``R1<TAB>Strength-Drug Arg1:T5 Arg2:T3``); atomic, refusing
    to overwrite by default. ``mode``: the file's permission bits (default: the usual ones; see
    :func:`note_file_mode`)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)")
    entities = list(entities)
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
    for number, (relation_type, *arguments) in enumerate(relations, start=1):
        try:
            indices = [operator.index(argument) for argument in arguments]  # numpy integers too
        except TypeError:
            indices = []
        if not (isinstance(relation_type, str) and relation_type.split() == [relation_type] and len(indices) == 2
                and all(0 <= index < len(entities) for index in indices)):
            raise ValueError(f"relation {number} ({relation_type!r}, {arguments}) needs a type without whitespace and "
                             f"two indices into the {len(entities)} entities")
        lines.append(f"R{number}\t{relation_type} Arg1:T{indices[0] + 1} Arg2:T{indices[1] + 1}\n")
    with atomic_open(path, newline="\n", mode=mode) as handle:
        handle.writelines(lines)
    return path


def usual_file_mode() -> int:
    """0666 less the umask: what a new file gets."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def note_file_mode(sources: Iterable) -> int:
    """Permission bits for a file holding text from the ``sources`` notes (the permissions policy,
    docs/architecture.md): the usual mode, readable by no class of users (group, others) that cannot
    read every source. The owner always keeps read and write."""
    mode = usual_file_mode()
    for source in sources:
        readable = os.stat(source).st_mode & 0o444
        mode &= readable | (readable >> 1) | 0o600  # r and w only for the classes that may read the source
    return mode


def folder_mode(file_mode: int) -> int:
    """A folder's mode for files of ``file_mode``: searchable by those who may read them."""
    return file_mode | ((file_mode & 0o444) >> 2)


def set_tree_mode(folder, file_mode: int) -> None:
    """Give every file under ``folder`` ``file_mode`` and every folder (``folder`` too) its :func:`folder_mode`."""
    folder = Path(folder)
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, folder_mode(file_mode) if path.is_dir() else file_mode)


@contextmanager
def atomic_open(path, encoding: str = "utf-8", newline: str | None = None, mode: int | None = None):
    """Open ``path`` for writing text through a temporary sibling file that replaces it only when
    the block succeeds: an interrupted run never leaves a truncated file (a killed one may leave the
    hidden ``.NAME.*.tmp`` sibling, which :func:`remove_stale_temporary_files` clears). The result gets
    ``mode``, by default the usual permissions (0666 less the umask), not the owner-only ones of a
    temporary file; files holding note text pass :func:`note_file_mode`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding=encoding, newline=newline) as handle:
            yield handle
        os.chmod(tmp_name, usual_file_mode() if mode is None else mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


TEMPORARY_SUFFIX = ".tmp"


def process_part_name(name: str, process_index: int) -> str:
    """The hidden part of the output file ``name`` that process ``process_index`` of a multi-process
    ``annotate_notes.py`` run appends to; merged into ``name`` when the run ends (or by the next run)."""
    return f".{name}.process-{process_index:05d}"


def process_parts(folder, name: str) -> list[Path]:
    """The parts of ``name`` in ``folder`` (any number of processes), in process order."""
    pattern = re.compile(re.escape(f".{name}.process-") + r"\d{5,}")
    return sorted(path for path in Path(folder).glob(f".{name}.process-*") if pattern.fullmatch(path.name))


def remove_stale_temporary_files(folder, owns: Callable[[str], bool]) -> int:
    """Remove the temporary files :func:`atomic_open` leaves when a run is killed (they may hold note text), of the
    files ``owns`` says the toolkit writes there (``folder_safety.Manifest.owns``): a temporary-looking file of any
    other name is not ours and stays."""
    removed = 0
    for path in Path(folder).glob(f".*{TEMPORARY_SUFFIX}"):
        match = re.fullmatch(rf"\.(.+)\.[^.]+{re.escape(TEMPORARY_SUFFIX)}", path.name)
        if match and path.is_file() and owns(match.group(1)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def split_lines(text: str) -> list[str]:
    """Lines of a file's text, whatever its line endings: ``\\r\\n``, ``\\n`` or ``\\r`` alike (not the other
    Unicode separators str.splitlines knows, which may sit inside a brat surface field)."""
    return re.split(r"\r\n|\r|\n", text)


def write_json_atomically(path, data: Any) -> Path:
    """``data`` as indented JSON through :func:`atomic_open`."""
    with atomic_open(path) as handle:
        json.dump(data, handle, indent=2, default=float)
        handle.write("\n")
    return Path(path)


def write_brat_ann(path, entities: Iterable[tuple[str, int, int]], text: str, *,
                   relations: Iterable[tuple[str, int, int]] = (), overwrite: bool = False,
                   mode: int | None = None) -> Path:
    """Write ``(type, start, end)`` entities, and ``(type, arg1, arg2)`` relations between them (0-based
    indices into ``entities``), as a brat ``.ann`` next to its text (see :func:`write_brat_entities`).

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
    return write_brat_entities(path, pairs, text, relations=relations, overwrite=overwrite, mode=mode)


# ---------------------------------------------------------------------------
# CoNLL token<TAB>tag input
# ---------------------------------------------------------------------------


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
    lines = split_lines(_decode_utf8(path, path.read_bytes()))

    # Group (token, tag, line) rows into sentences and sentences into documents.
    documents_rows: list[list[list[tuple[str, str, int]]]] = []
    sentences: list[list[tuple[str, str, int]]] = []
    sentence: list[tuple[str, str, int]] = []
    has_docstart = any(line.startswith("-DOCSTART-") for line in lines)
    for line_number, line in enumerate(lines, start=1):
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
            raise BratFormatError(path, line_number, f"malformed line: expected 'TOKEN<TAB>TAG', got {describe_text(line)}",
                                  "malformed_line")
        tag = columns[-1].strip()
        if not is_tag(tag):
            raise BratFormatError(path, line_number, f"malformed tag {describe_text(tag)} (expected O, B-TYPE or I-TYPE)",
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
        for line in split_lines(_decode_utf8(Path(path), Path(path).read_bytes())):
            columns = line.split("\t") if "\t" in line else line.split()
            if len(columns) >= 2 and is_tag(columns[-1].strip()) and columns[-1].strip() != "O":
                types.add(columns[-1].strip()[2:])
    return sorted(types)



def _load_map(source, what: str) -> tuple[Any, str]:
    """A JSON object given as a file's path or inline (text starting with ``{``), and how to name it in messages."""
    text = str(source).strip()
    where = f"{what} (inline JSON)" if text.startswith("{") else text
    try:
        if text.startswith("{"):
            return json.loads(text), where
        path = Path(text)
        return json.loads(_decode_utf8(path, read_regular_file(path))), where
    except OSError as error:
        raise BratFormatError(where, None, f"{what} file {'not found' if not Path(text).exists() else error.strerror}: "
                              "give a JSON file's path or the JSON object itself", "missing_file") from None
    except json.JSONDecodeError as error:
        raise BratFormatError(where, error.lineno, f"invalid JSON: {error.msg}", "malformed_line") from None


def load_label_map(source, what: str = "label map") -> dict[str, str | None]:
    """A label map ``{source_type: target_type or null}``, from a JSON file or inline JSON (``'{"Dose": "Dosage"}'``)."""
    label_map, where = _load_map(source, what)
    if not isinstance(label_map, dict) or not all(
        isinstance(key, str) and (value is None or isinstance(value, str)) for key, value in label_map.items()
    ):
        raise BratFormatError(where, None, f"a {what} must be a JSON object of source type -> target type (or null)",
                              "malformed_line")
    return label_map


def load_relation_map(source) -> dict[str, Any]:
    """A relation map, from a JSON file or inline JSON: ``{source_relation_type: target_type or null}``, where a
    target may also be a table keyed by the arguments' source entity types, for corpora that give every attribute
    link one name: ``{"MODIFY": {"Dosage>Medication": "Dosage-Drug", "Administration>Medication": "Route-Drug"}}``.
    Relations that no rule maps are counted by name and argument types (``MODIFY Form>Medication``)."""
    relation_map, where = _load_map(source, "relation map")

    def target(value) -> bool:
        return value is None or isinstance(value, str)

    if not isinstance(relation_map, dict) or not all(
        isinstance(key, str) and (target(value) or (isinstance(value, dict) and all(
            isinstance(pair, str) and pair.count(">") == 1 and target(rule) for pair, rule in value.items())))
        for key, value in relation_map.items()
    ):
        raise BratFormatError(where, None, "a relation map must be a JSON object of source relation type -> target type "
                              "(or null), or -> {\"Arg1Type>Arg2Type\": target type}", "malformed_line")
    return relation_map


def check_output_dir(output_dir: Path, overwrite: bool) -> None:
    """Refuse an output folder that exists and is not empty unless ``overwrite``; with it, refuse one that holds
    files the toolkit did not write (``folder_safety.refuse_foreign_files``: they would go with the old folder)."""
    if output_dir.exists() and not output_dir.is_dir():
        raise FileExistsError(f"{output_dir} exists and is not a folder")
    if output_dir.is_dir() and any(output_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"output folder {output_dir} exists and is not empty (pass --overwrite to replace it)")
        refuse_foreign_files(output_dir)


PARTIAL_FOLDER_INFIX = ".partial-"


def remove_stale_partial_folders(output_dir) -> list[str]:
    """Remove the temporary siblings a killed :func:`write_folder_atomically` left for ``output_dir`` (they may hold
    note text), saying so by name. Call it only while holding the folder's lock (folder_safety.FolderLock)."""
    output_dir = Path(output_dir)
    removed = []
    # Killed between its two renames, a run left the old folder aside and no new one: put the old one back.
    old_folders = sorted(output_dir.parent.glob(f".{output_dir.name}.old-*"))
    if old_folders and not output_dir.exists() and not output_dir.is_symlink():
        os.replace(old_folders[-1], output_dir)
        logger.warning("restored %s from %s, set aside by an earlier run that was stopped", output_dir,
                       old_folders[-1].name)
    for stale in sorted([*output_dir.parent.glob(f".{output_dir.name}{PARTIAL_FOLDER_INFIX}*"),
                         *output_dir.parent.glob(f".{output_dir.name}.old-*")]):
        shutil.rmtree(stale, ignore_errors=True)
        removed.append(stale.name)
        logger.warning("removed %s, the unfinished output of an earlier run that was stopped", stale)
    return removed


def write_folder_atomically(output_dir, overwrite: bool, write) -> None:
    """Call ``write(tmp_dir)`` on a fresh sibling folder, record everything in it as written by the toolkit
    (``folder_safety.Manifest``), then move it into place.

    A failure leaves nothing behind; a kill leaves the hidden sibling, which the next call removes and names.
    An existing ``output_dir`` is only replaced with ``overwrite`` and when it holds nothing the toolkit did not
    write (the old one is removed after the new one is in place). The caller holds the folder's lock.
    """
    output_dir = Path(output_dir)
    if output_dir.parent.is_dir():
        remove_stale_partial_folders(output_dir)  # first: it may put back a folder a killed run had set aside
    check_output_dir(output_dir, overwrite)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}{PARTIAL_FOLDER_INFIX}", dir=output_dir.parent))
    old_dir = None
    try:
        write(tmp_dir)
        claim_whole_folder(tmp_dir)
        check_output_dir(output_dir, overwrite)  # again: it may have appeared meanwhile
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


# ---------------------------------------------------------------------------
# Input formats: one table
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusFormat:
    """How one input format is read: ``read(path, label_map=, relation_map=, entity_types=, skip_invalid=,
    validate_text=)`` returns ``(documents, problems)``."""

    name: str
    what: str
    read: Callable[..., tuple[list[BratDocument], list[BratFormatError]]]


def _read_brat(path, *, label_map=None, relation_map=None, entity_types=None, skip_invalid=False, validate_text=True):
    return read_brat_folder(path, label_map=label_map, relation_map=relation_map, entity_types=entity_types,
                            skip_invalid=skip_invalid, validate_text=validate_text)


def _read_conll(path, *, label_map=None, relation_map=None, entity_types=None, skip_invalid=False, validate_text=True):
    # A CoNLL file has no separate text to validate against, and a bad line is always an error; it has no relations.
    return read_conll_file(path, label_map=label_map, entity_types=entity_types), []


CORPUS_FORMATS: dict[str, CorpusFormat] = {
    "brat": CorpusFormat("brat", "a folder of .txt notes with .ann standoff annotations", _read_brat),
    "conll": CorpusFormat("conll", "a token<TAB>tag file (blank lines end sentences)", _read_conll),
}


def read_corpus(format_name: str, path, **options) -> tuple[list[BratDocument], list[BratFormatError]]:
    """Documents of one split in ``format_name`` (a key of :data:`CORPUS_FORMATS`), and what was skipped."""
    if format_name not in CORPUS_FORMATS:
        raise ValueError(f"unknown input format {format_name!r} (known: {', '.join(CORPUS_FORMATS)})")
    return CORPUS_FORMATS[format_name].read(path, **options)


# ---------------------------------------------------------------------------
# Word-level prediction records (docs/architecture.md, "Predictions")
# ---------------------------------------------------------------------------

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
