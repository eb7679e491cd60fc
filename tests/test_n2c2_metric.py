"""metrics/n2c2/: the n2c2 scorer as an ``evaluate`` metric, loaded by path, offline; its numbers are report.json's.

The metric writes its inputs into a temporary folder pair and calls ``score_brat_folders``; these tests check that
every number equals what ``evaluate_ablations.py --gold_brat --pred_brat`` writes for the same notes as files, that
``evaluate.load(path)`` works offline in a fresh process from another folder (the library found from the path it was
given), and that bad inputs are one clear ``ValueError`` that quotes no note text.
"""

import doctest
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clinical_ner_crf.documents import BratFormatError
from clinical_ner_crf.files import REPORT_JSON_FILE
from clinical_ner_crf.n2c2_scoring import score_brat_folders
from conftest import LIBRARY, REPO_ROOT, assert_plain, command

os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")  # before evaluate is imported (in the fixture)

EVALUATE = command("evaluate_ablations")
METRIC_DIR = REPO_ROOT / "metrics" / "n2c2"
README_SECTION = "## Scoring as an `evaluate` metric"

# Four notes as (id, text, gold entities, gold relations, predicted entities, predicted relations); an entity is
# (type, word) or (type, word, occurrence) or (type, [(start, end), ...]); a relation (type, arg1 index, arg2 index)
# into that side's entities. Predictions None: the note has none (an empty .ann).
A_TEXT = "Aspirin 81 mg PO daily for chest pain.\nHeparin 5000 units SC q8h.\n"
B_TEXT = "Patient had nausea and\nvomiting due to morphine.\n"
C_TEXT = "Lisinopril 10 mg tablet by mouth once a day.\r\nNo changes.\r\n"  # CRLF: two characters, as read
D_TEXT = "Vancomycin 1 g IV for 7 days.\n"
NOTES = [
    ("noteA", A_TEXT,
     [("Drug", "Aspirin"), ("Strength", "81 mg"), ("Route", "PO"), ("Frequency", "daily"), ("Reason", "chest pain"),
      ("Drug", "Heparin"), ("Strength", "5000 units"), ("Route", "SC"), ("Frequency", "q8h")],
     [("Strength-Drug", 1, 0), ("Route-Drug", 2, 0), ("Frequency-Drug", 3, 0), ("Reason-Drug", 4, 0),
      ("Strength-Drug", 6, 5), ("Route-Drug", 7, 5), ("Frequency-Drug", 8, 5)],
     # 81 and pain: lenient only; SC given the wrong type; q8h linked to the wrong drug.
     [("Drug", "Aspirin"), ("Strength", "81"), ("Route", "PO"), ("Frequency", "daily"), ("Reason", "pain"),
      ("Drug", "Heparin"), ("Form", "SC"), ("Frequency", "q8h")],
     [("Strength-Drug", 1, 0), ("Route-Drug", 2, 0), ("Reason-Drug", 4, 0), ("Frequency-Drug", 7, 0)]),
    ("noteB", B_TEXT,
     [("ADE", [(12, 18), (23, 31)]), ("Drug", "morphine")], [("ADE-Drug", 0, 1)],
     # nausea alone: lenient only; a type of the system's own: a false positive.
     [("ADE", "nausea"), ("Drug", "morphine"), ("Problem", "Patient")], [("ADE-Drug", 0, 1)]),
    ("noteC", C_TEXT,
     [("Drug", "Lisinopril"), ("Strength", "10 mg"), ("Form", "tablet"), ("Route", "by mouth"),
      ("Frequency", "once a day")],
     [("Strength-Drug", 1, 0), ("Form-Drug", 2, 0)], None, None),
    ("noteD", D_TEXT,
     [("Drug", "Vancomycin"), ("Strength", "1 g"), ("Route", "IV"), ("Duration", "for 7 days")],
     [("Duration-Drug", 3, 0), ("Route-Drug", 2, 0)],
     [("Drug", "Vancomycin"), ("Strength", "1 g"), ("Route", "IV"), ("Duration", "for 7 days"), ("Route", "IV")],
     [("Duration-Drug", 3, 0), ("Route-Drug", 2, 0)]),
]
# A malformed prediction line (offsets past the text): skipped and listed, by both.
BAD_LINE = "T99\tDrug 500 510\tnothing\n"


def ann(text: str, entities, relations) -> str:
    lines = []
    for number, entity in enumerate(entities, start=1):
        if isinstance(entity[1], list):
            spans = entity[1]
        else:
            occurrence = entity[2] if len(entity) > 2 else 0
            start = -1
            for _ in range(occurrence + 1):
                start = text.index(entity[1], start + 1)
            spans = [(start, start + len(entity[1]))]
        fragments = ";".join(f"{start} {end}" for start, end in spans)
        lines.append(f"T{number}\t{entity[0]} {fragments}\t{' '.join(text[start:end] for start, end in spans)}\n")
    for number, (kind, arg1, arg2) in enumerate(relations, start=1):
        lines.append(f"R{number}\t{kind} Arg1:T{arg1 + 1} Arg2:T{arg2 + 1}\n")
    return "".join(lines)


