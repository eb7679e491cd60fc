"""note_tables: which rows of a table are notes (and why the others are not), read from Parquet, JSON lines and CSV
exactly as written, and the output columns."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clinical_ner_crf.command_line import DataError, UsageError
from clinical_ner_crf.note_tables import (
    ROW_FAILURES, check_rows, entity_schema, medication_rows, medication_schema, normalize_id, read_note_table,
    table_format,
)

SECRET = "Zyxolimab"


def test_rows_fail_with_the_first_check_that_applies_and_every_row_of_a_repeated_id_fails():
    ids = ["a", None, True, "b", "c", "d", "d", "e", "e", 7, 1.5]
    texts = ["x", "x", "x", None, 5, "x", "y", None, "z", "", "x"]
    good, failures, document_ids = check_rows(ids, texts, malformed=[])
    assert good == [0, 9]  # "a", and 7 (an integer id, its digits) with an empty text: an empty note
    assert document_ids[9] == "7"
    kinds = {failure.row: (failure.document_id, failure.kind) for failure in failures}
    assert kinds == {2: (None, "null_id"), 3: (None, "bad_id"), 4: ("b", "null_text"), 5: ("c", "non_string_text"),
                     6: ("d", "duplicate_id"), 7: ("d", "duplicate_id"),
                     8: ("e", "null_text"), 9: ("e", "duplicate_id"),  # the id is repeated even where the text is null
                     11: (None, "bad_id")}
    assert {kind for _, kind in kinds.values()} <= set(ROW_FAILURES)


@pytest.mark.parametrize("value, expected", [("n1", ("n1", None)), (12, ("12", None)), (None, (None, "null_id")),
                                             (False, (None, "bad_id")), (2.0, (None, "bad_id")),
                                             (["a"], (None, "bad_id"))])
def test_ids_are_strings_or_integers(value, expected):
    assert normalize_id(value) == expected


def test_json_lines_keep_text_exactly_and_report_what_is_not_a_note(tmp_path):
    path = tmp_path / "notes.jsonl"
    lines = [{"note_id": "n1", "text": "Aspirin 81 mg\r\nPO daily.\u2028", "ward": 3},
             {"note_id": 2, "text": 81, "ward": "B"},
             "this line is not JSON",
             {"note_id": "n3", "text": ["a list"], "ward": None},
             {"note_id": "n4"},
             [1, 2]]
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n\n",
                    encoding="utf-8")
    table = read_note_table(path, keep_columns=["ward"])
    good, failures, _ = check_rows(table.ids, table.texts, table.malformed)
    assert [table.texts[index] for index in good] == ["Aspirin 81 mg\r\nPO daily.\u2028"]
    assert [(f.row, f.document_id, f.kind) for f in failures] == [
        (2, "2", "non_string_text"), (3, None, "malformed_line"), (4, "n3", "non_string_text"),
        (5, "n4", "null_text"), (6, None, "malformed_line")]
    # A kept column of numbers and strings is strings (as Spark's JSON reader types it), the numbers as JSON text.
    assert table.kept.column("ward").to_pylist() == ["3", "B", None, None, None, None]


def test_a_mistyped_column_is_one_line_naming_the_columns_the_table_has(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text(json.dumps({"id": "n1", "note_text": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"has no column --id_column note_id, --text_column text \(its columns: "
                                         r"id, note_text\)"):
        read_note_table(path)
    pq.write_table(pa.table({"note_id": ["a"], "text": ["x"]}), tmp_path / "notes.parquet")
    with pytest.raises(UsageError, match="--keep_columns ward"):
        read_note_table(tmp_path / "notes.parquet", keep_columns=["ward"])
    with pytest.raises(UsageError, match="an id, text or output column"):
        read_note_table(tmp_path / "notes.parquet", keep_columns=["text"])


def test_csv_is_read_as_spark_reads_it(tmp_path):
    path = tmp_path / "notes.csv"
    # RFC 4180: a quoted field holds line breaks (CRLF kept) and doubled quotes; an empty field is null, quoted or
    # not; every column a string.
    path.write_bytes(b'note_id,text,ward\n1,"Aspirin 81 mg\r\nPO ""daily""",007\n2,,B\n3,"",\n')
    table = read_note_table(path, keep_columns=["ward"])
    assert table.ids == ["1", "2", "3"]
    assert table.texts == ['Aspirin 81 mg\r\nPO "daily"', None, None]
    assert table.kept.column("ward").to_pylist() == ["007", "B", None]


def test_parquet_integer_ids_binary_text_and_folders_of_parts(tmp_path):
    pq.write_table(pa.table({"note_id": pa.array([1, 2], pa.int32()), "text": ["a", "b"]}), tmp_path / "ints.parquet")
    table = read_note_table(tmp_path / "ints.parquet")
    assert check_rows(table.ids, table.texts)[2] == ["1", "2"]
    pq.write_table(pa.table({"note_id": ["a", "b"], "text": pa.array([b"x", None], pa.binary())}),
                   tmp_path / "binary.parquet")
    table = read_note_table(tmp_path / "binary.parquet")
    assert [f.kind for f in check_rows(table.ids, table.texts)[1]] == ["non_string_text", "null_text"]
    parts = tmp_path / "parts"
    parts.mkdir()
    for i in range(2):
        pq.write_table(pa.table({"note_id": [f"p{i}"], "text": [f"note {i}"]}), parts / f"part-{i:05d}.parquet")
    assert table_format(parts) == "parquet"
    assert sorted(read_note_table(parts).ids) == ["p0", "p1"]


def test_a_broken_table_is_one_line_without_the_text_it_quotes(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text(f'note_id,text\n1,"{SECRET} 5 mg",extra,fields\n', encoding="utf-8")
    with pytest.raises(DataError) as caught:
        read_note_table(path)
    assert SECRET not in str(caught.value) and "notes.csv: not a readable csv table" in str(caught.value)
    (tmp_path / "notes.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="notes.parquet: not a readable parquet table"):
        read_note_table(tmp_path / "notes.parquet")
    with pytest.raises(UsageError, match="cannot tell the table's format"):
        table_format(tmp_path / "notes.xlsx")


def test_output_columns_hold_no_text_unless_asked():
    assert entity_schema().names == ["document_id", "id", "type", "start", "end", "confidence"]
    assert entity_schema(with_text=True).names[-1] == "text"
    record = {"document_id": "n1", "id": "T1",
              "drug": {"type": "Drug", "start": 0, "end": 7, "text": "Aspirin", "confidence": 0.9},
              "attributes": [{"id": "T2", "type": "Strength", "start": 8, "end": 13, "text": "81 mg",
                              "confidence": 0.8, "relation": "Strength-Drug", "relation_confidence": 1.0}]}
    for with_text in (False, True):
        rows = medication_rows([record], with_text)
        table = pa.Table.from_pylist(rows, schema=medication_schema(with_text))
        assert ("Aspirin" in json.dumps(table.to_pylist())) is with_text
        assert table.to_pylist()[0]["attributes"][0]["relation"] == "Strength-Drug"
