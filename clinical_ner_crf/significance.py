"""Is one system better than another on these notes? A paired bootstrap over documents.

Scores of two systems on the same test notes differ by chance as well as by merit: with 100 notes, a couple of
points of micro-F1 can come from which notes happened to be drawn. The paired bootstrap (Koehn 2004; Berg-Kirkpatrick
et al. 2012) redraws the notes with replacement many times, scores both systems on each redraw, and reads the
confidence interval of the difference from the spread. Documents are the unit because errors within a note are not
independent (one note, one writing style, one medication list).

Each system is given as its per-document ``(tp, fp, fn)`` counts (any scorer's: relations, entities, strict or
lenient); several runs of a system (seeds) are given as several such lists, and the difference is then between the
systems' mean F1 over their runs, the runs redrawn with the same notes. Standard library only.
"""

from __future__ import annotations

import random
from typing import Sequence

Counts = Sequence[int]  # (tp, fp, fn) of one document
DEFAULT_RESAMPLES = 2000


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
