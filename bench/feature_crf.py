#!/usr/bin/env python
"""The peer system: a classic feature-based CRF (sklearn-crfsuite), the n2c2-2018-era standard.

    python bench/feature_crf.py                       # every corpus found, seed 42, 43, 44
    python bench/feature_crf.py --corpora phee --seeds 42
    python bench/feature_crf.py --dataset_path DIR --output result.json   # any prepare_n2c2.py output
    python bench/feature_crf.py --lowercase --seeds 42 --train_splits train   # case diagnostic

Features per word (Okazaki's crfsuite NER template, as in the n2c2-2018 CRF systems): the
lower-cased word, its 2- and 3-character prefixes and suffixes, word shape (``Xxxx``, ``dd``,
``x.x``) and its compressed form, is-upper / is-title / is-digit / has-digit / has-hyphen /
is-punctuation flags, length bucket, BOS / EOS, and the lower-cased word, shape and title/upper
flags of the words at offsets -2, -1, +1, +2. Training: L-BFGS, c1 = 0.1, c2 = 0.1, at most
``--max_iterations`` (100) iterations, all possible transitions. The model is trained on the
``train`` split (or ``train_downsampled`` with ``--train_split``) and scored on ``test`` with
``evaluate_ablations.entity_scores`` (strict, seqeval IOB2) — the project's one metric home.

Seeds: crfsuite's L-BFGS is deterministic (no random initialisation, no shuffling), so the
seeds 43 and 44 give the same model as 42; they are run anyway (``--seeds``) and the result
records ``deterministic: true`` with sd 0. Results: ``bench/results/quality/{corpus}__feature-crf__s{seed}__{split}__f1.json``
(numbers only, no corpus text), skipped when present unless ``--force``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (sets sys.path to the repository)
from evaluate_ablations import STRICT_MACRO_F1, STRICT_MICRO_F1, entity_scores, headline_metrics  # noqa: E402

SYSTEM = "feature-crf"


def word_shape(word: str) -> str:
    shape = re.sub(r"[A-Z]", "X", word)
    shape = re.sub(r"[a-z]", "x", shape)
    return re.sub(r"[0-9]", "d", shape)


def _short_shape(shape: str) -> str:
    return re.sub(r"(.)\1+", r"\1", shape)


def word_features(words: Sequence[str], index: int) -> dict[str, Any]:
    word = words[index]
    lower = word.lower()
    shape = word_shape(word)
    features: dict[str, Any] = {
        "bias": 1.0,
        "w": lower,
        "p2": lower[:2], "p3": lower[:3],
        "s2": lower[-2:], "s3": lower[-3:],
        "shape": shape if len(shape) <= 8 else _short_shape(shape),
        "sshape": _short_shape(shape),
        "upper": word.isupper(), "title": word.istitle(), "digit": word.isdigit(),
        "hasdigit": any(c.isdigit() for c in word), "hyphen": "-" in word,
        "punct": not any(c.isalnum() for c in word),
        "len": min(len(word), 8),
    }
    if index == 0:
        features["BOS"] = True
    if index == len(words) - 1:
        features["EOS"] = True
    for offset in (-2, -1, 1, 2):
        position = index + offset
        if 0 <= position < len(words):
            other = words[position]
            features[f"{offset}:w"] = other.lower()
            features[f"{offset}:sshape"] = _short_shape(word_shape(other))
            features[f"{offset}:title"] = other.istitle()
            features[f"{offset}:upper"] = other.isupper()
            if abs(offset) == 1:
                features[f"{offset}:s3"] = other.lower()[-3:]
                features[f"{offset}|w"] = f"{other.lower()}|{lower}" if offset < 0 else f"{lower}|{other.lower()}"
    return features


def sentence_features(words: Sequence[str], lowercase: bool = False) -> list[dict[str, Any]]:
    """Features of every word; ``lowercase`` first lower-cases the sentence, so that shape and the
    upper / title flags carry no case: the view of an uncased encoder (the case diagnostic)."""
    if lowercase:
        words = [word.lower() for word in words]
    return [word_features(words, index) for index in range(len(words))]


def load_split(dataset_path: Path, split: str) -> tuple[list[list[str]], list[list[str]], list[str]]:
    from datasets import load_from_disk

    dataset = load_from_disk(str(dataset_path))
    names = dataset[split].features["ner_tags"].feature.names
    words = [list(tokens) for tokens in dataset[split]["tokens"]]
    tags = [[names[i] for i in row] for row in dataset[split]["ner_tags"]]
    return words, tags, names


def train_and_score(dataset_path: Path, train_split: str = "train", seed: int = 42, max_iterations: int = 100,
                    c1: float = 0.1, c2: float = 0.1, lowercase: bool = False) -> dict[str, Any]:
    """Train the feature CRF on ``train_split`` and score strict entity P/R/F on ``test`` (numbers only).

    ``lowercase`` (diagnostic) lower-cases every word of both splits before feature extraction."""
    import psutil
    import sklearn_crfsuite

    process = psutil.Process()
    train_words, train_tags, _ = load_split(dataset_path, train_split)
    test_words, test_tags, _ = load_split(dataset_path, "test")
    started = time.perf_counter()
    x_train = [sentence_features(words, lowercase) for words in train_words]
    feature_seconds = time.perf_counter() - started
    crf = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=c1, c2=c2, max_iterations=max_iterations,
                               all_possible_transitions=True)
    started = time.perf_counter()
    crf.fit(x_train, train_tags)
    train_seconds = time.perf_counter() - started + feature_seconds
    rss_train = process.memory_info().rss / 2**20
    started = time.perf_counter()
    predictions = crf.predict([sentence_features(words, lowercase) for words in test_words])
    predict_seconds = time.perf_counter() - started
    strict = entity_scores(test_tags, predictions, mode="strict")
    lenient = entity_scores(test_tags, predictions, mode="lenient")
    num_train_words = sum(map(len, train_words))
    return {
        "system": SYSTEM,
        "seed": seed,
        "deterministic": True,  # L-BFGS from zero weights, no shuffling: the seed changes nothing
        "train_split": train_split,
        "train_fraction": 1.0,
        "num_train_sentences": len(train_words),
        "num_test_sentences": len(test_words),
        "train_seconds": round(train_seconds, 2),
        "train_words_per_second": round(num_train_words / train_seconds, 1),
        "predict_seconds": round(predict_seconds, 2),
        "test_sentences_per_second": round(len(test_words) / predict_seconds, 1),
        "peak_rss_mb": round(max(rss_train, process.memory_info().rss / 2**20), 1),
        "settings": {"algorithm": "lbfgs", "c1": c1, "c2": c2, "max_iterations": max_iterations,
                     "window": 2, "features": "word, affixes 2-3, shape, flags, +-2 window, bigrams +-1",
                     "lowercase": lowercase},
        **headline_metrics(strict, lenient),
        "per_type": {t: {k: row[k] for k in ("precision", "recall", "f1", "support")}
                     for t, row in strict["per_type"].items()},
    }


def result_path(corpus: str, seed: int, train_split: str, lowercase: bool = False) -> Path:
    if lowercase:  # a diagnostic, kept beside (not in) the quality table's results
        return common.RESULTS_DIR / "diagnostics" / f"{corpus}__{SYSTEM}__s{seed}__{train_split}__f1__lowercase.json"
    return common.RESULTS_DIR / "quality" / f"{corpus}__{SYSTEM}__s{seed}__{train_split}__f1.json"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", nargs="+", default=list(common.CORPORA), choices=list(common.CORPORA))
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--train_splits", nargs="+", default=["train", "train_downsampled"])
    parser.add_argument("--max_iterations", type=int, default=100)
    parser.add_argument("--dataset_path", help="score one prepared dataset (prepare_n2c2.py output) instead")
    parser.add_argument("--output", help="with --dataset_path: where the result JSON goes")
    parser.add_argument("--force", action="store_true", help="recompute results that exist")
    parser.add_argument("--lowercase", action="store_true",
                        help="diagnostic: lower-case every word first (what an uncased encoder sees), to measure "
                             "what case and shape are worth to the peer; results in bench/results/diagnostics/")
    args = parser.parse_args(argv)

    if args.dataset_path:
        result = train_and_score(Path(args.dataset_path), args.train_splits[0], args.seeds[0], args.max_iterations,
                                 lowercase=args.lowercase)
        if args.output:
            common.write_json(Path(args.output), result)
        print(f"strict micro-F1 {result[STRICT_MICRO_F1]:.4f}  macro-F1 {result[STRICT_MACRO_F1]:.4f}  "
              f"train {result['train_seconds']:.1f}s")
        return 0

    for corpus in args.corpora:
        dataset_path = common.prepare_corpus(corpus)
        if dataset_path is None:
            continue
        for train_split in args.train_splits:
            first = None
            for seed in args.seeds:
                path = result_path(corpus, seed, train_split, args.lowercase)
                if path.is_file() and not args.force:
                    print(f"[feature-crf] {path.name}: cached", flush=True)
                    continue
                if first is None:
                    first = train_and_score(dataset_path, train_split, seed, args.max_iterations,
                                            lowercase=args.lowercase)
                    result = first
                else:
                    # Deterministic trainer: the same model for every seed; record it as such
                    # (re-running it gives identical numbers, which the smoke test checks).
                    result = dict(first, seed=seed, reused_from_seed=first["seed"])
                result["corpus"] = corpus
                common.write_json(path, result)
                print(f"[feature-crf] {corpus} {train_split} seed {seed}: strict micro-F1 "
                      f"{result[STRICT_MICRO_F1]:.4f} macro-F1 {result[STRICT_MACRO_F1]:.4f} "
                      f"({result['train_seconds']:.0f}s train)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
