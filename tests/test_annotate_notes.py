"""annotate_notes.py: notes in, brat out, exact offsets, long notes, CRF confidences, pipeline agreement, bad input."""

import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from clinical_ner_crf import folder_annotation
from clinical_ner_crf.brat import read_brat_document, write_brat_ann
from clinical_ner_crf.documents import BratDocument, BratEntity
from clinical_ner_crf.folder_safety import MANIFEST_FILE, Manifest
from clinical_ner_crf.note_annotator import load_model_and_tokenizer
from clinical_ner_crf.prediction_records import read_predictions
from clinical_ner_crf.sentence_examples import document_to_examples
from clinical_ner_crf.subwords import train_subword_tokenizer
from clinical_ner_crf.synthetic_n2c2 import generate_notes, write_notes
from clinical_ner_crf.tagging import N2C2_ENTITY_TYPES, N2C2_LABELS, bio_to_char_spans, tokenize_words
from clinical_ner_crf.windows import (
    WindowCollator, copy_pipeline_files, encode_word_windows, max_input_length, pipeline_config_entry, predict_notes,
)
from conftest import REPO_ROOT, command, tiny_encoder_config
from modeling_crf import CRFForTokenClassification, CRFTokenClassificationConfig

main = command("annotate_notes").main
annotate_notes = command("annotate_notes")  # the command, called in-process as from its command line
export_onnx = command("export_onnx")  # the command, called in-process as from its command line

SECRET = "Zyxolimab"  # a word that must never reach logs or summaries


# ---------------------------------------------------------------------------------------------
# Models: a tiny CRF trained for a few seconds on synthetic notes, and hand-set ones
# ---------------------------------------------------------------------------------------------


_TRAINED_CRFS: dict[tuple[int, int], Path] = {}  # (steps, seed) -> a pristine copy, kept for this test process


def train_tiny_crf(output_dir: Path, steps: int = 100, seed: int = 0) -> Path:
    """A 2-layer BERT-CRF trained on synthetic notes (enough to predict every common type). Trained once per test
    process for each (steps, seed), deterministically; later calls get a copy of that model in ``output_dir``."""
    if (steps, seed) in _TRAINED_CRFS:
        return Path(shutil.copytree(_TRAINED_CRFS[(steps, seed)], output_dir, dirs_exist_ok=True))
    notes = generate_notes(30, seed=1, split="train")
    rows = []
    for note in notes:
        entities = [BratEntity(f"T{i}", entity_type, tuple(spans), "", i)
                    for i, (entity_type, spans) in enumerate(note.entities, 1)]
        rows += document_to_examples(BratDocument(note.doc_id, note.text, entities), N2C2_LABELS)[0]
    # The project's deterministic WordPiece trainer (the `tokenizers` trainer breaks ties in hash order).
    tokenizer = train_subword_tokenizer([row["tokens"] for row in rows], vocab_size=1500)
    label_ids = {label: i for i, label in enumerate(N2C2_LABELS)}
    encoded = encode_word_windows([row["tokens"] for row in rows], tokenizer, 64, 16,
                                  [[label_ids[tag] for tag in row["ner_tags"]] for row in rows])
    torch.manual_seed(seed)
    config = CRFTokenClassificationConfig(encoder_config=tiny_encoder_config("bert", vocab_size=len(tokenizer)),
                                          id2label=dict(enumerate(N2C2_LABELS)), classifier_dropout=0.0)
    model = CRFForTokenClassification(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    collator, rng = WindowCollator(tokenizer), random.Random(seed)
    keys = ("input_ids", "attention_mask", "token_type_ids", "labels")
    for _ in range(steps):
        batch = collator([{key: encoded[key][i] for key in keys}
                          for i in rng.sample(range(len(encoded["input_ids"])), 32)])
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.set_subword_kinds(tokenizer)
    model.config.custom_pipelines = pipeline_config_entry()  # as run_ner_crf.py saves a CRF model
    model.eval().save_pretrained(output_dir)
    copy_pipeline_files(output_dir)
    tokenizer.save_pretrained(output_dir)
    _TRAINED_CRFS[(steps, seed)] = Path(shutil.copytree(output_dir, Path(tempfile.mkdtemp(prefix="tiny_crf_")) / "model"))
    return output_dir


@pytest.fixture(scope="module")
def crf_dir(tmp_path_factory):
    return train_tiny_crf(tmp_path_factory.mktemp("crf"))


@pytest.fixture(scope="module")
def crf(crf_dir):
    return load_model_and_tokenizer(str(crf_dir), device="cpu")


def constant_crf(labels=("O", "B-Dose", "I-Dose"), bias=(0.0, 0.5, 1.0)):
    """Emissions that ignore the input (zero weights): the Viterbi path is B-Dose I-Dose I-Dose ..."""
    torch.manual_seed(0)
    config = CRFTokenClassificationConfig(encoder_config=tiny_encoder_config("bert"), id2label=dict(enumerate(labels)))
    model = CRFForTokenClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor(bias))
        for param in (model.crf.start_transitions, model.crf.transitions, model.crf.end_transitions):
            param.zero_()
    return model


HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cache_as_hub_download(folder: Path, cache: Path, repo_id: str, names=None) -> Path:
    """``folder``'s files (only ``names``, if given) laid out as huggingface_hub leaves a download of ``repo_id`` in the
    cache ``cache`` (refs/main -> commit, snapshots/COMMIT/FILE), as test_model_sources.fake_cache does: a Hub
    repository to read offline. Returns the snapshot folder."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(HUB_COMMIT)
    snapshot = repo / "snapshots" / HUB_COMMIT
    snapshot.mkdir(parents=True)
    for path in sorted(folder.iterdir()):
        if path.is_file() and (names is None or path.name in names):
            shutil.copy2(path, snapshot / path.name)
    return snapshot


def write_txt(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def assert_ann_matches(txt: Path, ann: Path, records: list[dict]) -> None:
    """The .ann validates against its .txt and holds exactly the JSONL entities."""
    text = txt.read_bytes().decode("utf-8")
    document = read_brat_document(txt, ann, entity_types=sorted({r["type"] for r in records} | {"Drug"}),
                                  validate_text=True)
    assert [(e.type, e.start, e.end) for e in document.entities] == [(r["type"], r["start"], r["end"]) for r in records]
    for record in records:
        assert record["text"] == text[record["start"]:record["end"]]
        assert record["text"] == record["text"].strip() and record["text"]
        assert record["confidence"] == pytest.approx(statistics.mean(record["word_confidences"]), abs=1e-5)


# ---------------------------------------------------------------------------------------------
# Round trip: brat written from the model, scored by evaluate_ablations.py, equals word level
# ---------------------------------------------------------------------------------------------


def test_round_trip_brat_score_equals_word_level_score(crf_dir, tmp_path, caplog):
    from clinical_ner_crf.token_metrics import entity_scores
    evaluate_main = command("evaluate_ablations").main

    synthetic_dir, notes_dir, gold_dir, out = (tmp_path / name for name in ("synthetic", "notes", "gold", "out"))
    notes = generate_notes(6, seed=7, split="test")  # not the training notes
    write_notes(notes, synthetic_dir)
    gold_rows = {}
    for note in notes:
        text = write_txt(notes_dir / f"{note.doc_id}.txt", note.text).read_bytes().decode("utf-8")
        write_txt(gold_dir / f"{note.doc_id}.txt", text)
        # Gold word tags exactly as prepare_n2c2 tags the gold brat; gold brat written back from them.
        document = read_brat_document(synthetic_dir / f"{note.doc_id}.txt", validate_text=True)
        rows, _ = document_to_examples(document, N2C2_LABELS)
        gold_rows[note.doc_id] = rows
        write_brat_ann(gold_dir / f"{note.doc_id}.ann", [entity for row in rows for entity in bio_to_char_spans(
            row["ner_tags"], row["token_starts"], row["token_ends"])], text)

    assert main(["--model_name_or_path", str(crf_dir), "--input_dir", str(notes_dir), "--output_dir", str(out),
                 "--word_predictions", "--max_seq_length", "32", "--stride", "8", "--batch_size", "16"]) == 0

    # Every .ann validates against its .txt and matches entities.jsonl, character for character.
    records = read_jsonl(out / "entities.jsonl")
    for note in notes:
        assert_ann_matches(notes_dir / f"{note.doc_id}.txt", out / f"{note.doc_id}.ann",
                           [r for r in records if r["document_id"] == note.doc_id])

    report = evaluate_main(["--gold_brat", str(gold_dir), "--pred_brat", str(out),
                            "--output_dir", str(tmp_path / "report")])
    brat_strict = report["strict"]["micro"]

    # Word level: predicted words are prepare_n2c2's words of the same notes; seqeval strict IOB2.
    predicted = read_predictions(out / "predictions.jsonl")
    assert all(row["gold_tags"] is None for row in predicted)
    gold_sequences, pred_sequences = [], []
    for document_id, rows in gold_rows.items():
        pred_rows = sorted((r for r in predicted if r["document_id"] == document_id), key=lambda r: r["sentence_index"])
        assert [(s, e) for r in pred_rows for s, e in zip(r["token_starts"], r["token_ends"])] == \
               [(s, e) for r in rows for s, e in zip(r["token_starts"], r["token_ends"])]
        gold_sequences.append([tag for row in rows for tag in row["ner_tags"]])
        pred_sequences.append([tag for row in pred_rows for tag in row["pred_tags"]])
    word_strict = entity_scores(gold_sequences, pred_sequences, "strict")["micro"]

    print(f"\nround trip: brat strict micro P/R/F1 {brat_strict['precision']:.6f}/{brat_strict['recall']:.6f}/"
          f"{brat_strict['f1']:.6f}, word level {word_strict['precision']:.6f}/{word_strict['recall']:.6f}/"
          f"{word_strict['f1']:.6f}, {len(records)} predicted, {brat_strict['support']} gold entities")
    assert brat_strict["support"] == word_strict["support"] > 100
    assert report["num_pred_entities"] == len(records) > 50
    for key in ("precision", "recall", "f1"):
        assert brat_strict[key] == pytest.approx(word_strict[key], abs=1e-12)
    assert brat_strict["f1"] > 0.3, "the tiny model should have learnt something"

    summary = json.loads((out / "summary.json").read_text())
    assert summary["notes_annotated"] == 6 and summary["notes_failed"] == 0
    assert summary["entities"] == len(records) == sum(summary["entities_by_type"].values())
    assert summary["sentences"] == sum(len(rows) for rows in gold_rows.values())
    assert summary["windowed_sentences"] > 0 and summary["windows"] > summary["sentences"]
    assert set(summary["entities_by_type"]) <= set(N2C2_ENTITY_TYPES)
    # Privacy: no note text in the logs or the summary.
    assert "Metoprolol" not in caplog.text and "Metoprolol" not in json.dumps(summary)
    assert not list(out.glob(".*.tmp"))


# ---------------------------------------------------------------------------------------------
# The pipeline and the command line agree
# ---------------------------------------------------------------------------------------------


def test_pipeline_and_command_line_agree(crf_dir, tmp_path):
    from transformers import pipeline

    texts = {
        "med": "1. Metoprolol tartrate 25 mg tablet PO BID for hypertension.",
        "narrative": "She was started on lisinopril 10 mg PO daily for hypertension and developed a rash.",
        "course": "Vancomycin 1 g IV q12h for MRSA bacteremia, furosemide 40 mg PO daily for edema.",
    }
    for document_id, text in texts.items():
        write_txt(tmp_path / "notes" / f"{document_id}.txt", text)
    assert main(["--model_name_or_path", str(crf_dir), "--input_dir", str(tmp_path / "notes"),
                 "--output_dir", str(tmp_path / "out")]) == 0
    records = read_jsonl(tmp_path / "out" / "entities.jsonl")

    ner = pipeline("token-classification", model=str(crf_dir), trust_remote_code=True, aggregation_strategy="first")
    assert type(ner).__name__ == "NerPipeline"
    found = 0
    for document_id, text in texts.items():
        from_pipeline = ner(text)
        from_cli = [r for r in records if r["document_id"] == document_id]
        assert [(e["entity_group"], e["start"], e["end"], e["word"]) for e in from_pipeline] == \
               [(r["type"], r["start"], r["end"], r["text"]) for r in from_cli]
        assert [e["score"] for e in from_pipeline] == pytest.approx([r["confidence"] for r in from_cli], abs=1e-5)
        found += len(from_cli)
    assert found >= 6


# ---------------------------------------------------------------------------------------------
# Long notes, window edges, one-word notes, confidences
# ---------------------------------------------------------------------------------------------


def test_clinical_style_notes_not_from_the_sample(crf_dir, tmp_path):
    """Free text with CRLF, tabs, unicode and characters the tokenizer drops still validates."""
    notes = {
        "crlf": "HPI:\r\n67 yo M w/ AFib on warfarin 5 mg PO qhs, INR 2.3.\r\nPlan: continue metoprolol 25mg BID.\r\n",
        "unicode": "Temp 38.2\u00b0C, SpO2 94%.\tGiven acetaminophen 650\u00a0mg PO q6h PRN fever \U0001F48A.\n"
                   "Pt refused hepa\u00adrin\u200b SC; \x00 see note.\ufffd\n",
        "bom": "\ufeffDischarge meds: lisinopril 10 mg daily, ASA 81 mg, insulin glargine 20 units SC qHS.",
    }
    for document_id, text in notes.items():
        write_txt(tmp_path / "notes" / f"{document_id}.txt", text)
    out = tmp_path / "annotated"
    assert main(["--model_name_or_path", str(crf_dir), "--input_dir", str(tmp_path / "notes"),
                 "--output_dir", str(out), "--word_predictions"]) == 0
    records = read_jsonl(out / "entities.jsonl")
    for document_id, text in notes.items():
        assert_ann_matches(tmp_path / "notes" / f"{document_id}.txt", out / f"{document_id}.ann",
                           [r for r in records if r["document_id"] == document_id])
        words = [(s, e) for row in read_jsonl(out / "predictions.jsonl")
                 if row["document_id"] == document_id for s, e in zip(row["token_starts"], row["token_ends"])]
        assert words == [(s, e) for _, s, e in tokenize_words(text)]  # dropped characters get a tag too
    assert records


# ---------------------------------------------------------------------------------------------
# Bad input, overwriting, interrupted runs
# ---------------------------------------------------------------------------------------------


def test_bad_input_is_reported_per_file_and_counted(crf_dir, tmp_path, caplog, capsys):
    notes, out = tmp_path / "notes", tmp_path / "out"
    write_txt(notes / "good.txt", f"Started {SECRET} 5 mg PO daily and aspirin 81 mg PO daily.")
    (notes / "latin1.txt").write_bytes(f"Started {SECRET} 5 mg PO daily, caf\xe9.".encode("latin-1"))
    write_txt(notes / "empty.txt", "")
    write_txt(notes / "blank.txt", "\n  \n\t")
    (notes / "folder.txt").mkdir()
    (notes / "gone.txt").symlink_to(notes / "missing-target.txt")
    write_txt(notes / "kept.txt", "Heparin 5000 units SC q8h.")
    write_txt(notes / "readme.md", "not a note")
    # kept.txt was annotated by an earlier run: its .ann and its record, both claimed in the folder's manifest.
    write_txt(out / "kept.ann", "T1\tDrug 0 7\tHeparin\n")
    write_txt(out / "entities.jsonl", json.dumps({"document_id": "kept", "id": "T1", "type": "Drug", "start": 0,
                                                  "end": 7, "text": "Heparin", "confidence": 0.9}) + "\n")
    Manifest(out).claim(["kept.ann", "entities.jsonl"])

    # --verbose: the INFO lines too (a note already annotated, the files not read); errors show without it.
    assert main(["--model_name_or_path", str(crf_dir), "--input_dir", str(notes), "--output_dir", str(out),
                 "--verbose"]) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["notes_found"] == 5
    # folder.txt and gone.txt are named like notes but are not regular files: counted, reported, never opened.
    assert summary["files_seen"] == {"notes": 5, "hidden": 0, "other": 1, "folders": 0,
                                     "named_like_notes_not_regular_files": 2}
    assert summary["failures_by_kind"] == {"not_a_regular_file": 2, "not_utf8": 1}
    assert summary["notes_failed"] == 3 and summary["empty_notes"] == 2
    assert summary["notes_annotated"] == 3  # good + the two empty notes
    assert summary["notes_already_annotated"] == 1  # kept.txt: its .ann is kept, not a failure
    assert sorted(f["file"] for f in summary["failed_files"]) == ["folder.txt", "gone.txt", "latin1.txt"]
    for name in ("latin1.txt", "folder.txt", "gone.txt", "kept.txt", "empty.txt", "blank.txt", "readme.md"):
        assert name in caplog.text  # one clear message per file (per kind for those not read)
    assert "UTF-8" in caplog.text and "--overwrite" in caplog.text
    assert (out / "kept.ann").read_text() == "T1\tDrug 0 7\tHeparin\n"  # not overwritten
    assert (out / "empty.ann").read_text() == "" and (out / "blank.ann").read_text() == ""
    assert not (out / "latin1.ann").exists() and (out / "good.ann").exists()
    stdout = capsys.readouterr().out
    assert "3 notes failed" in stdout and "2 empty notes" in stdout and "1 notes already had an .ann" in stdout
    assert SECRET not in caplog.text + stdout + json.dumps(summary)
    good_records = [r for r in read_jsonl(out / "entities.jsonl") if r["document_id"] == "good"]

    # --overwrite replaces kept.ann; entities.jsonl holds each note once.
    assert main(["--model_name_or_path", str(crf_dir), "--input_dir", str(notes), "--output_dir", str(out), "--overwrite"]) == 1
    assert (out / "kept.ann").read_text() != "T1\tDrug 0 7\tHeparin\n"
    records = read_jsonl(out / "entities.jsonl")
    assert [r for r in records if r["document_id"] == "good"] == good_records
    assert json.loads((out / "summary.json").read_text())["failures_by_kind"] == {"not_a_regular_file": 2,
                                                                                  "not_utf8": 1}

    # A third run without --overwrite annotates nothing new and keeps the JSONL records.
    assert main(["--model_name_or_path", str(crf_dir), "--input_dir", str(notes), "--output_dir", str(out)]) == 1
    assert read_jsonl(out / "entities.jsonl") == records
    assert not list(out.glob(".*.tmp"))


def test_notes_in_any_case_and_every_file_seen_is_counted(crf_dir, tmp_path, caplog):
    notes, out = tmp_path / "notes", tmp_path / "out"
    write_txt(notes / "lower.txt", f"Started {SECRET} 5 mg PO daily.")
    write_txt(notes / "UPPER.TXT", "Heparin 5000 units SC q8h.")
    write_txt(notes / "mixed.Txt", "Aspirin 81 mg PO daily.")
    write_txt(notes / "twin.TXT", "Aspirin 81 mg PO daily.")
    write_txt(notes / "twin.txt", "Heparin 5000 units SC q8h.")  # the same document id as twin.TXT
    write_txt(notes / ".hidden.txt", f"{SECRET} 5 mg")
    write_txt(notes / ".notes.swp", "")
    write_txt(notes / "gold.ANN", "")
    write_txt(notes / "readme.md", "")
    write_txt(notes / "sub" / "deep.txt", "Aspirin 81 mg PO daily.")
    arguments = ["--model_name_or_path", str(crf_dir), "--input_dir", str(notes), "--output_dir", str(out),
                 "--verbose"]

    assert main(arguments) == 1  # twin.txt
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files_seen"] == {"notes": 5, "hidden": 2, "other": 2, "folders": 1,
                                     "named_like_notes_not_regular_files": 0}
    assert summary["notes_annotated"] == 4 and summary["failures_by_kind"] == {"duplicate_name": 1}
    # NAME.ANN beside NAME.TXT (one style per brat pair), NAME.ann otherwise.
    assert sorted(path.name for path in out.iterdir() if path.suffix.lower() == ".ann") == \
           ["UPPER.ANN", "lower.ann", "mixed.ann", "twin.ANN"]
    records = read_jsonl(out / "entities.jsonl")
    assert {r["document_id"] for r in records} == {"lower", "UPPER", "mixed", "twin"}
    assert_ann_matches(notes / "UPPER.TXT", out / "UPPER.ANN", [r for r in records if r["document_id"] == "UPPER"])
    # One INFO line per kind not read, with names (never text); one error for the twin.
    for phrase in ("5 notes", "2 hidden files not read", ".hidden.txt", ".notes.swp", "2 other files not read",
                   "gold.ANN", "readme.md", "1 folders not read", "sub", "twin.txt: skipped", "twin.TXT has the same"):
        assert phrase in caplog.text
    assert SECRET not in caplog.text + json.dumps(summary)

    # A plain re-run finds every .ann, whatever its case.
    assert main(arguments) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["notes_annotated"] == 0 and summary["notes_already_annotated"] == 4
    assert read_jsonl(out / "entities.jsonl") == records


@pytest.mark.parametrize("note_mode", [0o600, 0o644], ids=oct)
def test_outputs_are_no_more_readable_than_their_notes(crf_dir, tmp_path, note_mode):
    notes, out = tmp_path / "notes", tmp_path / "out"
    previous_umask = os.umask(0o022)
    try:
        for name, text in (("a", "Aspirin 81 mg PO daily."), ("b", "Heparin 5000 units SC q8h.")):
            write_txt(notes / f"{name}.txt", text).chmod(note_mode)
        arguments = ["--model_name_or_path", str(crf_dir), "--input_dir", str(notes), "--output_dir", str(out),
                     "--word_predictions"]
        assert main(arguments) == 0

        def mode(name):
            return (out / name).stat().st_mode & 0o777

        for name in ("a.ann", "b.ann", "entities.jsonl", "predictions.jsonl"):
            assert mode(name) == note_mode, name  # 0600 notes: group and others cannot read what holds their text
        assert mode("summary.json") == 0o644  # counts only: the usual mode
        assert read_jsonl(out / "entities.jsonl")

        # A private note joins a readable folder: its .ann and the JSONL files (which now hold its text) close up.
        write_txt(notes / "c.txt", "Metoprolol 25 mg PO BID.").chmod(0o600)
        assert main(arguments) == 0
        assert mode("c.ann") == 0o600 and mode("a.ann") == note_mode
        assert mode("entities.jsonl") == mode("predictions.jsonl") == 0o600
        assert "c" in {r["document_id"] for r in read_jsonl(out / "entities.jsonl")}
    finally:
        os.umask(previous_umask)


def test_folder_without_notes_is_an_error(crf_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    write_txt(tmp_path / "empty" / "note.ann", "")
    def run(input_dir):
        return main(["--model_name_or_path", str(crf_dir), "--input_dir", str(input_dir), "--output_dir", str(tmp_path / "o")])

    assert run(tmp_path / "empty") == 2  # a usage error: the run cannot start
    assert "no .txt files in" in capsys.readouterr().err  # note.ann: 1 other
    assert run(tmp_path / "nope") == 2
    assert "is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_interrupted_run_leaves_each_ann_with_its_records(crf_dir, tmp_path, monkeypatch, capsys):
    """Ctrl-C after the second note's records are written but before its .ann: n0 is complete, n1 is not there."""
    notes, out = tmp_path / "notes", tmp_path / "out"
    for i, note in enumerate(generate_notes(3, seed=11, split="stop")):
        write_txt(notes / f"n{i}.txt", note.text)
    arguments = ["--model_name_or_path", str(crf_dir), "--input_dir", str(notes), "--output_dir", str(out),
                 "--words_per_group", "1", "--word_predictions"]  # one note per group
    written = []
    real_write = write_brat_ann

    def write_then_stop(path, *args, **kwargs):
        if written:
            raise KeyboardInterrupt
        written.append(path)
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(folder_annotation, "write_brat_ann", write_then_stop)
    assert main(arguments) == 130
    assert "run the same command again" in capsys.readouterr().err
    # n0 complete; n1's records (written before the interruption) dropped with no .ann; no summary or temp files.
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_FILE, "entities.jsonl", "n0.ann", "predictions.jsonl"]
    records = read_jsonl(out / "entities.jsonl")
    assert records and {r["document_id"] for r in records} == {"n0"}
    assert {r["document_id"] for r in read_jsonl(out / "predictions.jsonl")} == {"n0"}
    assert_ann_matches(notes / "n0.txt", out / "n0.ann", records)

    # The same command again annotates exactly the rest.
    monkeypatch.setattr(folder_annotation, "write_brat_ann", real_write)
    assert main(arguments) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["notes_annotated"] == 2 and summary["notes_already_annotated"] == 1
    records = read_jsonl(out / "entities.jsonl")
    for i in range(3):
        assert_ann_matches(notes / f"n{i}.txt", out / f"n{i}.ann", [r for r in records if r["document_id"] == f"n{i}"])
    assert len({(r["document_id"], r["id"]) for r in records}) == len(records)
    assert not list(out.glob(".*.tmp"))


