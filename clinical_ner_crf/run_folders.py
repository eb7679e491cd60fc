"""Training runs' output folders, arguments and logs: the rules every training script follows.

Shared by ``run_ner_crf.py`` and ``pretrain_mlm.py`` (the way transformers' examples share
``utils_qa.py``). The rules are stated in docs/architecture.md ("Output folders, re-runs and
interruptions"):

- a run refuses an output folder that is not empty, unless ``--overwrite_output_dir`` (the earlier
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
import re
import shutil
import sys
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import datasets
import transformers
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.tokenization_utils_base import TOKENIZER_CONFIG_FILE
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .command_line import UsageError, run_main
from .folder_safety import FolderLock, Manifest, check_output_apart
from .corpus_io import (
    CRF_FILE, EXPORT_INFO_FILE, ONNX_FILE, ONNX_INT8_FILE, PREDICTIONS_DIRNAME, PRETRAINING_DATA_FILE,
    QUANTIZATION_FILE, RUN_ARGS_FILE, RUN_INFO_FILE, usual_file_mode, write_json_atomically,
)
from .subwords import CORPUS_VOCABULARY_MARK, mark_corpus_vocabulary

logger = logging.getLogger(__name__)

# Files `--push_to_hub` uploads: model, tokenizer, config, modeling file and card. Nothing else
# (no predictions, datasets, logs or training state: they may hold corpus text).
HUB_UPLOAD_PATTERNS = [
    "config.json",
    "model.safetensors",
    "model-*.safetensors",
    "model.safetensors.index.json",
    "modeling_crf.py",
    "windows.py",  # the CRF pipeline (windows.NerPipeline) and the tag scheme it imports
    "tagging.py",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "added_tokens.json",
    "README.md",
    # export_onnx.py folders: the graphs, the CRF scores, and what the export and quantization did (numbers).
    ONNX_FILE,
    ONNX_FILE + ".data",  # external weights of a large graph
    ONNX_INT8_FILE,
    CRF_FILE,
    EXPORT_INFO_FILE,
    QUANTIZATION_FILE,
]


def config_to_argv(config: dict[str, Any]) -> list[str]:
    """A JSON config as command-line flags, so that flags given after it override it."""
    argv = []
    for key, value in config.items():
        if isinstance(value, bool):
            argv += [f"--{key}", str(value).lower()]
        elif isinstance(value, list):
            argv += [f"--{key}", *map(str, value)]
        elif value is not None:
            argv += [f"--{key}", str(value)]
    return argv


def parse_config_overrides(overrides: str | None) -> dict[str, Any]:
    """'n_layers=2,dim=128,activation=gelu' -> {'n_layers': 2, 'dim': 128, 'activation': 'gelu'}."""
    parsed: dict[str, Any] = {}
    for item in filter(None, (overrides or "").split(",")):
        key, _, value = item.partition("=")
        try:
            parsed[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key.strip()] = value.strip()
    return parsed


def parse_script_args(dataclass_types: Sequence[type], argv: Sequence[str] | None = None) -> tuple:
    """``SCRIPT.py [CONFIG.json] [--flag value ...]`` into the script's argument dataclasses: flags given after a
    JSON config file override it; a single-process launch with a GPU count is checked (:func:`check_launch`)."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(tuple(dataclass_types))
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith(".json"):
        argv = config_to_argv(json.loads(Path(argv[0]).read_text())) + argv[1:]
    check_launch(argv)
    return parser.parse_args_into_dataclasses(args=argv)


def flag_value(argv: Sequence[str], name: str) -> bool:
    """The last value of a boolean ``--name [true|false]`` flag on a command line (False when absent)."""
    value = False
    for index, arg in enumerate(argv):
        if arg == f"--{name}":
            following = argv[index + 1] if index + 1 < len(argv) else ""
            value = following.lower() not in ("false", "0", "no") if not following.startswith("--") else True
        elif arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1].lower() not in ("false", "0", "no")
    return value


def setup_logging(training_args: TrainingArguments, script_logger: logging.Logger) -> None:
    """Logging as in transformers' run_ner.py: INFO on the main process (counts, paths and settings, never text)."""
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%m/%d/%Y %H:%M:%S",
                        handlers=[logging.StreamHandler(sys.stdout)])
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_info()
    log_level = training_args.get_process_log_level()
    for log in (script_logger, logger):
        log.setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    script_logger.warning(f"Process rank: {training_args.process_index}, device: {training_args.device}, "
                          f"n_gpu: {training_args.n_gpu}, distributed: {training_args.parallel_mode.value}, "
                          f"world size: {training_args.world_size}, bf16: {training_args.bf16}, "
                          f"fp16: {training_args.fp16}")
    if training_args.device.type == "cpu":
        training_args.dataloader_pin_memory = False  # pinning is for GPU transfers (torch warns on CPU)


