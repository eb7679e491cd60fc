#!/usr/bin/env python
"""Build an Arrow BIO dataset for drug and attribute NER from n2c2-2018 Track 2 brat notes.

This file is also the single home of the project's label scheme, brat reader/writer,
sentence splitter and word tokenizer: every other script imports them from here.

    python prepare_n2c2.py --train_dir n2c2/train --test_dir n2c2/test --output_dir data/n2c2
    python prepare_n2c2.py --synthetic 120 --output_dir data/synthetic
"""

from __future__ import annotations

from typing import Iterable, Sequence

# ---------------------------------------------------------------------------
# Label scheme
# ---------------------------------------------------------------------------

# n2c2-2018 Track 2 entity types in the paper's tag-id order (O first, then a B/I pair each).
N2C2_ENTITY_TYPES: tuple[str, ...] = (
    "Drug", "Reason", "Route", "Strength", "Form", "Dosage", "Frequency", "Duration", "ADE",
)


def bio_labels(entity_types: Iterable[str]) -> list[str]:
    """IOB2 tag names: ``O`` then ``B-X``, ``I-X`` for each type, in the given order."""
    labels = ["O"]
    for entity_type in entity_types:
        labels += [f"B-{entity_type}", f"I-{entity_type}"]
    return labels


N2C2_LABELS: list[str] = bio_labels(N2C2_ENTITY_TYPES)  # 19 tags


def entity_types_of(labels: Sequence[str]) -> list[str]:
    """The entity types of a tag list, in order of first appearance (``O`` excluded)."""
    types: list[str] = []
    for label in labels:
        entity_type = tag_type(label)
        if entity_type is not None and entity_type not in types:
            types.append(entity_type)
    return types


def tag_type(tag: str) -> str | None:
    """``"B-Drug"`` -> ``"Drug"``; ``"O"`` -> ``None``."""
    return None if tag == "O" else tag[2:]


def bio_to_spans(tags: Sequence[str], strict: bool = True) -> list[tuple[str, int, int]]:
    """Entity chunks of an IOB2 tag sequence as ``(type, first_word, end_word_exclusive)``.

    ``strict=True`` follows seqeval's ``mode="strict", scheme=IOB2``: a chunk starts only
    at ``B-X`` and continues over ``I-X``; an ``I-X`` that continues nothing starts no
    entity. ``strict=False`` follows conlleval: such an ``I-X`` starts a new chunk.
    """
    spans: list[tuple[str, int, int]] = []
    current_type, current_start = None, 0
    for index, tag in enumerate(list(tags) + ["O"]):
        prefix, entity_type = (tag[0], tag[2:]) if tag != "O" else ("O", None)
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
