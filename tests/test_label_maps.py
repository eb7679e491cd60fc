"""clinical_ner_crf/label_maps.py: a corpus's own type names mapped onto the model's; bad map files named in one line."""

import json

import pytest

from clinical_ner_crf import tagging
from clinical_ner_crf.documents import BratFormatError
from clinical_ner_crf.label_maps import load_relation_map, resolve_labels
from test_phee import LABEL_MAP


def test_load_relation_map_errors_are_those_of_a_label_map(tmp_path):
    with pytest.raises(BratFormatError, match="relation map file not found") as info:
        load_relation_map(tmp_path / "missing.json")
    assert info.value.kind == "missing_file"
    (tmp_path / "bad.json").write_text('{\n"has": "ADE-Drug",\n}')
    with pytest.raises(BratFormatError, match="invalid JSON") as info:
        load_relation_map(tmp_path / "bad.json")
    assert info.value.line == 3
    (tmp_path / "list.json").write_text('["has"]')
    with pytest.raises(BratFormatError, match="a relation map must be a JSON object"):
        load_relation_map(tmp_path / "list.json")


def test_label_map_file_is_the_documented_one():
    assert json.loads(LABEL_MAP.read_text()) == {
        "Drug": "Drug", "Dosage": "Dosage", "Route": "Route", "Freq": "Frequency", "Duration": "Duration",
        "Treat-Disorder": "Reason", "Effect": "ADE"}
    assert resolve_labels(json.loads(LABEL_MAP.read_text())) == tagging.N2C2_LABELS
