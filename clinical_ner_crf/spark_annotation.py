"""Spark annotation: a table of notes annotated where a cluster keeps it (``annotate_spark.py``).

The same rows as on one machine (:mod:`note_tables`: the same checks, the same columns), annotated on the same path
(``NoteAnnotator.predict``, ``folder_annotation.entity_records``, ``note_annotator.medication_list``), so the
entities and medication records are those of ``annotate_notes.py`` on the same notes.

- **Where the work runs**: each partition's rows go to :func:`annotate_batches` through ``mapInArrow`` (the Arrow
  form of ``mapInPandas``: the nested entity and medication lists are built as Arrow arrays, with no pandas round
  trip). The model folders are shipped to the executors once (``SparkContext.addFile``), and each executor's Python
  process loads the model once (:data:`_ANNOTATORS`) for every task and batch it runs.
- **What is written**: one row per note (its entities and medications as nested lists) is kept
  (``MEMORY_AND_DISK``) and written twice, exploded: ``entities.parquet`` and ``medications.parquet``, Spark's
  folders of parts, with ``failed_rows.parquet`` and ``summary.json``.
- **Retries**: a task's output depends only on its rows (the ONNX backend's output for a note does not depend on
  the batch: ``tests/test_annotate_notes.py``), and Spark's committer keeps one attempt of each task, so a failed
  executor's work is redone without duplicate rows.
- **No partial table at the target**: the tables are written into a hidden sibling of ``--output_dir``, which
  replaces it only when all are complete (``files.write_folder_atomically`` on a local or shared file system; the
  same with Hadoop's ``FileSystem.rename`` for ``hdfs://``, ``s3a://`` and other URIs, see :func:`write_atomically`).

Imports pyspark: nothing else in the toolkit imports this module.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import urlparse

import pyarrow as pa

from .files import SUMMARY_FILE, note_file_mode, set_tree_mode, write_folder_atomically
from .note_tables import (
    ENTITIES_TABLE, FAILED_ROWS_TABLE, MEDICATIONS_TABLE, entity_rows, entity_schema, failed_row_schema,
    medication_rows, medication_schema,
)

logger = logging.getLogger(__name__)

LIBRARY_DIR = Path(__file__).resolve().parent
COUNT_COLUMNS = ("characters", "sentences", "words", "windows", "windowed_sentences", "entities_below_min_confidence")


# ---------------------------------------------------------------------------
# Reading and checking the rows (the rules of note_tables.check_rows, in Spark)
# ---------------------------------------------------------------------------


def read_checked_rows(spark, path: str, fmt: str, id_column: str, text_column: str, keep_columns: Sequence[str]):
    """The table's rows as ``document_id``, ``text``, the kept columns and ``failure`` (None for a note, else a
    kind of :data:`note_tables.ROW_FAILURES`)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from .note_tables import check_columns

    if fmt == "json":
        # Each line as a variant, so that a number where the text should be is seen (Spark's JSON reader would turn
        # it into its digits); the kept columns typed as Spark infers them.
        inferred = spark.read.json(path).schema
        check_columns([name for name in inferred.names if name != "_corrupt_record"], id_column, text_column,
                      keep_columns, path)
        for name in [id_column, text_column, *keep_columns]:
            if "'" in name:
                raise ValueError(f"column name {name!r}: a name with a quote cannot be read from JSON lines here")
        record = F.col("_record")
        raw = spark.read.option("singleVariantColumn", "_record").json(path)

        def get(name: str, kind: str | None = None):
            return F.expr(f"variant_get(_record, '$[\\'{name}\\']'" + (f", '{kind}')" if kind else ")"))

        def kind_of(name: str):
            return F.expr(f"schema_of_variant(variant_get(_record, '$[\\'{name}\\']'))")

        id_kind, text_kind = kind_of(id_column), kind_of(text_column)
        integer = id_kind.isin("TINYINT", "SMALLINT", "INT", "BIGINT")
        failure = (F.when(record.isNull() | ~F.expr("schema_of_variant(_record)").startswith("OBJECT"),
                          F.lit("malformed_line"))
                   .when(id_kind.isNull() | (id_kind == "VOID"), F.lit("null_id"))
                   .when(~((id_kind == "STRING") | integer), F.lit("bad_id"))
                   .when(text_kind.isNull() | (text_kind == "VOID"), F.lit("null_text"))
                   .when(text_kind != "STRING", F.lit("non_string_text")))
        rows = raw.select(
            F.when(failure.isNull() | ~failure.isin("malformed_line", "null_id", "bad_id"),
                   get(id_column, "string")).alias("document_id"),
            F.when(text_kind == "STRING", get(text_column, "string")).alias("text"),
            *[get(name, inferred[name].dataType.simpleString()).alias(name) for name in keep_columns],
            failure.alias("failure"))
    else:
        reader = spark.read
        if fmt == "csv":  # RFC 4180, line breaks inside quotes, every column a string (as note_tables reads CSV)
            reader = reader.option("header", True).option("multiLine", True).option("escape", '"')
        table = reader.format(fmt).load(path)
        check_columns(table.columns, id_column, text_column, keep_columns, path)
        id_type, text_type = table.schema[id_column].dataType, table.schema[text_column].dataType
        id_ok = isinstance(id_type, (T.StringType, T.ByteType, T.ShortType, T.IntegerType, T.LongType))
        text_ok = isinstance(text_type, T.StringType)
        failure = (F.when(F.col(id_column).isNull(), F.lit("null_id"))
                   .when(F.lit(not id_ok), F.lit("bad_id"))
                   .when(F.col(text_column).isNull(), F.lit("null_text"))
                   .when(F.lit(not text_ok), F.lit("non_string_text")))
        rows = table.select(
            (F.col(id_column).cast("string") if id_ok else F.lit(None).cast("string")).alias("document_id"),
            (F.col(text_column) if text_ok else F.lit(None).cast("string")).alias("text"),
            *[F.col(name) for name in keep_columns], failure.alias("failure"))
    # An id on more than one row fails on every one of them (note_tables.check_rows).
    repeated = (rows.where(F.col("document_id").isNotNull()).groupBy("document_id").count()
                .where(F.col("count") > 1).select("document_id", F.lit(True).alias("_repeated")))
    rows = rows.join(repeated, "document_id", "left")
    return rows.select("document_id", "text", *keep_columns,
                       F.when(F.col("failure").isNull() & F.col("_repeated").isNotNull(), F.lit("duplicate_id"))
                       .otherwise(F.col("failure")).alias("failure"))


