"""Table annotation: a table of notes in, tables of entities and medications out, by one process
(``annotate_notes.py --input_table``).

The rows are checked (:func:`note_tables.check_rows`: failures reported by id and row number, never dropped), the
notes predicted in groups of about ``words_per_group`` words on the same path as a folder of notes (the same
entities, ``T`` ids and medication records), and the output folder written whole: ``entities.parquet``,
``medications.parquet`` (when attributes are linked), ``failed_rows.parquet`` and ``summary.json`` go into a hidden
sibling that replaces ``--output_dir`` only once every file is complete (``files.write_folder_atomically``). So a
killed run leaves no partial table at the target (the next run removes the sibling and says so), and a re-run
starts over: a table is one unit of work (a table too large to redo goes to ``annotate_spark.py``, which also runs
on one machine).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .files import SUMMARY_FILE, note_file_mode, write_folder_atomically, write_json_atomically
from .folder_annotation import (
    InputError, annotator_facts, entity_records, note_counts, relation_and_confidence_lines,
)
from .note_tables import (
    ENTITIES_TABLE, FAILED_ROWS_TABLE, MEDICATIONS_TABLE, RowFailure, check_rows, entity_rows, entity_schema,
    failed_row_schema, failure_summary, medication_rows, medication_schema, read_note_table, with_kept_columns,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from .note_annotator import NoteAnnotator

logger = logging.getLogger(__name__)


def annotate_table(annotator: NoteAnnotator, input_table, output_dir, *, id_column: str, text_column: str,
                   keep_columns: Sequence[str] = (), input_format: str | None = None, with_text: bool = False,
                   overwrite: bool = False, words_per_group: int = 50_000, progress: bool | None = None
                   ) -> dict[str, Any]:
    """Annotate every note row of ``input_table`` into ``output_dir`` (replaced whole, with ``overwrite``); returns
    the summary. The caller holds the output folder's lock (``folder_safety.FolderLock``)."""
    from tqdm.auto import tqdm

    from .note_annotator import medication_list

    started = time.perf_counter()
    table = read_note_table(input_table, id_column, text_column, keep_columns, input_format)
    if not table.ids:
        raise InputError(f"{input_table} has no rows")
    good, failures, document_ids = check_rows(table.ids, table.texts, table.malformed)
    _log_failures(failures, input_table)
    row_of_document = {document_ids[index]: index for index in good}
    linking = annotator.relation_linker is not None
    entities, medications, counts, types, relation_types = [], [], Counter(), Counter(), Counter()
    bar = tqdm(total=len(good), desc="notes", unit="note", disable=None if progress is None else not progress)
    try:
        for group in _groups(good, table.texts, words_per_group):
            texts = {document_ids[index]: table.texts[index] for index in group}
            predictions = annotator.predict(texts, progress=progress)
            links = annotator.link(texts, predictions) if linking else {}
            for document_id, note in predictions.items():
                text = texts[document_id]
                entities += entity_rows(entity_records(note), with_text)
                if linking:
                    medications += medication_rows(medication_list(note, text, links[document_id]), with_text)
                counts["notes_annotated"] += 1
                counts["empty_notes"] += not text.strip()
                counts.update(note_counts(note, text))
                types.update(entity.type for entity in note.entities)
                relation_types.update(candidate.type for candidate, _ in links.get(document_id, ()))
            bar.update(len(group))
            # (The bar is off where stderr is no terminal: a line per group says how far a long run is.)
            logger.info("%d of %d notes annotated", counts["notes_annotated"], len(good))
    finally:
        bar.close()
    facts = annotator_facts(annotator)
    seconds = time.perf_counter() - started
    summary = {
        "model_type": facts["model_type"],
        "input_table": str(input_table),
        "rows": len(table.ids),
        "notes_annotated": counts["notes_annotated"],
        **failure_summary(failures),
        "empty_notes": counts["empty_notes"],
        "characters": counts["characters"],
        "sentences": counts["sentences"],
        "words": counts["words"],
        "windows": counts["windows"],
        "windowed_sentences": counts["windowed_sentences"],
        "entities": sum(types.values()),
        "entities_by_type": dict(sorted(types.items())),
        "entities_below_min_confidence": counts["entities_below_min_confidence"],
        "relations": sum(relation_types.values()) if linking else None,
        "relations_by_type": dict(sorted(relation_types.items())) if linking else None,
        "medication_records": counts["drugs"] if linking else None,
        "relations_by": facts["relations_by"],
        "relations_choice_reason": facts["relations_choice_reason"],
        "outputs": [ENTITIES_TABLE] + [MEDICATIONS_TABLE] * linking + [FAILED_ROWS_TABLE, SUMMARY_FILE],
        "settings": {**facts["settings"], "id_column": id_column, "text_column": text_column,
                     "keep_columns": list(keep_columns), "with_text": with_text, "words_per_group": words_per_group},
        "seconds": round(seconds, 3),
        "characters_per_second": round(counts["characters"] / seconds, 1) if seconds > 0 else None,
    }
    # Kept columns and (with_text) entity text come from the notes' table: no more readable than it is.
    mode = note_file_mode([Path(input_table)] if Path(input_table).is_file() else [])

    def write(folder: Path) -> None:
        _write_parquet(with_kept_columns(entities, entity_schema(with_text), table.kept, row_of_document),
                       folder / ENTITIES_TABLE, mode)
        if linking:
            _write_parquet(with_kept_columns(medications, medication_schema(with_text), table.kept, row_of_document),
                           folder / MEDICATIONS_TABLE, mode)
        _write_parquet(_failed_rows_table(failures, table.kept), folder / FAILED_ROWS_TABLE, mode)
        write_json_atomically(folder / SUMMARY_FILE, summary)

    write_folder_atomically(output_dir, overwrite, write)
    return summary


