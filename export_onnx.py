#!/usr/bin/env python
"""Export a trained model folder (CRF or linear "Apt") to an ONNX folder that onnxruntime runs.

    python export_onnx.py --model_name_or_path runs/bert_crf --output_dir runs/bert_crf_onnx [--quantize int8]
    python annotate_notes.py --backend onnx --model_name_or_path runs/bert_crf_onnx --input_dir notes/ --output_dir out/

What is exported: the encoder and the emission layer (``CRFForTokenClassification``: encoder -> dropout
(identity in eval) -> linear; a stock ``AutoModelForTokenClassification``: its logits), with
``torch.onnx.export`` (the TorchScript exporter, ``dynamo=False``: it needs no ``onnxscript``), dynamic batch
and sequence axes. Inputs ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the encoder takes
them), output ``emissions`` [batch, sequence, labels]. The CRF is not in the graph: its effective scores
(start, transitions, end, IOB2 constraints applied as ``crf_scores()`` applies them) go to ``crf.json`` and
``onnx_backend.py`` decodes in numpy, over the same positions as ``modeling_crf``.

The folder: ``model.onnx`` (fp32), ``model.int8.onnx`` (``--quantize int8``: onnxruntime dynamic quantization,
int8 weights of MatMul/Gemm, activations quantized at run time; ``model.onnx`` stays fp32 beside it),
``config.json`` (the model's), the tokenizer, ``crf.json`` (CRF models), ``onnx_export.json`` (source,
opset, the verification's max emission difference), ``quantization.json`` (what was quantized), ``README.md``
(a card). Numbers only: nothing in it holds note or corpus text.

Verification: the fp32 graph is run on dummy inputs of other batch sizes and lengths than the traced one
(with and without padding) and its emissions compared with PyTorch; the export fails above ``--atol``.
A non-empty ``--output_dir`` is refused unless ``--overwrite_output_dir``.
"""

from __future__ import annotations

import inspect
import json
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from transformers import AutoModelForTokenClassification, HfArgumentParser

import modeling_crf  # noqa: F401  (registers the CRF model with the Auto classes)
from corpus_io import CRF_FILE, EXPORT_INFO_FILE, ONNX_FILE, ONNX_INT8_FILE, QUANTIZATION_FILE, RUN_INFO_FILE
from modeling_crf import IMPOSSIBLE_SCORE, bio_transition_mask
from onnx_backend import EMISSIONS_OUTPUT, OnnxTokenClassifier
from run_folders import vocabulary_from_corpus
from windows import encoder_max_positions, is_crf_model, load_tokenizer, model_labels

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
# Files this script writes (removed first with --overwrite_output_dir, so no stale int8 model survives).
EXPORT_FILES = (ONNX_FILE, ONNX_INT8_FILE, CRF_FILE, EXPORT_INFO_FILE, QUANTIZATION_FILE, "config.json", "README.md")


@dataclass
class ExportArguments:
    model_name_or_path: str = field(metadata={"help": "A trained model folder (run_ner_crf.py output) or Hub id."})
    output_dir: str = field(metadata={"help": "The ONNX folder to write (must be empty or new)."})
    quantize: Optional[str] = field(default=None, metadata={
        "help": "int8: also write model.int8.onnx (onnxruntime dynamic quantization, QInt8 weights).",
        "choices": ["int8"]})
    opset: int = field(default=DEFAULT_OPSET, metadata={"help": "ONNX opset version."})
    atol: float = field(default=1e-4, metadata={"help": "Max abs emission difference (fp32 ONNX vs PyTorch) allowed."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace an earlier export in output_dir."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Run the modeling code shipped with the model."})
    model_revision: str = field(default="main", metadata={"help": "Branch, tag or commit of a Hub model."})
    token: Optional[str] = field(default=None, metadata={"help": "Hub token for private models."})


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


def model_card(info: dict, quantization: dict | None) -> str:
    lines = [
        "# ONNX export",
        "",
        f"Made by `export_onnx.py` from `{info['source_model']}` ({info['model_kind']} model, "
        f"{info['num_labels']} labels), torch {info['torch_version']}, opset {info['opset']}, "
        f"TorchScript exporter, dynamic batch and sequence axes.",
        "",
        f"- `{ONNX_FILE}`: encoder + emission layer, fp32. Inputs: {', '.join(info['inputs'])}; "
        f"output `{EMISSIONS_OUTPUT}` [batch, sequence, {info['num_labels']}].",
        f"- Verified at export: max abs emission difference to PyTorch {info['max_abs_emission_diff']:.3g} "
        f"(tolerance {info['atol']:g}) on dummy inputs.",
    ]
    if info["model_kind"] == "crf":
        lines.append(f"- `{CRF_FILE}`: the CRF's start/transition/end scores with the IOB2 constraints applied; "
                     f"decoded (Viterbi, forward-backward marginals) in numpy by `onnx_backend.py` over the "
                     f"positions the model was trained on (`{info['label_alignment']}`).")
    if quantization:
        ops = ", ".join(f"{op} {n}" for op, n in quantization["quantized_op_types"].items())
        lines.append(f"- `{ONNX_INT8_FILE}`: dynamic int8 quantization (onnxruntime `quantize_dynamic`, QInt8 "
                     f"weights): {ops}; {quantization['float_matmul_gemm_left']} of "
                     f"{quantization['float_matmul_gemm_before']} MatMul/Gemm left in float; "
                     f"emission difference to PyTorch {info.get('int8_max_abs_emission_diff', float('nan')):.3g} "
                     f"(not bounded: quantization changes scores). See `{QUANTIZATION_FILE}`.")
    if info["vocabulary_from_corpus"]:
        lines.append("- The tokenizer's vocabulary was learned from the training notes (the source model's "
                     f"`{RUN_INFO_FILE}`): its words come from them.")
    lines += ["", "Run it with `python annotate_notes.py --backend onnx --model_name_or_path THIS_FOLDER ...` or "
              "`NoteAnnotator.from_pretrained(THIS_FOLDER, backend=\"onnx\")`.", ""]
    return "\n".join(lines)


