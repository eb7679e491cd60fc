#!/usr/bin/env python
"""Train, evaluate and publish a relation model: which drug each attribute belongs to (n2c2-2018 Track 2).

In the style of transformers' ``examples/pytorch/text-classification/run_glue.py``:

    python run_re.py --model_name_or_path emilyalsentzer/Bio_ClinicalBERT --dataset_path data/n2c2 \\
        --output_dir runs/relations --do_train --do_eval --do_predict
    accelerate launch --config_file configs/accelerate/single_gpu.yaml run_re.py configs/relations.json

The data is a prepare_n2c2.py output folder: its ``documents/`` rows hold each note's text, its
entities (after the NER policies) and the relations between them. Every (attribute, drug) candidate
pair of ``relations.py`` (same sentence; Reason and ADE within ``--sentence_window`` sentences) becomes
one example: the sentences with typed markers around the two arguments, labelled ``linked`` or ``none``,
for a stock ``AutoModelForSequenceClassification`` (no custom code to load; the markers are added to
the tokenizer as special tokens). Prediction links every candidate whose probability is at least
``--link_threshold``.

Scores (the n2c2 scorer's semantics, ``evaluate_ablations.score_relations``): relations on gold entities,
strict and lenient, micro and per type, for the model and for the rule most tools use (the nearest drug,
``relations.nearest_drug_rule``), on the same test notes; and the candidates' recall ceiling per type.
Predictions (brat ``.ann`` with the gold entities and the predicted R lines) go to
``OUTPUT_DIR/predictions/``, which ``--push_to_hub`` never uploads.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from transformers import (
    AutoConfig, AutoModelForSequenceClassification, Trainer, TrainingArguments, set_seed,
)

import modeling_crf  # noqa: F401  (registers the CRF config: --tokenizer_name may be a NER model's folder)
from corpus_io import (
    ALL_RESULTS_FILE, BRAT_DIRNAME, DOCUMENTS_DIRNAME, PREDICTIONS_DIRNAME, RUN_INFO_FILE, STATS_FILE,
    TEST_RELATIONS_FILE, BratDocument, BratEntity, BratRelation, jsonl_line, note_file_mode, set_tree_mode,
    write_brat_ann, write_folder_atomically, write_json_atomically,
)
from evaluate_ablations import score_relations
from relations import (
    CONFIG_LINK_THRESHOLD, CONFIG_MAX_SEQ_LENGTH, CONFIG_SENTENCE_WINDOW, DEFAULT_LINK_THRESHOLD,
    DEFAULT_SENTENCE_WINDOW, LABELS, MARKER_TOKENS, Candidate, Mention, candidate_inputs, candidate_recall,
    fit_to_length, nearest_drug_rule,
)
from run_folders import (
    RecordRunArguments, UsageError, card_license, check_resume_matches, check_vocabulary_upload, hub_upload_files, is_hub_id,
    main_with_usage_errors, output_folder_lock, parse_config_overrides, parse_script_args, prepare_output_dir,
    push_model_to_hub,
    save_final_model, setup_logging,
)
from run_folders import ALLOW_TEST_TRAINING_HELP, check_train_split
from windows import encoder_max_positions, load_tokenizer, max_input_length

logger = logging.getLogger(__name__)

@dataclass
class ModelArguments:
    """The encoder to fine-tune as a relation classifier."""

    model_name_or_path: str | None = field(default=None, metadata={"help": "Pre-trained encoder (Hub id or local path)."})
    config_name: str | None = field(default=None, metadata={
        "help": "Train from scratch with this architecture (a config file or Hub id) instead of fine-tuning; needs "
                "--tokenizer_name."})
    config_overrides: str | None = field(default=None, metadata={
        "help": "With --config_name: 'n_layers=2,dim=128' overrides of the architecture."})
    tokenizer_name: str | None = field(default=None, metadata={
        "help": "Tokenizer, if not the model's (e.g. the NER model's, for a relation model trained from scratch)."})
    push_corpus_vocabulary: bool = field(default=False, metadata={
        "help": "With --push_to_hub and a tokenizer learned from the notes (a run_ner_crf.py --train_tokenizer "
                "model's): acknowledge that its vocabulary is corpus-derived and upload it."})
    model_label: str | None = field(default=None, metadata={"help": "Name in reports and the card (default: derived)."})
    model_license: str | None = field(default=None, metadata={
        "help": "Licence in the card (default: apache-2.0 for the synthetic sample, else 'other': the data's terms)."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where to store models downloaded from the Hub."})
    model_revision: str = field(default="main", metadata={"help": "Model version (branch, tag or commit)."})
    token: str | None = field(default=None, metadata={"help": "Hub token (default: the cached login)."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Run custom code shipped with the model."})


@dataclass
class DataArguments:
    """The notes, their entities and relations, and how candidates become model inputs."""

    # Optional only to the parser: main() refuses a run without it in one line (argparse would print the whole usage).
    dataset_path: str | None = field(default=None, metadata={
        "help": "A prepare_n2c2.py output folder (documents/ with relations). Required."})
    train_split: str = field(default="train", metadata={"help": "Documents to train on ('train+validation' joins)."})
    allow_test_training: bool = field(default=False, metadata={"help": ALLOW_TEST_TRAINING_HELP})
    validation_split: str = field(default="validation", metadata={"help": "Documents for evaluation."})
    test_split: str = field(default="test", metadata={"help": "Documents to predict and score."})
    sentence_window: int = field(default=DEFAULT_SENTENCE_WINDOW, metadata={
        "help": "Reason and ADE candidates reach this many sentences before and after the attribute."})
    max_seq_length: int = field(default=256, metadata={"help": "Tokens per candidate input (its context is narrowed "
                                                               "around the two arguments to fit)."})
    link_threshold: float = field(default=DEFAULT_LINK_THRESHOLD, metadata={"help": "Link a candidate at this probability or above."})
    max_train_documents: int | None = field(default=None, metadata={"help": "Use only this many training documents."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Start afresh in an existing --output_dir."})


# ---------------------------------------------------------------------------
# Data: documents -> candidates -> model inputs
# ---------------------------------------------------------------------------


def check_dataset_path(dataset_path: str | None) -> None:
    """A run needs a prepare_n2c2.py output folder: not given or missing is a usage error (one line). What is in it
    is checked where it is read (:func:`load_documents`)."""
    if not dataset_path:
        raise UsageError("--dataset_path is required: give a prepare_n2c2.py output folder (prepared with relations)")
    if not Path(dataset_path).exists():
        raise UsageError(f"--dataset_path {dataset_path} does not exist: give a prepare_n2c2.py output folder "
                         "(prepare_n2c2.py --train_dir ... --output_dir FOLDER writes one)")


def load_documents(dataset_path: str, split_expression: str) -> list[dict[str, Any]]:
    """The rows of ``documents/`` in the named split(s) (``train+validation`` joins), each with text, entities
    and relations."""
    from datasets import load_from_disk

    folder = Path(dataset_path) / DOCUMENTS_DIRNAME
    if not folder.is_dir():
        raise UsageError(f"--dataset_path {dataset_path}: not a prepare_n2c2.py output folder (no {DOCUMENTS_DIRNAME}/)")
    documents = load_from_disk(str(folder))
    if "relations" not in documents.column_names:
        raise UsageError(f"--dataset_path {dataset_path}: prepared without relations (re-run prepare_n2c2.py)")
    splits = split_expression.split("+")
    return [row for row in documents if row["split"] in splits]


def mentions_of(document: dict[str, Any]) -> list[Mention]:
    return [Mention(e["type"], e["start"], e["end"], e["id"]) for e in document["entities"]]


def gold_links(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(relation["arg1"], relation["arg2"]) for relation in document["relations"]}


def build_examples(documents: Sequence[dict[str, Any]], tokenizer, data_args: DataArguments
                   ) -> tuple[list[dict[str, Any]], list[list[Candidate]]]:
    """One example per candidate (``text``, ``label``, ``document``, ``candidate``), and each note's candidates."""
    examples, candidates_by_document = [], []
    for index, document in enumerate(documents):
        mentions = mentions_of(document)
        candidates, texts = candidate_inputs(document["text"], mentions, data_args.sentence_window)
        links = gold_links(document)
        for number, (candidate, text) in enumerate(zip(candidates, texts)):
            linked = (mentions[candidate.attribute].id, mentions[candidate.drug].id) in links
            examples.append({"text": fit_to_length(text, tokenizer, data_args.max_seq_length), "label": int(linked),
                             "document": index, "candidate": number})
        candidates_by_document.append(candidates)
    return examples, candidates_by_document