def _groups(rows: Sequence[int], texts: Sequence[str], words_per_group: int):
    """Row indices in groups of about ``words_per_group`` words (a rough count by spaces), in row order."""
    group, size = [], 0
    for index in rows:
        group.append(index)
        size += len(texts[index].split())
        if size >= words_per_group:
            yield group
            group, size = [], 0
    if group:
        yield group


def _log_failures(failures: Sequence[RowFailure], input_table) -> None:
    """One ERROR line per kind: the count and the first row numbers and ids (never a row's text)."""
    by_kind: dict[str, list[RowFailure]] = {}
    for failure in failures:
        by_kind.setdefault(failure.kind, []).append(failure)
    for kind, rows in by_kind.items():
        shown = ", ".join(f"row {f.row}" + (f" (id {f.document_id})" if f.document_id is not None else "")
                          for f in rows[:10])
        logger.error("%s: %d rows not annotated, %s: %s%s", Path(str(input_table)).name, len(rows), kind, shown,
                     f" and {len(rows) - 10} more" if len(rows) > 10 else "")


def _failed_rows_table(failures: Sequence[RowFailure], kept: pa.Table) -> pa.Table:
    import pyarrow as pa

    table = pa.Table.from_pylist([{"row": f.row, "document_id": f.document_id, "kind": f.kind} for f in failures],
                                 schema=failed_row_schema(with_row=True))
    if not kept.num_columns:
        return table
    taken = kept.take(pa.array([f.row - 1 for f in failures], pa.int64()))
    for name in taken.column_names:
        table = table.append_column(taken.schema.field(name), taken.column(name))
    return table


def _write_parquet(table: pa.Table, path: Path, mode: int) -> None:
    import os

    import pyarrow.parquet as pq

    pq.write_table(table, path)
    os.chmod(path, mode)


def format_table_summary(summary: Mapping[str, Any], output_dir) -> str:
    """Counts only."""
    by_type = ", ".join(f"{t} {n}" for t, n in summary["entities_by_type"].items()) or "none"
    lines = [f"Annotated {summary['notes_annotated']} of {summary['rows']} rows into {output_dir} in "
             f"{summary['seconds']:.1f} s: {summary['sentences']} sentences, {summary['entities']} entities "
             f"({by_type})"]
    lines += relation_and_confidence_lines(summary, MEDICATIONS_TABLE)
    if summary["rows_failed"]:
        kinds = ", ".join(f"{kind} {n}" for kind, n in summary["failures_by_kind"].items())
        lines.append(f"{summary['rows_failed']} rows were not annotated ({kinds}): each is in {FAILED_ROWS_TABLE} "
                     "with its row number and id")
    lines.append("Written: " + ", ".join(summary["outputs"]))
    return "\n".join(lines)
