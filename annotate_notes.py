#!/usr/bin/env python
"""Annotate clinical notes with a trained model: text in, entities out, from Python or a folder.

From Python, one call for a note or a list of notes (CRF or linear "Apt" models)::

    from annotate_notes import NoteAnnotator
    annotator = NoteAnnotator.from_pretrained("runs/bert_crf")
    annotator("Started metoprolol 25 mg PO BID.")      # [Entity(type, start, end, text, confidence, ...)]
    annotator([note_1, note_2])                         # one list of entities per note

    # With a relation model (run_re.py): each attribute linked to its drug, a medication list per note.
    annotator = NoteAnnotator.from_pretrained("runs/bert_crf", relation_model_name_or_path="runs/relations")
    annotator.medications("Metoprolol 25 mg PO BID and lisinopril 10 mg daily.")
    # [{"document_id", "id": "T1", "drug": {type, start, end, text, confidence},
    #   "attributes": [{id, type, start, end, text, confidence, relation, relation_confidence}, ...]}, ...]
    # relations="auto" (default): the model or the nearest-drug rule, whichever scored higher on its validation
    # notes; relations="model" / "rule" to choose (the rule needs no relation model).
    NoteAnnotator.from_pretrained("runs/bert_crf", relations="rule").medications("Aspirin 81 mg PO daily.")

From the command line, a folder of ``.txt`` in, brat ``.ann`` out::

    python annotate_notes.py --model_name_or_path runs/bert_crf --input_dir notes/ --output_dir notes_annotated/
    python annotate_notes.py --model_name_or_path ORG/clinical-ner-crf --trust_remote_code \\
        --input_dir notes/ --output_dir out/ --device cuda --bf16 --batch_size 64 --min_confidence 0.5
    python annotate_notes.py --model_name_or_path runs/bert_crf --input_dir notes/ --output_dir out/ --num_processes 4
    python annotate_notes.py --model_name_or_path runs/bert_crf --relation_model_name_or_path runs/relations \
        --input_dir notes/ --output_dir out/                  # + R lines, medications.jsonl (--relations auto)
    python annotate_notes.py --model_name_or_path runs/bert_crf --relations rule --input_dir notes/ --output_dir out/
    accelerate launch --multi_gpu --num_processes 4 annotate_notes.py --model_name_or_path runs/bert_crf ...

Both run the one inference path of ``windows.py`` (``predict_notes``), which the
``pipeline("token-classification")`` of a saved CRF model also runs: sentences and words as in
training (``tagging.py``), so offsets are exact to the character of the raw text (CRLF
included). No text is dropped: a sentence longer than ``max_seq_length`` subwords is cut into
overlapping windows (``stride`` subwords of overlap); a word seen in several windows takes the
prediction of the window where it has the most context on both sides, so an entity that crosses
a window edge comes out whole. Notes of any length work.

Decoding and confidences
    CRF models decode each window with Viterbi over the positions they were trained on (the
    first subword of every word, or every subword for ``label_alignment="all_subwords"``). A
    word's confidence is the CRF marginal probability (forward-backward) of its decoded tag; an
    entity's confidence is the mean over its words. Linear ("Apt") models, stock
    ``AutoModelForTokenClassification``, tag each word with the softmax argmax at its first
    subword, and the word confidence is that softmax probability. Entities are read from the
    word tags with strict IOB2 decoding (an ``I-X`` that continues nothing starts no entity).
    ``min_confidence`` drops entities whose confidence is below it (from the ``.ann`` and
    ``entities.jsonl``; the word-level ``predictions.jsonl`` keeps the model's raw tags).

Outputs of the command line (``--output_dir``: never the input folder, inside it or around it)
    ``NOTE.ann``        one per note: ``T`` lines with type, offsets and surface text; an
                        entity that crosses a line break is written as fragments split at
                        the break (n2c2 style). ``NOTE.ANN`` beside a ``NOTE.TXT``, so a brat
                        pair keeps one style. Written atomically; an existing ``.ann`` is kept
                        (the note counts as already annotated) unless ``--overwrite``. An empty
                        note gets an empty ``.ann``. An ``.ann`` of one of the notes that the
                        toolkit did not write (gold annotations copied there) stops the run
                        before it starts: ``--overwrite`` replaces only the toolkit's own files
                        (those its manifest ``.clinical-ner-crf-files`` names).
    ``entities.jsonl``  one object per entity: ``document_id``, ``id`` (its ``T`` line),
                        ``type``, ``start``, ``end``, ``text`` (exactly ``text[start:end]``),
                        ``confidence`` and ``word_confidences``: the records of every ``.ann``
                        of the folder (of earlier runs too), each note's once.
    ``predictions.jsonl`` (``--word_predictions``) one object per sentence in the word-level
                        format of docs/architecture.md (``gold_tags`` null), readable by
                        ``evaluate_ablations.py``; the notes annotated with the flag.
    ``medications.jsonl`` (with relations: see Relations) one object per drug mention, in note
                        order: ``document_id``, ``id`` (the drug's ``T`` line), ``drug`` and the
                        ``attributes`` linked to it, each with its ``relation`` type and
                        ``relation_confidence``; a drug with no attribute is a record too. The
                        ``.ann`` files then also hold the links as ``R`` lines
                        (``R1<TAB>Strength-Drug Arg1:T2 Arg2:T1``, n2c2 style).
    ``summary.json``    counts (files seen by kind, notes, sentences, windows, entities per
                        type, failures by kind, repairs), the names of the files that failed,
                        settings and time: never note text.

Input
    Notes are the files whose suffix is ``.txt`` in any case (``.TXT``, ``.Txt``), not in
    subfolders. Hidden files (a name starting with ``.``), other files and folders are not read,
    but counted (``files_seen``) and named in one INFO line per kind: names are not note text.

Interruptions and re-runs
    The invariant: a note's ``.ann`` exists only once its records are in ``entities.jsonl`` (and
    ``predictions.jsonl``). Notes go in groups (``--words_per_group``): the group's records are
    appended to the JSONL files and made durable (``fsync``), and only then are its ``.ann`` files
    written; with ``--overwrite`` the group's old ``.ann`` are removed first, so an old ``.ann``
    never stands beside new records. A run killed at any point leaves records without an ``.ann``
    (that note is redone), a torn last line, or a hidden ``.NAME.*.tmp`` of an unfinished atomic
    write, never an ``.ann`` without its records. So the same command run again finishes the job:
    it annotates exactly the notes without an ``.ann`` (exit status 0 when none fails). Every run
    starts by removing stale temporary files (they may hold note text) and ends, even when
    interrupted (Ctrl-C), by compacting the JSONL files atomically: for each note only its last
    block of records (a note written twice: ``--overwrite``, or redone), no records of notes
    without an ``.ann``, no malformed lines (counted, never shown). It compacts at the start too
    when a killed run left such lines, so appends always start on a clean line.

    Why append instead of writing each JSONL file once at the end: a file written at the end is
    lost with any interruption, while the ``.ann`` files written before it stay, and a re-run skips
    them. Why not write everything to a side folder and move it in at the end: the ``.ann`` files
    live beside other files (often the notes), so a run cannot appear as one rename, and a long
    run would lose all its work. The cost is a read of the JSONL files at the start and the end.
    At the start and at the end a run checks that every note's ``.ann`` (the toolkit's own) holds
    exactly its records in ``entities.jsonl`` (and its drugs in ``medications.jsonl``): a note whose
    records were lost (a folder damaged by an earlier version, say) is annotated again, and the summary
    says what was repaired and that the check passed. One run at a time per output folder: a second
    one stops at once, naming the first (``folder_safety.FolderLock``).

Several processes (``--num_processes N``, or ``accelerate launch`` / torchrun)
    Process 0 tidies the folder and lists the notes, then splits those to annotate among the processes
    by size (``split_notes``). Each process annotates its share as above, but appends to its own hidden
    part of each JSONL file (``.entities.jsonl.process-00001``) and, after each group's ``.ann`` files, logs
    which notes it wrote (names only). When all are done, process 0 merges the parts into the JSONL files
    (the same compaction: each note's last block, none without an ``.ann``) and writes ``summary.json``
    for the whole run. A process that dies stops the run (``--num_processes`` stops the others and merges
    what they wrote; a launcher stops them, and the next run merges it): every ``.ann`` still has its
    records, and the same command, with any number of processes, annotates exactly the notes left. A note
    written again (``--overwrite``) keeps only the records of the run that wrote it, in every file.
    ``--num_processes`` starts the processes itself (``multiprocessing``, spawn) and keeps process 0's role
    in the parent; launched processes share the plan and the counts over ``torch.distributed`` (gloo). On a
    CPU the cores are divided among the processes of a machine (``--num_threads`` to choose); on GPUs
    process k uses ``cuda:k``.

Permissions
    Files holding note text are no more readable than the notes they came from
    (``corpus_io.note_file_mode``): each ``.ann`` like its note; ``entities.jsonl`` and
    ``predictions.jsonl`` like the most restrictive note annotated into the folder so far (set
    before a group's records are appended). ``summary.json`` (counts only) gets the usual mode.

Bad input does not stop the run: a file that cannot be read, is not UTF-8, shares its name
with another note (``a.txt`` and ``a.TXT``) or whose ``.ann`` appears during the run gets one
message (file name and reason, never its text) and is counted; the exit status is 1 when any
note failed, and 130 when the run was interrupted. A folder without notes is an error.

Relations
    Each attribute the NER model found is linked to its drug by a relation model or by the
    nearest-drug rule (``--relations``). The model (``--relation_model_name_or_path``, a ``run_re.py``
    output): every (attribute, drug) pair in one sentence (Reason and ADE: within the model's
    sentence window) is a candidate, classified from the sentence(s) with typed markers around both
    (and the input features it was trained with: ``relations.py``, as in ``run_re.py`` training); a
    pair is linked at ``--link_threshold`` or above, so an attribute shared by two drugs links to
    both. Long notes: candidates are built per sentence pair, so nothing is cut. The rule
    (``relations.nearest_drug_rule``): each attribute to the nearest drug of its sentence,
    confidence 1.0; no relation model needed (the model's sentence window if one is given, else 1).
    ``--relations auto`` (default) takes what scored higher on the relation model's validation
    notes (``relation_preferred`` and ``relation_validation_scores`` in its ``config.json``, written
    by ``run_re.py``), the model when it records none (an earlier version, no validation notes),
    and no relations without a relation model; ``model`` and ``rule`` choose. Which one linked, and
    why (with the validation numbers), is logged once per run and recorded in ``summary.json``
    (``relations_by``, ``relations_choice_reason``); the choice is made once, from the relation
    model's config, before the processes of ``--num_processes`` start (a launcher's processes each
    make the same choice). ``--relations model`` without a relation model and ``--link_threshold``
    when the rule links (``--relations rule``, or auto choosing it) are usage errors (one line,
    exit status 2).

Backends
    ``--backend torch`` (default) runs the model folder with PyTorch. ``--backend onnx`` runs an
    ``export_onnx.py`` folder with onnxruntime on the CPU (``--onnx_model_file model.int8.onnx`` for the
    int8 graph): the same windows, merge and entities, the CRF decoded in numpy (``onnx_backend.py``).
    ``summary.json`` records the backend in its settings.

Needs torch, transformers and the project's ``tagging.py``, ``windows.py``, ``corpus_io.py``,
``relations.py`` and ``modeling_crf.py`` (no ``datasets``, no training script). ``--backend onnx`` (the CLI,
with any number of processes, and ``NoteAnnotator``) needs ``onnxruntime`` and ``onnx_backend.py`` instead of
torch and ``modeling_crf.py``: torch is imported only by the torch backend, a relation model that links (not
one whose config chose the rule) and a launcher.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Iterable, Iterator, Mapping, Optional, Sequence

from transformers import HfArgumentParser

from clinical_ner_crf.corpus_io import (
    ANNOTATED_LOG_FILE, ENTITIES_FILE, MEDICATIONS_FILE, ONNX_FILE, ONNX_INT8_FILE, SUMMARY_FILE, WORD_PREDICTIONS_FILE, BratFormatError, atomic_open, jsonl_line, note_file_mode,
    prediction_record, process_part_name, process_parts, read_text, remove_stale_temporary_files, round_confidence,
    write_brat_ann, write_json_atomically,
)
from clinical_ner_crf.command_line import UsageError, exit_status
from clinical_ner_crf.folder_safety import (
    FolderLock, Manifest, check_output_apart, die_with_parent, irregular_reason,
)
from clinical_ner_crf.relations import (
    CONFIG_INPUT_FEATURES, CONFIG_LINK_THRESHOLD, CONFIG_MAX_SEQ_LENGTH, CONFIG_PREFERRED,
    CONFIG_SENTENCE_WINDOW, CONFIG_VALIDATION_SCORES, DEFAULT_LINK_THRESHOLD, DEFAULT_SENTENCE_WINDOW, INPUT_FEATURES,
    LABELS as RELATION_LABELS, MARKER_TOKENS, RELATION_CHOICES, TOKENS_OF_FEATURE, Candidate, Mention, candidate_inputs,
    fit_to_length, medication_records, nearest_drug_rule, select_links,
)
from clinical_ner_crf.tagging import DRUG_TYPE
from clinical_ner_crf.windows import (
    DEFAULT_BATCH_SIZE, DEFAULT_MAX_SEQ_LENGTH, DEFAULT_STRIDE, Entity, NotePrediction, is_crf_model, load_tokenizer,
    max_input_length, model_labels, predict_notes, window_budget, word_tokenizer,
)

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")

# The CLI predicts notes in groups of about this many words (length-grouped batches are formed
# inside a group), writing each group's records and .ann files before it reads the next.
WORDS_PER_GROUP = 50_000


# ---------------------------------------------------------------------------
# The Python API
# ---------------------------------------------------------------------------


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


class _Linker:
    """What both linkers share: ``link_notes`` over many notes, ``link`` for one; ``by`` says which linker it is,
    ``choice_reason`` why it was chosen (:func:`choose_relations`; set by whoever made the choice)."""

    by = ""
    link_threshold: float | None = None
    sentence_window = DEFAULT_SENTENCE_WINDOW
    choice_reason = "given by the caller"

    def link_notes(self, notes: Mapping[str, tuple[str, Sequence[Mention]]]
                   ) -> dict[str, list[tuple[Candidate, float]]]:
        raise NotImplementedError

    def link(self, text: str, entities: Sequence[Entity | Mention]) -> list[tuple[Candidate, float]]:
        """The links of one note's entities (``windows.Entity`` or ``relations.Mention``)."""
        return self.link_notes({"note": (text, mentions_of(entities))})["note"]


