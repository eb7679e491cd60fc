"""Token metrics: the paper's evaluations of predicted tag sequences (Tables II-IV).

Entities read from IOB2 tags and matched strictly or leniently (:func:`entity_scores`, checked against seqeval's
strict mode), and the paper's token-level views of the same tags (:data:`TAG_VIEWS`: BIO tags with and without
``O``, types without the B/I prefix), with the confusion matrix and the paper's ablations."""

from __future__ import annotations

import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from .metrics import (
    AVERAGES, LENIENT_MICRO_F1, STATS, STRICT_MACRO_F1, entity_view, metric_name, ordered_types, summarize_counts,
    type_metric_name, zero_row,
)
from .tagging import bio_labels, bio_to_spans, entity_types_of, is_tag, parse_tag, tag_type


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


def _ordered_labels(labels: Iterable[str], level: str) -> list[str]:
    """``O`` first, then B/I pairs (or bare types at token level) in :func:`ordered_types` order."""
    labels = set(labels)
    types = ordered_types({_label_type(label, level) for label in labels} - {None})
    ordered = ["O"] if "O" in labels else []
    for entity_type in types:
        candidates = [entity_type] if level == "token" else bio_labels([entity_type])[1:]
        ordered += [label for label in candidates if label in labels]
    return ordered


def _label_type(label: str, level: str) -> str | None:
    if label == "O":
        return None
    return label if level == "token" else tag_type(label)


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

    equals = span_equals(mode)
    for entity_type, preds in pred_by_type.items():
        tp, fp, fn = pare_down_counts(gold_by_type.get(entity_type, []), preds, equals)
        counts[entity_type].update(tp=tp, fp=fp, fn=fn)
    return dict(counts)


def span_equals(mode: str):
    """``ClinicalConcept.span_matches`` of the official script for ``(start, end)`` pairs: strict, the
    same start and end; lenient, any overlap of the half-open spans."""
    if mode == "strict":
        return lambda g, s: g[0] == s[0] and g[1] == s[1]
    return lambda g, s: g[1] > s[0] and g[0] < s[1]


def pare_down_counts(golds: Sequence[Any], preds: Sequence[Any], equals) -> tuple[int, int, int]:
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


def add_counts(total: dict[str, Counter], counts: Mapping[str, Mapping[str, int]]) -> None:
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
        add_counts(counts, match_counts(bio_to_spans(gold_tags, strict=False),
                                         bio_to_spans(pred_tags, strict=False), "lenient"))
    return summarize_counts(counts)


def entity_counts_by_document(pred_rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Each document's entity ``(tp, fp, fn)``, strict and lenient, micro and per type, from word-level prediction
    rows: what ``significance.compare_per_document`` takes, in the shape ``n2c2_scoring.score_brat_folders(
    per_document=True)`` gives (``documents``, ``entities``, ``entities_by_type``, ``relations`` None).

    A document is a row's ``document_id`` (a row without one is a document of its own, by ``id`` or position), in
    order of first appearance; rows without gold tags are left out. Counted sentence by sentence as
    :func:`entity_scores` counts them (strict: seqeval's IOB2 chunks, exact match; lenient: conlleval chunks, any
    overlap), so the documents' counts sum to the run's micro counts. Types are those of gold and predictions."""
    labelled = [row for row in pred_rows if row.get("gold_tags") is not None]
    if not labelled:
        raise ValueError("no prediction row has gold_tags: nothing to score")
    _check_sequences([row["gold_tags"] for row in labelled], [row["pred_tags"] for row in labelled])
    documents: dict[str, dict[str, Counter]] = {}
    types: dict[str, None] = {}
    for position, row in enumerate(labelled):
        key = row.get("document_id") or row.get("id") or f"row-{position}"
        per_mode = documents.setdefault(key, {mode: defaultdict(Counter) for mode, _ in ENTITY_MODES})
        for mode, _ in ENTITY_MODES:
            strict = mode == "strict"
            counts = match_counts(bio_to_spans(row["gold_tags"], strict=strict),
                                  bio_to_spans(row["pred_tags"], strict=strict), mode)
            add_counts(per_mode[mode], counts)
            types.update(dict.fromkeys(counts))
    order = ordered_types(types)

    def micro(counts: Mapping[str, Counter]) -> tuple[int, int, int]:
        return tuple(sum(row[key] for row in counts.values()) for key in ("tp", "fp", "fn"))

    return {
        "documents": list(documents),
        "entities": {mode: [micro(document[mode]) for document in documents.values()] for mode, _ in ENTITY_MODES},
        "entities_by_type": {mode: {entity_type: [tuple(document[mode][entity_type][key] for key in ("tp", "fp", "fn"))
                                                  for document in documents.values()] for entity_type in order}
                             for mode, _ in ENTITY_MODES},
        "relations": None,
    }


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
        return {"per_type": {}, "micro": zero_row(), "macro": zero_row(), "weighted": zero_row()}
    result = {"per_type": {name: row(report[name]) for name in ordered_types(types)}}
    for average in AVERAGES:
        result[average] = row(report[f"{average} avg"])
    return result


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
        return {"per_type": {}, "micro": zero_row(), "macro": zero_row(), "weighted": zero_row(),
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
