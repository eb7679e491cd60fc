#!/usr/bin/env python
"""Issue 15: the from-scratch TransformerCRF with a fair vocabulary, self-pretrained, against the others.

    .venv/bin/python bench/self_pretraining.py --list                # what is done, what is pending
    nohup nice -n 10 .venv/bin/python bench/self_pretraining.py > bench/cache/self_pretraining.log 2>&1 &
    .venv/bin/python bench/self_pretraining.py --smoke                # a few minutes, synthetic data

Resumable: every finished step writes a small JSON under ``bench/results/`` and is skipped next time.
In order (partial results are the most useful first):

1. Vocabularies (``vocabulary/``): for each corpus, the deterministic WordPiece of ``subwords.py`` at the
   default size against the committed rows' vocabulary (issue 7's builder: every character plus whole
   words, 8,000 entries; kept here as the baseline), measured on the test split: size reached, pieces
   per word, unknown-token rate; and the same vocabulary rebuilt in a second process (identical or not).
2. Pre-training (``pretraining/``) of the benchmark's TransformerCRF encoder (bench/quality.py's
   architecture) with ``pretrain_mlm.py`` on the corpus's training documents only (no outside text, no
   test text), within ``--budget_minutes`` (30): a 20-step calibration measures tokens/s, and the run
   gets the steps that fit. A second encoder ("plus") is pre-trained on more text of the same kind: the
   training splits of the other public corpora too (never a test split).
3. Fine-tuning rows (``quality/``, as bench/quality.py writes them): ``transformer-crf-wp`` (from scratch,
   new vocabulary) and ``transformer-crf-self`` (from the pre-trained encoder), seeds 42, 43, 44 on PHEE
   and NCBI-disease, 42 on BC2GM; ``transformer-crf-self-plus`` with seed 42 on each corpus.
4. Learning curves: 0.1, 0.25 and 0.5 of the training documents for MiniLM-CRF, TransformerCRF (WordPiece)
   and TransformerCRF (self-pretrained), seeds 42-44, PHEE and NCBI-disease (1.0 is step 3). The
   self-pretrained encoder is the one pre-trained on all the training text: a hospital has its unlabelled
   notes even when few are annotated.
5. Diagnostic, one variable changed: PHEE's encoder pre-trained for twice the budget ("long": same text,
   same recipe, twice the steps), then ``transformer-crf-self-long`` seed 42: what more pre-training buys.

bench/report.py turns the results into the README's self-pretraining section.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Sequence


sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from clinical_ner_crf.mlm_blocks import context_free_loss, pack_blocks  # noqa: E402
from clinical_ner_crf.pretraining_text import gather_texts  # noqa: E402
import quality  # noqa: E402

prepare_n2c2 = common.command("prepare_n2c2")  # the command, called in-process as from its command line

VOCABULARY_DIR = common.RESULTS_DIR / "vocabulary"
PRETRAINING_DIR = common.RESULTS_DIR / "pretraining"
PRETRAINED_CACHE = common.CACHE_DIR / "pretrained"
CORPORA = ("phee", "ncbi", "bc2gm")
MAIN_CORPORA = ("phee", "ncbi")  # 3 seeds and learning curves; BC2GM one seed
SEEDS = (42, 43, 44)
FRACTIONS = (0.1, 0.25, 0.5)
# Encoder variants: "" the training text; "plus" the training splits of every corpus; "long" the training text
# for LONG_BUDGET_FACTOR times the budget (a diagnostic, on LONG_CORPORA).
VARIANTS = ("", "plus", "long")
LONG_BUDGET_FACTOR = 2.0
LONG_CORPORA = ("phee",)
# Pre-training recipe (the encoder is quality.TRANSFORMER_OVERRIDES: 4 layers, 256 wide).
PRETRAIN_FLAGS = ["--config_overrides", quality.TRANSFORMER_OVERRIDES, "--max_seq_length", "128",
                  "--per_device_train_batch_size", "32", "--learning_rate", "5e-4", "--warmup_steps", "0.05",
                  "--weight_decay", "0.01", "--lr_scheduler_type", "linear", "--save_strategy", "no",
                  "--logging_steps", "100", "--use_cpu", "--report_to", "none", "--disable_tqdm", "true",
                  "--dataloader_num_workers", "0", "--seed", "42"]
SMOKE_PRETRAIN_FLAGS = ["--config_overrides", "dim=64,n_layers=1,n_heads=2,hidden_dim=128,max_position_embeddings=512",
                        *PRETRAIN_FLAGS[2:]]


# ---------------------------------------------------------------------------
# 1. Vocabularies
# ---------------------------------------------------------------------------


def word_level_vocabulary(word_sequences, vocab_size: int = 8000, min_frequency: int = 2):
    """The committed rows' vocabulary (issue 7's builder, the baseline): every character (as a word start and
    as a ``##`` continuation) and then whole words by frequency, down to ``min_frequency``."""
    from tokenizers import pre_tokenizers

    from clinical_ner_crf.subwords import SPECIAL_TOKENS, _normalizer, wordpiece_tokenizer

    normalizer, pre_tokenizer = _normalizer(False), pre_tokenizers.BertPreTokenizer()
    counts: Counter = Counter()
    for words in word_sequences:
        for word in words:
            counts.update(piece for piece, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(word)))
    characters = sorted({character for word in counts for character in word})
    vocab = list(SPECIAL_TOKENS) + characters + [f"##{character}" for character in characters]
    for word, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if len(vocab) >= vocab_size or count < min_frequency:
            break
        if len(word) > 1:
            vocab.append(word)
    return wordpiece_tokenizer(vocab)


