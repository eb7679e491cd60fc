#!/usr/bin/env python
"""Train, select, evaluate and publish a clinical NER model with a linear ("Apt") or CRF head.

In the style of transformers' ``examples/pytorch/token-classification/run_ner.py``:

    python run_ner_crf.py configs/quickstart.json
    python run_ner_crf.py configs/bert_crf.json --train_split train_downsampled --output_dir runs/bert_crf_sambd
    accelerate launch run_ner_crf.py --model_name_or_path emilyalsentzer/Bio_ClinicalBERT \\
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

import json
import logging
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import datasets
import torch
import transformers
from datasets import Dataset, DatasetDict, concatenate_datasets, load_dataset, load_from_disk
from transformers import (
    AutoConfig,
    AutoModelForTokenClassification,
    AutoTokenizer,
    EarlyStoppingCallback,
    HfArgumentParser,
    PreTrainedTokenizerFast,
    Trainer,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint

from corpus_io import (
    ALL_RESULTS_FILE, BRAT_DIRNAME, DOCUMENTS_DIRNAME, PREDICTIONS_DIRNAME, RUN_INFO_FILE, STATS_FILE,
    TEST_PREDICTIONS_FILE, prediction_record, write_brat_ann, write_json_atomically, write_predictions_file,
)
from evaluate_ablations import LENIENT_MICRO_F1, STRICT_MACRO_F1, STRICT_MICRO_F1, ner_metrics, type_metric_name
from modeling_crf import CRFForTokenClassification, CRFTokenClassificationConfig
from tagging import begin_to_inside, bio_to_char_spans, entity_types_of
from windows import (
    WindowCollator, copy_pipeline_files, encode_word_windows, encoder_max_positions, max_input_length,
    merge_window_predictions, pipeline_config_entry, select_predictions,
)
from windows import load_tokenizer as load_word_tokenizer

logger = logging.getLogger(__name__)

# Files `--push_to_hub` uploads: model, tokenizer, config, modeling file and card. Nothing else
# (no predictions, datasets, logs or training state: they may hold corpus text).
HUB_UPLOAD_PATTERNS = [
    "config.json",
    "model.safetensors",
    "model-*.safetensors",
    "model.safetensors.index.json",
    "modeling_crf.py",
    "windows.py",  # the CRF pipeline (windows.NerPipeline) and the tag scheme it imports
    "tagging.py",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "added_tokens.json",
    "README.md",
]
PAPER_CITATION = """@inproceedings{belkadi2023exploring,
  title     = {Exploring the Value of Pre-trained Language Models for Clinical Named Entity Recognition},
  author    = {Belkadi, Samuel and Han, Lifeng and Wu, Yuping and Nenadic, Goran},
  booktitle = {2023 IEEE International Conference on Big Data (BigData)},
  year      = {2023},
  note      = {arXiv:2210.12770}
}"""


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
        default=False, metadata={"help": "Train a WordPiece tokenizer on the training split only (from-scratch models)."}
    )
    tokenizer_vocab_size: int = field(default=8000, metadata={"help": "Vocabulary size of a trained tokenizer."})
    tokenizer_min_frequency: int = field(
        default=2, metadata={"help": "A word piece must occur this often in the training split to enter the vocabulary."}
    )
    tokenizer_lowercase: bool = field(default=False, metadata={"help": "Lower-case in a trained tokenizer."})
    use_crf: bool = field(default=True, metadata={"help": "CRF head (True) or the stock linear head, 'Apt' (False)."})
    use_bio_constraints: bool = field(
        default=True, metadata={"help": "Forbid transitions that are invalid in IOB2 (CRF only)."}
    )
    classifier_dropout: float = field(default=0.2, metadata={"help": "Dropout before the emission layer (paper: 0.2)."})
    crf_learning_rate: float | None = field(
        default=None, metadata={"help": "Learning rate of the classifier and CRF (default: --learning_rate)."}
    )
    model_label: str | None = field(
        default=None, metadata={"help": "Name of the system in reports, e.g. 'BERT-CRF' (default: derived)."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where to store models downloaded from the Hub."})
    model_revision: str = field(default="main", metadata={"help": "Model version (branch, tag or commit)."})
    token: str | None = field(default=None, metadata={"help": "Hub token (default: the cached login)."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow custom code from the Hub for the encoder (not needed for our CRF)."}
    )


@dataclass
class DataTrainingArguments:
    """Which data to train and evaluate on, and how to cut it into model inputs."""

    dataset_path: str | None = field(
        default=None, metadata={"help": "A dataset saved by prepare_n2c2.py (datasets.load_from_disk)."}
    )
    dataset_name: str | None = field(default=None, metadata={"help": "A dataset on the Hub with the same columns."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Configuration of the Hub dataset."})
    train_split: str = field(
        default="train",
        metadata={"help": "'train', 'train_downsampled' (efficient training) or 'train+validation' (final retraining)."},
    )
    validation_split: str = field(default="validation", metadata={"help": "Split for model selection."})
    test_split: str = field(default="test", metadata={"help": "Split to predict and score."})
    train_fraction: float = field(
        default=1.0, metadata={"help": "Keep this fraction of training documents (seeded, by document): learning curves."}
    )
    text_column_name: str = field(default="tokens", metadata={"help": "Column of word lists."})
    label_column_name: str = field(default="ner_tags", metadata={"help": "Column of ClassLabel tag ids."})
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


# ---------------------------------------------------------------------------
# Data, tokenizer and model
# ---------------------------------------------------------------------------


def load_raw_datasets(data_args: DataTrainingArguments, model_args: ModelArguments) -> DatasetDict:
    if data_args.dataset_path:
        raw = load_from_disk(data_args.dataset_path)
    elif data_args.dataset_name:
        raw = load_dataset(data_args.dataset_name, data_args.dataset_config_name, cache_dir=model_args.cache_dir,
                           token=model_args.token)
    else:
        raise ValueError("Give --dataset_path (output of prepare_n2c2.py) or --dataset_name.")
    if not isinstance(raw, DatasetDict):
        raise ValueError(f"{data_args.dataset_path or data_args.dataset_name} is not a DatasetDict of splits")
    return raw


def select_split(raw: DatasetDict, split_expression: str) -> Dataset:
    """A split by name, or several joined with '+', e.g. 'train+validation'."""
    parts = []
    for name in split_expression.split("+"):
        if name not in raw:
            raise ValueError(f"split {name!r} not in the dataset (has: {', '.join(raw)})")
        parts.append(raw[name])
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def sample_documents(dataset: Dataset, fraction: float, seed: int) -> Dataset:
    """Keep a seeded random ``fraction`` of the documents (all their sentences)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"--train_fraction must be in (0, 1], got {fraction}")
    if fraction == 1 or "document_id" not in dataset.column_names:
        return dataset
    documents = sorted(set(dataset["document_id"]))
    keep = set(random.Random(seed).sample(documents, max(1, round(fraction * len(documents)))))
    return dataset.filter(lambda document_id: document_id in keep, input_columns="document_id")


