"""clinical_ner_crf/files.py: atomic writes of files and folders (nothing half-written, no temporary left), file and folder modes, stale temporaries cleared only when ours, process parts in order, line splitting and run paths."""

import json
import os
import stat
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from clinical_ner_crf.command_line import UsageError
from clinical_ner_crf.files import (
    PREDICTIONS_DIRNAME, TEST_PREDICTIONS_FILE, atomic_open, folder_mode, note_file_mode, process_part_name,
    process_parts, remove_stale_partial_folders, remove_stale_temporary_files, run_predictions_path, set_tree_mode,
    split_lines, usual_file_mode, write_folder_atomically, write_json_atomically,
)
from clinical_ner_crf.folder_safety import MANIFEST_FILE
from conftest import REPO_ROOT


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def entries(folder) -> list[str]:
    return sorted(path.name for path in Path(folder).iterdir())


# ---------------------------------------------------------------------------
# atomic_open, write_json_atomically
# ---------------------------------------------------------------------------


def test_atomic_open_replaces_the_file_only_when_the_block_succeeds(tmp_path, umask_022):
    path = tmp_path / "summary.json"
    path.write_text("old content\n")
    os.chmod(path, 0o600)
    with atomic_open(path) as handle:
        handle.write("new ")
        handle.flush()
        # Mid-block: the old file is whole and untouched; the new text is in a hidden sibling.
        assert path.read_text() == "old content\n"
        temporaries = [name for name in entries(tmp_path) if name != "summary.json"]
        assert len(temporaries) == 1
        assert temporaries[0].startswith(".summary.json.") and temporaries[0].endswith(".tmp")
        assert (tmp_path / temporaries[0]).read_text() == "new "
        handle.write("content\n")
    assert path.read_text() == "new content\n"
    assert entries(tmp_path) == ["summary.json"]
    assert mode_of(path) == 0o644  # the usual mode (0666 less the umask), not the temporary's 0600 nor the old one


def test_atomic_open_of_a_new_file_appears_only_at_the_end(tmp_path, umask_022):
    path = tmp_path / "deep" / "er" / "entities.jsonl"  # missing parents are made
    with atomic_open(path, mode=0o600) as handle:
        handle.write('{"id": 1}\n')
        assert not path.exists()
    assert path.read_text() == '{"id": 1}\n'
    assert mode_of(path) == 0o600
    assert entries(path.parent) == ["entities.jsonl"]


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_atomic_open_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path, error):
    path = tmp_path / "predictions.jsonl"
    path.write_text("line 1\nline 2\n")
    with pytest.raises(type(error)):
        with atomic_open(path) as handle:
            handle.write("half a li")
            handle.flush()
            raise error
    assert path.read_text() == "line 1\nline 2\n"
    assert entries(tmp_path) == ["predictions.jsonl"]

    fresh = tmp_path / "fresh.json"
    with pytest.raises(ValueError):
        with atomic_open(fresh) as handle:
            handle.write("{")
            raise ValueError("bad record")
    assert entries(tmp_path) == ["predictions.jsonl"]


def test_atomic_open_newline_and_encoding(tmp_path):
    path = tmp_path / "note.txt"
    with atomic_open(path, newline="\r\n") as handle:
        handle.write("Aspirin 81 mg\nfièvre\n")
    assert path.read_bytes() == "Aspirin 81 mg\r\nfièvre\r\n".encode("utf-8")
    with atomic_open(path, encoding="latin-1") as handle:
        handle.write("fièvre")
    assert path.read_bytes() == b"fi\xe8vre"


def test_write_json_atomically(tmp_path, umask_022):
    path = tmp_path / "out" / "stats.json"
    data = {"f1": Decimal("0.5"), "counts": [1, 2], "name": "run"}
    assert write_json_atomically(path, data) == path
    assert path.read_text() == '{\n  "f1": 0.5,\n  "counts": [\n    1,\n    2\n  ],\n  "name": "run"\n}\n'
    assert json.loads(path.read_text()) == {"f1": 0.5, "counts": [1, 2], "name": "run"}
    assert mode_of(path) == 0o644
    with pytest.raises(TypeError):  # not JSON: the old file stays, no temporary
        write_json_atomically(path, {"bad": object()})
    assert json.loads(path.read_text())["name"] == "run"
    assert entries(path.parent) == ["stats.json"]


# ---------------------------------------------------------------------------
# write_folder_atomically
# ---------------------------------------------------------------------------


