"""prepare_n2c2.py: label scheme, brat reader/writer, splitter, tagger, down-sampling, CLI, bad input."""

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from clinical_ner_crf import conll, documents, reports, tagging
from clinical_ner_crf.brat import read_brat_document, read_brat_folder, write_brat_ann
from clinical_ner_crf.command_line import UsageError
from clinical_ner_crf.conll import read_conll_file
from clinical_ner_crf.documents import BratDocument, BratEntity, BratFormatError
from clinical_ner_crf.folder_safety import MANIFEST_FILE, Manifest
from clinical_ner_crf.sampling import all_o_share, downsample_plain, split_validation
from clinical_ner_crf.sentence_examples import DROP_CATEGORIES, document_to_examples
from clinical_ner_crf.tagging import N2C2_LABELS, bio_to_char_spans, split_sentences, tokenize_words
from conftest import command


p = command("prepare_n2c2")  # the command, called in-process as from its command line

REPO_ROOT = Path(__file__).resolve().parent.parent


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


# ---------------------------------------------------------------------------
# Label scheme
# ---------------------------------------------------------------------------


def test_n2c2_labels_follow_the_paper_order():
    assert len(N2C2_LABELS) == 19
    assert N2C2_LABELS[:5] == ["O", "B-Drug", "I-Drug", "B-Reason", "I-Reason"]
    assert N2C2_LABELS[-2:] == ["B-ADE", "I-ADE"]
    assert tagging.entity_types_of(N2C2_LABELS) == list(tagging.N2C2_ENTITY_TYPES)


def test_bio_helpers_round_trip_and_char_spans():
    tags = ["B-Drug", "I-Drug", "O", "B-Strength", "I-Strength", "B-Route"]
    spans = tagging.bio_to_spans(tags)
    assert spans == [("Drug", 0, 2), ("Strength", 3, 5), ("Route", 5, 6)]
    assert tagging.spans_to_bio(6, spans) == tags
    assert tagging.bio_to_spans(["I-Drug", "I-Drug"], strict=True) == []
    assert tagging.bio_to_spans(["I-Drug", "I-Drug"], strict=False) == [("Drug", 0, 2)]
    assert bio_to_char_spans(tags, [0, 6, 10, 12, 15, 18], [5, 9, 11, 14, 17, 20]) == [
        ("Drug", 0, 9), ("Strength", 12, 17), ("Route", 18, 20)]


# ---------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------

NOTE = "Aspirin 81 mg daily\nfor chest\npain.\n"


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


# ---------------------------------------------------------------------------
# Bad input: every case names the file, the line and the reason
# ---------------------------------------------------------------------------


def test_error_message_format():
    error = BratFormatError("notes/101.ann", 7, "span text 'aspirn' does not match the .txt at 120-126 ('aspirin')")
    assert str(error) == "notes/101.ann:7: span text 'aspirn' does not match the .txt at 120-126 ('aspirin')"
    assert (error.path, error.line) == ("notes/101.ann", 7)
    assert str(BratFormatError("notes", None, "no .txt or .ann files found")) == "notes: no .txt or .ann files found"
    assert isinstance(error, ValueError)


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


def test_messages_give_lengths_and_hashes_not_text_unless_asked(tmp_path, monkeypatch):
    txt = write_pair(tmp_path, "101", NOTE, "T1\tDrug 0 7\tAspirn\nT2\tDrug 30 99\tpain\n")
    with pytest.raises(BratFormatError) as info:
        read_brat_document(txt)
    assert "Aspirn" not in str(info.value) and "Aspirin" not in str(info.value)
    assert "does not match the .txt at 0-7, which holds <7 characters, sha256 " in str(info.value)
    monkeypatch.setattr(documents, "SHOW_TEXT_IN_MESSAGES", True)  # prepare_n2c2.py --show_text_in_messages
    with pytest.raises(BratFormatError) as info:
        read_brat_document(txt)
    assert "'Aspirn'" in str(info.value) and "'Aspirin'" in str(info.value)


def test_skip_invalid_warnings_hold_no_note_text(tmp_path, caplog):
    folder = tmp_path / "notes"
    write_pair(folder, "1", NOTE, "T1\tDrug 0 7\tAspirn\nT2\tDrug 0 7\tAspirin\n")
    write_pair(folder, "2", NOTE, "T1 Drug 0 7 Aspirin\n")
    stats = p.main(["--train_dir", str(folder), "--output_dir", str(tmp_path / "out"), "--skip_invalid",
                    "--validation_ratio", "0"])
    assert stats["skipped_invalid"]["annotations"] == 2
    assert "text_mismatch" in caplog.text or "does not match" in caplog.text
    for word in ("Aspirn", "Aspirin", "chest"):
        assert word not in caplog.text


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
    caplog.set_level("INFO")
    documents, problems = read_brat_folder(folder, skip_invalid=True)
    assert sorted(d.doc_id for d in documents) == ["B", "a", "d"]
    assert {(Path(e.path).name, e.kind) for e in problems} == {("gone.txt", "dangling_link"), ("sub.txt", "not_a_file")}
    assert "a symbolic link whose target does not exist" in str([str(e) for e in problems])
    assert "1 hidden and 1 other files" in caplog.text and "2 files are links to files outside the folder" in caplog.text


