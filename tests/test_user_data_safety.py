"""Issue 25 as a user meets it: gold annotations beside the notes, a wrong flag, two runs side by side, a killed
parent, a FIFO among the notes, a folder damaged by an earlier run. The user's files stay byte-identical."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clinical_ner_crf.folder_safety import MANIFEST_FILE, lock_path
from clinical_ner_crf.synthetic_n2c2 import generate_notes, write_notes
from conftest import REPO_ROOT, command
from test_annotate_notes import write_txt
from test_folder_annotation import crf_dir  # noqa: F401 (a fixture)

annotate_notes = command("annotate_notes")  # the command, called in-process as from its command line

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file of a folder (recursively) and the hash of its bytes."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture()
def gold_folder(tmp_path):
    """A brat folder as users keep one: notes with their gold .ann beside them."""
    folder = tmp_path / "notes"
    write_notes(generate_notes(6, seed=5, split="gold"), folder)
    assert len(list(folder.glob("*.ann"))) == 6
    return folder


def annotate(crf_dir, input_dir, output_dir, *extra) -> int:
    return annotate_notes.main(["--model_name_or_path", str(crf_dir), "--input_dir", str(input_dir), "--output_dir",
                                str(output_dir), "--device", "cpu", *map(str, extra)])


def test_gold_annotations_are_never_written_over(crf_dir, gold_folder, tmp_path, capsys):
    before = fingerprint(tmp_path)
    # The case: output = input, with and without --overwrite; inside it; around it; through a link.
    (tmp_path / "link").symlink_to(gold_folder)
    for output, extra in ((gold_folder, ["--overwrite"]), (gold_folder, []), (gold_folder / "annotated", []),
                          (tmp_path, ["--overwrite"]), (tmp_path / "link", ["--overwrite"])):
        assert annotate(crf_dir, gold_folder, output, *extra) == 2
        assert "a command never writes where its input is" in capsys.readouterr().err
    (tmp_path / "link").unlink()
    assert fingerprint(tmp_path) == before

    # Gold .ann files copied into the output folder: refused, with or without --overwrite, and kept.
    out = tmp_path / "out"
    out.mkdir()
    for gold in gold_folder.glob("*.ann"):
        (out / gold.name).write_bytes(gold.read_bytes())
    before = fingerprint(tmp_path)
    for extra in ([], ["--overwrite"]):
        assert annotate(crf_dir, gold_folder, out, *extra) == 2
        assert "6 .ann files of these notes that this toolkit did not write" in capsys.readouterr().err
    assert fingerprint(tmp_path) == before

    # Into a folder of its own: the gold stays as it was, and --overwrite replaces only the toolkit's .ann files.
    (out / "my_notes.md").write_text("the user's own file")
    for gold in out.glob("*.ann"):
        gold.unlink()
    assert annotate(crf_dir, gold_folder, out) == 0
    first = fingerprint(out)
    assert annotate(crf_dir, gold_folder, out, "--overwrite") == 0
    assert (out / "my_notes.md").read_text() == "the user's own file"
    assert {name for name in fingerprint(out)} == set(first)
    assert fingerprint(gold_folder) == {name[len("notes/"):]: digest for name, digest in before.items()
                                        if name.startswith("notes/")}


def test_a_fifo_among_the_notes_is_reported_and_never_waited_on(crf_dir, tmp_path):
    notes = tmp_path / "notes"
    write_txt(notes / "a.txt", "Started metoprolol 25 mg PO BID.")
    os.mkfifo(notes / "pipe.txt")
    run = subprocess.run([sys.executable, "annotate_notes.py", "--model_name_or_path", str(crf_dir), "--input_dir",
                          str(notes), "--output_dir", str(tmp_path / "out"), "--device", "cpu"],
                         cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1  # a note failed: the FIFO
    assert "pipe.txt: skipped: is a named pipe (FIFO), not a regular file" in run.stdout + run.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["failures_by_kind"] == {"not_a_regular_file": 1} and summary["notes_annotated"] == 1
    assert summary["files_seen"]["named_like_notes_not_regular_files"] == 1
    assert (tmp_path / "out" / "a.ann").exists() and not (tmp_path / "out" / "pipe.ann").exists()


def test_prepare_skips_a_fifo_with_skip_invalid_and_refuses_it_without(tmp_path):
    from test_prepare_n2c2 import NOTE, write_pair

    folder = tmp_path / "train"
    write_pair(folder, "1", NOTE, "T1\tDrug 0 7\tAspirin\n")
    write_pair(folder, "2", NOTE, "T1\tDrug 0 7\tAspirin\n")
    os.mkfifo(folder / "pipe.txt")
    base = [sys.executable, "prepare_n2c2.py", "--train_dir", str(folder), "--validation_ratio", "0.5"]
    refused = subprocess.run([*base, "--output_dir", str(tmp_path / "a")], cwd=REPO_ROOT, env=ENV,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "pipe.txt: is a named pipe (FIFO)" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "a").exists()
    skipped = subprocess.run([*base, "--output_dir", str(tmp_path / "b"), "--skip_invalid"], cwd=REPO_ROOT, env=ENV,
                             capture_output=True, text=True, timeout=120)
    assert skipped.returncode == 0, skipped.stderr
    stats = json.loads((tmp_path / "b" / "stats.json").read_text())
    assert stats["skipped_invalid"]["documents"] == 1


def test_a_plain_rerun_repairs_a_folder_whose_records_were_lost(crf_dir, gold_folder, tmp_path, capsys):
    """What two unlocked runs did to a folder (reproduced in the issue): .ann files whose records are gone."""
    out = tmp_path / "out"
    assert annotate(crf_dir, gold_folder, out) == 0
    reference = fingerprint(out)
    entities = (out / "entities.jsonl").read_text().splitlines(keepends=True)
    lost = {json.loads(line)["document_id"] for line in entities[: len(entities) // 2]}
    (out / "entities.jsonl").write_text("".join(line for line in entities if json.loads(line)["document_id"] not in lost))
    capsys.readouterr()
    assert annotate(crf_dir, gold_folder, out) == 0
    printed = capsys.readouterr().out
    assert f"{len(lost)} notes annotated again (their .ann had lost its records)" in printed
    assert "each with exactly its records" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["notes_redone_after_repair"] == len(lost) and summary["notes_inconsistent"] == 0
    repaired = fingerprint(out)
    assert {name: repaired[name] for name in reference if name.endswith(".ann")} == \
           {name: digest for name, digest in reference.items() if name.endswith(".ann")}
    def by_entity(lines):  # the redone notes are batched differently: confidences agree to rounding only
        return {(r["document_id"], r["id"]): r for r in map(json.loads, lines)}

    records, original = by_entity((out / "entities.jsonl").read_text().splitlines()), by_entity(entities)
    assert records.keys() == original.keys()
    for key, record in records.items():
        assert {k: v for k, v in record.items() if "confidence" not in k} == \
               {k: v for k, v in original[key].items() if "confidence" not in k}
        assert record["confidence"] == pytest.approx(original[key]["confidence"], abs=1e-5)


@pytest.mark.slow
def test_a_second_run_into_the_same_folder_is_refused_while_the_first_runs(crf_dir, tmp_path):
    notes = tmp_path / "notes"
    for i, note in enumerate(generate_notes(600, seed=9, split="lock")):
        write_txt(notes / f"n{i:03d}.txt", note.text)
    command = [sys.executable, "annotate_notes.py", "--model_name_or_path", str(crf_dir), "--input_dir", str(notes),
               "--output_dir", str(tmp_path / "out"), "--device", "cpu", "--words_per_group", "50"]
    first = subprocess.Popen(command, cwd=REPO_ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not lock_path(tmp_path / "out").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run(command, cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert first.poll() is None, "the first run ended before the second one started: give it more notes"
    out, err = first.communicate(timeout=600)
    assert second.returncode == 2, second.stderr
    assert f"is in use by annotate_notes.py (pid {first.pid} on " in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1 or "Traceback" not in second.stderr
    assert first.returncode == 0, err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["notes_annotated"] == 600 and summary["notes_inconsistent"] == 0
    assert not lock_path(tmp_path / "out").exists()


@pytest.mark.slow
def test_workers_stop_writing_when_the_parent_is_killed(crf_dir, tmp_path):
    notes = tmp_path / "notes"
    for i, note in enumerate(generate_notes(240, seed=11, split="orphans")):
        write_txt(notes / f"n{i:03d}.txt", note.text)
    out = tmp_path / "out"
    parent = subprocess.Popen([sys.executable, "annotate_notes.py", "--model_name_or_path", str(crf_dir),
                               "--input_dir", str(notes), "--output_dir", str(out), "--device", "cpu",
                               "--num_processes", "2", "--words_per_group", "40"],
                              cwd=REPO_ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(out.glob("*.ann"))) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(out.glob("*.ann")), "the workers never wrote"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    time.sleep(0.5)
    snapshot = {path.name: path.stat().st_mtime_ns for path in out.iterdir()}
    time.sleep(5)
    assert {path.name: path.stat().st_mtime_ns for path in out.iterdir()} == snapshot, "an orphaned worker wrote"
    assert len(snapshot) < 240 + 5  # killed mid-way
    # The next plain run takes over the dead parent's lock, merges what the workers wrote and finishes the rest.
    rerun = subprocess.run([sys.executable, "annotate_notes.py", "--model_name_or_path", str(crf_dir), "--input_dir",
                            str(notes), "--output_dir", str(out), "--device", "cpu"],
                           cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "took over the lock left by annotate_notes.py" in rerun.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["notes_with_ann"] == 240 and summary["notes_inconsistent"] == 0
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [MANIFEST_FILE]


SCRIPTS_ON_A_LOCKED_FOLDER = {
    "prepare_n2c2.py": lambda t: ["--train_dir", t / "notes", "--output_dir", t / "out"],
    "run_ner_crf.py": lambda t: ["--dataset_path", t / "data", "--output_dir", t / "out", "--do_train"],
    "run_re.py": lambda t: ["--dataset_path", t / "data", "--output_dir", t / "out", "--do_train"],
    "pretrain_mlm.py": lambda t: ["--notes_dirs", t / "notes", "--output_dir", t / "out", "--do_train"],
    "evaluate_ablations.py": lambda t: ["--gold_brat", t / "notes", "--pred_brat", t / "data", "--output_dir", t / "out"],
    "annotate_notes.py": lambda t: ["--model_name_or_path", t / "data", "--input_dir", t / "notes", "--output_dir",
                                    t / "out"],
    "export_onnx.py": lambda t: ["--model_name_or_path", t / "data", "--output_dir", t / "out"],
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS_ON_A_LOCKED_FOLDER))
def test_every_command_refuses_a_folder_another_command_is_writing(tmp_path, script):
    from test_folder_safety import hold_lock_in_another_process

    write_txt(tmp_path / "notes" / "a.txt", "Aspirin 81 mg daily.")
    write_txt(tmp_path / "notes" / "a.ann", "T1\tDrug 0 7\tAspirin\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset_dict.json").write_text("{}")  # looks like a dataset: the lock is what stops it
    holder = hold_lock_in_another_process(tmp_path / "out", "annotate_notes.py")
    try:
        run = subprocess.run([sys.executable, script, *map(str, SCRIPTS_ON_A_LOCKED_FOLDER[script](tmp_path))],
                             cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert run.returncode == 2, run.stderr[-2000:]
    assert f"{script}: error: " in run.stderr and f"out is in use by annotate_notes.py (pid {holder.pid} on " in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()


def test_overwriting_a_training_run_keeps_the_users_own_files(tmp_path):
    """--overwrite removes what the manifest says earlier runs wrote, and refuses a file of a name the run
    writes that the toolkit did not write (the user's README.md, say)."""
    from transformers import TrainingArguments

    from clinical_ner_crf.run_folders import prepare_output_dir

    out = tmp_path / "run"
    args = TrainingArguments(output_dir=str(out), use_cpu=True, report_to=[])
    prepare_output_dir(out, args, overwrite=False)  # a fresh run claims what it writes
    (out / "config.json").write_text("{}")
    (out / "checkpoint-2").mkdir()
    (out / "checkpoint-2" / "model.safetensors").write_bytes(b"w")
    (out / "my_notes.md").write_text("mine")
    prepare_output_dir(out, args, overwrite=True)
    assert sorted(path.name for path in out.iterdir()) == [MANIFEST_FILE, "my_notes.md"]
    (out / "README.md").write_text("the user's own description")  # not written by the toolkit
    Manifest_lines = (out / MANIFEST_FILE).read_text()
    (out / MANIFEST_FILE).write_text("\n".join(line for line in Manifest_lines.splitlines() if line != "README.md") + "\n")
    with pytest.raises(Exception, match="holds README.md, which this run would write over"):
        prepare_output_dir(out, args, overwrite=True)
    assert (out / "README.md").read_text() == "the user's own description"


def test_training_leaves_the_dataset_folder_as_it_was(synthetic_dataset, tmp_path):
    """datasets caches .map() results beside the data it loaded; a run must not write into the dataset folder."""
    from test_run_ner_crf import COMMON_ARGS, TINY_MODEL_ARGS, run

    before = fingerprint(synthetic_dataset)
    run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir", tmp_path / "run",
         "--max_train_samples", "32", "--max_steps", "2"])
    assert fingerprint(synthetic_dataset) == before
