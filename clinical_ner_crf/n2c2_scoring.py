"""n2c2 scoring: entities and relations of brat documents scored as the official n2c2-2018 Track 2 script scores them.

Strict (exact spans and type) and lenient (any overlap, same type) micro and macro P/R/F1 for entities
(:func:`score_entities`) and relations (:func:`score_relations`, in the gold-entity or the end-to-end setting), from
documents in memory or from two folders of ``.ann`` files (:func:`score_brat_folders`). Spans are read as the
official script (``Track2-evaluate-ver4.py``) reads them (:func:`official_span`); the per-type rows and the type
macro are over a fixed set of types (:func:`scored_types`), and ``per_document_macro`` is the official script's macro
(the mean over documents). The project's default differs from the official script in two named ways
(:data:`SEMANTICS`); ``score_brat_folders(official=True)`` follows the script there too."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from .brat import read_brat_document, relation_argument_problem
from .documents import BratDocument, BratEntity, BratFormatError, BratRelation, read_text
from .files import split_lines
from .metrics import ordered_types, summarize_counts
from .tagging import N2C2_ENTITY_TYPES, N2C2_RELATION_TYPES
from .token_metrics import ENTITY_MODES, LENIENT_NOTE, add_counts, distinct, match_counts, pare_down_counts, span_equals

logger = logging.getLogger(__name__)


# The two choices where the project's default differs from the official script (Track2-evaluate-ver4.py), named in
# every report ("semantics"); score_brat_folders(official=True) / evaluate_ablations.py --official follows the script.
SEMANTICS = {
    "project": (
        "Semantics: project (the default). Where it differs from the official script (Track2-evaluate-ver4.py): a "
        "gold note without a prediction file counts as all missed (the script skips it), and an exact duplicate "
        "in a note (same type and span, or same type and arguments) counts once on each side (the script counts "
        "every copy). --official scores as the script does."
    ),
    "official": (
        "Semantics: official (--official), as Track2-evaluate-ver4.py: a gold note without a prediction file is "
        "skipped (left out of every count; missing_predictions names them) and every copy of an exact duplicate "
        "counts. The project's default counts such a note as all missed and a duplicate once."
    ),
}

DUPLICATE_NOTE = (
    "Exact duplicate entities within one note (same type, start and end) are counted once on each side, and their "
    "number is reported (duplicate_entities). The official script counts every copy, so a gold note holding one span "
    "twice scored recall < 1 against itself."
)
OFFICIAL_DUPLICATE_NOTE = (
    "Every copy of an exact duplicate in a note is counted, as the official script counts it: a copy of a "
    "right prediction is dropped by the pare-down, a copy of a wrong one is another false positive, and a gold note "
    "holding one span twice scores recall < 1 against itself (duplicate_entities counts the copies)."
)

SPAN_NOTE = (
    "Spans are read as the official script reads them: a T line's span runs from its first written start to its "
    "last written end (fragments in the order written: 'ADE 50 60;10 20' is 50..20), and of two lines with one id "
    "the last is scored. A prediction line with a type and integer offsets is scored whatever else is wrong with it "
    "(offsets past the text, start >= end): a false positive unless it matches; it is listed (malformed_pred_lines). "
    "A prediction line that cannot be read at all counts as one false positive in the micro counts, under no type "
    "(unparseable_pred_lines), so that a broken file never scores higher than a clean one."
)


# --relation_setting: where the predicted relations' entities came from. The scores are computed the same
# way in both; the setting only labels the report (the scorer cannot tell), and
# "pred_relations_with_unmatched_argument" is the number that tells the two apart.
RELATION_SETTINGS = {
    "end_to_end": "end to end (the system's entities and relations against gold)",
    "gold_entities": "on gold entities (relations predicted between the gold entities)",
}
DEFAULT_RELATION_SETTING = "end_to_end"

RELATION_NOTE = (
    "Relations follow the n2c2-2018 official script (Relation.equals): a predicted relation is correct when "
    "its type is a gold relation's type and Arg1 (the attribute) equals that relation's Arg1 and Arg2 (the drug) "
    "its Arg2 as entities: same entity type and, strict, the same first written start and last written end; "
    "lenient, any overlap. Swapped arguments never match. Matching pares down as for entities: predicted relations "
    "are visited in file order and one that matches a gold relation already matched is dropped (neither true nor "
    "false positive). Micro sums counts over all documents (stray relation types and unparseable R lines, such as "
    "one naming an entity the file does not have, included); macro and weighted average over the scored relation "
    "types (the eight n2c2 ones when the gold uses them, else the gold's); per_document_macro is the official "
    "script's macro, the mean over documents of each document's P, R and F1."
)
RELATION_DUPLICATE_NOTE = (
    "An exact repeat within one note (same type and arguments) is counted once on each side beforehand "
    "(duplicate_relations; the official script counts every copy)."
)

# A relation as the scorer sees it: (relation type, arg1, arg2), each argument (entity type, start, end).
RelationArgument = tuple[str, int, int]
RelationKey = tuple[str, RelationArgument, RelationArgument]


def official_span(entity) -> tuple[int, int]:
    """The ``(start, end)`` the scorer compares for a ``documents.BratEntity``: its first written start and its last
    written end, as the official script reads a ``T`` line (``T1 ADE 50 60;10 20`` is ``(50, 20)``, whatever the
    order of its fragments; ``BratEntity.start``/``end``, the smallest start and largest end, are what training
    uses). One fragment: that fragment."""
    return entity.spans[0][0], entity.spans[-1][1]


def scored_types(gold_types: Iterable[str], standard: Sequence[str], chosen: Iterable[str] | None = None) -> list[str]:
    """The fixed types that the per-type rows and the type macro are over: ``chosen`` (``--brat_entity_types``), else
    ``standard`` (the nine n2c2 entity or eight relation types) when every gold type is one of them, else the gold's
    types; in ``standard``'s order, others alphabetically. Never a type only the predictions have: such a stray type
    is a false positive in the micro figures, counted on its own (``stray_pred_types``)."""
    if chosen is not None:
        return ordered_types(chosen, standard)
    gold_types = set(gold_types)
    return list(standard) if gold_types <= set(standard) else ordered_types(gold_types, standard)


def document_relations(document) -> list[RelationKey]:
    """The relations of a ``documents.BratDocument`` as ``(type, arg1, arg2)``, in file order.

    An argument is its entity's ``(type, start, end)`` by :func:`official_span` (first written start, last
    written end), so discontinuous entities collapse as the official script reads them (and as the entities are
    scored). A document with no relations (CoNLL input), or an object without a ``relations`` attribute, has
    none. A relation naming an entity
    id that is not among the document's entities is a ``ValueError`` (the brat reader never makes one:
    it reports such a line as ``unknown_argument``).
    """
    entities = {entity.id: entity for entity in document.entities}
    relations = []
    for relation in getattr(document, "relations", None) or ():
        arguments = []
        for role, entity_id in (("Arg1", relation.arg1), ("Arg2", relation.arg2)):
            entity = entities.get(entity_id)
            if entity is None:
                raise ValueError(f"document {document.doc_id}: relation {relation.id}'s {role} {entity_id} is not "
                                 f"one of its entities")
            arguments.append((entity.type, *official_span(entity)))
        relations.append((relation.type, arguments[0], arguments[1]))
    return relations


def match_relation_counts(
    gold_relations: Sequence[RelationKey],
    pred_relations: Sequence[RelationKey],
    mode: str = "strict",
) -> dict[str, dict[str, int]]:
    """True/false positives and false negatives per relation type for one document, n2c2-2018 style.

    Relations are ``(type, (arg1_type, start, end), (arg2_type, start, end))`` in file order
    (:func:`document_relations`). This is the relation half of the official script's
    ``SingleEvaluator``, with ``Relation.equals``:

    * same relation type, ``arg1`` equals the gold ``arg1`` and ``arg2`` the gold ``arg2`` by
      ``ClinicalConcept.equals`` (same entity type and, strict, same start and end; lenient, any
      overlap). Arguments are compared in place, never crosswise: a relation with its attribute
      and drug swapped matches nothing, in either mode.
    * "pare down matches", exactly as :func:`match_counts` does for entities (one loop,
      ``pare_down_counts``): predictions are visited in order; one that matches a gold relation
      already matched by an earlier prediction is dropped, counted neither as a true nor as a
      false positive. So an exact duplicate of a correct relation costs nothing (1 tp), while
      duplicates of a wrong relation are each a false positive, as the script counts every kept
      predicted relation. Lenient, a prediction whose arguments overlap two gold relations'
      (two drugs inside one predicted drug span) finds one of them; and, as for entities, a
      prediction that matches a new gold relation *and* an already matched one is dropped and
      the new one stays unfound.
    * ``tp`` = kept predictions that match some gold relation; ``fp`` = kept - tp; ``fn`` = gold - tp.

    The document scorers (:func:`score_relations`, :func:`score_brat_folders`) give it each note's distinct
    relations (:func:`distinct`): there an exact repeat counts once on either side, right or wrong.
    """
    if mode not in dict(ENTITY_MODES):
        raise ValueError(f"mode must be 'strict' or 'lenient', not {mode!r}")
    spans_equal = span_equals(mode)

    def argument_equals(gold: RelationArgument, pred: RelationArgument) -> bool:
        return gold[0] == pred[0] and spans_equal(gold[1:], pred[1:])

    def equals(gold: RelationKey, pred: RelationKey) -> bool:
        return argument_equals(gold[1], pred[1]) and argument_equals(gold[2], pred[2])

    # Matches need the same relation type, so each type is independent; file order within a type is kept.
    gold_by_type: dict[str, list[RelationKey]] = defaultdict(list)
    pred_by_type: dict[str, list[RelationKey]] = defaultdict(list)
    for relation in gold_relations:
        gold_by_type[relation[0]].append(relation)
    for relation in pred_relations:
        pred_by_type[relation[0]].append(relation)
    counts = {}
    for relation_type in dict.fromkeys([*gold_by_type, *pred_by_type]):
        tp, fp, fn = pare_down_counts(gold_by_type.get(relation_type, []), pred_by_type.get(relation_type, []),
                                       equals)
        counts[relation_type] = {"tp": tp, "fp": fp, "fn": fn}
    return counts


def _scores(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1 of one count, by ``metrics.summarize_counts`` (the one way counts become scores: 0
    where a denominator is 0, as the official script's ``Measures``)."""
    micro = summarize_counts({"all": {"tp": tp, "fp": fp, "fn": fn}})["micro"]
    return micro["precision"], micro["recall"], micro["f1"]


