"""Sampling: which documents and sentences a run uses: the seeded validation hold-out, the paper's down-sampling of all-``O`` sentences ("efficient training"), and a fraction of the training documents for learning curves."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from .command_line import UsageError
from .tagging import is_all_o

if TYPE_CHECKING:  # annotations only: preparing data needs no datasets
    from datasets import Dataset


def downsample_plain(examples, plain_ratio: float, seed: int = 42):
    """Drop all-O sentences at random until they make up ``plain_ratio`` of the result.

    ``examples`` is a list of rows (dicts with ``ner_tags``) or a ``datasets.Dataset``
    (whose ``O`` must be label id 0); the same kind comes back, in the original order.
    Sentences with entities are all kept. The number of all-O sentences kept is the one
    that brings their share nearest ``plain_ratio``; when the input has fewer, all are kept
    and the share stays below the target. Seeded and deterministic.
    """
    if not 0.0 <= plain_ratio <= 1.0:
        raise ValueError(f"plain_ratio must be in [0, 1], got {plain_ratio}")
    is_dataset = not isinstance(examples, list)
    all_tags = examples["ner_tags"] if is_dataset else [row["ner_tags"] for row in examples]
    plain = [index for index, tags in enumerate(all_tags) if is_all_o(tags)]
    num_entity_sentences = len(all_tags) - len(plain)
    if plain_ratio >= 1.0:
        keep_plain = len(plain)
    else:
        exact = plain_ratio * num_entity_sentences / (1.0 - plain_ratio)
        # floor or ceil, whichever share is nearer the target
        keep_plain = min(
            (int(exact), int(exact) + 1),
            key=lambda k: abs(k / max(k + num_entity_sentences, 1) - plain_ratio),
        )
        keep_plain = min(keep_plain, len(plain))
    dropped = set(plain) - set(random.Random(seed).sample(plain, keep_plain))
    kept_indices = [index for index in range(len(all_tags)) if index not in dropped]
    if is_dataset:
        return examples.select(kept_indices)
    return [examples[index] for index in kept_indices]


def all_o_share(examples) -> float:
    """Share of sentences without entities (0.0 for no sentences)."""
    all_tags = examples["ner_tags"] if not isinstance(examples, list) else [row["ner_tags"] for row in examples]
    return sum(is_all_o(tags) for tags in all_tags) / len(all_tags) if len(all_tags) else 0.0


def split_validation(documents: list, ratio: float, seed: int) -> tuple[list, list]:
    """Hold out ``round(ratio * n)`` documents (at least one when ratio > 0), seeded, by document id."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"validation_ratio must be in [0, 1), got {ratio}")
    ids = sorted(doc.doc_id for doc in documents)
    count = round(ratio * len(ids))
    if ratio > 0 and len(ids) > 1:
        count = min(max(count, 1), len(ids) - 1)
    random.Random(seed).shuffle(ids)
    held_out = set(ids[:count])
    return ([doc for doc in documents if doc.doc_id not in held_out],
            [doc for doc in documents if doc.doc_id in held_out])


def sample_documents(dataset: Dataset, fraction: float, seed: int) -> Dataset:
    """Keep a seeded random ``fraction`` of the documents (all their sentences)."""
    if not 0 < fraction <= 1:
        raise UsageError(f"--train_fraction must be in (0, 1], got {fraction}")
    if fraction == 1 or "document_id" not in dataset.column_names:
        return dataset
    documents = sorted(set(dataset["document_id"]))
    keep = set(random.Random(seed).sample(documents, max(1, round(fraction * len(documents)))))
    return dataset.filter(lambda document_id: document_id in keep, input_columns="document_id")
