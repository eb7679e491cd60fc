#!/usr/bin/env python
"""Review what annotate_notes.py wrote: a static HTML site of its notes, to read before trusting a model.

    python annotate_notes.py --model_name_or_path runs/bert_crf --relations rule --input_dir notes/ --output_dir out/
    python review_notes.py --output_dir out/ --input_dir notes/                  # then open out/review/index.html
    python review_notes.py --output_dir out/ --input_dir notes/ --gold_dir gold/ --overwrite   # + errors vs gold
    python review_notes.py --output_dir out/ --input_dir notes/ --rank 20 --overwrite  # + the 20 notes to annotate next

What it writes, into ``OUTPUT_DIR/review/`` only (``clinical_ner_crf/review_pages.py`` has the details):
``index.html``, every note with its entity and relation counts, mean and lowest entity confidence, how many
entities are below ``--low_confidence``, its uncertainty and, with ``--gold_dir``, its errors (sorted by clicking a
column header); and a page per note: the text with each entity highlighted in its type's colour, its confidence
beside it, the entities below ``--low_confidence`` marked, the relations drug by drug and, with ``--gold_dir``
(a brat folder of ``.txt``/``.ann``), every difference: missed, spurious, wrong type, wrong boundary, wrong link.
The strict counts are those of ``evaluate_ablations.py --gold_brat GOLD --pred_brat OUTPUT_DIR``: per note,
false negatives = missed + wrong type + wrong boundary, false positives = spurious + wrong type + wrong boundary.
The pages are self-contained (inline CSS, a few lines of inline JavaScript, no request to any network).

The notes: ``--input_dir``, else the ``input_dir`` that annotate_notes.py recorded in ``OUTPUT_DIR/summary.json``
(``settings``). Every ``.ann`` of OUTPUT_DIR whose note is there gets a page; its text is checked against the note.

``--rank N``: prints the N document ids, one per line, of the notes whose annotation would teach the model most,
and writes them to ``review/next_to_annotate.txt`` and ``review/next_to_annotate/`` (each note's ``.txt`` and its
predicted ``.ann``: a brat folder ready for correction). The score is uncertainty: ``1 - the lowest word
confidence`` of the note (every word's confidence of its decoded tag, from ``predictions.jsonl`` when
annotate_notes.py ran with ``--word_predictions``, else the words of its entities, from ``entities.jsonl``), highest
first; ties go to the note whose least confident entity is less confident, then to the document id
(``review_pages.rank_for_annotation``, callable on a dict of confidences).

The pages hold note text: every page says so at its top, and they are written only beside the predictions, never to
be uploaded. ``review/`` is written as a whole (a hidden sibling moved into place) while this command holds the
locks of OUTPUT_DIR (no annotate_notes.py run writes it meanwhile) and of ``review/``; an existing ``review/`` is
refused unless ``--overwrite``, and then replaced only once the new one is complete. Files holding note text are no
more readable than the notes. Messages name files and counts, never note text. Bad arguments are one line with exit
status 2; an ``.ann`` that cannot be read, or whose text is not its note's, one line naming the file with status 1.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from clinical_ner_crf.command_line import SHARED_FLAG_HELP, UsageError, parse_command, run_main
from clinical_ner_crf.console import configure_output, print_outputs
from clinical_ner_crf.documents import BratFormatError
from clinical_ner_crf.files import SUMMARY_FILE, check_output_dir
from clinical_ner_crf.folder_safety import FolderLock, check_output_apart
from clinical_ner_crf.review_pages import (
    DEFAULT_LOW_CONFIDENCE, NEXT_TO_ANNOTATE_DIRNAME, NEXT_TO_ANNOTATE_FILE, REVIEW_DIRNAME, write_review_site,
)

logger = logging.getLogger(__name__)
SCRIPT = "review_notes.py"
DESCRIPTION = __doc__.split("\n\n")[0]


@dataclass
class ReviewArguments:
    output_dir: str = field(metadata={
        "help": f"The folder annotate_notes.py wrote (its --output_dir). The site goes into its {REVIEW_DIRNAME}/ "
                "folder; nothing else in it is changed."})
    input_dir: Optional[str] = field(default=None, metadata={
        "help": "The notes annotate_notes.py annotated (default: the input_dir recorded in "
                f"OUTPUT_DIR/{SUMMARY_FILE})."})
    gold_dir: Optional[str] = field(default=None, metadata={
        "help": "Gold brat folder (.txt + .ann) of these notes: each page shows the differences (missed, spurious, "
                "wrong type, wrong boundary, wrong link), counted as evaluate_ablations.py --gold_brat counts them."})
    low_confidence: float = field(default=DEFAULT_LOW_CONFIDENCE, metadata={
        "help": "Entities whose confidence is below this are marked on the pages and counted in the index."})
    rank: Optional[int] = field(default=None, metadata={
        "help": f"Print the N notes whose annotation would teach the model most (the least confident word first) and "
                f"write them to {REVIEW_DIRNAME}/{NEXT_TO_ANNOTATE_FILE} and {REVIEW_DIRNAME}/"
                f"{NEXT_TO_ANNOTATE_DIRNAME}/ (notes and predicted .ann, a brat folder to correct)."})
    overwrite: bool = field(default=False, metadata={
        "help": SHARED_FLAG_HELP["overwrite"] + f" Here: the earlier {REVIEW_DIRNAME}/ inside --output_dir, replaced "
                "as a whole once the new one is complete; the annotations beside it are never touched."})


def check_arguments(args: ReviewArguments) -> None:
    """What the arguments show before any file is read: one line each."""
    output_dir = Path(args.output_dir)
    if not output_dir.is_dir():
        raise UsageError(f"--output_dir {output_dir}: " + ("not a folder" if output_dir.exists() else "no such folder")
                         + " (give the folder annotate_notes.py wrote)")
    if args.input_dir is not None and not Path(args.input_dir).is_dir():
        raise UsageError(f"--input_dir {args.input_dir}: "
                         + ("not a folder" if Path(args.input_dir).exists() else "no such folder"))
    if args.gold_dir is not None and not Path(args.gold_dir).is_dir():
        raise UsageError(f"--gold_dir {args.gold_dir}: "
                         + ("not a folder" if Path(args.gold_dir).exists() else "no such folder"))
    if not 0.0 <= args.low_confidence <= 1.0:
        raise UsageError(f"--low_confidence must be between 0 and 1, got {args.low_confidence}")
    if args.rank is not None and args.rank < 1:
        raise UsageError(f"--rank must be at least 1, got {args.rank}")


def recorded_notes_dir(output_dir: Path) -> Path:
    """The notes folder annotate_notes.py recorded in ``summary.json`` (``settings.input_dir``)."""
    summary = output_dir / SUMMARY_FILE
    try:
        recorded = json.loads(summary.read_text(encoding="utf-8")).get("settings", {}).get("input_dir")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if not recorded:
        raise UsageError(f"{summary} does not record the notes folder (annotate_notes.py's --input_dir): pass "
                         "--input_dir NOTES")
    if not Path(recorded).is_dir():
        raise UsageError(f"the notes folder recorded in {summary}, {recorded}, is not there: pass --input_dir NOTES")
    return Path(recorded)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    (args,) = parse_command(SCRIPT, (ReviewArguments,), argv, DESCRIPTION)
    configure_output(logger)

    # Inputs first: a mistyped path or value is one line before anything is read or written.
    check_arguments(args)
    output_dir = Path(args.output_dir)
    notes_dir = Path(args.input_dir) if args.input_dir is not None else recorded_notes_dir(output_dir)
    review_dir = output_dir / REVIEW_DIRNAME
    check_output_apart(review_dir, {"--input_dir": notes_dir, "--gold_dir": args.gold_dir})

    # Read while no annotate_notes.py run writes the folder; one command writes review/ at a time; an earlier site is
    # replaced only when asked, checked before any work.
    with FolderLock(output_dir, SCRIPT), FolderLock(review_dir, SCRIPT):
        try:
            check_output_dir(review_dir, args.overwrite)
        except FileExistsError:
            raise UsageError(f"{review_dir} exists (an earlier review): pass --overwrite to replace it") from None
        counts = write_review_site(output_dir, notes_dir, args.gold_dir, args.low_confidence, args.rank,
                                   overwrite=args.overwrite)

    # The chosen notes, one id a line (for a script), then what was written where.
    for document_id in counts["next_to_annotate"] or ():
        print(document_id)
    rows = []
    if counts["next_to_annotate"] is not None:
        rows.append(("next to annotate", review_dir / NEXT_TO_ANNOTATE_FILE,
                     f"{len(counts['next_to_annotate'])} notes, with their .txt and .ann in "
                     f"{review_dir / NEXT_TO_ANNOTATE_DIRNAME}/"))
    headline = (f"{counts['notes']} notes, {counts['entities']} entities ({counts['low_confidence_entities']} below "
                f"{args.low_confidence:g}), {counts['relations']} relations")
    if counts["gold"] is not None:
        entities = counts["gold"]["entities"]
        headline += f"; against gold: {entities['fp']} false positives, {entities['fn']} false negatives (strict)"
    rows.append(("review site", counts["index"], headline))  # last: the page to open
    print_outputs(f"{SCRIPT} wrote (note text: keep it beside the predictions, never upload it):", rows)
    return counts


if __name__ == "__main__":
    run_main(main, SCRIPT, data_errors=(BratFormatError,))
