"""Calibration: whether an entity's confidence of 0.9 means that 90% of such entities are right, and a temperature
that makes it closer.

An entity's confidence is the mean over its words of the probability of the predicted tag (the CRF marginal, or the
softmax: ``windows.entity_confidences``). From predicted and gold tags:

- :func:`entity_outcomes` (:func:`record_outcomes` for prediction records): each predicted entity's confidence and
  whether it is exactly correct (the strict criterion: the type and the words of a gold entity,
  ``tagging.bio_to_spans``), and the number of gold entities (for recall);
- :func:`reliability_table` (:data:`NUM_BINS` equal-width bins: entities, mean confidence, share correct),
  :func:`expected_calibration_error` (ECE: the bins' gap between mean confidence and share correct, weighted by
  their entities) and :func:`threshold_table` (precision and recall of the entities kept at confidence >= t);
- :func:`fit_temperature`: a temperature on the entity confidence's log-odds (Guo et al. 2017's temperature scaling
  for a two-class correct/incorrect output), ``c' = sigmoid(logit(c) / T)``, fitted on validation entities by
  minimising the negative log-likelihood of correct/incorrect. ``windows.apply_temperature`` applies it: the one
  home, since it travels beside every saved CRF model and the inference path applies the temperature a model's
  config carries (``windows.CONFIG_TEMPERATURE``);
- :func:`calibration_report`: all of it for one set of entities, before and after a temperature (what
  ``run_ner_crf.py --calibrate_confidence`` writes into ``calibration.json`` and ``evaluate_ablations.py`` reports).

numpy and the standard library; ``windows`` brings transformers and torch, so a command that must answer ``--help``
without them imports this module inside the function that uses it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .files import CALIBRATION_FILE
from .metrics import summarize_counts
from .tagging import bio_to_spans
from .windows import CONFIDENCE_CLIP, apply_temperature, entity_confidences

NUM_BINS = 10
THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
TEMPERATURE_RANGE = (0.05, 20.0)  # the search range of fit_temperature (golden-section search on log T)


@dataclass(frozen=True)
class EntityOutcomes:
    """Predicted entities with a confidence (``confidences``, ``correct``), the gold entities they are judged
    against (``num_gold``), and the predicted entities left out because a word's confidence is unknown."""

    confidences: tuple[float, ...]
    correct: tuple[bool, ...]
    num_gold: int
    num_without_confidence: int = 0


def entity_outcomes(gold_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]],
                    confidences: Sequence[Sequence[float | None] | None]) -> EntityOutcomes:
    """Each predicted entity's confidence and whether it is exactly a gold entity, sentence by sentence.

    ``confidences`` are word confidences (None or NaN: unknown; a sentence's None: all unknown); an entity with
    a word of unknown confidence is counted in ``num_without_confidence`` and left out of the rest."""
    scored, correct, num_gold, unknown = [], [], 0, 0
    for gold, pred, words in zip(gold_tags, pred_tags, confidences, strict=True):
        gold_spans = set(bio_to_spans(gold))
        num_gold += len(gold_spans)
        words = [math.nan if value is None else float(value) for value in (words or [None] * len(pred))]
        for span, confidence in zip(bio_to_spans(pred), entity_confidences(pred, words)):
            if confidence != confidence:
                unknown += 1
                continue
            scored.append(confidence)
            correct.append(span in gold_spans)
    return EntityOutcomes(tuple(scored), tuple(correct), num_gold, unknown)


def record_outcomes(rows: Sequence[Mapping[str, Any]]) -> EntityOutcomes | None:
    """:func:`entity_outcomes` of prediction records (``prediction_records.read_predictions``), or None when they
    cannot say it: a record without gold tags, or no word confidence at all."""
    if not rows or any(row.get("gold_tags") is None for row in rows):
        return None
    if all(value is None for row in rows for value in row.get("confidences") or [None]):
        return None
    return entity_outcomes([row["gold_tags"] for row in rows], [row["pred_tags"] for row in rows],
                           [row.get("confidences") for row in rows])


def _bin_index(confidence: float, num_bins: int) -> int:
    return min(max(int(confidence * num_bins), 0), num_bins - 1)  # [i/n, (i+1)/n); 1.0 in the last bin


def reliability_table(confidences: Sequence[float], correct: Sequence[bool], num_bins: int = NUM_BINS
                      ) -> list[dict[str, Any]]:
    """Equal-width confidence bins ``[lower, upper)`` (the last one closed): how many entities, their mean
    confidence and the share of them that is correct (None for an empty bin)."""
    counts, sums, hits = [0] * num_bins, [0.0] * num_bins, [0] * num_bins
    for confidence, right in zip(confidences, correct, strict=True):
        index = _bin_index(confidence, num_bins)
        counts[index] += 1
        sums[index] += confidence
        hits[index] += bool(right)
    return [{"lower": index / num_bins, "upper": (index + 1) / num_bins, "count": counts[index],
             "mean_confidence": sums[index] / counts[index] if counts[index] else None,
             "share_correct": hits[index] / counts[index] if counts[index] else None} for index in range(num_bins)]


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], num_bins: int = NUM_BINS
                               ) -> float | None:
    """ECE: ``sum over bins of (entities in the bin / all entities) * |mean confidence - share correct|`` (None
    without entities)."""
    total = len(confidences)
    if not total:
        return None
    return sum(row["count"] / total * abs(row["mean_confidence"] - row["share_correct"])
               for row in reliability_table(confidences, correct, num_bins) if row["count"])


