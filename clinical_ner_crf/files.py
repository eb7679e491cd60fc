"""Files: the names of the files the commands write, atomic writes, file modes and the output-folder rules.

The one home of how a result reaches the disk: :func:`atomic_open` (and :func:`write_json_atomically`,
:func:`write_folder_atomically`, built the same way) never leaves a truncated file after a kill; a file that holds
note text is no more readable than its notes (:func:`note_file_mode`); the parts of a multi-process run and the
temporary files a killed run leaves are named here and cleared only when the toolkit wrote them.
Standard library only."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable

from .folder_safety import claim_whole_folder, refuse_foreign_files

logger = logging.getLogger(__name__)


# prepare_n2c2.py output, beside the DatasetDict splits
DOCUMENTS_DIRNAME = "documents"
STATS_FILE = "stats.json"
LABEL_DISTRIBUTION_FILE = "label_distribution.png"
# run_ner_crf.py output (a run folder)
RUN_INFO_FILE = "run_info.json"
RUN_ARGS_FILE = "run_args.json"  # in each checkpoint, written last: what the run was (and that it is complete)
PRETRAINING_DATA_FILE = "pretraining_data.json"  # pretrain_mlm.py: counts and a hash of the text seen
ALL_RESULTS_FILE = "all_results.json"
CALIBRATION_FILE = "calibration.json"  # --calibrate_confidence: the temperature and reliability tables (numbers only)
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
# What runs a model folder: torch (run_ner_crf.py's folder) or onnx (export_onnx.py's, onnxruntime on CPU).
BACKENDS = ("torch", "onnx")
QUANTIZATION_FILE = "quantization.json"
# evaluate_ablations.py output
REPORT_JSON_FILE = "report.json"
COMPARISON_FILE = "comparison.json"  # --compare_brat: two systems' differences, intervals and p-values
REPORT_MARKDOWN_FILE = "report.md"


def run_predictions_path(run_dir) -> Path:
    """Where a run folder keeps its word-level test predictions."""
    return Path(run_dir) / PREDICTIONS_DIRNAME / TEST_PREDICTIONS_FILE


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
