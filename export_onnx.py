#!/usr/bin/env python
"""Export a trained model folder (CRF or linear "Apt") to an ONNX folder that onnxruntime runs.

    python export_onnx.py --model_name_or_path runs/bert_crf --output_dir runs/bert_crf_onnx \
        [--quantize int8 --dataset_path data/n2c2 | --calibration_dir some_training_notes/]
    python annotate_notes.py --backend onnx --model_name_or_path runs/bert_crf_onnx --input_dir notes/ --output_dir out/

What is exported: the encoder and the emission layer (``CRFForTokenClassification``: encoder -> dropout
(identity in eval) -> linear; a stock ``AutoModelForTokenClassification``: its logits), with
``torch.onnx.export`` (the TorchScript exporter, ``dynamo=False``: it needs no ``onnxscript``), dynamic batch
and sequence axes. Inputs ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the encoder takes
them), output ``emissions`` [batch, sequence, labels]. The CRF is not in the graph: its effective scores
(start, transitions, end, IOB2 constraints applied as ``crf_scores()`` applies them) go to ``crf.json`` and
``onnx_backend.py`` decodes in numpy, over the same positions as ``modeling_crf``.

The folder: ``model.onnx`` (fp32), ``model.int8.onnx`` (``--quantize int8``). Static quantization, the default:
activation scales measured once on notes like the user's (``--calibration_dir``, or ``--calibration_notes`` training
notes of ``--dataset_path``) and fixed in the graph, so a note's entities never depend on the other notes of its
batch; int8 weights per output channel, each MatMul's output left in float (no requantization between layers) and
the classifier layer kept in fp32, chosen on PHEE's validation notes (``onnx_export.FLOAT_OUTPUT_OP_TYPES``).
``--quantization_method
dynamic``: no calibration notes, activation scales taken from each batch at run time, so a note's scores depend
slightly on its batch. ``model.onnx`` stays fp32 beside it. Also in the folder: ``config.json`` (the model's), the tokenizer, ``crf.json`` (CRF models), ``onnx_export.json`` (source,
opset, the verification's max emission difference), ``quantization.json`` (what was quantized), ``README.md``
(a card). Numbers only: nothing in it holds note or corpus text.

Verification: the fp32 graph is run on dummy inputs of other batch sizes and lengths than the traced one
(with and without padding) and its emissions compared with PyTorch; the export fails above ``--atol``.

The folder appears whole or not at all (docs/architecture.md, "Output folders, re-runs and interruptions"):
it is written into a hidden sibling (``.NAME.partial-*``), verified, claimed whole in its manifest and moved
into place (``files.write_folder_atomically``); a sibling left by a killed export is removed (and named)
by the next one. A non-empty ``--output_dir`` is refused unless ``--overwrite``, and then replaced only once the
new export is complete, and only if it holds nothing the toolkit did not write. The folder is locked for the whole
export (``folder_safety.FolderLock``) and never
the model folder, inside it or around it. Bad arguments (a missing model, a relation model) are one line
with exit status 2; a model folder that cannot be read (a truncated ``.safetensors``, a broken
``config.json``) or a failed verification is one line with exit status 1 (``command_line.py``).
"""

from __future__ import annotations

import json
import logging
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from clinical_ner_crf.command_line import (
    SHARED_FLAG_HELP, DataError, UsageError, answer_early, first_line, parse_command, run_main,
)
from clinical_ner_crf.console import configure_output, print_outputs
from clinical_ner_crf.documents import read_text
from clinical_ner_crf.files import (
    DOCUMENTS_DIRNAME, CRF_FILE, EXPORT_INFO_FILE, ONNX_FILE, ONNX_INT8_FILE, QUANTIZATION_FILE, check_output_dir, set_tree_mode,
    usual_file_mode, write_folder_atomically,
)
from clinical_ner_crf.folder_safety import FolderLock, check_output_apart
from clinical_ner_crf.model_sources import check_local_model_sources, check_model_source

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
DEFAULT_CALIBRATION_NOTES = 200
SCRIPT = "export_onnx.py"
DESCRIPTION = __doc__.split("\n\n")[0]


