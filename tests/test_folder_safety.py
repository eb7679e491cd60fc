"""clinical_ner_crf/folder_safety.py: inputs and outputs apart, one writer per folder, the manifest, regular files only, workers
that die with their parent. Locks and deaths are tested with real second processes and real signals."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from clinical_ner_crf.command_line import UsageError
from clinical_ner_crf.folder_safety import (
    MANIFEST_FILE, FolderInUse, FolderLock, Manifest, NotARegularFile, check_output_apart, irregular_reason, lock_path,
    read_regular_file,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def hold_lock_in_another_process(folder: Path, command: str = "holder.py") -> subprocess.Popen:
    """A real second process that takes the folder's lock and keeps it until killed."""
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from clinical_ner_crf.folder_safety import FolderLock
        FolderLock({str(folder)!r}, {command!r}).acquire()
        print("held", flush=True)
        time.sleep(600)
    """)
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


# ---------------------------------------------------------------------------
# Apart
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("output, relation", [("notes", "is"), ("notes/annotated", "is inside"), (".", "holds")])
def test_an_output_folder_is_never_an_input_folder_inside_it_or_around_it(tmp_path, monkeypatch, output, relation):
    (tmp_path / "notes").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=f"--output_dir {output} {relation} --input_dir notes: a command never writes"):
        check_output_apart(output, {"--input_dir": "notes"})
    check_output_apart("annotated", {"--input_dir": "notes"})  # a sibling is fine


def test_links_are_resolved_before_comparing(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "notes")
    with pytest.raises(UsageError, match="is --input_dir"):
        check_output_apart(tmp_path / "link", {"--input_dir": tmp_path / "notes"})
    with pytest.raises(UsageError, match="is inside"):
        check_output_apart(tmp_path / "link" / "out", {"--input_dir": tmp_path / "notes"})


def test_an_input_file_protects_its_folder_but_not_a_new_folder_beside_it(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.json").write_text("{}")
    with pytest.raises(UsageError, match="holds --train_file"):
        check_output_apart(tmp_path / "data", {"--train_file": tmp_path / "data" / "train.json"})
    with pytest.raises(UsageError, match="holds --train_file"):
        check_output_apart(tmp_path, {"--train_file": tmp_path / "data" / "train.json"})
    check_output_apart(tmp_path / "data" / "run", {"--train_file": tmp_path / "data" / "train.json"})
    check_output_apart(tmp_path / "out", {"--train_file": None, "--test_file": [tmp_path / "missing"]})


# ---------------------------------------------------------------------------
# One writer
# ---------------------------------------------------------------------------


def test_a_second_process_is_refused_at_once_with_the_holder_named(tmp_path):
    holder = hold_lock_in_another_process(tmp_path / "out", "annotate_notes.py")
    try:
        started = time.monotonic()
        with pytest.raises(FolderInUse, match=rf"out is in use by annotate_notes.py \(pid {holder.pid} on "):
            FolderLock(tmp_path / "out", "other.py").acquire()
        assert time.monotonic() - started < 1.0  # no waiting
        info = json.loads(lock_path(tmp_path / "out").read_text())
        assert info["pid"] == holder.pid and info["command"] == "annotate_notes.py" and info["started"]
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_process_is_taken_over_with_a_message(tmp_path, caplog):
    holder = hold_lock_in_another_process(tmp_path / "out", "run_ner_crf.py")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert lock_path(tmp_path / "out").exists()  # it could not clean up
    caplog.set_level("WARNING")
    with FolderLock(tmp_path / "out", "second.py"):
        assert f"took over the lock left by run_ner_crf.py (pid {holder.pid}" in caplog.text
        assert json.loads(lock_path(tmp_path / "out").read_text())["pid"] == os.getpid()
    assert not lock_path(tmp_path / "out").exists()  # a clean release leaves nothing behind


def test_a_lock_is_reentrant_in_its_process_and_disabled_for_other_ranks(tmp_path):
    outer = FolderLock(tmp_path / "out").acquire()
    with FolderLock(tmp_path / "out"):  # e.g. a command's main, then the API function it calls
        pass
    assert lock_path(tmp_path / "out").exists()  # still held by the outer one
    outer.release()
    assert not lock_path(tmp_path / "out").exists()
    with FolderLock(tmp_path / "out", enabled=False):
        assert not lock_path(tmp_path / "out").exists()


# ---------------------------------------------------------------------------
# Manifest
# ---------------------------------------------------------------------------


def test_overwrite_removes_only_what_the_toolkit_wrote(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    manifest = Manifest(folder)
    manifest.claim(["entities.jsonl", "checkpoint-*", "a.ann"])
    for name in ("entities.jsonl", "a.ann", "gold.ann", "notes.txt"):
        (folder / name).write_text(name)
    (folder / "checkpoint-5").mkdir()
    (folder / "checkpoint-5" / "model.bin").write_text("w")
    assert Manifest(folder).foreign() == ["gold.ann", "notes.txt"]  # read back from the file
    assert sorted(Manifest(folder).remove_owned()) == ["a.ann", "checkpoint-5", "entities.jsonl"]
    assert sorted(path.name for path in folder.iterdir()) == [MANIFEST_FILE, "gold.ann", "notes.txt"]
    assert (folder / "gold.ann").read_text() == "gold.ann"


def test_a_run_refuses_to_write_over_a_file_it_did_not_write(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "README.md").write_text("the user's own notes about this folder")
    with pytest.raises(UsageError, match="holds README.md, which this run would write over"):
        Manifest(folder).claim_for_writing(["README.md", "config.json"])
    assert not (folder / MANIFEST_FILE).exists()
    Manifest(folder).claim_for_writing(["config.json"])
    assert Manifest(folder).owns("config.json") and not Manifest(folder).owns("README.md")


def test_compact_forgets_names_that_are_gone_but_keeps_patterns(tmp_path):
    manifest = Manifest(tmp_path)
    manifest.claim(["gone.ann", "here.ann", ".x.process-*", "summary.json"])
    (tmp_path / "here.ann").write_text("")
    manifest.compact(keep=["summary.json"])
    assert Manifest(tmp_path).entries == ["here.ann", ".x.process-*", "summary.json"]


# ---------------------------------------------------------------------------
# Regular files only
# ---------------------------------------------------------------------------


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    assert irregular_reason(fifo) == "is a named pipe (FIFO), not a regular file"
    started = time.monotonic()
    with pytest.raises(NotARegularFile, match="pipe.txt: is a named pipe"):
        read_regular_file(fifo)
    assert time.monotonic() - started < 1.0
    (tmp_path / "dir.txt").mkdir()
    (tmp_path / "gone.txt").symlink_to(tmp_path / "nowhere")
    assert irregular_reason(tmp_path / "dir.txt") == "is a folder, not a file"
    assert irregular_reason(tmp_path / "gone.txt") == "is a broken link"
    with pytest.raises(NotARegularFile, match="folder"):
        read_regular_file(tmp_path / "dir.txt")
    assert irregular_reason("/dev/null") == "is a device, not a regular file"
    (tmp_path / "note.txt").write_bytes(b"metoprolol")
    (tmp_path / "link.txt").symlink_to(tmp_path / "note.txt")
    assert read_regular_file(tmp_path / "link.txt") == b"metoprolol" and irregular_reason(tmp_path / "link.txt") is None


# ---------------------------------------------------------------------------
# Workers die with their parent
# ---------------------------------------------------------------------------


def test_a_worker_dies_with_its_parent(tmp_path):
    """Parent starts a worker that calls die_with_parent and then writes a file every 0.1 s; SIGKILL the parent."""
    marker = tmp_path / "ticks"
    code = textwrap.dedent(f"""
        import multiprocessing, os, sys, time
        sys.path.insert(0, {str(REPO_ROOT)!r})

        def work(parent):
            from clinical_ner_crf.folder_safety import die_with_parent
            die_with_parent(parent)
            while True:
                with open({str(marker)!r}, "a") as handle:
                    handle.write("tick\\n")
                time.sleep(0.1)

        if __name__ == "__main__":
            worker = multiprocessing.get_context("spawn").Process(target=work, args=(os.getpid(),))
            worker.start()
            print(worker.pid, flush=True)
            time.sleep(600)
    """)
    script = tmp_path / "parent.py"
    script.write_text(code)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker_pid = int(parent.stdout.readline())
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the worker never started writing"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    time.sleep(0.5)
    ticks = marker.read_text().count("tick")
    time.sleep(5)
    assert marker.read_text().count("tick") == ticks, "the worker kept writing after its parent died"
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pid, 0)
