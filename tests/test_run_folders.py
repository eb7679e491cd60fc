"""clinical_ner_crf/run_folders.py: the output folder of a training run, function by function, on small hand-made
folders (no training). Checked: which checkpoints are complete (``run_args.json`` written last) and their order
(newest step first, compared as numbers); ``prepare_output_dir``'s rules (an empty or missing folder is taken, a
non-empty one needs ``--overwrite`` or ``--resume_from_checkpoint``, overwrite removes only what the
manifest names and refuses to write over a user's file, resume ``true``/``last`` takes the newest complete
checkpoint); that every name a run writes is claimed by ``RUN_OUTPUT_PATTERNS`` and a user's names are not;
``clear_run_outputs``; ``output_folder_lock`` (inputs apart, one writer); the barrier of ``wait_for_every_process``;
``check_resume_matches``; ``RecordRunArguments``; ``save_final_model`` (moved into place from a hidden folder, the
usual file permissions, an earlier final model untouched when saving fails); ``trainer_state_epoch``;
``check_train_split`` and ``ALLOW_TEST_TRAINING_HELP``."""

import argparse
import fcntl
import json
import logging
import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from transformers import (
    BertForTokenClassification, Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments,
)

from clinical_ner_crf.files import RUN_ARGS_FILE, usual_file_mode
from clinical_ner_crf.folder_safety import MANIFEST_FILE, FolderInUse, Manifest, lock_path
from clinical_ner_crf.command_line import ALLOW_TEST_TRAINING_HELP
from clinical_ner_crf.run_folders import (
    RUN_OUTPUT_PATTERNS, RecordRunArguments, UsageError, check_resume_matches,
    check_train_split, clear_run_outputs, complete_checkpoints, output_folder_lock, prepare_output_dir,
    save_final_model, trainer_state_epoch, wait_for_every_process,
)
from conftest import build_wordpiece_tokenizer, tiny_encoder_config

LOGGER = "clinical_ner_crf.run_folders"


def training_args(output_dir: Path, **overrides) -> TrainingArguments:
    """Single-process CPU arguments, as the commands build them (nothing is written by building them)."""
    return TrainingArguments(output_dir=str(output_dir), use_cpu=True, report_to="none", **overrides)


def entries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def make_checkpoint(run: Path, step: int, complete: bool = True, run_args: dict | None = None) -> Path:
    """A checkpoint folder as a run leaves it: weights, trainer state, and run_args.json last (if it got that far)."""
    checkpoint = run / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    (checkpoint / "model.safetensors").write_bytes(b"weights")
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step, "epoch": step / 10}))
    if complete:
        (checkpoint / RUN_ARGS_FILE).write_text(json.dumps(run_args or {"seed": 42}))
    return checkpoint


def manifest_lines(folder: Path) -> list[str]:
    return (folder / MANIFEST_FILE).read_text(encoding="utf-8").splitlines()


# ---------------------------------------------------------------------------
# complete_checkpoints
# ---------------------------------------------------------------------------


def test_complete_checkpoints_skip_one_cut_short_and_come_newest_step_first(tmp_path, caplog):
    for step in (9, 10, 100, 2):
        make_checkpoint(tmp_path, step)
    make_checkpoint(tmp_path, 50, complete=False)  # the run was killed while saving it: newest, but not complete
    (tmp_path / "checkpoint-7").write_text("a file, not a folder")
    make_checkpoint(tmp_path, 11, complete=False).joinpath(RUN_ARGS_FILE).mkdir()  # a folder named run_args.json
    (tmp_path / "checkpoint-abc").mkdir()
    (tmp_path / "checkpoint-abc" / RUN_ARGS_FILE).write_text("{}")
    (tmp_path / "checkpoint-3.partial").mkdir()
    (tmp_path / "checkpoint-3.partial" / RUN_ARGS_FILE).write_text("{}")
    (tmp_path / "tmp-checkpoint-200").mkdir()
    (tmp_path / "tmp-checkpoint-200" / RUN_ARGS_FILE).write_text("{}")

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        found = complete_checkpoints(tmp_path)

    assert found == [tmp_path / "checkpoint-100", tmp_path / "checkpoint-10", tmp_path / "checkpoint-9",
                     tmp_path / "checkpoint-2"]
    skipped = [record.getMessage() for record in caplog.records if record.name == LOGGER]
    assert skipped == [f"{tmp_path / 'checkpoint-50'}: incomplete (no {RUN_ARGS_FILE}: the run stopped while saving "
                       "it); skipped",
                       f"{tmp_path / 'checkpoint-11'}: incomplete (no {RUN_ARGS_FILE}: the run stopped while saving "
                       "it); skipped"]


