"""The promises every command keeps about the user's folders (docs/architecture.md, "Reliability").

- **Apart**: an output folder is never the folder of an input, inside one, or around one
  (:func:`check_output_apart`, after resolving links): the user's notes and gold ``.ann`` files are
  never written over.
- **One writer**: a command holds a lock on each folder it writes for the whole run
  (:class:`FolderLock`, a hidden ``.NAME.lock`` sibling with the holder's pid, host, command and start
  time). A second command on the folder stops at once, naming the holder; the lock of a process that
  died is taken over with a message.
- **Own files only**: each folder records the names (and name patterns) the toolkit writes into it
  before it writes them (:class:`Manifest`, ``.clinical-ner-crf-files``); ``--overwrite`` removes only
  those, and a file the toolkit did not write is never replaced or removed.
- **Regular files only**: inputs are opened without blocking and read only if they are regular files
  (:func:`read_regular_file`): a FIFO, socket, device or folder named like a note is reported, never
  waited on.
- **Workers die with their parent** (:func:`die_with_parent`).

The lock uses ``fcntl.flock`` directly rather than ``filelock``: a flock vanishes with its holder (no
stale-lock guessing on one machine), and the holder's description must stay readable in the lock file
for the second command's message (``filelock`` opens the file with ``O_TRUNC`` before locking it,
erasing the holder's description). Imports nothing from the project but :mod:`command_line`.
"""

from __future__ import annotations

import datetime
import errno
import fnmatch
import json
import logging
import os
import shutil
import signal
import socket
import stat
import sys
from pathlib import Path
from typing import Iterable, Mapping

from .command_line import UsageError

logger = logging.getLogger(__name__)

MANIFEST_FILE = ".clinical-ner-crf-files"
LOCK_SUFFIX = ".lock"


# ---------------------------------------------------------------------------
# Inputs and outputs apart
# ---------------------------------------------------------------------------


def resolved(path) -> Path:
    """``path`` with links, ``..`` and ``~`` resolved (whether or not it exists)."""
    return Path(os.path.realpath(os.path.expanduser(str(path))))


def remove_if_untouched(folder) -> bool:
    """Remove ``folder`` if it holds nothing but the toolkit's manifest (a run that stopped before writing
    anything: it leaves no folder behind). Anything else in it, the folder stays. Returns whether it went."""
    folder = Path(folder)
    try:
        entries = os.listdir(folder)
    except OSError:
        return False
    if set(entries) - {MANIFEST_FILE}:
        return False
    (folder / MANIFEST_FILE).unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:  # something arrived meanwhile: it stays
        return False
    return True


def check_output_apart(output_dir, inputs: Mapping[str, object], output_flag: str = "--output_dir") -> None:
    """Refuse an output folder that is an input folder, lies inside one or holds one (``inputs``: flag -> path,
    a folder or a file; missing and ``None`` paths are skipped: they are reported where they are read). For an
    input file, its own folder and any folder above it are refused; a new folder beside it is fine."""
    output = resolved(output_dir)
    for flag, value in inputs.items():
        for path in (value if isinstance(value, (list, tuple)) else [value]):
            if path is None or str(path) == "" or not os.path.exists(path):
                continue
            source = resolved(path)
            if source.is_dir():
                if output == source:
                    relation = "is"
                elif source in output.parents:
                    relation = "is inside"
                elif output in source.parents:
                    relation = "holds"
                else:
                    continue
            elif output == source.parent or output in source.parents:
                relation = "holds"
            else:
                continue
            raise UsageError(f"{output_flag} {output_dir} {relation} {flag} {path}: a command never writes where its "
                             "input is (your notes and annotations stay as they are); choose an output folder "
                             "outside it")


# ---------------------------------------------------------------------------
# One writer per folder
# ---------------------------------------------------------------------------


class FolderInUse(UsageError):
    """Another command holds the folder's lock."""


def lock_path(folder) -> Path:
    """The lock file of ``folder``: a hidden sibling, so that the folder itself can be replaced while it is held."""
    folder = resolved(folder)
    return folder.parent / f".{folder.name}{LOCK_SUFFIX}"


def _describe_holder(holder: Mapping[str, object] | None) -> str:
    if not holder:
        return "another command"
    return (f"{holder.get('command', 'a command')} (pid {holder.get('pid')} on {holder.get('host')}, "
            f"started {holder.get('started')})")


