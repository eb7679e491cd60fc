#!/usr/bin/env python
"""Do all the ways of calling a trained model agree? Measured on a real model folder (default: the quickstart's).

    make quickstart && .venv/bin/python bench/entry_points.py [--model_name_or_path outputs/quickstart/model]

On a note of over 10,000 characters made of synthetic test notes (never the training notes), it
compares the entities of ``annotate_notes.py``, ``NoteAnnotator``, ``pipeline(model=path,
trust_remote_code=True)`` and ``pipeline(model=<model object>, pipeline_class=NerPipeline)``, and
counts invalid IOB2 continuations in the stock pipeline's output for a loaded model object on short
medication sentences (the README's and the sample's). Writes ``bench/results/entry_points.json``:
counts and offsets only, never text.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import common  # noqa: F401  (puts the repository on sys.path)

annotate_notes = common.command("annotate_notes")  # the command, called in-process as from its command line

SENTENCES = (
    "Started metoprolol 25 mg PO BID for hypertension.",
    "Aspirin 81 mg PO daily, heparin 5000 units SC q8h.",
    "She developed a rash after amoxicillin 500 mg PO TID.",
    "1. Lisinopril 10 mg tablet by mouth once a day for 7 days.",
    "Vancomycin 1 g IV q12h for MRSA bacteremia.",
)


def long_note(min_characters: int = 10_000) -> str:
    from clinical_ner_crf.synthetic_n2c2 import generate_notes

    notes, seed = [], 0
    while sum(len(n) for n in notes) < min_characters:
        notes += [note.text for note in generate_notes(4, seed=1000 + seed, split="test")]
        seed += 1
    return "\n\n".join(notes)


def invalid_continuations(tags: list[str]) -> int:
    """I-X after anything but B-X / I-X (adjacent subwords, O included)."""
    return sum(tag.startswith("I-") and previous[2:] != tag[2:] for previous, tag in zip(["O"] + tags, tags))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_name_or_path", default=str(common.REPO_DIR / "outputs" / "quickstart" / "model"))
    parser.add_argument("--output", default=str(common.RESULTS_DIR / "entry_points.json"))
    args = parser.parse_args(argv)
    model_dir = Path(args.model_name_or_path)
    if not (model_dir / "config.json").is_file():
        print(f"{model_dir}: no trained model (run `make quickstart` first)", file=sys.stderr)
        return 2

    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    from clinical_ner_crf.note_annotator import NoteAnnotator
    from clinical_ner_crf.windows import NerPipeline

    text = long_note()
    with tempfile.TemporaryDirectory() as scratch:
        notes, out = Path(scratch) / "notes", Path(scratch) / "out"
        notes.mkdir()
        (notes / "long.txt").write_text(text, encoding="utf-8")
        assert annotate_notes.main(["--model_name_or_path", str(model_dir), "--input_dir", str(notes),
                                    "--output_dir", str(out)]) == 0
        records = [json.loads(line) for line in (out / "entities.jsonl").read_text(encoding="utf-8").splitlines()]
    paths = {"annotate_notes.py": [(r["type"], r["start"], r["end"]) for r in records]}
    paths["NoteAnnotator"] = [(e.type, e.start, e.end) for e in NoteAnnotator.from_pretrained(str(model_dir))(text)]
    by_path = pipeline("token-classification", model=str(model_dir), trust_remote_code=True,
                       aggregation_strategy="simple")
    paths["pipeline(model=path)"] = [(e["entity_group"], e["start"], e["end"]) for e in by_path(text)]
    model = AutoModelForTokenClassification.from_pretrained(str(model_dir), trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    by_object = pipeline("token-classification", model=model, tokenizer=tokenizer, pipeline_class=NerPipeline,
                         aggregation_strategy="simple")
    paths["pipeline(model=object, pipeline_class=NerPipeline)"] = [
        (e["entity_group"], e["start"], e["end"]) for e in by_object(text)]
    reference = paths["annotate_notes.py"]

    stock = pipeline("token-classification", model=model, tokenizer=tokenizer, ignore_labels=[])
    stock_tags = [[w["entity"] for w in stock(sentence)] for sentence in SENTENCES]
    result = {
        "model": str(model_dir),
        "model_type": model.config.model_type,
        "note_characters": len(text),
        "tokenizer_model_max_length": tokenizer.model_max_length,
        "entities": {name: len(entities) for name, entities in paths.items()},
        "identical_to_annotate_notes": {name: entities == reference for name, entities in paths.items()},
        "last_entity_end": {name: max((end for _, _, end in entities), default=None) for name, entities in paths.items()},
        "stock_pipeline_model_object": {
            "sentences": len(SENTENCES),
            "subwords_tagged": sum(len(tags) for tags in stock_tags),
            "non_O_subwords": sum(tag != "O" for tags in stock_tags for tag in tags),
            "invalid_continuations": sum(invalid_continuations(tags) for tags in stock_tags),
        },
    }
    common.write_json(Path(args.output), result)
    print(json.dumps(result, indent=2))
    return 0 if all(result["identical_to_annotate_notes"].values()) and not \
        result["stock_pipeline_model_object"]["invalid_continuations"] else 1


if __name__ == "__main__":
    sys.exit(main())