@dataclass
class ExportArguments:
    model_name_or_path: str = field(metadata={"help": "A trained model folder (run_ner_crf.py output) or Hub id."})
    output_dir: str = field(metadata={"help": "The ONNX folder to write (must be empty or new)."})
    quantize: Optional[str] = field(default=None, metadata={
        "help": "int8: also write model.int8.onnx (onnxruntime quantization; --quantization_method).",
        "choices": ["int8"]})
    quantization_method: str = field(default="static", metadata={
        "choices": ["static", "dynamic"],
        "help": "With --quantize int8: static (the default: activation scales measured once on notes like yours, "
                "--calibration_dir or --dataset_path, and fixed in the graph, so a note's entities never depend on the "
                "other notes of its batch; per-channel weights; the classifier layer kept in fp32) or "
                "dynamic (scales taken from each batch at run time: no calibration notes needed, but a note's scores "
                "depend slightly on its batch)."})
    calibration_dir: Optional[str] = field(default=None, metadata={
        "help": "Static int8: a folder of .txt notes like those the model will annotate, read as the annotator reads "
                "them to measure the activation ranges (every note in it; a few hundred is plenty). Never written "
                "to; only their input ids' hash is recorded, in quantization.json."})
    dataset_path: Optional[str] = field(default=None, metadata={
        "help": "Static int8, instead of --calibration_dir: a dataset saved by prepare_n2c2.py; its training notes are "
                "sampled (--calibration_notes; never validation or test notes)."})
    calibration_notes: int = field(default=DEFAULT_CALIBRATION_NOTES, metadata={
        "help": "With --dataset_path: how many training notes to calibrate on (a fixed sample, seed 0)."})
    opset: int = field(default=DEFAULT_OPSET, metadata={"help": "ONNX opset version."})
    atol: float = field(default=1e-4, metadata={"help": "Max abs emission difference (fp32 ONNX vs PyTorch) allowed."})
    overwrite: bool = field(default=False, metadata={
        "help": SHARED_FLAG_HELP["overwrite"] + " Here: the earlier export is replaced once the new one is complete."})
    trust_remote_code: bool = field(default=False, metadata={"help": SHARED_FLAG_HELP["trust_remote_code"]})
    model_revision: str = field(default="main", metadata={"help": SHARED_FLAG_HELP["model_revision"]})
    token: Optional[str] = field(default=None, metadata={"help": SHARED_FLAG_HELP["token"]})


def check_local_inputs(args: ExportArguments) -> None:
    """Before the model code is imported (a mistyped path costs a second, not its seconds): a model path that reads
    as a local one, and the quantization flags that go together."""
    check_local_model_sources({"--model_name_or_path": args.model_name_or_path})
    static = args.quantize == "int8" and args.quantization_method == "static"
    given = [flag for flag, value in (("--calibration_dir", args.calibration_dir),
                                      ("--dataset_path", args.dataset_path)) if value]
    if given and not static:
        raise UsageError(f"{given[0]} gives the notes static int8 quantization calibrates on: "
                         + ("add --quantize int8" if args.quantize != "int8" else
                            "drop it, or --quantization_method static"))
    if static and len(given) != 1:
        raise UsageError("--quantize int8 (static, the default) measures activation ranges on notes like yours: give "
                         "--calibration_dir NOTES (a folder of .txt notes) or --dataset_path DATASET (its training "
                         "notes)" + (", not both" if given else ", or --quantization_method dynamic (no calibration, "
                                     "but a note's scores depend on its batch)"))
    if args.calibration_notes < 1:
        raise UsageError(f"--calibration_notes must be at least 1, got {args.calibration_notes}")
    if args.calibration_dir:
        folder = Path(args.calibration_dir)
        if not folder.is_dir():
            raise UsageError(f"--calibration_dir {folder}: " + ("not a folder" if folder.exists() else "no such folder"))
        if not any(folder.glob("*.txt")):
            raise UsageError(f"--calibration_dir {folder}: no .txt notes in it to calibrate on")
    if args.dataset_path and not (Path(args.dataset_path) / DOCUMENTS_DIRNAME).is_dir():
        raise UsageError(f"--dataset_path {args.dataset_path}: not a prepare_n2c2.py output folder (no "
                         f"{DOCUMENTS_DIRNAME}/ in it)")