def train_wordpiece_tokenizer(
    word_sequences: Iterable[Sequence[str]], vocab_size: int, min_frequency: int = 2, lowercase: bool = False,
    model_max_length: int = 512,
) -> PreTrainedTokenizerFast:
    """A cased BERT-style WordPiece tokenizer whose vocabulary comes from the training words only.

    The vocabulary is built deterministically: the special tokens, every character seen (as a
    word start and as a ``##`` continuation, so nothing becomes ``[UNK]``), then whole words by
    descending frequency (ties in alphabetical order) while they occur at least
    ``min_frequency`` times, up to ``vocab_size``. (The `tokenizers` WordPiece trainer breaks
    frequency ties in hash order, so its vocabulary changes from one process to the next and
    seeded runs would not repeat.)
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    special_tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts: Counter = Counter()
    for words in word_sequences:
        for word in words:
            counts.update(piece for piece, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(word)))
    characters = sorted({character for word in counts for character in word})
    vocab = special_tokens + characters + [f"##{character}" for character in characters]
    for word, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if len(vocab) >= vocab_size or count < min_frequency:
            break
        if len(word) > 1:
            vocab.append(word)
    backend = Tokenizer(models.WordPiece(vocab={token: i for i, token in enumerate(vocab)}, unk_token="[UNK]",
                                         max_input_chars_per_word=100))
    backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizer
    backend.decoder = decoders.WordPiece()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab.index("[CLS]")), ("[SEP]", vocab.index("[SEP]"))],
    )
    from transformers import BertTokenizerFast

    return BertTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                             sep_token="[SEP]", mask_token="[MASK]", do_lower_case=lowercase,
                             model_max_length=model_max_length)


def parse_config_overrides(overrides: str | None) -> dict[str, Any]:
    """'n_layers=2,dim=128,activation=gelu' -> {'n_layers': 2, 'dim': 128, 'activation': 'gelu'}."""
    parsed: dict[str, Any] = {}
    for item in filter(None, (overrides or "").split(",")):
        key, _, value = item.partition("=")
        try:
            parsed[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key.strip()] = value.strip()
    return parsed


def load_tokenizer(model_args: ModelArguments, train_dataset: Dataset | None, text_column: str,
                   resume_checkpoint: str | None = None):
    """The tokenizer to train with: trained on the training split, or the model's (``windows.load_tokenizer``)."""
    if model_args.train_tokenizer and resume_checkpoint:
        # A resumed run keeps the vocabulary its weights were trained with.
        return AutoTokenizer.from_pretrained(resume_checkpoint)
    if model_args.train_tokenizer:
        if train_dataset is None:
            raise ValueError("--train_tokenizer needs a training split (--do_train)")
        logger.info("Training a WordPiece tokenizer (vocabulary %d) on the training split", model_args.tokenizer_vocab_size)
        return train_wordpiece_tokenizer(train_dataset[text_column], model_args.tokenizer_vocab_size,
                                         model_args.tokenizer_min_frequency, model_args.tokenizer_lowercase)
    name = model_args.tokenizer_name or model_args.model_name_or_path
    if name is None:
        raise ValueError("No tokenizer: give --tokenizer_name, --model_name_or_path or --train_tokenizer")
    return load_word_tokenizer(name, revision=model_args.model_revision, token=model_args.token,
                               trust_remote_code=model_args.trust_remote_code, cache_dir=model_args.cache_dir)


