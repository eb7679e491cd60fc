"""review_pages.py: the review site of an annotation folder, read back from the DOM of a real browser (headless
Chromium through Playwright): every entity and relation at its offsets, the gold differences against the scorer,
escaping, no network request, overlaps, the notes to annotate next."""

import json
import os
import shutil
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from clinical_ner_crf.brat import read_brat_document, write_brat_entities
from clinical_ner_crf.documents import BratEntity, BratFormatError
from clinical_ner_crf.n2c2_scoring import score_brat_folders
from clinical_ner_crf.review_pages import (
    INDEX_FILE, NEXT_TO_ANNOTATE_DIRNAME, NEXT_TO_ANNOTATE_FILE, PRIVACY_LINE, REVIEW_DIRNAME, annotation_priority,
    entity_differences, rank_for_annotation, write_review_site,
)
from clinical_ner_crf.synthetic_n2c2 import generate_notes, write_notes
from conftest import command
from test_annotate_notes import train_tiny_crf, write_txt

CHROMIUM = Path("/usr/bin/chromium")
# Launched as is: no download (never `playwright install`), no sandbox (root in CI), nothing in the background.
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
SECRET = "Zyxolimab"  # a word of a note that must never reach a log or a file outside review/
# Markup in a note, a carriage return before a later entity: escaped, and every offset after it still right.
INJECTION_NOTE = (f"Started {SECRET} 5 mg PO daily. <script>window.pwned = 1</script> & <b>bold</b> &amp; "
                  "\"quoted\" 'x' <img src=\"https://example.com/x.png\">\r\nMetoprolol 25 mg PO BID.\r\n")
LOW_CONFIDENCE = 0.6


