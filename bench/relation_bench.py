#!/usr/bin/env python
"""Relation benchmark: which drug each attribute belongs to, on PHEE-derived n2c2 relations, resumable.

    .venv/bin/python bench/relation_bench.py --list      # what is done, what is pending
    nohup nice -n 10 .venv/bin/python bench/relation_bench.py > bench/cache/relation_bench.log 2>&1 &
    .venv/bin/python bench/relation_bench.py --max_steps 1 --stop_at 18:00
    .venv/bin/python bench/relation_bench.py --smoke     # about a minute: synthetic notes, tiny models

Data: PHEE's events turned into n2c2-2018 relations by ``bench/phee_relations.py`` (official train / dev /
test split; counts in ``bench/results/relations/phee_conversion.json``), then ``prepare_n2c2.py`` (n2c2 types,
no label map; the nine n2c2 types as tags, as the NER benchmark's PHEE rows) into the git-ignored
``bench/cache/phee_relations_prepared/``. Its NER data is the NER benchmark's PHEE data (the ``data`` step checks
it, sentence for sentence, against ``bench/cache/phee`` when that exists).

Steps, in order (each leaves one JSON under ``bench/results/relations/``, numbers and settings only; a step whose
JSON exists is skipped, so an interrupted queue resumes where it stopped; a step killed half-way restarts from
scratch):

1. ``phee__data``: conversion and preparation; relations kept and dropped by prepare_n2c2's entity policies (an
   argument dropped as an overlapping entity), the hard cases, and the NER-data check.
2. ``phee__rule``: relations on gold entities, the nearest-drug rule (``relations.nearest_drug_rule``, no
   training, deterministic: one row), strict and lenient, micro and per type; candidate recall; seconds per note;
   and, as a second reference, every candidate pair linked (PHEE sentences rarely hold two drugs, so most
   candidates are links: this shows how much there is to learn).
3. ``phee__re-minilm__s{42,43,44}``: ``run_re.py`` fine-tuning the offline MiniLM (``common.minilm_dir()``) as the
   relation classifier (3 epochs, batch 32, lr 5e-5, linear decay, no warm-up, max_seq_length 128, fp32, CPU),
   scored on gold entities: strict and lenient, micro and per type (re-scored from its predictions), the same
   rule on the same notes, candidate recall, train time and candidates, predict seconds, peak RSS.
4. ``ner/phee-relations__minilm-crf__s{seed}__train__f1``: the NER model, ``bench/quality.py``'s MiniLM-CRF run
   (same flags as its PHEE row: 3 epochs, batch 16, lr 1e-4, CRF lr 1e-3) on the prepared relation corpus.
5. ``phee__e2e-minilm__s{seed}``: end to end on the test notes: the NER model's entities
   (``note_annotator.NoteAnnotator``, max_seq_length 128) linked by the relation model
   (``relation_linking.RelationLinker``) and, for comparison, by the rule; scored with
   ``n2c2_scoring.score_relations`` (setting ``end_to_end``) against the prepared gold (the gold of step 3)
   and, with ``score_brat_folders``, against the converted annotations as written (nested entities included).
   Beside them the NER entity scores on the same notes and where the gold relations were lost: each gold
   relation's attribute and drug found exactly by NER, mis-bounded (same type, overlapping), typed differently,
   or missed. Cost: seconds per note for NER, the relation model (on gold and on predicted entities) and the rule.
   The two models' weights are deleted afterwards unless ``--keep_models``.

Steps 3-5 run seed by seed after the first two: the gold-entity rows (3) for every seed first, then NER and end to
end. ``--smoke`` runs the whole pipeline on 30 synthetic notes (``prepare_n2c2.py --synthetic 30``) with tiny
from-scratch models (a TransformerCRF of quality.py's smoke size, then a 2-layer relation classifier with its
tokenizer), writing under ``BENCH_SMOKE_DIR`` (default ``bench/cache/``): ``smoke_results/relations/`` and
``smoke_runs/relations/``; it always runs afresh.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence


sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from clinical_ner_crf.brat import write_brat_ann  # noqa: E402
from clinical_ner_crf.documents import BratDocument, BratEntity, BratRelation  # noqa: E402
from clinical_ner_crf.files import (  # noqa: E402
    ALL_RESULTS_FILE, DOCUMENTS_DIRNAME, PREDICTIONS_DIRNAME, STATS_FILE, TEST_RELATIONS_FILE, note_file_mode,
)
from clinical_ner_crf.tagging import N2C2_RELATION_TYPES  # noqa: E402

prepare_n2c2 = common.command("prepare_n2c2")  # the command, called in-process as from its command line

RELATIONS_RESULTS = common.RESULTS_DIR / "relations"
RELATIONS_RUNS = common.RUNS_DIR / "relations"
PREPARED_DIR = common.CACHE_DIR / "phee_relations_prepared"
SEEDS = (42, 43, 44)
NER_SYSTEM = "minilm-crf"  # bench/quality.py's system (its flags and settings)
SMOKE_NER_SYSTEM = "transformer-crf"
NER_CORPUS = "phee-relations"  # the corpus name in the NER run's key
# run_re.py flags of the MiniLM relation model (CPU budget: 2 cores).
RE_FLAGS = [
    "--do_train", "true", "--do_eval", "false", "--do_predict", "true",
    "--eval_strategy", "no", "--save_strategy", "no",
    "--num_train_epochs", "3", "--learning_rate", "5e-5", "--lr_scheduler_type", "linear", "--warmup_steps", "0",
    "--weight_decay", "0.0", "--per_device_train_batch_size", "32", "--per_device_eval_batch_size", "128",
    "--max_seq_length", "128", "--logging_steps", "50", "--report_to", "none", "--use_cpu", "true",
    "--dataloader_num_workers", "0", "--disable_tqdm", "true",
    # The recipe of the recorded rows (before selection on validation and the rule's view as input existed);
    # bench/relation_curves.py measures the current defaults against it.
    "--select_on_validation", "false", "--tune_link_threshold", "false", "--min_train_steps", "0",
    "--input_features", "",
]
SMOKE_RE_FLAGS = [
    "--config_name", str(common.REPO_DIR / "configs" / "architectures" / "distilbert-base-cased.json"),
    "--config_overrides", "dim=64,n_layers=2,n_heads=2,hidden_dim=128,max_position_embeddings=256",
    "--do_train", "true", "--do_eval", "false", "--do_predict", "true", "--eval_strategy", "no",
    "--save_strategy", "no", "--num_train_epochs", "3", "--learning_rate", "1e-3",
    "--per_device_train_batch_size", "32", "--per_device_eval_batch_size", "128", "--max_seq_length", "128",
    "--logging_steps", "1000", "--report_to", "none", "--use_cpu", "true", "--dataloader_num_workers", "0",
    "--disable_tqdm", "true",
]
NER_MAX_SEQ_LENGTH, NER_STRIDE = 128, 32  # as bench/quality.py trains and predicts
ARGUMENT_STATUSES = ("exact", "misbounded", "wrong_type", "missed")


@dataclass(frozen=True)
class Setup:
    """Where one benchmark (the real one or the smoke one) reads and writes."""

    corpus: str  # "phee" or "smoke": the first part of every key
    smoke: bool
    results_dir: Path
    runs_dir: Path
    seeds: tuple[int, ...]
    keep_models: bool = False

    @property
    def ner_system(self) -> str:
        return SMOKE_NER_SYSTEM if self.smoke else NER_SYSTEM

    @property
    def ner_corpus(self) -> str:
        return f"{self.corpus}-relations" if self.smoke else NER_CORPUS


@dataclass(frozen=True)
class Step:
    kind: str  # data, rule, re, ner, e2e
    seed: int | None = None


def step_key(setup: Setup, step: Step) -> str:
    if step.kind == "ner":
        import quality

        return quality.run_key(setup.ner_corpus, setup.ner_system, step.seed, "train", 1.0)
    name = {"re": "re-minilm", "e2e": "e2e-minilm"}.get(step.kind, step.kind)
    if setup.smoke and step.kind in ("re", "e2e"):
        name = name.replace("minilm", "tiny")
    return f"{setup.corpus}__{name}" + (f"__s{step.seed}" if step.seed is not None else "")


def result_path(setup: Setup, step: Step) -> Path:
    folder = setup.results_dir / "ner" if step.kind == "ner" else setup.results_dir
    return folder / f"{step_key(setup, step)}.json"


def steps(setup: Setup) -> Iterator[Step]:
    """The queue: data and the rule, then the gold-entity relation rows of every seed, then NER and end to end per
    seed (smoke: the NER model first, since the tiny relation model takes its tokenizer)."""
    yield Step("data")
    yield Step("rule")
    if setup.smoke:
        for seed in setup.seeds:
            yield from (Step("ner", seed), Step("re", seed), Step("e2e", seed))
        return
    for seed in setup.seeds:
        yield Step("re", seed)
    for seed in setup.seeds:
        yield from (Step("ner", seed), Step("e2e", seed))


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    dataset: Path  # the prepare_n2c2.py output folder
    source_test: Path  # the test notes' brat folder as annotated (before the NER policies)


def phee_corpus(prepare: bool = True) -> Corpus | None:
    """The converted and prepared PHEE relation corpus (built once into the cache); None when PHEE is absent."""
    import phee_relations

    folder = phee_relations.converted_dir()
    if folder is None:
        return None
    if not (PREPARED_DIR / "dataset_dict.json").is_file() or not (PREPARED_DIR / STATS_FILE).is_file():
        if not prepare:
            return None

        prepare_n2c2.main(phee_relations.prepare_args(folder) + ["--output_dir", str(PREPARED_DIR), "--seed", "42",
                                                                  "--overwrite"])
    return Corpus(PREPARED_DIR, folder / "test")


def smoke_corpus() -> Corpus:
    """30 synthetic notes (25 train, 5 test), prepared once under BENCH_SMOKE_DIR, their brat files kept."""
    root = common.smoke_dir() / "smoke_relations"
    dataset, brat = root / "data", root / "brat"
    if not (dataset / "dataset_dict.json").is_file() or not (brat / "test").is_dir():

        shutil.rmtree(root, ignore_errors=True)
        prepare_n2c2.main(["--synthetic", "30", "--seed", "42", "--write_brat", str(brat), "--output_dir", str(dataset),
                           "--overwrite"])
    return Corpus(dataset, brat / "test")


def load_documents(dataset: Path, split: str) -> list[dict[str, Any]]:
    """The rows of ``documents/`` in a split: text, entities (after the NER policies) and relations."""
    from datasets import load_from_disk

    return [row for row in load_from_disk(str(dataset / DOCUMENTS_DIRNAME)) if row["split"] == split]


def ner_data_digest(dataset: Path) -> dict[str, str]:
    """Per split, a hash of every sentence's id, words and tags (the NER data, no text kept)."""
    import hashlib

    from datasets import load_from_disk

    data = load_from_disk(str(dataset))
    digests = {}
    for split in ("train", "validation", "test"):
        names = data[split].features["ner_tags"].feature.names
        digest = hashlib.sha256()
        for row in data[split]:
            digest.update(json.dumps([row["id"], row["tokens"], [names[t] for t in row["ner_tags"]]]).encode())
        digests[split] = digest.hexdigest()[:16]
    return digests


