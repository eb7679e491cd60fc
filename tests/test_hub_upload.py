"""clinical_ner_crf/run_folders.py: the corpus-vocabulary mark travels with the tokenizer, and every upload path checks it.

A vocabulary learned from notes holds their words. ``subwords.train_subword_tokenizer`` marks it in the tokenizer's own
tokenizer_config.json (``"vocabulary_from_corpus": true``), so the fact travels with every save, checkpoint, copy and
export, and ``hub_upload.check_vocabulary_upload`` reads it from the tokenizer a run actually uses: a checkpoint folder
(no run_info.json) or a ``--tokenizer_name`` of such a model is refused for ``--push_to_hub`` before any work, unless
``--push_corpus_vocabulary``.
"""

import json
import re
import shutil
from pathlib import Path

import pytest

from clinical_ner_crf.command_line import UsageError
from clinical_ner_crf.files import EXPORT_INFO_FILE, RUN_ARGS_FILE, RUN_INFO_FILE
from clinical_ner_crf.hub_upload import (
    HUB_UPLOAD_PATTERNS, check_vocabulary_upload, corpus_vocabulary_evidence, push_model_to_hub, vocabulary_from_corpus,
)
from clinical_ner_crf.subwords import CORPUS_VOCABULARY_MARK, VOCABULARY_SOURCE_KEY, mark_corpus_vocabulary
from conftest import REPO_ROOT, build_wordpiece_tokenizer, command, tiny_encoder_config
from test_run_ner_crf import COMMON_ARGS, TINY_MODEL_ARGS, run
from test_user_paths import intercept_uploads

export_onnx = command("export_onnx")  # the command, called in-process as from its command line
pretrain_mlm = command("pretrain_mlm")  # the command, called in-process as from its command line
run_re = command("run_re")  # the command, called in-process as from its command line


REFUSED = "vocabulary is learned from the training notes"
# Fine-tuning flags without --train_tokenizer: the tokenizer comes from the model or --tokenizer_name.
FINE_TUNE_ARGS = ["--do_train", "--use_cpu", "--report_to", "none", "--seed", "7", "--per_device_train_batch_size",
                  "16", "--learning_rate", "2e-3", "--logging_steps", "1000", "--disable_tqdm", "true",
                  "--save_strategy", "no", "--eval_strategy", "no", "--dataloader_num_workers", "0",
                  "--max_train_samples", "32", "--num_train_epochs", "1"]
SCRATCH_ARCHITECTURE = ["--config_name", "configs/architectures/distilbert-base-cased.json", "--config_overrides",
                        "dim=32,n_layers=1,n_heads=2,hidden_dim=64,max_position_embeddings=256"]


def tokenizer_config(folder: Path) -> dict:
    return json.loads((Path(folder) / "tokenizer_config.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def corpus_checkpoint(synthetic_dataset, tmp_path_factory):
    """A checkpoint-N folder of a run_ner_crf.py --train_tokenizer run, copied away from its run folder (so no
    run_info.json anywhere near it) and without its run_args.json: only its tokenizer files can say what it holds."""
    run_dir = tmp_path_factory.mktemp("corpus_run") / "run"
    run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir", run_dir,
         "--do_eval", "false", "--do_predict", "false", "--max_train_samples", "32", "--max_steps", "2",
         "--save_strategy", "steps", "--save_steps", "2"])
    checkpoint = run_dir / "checkpoint-2"
    assert not (checkpoint / RUN_INFO_FILE).exists()
    assert tokenizer_config(checkpoint)[CORPUS_VOCABULARY_MARK] is True  # the Trainer's checkpoint carries the mark
    copy = tmp_path_factory.mktemp("elsewhere") / "checkpoint-2"
    shutil.copytree(checkpoint, copy)
    (copy / RUN_ARGS_FILE).unlink()
    return copy


# ---------------------------------------------------------------------------
# Where the fact lives: the tokenizer's own files
# ---------------------------------------------------------------------------


def test_the_checkpoint_says_it_in_its_tokenizer_config_with_no_corpus_text(corpus_checkpoint):
    config = tokenizer_config(corpus_checkpoint)
    # The description holds counts, never a word of the notes.
    assert re.fullmatch(r"WordPiece learned by subwords\.py from [\d,]+ distinct words of the training text "
                        r"\([\d,]+ entries\)", config[VOCABULARY_SOURCE_KEY])
    assert "tokenizer_config.json" in corpus_vocabulary_evidence(corpus_checkpoint)
    assert vocabulary_from_corpus(str(corpus_checkpoint)) and vocabulary_from_corpus(corpus_checkpoint)


