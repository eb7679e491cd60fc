"""Relations: candidates, the nearest-drug rule, run_re.py end to end, and annotate_notes.py with a relation model."""

import json
import os
import subprocess
import sys

import pytest

from clinical_ner_crf.brat import read_brat_document
from clinical_ner_crf.command_line import UsageError
from clinical_ner_crf.files import MEDICATIONS_FILE, PREDICTIONS_DIRNAME, TEST_RELATIONS_FILE
from clinical_ner_crf.model_cards import CARD_EXAMPLE
from clinical_ner_crf.hub_upload import hub_upload_files
from clinical_ner_crf.n2c2_scoring import score_relations
from clinical_ner_crf.note_annotator import NoteAnnotator
from clinical_ner_crf.relation_linking import RelationLinker
from clinical_ner_crf.relation_training import document_mentions, load_documents, to_brat_documents
from clinical_ner_crf.relations import MARKER_TOKENS, Mention, candidate_recall
from conftest import REPO_ROOT, command


annotate_notes = command("annotate_notes")  # the command, called in-process as from its command line
run_re = command("run_re")  # the command, called in-process as from its command line

NOTE = "Metoprolol 25 mg PO BID and lisinopril 10 mg daily. Stopped lisinopril for a rash.\nTylenol."
#       0         1         2         3         4         5         6         7         8
#       0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567


def mention(entity_type, surface, occurrence=0, mention_id=None):
    start = -1
    for _ in range(occurrence + 1):
        start = NOTE.index(surface, start + 1)
    return Mention(entity_type, start, start + len(surface), mention_id)


MENTIONS = [
    mention("Drug", "Metoprolol", mention_id="T1"), mention("Strength", "25 mg", mention_id="T2"),
    mention("Route", "PO", mention_id="T3"), mention("Frequency", "BID", mention_id="T4"),
    mention("Drug", "lisinopril", mention_id="T5"), mention("Strength", "10 mg", mention_id="T6"),
    mention("Frequency", "daily", mention_id="T7"), mention("Drug", "lisinopril", 1, mention_id="T8"),
    mention("ADE", "rash", mention_id="T9"), mention("Drug", "Tylenol", mention_id="T10"),
]


# ---------------------------------------------------------------------------------------------
# Candidates and the rule (hand-counted)
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# run_re.py end to end, and annotate_notes.py with its model
# ---------------------------------------------------------------------------------------------

TINY_RE_ARGS = [
    "--config_name", "configs/architectures/distilbert-base-cased.json",
    "--config_overrides", "dim=64,n_layers=2,n_heads=2,hidden_dim=128,max_position_embeddings=256",
    "--do_train", "--do_eval", "--do_predict", "--use_cpu", "--report_to", "none", "--seed", "5",
    "--per_device_train_batch_size", "32", "--per_device_eval_batch_size", "128", "--learning_rate", "1e-3",
    "--num_train_epochs", "3", "--logging_steps", "1000", "--disable_tqdm", "true", "--save_strategy", "no",
    "--eval_strategy", "no", "--dataloader_num_workers", "0", "--max_seq_length", "128",
    "--min_train_steps", "0",  # 3 epochs: the rule for small corpora is tested on its own (adapt_epochs)
]


def run(args):
    previous = os.getcwd()
    os.chdir(REPO_ROOT)
    try:
        return run_re.main([str(arg) for arg in args])
    finally:
        os.chdir(previous)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("data") / "synthetic"
    subprocess.run([sys.executable, "prepare_n2c2.py", "--synthetic", "40", "--seed", "11", "--output_dir",
                    str(output_dir)], cwd=REPO_ROOT, check=True, capture_output=True)
    return output_dir


@pytest.fixture(scope="module")
def ner_dir(tmp_path_factory):
    from test_annotate_notes import train_tiny_crf

    output_dir = train_tiny_crf(tmp_path_factory.mktemp("crf"))
    # As run_ner_crf.py --train_tokenizer records it: the tokenizer was learned from the (synthetic) notes.
    (output_dir / "run_info.json").write_text(json.dumps({"vocabulary_from_corpus": True}))
    return output_dir