def notes_as_inputs() -> dict:
    """The notes as the metric takes them (note D's prediction with the malformed line)."""
    predictions = ["" if pred is None else ann(text, pred, pred_relations) + (BAD_LINE if doc_id == "noteD" else "")
                   for doc_id, text, _, _, pred, pred_relations in NOTES]
    return {"predictions": predictions, "references": [ann(text, gold, rel) for _, text, gold, rel, _, _ in NOTES],
            "texts": [text for _, text, *_ in NOTES], "document_ids": [doc_id for doc_id, *_ in NOTES]}


def write_folders(folder: Path, inputs: dict) -> tuple[Path, Path]:
    gold, pred = folder / "gold", folder / "pred"
    gold.mkdir()
    pred.mkdir()
    for doc_id, text, reference, prediction in zip(inputs["document_ids"], inputs["texts"], inputs["references"],
                                                   inputs["predictions"]):
        (gold / f"{doc_id}.txt").write_bytes(text.encode("utf-8"))
        (gold / f"{doc_id}.ann").write_bytes(reference.encode("utf-8"))
        (pred / f"{doc_id}.ann").write_bytes(prediction.encode("utf-8"))
    return gold, pred


def report_json(tmp_path: Path, gold: Path, pred: Path, *flags: str) -> dict:
    out = tmp_path / "report"
    EVALUATE.main(["--gold_brat", str(gold), "--pred_brat", str(pred), "--output_dir", str(out), *flags])
    report = json.loads((out / REPORT_JSON_FILE).read_text(encoding="utf-8"))
    del report["gold_dir"], report["pred_dir"]
    return report


def expected_flat(report: dict) -> dict:
    """The flat names, built from report.json here and not by the module's own code."""
    flat = {}
    sections = [("entity", report)] + ([("relation", report["relations"])] if "relations" in report else [])
    for side, section in sections:
        for mode in ("strict", "lenient"):
            scores = section[mode]
            for average in ("micro", "macro", "weighted"):
                for key, short in (("precision", "p"), ("recall", "r"), ("f1", "f1")):
                    flat[f"{side}_{mode}_{average}_{short}"] = scores[average][key]
            for key in ("tp", "fp", "fn"):
                flat[f"{side}_{mode}_micro_{key}"] = scores["micro"][key]
            for name, row in scores["per_type"].items():
                for key, short in (("precision", "p"), ("recall", "r"), ("f1", "f1"), ("tp", "tp"), ("fp", "fp"),
                                   ("fn", "fn")):
                    flat[f"{side}_{mode}_{name}_{short}"] = row[key]
            for key, short in (("precision", "p"), ("recall", "r"), ("f1", "f1")):
                if "per_document_macro" in scores:
                    flat[f"{side}_{mode}_document_macro_{short}"] = scores["per_document_macro"][key]
    flat.update({key: report[key] for key in ("num_documents", "num_gold_entities", "num_pred_entities")})
    return flat


@pytest.fixture(scope="module")
def modules_cache(tmp_path_factory):
    """evaluate's caches for this file's in-process loads: folders of the test's, not the user's home."""
    import evaluate

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evaluate.config, "HF_MODULES_CACHE", tmp_path_factory.mktemp("hf_modules"))
        patch.setattr(evaluate.config, "HF_METRICS_CACHE", tmp_path_factory.mktemp("hf_metrics"))
        yield evaluate.config.HF_METRICS_CACHE


@pytest.fixture
def n2c2(modules_cache):
    """A fresh instance of the metric, loaded by path as a user loads it."""
    import evaluate

    return evaluate.load(str(METRIC_DIR), cache_dir=str(modules_cache))


def test_the_metric_reports_what_evaluate_ablations_reports(n2c2, tmp_path):
    inputs = notes_as_inputs()
    expected = report_json(tmp_path, *write_folders(tmp_path, inputs))
    results = n2c2.compute(**inputs)
    assert_plain(results)
    # The whole report, to the last bit (JSON keeps a float's every digit).
    assert json.loads(json.dumps(results["report"])) == expected
    flat = {key: value for key, value in results.items() if key != "report"}
    assert flat == expected_flat(expected)
    # The notes say what they should: every kind of case is there, so the equality above means something.
    assert expected["relations"]["strict"]["micro"]["tp"] and expected["relations"]["lenient"]["micro"]["fp"]
    assert flat["entity_strict_micro_f1"] < flat["entity_lenient_micro_f1"] < 1
    assert flat["relation_strict_micro_f1"] < flat["relation_lenient_micro_f1"] < 1
    assert flat["entity_strict_Form_fp"] == 1 and flat["entity_strict_Form_fn"] == 1  # SC in note A; note C
    assert '"document": "noteD", "line": 8' in json.dumps(expected)  # the malformed line, listed
    assert expected["duplicate_entities"] == {"gold": 0, "pred": 1}
    assert {"entity_strict_micro_p", "entity_lenient_micro_r", "entity_strict_macro_f1", "entity_strict_Drug_f1",
            "relation_strict_micro_f1", "relation_strict_Strength-Drug_f1", "entity_strict_micro_tp"} <= set(flat)
    for word in ("Aspirin", "morphine", "Lisinopril", "Vancomycin"):
        assert word not in json.dumps(results)


