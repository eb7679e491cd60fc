"""Corpus formats: every input format behind one table (:data:`CORPUS_FORMATS`): a brat standoff folder or a CoNLL file in, documents out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .brat import read_brat_folder
from .conll import read_conll_file
from .documents import BratDocument, BratFormatError


@dataclass(frozen=True)
class CorpusFormat:
    """How one input format is read: ``read(path, label_map=, relation_map=, entity_types=, skip_invalid=,
    validate_text=)`` returns ``(documents, problems)``."""

    name: str
    what: str
    read: Callable[..., tuple[list[BratDocument], list[BratFormatError]]]


def _read_brat(path, *, label_map=None, relation_map=None, entity_types=None, skip_invalid=False, validate_text=True):
    return read_brat_folder(path, label_map=label_map, relation_map=relation_map, entity_types=entity_types,
                            skip_invalid=skip_invalid, validate_text=validate_text)


def _read_conll(path, *, label_map=None, relation_map=None, entity_types=None, skip_invalid=False, validate_text=True):
    # A CoNLL file has no separate text to validate against, and a bad line is always an error; it has no relations.
    return read_conll_file(path, label_map=label_map, entity_types=entity_types), []


CORPUS_FORMATS: dict[str, CorpusFormat] = {
    "brat": CorpusFormat("brat", "a folder of .txt notes with .ann standoff annotations", _read_brat),
    "conll": CorpusFormat("conll", "a token<TAB>tag file (blank lines end sentences)", _read_conll),
}


def read_corpus(format_name: str, path, **options) -> tuple[list[BratDocument], list[BratFormatError]]:
    """Documents of one split in ``format_name`` (a key of :data:`CORPUS_FORMATS`), and what was skipped."""
    if format_name not in CORPUS_FORMATS:
        raise ValueError(f"unknown input format {format_name!r} (known: {', '.join(CORPUS_FORMATS)})")
    return CORPUS_FORMATS[format_name].read(path, **options)
