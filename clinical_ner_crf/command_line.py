"""How every script ends: the exit convention for bad arguments and bad data (no torch, no transformers).

- :class:`UsageError`: bad arguments or an input the run cannot start on (a missing path, an output
  folder that holds input, a folder in use). One line on stderr, exit status 2, before any work.
- :class:`DataError`: bad data found while reading or running (a malformed line, a truncated model
  file). One line on stderr naming the file (and line) and what to do, exit status 1.

A traceback is for a bug, never for the user's input. ``CLINICAL_NER_DEBUG=1`` in the environment shows
the traceback of either error as well.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

USAGE_EXIT_STATUS = 2
DATA_EXIT_STATUS = 1


class UsageError(ValueError):
    """Bad arguments, or an input the run cannot start on: one line, exit status 2."""


class DataError(ValueError):
    """Bad data found during a run (file, line, reason, what to do): one line, exit status 1."""


# The kinds of reader errors (corpus_io.BratFormatError.kind) that mean a path given on the command line is not
# there at all: a usage error, whichever reader found it.
MISSING_INPUT_KINDS = frozenset({"not_a_folder", "missing_file"})


def exit_status(error: BaseException) -> int:
    """The exit status of an error a script reports in one line."""
    if isinstance(error, (UsageError, FileNotFoundError)) or getattr(error, "kind", None) in MISSING_INPUT_KINDS:
        return USAGE_EXIT_STATUS
    return DATA_EXIT_STATUS


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
