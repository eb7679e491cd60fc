#!/usr/bin/env python
"""Which layers may static int8 touch? Each kind of MatMul, and each encoder layer, kept in fp32 in turn, on VALIDATION notes.

    python bench/int8_layers.py --corpus phee --model DIR     # a run_ner_crf.py folder trained on the corpus

How ``onnx_export.quantize_int8_static`` was chosen. The model's fp32 graph is quantized as ``export_onnx.py --quantize
int8`` does (onnxruntime ``quantize_static``, QDQ, per-channel int8 weights, asymmetric uint8 activations, MinMax
ranges from ``--calibration_notes`` training notes, measured once and reused: onnxruntime's calibration cache), each
time leaving one more group of MatMuls in fp32 besides the classifier layer: one kind across the encoder (query,
key, value, attention output, feed-forward input, feed-forward output, the two attention products), one encoder
layer whole, each layer's feed-forward output alone, and a few unions; each MatMul's output requantized
(QLinearMatMul), and, for two of them, left in float (MatMulIntegerToFloat, the product's choice). Each graph
annotates the corpus's
*validation* notes through ``NoteAnnotator`` (test notes are never looked at here): strict micro-F1 and per-type F1
against fp32, the notes whose entities are exactly fp32's, and the model's time on the validation windows (one
timing per row, taken one after another, so not a comparison: ``bench/onnx_speed.py``'s alternating rounds are).

Output: ``bench/results/int8_layers.json`` (numbers only).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import common  # noqa: E402
from int8_accuracy import entities, score  # noqa: E402

export_onnx = common.command("export_onnx")  # the command, called in-process as from its command line

KINDS = (("query", "/query/"), ("key", "/key/"), ("value", "/value/"), ("attention_output", "attention/output/dense"),
         ("feed_forward_input", "intermediate/dense"), ("feed_forward_output", "/output/dense"))


def matmul_kind(node, weights: set[str], emission: str) -> str:
    """A BERT-family MatMul's role, by its name (this study's model is BERT-shaped; the product finds the feed-forward
    outputs by their weights' shape instead)."""
    if node.name == emission:
        return "emissions"
    if not any(name in weights for name in node.input):
        return "attention_products"  # activation x activation: scores and the weighted sum
    return next((kind for kind, pattern in KINDS if pattern in node.name), "other")


