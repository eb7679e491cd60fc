"""Label maps: a corpus's own entity and relation type names mapped to the ones a model is trained on (JSON files, `configs/label_maps/`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from .documents import BratFormatError, decode_utf8
from .folder_safety import read_regular_file
from .tagging import N2C2_ENTITY_TYPES, N2C2_LABELS, bio_labels


def _load_map(source, what: str) -> tuple[Any, str]:
    """A JSON object given as a file's path or inline (text starting with ``{``), and how to name it in messages."""
    text = str(source).strip()
    where = f"{what} (inline JSON)" if text.startswith("{") else text
    try:
        if text.startswith("{"):
            return json.loads(text), where
        path = Path(text)
        return json.loads(decode_utf8(path, read_regular_file(path))), where
    except OSError as error:
        raise BratFormatError(where, None, f"{what} file {'not found' if not Path(text).exists() else error.strerror}: "
                              "give a JSON file's path or the JSON object itself", "missing_file") from None
    except json.JSONDecodeError as error:
        raise BratFormatError(where, error.lineno, f"invalid JSON: {error.msg}", "malformed_line") from None


def load_label_map(source, what: str = "label map") -> dict[str, str | None]:
    """A label map ``{source_type: target_type or null}``, from a JSON file or inline JSON (``'{"Dose": "Dosage"}'``)."""
    label_map, where = _load_map(source, what)
    if not isinstance(label_map, dict) or not all(
        isinstance(key, str) and (value is None or isinstance(value, str)) for key, value in label_map.items()
    ):
        raise BratFormatError(where, None, f"a {what} must be a JSON object of source type -> target type (or null)",
                              "malformed_line")
    return label_map


def load_relation_map(source) -> dict[str, Any]:
    """A relation map, from a JSON file or inline JSON: ``{source_relation_type: target_type or null}``, where a
    target may also be a table keyed by the arguments' source entity types, for corpora that give every attribute
    link one name: ``{"MODIFY": {"Dosage>Medication": "Dosage-Drug", "Administration>Medication": "Route-Drug"}}``.
    Relations that no rule maps are counted by name and argument types (``MODIFY Form>Medication``)."""
    relation_map, where = _load_map(source, "relation map")

    def target(value) -> bool:
        return value is None or isinstance(value, str)

    if not isinstance(relation_map, dict) or not all(
        isinstance(key, str) and (target(value) or (isinstance(value, dict) and all(
            isinstance(pair, str) and pair.count(">") == 1 and target(rule) for pair, rule in value.items())))
        for key, value in relation_map.items()
    ):
        raise BratFormatError(where, None, "a relation map must be a JSON object of source relation type -> target type "
                              "(or null), or -> {\"Arg1Type>Arg2Type\": target type}", "malformed_line")
    return relation_map


def resolve_labels(
    label_map: dict | None = None, entity_types: Sequence[str] | None = None, conll_types: Sequence[str] | None = None
) -> list[str]:
    """The tag list: ``entity_types`` if given; else the label map's targets (the full n2c2
    scheme when they are all n2c2 types, else in order of first appearance); else the CoNLL
    types; else the n2c2 scheme."""
    if entity_types:
        return bio_labels(entity_types)
    if label_map is not None:
        targets = list(dict.fromkeys(target for target in label_map.values() if target is not None))
        if not targets:
            raise ValueError("the label map maps no type to a target")
        return list(N2C2_LABELS) if set(targets) <= set(N2C2_ENTITY_TYPES) else bio_labels(targets)
    if conll_types is not None:
        return bio_labels(conll_types)
    return list(N2C2_LABELS)