def check_launch(argv: Sequence[str]) -> None:
    """Launched as several processes on a machine without GPU, only --use_cpu joins them into one CPU run;
    without it each process trains the same model on its own. Checked before TrainingArguments, which
    already sets up the devices (and would wait for a process group)."""
    import torch

    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and not torch.cuda.is_available() and not flag_value(argv, "use_cpu"):
        raise UsageError(f"started as {launched} processes on a machine without GPU: pass --use_cpu so that they "
                         "form one CPU run (torch.distributed over gloo)")


def main_with_usage_errors(main, script_name: str) -> None:
    """Run ``main()`` under the exit convention of :mod:`command_line` (usage error 2, data error 1)."""
    run_main(main, script_name)


# What a run writes into its output folder: claimed in its manifest (folder_safety.Manifest) before the run writes
# them; --overwrite_output_dir removes what the manifest names and nothing else.
RUN_OUTPUT_PATTERNS = (
    "checkpoint-*", ".final-model.partial", PREDICTIONS_DIRNAME, "runs", "config.json", "generation_config.json",
    "model*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin", "training_args.bin", "modeling_crf.py",
    "windows.py", "tagging.py", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
    "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "README.md", "*_results.json",
    "trainer_state.json", RUN_INFO_FILE, PRETRAINING_DATA_FILE,
)


