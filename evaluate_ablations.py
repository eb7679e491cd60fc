#!/usr/bin/env python
"""Score NER predictions the way the paper and the n2c2-2018 shared task do.

This file is the single home of the project's metrics and of their names (:func:`metric_name`,
one table of views, :data:`TAG_VIEWS` and :data:`ENTITY_MODES`): ``run_ner_crf.py`` imports
:func:`ner_metrics` for ``compute_metrics``. As a script it turns the word-level predictions of
one or more runs into the paper's tables (BIO-strict and token-level tag scores, the Table IV
ablations, the confusion matrix), entity-level strict and lenient scores, a comparison across
runs and a learning curve; or it scores brat folders the way the n2c2-2018 Track 2 official
script does: entities, and relations (``R`` lines) when the gold files have them
(:func:`score_relations`, also callable on documents without files).

    python evaluate_ablations.py --predictions outputs/bert-crf --output_dir reports/bert-crf
    python evaluate_ablations.py --predictions outputs/*-seed* --output_dir reports/compare
    python evaluate_ablations.py --gold_brat n2c2/test --pred_brat outputs/bert-crf/predictions/brat \
        --output_dir reports/brat
    python evaluate_ablations.py --gold_brat n2c2/test --pred_brat runs/relations/predictions/brat \
        --relation_setting gold_entities --output_dir reports/relations

Reports never contain corpus text: tag names, document ids and counts only.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import statistics
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from clinical_ner_crf.corpus_io import (
    PREDICTIONS_DIRNAME,
    REPORT_JSON_FILE,
    REPORT_MARKDOWN_FILE,
    RUN_INFO_FILE,
    TEST_PREDICTIONS_FILE,
    BratFormatError,
    PredictionFormatError,
    check_output_dir,
    load_label_map,
    load_relation_map,
    read_brat_document,
    relation_argument_problem,
    read_predictions,
    read_text,
    run_predictions_path,
    split_lines,
    write_folder_atomically,
)
from clinical_ner_crf.command_line import USAGE_EXIT_STATUS, UsageError, exit_status
from clinical_ner_crf.folder_safety import FolderLock, check_output_apart
from clinical_ner_crf.tagging import (
    N2C2_ENTITY_TYPES,
    N2C2_RELATION_TYPES,
    bio_to_spans,
    entity_types_of,
    is_tag,
    parse_tag,
    tag_type,
)

logger = logging.getLogger(__name__)

AVERAGES = ("micro", "macro", "weighted")
# Score row key -> the stat's short name in flat metric names.
STATS = (("precision", "p"), ("recall", "r"), ("f1", "f1"))


# ---------------------------------------------------------------------------
# Views and metric names (the one table of both)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TagView:
    """One tag-level view of a run: its key in ``report["tag"]``, how it is scored, its title."""

    name: str
    level: str  # "bio" keeps B-/I- prefixes, "token" strips them
    exclude_labels: tuple[str, ...]
    title: str

    @property
    def accuracy_name(self) -> str:
        return f"{self.name}_accuracy"


BIO_VIEW = TagView("bio", "bio", (), "BIO-strict, per tag (paper Tables II-III)")
BIO_WITHOUT_O_VIEW = TagView("bio_without_O", "bio", ("O",), "BIO-strict without O")
TOKEN_VIEW = TagView("token", "token", (), "Token level, prefix stripped (paper Figures 6-7)")
TOKEN_WITHOUT_O_VIEW = TagView("token_without_O", "token", ("O",), "Token level without O")
TAG_VIEWS = (BIO_VIEW, BIO_WITHOUT_O_VIEW, TOKEN_VIEW, TOKEN_WITHOUT_O_VIEW)

# Entity matching modes, keys of report["entity"], with their Markdown titles.
ENTITY_MODES = (("strict", "Entity level, strict (seqeval mode=strict, scheme=IOB2)"),
                ("lenient", "Entity level, lenient (same type, any overlap)"))


def entity_view(mode: str) -> str:
    """The view name of an entity mode in metric names: ``"strict"`` -> ``"entity_strict"``."""
    return f"entity_{mode}"


def metric_name(view: str, average: str, stat: str = "f1") -> str:
    """The flat name of one number: ``metric_name("entity_strict", "micro")`` -> ``"entity_strict_micro_f1"``.

    ``view`` is a tag view, :func:`entity_view` or an ablation name; ``stat`` is p, r or f1.
    """
    if average not in AVERAGES or stat not in dict(STATS).values():
        raise ValueError(f"no metric {view!r} {average!r} {stat!r}: average is one of {AVERAGES}, stat p, r or f1")
    return f"{view}_{average}_{stat}"


def type_metric_name(entity_type: str) -> str:
    """The strict entity F1 of one type: ``"Drug"`` -> ``"entity_strict_Drug_f1"``."""
    return f"{entity_view('strict')}_{entity_type}_f1"


STRICT_MICRO_F1 = metric_name(entity_view("strict"), "micro")
STRICT_MACRO_F1 = metric_name(entity_view("strict"), "macro")
LENIENT_MICRO_F1 = metric_name(entity_view("lenient"), "micro")

WORD_LEVEL_NOTE = (
    "The paper scored subword tokens (continuation pieces of a B-X word carried I-X); these "
    "tag-level scores count words (one prediction per word, from its first subword), so I- "
    "tags weigh less here and the figures are comparable in kind, not digit for digit."
)
REMOVAL_NOTE = (
    "'Without O' and the 'remove' ablations follow scikit-learn's labels= argument, as the "
    "paper did: the removed labels leave the averaged label set, but every token still "
    "counts, so a Drug word predicted O stays a Drug false negative (micro P != R)."
)
LENIENT_NOTE = (
    "Lenient entity matching follows the n2c2-2018 official script: same type and any overlap; "
    "of several predicted spans that match one gold span only the first is kept, the others "
    "are dropped (neither true nor false positive); recall counts kept matching predictions."
)
DUPLICATE_NOTE = (
    "Exact duplicate entities within one note (same type, start and end) are counted once on each side, and their "
    "number is reported (duplicate_entities). The official script counts every copy, so a gold note holding one span "
    "twice scored recall < 1 against itself."
)
# What the reports say of runs whose run_info has "synthetic": true (synthetic_n2c2.py notes).
SYNTHETIC_SAMPLE = "the SYNTHETIC sample (synthetic_n2c2.py), not real patient notes"


# ---------------------------------------------------------------------------
# Score arithmetic
# ---------------------------------------------------------------------------


def _safe_div(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision, recall = _safe_div(tp, tp + fp), _safe_div(tp, tp + fn)
    return {
        "precision": precision,
        "recall": recall,
        "f1": _safe_div(2 * precision * recall, precision + recall),
    }


def _zero_row(support: int = 0) -> dict[str, Any]:
    return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": int(support)}


def _averages(per_type: Mapping[str, Mapping[str, Any]], micro: dict[str, Any]) -> dict[str, Any]:
    """Macro (unweighted mean of per-type P, R, F) and weighted (mean weighted by support)."""
    rows = list(per_type.values())
    total = sum(row["support"] for row in rows)
    result = {"per_type": {name: dict(row) for name, row in per_type.items()}, "micro": micro}
    if not rows:
        result["macro"], result["weighted"] = _zero_row(), _zero_row()
        return result
    result["macro"] = {key: sum(row[key] for row in rows) / len(rows) for key in ("precision", "recall", "f1")}
    result["macro"]["support"] = int(total)
    result["weighted"] = {key: _safe_div(sum(row[key] * row["support"] for row in rows), total)
                          for key in ("precision", "recall", "f1")}
    result["weighted"]["support"] = int(total)
    return result


def summarize_counts(counts: Mapping[str, Mapping[str, int]], with_counts: bool = False,
                     order: Sequence[str] = N2C2_ENTITY_TYPES) -> dict[str, Any]:
    """``{type: {tp, fp, fn}}`` -> ``{"per_type", "micro", "macro", "weighted"}`` (support = tp + fn).

    ``per_type`` lists the types of ``order`` first (the n2c2 entity types; relations pass
    :data:`tagging.N2C2_RELATION_TYPES`), any others alphabetically after them.
    """
    per_type = {}
    for name in _ordered_types(counts, order):
        tp, fp, fn = (int(counts[name].get(key, 0)) for key in ("tp", "fp", "fn"))
        per_type[name] = {**_prf(tp, fp, fn), "support": tp + fn}
        if with_counts:
            per_type[name].update(tp=tp, fp=fp, fn=fn)
    totals = {key: sum(int(c.get(key, 0)) for c in counts.values()) for key in ("tp", "fp", "fn")}
    micro = {**_prf(totals["tp"], totals["fp"], totals["fn"]), "support": totals["tp"] + totals["fn"]}
    if with_counts:
        micro.update(totals)
    return _averages(per_type, micro)


def _ordered_types(types: Iterable[str], order: Sequence[str] = N2C2_ENTITY_TYPES) -> list[str]:
    """The types of ``order`` (default: the n2c2 types in the paper's order) first, any others alphabetically."""
    types = set(types)
    return [t for t in order if t in types] + sorted(types - set(order))


def _ordered_labels(labels: Iterable[str], level: str) -> list[str]:
    """``O`` first, then B/I pairs (or bare types at token level) in :func:`_ordered_types` order."""
    labels = set(labels)
    types = _ordered_types({_label_type(label, level) for label in labels} - {None})
    ordered = ["O"] if "O" in labels else []
    for entity_type in types:
        candidates = [entity_type] if level == "token" else [f"B-{entity_type}", f"I-{entity_type}"]
        ordered += [label for label in candidates if label in labels]
    return ordered


def _label_type(label: str, level: str) -> str | None:
    if label == "O":
        return None
    return label if level == "token" else tag_type(label)


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------


def _check_sequences(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} sentences but pred has {len(pred)}")
    distinct: set = set()
    for index, (gold_tags, pred_tags) in enumerate(zip(gold, pred)):
        if len(gold_tags) != len(pred_tags):
            raise ValueError(f"sentence {index}: {len(gold_tags)} gold tags but {len(pred_tags)} predicted tags")
        distinct.update(gold_tags)
        distinct.update(pred_tags)
    # Checking the distinct tags only keeps this cheap inside Trainer.compute_metrics.
    for tag in distinct:
        if not is_tag(tag):
            raise ValueError(f"{tag!r} is not an IOB2 tag (O, B-X or I-X)")


# ---------------------------------------------------------------------------
# Entity level: strict (seqeval) and lenient (n2c2 official semantics)
# ---------------------------------------------------------------------------


def match_counts(
    gold_spans: Sequence[tuple[str, int, int]],
    pred_spans: Sequence[tuple[str, int, int]],
    mode: str = "strict",
) -> dict[str, dict[str, int]]:
    """True/false positives and false negatives per type for one document, n2c2-2018 style.

    Spans are ``(type, start, end_exclusive)`` in document (file) order, in characters or
    words. This reproduces ``SingleEvaluator`` of the n2c2-2018 Track 2 official script
    (``track2_eval.py``, shipped with the n2c2 data; public copies exist, e.g. medaCy's,
    headed "This script came with the n2c2 dataset"):

    * ``ClinicalConcept.equals``: same type and, strict, same start and end; lenient,
      ``g.end > s.start and g.start < s.end`` (any overlap of half-open spans).
    * "pare down matches": system spans are visited in order; a system span that matches a
      gold span already matched by an earlier one is dropped, counted neither as a true
      nor as a false positive (several system spans on one gold span count once).
    * ``tp`` = kept system spans that match some gold span; ``fp`` = kept - tp;
      ``fn`` = gold - tp. So a system span covering two gold spans finds only one of them.
      One corner case is kept as the script has it: a system span that matches a new
      gold span *and* an already matched one is dropped, and the new one stays unfound.

    The brat scorers (:func:`score_brat_folders`, :func:`score_entities`) give it each note's distinct
    spans (:func:`distinct`): an exact duplicate counts once on either side, unlike the script.
    """
    if mode not in dict(ENTITY_MODES):
        raise ValueError(f"mode must be 'strict' or 'lenient', not {mode!r}")
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0})
    gold_by_type: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for entity_type, start, end in gold_spans:
        gold_by_type[entity_type].append((start, end))
        counts[entity_type]["fn"] += 1
    # Matches need the same type, so each type is independent; order within a type is kept.
    pred_by_type: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for entity_type, start, end in pred_spans:
        pred_by_type[entity_type].append((start, end))

    equals = _span_equals(mode)
    for entity_type, preds in pred_by_type.items():
        tp, fp, fn = _pare_down_counts(gold_by_type.get(entity_type, []), preds, equals)
        counts[entity_type].update(tp=tp, fp=fp, fn=fn)
    return dict(counts)


