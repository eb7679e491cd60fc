"""Relation training: examples from prepared documents, the links a model or the nearest-drug rule makes, their scores, and the model's selection on validation notes (:class:`KeepBestEpoch` keeps the best epoch's weights, :func:`best_threshold` its link threshold; :func:`adapt_epochs` gives a small corpus enough steps)."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Sequence

from transformers import TrainerCallback, TrainingArguments

from .brat import write_brat_ann
from .command_line import UsageError
from .documents import BratDocument, BratEntity, BratRelation
from .files import (
    BRAT_DIRNAME, DOCUMENTS_DIRNAME, PREDICTIONS_DIRNAME, TEST_RELATIONS_FILE, set_tree_mode, write_folder_atomically,
)
from .metrics import (
    RELATION_STRICT_MICRO_F1, STATS, metric_name, relation_type_metric_name, relation_view, system_metric_name,
)
from .n2c2_scoring import score_relations
from .prediction_records import jsonl_line
from .relations import (
    INPUT_FEATURES, Candidate, Mention, candidate_inputs, candidate_pairs, fit_to_length, nearest_drug_rule,
    select_links,
)

logger = logging.getLogger(__name__)


def check_dataset_path(dataset_path: str | None) -> None:
    """A run needs a prepare_n2c2.py output folder: not given or missing is a usage error (one line). What is in it
    is checked where it is read (:func:`load_documents`)."""
    if not dataset_path:
        raise UsageError("--dataset_path is required: give a prepare_n2c2.py output folder (prepared with relations)")
    if not Path(dataset_path).exists():
        raise UsageError(f"--dataset_path {dataset_path} does not exist: give a prepare_n2c2.py output folder "
                         "(prepare_n2c2.py --train_dir ... --output_dir FOLDER writes one)")


def load_documents(dataset_path: str, split_expression: str) -> list[dict[str, Any]]:
    """The rows of ``documents/`` in the named split(s) (``train+validation`` joins), each with text, entities
    and relations."""
    from datasets import load_from_disk

    folder = Path(dataset_path) / DOCUMENTS_DIRNAME
    if not folder.is_dir():
        raise UsageError(f"--dataset_path {dataset_path}: not a prepare_n2c2.py output folder (no {DOCUMENTS_DIRNAME}/)")
    documents = load_from_disk(str(folder))
    if "relations" not in documents.column_names:
        raise UsageError(f"--dataset_path {dataset_path}: prepared without relations (re-run prepare_n2c2.py)")
    splits = split_expression.split("+")
    return [row for row in documents if row["split"] in splits]


def document_mentions(document: dict[str, Any]) -> list[Mention]:
    return [Mention(e["type"], e["start"], e["end"], e["id"]) for e in document["entities"]]


def gold_links(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(relation["arg1"], relation["arg2"]) for relation in document["relations"]}


def build_examples(documents: Sequence[dict[str, Any]], tokenizer, *, sentence_window: int, max_seq_length: int,
                   features: Sequence[str]) -> tuple[list[dict[str, Any]], list[list[Candidate]]]:
    """One example per candidate (``text``, ``label``, ``document``, ``candidate``), and each note's candidates."""
    examples, candidates_by_document = [], []
    for index, document in enumerate(documents):
        mentions = document_mentions(document)
        candidates, texts = candidate_inputs(document["text"], mentions, sentence_window, features)
        links = gold_links(document)
        for number, (candidate, text) in enumerate(zip(candidates, texts)):
            linked = (mentions[candidate.attribute].id, mentions[candidate.drug].id) in links
            examples.append({"text": fit_to_length(text, tokenizer, max_seq_length), "label": int(linked),
                             "document": index, "candidate": number})
        candidates_by_document.append(candidates)
    return examples, candidates_by_document