def to_brat_documents(documents: Sequence[dict[str, Any]], links: Sequence[Sequence[tuple[Candidate, float]]] | None
                      ) -> list[BratDocument]:
    """corpus_io documents for the scorer: the gold relations (``links`` None) or the predicted ones."""
    converted = []
    for index, document in enumerate(documents):
        mentions = mentions_of(document)
        entities = [BratEntity(m.id, m.type, ((m.start, m.end),), document["text"][m.start:m.end], 0) for m in mentions]
        if links is None:
            relations = [BratRelation(f"R{n}", r["type"], r["arg1"], r["arg2"], 0)
                         for n, r in enumerate(document["relations"], start=1)]
        else:
            relations = [BratRelation(f"R{n}", c.type, mentions[c.attribute].id, mentions[c.drug].id, 0)
                         for n, (c, _) in enumerate(links[index], start=1)]
        converted.append(BratDocument(document["document_id"], document["text"], entities, relations=relations))
    return converted


def relation_metrics(report: dict[str, Any], prefix: str) -> dict[str, float]:
    """Flat numbers of a ``score_relations`` report: strict/lenient micro P/R/F and strict F1 per type."""
    metrics = {}
    for mode in ("strict", "lenient"):
        for key, short in (("precision", "p"), ("recall", "r"), ("f1", "f1")):
            metrics[f"{prefix}relation_{mode}_micro_{short}"] = report[mode]["micro"][key]
    for relation_type, row in report["strict"]["per_type"].items():
        metrics[f"{prefix}relation_strict_{relation_type}_f1"] = row["f1"]
    return metrics