class RelationLinker(_Linker):
    """Which drug each attribute belongs to, with a ``run_re.py`` model (a stock sequence classifier).

    ``link(text, entities)`` builds the candidates of ``relations.py`` exactly as training did (its
    sentence window, input length and input features are read from the model's config) and returns the
    candidates whose ``linked`` probability is at least ``link_threshold`` (default: the one the model was
    trained with; ``relations.select_links``), each with that probability. Inputs are batched across notes,
    longest first.
    """

    by = "model"

    def __init__(self, model, tokenizer, *, batch_size: int = DEFAULT_BATCH_SIZE, link_threshold: float | None = None,
                 device: str | torch.device | None = None):
        config = model.config
        labels = tuple(config.id2label[i] for i in range(config.num_labels))
        features = tuple(getattr(config, CONFIG_INPUT_FEATURES, None) or ())  # absent: a model of an earlier version
        unknown = sorted(set(features) - set(INPUT_FEATURES))
        if unknown:
            raise ValueError(f"{model.name_or_path}: its config lists relation input features that this version does "
                             f"not know ({', '.join(map(str, unknown))}; known: {', '.join(INPUT_FEATURES)})")

        def missing(tokens: Sequence[str]) -> int:
            return sum(tokenizer.convert_tokens_to_ids(token) in (None, tokenizer.unk_token_id) for token in tokens)

        missing_markers = missing(MARKER_TOKENS)
        missing_features = missing([token for feature in features for token in TOKENS_OF_FEATURE[feature]])
        if labels != RELATION_LABELS or missing_markers or missing_features:
            raise ValueError(f"{model.name_or_path}: not a run_re.py relation model (labels {list(labels)}, "
                             f"{missing_markers} argument markers missing from its tokenizer"
                             + (f", {missing_features} tokens of its input features {list(features)}"
                                if missing_features else "") + ")")
        self.link_threshold = getattr(config, CONFIG_LINK_THRESHOLD, DEFAULT_LINK_THRESHOLD) \
            if link_threshold is None else link_threshold
        if not 0.0 <= self.link_threshold <= 1.0:
            raise ValueError(f"link_threshold must be in [0, 1], got {self.link_threshold}")
        self.model, self.tokenizer = model.eval(), tokenizer
        if device is not None:
            self.model.to(device)
        self.sentence_window = getattr(config, CONFIG_SENTENCE_WINDOW, DEFAULT_SENTENCE_WINDOW)
        self.input_features = features
        self.max_seq_length = max_input_length(model, tokenizer, getattr(config, CONFIG_MAX_SEQ_LENGTH, None))
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, model_name_or_path: str, *, device: str | torch.device | None = None,
                        trust_remote_code: bool = False, revision: str = "main", token: str | None = None,
                        **settings) -> "RelationLinker":
        """Load a ``run_re.py`` output folder or Hub id (``settings``: batch_size, link_threshold)."""
        from transformers import AutoModelForSequenceClassification

        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                model_name_or_path, revision=revision, token=token, trust_remote_code=trust_remote_code)
        except ValueError as error:  # e.g. a token-classification (NER) model's config
            raise ValueError(f"{model_name_or_path}: not a run_re.py relation model ({error})") from error
        tokenizer = load_tokenizer(model_name_or_path, revision=revision, token=token,
                                   trust_remote_code=trust_remote_code)
        return cls(model, tokenizer, device=device, **settings)

    def probabilities(self, inputs: Sequence[str]) -> list[float]:
        """The ``linked`` probability of each marked candidate text."""
        import torch

        fitted = [fit_to_length(text, self.tokenizer, self.max_seq_length) for text in inputs]
        encoded = self.tokenizer(fitted, truncation=True, max_length=self.max_seq_length)["input_ids"]
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        device = next(self.model.parameters()).device
        probabilities = [0.0] * len(encoded)
        for first in range(0, len(order), self.batch_size):
            batch = order[first:first + self.batch_size]
            padded = self.tokenizer.pad({"input_ids": [encoded[i] for i in batch]}, return_tensors="pt")
            with torch.no_grad():
                logits = self.model(**{k: v.to(device) for k, v in padded.items()}).logits.float()
            for index, probability in zip(batch, logits.softmax(-1)[:, RELATION_LABELS.index("linked")].tolist()):
                probabilities[index] = probability
        return probabilities

    def link_notes(self, notes: Mapping[str, tuple[str, Sequence[Mention]]]
                   ) -> dict[str, list[tuple[Candidate, float]]]:
        """``{document_id: (text, mentions)}`` -> the links of each note, as (candidate, probability)."""
        owners, inputs, candidates = [], [], []
        for document_id, (text, mentions) in notes.items():
            note_candidates, texts = candidate_inputs(text, mentions, self.sentence_window,
                                                      features=self.input_features)
            owners.append((document_id, len(note_candidates)))
            candidates += note_candidates
            inputs += texts
        probabilities = self.probabilities(inputs)
        links, start = {}, 0
        for document_id, count in owners:
            links[document_id] = select_links(candidates[start:start + count], probabilities[start:start + count],
                                              self.link_threshold)
            start += count
        return links


