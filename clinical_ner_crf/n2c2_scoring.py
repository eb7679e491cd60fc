"""n2c2 scoring: entities and relations of brat documents scored as the official n2c2-2018 Track 2 script scores them.

Strict (exact spans and type) and lenient (any overlap, same type) micro and macro P/R/F1 for entities
(:func:`score_entities`) and relations (:func:`score_relations`, in the gold-entity or the end-to-end setting), from
documents in memory or from two folders of ``.ann`` files (:func:`score_brat_folders`)."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from .brat import read_brat_document, relation_argument_problem
from .documents import BratFormatError, read_text
from .files import split_lines
from .metrics import summarize_counts
from .tagging import N2C2_ENTITY_TYPES, N2C2_RELATION_TYPES
from .token_metrics import ENTITY_MODES, LENIENT_NOTE, add_counts, distinct, match_counts, pare_down_counts, span_equals

logger = logging.getLogger(__name__)


DUPLICATE_NOTE = (
    "Exact duplicate entities within one note (same type, start and end) are counted once on each side, and their "
    "number is reported (duplicate_entities). The official script counts every copy, so a gold note holding one span "
    "twice scored recall < 1 against itself."
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
    "its Arg2 as entities: same entity type and, strict, the same first start and last end; lenient, any "
    "overlap. Swapped arguments never match. Matching pares down as for entities: predicted relations are "
    "visited in file order and one that matches a gold relation already matched is dropped (neither true nor "
    "false positive). An exact repeat within one note (same type and arguments) is counted once on each side "
    "beforehand (duplicate_relations; the official script counts every copy). Micro sums counts over all documents; "
    "macro and weighted average over relation types."
)

# A relation as the scorer sees it: (relation type, arg1, arg2), each argument (entity type, start, end).
RelationArgument = tuple[str, int, int]
RelationKey = tuple[str, RelationArgument, RelationArgument]


def document_relations(document) -> list[RelationKey]:
    """The relations of a ``documents.BratDocument`` as ``(type, arg1, arg2)``, in file order.

    An argument is its entity's ``(type, start, end)``: first start and last end, so discontinuous
    entities collapse as the official script reads them (and as :func:`match_counts` scores them).
    A document with no relations (CoNLL input), or an object without a ``relations`` attribute, has
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
            arguments.append((entity.type, entity.start, entity.end))
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


class _RelationTally:
    """Relation counts summed document by document (:func:`score_relations`, :func:`score_brat_folders`)."""

    def __init__(self) -> None:
        self.counts = {mode: defaultdict(Counter) for mode, _ in ENTITY_MODES}
        self.num_documents = self.num_gold = self.num_pred = self.unmatched_argument = 0
        self.duplicates = Counter()
        self.invalid: list[dict[str, Any]] = []
        self.per_document: dict[str, list[tuple[int, int, int]]] = {mode: [] for mode, _ in ENTITY_MODES}

    def add(self, gold_document, pred_document=None) -> None:
        """One document; ``pred_document`` None (no prediction file) counts as no predicted relations. Exact
        duplicates count once on each side (:func:`distinct`, counted); a predicted relation whose arguments cannot be
        right (``brat.relation_argument_problem``) is scored, a false positive as in the official script, and
        listed by document, line and kind."""
        gold, gold_repeats = distinct(document_relations(gold_document))
        pred, pred_repeats = distinct(document_relations(pred_document) if pred_document is not None else [])
        self.duplicates.update(gold=gold_repeats, pred=pred_repeats)
        if pred_document is not None and getattr(pred_document, "relations", None):
            entities = {entity.id: entity for entity in pred_document.entities}
            known_types = set(N2C2_ENTITY_TYPES) | {entity.type for entity in pred_document.entities}
            for relation in pred_document.relations:
                problem = relation_argument_problem(relation.id, relation.type, entities[relation.arg1],
                                                    entities[relation.arg2], known_types)
                if problem:
                    self.invalid.append({"document": pred_document.doc_id, "line": relation.line, "kind": problem[0]})
        # Strict entity identity, as the official script compares arguments (type, start, end).
        gold_entities = {(entity.type, entity.start, entity.end) for entity in gold_document.entities}
        self.unmatched_argument += sum(1 for _, arg1, arg2 in pred
                                       if arg1 not in gold_entities or arg2 not in gold_entities)
        self.num_documents += 1
        self.num_gold += len(gold)
        self.num_pred += len(pred)
        for mode, total in self.counts.items():
            document_counts = match_relation_counts(gold, pred, mode)
            add_counts(total, document_counts)
            self.per_document[mode].append(micro_counts(document_counts))

    def report(self, setting: str) -> dict[str, Any]:
        return {
            "setting": setting,
            "setting_title": RELATION_SETTINGS[setting],
            "num_documents": self.num_documents,
            "num_gold_relations": self.num_gold,
            "num_pred_relations": self.num_pred,
            # What separates the settings: on gold entities this is 0 (every argument is a gold entity).
            "pred_relations_with_unmatched_argument": self.unmatched_argument,
            # Exact repeats in a note, counted once (num_*_relations count the distinct ones).
            "duplicate_relations": {"gold": self.duplicates["gold"], "pred": self.duplicates["pred"]},
            # Predicted relations that cannot be right (an entity with itself, arguments reversed or of another type):
            # scored as false positives; listed by document, line and kind (brat.INVALID_RELATION_KINDS).
            "invalid_pred_relations": {"by_kind": dict(sorted(Counter(item["kind"] for item in self.invalid).items())),
                                       "lines": list(self.invalid)},
            **{mode: summarize_counts(total, with_counts=True, order=N2C2_RELATION_TYPES)
               for mode, total in self.counts.items()},
            "notes": [RELATION_NOTE],
        }


