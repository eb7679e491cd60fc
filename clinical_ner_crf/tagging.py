"""The tag scheme, words and sentences: what every script of the project agrees on.

One home for three facts, imported by every other script (standard library plus `tokenizers`,
so it imports in a few milliseconds and travels beside a saved model for its pipeline):

- **Tags.** IOB2: ``O``, ``B-X`` (first word of an entity of type X), ``I-X`` (a following
  word). :func:`parse_tag` is the one parser; spans <-> tags, strict (seqeval) decoding.
- **Words.** What BERT's basic pre-tokenizer makes (`tokenizers`' ``BertPreTokenizer``): runs of
  characters that are neither whitespace nor punctuation, and single punctuation characters. A
  fast BERT-family tokenizer given raw text finds the same words, so the pipeline, the training
  data and the annotator agree. Every word carries character offsets into the document.
- **Sentences.** Newline-aware splitting for clinical notes (lists, headings, wrapped prose),
  never inside an entity.
- **Relations.** The n2c2-2018 relation types: each attribute (Strength, Dosage, ...) linked to a Drug.
- **Window sizes.** The default subwords per model input, of overlap, and windows per batch (``windows.py``
  cuts sentences with them).
"""

from __future__ import annotations

import bisect
import re
from typing import Iterable, Sequence

from tokenizers.pre_tokenizers import BertPreTokenizer

# ---------------------------------------------------------------------------
# Tags
# ---------------------------------------------------------------------------

# n2c2-2018 Track 2 entity types in the paper's tag-id order (O first, then a B/I pair each).
N2C2_ENTITY_TYPES: tuple[str, ...] = (
    "Drug", "Reason", "Route", "Strength", "Form", "Dosage", "Frequency", "Duration", "ADE",
)
# n2c2-2018 Track 2 relations: each attribute linked to its drug (brat ``R1<TAB>Strength-Drug Arg1:T5 Arg2:T3``,
# Arg1 the attribute, Arg2 the drug).
DRUG_TYPE = "Drug"
ATTRIBUTE_TYPES: tuple[str, ...] = ("Strength", "Dosage", "Duration", "Frequency", "Form", "Route", "Reason", "ADE")
N2C2_RELATION_TYPES: tuple[str, ...] = tuple(f"{attribute}-{DRUG_TYPE}" for attribute in ATTRIBUTE_TYPES)


def relation_type(attribute_type: str) -> str:
    """``"Strength"`` -> ``"Strength-Drug"``: the relation linking an attribute of that type to its drug."""
    return f"{attribute_type}-{DRUG_TYPE}"


def relation_argument_types(relation_type: str) -> tuple[str, str] | None:
    """``"Strength-Drug"`` -> ``("Strength", "Drug")``: the entity types of Arg1 (the attribute) and Arg2 (the drug)
    that a relation type of the n2c2 ``Attribute-Drug`` shape names; ``None`` for any other name (its argument types
    are not known from the name)."""
    attribute, separator, drug = relation_type.rpartition("-")
    if separator and drug == DRUG_TYPE and attribute and attribute != DRUG_TYPE and "-" not in attribute:
        return attribute, drug
    return None


# An IOB2 tag: O, or B-/I- and a type without whitespace.
TAG_PATTERN = re.compile(r"O|[BI]-\S+")


def bio_labels(entity_types: Iterable[str]) -> list[str]:
    """IOB2 tag names: ``O`` then ``B-X``, ``I-X`` for each type, in the given order."""
    labels = ["O"]
    for entity_type in entity_types:
        labels += [f"B-{entity_type}", f"I-{entity_type}"]
    return labels


N2C2_LABELS: list[str] = bio_labels(N2C2_ENTITY_TYPES)  # 19 tags


def labels_for_types(entity_types: Iterable[str]) -> list[str]:
    """IOB2 tags for a set of types: the n2c2 types in the paper's order first, any others sorted."""
    entity_types = set(entity_types)
    return bio_labels([t for t in N2C2_ENTITY_TYPES if t in entity_types]
                      + sorted(entity_types - set(N2C2_ENTITY_TYPES)))


def is_tag(tag) -> bool:
    """Whether ``tag`` is an IOB2 tag string (``O``, ``B-X`` or ``I-X``)."""
    return isinstance(tag, str) and TAG_PATTERN.fullmatch(tag) is not None


def parse_tag(tag: str) -> tuple[str, str | None]:
    """``"B-Drug"`` -> ``("B", "Drug")``; ``"O"`` -> ``("O", None)``; ValueError for anything else."""
    if not is_tag(tag):
        raise ValueError(f"{tag!r} is not an IOB2 tag (expected O, B-TYPE or I-TYPE)")
    return ("O", None) if tag == "O" else (tag[0], tag[2:])


def tag_type(tag: str) -> str | None:
    """``"B-Drug"`` -> ``"Drug"``; ``"O"`` -> ``None``."""
    return parse_tag(tag)[1]