def _span_equals(mode: str):
    """``ClinicalConcept.span_matches`` of the official script for ``(start, end)`` pairs: strict, the
    same start and end; lenient, any overlap of the half-open spans."""
    if mode == "strict":
        return lambda g, s: g[0] == s[0] and g[1] == s[1]
    return lambda g, s: g[1] > s[0] and g[0] < s[1]


def _pare_down_counts(golds: Sequence[Any], preds: Sequence[Any], equals) -> tuple[int, int, int]:
    """``(tp, fp, fn)`` of ``SingleEvaluator``'s "pare down matches" then count, for one document.

    Predictions are visited in order; one that ``equals`` a gold item already matched by an earlier
    prediction is dropped (neither tp nor fp), after marking any new gold items it hits as matched;
    a kept prediction is a tp when it equals some gold item, else an fp; fn = golds - tp. Used for
    entities (:func:`match_counts`) and relations (:func:`match_relation_counts`) alike, as the
    script uses one loop for both.
    """
    matched: set[int] = set()
    tp = fp = 0
    for pred in preds:
        hits = [index for index, gold in enumerate(golds) if equals(gold, pred)]
        if any(index in matched for index in hits):
            matched.update(hits)  # the script marks new golds as matched before dropping
            continue
        matched.update(hits)
        if hits:
            tp += 1
        else:
            fp += 1
    return tp, fp, len(golds) - tp


def distinct(items: Sequence[Any]) -> tuple[list[Any], int]:
    """``items`` without exact repeats (the first of each kept, order kept) and how many repeats were removed: a
    note's spans or relations as the document scorers count them (:data:`DUPLICATE_NOTE`). The official script counts
    every copy; :func:`match_counts` and :func:`match_relation_counts` still do, for the items they are given."""
    unique = list(dict.fromkeys(items))
    return unique, len(items) - len(unique)


def _add_counts(total: dict[str, Counter], counts: Mapping[str, Mapping[str, int]]) -> None:
    for entity_type, row in counts.items():
        total[entity_type].update(row)


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], mode: str = "strict") -> dict[str, Any]:
    """Entity-level P/R/F per type and micro/macro/weighted averages (support = gold entities).

    ``strict``: seqeval ``mode="strict", scheme=IOB2`` (exact type and word boundaries; an
    entity that starts with ``I-`` is no entity). ``lenient``: chunks by
    ``bio_to_spans(tags, strict=False)`` (conlleval: a stray ``I-X`` starts a chunk), counted
    per sentence with :func:`match_counts` ``mode="lenient"`` (same type, any word overlap,
    n2c2 official semantics). Macro is the unweighted mean of per-type P, R and F; weighted
    weighs them by support; types are those of gold and predictions together.
    """
    _check_sequences(gold, pred)
    if mode == "strict":
        return _seqeval_strict(gold, pred)
    if mode != "lenient":
        raise ValueError(f"mode must be 'strict' or 'lenient', not {mode!r}")
    counts: dict[str, Counter] = defaultdict(Counter)
    for gold_tags, pred_tags in zip(gold, pred):
        _add_counts(counts, match_counts(bio_to_spans(gold_tags, strict=False),
                                         bio_to_spans(pred_tags, strict=False), "lenient"))
    return summarize_counts(counts)


def _seqeval_strict(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, Any]:
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    # Both mode="strict" and scheme=IOB2, or seqeval silently falls back to conlleval.
    with warnings.catch_warnings():  # no entity at all: numpy warns on an empty mean (handled below)
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report([list(t) for t in gold], [list(t) for t in pred], mode="strict",
                                       scheme=IOB2, output_dict=True, zero_division=0)

    def row(values: Mapping[str, Any]) -> dict[str, Any]:  # numpy scalars -> plain Python
        return {"precision": float(values["precision"]), "recall": float(values["recall"]),
                "f1": float(values["f1-score"]), "support": int(values["support"])}

    types = [name for name in report if not name.endswith(" avg")]
    if not types:  # no entity anywhere: seqeval's macro average would be NaN
        return {"per_type": {}, "micro": _zero_row(), "macro": _zero_row(), "weighted": _zero_row()}
    result = {"per_type": {name: row(report[name]) for name in _ordered_types(types)}}
    for average in AVERAGES:
        result[average] = row(report[f"{average} avg"])
    return result


# ---------------------------------------------------------------------------
# Tag level: the paper's "BIO-strict" and "token-level" views, ablations, confusions
# ---------------------------------------------------------------------------


def _map_tag(tag: str, level: str, merge: Mapping[str, str] | None) -> str:
    prefix, entity_type = parse_tag(tag)
    if entity_type is None:
        return tag
    if merge:
        entity_type = merge.get(entity_type, entity_type)
    return entity_type if level == "token" else f"{prefix}-{entity_type}"


def _encode(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], level: str,
            merge: Mapping[str, str] | None):
    """``(labels, y_true, y_pred)``: the labels present (mapped, in paper order) and integer
    arrays of label indices over all words. scikit-learn is ~20x faster on integers than on
    strings, which matters for a 600k-word test set scored a dozen ways."""
    import numpy as np

    if level not in ("bio", "token"):
        raise ValueError(f"level must be 'bio' or 'token', not {level!r}")
    distinct = {tag for tags in (gold, pred) for sentence in tags for tag in sentence}
    mapped = {tag: _map_tag(tag, level, merge) for tag in distinct}
    labels = _ordered_labels(set(mapped.values()), level)
    index = {label: i for i, label in enumerate(labels)}
    code = {tag: index[label] for tag, label in mapped.items()}
    y_true, y_pred = (np.fromiter((code[tag] for sentence in tags for tag in sentence), dtype=np.int64)
                      for tags in (gold, pred))
    return labels, y_true, y_pred


