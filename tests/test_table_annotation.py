"""annotate_notes.py --input_table: a table of notes in, the entity and medication tables out, the same entities as
the folder path on the same notes; rows that are not notes reported by id; the output folder written whole (a
re-run refused, a killed run leaving nothing at the target); the input never written."""

import json
import os
import signal
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clinical_ner_crf.synthetic_n2c2 import generate_notes
from conftest import REPO_ROOT, command
from test_annotate_notes import CLI_ENV, SECRET, run_annotate, train_tiny_crf, write_txt

annotate_notes = command("annotate_notes")
WITHIN = 1e-6 + 1e-12  # confidences are written with 6 decimals


@pytest.fixture(scope="module")
def crf_dir(tmp_path_factory):
    return train_tiny_crf(tmp_path_factory.mktemp("crf"))


@pytest.fixture(scope="module")
def notes():
    """Synthetic notes (several drugs each, so the rule links attributes) and one with the secret word."""
    texts = {note.doc_id: note.text for note in generate_notes(8, seed=31, split="tables")}
    texts["secret"] = f"Started {SECRET} 5 mg PO daily for pain; aspirin 81 mg PO daily.\r\nNo allergies."
    return dict(sorted(texts.items()))


def write_table(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture(scope="module")
def folder_run(crf_dir, notes, tmp_path_factory):
    """The folder path on the same notes: the reference."""
    root = tmp_path_factory.mktemp("folder_run")
    for document_id, text in notes.items():
        write_txt(root / "notes" / f"{document_id}.txt", text)
    assert annotate_notes.main(["--model_name_or_path", str(crf_dir), "--input_dir", str(root / "notes"),
                                "--output_dir", str(root / "out"), "--relations", "rule", "--device", "cpu"]) == 0
    return root / "out"


@pytest.fixture(scope="module")
def table_run(crf_dir, notes, tmp_path_factory):
    """The same notes as a table, with rows that are not notes and a kept column."""
    root = tmp_path_factory.mktemp("table_run")
    rows = [{"note_id": document_id, "text": text, "ward": f"ward-{i % 3}"} for i, (document_id, text)
            in enumerate(notes.items())]
    rows += [{"note_id": None, "text": "Aspirin 81 mg", "ward": "x"},
             {"note_id": "twice", "text": "Aspirin 81 mg", "ward": "x"},
             {"note_id": "twice", "text": "Heparin 5000 units", "ward": "y"},
             {"note_id": "no_text", "text": None, "ward": "z"}]
    (root / "input").mkdir()
    table = write_table(root / "input" / "notes.parquet", rows)
    result = subprocess.run([sys.executable, str(REPO_ROOT / "annotate_notes.py"), "--model_name_or_path",
                             str(crf_dir), "--input_table", str(table), "--output_dir", str(root / "out"),
                             "--relations", "rule", "--keep_columns", "ward", "--device", "cpu"],
                            cwd=REPO_ROOT, env=CLI_ENV, capture_output=True, text=True, timeout=600)
    return root, table, result


def test_a_table_gives_the_entities_and_medications_of_the_folder_path(folder_run, table_run, notes):
    root, _, result = table_run
    assert result.returncode == 1, result.stderr  # rows were not annotated: not a clean run
    entities = pq.read_table(root / "out" / "entities.parquet")
    assert entities.schema.names == ["document_id", "id", "type", "start", "end", "confidence", "ward"]
    expected = read_jsonl(folder_run / "entities.jsonl")
    rows = entities.to_pylist()
    assert len(rows) == len(expected) > 20
    key = lambda row: (row["document_id"], int(row["id"][1:]))  # noqa: E731
    for row, record in zip(sorted(rows, key=key), sorted(expected, key=key)):
        assert {k: row[k] for k in ("document_id", "id", "type", "start", "end")} == \
            {k: record[k] for k in ("document_id", "id", "type", "start", "end")}
        assert abs(row["confidence"] - record["confidence"]) <= WITHIN
    wards = {row["document_id"]: row["ward"] for row in rows}
    assert wards["secret"] == f"ward-{list(notes).index('secret') % 3}"
    medications = pq.read_table(root / "out" / "medications.parquet").to_pylist()
    expected = read_jsonl(folder_run / "medications.jsonl")
    assert len(medications) == len(expected) and sum(len(m["attributes"]) for m in medications) > 10

    def shape(record):  # no text in the table (no --with_text)
        return (record["document_id"], record["id"], record["drug"]["start"], record["drug"]["end"],
                [(a["id"], a["type"], a["start"], a["end"], a["relation"]) for a in record["attributes"]])

    assert sorted(map(shape, medications)) == sorted(map(shape, expected))
    assert SECRET not in json.dumps(rows) + json.dumps(medications)


def test_rows_that_are_not_notes_are_reported_by_id_never_with_text(table_run):
    root, _, result = table_run
    failed = pq.read_table(root / "out" / "failed_rows.parquet").to_pylist()
    assert [(row["row"], row["document_id"], row["kind"], row["ward"]) for row in failed] == [
        (10, None, "null_id", "x"), (11, "twice", "duplicate_id", "x"), (12, "twice", "duplicate_id", "y"),
        (13, "no_text", "null_text", "z")]
    summary = json.loads((root / "out" / "summary.json").read_text())
    assert summary["rows"] == 13 and summary["notes_annotated"] == 9 and summary["rows_failed"] == 4
    assert summary["failures_by_kind"] == {"duplicate_id": 2, "null_id": 1, "null_text": 1}
    assert "4 rows were not annotated" in result.stdout and "row 11 (id twice)" in result.stderr
    assert SECRET not in result.stdout + result.stderr + json.dumps(summary)
    assert "Aspirin" not in result.stderr


def test_with_text_adds_each_entity_text_exactly(crf_dir, notes, tmp_path):
    table = write_table(tmp_path / "notes.parquet", [{"note_id": i, "text": text} for i, text in
                                                      enumerate(notes.values())])
    assert annotate_notes.main(["--model_name_or_path", str(crf_dir), "--input_table", str(table), "--output_dir",
                                str(tmp_path / "out"), "--with_text", "--device", "cpu"]) == 0
    texts = list(notes.values())
    rows = pq.read_table(tmp_path / "out" / "entities.parquet").to_pylist()
    assert rows and all(row["text"] == texts[int(row["document_id"])][row["start"]:row["end"]] for row in rows)
    assert not (tmp_path / "out" / "medications.parquet").exists()  # no relations asked: no medication table


def test_a_rerun_is_refused_unless_overwrite_and_the_input_is_never_written(crf_dir, table_run, tmp_path):
    root, table, _ = table_run
    before = {path.name: path.stat().st_mtime_ns for path in (root / "out").iterdir()}
    result = run_annotate("--model_name_or_path", crf_dir, "--input_table", table, "--output_dir", root / "out",
                          "--device", "cpu")
    assert result.returncode != 0 and "exists and is not empty (pass --overwrite" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert {path.name: path.stat().st_mtime_ns for path in (root / "out").iterdir()} == before
    # Into the folder that holds the table: refused (a command never writes where its input is).
    result = run_annotate("--model_name_or_path", crf_dir, "--input_table", table, "--output_dir", table.parent,
                          "--device", "cpu")
    assert result.returncode == 2 and "holds --input_table" in result.stderr
    assert sorted(path.name for path in table.parent.iterdir()) == ["notes.parquet"]
    # --overwrite replaces the folder whole: no old file stays.
    (root / "out" / "summary.json").write_text("{}")
    assert annotate_notes.main(["--model_name_or_path", str(crf_dir), "--input_table", str(table), "--output_dir",
                                str(root / "out"), "--overwrite", "--device", "cpu"]) == 1
    assert json.loads((root / "out" / "summary.json").read_text())["rows"] == 13
    assert not (root / "out" / "medications.parquet").exists()  # this run linked nothing


def test_a_fifo_is_refused_without_blocking_and_bad_flags_are_one_line(crf_dir, tmp_path, capsys):
    fifo = tmp_path / "notes.parquet"
    os.mkfifo(fifo)
    result = run_annotate("--model_name_or_path", crf_dir, "--input_table", fifo, "--output_dir", tmp_path / "out")
    assert result.returncode == 2 and "is a named pipe (FIFO)" in result.stderr and not (tmp_path / "out").exists()
    for flags, message in [(["--input_dir", tmp_path], "one of them"),
                           (["--input_table", fifo, "--num_processes", "2"], "annotate_spark.py"),
                           (["--input_table", fifo, "--word_predictions"],
                            "--word_predictions and --html are for --input_dir"),
                           (["--input_dir", tmp_path, "--keep_columns", "ward"], "--keep_columns: for --input_table")]:
        arguments = ["--model_name_or_path", str(crf_dir), "--output_dir", str(tmp_path / "out"), *map(str, flags)]
        if flags[0] == "--input_dir" and "--keep_columns" not in flags:
            arguments += ["--input_table", str(fifo)]
        assert annotate_notes.main(arguments) == 2
        assert message in capsys.readouterr().err


@pytest.mark.slow
def test_a_killed_run_leaves_nothing_at_the_target_and_the_same_command_then_finishes(crf_dir, notes, tmp_path):
    # Enough notes that the run is still annotating when it is killed.
    texts = [text[:300] for text in notes.values()]
    table = write_table(tmp_path / "notes.parquet",
                        [{"note_id": f"n{i}", "text": texts[i % len(texts)]} for i in range(2000)])
    out = tmp_path / "out"
    arguments = [sys.executable, str(REPO_ROOT / "annotate_notes.py"), "--model_name_or_path", str(crf_dir),
                 "--input_table", str(table), "--output_dir", str(out), "--device", "cpu", "--words_per_group",
                 "500", "--verbose"]
    process = subprocess.Popen(arguments, cwd=REPO_ROOT, env=CLI_ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    # Killed once it has annotated a first group of notes (its log says so).
    for line in process.stderr:
        if "notes annotated" in line:
            break
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not out.exists()  # no partial table at the target
    result = run_annotate("--model_name_or_path", crf_dir, "--input_table", table, "--output_dir", out,
                          "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "summary.json").read_text())["notes_annotated"] == 2000
    assert sorted(os.listdir(tmp_path)) == ["notes.parquet", "out"]  # nothing else was left