def test_complete_checkpoints_of_a_folder_without_any(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert complete_checkpoints(tmp_path) == []
    make_checkpoint(tmp_path, 4, complete=False)
    assert complete_checkpoints(tmp_path) == []


# ---------------------------------------------------------------------------
# RUN_OUTPUT_PATTERNS and clear_run_outputs
# ---------------------------------------------------------------------------


def test_run_output_patterns_claim_what_a_run_writes_and_not_the_users_names(tmp_path):
    assert len(set(RUN_OUTPUT_PATTERNS)) == len(RUN_OUTPUT_PATTERNS)
    assert all(pattern and "/" not in pattern for pattern in RUN_OUTPUT_PATTERNS)  # top-level names, as Manifest wants
    Manifest(tmp_path).claim(RUN_OUTPUT_PATTERNS)
    manifest = Manifest(tmp_path)
    written = ["checkpoint-500", ".final-model.partial", "predictions", "runs", "config.json", "generation_config.json",
               "model.safetensors", "model-00001-of-00002.safetensors", "model.safetensors.index.json",
               "pytorch_model.bin", "training_args.bin", "modeling_crf.py", "windows.py", "tagging.py",
               "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
               "merges.txt", "added_tokens.json", "chat_template.jinja", "README.md", "all_results.json",
               "train_results.json", "eval_results.json", "test_results.json", "trainer_state.json", "run_info.json",
               "pretraining_data.json", "calibration.json", MANIFEST_FILE]
    assert [name for name in written if not manifest.owns(name)] == []
    users = ["notes", "train.jsonl", "results.json", "my_model.pt", "checkpoint_notes.txt", "Config.json", "data",
             "model.onnx", ".predictions.partial-x1", "README.txt"]
    assert [name for name in users if manifest.owns(name)] == []


def test_clear_run_outputs_removes_only_what_the_manifest_names(tmp_path, caplog):
    Manifest(tmp_path).claim(["checkpoint-*", "config.json", "predictions"])
    make_checkpoint(tmp_path, 1)
    make_checkpoint(tmp_path, 2, complete=False)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "predictions").mkdir()
    (tmp_path / "predictions" / "test_predictions.jsonl").write_text("{}\n")
    (tmp_path / "model.safetensors").write_bytes(b"not claimed: the user's")
    (tmp_path / "notes.txt").write_text("mine")

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert clear_run_outputs(tmp_path) == 4

    assert entries(tmp_path) == [MANIFEST_FILE, "model.safetensors", "notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert [record.getMessage() for record in caplog.records if record.name == LOGGER] == [
        f"{tmp_path}: kept 2 entries this toolkit did not write: model.safetensors, notes.txt"]


