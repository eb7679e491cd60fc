#!/usr/bin/env python
"""annotate_spark.py on one machine's cores: notes/s with ``local[1]`` and ``local[2]``, side by side in one run.

    python bench/spark_annotation.py               # 100,000 synthetic notes, the quickstart model's ONNX export
    python bench/spark_annotation.py --smoke       # 300 notes, a tiny model (tests/test_bench_smoke.py)

Each configuration is the user's command (``annotate_spark.py --master 'local[N]'`` in a fresh process, into an
empty folder), timed from start to exit (Spark's start, the model's shipping and loading, the summary jobs
included); the configurations alternate over ``--rounds`` rounds. Recorded for each run:

- ``seconds`` and ``notes_per_second`` (whole command), and ``annotation_seconds``: from the first Python worker
  Spark forks (the first task of the annotation stage) to the end of the command;
- ``seconds_to_first_output``: when the first task's part of ``entities.parquet`` was committed (a part in the
  staging folder: what a partition costs before anything is written);
- ``peak_rss_mb``: the largest resident memory, sampled every second, of the JVM (driver and executor in local mode)
  and of each Python worker (one per running task: the model is loaded once per worker), and their largest sum;
- whether the entities of ``local[2]`` are exactly those of ``local[1]``.

The notes: ``--num_notes`` synthetic n2c2-format notes (``synthetic_n2c2``, distinct), each cut to its first
``--note_chars`` characters at a line break (a medication section's length: the full notes would take hours on
these 2 cores with no more to learn), written as one Parquet file. The model: the quickstart's TransformerCRF
(``make quickstart``) exported with ``export_onnx.py`` (fp32), so the figures measure Spark's overhead and scaling,
not a large encoder; docs/spark.md turns them into a cost model with the per-core speed of MiniLM int8
(bench/results/onnx_speed.json).

Output: ``bench/results/spark_annotation.json`` (numbers and settings only).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

sys.path.insert(0, str(common.REPO_DIR))

CONFIGS = {"local_1": "local[1]", "local_2": "local[2]"}


def write_notes(path: Path, num_notes: int, note_chars: int) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from clinical_ner_crf.synthetic_n2c2 import generate_notes

    ids, texts = [], []
    for note in generate_notes(num_notes, seed=11, split="spark-bench"):
        text = note.text
        if len(text) > note_chars:
            cut = text.rfind("\n", 0, note_chars)
            text = text[:cut if cut > note_chars // 2 else note_chars]
        ids.append(note.doc_id)
        texts.append(text)
    pq.write_table(pa.table({"note_id": ids, "text": texts}), path, row_group_size=10_000)
    return {"notes": len(ids), "characters": sum(map(len, texts)),
            "mean_characters": round(sum(map(len, texts)) / len(texts), 1)}


class Sampler(threading.Thread):
    """Peak RSS of the command's JVM and Python workers, and when the first worker and first output appeared."""

    def __init__(self, root_pid: int, staging_parent: Path, started: float):
        super().__init__(daemon=True)
        self.root_pid, self.staging_parent, self.started = root_pid, staging_parent, started
        self.peak = {"jvm": 0.0, "python_worker": 0.0, "total": 0.0}
        self.first_worker = self.first_output = None
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        kinds: dict[int, str] = {}  # pid -> "jvm", "python_worker" or "other", looked up once per process
        while not self.stop.is_set():
            try:
                tree = psutil.Process(self.root_pid).children(recursive=True)
            except psutil.Error:
                break
            total = 0.0
            for process in tree:
                try:
                    if process.pid not in kinds:
                        cmdline = " ".join(process.cmdline())
                        parent = " ".join(psutil.Process(process.ppid()).cmdline())
                        worker = "pyspark.daemon" in cmdline and "pyspark.daemon" in parent
                        kinds[process.pid] = ("jvm" if "java" in cmdline.split(" ")[0] else
                                              "python_worker" if worker else "other")
                    rss = process.memory_info().rss / 2**20
                except psutil.Error:
                    continue
                total += rss
                kind = kinds[process.pid]
                if kind != "other":
                    self.peak[kind] = max(self.peak[kind], rss)
                if kind == "python_worker" and self.first_worker is None:
                    self.first_worker = time.perf_counter() - self.started
            self.peak["total"] = max(self.peak["total"], total)
            parts = self.staging_parent.glob(".out.partial-*/entities.parquet/**/part-*")
            if self.first_output is None and any(True for _ in parts):
                self.first_output = time.perf_counter() - self.started
            time.sleep(1.0)  # (a lighter hand than 0.2 s: the sampler shares the cores it measures)


