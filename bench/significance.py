#!/usr/bin/env python
"""Is the difference real? The benchmark's comparisons tested note by note, and the CRF confidences checked.

    python bench/significance.py            # re-run seed 42 where predictions are missing, then compare
    python bench/significance.py --list     # what is there and what would run
    python bench/significance.py --corpora phee --max_runs 2

The quality queue keeps numbers, not predictions, so its comparisons can only be tested over seeds. This script
re-runs seed 42 of each system on the full training split of PHEE and NCBI-disease (the queue's exact command, the
feature CRF's exact settings) into the git-ignored ``bench/runs/significance/`` and keeps each run's word-level test
predictions. From them it stores, per run, each test note's entity ``(tp, fp, fn)``, strict and lenient
(``token_metrics.entity_counts_by_document``; the notes' ids only as a hash) in
``bench/results/significance/KEY.per_document.json``, and in ``KEY.json`` the run's F1 beside the queue's run of the
same key (a re-run on the same CPU with the same seed and code reproduces it: the JSON says by how much it does). The CRF runs also fit a confidence
temperature on the validation split (``run_ner_crf.py --calibrate_confidence``) and keep its ``calibration.json``:
the reliability table, ECE before and after, and the threshold table, on validation and on test.

Then every comparison of :data:`COMPARISONS` is tested with ``significance.compare_systems``: the difference of strict
(and lenient) entity micro-F1, its paired-bootstrap 95% interval over the test notes (2,000 redraws) and the two-sided
approximate-randomization p-value over the notes (10,000 shufflings), seeded: ``bench/results/significance.json``,
which ``bench/report.py`` puts beside each claim. Numbers only: no corpus text is stored.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import feature_crf  # noqa: E402
import quality  # noqa: E402
from clinical_ner_crf.files import atomic_open, run_predictions_path  # noqa: E402
from clinical_ner_crf.metrics import STRICT_MICRO_F1  # noqa: E402
from clinical_ner_crf.prediction_records import read_predictions  # noqa: E402
from clinical_ner_crf.significance import compare_systems, micro_f1  # noqa: E402
from clinical_ner_crf.token_metrics import entity_counts_by_document  # noqa: E402

SIGNIFICANCE_DIR = common.RESULTS_DIR / "significance"
SIGNIFICANCE_FILE = common.RESULTS_DIR / "significance.json"
RUNS_DIR = common.RUNS_DIR / "significance"
SEED = 42
CORPORA = ("phee", "ncbi")
SYSTEMS = ("feature-crf", "minilm-crf", "minilm-apt", "transformer-crf", "transformer-apt")
CALIBRATED = ("minilm-crf", "transformer-crf")  # the CRF marginals are what users threshold
# (system, reference): the claims bench/README.md makes.
COMPARISONS = (("minilm-crf", "feature-crf"), ("transformer-crf", "feature-crf"), ("minilm-crf", "minilm-apt"),
               ("transformer-crf", "transformer-apt"), ("minilm-crf", "transformer-crf"))


def run_key(corpus: str, system: str) -> str:
    return quality.run_key(corpus, system, SEED, "train", 1.0)


def result_path(corpus: str, system: str) -> Path:
    return SIGNIFICANCE_DIR / f"{run_key(corpus, system)}.json"


def counts_path(corpus: str, system: str) -> Path:
    """Each note's counts, beside the result and on one line: a thousand notes indented would be 100 kB a run."""
    return SIGNIFICANCE_DIR / f"{run_key(corpus, system)}.per_document.json"


def note_counts(predictions: Path) -> dict[str, Any]:
    """Each test note's entity counts, strict and lenient, and a hash of the notes' ids (their order is the pairing)."""
    counts = entity_counts_by_document(read_predictions(predictions))
    return {"documents": len(counts["documents"]),
            "documents_sha256": hashlib.sha256("\n".join(counts["documents"]).encode()).hexdigest(),
            "entities": {mode: [list(row) for row in rows] for mode, rows in counts["entities"].items()}}


