"""Sentence examples: a brat document turned into the sentence rows a tagger trains on (words, offsets, IOB2 tags), with the policies for overlapping and discontinuous entities, every entity dropped or changed counted by reason, and the document's relations kept with the entities that survived."""

from __future__ import annotations

import bisect
import re
from collections import Counter
from typing import Sequence

from .documents import BratDocument
from .tagging import DRUG_TYPE, entity_types_of, spans_to_bio, split_sentences, tokenize_words
from clinical_ner_crf import relations as relations_module

OVERLAP_POLICIES = ("longest", "shortest", "first", "clip")
DISCONTINUOUS_POLICIES = ("span", "first", "drop")
# Counter categories of :func:`document_to_examples`. Every source entity ends in exactly
# one of "kept" or a DROP_CATEGORIES entry; the others describe kept entities.
DROP_CATEGORIES = (
    "dropped_overlap", "dropped_duplicate", "dropped_discontinuous", "dropped_no_words",
    "dropped_crosses_sentence", "dropped_not_in_labels",
)
CHANGE_CATEGORIES = ("clipped_overlap", "expanded_to_words", "discontinuous_spanned", "discontinuous_first_fragment")
# Counter categories of :func:`kept_relations`: every source relation ends "kept" or in one of these.
# ``self_relation``: both arguments became one kept entity (exact duplicates merged); a relation linking an entity to
# itself in the source is an error of the reader (brat.INVALID_RELATION_KINDS), never read.
RELATION_DROP_REASONS = ("argument_dropped", "argument_missing", "duplicate", "self_relation")


