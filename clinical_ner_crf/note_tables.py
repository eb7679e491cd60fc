"""Note tables: notes kept as rows of a table (Parquet, JSON lines, CSV), the checks every row passes, and the rows
of the entity and medication tables written back.

The one home of what a table of notes is, shared by ``annotate_notes.py --input_table`` (pyarrow, one machine:
:mod:`table_annotation`) and ``annotate_spark.py`` (Spark: :mod:`spark_annotation`), so that both accept and refuse
the same rows and write the same columns:

- **Input**: a row per note, an id column (strings or integers; integers become their decimal digits) and a text
  column (strings); other columns are carried through on request (``keep_columns``).
- **Rows that are not annotated** are reported by id (and row number, on one machine), never dropped silently; the
  kinds, in the order they are checked, are :data:`ROW_FAILURES`. An id that occurs on more than one row fails on
  every one of them: which row would be the note is the user's call, and neither engine has a row order to break
  the tie the same way.
- **Output columns** (:func:`entity_schema`, :func:`medication_schema`): never the note text; the entity text only
  with ``with_text``.

pyarrow only (it comes with ``datasets``); no model code.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pyarrow as pa

from .command_line import DataError, UsageError

DEFAULT_ID_COLUMN = "note_id"
DEFAULT_TEXT_COLUMN = "text"
# What an annotated table becomes: a Parquet file (one machine) or Spark's folder of parts, of the same columns.
ENTITIES_TABLE = "entities.parquet"
MEDICATIONS_TABLE = "medications.parquet"
FAILED_ROWS_TABLE = "failed_rows.parquet"
# The formats, by the file's suffix (a folder is Parquet parts, as Spark writes them).
TABLE_FORMATS = {".parquet": "parquet", ".jsonl": "json", ".ndjson": "json", ".csv": "csv"}

# Why a row is not annotated, in the order the checks run (a row fails with the first that applies).
ROW_FAILURES = {
    "malformed_line": "the line is not a JSON object",
    "null_id": "the id is missing or null",
    "bad_id": "the id is neither a string nor an integer",
    "null_text": "the text is missing or null",
    "non_string_text": "the text is not a string",
    "duplicate_id": "another row has the same id (ids must be unique: none of those rows is annotated)",
}

def table_format(path, explicit: str | None = None) -> str:
    """``parquet``, ``json`` (JSON lines) or ``csv``: ``explicit`` if given, else from the suffix (a folder: Parquet
    parts)."""
    if explicit:
        if explicit not in set(TABLE_FORMATS.values()):
            raise UsageError(f"--input_format {explicit!r}: choose parquet, json (JSON lines) or csv")
        return explicit
    suffix = Path(str(path).rstrip("/")).suffix.lower()
    if suffix in TABLE_FORMATS:
        return TABLE_FORMATS[suffix]
    if suffix == "" and Path(path).is_dir():
        return "parquet"
    raise UsageError(f"{path}: cannot tell the table's format from its name (.parquet, .jsonl, .csv, or a folder of "
                     "Parquet parts); pass --input_format parquet|json|csv")


def check_columns(available: Iterable[str], id_column: str, text_column: str, keep_columns: Sequence[str],
                  where) -> None:
    """One line naming what is missing and what the table has."""
    available = list(available)
    wanted = {"--id_column": [id_column], "--text_column": [text_column], "--keep_columns": list(keep_columns)}
    missing = [f"{flag} {name}" for flag, names in wanted.items() for name in names if name not in available]
    if missing:
        shown = ", ".join(available[:20]) + (f" and {len(available) - 20} more" if len(available) > 20 else "")
        raise UsageError(f"{where} has no column {', '.join(missing)} (its columns: {shown or 'none'})")
    clashes = [name for name in keep_columns if name in (id_column, text_column) or name in OUTPUT_COLUMNS]
    if clashes:
        raise UsageError(f"--keep_columns {', '.join(clashes)}: an id, text or output column name; keep other columns")
    if len(set(keep_columns)) != len(keep_columns):
        raise UsageError("--keep_columns names a column twice")


# ---------------------------------------------------------------------------
# Rows: which are notes, which fail and why
# ---------------------------------------------------------------------------


@dataclass
class RowFailure:
    """A row that is not annotated: its row number (1-based, where the engine has one), id (None when it has none)
    and kind (:data:`ROW_FAILURES`)."""

    row: int | None
    document_id: str | None
    kind: str


def normalize_id(value: Any) -> tuple[str | None, str | None]:
    """(document id, failure kind): a string as it is, an integer as its digits."""
    if value is None:
        return None, "null_id"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None, "bad_id"
    return str(value), None


def check_rows(ids: Sequence[Any], texts: Sequence[Any], malformed: Iterable[int] = ()
               ) -> tuple[list[int], list[RowFailure], list[str | None]]:
    """The indices of the rows that are notes, the failures (row numbers 1-based) and each row's id."""
    malformed = set(malformed)
    document_ids: list[str | None] = []
    kinds: list[str | None] = []
    for index, (value, text) in enumerate(zip(ids, texts)):
        if index in malformed:
            document_id, kind = None, "malformed_line"
        else:
            document_id, kind = normalize_id(value)
            if kind is None and text is None:
                kind = "null_text"
            elif kind is None and not isinstance(text, str):
                kind = "non_string_text"
        document_ids.append(document_id)
        kinds.append(kind)
    counts = Counter(document_id for document_id in document_ids if document_id is not None)
    good, failures = [], []
    for index, (document_id, kind) in enumerate(zip(document_ids, kinds)):
        if kind is None and counts[document_id] > 1:
            kind = "duplicate_id"
        if kind is None:
            good.append(index)
        else:
            failures.append(RowFailure(index + 1, document_id, kind))
    return good, failures, document_ids


