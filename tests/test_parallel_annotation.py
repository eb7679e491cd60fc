"""Data-parallel annotation: several real processes split the notes, the outputs are one run's.

``--num_processes 2`` and ``accelerate launch`` (two CPU processes, gloo) each give exactly the ``.ann`` files and
records of one process, every note once; a process killed mid-way loses nothing that a plain re-run does not
finish, and duplicates nothing.
"""

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from clinical_ner_crf.files import process_part_name
from clinical_ner_crf.folder_annotation import JSONL_FILES, compact_outputs, split_notes
from clinical_ner_crf.folder_safety import MANIFEST_FILE
from clinical_ner_crf.synthetic_n2c2 import generate_notes
from conftest import REPO_ROOT, command
from test_annotate_notes import write_txt
from test_folder_annotation import by_document, crf_dir, read_records  # noqa: F401 (crf_dir: a fixture)

annotate_notes = command("annotate_notes")  # the command, called in-process as from its command line
export_onnx = command("export_onnx")  # the command, called in-process as from its command line

NUM_NOTES = 12
# Small groups, so that each process writes several groups (and a crash falls between them).
SETTINGS = ["--words_per_group", "200", "--word_predictions"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def notes_dir(tmp_path_factory):
    """Twelve notes of unequal length (one to three synthetic notes each)."""
    folder = tmp_path_factory.mktemp("notes")
    parts = iter(generate_notes(NUM_NOTES * 3, seed=31, split="parallel"))
    for i in range(NUM_NOTES):
        write_txt(folder / f"note{i:02d}.txt", "\n\n".join(next(parts).text for _ in range(1 + i % 3)))
    return folder


def arguments(crf_dir, notes_dir, out) -> list[str]:
    return ["--model_name_or_path", str(crf_dir), "--input_dir", str(notes_dir), "--output_dir", str(out),
            "--device", "cpu", *SETTINGS]


@pytest.fixture(scope="module")
def reference(crf_dir, notes_dir, tmp_path_factory):
    """One process, in this process: the outputs to match."""
    out = tmp_path_factory.mktemp("one_process")
    assert annotate_notes.main(arguments(crf_dir, notes_dir, out)) == 0
    return out


def outputs(out: Path) -> dict:
    """What a run leaves, order aside: the .ann files and each document's records in each JSONL file."""
    return {
        "ann": {path.name: path.read_text() for path in sorted(out.glob("*.ann"))},
        "entities": by_document(read_records(out / "entities.jsonl")),
        "predictions": by_document(read_records(out / "predictions.jsonl")),
        # Left-overs of the run (parts, logs, temporary files); the folder's manifest stays by design.
        "hidden": sorted(path.name for path in out.iterdir() if path.name.startswith(".") and path.name != MANIFEST_FILE),
    }


def run_cli(command: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def test_split_notes_gives_every_note_once_balanced_by_size(tmp_path):
    sizes = [900, 100, 500, 500, 300, 300, 200, 0]
    paths = []
    for i, size in enumerate(sizes):
        paths.append(tmp_path / f"n{i}.txt")
        paths[-1].write_text("x" * size)
    shares = split_notes(paths, 3)
    assert sorted(path for share in shares for path in share) == sorted(paths)
    loads = [sum(path.stat().st_size for path in share) for share in shares]
    assert max(loads) - min(loads) <= 100 and sum(loads) == sum(sizes)
    assert shares == split_notes(list(reversed(paths)), 3)  # the same folder, the same split
    assert split_notes(paths[:1], 3) == [[paths[0]], [], []]  # fewer notes than processes


@pytest.mark.slow
def test_num_processes_2_gives_the_outputs_of_one_process(crf_dir, notes_dir, reference, tmp_path):
    out = tmp_path / "two"
    result = run_cli([sys.executable, "annotate_notes.py", *arguments(crf_dir, notes_dir, out), "--num_processes", "2",
                      "--num_threads", "1"])
    assert result.returncode == 0, result.stderr[-3000:]
    # Two processes really ran, each with its share.
    assert "process 0 of 2: cpu, 1 threads" in result.stderr and "process 1 of 2: cpu, 1 threads" in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["num_processes"] == 2
    assert summary["notes_annotated"] == NUM_NOTES and summary["notes_failed"] == 0
    expected = json.loads((reference / "summary.json").read_text())
    for key in ("sentences", "words", "windows", "entities", "entities_by_type", "characters"):
        assert summary[key] == expected[key], key
    assert outputs(out) == outputs(reference)  # every note once, no part left behind
    assert f"Annotated {NUM_NOTES} of {NUM_NOTES} notes" in result.stdout


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(crf_dir, notes_dir, reference, tmp_path):
    out = tmp_path / "accelerate"
    accelerate = Path(sys.executable).with_name("accelerate")
    result = run_cli([str(accelerate), "launch", "--config_file", "configs/accelerate/cpu_2proc.yaml",
                      "annotate_notes.py", *arguments(crf_dir, notes_dir, out), "--verbose"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "process 1 of 2" in result.stderr  # (an INFO line: --verbose)
    assert json.loads((out / "summary.json").read_text())["settings"]["num_processes"] == 2
    assert outputs(out) == outputs(reference)


CRASHING_RUN = """\
import multiprocessing, os, sys
sys.path.insert(0, {repo!r})
import annotate_notes
from clinical_ner_crf import folder_annotation

real_write_ann, written = folder_annotation._write_ann, []


def write_ann_then_die(path, *args, **kwargs):
    # Process 1 dies for good (no clean-up, as a SIGKILL or an out-of-memory kill) at its third note's .ann,
    # after that note's group of records went in.
    if multiprocessing.current_process().name == "annotate-1" and len(written) == 2:
        os._exit(3)
    written.append(path)
    return real_write_ann(path, *args, **kwargs)


folder_annotation._write_ann = write_ann_then_die
if __name__ == "__main__":
    sys.exit(annotate_notes.main())
"""


@pytest.mark.slow
def test_a_process_that_dies_mid_way_loses_and_duplicates_nothing(crf_dir, notes_dir, reference, tmp_path):
    out = tmp_path / "crash"
    script = tmp_path / "crashing_annotate.py"
    script.write_text(CRASHING_RUN.format(repo=str(REPO_ROOT)))
    command = [*arguments(crf_dir, notes_dir, out), "--num_processes", "2", "--num_threads", "1",
               "--words_per_group", "1"]  # one note per group: the dead process had written two
    crashed = run_cli([sys.executable, str(script), *command])
    assert crashed.returncode == 1, crashed.stderr[-3000:]
    assert "process 1 of 2 failed (exit status 3)" in crashed.stderr
    assert "run the same command again" in crashed.stderr
    left = outputs(out)
    assert 2 <= len(left["ann"]) < NUM_NOTES
    # The processes' parts were merged when the run stopped: every .ann has exactly its records, no part is left,
    # and the records of the note that died before its .ann are gone.
    expected = outputs(reference)
    assert left["hidden"] == []
    assert left["ann"] == {name: expected["ann"][name] for name in left["ann"]}
    documents = {name[:-len(".ann")] for name in left["ann"]}
    for kind in ("entities", "predictions"):
        assert left[kind] == {document: records for document, records in expected[kind].items()
                              if document in documents}

    rerun = run_cli([sys.executable, "annotate_notes.py", *command])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["notes_annotated"] == NUM_NOTES - len(left["ann"])
    assert summary["notes_already_annotated"] == len(left["ann"])
    assert outputs(out) == outputs(reference)


def test_merging_parts_keeps_only_the_new_records_of_notes_written_again(tmp_path):
    """A note written again (--overwrite) by a multi-process run keeps only that run's records in every file:
    none at all where the run wrote it none (no entity now), never its old ones."""
    def line(document, number):
        return json.dumps({"document_id": document, "id": f"T{number}"}) + "\n"

    out = tmp_path / "out"
    out.mkdir()
    (out / "entities.jsonl").write_text(line("a", 1) + line("a", 2) + line("b", 1) + line("c", 1))
    (out / process_part_name("entities.jsonl", 0)).write_text(line("b", 1))
    (out / process_part_name("entities.jsonl", 1)).write_text(line("c", 1) + line("c", 2) + '{"document_id": "c", "i')
    (out / process_part_name("annotated.jsonl", 0)).write_text(
        json.dumps({"document_id": "a", "ann": True}) + "\n" + json.dumps({"document_id": "b", "ann": True}) + "\n")
    (out / process_part_name("annotated.jsonl", 1)).write_text(json.dumps({"document_id": "c", "ann": True}) + "\n")
    for document in "abc":
        (out / f"{document}.ann").write_text("")
    repairs = {name: Counter() for name in JSONL_FILES}
    compact_outputs(out, {}, repairs)
    assert [json.loads(text) for text in (out / "entities.jsonl").read_text().splitlines()] == [
        {"document_id": "b", "id": "T1"}, {"document_id": "c", "id": "T1"}, {"document_id": "c", "id": "T2"}]
    assert repairs["entities.jsonl"] == {"superseded_records": 4, "malformed_lines": 1}
    assert sorted(path.name for path in out.iterdir()) == ["a.ann", "b.ann", "c.ann", "entities.jsonl"]


@pytest.mark.slow
def test_a_launched_process_that_fails_at_the_start_does_not_leave_the_others_waiting(crf_dir, notes_dir, tmp_path):
    """Under a launcher, process 0 cannot use the output folder (a file is in the way) while process 1 waits for
    its plan: the run ends with the error, not a hang."""
    blocker = tmp_path / "out"
    blocker.write_text("not a folder")
    accelerate = Path(sys.executable).with_name("accelerate")
    result = run_cli([str(accelerate), "launch", "--config_file", "configs/accelerate/cpu_2proc.yaml",
                      "annotate_notes.py", *arguments(crf_dir, notes_dir, blocker)], timeout=300)
    assert result.returncode != 0
    assert "error: [Errno 17] File exists" in result.stderr, result.stderr[-3000:]
    assert blocker.read_text() == "not a folder"


WITHOUT_TORCH = """\
import sys
sys.modules["torch"] = None  # as if torch were not installed: importing it fails, transformers sees none
sys.path.insert(0, {repo!r})
import annotate_notes

if __name__ == "__main__":
    sys.exit(annotate_notes.main())
"""


@pytest.mark.slow
def test_onnx_backend_in_two_processes_runs_without_torch(crf_dir, notes_dir, reference, tmp_path):

    onnx_dir = tmp_path / "onnx"
    assert export_onnx.main(["--model_name_or_path", str(crf_dir), "--output_dir", str(onnx_dir)]) == 0
    script = tmp_path / "without_torch.py"
    script.write_text(WITHOUT_TORCH.format(repo=str(REPO_ROOT)))
    out = tmp_path / "out"
    result = run_cli([sys.executable, str(script), "--model_name_or_path", str(onnx_dir), "--backend", "onnx",
                      "--input_dir", str(notes_dir), "--output_dir", str(out), *SETTINGS, "--num_processes", "2",
                      "--num_threads", "1"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "PyTorch was not found" in result.stderr  # transformers saw no torch, in the processes too
    assert "process 1 of 2: cpu, 1 threads" in result.stderr
    # fp32 ONNX: the .ann files of PyTorch, the same records with confidences within 1e-4.
    got, expected = outputs(out), outputs(reference)
    assert got["ann"] == expected["ann"] and got["hidden"] == []
    for kind in ("entities", "predictions"):
        assert got[kind].keys() == expected[kind].keys()
        for document, records in got[kind].items():
            assert [without_confidences(r) for r in records] == [without_confidences(r) for r in expected[kind][document]]
            assert all(abs(a - b) <= 1e-4 for r, e in zip(records, expected[kind][document])
                       for a, b in zip(confidences(r), confidences(e)))


def without_confidences(record: dict) -> dict:
    return {key: value for key, value in record.items() if "confidence" not in key}


def confidences(record: dict) -> list[float]:
    return [record.get("confidence", 0.0), *record.get("word_confidences", []), *record.get("confidences", [])]


def test_a_note_written_again_without_entities_keeps_none_of_its_old_records(crf_dir, notes_dir, reference, tmp_path):
    """--overwrite with settings under which the notes have no entity: their old records go (they used to stay,
    as the last block of each note)."""
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    assert annotate_notes.main([*arguments(crf_dir, notes_dir, out), "--overwrite", "--min_confidence", "1.0"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["entities"] == 0 and summary["notes_annotated"] == NUM_NOTES
    assert (out / "entities.jsonl").read_text() == ""
    assert all(path.read_text() == "" for path in out.glob("*.ann"))
    old = sum(len(records) for records in outputs(reference)["entities"].values())
    assert summary["jsonl_records_dropped"]["entities.jsonl"] == {"superseded_records": old}
    assert outputs(out)["predictions"].keys() == outputs(reference)["predictions"].keys()  # written again, kept


def test_processes_that_cannot_load_the_model_say_so_in_one_line(notes_dir, tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    run = subprocess.run([sys.executable, "annotate_notes.py", "--model_name_or_path", str(tmp_path / "broken"),
                          "--input_dir", str(notes_dir), "--output_dir", str(tmp_path / "out"), "--device", "cpu",
                          "--num_processes", "2"], cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("annotate_notes.py: error: process ")
    assert "Traceback" not in run.stderr
