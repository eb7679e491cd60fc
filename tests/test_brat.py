"""clinical_ner_crf/brat.py: brat pairs read with every line checked (file, line, reason) and written exact to the character."""

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from clinical_ner_crf import documents
from clinical_ner_crf.brat import read_brat_document, read_brat_folder, write_brat_ann, write_brat_entities
from clinical_ner_crf.documents import BratDocument, BratEntity, BratFormatError, BratRelation
from clinical_ner_crf.label_maps import load_label_map, load_relation_map
from clinical_ner_crf.sentence_examples import document_to_examples
from clinical_ner_crf.tagging import N2C2_LABELS, bio_to_char_spans


def test_reads_contiguous_and_discontinuous_spans_and_relations_and_ignores_other_lines(tmp_path):
    ann = (
        "T1\tDrug 0 7\tAspirin\n"
        "T2\tStrength 8 13\t81 mg\n"
        "T3\tReason 24 29;30 34\tchest pain\n"
        "R1\tReason-Drug Arg1:T3 Arg2:T1\n"
        "E1\tDrug:T1\n"
        "A1\tNegated E1\n"
        "N1\tReference T1 RxNorm:1191\taspirin\n"
        "#1\tAnnotatorNotes T1\tcomment\n"
        "*\tEquiv T1 T2\n"
        "\n"
    )
    txt = write_pair(tmp_path, "101", NOTE, ann)
    doc = read_brat_document(txt)
    assert doc.doc_id == "101" and doc.text == NOTE
    assert [(e.id, e.type, e.spans, e.line) for e in doc.entities] == [
        ("T1", "Drug", ((0, 7),), 1), ("T2", "Strength", ((8, 13),), 2), ("T3", "Reason", ((24, 29), (30, 34)), 3)]
    reason = doc.entities[2]
    assert reason.is_discontinuous and (reason.start, reason.end) == (24, 34) and reason.text == "chest pain"
    assert doc.relations == [documents.BratRelation("R1", "Reason-Drug", "T3", "T1", 4)]  # E1 is read, not kept


def test_out_of_order_fragments_span_first_start_to_last_end():
    entity = BratEntity("T1", "ADE", ((45, 57), (0, 8)), "exacerbation Myotonia", 1)
    assert (entity.start, entity.end) == (0, 57)


def test_crlf_text_keeps_raw_character_offsets(tmp_path):
    text = "Meds:\r\n1. Lasix 40 mg PO daily\r\n2. Aspirin 81 mg\r\n"
    lasix, aspirin = text.index("Lasix"), text.index("Aspirin")
    ann = ann_line(1, "Drug", text, lasix, lasix + 5) + ann_line(2, "Drug", text, aspirin, aspirin + 7)
    folder = tmp_path / "crlf"
    folder.mkdir()
    (folder / "n.txt").write_bytes(text.encode())
    (folder / "n.ann").write_text(ann)
    doc = read_brat_document(folder / "n.txt")
    assert doc.text == text  # no newline translation
    rows, _ = document_to_examples(doc, N2C2_LABELS)
    assert [row["tokens"] for row in rows][1][:3] == ["1", ".", "Lasix"]
    spans = [span for row in rows for span in bio_to_char_spans(row["ner_tags"], row["token_starts"], row["token_ends"])]
    assert spans == [("Drug", lasix, lasix + 5), ("Drug", aspirin, aspirin + 7)]


def test_label_map_maps_types_and_counts_the_unmapped(tmp_path):
    text = "Intravenous azithromycin-induced ototoxicity."
    ann = (entity_line(1, "Treatment", text, "azithromycin") + entity_line(2, "Drug", text, "azithromycin")
           + entity_line(3, "Effect", text, "ototoxicity") + entity_line(4, "Adverse_event", text, "induced"))
    txt = write_pair(tmp_path, "phee", text, ann)
    doc = read_brat_document(txt, label_map={"Drug": "Drug", "Effect": "ADE", "Treatment": None})
    assert [(e.type, e.text) for e in doc.entities] == [("Drug", "azithromycin"), ("ADE", "ototoxicity")]
    assert doc.unmapped_types == Counter({"Treatment": 1, "Adverse_event": 1})


def test_entity_types_override_and_validate_text_off(tmp_path):
    text = "BRCA1 mutation"
    txt = write_pair(tmp_path, "g", text, "T1\tGene 0 5\tBRCA-1\n")
    with pytest.raises(BratFormatError, match="does not match"):
        read_brat_document(txt, entity_types=["Gene"])
    doc = read_brat_document(txt, entity_types=["Gene"], validate_text=False)
    assert [(e.type, e.spans) for e in doc.entities] == [("Gene", ((0, 5),))]


