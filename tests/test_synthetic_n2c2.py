"""synthetic_n2c2.py: deterministic, clearly marked, n2c2-like notes that read back through the brat reader."""

import json
import re
from collections import Counter

import pytest

import corpus_io
import prepare_n2c2 as p
import tagging
from synthetic_n2c2 import (DRUGS, FREQUENCIES, ROUTE_VARIANTS, SYNTHETIC_HEADER, TOXICITY_DRUGS, _vocabulary,
                            generate_notes, write_notes, write_synthetic_corpus)


@pytest.fixture(scope="module")
def notes():
    return generate_notes(40, seed=11)


def surfaces(notes, entity_type) -> list[str]:
    """Every mention of a type as written (a wrapped one with its line break as a space)."""
    return [" ".join(note.text[f[0][0]:f[-1][1]].split()) for note in notes for t, f in note.entities
            if t == entity_type]


def case_shares(texts) -> dict[str, float]:
    """Shares of lower case ("metoprolol", "po"), capitalised ("Metoprolol"), ALL CAPS ("METOPROLOL", "PO")."""
    kinds = Counter("lower" if text == text.lower() else "upper" if text == text.upper()
                    else "capitalised" if text[0].isupper() else "mixed" for text in texts)
    return {kind: kinds[kind] / len(texts) for kind in ("lower", "capitalised", "upper", "mixed")}


@pytest.fixture(scope="module")
def converted(notes, tmp_path_factory):
    """The notes written as brat, read back with text validation, and converted."""
    folder = write_notes(notes, tmp_path_factory.mktemp("synthetic") / "train")
    documents, problems = corpus_io.read_brat_folder(folder)
    rows, counts = [], Counter()
    for doc in documents:
        doc_rows, doc_counts = p.document_to_examples(doc, tagging.N2C2_LABELS)
        rows += doc_rows
        counts.update(doc_counts)
    return documents, problems, rows, counts


@pytest.fixture(scope="module")
def relation_counts(converted):
    """Relations as prepare_n2c2.py keeps them, and their hard cases (``p.relation_cases``), over the notes."""
    documents, _, _, _ = converted
    counts = Counter()
    for doc in documents:
        rows, _, kept = p.document_to_examples(doc, tagging.N2C2_LABELS, return_entities=True)
        relations, doc_counts = p.document_relations(doc, kept)
        counts.update(doc_counts)
        counts.update(p.relation_cases(doc.text, [e for i, e in kept.items() if e["id"] == i], relations, rows))
    return counts


def test_deterministic_by_seed_and_split():
    first, again = generate_notes(5, seed=3), generate_notes(5, seed=3)
    assert [(n.doc_id, n.text, n.entities) for n in first] == [(n.doc_id, n.text, n.entities) for n in again]
    assert [n.text for n in generate_notes(5, seed=4)] != [n.text for n in first]
    assert [n.text for n in generate_notes(5, seed=3, split="test")] != [n.text for n in first]
    test_notes, again = generate_notes(5, seed=3, split="test"), generate_notes(5, seed=3, split="test")
    assert [(n.text, n.entities) for n in test_notes] == [(n.text, n.entities) for n in again]


def test_clearly_marked_synthetic(notes):
    for note in notes:
        assert note.text.startswith(SYNTHETIC_HEADER + "\n")
        assert note.doc_id.startswith("synthetic-train-")


def test_brat_round_trip_is_exact(notes, converted):
    documents, problems, _, counts = converted
    assert problems == [] and len(documents) == len(notes)
    for note, doc in zip(notes, documents):
        assert doc.text == note.text
        assert [(e.type, e.spans) for e in doc.entities] == [(t, tuple(f)) for t, f in note.entities]
        index = {entity.id: number for number, entity in enumerate(doc.entities)}
        assert [(r.type, index[r.arg1], index[r.arg2]) for r in doc.relations] == note.relations
    assert sum(len(note.relations) for note in notes) > 1000


def test_every_attribute_is_linked_to_a_drug(notes):
    for note in notes:
        linked = Counter(attribute for _, attribute, _ in note.relations)
        for index, (entity_type, _) in enumerate(note.entities):
            assert (linked[index] > 0) == (entity_type != tagging.DRUG_TYPE), (note.doc_id, index)
        for relation_type, attribute, drug in note.relations:
            assert relation_type == tagging.relation_type(note.entities[attribute][0])
            assert note.entities[drug][0] == tagging.DRUG_TYPE
        assert len(set(note.relations)) == len(note.relations)