def document_to_examples(
    doc: BratDocument,
    labels: Sequence[str],
    *,
    overlap: str = "longest",
    discontinuous: str = "span",
    sentence_spans: Sequence[tuple[int, int]] | None = None,
    return_entities: bool = False,
) -> tuple[list[dict], Counter] | tuple[list[dict], Counter, dict[str, dict]]:
    """Split a document into sentences of words with IOB2 tags.

    Returns ``(rows, counts)``. Each row has ``id``, ``document_id``, ``sentence_index``,
    ``tokens``, ``ner_tags`` (tag strings), ``token_starts`` and ``token_ends``.
    ``counts`` is a Counter keyed by ``(category, entity_type)``: ``source`` (entities in),
    ``kept`` (entities that became a ``B-`` tag), each of :data:`DROP_CATEGORIES` and each of
    :data:`CHANGE_CATEGORIES`, so that ``source == kept + dropped`` per type. Sentences come
    from ``sentence_spans``, else ``doc.sentence_spans``, else :func:`split_sentences`.
    The policies are described at the top of this file.

    With ``return_entities``, also the entities the tags hold, by source id:
    ``{id: {"id", "type", "start", "end"}}`` with the final character span (after word expansion
    and clipping), in document order; an exact duplicate's id maps to the copy that was kept.
    """
    if overlap not in OVERLAP_POLICIES:
        raise ValueError(f"overlap policy must be one of {OVERLAP_POLICIES}, got {overlap!r}")
    if discontinuous not in DISCONTINUOUS_POLICIES:
        raise ValueError(f"discontinuous policy must be one of {DISCONTINUOUS_POLICIES}, got {discontinuous!r}")
    type_rank = {entity_type: rank for rank, entity_type in enumerate(entity_types_of(labels))}
    counts: Counter = Counter()

    # 1. One character span per entity (discontinuous policy); the source id travels along.
    char_spans: list[tuple[str, int, int, str]] = []
    for entity in doc.entities:
        counts["source", entity.type] += 1
        if entity.type not in type_rank:
            counts["dropped_not_in_labels", entity.type] += 1
            continue
        if entity.is_discontinuous:
            if discontinuous == "drop":
                counts["dropped_discontinuous", entity.type] += 1
                continue
            if discontinuous == "first":
                counts["discontinuous_first_fragment", entity.type] += 1
                char_spans.append((entity.type, *min(entity.spans), entity.id))
                continue
            counts["discontinuous_spanned", entity.type] += 1
        char_spans.append((entity.type, entity.start, entity.end, entity.id))

    # 2. Sentences and their words.
    if sentence_spans is None:
        sentence_spans = doc.sentence_spans
    if sentence_spans is None:
        sentence_spans = split_sentences(doc.text, [span[1:3] for span in char_spans])
    words: list[tuple[str, int, int]] = []
    sentence_of_word: list[int] = []
    sentence_word_ranges: list[tuple[int, int]] = []
    for sentence_index, (start, end) in enumerate(sentence_spans):
        sentence_words = tokenize_words(doc.text, start, end)
        sentence_word_ranges.append((len(words), len(words) + len(sentence_words)))
        words.extend(sentence_words)
        sentence_of_word.extend([sentence_index] * len(sentence_words))
    word_starts = [start for _, start, _ in words]
    word_ends = [end for _, _, end in words]

    # 3. Character spans to word ranges [first, last), expanding to whole words.
    candidates: list[tuple[str, int, int, str]] = []
    seen: dict[tuple[str, int, int], str] = {}  # -> the id of the copy kept
    duplicate_of: dict[str, str] = {}
    for entity_type, start, end, entity_id in char_spans:
        first = bisect.bisect_right(word_ends, start)  # first word ending after the start
        last = bisect.bisect_left(word_starts, end)  # words starting before the end
        if first >= last:
            counts["dropped_no_words", entity_type] += 1
            continue
        if sentence_of_word[first] != sentence_of_word[last - 1]:
            counts["dropped_crosses_sentence", entity_type] += 1
            continue
        if word_starts[first] < start or word_ends[last - 1] > end:
            counts["expanded_to_words", entity_type] += 1
        if (entity_type, first, last) in seen:
            counts["dropped_duplicate", entity_type] += 1
            duplicate_of[entity_id] = seen[entity_type, first, last]
            continue
        seen[entity_type, first, last] = entity_id
        candidates.append((entity_type, first, last, entity_id))

    # 4. Overlaps: greedy in policy order over word occupancy.
    def priority(candidate):
        entity_type, first, last, _ = candidate
        length = last - first
        if overlap == "shortest":
            return (length, first, type_rank[entity_type])
        if overlap == "first":
            return (first, -length, type_rank[entity_type])
        return (-length, first, type_rank[entity_type])  # longest, clip

    occupied = [False] * len(words)
    kept: list[tuple[str, int, int, str]] = []
    for entity_type, first, last, entity_id in sorted(candidates, key=priority):
        free = [not occupied[index] for index in range(first, last)]
        if not all(free):
            if overlap != "clip" or not any(free):
                counts["dropped_overlap", entity_type] += 1
                continue
            # Longest run of free words (earliest on ties).
            best_first, best_length, run_first = first, 0, None
            for index in range(first, last + 1):
                if index < last and not occupied[index]:
                    run_first = index if run_first is None else run_first
                elif run_first is not None:
                    if index - run_first > best_length:
                        best_first, best_length = run_first, index - run_first
                    run_first = None
            first, last = best_first, best_first + best_length
            counts["clipped_overlap", entity_type] += 1
        for index in range(first, last):
            occupied[index] = True
        kept.append((entity_type, first, last, entity_id))
        counts["kept", entity_type] += 1

    # 5. IOB2 tags per sentence.
    tags = spans_to_bio(len(words), [(entity_type, first, last) for entity_type, first, last, _ in kept])
    rows = []
    for sentence_index, (first, last) in enumerate(sentence_word_ranges):
        rows.append({
            "id": f"{doc.doc_id}-{sentence_index}",
            "document_id": doc.doc_id,
            "sentence_index": sentence_index,
            "tokens": [word for word, _, _ in words[first:last]],
            "ner_tags": tags[first:last],
            "token_starts": word_starts[first:last],
            "token_ends": word_ends[first:last],
        })
    if not return_entities:
        return rows, counts
    entities = {entity_id: {"id": entity_id, "type": entity_type, "start": word_starts[first],
                            "end": word_ends[last - 1]}
                for entity_type, first, last, entity_id in sorted(kept, key=lambda entity: entity[1:3])}
    entities.update({entity_id: entities[kept_id] for entity_id, kept_id in duplicate_of.items()
                     if kept_id in entities})
    return rows, counts, entities