def writer(files: dict[str, str], seen: list | None = None):
    def write(tmp_dir):
        tmp_dir = Path(tmp_dir)
        if seen is not None:
            seen.append((tmp_dir, entries(tmp_dir.parent)))
        for name, text in files.items():
            (tmp_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_dir / name).write_text(text)
    return write


def test_write_folder_atomically_writes_through_a_hidden_sibling(tmp_path):
    output = tmp_path / "onnx"
    seen = []
    write_folder_atomically(output, False, writer({"model.onnx": "weights", "sub/crf.json": "{}"}, seen))
    (tmp_dir, siblings), = seen
    assert tmp_dir.parent == tmp_path and tmp_dir.name.startswith(".onnx.partial-")
    assert siblings == [tmp_dir.name]  # while writing, no output folder yet
    assert entries(tmp_path) == ["onnx"]  # the sibling became the folder
    assert entries(output) == [MANIFEST_FILE, "model.onnx", "sub"]
    assert (output / "sub" / "crf.json").read_text() == "{}"
    # Everything written is recorded as the toolkit's.
    assert (output / MANIFEST_FILE).read_text().splitlines() == ["model.onnx", "sub"]


def test_write_folder_atomically_refuses_an_existing_folder_without_overwrite(tmp_path):
    output = tmp_path / "onnx"
    write_folder_atomically(output, False, writer({"model.onnx": "first"}))
    seen = []
    with pytest.raises(FileExistsError, match="exists and is not empty"):
        write_folder_atomically(output, False, writer({"model.onnx": "second"}, seen))
    assert seen == []  # refused before any work
    assert (output / "model.onnx").read_text() == "first"
    assert entries(tmp_path) == ["onnx"]
    # A file in the way is refused whatever overwrite says.
    (tmp_path / "plain").write_text("x")
    with pytest.raises(FileExistsError, match="is not a folder"):
        write_folder_atomically(tmp_path / "plain", True, writer({"a": "b"}))
    assert (tmp_path / "plain").read_text() == "x"


def test_write_folder_atomically_replaces_its_own_folder_with_overwrite(tmp_path):
    output = tmp_path / "onnx"
    write_folder_atomically(output, False, writer({"model.onnx": "first", "old_only.json": "{}"}))
    write_folder_atomically(output, True, writer({"model.onnx": "second"}))
    assert entries(output) == [MANIFEST_FILE, "model.onnx"]  # the old folder went, not merged
    assert (output / "model.onnx").read_text() == "second"
    assert entries(tmp_path) == ["onnx"]  # no .onnx.old-* or .onnx.partial-* left


def test_write_folder_atomically_keeps_a_folder_holding_foreign_files(tmp_path):
    output = tmp_path / "onnx"
    write_folder_atomically(output, False, writer({"model.onnx": "first"}))
    (output / "my_notes.txt").write_text("not the toolkit's")
    with pytest.raises(UsageError, match=r"holds 1 entries this toolkit did not write \(my_notes.txt\)"):
        write_folder_atomically(output, True, writer({"model.onnx": "second"}))
    assert entries(output) == [MANIFEST_FILE, "model.onnx", "my_notes.txt"]
    assert (output / "model.onnx").read_text() == "first"
    assert entries(tmp_path) == ["onnx"]


def test_write_folder_atomically_failure_leaves_nothing(tmp_path):
    def failing(tmp_dir):
        (Path(tmp_dir) / "half.json").write_text("{")
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError, match="export failed"):
        write_folder_atomically(tmp_path / "onnx", False, failing)
    assert entries(tmp_path) == []

    write_folder_atomically(tmp_path / "onnx", False, writer({"model.onnx": "first"}))
    with pytest.raises(RuntimeError, match="export failed"):
        write_folder_atomically(tmp_path / "onnx", True, failing)
    assert entries(tmp_path) == ["onnx"]
    assert (tmp_path / "onnx" / "model.onnx").read_text() == "first"


def test_write_folder_atomically_clears_what_a_killed_run_left(tmp_path):
    # A run killed while writing left its partial sibling: the next one removes it.
    (tmp_path / ".onnx.partial-abc123").mkdir()
    (tmp_path / ".onnx.partial-abc123" / "model.onnx").write_text("half")
    (tmp_path / ".other.partial-xyz").mkdir()  # another folder's: stays
    write_folder_atomically(tmp_path / "onnx", False, writer({"model.onnx": "whole"}))
    assert entries(tmp_path) == [".other.partial-xyz", "onnx"]
    assert (tmp_path / "onnx" / "model.onnx").read_text() == "whole"


