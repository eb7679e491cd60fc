"""clinical_ner_crf/parameter_counts.py: the paper's Table I counted from each architecture's config."""

import json

import pytest

from clinical_ner_crf.parameter_counts import build_rows, count_parameters, format_table
from conftest import tiny_encoder_config
from test_parameter_table import POOLER
from test_parameter_table import rows  # noqa: F401 (fixtures)


def test_table_one_counts(rows):
    transformer = rows["distilbert/distilbert-base-cased"]
    assert (transformer["crf"], transformer["apt"], transformer["pooler"]) == (65_205_922, 65_205_523, 0)
    clinical = rows["medicalai/ClinicalBERT"]
    assert (clinical["crf"], clinical["apt"], clinical["vocab"], clinical["layers"]) == (134_749_090, 134_748_691, 119_547, 6)
    for hub_id in ("google-bert/bert-base-cased", "dmis-lab/biobert-base-cased-v1.2", "emilyalsentzer/Bio_ClinicalBERT"):
        bert = rows[hub_id]
        assert bert["pooler"] == POOLER == 590_592
        # ours leaves the pooler out; the paper's figures include it
        assert (bert["crf"], bert["apt"]) == (108_325_282 - POOLER, 108_324_883 - POOLER)
        assert (bert["crf"] + bert["pooler"], bert["apt"] + bert["pooler"]) == (108_325_282, 108_324_883)
    for row in rows.values():
        assert row["num_labels"] == 19 and row["crf"] - row["apt"] == 19 * 19 + 2 * 19 == 399
    assert rows["google-bert/bert-base-cased"]["pct_to_bert"] == 100.0
    assert rows["distilbert/distilbert-base-cased"]["pct_to_bert"] == pytest.approx(100 * 65_205_922 / 107_734_690)


@pytest.mark.parametrize("architecture", ["bert", "distilbert", "roberta"])
def test_meta_device_counts_equal_real_models(architecture):
    from transformers import AutoModelForTokenClassification

    from modeling_crf import CRFForTokenClassification, CRFTokenClassificationConfig
    from clinical_ner_crf.tagging import N2C2_LABELS

    config = tiny_encoder_config(architecture)
    counts = count_parameters(config, N2C2_LABELS)
    id2label = dict(enumerate(N2C2_LABELS))
    crf = CRFForTokenClassification(CRFTokenClassificationConfig(encoder_config=config, id2label=id2label))
    apt = AutoModelForTokenClassification.from_config(config.__class__(**{**config.to_dict(), "id2label": id2label}))
    assert counts["crf"] == sum(p.numel() for p in crf.parameters())
    assert counts["apt"] == sum(p.numel() for p in apt.parameters())
    assert counts["crf"] - counts["apt"] == 399


def test_saved_crf_config_uses_its_own_labels(tmp_path):
    from modeling_crf import CRFTokenClassificationConfig

    labels = ["O", "B-Drug", "I-Drug"]
    config = CRFTokenClassificationConfig(encoder_config=tiny_encoder_config("distilbert"), id2label=dict(enumerate(labels)))
    config.save_pretrained(tmp_path)
    (row,) = build_rows([tmp_path / "config.json"])
    assert row["num_labels"] == 3 and row["crf"] - row["apt"] == 3 * 3 + 2 * 3
    assert json.loads(json.dumps(row))  # JSON-serialisable for --json
    assert "not in the paper" in format_table([row])