def test_the_hard_relation_cases_occur(notes, relation_counts):
    """Several drugs on a list line, an attribute shared by two drugs, a Reason or ADE in another sentence than
    its drug, drugs without attributes; and "digoxin toxicity" loses its ADE-Drug relation to the overlap policy."""
    several = 0
    for note in notes:
        drugs_per_line = Counter(note.text.count("\n", 0, fragments[0][0]) for entity_type, fragments in note.entities
                                 if entity_type == tagging.DRUG_TYPE)
        list_lines = {number for number, line in enumerate(note.text.split("\n")) if re.match(r"\d+\. ", line)}
        several += sum(count > 1 for number, count in drugs_per_line.items() if number in list_lines)
    assert several >= 20
    shared = Counter(note.entities[attribute][0] for note in notes
                     for attribute, links in Counter(a for _, a, _ in note.relations).items() if links == 2)
    assert sum(shared.values()) >= 30 and {"Frequency", "Reason"} <= set(shared), shared
    assert sum(relation_counts["shared_attributes", t] for t in tagging.N2C2_RELATION_TYPES) == sum(shared.values())
    assert relation_counts["across_sentences", "Reason-Drug"] >= 10
    assert relation_counts["across_sentences", "ADE-Drug"] >= 5
    assert relation_counts["drugs_without_attributes", None] >= 20
    without = sum(1 for note in notes for index, (entity_type, _) in enumerate(note.entities)
                  if entity_type == tagging.DRUG_TYPE and index not in {d for _, _, d in note.relations})
    assert without >= 20  # as generated; relation_counts: as prepare_n2c2.py keeps them
    assert relation_counts["argument_dropped", "ADE-Drug"] >= 2
    for relation_type in tagging.N2C2_RELATION_TYPES:
        dropped = sum(relation_counts[reason, relation_type] for reason in p.RELATION_DROP_REASONS)
        assert relation_counts["kept", relation_type] + dropped == relation_counts["source", relation_type] > 0


def test_all_nine_types_multiword_discontinuous_and_overlapping(notes, converted):
    types = Counter(entity_type for note in notes for entity_type, _ in note.entities)
    assert set(types) == set(tagging.N2C2_ENTITY_TYPES)
    assert types["Drug"] > types["Strength"] > types["ADE"] > 0 and types["Duration"] > 0
    documents, _, rows, counts = converted
    entities = [e for doc in documents for e in doc.entities]
    assert sum(len(e.text.split()) > 1 for e in entities) > 0.3 * len(entities)
    discontinuous = [e for e in entities if e.is_discontinuous]
    assert 3 <= len(discontinuous) <= 0.05 * len(entities)
    assert sum(counts[c, t] for c, t in counts if c == "dropped_overlap") >= 2  # drug inside "X toxicity", coordinations
    # Every entity is either a B- tag or counted.
    for entity_type in tagging.N2C2_ENTITY_TYPES:
        dropped = sum(counts[c, entity_type] for c in p.DROP_CATEGORIES)
        assert counts["kept", entity_type] + dropped == counts["source", entity_type]


def test_about_three_quarters_all_o(converted):
    _, _, rows, _ = converted
    assert 0.68 <= p.all_o_share(rows) <= 0.82


def test_learnable_patterns_and_varied_vocabulary(notes):
    def surfaces(entity_type):
        return {note.text[f[0][0]:f[-1][1]] for note in notes for t, f in note.entities if t == entity_type}

    assert len(surfaces("Drug")) >= 60 and len(surfaces("Reason")) >= 40 and len(surfaces("Frequency")) >= 25
    text = "\n".join(note.text for note in notes)
    assert "started on" in text and "developed" in text and "\n1. " in text and "Sig:" in text


def test_case_varies_as_in_real_notes(notes):
    """Drug names, routes and frequencies in lower case and capitalised (or ALL CAPS), as real notes write them."""
    drugs = surfaces(notes, "Drug")
    shares = case_shares(drugs)
    assert shares["lower"] >= 0.3 and shares["capitalised"] >= 0.1 and shares["upper"] > 0.02, shares
    # Only the case changes: every mention is a name of the vocabulary.
    names = {name.lower() for drug in DRUGS for name in drug.names} | set(TOXICITY_DRUGS)
    assert {drug.lower() for drug in drugs} <= names
    # Lower case in running prose and in medication lists, capitalised at a sentence start.
    text = "\n".join(note.text for note in notes)
    lower = [drug for drug in set(drugs) if drug == drug.lower()]
    assert any(f"started on {drug} " in text for drug in lower) and any(f"\n1. {drug} " in text for drug in lower)
    assert any(f". {drug} was " in text or f"\n{drug} was " in text for drug in set(drugs) if drug[0].isupper())

    abbreviations = {variant for variants in ROUTE_VARIANTS.values() for variant in variants if variant.isupper()}
    shares = case_shares([route for route in surfaces(notes, "Route") if route.upper() in abbreviations])
    assert shares["lower"] >= 0.3 and shares["upper"] >= 0.1, shares  # "po" and "PO"
    abbreviations = {frequency for frequency in FREQUENCIES if frequency.isupper() and "(" not in frequency}
    shares = case_shares([written for written in surfaces(notes, "Frequency") if written.upper() in abbreviations])
    assert shares["lower"] >= 0.3 and shares["upper"] >= 0.1, shares  # "bid" and "BID"


