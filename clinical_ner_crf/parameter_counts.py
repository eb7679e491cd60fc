"""Parameter counts: the paper's Table I, counted from each architecture's config (encoder, linear or CRF head) and checked against the paper's figures."""

from __future__ import annotations

import json
from pathlib import Path

from .command_line import DataError

REPO_DIR = Path(__file__).resolve().parent.parent  # configs/ sits beside the library folder
BERT_REFERENCE = REPO_DIR / "configs" / "architectures" / "bert-base-cased.json"

# Table I of the paper (CRF, Apt), keyed by Hub id. BioBERT is BERT-base sized (same counts).
PAPER_TABLE_I = {
    "google-bert/bert-base-cased": ("BERT", 108_325_282, 108_324_883),
    "dmis-lab/biobert-base-cased-v1.2": ("BioBERT", 108_325_282, 108_324_883),
    "medicalai/ClinicalBERT": ("ClinicalBERT", 134_749_090, 134_748_691),
    "distilbert/distilbert-base-cased": ("Transformer", 65_205_922, 65_205_523),
}
OTHER_NAMES = {"emilyalsentzer/Bio_ClinicalBERT": "Bio_ClinicalBERT"}
# Short Hub ids that redirect to the canonical ones.
ALIASES = {"bert-base-cased": "google-bert/bert-base-cased", "distilbert-base-cased": "distilbert/distilbert-base-cased"}


def load_architecture(path) -> tuple[str, object, list[str] | None]:
    """(name, encoder config, labels or None) from an encoder or CRF-model config JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not a JSON config ({error}); give an encoder config.json or a saved CRF "
                        "model's") from None
    if not isinstance(data, dict) or not (data.get("model_type") or data.get("encoder_config")):
        raise DataError(f"{path}: not a model config (no model_type); give an encoder config.json or a saved CRF "
                        "model's")
    from transformers import AutoConfig  # (once the file is read: a missing one is said at once)

    labels = None
    if data.get("model_type") == "crf_token_classification":
        id2label = data.get("id2label") or {}
        labels = [id2label[k] for k in sorted(id2label, key=int)] or None
        data = dict(data["encoder_config"])
    name = data.pop("_name_or_path", "") or Path(path).stem
    name = ALIASES.get(name, name)
    for key in ("architectures", "transformers_version", "auto_map"):
        data.pop(key, None)
    return name, AutoConfig.for_model(**data), labels


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() yields shared tensors once


def count_parameters(encoder_config, labels: list[str]) -> dict:
    """Exact parameter counts of the CRF and Apt models (and of the encoder's pooler) on the meta device."""
    import torch
    from transformers import AutoModel, AutoModelForTokenClassification

    from modeling_crf import CRFForTokenClassification, CRFTokenClassificationConfig, _encoder_init_kwargs
    from .tagging import is_tag

    id2label = dict(enumerate(labels))
    label2id = {label: i for i, label in id2label.items()}
    apt_config = encoder_config.__class__.from_dict(
        {**encoder_config.to_dict(), "id2label": id2label, "label2id": label2id}
    )
    crf_config = CRFTokenClassificationConfig(
        encoder_config=encoder_config, id2label=id2label, label2id=label2id,
        use_bio_constraints=all(is_tag(label) for label in labels),
    )
    with torch.device("meta"):
        crf = _count(CRFForTokenClassification(crf_config))
        apt = _count(AutoModelForTokenClassification.from_config(apt_config))
        pooler = 0
        if _encoder_init_kwargs(encoder_config):  # the encoder class has an (optional) pooler
            pooler = _count(AutoModel.from_config(encoder_config)) - _count(
                AutoModel.from_config(encoder_config, add_pooling_layer=False)
            )
    return {"crf": crf, "apt": apt, "pooler": pooler}


def build_rows(paths, num_labels: int | None = None) -> list[dict]:
    from .tagging import N2C2_LABELS

    rows = []
    for path in paths:
        name, encoder_config, labels = load_architecture(path)
        if num_labels is not None:
            labels = N2C2_LABELS if num_labels == len(N2C2_LABELS) else ["O"] + [f"B-T{i}" for i in range(num_labels - 1)]
        labels = labels or N2C2_LABELS
        counts = count_parameters(encoder_config, labels)
        paper = PAPER_TABLE_I.get(name)
        rows.append({
            "path": str(path), "hub_id": name,
            "model": paper[0] if paper else OTHER_NAMES.get(name, Path(path).stem),
            "model_type": encoder_config.model_type,
            "layers": encoder_config.num_hidden_layers, "vocab": encoder_config.vocab_size,
            "num_labels": len(labels), **counts,
            "paper_crf": paper[1] if paper else None, "paper_apt": paper[2] if paper else None,
        })
    order = list(PAPER_TABLE_I) + list(OTHER_NAMES)
    rows.sort(key=lambda r: order.index(r["hub_id"]) if r["hub_id"] in order else len(order))  # paper order
    bert = next((r for r in rows if r["hub_id"] == "google-bert/bert-base-cased" and r["num_labels"] == 19), None)
    if bert is None and BERT_REFERENCE.exists():
        bert = build_rows([BERT_REFERENCE], num_labels)[0]
    for row in rows:
        row["pct_to_bert"] = 100.0 * row["crf"] / bert["crf"] if bert else None
        row["paper_pct_to_bert"] = 100.0 * row["paper_crf"] / bert["paper_crf"] if bert and row["paper_crf"] else None
    return rows


def _check(row) -> str:
    if row["paper_crf"] is None:
        return "not in the paper"
    if (row["crf"], row["apt"]) == (row["paper_crf"], row["paper_apt"]):
        return "= paper"
    if row["pooler"] and (row["crf"] + row["pooler"], row["apt"] + row["pooler"]) == (row["paper_crf"], row["paper_apt"]):
        return f"= paper with the unused pooler (+{row['pooler']:,}): {row['crf'] + row['pooler']:,} / {row['apt'] + row['pooler']:,}"
    return "differs from the paper"


def format_table(rows) -> str:
    labels = sorted({row["num_labels"] for row in rows})
    lines = [
        f"Table I: parameters with {', '.join(map(str, labels))} labels "
        "(ours: encoder without pooler; paper's BERT-family figures include the unused pooler).",
        "",
        "| Model | Encoder (Hub id) | Layers | Vocab | CRF params | Apt params | % to BERT | Paper CRF | Paper Apt | Paper % | Check |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        pct = f"{row['pct_to_bert']:.1f}%" if row["pct_to_bert"] is not None else "n/a"
        paper_crf = f"{row['paper_crf']:,}" if row["paper_crf"] else "–"
        paper_apt = f"{row['paper_apt']:,}" if row["paper_apt"] else "–"
        paper_pct = f"{row['paper_pct_to_bert']:.1f}%" if row["paper_pct_to_bert"] is not None else "–"
        lines.append(
            f"| {row['model']} | `{row['hub_id']}` | {row['layers']} | {row['vocab']:,} | {row['crf']:,} | "
            f"{row['apt']:,} | {pct} | {paper_crf} | {paper_apt} | {paper_pct} | {_check(row)} |"
        )
    lines += ["", "CRF - Apt = labels^2 + 2 * labels (transitions, start and end scores): 399 for 19 labels."]
    return "\n".join(lines)
