"""parameter_table.py reproduces the paper's Table I parameter counts exactly."""


import pytest

from clinical_ner_crf.parameter_counts import build_rows
from conftest import REPO_ROOT, command

main = command("parameter_table").main

ARCHITECTURES = sorted((REPO_ROOT / "configs" / "architectures").glob("*.json"))
POOLER = 768 * 768 + 768  # BERT-base's unused pooler: 590,592


@pytest.fixture(scope="module")
def rows():
    return {row["hub_id"]: row for row in build_rows(ARCHITECTURES)}


def test_architecture_configs_are_shipped():
    names = {path.stem for path in ARCHITECTURES}
    assert {"bert-base-cased", "biobert-base-cased-v1.2", "clinicalbert", "bio-clinicalbert",
            "distilbert-base-cased"} <= names


def test_cli_prints_markdown_table(capsys):
    assert main(["--config_names", *(str(p) for p in ARCHITECTURES)]) == 0
    out = capsys.readouterr().out
    assert "| Model | Encoder (Hub id) |" in out and "% to BERT" in out
    for figure in ("65,205,922", "65,205,523", "134,749,090", "134,748,691", "107,734,690", "108,325,282", "108,324,883"):
        assert figure in out
    assert out.count("= paper with the unused pooler (+590,592)") == 2  # BERT and BioBERT
    assert out.count("| = paper |") == 2  # ClinicalBERT and Transformer
    assert "not in the paper" in out  # Bio_ClinicalBERT


