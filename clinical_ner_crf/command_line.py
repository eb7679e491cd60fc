"""One command-line shape for every script: the shared flags, their parsing, and how a script ends (no torch, no
transformers at import: ``--help`` and the usage errors answer at once).

- **One vocabulary.** The flags every script shares have one name and one help text here
  (:data:`SHARED_FLAG_HELP`); the old spellings (:data:`DEPRECATED_FLAGS`) are still taken for one release, with a
  line saying so. ``--verbose`` (INFO logs) and ``--debug`` (tracebacks) are every script's.
- **One exit convention.** :class:`UsageError`: bad arguments or an input the run cannot start on (a missing path,
  an output folder that holds input, a folder in use): one line on stderr, exit status 2, before any work.
  :class:`DataError`: bad data found while reading or running (a malformed line, a truncated model file): one line
  naming the file (and line) and what to do, exit status 1. Anything else is a bug: one line too, and its
  traceback with ``--debug`` (or ``CLINICAL_NER_DEBUG=1`` in the environment).
- **Help at once.** :func:`parse_command` answers ``--help`` before transformers' ``TrainingArguments`` (and so
  torch) is imported: a Trainer script's help lists its own flags and the training flags of :class:`TrainingFlags`.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:  # annotations only: --help and the usage errors need no torch, transformers or datasets
    from transformers import HfArgumentParser


USAGE_EXIT_STATUS = 2
DATA_EXIT_STATUS = 1
INTERRUPTED_EXIT_STATUS = 130


class UsageError(ValueError):
    """Bad arguments, or an input the run cannot start on: one line, exit status 2."""


class DataError(ValueError):
    """Bad data found during a run (file, line, reason, what to do): one line, exit status 1."""


# ---------------------------------------------------------------------------
# The shared flags
# ---------------------------------------------------------------------------

# Old spelling -> the one spelling now. Taken for one release with a line on stderr, then removed.
DEPRECATED_FLAGS = {"overwrite_output_dir": "overwrite", "dataset_paths": "dataset_path"}

# One help text for each flag that means the same in every script that has it.
SHARED_FLAG_HELP = {
    "overwrite": "Replace the earlier outputs in a non-empty --output_dir (only the toolkit's own files: a file it "
                 "did not write stops the run). Without it, a folder that is not empty is refused.",
    "trust_remote_code": "Run Python code shipped with the model (its modeling files; read them first). This "
                         "project's own CRF models load without it.",
    "model_revision": "Model version on the Hub (branch, tag or commit).",
    "token": "Hub token for private or gated models (default: the cached login).",
    "cache_dir": "Where models downloaded from the Hub are stored (default: the Hugging Face cache).",
    "label_map": "Entity type map, a JSON file or the JSON itself: {\"YourType\": \"Drug\", \"Other\": null}; "
                 "unmapped types are counted and ignored.",
    "relation_map": "Relation map, a JSON file or the JSON itself: a relation name to an n2c2 relation type, or "
                    "to a table keyed by 'Arg1Type>Arg2Type' (your own types, before --label_map).",
    "verbose": "Show INFO logs (settings, counts and paths, never note text) and third-party messages.",
    "debug": "Show the traceback of an error (to report a bug) instead of its one line.",
}
ALLOW_TEST_TRAINING_HELP = ("Allow --train_split to name the test split (e.g. 'test', 'train+test'), refused by "
                            "default: a model trained on the test notes makes every test score meaningless. Only for "
                            "a final model that will never be scored on them.")

# The flags every command takes beside its own (not passed to its argument dataclasses).
RUN_FLAGS = ("verbose", "debug")


@dataclass
class RunFlags:
    """``--verbose`` and ``--debug`` of the command being run (the last parse sets them)."""

    verbose: bool = False
    debug: bool = False


run_flags = RunFlags()


@dataclass
class TrainingFlags:
    """The training flags shown by a Trainer script's ``--help`` (a few of transformers' ``TrainingArguments``,
    which takes seconds to import; every one of its flags is taken, tests check these are its own)."""

    output_dir: str | None = field(default=None, metadata={
        "help": "Where the model, checkpoints, predictions, results and model card go."})
    do_train: bool = field(default=False, metadata={"help": "Train."})
    do_eval: bool = field(default=False, metadata={"help": "Evaluate on the validation split."})
    do_predict: bool = field(default=False, metadata={"help": "Predict and score the test split."})
    num_train_epochs: float = field(default=3.0, metadata={"help": "Training epochs."})
    max_steps: int = field(default=-1, metadata={"help": "Training steps (overrides --num_train_epochs when > 0)."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Initial learning rate (AdamW)."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Training batch per device."})
    per_device_eval_batch_size: int = field(default=8, metadata={"help": "Evaluation batch per device."})
    seed: int = field(default=42, metadata={"help": "Random seed, set at the start of training."})
    use_cpu: bool = field(default=False, metadata={"help": "Train on the CPU even where a GPU is available."})
    bf16: bool = field(default=False, metadata={"help": "bfloat16 mixed precision (GPU)."})
    resume_from_checkpoint: str | None = field(default=None, metadata={
        "help": "A checkpoint folder, or true: the newest complete checkpoint in --output_dir."})
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the model and its card to the Hub."})
    hub_model_id: str | None = field(default=None, metadata={"help": "The Hub repository to upload to."})


TRAINING_HELP_EPILOG = ("Every flag of transformers' TrainingArguments is taken too (--eval_strategy, "
                        "--save_strategy, --warmup_steps, --gradient_accumulation_steps, ...): "
                        "https://huggingface.co/docs/transformers/main_classes/trainer#transformers.TrainingArguments")


def _is_training_arguments(dataclass_type: type) -> bool:
    return dataclass_type.__name__ == "TrainingArguments" and dataclass_type.__module__.startswith("transformers")


def build_parser(prog: str, dataclass_types: Sequence[type], description: str | None = None,
                 epilog: str | None = None) -> HfArgumentParser:
    """The parser of a command: its argument dataclasses, ``--verbose`` and ``--debug``, no prefix abbreviations,
    and every argparse error as one :class:`UsageError` line."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(tuple(dataclass_types), prog=prog, description=description, epilog=epilog,
                              allow_abbrev=False)  # a prefix is never another flag
    for name in RUN_FLAGS:  # listed by --help; taken out of the command line before parsing (take_run_flags)
        if f"--{name}" not in parser._option_string_actions:  # TrainingArguments has a --debug MODE of its own
            parser.add_argument(f"--{name}", action="store_true", default=argparse.SUPPRESS,
                                help=SHARED_FLAG_HELP[name])

    def one_line_error(message: str):
        raise UsageError(f"{message} (see {prog} --help)")

    parser.error = one_line_error  # argparse would print the whole usage, then exit
    return parser