# ---------------------------------------------------------------------------
# The browser, and an annotation folder to review
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module; the tests skip, saying what to install, where there is none."""
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: the review pages are checked in a real browser; install it with "
                    "`apt-get install -y chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the Python package playwright is missing: `pip install playwright` (no `playwright install`: "
                    f"the tests launch {CHROMIUM})")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, path: Path):
    """A page loaded from its file, with every request it made and every script error it raised."""
    page = browser.new_page()
    page.requests, page.errors = [], []
    page.on("request", lambda request: page.requests.append(request.url))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(path.as_uri())
    return page


# What a note page shows, read from its DOM.
PAGE_FACTS = """() => {
  const data = element => Object.assign({}, element.dataset);
  const differences = document.getElementById("gold-differences");
  return {
    entities: [...document.querySelectorAll("#note-text [data-entity-id]")].map(e => ({
      ...data(e), text: e.textContent, classes: [...e.classList],
      parent: e.parentElement.closest("[data-entity-id]")?.dataset.entityId || null,
      after: getComputedStyle(e, "::after").content})),
    gold: [...document.querySelectorAll("#note-text [data-gold-id]")].map(e => ({...data(e), text: e.textContent})),
    relations: [...document.querySelectorAll("[data-relation-type]")].map(data),
    text: document.getElementById("note-text").textContent,
    differences: differences ? data(differences) : null,
    rows: [...document.querySelectorAll("#gold-differences tbody tr")].map(row => row.dataset.diff),
    privacy: document.querySelector(".privacy").textContent,
    scripts: document.scripts.length,
    title: document.title,
  };
}"""


def page_facts(browser, path: Path) -> dict:
    page = open_page(browser, path)
    facts = page.evaluate(PAGE_FACTS)
    facts["requests"], facts["errors"] = page.requests, page.errors
    page.close()
    return facts


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def annotate_synthetic_notes(root: Path) -> SimpleNamespace:
    """Synthetic notes with gold brat files and one note of markup, annotated by a tiny trained CRF as a user does
    (``--relations rule`` links without a relation model, ``--word_predictions`` keeps every word's confidence)."""
    notes = generate_notes(4, seed=7, split="test")
    gold = write_notes(notes, root / "gold")
    notes_dir = root / "notes"
    for note in notes:
        write_txt(notes_dir / f"{note.doc_id}.txt", note.text)
    write_txt(notes_dir / "markup.txt", INJECTION_NOTE)
    out = root / "out"
    command("annotate_notes").main(["--model_name_or_path", str(train_tiny_crf(root / "model")), "--input_dir",
                                    str(notes_dir), "--output_dir", str(out), "--relations", "rule",
                                    "--word_predictions", "--device", "cpu"])
    assert json.loads((out / "summary.json").read_text())["notes_annotated"] == 5
    return SimpleNamespace(root=root, notes=notes_dir, gold=gold, out=out, review=out / REVIEW_DIRNAME)


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    return annotate_synthetic_notes(tmp_path_factory.mktemp("review"))


@pytest.fixture(scope="module")
def site(annotated):
    """The site as the library writes it: with gold, a low-confidence threshold and two notes to annotate next."""
    counts = write_review_site(annotated.out, annotated.notes, annotated.gold, LOW_CONFIDENCE, rank=2)
    return SimpleNamespace(**vars(annotated), counts=counts)


def merged(spans) -> list[tuple[int, int]]:
    """Spans as the characters they cover: sorted, touching ones joined."""
    result = []
    for start, end in sorted(spans):
        if result and start <= result[-1][1]:
            result[-1] = (result[-1][0], max(end, result[-1][1]))
        else:
            result.append((start, end))
    return result


# ---------------------------------------------------------------------------
# The pages
# ---------------------------------------------------------------------------


def test_every_entity_and_relation_of_each_ann_is_on_its_page_at_its_offsets(site, browser):
    records = {(r["document_id"], r["id"]): r for r in read_jsonl(site.out / "entities.jsonl")}
    links = {(m["document_id"], a["id"], m["id"]): a["relation_confidence"]
             for m in read_jsonl(site.out / "medications.jsonl") for a in m["attributes"]}
    notes = sorted(site.notes.glob("*.txt"))
    assert site.counts["notes"] == len(notes) == 5
    low_seen = 0
    for txt in notes:
        document = read_brat_document(txt, site.out / f"{txt.stem}.ann")
        text = txt.read_bytes().decode("utf-8")
        facts = page_facts(browser, site.review / f"{txt.stem}.html")
        assert facts["text"] == text, "the page holds the note exactly, every character once"
        assert PRIVACY_LINE in facts["privacy"] and "must not be uploaded" in facts["privacy"]
        assert not facts["errors"] and facts["scripts"] == 0
        elements = {}
        for element in facts["entities"]:
            start, end = int(element["start"]), int(element["end"])
            assert element["text"] == text[start:end], element
            elements.setdefault(element["entityId"], []).append(element)
        assert set(elements) == {entity.id for entity in document.entities}
        for entity in document.entities:
            record = records[(txt.stem, entity.id)]
            pieces = elements[entity.id]
            assert merged((int(p["start"]), int(p["end"])) for p in pieces) == merged(entity.spans)
            for piece in pieces:
                assert piece["type"] == entity.type
                assert float(piece["confidence"]) == pytest.approx(record["confidence"], abs=1e-6)
                assert ("low-confidence" in piece["classes"]) == (record["confidence"] < LOW_CONFIDENCE)
            last = max(pieces, key=lambda piece: int(piece["start"]))
            assert f"{record['confidence']:.2f}" in last["after"]  # the label beside it (generated content)
            if record["confidence"] < LOW_CONFIDENCE:
                assert "\u26a0" in last["after"]  # the visible mark
                low_seen += 1
        shown = {(r["relationId"], r["relationType"], r["arg1"], r["arg2"]): float(r["confidence"])
                 for r in facts["relations"]}
        assert shown == {(r.id, r.type, r.arg1, r.arg2): links[(txt.stem, r.arg1, r.arg2)]
                         for r in document.relations}
    assert low_seen == site.counts["low_confidence_entities"] > 0
    assert sum(1 for txt in notes for r in read_brat_document(txt, site.out / f"{txt.stem}.ann").relations) > 10


def test_the_differences_add_up_to_what_evaluate_ablations_reports(site, browser, tmp_path):
    command("evaluate_ablations").main(["--gold_brat", str(site.gold), "--pred_brat", str(site.out), "--output_dir",
                                        str(tmp_path / "report")])
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    # Each note's counts against the scorer evaluate_ablations.py runs (score_brat_folders), note by note.
    scored = score_brat_folders(site.gold, site.out, per_document=True)["per_document"]
    by_note = dict(zip(scored["documents"], zip(scored["entities"]["strict"], scored["relations"]["strict"])))
    totals = {key: 0 for key in ("tp", "fp", "fn", "relation_tp", "relation_fp", "relation_fn")}
    kinds_seen = set()
    for document_id, (entities, relations) in by_note.items():
        facts = page_facts(browser, site.review / f"{document_id}.html")
        counts = {key: int(value) for key, value in facts["differences"].items()}
        assert (counts["strictTp"], counts["strictFp"], counts["strictFn"]) == tuple(entities)
        assert (counts["relationTp"], counts["relationFp"], counts["relationFn"]) == tuple(relations)
        # fn = missed + wrong type + wrong boundary, fp = spurious + wrong type + wrong boundary (links likewise)
        assert counts["strictFn"] == counts["missed"] + counts["wrongType"] + counts["wrongBoundary"]
        assert counts["strictFp"] == counts["spurious"] + counts["wrongType"] + counts["wrongBoundary"]
        assert counts["relationFn"] == counts["missedLink"] + counts["wrongLink"]
        assert counts["relationFp"] == counts["spuriousLink"] + counts["wrongLink"]
        for kind, key in (("missed", "missed"), ("spurious", "spurious"), ("wrong-type", "wrongType"),
                          ("wrong-boundary", "wrongBoundary"), ("missed-link", "missedLink"),
                          ("spurious-link", "spuriousLink"), ("wrong-link", "wrongLink")):
            assert facts["rows"].count(kind) == counts[key], kind  # one row of the table per difference
            kinds_seen |= {kind} if counts[key] else set()
        # Every gold entity the prediction did not get is drawn in the text, at its offsets.
        assert len(facts["gold"]) >= counts["missed"] + counts["wrongType"] + counts["wrongBoundary"]
        text = (site.notes / f"{document_id}.txt").read_bytes().decode("utf-8")
        assert all(g["text"] == text[int(g["start"]):int(g["end"])] for g in facts["gold"])
        for key, value in zip(("tp", "fp", "fn", "relation_tp", "relation_fp", "relation_fn"), (*entities, *relations)):
            totals[key] += value
    assert kinds_seen >= {"missed", "spurious", "wrong-type", "wrong-boundary", "missed-link"}, kinds_seen
    # The sums are the report's micro counts, and the index states them.
    micro, relation_micro = report["strict"]["micro"], report["relations"]["strict"]["micro"]
    assert (totals["tp"], totals["fp"], totals["fn"]) == (micro["tp"], micro["fp"], micro["fn"])
    assert (totals["relation_tp"], totals["relation_fp"], totals["relation_fn"]) == \
        (relation_micro["tp"], relation_micro["fp"], relation_micro["fn"])
    page = open_page(browser, site.review / INDEX_FILE)
    index = page.evaluate("() => Object.assign({}, document.getElementById('notes').dataset)")
    assert {key: int(value) for key, value in index.items()} == {
        "strictTp": micro["tp"], "strictFp": micro["fp"], "strictFn": micro["fn"],
        "relationTp": relation_micro["tp"], "relationFp": relation_micro["fp"], "relationFn": relation_micro["fn"]}
    assert site.counts["gold"]["entities"] == {key: micro[key] for key in ("tp", "fp", "fn")}


def test_no_page_makes_a_network_request_and_note_markup_stays_text(site, browser):
    pages = [site.review / INDEX_FILE, *sorted(site.review.glob("*.html"))]
    for path in pages:
        page = open_page(browser, path)
        page.wait_for_load_state("load")
        assert page.requests and all(url.startswith("file://") for url in page.requests), page.requests
        assert not page.errors
        if path.name == "markup.html":
            assert page.evaluate("() => window.pwned") is None
            assert page.evaluate("() => document.querySelectorAll('#note-text b, #note-text img, script').length") == 0
            assert page.evaluate("() => document.getElementById('note-text').textContent") == INJECTION_NOTE
        page.close()
    assert site.counts["gold"]["without_page"] == [] and "markup" not in site.counts["gold"]["without_prediction_file"]


def test_the_index_lists_every_note_with_its_confidences_and_sorts_by_a_column(site, browser):
    page = open_page(browser, site.review / INDEX_FILE)
    rows = page.evaluate("""() => [...document.querySelectorAll('#notes tbody tr')].map(row =>
        [...row.cells].map(cell => cell.dataset.value))""")
    headers = page.evaluate("() => [...document.querySelectorAll('#notes thead th')].map(th => th.textContent)")
    assert [row[0] for row in rows] == sorted(path.stem for path in site.notes.glob("*.txt"))
    records = read_jsonl(site.out / "entities.jsonl")
    for row in rows:
        confidences = [r["confidence"] for r in records if r["document_id"] == row[0]]
        assert int(row[headers.index("entities")]) == len(confidences)
        assert float(row[headers.index("lowest confidence")]) == pytest.approx(min(confidences), abs=1e-4)
        assert float(row[headers.index("mean confidence")]) == pytest.approx(sum(confidences) / len(confidences),
                                                                            abs=1e-4)
    # Clicking a header sorts by it (numbers as numbers), again the other way.
    column = headers.index("lowest confidence")
    page.locator("#notes thead th button").nth(column).click()
    ascending = page.evaluate(f"() => [...document.querySelectorAll('#notes tbody tr')].map(r => "
                              f"parseFloat(r.cells[{column}].dataset.value))")
    assert ascending == sorted(ascending)
    page.locator("#notes thead th button").nth(column).click()
    descending = page.evaluate(f"() => [...document.querySelectorAll('#notes tbody tr')].map(r => "
                               f"parseFloat(r.cells[{column}].dataset.value))")
    assert descending == sorted(ascending, reverse=True) and not page.errors
    page.close()


def test_the_notes_to_annotate_next_are_the_least_confident_and_a_brat_folder(site):
    # The score computed here from annotate_notes.py's own files: every word's confidence (predictions.jsonl).
    words, entities = {}, {}
    for record in read_jsonl(site.out / "predictions.jsonl"):
        words.setdefault(record["document_id"], []).extend(record["confidences"])
    for record in read_jsonl(site.out / "entities.jsonl"):
        entities.setdefault(record["document_id"], []).append(record["confidence"])
    expected = sorted(words, key=lambda d: (min(words[d]), min(entities.get(d, [1.0])), d))[:2]
    assert site.counts["next_to_annotate"] == expected
    assert (site.review / NEXT_TO_ANNOTATE_FILE).read_text() == "".join(f"{d}\n" for d in expected)
    brat = site.review / NEXT_TO_ANNOTATE_DIRNAME
    assert sorted(path.name for path in brat.iterdir()) == sorted(
        ["annotation.conf", *(f"{d}{suffix}" for d in expected for suffix in (".ann", ".txt"))])
    for document_id in expected:
        assert (brat / f"{document_id}.txt").read_bytes() == (site.notes / f"{document_id}.txt").read_bytes()
        assert (brat / f"{document_id}.ann").read_bytes() == (site.out / f"{document_id}.ann").read_bytes()
        assert read_brat_document(brat / f"{document_id}.txt").entities  # a valid brat pair, ready to correct
    config = (brat / "annotation.conf").read_text()
    assert "[entities]\nDrug\n" in config and "Strength-Drug\tArg1:Strength, Arg2:Drug" in config


def test_rank_for_annotation_orders_by_the_least_confident_word_then_entity_then_id():
    notes = {
        "b": {"word_confidences": [0.9, 0.4], "entity_confidences": [0.7]},
        "a": {"word_confidences": [0.4, 0.95], "entity_confidences": [0.7]},  # ties with b: by id
        "c": {"word_confidences": [0.4], "entity_confidences": [0.5]},  # ties on words, less confident entity
        "d": {"word_confidences": [0.2, None]},  # the least confident word of all; unknown ones left out
        "e": {},  # nothing known: uncertainty 0, last
    }
    assert rank_for_annotation(notes) == ["d", "c", "a", "b", "e"]
    assert rank_for_annotation(notes, 2) == ["d", "c"]
    assert annotation_priority([0.25, 0.5], [0.3]) == (0.75, 0.3) and annotation_priority([]) == (0.0, 1.0)


def test_differences_are_paired_as_documented_and_count_as_the_scorer():
    def entity(entity_id, entity_type, start, end):
        return BratEntity(entity_id, entity_type, ((start, end),), "", 0)

    gold = [entity("T1", "Drug", 0, 5), entity("T2", "Dose", 10, 15), entity("T3", "Route", 20, 25),
            entity("T4", "Form", 30, 35), entity("T5", "Drug", 0, 5)]  # T5: an exact duplicate, counted once
    predicted = [entity("T1", "Drug", 0, 5), entity("T2", "Strength", 10, 15), entity("T3", "Route", 21, 27),
                 entity("T4", "ADE", 40, 45), entity("T5", "Form", 31, 33)]
    differences = entity_differences(gold, predicted)
    assert [(p.id, g.id) for p, g in differences.correct] == [("T1", "T1")]
    assert [(p.id, g.id) for p, g in differences.wrong_type] == [("T2", "T2")]
    assert [(p.id, g.id) for p, g in differences.wrong_boundary] == [("T3", "T3"), ("T5", "T4")]
    assert [p.id for p in differences.spurious] == ["T4"] and differences.missed == []
    assert differences.counts == (1, 4, 3)


def test_overlapping_and_discontinuous_entities_render_as_nested_or_split_elements(tmp_path, browser):
    # A note whose name and text need escaping, with entities no model writes: nested, crossing, the same span twice,
    # discontinuous. Owner-only, so the page is too.
    name = "a&b <i>#1"
    text = "Aspirin 81 mg daily\nfor <pain> & fever.\n"
    notes, out = tmp_path / "notes", tmp_path / "out"
    write_txt(notes / f"{name}.txt", text)
    os.chmod(notes / f"{name}.txt", 0o600)
    entities = [("Drug", ((0, 13),)), ("Strength", ((8, 19),)), ("Dosage", ((8, 10),)), ("Route", ((0, 13),)),
                ("Reason", ((0, 7), (24, 30)))]
    out.mkdir()
    write_brat_entities(out / f"{name}.ann", entities, text)
    # Confidences for two of them only: the others are unknown, never guessed.
    (out / "entities.jsonl").write_text(
        json.dumps({"document_id": name, "id": "T1", "type": "Drug", "start": 0, "end": 13, "confidence": 0.3}) + "\n"
        + json.dumps({"document_id": name, "id": "T3", "type": "Dosage", "start": 8, "end": 10, "confidence": 0.9})
        + "\n" + "{torn line\n")
    counts = write_review_site(out, notes, low_confidence=0.5)
    review = out / REVIEW_DIRNAME
    assert counts["unknown_confidences"] == 3 and counts["low_confidence_entities"] == 1
    page_file = next(path for path in review.glob("*.html") if path.name != INDEX_FILE)
    assert page_file.name == f"{name}.html"
    assert stat.S_IMODE(page_file.stat().st_mode) == 0o600 and stat.S_IMODE(review.stat().st_mode) == 0o700

    # Reached from the index by its link, as a user clicks it.
    page = open_page(browser, review / INDEX_FILE)
    page.get_by_role("link", name=name).click()
    page.wait_for_load_state("load")
    facts = page.evaluate(PAGE_FACTS)
    assert page.url == page_file.as_uri() and facts["title"] == f"{name}: review" and not page.errors
    page.close()
    assert facts["text"] == text
    pieces = {}
    for element in facts["entities"]:
        assert element["text"] == text[int(element["start"]):int(element["end"])]
        pieces.setdefault(element["entityId"], []).append(element)
    for number, (_, spans) in enumerate(entities, start=1):
        assert merged((int(p["start"]), int(p["end"])) for p in pieces[f"T{number}"]) == merged(spans)
    assert pieces["T1"][0]["confidence"] == "0.3" and "low-confidence" in pieces["T1"][0]["classes"]
    assert pieces["T2"][0]["confidence"] == "" and "n/a" in pieces["T2"][-1]["after"]  # the label: on its last piece
    # Nested where one lies inside another, split where they cross (Strength 8-19 crosses Drug 0-13 at 13).
    assert [(p["start"], p["end"], p["parent"]) for p in pieces["T2"]] == [("8", "13", "T4"), ("13", "19", None)]
    assert pieces["T3"][0]["parent"] == "T2"
    assert len(pieces["T5"]) == 2 and pieces["T5"][1]["fragments"] == "0 7;24 30"


def test_a_notes_folder_that_is_not_the_annotated_one_is_refused_naming_the_file(tmp_path, annotated):
    notes = tmp_path / "other_notes"
    for path in annotated.notes.glob("*.txt"):
        write_txt(notes / path.name, path.read_bytes().decode("utf-8").replace("a", "e"))
    out = tmp_path / "out"
    shutil.copytree(annotated.out, out, ignore=shutil.ignore_patterns(REVIEW_DIRNAME))
    with pytest.raises(BratFormatError) as raised:
        write_review_site(out, notes)
    assert raised.value.kind == "text_mismatch" and raised.value.path.endswith(".ann")
    assert SECRET not in str(raised.value)  # offsets and hashes, never the text
    assert not (out / REVIEW_DIRNAME).exists() and not list(out.glob(f".{REVIEW_DIRNAME}*"))
