"""clinical_ner_crf/durable_jsonl.py: JSON lines that a killed run leaves readable: a torn last line found and cut, each note's last block kept."""

import json

from clinical_ner_crf.durable_jsonl import JsonlScan


def test_compaction_keeps_each_notes_last_block_and_drops_the_rest(tmp_path):
    path = tmp_path / "entities.jsonl"
    lines = [
        {"document_id": "a", "id": "T1"}, {"document_id": "a", "id": "T2"},
        {"document_id": "b", "id": "T1"},
        {"document_id": "a", "id": "T1", "new": True},  # a redone later
        {"document_id": "c", "id": "T1"},  # c has no .ann
        {"document_id": "b", "id": "T1", "new": True},  # b twice in a row
        {"document_id": "b", "id": "T2", "new": True},
        {"document_id": "b", "id": "T1", "newest": True},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + "[1, 2]\n\n" + '{"document_id": "a", "i',
                    encoding="utf-8")
    scan = JsonlScan(path)
    assert scan.malformed == 2 and not scan.ends_with_newline
    dropped = scan.compact({"a": True, "b": True, "c": False}, 0o600)
    assert dict(dropped) == {"malformed_lines": 2, "records_without_ann": 1, "superseded_records": 5}
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"document_id": "a", "id": "T1", "new": True}, {"document_id": "b", "id": "T1", "newest": True}]
    assert path.stat().st_mode & 0o777 == 0o600
    # A clean file is not rewritten: only its mode is set.
    inode = path.stat().st_ino
    assert not JsonlScan(path).compact({"a": True, "b": True}, 0o640)
    assert path.stat().st_ino == inode and path.stat().st_mode & 0o777 == 0o640
    assert not list(tmp_path.glob(".*.tmp"))