def test_the_mark_survives_save_and_load_round_trips(tmp_path):
    from transformers import AutoTokenizer

    from clinical_ner_crf.windows import load_tokenizer

    tokenizer = mark_corpus_vocabulary(build_wordpiece_tokenizer(), "a test's description")
    tokenizer.save_pretrained(tmp_path / "first")
    second = AutoTokenizer.from_pretrained(tmp_path / "first")
    assert second.init_kwargs[CORPUS_VOCABULARY_MARK] is True and vocabulary_from_corpus(second)
    second.save_pretrained(tmp_path / "second")
    third = load_tokenizer(str(tmp_path / "second"))  # how the scripts load one
    third.add_special_tokens({"additional_special_tokens": ["<a>", "</a>"]}, replace_extra_special_tokens=False)
    third.save_pretrained(tmp_path / "third")  # as run_re.py saves it, markers added
    shutil.copytree(tmp_path / "third", tmp_path / "copied")
    for folder in ("first", "second", "third", "copied"):
        config = tokenizer_config(tmp_path / folder)
        assert config[CORPUS_VOCABULARY_MARK] is True and config[VOCABULARY_SOURCE_KEY] == "a test's description"
        assert vocabulary_from_corpus(tmp_path / folder), folder
    # An outside tokenizer (conftest's stands for one) is not marked.
    build_wordpiece_tokenizer().save_pretrained(tmp_path / "outside")
    assert CORPUS_VOCABULARY_MARK not in tokenizer_config(tmp_path / "outside")
    assert not vocabulary_from_corpus(tmp_path / "outside") and not vocabulary_from_corpus(None)
    assert not vocabulary_from_corpus("someone/not-cached-here")  # offline: unreadable, no error


def test_the_onnx_export_copies_the_mark(tmp_path):
    from transformers import AutoModelForTokenClassification

    labels = ["O", "B-Drug", "I-Drug"]
    model = AutoModelForTokenClassification.from_config(tiny_encoder_config(
        "distilbert", num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}))
    model.save_pretrained(tmp_path / "model")
    mark_corpus_vocabulary(build_wordpiece_tokenizer(), "a test's description").save_pretrained(tmp_path / "model")
    assert export_onnx.main(["--model_name_or_path", str(tmp_path / "model"), "--output_dir",
                             str(tmp_path / "onnx")]) == 0
    assert tokenizer_config(tmp_path / "onnx")[CORPUS_VOCABULARY_MARK] is True
    assert json.loads((tmp_path / "onnx" / EXPORT_INFO_FILE).read_text())["vocabulary_from_corpus"] is True
    assert "vocabulary was learned from the training notes" in (tmp_path / "onnx" / "README.md").read_text()
    assert vocabulary_from_corpus(tmp_path / "onnx")  # an upload of the export would be checked too


def test_folders_from_before_the_mark_are_read_from_their_runs_records(tmp_path):
    for folder in ("run", "run/checkpoint-4"):
        build_wordpiece_tokenizer().save_pretrained(tmp_path / folder)
    assert not vocabulary_from_corpus(tmp_path / "run")
    (tmp_path / "run" / RUN_INFO_FILE).write_text(json.dumps({"vocabulary_from_corpus": True}))
    # The run folder, and its checkpoint (whose run folder's run_info.json says it).
    assert vocabulary_from_corpus(tmp_path / "run") and vocabulary_from_corpus(tmp_path / "run" / "checkpoint-4")
    # A checkpoint copied away keeps its run_args.json (run_ner_crf.py --train_tokenizer, or pretrain_mlm.py learning).
    for run_args in ({"train_tokenizer": True}, {"text_sha256": "0" * 64, "tokenizer_name": None,
                                                 "model_name_or_path": None}):
        shutil.rmtree(tmp_path / "copy", ignore_errors=True)
        shutil.copytree(tmp_path / "run" / "checkpoint-4", tmp_path / "copy")
        assert not vocabulary_from_corpus(tmp_path / "copy")
        (tmp_path / "copy" / RUN_ARGS_FILE).write_text(json.dumps(run_args))
        assert vocabulary_from_corpus(tmp_path / "copy"), run_args
    # A tokenizer loaded from such a folder gets the mark, so everything the run saves carries it.
    from clinical_ner_crf.windows import load_tokenizer

    tokenizer = load_tokenizer(str(tmp_path / "run"))
    assert CORPUS_VOCABULARY_MARK not in tokenizer.init_kwargs
    assert check_vocabulary_upload(False, acknowledged=False, tokenizer=tokenizer) is True
    tokenizer.save_pretrained(tmp_path / "resaved")
    assert tokenizer_config(tmp_path / "resaved")[CORPUS_VOCABULARY_MARK] is True
    assert str(tmp_path) not in tokenizer_config(tmp_path / "resaved")[VOCABULARY_SOURCE_KEY]  # no local path


# ---------------------------------------------------------------------------
# Every upload path checks the tokenizer it uploads
# ---------------------------------------------------------------------------


def test_a_checkpoint_of_a_corpus_vocabulary_model_is_refused_before_training(corpus_checkpoint, synthetic_dataset,
                                                                               tmp_path, monkeypatch):
    uploads = intercept_uploads(monkeypatch)
    with pytest.raises(UsageError, match=REFUSED):
        run(["--model_name_or_path", corpus_checkpoint, *FINE_TUNE_ARGS, "--dataset_path", synthetic_dataset,
             "--output_dir", tmp_path / "refused", "--push_to_hub", "--hub_model_id", "someone/tiny"])
    assert not uploads and not (tmp_path / "refused").exists()  # refused before any work


