"""annotate_notes.py interrupted for real (SIGINT, SIGKILL, a kill at chosen points), then run again.

Whatever the interruption, a plain re-run leaves every note with exactly one ``.ann`` and exactly its
records (those of an uninterrupted run into another folder), no temporary files and no duplicates.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clinical_ner_crf import folder_annotation
from clinical_ner_crf.brat import write_brat_ann
from clinical_ner_crf.durable_jsonl import JsonlScan
from clinical_ner_crf.synthetic_n2c2 import generate_notes
from conftest import REPO_ROOT, command
from test_annotate_notes import assert_ann_matches, train_tiny_crf, write_txt

annotate_notes = command("annotate_notes")  # the command, called in-process as from its command line

NUM_NOTES = 8
# One note per group, so an interruption falls between the groups of a run (the default groups are far larger).
SETTINGS = ["--words_per_group", "1", "--word_predictions"]


@pytest.fixture(scope="module")
def crf_dir(tmp_path_factory):
    return train_tiny_crf(tmp_path_factory.mktemp("crf"))


@pytest.fixture(scope="module")
def notes_dir(tmp_path_factory):
    """Eight long notes (about 30,000 characters each: a fraction of a second each for the tiny model)."""
    folder = tmp_path_factory.mktemp("notes")
    parts = generate_notes(NUM_NOTES * 12, seed=21, split="long")
    for i in range(NUM_NOTES):
        write_txt(folder / f"n{i}.txt", "\n\n".join(note.text for note in parts[i * 12:(i + 1) * 12]))
    return folder


@pytest.fixture(scope="module")
def reference(crf_dir, notes_dir, tmp_path_factory):
    """Entities and word predictions of an uninterrupted run, by document."""
    out = tmp_path_factory.mktemp("reference")
    assert annotate_notes.main(arguments(crf_dir, notes_dir, out)) == 0
    return by_document(read_records(out / "entities.jsonl")), by_document(read_records(out / "predictions.jsonl"))


def arguments(crf_dir, notes_dir, out) -> list[str]:
    return ["--model_name_or_path", str(crf_dir), "--input_dir", str(notes_dir), "--output_dir", str(out), *SETTINGS]


def read_records(path: Path) -> list[dict]:
    """JSONL records; only a torn last line (a killed append) may fail to parse, and is left out."""
    lines = path.read_bytes().split(b"\n")
    records = []
    for number, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except ValueError:
            assert number == len(lines) - 1, f"{path.name}: malformed line {number + 1} before the last one"
    return records


def by_document(records: list[dict]) -> dict[str, list[dict]]:
    documents: dict[str, list[dict]] = {}
    for record in records:
        documents.setdefault(record["document_id"], []).append(record)
    return documents


def assert_matches_reference(out: Path, reference, documents) -> None:
    """The records of ``documents`` are exactly the reference's: same entities, sentences, tags, once each."""
    entities, sentences = reference
    found_entities = by_document(read_records(out / "entities.jsonl"))
    found_sentences = by_document(read_records(out / "predictions.jsonl"))
    for document_id in documents:
        found, expected = found_entities.get(document_id, []), entities.get(document_id, [])
        assert [(r["id"], r["type"], r["start"], r["end"], r["text"]) for r in found] == \
               [(r["id"], r["type"], r["start"], r["end"], r["text"]) for r in expected], document_id
        assert [r["confidence"] for r in found] == pytest.approx([r["confidence"] for r in expected], abs=1e-5)
        assert [(r["sentence_index"], r["pred_tags"]) for r in found_sentences.get(document_id, [])] == \
               [(r["sentence_index"], r["pred_tags"]) for r in sentences.get(document_id, [])], document_id


def ann_documents(out: Path) -> set[str]:
    return {path.stem for path in out.glob("*.ann")}


def temporary_files(out: Path) -> list[str]:
    return sorted(path.name for path in out.glob(".*.tmp"))


