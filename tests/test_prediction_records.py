"""clinical_ner_crf/prediction_records.py: the word-level records written and read back, bad lines named by file and line."""

import json

import pytest

from clinical_ner_crf.prediction_records import PredictionFormatError, read_predictions
from test_evaluate_ablations import _row


def test_read_predictions_errors_name_file_and_line(tmp_path):
    good = json.dumps(_row(["a", "b"], ["B-Drug", "O"], ["B-Drug", "O"]))
    path = tmp_path / "test_predictions.jsonl"
    path.write_text(good + "\n{not json\n")
    with pytest.raises(PredictionFormatError, match=r"test_predictions\.jsonl:2: not valid JSON"):
        read_predictions(path)
    path.write_text(good + "\n\n" + json.dumps(_row(["a", "b"], ["B-Drug"], ["B-Drug", "O"])) + "\n")
    with pytest.raises(PredictionFormatError, match=r":3: 'gold_tags' has 1 items but 'tokens' has 2"):
        read_predictions(path)
    path.write_text(json.dumps(_row(["a"], ["O"], ["Drug"])) + "\n")
    with pytest.raises(PredictionFormatError, match=r":1: 'pred_tags' holds 'Drug'"):
        read_predictions(path)
    path.write_text(json.dumps({"tokens": ["a"]}) + "\n")
    with pytest.raises(PredictionFormatError, match="'pred_tags' is missing"):
        read_predictions(path)
    path.write_text(good + "\n")
    assert len(read_predictions(path)) == 1
