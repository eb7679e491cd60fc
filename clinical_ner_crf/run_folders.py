"""Training runs' output folders, arguments and logs: the rules every training script follows.

Shared by ``run_ner_crf.py`` and ``pretrain_mlm.py`` (the way transformers' examples share
``utils_qa.py``). The rules are stated in docs/architecture.md ("Output folders, re-runs and
interruptions"):

- a run refuses an output folder that is not empty, unless ``--overwrite`` (the earlier
  run's outputs are removed) or ``--resume_from_checkpoint PATH|true`` (the newest complete checkpoint;
  the run's settings must match the ones recorded in it);
- each checkpoint gets ``run_args.json`` last, so one cut short by a crash is skipped by name;
- the final model is written to a hidden folder and moved into place;
- bad arguments are a :class:`UsageError`: one line, exit status 2, before any work.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .command_line import UsageError
from .files import (
    CALIBRATION_FILE, PREDICTIONS_DIRNAME, PRETRAINING_DATA_FILE, RUN_ARGS_FILE, RUN_INFO_FILE, usual_file_mode,
    write_json_atomically,
)
from .console import configure_output
from .folder_safety import FolderLock, Manifest, check_output_apart, remove_if_untouched

logger = logging.getLogger(__name__)


# What a run writes into its output folder: claimed in its manifest (folder_safety.Manifest) before the run writes
# them; --overwrite removes what the manifest names and nothing else.
RUN_OUTPUT_PATTERNS = (
    "checkpoint-*", ".final-model.partial", PREDICTIONS_DIRNAME, "runs", "config.json", "generation_config.json",
    "model*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin", "training_args.bin", "modeling_crf.py",
    "windows.py", "tagging.py", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
    "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "README.md", "*_results.json",
    "trainer_state.json", RUN_INFO_FILE, PRETRAINING_DATA_FILE, CALIBRATION_FILE,
)


@contextmanager
def output_folder_lock(training_args: TrainingArguments, script: str, inputs: Mapping[str, Any]) -> Iterator[None]:
    """The output folder of a run: never an input's folder (``inputs``: flag -> path), and written by one command at
    a time (process 0 of a launched run holds the lock for all its processes)."""
    check_output_apart(training_args.output_dir, inputs)
    created = not Path(training_args.output_dir).exists()
    with FolderLock(training_args.output_dir, script, enabled=training_args.process_index == 0):
        try:
            yield
        except BaseException:
            if created and training_args.process_index == 0:  # stopped before writing anything: no folder left
                remove_if_untouched(training_args.output_dir)
            raise


def clear_run_outputs(output_dir: Path) -> int:
    """Remove what earlier runs wrote into ``output_dir`` (what its manifest names); other files stay (logged)."""
    manifest = Manifest(output_dir)
    removed, others = manifest.remove_owned(), manifest.foreign()
    if others:
        logger.warning(f"{output_dir}: kept {len(others)} entries this toolkit did not write: {', '.join(others[:5])}")
    return len(removed)


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """The checkpoints of a run folder that were saved to the end (their run_args.json is written last), newest
    first; an incomplete one (a run killed while saving) is skipped with a warning naming it."""
    checkpoints = sorted((path for path in output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*")
                          if path.is_dir() and path.name.split("-")[-1].isdigit()),
                         key=lambda path: int(path.name.split("-")[-1]), reverse=True)
    complete = []
    for checkpoint in checkpoints:
        if (checkpoint / RUN_ARGS_FILE).is_file():
            complete.append(checkpoint)
        else:
            logger.warning(f"{checkpoint}: incomplete (no {RUN_ARGS_FILE}: the run stopped while saving it); skipped")
    return complete


def prepare_output_dir(output_dir: Path, training_args: TrainingArguments, overwrite: bool) -> str | None:
    """The overwrite and resume rules (docs/architecture.md, "Output folders"); returns the checkpoint to resume.

    A training run refuses an output folder that is not empty, unless ``--overwrite`` (the
    earlier run's outputs are removed) or ``--resume_from_checkpoint PATH`` (``true``/``last``: the
    newest complete checkpoint of the output folder).
    """
    resume = training_args.resume_from_checkpoint
    if overwrite and resume:
        raise UsageError("--overwrite starts afresh and --resume_from_checkpoint continues: pass one")
    # Every process looks at the folder before the first one writes into it: a process that looked after process 0
    # had claimed the folder would find it "not empty" and stop the run (seen under load with two CPU processes).
    not_empty = output_dir.is_dir() and any(output_dir.iterdir())
    wait_for_every_process(training_args)
    if resume:
        if str(resume).lower() in ("true", "last"):
            complete = complete_checkpoints(output_dir) if output_dir.is_dir() else []
            if not complete:
                raise UsageError(f"--resume_from_checkpoint {resume}: {output_dir} has no complete checkpoint")
            resume = str(complete[0])
        elif not (Path(resume) / RUN_ARGS_FILE).is_file():
            raise UsageError(f"--resume_from_checkpoint {resume}: not a complete checkpoint (no {RUN_ARGS_FILE})")
        logger.warning(f"Resuming from {resume}: its weights, optimizer and schedule are continued")
        if training_args.process_index == 0:
            Manifest(output_dir).claim_for_writing(RUN_OUTPUT_PATTERNS)
        return resume
    if not_empty:
        if not overwrite:
            held = sorted(path.name for path in output_dir.iterdir())
            raise UsageError(f"--output_dir {output_dir} is not empty ({len(held)} entries, e.g. "
                             f"{', '.join(held[:4])}): pass --overwrite to start afresh (the earlier run's "
                             "model, checkpoints and predictions are removed) or --resume_from_checkpoint true to "
                             "continue its last checkpoint")
        with training_args.main_process_first(desc="clearing the output folder"):
            if training_args.process_index == 0:
                removed = clear_run_outputs(output_dir)
                logger.warning(f"--overwrite: removed {removed} outputs of an earlier run from {output_dir}")
    if training_args.process_index == 0:
        Manifest(output_dir).claim_for_writing(RUN_OUTPUT_PATTERNS)
    return None


def wait_for_every_process(training_args: TrainingArguments) -> None:
    """A barrier across the processes of a data-parallel run (nothing in a single process)."""
    if training_args.world_size > 1:
        import torch.distributed

        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()


def check_resume_matches(checkpoint: str, current: dict[str, Any], must_match: Sequence[str]) -> None:
    """Refuse to resume a checkpoint of another run: name every setting of ``must_match`` that differs."""
    recorded = json.loads((Path(checkpoint) / RUN_ARGS_FILE).read_text(encoding="utf-8"))
    different = [f"{key}: {recorded.get(key)!r} in the checkpoint, {current.get(key)!r} now"
                 for key in must_match if recorded.get(key) != current.get(key)]
    if different:
        raise UsageError(f"{checkpoint} belongs to another run ({'; '.join(different)}): resume it with the same "
                         "data and settings, or pass --overwrite to start afresh")


class RecordRunArguments(TrainerCallback):
    """Writes run_args.json into each checkpoint once it is saved: a checkpoint without it is incomplete."""

    def __init__(self, run_args: dict[str, Any]):
        self.run_args = run_args

    def on_save(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if state.is_world_process_zero and checkpoint.is_dir():
            write_json_atomically(checkpoint / RUN_ARGS_FILE, self.run_args)


def setup_logging(training_args: TrainingArguments, script_logger: logging.Logger) -> bool:
    """Logging as in transformers' run_ner.py, quiet unless --verbose (``console.configure_output``): the first
    process shows what the others do not. Returns whether the run is verbose."""
    verbose = configure_output(script_logger, None if training_args.should_log else
                               training_args.get_process_log_level())
    script_logger.info(f"Process rank: {training_args.process_index}, device: {training_args.device}, "
                       f"n_gpu: {training_args.n_gpu}, distributed: {training_args.parallel_mode.value}, "
                       f"world size: {training_args.world_size}, bf16: {training_args.bf16}, fp16: {training_args.fp16}")
    if training_args.device.type == "cpu":
        training_args.dataloader_pin_memory = False  # pinning is for GPU transfers (torch warns on CPU)
    return verbose


class TrainingBarOnly(ProgressCallback):
    """The Trainer's progress bar without the lines it writes under it (each logged loss, the evaluation bars):
    a quiet run shows one bar; the numbers are in trainer_state.json and the results files."""

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        pass

    def on_log(self, args, state, control, logs=None, **kwargs):
        pass


def quiet_progress(trainer: Trainer, verbose: bool) -> None:
    """Without --verbose, the Trainer shows :class:`TrainingBarOnly` instead of its own progress lines (and with
    --disable_tqdm, nothing: not the log lines its PrinterCallback would print instead)."""
    if verbose:
        return
    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(TrainingBarOnly)


def save_final_model(trainer: Trainer, output_dir: Path) -> None:
    """The model, config, code and tokenizer, written to a hidden folder and moved into place when complete,
    with the usual file permissions (the Trainer's are owner-only for some files)."""
    partial = output_dir / ".final-model.partial"
    if trainer.is_world_process_zero():
        shutil.rmtree(partial, ignore_errors=True)
    trainer.save_model(str(partial))
    if trainer.is_world_process_zero():
        for path in sorted(partial.iterdir()):
            os.chmod(path, usual_file_mode())
            os.replace(path, output_dir / path.name)
        partial.rmdir()


def trainer_state_epoch(checkpoint: str | None) -> float:
    """The epoch a checkpoint had reached (0 for a fresh start)."""
    state = Path(checkpoint or "") / "trainer_state.json"
    return float(json.loads(state.read_text()).get("epoch") or 0.0) if checkpoint and state.is_file() else 0.0


def check_train_split(train_split: str, test_split: str | None, allowed: bool) -> None:
    """Refuse, before any work, a ``--train_split`` that names the test split (``test``, or ``test_split``, alone or
    joined with ``+``) unless ``--allow_test_training`` says so: a :class:`UsageError`, one line."""
    test_names = {"test", test_split} - {None, ""}
    parts = [part.strip() for part in train_split.split("+")]
    named = [part for part in parts if part in test_names]
    if named and not allowed:
        raise UsageError(f"--train_split {train_split} trains on the test split ({named[0]}): its test scores would "
                         f"be meaningless; train on train (or train+validation), or pass --allow_test_training if the "
                         f"model will never be scored on those notes")