def failure_summary(failures: Sequence[RowFailure], shown: int = 20) -> dict[str, Any]:
    """What ``summary.json`` says of the failed rows: counts by kind and the first ids (ids are not note text)."""
    return {
        "rows_failed": len(failures),
        "failures_by_kind": dict(sorted(Counter(f.kind for f in failures).items())),
        "failed_ids_shown": [f.document_id for f in failures[:shown]],
    }


# ---------------------------------------------------------------------------
# Reading a table on one machine (pyarrow)
# ---------------------------------------------------------------------------


@dataclass
class NoteTable:
    """A table read on one machine: per row the id and text as read (any type), the rows that were not JSON, and
    the kept columns (row-aligned)."""

    ids: list[Any]
    texts: list[Any]
    kept: pa.Table
    malformed: list[int] = field(default_factory=list)
    text_type: str = "string"


def read_note_table(path, id_column: str = DEFAULT_ID_COLUMN, text_column: str = DEFAULT_TEXT_COLUMN,
                    keep_columns: Sequence[str] = (), input_format: str | None = None) -> NoteTable:
    """Read the id, text and kept columns of a table (the whole table is held in memory: about its size
    uncompressed; a table larger than memory goes to annotate_spark.py, which also runs on one machine)."""
    path = Path(path)
    fmt = table_format(path, input_format)
    try:
        return _read_note_table(path, fmt, id_column, text_column, keep_columns)
    except pa.ArrowException as error:
        raise DataError(f"{path}: not a readable {fmt} table: {describe_arrow_error(error)}") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 at byte {error.start}") from None


def describe_arrow_error(error: Exception) -> str:
    """pyarrow's reason without the values it quotes (a CSV row's text, say): its words up to the first quote,
    with a row number if it gives one."""
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    return re.split(r"[\"']", message, maxsplit=1)[0].rstrip(" :") or type(error).__name__


