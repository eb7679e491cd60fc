"""Relations: which drug each attribute belongs to (n2c2-2018 Track 2), from candidates to a medication list.

One home for the relation side, shared by ``run_re.py`` (training), ``annotate_notes.py`` (inference)
and bench/ (no torch: the standard library, ``tagging.py`` and ``prediction_records.py``; the model itself is a
stock ``AutoModelForSequenceClassification``):

- **Candidates** (:func:`candidate_pairs`): every (attribute, drug) pair in the same sentence, and for
  Reason and ADE also within ``sentence_window`` sentences before or after (a reason or an adverse event
  is often told in a sentence of its own). :func:`candidate_recall` says how many gold relations the rule
  can reach, per type: the ceiling of any model that classifies its candidates.
- **Input** (:func:`marked_text`): the sentences holding the two arguments, with typed markers around
  them (``[Strength] 25 mg [/Strength] ... [Drug] metoprolol [/Drug]``: Zhong & Chen, NAACL 2021). The
  markers are added to the tokenizer as special tokens (:data:`MARKER_TOKENS`).
- **Labels**: a candidate is ``linked`` or ``none``. In n2c2 the relation type is fixed by the
  attribute's type (a Strength links by ``Strength-Drug``), so a binary decision is all there is to learn;
  a 9-way label would only add outputs that cannot be right.
- **The rule most tools use** (:func:`nearest_drug_rule`): each attribute to the nearest drug in its
  sentence, the drug before it first (medication lists read "drug strength route frequency"); Reason
  and ADE fall back to the nearest drug within the window.
- **Medication list** (:func:`medication_records`): one record per drug mention with its attributes.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from .prediction_records import round_confidence
from .tagging import ATTRIBUTE_TYPES, DRUG_TYPE, relation_type, split_sentences

LABELS = ("none", "linked")
LONG_RANGE_TYPES = ("Reason", "ADE")  # attributes that may sit in another sentence than their drug
DEFAULT_SENTENCE_WINDOW = 1
DEFAULT_LINK_THRESHOLD = 0.5
# What a run_re.py model records in its config.json, so that inference builds candidates as training did.
CONFIG_SENTENCE_WINDOW = "relation_sentence_window"
CONFIG_MAX_SEQ_LENGTH = "relation_max_seq_length"
CONFIG_LINK_THRESHOLD = "relation_link_threshold"
# What run_re.py measured on the validation notes (strict micro-F1 on gold entities of "model", "rule" and
# "every_candidate"), and which of the model and the rule scored higher there: ``annotate_notes.py --relations auto``.
CONFIG_VALIDATION_SCORES = "relation_validation_scores"
CONFIG_PREFERRED = "relation_preferred"
# The rule's view of a candidate, given to the model as tokens before its marked text (absent: a model of an
# earlier version, trained without them).
CONFIG_INPUT_FEATURES = "relation_input_features"
RELATION_CHOICES = ("model", "rule", "auto")  # how annotate_notes.py links attributes to drugs
# The rule's view of a candidate (see :func:`candidate_inputs`): whether the nearest-drug rule picks it, and how many
# drugs lie between its two arguments. A small corpus cannot teach what the rule knows for free; with these the model
# starts from the rule and learns where it is wrong.
INPUT_FEATURES = ("rule", "between")
RULE_TOKENS = ("[rule]", "[not-rule]")
BETWEEN_TOKENS = ("[between-0]", "[between-1]", "[between-2]", "[between-3+]")
FEATURE_TOKENS = RULE_TOKENS + BETWEEN_TOKENS
TOKENS_OF_FEATURE = {"rule": RULE_TOKENS, "between": BETWEEN_TOKENS}  # what each feature adds to the tokenizer
MARKER_TOKENS: tuple[str, ...] = tuple(marker for entity_type in (DRUG_TYPE, *ATTRIBUTE_TYPES)
                                       for marker in (f"[{entity_type}]", f"[/{entity_type}]"))


@dataclass(frozen=True)
class Mention:
    """An entity of a note: ``type``, character ``start``/``end``; ``id`` its brat id when known."""

    type: str
    start: int
    end: int
    id: str | None = None


@dataclass(frozen=True)
class Candidate:
    """An (attribute, drug) pair to classify: indices into the note's mentions, and the relation type it would be."""

    attribute: int
    drug: int
    type: str
    sentence_distance: int


def sentence_of(spans: Sequence[tuple[int, int]], mentions: Sequence[Mention]) -> list[int]:
    """The sentence index of each mention (the sentence where it starts)."""
    starts = [start for start, _ in spans]
    return [max(bisect.bisect_right(starts, mention.start) - 1, 0) for mention in mentions]


def note_sentences(text: str, mentions: Sequence[Mention]) -> list[tuple[int, int]]:
    """The note's sentences, never cut inside a mention (tagging.split_sentences)."""
    return split_sentences(text, [(mention.start, mention.end) for mention in mentions]) or [(0, len(text))]