def test_held_out_drugs_appear_only_in_test_notes_in_any_case(notes):
    train_drugs, _ = _vocabulary("train")
    seen = {name.lower() for drug in train_drugs for name in drug.names} | set(TOXICITY_DRUGS)
    held_out = {name.lower() for drug in DRUGS if drug not in train_drugs for name in drug.names} - seen
    assert held_out and not {drug.lower() for drug in surfaces(notes, "Drug")} & held_out
    assert {drug.lower() for drug in surfaces(generate_notes(20, seed=11, split="test"), "Drug")} & held_out


def test_write_synthetic_corpus_refuses_to_overwrite(tmp_path):
    folders = write_synthetic_corpus(tmp_path / "brat", 3, 1, seed=2)
    assert sorted(path.name for path in folders["test"].iterdir()) == [
        ".clinical-ner-crf-files", "synthetic-test-0001.ann", "synthetic-test-0001.txt"]  # the manifest: what it wrote
    with pytest.raises(FileExistsError):
        write_synthetic_corpus(tmp_path / "brat", 3, 1, seed=2)
    write_synthetic_corpus(tmp_path / "brat", 2, 1, seed=2, overwrite=True)
    assert len(list(folders["train"].glob("*.txt"))) == 2
    (folders["train"] / "synthetic-mine.txt").write_text("a file of the user's, named like the sample's")
    with pytest.raises(FileExistsError, match="1 files this toolkit did not write"):
        write_synthetic_corpus(tmp_path / "brat", 2, 1, seed=2, overwrite=True)
    assert (folders["train"] / "synthetic-mine.txt").exists()


def test_cli_synthetic_builds_a_marked_dataset(tmp_path):
    from datasets import load_from_disk

    stats = p.main(["--synthetic", "24", "--seed", "5", "--output_dir", str(tmp_path / "data"),
                    "--write_brat", str(tmp_path / "brat")])
    assert stats["synthetic"] is True and stats["input"]["format"] == "synthetic"
    assert json.loads((tmp_path / "data" / "stats.json").read_text())["synthetic"] is True
    assert len(list((tmp_path / "brat" / "train").glob("*.ann"))) == 20
    assert len(list((tmp_path / "brat" / "test").glob("*.txt"))) == 4
    dataset = load_from_disk(str(tmp_path / "data"))
    assert all(doc_id.startswith("synthetic-test-") for doc_id in dataset["test"]["document_id"])
    assert stats["splits"]["validation"]["documents"] == 2 and stats["splits"]["train"]["documents"] == 18
    for split in ("train", "validation"):
        assert abs(stats["downsampling"][split]["all_o_share_after"] - 0.2) <= 0.02
    assert stats["splits"]["test"]["all_o_share"] > 0.6
    for entity_type, source in stats["totals"]["source_entities"].items():
        b_tags = sum(stats["splits"][s]["entities"][entity_type] for s in ("train", "validation", "test"))
        assert b_tags == source - stats["dropped"].get(entity_type, 0)
    # Relations: in documents/ as stats.json counts them, and the hard cases reported.
    from datasets import Dataset

    documents = Dataset.load_from_disk(str(tmp_path / "data" / "documents"))
    for split, relations in stats["relations"].items():
        written = Counter(r["type"] for row in documents if row["split"] == split for r in row["relations"])
        assert dict(written) == relations["kept"] and set(relations["source"]) == set(tagging.N2C2_RELATION_TYPES)
    cases = stats["relations"]["train"]["cases"]
    assert cases["across_sentences"]["Reason-Drug"] > 0 and cases["shared_attributes"]
    assert cases["drugs_without_attributes"] > 0 and cases["lines_with_several_drugs"] > 0
    with pytest.raises(FileExistsError):
        p.main(["--synthetic", "24", "--seed", "5", "--output_dir", str(tmp_path / "fresh"),
                "--write_brat", str(tmp_path / "brat")])
