#!/usr/bin/env python
"""Build an Arrow BIO dataset for drug and attribute NER from n2c2-2018 Track 2 brat notes.

The library does the work (``clinical_ner_crf/``): the tag scheme, words and sentences (``tagging.py``), reading
brat and CoNLL (``brat.py``, ``conll.py``), documents as sentence rows under the entity policies below
(``sentence_examples.py``), down-sampling (``sampling.py``) and writing files (``files.py``). This script reads its
arguments, calls them in order and writes the dataset.

    python prepare_n2c2.py --train_dir n2c2/train --test_dir n2c2/test --output_dir data/n2c2
    python prepare_n2c2.py --synthetic 120 --output_dir data/synthetic
    python prepare_n2c2.py --train_dir phee/brat/train --validation_dir phee/brat/dev \\
        --test_dir phee/brat/test --label_map configs/label_maps/phee_to_n2c2.json --output_dir data/phee
    python prepare_n2c2.py --train_file ncbi/train.tsv --validation_file ncbi/devel.tsv \\
        --test_file ncbi/test.tsv --output_dir data/ncbi

Input
    Brat standoff: ``T`` lines are entities (contiguous ``start end`` or discontinuous
    ``start end;start end`` spans); ``R`` lines are relations (n2c2: ``R1<TAB>Strength-Drug
    Arg1:T5 Arg2:T3``, the attribute then its drug), ``E`` lines events (a relation argument
    ``E2`` is its trigger entity); ``A``, ``M``, ``N``, ``*`` and ``#`` lines are ignored. Text is
    read with ``newline=""`` so offsets are character offsets of the raw file (CRLF files
    included). ``--label_map FILE.json`` maps source types to target types; unmapped types are
    ignored and counted. ``--relation_map FILE.json`` does the same for relation types (needed
    for relations of another scheme: with a label map alone, relations are ignored and counted).
    The tag set holds the types that occur in the data (``--entity_types`` fixes it instead);
    ``stats.json`` lists those left out. CoNLL ``token<TAB>tag`` files become
    documents whose text is the tokens joined by single spaces and the sentences joined by
    newlines (documents split at ``-DOCSTART-``, else one document per sentence).

Policies (every entity that does not end up as its own ``B-`` tag is counted per type in
``stats.json``: nothing disappears silently)
    discontinuous  ``span`` (default): one span from the first start to the last end, as
                   the official n2c2 scorer does; ``first``: the first fragment only;
                   ``drop``: discontinuous entities are dropped.
    word boundary  Words are BERT pre-tokenizer words (``tagging.tokenize_words``). An entity
                   boundary inside a word expands the entity to the whole word (counted as
                   ``expanded``).
    overlap        Overlaps are resolved per document on words, after expansion. Exact
                   duplicates (same type and words) keep one copy. ``longest`` (default)
                   keeps the longest entity and drops the others; ``shortest`` keeps the
                   innermost; ``first`` keeps the earliest start; ``clip`` keeps the
                   longest intact and trims each other entity to its longest run of free
                   words (dropped when none is left). Ties go to the earlier start, then to
                   the label order.
    sentences      Newline-aware splitting for discharge summaries (lists, headings and
                   vitals lines break; wrapped prose does not), never inside an entity.
    relations      A relation is kept when both its arguments became tags (an argument that is an
                   exact duplicate of a kept entity counts as that entity); every other one is
                   counted by reason (``argument_dropped``: lost to a policy above;
                   ``argument_missing``: not an entity of the document; ``duplicate``).

Output (``--output_dir``, written to a temporary directory and moved into place)
    A ``DatasetDict`` (``save_to_disk``) with ``train``, ``validation``, ``test``,
    ``train_downsampled`` and ``validation_downsampled``; ``documents/`` (document_id,
    split, text, entities ``{id, type, start, end}``: what the tags hold, with the source id and
    the final span, relations ``{type, arg1, arg2}``: those kept); ``stats.json`` (counts only,
    never corpus text); ``label_distribution.png``.
    The printed summary holds counts only; error messages may quote the offending span of
    the user's own file. Same inputs and seed give the same dataset.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Sequence

from clinical_ner_crf import documents, reports
from clinical_ner_crf.brat import write_brat_ann
from clinical_ner_crf.command_line import SHARED_FLAG_HELP, UsageError, parse_command, run_main
from clinical_ner_crf.console import configure_output
from clinical_ner_crf.conll import conll_entity_types
from clinical_ner_crf.corpus_formats import read_corpus
from clinical_ner_crf.documents import BratDocument, BratFormatError
from clinical_ner_crf.files import (
    DOCUMENTS_DIRNAME, LABEL_DISTRIBUTION_FILE, STATS_FILE, atomic_open, check_output_dir, note_file_mode,
    set_tree_mode, write_folder_atomically,
)
from clinical_ner_crf.folder_safety import FolderLock, check_output_apart, resolved
from clinical_ner_crf.label_maps import load_label_map, load_relation_map, resolve_labels
from clinical_ner_crf.sampling import downsample_plain, split_validation
from clinical_ner_crf.sentence_examples import (
    CHANGE_CATEGORIES, DROP_CATEGORIES, RELATION_DOCUMENT_CASES, RELATION_DROP_REASONS, RELATION_TYPE_CASES,
    document_to_examples, kept_relations, relation_cases,
)
from clinical_ner_crf.tagging import N2C2_RELATION_TYPES, entity_types_of, is_all_o, tag_type

logger = logging.getLogger(__name__)
SCRIPT = "prepare_n2c2.py"

# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


@dataclass
class DataArguments:
    """Arguments of ``prepare_n2c2.py`` (one input mode: brat folders, CoNLL files or synthetic notes)."""

    output_dir: str = field(metadata={"help": "Where the DatasetDict, documents/, stats.json and the PNG go."})
    train_dir: Optional[str] = field(default=None, metadata={"help": "Brat folder of training .txt/.ann pairs."})
    validation_dir: Optional[str] = field(
        default=None, metadata={"help": "Brat folder used as validation (e.g. PHEE dev) instead of carving it from train."}
    )
    test_dir: Optional[str] = field(default=None, metadata={"help": "Brat folder of test documents (never down-sampled)."})
    train_file: Optional[str] = field(default=None, metadata={"help": "CoNLL token<TAB>tag training file."})
    validation_file: Optional[str] = field(default=None, metadata={"help": "CoNLL validation file."})
    test_file: Optional[str] = field(default=None, metadata={"help": "CoNLL test file."})
    synthetic: Optional[int] = field(
        default=None, metadata={"help": "Generate this many synthetic n2c2-style notes (train + test) and convert them."}
    )
    synthetic_hard: bool = field(
        default=False, metadata={"help": "With --synthetic: the hard mode's notes, whose sentences hold several drugs "
                                         "with attributes before their drug, another drug in between, 'respectively', "
                                         "shared attributes, reasons and ADEs in the next sentence, held and stopped "
                                         "drugs: the nearest drug is often the wrong one (a relation benchmark)."}
    )
    synthetic_test_notes: Optional[int] = field(
        default=None, metadata={"help": "How many of the --synthetic notes are test notes (default: one sixth)."}
    )
    write_brat: Optional[str] = field(
        default=None, metadata={"help": "Also write the gold as brat here: with --synthetic the generated notes "
                                        "(train/, test/); for a real corpus its notes with their entities and relations "
                                        "after the maps and policies (train/, validation/, test/), to score against."}
    )
    label_map: Optional[str] = field(default=None, metadata={"help": SHARED_FLAG_HELP["label_map"]})
    relation_map: Optional[str] = field(default=None, metadata={
        "help": SHARED_FLAG_HELP["relation_map"] + " Without it: the n2c2 relation types, or none with --label_map."})
    entity_types: Optional[str] = field(
        default=None, metadata={"help": "Comma-separated entity types, in tag order (overrides the default scheme)."}
    )
    validation_ratio: float = field(
        default=0.1, metadata={"help": "Share of training documents held out as validation (by document, seeded)."}
    )
    plain_ratio: float = field(
        default=0.2, metadata={"help": "Target share of all-O sentences in the *_downsampled splits."}
    )
    seed: int = field(default=42, metadata={"help": "Seed for the validation split, down-sampling and synthetic notes."})
    overlap: Literal["longest", "shortest", "first", "clip"] = field(
        default="longest", metadata={"help": "Policy for overlapping entities (see the module docstring)."}
    )
    discontinuous: Literal["span", "first", "drop"] = field(
        default="span", metadata={"help": "Policy for discontinuous entities (span = first start to last end)."}
    )
    skip_invalid: bool = field(
        default=False, metadata={"help": "Skip bad documents and annotation lines (each is reported) instead of failing."}
    )
    validate_text: bool = field(
        default=True, metadata={"help": "Check that each span's surface text matches the .txt."}
    )
    overwrite: bool = field(default=False, metadata={"help": SHARED_FLAG_HELP["overwrite"]})
    allow_overlap: bool = field(
        default=False, metadata={"help": "Allow the same note (same text) in more than one split (refused by default: "
                                         "it leaks training notes into the test set)."}
    )
    show_text_in_messages: bool = field(
        default=False, metadata={"help": "Debugging your own files: quote the offending text in error and warning "
                                         "messages (by default they give offsets, lengths and a hash, never text)."}
    )


def _type_order(entity_types: Sequence[str]):
    """Sort key: label order first, then other types alphabetically."""
    return lambda entity_type: (list(entity_types).index(entity_type), "") if entity_type in entity_types else (
        len(entity_types), entity_type)


def _per_type(counts: Counter, category: str, entity_types: Sequence[str]) -> dict[str, int]:
    """``{type: n}`` for one category of a ``(category, type)`` Counter, label order first, no zeros."""
    types = list(entity_types) + sorted({t for c, t in counts if c == category and t not in entity_types})
    return {t: counts[category, t] for t in types if counts[category, t]}


def _split_stats(rows: list[dict], labels: Sequence[str], num_documents: int | None = None) -> dict:
    tag_counts = Counter(tag for row in rows for tag in row["ner_tags"])
    all_o = sum(is_all_o(row["ner_tags"]) for row in rows)
    return {
        "documents": num_documents if num_documents is not None else len({row["document_id"] for row in rows}),
        "sentences": len(rows),
        "tokens": sum(len(row["tokens"]) for row in rows),
        "entities": {t: tag_counts[f"B-{t}"] for t in entity_types_of(labels)},
        "all_o_sentences": all_o,
        "all_o_share": round(all_o / len(rows), 6) if rows else 0.0,
        "tag_counts": {label: tag_counts[label] for label in labels},
    }


def parse_args(argv: Sequence[str] | None = None) -> DataArguments:
    """``prepare_n2c2.py [CONFIG.json] [--flag value ...]``: flags override the config file."""
    (args,) = parse_command(SCRIPT, (DataArguments,), argv, description=__doc__.split("\n\n")[0])
    return args


def _read_inputs(args: DataArguments, label_map, relation_map, entity_types, synthetic_dir: Path | None):
    """Documents per split (``train``, maybe ``validation``, maybe ``test``), the skipped problems, and the
    user's files the text came from (none for the synthetic notes: the permissions policy follows them)."""
    if args.train_file:
        format_name = "conll"
        paths = {"train": args.train_file, "validation": args.validation_file, "test": args.test_file}
    elif synthetic_dir is not None:
        format_name = "brat"
        paths = {split: synthetic_dir / split for split in ("train", "test") if (synthetic_dir / split).exists()}
    else:
        format_name = "brat"
        paths = {"train": args.train_dir, "validation": args.validation_dir, "test": args.test_dir}
    documents: dict[str, list[BratDocument]] = {}
    problems: list[BratFormatError] = []
    for split, path in paths.items():
        if path is None:
            continue
        documents[split], split_problems = read_corpus(
            format_name, path, label_map=label_map, relation_map=relation_map, entity_types=entity_types,
            skip_invalid=args.skip_invalid, validate_text=args.validate_text)
        problems.extend(split_problems)
    if synthetic_dir is not None:
        return documents, problems, []
    sources = [Path(path) for path in paths.values() if path and Path(path).is_file()]
    sources += [file for path in paths.values() if path and Path(path).is_dir() for file in Path(path).iterdir()
                if file.suffix.lower() == ".txt" and file.is_file() and not file.name.startswith(".")]
    return documents, problems, sources