def run_config(master: str, args, table: Path, model: Path, work: Path) -> dict[str, Any]:
    root = work / master.replace("[", "_").replace("]", "")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    argv = [sys.executable, str(common.REPO_DIR / "annotate_spark.py"), "--model_name_or_path", str(model),
            "--input_table", str(table), "--output_dir", str(root / "out"), "--master", master,
            "--spark_conf", f"spark.driver.memory={args.driver_memory}"]
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=common.REPO_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    sampler = Sampler(process.pid, root, started)
    sampler.start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{master}: exit {process.returncode}\n{stderr[-3000:]}")
    summary = json.loads((root / "out" / "summary.json").read_text())
    return {"master": master, "seconds": round(seconds, 2),
            "notes_per_second": round(summary["notes_annotated"] / seconds, 1),
            "annotation_seconds": round(seconds - sampler.first_worker, 2) if sampler.first_worker else None,
            "seconds_to_first_worker": round(sampler.first_worker, 2) if sampler.first_worker else None,
            "seconds_to_first_output": round(sampler.first_output, 2) if sampler.first_output else None,
            "peak_rss_mb": {key: round(value, 1) for key, value in sampler.peak.items()},
            "partitions": summary["settings"]["num_partitions"], "notes": summary["notes_annotated"],
            "entities": summary["entities"], "out": str(root / "out")}


def entity_rows(folder: Path) -> list[tuple]:
    import pyarrow.dataset as ds

    table = ds.dataset(folder / "entities.parquet", format="parquet").to_table()
    return sorted(zip(*[table.column(name).to_pylist() for name in ("document_id", "id", "type", "start", "end",
                                                                      "confidence")]))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num_notes", type=int, default=100_000)
    parser.add_argument("--note_chars", type=int, default=800)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--model", default=str(common.REPO_DIR / "outputs" / "quickstart" / "model"),
                        help="A run_ner_crf.py model folder (exported to ONNX here) or an export_onnx.py folder.")
    parser.add_argument("--driver_memory", default="4g")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--output", default=str(common.RESULTS_DIR / "spark_annotation.json"))
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="spark_bench_"))
    try:
        if args.smoke:
            args.num_notes, args.rounds = 300, 1
            args.model = str(common.smoke_dir() / "spark_model")
            if not Path(args.model, "config.json").exists():
                smoke_model(Path(args.model))
        model = Path(args.model)
        if not (model / "crf.json").exists() and not (model / "model.onnx").exists():
            if not (model / "config.json").exists():
                raise SystemExit(f"{model}: no model (run `make quickstart` first, or pass --model)")
            export = work / "onnx"
            if common.command("export_onnx").main(["--model_name_or_path", str(model), "--output_dir",
                                                   str(export)]) != 0:
                raise SystemExit("export_onnx.py failed")
            model = export
        table = work / "notes.parquet"
        notes = write_notes(table, args.num_notes, args.note_chars)
        runs: dict[str, list] = {name: [] for name in CONFIGS}
        for round_index in range(args.rounds):
            for name, master in CONFIGS.items():
                run = run_config(master, args, table, model, work / f"round{round_index}")
                print(f"round {round_index} {master}: {run['seconds']} s, {run['notes_per_second']} notes/s",
                      flush=True)
                runs[name].append(run)
        same = entity_rows(Path(runs["local_1"][0]["out"])) == entity_rows(Path(runs["local_2"][0]["out"]))
        for config in runs.values():
            for run in config:
                run.pop("out")

        def median(name: str, key: str) -> float:
            return statistics.median(run[key] for run in runs[name])

        result = {
            "machine": common.machine_info(),
            "notes": notes,
            "model": "quickstart TransformerCRF (from scratch, tiny), ONNX fp32" if not args.smoke else "smoke",
            "rounds": args.rounds,
            "runs": runs,
            "median_seconds": {name: median(name, "seconds") for name in runs},
            "speedup_local_2_over_local_1": round(median("local_1", "seconds") / median("local_2", "seconds"), 3),
            "annotation_speedup": round(median("local_1", "annotation_seconds")
                                        / median("local_2", "annotation_seconds"), 3),
            "entities_identical_local_1_local_2": same,
        }
        common.write_json(Path(args.output), result)
        print(json.dumps({key: result[key] for key in ("median_seconds", "speedup_local_2_over_local_1",
                                                      "annotation_speedup", "entities_identical_local_1_local_2")}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def smoke_model(folder: Path) -> None:
    """A tiny random CRF on a synthetic vocabulary, exported to ONNX (speed does not depend on what it learned)."""
    import torch

    sys.path.insert(0, str(common.REPO_DIR / "tests"))
    from clinical_ner_crf.synthetic_n2c2 import generate_notes
    from clinical_ner_crf.subwords import train_subword_tokenizer
    from clinical_ner_crf.tagging import N2C2_LABELS, tokenize_words
    from clinical_ner_crf.windows import copy_pipeline_files
    from modeling_crf import CRFForTokenClassification, CRFTokenClassificationConfig
    from transformers import BertConfig

    words = [[word for word, _, _ in tokenize_words(note.text)] for note in generate_notes(20, seed=1, split="smoke")]
    tokenizer = train_subword_tokenizer(words, vocab_size=600)
    torch.manual_seed(0)
    encoder = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)
    model = CRFForTokenClassification(CRFTokenClassificationConfig(encoder_config=encoder.to_dict(),
                                                                   id2label=dict(enumerate(N2C2_LABELS)))).eval()
    model.set_subword_kinds(tokenizer)
    source = folder.parent / "spark_model_torch"
    model.save_pretrained(source)
    copy_pipeline_files(source)
    tokenizer.save_pretrained(source)
    if common.command("export_onnx").main(["--model_name_or_path", str(source), "--output_dir", str(folder)]) != 0:
        raise SystemExit("export_onnx.py failed")


if __name__ == "__main__":
    main()
