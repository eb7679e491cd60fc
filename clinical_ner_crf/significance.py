"""Is one system better than another on these notes? A paired bootstrap and approximate randomization over documents.

Scores of two systems on the same test notes differ by chance as well as by merit: with 100 notes, a couple of
points of micro-F1 can come from which notes happened to be drawn. The paired bootstrap (Koehn 2004; Berg-Kirkpatrick
et al. 2012) redraws the notes with replacement many times, scores both systems on each redraw, and reads the
confidence interval of the difference from the spread. Documents are the unit because errors within a note are not
independent (one note, one writing style, one medication list).

Each system is given as its per-document ``(tp, fp, fn)`` counts (any scorer's: relations, entities, strict or
lenient); several runs of a system (seeds) are given as several such lists, and the difference is then between the
systems' mean F1 over their runs, the runs redrawn with the same notes.

Approximate randomization (Noreen 1989; the test of the n2c2 and MUC evaluations, Chinchor 1992) asks instead how
often the difference would be as large if the two systems' outputs were exchangeable: each note's counts are
swapped between the systems at random, many times, and the p-value is the share of shufflings whose difference is at
least the observed one (two-sided). With few notes every swapping is enumerated and the p-value is exact.
Standard library only.
"""

from __future__ import annotations

import random
from typing import Sequence

Counts = Sequence[int]  # (tp, fp, fn) of one document
DEFAULT_RESAMPLES = 2000
DEFAULT_SHUFFLES = 10_000


def micro_f1(documents: Sequence[Counts], indices: Sequence[int] | None = None) -> float:
    """Micro-F1 of the documents' summed counts (over ``indices``, repeats allowed; all documents by default)."""
    tp = fp = fn = 0
    for index in range(len(documents)) if indices is None else indices:
        document_tp, document_fp, document_fn = documents[index]
        tp, fp, fn = tp + document_tp, fp + document_fp, fn + document_fn
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def _mean_f1(runs: Sequence[Sequence[Counts]], indices: Sequence[int] | None = None) -> float:
    return sum(micro_f1(run, indices) for run in runs) / len(runs)