def test_an_unreadable_note_is_skipped_and_counted(tmp_path, monkeypatch):
    folder = tmp_path / "notes"
    write_pair(folder, "1", NOTE, "T1\tDrug 0 7\tAspirin\n")
    write_pair(folder, "2", NOTE, "T1\tDrug 0 7\tAspirin\n")
    from clinical_ner_crf import documents, folder_safety
    real_read = folder_safety.read_regular_file

    def read_regular_file(path, limit=None):  # as chmod 000 does for a user who is not root
        if Path(path).name == "2.txt":
            raise PermissionError(13, "Permission denied", str(path))
        return real_read(path, limit)

    monkeypatch.setattr(documents, "read_regular_file", read_regular_file)
    with pytest.raises(BratFormatError, match="2.txt: cannot be read"):
        read_brat_folder(folder)
    stats = p.main(["--train_dir", str(folder), "--output_dir", str(tmp_path / "out"), "--skip_invalid",
                    "--validation_ratio", "0"])
    assert stats["skipped_invalid"]["documents"] == 1 and stats["skipped_invalid"]["by_kind"] == {"unreadable": 1}


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


# ---------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Words and sentences
# ---------------------------------------------------------------------------


def test_tokenize_words_offsets_and_punctuation():
    text = "Tylenol 650mg p.o. q6h (PRN), BP 120/80."
    words = tokenize_words(text)
    assert [w for w, _, _ in words] == ["Tylenol", "650mg", "p", ".", "o", ".", "q6h", "(", "PRN", ")", ",", "BP",
                                        "120", "/", "80", "."]
    assert all(text[s:e] == w for w, s, e in words)
    assert tokenize_words(text, 8, 13) == [("650mg", 8, 13)]


def test_words_are_the_words_a_fast_bert_tokenizer_finds_in_raw_text():
    """The pipeline tokenizes raw text: its words (word_ids + offsets) must be ours, offsets included."""
    from conftest import build_wordpiece_tokenizer

    tokenizer = build_wordpiece_tokenizer()
    text = ("Metoprolol 25mg PO BID; K-Dur 20 mEq x1. Café-au-lait, naïve: 1.5 mg/kg (q8h)!\r\n"
            "T 38.2°C, SpO2 94%\t±2 — pt_id #42 $5 “quoted” x\u00a0y")
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans: dict[int, list[int]] = {}
    for word, (start, end) in zip(encoding.word_ids(), encoding["offset_mapping"]):
        spans.setdefault(word, [start, end])[1] = end
    assert [tuple(span) for span in spans.values()] == [(s, e) for _, s, e in tokenize_words(text)]


SUMMARY = """Discharge Medications:
1. Metoprolol tartrate 25 mg tablet PO BID
2. Aspirin 81 mg PO daily
Vitals: T 98.6 BP 120/80 HR 72
Physical Exam:
Lungs: clear.
Brief Hospital Course:
Patient was started on lisinopril 10 mg p.o. b.i.d. for
hypertension and
tolerated it well. Seen by Dr. Smith on day 3. He developed a rash after
vancomycin. Creatinine was 1.5. Follow up in 2 weeks.

# AKI: resolved."""


def test_split_sentences_discharge_summary_layout():
    sentences = [SUMMARY[s:e] for s, e in split_sentences(SUMMARY)]
    assert sentences == [
        "Discharge Medications:",
        "1. Metoprolol tartrate 25 mg tablet PO BID",
        "2. Aspirin 81 mg PO daily",
        "Vitals: T 98.6 BP 120/80 HR 72",
        "Physical Exam:",
        "Lungs: clear.",
        "Brief Hospital Course:",
        "Patient was started on lisinopril 10 mg p.o. b.i.d. for\nhypertension and\ntolerated it well.",
        "Seen by Dr. Smith on day 3.",
        "He developed a rash after\nvancomycin.",
        "Creatinine was 1.5.",
        "Follow up in 2 weeks.",
        "# AKI: resolved.",
    ]


def test_split_sentences_never_cuts_an_entity_and_trims():
    text = "  Take aspirin daily.\nHe felt better.\r\n\r\nDone.  \n"
    assert [text[s:e] for s, e in split_sentences(text)] == ["Take aspirin daily.", "He felt better.", "Done."]
    across = (text.index("daily"), text.index("He") + 2)
    assert [text[s:e] for s, e in split_sentences(text, [across])] == [
        "Take aspirin daily.\nHe felt better.", "Done."]
    entity = BratEntity("T1", "Reason", ((text.index("daily"), text.index("daily") + 5), (text.index("He"), text.index("He") + 2)), "daily He", 1)
    assert len(split_sentences(text, [entity])) == 2
    assert split_sentences("   \n\t ") == []


# ---------------------------------------------------------------------------
# Tagger and policies
# ---------------------------------------------------------------------------


