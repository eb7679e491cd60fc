#!/usr/bin/env python
"""Does int8 keep the model's accuracy? Trained models, fp32 vs static int8 (vs dynamic int8), F1 per corpus and per type.

    python bench/int8_accuracy.py --model phee=DIR --model ncbi=DIR --model bc2gm=DIR [--model phee=APT_DIR]
    python bench/int8_accuracy.py --smoke --model synthetic=DIR   # DIR trained on the synthetic smoke corpus

Each ``--model CORPUS=DIR`` is a ``run_ner_crf.py`` folder trained on that corpus's training split (the bench keeps
them with ``bench/quality.py``'s ``keep_model``). It is exported as a user exports it: ``export_onnx.py --quantize
int8 --dataset_path CORPUS`` (static int8, the default: calibrated on ``--calibration_notes`` training notes of the
corpus, never test notes), and again with ``--quantization_method dynamic``. On the corpus's test notes, through
``NoteAnnotator`` (the API ``annotate_notes.py`` runs): strict micro-F1 and per-type F1 of PyTorch, ONNX fp32, static
int8 and dynamic int8; int8 minus fp32 overall and per type; notes whose entities are fp32's; and whether ONNX fp32
gives PyTorch's entities. The quantization recipe (which layers stay fp32) was chosen on PHEE's *validation* notes
(``bench/README.md``, "Which layers int8 may touch"); NCBI-disease and BC2GM were not looked at before these runs.

Output: ``bench/results/int8_accuracy.json`` (numbers only).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import common  # noqa: E402

export_onnx = common.command("export_onnx")  # the command, called in-process as from its command line

TARGET_MICRO = 0.5  # strict micro-F1 points, int8 vs fp32
TARGET_PER_TYPE = 2.0


def score(documents, predictions) -> dict[str, Any]:
    from clinical_ner_crf.documents import BratDocument, BratEntity
    from clinical_ner_crf.n2c2_scoring import score_entities

    gold, predicted = [], []
    for row in documents:
        gold.append(BratDocument(row["document_id"], row["text"], [
            BratEntity(e["id"], e["type"], ((e["start"], e["end"]),), "", 0) for e in row["entities"]]))
        predicted.append(BratDocument(row["document_id"], row["text"], [
            BratEntity(f"T{i}", e.type, ((e.start, e.end),), "", 0)
            for i, e in enumerate(predictions[row["document_id"]].entities, 1)]))
    report = score_entities(gold, predicted)["strict"]
    return {"strict_micro_f1": 100 * report["micro"]["f1"],
            "per_type": {t: {"f1": 100 * row["f1"], "support": row["support"]}
                         for t, row in report["per_type"].items()}}


def entities(predictions) -> dict[str, list]:
    return {document: [(e.type, e.start, e.end) for e in p.entities] for document, p in predictions.items()}


def evaluate(corpus: str, model_dir: Path, corpus_path: Path, scratch: Path, calibration_notes: int) -> dict[str, Any]:
    from datasets import load_from_disk

    from clinical_ner_crf.files import ONNX_INT8_FILE
    from clinical_ner_crf.note_annotator import NoteAnnotator

    documents = [row for row in load_from_disk(str(corpus_path / "documents")) if row["split"] == "test"]
    notes = {row["document_id"]: row["text"] for row in documents}
    folders = {}
    for method in ("static", "dynamic"):
        folders[method] = scratch / f"{corpus}-{model_dir.name}-{method}"
        argv = ["--model_name_or_path", str(model_dir), "--output_dir", str(folders[method]), "--quantize", "int8",
                "--quantization_method", method]
        if method == "static":
            argv += ["--dataset_path", str(corpus_path), "--calibration_notes", str(calibration_notes)]
        started = time.perf_counter()
        if export_onnx.main(argv) != 0:
            raise SystemExit(f"export of {model_dir} ({method}) failed")
        print(f"[int8-accuracy] {corpus} {model_dir.name}: {method} export {time.perf_counter() - started:.0f} s",
              flush=True)
    annotators = {
        "torch": NoteAnnotator.from_pretrained(str(model_dir), device="cpu"),
        "onnx_fp32": NoteAnnotator.from_pretrained(str(folders["static"]), backend="onnx"),
        "onnx_int8": NoteAnnotator.from_pretrained(str(folders["static"]), backend="onnx",
                                                   onnx_model_file=ONNX_INT8_FILE),
        "onnx_int8_dynamic": NoteAnnotator.from_pretrained(str(folders["dynamic"]), backend="onnx",
                                                           onnx_model_file=ONNX_INT8_FILE),
    }
    result: dict[str, Any] = {"corpus": corpus, "model": model_dir.name, "test_notes": len(notes),
                              "quantization": common.read_json(folders["static"] / "quantization.json")}
    found = {}
    for name, annotator in annotators.items():
        predictions = annotator.predict(notes)
        found[name] = entities(predictions)
        result[name] = score(documents, predictions)
    fp32 = result["onnx_fp32"]
    for name in ("onnx_int8", "onnx_int8_dynamic"):
        row = result[name]
        row["minus_fp32"] = row["strict_micro_f1"] - fp32["strict_micro_f1"]
        row["per_type_minus_fp32"] = {t: row["per_type"][t]["f1"] - fp32["per_type"][t]["f1"]
                                      for t in fp32["per_type"]}
        row["notes_same_entities_as_fp32"] = sum(found[name][d] == found["onnx_fp32"][d] for d in notes)
        row["within_target"] = abs(row["minus_fp32"]) <= TARGET_MICRO
        row["every_type_within_target"] = all(abs(v) <= TARGET_PER_TYPE for v in row["per_type_minus_fp32"].values())
    result["onnx_fp32_entities_identical_to_torch"] = found["onnx_fp32"] == found["torch"]
    print(f"[int8-accuracy] {corpus} {model_dir.name}: fp32 {fp32['strict_micro_f1']:.2f}, static int8 "
          f"{result['onnx_int8']['strict_micro_f1']:.2f} ({result['onnx_int8']['minus_fp32']:+.2f}), dynamic "
          f"{result['onnx_int8_dynamic']['strict_micro_f1']:.2f} ({result['onnx_int8_dynamic']['minus_fp32']:+.2f})",
          flush=True)
    return result


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[], metavar="CORPUS=DIR",
                        help="a trained model folder and the built-in corpus it was trained on (repeatable)")
    parser.add_argument("--calibration_notes", type=int, default=200)
    parser.add_argument("--smoke", action="store_true", help="a tiny CRF trained on synthetic notes (seconds)")
    parser.add_argument("--output", default=str(common.RESULTS_DIR / "int8_accuracy.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result: dict[str, Any] = {"settings": {"calibration_notes": args.calibration_notes, "smoke": args.smoke,
                                           "target_micro_points": TARGET_MICRO, "target_per_type_points":
                                           TARGET_PER_TYPE}, "machine": common.machine_info(), "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as scratch:
        scratch = Path(scratch)
        pairs = [tuple(item.split("=", 1)) for item in args.model]
        if args.smoke:
            corpus_path = Path(os.environ.get("BENCH_SMOKE_DIR", common.CACHE_DIR)) / "smoke_int8"
            if not (corpus_path / "dataset_dict.json").is_file():
                common.command("prepare_n2c2").main(["--synthetic", "16", "--seed", "42", "--output_dir",
                                                     str(corpus_path), "--overwrite"])
            for corpus, model_dir in pairs:
                result["runs"].append(evaluate(corpus, Path(model_dir), corpus_path, scratch, args.calibration_notes))
        else:
            for corpus, model_dir in pairs:
                result["runs"].append(evaluate(corpus, Path(model_dir), common.prepare_corpus(corpus), scratch,
                                               args.calibration_notes))
    result["total_seconds"] = time.perf_counter() - started
    common.write_json(Path(args.output), result)
    return result


if __name__ == "__main__":
    main()