def paired_bootstrap(system: Sequence[Sequence[Counts]], reference: Sequence[Sequence[Counts]], *,
                     resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """The difference ``mean F1(system) - mean F1(reference)`` over their runs, with its bootstrap interval.

    ``system`` and ``reference``: one list of per-document counts per run, every list over the same documents in the
    same order. Returns ``difference`` (on the notes as given), ``low`` and ``high`` (the percentile interval at
    ``confidence``), ``p_not_better`` (the share of redraws where the system is not ahead: a one-sided p-value) and
    ``documents``, ``resamples``. Seeded: the same input gives the same interval.
    """
    lengths = {len(run) for run in (*system, *reference)}
    if not system or not reference or len(lengths) != 1:
        raise ValueError(f"every run must score the same documents: runs of {sorted(lengths)} documents")
    documents = lengths.pop()
    if documents == 0:
        raise ValueError("no documents to compare on")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = random.Random(seed)
    differences = []
    for _ in range(resamples):
        indices = [rng.randrange(documents) for _ in range(documents)]
        differences.append(_mean_f1(system, indices) - _mean_f1(reference, indices))
    differences.sort()
    tail = (1 - confidence) / 2
    low = differences[int(tail * resamples)]
    high = differences[min(int((1 - tail) * resamples), resamples - 1)]
    return {"difference": _mean_f1(system) - _mean_f1(reference), "low": low, "high": high,
            "p_not_better": sum(1 for d in differences if d <= 0) / resamples, "documents": documents,
            "resamples": resamples, "confidence": confidence}


def approximate_randomization(system: Sequence[Counts], reference: Sequence[Counts], *,
                              shuffles: int = DEFAULT_SHUFFLES, seed: int = 0) -> dict[str, float]:
    """The two-sided p-value of ``micro F1(system) - micro F1(reference)`` by approximate randomization over
    documents: each document's counts swapped between the two systems with probability 1/2, ``shuffles`` times
    (seeded); with ``2 ** documents <= shuffles``, every swapping once, an exact p-value. Returns ``difference``,
    ``p_value`` ((at least as large + 1) / (shufflings + 1) when sampled; the exact share when enumerated: 1.0 for
    two systems that agree on every note), ``shuffles`` (as many as were scored) and ``exact``."""
    if len(system) != len(reference):
        raise ValueError(f"both systems must score the same documents: {len(system)} and {len(reference)}")
    documents = len(system)
    if documents == 0:
        raise ValueError("no documents to compare on")
    observed = abs(micro_f1(system) - micro_f1(reference))
    tolerance = 1e-12  # a shuffling that ties the observed difference counts as at least as large

    def shuffled_difference(swapped: Sequence[bool]) -> float:
        first = [reference[i] if swap else system[i] for i, swap in enumerate(swapped)]
        second = [system[i] if swap else reference[i] for i, swap in enumerate(swapped)]
        return abs(micro_f1(first) - micro_f1(second))

    if 2 ** documents <= shuffles:
        assignments = [[bool(mask >> i & 1) for i in range(documents)] for mask in range(2 ** documents)]
        at_least = sum(1 for swapped in assignments if shuffled_difference(swapped) >= observed - tolerance)
        return {"difference": micro_f1(system) - micro_f1(reference), "p_value": at_least / len(assignments),
                "shuffles": len(assignments), "exact": True, "documents": documents}
    rng = random.Random(seed)
    at_least = sum(1 for _ in range(shuffles)
                   if shuffled_difference([rng.random() < 0.5 for _ in range(documents)]) >= observed - tolerance)
    return {"difference": micro_f1(system) - micro_f1(reference), "p_value": (at_least + 1) / (shuffles + 1),
            "shuffles": shuffles, "exact": False, "documents": documents}


def compare_systems(system: Sequence[Counts], reference: Sequence[Counts], *, resamples: int = DEFAULT_RESAMPLES,
                    shuffles: int = DEFAULT_SHUFFLES, seed: int = 0) -> dict[str, object]:
    """One comparison as a report states it: ``difference`` of micro-F1 (system - reference), ``ci95`` [low, high]
    by the paired bootstrap, ``p_value`` by approximate randomization (two-sided), ``documents``; seeded."""
    interval = paired_bootstrap([system], [reference], resamples=resamples, confidence=0.95, seed=seed)
    randomization = approximate_randomization(system, reference, shuffles=shuffles, seed=seed)
    return {"difference": interval["difference"], "ci95": [interval["low"], interval["high"]],
            "p_value": randomization["p_value"], "p_value_exact": randomization["exact"],
            "documents": interval["documents"], "resamples": resamples, "shuffles": randomization["shuffles"],
            "seed": seed}


def compare_per_document(system: dict, reference: dict, *, resamples: int = DEFAULT_RESAMPLES,
                         shuffles: int = DEFAULT_SHUFFLES, seed: int = 0) -> dict[str, dict[str, object]]:
    """:func:`compare_systems` for each micro-F1 two systems both have, from their per-document counts as
    ``n2c2_scoring.score_brat_folders(per_document=True)`` gives them (``{"documents", "entities": {mode: counts},
    "relations": {mode: counts} or None}``): ``{"entity_strict_micro_f1": {...}, "relation_lenient_micro_f1": ...}``."""
    if system["documents"] != reference["documents"]:
        raise ValueError("the two systems were scored on different gold documents")
    comparisons = {}
    for level, name in (("entities", "entity"), ("relations", "relation")):
        if not system.get(level) or not reference.get(level):
            continue
        for mode in system[level]:
            comparisons[f"{name}_{mode}_micro_f1"] = compare_systems(
                system[level][mode], reference[level][mode], resamples=resamples, shuffles=shuffles, seed=seed)
    return comparisons
