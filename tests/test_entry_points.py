"""Every way a user calls a trained model gives the same answer, for notes of any length.

The entry points: ``annotate_notes.py`` (command line), ``NoteAnnotator`` (Python),
``pipeline("token-classification", model=path, trust_remote_code=True)`` with and without
aggregation, ``pipeline(model=<model object>, pipeline_class=NerPipeline)``, the stock pipeline
with a loaded model object, and ``Trainer.predict`` (``run_ner_crf.py --do_predict``). Models are
trained here with ``run_ner_crf.py``, as a user would, then called from the saved folder.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clinical_ner_crf.note_annotator import NoteAnnotator
from clinical_ner_crf.synthetic_n2c2 import generate_notes
from clinical_ner_crf.tagging import bio_to_spans, split_sentences, tokenize_words
from clinical_ner_crf.windows import NerPipeline
from conftest import LIBRARY, REPO_ROOT, command

annotate_notes = command("annotate_notes")  # the command, called in-process as from its command line
prepare_n2c2 = command("prepare_n2c2")  # the command, called in-process as from its command line
run_ner_crf = command("run_ner_crf")  # the command, called in-process as from its command line

TINY_MODEL_ARGS = [
    "--config_name", "configs/architectures/distilbert-base-cased.json",
    "--config_overrides", "dim=32,n_layers=1,n_heads=2,hidden_dim=64,max_position_embeddings=64",
    "--train_tokenizer", "true", "--tokenizer_vocab_size", "600",
    "--do_train", "--do_predict", "--use_cpu", "--report_to", "none", "--seed", "7", "--num_train_epochs", "6",
    "--per_device_train_batch_size", "16", "--learning_rate", "2e-3", "--crf_learning_rate", "1e-2",
    "--save_strategy", "no", "--eval_strategy", "no", "--disable_tqdm", "true", "--train_split", "train_downsampled",
]


def train(dataset: Path, output_dir: Path, use_crf: bool) -> Path:

    previous = os.getcwd()
    os.chdir(REPO_ROOT)  # the configs are relative to the repository
    try:
        run_ner_crf.main([*TINY_MODEL_ARGS, "--dataset_path", str(dataset), "--output_dir", str(output_dir),
                          "--use_crf", str(use_crf).lower()])
    finally:
        os.chdir(previous)
    return output_dir


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):

    output_dir = tmp_path_factory.mktemp("data") / "synthetic"
    prepare_n2c2.main(["--synthetic", "40", "--seed", "3", "--output_dir", str(output_dir)])
    return output_dir


@pytest.fixture(scope="module")
def crf_dir(dataset, tmp_path_factory):
    return train(dataset, tmp_path_factory.mktemp("runs") / "crf", use_crf=True)


@pytest.fixture(scope="module")
def apt_dir(dataset, tmp_path_factory):
    return train(dataset, tmp_path_factory.mktemp("runs") / "apt", use_crf=False)


def long_note() -> str:
    """Over 10,000 characters, ending with one sentence that needs more than 3 windows of the 64-position encoder."""
    text = "\n\n".join(note.text for note in generate_notes(6, seed=21, split="long"))
    giant = ", ".join(["aspirin 81 mg PO daily", "metoprolol tartrate 25 mg tablet by mouth twice a day",
                       "heparin 5000 units SC q8h for DVT prophylaxis"] * 12)
    return text + "\n\nDischarge medications: " + giant + " and furosemide 40 mg PO daily."


NOTES = {
    "long": long_note(),
    "one_word": "Lisinopril",
    "no_entity": "The patient was seen and examined.",
    "crlf": "Discharge Medications:\r\n1. Metoprolol tartrate 25 mg PO BID.\r\n2. Aspirin 81 mg PO daily for CAD.\r\n",
    "empty": "",
}


def as_tuples(entities) -> list[tuple[str, int, int, str]]:
    """(type, start, end, text) of Entity objects or pipeline dicts."""
    if entities and isinstance(entities[0], dict):
        return [(e["entity_group"], e["start"], e["end"], e["word"]) for e in entities]
    return [(e.type, e.start, e.end, e.text) for e in entities]


def words_to_entities(words, text) -> list[tuple[str, int, int, str]]:
    """Entities of pipeline word output (aggregation "none", O included) by strict IOB2 decoding."""
    tags = [w["entity"] for w in words]
    return [(entity_type, words[first]["start"], words[last - 1]["end"],
             text[words[first]["start"]:words[last - 1]["end"]]) for entity_type, first, last in bio_to_spans(tags)]


def command_line_entities(model_dir: Path, tmp_path: Path) -> dict[str, list]:
    notes_dir, out = tmp_path / "notes", tmp_path / "out"
    notes_dir.mkdir()
    for document_id, text in NOTES.items():
        with open(notes_dir / f"{document_id}.txt", "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    assert annotate_notes.main(["--model_name_or_path", str(model_dir), "--input_dir", str(notes_dir),
                                "--output_dir", str(out)]) == 0
    records = [json.loads(line) for line in (out / "entities.jsonl").read_text(encoding="utf-8").splitlines()]
    return {document_id: [(r["type"], r["start"], r["end"], r["text"]) for r in records
                          if r["document_id"] == document_id] for document_id in NOTES}


def test_the_notes_exercise_what_they_should(crf_dir):
    annotator = NoteAnnotator.from_pretrained(str(crf_dir))
    assert annotator.max_seq_length == 64  # what the tiny encoder takes
    note = annotator.predict({"long": NOTES["long"]})["long"]
    assert len(NOTES["long"]) > 10_000 and max(sentence.num_windows for sentence in note.sentences) > 3
    assert note.entities, "the trained model finds entities in the long note"
    assert note.entities[-1].end > len(NOTES["long"]) - 40, "tagged to the last characters"
    # Every word of the note was tagged, to the last character.
    tagged = [(s, e) for sentence in note.sentences for s, e in zip(sentence.token_starts, sentence.token_ends)]
    assert tagged == [(s, e) for _, s, e in tokenize_words(NOTES["long"])]


@pytest.mark.parametrize("model_fixture", ["crf_dir", "apt_dir"])
def test_note_annotator_and_command_line_agree(model_fixture, request, tmp_path):
    model_dir = request.getfixturevalue(model_fixture)
    from_cli = command_line_entities(model_dir, tmp_path)
    annotator = NoteAnnotator.from_pretrained(str(model_dir))
    assert annotator.is_crf == (model_fixture == "crf_dir")
    from_python = annotator(list(NOTES.values()))
    for (document_id, text), entities in zip(NOTES.items(), from_python):
        assert as_tuples(entities) == from_cli[document_id], document_id
        assert all(text[e.start:e.end] == e.text for e in entities)
    alone = annotator(NOTES["crlf"])  # one string in, one list out (batched alone: rounding may differ)
    assert as_tuples(alone) == as_tuples(from_python[3])
    assert [e.confidence for e in alone] == pytest.approx([e.confidence for e in from_python[3]], abs=1e-5)
    assert from_python[4] == []
    assert sum(map(len, from_python)) > 20


def test_every_crf_entry_point_gives_the_same_entities(crf_dir, tmp_path):
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    from_cli = command_line_entities(crf_dir, tmp_path)
    annotator = NoteAnnotator.from_pretrained(str(crf_dir))
    by_path = pipeline("token-classification", model=str(crf_dir), trust_remote_code=True,
                       aggregation_strategy="simple")
    words_by_path = pipeline("token-classification", model=str(crf_dir), trust_remote_code=True,
                             ignore_labels=[])
    assert type(by_path).__name__ == "NerPipeline"  # the copy saved beside the model (trust_remote_code)
    model = AutoModelForTokenClassification.from_pretrained(str(crf_dir), trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(str(crf_dir))
    by_object = pipeline("token-classification", model=model, tokenizer=tokenizer, pipeline_class=NerPipeline,
                         aggregation_strategy="first")
    for document_id, text in NOTES.items():
        expected = from_cli[document_id]
        assert as_tuples(annotator(text)) == expected, document_id
        grouped = by_path(text)
        assert as_tuples(grouped) == expected, document_id
        assert as_tuples(by_object(text)) == expected, document_id
        words = words_by_path(text)
        assert words_to_entities(words, text) == expected, document_id
        assert [(w["start"], w["end"]) for w in words] == [(s, e) for _, s, e in tokenize_words(text)]
        # Confidences: the mean CRF marginal of the entity's words, the same on every path.
        assert [e["score"] for e in grouped] == pytest.approx([e.confidence for e in annotator(text)], abs=1e-5)


def test_stock_pipeline_with_a_model_object_follows_the_crf(crf_dir):
    """The stock pipeline never sees our pipeline: the model's logits carry the CRF path."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer, TokenClassificationPipeline, pipeline

    model = AutoModelForTokenClassification.from_pretrained(str(crf_dir), trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(str(crf_dir))
    assert tokenizer.model_max_length == 64  # no crash on long input: the stock pipeline truncates or strides
    stock = pipeline("token-classification", model=model, tokenizer=tokenizer, ignore_labels=[])  # O too
    assert type(stock) is TokenClassificationPipeline
    grouped = pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="simple")
    annotator = NoteAnnotator(model, tokenizer)
    # Sentence by sentence (the stock pipeline does not split sentences): every sentence that fits one window.
    text = NOTES["long"] + "\n" + NOTES["crlf"]
    num_tags = num_entities = 0
    for start, end in split_sentences(text):
        sentence = text[start:end]
        if len(tokenizer(sentence)["input_ids"]) > tokenizer.model_max_length:
            continue
        tags = [w["entity"] for w in stock(sentence)]  # every subword but the special tokens
        assert len(tags) == len(tokenizer(sentence)["input_ids"]) - 2
        for previous, tag in zip(["O"] + tags, tags):
            assert not tag.startswith("I-") or previous[2:] == tag[2:], f"invalid continuation {previous} -> {tag}"
        expected = as_tuples(annotator(sentence))
        # (the stock pipeline's "word" is the tokenizer's decoding, e.g. "12. 5 mg": compare offsets)
        assert [(e["entity_group"], e["start"], e["end"], sentence[e["start"]:e["end"]])
                for e in grouped(sentence)] == expected
        num_tags, num_entities = num_tags + sum(tag != "O" for tag in tags), num_entities + len(expected)
    assert num_tags > 300 and num_entities > 100
    # With stride= the stock pipeline covers a long text too (no crash past 64 positions).
    windows = pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="simple",
                       stride=16)(NOTES["long"])
    assert windows and windows[-1]["end"] > len(NOTES["long"]) // 2


