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

Scores (the n2c2 scorer's semantics, ``n2c2_scoring.score_relations``): relations on gold entities,
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
from functools import partial
from pathlib import Path
from typing import Any, Sequence

from clinical_ner_crf.command_line import (
    ALLOW_TEST_TRAINING_HELP, SHARED_FLAG_HELP, UsageError, answer_early, parse_command, parse_config_overrides,
    run_main,
)
from clinical_ner_crf.console import percent, print_outputs
from clinical_ner_crf.files import ALL_RESULTS_FILE, RUN_INFO_FILE, STATS_FILE, note_file_mode, write_json_atomically
from clinical_ner_crf.metrics import RELATION_STRICT_MICRO_F1, system_metric_name
from clinical_ner_crf.model_sources import check_model_arguments
from clinical_ner_crf.relations import (
    CONFIG_INPUT_FEATURES, CONFIG_LINK_THRESHOLD, CONFIG_MAX_SEQ_LENGTH, CONFIG_PREFERRED, CONFIG_SENTENCE_WINDOW,
    CONFIG_VALIDATION_SCORES, DEFAULT_LINK_THRESHOLD, DEFAULT_SENTENCE_WINDOW, FEATURE_TOKENS, INPUT_FEATURES, LABELS,
    MARKER_TOKENS, candidate_recall,
)

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
    cache_dir: str | None = field(default=None, metadata={"help": SHARED_FLAG_HELP["cache_dir"]})
    model_revision: str = field(default="main", metadata={"help": SHARED_FLAG_HELP["model_revision"]})
    token: str | None = field(default=None, metadata={"help": SHARED_FLAG_HELP["token"]})
    trust_remote_code: bool = field(default=False, metadata={"help": SHARED_FLAG_HELP["trust_remote_code"]})


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
    link_threshold: float = field(default=DEFAULT_LINK_THRESHOLD, metadata={
        "help": "Link a candidate at this probability or above; with validation notes the threshold is tuned there "
                "instead (see --tune_link_threshold)."})
    input_features: str = field(default=",".join(INPUT_FEATURES), metadata={
        "help": "The rule's view of each candidate given to the model before its text, comma-separated, of "
                f"{', '.join(INPUT_FEATURES)} ('rule': is it the nearest-drug rule's pair; 'between': drugs between "
                "the two arguments); '' for none. A small or weak model starts from the rule (bench/README.md)."})
    select_on_validation: bool = field(default=True, metadata={
        "help": "Score the validation notes (strict relation micro-F1 on gold entities) after every epoch and keep "
                "the best epoch. Off, or without validation notes: the last epoch."})
    tune_link_threshold: bool = field(default=True, metadata={
        "help": "Choose the link threshold that scores best on the validation notes (instead of --link_threshold)."})
    min_train_steps: int = field(default=600, metadata={
        "help": "Train for at least this many optimiser steps: more epochs than --num_train_epochs on a small corpus "
                "(a 150-note corpus is otherwise underfit); 0 to keep --num_train_epochs."})
    max_train_epochs: int = field(default=40, metadata={"help": "The most epochs --min_train_steps may add up to."})
    max_train_documents: int | None = field(default=None, metadata={"help": "Use only this many training documents."})
    overwrite: bool = field(default=False, metadata={
        "help": SHARED_FLAG_HELP["overwrite"] + " Here: start afresh; --resume_from_checkpoint true continues instead."})


SCRIPT = "run_re.py"
DESCRIPTION = __doc__.split("\n\n")[0]
ARGUMENT_TYPES = (ModelArguments, DataArguments)  # and transformers' TrainingArguments

if __name__ == "__main__":  # --help and the usage errors before the heavy imports: torch alone takes seconds
    answer_early(SCRIPT, ARGUMENT_TYPES, DESCRIPTION, training_flags=True,
                 check=partial(check_model_arguments, local_only=True))

import torch  # noqa: E402
from transformers import (  # noqa: E402
    AutoConfig, AutoModelForSequenceClassification, IntervalStrategy, Trainer, TrainingArguments, set_seed,
)

import modeling_crf  # noqa: E402,F401  (registers the CRF config: --tokenizer_name may be a NER model's folder)
from clinical_ner_crf.hub_upload import check_vocabulary_upload, hub_upload_files, push_model_to_hub  # noqa: E402
from clinical_ner_crf.model_cards import relation_model_label, write_relation_model_card  # noqa: E402
from clinical_ner_crf.relation_training import (  # noqa: E402
    KeepBestEpoch, adapt_epochs, baseline_links, best_threshold, build_examples, check_dataset_path, document_mentions,
    input_features, load_documents, model_links, relation_metrics, score_links, to_brat_documents, write_predictions,
)
from clinical_ner_crf.run_folders import (  # noqa: E402
    RecordRunArguments, check_resume_matches, check_train_split, output_folder_lock, prepare_output_dir, quiet_progress,
    save_final_model, setup_logging,
)
from clinical_ner_crf.windows import encoder_max_positions, load_tokenizer, max_input_length  # noqa: E402


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

RESUME_MUST_MATCH = ("model_name_or_path", "config_name", "config_overrides", "dataset_path", "train_split",
                     "sentence_window", "max_seq_length", "input_features", "seed", "learning_rate",
                     "per_device_train_batch_size", "world_size")


def parse_args(argv: Sequence[str] | None = None):
    """``run_re.py [CONFIG.json] [--flag value ...]``: flags override the config file."""
    return parse_command(SCRIPT, (*ARGUMENT_TYPES, TrainingArguments), argv, DESCRIPTION)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    model_args, data_args, training_args = parse_args(argv)
    # Every model flag is gettable (a folder, the local cache, or the Hub within seconds) before anything is made.
    check_model_arguments(model_args, revision=model_args.model_revision, token=model_args.token,
                          cache_dir=model_args.cache_dir)
    check_dataset_path(data_args.dataset_path)  # one line, before anything is loaded or created
    if training_args.do_train:  # before the output folder is touched
        check_train_split(data_args.train_split, data_args.test_split, data_args.allow_test_training)
    # The output folder is never where the data is, and one command writes it at a time.
    with output_folder_lock(training_args, SCRIPT, {"--dataset_path": data_args.dataset_path}):
        return run(model_args, data_args, training_args)


def run(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments) -> dict[str, Any]:
    # We push ourselves, with an allow-list: the Trainer would upload the whole output_dir (predictions too).
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    verbose = setup_logging(training_args, logger)
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
    features = input_features(data_args.input_features)
    # Validation notes: scored (--do_eval) and, while training, the epoch and the threshold are chosen on them.
    validation_in_training = training_args.do_train and bool(
        set(data_args.validation_split.split("+")) & set(data_args.train_split.split("+")))
    selecting = training_args.do_train and data_args.select_on_validation and not validation_in_training
    eval_documents = load_documents(data_args.dataset_path, data_args.validation_split) \
        if training_args.do_eval or selecting else []
    if validation_in_training:
        logger.warning(f"--train_split {data_args.train_split} holds the validation notes: no selection on them; the "
                       f"last epoch and --link_threshold {data_args.link_threshold} are kept (the paper's retraining)")
    elif selecting and not eval_documents:
        logger.warning(f"no {data_args.validation_split} notes in {data_args.dataset_path}: the last epoch and "
                       f"--link_threshold {data_args.link_threshold} are kept (nothing to select on)")
    selecting = selecting and bool(eval_documents)
    test_documents = load_documents(data_args.dataset_path, data_args.test_split) if training_args.do_predict else []
    resume_checkpoint = prepare_output_dir(output_dir, training_args, data_args.overwrite) \
        if training_args.do_train else None
    set_seed(training_args.seed)

    # Tokenizer with the argument markers; a stock sequence classifier with two labels.
    tokenizer = load_tokenizer(model_args.tokenizer_name or model_args.model_name_or_path,
                               revision=model_args.model_revision, token=model_args.token,
                               trust_remote_code=model_args.trust_remote_code, cache_dir=model_args.cache_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": list(MARKER_TOKENS) + list(FEATURE_TOKENS)},
                                 replace_extra_special_tokens=False)
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
    setattr(model.config, CONFIG_INPUT_FEATURES, list(features))
    if training_args.do_train:
        setattr(model.config, CONFIG_LINK_THRESHOLD, data_args.link_threshold)
    link_threshold = getattr(model.config, CONFIG_LINK_THRESHOLD, data_args.link_threshold)

    from datasets import Dataset

    def to_dataset(documents, description):
        examples, candidates = build_examples(documents, tokenizer, sentence_window=data_args.sentence_window,
                                              max_seq_length=data_args.max_seq_length, features=features)
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
    eval_dataset, eval_candidates = to_dataset(eval_documents, "Candidates of the validation notes")
    test_dataset, test_candidates = to_dataset(test_documents, "Candidates of the test notes")
    selecting = selecting and eval_dataset is not None
    run_args = {"model_name_or_path": model_args.model_name_or_path, "config_name": model_args.config_name,
                "config_overrides": model_args.config_overrides, "dataset_path": data_args.dataset_path,
                "train_split": data_args.train_split, "sentence_window": data_args.sentence_window,
                "max_seq_length": data_args.max_seq_length, "input_features": list(features),
                **{key: getattr(training_args, key) for key in ("seed", "learning_rate", "per_device_train_batch_size",
                                                                  "world_size")}}
    if resume_checkpoint is not None:
        check_resume_matches(resume_checkpoint, run_args, RESUME_MUST_MATCH)
    if training_args.do_train and train_dataset is not None:
        adapt_epochs(training_args, len(train_dataset), min_train_steps=data_args.min_train_steps,
                     max_train_epochs=data_args.max_train_epochs)
    selection = KeepBestEpoch()
    if selecting:
        if training_args.eval_strategy != IntervalStrategy.EPOCH:
            logger.info("Scoring the validation notes after every epoch (--select_on_validation)")
        training_args.eval_strategy = IntervalStrategy.EPOCH

    def linked_probabilities(predictions) -> list[float]:
        return torch.tensor(predictions).float().softmax(-1)[:, 1].tolist()

    def compute_metrics(prediction) -> dict[str, float]:
        # The validation notes as relations (n2c2 strict micro-F1 on gold entities), at the best threshold.
        probabilities = linked_probabilities(prediction.predictions)
        selection.last_probabilities = probabilities
        if data_args.tune_link_threshold:
            threshold, f1 = best_threshold(eval_documents, eval_candidates, probabilities)
        else:
            threshold = link_threshold
            f1 = score_links(eval_documents, model_links(eval_candidates, probabilities, threshold))["strict"]["micro"]["f1"]
        return {RELATION_STRICT_MICRO_F1: f1, "link_threshold": threshold}

    trainer = Trainer(model=model, args=training_args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                      processing_class=tokenizer, compute_metrics=compute_metrics if eval_dataset is not None else None,
                      callbacks=[RecordRunArguments(run_args)] + ([selection] if selecting else []))
    quiet_progress(trainer, verbose)
    results: dict[str, Any] = {"num_parameters": sum(p.numel() for p in model.parameters()),
                               "input_features": list(features)}
    validation_probabilities = None
    if training_args.do_train:
        if train_dataset is None:
            raise UsageError(f"{data_args.dataset_path}: no candidate pairs in the {data_args.train_split} notes")
        started = time.perf_counter()
        train_result = trainer.train(resume_from_checkpoint=resume_checkpoint)
        metrics = {**train_result.metrics, "train_wall_seconds": round(time.perf_counter() - started, 2),
                   "train_candidates": len(train_dataset), "train_notes": len(train_documents),
                   "train_epochs": training_args.num_train_epochs}
        if selection.best is not None:  # the best epoch's weights are back in the model
            validation_probabilities = selection.best["probabilities"]
            if data_args.tune_link_threshold:
                link_threshold = selection.best["link_threshold"]
            metrics.update(selected_epoch=selection.best["epoch"], selected_step=selection.best["step"])
            results["validation_history"] = selection.history
            logger.info(f"Selected on validation: epoch {selection.best['epoch']:g} of "
                        f"{training_args.num_train_epochs:g} (strict micro-F1 "
                        f"{selection.best[RELATION_STRICT_MICRO_F1]:.4f}), link threshold {link_threshold}")
        setattr(model.config, CONFIG_LINK_THRESHOLD, link_threshold)
        if verbose:  # the results files hold them; the last lines say where
            trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        results.update(metrics)
    results["link_threshold"] = link_threshold

    # Validation and test notes: the model, the nearest-drug rule and every candidate, side by side.
    trainer.compute_metrics = None  # from here on, scores are relations over whole notes (score_links)
    for split, documents, dataset, candidates in (("validation", eval_documents, eval_dataset, eval_candidates),
                                                   ("test", test_documents, test_dataset, test_candidates)):
        if not documents or (split == "validation" and not (training_args.do_eval or selecting)) \
                or (split == "test" and not training_args.do_predict):
            continue
        started = time.perf_counter()
        probabilities = validation_probabilities if split == "validation" else None
        if probabilities is None and dataset is not None:
            probabilities = linked_probabilities(trainer.predict(dataset, metric_key_prefix=split).predictions)
        links = model_links(candidates, probabilities or [], link_threshold)
        gold = to_brat_documents(documents, None)
        reports = {"model": score_links(documents, links, gold),
                   **{name: score_links(documents, system_links, gold)
                      for name, system_links in baseline_links(documents, data_args.sentence_window).items()}}
        for system, report in reports.items():
            results.update(relation_metrics(report, split, system))
        results[f"{split}_notes"] = len(documents)
        results[f"{split}_predict_seconds"] = round(time.perf_counter() - started, 2)
        if split == "validation" and not validation_in_training:  # scores of notes it trained on choose nothing
            scores = {system: round(report["strict"]["micro"]["f1"], 6) for system, report in reports.items()}
            setattr(model.config, CONFIG_VALIDATION_SCORES, scores)
            # The model is preferred only where it beat the rule on notes it was not trained on.
            setattr(model.config, CONFIG_PREFERRED, "model" if scores["model"] > scores["rule"] else "rule")
            results["preferred_on_validation"] = getattr(model.config, CONFIG_PREFERRED)
        if split == "validation":
            trainer.save_metrics("eval", {k: v for k, v in results.items() if k.startswith("validation_")})
        else:
            recall = candidate_recall(((d["text"], document_mentions(d), [(r["type"], r["arg1"], r["arg2"])
                                                                    for r in d["relations"]])
                                       for d in documents), data_args.sentence_window)
            results["test_candidate_recall"] = {t: round(c["reached"] / c["gold"], 4) for t, c in recall.items()}
            trainer.save_metrics("test", {k: v for k, v in results.items() if k.startswith("test_")})
            if trainer.is_world_process_zero():
                write_predictions(output_dir, documents, links,
                                  note_file_mode([Path(data_args.dataset_path) / "dataset_dict.json"]))
        scores = [f"{name} {results[f'{split}_' + system_metric_name(RELATION_STRICT_MICRO_F1, system)]:.4f}"
                  for name, system in (("model", "model"), ("nearest-drug rule", "rule"), ("every candidate", "every_candidate"))]
        logger.info(f"{split.capitalize()} relations (on gold entities), strict micro-F1: " + ", ".join(scores))
    if training_args.do_train:
        save_final_model(trainer, output_dir)  # after the validation scores and the threshold went into its config

    if trainer.is_world_process_zero():
        stats_path = Path(data_args.dataset_path) / STATS_FILE
        synthetic = bool(json.loads(stats_path.read_text()).get("synthetic")) if stats_path.is_file() else False
        write_json_atomically(output_dir / ALL_RESULTS_FILE, results)
        if training_args.do_train:
            write_json_atomically(output_dir / RUN_INFO_FILE, {
                "model_label": relation_model_label(model_args), "task": "relations",
                "model_name_or_path": model_args.model_name_or_path, "config_name": model_args.config_name,
                "vocabulary_from_corpus": corpus_vocabulary, "seed": training_args.seed,
                "sentence_window": data_args.sentence_window, "synthetic": synthetic,
                "num_parameters": results["num_parameters"]})
            write_relation_model_card(output_dir, model_args, data_args, results, synthetic)
            if push_to_hub:
                repo_id = training_args.hub_model_id or output_dir.name
                push_model_to_hub(output_dir, repo_id, training_args.hub_token or model_args.token,
                                  private=training_args.hub_private_repo, script="run_re.py",
                                  corpus_vocabulary_acknowledged=model_args.push_corpus_vocabulary)
                logger.info(f"Pushed {', '.join(hub_upload_files(output_dir))} to {repo_id}")
        report_outputs(output_dir, results, training_args.do_train)
    return results


def report_outputs(output_dir: Path, results: dict[str, Any], trained: bool) -> None:
    """Where everything is, and the relation scores of the model beside the nearest-drug rule (no corpus text)."""
    def scores(split: str) -> str:
        def f1(system: str):
            return results.get(f"{split}_" + system_metric_name(RELATION_STRICT_MICRO_F1, system))
        return f"{split} {percent(f1('model'))} (nearest-drug rule {percent(f1('rule'))})" if f1("model") is not None \
            else ""

    headline = "; ".join(filter(None, (scores("validation"), scores("test"))))
    rows = [("relation model", output_dir, f"strict micro-F1: {headline}" if headline else "")] if trained else []
    rows += [(what, output_dir / name, "") for name, what in (("README.md", "model card"),
                                                               (ALL_RESULTS_FILE, "metrics"))
             if (output_dir / name).exists()]
    if not trained and headline:
        rows[-1] = (rows[-1][0], rows[-1][1], f"strict micro-F1: {headline}")
    print_outputs(f"{SCRIPT} wrote:", rows)


if __name__ == "__main__":
    run_main(main, SCRIPT)
