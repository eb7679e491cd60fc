"""Where a model comes from: a local folder, the local Hugging Face cache, or the Hub, checked before any loading.

A command calls :func:`check_model_source` (or :func:`check_model_sources` for several model flags) before any
``from_pretrained``, so that a model it cannot get is one line naming the flag, the value and what to do, never a
traceback from deep inside ``from_pretrained``:

- a value that reads as a local path is checked as a path: an existing folder is used as it is (no network, no
  ``huggingface_hub`` import); a missing one is "no such folder" (with the nearest existing folder's name when one
  is close), never the Hub's "Repo id must be in the form ..."; a file where a folder is needed says so;
- a Hub id already in the local cache is used as it is: ``HF_HUB_OFFLINE=1`` works then (online, a Hub that does not
  answer within the timeout is one line saying to set it: ``from_pretrained`` would wait on that Hub for ever);
- a Hub id that is not cached is refused at once when offline, saying how to download it once;
- online, the Hub is asked once (a HEAD of the model's ``config.json``, no retries) under a hard deadline of
  ``timeout`` seconds, so an unreachable or silent Hub costs seconds, not the minute of retries ``from_pretrained``
  spends; a missing, private or gated repository, or a missing revision, is named as such.

Imports ``huggingface_hub`` only inside the functions that need the cache or the Hub.
"""

from __future__ import annotations

import difflib
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Mapping

from .command_line import UsageError

DEFAULT_TIMEOUT = 10.0
MODEL_FLAG = "--model_name_or_path"
# Flags whose value may also be a single JSON file (AutoConfig.from_pretrained takes one).
FILE_FLAGS = frozenset({"--config_name"})
# Files whose presence in the cache means a Hub id was downloaded before (a model, or a tokenizer-only repository).
CACHE_PROBE_FILES = ("config.json", "tokenizer_config.json")
# The Hub's own rules for a repository id (huggingface_hub.utils.validate_repo_id), kept here so that a path is told
# from a Hub id without importing huggingface_hub.
HUB_ID_PATTERN = re.compile(r"[\w\-.]+(/[\w\-.]+)?")
HUB_ID_MAX_LENGTH = 96
SUGGESTION_CUTOFF = 0.75
MAX_FOLDER_ENTRIES = 2000  # a huge folder is not listed whole just to suggest a name


def valid_hub_id(name: str) -> bool:
    """Whether ``name`` has the form of a Hub repository id (``name`` or ``namespace/name``), whatever is on disk."""
    return (HUB_ID_PATTERN.fullmatch(name) is not None and len(name) <= HUB_ID_MAX_LENGTH
            and "--" not in name and ".." not in name and not name.endswith(".git")
            and not any(part.startswith(("-", ".")) or part.endswith(("-", ".")) for part in name.split("/")))


def looks_like_path(name: str) -> bool:
    """Whether a value that is not on disk was meant as a local path rather than a Hub id."""
    return (name.startswith((".", "/", "~")) or name.count(os.sep) >= 2 or name.endswith((os.sep, ".json"))
            or (os.sep in name and Path(name).parent.is_dir()) or not valid_hub_id(name))


def _subfolders(folder: Path) -> list[str]:
    names = []
    try:
        with os.scandir(folder) as entries:
            for count, entry in enumerate(entries):
                if count >= MAX_FOLDER_ENTRIES:
                    break
                if entry.is_dir() and not entry.name.startswith("."):
                    names.append(entry.name)
    except OSError:
        pass
    return names


def nearest_folder(name: str) -> str | None:
    """The existing folder that a mistyped path most likely meant (each missing part replaced by the closest
    sibling folder name), or None."""
    path = Path(os.path.expanduser(name))
    corrected = Path(path.anchor) if path.is_absolute() else Path()
    for part in path.parts[1:] if path.is_absolute() else path.parts:
        if (corrected / part).is_dir() or part in (".", ".."):
            corrected /= part
            continue
        close = difflib.get_close_matches(part, _subfolders(corrected), n=1, cutoff=SUGGESTION_CUTOFF)
        if not close:
            return None
        corrected /= close[0]
    return str(corrected) if corrected.is_dir() and str(corrected) != str(path) else None


def _check_local(name: str, flag: str, file_ok: bool) -> str | None:
    """The value to pass on if ``name`` is a usable local path; a UsageError if it is a path that cannot be used;
    None if it is to be read as a Hub id."""
    path = Path(name)
    if path.is_dir() or (file_ok and path.is_file()):
        return name
    if path.exists():
        folder = f" ({path.parent})" if path.parent != Path() and path.parent.is_dir() else ""
        raise UsageError(f"{flag} {name}: is a file, not a folder; give the model's folder{folder}, the one "
                         "holding config.json, or a Hub model id")
    expanded = os.path.expanduser(name)
    if expanded != name and (Path(expanded).is_dir() or (file_ok and Path(expanded).is_file())):
        return expanded  # a ~ that no shell expanded (a config file's value): from_pretrained would not either
    if not looks_like_path(name):
        return None
    suggestion = nearest_folder(name)
    hint = f"; did you mean {suggestion}?" if suggestion else ""
    missing = f"no such {'file or ' if file_ok else ''}folder"
    if valid_hub_id(name) and os.sep in name and path.parent.is_dir():  # namespace/name, the namespace a local folder
        raise UsageError(f"{flag} {name}: {missing} (its parent {path.parent} is a local folder, so it is read as a "
                         f"path, not a Hub id){hint}")
    raise UsageError(f"{flag} {name}: {missing}, and it is not a Hub model id either (a Hub id is 'name' or "
                     f"'namespace/name'){hint}")


