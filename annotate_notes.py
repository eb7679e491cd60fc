#!/usr/bin/env python
"""Annotate clinical notes with a trained model: text in, entities out, from Python or a folder.

From Python, one call for a note or a list of notes (CRF or linear "Apt" models)::

    from clinical_ner_crf.note_annotator import NoteAnnotator
    annotator = NoteAnnotator.from_pretrained("runs/bert_crf")
    annotator("Started metoprolol 25 mg PO BID.")      # [Entity(type, start, end, text, confidence, ...)]
    annotator([note_1, note_2])                         # one list of entities per note

    # With a relation model (run_re.py): each attribute linked to its drug, a medication list per note.
    annotator = NoteAnnotator.from_pretrained("runs/bert_crf", relation_model_name_or_path="runs/relations")
    annotator.medications("Metoprolol 25 mg PO BID and lisinopril 10 mg daily.")
    # [{"document_id", "id": "T1", "drug": {type, start, end, text, confidence},
    #   "attributes": [{id, type, start, end, text, confidence, relation, relation_confidence}, ...]}, ...]
    # relations="auto" (default): the model or the nearest-drug rule, whichever scored higher on its validation
    # notes; relations="model" / "rule" to choose (the rule needs no relation model).
    NoteAnnotator.from_pretrained("runs/bert_crf", relations="rule").medications("Aspirin 81 mg PO daily.")

From the command line, a folder of ``.txt`` in, brat ``.ann`` out::

    python annotate_notes.py --model_name_or_path runs/bert_crf --input_dir notes/ --output_dir notes_annotated/
    python annotate_notes.py --model_name_or_path ORG/clinical-ner-crf --trust_remote_code \\
        --input_dir notes/ --output_dir out/ --device cuda --bf16 --batch_size 64 --min_confidence 0.5
    python annotate_notes.py --model_name_or_path runs/bert_crf --input_dir notes/ --output_dir out/ --num_processes 4
    python annotate_notes.py --model_name_or_path runs/bert_crf --relation_model_name_or_path runs/relations \
        --input_dir notes/ --output_dir out/                  # + R lines, medications.jsonl (--relations auto)
    python annotate_notes.py --model_name_or_path runs/bert_crf --relations rule --input_dir notes/ --output_dir out/
    accelerate launch --multi_gpu --num_processes 4 annotate_notes.py --model_name_or_path runs/bert_crf ...

Both run the one inference path of ``windows.py`` (``predict_notes``), which the
``pipeline("token-classification")`` of a saved CRF model also runs: sentences and words as in
training (``tagging.py``), so offsets are exact to the character of the raw text (CRLF
included). No text is dropped: a sentence longer than ``max_seq_length`` subwords is cut into
overlapping windows (``stride`` subwords of overlap); a word seen in several windows takes the
prediction of the window where it has the most context on both sides, so an entity that crosses
a window edge comes out whole. Notes of any length work.

Decoding and confidences
    CRF models decode each window with Viterbi over the positions they were trained on (the
    first subword of every word, or every subword for ``label_alignment="all_subwords"``). A
    word's confidence is the CRF marginal probability (forward-backward) of its decoded tag; an
    entity's confidence is the mean over its words. Linear ("Apt") models, stock
    ``AutoModelForTokenClassification``, tag each word with the softmax argmax at its first
    subword, and the word confidence is that softmax probability. Entities are read from the
    word tags with strict IOB2 decoding (an ``I-X`` that continues nothing starts no entity).
    ``min_confidence`` drops entities whose confidence is below it (from the ``.ann`` and
    ``entities.jsonl``; the word-level ``predictions.jsonl`` keeps the model's raw tags).

Outputs of the command line (``--output_dir``: never the input folder, inside it or around it)
    ``NOTE.ann``        one per note: ``T`` lines with type, offsets and surface text; an
                        entity that crosses a line break is written as fragments split at
                        the break (n2c2 style). ``NOTE.ANN`` beside a ``NOTE.TXT``, so a brat
                        pair keeps one style. Written atomically; an existing ``.ann`` is kept
                        (the note counts as already annotated) unless ``--overwrite``. An empty
                        note gets an empty ``.ann``. An ``.ann`` of one of the notes that the
                        toolkit did not write (gold annotations copied there) stops the run
                        before it starts: ``--overwrite`` replaces only the toolkit's own files
                        (those its manifest ``.clinical-ner-crf-files`` names).
    ``entities.jsonl``  one object per entity: ``document_id``, ``id`` (its ``T`` line),
                        ``type``, ``start``, ``end``, ``text`` (exactly ``text[start:end]``),
                        ``confidence`` and ``word_confidences``: the records of every ``.ann``
                        of the folder (of earlier runs too), each note's once.
    ``predictions.jsonl`` (``--word_predictions``) one object per sentence in the word-level
                        format of docs/architecture.md (``gold_tags`` null), readable by
                        ``evaluate_ablations.py``; the notes annotated with the flag.
    ``medications.jsonl`` (with relations: see Relations) one object per drug mention, in note
                        order: ``document_id``, ``id`` (the drug's ``T`` line), ``drug`` and the
                        ``attributes`` linked to it, each with its ``relation`` type and
                        ``relation_confidence``; a drug with no attribute is a record too. The
                        ``.ann`` files then also hold the links as ``R`` lines
                        (``R1<TAB>Strength-Drug Arg1:T2 Arg2:T1``, n2c2 style).
    ``summary.json``    counts (files seen by kind, notes, sentences, windows, entities per
                        type, failures by kind, repairs), the names of the files that failed,
                        settings and time: never note text.

Input
    Notes are the files whose suffix is ``.txt`` in any case (``.TXT``, ``.Txt``), not in
    subfolders. Hidden files (a name starting with ``.``), other files and folders are not read,
    but counted (``files_seen``) and named in one INFO line per kind: names are not note text.

Interruptions and re-runs
    The invariant: a note's ``.ann`` exists only once its records are in ``entities.jsonl`` (and
    ``predictions.jsonl``). Notes go in groups (``--words_per_group``): the group's records are
    appended to the JSONL files and made durable (``fsync``), and only then are its ``.ann`` files
    written; with ``--overwrite`` the group's old ``.ann`` are removed first, so an old ``.ann``
    never stands beside new records. A run killed at any point leaves records without an ``.ann``
    (that note is redone), a torn last line, or a hidden ``.NAME.*.tmp`` of an unfinished atomic
    write, never an ``.ann`` without its records. So the same command run again finishes the job:
    it annotates exactly the notes without an ``.ann`` (exit status 0 when none fails). Every run
    starts by removing stale temporary files (they may hold note text) and ends, even when
    interrupted (Ctrl-C), by compacting the JSONL files atomically: for each note only its last
    block of records (a note written twice: ``--overwrite``, or redone), no records of notes
    without an ``.ann``, no malformed lines (counted, never shown). It compacts at the start too
    when a killed run left such lines, so appends always start on a clean line.

    Why append instead of writing each JSONL file once at the end: a file written at the end is
    lost with any interruption, while the ``.ann`` files written before it stay, and a re-run skips
    them. Why not write everything to a side folder and move it in at the end: the ``.ann`` files
    live beside other files (often the notes), so a run cannot appear as one rename, and a long
    run would lose all its work. The cost is a read of the JSONL files at the start and the end.
    At the start and at the end a run checks that every note's ``.ann`` (the toolkit's own) holds
    exactly its records in ``entities.jsonl`` (and its drugs in ``medications.jsonl``): a note whose
    records were lost (a folder damaged by an earlier version, say) is annotated again, and the summary
    says what was repaired and that the check passed. One run at a time per output folder: a second
    one stops at once, naming the first (``folder_safety.FolderLock``).

Several processes (``--num_processes N``, or ``accelerate launch`` / torchrun)
    Process 0 tidies the folder and lists the notes, then splits those to annotate among the processes
    by size (``split_notes``). Each process annotates its share as above, but appends to its own hidden
    part of each JSONL file (``.entities.jsonl.process-00001``) and, after each group's ``.ann`` files, logs
    which notes it wrote (names only). When all are done, process 0 merges the parts into the JSONL files
    (the same compaction: each note's last block, none without an ``.ann``) and writes ``summary.json``
    for the whole run. A process that dies stops the run (``--num_processes`` stops the others and merges
    what they wrote; a launcher stops them, and the next run merges it): every ``.ann`` still has its
    records, and the same command, with any number of processes, annotates exactly the notes left. A note
    written again (``--overwrite``) keeps only the records of the run that wrote it, in every file.
    ``--num_processes`` starts the processes itself (``multiprocessing``, spawn) and keeps process 0's role
    in the parent; launched processes share the plan and the counts over ``torch.distributed`` (gloo). On a
    CPU the cores are divided among the processes of a machine (``--num_threads`` to choose); on GPUs
    process k uses ``cuda:k``.

Permissions
    Files holding note text are no more readable than the notes they came from
    (``files.note_file_mode``): each ``.ann`` like its note; ``entities.jsonl`` and
    ``predictions.jsonl`` like the most restrictive note annotated into the folder so far (set
    before a group's records are appended). ``summary.json`` (counts only) gets the usual mode.

Bad input does not stop the run: a file that cannot be read, is not UTF-8, shares its name
with another note (``a.txt`` and ``a.TXT``) or whose ``.ann`` appears during the run gets one
message (file name and reason, never its text) and is counted; the exit status is 1 when any
note failed, and 130 when the run was interrupted. A folder without notes is an error.

Relations
    Each attribute the NER model found is linked to its drug by a relation model or by the
    nearest-drug rule (``--relations``). The model (``--relation_model_name_or_path``, a ``run_re.py``
    output): every (attribute, drug) pair in one sentence (Reason and ADE: within the model's
    sentence window) is a candidate, classified from the sentence(s) with typed markers around both
    (and the input features it was trained with: ``relations.py``, as in ``run_re.py`` training); a
    pair is linked at ``--link_threshold`` or above, so an attribute shared by two drugs links to
    both. Long notes: candidates are built per sentence pair, so nothing is cut. The rule
    (``relations.nearest_drug_rule``): each attribute to the nearest drug of its sentence,
    confidence 1.0; no relation model needed (the model's sentence window if one is given, else 1).
    ``--relations auto`` (default) takes what scored higher on the relation model's validation
    notes (``relation_preferred`` and ``relation_validation_scores`` in its ``config.json``, written
    by ``run_re.py``), the model when it records none (an earlier version, no validation notes),
    and no relations without a relation model; ``model`` and ``rule`` choose. Which one linked, and
    why (with the validation numbers), is logged once per run and recorded in ``summary.json``
    (``relations_by``, ``relations_choice_reason``); the choice is made once, from the relation
    model's config, before the processes of ``--num_processes`` start (a launcher's processes each
    make the same choice). ``--relations model`` without a relation model and ``--link_threshold``
    when the rule links (``--relations rule``, or auto choosing it) are usage errors (one line,
    exit status 2).

A table instead of a folder (``--input_table``)
    A Parquet file or folder of parts, JSON lines or CSV, one note per row (``--id_column``, ``--text_column``;
    ``--keep_columns`` carried into every output row): ``entities.parquet``, ``medications.parquet`` (with
    relations), ``failed_rows.parquet`` (rows that are not notes, by row number, id and reason: no id, no text, a
    text that is not a string, a line that is not JSON, an id on several rows) and ``summary.json``, the same
    entities as a folder of the same notes (``table_annotation.py``; the rows' rules in ``note_tables.py``, which
    ``annotate_spark.py`` shares). One process, the table in memory, the output folder written whole at the end: a
    killed run leaves nothing at the target and the same command starts over.

Review pages (``--html``)
    After a folder is annotated, ``OUTPUT_DIR/review/`` gets the pages of ``review_notes.py`` (each note's entities
    at their offsets with their confidences, relations drug by drug), replaced at each run. They hold note text.

Backends
    ``--backend torch`` (default) runs the model folder with PyTorch. ``--backend onnx`` runs an
    ``export_onnx.py`` folder with onnxruntime on the CPU (``--onnx_model_file model.int8.onnx`` for the
    int8 graph): the same windows, merge and entities, the CRF decoded in numpy (``onnx_backend.py``).
    A Hub id works too (a repository an export folder was uploaded to): only the graph asked for is
    downloaded, with the config, CRF scores and tokenizer.
    ``summary.json`` records the backend in its settings.

The work is the library's (``clinical_ner_crf/``): ``note_annotator.py`` (the Python API), ``folder_annotation.py``
(one process over a folder), ``parallel_annotation.py`` (several), ``relation_linking.py``. Needs torch,
transformers, the library folder and ``modeling_crf.py`` (no ``datasets``, no training script). ``--backend onnx``
(the CLI, with any number of processes, and ``NoteAnnotator``) needs ``onnxruntime`` instead of torch and
``modeling_crf.py``: torch is imported only by the torch backend, a relation model that links (not one whose config
chose the rule) and a launcher.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

# Light imports only: --help and the usage errors answer before torch or transformers is imported (main() imports
# the model code once the arguments are read).
from clinical_ner_crf.command_line import SHARED_FLAG_HELP, UsageError, build_parser as command_parser, exit_status
from clinical_ner_crf.command_line import parse_command, run_main
from clinical_ner_crf.console import configure_output
from clinical_ner_crf.files import BACKENDS, ONNX_FILE, ONNX_INT8_FILE
from clinical_ner_crf.folder_annotation import (
    WORDS_PER_GROUP, InputError, annotate_folder, check_annotation_output_folder, format_summary, list_notes,
)
from clinical_ner_crf.folder_safety import FolderLock, check_output_apart, remove_if_untouched
from clinical_ner_crf.model_sources import check_local_model_sources, check_model_sources
from clinical_ner_crf.note_tables import DEFAULT_ID_COLUMN, DEFAULT_TEXT_COLUMN
from clinical_ner_crf.relations import RELATION_CHOICES
from clinical_ner_crf.tagging import DEFAULT_BATCH_SIZE, DEFAULT_MAX_SEQ_LENGTH, DEFAULT_STRIDE

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


@dataclass
class AnnotationArguments:
    """Arguments of ``annotate_notes.py``: a model, a folder of notes, where the annotations go."""

    model_name_or_path: str = field(metadata={"help": "Model folder (run_ner_crf.py output; with --backend onnx, "
                                                      "export_onnx.py output) or Hub id."})
    output_dir: str = field(metadata={"help": "Where the .ann files, entities.jsonl and summary.json go (with "
                                              "--input_table: the tables); a folder of its own, never where the "
                                              "input is."})
    input_dir: Optional[str] = field(default=None, metadata={"help": "Folder of .txt notes (UTF-8; not recursive)."})
    input_table: Optional[str] = field(default=None, metadata={
        "help": "Instead of --input_dir: a table of notes, one per row (.parquet or a folder of Parquet parts, "
                ".jsonl, .csv); writes entities.parquet, medications.parquet (with relations), failed_rows.parquet "
                "and summary.json."})
    input_format: Optional[str] = field(default=None, metadata={
        "help": "With --input_table: parquet, json (JSON lines) or csv (default: from the file's suffix)."})
    id_column: str = field(default=DEFAULT_ID_COLUMN, metadata={
        "help": "With --input_table: the column of note ids (strings or integers; unique)."})
    text_column: str = field(default=DEFAULT_TEXT_COLUMN, metadata={
        "help": "With --input_table: the column of note text."})
    keep_columns: list[str] = field(default_factory=list, metadata={
        "help": "With --input_table: columns carried into every output row (a visit date, a department, ...)."})
    with_text: bool = field(default=False, metadata={
        "help": "With --input_table: add each entity's text to the output tables (off by default: the tables then "
                "hold no note text)."})
    batch_size: int = field(default=DEFAULT_BATCH_SIZE, metadata={"help": "Windows per batch (grouped by length)."})
    max_seq_length: Optional[int] = field(default=None, metadata={
        "help": f"Subwords per window, special tokens included (default: {DEFAULT_MAX_SEQ_LENGTH}, or what the model "
                "takes if less; a larger value is capped)."})
    stride: int = field(default=DEFAULT_STRIDE, metadata={"help": "Subwords of overlap between consecutive windows."})
    device: Optional[str] = field(default=None, metadata={"help": "cpu, cuda or cuda:N (default: cuda when available)."})
    bf16: bool = field(default=False, metadata={"help": "bfloat16 weights and autocast (GPU only; the CRF stays float32)."})
    min_confidence: float = field(default=0.0, metadata={
        "help": "Drop entities whose confidence (mean CRF marginal, or softmax probability, over their words; "
                "calibrated by the model's temperature when it has one, run_ner_crf.py --calibrate_confidence) is "
                "below this, in [0, 1]."})
    overwrite: bool = field(default=False, metadata={
        "help": SHARED_FLAG_HELP["overwrite"] + " Here: annotate every note again (without it, notes that have "
                "an .ann are kept: a re-run after an interruption annotates only the rest)."})
    words_per_group: int = field(default=WORDS_PER_GROUP, metadata={
        "help": "Notes are predicted and written in groups of about this many words: smaller groups hold less in "
                "memory and lose less work to an interruption."})
    word_predictions: bool = field(default=False, metadata={
        "help": "Also write predictions.jsonl: word-level tags and confidences per sentence (docs/architecture.md "
                "format, gold_tags null)."})
    trust_remote_code: bool = field(default=False, metadata={"help": SHARED_FLAG_HELP["trust_remote_code"]})
    model_revision: str = field(default="main", metadata={"help": SHARED_FLAG_HELP["model_revision"]})
    token: Optional[str] = field(default=None, metadata={"help": SHARED_FLAG_HELP["token"]})
    relation_model_name_or_path: Optional[str] = field(default=None, metadata={
        "help": "A run_re.py relation model (folder or Hub id): links each attribute to its drug, writes R lines "
                "in the .ann files and medications.jsonl."})
    link_threshold: Optional[float] = field(default=None, metadata={
        "help": "Link an (attribute, drug) pair at this probability or above, in [0, 1] (default: the relation "
                "model's own, from its training). For the model only: an error with --relations rule."})
    relations: str = field(default="auto", metadata={
        "help": "How attributes are linked to drugs: model (the relation model; --relation_model_name_or_path "
                "required), rule (each attribute to its nearest drug, confidence 1.0; no relation model needed, "
                "the model's sentence window if one is given) or auto (what scored higher on the relation model's "
                "validation notes, as run_re.py recorded in its config; the model when none is recorded; no "
                "relations without a relation model). The log and summary.json say which, and why.",
        "choices": list(RELATION_CHOICES)})
    backend: str = field(default="torch", metadata={
        "help": "torch (the model folder, PyTorch) or onnx (an export_onnx.py folder, or the Hub id of one uploaded: "
                "only the graph asked for is downloaded; run with onnxruntime on CPU).",
        "choices": list(BACKENDS)})
    onnx_model_file: str = field(default=ONNX_FILE, metadata={
        "help": f"With --backend onnx: the graph to run, {ONNX_FILE} (fp32) or {ONNX_INT8_FILE} (--quantize int8)."})
    num_processes: int = field(default=1, metadata={
        "help": "Annotate with this many processes on this machine, the notes split among them by size (each loads "
                "the model; GPUs: process k uses cuda:k). Under `accelerate launch` or torchrun, give the number "
                "to the launcher instead."})
    html: bool = field(default=False, metadata={
        "help": "Also write the review pages into OUTPUT_DIR/review/ (review_notes.py: each note's entities at their "
                "offsets with their confidences, the low-confidence ones marked, the relations drug by drug; "
                "replaced at every run). They hold note text: never upload them."})
    num_threads: Optional[int] = field(default=None, metadata={
        "help": "CPU threads per process, torch and onnxruntime (default: the machine's cores divided among the "
                "processes on it)."})


SCRIPT = "annotate_notes.py"
DESCRIPTION = __doc__.split("\n\n")[0]


def build_parser():
    return command_parser(SCRIPT, (AnnotationArguments,), DESCRIPTION)


def parse_args(argv: Sequence[str] | None = None) -> AnnotationArguments:
    (args,) = parse_command(SCRIPT, (AnnotationArguments,), argv, DESCRIPTION)
    # A model path that is not there, before torch is imported (the Hub ids: main(), with the Hub's answer).
    check_local_model_sources({"--model_name_or_path": args.model_name_or_path,
                               "--relation_model_name_or_path": args.relation_model_name_or_path})
    launched = int(os.environ.get("WORLD_SIZE", "1"))  # (parallel_annotation.launched_processes, without its imports)
    # The window, batch and confidence settings are checked where they are used (windows.py, NoteAnnotator).
    problems = []
    if (args.input_dir is None) == (args.input_table is None):
        problems.append("give the notes as --input_dir FOLDER or as --input_table TABLE (one of them)")
    if args.input_table is None:
        table_flags = {"--input_format": args.input_format is not None, "--keep_columns": bool(args.keep_columns),
                       "--with_text": args.with_text, "--id_column": args.id_column != DEFAULT_ID_COLUMN,
                       "--text_column": args.text_column != DEFAULT_TEXT_COLUMN}
        given = [flag for flag, set_ in table_flags.items() if set_]
        if given:
            problems.append(f"{', '.join(given)}: for --input_table only")
    else:
        if args.word_predictions or args.html:
            problems.append("--word_predictions and --html are for --input_dir (a table's output is "
                            "entities.parquet)")
        if args.num_processes > 1 or launched > 1:
            problems.append("--input_table runs in one process: for several, run annotate_spark.py with "
                            "--master 'local[N]' (one machine) or on a cluster")
    if args.words_per_group < 1:
        problems.append(f"--words_per_group must be at least 1, got {args.words_per_group}")
    if args.num_processes < 1:
        problems.append(f"--num_processes must be at least 1, got {args.num_processes}")
    if args.num_processes > 1 and launched > 1:
        problems.append(f"--num_processes {args.num_processes} under a launcher that already started "
                        f"{launched} processes: give the number to one of them")
    if args.num_threads is not None and args.num_threads < 1:
        problems.append(f"--num_threads must be at least 1, got {args.num_threads}")
    if args.backend == "onnx":
        if args.device not in (None, "cpu") or args.bf16:
            problems.append("--backend onnx runs on the CPU (onnxruntime): no --device cuda, no --bf16")
        args.device = "cpu"
    if args.backend == "torch":  # (the onnx backend runs without torch)
        import torch

        if args.device is None:
            args.device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            device = torch.device(args.device)
        except RuntimeError:
            problems.append(f"--device {args.device!r} is not a device (cpu, cuda, cuda:N)")
        else:
            processes = max(args.num_processes, launched)
            if device.type == "cuda" and not torch.cuda.is_available():
                problems.append("--device cuda: no CUDA GPU is available")
            elif device.type == "cuda" and device.index is None and processes > torch.cuda.device_count():
                problems.append(f"{processes} processes on {torch.cuda.device_count()} GPUs: one process per GPU "
                                "at most")
            if args.bf16 and device.type != "cuda":
                problems.append("--bf16 needs a GPU (--device cuda)")
    if problems:
        raise UsageError("; ".join(problems))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        # Every model is gettable (a folder, the local cache, or the Hub within seconds) before anything is made.
        args.model_name_or_path, args.relation_model_name_or_path = check_model_sources({
            "--model_name_or_path": args.model_name_or_path,
            "--relation_model_name_or_path": args.relation_model_name_or_path},
            revision=args.model_revision, token=args.token).values()
    except UsageError as error:
        print(f"{SCRIPT}: error: {error}", file=sys.stderr)
        return exit_status(error)
    configure_output(logger)
    # The model code, once the arguments are read.
    from clinical_ner_crf.parallel_annotation import (
        ProcessFailed, annotate_folder_in_processes, launched_processes, load_annotator, process_settings,
        relations_of_arguments,
    )
    from clinical_ner_crf.relation_linking import check_relation_request

    distributed = launched_processes() > 1
    # One command writes a folder at a time: process 0 (this one, or rank 0 of a launched run) holds the lock for all.
    lock = FolderLock(args.output_dir, SCRIPT, enabled=int(os.environ.get("RANK", "0")) == 0)
    created = not Path(args.output_dir).exists()
    try:
        check_relation_request(args.relations, args.relation_model_name_or_path is not None, args.link_threshold)
        if args.input_table is not None:
            return annotate_table_command(args, lock, created)
        list_notes(args.input_dir)  # fail on the input before loading a model
        check_output_apart(args.output_dir, {"--input_dir": args.input_dir})
        lock.acquire()
        if lock.enabled:  # and on the output folder, before loading a model
            check_annotation_output_folder(args.input_dir, Path(args.output_dir), list_notes(args.input_dir).notes)
        # Model or rule: decided once from the relation model's config (every launched process decides the same
        # way; process 0 says it), handed to the processes this one starts.
        relations = relations_of_arguments(args)
        if relations.by is not None and int(os.environ.get("RANK", "0")) == 0:
            logger.info("%s", relations.describe())
        if args.num_processes > 1:
            summary = annotate_folder_in_processes(args, relations)
        else:
            if distributed:
                import datetime

                import torch.distributed as dist

                # gloo carries the plan, the counts and the wait for the last process, which may be long.
                dist.init_process_group("gloo", timeout=datetime.timedelta(days=7))
                device, threads = process_settings(args, int(os.environ.get("LOCAL_RANK", "0")),
                                                    int(os.environ.get("LOCAL_WORLD_SIZE", str(launched_processes()))))
                logger.info("process %d of %d: %s, %s threads", dist.get_rank(), dist.get_world_size(), device,
                            threads)
            else:
                device, threads = process_settings(args, 0, 1)
            annotator = load_annotator(args, device, threads, relations)
            summary = annotate_folder(annotator, args.input_dir, args.output_dir, overwrite=args.overwrite,
                                      word_predictions=args.word_predictions, words_per_group=args.words_per_group,
                                      progress=None, distributed=distributed)
    except (InputError, OSError, ValueError, ProcessFailed) as error:
        print(f"annotate_notes.py: error: {error}", file=sys.stderr)
        status = exit_status(error)
        if created and lock.enabled:  # stopped before writing anything: no folder left
            remove_if_untouched(args.output_dir)
        if distributed:
            raise SystemExit(status) from None  # a failed process: the launcher stops the others waiting for it
        return status
    except KeyboardInterrupt:
        if args.input_table is not None:
            print(f"annotate_notes.py: interrupted: {args.output_dir} was not written (a table's outputs appear "
                  "together, at the end); run the same command again", file=sys.stderr)
            return 130
        print("annotate_notes.py: interrupted: every .ann written has its records; run the same command again "
              "to annotate the other notes", file=sys.stderr)
        return 130
    finally:
        lock.release()
        if distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
    if summary is None:  # not process 0: it reports for all
        return 0
    print(format_summary(summary, args.output_dir))
    if args.html:
        write_review_pages(args)
    return 1 if summary["notes_failed"] or summary["notes_inconsistent"] else 0


def write_review_pages(args: AnnotationArguments) -> None:
    """--html: the review site of the folder just annotated (review_pages.write_review_site), replaced whole."""
    from clinical_ner_crf.review_pages import REVIEW_DIRNAME, write_review_site

    review_dir = Path(args.output_dir) / REVIEW_DIRNAME
    with FolderLock(args.output_dir, SCRIPT), FolderLock(review_dir, SCRIPT):
        counts = write_review_site(args.output_dir, args.input_dir, overwrite=True)
    print(f"Review pages (they hold note text: never upload them): {counts['index']}")


def annotate_table_command(args: AnnotationArguments, lock: FolderLock, created: bool) -> int:
    """--input_table: one process, the output folder written whole (table_annotation.annotate_table)."""
    from clinical_ner_crf.files import check_output_dir
    from clinical_ner_crf.folder_safety import irregular_reason
    from clinical_ner_crf.parallel_annotation import load_annotator, process_settings, relations_of_arguments
    from clinical_ner_crf.table_annotation import annotate_table, format_table_summary

    # The input and the output folder first, before a model is loaded.
    table = Path(args.input_table)
    if not table.exists():
        raise InputError(f"--input_table {table}: no such file or folder")
    if not table.is_dir() and irregular_reason(table):
        raise InputError(f"--input_table {table} {irregular_reason(table)}: give a file, or a folder of Parquet parts")
    check_output_apart(args.output_dir, {"--input_table": args.input_table})
    lock.acquire()
    check_output_dir(Path(args.output_dir), args.overwrite)
    relations = relations_of_arguments(args)
    if relations.by is not None:
        logger.info("%s", relations.describe())
    device, threads = process_settings(args, 0, 1)
    annotator = load_annotator(args, device, threads, relations)
    summary = annotate_table(annotator, table, args.output_dir, id_column=args.id_column,
                             text_column=args.text_column, keep_columns=args.keep_columns,
                             input_format=args.input_format, with_text=args.with_text, overwrite=args.overwrite,
                             words_per_group=args.words_per_group)
    print(format_table_summary(summary, args.output_dir))
    return 1 if summary["rows_failed"] else 0


if __name__ == "__main__":
    run_main(main, SCRIPT)
