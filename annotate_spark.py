#!/usr/bin/env python
"""Annotate a table of notes on Apache Spark: the job of ``annotate_notes.py --input_table``, where the notes live.

On a cluster (on premises, Databricks, EMR, ...), from the repository's folder (the driver here, client mode), with
the toolkit's Python environment on the executors (the library and the models are shipped to them by the command)::

    spark-submit annotate_spark.py \\
        --model_name_or_path runs/bert_crf_onnx --input_table hdfs:///warehouse/notes \\
        --output_dir hdfs:///nlp/notes_annotated

On one machine, Spark in the same process (``--master 'local[N]'``: N cores)::

    python annotate_spark.py --model_name_or_path runs/bert_crf_onnx --input_table notes.parquet --output_dir out/ \\
        --master 'local[2]'

Input: any path Spark reads (a Parquet file or folder of parts, JSON lines, CSV; ``--input_format`` or the suffix),
one row per note, ``--id_column`` (default ``note_id``) and ``--text_column`` (default ``text``); ``--keep_columns``
are carried into every output row. The rows are checked as on one machine (``note_tables.py``): a row without an
id or text, with a non-string text, or whose id another row shares is not annotated, and is written to
``failed_rows.parquet`` with its id and reason (counts in ``summary.json``).

Output (``--output_dir``, Spark's folders of parts; the columns of ``annotate_notes.py --input_table``):
``entities.parquet`` (``document_id``, ``id``, ``type``, ``start``, ``end``, ``confidence``; the entity text with
``--with_text``), ``medications.parquet`` (with relations: one row per drug, its attributes a nested list),
``failed_rows.parquet`` and ``summary.json`` (counts, settings, time; never note text). ``--partition_by COLUMN``
(a kept column) partitions the entity and medication tables by it. The folder appears whole or not at all: the
tables are written into a hidden sibling that replaces it at the end (a killed job leaves the sibling, which the
next run removes); a non-empty ``--output_dir`` is refused unless ``--overwrite``.

The model: ``--backend onnx`` (default; an ``export_onnx.py`` folder or Hub id, ``--onnx_model_file
model.int8.onnx`` for int8) or ``--backend torch`` (a ``run_ner_crf.py`` folder; ``--device cuda`` on GPU
executors). Relations as in ``annotate_notes.py`` (``--relation_model_name_or_path``, ``--relations``). The model
folders are resolved on the driver (Hub ids downloaded once), shipped to every executor, and loaded once per
executor process; notes go to it in Arrow batches of ``--notes_per_batch`` rows (``mapInArrow``), each batch
predicted in length-sorted batches of ``--batch_size`` windows. docs/spark.md gives the cost model and settings for
millions of notes.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from clinical_ner_crf.command_line import SHARED_FLAG_HELP, UsageError, exit_status, parse_command, run_main
from clinical_ner_crf.console import configure_output
from clinical_ner_crf.files import BACKENDS, ONNX_FILE, ONNX_INT8_FILE
from clinical_ner_crf.folder_safety import FolderLock, check_output_apart
from clinical_ner_crf.model_sources import check_local_model_sources, check_model_sources
from clinical_ner_crf.note_tables import (
    DEFAULT_ID_COLUMN, DEFAULT_TEXT_COLUMN, TABLE_FORMATS, check_local_table, table_format,
)
from clinical_ner_crf.relations import RELATION_CHOICES
from clinical_ner_crf.tagging import DEFAULT_BATCH_SIZE, DEFAULT_MAX_SEQ_LENGTH, DEFAULT_STRIDE

logger = logging.getLogger(__name__)

SCRIPT = "annotate_spark.py"
DESCRIPTION = __doc__.split("\n\n")[0]
DEFAULT_NOTES_PER_BATCH = 256
PARTITIONS_PER_CORE = 4


@dataclass
class SparkAnnotationArguments:
    """Arguments of ``annotate_spark.py``: a model, a table of notes, where the tables go, and Spark's settings."""

    model_name_or_path: str = field(metadata={"help": "export_onnx.py folder (--backend onnx) or run_ner_crf.py "
                                                      "folder (--backend torch), or the Hub id of one."})
    input_table: str = field(metadata={"help": "The table of notes: any path Spark reads (a Parquet file or folder of "
                                               "parts, JSON lines, CSV; local, hdfs://, s3a://, ...)."})
    output_dir: str = field(metadata={"help": "Where entities.parquet, medications.parquet, failed_rows.parquet and "
                                              "summary.json go (a folder of its own; written whole at the end)."})
    input_format: Optional[str] = field(default=None, metadata={
        "help": "parquet, json (JSON lines) or csv (default: from the input's suffix; a folder is Parquet).",
        "choices": sorted(set(TABLE_FORMATS.values()))})
    id_column: str = field(default=DEFAULT_ID_COLUMN, metadata={"help": "The column of note ids (unique)."})
    text_column: str = field(default=DEFAULT_TEXT_COLUMN, metadata={"help": "The column of note text."})
    keep_columns: list[str] = field(default_factory=list, metadata={
        "help": "Columns carried into every output row (a visit date, a department, ...)."})
    with_text: bool = field(default=False, metadata={
        "help": "Add each entity's text to the output tables (off by default: they then hold no note text)."})
    partition_by: Optional[str] = field(default=None, metadata={
        "help": "Partition the entity and medication tables by this column (one of --keep_columns)."})
    backend: str = field(default="onnx", metadata={
        "help": "onnx (an export_onnx.py folder, onnxruntime on the executors' CPUs) or torch (a model folder; "
                "--device cuda for GPU executors).", "choices": list(BACKENDS)})
    onnx_model_file: str = field(default=ONNX_FILE, metadata={
        "help": f"With --backend onnx: {ONNX_FILE} (fp32) or {ONNX_INT8_FILE} (export_onnx.py --quantize int8)."})
    device: str = field(default="cpu", metadata={
        "help": "With --backend torch: cpu, or cuda (each task on the GPU Spark assigns it, with "
                "spark.task.resource.gpu.amount; else cuda:0).", "choices": ["cpu", "cuda"]})
    relation_model_name_or_path: Optional[str] = field(default=None, metadata={
        "help": "A run_re.py relation model (folder or Hub id): links attributes to drugs, medications.parquet."})
    relations: str = field(default="auto", metadata={
        "help": "model, rule (nearest drug; no relation model needed) or auto, as in annotate_notes.py.",
        "choices": list(RELATION_CHOICES)})
    link_threshold: Optional[float] = field(default=None, metadata={
        "help": "Link at this probability or above (default: the relation model's own)."})
    min_confidence: float = field(default=0.0, metadata={"help": "Drop entities whose confidence is below this."})
    batch_size: int = field(default=DEFAULT_BATCH_SIZE, metadata={"help": "Windows per model call."})
    max_seq_length: Optional[int] = field(default=None, metadata={
        "help": f"Subwords per window (default: {DEFAULT_MAX_SEQ_LENGTH}, or what the model takes if less)."})
    stride: int = field(default=DEFAULT_STRIDE, metadata={"help": "Subwords of overlap between windows."})
    notes_per_batch: int = field(default=DEFAULT_NOTES_PER_BATCH, metadata={
        "help": "Notes per Arrow batch handed to the model in a task (spark.sql.execution.arrow.maxRecordsPerBatch)."})
    num_partitions: Optional[int] = field(default=None, metadata={
        "help": f"Partitions of the notes (tasks), by note id (default: {PARTITIONS_PER_CORE} per core of the "
                "application, spark.default.parallelism)."})
    num_threads: Optional[int] = field(default=None, metadata={
        "help": "CPU threads per task for the model (default: spark.task.cpus, 1 unless set)."})
    master: Optional[str] = field(default=None, metadata={
        "help": "Spark master, e.g. 'local[2]' to run on this machine's cores (default: spark-submit's)."})
    spark_conf: list[str] = field(default_factory=list, metadata={
        "help": "More Spark settings, KEY=VALUE each, after one flag (e.g. --spark_conf spark.executor.memory=4g "
                "spark.task.cpus=2)."})
    overwrite: bool = field(default=False, metadata={"help": SHARED_FLAG_HELP["overwrite"]})
    model_revision: str = field(default="main", metadata={"help": SHARED_FLAG_HELP["model_revision"]})
    token: Optional[str] = field(default=None, metadata={"help": SHARED_FLAG_HELP["token"]})


