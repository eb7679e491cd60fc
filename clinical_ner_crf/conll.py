"""CoNLL: ``token<TAB>tag`` files (IOB2, a blank line between sentences) read into documents."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from .brat import check_types, resolve_type
from .documents import BratDocument, BratEntity, BratFormatError, decode_utf8, describe_text
from .files import split_lines
from .tagging import bio_to_spans, is_tag, tag_type


def read_conll_file(
    path,
    *,
    label_map: dict[str, str | None] | None = None,
    entity_types: Sequence[str] | None = None,
) -> list[BratDocument]:
    """Read a CoNLL-style file (``token<TAB>tag``, or whitespace columns with the tag last).

    Blank lines end sentences; ``-DOCSTART-`` lines end documents. Without them each
    sentence is its own document. Document text is the tokens joined by single spaces and
    the sentences joined by newlines; ids are ``{file_stem}-{n:06d}``. An ``I-X`` that
    continues nothing starts an entity (conlleval reading) and is counted in
    ``repaired_tags``. Without ``label_map`` and ``entity_types`` every type is accepted.
    """
    path = Path(path)
    if not path.is_file():
        raise BratFormatError(path, None, "no such file", "missing_file")
    label_map, allowed_types = check_types(label_map, entity_types) if (label_map or entity_types) else (None, None)
    lines = split_lines(decode_utf8(path, path.read_bytes()))

    # Group (token, tag, line) rows into sentences and sentences into documents.
    documents_rows: list[list[list[tuple[str, str, int]]]] = []
    sentences: list[list[tuple[str, str, int]]] = []
    sentence: list[tuple[str, str, int]] = []
    has_docstart = any(line.startswith("-DOCSTART-") for line in lines)
    for line_number, line in enumerate(lines, start=1):
        if line.startswith("-DOCSTART-") or not line.strip():
            if sentence:
                sentences.append(sentence)
                sentence = []
            if line.startswith("-DOCSTART-") or not has_docstart:
                if sentences:
                    documents_rows.append(sentences)
                sentences = []
            continue
        columns = line.split("\t") if "\t" in line else line.split()
        if len(columns) < 2 or not columns[0].strip():
            raise BratFormatError(path, line_number, f"malformed line: expected 'TOKEN<TAB>TAG', got {describe_text(line)}",
                                  "malformed_line")
        tag = columns[-1].strip()
        if not is_tag(tag):
            raise BratFormatError(path, line_number, f"malformed tag {describe_text(tag)} (expected O, B-TYPE or I-TYPE)",
                                  "malformed_line")
        sentence.append((columns[0].strip(), tag, line_number))
    if sentence:
        sentences.append(sentence)
    if sentences:
        documents_rows.append(sentences)
    if not documents_rows:
        raise BratFormatError(path, None, "no tokens found", "empty_folder")

    documents = []
    for document_number, document_sentences in enumerate(documents_rows):
        text_parts: list[str] = []
        sentence_spans: list[tuple[int, int]] = []
        entities: list[BratEntity] = []
        unmapped: Counter = Counter()
        repaired: Counter = Counter()
        offset = 0
        for sentence_rows in document_sentences:
            if text_parts:
                text_parts.append("\n")
                offset += 1
            token_starts, token_ends = [], []
            for index, (token, _, _) in enumerate(sentence_rows):
                if index:
                    text_parts.append(" ")
                    offset += 1
                token_starts.append(offset)
                text_parts.append(token)
                offset += len(token)
                token_ends.append(offset)
            sentence_spans.append((token_starts[0], token_ends[-1]))
            tags = [tag for _, tag, _ in sentence_rows]
            strict_starts = {first for _, first, _ in bio_to_spans(tags, strict=True)}
            for source_type, first, last in bio_to_spans(tags, strict=False):
                line_number = sentence_rows[first][2]
                if first not in strict_starts:
                    repaired[source_type] += 1
                target_type, error = resolve_type(source_type, label_map, allowed_types, unmapped)
                if error:
                    raise BratFormatError(path, line_number, error, "unknown_type")
                if target_type is None:
                    continue
                start, end = token_starts[first], token_ends[last - 1]
                entities.append(BratEntity(f"T{len(entities) + 1}", target_type, ((start, end),), "", line_number))
        text = "".join(text_parts)
        entities = [BratEntity(e.id, e.type, e.spans, text[e.start:e.end], e.line) for e in entities]
        documents.append(BratDocument(f"{path.stem}-{document_number:06d}", text, entities, unmapped, sentence_spans,
                                      repaired))
    return documents


def conll_entity_types(paths: Iterable) -> list[str]:
    """The entity types of the tags in CoNLL files, sorted."""
    types = set()
    for path in paths:
        for line in split_lines(decode_utf8(Path(path), Path(path).read_bytes())):
            columns = line.split("\t") if "\t" in line else line.split()
            tag = columns[-1].strip() if len(columns) >= 2 else ""
            if is_tag(tag) and tag != "O":
                types.add(tag_type(tag))
    return sorted(types)