# ---------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------


def write_predictions(output_dir: Path, documents: Sequence[dict[str, Any]],
                      links: Sequence[Sequence[tuple[Candidate, float]]], file_mode: int) -> Path:
    """Brat ``.ann`` per test note (the gold entities and the predicted relations) and one JSONL record per link."""

    def write(folder: Path) -> None:
        lines = []
        for document, document_links in zip(documents, links):
            mentions = mentions_of(document)
            write_brat_ann(folder / BRAT_DIRNAME / f"{document['document_id']}.ann",
                           [(m.type, m.start, m.end) for m in mentions], document["text"],
                           relations=[(c.type, c.attribute, c.drug) for c, _ in document_links])
            lines += [jsonl_line({"document_id": document["document_id"], "type": c.type,
                                  "attribute": mentions[c.attribute].id, "drug": mentions[c.drug].id,
                                  "confidence": round(float(p), 6)}) for c, p in document_links]
        (folder / TEST_RELATIONS_FILE).write_text("".join(lines), encoding="utf-8")
        set_tree_mode(folder, file_mode)

    write_folder_atomically(output_dir / PREDICTIONS_DIRNAME, overwrite=True, write=write)
    return output_dir / PREDICTIONS_DIRNAME


def model_label(model_args: ModelArguments) -> str:
    """The model's name in the card and run_info.json."""
    source = model_args.model_name_or_path or f"scratch-{Path(model_args.config_name).stem}"
    return model_args.model_label or f"{source.rstrip('/').split('/')[-1]}-RE"