def build_model(model_args: ModelArguments, labels: list[str], tokenizer, label_all_tokens: bool):
    """The model to train: pre-trained encoder or random architecture, CRF or linear head."""
    id2label = dict(enumerate(labels))
    label2id = {label: index for index, label in enumerate(labels)}
    hub_kwargs = dict(cache_dir=model_args.cache_dir, revision=model_args.model_revision, token=model_args.token)
    # Recorded in the config so that prediction decodes over the positions training used.
    label_alignment = "all_subwords" if label_all_tokens else "first_subword"
    if model_args.model_name_or_path:
        source_config = AutoConfig.from_pretrained(model_args.model_name_or_path, trust_remote_code=True, **hub_kwargs)
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
                                                id2label=id2label, label2id=label2id,
                                                trust_remote_code=model_args.trust_remote_code, **hub_kwargs)
            if hasattr(config, "classifier_dropout"):
                config.classifier_dropout = model_args.classifier_dropout
            model = AutoModelForTokenClassification.from_pretrained(
                model_args.model_name_or_path, config=config, trust_remote_code=model_args.trust_remote_code,
                **hub_kwargs,
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
        raise ValueError("Give --model_name_or_path (fine-tune) or --config_name (train from scratch).")
    model.config.label_alignment = label_alignment
    if isinstance(model, CRFForTokenClassification):
        # So that a forward without label_mask (e.g. the stock pipeline) decodes word starts, as here.
        model.set_subword_kinds(tokenizer)
    return model


def default_model_label(model_args: ModelArguments) -> str:
    if model_args.model_label:
        return model_args.model_label
    base = Path(model_args.model_name_or_path).name if model_args.model_name_or_path else "Transformer"
    return f"{base}-{'CRF' if model_args.use_crf else 'Apt'}"


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
    label_column: str, documents: Dataset | None,
) -> Path:
    """Word-level prediction records (and brat .ann per document) under ``output_dir/predictions``."""
    predictions_dir = output_dir / PREDICTIONS_DIRNAME
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
    jsonl_path = write_predictions_file(predictions_dir / TEST_PREDICTIONS_FILE, records)
    if documents is not None and has_offsets:
        brat_dir = predictions_dir / BRAT_DIRNAME
        brat_dir.mkdir(exist_ok=True)
        texts = {doc: text for doc, text in zip(documents["document_id"], documents["text"])}
        for document_id in sorted(set(test_dataset["document_id"])):
            write_brat_ann(brat_dir / f"{document_id}.ann", entities_by_document.get(document_id, []),
                           texts[document_id], overwrite=True)
    return jsonl_path