def input_features(names: str) -> tuple[str, ...]:
    """``--input_features`` (comma-separated names) as a tuple, checked against relations.INPUT_FEATURES."""
    features = tuple(name.strip() for name in names.split(",") if name.strip())
    unknown = sorted(set(features) - set(INPUT_FEATURES))
    if unknown:
        raise UsageError(f"--input_features: unknown {', '.join(unknown)} (known: {', '.join(INPUT_FEATURES)})")
    return features


def to_brat_documents(documents: Sequence[dict[str, Any]], links: Sequence[Sequence[tuple[Candidate, float]]] | None
                      ) -> list[BratDocument]:
    """Documents (documents.BratDocument) for the scorer: the gold relations (``links`` None) or the predicted ones."""
    converted = []
    for index, document in enumerate(documents):
        mentions = document_mentions(document)
        entities = [BratEntity(m.id, m.type, ((m.start, m.end),), document["text"][m.start:m.end], 0) for m in mentions]
        if links is None:
            relations = [BratRelation(f"R{n}", r["type"], r["arg1"], r["arg2"], 0)
                         for n, r in enumerate(document["relations"], start=1)]
        else:
            relations = [BratRelation(f"R{n}", c.type, mentions[c.attribute].id, mentions[c.drug].id, 0)
                         for n, (c, _) in enumerate(links[index], start=1)]
        converted.append(BratDocument(document["document_id"], document["text"], entities, relations=relations))
    return converted


THRESHOLD_GRID = tuple(round(0.05 * step, 2) for step in range(1, 20))  # --tune_link_threshold tries these
SYSTEMS = ("model", "rule", "every_candidate")  # the three rows of every score table


def model_links(candidates_by_document: Sequence[Sequence[Candidate]], probabilities: Sequence[float],
                threshold: float) -> list[list[tuple[Candidate, float]]]:
    """Each note's links from the ``linked`` probabilities of all candidates (in note, then candidate order)."""
    links, start = [], 0
    for candidates in candidates_by_document:
        links.append(select_links(candidates, probabilities[start:start + len(candidates)], threshold))
        start += len(candidates)
    return links


def baseline_links(documents: Sequence[dict[str, Any]], sentence_window: int) -> dict[str, list]:
    """The two references: the nearest-drug rule, and every candidate pair linked (how much there is to learn)."""
    rule, every = [], []
    for document in documents:
        mentions = document_mentions(document)
        rule.append([(c, 1.0) for c in nearest_drug_rule(document["text"], mentions, sentence_window)])
        every.append([(c, 1.0) for c in candidate_pairs(document["text"], mentions, sentence_window)])
    return {"rule": rule, "every_candidate": every}


def score_links(documents: Sequence[dict[str, Any]], links: Sequence[Sequence[tuple[Candidate, float]]],
                gold: list[BratDocument] | None = None) -> dict[str, Any]:
    """The n2c2 relation report (strict and lenient) of ``links`` on gold entities."""
    return score_relations(gold or to_brat_documents(documents, None), to_brat_documents(documents, links))


def best_threshold(documents: Sequence[dict[str, Any]], candidates_by_document: Sequence[Sequence[Candidate]],
                   probabilities: Sequence[float]) -> tuple[float, float]:
    """The threshold of :data:`THRESHOLD_GRID` with the best strict micro-F1 (ties: the one nearest 0.5), and that F1."""
    gold = to_brat_documents(documents, None)
    best = None
    for threshold in THRESHOLD_GRID:
        f1 = score_links(documents, model_links(candidates_by_document, probabilities, threshold), gold
                         )["strict"]["micro"]["f1"]
        if best is None or (f1, -abs(threshold - 0.5)) > best[0]:
            best = ((f1, -abs(threshold - 0.5)), threshold, f1)
    return best[1], best[2]