@pytest.fixture(scope="module")
def relation_run(dataset, ner_dir, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("relations") / "model"
    results = run([*TINY_RE_ARGS, "--tokenizer_name", ner_dir, "--dataset_path", dataset, "--output_dir", output_dir])
    return output_dir, results


@pytest.mark.slow
def test_run_re_learns_links_and_writes_scored_brat_predictions(relation_run, dataset):
    output_dir, results = relation_run
    # Learned: far above linking every candidate (what an untrained model does at threshold 0.5 or nothing).
    assert results["test_relation_strict_micro_f1"] > 0.8, results["test_relation_strict_micro_f1"]
    assert results["test_rule_relation_strict_micro_f1"] > 0.8
    assert set(results["test_candidate_recall"]) >= {"Strength-Drug", "Frequency-Drug", "Reason-Drug"}
    # The written brat predictions, read back and scored by the scorer, give the reported numbers.
    from datasets import load_from_disk

    documents = [row for row in load_from_disk(str(dataset / "documents")) if row["split"] == "test"]
    brat = output_dir / PREDICTIONS_DIRNAME / "brat"
    gold_dir = dataset.parent / "gold"
    gold_dir.mkdir(exist_ok=True)
    gold, predicted = [], []
    for document in documents:
        txt = gold_dir / f"{document['document_id']}.txt"
        txt.write_text(document["text"], encoding="utf-8", newline="")
        predicted.append(read_brat_document(txt, brat / f"{document['document_id']}.ann"))
        gold.append(to_brat_documents([document], None)[0])
    report = score_relations(gold, predicted)
    assert report["strict"]["micro"]["f1"] == pytest.approx(results["test_relation_strict_micro_f1"])
    links = [json.loads(line) for line in (output_dir / PREDICTIONS_DIRNAME / TEST_RELATIONS_FILE).open()]
    assert len(links) == sum(len(doc.relations) for doc in predicted)
    # The model folder loads with stock classes: no custom code, the settings in its config.
    config = json.loads((output_dir / "config.json").read_text())
    assert config["architectures"] == ["DistilBertForSequenceClassification"] and "auto_map" not in config
    assert config["relation_sentence_window"] == 1 and config["relation_max_seq_length"] == 128
    # What a push uploads: no predictions; the card says the vocabulary's origin only through run_info.
    uploaded = hub_upload_files(output_dir)
    assert "README.md" in uploaded and "model.safetensors" in uploaded
    assert not any(name.startswith(PREDICTIONS_DIRNAME) for name in uploaded)
    assert json.loads((output_dir / "run_info.json").read_text())["vocabulary_from_corpus"] is True


@pytest.mark.slow
def test_run_re_keeps_the_best_validation_epoch_and_its_threshold(relation_run, dataset):
    output_dir, results = relation_run
    history = results["validation_history"]
    assert [round(row["epoch"]) for row in history] == [1, 2, 3], "scored after every epoch (selection is the default)"
    best = max(history, key=lambda row: row["relation_strict_micro_f1"])  # the first of equals, as selection keeps
    assert results["selected_epoch"] == best["epoch"] and results["link_threshold"] == best["link_threshold"]
    config = json.loads((output_dir / "config.json").read_text())
    assert config["relation_link_threshold"] == results["link_threshold"]
    assert config["relation_validation_scores"] == {
        "model": round(results["validation_relation_strict_micro_f1"], 6),
        "rule": round(results["validation_rule_relation_strict_micro_f1"], 6),
        "every_candidate": round(results["validation_every_candidate_relation_strict_micro_f1"], 6)}
    assert results["validation_relation_strict_micro_f1"] == pytest.approx(best["relation_strict_micro_f1"])
    assert config["relation_preferred"] == ("model" if config["relation_validation_scores"]["model"] >
                                            config["relation_validation_scores"]["rule"] else "rule")
    # The saved weights are the selected epoch's: re-linking the validation notes gives the recorded score.
    documents = load_documents(str(dataset), "validation")
    linker = RelationLinker.from_pretrained(str(output_dir))
    links = linker.link_notes({d["document_id"]: (d["text"], document_mentions(d)) for d in documents})
    report = score_relations(to_brat_documents(documents, None),
                             to_brat_documents(documents, [links[d["document_id"]] for d in documents]))
    assert report["strict"]["micro"]["f1"] == pytest.approx(best["relation_strict_micro_f1"], abs=1e-9)
    # (the cards' example sentence is the project's own text, not the corpus's)
    card = (output_dir / "README.md").read_text().replace(CARD_EXAMPLE, "")
    assert f"epoch {results['selected_epoch']:g} of 3" in card and "every candidate linked" in card


@pytest.mark.slow
def test_a_model_that_loses_to_the_rule_on_validation_says_so(dataset, ner_dir, tmp_path):
    # Two optimiser steps at a tiny learning rate: a model no better than chance, against a rule near 0.97.
    results = run([*TINY_RE_ARGS, "--tokenizer_name", ner_dir, "--dataset_path", dataset, "--output_dir",
                   tmp_path / "weak", "--max_steps", "2", "--learning_rate", "1e-7", "--do_predict", "false"])
    config = json.loads((tmp_path / "weak" / "config.json").read_text())
    assert results["validation_relation_strict_micro_f1"] < results["validation_rule_relation_strict_micro_f1"]
    assert config["relation_preferred"] == "rule" and results["preferred_on_validation"] == "rule"
    assert "this model did not beat the nearest-drug rule" in (tmp_path / "weak" / "README.md").read_text()


@pytest.mark.slow
def test_training_on_the_validation_notes_selects_nothing_on_them(dataset, ner_dir, tmp_path, caplog):
    # The paper's protocol: select on validation, then retrain on train+validation with the chosen settings.
    with caplog.at_level("WARNING"):
        results = run([*TINY_RE_ARGS, "--tokenizer_name", ner_dir, "--dataset_path", dataset, "--output_dir",
                       tmp_path / "retrained", "--train_split", "train+validation", "--max_steps", "3",
                       "--link_threshold", "0.4", "--do_predict", "false"])
    config = json.loads((tmp_path / "retrained" / "config.json").read_text())
    assert "selected_epoch" not in results and config["relation_link_threshold"] == 0.4
    assert "relation_preferred" not in config and "relation_validation_scores" not in config
    assert "holds the validation notes: no selection" in caplog.text


@pytest.mark.slow
def test_card_holds_no_note_text(relation_run, dataset):
    from datasets import load_from_disk

    output_dir, _ = relation_run
    # (the cards' example sentence is the project's own text, not the corpus's)
    card = (output_dir / "README.md").read_text().replace(CARD_EXAMPLE, "")
    words = [w for row in load_from_disk(str(dataset / "documents")) for w in row["text"].split()]
    four_grams = {" ".join(words[i:i + 4]) for i in range(len(words) - 3)}
    assert not [gram for gram in four_grams if gram in card]
    assert "nearest-drug rule" in card


@pytest.mark.slow
def test_push_of_a_corpus_vocabulary_needs_acknowledging(dataset, ner_dir, tmp_path):
    with pytest.raises(UsageError, match="--push_corpus_vocabulary"):
        run([*TINY_RE_ARGS, "--tokenizer_name", ner_dir, "--dataset_path", dataset, "--output_dir", tmp_path / "x",
             "--push_to_hub"])
    with pytest.raises(UsageError, match="--tokenizer_name"):
        run([*TINY_RE_ARGS, "--dataset_path", dataset, "--output_dir", tmp_path / "y"])


@pytest.mark.slow
def test_annotate_notes_writes_r_lines_and_a_medication_list(relation_run, ner_dir, tmp_path, caplog):
    from clinical_ner_crf.synthetic_n2c2 import generate_notes

    relation_dir, _ = relation_run
    notes = generate_notes(6, seed=99, split="test")
    long_note = "\n\n".join(note.text for note in notes)  # one note longer than many windows
    input_dir = tmp_path / "notes"
    input_dir.mkdir()
    for index, note in enumerate(notes[:3]):
        (input_dir / f"note{index}.txt").write_text(note.text, encoding="utf-8")
    (input_dir / "long.txt").write_text(long_note, encoding="utf-8")
    out = tmp_path / "out"
    assert annotate_notes.main(["--model_name_or_path", str(ner_dir), "--relation_model_name_or_path",
                                str(relation_dir), "--input_dir", str(input_dir), "--output_dir", str(out),
                                "--device", "cpu"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(line) for line in (out / MEDICATIONS_FILE).open()]
    assert summary["relations"] > 0 and summary["medication_records"] == len(records)
    for name in ("note0", "note1", "note2", "long"):
        text = (input_dir / f"{name}.txt").read_text()
        doc = read_brat_document(input_dir / f"{name}.txt", out / f"{name}.ann")
        by_id = {entity.id: entity for entity in doc.entities}
        mine = [r for r in records if r["document_id"] == name]
        assert [r["id"] for r in mine] == [e.id for e in doc.entities if e.type == "Drug"], "one record per drug"
        from_records = {(a["relation"], a["id"], r["id"]) for r in mine for a in r["attributes"]}
        assert from_records == {(rel.type, rel.arg1, rel.arg2) for rel in doc.relations}, "records match R lines"
        for relation in doc.relations:
            assert relation.type == f"{by_id[relation.arg1].type}-Drug" and by_id[relation.arg2].type == "Drug"
        for r in mine:
            for item in [r["drug"], *r["attributes"]]:
                assert text[item["start"]:item["end"]] == item["text"]
    long_records = [r for r in records if r["document_id"] == "long"]
    assert long_records[-1]["drug"]["start"] > len(long_note) - len(notes[-1].text), "tagged to the end"
    # The one-call API gives the command line's records.
    annotator = NoteAnnotator.from_pretrained(str(ner_dir), relation_model_name_or_path=str(relation_dir),
                                              device="cpu")
    api = annotator.medications((input_dir / "note1.txt").read_text())
    cli = [r for r in records if r["document_id"] == "note1"]
    assert [{**r, "document_id": None} for r in api] == [{**r, "document_id": None} for r in cli]
    # Re-annotated without the relation model: the medication records of those notes are stale, and go.
    assert annotate_notes.main(["--model_name_or_path", str(ner_dir), "--input_dir", str(input_dir), "--output_dir",
                                str(out), "--device", "cpu", "--overwrite"]) == 0
    assert (out / MEDICATIONS_FILE).read_text() == ""
    assert not read_brat_document(input_dir / "note1.txt", out / "note1.ann").relations
    assert not any(marker in caplog.text for marker in MARKER_TOKENS)


@pytest.mark.slow
def test_stats_count_the_links_no_candidate_reaches(dataset):
    """stats.json's beyond_candidates is the candidate rule's shortfall on the documents written (the hard cases
    of the synthetic sample: a drug and its strength on two wrapped lines read as two sentences)."""
    from datasets import load_from_disk

    stats = json.loads((dataset / "stats.json").read_text())["relations"]
    for split in ("train", "test"):
        documents = [row for row in load_from_disk(str(dataset / "documents")) if row["split"] == split]
        counts = candidate_recall((d["text"], document_mentions(d), [(r["type"], r["arg1"], r["arg2"])
                                                                        for r in d["relations"]]) for d in documents)
        expected = {t: c["gold"] - c["reached"] for t, c in counts.items() if c["gold"] > c["reached"]}
        assert stats[split]["cases"]["beyond_candidates"] == expected
        assert sum(c["gold"] for c in counts.values()) == sum(stats[split]["kept"].values())
    assert any(stats[split]["cases"]["beyond_candidates"] for split in ("train", "test")), "the case is exercised"


@pytest.mark.parametrize("train_split, extra", [("test", []), ("train+test", []),
                                                ("validation", ["--test_split", "validation"])])
def test_run_re_refuses_to_train_on_the_test_split_unless_allowed(tmp_path, monkeypatch, train_split, extra):
    reached = []
    monkeypatch.setattr(sys.modules["run_re"], "run", lambda *args: reached.append(args))
    data = tmp_path / "data"
    data.mkdir()
    argv = ["--dataset_path", str(data), "--output_dir", str(tmp_path / "out"), "--do_train",
            "--model_name_or_path", str(data), "--train_split", train_split, *extra]
    with pytest.raises(UsageError, match="trains on the test split"):
        run_re.main(argv)
    assert not reached and not (tmp_path / "out").exists()
    run_re.main([*argv, "--allow_test_training"])
    assert len(reached) == 1 and reached[0][1].allow_test_training


@pytest.mark.parametrize("dataset_args", [[], ["--dataset_path", "no_such_dataset"]])
def test_run_re_without_its_dataset_is_one_line(tmp_path, dataset_args):
    """The flag left out, or a folder that is not there: one line and exit status 2 (argparse would print the whole
    usage for a missing required flag), before anything is created."""
    result = subprocess.run([sys.executable, str(REPO_ROOT / "run_re.py"), *dataset_args, "--output_dir",
                             str(tmp_path / "out"), "--do_train", "--model_name_or_path", str(tmp_path)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    expected = ("--dataset_path no_such_dataset does not exist" if dataset_args else "--dataset_path is required")
    assert lines[0].startswith(f"run_re.py: error: {expected}")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_linker_on_gold_entities_gives_the_training_scripts_links(relation_run, dataset):
    """One inference path: annotate_notes' RelationLinker and run_re.py's Trainer.predict agree link for link."""
    from datasets import load_from_disk

    output_dir, _ = relation_run
    linker = RelationLinker.from_pretrained(str(output_dir), device="cpu", batch_size=7)
    written = {(r["document_id"], r["attribute"], r["drug"]) for r in
               map(json.loads, (output_dir / PREDICTIONS_DIRNAME / TEST_RELATIONS_FILE).open())}
    documents = [row for row in load_from_disk(str(dataset / "documents")) if row["split"] == "test"]
    linked = set()
    for document in documents:
        mentions = document_mentions(document)
        links = linker.link_notes({document["document_id"]: (document["text"], mentions)})[document["document_id"]]
        # link_notes renumbers ids T1.. in entity order; map back to the document's ids.
        linked |= {(document["document_id"], mentions[c.attribute].id, mentions[c.drug].id) for c, _ in links}
    assert linked == written and written


@pytest.mark.slow
def test_a_token_classification_model_is_not_a_relation_model(ner_dir):
    with pytest.raises(ValueError, match="not a run_re.py relation model"):
        NoteAnnotator.from_pretrained(str(ner_dir), relation_model_name_or_path=str(ner_dir), device="cpu")
    with pytest.raises(ValueError, match="no relation model"):
        NoteAnnotator.from_pretrained(str(ner_dir), device="cpu").medications("Aspirin 81 mg daily.")