def micro_counts(counts_by_type: dict[str, dict[str, int]]) -> tuple[int, int, int]:
    """One document's ``(tp, fp, fn)`` over every type: what ``significance`` compares systems on."""
    return tuple(sum(counts[key] for counts in counts_by_type.values()) for key in ("tp", "fp", "fn"))


def _check_relation_setting(setting: str) -> None:
    if setting not in RELATION_SETTINGS:
        raise ValueError(f"relation setting must be one of {', '.join(RELATION_SETTINGS)}, not {setting!r}")


def score_relations(gold_documents: Iterable[Any], pred_documents: Iterable[Any], *,
                    setting: str = DEFAULT_RELATION_SETTING) -> dict[str, Any]:
    """Strict and lenient relation P/R/F per relation type and micro, n2c2-2018 style, without files.

    ``gold_documents`` and ``pred_documents`` are ``documents.BratDocument`` s (entities and
    ``relations``) paired by position, the same document on both sides (their ``doc_id`` must
    agree); a ``None`` prediction counts as no predicted relations. Matching is
    :func:`match_relation_counts` per document, counts summed over documents. The result is the
    ``relations`` section of the brat report: ``setting`` (:data:`RELATION_SETTINGS`, a label
    only), ``num_documents``, ``num_gold_relations``, ``num_pred_relations``,
    ``pred_relations_with_unmatched_argument`` (predicted relations with an argument that equals no
    gold entity, strict), ``duplicate_relations`` (exact repeats in a note counted once, ``{gold, pred}``;
    the ``num_*`` count distinct relations), ``invalid_pred_relations`` (predicted relations that
    cannot be right, scored as false positives: ``by_kind`` and ``lines``), ``strict`` and ``lenient``
    (``per_type``, ``micro``, ``macro``, ``weighted``, with tp/fp/fn) and ``notes``.
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
               label_map: dict | None = None, relation_map: dict | None = None):
    # read_brat_document accepts only the nine n2c2 types unless told otherwise (entity_types=None
    # means n2c2, not "any"); a system may write other types, which must count as false
    # positives rather than fail, so name every type the file uses. Relation types likewise (an identity
    # relation map: without one the reader accepts only the n2c2 relation types). A gold corpus with types of
    # its own is read through its maps (as prepare_n2c2.py reads it): unmapped types are left out.
    ann_text = _read_ann_text(ann)
    types = None if label_map is not None else sorted(set(N2C2_ENTITY_TYPES) | _ann_types(ann_text))
    if relation_map is None and label_map is None:
        relation_map = {name: name for name in sorted(set(N2C2_RELATION_TYPES) | _ann_types(ann_text, "R"))}
    try:
        # validate_text=False: scoring needs offsets only, and systems may normalise the surface text.
        return read_brat_document(txt, ann, entity_types=types, label_map=label_map, relation_map=relation_map,
                                  validate_text=False, problems=problems, check_relations=check_relations)
    except OSError as error:  # the .txt, or a file that changed since it was first read
        raise _unreadable(ann, error) from None


def _brat_spans(document, entity_types: Optional[set[str]]) -> list[tuple[str, int, int]]:
    # Discontinuous spans collapse to first start .. last end, as the official script reads them.
    return [(entity.type, entity.start, entity.end) for entity in document.entities
            if entity_types is None or entity.type in entity_types]


def score_entities(gold_documents: Iterable[Any], pred_documents: Iterable[Any]) -> dict[str, Any]:
    """Strict and lenient entity P/R/F per type and micro/macro/weighted over character spans, without files:
    what :func:`score_brat_folders` computes for each gold/predicted ``.ann`` pair, for ``documents``
    documents paired by position (a ``None`` prediction counts as no predicted entities), with
    ``duplicate_entities`` (exact duplicates in a note, counted once: ``{gold, pred}``)."""
    totals = {mode: defaultdict(Counter) for mode, _ in ENTITY_MODES}
    duplicates = Counter()
    for gold, pred in zip(gold_documents, pred_documents, strict=True):
        gold_spans, gold_repeats = distinct(_brat_spans(gold, None))
        pred_spans, pred_repeats = distinct(_brat_spans(pred, None) if pred is not None else [])
        duplicates.update(gold=gold_repeats, pred=pred_repeats)
        for mode, total in totals.items():
            add_counts(total, match_counts(gold_spans, pred_spans, mode))
    return {**{mode: summarize_counts(total, with_counts=True) for mode, total in totals.items()},
            "duplicate_entities": {"gold": duplicates["gold"], "pred": duplicates["pred"]}}


def score_brat_folders(
    gold_dir: str | Path,
    pred_dir: str | Path,
    entity_types: Iterable[str] | None = None,
    relation_setting: str = DEFAULT_RELATION_SETTING,
    label_map: dict[str, str | None] | None = None,
    relation_map: dict[str, Any] | None = None,
    per_document: bool = False,
) -> dict[str, Any]:
    """Strict and lenient P/R/F per type and micro over all documents of two brat folders.

    ``per_document``: also each gold document's micro ``(tp, fp, fn)``, strict and lenient, in gold file order
    (``per_document``: ``{"documents": [ids], "entities": {mode: [...]}, "relations": {mode: [...]}}``), what
    ``significance.compare_systems`` takes.

    ``label_map``/``relation_map`` (``label_maps.load_label_map``/``load_relation_map``) read the gold of a corpus
    with types of its own as ``prepare_n2c2.py`` reads it (unmapped types left out); predictions are read as they
    are (a model trained on the mapped data writes the mapped types).

    Every gold ``.ann`` is scored; a missing prediction file counts as no predictions, and so
    does one that cannot be read (not UTF-8, unreadable, not a file, a dangling link): it is
    skipped with a warning and listed (document, line, kind). The text comes from the gold
    folder's ``.txt`` (else the prediction folder's). Every entity type in the files is read,
    so a system's extra types count as false positives in the micro figures, as in the
    official script; pass ``entity_types`` to score only those. Malformed prediction lines
    are skipped and listed (document, line, kind). Missing folders and a gold file that is
    missing its text, cannot be read or is malformed raise :class:`BratFormatError`.
    Matching is :func:`match_counts`.

    Relations (``R`` lines) are scored too when the gold files have any: the report gets a
    ``relations`` section (:func:`score_relations`; ``relation_setting`` only labels it). Without
    gold ``R`` lines there is no such section, whatever the predictions hold. Every relation type
    in the files is read, so a system's extra relation types are false positives, as for entities.
    A prediction's relation whose argument is not one of its entities is a skipped line
    (``unknown_argument``); a missing or unreadable prediction file counts as no predicted
    relations. ``entity_types`` filters the entity scores only: relations are scored on every
    entity they name. A gold relation whose arguments cannot be right (an entity with itself, an
    ``Attribute-Drug`` relation with its arguments reversed or of another type:
    ``brat.INVALID_RELATION_KINDS``) is a :class:`BratFormatError` naming file and line; a
    predicted one is scored (a false positive, as the official script counts it) and listed in
    ``relations["invalid_pred_relations"]``.

    Exact duplicates within a note (same type, start and end) count once on each side, as do
    duplicate relations; ``duplicate_entities`` (and ``relations["duplicate_relations"]``) say how
    many were set aside per side, and ``num_gold_entities``/``num_pred_entities`` count the distinct ones.
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
    totals = {mode: defaultdict(Counter) for mode, _ in ENTITY_MODES}
    entity_counts_by_document: dict[str, list[tuple[int, int, int]]] = {mode: [] for mode in totals}
    relations = _RelationTally()
    missing, skipped, unreadable, num_gold, num_pred = [], [], [], 0, 0
    duplicates = Counter()
    for gold_ann in gold_files:
        doc_id = gold_ann.stem
        txt = next((path for path in (gold_ann.with_suffix(".txt"), pred_dir / f"{doc_id}.txt") if path.is_file()),
                   None)
        if txt is None:
            raise BratFormatError(gold_ann, None, f"no matching .txt file (looked for {doc_id}.txt in the gold "
                                                  f"folder, then in the prediction folder)", "missing_txt")
        gold_document = _read_brat(txt, gold_ann, label_map=label_map, relation_map=relation_map)
        gold_spans, gold_repeats = distinct(_brat_spans(gold_document, keep))
        pred_ann = pred_dir / f"{doc_id}.ann"
        pred_spans, pred_document, pred_repeats = [], None, 0
        if pred_ann.is_symlink() or pred_ann.exists():  # a dangling link is there, just unreadable
            problems: list = []
            try:
                # Predicted relations that cannot be right are scored (false positives), and listed by the tally.
                pred_document = _read_brat(txt, pred_ann, problems, check_relations=False)
                pred_spans, pred_repeats = distinct(_brat_spans(pred_document, keep))
            except BratFormatError as error:
                # One bad system file must not cost the scoring of the others. str(error) is
                # file:line: reason (no note text); kinds and line numbers go to the report.
                logger.warning("%s; skipped: document %s is scored as no predictions (its %d gold entities count "
                               "as false negatives)", error, doc_id, len(gold_spans))
                unreadable.append({"document": doc_id, "line": error.line, "kind": error.kind})
            # Line numbers and kinds only: a problem's message may quote corpus text.
            skipped += [{"document": doc_id, "line": p.line, "kind": p.kind} for p in problems]
        else:
            missing.append(doc_id)
        num_gold, num_pred = num_gold + len(gold_spans), num_pred + len(pred_spans)
        duplicates.update(gold=gold_repeats, pred=pred_repeats)
        for mode, total in totals.items():
            document_counts = match_counts(gold_spans, pred_spans, mode)
            add_counts(total, document_counts)
            entity_counts_by_document[mode].append(micro_counts(document_counts))
        relations.add(gold_document, pred_document)
    if missing:
        logger.warning("%d gold documents have no prediction file in %s (scored as empty)", len(missing), pred_dir)
    if unreadable:
        logger.warning("%d of %d prediction files could not be read and were skipped (their documents are scored "
                       "as no predictions; listed in the report)", len(unreadable), len(gold_files) - len(missing))
    if skipped:
        logger.warning("%d malformed prediction lines skipped (listed in the report)", len(skipped))
    if duplicates["gold"] or duplicates["pred"]:
        logger.warning("exact duplicate entities (same type, start and end in one note) counted once: %d gold, %d "
                       "predicted", duplicates["gold"], duplicates["pred"])
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
    return {
        "mode": "brat",
        "unit": "character",
        "gold_dir": str(gold_dir),
        "pred_dir": str(pred_dir),
        "num_documents": len(gold_files),
        "num_gold_entities": num_gold,
        "num_pred_entities": num_pred,
        "duplicate_entities": {"gold": duplicates["gold"], "pred": duplicates["pred"]},
        "missing_predictions": missing,
        "unmatched_predictions": unmatched,
        "skipped_prediction_files": unreadable,
        "skipped_prediction_lines": skipped,
        **{mode: summarize_counts(total, with_counts=True) for mode, total in totals.items()},
        **relation_section,
        "notes": [
            "n2c2-2018 official-style scoring: strict = same type, same start and end; lenient = same "
            "type, any overlap; discontinuous spans collapse to first start..last end; micro sums "
            "counts over all documents. Macro and weighted here average over types (the official "
            "script's macro averages over documents).",
            LENIENT_NOTE,
            DUPLICATE_NOTE,
        ],
        **({"per_document": {"documents": [path.stem for path in gold_files], "entities": entity_counts_by_document,
                             "relations": relations.per_document if relations.num_gold else None}}
           if per_document else {}),
    }