def tag_scores(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    level: str = "bio",
    exclude_labels: Iterable[str] = (),
    merge: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Per-tag P/R/F over words, micro/macro/weighted averages and accuracy (scikit-learn).

    ``level="bio"`` keeps the B-/I- prefixes (the paper's "BIO-strict", Tables II-III);
    ``level="token"`` strips them (its "token-level", Figures 6-7, Table IV).
    ``merge`` maps entity types (``{"ADE": "Reason"}``) in gold and predictions alike before
    scoring. ``exclude_labels`` names labels (``"O"``, ``"B-ADE"``) or types (``"ADE"``:
    both its tags at BIO level) to leave out of the *averaged label set* through
    scikit-learn's ``labels=``, which is how the paper's "removing O" works: tokens of a
    removed label still count, e.g. gold O predicted Drug is a Drug false positive, so micro
    P and R differ. ``accuracy`` is over all words, whatever is excluded.
    """
    _check_sequences(gold, pred)
    all_labels, y_true, y_pred = _encode(gold, pred, level, merge)
    excluded = set(exclude_labels)
    kept = [i for i, label in enumerate(all_labels)
            if label not in excluded and _label_type(label, level) not in excluded]
    accuracy = float((y_true == y_pred).mean()) if len(y_true) else 0.0
    if not len(y_true) or not kept:
        return {"per_type": {}, "micro": _zero_row(), "macro": _zero_row(), "weighted": _zero_row(),
                "accuracy": accuracy}

    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=kept, average=None, zero_division=0)
    result: dict[str, Any] = {"per_type": {
        all_labels[i]: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for i, p, r, f, s in zip(kept, precision, recall, f1, support)}}
    total = int(sum(int(s) for s in support))
    for average in AVERAGES:
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=kept, average=average,
                                                     zero_division=0)
        result[average] = {"precision": float(p), "recall": float(r), "f1": float(f), "support": total}
    result["accuracy"] = accuracy  # over every word, whatever is excluded
    return result


def tag_confusion(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], level: str = "bio",
    merge: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Word counts by (gold tag, predicted tag): ``{"labels", "matrix"}``, rows gold, columns predicted."""
    import numpy as np

    _check_sequences(gold, pred)
    labels, y_true, y_pred = _encode(gold, pred, level, merge)
    size = len(labels)
    matrix = np.bincount(y_true * size + y_pred, minlength=size * size).reshape(size, size)
    return {"level": level, "labels": labels, "matrix": matrix.tolist()}


def top_confusions(confusion: Mapping[str, Any], k: int = 15) -> list[dict[str, Any]]:
    """The ``k`` largest off-diagonal cells: ``[{"gold", "pred", "count"}]``, tag names only."""
    labels, matrix = confusion["labels"], confusion["matrix"]
    cells = [{"gold": labels[i], "pred": labels[j], "count": int(matrix[i][j])}
             for i in range(len(labels)) for j in range(len(labels)) if i != j and matrix[i][j]]
    cells.sort(key=lambda cell: (-cell["count"], labels.index(cell["gold"]), labels.index(cell["pred"])))
    return cells[:k]


ABLATION_TITLES = {
    "remove_O": "Removing label 'O': only the entity labels",
    "remove_ADE_Reason": "Removing labels 'Reason' and 'ADE': keeping 'O' and the other labels",
    "remove_O_ADE_Reason": "Removing labels 'O', 'Reason' and 'ADE': only the other entity labels",
    "merge_ADE_into_Reason": "Merging 'ADE' into 'Reason': keeping all others",
}


def paper_ablations(entity_types: Iterable[str]) -> list[tuple[str, tuple[str, ...], dict[str, str] | None]]:
    """The paper's Table IV ablations as ``(name, exclude_labels, merge)``, scored at token level.

    Removing O applies to any label set; the three ADE/Reason ablations need both types.
    """
    entity_types = set(entity_types)
    ablations: list[tuple[str, tuple[str, ...], dict[str, str] | None]] = [("remove_O", ("O",), None)]
    if {"ADE", "Reason"} <= entity_types:
        ablations += [
            ("remove_ADE_Reason", ("ADE", "Reason"), None),
            ("remove_O_ADE_Reason", ("O", "ADE", "Reason"), None),
            ("merge_ADE_into_Reason", (), {"ADE": "Reason"}),
        ]
    return ablations


def headline_metrics(strict: Mapping[str, Any], lenient: Mapping[str, Any]) -> dict[str, float]:
    """Strict entity micro P/R/F1 and macro F1 and lenient micro F1, from :func:`entity_scores`
    results: the numbers every table leads with (the benchmark's result files hold these)."""
    strict_view = entity_view("strict")
    metrics = {metric_name(strict_view, "micro", short): strict["micro"][key] for key, short in STATS}
    metrics[STRICT_MACRO_F1] = strict["macro"]["f1"]
    metrics[LENIENT_MICRO_F1] = lenient["micro"]["f1"]
    return metrics


def ner_metrics(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Flat metrics for ``Trainer`` ``compute_metrics``, named as in :func:`flat_metrics`:
    :func:`headline_metrics`, strict weighted F1, token-level macro F1 (O included, as in the
    paper) and strict F1 per type (:func:`type_metric_name`)."""
    strict = entity_scores(gold, pred, "strict")
    metrics = headline_metrics(strict, entity_scores(gold, pred, "lenient"))
    metrics[metric_name(entity_view("strict"), "weighted")] = strict["weighted"]["f1"]
    metrics[metric_name(TOKEN_VIEW.name, "macro")] = tag_scores(
        gold, pred, TOKEN_VIEW.level, TOKEN_VIEW.exclude_labels)["macro"]["f1"]
    for entity_type, row in strict["per_type"].items():
        metrics[type_metric_name(entity_type)] = row["f1"]
    return {key: float(value) for key, value in metrics.items()}


# ---------------------------------------------------------------------------
# One run: the full report
# ---------------------------------------------------------------------------


def evaluate_run(
    pred_rows: Sequence[Mapping[str, Any]],
    ablations: Sequence[tuple[str, Sequence[str], Mapping[str, str] | None]] | None = None,
    top_k: int = 15,
) -> dict[str, Any]:
    """Everything the paper reports, from one run's prediction rows (``gold_tags``/``pred_tags``).

    ``ablations`` defaults to :func:`paper_ablations` of the types present. Rows without
    gold tags (unlabelled text) are skipped and counted.
    """
    labelled = [row for row in pred_rows if row.get("gold_tags") is not None]
    if not labelled:
        raise ValueError("no prediction row has gold_tags: nothing to score")
    gold = [list(row["gold_tags"]) for row in labelled]
    pred = [list(row["pred_tags"]) for row in labelled]
    _check_sequences(gold, pred)
    if ablations is None:
        ablations = paper_ablations(entity_types_of(tag for sentence in gold + pred for tag in sentence))

    confusion = tag_confusion(gold, pred, level="bio")
    confusion["top"] = top_confusions(confusion, top_k)
    return {
        "unit": "word",
        "num_sentences": len(gold),
        "num_words": sum(len(tags) for tags in gold),
        "num_unlabelled_sentences_skipped": len(pred_rows) - len(labelled),
        "entity": {mode: entity_scores(gold, pred, mode) for mode, _ in ENTITY_MODES},
        "tag": {view.name: tag_scores(gold, pred, view.level, view.exclude_labels) for view in TAG_VIEWS},
        "ablations": {
            name: {"level": "token", "exclude_labels": list(exclude), "merge": dict(merge or {}),
                   "scores": tag_scores(gold, pred, "token", exclude_labels=exclude, merge=merge)}
            for name, exclude, merge in ablations
        },
        "confusion": confusion,
        "notes": [WORD_LEVEL_NOTE, REMOVAL_NOTE, LENIENT_NOTE],
    }


# ---------------------------------------------------------------------------
# Relations: n2c2-2018 official-style scoring
# ---------------------------------------------------------------------------

# --relation_setting: where the predicted relations' entities came from. The scores are computed the same
# way in both; the setting only labels the report (the scorer cannot tell), and
# "pred_relations_with_unmatched_argument" is the number that tells the two apart.
RELATION_SETTINGS = {
    "end_to_end": "end to end (the system's entities and relations against gold)",
    "gold_entities": "on gold entities (relations predicted between the gold entities)",
}
DEFAULT_RELATION_SETTING = "end_to_end"

RELATION_NOTE = (
    "Relations follow the n2c2-2018 official script (Relation.equals): a predicted relation is correct when "
    "its type is a gold relation's type and Arg1 (the attribute) equals that relation's Arg1 and Arg2 (the drug) "
    "its Arg2 as entities: same entity type and, strict, the same first start and last end; lenient, any "
    "overlap. Swapped arguments never match. Matching pares down as for entities: predicted relations are "
    "visited in file order and one that matches a gold relation already matched is dropped (neither true nor "
    "false positive). An exact repeat within one note (same type and arguments) is counted once on each side "
    "beforehand (duplicate_relations; the official script counts every copy). Micro sums counts over all documents; "
    "macro and weighted average over relation types."
)

# A relation as the scorer sees it: (relation type, arg1, arg2), each argument (entity type, start, end).
RelationArgument = tuple[str, int, int]
RelationKey = tuple[str, RelationArgument, RelationArgument]


def document_relations(document) -> list[RelationKey]:
    """The relations of a ``corpus_io`` document as ``(type, arg1, arg2)``, in file order.

    An argument is its entity's ``(type, start, end)``: first start and last end, so discontinuous
    entities collapse as the official script reads them (and as :func:`match_counts` scores them).
    A document with no relations (CoNLL input), or an object without a ``relations`` attribute, has
    none. A relation naming an entity
    id that is not among the document's entities is a ``ValueError`` (the brat reader never makes one:
    it reports such a line as ``unknown_argument``).
    """
    entities = {entity.id: entity for entity in document.entities}
    relations = []
    for relation in getattr(document, "relations", None) or ():
        arguments = []
        for role, entity_id in (("Arg1", relation.arg1), ("Arg2", relation.arg2)):
            entity = entities.get(entity_id)
            if entity is None:
                raise ValueError(f"document {document.doc_id}: relation {relation.id}'s {role} {entity_id} is not "
                                 f"one of its entities")
            arguments.append((entity.type, entity.start, entity.end))
        relations.append((relation.type, arguments[0], arguments[1]))
    return relations


def match_relation_counts(
    gold_relations: Sequence[RelationKey],
    pred_relations: Sequence[RelationKey],
    mode: str = "strict",
) -> dict[str, dict[str, int]]:
    """True/false positives and false negatives per relation type for one document, n2c2-2018 style.

    Relations are ``(type, (arg1_type, start, end), (arg2_type, start, end))`` in file order
    (:func:`document_relations`). This is the relation half of the official script's
    ``SingleEvaluator``, with ``Relation.equals``:

    * same relation type, ``arg1`` equals the gold ``arg1`` and ``arg2`` the gold ``arg2`` by
      ``ClinicalConcept.equals`` (same entity type and, strict, same start and end; lenient, any
      overlap). Arguments are compared in place, never crosswise: a relation with its attribute
      and drug swapped matches nothing, in either mode.
    * "pare down matches", exactly as :func:`match_counts` does for entities (one loop,
      ``_pare_down_counts``): predictions are visited in order; one that matches a gold relation
      already matched by an earlier prediction is dropped, counted neither as a true nor as a
      false positive. So an exact duplicate of a correct relation costs nothing (1 tp), while
      duplicates of a wrong relation are each a false positive, as the script counts every kept
      predicted relation. Lenient, a prediction whose arguments overlap two gold relations'
      (two drugs inside one predicted drug span) finds one of them; and, as for entities, a
      prediction that matches a new gold relation *and* an already matched one is dropped and
      the new one stays unfound.
    * ``tp`` = kept predictions that match some gold relation; ``fp`` = kept - tp; ``fn`` = gold - tp.

    The document scorers (:func:`score_relations`, :func:`score_brat_folders`) give it each note's distinct
    relations (:func:`distinct`): there an exact repeat counts once on either side, right or wrong.
    """
    if mode not in dict(ENTITY_MODES):
        raise ValueError(f"mode must be 'strict' or 'lenient', not {mode!r}")
    spans_equal = _span_equals(mode)

    def argument_equals(gold: RelationArgument, pred: RelationArgument) -> bool:
        return gold[0] == pred[0] and spans_equal(gold[1:], pred[1:])

    def equals(gold: RelationKey, pred: RelationKey) -> bool:
        return argument_equals(gold[1], pred[1]) and argument_equals(gold[2], pred[2])

    # Matches need the same relation type, so each type is independent; file order within a type is kept.
    gold_by_type: dict[str, list[RelationKey]] = defaultdict(list)
    pred_by_type: dict[str, list[RelationKey]] = defaultdict(list)
    for relation in gold_relations:
        gold_by_type[relation[0]].append(relation)
    for relation in pred_relations:
        pred_by_type[relation[0]].append(relation)
    counts = {}
    for relation_type in dict.fromkeys([*gold_by_type, *pred_by_type]):
        tp, fp, fn = _pare_down_counts(gold_by_type.get(relation_type, []), pred_by_type.get(relation_type, []),
                                       equals)
        counts[relation_type] = {"tp": tp, "fp": fp, "fn": fn}
    return counts


class _RelationTally:
    """Relation counts summed document by document (:func:`score_relations`, :func:`score_brat_folders`)."""

    def __init__(self) -> None:
        self.counts = {mode: defaultdict(Counter) for mode, _ in ENTITY_MODES}
        self.num_documents = self.num_gold = self.num_pred = self.unmatched_argument = 0
        self.duplicates = Counter()
        self.invalid: list[dict[str, Any]] = []

    def add(self, gold_document, pred_document=None) -> None:
        """One document; ``pred_document`` None (no prediction file) counts as no predicted relations. Exact
        duplicates count once on each side (:func:`distinct`, counted); a predicted relation whose arguments cannot be
        right (``corpus_io.relation_argument_problem``) is scored, a false positive as in the official script, and
        listed by document, line and kind."""
        gold, gold_repeats = distinct(document_relations(gold_document))
        pred, pred_repeats = distinct(document_relations(pred_document) if pred_document is not None else [])
        self.duplicates.update(gold=gold_repeats, pred=pred_repeats)
        if pred_document is not None and getattr(pred_document, "relations", None):
            entities = {entity.id: entity for entity in pred_document.entities}
            known_types = set(N2C2_ENTITY_TYPES) | {entity.type for entity in pred_document.entities}
            for relation in pred_document.relations:
                problem = relation_argument_problem(relation.id, relation.type, entities[relation.arg1],
                                                    entities[relation.arg2], known_types)
                if problem:
                    self.invalid.append({"document": pred_document.doc_id, "line": relation.line, "kind": problem[0]})
        # Strict entity identity, as the official script compares arguments (type, start, end).
        gold_entities = {(entity.type, entity.start, entity.end) for entity in gold_document.entities}
        self.unmatched_argument += sum(1 for _, arg1, arg2 in pred
                                       if arg1 not in gold_entities or arg2 not in gold_entities)
        self.num_documents += 1
        self.num_gold += len(gold)
        self.num_pred += len(pred)
        for mode, total in self.counts.items():
            _add_counts(total, match_relation_counts(gold, pred, mode))

    def report(self, setting: str) -> dict[str, Any]:
        return {
            "setting": setting,
            "setting_title": RELATION_SETTINGS[setting],
            "num_documents": self.num_documents,
            "num_gold_relations": self.num_gold,
            "num_pred_relations": self.num_pred,
            # What separates the settings: on gold entities this is 0 (every argument is a gold entity).
            "pred_relations_with_unmatched_argument": self.unmatched_argument,
            # Exact repeats in a note, counted once (num_*_relations count the distinct ones).
            "duplicate_relations": {"gold": self.duplicates["gold"], "pred": self.duplicates["pred"]},
            # Predicted relations that cannot be right (an entity with itself, arguments reversed or of another type):
            # scored as false positives; listed by document, line and kind (corpus_io.INVALID_RELATION_KINDS).
            "invalid_pred_relations": {"by_kind": dict(sorted(Counter(item["kind"] for item in self.invalid).items())),
                                       "lines": list(self.invalid)},
            **{mode: summarize_counts(total, with_counts=True, order=N2C2_RELATION_TYPES)
               for mode, total in self.counts.items()},
            "notes": [RELATION_NOTE],
        }


def _check_relation_setting(setting: str) -> None:
    if setting not in RELATION_SETTINGS:
        raise ValueError(f"relation setting must be one of {', '.join(RELATION_SETTINGS)}, not {setting!r}")


def score_relations(gold_documents: Iterable[Any], pred_documents: Iterable[Any], *,
                    setting: str = DEFAULT_RELATION_SETTING) -> dict[str, Any]:
    """Strict and lenient relation P/R/F per relation type and micro, n2c2-2018 style, without files.

    ``gold_documents`` and ``pred_documents`` are ``corpus_io.BratDocument`` s (entities and
    ``relations``) paired by position, the same document on both sides (their ``doc_id`` must
    agree); a ``None`` prediction counts as no predicted relations. Matching is
    :func:`match_relation_counts` per document, counts summed over documents. The result is the
    ``relations`` section of the brat report: ``setting`` (:data:`RELATION_SETTINGS`, a label
    only), ``num_documents``, ``num_gold_relations``, ``num_pred_relations``,
    ``pred_relations_with_unmatched_argument`` (predicted relations with an argument that equals no
    gold entity, strict), ``duplicate_relations`` (exact repeats in a note counted once, ``{gold, pred}``;
    the ``num_*`` count distinct relations), ``invalid_pred_relations`` (predicted relations that
    cannot be right, scored as false positives: ``by_kind`` and ``lines``), ``strict`` and ``lenient``
    (``per_type``, ``micro``, ``macro``, ``weighted``, with tp/fp/fn) and ``notes``.
    """
    _check_relation_setting(setting)
    gold_documents, pred_documents = list(gold_documents), list(pred_documents)
    if len(gold_documents) != len(pred_documents):
        raise ValueError(f"{len(gold_documents)} gold documents but {len(pred_documents)} predicted ones")
    tally = _RelationTally()
    for gold, pred in zip(gold_documents, pred_documents):
        if pred is not None and pred.doc_id != gold.doc_id:
            raise ValueError(f"documents are paired by position: gold {gold.doc_id} faces prediction {pred.doc_id}")
        tally.add(gold, pred)
    return tally.report(setting)


# ---------------------------------------------------------------------------
# Brat folders: n2c2-2018 official-style scoring
# ---------------------------------------------------------------------------


def _ann_types(ann_text: str, prefix: str = "T") -> set[str]:
    """The types named on the ``T`` lines (``prefix="R"``: relation lines) of an ``.ann``'s text (the type field)."""
    types = set()
    for line in split_lines(ann_text):  # \r, \n and \r\n alike: a CR-only file has lines too
        fields = line.split("\t")
        if line.startswith(prefix) and len(fields) >= 2 and fields[1].split():
            types.add(fields[1].split()[0])
    return types


def _unreadable(path, error: OSError) -> BratFormatError:
    """An ``OSError`` as a :class:`BratFormatError`: the file and the system's reason, nothing of its text."""
    return BratFormatError(error.filename or path, None, f"cannot be read ({error.strerror or type(error).__name__})",
                           "unreadable")


def _read_ann_text(path: Path) -> str:
    """An ``.ann``'s text; whatever stops it being read is a :class:`BratFormatError` with a kind."""
    if path.is_symlink() and not path.exists():
        raise BratFormatError(path, None, "dangling symbolic link (its target does not exist)", "dangling_symlink")
    if not path.is_file():  # a folder named x.ann, or a pipe that would block the read
        raise BratFormatError(path, None, "not a regular file", "not_a_file")
    try:
        return read_text(path)  # not UTF-8: BratFormatError(kind="not_utf8") with the line
    except OSError as error:
        raise _unreadable(path, error) from None


def _read_brat(txt: Path, ann: Path, problems: list | None = None, check_relations: bool = True,
               label_map: dict | None = None, relation_map: dict | None = None):
    # read_brat_document accepts only the nine n2c2 types unless told otherwise (entity_types=None
    # means n2c2, not "any"); a system may write other types, which must count as false
    # positives rather than fail, so name every type the file uses. Relation types likewise (an identity
    # relation map: without one the reader accepts only the n2c2 relation types). A gold corpus with types of
    # its own is read through its maps (as prepare_n2c2.py reads it): unmapped types are left out.
    ann_text = _read_ann_text(ann)
    types = None if label_map is not None else sorted(set(N2C2_ENTITY_TYPES) | _ann_types(ann_text))
    if relation_map is None and label_map is None:
        relation_map = {name: name for name in sorted(set(N2C2_RELATION_TYPES) | _ann_types(ann_text, "R"))}
    try:
        # validate_text=False: scoring needs offsets only, and systems may normalise the surface text.
        return read_brat_document(txt, ann, entity_types=types, label_map=label_map, relation_map=relation_map,
                                  validate_text=False, problems=problems, check_relations=check_relations)
    except OSError as error:  # the .txt, or a file that changed since it was first read
        raise _unreadable(ann, error) from None


def _brat_spans(document, entity_types: Optional[set[str]]) -> list[tuple[str, int, int]]:
    # Discontinuous spans collapse to first start .. last end, as the official script reads them.
    return [(entity.type, entity.start, entity.end) for entity in document.entities
            if entity_types is None or entity.type in entity_types]


def score_entities(gold_documents: Iterable[Any], pred_documents: Iterable[Any]) -> dict[str, Any]:
    """Strict and lenient entity P/R/F per type and micro/macro/weighted over character spans, without files:
    what :func:`score_brat_folders` computes for each gold/predicted ``.ann`` pair, for ``corpus_io``
    documents paired by position (a ``None`` prediction counts as no predicted entities), with
    ``duplicate_entities`` (exact duplicates in a note, counted once: ``{gold, pred}``)."""
    totals = {mode: defaultdict(Counter) for mode, _ in ENTITY_MODES}
    duplicates = Counter()
    for gold, pred in zip(gold_documents, pred_documents, strict=True):
        gold_spans, gold_repeats = distinct(_brat_spans(gold, None))
        pred_spans, pred_repeats = distinct(_brat_spans(pred, None) if pred is not None else [])
        duplicates.update(gold=gold_repeats, pred=pred_repeats)
        for mode, total in totals.items():
            _add_counts(total, match_counts(gold_spans, pred_spans, mode))
    return {**{mode: summarize_counts(total, with_counts=True) for mode, total in totals.items()},
            "duplicate_entities": {"gold": duplicates["gold"], "pred": duplicates["pred"]}}


def score_brat_folders(
    gold_dir: str | Path,
    pred_dir: str | Path,
    entity_types: Iterable[str] | None = None,
    relation_setting: str = DEFAULT_RELATION_SETTING,
    label_map: dict[str, str | None] | None = None,
    relation_map: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Strict and lenient P/R/F per type and micro over all documents of two brat folders.

    ``label_map``/``relation_map`` (``corpus_io.load_label_map``/``load_relation_map``) read the gold of a corpus
    with types of its own as ``prepare_n2c2.py`` reads it (unmapped types left out); predictions are read as they
    are (a model trained on the mapped data writes the mapped types).

    Every gold ``.ann`` is scored; a missing prediction file counts as no predictions, and so
    does one that cannot be read (not UTF-8, unreadable, not a file, a dangling link): it is
    skipped with a warning and listed (document, line, kind). The text comes from the gold
    folder's ``.txt`` (else the prediction folder's). Every entity type in the files is read,
    so a system's extra types count as false positives in the micro figures, as in the
    official script; pass ``entity_types`` to score only those. Malformed prediction lines
    are skipped and listed (document, line, kind). Missing folders and a gold file that is
    missing its text, cannot be read or is malformed raise :class:`BratFormatError`.
    Matching is :func:`match_counts`.

    Relations (``R`` lines) are scored too when the gold files have any: the report gets a
    ``relations`` section (:func:`score_relations`; ``relation_setting`` only labels it). Without
    gold ``R`` lines there is no such section, whatever the predictions hold. Every relation type
    in the files is read, so a system's extra relation types are false positives, as for entities.
    A prediction's relation whose argument is not one of its entities is a skipped line
    (``unknown_argument``); a missing or unreadable prediction file counts as no predicted
    relations. ``entity_types`` filters the entity scores only: relations are scored on every
    entity they name. A gold relation whose arguments cannot be right (an entity with itself, an
    ``Attribute-Drug`` relation with its arguments reversed or of another type:
    ``corpus_io.INVALID_RELATION_KINDS``) is a :class:`BratFormatError` naming file and line; a
    predicted one is scored (a false positive, as the official script counts it) and listed in
    ``relations["invalid_pred_relations"]``.

    Exact duplicates within a note (same type, start and end) count once on each side, as do
    duplicate relations; ``duplicate_entities`` (and ``relations["duplicate_relations"]``) say how
    many were set aside per side, and ``num_gold_entities``/``num_pred_entities`` count the distinct ones.
    """
    _check_relation_setting(relation_setting)
    gold_dir, pred_dir = Path(gold_dir), Path(pred_dir)
    for flag, folder in (("--gold_brat", gold_dir), ("--pred_brat", pred_dir)):
        if not folder.is_dir():
            reason = "not a folder" if folder.exists() else "no such folder"
            raise BratFormatError(folder, None, f"{reason} ({flag})", "not_a_folder")
    gold_files = sorted(gold_dir.glob("*.ann"))
    if not gold_files:
        raise BratFormatError(gold_dir, None, "no .ann files in the gold folder (--gold_brat)", "empty_folder")
    keep = set(entity_types) if entity_types is not None else None
    totals = {mode: defaultdict(Counter) for mode, _ in ENTITY_MODES}
    relations = _RelationTally()
    missing, skipped, unreadable, num_gold, num_pred = [], [], [], 0, 0
    duplicates = Counter()
    for gold_ann in gold_files:
        doc_id = gold_ann.stem
        txt = next((path for path in (gold_ann.with_suffix(".txt"), pred_dir / f"{doc_id}.txt") if path.is_file()),
                   None)
        if txt is None:
            raise BratFormatError(gold_ann, None, f"no matching .txt file (looked for {doc_id}.txt in the gold "
                                                  f"folder, then in the prediction folder)", "missing_txt")
        gold_document = _read_brat(txt, gold_ann, label_map=label_map, relation_map=relation_map)
        gold_spans, gold_repeats = distinct(_brat_spans(gold_document, keep))
        pred_ann = pred_dir / f"{doc_id}.ann"
        pred_spans, pred_document, pred_repeats = [], None, 0
        if pred_ann.is_symlink() or pred_ann.exists():  # a dangling link is there, just unreadable
            problems: list = []
            try:
                # Predicted relations that cannot be right are scored (false positives), and listed by the tally.
                pred_document = _read_brat(txt, pred_ann, problems, check_relations=False)
                pred_spans, pred_repeats = distinct(_brat_spans(pred_document, keep))
            except BratFormatError as error:
                # One bad system file must not cost the scoring of the others. str(error) is
                # file:line: reason (no note text); kinds and line numbers go to the report.
                logger.warning("%s; skipped: document %s is scored as no predictions (its %d gold entities count "
                               "as false negatives)", error, doc_id, len(gold_spans))
                unreadable.append({"document": doc_id, "line": error.line, "kind": error.kind})
            # Line numbers and kinds only: a problem's message may quote corpus text.
            skipped += [{"document": doc_id, "line": p.line, "kind": p.kind} for p in problems]
        else:
            missing.append(doc_id)
        num_gold, num_pred = num_gold + len(gold_spans), num_pred + len(pred_spans)
        duplicates.update(gold=gold_repeats, pred=pred_repeats)
        for mode, total in totals.items():
            _add_counts(total, match_counts(gold_spans, pred_spans, mode))
        relations.add(gold_document, pred_document)
    if missing:
        logger.warning("%d gold documents have no prediction file in %s (scored as empty)", len(missing), pred_dir)
    if unreadable:
        logger.warning("%d of %d prediction files could not be read and were skipped (their documents are scored "
                       "as no predictions; listed in the report)", len(unreadable), len(gold_files) - len(missing))
    if skipped:
        logger.warning("%d malformed prediction lines skipped (listed in the report)", len(skipped))
    if duplicates["gold"] or duplicates["pred"]:
        logger.warning("exact duplicate entities (same type, start and end in one note) counted once: %d gold, %d "
                       "predicted", duplicates["gold"], duplicates["pred"])
    if relations.invalid and relations.num_gold:
        logger.warning("%d predicted relations cannot be right (an entity with itself, arguments reversed or of "
                       "another type): scored as false positives, listed in the report", len(relations.invalid))
    gold_ids = {path.stem for path in gold_files}
    unmatched = sorted(path.stem for path in pred_dir.glob("*.ann") if path.stem not in gold_ids)
    if unmatched:
        logger.warning("%d prediction files have no gold file and are ignored", len(unmatched))
    # Relations only when the gold standard has some: entity-only corpora keep the report they had.
    relation_section = {"relations": relations.report(relation_setting)} if relations.num_gold else {}
    if not relations.num_gold and relations.num_pred:
        logger.warning("the prediction files hold %d relations but the gold files none: relations are not scored",
                       relations.num_pred)
    return {
        "mode": "brat",
        "unit": "character",
        "gold_dir": str(gold_dir),
        "pred_dir": str(pred_dir),
        "num_documents": len(gold_files),
        "num_gold_entities": num_gold,
        "num_pred_entities": num_pred,
        "duplicate_entities": {"gold": duplicates["gold"], "pred": duplicates["pred"]},
        "missing_predictions": missing,
        "unmatched_predictions": unmatched,
        "skipped_prediction_files": unreadable,
        "skipped_prediction_lines": skipped,
        **{mode: summarize_counts(total, with_counts=True) for mode, total in totals.items()},
        **relation_section,
        "notes": [
            "n2c2-2018 official-style scoring: strict = same type, same start and end; lenient = same "
            "type, any overlap; discontinuous spans collapse to first start..last end; micro sums "
            "counts over all documents. Macro and weighted here average over types (the official "
            "script's macro averages over documents).",
            LENIENT_NOTE,
            DUPLICATE_NOTE,
        ],
    }


# ---------------------------------------------------------------------------
# Several runs: comparison tables, seed aggregation, learning curve
# ---------------------------------------------------------------------------

# Run_info fields that define a configuration: runs equal on all of them differ only by seed.
_GROUP_FIELDS = ("model_label", "model_name_or_path", "config_name", "use_crf", "train_split", "train_fraction",
                 "efficient_training")


def _flat_scores(view: str, scores: Mapping[str, Any]) -> dict[str, float]:
    return {metric_name(view, average, short): scores[average][key] for average in AVERAGES for key, short in STATS}


def flat_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """One run's headline numbers as a flat ``{metric_name: value}`` row (the comparison tables)."""
    row = {}
    for view in TAG_VIEWS:
        row |= _flat_scores(view.name, report["tag"][view.name])
        row[view.accuracy_name] = report["tag"][view.name]["accuracy"]
    for mode, _ in ENTITY_MODES:
        row |= _flat_scores(entity_view(mode), report["entity"][mode])
    for name, ablation in report["ablations"].items():
        row |= _flat_scores(name, ablation["scores"])
    return row


def _group_label(info: Mapping[str, Any], fallback: str) -> str:
    label = info.get("model_label") or fallback
    extras = []
    if info.get("efficient_training"):
        extras.append("efficient")
    fraction = info.get("train_fraction")
    if fraction not in (None, 1, 1.0):
        extras.append(f"{float(fraction):g} of train")
    return f"{label} ({', '.join(extras)})" if extras else label


def run_title(name: str, run_info: Mapping[str, Any] | None) -> str:
    """How a figure names a run: model label (and training extras) and seed, else its folder name."""
    if not run_info:
        return name
    seed = run_info.get("seed")
    return _group_label(run_info, name) + ("" if seed is None else f", seed {seed}")


def aggregate_runs(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Group runs that differ only by seed; mean and sample standard deviation of each metric.

    ``runs``: ``[{"name", "run_info", "metrics"}]``. Returns one dict per group, in first-seen
    order: ``label``, ``series`` (the learning-curve line), ``config``, ``runs``, ``seeds``,
    ``n``, ``num_train_sentences`` (mean), ``mean``, ``std`` (None for a single run) and
    ``left_out``: runs that repeat a seed of their group (``{"run", "seed", "same_seed_as",
    "reason"}``). A repeated seed is the same sample twice, not a second one, so only the first
    run given with each seed counts, and ``n`` is the number of distinct seeds.
    """
    groups: dict[tuple, dict[str, Any]] = {}
    for run in runs:
        info = run.get("run_info") or {}
        key = tuple(json.dumps(info.get(name), sort_keys=True) for name in _GROUP_FIELDS) if info else (run["name"],)
        group = groups.setdefault(key, {
            "label": _group_label(info, run["name"]),
            "series": (info.get("model_label") or run["name"]) + (" (efficient)" if info.get("efficient_training") else ""),
            "config": {name: info.get(name) for name in _GROUP_FIELDS},
            "runs": [], "seeds": [], "left_out": [], "_metrics": [], "_train": [],
        })
        seed = info.get("seed")
        if seed is not None and seed in group["seeds"]:
            kept = group["runs"][group["seeds"].index(seed)]
            group["left_out"].append({"run": run["name"], "seed": seed, "same_seed_as": kept,
                                      "reason": f"same seed ({seed}) as {kept}: not an independent sample"})
            logger.warning("%s left out of the comparison: same seed as %s", run["name"], kept)
            continue
        group["runs"].append(run["name"])
        group["seeds"].append(info.get("seed"))
        group["_metrics"].append(run["metrics"])
        if info.get("num_train_sentences") is not None:
            group["_train"].append(float(info["num_train_sentences"]))
    result = []
    for group in groups.values():
        metrics, train = group.pop("_metrics"), group.pop("_train")
        group["n"] = len(metrics)
        group["num_train_sentences"] = statistics.fmean(train) if train else None
        columns = [column for column in metrics[0] if all(column in m for m in metrics)]
        group["mean"] = {c: statistics.fmean(m[c] for m in metrics) for c in columns}
        # Sample standard deviation; None for a single run (no spread to report).
        group["std"] = {c: (statistics.stdev(m[c] for m in metrics) if len(metrics) > 1 else None) for c in columns}
        result.append(group)
    # Same label for different configs (e.g. two model paths behind one model_label): disambiguate.
    seen = Counter(group["label"] for group in result)
    for group in result:
        if seen[group["label"]] > 1:
            group["label"] += f" [{group['config'].get('model_name_or_path') or group['runs'][0]}]"
    return result


LEARNING_CURVE_METRICS = ((metric_name(BIO_VIEW.name, "macro"), "BIO-strict macro F1"),
                          (STRICT_MICRO_F1, "entity strict micro F1"))


def learning_curve(groups: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Points per series (model) when the groups span more than one training-set size."""
    sized = [g for g in groups if g["num_train_sentences"] is not None or g["config"].get("train_fraction") is not None]
    x_key = "num_train_sentences" if all(g["num_train_sentences"] is not None for g in sized) else "train_fraction"
    xs = {g["num_train_sentences"] if x_key == "num_train_sentences" else g["config"]["train_fraction"] for g in sized}
    if len(xs) < 2:
        return None
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for group in sized:
        x = group["num_train_sentences"] if x_key == "num_train_sentences" else group["config"]["train_fraction"]
        point = {"x": float(x), "train_fraction": group["config"].get("train_fraction"), "n": group["n"]}
        for metric, _ in LEARNING_CURVE_METRICS:
            point[metric] = group["mean"].get(metric)
            point[f"{metric}_std"] = group["std"].get(metric)
        series[group["series"]].append(point)
    for points in series.values():
        points.sort(key=lambda point: point["x"])
    if not any(len({point["x"] for point in points}) > 1 for points in series.values()):
        return None  # e.g. full vs efficient training of one model: separate series, one point each
    return {"x": x_key, "metrics": [m for m, _ in LEARNING_CURVE_METRICS], "series": dict(series)}


# ---------------------------------------------------------------------------
# Rendering: Markdown, CSV, PNG
# ---------------------------------------------------------------------------


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _is_number(cell: Any) -> bool:
    return cell is None or isinstance(cell, (int, float)) or bool(re.fullmatch(r"[-+]?[\d.]+( ± [\d.]+)?", str(cell)))


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 3) -> str:
    # Numbers right-aligned, names left-aligned.
    align = ["---:" if rows and all(_is_number(row[i]) for row in rows) else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_fmt(cell, digits) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _scores_table(scores: Mapping[str, Any], first: str = "Type", digits: int = 3) -> str:
    rows = [[name, row["precision"], row["recall"], row["f1"], row["support"]]
            for name, row in scores["per_type"].items()]
    rows += [[f"**{average} avg**", scores[average]["precision"], scores[average]["recall"],
              scores[average]["f1"], scores[average]["support"]] for average in AVERAGES]
    if "accuracy" in scores:
        rows.append(["**accuracy**", None, None, scores["accuracy"], None])
    return _md_table([first, "P", "R", "F1", "Support"], rows, digits)


def _averages_table(named_scores: Sequence[tuple[str, Mapping[str, Any]]], digits: int = 3) -> str:
    rows = []
    for name, scores in named_scores:
        rows.append([f"*{ABLATION_TITLES.get(name, name)}*", None, None, None])
        for average in AVERAGES:
            rows.append([f"{average} avg", scores[average]["precision"], scores[average]["recall"],
                         scores[average]["f1"]])
    return _md_table(["Metrics", "P", "R", "F1"], rows, digits)


def render_run_markdown(name: str, report: Mapping[str, Any], run_info: Mapping[str, Any] | None = None,
                        digits: int = 3, confusion_png: str | None = None) -> str:
    info = run_info or {}
    parts = [f"## {name}", ""]
    if info.get("synthetic"):
        parts += [f"**Scored on {SYNTHETIC_SAMPLE}.**", ""]
    if info:
        parts.append(", ".join(f"{key}: {info[key]}" for key in
                               ("model_label", "model_name_or_path", "seed", "train_fraction",
                                "num_train_sentences", "efficient_training") if key in info))
        parts.append("")
    parts += [f"{report['num_sentences']} sentences, {report['num_words']} words scored.", ""]
    for mode, title in ENTITY_MODES:
        parts += [f"### {title}", "", _scores_table(report["entity"][mode], digits=digits), ""]
    for view in TAG_VIEWS:
        parts += [f"### {view.title}", "", _scores_table(report["tag"][view.name], "Tag", digits), ""]
    parts += ["### Ablations at token level (paper Table IV)", "",
              _averages_table([(n, a["scores"]) for n, a in report["ablations"].items()], digits), ""]
    parts += ["### Most frequent confusions (BIO tags; gold -> predicted)", ""]
    top = report["confusion"].get("top") or []
    parts.append(_md_table(["Gold", "Predicted", "Words"], [[c["gold"], c["pred"], c["count"]] for c in top])
                 if top else "No confusions.")
    if confusion_png:
        parts += ["", f"![confusion matrix]({confusion_png})"]
    parts += ["", *[f"> {note}" for note in report["notes"]], ""]
    return "\n".join(parts)


def render_brat_markdown(report: Mapping[str, Any], digits: int = 4) -> str:
    strict, lenient = report["strict"], report["lenient"]
    rows = []
    for entity_type in _ordered_types(set(strict["per_type"]) | set(lenient["per_type"])):
        s, l = strict["per_type"].get(entity_type, _zero_row()), lenient["per_type"].get(entity_type, _zero_row())
        rows.append([entity_type, s["precision"], s["recall"], s["f1"], l["precision"], l["recall"], l["f1"],
                     s["support"]])
    for average in AVERAGES:
        s, l = strict[average], lenient[average]
        rows.append([f"**Overall ({average})**", s["precision"], s["recall"], s["f1"], l["precision"],
                     l["recall"], l["f1"], s["support"]])
    headers = ["Type", "Strict P", "Strict R", "Strict F1", "Lenient P", "Lenient R", "Lenient F1", "Gold"]
    parts = ["# n2c2-2018 official-style entity scores", "",
             f"{report['num_documents']} documents; {report['num_gold_entities']} gold and "
             f"{report['num_pred_entities']} predicted entities.", "", _md_table(headers, rows, digits), ""]
    count_rows = [[t, c["tp"], c["fp"], c["fn"], lenient["per_type"][t]["tp"], lenient["per_type"][t]["fp"],
                   lenient["per_type"][t]["fn"]] for t, c in strict["per_type"].items()]
    count_rows.append(["**micro**", strict["micro"]["tp"], strict["micro"]["fp"], strict["micro"]["fn"],
                       lenient["micro"]["tp"], lenient["micro"]["fp"], lenient["micro"]["fn"]])
    parts += ["## Counts", "", _md_table(["Type", "Strict TP", "Strict FP", "Strict FN", "Lenient TP",
                                          "Lenient FP", "Lenient FN"], count_rows), ""]
    if report["missing_predictions"]:
        parts += [f"Documents without a prediction file (scored as empty): {len(report['missing_predictions'])}.", ""]
    if report.get("skipped_prediction_files"):
        parts += [f"Prediction files that could not be read, skipped (their documents scored as no predictions): "
                  f"{len(report['skipped_prediction_files'])} (see {REPORT_JSON_FILE}).", ""]
    if report["skipped_prediction_lines"]:
        parts += [f"Malformed prediction lines skipped: {len(report['skipped_prediction_lines'])} "
                  f"(see {REPORT_JSON_FILE}).", ""]
    duplicates = report.get("duplicate_entities", {})
    if any(duplicates.values()):
        parts += [f"Exact duplicate entities (same type, start and end in one note) counted once: "
                  f"{duplicates['gold']} gold, {duplicates['pred']} predicted.", ""]
    parts += [f"> {note}" for note in report["notes"]] + [""]
    if "relations" in report:  # only when the gold files have relations: entity-only reports stay as they were
        parts += [render_relations_markdown(report["relations"], digits)]
    return "\n".join(parts)


def render_relations_markdown(relations: Mapping[str, Any], digits: int = 4) -> str:
    """The ``relations`` section of a brat report (:func:`score_relations`) as Markdown: scores and counts."""
    strict, lenient = relations["strict"], relations["lenient"]
    rows = []
    for relation_type in strict["per_type"]:  # the same types in both modes, in the official order
        s, l = strict["per_type"][relation_type], lenient["per_type"][relation_type]
        rows.append([relation_type, s["precision"], s["recall"], s["f1"], l["precision"], l["recall"], l["f1"],
                     s["support"]])
    for average in AVERAGES:
        s, l = strict[average], lenient[average]
        rows.append([f"**Overall ({average})**", s["precision"], s["recall"], s["f1"], l["precision"],
                     l["recall"], l["f1"], s["support"]])
    headers = ["Relation", "Strict P", "Strict R", "Strict F1", "Lenient P", "Lenient R", "Lenient F1", "Gold"]
    count_rows = [[t, c["tp"], c["fp"], c["fn"], lenient["per_type"][t]["tp"], lenient["per_type"][t]["fp"],
                   lenient["per_type"][t]["fn"]] for t, c in strict["per_type"].items()]
    count_rows.append(["**micro**", strict["micro"]["tp"], strict["micro"]["fp"], strict["micro"]["fn"],
                       lenient["micro"]["tp"], lenient["micro"]["fp"], lenient["micro"]["fn"]])
    parts = [f"# n2c2-2018 official-style relation scores, {relations['setting_title']}", "",
             f"{relations['num_gold_relations']} gold and {relations['num_pred_relations']} predicted relations; "
             f"{relations['pred_relations_with_unmatched_argument']} predicted relations have an argument that "
             f"matches no gold entity (strict: same type, start and end).", "",
             _md_table(headers, rows, digits), "",
             "## Relation counts", "",
             _md_table(["Relation", "Strict TP", "Strict FP", "Strict FN", "Lenient TP", "Lenient FP",
                        "Lenient FN"], count_rows), ""]
    duplicates = relations.get("duplicate_relations", {})
    if any(duplicates.values()):
        parts += [f"Exact duplicate relations (same type and arguments in one note) counted once: "
                  f"{duplicates['gold']} gold, {duplicates['pred']} predicted.", ""]
    invalid = relations.get("invalid_pred_relations", {}).get("by_kind", {})
    if invalid:
        parts += [f"Predicted relations that cannot be right, scored as false positives: {sum(invalid.values())} ("
                  + ", ".join(f"{kind} {count}" for kind, count in invalid.items()) + f"; see {REPORT_JSON_FILE}).", ""]
    parts += [f"> {note}" for note in relations["notes"]] + [""]
    return "\n".join(parts)


def _mean_std(group: Mapping[str, Any], column: str, digits: int) -> str:
    mean = group["mean"].get(column)
    if mean is None:
        return ""
    if group["std"].get(column) is not None:
        return f"{mean:.{digits}f} ± {group['std'][column]:.{digits}f}"
    return f"{mean:.{digits}f}"


def render_comparison_markdown(groups: Sequence[Mapping[str, Any]], ablation_names: Sequence[str],
                               digits: int = 3) -> str:
    def table(title: str, columns: Sequence[tuple[str, str]]) -> list[str]:
        headers = ["Model", "Train sentences", "Runs"] + [header for _, header in columns]
        rows = [[g["label"], "" if g["num_train_sentences"] is None else f"{g['num_train_sentences']:.0f}",
                 str(g["n"])] + [_mean_std(g, column, digits) for column, _ in columns] for g in groups]
        return [f"### {title}", "", _md_table(headers, rows, digits), ""]

    prf = [(short, short.upper()) for _, short in STATS]
    bio, token, strict = BIO_VIEW.name, TOKEN_VIEW.name, entity_view("strict")
    parts = ["## Comparison across runs", "",
             "Mean ± sample standard deviation over runs that differ only by seed.", ""]
    left_out = [item for g in groups for item in g["left_out"]]
    if left_out:
        parts += ["Left out of the means (only the first run given with a seed counts):", ""]
        parts += [f"- {item['run']}: {item['reason']}" for item in left_out] + [""]
    parts += table("BIO-strict macro average (paper Table II)", [(metric_name(bio, "macro", k), h) for k, h in prf])
    parts += table("BIO-strict weighted average (paper Table III)",
                   [(metric_name(bio, "weighted", k), h) for k, h in prf]
                   + [(BIO_VIEW.accuracy_name, "Accuracy (micro F1)")])
    parts += table("Token level (paper Figures 6-7)",
                   [(metric_name(token, "macro"), "Macro F1"), (metric_name(token, "weighted"), "Weighted F1"),
                    (TOKEN_VIEW.accuracy_name, "Accuracy"),
                    (metric_name(TOKEN_WITHOUT_O_VIEW.name, "macro"), "Macro F1 without O")])
    for name in ablation_names:
        parts += table(f"{ABLATION_TITLES.get(name, name)} (token level, paper Table IV)",
                       [(metric_name(name, a, k), f"{a} {h}") for a in AVERAGES for k, h in prf])
    parts += table("Entity level",
                   [(metric_name(strict, "micro", "p"), "Strict P"), (metric_name(strict, "micro", "r"), "Strict R"),
                    (STRICT_MICRO_F1, "Strict F1"), (STRICT_MACRO_F1, "Strict macro F1"),
                    (LENIENT_MICRO_F1, "Lenient F1")])
    return "\n".join(parts)


def render_learning_curve_markdown(curve: Mapping[str, Any], digits: int = 3) -> str:
    xs = sorted({point["x"] for points in curve["series"].values() for point in points})
    x_name = "training sentences" if curve["x"] == "num_train_sentences" else "training fraction"
    parts = ["## Learning curve", "",
             f"F1 by {x_name} (mean ± sd over seeds): where the lines cross is where pre-training "
             "stops paying off.", ""]
    for metric, title in LEARNING_CURVE_METRICS:
        rows = []
        for series, points in curve["series"].items():
            by_x = {point["x"]: point for point in points}
            cells = []
            for x in xs:
                point = by_x.get(x)
                if point is None or point.get(metric) is None:
                    cells.append("")
                elif point.get(f"{metric}_std") is not None:
                    cells.append(f"{point[metric]:.{digits}f} ± {point[f'{metric}_std']:.{digits}f}")
                else:
                    cells.append(f"{point[metric]:.{digits}f}")
            rows.append([series] + cells)
        parts += [f"### {title}", "", _md_table(["Model"] + [f"{x:g}" for x in xs], rows, digits), ""]
    return "\n".join(parts)


def write_comparison_csv(groups: Sequence[Mapping[str, Any]], path: Path) -> None:
    columns: list[str] = []
    for group in groups:
        columns += [c for c in group["mean"] if c not in columns]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", "model_name_or_path", "train_fraction", "efficient_training",
                         "num_train_sentences", "n_runs", "seeds", "runs"]
                        + [f"{c}_{stat}" for c in columns for stat in ("mean", "std")])
        for g in groups:
            config = g["config"]
            writer.writerow([g["label"], config.get("model_name_or_path"), config.get("train_fraction"),
                             config.get("efficient_training"), g["num_train_sentences"], g["n"],
                             " ".join("" if s is None else str(s) for s in g["seeds"]), " ".join(g["runs"])]
                            + [round(g[stat][c], 6) if g[stat].get(c) is not None else ""
                               for c in columns for stat in ("mean", "std")])


def write_confusion_csv(confusion: Mapping[str, Any], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["gold \\ predicted"] + list(confusion["labels"]))
        for label, row in zip(confusion["labels"], confusion["matrix"]):
            writer.writerow([label] + list(row))


def plot_confusion_matrix(confusion: Mapping[str, Any], path: Path, title: str = "") -> None:
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure
    import numpy as np

    labels = confusion["labels"]
    matrix = np.array(confusion["matrix"], dtype=float)
    size = max(4.0, 0.45 * len(labels) + 2)
    figure = Figure(figsize=(size + 1, size))
    axes = figure.add_subplot()
    # Log colours: O dominates by orders of magnitude; empty cells stay white.
    shown = np.ma.masked_where(matrix <= 0, matrix)
    image = axes.imshow(shown, cmap="Blues", norm=LogNorm(vmin=1, vmax=max(1.0, matrix.max())) if matrix.max() > 0 else None)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="words")
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    if len(labels) <= 25:
        threshold = math.sqrt(max(1.0, matrix.max()))
        for i in range(len(labels)):
            for j in range(len(labels)):
                if matrix[i, j]:
                    axes.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center", fontsize=5.5,
                              color="white" if matrix[i, j] > threshold else "black")
    axes.set_title(title or "Confusion matrix (words)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=150)


def plot_learning_curve(curve: Mapping[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    metrics = dict(LEARNING_CURVE_METRICS)
    figure = Figure(figsize=(5.5 * len(curve["metrics"]), 4.2))
    for index, metric in enumerate(curve["metrics"], start=1):
        axes = figure.add_subplot(1, len(curve["metrics"]), index)
        for series, points in curve["series"].items():
            points = [p for p in points if p.get(metric) is not None]
            if not points:
                continue
            axes.errorbar([p["x"] for p in points], [p[metric] for p in points],
                          yerr=[p[f"{metric}_std"] or 0.0 for p in points], marker="o", capsize=3, label=series)
        xs = [p["x"] for points in curve["series"].values() for p in points]
        if xs and min(xs) > 0 and max(xs) / min(xs) >= 20:
            axes.set_xscale("log")
        axes.set_xlabel("training sentences" if curve["x"] == "num_train_sentences" else "training fraction")
        axes.set_ylabel(metrics[metric])
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle("Learning curve: F1 against training data (mean ± sd over seeds)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=150)


def write_learning_curve_csv(curve: Mapping[str, Any], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["series", curve["x"], "train_fraction", "n_runs"]
                        + [f"{m}{suffix}" for m in curve["metrics"] for suffix in ("_mean", "_std")])
        for series, points in curve["series"].items():
            for p in points:
                writer.writerow([series, p["x"], p["train_fraction"], p["n"]]
                                + ["" if p.get(f"{m}{suffix}") is None else p[f"{m}{suffix}"]
                                   for m in curve["metrics"] for suffix in ("", "_std")])


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


@dataclass
class EvaluationArguments:
    """What to score and where the report goes."""

    output_dir: str = field(metadata={
        "help": f"Folder for {REPORT_JSON_FILE}, {REPORT_MARKDOWN_FILE}, CSV tables and PNG figures."})
    predictions: Optional[list[str]] = field(default=None, metadata={
        "help": f"Run folders (RUN_DIR/{PREDICTIONS_DIRNAME}/{TEST_PREDICTIONS_FILE} + RUN_DIR/{RUN_INFO_FILE}) or "
                "prediction JSONL files; several give a comparison table and, across train fractions, "
                "a learning curve."})
    gold_brat: Optional[str] = field(default=None, metadata={"help": "Gold brat folder (.txt + .ann)."})
    pred_brat: Optional[str] = field(default=None, metadata={"help": "System brat folder (.ann; any types)."})
    exclude_labels: list[str] = field(default_factory=list, metadata={
        "help": "Labels or types for a custom token-level ablation, e.g. O ADE Reason."})
    merge: list[str] = field(default_factory=list, metadata={
        "help": "Type merges SRC=DST for a custom token-level ablation, e.g. ADE=Reason."})
    no_paper_ablations: bool = field(default=False, metadata={
        "help": "Skip the paper's Table IV ablations (they run by default)."})
    label_map: Optional[str] = field(default=None, metadata={
        "help": "Brat mode: map the gold's entity types as prepare_n2c2.py does: a JSON file or an inline JSON object "
                "{source type: target type or null}; unmapped types are left out."})
    relation_map: Optional[str] = field(default=None, metadata={
        "help": "Brat mode: map the gold's relation types as prepare_n2c2.py does: a JSON file or an inline JSON "
                "object {name: target type or null, or {\"Arg1Type>Arg2Type\": target type}}."})
    brat_entity_types: Optional[list[str]] = field(default=None, metadata={
        "help": "Score only these types in brat mode (default: every type in the files); relations are not "
                "filtered."})
    relation_setting: str = field(default=DEFAULT_RELATION_SETTING, metadata={
        "choices": list(RELATION_SETTINGS),
        "help": "Brat mode, when the gold files have relations (R lines): where the predicted relations' entities "
                "came from, end_to_end (the system's own) or gold_entities (the gold ones). It only labels the "
                "report's relations section; the scoring is the same."})
    top_confusions: int = field(default=15, metadata={"help": "How many confusions to list."})
    digits: int = field(default=3, metadata={"help": "Decimals in Markdown tables."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Replace the report in an existing, non-empty --output_dir: remove the earlier report's files "
                "first (other files stay). Without it such a folder is refused."})


# What a report writes into --output_dir (--overwrite_output_dir removes these and nothing else).
def _parse_merge(items: Sequence[str]) -> dict[str, str]:
    merge = {}
    for item in items:
        source, separator, target = item.partition("=")
        if not separator or not source or not target:
            raise ValueError(f"--merge expects SRC=DST, got {item!r}")
        merge[source] = target
    return merge


def resolve_run(path: str | Path) -> tuple[Path, dict[str, Any] | None, str]:
    """``(predictions file, run_info or None, run name)`` for a run folder or a JSONL file."""
    path = Path(path)
    if path.is_dir():
        candidates = [run_predictions_path(path), path / TEST_PREDICTIONS_FILE]
        predictions = next((c for c in candidates if c.is_file()), None)
        if predictions is None:
            raise FileNotFoundError(f"{path}: run folder without {PREDICTIONS_DIRNAME}/{TEST_PREDICTIONS_FILE} "
                                    f"(nor {TEST_PREDICTIONS_FILE}); run_ner_crf.py --do_predict writes it")
    elif path.is_file():
        predictions = path
    else:
        raise FileNotFoundError(f"{path}: does not exist (expected a run folder with "
                                f"{PREDICTIONS_DIRNAME}/{TEST_PREDICTIONS_FILE}, or a predictions JSONL file)")
    run_dir = predictions.parent.parent if predictions.parent.name == PREDICTIONS_DIRNAME else predictions.parent
    run_info = None
    for candidate in (run_dir / RUN_INFO_FILE, predictions.parent / RUN_INFO_FILE):
        if candidate.is_file():
            run_info = json.loads(candidate.read_text(encoding="utf-8"))
            break
    if run_info is None:
        logger.warning("%s: no %s; the run is compared by its folder name only", path, RUN_INFO_FILE)
    name = run_dir.resolve().name if path.is_dir() or predictions.parent.name == PREDICTIONS_DIRNAME else predictions.stem
    return predictions, run_info, name


def resolve_runs(paths: Sequence[str | Path]) -> list[tuple[Path, dict[str, Any] | None, str]]:
    """:func:`resolve_run` of every path; one ``FileNotFoundError`` naming all the missing ones."""
    resolved, missing = [], []
    for path in paths:
        try:
            resolved.append(resolve_run(path))
        except FileNotFoundError as error:
            missing.append(str(error))
    if missing:
        raise FileNotFoundError("; ".join(missing))
    return resolved


def synthetic_status(run_infos: Iterable[Mapping[str, Any] | None]) -> bool | str:
    """``True`` when every run says ``"synthetic": true``, ``"mixed"`` when some do, else ``False``
    (a run without run_info counts as not synthetic: nothing says it is)."""
    flags = [bool((info or {}).get("synthetic")) for info in run_infos]
    return "mixed" if any(flags) and not all(flags) else any(flags)


def synthetic_banner(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The opening lines of a multi-run report: what of it comes from synthetic notes, if anything."""
    status = synthetic_status(run["run_info"] for run in runs)
    if status is True:
        return [f"**SYNTHETIC DATA: every number in this report comes from {SYNTHETIC_SAMPLE}.**", ""]
    if status == "mixed":
        names = ", ".join(run["name"] for run in runs if (run["run_info"] or {}).get("synthetic"))
        return [f"**SYNTHETIC DATA in part: the numbers of {names} come from {SYNTHETIC_SAMPLE}.**", ""]
    return []


def _unique(name: str, taken: set[str]) -> str:
    candidate, index = name, 2
    while candidate in taken:
        candidate, index = f"{name}-{index}", index + 1
    taken.add(candidate)
    return candidate


def evaluate_predictions(args: EvaluationArguments, output_dir: Path,
                         resolved: Sequence[tuple[Path, dict[str, Any] | None, str]]) -> dict[str, Any]:
    """Score the runs of :func:`resolve_runs` and write the report into ``output_dir``."""
    custom = None
    if args.exclude_labels or args.merge:
        merge = _parse_merge(args.merge)
        # A name that is also a clean CSV column prefix, e.g. custom_exclude_O_Drug_merge_ADE_into_Reason.
        name = "_".join(["custom"] + ["exclude"] * bool(args.exclude_labels) + list(args.exclude_labels)
                        + ["merge"] * bool(merge) + [f"{k}_into_{v}" for k, v in merge.items()])
        custom = (name, tuple(args.exclude_labels), merge or None)

    runs, taken = [], set()
    for predictions, run_info, name in resolved:
        name = _unique(name, taken)
        rows = read_predictions(predictions)
        types = entity_types_of(tag for row in rows for key in ("gold_tags", "pred_tags") for tag in row.get(key) or ())
        ablations = [] if args.no_paper_ablations else paper_ablations(types)
        if custom:
            ablations.append(custom)
        report = evaluate_run(rows, ablations=ablations, top_k=args.top_confusions)
        report["predictions_file"] = str(predictions)
        report["run_info"] = run_info
        run_dir = output_dir / "runs" / name
        run_dir.mkdir(parents=True, exist_ok=True)
        write_confusion_csv(report["confusion"], run_dir / "confusion_matrix.csv")
        plot_confusion_matrix(report["confusion"], run_dir / "confusion_matrix.png",
                              f"{run_title(name, run_info)}: BIO tags, words (rows gold, columns predicted)")
        markdown = render_run_markdown(name, report, run_info, args.digits, "confusion_matrix.png")
        (run_dir / REPORT_MARKDOWN_FILE).write_text(markdown, encoding="utf-8")
        runs.append({"name": name, "run_info": run_info, "report": report, "metrics": flat_metrics(report),
                     "markdown": markdown})
        logger.info("%s: entity strict micro F1 %.4f, BIO-strict macro F1 %.4f", name,
                    report["entity"]["strict"]["micro"]["f1"], report["tag"][BIO_VIEW.name]["macro"]["f1"])

    groups = aggregate_runs(runs)
    ablation_names = list(dict.fromkeys(n for run in runs for n in run["report"]["ablations"]))
    comparison_md = render_comparison_markdown(groups, ablation_names, args.digits)
    banner = synthetic_banner(runs)
    (output_dir / "comparison.md").write_text("\n".join(banner + [comparison_md, ""]), encoding="utf-8")
    write_comparison_csv(groups, output_dir / "comparison.csv")
    curve = learning_curve(groups)
    if curve:
        plot_learning_curve(curve, output_dir / "learning_curve.png")
        write_learning_curve_csv(curve, output_dir / "learning_curve.csv")

    markdown = banner + ["# Evaluation report", "", comparison_md, ""]
    if curve:
        markdown += [render_learning_curve_markdown(curve, args.digits), "![learning curve](learning_curve.png)", ""]
    for run in runs:
        markdown += [run["markdown"].replace("](confusion_matrix.png)", f"](runs/{run['name']}/confusion_matrix.png)"), ""]
    (output_dir / REPORT_MARKDOWN_FILE).write_text("\n".join(markdown), encoding="utf-8")
    return {
        "mode": "predictions",
        "synthetic": synthetic_status(run["run_info"] for run in runs),
        "runs": {run["name"]: run["report"] for run in runs},
        "comparison": list(groups),
        "learning_curve": curve,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from transformers import HfArgumentParser

    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    parser = HfArgumentParser(EvaluationArguments, prog=Path(__file__).name)
    (args,) = parser.parse_args_into_dataclasses(args=argv)

    def fail(message: str, status: int = USAGE_EXIT_STATUS):
        # One line, as argparse reports a bad argument: no traceback for a user's input (command_line's statuses:
        # 2 for arguments, 1 for bad data in the files).
        parser.exit(status, f"{parser.prog}: error: {message}\n")

    brat = args.gold_brat is not None or args.pred_brat is not None
    if brat and (args.gold_brat is None or args.pred_brat is None):
        fail("--gold_brat and --pred_brat go together")
    if brat == bool(args.predictions):
        fail("give either --predictions or --gold_brat/--pred_brat")
    if (args.label_map or args.relation_map) and not brat:
        fail("--label_map and --relation_map map the gold of --gold_brat: give --gold_brat/--pred_brat")
    if not brat:
        # Every path first: a typo in the last run folder must not cost the scoring of the others
        # nor leave half a report behind.
        try:
            resolved = resolve_runs(args.predictions)
        except FileNotFoundError as error:
            fail(f"--predictions {error}")
    # The same rule as training: an earlier report is replaced only when asked, checked before scoring; the report
    # is never written where its inputs are, one command writes it at a time, and it appears whole or not at all.
    output_dir = Path(args.output_dir)
    lock = FolderLock(output_dir, "evaluate_ablations.py")
    try:
        try:
            check_output_apart(output_dir, {"--predictions": args.predictions, "--gold_brat": args.gold_brat,
                                            "--pred_brat": args.pred_brat})
            lock.acquire()
            check_output_dir(output_dir, args.overwrite_output_dir)
        except UsageError as error:
            fail(str(error))
        except FileExistsError as error:
            fail(f"--output_dir {output_dir} exists and is not empty; pass --overwrite_output_dir to replace the "
                 "earlier report, or give another folder" if output_dir.is_dir() else f"--output_dir {error}")
        return _write_report(args, output_dir, resolved if not brat else None, fail)
    finally:
        lock.release()


def _write_report(args: EvaluationArguments, output_dir: Path, resolved, fail) -> dict[str, Any]:
    """Score, then write the report folder atomically (a temporary sibling moved into place when complete)."""
    brat = resolved is None
    if brat:
        # Scoring only reads, so every input problem surfaces here, before anything is removed or written.
        try:
            report = score_brat_folders(
                args.gold_brat, args.pred_brat, entity_types=args.brat_entity_types,
                relation_setting=args.relation_setting,
                label_map=load_label_map(args.label_map) if args.label_map else None,
                relation_map=load_relation_map(args.relation_map) if args.relation_map else None)
        except BratFormatError as error:
            fail(str(error), exit_status(error))  # file:line: reason, never the note's text

    def write(folder: Path) -> None:
        nonlocal report
        if brat:
            (folder / REPORT_MARKDOWN_FILE).write_text(render_brat_markdown(report, max(args.digits, 4)),
                                                       encoding="utf-8")
        else:
            report = evaluate_predictions(args, folder, resolved)
        with (folder / REPORT_JSON_FILE).open("w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)

    if not brat:
        report = None
    try:
        write_folder_atomically(output_dir, args.overwrite_output_dir, write)
    except PredictionFormatError as error:
        fail(str(error), exit_status(error))  # file:line: reason
    if brat:
        logger.info("strict micro F1 %.4f, lenient micro F1 %.4f over %d documents (%d prediction files skipped)",
                    report["strict"]["micro"]["f1"], report["lenient"]["micro"]["f1"], report["num_documents"],
                    len(report["skipped_prediction_files"]))
        if "relations" in report:
            relations = report["relations"]
            logger.info("relations (%s): strict micro F1 %.4f, lenient micro F1 %.4f; %d of %d predicted relations "
                        "have an argument that matches no gold entity", relations["setting"],
                        relations["strict"]["micro"]["f1"], relations["lenient"]["micro"]["f1"],
                        relations["pred_relations_with_unmatched_argument"], relations["num_pred_relations"])
    logger.info("Report written to %s", output_dir)
    return report


if __name__ == "__main__":
    main()