# ---------------------------------------------------------------------------
# The executors' side: one annotator per Python process, batches of rows in, one row per note out
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutorSettings:
    """What an executor needs to build its annotator and its output rows (picklable; the model folders by the
    names they were shipped under, ``SparkFiles``)."""

    model_file: str
    relation_file: str | None
    relations: Any  # relation_linking.RelationChoice
    backend: str
    onnx_model_file: str
    device: str
    num_threads: int | None
    with_text: bool
    keep_columns: tuple[str, ...]
    annotator_settings: tuple[tuple[str, Any], ...]  # batch_size, max_seq_length, stride, min_confidence


_ANNOTATORS: dict[ExecutorSettings, Any] = {}  # per executor Python process: loaded once, for every task


def executor_annotator(settings: ExecutorSettings):
    """This process's annotator for ``settings`` (loaded on first use)."""
    if settings not in _ANNOTATORS:
        from pyspark import SparkFiles, TaskContext
        from transformers.utils import logging as transformers_logging

        # transformers' own warnings (a tokenizer loaded from an export folder) are not the executor logs' business.
        transformers_logging.set_verbosity_error()

        from .note_annotator import NoteAnnotator

        device = settings.device
        if settings.backend == "torch" and device == "cuda":  # the GPU Spark gave this task, if it gave one
            context = TaskContext.get()
            gpus = context.resources().get("gpu") if context is not None else None
            device = f"cuda:{gpus.addresses[0]}" if gpus and gpus.addresses else "cuda"
        if settings.backend == "torch" and device == "cpu" and settings.num_threads:
            import torch

            torch.set_num_threads(settings.num_threads)
        relations = settings.relations
        if settings.relation_file is not None:
            relations = replace(relations, relation_model_name_or_path=SparkFiles.get(settings.relation_file))
        _ANNOTATORS[settings] = NoteAnnotator.from_pretrained(
            SparkFiles.get(settings.model_file), device=device, relations=relations, backend=settings.backend,
            onnx_model_file=settings.onnx_model_file if settings.backend == "onnx" else None,
            num_threads=settings.num_threads if settings.backend == "onnx" else None,
            **dict(settings.annotator_settings))
    return _ANNOTATORS[settings]


def note_schema(with_text: bool, linking: bool) -> pa.Schema:
    """One row per note: its entities and medications as nested lists (the rows of the output tables without
    ``document_id``), and the counts the summary adds up. Kept columns go between ``document_id`` and these."""
    entity = pa.struct([field for field in entity_schema(with_text) if field.name != "document_id"])
    medication = pa.struct([field for field in medication_schema(with_text) if field.name != "document_id"])
    return pa.schema([("entities", pa.list_(entity))] + [("medications", pa.list_(medication))] * linking
                     + [(name, pa.int64()) for name in COUNT_COLUMNS])


