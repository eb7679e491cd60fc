"""Relation linking at inference: a trained relation model (:class:`RelationLinker`) or the nearest-drug rule (:class:`RuleLinker`) links each attribute to its drug, and :func:`choose_relations` decides which, from what the model's config recorded on its validation notes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .command_line import UsageError
from .relations import (
    CONFIG_INPUT_FEATURES, CONFIG_LINK_THRESHOLD, CONFIG_MAX_SEQ_LENGTH, CONFIG_PREFERRED, CONFIG_SENTENCE_WINDOW,
    CONFIG_VALIDATION_SCORES, DEFAULT_LINK_THRESHOLD, DEFAULT_SENTENCE_WINDOW, INPUT_FEATURES,
    LABELS as RELATION_LABELS, MARKER_TOKENS, RELATION_CHOICES, TOKENS_OF_FEATURE, Candidate, Mention, candidate_inputs,
    fit_to_length, nearest_drug_rule, select_links,
)
from .windows import DEFAULT_BATCH_SIZE, Entity, load_tokenizer, max_input_length

if TYPE_CHECKING:  # annotations only; the functions that run torch import it themselves
    import torch


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

        if not inputs:  # a note (or a group of notes) with no attribute-drug pair: nothing to ask the model
            return []
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