class KeepBestEpoch(TrainerCallback):
    """Selection on validation: after each epoch's evaluation (``eval_relation_strict_micro_f1``, at the threshold
    that epoch scores best with), keep the best epoch's weights in memory; put them back when training ends."""

    def __init__(self):
        self.best: dict[str, Any] | None = None
        self.history: list[dict[str, float]] = []
        self.last_probabilities: Sequence[float] | None = None  # set by compute_metrics
        self.training = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.training = True

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        if not self.training or not metrics or "eval_" + RELATION_STRICT_MICRO_F1 not in metrics:
            return
        epoch = {"epoch": round(state.epoch or 0, 2), "step": state.global_step,
                 RELATION_STRICT_MICRO_F1: metrics["eval_" + RELATION_STRICT_MICRO_F1],
                 "link_threshold": metrics["eval_link_threshold"]}
        self.history.append(epoch)
        if self.best is None or epoch[RELATION_STRICT_MICRO_F1] > self.best[RELATION_STRICT_MICRO_F1]:
            self.best = {**epoch, "probabilities": self.last_probabilities,
                         "weights": {key: value.detach().to("cpu", copy=True)
                                     for key, value in model.state_dict().items()}}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.training = False
        if self.best is not None:
            model.load_state_dict(self.best.pop("weights"))


def adapt_epochs(training_args: TrainingArguments, train_candidates: int, *, min_train_steps: int,
                 max_train_epochs: int) -> None:
    """At least ``--min_train_steps`` optimiser steps (at most ``--max_train_epochs`` epochs): a small corpus gets
    more epochs, a large one keeps ``--num_train_epochs``. ``--max_steps`` wins."""
    if training_args.max_steps > 0 or min_train_steps <= 0:
        return
    batches = math.ceil(train_candidates / (training_args.per_device_train_batch_size * training_args.world_size))
    steps_per_epoch = max(batches // training_args.gradient_accumulation_steps, 1)
    needed = min(math.ceil(min_train_steps / steps_per_epoch), max_train_epochs)
    if needed > training_args.num_train_epochs:
        logger.info(f"{train_candidates} training candidates make {steps_per_epoch} steps per epoch: training "
                    f"{needed} epochs instead of {training_args.num_train_epochs:g} (--min_train_steps "
                    f"{min_train_steps}, at most --max_train_epochs {max_train_epochs})")
        training_args.num_train_epochs = needed


def relation_metrics(report: dict[str, Any], split: str, system: str = "model") -> dict[str, float]:
    """Flat numbers of a ``score_relations`` report of one system (:data:`SYSTEMS`) on one split: strict/lenient
    micro P/R/F and strict F1 per type, named ``{split}_`` + :func:`metrics.system_metric_name`."""
    names = {metric_name(relation_view(mode), "micro", short): report[mode]["micro"][key]
             for mode in ("strict", "lenient") for key, short in STATS}
    names.update({relation_type_metric_name(relation_type): row["f1"]
                  for relation_type, row in report["strict"]["per_type"].items()})
    return {f"{split}_" + system_metric_name(name, system): value for name, value in names.items()}


def write_predictions(output_dir: Path, documents: Sequence[dict[str, Any]],
                      links: Sequence[Sequence[tuple[Candidate, float]]], file_mode: int) -> Path:
    """Brat ``.ann`` per test note (the gold entities and the predicted relations) and one JSONL record per link."""

    def write(folder: Path) -> None:
        lines = []
        for document, document_links in zip(documents, links):
            mentions = document_mentions(document)
            write_brat_ann(folder / BRAT_DIRNAME / f"{document['document_id']}.ann",
                           [(m.type, m.start, m.end) for m in mentions], document["text"],
                           relations=[(c.type, c.attribute, c.drug) for c, _ in document_links])
            lines += [jsonl_line({"document_id": document["document_id"], "type": c.type,
                                  "attribute": mentions[c.attribute].id, "drug": mentions[c.drug].id,
                                  "confidence": round(float(p), 6)}) for c, p in document_links]
        (folder / TEST_RELATIONS_FILE).write_text("".join(lines), encoding="utf-8")
        set_tree_mode(folder, file_mode)

    write_folder_atomically(output_dir / PREDICTIONS_DIRNAME, overwrite=True, write=write)
    return output_dir / PREDICTIONS_DIRNAME
