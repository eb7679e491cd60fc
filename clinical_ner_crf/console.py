"""What a command prints: quiet by default, everything with ``--verbose`` (no torch, no transformers at import).

By default a command shows the toolkit's warnings, a progress bar for long work and, at the end, what it wrote
where (:func:`print_outputs`). ``--verbose`` (``command_line.run_flags``) adds the INFO logs (settings, counts
and paths, never note text) and what transformers, datasets, torch and onnxruntime say; without it their INFO
lines, their Python warnings and the dataset progress bars are silenced.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

from .command_line import run_flags

LOG_FORMAT = "%(asctime)s - %(levelname)s - %(name)s - %(message)s"
LOG_DATE_FORMAT = "%m/%d/%Y %H:%M:%S"

# Whose Python warnings (TracerWarning, FutureWarning, ...) --verbose shows: for a model's developer, not its user.
THIRD_PARTY_WARNING_MODULES = r"(torch|transformers|datasets|accelerate|onnx|onnxruntime|onnxscript|huggingface_hub|" \
                              r"tokenizers|torchcrf|seqeval|sklearn|numpy|pyarrow)(\.|$)"


def configure_output(script_logger: logging.Logger, process_log_level: int | None = None) -> bool:
    """Log levels for a command run: the command's and the library's INFO lines with ``--verbose``, else their
    warnings only; third-party INFO lines, Python warnings and dataset progress bars only with ``--verbose``.
    ``process_log_level``: a launched run's level on a process other than the first (quieter). Returns verbose."""
    verbose = run_flags.verbose
    level = logging.INFO if verbose else logging.WARNING
    if process_log_level is not None and process_log_level > level:
        level = process_log_level
    logging.basicConfig(format=LOG_FORMAT, datefmt=LOG_DATE_FORMAT, stream=sys.stderr)
    # What libraries log on the root logger itself (onnxruntime's quantizer: "consider pre-processing"): --verbose.
    logging.getLogger().setLevel(logging.INFO if verbose else logging.ERROR)
    for log in (script_logger, logging.getLogger(__package__)):
        log.setLevel(level)
    third_party = logging.INFO if verbose else logging.ERROR
    for name in ("transformers", "datasets", "accelerate", "huggingface_hub", "torch", "onnxruntime"):
        logging.getLogger(name).setLevel(third_party)
    if not verbose:  # read when datasets is imported, if it is not yet (a command imports it once it needs it)
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # its own handler and verbosity (every command's parser imported it)
        import transformers

        transformers.utils.logging.set_verbosity(third_party)
        if not verbose:
            transformers.utils.logging.disable_progress_bar()  # "Loading weights": a fraction of a second
    if "datasets" in sys.modules:
        import datasets

        datasets.utils.logging.set_verbosity(third_party)
        if not verbose:
            datasets.disable_progress_bars()  # saving and tokenizing a corpus takes seconds: no bar needed
    if not verbose:
        warnings.filterwarnings("ignore", module=THIRD_PARTY_WARNING_MODULES)
    return verbose


def show_info_logs(script_logger: logging.Logger) -> None:
    """INFO lines from the command and from the library it calls, whatever the level of the root logger (a test
    or a notebook that wants them)."""
    for log in (script_logger, logging.getLogger(__package__)):
        log.setLevel(logging.INFO)


def print_outputs(title: str, rows: Sequence[tuple[str, str | Path, str]]) -> None:
    """The last lines of a command (``title``: ``SCRIPT.py wrote:``): each output, where it is, and its headline
    (a score, a count)."""
    rows = [(what, str(path), headline) for what, path, headline in rows]
    if not rows:
        return
    width_what = max(len(what) for what, _, _ in rows)
    width_path = max(len(path) for _, path, _ in rows)
    print(title)
    for what, path, headline in rows:
        print(f"  {what:<{width_what}}  {path:<{width_path}}  {headline}".rstrip())
    sys.stdout.flush()


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


# ---------------------------------------------------------------------------
# The outputs of a folder of runs, in one table (make quickstart's last lines)
# ---------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def describe_output(folder: Path) -> tuple[str, str] | None:
    """What a toolkit output folder is and its headline, from the files a command wrote there (None: not one)."""
    results = _read_json(folder / "all_results.json")
    if (folder / "dataset_dict.json").is_file():
        stats = _read_json(folder / "stats.json")
        splits = stats.get("splits", {})
        counts = ", ".join(f"{name} {splits[name]['documents']}" for name in ("train", "validation", "test")
                           if "documents" in splits.get(name, {}))
        return "dataset", f"notes: {counts}" if counts else ""
    if any(key.endswith("relation_strict_micro_f1") for key in results):
        return "relation model", (f"test relation strict micro-F1 {percent(results.get('test_relation_strict_micro_f1'))}"
                                  f" (nearest-drug rule {percent(results.get('test_rule_relation_strict_micro_f1'))})")
    if (folder / "config.json").is_file() and results:
        return "NER model", f"test entity strict micro-F1 {percent(results.get('test_entity_strict_micro_f1'))}"
    if (folder / "onnx").exists() or (folder / "model.onnx").is_file():
        return "ONNX export", ""
    if (folder / "report.json").is_file():
        report = _read_json(folder / "report.json")
        if "strict" in report:  # brat scoring
            line = f"entity strict micro-F1 {percent(report['strict']['micro']['f1'])}"
            if "relations" in report:
                line += f", relation strict micro-F1 {percent(report['relations']['strict']['micro']['f1'])}"
            return "brat scores", line
        return "report", f"{len(report.get('runs', []))} run(s): paper tables, ablations, confusions"
    if (folder / "summary.json").is_file():
        summary = _read_json(folder / "summary.json")
        return "annotated notes", (f"{summary.get('notes_annotated', '?')} notes, {summary.get('entities', '?')} "
                                   "entities")
    if any(folder.glob("*/*.ann")) or any(folder.glob("*.ann")):
        return "brat notes", ""
    return None


def outputs_table(root: str | Path) -> list[tuple[str, str, str]]:
    """Each toolkit output folder directly under ``root``: what it is, its path, its headline."""
    rows = []
    for folder in sorted(Path(root).iterdir()):
        described = describe_output(folder) if folder.is_dir() and not folder.name.startswith(".") else None
        if described:
            report = folder / "report.md"
            rows.append((described[0], str(report if report.is_file() else folder), described[1]))
    return rows


if __name__ == "__main__":  # python -m clinical_ner_crf.console FOLDER: the table of what a set of runs wrote
    root = sys.argv[1] if len(sys.argv) > 1 else "outputs/quickstart"
    print_outputs(f"Outputs under {root}:", outputs_table(root))