def test_help_and_argument_checks(capsys, crf_dir, tmp_path):
    help_text = annotate_notes.build_parser().format_help()
    for phrase in ("marginal", "over their words", "--min_confidence", "--stride", "--trust_remote_code",
                   "--model_name_or_path", "--words_per_group", "interruption", "--relations {model,rule,auto}",
                   "validation notes", "nearest drug"):
        assert phrase in " ".join(help_text.split())
    write_txt(tmp_path / "n" / "a.txt", "Aspirin")
    arguments = ["--model_name_or_path", str(crf_dir), "--input_dir", str(tmp_path / "n"), "--output_dir",
                 str(tmp_path / "o")]
    assert main([*arguments, "--bf16", "--device", "cpu"]) == 2  # a usage error: one line, exit status 2
    assert "--bf16 needs a GPU" in capsys.readouterr().err
    assert main([*arguments, "--words_per_group", "0"]) == 2
    assert "--words_per_group must be at least 1" in capsys.readouterr().err
    # Settings are checked where they are used, with one clear line and exit status 1; nothing is written.
    for bad, message in ((["--min_confidence", "2"], "min_confidence must be in [0, 1]"),
                         (["--batch_size", "0"], "batch_size must be at least 1"),
                         (["--stride", "-1"], "stride must be at least 0"),
                         (["--max_seq_length", "16", "--stride", "14"], "stride must be at least 0 and smaller")):
        assert main([*arguments, *bad]) == 1
        assert message in capsys.readouterr().err
    assert not (tmp_path / "o" / "entities.jsonl").exists() and not (tmp_path / "o" / "a.ann").exists()
    model, tokenizer = load_model_and_tokenizer(str(crf_dir))
    assert max_input_length(model, tokenizer, 512) == 128  # the tiny encoder's positions
    with pytest.raises(ValueError, match="stride"):
        predict_notes(model, tokenizer, {"a": "Aspirin"}, max_seq_length=16, stride=14)