def candidate_pairs(text: str, mentions: Sequence[Mention], sentence_window: int = DEFAULT_SENTENCE_WINDOW
                    ) -> list[Candidate]:
    """Every (attribute, drug) pair in one sentence; Reason and ADE also within ``sentence_window`` sentences."""
    return _pairs(mentions, sentence_of(note_sentences(text, mentions), mentions), sentence_window)


def _pairs(mentions: Sequence[Mention], sentence: Sequence[int], sentence_window: int) -> list[Candidate]:
    """:func:`candidate_pairs` given each mention's sentence index."""
    drugs = [index for index, mention in enumerate(mentions) if mention.type == DRUG_TYPE]
    candidates = []
    for index, mention in enumerate(mentions):
        if mention.type not in ATTRIBUTE_TYPES:
            continue
        reach = sentence_window if mention.type in LONG_RANGE_TYPES else 0
        for drug in drugs:
            distance = abs(sentence[drug] - sentence[index])
            if distance <= reach:
                candidates.append(Candidate(index, drug, relation_type(mention.type), distance))
    return candidates


def candidate_recall(documents: Iterable[tuple[str, Sequence[Mention], Iterable[tuple[str, str, str]]]],
                     sentence_window: int = DEFAULT_SENTENCE_WINDOW) -> dict[str, dict[str, int]]:
    """Per relation type: gold relations, and how many the candidates reach (``documents``: text, mentions with
    ids, gold relations as ``(type, attribute id, drug id)``)."""
    counts: dict[str, dict[str, int]] = {}
    for text, mentions, gold in documents:
        reached = {(relation_type(mentions[c.attribute].type), mentions[c.attribute].id, mentions[c.drug].id)
                   for c in candidate_pairs(text, mentions, sentence_window)}
        for relation in gold:
            row = counts.setdefault(relation[0], {"gold": 0, "reached": 0})
            row["gold"] += 1
            row["reached"] += tuple(relation) in reached
    return counts


def marked_text(text: str, attribute: Mention, drug: Mention, context: tuple[int, int]) -> str:
    """``text[context]`` with typed markers around the two arguments (the model's input for one candidate)."""
    start, end = context
    inserts = sorted([(attribute.start, f"[{attribute.type}] "), (attribute.end, f" [/{attribute.type}]"),
                      (drug.start, f"[{DRUG_TYPE}] "), (drug.end, f" [/{DRUG_TYPE}]")],
                     key=lambda item: (item[0], not item[1].startswith(" [/")))  # at one offset, close first
    pieces, position = [], start
    for offset, marker in inserts:
        pieces += [text[position:offset], marker]
        position = offset
    pieces.append(text[position:end])
    return "".join(pieces)


def candidate_context(text: str, mentions: Sequence[Mention], candidate: Candidate,
                      spans: Sequence[tuple[int, int]], sentence: Sequence[int]) -> tuple[int, int]:
    """The character span of the sentences from the first to the last argument's sentence."""
    first, last = sorted((sentence[candidate.attribute], sentence[candidate.drug]))
    return spans[first][0], max(spans[last][1], mentions[candidate.attribute].end, mentions[candidate.drug].end)


def candidate_inputs(text: str, mentions: Sequence[Mention], sentence_window: int = DEFAULT_SENTENCE_WINDOW,
                     features: Sequence[str] = ()) -> tuple[list[Candidate], list[str]]:
    """The candidates of a note and their marked texts, in the same order. ``features`` (of :data:`INPUT_FEATURES`)
    puts the rule's view first: ``[rule]``/``[not-rule]`` (is this the nearest-drug rule's pair?) and
    ``[between-N]`` (drugs between the two arguments, 3+ for three or more)."""
    unknown = sorted(set(features) - set(INPUT_FEATURES))
    if unknown:
        raise ValueError(f"unknown relation input features {unknown} (known: {', '.join(INPUT_FEATURES)})")
    spans = note_sentences(text, mentions)  # split once: the pairs and their contexts both need it
    sentence = sentence_of(spans, mentions)
    candidates = _pairs(mentions, sentence, sentence_window)
    texts = [marked_text(text, mentions[c.attribute], mentions[c.drug],
                         candidate_context(text, mentions, c, spans, sentence)) for c in candidates]
    if features:
        chosen = set(_rule_choices(candidates, mentions))
        drug_starts = sorted(m.start for m in mentions if m.type == DRUG_TYPE)
        prefixed = []
        for candidate, marked in zip(candidates, texts):
            tokens = []
            if "rule" in features:
                tokens.append(RULE_TOKENS[candidate not in chosen])
            if "between" in features:
                tokens.append(BETWEEN_TOKENS[min(_drugs_between(candidate, mentions, drug_starts), 3)])
            prefixed.append(" ".join(tokens) + " " + marked)
        texts = prefixed
    return candidates, texts