def start(command: list[str], tmp_path: Path) -> subprocess.Popen:
    """The command in a process of its own, as a terminal starts it: Ctrl-C's SIGINT at its default even when the
    tests run in a background job (whose commands inherit SIGINT ignored: the run would finish every note)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    log = open(tmp_path / "subprocess.log", "wb")
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def log_tail(tmp_path: Path) -> str:
    return (tmp_path / "subprocess.log").read_text(errors="replace")[-3000:]


def rerun_and_check(crf_dir, notes_dir, out, reference, stale: int) -> None:
    """A plain re-run annotates exactly the notes without an .ann, and the folder ends complete and clean."""
    missing = NUM_NOTES - len(ann_documents(out))
    assert annotate_notes.main(arguments(crf_dir, notes_dir, out)) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["notes_annotated"] == missing and summary["notes_already_annotated"] == NUM_NOTES - missing
    assert summary["stale_temporary_files_removed"] == stale
    assert sorted(path.name for path in out.glob("*.ann")) == [f"n{i}.ann" for i in range(NUM_NOTES)]
    assert_matches_reference(out, reference, [f"n{i}" for i in range(NUM_NOTES)])
    for name in ("entities.jsonl", "predictions.jsonl"):
        assert (out / name).read_bytes().endswith(b"\n")
    assert not temporary_files(out)


# ---------------------------------------------------------------------------------------------
# Signals sent when the first .ann appears, as a user (Ctrl-C) or the system (kill -9) would
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_signal_then_plain_rerun_completes_exactly_what_is_missing(crf_dir, notes_dir, reference, tmp_path,
                                                                  signal_number):
    out = tmp_path / "out"
    process = start([sys.executable, "annotate_notes.py", *arguments(crf_dir, notes_dir, out)], tmp_path)
    deadline = time.monotonic() + 120
    while process.poll() is None and not list(out.glob("*.ann")) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert process.poll() is None, f"the run ended before it could be interrupted:\n{log_tail(tmp_path)}"
    process.send_signal(signal_number)
    returncode = process.wait(timeout=120)
    annotated = ann_documents(out)
    assert 0 < len(annotated) < NUM_NOTES, "the signal must land in the middle of the run"
    assert not (out / "summary.json").exists()

    # Right after the interruption: every .ann has exactly its records.
    assert_matches_reference(out, reference, annotated)
    written = set(by_document(read_records(out / "entities.jsonl")))
    if signal_number == signal.SIGINT:
        # Ctrl-C: a clean exit (130) that tidies the JSONL files; nothing but complete notes.
        assert returncode == 130, log_tail(tmp_path)
        assert "run the same command again" in log_tail(tmp_path)
        assert written <= annotated and not temporary_files(out)
    else:
        assert returncode == -signal.SIGKILL
    rerun_and_check(crf_dir, notes_dir, out, reference, stale=len(temporary_files(out)))


# ---------------------------------------------------------------------------------------------
# Kills at the worst moments: inside a JSONL append, and between a note's records and its .ann
# ---------------------------------------------------------------------------------------------

# Runs annotate_notes.main with a SIGKILL at one chosen point: "torn:N" in the middle of the N-th append to
# entities.jsonl (half a group's records written), "ann:NAME" when NAME's atomic write is about to be renamed
# into place (its records are durable, its hidden temporary file holds note text).
KILLER = """
import os, signal, sys
import annotate_notes

where, argv = sys.argv[1], sys.argv[2:]
kind, _, target = where.partition(":")

def kill():
    os.kill(os.getpid(), signal.SIGKILL)

