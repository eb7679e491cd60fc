#!/usr/bin/env python
"""Pre-train an encoder from scratch on your own notes (masked language modelling), for run_ner_crf.py.

In the style of transformers' ``examples/pytorch/language-modeling/run_mlm.py``:

    python pretrain_mlm.py --dataset_path data/n2c2 --output_dir runs/self_pretrained --do_train \\
        --config_overrides "dim=256,n_layers=4,n_heads=4,hidden_dim=1024" --num_train_epochs 10
    python run_ner_crf.py --model_name_or_path runs/self_pretrained --dataset_path data/n2c2 \\
        --output_dir runs/self_pretrained_crf --do_train --do_eval --do_predict

Between a pre-trained encoder trained on outside text and a Transformer trained from scratch (the
paper's two answers) lies a third: an encoder pre-trained on the task's own text ("self-pretraining").
The text is (a) the training documents of prepared datasets (``--dataset_path``: prepare_n2c2.py
output; only the splits named in ``--text_splits``, never ``test``) and/or (b) folders of unlabelled
``.txt`` notes (``--notes_dirs``); a note whose text is a test document of a given dataset is refused.
A ``.txt`` file that is not text (not UTF-8, or holding NUL bytes) or not a regular file (a FIFO, a folder
named ``*.txt``) is skipped with a warning naming it and the reason, and counted in ``pretraining_data.json``.
The text is never held whole: it is read, hashed and split in bounded pieces at each pass over it (a note of
one 50 MB line included), with a progress bar; see :class:`PretrainingText`.

- Architecture: the paper's ``distilbert-base-cased`` config (``--config_name``, ``--config_overrides``),
  random weights, and a WordPiece vocabulary learned from the pre-training words (``subwords.py``:
  deterministic; or ``--tokenizer_name``).
- Input: sentences and words as everywhere in the project (``tagging.py``), as one stream packed into
  blocks of ``--max_seq_length`` tokens (only the last block is short; the padding share is reported).
- Whole-word masking: ``--mlm_probability`` of the words are chosen, and every piece of a chosen word is
  masked (80% ``[MASK]``, 10% a random piece, 10% kept), BERT's recipe at word level. (transformers'
  ``DataCollatorForLanguageModeling(whole_word_mask=True)`` finds words from character offsets, which
  packed blocks do not keep, and drops the random replacement.)
- Runs follow run_folders.py: an output folder that is not empty needs ``--overwrite`` or
  ``--resume_from_checkpoint``; progress bar and ETA from the Trainer; multi-process with accelerate.
- Outputs: the encoder (``AutoModelForMaskedLM``) and tokenizer, which ``run_ner_crf.py
  --model_name_or_path`` fine-tunes with a CRF or linear head; ``pretraining_data.json`` records what text
  was seen (sources, counts and a SHA-256 of the text, never the text) and the throughput;
  the tokenizer's ``tokenizer_config.json`` (``"vocabulary_from_corpus": true``, which travels with it) and
  ``run_info.json`` mark the vocabulary as corpus-derived; ``README.md`` is a model card (counts, no text).
- ``--push_to_hub`` uploads the allow-listed files only (model, tokenizer, config, card: run_folders.py's
  ``HUB_UPLOAD_PATTERNS``; never checkpoints or logs), and only with ``--push_corpus_vocabulary`` when the
  vocabulary was learned from the notes (its entries are words of them).
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
    SHARED_FLAG_HELP, DataError, answer_early, parse_command, parse_config_overrides, run_main,
)
from clinical_ner_crf.console import print_outputs
from clinical_ner_crf.files import PRETRAINING_DATA_FILE, RUN_INFO_FILE, write_json_atomically
from clinical_ner_crf.model_sources import check_model_arguments
from clinical_ner_crf.subwords import PAPER_VOCABULARY_SIZE

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
    trust_remote_code: bool = field(default=False, metadata={"help": SHARED_FLAG_HELP["trust_remote_code"]})
    push_corpus_vocabulary: bool = field(default=False, metadata={
        "help": "With --push_to_hub and a vocabulary learned from the notes: acknowledge that its words are corpus "
                "text and upload it (check your data's terms first)."})


@dataclass
class DataArguments:
    """The unlabelled text, and how it becomes model inputs."""

    dataset_path: list[str] = field(default_factory=list, metadata={
        "help": "prepare_n2c2.py output folders (one or more): the text of their documents in --text_splits."})
    text_splits: list[str] = field(default_factory=lambda: ["train"], metadata={
        "help": "Which documents of --dataset_path to read (train, validation; test is refused)."})
    notes_dirs: list[str] = field(default_factory=list, metadata={
        "help": "Folders of unlabelled .txt notes (UTF-8; not recursive)."})
    max_seq_length: int = field(default=128, metadata={
        "help": "Tokens per packed block, special tokens included (at most the encoder's positions)."})
    mlm_probability: float = field(default=0.15, metadata={"help": "Share of words masked in each block."})
    overwrite: bool = field(default=False, metadata={
        "help": SHARED_FLAG_HELP["overwrite"] + " Here: start afresh; --resume_from_checkpoint true continues instead."})


SCRIPT = "pretrain_mlm.py"
DESCRIPTION = __doc__.split("\n\n")[0]
ARGUMENT_TYPES = (ModelArguments, DataArguments)  # and transformers' TrainingArguments

if __name__ == "__main__":  # --help and the usage errors before the heavy imports: torch alone takes seconds
    answer_early(SCRIPT, ARGUMENT_TYPES, DESCRIPTION, training_flags=True,
                 check=partial(check_model_arguments, local_only=True))

from transformers import AutoConfig, AutoModelForMaskedLM, Trainer, TrainingArguments, set_seed  # noqa: E402

from clinical_ner_crf.hub_upload import check_vocabulary_upload, hub_upload_files, push_model_to_hub  # noqa: E402
from clinical_ner_crf.mlm_blocks import (  # noqa: E402
    WholeWordMaskCollator, blocks_dataset, iter_blocks, padding_share, piece_entropy,
)
from clinical_ner_crf.model_cards import write_pretraining_model_card  # noqa: E402
from clinical_ner_crf.pretraining_text import gather_texts  # noqa: E402
from clinical_ner_crf.run_folders import (  # noqa: E402
    RecordRunArguments, UsageError, check_resume_matches, output_folder_lock, prepare_output_dir, quiet_progress,
    save_final_model, setup_logging,
)
from clinical_ner_crf.subwords import train_subword_tokenizer, vocabulary_figures  # noqa: E402


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

# What a resumed pre-training run must share with its checkpoint.
RESUME_MUST_MATCH = ("config_name", "config_overrides", "model_name_or_path", "tokenizer_name", "text_sha256",
                     "max_seq_length", "mlm_probability", "seed", "learning_rate", "per_device_train_batch_size",
                     "gradient_accumulation_steps", "world_size")


def parse_args(argv: Sequence[str] | None = None):
    """``pretrain_mlm.py [CONFIG.json] [--flag value ...]``: flags override the config file."""
    return parse_command(SCRIPT, (*ARGUMENT_TYPES, TrainingArguments), argv, DESCRIPTION)


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


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    model_args, data_args, training_args = parse_args(argv)
    # Every model flag is gettable (a folder, the local cache, or the Hub within seconds) before anything is made.
    check_model_arguments(model_args)
    # The output folder is never where the text is, and one command writes it at a time.
    inputs = {"--dataset_path": data_args.dataset_path, "--notes_dirs": data_args.notes_dirs}
    with output_folder_lock(training_args, "pretrain_mlm.py", inputs):
        return run(model_args, data_args, training_args)


def run(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments) -> dict[str, Any]:
    # We push ourselves, with an allow-list: the Trainer would upload the whole output_dir, checkpoints included.
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    verbose = setup_logging(training_args, logger)
    output_dir = Path(training_args.output_dir)
    if not training_args.do_train:
        raise UsageError("pre-training trains: pass --do_train")
    # The tokenizer trained with (and uploaded): learned here from the text, or the one given, whose
    # tokenizer_config.json says whether its vocabulary was learned from notes.
    corpus_vocabulary = check_vocabulary_upload(
        push_to_hub, acknowledged=model_args.push_corpus_vocabulary,
        tokenizer=model_args.tokenizer_name or model_args.model_name_or_path,
        learned_here=not (model_args.tokenizer_name or model_args.model_name_or_path))
    # One line for a bad source, before anything slow; the text is checked, counted and hashed here, read again below.
    text, sources = gather_texts(dataset_paths=data_args.dataset_path, notes_dirs=data_args.notes_dirs,
                                 text_splits=data_args.text_splits, show_progress=not training_args.disable_tqdm)
    resume_checkpoint = prepare_output_dir(output_dir, training_args, data_args.overwrite)
    set_seed(training_args.seed)

    # Text -> sentences -> words; the vocabulary from those words (or the one given).
    started = time.perf_counter()
    text_sha256 = text.digest.hexdigest()  # texts_digest of the documents, computed as they were read
    if model_args.model_name_or_path or model_args.tokenizer_name or resume_checkpoint:
        from clinical_ner_crf.windows import load_tokenizer

        tokenizer = load_tokenizer(resume_checkpoint or model_args.tokenizer_name or model_args.model_name_or_path)
    else:
        try:
            tokenizer = train_subword_tokenizer(text.sentence_pass("learning the vocabulary"),
                                                model_args.tokenizer_vocab_size,
                                                model_args.tokenizer_min_frequency, model_args.tokenizer_lowercase,
                                                model_max_length=data_args.max_seq_length)
        except DataError:  # a note that changed while it was read again: as it says
            raise
        except ValueError as error:  # a size too small for the base alphabet, no words: the user's arguments
            raise UsageError(f"--tokenizer_vocab_size: {error}") from None
    # Again on the tokenizer object (a Hub tokenizer unreadable before; a resumed checkpoint's), before training.
    corpus_vocabulary = check_vocabulary_upload(
        push_to_hub, acknowledged=model_args.push_corpus_vocabulary, tokenizer=tokenizer,
        learned_here=not (model_args.tokenizer_name or model_args.model_name_or_path))

    # Blocks of packed sentences, built a part at a time (never a list of every block); the vocabulary's figures
    # (subwords.vocabulary_report's) counted from the same encodings, in the same pass over the text.
    counts = {"words": 0, "pieces": 0, "unknown": 0}
    train_dataset, lengths, piece_counts = blocks_dataset(
        iter_blocks(text.sentence_pass("tokenizing and packing blocks"), tokenizer, data_args.max_seq_length,
                    vocabulary_counts=counts),
        tokenizer.all_special_ids)
    vocabulary = vocabulary_figures(len(tokenizer), counts["words"], counts["pieces"], counts["unknown"])
    logger.info(f"Pre-training text: {text.documents:,} documents, {text.sentences:,} sentences, "
                f"{vocabulary['words']:,} words; vocabulary {vocabulary['vocabulary_size']:,} pieces, "
                f"{vocabulary['pieces_per_word']} pieces per word")
    prepare_seconds = time.perf_counter() - started
    share = padding_share(lengths, training_args.per_device_train_batch_size)
    baseline_loss = piece_entropy(piece_counts)  # context_free_loss of the blocks
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
    quiet_progress(trainer, verbose)
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
    if verbose:  # the results files hold them; the last lines say where
        trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()

    if trainer.is_world_process_zero():
        record = {
            "sources": sources,
            "text_sha256": text_sha256,
            "documents": text.documents,
            # .txt notes that were not text or not regular files: skipped, named in a warning, counted here by reason.
            "notes_skipped": sum(text.skipped.values()),
            "notes_skipped_by_reason": dict(sorted(text.skipped.items())),
            "sentences": text.sentences,
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
        write_pretraining_model_card(output_dir, record, training_args, model.config.model_type)
        if push_to_hub:
            repo_id = training_args.hub_model_id or output_dir.name
            push_model_to_hub(output_dir, repo_id, training_args.hub_token, private=training_args.hub_private_repo,
                              script="pretrain_mlm.py",
                              corpus_vocabulary_acknowledged=model_args.push_corpus_vocabulary)
            logger.info(f"Pushed {', '.join(hub_upload_files(output_dir))} to {repo_id}")
        loss = (f"masked-LM loss at the end {record['last_logged_loss']:.2f} (context-free: {baseline_loss:.2f})"
                if record["last_logged_loss"] is not None else "")
        print_outputs(f"{SCRIPT} wrote:", [
            ("encoder", output_dir, f"{text.documents:,} documents, {sum(lengths) * epochs_run:,.0f} tokens seen, "
                                    f"{share:.1%} padding; {loss}".rstrip("; ")),
            ("model card", output_dir / "README.md", f"fine-tune it: run_ner_crf.py --model_name_or_path {output_dir}"),
            ("what text was seen", output_dir / PRETRAINING_DATA_FILE, "sources, counts and a hash, never the text")])
    return {**metrics, "pretraining_data": str(output_dir / PRETRAINING_DATA_FILE)}


if __name__ == "__main__":
    run_main(main, SCRIPT)