def test_ann_without_txt_and_txt_without_ann(tmp_path):
    write_pair(tmp_path / "a", "1", NOTE, "T1\tDrug 0 7\tAspirin\n")
    (tmp_path / "a" / "2.ann").write_text("T1\tDrug 0 7\tAspirin\n")
    with pytest.raises(BratFormatError) as info:
        read_brat_folder(tmp_path / "a")
    assert info.value.path.endswith("2.ann") and info.value.kind == "missing_txt" and "2.txt" in str(info.value)

    write_pair(tmp_path / "b", "1", NOTE, "T1\tDrug 0 7\tAspirin\n")
    (tmp_path / "b" / "3.txt").write_text("text")
    with pytest.raises(BratFormatError) as info:
        read_brat_folder(tmp_path / "b")
    assert info.value.path.endswith("3.txt") and info.value.kind == "missing_ann" and "3.ann" in str(info.value)
    documents, _ = read_brat_folder(tmp_path / "b", require_ann=False)
    assert [d.doc_id for d in documents] == ["1", "3"] and documents[1].entities == []


@pytest.mark.parametrize(
    "ann, line, kind, fragment",
    [
        ("T1\tDrug 0 7\tAspirin\nT2\tDrug 30 99\tpain\n", 2, "offsets_out_of_range", "outside the text"),
        ("T1\tDrug 0 7\tAspirn\n", 1, "text_mismatch", "span text <6 characters, sha256 "),
        ("T1\tReason 24 29;30 34\tchest pian\n", 1, "text_mismatch", "at 24-29;30-34"),
        ("T1\tDrug 0\tAspirin\n", 1, "malformed_line", "malformed T line"),
        ("T1 Drug 0 7 Aspirin\n", 1, "malformed_line", "malformed T line"),
        ("T1\tDrug x 7\tAspirin\n", 1, "malformed_line", "malformed T line"),
        ("T1\tDrug 0 7\n", 1, "malformed_line", "malformed T line"),
        ("T1\tDrug 7 0\tAspirin\n", 1, "malformed_line", "empty or reversed span"),
        ("\nX1\tsomething\n", 2, "malformed_line", "expected an annotation id"),
        ("T1\tDrug 0 7\tAspirin\nT1\tStrength 8 13\t81 mg\n", 2, "duplicate_id", "duplicate id T1 (first on line 1)"),
        ("T1\tMedication 0 7\tAspirin\n", 1, "unknown_type", "unknown entity type 'Medication'"),
    ],
)
def test_bad_ann_lines_name_file_line_and_reason(tmp_path, ann, line, kind, fragment):
    txt = write_pair(tmp_path, "101", NOTE, ann)
    with pytest.raises(BratFormatError) as info:
        read_brat_document(txt)
    error = info.value
    assert error.path == str(tmp_path / "101.ann") and error.line == line and error.kind == kind
    assert str(error).startswith(f"{tmp_path / '101.ann'}:{line}: ") and fragment in str(error)