def run(corpus: str, system: str, dataset_path: Path) -> dict[str, Any]:
    """Seed 42 of one system, predictions kept; the stored numbers."""
    key = run_key(corpus, system)
    started = time.perf_counter()
    if system == "feature-crf":
        feature_crf.main(["--corpora", corpus, "--seeds", str(SEED), "--train_splits", "train", "--force",
                          "--results_dir", str(RUNS_DIR / "results"), "--output_dir", str(RUNS_DIR)])
    else:
        extra = ["--calibrate_confidence", "true"] if system in CALIBRATED else []
        quality.run_one(corpus, system, SEED, "train", 1.0, dataset_path, results_dir=RUNS_DIR / "results",
                        runs_dir=RUNS_DIR, extra_flags=extra)
    run_dir = RUNS_DIR / key
    counts = note_counts(run_predictions_path(run_dir))
    f1 = micro_f1(counts["entities"]["strict"])
    queue_path = quality.QUALITY_DIR / f"{key}.json"
    queue_f1 = common.read_json(queue_path)[STRICT_MICRO_F1] if queue_path.is_file() else None
    calibration = run_dir / "calibration.json"
    result = {
        "key": key, "corpus": corpus, "system": system, "seed": SEED, STRICT_MICRO_F1: f1,
        "queue_" + STRICT_MICRO_F1: queue_f1,
        "rerun_minus_queue_points": None if queue_f1 is None else round((f1 - queue_f1) * 100, 4),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "per_document": {"documents": counts["documents"], "file": counts_path(corpus, system).name},
        "calibration": common.read_json(calibration) if calibration.is_file() else None,
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    counts_path(corpus, system).parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(counts_path(corpus, system)) as handle:
        json.dump(counts, handle, separators=(",", ":"))
    common.write_json(result_path(corpus, system), result)
    return result


def compare_all() -> dict[str, Any]:
    """Every comparison whose two runs are stored: ``{corpus: {"system vs reference": {mode: compare_systems}}}``."""
    out: dict[str, Any] = {}
    for corpus in CORPORA:
        for system, reference in COMPARISONS:
            paths = result_path(corpus, system), result_path(corpus, reference)
            if not all(path.is_file() for path in paths):
                continue
            ours, theirs = (common.read_json(counts_path(corpus, name)) for name in (system, reference))
            if ours["documents_sha256"] != theirs["documents_sha256"]:
                raise RuntimeError(f"{corpus}: {system} and {reference} were scored on different test notes")
            out.setdefault(corpus, {})[f"{system} vs {reference}"] = {
                mode: compare_systems(ours["entities"][mode], theirs["entities"][mode], seed=SEED)
                for mode in ("strict", "lenient")}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", nargs="+", choices=CORPORA, default=list(CORPORA))
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--max_runs", type=int, default=None, help="stop after this many new runs")
    parser.add_argument("--list", action="store_true", help="print what is stored and what would run, then exit")
    args = parser.parse_args(argv)
    todo = [(corpus, system) for corpus in args.corpora for system in args.systems
            if not result_path(corpus, system).is_file()]
    if args.list:
        for corpus in args.corpora:
            for system in args.systems:
                state = "pending" if (corpus, system) in todo else "done"
                print(f"{state:8} {run_key(corpus, system)}")
        return 0
    for corpus, system in todo[:args.max_runs]:
        print(f"[significance] {time.strftime('%H:%M:%S', time.gmtime())} start {run_key(corpus, system)}", flush=True)
        result = run(corpus, system, common.prepare_corpus(corpus))
        print(f"[significance] done {result['key']}: strict micro-F1 {result[STRICT_MICRO_F1]:.4f} (queue "
              f"{result['queue_' + STRICT_MICRO_F1]}) in {result['wall_seconds']:.0f}s", flush=True)
    comparisons = compare_all()
    common.write_json(SIGNIFICANCE_FILE, {"seed": SEED, "comparisons": comparisons})
    for corpus, rows in comparisons.items():
        for name, modes in rows.items():
            strict = modes["strict"]
            print(f"[significance] {corpus} {name}: {100 * strict['difference']:+.2f} points, 95% CI "
                  f"[{100 * strict['ci95'][0]:+.2f}, {100 * strict['ci95'][1]:+.2f}], p = {strict['p_value']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