def threshold_table(confidences: Sequence[float], correct: Sequence[bool], num_gold: int,
                    thresholds: Sequence[float] = THRESHOLDS) -> list[dict[str, Any]]:
    """For each threshold ``t``: the entities kept at confidence >= t, and their precision, recall (against every
    gold entity) and F1 (``metrics.summarize_counts``)."""
    rows = []
    for threshold in thresholds:
        kept = [right for confidence, right in zip(confidences, correct, strict=True) if confidence >= threshold]
        true_positives = sum(map(bool, kept))
        scores = summarize_counts({"entities": {"tp": true_positives, "fp": len(kept) - true_positives,
                                                "fn": num_gold - true_positives}})["micro"]
        rows.append({"threshold": threshold, "kept": len(kept), "correct": true_positives,
                     "precision": scores["precision"], "recall": scores["recall"], "f1": scores["f1"]})
    return rows


def _negative_log_likelihood(log_odds: np.ndarray, correct: np.ndarray, temperature: float) -> float:
    scaled = log_odds / temperature
    # -log sigmoid(x) = log(1 + e^-x) for the correct entities, -log(1 - sigmoid(x)) = log(1 + e^x) for the others.
    return float(np.sum(np.where(correct, np.logaddexp(0.0, -scaled), np.logaddexp(0.0, scaled))))


def fit_temperature(confidences: Sequence[float], correct: Sequence[bool], tolerance: float = 1e-6) -> float:
    """The temperature ``T`` of ``sigmoid(logit(c) / T)`` that minimises the negative log-likelihood of the
    entities' correctness: a golden-section search on ``log T`` over :data:`TEMPERATURE_RANGE` (the likelihood is
    convex in ``1 / T``, so it has one minimum there; a bound is returned when the minimum lies beyond it, e.g.
    when every entity is correct). ``c`` is clipped to ``[CONFIDENCE_CLIP, 1 - CONFIDENCE_CLIP]``. 1.0 without
    entities."""
    if not len(confidences):
        return 1.0
    clipped = np.clip(np.asarray(confidences, dtype=np.float64), CONFIDENCE_CLIP, 1.0 - CONFIDENCE_CLIP)
    log_odds, labels = np.log(clipped / (1.0 - clipped)), np.asarray(correct, dtype=bool)

    def loss(log_temperature: float) -> float:
        return _negative_log_likelihood(log_odds, labels, math.exp(log_temperature))

    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    low, high = math.log(TEMPERATURE_RANGE[0]), math.log(TEMPERATURE_RANGE[1])
    left, right = high - ratio * (high - low), low + ratio * (high - low)
    left_loss, right_loss = loss(left), loss(right)
    while high - low > tolerance:
        if left_loss <= right_loss:
            high, right, right_loss = right, left, left_loss
            left = high - ratio * (high - low)
            left_loss = loss(left)
        else:
            low, left, left_loss = left, right, right_loss
            right = low + ratio * (high - low)
            right_loss = loss(right)
    return round(math.exp((low + high) / 2.0), 6)


def _summary(confidences: Sequence[float], correct: Sequence[bool], num_gold: int) -> dict[str, Any]:
    return {"num_entities": len(confidences), "num_correct": sum(map(bool, correct)),
            "ece": expected_calibration_error(confidences, correct),
            "reliability": reliability_table(confidences, correct), "thresholds": threshold_table(confidences,
                                                                                                 correct, num_gold)}


def calibration_report(outcomes: EntityOutcomes, temperature: float | None = None) -> dict[str, Any]:
    """The reliability table, ECE and threshold table of ``outcomes`` as they are (``uncalibrated``), and with a
    ``temperature`` also after it (``calibrated``, the temperature applied by ``windows.apply_temperature``).
    Numbers only: no text of the notes."""
    report: dict[str, Any] = {"num_gold_entities": outcomes.num_gold,
                              "num_without_confidence": outcomes.num_without_confidence,
                              "uncalibrated": _summary(outcomes.confidences, outcomes.correct, outcomes.num_gold)}
    if temperature is not None:
        calibrated = [apply_temperature(confidence, temperature) for confidence in outcomes.confidences]
        report["temperature"] = temperature
        report["calibrated"] = _summary(calibrated, outcomes.correct, outcomes.num_gold)
    return report


def read_temperature(run_dir: str | Path) -> float | None:
    """The temperature a run folder's ``calibration.json`` holds (None without one)."""
    path = Path(run_dir) / CALIBRATION_FILE
    if not path.is_file():
        return None
    temperature = json.loads(path.read_text(encoding="utf-8")).get("temperature")
    return None if temperature is None else float(temperature)