def test_remove_stale_partial_folders_puts_back_a_folder_set_aside(tmp_path):
    # Killed between its two renames: the old folder is aside and there is no new one.
    (tmp_path / ".onnx.old-4242").mkdir()
    (tmp_path / ".onnx.old-4242" / "model.onnx").write_text("old")
    (tmp_path / ".onnx.partial-q1").mkdir()
    assert remove_stale_partial_folders(tmp_path / "onnx") == [".onnx.partial-q1"]
    assert entries(tmp_path) == ["onnx"]
    assert (tmp_path / "onnx" / "model.onnx").read_text() == "old"
    # Through write_folder_atomically: the folder put back is then an existing folder like any other.
    os.replace(tmp_path / "onnx", tmp_path / ".onnx.old-4242")
    with pytest.raises(FileExistsError):
        write_folder_atomically(tmp_path / "onnx", False, writer({"model.onnx": "new"}))
    assert (tmp_path / "onnx" / "model.onnx").read_text() == "old"
    assert entries(tmp_path) == ["onnx"]


# ---------------------------------------------------------------------------
# Modes
# ---------------------------------------------------------------------------


def _source(folder: Path, name: str, mode: int) -> Path:
    path = folder / name
    path.write_text("note text")
    os.chmod(path, mode)
    return path


def test_note_file_mode_is_no_more_readable_than_the_notes(tmp_path, umask_022):
    assert usual_file_mode() == 0o644
    open_note, private_note = _source(tmp_path, "a.txt", 0o644), _source(tmp_path, "b.txt", 0o600)
    group_note, others_note = _source(tmp_path, "c.txt", 0o640), _source(tmp_path, "d.txt", 0o604)
    read_only_note = _source(tmp_path, "e.txt", 0o444)
    assert note_file_mode([]) == 0o644
    assert note_file_mode([open_note]) == 0o644
    assert note_file_mode([private_note]) == 0o600
    assert note_file_mode([open_note, private_note]) == 0o600
    assert note_file_mode([private_note, open_note]) == 0o600
    assert note_file_mode([group_note]) == 0o640
    assert note_file_mode([others_note]) == 0o604
    assert note_file_mode([group_note, others_note]) == 0o600
    assert note_file_mode([read_only_note]) == 0o644  # the owner keeps read and write


def test_note_file_mode_follows_the_umask(tmp_path):
    previous = os.umask(0o002)
    try:
        assert usual_file_mode() == 0o664
        assert note_file_mode([_source(tmp_path, "a.txt", 0o666)]) == 0o664
        # The group may read the note: it keeps the usual group read and write; others lose theirs.
        assert note_file_mode([_source(tmp_path, "b.txt", 0o640)]) == 0o660
        assert note_file_mode([_source(tmp_path, "c.txt", 0o604)]) == 0o604
        assert note_file_mode([_source(tmp_path, "d.txt", 0o600)]) == 0o600
    finally:
        os.umask(previous)


def test_folder_mode():
    assert folder_mode(0o644) == 0o755
    assert folder_mode(0o600) == 0o700
    assert folder_mode(0o640) == 0o750
    assert folder_mode(0o604) == 0o705
    assert folder_mode(0o664) == 0o775


def test_set_tree_mode_and_a_note_file_written_with_its_mode(tmp_path, umask_022):
    note = _source(tmp_path, "note.txt", 0o600)
    out = tmp_path / "out"
    (out / "brat" / "deep").mkdir(parents=True)
    for relative in ("entities.jsonl", "brat/note.ann", "brat/deep/x.txt"):
        (out / relative).write_text("x")
        os.chmod(out / relative, 0o644)
    mode = note_file_mode([note])
    set_tree_mode(out, mode)
    assert {path.relative_to(out).as_posix(): mode_of(path) for path in [out, *out.rglob("*")]} == {
        ".": 0o700, "brat": 0o700, "brat/deep": 0o700,
        "entities.jsonl": 0o600, "brat/note.ann": 0o600, "brat/deep/x.txt": 0o600}
    set_tree_mode(out, 0o644)
    assert (mode_of(out), mode_of(out / "brat" / "deep"), mode_of(out / "brat" / "note.ann")) == (0o755, 0o755, 0o644)

    with atomic_open(out / "predictions.jsonl", mode=note_file_mode([note])) as handle:
        handle.write("{}\n")
    assert mode_of(out / "predictions.jsonl") == 0o600