@contextmanager
def output_folder_lock(training_args: TrainingArguments, script: str, inputs: Mapping[str, Any]) -> Iterator[None]:
    """The output folder of a run: never an input's folder (``inputs``: flag -> path), and written by one command at
    a time (process 0 of a launched run holds the lock for all its processes)."""
    check_output_apart(training_args.output_dir, inputs)
    with FolderLock(training_args.output_dir, script, enabled=training_args.process_index == 0):
        yield


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

    A training run refuses an output folder that is not empty, unless ``--overwrite_output_dir`` (the
    earlier run's outputs are removed) or ``--resume_from_checkpoint PATH`` (``true``/``last``: the
    newest complete checkpoint of the output folder).
    """
    resume = training_args.resume_from_checkpoint
    if overwrite and resume:
        raise UsageError("--overwrite_output_dir starts afresh and --resume_from_checkpoint continues: pass one")
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
                             f"{', '.join(held[:4])}): pass --overwrite_output_dir to start afresh (the earlier run's "
                             "model, checkpoints and predictions are removed) or --resume_from_checkpoint true to "
                             "continue its last checkpoint")
        with training_args.main_process_first(desc="clearing the output folder"):
            if training_args.process_index == 0:
                removed = clear_run_outputs(output_dir)
                logger.warning(f"--overwrite_output_dir: removed {removed} outputs of an earlier run from {output_dir}")
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
                         "data and settings, or pass --overwrite_output_dir to start afresh")


class RecordRunArguments(TrainerCallback):
    """Writes run_args.json into each checkpoint once it is saved: a checkpoint without it is incomplete."""

    def __init__(self, run_args: dict[str, Any]):
        self.run_args = run_args

    def on_save(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if state.is_world_process_zero and checkpoint.is_dir():
            write_json_atomically(checkpoint / RUN_ARGS_FILE, self.run_args)


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


def push_model_to_hub(output_dir: Path, repo_id: str, token: str | None, private: bool | None = None,
                      script: str = "run_ner_crf.py", corpus_vocabulary_acknowledged: bool = False):
    """Upload model, tokenizer, config, code files and card: nothing else (see HUB_UPLOAD_PATTERNS). A tokenizer
    marked as learned from a corpus is uploaded only when acknowledged (``--push_corpus_vocabulary``): checked again
    here, on the folder being uploaded (:func:`check_vocabulary_upload`)."""
    from huggingface_hub import HfApi

    check_vocabulary_upload(True, acknowledged=corpus_vocabulary_acknowledged, tokenizer=output_dir)
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(repo_id=repo_id, folder_path=str(output_dir), allow_patterns=HUB_UPLOAD_PATTERNS,
                             commit_message=f"Upload model trained with {script}")


def hub_upload_files(output_dir: Path) -> list[str]:
    """The files of ``output_dir`` that :func:`push_model_to_hub` would upload."""
    from huggingface_hub.utils import filter_repo_objects

    files = [p.relative_to(output_dir).as_posix() for p in Path(output_dir).rglob("*") if p.is_file()]
    return sorted(filter_repo_objects(files, allow_patterns=HUB_UPLOAD_PATTERNS))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _marked(config: Mapping[str, Any]) -> bool:
    return config.get(CORPUS_VOCABULARY_MARK) is True


def corpus_vocabulary_evidence(tokenizer: Any) -> str | None:
    """Where a tokenizer says that its vocabulary was learned from a corpus, or None (see :func:`vocabulary_from_corpus`)."""
    if tokenizer is None or (isinstance(tokenizer, (str, os.PathLike)) and not str(tokenizer)):
        return None
    if not isinstance(tokenizer, (str, os.PathLike)):  # a tokenizer object: its init kwargs are its tokenizer_config.json
        if _marked(getattr(tokenizer, "init_kwargs", None) or {}):
            return f"{CORPUS_VOCABULARY_MARK} in the tokenizer's config"
        name = getattr(tokenizer, "name_or_path", "")
        return corpus_vocabulary_evidence(name) if name and Path(name).is_dir() else None
    folder = Path(tokenizer)
    if folder.is_dir():
        if _marked(_read_json(folder / TOKENIZER_CONFIG_FILE)):
            return f"{CORPUS_VOCABULARY_MARK} in {folder / TOKENIZER_CONFIG_FILE}"
        # Folders written before the mark existed: the run's record says it (a checkpoint's, in its run folder).
        records = [folder / RUN_INFO_FILE]
        if re.fullmatch(rf"{PREFIX_CHECKPOINT_DIR}-\d+", folder.name):
            records.append(folder.parent / RUN_INFO_FILE)
        for record in records:
            if _read_json(record).get("vocabulary_from_corpus"):
                return f"vocabulary_from_corpus in {record}"
        run_args = _read_json(folder / RUN_ARGS_FILE)
        learned_by_pretrain_mlm = "text_sha256" in run_args and not (run_args.get("tokenizer_name")
                                                                      or run_args.get("model_name_or_path"))
        if run_args.get("train_tokenizer") or learned_by_pretrain_mlm:
            return f"the run arguments in {folder / RUN_ARGS_FILE}"
        return None
    if is_hub_id(str(tokenizer)):
        from transformers.utils import cached_file

        try:  # the tokenizer's own config (a few hundred bytes), as from_pretrained would fetch it
            path = cached_file(str(tokenizer), TOKENIZER_CONFIG_FILE, _raise_exceptions_for_missing_entries=False,
                               _raise_exceptions_for_connection_errors=False)
        except Exception:  # unreachable or gated: the check on the folder being uploaded still runs (push_model_to_hub)
            path = None
        if path and _marked(_read_json(Path(path))):
            return f"{CORPUS_VOCABULARY_MARK} in {tokenizer}'s {TOKENIZER_CONFIG_FILE}"
    return None


def vocabulary_from_corpus(tokenizer: Any) -> bool:
    """Whether a tokenizer's vocabulary was learned from a corpus, so that its words are corpus text, as the tokenizer
    itself says: the mark ``subwords.py`` puts into its tokenizer_config.json (``"vocabulary_from_corpus": true``),
    which travels with every save_pretrained, checkpoint, copy and export. ``tokenizer`` is a tokenizer object (its
    init kwargs), a local folder (a model, one of its ``checkpoint-N`` folders, an export) or a Hub id (its
    tokenizer_config.json). A folder written before the mark existed is read from its run's records (run_info.json,
    the run folder's for a checkpoint; a checkpoint's run_args.json)."""
    return corpus_vocabulary_evidence(tokenizer) is not None


def check_vocabulary_upload(push_to_hub: bool, *, acknowledged: bool, tokenizer: Any = None,
                            learned_here: bool = False) -> bool:
    """Whether the tokenizer a run trains with (and uploads) holds a vocabulary learned from a corpus: learned by this
    run (``learned_here``), or marked in ``tokenizer`` (see :func:`vocabulary_from_corpus`). With ``push_to_hub``
    such a tokenizer is refused unless ``--push_corpus_vocabulary`` (``acknowledged``) says the user knows its words
    are corpus text: a :class:`UsageError` of one line, raised before any work. The one home of that rule: every
    upload path calls it (the scripts before any work, :func:`push_model_to_hub` on the folder it uploads).
    A tokenizer object found to hold such a vocabulary gets the mark if it lacks it (a folder written before the
    mark existed), so that everything the run saves carries it."""
    evidence = "learned from the training text by this run" if learned_here else corpus_vocabulary_evidence(tokenizer)
    init_kwargs = getattr(tokenizer, "init_kwargs", None)
    if evidence and isinstance(init_kwargs, dict) and not _marked(init_kwargs):
        mark_corpus_vocabulary(tokenizer, "learned from a corpus (said by the records of the run that built it)")
    if push_to_hub and evidence and not acknowledged:
        raise UsageError(f"--push_to_hub: the tokenizer's vocabulary is learned from the training notes ({evidence}), "
                         "so its words are corpus text; pass --push_corpus_vocabulary to acknowledge that and upload "
                         "it (check your data's terms first)")
    return evidence is not None


# The help of --allow_test_training (run_ner_crf.py and run_re.py).
ALLOW_TEST_TRAINING_HELP = ("Allow --train_split to name the test split (e.g. 'test', 'train+test'), refused by "
                            "default: a model trained on the test notes makes every test score meaningless. Only for "
                            "a final model that will never be scored on them.")


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


def is_hub_id(name: str | None) -> bool:
    """Whether ``name`` reads as a Hub model id (``org/name`` or ``name``), not a local path."""
    return bool(name) and not Path(name).exists() and re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name) is not None


def card_license(model_license: str | None, dataset_stats: dict[str, Any]) -> tuple[str, str | None]:
    """``(license, license_name)`` of a model card: the user's choice, else apache-2.0 for the synthetic sample,
    else "other": a model trained on notes inherits their terms (n2c2: a data-use agreement)."""
    if model_license:
        return model_license, None
    if dataset_stats.get("synthetic"):
        return "apache-2.0", None
    return "other", "data-use-agreement"