class RuleLinker(_Linker):
    """The nearest-drug rule (``relations.nearest_drug_rule``) behind :class:`RelationLinker`'s interface: each
    attribute to the nearest drug in its sentence (Reason and ADE: within ``sentence_window`` sentences), confidence
    1.0 per link. No model, no torch."""

    by = "rule"

    def __init__(self, sentence_window: int = DEFAULT_SENTENCE_WINDOW):
        if sentence_window < 0:
            raise ValueError(f"sentence_window must be at least 0, got {sentence_window}")
        self.sentence_window = sentence_window

    def link_notes(self, notes: Mapping[str, tuple[str, Sequence[Mention]]]
                   ) -> dict[str, list[tuple[Candidate, float]]]:
        """``{document_id: (text, mentions)}`` -> the rule's links of each note, as (candidate, 1.0)."""
        return {document_id: [(candidate, 1.0) for candidate in nearest_drug_rule(text, mentions, self.sentence_window)]
                for document_id, (text, mentions) in notes.items()}


@dataclass(frozen=True)
class RelationChoice:
    """How a run links attributes to drugs, and why (:func:`choose_relations`): ``by`` is ``"model"`` (the
    relation model), ``"rule"`` (the nearest-drug rule) or None (no relation model given: no links); ``reason`` a
    short phrase with the validation numbers when they decided (for the log and ``summary.json``)."""

    by: str | None
    reason: str
    relation_model_name_or_path: str | None = None
    sentence_window: int = DEFAULT_SENTENCE_WINDOW  # the rule's: the relation model's window, else the default

    def describe(self) -> str:
        """The log line: what links, and why (numbers and names, never note text)."""
        if self.by == "model":
            return f"Relations: the relation model {self.relation_model_name_or_path} ({self.reason})"
        if self.by == "rule":
            return f"Relations: the nearest-drug rule ({self.reason}); sentence window {self.sentence_window}"
        return f"Relations: none ({self.reason})"


def check_relation_request(relations: str, relation_model_given: bool, link_threshold: float | None) -> None:
    """The choice's rules that need no model (a :class:`UsageError`, one line): ``relations`` is one of
    ``relations.RELATION_CHOICES``; ``model`` needs a relation model; a link threshold is for the model."""
    if relations not in RELATION_CHOICES:
        raise UsageError(f"--relations must be one of {', '.join(RELATION_CHOICES)}, got {relations!r}")
    if relations == "model" and not relation_model_given:
        raise UsageError("--relations model needs --relation_model_name_or_path (a run_re.py model); "
                         "--relations rule links with the nearest-drug rule without one")
    if link_threshold is not None and relations == "rule":
        raise UsageError("--link_threshold is for the relation model: --relations rule links each attribute to its "
                         "nearest drug, with no threshold")
    if link_threshold is not None and not relation_model_given:
        raise UsageError("--link_threshold needs --relation_model_name_or_path")


def choose_relations(relations: str = "auto", relation_model_name_or_path: str | None = None, *,
                     link_threshold: float | None = None, revision: str = "main", token: str | None = None
                     ) -> RelationChoice:
    """The one home of the choice between the relation model and the nearest-drug rule (the command line's
    ``--relations`` and ``NoteAnnotator.from_pretrained(relations=...)``). Reads only the relation model's
    ``config.json`` (no weights):

    - ``"rule"``: the rule, with the relation model's sentence window if one is given (else the default);
    - ``"model"``: the relation model (required);
    - ``"auto"``: what the model's config says scored higher on its validation notes (``relation_preferred``,
      written by ``run_re.py`` with ``relation_validation_scores``), else the model (an earlier version's model,
      or one trained without validation notes); with no relation model, no relations.

    A :class:`UsageError` for a request that cannot be met (``check_relation_request``; a ``link_threshold`` when
    ``auto`` chose the rule), a ``ValueError`` for a model that is not a ``run_re.py`` relation model."""
    check_relation_request(relations, relation_model_name_or_path is not None, link_threshold)
    if relation_model_name_or_path is None:
        if relations == "rule":
            return RelationChoice("rule", "--relations rule")
        return RelationChoice(None, "no relation model given")
    name = relation_model_name_or_path
    config = _relation_config(name, revision=revision, token=token)
    window = config.get(CONFIG_SENTENCE_WINDOW, DEFAULT_SENTENCE_WINDOW)
    if not isinstance(window, int) or isinstance(window, bool) or window < 0:
        raise ValueError(f"{name}: {CONFIG_SENTENCE_WINDOW} in its config.json must be a whole number of sentences, "
                         f"got {window!r}")
    if relations != "auto":
        return RelationChoice(relations, f"--relations {relations}", name, window)
    preferred = config.get(CONFIG_PREFERRED)
    if preferred is None:
        return RelationChoice("model", f"auto: no validation scores recorded in {name}: using the model", name, window)
    if preferred not in ("model", "rule"):
        raise ValueError(f"{name}: {CONFIG_PREFERRED} in its config.json must be 'model' or 'rule', got {preferred!r}")
    scores = config.get(CONFIG_VALIDATION_SCORES)
    other = "rule" if preferred == "model" else "model"
    try:
        reason = (f"auto: on validation the {preferred} scored {float(scores[preferred]):.4f} strict micro-F1, "
                  f"the {other} {float(scores[other]):.4f}")
    except (TypeError, KeyError, ValueError):  # the preference without its numbers: still the run's own choice
        reason = f"auto: {name} records that the {preferred} is preferred on validation"
    if preferred == "rule" and link_threshold is not None:
        raise UsageError(f"--link_threshold is for the relation model, and --relations auto chose the nearest-drug "
                         f"rule ({reason}): pass --relations model to link with the model at that threshold")
    return RelationChoice(preferred, reason, name, window)


def _relation_config(name_or_path: str, *, revision: str, token: str | None) -> dict[str, Any]:
    """A relation model's ``config.json`` as a dict (no weights, no model class), checked to be one."""
    from transformers import PretrainedConfig

    config, _ = PretrainedConfig.get_config_dict(name_or_path, revision=revision, token=token)
    id2label = config.get("id2label") or {}
    labels = tuple(id2label.get(str(i), id2label.get(i)) for i in range(len(id2label)))
    if labels != RELATION_LABELS:
        raise ValueError(f"{name_or_path}: not a run_re.py relation model (labels {list(labels)})")
    return config


def load_relation_linker(choice: RelationChoice, *, device: str | torch.device | None = None,
                         trust_remote_code: bool = False, revision: str = "main", token: str | None = None,
                         link_threshold: float | None = None, batch_size: int = DEFAULT_BATCH_SIZE
                         ) -> RelationLinker | RuleLinker | None:
    """The linker of a :class:`RelationChoice` (None: no relations), with the choice's reason on it."""
    if choice.by is None:
        return None
    if choice.by == "rule":
        linker: RelationLinker | RuleLinker = RuleLinker(choice.sentence_window)
    else:
        linker = RelationLinker.from_pretrained(
            choice.relation_model_name_or_path, device=device, trust_remote_code=trust_remote_code,
            revision=revision, token=token, link_threshold=link_threshold, batch_size=batch_size)
    linker.choice_reason = choice.reason
    return linker


def mentions_of(entities: Sequence[Entity | Mention]) -> list[Mention]:
    """``relations.Mention`` of predicted entities, with their ``.ann`` ids (``T1``, ``T2``, ... in order)."""
    return [Mention(entity.type, entity.start, entity.end, f"T{number}")
            for number, entity in enumerate(entities, start=1)]


class NoteAnnotator:
    """Entities of clinical notes, in one call: ``NoteAnnotator.from_pretrained(path)(text)``.

    Calls :func:`windows.predict_notes`, the same path as the command line and the saved CRF
    model's pipeline. A string gives a list of :class:`windows.Entity` (``type``, ``start``,
    ``end``, ``text``, ``confidence``, ``word_confidences``); a list of strings gives one list
    per note; :meth:`predict` gives the word-level predictions too. With a relation linker (a
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
                        **settings) -> "NoteAnnotator":
        """Load a model folder or Hub id (``settings``: batch_size, max_seq_length, stride, min_confidence),
        and optionally a relation model (``link_threshold``: default, the one it was trained with).

        ``relations`` (:func:`choose_relations`, logged once): ``"auto"`` (default) links with what scored higher on
        the relation model's validation notes, the model or the nearest-drug rule (the model when its config
        records no scores; no links without a relation model); ``"model"`` with the relation model (required);
        ``"rule"`` with the nearest-drug rule, no relation model needed (its sentence window if one is given). A
        :class:`RelationChoice` already made (and logged) is used as it is (several processes: one choice).

        ``backend="onnx"``: ``model_name_or_path`` is an ``export_onnx.py`` folder, run with onnxruntime on the
        CPU (``onnx_model_file``: ``model.onnx``, the default, or ``model.int8.onnx``); same windows, decoding
        and entities as the torch backend; ``num_threads``: onnxruntime's threads, default its own choice; the
        torch backend uses ``torch.set_num_threads``, which is process-wide and so left to the caller)."""
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "torch" and onnx_model_file not in (None, ONNX_FILE):
            raise ValueError("onnx_model_file is for backend='onnx'")
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
            from clinical_ner_crf.onnx_backend import OnnxTokenClassifier

            model = OnnxTokenClassifier(model_name_or_path, onnx_model_file or ONNX_FILE, num_threads=num_threads)
            tokenizer = load_tokenizer(model_name_or_path)
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
            from clinical_ner_crf.onnx_backend import predict_notes_onnx

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


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def entity_records(note: NotePrediction) -> list[dict[str, Any]]:
    """``entities.jsonl`` objects of a note; ``id`` is the entity's ``T`` line in the ``.ann``."""
    return [{
        "document_id": note.document_id,
        "id": f"T{number}",
        "type": entity.type,
        "start": entity.start,
        "end": entity.end,
        "text": entity.text,
        "confidence": round_confidence(entity.confidence),
        "word_confidences": [round_confidence(c) for c in entity.word_confidences],
    } for number, entity in enumerate(note.entities, start=1)]