def annotate_batches(settings: ExecutorSettings, linking: bool, batches: Iterator[pa.RecordBatch]
                     ) -> Iterator[pa.RecordBatch]:
    """``mapInArrow``'s function: each batch of note rows (``document_id``, ``text``, kept columns) becomes a
    batch of one row per note, in the same order."""
    from .folder_annotation import entity_records, note_counts
    from .note_annotator import medication_list

    annotator = executor_annotator(settings)
    schema = note_schema(settings.with_text, linking)
    for batch in batches:
        document_ids = batch.column("document_id").to_pylist()
        texts = dict(zip(document_ids, batch.column("text").to_pylist()))
        predictions = annotator.predict(texts) if texts else {}
        links = annotator.link(texts, predictions) if linking and texts else {}
        columns: dict[str, list] = {name: [] for name in schema.names}
        for document_id in document_ids:
            note, text = predictions[document_id], texts[document_id]
            columns["entities"].append([{key: value for key, value in row.items() if key != "document_id"}
                                        for row in entity_rows(entity_records(note), settings.with_text)])
            if linking:
                columns["medications"].append(
                    [{key: value for key, value in row.items() if key != "document_id"}
                     for row in medication_rows(medication_list(note, text, links[document_id]), settings.with_text)])
            counts = note_counts(note, text)
            for name in COUNT_COLUMNS:
                columns[name].append(counts[name])
        arrays = [batch.column("document_id"), *[batch.column(name) for name in settings.keep_columns]]
        arrays += [pa.array(columns[name], schema.field(name).type) for name in schema.names]
        yield pa.RecordBatch.from_arrays(arrays, names=["document_id", *settings.keep_columns, *schema.names])


# ---------------------------------------------------------------------------
# The driver's side
# ---------------------------------------------------------------------------


def library_zip(folder: Path) -> Path:
    """The library and ``modeling_crf.py`` as one zip for ``SparkContext.addPyFile``: the executors import the
    same code as the driver, wherever they run."""
    path = folder / "clinical_ner_crf_library.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for source in sorted(LIBRARY_DIR.glob("*.py")):
            archive.write(source, f"{LIBRARY_DIR.name}/{source.name}")
        archive.write(LIBRARY_DIR.parent / "modeling_crf.py", "modeling_crf.py")
    return path


def is_local_path(path: str) -> bool:
    """A path of this machine's file system (or a shared one mounted here): no scheme, or ``file:``."""
    scheme = urlparse(str(path)).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and sys.platform == "win32")


def local_path(path: str) -> Path:
    return Path(urlparse(path).path if str(path).startswith("file:") else path)


def annotated_notes(rows, settings: ExecutorSettings, linking: bool, num_partitions: int):
    """The note rows (``failure`` null) annotated: one row per note with its nested entities and medications."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.sql.types import StringType, StructField, StructType

    notes = rows.where(F.col("failure").isNull()).select("document_id", "text", *settings.keep_columns)
    notes = notes.repartition(num_partitions, "document_id")  # by id: the same partitions on every attempt
    kept_fields = [rows.schema[name] for name in settings.keep_columns]
    output = from_arrow_schema(note_schema(settings.with_text, linking))
    schema = StructType([StructField("document_id", StringType()), *kept_fields, *output.fields])
    return notes.mapInArrow(partial(annotate_batches, settings, linking), schema)


def output_tables(annotated, rows, settings: ExecutorSettings, linking: bool) -> dict[str, Any]:
    """The tables to write, by name: entities, medications (when linking) and failed rows, columns as on one
    machine (note_tables)."""
    from pyspark.sql import functions as F

    keep = list(settings.keep_columns)
    entities = (annotated.select("document_id", F.explode("entities").alias("_entity"), *keep)
                .select("document_id", "_entity.*", *keep))
    tables = {ENTITIES_TABLE: entities}
    if linking:
        tables[MEDICATIONS_TABLE] = (annotated.select("document_id", F.explode("medications").alias("_drug"), *keep)
                                     .select("document_id", "_drug.*", *keep))
    document_id, kind = failed_row_schema(with_row=False).names  # (Spark has no row numbers)
    tables[FAILED_ROWS_TABLE] = (rows.where(F.col("failure").isNotNull())
                                 .select(document_id, F.col("failure").alias(kind), *keep))
    return tables


def summarize(annotated, rows, tables: Mapping[str, Any], linking: bool) -> dict[str, Any]:
    """``summary.json``'s counts, from the tables (Spark jobs over the kept note rows: never note text)."""
    from pyspark.sql import functions as F

    counts = annotated.agg(F.count(F.lit(1)).alias("notes"),
                           *[F.sum(name).alias(name) for name in COUNT_COLUMNS]).first().asDict()
    failures = dict(sorted((row["kind"], row["count"]) for row in
                           tables[FAILED_ROWS_TABLE].groupBy("kind").count().collect()))
    shown = [row["document_id"] for row in tables[FAILED_ROWS_TABLE].select("document_id").limit(20).collect()]
    types = dict(sorted((row["type"], row["count"]) for row in
                        tables[ENTITIES_TABLE].groupBy("type").count().collect()))
    summary = {
        "rows": rows.count(),
        "notes_annotated": counts["notes"],
        "rows_failed": sum(failures.values()),
        "failures_by_kind": failures,
        "failed_ids_shown": shown,
        **{name: counts[name] or 0 for name in COUNT_COLUMNS if name != "entities_below_min_confidence"},
        "entities": sum(types.values()),
        "entities_by_type": types,
        "entities_below_min_confidence": counts["entities_below_min_confidence"] or 0,
    }
    if linking:
        medications = tables[MEDICATIONS_TABLE]
        relations = dict(sorted((row["relation"], row["count"]) for row in medications
                                .select(F.explode("attributes.relation").alias("relation"))
                                .groupBy("relation").count().collect()))
        summary.update(relations=sum(relations.values()), relations_by_type=relations,
                       medication_records=medications.count())
    else:
        summary.update(relations=None, relations_by_type=None, medication_records=None)
    return summary