def _read_note_table(path: Path, fmt: str, id_column: str, text_column: str, keep_columns: Sequence[str]
                     ) -> NoteTable:
    if fmt == "json":
        return _read_json_lines(path, id_column, text_column, keep_columns)
    columns = [id_column, text_column, *keep_columns]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        schema = pq.read_schema(path) if path.is_file() else pq.ParquetDataset(path).schema
        check_columns(schema.names, id_column, text_column, keep_columns, path)
        table = pq.read_table(path, columns=columns)
    else:
        import pyarrow.csv as pacsv

        # As Spark reads CSV (header, RFC 4180 quotes, line breaks inside quotes): every column a string, an empty
        # field null, quoted or not (so a row with an empty text is reported, not annotated as an empty note).
        header = _csv_header(path)
        check_columns(header, id_column, text_column, keep_columns, path)
        table = pacsv.read_csv(
            path, parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(include_columns=columns,
                                                 column_types={name: pa.string() for name in columns},
                                                 strings_can_be_null=True, quoted_strings_can_be_null=True,
                                                 null_values=[""]))
    id_type, text_type = table.schema.field(id_column).type, table.schema.field(text_column).type
    if not (pa.types.is_string(id_type) or pa.types.is_large_string(id_type) or pa.types.is_integer(id_type)):
        ids = [None if value is None else object() for value in table.column(id_column).to_pylist()]  # bad_id
    else:
        ids = table.column(id_column).to_pylist()
    texts = table.column(text_column).to_pylist()
    if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)):
        texts = [None if value is None else _NotText() for value in texts]  # non_string_text
    return NoteTable(ids, texts, table.select(list(keep_columns)), text_type=str(text_type))


def check_local_table(path: Path, fmt: str, id_column: str, text_column: str, keep_columns: Sequence[str]) -> None:
    """A local Parquet or CSV table's columns, from its schema or header alone (no rows read): a mistyped column or
    a file that is not a table is one line before anything starts. JSON lines have no header: checked when read."""
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            names = (pq.read_schema(path) if path.is_file() else pq.ParquetDataset(path).schema).names
        elif fmt == "csv":
            names = _csv_header(path)
        else:
            return
    except pa.ArrowException as error:
        raise DataError(f"{path}: not a readable {fmt} table: {describe_arrow_error(error)}") from None
    check_columns(names, id_column, text_column, keep_columns, path)


class _NotText:
    """A value of a non-string text column (binary, numbers): it fails as ``non_string_text``."""


def _csv_header(path: Path) -> list[str]:
    import pyarrow.csv as pacsv

    reader = pacsv.open_csv(path, parse_options=pacsv.ParseOptions(newlines_in_values=True),
                            convert_options=pacsv.ConvertOptions(column_types={}, strings_can_be_null=True))
    return reader.schema.names


def _read_json_lines(path: Path, id_column: str, text_column: str, keep_columns: Sequence[str]) -> NoteTable:
    """JSON lines, one object per line, read as Python values, so that a number where the text should be is seen
    (pyarrow and Spark readers would turn it into a string, or refuse the file)."""
    ids, texts, malformed = [], [], []
    kept: dict[str, list] = {name: [] for name in keep_columns}
    seen: set[str] = set()
    with open(path, "rb") as handle:
        for index, line in enumerate(handle):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                record = None
            if not isinstance(record, dict):
                malformed.append(len(ids))
                record = {}
            seen.update(record)
            ids.append(record.get(id_column))
            texts.append(record.get(text_column))
            for name in keep_columns:
                kept[name].append(record.get(name))
    if ids:  # a column that no line has is a mistyped name, not a table of null ids
        check_columns(sorted(seen), id_column, text_column, keep_columns, path)
    return NoteTable(ids, texts, pa.table({name: _json_column(values) for name, values in kept.items()}),
                     malformed=malformed)


