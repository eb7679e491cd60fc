#!/usr/bin/env python
"""PHEE events -> n2c2-2018 Track 2 relations (attribute -> drug), for the relation benchmark.

    .venv/bin/python bench/phee_relations.py            # convert once (seconds), print the counts
    .venv/bin/python bench/phee_relations.py --overwrite

PHEE (``../shared/data/phee``, read in place; ``BENCH_DATA_DIR`` moves it) annotates events, not n2c2
relations: each event has a Treatment (with Drug, Dosage, Route, Freq, Duration, Disorder, Time_elapsed and
Combination sub-arguments), an Effect and a Subject. Its brat files hold the entities but almost none of the
event structure (their ``E`` lines name only the trigger), so the structure is taken from the authors' JSON
(``json/{split}.json``, one sentence per line, ``id`` = the brat file stem) and the entities from the brat
files, read exactly as the NER benchmark reads them: ``brat.read_brat_document`` with
``configs/label_maps/phee_to_n2c2.json`` (Drug, Dosage, Route, Freq -> Frequency, Duration,
Treat-Disorder -> Reason, Effect -> ADE).

Relations (Arg1 the attribute, Arg2 the drug, ``tagging.relation_type``), per event:

- each Dosage / Route / Freq / Duration sub-argument of the Treatment -> each Drug of that Treatment
  (``Dosage-Drug``, ``Route-Drug``, ``Frequency-Drug``, ``Duration-Drug``);
- the Treatment's Disorder (brat ``Treat-Disorder``, the indication) -> each Drug (``Reason-Drug``);
- the Effect of an ``Adverse_event`` -> each Drug of its Treatment (``ADE-Drug``). The Effect of a
  ``Potential_therapeutic_event`` is a therapeutic effect, not an adverse one: no relation, counted as
  ``therapeutic_effect`` (the NER label map still makes it an ADE *entity*, as the NER benchmark has it).

An argument is attached to the label-mapped brat entity of the same type and the same fragments (JSON
``start``/``text``); failing that, the same first start and last end (counted as ``matched_by_envelope``).
Brat files may repeat an entity (same type, same fragments, one copy per event): every copy is written, as
the NER benchmark reads them (prepare_n2c2.py keeps one), and relations point to the first copy, so a link
repeated by two events is written once (the second counted as ``duplicate``).

Negated and speculated events are converted like the others (an annotated adverse event, even one the sentence
denies or hedges); the relations they give are counted per type (``relations_in_negated_events``,
``relations_in_speculated_events``) so that a reader can judge.

Every *source argument* (each instance of an attribute-like argument: Treatment sub-arguments other than
Drug, Effects, Subject sub-arguments, Combination sub-events) ends ``mapped`` (it gave at least one new
relation) or unmapped with one reason, so that ``source == mapped + unmapped`` per split:

- ``therapeutic_effect``: the Effect of a Potential_therapeutic_event;
- ``no_n2c2_type``: a sub-argument type the label map does not map (Time_elapsed);
- ``combination_sub_event``: a Combination sub-event (its drugs are the Treatment's drugs already; the few that
  are not are counted as ``combination_drugs_outside_treatment``);
- ``subject_argument``: Subject sub-arguments (Age, Gender, Race, Population, Disorder): no drug relation;
- ``event_without_treatment`` / ``treatment_without_drug``: nothing to link to;
- ``no_matching_entity``: no label-mapped brat entity has the argument's span;
- ``drug_without_matching_entity``: none of the Treatment's drugs has a matching entity;
- ``duplicate``: every relation it gives was already written (the same link annotated in two events).

A JSON sentence without brat files (none in PHEE v1) is counted as ``json_without_brat``, its arguments not.

Output (git-ignored; it holds the sentences): ``bench/cache/phee_relations/{train,dev,test}/`` (``.txt`` and an
``.ann`` with T and R lines, n2c2 types only), written to a hidden sibling folder and moved into place, with
``conversion.json`` beside the splits; and the counts (numbers only) in
``bench/results/relations/phee_conversion.json``. :func:`converted_dir` returns the folder, converting when it
is missing; ``prepare_n2c2.py --train_dir .../train --validation_dir .../dev --test_dir .../test`` reads it
with no label map (the types are n2c2's).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Sequence


sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from clinical_ner_crf.brat import read_brat_document, read_brat_folder, write_brat_entities  # noqa: E402
from clinical_ner_crf.documents import BratDocument  # noqa: E402
from clinical_ner_crf.files import note_file_mode, set_tree_mode, write_folder_atomically  # noqa: E402
from clinical_ner_crf.label_maps import load_label_map  # noqa: E402
from clinical_ner_crf.tagging import DRUG_TYPE, N2C2_RELATION_TYPES, relation_type  # noqa: E402

logger = logging.getLogger("phee_relations")

CONVERTER_VERSION = 1  # bump when the rules change: converted_dir() then converts again
SPLITS = ("train", "dev", "test")
LABEL_MAP_PATH = common.REPO_DIR / "configs" / "label_maps" / "phee_to_n2c2.json"
CONVERTED_DIR = common.CACHE_DIR / "phee_relations"
COUNTS_PATH = common.RESULTS_DIR / "relations" / "phee_conversion.json"
MARKER_FILE = "conversion.json"  # inside the converted folder: written last, says it is complete
RULES = ("per event: Treatment Dosage/Route/Freq/Duration -> each Drug of the Treatment (X-Drug); Treatment "
         "Disorder -> each Drug (Reason-Drug); Adverse_event Effect -> each Drug (ADE-Drug); "
         "Potential_therapeutic_event Effect: no relation (therapeutic_effect)")

ADVERSE_EVENT = "Adverse_event"
THERAPEUTIC_EVENT = "Potential_therapeutic_event"
# JSON sub-argument key of a Treatment -> PHEE brat entity type (before the label map).
TREATMENT_SUB_ARGUMENTS = {"Drug": "Drug", "Dosage": "Dosage", "Route": "Route", "Freq": "Freq",
                           "Duration": "Duration", "Disorder": "Treat-Disorder", "Time_elapsed": "Time_elapsed"}
SPAN_KEYS = ("text", "start", "entity_id")  # an argument's own fields, beside its sub-arguments
UNMAPPED_REASONS = ("therapeutic_effect", "no_n2c2_type", "combination_sub_event", "subject_argument",
                    "event_without_treatment", "treatment_without_drug", "no_matching_entity",
                    "drug_without_matching_entity", "duplicate")


def phee_dir(data_dir: Path | None = None) -> Path:
    return Path(data_dir or common.DATA_DIR) / "phee"


def phee_available(data_dir: Path | None = None) -> bool:
    root = phee_dir(data_dir)
    return all((root / "brat" / split).is_dir() and (root / "json" / f"{split}.json").is_file() for split in SPLITS)


def argument_instances(argument: dict[str, Any] | None) -> list[tuple[str | None, tuple[tuple[int, int], ...]]]:
    """``(entity_id, fragments)`` of each instance of a JSON argument: ``text``/``start`` are lists (one per
    instance) of fragment lists; fragments are sorted ``(start, end)`` character offsets."""
    if not argument:
        return []
    ids = argument.get("entity_id") or []
    instances = []
    for index, (texts, starts) in enumerate(zip(argument.get("text") or [], argument.get("start") or [])):
        fragments = tuple(sorted((int(start), int(start) + len(text)) for start, text in zip(starts, texts)))
        instances.append((ids[index] if index < len(ids) else None, fragments))
    return instances


class EntityIndex:
    """The label-mapped entities of one brat document, found by (type, fragments) or (type, start, end); each
    key gives the first entity (in file order) that has it."""

    def __init__(self, document: BratDocument):
        self.exact: dict[tuple, int] = {}
        self.envelope: dict[tuple, int] = {}
        for index, entity in enumerate(document.entities):
            self.exact.setdefault((entity.type, tuple(sorted(entity.spans))), index)
            self.envelope.setdefault((entity.type, entity.start, entity.end), index)
        self.canonical = [self.exact[(e.type, tuple(sorted(e.spans)))] for e in document.entities]

    def find(self, entity_type: str, fragments: tuple[tuple[int, int], ...], counts: Counter) -> int | None:
        if not fragments:
            return None
        index = self.exact.get((entity_type, fragments))
        if index is None:
            index = self.envelope.get((entity_type, fragments[0][0], max(end for _, end in fragments)))
            if index is not None:
                counts["matched_by_envelope"] += 1
        if len(fragments) > 1:
            counts["discontinuous_arguments"] += 1
        return index


def convert_document(document: BratDocument, record: dict[str, Any], label_map: dict[str, str | None],
                     counts: Counter) -> list[tuple[str, int, int]]:
    """The relations of one sentence as ``(type, attribute index, drug index)`` into ``document.entities``.

    ``counts`` gets, keyed by tuples: ``("argument", source, outcome)`` per source argument (``outcome``
    "mapped" or an unmapped reason), ``("drug", outcome)`` per Drug instance, ``("relation", type)`` per relation
    written, ``("duplicate_relation", type)`` per relation already written, and flat diagnostics.
    """
    index = EntityIndex(document)
    relations: list[tuple[str, int, int]] = []
    seen: set[tuple[str, int, int]] = set()
    events = (record.get("annotations") or [{}])[0].get("events") or []

    def link(source: str, target_type: str | None, instance, drugs: list[int] | None, drug_instances: int,
             event: dict) -> None:
        """One attribute instance -> the event's drugs (``drugs``: entity indices, None without a Treatment;
        ``drug_instances``: how many Drug instances the Treatment has); counts its outcome."""
        if target_type is None:
            counts["argument", source, "no_n2c2_type"] += 1
            return
        if drugs is None:
            counts["argument", source, "event_without_treatment"] += 1
            return
        if not drug_instances:
            counts["argument", source, "treatment_without_drug"] += 1
            return
        attribute = index.find(target_type, instance[1], counts)
        if attribute is None:
            counts["argument", source, "no_matching_entity"] += 1
            return
        if not drugs:
            counts["argument", source, "drug_without_matching_entity"] += 1
            return
        kind = relation_type(target_type)
        new = []
        for drug in drugs:
            key = (kind, index.canonical[attribute], drug)
            if key in seen:
                counts["duplicate_relation", kind] += 1
            else:
                seen.add(key)
                new.append(key)
        if not new:
            counts["argument", source, "duplicate"] += 1
            return
        counts["argument", source, "mapped"] += 1
        relations.extend(new)
        for key in new:
            counts["relation", kind] += 1
            for cue in ("Negated", "Speculated"):
                if (event.get(cue) or {}).get("value") is True:
                    counts[f"relations_in_{cue.lower()}_events", kind] += 1

    for event in events:
        event_type = event.get("event_type")
        counts["event", event_type] += 1
        treatment = event.get("Treatment")
        drugs: list[int] | None = None
        drug_instances = argument_instances((treatment or {}).get("Drug"))
        if treatment is not None:
            drugs = []
            for instance in drug_instances:
                found = index.find(label_map.get("Drug") or DRUG_TYPE, instance[1], counts)
                counts["drug", "matched" if found is not None else "no_matching_entity"] += 1
                if found is not None and index.canonical[found] not in drugs:
                    drugs.append(index.canonical[found])
            for key, argument in treatment.items():
                if key in SPAN_KEYS or key == "Drug":
                    continue
                source = f"Treatment.{key}"
                if key == "Combination":
                    counts["argument", source, "combination_sub_event"] += len(argument)
                    own = {fragments for _, fragments in drug_instances}
                    counts["combination_drugs_outside_treatment"] += sum(
                        fragments not in own for sub_event in argument
                        for _, fragments in argument_instances(sub_event.get("Drug")))
                    continue
                brat_type = TREATMENT_SUB_ARGUMENTS.get(key, key)
                for instance in argument_instances(argument):
                    link(source, label_map.get(brat_type), instance, drugs, len(drug_instances), event)
        for instance in argument_instances(event.get("Effect")):
            source = f"Effect.{event_type}"
            if event_type != ADVERSE_EVENT:
                counts["argument", source, "therapeutic_effect"] += 1
            else:
                link(source, label_map.get("Effect"), instance, drugs, len(drug_instances), event)
        for key, argument in (event.get("Subject") or {}).items():
            if key not in SPAN_KEYS:
                counts["argument", f"Subject.{key}", "subject_argument"] += len(argument_instances(argument))
    return relations


def read_json_records(path: Path) -> dict[str, dict[str, Any]]:
    records = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                records[record["id"]] = record
    return records


def convert_split(split: str, data_dir: Path | None, label_map: dict[str, str | None]
                  ) -> tuple[list[tuple[BratDocument, list[tuple[str, int, int]]]], Counter, dict[str, Any]]:
    """The documents of a split with their relations, the counts, and document-level facts."""
    root = phee_dir(data_dir)
    records = read_json_records(root / "json" / f"{split}.json")
    brat_folder = root / "brat" / split
    counts: Counter = Counter()
    converted = []
    facts = Counter()
    for txt in sorted(brat_folder.glob("*.txt")):
        document = read_brat_document(txt, label_map=label_map)  # what the NER benchmark reads
        record = records.get(document.doc_id)
        facts["documents"] += 1
        drug_spans = {tuple(sorted(e.spans)) for e in document.entities if e.type == DRUG_TYPE}
        facts["multi_drug_documents"] += len(drug_spans) > 1
        keys = Counter((e.type, tuple(sorted(e.spans))) for e in document.entities)
        facts["repeated_entity_copies"] += sum(n - 1 for n in keys.values())
        if record is None:
            facts["documents_without_json"] += 1
            converted.append((document, []))
            continue
        context = record.get("context") or ""
        if document.text[:len(context)] != context or document.text[len(context):].strip():
            facts["documents_text_differs_from_json"] += 1  # the .txt is the JSON context plus a final newline
        events = (record.get("annotations") or [{}])[0].get("events") or []
        facts["is_mult_event_documents"] += bool(record.get("is_mult_event"))
        facts["multi_event_documents"] += len(events) > 1
        relations = convert_document(document, record, label_map, counts)
        facts["documents_with_relations"] += bool(relations)
        linked_drugs = {drug for _, _, drug in relations}
        facts["drug_entities"] += len({i for i, e in enumerate(document.entities) if e.type == DRUG_TYPE})
        facts["drugs_with_relations"] += len(linked_drugs)
        converted.append((document, relations))
    stems = {document.doc_id for document, _ in converted}
    facts["json_without_brat"] = sum(doc_id not in stems for doc_id in records)  # their arguments are not counted
    return converted, counts, dict(facts)


def split_summary(counts: Counter, facts: dict[str, Any]) -> dict[str, Any]:
    """Numbers only: relations per type, source arguments = mapped + unmapped (by reason and by source)."""
    by_source: dict[str, dict[str, Any]] = {}
    unmapped: Counter = Counter()
    mapped = 0
    for key, number in counts.items():
        if key[0] != "argument":
            continue
        _, source, outcome = key
        row = by_source.setdefault(source, {"source": 0, "mapped": 0, "unmapped": {}})
        row["source"] += number
        if outcome == "mapped":
            row["mapped"] += number
            mapped += number
        else:
            row["unmapped"][outcome] = row["unmapped"].get(outcome, 0) + number
            unmapped[outcome] += number
    source_total = sum(row["source"] for row in by_source.values())
    if source_total != mapped + sum(unmapped.values()):
        raise RuntimeError("argument bookkeeping error: source != mapped + unmapped")
    documents = facts.get("documents", 0)

    def share(name: str) -> float:
        return round(facts.get(name, 0) / documents, 4) if documents else 0.0

    relations = {t: counts["relation", t] for t in N2C2_RELATION_TYPES if counts["relation", t]}
    return {
        "documents": documents,
        "relations": relations,
        "relations_total": sum(relations.values()),
        "source_arguments": source_total,
        "mapped_arguments": mapped,
        "unmapped_arguments": sum(unmapped.values()),
        "unmapped_by_reason": {r: unmapped[r] for r in UNMAPPED_REASONS if unmapped[r]},
        "arguments_by_source": dict(sorted(by_source.items())),
        "drug_instances": {"matched": counts["drug", "matched"],
                           "no_matching_entity": counts["drug", "no_matching_entity"]},
        "duplicate_relations": {t: counts["duplicate_relation", t] for t in N2C2_RELATION_TYPES
                                if counts["duplicate_relation", t]},
        "relations_in_negated_events": {t: counts["relations_in_negated_events", t] for t in N2C2_RELATION_TYPES
                                        if counts["relations_in_negated_events", t]},
        "relations_in_speculated_events": {t: counts["relations_in_speculated_events", t] for t in N2C2_RELATION_TYPES
                                           if counts["relations_in_speculated_events", t]},
        "events": {k[1]: n for k, n in counts.items() if k[0] == "event"},
        "arguments_matched_by_envelope": counts["matched_by_envelope"],
        "combination_drugs_outside_treatment": counts["combination_drugs_outside_treatment"],
        "discontinuous_arguments": counts["discontinuous_arguments"],
        "multi_drug_documents": facts.get("multi_drug_documents", 0),
        "multi_drug_share": share("multi_drug_documents"),
        "is_mult_event_documents": facts.get("is_mult_event_documents", 0),
        "is_mult_event_share": share("is_mult_event_documents"),
        "multi_event_documents": facts.get("multi_event_documents", 0),
        "multi_event_share": share("multi_event_documents"),
        **{name: facts.get(name, 0) for name in (
            "documents_with_relations", "drug_entities", "drugs_with_relations", "repeated_entity_copies",
            "documents_without_json", "json_without_brat", "documents_text_differs_from_json")},
    }


def write_split(folder: Path, converted: Sequence[tuple[BratDocument, list[tuple[str, int, int]]]],
                file_mode: int) -> None:
    """``.txt`` as read and ``.ann`` with every label-mapped entity (file order, fragments kept) and the relations."""
    folder.mkdir(parents=True, exist_ok=True)
    for document, relations in converted:
        (folder / f"{document.doc_id}.txt").write_bytes(document.text.encode("utf-8"))
        write_brat_entities(folder / f"{document.doc_id}.ann", [(e.type, e.spans) for e in document.entities],
                            document.text, relations=relations, mode=file_mode)


def check_round_trip(folder: Path, converted: Sequence[tuple[BratDocument, list[tuple[str, int, int]]]]
                     ) -> dict[str, Any]:
    """Read the written split back (no label map: n2c2 types) and compare with what was written."""
    documents, problems = read_brat_folder(folder)
    if problems:
        raise RuntimeError(f"{folder}: {len(problems)} problems reading the converted files back")
    by_id = {document.doc_id: document for document in documents}
    written_relations: Counter = Counter()
    read_relations: Counter = Counter()
    for source, relations in converted:
        back = by_id.get(source.doc_id)
        if back is None or back.text != source.text:
            raise RuntimeError(f"{folder}: document {source.doc_id} did not round-trip")
        if [(e.type, e.spans) for e in back.entities] != [(e.type, e.spans) for e in source.entities]:
            raise RuntimeError(f"{folder}: the entities of {source.doc_id} did not round-trip")
        position = {e.id: i for i, e in enumerate(back.entities)}
        if sorted((r.type, position[r.arg1], position[r.arg2]) for r in back.relations) != sorted(relations):
            raise RuntimeError(f"{folder}: the relations of {source.doc_id} did not round-trip")
        written_relations.update(kind for kind, _, _ in relations)
        read_relations.update(r.type for r in back.relations)
    if written_relations != read_relations or len(documents) != len(converted):
        raise RuntimeError(f"{folder}: relation counts differ after reading back")
    return {"documents": len(documents), "relations": sum(read_relations.values()), "ok": True}


def convert(data_dir: Path | None = None, output_dir: Path = CONVERTED_DIR, counts_path: Path | None = COUNTS_PATH,
            overwrite: bool = False) -> dict[str, Any]:
    """Convert the three splits into ``output_dir`` (atomically, as one folder) and write the counts."""
    if not phee_available(data_dir):
        raise FileNotFoundError(f"PHEE not found under {phee_dir(data_dir)} (brat/ and json/ of train, dev, test)")
    label_map = load_label_map(LABEL_MAP_PATH)
    summary: dict[str, Any] = {
        "converter_version": CONVERTER_VERSION, "source": "PHEE v1 (brat entities + JSON events)",
        "label_map": LABEL_MAP_PATH.name, "rules": RULES,
        "splits": {}, "round_trip": {},
    }
    converted = {}
    for split in SPLITS:
        converted[split], counts, facts = convert_split(split, data_dir, label_map)
        summary["splits"][split] = split_summary(counts, facts)
        logger.info("%s: %d documents, %d relations", split, facts.get("documents", 0),
                    summary["splits"][split]["relations_total"])
    sources = [path for split in SPLITS for path in sorted((phee_dir(data_dir) / "brat" / split).glob("*.txt"))]
    file_mode = note_file_mode(sources)

    def write(tmp_dir: Path) -> None:
        for split in SPLITS:
            write_split(tmp_dir / split, converted[split], file_mode)
            summary["round_trip"][split] = check_round_trip(tmp_dir / split, converted[split])
        (tmp_dir / MARKER_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        set_tree_mode(tmp_dir, file_mode)

    write_folder_atomically(output_dir, overwrite=overwrite, write=write)
    if counts_path is not None:
        common.write_json(counts_path, summary)
    return summary


def converted_dir(data_dir: Path | None = None, output_dir: Path = CONVERTED_DIR,
                  counts_path: Path | None = COUNTS_PATH) -> Path | None:
    """The converted folder (``train/``, ``dev/``, ``test/``), converting it if missing or stale; None (with a
    message) when PHEE is absent."""
    marker = output_dir / MARKER_FILE
    if marker.is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8")).get("converter_version") == CONVERTER_VERSION:
                return output_dir
        except json.JSONDecodeError:
            pass
    if not phee_available(data_dir):
        print(f"[phee_relations] PHEE not found under {phee_dir(data_dir)}: skipped", flush=True)
        return None
    convert(data_dir, output_dir, counts_path, overwrite=True)
    return output_dir


def prepare_args(folder: Path) -> list[str]:
    """``prepare_n2c2.py`` arguments for the converted folder (n2c2 types: no label map; the nine n2c2 types as
    tags, as the NER benchmark's PHEE rows)."""
    return ["--train_dir", str(folder / "train"), "--validation_dir", str(folder / "dev"),
            "--test_dir", str(folder / "test"),
            "--entity_types", "Drug,Reason,Route,Strength,Form,Dosage,Frequency,Duration,ADE"]


def format_counts(summary: dict[str, Any]) -> str:
    lines = []
    for split, row in summary["splits"].items():
        lines.append(f"{split}: {row['documents']} documents, {row['relations_total']} relations "
                     f"{json.dumps(row['relations'])}")
        lines.append(f"  source arguments {row['source_arguments']} = mapped {row['mapped_arguments']} + unmapped "
                     f"{row['unmapped_arguments']} {json.dumps(row['unmapped_by_reason'])}")
        lines.append(f"  multi-drug share {row['multi_drug_share']:.3f}, is_mult_event share "
                     f"{row['is_mult_event_share']:.3f}, >1 event share {row['multi_event_share']:.3f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=None,
                        help="folder holding phee/ (default: BENCH_DATA_DIR or ../shared/data)")
    parser.add_argument("--output_dir", default=str(CONVERTED_DIR))
    parser.add_argument("--counts", default=str(COUNTS_PATH), help="where the counts JSON goes")
    parser.add_argument("--overwrite", action="store_true", help="convert again even if the folder exists")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    data_dir = Path(args.data_dir) if args.data_dir else None
    if not phee_available(data_dir):
        print(f"[phee_relations] PHEE not found under {phee_dir(data_dir)}: nothing to do", flush=True)
        return 0
    output_dir = Path(args.output_dir)
    if (output_dir / MARKER_FILE).is_file() and not args.overwrite:
        print(f"[phee_relations] {output_dir} exists (pass --overwrite to convert again)", flush=True)
        summary = json.loads((output_dir / MARKER_FILE).read_text(encoding="utf-8"))
    else:
        summary = convert(data_dir, output_dir, Path(args.counts), overwrite=True)
    print(format_counts(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
