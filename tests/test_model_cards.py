"""The model cards (NER, relations, self-pretrained encoders, ONNX exports): what gets published must be true, and
every snippet must run as written, pasted at the interactive prompt too."""

import ast
import code
import json
import os
import re
import subprocess
import sys

import pytest

from clinical_ner_crf.hub_upload import is_hub_id
from clinical_ner_crf.metrics import (
    RELATION_STRICT_MICRO_F1, STRICT_MACRO_F1, STRICT_MICRO_F1, system_metric_name, type_metric_name,
)
from clinical_ner_crf.model_cards import (
    SOURCE_LICENSE_NAME, default_model_label, onnx_model_card, relation_model_label, write_ner_model_card,
    write_pretraining_model_card, write_relation_model_card,
)
from clinical_ner_crf.tagging import entity_types_of
from conftest import command, tiny_encoder_config
from test_run_ner_crf import COMMON_ARGS, TINY_MODEL_ARGS, run
from test_user_paths import run_ner_style_rows, write_jsonl

run_ner_crf = command("run_ner_crf")  # the commands, for their parsed arguments
run_re = command("run_re")


def card_metadata(card: str) -> dict:
    import yaml

    return yaml.safe_load(card.split("---")[1])


def card_body(card: str) -> str:
    """The card after its YAML front matter."""
    return card.split("---\n", 2)[2]