def word_prediction_records(note: NotePrediction) -> list[dict[str, Any]]:
    """``predictions.jsonl`` records of a note (docs/architecture.md, "Predictions"; no gold tags)."""
    return [prediction_record(document_id=note.document_id, sentence_index=sentence.sentence_index,
                              tokens=sentence.tokens, token_starts=sentence.token_starts,
                              token_ends=sentence.token_ends, pred_tags=sentence.pred_tags,
                              confidences=sentence.confidences)
            for sentence in note.sentences]


def ann_name(note: Path) -> str:
    """The ``.ann`` name of a note: ``NAME.ann``, or ``NAME.ANN`` beside a ``NAME.TXT`` (one style per brat pair)."""
    return note.stem + (".ANN" if note.suffix == ".TXT" else ".ann")


_MALFORMED, _BLANK = -1, -2


def _record_position(record: Mapping[str, Any]) -> int | None:
    """Where a record sits in its note (sentence index, or the number of its ``T`` line); None if unknown."""
    if isinstance(record.get("sentence_index"), int):
        return record["sentence_index"]
    record_id = record.get("id")
    if isinstance(record_id, str) and record_id[:1] == "T" and record_id[1:].isdigit():
        return int(record_id[1:])
    return None


class JsonlScan:
    """One pass over an ``entities.jsonl`` or ``predictions.jsonl`` (and the parts of it that the processes of a
    multi-process run wrote, read after it as if appended): the block of records of each line.

    A block is one write of one note's records, in order (``T1, T2, ...`` or sentence 0, 1, ...), so a
    note written again (``--overwrite``, or redone after an interruption) starts a new block even right
    after its old one, and only its last block is current. A line that is not a JSON object with a
    ``document_id`` (the torn last line of a killed run) is malformed and belongs to no block.
    """

    def __init__(self, path: Path, parts: Sequence[Path] = ()):
        self.path, self.parts = path, list(parts)
        self.line_blocks = array("q")
        self.block_documents: list[str] = []
        self.block_starts = array("q")  # where each block starts, in bytes from the start of the main file
        self.last_block: dict[str, int] = {}
        self.malformed = 0
        self.ends_with_newline = True
        self.main_size = path.stat().st_size if path.is_file() else 0
        offset = 0
        for source in [self.path, *self.parts]:
            if not source.is_file():
                continue
            document, position = None, None  # a part starts new blocks
            with source.open("rb") as handle:
                for line in handle:
                    line_start, offset = offset, offset + len(line)
                    if source == self.path:
                        self.ends_with_newline = line.endswith(b"\n")
                    if not line.strip():
                        self.line_blocks.append(_BLANK)
                        continue
                    try:
                        record = json.loads(line.decode("utf-8"))
                        record_document = record["document_id"]
                        if not isinstance(record_document, str):
                            raise TypeError
                    except (ValueError, TypeError, KeyError, IndexError):
                        self.malformed += 1
                        self.line_blocks.append(_MALFORMED)
                        continue
                    record_position = _record_position(record)
                    if record_document != document or (record_position is not None and position is not None
                                                       and record_position <= position):
                        self.block_documents.append(record_document)
                        self.block_starts.append(line_start)
                    document, position = record_document, record_position
                    self.last_block[document] = len(self.block_documents) - 1
                    self.line_blocks.append(len(self.block_documents) - 1)

    @property
    def documents(self) -> set[str]:
        return set(self.last_block)

    def compact(self, keep: Mapping[str, bool], mode: int, rewritten: Collection[str] = frozenset(),
                since: int | None = None) -> Counter:
        """Keep the last block of each document that ``keep`` says, merging the parts into the main file; rewrite
        it atomically only when a line goes, a part comes in (or the last line lacks its newline), else just set
        ``mode``. The documents ``rewritten`` by the run whose records start at byte ``since`` (default: the
        parts) keep only a block of that run: none when the run wrote them no record here (no entity, or a
        file its options did not write). Returns what was dropped."""
        since = self.main_size if since is None else since
        dropped = Counter()
        if self.malformed:
            dropped["malformed_lines"] = self.malformed
        current = {block for document, block in self.last_block.items()
                   if keep[document] and (document not in rewritten or self.block_starts[block] >= since)}
        for block in self.line_blocks:
            if block >= 0 and block not in current:
                document = self.block_documents[block]
                dropped["records_without_ann" if not keep[document] else "superseded_records"] += 1
        if not dropped and self.ends_with_newline and not any(part.is_file() for part in self.parts):
            if self.path.is_file():
                os.chmod(self.path, mode)
            return dropped
        if self.path.is_file() or self.parts:
            lines = iter(self.line_blocks)
            with atomic_open(self.path, newline="\n", mode=mode) as new:
                for source in [self.path, *self.parts]:
                    if not source.is_file():
                        continue
                    with source.open("rb") as old:
                        for line, block in zip(old, lines):
                            if block in current:
                                new.write(line.decode("utf-8").rstrip("\n") + "\n")
                new.flush()
                os.fsync(new.fileno())  # the compacted file is durable before it replaces the old one
            for part in self.parts:  # only now: a crash before this leaves copies that the next run drops
                part.unlink(missing_ok=True)
        if dropped["malformed_lines"]:
            # A count only: a malformed line may hold note text.
            logger.warning("%s: dropped %d malformed lines (an interrupted write)", self.path.name,
                           dropped["malformed_lines"])
        return dropped


class JsonlAppender:
    """A JSONL output file open for appending: each group's records are durable before its ``.ann`` files."""

    def __init__(self, path: Path, mode: int):
        self.path = path
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
        self.handle = os.fdopen(descriptor, "a", encoding="utf-8", newline="\n")
        self.mode = None
        self.restrict(mode)

    def restrict(self, mode: int) -> None:
        """Set the file's mode (before records of a more private note go in)."""
        if mode != self.mode:
            os.fchmod(self.handle.fileno(), mode)
            self.mode = mode

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        self.handle.write("".join(jsonl_line(record) for record in records))
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()


def _sync_folder(folder: Path) -> None:
    """Make removals in ``folder`` durable before what follows them (not every system can open a folder)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _write_ann(path: Path, note: NotePrediction, text: str, links: Sequence[tuple[Candidate, float]] = (), *,
               overwrite: bool, mode: int) -> None:
    write_brat_ann(path, [(e.type, e.start, e.end) for e in note.entities], text,
                   relations=[(c.type, c.attribute, c.drug) for c, _ in links], overwrite=overwrite, mode=mode)


class InputError(UsageError):
    """A problem with the input folder as a whole (the run cannot start)."""


@dataclass
class InputFolder:
    """What an input folder holds: the notes (``.txt`` in any case, sorted by name) and the names of the rest."""

    notes: list[Path] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    not_regular: list[tuple[Path, str]] = field(default_factory=list)  # named like notes: FIFOs, folders, ...

    @property
    def files_seen(self) -> dict[str, int]:
        return {"notes": len(self.notes), "hidden": len(self.hidden), "other": len(self.other),
                "folders": len(self.folders), "named_like_notes_not_regular_files": len(self.not_regular)}

    def log_ignored(self) -> None:
        """One INFO line per kind not read, with the names (file names, never note text)."""
        for kind, names, why in (("hidden files", self.hidden, "name starts with '.'"),
                                 ("other files", self.other, "not .txt"),
                                 ("folders", self.folders, "notes are not searched in subfolders")):
            if names:
                logger.info("%d %s not read (%s): %s", len(names), kind, why, _some_names(names))


def _some_names(names: Sequence[str], shown: int = 20) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def list_notes(input_dir) -> InputFolder:
    """The notes of a folder (not recursive): every regular file (or link to one) with a ``.txt`` suffix in any
    case, hidden ones aside. A FIFO, socket, device, folder or broken link named so is never opened (a FIFO
    would block the run): it is listed with its reason and fails as a note."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise InputError(f"{input_dir} is not a folder")
    folder = InputFolder()
    for path in sorted(input_dir.iterdir()):
        if path.name.startswith("."):
            folder.hidden.append(path.name)
        elif path.suffix.lower() == ".txt":
            irregular = irregular_reason(path)
            if irregular:
                folder.not_regular.append((path, irregular))
            else:
                folder.notes.append(path)
        elif path.is_dir():
            folder.folders.append(path.name)
        else:
            folder.other.append(path.name)
    if not folder.notes and not folder.not_regular:
        seen = ", ".join(f"{count} {kind}" for kind, count in folder.files_seen.items() if count)
        raise InputError(f"no .txt files in {input_dir} ({seen or 'it is empty'})")
    return folder


def _read_note(path: Path) -> str:
    """A note's text exactly as stored (corpus_io.read_text); errors name the file and the reason only."""
    try:
        return read_text(path)
    except BratFormatError as error:
        raise _NoteError(error.kind, error.reason) from None
    except IsADirectoryError:
        raise _NoteError("unreadable", "is a folder, not a file") from None
    except OSError as error:
        raise _NoteError("unreadable", f"cannot be read ({error.strerror or type(error).__name__})") from None


class _NoteError(Exception):
    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind, self.reason = kind, reason


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


