"""PHEE events -> n2c2 relations (bench/phee_relations.py) on the real data (skipped when it is absent), and the
relation benchmark (bench/relation_bench.py): its helpers, and its smoke run on synthetic notes (slow).

Nothing here prints corpus text: documents are named by id, arguments by type and offsets.
"""

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from clinical_ner_crf.brat import read_brat_document, read_brat_folder
from clinical_ner_crf.documents import BratDocument, BratEntity, BratRelation
from clinical_ner_crf.label_maps import load_label_map
from clinical_ner_crf.n2c2_scoring import score_entities
from clinical_ner_crf.tagging import N2C2_RELATION_TYPES
from conftest import command

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "bench"))

import phee_relations  # noqa: E402
import relation_bench  # noqa: E402

prepare_n2c2 = command("prepare_n2c2")  # the command, called in-process as from its command line

SPLITS = ("train", "dev", "test")


@pytest.fixture(scope="module")
def phee_data(shared_data_dir):
    if not phee_relations.phee_available(shared_data_dir):
        pytest.skip("shared PHEE data not present")
    return shared_data_dir


@pytest.fixture(scope="module")
def converted(phee_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("phee_relations")
    summary = phee_relations.convert(phee_data, root / "converted", root / "counts.json")
    return root / "converted", summary, root / "counts.json"


def relations_of(folder: Path, doc_id: str) -> list[tuple]:
    """A converted document's relations as (type, (attribute type, start, end), (drug type, start, end))."""
    document = read_brat_document(folder / f"{doc_id}.txt")
    entities = {e.id: (e.type, e.start, e.end) for e in document.entities}
    return sorted((r.type, entities[r.arg1], entities[r.arg2]) for r in document.relations)


def test_hand_checked_documents(converted):
    folder = converted[0]
    # Two adverse events, each with its own Treatment: a dosage and an effect per event, the same drug span in both
    # (the brat file holds two copies of it: both are written, the links go to the first).
    assert relations_of(folder / "train", "10589077_3") == sorted([
        ("Dosage-Drug", ("Dosage", 39, 48), ("Drug", 52, 54)),
        ("Dosage-Drug", ("Dosage", 76, 88), ("Drug", 52, 54)),
        ("ADE-Drug", ("ADE", 0, 19), ("Drug", 52, 54)),
        ("ADE-Drug", ("ADE", 110, 188), ("Drug", 52, 54)),
    ])
    document = read_brat_document(folder / "train" / "10589077_3.txt")
    assert [(e.start, e.end) for e in document.entities if e.type == "Drug"] == [(52, 54), (52, 54)]
    # An adverse event with an indication: Reason-Drug and ADE-Drug.
    assert relations_of(folder / "train", "8908396_3") == sorted([
        ("Reason-Drug", ("Reason", 189, 197), ("Drug", 154, 161)),
        ("ADE-Drug", ("ADE", 170, 183), ("Drug", 154, 161)),
    ])
    # A potential therapeutic event with two drugs: dosage, route and both indications go to each drug; its effect
    # (an ADE *entity* under the NER label map) is therapeutic and gets no relation.
    drugs = [("Drug", 188, 198), ("Drug", 222, 234)]
    attributes = [("Dosage-Drug", ("Dosage", 156, 165)), ("Route-Drug", ("Route", 171, 182)),
                  ("Reason-Drug", ("Reason", 326, 354)), ("Reason-Drug", ("Reason", 364, 403))]
    assert relations_of(folder / "test", "11283125_2") == sorted(
        (kind, attribute, drug) for kind, attribute in attributes for drug in drugs)
    document = read_brat_document(folder / "test" / "11283125_2.txt")
    assert ("ADE", 244, 293) in {(e.type, e.start, e.end) for e in document.entities}


def count_source_arguments(phee_data: Path, split: str) -> Counter:
    """Argument instances straight from the JSON, by the converter's source names (an independent count)."""
    counts: Counter = Counter()
    with open(phee_data / "phee" / "json" / f"{split}.json", encoding="utf-8") as handle:
        for line in handle:
            for event in json.loads(line)["annotations"][0]["events"]:
                for key, argument in (event.get("Treatment") or {}).items():
                    if key == "Combination":
                        counts["Treatment.Combination"] += len(argument)
                    elif key not in ("text", "start", "entity_id", "Drug"):
                        counts[f"Treatment.{key}"] += len(argument["start"])
                if event.get("Effect"):
                    counts[f"Effect.{event['event_type']}"] += len(event["Effect"]["start"])
                for key, argument in (event.get("Subject") or {}).items():
                    if key not in ("text", "start", "entity_id"):
                        counts[f"Subject.{key}"] += len(argument["start"])
    return counts


def test_counts_add_up(converted, phee_data):
    _, summary, counts_path = converted
    assert json.loads(counts_path.read_text()) == json.loads(json.dumps(summary))
    for split in SPLITS:
        row = summary["splits"][split]
        expected = count_source_arguments(phee_data, split)
        assert {source: r["source"] for source, r in row["arguments_by_source"].items()} == dict(expected)
        # Every source argument is mapped or unmapped for one reason.
        assert row["source_arguments"] == sum(expected.values()) == row["mapped_arguments"] + row["unmapped_arguments"]
        assert row["unmapped_arguments"] == sum(row["unmapped_by_reason"].values())
        for source, r in row["arguments_by_source"].items():
            assert r["source"] == r["mapped"] + sum(r["unmapped"].values()), source
        # The rules: therapeutic effects, Time_elapsed, Combination and Subject arguments give no relation.
        assert row["unmapped_by_reason"]["therapeutic_effect"] == expected["Effect.Potential_therapeutic_event"]
        assert row["unmapped_by_reason"]["no_n2c2_type"] == expected["Treatment.Time_elapsed"]
        assert row["unmapped_by_reason"]["combination_sub_event"] == expected["Treatment.Combination"]
        assert row["unmapped_by_reason"]["subject_argument"] == sum(
            n for source, n in expected.items() if source.startswith("Subject."))
        assert row["relations_total"] == sum(row["relations"].values()) >= row["mapped_arguments"]
        assert set(row["relations"]) <= set(N2C2_RELATION_TYPES) - {"Strength-Drug", "Form-Drug"}
        assert row["drug_instances"]["no_matching_entity"] == 0  # every JSON drug is a label-mapped brat entity
        assert row["documents_text_differs_from_json"] == 0 and row["json_without_brat"] == 0
        for share in ("multi_drug_share", "is_mult_event_share", "multi_event_share"):
            assert 0.0 < row[share] < 0.5
        assert row["multi_event_share"] <= row["is_mult_event_share"]


def test_written_folder_round_trips(converted, phee_data):
    folder, summary, counts_path = converted
    label_map = load_label_map(phee_relations.LABEL_MAP_PATH)
    for split in SPLITS:
        documents, problems = read_brat_folder(folder / split)  # no label map: n2c2 types only
        assert not problems and len(documents) == summary["splits"][split]["documents"]
        assert dict(Counter(r.type for d in documents for r in d.relations)) == summary["splits"][split]["relations"]
        assert summary["round_trip"][split] == {"documents": len(documents), "ok": True,
                                                "relations": summary["splits"][split]["relations_total"]}
        # The entities are exactly those the NER benchmark reads (type, fragments, order), the text too.
        source = phee_data / "phee" / "brat" / split
        for document in documents[:300]:
            original = read_brat_document(source / f"{document.doc_id}.txt", label_map=label_map)
            assert document.text == original.text
            assert [(e.type, e.spans) for e in document.entities] == [(e.type, e.spans) for e in original.entities]
    # The counts are numbers and names only: no sentence of the test split is in them.
    dump = counts_path.read_text()
    for document in read_brat_folder(folder / "test")[0]:
        assert document.text.strip() not in dump
        assert not any(len(e.text) >= 12 and e.text in dump for e in document.entities)


def test_converted_dir_reuses_the_folder_and_skips_without_data(converted, phee_data, tmp_path):
    folder = converted[0]
    marker = folder / phee_relations.MARKER_FILE
    before = marker.stat().st_mtime_ns
    assert phee_relations.converted_dir(phee_data, folder, None) == folder
    assert marker.stat().st_mtime_ns == before  # not converted again
    assert phee_relations.converted_dir(tmp_path / "nothing", tmp_path / "out", None) is None
    assert not (tmp_path / "out").exists()


def test_prepared_converted_folder_is_the_ner_benchmarks_data(converted, phee_data, tmp_path):
    """prepare_n2c2.py reads the converted folder with no label map: the same sentences and tags as the NER
    benchmark's PHEE data, and every converted relation is kept or counted as dropped."""
    import common

    folder, summary, _ = converted
    ours = prepare_n2c2.main(phee_relations.prepare_args(folder) + ["--output_dir", str(tmp_path / "ours")])
    args = [a.format(data=phee_data) for a in common.CORPORA["phee"]["args"]]
    prepare_n2c2.main(args + ["--output_dir", str(tmp_path / "ner")])
    assert relation_bench.ner_data_digest(tmp_path / "ours") == relation_bench.ner_data_digest(tmp_path / "ner")
    for split, converted_split in (("train", "train"), ("validation", "dev"), ("test", "test")):
        relations = ours["relations"][split]
        assert relations["source"] == summary["splits"][converted_split]["relations"]
        dropped = Counter()
        for per_type in relations["dropped"].values():
            dropped.update(per_type)
        assert {t: relations["kept"].get(t, 0) + dropped[t] for t in relations["source"]} == relations["source"]


# ---------------------------------------------------------------------------
# relation_bench helpers (no data needed)
# ---------------------------------------------------------------------------


def test_argument_status_and_relation_losses():
    predicted = [("Drug", 0, 7), ("Strength", 10, 14), ("Route", 20, 22)]
    assert relation_bench.argument_status(("Drug", 0, 7), predicted) == "exact"
    assert relation_bench.argument_status(("Strength", 10, 16), predicted) == "misbounded"
    assert relation_bench.argument_status(("Frequency", 19, 22), predicted) == "wrong_type"
    assert relation_bench.argument_status(("Reason", 30, 40), predicted) == "missed"

    def entity(entity_id, kind, start, end):
        return BratEntity(entity_id, kind, ((start, end),), "", 0)

    text = "x" * 50
    gold = BratDocument("d", text, [entity("T1", "Drug", 0, 7), entity("T2", "Strength", 10, 14),
                                    entity("T3", "Route", 20, 22), entity("T4", "Reason", 30, 40)], relations=[
        BratRelation("R1", "Strength-Drug", "T2", "T1", 0), BratRelation("R2", "Route-Drug", "T3", "T1", 0),
        BratRelation("R3", "Reason-Drug", "T4", "T1", 0)])
    pred = BratDocument("d", text, [entity("T1", "Drug", 0, 7), entity("T2", "Strength", 10, 14),
                                    entity("T3", "Route", 20, 22)], relations=[
        BratRelation("R1", "Strength-Drug", "T2", "T1", 0)])
    losses = relation_bench.relation_losses([gold], [pred])
    assert losses["outcome"] == {"linked": 1, "arguments_found_not_linked": 1, "attribute_missed": 1}
    assert losses["gold_relations"] == 3 and losses["strict_recall_ceiling"] == pytest.approx(2 / 3)
    assert losses["drug_status"]["exact"] == 3 and losses["attribute_status"]["missed"] == 1
    scores = score_entities([gold], [pred])  # the scorer the end-to-end rows use
    assert scores["strict"]["micro"]["tp"] == 3 and scores["strict"]["micro"]["fn"] == 1


def test_queue_order(tmp_path):
    setup = relation_bench.Setup("phee", False, tmp_path / "results", tmp_path / "runs", (42, 43))
    keys = [relation_bench.step_key(setup, step) for step in relation_bench.steps(setup)]
    assert keys == ["phee__data", "phee__rule", "phee__re-minilm__s42", "phee__re-minilm__s43",
                    "phee-relations__minilm-crf__s42__train__f1", "phee__e2e-minilm__s42",
                    "phee-relations__minilm-crf__s43__train__f1", "phee__e2e-minilm__s43"]
    smoke = relation_bench.Setup("smoke", True, tmp_path / "results", tmp_path / "runs", (42,))
    kinds = [step.kind for step in relation_bench.steps(smoke)]
    assert kinds == ["data", "rule", "ner", "re", "e2e"]  # the tiny relation model takes the NER model's tokenizer
    assert relation_bench.result_path(setup, relation_bench.Step("ner", 42)).parent == tmp_path / "results" / "ner"
    assert relation_bench.main(["--list"]) == 0  # lists, starts nothing


@pytest.mark.slow
@pytest.mark.bench_smoke
def test_relation_bench_smoke_runs_the_pipeline(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_SMOKE_DIR", str(tmp_path))
    assert relation_bench.main(["--smoke"]) == 0
    results = tmp_path / "smoke_results" / "relations"
    rule = json.loads((results / "smoke__rule.json").read_text())
    assert 0.5 < rule["test_relation_strict_micro_f1"] <= 1.0  # synthetic notes: the rule does well
    assert rule["test_all_candidates_relation_strict_micro_r"] == pytest.approx(1.0)  # no link beyond candidates
    model = json.loads((results / "smoke__re-tiny__s42.json").read_text())
    assert model["rescored_matches_run"] and model["train_candidates"] > 0
    strict = model["scores"]["strict"]["micro"]
    assert model["test_relation_strict_micro_f1"] == pytest.approx(strict["f1"], abs=1e-9)
    # F1 from the counts, over every gold relation of the test notes (the rule's support: the same notes)
    assert strict["f1"] == pytest.approx(2 * strict["tp"] / (2 * strict["tp"] + strict["fp"] + strict["fn"]))
    assert strict["tp"] + strict["fn"] == rule["scores"]["strict"]["micro"]["support"] > 0
    # A model that learned something beats linking every candidate (measured: 0.97, the rule's 0.97, every
    # candidate 0.85); one that links nothing scores 0, one that links everything the candidates' score.
    assert model["test_relation_strict_micro_f1"] > rule["test_all_candidates_relation_strict_micro_f1"]
    assert set(model["scores"]["lenient"]["per_type"]) <= set(N2C2_RELATION_TYPES)
    ner = json.loads((results / "ner" / "smoke-relations__transformer-crf__s42__train__f1.json").read_text())
    assert ner["smoke"] is True
    e2e = json.loads((results / "smoke__e2e-tiny__s42.json").read_text())
    assert e2e["setting"] == "end_to_end"
    losses = e2e["relation_losses"]
    strict = e2e["scores"]["strict"]["micro"]
    assert e2e["test_e2e_relation_strict_micro_f1"] == strict["f1"] > 0.3  # measured 0.67; nothing found scores 0
    assert strict["f1"] == pytest.approx(2 * strict["tp"] / (2 * strict["tp"] + strict["fp"] + strict["fn"]))
    # A gold relation is found strictly end to end exactly when NER found both arguments exactly and the linker
    # linked them: the losses' own tally, gold relation by gold relation.
    assert strict["tp"] == losses["outcome"]["linked"] and strict["support"] == losses["gold_relations"]
    assert sum(losses["outcome"].values()) == losses["gold_relations"] == e2e["scores"]["num_gold_relations"]
    # Strict end-to-end recall cannot beat the share of gold relations whose two arguments NER found exactly.
    assert e2e["scores"]["strict"]["micro"]["recall"] <= losses["strict_recall_ceiling"] + 1e-9
    assert e2e["cost"]["ner_seconds_per_note"] > 0 and e2e["cost"]["rule_seconds_per_note_on_gold_entities"] >= 0
    assert e2e["against_source_annotations"]["relation"]["strict"]["support"] > 0
    # The models' weights are gone afterwards (predictions and logs stay); the results hold no note text.
    runs = tmp_path / "smoke_runs" / "relations"
    assert not list(runs.rglob("*.safetensors"))
    dump = "".join(path.read_text() for path in results.rglob("*.json"))
    for document in read_brat_folder(tmp_path / "smoke_relations" / "brat" / "test")[0]:
        assert not any(len(e.text) >= 12 and e.text in dump for e in document.entities)

    # bench/report.py's relations section renders these rows (renamed as the PHEE rows would be).
    import report

    renamed = tmp_path / "as_phee"
    renamed.mkdir()
    for name in ("rule", "re-tiny__s42", "e2e-tiny__s42"):
        row = json.loads((results / f"smoke__{name}.json").read_text()) | {"smoke": False}
        (renamed / f"phee__{name.replace('tiny', 'minilm')}.json").write_text(json.dumps(row))
    section = "\n".join(report.relations_section(renamed))
    assert "pending" not in section and "| every candidate linked |" in section