def doc_with(text, *entities):
    """entities: (type, surface) or (type, [(surface, occurrence), ...]) for fragments."""
    result = []
    for number, (entity_type, surface) in enumerate(entities, start=1):
        fragments = [(surface, 0)] if isinstance(surface, str) else surface
        spans = []
        for piece, occurrence in fragments:
            start = -1
            for _ in range(occurrence + 1):
                start = text.index(piece, start + 1)
            spans.append((start, start + len(piece)))
        result.append(BratEntity(f"T{number}", entity_type, tuple(spans), " ".join(f for f, _ in fragments), number))
    return BratDocument("d1", text, result)


def tagged(rows):
    return [[f"{w}/{t}" if t != "O" else w for w, t in zip(row["tokens"], row["ner_tags"])] for row in rows]


def test_document_to_examples_rows_and_tags():
    doc = doc_with("Aspirin 81 mg daily.\nHe had chest pain.", ("Drug", "Aspirin"), ("Strength", "81 mg"),
                   ("Frequency", "daily"), ("Reason", "chest pain"))
    rows, counts = document_to_examples(doc, N2C2_LABELS)
    assert [row["id"] for row in rows] == ["d1-0", "d1-1"] and [row["sentence_index"] for row in rows] == [0, 1]
    assert tagged(rows) == [
        ["Aspirin/B-Drug", "81/B-Strength", "mg/I-Strength", "daily/B-Frequency", "."],
        ["He", "had", "chest/B-Reason", "pain/I-Reason", "."]]
    assert rows[1]["token_starts"][2] == doc.text.index("chest")
    assert counts["kept", "Reason"] == counts["source", "Reason"] == 1


def test_discontinuous_policies():
    text = "liver and kidney injury after ibuprofen"
    doc = doc_with(text, ("ADE", [("liver", 0), ("injury", 0)]), ("Drug", "ibuprofen"))
    rows, counts = document_to_examples(doc, N2C2_LABELS, discontinuous="span")
    assert tagged(rows)[0][:4] == ["liver/B-ADE", "and/I-ADE", "kidney/I-ADE", "injury/I-ADE"]
    assert counts["discontinuous_spanned", "ADE"] == 1
    rows, counts = document_to_examples(doc, N2C2_LABELS, discontinuous="first")
    assert tagged(rows)[0][:2] == ["liver/B-ADE", "and"] and counts["discontinuous_first_fragment", "ADE"] == 1
    rows, counts = document_to_examples(doc, N2C2_LABELS, discontinuous="drop")
    assert tagged(rows)[0][0] == "liver" and counts["dropped_discontinuous", "ADE"] == 1
    assert counts["kept", "Drug"] == 1


NESTED = "clozapine-induced granulocytopenia was seen"


@pytest.mark.parametrize("policy, expected, dropped, clipped", [
    ("longest", ["clozapine/B-Reason", "-/I-Reason", "induced/I-Reason", "granulocytopenia/I-Reason"],
     {"Drug": 1, "ADE": 1}, {}),
    ("shortest", ["clozapine/B-Drug", "-", "induced", "granulocytopenia/B-ADE"], {"Reason": 1}, {}),
    ("first", ["clozapine/B-Reason", "-/I-Reason", "induced/I-Reason", "granulocytopenia/I-Reason"],
     {"Drug": 1, "ADE": 1}, {}),
])
def test_overlap_policies_on_nested_entities(policy, expected, dropped, clipped):
    doc = doc_with(NESTED, ("Reason", "clozapine-induced granulocytopenia"), ("Drug", "clozapine"),
                   ("ADE", "granulocytopenia"))
    rows, counts = document_to_examples(doc, N2C2_LABELS, overlap=policy)
    assert tagged(rows)[0][:4] == expected
    assert {t: counts["dropped_overlap", t] for t in ("Drug", "ADE", "Reason") if counts["dropped_overlap", t]} == dropped


def test_clip_policy_trims_partial_overlaps():
    text = "severe chest pain radiating to arm"
    doc = doc_with(text, ("Reason", "severe chest pain"), ("ADE", "chest pain radiating to arm"))
    rows, counts = document_to_examples(doc, N2C2_LABELS, overlap="clip")
    # The longer ADE stays whole; the Reason keeps its one free word.
    assert tagged(rows)[0] == ["severe/B-Reason", "chest/B-ADE", "pain/I-ADE", "radiating/I-ADE", "to/I-ADE",
                               "arm/I-ADE"]
    assert counts["clipped_overlap", "Reason"] == 1 and counts["kept", "Reason"] == 1
    rows, counts = document_to_examples(doc, N2C2_LABELS, overlap="longest")
    assert counts["dropped_overlap", "Reason"] == 1 and counts["kept", "ADE"] == 1


def test_boundaries_inside_words_expand_and_duplicates_are_counted():
    doc = doc_with("Aspirin 81mg daily", ("Drug", "spiri"), ("Strength", "81"), ("Drug", "Aspirin"), ("Route", " "))
    rows, counts = document_to_examples(doc, N2C2_LABELS)
    assert tagged(rows) == [["Aspirin/B-Drug", "81mg/B-Strength", "daily"]]
    assert counts["expanded_to_words", "Drug"] == 1 and counts["expanded_to_words", "Strength"] == 1
    assert counts["dropped_duplicate", "Drug"] == 1 and counts["dropped_no_words", "Route"] == 1
    for entity_type in ("Drug", "Strength", "Route"):
        dropped = sum(counts[c, entity_type] for c in DROP_CATEGORIES)
        assert counts["kept", entity_type] + dropped == counts["source", entity_type]


