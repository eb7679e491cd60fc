"""clinical_ner_crf/calibration.py: entity confidences against strict correctness (reliability bins, ECE, thresholds,
all by hand), the temperature fitted on over- and under-confident entities, and the temperature a model's config
carries applied by the inference path (torch and ONNX) before --min_confidence."""

import math
import random

import numpy as np
import pytest
from pytest import approx

from clinical_ner_crf import onnx_backend
from clinical_ner_crf.calibration import (
    THRESHOLDS, calibration_report, entity_outcomes, expected_calibration_error, fit_temperature, read_temperature,
    record_outcomes, reliability_table, threshold_table,
)
from clinical_ner_crf.files import CALIBRATION_FILE, write_json_atomically
from clinical_ner_crf.note_annotator import NoteAnnotator
from clinical_ner_crf.windows import CONFIG_TEMPERATURE, apply_temperature, confidence_temperature
from test_annotate_notes import constant_crf


# Five records whose entities are judged by hand (strict: same type, same words as a gold entity):
RECORDS = [
    # Drug (words 0-1, confidence (0.9 + 0.8) / 2 = 0.85) right; Dose (word 3, 0.35) right.
    {"gold_tags": ["B-Drug", "I-Drug", "O", "B-Dose"], "pred_tags": ["B-Drug", "I-Drug", "O", "B-Dose"],
     "confidences": [0.9, 0.8, 0.99, 0.35]},
    # Drug (word 1, 0.95) wrong: the gold Drug is word 0 (missed); Route (word 2, 0.65) right.
    {"gold_tags": ["B-Drug", "O", "B-Route"], "pred_tags": ["O", "B-Drug", "B-Route"],
     "confidences": [0.99, 0.95, 0.65]},
    # Reason (word 0, 0.55) wrong; the gold ADE is missed.
    {"gold_tags": ["O", "B-ADE"], "pred_tags": ["B-Reason", "O"], "confidences": [0.55, 0.97]},
    # Right, but its confidence is unknown: left out of everything but the gold count.
    {"gold_tags": ["B-Drug"], "pred_tags": ["B-Drug"], "confidences": [None]},
    # Strength (0.82) wrong: the gold is a Dose (missed).
    {"gold_tags": ["B-Dose"], "pred_tags": ["B-Strength"], "confidences": [0.82]},
]
CONFIDENCES = [0.85, 0.35, 0.95, 0.65, 0.55, 0.82]
CORRECT = [True, True, False, True, False, False]
NUM_GOLD = 2 + 2 + 1 + 1 + 1


def test_entities_of_prediction_records_are_judged_strictly():
    outcomes = record_outcomes(RECORDS)
    assert list(outcomes.confidences) == approx(CONFIDENCES)
    assert list(outcomes.correct) == CORRECT
    assert outcomes.num_gold == NUM_GOLD and outcomes.num_without_confidence == 1
    # The same from tag lists (run_ner_crf.py's path).
    assert entity_outcomes([r["gold_tags"] for r in RECORDS], [r["pred_tags"] for r in RECORDS],
                           [r["confidences"] for r in RECORDS]) == outcomes
    # Nothing to judge: a record without gold tags, or no confidence at all.
    assert record_outcomes([*RECORDS, {"gold_tags": None, "pred_tags": ["O"], "confidences": [0.5]}]) is None
    assert record_outcomes([{**record, "confidences": None} for record in RECORDS]) is None
    assert record_outcomes([]) is None


def test_reliability_bins_and_ece_by_hand():
    bins = reliability_table(CONFIDENCES, CORRECT)
    assert [(row["lower"], row["upper"]) for row in bins] == [(i / 10, (i + 1) / 10) for i in range(10)]
    assert [row["count"] for row in bins] == [0, 0, 0, 1, 0, 1, 1, 0, 2, 1]
    filled = {index: (row["mean_confidence"], row["share_correct"]) for index, row in enumerate(bins) if row["count"]}
    assert filled == {3: approx((0.35, 1.0)), 5: approx((0.55, 0.0)), 6: approx((0.65, 1.0)),
                      8: approx(((0.85 + 0.82) / 2, 0.5)), 9: approx((0.95, 0.0))}
    assert all(row["mean_confidence"] is None and row["share_correct"] is None for row in bins if not row["count"])
    # (|0.35 - 1| + |0.55 - 0| + |0.65 - 1| + 2 |0.835 - 0.5| + |0.95 - 0|) / 6
    assert expected_calibration_error(CONFIDENCES, CORRECT) == approx((0.65 + 0.55 + 0.35 + 2 * 0.335 + 0.95) / 6)
    assert expected_calibration_error([], []) is None
    # A confidence of exactly 1.0 is in the last bin; 0.0 in the first.
    assert [row["count"] for row in reliability_table([0.0, 1.0], [True, True])] == [1] + [0] * 8 + [1]
    assert expected_calibration_error([0.0, 1.0], [False, True]) == 0.0