def check_labels(labels: Sequence[str]) -> list[str]:
    """``labels`` as a list, after checking that every one is an IOB2 tag."""
    bad = [label for label in labels if not is_tag(label)]
    if bad:
        raise ValueError(f"labels are not IOB2 tags (O, B-X, I-X): {bad[:5]}")
    return list(labels)


def entity_types_of(labels: Iterable[str]) -> list[str]:
    """The entity types of tags, in order of first appearance (``O`` excluded)."""
    types: dict[str, None] = {}
    for label in labels:
        entity_type = tag_type(label)
        if entity_type is not None:
            types.setdefault(entity_type)
    return list(types)


def begin_to_inside(labels: Sequence[str]) -> list[int]:
    """Tag-id map sending ``B-X`` to ``I-X`` (when the labels have it), every other id to itself:
    how a continuation subword is labelled from its word's tag."""
    index = {label: i for i, label in enumerate(labels)}
    return [index.get("I-" + label[2:], i) if label.startswith("B-") else i for i, label in enumerate(labels)]


def is_all_o(tags: Sequence) -> bool:
    """Whether a sentence has no entity (tags as strings, or ids with ``O`` = 0)."""
    return all(tag == "O" or tag == 0 for tag in tags)


def bio_to_spans(tags: Sequence[str], strict: bool = True) -> list[tuple[str, int, int]]:
    """Entity chunks of an IOB2 tag sequence as ``(type, first_word, end_word_exclusive)``.

    ``strict=True`` follows seqeval's ``mode="strict", scheme=IOB2``: a chunk starts only
    at ``B-X`` and continues over ``I-X``; an ``I-X`` that continues nothing starts no
    entity. ``strict=False`` follows conlleval: such an ``I-X`` starts a new chunk.
    """
    spans: list[tuple[str, int, int]] = []
    current_type, current_start = None, 0
    for index, tag in enumerate(list(tags) + ["O"]):
        prefix, entity_type = parse_tag(tag)
        continues = prefix == "I" and entity_type == current_type
        if current_type is not None and not continues:
            spans.append((current_type, current_start, index))
            current_type = None
        if prefix == "B" or (prefix == "I" and not continues and not strict):
            current_type, current_start = entity_type, index
    return spans


def spans_to_bio(num_words: int, spans: Iterable[tuple[str, int, int]]) -> list[str]:
    """Inverse of :func:`bio_to_spans` for non-overlapping word spans."""
    tags = ["O"] * num_words
    for entity_type, start, end in spans:
        tags[start] = f"B-{entity_type}"
        for index in range(start + 1, end):
            tags[index] = f"I-{entity_type}"
    return tags


def bio_to_char_spans(
    tags: Sequence[str], token_starts: Sequence[int], token_ends: Sequence[int], strict: bool = True
) -> list[tuple[str, int, int]]:
    """Entity chunks of an IOB2 tag sequence as ``(type, char_start, char_end)`` document offsets."""
    return [(entity_type, token_starts[first], token_ends[last - 1])
            for entity_type, first, last in bio_to_spans(tags, strict=strict)]


# ---------------------------------------------------------------------------
# Words
# ---------------------------------------------------------------------------

_PRE_TOKENIZER = BertPreTokenizer()

# How windows.py cuts sentences of words into model inputs, by default: subwords per window (special tokens
# included), subwords of overlap between consecutive windows, windows per batch. Here rather than in windows.py
# so that a command's --help shows them without importing torch.
DEFAULT_MAX_SEQ_LENGTH = 256
DEFAULT_STRIDE = 32
DEFAULT_BATCH_SIZE = 32


def tokenize_words(text: str, start: int = 0, end: int | None = None) -> list[tuple[str, int, int]]:
    """Words of ``text[start:end]`` as ``(word, start, end)`` with character offsets into ``text``.

    BERT's basic pre-tokenizer: whitespace separates words and every punctuation character
    (ASCII punctuation such as ``_`` or ``$``, and every Unicode ``P*`` character) is a word of
    its own; symbols such as ``°`` or ``±`` stay inside words.
    """
    end = len(text) if end is None else end
    return [(word, start + word_start, start + word_end)
            for word, (word_start, word_end) in _PRE_TOKENIZER.pre_tokenize_str(text[start:end])]


# ---------------------------------------------------------------------------
# Sentences
# ---------------------------------------------------------------------------

