"""spark_annotation: Spark reads and checks a table's rows exactly as note_tables does on one machine (the same notes,
the same text to the character, the same failures by id), and ships the library the executors import."""

import json
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clinical_ner_crf.note_tables import check_rows, read_note_table

pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed: `pip install -r requirements-spark.txt` "
                                                "(make test installs it)")
from clinical_ner_crf import spark_annotation  # noqa: E402  (imports pyspark)

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[1]").appName("test_spark_annotation")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def spark_rows(spark, path, fmt, keep=()):
    rows = spark_annotation.read_checked_rows(spark, str(path), fmt, "note_id", "text", list(keep)).collect()
    return sorted(((row["document_id"], row["failure"], row["text"] if row["failure"] is None else None,
                    *[row[name] for name in keep]) for row in rows),
                  key=repr)


def local_rows(path, keep=()):
    table = read_note_table(path, keep_columns=list(keep))
    good, failures, document_ids = check_rows(table.ids, table.texts, table.malformed)
    kept = table.kept.to_pylist()
    rows = [(document_ids[i], None, table.texts[i], *[kept[i][name] for name in keep]) for i in good]
    rows += [(f.document_id, f.kind, None, *[kept[f.row - 1][name] for name in keep]) for f in failures]
    return sorted(rows, key=repr)


def test_json_lines_rows_are_checked_as_on_one_machine(spark, tmp_path):
    lines = [{"note_id": "n1", "text": "Aspirin 81 mg\r\nPO daily.\u2028 \u00b5g", "ward": 3},
             {"note_id": 2, "text": 81, "ward": "B"}, "not JSON", {"note_id": "n3", "text": ["a list"]},
             {"note_id": "n4"}, [1, 2], {"note_id": "d", "text": "x"}, {"note_id": "d", "text": "y"},
             {"note_id": 2.5, "text": "x"}, {"note_id": None, "text": "x", "ward": 1.5}, {"note_id": 7, "text": ""}]
    path = tmp_path / "notes.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n\n",
                    encoding="utf-8")
    expected = local_rows(path, keep=["ward"])
    assert spark_rows(spark, path, "json", keep=["ward"]) == expected
    kinds = sorted(str(row[1]) for row in expected)
    assert kinds == sorted(["None", "non_string_text", "malformed_line", "non_string_text", "null_text",
                            "malformed_line", "duplicate_id", "duplicate_id", "bad_id", "null_id", "None"])


def test_csv_rows_are_read_to_the_character_as_on_one_machine(spark, tmp_path):
    path = tmp_path / "notes.csv"
    path.write_bytes(b'note_id,text,ward\n1,"Aspirin 81 mg\r\nPO ""daily"", 5\xc2\xb5g",007\n2,,B\n3,"",\n'
                     b'4,"a, b",\n4,c,\n')
    assert spark_rows(spark, path, "csv", keep=["ward"]) == local_rows(path, keep=["ward"])
    assert ("1", None, 'Aspirin 81 mg\r\nPO "daily", 5\u00b5g', "007") in local_rows(path, keep=["ward"])


def test_parquet_types_decide_as_on_one_machine(spark, tmp_path):
    pq.write_table(pa.table({"note_id": pa.array([1, 2, 2, None], pa.int64()), "text": ["a", "b", "c", "d"]}),
                   tmp_path / "ints.parquet")
    assert spark_rows(spark, tmp_path / "ints.parquet", "parquet") == local_rows(tmp_path / "ints.parquet")
    pq.write_table(pa.table({"note_id": ["a", "b"], "text": pa.array([b"x", None], pa.binary())}),
                   tmp_path / "binary.parquet")
    assert spark_rows(spark, tmp_path / "binary.parquet", "parquet") == local_rows(tmp_path / "binary.parquet") == \
        [("a", "non_string_text", None), ("b", "null_text", None)]


def test_the_executors_get_the_library_and_paths_are_told_apart(tmp_path):
    names = zipfile.ZipFile(spark_annotation.library_zip(tmp_path)).namelist()
    assert "modeling_crf.py" in names and "clinical_ner_crf/spark_annotation.py" in names
    assert "clinical_ner_crf/note_tables.py" in names and not [name for name in names if "__pycache__" in name]
    assert spark_annotation.is_local_path("/data/notes") and spark_annotation.is_local_path("file:///data/notes")
    assert not spark_annotation.is_local_path("hdfs:///warehouse/notes")
    assert not spark_annotation.is_local_path("s3a://bucket/notes")
    assert str(spark_annotation.local_path("file:///data/notes")) == "/data/notes"