def read_calibration_notes(folder: str | Path) -> dict[str, str]:
    """The .txt notes of ``--calibration_dir`` by name, read as the annotator reads notes (UTF-8, exact text)."""
    return {path.stem: read_text(path) for path in sorted(Path(folder).glob("*.txt"))}


if __name__ == "__main__":  # --help and the usage errors before the model code below: torch takes seconds to import
    answer_early(SCRIPT, (ExportArguments,), DESCRIPTION, check=check_local_inputs)

import torch  # noqa: E402
from transformers import AutoConfig, AutoModelForTokenClassification  # noqa: E402

import modeling_crf  # noqa: E402,F401  (registers the CRF model with the Auto classes)
from clinical_ner_crf.hub_upload import vocabulary_from_corpus  # noqa: E402
from clinical_ner_crf.model_cards import onnx_model_card, write_card  # noqa: E402
from clinical_ner_crf.onnx_backend import EMISSIONS_OUTPUT  # noqa: E402
from clinical_ner_crf.onnx_export import (  # noqa: E402
    EmissionModel, calibration_batches, crf_parameters, dummy_inputs, onnx_input_names, quantize_int8,
    quantize_int8_static, training_notes_sample, verify,
)
from clinical_ner_crf.relations import CONFIG_SENTENCE_WINDOW  # noqa: E402
from clinical_ner_crf.windows import (  # noqa: E402
    DEFAULT_STRIDE, is_crf_model, load_tokenizer, max_input_length, model_labels,
)

# What loading a model folder raises on a truncated or malformed file (safetensors' own error is a bare Exception).
try:
    from safetensors import SafetensorError as _SafetensorError
except ImportError:  # pragma: no cover - safetensors comes with transformers
    _SafetensorError = OSError
MODEL_READ_ERRORS = (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError, _SafetensorError)


def check_model_folder(path: str) -> None:
    """A local model path must be a folder with a config.json."""
    given = Path(path)
    if not given.exists():
        return  # a Hub id: what loading it says is reported there
    if not given.is_dir():
        raise UsageError(f"--model_name_or_path {path} is a file, not a model folder: give the folder that "
                         "run_ner_crf.py wrote (config.json and model.safetensors in it)")
    if not (given / "config.json").exists():
        raise UsageError(f"--model_name_or_path {path} holds no config.json: not a model folder; give the folder "
                         "that run_ner_crf.py wrote (or one of its checkpoint-* folders)")


def check_token_classifier(config, path: str) -> None:
    """Only token-classification (entity) models export: a run_re.py relation model (sequence classification) or
    any other head is refused, naming what it is and what to export instead."""
    architectures = [str(name) for name in (getattr(config, "architectures", None) or [])]
    if getattr(config, CONFIG_SENTENCE_WINDOW, None) is not None or any(
            name.endswith("ForSequenceClassification") for name in architectures):
        raise UsageError(f"--model_name_or_path {path} is a relation model (run_re.py output, "
                         f"{architectures[0] if architectures else 'sequence classification'}): only token-"
                         "classification (entity) models export to ONNX; export the entity model (run_ner_crf.py "
                         "output) and give the relation model as it is to annotate_notes.py "
                         "--relation_model_name_or_path (it runs with PyTorch beside --backend onnx)")
    if architectures and not any(name.endswith("ForTokenClassification") for name in architectures):
        raise UsageError(f"--model_name_or_path {path} is a {architectures[0]} model, not a token-classification "
                         "(entity) model: only run_ner_crf.py models (CRF or linear head) export to ONNX")


def _weights_file(path: str) -> str:
    """The weights file of a local model folder, for messages (the folder itself when none is found)."""
    folder = Path(path)
    for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"):
        if (folder / name).exists():
            return str(folder / name)
    return path


def _hub_kwargs(args: ExportArguments) -> dict:
    return {"revision": args.model_revision, "token": args.token, "trust_remote_code": args.trust_remote_code}


