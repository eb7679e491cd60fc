"""prepare_n2c2.py: label scheme, brat reader/writer, splitter, tagger, down-sampling, CLI, bad input."""

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import strategies as st

from clinical_ner_crf import reports, tagging
from clinical_ner_crf.brat import read_brat_document, read_brat_folder, write_brat_ann
from clinical_ner_crf.command_line import UsageError
from clinical_ner_crf.documents import BratDocument, BratEntity, BratFormatError
from clinical_ner_crf.folder_safety import MANIFEST_FILE, Manifest
from clinical_ner_crf.sampling import all_o_share
from clinical_ner_crf.tagging import N2C2_LABELS, N2C2_RELATION_TYPES
from conftest import command
from test_brat import ENTITIES, NOTE, entity_line, triples, write_pair

p = command("prepare_n2c2")  # the command, called in-process as from its command line

REPO_ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------
# Label scheme
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Bad input: every case names the file, the line and the reason
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Words and sentences
# ---------------------------------------------------------------------------


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


NESTED = "clozapine-induced granulocytopenia was seen"


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


# ---------------------------------------------------------------------------
# Down-sampling and validation split
# ---------------------------------------------------------------------------


def make_rows(num_entity, num_plain, seed=0):
    import random

    rng = random.Random(seed)
    kinds = ["E"] * num_entity + ["P"] * num_plain
    rng.shuffle(kinds)
    return [{"id": str(i), "ner_tags": ["B-Drug", "O"] if kind == "E" else ["O", "O"]} for i, kind in enumerate(kinds)]


# ---------------------------------------------------------------------------
# CoNLL input
# ---------------------------------------------------------------------------


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
