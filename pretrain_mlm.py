#!/usr/bin/env python
"""Pre-train an encoder from scratch on your own notes (masked language modelling), for run_ner_crf.py.

In the style of transformers' ``examples/pytorch/language-modeling/run_mlm.py``:

    python pretrain_mlm.py --dataset_paths data/n2c2 --output_dir runs/self_pretrained --do_train \\
        --config_overrides "dim=256,n_layers=4,n_heads=4,hidden_dim=1024" --num_train_epochs 10
    python run_ner_crf.py --model_name_or_path runs/self_pretrained --dataset_path data/n2c2 \\
        --output_dir runs/self_pretrained_crf --do_train --do_eval --do_predict

Between a pre-trained encoder trained on outside text and a Transformer trained from scratch (the
paper's two answers) lies a third: an encoder pre-trained on the task's own text ("self-pretraining").
The text is (a) the training documents of prepared datasets (``--dataset_paths``: prepare_n2c2.py
output; only the splits named in ``--text_splits``, never ``test``) and/or (b) folders of unlabelled
``.txt`` notes (``--notes_dirs``); a note whose text is a test document of a given dataset is refused.

- Architecture: the paper's ``distilbert-base-cased`` config (``--config_name``, ``--config_overrides``),
  random weights, and a WordPiece vocabulary learned from the pre-training words (``subwords.py``:
  deterministic; or ``--tokenizer_name``).
- Input: sentences and words as everywhere in the project (``tagging.py``), as one stream packed into
  blocks of ``--max_seq_length`` tokens (only the last block is short; the padding share is reported).
- Whole-word masking: ``--mlm_probability`` of the words are chosen, and every piece of a chosen word is
  masked (80% ``[MASK]``, 10% a random piece, 10% kept), BERT's recipe at word level. (transformers'
  ``DataCollatorForLanguageModeling(whole_word_mask=True)`` finds words from character offsets, which
  packed blocks do not keep, and drops the random replacement.)
- Runs follow run_folders.py: an output folder that is not empty needs ``--overwrite_output_dir`` or
  ``--resume_from_checkpoint``; progress bar and ETA from the Trainer; multi-process with accelerate.
- Outputs: the encoder (``AutoModelForMaskedLM``) and tokenizer, which ``run_ner_crf.py
  --model_name_or_path`` fine-tunes with a CRF or linear head; ``pretraining_data.json`` records what text
  was seen (sources, counts and a SHA-256 of the text, never the text) and the throughput;
  ``run_info.json`` marks the vocabulary as corpus-derived; ``README.md`` is a model card (counts, no text).
- ``--push_to_hub`` uploads the allow-listed files only (model, tokenizer, config, card: run_folders.py's
  ``HUB_UPLOAD_PATTERNS``; never checkpoints or logs), and only with ``--push_corpus_vocabulary`` when the
  vocabulary was learned from the notes (its entries are words of them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from transformers import AutoConfig, AutoModelForMaskedLM, Trainer, TrainingArguments, set_seed

from corpus_io import DOCUMENTS_DIRNAME, PRETRAINING_DATA_FILE, RUN_INFO_FILE, read_text, write_json_atomically
from run_folders import (
    RecordRunArguments, UsageError, check_resume_matches, check_vocabulary_upload, main_with_usage_errors, parse_config_overrides,
    output_folder_lock, parse_script_args, prepare_output_dir, push_model_to_hub, hub_upload_files, save_final_model,
    setup_logging,
    vocabulary_from_corpus,
)
from subwords import PAPER_VOCABULARY_SIZE, train_subword_tokenizer, vocabulary_report
from tagging import split_sentences, tokenize_words

logger = logging.getLogger(__name__)

PAPER_ARCHITECTURE = "configs/architectures/distilbert-base-cased.json"


@dataclass
class ModelArguments:
    """The encoder to pre-train and its vocabulary."""

    config_name: str = field(default=PAPER_ARCHITECTURE, metadata={
        "help": "Architecture config (JSON file or Hub name), random weights (default: the paper's "
                "distilbert-base-cased)."})
    config_overrides: str | None = field(default=None, metadata={
        "help": "Override architecture settings, e.g. 'dim=256,n_layers=4,n_heads=4,hidden_dim=1024'."})
    model_name_or_path: str | None = field(default=None, metadata={
        "help": "Continue pre-training this masked-LM checkpoint (with its tokenizer) instead of a random encoder."})
    tokenizer_name: str | None = field(default=None, metadata={
        "help": "A tokenizer to use as it is (default: learn a WordPiece vocabulary from the pre-training words)."})
    tokenizer_vocab_size: int = field(default=PAPER_VOCABULARY_SIZE, metadata={
        "help": "Largest vocabulary to learn (default: the paper's 28,996; a small corpus reaches fewer, logged)."})
    tokenizer_min_frequency: int = field(default=2, metadata={"help": "A piece must occur this often to enter it."})
    tokenizer_lowercase: bool = field(default=False, metadata={"help": "Lower-case in a learned tokenizer."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Run custom code of --model_name_or_path."})
    push_corpus_vocabulary: bool = field(default=False, metadata={
        "help": "With --push_to_hub and a vocabulary learned from the notes: acknowledge that its words are corpus "
                "text and upload it (check your data's terms first)."})


@dataclass
class DataArguments:
    """The unlabelled text, and how it becomes model inputs."""

    dataset_paths: list[str] = field(default_factory=list, metadata={
        "help": "prepare_n2c2.py output folders: the text of their documents in --text_splits."})
    text_splits: list[str] = field(default_factory=lambda: ["train"], metadata={
        "help": "Which documents of --dataset_paths to read (train, validation; test is refused)."})
    notes_dirs: list[str] = field(default_factory=list, metadata={
        "help": "Folders of unlabelled .txt notes (UTF-8; not recursive)."})
    max_seq_length: int = field(default=128, metadata={
        "help": "Tokens per packed block, special tokens included (at most the encoder's positions)."})
    mlm_probability: float = field(default=0.15, metadata={"help": "Share of words masked in each block."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Start afresh in an existing --output_dir (the earlier run's outputs are removed)."})


# ---------------------------------------------------------------------------
# Text: what is read, and what is recorded about it (never the text)
# ---------------------------------------------------------------------------


def gather_texts(data_args: DataArguments) -> tuple[list[str], list[dict[str, Any]]]:
    """The documents to pre-train on, and a description of each source (paths, counts)."""
    if "test" in data_args.text_splits:
        raise UsageError("--text_splits: test text is never used for pre-training (the test set would no longer "
                         "measure what it should)")
    if not data_args.dataset_paths and not data_args.notes_dirs:
        raise UsageError("give --dataset_paths (prepare_n2c2.py output) and/or --notes_dirs (folders of .txt notes)")
    from datasets import load_from_disk

    texts, sources, test_digests = [], [], set()
    for path in data_args.dataset_paths:
        if not (Path(path) / DOCUMENTS_DIRNAME).is_dir():
            raise UsageError(f"--dataset_paths {path}: not a prepare_n2c2.py output folder (no {DOCUMENTS_DIRNAME}/)")
        documents = load_from_disk(str(Path(path) / DOCUMENTS_DIRNAME))
        chosen = [text for text, split in zip(documents["text"], documents["split"]) if split in data_args.text_splits]
        test_digests.update(_digest(text) for text, split in zip(documents["text"], documents["split"])
                            if split == "test")
        texts += chosen
        sources.append({"dataset_path": str(path), "splits": list(data_args.text_splits), "documents": len(chosen)})
    for folder in data_args.notes_dirs:
        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() == ".txt" and not p.name.startswith("."))
        if not paths:
            raise UsageError(f"--notes_dirs {folder}: no .txt notes")
        notes = [read_text(p) for p in paths]
        leaked = sum(_digest(text) in test_digests for text in notes)
        if leaked:
            raise UsageError(f"--notes_dirs {folder}: {leaked} notes are test documents of --dataset_paths")
        texts += notes
        sources.append({"notes_dir": str(folder), "documents": len(notes)})
    if not any(text.strip() for text in texts):
        raise UsageError("the pre-training sources hold no text")
    return texts, sources


def texts_digest(texts: Sequence[str]) -> str:
    """The SHA-256 recorded for the pre-training text (all documents, in order)."""
    return hashlib.sha256("\n\x00".join(texts).encode("utf-8")).hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def text_sentences(texts: Sequence[str]) -> list[list[str]]:
    """Word lists of every sentence of every document (tagging.py's sentences and words)."""
    return [[word for word, _, _ in tokenize_words(text, start, end)]
            for text in texts for start, end in split_sentences(text)]


# ---------------------------------------------------------------------------
# Blocks and whole-word masking
# ---------------------------------------------------------------------------


def pack_blocks(sentences: Sequence[Sequence[str]], tokenizer, max_seq_length: int) -> dict[str, list[list[int]]]:
    """The text as one stream of words, packed into blocks of ``max_seq_length`` tokens: ``[CLS] pieces ...
    [SEP]``, with the word each piece belongs to (``word_ids``, -1 for the special tokens; numbered within the
    block). Blocks are filled up to the last word that fits (sentences run on across blocks, as run_mlm.py's
    grouped texts do), so only the last block is short; a word longer than a block is cut between pieces.
    """
    budget = max_seq_length - 2
    if budget < 1:
        raise UsageError(f"--max_seq_length {max_seq_length} leaves no room for words")
    blocks: dict[str, list[list[int]]] = {"input_ids": [], "word_ids": []}
    ids: list[int] = []
    words: list[int] = []

    def emit():
        nonlocal ids, words
        if ids:
            blocks["input_ids"].append([tokenizer.cls_token_id, *ids, tokenizer.sep_token_id])
            blocks["word_ids"].append([-1, *words, -1])
        ids, words = [], []

    for start in range(0, len(sentences), 1000):
        chunk = [list(s) for s in sentences[start:start + 1000] if len(s)]
        if not chunk:
            continue
        encoding = tokenizer(chunk, is_split_into_words=True, add_special_tokens=False)
        for row, sentence_ids in enumerate(encoding["input_ids"]):
            word_of = encoding.word_ids(row)
            first = 0
            while first < len(sentence_ids):  # one word at a time: its pieces are first..last
                last = first
                while last + 1 < len(sentence_ids) and word_of[last + 1] == word_of[first]:
                    last += 1
                pieces = sentence_ids[first:last + 1]
                if len(ids) + len(pieces) > budget:
                    emit()
                for offset in range(0, len(pieces), budget):  # a word longer than a block: cut between pieces
                    if offset:
                        emit()
                    part = pieces[offset:offset + budget]
                    number = words[-1] + 1 if words else 0
                    ids += part
                    words += [number] * len(part)
                first = last + 1
    emit()
    return blocks


def padding_share(lengths: Sequence[int], batch_size: int) -> float:
    """Padded positions over all positions when batches of ``batch_size`` blocks (in order) are padded to their longest."""
    real = sum(lengths)
    padded = sum(max(lengths[i:i + batch_size]) * len(lengths[i:i + batch_size]) for i in range(0, len(lengths), batch_size))
    return round(1 - real / padded, 6) if padded else 0.0


def context_free_loss(blocks: dict[str, list[list[int]]], special_ids: Sequence[int]) -> float:
    """The masked-LM loss (nats per masked piece) of the best predictor that ignores context: each piece's
    frequency in the blocks. Every piece of a masked word is a target, so the targets follow the pieces'
    frequencies, and this is their entropy. An encoder whose loss is not well below it has learnt little from
    context yet (MLM from scratch sits near it for its first thousands of steps)."""
    special = set(special_ids)
    counts: dict[int, int] = {}
    for ids in blocks["input_ids"]:
        for piece in ids:
            if piece not in special:
                counts[piece] = counts.get(piece, 0) + 1
    total = sum(counts.values())
    return round(-sum(c / total * math.log(c / total) for c in counts.values()), 4) if total else 0.0


class WholeWordMaskCollator:
    """Pads blocks and masks whole words: each word is chosen with ``mlm_probability``; every piece of a chosen
    word becomes ``[MASK]`` (80%), a random piece (10%) or stays (10%), chosen per word."""

    def __init__(self, tokenizer, mlm_probability: float = 0.15):
        if not 0 < mlm_probability < 1:
            raise UsageError(f"--mlm_probability must be in (0, 1), got {mlm_probability}")
        self.tokenizer, self.mlm_probability = tokenizer, mlm_probability
        special = set(tokenizer.all_special_ids)
        self.random_ids = torch.tensor([i for i in range(len(tokenizer)) if i not in special])

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        length = max(len(f["input_ids"]) for f in features)
        input_ids = torch.full((len(features), length), self.tokenizer.pad_token_id)
        word_ids = torch.full((len(features), length), -1)
        for row, feature in enumerate(features):
            input_ids[row, :len(feature["input_ids"])] = torch.tensor(feature["input_ids"])
            word_ids[row, :len(feature["word_ids"])] = torch.tensor(feature["word_ids"])
        attention_mask = (torch.arange(length)[None, :] < torch.tensor([len(f["input_ids"]) for f in features])[:, None])
        # One draw per word (words are numbered within each block), applied to all its pieces.
        num_words = int(word_ids.max()) + 1 if (word_ids >= 0).any() else 0
        chosen = torch.rand(len(features), max(num_words, 1)) < self.mlm_probability
        if num_words and not (chosen[:, :num_words].any()):
            chosen[0, torch.randint(int(word_ids[0].max()) + 1, ())] = True  # a batch with nothing to predict has no loss
        action = torch.rand(len(features), max(num_words, 1))
        safe = word_ids.clamp(min=0)
        masked = chosen.gather(1, safe) & (word_ids >= 0)
        labels = torch.where(masked, input_ids, -100)
        word_action = action.gather(1, safe)
        inputs = input_ids.clone()
        inputs[masked & (word_action < 0.8)] = self.tokenizer.mask_token_id
        randomized = masked & (word_action >= 0.8) & (word_action < 0.9)
        inputs[randomized] = self.random_ids[torch.randint(len(self.random_ids), (int(randomized.sum()),))]
        return {"input_ids": inputs, "attention_mask": attention_mask.long(), "labels": labels}


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

# What a resumed pre-training run must share with its checkpoint.
RESUME_MUST_MATCH = ("config_name", "config_overrides", "model_name_or_path", "tokenizer_name", "text_sha256",
                     "max_seq_length", "mlm_probability", "seed", "learning_rate", "per_device_train_batch_size",
                     "gradient_accumulation_steps", "world_size")


def parse_args(argv: Sequence[str] | None = None):
    """``pretrain_mlm.py [CONFIG.json] [--flag value ...]``: flags override the config file."""
    return parse_script_args((ModelArguments, DataArguments, TrainingArguments), argv)


def build_encoder(model_args: ModelArguments, tokenizer, max_seq_length: int):
    """A masked-LM encoder: continued from a checkpoint, or the architecture with random weights."""
    hub_kwargs = {"trust_remote_code": model_args.trust_remote_code}
    if model_args.model_name_or_path:
        return AutoModelForMaskedLM.from_pretrained(model_args.model_name_or_path, **hub_kwargs)
    config = AutoConfig.from_pretrained(model_args.config_name, **hub_kwargs)
    config.update(parse_config_overrides(model_args.config_overrides))
    config.vocab_size, config.pad_token_id = len(tokenizer), tokenizer.pad_token_id
    if getattr(config, "max_position_embeddings", max_seq_length) < max_seq_length:
        raise UsageError(f"--max_seq_length {max_seq_length} is more than the encoder's "
                         f"{config.max_position_embeddings} positions")
    return AutoModelForMaskedLM.from_config(config)


def write_model_card(output_dir: Path, record: dict[str, Any], training_args: TrainingArguments,
                     model_type: str) -> Path:
    """README.md of the encoder: what it is, what it saw (counts, no text or paths), how to fine-tune it."""
    sources = ", ".join(f"{source['documents']:,} documents of a prepared dataset ({'+'.join(source['splits'])})"
                        if "dataset_path" in source else f"{source['documents']:,} unlabelled notes"
                        for source in record["sources"])
    vocabulary = record["vocabulary"]
    corpus_note = ("**The vocabulary was learned from the pre-training notes, so its entries are words of that "
                   "text**: share this model only where the notes' terms allow it.\n\n"
                   if record["vocabulary_from_corpus"] else "")
    last = record.get("last_logged_loss")
    card = f"""---
library_name: transformers
tags:
- fill-mask
- clinical
- self-pretraining
pipeline_tag: fill-mask
---

# Encoder pre-trained with pretrain_mlm.py (masked language modelling from scratch)

A `{model_type}`-architecture encoder pre-trained on {sources}: {record["tokens"]:,} tokens
in blocks of {record["max_seq_length"]}, {record["epochs"]:.1f} epochs, whole-word masking. Vocabulary:
{vocabulary["vocabulary_size"]:,} WordPiece entries, {vocabulary["pieces_per_word"]} pieces per word.
{corpus_note}Masked-LM loss: {record["mean_train_loss"]:.2f} on average over the run{f", {last:.2f} at the end" if last is not None else ""};
a predictor that ignores context scores {record["context_free_loss"]:.2f}. Text SHA-256 `{record["text_sha256"]}` (the
text itself is not recorded). Seed {training_args.seed}, learning rate {training_args.learning_rate}.

Fine-tune it for entity recognition (CRF head; `--use_crf false` for a linear head):

```bash
accelerate launch run_ner_crf.py --model_name_or_path <this model> --dataset_path data/n2c2 \\
    --output_dir runs/self_pretrained_crf --do_train --do_eval --do_predict
```
"""
    path = output_dir / "README.md"
    path.write_text(card, encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    model_args, data_args, training_args = parse_args(argv)
    # The output folder is never where the text is, and one command writes it at a time.
    inputs = {"--dataset_paths": data_args.dataset_paths, "--notes_dirs": data_args.notes_dirs}
    with output_folder_lock(training_args, "pretrain_mlm.py", inputs):
        return run(model_args, data_args, training_args)


def run(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments) -> dict[str, Any]:
    # We push ourselves, with an allow-list: the Trainer would upload the whole output_dir, checkpoints included.
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    setup_logging(training_args, logger)
    output_dir = Path(training_args.output_dir)
    if not training_args.do_train:
        raise UsageError("pre-training trains: pass --do_train")
    corpus_vocabulary = not (model_args.tokenizer_name or model_args.model_name_or_path) or any(
        vocabulary_from_corpus(name) for name in (model_args.tokenizer_name, model_args.model_name_or_path))
    check_vocabulary_upload(push_to_hub, corpus_vocabulary, model_args.push_corpus_vocabulary,
                            "learned here from the pre-training text, or in the tokenizer given")
    texts, sources = gather_texts(data_args)  # one line for a bad source, before anything slow
    resume_checkpoint = prepare_output_dir(output_dir, training_args, data_args.overwrite_output_dir)
    set_seed(training_args.seed)

    # Text -> sentences -> words; the vocabulary from those words (or the one given).
    started = time.perf_counter()
    sentences = text_sentences(texts)
    text_sha256 = texts_digest(texts)
    if model_args.model_name_or_path or model_args.tokenizer_name or resume_checkpoint:
        from windows import load_tokenizer

        tokenizer = load_tokenizer(resume_checkpoint or model_args.tokenizer_name or model_args.model_name_or_path)
    else:
        tokenizer = train_subword_tokenizer(sentences, model_args.tokenizer_vocab_size,
                                            model_args.tokenizer_min_frequency, model_args.tokenizer_lowercase,
                                            model_max_length=data_args.max_seq_length)
    vocabulary = vocabulary_report(tokenizer, sentences)
    logger.info(f"Pre-training text: {len(texts):,} documents, {len(sentences):,} sentences, "
                f"{vocabulary['words']:,} words; vocabulary {vocabulary['vocabulary_size']:,} pieces, "
                f"{vocabulary['pieces_per_word']} pieces per word")

    # Blocks of packed sentences.
    from datasets import Dataset

    blocks = pack_blocks(sentences, tokenizer, data_args.max_seq_length)
    lengths = [len(ids) for ids in blocks["input_ids"]]
    train_dataset = Dataset.from_dict(blocks)
    prepare_seconds = time.perf_counter() - started
    share = padding_share(lengths, training_args.per_device_train_batch_size)
    baseline_loss = context_free_loss(blocks, tokenizer.all_special_ids)
    logger.info(f"{len(lengths):,} blocks of at most {data_args.max_seq_length} tokens ({sum(lengths):,} tokens; "
                f"{share:.2%} of batch positions would be padding); a predictor that ignores context "
                f"scores a masked-LM loss of {baseline_loss:.2f}")

    model = build_encoder(model_args, tokenizer, data_args.max_seq_length)
    tokenizer.model_max_length = getattr(model.config, "max_position_embeddings", data_args.max_seq_length)
    run_args = {**{key: getattr(model_args, key) for key in ("config_name", "config_overrides", "model_name_or_path",
                                                               "tokenizer_name")},
                "text_sha256": text_sha256, "max_seq_length": data_args.max_seq_length,
                "mlm_probability": data_args.mlm_probability,
                **{key: getattr(training_args, key) for key in ("seed", "learning_rate", "per_device_train_batch_size",
                                                                  "gradient_accumulation_steps", "world_size")}}
    if resume_checkpoint is not None:
        check_resume_matches(resume_checkpoint, run_args, RESUME_MUST_MATCH)

    training_args.remove_unused_columns = False  # word_ids feed the collator, not the model
    trainer = Trainer(model=model, args=training_args, train_dataset=train_dataset, processing_class=tokenizer,
                      data_collator=WholeWordMaskCollator(tokenizer, data_args.mlm_probability),
                      callbacks=[RecordRunArguments(run_args)])
    started = time.perf_counter()
    train_result = trainer.train(resume_from_checkpoint=resume_checkpoint)
    train_seconds = time.perf_counter() - started
    save_final_model(trainer, output_dir)
    epochs_run = trainer.state.epoch - (json.loads((Path(resume_checkpoint) / "trainer_state.json").read_text())
                                        ["epoch"] if resume_checkpoint else 0.0)
    metrics = dict(train_result.metrics)
    metrics.update(train_tokens_per_second=round(sum(lengths) * epochs_run / train_seconds, 1),
                   train_epochs_run=round(epochs_run, 4), train_wall_seconds=round(train_seconds, 2),
                   prepare_seconds=round(prepare_seconds, 2), padding_share=share)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()

    if trainer.is_world_process_zero():
        record = {
            "sources": sources,
            "text_sha256": text_sha256,
            "documents": len(texts),
            "sentences": len(sentences),
            "words": vocabulary["words"],
            "tokens": sum(lengths),
            "blocks": len(lengths),
            "max_seq_length": data_args.max_seq_length,
            "padding_share": share,
            "vocabulary": vocabulary,
            "vocabulary_learned_from_text": not (model_args.tokenizer_name or model_args.model_name_or_path),
            "vocabulary_from_corpus": corpus_vocabulary,
            "train_tokens_per_second": metrics["train_tokens_per_second"],
            "train_wall_seconds": metrics["train_wall_seconds"],
            "prepare_seconds": metrics["prepare_seconds"],
            "epochs": round(epochs_run, 4),
            # The Trainer's train_loss is the mean over the run; the last logged loss is where it ended.
            "mean_train_loss": metrics.get("train_loss"),
            "last_logged_loss": next((h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), None),
            "context_free_loss": baseline_loss,
        }
        write_json_atomically(output_dir / PRETRAINING_DATA_FILE, record)
        write_json_atomically(output_dir / RUN_INFO_FILE, {
            "model_label": f"{Path(model_args.config_name).stem}-MLM",
            "pretrained_with": "pretrain_mlm.py",
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "seed": training_args.seed,
            "vocabulary_from_corpus": corpus_vocabulary,
        })
        write_model_card(output_dir, record, training_args, model.config.model_type)
        if push_to_hub:
            repo_id = training_args.hub_model_id or output_dir.name
            push_model_to_hub(output_dir, repo_id, training_args.hub_token, private=training_args.hub_private_repo,
                              script="pretrain_mlm.py")
            logger.info(f"Pushed {', '.join(hub_upload_files(output_dir))} to {repo_id}")
        print(f"\nEncoder pre-trained on {len(texts):,} documents ({sum(lengths) * epochs_run:,.0f} tokens, "
              f"{metrics['train_tokens_per_second']:,.0f} tokens/s, {share:.1%} padding) -> {output_dir}/\n"
              + (f"Masked-LM loss at the end {record['last_logged_loss']:.2f} (a predictor that ignores context: "
                 f"{baseline_loss:.2f})\n" if record["last_logged_loss"] is not None else "") +
              f"Fine-tune it: run_ner_crf.py --model_name_or_path {output_dir} --dataset_path ...", flush=True)
    return {**metrics, "pretraining_data": str(output_dir / PRETRAINING_DATA_FILE)}


if __name__ == "__main__":
    main_with_usage_errors(main, "pretrain_mlm.py")