def load_source_config(args: ExportArguments):
    """The model's config, checked to be a token classifier's. A Hub id that cannot be loaded (none of that name, or
    offline and not cached) is a usage error; a local config.json that cannot be read, a data error."""
    path, local = args.model_name_or_path, Path(args.model_name_or_path).exists()
    check_model_folder(path)
    try:
        config = AutoConfig.from_pretrained(path, **_hub_kwargs(args))
    except MODEL_READ_ERRORS as error:
        if not local:
            raise UsageError(f"--model_name_or_path {path}: no such folder, and no Hub model of that name could be "
                             f"loaded ({first_line(error)})") from error
        raise DataError(f"{Path(path) / 'config.json'}: not a readable model config ({first_line(error)}); restore "
                        "the model folder from where run_ner_crf.py wrote it, or train it again") from error
    check_token_classifier(config, path)
    return config


def load_source_model(args: ExportArguments, config=None):
    """The model and tokenizer to export; a folder that cannot be read is one line (DataError), never a traceback."""
    path, local = args.model_name_or_path, Path(args.model_name_or_path).exists()
    config = config if config is not None else load_source_config(args)
    hub = _hub_kwargs(args)
    try:
        model = AutoModelForTokenClassification.from_pretrained(path, config=config, **hub).float().eval()
    except (*MODEL_READ_ERRORS, pickle.UnpicklingError) as error:
        where = _weights_file(path) if local else path
        raise DataError(f"{where}: the model cannot be loaded ({first_line(error)}); the file may be truncated or "
                        "damaged (an interrupted copy or save?): copy the model folder again, or export another "
                        "checkpoint") from error
    try:
        labels = model_labels(model)
        tokenizer = load_tokenizer(path, **hub)
    except MODEL_READ_ERRORS as error:
        raise DataError(f"{path}: its labels or tokenizer cannot be read ({first_line(error)}); give the folder "
                        "that run_ner_crf.py wrote, with its tokenizer files") from error
    return model, labels, tokenizer


def check_output_folder(output_dir: Path, overwrite: bool) -> None:
    """``files.check_output_dir`` (a non-empty folder needs --overwrite and must hold only the
    toolkit's files: it is replaced as a whole once the new export is complete), as a usage error."""
    try:
        check_output_dir(output_dir, overwrite)
    except FileExistsError as error:
        raise UsageError(f"--output_dir: {error} (the earlier export is replaced only once the new one is "
                         "complete)") from None


def export_to(args: ExportArguments, model, labels: list[str], tokenizer, folder: Path) -> dict:
    """Write and verify the whole export in ``folder`` (the hidden sibling); returns what the summary line says.
    A verification that fails raises DataError, and nothing of the export is kept."""
    input_names = onnx_input_names(model)
    wrapper = EmissionModel(model, input_names).eval()

    # Traced on a padded batch: the attention-mask path must be in the graph (an all-ones trace may drop it).
    example = dummy_inputs(tokenizer, input_names, batch=2, length=16, padded=True, seed=0)
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in [*input_names, EMISSIONS_OUTPUT]}
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter on purpose (no onnxscript needed): its deprecation notice is for torch's users.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        torch.onnx.export(wrapper, tuple(example.values()), str(folder / ONNX_FILE), input_names=input_names,
                          output_names=[EMISSIONS_OUTPUT], dynamic_axes=dynamic_axes, opset_version=args.opset,
                          do_constant_folding=True, dynamo=False)
    # Beside the graph: config (labels, label_alignment), tokenizer, CRF scores.
    model.config.save_pretrained(folder)
    # The export ships no model code: a config that names it (auto_map) would make AutoTokenizer.from_pretrained(folder)
    # stop to ask whether to run code that is not there.
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    for key in ("auto_map", "custom_pipelines"):
        config.pop(key, None)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tokenizer.save_pretrained(folder)
    crf = is_crf_model(model)
    if crf:
        (folder / CRF_FILE).write_text(json.dumps(crf_parameters(model, labels), indent=1) + "\n", encoding="utf-8")

    max_diff = verify(model, wrapper, tokenizer, input_names, folder, ONNX_FILE)
    logger.info("fp32 ONNX vs PyTorch: max abs emission difference %.3g", max_diff)
    if not max_diff <= args.atol:
        raise DataError(f"{args.model_name_or_path}: the ONNX emissions differ from PyTorch by {max_diff:.3g} (more "
                        f"than --atol {args.atol:g}); nothing was written: try another --opset, or a larger --atol "
                        "if the difference is acceptable")
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
        # The tokenizer copied beside the graph, as it says itself (its tokenizer_config.json mark, kept in the copy).
        "vocabulary_from_corpus": vocabulary_from_corpus(tokenizer),
    }
    if info["vocabulary_from_corpus"]:
        logger.warning("the tokenizer's vocabulary was learned from the training notes (marked in its "
                       "tokenizer_config.json): its words come from them; share the export only where the notes may "
                       "be shared")
    quantization = None
    if args.quantize == "int8" and args.quantization_method == "static":
        if args.calibration_dir:
            texts, source = read_calibration_notes(args.calibration_dir), "--calibration_dir"
        else:
            texts = training_notes_sample(args.dataset_path, args.calibration_notes)
            source = "--dataset_path (training notes, a fixed sample)"
        batches, digest, windows = calibration_batches(texts, tokenizer, input_names,
                                                       max_input_length(model, tokenizer, None), DEFAULT_STRIDE)
        quantization = quantize_int8_static(folder, batches, digest)
        quantization.update(calibration_notes=len(texts), calibration_source=source)
        quantization["calibration"]["windows_in_notes"] = windows  # the windows used: a sample when more
    elif args.quantize == "int8":
        quantization = quantize_int8(folder)
    if quantization is not None:
        info["int8_max_abs_emission_diff"] = verify(model, wrapper, tokenizer, input_names, folder, ONNX_INT8_FILE)
        logger.info("int8 ONNX vs PyTorch: max abs emission difference %.3g", info["int8_max_abs_emission_diff"])
        (folder / QUANTIZATION_FILE).write_text(json.dumps(quantization, indent=1) + "\n", encoding="utf-8")
    (folder / EXPORT_INFO_FILE).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    write_card(folder, onnx_model_card(info, quantization))
    set_tree_mode(folder, usual_file_mode())  # numbers and a tokenizer, no note text: the usual permissions
    return {"max_diff": max_diff, "quantized": quantization is not None}