def write_model_card(output_dir: Path, model_args: ModelArguments, data_args: DataArguments, results: dict[str, Any],
                     synthetic: bool) -> Path:
    """README.md from numbers and settings only (never corpus text)."""
    from huggingface_hub import ModelCard, ModelCardData

    label = model_label(model_args)
    license_id, license_name = card_license(model_args.model_license, {"synthetic": synthetic})
    card_data = ModelCardData(license=license_id, license_name=license_name, library_name="transformers",
                              pipeline_tag="text-classification", model_name=label,
                              base_model=model_args.model_name_or_path if is_hub_id(model_args.model_name_or_path)
                              else None, tags=["relation-extraction", "clinical", "n2c2-2018-track2"]
                              + (["synthetic-data"] if synthetic else []))

    def number(key):
        value = results.get(key)
        return "n/a" if value is None else f"{value:.4f}"

    body = f"""
# {label}

Links each attribute (strength, dosage, route, frequency, duration, form, reason, adverse event) to its
drug, as in n2c2-2018 Track 2, trained with `run_re.py` on {"a SYNTHETIC sample (not patient notes)" if synthetic
else "the data described above"}. Input: the sentence(s) of an (attribute, drug) candidate with typed markers
around both (`[Strength] 25 mg [/Strength] ... [Drug] metoprolol [/Drug]`); output: `linked` or `none`.
A stock `AutoModelForSequenceClassification`: no custom code.

## Results (test split, relations on gold entities)

| system | strict micro-F1 | lenient micro-F1 |
|---|---|---|
| this model | {number('test_relation_strict_micro_f1')} | {number('test_relation_lenient_micro_f1')} |
| nearest-drug rule | {number('test_rule_relation_strict_micro_f1')} | {number('test_rule_relation_lenient_micro_f1')} |

## How to use
With the project's `annotate_notes.py` (NER, then relations, then a medication list):
`annotate_notes.py --model_name_or_path NER_MODEL --relation_model_name_or_path THIS_MODEL --input_dir notes/ --output_dir out/`.

## Limitations
For research; **not for clinical decisions**. Candidates: same sentence (Reason and ADE within
{data_args.sentence_window} sentence(s)); a relation beyond that is never found. Licence `{license_id}`:
a model trained on notes inherits their terms (n2c2: a data-use agreement).
"""
    card = ModelCard.from_template(card_data, template_str="---\n{{ card_data }}\n---\n" + body)
    card.save(output_dir / "README.md")
    return output_dir / "README.md"


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

RESUME_MUST_MATCH = ("model_name_or_path", "config_name", "config_overrides", "dataset_path", "train_split",
                     "sentence_window", "max_seq_length", "seed", "learning_rate", "per_device_train_batch_size",
                     "world_size")


