"""annotate_spark.py, run as a user runs it (real Spark, ``--master 'local[2,4]'``): the same entities and medication
records as annotate_notes.py on the same notes as a folder; rows that are not notes reported by id; a Python worker
killed mid-task is retried by Spark without duplicate or lost rows; a killed job leaves no partial table at the
target and the same command then finishes; a re-run is refused unless --overwrite."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from clinical_ner_crf.synthetic_n2c2 import generate_notes
from conftest import REPO_ROOT, command
from test_annotate_notes import CLI_ENV, SECRET, crf_dir, relation_models, train_tiny_crf, write_txt  # noqa: F401

pytest.importorskip("pyspark", reason="pyspark is not installed: `pip install -r requirements-spark.txt` (make test "
                                      "installs it)")
pytestmark = pytest.mark.spark

annotate_notes = command("annotate_notes")
export_onnx = command("export_onnx")
NOTES = 240


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("spark_model")
    crf = train_tiny_crf(root / "crf")
    assert export_onnx.main(["--model_name_or_path", str(crf), "--output_dir", str(root / "onnx")]) == 0
    return root / "onnx"


@pytest.fixture(scope="module")
def notes():
    """Distinct synthetic notes, one with the secret word; enough that annotating them takes a few seconds."""
    texts = {f"n{i:03d}": note.text for i, note in enumerate(generate_notes(NOTES - 1, seed=41, split="spark"))}
    texts["secret"] = f"Started {SECRET} 5 mg PO daily for pain; aspirin 81 mg PO daily.\r\nNo allergies."
    return texts


@pytest.fixture(scope="module")
def table(notes, tmp_path_factory):
    rows = [{"note_id": document_id, "text": text, "ward": f"ward-{i % 3}"}
            for i, (document_id, text) in enumerate(notes.items())]
    rows += [{"note_id": None, "text": "Aspirin 81 mg", "ward": "ward-0"},
             {"note_id": "twice", "text": "Aspirin 81 mg", "ward": "ward-1"},
             {"note_id": "twice", "text": "Heparin", "ward": "ward-2"},
             {"note_id": "no_text", "text": None, "ward": "ward-0"}]
    path = tmp_path_factory.mktemp("table") / "notes.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=64)
    return path


@pytest.fixture(scope="module")
def folder_run(onnx_dir, notes, tmp_path_factory):
    """annotate_notes.py on the same notes as a folder: the reference."""
    root = tmp_path_factory.mktemp("folder_run")
    for document_id, text in notes.items():
        write_txt(root / "notes" / f"{document_id}.txt", text)
    assert annotate_notes.main(["--model_name_or_path", str(onnx_dir), "--backend", "onnx", "--input_dir",
                                str(root / "notes"), "--output_dir", str(root / "out"), "--relations", "rule"]) == 0
    return root / "out"


def spark_command(onnx_dir, table, out, *extra):
    return [sys.executable, str(REPO_ROOT / "annotate_spark.py"), "--model_name_or_path", str(onnx_dir),
            "--input_table", str(table), "--output_dir", str(out), "--master", "local[2,4]", "--relations", "rule",
            "--keep_columns", "ward", "--partition_by", "ward", "--num_partitions", "3", "--notes_per_batch", "8",
            *map(str, extra)]


# A few hundred rows: Spark's 200 shuffle partitions (the duplicate-id check, the summary's counts) would be
# mostly empty tasks; 4 take a third off each job here.
SMALL_SHUFFLES = "spark.sql.shuffle.partitions=4"


def python_workers() -> list[psutil.Process]:
    """The Python processes Spark forked to run tasks (children of the pyspark daemon, not the daemon itself)."""
    workers = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if "pyspark.daemon" in " ".join(process.info["cmdline"] or []) and \
                    "pyspark.daemon" in " ".join(process.parent().cmdline()):
                workers.append(process)
        except (psutil.Error, AttributeError):
            continue
    return workers


def read_table(path: Path) -> list[dict]:
    rows = ds.dataset(path, format="parquet", partitioning="hive").to_table().to_pylist()
    for row in rows:
        if "ward" in row:
            row["ward"] = str(row["ward"])
    return rows


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture(scope="module")
def spark_run(onnx_dir, table, tmp_path_factory):
    """The job killed while it writes (SIGKILL to its process group: the driver and Spark's JVM), then the same
    command run again, one of its Python workers killed mid-task (Spark retries the task)."""
    root = tmp_path_factory.mktemp("spark_run")
    out, events = root / "out", root / "events"
    events.mkdir()
    killed = subprocess.Popen(spark_command(onnx_dir, table, out, "--spark_conf", SMALL_SHUFFLES), cwd=REPO_ROOT,
                              env=CLI_ENV, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and killed.poll() is None and \
            not list(root.glob(".out.partial-*/entities.parquet/_temporary")):
        time.sleep(0.05)
    assert killed.poll() is None, "the job ended before it could be killed"
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    left_after_kill = sorted(path.name for path in root.iterdir())
    # Spark's Python daemon (a process group of its own) and its workers exit once the JVM is gone.
    deadline = time.monotonic() + 30
    while python_workers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not python_workers(), "the killed job's Python workers outlived it"

    rerun = subprocess.Popen(spark_command(onnx_dir, table, out, "--spark_conf", SMALL_SHUFFLES,
                                           "spark.eventLog.enabled=true",
                                           f"spark.eventLog.dir=file://{events}", "spark.eventLog.compress=false",
                                           "spark.eventLog.rolling.enabled=false"),
                             cwd=REPO_ROOT, env=CLI_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed_worker = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and rerun.poll() is None and killed_worker is None:
        workers = [worker for worker in python_workers() if time.time() - worker.create_time() > 0.5]
        if workers:  # a worker is forked for a task: killed half a second into it, the task fails and is retried
            killed_worker = workers[0].pid
            os.kill(killed_worker, signal.SIGKILL)
        time.sleep(0.05)
    stdout, stderr = rerun.communicate(timeout=600)
    return {"out": out, "root": root, "left_after_kill": left_after_kill, "returncode": rerun.returncode,
            "stdout": stdout, "stderr": stderr, "killed_worker": killed_worker, "events": events}


@pytest.mark.slow
def test_a_killed_job_leaves_no_partial_table_at_the_target(spark_run):
    assert "out" not in spark_run["left_after_kill"]
    assert [name for name in spark_run["left_after_kill"] if name.startswith(".out.partial-")]  # its sibling only
    # The same command finished, and removed what the killed one left.
    assert spark_run["returncode"] == 1, spark_run["stderr"][-3000:]  # (rows were not annotated)
    assert sorted(path.name for path in spark_run["root"].iterdir()) == ["events", "out"]


@pytest.mark.slow
def test_a_worker_killed_mid_task_is_retried_without_duplicate_or_lost_rows(spark_run, folder_run):
    assert spark_run["killed_worker"] is not None
    log = [json.loads(line) for path in spark_run["events"].rglob("*") if path.is_file()
           for line in path.read_text(encoding="utf-8").splitlines()]
    ends = [event for event in log if event["Event"] == "SparkListenerTaskEnd"]
    failed = [event for event in ends if event["Task End Reason"]["Reason"] != "Success"]
    assert failed, "no task failed: the kill missed the annotation stage"
    retried = [event for event in ends if event["Task Info"]["Attempt"] > 0
               and event["Task End Reason"]["Reason"] == "Success"]
    assert retried
    entities = read_table(spark_run["out"] / "entities.parquet")
    keys = [(row["document_id"], row["id"]) for row in entities]
    assert len(keys) == len(set(keys)) == len(read_jsonl(folder_run / "entities.jsonl"))


@pytest.mark.slow
def test_spark_gives_the_entities_and_medications_of_annotate_notes(spark_run, folder_run, notes):
    entities = read_table(spark_run["out"] / "entities.parquet")
    assert sorted(entities[0]) == sorted(["document_id", "id", "type", "start", "end", "confidence", "ward"])
    expected = read_jsonl(folder_run / "entities.jsonl")
    fields = ("document_id", "id", "type", "start", "end", "confidence")
    assert sorted(tuple(row[k] for k in fields) for row in entities) == \
        sorted(tuple(record[k] for k in fields) for record in expected)
    ward = {document_id: f"ward-{i % 3}" for i, document_id in enumerate(notes)}
    assert all(row["ward"] == ward[row["document_id"]] for row in entities)
    # Partitioned by ward, as asked.
    assert sorted(path.name for path in (spark_run["out"] / "entities.parquet").glob("ward=*")) == \
        ["ward=ward-0", "ward=ward-1", "ward=ward-2"]
    medications = read_table(spark_run["out"] / "medications.parquet")
    expected = read_jsonl(folder_run / "medications.jsonl")

    def shape(record):
        drug = record["drug"]
        return (record["document_id"], record["id"], drug["type"], drug["start"], drug["end"], drug["confidence"],
                tuple((a["id"], a["type"], a["start"], a["end"], a["confidence"], a["relation"],
                       a["relation_confidence"]) for a in record["attributes"]))

    assert sorted(map(shape, medications)) == sorted(map(shape, expected))
    assert sum(len(record["attributes"]) for record in medications) > 100
    assert SECRET not in json.dumps(entities, default=str) + json.dumps(medications, default=str)


@pytest.mark.slow
def test_rows_that_are_not_notes_are_reported_by_id(spark_run):
    failed = read_table(spark_run["out"] / "failed_rows.parquet")
    assert sorted((row["document_id"] or "", row["kind"], row["ward"]) for row in failed) == [
        ("", "null_id", "ward-0"), ("no_text", "null_text", "ward-0"), ("twice", "duplicate_id", "ward-1"),
        ("twice", "duplicate_id", "ward-2")]
    summary = json.loads((spark_run["out"] / "summary.json").read_text())
    assert summary["rows"] == NOTES + 4 and summary["notes_annotated"] == NOTES and summary["rows_failed"] == 4
    assert summary["failures_by_kind"] == {"duplicate_id": 2, "null_id": 1, "null_text": 1}
    assert summary["settings"]["master"] == "local[2,4]" and summary["settings"]["num_partitions"] == 3
    assert "4 rows were not annotated" in spark_run["stdout"]
    assert SECRET not in spark_run["stdout"] + spark_run["stderr"] + json.dumps(summary)


@pytest.mark.slow
def test_a_rerun_is_refused_unless_overwrite_before_spark_starts(spark_run, onnx_dir, table):
    out = spark_run["out"]
    before = sorted(str(path.relative_to(out)) for path in out.rglob("*"))
    started = time.monotonic()
    result = subprocess.run(spark_command(onnx_dir, table, out), cwd=REPO_ROOT, env=CLI_ENV, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1 and "exists and is not empty (pass --overwrite" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and time.monotonic() - started < 30
    assert sorted(str(path.relative_to(out)) for path in out.rglob("*")) == before


@pytest.mark.slow
def test_the_torch_backend_and_a_relation_model_give_the_folder_paths_records(crf_dir, relation_models, notes,
                                                                              tmp_path):
    """--backend torch and a run_re.py relation model on the executors: the entities and medication records of
    annotate_notes.py with the same model and relation model (PyTorch: confidences within 1e-5, as other batch
    neighbours change the padding at the ulp level)."""
    few = dict(list(notes.items())[:30])
    for document_id, text in few.items():
        write_txt(tmp_path / "notes" / f"{document_id}.txt", text)
    pq.write_table(pa.table({"note_id": list(few), "text": list(few.values())}), tmp_path / "notes.parquet")
    relation = relation_models["model"]
    assert annotate_notes.main(["--model_name_or_path", str(crf_dir), "--input_dir", str(tmp_path / "notes"),
                                "--output_dir", str(tmp_path / "folder_out"), "--relation_model_name_or_path",
                                str(relation), "--relations", "model", "--device", "cpu"]) == 0
    result = subprocess.run([sys.executable, str(REPO_ROOT / "annotate_spark.py"), "--model_name_or_path",
                             str(crf_dir), "--backend", "torch", "--input_table", str(tmp_path / "notes.parquet"),
                             "--output_dir", str(tmp_path / "spark_out"), "--relation_model_name_or_path",
                             str(relation), "--relations", "model", "--master", "local[2]", "--notes_per_batch", "4",
                             "--spark_conf", SMALL_SHUFFLES],
                            cwd=REPO_ROOT, env=CLI_ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "by the relation model" in result.stdout
    by_note = lambda r: (r["document_id"], r["id"])  # noqa: E731
    entities = sorted(read_table(tmp_path / "spark_out" / "entities.parquet"), key=by_note)
    expected = sorted(read_jsonl(tmp_path / "folder_out" / "entities.jsonl"), key=by_note)
    assert [(r["document_id"], r["id"], r["type"], r["start"], r["end"]) for r in entities] == \
        [(r["document_id"], r["id"], r["type"], r["start"], r["end"]) for r in expected]
    assert max(abs(a["confidence"] - b["confidence"]) for a, b in zip(entities, expected)) <= 1e-5
    medications = read_table(tmp_path / "spark_out" / "medications.parquet")
    expected = read_jsonl(tmp_path / "folder_out" / "medications.jsonl")

    def links(records):
        return sorted((r["document_id"], r["id"], a["id"], a["relation"], round(a["relation_confidence"], 4))
                      for r in records for a in r["attributes"])

    assert links(medications) == links(expected) and len(links(expected)) > 50


def test_bad_flags_and_inputs_are_one_line_before_spark_starts(tmp_path, capsys):
    """Checked on the driver before a JVM starts: flags, a missing or unreadable local table, its columns."""
    annotate_spark = command("annotate_spark")
    model = tmp_path / "model"
    model.mkdir()
    pq.write_table(pa.table({"note_id": ["a"], "text": ["Aspirin 81 mg"], "ward": ["x"]}), tmp_path / "notes.parquet")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not a table")
    base = ["--model_name_or_path", str(model), "--output_dir", str(tmp_path / "out")]
    for flags, status, message in [
            (["--input_table", tmp_path / "notes.parquet", "--keep_columns", "ward", "--partition_by", "department"],
             2, "--partition_by department: name one of --keep_columns"),
            (["--input_table", tmp_path / "notes.parquet", "--device", "cuda"], 2,
             "--device cuda is for --backend torch"),
            (["--input_table", tmp_path / "notes.parquet", "--notes_per_batch", "0"], 2, "--notes_per_batch must be"),
            (["--input_table", tmp_path / "missing.parquet"], 2, "missing.parquet: no such file or folder"),
            (["--input_table", tmp_path / "notes.parquet", "--text_column", "body"], 2,
             "has no column --text_column body (its columns: note_id, text, ward)"),
            (["--input_table", tmp_path / "broken.parquet"], 1, "broken.parquet: not a readable parquet table"),
            (["--input_table", tmp_path / "notes.parquet", "--output_dir", tmp_path], 2, "holds --input_table")]:
        with pytest.raises(SystemExit) as raised:
            from clinical_ner_crf.command_line import run_main

            run_main(lambda: annotate_spark.main([*base, *map(str, flags)]), "annotate_spark.py")
        assert raised.value.code == status, (flags, capsys.readouterr().err)
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith("annotate_spark.py: error: ") and message in line, line
    assert sorted(path.name for path in tmp_path.iterdir()) == ["broken.parquet", "model", "notes.parquet"]