def main(argv: Sequence[str] | None = None) -> int:
    """Export; bad arguments raise UsageError, an unreadable model or a failed verification DataError (one line
    each under ``command_line.run_main``)."""
    (args,) = parse_command(SCRIPT, (ExportArguments,), argv, DESCRIPTION)
    check_local_inputs(args)  # again when run in-process (answer_early checks a command line before the imports)
    configure_output(logger)
    output_dir = Path(args.output_dir)
    # Before any work, and before anything is created: the model, the output apart from it, the folder's rules.
    # The model is gettable (a folder, the local cache, or the Hub within seconds) before anything is created.
    args.model_name_or_path = check_model_source(args.model_name_or_path, revision=args.model_revision,
                                                 token=args.token)
    # A Hub id (no such local path) is looked up now: one that cannot be loaded leaves nothing behind.
    config = None if Path(args.model_name_or_path).exists() else load_source_config(args)
    check_output_apart(output_dir, {"--model_name_or_path": args.model_name_or_path,
                                    "--calibration_dir": args.calibration_dir, "--dataset_path": args.dataset_path})
    check_output_folder(output_dir, args.overwrite)
    with FolderLock(output_dir, SCRIPT):
        check_output_folder(output_dir, args.overwrite)  # again, now that no other command writes it
        model, labels, tokenizer = load_source_model(args, config)
        summary: dict = {}
        # A hidden sibling, written, verified, claimed whole and moved into place; an earlier export is replaced
        # only then; a sibling a killed run left is removed (and named) first.
        write_folder_atomically(output_dir, args.overwrite,
                                lambda folder: summary.update(export_to(args, model, labels, tokenizer, Path(folder))))
    rows = [("fp32 graph", output_dir / ONNX_FILE,
             f"max abs emission difference from PyTorch {summary['max_diff']:.3g}")]
    if summary["quantized"]:
        rows.append(("int8 graph", output_dir / ONNX_INT8_FILE, "what was quantized: " + QUANTIZATION_FILE))
    rows.append(("card", output_dir / "README.md",
                 f"annotate_notes.py --backend onnx --model_name_or_path {output_dir}"))
    print_outputs(f"{SCRIPT} exported {args.model_name_or_path}:", rows)
    return 0


if __name__ == "__main__":
    run_main(main, SCRIPT, data_errors=(FileExistsError,))