def write_model_card(
    output_dir: Path, model_args: ModelArguments, data_args: DataTrainingArguments, training_args: TrainingArguments,
    labels: list[str], results: dict[str, Any], run_info: dict[str, Any],
) -> Path:
    """README.md with model-index metadata, built from numbers only: never any corpus text."""
    from huggingface_hub import ModelCard, ModelCardData
    from huggingface_hub.repocard_data import EvalResult

    model_label = run_info["model_label"]
    dataset_name = data_args.dataset_name or "n2c2-2018 Track 2 format (local, prepared with prepare_n2c2.py)"
    eval_results = [
        EvalResult(task_type="token-classification", dataset_type="n2c2-2018-track2", dataset_name=dataset_name,
                   dataset_split=data_args.test_split, metric_type=metric_type, metric_name=metric_name,
                   metric_value=round(float(results[key]), 4))
        for key, metric_type, metric_name in (
            (f"test_{STRICT_MICRO_F1}", "f1", "Strict entity micro-F1"),
            (f"test_{STRICT_MACRO_F1}", "f1", "Strict entity macro-F1"))
        if key in results
    ]
    card_data = ModelCardData(
        license="apache-2.0" if model_args.config_name and not model_args.model_name_or_path else "other",
        library_name="transformers", pipeline_tag="token-classification",
        tags=["token-classification", "ner", "clinical", "crf" if model_args.use_crf else "linear-head"],
        base_model=model_args.model_name_or_path, model_name=model_label,
        eval_results=eval_results or None,
    )
    per_type_rows = "\n".join(
        f"| {entity_type} | {results.get('test_' + type_metric_name(entity_type), float('nan')):.4f} |"
        for entity_type in entity_types_of(labels)
    )
    hyper = {key: getattr(training_args, key) for key in (
        "learning_rate", "per_device_train_batch_size", "num_train_epochs", "lr_scheduler_type", "warmup_steps",
        "weight_decay", "seed", "bf16", "fp16")}
    hyper.update(crf_learning_rate=model_args.crf_learning_rate, classifier_dropout=model_args.classifier_dropout,
                 max_seq_length=data_args.max_seq_length, stride=data_args.stride,
                 label_all_tokens=data_args.label_all_tokens)
    load_kwargs = ", trust_remote_code=True" if model_args.use_crf else ""
    body = f"""
# {model_label}

Clinical named-entity recogniser for drugs and their attributes, trained with `run_ner_crf.py`
(a {"CRF" if model_args.use_crf else "linear (Apt)"} head on
{"`" + model_args.model_name_or_path + "`" if model_args.model_name_or_path else "a Transformer trained from scratch (`" + str(model_args.config_name) + "` architecture)"}).

## Results (test split `{data_args.test_split}`, word level)

| metric | value |
|---|---|
| strict entity micro-F1 | {results.get('test_' + STRICT_MICRO_F1, float('nan')):.4f} |
| strict entity macro-F1 | {results.get('test_' + STRICT_MACRO_F1, float('nan')):.4f} |
| lenient entity micro-F1 | {results.get('test_' + LENIENT_MICRO_F1, float('nan')):.4f} |

| entity type | strict F1 |
|---|---|
{per_type_rows}

## Labels
{len(labels)} IOB2 tags: {", ".join(f"`{label}`" for label in labels)}

## Training
- Base model: {model_args.model_name_or_path or "none (trained from scratch)"}
- Parameters: {run_info["num_parameters"]:,}
- Training split: `{data_args.train_split}` ({run_info["num_train_sentences"]:,} sentences from {run_info["num_train_documents"]:,} documents; train_fraction {data_args.train_fraction}); efficient training (down-sampled all-O sentences): {"yes" if run_info["efficient_training"] else "no"}
- Hyper-parameters: `{json.dumps(hyper, default=str)}`

## How to use
```python
from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

model = AutoModelForTokenClassification.from_pretrained("REPO_OR_PATH"{load_kwargs})
tokenizer = AutoTokenizer.from_pretrained("REPO_OR_PATH")
ner = pipeline("token-classification", model="REPO_OR_PATH"{load_kwargs}, aggregation_strategy="first")
```
{"CRF models ship their own code: `modeling_crf.py` (the model) and `windows.py` + `tagging.py` (the pipeline: sentences, words and windows, so that a text of any length is tagged to its last character). Loading them needs `trust_remote_code=True`, which runs those files: read them first; they depend only on torch, transformers, tokenizers and pytorch-crf. The pipeline returns the CRF's Viterbi path with marginal-probability scores; a model object in the stock pipeline gives the same path (its `logits` are built from it)." if model_args.use_crf else "A stock transformers token-classification model: no custom code needed. The stock pipeline truncates long texts unless given `stride=`."}

## Intended use and limitations
For research on clinical information extraction. **Not for clinical decisions** and not validated
for patient care. Trained on {"a synthetic sample" if run_info.get("synthetic") else "the data described above"}; performance on notes from other institutions,
specialties or note types will differ. Reason and ADE are the hardest types. Models trained on data under a
data-use agreement (such as n2c2) inherit its terms; a tokenizer trained on such data has a vocabulary derived from it.

## Citation
```bibtex
{PAPER_CITATION}
```
"""
    card = ModelCard.from_template(card_data, template_str="---\n{{ card_data }}\n---\n" + body)
    path = output_dir / "README.md"
    card.save(path)
    return path


