"""Folder annotation: a folder of notes in, a folder of brat files and JSON lines out, by one process.

The plan (which notes are new, done, or left inconsistent by a killed run, and their repair), the groups of notes
predicted together, the outputs of each note written before the next group is read, and the summary. A folder is
annotated by one process here; :mod:`parallel_annotation` shares it among several."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Iterator, Mapping, Sequence

from .brat import write_brat_ann
from .command_line import UsageError
from .documents import BratFormatError, read_text
from .durable_jsonl import JsonlAppender, JsonlScan, sync_folder
from .files import (
    ANNOTATED_LOG_FILE, ENTITIES_FILE, MEDICATIONS_FILE, SUMMARY_FILE, WORD_PREDICTIONS_FILE, note_file_mode,
    process_part_name, process_parts, remove_stale_temporary_files, write_json_atomically,
)
from .folder_safety import FolderLock, Manifest, check_output_apart, irregular_reason
from .prediction_records import prediction_record, round_confidence
from .relations import Candidate
from .tagging import DRUG_TYPE

if TYPE_CHECKING:  # annotations only: listing and checking a folder of notes (annotate_notes.py) needs no model code
    from .note_annotator import NoteAnnotator
    from .windows import NotePrediction

logger = logging.getLogger(__name__)


# The CLI predicts notes in groups of about this many words (length-grouped batches are formed
# inside a group), writing each group's records and .ann files before it reads the next.
WORDS_PER_GROUP = 50_000


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


def note_counts(note: NotePrediction, text: str) -> dict[str, int]:
    """What ``summary.json`` adds up for one annotated note (a folder's, a table's or a Spark partition's)."""
    return {"characters": len(text), "sentences": len(note.sentences),
            "words": sum(len(sentence.tokens) for sentence in note.sentences), "windows": note.num_windows,
            "windowed_sentences": sum(sentence.num_windows > 1 for sentence in note.sentences),
            "entities_below_min_confidence": note.num_below_min_confidence,
            "drugs": sum(entity.type == DRUG_TYPE for entity in note.entities)}


def word_prediction_records(note: NotePrediction) -> list[dict[str, Any]]:
    """``predictions.jsonl`` records of a note (docs/architecture.md, "Predictions"; no gold tags)."""
    return [prediction_record(document_id=note.document_id, sentence_index=sentence.sentence_index,
                              tokens=sentence.tokens, token_starts=sentence.token_starts,
                              token_ends=sentence.token_ends, pred_tags=sentence.pred_tags,
                              confidences=sentence.confidences)
            for sentence in note.sentences]


def ann_name(note: Path) -> str:
    """The ``.ann`` name of a note: ``NAME.ann``, or ``NAME.ANN`` beside a ``NAME.TXT`` (one style per brat pair)."""
    return note.stem + (".ANN" if note.suffix == ".TXT" else ".ann")


def _write_ann(path: Path, note: NotePrediction, text: str, links: Sequence[tuple[Candidate, float]] = (), *,
               overwrite: bool, mode: int) -> None:
    write_brat_ann(path, [(e.type, e.start, e.end) for e in note.entities], text,
                   relations=[(c.type, c.attribute, c.drug) for c, _ in links], overwrite=overwrite, mode=mode)


class InputError(UsageError):
    """A problem with the input folder as a whole (the run cannot start)."""


@dataclass
class InputFolder:
    """What an input folder holds: the notes (``.txt`` in any case, sorted by name) and the names of the rest."""

    notes: list[Path] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    not_regular: list[tuple[Path, str]] = field(default_factory=list)  # named like notes: FIFOs, folders, ...

    @property
    def files_seen(self) -> dict[str, int]:
        return {"notes": len(self.notes), "hidden": len(self.hidden), "other": len(self.other),
                "folders": len(self.folders), "named_like_notes_not_regular_files": len(self.not_regular)}

    def log_ignored(self) -> None:
        """One INFO line per kind not read, with the names (file names, never note text)."""
        for kind, names, why in (("hidden files", self.hidden, "name starts with '.'"),
                                 ("other files", self.other, "not .txt"),
                                 ("folders", self.folders, "notes are not searched in subfolders")):
            if names:
                logger.info("%d %s not read (%s): %s", len(names), kind, why, _some_names(names))


def _some_names(names: Sequence[str], shown: int = 20) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def list_notes(input_dir) -> InputFolder:
    """The notes of a folder (not recursive): every regular file (or link to one) with a ``.txt`` suffix in any
    case, hidden ones aside. A FIFO, socket, device, folder or broken link named so is never opened (a FIFO
    would block the run): it is listed with its reason and fails as a note."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise InputError(f"{input_dir} is not a folder")
    folder = InputFolder()
    for path in sorted(input_dir.iterdir()):
        if path.name.startswith("."):
            folder.hidden.append(path.name)
        elif path.suffix.lower() == ".txt":
            irregular = irregular_reason(path)
            if irregular:
                folder.not_regular.append((path, irregular))
            else:
                folder.notes.append(path)
        elif path.is_dir():
            folder.folders.append(path.name)
        else:
            folder.other.append(path.name)
    if not folder.notes and not folder.not_regular:
        seen = ", ".join(f"{count} {kind}" for kind, count in folder.files_seen.items() if count)
        raise InputError(f"no .txt files in {input_dir} ({seen or 'it is empty'})")
    return folder


def _read_note(path: Path) -> str:
    """A note's text exactly as stored (documents.read_text); errors name the file and the reason only."""
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


@dataclass
class Tally:
    """What one process did: counts for the summary, failures (file names and kinds), the notes written."""

    counts: Counter = field(default_factory=Counter)
    entity_types: Counter = field(default_factory=Counter)
    relation_types: Counter = field(default_factory=Counter)
    failures: list[dict[str, str]] = field(default_factory=list)
    annotated: set[str] = field(default_factory=set)
    excluded: set[str] = field(default_factory=set)  # annotated, but their .ann could not be written

    def fail(self, path: Path, kind: str, reason: str) -> None:
        # The file name and the reason only: never the note's text.
        logger.error("%s: skipped: %s", path.name, reason)
        self.failures.append({"file": path.name, "kind": kind})

    def update(self, other: "Tally") -> None:
        self.counts.update(other.counts)
        self.entity_types.update(other.entity_types)
        self.relation_types.update(other.relation_types)
        self.failures.extend(other.failures)
        self.annotated |= other.annotated
        self.excluded |= other.excluded


@dataclass
class _Plan:
    """What process 0 found before a run: the notes, which to annotate (split among the processes), the rest."""

    folder: InputFolder
    notes: dict[str, Path]  # document id -> note
    todo: list[Path]
    already_annotated: list[Path]
    stale: int
    jsonl_mode: int
    main_sizes: dict[str, int]  # where this run's records start in each JSONL file (one process)
    repairs: dict[str, Counter]
    notes_redone: int = 0  # their .ann and records disagreed: annotated again
    input_dir: Path | None = None  # resolved: review_notes.py reads the notes from it, from any folder


JSONL_FILES = (ENTITIES_FILE, WORD_PREDICTIONS_FILE, MEDICATIONS_FILE)


def compact_outputs(output_dir: Path, notes: Mapping[str, Path], repairs: dict[str, Counter], *,
                     excluded: Collection[str] = frozenset(), annotated_now: Collection[str] = frozenset(),
                     since: Mapping[str, int] | None = None) -> int:
    """Compact the JSONL files (see JsonlScan), merging the parts of a multi-process run (this one, or one that
    was killed) and the notes they logged; returns the files' mode, that of the notes they hold. Notes written
    by the run (``annotated_now``, or logged by its processes) keep only its records: none in a file the run
    did not write for them."""
    logs = process_parts(output_dir, ANNOTATED_LOG_FILE)
    annotated_now, excluded = set(annotated_now), set(excluded)
    for log in logs:
        for record in _read_log(log):
            (annotated_now if record["ann"] else excluded).add(record["document_id"])
    scans = [JsonlScan(output_dir / name, process_parts(output_dir, name)) for name in JSONL_FILES]
    documents = set().union(*(scan.documents for scan in scans))

    def ann_path(document_id: str) -> Path | None:
        """The document's .ann if it exists (a document whose note is gone may have either style)."""
        if document_id in notes:
            candidates = [output_dir / ann_name(notes[document_id])]
        else:
            candidates = [output_dir / f"{document_id}.ann", output_dir / f"{document_id}.ANN"]
        return next((path for path in candidates if path.exists()), None)

    anns = {document_id: ann_path(document_id) for document_id in documents | set(notes)}
    keep = {document_id: anns[document_id] is not None and document_id not in excluded for document_id in documents}
    mode = note_file_mode([notes.get(document_id, ann) for document_id, ann in anns.items() if ann is not None])
    for scan in scans:
        dropped = scan.compact(keep, mode, rewritten=annotated_now,
                               since=None if since is None or scan.parts else since.get(scan.path.name))
        if dropped:
            logger.info("%s: compacted (%s)", scan.path.name, ", ".join(f"{n} {k}" for k, n in dropped.items()))
        repairs[scan.path.name].update(dropped)
    for log in logs:  # last: a crash before this redoes the merge the same way
        log.unlink(missing_ok=True)
    return mode


def _read_log(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a process's log of the notes it wrote (a torn last line is skipped)."""
    with path.open("rb") as handle:
        for line in handle:
            try:
                record = json.loads(line.decode("utf-8"))
                if isinstance(record.get("document_id"), str) and isinstance(record.get("ann"), bool):
                    yield record
            except (ValueError, AttributeError):
                continue


# What a run writes into its output folder besides the .ann of each note (folder_safety.Manifest): the JSONL
# files, the summary, the parts and logs of a multi-process run, and atomic_open's temporary files of all of them.
_OWN_FILES = (*JSONL_FILES, SUMMARY_FILE)
_OWN_PATTERNS = (*(f".{name}.process-*" for name in (*JSONL_FILES, ANNOTATED_LOG_FILE)),)


def check_annotation_output_folder(input_dir, output_dir: Path, notes: Sequence[Path]) -> Manifest:
    """Refuse an output folder where the run would write over what the toolkit did not write: the input folder
    (or one inside or around it), output files of the same names, or an ``.ann`` of one of the notes (gold
    annotations copied there, say). Claims the run's own names; returns the folder's manifest."""
    check_output_apart(output_dir, {"--input_dir": input_dir})
    manifest = Manifest(output_dir)
    foreign = [ann_name(path) for path in notes
               if (output_dir / ann_name(path)).exists() and not manifest.owns(ann_name(path))]
    if foreign:
        raise UsageError(f"--output_dir {output_dir} holds {len(foreign)} .ann files of these notes that this toolkit "
                         f"did not write ({_some_names(foreign, 3)}): they are kept as they are; move them out or "
                         "choose another output folder")
    manifest.claim_for_writing([*_OWN_FILES, *_OWN_PATTERNS])  # (refuses their names if someone else's)
    return manifest


def _ann_entity_ids(path: Path, types: tuple[str, ...] | None = None) -> list[str]:
    """The ``T`` ids of an ``.ann`` the toolkit wrote (of ``types`` only, if given), in file order."""
    ids = []
    for line in read_text(path).split("\n"):
        entity_id, _, rest = line.partition("\t")
        if entity_id[:1] == "T" and (types is None or rest.split(" ", 1)[0] in types):
            ids.append(entity_id)
    return ids


def _records_by_document(path: Path, field_name: str = "id") -> dict[str, list[str]]:
    """``field_name`` of each record of a compacted JSONL file, by document, in file order."""
    records: dict[str, list[str]] = {}
    if path.is_file():
        with path.open("rb") as handle:
            for line in handle:
                record = json.loads(line.decode("utf-8"))
                records.setdefault(record["document_id"], []).append(record[field_name])
    return records


def inconsistent_notes(output_dir: Path, notes: Mapping[str, Path]) -> list[str]:
    """The notes whose ``.ann`` (written by the toolkit) and records disagree: the ``T`` lines are not exactly the
    note's records in ``entities.jsonl``, or its drug records in ``medications.jsonl`` (where it has any) are not
    exactly its ``Drug`` lines. Call it on compacted files."""
    manifest = Manifest(output_dir)
    entities = _records_by_document(output_dir / ENTITIES_FILE)
    medications = _records_by_document(output_dir / MEDICATIONS_FILE)
    wrong = []
    for document_id, note in sorted(notes.items()):
        ann = output_dir / ann_name(note)
        if not ann.is_file() or not manifest.owns(ann.name):
            continue
        if _ann_entity_ids(ann) != entities.get(document_id, []) or (
                document_id in medications and _ann_entity_ids(ann, (DRUG_TYPE,)) != medications[document_id]):
            wrong.append(document_id)
    return wrong


def plan_folder(input_dir, output_dir: Path, overwrite: bool, tally: Tally) -> _Plan:
    """Process 0, before any process writes: check and claim the output folder, tidy it (stale temporary files,
    the parts of a killed multi-process run), list the notes, repair what an earlier run left inconsistent, and
    decide which notes to annotate."""
    folder = list_notes(input_dir)
    manifest = check_annotation_output_folder(input_dir, output_dir, folder.notes)
    output_dir.mkdir(parents=True, exist_ok=True)
    stale = remove_stale_temporary_files(output_dir, manifest.owns)  # of its own files only
    if stale:
        logger.info("%s: removed %d temporary files left by an interrupted run", output_dir, stale)
    logger.info("%s: %d notes", input_dir, len(folder.notes))
    folder.log_ignored()
    for path, reason in folder.not_regular:  # reported by name and reason, never opened
        tally.fail(path, "not_a_regular_file", f"{reason}; only regular files are read")
    notes: dict[str, Path] = {}
    for path in folder.notes:
        if path.stem in notes:
            tally.fail(path, "duplicate_name", f"{notes[path.stem].name} has the same name; rename one of them")
            continue
        notes[path.stem] = path
    repairs = {name: Counter() for name in JSONL_FILES}
    mode = compact_outputs(output_dir, notes, repairs)
    # A note whose .ann lost its records (a run of an earlier version, a crash in the wrong place) is annotated
    # again: its .ann is ours, so it goes first, and then it is a note like any other without an .ann.
    redone = inconsistent_notes(output_dir, notes)
    if redone:
        logger.warning("%d notes had an .ann whose records were missing or different in %s: annotating them "
                       "again: %s", len(redone), ENTITIES_FILE, _some_names([notes[d].name for d in redone]))
        for document_id in redone:
            (output_dir / ann_name(notes[document_id])).unlink()
        sync_folder(output_dir)
        mode = compact_outputs(output_dir, notes, repairs)
    todo, already_annotated = [], []
    for path in notes.values():
        (todo if overwrite or not (output_dir / ann_name(path)).exists() else already_annotated).append(path)
    if already_annotated:
        logger.info("%d notes already have an .ann in %s: kept (pass --overwrite to replace them): %s",
                    len(already_annotated), output_dir, _some_names([path.name for path in already_annotated]))
    manifest.claim(ann_name(path) for path in todo)  # before any process writes one
    main_sizes = {name: (output_dir / name).stat().st_size if (output_dir / name).is_file() else 0
                  for name in JSONL_FILES}
    return _Plan(folder, notes, todo, already_annotated, stale, mode, main_sizes, repairs, len(redone),
                 input_dir=Path(input_dir).resolve())


def annotate_note_groups(annotator: NoteAnnotator, paths: Sequence[Path], output_dir: Path, tally: Tally, *,
                    jsonl_mode: int, overwrite: bool, word_predictions: bool, words_per_group: int,
                    progress: bool | None, process_index: int | None = None) -> None:
    """Annotate ``paths`` into ``output_dir``, group by group: records appended (to the JSONL files, or to this
    process's parts of them), durable, then the ``.ann`` files (then, for a process, the log of what it wrote)."""
    from .note_annotator import medication_list

    notes = {path.stem: path for path in paths}
    linking = annotator.relation_linker is not None
    written_files = [ENTITIES_FILE] + [WORD_PREDICTIONS_FILE] * word_predictions + [MEDICATIONS_FILE] * linking
    if process_index is not None:
        written_files.append(ANNOTATED_LOG_FILE)

    def target(name: str) -> Path:
        return output_dir / (name if process_index is None else process_part_name(name, process_index))

    # Opened with the first records: a run that fails at once writes nothing.
    appenders: dict[str, JsonlAppender] = {}

    from tqdm.auto import tqdm

    description = "notes" if process_index is None else f"notes (process {process_index})"
    bar = tqdm(total=len(paths), desc=description, unit="note",
               disable=None if progress is None else not progress)
    try:
        for group in _note_groups(paths, words_per_group):
            texts = {}
            for path, text in group:
                if isinstance(text, _NoteError):
                    tally.fail(path, text.kind, text.reason)
                elif not text.strip():
                    logger.warning("%s: empty note (no text): writing an empty .ann", path.name)
                    tally.counts["empty_notes"] += 1
                    texts[path.stem] = text
                else:
                    texts[path.stem] = text
            predictions = annotator.predict(texts, progress=progress)
            # 1. With --overwrite, the old .ann go first: an old .ann never stands beside new records.
            #    Without it, an .ann that appeared during the run is not ours to pair with records.
            removed = False
            for document_id in list(predictions):
                path = output_dir / ann_name(notes[document_id])
                if path.exists():
                    if overwrite:
                        path.unlink()
                        removed = True
                    else:
                        tally.fail(notes[document_id], "ann_exists",
                                   f"{path.name} appeared in {output_dir} during the run (pass --overwrite)")
                        del predictions[document_id]
            if removed:
                sync_folder(output_dir)
            # 2. The group's records, durable, in a file no more readable than any note in it.
            jsonl_mode &= note_file_mode(notes[document_id] for document_id in predictions)
            links = annotator.link(texts, predictions) if linking else {}
            if not appenders:
                appenders.update({name: JsonlAppender(target(name), jsonl_mode) for name in written_files})
            for appender in appenders.values():
                appender.restrict(jsonl_mode)
            appenders[ENTITIES_FILE].append(record for note in predictions.values() for record in entity_records(note))
            if word_predictions:
                appenders[WORD_PREDICTIONS_FILE].append(
                    record for note in predictions.values() for record in word_prediction_records(note))
            if linking:
                appenders[MEDICATIONS_FILE].append(
                    record for document_id, note in predictions.items()
                    for record in medication_list(note, texts[document_id], links[document_id]))
            # 3. Only then the .ann files.
            written = {}
            for document_id, note in predictions.items():
                text = texts[document_id]
                try:
                    _write_ann(output_dir / ann_name(notes[document_id]), note, text, links.get(document_id, ()),
                               overwrite=overwrite, mode=note_file_mode([notes[document_id]]))
                except FileExistsError:
                    tally.excluded.add(document_id)
                    written[document_id] = False
                    tally.fail(notes[document_id], "ann_exists",
                               f"{ann_name(notes[document_id])} appeared in {output_dir} during the run "
                               "(pass --overwrite)")
                    continue
                written[document_id] = True
                tally.annotated.add(document_id)
                counts = tally.counts
                counts["notes_annotated"] += 1
                counts.update(note_counts(note, text))
                tally.entity_types.update(entity.type for entity in note.entities)
                tally.relation_types.update(candidate.type for candidate, _ in links.get(document_id, ()))
            # 4. A process logs what it wrote (names only), for the merge of its parts.
            if process_index is not None:
                appenders[ANNOTATED_LOG_FILE].append({"document_id": document_id, "ann": ann}
                                                     for document_id, ann in written.items())
            bar.update(len(group))
    finally:
        bar.close()
        for appender in appenders.values():
            appender.close()


def annotate_folder(
    annotator: NoteAnnotator,
    input_dir,
    output_dir,
    *,
    overwrite: bool = False,
    word_predictions: bool = False,
    words_per_group: int = WORDS_PER_GROUP,
    progress: bool | None = None,
    distributed: bool = False,
) -> dict[str, Any] | None:
    """Annotate the notes of ``input_dir`` that have no ``.ann`` in ``output_dir`` (all of them with
    ``overwrite``); see the module docstring. Returns the summary.

    ``distributed``: every process of a ``torch.distributed`` group calls this with its own annotator. Process 0
    plans and splits the notes (:func:`split_notes`); each process annotates its share into its own parts of the
    JSONL files; process 0 then merges them and returns the summary (the others return None)."""
    started = time.perf_counter()
    output_dir = Path(output_dir)
    if distributed:
        import torch.distributed as dist

        process_index, num_processes = dist.get_rank(), dist.get_world_size()
    else:
        process_index, num_processes = 0, 1
    with FolderLock(output_dir, "folder_annotation.annotate_folder", enabled=process_index == 0):
        return _annotate_folder(annotator, input_dir, output_dir, process_index, num_processes, started,
                                overwrite=overwrite, word_predictions=word_predictions,
                                words_per_group=words_per_group, progress=progress, distributed=distributed)


def _annotate_folder(annotator: NoteAnnotator, input_dir, output_dir: Path, process_index: int, num_processes: int,
                     started: float, *, overwrite: bool, word_predictions: bool, words_per_group: int,
                     progress: bool | None, distributed: bool) -> dict[str, Any] | None:
    if distributed:
        import torch.distributed as dist
    tally = Tally()
    plan = plan_folder(input_dir, output_dir, overwrite, tally) if process_index == 0 else None
    settings = dict(jsonl_mode=plan.jsonl_mode if plan else 0, overwrite=overwrite, word_predictions=word_predictions,
                    words_per_group=words_per_group, progress=progress)
    if distributed:
        # Process 0 lists the folder once and hands out the shares: no process starts writing before all have theirs.
        shares = [split_notes(plan.todo, num_processes), plan.jsonl_mode] if plan else [None, None]
        dist.broadcast_object_list(shares, src=0)
        settings["jsonl_mode"] = shares[1]
        own = Tally()
        annotate_note_groups(annotator, shares[0][process_index], output_dir, own, process_index=process_index,
                        **settings)
        tallies = [None] * num_processes if process_index == 0 else None
        dist.gather_object(own, tallies, dst=0)  # also waits for every process to finish
        if process_index != 0:
            return None
        for other in tallies:
            tally.update(other)
    else:
        try:
            annotate_note_groups(annotator, plan.todo, output_dir, tally, **settings)
        except BaseException:
            # Interrupted (Ctrl-C) or failed: leave the folder tidy if we can; the next run does it otherwise.
            try:
                compact_outputs(output_dir, plan.notes, plan.repairs, excluded=tally.excluded,
                                 annotated_now=tally.annotated, since=plan.main_sizes)
            except Exception as error:  # noqa: BLE001 (the first error is the one to report)
                logger.warning("could not compact the JSONL files (%s); the next run will", type(error).__name__)
            raise
    return finish_annotation(plan, tally, annotator_facts(annotator), output_dir, started=started,
                   num_processes=num_processes, word_predictions=word_predictions, words_per_group=words_per_group)


def annotator_facts(annotator: NoteAnnotator) -> dict[str, Any]:
    """What ``summary.json`` says of the annotator (sent back by each process of a --num_processes run)."""
    linker = annotator.relation_linker
    device = annotator.settings["device"]
    return {"model_type": "crf" if annotator.is_crf else "linear", "linking": linker is not None,
            "relations_by": linker.by if linker else None,
            "relations_choice_reason": linker.choice_reason if linker else None,
            "settings": {**annotator.settings, "backend": annotator.backend,
                         "device": str(device if device is not None else next(annotator.model.parameters()).device),
                         "link_threshold": linker.link_threshold if linker else None,
                         "sentence_window": linker.sentence_window if linker else None}}


def finish_annotation(plan: _Plan, tally: Tally, facts: Mapping[str, Any], output_dir: Path, *, started: float,
            num_processes: int, word_predictions: bool, words_per_group: int) -> dict[str, Any]:
    """After every process: merge the parts and compact (the records of notes written again kept only from this
    run), then write ``summary.json``."""
    mode = compact_outputs(output_dir, plan.notes, plan.repairs, excluded=tally.excluded,
                            annotated_now=tally.annotated, since=plan.main_sizes)
    linking = facts["linking"]
    for name in [ENTITIES_FILE] + [WORD_PREDICTIONS_FILE] * word_predictions + [MEDICATIONS_FILE] * linking:
        if not (output_dir / name).exists():  # nothing annotated: the files still say so
            JsonlAppender(output_dir / name, mode).close()
    # The promise, checked: every note's .ann holds exactly its records.
    inconsistent = inconsistent_notes(output_dir, plan.notes)
    if inconsistent:
        logger.error("%d notes have an .ann whose records differ (run the same command again to redo them): %s",
                     len(inconsistent), _some_names([plan.notes[d].name for d in inconsistent]))
    Manifest(output_dir).compact(keep=_OWN_FILES)
    counts, folder = tally.counts, plan.folder
    seconds = time.perf_counter() - started
    summary = {
        "model_type": facts["model_type"],
        "files_seen": folder.files_seen,
        "notes_found": len(folder.notes),
        "notes_annotated": counts["notes_annotated"],
        "notes_already_annotated": len(plan.already_annotated),
        "empty_notes": counts["empty_notes"],
        "notes_failed": len(tally.failures),
        "failures_by_kind": dict(sorted(Counter(f["kind"] for f in tally.failures).items())),
        "failed_files": sorted(tally.failures, key=lambda failure: failure["file"]),
        "characters": counts["characters"],
        "sentences": counts["sentences"],
        "words": counts["words"],
        "windows": counts["windows"],
        "windowed_sentences": counts["windowed_sentences"],
        "entities": sum(tally.entity_types.values()),
        "entities_by_type": dict(sorted(tally.entity_types.items())),
        "entities_below_min_confidence": counts["entities_below_min_confidence"],
        "relations": sum(tally.relation_types.values()) if linking else None,
        "relations_by_type": dict(sorted(tally.relation_types.items())) if linking else None,
        "medication_records": counts["drugs"] if linking else None,
        "relations_by": facts["relations_by"],  # "model" or "rule" (None: no relations), and why
        "relations_choice_reason": facts["relations_choice_reason"],
        "stale_temporary_files_removed": plan.stale,
        "jsonl_records_dropped": {name: dict(sorted(dropped.items())) for name, dropped in plan.repairs.items()},
        "notes_redone_after_repair": plan.notes_redone,
        "notes_with_ann": sum((output_dir / ann_name(note)).is_file() for note in plan.notes.values()),
        "notes_inconsistent": len(inconsistent),
        "settings": {**facts["settings"], "input_dir": str(plan.input_dir), "num_processes": num_processes,
                     "words_per_group": words_per_group},
        "seconds": round(seconds, 3),
        "characters_per_second": round(counts["characters"] / seconds, 1) if seconds > 0 else None,
    }
    write_json_atomically(output_dir / SUMMARY_FILE, summary)
    return summary


def relation_and_confidence_lines(summary: Mapping[str, Any], medications_name: str) -> list[str]:
    """The summary's lines on relations and on entities dropped by ``--min_confidence`` (a folder's or a table's)."""
    lines = []
    if summary["relations"] is not None:
        by_type = ", ".join(f"{t} {n}" for t, n in summary["relations_by_type"].items()) or "none"
        by = "the nearest-drug rule" if summary["relations_by"] == "rule" else "the relation model"
        lines.append(f"{summary['relations']} relations ({by_type}) by {by} ({summary['relations_choice_reason']}); "
                     f"{summary['medication_records']} drug records in {medications_name}")
    if summary["entities_below_min_confidence"]:
        lines.append(f"{summary['entities_below_min_confidence']} entities below --min_confidence "
                     f"{summary['settings']['min_confidence']} were dropped")
    return lines


def format_summary(summary: Mapping[str, Any], output_dir) -> str:
    """Counts only."""
    by_type = ", ".join(f"{t} {n}" for t, n in summary["entities_by_type"].items()) or "none"
    lines = [
        f"Annotated {summary['notes_annotated']} of {summary['notes_found']} notes into {output_dir} "
        f"in {summary['seconds']:.1f} s: {summary['sentences']} sentences, {summary['windows']} windows "
        f"({summary['windowed_sentences']} sentences needed more than one), {summary['entities']} entities ({by_type})",
    ]
    lines += relation_and_confidence_lines(summary, MEDICATIONS_FILE)
    if summary["notes_already_annotated"]:
        lines.append(f"{summary['notes_already_annotated']} notes already had an .ann "
                     "(kept; --overwrite replaces them)")
    if summary["empty_notes"]:
        lines.append(f"{summary['empty_notes']} empty notes (empty .ann written)")
    if summary["notes_failed"]:
        kinds = ", ".join(f"{kind} {n}" for kind, n in summary["failures_by_kind"].items())
        lines.append(f"{summary['notes_failed']} notes failed ({kinds}); see {SUMMARY_FILE}")
    repaired = {name: n for name, dropped in summary["jsonl_records_dropped"].items() for n in [sum(dropped.values())]
                if n}
    if summary["notes_redone_after_repair"] or summary["stale_temporary_files_removed"] or repaired:
        lines.append("Repaired what an earlier run left: " + ", ".join(
            [f"{summary['notes_redone_after_repair']} notes annotated again (their .ann had lost its records)"] *
            bool(summary["notes_redone_after_repair"])
            + [f"{summary['stale_temporary_files_removed']} temporary files removed"] *
            bool(summary["stale_temporary_files_removed"])
            + [f"{n} stale lines dropped from {name}" for name, n in repaired.items()]))
    lines.append(f"Checked: {summary['notes_with_ann']} notes have an .ann, "
                 + ("each with exactly its records" if not summary["notes_inconsistent"] else
                    f"{summary['notes_inconsistent']} of them WITHOUT exactly their records (run it again)"))
    return "\n".join(lines)


def split_notes(paths: Sequence[Path], num_processes: int) -> list[list[Path]]:
    """Notes for each process, about equal in bytes (largest first, each to the least loaded process), each
    process's in name order: the same folder gives the same split."""
    def size(path: Path) -> int:
        try:
            return path.stat().st_size
        except OSError:
            return 0  # it fails when read, with its reason

    loads, shares = [0] * num_processes, [[] for _ in range(num_processes)]
    for path in sorted(paths, key=lambda path: (-size(path), path.name)):
        least = loads.index(min(loads))
        shares[least].append(path)
        loads[least] += size(path)
    return [sorted(share) for share in shares]