def parse_args(argv: Sequence[str] | None = None) -> SparkAnnotationArguments:
    (args,) = parse_command(SCRIPT, (SparkAnnotationArguments,), argv, DESCRIPTION)
    check_local_model_sources({"--model_name_or_path": args.model_name_or_path,
                               "--relation_model_name_or_path": args.relation_model_name_or_path})
    problems = []
    if args.backend == "onnx" and args.device != "cpu":
        problems.append("--backend onnx runs on the CPU (onnxruntime): --device cuda is for --backend torch")
    if args.partition_by is not None and args.partition_by not in args.keep_columns:
        problems.append(f"--partition_by {args.partition_by}: name one of --keep_columns")
    for flag in ("notes_per_batch", "num_partitions", "num_threads", "batch_size"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            problems.append(f"--{flag} must be at least 1, got {value}")
    if not 0.0 <= args.min_confidence <= 1.0:
        problems.append(f"--min_confidence must be in [0, 1], got {args.min_confidence}")
    bad_conf = [item for item in args.spark_conf if "=" not in item]
    if bad_conf:
        problems.append(f"--spark_conf {bad_conf[0]!r}: give KEY=VALUE")
    if problems:
        raise UsageError("; ".join(problems))
    return args


def resolved_model(name: str, args: SparkAnnotationArguments, onnx: bool) -> str:
    """A local folder for a model (a Hub id downloaded once, on the driver), to ship to the executors."""
    if Path(name).is_dir():
        return name
    if onnx:
        from clinical_ner_crf.onnx_backend import export_folder

        return str(export_folder(name, args.onnx_model_file, revision=args.model_revision, token=args.token))
    from huggingface_hub import snapshot_download

    return snapshot_download(name, revision=args.model_revision, token=args.token)


def start_spark(args: SparkAnnotationArguments):
    from pyspark.sql import SparkSession

    if args.master and args.master.startswith("local"):
        # The executors are this machine's Python: the one running this command (not whatever `python3` is first
        # on the PATH). On a cluster, PYSPARK_PYTHON is the cluster's setting.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # no network needed (nor a warning about it)
    if not logger.isEnabledFor(logging.INFO):
        # pyspark 4.3 warns that it does not yet fully support pandas 3 (which it does not use here: mapInArrow);
        # the executors' Python processes take the same filter from the environment.
        quiet = "ignore:PySpark does not yet fully support pandas:FutureWarning"
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), quiet]))
    builder = SparkSession.builder.appName(SCRIPT).config("spark.ui.showConsoleProgress", "false")
    builder = builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", str(args.notes_per_batch))
    if args.master:
        builder = builder.master(args.master)
    if not logger.isEnabledFor(logging.INFO):
        builder = builder.config("spark.executorEnv.PYTHONWARNINGS", os.environ["PYTHONWARNINGS"])
    for item in args.spark_conf:
        key, value = item.split("=", 1)
        builder = builder.config(key.strip(), value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("INFO" if logger.isEnabledFor(logging.INFO) else "ERROR")
    return spark


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        fmt = table_format(args.input_table, args.input_format)
        args.model_name_or_path, args.relation_model_name_or_path = check_model_sources({
            "--model_name_or_path": args.model_name_or_path,
            "--relation_model_name_or_path": args.relation_model_name_or_path},
            revision=args.model_revision, token=args.token).values()
    except UsageError as error:
        print(f"{SCRIPT}: error: {error}", file=sys.stderr)
        return exit_status(error)
    configure_output(logger)
    started = time.perf_counter()
    from clinical_ner_crf import spark_annotation as sa
    from clinical_ner_crf.relation_linking import check_relation_request, choose_relations
    from clinical_ner_crf.table_annotation import format_table_summary

    # The input and the output folder, before Spark starts.
    check_relation_request(args.relations, args.relation_model_name_or_path is not None, args.link_threshold)
    local_output = sa.is_local_path(args.output_dir)
    if sa.is_local_path(args.input_table):
        if not sa.local_path(args.input_table).exists():
            raise UsageError(f"--input_table {args.input_table}: no such file or folder")
        # A local Parquet or CSV table's columns, read on the driver before Spark starts (JSON lines: by Spark).
        check_local_table(sa.local_path(args.input_table), fmt, args.id_column, args.text_column, args.keep_columns)
        if local_output:
            check_output_apart(sa.local_path(args.output_dir), {"--input_table": str(sa.local_path(args.input_table))})
    lock = FolderLock(sa.local_path(args.output_dir), SCRIPT, enabled=local_output)
    with lock:
        if local_output:
            from clinical_ner_crf.files import check_output_dir

            check_output_dir(sa.local_path(args.output_dir), args.overwrite)
        # The models: local folders, to ship; how attributes are linked, decided once from the relation model's config.
        model_dir = resolved_model(args.model_name_or_path, args, onnx=args.backend == "onnx")
        relation_dir = (resolved_model(args.relation_model_name_or_path, args, onnx=False)
                        if args.relation_model_name_or_path else None)
        relations = choose_relations(args.relations, relation_dir, link_threshold=args.link_threshold)
        if relations.by is not None:
            logger.info("%s", relations.describe())
        linking = relations.by is not None

        # Spark: the library and the models to every executor.
        spark = start_spark(args)
        library = sa.ship_library(spark)
        try:
            spark.sparkContext.addFile(model_dir, recursive=True)
            model_name = Path(model_dir).name
            relation_name = None
            if relations.by == "model":
                relation_name = Path(relation_dir).name
                if relation_name == model_name:
                    raise UsageError(f"the model and the relation model are both folders named {model_name!r}: "
                                     "Spark ships files by name; rename one of them")
                spark.sparkContext.addFile(relation_dir, recursive=True)
            threads = args.num_threads or int(spark.conf.get("spark.task.cpus", "1"))
            settings = sa.ExecutorSettings(
                model_file=model_name, relation_file=relation_name, relations=relations, backend=args.backend,
                onnx_model_file=args.onnx_model_file, device=args.device, num_threads=threads,
                with_text=args.with_text, keep_columns=tuple(args.keep_columns),
                annotator_settings=(("batch_size", args.batch_size), ("max_seq_length", args.max_seq_length),
                                    ("stride", args.stride), ("min_confidence", args.min_confidence)))
            partitions = args.num_partitions or PARTITIONS_PER_CORE * spark.sparkContext.defaultParallelism

            # Read and check the rows; annotate the notes; the tables.
            rows = sa.read_checked_rows(spark, args.input_table, fmt, args.id_column, args.text_column,
                                        args.keep_columns)
            from pyspark import StorageLevel

            annotated = sa.annotated_notes(rows, settings, linking, partitions).persist(
                StorageLevel.MEMORY_AND_DISK)
            tables = sa.output_tables(annotated, rows, settings, linking)

            def write(folder: str) -> None:
                sa.write_tables(tables, folder, args.partition_by)
                summary.update(sa.summarize(annotated, rows, tables, linking))
                if summary["rows"] == 0:
                    raise UsageError(f"--input_table {args.input_table} has no rows")
                summary.update(
                    relations_by=relations.by, relations_choice_reason=relations.reason if linking else None,
                    outputs=list(tables) + ["summary.json"],
                    settings={"backend": args.backend, "onnx_model_file": args.onnx_model_file
                              if args.backend == "onnx" else None, "device": args.device,
                              "batch_size": args.batch_size, "max_seq_length": args.max_seq_length,
                              "stride": args.stride, "min_confidence": args.min_confidence,
                              "notes_per_batch": args.notes_per_batch, "num_partitions": partitions,
                              "threads_per_task": threads, "master": spark.sparkContext.master,
                              "default_parallelism": spark.sparkContext.defaultParallelism,
                              "id_column": args.id_column, "text_column": args.text_column,
                              "keep_columns": args.keep_columns, "partition_by": args.partition_by,
                              "with_text": args.with_text, "input_format": fmt},
                    seconds=round(time.perf_counter() - started, 3))
                sa.write_summary(spark, folder, summary)

            summary: dict = {"input_table": args.input_table}
            sa.write_atomically(spark, args.output_dir, args.overwrite, write,
                                file_mode=sa.output_file_mode(args.input_table))
            annotated.unpersist()
        finally:
            spark.stop()
            shutil.rmtree(library, ignore_errors=True)
    print(format_table_summary(summary, args.output_dir))
    return 1 if summary["rows_failed"] else 0


if __name__ == "__main__":
    run_main(main, SCRIPT)