def _model_seconds(graph: Path, feeds: list[dict]) -> float:
    """The graph's time over ``feeds`` (best of 3 passes after a warm-up; the cores' count of threads)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    times = []
    for _ in range(4):
        started = time.perf_counter()
        for feed in feeds:
            session.run(None, feed)
        times.append(time.perf_counter() - started)
    return min(times[1:])


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="phee", choices=list(common.CORPORA))
    parser.add_argument("--model", required=True, help="a run_ner_crf.py folder trained on --corpus")
    parser.add_argument("--calibration_notes", type=int, default=200)
    parser.add_argument("--output", default=str(common.RESULTS_DIR / "int8_layers.json"))
    args = parser.parse_args(argv)

    import onnx
    from datasets import load_from_disk
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from clinical_ner_crf.note_annotator import NoteAnnotator
    from clinical_ner_crf.onnx_export import _emission_matmul, calibration_batches, training_notes_sample
    from clinical_ner_crf.windows import DEFAULT_STRIDE, load_tokenizer

    started = time.perf_counter()
    corpus_path = common.prepare_corpus(args.corpus)
    documents = [row for row in load_from_disk(str(corpus_path / "documents")) if row["split"] == "validation"]
    notes = {row["document_id"]: row["text"] for row in documents}
    result: dict[str, Any] = {"settings": {"corpus": args.corpus, "model": Path(args.model).name, "split": "validation",
                                           "validation_notes": len(notes), "calibration_notes": args.calibration_notes},
                              "machine": common.machine_info(), "variants": {}}
    with tempfile.TemporaryDirectory(prefix="bench-int8-layers-") as scratch:
        folder = Path(scratch) / "export"
        if export_onnx.main(["--model_name_or_path", args.model, "--output_dir", str(folder)]) != 0:
            raise SystemExit("export failed")
        tokenizer = load_tokenizer(str(folder))
        input_names = [node.name for node in onnx.load(str(folder / "model.onnx")).graph.input]
        batches, _, _ = calibration_batches(training_notes_sample(corpus_path, args.calibration_notes), tokenizer,
                                         input_names, 128, DEFAULT_STRIDE)
        prepared = folder / "prepared.onnx"
        quant_pre_process(str(folder / "model.onnx"), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared))
        weights = {tensor.name: None for tensor in graph.graph.initializer}
        emission = _emission_matmul(graph)
        matmuls = [node for node in graph.graph.node if node.op_type in ("MatMul", "Gemm")]
        groups: dict[str, list[str]] = {}
        for node in matmuls:
            kind = matmul_kind(node, set(weights), emission)
            layer = re.search(r"layer\.(\d+)", node.name)
            if kind != "emissions":
                groups.setdefault(kind, []).append(node.name)
            if layer:
                groups.setdefault(f"layer {layer.group(1)}", []).append(node.name)
        ffn_out = groups["feed_forward_output"]
        variants = {"nothing but the classifier": [], **groups}
        variants.update({f"feed_forward_output of layer {i}": [name] for i, name in enumerate(ffn_out)})
        half = len(ffn_out) // 2
        variants["feed_forward_output, first half of the layers"] = ffn_out[:half]
        variants["feed_forward_output, second half of the layers"] = ffn_out[half:]
        variants["feed_forward_output + layer 0"] = sorted(set(ffn_out) | set(groups["layer 0"]))
        variants["feed_forward_output + attention_products"] = sorted(set(ffn_out) | set(groups["attention_products"]))
        # Every variant above requantizes each MatMul's output (QLinearMatMul); these leave the outputs float
        # (MatMulIntegerToFloat): the product's choice, onnx_export.FLOAT_OUTPUT_OP_TYPES.
        float_variants = {"float outputs: nothing but the classifier": [],
                          "float outputs: feed_forward_output": ffn_out}

        class Batches(CalibrationDataReader):
            def __init__(self):
                self.remaining = iter(batches)

            def get_next(self):
                return next(self.remaining, None)

        def annotate(model_file: str):
            annotator = NoteAnnotator.from_pretrained(str(folder), backend="onnx", onnx_model_file=model_file,
                                                      max_seq_length=128)
            return annotator.predict(notes)

        # The model alone on the validation windows (batches of 32), for what each variant costs in time.
        windows, _, _ = calibration_batches(notes, tokenizer, input_names, 128, DEFAULT_STRIDE, batch_size=32)
        feeds = [{name: batch[name] for name in input_names} for batch in windows]
        result["fp32_seconds"] = _model_seconds(folder / "model.onnx", feeds)
        reference = annotate("model.onnx")
        fp32, reference_entities = score(documents, reference), entities(reference)
        result["fp32"] = fp32
        cache = folder / "ranges.json"  # the activation ranges, measured once
        runs = [(name, kept, False) for name, kept in variants.items()]
        runs += [(name, kept, True) for name, kept in float_variants.items()]
        for name, kept, float_outputs in runs:
            out = folder / "variant.onnx"
            extra = {"OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"]} if float_outputs else {}
            quantize_static(str(prepared), str(out), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                            weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                            op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=[emission, *kept],
                            calibration_cache_path=str(cache), extra_options=extra)
            predictions = annotate(out.name)
            row = score(documents, predictions)
            found = entities(predictions)
            row.update(kept_fp32=len(kept) + 1, float_outputs=float_outputs,
                       seconds=_model_seconds(folder / out.name, feeds),
                       minus_fp32=row["strict_micro_f1"] - fp32["strict_micro_f1"],
                       notes_same_entities_as_fp32=sum(found[d] == reference_entities[d] for d in notes))
            result["variants"][name] = row
            print(f"[int8-layers] {name:48s} fp32 MatMuls {len(kept) + 1:2d}: {row['minus_fp32']:+.2f}, "
                  f"{row['notes_same_entities_as_fp32']} of {len(notes)} notes as fp32, "
                  f"{result['fp32_seconds'] / row['seconds']:.2f}× fp32's speed", flush=True)
    result["total_seconds"] = time.perf_counter() - started
    common.write_json(Path(args.output), result)
    return result


if __name__ == "__main__":
    main()
