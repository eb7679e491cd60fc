"""The model card run_ner_crf.py writes: what gets published must be true, and its snippet must run as written."""

import json
import os
import re
import subprocess
import sys

import pytest

from clinical_ner_crf.hub_upload import is_hub_id
from clinical_ner_crf.metrics import STRICT_MICRO_F1, type_metric_name
from clinical_ner_crf.tagging import entity_types_of
from conftest import command
from test_run_ner_crf import COMMON_ARGS, TINY_MODEL_ARGS, run
from test_user_paths import run_ner_style_rows, write_jsonl

run_ner_crf = command("run_ner_crf")  # the commands, for their parsed arguments
run_re = command("run_re")


def card_metadata(card: str) -> dict:
    import yaml

    return yaml.safe_load(card.split("---")[1])


@pytest.fixture(scope="module")
def synthetic_run(synthetic_dataset, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("card") / "run"
    results = run([*TINY_MODEL_ARGS, *COMMON_ARGS, "--dataset_path", synthetic_dataset, "--output_dir", output_dir,
                   "--num_train_epochs", "2", "--eval_strategy", "epoch", "--model_label", "Tiny-CRF"])
    return output_dir, results, (output_dir / "README.md").read_text()


@pytest.mark.slow
def test_a_card_for_the_synthetic_sample_says_so_and_states_its_numbers(synthetic_run):
    output_dir, results, card = synthetic_run
    metadata = card_metadata(card)
    assert metadata["license"] == "apache-2.0" and "synthetic-data" in metadata["tags"]
    assert "base_model" not in metadata  # trained from scratch
    index = metadata["model-index"][0]
    assert index["name"] == "Tiny-CRF"
    assert "SYNTHETIC" in index["results"][0]["dataset"]["name"] and index["results"][0]["dataset"]["type"] == "synthetic"
    assert "# Tiny-CRF" in card and "Trained on a SYNTHETIC sample" in card
    assert "nan" not in card.lower().split()
    # The hardest types are this run's, read from its own per-type scores.
    entity_types = entity_types_of(json.loads((output_dir / "config.json").read_text())["label2id"])
    scores = {t: results[f"test_{type_metric_name(t)}"] for t in entity_types}
    lowest = min(scores, key=scores.get)
    assert f"the lowest strict F1 is for {lowest} ({scores[lowest]:.2f})" in card
    assert "Reason and ADE are the hardest" not in card
    # The Trainer card's training-results table and framework versions.
    assert "| Epoch | Step | Training loss | Validation loss |" in card and card.count("| 2.00 |") == 1
    assert "## Framework versions" in card and "- transformers " in card and "- pytorch-crf " in card
    assert f"{results[f'test_{STRICT_MICRO_F1}']:.4f}" in card


@pytest.mark.slow
def test_the_cards_snippet_runs_as_written_in_a_fresh_process(synthetic_run, tmp_path):
    output_dir, _, card = synthetic_run
    snippet = re.search(r"```python\n(.*?)```", card, flags=re.S).group(1).replace("REPO_OR_PATH", str(output_dir))
    # A fresh machine: the project's files are not importable, only the model folder exists.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[y/N]" not in result.stdout + result.stderr, "a line asks a question: not runnable as written"
    assert "entity_group" in result.stdout


def test_a_card_for_other_data_inherits_its_terms(synthetic_dataset, tmp_path):
    train = write_jsonl(tmp_path / "notes_train.jsonl", run_ner_style_rows(synthetic_dataset, "train")[:60])
    test = write_jsonl(tmp_path / "notes_test.jsonl", run_ner_style_rows(synthetic_dataset, "test")[:30])
    args = [*TINY_MODEL_ARGS, *COMMON_ARGS, "--train_file", train, "--test_file", test, "--do_eval", "false",
            "--num_train_epochs", "1"]
    run([*args, "--output_dir", tmp_path / "dua"])
    metadata = card_metadata((tmp_path / "dua" / "README.md").read_text())
    assert metadata["license"] == "other" and metadata["license_name"] == "data-use-agreement"
    dataset = metadata["model-index"][0]["results"][0]["dataset"]
    assert dataset["name"] == "local files (notes_train.jsonl, notes_test.jsonl)" and dataset["type"] == "local"
    assert "data-use agreement" in (tmp_path / "dua" / "README.md").read_text()
    run([*args, "--output_dir", tmp_path / "mine", "--model_license", "cc-by-4.0"])
    assert card_metadata((tmp_path / "mine" / "README.md").read_text())["license"] == "cc-by-4.0"


def test_base_model_is_written_only_for_hub_ids(tmp_path):
    assert is_hub_id("emilyalsentzer/Bio_ClinicalBERT") and is_hub_id("bert-base-cased")
    assert not is_hub_id(str(tmp_path)) and not is_hub_id("/no/such/local/path")
    assert not is_hub_id("./relative/model") and not is_hub_id(None)

    # The cards themselves (NER and relations), from the commands' own parsed arguments: a Hub id is the card's
    # base_model (the Hub links the two); a local folder is a path on this machine, which the card never names.
    from clinical_ner_crf.model_cards import write_ner_model_card, write_relation_model_card

    local = tmp_path / "my_encoder"
    local.mkdir()
    labels = ["O", "B-Drug", "I-Drug"]
    run_info = {"model_label": "m", "num_parameters": 10, "num_train_sentences": 5, "num_train_documents": 2,
                "efficient_training": True}
    for base, expected in (("emilyalsentzer/Bio_ClinicalBERT", "emilyalsentzer/Bio_ClinicalBERT"),
                           ("bert-base-cased", "bert-base-cased"), (str(local), None)):
        common = ["--model_name_or_path", base, "--dataset_path", str(tmp_path), "--use_cpu", "--report_to", "none"]
        ner = tmp_path / "ner" / base.replace("/", "_")
        ner.mkdir(parents=True)
        model_args, data_args, training_args = run_ner_crf.parse_args([*common, "--output_dir", str(ner)])
        write_ner_model_card(ner, model_args, data_args, training_args, labels, {f"test_{STRICT_MICRO_F1}": 0.5},
                             run_info, {"synthetic": True})
        relations = tmp_path / "re" / base.replace("/", "_")
        relations.mkdir(parents=True)
        model_args, data_args, _ = run_re.parse_args([*common, "--output_dir", str(relations)])
        write_relation_model_card(relations, model_args, data_args, {}, synthetic=True)
        for card in ((ner / "README.md").read_text(), (relations / "README.md").read_text()):
            metadata = card_metadata(card)
            assert metadata.get("base_model") == expected, (base, metadata)
            if expected is None:
                assert "base_model" not in metadata and str(local) not in card
