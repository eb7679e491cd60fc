"""Parallel annotation: one folder of notes shared among several processes (a launcher's ranks, or workers this process starts), each writing its own parts, merged by process 0 into the outputs one process would have written."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from .folder_annotation import (
    Tally, annotate_note_groups, annotator_facts, compact_outputs, finish_annotation, plan_folder, split_notes,
)
from .folder_safety import FolderLock, die_with_parent
from .note_annotator import NoteAnnotator
from .relation_linking import RelationChoice, choose_relations

logger = logging.getLogger(__name__)


def launched_processes() -> int:
    """How many processes a launcher (accelerate launch, torchrun) started for this run."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_settings(args, process_index: int, processes_here: int) -> tuple[str, int | None]:
    """(device, CPU threads) of one of several processes: process k on ``cuda:k`` when the device is ``cuda``;
    --num_threads, or the cores divided among the processes of this machine (None: the libraries' defaults)."""
    device = f"cuda:{process_index}" if args.device == "cuda" and processes_here > 1 else args.device
    if args.num_threads or processes_here == 1:
        return device, args.num_threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return device, max(1, cores // processes_here)


def relations_of_arguments(args) -> RelationChoice:
    """--relations, decided from the relation model's config (the same in every process)."""
    return choose_relations(args.relations, args.relation_model_name_or_path, link_threshold=args.link_threshold,
                            revision=args.model_revision, token=args.token)


def load_annotator(args, device: str, threads: int | None,
                    relations: RelationChoice) -> NoteAnnotator:
    if threads and args.backend == "torch" and device == "cpu":
        import torch

        torch.set_num_threads(threads)
    return NoteAnnotator.from_pretrained(
        args.model_name_or_path, device=device, bf16=args.bf16, trust_remote_code=args.trust_remote_code,
        revision=args.model_revision, token=args.token, batch_size=args.batch_size,
        max_seq_length=args.max_seq_length, stride=args.stride, min_confidence=args.min_confidence,
        relation_model_name_or_path=args.relation_model_name_or_path, link_threshold=args.link_threshold,
        relations=relations, backend=args.backend, onnx_model_file=args.onnx_model_file, num_threads=threads)


def _annotate_share(args, process_index: int, share: list[Path], jsonl_mode: int,
                    results, parent_pid: int, relations: RelationChoice) -> None:
    """One process of a --num_processes run: annotate its share into its parts, send back what it did. It dies
    with the process that started it: nothing writes into a folder whose lock holder is gone. ``relations``: the
    parent's choice (made and logged once)."""
    die_with_parent(parent_pid)
    logging.basicConfig(format=f"%(asctime)s - %(levelname)s - process {process_index} - %(message)s",
                        datefmt="%m/%d/%Y %H:%M:%S", level=logging.INFO)
    logger.setLevel(logging.INFO)
    device, threads = process_settings(args, process_index, args.num_processes)
    logger.info("process %d of %d: %s, %s threads, %d notes", process_index, args.num_processes, device, threads,
                len(share))
    try:
        annotator = load_annotator(args, device, threads, relations)
        tally = Tally()
        annotate_note_groups(annotator, share, Path(args.output_dir), tally, jsonl_mode=jsonl_mode,
                        overwrite=args.overwrite, word_predictions=args.word_predictions,
                        words_per_group=args.words_per_group, process_index=process_index,
                        progress=None if process_index == 0 else False)  # one bar: process 0's share
    except (OSError, ValueError) as error:  # a model that cannot be loaded, a full disk: the parent says it, once
        results.put((process_index, "error", str(error)))
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    results.put((process_index, tally, annotator_facts(annotator)))


def annotate_folder_in_processes(args, relations: RelationChoice | None = None
                                 ) -> dict[str, Any]:
    """--num_processes N: this process plans and merges (as process 0 of a launched run does); N processes
    started here (``multiprocessing``, spawn: no torch needed) annotate the shares, each linking as ``relations``
    says (default: ``args.relations`` decided here, once). One that fails stops the others; what they wrote is
    merged, and the same command finishes the rest (:class:`ProcessFailed`)."""
    if relations is None:
        relations = relations_of_arguments(args)
    with FolderLock(args.output_dir, "annotate_notes.py"):
        return _annotate_folder_in_processes(args, relations)


def _annotate_folder_in_processes(args, relations: RelationChoice) -> dict[str, Any]:
    import multiprocessing
    import queue

    started = time.perf_counter()
    output_dir = Path(args.output_dir)
    tally = Tally()
    plan = plan_folder(args.input_dir, output_dir, args.overwrite, tally)
    shares = split_notes(plan.todo, args.num_processes)
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no state copied from this one
    results = context.Queue()
    processes = [context.Process(target=_annotate_share,
                                 args=(args, index, share, plan.jsonl_mode, results, os.getpid(), relations),
                                 name=f"annotate-{index}") for index, share in enumerate(shares)]
    received: dict[int, tuple[Tally, dict[str, Any]]] = {}
    failed: tuple | None = None  # (process, exit status[, reason])
    try:
        for process in processes:
            process.start()
        silent: set[int] = set()  # exited cleanly, result not read yet (it is read on the next try, or never)
        while len(received) < len(processes) and failed is None:
            try:
                index, process_tally, facts = results.get(timeout=0.5)
                if process_tally == "error":  # its reason, in one line (every process would say the same)
                    failed = (index, 1, facts)
                    break
                received[index] = (process_tally, facts)
            except queue.Empty:
                for index, process in enumerate(processes):
                    if index in received or process.exitcode is None:
                        continue
                    if process.exitcode != 0 or index in silent:
                        failed = (index, process.exitcode)
                        break
                    silent.add(index)
    except KeyboardInterrupt:
        failed = (-1, 130)
    finally:
        for process in processes:
            if failed is not None and process.is_alive():
                process.terminate()
            process.join()
    if failed is not None:
        # Every process has stopped: merge what they wrote (the next run would).
        compact_outputs(output_dir, plan.notes, plan.repairs)
        if failed[1] == 130 or failed[0] == -1:
            raise KeyboardInterrupt
        raise ProcessFailed(failed[0], args.num_processes, failed[1], *failed[2:])
    for index in sorted(received):
        tally.update(received[index][0])
    return finish_annotation(plan, tally, received[0][1], output_dir, started=started, num_processes=args.num_processes,
                   word_predictions=args.word_predictions, words_per_group=args.words_per_group)


class ProcessFailed(Exception):
    def __init__(self, index: int, num_processes: int, exit_code: int | None, reason: str | None = None):
        why = f": {reason}" if reason else f" (exit status {exit_code})"
        super().__init__(f"process {index} of {num_processes} failed{why}; every .ann written has its records: run "
                         "the same command again to annotate the other notes")
