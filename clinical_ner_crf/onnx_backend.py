"""The ONNX backend: an ``export_onnx.py`` folder run with onnxruntime, on the one inference path of ``windows.py``.

The folder is a local one or a Hub repository one was uploaded to (:func:`export_folder`: only the files read here
are downloaded, and of the two graphs only the one asked for).

An export folder holds the encoder + emission layer as ONNX (``model.onnx``, and ``model.int8.onnx`` with
``--quantize int8``), the model's ``config.json`` (labels, ``label_alignment``, and the entity-confidence temperature
when the model has one), its tokenizer, and for a CRF model ``crf.json``: the CRF's effective scores, i.e. the
start, transition and end scores with the IOB2 constraints already applied (forbidden moves at
``IMPOSSIBLE_SCORE``), exactly what ``CRFForTokenClassification.crf_scores()`` hands its decoder.

:func:`predict_notes_onnx` is :func:`windows.predict_notes` with the model call swapped: the same sentences,
words, windows, length-sorted batches, merge and entities; onnxruntime gives the emissions, and the CRF is
decoded here in numpy, as ``modeling_crf`` does it in torch: over the positions ``label_mask & attention_mask``
(first subwords, or every subword for ``label_alignment="all_subwords"``), packed to the left, Viterbi for the
tags and forward-backward marginals (probability space, redone in log space if a step underflows) for the
confidences. Linear ("Apt") models take the softmax argmax, as in torch.

Compute needs numpy and onnxruntime only; ``windows.py`` (windows, merge, entities) still imports torch at
module level, so torch must be installed, but it runs nothing here.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .command_line import DataError
from .files import CRF_FILE, EXPORT_INFO_FILE, ONNX_FILE, ONNX_INT8_FILE, QUANTIZATION_FILE
from .model_sources import hub_offline, looks_like_path
from .windows import (
    CRF_MODEL_TYPE, DEFAULT_BATCH_SIZE, DEFAULT_STRIDE, NotePrediction, assemble_notes, confidence_temperature,
    encode_notes, max_input_length, model_labels,
)

logger = logging.getLogger(__name__)

EMISSIONS_OUTPUT = "emissions"
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# What the backend reads of an export folder besides its graph, so all a Hub download of one fetches with the graph
# asked for: the config, the CRF's scores, what the export and the quantization did, and the tokenizer of any kind
# (WordPiece, byte-level BPE, SentencePiece).
EXPORT_FOLDER_FILES = ("config.json", CRF_FILE, EXPORT_INFO_FILE, QUANTIZATION_FILE, "tokenizer.json",
                       "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt",
                       "vocab.json", "merges.txt", "*.model")


class JsonConfig:
    """Read-only attribute view of a ``config.json`` (missing keys are None): what ``windows.py`` reads of a
    model's config (``id2label``, ``model_type``, ``label_alignment``, ``max_position_embeddings``, ...)."""

    def __init__(self, values: Mapping[str, Any]):
        self._values = dict(values)
        if "id2label" in self._values:
            self._values["id2label"] = {int(key): label for key, label in self._values["id2label"].items()}
        if isinstance(self._values.get("encoder_config"), Mapping):
            self._values["encoder_config"] = JsonConfig(self._values["encoder_config"])

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._values.get(name)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)