def test_line_endings_cr_lf_and_crlf_read_alike(tmp_path):
    ann = "T1\tDrug 0 7\tAspirin\nT2\tStrength 8 13\t81 mg\n"
    entities = []
    for name, ending in (("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "1.txt").write_text(NOTE, encoding="utf-8")
        (folder / "1.ann").write_bytes(ann.replace("\n", ending).encode("utf-8"))
        entities.append([(e.id, e.type, e.spans) for e in read_brat_document(folder / "1.txt").entities])
    assert entities[0] == entities[1] == entities[2] and len(entities[0]) == 2


def test_folder_entries_are_each_read_or_reported(tmp_path, caplog):
    folder = tmp_path / "notes"
    write_pair(folder, "a", NOTE, "T1\tDrug 0 7\tAspirin\n")
    (folder / "B.TXT").write_text(NOTE, encoding="utf-8")  # upper-case suffixes pair up too
    (folder / "B.ANN").write_text("T1\tDrug 0 7\tAspirin\n", encoding="utf-8")
    (folder / ".c.txt").write_text(NOTE, encoding="utf-8")  # hidden: counted, not read
    (folder / "readme.md").write_text("not a note")
    (folder / "sub.txt").mkdir()
    (folder / "gone.txt").symlink_to(folder / "missing")
    outside = tmp_path / "elsewhere"
    write_pair(outside, "d", NOTE, "T1\tDrug 0 7\tAspirin\n")
    (folder / "d.txt").symlink_to(outside / "d.txt")
    (folder / "d.ann").symlink_to(outside / "d.ann")
    with pytest.raises(BratFormatError) as info:
        read_brat_folder(folder)
    assert info.value.kind in ("dangling_link", "not_a_file")
    caplog.set_level("INFO", logger="clinical_ner_crf.brat")  # whatever an earlier command set it to
    documents, problems = read_brat_folder(folder, skip_invalid=True)
    assert sorted(d.doc_id for d in documents) == ["B", "a", "d"]
    assert {(Path(e.path).name, e.kind) for e in problems} == {("gone.txt", "dangling_link"), ("sub.txt", "not_a_file")}
    assert "a symbolic link whose target does not exist" in str([str(e) for e in problems])
    assert "1 hidden and 1 other files" in caplog.text and "2 files are links to files outside the folder" in caplog.text


def test_files_that_are_not_utf8(tmp_path):
    folder = tmp_path / "latin1"
    folder.mkdir()
    (folder / "1.txt").write_bytes("line one\nPatient took caf\xe9 ...\n".encode("latin-1"))
    (folder / "1.ann").write_text("")
    with pytest.raises(BratFormatError) as info:
        read_brat_folder(folder)
    assert info.value.path.endswith("1.txt") and info.value.line == 2 and "not valid UTF-8" in str(info.value)
    (folder / "1.txt").write_text("ok text\n")
    (folder / "1.ann").write_bytes(b"T1\tDrug 0 2\tok\nT2\tDrug 3 7\tt\xe9xt\n")
    with pytest.raises(BratFormatError) as info:
        read_brat_folder(folder, entity_types=["Drug"])
    assert info.value.path.endswith("1.ann") and info.value.line == 2 and info.value.kind == "not_utf8"


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README").write_text("nothing here")
    with pytest.raises(BratFormatError, match="no .txt or .ann files found") as info:
        read_brat_folder(tmp_path / "empty")
    assert info.value.path == str(tmp_path / "empty") and info.value.line is None
    with pytest.raises(BratFormatError, match="not a folder"):
        read_brat_folder(tmp_path / "missing")


def test_skip_invalid_continues_and_reports_each_problem(tmp_path):
    folder = tmp_path / "mixed"
    write_pair(folder, "1-good", NOTE, "T1\tDrug 0 7\tAspirin\n")
    write_pair(folder, "2-bad-line", NOTE, "T1\tDrug 0 7\tAspirin\nT2\tStrength 8 13\t18 mg\nT3\tFoo 14 19\tdaily\n")
    (folder / "3-orphan.ann").write_text("T1\tDrug 0 7\tAspirin\n")
    (folder / "4-latin.txt").write_bytes(b"caf\xe9")
    (folder / "4-latin.ann").write_text("")
    documents, problems = read_brat_folder(folder, skip_invalid=True)
    assert [d.doc_id for d in documents] == ["1-good", "2-bad-line"]
    assert [e.text for e in documents[1].entities] == ["Aspirin"]
    assert Counter((e.skipped, e.kind) for e in problems) == Counter({
        ("annotation", "text_mismatch"): 1, ("annotation", "unknown_type"): 1,
        ("document", "missing_txt"): 1, ("document", "not_utf8"): 1})
    assert {(Path(e.path).name, e.line) for e in problems if e.skipped == "annotation"} == {
        ("2-bad-line.ann", 2), ("2-bad-line.ann", 3)}


def test_write_brat_ann_splits_at_line_breaks_and_reads_back(tmp_path):
    text = "Started aspirin 81\nmg daily for chest\n  pain today."
    start = text.index("chest")
    end = text.index("pain") + 4
    path = write_brat_ann(tmp_path / "n.ann", [("Drug", 8, 15), ("Strength", 16, 21), ("Reason", start, end)], text)
    lines = path.read_text().splitlines()
    assert lines[0] == "T1\tDrug 8 15\taspirin"
    assert lines[1] == "T2\tStrength 16 18;19 21\t81 mg"
    assert lines[2] == f"T3\tReason {start} {start + 5};{text.index('pain')} {end}\tchest pain"
    (tmp_path / "n.txt").write_text(text)
    doc = read_brat_document(tmp_path / "n.txt")
    assert [(e.type, e.start, e.end) for e in doc.entities] == [("Drug", 8, 15), ("Strength", 16, 21),
                                                                ("Reason", start, end)]
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_write_brat_ann_refuses_to_overwrite_and_checks_offsets(tmp_path):
    path = write_brat_ann(tmp_path / "n.ann", [("Drug", 0, 3)], "abc def")
    with pytest.raises(FileExistsError):
        write_brat_ann(path, [("Drug", 4, 7)], "abc def")
    assert path.read_text() == "T1\tDrug 0 3\tabc\n"
    write_brat_ann(path, [("Drug", 4, 7)], "abc def", overwrite=True)
    assert path.read_text() == "T1\tDrug 4 7\tdef\n"
    with pytest.raises(ValueError):
        write_brat_ann(tmp_path / "m.ann", [("Drug", 4, 70)], "abc def")
    assert not (tmp_path / "m.ann").exists()
    assert sorted(os.listdir(tmp_path)) == ["n.ann"]


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


ENTITIES = ("T1\tDrug 0 7\tAspirin\nT2\tStrength 8 13\t81 mg\nT3\tFrequency 14 19\tdaily\n"
            "T4\tReason 24 29;30 34\tchest pain\n")


def triples(doc: BratDocument) -> list[tuple[str, str, str]]:
    return [(r.type, r.arg1, r.arg2) for r in doc.relations]


def write_pair(folder: Path, stem: str, text: str, ann: str, newline: str = "\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{stem}.txt", "w", encoding="utf-8", newline="") as handle:
        handle.write(text.replace("\n", newline))
    (folder / f"{stem}.ann").write_text(ann, encoding="utf-8")
    return folder / f"{stem}.txt"


def ann_line(number, entity_type, text, start, end):
    return f"T{number}\t{entity_type} {start} {end}\t{text[start:end]}\n"


def entity_line(number, entity_type, text, surface, occurrence=0):
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(surface, start + 1)
    return ann_line(number, entity_type, text, start, start + len(surface))


NOTE = "Aspirin 81 mg daily\nfor chest\npain.\n"