def test_options_reach_the_scorer_as_the_command_line_passes_them(n2c2, tmp_path):
    inputs = notes_as_inputs()
    gold, pred = write_folders(tmp_path, inputs)
    expected = report_json(tmp_path, gold, pred, "--brat_entity_types", "Drug", "ADE", "--relation_setting",
                           "gold_entities")
    results = n2c2.compute(**inputs, entity_types=["Drug", "ADE"], relation_setting="gold_entities")
    assert json.loads(json.dumps(results["report"])) == expected
    assert set(expected["strict"]["per_type"]) == {"Drug", "ADE"}
    assert expected["relations"]["setting"] == "gold_entities"
    # Default ids: doc0000, ... (the same notes, in the same order: the same numbers).
    del inputs["document_ids"]
    by_default = n2c2.compute(**inputs, per_document=True)["report"]
    assert by_default["per_document"]["documents"] == ["doc0000", "doc0001", "doc0002", "doc0003"]
    assert '"document": "doc0003", "line": 8' in json.dumps(by_default)


def test_the_official_switch_is_passed_through_when_the_scorer_has_one(n2c2, tmp_path):
    if "official" not in inspect.signature(score_brat_folders).parameters:
        pytest.skip("score_brat_folders has no official= here")
    inputs = notes_as_inputs()
    expected = score_brat_folders(*write_folders(tmp_path, inputs), official=True)
    del expected["gold_dir"], expected["pred_dir"]
    assert n2c2.compute(**inputs, official=True)["report"] == expected


def test_the_docstring_example_runs(n2c2, monkeypatch):
    """The example evaluate shows (``inputs_description``), from the repository's root as it says."""
    monkeypatch.chdir(REPO_ROOT)
    example = doctest.DocTestParser().get_doctest(n2c2.info.inputs_description, {}, "n2c2", None, 0)
    assert len(example.examples) == 7
    assert doctest.DocTestRunner().run(example).failed == 0


def test_notes_given_one_by_one_score_as_a_batch(n2c2):
    inputs = notes_as_inputs()
    for prediction, reference in zip(inputs["predictions"], inputs["references"]):
        n2c2.add(prediction=prediction, reference=reference)
    one_by_one = n2c2.compute(texts=inputs["texts"], document_ids=inputs["document_ids"])
    assert one_by_one == n2c2.compute(**inputs)


@pytest.mark.parametrize("change, message", [
    (dict(predictions=["T1\tDrug 0 7\tAspirin\n"]), "1 predictions but 4 references"),
    (dict(texts=None), "texts is required"),
    (dict(texts=[A_TEXT]), "1 texts for 4 notes"),
    (dict(references=[["T1\tDrug 0 7\tAspirin\n"]] * 4), "references[0] must be a string, not list"),
    (dict(predictions=["", "", None, ""]), "predictions[2] must be a string, not NoneType"),
    (dict(document_ids=["a", "b", "a", "c"]), "document_ids repeat: a"),
    (dict(document_ids=["a", "../b", "c", "d"]), "document_ids[1] '../b' cannot be a file name"),
    (dict(bogus=1), "unknown option bogus: score_brat_folders takes"),
])
def test_bad_inputs_are_one_clear_value_error(n2c2, change, message):
    inputs = {**notes_as_inputs(), **change}
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        n2c2.compute(**inputs)
    assert "Aspirin" not in str(raised.value) and "tmp" not in str(raised.value)


def test_a_malformed_gold_line_names_the_input_not_the_temporary_file(n2c2):
    inputs = notes_as_inputs()
    inputs["references"][1] += "T9\tDrug 3 1\tAspirin\n"
    with pytest.raises(BratFormatError) as raised:
        n2c2.compute(**inputs)
    assert str(raised.value).startswith("references[1] (noteB):4: ")
    assert "Aspirin" not in str(raised.value)