# ---------------------------------------------------------------------------------------------
# CRF decoding in numpy (mirrors modeling_crf.crf_viterbi / crf_marginals / crf_log_marginals)
# ---------------------------------------------------------------------------------------------


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    top = x.max(axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return (np.log(np.exp(x - top).sum(axis=axis, keepdims=True)) + top).squeeze(axis)


def pack_positions(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``modeling_crf.pack_positions``: ``index`` [B, L] of the True positions of ``mask`` [B, T], left-packed in
    order, and ``packed_mask`` [B, L] (a prefix per row)."""
    mask = mask.astype(bool)
    lengths = mask.sum(1)
    steps = int(lengths.max()) if mask.size else 0
    index = np.argsort(~mask, axis=1, kind="stable")[:, :steps]
    packed_mask = np.arange(steps)[None, :] < lengths[:, None]
    return index, packed_mask


def crf_viterbi(emissions, mask, start, transitions, end) -> np.ndarray:
    """Best tag path [B, L] (values past a row's length are junk)."""
    batch, steps, num_tags = emissions.shape
    score = start + emissions[:, 0]
    identity = np.broadcast_to(np.arange(num_tags), (batch, num_tags))
    backpointers = []
    for t in range(1, steps):
        candidates = score[:, :, None] + transitions[None]
        best, arg = candidates.max(axis=1), candidates.argmax(axis=1)
        on = mask[:, t, None]
        score = np.where(on, best + emissions[:, t], score)
        backpointers.append(np.where(on, arg, identity))
    tag = (score + end).argmax(axis=1)
    path = [tag]
    for pointers in reversed(backpointers):
        tag = np.take_along_axis(pointers, tag[:, None], axis=1)[:, 0]
        path.append(tag)
    path.reverse()
    return np.stack(path, axis=1)


def crf_marginals(emissions, mask, start, transitions, end) -> np.ndarray:
    """Per-step tag probabilities [B, L, C] by normalised forward-backward in probability space (zeros past a
    row's end); redone in log space (:func:`crf_log_marginals`) if a step underflows."""
    batch, steps, num_tags = emissions.shape
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        potentials = np.exp(emissions - emissions.max(-1, keepdims=True))
        trans = np.exp(transitions - transitions.max())
        start_p = np.exp(start - start.max())
        end_p = np.broadcast_to(np.exp(end - end.max()), (batch, num_tags))

        def normalized(x):
            return x / x.sum(-1, keepdims=True)

        alpha = normalized(start_p * potentials[:, 0])
        alphas = [alpha]
        for t in range(1, steps):
            alpha = np.where(mask[:, t, None], normalized((alpha[:, :, None] * trans).sum(1) * potentials[:, t]), alpha)
            alphas.append(alpha)
        lengths = mask.sum(1)
        beta = normalized(end_p)
        betas = [beta]
        for t in range(steps - 2, -1, -1):
            nxt = normalized((trans * (potentials[:, t + 1] * beta)[:, None, :]).sum(2))
            beta = np.where((t < lengths - 1)[:, None], nxt, beta)
            betas.append(beta)
        betas.reverse()
        marginals = np.where(mask[:, :, None], normalized(np.stack(alphas, 1) * np.stack(betas, 1)), 0.0)
    if not np.isfinite(marginals).all():
        return crf_log_marginals(emissions, mask, start, transitions, end)
    return marginals.astype(np.float32)


def crf_log_marginals(emissions, mask, start, transitions, end) -> np.ndarray:
    """:func:`crf_marginals` in log space: slower, never underflows."""
    batch, steps, num_tags = emissions.shape
    alphas = [start + emissions[:, 0]]
    for t in range(1, steps):
        nxt = _logsumexp(alphas[-1][:, :, None] + transitions[None], axis=1) + emissions[:, t]
        alphas.append(np.where(mask[:, t, None], nxt, alphas[-1]))
    lengths = mask.sum(1)
    ends = np.broadcast_to(end, (batch, num_tags))
    beta = ends
    betas = [beta]
    for t in range(steps - 2, -1, -1):
        nxt = _logsumexp(transitions[None] + (emissions[:, t + 1] + beta)[:, None, :], axis=2)
        beta = np.where((t < lengths - 1)[:, None], nxt, ends)
        betas.append(beta)
    betas.reverse()
    log_z = _logsumexp(alphas[-1] + end, axis=1)
    log_marg = np.stack(alphas, 1) + np.stack(betas, 1) - log_z[:, None, None]
    return (np.exp(log_marg) * mask[:, :, None]).astype(np.float32)


def crf_decode(emissions: np.ndarray, positions: np.ndarray, start, transitions, end
               ) -> tuple[np.ndarray, np.ndarray]:
    """Tag ids [B, T] (-100 off ``positions``) and the marginal of each decoded tag [B, T] (0 off ``positions``),
    as ``CRFForTokenClassification.forward(..., return_marginals=True)`` and ``windows.select_predictions``."""
    batch, seq_len, num_tags = emissions.shape
    index, packed_mask = pack_positions(positions)
    decoded = np.full((batch, seq_len), -100, dtype=np.int64)
    marginals = np.zeros((batch, seq_len, num_tags), dtype=np.float32)
    if index.shape[1]:
        packed = np.take_along_axis(emissions.astype(np.float32), index[:, :, None], axis=1)
        path = np.where(packed_mask, crf_viterbi(packed, packed_mask, start, transitions, end), -100)
        np.put_along_axis(decoded, index, path, axis=1)
        np.put_along_axis(marginals, index[:, :, None], crf_marginals(packed, packed_mask, start, transitions, end),
                          axis=1)
    confidences = np.take_along_axis(marginals, np.clip(decoded, 0, None)[..., None], axis=-1)[..., 0]
    return decoded, np.clip(confidences, 0.0, 1.0)


def softmax_argmax(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax tag ids and their softmax probabilities (linear models)."""
    logits = logits.astype(np.float32)
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities = exp / exp.sum(-1, keepdims=True)
    return probabilities.argmax(-1), probabilities.max(-1)


# ---------------------------------------------------------------------------------------------
# The model of an export folder
# ---------------------------------------------------------------------------------------------


class ExportFolderError(DataError):
    """A file of an ``export_onnx.py`` folder that is missing, truncated or malformed: one line naming the file, the
    reason and what to do (export again); a ``ValueError``, so ``annotate_notes.py`` reports it with exit status 1."""


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _onnxruntime_errors() -> tuple[type[BaseException], ...]:
    """onnxruntime's own exception classes (plain ``Exception`` subclasses: InvalidProtobuf, Fail, ...)."""
    try:
        from onnxruntime.capi import onnxruntime_pybind11_state as state
    except ImportError:  # pragma: no cover - another build of onnxruntime
        return (RuntimeError,)
    names = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "EngineError", "RuntimeException",
             "InvalidProtobuf", "ModelLoaded", "NotImplemented", "InvalidGraph", "EPFail")
    return (RuntimeError, *(getattr(state, name) for name in names if isinstance(getattr(state, name, None), type)))


def reexport_hint(folder: Path) -> str:
    """What to do about a broken export folder: export again (from the source model its onnx_export.json names)."""
    source = None
    try:
        source = json.loads((folder / EXPORT_INFO_FILE).read_text(encoding="utf-8")).get("source_model")
    except (OSError, ValueError, AttributeError):
        pass
    return (f"export the model again: python export_onnx.py --model_name_or_path {source or 'MODEL_FOLDER'} "
            f"--output_dir {folder} --overwrite")


def read_export_json(folder: Path, name: str) -> dict[str, Any]:
    """A JSON object file of an export folder, or :class:`ExportFolderError` (the reason, never the content)."""
    path = folder / name
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportFolderError(f"{path}: missing from the export folder; {reexport_hint(folder)}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportFolderError(f"{path}: not valid JSON ({_one_line(error)}): the file is truncated or damaged; "
                                f"{reexport_hint(folder)}") from None
    if not isinstance(value, dict):
        raise ExportFolderError(f"{path}: not a JSON object ({type(value).__name__}); {reexport_hint(folder)}")
    return value


def read_crf_scores(folder: Path, labels: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The start, transition and end scores of ``crf.json``, checked against the labels of ``config.json``."""
    path = folder / CRF_FILE
    crf = read_export_json(folder, CRF_FILE)
    keys = ("labels", "start_transitions", "transitions", "end_transitions")
    missing = [key for key in keys if key not in crf]
    if missing:
        raise ExportFolderError(f"{path}: no {', '.join(repr(key) for key in missing)} (not what export_onnx.py "
                                f"writes); {reexport_hint(folder)}")
    if crf["labels"] != labels:
        raise ExportFolderError(f"{path}: its labels differ from config.json's; {reexport_hint(folder)}")
    try:
        start, transitions, end = (np.asarray(crf[key], dtype=np.float32) for key in keys[1:])
    except (ValueError, TypeError) as error:
        raise ExportFolderError(f"{path}: the CRF scores are not numbers ({_one_line(error)}); "
                                f"{reexport_hint(folder)}") from None
    size = len(labels)
    if start.shape != (size,) or end.shape != (size,) or transitions.shape != (size, size):
        raise ExportFolderError(f"{path}: CRF scores of shapes {start.shape}, {transitions.shape}, {end.shape} for "
                                f"{size} labels; {reexport_hint(folder)}")
    return start, transitions, end


def _graph_hint(model_file: str) -> str:
    """What to do about a Hub repository without the graph asked for."""
    if model_file == ONNX_INT8_FILE:
        return (f"upload an export made with `python export_onnx.py --model_name_or_path MODEL --output_dir FOLDER "
                f"--quantize int8 --calibration_dir NOTES`, or run its fp32 graph (--onnx_model_file {ONNX_FILE})")
    return ("not an export_onnx.py folder? upload one made with `python export_onnx.py --model_name_or_path MODEL "
            "--output_dir FOLDER` (a run_ner_crf.py model runs with --backend torch)")


def export_folder(model_name_or_path, model_file: str = ONNX_FILE, *, revision: str | None = "main",
                  token: str | bool | None = None) -> Path:
    """The local folder of an export: ``model_name_or_path`` itself when it is a folder (or reads as a path: a
    missing one is then reported as a folder without its graph), else the snapshot of the Hub repository an export
    folder was uploaded to, at ``revision``: from the local cache, or downloaded with :data:`EXPORT_FOLDER_FILES` and
    ``model_file`` only (never the other graph). A repository without ``model_file``, or one that cannot be had, is
    one :class:`ExportFolderError` line naming it, the file and what to do."""
    name = str(model_name_or_path)
    if Path(name).is_dir() or looks_like_path(name):
        return Path(name)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    at_revision = revision not in (None, "main")
    where = f"{name}{f' at revision {revision}' if at_revision else ''} (a Hub repository)"
    patterns = [model_file, f"{model_file}.data", *EXPORT_FOLDER_FILES]  # .data: a large graph's external weights
    try:
        folder = Path(snapshot_download(name, revision=revision, token=token, allow_patterns=patterns))
    except LocalEntryNotFoundError:  # the Hub not asked (offline) or not reached, and the files not all cached
        why = ("HF_HUB_OFFLINE=1 forbids downloading them; download them once with network (run once without "
               "HF_HUB_OFFLINE=1)" if hub_offline()
               else "the Hub could not be reached; check the network or HF_ENDPOINT")
        raise ExportFolderError(f"{where}: {model_file} and the files beside it are not all in the local cache and "
                                f"{why}, or pass a local export folder") from None
    except (OSError, ValueError) as error:  # the Hub's refusals (no such repository or revision, no access)
        raise ExportFolderError(f"{where}: cannot be downloaded ({_one_line(error)}); check the name, the revision "
                                "and --token, or pass a local export folder") from None
    if not (folder / model_file).is_file():
        # A snapshot from the cache (offline, or a Hub that did not answer) says what was downloaded before, not
        # what the repository holds.
        download = f"hf download {name} {model_file}{f' --revision {revision}' if at_revision else ''}"
        why = (f"no {model_file} in its local cache ({folder}), and HF_HUB_OFFLINE=1 forbids asking the Hub; download "
               f"it once with network (`{download}`), or if the repository has none, " if hub_offline()
               else f"the repository has no {model_file} (or, if the Hub did not answer, its local cache has none); ")
        raise ExportFolderError(f"{where}: {why}{_graph_hint(model_file)}")
    return folder


class OnnxTokenClassifier:
    """An ``export_onnx.py`` folder, or the Hub id of a repository one was uploaded to (:func:`export_folder`, at
    ``revision`` with ``token``): onnxruntime session, config, and the CRF scores of a CRF model.

    ``model_file``: ``model.onnx`` (fp32, the default) or ``model.int8.onnx`` (``--quantize int8``).
    ``num_threads``: onnxruntime intra-op threads (None: its default). ``allow_spinning``: whether those threads
    spin while they wait for work (onnxruntime's default, True: lower latency, but a waiting thread keeps its core
    busy, which costs other processes on the same cores; None leaves the default). ``path``: the local folder read.
    """

    backend = "onnx"

    def __init__(self, path, model_file: str = ONNX_FILE, num_threads: int | None = None, *,
                 allow_spinning: bool | None = None, revision: str | None = "main", token: str | bool | None = None):
        import onnxruntime

        self.path = export_folder(path, model_file, revision=revision, token=token)
        if not (self.path / model_file).is_file():
            raise ExportFolderError(f"{self.path}: no {model_file} (not an export_onnx.py folder?); "
                                    f"{reexport_hint(self.path)}")
        try:
            self.config = JsonConfig(read_export_json(self.path, "config.json"))
            self.labels = model_labels(self)
        except ExportFolderError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise ExportFolderError(f"{self.path / 'config.json'}: not a token-classification model's config "
                                    f"({_one_line(error)}); {reexport_hint(self.path)}") from error
        self.model_file = model_file
        options = onnxruntime.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        if allow_spinning is not None:
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
        try:
            self.session = onnxruntime.InferenceSession(str(self.path / model_file), options,
                                                        providers=["CPUExecutionProvider"])
        except (OSError, *_onnxruntime_errors()) as error:  # InvalidProtobuf, Fail, ...: a truncated or damaged graph
            raise ExportFolderError(f"{self.path / model_file}: onnxruntime cannot load it ({_one_line(error)}): the "
                                    f"file is truncated or damaged; {reexport_hint(self.path)}") from error
        self.input_names = [node.name for node in self.session.get_inputs()]
        self.is_crf = self.config.model_type == CRF_MODEL_TYPE
        self.crf_scores = None
        if self.is_crf:
            self.crf_scores = read_crf_scores(self.path, self.labels)

    @property
    def label_all_tokens(self) -> bool:
        return self.is_crf and self.config.label_alignment == "all_subwords"

    def eval(self) -> "OnnxTokenClassifier":
        return self

    def emissions(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
        """The ONNX graph's output [B, T, C] (CRF emissions or linear logits) for padded int64 inputs."""
        feeds = {}
        for name in self.input_names:
            if name in batch:
                feeds[name] = batch[name]
            elif name == "token_type_ids":  # the encoder's default when none are given
                feeds[name] = np.zeros_like(batch["input_ids"])
            else:
                raise ValueError(f"the ONNX model needs {name}")
        return self.session.run([EMISSIONS_OUTPUT], feeds)[0]

    def predict_batch(self, batch: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Per-position tag ids and confidences [B, T], as ``windows.select_predictions`` gives them in torch."""
        scores = self.emissions(batch)
        if self.is_crf:
            positions = batch["label_mask"].astype(bool) & batch["attention_mask"].astype(bool)
            return crf_decode(scores, positions, *self.crf_scores)
        return softmax_argmax(scores)


def pad_batch(rows: Mapping[str, list], batch_rows, keys, pad_token_id: int) -> dict[str, np.ndarray]:
    """``windows.WindowCollator`` in numpy: pad to the longest row of the batch."""
    length = max(len(rows["input_ids"][row]) for row in batch_rows)
    padding = {"input_ids": pad_token_id, "attention_mask": 0, "token_type_ids": 0, "label_mask": False}
    batch = {}
    for key in keys:
        values = [list(rows[key][row]) + [padding[key]] * (length - len(rows[key][row])) for row in batch_rows]
        batch[key] = np.asarray(values, dtype=bool if key == "label_mask" else np.int64)
    return batch


def predict_notes_onnx(
    model: OnnxTokenClassifier,
    tokenizer,
    texts: Mapping[str, str],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_seq_length: int | None = None,
    stride: int = DEFAULT_STRIDE,
    min_confidence: float = 0.0,
    progress: bool | None = False,
) -> dict[str, NotePrediction]:
    """:func:`windows.predict_notes` on an ONNX export: same windows, batches, merge and entities."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    max_seq_length = max_input_length(model, tokenizer, max_seq_length)
    encoded = encode_notes(texts, tokenizer, max_seq_length, stride, model.label_all_tokens)
    keys = [key for key in ONNX_INPUTS if key in encoded.rows and key in model.input_names]
    if model.is_crf:
        keys.append("label_mask")
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    from tqdm.auto import tqdm

    window_outputs: dict[int, tuple[list[int], list[float]]] = {}
    firsts = range(0, len(encoded.order), batch_size)
    for first in tqdm(firsts, total=math.ceil(len(encoded.order) / batch_size), desc="annotating", unit="batch",
                      disable=None if progress is None else not progress, leave=False):
        batch_rows = encoded.order[first:first + batch_size]
        tag_ids, confidences = model.predict_batch(pad_batch(encoded.rows, batch_rows, keys, pad_token_id))
        tag_ids, confidences = tag_ids.tolist(), confidences.astype(np.float32).tolist()
        for index, row in enumerate(batch_rows):
            length = len(encoded.rows["input_ids"][row])
            window_outputs[row] = (tag_ids[index][:length], confidences[index][:length])
    return assemble_notes(encoded, window_outputs, model.labels, min_confidence, confidence_temperature(model.config))
