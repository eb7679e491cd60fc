"""Brat: standoff ``.ann`` files beside their ``.txt`` notes, read (with every line checked: file, line, reason) and written exact to the character (an entity that crosses a line break as fragments, n2c2 style)."""

from __future__ import annotations

import logging
import operator
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from .documents import BratDocument, BratEntity, BratFormatError, BratRelation, decode_utf8, describe_text, read_text
from .files import atomic_open, split_lines
from .folder_safety import irregular_reason, read_regular_file
from .tagging import N2C2_ENTITY_TYPES, N2C2_RELATION_TYPES, relation_argument_types

logger = logging.getLogger(__name__)


_IGNORED_LINE_PREFIXES = ("A", "M", "N", "*", "#")
_SPANS_PATTERN = re.compile(r"(\S+) (\d+ \d+(?:;\d+ \d+)*)")
# A relation argument or event trigger: "Arg1:T5", "Drug:T3" (any role name).
_ARGUMENT_PATTERN = re.compile(r"[^\s:]+:([^\s:]+)")


def check_types(label_map: dict | None, entity_types: Sequence[str] | None) -> tuple[dict | None, set[str]]:
    """The allowed target types: ``entity_types``, else the label map's targets, else the n2c2 types."""
    if label_map is not None:
        targets = {target for target in label_map.values() if target is not None}
        if entity_types is not None:
            missing = sorted(targets - set(entity_types))
            if missing:
                raise ValueError(f"label map targets {missing} are not in the entity types {list(entity_types)}")
        return label_map, set(entity_types) if entity_types is not None else targets
    return None, set(entity_types) if entity_types is not None else set(N2C2_ENTITY_TYPES)


def resolve_type(source_type: str, label_map: dict | None, allowed_types, unmapped: Counter
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
    label_map, allowed_types = check_types(label_map, entity_types)
    if not txt_path.is_file():
        raise BratFormatError(ann_path, None, f"no matching .txt file (expected {txt_path.name})", "missing_txt")
    if not ann_path.is_file():
        raise BratFormatError(txt_path, None, f"no matching .ann file (expected {ann_path.name})", "missing_ann")
    text = read_text(txt_path)
    ann_text = decode_utf8(ann_path, read_regular_file(ann_path))

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
        target_type, error = resolve_type(source_type, label_map, allowed_types, unmapped)
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
    check_types(label_map, entity_types)  # fail on a bad label map before reading anything
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
