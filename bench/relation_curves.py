#!/usr/bin/env python
"""Relation benchmarks that discriminate: every candidate, the nearest-drug rule and the model, over seeds and
training-set sizes, with paired bootstrap intervals of the model's lead over the rule.

    .venv/bin/python bench/relation_curves.py --list                  # the runs, done or pending
    .venv/bin/python bench/relation_curves.py --jobs 1                # run what is pending (CPU: hours)
    python3 bench/relation_curves.py --jobs 8 --device cuda           # on one GPU, 8 runs at a time (minutes)
    .venv/bin/python bench/relation_curves.py --report                # bench/results/relations/curves.md
    .venv/bin/python bench/relation_curves.py --smoke                 # a minute: tiny model, 2 runs, report

Corpora (a benchmark *discriminates* only where linking every candidate scores at least 10 points below the rule):

- ``synthetic-hard``: ``prepare_n2c2.py --synthetic 500 --synthetic_hard --synthetic_test_notes 100`` (360 training,
  40 validation, 100 test notes): several drugs per sentence, attributes before their drug, a drug in between,
  "respectively", shared attributes, reasons in the next sentence (synthetic_n2c2.py's hard mode).
- ``phee``: PHEE's events as n2c2 relations (bench/relation_bench.py's prepared corpus; official splits). Kept as
  the benchmark that does NOT discriminate (its sentences mostly hold one drug).

Systems (``run_re.py`` fine-tuning the offline MiniLM, batch 32, lr 5e-5, max_seq_length 128, fp32):

- ``documented``: ``run_re.py``'s defaults, the README's command: epoch and link threshold chosen on the validation
  notes, at least 600 optimiser steps, and the rule's view of each candidate as input tokens (``[rule]``/
  ``[not-rule]``, ``[between-N]``).
- ``v1``: the earlier recipe: 3 epochs, the last one, threshold 0.5, no input tokens
  (``--select_on_validation false --tune_link_threshold false --min_train_steps 0 --input_features ''``).
- ``no-features``: ``documented`` without the input tokens (``--input_features ''``).

Each run (corpus, system, training notes, seed) writes one JSON under ``bench/results/relations/curves/``: the
validation and test scores of the model, the rule and every candidate, the selection, training seconds, and the
per-test-note strict counts ``(tp, fp, fn)`` of each (numbers only: the bootstrap needs them). A run whose JSON
exists is skipped. ``--report`` reads them all: mean and standard deviation over seeds, the difference to the rule
with a paired bootstrap 95% interval (``significance.paired_bootstrap``, notes redrawn, seeds averaged), and the
shipped path ``--relations auto`` (per seed the model, or the rule where the model lost on validation).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from clinical_ner_crf.relation_training import baseline_links, load_documents  # noqa: E402

annotate_notes = common.command("annotate_notes")  # the command, called in-process as from its command line
prepare_n2c2 = common.command("prepare_n2c2")  # the command, called in-process as from its command line
run_ner_crf = common.command("run_ner_crf")  # the command, called in-process as from its command line
run_re = common.command("run_re")  # the command, called in-process as from its command line

CURVES_RESULTS = common.RESULTS_DIR / "relations" / "curves"
CURVES_RUNS = common.RUNS_DIR / "relation_curves"
HARD_DIR = common.CACHE_DIR / "synthetic_hard_prepared"
SEEDS = (42, 43, 44)
SIZES = {"synthetic-hard": (20, 50, 100, 200), "phee": (None,)}  # training notes (None: all)
SYSTEMS = {
    "documented": [],  # run_re.py's defaults: the README's command
    "v1": ["--select_on_validation", "false", "--tune_link_threshold", "false", "--min_train_steps", "0",
           "--input_features", ""],
    "no-features": ["--input_features", ""],
}
SYSTEM_NAMES = {"documented": "the documented defaults (selected on validation, rule features)",
                "v1": "v1: 3 epochs, the last, 0.5, no features",
                "no-features": "selected on validation, no rule features"}
RE_FLAGS = [
    "--do_train", "true", "--do_eval", "true", "--do_predict", "true", "--save_strategy", "no",
    "--num_train_epochs", "3", "--learning_rate", "5e-5", "--lr_scheduler_type", "linear", "--warmup_steps", "0",
    "--weight_decay", "0.0", "--per_device_train_batch_size", "32", "--per_device_eval_batch_size", "256",
    "--max_seq_length", "128", "--logging_steps", "1000", "--report_to", "none", "--dataloader_num_workers", "0",
    "--disable_tqdm", "true", "--log_level", "warning",
]
SMOKE_FLAGS = ["--config_name", str(common.REPO_DIR / "configs" / "architectures" / "distilbert-base-cased.json"),
               "--config_overrides", "dim=64,n_layers=2,n_heads=2,hidden_dim=128,max_position_embeddings=256",
               "--learning_rate", "1e-3", "--min_train_steps", "30"]
DISCRIMINATING_GAP = 10.0  # points: every candidate at least this far below the rule


def corpus_dir(corpus: str, smoke: bool = False) -> Path:
    """The prepared folder of a corpus, built on first use (PHEE: bench/relation_bench.py's)."""
    if smoke:
        folder = common.smoke_dir() / "relation_curves_data"
        if not (folder / "dataset_dict.json").is_file():

            prepare_n2c2.main(["--synthetic", "40", "--synthetic_hard", "--synthetic_test_notes", "10",
                               "--output_dir", str(folder), "--overwrite"])
        return folder
    if corpus == "synthetic-hard":
        if not (HARD_DIR / "dataset_dict.json").is_file():

            prepare_n2c2.main(["--synthetic", "500", "--synthetic_hard", "--synthetic_test_notes", "100",
                               "--seed", "42", "--output_dir", str(HARD_DIR), "--overwrite"])
        return HARD_DIR
    import relation_bench

    if (relation_bench.PREPARED_DIR / "documents").is_dir():  # also a copy holding only documents/ and stats.json
        return relation_bench.PREPARED_DIR
    prepared = relation_bench.phee_corpus()
    if prepared is None:
        raise FileNotFoundError("PHEE is not under BENCH_DATA_DIR: see bench/README.md")
    return prepared.dataset


def run_key(corpus: str, system: str, size: int | None, seed: int) -> str:
    return f"{corpus}__{system}__n{'all' if size is None else size}__s{seed}"


def all_runs(smoke: bool = False) -> list[tuple[str, str, int | None, int]]:
    if smoke:
        return [("smoke", system, 20, 42) for system in ("v1", "documented")]
    # The documented system first, then the earlier recipe, then the ablation: an interrupted queue has the rows that
    # matter most.
    return [(corpus, system, size, seed) for system in ("documented", "v1", "no-features")
            for corpus, sizes in SIZES.items() for size in sizes for seed in SEEDS]


def per_document_counts(documents, links_by_document) -> list[list[int]]:
    """Strict relation (tp, fp, fn) of each note (n2c2_scoring.score_relations, one note at a time)."""
    from clinical_ner_crf.n2c2_scoring import score_relations
    from clinical_ner_crf.relation_training import to_brat_documents

    counts = []
    for document, links in zip(documents, links_by_document):
        micro = score_relations(to_brat_documents([document], None), to_brat_documents([document], [links])
                                )["strict"]["micro"]
        counts.append([int(micro["tp"]), int(micro["fp"]), int(micro["fn"])])
    return counts


def predicted_links(run_dir: Path, documents) -> list[list[tuple[Any, float]]]:
    """The model's links of each test note, read back from run_re.py's predictions (test_relations.jsonl)."""
    from clinical_ner_crf.files import PREDICTIONS_DIRNAME, TEST_RELATIONS_FILE
    from clinical_ner_crf.relations import Candidate
    from clinical_ner_crf.relation_training import document_mentions

    by_document: dict[str, list[dict[str, Any]]] = {}
    for line in (run_dir / PREDICTIONS_DIRNAME / TEST_RELATIONS_FILE).read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        by_document.setdefault(record["document_id"], []).append(record)
    links = []
    for document in documents:
        index = {mention.id: number for number, mention in enumerate(document_mentions(document))}
        links.append([(Candidate(index[r["attribute"]], index[r["drug"]], r["type"], 0), r["confidence"])
                      for r in by_document.get(document["document_id"], [])])
    return links


def run_one(corpus: str, system: str, size: int | None, seed: int, device: str, smoke: bool) -> dict[str, Any]:
    """One run_re.py training in this process; its JSON result (numbers only)."""
    from clinical_ner_crf.relations import DEFAULT_SENTENCE_WINDOW

    key = run_key(corpus, system, size, seed)
    dataset = corpus_dir(corpus, smoke)
    run_dir = (common.smoke_dir() / "relation_curves_runs" if smoke else CURVES_RUNS) / key
    shutil.rmtree(run_dir, ignore_errors=True)
    # The smoke model: from scratch, with a tiny tokenizer learned once from the smoke notes.
    model = SMOKE_FLAGS[:4] + ["--tokenizer_name", str(smoke_tokenizer())] if smoke else \
        ["--model_name_or_path", str(common.minilm_dir())]
    argv = model + ["--dataset_path", str(dataset), "--output_dir", str(run_dir), "--seed", str(seed),
                    *RE_FLAGS, *SYSTEMS[system]] + ([] if size is None else ["--max_train_documents", str(size)])
    if device == "cpu":
        argv += ["--use_cpu", "true"]
    if smoke:  # the smoke model's learning rate and steps (later flags win)
        argv += SMOKE_FLAGS[4:]
    started = time.perf_counter()
    results = run_re.main(argv)
    seconds = time.perf_counter() - started
    documents = load_documents(str(dataset), "test")
    baselines = baseline_links(documents, DEFAULT_SENTENCE_WINDOW)
    counts = {"model": per_document_counts(documents, predicted_links(run_dir, documents)),
              **{name: per_document_counts(documents, links) for name, links in baselines.items()}}
    shutil.rmtree(run_dir, ignore_errors=True)
    keep = ("train_notes", "train_candidates", "train_epochs", "selected_epoch", "link_threshold",
            "preferred_on_validation", "train_wall_seconds", "train_runtime", "validation_history", "input_features",
            "test_notes", "validation_notes", "num_parameters")
    return {"key": key, "corpus": corpus, "system": system, "train_notes_asked": size, "seed": seed,
            "device": device, "smoke": smoke, "run_seconds": round(seconds, 1),
            **{k: results[k] for k in keep if k in results},
            **{k: v for k, v in results.items() if "micro_f1" in k},
            "test_counts": counts, "machine": common.machine_info(),
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


E2E_RESULT = common.RESULTS_DIR / "relations" / "curves_end_to_end.json"


def end_to_end(keep: bool = False) -> dict[str, Any]:
    """End to end on hard notes, with the quickstart's recipe (CPU, minutes): 120 hard synthetic notes (100 train and
    validation, 20 test), the quickstart's NER model (configs/quickstart.json) and relation model
    (configs/relations/quickstart.json) trained on them, the test notes annotated with ``--relations model`` and
    with ``--relations rule``, each scored against the gold brat (``--relation_setting end_to_end``), strict and
    lenient, beside the relation scores on gold entities."""
    from clinical_ner_crf.n2c2_scoring import score_brat_folders

    root = CURVES_RUNS / "end_to_end"
    shutil.rmtree(root, ignore_errors=True)
    data, brat = root / "data", root / "brat"
    prepare_n2c2.main(["--synthetic", "120", "--synthetic_hard", "--seed", "42", "--output_dir", str(data),
                       "--write_brat", str(brat)])
    started = time.perf_counter()
    run_ner_crf.main([str(common.REPO_DIR / "configs" / "quickstart.json"), "--dataset_path", str(data),
                      "--output_dir", str(root / "ner"), "--disable_tqdm", "true", "--report_to", "none"])
    ner_seconds = time.perf_counter() - started
    started = time.perf_counter()
    relations = run_re.main([str(common.REPO_DIR / "configs" / "relations" / "quickstart.json"), "--dataset_path",
                             str(data), "--tokenizer_name", str(root / "ner"), "--output_dir", str(root / "re"),
                             "--disable_tqdm", "true"])
    re_seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "corpus": "synthetic-hard", "recipe": "quickstart (tiny, from scratch, CPU)", "seed": 42,
        "train_notes": relations.get("train_notes"), "test_notes": relations.get("test_notes"),
        "ner_train_seconds": round(ner_seconds, 1), "re_train_seconds": round(re_seconds, 1),
        "gold_entities": {k: v for k, v in relations.items() if k.startswith("test_") and "micro_f1" in k},
        "preferred_on_validation": relations.get("preferred_on_validation"), "machine": common.machine_info()}
    for linker in ("model", "rule"):
        annotated = root / f"annotated_{linker}"
        status = annotate_notes.main(["--model_name_or_path", str(root / "ner"), "--relation_model_name_or_path",
                                      str(root / "re"), "--relations", linker, "--input_dir", str(brat / "test"),
                                      "--output_dir", str(annotated), "--device", "cpu"])
        if status:
            raise RuntimeError(f"annotate_notes.py --relations {linker} exited {status}")
        report = score_brat_folders(brat / "test", annotated, relation_setting="end_to_end")
        result[f"end_to_end_{linker}"] = {
            "relation_strict_micro_f1": report["relations"]["strict"]["micro"]["f1"],
            "relation_lenient_micro_f1": report["relations"]["lenient"]["micro"]["f1"],
            "entity_strict_micro_f1": report["strict"]["micro"]["f1"],
            "entity_lenient_micro_f1": report["lenient"]["micro"]["f1"]}
    result["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    common.write_json(E2E_RESULT, result)
    return result


def end_to_end_lines() -> list[str]:
    """bench/README.md's end-to-end table (from curves_end_to_end.json), or nothing before it is run."""
    if not E2E_RESULT.is_file():
        return []
    result = common.read_json(E2E_RESULT)
    gold = result["gold_entities"]
    lines = [f"End to end on hard notes with the quickstart's recipe ({result['recipe']}; {result['train_notes']} "
             f"training notes, {result['test_notes']} test notes, seed {result['seed']}; `bench/relation_curves.py "
             "--end_to_end`): relations strict / lenient micro-F1 (%), on gold entities and end to end (the NER "
             "model's entities, then `annotate_notes.py --relations model` or `--relations rule`, scored with "
             "`--relation_setting end_to_end`).", "",
             "| linker | on gold entities, strict | end to end, strict | end to end, lenient | NER strict micro-F1 |",
             "|---|---|---|---|---|"]
    for linker, prefix in (("model", "test_"), ("rule", "test_rule_")):
        row = result[f"end_to_end_{linker}"]
        lines.append(f"| {'relation model' if linker == 'model' else 'nearest-drug rule'} | "
                     f"{100 * gold[prefix + 'relation_strict_micro_f1']:.1f} | "
                     f"{100 * row['relation_strict_micro_f1']:.1f} | {100 * row['relation_lenient_micro_f1']:.1f} | "
                     f"{100 * row['entity_strict_micro_f1']:.1f} |")
    lines += ["", f"Training: NER {result['ner_train_seconds']:.0f} s, relations {result['re_train_seconds']:.0f} s "
              f"(CPU, {result['machine'].get('cpu_count')} cores); `--relations auto` chose the "
              f"{result['preferred_on_validation']} on validation.", ""]
    return lines


def smoke_tokenizer() -> Path:
    """A tiny WordPiece tokenizer for the smoke model, learned once from the smoke notes (subwords.py)."""
    folder = common.smoke_dir() / "relation_curves_tokenizer"
    if not (folder / "tokenizer_config.json").is_file():
        from datasets import load_from_disk

        from clinical_ner_crf.subwords import train_subword_tokenizer

        words = [row["text"].split() for row in load_from_disk(str(corpus_dir("smoke", True) / "documents"))]
        train_subword_tokenizer(words, vocab_size=800).save_pretrained(str(folder))
    return folder


def result_path(key: str, smoke: bool) -> Path:
    return (common.smoke_dir() / "smoke_results" / "relation_curves" if smoke else CURVES_RESULTS) / f"{key}.json"


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def f1_of(counts) -> float:
    from clinical_ner_crf.significance import micro_f1

    return 100 * micro_f1(counts)


def report(smoke: bool = False) -> str:
    """The markdown tables: per corpus and training size, every candidate / rule / each system (mean ± sd over
    seeds), the difference to the rule with its bootstrap interval, the shipped path (auto) and the training cost."""
    from clinical_ner_crf.significance import paired_bootstrap

    groups = load_groups(smoke)
    lines = ["# Relation benchmarks: every candidate, rule, model (strict micro-F1 on gold entities, test notes)", "",
             "Generated by `bench/relation_curves.py --report` from the JSON files beside it; see the script's "
             "docstring for the corpora and systems. Differences: model minus rule, mean over seeds, with a paired "
             "bootstrap 95% interval (2000 redraws of the test notes, `significance.py`). `auto`: per seed, the "
             "model, or the rule where the model scored lower on the validation notes (`annotate_notes.py "
             "--relations auto`).", ""]
    for (corpus, size), systems in groups.items():
        first = next(iter(systems.values()))[0]
        rule, every = first["test_counts"]["rule"], first["test_counts"]["every_candidate"]
        gap = f1_of(rule) - f1_of(every)
        lines += [f"## {corpus}, {first.get('train_notes', size)} training notes "
                  f"({'discriminating' if gap >= DISCRIMINATING_GAP else 'NOT discriminating'}: every candidate "
                  f"{abs(gap):.1f} points {'below' if gap >= 0 else 'above'} the rule)", "",
                  "| system | seeds | test F1 (mean ± sd) | minus rule [95% CI] | P(not better) | validation F1 | "
                  "epochs (selected / trained) | threshold | train s (mean) | device |",
                  "|---|---|---|---|---|---|---|---|---|---|",
                  f"| every candidate | - | {f1_of(every):.1f} | {f1_of(every) - f1_of(rule):+.1f} | - | "
                  f"{100 * first.get('validation_every_candidate_relation_strict_micro_f1', float('nan')):.1f} "
                  "| - | - | - | - |",
                  f"| nearest-drug rule | - | {f1_of(rule):.1f} | 0 | - | "
                  f"{100 * first.get('validation_rule_relation_strict_micro_f1', float('nan')):.1f} | - | - | - | - |"]
        for system in [name for name in SYSTEMS if name in systems] + [n for n in systems if n not in SYSTEMS]:
            runs = sorted(systems[system], key=lambda row: row["seed"])
            model_counts = [row["test_counts"]["model"] for row in runs]
            lines.append(_system_row(SYSTEM_NAMES.get(system, system), runs, model_counts, rule, paired_bootstrap))
            if system == "documented":
                auto = [row["test_counts"]["model"] if row.get("preferred_on_validation", "model") == "model"
                        else row["test_counts"]["rule"] for row in runs]
                lines.append(_system_row("the documented defaults, `--relations auto`", runs, auto, rule, paired_bootstrap,
                                         note=f"rule chosen for {sum(a is not m for a, m in zip(auto, model_counts))}"
                                              f" of {len(runs)} seeds"))
        lines.append("")
    return "\n".join(lines) + "\n"


def load_groups(smoke: bool = False) -> dict[tuple[str, Any], dict[str, list[dict[str, Any]]]]:
    """The run results by (corpus, training notes asked) and system, seeds in order; corpora and sizes sorted."""
    folder = result_path("x", smoke).parent
    groups: dict[tuple[str, Any], dict[str, list]] = {}
    for path in sorted(folder.glob("*.json")):
        row = common.read_json(path)
        groups.setdefault((row["corpus"], row["train_notes_asked"]), {}).setdefault(row["system"], []).append(row)
    for systems in groups.values():
        for runs in systems.values():
            runs.sort(key=lambda row: row["seed"])
    return dict(sorted(groups.items(), key=lambda item: (item[0][0] != "synthetic-hard", item[0][0],
                                                          item[0][1] or 10**9)))


def auto_counts(runs: list[dict[str, Any]]) -> list:
    """Per seed, what ``--relations auto`` links with: the model, or the rule where it lost on validation."""
    return [row["test_counts"]["model"] if row.get("preferred_on_validation", "model") == "model"
            else row["test_counts"]["rule"] for row in runs]


def summary(smoke: bool = False) -> list[str]:
    """bench/README.md's section: the learning curve of every system against the rule and every candidate, the
    documented defaults' lead over the rule with its interval, the targets of issue 26 and the training cost."""
    from clinical_ner_crf.significance import paired_bootstrap

    groups = load_groups(smoke)
    if not groups:
        return []
    columns = list(groups)
    header = [f"{corpus} {first_runs(groups[(corpus, size)])[0].get('train_notes', size)}" for corpus, size in columns]
    lines = ["## Relations where the nearest drug is wrong: learning curves, 3 seeds (`bench/relation_curves.py`)", "",
             "Strict micro-F1 (%) of relations on gold entities, test notes, mean ± sd over seeds (MiniLM fine-tuned "
             "by `run_re.py`). Columns: corpus and training notes. synthetic-hard: 100 test notes of "
             "`prepare_n2c2.py --synthetic 500 --synthetic_hard` (every candidate far below the rule: it "
             "discriminates); PHEE: kept as the benchmark that does not (every candidate above the rule). Per size "
             "and system, with the bootstrap intervals: `bench/results/relations/curves.md`.", "",
             "| system | " + " | ".join(header) + " |", "|---|" + "---|" * len(columns)]

    def cell(counts_by_seed):
        scores = [f1_of(c) for c in counts_by_seed]
        spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
        return f"{statistics.mean(scores):.1f} ± {spread:.1f}" if len(scores) > 1 else f"{scores[0]:.1f}"

    def reference(key, name):
        return first_runs(groups[key])[0]["test_counts"][name]

    lines.append("| every candidate linked | " + " | ".join(f"{f1_of(reference(k, 'every_candidate')):.1f}"
                                                          for k in columns) + " |")
    lines.append("| nearest-drug rule | " + " | ".join(f"{f1_of(reference(k, 'rule')):.1f}" for k in columns) + " |")
    for system in SYSTEMS:
        lines.append(f"| {SYSTEM_NAMES[system]} | " + " | ".join(
            cell([row["test_counts"]["model"] for row in groups[k][system]]) if system in groups[k] else "not run"
            for k in columns) + " |")
        if system == "documented":
            lines.append("| the same, `--relations auto` | " + " | ".join(
                cell(auto_counts(groups[k][system])) if system in groups[k] else "not run" for k in columns) + " |")
    lines += ["", "Differences in points, mean over seeds, paired bootstrap 95% interval over test notes "
              "(`significance.paired_bootstrap`):", "",
              "| columns | " + " | ".join(header) + " |", "|---|" + "---|" * len(columns)]

    def difference(key, system, against, counts_of=lambda runs: [row["test_counts"]["model"] for row in runs]):
        systems = groups[key]
        if system not in systems or (against != "rule" and against not in systems):
            return "not run"
        other = [reference(key, "rule")] if against == "rule" else counts_of(systems[against])
        result = paired_bootstrap(counts_of(systems[system]), other)
        return f"{100 * result['difference']:+.1f} [{100 * result['low']:+.1f}, {100 * result['high']:+.1f}]"

    lines.append("| documented defaults − rule | " + " | ".join(difference(k, "documented", "rule") for k in columns) + " |")
    lines.append("| `--relations auto` − rule | " + " | ".join(
        difference(k, "documented", "rule", counts_of=auto_counts) for k in columns) + " |")
    lines.append("| documented defaults − v1 | " + " | ".join(difference(k, "documented", "v1") for k in columns) + " |")
    lines.append("| rule features (documented − no-features) | " + " | ".join(
        difference(k, "documented", "no-features") for k in columns) + " |")
    seconds = " | ".join(
        f"{statistics.mean(row.get('train_wall_seconds', 0) for row in groups[k]['documented']):.0f}"
        if "documented" in groups[k] else "not run" for k in columns)
    lines += [f"| training seconds, documented defaults (mean) | {seconds} |", ""]
    # Targets (issue 26), on the discriminating benchmark.
    lines += ["Targets (issue 26), strict micro-F1 on gold entities, mean of 3 seeds:", ""]
    for key in columns:
        corpus, size = key
        rule_f1, every_f1 = f1_of(reference(key, "rule")), f1_of(reference(key, "every_candidate"))
        if rule_f1 - every_f1 < DISCRIMINATING_GAP:
            lines.append(f"- {corpus}: not discriminating (every candidate {every_f1:.1f}, rule {rule_f1:.1f}): "
                         "no target")
            continue
        runs = groups[key].get("documented")
        notes = first_runs(groups[key])[0].get("train_notes", size)
        if not runs:
            lines.append(f"- {corpus}, {notes} notes: documented defaults NOT RUN")
            continue
        lead = statistics.mean(f1_of(row["test_counts"]["model"]) for row in runs) - rule_f1
        auto = statistics.mean(f1_of(c) for c in auto_counts(runs)) - rule_f1
        lines.append(f"- {corpus}, {notes} notes: documented defaults − rule {lead:+.1f} (target +3: "
                     f"{'met' if lead >= 3 else 'MISSED'}); `--relations auto` − rule {auto:+.1f} (target ≥ 0: "
                     f"{'met' if auto >= 0 else 'MISSED'})")
    lines += [""] + end_to_end_lines()
    lines += ["Training seconds: wall time of `trainer.train` with 8 to 10 runs sharing one H200 (the "
              "per-epoch validation scoring included): a cost, not a speed measurement. Runs: "
              "`python3 bench/relation_curves.py --jobs 8 --device cuda` (GPU), `--jobs 1` on a CPU; "
              "`--report` writes curves.md.", ""]
    return lines


def first_runs(systems: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return next(iter(systems.values()))


def _system_row(name, runs, counts, rule, paired_bootstrap, note: str = "") -> str:
    scores = [f1_of(c) for c in counts]
    spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
    interval = paired_bootstrap(counts, [rule])
    validation = [100 * row.get("validation_relation_strict_micro_f1", float("nan")) for row in runs]
    epochs = "/".join(f"{row.get('selected_epoch', row.get('train_epochs', 0)):g}" for row in runs)
    trained = ",".join(f"{row.get('train_epochs', 0):g}" for row in runs)
    thresholds = ",".join(f"{row.get('link_threshold', 0):g}" for row in runs)
    seconds = statistics.mean(row.get("train_wall_seconds", 0) for row in runs)
    devices = ",".join(sorted({(row["machine"].get("cuda") or "CPU") for row in runs}))
    return (f"| {name}{' (' + note + ')' if note else ''} | {len(runs)} | {statistics.mean(scores):.1f} ± {spread:.1f} | "
            f"{100 * interval['difference']:+.1f} [{100 * interval['low']:+.1f}, {100 * interval['high']:+.1f}] | "
            f"{interval['p_not_better']:.3f} | {statistics.mean(validation):.1f} | {epochs} / {trained} | "
            f"{thresholds} | {seconds:.0f} | {devices} |")


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="List the runs, done or pending, and stop.")
    parser.add_argument("--report", action="store_true", help="Write the report from the results and stop.")
    parser.add_argument("--smoke", action="store_true", help="Tiny model, 2 runs on 40 hard notes, then the report.")
    parser.add_argument("--jobs", type=int, default=1, help="Runs at a time (each its own process).")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--only", default=None, help="Run only the runs whose key contains this.")
    parser.add_argument("--end_to_end", action="store_true",
                        help="The end-to-end row: quickstart-size NER and relation models on hard notes (CPU).")
    parser.add_argument("--run", default=None, help=argparse.SUPPRESS)  # one run, in this process (a worker)
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.run:
        corpus, system, size, seed = json.loads(args.run)
        result = run_one(corpus, system, size, seed, args.device, args.smoke)
        common.write_json(result_path(result["key"], args.smoke), result)
        return 0
    if args.end_to_end:
        print(json.dumps(end_to_end(), indent=2, default=str))
        return 0
    if args.report:
        target = result_path("x", args.smoke).parent.parent / ("relation_curves.md" if args.smoke else "curves.md")
        target.write_text(report(args.smoke), encoding="utf-8")
        print(f"wrote {target}")
        return 0
    runs = [run for run in all_runs(args.smoke) if args.only is None or args.only in run_key(*run)]
    pending = [run for run in runs if args.smoke or not result_path(run_key(*run), args.smoke).is_file()]
    if args.list:
        for run in runs:
            print(("pending " if run in pending else "done    ") + run_key(*run))
        return 0
    for corpus in sorted({run[0] for run in pending}):  # prepare once, before the workers start
        corpus_dir(corpus, args.smoke)
    if args.smoke:
        smoke_tokenizer()

    def launch(run) -> tuple[str, int, float]:
        started = time.perf_counter()
        log = (common.smoke_dir() if args.smoke else common.CACHE_DIR) / "logs" / f"{run_key(*run)}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, __file__, "--run", json.dumps(list(run)), "--device", args.device] + \
            (["--smoke"] if args.smoke else [])
        with open(log, "w") as handle:
            status = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT)
        return run_key(*run), status, time.perf_counter() - started

    failed = 0
    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        for key, status, seconds in pool.map(launch, pending):
            failed += status != 0
            print(f"{'ok    ' if status == 0 else 'FAILED'} {key} ({seconds:.0f} s)", flush=True)
    if args.smoke:
        return main(["--report", "--smoke"]) or (1 if failed else 0)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
