"""review_notes.py as a user runs it: the site of an annotate_notes.py folder, the notes to annotate next, re-runs,
the notes folder annotate_notes.py recorded, one-line mistakes, and nothing with note text outside review/."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clinical_ner_crf.command_line import UsageError, run_main
from clinical_ner_crf.folder_safety import MANIFEST_FILE, Manifest
from clinical_ner_crf.review_pages import INDEX_FILE, NEXT_TO_ANNOTATE_FILE, REVIEW_DIRNAME
from conftest import REPO_ROOT, command
from test_review_pages import SECRET, annotate_synthetic_notes, browser, open_page  # noqa: F401 (fixtures)

review_notes = command("review_notes")  # the command, called in-process as from its command line
CLI_ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    return annotate_synthetic_notes(tmp_path_factory.mktemp("review_notes"))


@pytest.fixture
def folder(annotated, tmp_path):
    """A fresh copy of the annotation folder (without a site) for a test that writes one."""
    out = tmp_path / "out"
    shutil.copytree(annotated.out, out, ignore=shutil.ignore_patterns(REVIEW_DIRNAME))
    return out


def snapshot(root: Path, leave_out: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``root`` but those under ``leave_out``: its hash and mode."""
    return {str(path.relative_to(root)): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mode)
            for path in sorted(root.rglob("*")) if path.is_file() and leave_out not in path.parents}


def test_the_command_as_a_user_types_it(annotated, browser):
    before = snapshot(annotated.root, annotated.review)
    done = subprocess.run([sys.executable, "review_notes.py", "--output_dir", str(annotated.out), "--input_dir",
                           str(annotated.notes), "--gold_dir", str(annotated.gold), "--rank", "2"], cwd=REPO_ROOT,
                          env=CLI_ENV, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    chosen = (annotated.review / NEXT_TO_ANNOTATE_FILE).read_text().split()
    assert lines[:2] == chosen and len(chosen) == 2  # the ids, one a line, first
    assert lines[-1].split()[:3] == ["review", "site", str(annotated.review / INDEX_FILE)]  # the page to open, last
    assert SECRET not in done.stdout + done.stderr and "<script>" not in done.stdout + done.stderr

    # Nothing outside review/ changed but the folder's manifest, which now names review/ as the toolkit's.
    after = snapshot(annotated.root, annotated.review)
    changed = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
    assert changed == {str(Path("out") / MANIFEST_FILE)}
    assert Manifest(annotated.out).owns(REVIEW_DIRNAME) and SECRET not in (annotated.out / MANIFEST_FILE).read_text()
    assert not [path.name for path in annotated.root.rglob(".*") if "lock" in path.name or "partial" in path.name]

    # The site opens in a browser; a note is one click away.
    page = open_page(browser, annotated.review / INDEX_FILE)
    page.get_by_role("link", name=chosen[0]).click()
    page.wait_for_load_state("load")
    assert page.url.endswith(f"/{REVIEW_DIRNAME}/{chosen[0]}.html")
    assert page.evaluate("() => document.querySelectorAll('[data-entity-id]').length") > 0
    assert all(url.startswith("file://") for url in page.requests) and not page.errors
    page.close()


def test_a_rerun_is_refused_without_overwrite_and_leaves_the_old_site(folder, annotated, capsys):
    review_notes.main(["--output_dir", str(folder), "--input_dir", str(annotated.notes)])
    index = folder / REVIEW_DIRNAME / INDEX_FILE
    old = index.read_bytes()
    capsys.readouterr()
    with pytest.raises(SystemExit) as raised:  # as a user runs it: main() under run_main
        run_main(lambda: review_notes.main(["--output_dir", str(folder), "--input_dir", str(annotated.notes),
                                            "--low_confidence", "0.9"]), "review_notes.py")
    assert raised.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == f"review_notes.py: error: {folder / REVIEW_DIRNAME} exists (an earlier review): pass --overwrite " \
                   "to replace it"
    assert index.read_bytes() == old and not list(folder.glob(f".{REVIEW_DIRNAME}*"))
    # With --overwrite the new site replaces the old one as a whole.
    review_notes.main(["--output_dir", str(folder), "--input_dir", str(annotated.notes), "--low_confidence", "0.9",
                       "--overwrite"])
    assert index.read_bytes() != old and b"below 0.9" in index.read_bytes()
    assert not list(folder.glob(f".{REVIEW_DIRNAME}*"))


def test_the_notes_folder_defaults_to_the_one_annotate_notes_recorded(folder, annotated):
    # annotate_notes.py records the notes folder (resolved) in summary.json: the review finds it from anywhere.
    summary_path = folder / "summary.json"
    summary = json.loads(summary_path.read_text())
    assert summary["settings"]["input_dir"] == str(annotated.notes.resolve())
    counts = review_notes.main(["--output_dir", str(folder)])
    assert counts["notes"] == len(list(annotated.notes.glob("*.txt")))
    # A folder an earlier version wrote (no input_dir recorded), and notes moved away: one line each.
    del summary["settings"]["input_dir"]
    summary_path.write_text(json.dumps(summary))
    with pytest.raises(UsageError, match=r"does not record the notes folder .*: pass --input_dir NOTES$"):
        review_notes.main(["--output_dir", str(folder), "--overwrite"])
    summary["settings"]["input_dir"] = str(annotated.root / "moved_away")
    summary_path.write_text(json.dumps(summary))
    with pytest.raises(UsageError, match="moved_away, is not there: pass --input_dir NOTES$"):
        review_notes.main(["--output_dir", str(folder), "--overwrite"])


@pytest.mark.parametrize("arguments, message", [
    (["--output_dir", "{T}/missing"], "--output_dir {T}/missing: no such folder"),
    (["--output_dir", "{O}", "--input_dir", "{N}", "--low_confidence", "1.5"], "--low_confidence must be between 0"),
    (["--output_dir", "{O}", "--input_dir", "{N}", "--rank", "0"], "--rank must be at least 1"),
    (["--output_dir", "{O}", "--input_dir", "{N}", "--gold_dir", "{T}/no_gold"], "--gold_dir {T}/no_gold: no such"),
    (["--output_dir", "{O}", "--input_dir", "{N}", "--rank", "many"], "argument --rank: invalid int value"),
    (["--output_dir", "{O}", "--input_dir", "{O}"], "is inside --input_dir"),
])
def test_mistakes_are_one_line_with_status_2_and_write_nothing(folder, annotated, tmp_path, capsys, arguments,
                                                               message):
    def filled(item: str) -> str:
        return item.replace("{T}", str(tmp_path)).replace("{O}", str(folder)).replace("{N}", str(annotated.notes))

    with pytest.raises(SystemExit) as raised:
        run_main(lambda: review_notes.main([filled(item) for item in arguments]), "review_notes.py")
    assert raised.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("review_notes.py: error: ") and filled(message) in line, line
    assert not (folder / REVIEW_DIRNAME).exists()