def test_bad_policy_names_are_rejected():
    with pytest.raises(ValueError, match="overlap policy"):
        document_to_examples(doc_with("a"), N2C2_LABELS, overlap="merge")
    with pytest.raises(ValueError, match="discontinuous policy"):
        document_to_examples(doc_with("a"), N2C2_LABELS, discontinuous="join")


# Property: tags + offsets give back exactly the original contiguous, non-overlapping entities.
_WORDS = ["aspirin", "Lasix", "40", "mg", "p.o.", "b.i.d.", "for", "pain", "He", "Dr.", "1.", "(", ")", "-",
          "BP", "120/80", "x5", "days", "É", "café", ":", "#", "_", "q6h"]
_SEPARATORS = [" ", " ", " ", "  ", "\n", "\n\n", "\r\n", ". ", ".\n", " \t"]


@st.composite
def documents_with_entities(draw):
    pieces = draw(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=40))
    separators = draw(st.lists(st.sampled_from(_SEPARATORS), min_size=len(pieces), max_size=len(pieces)))
    text, piece_spans = draw(st.sampled_from(["", "  ", "\n"])), []
    for piece, separator in zip(pieces, separators):
        piece_spans.append((len(text), len(text) + len(piece)))
        text += piece + separator
    cuts = sorted(draw(st.sets(st.integers(0, len(pieces)), max_size=2 * len(pieces))))
    entities = []
    for first, last in zip(cuts[::2], cuts[1::2]):
        if first < last and draw(st.booleans()):
            entity_type = draw(st.sampled_from(tagging.N2C2_ENTITY_TYPES))
            entities.append((entity_type, piece_spans[first][0], piece_spans[last - 1][1]))
    return text, entities


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents_with_entities())
def test_property_bio_tags_and_offsets_give_back_the_entities(tmp_path_factory, document):
    text, entities = document
    doc = BratDocument("doc", text, [BratEntity(f"T{i}", t, ((s, e),), text[s:e], i) for i, (t, s, e) in
                                     enumerate(entities, start=1)])
    rows, counts = document_to_examples(doc, N2C2_LABELS)
    recovered = [span for row in rows for span in bio_to_char_spans(row["ner_tags"], row["token_starts"],
                                                                     row["token_ends"])]
    assert recovered == sorted(entities, key=lambda entity: entity[1])
    assert sum(counts[c, t] for c, t in counts if c in DROP_CATEGORIES) == 0
    # Every word is in exactly one sentence, with its own text.
    assert [w for row in rows for w in row["tokens"]] == [w for w, _, _ in tokenize_words(text)]
    # And the same through the brat writer and reader (entities crossing lines become fragments).
    if entities and text.strip():
        folder = tmp_path_factory.mktemp("brat")
        (folder / "doc.txt").write_bytes(text.encode())
        write_brat_ann(folder / "doc.ann", [(t, s, e) for t, s, e in entities], text)
        reread = read_brat_document(folder / "doc.txt")
        assert [(e.type, e.start, e.end) for e in reread.entities] == entities


# ---------------------------------------------------------------------------
# Down-sampling and validation split
# ---------------------------------------------------------------------------


def make_rows(num_entity, num_plain, seed=0):
    import random

    rng = random.Random(seed)
    kinds = ["E"] * num_entity + ["P"] * num_plain
    rng.shuffle(kinds)
    return [{"id": str(i), "ner_tags": ["B-Drug", "O"] if kind == "E" else ["O", "O"]} for i, kind in enumerate(kinds)]


@pytest.mark.parametrize("plain_ratio", [0.0, 0.08, 0.2, 0.5])
def test_downsample_plain_reaches_the_ratio_keeping_entity_sentences(plain_ratio):
    rows = make_rows(300, 900)
    sampled = downsample_plain(rows, plain_ratio, seed=1)
    assert abs(all_o_share(sampled) - plain_ratio) <= 0.005
    assert sum(not tagging.is_all_o(r["ner_tags"]) for r in sampled) == 300
    assert [int(r["id"]) for r in sampled] == sorted(int(r["id"]) for r in sampled)  # order kept
    assert downsample_plain(rows, plain_ratio, seed=1) == sampled


def test_downsample_plain_is_seeded_and_keeps_all_when_target_unreachable():
    rows = make_rows(300, 900)
    assert downsample_plain(rows, 0.2, seed=1) != downsample_plain(rows, 0.2, seed=2)
    few_plain = make_rows(300, 10)
    assert downsample_plain(few_plain, 0.2, seed=1) == few_plain
    assert downsample_plain(rows, 1.0, seed=1) == rows
    with pytest.raises(ValueError):
        downsample_plain(rows, 1.5)