@dataclass
class AnnotationArguments:
    """Arguments of ``annotate_notes.py``: a model, a folder of notes, where the annotations go."""

    model_name_or_path: str = field(metadata={"help": "Model folder (run_ner_crf.py output) or Hub id."})
    input_dir: str = field(metadata={"help": "Folder of .txt notes (UTF-8; not recursive)."})
    output_dir: str = field(metadata={"help": "Where the .ann files, entities.jsonl and summary.json go (a folder "
                                              "of its own: never --input_dir, inside it or around it)."})
    batch_size: int = field(default=DEFAULT_BATCH_SIZE, metadata={"help": "Windows per batch (grouped by length)."})
    max_seq_length: Optional[int] = field(default=None, metadata={
        "help": f"Subwords per window, special tokens included (default: {DEFAULT_MAX_SEQ_LENGTH}, or what the model "
                "takes if less; a larger value is capped)."})
    stride: int = field(default=DEFAULT_STRIDE, metadata={"help": "Subwords of overlap between consecutive windows."})
    device: Optional[str] = field(default=None, metadata={"help": "cpu, cuda or cuda:N (default: cuda when available)."})
    bf16: bool = field(default=False, metadata={"help": "bfloat16 weights and autocast (GPU only; the CRF stays float32)."})
    min_confidence: float = field(default=0.0, metadata={
        "help": "Drop entities whose confidence (mean CRF marginal, or softmax probability, over their words) is "
                "below this, in [0, 1]."})
    overwrite: bool = field(default=False, metadata={
        "help": "Annotate every note again, replacing existing .ann files (without it, notes that have an .ann "
                "are kept: a re-run after an interruption annotates only the rest)."})
    words_per_group: int = field(default=WORDS_PER_GROUP, metadata={
        "help": "Notes are predicted and written in groups of about this many words: smaller groups hold less in "
                "memory and lose less work to an interruption."})
    word_predictions: bool = field(default=False, metadata={
        "help": "Also write predictions.jsonl: word-level tags and confidences per sentence (docs/architecture.md "
                "format, gold_tags null)."})
    trust_remote_code: bool = field(default=False, metadata={
        "help": "Run the code shipped with the model (its modeling_crf.py, which you should read first) instead of "
                "this project's copy; needed for Hub models with custom code that this project does not have."})
    model_revision: str = field(default="main", metadata={"help": "Model version on the Hub (branch, tag or commit)."})
    token: Optional[str] = field(default=None, metadata={"help": "Hub token for private models (default: the cached login)."})
    relation_model_name_or_path: Optional[str] = field(default=None, metadata={
        "help": "A run_re.py relation model (folder or Hub id): links each attribute to its drug, writes R lines "
                "in the .ann files and medications.jsonl."})
    link_threshold: Optional[float] = field(default=None, metadata={
        "help": "Link an (attribute, drug) pair at this probability or above, in [0, 1] (default: the relation "
                "model's own, from its training). For the model only: an error with --relations rule."})
    relations: str = field(default="auto", metadata={
        "help": "How attributes are linked to drugs: model (the relation model; --relation_model_name_or_path "
                "required), rule (each attribute to its nearest drug, confidence 1.0; no relation model needed, "
                "the model's sentence window if one is given) or auto (what scored higher on the relation model's "
                "validation notes, as run_re.py recorded in its config; the model when none is recorded; no "
                "relations without a relation model). The log and summary.json say which, and why.",
        "choices": list(RELATION_CHOICES)})
    backend: str = field(default="torch", metadata={
        "help": "torch (the model folder, PyTorch) or onnx (an export_onnx.py folder, run with onnxruntime on CPU).",
        "choices": list(BACKENDS)})
    onnx_model_file: str = field(default=ONNX_FILE, metadata={
        "help": f"With --backend onnx: the graph to run, {ONNX_FILE} (fp32) or {ONNX_INT8_FILE} (--quantize int8)."})
    num_processes: int = field(default=1, metadata={
        "help": "Annotate with this many processes on this machine, the notes split among them by size (each loads "
                "the model; GPUs: process k uses cuda:k). Under `accelerate launch` or torchrun, give the number "
                "to the launcher instead."})
    num_threads: Optional[int] = field(default=None, metadata={
        "help": "CPU threads per process, torch and onnxruntime (default: the machine's cores divided among the "
                "processes on it)."})


def build_parser() -> HfArgumentParser:
    return HfArgumentParser(AnnotationArguments, prog="annotate_notes.py", description=__doc__.split("\n\n")[0])


def parse_args(argv: Sequence[str] | None = None) -> AnnotationArguments:
    parser = build_parser()
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    # The window, batch and confidence settings are checked where they are used (windows.py, NoteAnnotator).
    problems = []
    if args.words_per_group < 1:
        problems.append(f"--words_per_group must be at least 1, got {args.words_per_group}")
    if args.num_processes < 1:
        problems.append(f"--num_processes must be at least 1, got {args.num_processes}")
    if args.num_processes > 1 and _launched_processes() > 1:
        problems.append(f"--num_processes {args.num_processes} under a launcher that already started "
                        f"{_launched_processes()} processes: give the number to one of them")
    if args.num_threads is not None and args.num_threads < 1:
        problems.append(f"--num_threads must be at least 1, got {args.num_threads}")
    if args.backend == "onnx":
        if args.device not in (None, "cpu") or args.bf16:
            problems.append("--backend onnx runs on the CPU (onnxruntime): no --device cuda, no --bf16")
        args.device = "cpu"
    if args.backend == "torch":  # (the onnx backend runs without torch)
        import torch

        if args.device is None:
            args.device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            device = torch.device(args.device)
        except RuntimeError:
            problems.append(f"--device {args.device!r} is not a device (cpu, cuda, cuda:N)")
        else:
            processes = max(args.num_processes, _launched_processes())
            if device.type == "cuda" and not torch.cuda.is_available():
                problems.append("--device cuda: no CUDA GPU is available")
            elif device.type == "cuda" and device.index is None and processes > torch.cuda.device_count():
                problems.append(f"{processes} processes on {torch.cuda.device_count()} GPUs: one process per GPU "
                                "at most")
            if args.bf16 and device.type != "cuda":
                problems.append("--bf16 needs a GPU (--device cuda)")
    if problems:
        parser.error("; ".join(problems))
    return args


def _note_groups(paths: Sequence[Path], words_per_group: int) -> Iterator[list[tuple[Path, str | _NoteError]]]:
    """Notes read lazily, grouped by about ``words_per_group`` words (a rough count by spaces)."""
    group, size = [], 0
    for path in paths:
        try:
            text: str | _NoteError = _read_note(path)
            size += len(text.split())
        except _NoteError as error:
            text = error
        group.append((path, text))
        if size >= words_per_group:
            yield group
            group, size = [], 0
    if group:
        yield group


@dataclass
class _Tally:
    """What one process did: counts for the summary, failures (file names and kinds), the notes written."""

    counts: Counter = field(default_factory=Counter)
    entity_types: Counter = field(default_factory=Counter)
    relation_types: Counter = field(default_factory=Counter)
    failures: list[dict[str, str]] = field(default_factory=list)
    annotated: set[str] = field(default_factory=set)
    excluded: set[str] = field(default_factory=set)  # annotated, but their .ann could not be written

    def fail(self, path: Path, kind: str, reason: str) -> None:
        # The file name and the reason only: never the note's text.
        logger.error("%s: skipped: %s", path.name, reason)
        self.failures.append({"file": path.name, "kind": kind})

    def update(self, other: "_Tally") -> None:
        self.counts.update(other.counts)
        self.entity_types.update(other.entity_types)
        self.relation_types.update(other.relation_types)
        self.failures.extend(other.failures)
        self.annotated |= other.annotated
        self.excluded |= other.excluded


@dataclass
class _Plan:
    """What process 0 found before a run: the notes, which to annotate (split among the processes), the rest."""

    folder: InputFolder
    notes: dict[str, Path]  # document id -> note
    todo: list[Path]
    already_annotated: list[Path]
    stale: int
    jsonl_mode: int
    main_sizes: dict[str, int]  # where this run's records start in each JSONL file (one process)
    repairs: dict[str, Counter]
    notes_redone: int = 0  # their .ann and records disagreed: annotated again


_JSONL_FILES = (ENTITIES_FILE, WORD_PREDICTIONS_FILE, MEDICATIONS_FILE)


def split_notes(paths: Sequence[Path], num_processes: int) -> list[list[Path]]:
    """Notes for each process, about equal in bytes (largest first, each to the least loaded process), each
    process's in name order: the same folder gives the same split."""
    def size(path: Path) -> int:
        try:
            return path.stat().st_size
        except OSError:
            return 0  # it fails when read, with its reason

    loads, shares = [0] * num_processes, [[] for _ in range(num_processes)]
    for path in sorted(paths, key=lambda path: (-size(path), path.name)):
        least = loads.index(min(loads))
        shares[least].append(path)
        loads[least] += size(path)
    return [sorted(share) for share in shares]


def _compact_outputs(output_dir: Path, notes: Mapping[str, Path], repairs: dict[str, Counter], *,
                     excluded: Collection[str] = frozenset(), annotated_now: Collection[str] = frozenset(),
                     since: Mapping[str, int] | None = None) -> int:
    """Compact the JSONL files (see JsonlScan), merging the parts of a multi-process run (this one, or one that
    was killed) and the notes they logged; returns the files' mode, that of the notes they hold. Notes written
    by the run (``annotated_now``, or logged by its processes) keep only its records: none in a file the run
    did not write for them."""
    logs = process_parts(output_dir, ANNOTATED_LOG_FILE)
    annotated_now, excluded = set(annotated_now), set(excluded)
    for log in logs:
        for record in _read_log(log):
            (annotated_now if record["ann"] else excluded).add(record["document_id"])
    scans = [JsonlScan(output_dir / name, process_parts(output_dir, name)) for name in _JSONL_FILES]
    documents = set().union(*(scan.documents for scan in scans))

    def ann_path(document_id: str) -> Path | None:
        """The document's .ann if it exists (a document whose note is gone may have either style)."""
        if document_id in notes:
            candidates = [output_dir / ann_name(notes[document_id])]
        else:
            candidates = [output_dir / f"{document_id}.ann", output_dir / f"{document_id}.ANN"]
        return next((path for path in candidates if path.exists()), None)

    anns = {document_id: ann_path(document_id) for document_id in documents | set(notes)}
    keep = {document_id: anns[document_id] is not None and document_id not in excluded for document_id in documents}
    mode = note_file_mode([notes.get(document_id, ann) for document_id, ann in anns.items() if ann is not None])
    for scan in scans:
        dropped = scan.compact(keep, mode, rewritten=annotated_now,
                               since=None if since is None or scan.parts else since.get(scan.path.name))
        if dropped:
            logger.info("%s: compacted (%s)", scan.path.name, ", ".join(f"{n} {k}" for k, n in dropped.items()))
        repairs[scan.path.name].update(dropped)
    for log in logs:  # last: a crash before this redoes the merge the same way
        log.unlink(missing_ok=True)
    return mode


