"""Review pages: a static HTML site of an ``annotate_notes.py`` output folder, to read a model's notes before trusting
it.

:func:`write_review_site` writes ``OUTPUT_DIR/review/``: ``index.html`` (every note with its entity counts, mean and
lowest confidence, uncertainty and, given gold annotations, its errors; sorted by clicking a column header) and one
``NOTE.html`` per note: the note's text with each predicted entity highlighted in its type's colour, its confidence
beside it (and in its tooltip), the entities below ``low_confidence`` marked, the relations listed drug by drug and,
given gold annotations, every difference from them. Nothing else is read or fetched: one file per page, inline CSS,
a few lines of inline JavaScript (sorting the index), and a Content-Security-Policy that forbids any network request.

What is read
    The ``.ann`` files of OUTPUT_DIR (``T`` and ``R`` lines, ``brat.read_brat_document``, their surface text checked
    against the note, so a wrong notes folder is one line naming the file); each entity's ``confidence`` from
    ``entities.jsonl`` (by ``document_id`` and ``id``, used only where the record's type and span are the ``T``
    line's); each link's ``relation_confidence`` from ``medications.jsonl``; every word's confidence from
    ``predictions.jsonl`` (``annotate_notes.py --word_predictions``) for the ranking; the notes' text from NOTES_DIR
    (``documents.read_text``: exact offsets). An entity without a record has an unknown confidence (shown as such).

How entities are drawn
    Every entity is an element (``mark``) with ``data-entity-id`` (its ``T`` id), ``data-type``, ``data-start`` and
    ``data-end`` (the offsets of the text the element holds: its text is exactly ``text[start:end]``),
    ``data-confidence`` (empty when unknown) and ``data-fragments`` (the entity's brat offsets, ``0 7;10 15``).
    A discontinuous entity is one element per fragment, all with its id. Overlapping entities are **nested** when
    one lies inside the other, and **split** where they cross: the later one is cut at the earlier one's end, each
    piece an element of its own with the same ``data-entity-id`` (so the pieces of an entity, together, are its
    fragments). A gold entity the prediction did not get (missed, or the gold side of a wrong type or boundary) is
    drawn the same way as a ``span`` with ``data-gold-id``; a predicted entity's ``data-diff`` says what it is
    against gold. The confidence label and the low-confidence mark are CSS generated content (``::after``), not
    text of the page, so an element's text stays the note's (carriage returns included: written ``&#13;``).

Gold differences (``gold_dir``, a brat folder of ``.txt``/``.ann``)
    Counted as ``evaluate_ablations.py --gold_brat GOLD --pred_brat OUTPUT_DIR`` counts strict entities
    (``n2c2_scoring.score_brat_folders``, project semantics: a span is its first written start to its last written
    end, an exact duplicate counts once): a predicted entity is **correct** when a gold entity has its type and span
    (the true positives). The others are paired with the gold entities left, in file order: first **wrong type**
    (the same span, another type), then **wrong boundary** (the same type, overlapping spans); what is left is
    **spurious** (predicted) or **missed** (gold). So, per note, ``fp = spurious + wrong type + wrong boundary`` and
    ``fn = missed + wrong type + wrong boundary``. Relations likewise (strict, as the scorer: same type, both
    arguments' type and span): **wrong link** pairs a predicted and a gold relation of one type whose attribute
    (Arg1) is the same but whose drug (Arg2) differs; the rest are **spurious links** and **missed links**. Each
    page records its counts as ``data-`` attributes of ``#gold-differences`` and the index its totals (over every
    gold note the scorer scores, those without a prediction file included): the scorer is run on the folders and
    each note's differences must add up to its counts, so the pages and the report never disagree. Pairs as the
    scorer does: gold ``NOTE.ann`` with ``OUTPUT_DIR/NOTE.ann`` by that name, the gold ``.txt`` the note's own text.

Choosing notes to annotate next (``rank``)
    :func:`rank_for_annotation`: the notes whose least confident word is least confident first. A note's
    uncertainty is ``1 - min(word confidences)``: every word of the note (its decoded tag's probability) when
    ``predictions.jsonl`` has the note, else the words of its entities (``word_confidences`` of
    ``entities.jsonl``); 0 when it has neither. Ties go to the note with the less confident least-confident entity
    (a note without entities counts 1.0), then to the document id. The two sources are not alike (a note's entity
    words leave out its least sure ``O`` words), so rank a folder annotated with one setting. The chosen notes go into
    ``review/next_to_annotate.txt`` (one id a line) and ``review/next_to_annotate/`` (each note's ``.txt`` and its
    predicted ``.ann``, with an ``annotation.conf``: a brat folder ready for correction).

Privacy
    Every page says at its top that it holds note text, is written only beside the predictions and must not be
    uploaded. The folder is written as a whole (``files.write_folder_atomically``: a hidden sibling moved into
    place; the caller holds ``folder_safety.FolderLock`` on it), nothing with note text is written elsewhere, and
    a file holding note text is no more readable than the notes it shows (``files.note_file_mode``); the index holds
    document ids and counts only. Logs name files and counts, never text.

Standard library only (and the project's readers and scorer).
"""

from __future__ import annotations

import html
import json
import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from heapq import heappop, heappush
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence
from urllib.parse import quote

from .brat import read_brat_document
from .command_line import UsageError
from .documents import BratDocument, BratEntity, BratFormatError, BratRelation, read_text
from .files import (
    ENTITIES_FILE, MEDICATIONS_FILE, WORD_PREDICTIONS_FILE, folder_mode, note_file_mode, split_lines, usual_file_mode,
    write_folder_atomically,
)
from .folder_annotation import list_notes
from .folder_safety import Manifest, read_regular_file
from .n2c2_scoring import official_span, score_brat_folders
from .tagging import N2C2_ENTITY_TYPES, relation_argument_types

logger = logging.getLogger(__name__)

# What the site is made of, inside the annotation folder.
REVIEW_DIRNAME = "review"
INDEX_FILE = "index.html"
NEXT_TO_ANNOTATE_FILE = "next_to_annotate.txt"
NEXT_TO_ANNOTATE_DIRNAME = "next_to_annotate"
BRAT_CONFIG_FILE = "annotation.conf"
DEFAULT_LOW_CONFIDENCE = 0.5

PRIVACY_LINE = ("These pages hold note text. They are written only beside the predictions (OUTPUT_DIR/review/) and "
                "must not be uploaded, e-mailed or copied anywhere the notes themselves may not go.")

# ---------------------------------------------------------------------------
# Differences from gold
# ---------------------------------------------------------------------------


def _span_key(entity: BratEntity) -> tuple[str, int, int]:
    """What the scorer compares: type, first written start, last written end."""
    return (entity.type, *official_span(entity))