def test_downsample_plain_accepts_a_dataset():
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    rows = make_rows(40, 160)
    dataset = Dataset.from_dict({"id": [r["id"] for r in rows], "ner_tags": [r["ner_tags"] for r in rows]},
                                features=Features({"id": Value("string"),
                                                   "ner_tags": Sequence(ClassLabel(names=["O", "B-Drug", "I-Drug"]))}))
    sampled = downsample_plain(dataset, 0.2, seed=3)
    assert len(sampled) == 50 and all_o_share(sampled) == 0.2
    assert sampled["id"] == [r["id"] for r in downsample_plain(rows, 0.2, seed=3)]


def test_split_validation_by_document_seeded():
    documents = [BratDocument(f"doc{i:03d}", "", []) for i in range(303)]
    train, validation = split_validation(documents, 0.1, seed=42)
    assert (len(train), len(validation)) == (273, 30)
    assert not {d.doc_id for d in train} & {d.doc_id for d in validation}
    assert [d.doc_id for d in split_validation(documents, 0.1, seed=42)[1]] == [d.doc_id for d in validation]
    assert [d.doc_id for d in split_validation(documents, 0.1, seed=7)[1]] != [d.doc_id for d in validation]
    assert len(split_validation(documents[:5], 0.1, seed=1)[1]) == 1


# ---------------------------------------------------------------------------
# CoNLL input
# ---------------------------------------------------------------------------


def test_conll_documents_text_and_entities(tmp_path):
    path = tmp_path / "genes.tsv"
    path.write_text("-DOCSTART-\tO\n\nBRCA1\tB-GENE\nmutation\tO\n.\tO\n\nTP53\tI-GENE\nbinds\tO\n\n"
                    "-DOCSTART-\tO\n\nNo\tO\ngenes\tO\n")
    documents = read_conll_file(path)
    assert [d.doc_id for d in documents] == ["genes-000000", "genes-000001"]
    assert documents[0].text == "BRCA1 mutation .\nTP53 binds"
    assert documents[0].sentence_spans == [(0, 16), (17, 27)]
    assert [(e.type, e.start, e.end, e.text) for e in documents[0].entities] == [
        ("GENE", 0, 5, "BRCA1"), ("GENE", 17, 21, "TP53")]
    assert documents[0].repaired_tags == Counter({"GENE": 1})
    rows, _ = document_to_examples(documents[0], tagging.bio_labels(["GENE"]))
    assert [row["ner_tags"] for row in rows] == [["B-GENE", "O", "O"], ["B-GENE", "O"]]
    assert conll.conll_entity_types([path]) == ["GENE"]