# ---------------------------------------------------------------------------
# Stale temporaries, process parts
# ---------------------------------------------------------------------------


def test_remove_stale_temporary_files_removes_only_ours(tmp_path):
    ours = {"entities.jsonl", "summary.json"}
    asked = []

    def owns(name):
        asked.append(name)
        return name in ours

    for name in (".entities.jsonl.k3j9_x.tmp", ".summary.json.abc.tmp",  # ours, left by a killed atomic_open
                 ".notes.txt.k3j9_x.tmp",  # a temporary-looking file of another name: not ours
                 "entities.jsonl", "summary.json", "entities.jsonl.tmp",  # not temporary files
                 ".entities.jsonl.tmp"):  # reads as ".entities" + ".jsonl.tmp": name "entities", not ours
        (tmp_path / name).write_text("note text")
    (tmp_path / ".summary.json.dir.tmp").mkdir()  # a folder, not a file: stays
    assert remove_stale_temporary_files(tmp_path, owns) == 2
    assert entries(tmp_path) == [".entities.jsonl.tmp", ".notes.txt.k3j9_x.tmp", ".summary.json.dir.tmp",
                                 "entities.jsonl", "entities.jsonl.tmp", "summary.json"]
    assert sorted(asked) == ["entities", "entities.jsonl", "notes.txt", "summary.json"]
    assert remove_stale_temporary_files(tmp_path, owns) == 0


def test_remove_stale_temporary_files_clears_what_a_killed_atomic_open_left(tmp_path):
    code = ("import os, sys\nfrom clinical_ner_crf.files import atomic_open\n"
            "with atomic_open(sys.argv[1]) as handle:\n"
            "    handle.write('note text')\n    handle.flush()\n    os._exit(9)\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "entities.jsonl")], cwd=REPO_ROOT, timeout=60)
    assert done.returncode == 9
    leftover, = entries(tmp_path)
    assert leftover.startswith(".entities.jsonl.") and leftover.endswith(".tmp")
    assert remove_stale_temporary_files(tmp_path, lambda name: name == "summary.json") == 0
    assert remove_stale_temporary_files(tmp_path, lambda name: name == "entities.jsonl") == 1
    assert entries(tmp_path) == []


def test_process_part_name():
    assert process_part_name("entities.jsonl", 0) == ".entities.jsonl.process-00000"
    assert process_part_name("entities.jsonl", 12) == ".entities.jsonl.process-00012"
    assert process_part_name("annotated.jsonl", 123456) == ".annotated.jsonl.process-123456"


def test_process_parts_in_process_order(tmp_path):
    for index in (11, 0, 2, 10, 1):
        (tmp_path / process_part_name("entities.jsonl", index)).write_text(str(index))
    for name in (".entities.jsonl.process-7",  # too few digits: not a part
                 ".entities.jsonl.process-00003.tmp", ".entities.jsonl.process-0000x",
                 process_part_name("summary.json", 4),  # another file's part
                 "entities.jsonl"):
        (tmp_path / name).write_text("x")
    parts = process_parts(tmp_path, "entities.jsonl")
    assert [path.read_text() for path in parts] == ["0", "1", "2", "10", "11"]
    assert all(path.parent == tmp_path for path in parts)
    assert process_parts(tmp_path, "medications.jsonl") == []


# ---------------------------------------------------------------------------
# Lines and paths
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, lines", [
    ("a\r\nb\rc\nd", ["a", "b", "c", "d"]),
    ("T1\tDrug 0 7\taspirin\r\n", ["T1\tDrug 0 7\taspirin", ""]),
    ("a\n\rb", ["a", "", "b"]),  # \n then \r: two line ends
    ("\r\n\r\n", ["", "", ""]),
    ("", [""]),
    ("one line", ["one line"]),
    ("a\u2028b\x0cc\x85d", ["a\u2028b\x0cc\x85d"]),  # other separators stay inside the line
])
def test_split_lines(text, lines):
    assert split_lines(text) == lines


def test_run_predictions_path():
    assert (PREDICTIONS_DIRNAME, TEST_PREDICTIONS_FILE) == ("predictions", "test_predictions.jsonl")
    assert run_predictions_path("runs/bert-seed1") == Path("runs/bert-seed1/predictions/test_predictions.jsonl")
    assert run_predictions_path(Path("/abs/run")) == Path("/abs/run/predictions/test_predictions.jsonl")