# ---------------------------------------------------------------------------------------------
# Relations: --relations model|rule|auto (the relation model, the nearest-drug rule, or what won on validation)
# ---------------------------------------------------------------------------------------------

RULE_WON = {"model": 0.795, "rule": 0.8123, "every_candidate": 0.6}
MODEL_WON = {"model": 0.9071, "rule": 0.8123, "every_candidate": 0.6}
CLI_ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def save_tiny_relation_model(folder: Path, tokenizer_dir: Path, features=("rule", "between")) -> Path:
    """A stock sequence classifier as run_re.py saves one (markers and feature tokens in its tokenizer, its settings
    in config.json), whose classifier ignores the input: every candidate is ``linked`` with probability sigmoid(1),
    so the model links every candidate pair at its threshold 0.5, which the nearest-drug rule does not."""
    from transformers import AutoModelForSequenceClassification

    from clinical_ner_crf.relations import FEATURE_TOKENS, LABELS, MARKER_TOKENS
    from clinical_ner_crf.windows import load_tokenizer

    tokenizer = load_tokenizer(str(tokenizer_dir))
    tokenizer.add_special_tokens({"additional_special_tokens": list(MARKER_TOKENS) + list(FEATURE_TOKENS)},
                                 replace_extra_special_tokens=False)
    torch.manual_seed(0)
    config = tiny_encoder_config("distilbert", vocab_size=len(tokenizer), num_labels=2,
                                 id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)},
                                 pad_token_id=tokenizer.pad_token_id)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, 1.0]))
    model.config.update({"relation_sentence_window": 1, "relation_max_seq_length": 64,
                         "relation_link_threshold": 0.5, "relation_input_features": list(features)})
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def relation_model_variant(base: Path, folder: Path, **config_changes) -> Path:
    """A copy of ``base`` whose config.json has ``config_changes`` (None: the key removed)."""
    shutil.copytree(base, folder)
    config = json.loads((folder / "config.json").read_text())
    for key, value in config_changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