def _drugs_between(candidate: Candidate, mentions: Sequence[Mention], drug_starts: Sequence[int]) -> int:
    """How many drug mentions start strictly between the candidate's two arguments."""
    first, second = sorted((mentions[candidate.attribute], mentions[candidate.drug]), key=lambda m: m.start)
    return max(bisect.bisect_left(drug_starts, second.start) - bisect.bisect_right(drug_starts, first.start), 0)


def select_links(candidates: Sequence[Candidate], probabilities: Sequence[float], link_threshold: float
                 ) -> list[tuple[Candidate, float]]:
    """The links a model's ``linked`` probabilities give: every candidate at ``link_threshold`` or above (an attribute
    may belong to two drugs: "X and Y, 25 mg each")."""
    return [(candidate, float(probability)) for candidate, probability in zip(candidates, probabilities)
            if probability >= link_threshold]


def fit_to_length(text: str, tokenizer, max_seq_length: int) -> str:
    """A candidate's marked text, narrowed around its markers until it fits ``max_seq_length`` tokens
    (``tokenizer`` is any callable Hugging Face tokenizer)."""
    def length(candidate: str) -> int:
        return len(tokenizer(candidate, add_special_tokens=True)["input_ids"])

    if length(text) <= max_seq_length:
        return text
    # The feature tokens before the marked text (candidate_inputs' features) stay whatever is cut.
    words = text.split(" ")
    features = next(count for count, word in enumerate(words + [""]) if word not in FEATURE_TOKENS)
    if features:
        prefix, text = " ".join(words[:features]) + " ", " ".join(words[features:])
        return prefix + fit_to_length(text, lambda piece, **kwargs: tokenizer(prefix + piece, **kwargs), max_seq_length)
    first = min(text.index(marker) for marker in MARKER_TOKENS if not marker.startswith("[/") and marker in text)
    last = max(text.index(marker) + len(marker) for marker in MARKER_TOKENS if marker.startswith("[/") and marker in text)
    for margin in (400, 200, 100, 50, 20, 0):
        narrowed = text[max(0, first - margin):last + margin]
        if length(narrowed) <= max_seq_length:
            return narrowed
    return text[first:last]  # the arguments and what lies between them: the tokenizer may still truncate it


def nearest_drug_rule(text: str, mentions: Sequence[Mention], sentence_window: int = DEFAULT_SENTENCE_WINDOW
                      ) -> list[Candidate]:
    """The rule baseline: each attribute to one drug, the nearest preceding one in its sentence, else the nearest
    following one; Reason and ADE with no drug in their sentence take the nearest drug within the window."""
    return _rule_choices(candidate_pairs(text, mentions, sentence_window), mentions)


def _rule_choices(candidates: Sequence[Candidate], mentions: Sequence[Mention]) -> list[Candidate]:
    """:func:`nearest_drug_rule` given the note's candidates."""
    chosen = []
    for attribute in sorted({c.attribute for c in candidates}):
        own = [c for c in candidates if c.attribute == attribute]
        same_sentence = [c for c in own if c.sentence_distance == 0] or own
        before = [c for c in same_sentence if mentions[c.drug].end <= mentions[attribute].start]
        after = [c for c in same_sentence if c not in before]
        if before:
            chosen.append(max(before, key=lambda c: mentions[c.drug].end))
        elif after:
            chosen.append(min(after, key=lambda c: mentions[c.drug].start))
    return chosen


def medication_records(document_id: str, text: str, mentions: Sequence[Mention], links: Iterable[tuple[Candidate, float]],
                       mention_confidences: Mapping[int, float] | None = None) -> list[dict]:
    """One record per drug mention (``id``: the drug's mention id, e.g. its brat ``T`` line): its type, span, text
    and confidence, and each attribute linked to it (id, type, span, text, confidence, the relation type and the
    link's confidence), in note order. Drugs without attributes are records too: a medication list lists them."""
    confidences = mention_confidences or {}
    records = {index: {"document_id": document_id, "id": mention.id,
                       "drug": _mention_record(text, mention, confidences.get(index)), "attributes": []}
               for index, mention in enumerate(mentions) if mention.type == DRUG_TYPE}
    for candidate, link_confidence in links:
        attribute = mentions[candidate.attribute]
        records[candidate.drug]["attributes"].append({
            "id": attribute.id, **_mention_record(text, attribute, confidences.get(candidate.attribute)),
            "relation": candidate.type, "relation_confidence": round_confidence(link_confidence)})
    for record in records.values():
        record["attributes"].sort(key=lambda item: item["start"])
    return [records[index] for index in sorted(records, key=lambda i: mentions[i].start)]


def _mention_record(text: str, mention: Mention, confidence: float | None) -> dict:
    return {"type": mention.type, "start": mention.start, "end": mention.end, "text": text[mention.start:mention.end],
            "confidence": round_confidence(confidence)}