def test_trainer_predict_and_the_annotator_tag_sentences_alike(crf_dir, dataset):
    """run_ner_crf.py --do_predict (Trainer.predict) and NoteAnnotator on the same sentences."""
    from datasets import load_from_disk

    documents = load_from_disk(str(dataset / "documents"))
    texts = dict(zip(documents["document_id"], documents["text"]))
    rows = [json.loads(line) for line in (crf_dir / "predictions" / "test_predictions.jsonl").read_text().splitlines()]
    annotator = NoteAnnotator.from_pretrained(str(crf_dir))
    compared = 0
    for row in rows:
        start, end = row["token_starts"][0], row["token_ends"][-1]
        sentence = texts[row["document_id"]][start:end]
        if len(split_sentences(sentence)) != 1:
            continue  # cut differently without the gold entities: not the same input
        predicted = annotator.predict({"s": sentence})["s"].sentences[0]
        assert predicted.pred_tags == row["pred_tags"]
        assert predicted.confidences == pytest.approx(row["confidences"], abs=1e-5)
        compared += 1
    assert compared > 0.9 * len(rows)


def test_annotator_runs_without_datasets_or_the_training_script(crf_dir, tmp_path):
    """annotate_notes.py and NoteAnnotator with only the files they need, in an environment without `datasets`."""
    import shutil
    import site

    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for name in ("annotate_notes.py", "modeling_crf.py"):  # what a user copies: the script, the model, the library
        shutil.copy(REPO_ROOT / name, scripts / name)
    shutil.copytree(REPO_ROOT / LIBRARY, scripts / LIBRARY, ignore=shutil.ignore_patterns("__pycache__"))
    # site-packages without datasets: every entry linked, except datasets itself.
    packages = tmp_path / "site-packages"
    packages.mkdir()
    for root in site.getsitepackages():
        for entry in Path(root).iterdir():
            if not entry.name.lower().startswith("datasets") and not (packages / entry.name).exists():
                (packages / entry.name).symlink_to(entry)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "n.txt").write_text(NOTES["crlf"], encoding="utf-8", newline="")
    script = (
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('datasets') is None and importlib.util.find_spec('run_ner_crf') is None\n"
        "from annotate_notes import main\n"
        "from clinical_ner_crf.note_annotator import NoteAnnotator\n"
        f"entities = NoteAnnotator.from_pretrained({str(crf_dir)!r})({NOTES['crlf']!r})\n"
        f"code = main(['--model_name_or_path', {str(crf_dir)!r}, '--input_dir', {str(tmp_path / 'notes')!r},"
        f" '--output_dir', {str(tmp_path / 'out')!r}])\n"
        "assert 'datasets' not in sys.modules and 'run_ner_crf' not in sys.modules\n"
        "print(len(entities), code)\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(PYTHONPATH=os.pathsep.join([str(scripts), str(packages)]), HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-S", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    count, code = result.stdout.split()[-2:]
    assert int(count) > 0 and code == "0"
    assert len((tmp_path / "out" / "entities.jsonl").read_text().splitlines()) == int(count)