@pytest.fixture(scope="module")
def relation_models(crf_dir, tmp_path_factory):
    """The tiny relation model as run_re.py writes it when the rule won on validation, when the model won, and as an
    earlier version wrote it (no validation scores), and one whose sentence window is 0."""
    root = tmp_path_factory.mktemp("relation_models")
    base = save_tiny_relation_model(root / "base", crf_dir)
    return {
        "rule": relation_model_variant(base, root / "rule_won", relation_validation_scores=RULE_WON,
                                       relation_preferred="rule"),
        "model": relation_model_variant(base, root / "model_won", relation_validation_scores=MODEL_WON,
                                        relation_preferred="model"),
        "unscored": base,
        "window0": relation_model_variant(base, root / "window0", relation_sentence_window=0,
                                          relation_validation_scores=RULE_WON, relation_preferred="rule"),
    }


@pytest.fixture(scope="module")
def relation_notes(tmp_path_factory):
    """Notes with several drugs per sentence (where the rule and linking every candidate differ), one secret word."""
    folder = tmp_path_factory.mktemp("relation_notes")
    for note in generate_notes(3, seed=99, split="relations"):
        write_txt(folder / f"{note.doc_id}.txt", note.text)
    write_txt(folder / "two_drugs.txt", f"Metoprolol 25 mg PO BID and lisinopril 10 mg PO daily.\n"
                                        f"Started {SECRET} 5 mg PO daily for hypertension; aspirin 81 mg PO daily.")
    return folder