def python_snippets(card: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", card, flags=re.S)


def assert_pastes_at_the_prompt(snippet: str) -> None:
    """The snippet pasted at the interactive ``>>>`` prompt: fed line by line as the REPL reads it
    (``code.InteractiveConsole.push``: an indented block ends only at a blank line, and a blank line ends it), then a
    blank line. No line may be a SyntaxError. Compiled only, never run."""
    errors = []

    class Prompt(code.InteractiveConsole):
        def runcode(self, compiled):  # compiled, not run
            pass

        def showsyntaxerror(self, filename=None, **kwargs):
            errors.append(sys.exc_info()[1])

    prompt = Prompt()
    for number, line in enumerate([*snippet.splitlines(), ""], 1):
        prompt.push(line)
        assert not errors, f"line {number} of the snippet is a {errors[0]!r} at the >>> prompt:\n{snippet}"
    assert not prompt.buffer, f"the snippet ends inside a statement:\n{snippet}"


def names_built_but_never_used(snippet: str) -> set[str]:
    """Names a snippet imports or assigns and never reads: objects built for nothing."""
    tree = ast.parse(snippet)
    built = {alias.asname or alias.name.split(".")[0] for node in ast.walk(tree)
             if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
    built |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    return built - {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


LABELS = ["O", "B-Drug", "I-Drug"]
RUN_INFO = {"num_parameters": 10, "num_train_sentences": 5, "num_train_documents": 2, "efficient_training": True}
RELATION_SCORES = {f"{split}_" + system_metric_name(RELATION_STRICT_MICRO_F1, system): score
                   for split, system, score in (("validation", "model", 0.91), ("validation", "rule", 0.82),
                                                ("test", "model", 0.88), ("test", "rule", 0.79))}


def ner_card(folder, *arguments, results=None, dataset_stats=None) -> str:
    """The card (and run_info.json) run_ner_crf.py writes after training with ``arguments`` (made-up numbers)."""
    folder.mkdir(parents=True, exist_ok=True)
    model_args, data_args, training_args = run_ner_crf.parse_args(
        ["--dataset_path", str(folder), "--use_cpu", "--report_to", "none", "--output_dir", str(folder), *arguments])
    run_info = {**RUN_INFO, "model_label": default_model_label(model_args), "use_crf": model_args.use_crf}
    (folder / "run_info.json").write_text(json.dumps(run_info))  # beside the card, as run_ner_crf.py writes it
    results = {f"test_{STRICT_MICRO_F1}": 0.5, f"test_{STRICT_MACRO_F1}": 0.4} if results is None else results
    return write_ner_model_card(folder, model_args, data_args, training_args, LABELS, results, run_info,
                                {"synthetic": True} if dataset_stats is None else dataset_stats).read_text()


def relation_card(folder, *arguments, results=RELATION_SCORES) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    model_args, data_args, _ = run_re.parse_args(["--dataset_path", str(folder), "--use_cpu", "--report_to", "none",
                                                  "--output_dir", str(folder), *arguments])
    return write_relation_model_card(folder, model_args, data_args, results, synthetic=False).read_text()


def pretraining_card(folder) -> str:
    from transformers import TrainingArguments

    folder.mkdir(parents=True, exist_ok=True)
    record = {"sources": [{"documents": 3}], "vocabulary": {"vocabulary_size": 100, "pieces_per_word": 1.2},
              "vocabulary_from_corpus": True, "tokens": 1000, "max_seq_length": 128, "epochs": 1.0,
              "mean_train_loss": 3.0, "last_logged_loss": 2.5, "context_free_loss": 5.0, "text_sha256": "0" * 64}
    training_args = TrainingArguments(output_dir=str(folder), report_to="none", use_cpu=True)
    return write_pretraining_model_card(folder, record, training_args, "distilbert").read_text()


def onnx_card(source: str, model_kind: str = "crf") -> str:
    info = {"source_model": source, "model_kind": model_kind, "num_labels": 3, "torch_version": "2.0", "opset": 17,
            "inputs": ["input_ids", "attention_mask"], "max_abs_emission_diff": 1e-6, "atol": 1e-4,
            "label_alignment": "first_subword" if model_kind == "crf" else None, "vocabulary_from_corpus": False}
    quantization = {"quantized_op_types": {"MatMul": 12}, "float_matmul_gemm_left": 0, "float_matmul_gemm_before": 12}
    return onnx_model_card(info, quantization)


@pytest.fixture(scope="module")
def every_kind_of_card(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("cards")
    cards = {"NER CRF": ner_card(root / "crf", "--model_name_or_path", "bert-base-cased"),
             "NER Apt (linear)": ner_card(root / "apt", "--model_name_or_path", "bert-base-cased",
                                          "--use_crf", "false"),
             "relation": relation_card(root / "relation", "--model_name_or_path", "bert-base-cased"),
             "pretraining": pretraining_card(root / "mlm")}
    cards["ONNX"] = onnx_card(str(root / "crf"))
    return cards


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


# ---------------------------------------------------------------------------------------------
# Every kind of card: snippets that paste and run, no sentence about the card, metadata
# ---------------------------------------------------------------------------------------------


def test_the_prompt_check_refuses_what_the_interactive_prompt_refuses():
    # A block followed at once by a statement, and a blank line inside a block: both valid in a file.
    for snippet in ("for x in range(2):\n    print(x)\ny = 1\n", "for x in range(2):\n    y = x\n\n    print(y)\n"):
        compile(snippet, "<file>", "exec")
        with pytest.raises(AssertionError, match="at the >>> prompt"):
            assert_pastes_at_the_prompt(snippet)
    assert_pastes_at_the_prompt("for x in range(2):\n    print(x)\n\ny = 1\n")
    assert names_built_but_never_used("from m import a, b\nc = a()\n") == {"b", "c"}


@pytest.mark.parametrize("kind", ["NER CRF", "NER Apt (linear)", "relation", "pretraining", "ONNX"])
def test_every_snippet_pastes_at_the_prompt_and_uses_what_it_builds(every_kind_of_card, kind):
    snippets = python_snippets(every_kind_of_card[kind])
    assert snippets, f"the {kind} card shows no Python"
    for snippet in snippets:
        compile(snippet, "<card>", "exec")
        assert_pastes_at_the_prompt(snippet)
        assert not names_built_but_never_used(snippet), snippet


@pytest.mark.parametrize("kind", ["NER CRF", "NER Apt (linear)", "relation", "pretraining", "ONNX"])
def test_no_card_talks_about_itself_and_every_card_has_a_licence(every_kind_of_card, kind):
    card = every_kind_of_card[kind]
    assert not re.search(r"\bcards?\b|described above", card_body(card), flags=re.I), card_body(card)
    assert card_metadata(card)["license"]


def test_the_relation_card_lists_its_scores_and_the_rules_as_metadata(tmp_path):
    metadata = card_metadata(relation_card(tmp_path / "re", "--model_name_or_path", "bert-base-cased"))
    index = metadata["model-index"][0]
    assert index["name"] == "bert-base-cased-RE"
    scores = {(result["dataset"]["split"], metric["name"]): metric["value"]
              for result in index["results"] for metric in result["metrics"]}
    model, rule = "Relation strict micro-F1 (gold entities)", \
        "Nearest-drug rule (baseline, not this model): relation strict micro-F1 (gold entities)"
    assert scores == {("validation", model): 0.91, ("validation", rule): 0.82, ("test", model): 0.88,
                      ("test", rule): 0.79}
    assert {result["task"]["type"] for result in index["results"]} == {"text-classification"}
    # Notes the model trained on give no evaluation: retrained on train+validation, only the test scores are listed.
    metadata = card_metadata(relation_card(tmp_path / "retrained", "--model_name_or_path", "bert-base-cased",
                                           "--train_split", "train+validation"))
    assert {result["dataset"]["split"] for result in metadata["model-index"][0]["results"]} == {"test"}
    # No scores (no evaluation): no model-index, still a card.
    assert "model-index" not in card_metadata(relation_card(tmp_path / "none", "--model_name_or_path", "x", results={}))


def test_the_onnx_card_has_the_source_models_metadata_and_never_its_path(tmp_path):
    ner_card(tmp_path / "crf", "--model_name_or_path", "emilyalsentzer/Bio_ClinicalBERT", "--model_license",
             "cc-by-4.0", dataset_stats={})
    card = onnx_card(str(tmp_path / "crf"))
    metadata = card_metadata(card)
    assert metadata["license"] == "cc-by-4.0" and "license_name" not in metadata
    assert metadata["library_name"] == "onnx" and metadata["pipeline_tag"] == "token-classification"
    assert {"onnx", "crf", "token-classification"} <= set(metadata["tags"]) and "synthetic-data" not in metadata["tags"]
    assert metadata["base_model"] == "emilyalsentzer/Bio_ClinicalBERT"  # the encoder: the local source is not on the Hub
    assert str(tmp_path) not in card and card_body(card).lstrip().startswith("# Bio_ClinicalBERT-CRF (ONNX)")
    # The synthetic sample's export says so; one of notes under a data-use agreement inherits it.
    ner_card(tmp_path / "synthetic", "--model_name_or_path", "bert-base-cased")
    metadata = card_metadata(onnx_card(str(tmp_path / "synthetic")))
    assert metadata["license"] == "apache-2.0" and "synthetic-data" in metadata["tags"]
    ner_card(tmp_path / "dua", "--model_name_or_path", "bert-base-cased", dataset_stats={})
    assert card_metadata(onnx_card(str(tmp_path / "dua")))["license_name"] == "data-use-agreement"
    # A Hub model: its id is the base model; its licence is not known here, so the export's is the source's.
    card = onnx_card("someone/clinical-ner-apt", model_kind="linear")
    metadata = card_metadata(card)
    assert metadata["base_model"] == "someone/clinical-ner-apt" and "linear-head" in metadata["tags"]
    assert (metadata["license"], metadata["license_name"]) == ("other", SOURCE_LICENSE_NAME)
    assert "# clinical-ner-apt (ONNX)" in card and "that of the model it was exported from" in card


def test_a_model_is_titled_by_what_it_is_not_by_the_run_it_started_from(tmp_path):
    # A self-pretrained encoder (pretrain_mlm.py's run_info.json names it "<config>-MLM"): the fine-tuned model is
    # a CRF (or Apt) head on that folder's encoder, not the masked-LM encoder itself.
    encoder = tmp_path / "self_pretrained"
    encoder.mkdir()
    (encoder / "run_info.json").write_text(json.dumps({"model_label": "distilbert-base-cased-MLM",
                                                       "pretrained_with": "pretrain_mlm.py"}))
    for use_crf, head in (("true", "CRF"), ("false", "Apt")):
        card = ner_card(tmp_path / f"ner_{head}", "--model_name_or_path", str(encoder), "--use_crf", use_crf)
        assert card_metadata(card)["model-index"][0]["name"] == f"self_pretrained-{head}"
        assert f"\n# self_pretrained-{head}\n" in card and "MLM" not in card and str(encoder) not in card
        assert "self-pretrained with `pretrain_mlm.py`" in card
    # A NER model fine-tuned further with the same head keeps its name; with another head it is another model.
    (tmp_path / "ner_CRF" / "run_info.json").write_text(json.dumps({"model_label": "Mine-CRF", "use_crf": True}))
    model_args, _, _ = run_ner_crf.parse_args(["--model_name_or_path", str(tmp_path / "ner_CRF"), "--output_dir", "x"])
    assert default_model_label(model_args) == "Mine-CRF"
    model_args, _, _ = run_ner_crf.parse_args(["--model_name_or_path", str(tmp_path / "ner_CRF"), "--output_dir", "x",
                                               "--use_crf", "false"])
    assert default_model_label(model_args) == "ner_CRF-Apt"
    # From scratch: a Transformer, never the name of the architecture's config file.
    model_args, _, _ = run_ner_crf.parse_args(["--config_name", "configs/architectures/distilbert-base-cased.json",
                                               "--output_dir", "x"])
    assert default_model_label(model_args) == "Transformer-CRF"
    model_args, _, _ = run_re.parse_args(["--config_name", "configs/architectures/distilbert-base-cased.json",
                                          "--output_dir", "x"])
    assert relation_model_label(model_args) == "Transformer-RE"
    model_args, _, _ = run_re.parse_args(["--model_name_or_path", str(encoder), "--output_dir", "x"])
    assert relation_model_label(model_args) == "self_pretrained-RE"


# ---------------------------------------------------------------------------------------------
# The tokenizer of a CRF model folder loads without a question
# ---------------------------------------------------------------------------------------------


def test_the_tokenizer_of_a_crf_model_folder_loads_as_its_card_says_without_a_question(tmp_path, wordpiece_tokenizer):
    """transformers' AutoTokenizer reads the folder's config.json before its tokenizer files; a CRF model's config
    names the model's code (auto_map), so without trust_remote_code it stops to ask ``[y/N]`` whether to run it.
    The tokenizer needs none of it: the card's ``trust_remote_code=False`` loads it without asking or running code."""
    from modeling_crf import CRFForTokenClassification, CRFTokenClassificationConfig
    from clinical_ner_crf.windows import copy_pipeline_files, pipeline_config_entry

    folder = tmp_path / "crf"  # saved as run_ner_crf.py saves a CRF model: model, code, pipeline, tokenizer
    config = CRFTokenClassificationConfig(encoder_config=tiny_encoder_config("bert", vocab_size=len(wordpiece_tokenizer)),
                                          id2label=dict(enumerate(LABELS)))
    model = CRFForTokenClassification(config)
    model.config.custom_pipelines = pipeline_config_entry()
    model.save_pretrained(folder)
    copy_pipeline_files(folder)
    wordpiece_tokenizer.save_pretrained(folder)
    assert "AutoConfig" in json.loads((folder / "config.json").read_text())["auto_map"]

    call = re.search(r'AutoTokenizer\.from_pretrained\("REPO_OR_PATH", trust_remote_code=False\)',
                     ner_card(tmp_path / "card", "--model_name_or_path", "bert-base-cased")).group(0)
    script = ("from transformers import AutoTokenizer\n"
              f"tokenizer = {call.replace('REPO_OR_PATH', str(folder))}\n"
              "print(type(tokenizer).__name__, tokenizer.tokenize('metoprolol 25 mg'))\n")
    # A fresh process, as a user's: the project is not importable, its model type not registered.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[y/N]" not in result.stdout + result.stderr, "it asked whether to run the model's code"
    assert result.stdout.startswith("BertTokenizer ")
    assert not list((tmp_path / "modules").rglob("modeling_crf.py")), "the model's code was fetched to be run"


def test_the_pretraining_cards_snippet_runs_as_written(tmp_path, wordpiece_tokenizer, capsys):
    from transformers import AutoModelForMaskedLM

    folder = tmp_path / "mlm"  # what pretrain_mlm.py saves: a masked-LM encoder and its tokenizer
    AutoModelForMaskedLM.from_config(tiny_encoder_config("distilbert", vocab_size=len(wordpiece_tokenizer))) \
        .save_pretrained(folder)
    wordpiece_tokenizer.save_pretrained(folder)
    (snippet,) = python_snippets(pretraining_card(folder))
    exec(snippet.replace("REPO_OR_PATH", str(folder)), {})
    assert "'token_str'" in capsys.readouterr().out


def test_the_onnx_cards_snippet_runs_as_written(tmp_path, capsys):
    from test_annotate_notes import train_tiny_crf

    export_onnx = command("export_onnx")
    folder = tmp_path / "onnx"
    assert export_onnx.main(["--model_name_or_path", str(train_tiny_crf(tmp_path / "crf")), "--output_dir",
                             str(folder)]) == 0
    card = (folder / "README.md").read_text()
    metadata = card_metadata(card)  # a source folder without a card: its licence is not known here
    assert (metadata["license"], metadata["license_name"], metadata["library_name"]) == \
        ("other", SOURCE_LICENSE_NAME, "onnx")
    assert str(tmp_path) not in card
    (snippet,) = python_snippets(card)
    capsys.readouterr()
    exec(snippet.replace("THIS_FOLDER", str(folder)), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed and all(len(line.split()) >= 5 for line in printed), printed


def test_the_confidence_note_states_the_temperature_and_survives_a_split_without_entities(tmp_path):
    from clinical_ner_crf.model_cards import _confidence_note

    assert _confidence_note(tmp_path) == ""  # no calibration.json: nothing to say
    summary = {"ece": 0.1534, "num_entities": 3}
    (tmp_path / "calibration.json").write_text(json.dumps({
        "temperature": 2.136, "fitted_on": "validation", "validation": {},
        "test": {"uncalibrated": summary, "calibrated": {**summary, "ece": 0.0562}}}))
    note = _confidence_note(tmp_path)
    assert "a temperature of 2.14 on their log-odds" in note and "test split: 0.153 before, 0.056 after" in note
    empty = {"ece": None, "num_entities": 0}  # a model that predicted no entity there: ECE is undefined
    (tmp_path / "calibration.json").write_text(json.dumps({
        "temperature": 1.0, "fitted_on": "validation", "validation": {"uncalibrated": empty, "calibrated": empty}}))
    assert "No entity was predicted on the validation split" in _confidence_note(tmp_path)