def _vocabulary_digest(dataset_path: Path) -> str:
    """The WordPiece vocabulary of a corpus built in a fresh process: its tokenizer.json's SHA-256."""
    code = ("import hashlib, sys\n"
            f"sys.path.insert(0, {str(common.REPO_DIR)!r})\n"
            "from datasets import load_from_disk\n"
            "from clinical_ner_crf.subwords import train_subword_tokenizer\n"
            "words = load_from_disk(sys.argv[1])['train']['tokens']\n"
            "print(hashlib.sha256(train_subword_tokenizer(words).backend_tokenizer.to_str().encode()).hexdigest())\n")
    result = subprocess.run([sys.executable, "-c", code, str(dataset_path)], capture_output=True, text=True, check=True)
    return result.stdout.strip().splitlines()[-1]


def measure_vocabularies(corpus: str, dataset_path: Path) -> dict[str, Any]:
    from datasets import load_from_disk

    from clinical_ner_crf.subwords import train_subword_tokenizer, vocabulary_report

    data = load_from_disk(str(dataset_path))
    train, test = data["train"]["tokens"], data["test"]["tokens"]
    started = time.perf_counter()
    fair = train_subword_tokenizer(train)
    seconds = time.perf_counter() - started
    digests = {_vocabulary_digest(dataset_path) for _ in range(2)}
    here = hashlib.sha256(fair.backend_tokenizer.to_str().encode()).hexdigest()
    return {
        "corpus": corpus,
        "wordpiece": {**vocabulary_report(fair, test), "asked": 28_996, "build_seconds": round(seconds, 2)},
        "word_level_baseline": {**vocabulary_report(word_level_vocabulary(train), test), "asked": 8000},
        "identical_in_three_processes": len(digests | {here}) == 1,
        "measured_on": "test split words",
    }


# ---------------------------------------------------------------------------
# 2. Pre-training within a time budget
# ---------------------------------------------------------------------------


def pretraining_key(corpus: str, variant: str = "") -> str:
    return corpus + (f"__{variant}" if variant else "")


def pretrained_dir(corpus: str, variant: str = "", smoke: bool = False) -> Path:
    if smoke:
        return common.smoke_dir() / "smoke_pretrained" / corpus
    return PRETRAINED_CACHE / pretraining_key(corpus, variant)


def system_variant(system: str) -> str:
    """The encoder variant a fine-tuning system starts from: transformer-crf-self-plus -> "plus"."""
    return next((v for v in VARIANTS if v and system.endswith(f"-{v}")), "")


def record_variant(record: dict[str, Any]) -> str:
    return record.get("variant", "plus" if record.get("plus") else "")