def run_annotate(*arguments) -> subprocess.CompletedProcess:
    """The command line as a user runs it, in a fresh process."""
    return subprocess.run([sys.executable, str(REPO_ROOT / "annotate_notes.py"), *map(str, arguments)], cwd=REPO_ROOT,
                          env=CLI_ENV, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


def note_mentions(out: Path) -> dict:
    """Each annotated note's entities as relations.Mention, with their T ids (from entities.jsonl)."""
    from clinical_ner_crf.relations import Mention

    mentions = {}
    for record in read_jsonl(out / "entities.jsonl"):
        mentions.setdefault(record["document_id"], []).append(
            Mention(record["type"], record["start"], record["end"], record["id"]))
    return mentions


def r_lines(notes: Path, out: Path) -> dict:
    """The R lines of each note's .ann, as (type, attribute id, drug id)."""
    return {txt.stem: {(r.type, r.arg1, r.arg2) for r in read_brat_document(txt, out / f"{txt.stem}.ann").relations}
            for txt in sorted(notes.glob("*.txt"))}


def rule_links(notes: Path, mentions: dict, sentence_window: int = 1) -> dict:
    """What relations.nearest_drug_rule links on the same entities."""
    from clinical_ner_crf.relations import nearest_drug_rule

    links = {}
    for txt in sorted(notes.glob("*.txt")):
        found = mentions.get(txt.stem, [])
        text = txt.read_bytes().decode("utf-8")
        links[txt.stem] = {(c.type, found[c.attribute].id, found[c.drug].id)
                           for c in nearest_drug_rule(text, found, sentence_window)}
    return links


def model_links(notes: Path, mentions: dict, relation_dir: Path) -> dict:
    """What the relation model links on the same entities (its RelationLinker, here), checked to be every candidate
    (the tiny model's classifier ignores its input)."""
    from clinical_ner_crf.relation_linking import RelationLinker
    from clinical_ner_crf.relations import candidate_pairs

    linker = RelationLinker.from_pretrained(str(relation_dir), device="cpu")
    texts = {txt.stem: txt.read_bytes().decode("utf-8") for txt in sorted(notes.glob("*.txt"))}
    links = linker.link_notes({doc: (text, mentions.get(doc, [])) for doc, text in texts.items()})
    result = {}
    for doc, note_links in links.items():
        found = mentions.get(doc, [])
        assert {c for c, _ in note_links} == set(candidate_pairs(texts[doc], found, 1))
        assert all(probability == pytest.approx(1 / (1 + 2.718281828459045 ** -1)) for _, probability in note_links)
        result[doc] = {(c.type, found[c.attribute].id, found[c.drug].id) for c, _ in note_links}
    return result


def assert_medications_match(out: Path, links: dict, confidence: float) -> None:
    """medications.jsonl holds the same links as the R lines, each with the linker's confidence."""
    records = read_jsonl(out / "medications.jsonl")
    for doc, expected in links.items():
        assert {(a["relation"], a["id"], r["id"]) for r in records if r["document_id"] == doc
                for a in r["attributes"]} == expected
    assert all(a["relation_confidence"] == pytest.approx(confidence, abs=1e-4)
               for r in records for a in r["attributes"])


@pytest.mark.slow
@pytest.mark.parametrize("preferred, num_processes", [("rule", 1), ("model", 1), ("rule", 2)])
def test_relations_auto_links_with_what_won_on_validation(crf_dir, relation_models, relation_notes, tmp_path,
                                                          preferred, num_processes):
    out = tmp_path / "out"
    result = run_annotate("--model_name_or_path", crf_dir, "--relation_model_name_or_path", relation_models[preferred],
                          "--input_dir", relation_notes, "--output_dir", out, "--device", "cpu",
                          "--num_processes", num_processes, "--verbose")  # --relations auto: the default
    assert result.returncode == 0, result.stderr[-3000:]
    mentions = note_mentions(out)
    rule, model = rule_links(relation_notes, mentions), model_links(relation_notes, mentions, relation_models[preferred])
    assert rule != model and sum(map(len, rule.values())) >= 4, "the notes tell the rule from the model"
    assert r_lines(relation_notes, out) == (rule if preferred == "rule" else model)
    assert_medications_match(out, rule if preferred == "rule" else model, 1.0 if preferred == "rule" else 0.7311)

    scores = RULE_WON if preferred == "rule" else MODEL_WON
    other = "model" if preferred == "rule" else "rule"
    reason = (f"auto: on validation the {preferred} scored {scores[preferred]:.4f} strict micro-F1, "
              f"the {other} {scores[other]:.4f}")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["relations_by"] == preferred and summary["relations_choice_reason"] == reason
    assert summary["relations"] == sum(map(len, (rule if preferred == "rule" else model).values()))
    assert summary["settings"]["link_threshold"] == (None if preferred == "rule" else 0.5)
    # Logged once per run (not once per process), with the numbers; never note text.
    logged = [line for line in result.stderr.splitlines() if "Relations: " in line]
    expected = (f"Relations: the nearest-drug rule ({reason}); sentence window 1" if preferred == "rule"
                else f"Relations: the relation model {relation_models[preferred]} ({reason})")
    assert len(logged) == 1 and logged[0].endswith(expected), logged
    assert reason in result.stdout  # the printed summary says it too
    assert SECRET not in result.stderr + result.stdout + json.dumps(summary)


@pytest.mark.slow
def test_relations_auto_without_validation_scores_uses_the_model(crf_dir, relation_models, relation_notes, tmp_path):
    out = tmp_path / "out"
    result = run_annotate("--model_name_or_path", crf_dir, "--relation_model_name_or_path",
                          relation_models["unscored"], "--input_dir", relation_notes, "--output_dir", out,
                          "--device", "cpu", "--relations", "auto", "--verbose")
    assert result.returncode == 0, result.stderr[-3000:]
    mentions = note_mentions(out)
    assert r_lines(relation_notes, out) == model_links(relation_notes, mentions, relation_models["unscored"])
    why = f"no validation scores recorded in {relation_models['unscored']}: using the model"
    assert why in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["relations_by"] == "model" and why in summary["relations_choice_reason"]


@pytest.mark.slow
def test_relations_rule_needs_no_relation_model(crf_dir, relation_notes, tmp_path):
    out = tmp_path / "out"
    result = run_annotate("--model_name_or_path", crf_dir, "--relations", "rule", "--input_dir", relation_notes,
                          "--output_dir", out, "--device", "cpu", "--verbose")
    assert result.returncode == 0, result.stderr[-3000:]
    rule = rule_links(relation_notes, note_mentions(out), sentence_window=1)  # relations.DEFAULT_SENTENCE_WINDOW
    assert r_lines(relation_notes, out) == rule and any(rule.values())
    assert_medications_match(out, rule, 1.0)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["relations_by"], summary["relations_choice_reason"]) == ("rule", "--relations rule")
    assert summary["medication_records"] == sum(r["drug"]["type"] == "Drug" for r in read_jsonl(out / "medications.jsonl"))
    assert "Relations: the nearest-drug rule (--relations rule); sentence window 1" in result.stderr


def test_html_writes_the_review_pages_of_the_folder_and_replaces_them_on_a_rerun(crf_dir, relation_notes, tmp_path,
                                                                                 capsys):
    out = tmp_path / "out"
    arguments = ["--model_name_or_path", str(crf_dir), "--relations", "rule", "--input_dir", str(relation_notes),
                 "--output_dir", str(out), "--device", "cpu", "--html"]
    assert main(arguments) == 0
    assert f"Review pages (they hold note text: never upload them): {out / 'review' / 'index.html'}" in \
        capsys.readouterr().out
    pages = {path.stem: path.read_text(encoding="utf-8") for path in (out / "review").glob("*.html")}
    records = read_jsonl(out / "entities.jsonl")
    assert set(pages) == {path.stem for path in relation_notes.glob("*.txt")} | {"index"}
    for document_id in {record["document_id"] for record in records}:
        ids = {record["id"] for record in records if record["document_id"] == document_id}
        assert ids == set(re.findall(r'data-entity-id="(T\d+)"', pages[document_id]))
    assert 'data-relation-type="Strength-Drug"' in pages["two_drugs"]
    # Again, every note annotated afresh: the pages are replaced with the annotations, never left stale.
    before = (out / "review" / "index.html").stat().st_mtime_ns
    assert main([*arguments, "--overwrite"]) == 0
    assert (out / "review" / "index.html").stat().st_mtime_ns != before
    assert not list(out.glob(".review*")) and not list(tmp_path.glob(".out*"))