def test_threshold_table_by_hand():
    rows = threshold_table(CONFIDENCES, CORRECT, NUM_GOLD)
    assert [row["threshold"] for row in rows] == list(THRESHOLDS) == [0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]
    expected = [  # (kept, correct): precision = correct / kept, recall = correct / 7 gold entities
        (6, 3), (5, 2), (4, 2), (3, 1), (3, 1), (1, 0), (1, 0), (0, 0)]
    assert [(row["kept"], row["correct"]) for row in rows] == expected
    assert [row["precision"] for row in rows] == approx([3 / 6, 2 / 5, 2 / 4, 1 / 3, 1 / 3, 0, 0, 0])
    assert [row["recall"] for row in rows] == approx([3 / 7, 2 / 7, 2 / 7, 1 / 7, 1 / 7, 0, 0, 0])
    assert rows[0]["f1"] == approx(2 * 0.5 * 3 / 7 / (0.5 + 3 / 7))


def test_temperature_one_changes_nothing_and_the_map_is_monotone():
    values = [0.0, 1e-9, 0.01, 0.3, 0.5, 0.7, 0.95, 0.999, 1.0]
    assert [apply_temperature(c, 1.0) for c in values] == values
    for temperature in (0.1, 0.5, 2.0, 7.0):
        calibrated = [apply_temperature(c, temperature) for c in values]
        assert calibrated == sorted(calibrated) and all(0.0 <= c <= 1.0 for c in calibrated)
        inner = calibrated[2:-2]  # away from the clipping: strictly increasing
        assert all(a < b for a, b in zip(inner, inner[1:]))
        assert apply_temperature(0.5, temperature) == approx(0.5)
        assert apply_temperature(0.8, temperature) == approx(1 - apply_temperature(0.2, temperature))
    # sigmoid(logit(0.9) / 2) by hand: odds 9 -> 3 -> 0.75.
    assert apply_temperature(0.9, 2.0) == approx(0.75)
    assert apply_temperature(0.9, 0.5) == approx(81 / 82)
    assert math.isnan(apply_temperature(float("nan"), 2.0))
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="positive number"):
            apply_temperature(0.9, bad)
    report = calibration_report(record_outcomes(RECORDS), 1.0)
    assert report["calibrated"] == report["uncalibrated"]


def test_fitted_temperature_softens_over_confidence_and_sharpens_under_confidence():
    rng = random.Random(0)
    # Over-confident: every entity at 0.95, 60% right. The likelihood is best where sigmoid(logit(0.95) / T) is the
    # share right, so T = logit(0.95) / logit(0.6).
    correct = [True] * 60 + [False] * 40
    rng.shuffle(correct)
    temperature = fit_temperature([0.95] * 100, correct)
    assert temperature > 1 and temperature == approx(math.log(19) / math.log(1.5), rel=1e-4)
    before = expected_calibration_error([0.95] * 100, correct)
    after = expected_calibration_error([apply_temperature(0.95, temperature)] * 100, correct)
    assert before == approx(0.35) and after < 1e-4
    # Spread over-confident confidences: ECE falls, and the report says so.
    confidences = [rng.uniform(0.7, 1.0) for _ in range(400)]
    outcomes = entity_outcomes([["B-Drug"]] * 400, [["B-Drug"] if rng.random() < c - 0.25 else ["B-Dose"]
                                                    for c in confidences], [[c] for c in confidences])
    temperature = fit_temperature(outcomes.confidences, outcomes.correct)
    report = calibration_report(outcomes, temperature)
    assert temperature > 1 and report["temperature"] == temperature
    assert report["calibrated"]["ece"] < report["uncalibrated"]["ece"]
    assert report["calibrated"]["num_entities"] == report["uncalibrated"]["num_entities"] == 400
    # Under-confident: 0.6 but 95% right.
    assert fit_temperature([0.6] * 100, [True] * 95 + [False] * 5) < 1
    # Nothing to fit: T = 1; all right: the search's lower bound.
    assert fit_temperature([], []) == 1.0
    assert fit_temperature([0.8] * 10, [True] * 10) == approx(0.05, rel=1e-3)