def parse_args(argv: Sequence[str] | None = None):
    """``run_re.py [CONFIG.json] [--flag value ...]``: flags override the config file."""
    return parse_script_args((ModelArguments, DataArguments, TrainingArguments), argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    model_args, data_args, training_args = parse_args(argv)
    check_dataset_path(data_args.dataset_path)  # one line, before anything is loaded or created
    if training_args.do_train:  # before the output folder is touched
        check_train_split(data_args.train_split, data_args.test_split, data_args.allow_test_training)
    # The output folder is never where the data is, and one command writes it at a time.
    with output_folder_lock(training_args, "run_re.py", {"--dataset_path": data_args.dataset_path}):
        return run(model_args, data_args, training_args)


def run(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments) -> dict[str, Any]:
    # We push ourselves, with an allow-list: the Trainer would upload the whole output_dir (predictions too).
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    setup_logging(training_args, logger)
    if bool(model_args.model_name_or_path) == bool(model_args.config_name):
        raise UsageError("Give --model_name_or_path (fine-tune) or --config_name with --tokenizer_name (from scratch).")
    if model_args.config_name and not model_args.tokenizer_name:
        raise UsageError("--config_name trains from scratch: give the tokenizer with --tokenizer_name")
    # The tokenizer trained with (and uploaded): its tokenizer_config.json says whether its vocabulary was learned from
    # notes (a run_ner_crf.py --train_tokenizer model's, or a checkpoint folder of one).
    check_vocabulary_upload(push_to_hub, acknowledged=model_args.push_corpus_vocabulary,
                            tokenizer=model_args.tokenizer_name or model_args.model_name_or_path)
    output_dir = Path(training_args.output_dir)
    training_args.remove_unused_columns = True
    train_documents = load_documents(data_args.dataset_path, data_args.train_split) if training_args.do_train else []
    if data_args.max_train_documents is not None:
        train_documents = train_documents[:data_args.max_train_documents]
    eval_documents = load_documents(data_args.dataset_path, data_args.validation_split) \
        if training_args.do_eval else []
    test_documents = load_documents(data_args.dataset_path, data_args.test_split) if training_args.do_predict else []
    resume_checkpoint = prepare_output_dir(output_dir, training_args, data_args.overwrite_output_dir) \
        if training_args.do_train else None
    set_seed(training_args.seed)

    # Tokenizer with the argument markers; a stock sequence classifier with two labels.
    tokenizer = load_tokenizer(model_args.tokenizer_name or model_args.model_name_or_path,
                               revision=model_args.model_revision, token=model_args.token,
                               trust_remote_code=model_args.trust_remote_code, cache_dir=model_args.cache_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": list(MARKER_TOKENS)}, replace_extra_special_tokens=False)
    # Again on the tokenizer object (a Hub tokenizer unreadable before), before training.
    corpus_vocabulary = check_vocabulary_upload(push_to_hub, acknowledged=model_args.push_corpus_vocabulary,
                                                tokenizer=tokenizer)
    label_kwargs = {"num_labels": len(LABELS), "id2label": dict(enumerate(LABELS)),
                    "label2id": {label: i for i, label in enumerate(LABELS)}}
    if model_args.model_name_or_path:
        model = AutoModelForSequenceClassification.from_pretrained(
            model_args.model_name_or_path, **label_kwargs, cache_dir=model_args.cache_dir,
            revision=model_args.model_revision, token=model_args.token, trust_remote_code=model_args.trust_remote_code)
    else:
        config = AutoConfig.from_pretrained(model_args.config_name, cache_dir=model_args.cache_dir,
                                            trust_remote_code=model_args.trust_remote_code)
        config.update({**parse_config_overrides(model_args.config_overrides), **label_kwargs,
                       "vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id})
        model = AutoModelForSequenceClassification.from_config(config, trust_remote_code=model_args.trust_remote_code)
    model.resize_token_embeddings(len(tokenizer))
    data_args.max_seq_length = max_input_length(model, tokenizer, data_args.max_seq_length)
    positions = encoder_max_positions(model.config)
    if positions and tokenizer.model_max_length > positions:  # the saved tokenizer says what the encoder takes
        tokenizer.model_max_length = positions
    # Inference (annotate_notes.py) builds candidates exactly as here: the settings travel in config.json.
    setattr(model.config, CONFIG_SENTENCE_WINDOW, data_args.sentence_window)
    setattr(model.config, CONFIG_MAX_SEQ_LENGTH, data_args.max_seq_length)
    setattr(model.config, CONFIG_LINK_THRESHOLD, data_args.link_threshold)

    from datasets import Dataset

    def to_dataset(documents, description):
        examples, candidates = build_examples(documents, tokenizer, data_args)
        if not examples:
            return None, candidates
        dataset = Dataset.from_list(examples)
        encoded = dataset.map(lambda batch: tokenizer(batch["text"], truncation=True,
                                                      max_length=data_args.max_seq_length),
                              batched=True, remove_columns=["text"], desc=description)
        positives = sum(example["label"] for example in examples)
        logger.info(f"{description}: {len(documents)} notes -> {len(examples)} candidates ({positives} linked)")
        return encoded, candidates

    train_dataset, _ = to_dataset(train_documents, "Candidates of the training notes")
    eval_dataset, _ = to_dataset(eval_documents, "Candidates of the validation notes")
    test_dataset, test_candidates = to_dataset(test_documents, "Candidates of the test notes")
    run_args = {"model_name_or_path": model_args.model_name_or_path, "config_name": model_args.config_name,
                "config_overrides": model_args.config_overrides, "dataset_path": data_args.dataset_path,
                "train_split": data_args.train_split, "sentence_window": data_args.sentence_window,
                "max_seq_length": data_args.max_seq_length,
                **{key: getattr(training_args, key) for key in ("seed", "learning_rate", "per_device_train_batch_size",
                                                                  "world_size")}}
    if resume_checkpoint is not None:
        check_resume_matches(resume_checkpoint, run_args, RESUME_MUST_MATCH)

    def compute_metrics(prediction) -> dict[str, float]:
        # Candidate-level (binary) scores: the relation-level ones come from score_relations on the test notes.
        predicted = prediction.predictions.argmax(-1)
        gold = prediction.label_ids
        tp = int(((predicted == 1) & (gold == 1)).sum())
        precision = tp / max(int((predicted == 1).sum()), 1)
        recall = tp / max(int((gold == 1).sum()), 1)
        return {"link_precision": precision, "link_recall": recall,
                "link_f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0}

    trainer = Trainer(model=model, args=training_args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                      processing_class=tokenizer, compute_metrics=compute_metrics,
                      callbacks=[RecordRunArguments(run_args)])
    results: dict[str, Any] = {"num_parameters": sum(p.numel() for p in model.parameters())}
    if training_args.do_train:
        if train_dataset is None:
            raise UsageError(f"{data_args.dataset_path}: no candidate pairs in the {data_args.train_split} notes")
        started = time.perf_counter()
        train_result = trainer.train(resume_from_checkpoint=resume_checkpoint)
        save_final_model(trainer, output_dir)
        metrics = {**train_result.metrics, "train_wall_seconds": round(time.perf_counter() - started, 2),
                   "train_candidates": len(train_dataset), "train_notes": len(train_documents)}
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        results.update(metrics)
    if training_args.do_eval and eval_dataset is not None:
        metrics = trainer.evaluate(metric_key_prefix="eval")
        trainer.save_metrics("eval", metrics)
        results.update(metrics)
    if training_args.do_predict and test_documents:
        started = time.perf_counter()
        links: list[list[tuple[Candidate, float]]] = [[] for _ in test_documents]
        if test_dataset is not None:
            output = trainer.predict(test_dataset, metric_key_prefix="test")
            probabilities = torch.tensor(output.predictions).float().softmax(-1)[:, 1].numpy()
            for document, candidate, probability in zip(test_dataset["document"], test_dataset["candidate"],
                                                        probabilities):
                if probability >= data_args.link_threshold:
                    links[document].append((test_candidates[document][candidate], float(probability)))
            results.update({k: v for k, v in output.metrics.items() if k.startswith("test_link")})
        gold = to_brat_documents(test_documents, None)
        model_report = score_relations(gold, to_brat_documents(test_documents, links))
        rule_links = [[(c, 1.0) for c in nearest_drug_rule(d["text"], mentions_of(d), data_args.sentence_window)]
                      for d in test_documents]
        rule_report = score_relations(gold, to_brat_documents(test_documents, rule_links))
        recall = candidate_recall(((d["text"], mentions_of(d), [(r["type"], r["arg1"], r["arg2"]) for r in d["relations"]])
                                   for d in test_documents), data_args.sentence_window)
        results.update(relation_metrics(model_report, "test_"), **relation_metrics(rule_report, "test_rule_"),
                       test_candidate_recall={t: round(c["reached"] / c["gold"], 4) for t, c in recall.items()},
                       test_notes=len(test_documents), test_predict_seconds=round(time.perf_counter() - started, 2))
        trainer.save_metrics("test", {k: v for k, v in results.items() if k.startswith("test_")})
        if trainer.is_world_process_zero():
            write_predictions(output_dir, test_documents, links,
                              note_file_mode([Path(data_args.dataset_path) / "dataset_dict.json"]))
        logger.info(f"Test relations (on gold entities): strict micro-F1 {results['test_relation_strict_micro_f1']:.4f}"
                    f" (nearest-drug rule {results['test_rule_relation_strict_micro_f1']:.4f})")

    if trainer.is_world_process_zero():
        stats_path = Path(data_args.dataset_path) / STATS_FILE
        synthetic = bool(json.loads(stats_path.read_text()).get("synthetic")) if stats_path.is_file() else False
        write_json_atomically(output_dir / ALL_RESULTS_FILE, results)
        if training_args.do_train:
            write_json_atomically(output_dir / RUN_INFO_FILE, {
                "model_label": model_label(model_args), "task": "relations",
                "model_name_or_path": model_args.model_name_or_path, "config_name": model_args.config_name,
                "vocabulary_from_corpus": corpus_vocabulary, "seed": training_args.seed,
                "sentence_window": data_args.sentence_window, "synthetic": synthetic,
                "num_parameters": results["num_parameters"]})
            write_model_card(output_dir, model_args, data_args, results, synthetic)
            if push_to_hub:
                repo_id = training_args.hub_model_id or output_dir.name
                push_model_to_hub(output_dir, repo_id, training_args.hub_token or model_args.token,
                                  private=training_args.hub_private_repo, script="run_re.py",
                                  corpus_vocabulary_acknowledged=model_args.push_corpus_vocabulary)
                logger.info(f"Pushed {', '.join(hub_upload_files(output_dir))} to {repo_id}")
    return results


if __name__ == "__main__":
    main_with_usage_errors(main, "run_re.py")