def overlapping_documents(documents: dict[str, list[BratDocument]]) -> dict[str, int]:
    """How many documents each pair of splits shares (same text, e.g. the same folder given twice)."""
    digests = {split: {hashlib.sha256(doc.text.encode("utf-8")).hexdigest() for doc in docs}
               for split, docs in documents.items()}
    splits = list(digests)
    return {f"{a}/{b}": len(digests[a] & digests[b]) for i, a in enumerate(splits) for b in splits[i + 1:]
            if digests[a] & digests[b]}


def main(argv: Sequence[str] | None = None) -> dict:
    """Build the dataset and return the statistics written to ``stats.json``."""
    args = parse_args(argv)
    documents.SHOW_TEXT_IN_MESSAGES = args.show_text_in_messages
    try:
        # One writer per folder: the dataset folder and the synthetic brat folder, locked for the whole run.
        with contextlib.ExitStack() as locks:
            for folder in filter(None, (args.output_dir, args.write_brat)):
                locks.enter_context(FolderLock(folder, "prepare_n2c2.py"))
            return build_dataset(args)
    finally:
        documents.SHOW_TEXT_IN_MESSAGES = False


def build_dataset(args: DataArguments) -> dict:
    configure_output(logger)
    modes = [bool(args.train_dir), bool(args.train_file), args.synthetic is not None]
    if sum(modes) != 1:
        raise UsageError("give exactly one input: --train_dir (brat), --train_file (CoNLL) or --synthetic N")
    if args.synthetic is not None and (args.label_map or args.relation_map or args.entity_types):
        raise UsageError("--synthetic notes use the n2c2 scheme: drop --label_map / --relation_map / --entity_types")
    if args.synthetic_hard and args.synthetic is None:
        raise UsageError("--synthetic_hard needs --synthetic N (it chooses the kind of synthetic notes)")
    if not 0.0 <= args.plain_ratio <= 1.0:
        raise UsageError(f"--plain_ratio must be in [0, 1], got {args.plain_ratio}")
    output_dir = Path(args.output_dir)
    inputs = {f"--{name}": getattr(args, name) for name in ("train_dir", "validation_dir", "test_dir", "train_file",
                                                            "validation_file", "test_file")}
    for flag, folder in (("--output_dir", args.output_dir), ("--write_brat", args.write_brat)):
        if folder:
            check_output_apart(folder, inputs, flag)
    if args.write_brat:
        dataset, brat = resolved(args.output_dir), resolved(args.write_brat)
        if dataset == brat or dataset in brat.parents or brat in dataset.parents:
            raise UsageError(f"--write_brat {args.write_brat} and --output_dir {args.output_dir} overlap: give two "
                             "separate folders")
    check_output_dir(output_dir, args.overwrite)  # fail before the work, not after
    if args.write_brat and args.synthetic is None:
        check_output_dir(Path(args.write_brat), args.overwrite)

    label_map = load_label_map(args.label_map) if args.label_map else None
    relation_map = load_relation_map(args.relation_map) if args.relation_map else None
    requested_types = [t for t in re.split(r"[,\s]+", args.entity_types or "") if t] or None
    conll_types = None
    if args.train_file and not requested_types:
        conll_paths = [p for p in (args.train_file, args.validation_file, args.test_file) if p]
        for path in conll_paths:
            if not Path(path).is_file():
                raise BratFormatError(path, None, "no such file", "missing_file")
        conll_types = conll_entity_types(conll_paths)
    labels = resolve_labels(label_map, requested_types, conll_types)
    entity_types = entity_types_of(labels)

    with tempfile.TemporaryDirectory(prefix="synthetic-brat-") as scratch:
        synthetic_dir = None
        if args.synthetic is not None:
            from clinical_ner_crf.synthetic_n2c2 import write_synthetic_corpus

            num_test = args.synthetic_test_notes if args.synthetic_test_notes is not None else round(args.synthetic / 6)
            if not 0 <= num_test < args.synthetic:
                raise ValueError(f"--synthetic_test_notes must be in [0, {args.synthetic}), got {num_test}")
            synthetic_dir = Path(args.write_brat) if args.write_brat else Path(scratch)
            write_synthetic_corpus(synthetic_dir, args.synthetic - num_test, num_test, seed=args.seed,
                                   hard=args.synthetic_hard,
                                   overwrite=args.overwrite)
        documents, problems, sources = _read_inputs(args, label_map, relation_map, entity_types, synthetic_dir)

    # Leakage: a note in two splits (the same folder twice, or copies) makes the test set lie.
    overlap = overlapping_documents(documents)
    # CoNLL files without -DOCSTART- make each sentence a document: identical short sentences in two
    # official splits are common there and are reported, not refused.
    sentence_documents = all(doc.sentence_spans is not None and len(doc.sentence_spans) == 1
                             for split_documents in documents.values() for doc in split_documents)
    if overlap and sentence_documents:
        logger.warning("identical sentences in more than one split (one sentence per document): %s", overlap)
    elif overlap and not args.allow_overlap:
        raise ValueError("the same notes are in more than one split (" + ", ".join(
            f"{pair}: {count} documents" for pair, count in overlap.items()) + "); pass --allow_overlap if you mean it")
    elif overlap:
        logger.warning("--allow_overlap: documents shared by splits: %s", overlap)

    # The tag set: only the types that occur (a model must not learn, or a card report, types the data lacks),
    # unless --entity_types names them.
    absent_types: list[str] = []
    if not requested_types:
        present = {entity.type for split_documents in documents.values() for doc in split_documents
                   for entity in doc.entities}
        absent_types = [t for t in entity_types if t not in present]
        if absent_types:
            logger.info("entity types absent from the data, left out of the tags: %s", ", ".join(absent_types))
            labels = [label for label in labels if tag_type(label) not in absent_types]
            entity_types = entity_types_of(labels)

    if "validation" not in documents:
        documents["train"], documents["validation"] = split_validation(
            documents["train"], args.validation_ratio, args.seed)
        validation_source = f"{args.validation_ratio:g} of the training documents (seed {args.seed})"
    else:
        validation_source = "given (--validation_dir / --validation_file)"
    for error in problems:
        logger.warning("skipped %s: %s", error.skipped, error)

    # Convert every document; counts are keyed by (category, type) per split, those of relations apart.
    from tqdm.auto import tqdm

    rows: dict[str, list[dict]] = {}
    counts: dict[str, Counter] = {}
    relation_counts: dict[str, Counter] = {}
    annotations: dict[str, list[tuple[list[dict], list[dict]]]] = {}  # per document: entities, relations
    for split in ("train", "validation", "test"):
        if split not in documents:
            continue
        rows[split], counts[split], relation_counts[split], annotations[split] = [], Counter(), Counter(), []
        for doc in tqdm(documents[split], desc=f"converting {split}", unit="doc", disable=None):
            doc_rows, doc_counts, kept = document_to_examples(doc, labels, overlap=args.overlap,
                                                              discontinuous=args.discontinuous, return_entities=True)
            doc_entities = [entity for entity_id, entity in kept.items() if entity["id"] == entity_id]
            doc_relations, doc_relation_counts = kept_relations(doc, kept)
            rows[split].extend(doc_rows)
            counts[split].update(doc_counts)
            relation_counts[split].update(doc_relation_counts)
            relation_counts[split].update(relation_cases(doc.text, doc_entities, doc_relations, doc_rows))
            annotations[split].append((doc_entities, doc_relations))
    for split in ("train", "validation"):
        rows[f"{split}_downsampled"] = downsample_plain(rows[split], args.plain_ratio, args.seed)

    stats = _build_stats(args, labels, documents, rows, counts, problems, validation_source, absent_types)
    stats["relations"] = _relation_stats(relation_counts, annotations)
    stats["unmapped_relation_types"] = {
        split: dict(sorted(sum((doc.unmapped_relation_types for doc in docs), Counter()).items()))
        for split, docs in documents.items()}
    stats["overlapping_documents"] = overlap

    def write(tmp_dir: Path) -> None:
        from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence as DatasetSequence, Value

        features = Features({
            "id": Value("string"),
            "document_id": Value("string"),
            "sentence_index": Value("int32"),
            "tokens": DatasetSequence(Value("string")),
            "ner_tags": DatasetSequence(ClassLabel(names=list(labels))),
            "token_starts": DatasetSequence(Value("int32")),
            "token_ends": DatasetSequence(Value("int32")),
        })
        dataset = DatasetDict({
            split: Dataset.from_dict({name: [row[name] for row in split_rows] for name in features}, features=features)
            for split, split_rows in rows.items()
        })
        # An empty split saved with zero shards cannot be loaded back: give it one.
        dataset.save_to_disk(str(tmp_dir), num_shards={split: 1 for split, r in rows.items() if not r})
        split_of = [(doc, split, annotation) for split in ("train", "validation", "test")
                    for doc, annotation in zip(documents.get(split, []), annotations.get(split, []))]
        Dataset.from_dict({
            "document_id": [doc.doc_id for doc, _, _ in split_of],
            "split": [split for _, split, _ in split_of],
            "text": [doc.text for doc, _, _ in split_of],
            "entities": [entities for _, _, (entities, _) in split_of],
            "relations": [relations for _, _, (_, relations) in split_of],
        }, features=Features({
            "document_id": Value("string"), "split": Value("string"), "text": Value("string"),
            "entities": [{"id": Value("string"), "type": Value("string"), "start": Value("int32"),
                          "end": Value("int32")}],
            "relations": [{"type": Value("string"), "arg1": Value("string"), "arg2": Value("string")}],
        })).save_to_disk(str(tmp_dir / DOCUMENTS_DIRNAME))
        (tmp_dir / STATS_FILE).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
        reports.plot_label_distribution(stats, tmp_dir / LABEL_DISTRIBUTION_FILE, synthetic=stats["synthetic"])
        # The dataset holds the notes' text: no more readable than they are (docs/architecture.md).
        set_tree_mode(tmp_dir, note_file_mode(sources))

    write_folder_atomically(output_dir, args.overwrite, write)
    if args.write_brat and args.synthetic is None:
        write_mapped_gold(Path(args.write_brat), documents, annotations, note_file_mode(sources), args.overwrite)
        logger.info("the mapped gold of every split, as brat: %s", args.write_brat)
    print(format_summary(stats, output_dir))
    if args.write_brat:
        print(f"Wrote {args.write_brat}  (the gold of every split as brat .txt/.ann, to score against)")
    return stats


