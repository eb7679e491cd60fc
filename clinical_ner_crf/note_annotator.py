"""The note annotator: the Python API that turns note text into entities (and, with relations, medication records) with a saved model, on the one inference path of ``windows.py`` (torch, or the ONNX backend)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .command_line import UsageError
from .files import BACKENDS, ONNX_FILE
from .relation_linking import (
    RelationChoice, RelationLinker, RuleLinker, choose_relations, load_relation_linker, mentions_of,
)
from .relations import Candidate, medication_records
from .windows import (
    DEFAULT_BATCH_SIZE, DEFAULT_STRIDE, Entity, NotePrediction, is_crf_model, load_tokenizer, max_input_length,
    model_labels, predict_notes, window_budget, word_tokenizer,
)

if TYPE_CHECKING:  # annotations only; the functions that run torch import it themselves
    import torch
logger = logging.getLogger(__name__)


def load_model_and_tokenizer(
    model_name_or_path: str,
    *,
    device: str | torch.device | None = None,
    bf16: bool = False,
    trust_remote_code: bool = False,
    revision: str = "main",
    token: str | None = None,
):
    """Model (eval mode, on ``device``) and fast tokenizer from a folder or Hub id.

    CRF models load with this project's ``modeling_crf``; only with ``trust_remote_code=True`` is the
    code shipped with the model run instead. ``bf16`` loads the weights in bfloat16 (the CRF itself
    stays float32).
    """
    import torch
    from transformers import AutoModelForTokenClassification

    import modeling_crf  # noqa: F401  (registers the CRF model with the Auto classes: no remote code needed)

    kwargs: dict[str, Any] = {"revision": revision, "token": token, "trust_remote_code": trust_remote_code}
    if bf16:
        kwargs["dtype"] = torch.bfloat16
    model = AutoModelForTokenClassification.from_pretrained(model_name_or_path, **kwargs)
    model_labels(model)
    tokenizer = load_tokenizer(model_name_or_path, revision=revision, token=token, trust_remote_code=trust_remote_code)
    if device is not None:
        model.to(device)
    return model.eval(), tokenizer


class NoteAnnotator:
    """Entities of clinical notes, in one call: ``NoteAnnotator.from_pretrained(path)(text)``.

    Calls :func:`windows.predict_notes`, the same path as the command line and the saved CRF
    model's pipeline. A string gives a list of :class:`windows.Entity` (``type``, ``start``,
    ``end``, ``text``, ``confidence``, ``word_confidences``; ``confidence`` is calibrated by the temperature the
    model's config carries, if any, before ``min_confidence``: ``run_ner_crf.py --calibrate_confidence``); a list
    of strings gives one list per note; :meth:`predict` gives the word-level predictions too. With a relation linker (a
    :class:`RelationLinker`, a ``run_re.py`` model, or a :class:`RuleLinker`, the nearest-drug rule),
    :meth:`medications` gives the medication list: one record per drug with the attributes linked to it.
    """

    def __init__(self, model, tokenizer, *, batch_size: int = DEFAULT_BATCH_SIZE,
                 max_seq_length: int | None = None, stride: int = DEFAULT_STRIDE,
                 device: str | torch.device | None = None, bf16: bool = False, min_confidence: float = 0.0,
                 relation_linker: RelationLinker | RuleLinker | None = None):
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        backend = getattr(model, "backend", "torch")  # onnx_backend.OnnxTokenClassifier: "onnx"
        if backend == "onnx" and (device not in (None, "cpu") or bf16):
            raise ValueError("the onnx backend runs on the CPU (onnxruntime): no device other than cpu, no bf16")
        self.model, self.tokenizer = model.eval(), word_tokenizer(tokenizer)
        model_labels(model)
        self.max_seq_length = max_input_length(model, self.tokenizer, max_seq_length)
        window_budget(self.tokenizer, self.max_seq_length, stride)  # bad window settings fail here, not mid-run
        self.settings = {"batch_size": batch_size, "max_seq_length": self.max_seq_length, "stride": stride,
                         "device": device, "bf16": bf16, "min_confidence": min_confidence}
        self.backend = backend
        if backend == "onnx":
            self.settings["device"] = "cpu"
        self.relation_linker = relation_linker

    @classmethod
    def from_pretrained(cls, model_name_or_path: str, *, device: str | torch.device | None = None,
                        bf16: bool = False, trust_remote_code: bool = False, revision: str = "main",
                        token: str | None = None, relation_model_name_or_path: str | None = None,
                        link_threshold: float | None = None, relations: str | RelationChoice = "auto",
                        backend: str = "torch", onnx_model_file: str | None = None, num_threads: int | None = None,
                        onnx_allow_spinning: bool | None = None, **settings) -> "NoteAnnotator":
        """Load a model folder or Hub id (``settings``: batch_size, max_seq_length, stride, min_confidence),
        and optionally a relation model (``link_threshold``: default, the one it was trained with).

        ``relations`` (:func:`choose_relations`, logged once): ``"auto"`` (default) links with what scored higher on
        the relation model's validation notes, the model or the nearest-drug rule (the model when its config
        records no scores; no links without a relation model); ``"model"`` with the relation model (required);
        ``"rule"`` with the nearest-drug rule, no relation model needed (its sentence window if one is given). A
        :class:`RelationChoice` already made (and logged) is used as it is (several processes: one choice).

        ``backend="onnx"``: ``model_name_or_path`` is an ``export_onnx.py`` folder, or the Hub id of a repository
        one was uploaded to (only the graph asked for is downloaded, with the config, CRF scores and tokenizer:
        ``onnx_backend.export_folder``), run with onnxruntime on the CPU (``onnx_model_file``: ``model.onnx``, the
        default, or ``model.int8.onnx``); same windows, decoding and entities as the torch backend;
        ``num_threads``: onnxruntime's threads, default its own choice, and ``onnx_allow_spinning`` whether they spin
        while waiting (None: onnxruntime's default, on); the torch backend uses ``torch.set_num_threads``, which is
        process-wide and so left to the caller)."""
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "torch" and onnx_model_file not in (None, ONNX_FILE):
            raise ValueError("onnx_model_file is for backend='onnx'")
        if backend == "torch" and onnx_allow_spinning is not None:
            raise ValueError("onnx_allow_spinning is for backend='onnx'")
        # Model or rule, from the relation model's config alone: a request that cannot be met fails before a load.
        if isinstance(relations, RelationChoice):
            if relation_model_name_or_path not in (None, relations.relation_model_name_or_path):
                raise ValueError(f"relation_model_name_or_path {relation_model_name_or_path} is not the relation "
                                 f"model of the choice given ({relations.relation_model_name_or_path})")
            if link_threshold is not None and relations.by != "model":
                raise UsageError(f"link_threshold is for the relation model; the choice given links with "
                                 f"{'the nearest-drug rule' if relations.by else 'nothing'}")
            choice = relations
        else:
            choice = choose_relations(relations, relation_model_name_or_path, link_threshold=link_threshold,
                                      revision=revision, token=token)
            if choice.by is not None:
                logger.info("%s", choice.describe())
        if backend == "onnx":
            from .onnx_backend import OnnxTokenClassifier

            model = OnnxTokenClassifier(model_name_or_path, onnx_model_file or ONNX_FILE, num_threads=num_threads,
                                        allow_spinning=onnx_allow_spinning, revision=revision, token=token)
            tokenizer = load_tokenizer(str(model.path))  # the folder, or the Hub snapshot the graph came from
        else:
            model, tokenizer = load_model_and_tokenizer(model_name_or_path, device=device, bf16=bf16,
                                                        trust_remote_code=trust_remote_code, revision=revision,
                                                        token=token)
        linker = load_relation_linker(choice, device=device, trust_remote_code=trust_remote_code, revision=revision,
                                      token=token, link_threshold=link_threshold,
                                      batch_size=settings.get("batch_size", DEFAULT_BATCH_SIZE))
        return cls(model, tokenizer, device=device, bf16=bf16, relation_linker=linker, **settings)

    @property
    def is_crf(self) -> bool:
        return is_crf_model(self.model)

    def predict(self, texts: Mapping[str, str], progress: bool | None = False) -> dict[str, NotePrediction]:
        """Word tags, confidences and entities of ``{document_id: text}``."""
        if self.backend == "onnx":
            from .onnx_backend import predict_notes_onnx

            settings = {key: self.settings[key] for key in ("batch_size", "max_seq_length", "stride", "min_confidence")}
            return predict_notes_onnx(self.model, self.tokenizer, texts, progress=progress, **settings)
        return predict_notes(self.model, self.tokenizer, texts, progress=progress, **self.settings)

    def link(self, texts: Mapping[str, str], predictions: Mapping[str, NotePrediction]
             ) -> dict[str, list[tuple[Candidate, float]]]:
        """The relation linker's links between each note's predicted entities (candidates index ``entities``)."""
        if self.relation_linker is None:
            raise ValueError("no relation model: pass relation_model_name_or_path to NoteAnnotator.from_pretrained, "
                             "or relations='rule' to link with the nearest-drug rule")
        return self.relation_linker.link_notes({document_id: (texts[document_id], mentions_of(note.entities))
                                                for document_id, note in predictions.items()})

    def __call__(self, notes: str | Sequence[str]) -> list[Entity] | list[list[Entity]]:
        if isinstance(notes, str):
            return self.predict({"note": notes})["note"].entities
        if not all(isinstance(note, str) for note in notes):
            raise TypeError("NoteAnnotator takes a string or a list of strings")
        predictions = self.predict({str(index): note for index, note in enumerate(notes)})
        return [predictions[str(index)].entities for index in range(len(notes))]

    def medications(self, notes: str | Sequence[str]) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """The medication list of a note (of each note of a list): ``medications.jsonl`` records, one per drug
        mention, each with its linked attributes (types, offsets, text, confidences)."""
        single = isinstance(notes, str)
        texts = {"note": notes} if single else {str(index): note for index, note in enumerate(notes)}
        if not all(isinstance(text, str) for text in texts.values()):
            raise TypeError("NoteAnnotator takes a string or a list of strings")
        predictions = self.predict(texts)
        links = self.link(texts, predictions)
        records = {document_id: medication_list(predictions[document_id], texts[document_id], links[document_id])
                   for document_id in texts}
        return records["note"] if single else [records[str(index)] for index in range(len(notes))]


def medication_list(note: NotePrediction, text: str, links: Sequence[tuple[Candidate, float]]) -> list[dict[str, Any]]:
    """``medications.jsonl`` records of a note (ids are the ``T`` lines of its ``.ann``)."""
    return medication_records(note.document_id, text, mentions_of(note.entities), links,
                              {index: entity.confidence for index, entity in enumerate(note.entities)})