def prepare_output_dir(output_dir: Path, overwrite: bool) -> None:
    if output_dir.exists() and any(output_dir.iterdir()):
        if not overwrite:
            raise ValueError(f"output_dir {output_dir} is not empty; pass --overwrite_output_dir to replace it")
        for name in EXPORT_FILES:
            (output_dir / name).unlink(missing_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = HfArgumentParser(ExportArguments)
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    output_dir = Path(args.output_dir)
    try:
        if Path(args.model_name_or_path).exists() and output_dir.resolve() == Path(args.model_name_or_path).resolve():
            raise ValueError("output_dir must not be the model folder")
        prepare_output_dir(output_dir, args.overwrite_output_dir)
    except ValueError as error:
        print(f"export_onnx.py: error: {error}", file=sys.stderr)
        return 2

    hub = {"revision": args.model_revision, "token": args.token, "trust_remote_code": args.trust_remote_code}
    model = AutoModelForTokenClassification.from_pretrained(args.model_name_or_path, **hub).float().eval()
    labels = model_labels(model)
    tokenizer = load_tokenizer(args.model_name_or_path, **hub)
    input_names = onnx_input_names(model)
    wrapper = EmissionModel(model, input_names).eval()

    # Traced on a padded batch: the attention-mask path must be in the graph (an all-ones trace may drop it).
    example = dummy_inputs(tokenizer, input_names, batch=2, length=16, padded=True, seed=0)
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in [*input_names, EMISSIONS_OUTPUT]}
    with torch.no_grad():
        torch.onnx.export(wrapper, tuple(example.values()), str(output_dir / ONNX_FILE), input_names=input_names,
                          output_names=[EMISSIONS_OUTPUT], dynamic_axes=dynamic_axes, opset_version=args.opset,
                          do_constant_folding=True, dynamo=False)
    # Beside the graph: config (labels, label_alignment), tokenizer, CRF scores.
    model.config.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    crf = is_crf_model(model)
    if crf:
        (output_dir / CRF_FILE).write_text(json.dumps(crf_parameters(model, labels), indent=1) + "\n", encoding="utf-8")

    max_diff = verify(model, wrapper, tokenizer, input_names, output_dir, ONNX_FILE)
    logger.info("fp32 ONNX vs PyTorch: max abs emission difference %.3g", max_diff)
    if not max_diff <= args.atol:
        (output_dir / ONNX_FILE).unlink()
        print(f"export_onnx.py: error: the ONNX emissions differ from PyTorch by {max_diff:.3g} "
              f"(more than --atol {args.atol:g}); {ONNX_FILE} removed", file=sys.stderr)
        return 1
    info = {
        "source_model": args.model_name_or_path,
        "model_kind": "crf" if crf else "linear",
        "num_labels": len(labels),
        "label_alignment": getattr(model.config, "label_alignment", None) if crf else None,
        "inputs": input_names,
        "output": EMISSIONS_OUTPUT,
        "opset": args.opset,
        "exporter": "torch.onnx.export (TorchScript, dynamo=False)",
        "torch_version": torch.__version__.split("+")[0],
        "atol": args.atol,
        "max_abs_emission_diff": max_diff,
        "files": {"fp32": ONNX_FILE, "int8": ONNX_INT8_FILE if args.quantize else None},
        "vocabulary_from_corpus": vocabulary_from_corpus(args.model_name_or_path),
    }
    if info["vocabulary_from_corpus"]:
        logger.warning("the tokenizer's vocabulary was learned from the training notes (%s of the model): "
                       "its words come from them; share the export only where the notes may be shared", RUN_INFO_FILE)
    quantization = None
    if args.quantize == "int8":
        quantization = quantize_int8(output_dir)
        info["int8_max_abs_emission_diff"] = verify(model, wrapper, tokenizer, input_names, output_dir, ONNX_INT8_FILE)
        logger.info("int8 ONNX vs PyTorch: max abs emission difference %.3g", info["int8_max_abs_emission_diff"])
        (output_dir / QUANTIZATION_FILE).write_text(json.dumps(quantization, indent=1) + "\n", encoding="utf-8")
    (output_dir / EXPORT_INFO_FILE).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    (output_dir / "README.md").write_text(model_card(info, quantization), encoding="utf-8")
    print(f"Exported {args.model_name_or_path} to {output_dir} ({ONNX_FILE}"
          f"{' and ' + ONNX_INT8_FILE if quantization else ''}); max abs emission difference {max_diff:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