if kind == "torn":
    from clinical_ner_crf import durable_jsonl
    from clinical_ner_crf.prediction_records import jsonl_line

    real_append, calls = durable_jsonl.JsonlAppender.append, []

    def append(self, records):
        if self.path.name == "entities.jsonl":
            calls.append(1)
            if len(calls) == int(target):
                text = "".join(jsonl_line(record) for record in records)
                self.handle.write(text[:len(text) // 2])
                self.handle.flush()
                kill()
        return real_append(self, records)

    durable_jsonl.JsonlAppender.append = append
else:
    real_replace = os.replace

    def replace(source, destination):
        if os.path.basename(destination) == target:
            kill()
        return real_replace(source, destination)

    os.replace = replace
sys.exit(annotate_notes.main(argv))
"""


def kill_at(where: str, crf_dir, notes_dir, out, tmp_path) -> None:
    process = start([sys.executable, "-c", KILLER, where, *arguments(crf_dir, notes_dir, out)], tmp_path)
    assert process.wait(timeout=300) == -signal.SIGKILL, log_tail(tmp_path)


@pytest.mark.slow
def test_kills_inside_an_append_and_before_an_ann_then_plain_rerun(crf_dir, notes_dir, reference, tmp_path):
    out = tmp_path / "out"
    # 1. Killed halfway through the third group's records: a torn last line, two complete notes.
    kill_at("torn:3", crf_dir, notes_dir, out, tmp_path)
    assert ann_documents(out) == {"n0", "n1"}
    assert not (out / "entities.jsonl").read_bytes().endswith(b"\n")
    assert_matches_reference(out, reference, ["n0", "n1"])

    # 2. The next run repairs the torn line before it appends, and is killed between n4's records and its .ann:
    #    n4's records stay without an .ann, and its temporary .ann (note text) stays hidden in the folder.
    kill_at("ann:n4.ann", crf_dir, notes_dir, out, tmp_path)
    assert ann_documents(out) == {"n0", "n1", "n2", "n3"}
    assert "n4" in by_document(read_records(out / "entities.jsonl"))
    assert_matches_reference(out, reference, ["n0", "n1", "n2", "n3"])
    assert [name.startswith(".n4.ann.") for name in temporary_files(out)] == [True]

    # 3. A plain re-run: n4 redone once (its earlier records dropped), the temporary file removed.
    rerun_and_check(crf_dir, notes_dir, out, reference, stale=1)


# ---------------------------------------------------------------------------------------------
# --overwrite interrupted: an old .ann never stands beside new records
# ---------------------------------------------------------------------------------------------


def test_interrupted_overwrite_never_pairs_an_old_ann_with_new_records(crf_dir, tmp_path, monkeypatch):
    """An --overwrite run with other settings stopped after its records but before its .ann, without the tidy-up
    at exit (as a SIGKILL would), leaves no .ann beside records that disagree with it; re-runs finish it."""
    notes, out, expected_out = tmp_path / "notes", tmp_path / "out", tmp_path / "expected"
    for i, note in enumerate(generate_notes(3, seed=12, split="overwrite")):
        write_txt(notes / f"n{i}.txt", note.text)
    plain = arguments(crf_dir, notes, out)
    assert annotate_notes.main(plain) == 0
    before = by_document(read_records(out / "entities.jsonl"))
    stricter = ["--min_confidence", "0.9"]
    assert annotate_notes.main([*arguments(crf_dir, notes, expected_out), *stricter]) == 0
    expected = by_document(read_records(expected_out / "entities.jsonl"))
    assert expected != before, "the second settings must change some entities"

    # Stopped at the second note's .ann; the JSONL files are not compacted on the way out.
    real_write, written = write_brat_ann, []

    def write_then_stop(path, *args, **kwargs):
        if written:
            raise KeyboardInterrupt
        written.append(path)
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(folder_annotation, "write_brat_ann", write_then_stop)
    monkeypatch.setattr(JsonlScan, "compact", lambda self, keep, mode, **kwargs: {})
    assert annotate_notes.main([*plain, "--overwrite", *stricter]) == 130
    monkeypatch.undo()
    # n0 rewritten, n1's old .ann removed before its new records went in, n2 untouched.
    assert ann_documents(out) == {"n0", "n2"}
    records = by_document(read_records(out / "entities.jsonl"))
    assert expected["n1"] and records["n1"][-len(expected["n1"]):] == expected["n1"]  # new records, no .ann yet
    assert len(records["n1"]) > len(expected["n1"])  # the old ones too: not compacted

    # A plain re-run with the new settings annotates n1 alone; every .ann holds exactly its records:
    # n0 and n1 with the new settings, n2 (never reached) with the old ones.
    assert annotate_notes.main([*plain, *stricter]) == 0
    records = by_document(read_records(out / "entities.jsonl"))
    assert records == {"n0": expected["n0"], "n1": expected["n1"], "n2": before["n2"]}
    for document_id, document_records in records.items():
        assert_ann_matches(notes / f"{document_id}.txt", out / f"{document_id}.ann", document_records)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["notes_annotated"] == 1
    dropped = summary["jsonl_records_dropped"]["entities.jsonl"]
    assert dropped["superseded_records"] == len(before["n0"])  # n0's old block
    assert dropped["records_without_ann"] == len(before["n1"]) + len(expected["n1"])  # n1's blocks, redone


# ---------------------------------------------------------------------------------------------
# The compaction rules, on a hand-made file
# ---------------------------------------------------------------------------------------------


