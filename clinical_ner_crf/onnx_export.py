"""ONNX export: a token classifier's encoder and linear layer traced to an ONNX graph of emission scores (the CRF's scores saved beside it, decoded in numpy by :mod:`onnx_backend`), checked against torch, and optionally quantized to int8."""

from __future__ import annotations

import inspect
import hashlib
from collections import Counter
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from .files import DOCUMENTS_DIRNAME, ONNX_FILE, ONNX_INT8_FILE
from .onnx_backend import OnnxTokenClassifier, pad_batch
from .windows import encode_notes, encoder_max_positions, is_crf_model
from modeling_crf import IMPOSSIBLE_SCORE, bio_transition_mask


class EmissionModel(torch.nn.Module):
    """The exported part: encoder + emission layer (CRF) or the whole stock head (linear)."""

    def __init__(self, model, input_names: Sequence[str]):
        super().__init__()
        self.model, self.input_names, self.crf = model, list(input_names), is_crf_model(model)

    def forward(self, *inputs):
        kwargs = dict(zip(self.input_names, inputs))
        if self.crf:
            hidden = self.model.encoder(**kwargs, return_dict=True)[0]
            return self.model.classifier(self.model.dropout(hidden))
        return self.model(**kwargs).logits


def onnx_input_names(model) -> list[str]:
    """input_ids, attention_mask, and token_type_ids when the encoder takes them."""
    if is_crf_model(model):
        takes_token_types = model._encoder_takes_token_type_ids
    else:
        takes_token_types = "token_type_ids" in inspect.signature(model.forward).parameters
    return ["input_ids", "attention_mask"] + ["token_type_ids"] * takes_token_types


def dummy_inputs(tokenizer, input_names, batch: int, length: int, padded: bool, seed: int) -> dict[str, torch.Tensor]:
    """Random in-vocabulary ids between [CLS]/[SEP]-style specials; with ``padded``, rows of shorter lengths."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, len(tokenizer), (batch, length), generator=generator)
    mask = torch.ones(batch, length, dtype=torch.long)
    if padded:
        for row in range(1, batch):
            mask[row, max(2, length - 3 * row):] = 0
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = ids.masked_fill(mask == 0, pad)
    inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    return {name: inputs[name] for name in input_names}


def crf_parameters(model, labels: list[str]) -> dict:
    """The CRF's effective scores (``crf_scores()``: IOB2 constraints applied) and what they mean."""
    start, transitions, end = (tensor.detach().float().cpu() for tensor in model.crf_scores())
    record = {
        "labels": labels,
        "start_transitions": start.tolist(),
        "transitions": transitions.tolist(),  # transitions[i][j]: from tag i to tag j
        "end_transitions": end.tolist(),
        "use_bio_constraints": bool(model.config.use_bio_constraints),
        "impossible_score": IMPOSSIBLE_SCORE,
        "label_alignment": model.config.label_alignment,
        "decode_positions": "label_mask & attention_mask, packed to the left (first subwords; every subword "
                            "for label_alignment=all_subwords)",
    }
    if model.config.use_bio_constraints:
        start_ok, trans_ok, end_ok = bio_transition_mask(model.config.id2label)
        record["allowed"] = {"start": start_ok.tolist(), "transitions": trans_ok.tolist(), "end": end_ok.tolist()}
    return record


def verify(model, wrapper, tokenizer, input_names, onnx_dir: Path, model_file: str) -> float:
    """Max abs emission difference between PyTorch and the ONNX graph on dummy inputs of several shapes."""
    session = OnnxTokenClassifier(onnx_dir, model_file)
    worst = 0.0
    for seed, (batch, length, padded) in enumerate([(1, 7, False), (3, 23, True), (5, 64, True), (2, 130, False)]):
        length = min(length, encoder_max_positions(model.config) or length)
        inputs = dummy_inputs(tokenizer, input_names, batch, length, padded, seed)
        with torch.no_grad():
            expected = wrapper(*inputs.values()).float().numpy()
        got = session.emissions({name: tensor.numpy() for name, tensor in inputs.items()})
        attended = inputs["attention_mask"].numpy().astype(bool)
        worst = max(worst, float(np.abs(expected - got)[attended].max()))
    return worst


