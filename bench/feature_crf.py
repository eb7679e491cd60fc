#!/usr/bin/env python
"""The peer system: a classic feature-based CRF (sklearn-crfsuite), the n2c2-2018-era standard.

    python bench/feature_crf.py                       # every corpus found, seed 42, 43, 44
    python bench/feature_crf.py --corpora phee --seeds 42
    python bench/feature_crf.py --dataset_path DIR --corpus_name mine   # your own prepare_n2c2.py output
    python bench/feature_crf.py --lowercase --seeds 42 --train_splits train   # case diagnostic

Features per word (Okazaki's crfsuite NER template, as in the n2c2-2018 CRF systems): the
lower-cased word, its 2- and 3-character prefixes and suffixes, word shape (``Xxxx``, ``dd``,
``x.x``) and its compressed form, is-upper / is-title / is-digit / has-digit / has-hyphen /
is-punctuation flags, length bucket, BOS / EOS, and the lower-cased word, shape and title/upper
flags of the words at offsets -2, -1, +1, +2. Training: L-BFGS, c1 = 0.1, c2 = 0.1, at most
``--max_iterations`` (100) iterations, all possible transitions. The model is trained on the
``train`` split (or ``train_downsampled`` with ``--train_split``) and scored on ``test`` with
``token_metrics.entity_scores`` (strict, seqeval IOB2) — the project's one metric home.

Seeds: crfsuite's L-BFGS is deterministic (no random initialisation, no shuffling), so the
seeds 43 and 44 give the same model as 42; they are run anyway (``--seeds``) and the result
records ``deterministic: true`` with sd 0. Results: ``bench/results/quality/{corpus}__feature-crf__s{seed}__{split}__f1.json``
(numbers only, no corpus text), skipped when present unless ``--force``. Each run also leaves a run
folder like the neural runs' (git-ignored ``bench/runs/{same name}/``, or ``--output_dir``): word-level
test predictions (``predictions/test_predictions.jsonl``, confidences = CRF marginals) and
``run_info.json``, so ``evaluate_ablations.py --predictions`` gives its full report beside theirs.
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
from clinical_ner_crf.files import RUN_INFO_FILE, STATS_FILE, atomic_open, run_predictions_path, write_json_atomically  # noqa: E402
from clinical_ner_crf.metrics import STRICT_MACRO_F1, STRICT_MICRO_F1  # noqa: E402
from clinical_ner_crf.prediction_records import prediction_record, write_predictions_file  # noqa: E402
from clinical_ner_crf.token_metrics import entity_scores, headline_metrics  # noqa: E402

SYSTEM = "feature-crf"
MODEL_LABEL = "feature-CRF"


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


def load_split(dataset_path: Path, split: str):
    """The split's rows (a ``datasets.Dataset``), its words and its tag strings."""
    from datasets import load_from_disk

    rows = load_from_disk(str(dataset_path))[split]
    names = rows.features["ner_tags"].feature.names
    words = [list(tokens) for tokens in rows["tokens"]]
    tags = [[names[i] for i in row] for row in rows["ner_tags"]]
    return rows, words, tags


def write_run(run_dir: Path, rows, gold: list[list[str]], pred: list[list[str]], marginals, run_info: dict) -> None:
    """The run folder evaluate_ablations.py reads: word-level test predictions and run_info.json."""
    records = (prediction_record(
        id=row.get("id"), document_id=row.get("document_id"), sentence_index=row.get("sentence_index"),
        tokens=row["tokens"], token_starts=row.get("token_starts"), token_ends=row.get("token_ends"),
        gold_tags=gold_tags, pred_tags=pred_tags, confidences=[m[tag] for m, tag in zip(word_marginals, pred_tags)])
        for row, gold_tags, pred_tags, word_marginals in zip(rows, gold, pred, marginals))
    write_predictions_file(run_predictions_path(run_dir), records)
    write_json_atomically(run_dir / RUN_INFO_FILE, run_info)


def reuse_run(source_dir: Path, run_dir: Path, seed: int) -> None:
    """A seed's run folder from an identical model's (the trainer is deterministic): same predictions."""
    with atomic_open(run_predictions_path(run_dir)) as handle:
        handle.write(run_predictions_path(source_dir).read_text(encoding="utf-8"))
    run_info = common.read_json(source_dir / RUN_INFO_FILE)
    write_json_atomically(run_dir / RUN_INFO_FILE, run_info | {"seed": seed, "reused_from_seed": run_info["seed"]})