def write_mapped_gold(folder: Path, documents: dict[str, list[BratDocument]],
                      annotations: dict[str, list[tuple[list[dict], list[dict]]]], mode: int, overwrite: bool) -> None:
    """A real corpus's gold as the dataset holds it (types mapped, entity and relation policies applied) as brat
    folders per split, written atomically: what ``evaluate_ablations.py --gold_brat`` scores predictions against."""
    def write(tmp_dir: Path) -> None:
        for split, split_documents in documents.items():
            for doc, (entities, relations) in zip(split_documents, annotations.get(split, [])):
                index = {entity["id"]: number for number, entity in enumerate(entities)}
                with atomic_open(tmp_dir / split / f"{doc.doc_id}.txt", newline="", mode=mode) as handle:
                    handle.write(doc.text)
                write_brat_ann(tmp_dir / split / f"{doc.doc_id}.ann",
                               [(entity["type"], entity["start"], entity["end"]) for entity in entities], doc.text,
                               relations=[(relation["type"], index[relation["arg1"]], index[relation["arg2"]])
                                          for relation in relations], mode=mode)
        set_tree_mode(tmp_dir, mode)

    write_folder_atomically(folder, overwrite, write)


def _build_stats(args, labels, documents, rows, counts, problems, validation_source, absent_types) -> dict:
    entity_types = entity_types_of(labels)
    splits = {name: _split_stats(split_rows, labels, len(documents[name]) if name in documents else None)
              for name, split_rows in rows.items()}
    total = sum(counts.values(), Counter())
    source_entities = {split: _per_type(c, "source", entity_types) for split, c in counts.items()}
    dropped_total: Counter = Counter()
    changes = {}
    for split, split_counts in counts.items():
        dropped = Counter()
        for category in DROP_CATEGORIES:
            for entity_type, number in _per_type(split_counts, category, entity_types).items():
                dropped[entity_type] += number
        dropped_total.update(dropped)
        changes[split] = {"dropped": dict(dropped)}
        changes[split].update({category: _per_type(split_counts, category, entity_types)
                               for category in DROP_CATEGORIES + CHANGE_CATEGORIES})
    # The guarantee: every source entity is a B- tag or counted as dropped.
    for split, split_counts in counts.items():
        for entity_type in {t for _, t in split_counts}:
            b_tags = splits[split]["entities"].get(entity_type, 0)
            dropped = changes[split]["dropped"].get(entity_type, 0)
            if b_tags + dropped != split_counts["source", entity_type]:
                raise RuntimeError(f"entity bookkeeping error in {split} for {entity_type}: {b_tags} B- tags + "
                                   f"{dropped} dropped != {split_counts['source', entity_type]} read")
    downsampling = {}
    for split in ("train", "validation"):
        before, after = splits[split], splits[f"{split}_downsampled"]
        downsampling[split] = {
            "sentences_before": before["sentences"],
            "sentences_after": after["sentences"],
            "all_o_removed": before["sentences"] - after["sentences"],
            "all_o_share_before": before["all_o_share"],
            "all_o_share_after": after["all_o_share"],
            "target_reached": abs(after["all_o_share"] - args.plain_ratio) <= 0.02,
        }
        if after["sentences"] and before["all_o_share"] < args.plain_ratio - 0.02:
            logger.warning("%s: the all-O share cannot reach %.2f by removing all-O sentences (it is %.4f before "
                           "down-sampling): all sentences kept", split, args.plain_ratio, before["all_o_share"])
        elif after["sentences"] and not downsampling[split]["target_reached"]:
            logger.warning("%s: too few sentences to reach an all-O share of %.2f; nearest is %.4f",
                           split, args.plain_ratio, after["all_o_share"])
    unmapped = {split: dict(sorted(sum((doc.unmapped_types for doc in docs), Counter()).items()))
                for split, docs in documents.items()}
    repaired = {split: dict(sorted(sum((doc.repaired_tags for doc in docs), Counter()).items()))
                for split, docs in documents.items()}
    input_format = "synthetic" if args.synthetic is not None else ("conll" if args.train_file else "brat")
    stats = {
        "synthetic": args.synthetic is not None,
        "input": {
            "format": input_format,
            "train": args.train_dir or args.train_file,
            "validation": args.validation_dir or args.validation_file,
            "test": args.test_dir or args.test_file,
            "label_map": args.label_map,
            "relation_map": args.relation_map,
            "synthetic_notes": args.synthetic,
            "synthetic_hard": args.synthetic_hard,
        },
        "labels": list(labels),
        "entity_types": entity_types,
        "entity_types_source": "--entity_types" if args.entity_types else "the types that occur in the data",
        "entity_types_absent": absent_types,
        "seed": args.seed,
        "validation": validation_source,
        "plain_ratio": args.plain_ratio,
        "policies": {
            "discontinuous": args.discontinuous,
            "overlap": args.overlap,
            "word_boundaries": "expand to whole words",
            "sentences": "newline-aware, never inside an entity" if input_format != "conll" else "as in the file",
        },
        "splits": splits,
        "downsampling": downsampling,
        "source_entities": source_entities,
        "dropped": {t: dropped_total[t] for t in sorted(dropped_total, key=_type_order(entity_types)) if dropped_total[t]},
        "entity_changes": changes,
        "unmapped_types": unmapped,
        "skipped_invalid": {
            "documents": sum(error.skipped == "document" for error in problems),
            "annotations": sum(error.skipped == "annotation" for error in problems),
            "by_kind": dict(sorted(Counter(error.kind for error in problems).items())),
        },
        "totals": {"source_entities": _per_type(total, "source", entity_types),
                   "kept_entities": _per_type(total, "kept", entity_types)},
    }
    if any(repaired.values()):
        stats["repaired_i_tags"] = repaired
    return stats