def test_read_temperature_from_a_run_folder(tmp_path):
    assert read_temperature(tmp_path) is None
    write_json_atomically(tmp_path / CALIBRATION_FILE, {"temperature": 1.5, "validation": {}})
    assert read_temperature(tmp_path) == 1.5


def test_the_models_temperature_calibrates_entity_confidences_before_min_confidence(wordpiece_tokenizer):
    model = constant_crf()  # hand-set: the same Dose entity, with the same confidence, in every sentence
    text = "Aspirin 81 mg PO daily.\nHeparin 5000 units SC q8h."
    raw = NoteAnnotator(model, wordpiece_tokenizer)(text)
    assert raw and confidence_temperature(model.config) == 1.0
    setattr(model.config, CONFIG_TEMPERATURE, 3.0)
    assert confidence_temperature(model.config) == 3.0
    calibrated = NoteAnnotator(model, wordpiece_tokenizer)(text)
    # Same entities and raw word confidences; the entity confidence is the calibrated mean.
    assert [(e.type, e.start, e.end, e.word_confidences) for e in calibrated] == \
           [(e.type, e.start, e.end, e.word_confidences) for e in raw]
    assert [e.confidence for e in calibrated] == approx([apply_temperature(e.confidence, 3.0) for e in raw])
    assert all(abs(c.confidence - r.confidence) > 1e-3 for c, r in zip(calibrated, raw))
    # --min_confidence filters the calibrated confidence: a threshold between the two keeps one and drops the other.
    threshold = (raw[0].confidence + calibrated[0].confidence) / 2
    filtered = NoteAnnotator(model, wordpiece_tokenizer, min_confidence=threshold)(text)
    assert filtered == [e for e in calibrated if e.confidence >= threshold]
    assert len(filtered) != len([e for e in raw if e.confidence >= threshold])


class _ConstantOnnxModel:
    """What predict_notes_onnx asks of an OnnxTokenClassifier: every word B-Drug with confidence 0.8."""

    backend, is_crf, label_all_tokens, labels = "onnx", False, False, ["O", "B-Drug", "I-Drug"]
    input_names = ["input_ids", "attention_mask"]

    def __init__(self, **config):
        self.config = onnx_backend.JsonConfig({"model_type": "bert", "max_position_embeddings": 128,
                                               "id2label": {"0": "O", "1": "B-Drug", "2": "I-Drug"}, **config})

    def predict_batch(self, batch):
        shape = batch["input_ids"].shape
        return np.ones(shape, dtype=np.int64), np.full(shape, 0.8, dtype=np.float32)


def test_the_onnx_backend_applies_the_temperature_of_its_config(wordpiece_tokenizer):
    texts = {"note": "Aspirin daily."}
    raw = onnx_backend.predict_notes_onnx(_ConstantOnnxModel(), wordpiece_tokenizer, texts)["note"]
    calibrated = onnx_backend.predict_notes_onnx(_ConstantOnnxModel(**{CONFIG_TEMPERATURE: 2.0}),
                                                 wordpiece_tokenizer, texts, min_confidence=0.7)["note"]
    assert [e.confidence for e in raw.entities] == approx([0.8] * 3)  # Aspirin, daily, "."
    assert calibrated.entities == [] and calibrated.num_below_min_confidence == 3  # 0.8 -> sigmoid(log 4 / 2) = 2/3
    kept = onnx_backend.predict_notes_onnx(_ConstantOnnxModel(**{CONFIG_TEMPERATURE: 2.0}), wordpiece_tokenizer,
                                           texts)["note"]
    assert [e.confidence for e in kept.entities] == approx([2 / 3] * 3, rel=1e-6)
    assert [e.word_confidences for e in kept.entities] == [e.word_confidences for e in raw.entities]