@pytest.mark.parametrize("extra, message", [
    (["--relations", "model"], "--relations model needs --relation_model_name_or_path"),
    (["--relations", "rule", "--link_threshold", "0.4", "--relation_model_name_or_path", "MODEL"],
     "--link_threshold is for the relation model"),
])
def test_relations_requests_that_cannot_be_met_are_one_line(crf_dir, relation_models, relation_notes, tmp_path,
                                                            extra, message):
    out = tmp_path / "out"
    extra = [str(relation_models["model"]) if item == "MODEL" else item for item in extra]
    result = run_annotate("--model_name_or_path", crf_dir, "--input_dir", relation_notes, "--output_dir", out,
                          "--device", "cpu", *extra)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith(f"annotate_notes.py: error: {message}")
    assert not out.exists()


@pytest.mark.slow
def test_onnx_backend_links_with_the_rule_without_torch(crf_dir, relation_models, relation_notes, tmp_path):
    """--backend onnx with auto choosing the rule: the rule's links, and torch never imported (the relation model's
    config is read, its weights are not)."""

    onnx_dir = tmp_path / "onnx"
    assert export_onnx.main(["--model_name_or_path", str(crf_dir), "--output_dir", str(onnx_dir)]) == 0
    out = tmp_path / "out"
    argv = ["--model_name_or_path", str(onnx_dir), "--backend", "onnx", "--relation_model_name_or_path",
            str(relation_models["rule"]), "--input_dir", str(relation_notes), "--output_dir", str(out)]
    # As if torch were not installed (test_parallel_annotation's way): importing it fails, transformers sees none.
    script = "import sys\nsys.modules['torch'] = None\nimport annotate_notes\nsys.exit(annotate_notes.main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", script, *argv], cwd=REPO_ROOT, env=CLI_ENV, capture_output=True,
                            text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "PyTorch was not found" in result.stderr  # transformers saw no torch
    rule = rule_links(relation_notes, note_mentions(out))
    assert r_lines(relation_notes, out) == rule and any(rule.values())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["relations_by"] == "rule" and summary["settings"]["backend"] == "onnx"


# ---------------------------------------------------------------------------------------------
# --backend onnx: a note's entities do not depend on its batch, order or process (issue 30); a Hub id
# ---------------------------------------------------------------------------------------------

ONNX_GRAPHS = ("model.onnx", "model.int8.onnx")  # fp32; static int8 (its scales fixed at export)
ONNX_SETTINGS = ["--max_seq_length", "64", "--word_predictions", "--words_per_group", "1000"]
# Outputs keep 6 decimals: two confidences within 1e-6 of each other can round 1e-6 apart.
WITHIN = 1e-6 + 1e-12


@pytest.fixture(scope="module")
def determinism_notes(tmp_path_factory):
    """Twelve synthetic notes of unequal length, every third one run into a single sentence (semicolons for periods
    and line breaks) long enough to need several windows of 64 subwords, and a one-line note."""
    folder = tmp_path_factory.mktemp("determinism_notes")
    for i, note in enumerate(generate_notes(11, seed=17, split="determinism")):
        text = note.text[:400 + 150 * i]
        if i % 3 == 0:
            text = " ".join(text.replace(". ", "; ").replace(".\n", "; ").split())
        write_txt(folder / f"note{i:02d}.txt", text)
    write_txt(folder / "note11.txt", "Aspirin 81 mg PO daily.")
    return folder


@pytest.fixture(scope="module")
def onnx_exports(crf_dir, tmp_path_factory):
    """The tiny CRF exported once with its fp32 graph and a static int8 graph calibrated on notes of their own."""
    root = tmp_path_factory.mktemp("onnx_exports")
    for note in generate_notes(6, seed=23, split="calibration"):
        write_txt(root / "calibration" / f"{note.doc_id}.txt", note.text)
    assert export_onnx.main(["--model_name_or_path", str(crf_dir), "--output_dir", str(root / "static"), "--quantize",
                             "int8", "--quantization_method", "static", "--calibration_dir",
                             str(root / "calibration")]) == 0
    return root / "static"


def onnx_outputs(out: Path, document_id=lambda stem: stem) -> dict:
    """Each note's entities (type, start, end, confidence, word confidences) and sentences (word tags and
    confidences) as annotate_notes.py wrote them, by ``document_id(file stem)``."""
    notes = {}
    for record in read_jsonl(out / "entities.jsonl"):
        notes.setdefault(document_id(record["document_id"]), {"entities": [], "sentences": []})["entities"].append(
            (record["type"], record["start"], record["end"], [record["confidence"], *record["word_confidences"]]))
    for row in sorted(read_jsonl(out / "predictions.jsonl"), key=lambda row: row["sentence_index"]):
        notes.setdefault(document_id(row["document_id"]), {"entities": [], "sentences": []})["sentences"].append(
            (row["token_starts"], row["pred_tags"], row["confidences"]))
    return notes


def annotate_with_onnx(export: Path, graph: str, notes: Path, out: Path, *extra, document_id=lambda stem: stem
                       ) -> dict:
    """annotate_notes.py --backend onnx in this process; :func:`onnx_outputs` of the run."""
    assert main(["--model_name_or_path", str(export), "--backend", "onnx", "--onnx_model_file", graph, "--input_dir",
                 str(notes), "--output_dir", str(out), *ONNX_SETTINGS, *extra]) == 0
    return onnx_outputs(out, document_id)


def confidence_difference(got: dict, expected: dict) -> float:
    """The largest confidence difference between two runs' outputs, once every entity (type, start, end) and every
    word tag is checked to be the same."""
    assert got.keys() == expected.keys()
    largest = 0.0
    for document_id, note in expected.items():
        other = got[document_id]
        assert [entity[:3] for entity in other["entities"]] == [entity[:3] for entity in note["entities"]], document_id
        assert [sentence[:2] for sentence in other["sentences"]] == [sentence[:2] for sentence in note["sentences"]]
        pairs = [pair for a, b in zip(other["entities"], note["entities"]) for pair in zip(a[3], b[3])]
        pairs += [pair for a, b in zip(other["sentences"], note["sentences"]) for pair in zip(a[2], b[2])]
        largest = max([largest, *(abs(a - b) for a, b in pairs)])
    return largest


WITHOUT_TORCH = """\
import sys
sys.modules["torch"] = None  # as if torch were not installed: importing it fails, transformers sees none
sys.path.insert(0, {repo!r})
import annotate_notes

if __name__ == "__main__":
    sys.exit(annotate_notes.main())
"""