def kept_relations(doc: BratDocument, entities: dict[str, dict]) -> tuple[list[dict], Counter]:
    """The relations of ``doc`` whose two arguments are among ``entities`` (by source id, as
    :func:`document_to_examples` reports them), as ``{type, arg1, arg2}`` rows on the kept ids, and a
    Counter keyed by ``(category, relation_type)``: ``source``, ``kept`` and each of
    :data:`RELATION_DROP_REASONS`, so that ``source == kept + dropped`` per type."""
    source_ids = {entity.id for entity in doc.entities}
    rows: list[dict] = []
    seen: set[tuple[str, str, str]] = set()
    counts: Counter = Counter()
    for relation in doc.relations:
        counts["source", relation.type] += 1
        arguments = (relation.arg1, relation.arg2)
        if not all(argument in source_ids for argument in arguments):
            reason = "argument_missing"
        elif not all(argument in entities for argument in arguments):
            reason = "argument_dropped"
        else:
            row = {"type": relation.type, "arg1": entities[relation.arg1]["id"], "arg2": entities[relation.arg2]["id"]}
            if row["arg1"] == row["arg2"]:
                reason = "self_relation"  # its two arguments were exact duplicates, merged into one entity
            elif tuple(row.values()) not in seen:
                seen.add(tuple(row.values()))
                rows.append(row)
                counts["kept", relation.type] += 1
                continue
            else:
                reason = "duplicate"  # the same link twice (an exact duplicate entity makes one too)
        counts[reason, relation.type] += 1
    return rows, counts


# Counter categories of :func:`relation_cases`, what makes linking attributes to drugs hard: counted per relation
# type, and counted once (keyed by ``None``).
RELATION_TYPE_CASES = ("across_sentences", "shared_attributes", "beyond_candidates")
RELATION_DOCUMENT_CASES = ("drugs_without_attributes", "lines_with_several_drugs")


def relation_cases(text: str, entities: Sequence[dict], relations: Sequence[dict], rows: Sequence[dict]) -> Counter:
    """The hard cases of one document's kept ``entities`` and ``relations`` (as written to ``documents/``),
    with its sentence ``rows``: a Counter keyed by ``(case, relation_type)`` for relations whose arguments
    are in different sentences (``across_sentences``) and for attributes linked to more than one drug
    (``shared_attributes``), for relations that relations.candidate_pairs (default window) never proposes, the
    ceiling of any relation model (``beyond_candidates``), and by ``(case, None)`` for drugs linked to no attribute
    (``drugs_without_attributes``) and lines holding more than one drug (``lines_with_several_drugs``)."""
    by_id = {entity["id"]: entity for entity in entities}
    sentence_starts = [row["token_starts"][0] for row in rows if row["token_starts"]]
    line_starts = [0] + [match.end() for match in re.finditer(r"\r\n|\r|\n", text)]

    def position(starts: list[int], entity_id: str) -> int:
        return bisect.bisect_right(starts, by_id[entity_id]["start"]) - 1

    counts: Counter = Counter()
    links: dict[str, list[str]] = {}
    for relation in relations:
        if position(sentence_starts, relation["arg1"]) != position(sentence_starts, relation["arg2"]):
            counts["across_sentences", relation["type"]] += 1
        links.setdefault(relation["arg1"], []).append(relation["type"])
    for types in links.values():
        if len(types) > 1:
            counts["shared_attributes", types[0]] += 1
    mentions = [relations_module.Mention(e["type"], e["start"], e["end"], e["id"]) for e in entities]
    reached = relations_module.candidate_recall([(text, mentions, [(r["type"], r["arg1"], r["arg2"]) for r in relations])])
    for relation_type, row in reached.items():
        if row["gold"] > row["reached"]:
            counts["beyond_candidates", relation_type] += row["gold"] - row["reached"]
    drugs = [entity["id"] for entity in entities if entity["type"] == DRUG_TYPE]
    linked_drugs = {relation["arg2"] for relation in relations}
    counts["drugs_without_attributes", None] += sum(drug not in linked_drugs for drug in drugs)
    drugs_per_line = Counter(position(line_starts, drug) for drug in drugs)
    counts["lines_with_several_drugs", None] += sum(number > 1 for number in drugs_per_line.values())
    return counts
