"""Model cards: the README.md of every model the toolkit saves (NER, relations, self-pretrained encoders, ONNX exports), with its metadata (base model, license, datasets, metrics) and what it was trained on, in counts, never note text."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Sequence

from transformers import TrainingArguments

from .files import CALIBRATION_FILE, CRF_FILE, ONNX_FILE, ONNX_INT8_FILE, QUANTIZATION_FILE, RUN_INFO_FILE, STATS_FILE, atomic_open
from .hub_upload import is_hub_id
from .metrics import (
    LENIENT_MICRO_F1, RELATION_STRICT_MICRO_F1, STRICT_MACRO_F1, STRICT_MICRO_F1, metric_name, relation_view,
    system_metric_name, type_metric_name,
)
from .onnx_backend import EMISSIONS_OUTPUT
from .relation_training import SYSTEMS
from .tagging import entity_types_of


CARD_FILE = "README.md"


def write_card(output_dir, card: str) -> Path:
    """The one way a card reaches a model folder: ``README.md`` written atomically (never half a card), newlines kept."""
    path = Path(output_dir) / CARD_FILE
    with atomic_open(path, newline="") as handle:
        handle.write(card)
    return path


def card_text(card_data, body: str) -> str:
    """A card: its metadata (a ``ModelCardData``) as YAML front matter, then ``body`` (markdown, taken as it is:
    no template syntax is read in it, so a snippet's braces stay braces)."""
    from huggingface_hub import ModelCard

    return str(ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}"))


# The licence name of a model trained on notes under their own terms (n2c2's: a data-use agreement); and of an
# export whose source's licence is not known here (a Hub model's): it inherits the source's terms.
DATA_USE_AGREEMENT = "data-use-agreement"
SOURCE_LICENSE_NAME = "source-model-licence"


def card_license(model_license: str | None, dataset_stats: dict[str, Any]) -> tuple[str, str | None]:
    """``(license, license_name)`` of a model card: the user's choice, else apache-2.0 for the synthetic sample,
    else "other": a model trained on notes inherits their terms (n2c2: a data-use agreement)."""
    if model_license:
        return model_license, None
    if dataset_stats.get("synthetic"):
        return "apache-2.0", None
    return "other", DATA_USE_AGREEMENT


def licence_sentence(license_name: str | None) -> str:
    """What a reader must know beyond the licence id of the front matter: why a model has no open licence."""
    if license_name == DATA_USE_AGREEMENT:
        return ("The model was trained on data under its own terms (n2c2-2018 is under a data-use agreement; for data "
                "of unknown licence, check before publishing): a model trained on such data inherits them.")
    if license_name == SOURCE_LICENSE_NAME:
        return "Licence: that of the model it was exported from, whose terms it inherits."
    return ""


# The example sentence of the cards' snippets (ours, not from any corpus), and the masked-LM one made from it.
CARD_EXAMPLE = "Started metoprolol 25 mg PO BID for hypertension."
MASKED_EXAMPLE_WORD = "hypertension"
PAPER_CITATION = """@inproceedings{belkadi2023exploring,
  title     = {Exploring the Value of Pre-trained Language Models for Clinical Named Entity Recognition},
  author    = {Belkadi, Samuel and Han, Lifeng and Wu, Yuping and Nenadic, Goran},
  booktitle = {2023 IEEE International Conference on Big Data (BigData)},
  year      = {2023},
  note      = {arXiv:2210.12770}
}"""


def earlier_run_info(model_name_or_path: str | None) -> dict[str, Any]:
    """The ``run_info.json`` of a local folder this toolkit wrote (a NER, relation or pre-training run), else ``{}``."""
    path = Path(model_name_or_path or "") / RUN_INFO_FILE
    return json.loads(path.read_text(encoding="utf-8")) if model_name_or_path and path.is_file() else {}


def encoder_name(model_name_or_path: str | None) -> str:
    """What a title calls the encoder a model starts from: the last part of a Hub id or of a local folder (never its
    whole path), ``Transformer`` when trained from scratch (never the name of the architecture's config file)."""
    if not model_name_or_path:
        return "Transformer"
    path = Path(model_name_or_path)
    return (path.absolute() if path.exists() else path).name  # "." is a folder with a name too


def encoder_description(model_name_or_path: str | None, config_name: str | None) -> str:
    """The encoder a model starts from, in words: a Hub id as it is, a local folder by what it is, never its path."""
    if not model_name_or_path:
        return f"a Transformer trained from scratch (`{Path(str(config_name)).name}` architecture)"
    if is_hub_id(model_name_or_path):
        return f"`{model_name_or_path}`"
    if "pretrained_with" in earlier_run_info(model_name_or_path):
        return "an encoder self-pretrained with `pretrain_mlm.py`"
    return "a local pre-trained encoder"


def default_model_label(model_args) -> str:
    """``--model_label``; else, for a NER model of this toolkit fine-tuned further with the same head, its label;
    else what the model is: ``{encoder}-{CRF|Apt}``."""
    if model_args.model_label:
        return model_args.model_label
    earlier = earlier_run_info(model_args.model_name_or_path)
    # Only a NER run with this head (its run_info has this use_crf) names this model: the label of a self-pretrained
    # encoder ("...-MLM") or of a relation model names another kind of model.
    if earlier.get("model_label") and earlier.get("use_crf") == model_args.use_crf:
        return earlier["model_label"]
    return f"{encoder_name(model_args.model_name_or_path)}-{'CRF' if model_args.use_crf else 'Apt'}"


def training_data_description(data_args, dataset_stats: dict[str, Any]) -> tuple[str, str]:
    """``(name, type)`` of the data a run used, for the card's model-index (never corpus text); ``data_args``: a
    NER run's (a prepared dataset, a Hub dataset or files) or a relation run's (a prepared dataset only)."""
    if dataset_stats.get("synthetic"):
        return "synthetic n2c2-format sample (SYNTHETIC: generated by synthetic_n2c2.py, not patient notes)", "synthetic"
    if getattr(data_args, "dataset_name", None):
        return data_args.dataset_name, data_args.dataset_name
    if data_args.dataset_path:
        return f"{Path(data_args.dataset_path).name} (local, prepared with prepare_n2c2.py)", "local"
    files = [Path(f).name for f in (data_args.train_file, data_args.validation_file, data_args.test_file) if f]
    return f"local files ({', '.join(files)})", "local"


def held_out(split: str, train_split: str) -> bool:
    """Whether a split's notes were kept out of training (``train+validation`` trains on validation): scores of notes
    a model trained on are no evaluation, and a card's model-index never lists them."""
    return not set(split.split("+")) & set(train_split.split("+"))


def _number(value: Any, digits: int = 4) -> str:
    """A metric for the card; "n/a" (never nan) when there is none."""
    return "n/a" if value is None or value != value else f"{float(value):.{digits}f}"


def training_results_table(log_history: Sequence[dict[str, Any]]) -> str:
    """The Trainer card's "Training results": one row per evaluation (training loss: the last logged before it)."""
    rows, train_loss = {}, None
    for entry in log_history:
        if "loss" in entry:
            train_loss = entry["loss"]
        if f"eval_{STRICT_MICRO_F1}" in entry:
            # One row per step: a final evaluation after training repeats the last step (and may be another model).
            rows.setdefault(entry.get("step"), (
                f"| {_number(entry.get('epoch'), 2)} | {entry.get('step', '')} | "
                f"{'No log' if train_loss is None else _number(train_loss)} | {_number(entry.get('eval_loss'))} | "
                f"{_number(entry[f'eval_{STRICT_MICRO_F1}'])} | {_number(entry.get(f'eval_{STRICT_MACRO_F1}'))} |"))
    if not rows:
        return "No evaluation during training."
    return "\n".join(["| Epoch | Step | Training loss | Validation loss | Strict micro-F1 | Strict macro-F1 |",
                      "|---:|---:|---:|---:|---:|---:|", *rows.values()])


def framework_versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    lines = []
    for package in ("transformers", "torch", "tokenizers", "datasets", "accelerate", "pytorch-crf"):
        try:
            lines.append(f"- {package} {version(package)}")
        except PackageNotFoundError:
            pass
    return "\n".join(lines + [f"- Python {sys.version.split()[0]}"])


def _confidence_note(output_dir: Path) -> str:
    """What the entity confidences mean, from ``calibration.json`` when the run fitted a temperature
    (``--calibrate_confidence``): numbers only."""
    path = Path(output_dir) / CALIBRATION_FILE
    if not path.is_file():
        return ""
    calibration = json.loads(path.read_text(encoding="utf-8"))
    split = calibration.get("test") or calibration["validation"]
    name = "test" if "test" in calibration else calibration.get("fitted_on", "validation")
    before, after = split["uncalibrated"]["ece"], split["calibrated"]["ece"]
    measured = (f"Expected calibration error on the {name} split: {before:.3f} before, {after:.3f} after"
                if before is not None else f"No entity was predicted on the {name} split to measure it on")
    return (f"\nEntity confidences are calibrated: a temperature of {calibration['temperature']:.3g} on their "
            f"log-odds, fitted on the `{calibration.get('fitted_on', 'validation')}` split and saved in `config.json` "
            f"(`entity_confidence_temperature`), is applied before `min_confidence`. {measured} "
            f"(`{CALIBRATION_FILE}` holds the reliability and threshold tables).\n")


def write_ner_model_card(
    output_dir: Path, model_args, data_args, training_args: TrainingArguments,
    labels: list[str], results: dict[str, Any], run_info: dict[str, Any], dataset_stats: dict[str, Any],
    log_history: Sequence[dict[str, Any]] = (),
) -> Path:
    """README.md with model-index metadata, built from numbers and settings only: never any corpus text."""
    from huggingface_hub import ModelCardData
    from huggingface_hub.repocard_data import EvalResult

    model_label = run_info["model_label"]
    dataset_name, dataset_type = training_data_description(data_args, dataset_stats)
    license_id, license_name = card_license(model_args.model_license, dataset_stats)
    eval_results = [
        EvalResult(task_type="token-classification", dataset_type=dataset_type, dataset_name=dataset_name,
                   dataset_split=data_args.test_split, metric_type="f1", metric_name=metric_title,
                   metric_value=round(float(results[key]), 4))
        for key, metric_title in ((f"test_{STRICT_MICRO_F1}", "Strict entity micro-F1"),
                                  (f"test_{STRICT_MACRO_F1}", "Strict entity macro-F1"))
        if results.get(key) is not None and held_out(data_args.test_split, data_args.train_split)
    ]
    base_model = model_args.model_name_or_path if is_hub_id(model_args.model_name_or_path) else None
    card_data = ModelCardData(
        license=license_id, license_name=license_name,
        library_name="transformers", pipeline_tag="token-classification",
        tags=["token-classification", "ner", "clinical", "crf" if model_args.use_crf else "linear-head"]
        + (["synthetic-data"] if dataset_stats.get("synthetic") else []),
        base_model=base_model, model_name=model_label, eval_results=eval_results or None,
    )
    type_scores = {entity_type: results.get("test_" + type_metric_name(entity_type))
                   for entity_type in entity_types_of(labels)}
    per_type_rows = "\n".join(f"| {entity_type} | {_number(score)} |" for entity_type, score in type_scores.items())
    scored = sorted((score, entity_type) for entity_type, score in type_scores.items() if score is not None)
    hardest = (f"On this run's test split the lowest strict F1 is for {scored[0][1]} ({scored[0][0]:.2f})"
               + (f" and {scored[1][1]} ({scored[1][0]:.2f})" if len(scored) > 1 else "") + ". "
               if scored else "")
    hyper = {key: getattr(training_args, key) for key in (
        "learning_rate", "per_device_train_batch_size", "num_train_epochs", "max_steps", "lr_scheduler_type",
        "warmup_steps", "weight_decay", "seed", "bf16", "fp16")}
    hyper.update(crf_learning_rate=model_args.crf_learning_rate, classifier_dropout=model_args.classifier_dropout,
                 max_seq_length=data_args.max_seq_length, stride=data_args.stride,
                 label_all_tokens=data_args.label_all_tokens, world_size=training_args.world_size)
    remote = ", trust_remote_code=True" if model_args.use_crf else ""
    encoder = encoder_description(model_args.model_name_or_path, model_args.config_name)
    if model_args.use_crf:
        usage_note = (
            "CRF models ship their own code: `modeling_crf.py` (the model) and `windows.py` + `tagging.py` (the "
            "pipeline: sentences, words and windows, so that a text of any length is tagged to its last character). "
            "Loading them needs `trust_remote_code=True`, which runs those files: read them first; they depend only "
            "on torch, transformers, tokenizers and pytorch-crf. The tokenizer alone is a stock one: "
            '`AutoTokenizer.from_pretrained("REPO_OR_PATH", trust_remote_code=False)` loads it without running them '
            "(without that argument transformers stops to ask whether to run them, as it reads the model's config "
            "first). The pipeline returns the CRF's Viterbi path with marginal-probability scores; a model object in "
            "the stock pipeline gives the same path (its `logits` are built from it).")
    else:
        usage_note = ("A stock transformers token-classification model: no custom code needed. The stock pipeline "
                      "truncates long texts unless given `stride=`.")
    confidence_note = _confidence_note(output_dir)
    body = f"""
# {model_label}

Clinical named-entity recogniser for drugs and their attributes, trained with `run_ner_crf.py`
(a {"CRF" if model_args.use_crf else "linear (Apt)"} head on {encoder}) on {dataset_name}.

## Results (test split `{data_args.test_split}`, word level)

| metric | value |
|---|---|
| strict entity micro-F1 | {_number(results.get('test_' + STRICT_MICRO_F1))} |
| strict entity macro-F1 | {_number(results.get('test_' + STRICT_MACRO_F1))} |
| lenient entity micro-F1 | {_number(results.get('test_' + LENIENT_MICRO_F1))} |

| entity type | strict F1 |
|---|---|
{per_type_rows}
{confidence_note}
## Labels
{len(labels)} IOB2 tags: {", ".join(f"`{label}`" for label in labels)}

## Training
- Base model: {base_model or ("a local encoder" if model_args.model_name_or_path else "none (trained from scratch)")}
- Parameters: {run_info["num_parameters"]:,}
- Training data: {dataset_name}; split `{data_args.train_split}` ({run_info["num_train_sentences"]:,} sentences from {run_info["num_train_documents"]:,} documents; train_fraction {data_args.train_fraction}); efficient training (down-sampled all-O sentences): {"yes" if run_info["efficient_training"] else "no"}
- Hyper-parameters: `{json.dumps(hyper, default=str)}`

### Training results

{training_results_table(log_history)}

## How to use
```python
from transformers import pipeline

ner = pipeline("token-classification", model="REPO_OR_PATH"{remote}, aggregation_strategy="simple")
print(ner("{CARD_EXAMPLE}"))
```
{usage_note}

## Intended use and limitations
For research on clinical information extraction. **Not for clinical decisions** and not validated
for patient care. {"Trained on a SYNTHETIC sample, not patient notes: for trying the toolkit only. " if dataset_stats.get("synthetic") else ""}Performance on notes from other institutions, specialties or note types will differ.
{hardest}{licence_sentence(license_name)}{" Its tokenizer was trained on the training notes: its vocabulary is derived from them." if model_args.train_tokenizer else " Its tokenizer's vocabulary was learned from notes (the model it was fine-tuned from): its vocabulary is derived from them." if run_info.get("vocabulary_from_corpus") else ""}

## Framework versions
{framework_versions()}

## Citation
```bibtex
{PAPER_CITATION}
```
"""
    return write_card(output_dir, card_text(card_data, body))


def relation_model_label(model_args) -> str:
    """The model's name in the card and run_info.json: ``--model_label``, else ``{encoder}-RE``."""
    return model_args.model_label or f"{encoder_name(model_args.model_name_or_path)}-RE"


def write_relation_model_card(output_dir: Path, model_args, data_args, results: dict[str, Any],
                     synthetic: bool) -> Path:
    """README.md with model-index metadata, from numbers and settings only (never corpus text)."""
    from huggingface_hub import ModelCardData
    from huggingface_hub.repocard_data import EvalResult

    label = relation_model_label(model_args)
    license_id, license_name = card_license(model_args.model_license, {"synthetic": synthetic})
    dataset_name, dataset_type = training_data_description(data_args, {"synthetic": synthetic})
    # The model's strict micro-F1 on each held-out split, and the nearest-drug rule's, named as the rule's: the
    # baseline it must beat (--relations auto links with whichever scored higher on validation).
    metric_titles = {"model": "Relation strict micro-F1 (gold entities)",
                     "rule": "Nearest-drug rule (baseline, not this model): relation strict micro-F1 (gold entities)"}
    eval_results = []
    for split, split_name in (("validation", data_args.validation_split), ("test", data_args.test_split)):
        for system, metric_title in metric_titles.items():
            value = results.get(f"{split}_" + system_metric_name(RELATION_STRICT_MICRO_F1, system))
            if value is not None and held_out(split_name, data_args.train_split):
                eval_results.append(EvalResult(
                    task_type="text-classification", task_name="Relation extraction (n2c2-2018 Track 2)",
                    dataset_type=dataset_type, dataset_name=dataset_name, dataset_split=split_name,
                    metric_type="f1", metric_name=metric_title, metric_value=round(float(value), 4)))
    card_data = ModelCardData(license=license_id, license_name=license_name, library_name="transformers",
                              pipeline_tag="text-classification", model_name=label,
                              base_model=model_args.model_name_or_path if is_hub_id(model_args.model_name_or_path)
                              else None, tags=["relation-extraction", "clinical", "n2c2-2018-track2"]
                              + (["synthetic-data"] if synthetic else []), eval_results=eval_results or None)

    def number(key):
        value = results.get(key)
        return "n/a" if value is None else f"{value:.4f}"

    features = results.get("input_features") or []
    features_text = (", after the rule's view of the pair as tokens (" + ", ".join(
        {"rule": "`[rule]`/`[not-rule]`: the nearest-drug rule's pair or not",
         "between": "`[between-N]`: drugs between the two"}[name] for name in features) + ")") if features else ""
    names = {"model": "this model", "rule": "nearest-drug rule", "every_candidate": "every candidate linked"}
    rows = "\n".join(f"| {names[system]} | " + " | ".join(
        number(f"{split}_" + system_metric_name(metric_name(relation_view(mode), "micro"), system))
        for split, mode in (("validation", "strict"), ("test", "strict"), ("test", "lenient"))) + " |"
        for system in SYSTEMS)
    if "selected_epoch" in results:
        selection = (f"Selected on the validation notes: epoch {results['selected_epoch']:g} of "
                     f"{results['train_epochs']:g}, link threshold {results['link_threshold']}.")
    else:
        selection = f"No selection on validation notes: the last epoch, link threshold {results.get('link_threshold')}."
    if results.get("preferred_on_validation") == "rule":
        selection += (" **On the validation notes this model did not beat the nearest-drug rule** (strict micro-F1 "
                      f"{number('validation_' + RELATION_STRICT_MICRO_F1)} against "
                      f"{number('validation_' + system_metric_name(RELATION_STRICT_MICRO_F1, 'rule'))}): "
                      "`annotate_notes.py --relations auto` "
                      "(the default) links with the rule.")

    body = f"""
# {label}

Links each attribute (strength, dosage, route, frequency, duration, form, reason, adverse event) to its
drug, as in n2c2-2018 Track 2, trained with `run_re.py` on {dataset_name}. Input: the sentence(s) of an (attribute, drug) candidate with typed markers
around both (`[Strength] 25 mg [/Strength] ... [Drug] metoprolol [/Drug]`){features_text}; output: `linked` or `none`.
A stock `AutoModelForSequenceClassification`: no custom code.

## Results (relations on gold entities, strict micro-F1; lenient on test)

| system | validation | test | test lenient |
|---|---|---|---|
{rows}

{selection}

## How to use
With the project's `clinical_ner_crf` package (on the path) and an entity model trained with `run_ner_crf.py`
(`NER_MODEL`): NER, then relations, then a medication list.

```python
from clinical_ner_crf.note_annotator import NoteAnnotator

annotator = NoteAnnotator.from_pretrained("NER_MODEL", relation_model_name_or_path="REPO_OR_PATH")
for drug in annotator.medications("{CARD_EXAMPLE}"):
    print(drug["drug"]["text"], [(attribute["type"], attribute["text"]) for attribute in drug["attributes"]])
```
A folder of notes: `annotate_notes.py --model_name_or_path NER_MODEL --relation_model_name_or_path REPO_OR_PATH --input_dir notes/ --output_dir notes_annotated/`.
Both link with this model where it beat the nearest-drug rule on the validation notes, else with the rule
(`relations="auto"`, `--relations auto`: the default).

## Limitations
For research; **not for clinical decisions**. Candidates: same sentence (Reason and ADE within
{data_args.sentence_window} sentence(s)); a relation beyond that is never found. {licence_sentence(license_name)}
"""
    return write_card(output_dir, card_text(card_data, body))


def write_pretraining_model_card(output_dir: Path, record: dict[str, Any], training_args: TrainingArguments,
                     model_type: str) -> Path:
    """README.md of the encoder: what it is, what it saw (counts, no text or paths), how to use and fine-tune it."""
    from huggingface_hub import ModelCardData

    # The synthetic sample's licence only when every source is a prepared dataset of it; unlabelled notes, or any
    # other data, give the model their terms.
    synthetic = bool(record["sources"]) and all(
        "dataset_path" in source and _prepared_dataset_stats(source["dataset_path"]).get("synthetic")
        for source in record["sources"])
    license_id, license_name = card_license(None, {"synthetic": synthetic})
    card_data = ModelCardData(license=license_id, license_name=license_name, library_name="transformers",
                              pipeline_tag="fill-mask", tags=["fill-mask", "clinical", "self-pretraining"]
                              + (["synthetic-data"] if synthetic else []))
    masked_example = CARD_EXAMPLE.replace(MASKED_EXAMPLE_WORD, "{fill.tokenizer.mask_token}")
    sources = ", ".join(f"{source['documents']:,} documents of a prepared dataset ({'+'.join(source['splits'])})"
                        if "dataset_path" in source else f"{source['documents']:,} unlabelled notes"
                        for source in record["sources"])
    vocabulary = record["vocabulary"]
    corpus_note = ("**The vocabulary was learned from the pre-training notes, so its entries are words of that "
                   "text**: share this model only where the notes' terms allow it.\n\n"
                   if record["vocabulary_from_corpus"] else "")
    last = record.get("last_logged_loss")
    body = f"""
# Encoder pre-trained with pretrain_mlm.py (masked language modelling from scratch)

A `{model_type}`-architecture encoder pre-trained on {sources}: {record["tokens"]:,} tokens
in blocks of {record["max_seq_length"]}, {record["epochs"]:.1f} epochs, whole-word masking. Vocabulary:
{vocabulary["vocabulary_size"]:,} WordPiece entries, {vocabulary["pieces_per_word"]} pieces per word.
{corpus_note}Masked-LM loss: {record["mean_train_loss"]:.2f} on average over the run{f", {last:.2f} at the end" if last is not None else ""};
a predictor that ignores context scores {record["context_free_loss"]:.2f}. Text SHA-256 `{record["text_sha256"]}` (the
text itself is not recorded). Seed {training_args.seed}, learning rate {training_args.learning_rate}.
{licence_sentence(license_name)}

Its guesses for a masked word:

```python
from transformers import pipeline

fill = pipeline("fill-mask", model="REPO_OR_PATH")
print(fill(f"{masked_example}"))
```

Fine-tune it for entity recognition (CRF head; `--use_crf false` for a linear head):

```bash
accelerate launch run_ner_crf.py --model_name_or_path <this model> --dataset_path data/n2c2 \\
    --output_dir runs/self_pretrained_crf --do_train --do_eval --do_predict
```
"""
    return write_card(output_dir, card_text(card_data, body))


def _prepared_dataset_stats(dataset_path: str) -> dict[str, Any]:
    """The ``stats.json`` prepare_n2c2.py wrote beside a dataset (``synthetic``: the generated sample), else ``{}``."""
    path = Path(dataset_path) / STATS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _kept_fp32(quantization: dict) -> str:
    """The layers static int8 left in fp32, counted by why (``quantization.json``'s ``kept_fp32_by_reason``)."""
    by_reason = quantization.get("kept_fp32_by_reason")
    if not by_reason:
        return ", ".join(quantization["kept_fp32"]) or "nothing"
    return ", ".join(f"{len(names)} × {reason}" for reason, names in by_reason.items() if names) or "nothing"


def onnx_model_card(info: dict, quantization: dict | None) -> str:
    """README.md of an export_onnx.py folder: metadata from the source model's own card (licence, base model, tags)
    where it is a local folder, what was exported and verified, how to run it."""
    from huggingface_hub import ModelCardData, metadata_load

    source = info["source_model"]
    source_is_hub = is_hub_id(source)
    source_card = Path(source) / CARD_FILE
    source_metadata = {} if source_is_hub or not source_card.is_file() else metadata_load(source_card) or {}
    if source_metadata.get("license"):
        license_id, license_name = source_metadata["license"], source_metadata.get("license_name")
    else:  # a Hub model, or a folder without its card: its licence is not known here
        license_id, license_name = "other", SOURCE_LICENSE_NAME
    crf = info["model_kind"] == "crf"
    card_data = ModelCardData(
        license=license_id, license_name=license_name, library_name="onnx", pipeline_tag="token-classification",
        tags=["token-classification", "ner", "clinical", "onnx", "crf" if crf else "linear-head"]
        + (["synthetic-data"] if "synthetic-data" in (source_metadata.get("tags") or []) else []),
        # A Hub source is the base model; a local one is not on the Hub, so the encoder it was fine-tuned from is.
        base_model=source if source_is_hub else source_metadata.get("base_model"),
    )
    label = earlier_run_info(source).get("model_label") or encoder_name(source)
    lines = [
        "",
        f"# {label} (ONNX)",
        "",
        f"Made by `export_onnx.py` from {f'`{source}`' if source_is_hub else 'a local model folder'} "
        f"({info['model_kind']} model, {info['num_labels']} labels), torch {info['torch_version']}, opset "
        f"{info['opset']}, TorchScript exporter, dynamic batch and sequence axes.",
        "",
        f"- `{ONNX_FILE}`: encoder + emission layer, fp32. Inputs: {', '.join(info['inputs'])}; "
        f"output `{EMISSIONS_OUTPUT}` [batch, sequence, {info['num_labels']}].",
        f"- Verified at export: max abs emission difference to PyTorch {info['max_abs_emission_diff']:.3g} "
        f"(tolerance {info['atol']:g}) on dummy inputs.",
    ]
    if crf:
        lines.append(f"- `{CRF_FILE}`: the CRF's start/transition/end scores with the IOB2 constraints applied; "
                     f"decoded (Viterbi, forward-backward marginals) in numpy by `onnx_backend.py` over the "
                     f"positions the model was trained on (`{info['label_alignment']}`).")
    if quantization:
        ops = ", ".join(f"{op} {n}" for op, n in quantization["quantized_op_types"].items())
        if quantization.get("method", "").endswith("quantize_static"):
            how = (f"static int8 quantization (onnxruntime `quantize_static`, QDQ, per-channel QInt8 weights, "
                   f"activation scales fixed from {quantization['calibration']['windows']} calibration windows: a "
                   f"note's scores do not depend on its batch; matrix products' outputs in float): {ops}; kept in "
                   f"fp32: {_kept_fp32(quantization)}")
        else:
            how = (f"dynamic int8 quantization (onnxruntime `quantize_dynamic`, QInt8 weights; activation scales "
                   f"from each batch, so a note's scores depend slightly on its batch): {ops}")
        lines.append(f"- `{ONNX_INT8_FILE}`: {how}; {quantization['float_matmul_gemm_left']} of "
                     f"{quantization['float_matmul_gemm_before']} MatMul/Gemm left in float; "
                     f"emission difference to PyTorch {info.get('int8_max_abs_emission_diff', float('nan')):.3g} "
                     f"(not bounded: quantization changes scores). See `{QUANTIZATION_FILE}`.")
    if info["vocabulary_from_corpus"]:
        lines.append("- The tokenizer's vocabulary was learned from the training notes (`\"vocabulary_from_corpus\": "
                     "true` in its `tokenizer_config.json`): its words come from them.")
    lines += [
        "",
        "## How to use",
        "With the project's `clinical_ner_crf` package (on the path) and onnxruntime, `THIS_FOLDER` being this folder "
        "on disk:",
        "",
        "```python",
        "from clinical_ner_crf.note_annotator import NoteAnnotator",
        "",
        'annotator = NoteAnnotator.from_pretrained("THIS_FOLDER", backend="onnx")',
        f'for entity in annotator("{CARD_EXAMPLE}"):',
        "    print(entity.type, entity.start, entity.end, entity.text, round(entity.confidence, 3))",
        "```",
        "A folder of notes: `annotate_notes.py --backend onnx --model_name_or_path THIS_FOLDER --input_dir notes/ "
        "--output_dir notes_annotated/`.",
    ]
    licence = licence_sentence(license_name)
    lines += ["", "## Licence", licence] if licence else []
    return card_text(card_data, "\n".join(lines) + "\n")