def _relation_stats(relation_counts: dict[str, Counter], annotations: dict[str, list]) -> dict:
    """``stats.json["relations"]``: per split, source, kept and dropped (by reason) relations per type and the
    hard cases (:func:`relation_cases`), after checking that each source relation is written or counted as dropped."""
    relation_stats = {}
    for split, split_counts in relation_counts.items():
        types = sorted({t for c, t in split_counts if c == "source"}, key=_type_order(N2C2_RELATION_TYPES))
        written = Counter(relation["type"] for _, relations in annotations[split] for relation in relations)
        dropped = {reason: _per_type(split_counts, reason, types) for reason in RELATION_DROP_REASONS}
        # The guarantee: every source relation is in documents/ or counted as dropped.
        for relation_type in types:
            lost = sum(dropped[reason].get(relation_type, 0) for reason in RELATION_DROP_REASONS)
            if written[relation_type] + lost != split_counts["source", relation_type]:
                raise RuntimeError(f"relation bookkeeping error in {split} for {relation_type}: "
                                   f"{written[relation_type]} written + {lost} dropped != "
                                   f"{split_counts['source', relation_type]} read")
        relation_stats[split] = {
            "source": _per_type(split_counts, "source", types),
            "kept": _per_type(split_counts, "kept", types),
            "dropped": dropped,
            "cases": {**{case: _per_type(split_counts, case, types) for case in RELATION_TYPE_CASES},
                      **{case: split_counts[case, None] for case in RELATION_DOCUMENT_CASES}},
        }
    return relation_stats