def train_and_score(dataset_path: Path, train_split: str = "train", seed: int = 42, max_iterations: int = 100,
                    c1: float = 0.1, c2: float = 0.1, lowercase: bool = False,
                    run_dir: Path | None = None) -> dict[str, Any]:
    """Train the feature CRF on ``train_split`` and score strict entity P/R/F on ``test`` (numbers only).

    ``lowercase`` (diagnostic) lower-cases every word of both splits before feature extraction;
    ``run_dir`` also gets the run folder (predictions and run_info.json, see the module docstring)."""
    import psutil
    import sklearn_crfsuite

    process = psutil.Process()
    train_rows, train_words, train_tags = load_split(dataset_path, train_split)
    test_rows, test_words, test_tags = load_split(dataset_path, "test")
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
    x_test = [sentence_features(words, lowercase) for words in test_words]
    predictions = crf.predict(x_test)
    predict_seconds = time.perf_counter() - started
    if run_dir is not None:
        # Fields as in run_ner_crf.py's run_info, so evaluate_ablations.py groups and labels it alike
        # (use_crf is the neural CRF head, which this model does not have); the diagnostic gets its
        # own label so that it never averages with the queue run.
        run_info = {
            "model_label": MODEL_LABEL + (" (lower-cased)" if lowercase else ""),
            "use_crf": False, "seed": seed, "train_split": train_split, "train_fraction": 1.0,
            "num_train_sentences": len(train_words), "num_train_documents": len(set(train_rows["document_id"])),
            "efficient_training": "downsampled" in train_split,
            "synthetic": bool(common.read_json(Path(dataset_path) / STATS_FILE).get("synthetic", False)),
        }
        write_run(run_dir, test_rows, test_tags, predictions, crf.predict_marginals(x_test), run_info)
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


def result_path(corpus: str, seed: int, train_split: str, lowercase: bool = False,
                results_dir: Path = common.RESULTS_DIR) -> Path:
    if lowercase:  # a diagnostic, kept beside (not in) the quality table's results
        return results_dir / "diagnostics" / f"{corpus}__{SYSTEM}__s{seed}__{train_split}__f1__lowercase.json"
    return results_dir / "quality" / f"{corpus}__{SYSTEM}__s{seed}__{train_split}__f1.json"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", nargs="+", choices=list(common.CORPORA),
                        help="built-in corpora (default: every one, or none with --dataset_path)")
    parser.add_argument("--dataset_path",
                        help="your own corpus: a prepare_n2c2.py output folder, run like the built-in ones")
    parser.add_argument("--corpus_name", help="with --dataset_path: its name in result and run folder names "
                                              "(default: the folder name)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--train_splits", nargs="+", default=["train", "train_downsampled"])
    parser.add_argument("--max_iterations", type=int, default=100)
    parser.add_argument("--results_dir", type=Path, default=common.RESULTS_DIR,
                        help="result JSONs go to its quality/ (diagnostics/ with --lowercase)")
    parser.add_argument("--output_dir", type=Path, default=common.RUNS_DIR,
                        help="run folders (predictions, run_info.json) go here, one per result")
    parser.add_argument("--force", action="store_true", help="recompute results that exist")
    parser.add_argument("--lowercase", action="store_true",
                        help="diagnostic: lower-case every word first (what an uncased encoder sees), to measure "
                             "what case and shape are worth to the peer; results in bench/results/diagnostics/")
    args = parser.parse_args(argv)
    if args.corpus_name and not args.dataset_path:
        parser.error("--corpus_name goes with --dataset_path")
    user = dict([common.user_corpus(args.dataset_path, args.corpus_name)]) if args.dataset_path else {}

    for corpus in (args.corpora or ([] if user else list(common.CORPORA))) + list(user):
        dataset_path = user.get(corpus) or common.prepare_corpus(corpus)
        if dataset_path is None:
            continue
        for train_split in args.train_splits:
            first = None
            for seed in args.seeds:
                path = result_path(corpus, seed, train_split, args.lowercase, args.results_dir)
                run_dir = args.output_dir / path.stem
                if path.is_file() and not args.force:
                    print(f"[feature-crf] {path.name}: cached", flush=True)
                    continue
                if first is None:
                    first = train_and_score(dataset_path, train_split, seed, args.max_iterations,
                                            lowercase=args.lowercase, run_dir=run_dir)
                    first_run_dir, result = run_dir, first
                else:
                    # Deterministic trainer: the same model for every seed; record it as such
                    # (re-running it gives identical numbers, which the smoke test checks).
                    result = dict(first, seed=seed, reused_from_seed=first["seed"])
                    reuse_run(first_run_dir, run_dir, seed)
                result["corpus"] = corpus
                common.write_json(path, result)
                print(f"[feature-crf] {corpus} {train_split} seed {seed}: strict micro-F1 "
                      f"{result[STRICT_MICRO_F1]:.4f} macro-F1 {result[STRICT_MACRO_F1]:.4f} "
                      f"({result['train_seconds']:.0f}s train)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
