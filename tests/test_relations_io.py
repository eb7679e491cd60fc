"""Relations (n2c2 ``R`` lines, brat ``E`` events as arguments): read, written back, mapped, checked, and carried
into prepare_n2c2.py's documents/ dataset and stats.json with every source relation kept or counted."""

import json
from collections import Counter
from pathlib import Path

import pytest

from clinical_ner_crf.brat import read_brat_document, read_brat_folder, write_brat_ann, write_brat_entities
from clinical_ner_crf.documents import BratDocument, BratEntity, BratFormatError, BratRelation
from clinical_ner_crf.label_maps import load_label_map, load_relation_map
from clinical_ner_crf.n2c2_scoring import document_relations
from clinical_ner_crf.sentence_examples import document_to_examples, relation_cases
from clinical_ner_crf.tagging import N2C2_LABELS, N2C2_RELATION_TYPES
from conftest import command


p = command("prepare_n2c2")  # the command, called in-process as from its command line

NOTE = "Aspirin 81 mg daily\nfor chest\npain.\n"
ENTITIES = ("T1\tDrug 0 7\tAspirin\nT2\tStrength 8 13\t81 mg\nT3\tFrequency 14 19\tdaily\n"
            "T4\tReason 24 29;30 34\tchest pain\n")


def write_pair(folder: Path, stem: str, text: str, ann: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.txt").write_bytes(text.encode("utf-8"))
    (folder / f"{stem}.ann").write_bytes(ann.encode("utf-8"))
    return folder / f"{stem}.txt"


def triples(doc: BratDocument) -> list[tuple[str, str, str]]:
    return [(r.type, r.arg1, r.arg2) for r in doc.relations]


# ---------------------------------------------------------------------------
# Reading and writing
# ---------------------------------------------------------------------------


def test_r_lines_and_events_as_arguments_are_read(tmp_path):
    ann = ENTITIES + (
        "R1\tStrength-Drug Arg1:T2 Arg2:T1\n"
        "R2\tFrequency-Drug Attribute:T3 Medication:T1\t\n"  # other role names, brat's empty third field
        "E1\tDrug:T1 Theme:T4\n"
        "R3\tReason-Drug Arg1:T4 Arg2:E1\n"  # an event stands for its trigger
        "A1\tNegated E1\n"
    )
    doc = read_brat_document(write_pair(tmp_path, "1", NOTE, ann))
    assert doc.relations == [BratRelation("R1", "Strength-Drug", "T2", "T1", 5),
                             BratRelation("R2", "Frequency-Drug", "T3", "T1", 6),
                             BratRelation("R3", "Reason-Drug", "T4", "T1", 8)]
    assert doc.unmapped_relation_types == Counter() and len(doc.entities) == 4


def test_written_relations_read_back_and_write_back_exactly(tmp_path):
    text = "Senna 8.6 mg and Colace 100 mg PO BID for\nconstipation.\n"
    spans = [(t, text.index(s), text.index(s) + len(s)) for t, s in (
        ("Drug", "Senna"), ("Strength", "8.6 mg"), ("Drug", "Colace"), ("Strength", "100 mg"), ("Route", "PO"),
        ("Frequency", "BID"), ("Reason", "constipation"))]
    relations = [("Strength-Drug", 1, 0), ("Strength-Drug", 3, 2), ("Route-Drug", 4, 0), ("Route-Drug", 4, 2),
                 ("Frequency-Drug", 5, 0), ("Frequency-Drug", 5, 2), ("Reason-Drug", 6, 0), ("Reason-Drug", 6, 2)]
    path = write_brat_ann(tmp_path / "n.ann", spans, text, relations=relations)
    lines = path.read_text().splitlines()
    assert lines[7:] == [f"R{n}\t{t} Arg1:T{i + 1} Arg2:T{j + 1}" for n, (t, i, j) in enumerate(relations, start=1)]
    (tmp_path / "n.txt").write_text(text)
    doc = read_brat_document(tmp_path / "n.txt")
    index = {entity.id: number for number, entity in enumerate(doc.entities)}
    assert [(r.type, index[r.arg1], index[r.arg2]) for r in doc.relations] == relations
    # Read, then written back through the other writer: the same bytes.
    again = write_brat_entities(tmp_path / "again.ann", [(e.type, e.spans) for e in doc.entities], text,
                                relations=[(r.type, index[r.arg1], index[r.arg2]) for r in doc.relations])
    assert again.read_bytes() == path.read_bytes()
    # An event argument is written back as its trigger and reads the same.
    events = tmp_path / "events"
    txt = write_pair(events, "e", NOTE, ENTITIES + "E1\tDrug:T1\nR1\tStrength-Drug Arg1:T2 Arg2:E1\n")
    doc = read_brat_document(txt)
    write_brat_ann(events / "e.ann", [(e.type, e.start, e.end) for e in doc.entities], NOTE,
                   relations=[("Strength-Drug", 1, 0)], overwrite=True)
    assert triples(read_brat_document(txt)) == triples(doc) == [("Strength-Drug", "T2", "T1")]


@pytest.mark.parametrize("relation", [("Strength-Drug", 1, 2), ("Strength-Drug", -1, 0), ("Strength-Drug", 0.0, 1),
                                      ("Strength-Drug", 0), ("Strength Drug", 0, 1), ("", 0, 1)])
def test_the_writer_refuses_bad_relations_and_writes_nothing(tmp_path, relation):
    with pytest.raises(ValueError, match="two indices into the 2 entities"):
        write_brat_ann(tmp_path / "n.ann", [("Drug", 0, 7), ("Strength", 8, 13)], NOTE, relations=[relation])
    assert list(tmp_path.iterdir()) == []


def test_cr_only_and_crlf_files_read_relations_alike(tmp_path):
    """The .ann's line endings (the .txt's change its offsets: see test_prepare_n2c2)."""
    ann = ENTITIES + "R1\tStrength-Drug Arg1:T2 Arg2:T1\nE1\tDrug:T1\nR2\tReason-Drug Arg1:T4 Arg2:E1\n"
    read = {}
    for name, ending in (("lf", "\n"), ("cr", "\r"), ("crlf", "\r\n")):
        doc = read_brat_document(write_pair(tmp_path / name, "1", NOTE, ann.replace("\n", ending)))
        read[name] = [(r.id, r.type, r.arg1, r.arg2, r.line) for r in doc.relations]
    assert read["lf"] == read["cr"] == read["crlf"] == [("R1", "Strength-Drug", "T2", "T1", 5),
                                                         ("R2", "Reason-Drug", "T4", "T1", 7)]


# ---------------------------------------------------------------------------
# Relation maps and bad lines
# ---------------------------------------------------------------------------


def test_relation_map_maps_types_and_counts_the_unmapped(tmp_path):
    text = "Intravenous azithromycin-induced ototoxicity."
    ann = ("T1\tTreatment 12 24\tazithromycin\nT2\tDrug 12 24\tazithromycin\nT3\tEffect 33 44\tototoxicity\n"
           "T4\tAdverse_event 25 32\tinduced\nE1\tAdverse_event:T4\n"
           "R1\thas Arg1:T3 Arg2:T2\nR2\thas_cue Arg1:E1 Arg2:T1\nR3\tis_a Arg1:T2 Arg2:T1\n")
    txt = write_pair(tmp_path, "phee", text, ann)
    label_map = {"Drug": "Drug", "Effect": "ADE"}
    relation_map = tmp_path / "clinical_ner_crf.relations.json"
    relation_map.write_text(json.dumps({"has": "ADE-Drug", "has_cue": None}))
    doc = read_brat_document(txt, label_map=label_map, relation_map=load_relation_map(relation_map))
    assert triples(doc) == [("ADE-Drug", "T3", "T2")]
    # Counted by name and by the source types of their arguments (an event by its trigger's).
    assert doc.unmapped_relation_types == Counter({"has_cue Adverse_event>Treatment": 1, "is_a Drug>Treatment": 1})
    # A label map alone is another scheme: its relations are ignored and counted, as before relations were read.
    doc = read_brat_document(txt, label_map=label_map)
    assert doc.relations == [] and doc.unmapped_relation_types == Counter(
        {"has Effect>Drug": 1, "has_cue Adverse_event>Treatment": 1, "is_a Drug>Treatment": 1})
    # A mapped relation whose argument's type the label map leaves out is counted, never an error nor kept.
    doc = read_brat_document(txt, label_map=label_map, relation_map={"has_cue": "Cue", "has": "ADE-Drug"})
    assert triples(doc) == [("ADE-Drug", "T3", "T2")]
    assert doc.unmapped_relation_types == Counter({"has_cue Adverse_event>Treatment": 1, "is_a Drug>Treatment": 1})


def test_a_modify_style_corpus_is_mapped_by_argument_types(tmp_path):
    """One relation name for every attribute link (MODIFY), told apart by the arguments' types: the rules key on them;
    links no rule maps are counted by (name, Arg1 type, Arg2 type), never kept with a wrong type."""
    text = "Aspirin 81 mg PO daily."
    ann = ("T1\tMedication 0 7\tAspirin\nT2\tDose 8 13\t81 mg\nT3\tAdministration 14 16\tPO\n"
           "T4\tTiming 17 22\tdaily\n"
           "R1\tMODIFY Arg1:T2 Arg2:T1\nR2\tMODIFY Arg1:T3 Arg2:T1\nR3\tMODIFY Arg1:T4 Arg2:T1\n"
           "R4\tMODIFY Arg1:T2 Arg2:T3\n")
    txt = write_pair(tmp_path, "note", text, ann)
    label_map = load_label_map('{"Medication": "Drug", "Dose": "Strength", "Administration": "Route", '
                               '"Timing": "Frequency"}')  # inline JSON, as the help says
    relation_map = load_relation_map('{"MODIFY": {"Dose>Medication": "Strength-Drug", '
                                     '"Administration>Medication": "Route-Drug"}}')
    doc = read_brat_document(txt, label_map=label_map, relation_map=relation_map)
    assert triples(doc) == [("Strength-Drug", "T2", "T1"), ("Route-Drug", "T3", "T1")]
    assert doc.unmapped_relation_types == Counter({"MODIFY Timing>Medication": 1, "MODIFY Dose>Administration": 1})
    for bad in ('{"MODIFY": {"Dose-Medication": "Strength-Drug"}}', '{"MODIFY": 3}', "{not json"):
        with pytest.raises(BratFormatError, match="relation map"):
            load_relation_map(bad)
    with pytest.raises(BratFormatError, match="relation map file not found"):
        load_relation_map(tmp_path / "missing.json")


def test_load_relation_map_errors_are_those_of_a_label_map(tmp_path):
    with pytest.raises(BratFormatError, match="relation map file not found") as info:
        load_relation_map(tmp_path / "missing.json")
    assert info.value.kind == "missing_file"
    (tmp_path / "bad.json").write_text('{\n"has": "ADE-Drug",\n}')
    with pytest.raises(BratFormatError, match="invalid JSON") as info:
        load_relation_map(tmp_path / "bad.json")
    assert info.value.line == 3
    (tmp_path / "list.json").write_text('["has"]')
    with pytest.raises(BratFormatError, match="a relation map must be a JSON object"):
        load_relation_map(tmp_path / "list.json")


@pytest.mark.parametrize("relations, line, kind, fragment", [
    ("R1\tStrength-Drug Arg1:T2 Arg2:T9\n", 5, "unknown_argument", "relation R1: Arg2 T9 is not an entity or event"),
    ("R1\tStrength-Drug Arg1:E7 Arg2:T1\n", 5, "unknown_argument", "relation R1: Arg1 E7 is not an entity or event"),
    ("E1\tDrug:T8\nR1\tStrength-Drug Arg1:T2 Arg2:E1\n", 6, "unknown_argument", "Arg2 T8 (the trigger of event E1)"),
    ("R1\tDose-Drug Arg1:T2 Arg2:T1\n", 5, "unknown_type", "unknown relation type 'Dose-Drug' (expected one of"),
    ("R1\tStrength-Drug Arg1:T2\n", 5, "malformed_line", "malformed R line"),
    ("R1\tStrength-Drug T2 T1\n", 5, "malformed_line", "malformed R line"),
    ("E1\t\n", 5, "malformed_line", "malformed E line"),
    ("R1\tStrength-Drug Arg1:T2 Arg2:T1\nR1\tFrequency-Drug Arg1:T3 Arg2:T1\n", 6, "duplicate_id",
     "duplicate id R1 (first on line 5)"),
])
def test_bad_relation_lines_name_file_line_and_reason(tmp_path, relations, line, kind, fragment):
    txt = write_pair(tmp_path, "101", NOTE, ENTITIES + relations)
    with pytest.raises(BratFormatError) as info:
        read_brat_document(txt)
    error = info.value
    assert error.path == str(tmp_path / "101.ann") and (error.line, error.kind) == (line, kind)
    assert str(error).startswith(f"{tmp_path / '101.ann'}:{line}: ") and fragment in str(error)
    assert "Aspirin" not in str(error) and "81 mg" not in str(error)


def test_skip_invalid_skips_and_counts_bad_relations(tmp_path):
    folder = tmp_path / "notes"
    write_pair(folder, "1", NOTE, ENTITIES + "R1\tStrength-Drug Arg1:T2 Arg2:T1\nR2\tReason-Drug Arg1:T4 Arg2:T9\n"
                                             "R3\tDose-Drug Arg1:T2 Arg2:T1\n")
    # T2 fails validation and is skipped: the relation that needs it is skipped too, and says why.
    write_pair(folder, "2", NOTE, ENTITIES.replace("81 mg", "18 mg") + "R1\tStrength-Drug Arg1:T2 Arg2:T1\n"
                                                                     "R2\tFrequency-Drug Arg1:T3 Arg2:T1\n")
    documents, problems = read_brat_folder(folder, skip_invalid=True)
    assert [triples(doc) for doc in documents] == [[("Strength-Drug", "T2", "T1")], [("Frequency-Drug", "T3", "T1")]]
    assert Counter((Path(e.path).name, e.line, e.kind) for e in problems) == Counter({
        ("1.ann", 6, "unknown_argument"): 1, ("1.ann", 7, "unknown_type"): 1, ("2.ann", 2, "text_mismatch"): 1,
        ("2.ann", 5, "unknown_argument"): 1})
    assert "is an entity that was not read" in str([str(e) for e in problems if e.path.endswith("2.ann")])
    stats = p.main(["--train_dir", str(folder), "--output_dir", str(tmp_path / "out"), "--skip_invalid",
                    "--validation_ratio", "0"])
    assert stats["skipped_invalid"] == {"documents": 0, "annotations": 4, "by_kind": {
        "text_mismatch": 1, "unknown_argument": 2, "unknown_type": 1}}
    assert stats["relations"]["train"]["source"] == {"Strength-Drug": 1, "Frequency-Drug": 1}


# Relations whose arguments cannot be right (issue 25 item 8): (lines after ENTITIES, line, kind, message fragment).
INVALID_RELATIONS = [
    ("R1\tStrength-Drug Arg1:T1 Arg2:T1\n", 5, "self_relation",
     "relation R1: Arg1 and Arg2 are the same entity T1"),
    ("E1\tDrug:T1\nR1\tFrequency-Drug Arg1:E1 Arg2:T1\n", 6, "self_relation",  # an event stands for its trigger
     "relation R1: Arg1 and Arg2 are the same entity T1"),
    ("R1\tStrength-Drug Arg1:T1 Arg2:T2\n", 5, "reversed_relation",
     "relation R1: arguments reversed: Arg1 T1 is the Drug and Arg2 T2 the Strength, but in Strength-Drug Arg1 is "
     "the Strength and Arg2 the Drug; swap them"),
    ("R1\tDosage-Drug Arg1:T3 Arg2:T1\n", 5, "relation_argument_type",
     "relation R1: Arg1 T3 is a Frequency, but Dosage-Drug links a Dosage (Arg1) to a Drug (Arg2)"),
    ("R1\tStrength-Drug Arg1:T2 Arg2:T3\n", 5, "relation_argument_type", "relation R1: Arg2 T3 is a Frequency"),
]


@pytest.mark.parametrize("relations, line, kind, fragment", INVALID_RELATIONS)
def test_relations_that_cannot_be_right_are_errors_naming_file_and_line(tmp_path, relations, line, kind, fragment):
    folder = tmp_path / "notes"
    txt = write_pair(folder, "101", NOTE, ENTITIES + "R9\tReason-Drug Arg1:T4 Arg2:T1\n" + relations)
    line += 1  # after the good relation
    with pytest.raises(BratFormatError) as info:
        read_brat_document(txt)
    error = info.value
    assert error.path == str(folder / "101.ann") and (error.line, error.kind) == (line, kind)
    assert str(error).startswith(f"{folder / '101.ann'}:{line}: ") and fragment in str(error)
    assert "\n" not in str(error) and "Aspirin" not in str(error) and "81 mg" not in str(error)
    # prepare_n2c2.py stops on it, with the same one line (exit status 1 through command_line.run_main).
    with pytest.raises(BratFormatError) as info:
        p.main(["--train_dir", str(folder), "--output_dir", str(tmp_path / "out"), "--validation_ratio", "0"])
    assert (info.value.path, info.value.line, info.value.kind) == (str(folder / "101.ann"), line, kind)
    assert not (tmp_path / "out" / "stats.json").exists()


def test_relations_that_cannot_be_right_are_counted_drops_with_skip_invalid(tmp_path):
    folder = tmp_path / "notes"
    for number, (relations, _, _, _) in enumerate(INVALID_RELATIONS, start=1):
        write_pair(folder, str(number), NOTE, ENTITIES + "R9\tReason-Drug Arg1:T4 Arg2:T1\n" + relations)
    documents, problems = read_brat_folder(folder, skip_invalid=True)
    assert [triples(doc) for doc in documents] == [[("Reason-Drug", "T4", "T1")]] * len(INVALID_RELATIONS)
    assert [(Path(e.path).name, e.line, e.kind, e.skipped) for e in problems] == [
        (f"{number}.ann", line + 1, kind, "annotation")
        for number, (_, line, kind, _) in enumerate(INVALID_RELATIONS, start=1)]
    stats = p.main(["--train_dir", str(folder), "--output_dir", str(tmp_path / "out"), "--skip_invalid",
                    "--validation_ratio", "0"])
    assert stats["skipped_invalid"] == {"documents": 0, "annotations": 5, "by_kind": {
        "relation_argument_type": 2, "reversed_relation": 1, "self_relation": 2}}
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["skipped_invalid"] == stats["skipped_invalid"]
    # Only the good relations reach the dataset: never a skipped one, and each source relation is kept or counted.
    assert stats["relations"]["train"]["source"] == stats["relations"]["train"]["kept"] == {"Reason-Drug": 5}


def test_argument_types_are_checked_only_where_the_relation_type_names_them(tmp_path):
    text = "Intravenous azithromycin-induced ototoxicity."
    ann = ("T1\tDrug 12 24\tazithromycin\nT2\tEffect 33 44\tototoxicity\nT3\tTreatment 0 24\tIntravenous azithromycin\n"
           "R1\thas Arg1:T2 Arg2:T1\nR2\tgives Arg1:T1 Arg2:T2\nR3\ttreats Arg1:T3 Arg2:T1\n")
    txt = write_pair(tmp_path, "phee", text, ann)
    label_map = {"Drug": "Drug", "Effect": "ADE", "Treatment": "Treatment"}
    # A name without the n2c2 shape, and an n2c2-shaped name whose attribute type the corpus lacks (Dose): not judged
    # (Dose-Drug's Arg1 is a Drug here). Treatment-Drug names two types of the corpus: judged, and right.
    doc = read_brat_document(txt, label_map=label_map,
                             relation_map={"has": "causes", "gives": "Dose-Drug", "treats": "Treatment-Drug"})
    assert triples(doc) == [("causes", "T2", "T1"), ("Dose-Drug", "T1", "T2"), ("Treatment-Drug", "T3", "T1")]
    # Mapped to an n2c2 name, the mapped type decides: "gives" maps to ADE-Drug with the drug as Arg1.
    with pytest.raises(BratFormatError) as info:
        read_brat_document(txt, label_map=label_map, relation_map={"has": "ADE-Drug", "gives": "ADE-Drug"})
    assert (info.value.line, info.value.kind) == (5, "reversed_relation")
    doc = read_brat_document(txt, label_map=label_map, relation_map={"has": "ADE-Drug"})
    assert triples(doc) == [("ADE-Drug", "T2", "T1")]


def test_relations_whose_arguments_merge_into_one_entity_are_dropped_and_counted():
    # Another scheme's relation between two exact duplicates: after the duplicates merge, it would link T1 to itself.
    text = "Aspirin 81 mg."
    doc = doc_with(text, [("T1", "Drug", "Aspirin"), ("T2", "Drug", "Aspirin")], [("same_as", "T2", "T1")])
    _, _, kept = document_to_examples(doc, N2C2_LABELS, return_entities=True)
    relations, counts = document_relations(doc, kept)
    assert relations == []
    assert counts == Counter({("source", "same_as"): 1, ("self_relation", "same_as"): 1})


# ---------------------------------------------------------------------------
# prepare_n2c2.py: kept entities, kept relations, the documents dataset and the bookkeeping
# ---------------------------------------------------------------------------


def doc_with(text, entities, relations=()):
    """entities: (id, type, surface); relations: (type, arg1, arg2)."""
    return BratDocument("d1", text, [BratEntity(i, t, ((text.index(s), text.index(s) + len(s)),), s, n)
                                     for n, (i, t, s) in enumerate(entities, start=1)],
                        relations=[BratRelation(f"R{n}", *r, n) for n, r in enumerate(relations, start=1)])


def test_document_to_examples_reports_the_kept_entities_with_final_spans():
    text = "Digoxin toxicity after aspirin 81mg daily."
    doc = doc_with(text, [("T1", "ADE", "Digoxin toxicity"), ("T2", "Drug", "Digoxin"), ("T3", "Drug", "aspirin"),
                          ("T4", "Strength", "81"), ("T5", "Drug", "aspirin"), ("T6", "Frequency", "daily")])
    rows, counts = document_to_examples(doc, N2C2_LABELS)  # the two-value form is unchanged
    again, counts_again, kept = document_to_examples(doc, N2C2_LABELS, return_entities=True)
    assert again == rows and counts_again == counts
    at = text.index
    assert kept == {
        "T1": {"id": "T1", "type": "ADE", "start": 0, "end": 16},
        "T3": {"id": "T3", "type": "Drug", "start": at("aspirin"), "end": at("aspirin") + 7},
        "T4": {"id": "T4", "type": "Strength", "start": at("81mg"), "end": at("81mg") + 4},  # expanded to the word
        "T6": {"id": "T6", "type": "Frequency", "start": at("daily"), "end": at("daily") + 5},
        "T5": {"id": "T3", "type": "Drug", "start": at("aspirin"), "end": at("aspirin") + 7},  # a duplicate of T3
    }
    assert "T2" not in kept and counts["dropped_overlap", "Drug"] == 1 and counts["dropped_duplicate", "Drug"] == 1


def test_document_relations_keep_or_count_every_relation():
    text = "Digoxin toxicity after aspirin 81mg daily."
    doc = doc_with(text, [("T1", "ADE", "Digoxin toxicity"), ("T2", "Drug", "Digoxin"), ("T3", "Drug", "aspirin"),
                          ("T4", "Strength", "81"), ("T5", "Drug", "aspirin"), ("T6", "Frequency", "daily")],
                   [("ADE-Drug", "T1", "T2"), ("Strength-Drug", "T4", "T3"), ("Frequency-Drug", "T6", "T5"),
                    ("Frequency-Drug", "T6", "T3"), ("Strength-Drug", "T4", "T7")])
    _, _, kept = document_to_examples(doc, N2C2_LABELS, return_entities=True)
    relations, counts = document_relations(doc, kept)
    assert relations == [{"type": "Strength-Drug", "arg1": "T4", "arg2": "T3"},
                         {"type": "Frequency-Drug", "arg1": "T6", "arg2": "T3"}]  # T5 is T3's duplicate
    assert counts == Counter({("source", "Strength-Drug"): 2, ("source", "Frequency-Drug"): 2,
                              ("source", "ADE-Drug"): 1, ("kept", "Strength-Drug"): 1, ("kept", "Frequency-Drug"): 1,
                              ("argument_dropped", "ADE-Drug"): 1, ("duplicate", "Frequency-Drug"): 1,
                              ("argument_missing", "Strength-Drug"): 1})


def test_relation_cases_are_counted():
    text = "1. Senna 8.6 mg and Colace 100 mg PO BID\nShe developed a rash. This was attributed to Keflex.\nAspirin.\n"
    doc = doc_with(text, [("T1", "Drug", "Senna"), ("T2", "Strength", "8.6 mg"), ("T3", "Drug", "Colace"),
                          ("T4", "Strength", "100 mg"), ("T5", "Frequency", "BID"), ("T6", "ADE", "rash"),
                          ("T7", "Drug", "Keflex"), ("T8", "Drug", "Aspirin")],
                   [("Strength-Drug", "T2", "T1"), ("Strength-Drug", "T4", "T3"), ("Frequency-Drug", "T5", "T1"),
                    ("Frequency-Drug", "T5", "T3"), ("ADE-Drug", "T6", "T7")])
    rows, _, kept = document_to_examples(doc, N2C2_LABELS, return_entities=True)
    relations, _ = document_relations(doc, kept)
    cases = relation_cases(text, list(kept.values()), relations, rows)
    assert cases == Counter({("across_sentences", "ADE-Drug"): 1, ("shared_attributes", "Frequency-Drug"): 1,
                             ("drugs_without_attributes", None): 1, ("lines_with_several_drugs", None): 1})


CORPUS = [
    ("Digoxin toxicity was noted. Aspirin 81 mg daily.\nHe developed a rash.\nKeflex was stopped.\n",
     [("T1", "ADE", "Digoxin toxicity"), ("T2", "Drug", "Digoxin"), ("T3", "Drug", "Aspirin"),
      ("T4", "Strength", "81 mg"), ("T5", "Frequency", "daily"), ("T6", "ADE", "rash"), ("T7", "Drug", "Keflex")],
     [("ADE-Drug", "T1", "T2"), ("Strength-Drug", "T4", "T3"), ("Frequency-Drug", "T5", "T3"),
      ("ADE-Drug", "T6", "T7")]),
    ("Exam: benign.\nNo acute distress.\nLasix 40 mg PO.\n",
     [("T1", "Drug", "Lasix"), ("T2", "Strength", "40 mg"), ("T3", "Route", "PO")],
     [("Strength-Drug", "T2", "T1"), ("Route-Drug", "T3", "T1")]),
]


@pytest.fixture(scope="module")
def relation_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("relations")
    for split, copies in (("train", 3), ("test", 1)):
        for copy in range(copies):
            for index, (text, entities, relations) in enumerate(CORPUS):
                text += " " * (1 + copy + 10 * (split == "test"))  # distinct notes, the same words
                ann = "".join(f"T{i[1:]}\t{t} {text.index(s)} {text.index(s) + len(s)}\t{s}\n" for i, t, s in entities)
                ann += "".join(f"R{n}\t{t} Arg1:{a} Arg2:{b}\n" for n, (t, a, b) in enumerate(relations, start=1))
                write_pair(root / split, f"{copy}{index}", text, ann)
    output_dir = root / "data"
    stats = p.main(["--train_dir", str(root / "train"), "--test_dir", str(root / "test"), "--output_dir",
                    str(output_dir), "--validation_ratio", "0"])
    return output_dir, stats


def test_the_documents_dataset_holds_kept_entities_and_relations(relation_build):
    from datasets import Dataset

    output_dir, _ = relation_build
    documents = Dataset.load_from_disk(str(output_dir / "documents"))
    assert documents.column_names == ["document_id", "split", "text", "entities", "relations"]
    assert documents.features["entities"].feature["start"].dtype == "int32"
    row = next(row for row in documents if row["document_id"] == "00" and row["split"] == "test")
    text = row["text"]
    assert [(e["id"], e["type"], text[e["start"]:e["end"]]) for e in row["entities"]] == [
        ("T1", "ADE", "Digoxin toxicity"), ("T3", "Drug", "Aspirin"), ("T4", "Strength", "81 mg"),
        ("T5", "Frequency", "daily"), ("T6", "ADE", "rash"), ("T7", "Drug", "Keflex")]  # T2 lost to the overlap policy
    assert row["relations"] == [{"type": "Strength-Drug", "arg1": "T4", "arg2": "T3"},
                                {"type": "Frequency-Drug", "arg1": "T5", "arg2": "T3"},
                                {"type": "ADE-Drug", "arg1": "T6", "arg2": "T7"}]
    assert Counter(documents["split"]) == Counter({"train": 6, "test": 2})


def test_stats_account_for_every_relation(relation_build, capsys):
    output_dir, stats = relation_build
    assert json.loads((output_dir / "stats.json").read_text())["relations"] == stats["relations"]
    assert stats["relations"]["test"] == {
        "source": {"Strength-Drug": 2, "Route-Drug": 1, "Frequency-Drug": 1, "ADE-Drug": 2},
        "kept": {"Strength-Drug": 2, "Route-Drug": 1, "Frequency-Drug": 1, "ADE-Drug": 1},
        "dropped": {"argument_dropped": {"ADE-Drug": 1}, "argument_missing": {}, "duplicate": {}, "self_relation": {}},
        "cases": {"across_sentences": {"ADE-Drug": 1}, "shared_attributes": {}, "beyond_candidates": {},
                  "drugs_without_attributes": 0, "lines_with_several_drugs": 0},
    }
    for split_stats in stats["relations"].values():  # source == kept + dropped per type
        for relation_type, source in split_stats["source"].items():
            dropped = sum(by_type.get(relation_type, 0) for by_type in split_stats["dropped"].values())
            assert split_stats["kept"].get(relation_type, 0) + dropped == source
            assert relation_type in N2C2_RELATION_TYPES
    assert stats["relations"]["train"]["dropped"]["argument_dropped"] == {"ADE-Drug": 3}
    assert stats["unmapped_relation_types"] == {"train": {}, "validation": {}, "test": {}}
    assert stats["input"]["relation_map"] is None
    p.main(["--train_dir", str(output_dir.parent / "train"), "--output_dir", str(output_dir.parent / "again"),
            "--validation_ratio", "0"])
    assert "relations: 18 read, 15 kept, dropped: argument_dropped 3\n" in capsys.readouterr().out


def test_the_relation_map_option(relation_build, tmp_path):
    output_dir, _ = relation_build
    relation_map = tmp_path / "map.json"
    relation_map.write_text(json.dumps({"Strength-Drug": "Strength-Drug", "ADE-Drug": None}))
    stats = p.main(["--train_dir", str(output_dir.parent / "train"), "--output_dir", str(tmp_path / "out"),
                    "--validation_ratio", "0", "--relation_map", str(relation_map)])
    assert stats["input"]["relation_map"] == str(relation_map)
    assert stats["relations"]["train"]["source"] == stats["relations"]["train"]["kept"] == {"Strength-Drug": 6}
    assert stats["unmapped_relation_types"]["train"] == {"ADE-Drug ADE>Drug": 6, "Frequency-Drug Frequency>Drug": 3,
                                                         "Route-Drug Route>Drug": 3}
    with pytest.raises(ValueError, match="--relation_map"):
        p.main(["--synthetic", "6", "--output_dir", str(tmp_path / "s"), "--relation_map", str(relation_map)])


def test_a_users_corpus_with_its_own_names_mapped_written_as_brat_and_scored(tmp_path):
    """A MODIFY-style corpus: mapped by argument types, the mapped gold written with --write_brat, then scored end to
    end against the corpus itself read through the same (inline) maps."""
    evaluate = command("evaluate_ablations").main

    corpus = tmp_path / "corpus"
    text = "Aspirin 81 mg PO daily. Heparin 5000 units SC q8h."
    ann = ("T1\tMedication 0 7\tAspirin\nT2\tDose 8 13\t81 mg\nT3\tAdministration 14 16\tPO\nT4\tTiming 17 22\tdaily\n"
           "T5\tMedication 24 31\tHeparin\nT6\tDose 32 42\t5000 units\nT7\tAdministration 43 45\tSC\n"
           "T8\tNote 46 50\tq8h.\n"
           "R1\tMODIFY Arg1:T2 Arg2:T1\nR2\tMODIFY Arg1:T3 Arg2:T1\nR3\tMODIFY Arg1:T4 Arg2:T1\n"
           "R4\tMODIFY Arg1:T6 Arg2:T5\nR5\tMODIFY Arg1:T7 Arg2:T5\nR6\tMODIFY Arg1:T8 Arg2:T5\n")
    for name in ("a", "b", "c", "d"):
        write_pair(corpus, name, text, ann)
    label_map = ('{"Medication": "Drug", "Dose": "Strength", "Administration": "Route", "Timing": "Frequency", '
                 '"Note": null}')
    relation_map = ('{"MODIFY": {"Dose>Medication": "Strength-Drug", "Administration>Medication": "Route-Drug", '
                    '"Timing>Medication": "Frequency-Drug"}}')
    stats = p.main(["--train_dir", str(corpus), "--output_dir", str(tmp_path / "data"), "--validation_ratio", "0.25",
                    "--label_map", label_map, "--relation_map", relation_map, "--write_brat", str(tmp_path / "gold")])
    kept = sum(sum(split["kept"].values()) for split in stats["relations"].values())
    unmapped = sum((Counter(split) for split in stats["unmapped_relation_types"].values()), Counter())
    assert kept == 4 * 5 and unmapped == Counter({"MODIFY Note>Medication": 4})
    assert sorted(path.name for path in (tmp_path / "gold").iterdir() if not path.name.startswith(".")) == [
        "train", "validation"]
    written = (tmp_path / "gold" / "train" / "a.ann").read_text() if (tmp_path / "gold" / "train" / "a.ann").exists() \
        else (tmp_path / "gold" / "validation" / "a.ann").read_text()
    assert "Medication" not in written and "MODIFY" not in written and "\tFrequency-Drug " in written
    # The mapped gold, scored against the corpus read through the same maps: everything matches.
    report = evaluate(["--gold_brat", str(corpus), "--pred_brat", str(tmp_path / "gold" / "train"),
                       "--label_map", label_map, "--relation_map", relation_map, "--output_dir", str(tmp_path / "r")])
    train_notes = len(list((tmp_path / "gold" / "train").glob("*.ann")))
    assert report["strict"]["micro"]["tp"] == 7 * train_notes and report["strict"]["micro"]["fp"] == 0
    assert report["relations"]["strict"]["micro"]["tp"] == 5 * train_notes
    assert report["relations"]["strict"]["micro"]["fp"] == 0
    assert len(report["missing_predictions"]) == 4 - train_notes  # the validation notes were written apart