def format_summary(stats: dict, output_dir) -> str:
    """A short, counts-only summary of the build."""
    lines = [f"Wrote {output_dir}" + ("  [SYNTHETIC data, not real patient notes]" if stats["synthetic"] else "")]
    lines.append(f"{'split':<24}{'docs':>7}{'sentences':>11}{'tokens':>10}{'entities':>10}{'all-O':>8}")
    for name, split in stats["splits"].items():
        lines.append(f"{name:<24}{split['documents']:>7}{split['sentences']:>11}{split['tokens']:>10}"
                     f"{sum(split['entities'].values()):>10}{split['all_o_share']:>8.3f}")
    dropped = ", ".join(f"{t} {n}" for t, n in stats["dropped"].items()) or "none"
    lines.append(f"dropped entities (overlap={stats['policies']['overlap']}, "
                 f"discontinuous={stats['policies']['discontinuous']}): {dropped}")
    unmapped = sum((Counter(u) for u in stats["unmapped_types"].values()), Counter())
    if unmapped:
        lines.append(f"ignored by the label map: {sum(unmapped.values())} entities of {len(unmapped)} types")
    relations = {key: sum(sum(split[key].values()) for split in stats["relations"].values())
                 for key in ("source", "kept")}
    dropped = Counter({reason: sum(sum(split["dropped"][reason].values()) for split in stats["relations"].values())
                       for reason in RELATION_DROP_REASONS})
    unmapped = sum(sum(u.values()) for u in stats["unmapped_relation_types"].values())
    lines.append(f"relations: {relations['source']} read, {relations['kept']} kept, dropped: "
                 + (", ".join(f"{reason} {n}" for reason, n in dropped.items() if n) or "none")
                 + (f"; {unmapped} ignored as unmapped types" if unmapped else ""))
    skipped = stats["skipped_invalid"]
    if skipped["documents"] or skipped["annotations"]:
        lines.append(f"skipped as invalid: {skipped['documents']} documents, {skipped['annotations']} annotation lines")
    return "\n".join(lines)


if __name__ == "__main__":
    run_main(main, SCRIPT, data_errors=(BratFormatError, FileExistsError, ValueError))