def write_tables(tables: Mapping[str, Any], folder: str, partition_by: str | None) -> None:
    for name, table in tables.items():
        writer = table.write.mode("errorifexists")
        if partition_by and name != FAILED_ROWS_TABLE:
            writer = writer.partitionBy(partition_by)
        writer.parquet(f"{folder.rstrip('/')}/{name}")


def write_atomically(spark, output_dir: str, overwrite: bool, write, file_mode: int | None = None) -> None:
    """``write(folder)`` into a hidden sibling of ``output_dir``, then moved into place: on a local or shared file
    system with ``files.write_folder_atomically`` (the toolkit's one atomic writer; the caller holds the folder's
    lock), elsewhere (``hdfs://``, ``s3a://``, ...) with Hadoop's ``FileSystem``: an existing output is refused
    unless ``overwrite``, and then replaced only if it holds nothing but this command's outputs. (On object stores
    a rename is a copy: the sibling is complete before it starts, but the copy itself is not atomic.)"""
    if is_local_path(output_dir):
        def write_local(folder: Path) -> None:
            write(str(folder))
            if file_mode is not None:  # outputs no more readable than the notes they come from
                set_tree_mode(folder, file_mode)

        write_folder_atomically(local_path(output_dir), overwrite, write_local)
        return
    jvm = spark.sparkContext._jvm
    target = jvm.org.apache.hadoop.fs.Path(output_dir)
    fs = target.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    own = {ENTITIES_TABLE, MEDICATIONS_TABLE, FAILED_ROWS_TABLE, SUMMARY_FILE}
    if fs.exists(target):
        names = {status.getPath().getName() for status in fs.listStatus(target)}
        if names and not overwrite:
            raise FileExistsError(f"output folder {output_dir} exists and is not empty (pass --overwrite to replace "
                                  "it)")
        if names - own:
            raise FileExistsError(f"{output_dir} holds {', '.join(sorted(names - own)[:5])}, which this command did "
                                  "not write: --overwrite replaces only its own outputs; choose another output folder")
    staging = jvm.org.apache.hadoop.fs.Path(target.getParent(), f".{target.getName()}.partial-{os.getpid()}")
    fs.delete(staging, True)
    try:
        write(staging.toString())
        if fs.exists(target):
            fs.delete(target, True)
        if not fs.rename(staging, target):
            raise OSError(f"could not move {staging.toString()} to {output_dir}")
    except BaseException:
        fs.delete(staging, True)
        raise


def write_summary(spark, folder: str, summary: Mapping[str, Any]) -> None:
    """``summary.json`` into ``folder`` (local, or through Hadoop's FileSystem)."""
    text = json.dumps(summary, indent=2, default=float) + "\n"
    if is_local_path(folder):
        (local_path(folder) / SUMMARY_FILE).write_text(text, encoding="utf-8")
        return
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(f"{folder.rstrip('/')}/{SUMMARY_FILE}")
    stream = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).create(path, False)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def output_file_mode(input_path: str) -> int | None:
    """The mode of files that hold note-derived data: no more readable than the input table (local inputs)."""
    if not is_local_path(input_path):
        return None
    path = local_path(input_path)
    sources = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())[:1000]
    return note_file_mode(sources)


def ship_library(spark) -> Path:
    """Send the library to every executor; returns the temporary folder of its zip (the caller removes it)."""
    folder = Path(tempfile.mkdtemp(prefix="clinical_ner_crf_spark_"))
    spark.sparkContext.addPyFile(str(library_zip(folder)))
    return folder