def test_conll_without_docstart_and_bad_lines(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("a\tO\nb\tB-X\n\nc\tO\n")
    assert [d.text for d in read_conll_file(path)] == ["a b", "c"]
    path.write_text("a\tO\nb\tB_X\n")
    with pytest.raises(BratFormatError, match="malformed tag") as info:
        read_conll_file(path)
    assert info.value.line == 2
    path.write_text("a\tO\nb\n")
    with pytest.raises(BratFormatError, match="malformed line") as info:
        read_conll_file(path)
    assert info.value.line == 2
    path.write_text("a\tB-X\n")
    with pytest.raises(BratFormatError, match="unknown entity type 'X'"):
        read_conll_file(path, entity_types=["Y"])


def test_ncbi_disease_counts(shared_data_dir, tmp_path):
    devel = shared_data_dir / "ncbi-disease" / "NCBI-disease-IOB" / "devel.tsv"
    if not devel.is_file():
        pytest.skip("shared NCBI-disease data not present")
    stats = p.main(["--train_file", str(devel), "--output_dir", str(tmp_path / "ncbi"), "--seed", "3"])
    expected = devel.read_text().count("\tB-Disease")
    assert sum(stats["splits"][s]["entities"]["Disease"] for s in ("train", "validation")) == expected
    assert stats["dropped"] == {}
    for split in ("train", "validation"):
        assert abs(stats["splits"][f"{split}_downsampled"]["all_o_share"] - 0.2) <= 0.02


# ---------------------------------------------------------------------------
# The command line end to end
# ---------------------------------------------------------------------------

CORPUS_NOTES = [
    ("Discharge Medications:\n1. Metoprolol tartrate 25 mg tablet PO BID\n2. Aspirin 81 mg PO daily\n\n"
     "Vitals: BP 120/80\nLungs: clear.\n",
     [("Drug", "Metoprolol tartrate"), ("Strength", "25 mg"), ("Form", "tablet"), ("Route", "PO"),
      ("Frequency", "BID"), ("Drug", "Aspirin"), ("Strength", "81 mg"), ("Frequency", "daily")]),
    ("He was started on vancomycin 1 gram IV q12h for\nMRSA bacteremia. He developed a rash after vancomycin.\n"
     "Follow up with Dr. Lee.\nWeigh yourself daily.\n",
     [("Drug", "vancomycin"), ("Strength", "1 gram"), ("Route", "IV"), ("Frequency", "q12h"),
      ("Reason", "MRSA bacteremia"), ("ADE", "rash"), ("Drug", ("vancomycin", 1))]),
    ("Admission Date: 2101-01-01\nHeparin 5000 units SC for 7 days for DVT prophylaxis.\nDigoxin toxicity noted.\n"
     "Exam: benign.\nNo acute distress.\n",
     [("Drug", "Heparin"), ("Dosage", "5000 units"), ("Route", "SC"), ("Duration", "for 7 days"),
      ("Reason", "DVT prophylaxis"), ("ADE", "Digoxin toxicity"), ("Drug", "Digoxin")]),
]


def write_corpus(folder: Path, copies: int = 4) -> None:
    for copy in range(copies):
        for index, (text, entities) in enumerate(CORPUS_NOTES):
            # Trailing spaces make each copy a different note (no train/test leakage), with the same words.
            text += " " * (1 + copy + 10 * (folder.name == "test"))
            lines = []
            for number, (entity_type, surface) in enumerate(entities, start=1):
                surface, occurrence = surface if isinstance(surface, tuple) else (surface, 0)
                lines.append(entity_line(number, entity_type, text, surface, occurrence))
            write_pair(folder, f"{copy}{index:02d}", text, "".join(lines))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    write_corpus(root / "train", copies=4)
    write_corpus(root / "test", copies=1)
    return root


def build(corpus, output_dir, *extra):
    return p.main(["--train_dir", str(corpus / "train"), "--test_dir", str(corpus / "test"),
                   "--output_dir", str(output_dir), "--validation_ratio", "0.25", *extra])


def content_hash(output_dir: Path) -> str:
    from datasets import load_from_disk

    dataset = load_from_disk(str(output_dir))
    digest = hashlib.sha256()
    for split in sorted(dataset):
        digest.update(split.encode())
        for row in dataset[split]:
            digest.update(json.dumps(row, sort_keys=True).encode())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("built") / "data"
    return output_dir, build(corpus, output_dir)


def test_cli_writes_the_contracted_dataset(built, corpus):
    from datasets import ClassLabel, Dataset, load_from_disk

    output_dir, stats = built
    dataset = load_from_disk(str(output_dir))
    assert set(dataset) == {"train", "validation", "test", "train_downsampled", "validation_downsampled"}
    features = dataset["train"].features
    assert list(features) == ["id", "document_id", "sentence_index", "tokens", "ner_tags", "token_starts",
                              "token_ends"]
    assert isinstance(features["ner_tags"].feature, ClassLabel) and features["ner_tags"].feature.names == N2C2_LABELS
    assert features["sentence_index"].dtype == "int32" and features["token_starts"].feature.dtype == "int32"
    train_docs, validation_docs = set(dataset["train"]["document_id"]), set(dataset["validation"]["document_id"])
    assert len(validation_docs) == 3 and not train_docs & validation_docs and len(train_docs) == 9

    documents = Dataset.load_from_disk(str(output_dir / "documents"))
    assert documents.column_names == ["document_id", "split", "text", "entities", "relations"]
    texts = dict(zip(documents["document_id"], documents["text"]))
    for row in documents:  # what the tags hold, in document order; these notes have no relations
        starts = [e["start"] for e in row["entities"]]
        assert starts == sorted(starts) and all(e["id"].startswith("T") for e in row["entities"])
        assert all(row["text"][e["start"]:e["end"]].strip() for e in row["entities"]) and row["relations"] == []
    assert Counter(documents["split"]) == Counter({"train": 9, "validation": 3, "test": 3})
    for row in dataset["test"]:  # offsets index the document text
        assert [texts[row["document_id"]][s:e] for s, e in zip(row["token_starts"], row["token_ends"])] == row["tokens"]
    assert texts["000"] == (corpus / "test" / "000.txt").read_text()
    assert (output_dir / "label_distribution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [name for name in os.listdir(output_dir.parent) if ".partial-" in name]

    # stats.json: counts only, and the check equation holds.
    raw = (output_dir / "stats.json").read_text()
    assert json.loads(raw) == stats and stats["synthetic"] is False and stats["labels"] == N2C2_LABELS
    for surface in ("Metoprolol", "vancomycin", "bacteremia", "Lungs"):
        assert surface not in raw
    for entity_type, source in stats["totals"]["source_entities"].items():
        b_tags = sum(stats["splits"][s]["entities"][entity_type] for s in ("train", "validation", "test"))
        assert b_tags == source - stats["dropped"].get(entity_type, 0)
    assert stats["dropped"] == {"Drug": 5}  # "Digoxin" inside "Digoxin toxicity", longest policy
    assert stats["totals"]["source_entities"]["Drug"] == 30
    assert stats["entity_changes"]["test"]["discontinuous_spanned"] == {}
    assert set(stats["downsampling"]) == {"train", "validation"}
    relations = stats["relations"]["test"]
    assert relations["source"] == relations["kept"] == {} and relations["cases"]["drugs_without_attributes"] > 0


def test_cli_downsampled_shares_and_test_untouched(built):
    from datasets import load_from_disk

    output_dir, stats = built
    dataset = load_from_disk(str(output_dir))
    for split in ("train", "validation"):
        entity_rows = [r["id"] for r in dataset[split] if any(r["ner_tags"])]
        assert [r["id"] for r in dataset[f"{split}_downsampled"] if any(r["ner_tags"])] == entity_rows
        share = all_o_share(dataset[f"{split}_downsampled"])
        assert abs(share - 0.2) <= 0.05  # tiny corpus: 1 sentence moves the share by ~0.05
        assert stats["downsampling"][split]["all_o_share_after"] == pytest.approx(share, abs=1e-6)
    assert stats["splits"]["test"]["all_o_share"] == pytest.approx(all_o_share(dataset["test"]), abs=1e-6)
    assert stats["splits"]["test"]["all_o_share"] > 0.2


def test_cli_is_deterministic(built, corpus, tmp_path):
    from datasets import load_from_disk

    output_dir, _ = built
    again = tmp_path / "again"
    build(corpus, again)
    assert content_hash(again) == content_hash(output_dir)
    first, second = load_from_disk(str(output_dir)), load_from_disk(str(again))
    assert {s: first[s]._fingerprint for s in first} == {s: second[s]._fingerprint for s in second}
    assert (again / "stats.json").read_text() == (output_dir / "stats.json").read_text().replace(
        str(output_dir), str(again))
    build(corpus, tmp_path / "other_seed", "--seed", "1")
    assert content_hash(tmp_path / "other_seed") != content_hash(output_dir)


def test_cli_refuses_to_replace_output_without_overwrite(corpus, tmp_path):
    output_dir = tmp_path / "out"
    build(corpus, output_dir)
    before = content_hash(output_dir)
    with pytest.raises(FileExistsError, match="--overwrite"):
        build(corpus, output_dir, "--seed", "5")
    assert content_hash(output_dir) == before
    build(corpus, output_dir, "--seed", "5", "--overwrite")
    assert content_hash(output_dir) != before
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_failed_run_leaves_no_half_written_dataset(corpus, tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(reports, "plot_label_distribution", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        build(corpus, tmp_path / "out")
    assert os.listdir(tmp_path) == []
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "old.txt").write_text("previous run")
    Manifest(tmp_path / "keep").claim(["old.txt"])  # written by an earlier run of the toolkit
    with pytest.raises(RuntimeError, match="disk full"):
        build(corpus, tmp_path / "keep", "--overwrite")
    assert sorted(os.listdir(tmp_path)) == ["keep"] and sorted(os.listdir(tmp_path / "keep")) == [MANIFEST_FILE, "old.txt"]


def test_overwrite_never_replaces_a_folder_holding_files_the_toolkit_did_not_write(corpus, tmp_path):
    out = tmp_path / "out"
    build(corpus, out)
    (out / "my_notes.txt").write_bytes(b"the user's own file")
    before = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    with pytest.raises(UsageError, match=r"holds 1 entries this toolkit did not write \(my_notes.txt\)"):
        build(corpus, out, "--overwrite")
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()} == before
    (out / "my_notes.txt").unlink()
    build(corpus, out, "--overwrite")  # only the toolkit's files: replaced
    assert not list(tmp_path.glob(".out*"))  # no partial folder, no lock left behind


def test_cli_skip_invalid_counts_and_label_map(corpus, tmp_path):
    import shutil

    folder = tmp_path / "train"
    shutil.copytree(corpus / "train", folder)
    (folder / "999.ann").write_text("T1\tDrug 0 3\tabc\n")
    with (folder / "000.ann").open("a") as handle:
        handle.write("T99\tDrug 0 4\twrong\n")
    with pytest.raises(BratFormatError, match="000.ann:9: span text <5 characters, sha256 "):
        p.main(["--train_dir", str(folder), "--output_dir", str(tmp_path / "out")])
    stats = p.main(["--train_dir", str(folder), "--output_dir", str(tmp_path / "out"), "--skip_invalid"])
    assert stats["skipped_invalid"] == {"documents": 1, "annotations": 1,
                                        "by_kind": {"missing_txt": 1, "text_mismatch": 1}}
    assert "test" not in stats["splits"]

    label_map = tmp_path / "map.json"
    label_map.write_text(json.dumps({"Drug": "Medication", "Reason": "Problem", "ADE": "Problem"}))
    stats = p.main(["--train_dir", str(corpus / "train"), "--output_dir", str(tmp_path / "mapped"),
                    "--label_map", str(label_map)])
    assert stats["labels"] == ["O", "B-Medication", "I-Medication", "B-Problem", "I-Problem"]
    assert stats["unmapped_types"]["train"]["Strength"] > 0
    assert sum(stats["unmapped_types"]["train"].values()) + sum(stats["unmapped_types"]["validation"].values()) == 48


def test_cli_reports_bad_input_with_file_and_line(tmp_path):
    folder = tmp_path / "notes"
    write_pair(folder, "101", NOTE, "T1\tDrug 0 7\tAspirin\nT2\tDrug 0 7\taspirn\n")
    result = subprocess.run([sys.executable, str(REPO_ROOT / "prepare_n2c2.py"), "--train_dir", str(folder),
                             "--output_dir", str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1
    assert f"{folder / '101.ann'}:2: span text <6 characters, sha256 " in result.stderr
    assert "spirin" not in result.stderr + result.stdout and "spirn" not in result.stderr + result.stdout
    assert not (tmp_path / "out").exists()
    # Debugging one's own files: the flag quotes the text.
    result = subprocess.run([sys.executable, str(REPO_ROOT / "prepare_n2c2.py"), "--train_dir", str(folder),
                             "--output_dir", str(tmp_path / "out"), "--show_text_in_messages"], capture_output=True,
                            text=True, cwd=tmp_path)
    assert "span text 'aspirn' does not match the .txt at 0-7, which holds 'Aspirin'" in result.stderr


def test_atomic_writes_get_the_usual_permissions_and_leave_nothing_on_failure(tmp_path):
    from clinical_ner_crf.files import atomic_open

    umask = os.umask(0o022)
    try:
        path = write_brat_ann(tmp_path / "note.ann", [("Drug", 0, 7)], "aspirin 81 mg")
        assert path.stat().st_mode & 0o777 == 0o644, "readable by a brat server running as another user"
        with pytest.raises(RuntimeError):
            with atomic_open(tmp_path / "broken.jsonl") as handle:
                handle.write("half a line")
                raise RuntimeError("interrupted")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["note.ann"]
    finally:
        os.umask(umask)


def test_the_same_notes_in_train_and_test_are_refused(corpus, tmp_path):
    args = ["--train_dir", str(corpus / "train"), "--test_dir", str(corpus / "train"), "--output_dir",
            str(tmp_path / "leak")]
    result = subprocess.run([sys.executable, str(REPO_ROOT / "prepare_n2c2.py"), *args], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == 1 and "the same notes are in more than one split (train/test: " in result.stderr
    assert "--allow_overlap" in result.stderr and not (tmp_path / "leak").exists()
    # A copy under another name is the same note too.
    copy = tmp_path / "copy"
    copy.mkdir()
    source = sorted((corpus / "train").glob("*.txt"))[0]
    (copy / "renamed.txt").write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    (copy / "renamed.ann").write_text(source.with_suffix(".ann").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"train/test: 1 documents"):
        p.main(["--train_dir", str(corpus / "train"), "--test_dir", str(copy), "--output_dir", str(tmp_path / "c")])
    stats = p.main(["--train_dir", str(corpus / "train"), "--test_dir", str(copy), "--output_dir",
                    str(tmp_path / "allowed"), "--allow_overlap"])
    assert stats["overlapping_documents"] == {"train/test": 1}


@pytest.mark.parametrize("note_mode, file_mode, folder_mode", [(0o600, 0o600, 0o700), (0o644, 0o644, 0o755)])
def test_the_dataset_is_no_more_readable_than_the_notes(corpus, tmp_path, note_mode, file_mode, folder_mode):
    import shutil

    notes = tmp_path / "notes"
    shutil.copytree(corpus / "train", notes)
    for path in notes.iterdir():
        path.chmod(note_mode)
    previous = os.umask(0o022)
    try:
        p.main(["--train_dir", str(notes), "--output_dir", str(tmp_path / "out")])
    finally:
        os.umask(previous)
    modes = {path.stat().st_mode & 0o777 for path in (tmp_path / "out").rglob("*") if path.is_file()}
    folders = {path.stat().st_mode & 0o777 for path in [tmp_path / "out", *(tmp_path / "out").rglob("*")]
               if path.is_dir()}
    assert modes == {file_mode} and folders == {folder_mode}


def test_a_partial_dataset_left_by_a_killed_run_is_removed_by_the_next(corpus, tmp_path):
    stale = tmp_path / ".out.partial-abc123"
    stale.mkdir()
    (stale / "notes.arrow").write_text("note text of a killed run")
    build(corpus, tmp_path / "out")
    assert not stale.exists() and (tmp_path / "out" / "dataset_dict.json").is_file()


def test_identical_sentences_of_a_conll_corpus_are_reported_not_refused(tmp_path, caplog):
    """Without -DOCSTART- each sentence is a document: a short sentence repeated across official splits is data."""
    (tmp_path / "train.tsv").write_text("Aspirin\tB-Drug\nhelps\tO\n\nNo\tO\nchange\tO\n\n")
    (tmp_path / "test.tsv").write_text("No\tO\nchange\tO\n\nHeparin\tB-Drug\n\n")
    stats = p.main(["--train_file", str(tmp_path / "train.tsv"), "--test_file", str(tmp_path / "test.tsv"),
                    "--output_dir", str(tmp_path / "out"), "--validation_ratio", "0"])
    assert stats["overlapping_documents"] == {"train/test": 1}
    assert "identical sentences in more than one split" in caplog.text


def test_a_dataset_set_aside_by_a_run_killed_between_its_renames_is_put_back(corpus, tmp_path, caplog):
    """write_folder_atomically moves the old folder aside, then the new one in: killed in between, the target is gone.
    The next run puts the old one back (the target "as it was"), then proceeds under its own rules."""
    build(corpus, tmp_path / "out")
    before = content_hash(tmp_path / "out")
    (tmp_path / "out").rename(tmp_path / ".out.old-12345")
    (tmp_path / ".out.partial-abc").mkdir()  # the new folder, unfinished
    caplog.set_level("WARNING")
    with pytest.raises(FileExistsError, match="not empty"):  # a plain re-run: the old dataset is back, and kept
        build(corpus, tmp_path / "out")
    assert "restored" in caplog.text and content_hash(tmp_path / "out") == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]