def _read_log(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a process's log of the notes it wrote (a torn last line is skipped)."""
    with path.open("rb") as handle:
        for line in handle:
            try:
                record = json.loads(line.decode("utf-8"))
                if isinstance(record.get("document_id"), str) and isinstance(record.get("ann"), bool):
                    yield record
            except (ValueError, AttributeError):
                continue


# What a run writes into its output folder besides the .ann of each note (folder_safety.Manifest): the JSONL
# files, the summary, the parts and logs of a multi-process run, and atomic_open's temporary files of all of them.
_OWN_FILES = (*_JSONL_FILES, SUMMARY_FILE)
_OWN_PATTERNS = (*(f".{name}.process-*" for name in (*_JSONL_FILES, ANNOTATED_LOG_FILE)),)


def _check_output_folder(input_dir, output_dir: Path, notes: Sequence[Path]) -> Manifest:
    """Refuse an output folder where the run would write over what the toolkit did not write: the input folder
    (or one inside or around it), output files of the same names, or an ``.ann`` of one of the notes (gold
    annotations copied there, say). Claims the run's own names; returns the folder's manifest."""
    check_output_apart(output_dir, {"--input_dir": input_dir})
    manifest = Manifest(output_dir)
    foreign = [ann_name(path) for path in notes
               if (output_dir / ann_name(path)).exists() and not manifest.owns(ann_name(path))]
    if foreign:
        raise UsageError(f"--output_dir {output_dir} holds {len(foreign)} .ann files of these notes that this toolkit "
                         f"did not write ({_some_names(foreign, 3)}): they are kept as they are; move them out or "
                         "choose another output folder")
    manifest.claim_for_writing([*_OWN_FILES, *_OWN_PATTERNS])  # (refuses their names if someone else's)
    return manifest


def _ann_entity_ids(path: Path, types: tuple[str, ...] | None = None) -> list[str]:
    """The ``T`` ids of an ``.ann`` the toolkit wrote (of ``types`` only, if given), in file order."""
    ids = []
    for line in read_text(path).split("\n"):
        entity_id, _, rest = line.partition("\t")
        if entity_id[:1] == "T" and (types is None or rest.split(" ", 1)[0] in types):
            ids.append(entity_id)
    return ids


def _records_by_document(path: Path, field_name: str = "id") -> dict[str, list[str]]:
    """``field_name`` of each record of a compacted JSONL file, by document, in file order."""
    records: dict[str, list[str]] = {}
    if path.is_file():
        with path.open("rb") as handle:
            for line in handle:
                record = json.loads(line.decode("utf-8"))
                records.setdefault(record["document_id"], []).append(record[field_name])
    return records


def inconsistent_notes(output_dir: Path, notes: Mapping[str, Path]) -> list[str]:
    """The notes whose ``.ann`` (written by the toolkit) and records disagree: the ``T`` lines are not exactly the
    note's records in ``entities.jsonl``, or its drug records in ``medications.jsonl`` (where it has any) are not
    exactly its ``Drug`` lines. Call it on compacted files."""
    manifest = Manifest(output_dir)
    entities = _records_by_document(output_dir / ENTITIES_FILE)
    medications = _records_by_document(output_dir / MEDICATIONS_FILE)
    wrong = []
    for document_id, note in sorted(notes.items()):
        ann = output_dir / ann_name(note)
        if not ann.is_file() or not manifest.owns(ann.name):
            continue
        if _ann_entity_ids(ann) != entities.get(document_id, []) or (
                document_id in medications and _ann_entity_ids(ann, (DRUG_TYPE,)) != medications[document_id]):
            wrong.append(document_id)
    return wrong


def _plan(input_dir, output_dir: Path, overwrite: bool, tally: _Tally) -> _Plan:
    """Process 0, before any process writes: check and claim the output folder, tidy it (stale temporary files,
    the parts of a killed multi-process run), list the notes, repair what an earlier run left inconsistent, and
    decide which notes to annotate."""
    folder = list_notes(input_dir)
    manifest = _check_output_folder(input_dir, output_dir, folder.notes)
    output_dir.mkdir(parents=True, exist_ok=True)
    stale = remove_stale_temporary_files(output_dir, manifest.owns)  # of its own files only
    if stale:
        logger.info("%s: removed %d temporary files left by an interrupted run", output_dir, stale)
    logger.info("%s: %d notes", input_dir, len(folder.notes))
    folder.log_ignored()
    for path, reason in folder.not_regular:  # reported by name and reason, never opened
        tally.fail(path, "not_a_regular_file", f"{reason}; only regular files are read")
    notes: dict[str, Path] = {}
    for path in folder.notes:
        if path.stem in notes:
            tally.fail(path, "duplicate_name", f"{notes[path.stem].name} has the same name; rename one of them")
            continue
        notes[path.stem] = path
    repairs = {name: Counter() for name in _JSONL_FILES}
    mode = _compact_outputs(output_dir, notes, repairs)
    # A note whose .ann lost its records (a run of an earlier version, a crash in the wrong place) is annotated
    # again: its .ann is ours, so it goes first, and then it is a note like any other without an .ann.
    redone = inconsistent_notes(output_dir, notes)
    if redone:
        logger.warning("%d notes had an .ann whose records were missing or different in %s: annotating them "
                       "again: %s", len(redone), ENTITIES_FILE, _some_names([notes[d].name for d in redone]))
        for document_id in redone:
            (output_dir / ann_name(notes[document_id])).unlink()
        _sync_folder(output_dir)
        mode = _compact_outputs(output_dir, notes, repairs)
    todo, already_annotated = [], []
    for path in notes.values():
        (todo if overwrite or not (output_dir / ann_name(path)).exists() else already_annotated).append(path)
    if already_annotated:
        logger.info("%d notes already have an .ann in %s: kept (pass --overwrite to replace them): %s",
                    len(already_annotated), output_dir, _some_names([path.name for path in already_annotated]))
    manifest.claim(ann_name(path) for path in todo)  # before any process writes one
    main_sizes = {name: (output_dir / name).stat().st_size if (output_dir / name).is_file() else 0
                  for name in _JSONL_FILES}
    return _Plan(folder, notes, todo, already_annotated, stale, mode, main_sizes, repairs, len(redone))


def _annotate_notes(annotator: NoteAnnotator, paths: Sequence[Path], output_dir: Path, tally: _Tally, *,
                    jsonl_mode: int, overwrite: bool, word_predictions: bool, words_per_group: int,
                    progress: bool | None, process_index: int | None = None) -> None:
    """Annotate ``paths`` into ``output_dir``, group by group: records appended (to the JSONL files, or to this
    process's parts of them), durable, then the ``.ann`` files (then, for a process, the log of what it wrote)."""
    notes = {path.stem: path for path in paths}
    linking = annotator.relation_linker is not None
    written_files = [ENTITIES_FILE] + [WORD_PREDICTIONS_FILE] * word_predictions + [MEDICATIONS_FILE] * linking
    if process_index is not None:
        written_files.append(ANNOTATED_LOG_FILE)

    def target(name: str) -> Path:
        return output_dir / (name if process_index is None else process_part_name(name, process_index))

    # Opened with the first records: a run that fails at once writes nothing.
    appenders: dict[str, JsonlAppender] = {}

    from tqdm.auto import tqdm

    description = "notes" if process_index is None else f"notes (process {process_index})"
    bar = tqdm(total=len(paths), desc=description, unit="note",
               disable=None if progress is None else not progress)
    try:
        for group in _note_groups(paths, words_per_group):
            texts = {}
            for path, text in group:
                if isinstance(text, _NoteError):
                    tally.fail(path, text.kind, text.reason)
                elif not text.strip():
                    logger.warning("%s: empty note (no text): writing an empty .ann", path.name)
                    tally.counts["empty_notes"] += 1
                    texts[path.stem] = text
                else:
                    texts[path.stem] = text
            predictions = annotator.predict(texts, progress=progress)
            # 1. With --overwrite, the old .ann go first: an old .ann never stands beside new records.
            #    Without it, an .ann that appeared during the run is not ours to pair with records.
            removed = False
            for document_id in list(predictions):
                path = output_dir / ann_name(notes[document_id])
                if path.exists():
                    if overwrite:
                        path.unlink()
                        removed = True
                    else:
                        tally.fail(notes[document_id], "ann_exists",
                                   f"{path.name} appeared in {output_dir} during the run (pass --overwrite)")
                        del predictions[document_id]
            if removed:
                _sync_folder(output_dir)
            # 2. The group's records, durable, in a file no more readable than any note in it.
            jsonl_mode &= note_file_mode(notes[document_id] for document_id in predictions)
            links = annotator.link(texts, predictions) if linking else {}
            if not appenders:
                appenders.update({name: JsonlAppender(target(name), jsonl_mode) for name in written_files})
            for appender in appenders.values():
                appender.restrict(jsonl_mode)
            appenders[ENTITIES_FILE].append(record for note in predictions.values() for record in entity_records(note))
            if word_predictions:
                appenders[WORD_PREDICTIONS_FILE].append(
                    record for note in predictions.values() for record in word_prediction_records(note))
            if linking:
                appenders[MEDICATIONS_FILE].append(
                    record for document_id, note in predictions.items()
                    for record in medication_list(note, texts[document_id], links[document_id]))
            # 3. Only then the .ann files.
            written = {}
            for document_id, note in predictions.items():
                text = texts[document_id]
                try:
                    _write_ann(output_dir / ann_name(notes[document_id]), note, text, links.get(document_id, ()),
                               overwrite=overwrite, mode=note_file_mode([notes[document_id]]))
                except FileExistsError:
                    tally.excluded.add(document_id)
                    written[document_id] = False
                    tally.fail(notes[document_id], "ann_exists",
                               f"{ann_name(notes[document_id])} appeared in {output_dir} during the run "
                               "(pass --overwrite)")
                    continue
                written[document_id] = True
                tally.annotated.add(document_id)
                counts = tally.counts
                counts["notes_annotated"] += 1
                counts["characters"] += len(text)
                counts["sentences"] += len(note.sentences)
                counts["words"] += sum(len(sentence.tokens) for sentence in note.sentences)
                counts["windows"] += note.num_windows
                counts["windowed_sentences"] += sum(sentence.num_windows > 1 for sentence in note.sentences)
                counts["entities_below_min_confidence"] += note.num_below_min_confidence
                tally.entity_types.update(entity.type for entity in note.entities)
                tally.relation_types.update(candidate.type for candidate, _ in links.get(document_id, ()))
                counts["drugs"] += sum(entity.type == DRUG_TYPE for entity in note.entities)
            # 4. A process logs what it wrote (names only), for the merge of its parts.
            if process_index is not None:
                appenders[ANNOTATED_LOG_FILE].append({"document_id": document_id, "ann": ann}
                                                     for document_id, ann in written.items())
            bar.update(len(group))
    finally:
        bar.close()
        for appender in appenders.values():
            appender.close()


def annotate_folder(
    annotator: NoteAnnotator,
    input_dir,
    output_dir,
    *,
    overwrite: bool = False,
    word_predictions: bool = False,
    words_per_group: int = WORDS_PER_GROUP,
    progress: bool | None = None,
    distributed: bool = False,
) -> dict[str, Any] | None:
    """Annotate the notes of ``input_dir`` that have no ``.ann`` in ``output_dir`` (all of them with
    ``overwrite``); see the module docstring. Returns the summary.

    ``distributed``: every process of a ``torch.distributed`` group calls this with its own annotator. Process 0
    plans and splits the notes (:func:`split_notes`); each process annotates its share into its own parts of the
    JSONL files; process 0 then merges them and returns the summary (the others return None)."""
    started = time.perf_counter()
    output_dir = Path(output_dir)
    if distributed:
        import torch.distributed as dist

        process_index, num_processes = dist.get_rank(), dist.get_world_size()
    else:
        process_index, num_processes = 0, 1
    with FolderLock(output_dir, "annotate_notes.annotate_folder", enabled=process_index == 0):
        return _annotate_folder(annotator, input_dir, output_dir, process_index, num_processes, started,
                                overwrite=overwrite, word_predictions=word_predictions,
                                words_per_group=words_per_group, progress=progress, distributed=distributed)


def _annotate_folder(annotator: NoteAnnotator, input_dir, output_dir: Path, process_index: int, num_processes: int,
                     started: float, *, overwrite: bool, word_predictions: bool, words_per_group: int,
                     progress: bool | None, distributed: bool) -> dict[str, Any] | None:
    if distributed:
        import torch.distributed as dist
    tally = _Tally()
    plan = _plan(input_dir, output_dir, overwrite, tally) if process_index == 0 else None
    settings = dict(jsonl_mode=plan.jsonl_mode if plan else 0, overwrite=overwrite, word_predictions=word_predictions,
                    words_per_group=words_per_group, progress=progress)
    if distributed:
        # Process 0 lists the folder once and hands out the shares: no process starts writing before all have theirs.
        shares = [split_notes(plan.todo, num_processes), plan.jsonl_mode] if plan else [None, None]
        dist.broadcast_object_list(shares, src=0)
        settings["jsonl_mode"] = shares[1]
        own = _Tally()
        _annotate_notes(annotator, shares[0][process_index], output_dir, own, process_index=process_index,
                        **settings)
        tallies = [None] * num_processes if process_index == 0 else None
        dist.gather_object(own, tallies, dst=0)  # also waits for every process to finish
        if process_index != 0:
            return None
        for other in tallies:
            tally.update(other)
    else:
        try:
            _annotate_notes(annotator, plan.todo, output_dir, tally, **settings)
        except BaseException:
            # Interrupted (Ctrl-C) or failed: leave the folder tidy if we can; the next run does it otherwise.
            try:
                _compact_outputs(output_dir, plan.notes, plan.repairs, excluded=tally.excluded,
                                 annotated_now=tally.annotated, since=plan.main_sizes)
            except Exception as error:  # noqa: BLE001 (the first error is the one to report)
                logger.warning("could not compact the JSONL files (%s); the next run will", type(error).__name__)
            raise
    return _finish(plan, tally, _annotator_facts(annotator), output_dir, started=started,
                   num_processes=num_processes, word_predictions=word_predictions, words_per_group=words_per_group)


def _annotator_facts(annotator: NoteAnnotator) -> dict[str, Any]:
    """What ``summary.json`` says of the annotator (sent back by each process of a --num_processes run)."""
    linker = annotator.relation_linker
    device = annotator.settings["device"]
    return {"model_type": "crf" if annotator.is_crf else "linear", "linking": linker is not None,
            "relations_by": linker.by if linker else None,
            "relations_choice_reason": linker.choice_reason if linker else None,
            "settings": {**annotator.settings, "backend": annotator.backend,
                         "device": str(device if device is not None else next(annotator.model.parameters()).device),
                         "link_threshold": linker.link_threshold if linker else None,
                         "sentence_window": linker.sentence_window if linker else None}}


def _finish(plan: _Plan, tally: _Tally, facts: Mapping[str, Any], output_dir: Path, *, started: float,
            num_processes: int, word_predictions: bool, words_per_group: int) -> dict[str, Any]:
    """After every process: merge the parts and compact (the records of notes written again kept only from this
    run), then write ``summary.json``."""
    mode = _compact_outputs(output_dir, plan.notes, plan.repairs, excluded=tally.excluded,
                            annotated_now=tally.annotated, since=plan.main_sizes)
    linking = facts["linking"]
    for name in [ENTITIES_FILE] + [WORD_PREDICTIONS_FILE] * word_predictions + [MEDICATIONS_FILE] * linking:
        if not (output_dir / name).exists():  # nothing annotated: the files still say so
            JsonlAppender(output_dir / name, mode).close()
    # The promise, checked: every note's .ann holds exactly its records.
    inconsistent = inconsistent_notes(output_dir, plan.notes)
    if inconsistent:
        logger.error("%d notes have an .ann whose records differ (run the same command again to redo them): %s",
                     len(inconsistent), _some_names([plan.notes[d].name for d in inconsistent]))
    Manifest(output_dir).compact(keep=_OWN_FILES)
    counts, folder = tally.counts, plan.folder
    seconds = time.perf_counter() - started
    summary = {
        "model_type": facts["model_type"],
        "files_seen": folder.files_seen,
        "notes_found": len(folder.notes),
        "notes_annotated": counts["notes_annotated"],
        "notes_already_annotated": len(plan.already_annotated),
        "empty_notes": counts["empty_notes"],
        "notes_failed": len(tally.failures),
        "failures_by_kind": dict(sorted(Counter(f["kind"] for f in tally.failures).items())),
        "failed_files": sorted(tally.failures, key=lambda failure: failure["file"]),
        "characters": counts["characters"],
        "sentences": counts["sentences"],
        "words": counts["words"],
        "windows": counts["windows"],
        "windowed_sentences": counts["windowed_sentences"],
        "entities": sum(tally.entity_types.values()),
        "entities_by_type": dict(sorted(tally.entity_types.items())),
        "entities_below_min_confidence": counts["entities_below_min_confidence"],
        "relations": sum(tally.relation_types.values()) if linking else None,
        "relations_by_type": dict(sorted(tally.relation_types.items())) if linking else None,
        "medication_records": counts["drugs"] if linking else None,
        "relations_by": facts["relations_by"],  # "model" or "rule" (None: no relations), and why
        "relations_choice_reason": facts["relations_choice_reason"],
        "stale_temporary_files_removed": plan.stale,
        "jsonl_records_dropped": {name: dict(sorted(dropped.items())) for name, dropped in plan.repairs.items()},
        "notes_redone_after_repair": plan.notes_redone,
        "notes_with_ann": sum((output_dir / ann_name(note)).is_file() for note in plan.notes.values()),
        "notes_inconsistent": len(inconsistent),
        "settings": {**facts["settings"], "num_processes": num_processes, "words_per_group": words_per_group},
        "seconds": round(seconds, 3),
        "characters_per_second": round(counts["characters"] / seconds, 1) if seconds > 0 else None,
    }
    write_json_atomically(output_dir / SUMMARY_FILE, summary)
    return summary


def format_summary(summary: Mapping[str, Any], output_dir) -> str:
    """Counts only."""
    by_type = ", ".join(f"{t} {n}" for t, n in summary["entities_by_type"].items()) or "none"
    lines = [
        f"Annotated {summary['notes_annotated']} of {summary['notes_found']} notes into {output_dir} "
        f"in {summary['seconds']:.1f} s: {summary['sentences']} sentences, {summary['windows']} windows "
        f"({summary['windowed_sentences']} sentences needed more than one), {summary['entities']} entities ({by_type})",
    ]
    if summary["relations"] is not None:
        by_type = ", ".join(f"{t} {n}" for t, n in summary["relations_by_type"].items()) or "none"
        by = "the nearest-drug rule" if summary["relations_by"] == "rule" else "the relation model"
        lines.append(f"{summary['relations']} relations ({by_type}) by {by} ({summary['relations_choice_reason']}); "
                     f"{summary['medication_records']} drug records in {MEDICATIONS_FILE}")
    if summary["entities_below_min_confidence"]:
        lines.append(f"{summary['entities_below_min_confidence']} entities below --min_confidence "
                     f"{summary['settings']['min_confidence']} were dropped")
    if summary["notes_already_annotated"]:
        lines.append(f"{summary['notes_already_annotated']} notes already had an .ann "
                     "(kept; --overwrite replaces them)")
    if summary["empty_notes"]:
        lines.append(f"{summary['empty_notes']} empty notes (empty .ann written)")
    if summary["notes_failed"]:
        kinds = ", ".join(f"{kind} {n}" for kind, n in summary["failures_by_kind"].items())
        lines.append(f"{summary['notes_failed']} notes failed ({kinds}); see {SUMMARY_FILE}")
    repaired = {name: n for name, dropped in summary["jsonl_records_dropped"].items() for n in [sum(dropped.values())]
                if n}
    if summary["notes_redone_after_repair"] or summary["stale_temporary_files_removed"] or repaired:
        lines.append("Repaired what an earlier run left: " + ", ".join(
            [f"{summary['notes_redone_after_repair']} notes annotated again (their .ann had lost its records)"] *
            bool(summary["notes_redone_after_repair"])
            + [f"{summary['stale_temporary_files_removed']} temporary files removed"] *
            bool(summary["stale_temporary_files_removed"])
            + [f"{n} stale lines dropped from {name}" for name, n in repaired.items()]))
    lines.append(f"Checked: {summary['notes_with_ann']} notes have an .ann, "
                 + ("each with exactly its records" if not summary["notes_inconsistent"] else
                    f"{summary['notes_inconsistent']} of them WITHOUT exactly their records (run it again)"))
    return "\n".join(lines)


def _launched_processes() -> int:
    """How many processes a launcher (accelerate launch, torchrun) started for this run."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _process_settings(args: AnnotationArguments, process_index: int, processes_here: int) -> tuple[str, int | None]:
    """(device, CPU threads) of one of several processes: process k on ``cuda:k`` when the device is ``cuda``;
    --num_threads, or the cores divided among the processes of this machine (None: the libraries' defaults)."""
    device = f"cuda:{process_index}" if args.device == "cuda" and processes_here > 1 else args.device
    if args.num_threads or processes_here == 1:
        return device, args.num_threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return device, max(1, cores // processes_here)


def _choose_relations(args: AnnotationArguments) -> RelationChoice:
    """--relations, decided from the relation model's config (the same in every process)."""
    return choose_relations(args.relations, args.relation_model_name_or_path, link_threshold=args.link_threshold,
                            revision=args.model_revision, token=args.token)


def _load_annotator(args: AnnotationArguments, device: str, threads: int | None,
                    relations: RelationChoice) -> NoteAnnotator:
    if threads and args.backend == "torch" and device == "cpu":
        import torch

        torch.set_num_threads(threads)
    return NoteAnnotator.from_pretrained(
        args.model_name_or_path, device=device, bf16=args.bf16, trust_remote_code=args.trust_remote_code,
        revision=args.model_revision, token=args.token, batch_size=args.batch_size,
        max_seq_length=args.max_seq_length, stride=args.stride, min_confidence=args.min_confidence,
        relation_model_name_or_path=args.relation_model_name_or_path, link_threshold=args.link_threshold,
        relations=relations, backend=args.backend, onnx_model_file=args.onnx_model_file, num_threads=threads)


def _annotate_share(args: AnnotationArguments, process_index: int, share: list[Path], jsonl_mode: int,
                    results, parent_pid: int, relations: RelationChoice) -> None:
    """One process of a --num_processes run: annotate its share into its parts, send back what it did. It dies
    with the process that started it: nothing writes into a folder whose lock holder is gone. ``relations``: the
    parent's choice (made and logged once)."""
    die_with_parent(parent_pid)
    logging.basicConfig(format=f"%(asctime)s - %(levelname)s - process {process_index} - %(message)s",
                        datefmt="%m/%d/%Y %H:%M:%S", level=logging.INFO)
    logger.setLevel(logging.INFO)
    device, threads = _process_settings(args, process_index, args.num_processes)
    logger.info("process %d of %d: %s, %s threads, %d notes", process_index, args.num_processes, device, threads,
                len(share))
    try:
        annotator = _load_annotator(args, device, threads, relations)
        tally = _Tally()
        _annotate_notes(annotator, share, Path(args.output_dir), tally, jsonl_mode=jsonl_mode,
                        overwrite=args.overwrite, word_predictions=args.word_predictions,
                        words_per_group=args.words_per_group, process_index=process_index,
                        progress=None if process_index == 0 else False)  # one bar: process 0's share
    except (OSError, ValueError) as error:  # a model that cannot be loaded, a full disk: the parent says it, once
        results.put((process_index, "error", str(error)))
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    results.put((process_index, tally, _annotator_facts(annotator)))


def annotate_folder_in_processes(args: AnnotationArguments, relations: RelationChoice | None = None
                                 ) -> dict[str, Any]:
    """--num_processes N: this process plans and merges (as process 0 of a launched run does); N processes
    started here (``multiprocessing``, spawn: no torch needed) annotate the shares, each linking as ``relations``
    says (default: ``args.relations`` decided here, once). One that fails stops the others; what they wrote is
    merged, and the same command finishes the rest (:class:`ProcessFailed`)."""
    if relations is None:
        relations = _choose_relations(args)
    with FolderLock(args.output_dir, "annotate_notes.py"):
        return _annotate_folder_in_processes(args, relations)


def _annotate_folder_in_processes(args: AnnotationArguments, relations: RelationChoice) -> dict[str, Any]:
    import multiprocessing
    import queue

    started = time.perf_counter()
    output_dir = Path(args.output_dir)
    tally = _Tally()
    plan = _plan(args.input_dir, output_dir, args.overwrite, tally)
    shares = split_notes(plan.todo, args.num_processes)
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no state copied from this one
    results = context.Queue()
    processes = [context.Process(target=_annotate_share,
                                 args=(args, index, share, plan.jsonl_mode, results, os.getpid(), relations),
                                 name=f"annotate-{index}") for index, share in enumerate(shares)]
    received: dict[int, tuple[_Tally, dict[str, Any]]] = {}
    failed: tuple | None = None  # (process, exit status[, reason])
    try:
        for process in processes:
            process.start()
        silent: set[int] = set()  # exited cleanly, result not read yet (it is read on the next try, or never)
        while len(received) < len(processes) and failed is None:
            try:
                index, process_tally, facts = results.get(timeout=0.5)
                if process_tally == "error":  # its reason, in one line (every process would say the same)
                    failed = (index, 1, facts)
                    break
                received[index] = (process_tally, facts)
            except queue.Empty:
                for index, process in enumerate(processes):
                    if index in received or process.exitcode is None:
                        continue
                    if process.exitcode != 0 or index in silent:
                        failed = (index, process.exitcode)
                        break
                    silent.add(index)
    except KeyboardInterrupt:
        failed = (-1, 130)
    finally:
        for process in processes:
            if failed is not None and process.is_alive():
                process.terminate()
            process.join()
    if failed is not None:
        # Every process has stopped: merge what they wrote (the next run would).
        _compact_outputs(output_dir, plan.notes, plan.repairs)
        if failed[1] == 130 or failed[0] == -1:
            raise KeyboardInterrupt
        raise ProcessFailed(failed[0], args.num_processes, failed[1], *failed[2:])
    for index in sorted(received):
        tally.update(received[index][0])
    return _finish(plan, tally, received[0][1], output_dir, started=started, num_processes=args.num_processes,
                   word_predictions=args.word_predictions, words_per_group=args.words_per_group)


class ProcessFailed(Exception):
    def __init__(self, index: int, num_processes: int, exit_code: int | None, reason: str | None = None):
        why = f": {reason}" if reason else f" (exit status {exit_code})"
        super().__init__(f"process {index} of {num_processes} failed{why}; every .ann written has its records: run "
                         "the same command again to annotate the other notes")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%m/%d/%Y %H:%M:%S",
                        level=logging.INFO)
    logger.setLevel(logging.INFO)
    distributed = _launched_processes() > 1
    # One command writes a folder at a time: process 0 (this one, or rank 0 of a launched run) holds the lock for all.
    lock = FolderLock(args.output_dir, "annotate_notes.py", enabled=int(os.environ.get("RANK", "0")) == 0)
    try:
        check_relation_request(args.relations, args.relation_model_name_or_path is not None, args.link_threshold)
        list_notes(args.input_dir)  # fail on the input before loading a model
        check_output_apart(args.output_dir, {"--input_dir": args.input_dir})
        lock.acquire()
        if lock.enabled:  # and on the output folder, before loading a model
            _check_output_folder(args.input_dir, Path(args.output_dir), list_notes(args.input_dir).notes)
        # Model or rule: decided once from the relation model's config (every launched process decides the same
        # way; process 0 says it), handed to the processes this one starts.
        relations = _choose_relations(args)
        if relations.by is not None and int(os.environ.get("RANK", "0")) == 0:
            logger.info("%s", relations.describe())
        if args.num_processes > 1:
            summary = annotate_folder_in_processes(args, relations)
        else:
            if distributed:
                import datetime

                import torch.distributed as dist

                # gloo carries the plan, the counts and the wait for the last process, which may be long.
                dist.init_process_group("gloo", timeout=datetime.timedelta(days=7))
                device, threads = _process_settings(args, int(os.environ.get("LOCAL_RANK", "0")),
                                                    int(os.environ.get("LOCAL_WORLD_SIZE", str(_launched_processes()))))
                logger.info("process %d of %d: %s, %s threads", dist.get_rank(), dist.get_world_size(), device,
                            threads)
            else:
                device, threads = _process_settings(args, 0, 1)
            annotator = _load_annotator(args, device, threads, relations)
            summary = annotate_folder(annotator, args.input_dir, args.output_dir, overwrite=args.overwrite,
                                      word_predictions=args.word_predictions, words_per_group=args.words_per_group,
                                      progress=None, distributed=distributed)
    except (InputError, OSError, ValueError, ProcessFailed) as error:
        print(f"annotate_notes.py: error: {error}", file=sys.stderr)
        status = exit_status(error)
        if distributed:
            raise SystemExit(status) from None  # a failed process: the launcher stops the others waiting for it
        return status
    except KeyboardInterrupt:
        print("annotate_notes.py: interrupted: every .ann written has its records; run the same command again "
              "to annotate the other notes", file=sys.stderr)
        return 130
    finally:
        lock.release()
        if distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
    if summary is None:  # not process 0: it reports for all
        return 0
    print(format_summary(summary, args.output_dir))
    return 1 if summary["notes_failed"] or summary["notes_inconsistent"] else 0


if __name__ == "__main__":
    sys.exit(main())