def wants_help(argv: Sequence[str]) -> bool:
    return any(arg in ("-h", "--help") for arg in argv)


def answer_help(prog: str, dataclass_types: Sequence[type], description: str | None = None,
                argv: Sequence[str] | None = None, training_flags: bool = False) -> None:
    """Print the command's help and exit when it is asked for; else return. ``training_flags``: show
    :class:`TrainingFlags` in place of transformers' ``TrainingArguments`` (a Trainer script, called before the
    heavy imports)."""
    argv = sys.argv[1:] if argv is None else argv
    if not wants_help(argv):
        return
    types = _light_types(dataclass_types, training_flags)
    epilog = TRAINING_HELP_EPILOG if TrainingFlags in types else None
    build_parser(prog, types, description, epilog).print_help()
    raise SystemExit(0)


def _light_types(dataclass_types: Sequence[type], training_flags: bool) -> list[type]:
    """A command's argument dataclasses with :class:`TrainingFlags` standing for transformers' TrainingArguments."""
    types = [TrainingFlags if _is_training_arguments(kind) else kind for kind in dataclass_types]
    if training_flags and TrainingFlags not in types:
        types.append(TrainingFlags)
    return types


def _expanded_argv(argv: Sequence[str], prog: str, say_deprecated: bool = True) -> list[str]:
    """The command line as the parser reads it: ``--verbose``/``--debug`` taken out (:func:`take_run_flags`), a
    leading JSON config file turned into flags, the old spellings into the new ones."""
    argv = take_run_flags(argv)
    if argv and argv[0].endswith(".json"):
        argv = config_to_argv(read_config(argv[0])) + argv[1:]
    return rewrite_deprecated_flags(argv, prog, say=say_deprecated)