def quantize_int8(output_dir: Path) -> dict:
    """``model.int8.onnx`` by onnxruntime dynamic quantization (QInt8 weights); what changed, by op type."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(output_dir / ONNX_FILE), str(output_dir / ONNX_INT8_FILE), weight_type=QuantType.QInt8)
    before = Counter(node.op_type for node in onnx.load(str(output_dir / ONNX_FILE)).graph.node)
    after = Counter(node.op_type for node in onnx.load(str(output_dir / ONNX_INT8_FILE)).graph.node)
    integer_ops = {op: n for op, n in after.items() if "Integer" in op or "Quant" in op or op.startswith("Q")}
    return {
        "method": "onnxruntime.quantization.quantize_dynamic",
        "weight_type": "QInt8",
        "activations": "quantized to uint8 at run time (DynamicQuantizeLinear)",
        "file": ONNX_INT8_FILE,
        "fp32_file_kept": ONNX_FILE,
        "op_types_before": dict(sorted(before.items())),
        "op_types_after": dict(sorted(after.items())),
        "quantized_op_types": {op: n for op, n in sorted(integer_ops.items())},
        "float_matmul_gemm_left": after.get("MatMul", 0) + after.get("Gemm", 0),
        "float_matmul_gemm_before": before.get("MatMul", 0) + before.get("Gemm", 0),
        "bytes_fp32": (output_dir / ONNX_FILE).stat().st_size,
        "bytes_int8": (output_dir / ONNX_INT8_FILE).stat().st_size,
    }


# Enough windows to measure activation ranges on, and a bound on the time calibration takes (one fp32 pass over
# them) whatever the number and length of the notes given: PHEE's 200 calibration notes are about 210 windows.
MAX_CALIBRATION_WINDOWS = 2048


def calibration_batches(texts: Mapping[str, str], tokenizer, input_names: Sequence[str], max_seq_length: int,
                        stride: int, batch_size: int = 16, max_windows: int = MAX_CALIBRATION_WINDOWS
                        ) -> tuple[list[dict[str, np.ndarray]], str, int]:
    """Notes as the annotator feeds them to the graph (the same sentences, words, windows and padding:
    ``windows.encode_notes``, ``onnx_backend.pad_batch``), for static quantization to measure activation ranges on:
    every window, or ``max_windows`` of them (a fixed sample) when the notes have more. Also the SHA-256 of the input
    ids of the windows used, which names the calibration set without holding its text, and how many windows the
    notes had."""
    import random

    encoded = encode_notes(texts, tokenizer, max_seq_length, stride)
    if not encoded.order:
        raise ValueError("the calibration notes have no words to calibrate on")
    order = encoded.order
    if len(order) > max_windows:
        chosen = set(random.Random(0).sample(order, max_windows))
        order = [row for row in order if row in chosen]  # still sorted by length: batches of like lengths
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batches = [pad_batch(encoded.rows, order[first:first + batch_size], list(input_names), pad_token_id)
               for first in range(0, len(order), batch_size)]
    digest = hashlib.sha256()
    for row in sorted(order):
        digest.update(np.asarray(encoded.rows["input_ids"][row], dtype=np.int64).tobytes())
    return batches, digest.hexdigest(), len(encoded.order)


def training_notes_sample(dataset_path: str | Path, count: int, seed: int = 0) -> dict[str, str]:
    """``count`` training notes of a prepare_n2c2.py dataset (a fixed random sample; never validation or test notes),
    by document id: what static quantization calibrates on when the user gives a dataset rather than notes."""
    import random

    from datasets import load_from_disk

    from .command_line import UsageError

    documents = load_from_disk(str(Path(dataset_path) / DOCUMENTS_DIRNAME)).select_columns(["document_id", "text", "split"])
    train = [index for index, split in enumerate(documents["split"]) if split == "train"]
    if not train:
        raise UsageError(f"--dataset_path {dataset_path}: no training notes to calibrate on")
    chosen = sorted(random.Random(seed).sample(train, min(count, len(train))))
    rows = documents.select(chosen)
    return dict(zip(rows["document_id"], rows["text"]))


def _emission_matmul(model) -> str | None:
    """The name of the MatMul that makes the emission scores (the classifier layer): the last one before the output."""
    producers = {output: node for node in model.graph.node for output in node.output}
    pending, seen = [model.graph.output[0].name], set()
    while pending:
        node = producers.get(pending.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in ("MatMul", "Gemm"):
            return node.name
        pending.extend(node.input)
    return None


# How static int8 quantizes, chosen on PHEE's validation notes (MiniLM-CRF; bench/int8_layers.py, bench/README.md
# "Which layers int8 may touch"): every MatMul's inputs (activations and weights) in int8, its output left in float
# (onnxruntime then fuses each into one MatMulIntegerToFloat kernel), and the classifier layer in fp32. With every
# MatMul's output quantized too (QLinearMatMul), int8 lost 1.45 strict micro-F1 against fp32 and kept 702 of 961
# notes' entities; with float outputs it lost 0.08 and kept 849. Keeping the feed-forward output layers in fp32 as
# well (their input, the GELU's output, has rare large values) kept more notes' entities (880) but lost 0.24, and
# those layers are a third of the encoder's multiply-adds: the model took 1.06 s on 300 PHEE test notes' windows
# where float outputs alone took 0.76 s (fp32 1.58 s; requantized outputs with those layers in fp32, 1.14 s;
# alternating rounds, one process).
FLOAT_OUTPUT_OP_TYPES = ("MatMul", "Gemm")


def quantize_int8_static(output_dir: Path, batches: Sequence[Mapping[str, np.ndarray]], calibration_sha256: str,
                         keep_emissions_fp32: bool = True) -> dict:
    """``model.int8.onnx`` by onnxruntime static quantization: activation ranges measured once on calibration
    ``batches`` (MinMax), int8 weights per output channel and asymmetric uint8 activations in QDQ form. The scales
    are fixed in the graph, so a note's scores never depend on the other notes of its batch (dynamic quantization
    takes them from each batch). The MatMuls' outputs stay float (:data:`FLOAT_OUTPUT_OP_TYPES`: no requantization
    between layers). ``keep_emissions_fp32``: the classifier layer, whose scores feed the CRF, stays fp32. Measured
    on PHEE (MiniLM-CRF, strict micro-F1 against fp32): -0.08 on the validation notes; on the test notes, symmetric int8 activations cost 11 points and Percentile calibration 68 (it clips the attention
    mask's large negative bias)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.remaining = iter(batches)

        def get_next(self):
            return next(self.remaining, None)

    prepared = output_dir / f".{ONNX_FILE}.prepared"
    quant_pre_process(str(output_dir / ONNX_FILE), str(prepared), skip_symbolic_shape=True)
    try:
        emission = _emission_matmul(onnx.load(str(prepared)))
        excluded = [emission] if emission and keep_emissions_fp32 else []
        quantize_static(str(prepared), str(output_dir / ONNX_INT8_FILE), Batches(), quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=excluded,
                        extra_options={"OpTypesToExcludeOutputQuantization": list(FLOAT_OUTPUT_OP_TYPES)})
        # Not CalibMaxIntermediateOutputs: onnxruntime 1.32's MinMax calibrator clears each full chunk of batches
        # without merging its ranges, so only the last, partial chunk counts (PHEE: 6 of 14 batches; strict micro-F1
        # 71.45 where all 14 give 71.34). Nor is it needed: the calibrator keeps each batch's reduced min and max
        # (ReduceMin/ReduceMax outputs), not its activations.
    finally:
        prepared.unlink(missing_ok=True)
    before = Counter(node.op_type for node in onnx.load(str(output_dir / ONNX_FILE)).graph.node)
    after = Counter(node.op_type for node in onnx.load(str(output_dir / ONNX_INT8_FILE)).graph.node)
    return {
        "method": "onnxruntime.quantization.quantize_static",
        "format": "QDQ",
        "weight_type": "QInt8, per output channel",
        "activations": "QUInt8, asymmetric, scales fixed from the calibration notes (MinMax): independent of the batch",
        "outputs": f"float: {', '.join(FLOAT_OUTPUT_OP_TYPES)} outputs are not requantized (fused to MatMulIntegerToFloat)",
        "calibration": {"windows": sum(len(batch["input_ids"]) for batch in batches), "batches": len(batches),
                        "input_ids_sha256": calibration_sha256},
        "kept_fp32": excluded,
        "kept_fp32_by_reason": {"the classifier layer (its scores feed the CRF)": excluded},
        "file": ONNX_INT8_FILE,
        "fp32_file_kept": ONNX_FILE,
        "op_types_before": dict(sorted(before.items())),
        "op_types_after": dict(sorted(after.items())),
        "quantized_op_types": {op: n for op, n in sorted(after.items()) if op.endswith("QuantizeLinear")},
        # In QDQ form every MatMul stays a MatMul node between Dequantize and Quantize (fused to integer kernels when
        # the session loads); the float ones are those excluded.
        "float_matmul_gemm_left": len(excluded),
        "float_matmul_gemm_before": before.get("MatMul", 0) + before.get("Gemm", 0),
        "bytes_fp32": (output_dir / ONNX_FILE).stat().st_size,
        "bytes_int8": (output_dir / ONNX_INT8_FILE).stat().st_size,
    }
