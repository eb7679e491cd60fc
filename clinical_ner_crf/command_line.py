"""How every script ends: the exit convention for bad arguments and bad data (no torch, no transformers).

- :class:`UsageError`: bad arguments or an input the run cannot start on (a missing path, an output
  folder that holds input, a folder in use). One line on stderr, exit status 2, before any work.
- :class:`DataError`: bad data found while reading or running (a malformed line, a truncated model
  file). One line on stderr naming the file (and line) and what to do, exit status 1.

A traceback is for a bug, never for the user's input. ``CLINICAL_NER_DEBUG=1`` in the environment shows
the traceback of either error as well.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:  # annotations only: --help and the usage errors need no torch, transformers or datasets
    from transformers import TrainingArguments


USAGE_EXIT_STATUS = 2
DATA_EXIT_STATUS = 1


class UsageError(ValueError):
    """Bad arguments, or an input the run cannot start on: one line, exit status 2."""


class DataError(ValueError):
    """Bad data found during a run (file, line, reason, what to do): one line, exit status 1."""


# The kinds of reader errors (documents.BratFormatError.kind) that mean a path given on the command line is not
# there at all: a usage error, whichever reader found it.
MISSING_INPUT_KINDS = frozenset({"not_a_folder", "missing_file"})


def exit_status(error: BaseException) -> int:
    """The exit status of an error a script reports in one line."""
    if isinstance(error, (UsageError, FileNotFoundError)) or getattr(error, "kind", None) in MISSING_INPUT_KINDS:
        return USAGE_EXIT_STATUS
    return DATA_EXIT_STATUS


def show_info_logs(script_logger: logging.Logger) -> None:
    """INFO lines from the command and from the library it calls (counts, paths and settings, never note text),
    whatever the level of the root logger."""
    for log in (script_logger, logging.getLogger(__package__)):
        log.setLevel(logging.INFO)


def run_main(main: Callable[[], object], script_name: str,
             data_errors: tuple[type[BaseException], ...] = ()) -> None:
    """Run ``main()`` and exit: a :class:`UsageError` or :class:`DataError` (or one of ``data_errors``, the
    script's own readers' errors: exit status 1) is one line on stderr, ``SCRIPT: error: ...``. An integer
    that ``main()`` returns is the exit status."""
    try:
        result = main()
    except (UsageError, DataError, *data_errors) as error:
        if os.environ.get("CLINICAL_NER_DEBUG"):
            raise
        print(f"{script_name}: error: {error}", file=sys.stderr)
        sys.exit(exit_status(error))
    sys.exit(result if isinstance(result, int) else 0)


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

    parser = HfArgumentParser(tuple(dataclass_types), allow_abbrev=False)  # a prefix is never another flag
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
    import datasets
    import transformers

    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%m/%d/%Y %H:%M:%S",
                        handlers=[logging.StreamHandler(sys.stdout)])
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_info()
    log_level = training_args.get_process_log_level()
    for log in (script_logger, logging.getLogger(__package__)):  # the script's and the library's
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


def first_line(error: BaseException) -> str:
    """What an error says, on one line (its type when it says nothing)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