def answer_early(prog: str, dataclass_types: Sequence[type], description: str | None = None,
                 argv: Sequence[str] | None = None, training_flags: bool = False,
                 check: Callable[..., object] | None = None) -> None:
    """Before a command's heavy imports (torch, datasets, the Trainer: seconds): answer ``--help``, and stop on a
    mistake its own arguments show, in one line with exit status 2: a bad value, a missing required flag, or what
    ``check(*arguments)`` raises as a :class:`UsageError` (a path that is not there). Flags these arguments do not
    know (the rest of TrainingArguments) are left for the full parse; anything else is found there as before."""
    argv = list(sys.argv[1:] if argv is None else argv)
    answer_help(prog, dataclass_types, description, argv, training_flags)
    try:
        argv = _expanded_argv(argv, prog, say_deprecated=False)  # (said once, by the full parse)
        *arguments, _ = build_parser(prog, _light_types(dataclass_types, training_flags), description
                                     ).parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
        if check is not None:
            check(*arguments)
    except UsageError as error:
        if run_flags.debug:
            raise
        print(f"{prog}: error: {error}", file=sys.stderr)
        raise SystemExit(USAGE_EXIT_STATUS) from None


def take_run_flags(argv: Sequence[str]) -> list[str]:
    """Set :data:`run_flags` from ``--verbose`` and ``--debug`` and return the command line without them. A
    ``--debug`` followed by a value is TrainingArguments' own (``--debug underflow_overflow``): left in place."""
    run_flags.verbose = run_flags.debug = False
    rest = []
    for index, arg in enumerate(argv):
        following = argv[index + 1] if index + 1 < len(argv) else "--"
        if arg == "--verbose" or (arg == "--debug" and following.startswith("--")):
            setattr(run_flags, arg[2:], True)
        else:
            rest.append(arg)
    if os.environ.get("CLINICAL_NER_DEBUG"):
        run_flags.debug = True
    return rest


def rewrite_deprecated_flags(argv: Sequence[str], prog: str, say: bool = True) -> list[str]:
    """The old spellings (:data:`DEPRECATED_FLAGS`) as the new ones, with one line on stderr for each."""
    rewritten, said = [], set()
    for arg in argv:
        name, equals, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if name in DEPRECATED_FLAGS:
            new = DEPRECATED_FLAGS[name]
            if say and name not in said:
                print(f"{prog}: --{name} is deprecated, use --{new} (the old spelling goes in the next release)",
                      file=sys.stderr)
                said.add(name)
            arg = f"--{new}{equals}{value}"
        rewritten.append(arg)
    return rewritten