def _json_column(values: list) -> pa.Array:
    """A kept JSON column as Spark's JSON reader types it: integers, numbers or booleans when all values are such,
    else strings (a non-string value as its JSON text)."""
    kinds = {type(value) for value in values if value is not None}
    if kinds <= {bool}:
        return pa.array(values, pa.bool_())
    if kinds <= {int}:
        return pa.array(values, pa.int64())
    if kinds <= {int, float}:
        return pa.array([None if value is None else float(value) for value in values], pa.float64())
    return pa.array([value if value is None or isinstance(value, str) else json.dumps(value, separators=(",", ":"))
                     for value in values], pa.string())


# ---------------------------------------------------------------------------
# The output tables
# ---------------------------------------------------------------------------


# The columns every output row starts with; kept columns follow them.
OUTPUT_COLUMNS = ("document_id", "id", "type", "start", "end", "confidence", "text", "drug", "attributes")


def entity_schema(with_text: bool = False) -> pa.Schema:
    """``entities.parquet``: one row per entity; ``id`` is its ``T`` line in the folder path's ``.ann``."""
    fields = [("document_id", pa.string()), ("id", pa.string()), ("type", pa.string()), ("start", pa.int64()),
              ("end", pa.int64()), ("confidence", pa.float64())]
    return pa.schema(fields + [("text", pa.string())] * with_text)


def _mention_type(with_text: bool, attribute: bool) -> pa.DataType:
    fields = [("id", pa.string())] * attribute + [("type", pa.string()), ("start", pa.int64()), ("end", pa.int64())]
    fields += [("text", pa.string())] * with_text + [("confidence", pa.float64())]
    fields += [("relation", pa.string()), ("relation_confidence", pa.float64())] * attribute
    return pa.struct(fields)


def medication_schema(with_text: bool = False) -> pa.Schema:
    """``medications.parquet``: one row per drug mention, its attributes a nested list (as ``medications.jsonl``)."""
    return pa.schema([("document_id", pa.string()), ("id", pa.string()),
                      ("drug", _mention_type(with_text, attribute=False)),
                      ("attributes", pa.list_(_mention_type(with_text, attribute=True)))])


def failed_row_schema(with_row: bool) -> pa.Schema:
    return pa.schema([("row", pa.int64())] * with_row + [("document_id", pa.string()), ("kind", pa.string())])


def entity_rows(entity_records: Iterable[Mapping[str, Any]], with_text: bool = False) -> list[dict[str, Any]]:
    """Rows of ``entities.parquet`` from ``entities.jsonl`` records (``folder_annotation.entity_records``)."""
    names = entity_schema(with_text).names
    return [{name: record[name] for name in names} for record in entity_records]


def medication_rows(records: Iterable[Mapping[str, Any]], with_text: bool = False) -> list[dict[str, Any]]:
    """Rows of ``medications.parquet`` from ``medications.jsonl`` records (``note_annotator.medication_list``)."""
    def mention(item: Mapping[str, Any], kind: pa.DataType) -> dict[str, Any]:
        return {kind.field(i).name: item[kind.field(i).name] for i in range(kind.num_fields)}

    schema = medication_schema(with_text)
    drug_type, attribute_type = schema.field("drug").type, schema.field("attributes").type.value_type
    return [{"document_id": record["document_id"], "id": record["id"], "drug": mention(record["drug"], drug_type),
             "attributes": [mention(item, attribute_type) for item in record["attributes"]]} for record in records]


def with_kept_columns(rows: list[dict[str, Any]], schema: pa.Schema, kept: pa.Table,
                      row_of_document: Mapping[str, int]) -> pa.Table:
    """``rows`` as a table of ``schema``, each row followed by the kept columns of its note's input row."""
    table = pa.Table.from_pylist(rows, schema=schema)
    if kept.num_columns:
        indices = pa.array([row_of_document[row["document_id"]] for row in rows], pa.int64())
        taken = kept.take(indices)
        for name in taken.column_names:
            table = table.append_column(taken.schema.field(name), taken.column(name))
    return table