def push_model_to_hub(output_dir: Path, repo_id: str, token: str | None, private: bool | None = None):
    """Upload model, tokenizer, config, modeling file and card: nothing else (see HUB_UPLOAD_PATTERNS)."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(repo_id=repo_id, folder_path=str(output_dir), allow_patterns=HUB_UPLOAD_PATTERNS,
                             commit_message="Upload model trained with run_ner_crf.py")


def hub_upload_files(output_dir: Path) -> list[str]:
    """The files of ``output_dir`` that :func:`push_model_to_hub` would upload."""
    from huggingface_hub.utils import filter_repo_objects

    files = [p.relative_to(output_dir).as_posix() for p in Path(output_dir).rglob("*") if p.is_file()]
    return sorted(filter_repo_objects(files, allow_patterns=HUB_UPLOAD_PATTERNS))


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def json_config_to_argv(path: str) -> list[str]:
    """A JSON config as command-line flags, so that flags given after it override it."""
    argv = []
    for key, value in json.loads(Path(path).read_text()).items():
        if isinstance(value, bool):
            argv += [f"--{key}", str(value).lower()]
        elif isinstance(value, list):
            argv += [f"--{key}", *map(str, value)]
        elif value is not None:
            argv += [f"--{key}", str(value)]
    return argv


def parse_args(args: list[str] | None = None):
    """``run_ner_crf.py [CONFIG.json] [--flag value ...]``: flags override the config file."""
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    args = list(sys.argv[1:] if args is None else args)
    if args and args[0].endswith(".json"):
        args = json_config_to_argv(args[0]) + args[1:]
    return parser.parse_args_into_dataclasses(args=args)


def main(args: list[str] | None = None) -> dict[str, Any]:
    model_args, data_args, training_args = parse_args(args)
    # We push ourselves, with an allow-list: the Trainer would upload the whole output_dir.
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    # The CRF's forward also takes `label_mask`, which is an input, not a target.
    training_args.label_names = training_args.label_names or ["labels"]

    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%m/%d/%Y %H:%M:%S",
                        handlers=[logging.StreamHandler(sys.stdout)])
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    logger.warning(f"Process rank: {training_args.process_index}, device: {training_args.device}, "
                   f"n_gpu: {training_args.n_gpu}, distributed: {training_args.parallel_mode.value}, "
                   f"bf16: {training_args.bf16}, fp16: {training_args.fp16}")
    output_dir = Path(training_args.output_dir)

    last_checkpoint = None
    if output_dir.is_dir() and training_args.do_train and training_args.resume_from_checkpoint is None:
        last_checkpoint = get_last_checkpoint(str(output_dir))
        if last_checkpoint is not None:
            logger.info(f"Resuming from {last_checkpoint} (pass a new --output_dir to start afresh)")

    # Seed before anything random: document sampling, tokenizer training, head initialisation.
    set_seed(training_args.seed)

    raw = load_raw_datasets(data_args, model_args)
    any_split = next(iter(raw.values()))
    labels = list(any_split.features[data_args.label_column_name].feature.names)
    b_to_i = begin_to_inside(labels)

    train_dataset = eval_dataset = test_dataset = None
    if training_args.do_train:
        train_dataset = sample_documents(select_split(raw, data_args.train_split), data_args.train_fraction,
                                         training_args.seed)
        if data_args.max_train_samples is not None:
            train_dataset = train_dataset.select(range(min(len(train_dataset), data_args.max_train_samples)))
    if training_args.do_eval or training_args.eval_strategy != "no":
        eval_dataset = select_split(raw, data_args.validation_split)
        if data_args.max_eval_samples is not None:
            eval_dataset = eval_dataset.select(range(min(len(eval_dataset), data_args.max_eval_samples)))
    if training_args.do_predict:
        test_dataset = select_split(raw, data_args.test_split)
        if data_args.max_predict_samples is not None:
            test_dataset = test_dataset.select(range(min(len(test_dataset), data_args.max_predict_samples)))

    resume_checkpoint = training_args.resume_from_checkpoint or last_checkpoint if training_args.do_train else None
    tokenizer = load_tokenizer(model_args, train_dataset, data_args.text_column_name, resume_checkpoint)
    model = build_model(model_args, labels, tokenizer, data_args.label_all_tokens)
    # A saved tokenizer says how many tokens the encoder takes, so that no caller overruns it.
    encoder_positions = encoder_max_positions(model.config)
    if encoder_positions is not None:
        tokenizer.model_max_length = encoder_positions
    data_args.max_seq_length = max_input_length(model, tokenizer, data_args.max_seq_length)
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
        return windows

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
        callbacks=[EarlyStoppingCallback(data_args.early_stopping_patience)]
        if data_args.early_stopping_patience else None,
    )

    all_results: dict[str, Any] = {"num_parameters": num_parameters}
    all_results.update({f"{split}_windowed_sentences": count for split, count in window_counts.items()})
    if training_args.do_train:
        started = time.perf_counter()
        train_result = trainer.train(resume_from_checkpoint=resume_checkpoint)
        train_seconds = time.perf_counter() - started
        if isinstance(model, CRFForTokenClassification):
            # pipeline(model=OUTPUT_DIR, trust_remote_code=True) runs windows.NerPipeline, saved beside the model.
            model.config.custom_pipelines = pipeline_config_entry()
        trainer.save_model()  # model, config (auto_map for CRF), modeling file, tokenizer
        if isinstance(model, CRFForTokenClassification) and trainer.is_world_process_zero():
            copy_pipeline_files(output_dir)
        metrics = dict(train_result.metrics)
        epochs = training_args.num_train_epochs
        num_words = sum(len(tokens) for tokens in train_dataset[data_args.text_column_name])
        num_subwords = sum(len(ids) for ids in train_windows["input_ids"])
        metrics.update(
            train_sentences=len(train_dataset), train_documents=len(set(train_dataset["document_id"]))
            if "document_id" in train_dataset.column_names else len(train_dataset),
            train_wall_seconds=round(train_seconds, 2),
            train_words_per_second=round(num_words * epochs / train_seconds, 2),
            train_subwords_per_second=round(num_subwords * epochs / train_seconds, 2),
        )
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
        all_results.update(metrics)

    if training_args.do_eval and eval_windows is not None:
        metrics = trainer.evaluate(metric_key_prefix="eval")
        metrics["eval_samples"] = len(eval_dataset)
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        all_results.update(metrics)

    if training_args.do_predict and test_windows is not None:
        started = time.perf_counter()
        output = trainer.predict(test_windows.remove_columns(metadata_columns), metric_key_prefix="test")
        tags_and_confidences = output.predictions
        word_predictions = merge_window_predictions(
            test_windows.select_columns(metadata_columns), tags_and_confidences[..., 0],
            tags_and_confidences[..., 1], [len(tokens) for tokens in test_dataset[data_args.text_column_name]])
        gold = [[labels[i] for i in tags] for tags in test_dataset[data_args.label_column_name]]
        pred = [[labels[i] for i in tags] for tags, _ in word_predictions]
        # Word-level test metrics (the Trainer's own are per window position).
        metrics = {f"test_{key}": value for key, value in ner_metrics(gold, pred).items()}
        metrics.update(test_sentences=len(test_dataset), test_loss=output.metrics.get("test_loss"),
                       test_predict_seconds=round(time.perf_counter() - started, 2))
        trainer.log_metrics("test", metrics)
        trainer.save_metrics("test", metrics)
        all_results.update(metrics)
        if trainer.is_world_process_zero():
            documents = None
            documents_path = Path(data_args.dataset_path or "") / DOCUMENTS_DIRNAME
            if data_args.write_brat and data_args.dataset_path and documents_path.is_dir():
                documents = load_from_disk(str(documents_path))
            path = write_predictions(output_dir, test_dataset, word_predictions, labels, data_args.text_column_name,
                                     data_args.label_column_name, documents)
            logger.info(f"Predictions written to {path.parent}")

    if trainer.is_world_process_zero():
        stats_path = Path(data_args.dataset_path or "") / STATS_FILE
        dataset_stats = json.loads(stats_path.read_text()) if data_args.dataset_path and stats_path.is_file() else {}
        run_info = {
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
            "synthetic": bool(dataset_stats.get("synthetic", False)),
        }
        write_json_atomically(output_dir / RUN_INFO_FILE, run_info)
        write_json_atomically(output_dir / ALL_RESULTS_FILE, all_results)
        if training_args.do_train:
            tokenizer.save_pretrained(output_dir)
            card = write_model_card(output_dir, model_args, data_args, training_args, labels, all_results, run_info)
            logger.info(f"Model card written to {card}")
        if push_to_hub:
            repo_id = training_args.hub_model_id or output_dir.name
            push_model_to_hub(output_dir, repo_id, training_args.hub_token or model_args.token,
                              private=training_args.hub_private_repo)
            logger.info(f"Pushed {', '.join(hub_upload_files(output_dir))} to {repo_id}")
        print_outputs(output_dir, all_results)
    return all_results


def print_outputs(output_dir: Path, results: dict[str, Any]) -> None:
    """Where everything is, and the headline numbers (no corpus text)."""
    lines = [f"\nOutputs in {output_dir}/"]
    for name, what in (("model.safetensors", "model (+ config.json, tokenizer)"), ("README.md", "model card"),
                       (ALL_RESULTS_FILE, "metrics"), (f"{PREDICTIONS_DIRNAME}/{TEST_PREDICTIONS_FILE}",
                       "word-level test predictions (never uploaded)"),
                       (f"{PREDICTIONS_DIRNAME}/{BRAT_DIRNAME}", "brat .ann per test note")):
        if (output_dir / name).exists():
            lines.append(f"  {name:<42} {what}")
    for key, label in ((f"test_{STRICT_MICRO_F1}", "test strict entity micro-F1"),
                       (f"test_{STRICT_MACRO_F1}", "test strict entity macro-F1"),
                       (f"eval_{STRICT_MICRO_F1}", "validation strict entity micro-F1")):
        if key in results:
            lines.append(f"  {label:<42} {results[key]:.4f}")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