def parse_command(prog: str, dataclass_types: Sequence[type], argv: Sequence[str] | None = None,
                  description: str | None = None) -> tuple:
    """``SCRIPT.py [CONFIG.json] [--flag value ...]`` into the script's argument dataclasses: ``--help`` answered
    first; flags given after a JSON config file override it; old spellings taken with a deprecation line;
    ``--verbose``/``--debug`` into :data:`run_flags`; a single-process launch with a GPU count checked
    (:func:`check_launch`); every problem a :class:`UsageError` of one line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    answer_help(prog, dataclass_types, description, argv)
    argv = _expanded_argv(argv, prog)
    if any(_is_training_arguments(kind) or "use_cpu" in getattr(kind, "__dataclass_fields__", {})
           for kind in dataclass_types):  # a training command (annotate_notes.py runs launched processes itself)
        check_launch(argv)
    parser = build_parser(prog, dataclass_types, description)
    try:
        parsed = parser.parse_args_into_dataclasses(args=argv)
    except UsageError:
        raise
    except ValueError as error:  # HfArgumentParser's leftover arguments, a dataclass's own check
        message = first_line(error)
        if message.startswith("Some specified arguments are not used by the HfArgumentParser"):
            leftover = message.split(":", 1)[1].strip()
            try:
                leftover = " ".join(ast.literal_eval(leftover))
            except (ValueError, SyntaxError):
                pass
            message = f"unrecognized arguments: {leftover}"
        raise UsageError(f"{message} (see {prog} --help)") from None
    return tuple(parsed)


def read_config(path: str) -> dict[str, Any]:
    """A JSON config file of flags, or a one-line error naming it."""
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"{path}: not a readable JSON config ({first_line(error)}); fix it or pass the flags "
                         "on the command line") from None
    if not isinstance(config, dict):
        raise UsageError(f"{path}: a config is a JSON object of flag names and values")
    return config


# ---------------------------------------------------------------------------
# How a script ends
# ---------------------------------------------------------------------------

# The kinds of reader errors (documents.BratFormatError.kind) that mean a path given on the command line is not
# there at all: a usage error, whichever reader found it.
MISSING_INPUT_KINDS = frozenset({"not_a_folder", "missing_file"})


def exit_status(error: BaseException) -> int:
    """The exit status of an error a script reports in one line."""
    if isinstance(error, (UsageError, FileNotFoundError)) or getattr(error, "kind", None) in MISSING_INPUT_KINDS:
        return USAGE_EXIT_STATUS
    return DATA_EXIT_STATUS


def error_line(script_name: str, error: BaseException, expected: bool = True) -> str:
    """``SCRIPT: error: what`` on one line; an unexpected error (a bug) also says how to see and report it."""
    if isinstance(error, OSError) and error.filename and error.strerror:  # not "[Errno 2] No such file ..."
        return f"{script_name}: error: {error.filename}: {error.strerror.lower()}"
    if expected:
        return f"{script_name}: error: {first_line(error)}"
    return (f"{script_name}: error: {type(error).__name__}: {first_line(error)} (unexpected: run again with --debug "
            "for the traceback, and report it)")


def run_main(main: Callable[[], object], script_name: str,
             data_errors: tuple[type[BaseException], ...] = ()) -> None:
    """Run ``main()`` and exit with its status (an integer it returns, else 0). A :class:`UsageError` or
    :class:`DataError` (or one of ``data_errors``, the script's own readers' errors: exit status 1), an ``OSError``
    on a path, and any other error are one line on stderr, ``SCRIPT: error: ...``; ``--debug`` shows the
    traceback instead."""
    debug = "--debug" in sys.argv[1:] or bool(os.environ.get("CLINICAL_NER_DEBUG"))
    try:
        result = main()
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{script_name}: interrupted (the same command again continues or starts afresh, as its folder "
              "rules say)", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT_STATUS)
    except (UsageError, DataError, OSError, *data_errors) as error:
        if debug:
            raise
        print(error_line(script_name, error), file=sys.stderr)
        sys.exit(exit_status(error))
    except Exception as error:  # a bug: still one line, the traceback behind --debug
        if debug:
            raise
        print(error_line(script_name, error, expected=False), file=sys.stderr)
        sys.exit(DATA_EXIT_STATUS)
    sys.exit(result if isinstance(result, int) else 0)


def config_to_argv(config: dict[str, Any]) -> list[str]:
    """A JSON config as command-line flags, so that flags given after it override it."""
    argv = []
    for key, value in config.items():
        if isinstance(value, bool):
            argv += [f"--{key}", str(value).lower()]
        elif isinstance(value, list):
            if not value:  # a flag of several values takes at least one: there is no way to say "none" to argparse
                raise UsageError(f"--{key}: an empty list in a config; leave the key out for its default, or give "
                                 "at least one value")
            argv += [f"--{key}", *map(str, value)]
        elif value is not None:
            argv += [f"--{key}", str(value)]
    return argv


def parse_config_overrides(overrides: str | None) -> dict[str, Any]:
    """'n_layers=2,dim=128,activation=gelu' -> {'n_layers': 2, 'dim': 128, 'activation': 'gelu'}. A comma starts a
    new setting only before ``name=``: 'labels=[1,2],dim=8' keeps the list whole."""
    parsed: dict[str, Any] = {}
    for item in filter(None, (part.strip().strip(",") for part in
                              re.split(r",(?=\s*[A-Za-z_][A-Za-z0-9_]*\s*=)", overrides or ""))):
        key, _, value = item.partition("=")
        try:
            parsed[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key.strip()] = value.strip()
    return parsed


def parse_script_args(dataclass_types: Sequence[type], argv: Sequence[str] | None = None,
                      prog: str | None = None) -> tuple:
    """:func:`parse_command` under the script's file name (kept for scripts copied from earlier versions)."""
    return parse_command(prog or Path(sys.argv[0]).name, dataclass_types, argv)


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


def check_launch(argv: Sequence[str]) -> None:
    """Launched as several processes on a machine without GPU, only --use_cpu joins them into one CPU run;
    without it each process trains the same model on its own. Checked before TrainingArguments, which
    already sets up the devices (and would wait for a process group)."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched <= 1:
        return
    import torch

    if not torch.cuda.is_available() and not flag_value(argv, "use_cpu"):
        raise UsageError(f"started as {launched} processes on a machine without GPU: pass --use_cpu so that they "
                         "form one CPU run (torch.distributed over gloo)")


def first_line(error: BaseException) -> str:
    """What an error says, on one line (its type when it says nothing)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