def fresh_python(code: str, cwd: Path, hf_home: Path) -> subprocess.CompletedProcess:
    """``code`` in a fresh process, offline, without PYTHONPATH, with a cache of its own."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "HF_MODULES_CACHE")}
    env.update(HF_HUB_OFFLINE="1", HF_EVALUATE_OFFLINE="1", HF_HOME=str(hf_home))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


LOAD_AND_SCORE = """
import json, sys, evaluate
n2c2 = evaluate.load(sys.argv[1] if len(sys.argv) > 1 else {path!r})
text = "Started metoprolol 25 mg PO BID.\\n"
gold = "T1\\tDrug 8 18\\tmetoprolol\\nT2\\tStrength 19 24\\t25 mg\\n"
results = n2c2.compute(predictions=[gold], references=[gold], texts=[text])
import clinical_ner_crf
print(json.dumps({{"library": clinical_ner_crf.__file__, "f1": results["entity_strict_micro_f1"]}}))
"""


def test_it_loads_offline_in_a_fresh_process_from_another_folder(tmp_path):
    """From another working folder, by absolute path, with HF_HUB_OFFLINE=1 and HF_EVALUATE_OFFLINE=1: the library
    comes from where the metric was loaded, even when evaluate's cache already holds the same n2c2.py from elsewhere
    (its record names that place). First a metric Space's layout (the library copied beside n2c2.py, loaded by the
    file's path as app.py loads it), then the repository's."""
    elsewhere, space = tmp_path / "elsewhere", tmp_path / "space"
    elsewhere.mkdir()
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(METRIC_DIR, space, ignore=ignore)
    shutil.copytree(REPO_ROOT / LIBRARY, space / LIBRARY, ignore=ignore)
    hf_home = tmp_path / "hf_home"
    for path, library in ((space / "n2c2.py", space / LIBRARY), (METRIC_DIR, REPO_ROOT / LIBRARY)):
        result = fresh_python(LOAD_AND_SCORE.format(path=str(path)), elsewhere, hf_home)
        assert result.returncode == 0, result.stderr[-3000:]
        printed = json.loads(result.stdout.splitlines()[-1])
        assert printed == {"library": str(library / "__init__.py"), "f1": 1.0}
        assert "metoprolol" not in result.stderr
    records = list(hf_home.rglob("n2c2.json"))
    assert len(records) == 1 and str(space) in records[0].read_text()  # the trap the module steps around
    # The notes stayed in memory: nothing evaluate cached on disk holds their text.
    assert not [path for path in hf_home.rglob("*") if path.is_file() and path.suffix != ".py"
                and b"metoprolol" in path.read_bytes()]


def test_a_checkout_whose_library_is_not_the_one_imported_is_an_import_error(modules_cache, tmp_path):
    """One process holds one clinical_ner_crf (here the repository's): another checkout's metric, the same n2c2.py
    (evaluate's cache gives back the module already imported), would score with a library that is not its own."""
    import evaluate

    other = tmp_path / "other_checkout"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO_ROOT / LIBRARY, other / LIBRARY, ignore=ignore)
    shutil.copytree(METRIC_DIR, other / "metrics" / "n2c2", ignore=ignore)
    with pytest.raises(ImportError, match=re.escape(f"{LIBRARY} is already imported from {REPO_ROOT}, but this "
                                                    f"metric belongs to {other}")):
        evaluate.load(str(other / "metrics" / "n2c2"), cache_dir=str(modules_cache))


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", markdown, flags=re.M | re.S)


def test_the_readme_example_runs_as_written(modules_cache, monkeypatch, capsys):
    """The README's section (test_readme_blocks.py skips it: its copy of the repository has no metrics/) and the
    card's example, the same code, run as written from the repository's root; it prints what its comment says. (In
    this process: the fresh-process load is the test above's, and a second fresh process costs the suite 5 s.)"""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index(README_SECTION):].split("\n## ")[0]
    [block] = python_blocks(section)
    assert python_blocks((METRIC_DIR / "README.md").read_text(encoding="utf-8"))[0] == block
    monkeypatch.chdir(REPO_ROOT)
    capsys.readouterr()
    exec(compile(block, "README.md", "exec"), {"__name__": "__readme__"})
    shown = [line[2:] for line in block.splitlines() if line.startswith("# ")]
    assert capsys.readouterr().out.splitlines() == shown


def test_the_space_files_are_there():
    """The card's header is evaluate's metric Spaces' own; the Space runs app.py with requirements.txt."""
    card = (METRIC_DIR / "README.md").read_text(encoding="utf-8")
    header = card.split("---\n")[1]
    for line in ("sdk: gradio", "app_file: app.py", "pinned: false", "- evaluate", "- metric"):
        assert line in header.splitlines()
    assert re.search(r"^title: .+$", header, re.M) and re.search(r"^emoji: .+$", header, re.M)
    assert "launch_gradio_widget" in (METRIC_DIR / "app.py").read_text(encoding="utf-8")
    assert "evaluate==" in (METRIC_DIR / "requirements.txt").read_text(encoding="utf-8")
