"""Metrics: the name of every score the toolkit reports (:func:`metric_name`, ``strict_micro_f1``, ...) and the one way counts become precision, recall and F1, per type and averaged (:func:`summarize_counts`)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from .tagging import N2C2_ENTITY_TYPES

AVERAGES = ("micro", "macro", "weighted")
# Score row key -> the stat's short name in flat metric names.
STATS = (("precision", "p"), ("recall", "r"), ("f1", "f1"))


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


def relation_view(mode: str) -> str:
    """The view name of relations scored in an entity mode: ``"strict"`` -> ``"relation_strict"``."""
    return f"relation_{mode}"


def relation_type_metric_name(relation_type: str) -> str:
    """The strict F1 of one relation type: ``"Strength-Drug"`` -> ``"relation_strict_Strength-Drug_f1"``."""
    return f"{relation_view('strict')}_{relation_type}_f1"


def system_metric_name(name: str, system: str = "model") -> str:
    """A score of one of the systems run_re.py scores side by side: the model's under its own name, another's
    prefixed, ``("relation_strict_micro_f1", "rule")`` -> ``"rule_relation_strict_micro_f1"``."""
    return name if system == "model" else f"{system}_{name}"


STRICT_MICRO_F1 = metric_name(entity_view("strict"), "micro")
STRICT_MACRO_F1 = metric_name(entity_view("strict"), "macro")
LENIENT_MICRO_F1 = metric_name(entity_view("lenient"), "micro")
RELATION_STRICT_MICRO_F1 = metric_name(relation_view("strict"), "micro")  # run_re.py's selection metric


def _safe_div(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision, recall = _safe_div(tp, tp + fp), _safe_div(tp, tp + fn)
    return {
        "precision": precision,
        "recall": recall,
        "f1": _safe_div(2 * precision * recall, precision + recall),
    }


def zero_row(support: int = 0) -> dict[str, Any]:
    return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": int(support)}


def _averages(per_type: Mapping[str, Mapping[str, Any]], micro: dict[str, Any]) -> dict[str, Any]:
    """Macro (unweighted mean of per-type P, R, F) and weighted (mean weighted by support)."""
    rows = list(per_type.values())
    total = sum(row["support"] for row in rows)
    result = {"per_type": {name: dict(row) for name, row in per_type.items()}, "micro": micro}
    if not rows:
        result["macro"], result["weighted"] = zero_row(), zero_row()
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
    for name in ordered_types(counts, order):
        tp, fp, fn = (int(counts[name].get(key, 0)) for key in ("tp", "fp", "fn"))
        per_type[name] = {**_prf(tp, fp, fn), "support": tp + fn}
        if with_counts:
            per_type[name].update(tp=tp, fp=fp, fn=fn)
    totals = {key: sum(int(c.get(key, 0)) for c in counts.values()) for key in ("tp", "fp", "fn")}
    micro = {**_prf(totals["tp"], totals["fp"], totals["fn"]), "support": totals["tp"] + totals["fn"]}
    if with_counts:
        micro.update(totals)
    return _averages(per_type, micro)


def ordered_types(types: Iterable[str], order: Sequence[str] = N2C2_ENTITY_TYPES) -> list[str]:
    """The types of ``order`` (default: the n2c2 types in the paper's order) first, any others alphabetically."""
    types = set(types)
    return [t for t in order if t in types] + sorted(types - set(order))