def _read_holder(descriptor: int) -> dict | None:
    os.lseek(descriptor, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(descriptor, 65536):
        raw += chunk
    try:
        holder = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return holder if isinstance(holder, dict) else None


_HELD_HERE: dict[Path, int] = {}  # lock file -> how many holders in this process


class FolderLock:
    """An exclusive lock on a folder for one run (a context manager). ``enabled=False`` (the other processes of
    a data-parallel run, whose process 0 holds the lock for all) makes it do nothing."""

    def __init__(self, folder, command: str | None = None, enabled: bool = True):
        self.folder = Path(folder)
        self.path = lock_path(folder)
        self.command = command or Path(sys.argv[0]).name
        self.enabled = enabled
        self._descriptor: int | None = None
        self._nested = False

    def acquire(self) -> "FolderLock":
        if not self.enabled or self._descriptor is not None or self._nested:
            return self
        if self.path in _HELD_HERE:  # this process holds it already (a command's main and the API it calls)
            _HELD_HERE[self.path] += 1
            self._nested = True
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                import fcntl

                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    os.close(descriptor)
                    raise
                holder = _read_holder(descriptor)
                os.close(descriptor)
                raise FolderInUse(f"{self.folder} is in use by {_describe_holder(holder)}: wait for it to finish or "
                                  "stop it (two commands writing one folder would mix their outputs)") from None
            # Its last holder removes the file when it lets go: if it did so between our open and our lock, we hold
            # a lock on a file nobody else will see. Start again on the file that is there now.
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                os.close(descriptor)
                continue
            if current.st_ino != os.fstat(descriptor).st_ino:
                os.close(descriptor)
                continue
            break
        previous = _read_holder(descriptor)
        if previous:  # a holder that let go cleanly removes the file: this one died holding it
            logger.warning("%s: took over the lock left by %s, which is no longer running", self.folder,
                           _describe_holder(previous))
        holder = {"command": self.command, "pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, (json.dumps(holder) + "\n").encode("utf-8"), 0)
        os.fsync(descriptor)
        self._descriptor = descriptor
        _HELD_HERE[self.path] = 1
        return self

    def release(self) -> None:
        if self._nested:
            _HELD_HERE[self.path] -= 1
            self._nested = False
            return
        if self._descriptor is None:
            return
        _HELD_HERE.pop(self.path, None)
        import fcntl

        try:
            self.path.unlink(missing_ok=True)  # while still held, so nobody takes a lock on a file about to go
        finally:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
            os.close(self._descriptor)
            self._descriptor = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# ---------------------------------------------------------------------------
# What the toolkit wrote into a folder
# ---------------------------------------------------------------------------


def _is_pattern(entry: str) -> bool:
    return any(char in entry for char in "*?[")


class Manifest:
    """The top-level names (files or folders, with everything in them) and name patterns (``fnmatch``) that the
    toolkit writes into a folder, one per line in ``.clinical-ner-crf-files``. Claimed (appended and synced)
    before the files are written, so that a run killed at any moment has claimed all it wrote."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / MANIFEST_FILE
        self.entries: list[str] = []
        if self.path.is_file():
            self.entries = list(dict.fromkeys(line for line in self.path.read_text(encoding="utf-8").splitlines()
                                              if line))
        # Plain names in a set, patterns apart: a folder of 100,000 notes is checked in linear time.
        self._names = {entry for entry in self.entries if not _is_pattern(entry)}
        self._patterns = [entry for entry in self.entries if _is_pattern(entry)]

    def owns(self, name: str) -> bool:
        """Whether the toolkit wrote the top-level entry ``name`` (the manifest included)."""
        return (name == MANIFEST_FILE or name in self._names
                or any(fnmatch.fnmatchcase(name, pattern) for pattern in self._patterns))

    def claim(self, names: Iterable[str]) -> None:
        """Record ``names`` (or patterns) before writing them."""
        new = [name for name in dict.fromkeys(names) if name not in self._names and name not in self._patterns]
        if not new:
            return
        if any("/" in name or "\n" in name or not name for name in new):
            raise ValueError(f"manifest entries are top-level names: {new[:3]}")
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():  # names only, but no more readable than the folder that holds them
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, self.folder.stat().st_mode & 0o666))
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write("".join(f"{name}\n" for name in new))
            handle.flush()
            os.fsync(handle.fileno())
        self.entries += new
        self._names.update(name for name in new if not _is_pattern(name))
        self._patterns += [name for name in new if _is_pattern(name)]

    def claim_for_writing(self, patterns: Iterable[str], flag: str = "--output_dir") -> None:
        """Claim the names (patterns) a run is about to write, refusing if the folder already holds an entry of
        those names that the toolkit did not write (the run would write over the user's file)."""
        patterns = list(patterns)
        clashes = [name for name in self.foreign()
                   if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)]
        if clashes:
            raise UsageError(f"{flag} {self.folder} holds {', '.join(clashes[:5])}, which this run would write over, "
                             "and this toolkit did not write it: move it out or choose another output folder")
        self.claim(patterns)

    def foreign(self) -> list[str]:
        """The folder's top-level entries that the toolkit did not write (sorted). Everything in a folder that its
        parent's manifest names was written by the toolkit (``RUN/predictions/``, say)."""
        if not self.folder.is_dir() or Manifest(self.folder.parent).owns(self.folder.name):
            return []
        return sorted(path.name for path in self.folder.iterdir() if not self.owns(path.name))

    def remove_owned(self, keep: Iterable[str] = ()) -> list[str]:
        """Remove every top-level entry the toolkit wrote (but the manifest and ``keep``); returns their names."""
        keep = set(keep) | {MANIFEST_FILE}
        removed = []
        for path in sorted(self.folder.iterdir()) if self.folder.is_dir() else []:
            if path.name not in keep and self.owns(path.name):
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
                removed.append(path.name)
        return removed

    def compact(self, keep: Iterable[str] = ()) -> None:
        """Rewrite the manifest without the plain names that no longer exist (patterns and ``keep`` stay)."""
        keep = set(keep)
        present = {path.name for path in self.folder.iterdir()} if self.folder.is_dir() else set()
        kept = [entry for entry in self.entries if entry in keep or _is_pattern(entry) or entry in present]
        if kept == self.entries:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text("".join(f"{entry}\n" for entry in kept), encoding="utf-8")
        os.chmod(tmp, self.path.stat().st_mode & 0o777)
        os.replace(tmp, self.path)
        self.entries = kept
        self._names = {entry for entry in kept if not _is_pattern(entry)}


def claim_whole_folder(folder) -> None:
    """Record every top-level entry of a folder the toolkit has just written in full (before it is moved into place)."""
    folder = Path(folder)
    Manifest(folder).claim(sorted(path.name for path in folder.iterdir() if path.name != MANIFEST_FILE))


def refuse_foreign_files(folder, what: str = "--overwrite") -> None:
    """Refuse to replace a folder holding files the toolkit did not write (they would be lost with it)."""
    foreign = Manifest(folder).foreign()
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise UsageError(f"{folder} holds {len(foreign)} entries this toolkit did not write ({shown}): {what} removes "
                         "only its own files, so it will not replace this folder; move them out or choose another "
                         "output folder")


# ---------------------------------------------------------------------------
# Reading inputs: regular files only
# ---------------------------------------------------------------------------


class NotARegularFile(OSError):
    """An input path that is a FIFO, socket, device, folder or broken link: reported, never waited on."""

    def __init__(self, path, reason: str):
        super().__init__(errno.EINVAL, reason, str(path))
        self.path, self.reason = Path(path), reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    return "is not a regular file"


def irregular_reason(path) -> str | None:
    """Why ``path`` is not a regular file (following links), or None if it is one."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "is a broken link" if os.path.islink(path) else "does not exist"
    except OSError as error:
        return f"cannot be read ({error.strerror or type(error).__name__})"
    return None if stat.S_ISREG(mode) else _kind(mode)


def open_regular_file(path):
    """A regular file opened for reading bytes (a binary file object, to read in pieces and close), opened without
    blocking: a FIFO or device is refused (:class:`NotARegularFile`) instead of waited on, even if it replaced a
    regular file after a check."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except IsADirectoryError:
        raise NotARegularFile(path, "is a folder, not a file") from None
    except FileNotFoundError:
        raise NotARegularFile(path, irregular_reason(path) or "does not exist") from None
    try:
        mode = os.fstat(descriptor).st_mode
    except BaseException:
        os.close(descriptor)
        raise
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        raise NotARegularFile(path, _kind(mode))
    # The file object owns the descriptor from here on, and nothing else closes it: closing it here as well (when a
    # Ctrl-C landed just after the object was built, and it was collected) failed with EBADF, which turned the
    # interruption into "cannot be read".
    return os.fdopen(descriptor, "rb")


def read_regular_file(path, limit: int | None = None) -> bytes:
    """The bytes of a regular file (at most ``limit``), opened without blocking (:func:`open_regular_file`)."""
    with open_regular_file(path) as handle:
        return handle.read() if limit is None else handle.read(limit)


# ---------------------------------------------------------------------------
# Worker processes
# ---------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Make this (worker) process receive SIGTERM when the process that started it dies (Linux), and exit now if
    it already has: a worker never writes into a folder its parent no longer owns."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the pid checks below remain
            pass
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)