def pretrain(corpus: str, dataset_paths: Sequence[Path], budget_minutes: float, variant: str = "",
             smoke: bool = False) -> dict[str, Any]:
    """pretrain_mlm.py on the training documents of ``dataset_paths``, given the steps that fit the budget."""
    output_dir = pretrained_dir(corpus, variant, smoke)
    flags = SMOKE_PRETRAIN_FLAGS if smoke else PRETRAIN_FLAGS
    base = [sys.executable, str(common.REPO_DIR / "pretrain_mlm.py"), "--dataset_path", *map(str, dataset_paths),
            "--do_train", "--overwrite", *flags]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    log = (common.smoke_dir() if smoke else common.CACHE_DIR) / f"pretrain_{output_dir.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)

    def run(max_steps: int, folder: Path) -> dict[str, Any]:
        with open(log, "a") as handle:
            subprocess.run([*base, "--output_dir", str(folder), "--max_steps", str(max_steps)], cwd=common.REPO_DIR,
                           env=env, stdout=handle, stderr=subprocess.STDOUT, check=True)
        return common.read_json(folder / "pretraining_data.json")

    calibration = run(20, output_dir.with_name(output_dir.name + "__calibration"))
    tokens_per_step = 32 * 128
    steps = 20 if smoke else max(20, math.floor(budget_minutes * 60 * 0.9 * calibration["train_tokens_per_second"]
                                                / tokens_per_step))
    started = time.perf_counter()
    record = run(steps, output_dir)
    return {
        "key": pretraining_key(corpus, variant), "corpus": corpus, "variant": variant, "plus": variant == "plus",
        "smoke": smoke,
        "text_sources": [Path(p).name for p in dataset_paths], "text_splits": ["train"],
        "budget_minutes": budget_minutes, "steps": steps,
        "calibration_tokens_per_second": calibration["train_tokens_per_second"],
        "wall_seconds": round(time.perf_counter() - started, 1),
        **{key: record[key] for key in ("documents", "sentences", "words", "tokens", "blocks", "padding_share",
                                         "vocabulary", "train_tokens_per_second", "train_wall_seconds", "epochs",
                                         "mean_train_loss", "last_logged_loss", "context_free_loss", "text_sha256")},
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def add_losses(record: dict[str, Any], dataset_paths: Sequence[Path]) -> dict[str, Any]:
    """A record from before pretrain_mlm.py kept its losses apart, completed from its cached encoder: the mean
    loss (its old ``final_train_loss`` was the Trainer's mean), the last logged loss, and the context-free loss
    on the same text (checked by its hash) with the encoder's own tokenizer."""
    from clinical_ner_crf.windows import load_tokenizer

    folder = pretrained_dir(record["corpus"], record_variant(record))
    text, _ = gather_texts(dataset_paths=[str(p) for p in dataset_paths])
    if text.digest.hexdigest() != record["text_sha256"]:  # texts_digest of the documents read
        raise RuntimeError(f"{record['key']}: the corpora changed since pre-training; pre-train again")
    tokenizer = load_tokenizer(str(folder))
    blocks = pack_blocks(text.sentence_pass("packing blocks"), tokenizer, 128)
    history = common.read_json(folder / "trainer_state.json")["log_history"]
    mean = record.get("mean_train_loss", record.get("final_train_loss"))
    record = {key: value for key, value in record.items() if key != "final_train_loss"}
    return {**record, "mean_train_loss": mean,
            "last_logged_loss": next(h["loss"] for h in reversed(history) if "loss" in h),
            "context_free_loss": context_free_loss(blocks, tokenizer.all_special_ids)}


# ---------------------------------------------------------------------------
# The queue
# ---------------------------------------------------------------------------


def steps(corpora: Sequence[str]) -> Iterator[tuple]:
    """("vocabulary", corpus) / ("pretrain", corpus, variant) / ("run", corpus, system, seed, fraction), in order."""
    for corpus in corpora:
        yield "vocabulary", corpus
    for corpus in corpora:
        yield "pretrain", corpus, ""
    main = [c for c in MAIN_CORPORA if c in corpora]
    for seed in SEEDS:
        for corpus in corpora:
            if seed != SEEDS[0] and corpus not in main:
                continue
            for system in ("transformer-crf-wp", "transformer-crf-self"):
                yield "run", corpus, system, seed, 1.0
    for corpus in corpora:
        yield "pretrain", corpus, "plus"
        yield "run", corpus, "transformer-crf-self-plus", SEEDS[0], 1.0
    for seed in SEEDS:
        for corpus in main:
            for fraction in FRACTIONS:
                for system in ("minilm-crf", "transformer-crf-wp", "transformer-crf-self"):
                    yield "run", corpus, system, seed, fraction
    for corpus in corpora:
        if corpus in LONG_CORPORA:
            yield "pretrain", corpus, "long"
            yield "run", corpus, "transformer-crf-self-long", SEEDS[0], 1.0


def result_path(step: tuple) -> Path:
    if step[0] == "vocabulary":
        return VOCABULARY_DIR / f"{step[1]}.json"
    if step[0] == "pretrain":
        return PRETRAINING_DIR / f"{pretraining_key(step[1], step[2])}.json"
    _, corpus, system, seed, fraction = step
    return quality.QUALITY_DIR / f"{quality.run_key(corpus, system, seed, 'train', fraction)}.json"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    parser.add_argument("--budget_minutes", type=float, default=30.0, help="pre-training time per encoder")
    parser.add_argument("--list", action="store_true", help="print done/pending steps and exit")
    parser.add_argument("--max_steps", type=int, default=None, help="stop after this many new steps")
    parser.add_argument("--stop_at", default=None, help="UTC HH:MM: start no new step after it")
    parser.add_argument("--smoke", action="store_true",
                        help="synthetic data, tiny models, outputs under BENCH_SMOKE_DIR (default bench/cache/)")
    args = parser.parse_args(argv)

    if args.smoke:

        smoke = common.smoke_dir()
        data = smoke / "smoke_self"
        if not (data / "dataset_dict.json").is_file():
            prepare_n2c2.main(["--synthetic", "30", "--seed", "42", "--output_dir", str(data), "--overwrite"])
        record = pretrain("smoke", [data], budget_minutes=0.5, smoke=True)
        result = quality.run_one("smoke", "transformer-crf-self", 42, "train", 1.0, data, smoke=True,
                                 results_dir=smoke / "smoke_results", runs_dir=smoke / "smoke_runs",
                                 pretrained_dir=pretrained_dir("smoke", smoke=True))
        print(f"[self-pretraining] smoke: {record['tokens']} tokens pre-trained at {record['train_tokens_per_second']:.0f}"
              f" tokens/s ({record['padding_share']:.1%} padding); fine-tuned micro-F1 "
              f"{result[quality.STRICT_MICRO_F1]:.3f}", flush=True)
        return 0

    todo = list(steps(args.corpora))
    if args.list:
        done = 0
        for step in todo:
            exists = result_path(step).is_file()
            done += exists
            print(f"{'done' if exists else 'pending':8} {result_path(step).relative_to(common.RESULTS_DIR)}")
        print(f"{done} done, {len(todo) - done} pending")
        return 0
    datasets = {corpus: common.prepare_corpus(corpus) for corpus in args.corpora}
    for step in todo:  # records from before the losses were kept apart
        path = result_path(step)
        if step[0] == "pretrain" and path.is_file() and "context_free_loss" not in common.read_json(path):
            record = common.read_json(path)
            if (pretrained_dir(record["corpus"], record_variant(record)) / "trainer_state.json").is_file():
                plus = record_variant(record) == "plus"
                sources = [record["corpus"]] + ([c for c in CORPORA if c != record["corpus"]] if plus else [])
                common.write_json(path, add_losses(record, [common.prepare_corpus(c) for c in sources]))
                print(f"[self-pretraining] {path.name}: losses added", flush=True)
    new = 0
    for step in todo:
        path = result_path(step)
        if path.is_file():
            continue
        if args.max_steps is not None and new >= args.max_steps:
            break
        if args.stop_at and time.strftime("%H:%M", time.gmtime()) >= args.stop_at:
            print(f"[self-pretraining] stop time {args.stop_at} UTC reached", flush=True)
            break
        corpus = step[1]
        if datasets.get(corpus) is None:
            continue
        print(f"[self-pretraining] {time.strftime('%H:%M:%S', time.gmtime())} start {path.name}", flush=True)
        if step[0] == "vocabulary":
            common.write_json(path, measure_vocabularies(corpus, datasets[corpus]))
        elif step[0] == "pretrain":
            variant = step[2]
            sources = [datasets[corpus]]
            if variant == "plus":
                sources += [common.prepare_corpus(c) for c in CORPORA if c != corpus]
            budget = args.budget_minutes * (LONG_BUDGET_FACTOR if variant == "long" else 1.0)
            common.write_json(path, pretrain(corpus, [s for s in sources if s is not None], budget, variant))
        else:
            _, corpus, system, seed, fraction = step
            encoder = pretrained_dir(corpus, system_variant(system)) if "-self" in system else None
            if encoder is not None and not (encoder / "model.safetensors").is_file():
                print(f"[self-pretraining] {path.name}: pre-trained encoder missing, skipped", flush=True)
                continue
            quality.run_one(corpus, system, seed, "train", fraction, datasets[corpus], pretrained_dir=encoder)
        new += 1
        print(f"[self-pretraining] {time.strftime('%H:%M:%S', time.gmtime())} done {path.name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