def _distinct(items: Iterable, key) -> list:
    """The first of each key, in order: the scorer counts an exact duplicate once."""
    seen, kept = set(), []
    for item in items:
        if key(item) not in seen:
            seen.add(key(item))
            kept.append(item)
    return kept


def _overlap(first: tuple[str, int, int], second: tuple[str, int, int]) -> bool:
    return first[2] > second[1] and first[1] < second[2]


@dataclass
class EntityDifferences:
    """A note's predicted entities against gold, strict (see the module docstring): ``correct``, ``wrong_type`` and
    ``wrong_boundary`` are ``(predicted, gold)`` pairs, ``spurious`` predicted and ``missed`` gold entities."""

    correct: list[tuple[BratEntity, BratEntity]] = field(default_factory=list)
    wrong_type: list[tuple[BratEntity, BratEntity]] = field(default_factory=list)
    wrong_boundary: list[tuple[BratEntity, BratEntity]] = field(default_factory=list)
    spurious: list[BratEntity] = field(default_factory=list)
    missed: list[BratEntity] = field(default_factory=list)

    @property
    def counts(self) -> tuple[int, int, int]:
        """Strict ``(tp, fp, fn)``, as ``n2c2_scoring`` counts them."""
        paired = len(self.wrong_type) + len(self.wrong_boundary)
        return len(self.correct), len(self.spurious) + paired, len(self.missed) + paired


def entity_differences(gold: Sequence[BratEntity], predicted: Sequence[BratEntity]) -> EntityDifferences:
    """Sort a note's entities into correct, wrong type, wrong boundary, spurious and missed (module docstring)."""
    gold, predicted = _distinct(gold, _span_key), _distinct(predicted, _span_key)
    gold_by_key = {_span_key(entity): entity for entity in gold}
    result = EntityDifferences()
    unmatched = []
    for entity in predicted:
        match = gold_by_key.get(_span_key(entity))
        if match is not None:
            result.correct.append((entity, match))
        else:
            unmatched.append(entity)
    matched = {id(gold_entity) for _, gold_entity in result.correct}
    left = [entity for entity in gold if id(entity) not in matched]
    # Pairs first by the closer kind (same span), then by the looser one (same type, overlapping), in file order.
    for kind, pairs in ((lambda p, g: p[1:] == g[1:], result.wrong_type),
                        (lambda p, g: p[0] == g[0] and _overlap(p, g), result.wrong_boundary)):
        still = []
        for entity in unmatched:
            partner = next((g for g in left if kind(_span_key(entity), _span_key(g))), None)
            if partner is None:
                still.append(entity)
            else:
                pairs.append((entity, partner))
                left.remove(partner)
        unmatched = still
    result.spurious, result.missed = unmatched, left
    return result


@dataclass
class RelationDifferences:
    """A note's predicted relations against gold, strict: ``correct`` and ``wrong_link`` are ``(predicted, gold)``
    pairs, ``spurious`` predicted and ``missed`` gold relations."""

    correct: list[tuple[BratRelation, BratRelation]] = field(default_factory=list)
    wrong_link: list[tuple[BratRelation, BratRelation]] = field(default_factory=list)
    spurious: list[BratRelation] = field(default_factory=list)
    missed: list[BratRelation] = field(default_factory=list)

    @property
    def counts(self) -> tuple[int, int, int]:
        """Strict ``(tp, fp, fn)`` of the relations, as ``n2c2_scoring`` counts them."""
        return (len(self.correct), len(self.spurious) + len(self.wrong_link),
                len(self.missed) + len(self.wrong_link))


def relation_differences(gold: BratDocument, predicted: BratDocument | None) -> RelationDifferences:
    """Sort a note's relations into correct, wrong link, spurious and missed (module docstring)."""

    def keyed(document: BratDocument | None) -> list[tuple[tuple, BratRelation]]:
        if document is None:
            return []
        entities = {entity.id: _span_key(entity) for entity in document.entities}
        pairs = [((relation.type, entities[relation.arg1], entities[relation.arg2]), relation)
                 for relation in document.relations]
        return _distinct(pairs, lambda pair: pair[0])

    gold_pairs, predicted_pairs = keyed(gold), keyed(predicted)
    gold_by_key = dict(gold_pairs)
    result = RelationDifferences()
    matched, unmatched = set(), []
    for key, relation in predicted_pairs:
        if key in gold_by_key:
            result.correct.append((relation, gold_by_key[key]))
            matched.add(key)
        else:
            unmatched.append((key, relation))
    left = [(key, relation) for key, relation in gold_pairs if key not in matched]
    for key, relation in unmatched:
        partner = next(((k, r) for k, r in left if k[:2] == key[:2]), None)  # same type and attribute
        if partner is None:
            result.spurious.append(relation)
        else:
            result.wrong_link.append((relation, partner[1]))
            left.remove(partner)
    result.missed = [relation for _, relation in left]
    return result


# ---------------------------------------------------------------------------
# Which notes to annotate next
# ---------------------------------------------------------------------------


def annotation_priority(word_confidences: Iterable[float | None],
                        entity_confidences: Iterable[float | None] = ()) -> tuple[float, float]:
    """``(uncertainty, least entity confidence)`` of a note: ``1 - min(word confidences)`` (0 without any) and its
    least confident entity's confidence (1.0 without any); unknown (None) confidences are left out."""
    words = [value for value in word_confidences if value is not None]
    entities = [value for value in entity_confidences if value is not None]
    return (1.0 - min(words) if words else 0.0), (min(entities) if entities else 1.0)


def rank_for_annotation(notes: Mapping[str, Mapping[str, Iterable[float | None]]],
                        count: int | None = None) -> list[str]:
    """The ids of the ``count`` notes (all, by default) whose annotation would teach the model most, most uncertain
    first: ``notes`` maps a document id to ``{"word_confidences": [...], "entity_confidences": [...]}`` (either may
    be missing); the order is :func:`annotation_priority`'s uncertainty, highest first, then the least entity
    confidence, lowest first, then the id."""
    def order(document_id: str) -> tuple[float, float, str]:
        note = notes[document_id]
        uncertainty, least_entity = annotation_priority(note.get("word_confidences", ()),
                                                        note.get("entity_confidences", ()))
        return -uncertainty, least_entity, document_id

    ranked = sorted(notes, key=order)
    return ranked if count is None else ranked[:count]


# ---------------------------------------------------------------------------
# Reading the annotation folder
# ---------------------------------------------------------------------------


def _named_types(ann_text: str, prefix: str) -> set[str]:
    """The types on an ``.ann``'s ``T`` (or ``R``) lines: the reader takes only the types it is told."""
    types = set()
    for line in split_lines(ann_text):
        fields = line.split("\t")
        if line.startswith(prefix) and len(fields) >= 2 and fields[1].split():
            types.add(fields[1].split()[0])
    return types


