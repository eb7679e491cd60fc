#!/usr/bin/env python
"""Killed at random: runs of annotation, export, training and preparation killed with SIGKILL, then re-run.

    python bench/stress_interruptions.py                       # 20 runs (about 10 minutes on 2 CPU cores)
    python bench/stress_interruptions.py --runs 5 --work_dir /tmp/stress   # a short try; the scratch folder is kept

Issue 25's stress run (not in the test suite): do the promises of docs/architecture.md ("Output folders, re-runs
and interruptions", "Reliability") hold when a command is killed at a moment nobody chose? Set-up, in a scratch
folder (``--work_dir``, default a temporary one, removed at the end): ``prepare_n2c2.py --synthetic N
--write_brat`` gives the user's data, a brat folder of notes with their gold ``.ann`` beside them, and a dataset;
a tiny model is trained from ``configs/quickstart.json`` (fewer epochs). Every file of the brat folder, the dataset
and the model is fingerprinted (sha256).

Kinds of runs, each the user's command in a fresh process started in its own process group, into a folder of
its own (the variants take turns within a kind):

- ``annotate``: ``annotate_notes.py`` (one process) on the brat training notes, ``--words_per_group`` small so
  that notes are written in many groups;
- ``annotate_2proc``: the same with ``--num_processes 2 --num_threads 1``; SIGKILL to the parent only (its
  workers must die with it) in half of these runs, to the whole process group in the other half;
- ``export``: ``export_onnx.py`` of the model, with and without ``--quantize int8``, into a new folder or over an
  earlier export (``--overwrite``, the int8 export over an fp32 one and the other way round);
- ``train``: ``run_ner_crf.py configs/quickstart.json`` with checkpoints every ``--save_steps`` steps;
- ``prepare``: ``prepare_n2c2.py --train_dir --test_dir`` from the brat folder, into a new folder or over an
  earlier dataset (``--overwrite``).

Each kind (and export's int8 variant) first runs uninterrupted, twice (``--baseline_rounds``), to learn its
duration (the shorter time: the first run is often slower, cold caches) and to check that the checks below pass on
folders nobody killed. Then ``--runs`` runs, round-robin over the kinds, each killed with SIGKILL at a uniformly
random moment in [0.1, 1.0] x that duration (``--seed``): the process itself (its process group for half of the
``annotate_2proc`` runs). Every process runs with one thread (``--num_threads``): on a shared 2-core machine a torch
process with two threads slows down many times over when another process takes a core, and the kill moments must
follow the measured durations. Then, before anything else touches the folder:

- what the kill left: annotate, whether every ``.ann`` already has its records (the invariant of annotate_notes.py's
  docstring: in ``entities.jsonl`` or a process's part); export and prepare, whether the target is absent or as it
  was, complete, or half-written; training, its checkpoints (complete: with ``run_args.json``) and final files;
- processes still alive ``--orphan_wait`` seconds after the kill: every process started under the run (a marker in
  its environment, inherited by every descendant) or whose command line names the run's folder (they are then
  killed, so that they disturb nothing else, and counted);
- gold and input files changed (fingerprints).

Then the re-run, as a user would: the same command (annotate always; export and prepare with their overwrite flag
added only if the kill left a complete target; training with ``--resume_from_checkpoint true`` when a complete
checkpoint exists, else ``--overwrite`` when the folder is not empty). It must exit 0 (else its status
and last stderr line are recorded), and the folder must be consistent, checked here independently of the scripts'
own checks:

- annotate: ``summary.json`` says ``notes_inconsistent`` 0; every note has its ``.ann``; each ``.ann``'s ``T`` lines
  (id, type, first start, last end) are exactly that note's records in ``entities.jsonl``, in one block, and no
  record belongs to a note without an ``.ann``; every line parses; the manifest names everything in the folder; no
  hidden file but the manifest ``.clinical-ner-crf-files``; no lock file;
- export: the folder exists; ``model.onnx`` (and ``model.int8.onnx`` when asked, and only then) loads with
  onnxruntime; ``onnx_export.json`` and ``crf.json`` are valid JSON; no ``.NAME.partial-*``, ``.NAME.old-*`` or
  ``.NAME.lock`` sibling, no hidden file inside but the manifest;
- training: ``model.safetensors``, ``config.json``, ``run_info.json`` and ``all_results.json`` present and valid,
  the model loads (``AutoModelForTokenClassification``), ``predictions/`` complete, no ``.final-model.partial``,
  no lock file;
- prepare: ``datasets.load_from_disk`` loads the dataset and its ``documents/``; ``stats.json`` is valid; the
  manifest names everything; no partial, old or lock sibling.

Output: ``bench/results/stress_interruptions.json``: per run the kind, variant, kill moment (seconds and fraction
of the measured duration), what the kill left, the re-run's flags, status and last stderr line, consistent or not
and why; totals. Names, counts and hashes only: never note text.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import common  # noqa: E402

MANIFEST_FILE = ".clinical-ner-crf-files"  # folder_safety.MANIFEST_FILE (read here, not imported: checked apart)
MARKER = "CLINICAL_NER_STRESS_RUN"  # in each run's environment: every process started under it inherits it
KINDS = ("annotate", "annotate_2proc", "export", "train", "prepare")
# The variants of a kind take turns over its runs.
VARIANTS: dict[str, list[dict[str, Any]]] = {
    "annotate": [{"kill": "process"}],
    "annotate_2proc": [{"kill": "parent"}, {"kill": "group"}],
    "export": [{"kill": "process", "quantize": False, "existing": False},
               {"kill": "process", "quantize": True, "existing": True},
               {"kill": "process", "quantize": True, "existing": False},
               {"kill": "process", "quantize": False, "existing": True}],
    "train": [{"kill": "process"}],
    "prepare": [{"kill": "process", "existing": False}, {"kill": "process", "existing": True}],
}


# ---------------------------------------------------------------------------
# Files: fingerprints, names
# ---------------------------------------------------------------------------


def fingerprint(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (hidden ones included), by path relative to it."""
    prints = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            prints[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return prints


def compare(before: dict[str, str], after: dict[str, str]) -> dict[str, list[str]]:
    """Files changed, added and removed (names only)."""
    return {"changed": sorted(name for name in before if name in after and after[name] != before[name]),
            "added": sorted(name for name in after if name not in before),
            "removed": sorted(name for name in before if name not in after)}


def count_changes(difference: dict[str, list[str]]) -> int:
    return sum(len(names) for names in difference.values())


def siblings(target: Path) -> list[str]:
    """The hidden siblings a command keeps beside its output folder: partial and old copies, the lock."""
    if not target.parent.is_dir():
        return []
    return sorted(path.name for path in target.parent.iterdir()
                  if path.name.startswith(f".{target.name}.") or path.name.startswith(f".{target.name}-"))


def hidden_inside(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith(".") and path.name != MANIFEST_FILE) \
        if folder.is_dir() else []


def manifest_foreign(folder: Path) -> list[str]:
    """Top-level entries that the folder's manifest does not name (the toolkit claims what it writes)."""
    import fnmatch

    path = folder / MANIFEST_FILE
    if not path.is_file():
        return ["(no manifest)"]
    entries = [line for line in path.read_text(encoding="utf-8").splitlines() if line]
    return sorted(p.name for p in folder.iterdir()
                  if p.name != MANIFEST_FILE and not any(fnmatch.fnmatchcase(p.name, entry) for entry in entries))


def folder_leftovers(out: Path) -> list[str]:
    """What a finished run must not leave: hidden files (the manifest aside), entries the manifest does not name, and
    siblings (partial folders, locks)."""
    problems = []
    if hidden_inside(out):
        problems.append(f"hidden files left: {some(hidden_inside(out))}")
    if manifest_foreign(out):
        problems.append(f"not named by the manifest: {some(manifest_foreign(out))}")
    if siblings(out):
        problems.append(f"siblings left: {some(siblings(out))}")
    return problems


def some(names: Sequence[str], shown: int = 3) -> str:
    names = list(names)
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


# ---------------------------------------------------------------------------
# Annotation folders
# ---------------------------------------------------------------------------


def ann_entities(path: Path) -> list[tuple[str, str, int, int]]:
    """The ``T`` lines of an ``.ann``: (id, type, first start, last end); the text is not kept."""
    entities = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        entity_id, _, rest = line.partition("\t")
        if entity_id[:1] != "T":
            continue
        label, spans = rest.split("\t", 1)[0].split(" ", 1)
        offsets = [int(n) for n in re.split(r"[ ;]", spans)]
        entities.append((entity_id, label, offsets[0], offsets[-1]))
    return entities


def jsonl_blocks(path: Path) -> tuple[dict[str, list[list[tuple]]], int]:
    """The records of a JSONL file as blocks of consecutive records of one document: ``{document: [block, ...]}``
    (each record (id, type, start, end)), and the number of lines that do not parse."""
    blocks: dict[str, list[list[tuple]]] = {}
    bad, previous = 0, None
    if not path.is_file():
        return blocks, 0
    with path.open("rb") as handle:
        for raw in handle:
            try:
                record = json.loads(raw.decode("utf-8"))
                key = (record["id"], record["type"], int(record["start"]), int(record["end"]))
                document = record["document_id"]
            except (ValueError, KeyError, TypeError):
                bad += 1
                previous = None
                continue
            if document != previous:
                blocks.setdefault(document, []).append([])
            blocks[document][-1].append(key)
            previous = document
    return blocks, bad


def note_paths(notes_dir: Path) -> dict[str, Path]:
    return {path.stem: path for path in sorted(notes_dir.iterdir()) if path.suffix.lower() == ".txt" and path.is_file()}


def ann_of(out: Path, note: Path) -> Path:
    return out / (note.stem + (".ANN" if note.suffix == ".TXT" else ".ann"))


def annotate_left(out: Path, notes_dir: Path) -> dict[str, Any]:
    """What a killed annotate_notes.py left: each ``.ann`` must already have its records (in ``entities.jsonl`` or
    a process's part), whatever the moment of the kill."""
    notes = note_paths(notes_dir)
    anns = {stem: ann_of(out, note) for stem, note in notes.items() if ann_of(out, note).is_file()}
    files = [out / "entities.jsonl", *sorted(out.glob(".entities.jsonl.process-*"))]
    parsed = [jsonl_blocks(path) for path in files]
    without = []
    for stem, ann in anns.items():
        expected = ann_entities(ann)
        if not any(expected in blocks.get(stem, []) or (not expected and stem not in blocks) for blocks, _ in parsed):
            without.append(stem)
    return {"ann_files": len(anns), "notes": len(notes),
            "records": sum(len(b) for blocks, _ in parsed for doc in blocks.values() for b in doc),
            "unparsable_lines": sum(bad for _, bad in parsed),
            "hidden_files": hidden_inside(out), "siblings": siblings(out),
            "ann_without_records": len(without), "ann_without_records_names": without[:5]}


def check_annotate(out: Path, notes_dir: Path) -> list[str]:
    problems = []
    if not out.is_dir():
        return ["no output folder"]
    try:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        if summary.get("notes_inconsistent") != 0:
            problems.append(f"summary.json notes_inconsistent {summary.get('notes_inconsistent')}")
        if summary.get("notes_failed"):
            problems.append(f"summary.json notes_failed {summary.get('notes_failed')}")
    except (OSError, ValueError) as error:
        problems.append(f"summary.json unreadable ({type(error).__name__})")
    notes = note_paths(notes_dir)
    missing = [note.name for note in notes.values() if not ann_of(out, note).is_file()]
    if missing:
        problems.append(f"{len(missing)} notes without .ann ({some(missing)})")
    blocks, bad = jsonl_blocks(out / "entities.jsonl")
    if bad:
        problems.append(f"{bad} unparsable lines in entities.jsonl")
    split = sorted(stem for stem, doc in blocks.items() if len(doc) > 1)
    if split:
        problems.append(f"{len(split)} notes with records in more than one block ({some(split)})")
    wrong = [note.name for stem, note in notes.items() if ann_of(out, note).is_file()
             and ann_entities(ann_of(out, note)) != (blocks.get(stem) or [[]])[-1]]
    if wrong:
        problems.append(f"{len(wrong)} .ann whose T lines are not exactly their records ({some(wrong)})")
    stray = sorted(stem for stem in blocks if stem not in notes or not ann_of(out, notes[stem]).is_file())
    if stray:
        problems.append(f"records of {len(stray)} notes without an .ann ({some(stray)})")
    return problems + folder_leftovers(out)


# ---------------------------------------------------------------------------
# Export, training and dataset folders
# ---------------------------------------------------------------------------


def check_export(out: Path, quantize: bool) -> list[str]:
    problems = []
    if not out.is_dir():
        return ["no export folder"]
    try:
        info = json.loads((out / "onnx_export.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        info = None
        problems.append(f"onnx_export.json unreadable ({type(error).__name__})")
    for name in ("config.json", "crf.json"):
        try:
            json.loads((out / name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            problems.append(f"{name} unreadable ({type(error).__name__})")
    import onnxruntime

    graphs = ["model.onnx"] + (["model.int8.onnx"] if quantize else [])
    for name in graphs:
        try:
            onnxruntime.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - any failure to load is the finding
            problems.append(f"{name} does not load ({type(error).__name__})")
    if not quantize and (out / "model.int8.onnx").exists():
        problems.append("model.int8.onnx left from an earlier export (not asked for)")
    if info is not None and bool((info.get("files") or {}).get("int8")) != quantize:
        problems.append(f"onnx_export.json files.int8 is {(info.get('files') or {}).get('int8')!r}")
    if hidden_inside(out):
        problems.append(f"hidden files left: {some(hidden_inside(out))}")
    if siblings(out):
        problems.append(f"siblings left: {some(siblings(out))}")
    return problems


def checkpoints(out: Path) -> tuple[list[str], list[str]]:
    """(complete, incomplete) checkpoint names: a complete one has its run_args.json (written last)."""
    found = sorted((p for p in out.glob("checkpoint-*") if p.is_dir()), key=lambda p: int(p.name.split("-")[-1])) \
        if out.is_dir() else []
    return ([p.name for p in found if (p / "run_args.json").is_file()],
            [p.name for p in found if not (p / "run_args.json").is_file()])


def train_left(out: Path) -> dict[str, Any]:
    complete, incomplete = checkpoints(out)
    present = {name: (out / name).exists() for name in ("model.safetensors", "config.json", "run_info.json",
                                                       "README.md", "predictions", ".final-model.partial")}
    return {"folder_exists": out.is_dir(), "entries": len(list(out.iterdir())) if out.is_dir() else 0,
            "complete_checkpoints": complete, "incomplete_checkpoints": incomplete, "present": present,
            # run_info.json and the card are written after the weights they describe
            "run_info_without_weights": present["run_info.json"] and not present["model.safetensors"],
            "siblings": siblings(out)}


def check_train(out: Path) -> tuple[list[str], list[str]]:
    """(problems, notes): notes are what the docs allow but a user would notice (an incomplete checkpoint)."""
    problems, notes = [], []
    if not out.is_dir():
        return ["no run folder"], notes
    for name in ("model.safetensors", "config.json", "run_info.json", "all_results.json"):
        if not (out / name).is_file():
            problems.append(f"{name} missing")
        elif name.endswith(".json"):
            try:
                json.loads((out / name).read_text(encoding="utf-8"))
            except ValueError:
                problems.append(f"{name} is not valid JSON")
    if not problems:
        try:
            import modeling_crf  # noqa: F401  (registers the CRF model with the Auto classes)
            from transformers import AutoModelForTokenClassification
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
            AutoModelForTokenClassification.from_pretrained(str(out))
        except Exception as error:  # noqa: BLE001 - any failure to load is the finding
            problems.append(f"the model does not load ({type(error).__name__})")
    if not (out / "predictions" / "test_predictions.jsonl").is_file():
        problems.append("predictions/test_predictions.jsonl missing")
    if (out / ".final-model.partial").exists():
        problems.append(".final-model.partial left")
    leftovers = [name for name in hidden_inside(out) if name != ".final-model.partial"]
    if leftovers:
        problems.append(f"hidden files left: {some(leftovers)}")
    if siblings(out):
        problems.append(f"siblings left: {some(siblings(out))}")
    _, incomplete = checkpoints(out)
    if incomplete:
        notes.append(f"incomplete checkpoints kept: {some(incomplete)}")
    return problems, notes


def check_dataset(out: Path) -> list[str]:
    problems = []
    if not out.is_dir():
        return ["no dataset folder"]
    from datasets import load_from_disk

    try:
        dataset = load_from_disk(str(out))
        missing = [split for split in ("train", "validation", "test") if split not in dataset]
        if missing:
            problems.append(f"splits missing: {', '.join(missing)}")
    except Exception as error:  # noqa: BLE001 - any failure to load is the finding
        problems.append(f"load_from_disk fails ({type(error).__name__})")
    try:
        load_from_disk(str(out / "documents"))
    except Exception as error:  # noqa: BLE001
        problems.append(f"documents/ does not load ({type(error).__name__})")
    try:
        json.loads((out / "stats.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        problems.append(f"stats.json unreadable ({type(error).__name__})")
    return problems + folder_leftovers(out)


def target_left(out: Path, before: dict[str, str] | None, problems_if_complete: list[str]) -> str:
    """What a kill left of a folder that appears whole or not at all: absent, as it was, complete (the new one),
    or half-written."""
    if not out.exists():
        return "absent"
    if before is not None and fingerprint(out) == before:
        return "as_before"
    if not problems_if_complete:
        return "complete"
    if before is None and out.is_dir() and not any(out.iterdir()):
        return "empty_folder"
    return "half_written"


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------


def processes_of(marker: str, folder: Path) -> list[dict[str, Any]]:
    """Live processes started under a run (its marker in their environment) or naming its folder."""
    import psutil

    found, me = [], os.getpid()
    for process in psutil.process_iter(["pid", "name", "cmdline", "status", "ppid"]):
        try:
            if process.pid == me or process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(process.info["cmdline"] or [])
            mine = str(folder) in cmdline
            if not mine:
                try:
                    mine = process.environ().get(MARKER) == marker
                except (psutil.AccessDenied, psutil.ZombieProcess):
                    pass
            if mine:
                if "resource_tracker" in cmdline:
                    role = "multiprocessing resource tracker"
                elif "multiprocessing" in cmdline:
                    role = "multiprocessing worker"
                else:
                    arguments = process.info["cmdline"] or []
                    role = Path(arguments[1]).name if len(arguments) > 1 else process.info["name"]
                found.append({"pid": process.pid, "ppid": process.info["ppid"], "role": role})
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def end_processes(found: list[dict[str, Any]]) -> None:
    """SIGKILL the processes a run left (by pid: they were started by this script, through the run)."""
    for entry in found:
        try:
            os.kill(entry["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass


def last_stderr_line(path: Path, failed: bool) -> str | None:
    """The run's last error line (else its last line), not a progress bar; file names and reasons, no note text."""
    if not path.is_file():
        return None
    lines = [line.strip() for line in path.read_text(errors="replace").replace("\r", "\n").split("\n")]
    lines = [line for line in lines if line and "%|" not in line and not line.startswith("warnings.warn")]
    if failed:
        errors = [line for line in lines if re.search(r"error|Error|Exception|Traceback|refus", line)]
        lines = errors or lines
    return lines[-1][:300] if lines else None


# ---------------------------------------------------------------------------
# The runs
# ---------------------------------------------------------------------------


class Stress:
    def __init__(self, args: argparse.Namespace, work: Path):
        self.args, self.work = args, work
        self.python = sys.executable
        self.brat, self.data, self.model = work / "brat", work / "data", work / "model"
        self.notes_dir = self.brat / "train"
        self.env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                        OMP_NUM_THREADS=str(args.num_threads), MKL_NUM_THREADS=str(args.num_threads))
        self.gold: dict[str, str] = {}
        self.inputs: dict[str, dict[str, str]] = {}
        self.durations: dict[str, float] = {}
        self.existing: dict[str, Path] = {}

    # The user's commands -------------------------------------------------

    def script(self, name: str) -> str:
        return str(common.REPO_DIR / name)

    def command(self, kind: str, variant: dict[str, Any], out: Path) -> list[str]:
        py = self.python
        if kind in ("annotate", "annotate_2proc"):
            command = [py, self.script("annotate_notes.py"), "--model_name_or_path", str(self.model),
                       "--input_dir", str(self.notes_dir), "--output_dir", str(out), "--device", "cpu",
                       "--words_per_group", str(self.args.words_per_group)]
            return command + (["--num_processes", "2", "--num_threads", "1"] if kind == "annotate_2proc"
                              else ["--num_threads", str(self.args.num_threads)])
        if kind == "export":
            return [py, self.script("export_onnx.py"), "--model_name_or_path", str(self.model), "--output_dir", str(out),
                    *(["--quantize", "int8", "--dataset_path", str(self.data)] if variant.get("quantize") else []),
                    *(["--overwrite"] if variant.get("existing") else [])]
        if kind == "train":
            return [py, self.script("run_ner_crf.py"), str(common.REPO_DIR / "configs" / "quickstart.json"),
                    "--dataset_path", str(self.data), "--output_dir", str(out),
                    "--max_steps", str(self.args.train_steps), "--save_strategy", "steps",
                    "--save_steps", str(self.args.save_steps), "--eval_strategy", "no",
                    "--load_best_model_at_end", "false", "--max_eval_samples", "200", "--max_predict_samples", "300"]
        if kind == "prepare":
            return [py, self.script("prepare_n2c2.py"), "--train_dir", str(self.notes_dir), "--test_dir",
                    str(self.brat / "test"), "--output_dir", str(out), *(["--overwrite"] if variant.get("existing") else [])]
        raise ValueError(kind)

    @staticmethod
    def duration_key(kind: str, variant: dict[str, Any]) -> str:
        return f"{kind}_int8" if kind == "export" and variant.get("quantize") else kind

    def overwrite_flag(self, kind: str) -> str:
        return {"export": "--overwrite", "prepare": "--overwrite", "train": "--overwrite"}[kind]

    # Checks ---------------------------------------------------------------

    def check(self, kind: str, variant: dict[str, Any], out: Path) -> tuple[list[str], list[str]]:
        if kind in ("annotate", "annotate_2proc"):
            return check_annotate(out, self.notes_dir), []
        if kind == "export":
            return check_export(out, bool(variant.get("quantize"))), []
        if kind == "train":
            return check_train(out)
        return check_dataset(out), []

    def inputs_changed(self) -> dict[str, Any]:
        """Gold files changed since the set-up (never allowed), and input files (dataset, model) changed since the
        last look (so that each change is put down to the step that made it)."""
        gold = compare(self.gold, fingerprint(self.brat))
        now = {name: fingerprint(self.work / name) for name in self.inputs}
        inputs = {name: compare(self.inputs[name], now[name]) for name in self.inputs}
        self.inputs = now
        return {"gold": gold, "gold_files_changed": count_changes(gold),
                "inputs": {name: diff for name, diff in inputs.items() if count_changes(diff)},
                "input_files_changed": sum(count_changes(diff) for diff in inputs.values())}

    # Running ---------------------------------------------------------------

    def run_plain(self, command: list[str], log: Path, timeout: float, marker: str) -> tuple[int | None, float]:
        """Run to the end (``None`` on timeout: the group is killed)."""
        env = dict(self.env, **{MARKER: marker})
        started = time.perf_counter()
        with open(log.with_suffix(".out"), "w") as stdout, open(log.with_suffix(".err"), "w") as stderr:
            process = subprocess.Popen(command, cwd=common.REPO_DIR, env=env, stdout=stdout, stderr=stderr,
                                       start_new_session=True)
            try:
                rc = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                rc = None
        return rc, time.perf_counter() - started

    def setup(self) -> dict[str, Any]:
        started = time.perf_counter()
        logs = self.work / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        prepare = [self.python, self.script("prepare_n2c2.py"), "--synthetic", str(self.args.num_notes), "--seed", "42",
                   "--output_dir", str(self.data), "--write_brat", str(self.brat)]
        rc, _ = self.run_plain(prepare, logs / "setup_prepare", 600, "setup")
        if rc != 0:
            raise SystemExit(f"set-up: prepare_n2c2.py exited with {rc} (log: {logs / 'setup_prepare.err'})")
        data_before_training = fingerprint(self.data)
        train = [self.python, self.script("run_ner_crf.py"), str(common.REPO_DIR / "configs" / "quickstart.json"),
                 "--dataset_path", str(self.data), "--output_dir", str(self.model),
                 "--num_train_epochs", str(self.args.model_epochs), "--eval_strategy", "no", "--save_strategy", "no",
                 "--load_best_model_at_end", "false", "--do_eval", "false", "--do_predict", "false"]
        rc, train_seconds = self.run_plain(train, logs / "setup_train", 900, "setup")
        if rc != 0:
            raise SystemExit(f"set-up: run_ner_crf.py exited with {rc} (log: {logs / 'setup_train.err'})")
        self.gold = fingerprint(self.brat)
        self.inputs = {"data": fingerprint(self.data), "model": fingerprint(self.model)}
        return {"seconds": time.perf_counter() - started, "model_train_seconds": train_seconds,
                "notes": len(note_paths(self.notes_dir)), "test_notes": len(note_paths(self.brat / "test")),
                "gold_files": len(self.gold), "input_files": {k: len(v) for k, v in self.inputs.items()},
                # Side effect worth knowing: the Trainer's tokenisation caches land in the dataset folder.
                "dataset_files_added_by_training": compare(data_before_training, self.inputs["data"])["added"]}

    def baseline(self, kind: str, variant: dict[str, Any]) -> dict[str, Any]:
        """Uninterrupted runs (``--baseline_rounds``, each into a new folder): the shortest time is the duration the
        kill moments are drawn from (the first run of a kind is often slower: cold caches), and the checks must pass
        on folders nobody killed."""
        key = self.duration_key(kind, variant)
        fresh = dict(variant, existing=False)
        rounds = []
        for round_index in range(self.args.baseline_rounds):
            folder = self.work / "baseline" / f"{key}-{round_index + 1}"
            folder.mkdir(parents=True, exist_ok=True)
            out = folder / "out"
            rc, seconds = self.run_plain(self.command(kind, fresh, out), folder / "run", 900, f"baseline-{key}")
            problems, notes = self.check(kind, fresh, out)
            changed = self.inputs_changed()
            rounds.append({"seconds": seconds, "rc": rc, "consistent": rc == 0 and not problems, "problems": problems,
                           "notes": notes,
                           "last_stderr_line": last_stderr_line(folder / "run.err", True) if rc != 0 else None,
                           "gold_files_changed": changed["gold_files_changed"], "inputs_changed": changed["inputs"]})
            self.existing[key] = out
            print(f"[stress] baseline {key} ({round_index + 1}/{self.args.baseline_rounds}): {seconds:.1f} s, exit {rc}, "
                  f"{'consistent' if not problems else 'NOT consistent: ' + '; '.join(problems)}", flush=True)
        self.durations[key] = min(r["seconds"] for r in rounds)
        return {"seconds": self.durations[key], "seconds_by_round": [r["seconds"] for r in rounds],
                "consistent": all(r["consistent"] for r in rounds), "rounds": rounds}

    def existing_target(self, kind: str, variant: dict[str, Any]) -> Path:
        """The earlier output a run with ``existing`` writes over: export, the baseline of the other graph set
        (an int8 export over an fp32 one and the other way round); prepare, the baseline dataset."""
        if kind == "export":
            return self.existing["export" if variant.get("quantize") else "export_int8"]
        return self.existing[kind]

    def run_one(self, index: int, kind: str, variant: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        import psutil

        folder = self.work / "runs" / f"{index:02d}-{kind}"
        folder.mkdir(parents=True)
        out = folder / "out"
        before = None
        if variant.get("existing"):
            shutil.copytree(self.existing_target(kind, variant), out, symlinks=True)
            before = fingerprint(out)
        key = self.duration_key(kind, variant)
        duration = self.durations[key]
        fraction = rng.uniform(0.1, 1.0)
        command = self.command(kind, variant, out)
        marker = f"{index:02d}-{uuid.uuid4().hex}"
        env = dict(self.env, **{MARKER: marker})
        record: dict[str, Any] = {"index": index, "kind": kind, "variant": variant, "duration_seconds": duration,
                                  "kill_fraction": fraction, "kill_target": variant["kill"]}
        started = time.perf_counter()
        with open(folder / "first.out", "w") as stdout, open(folder / "first.err", "w") as stderr:
            process = subprocess.Popen(command, cwd=common.REPO_DIR, env=env, stdout=stdout, stderr=stderr,
                                       start_new_session=True)
            deadline = started + fraction * duration
            while process.poll() is None and time.perf_counter() < deadline:
                time.sleep(min(0.02, max(0.0, deadline - time.perf_counter())))
            if process.poll() is None:
                try:
                    descendants = len(psutil.Process(process.pid).children(recursive=True))
                except psutil.NoSuchProcess:
                    descendants = 0
                if variant["kill"] == "group":
                    os.killpg(process.pid, signal.SIGKILL)
                else:
                    os.kill(process.pid, signal.SIGKILL)
                record.update(killed=True, kill_seconds=time.perf_counter() - started,
                              processes_under_it_at_kill=descendants)
                process.wait()
            else:
                record.update(killed=False, kill_seconds=None, first_exit_status=process.returncode,
                              first_seconds=time.perf_counter() - started)
        time.sleep(self.args.orphan_wait)
        orphans = processes_of(marker, folder)
        record["alive_after_wait"] = [{"role": o["role"], "reparented": o["ppid"] != os.getpid()} for o in orphans]
        end_processes(orphans)

        # What the kill left, before anything touches the folder.
        if kind in ("annotate", "annotate_2proc"):
            left = annotate_left(out, self.notes_dir)
        elif kind == "train":
            left = train_left(out)
        else:
            complete_problems = (check_export(out, bool(variant.get("quantize"))) if kind == "export"
                                 else check_dataset(out)) if out.exists() else ["absent"]
            left = {"target": target_left(out, before, complete_problems), "siblings": siblings(out),
                    "entries": sorted(p.name for p in out.iterdir()) if out.is_dir() else None}
            if left["target"] == "half_written":
                left["why"] = complete_problems[:3]
        record["left"] = left
        record["after_kill"] = self.inputs_changed()

        # The re-run, as a user would.
        rerun, added = list(command), []
        if kind in ("export", "prepare") and left["target"] == "complete" and not variant.get("existing"):
            added = [self.overwrite_flag(kind)]
        elif kind == "train":
            complete, _ = checkpoints(out)
            if complete:
                added = ["--resume_from_checkpoint", "true"]
            elif out.is_dir() and any(out.iterdir()):
                added = ["--overwrite"]
        rerun += added
        rc, seconds = self.run_plain(rerun, folder / "rerun", max(120.0, 6 * duration), marker + "-rerun")
        problems, notes = self.check(kind, variant, out)
        after = self.inputs_changed()
        record.update(rerun_flags_added=added, rerun_exit_status=rc, rerun_seconds=seconds,
                      rerun_last_stderr_line=last_stderr_line(folder / "rerun.err", rc != 0) if rc != 0 else None,
                      consistent=not problems, problems=problems, notes=notes, after_rerun=after)
        leftover = processes_of(marker + "-rerun", folder)
        if leftover:
            record["alive_after_rerun"] = [o["role"] for o in leftover]
            end_processes(leftover)
        return record


def summary_of_left(run: dict[str, Any]) -> str:
    """A few words on what the kill left (for the table)."""
    left = run["left"]
    if run["kind"] in ("annotate", "annotate_2proc"):
        text = f"{left['ann_files']} .ann"
        if left["ann_without_records"]:
            text += f", {left['ann_without_records']} WITHOUT records"
        hidden = left["hidden_files"]
        if hidden:
            text += f", {len(hidden)} hidden"
        return text
    if run["kind"] == "train":
        complete, incomplete = left["complete_checkpoints"], left["incomplete_checkpoints"]
        parts = [f"{len(complete)} checkpoints" + (f" (+{len(incomplete)} incomplete)" if incomplete else "")]
        if left["present"]["model.safetensors"]:
            parts.append("final model")
        if left["present"][".final-model.partial"]:
            parts.append(".final-model.partial")
        return ", ".join(parts) if left["folder_exists"] else "no folder"
    return left["target"].replace("_", " ")


def changed_names(runs: list[dict[str, Any]], what: str, kind: str | None = None) -> set[str]:
    """Every gold (``what="gold"``) or input file (``"inputs"``: ``folder/name``) changed, added or removed at any
    check of any run (of ``kind``)."""
    names: set[str] = set()
    for run in runs:
        if kind is not None and run["kind"] != kind:
            continue
        for moment in ("after_kill", "after_rerun"):
            if what == "gold":
                names.update(name for diff in run[moment]["gold"].values() for name in diff)
            else:
                names.update(f"{folder}/{name}" for folder, difference in run[moment]["inputs"].items()
                             for diff in difference.values() for name in diff)
    return names


def totals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "runs": len(runs),
        "killed": sum(run["killed"] for run in runs),
        "consistent": sum(run["consistent"] for run in runs),
        "reruns_failed": sum(run["rerun_exit_status"] != 0 for run in runs),
        # Fingerprints are compared with the set-up's, so a change stays in every later run: count the files.
        "gold_files_changed": len(changed_names(runs, "gold")),
        "gold_files_changed_names": sorted(changed_names(runs, "gold"))[:20],
        "input_files_changed": len(changed_names(runs, "inputs")),
        "input_files_changed_names": sorted(changed_names(runs, "inputs"))[:20],
        "runs_with_processes_alive_after_wait": sum(bool(run["alive_after_wait"]) for run in runs),
        "processes_alive_after_wait": sum(len(run["alive_after_wait"]) for run in runs),
        # export and prepare: the target must be absent, as it was, or complete after a kill
        "targets_not_whole_after_kill": sum(run["left"].get("target") not in (None, "absent", "as_before", "complete")
                                            for run in runs),
        "ann_without_records": sum(run["left"].get("ann_without_records", 0) for run in runs),
        "by_kind": {kind: {"runs": sum(run["kind"] == kind for run in runs),
                           "consistent": sum(run["kind"] == kind and run["consistent"] for run in runs),
                           "input_files_changed": len(changed_names(runs, "inputs", kind))}
                    for kind in dict.fromkeys(run["kind"] for run in runs)},
    }


def variant_label(run: dict[str, Any]) -> str:
    variant, parts = run["variant"], []
    if run["kind"] == "annotate_2proc":
        parts.append(f"kill {variant['kill']}")
    if variant.get("quantize"):
        parts.append("int8")
    if variant.get("existing"):
        parts.append("over an earlier one")
    return ", ".join(parts)


def table(runs: list[dict[str, Any]]) -> list[str]:
    lines = [f"{'#':>2}  {'kind':<15} {'variant':<28} {'kill s':>7} {'frac':>5}  {'left':<34} {'re-run':>6}  result"]
    for run in runs:
        kill = f"{run['kill_seconds']:.1f}" if run["killed"] else "done"
        result = "consistent" if run["consistent"] else "NOT consistent: " + "; ".join(run["problems"])
        if run["rerun_exit_status"] != 0:
            result += f" (re-run: {run['rerun_last_stderr_line']})"
        if run["alive_after_wait"]:
            result += f"; {len(run['alive_after_wait'])} processes alive after the wait"
        lines.append(f"{run['index']:>2}  {run['kind']:<15} {variant_label(run):<28} {kill:>7} "
                     f"{run['kill_fraction']:>5.2f}  {summary_of_left(run):<34} {str(run['rerun_exit_status']):>6}  "
                     f"{result}")
    return lines


# The code under test: its hashes at the start and the end say which version every run met.
CODE_FILES = ("annotate_notes.py", "export_onnx.py", "run_ner_crf.py", "prepare_n2c2.py", "clinical_ner_crf/folder_safety.py",
              "clinical_ner_crf/corpus_io.py", "clinical_ner_crf/run_folders.py", "clinical_ner_crf/onnx_backend.py", "clinical_ner_crf/command_line.py")


def code_hashes() -> dict[str, str]:
    return {name: hashlib.sha256((common.REPO_DIR / name).read_bytes()).hexdigest()[:12]
            for name in CODE_FILES if (common.REPO_DIR / name).is_file()}


def code_state() -> dict[str, Any]:
    """The commit the scripts come from, which tracked files outside bench/ differ from it, and the scripts' hashes."""
    def git(*arguments):
        completed = subprocess.run(["git", *arguments], cwd=common.REPO_DIR, capture_output=True, text=True)
        return completed.stdout.rstrip("\n") if completed.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no") or ""
    return {"commit": (git("rev-parse", "--short", "HEAD") or "").strip() or None,
            "modified_files": sorted(line[3:] for line in status.splitlines() if not line[3:].startswith("bench/")),
            "code_hashes": code_hashes()}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="killed runs, round-robin over the kinds")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    parser.add_argument("--work_dir", default=None, help="scratch folder, kept (default: a temporary one, removed)")
    parser.add_argument("--num_notes", type=int, default=144,
                        help="synthetic notes (five sixths are the training notes that annotate runs on)")
    parser.add_argument("--words_per_group", type=int, default=2000,
                        help="annotate_notes.py --words_per_group: many groups, so that kills land between them")
    parser.add_argument("--model_epochs", type=int, default=1, help="epochs of the tiny model annotated and exported")
    parser.add_argument("--train_steps", type=int, default=60, help="steps of each killed training run")
    parser.add_argument("--save_steps", type=int, default=15, help="checkpoint interval of each killed training run")
    parser.add_argument("--num_threads", type=int, default=1,
                        help="threads per process (OMP_NUM_THREADS, annotate_notes.py --num_threads): on a shared "
                             "machine, torch with 2 threads per process slows down many times over when another "
                             "process takes a core, and the kill moments follow the measured durations")
    parser.add_argument("--baseline_rounds", type=int, default=2,
                        help="uninterrupted runs of each kind; the shortest sets the duration kills are drawn from")
    parser.add_argument("--orphan_wait", type=float, default=5.0,
                        help="seconds after a kill before looking for processes still alive")
    parser.add_argument("--output", default=str(common.RESULTS_DIR / "stress_interruptions.json"))
    args = parser.parse_args(argv)

    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    if args.work_dir:
        work = Path(args.work_dir).resolve()
        if work.exists() and any(work.iterdir()):
            raise SystemExit(f"--work_dir {work} is not empty: give a new or empty folder")
        work.mkdir(parents=True, exist_ok=True)
        scratch = None
    else:
        scratch = tempfile.mkdtemp(prefix="stress-interruptions-")
        work = Path(scratch)
    result: dict[str, Any] = {"settings": {
        "runs": args.runs, "seed": args.seed, "kinds": args.kinds, "num_notes": args.num_notes,
        "words_per_group": args.words_per_group, "model_epochs": args.model_epochs, "train_steps": args.train_steps,
        "save_steps": args.save_steps, "num_threads": args.num_threads, "baseline_rounds": args.baseline_rounds,
        "orphan_wait_seconds": args.orphan_wait, "variants": VARIANTS,
        "load_average_1m_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        **code_state()}, "machine": common.machine_info()}
    try:
        stress = Stress(args, work)
        print(f"[stress] set-up in {work}", flush=True)
        result["setup"] = stress.setup()
        result["baseline"] = {}
        for kind in args.kinds:
            for variant in {Stress.duration_key(kind, v): v for v in VARIANTS[kind]}.values():
                result["baseline"][Stress.duration_key(kind, variant)] = stress.baseline(kind, variant)
        rng = random.Random(args.seed)
        for index in range(args.runs):
            kind = args.kinds[index % len(args.kinds)]
            variants = VARIANTS[kind]
            variant = variants[(index // len(args.kinds)) % len(variants)]
            run = stress.run_one(index + 1, kind, variant, rng)
            runs.append(run)
            print(table([run])[1], flush=True)
        result["runs"] = runs
        result["totals"] = totals(runs)
        result["totals"]["baselines_consistent"] = all(b["consistent"] for b in result["baseline"].values())
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    result["total_seconds"] = time.perf_counter() - started
    changed = sorted(name for name, digest in code_hashes().items() if result["settings"]["code_hashes"].get(name) != digest)
    result["code_changed_during_the_run"] = changed
    if changed:
        print(f"[stress] WARNING: {', '.join(changed)} changed while the stress ran: runs may have met two versions",
              flush=True)
    common.write_json(Path(args.output), result)
    t = result["totals"]
    print("\n".join(["", *table(runs), "",
                     f"[stress] {t['consistent']} of {t['runs']} folders consistent after the re-run; "
                     f"{t['reruns_failed']} re-runs failed; gold files changed: {t['gold_files_changed']}; "
                     f"input files changed: {t['input_files_changed']}; processes alive {args.orphan_wait:g} s after "
                     f"a kill: {t['processes_alive_after_wait']}; targets not whole after a kill: "
                     f"{t['targets_not_whole_after_kill']}; "
                     f".ann without records: {t['ann_without_records']} -> {args.output} "
                     f"({result['total_seconds'] / 60:.1f} min)"]), flush=True)
    return result


if __name__ == "__main__":
    main()
