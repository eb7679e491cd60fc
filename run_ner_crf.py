#!/usr/bin/env python
"""Train, select, evaluate and publish a clinical NER model with a linear ("Apt") or CRF head.

In the style of transformers' ``examples/pytorch/token-classification/run_ner.py``:

    python run_ner_crf.py configs/quickstart.json
    python run_ner_crf.py configs/bert_crf.json --train_split train_downsampled --output_dir runs/bert_crf_sambd
    accelerate launch --config_file configs/accelerate/single_gpu.yaml run_ner_crf.py \\
        --model_name_or_path emilyalsentzer/Bio_ClinicalBERT \\
        --dataset_path data/n2c2 --use_crf --output_dir runs/clinicalbert_crf --do_train --do_eval --do_predict

Pre-trained encoders are fine-tuned with ``--model_name_or_path``; ``--config_name`` (an
architecture JSON such as ``configs/architectures/distilbert-base-cased.json``) trains from
scratch with random weights, optionally with a WordPiece tokenizer trained on the training
split only (``--train_tokenizer``).

Sentences longer than ``--max_seq_length`` subwords are cut into overlapping word windows
(``--stride`` subwords of overlap; ``windows.py``, the same code as at inference), in training,
evaluation and prediction, so no word is dropped. Metrics are word level (the first subword of each word carries its label) and come
from ``evaluate_ablations.py``. Predictions (JSONL + brat) go to ``OUTPUT_DIR/predictions``,
which ``--push_to_hub`` never uploads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinical_ner_crf.command_line import (
    ALLOW_TEST_TRAINING_HELP, SHARED_FLAG_HELP, DataError, UsageError, answer_early, config_to_argv, first_line,
    parse_command, parse_config_overrides, read_config, run_main,
)
from clinical_ner_crf.console import percent, print_outputs
from clinical_ner_crf.model_sources import check_model_arguments
from clinical_ner_crf.subwords import PAPER_VOCABULARY_SIZE


logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    """Which model to train: a pre-trained encoder, or an architecture trained from scratch."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Pre-trained encoder (Hub id or local path) to fine-tune."}
    )
    config_name: str | None = field(
        default=None,
        metadata={"help": "Architecture config (JSON file or name) to train from scratch with random weights."},
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "Override architecture settings when training from scratch, e.g. 'n_layers=2,dim=128'."},
    )
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer (Hub id or path), if not the model's."})
    train_tokenizer: bool = field(
        default=False, metadata={"help": "Learn a WordPiece vocabulary from the training split only (from-scratch "
                                         "models; subwords.py: deterministic, the same in every process)."}
    )
    tokenizer_vocab_size: int = field(
        default=PAPER_VOCABULARY_SIZE, metadata={"help": "Largest vocabulary of a trained tokenizer (default: the "
                                                         "paper's 28,996; a small corpus reaches fewer, logged)."})
    tokenizer_min_frequency: int = field(
        default=2, metadata={"help": "A word piece must occur this often in the training split to enter the vocabulary."}
    )
    tokenizer_lowercase: bool = field(default=False, metadata={"help": "Lower-case in a trained tokenizer."})
    push_corpus_vocabulary: bool = field(
        default=False, metadata={"help": "With --push_to_hub and a tokenizer trained on the notes: acknowledge that its "
                                         "vocabulary is corpus-derived (it holds words of the notes) and upload it."}
    )
    use_crf: bool = field(default=True, metadata={"help": "CRF head (True) or the stock linear head, 'Apt' (False)."})
    use_bio_constraints: bool = field(
        default=True, metadata={"help": "Forbid transitions that are invalid in IOB2 (CRF only)."}
    )
    classifier_dropout: float = field(default=0.2, metadata={"help": "Dropout before the emission layer (paper: 0.2)."})
    crf_learning_rate: float | None = field(
        default=None, metadata={"help": "Learning rate of the classifier and CRF (default: --learning_rate)."}
    )
    model_label: str | None = field(
        default=None, metadata={"help": "Name of the system in reports and the model card, e.g. 'BERT-CRF' (default: "
                                        "derived; a config file's label is dropped when the command line names "
                                        "another model)."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": SHARED_FLAG_HELP["cache_dir"]})
    model_revision: str = field(default="main", metadata={"help": SHARED_FLAG_HELP["model_revision"]})
    token: str | None = field(default=None, metadata={"help": SHARED_FLAG_HELP["token"]})
    model_license: str | None = field(
        default=None, metadata={"help": "Licence written into the model card (default: apache-2.0 for the synthetic "
                                        "sample, else 'other': a model trained on notes inherits their terms)."}
    )
    trust_remote_code: bool = field(default=False, metadata={"help": SHARED_FLAG_HELP["trust_remote_code"]})


@dataclass
class DataTrainingArguments:
    """Which data to train and evaluate on, and how to cut it into model inputs."""

    dataset_path: str | None = field(
        default=None, metadata={"help": "A dataset saved by prepare_n2c2.py (datasets.load_from_disk)."}
    )
    dataset_name: str | None = field(
        default=None, metadata={"help": "A dataset on the Hub, or a local folder of data files, with word lists and "
                                        "IOB2 tags (strings or a ClassLabel), as run_ner.py takes."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Configuration of the Hub dataset."})
    train_file: str | None = field(default=None, metadata={"help": "Training data, a JSON (lines) or CSV file, as run_ner.py takes."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation data (JSON or CSV)."})
    test_file: str | None = field(default=None, metadata={"help": "Test data (JSON or CSV)."})
    train_split: str = field(
        default="train",
        metadata={"help": "'train', 'train_downsampled' (efficient training) or 'train+validation' (final retraining)."},
    )
    allow_test_training: bool = field(default=False, metadata={"help": ALLOW_TEST_TRAINING_HELP})
    validation_split: str = field(default="validation", metadata={"help": "Split for model selection."})
    test_split: str = field(default="test", metadata={"help": "Split to predict and score."})
    train_fraction: float = field(
        default=1.0, metadata={"help": "Keep this fraction of training documents (seeded, by document): learning curves."}
    )
    text_column_name: str | None = field(
        default=None, metadata={"help": "Column of word lists (default: 'tokens', else the first column)."})
    label_column_name: str | None = field(
        default=None, metadata={"help": "Column of IOB2 tags, strings or ClassLabel ids (default: 'ner_tags', else "
                                        "the second column)."})
    max_seq_length: int | None = field(
        default=None, metadata={"help": "Subwords per model input, special tokens included; longer sentences become "
                                        "overlapping windows (default: 256, or what the encoder takes if less)."}
    )
    stride: int = field(default=32, metadata={"help": "Subwords of overlap between consecutive windows."})
    label_all_tokens: bool = field(
        default=False,
        metadata={"help": "Label every subword (continuations get I-X), as the paper did; default: first subword only."},
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "Stop after this many evaluations without improvement of --metric_for_best_model."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training split (debugging)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the validation split (debugging)."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Truncate the test split (debugging)."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenization."})
    write_brat: bool = field(default=True, metadata={"help": "Write one brat .ann per test document."})
    calibrate_confidence: bool = field(
        default=False, metadata={"help": "After training, fit a temperature on the validation split's entity "
                                         "confidences (their log-odds divided by T, so that a confidence of 0.9 is "
                                         "right about 90%% of the time), save it in the model's config (inference "
                                         "applies it before --min_confidence) and write calibration.json: "
                                         "reliability tables and ECE before and after, on validation and, with "
                                         "--do_predict, on test (never fitted there)."})
    overwrite: bool = field(default=False, metadata={
        "help": SHARED_FLAG_HELP["overwrite"] + " Here: start afresh (the earlier run's model, checkpoints and "
                "predictions are removed first); --resume_from_checkpoint true continues it instead."})


SCRIPT = "run_ner_crf.py"
DESCRIPTION = __doc__.split("\n\n")[0]
ARGUMENT_TYPES = (ModelArguments, DataTrainingArguments)  # and transformers' TrainingArguments

def check_data_arguments(data_args: DataTrainingArguments) -> None:
    """Fail at once, in one line, on data that cannot be loaded (before any model is built)."""
    sources = [name for name, value in (("--dataset_path", data_args.dataset_path),
                                         ("--dataset_name", data_args.dataset_name),
                                         ("--train_file/--validation_file/--test_file",
                                          data_args.train_file or data_args.validation_file or data_args.test_file))
               if value]
    if len(sources) != 1:
        raise UsageError("give one data source: --dataset_path (a prepare_n2c2.py output folder), --dataset_name "
                         "(a Hub dataset or a folder of data files) or --train_file/--validation_file/--test_file"
                         + (f" (got {' and '.join(sources)})" if sources else ""))
    if data_args.dataset_path:
        path = Path(data_args.dataset_path)
        if not (path / "dataset_dict.json").is_file():
            raise UsageError(f"--dataset_path {path}: " + ("no such folder" if not path.exists() else
                             "not a dataset saved by prepare_n2c2.py (no dataset_dict.json)"))
    for flag, path in (("--train_file", data_args.train_file), ("--validation_file", data_args.validation_file),
                       ("--test_file", data_args.test_file)):
        if path and not Path(path).is_file():
            raise UsageError(f"{flag} {path}: no such file")
        if path and Path(path).suffix not in (".json", ".jsonl", ".csv"):
            raise UsageError(f"{flag} {path}: expected a .json, .jsonl or .csv file")


def check_local_inputs(model_args: ModelArguments, data_args: DataTrainingArguments, *_) -> None:
    """What is checked before the heavy imports (a mistyped path costs a second, not their seconds): the data
    source, and every model flag that reads as a local path."""
    check_data_arguments(data_args)
    check_model_arguments(model_args, local_only=True)


if __name__ == "__main__":  # --help and the usage errors before the heavy imports: torch alone takes seconds
    answer_early(SCRIPT, ARGUMENT_TYPES, DESCRIPTION, training_flags=True, check=check_local_inputs)

import datasets  # noqa: E402
import torch  # noqa: E402
from datasets import (  # noqa: E402
    ClassLabel, Dataset, DatasetDict, Sequence as DatasetSequence, concatenate_datasets, load_dataset, load_from_disk,
)
from transformers import (  # noqa: E402
    AutoConfig, AutoModelForTokenClassification, AutoTokenizer, EarlyStoppingCallback, Trainer,
    TrainingArguments, set_seed,
)

from clinical_ner_crf.brat import write_brat_ann  # noqa: E402
from clinical_ner_crf.calibration import calibration_report, entity_outcomes, fit_temperature  # noqa: E402
from clinical_ner_crf.files import (  # noqa: E402
    ALL_RESULTS_FILE, BRAT_DIRNAME, CALIBRATION_FILE, DOCUMENTS_DIRNAME, PREDICTIONS_DIRNAME, RUN_INFO_FILE,
    STATS_FILE, TEST_PREDICTIONS_FILE, note_file_mode, set_tree_mode, write_folder_atomically, write_json_atomically,
)
from clinical_ner_crf.hub_upload import check_vocabulary_upload, hub_upload_files, push_model_to_hub  # noqa: E402
from clinical_ner_crf.metrics import STRICT_MACRO_F1, STRICT_MICRO_F1
from clinical_ner_crf.model_cards import default_model_label, write_ner_model_card  # noqa: E402
from clinical_ner_crf.prediction_records import prediction_record, write_predictions_file  # noqa: E402
from clinical_ner_crf.run_folders import (  # noqa: E402
    RecordRunArguments, check_resume_matches, check_train_split, output_folder_lock, prepare_output_dir, quiet_progress,
    save_final_model, setup_logging, trainer_state_epoch,
)
from clinical_ner_crf.sampling import sample_documents  # noqa: E402
from clinical_ner_crf.subwords import train_subword_tokenizer, vocabulary_report  # noqa: E402
from clinical_ner_crf.tagging import (  # noqa: E402
    begin_to_inside, bio_to_char_spans, check_labels, is_tag, labels_for_types, tag_type,
)
from clinical_ner_crf.token_metrics import ner_metrics  # noqa: E402
from clinical_ner_crf.windows import (  # noqa: E402
    CONFIG_TEMPERATURE, WindowCollator, copy_pipeline_files, encode_word_windows, encoder_max_positions,
    load_tokenizer as load_word_tokenizer, max_input_length, merge_window_predictions, pipeline_config_entry,
    select_predictions,
)
from modeling_crf import CRFForTokenClassification, CRFTokenClassificationConfig  # noqa: E402


# ---------------------------------------------------------------------------
# Data, tokenizer and model
# ---------------------------------------------------------------------------


def check_test_training(data_args: DataTrainingArguments, do_train: bool) -> None:
    """Refuse to train on the test split (``--train_split test``, ``train+test``, the ``--test_split``; or a
    ``--train_file`` that is the ``--test_file``) unless ``--allow_test_training``: one line, before any work."""
    if not do_train or data_args.allow_test_training:
        return
    check_train_split(data_args.train_split, data_args.test_split, data_args.allow_test_training)
    if data_args.train_file and data_args.test_file and \
            Path(data_args.train_file).resolve() == Path(data_args.test_file).resolve():
        raise UsageError(f"--train_file {data_args.train_file} is the --test_file: its test scores would be "
                         f"meaningless; give another test file, or pass --allow_test_training if the model will never "
                         f"be scored on those notes")


def check_calibration_request(data_args: DataTrainingArguments, do_train: bool) -> None:
    """``--calibrate_confidence`` fits the temperature of the model this run trains on a validation split it did not
    train on: anything else is one line, before any work (a data source without that split: once it is read)."""
    if not data_args.calibrate_confidence:
        return
    if not do_train:
        raise UsageError("--calibrate_confidence fits the temperature of the model this run trains: add --do_train")
    trained_on = {part.strip() for part in data_args.train_split.split("+")}
    if trained_on & {part.strip() for part in data_args.validation_split.split("+")}:
        raise UsageError(f"--calibrate_confidence fits on --validation_split {data_args.validation_split}, which "
                         f"--train_split {data_args.train_split} trains on: its confidences would look better than "
                         "they are; train on train, or calibrate a run that holds the validation split out")
    if (data_args.train_file or data_args.test_file) and not data_args.validation_file:
        raise UsageError("--calibrate_confidence fits on the validation split: give --validation_file")


def check_calibration_split(raw: DatasetDict, data_args: DataTrainingArguments) -> None:
    """With ``--calibrate_confidence``, the data must have the validation split (checked before any training)."""
    missing = [name for name in data_args.validation_split.split("+") if name not in raw]
    if data_args.calibrate_confidence and missing:
        raise UsageError(f"--calibrate_confidence fits on the validation split, and the data has no {missing[0]!r} "
                         f"split (has: {', '.join(raw)}); name one with --validation_split")


def load_raw_datasets(data_args: DataTrainingArguments, model_args: ModelArguments) -> DatasetDict:
    """The splits, with the word and tag columns resolved and the tags as a ClassLabel of IOB2 names.

    Takes what run_ner.py takes: a prepare_n2c2.py folder, a Hub dataset or a folder of data files
    (``--dataset_name``), or JSON/CSV files; tags may be strings (the label list is built from the
    data: the types that occur, n2c2 types in the paper's order) or a ClassLabel of IOB2 names.
    """
    if data_args.dataset_path:
        try:
            raw = load_from_disk(data_args.dataset_path)
        except (OSError, ValueError, KeyError, TypeError) as error:  # a damaged or hand-edited dataset folder
            raise DataError(f"--dataset_path {data_args.dataset_path}: not a readable dataset ({first_line(error)}); "
                            "write it again with prepare_n2c2.py") from None
        source = data_args.dataset_path
    elif data_args.dataset_name:
        raw = load_dataset(data_args.dataset_name, data_args.dataset_config_name, cache_dir=model_args.cache_dir,
                           token=model_args.token)
        source = data_args.dataset_name
    else:
        data_files = {split: path for split, path in (("train", data_args.train_file),
                                                       ("validation", data_args.validation_file),
                                                       ("test", data_args.test_file)) if path}
        extension = Path(next(iter(data_files.values()))).suffix.lstrip(".").replace("jsonl", "json")
        raw = load_dataset(extension, data_files=data_files, cache_dir=model_args.cache_dir)
        source = None
    if not isinstance(raw, DatasetDict):
        raise UsageError(f"{source}: not a DatasetDict of splits")
    columns = next(iter(raw.values())).column_names
    if data_args.text_column_name is None:
        data_args.text_column_name = "tokens" if "tokens" in columns else columns[0]
    if data_args.label_column_name is None:
        data_args.label_column_name = "ner_tags" if "ner_tags" in columns else columns[1]
    for column in (data_args.text_column_name, data_args.label_column_name):
        if column not in columns:
            raise UsageError(f"{source or 'the data files'}: no column {column!r} (columns: {', '.join(columns)})")
    return tags_to_class_labels(raw, data_args.label_column_name, data_args, source)


def tags_to_class_labels(raw: DatasetDict, column: str, data_args: DataTrainingArguments, source: str | None
                         ) -> DatasetDict:
    """Tag columns as ``Sequence(ClassLabel)`` of IOB2 names; a tag that is not IOB2 is an error naming where it is."""
    feature = next(iter(raw.values())).features[column]
    inner = getattr(feature, "feature", None)
    if isinstance(inner, ClassLabel):
        try:
            check_labels(inner.names)
        except ValueError as error:
            raise UsageError(f"{source}: {column}: {error}") from None
        return raw
    if getattr(inner, "dtype", None) != "string":
        raise UsageError(f"{source or 'the data files'}: column {column!r} holds {feature}; give IOB2 tag strings, or "
                         "integer ids with their names as a ClassLabel feature")
    types = set()
    for split, dataset in raw.items():
        for row, tags in enumerate(dataset[column]):
            for tag in tags:
                if not is_tag(tag):
                    raise UsageError(f"{_row_location(data_args, source, split, row)}: tag {tag!r} is not IOB2 "
                                     "(expected O, B-TYPE or I-TYPE)")
                if tag != "O":
                    types.add(tag_type(tag))
    labels = labels_for_types(types)
    tag_ids = {label: index for index, label in enumerate(labels)}
    features = {split: dataset.features.copy() for split, dataset in raw.items()}
    converted = {}
    for split, dataset in raw.items():
        features[split][column] = DatasetSequence(ClassLabel(names=labels))
        converted[split] = dataset.map(lambda batch: {column: [[tag_ids[tag] for tag in tags] for tags in batch[column]]},
                                       batched=True, features=features[split], desc=f"Tags of {split} to ids")
    logger.info(f"Tags read as strings: {len(labels)} IOB2 labels for the {len(types)} entity types in the data")
    return DatasetDict(converted)


def _is_json_lines(path: str) -> bool:
    """A .jsonl file, or a .json file of one object per line (as run_ner.py's examples are)."""
    if Path(path).suffix == ".jsonl":
        return True
    with open(path, encoding="utf-8", errors="replace") as handle:
        return Path(path).suffix == ".json" and handle.read(4096).lstrip().startswith("{")


def _row_location(data_args: DataTrainingArguments, source: str | None, split: str, row: int) -> str:
    """file:line for JSON lines files, else the file (or dataset) and the row."""
    path = {"train": data_args.train_file, "validation": data_args.validation_file, "test": data_args.test_file}.get(split)
    if source is None and path and _is_json_lines(path):
        return f"{path}:{row + 1}"
    if source is None and path and Path(path).suffix == ".csv":
        return f"{path}:{row + 2}"  # after the header line
    return f"{path or source} ({split} split) row {row + 1}"


def select_split(raw: DatasetDict, split_expression: str) -> Dataset:
    """A split by name, or several joined with '+', e.g. 'train+validation'."""
    parts = []
    for name in split_expression.split("+"):
        if name not in raw:
            raise UsageError(f"split {name!r} not in the dataset (has: {', '.join(raw)})")
        parts.append(raw[name])
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def load_tokenizer(model_args: ModelArguments, train_dataset: Dataset | None, text_column: str,
                   resume_checkpoint: str | None = None):
    """The tokenizer to train with: trained on the training split, or the model's (``windows.load_tokenizer``)."""
    if model_args.train_tokenizer and resume_checkpoint:
        # A resumed run keeps the vocabulary its weights were trained with.
        return AutoTokenizer.from_pretrained(resume_checkpoint)
    if model_args.train_tokenizer:
        if train_dataset is None:
            raise UsageError("--train_tokenizer needs a training split (--do_train)")
        try:
            tokenizer = train_subword_tokenizer(train_dataset[text_column], model_args.tokenizer_vocab_size,
                                                model_args.tokenizer_min_frequency, model_args.tokenizer_lowercase)
        except ValueError as error:  # a size too small for the base alphabet, no words: the user's arguments
            raise UsageError(f"--train_tokenizer: {error}") from None
        report = vocabulary_report(tokenizer, train_dataset[text_column])
        logger.info(f"WordPiece vocabulary learned from the training split: {report['vocabulary_size']:,} pieces "
                    f"(asked for {model_args.tokenizer_vocab_size:,}), {report['pieces_per_word']} pieces per word")
        return tokenizer
    name = model_args.tokenizer_name or model_args.model_name_or_path
    if name is None:
        raise UsageError("No tokenizer: give --tokenizer_name, --model_name_or_path or --train_tokenizer")
    return load_word_tokenizer(name, revision=model_args.model_revision, token=model_args.token,
                               trust_remote_code=model_args.trust_remote_code, cache_dir=model_args.cache_dir)


def build_model(model_args: ModelArguments, labels: list[str], tokenizer, label_all_tokens: bool):
    """The model to train: pre-trained encoder or random architecture, CRF or linear head."""
    id2label = dict(enumerate(labels))
    label2id = {label: index for index, label in enumerate(labels)}
    # Remote code runs only when the user says so: a CRF checkpoint is recognised by its model_type, which
    # this process registers (modeling_crf), without running the copy of modeling_crf.py saved beside it.
    hub_kwargs = dict(cache_dir=model_args.cache_dir, revision=model_args.model_revision, token=model_args.token,
                      trust_remote_code=model_args.trust_remote_code)
    # Recorded in the config so that prediction decodes over the positions training used.
    label_alignment = "all_subwords" if label_all_tokens else "first_subword"
    if model_args.model_name_or_path:
        try:
            source_config = AutoConfig.from_pretrained(model_args.model_name_or_path, **hub_kwargs)
        except ValueError as error:
            if "trust_remote_code" not in str(error):
                raise
            raise UsageError(f"{model_args.model_name_or_path} loads only with the custom code it ships: read that "
                             "code, then pass --trust_remote_code to run it") from None
        if model_args.use_crf and source_config.model_type == CRFTokenClassificationConfig.model_type:
            model = CRFForTokenClassification.from_pretrained(model_args.model_name_or_path, **hub_kwargs)
        elif model_args.use_crf:
            model = CRFForTokenClassification.from_encoder_pretrained(
                model_args.model_name_or_path, id2label=id2label, label2id=label2id,
                classifier_dropout=model_args.classifier_dropout, use_bio_constraints=model_args.use_bio_constraints,
                label_alignment=label_alignment, **hub_kwargs,
            )
        else:
            config = AutoConfig.from_pretrained(model_args.model_name_or_path, num_labels=len(labels),
                                                id2label=id2label, label2id=label2id, **hub_kwargs)
            if hasattr(config, "classifier_dropout"):
                config.classifier_dropout = model_args.classifier_dropout
            model = AutoModelForTokenClassification.from_pretrained(
                model_args.model_name_or_path, config=config, **hub_kwargs,
            )
    elif model_args.config_name:
        encoder_config = AutoConfig.from_pretrained(model_args.config_name, **hub_kwargs)
        encoder_config.update(parse_config_overrides(model_args.config_overrides))
        encoder_config.vocab_size = len(tokenizer)
        encoder_config.pad_token_id = tokenizer.pad_token_id
        if model_args.use_crf:
            config = CRFTokenClassificationConfig(
                encoder_config=encoder_config.to_dict(), id2label=id2label, label2id=label2id,
                classifier_dropout=model_args.classifier_dropout, use_bio_constraints=model_args.use_bio_constraints,
                label_alignment=label_alignment,
            )
            model = CRFForTokenClassification(config)
        else:
            encoder_config.update({"num_labels": len(labels), "id2label": id2label, "label2id": label2id})
            if hasattr(encoder_config, "classifier_dropout"):
                encoder_config.classifier_dropout = model_args.classifier_dropout
            model = AutoModelForTokenClassification.from_config(encoder_config)
    else:
        raise UsageError("Give --model_name_or_path (fine-tune) or --config_name (train from scratch).")
    model.config.label_alignment = label_alignment
    if isinstance(model, CRFForTokenClassification):
        # So that a forward without label_mask (e.g. the stock pipeline) decodes word starts, as here.
        model.set_subword_kinds(tokenizer)
    return model


# What a resumed run must share with its checkpoint (the epochs may grow: that is what resuming is for).
RESUME_MUST_MATCH = (
    "model_name_or_path", "config_name", "config_overrides", "use_crf", "use_bio_constraints", "train_tokenizer",
    "tokenizer_vocab_size", "label_all_tokens", "max_seq_length", "stride", "train_data", "train_split",
    "train_fraction", "seed", "learning_rate", "crf_learning_rate", "per_device_train_batch_size",
    "gradient_accumulation_steps", "world_size",
)


def run_arguments(model_args: ModelArguments, data_args: DataTrainingArguments, training_args: TrainingArguments,
                  train_dataset: Dataset | None) -> dict[str, Any]:
    """What defines a run, as recorded in each checkpoint (numbers, names and a data fingerprint; no text)."""
    return {
        **{key: getattr(model_args, key) for key in ("model_name_or_path", "config_name", "config_overrides", "use_crf",
                                                       "use_bio_constraints", "train_tokenizer", "tokenizer_vocab_size",
                                                       "crf_learning_rate")},
        **{key: getattr(data_args, key) for key in ("label_all_tokens", "max_seq_length", "stride", "train_split",
                                                      "train_fraction")},
        **{key: getattr(training_args, key) for key in ("seed", "learning_rate", "per_device_train_batch_size",
                                                          "gradient_accumulation_steps", "world_size",
                                                          "num_train_epochs", "max_steps")},
        "train_data": rows_fingerprint(train_dataset, data_args) if train_dataset is not None else None,
    }


def rows_fingerprint(dataset: Dataset, data_args: DataTrainingArguments) -> str:
    """A hash of the training rows (words and tags), the same in every process and run."""
    digest = hashlib.sha256()
    for tokens, tags in zip(dataset[data_args.text_column_name], dataset[data_args.label_column_name]):
        digest.update(json.dumps([tokens, tags]).encode("utf-8"))
    return digest.hexdigest()[:16]


class NerTrainer(Trainer):
    """Trainer with a separate learning rate for the head/CRF and word-level decoded predictions."""

    def __init__(self, *args, crf_learning_rate: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.crf_learning_rate = crf_learning_rate

    def create_optimizer(self, model=None):
        model = self.model if model is None else model
        if self.optimizer is None and self.crf_learning_rate is not None:
            head_lr = self.crf_learning_rate
            if isinstance(model, CRFForTokenClassification):
                groups = model.parameter_groups(self.args.learning_rate, head_lr, self.args.weight_decay)
            else:
                decay = set(self.get_decay_parameter_names(model))
                groups = []
                for is_head in (False, True):
                    for decayed in (True, False):
                        params = [p for n, p in model.named_parameters() if p.requires_grad
                                  and n.startswith("classifier") == is_head and (n in decay) == decayed]
                        if params:
                            groups.append({"params": params, "lr": head_lr if is_head else self.args.learning_rate,
                                           "weight_decay": self.args.weight_decay if decayed else 0.0})
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
            optimizer_kwargs.pop("lr", None)
            self.optimizer = optimizer_cls(groups, lr=self.args.learning_rate, **optimizer_kwargs)
            return self.optimizer
        return super().create_optimizer(model)

    def _get_eval_sampler(self, eval_dataset):
        # Keep evaluation in dataset order (transformers 5 also length-groups it), so that
        # predictions line up with their windows. Distributed: accelerate shards in order and
        # gather_for_metrics restores it.
        if eval_dataset is None or self.args.world_size > 1:
            return None
        return torch.utils.data.SequentialSampler(eval_dataset)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        labels = inputs.get("labels")
        extra = {"return_marginals": True} if isinstance(self.accelerator.unwrap_model(model),
                                                         CRFForTokenClassification) else {}
        model_inputs = dict(inputs)
        if not isinstance(self.accelerator.unwrap_model(model), CRFForTokenClassification):
            model_inputs.pop("label_mask", None)  # stock heads take no mask
        with torch.no_grad(), self.compute_loss_context_manager():
            outputs = model(**model_inputs, **extra)
        loss = outputs.loss.detach().mean() if getattr(outputs, "loss", None) is not None else None
        if prediction_loss_only:
            return loss, None, None
        tag_ids, confidences = select_predictions(outputs)
        # One float tensor so that the Trainer pads and gathers it across processes.
        predictions = torch.stack([tag_ids.float(), confidences.float()], dim=-1)
        return loss, predictions, labels


def predict_words(trainer: Trainer, windows: Dataset, dataset: Dataset, text_column: str,
                  metadata_columns: list[str], prefix: str):
    """Each sentence's word-level tag ids and confidences (``trainer.predict`` on its windows, then
    ``merge_window_predictions``), and the Trainer's output."""
    output = trainer.predict(windows.remove_columns(metadata_columns), metric_key_prefix=prefix)
    tags_and_confidences = output.predictions
    word_predictions = merge_window_predictions(
        windows.select_columns(metadata_columns), tags_and_confidences[..., 0], tags_and_confidences[..., 1],
        [len(tokens) for tokens in dataset[text_column]])
    return word_predictions, output


def tag_names(dataset: Dataset, word_predictions, labels: list[str], label_column: str
              ) -> tuple[list[list[str]], list[list[str]]]:
    """The gold and predicted tags of each sentence, as names."""
    gold = [[labels[i] for i in tags] for tags in dataset[label_column]]
    pred = [[labels[i] for i in tags] for tags, _ in word_predictions]
    return gold, pred


def make_compute_metrics(labels: list[str]):
    def compute_metrics(eval_prediction) -> dict[str, float]:
        predictions, label_ids = eval_prediction.predictions, eval_prediction.label_ids
        gold, pred = [], []
        for row_predictions, row_labels in zip(predictions, label_ids):
            positions = row_labels != -100
            gold.append([labels[i] for i in row_labels[positions]])
            pred.append([labels[int(i)] for i in row_predictions[positions][:, 0]])
        return ner_metrics(gold, pred)

    return compute_metrics


# ---------------------------------------------------------------------------
# Outputs: predictions, model card, Hub upload
# ---------------------------------------------------------------------------


def write_predictions(
    output_dir: Path, test_dataset: Dataset, word_predictions, labels: list[str], text_column: str,
    label_column: str, documents: Dataset | None, file_mode: int,
) -> Path:
    """Word-level prediction records (and brat .ann per document) as ``output_dir/predictions``, which replaces an
    earlier run's folder as a whole when complete; its files get ``file_mode`` (they hold note text)."""
    entities_by_document: dict[str, list[tuple[str, int, int]]] = {}
    has_offsets = "token_starts" in test_dataset.column_names
    records = []
    for row, (tag_ids, confidences) in zip(test_dataset, word_predictions):
        pred_tags = [labels[i] for i in tag_ids]
        records.append(prediction_record(
            id=row.get("id"), document_id=row.get("document_id"), sentence_index=row.get("sentence_index"),
            tokens=row[text_column], token_starts=row.get("token_starts"), token_ends=row.get("token_ends"),
            gold_tags=[labels[i] for i in row[label_column]] if label_column in row else None,
            pred_tags=pred_tags, confidences=confidences))
        if has_offsets and row.get("document_id") is not None:
            entities_by_document.setdefault(row["document_id"], []).extend(
                bio_to_char_spans(pred_tags, row["token_starts"], row["token_ends"]))

    def write(folder: Path) -> None:
        write_predictions_file(folder / TEST_PREDICTIONS_FILE, records)
        if documents is not None and has_offsets:
            texts = {doc: text for doc, text in zip(documents["document_id"], documents["text"])}
            for document_id in sorted(set(test_dataset["document_id"])):
                write_brat_ann(folder / BRAT_DIRNAME / f"{document_id}.ann", entities_by_document.get(document_id, []),
                               texts[document_id])
        set_tree_mode(folder, file_mode)

    write_folder_atomically(output_dir / PREDICTIONS_DIRNAME, overwrite=True, write=write)
    return output_dir / PREDICTIONS_DIRNAME / TEST_PREDICTIONS_FILE


def data_file_mode(data_args: DataTrainingArguments) -> int:
    """The permission bits for files holding the data's text: no more readable than the data (the policy)."""
    if data_args.dataset_path:
        return note_file_mode([Path(data_args.dataset_path) / "dataset_dict.json"])
    files = [Path(f) for f in (data_args.train_file, data_args.validation_file, data_args.test_file) if f]
    if data_args.dataset_name and Path(data_args.dataset_name).is_dir():
        files.append(Path(data_args.dataset_name))
    return note_file_mode(files)


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


# Naming another model on the command line makes a config file's model_label wrong: it is dropped then.
MODEL_IDENTITY_FLAGS = ("model_name_or_path", "config_name", "use_crf")


def parse_args(args: list[str] | None = None):
    """``run_ner_crf.py [CONFIG.json] [--flag value ...]``: flags override the config file."""
    args = list(sys.argv[1:] if args is None else args)
    if args and args[0].endswith(".json") and "-h" not in args and "--help" not in args:
        config, args = read_config(args[0]), args[1:]
        given = {arg[2:].split("=")[0] for arg in args if arg.startswith("--")}
        if "model_label" not in given and given & set(MODEL_IDENTITY_FLAGS):
            config.pop("model_label", None)
        args = config_to_argv(config) + args
    return parse_command(SCRIPT, (*ARGUMENT_TYPES, TrainingArguments), args, DESCRIPTION)


def main(args: list[str] | None = None) -> dict[str, Any]:
    model_args, data_args, training_args = parse_args(args)
    # Every model flag is gettable (a folder, the local cache, or the Hub within seconds) before anything is made.
    check_model_arguments(model_args, revision=model_args.model_revision, token=model_args.token,
                          cache_dir=model_args.cache_dir)
    check_test_training(data_args, training_args.do_train)  # before the output folder is touched
    check_calibration_request(data_args, training_args.do_train)
    # The output folder is never where the data is, and one command writes it at a time.
    inputs = {f"--{name}": getattr(data_args, name) for name in ("dataset_path", "dataset_name", "train_file",
                                                                 "validation_file", "test_file")}
    with output_folder_lock(training_args, SCRIPT, inputs):
        return run(model_args, data_args, training_args)


def run(model_args: ModelArguments, data_args: DataTrainingArguments, training_args: TrainingArguments
        ) -> dict[str, Any]:
    # datasets writes the cache files of .map() beside the data it loaded: into the user's dataset folder. Without
    # caching they go to a temporary folder instead (found by bench/stress_interruptions.py).
    datasets.disable_caching()
    # We push ourselves, with an allow-list: the Trainer would upload the whole output_dir.
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    # The CRF's forward also takes `label_mask`, which is an input, not a target.
    training_args.label_names = training_args.label_names or ["labels"]

    verbose = setup_logging(training_args, logger)
    check_data_arguments(data_args)  # one line, before anything slow
    # The tokenizer trained with (and uploaded): learned now, or --tokenizer_name's or the model's, whose
    # tokenizer_config.json says whether its vocabulary was learned from notes (a checkpoint folder's too).
    check_vocabulary_upload(push_to_hub, acknowledged=model_args.push_corpus_vocabulary,
                            tokenizer=model_args.tokenizer_name or model_args.model_name_or_path,
                            learned_here=model_args.train_tokenizer)
    output_dir = Path(training_args.output_dir)

    # The output folder: a fresh run needs an empty one, unless told to start afresh or to resume.
    resume_checkpoint = prepare_output_dir(output_dir, training_args, data_args.overwrite) \
        if training_args.do_train else None

    # Seed before anything random: document sampling, tokenizer training, head initialisation.
    set_seed(training_args.seed)

    raw = load_raw_datasets(data_args, model_args)
    check_calibration_split(raw, data_args)
    any_split = next(iter(raw.values()))
    labels = list(any_split.features[data_args.label_column_name].feature.names)
    b_to_i = begin_to_inside(labels)

    train_dataset = eval_dataset = test_dataset = None
    if training_args.do_train:
        train_dataset = sample_documents(select_split(raw, data_args.train_split), data_args.train_fraction,
                                         training_args.seed)
        if data_args.max_train_samples is not None:
            train_dataset = train_dataset.select(range(min(len(train_dataset), data_args.max_train_samples)))
    if training_args.do_eval or training_args.eval_strategy != "no" or data_args.calibrate_confidence:
        eval_dataset = select_split(raw, data_args.validation_split)
        if data_args.max_eval_samples is not None:
            eval_dataset = eval_dataset.select(range(min(len(eval_dataset), data_args.max_eval_samples)))
    if training_args.do_predict:
        test_dataset = select_split(raw, data_args.test_split)
        if data_args.max_predict_samples is not None:
            test_dataset = test_dataset.select(range(min(len(test_dataset), data_args.max_predict_samples)))

    tokenizer = load_tokenizer(model_args, train_dataset, data_args.text_column_name, resume_checkpoint)
    # Again on the tokenizer object (a Hub tokenizer unreadable before), before training.
    corpus_vocabulary = check_vocabulary_upload(push_to_hub, acknowledged=model_args.push_corpus_vocabulary,
                                                tokenizer=tokenizer, learned_here=model_args.train_tokenizer)
    model = build_model(model_args, labels, tokenizer, data_args.label_all_tokens)
    # A saved tokenizer says how many tokens the encoder takes, so that no caller overruns it.
    encoder_positions = encoder_max_positions(model.config)
    if encoder_positions is not None:
        tokenizer.model_max_length = encoder_positions
    data_args.max_seq_length = max_input_length(model, tokenizer, data_args.max_seq_length)
    run_args = run_arguments(model_args, data_args, training_args, train_dataset)
    if resume_checkpoint is not None:
        check_resume_matches(resume_checkpoint, run_args, RESUME_MUST_MATCH)
    num_parameters = sum(p.numel() for p in model.parameters())
    logger.info(f"Model: {type(model).__name__}, {num_parameters:,} parameters, {len(labels)} labels")

    def to_windows(dataset: Dataset, description: str) -> Dataset:
        def encode(batch):
            rows = encode_word_windows(batch[data_args.text_column_name], tokenizer, data_args.max_seq_length,
                                       data_args.stride, batch[data_args.label_column_name],
                                       data_args.label_all_tokens, b_to_i)
            # Point windows at the sentence's index in the whole split, not in the batch.
            rows["sentence_index"] = [batch["__row"][i] for i in rows["sentence_index"]]
            return rows

        indexed = dataset.add_column("__row", list(range(len(dataset))))
        with training_args.main_process_first(desc=description):
            windows = indexed.map(encode, batched=True, remove_columns=indexed.column_names,
                                  num_proc=data_args.preprocessing_num_workers, desc=description)
        logger.info(f"{description}: {len(dataset)} sentences -> {len(windows)} model inputs "
                    f"(windows of at most {data_args.max_seq_length} subwords)")
        inside = sum(windows["starts_inside_entity"])
        if inside:
            logger.info(f"{description}: {inside} windows start inside an entity; in each, that entity's first word "
                        "is labelled B-X (IOB2 within the window; the gold data is unchanged)")
        return windows.remove_columns("starts_inside_entity")

    train_windows = to_windows(train_dataset, "Tokenizing the training split") if train_dataset is not None else None
    eval_windows = to_windows(eval_dataset, "Tokenizing the validation split") if eval_dataset is not None else None
    test_windows = to_windows(test_dataset, "Tokenizing the test split") if test_dataset is not None else None
    # How many sentences needed more than one window (the paper truncated them instead).
    window_counts = {
        split: sum(1 for count in Counter(windows["sentence_index"]).values() if count > 1)
        for split, windows in (("train", train_windows), ("eval", eval_windows), ("test", test_windows))
        if windows is not None
    }

    # Trainer drops columns the model's forward does not take; keep the window metadata apart.
    metadata_columns = ["word_index", "sentence_index", "window_start", "window_end"]
    trainer = NerTrainer(
        model=model,
        args=training_args,
        train_dataset=train_windows.remove_columns(metadata_columns) if train_windows is not None else None,
        eval_dataset=eval_windows.remove_columns(metadata_columns) if eval_windows is not None else None,
        processing_class=tokenizer,
        data_collator=WindowCollator(tokenizer, pad_to_multiple_of=8 if (training_args.bf16 or training_args.fp16)
                                     else None),
        compute_metrics=make_compute_metrics(labels),
        crf_learning_rate=model_args.crf_learning_rate,
        callbacks=[RecordRunArguments(run_args)]
        + ([EarlyStoppingCallback(data_args.early_stopping_patience)] if data_args.early_stopping_patience else []),
    )
    quiet_progress(trainer, verbose)

    all_results: dict[str, Any] = {"num_parameters": num_parameters}
    calibration: dict[str, Any] | None = None  # --calibrate_confidence: what calibration.json holds
    all_results.update({f"{split}_windowed_sentences": count for split, count in window_counts.items()})
    if training_args.do_train:
        started = time.perf_counter()
        resumed_epoch = trainer_state_epoch(resume_checkpoint)
        train_result = trainer.train(resume_from_checkpoint=resume_checkpoint)
        train_seconds = time.perf_counter() - started
        if data_args.calibrate_confidence:
            # The temperature of the entity confidences, fitted on the validation split, saved in the config.
            validation_predictions, _ = predict_words(trainer, eval_windows, eval_dataset, data_args.text_column_name,
                                                      metadata_columns, "calibration")
            gold, pred = tag_names(eval_dataset, validation_predictions, labels, data_args.label_column_name)
            validation_outcomes = entity_outcomes(
                gold, pred, [confidences for _, confidences in validation_predictions])
            temperature = fit_temperature(validation_outcomes.confidences, validation_outcomes.correct)
            setattr(model.config, CONFIG_TEMPERATURE, temperature)
            calibration = {"temperature": temperature, "fitted_on": data_args.validation_split,
                           "validation": calibration_report(validation_outcomes, temperature)}
            logger.info(f"Entity confidence temperature {temperature:.4g}, fitted on "
                        f"{len(validation_outcomes.confidences)} validation entities")
        if isinstance(model, CRFForTokenClassification):
            # pipeline(model=OUTPUT_DIR, trust_remote_code=True) runs windows.NerPipeline, saved beside the model.
            model.config.custom_pipelines = pipeline_config_entry()
        save_final_model(trainer, output_dir)  # model, config (auto_map for CRF), modeling file, tokenizer
        if isinstance(model, CRFForTokenClassification) and trainer.is_world_process_zero():
            copy_pipeline_files(output_dir)
        metrics = dict(train_result.metrics)
        # The epochs this run trained (not --num_train_epochs: --max_steps and resuming change it).
        epochs = trainer.state.epoch - resumed_epoch
        num_words = sum(len(tokens) for tokens in train_dataset[data_args.text_column_name])
        num_subwords = sum(len(ids) for ids in train_windows["input_ids"])
        metrics.update(
            train_sentences=len(train_dataset), train_documents=len(set(train_dataset["document_id"]))
            if "document_id" in train_dataset.column_names else len(train_dataset),
            train_wall_seconds=round(train_seconds, 2), train_epochs_run=round(epochs, 4),
            train_words_per_second=round(num_words * epochs / train_seconds, 2),
            train_subwords_per_second=round(num_subwords * epochs / train_seconds, 2),
        )
        if verbose:  # the results files hold them; the last lines say where
            trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
        all_results.update(metrics)

    if training_args.do_eval and eval_windows is not None:
        metrics = trainer.evaluate(metric_key_prefix="eval")
        metrics["eval_samples"] = len(eval_dataset)
        if verbose:  # the results files hold them; the last lines say where
            trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        all_results.update(metrics)

    if training_args.do_predict and test_windows is not None:
        started = time.perf_counter()
        word_predictions, output = predict_words(trainer, test_windows, test_dataset, data_args.text_column_name,
                                                 metadata_columns, "test")
        gold, pred = tag_names(test_dataset, word_predictions, labels, data_args.label_column_name)
        if calibration is not None:  # the validation temperature, applied to the test entities (never fitted here)
            calibration["test"] = calibration_report(
                entity_outcomes(gold, pred, [confidences for _, confidences in word_predictions]),
                calibration["temperature"])
        # Word-level test metrics (the Trainer's own are per window position).
        metrics = {f"test_{key}": value for key, value in ner_metrics(gold, pred).items()}
        metrics.update(test_sentences=len(test_dataset), test_loss=output.metrics.get("test_loss"),
                       test_predict_seconds=round(time.perf_counter() - started, 2))
        if verbose:  # the results files hold them; the last lines say where
            trainer.log_metrics("test", metrics)
        trainer.save_metrics("test", metrics)
        all_results.update(metrics)
        if trainer.is_world_process_zero():
            documents = None
            documents_path = Path(data_args.dataset_path or "") / DOCUMENTS_DIRNAME
            if data_args.write_brat and data_args.dataset_path and documents_path.is_dir():
                documents = load_from_disk(str(documents_path))
            path = write_predictions(output_dir, test_dataset, word_predictions, labels, data_args.text_column_name,
                                     data_args.label_column_name, documents, data_file_mode(data_args))
            logger.info(f"Predictions written to {path.parent}")

    if trainer.is_world_process_zero():
        stats_path = Path(data_args.dataset_path or "") / STATS_FILE
        dataset_stats = json.loads(stats_path.read_text()) if data_args.dataset_path and stats_path.is_file() else {}
        model_run_info = Path(model_args.model_name_or_path or "") / RUN_INFO_FILE
        if not training_args.do_train and model_args.model_name_or_path and model_run_info.is_file():
            # Evaluation or prediction only: the run is the model's, whose predictions these are.
            run_info = json.loads(model_run_info.read_text(encoding="utf-8"))
        else:
            run_info = None
        run_info = run_info or {
            "model_label": default_model_label(model_args),
            "model_name_or_path": model_args.model_name_or_path,
            "config_name": model_args.config_name,
            "use_crf": model_args.use_crf,
            "seed": training_args.seed,
            "train_split": data_args.train_split,
            "train_fraction": data_args.train_fraction,
            "num_train_sentences": len(train_dataset) if train_dataset is not None else 0,
            "num_train_documents": len(set(train_dataset["document_id"]))
            if train_dataset is not None and "document_id" in train_dataset.column_names else 0,
            "efficient_training": "downsampled" in data_args.train_split,
            "num_parameters": num_parameters,
            "world_size": training_args.world_size,
            "synthetic": bool(dataset_stats.get("synthetic", False)),
            "vocabulary_from_corpus": corpus_vocabulary,
        }
        write_json_atomically(output_dir / RUN_INFO_FILE, run_info)
        write_json_atomically(output_dir / ALL_RESULTS_FILE, all_results)
        if calibration is not None:
            write_json_atomically(output_dir / CALIBRATION_FILE, calibration)
        if training_args.do_train:
            card = write_ner_model_card(output_dir, model_args, data_args, training_args, labels, all_results, run_info,
                                    dataset_stats, trainer.state.log_history)
            logger.info(f"Model card written to {card}")
        if push_to_hub:
            repo_id = training_args.hub_model_id or output_dir.name
            push_model_to_hub(output_dir, repo_id, training_args.hub_token or model_args.token,
                              private=training_args.hub_private_repo,
                              corpus_vocabulary_acknowledged=model_args.push_corpus_vocabulary)
            logger.info(f"Pushed {', '.join(hub_upload_files(output_dir))} to {repo_id}")
        report_outputs(output_dir, all_results)
    return all_results


def calibration_headline(path: Path) -> str:
    """The temperature and the validation ECE before and after it, from ``calibration.json``."""
    saved = json.loads(path.read_text(encoding="utf-8"))
    validation = saved["validation"]
    before, after = validation["uncalibrated"]["ece"], validation["calibrated"]["ece"]
    if before is None:
        return f"temperature {saved['temperature']:.3g} (no validation entity predicted)"
    return f"temperature {saved['temperature']:.3g}, validation ECE {before:.3f} -> {after:.3f}"


def report_outputs(output_dir: Path, results: dict[str, Any]) -> None:
    """Where everything is, and the headline numbers (no corpus text)."""
    rows = []
    for name, what in (("model.safetensors", "model"), ("README.md", "model card"), (ALL_RESULTS_FILE, "metrics"),
                       (CALIBRATION_FILE, "confidence calibration"),
                       (f"{PREDICTIONS_DIRNAME}/{TEST_PREDICTIONS_FILE}", "test predictions"),
                       (f"{PREDICTIONS_DIRNAME}/{BRAT_DIRNAME}", "brat .ann per test note")):
        if (output_dir / name).exists():
            rows.append((what, output_dir / name, calibration_headline(output_dir / name)
                         if name == CALIBRATION_FILE else ""))
    scores = [f"{label} {percent(results[key])}" for key, label in (
        (f"eval_{STRICT_MICRO_F1}", "validation"), (f"test_{STRICT_MICRO_F1}", "test"),
        (f"test_{STRICT_MACRO_F1}", "test macro")) if key in results]
    if rows and scores:
        what, path, _ = rows[0]
        rows[0] = (what, path, "strict entity micro-F1: " + ", ".join(scores))
    print_outputs(f"{SCRIPT} wrote:", rows)


if __name__ == "__main__":
    run_main(main, SCRIPT)