def run_annotate_without_torch(folder: Path, *arguments, **env) -> subprocess.CompletedProcess:
    """The command line in a fresh process where torch cannot be imported, as where it is not installed: --backend
    onnx needs none (and starts in a second rather than ten). A script file, so that the processes --num_processes
    spawns, which import it again, hide torch too."""
    script = folder / "annotate_without_torch.py"
    script.write_text(WITHOUT_TORCH.format(repo=str(REPO_ROOT)))
    return subprocess.run([sys.executable, str(script), *map(str, arguments)], cwd=REPO_ROOT, env={**CLI_ENV, **env},
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def onnx_batched(onnx_exports, determinism_notes, tmp_path_factory):
    """Each graph's run with --batch_size 32, the run every other is compared with."""
    root = tmp_path_factory.mktemp("onnx_batched")
    return {graph: annotate_with_onnx(onnx_exports, graph, determinism_notes, root / graph, "--batch_size", "32")
            for graph in ONNX_GRAPHS}


@pytest.mark.parametrize("graph", ONNX_GRAPHS)
def test_onnx_entities_do_not_depend_on_the_batch_or_the_order(onnx_exports, determinism_notes, onnx_batched,
                                                               tmp_path, graph):
    """Issue 30, fp32 and static int8: every note's entities (type, offsets) and word tags are the same, and every
    confidence within 1e-6, with its windows in batches of 32, each window alone (--batch_size 1), and the notes in
    reverse order (files renamed to sort backwards: other neighbours in each batch and group)."""
    batched = onnx_batched[graph]
    alone = annotate_with_onnx(onnx_exports, graph, determinism_notes, tmp_path / "alone", "--batch_size", "1")
    reversed_notes = tmp_path / "reversed_notes"
    names = sorted(path.name for path in determinism_notes.glob("*.txt"))
    for rank, name in enumerate(reversed(names)):
        write_txt(reversed_notes / f"{rank:02d}_{name}", (determinism_notes / name).read_text(encoding="utf-8"))
    in_reverse = annotate_with_onnx(onnx_exports, graph, reversed_notes, tmp_path / "reversed",
                                    document_id=lambda stem: stem.split("_", 1)[1])

    assert confidence_difference(alone, batched) <= WITHIN
    assert confidence_difference(in_reverse, batched) <= WITHIN
    # Not vacuous: entities of several types, long sentences in several windows, each graph's own scores.
    summary = json.loads((tmp_path / "reversed" / "summary.json").read_text())
    assert summary["entities"] > 50 and len(summary["entities_by_type"]) >= 5 and summary["windowed_sentences"] >= 3
    assert confidence_difference(onnx_batched[ONNX_GRAPHS[1]], onnx_batched[ONNX_GRAPHS[0]]) > 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("graph", ONNX_GRAPHS)
def test_onnx_entities_do_not_depend_on_the_process(onnx_exports, determinism_notes, onnx_batched, tmp_path, graph):
    """Issue 30, fp32 and static int8: under --num_processes 2 (other notes beside each note, and half the cores'
    onnxruntime threads in each process) every note's entities and confidences are those of one process."""
    out = tmp_path / "out"
    result = run_annotate_without_torch(tmp_path, "--model_name_or_path", onnx_exports, "--backend", "onnx",
                                        "--onnx_model_file", graph, "--input_dir", determinism_notes, "--output_dir",
                                        out, *ONNX_SETTINGS, "--num_processes", 2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["settings"]["num_processes"] == 2
    assert confidence_difference(onnx_outputs(out), onnx_batched[graph]) <= WITHIN


def test_dynamic_int8_depends_on_the_batch(crf_dir, determinism_notes, tmp_path):
    """The control that shows the tests above can fail: dynamic int8 scales activations by each batch's range, so a
    window alone and in a batch of 32 score differently."""
    export = tmp_path / "dynamic"
    assert export_onnx.main(["--model_name_or_path", str(crf_dir), "--output_dir", str(export), "--quantize", "int8",
                             "--quantization_method", "dynamic"]) == 0
    runs = [annotate_with_onnx(export, "model.int8.onnx", determinism_notes, tmp_path / f"batch{size}",
                               "--batch_size", str(size)) for size in (1, 32)]
    with pytest.raises(AssertionError):  # other entities or tags,
        assert confidence_difference(*runs) <= WITHIN  # or the same ones with other confidences


HUB_REPO_ID = "someone/clinical-ner-onnx"


@pytest.fixture(scope="module")
def hub_cache_with_fp32_export(onnx_exports, tmp_path_factory):
    """A Hub cache holding the export as downloaded from the repository it was uploaded to, fp32 graph only."""
    cache = tmp_path_factory.mktemp("hub_cache")
    cache_as_hub_download(onnx_exports, cache, HUB_REPO_ID, names=set(os.listdir(onnx_exports)) - {"model.int8.onnx"})
    return cache


def test_onnx_backend_runs_a_hub_id_without_torch(hub_cache_with_fp32_export, determinism_notes, onnx_batched,
                                                  tmp_path):
    """--backend onnx --model_name_or_path ORG/NAME, offline from the Hub cache, as a user runs it with torch not
    installed: the model sources check passes (a cached Hub id), and every note gets the entities and confidences of
    the export folder itself."""
    out = tmp_path / "out"
    result = run_annotate_without_torch(tmp_path, "--model_name_or_path", HUB_REPO_ID, "--backend", "onnx",
                                        "--input_dir", determinism_notes, "--output_dir", out, *ONNX_SETTINGS,
                                        HF_HUB_CACHE=str(hub_cache_with_fp32_export))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "PyTorch was not found" in result.stderr  # transformers saw no torch
    assert confidence_difference(onnx_outputs(out), onnx_batched["model.onnx"]) <= WITHIN


def test_onnx_backend_a_hub_id_without_the_graph_asked_for_is_one_line(hub_cache_with_fp32_export, determinism_notes,
                                                                      tmp_path, monkeypatch, capsys):
    """--onnx_model_file model.int8.onnx of a repository (here: its cached snapshot) with only model.onnx: one line
    naming the repository and the file, and saying how to make the int8 graph; exit status 1, no folder left."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache_with_fp32_export))
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["--model_name_or_path", HUB_REPO_ID, "--backend", "onnx", "--onnx_model_file", "model.int8.onnx",
                 "--input_dir", str(determinism_notes), "--output_dir", str(out)]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip() and " - INFO - " not in line]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"annotate_notes.py: error: {HUB_REPO_ID} (a Hub repository): no model.int8.onnx in "
                               "its local cache")
    assert "export_onnx.py --model_name_or_path MODEL --output_dir FOLDER --quantize int8 --calibration_dir NOTES" \
        in lines[0]
    assert not out.exists()