# A period after one of these words (lowercased, without the period) does not end a sentence.
_ABBREVIATIONS = frozenset(
    "dr mr mrs ms prof st vs no nos approx appt pt pts hx dx tx sx fx rx cf fig jr sr dept".split()
)
# A line ending with one of these words runs on into the next line (wrapped prose).
_CONTINUATION_WORDS = frozenset(
    "a an and as at after before but by due for from in into of on or per secondary than the then "
    "to was were with without is are be been his her their".split()
)
_LIST_ITEM = re.compile(r"(?:\d{1,3}[.)]|\(\d{1,3}\)|[-*\u2022#>])(?:\s|$)")
_HEADING = re.compile(r"[A-Z][A-Za-z0-9 /&,'()-]{0,60}:")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _ends_sentence(text: str, position: int) -> bool:
    """Whether the punctuation just before ``position`` closes a sentence.

    Guards against the abbreviations of clinical notes: a period after a single letter or a
    dotted word (``p.o.``, ``b.i.d.``, ``q.4h.``), after a list marker (``1.`` opening a
    line or after a colon) or after a title such as ``Dr.`` does not end a sentence.
    """
    end = position
    while end > 0 and text[end - 1] in "\"')]":
        end -= 1
    if end == 0 or text[end - 1] not in ".!?":
        return False
    if text[end - 1] in "!?":
        return True
    word_start = end - 1
    while word_start > 0 and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start:end - 1].lower()
    if word.isdigit():
        # "1." opening a line or following a colon is a list marker; "on day 3." ends a sentence.
        before = text[:word_start].rstrip(" \t")
        return not (before == "" or before.endswith(("\n", "\r", ":")))
    dotted = "." in word and not word.replace(".", "").replace(",", "").isdigit()  # p.o., b.i.d, q.4h (not 1.5)
    return not (len(word) <= 1 or dotted or word in _ABBREVIATIONS)


def _line_break_ends_sentence(previous_line: str, next_line: str, blank_line: bool) -> bool:
    """Whether a line break ends a sentence (discharge-summary layout).

    Blank lines, list items, headings (``Vitals:``) and lines ending with ``:``, ``;``,
    ``!``, ``?`` or a sentence-final period break. A line that runs on into a lowercase
    line, or that ends with a comma or a joining word ("started on"), is wrapped prose and
    does not. Anything else (label lines, vitals, table rows) breaks.
    """
    if blank_line or _LIST_ITEM.match(next_line) or _HEADING.match(next_line):
        return True
    if previous_line.endswith((":", ";", "!", "?")):
        return True
    if next_line[:1].islower():
        return False
    if previous_line.endswith(".") and _ends_sentence(previous_line, len(previous_line)):
        return True
    last_word = previous_line.rsplit(None, 1)[-1].lower() if previous_line.strip() else ""
    return not (previous_line.endswith((",", "-", "(", "/", "&")) or last_word in _CONTINUATION_WORDS)


def _entity_bounds(entity) -> tuple[int, int]:
    """``(start, end)`` of an object with ``start``/``end`` (a brat entity), a pair or a ``(type, start, end)`` triple."""
    if hasattr(entity, "start") and hasattr(entity, "end"):
        return entity.start, entity.end
    return entity[-2], entity[-1]


def split_sentences(text: str, entities: Iterable = ()) -> list[tuple[int, int]]:
    """Sentence character spans of a clinical note: newline-aware, never cutting an entity.

    A line break ends a sentence unless the line is wrapped prose (see
    :func:`_line_break_ends_sentence`); inside a line, ``.``, ``!`` or ``?`` followed by
    whitespace and a capital letter or a digit ends one unless the period belongs to an
    abbreviation. No cut is made inside an entity: ``entities`` holds ``(start, end)``
    pairs, ``(type, start, end)`` triples or objects with ``start``/``end`` (first start to
    last end). The spans are whitespace-trimmed, non-empty and in document order.
    """
    # Merged entity intervals: a cut through whitespace (gap_start, gap_end) is refused when
    # an interval starts before the gap ends and ends after it starts.
    protected_starts: list[int] = []
    protected_ends: list[int] = []
    for start, end in sorted(_entity_bounds(entity) for entity in entities):
        if protected_starts and start < protected_ends[-1]:
            protected_ends[-1] = max(protected_ends[-1], end)
        else:
            protected_starts.append(start)
            protected_ends.append(end)

    first = len(text) - len(text.lstrip())
    last = len(text.rstrip())
    if first >= last:
        return []
    sentences: list[tuple[int, int]] = []
    sentence_start = first
    for gap in re.finditer(r"\s+", text[:last]):
        gap_start, gap_end = gap.span()
        if gap_start <= first:
            continue
        line_breaks = len(_LINE_BREAK.findall(gap.group()))
        if line_breaks:
            line_start = max(text.rfind("\n", 0, gap_start), text.rfind("\r", 0, gap_start)) + 1
            next_break = _LINE_BREAK.search(text, gap_end)
            next_line = text[gap_end:next_break.start() if next_break else len(text)]
            is_boundary = _line_break_ends_sentence(
                text[line_start:gap_start].strip(), next_line.strip(), line_breaks > 1
            )
        else:
            next_char = text[gap_end]
            is_boundary = (next_char.isupper() or next_char.isdigit()) and _ends_sentence(text, gap_start)
        if not is_boundary:
            continue
        index = bisect.bisect_left(protected_starts, gap_end) - 1
        if index >= 0 and protected_ends[index] > gap_start:
            continue  # the cut would fall inside an entity
        sentences.append((sentence_start, gap_start))
        sentence_start = gap_end
    sentences.append((sentence_start, last))
    return sentences