def test_clear_run_outputs_without_a_manifest_removes_nothing(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    make_checkpoint(tmp_path, 3)
    assert clear_run_outputs(tmp_path) == 0
    assert entries(tmp_path) == ["checkpoint-3", "config.json"]
    assert clear_run_outputs(tmp_path / "missing") == 0
    assert not (tmp_path / "missing").exists()


# ---------------------------------------------------------------------------
# prepare_output_dir
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("exists", [False, True], ids=["missing", "empty"])
def test_prepare_output_dir_takes_a_missing_or_empty_folder_and_claims_the_run_outputs(tmp_path, exists):
    out = tmp_path / "run"
    if exists:
        out.mkdir()
    assert prepare_output_dir(out, training_args(out), overwrite=False) is None
    assert entries(out) == [MANIFEST_FILE]
    assert manifest_lines(out) == list(RUN_OUTPUT_PATTERNS)


def test_prepare_output_dir_refuses_a_folder_that_is_not_empty_naming_it_and_the_flags(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("e.txt", "d.txt", "c.txt", "b.txt", "a.txt"):
        (out / name).write_text(name)
    with pytest.raises(UsageError) as refused:
        prepare_output_dir(out, training_args(out), overwrite=False)
    assert str(refused.value) == (
        f"--output_dir {out} is not empty (5 entries, e.g. a.txt, b.txt, c.txt, d.txt): pass --overwrite "
        "to start afresh (the earlier run's model, checkpoints and predictions are removed) or "
        "--resume_from_checkpoint true to continue its last checkpoint")
    assert entries(out) == ["a.txt", "b.txt", "c.txt", "d.txt", "e.txt"]  # nothing claimed, nothing removed


def test_prepare_output_dir_refuses_overwrite_and_resume_together(tmp_path):
    out = tmp_path / "run"
    make_checkpoint(out, 5)
    with pytest.raises(UsageError) as refused:
        prepare_output_dir(out, training_args(out, resume_from_checkpoint="true"), overwrite=True)
    assert str(refused.value) == ("--overwrite starts afresh and --resume_from_checkpoint continues: "
                                  "pass one")
    assert entries(out) == ["checkpoint-5"]


def test_prepare_output_dir_overwrite_removes_the_earlier_run_and_keeps_the_users_files(tmp_path, caplog):
    out = tmp_path / "run"
    args = training_args(out)
    prepare_output_dir(out, args, overwrite=False)
    make_checkpoint(out, 2)
    make_checkpoint(out, 4, complete=False)
    for name in ("config.json", "model.safetensors", "all_results.json", "run_info.json"):
        (out / name).write_text("earlier run")
    (out / "predictions").mkdir()
    (out / "predictions" / "test_predictions.jsonl").write_text("{}\n")
    (out / "my_notes.md").write_text("mine")

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert prepare_output_dir(out, args, overwrite=True) is None

    assert entries(out) == [MANIFEST_FILE, "my_notes.md"]
    assert (out / "my_notes.md").read_text() == "mine"
    assert manifest_lines(out) == list(RUN_OUTPUT_PATTERNS)  # claimed once, not twice
    assert f"--overwrite: removed 7 outputs of an earlier run from {out}" in caplog.messages


def test_prepare_output_dir_overwrite_refuses_to_write_over_a_file_the_toolkit_did_not_write(tmp_path):
    """A folder the toolkit never wrote (no manifest) holding a name a run writes: overwrite removes nothing and
    refuses; a file of another name is no obstacle."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "README.md").write_text("the user's own description")
    (out / "data.jsonl").write_text("{}\n")
    with pytest.raises(UsageError) as refused:
        prepare_output_dir(out, training_args(out), overwrite=True)
    assert str(refused.value) == (f"--output_dir {out} holds README.md, which this run would write over, and this "
                                  "toolkit did not write it: move it out or choose another output folder")
    assert entries(out) == ["README.md", "data.jsonl"]
    assert (out / "README.md").read_text() == "the user's own description"

    (out / "README.md").unlink()
    assert prepare_output_dir(out, training_args(out), overwrite=True) is None
    assert entries(out) == [MANIFEST_FILE, "data.jsonl"]


@pytest.mark.parametrize("resume", ["true", "last", "True", "LAST"])
def test_prepare_output_dir_resume_true_takes_the_newest_complete_checkpoint(tmp_path, resume, caplog):
    out = tmp_path / "run"
    prepare_output_dir(out, training_args(out), overwrite=False)  # the earlier run, which claimed its outputs
    make_checkpoint(out, 9)
    make_checkpoint(out, 10)
    make_checkpoint(out, 12, complete=False)
    (out / "config.json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        chosen = prepare_output_dir(out, training_args(out, resume_from_checkpoint=resume), overwrite=False)
    assert chosen == str(out / "checkpoint-10")
    resuming = f"Resuming from {out / 'checkpoint-10'}: its weights, optimizer and schedule are continued"
    assert resuming in caplog.messages
    # Nothing is removed (the incomplete checkpoint included: the run writes over it), and the outputs are claimed.
    assert entries(out) == [MANIFEST_FILE, "checkpoint-10", "checkpoint-12", "checkpoint-9", "config.json"]
    assert manifest_lines(out) == list(RUN_OUTPUT_PATTERNS)


def test_prepare_output_dir_resume_refuses_checkpoints_the_toolkit_did_not_write(tmp_path):
    """No manifest claims them (copied in by hand, say): resuming would write over them, so it is refused."""
    out = tmp_path / "run"
    make_checkpoint(out, 4)
    with pytest.raises(UsageError) as refused:
        prepare_output_dir(out, training_args(out, resume_from_checkpoint="true"), overwrite=False)
    assert str(refused.value) == (f"--output_dir {out} holds checkpoint-4, which this run would write over, and this "
                                  "toolkit did not write it: move it out or choose another output folder")
    assert entries(out) == ["checkpoint-4"]


def test_prepare_output_dir_resume_of_a_named_checkpoint(tmp_path):
    earlier = tmp_path / "earlier"
    checkpoint = make_checkpoint(earlier, 6)
    out = tmp_path / "run"
    assert prepare_output_dir(out, training_args(out, resume_from_checkpoint=str(checkpoint)),
                              overwrite=False) == str(checkpoint)
    assert entries(out) == [MANIFEST_FILE]
    assert entries(earlier) == ["checkpoint-6"]  # the checkpoint's own folder is left as it was


def test_prepare_output_dir_resume_refuses_what_is_not_a_complete_checkpoint(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(UsageError) as refused:  # no folder at all
        prepare_output_dir(out, training_args(out, resume_from_checkpoint="true"), overwrite=False)
    assert str(refused.value) == f"--resume_from_checkpoint true: {out} has no complete checkpoint"
    assert not out.exists()

    make_checkpoint(out, 3, complete=False)
    with pytest.raises(UsageError) as refused:  # only a checkpoint cut short
        prepare_output_dir(out, training_args(out, resume_from_checkpoint="last"), overwrite=False)
    assert str(refused.value) == f"--resume_from_checkpoint last: {out} has no complete checkpoint"

    named = out / "checkpoint-3"
    with pytest.raises(UsageError) as refused:  # named, but cut short
        prepare_output_dir(out, training_args(out, resume_from_checkpoint=str(named)), overwrite=False)
    assert str(refused.value) == f"--resume_from_checkpoint {named}: not a complete checkpoint (no {RUN_ARGS_FILE})"
    assert entries(out) == ["checkpoint-3"]  # nothing claimed by a refused run


def test_prepare_output_dir_looks_at_the_folder_before_waiting_for_the_other_processes(tmp_path, monkeypatch):
    """A process that waits at the barrier while process 0 claims the folder must still find it empty."""
    import clinical_ner_crf.run_folders as run_folders

    out = tmp_path / "run"
    waited = []

    def process_zero_claims_meanwhile(args):
        waited.append(args)
        Manifest(out).claim_for_writing(RUN_OUTPUT_PATTERNS)

    monkeypatch.setattr(run_folders, "wait_for_every_process", process_zero_claims_meanwhile)
    args = training_args(out)
    assert prepare_output_dir(out, args, overwrite=False) is None
    assert waited == [args]
    assert manifest_lines(out) == list(RUN_OUTPUT_PATTERNS)


# ---------------------------------------------------------------------------
# wait_for_every_process
# ---------------------------------------------------------------------------


def test_wait_for_every_process_is_a_barrier_only_across_several_processes(tmp_path, monkeypatch):
    import torch.distributed

    barriers = []
    monkeypatch.setattr(torch.distributed, "barrier", lambda *a, **k: barriers.append(1))
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    args = training_args(tmp_path / "run")
    assert args.world_size == 1
    wait_for_every_process(args)
    assert barriers == []
    # The fields it reads from the TrainingArguments of a launched run (a stand-in: one process cannot be two).
    wait_for_every_process(SimpleNamespace(world_size=2))
    assert barriers == [1]
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)  # launched, but no process group
    wait_for_every_process(SimpleNamespace(world_size=2))
    assert barriers == [1]


# ---------------------------------------------------------------------------
# output_folder_lock
# ---------------------------------------------------------------------------


def test_output_folder_lock_holds_the_folder_for_the_run_and_lets_go(tmp_path):
    out = tmp_path / "run"
    with output_folder_lock(training_args(out), "run_ner_crf.py", {"--dataset_path": tmp_path / "data", "--x": None}):
        holder = json.loads(lock_path(out).read_text())
        assert (holder["command"], holder["pid"]) == ("run_ner_crf.py", os.getpid())
        assert lock_path(out) == tmp_path / ".run.lock"
    assert not lock_path(out).exists()
    assert not out.exists()  # the lock is a sibling: the folder itself is the run's to create


def test_output_folder_lock_refuses_an_output_folder_that_is_an_input(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(UsageError) as refused:
        with output_folder_lock(training_args(data), "run_re.py", {"--dataset_path": data}):
            pytest.fail("ran in the input folder")
    assert str(refused.value) == (f"--output_dir {data} is --dataset_path {data}: a command never writes where its "
                                  "input is (your notes and annotations stay as they are); choose an output folder "
                                  "outside it")
    inside = data / "run"
    with pytest.raises(UsageError, match=re.escape(f"--output_dir {inside} is inside --dataset_path {data}: ")):
        with output_folder_lock(training_args(inside), "run_re.py", {"--dataset_path": data}):
            pytest.fail("ran inside the input folder")
    assert entries(tmp_path) == ["data"] and entries(data) == []  # refused before any lock was taken


def test_output_folder_lock_refuses_a_folder_another_command_holds(tmp_path):
    out = tmp_path / "run"
    other = os.open(lock_path(out), os.O_RDWR | os.O_CREAT, 0o644)  # another command's lock (its own open file)
    try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(other, json.dumps({"command": "pretrain_mlm.py", "pid": 4242, "host": "node7",
                                    "started": "2024-05-01T10:00:00+00:00"}).encode())
        with pytest.raises(FolderInUse) as refused:
            with output_folder_lock(training_args(out), "run_ner_crf.py", {}):
                pytest.fail("two commands wrote one folder")
        assert isinstance(refused.value, UsageError)
        assert str(refused.value) == (f"{out} is in use by pretrain_mlm.py (pid 4242 on node7, started "
                                      "2024-05-01T10:00:00+00:00): wait for it to finish or stop it (two commands "
                                      "writing one folder would mix their outputs)")
        # The other processes of a launched run (process_index > 0) rely on process 0's lock and take none.
        with output_folder_lock(SimpleNamespace(output_dir=str(out), process_index=1), "run_ner_crf.py", {}):
            pass
        assert json.loads(lock_path(out).read_text())["command"] == "pretrain_mlm.py"
    finally:
        os.close(other)


# ---------------------------------------------------------------------------
# check_resume_matches and RecordRunArguments
# ---------------------------------------------------------------------------


RECORDED = {"model_name_or_path": "tiny-bert", "max_seq_length": 128, "seed": 42, "train_split": "train",
            "learning_rate": 5e-05, "num_train_epochs": 3}
MUST_MATCH = ("model_name_or_path", "max_seq_length", "seed", "train_split", "learning_rate", "world_size")


def test_check_resume_matches_passes_the_same_settings(tmp_path):
    checkpoint = make_checkpoint(tmp_path, 8, run_args=RECORDED)
    # A setting outside must_match may change (more epochs); one missing on both sides matches (None == None).
    assert check_resume_matches(str(checkpoint), {**RECORDED, "num_train_epochs": 5}, MUST_MATCH) is None


def test_check_resume_matches_names_every_setting_that_differs(tmp_path):
    checkpoint = make_checkpoint(tmp_path, 8, run_args=RECORDED)
    with pytest.raises(UsageError) as refused:
        check_resume_matches(str(checkpoint), {**RECORDED, "max_seq_length": 256}, MUST_MATCH)
    assert str(refused.value) == (f"{checkpoint} belongs to another run (max_seq_length: 128 in the checkpoint, 256 "
                                  "now): resume it with the same data and settings, or pass --overwrite to "
                                  "start afresh")

    with pytest.raises(UsageError) as refused:
        check_resume_matches(str(checkpoint), {**RECORDED, "seed": 7, "train_split": "train+validation",
                                               "world_size": 2}, MUST_MATCH)
    assert str(refused.value).startswith(
        f"{checkpoint} belongs to another run (seed: 42 in the checkpoint, 7 now; train_split: 'train' in the "
        "checkpoint, 'train+validation' now; world_size: None in the checkpoint, 2 now): ")


def test_record_run_arguments_completes_the_checkpoint_just_saved(tmp_path):
    run_args = {"seed": 42, "train_split": "train", "learning_rate": 5e-05}
    callback = RecordRunArguments(run_args)
    assert isinstance(callback, TrainerCallback)
    args = training_args(tmp_path)
    make_checkpoint(tmp_path, 7, complete=False)
    assert complete_checkpoints(tmp_path) == []

    callback.on_save(args, TrainerState(global_step=7), TrainerControl())
    assert json.loads((tmp_path / "checkpoint-7" / RUN_ARGS_FILE).read_text()) == run_args
    assert (tmp_path / "checkpoint-7" / RUN_ARGS_FILE).stat().st_mode & 0o777 == usual_file_mode()
    assert complete_checkpoints(tmp_path) == [tmp_path / "checkpoint-7"]
    assert check_resume_matches(str(tmp_path / "checkpoint-7"), run_args, tuple(run_args)) is None

    callback.on_save(args, TrainerState(global_step=9), TrainerControl())  # no such checkpoint: nothing is created
    assert entries(tmp_path) == ["checkpoint-7"]
    make_checkpoint(tmp_path, 11, complete=False)
    callback.on_save(args, TrainerState(global_step=11, is_world_process_zero=False), TrainerControl())
    assert entries(tmp_path / "checkpoint-11") == ["model.safetensors", "trainer_state.json"]  # process 0 writes it


# ---------------------------------------------------------------------------
# save_final_model
# ---------------------------------------------------------------------------


LABELS = ("O", "B-Drug", "I-Drug")


def tiny_trainer(output_dir: Path) -> Trainer:
    model = BertForTokenClassification(tiny_encoder_config(id2label=dict(enumerate(LABELS)),
                                                           label2id={label: i for i, label in enumerate(LABELS)}))
    return Trainer(model=model, args=training_args(output_dir), processing_class=build_wordpiece_tokenizer())


def test_save_final_model_moves_the_complete_model_into_place_with_the_usual_permissions(tmp_path):
    out = tmp_path / "run"
    prepare_output_dir(out, training_args(out), overwrite=False)
    (out / ".final-model.partial").mkdir()  # left by a run killed while saving
    (out / ".final-model.partial" / "stale.bin").write_bytes(b"x")
    trainer = tiny_trainer(out)
    save_final_model(trainer, out)

    assert entries(out) == [MANIFEST_FILE, "config.json", "model.safetensors", "tokenizer.json",
                            "tokenizer_config.json", "training_args.bin"]
    assert {name: (out / name).stat().st_mode & 0o777 for name in entries(out) if name != MANIFEST_FILE} == {
        name: usual_file_mode() for name in entries(out) if name != MANIFEST_FILE}  # the Trainer's weights are 0600
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "O", "1": "B-Drug", "2": "I-Drug"}
    # Everything the final model put there is claimed: a later --overwrite removes all of it.
    assert Manifest(out).foreign() == []
    prepare_output_dir(out, training_args(out), overwrite=True)
    assert entries(out) == [MANIFEST_FILE]


def test_save_final_model_that_fails_leaves_the_earlier_final_model_as_it_was(tmp_path, monkeypatch):
    out = tmp_path / "run"
    prepare_output_dir(out, training_args(out), overwrite=False)
    (out / "config.json").write_text('{"earlier": true}')  # the final model of an earlier, resumed run
    trainer = tiny_trainer(out)

    def save_half_then_fail(save_directory, **kwargs):
        Path(save_directory, "config.json").write_text('{"half": true}')
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(trainer.model, "save_pretrained", save_half_then_fail)
    with pytest.raises(OSError, match="No space left on device"):
        save_final_model(trainer, out)
    assert entries(out) == [MANIFEST_FILE, ".final-model.partial", "config.json"]
    assert (out / "config.json").read_text() == '{"earlier": true}'  # nothing half-written was moved into place
    assert entries(out / ".final-model.partial") == ["config.json"]
    assert Manifest(out).owns(".final-model.partial")  # claimed: --overwrite clears it

    monkeypatch.undo()
    save_final_model(trainer, out)  # the next save starts from a fresh hidden folder
    assert ".final-model.partial" not in entries(out)
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "O", "1": "B-Drug", "2": "I-Drug"}


# ---------------------------------------------------------------------------
# trainer_state_epoch
# ---------------------------------------------------------------------------


def test_trainer_state_epoch(tmp_path):
    assert trainer_state_epoch(None) == 0.0
    assert trainer_state_epoch("") == 0.0
    assert trainer_state_epoch(str(tmp_path / "checkpoint-1")) == 0.0  # no such folder
    checkpoint = make_checkpoint(tmp_path, 25)
    assert trainer_state_epoch(str(checkpoint)) == 2.5
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 30, "epoch": 3}))
    epoch = trainer_state_epoch(str(checkpoint))
    assert (epoch, type(epoch)) == (3.0, float)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 30, "epoch": None}))
    assert trainer_state_epoch(str(checkpoint)) == 0.0
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 30}))
    assert trainer_state_epoch(str(checkpoint)) == 0.0
    (checkpoint / "trainer_state.json").unlink()
    assert trainer_state_epoch(str(checkpoint)) == 0.0


# ---------------------------------------------------------------------------
# check_train_split and ALLOW_TEST_TRAINING_HELP
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("train_split, test_split, named", [
    ("test", "test", "test"),
    ("train+test", "test", "test"),
    ("train + test", "test", "test"),
    ("test", None, "test"),  # "test" is refused whatever the test split is called
    ("test", "validation", "test"),
    ("train+validation", "validation", "validation"),
    ("heldout+train", "heldout", "heldout"),
])
def test_check_train_split_refuses_the_test_split_unless_allowed(train_split, test_split, named):
    with pytest.raises(UsageError) as refused:
        check_train_split(train_split, test_split, allowed=False)
    assert str(refused.value) == (
        f"--train_split {train_split} trains on the test split ({named}): its test scores would be meaningless; train "
        "on train (or train+validation), or pass --allow_test_training if the model will never be scored on those "
        "notes")
    assert check_train_split(train_split, test_split, allowed=True) is None


@pytest.mark.parametrize("train_split, test_split", [
    ("train", "test"), ("train+validation", "test"), ("train", None), ("train", ""), ("testing", "test"),
    ("train+validation", "heldout"),
])
def test_check_train_split_accepts_splits_apart_from_the_test_split(train_split, test_split):
    assert check_train_split(train_split, test_split, allowed=False) is None


def test_allow_test_training_help_reads_in_argparse():
    parser = argparse.ArgumentParser(prog="run_ner_crf.py")
    parser.add_argument("--allow_test_training", action="store_true", help=ALLOW_TEST_TRAINING_HELP)
    shown = " ".join(parser.format_help().split())  # a stray % in the help would make this raise
    assert " ".join(ALLOW_TEST_TRAINING_HELP.split()) in shown
    assert ALLOW_TEST_TRAINING_HELP.startswith("Allow --train_split to name the test split (e.g. 'test', 'train+test')")
    assert parser.parse_args(["--allow_test_training"]).allow_test_training is True