def hub_offline() -> bool:
    """Whether downloads are off: HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) as huggingface_hub read it at import, or
    as the environment says now."""
    from huggingface_hub import constants

    def true(variable: str) -> bool:
        return os.environ.get(variable, "").upper() in constants.ENV_VARS_TRUE_VALUES

    return constants.HF_HUB_OFFLINE or true("HF_HUB_OFFLINE") or true("TRANSFORMERS_OFFLINE")


def cache_folder(cache_dir: str | os.PathLike | None = None) -> str:
    """The Hub cache a download goes to (``--cache_dir``, else HF_HUB_CACHE / HF_HOME's)."""
    from huggingface_hub import constants

    return str(cache_dir) if cache_dir else constants.HF_HUB_CACHE


def in_hub_cache(repo_id: str, revision: str | None = None, cache_dir: str | os.PathLike | None = None) -> bool:
    """Whether a Hub model (or tokenizer) was downloaded before at ``revision`` into the local cache."""
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision), str)
               for filename in CACHE_PROBE_FILES)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _download_command(repo_id: str, revision: str | None) -> str:
    return f"`hf download {repo_id}{f' --revision {revision}' if revision not in (None, 'main') else ''}`"


def _probe_hub(repo_id: str, revision: str | None, token: str | bool | None, timeout: float,
               endpoint: str) -> BaseException | None:
    """Ask the Hub once for the model's config.json; the error it ended with (None: the repository is there). A
    request still going after ``timeout`` seconds is left to itself (a daemon thread) and reported as a
    TimeoutError: DNS and a server that accepts but never answers are bounded too, not only the socket reads."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo_id, "config.json", revision=revision, endpoint=endpoint)
    outcome: list[BaseException | None] = []

    def probe() -> None:
        try:
            get_hf_file_metadata(url, token=token, timeout=timeout, endpoint=endpoint, retry_on_errors=False)
            outcome.append(None)
        except Exception as error:  # noqa: BLE001 - reported by the caller in one line
            outcome.append(error)

    worker = threading.Thread(target=probe, name=f"hub-probe {repo_id}", daemon=True)
    worker.start()
    worker.join(timeout)
    return outcome[0] if outcome else TimeoutError(f"no answer within {timeout:g} s")


def _check_hub(repo_id: str, flag: str, revision: str | None, token: str | bool | None, timeout: float,
               cache_dir: str | os.PathLike | None, endpoint: str | None) -> str:
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        EntryNotFoundError, GatedRepoError, HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    cached = in_hub_cache(repo_id, revision, cache_dir)
    at_revision = f" at revision {revision}" if revision not in (None, "main") else ""
    where = f"{flag} {repo_id}{at_revision}"
    cache = cache_folder(cache_dir)
    offline_fix = (f"download it once with network: {_download_command(repo_id, revision)} (or run once without "
                   "HF_HUB_OFFLINE=1), or pass a local folder")
    if hub_offline():
        if cached:
            return repo_id
        raise UsageError(f"{where}: a Hub model that is not in the local cache ({cache}) and HF_HUB_OFFLINE=1 forbids "
                         f"downloading it; {offline_fix}")
    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    error = _probe_hub(repo_id, revision, token, timeout, endpoint)
    timed_out = isinstance(error, TimeoutError) or "Timeout" in type(error).__name__  # ours, or httpx's
    if cached:
        # Online, from_pretrained asks the Hub for the revision with no timeout: a refused connection falls back to
        # the cache at once, a Hub that never answers is waited on for ever.
        if timed_out:
            raise UsageError(f"{where}: the Hugging Face Hub at {endpoint} did not answer within {timeout:g} s; the "
                             f"model is in the local cache ({cache}), so run with HF_HUB_OFFLINE=1 to use it without "
                             "the Hub")
        return repo_id
    if error is None or isinstance(error, EntryNotFoundError):  # there (a repository without config.json too)
        return repo_id
    if isinstance(error, GatedRepoError):
        raise UsageError(f"{where}: a gated model on the Hub; accept its conditions at {endpoint}/{repo_id} and pass "
                         "--token (or log in once with `hf auth login`)")
    if isinstance(error, RepositoryNotFoundError):
        raise UsageError(f"{where}: no such local folder, and no such model on the Hub ({endpoint}), or it is "
                         "private; check the name, or pass --token (or log in once with `hf auth login`)")
    if isinstance(error, RevisionNotFoundError):
        raise UsageError(f"{where}: the Hub model {repo_id} has no revision {revision!r}; give a branch, tag or "
                         "commit it has (--model_revision)")
    if isinstance(error, OfflineModeIsEnabled):
        raise UsageError(f"{where}: a Hub model that is not in the local cache ({cache}) and offline mode forbids "
                         f"downloading it; {offline_fix}")
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        if status in (401, 403):
            fix = "check --token (or `hf auth login`)"
        elif status == 404:  # not the Hub's "no such repository": something else answers at that address
            fix = "check the name, and that HF_ENDPOINT is a Hugging Face Hub"
        else:
            fix = (f"try again later, or download it once ({_download_command(repo_id, revision)}) and run with "
                   "HF_HUB_OFFLINE=1")
        raise UsageError(f"{where}: the Hub ({endpoint}) answered HTTP {status}; {fix}")
    waited = f"did not answer within {timeout:g} s" if timed_out else f"could not be reached ({_one_line(error)})"
    raise UsageError(f"{where}: the Hugging Face Hub at {endpoint} {waited}, and the model is not in the local "
                     f"cache ({cache}); check the network or HF_ENDPOINT, or download it once where there is network "
                     f"({_download_command(repo_id, revision)}) and run with HF_HUB_OFFLINE=1")


def check_model_source(name_or_path: str, flag: str = MODEL_FLAG, *, revision: str | None = None,
                       token: str | bool | None = None, timeout: float = DEFAULT_TIMEOUT,
                       cache_dir: str | os.PathLike | None = None, endpoint: str | None = None,
                       file_ok: bool | None = None) -> str:
    """The value to pass to ``from_pretrained`` for ``flag``'s ``name_or_path``, once it is known to be gettable:
    an existing local folder (at once, no network), a Hub id in the local cache (``cache_dir`` or the default one;
    online, unless the Hub does not answer), or, online, a Hub id the Hub says exists (one request, at most
    ``timeout`` seconds, no retries). Returned unchanged, except that a leading ``~`` no shell expanded is
    expanded. Otherwise a one-line :class:`UsageError` naming the flag, the value and the fix. ``file_ok``
    (default: for ``--config_name``) accepts a single file, as AutoConfig does; ``endpoint`` overrides HF_ENDPOINT."""
    if not name_or_path:
        raise UsageError(f"{flag} is empty: give a local model folder or a Hub model id ('name' or 'namespace/name')")
    name_or_path = str(name_or_path)
    local = _check_local(name_or_path, flag, flag in FILE_FLAGS if file_ok is None else file_ok)
    if local is not None:
        return local
    return _check_hub(name_or_path, flag, revision, token, timeout, cache_dir, endpoint)


def check_model_sources(sources: Mapping[str, Any], *, revision: str | None = None, token: str | bool | None = None,
                        timeout: float = DEFAULT_TIMEOUT, cache_dir: str | os.PathLike | None = None,
                        endpoint: str | None = None) -> dict[str, Any]:
    """:func:`check_model_source` for each ``flag -> value`` of a command with several model flags
    (``--model_name_or_path``, ``--tokenizer_name``, ``--config_name``, ``--relation_model_name_or_path``): empty
    values are skipped, a value given under two flags is checked once, and all Hub requests together take at most
    ``timeout`` seconds. Returns ``flag -> value to pass on`` (the skipped ones as they were)."""
    deadline = time.monotonic() + timeout
    checked: dict[tuple[str, bool], str] = {}
    passed_on = dict(sources)
    for flag, value in sources.items():
        if not value:
            continue
        key = (str(value), flag in FILE_FLAGS)  # a file that --config_name accepts is no tokenizer
        if key not in checked:
            remaining = max(deadline - time.monotonic(), 0.1)
            checked[key] = check_model_source(str(value), flag, revision=revision, token=token, timeout=remaining,
                                              cache_dir=cache_dir, endpoint=endpoint)
        passed_on[flag] = checked[key]
    return passed_on


def check_local_model_sources(sources: Mapping[str, Any]) -> None:
    """The local half of :func:`check_model_sources`, with no network and no ``huggingface_hub`` import: a value
    that reads as a path must be a usable one (a command checks this before its heavy imports; the Hub ids are
    checked with the rest)."""
    for flag, value in sources.items():
        if value:
            _check_local(str(value), flag, flag in FILE_FLAGS)


# A training command's model flags (run_ner_crf.py, run_re.py, pretrain_mlm.py: the names of run_ner.py).
MODEL_ARGUMENTS = ("model_name_or_path", "config_name", "tokenizer_name")


def check_model_arguments(model_args: Any, *_, local_only: bool = False, **hub: Any) -> None:
    """:func:`check_model_sources` on a training command's model arguments (:data:`MODEL_ARGUMENTS`), the values to
    pass on written back; ``local_only``: :func:`check_local_model_sources`, before the command's heavy imports.
    ``hub``: ``revision``, ``token``, ``cache_dir``."""
    sources = {f"--{name}": getattr(model_args, name, None) for name in MODEL_ARGUMENTS}
    if local_only:
        check_local_model_sources(sources)
        return
    for flag, value in check_model_sources(sources, **hub).items():
        setattr(model_args, flag[2:], value)