def _mean_over_documents(rows: Sequence[tuple[int, int, int]]) -> dict[str, float]:
    """The official script's macro: the mean over documents (``rows``, one ``(tp, fp, fn)`` each) of each document's
    precision, recall and F1, each averaged on its own (so F1 is not computed from the mean P and R). No document:
    zeros."""
    scores = [_scores(*row) for row in rows]
    return {key: sum(score[index] for score in scores) / len(scores) if scores else 0.0
            for index, key in enumerate(("precision", "recall", "f1"))}


class _Tally:
    """One level's counts (entities or relations), document by document and type by type, strict and lenient, with
    each document's lines counted as one false positive each (unparseable, under no type); summarized at the end
    over a fixed set of types (:func:`scored_types`)."""

    def __init__(self) -> None:
        self.documents: dict[str, list[dict[str, dict[str, int]]]] = {mode: [] for mode, _ in ENTITY_MODES}
        self.unparseable: list[int] = []

    def add(self, gold: Sequence, pred: Sequence, match, unparseable: int = 0) -> None:
        """One document's items, matched by ``match(gold, pred, mode)`` (:func:`match_counts`,
        :func:`match_relation_counts`)."""
        for mode, documents in self.documents.items():
            documents.append(match(gold, pred, mode))
        self.unparseable.append(unparseable)

    def micro_by_document(self) -> dict[str, list[tuple[int, int, int]]]:
        """Each document's micro ``(tp, fp, fn)``: every type (stray ones too) and the unparseable lines."""
        return {mode: [(tp, fp + extra, fn) for (tp, fp, fn), extra in zip(map(micro_counts, documents),
                                                                            self.unparseable)]
                for mode, documents in self.documents.items()}

    def by_type(self, types: Sequence[str]) -> dict[str, dict[str, list[tuple[int, int, int]]]]:
        """Each document's ``(tp, fp, fn)`` of each of ``types``, ``{mode: {type: [per document]}}``."""
        return {mode: {name: [tuple(document.get(name, {}).get(key, 0) for key in ("tp", "fp", "fn"))
                              for document in documents] for name in types}
                for mode, documents in self.documents.items()}

    def totals(self, mode: str) -> dict[str, Counter]:
        total: dict[str, Counter] = defaultdict(Counter)
        for document in self.documents[mode]:
            add_counts(total, document)
        return total

    def stray(self, types: Sequence[str]) -> dict[str, int]:
        """Predicted items of a type outside ``types``, by type: false positives all (no gold item has the type)."""
        total = self.totals("strict")
        return {name: total[name]["fp"] for name in sorted(set(total) - set(types)) if total[name]["fp"]}

    def summary(self, types: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``{mode: {per_type, micro, macro, weighted, per_document_macro}}``: per-type rows and the type averages over
        ``types`` exactly (a row of zeros for a type nobody has); micro over every count, stray types and unparseable
        lines included; ``per_document_macro`` the official macro, overall and for each of ``types``."""
        micro_by_document, by_type = self.micro_by_document(), self.by_type(types)
        summary = {}
        for mode in self.documents:
            total = self.totals(mode)
            section = summarize_counts({name: total.get(name, {}) for name in types}, with_counts=True, order=types)
            # A type neither side has (no ADE in a small test set) keeps its row of zeros but has no F1 to average:
            # counting it 0 would punish every system alike. Absent on the n2c2 test split, where every type occurs.
            present = {name: total[name] for name in types if name in total and any(total[name].values())}
            section["macro"] = {**summarize_counts(present, order=types)["macro"], "types": len(present)}
            section["micro"] = summarize_counts({**total, "": {"fp": sum(self.unparseable)}}, with_counts=True)["micro"]
            section["per_document_macro"] = {
                **_mean_over_documents(micro_by_document[mode]), "documents": len(micro_by_document[mode]),
                "per_type": {name: _mean_over_documents(rows) for name, rows in by_type[mode].items()}}
            summary[mode] = section
        return summary


class _RelationTally:
    """Relation counts document by document (:func:`score_relations`, :func:`score_brat_folders`); ``official``:
    every copy of an exact repeat counts, as in the official script."""

    def __init__(self, official: bool = False) -> None:
        self.official = official
        self.tally = _Tally()
        self.num_documents = self.num_gold = self.num_pred = self.unmatched_argument = 0
        self.duplicates = Counter()
        self.invalid: list[dict[str, Any]] = []
        self.unparseable: list[dict[str, Any]] = []
        self.gold_types: set[str] = set()

    def add(self, gold_document, pred_document=None, unparseable: Sequence[dict[str, Any]] = ()) -> None:
        """One document; ``pred_document`` None (no prediction file) counts as no predicted relations. Exact
        duplicates count once on each side (:func:`distinct`, counted; ``official``: every copy); a predicted relation
        whose arguments cannot be right (``brat.relation_argument_problem``) is scored, a false positive as in the
        official script, and listed by document, line and kind; ``unparseable`` R lines (``{document, line, kind}``)
        count as one false positive each, under no type."""
        gold, pred = document_relations(gold_document), document_relations(pred_document) if pred_document else []
        (distinct_gold, gold_repeats), (distinct_pred, pred_repeats) = distinct(gold), distinct(pred)
        self.duplicates.update(gold=gold_repeats, pred=pred_repeats)
        if not self.official:
            gold, pred = distinct_gold, distinct_pred
        if pred_document is not None and getattr(pred_document, "relations", None):
            entities = {entity.id: entity for entity in pred_document.entities}
            known_types = set(N2C2_ENTITY_TYPES) | {entity.type for entity in pred_document.entities}
            for relation in pred_document.relations:
                problem = relation_argument_problem(relation.id, relation.type, entities[relation.arg1],
                                                    entities[relation.arg2], known_types)
                if problem:
                    self.invalid.append({"document": pred_document.doc_id, "line": relation.line, "kind": problem[0]})
        # Strict entity identity, as the official script compares arguments (type, start, end).
        gold_entities = {(entity.type, *official_span(entity)) for entity in gold_document.entities}
        self.unmatched_argument += sum(1 for _, arg1, arg2 in pred
                                       if arg1 not in gold_entities or arg2 not in gold_entities)
        self.num_documents += 1
        self.num_gold += len(gold)
        self.num_pred += len(pred)
        self.gold_types.update(relation[0] for relation in gold)
        self.unparseable += unparseable
        self.tally.add(gold, pred, match_relation_counts, len(unparseable))

    @property
    def per_document(self) -> dict[str, list[tuple[int, int, int]]]:
        return self.tally.micro_by_document()

    def types(self) -> list[str]:
        return scored_types(self.gold_types, N2C2_RELATION_TYPES)

    def report(self, setting: str) -> dict[str, Any]:
        types = self.types()
        return {
            "setting": setting,
            "setting_title": RELATION_SETTINGS[setting],
            "semantics": "official" if self.official else "project",
            "num_documents": self.num_documents,
            "num_gold_relations": self.num_gold,
            "num_pred_relations": self.num_pred,
            # What separates the settings: on gold entities this is 0 (every argument is a gold entity).
            "pred_relations_with_unmatched_argument": self.unmatched_argument,
            # Exact repeats in a note: counted once (num_*_relations count the distinct ones), or, official, each.
            "duplicate_relations": {"gold": self.duplicates["gold"], "pred": self.duplicates["pred"]},
            # Predicted relations that cannot be right (an entity with itself, arguments reversed or of another type):
            # scored as false positives; listed by document, line and kind (brat.INVALID_RELATION_KINDS).
            "invalid_pred_relations": {"by_kind": dict(sorted(Counter(item["kind"] for item in self.invalid).items())),
                                       "lines": list(self.invalid)},
            # Predicted relations of a type outside the scored ones: false positives in micro, not in the type rows.
            "stray_pred_types": self.tally.stray(types),
            # R lines that cannot be read, or that name no entity of their file: one false positive each in micro.
            "unparseable_pred_lines": {"count": len(self.unparseable), "lines": list(self.unparseable)},
            **self.tally.summary(types),
            "notes": [RELATION_NOTE] + ([] if self.official else [RELATION_DUPLICATE_NOTE]),
        }


def micro_counts(counts_by_type: dict[str, dict[str, int]]) -> tuple[int, int, int]:
    """One document's ``(tp, fp, fn)`` over every type: what ``significance`` compares systems on."""
    return tuple(sum(counts[key] for counts in counts_by_type.values()) for key in ("tp", "fp", "fn"))


def _check_relation_setting(setting: str) -> None:
    if setting not in RELATION_SETTINGS:
        raise ValueError(f"relation setting must be one of {', '.join(RELATION_SETTINGS)}, not {setting!r}")


def score_relations(gold_documents: Iterable[Any], pred_documents: Iterable[Any], *,
                    setting: str = DEFAULT_RELATION_SETTING) -> dict[str, Any]:
    """Strict and lenient relation P/R/F per relation type and micro, n2c2-2018 style, without files (project
    semantics: exact repeats count once).

    ``gold_documents`` and ``pred_documents`` are ``documents.BratDocument`` s (entities and
    ``relations``) paired by position, the same document on both sides (their ``doc_id`` must
    agree); a ``None`` prediction counts as no predicted relations. Matching is
    :func:`match_relation_counts` per document, counts summed over documents. The result is the
    ``relations`` section of the brat report: ``setting`` (:data:`RELATION_SETTINGS`, a label
    only), ``num_documents``, ``num_gold_relations``, ``num_pred_relations``,
    ``pred_relations_with_unmatched_argument`` (predicted relations with an argument that equals no
    gold entity, strict), ``duplicate_relations`` (exact repeats in a note counted once, ``{gold, pred}``;
    the ``num_*`` count distinct relations), ``invalid_pred_relations`` (predicted relations that
    cannot be right, scored as false positives: ``by_kind`` and ``lines``), ``stray_pred_types``
    (predicted relations of a type outside the scored ones, :func:`scored_types`: false positives in micro),
    ``unparseable_pred_lines`` (``count`` and ``lines``; always 0 here, documents have none), ``strict`` and
    ``lenient`` (``per_type`` over the scored types, ``micro``, ``macro``, ``weighted``, with tp/fp/fn, and
    ``per_document_macro``, the official script's macro over documents) and ``notes``.
    """
    _check_relation_setting(setting)
    gold_documents, pred_documents = list(gold_documents), list(pred_documents)
    if len(gold_documents) != len(pred_documents):
        raise ValueError(f"{len(gold_documents)} gold documents but {len(pred_documents)} predicted ones")
    tally = _RelationTally()
    for gold, pred in zip(gold_documents, pred_documents):
        if pred is not None and pred.doc_id != gold.doc_id:
            raise ValueError(f"documents are paired by position: gold {gold.doc_id} faces prediction {pred.doc_id}")
        tally.add(gold, pred)
    return tally.report(setting)


def _ann_types(ann_text: str, prefix: str = "T") -> set[str]:
    """The types named on the ``T`` lines (``prefix="R"``: relation lines) of an ``.ann``'s text (the type field)."""
    types = set()
    for line in split_lines(ann_text):  # \r, \n and \r\n alike: a CR-only file has lines too
        fields = line.split("\t")
        if line.startswith(prefix) and len(fields) >= 2 and fields[1].split():
            types.add(fields[1].split()[0])
    return types


def _unreadable(path, error: OSError) -> BratFormatError:
    """An ``OSError`` as a :class:`BratFormatError`: the file and the system's reason, nothing of its text."""
    return BratFormatError(error.filename or path, None, f"cannot be read ({error.strerror or type(error).__name__})",
                           "unreadable")


def _read_ann_text(path: Path) -> str:
    """An ``.ann``'s text; whatever stops it being read is a :class:`BratFormatError` with a kind."""
    if path.is_symlink() and not path.exists():
        raise BratFormatError(path, None, "dangling symbolic link (its target does not exist)", "dangling_symlink")
    if not path.is_file():  # a folder named x.ann, or a pipe that would block the read
        raise BratFormatError(path, None, "not a regular file", "not_a_file")
    try:
        return read_text(path)  # not UTF-8: BratFormatError(kind="not_utf8") with the line
    except OSError as error:
        raise _unreadable(path, error) from None


def _read_brat(txt: Path, ann: Path, problems: list | None = None, check_relations: bool = True,
               label_map: dict | None = None, relation_map: dict | None = None, ann_text: str | None = None):
    # read_brat_document accepts only the nine n2c2 types unless told otherwise (entity_types=None
    # means n2c2, not "any"); a system may write other types, which must count as false
    # positives rather than fail, so name every type the file uses. Relation types likewise (an identity
    # relation map: without one the reader accepts only the n2c2 relation types). A gold corpus with types of
    # its own is read through its maps (as prepare_n2c2.py reads it): unmapped types are left out.
    ann_text = _read_ann_text(ann) if ann_text is None else ann_text
    types = None if label_map is not None else sorted(set(N2C2_ENTITY_TYPES) | _ann_types(ann_text))
    if relation_map is None and label_map is None:
        relation_map = {name: name for name in sorted(set(N2C2_RELATION_TYPES) | _ann_types(ann_text, "R"))}
    try:
        # validate_text=False: scoring needs offsets only, and systems may normalise the surface text.
        return read_brat_document(txt, ann, entity_types=types, label_map=label_map, relation_map=relation_map,
                                  validate_text=False, problems=problems, check_relations=check_relations)
    except OSError as error:  # the .txt, or a file that changed since it was first read
        raise _unreadable(ann, error) from None


# How the official script reads a prediction's lines (RecordTrack2._get_annotations): the second tab-separated field
# split on spaces. None: the line cannot be read so.

def _official_entity(fields: Sequence[str]) -> tuple[str, int, int] | None:
    """A ``T`` line's ``(type, start, end)``: ``TYPE START ... END``, the first written start and the last written
    end (the offsets between them, the other fragments', are not read)."""
    parts = fields[1].split() if len(fields) >= 2 and fields[0] else []
    if len(parts) < 3 or not (parts[1].isdecimal() and parts[-1].isdecimal()):
        return None
    return parts[0], int(parts[1]), int(parts[-1])


def _official_relation(fields: Sequence[str]) -> tuple[str, str, str] | None:
    """An ``R`` line's ``(type, arg1 id, arg2 id)``: ``TYPE Arg1:ID Arg2:ID``."""
    parts = fields[1].split() if len(fields) >= 2 and fields[0] else []
    arguments = [part.split(":") for part in parts[1:]]
    if len(parts) != 3 or any(len(argument) < 2 or not argument[1] for argument in arguments):
        return None
    return parts[0], arguments[0][1], arguments[1][1]


def _event_trigger(fields: Sequence[str]) -> str | None:
    """An ``E`` line's trigger id (``TYPE:ID ...``): an event stands for its trigger as a relation argument, as the
    brat reader reads it (the official script has no events)."""
    parts = fields[1].split() if len(fields) >= 2 and fields[0] else []
    trigger = parts[0].split(":") if parts else []
    return trigger[1] if len(trigger) >= 2 and trigger[1] else None


@dataclass
class _Prediction:
    """A prediction ``.ann`` as the official script reads it (``document``: one span per entity, :func:`official_span`
    of it being its first written start and last written end), and its lines that are not what brat allows, each
    ``{"document", "line", "kind"}`` (the brat reader's kind): read all the same (``malformed``), not readable, one
    false positive each (``unparseable_entities``: ``T``/``E`` lines and lines of no known kind;
    ``unparseable_relations``: ``R`` lines, or one naming no entity of its file), and lines whose id a later line
    takes (``replaced``; the later one is scored, as the script's dict keeps the last)."""

    document: BratDocument
    malformed: list[dict[str, Any]]
    unparseable_entities: list[dict[str, Any]]
    unparseable_relations: list[dict[str, Any]]
    replaced: list[dict[str, Any]]


def _read_prediction(txt: Path, ann: Path) -> _Prediction:
    """Read a prediction file as the official script reads it (:class:`_Prediction`). The brat reader says what is
    wrong with each line (and raises :class:`BratFormatError` for a file that cannot be read at all); the official
    reading says what is scored. Line numbers and kinds only: a problem's message may quote corpus text."""
    doc_id = ann.stem
    ann_text = _read_ann_text(ann)
    problems: list[BratFormatError] = []
    checked = _read_brat(txt, ann, problems, check_relations=False, ann_text=ann_text)
    kinds: dict[int, str] = {}
    for problem in problems:
        kinds.setdefault(problem.line, problem.kind)

    def entry(line: int, kind: str) -> dict[str, Any]:
        return {"document": doc_id, "line": line, "kind": kind}

    # Dicts keyed by id, as the script's: a later line with the same id replaces the earlier one (in its place).
    entities: dict[str, BratEntity] = {}
    relations: dict[str, tuple[int, str, str, str]] = {}
    triggers: dict[str, str] = {}
    line_of_id: dict[str, int] = {}
    unparseable_entities, unparseable_relations, replaced = [], [], []
    for number, line in enumerate(split_lines(ann_text), start=1):
        stripped = line.strip()
        fields, kind = stripped.split("\t"), stripped[:1]
        if kind == "T":
            read = _official_entity(fields)
        elif kind == "R":
            read = _official_relation(fields)
        elif kind == "E":
            read = _event_trigger(fields)
        elif number in kinds:  # a line of no known kind (blank lines and the A, M, N, *, # lines brat ignores are fine)
            read = None
        else:
            continue
        if read is None:
            unparseable = unparseable_relations if kind == "R" else unparseable_entities
            unparseable.append(entry(number, kinds.get(number, "malformed_line")))
            continue
        if fields[0] in line_of_id:
            replaced.append(entry(line_of_id[fields[0]], "duplicate_id"))
        line_of_id[fields[0]] = number
        if kind == "T":
            entities[fields[0]] = BratEntity(fields[0], read[0], ((read[1], read[2]),), "", number)
        elif kind == "R":
            relations[fields[0]] = (number, *read)
        else:
            triggers[fields[0]] = read

    kept_relations = []
    for relation_id, (number, relation_type, arg1, arg2) in relations.items():
        resolved = [triggers.get(argument, argument) for argument in (arg1, arg2)]
        if all(entity_id in entities for entity_id in resolved):
            kept_relations.append(BratRelation(relation_id, relation_type, resolved[0], resolved[1], number))
        else:
            unparseable_relations.append(entry(number, "unknown_argument"))
    not_read = {item["line"] for item in unparseable_entities + unparseable_relations + replaced}
    relation_lines = {relation.line for relation in kept_relations}
    # Everything else the brat reader found is read all the same. A relation it could not resolve because an
    # argument's line was malformed is read here (that line is listed itself).
    malformed = [entry(problem.line, problem.kind) for problem in problems if problem.line not in not_read
                 and not (problem.kind == "unknown_argument" and problem.line in relation_lines)]
    document = BratDocument(doc_id, checked.text, list(entities.values()), relations=kept_relations)

    def in_file_order(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(items, key=lambda item: item["line"])

    return _Prediction(document, in_file_order(malformed), unparseable_entities, in_file_order(unparseable_relations),
                       in_file_order(replaced))


def _brat_spans(document, entity_types: Optional[set[str]]) -> list[tuple[str, int, int]]:
    # Discontinuous spans collapse to the first written start .. the last written end, as the official script reads
    # them.
    return [(entity.type, *official_span(entity)) for entity in document.entities
            if entity_types is None or entity.type in entity_types]


def score_entities(gold_documents: Iterable[Any], pred_documents: Iterable[Any]) -> dict[str, Any]:
    """Strict and lenient entity P/R/F per type and micro/macro/weighted over character spans, without files:
    what :func:`score_brat_folders` computes for each gold/predicted ``.ann`` pair (the same tally, the same fixed
    types, :func:`scored_types`, and ``per_document_macro``), for documents paired by position (a ``None``
    prediction counts as no predicted entities), with ``stray_pred_types`` and ``duplicate_entities`` (exact
    duplicates in a note, counted once: ``{gold, pred}``)."""
    tally, gold_types, duplicates = _Tally(), set(), Counter()
    for gold, pred in zip(gold_documents, pred_documents, strict=True):
        gold_spans, gold_repeats = distinct(_brat_spans(gold, None))
        pred_spans, pred_repeats = distinct(_brat_spans(pred, None) if pred is not None else [])
        duplicates.update(gold=gold_repeats, pred=pred_repeats)
        gold_types.update(span[0] for span in gold_spans)
        tally.add(gold_spans, pred_spans, match_counts)
    types = scored_types(gold_types, N2C2_ENTITY_TYPES)
    return {**tally.summary(types), "stray_pred_types": tally.stray(types),
            "duplicate_entities": {"gold": duplicates["gold"], "pred": duplicates["pred"]}}


def score_brat_folders(
    gold_dir: str | Path,
    pred_dir: str | Path,
    entity_types: Iterable[str] | None = None,
    relation_setting: str = DEFAULT_RELATION_SETTING,
    label_map: dict[str, str | None] | None = None,
    relation_map: dict[str, Any] | None = None,
    per_document: bool = False,
    official: bool = False,
) -> dict[str, Any]:
    """Strict and lenient P/R/F per type, micro, type macro and the official per-document macro over two brat folders.

    ``official``: the semantics of the official script (:data:`SEMANTICS`): a gold note without a prediction file
    is skipped (left out of every count, named in ``missing_predictions``), and every copy of an exact duplicate
    counts. By default (``"semantics": "project"``) such a note counts as all missed and a duplicate once.

    ``per_document``: also each scored gold document's micro ``(tp, fp, fn)``, strict and lenient, in gold file
    order, and its counts for each scored type (``per_document``: ``{"documents": [ids], "entities": {mode: [...]},
    "relations": {mode: [...]} or None, "entities_by_type": {mode: {type: [...]}}, "relations_by_type": ...}``),
    what ``significance.compare_per_document`` takes.

    ``label_map``/``relation_map`` (``label_maps.load_label_map``/``load_relation_map``) read the gold of a corpus
    with types of its own as ``prepare_n2c2.py`` reads it (unmapped types left out); predictions are read as they
    are (a model trained on the mapped data writes the mapped types).

    Every gold ``.ann`` is read and checked; the files are paired by name. A prediction file that cannot be read (not
    UTF-8, unreadable, not a file, a dangling link) counts as no predictions in both semantics: it is skipped with a
    warning and listed (document, line, kind). The text comes from the gold folder's ``.txt`` (else the prediction
    folder's). Spans are read as the official script reads them (:func:`official_span`; of two lines with one id, the
    last); a prediction line with a type and integer offsets is scored whatever else is wrong with it and listed in
    ``malformed_pred_lines``; one that cannot be read counts as one false positive in the micro counts, under no type
    (``unparseable_pred_lines``); a line whose id a later line takes is listed in ``skipped_prediction_lines``.
    Missing folders and a gold file that is missing its text, cannot be read or is malformed raise
    :class:`BratFormatError`. Matching is :func:`match_counts`.

    The per-type rows and the type macro and weighted averages are over :func:`scored_types` (``entity_types``, else
    the nine n2c2 types when the gold uses them, else the gold's types); a predicted type outside them is a false
    positive in micro (as in the official script) and counted in ``stray_pred_types``. ``entity_types`` also filters
    what is scored. ``per_document_macro`` (strict and lenient) is the official script's macro: the mean over the
    scored documents of each one's precision, recall and F1, overall and per scored type.

    Relations (``R`` lines) are scored too when the gold files have any: the report gets a
    ``relations`` section (:func:`score_relations`; ``relation_setting`` only labels it). Without
    gold ``R`` lines there is no such section, whatever the predictions hold. Every relation type
    in the files is read; a system's relation types outside the scored ones are false positives, as for entities. A
    prediction's relation line that cannot be read, or whose argument is not one of its entities, counts as one false
    positive (``relations["unparseable_pred_lines"]``). ``entity_types`` filters the entity scores only: relations
    are scored on every entity they name. A gold relation whose arguments cannot be right (an entity with itself, an
    ``Attribute-Drug`` relation with its arguments reversed or of another type:
    ``brat.INVALID_RELATION_KINDS``) is a :class:`BratFormatError` naming file and line; a
    predicted one is scored (a false positive, as the official script counts it) and listed in
    ``relations["invalid_pred_relations"]``.

    Exact duplicates within a note (same type, start and end) count once on each side, as do
    duplicate relations (``official``: every copy); ``duplicate_entities`` (and ``relations["duplicate_relations"]``)
    say how many copies there were per side, and ``num_gold_entities``/``num_pred_entities`` count what was scored.
    """
    _check_relation_setting(relation_setting)
    gold_dir, pred_dir = Path(gold_dir), Path(pred_dir)
    for flag, folder in (("--gold_brat", gold_dir), ("--pred_brat", pred_dir)):
        if not folder.is_dir():
            reason = "not a folder" if folder.exists() else "no such folder"
            raise BratFormatError(folder, None, f"{reason} ({flag})", "not_a_folder")
    gold_files = sorted(gold_dir.glob("*.ann"))
    if not gold_files:
        raise BratFormatError(gold_dir, None, "no .ann files in the gold folder (--gold_brat)", "empty_folder")
    keep = set(entity_types) if entity_types is not None else None
    entities, relations = _Tally(), _RelationTally(official)
    scored, missing, unreadable, gold_types, num_gold, num_pred = [], [], [], set(), 0, 0
    malformed, unparseable, replaced = [], [], []
    duplicates = Counter()
    for gold_ann in gold_files:
        doc_id = gold_ann.stem
        txt = next((path for path in (gold_ann.with_suffix(".txt"), pred_dir / f"{doc_id}.txt") if path.is_file()),
                   None)
        if txt is None:
            raise BratFormatError(gold_ann, None, f"no matching .txt file (looked for {doc_id}.txt in the gold "
                                                  f"folder, then in the prediction folder)", "missing_txt")
        gold_document = _read_brat(txt, gold_ann, label_map=label_map, relation_map=relation_map)
        pred_ann = pred_dir / f"{doc_id}.ann"
        prediction = None
        if pred_ann.is_symlink() or pred_ann.exists():  # a dangling link is there, just unreadable
            try:
                prediction = _read_prediction(txt, pred_ann)
            except BratFormatError as error:
                # One bad system file must not cost the scoring of the others. str(error) is
                # file:line: reason (no note text); kinds and line numbers go to the report.
                logger.warning("%s; skipped: document %s is scored as no predictions (its gold counts as missed)",
                               error, doc_id)
                unreadable.append({"document": doc_id, "line": error.line, "kind": error.kind})
        else:
            missing.append(doc_id)
            if official:
                continue  # the official script pairs the files by name and skips a note without a prediction file
        scored.append(doc_id)
        gold_spans = _brat_spans(gold_document, keep)
        pred_spans = _brat_spans(prediction.document, keep) if prediction else []
        (distinct_gold, gold_repeats), (distinct_pred, pred_repeats) = distinct(gold_spans), distinct(pred_spans)
        duplicates.update(gold=gold_repeats, pred=pred_repeats)
        if not official:  # the project counts an exact duplicate once, the official script every copy
            gold_spans, pred_spans = distinct_gold, distinct_pred
        gold_types.update(span[0] for span in gold_spans)
        num_gold, num_pred = num_gold + len(gold_spans), num_pred + len(pred_spans)
        if prediction:
            malformed += prediction.malformed
            unparseable += prediction.unparseable_entities
            replaced += prediction.replaced
        entities.add(gold_spans, pred_spans, match_counts, len(prediction.unparseable_entities) if prediction else 0)
        relations.add(gold_document, prediction.document if prediction else None,
                      prediction.unparseable_relations if prediction else ())
    types = scored_types(gold_types, N2C2_ENTITY_TYPES, entity_types)
    stray = entities.stray(types)
    if missing:
        logger.warning("%d gold documents have no prediction file in %s (%s)", len(missing), pred_dir,
                       "skipped, as the official script does" if official else "scored as empty")
    if unreadable:
        logger.warning("%d of %d prediction files could not be read and were skipped (their documents are scored "
                       "as no predictions; listed in the report)", len(unreadable), len(gold_files) - len(missing))
    if malformed:
        logger.warning("%d malformed prediction lines scored as the official script reads them (listed in the report)",
                       len(malformed))
    if unparseable:
        logger.warning("%d prediction lines cannot be read: each counted as one false positive (listed in the report)",
                       len(unparseable))
    if replaced:
        logger.warning("%d prediction lines have an id that a later line takes: the later line is scored (listed in "
                       "the report)", len(replaced))
    if not official and (duplicates["gold"] or duplicates["pred"]):
        logger.warning("exact duplicate entities (same type, start and end in one note) counted once: %d gold, %d "
                       "predicted", duplicates["gold"], duplicates["pred"])
    if stray:
        logger.warning("%d predicted entities have a type that no gold entity has (%s): false positives, not in the "
                       "per-type rows", sum(stray.values()), ", ".join(stray))
    if relations.invalid and relations.num_gold:
        logger.warning("%d predicted relations cannot be right (an entity with itself, arguments reversed or of "
                       "another type): scored as false positives, listed in the report", len(relations.invalid))
    gold_ids = {path.stem for path in gold_files}
    unmatched = sorted(path.stem for path in pred_dir.glob("*.ann") if path.stem not in gold_ids)
    if unmatched:
        logger.warning("%d prediction files have no gold file and are ignored", len(unmatched))
    # Relations only when the gold standard and the predictions both have some: entity-only corpora keep the
    # report they had, and an NER-only system's predictions get no table of zeros.
    relation_section = {"relations": relations.report(relation_setting)} if relations.num_gold and relations.num_pred \
        else {}
    if relations.num_gold and not relations.num_pred:
        relation_section = {"relations_not_scored": f"the prediction files hold no relations (R lines), the gold "
                                                    f"files {relations.num_gold}: an entity-only system"}
    if not relations.num_gold and relations.num_pred:
        logger.warning("the prediction files hold %d relations but the gold files none: relations are not scored",
                       relations.num_pred)
    summary = entities.summary(types)
    semantics = "official" if official else "project"
    missing_note = (f"{len(missing)} of {len(gold_files)} gold notes have no prediction file: "
                    + ("skipped." if official else "all their gold counted as missed."))
    lines_note = (f"Prediction lines: {len(malformed)} malformed, read as the official script reads them (false "
                  f"positives unless they match); {len(unparseable)} unparseable, one false positive each; "
                  f"{len(replaced)} replaced by a later line with the same id (listed in report.json).")
    return {
        "mode": "brat",
        "unit": "character",
        "semantics": semantics,
        "gold_dir": str(gold_dir),
        "pred_dir": str(pred_dir),
        "num_documents": len(scored),
        "num_gold_documents": len(gold_files),
        "num_gold_entities": num_gold,
        "num_pred_entities": num_pred,
        "duplicate_entities": {"gold": duplicates["gold"], "pred": duplicates["pred"]},
        "missing_predictions": missing,
        "num_missing_predictions": len(missing),
        "unmatched_predictions": unmatched,
        "skipped_prediction_files": unreadable,
        # Lines not scored: an earlier line whose id a later line takes.
        "skipped_prediction_lines": replaced,
        # Lines brat does not allow, scored as the official script reads them (a false positive unless they match).
        "malformed_pred_lines": {"by_kind": dict(sorted(Counter(item["kind"] for item in malformed).items())),
                                 "lines": malformed},
        # Lines that cannot be read: one false positive each in the micro counts, under no type.
        "unparseable_pred_lines": {"count": len(unparseable), "lines": unparseable},
        # Predicted entities of a type outside the scored types (per_type): false positives in micro, by type.
        "stray_pred_types": stray,
        **summary,
        **relation_section,
        "notes": [
            f"{SEMANTICS[semantics]} {missing_note}",
            "n2c2-2018 official-style scoring: strict = same type, same start and end; lenient = same type, any "
            "overlap; micro sums counts over all scored documents, stray predicted types and unparseable lines "
            "included. Macro and weighted average over the scored types, the per-type rows (--brat_entity_types, "
            "else the nine n2c2 types when the gold uses them, else the gold's types). per_document_macro is the "
            "official script's macro: the mean over documents of each document's precision, recall and F1 (0 where "
            "there is nothing to divide): strict F1 {:.4f}, lenient F1 {:.4f}.".format(
                summary["strict"]["per_document_macro"]["f1"], summary["lenient"]["per_document_macro"]["f1"]),
            SPAN_NOTE,
            LENIENT_NOTE,
            OFFICIAL_DUPLICATE_NOTE if official else DUPLICATE_NOTE,
            *([lines_note] if malformed or unparseable or replaced else []),
            *(["Predicted entities of a type outside the scored types, false positives in micro and no row of their "
               "own (stray_pred_types): " + ", ".join(f"{name} {count}" for name, count in stray.items()) + "."]
              if stray else []),
        ],
        **({"per_document": {"documents": scored, "entities": entities.micro_by_document(),
                             "relations": relations.per_document if relations.num_gold else None,
                             "entities_by_type": entities.by_type(types),
                             **({"relations_by_type": relations.tally.by_type(relations.types())}
                                if relations.num_gold else {})}}
           if per_document else {}),
    }