def data_step(setup: Setup, corpus: Corpus) -> dict[str, Any]:
    stats = common.read_json(corpus.dataset / STATS_FILE)
    result: dict[str, Any] = {
        "key": step_key(setup, Step("data")), "smoke": setup.smoke, "dataset": corpus.dataset.name,
        "splits": {split: {k: row.get(k) for k in ("documents", "sentences", "entities")}
                   for split, row in stats.get("splits", {}).items() if split in ("train", "validation", "test")},
        "relations": stats.get("relations", {}),
        "dropped_entities": stats.get("dropped"),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if not setup.smoke:
        import phee_relations

        result["conversion"] = {split: {k: row[k] for k in ("documents", "relations", "relations_total",
                                                            "source_arguments", "mapped_arguments",
                                                            "unmapped_by_reason", "multi_drug_share",
                                                            "is_mult_event_share", "multi_event_share")}
                                for split, row in common.read_json(
                                    phee_relations.CONVERTED_DIR / phee_relations.MARKER_FILE)["splits"].items()}
        ner_benchmark = common.CACHE_DIR / "phee"
        if (ner_benchmark / "dataset_dict.json").is_file():
            ours, theirs = ner_data_digest(corpus.dataset), ner_data_digest(ner_benchmark)
            result["same_ner_data_as_quality_phee"] = {split: ours[split] == theirs[split] for split in ours}
    return result


# ---------------------------------------------------------------------------
# Scoring helpers (the scorer is n2c2_scoring.score_relations; numbers only leave this file)
# ---------------------------------------------------------------------------


def brat_documents(documents: Sequence[dict[str, Any]], relations: Sequence[Sequence[tuple[str, str, str]]] | None
                   ) -> list[BratDocument]:
    """The prepared documents as documents (documents.BratDocument), with their gold relations (``relations`` None) or the given
    ``(type, attribute id, drug id)`` triples."""
    converted = []
    for index, document in enumerate(documents):
        entities = [BratEntity(e["id"], e["type"], ((e["start"], e["end"]),), "", 0) for e in document["entities"]]
        triples = [(r["type"], r["arg1"], r["arg2"]) for r in document["relations"]] if relations is None \
            else relations[index]
        converted.append(BratDocument(document["document_id"], document["text"], entities, relations=[
            BratRelation(f"R{n}", kind, arg1, arg2, 0) for n, (kind, arg1, arg2) in enumerate(triples, start=1)]))
    return converted


def scores(report: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a score_relations report: micro and per type, strict and lenient, with counts."""
    return {"num_gold_relations": report["num_gold_relations"], "num_pred_relations": report["num_pred_relations"],
            "pred_relations_with_unmatched_argument": report["pred_relations_with_unmatched_argument"],
            **{mode: {"micro": report[mode]["micro"], "macro": report[mode]["macro"],
                      "per_type": report[mode]["per_type"]} for mode in ("strict", "lenient")}}


def headline(report: dict[str, Any], prefix: str = "") -> dict[str, float]:
    return {f"{prefix}relation_{mode}_micro_{short}": report[mode]["micro"][key]
            for mode in ("strict", "lenient") for key, short in (("precision", "p"), ("recall", "r"), ("f1", "f1"))}


def mentions_of(document: dict[str, Any]):
    from clinical_ner_crf.relations import Mention

    return [Mention(e["type"], e["start"], e["end"], e["id"]) for e in document["entities"]]


def rule_links(documents: Sequence[dict[str, Any]], mentions: Sequence[Sequence[Any]]
               ) -> tuple[list[list[tuple[str, str, str]]], float]:
    """The nearest-drug rule's links of each document (as id triples) and the seconds it took."""
    from clinical_ner_crf.relations import nearest_drug_rule

    started = time.perf_counter()
    chosen = [nearest_drug_rule(d["text"], m) for d, m in zip(documents, mentions)]
    seconds = time.perf_counter() - started
    return [[(c.type, m[c.attribute].id, m[c.drug].id) for c in links] for links, m in zip(chosen, mentions)], seconds


def rule_step(setup: Setup, corpus: Corpus) -> dict[str, Any]:
    from clinical_ner_crf.n2c2_scoring import score_relations
    from clinical_ner_crf.relations import candidate_pairs, candidate_recall

    documents = load_documents(corpus.dataset, "test")
    mentions = [mentions_of(d) for d in documents]
    links, seconds = rule_links(documents, mentions)
    report = score_relations(brat_documents(documents, None), brat_documents(documents, links), setting="gold_entities")
    recall = candidate_recall((d["text"], m, [(r["type"], r["arg1"], r["arg2"]) for r in d["relations"]])
                              for d, m in zip(documents, mentions))
    # A second reference: every candidate linked (the recall ceiling, at the precision of the candidate rule).
    everything = [[(c.type, m[c.attribute].id, m[c.drug].id) for c in candidate_pairs(d["text"], m)]
                  for d, m in zip(documents, mentions)]
    all_report = score_relations(brat_documents(documents, None), brat_documents(documents, everything),
                                 setting="gold_entities")
    return {"key": step_key(setup, Step("rule")), "system": "nearest-drug rule", "setting": "gold_entities",
            "smoke": setup.smoke, "test_notes": len(documents), **headline(report, "test_"), "scores": scores(report),
            **headline(all_report, "test_all_candidates_"), "all_candidates_scores": scores(all_report),
            "test_candidates": sum(len(links) for links in everything),
            "test_candidate_recall": {t: round(c["reached"] / c["gold"], 4) for t, c in recall.items()},
            "candidate_counts": recall, "rule_seconds": round(seconds, 4),
            "rule_seconds_per_note": seconds / max(len(documents), 1),
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


# ---------------------------------------------------------------------------
# Training runs (subprocesses, as bench/quality.py runs run_ner_crf.py)
# ---------------------------------------------------------------------------


def ner_run_dir(setup: Setup, seed: int) -> Path:
    return setup.runs_dir / step_key(setup, Step("ner", seed))


def re_run_dir(setup: Setup, seed: int) -> Path:
    return setup.runs_dir / step_key(setup, Step("re", seed))


def re_argv(setup: Setup, corpus: Corpus, seed: int) -> list[str]:
    """The run_re.py command of one relation row."""
    output_dir = re_run_dir(setup, seed)
    if setup.smoke:
        model = ["--tokenizer_name", str(ner_run_dir(setup, seed)), *SMOKE_RE_FLAGS, "--model_label", "tiny-RE"]
    else:
        model = ["--model_name_or_path", str(common.minilm_dir()), *RE_FLAGS, "--model_label", "MiniLM-RE"]
    return [sys.executable, str(common.REPO_DIR / "run_re.py"), *model, "--dataset_path", str(corpus.dataset),
            "--seed", str(seed), "--output_dir", str(output_dir)]


def model_links(run_dir: Path, documents: Sequence[dict[str, Any]]) -> list[list[tuple[str, str, str]]]:
    """A run_re.py run's predicted links (``predictions/test_relations.jsonl``) per test document."""
    by_document: dict[str, list[tuple[str, str, str]]] = {d["document_id"]: [] for d in documents}
    with open(run_dir / PREDICTIONS_DIRNAME / TEST_RELATIONS_FILE, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                link = json.loads(line)
                by_document[link["document_id"]].append((link["type"], link["attribute"], link["drug"]))
    return [by_document[d["document_id"]] for d in documents]


def re_step(setup: Setup, corpus: Corpus, seed: int) -> dict[str, Any]:
    from clinical_ner_crf.n2c2_scoring import score_relations

    key = step_key(setup, Step("re", seed))
    run_dir = re_run_dir(setup, seed)
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a half-finished run restarts from scratch
    argv = re_argv(setup, corpus, seed)
    wall, peak = common.run_logged(argv, setup.runs_dir / f"{key}.log")
    results = common.read_json(run_dir / ALL_RESULTS_FILE)
    documents = load_documents(corpus.dataset, "test")
    gold = brat_documents(documents, None)
    report = score_relations(gold, brat_documents(documents, model_links(run_dir, documents)),
                             setting="gold_entities")
    rule, _ = rule_links(documents, [mentions_of(d) for d in documents])
    rule_report = score_relations(gold, brat_documents(documents, rule), setting="gold_entities")
    keep = ("train_wall_seconds", "train_runtime", "train_candidates", "train_notes", "train_loss",
            "test_predict_seconds", "test_notes", "num_parameters", "test_candidate_recall",
            "test_link_precision", "test_link_recall", "test_link_f1")
    return {
        "key": key, "system": "MiniLM relation classifier" if not setup.smoke else "tiny relation classifier",
        "setting": "gold_entities", "seed": seed, "smoke": setup.smoke,
        **{k: v for k, v in results.items() if k.startswith(("test_relation_", "test_rule_relation_"))},
        **{k: results[k] for k in keep if k in results},
        "test_predict_seconds_per_note": results.get("test_predict_seconds", 0) / max(results.get("test_notes", 0), 1),
        "scores": scores(report), "rule_scores": scores(rule_report),
        # The re-scored predictions give run_re.py's own number (the same scorer, the same notes).
        "rescored_matches_run": abs(report["strict"]["micro"]["f1"] - results["test_relation_strict_micro_f1"]) < 1e-9,
        "wall_seconds": round(wall, 1), "peak_rss_mb": peak,
        "argv": [Path(a).name if a.startswith("/") else a for a in argv[1:]],
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def ner_step(setup: Setup, corpus: Corpus, seed: int) -> dict[str, Any]:
    import quality

    return quality.run_one(setup.ner_corpus, setup.ner_system, seed, "train", 1.0, corpus.dataset, smoke=setup.smoke,
                           results_dir=setup.results_dir / "ner", runs_dir=setup.runs_dir, keep_model=True)


# ---------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------


def argument_status(gold: tuple[str, int, int], predicted: Sequence[tuple[str, int, int]]) -> str:
    """How NER found a gold entity: exactly, mis-bounded (same type, overlapping), as another type, or not at all."""
    kind, start, end = gold
    if gold in predicted:
        return "exact"
    overlapping = [p for p in predicted if p[2] > start and p[1] < end]
    if any(p[0] == kind for p in overlapping):
        return "misbounded"
    return "wrong_type" if overlapping else "missed"


def relation_losses(gold_documents: Sequence[BratDocument], pred_documents: Sequence[BratDocument]) -> dict[str, Any]:
    """Where each gold relation went end to end: its attribute's and drug's NER status, and, when both were found
    exactly, whether the linker linked them (strict)."""
    attribute_status: Counter = Counter()
    drug_status: Counter = Counter()
    outcome: Counter = Counter()
    by_type: dict[str, Counter] = {}
    for gold, pred in zip(gold_documents, pred_documents):
        gold_entities = {e.id: (e.type, e.start, e.end) for e in gold.entities}
        pred_entities = {e.id: (e.type, e.start, e.end) for e in pred.entities}
        predicted_spans = list(pred_entities.values())
        linked = {(r.type, pred_entities[r.arg1], pred_entities[r.arg2]) for r in pred.relations}
        for relation in gold.relations:
            attribute, drug = gold_entities[relation.arg1], gold_entities[relation.arg2]
            a_status, d_status = argument_status(attribute, predicted_spans), argument_status(drug, predicted_spans)
            attribute_status[a_status] += 1
            drug_status[d_status] += 1
            if a_status == d_status == "exact":
                result = "linked" if (relation.type, attribute, drug) in linked else "arguments_found_not_linked"
            elif a_status != "exact" and d_status != "exact":
                result = "both_arguments_lost"
            elif a_status != "exact":
                result = f"attribute_{a_status}"
            else:
                result = f"drug_{d_status}"
            outcome[result] += 1
            by_type.setdefault(relation.type, Counter())[result] += 1
    total = sum(outcome.values())
    found = outcome["linked"] + outcome["arguments_found_not_linked"]
    return {"gold_relations": total, "outcome": dict(outcome),
            "outcome_by_type": {t: dict(by_type[t]) for t in N2C2_RELATION_TYPES if t in by_type},
            "attribute_status": {s: attribute_status[s] for s in ARGUMENT_STATUSES},
            "drug_status": {s: drug_status[s] for s in ARGUMENT_STATUSES},
            # The strict recall any linker could reach on these NER predictions.
            "strict_recall_ceiling": found / total if total else 0.0}


def e2e_step(setup: Setup, corpus: Corpus, seed: int) -> dict[str, Any]:
    import torch

    from clinical_ner_crf.note_annotator import NoteAnnotator
    from clinical_ner_crf.relation_linking import RelationLinker
    from clinical_ner_crf.relation_linking import mentions_of as predicted_mentions
    from clinical_ner_crf.n2c2_scoring import score_brat_folders, score_entities, score_relations

    ner_dir, re_dir = ner_run_dir(setup, seed), re_run_dir(setup, seed)
    for what, folder in (("NER", ner_dir), ("relation", re_dir)):
        if not any(folder.glob("*.safetensors")):
            raise RuntimeError(f"the {what} model of seed {seed} is gone ({folder}): delete "
                               f"{result_path(setup, Step('ner' if what == 'NER' else 're', seed))} to train it again")
    key = step_key(setup, Step("e2e", seed))
    documents = load_documents(corpus.dataset, "test")
    texts = {d["document_id"]: d["text"] for d in documents}
    gold = brat_documents(documents, None)
    # relations="model": this row is the model's, whatever its validation said (the rule has its own row).
    annotator = NoteAnnotator.from_pretrained(str(ner_dir), device="cpu", relation_model_name_or_path=str(re_dir),
                                              max_seq_length=NER_MAX_SEQ_LENGTH, stride=NER_STRIDE, relations="model")
    started = time.perf_counter()
    predictions = annotator.predict(texts)
    ner_seconds = time.perf_counter() - started
    started = time.perf_counter()
    links = annotator.link(texts, predictions)
    link_seconds = time.perf_counter() - started
    mentions = {doc_id: predicted_mentions(predictions[doc_id].entities) for doc_id in texts}
    pred_entities = {doc_id: [BratEntity(m.id, m.type, ((m.start, m.end),), "", 0) for m in mentions[doc_id]]
                     for doc_id in texts}

    def predicted(triples_by_document: dict[str, list[tuple[str, str, str]]]) -> list[BratDocument]:
        return [BratDocument(doc_id, texts[doc_id], pred_entities[doc_id], relations=[
            BratRelation(f"R{n}", kind, a, b, 0) for n, (kind, a, b) in enumerate(triples_by_document[doc_id], 1)])
            for doc_id in texts]

    model_triples = {doc_id: [(c.type, mentions[doc_id][c.attribute].id, mentions[doc_id][c.drug].id)
                              for c, _ in links[doc_id]] for doc_id in texts}
    rule_documents = [{"text": texts[doc_id]} for doc_id in texts]
    rule_triples, rule_seconds = rule_links(rule_documents, [mentions[doc_id] for doc_id in texts])
    model_pred, rule_pred = predicted(model_triples), predicted(dict(zip(texts, rule_triples)))
    model_report = score_relations(gold, model_pred, setting="end_to_end")
    rule_report = score_relations(gold, rule_pred, setting="end_to_end")

    # The relation model on gold entities, timed the same way (the cost row), and the rule likewise.
    linker: RelationLinker = annotator.relation_linker
    gold_mentions = [mentions_of(d) for d in documents]
    started = time.perf_counter()
    linker.link_notes({d["document_id"]: (d["text"], m) for d, m in zip(documents, gold_mentions)})
    gold_link_seconds = time.perf_counter() - started
    _, gold_rule_seconds = rule_links(documents, gold_mentions)

    # Against the annotations as converted (nested entities included): write the predictions as brat and score the
    # folders (the .ann files hold entity text: they stay in the git-ignored runs folder, with the notes' mode).
    pred_dir = setup.runs_dir / key / "brat"
    if pred_dir.exists():
        shutil.rmtree(pred_dir)
    pred_dir.mkdir(parents=True)
    mode = note_file_mode(sorted(corpus.source_test.glob("*.txt"))[:1])
    position = {doc_id: {m.id: i for i, m in enumerate(mentions[doc_id])} for doc_id in texts}
    for doc_id, text in texts.items():
        write_brat_ann(pred_dir / f"{doc_id}.ann", [(m.type, m.start, m.end) for m in mentions[doc_id]], text,
                       relations=[(kind, position[doc_id][a], position[doc_id][b])
                                  for kind, a, b in model_triples[doc_id]],
                       mode=mode)
    source = score_brat_folders(corpus.source_test, pred_dir, relation_setting="end_to_end")
    notes = len(texts)
    result = {
        "key": key, "setting": "end_to_end", "seed": seed, "smoke": setup.smoke, "test_notes": notes,
        "ner_model": ner_dir.name, "relation_model": re_dir.name,
        **headline(model_report, "test_e2e_"), **headline(rule_report, "test_e2e_rule_"),
        "scores": scores(model_report), "rule_scores": scores(rule_report),
        "ner_entity_scores": score_entities(gold, model_pred),
        "relation_losses": relation_losses(gold, model_pred),
        "rule_relation_losses": relation_losses(gold, rule_pred),
        "against_source_annotations": {
            "entity": {mode_name: source[mode_name]["micro"] for mode_name in ("strict", "lenient")},
            "relation": {mode_name: source["relations"][mode_name]["micro"] for mode_name in ("strict", "lenient")}
            if "relations" in source else None,
            "num_gold_entities": source["num_gold_entities"],
            "num_gold_relations": source["relations"]["num_gold_relations"] if "relations" in source else 0},
        "cost": {
            "ner_seconds": round(ner_seconds, 3), "ner_seconds_per_note": ner_seconds / max(notes, 1),
            "relation_model_seconds_on_predicted_entities": round(link_seconds, 3),
            "relation_model_seconds_per_note_on_predicted_entities": link_seconds / max(notes, 1),
            "relation_model_seconds_per_note_on_gold_entities": gold_link_seconds / max(notes, 1),
            "rule_seconds_per_note_on_predicted_entities": rule_seconds / max(notes, 1),
            "rule_seconds_per_note_on_gold_entities": gold_rule_seconds / max(notes, 1),
            "torch_threads": torch.get_num_threads(),
        },
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if not setup.keep_models:
        for folder in (ner_dir, re_dir):
            for weights in folder.glob("*.safetensors"):
                weights.unlink()  # predictions and logs stay; 90 MB a model does not
    return result


# ---------------------------------------------------------------------------
# The queue
# ---------------------------------------------------------------------------


def run_step(setup: Setup, corpus: Corpus, step: Step) -> dict[str, Any]:
    if step.kind == "data":
        return data_step(setup, corpus)
    if step.kind == "rule":
        return rule_step(setup, corpus)
    if step.kind == "re":
        return re_step(setup, corpus, step.seed)
    if step.kind == "ner":
        return ner_step(setup, corpus, step.seed)  # quality.run_one writes its own JSON
    return e2e_step(setup, corpus, step.seed)


def describe(step: Step, result: dict[str, Any]) -> str:
    if step.kind == "rule":
        return f"strict micro-F1 {result['test_relation_strict_micro_f1']:.4f}"
    if step.kind == "re":
        return (f"strict micro-F1 {result['test_relation_strict_micro_f1']:.4f} (rule "
                f"{result['test_rule_relation_strict_micro_f1']:.4f}), "
                f"train {result.get('train_wall_seconds', 0):.0f}s")
    if step.kind == "ner":
        from clinical_ner_crf.metrics import STRICT_MICRO_F1

        return f"NER strict micro-F1 {result[STRICT_MICRO_F1]:.4f}"
    if step.kind == "e2e":
        return (f"end-to-end strict micro-F1 {result['test_e2e_relation_strict_micro_f1']:.4f} (rule "
                f"{result['test_e2e_rule_relation_strict_micro_f1']:.4f})")
    total = sum(row.get("kept", {}).get(t, 0) for row in result["relations"].values() for t in N2C2_RELATION_TYPES)
    return f"{total} relations kept after the entity policies"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--list", action="store_true", help="print done/pending steps and exit")
    parser.add_argument("--max_steps", type=int, default=None, help="stop after this many new steps")
    parser.add_argument("--stop_at", default=None, help="UTC HH:MM: start no new step after it")
    parser.add_argument("--keep_models", action="store_true", help="keep both models' weights after end to end")
    parser.add_argument("--smoke", action="store_true",
                        help="the whole pipeline on 30 synthetic notes with tiny models, first seed only, afresh; "
                             "outputs under BENCH_SMOKE_DIR (default bench/cache/)")
    args = parser.parse_args(argv)
    if args.smoke:
        smoke = common.smoke_dir()
        setup = Setup("smoke", True, smoke / "smoke_results" / "relations", smoke / "smoke_runs" / "relations",
                      (args.seeds[0],), keep_models=args.keep_models)
        shutil.rmtree(setup.results_dir, ignore_errors=True)  # a smoke run always runs every step
    else:
        setup = Setup("phee", False, RELATIONS_RESULTS, RELATIONS_RUNS, tuple(args.seeds), keep_models=args.keep_models)

    todo = list(steps(setup))
    done = [step for step in todo if result_path(setup, step).is_file()]
    if args.list:
        for step in todo:
            state = "done" if step in done else "pending"
            print(f"{state:8} {result_path(setup, step).relative_to(setup.results_dir)}")
        print(f"{len(done)} done, {len(todo) - len(done)} pending")
        return 0
    if len(done) == len(todo):
        print(f"[relations] all {len(todo)} steps done", flush=True)
        return 0
    corpus = smoke_corpus() if setup.smoke else phee_corpus()
    if corpus is None:
        return 0  # PHEE absent: said so already
    print(f"[relations] {len(done)} of {len(todo)} steps done; starting the rest", flush=True)
    new_steps, failed = 0, 0
    for step in todo:
        path = result_path(setup, step)
        if path.is_file():
            continue
        if args.max_steps is not None and new_steps >= args.max_steps:
            break
        if args.stop_at and time.strftime("%H:%M", time.gmtime()) >= args.stop_at:
            print(f"[relations] stop time {args.stop_at} UTC reached", flush=True)
            break
        needs = [Step(kind, step.seed) for kind in ("ner", "re")] if step.kind == "e2e" else []
        missing = [result_path(setup, need).stem for need in needs if not result_path(setup, need).is_file()]
        if missing:
            print(f"[relations] skipped {path.stem}: needs {', '.join(missing)}", flush=True)
            failed += setup.smoke
            continue
        print(f"[relations] {time.strftime('%H:%M:%S', time.gmtime())} start {path.stem}", flush=True)
        started = time.perf_counter()
        try:
            result = run_step(setup, corpus, step)
        except RuntimeError as error:
            print(f"[relations] FAILED {path.stem}: {error}", flush=True)
            failed += 1
            if setup.smoke:
                return 1
            continue
        if step.kind != "ner":
            common.write_json(path, result | {"step_seconds": round(time.perf_counter() - started, 1)})
        new_steps += 1
        print(f"[relations] {time.strftime('%H:%M:%S', time.gmtime())} done {path.stem}: {describe(step, result)} "
              f"({time.perf_counter() - started:.0f}s)", flush=True)
    return 1 if failed and setup.smoke else 0


if __name__ == "__main__":
    sys.exit(main())