def read_any_brat(txt: Path, ann: Path, *, validate_text: bool, check_relations: bool = True) -> BratDocument:
    """A ``.txt``/``.ann`` pair whatever its entity and relation types (a model's own, or a corpus's)."""
    ann_text = read_text(ann)
    return read_brat_document(txt, ann, entity_types=sorted(_named_types(ann_text, "T")),
                              relation_map={name: name for name in _named_types(ann_text, "R")},
                              validate_text=validate_text, check_relations=check_relations)


def _jsonl_records(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of a JSON lines file; a line that is not one (a killed run's torn last line) is skipped."""
    if not path.is_file():
        return
    for line in read_regular_file(path).splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("document_id"), str):
            yield record


@dataclass
class _Records:
    """What annotate_notes.py stored beside the ``.ann`` files, by note (a later record replaces an earlier one, as
    its compaction keeps a note's last block)."""

    entities: dict[tuple[str, str], dict[str, Any]]
    links: dict[tuple[str, str, str], float | None]  # (document, attribute id, drug id) -> relation_confidence
    words: dict[str, dict[int, list[float | None]]]  # document -> sentence index -> word confidences

    @classmethod
    def read(cls, output_dir: Path) -> "_Records":
        entities = {(record["document_id"], record.get("id")): record
                    for record in _jsonl_records(output_dir / ENTITIES_FILE)}
        links = {}
        for record in _jsonl_records(output_dir / MEDICATIONS_FILE):
            for attribute in record.get("attributes") or ():
                links[(record["document_id"], attribute.get("id"), record.get("id"))] = \
                    attribute.get("relation_confidence")
        words: dict[str, dict[int, list]] = defaultdict(dict)
        for record in _jsonl_records(output_dir / WORD_PREDICTIONS_FILE):
            words[record["document_id"]][record.get("sentence_index")] = list(record.get("confidences") or ())
        return cls(entities, links, dict(words))

    def confidence(self, document_id: str, entity: BratEntity) -> float | None:
        """The entity's confidence, if its record describes this very ``T`` line."""
        record = self.entities.get((document_id, entity.id))
        if record and (record.get("type"), record.get("start"), record.get("end")) == (entity.type, entity.start,
                                                                                     entity.end):
            return record.get("confidence")
        return None

    def word_confidences(self, document_id: str, entities: Sequence[BratEntity]) -> list[float | None]:
        """Every word's (``predictions.jsonl``), else the entities' words' (``entities.jsonl``)."""
        if document_id in self.words:
            return [value for sentence in self.words[document_id].values() for value in sentence]
        return [value for entity in entities
                for value in (self.entities.get((document_id, entity.id)) or {}).get("word_confidences") or ()]


@dataclass
class _Note:
    """One note of the site: its files, text, predictions, confidences and (with gold) its differences."""

    document_id: str
    txt: Path
    ann: Path
    document: BratDocument
    confidences: dict[str, float | None]  # T id -> confidence
    link_confidences: dict[str, float | None]  # R id -> relation_confidence
    word_confidences: list[float | None]
    page: str = ""  # its file name in review/
    gold: "_GoldNote | None" = None

    @property
    def text(self) -> str:
        return self.document.text

    @property
    def known_confidences(self) -> list[float]:
        return [value for value in self.confidences.values() if value is not None]


@dataclass
class _GoldNote:
    """A note's gold document and its differences, with the scorer's strict counts they add up to."""

    document: BratDocument
    entities: EntityDifferences
    relations: RelationDifferences | None  # None when the gold has no relations (the scorer scores none)
    sources: tuple[Path, ...]


def _annotated_notes(output_dir: Path, notes_dir: Path) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """``(document id, note, .ann)`` of every ``.ann`` of OUTPUT_DIR whose note is in NOTES_DIR, and the names of the
    ``.ann`` files without one. Notes are listed as annotate_notes.py lists them (``.txt`` in any case)."""
    notes: dict[str, Path] = {}
    for path in list_notes(notes_dir).notes:
        notes.setdefault(path.stem, path)  # the first of a.txt and a.TXT, as annotate_notes.py annotates it
    paired, orphans = [], []
    for ann in sorted(output_dir.iterdir()):
        if ann.suffix.lower() != ".ann" or ann.name.startswith(".") or not ann.is_file():
            continue
        if ann.stem in notes:
            paired.append((ann.stem, notes[ann.stem], ann))
        else:
            orphans.append(ann.name)
    return paired, orphans


def _page_names(document_ids: Sequence[str]) -> dict[str, str]:
    """Each note's page: ``NOTE.html``, never ``index.html`` and never two alike on a case-blind disk."""
    taken, names = {INDEX_FILE.lower()}, {}
    for document_id in document_ids:
        name, number = f"{document_id}.html", 2
        while name.lower() in taken:
            name, number = f"{document_id}-{number}.html", number + 1
        taken.add(name.lower())
        names[document_id] = name
    return names


def _compare_with_gold(gold_dir: Path, output_dir: Path, notes: Sequence[_Note]) -> dict[str, Any]:
    """Score OUTPUT_DIR against GOLD as evaluate_ablations.py does, give each note with a gold file its differences
    (checked to add up to the scorer's counts) and return the totals over every scored gold note."""
    report = score_brat_folders(gold_dir, output_dir, per_document=True)
    per_document = report["per_document"]
    entity_counts = dict(zip(per_document["documents"], per_document["entities"]["strict"]))
    relation_counts = (dict(zip(per_document["documents"], per_document["relations"]["strict"]))
                       if per_document["relations"] is not None else None)
    by_id = {note.document_id: note for note in notes}
    for document_id in per_document["documents"]:
        note = by_id.get(document_id)
        if note is None:
            continue
        gold_txt, gold_ann = gold_dir / f"{document_id}.txt", gold_dir / f"{document_id}.ann"
        gold = read_any_brat(gold_txt, gold_ann, validate_text=False)
        if gold.text != note.text:
            raise BratFormatError(gold_txt, None, f"is not the note {note.txt} (their texts differ): give the gold "
                                                  "folder of these notes", "text_mismatch")
        # The scorer reads OUTPUT_DIR/NOTE.ann by that exact name: a note whose .ann it did not find is all missed.
        predicted = note.document if (output_dir / f"{document_id}.ann").is_file() else None
        entities = entity_differences(gold.entities, predicted.entities if predicted else [])
        relations = relation_differences(gold, predicted) if relation_counts is not None else None
        for what, ours, theirs in (("entity", entities.counts, entity_counts[document_id]),
                                   ("relation", relations.counts if relations else None,
                                    relation_counts[document_id] if relation_counts else None)):
            if ours is not None and tuple(ours) != tuple(theirs):
                raise RuntimeError(f"{document_id}: the {what} differences (tp, fp, fn {ours}) do not add up to the "
                                   f"scorer's counts {tuple(theirs)}")
        note.gold = _GoldNote(gold, entities, relations, (gold_txt, gold_ann))

    def total(counts: Mapping[str, Sequence[int]] | None) -> dict[str, int] | None:
        if counts is None:
            return None
        return dict(zip(("tp", "fp", "fn"), (sum(row[index] for row in counts.values()) for index in range(3))))

    return {"gold_dir": str(gold_dir), "documents": len(per_document["documents"]),
            "entities": total(entity_counts), "relations": total(relation_counts),
            "without_prediction_file": list(report["missing_predictions"]),
            "without_page": [document_id for document_id in per_document["documents"] if document_id not in by_id]}


# ---------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------


def _attribute(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _text(value: str) -> str:
    """Note text as HTML text: escaped, and a carriage return kept as one (the parser would turn CR LF into LF,
    and every offset after it would be one off)."""
    return html.escape(value, quote=False).replace("\r", "&#13;")


def _confidence(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _type_colours(types: Iterable[str]) -> dict[str, int]:
    """A colour number per entity type: the n2c2 types in their order, then the others alphabetically."""
    types = set(types)
    ordered = [name for name in N2C2_ENTITY_TYPES if name in types] + sorted(types - set(N2C2_ENTITY_TYPES))
    return {name: index for index, name in enumerate(ordered)}


# Light backgrounds that dark text reads on; a tenth type and beyond reuse them.
_PALETTE = ("#ffd6a5", "#ffadad", "#bde0fe", "#caffbf", "#fdffb6", "#e4c1f9", "#a0e7e5", "#ffc6ff", "#ffb3c1",
            "#d0f4de")

_CSS = """
:root { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b; background: #fff; }
body { max-width: 90rem; margin: 0 auto; padding: 0 1rem 3rem; }
.privacy { background: #fff3cd; border: 1px solid #d4a600; border-radius: 4px; padding: .5rem .75rem;
  margin: .75rem 0; position: sticky; top: 0; z-index: 1; }
nav { margin: .5rem 0; } nav a { margin-right: 1rem; }
h1 { font-size: 1.4rem; margin: .5rem 0; word-break: break-all; } h2 { font-size: 1.1rem; margin: 1rem 0 .4rem; }
.summary { margin: .3rem 0; }
.legend { display: flex; flex-wrap: wrap; gap: .4rem .9rem; align-items: center; margin: .6rem 0; font-size: .9rem; }
.swatch { display: inline-block; padding: 0 .35rem; border-radius: 3px; background: var(--c); }
.layout { display: grid; grid-template-columns: minmax(0, 3fr) minmax(18rem, 2fr); gap: 1.5rem; align-items: start; }
@media (max-width: 60rem) { .layout { grid-template-columns: 1fr; } }
pre.note { white-space: pre-wrap; overflow-wrap: anywhere; font: .95rem/2.1 ui-monospace, "DejaVu Sans Mono", monospace;
  border: 1px solid #ccc; border-radius: 4px; padding: .75rem 1rem; margin: 0; background: #fcfcfc; }
mark.entity { background: var(--c); color: inherit; border-radius: 3px; padding: .15em 0; }
mark.entity mark.entity { box-shadow: 0 0 0 1px #0007; }
mark.entity-last::after { content: attr(data-label); font: .62em system-ui, sans-serif; vertical-align: super;
  margin-left: 1px; color: #444; }
mark.low-confidence { outline: 2px dashed #b00020; outline-offset: 1px; }
mark.low-confidence.entity-last::after { content: "\\26A0\\FE0E " attr(data-label); color: #b00020; font-weight: 600; }
.diff-spurious, .diff-wrong-type, .diff-wrong-boundary { text-decoration: underline wavy; text-underline-offset: 3px; }
.diff-spurious { text-decoration-color: #b00020; } .diff-wrong-type { text-decoration-color: #d35400; }
.diff-wrong-boundary { text-decoration-color: #6c3fc9; }
span.gold { border-bottom: 3px double #b00020; }
span.gold.diff-wrong-type { border-bottom-color: #d35400; }
span.gold.diff-wrong-boundary { border-bottom-color: #6c3fc9; }
aside ul { padding-left: 1.1rem; margin: .2rem 0; } aside li { margin: .15rem 0; }
.relation.diff-wrong-link { color: #d35400; } .relation.diff-spurious-link { color: #b00020; }
table { border-collapse: collapse; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .25rem .45rem; text-align: left; vertical-align: top; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
th button { font: inherit; font-weight: 600; background: none; border: 0; padding: 0; cursor: pointer; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; }
th[aria-sort="descending"] button::after { content: " \\25BC"; }
tfoot td { font-weight: 600; background: #f4f4f4; }
.scroll { overflow-x: auto; } #notes td:first-child { white-space: nowrap; }
.muted { color: #666; }
"""

# Sorting the index: a header's button sorts the rows by that column's data-value, numbers as numbers.
_SORT_SCRIPT = """
for (const button of document.querySelectorAll("th button")) {
  button.addEventListener("click", () => {
    const header = button.parentElement, table = header.closest("table"), body = table.tBodies[0];
    const column = header.cellIndex, ascending = header.getAttribute("aria-sort") !== "ascending";
    const value = row => row.cells[column].dataset.value;
    const rows = [...body.rows].sort((a, b) => {
      const x = value(a), y = value(b), nx = parseFloat(x), ny = parseFloat(y);
      const order = isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny;
      return ascending ? order : -order;
    });
    for (const other of table.tHead.rows[0].cells) other.removeAttribute("aria-sort");
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    body.append(...rows);
  });
}
"""

# No request may leave the page: not for a font, an image, a script or a link prefetch.
_CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                            "base-uri 'none'; form-action 'none'")


def _page(title: str, body: str, colours: Mapping[str, int], script: str = "") -> str:
    type_rules = "\n".join(f".type-{number} {{ --c: {_PALETTE[number % len(_PALETTE)]}; }}"
                           for number in colours.values())
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{_CONTENT_SECURITY_POLICY}">\n'
            f'<meta name="referrer" content="no-referrer">\n<meta name="robots" content="noindex, nofollow">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{_attribute(title)}</title>\n<style>{_CSS}{type_rules}\n</style>\n</head>\n<body>\n'
            f'<p class="privacy" role="note"><strong>Note text.</strong> {_attribute(PRIVACY_LINE)}</p>\n'
            f'{body}\n' + (f'<script>{script}</script>\n' if script else "") + '</body>\n</html>\n')


@dataclass
class _Mark:
    """A span of the note drawn as an element: a predicted entity's fragment (``mark``) or a gold one (``span``)."""

    start: int
    end: int
    order: int  # among marks of one span: predicted before gold, then file order
    tag: str
    classes: list[str]
    attributes: dict[str, str]
    title: str
    entity_key: tuple[str, str]  # ("entity" or "gold", id): an element's pieces share it
    children: list["_Mark"] = field(default_factory=list)
    first: bool = False
    last: bool = False


def _nest(marks: Sequence[_Mark], length: int) -> _Mark:
    """The marks as a tree over ``[0, length)``: a mark inside another is its child; a mark that crosses the end of
    the one it starts in is cut there, and the rest goes on as a piece of its own (same attributes, its own offsets).
    Longer marks come first at one start, so they hold the shorter ones."""
    root = _Mark(0, length, -1, "", [], {}, "", ("", ""))
    queue: list = []
    for sequence, mark in enumerate(marks):
        heappush(queue, (mark.start, -mark.end, mark.order, sequence, mark))
    stack, sequence = [root], len(marks)
    while queue:
        start, negative_end, order, _, mark = heappop(queue)
        end = -negative_end
        while stack[-1] is not root and stack[-1].end <= start:
            stack.pop()
        parent = stack[-1]
        if end > parent.end:  # crosses its parent's end: this piece stops there, the rest is drawn after it
            heappush(queue, (parent.end, -end, order, sequence, mark))
            sequence += 1
            end = parent.end
        piece = _Mark(start, end, order, mark.tag, mark.classes, mark.attributes, mark.title, mark.entity_key)
        parent.children.append(piece)
        stack.append(piece)
    return root


def _render(text: str, marks: Sequence[_Mark]) -> str:
    """The note's text as HTML with every mark an element holding exactly its piece of the text."""
    root = _nest(marks, len(text))
    pieces: dict[tuple[str, str], list[_Mark]] = defaultdict(list)

    def collect(node: _Mark) -> None:
        for child in node.children:
            pieces[child.entity_key].append(child)
            collect(child)

    collect(root)
    for items in pieces.values():  # the first piece takes the anchor, the last one the confidence label
        ordered = sorted(items, key=lambda piece: piece.start)
        ordered[0].first, ordered[-1].last = True, True

    def html_of(node: _Mark) -> str:
        out, position = [], node.start
        for child in node.children:
            out.append(_text(text[position:child.start]))
            classes = child.classes + (["entity-last"] if child.last and child.tag == "mark" else [])
            attributes = {**child.attributes, "data-start": str(child.start), "data-end": str(child.end)}
            if child.first:
                attributes["id"] = f"{child.entity_key[0]}-{child.entity_key[1]}"
            written = " ".join(f'{name}="{_attribute(value)}"' for name, value in attributes.items())
            out.append(f'<{child.tag} class="{" ".join(classes)}" {written} title="{_attribute(child.title)}">'
                       f'{html_of(child)}</{child.tag}>')
            position = child.end
        out.append(_text(text[position:node.end]))
        return "".join(out)

    return html_of(root)


def _fragments(entity: BratEntity) -> str:
    return ";".join(f"{start} {end}" for start, end in entity.spans)


def _entity_marks(note: _Note, colours: Mapping[str, int], low_confidence: float) -> list[_Mark]:
    """A mark per fragment of every predicted entity and of every gold entity the prediction did not get."""
    diff_of: dict[str, str] = {}
    gold_marks: list[tuple[BratEntity, str]] = []
    if note.gold is not None:
        differences = note.gold.entities
        diff_of.update({predicted.id: "correct" for predicted, _ in differences.correct})
        diff_of.update({predicted.id: "spurious" for predicted in differences.spurious})
        for kind, pairs in (("wrong-type", differences.wrong_type), ("wrong-boundary", differences.wrong_boundary)):
            diff_of.update({predicted.id: kind for predicted, _ in pairs})
            gold_marks += [(gold, kind) for _, gold in pairs]
        gold_marks += [(gold, "missed") for gold in differences.missed]
    marks = []
    for order, entity in enumerate(note.document.entities):
        confidence = note.confidences.get(entity.id)
        low = confidence is not None and confidence < low_confidence
        classes = ["entity", f"type-{colours[entity.type]}"] + ["low-confidence"] * low
        attributes = {"data-entity-id": entity.id, "data-type": entity.type,
                      "data-confidence": "" if confidence is None else f"{confidence:.6g}",
                      "data-label": _confidence(confidence), "data-fragments": _fragments(entity)}
        title = f"{entity.type} {entity.id}, confidence {_confidence(confidence, 3)}" + \
                (f" (below {low_confidence:g})" if low else "")
        if entity.id in diff_of:
            classes.append(f"diff-{diff_of[entity.id]}")
            attributes["data-diff"] = diff_of[entity.id]
            title += f"; gold: {diff_of[entity.id].replace('-', ' ')}"
        for start, end in entity.spans:
            marks.append(_Mark(start, end, order, "mark", classes, attributes, title, ("entity", entity.id)))
    for order, (entity, kind) in enumerate(gold_marks, start=len(marks)):
        attributes = {"data-gold-id": entity.id, "data-type": entity.type, "data-diff": kind,
                      "data-fragments": _fragments(entity)}
        title = f"gold {entity.type} {entity.id}: {kind.replace('-', ' ')}"
        for start, end in entity.spans:
            marks.append(_Mark(start, end, order, "span", ["gold", f"type-{colours[entity.type]}", f"diff-{kind}"],
                               attributes, title, ("gold", entity.id)))
    return marks


def _quote(text: str, limit: int = 60) -> str:
    """A short piece of the note for a list (the page holds the whole note anyway)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _entity_link(entity: BratEntity, text: str, prefix: str | None, confidence: float | None = None,
                 show_confidence: bool = False) -> str:
    """An entity in a list: type, a short quote (a link to its element in the text, when it has one), id, offsets."""
    quoted = _text(_quote(" ".join(text[start:end] for start, end in entity.spans)))
    if prefix is not None:
        quoted = f'<a href="#{_attribute(prefix)}-{_attribute(entity.id)}">{quoted}</a>'
    shown = f'{_attribute(entity.type)} {quoted} <span class="muted">{_attribute(entity.id)} {_fragments(entity)}'
    return shown + "</span>" + (f" · {_confidence(confidence)}" if show_confidence else "")


def _relations_html(note: _Note) -> str:
    """The relations, drug by drug (Arg2 → its linked Arg1s)."""
    relations = note.document.relations
    if not relations:
        return '<h2>Relations</h2>\n<p class="muted">No relations (R lines) in this note\'s .ann.</p>'
    entities = {entity.id: entity for entity in note.document.entities}
    diff_of: dict[str, str] = {}
    if note.gold is not None and note.gold.relations is not None:
        differences = note.gold.relations
        diff_of.update({relation.id: "correct" for relation, _ in differences.correct})
        diff_of.update({relation.id: "wrong-link" for relation, _ in differences.wrong_link})
        diff_of.update({relation.id: "spurious-link" for relation in differences.spurious})
    by_drug: dict[str, list[BratRelation]] = defaultdict(list)
    for relation in relations:
        by_drug[relation.arg2].append(relation)
    items = []
    for drug_id in sorted(by_drug, key=lambda entity_id: (entities[entity_id].start, entity_id)):
        linked = []
        for relation in sorted(by_drug[drug_id], key=lambda r: (entities[r.arg1].start, r.id)):
            confidence = note.link_confidences.get(relation.id)
            diff = diff_of.get(relation.id)
            attributes = {"data-relation-id": relation.id, "data-relation-type": relation.type,
                          "data-arg1": relation.arg1, "data-arg2": relation.arg2,
                          "data-confidence": "" if confidence is None else f"{confidence:.6g}",
                          **({"data-diff": diff} if diff else {})}
            written = " ".join(f'{name}="{_attribute(value)}"' for name, value in attributes.items())
            linked.append(f'<li class="relation{f" diff-{diff}" if diff else ""}" {written} '
                          f'title="{_attribute(relation.type)} {_attribute(relation.id)}, confidence '
                          f'{_confidence(confidence, 3)}{f"; gold: {diff}" if diff else ""}">'
                          f'{_entity_link(entities[relation.arg1], note.text, "entity")} · link '
                          f'{_confidence(confidence)}</li>')
        items.append(f'<li class="drug" data-entity-ref="{_attribute(drug_id)}">'
                     f'{_entity_link(entities[drug_id], note.text, "entity", note.confidences.get(drug_id), True)}'
                     f'<ul>{"".join(linked)}</ul></li>')
    return f'<h2>Relations</h2>\n<ul class="relations">{"".join(items)}</ul>'


def _differences_html(note: _Note) -> str:
    """The note's differences from gold: its counts as data- attributes, and a table of every difference."""
    gold = note.gold
    if gold is None:
        return ""
    entities, relations = gold.entities, gold.relations
    tp, fp, fn = entities.counts
    counts = {"data-strict-tp": tp, "data-strict-fp": fp, "data-strict-fn": fn,
              "data-missed": len(entities.missed), "data-spurious": len(entities.spurious),
              "data-wrong-type": len(entities.wrong_type), "data-wrong-boundary": len(entities.wrong_boundary)}
    if relations is not None:
        relation_tp, relation_fp, relation_fn = relations.counts
        counts.update({"data-relation-tp": relation_tp, "data-relation-fp": relation_fp,
                       "data-relation-fn": relation_fn, "data-missed-link": len(relations.missed),
                       "data-spurious-link": len(relations.spurious), "data-wrong-link": len(relations.wrong_link)})
    text, gold_text = note.text, gold.document.text
    predicted_entities = {entity.id: entity for entity in note.document.entities}
    gold_entities = {entity.id: entity for entity in gold.document.entities}

    def entity_cell(entity: BratEntity | None, side: str) -> str:
        if entity is None:
            return "<td></td>"
        if side == "entity":
            return f"<td>{_entity_link(entity, text, side, note.confidences.get(entity.id), True)}</td>"
        return f"<td>{_entity_link(entity, gold_text, side)}</td>"

    def relation_cell(relation: BratRelation | None, side: str) -> str:
        if relation is None:
            return "<td></td>"
        # A gold argument is drawn only where the prediction missed it: no link to it.
        entities_of, source, prefix = ((predicted_entities, text, "entity") if side == "entity"
                                       else (gold_entities, gold_text, None))
        arg1, arg2 = entities_of[relation.arg1], entities_of[relation.arg2]
        return (f"<td>{_attribute(relation.type)} {_attribute(relation.id)}: {_entity_link(arg1, source, prefix)} → "
                f"{_entity_link(arg2, source, prefix)}</td>")

    rows = []
    for kind, gold_entity, predicted in (
            [("missed", entity, None) for entity in entities.missed]
            + [("spurious", None, entity) for entity in entities.spurious]
            + [("wrong-type", g, p) for p, g in entities.wrong_type]
            + [("wrong-boundary", g, p) for p, g in entities.wrong_boundary]):
        rows.append((min(e.start for e in (gold_entity, predicted) if e), f'<tr data-diff="{kind}"><td>'
                     f'{kind.replace("-", " ")}</td>{entity_cell(gold_entity, "gold")}'
                     f'{entity_cell(predicted, "entity")}</tr>'))
    if relations is not None:
        for kind, gold_relation, predicted in (
                [("missed-link", relation, None) for relation in relations.missed]
                + [("spurious-link", None, relation) for relation in relations.spurious]
                + [("wrong-link", g, p) for p, g in relations.wrong_link]):
            anchor = (gold_entities[gold_relation.arg1] if gold_relation else predicted_entities[predicted.arg1]).start
            rows.append((anchor, f'<tr data-diff="{kind}"><td>{kind.replace("-", " ")}</td>'
                         f'{relation_cell(gold_relation, "gold")}{relation_cell(predicted, "entity")}</tr>'))
    rows.sort(key=lambda row: row[0])
    written = " ".join(f'{name}="{value}"' for name, value in counts.items())
    relation_line = "" if relations is None else (
        f'<p class="summary">Relations, strict: {relations.counts[0]} correct, {relations.counts[1]} false positives '
        f'= {len(relations.spurious)} spurious + {len(relations.wrong_link)} wrong links, {relations.counts[2]} false '
        f'negatives = {len(relations.missed)} missed + {len(relations.wrong_link)} wrong links.</p>')
    table = ("<table><thead><tr><th>difference</th><th>gold</th><th>predicted</th></tr></thead><tbody>"
             + "".join(row for _, row in rows) + "</tbody></table>") if rows else "<p>No differences.</p>"
    return (f'<section id="gold-differences" {written}>\n<h2>Differences from gold</h2>\n'
            f'<p class="summary">Entities, strict (as <code>evaluate_ablations.py --gold_brat</code> counts them): '
            f'{tp} correct, {fp} false positives = {len(entities.spurious)} spurious + {len(entities.wrong_type)} '
            f'wrong type + {len(entities.wrong_boundary)} wrong boundary, {fn} false negatives = '
            f'{len(entities.missed)} missed + {len(entities.wrong_type)} wrong type + {len(entities.wrong_boundary)} '
            f'wrong boundary.</p>\n{relation_line}\n{table}\n</section>')


def _legend(types: Iterable[str], colours: Mapping[str, int], low_confidence: float, gold: bool) -> str:
    swatches = [f'<span class="swatch type-{colours[name]}">{_attribute(name)}</span>' for name in types]
    swatches.append(f'<span><mark class="entity low-confidence entity-last" data-label="0.42" '
                    f'style="--c:#eee">entity</mark> confidence below {low_confidence:g}</span>')
    if gold:
        swatches += ['<span class="diff-spurious">spurious</span>', '<span class="diff-wrong-type">wrong type</span>',
                     '<span class="diff-wrong-boundary">wrong boundary</span>',
                     '<span><span class="gold">gold</span> a gold entity not found (double underline)</span>']
    return f'<div class="legend" aria-label="legend">{"".join(swatches)}</div>'


def _note_page(note: _Note, previous: _Note | None, following: _Note | None, colours: Mapping[str, int],
               low_confidence: float) -> str:
    known = note.known_confidences
    low = sum(value < low_confidence for value in known)
    types = [name for name in colours if any(entity.type == name for entity in note.document.entities)
             or (note.gold is not None and any(entity.type == name for entity in note.gold.document.entities))]
    navigation = [f'<a href="{INDEX_FILE}">All notes</a>']
    for label, other in (("← previous", previous), ("next →", following)):
        if other is not None:
            navigation.append(f'<a href="{_attribute(quote(other.page))}">{label}: {_attribute(other.document_id)}</a>')
    mean = sum(known) / len(known) if known else None
    summary = (f'{len(note.document.entities)} entities, mean confidence {_confidence(mean)}, lowest '
               f'{_confidence(min(known, default=None))}, {low} below {low_confidence:g}; '
               f'{len(note.document.relations)} relations.')
    body = (f'<nav>{"".join(navigation)}</nav>\n<h1>{_attribute(note.document_id)}</h1>\n'
            f'<p class="summary">{summary}</p>\n'
            f'{_legend(types, colours, low_confidence, note.gold is not None)}\n'
            f'<div class="layout">\n<pre class="note" id="note-text">'
            f'{_render(note.text, _entity_marks(note, colours, low_confidence))}</pre>\n'
            f'<aside>\n{_differences_html(note)}\n{_relations_html(note)}\n</aside>\n</div>')
    return _page(f"{note.document_id}: review", body, colours)


def _index_page(notes: Sequence[_Note], output_dir: Path, notes_dir: Path, gold: dict[str, Any] | None,
                low_confidence: float, priorities: Mapping[str, tuple[float, float]], ranked: Sequence[str] | None,
                colours: Mapping[str, int]) -> str:
    relations_scored = gold is not None and gold["relations"] is not None
    columns = ["note", "entities", "relations", "mean confidence", "lowest confidence", f"below {low_confidence:g}",
               "uncertainty"]
    if gold is not None:
        columns += ["TP", "FP", "FN", "missed", "spurious", "wrong type", "wrong boundary"]
        if relations_scored:
            columns += ["relation TP", "relation FP", "relation FN", "wrong link"]
    if ranked is not None:
        columns.append("annotate next")
    position = {document_id: number for number, document_id in enumerate(ranked or (), start=1)}

    def cell(value: Any, shown: str | None = None) -> str:
        value = "" if value is None else value
        shown = value if shown is None else shown
        return f'<td class="number" data-value="{_attribute(value)}">{_attribute(shown)}</td>'

    rows = []
    for note in notes:
        known = note.known_confidences
        cells = [f'<td data-value="{_attribute(note.document_id)}"><a href="{_attribute(quote(note.page))}">'
                 f'{_attribute(note.document_id)}</a></td>',
                 cell(len(note.document.entities)), cell(len(note.document.relations)),
                 cell(f"{sum(known) / len(known):.4f}" if known else None),
                 cell(f"{min(known):.4f}" if known else None),
                 cell(sum(value < low_confidence for value in known)),
                 cell(f"{priorities[note.document_id][0]:.4f}")]
        if gold is not None:
            differences = note.gold.entities if note.gold else None
            numbers = ([*differences.counts, len(differences.missed), len(differences.spurious),
                        len(differences.wrong_type), len(differences.wrong_boundary)] if differences else [None] * 7)
            if relations_scored:
                links = note.gold.relations if note.gold else None
                numbers += [*links.counts, len(links.wrong_link)] if links else [None] * 4
            cells += [cell(number) for number in numbers]
        if ranked is not None:
            cells.append(cell(position.get(note.document_id)))
        rows.append(f'<tr data-document-id="{_attribute(note.document_id)}">{"".join(cells)}</tr>')
    header = "".join(f'<th scope="col"><button type="button">{_attribute(name)}</button></th>' for name in columns)
    totals, footer, attributes = "", "", ""
    if gold is not None:
        entity_totals = gold["entities"]
        attributes = " ".join(f'data-strict-{key}="{value}"' for key, value in entity_totals.items())
        if relations_scored:
            attributes += " " + " ".join(f'data-relation-{key}="{value}"' for key, value in gold["relations"].items())
        footer_cells = [f'<td colspan="7">all {gold["documents"]} gold notes scored</td>'] + [
            f'<td class="number">{entity_totals[key]}</td>' for key in ("tp", "fp", "fn")] + ['<td colspan="4"></td>']
        if relations_scored:
            footer_cells += [f'<td class="number">{gold["relations"][key]}</td>' for key in ("tp", "fp", "fn")]
            footer_cells.append("<td></td>")
        if ranked is not None:
            footer_cells.append("<td></td>")
        footer = f'<tfoot><tr>{"".join(footer_cells)}</tr></tfoot>'
        missing = [*gold["without_prediction_file"], *(d for d in gold["without_page"]
                                                       if d not in gold["without_prediction_file"])]
        totals = (f'<p class="summary">Against {_attribute(gold["gold_dir"])}, strict, as '
                  f'<code>evaluate_ablations.py --gold_brat</code> scores it: {entity_totals["tp"]} correct, '
                  f'{entity_totals["fp"]} false positives, {entity_totals["fn"]} false negatives over '
                  f'{gold["documents"]} gold notes.'
                  + (f' {len(missing)} gold notes have no page here (no prediction file, or no note): '
                     f'{_attribute(", ".join(missing))}; the totals count them.' if missing else "") + '</p>')
    count_entities = sum(len(note.document.entities) for note in notes)
    body = (f'<h1>Review: {_attribute(output_dir.name)}</h1>\n'
            f'<p class="summary">{len(notes)} notes, {count_entities} entities, '
            f'{sum(len(note.document.relations) for note in notes)} relations. Notes from '
            f'{_attribute(notes_dir)}. Uncertainty: 1 − the note\'s lowest word confidence. '
            f'Click a column header to sort.</p>\n{totals}\n'
            f'<div class="scroll"><table id="notes" {attributes}><thead><tr>{header}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody>{footer}</table></div>')
    return _page(f"Review: {output_dir.name}", body, colours, _SORT_SCRIPT)


def _brat_config(documents: Iterable[BratDocument]) -> str:
    """An ``annotation.conf`` for the chosen notes: their entity types (the n2c2 ones always) and relation types."""
    documents = list(documents)
    entity_types = list(_type_colours([*N2C2_ENTITY_TYPES, *(e.type for d in documents for e in d.entities)]))
    relations = []
    for relation_type in sorted({relation.type for document in documents for relation in document.relations}):
        arguments = relation_argument_types(relation_type)
        relations.append(f"{relation_type}\tArg1:{arguments[0]}, Arg2:{arguments[1]}" if arguments
                         else f"{relation_type}\tArg1:<ENTITY>, Arg2:<ENTITY>")
    return "[entities]\n" + "".join(f"{name}\n" for name in entity_types) + "\n[relations]\n" + \
        "".join(f"{line}\n" for line in relations) + "\n[events]\n\n[attributes]\n"


# ---------------------------------------------------------------------------
# The site
# ---------------------------------------------------------------------------


def _write_file(path: Path, content: str | bytes, mode: int) -> None:
    """A new file of the site with ``mode``, never more readable than that, even for a moment."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content.encode("utf-8") if isinstance(content, str) else content)
        os.fchmod(handle.fileno(), mode)


def write_review_site(output_dir, notes_dir, gold_dir=None, low_confidence: float = DEFAULT_LOW_CONFIDENCE,
                      rank: int | None = None, *, overwrite: bool = False) -> dict[str, Any]:
    """Write ``OUTPUT_DIR/review/`` (module docstring): ``index.html`` and a page per annotated note; with
    ``gold_dir`` each note's differences from gold; with ``rank`` the ``rank`` notes to annotate next
    (:func:`rank_for_annotation`) in ``next_to_annotate.txt`` and ``next_to_annotate/``. The folder is replaced only
    with ``overwrite``, as a whole; the caller holds ``folder_safety.FolderLock`` on it. Returns counts (and the
    chosen ids: ``next_to_annotate``), never text. Bad annotations are ``BratFormatError`` (file, line, reason)."""
    output_dir, notes_dir = Path(output_dir), Path(notes_dir)
    gold_dir = Path(gold_dir) if gold_dir is not None else None
    if not 0.0 <= low_confidence <= 1.0:
        raise ValueError(f"low_confidence must be in [0, 1], got {low_confidence}")
    if rank is not None and rank < 1:
        raise ValueError(f"rank must be at least 1, got {rank}")
    paired, orphans = _annotated_notes(output_dir, notes_dir)
    if orphans:
        logger.warning("%d .ann files in %s have no note in %s and get no page (e.g. %s)", len(orphans), output_dir,
                       notes_dir, ", ".join(orphans[:3]))
    if not paired:
        raise UsageError(f"no .ann file in {output_dir} belongs to a note of {notes_dir}: give the folder "
                         "annotate_notes.py wrote and the notes it annotated")

    # Read everything first: a bad file stops the run before anything is written.
    records = _Records.read(output_dir)
    notes = []
    for document_id, txt, ann in paired:
        document = read_any_brat(txt, ann, validate_text=True, check_relations=False)
        notes.append(_Note(document_id, txt, ann, document,
                           {entity.id: records.confidence(document_id, entity) for entity in document.entities},
                           {relation.id: records.links.get((document_id, relation.arg1, relation.arg2))
                            for relation in document.relations},
                           records.word_confidences(document_id, document.entities)))
    for note, page in zip(notes, _page_names([note.document_id for note in notes]).values()):
        note.page = page
    gold = _compare_with_gold(gold_dir, output_dir, notes) if gold_dir is not None else None
    priorities = {note.document_id: annotation_priority(note.word_confidences, note.known_confidences)
                  for note in notes}
    ranked = rank_for_annotation({note.document_id: {"word_confidences": note.word_confidences,
                                                     "entity_confidences": note.known_confidences} for note in notes},
                                 rank) if rank is not None else None
    colours = _type_colours(entity.type for note in notes
                            for document in (note.document, *([note.gold.document] if note.gold else []))
                            for entity in document.entities)

    def sources(note: _Note) -> list[Path]:
        return [note.txt, note.ann, *(note.gold.sources if note.gold else ())]

    def write(folder: Path) -> None:
        for index, note in enumerate(notes):
            page = _note_page(note, notes[index - 1] if index else None, notes[index + 1] if index + 1 < len(notes)
                              else None, colours, low_confidence)
            _write_file(folder / note.page, page, note_file_mode(sources(note)))
        _write_file(folder / INDEX_FILE, _index_page(notes, output_dir, notes_dir, gold, low_confidence, priorities,
                                                     ranked, colours), usual_file_mode())
        if ranked is not None:
            chosen = [note for note in notes if note.document_id in set(ranked)]
            _write_file(folder / NEXT_TO_ANNOTATE_FILE, "".join(f"{document_id}\n" for document_id in ranked),
                        usual_file_mode())
            brat = folder / NEXT_TO_ANNOTATE_DIRNAME
            brat.mkdir()
            for note in chosen:  # the note and its predictions, byte for byte: brat's offsets are the file's
                mode = note_file_mode([note.txt, note.ann])
                _write_file(brat / f"{note.document_id}.txt", read_regular_file(note.txt), mode)
                _write_file(brat / f"{note.document_id}.ann", read_regular_file(note.ann), mode)
            _write_file(brat / BRAT_CONFIG_FILE, _brat_config(note.document for note in chosen), usual_file_mode())
            os.chmod(brat, folder_mode(note_file_mode([path for note in chosen for path in (note.txt, note.ann)])))
        # The folder is listable by those who may read every note it shows (mkdtemp made it the owner's only).
        os.chmod(folder, folder_mode(note_file_mode([path for note in notes for path in sources(note)])))

    review_dir = output_dir / REVIEW_DIRNAME
    Manifest(output_dir).claim_for_writing([REVIEW_DIRNAME])  # the annotation folder's manifest: the toolkit's own
    write_folder_atomically(review_dir, overwrite, write)
    counts = {
        "notes": len(notes),
        "entities": sum(len(note.document.entities) for note in notes),
        "relations": sum(len(note.document.relations) for note in notes),
        "low_confidence_entities": sum(value < low_confidence for note in notes for value in note.known_confidences),
        "unknown_confidences": sum(value is None for note in notes for value in note.confidences.values()),
        "ann_without_note": len(orphans),
        "gold": None if gold is None else {key: value for key, value in gold.items() if key != "gold_dir"},
        "next_to_annotate": ranked,
        "index": str(review_dir / INDEX_FILE),
    }
    logger.info("%s: %d note pages (%d entities, %d below %g, %d relations)%s", review_dir, counts["notes"],
                counts["entities"], counts["low_confidence_entities"], low_confidence, counts["relations"],
                "" if gold is None else f"; against gold: tp {gold['entities']['tp']}, fp {gold['entities']['fp']}, "
                                        f"fn {gold['entities']['fn']}")
    return counts
