"""The README's picture of a review page (review_notes.py): docs/review_page.png, from synthetic notes only.

    .venv/bin/python bench/review_screenshot.py          # after `make quickstart`: its data and synthetic test notes

A model that shows what the page is for needs errors and doubts: by default the quickstart's model recipe
(configs/quickstart.json, on the quickstart's synthetic data) stopped after ``--train_steps`` (60) steps, in a
temporary folder (about 30 s on 2 CPU cores); ``--model_name_or_path`` takes a trained one instead (the quickstart's
own is nearly always right and sure). The first ``--notes`` notes of a gold brat folder (the quickstart's synthetic
test notes) are copied into the temporary folder, annotated with annotate_notes.py (``--relations rule``) and
reviewed against their gold with review_notes.py; the page with the most kinds of difference from gold (then the one
whose first difference comes first) is shot in headless Chromium (Playwright driving /usr/bin/chromium: no browser
download), scrolled only as far as its first difference needs.
Every note must be a synthetic one (its first line is ``synthetic_n2c2.SYNTHETIC_HEADER``): a picture for the README
never shows real notes. Nothing is written but the picture.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from common import REPO_DIR, command

from clinical_ner_crf.documents import read_text
from clinical_ner_crf.review_pages import INDEX_FILE, REVIEW_DIRNAME
from clinical_ner_crf.synthetic_n2c2 import SYNTHETIC_HEADER

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
QUICKSTART = REPO_DIR / "outputs" / "quickstart"

# The kinds of difference a page counts (its #gold-differences data- attributes): the picture shows as many as it can.
KINDS = ("missed", "spurious", "wrongType", "wrongBoundary", "wrongLink")
# Where to scroll a page (as little as shows its first difference with text after it) and how many kinds of
# difference the text then shows on one screen.
VIEW = """height => {
    const marks = [...document.querySelectorAll('#note-text [data-diff]:not([data-diff="correct"])')]
        .map(mark => [mark.getBoundingClientRect().top + scrollY, mark.dataset.diff]);
    const scroll = marks.length ? Math.max(0, marks[0][0] - (height - 320)) : 0;
    const seen = new Set(marks.filter(([top]) => top > scroll + 80 && top < scroll + height - 30)
        .map(([, kind]) => kind));
    return [seen.size, scroll];
}"""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_name_or_path", default=None,
                        help="A trained model folder (default: train one for --train_steps steps).")
    parser.add_argument("--train_steps", type=int, default=60)
    parser.add_argument("--gold_dir", default=str(QUICKSTART / "brat" / "test"),
                        help="A brat folder of synthetic notes (.txt + gold .ann).")
    parser.add_argument("--notes", type=int, default=6, help="How many of its notes to annotate and review.")
    parser.add_argument("--output", default=str(REPO_DIR / "docs" / "review_page.png"))
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=900)
    return parser.parse_args(argv)


def main(argv=None) -> Path:
    args = parse_args(argv)
    gold_files = sorted(Path(args.gold_dir).glob("*.ann"))[: args.notes]
    if not gold_files:
        sys.exit(f"no .ann files in {args.gold_dir}: run `make quickstart` first, or give --gold_dir")
    for ann in gold_files:
        if not read_text(ann.with_suffix(".txt")).startswith(SYNTHETIC_HEADER):
            sys.exit(f"{ann.with_suffix('.txt')} is not a synthetic note: the README's picture shows synthetic notes "
                     "only")
    if args.model_name_or_path is None and not (QUICKSTART / "data").is_dir():
        sys.exit(f"no {QUICKSTART / 'data'} to train on: run `make quickstart` first, or give --model_name_or_path")
    from playwright.sync_api import sync_playwright  # requirements-browser.txt; /usr/bin/chromium from apt

    with tempfile.TemporaryDirectory(prefix="review_screenshot_") as work:
        work = Path(work)
        gold, notes, out = work / "gold", work / "notes", work / "annotated"
        gold.mkdir(), notes.mkdir()
        for ann in gold_files:
            shutil.copyfile(ann, gold / ann.name)
            shutil.copyfile(ann.with_suffix(".txt"), gold / f"{ann.stem}.txt")
            shutil.copyfile(ann.with_suffix(".txt"), notes / f"{ann.stem}.txt")
        model = args.model_name_or_path
        if model is None:  # an early stop of the quickstart recipe: enough to find most entities, not all, nor surely
            model = str(work / "model")
            command("run_ner_crf").main([str(REPO_DIR / "configs" / "quickstart.json"), "--dataset_path",
                                         str(QUICKSTART / "data"), "--output_dir", model, "--max_steps",
                                         str(args.train_steps), "--do_eval", "false", "--do_predict", "false",
                                         "--eval_strategy", "no", "--save_strategy", "no",
                                         "--load_best_model_at_end", "false"])
        command("annotate_notes").main(["--model_name_or_path", model, "--input_dir", str(notes),
                                        "--output_dir", str(out), "--relations", "rule", "--device", "cpu"])
        command("review_notes").main(["--output_dir", str(out), "--input_dir", str(notes), "--gold_dir", str(gold)])
        review = out / REVIEW_DIRNAME
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            choices = []
            for path in sorted(review.glob("*.html")):
                if path.name == INDEX_FILE:
                    continue
                page.goto(path.as_uri())
                counts = page.evaluate("() => Object.assign({}, document.getElementById('gold-differences').dataset)")
                kinds = sum(int(counts.get(kind, 0)) > 0 for kind in KINDS)
                shown, scroll = page.evaluate(VIEW, args.height)
                choices.append((-shown, -kinds, path.name, scroll, path))
            _, fewer_kinds, _, scroll, best = min(choices)
            page.goto(best.as_uri())
            page.evaluate(f"window.scrollTo(0, {scroll})")  # the privacy line stays at the top: it is sticky
            output = Path(args.output)
            output.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(output))
            browser.close()
    print(f"{output}: {best.stem}, {-fewer_kinds} kinds of difference from gold")
    return output


if __name__ == "__main__":
    main()