def _tokenizer_name_commands(checkpoint, dataset, output_dir):
    return {
        "run_ner_crf.py": lambda: run([*SCRATCH_ARCHITECTURE, "--tokenizer_name", checkpoint, *FINE_TUNE_ARGS,
                                       "--dataset_path", dataset, "--output_dir", output_dir, "--push_to_hub"]),
        "run_re.py": lambda: run_re.main([*map(str, SCRATCH_ARCHITECTURE), "--tokenizer_name", str(checkpoint),
                                          "--dataset_path", str(dataset), "--output_dir", str(output_dir),
                                          "--do_train", "--use_cpu", "--report_to", "none", "--push_to_hub"]),
        "pretrain_mlm.py": lambda: pretrain_mlm.main([*map(str, SCRATCH_ARCHITECTURE), "--tokenizer_name",
                                                      str(checkpoint), "--dataset_path", str(dataset),
                                                      "--output_dir", str(output_dir), "--do_train", "--use_cpu",
                                                      "--report_to", "none", "--push_to_hub"]),
    }


@pytest.mark.parametrize("script", ["run_ner_crf.py", "run_re.py", "pretrain_mlm.py"])
def test_tokenizer_name_of_a_corpus_vocabulary_model_is_refused_before_any_work(script, corpus_checkpoint,
                                                                                  synthetic_dataset, tmp_path,
                                                                                  monkeypatch):
    uploads = intercept_uploads(monkeypatch)
    monkeypatch.chdir(REPO_ROOT)  # configs/ paths are relative
    with pytest.raises(UsageError, match=REFUSED):
        _tokenizer_name_commands(corpus_checkpoint, synthetic_dataset, tmp_path / "refused")[script]()
    assert not uploads and not (tmp_path / "refused").exists()


def test_acknowledged_the_upload_goes_through_with_the_marked_tokenizer(corpus_checkpoint, synthetic_dataset,
                                                                         tmp_path, monkeypatch):
    from huggingface_hub.utils import filter_repo_objects

    uploads = intercept_uploads(monkeypatch)
    output_dir = tmp_path / "acknowledged"
    run(["--model_name_or_path", corpus_checkpoint, *FINE_TUNE_ARGS, "--dataset_path", synthetic_dataset,
         "--output_dir", output_dir, "--push_to_hub", "--hub_model_id", "someone/tiny", "--push_corpus_vocabulary"])
    assert len(uploads) == 1 and uploads[0]["repo_id"] == "someone/tiny"
    assert Path(uploads[0]["folder_path"]) == output_dir
    assert uploads[0]["allow_patterns"] == HUB_UPLOAD_PATTERNS
    files = [p.relative_to(output_dir).as_posix() for p in output_dir.rglob("*") if p.is_file()]
    uploaded = set(filter_repo_objects(files, allow_patterns=uploads[0]["allow_patterns"]))
    assert {"tokenizer.json", "tokenizer_config.json", "model.safetensors"} <= uploaded
    # The fine-tuned model's tokenizer still says what it holds; so do the run's record and its card.
    assert tokenizer_config(output_dir)[CORPUS_VOCABULARY_MARK] is True
    assert json.loads((output_dir / RUN_INFO_FILE).read_text())["vocabulary_from_corpus"] is True
    assert "vocabulary is derived from them" in (output_dir / "README.md").read_text()


def test_push_model_to_hub_checks_the_folder_it_uploads(tmp_path, monkeypatch):
    uploads = intercept_uploads(monkeypatch)
    mark_corpus_vocabulary(build_wordpiece_tokenizer(), "a test's description").save_pretrained(tmp_path / "model")
    with pytest.raises(UsageError, match=REFUSED):
        push_model_to_hub(tmp_path / "model", "someone/tiny", token=None)
    assert not uploads
    push_model_to_hub(tmp_path / "model", "someone/tiny", token=None, corpus_vocabulary_acknowledged=True)
    assert [(Path(u["folder_path"]), u["allow_patterns"]) for u in uploads] == [(tmp_path / "model",
                                                                                HUB_UPLOAD_PATTERNS)]
    # An outside tokenizer needs no acknowledgement.
    build_wordpiece_tokenizer().save_pretrained(tmp_path / "outside")
    push_model_to_hub(tmp_path / "outside", "someone/outside", token=None)
    assert len(uploads) == 2


def test_the_check_is_keyword_only_so_an_old_call_fails_loudly():
    with pytest.raises(TypeError):
        check_vocabulary_upload(True, True, False, "an old-style source description")  # type: ignore[misc]
    assert check_vocabulary_upload(True, acknowledged=False, tokenizer=None) is False
    assert check_vocabulary_upload(True, acknowledged=True, learned_here=True) is True
    with pytest.raises(UsageError, match=REFUSED):
        check_vocabulary_upload(True, acknowledged=False, learned_here=True)
