"""Reports: the tables (Markdown, CSV) and plots of evaluate_ablations.py: one run, runs compared and aggregated over seeds, learning curves, the confusion matrix, and the banner that marks a synthetic sample."""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .files import REPORT_JSON_FILE
from .metrics import (
    AVERAGES, LENIENT_MICRO_F1, STATS, STRICT_MACRO_F1, STRICT_MICRO_F1, entity_view, metric_name, ordered_types,
    zero_row,
)
from .token_metrics import ABLATION_TITLES, BIO_VIEW, ENTITY_MODES, TAG_VIEWS, TOKEN_VIEW, TOKEN_WITHOUT_O_VIEW

logger = logging.getLogger(__name__)


# What the reports say of runs whose run_info has "synthetic": true (synthetic_n2c2.py notes).
SYNTHETIC_SAMPLE = "the SYNTHETIC sample (synthetic_n2c2.py), not real patient notes"


# Run_info fields that define a configuration: runs equal on all of them differ only by seed.
_GROUP_FIELDS = ("model_label", "model_name_or_path", "config_name", "use_crf", "train_split", "train_fraction",
                 "efficient_training")


def _flat_scores(view: str, scores: Mapping[str, Any]) -> dict[str, float]:
    return {metric_name(view, average, short): scores[average][key] for average in AVERAGES for key, short in STATS}


def flat_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """One run's headline numbers as a flat ``{metric_name: value}`` row (the comparison tables)."""
    row = {}
    for view in TAG_VIEWS:
        row |= _flat_scores(view.name, report["tag"][view.name])
        row[view.accuracy_name] = report["tag"][view.name]["accuracy"]
    for mode, _ in ENTITY_MODES:
        row |= _flat_scores(entity_view(mode), report["entity"][mode])
    for name, ablation in report["ablations"].items():
        row |= _flat_scores(name, ablation["scores"])
    return row


def _group_label(info: Mapping[str, Any], fallback: str) -> str:
    label = info.get("model_label") or fallback
    extras = []
    if info.get("efficient_training"):
        extras.append("efficient")
    fraction = info.get("train_fraction")
    if fraction not in (None, 1, 1.0):
        extras.append(f"{float(fraction):g} of train")
    return f"{label} ({', '.join(extras)})" if extras else label


def run_title(name: str, run_info: Mapping[str, Any] | None) -> str:
    """How a figure names a run: model label (and training extras) and seed, else its folder name."""
    if not run_info:
        return name
    seed = run_info.get("seed")
    return _group_label(run_info, name) + ("" if seed is None else f", seed {seed}")


def aggregate_runs(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Group runs that differ only by seed; mean and sample standard deviation of each metric.

    ``runs``: ``[{"name", "run_info", "metrics"}]``. Returns one dict per group, in first-seen
    order: ``label``, ``series`` (the learning-curve line), ``config``, ``runs``, ``seeds``,
    ``n``, ``num_train_sentences`` (mean), ``mean``, ``std`` (None for a single run) and
    ``left_out``: runs that repeat a seed of their group (``{"run", "seed", "same_seed_as",
    "reason"}``). A repeated seed is the same sample twice, not a second one, so only the first
    run given with each seed counts, and ``n`` is the number of distinct seeds.
    """
    groups: dict[tuple, dict[str, Any]] = {}
    for run in runs:
        info = run.get("run_info") or {}
        key = tuple(json.dumps(info.get(name), sort_keys=True) for name in _GROUP_FIELDS) if info else (run["name"],)
        group = groups.setdefault(key, {
            "label": _group_label(info, run["name"]),
            "series": (info.get("model_label") or run["name"]) + (" (efficient)" if info.get("efficient_training") else ""),
            "config": {name: info.get(name) for name in _GROUP_FIELDS},
            "runs": [], "seeds": [], "left_out": [], "_metrics": [], "_train": [],
        })
        seed = info.get("seed")
        if seed is not None and seed in group["seeds"]:
            kept = group["runs"][group["seeds"].index(seed)]
            group["left_out"].append({"run": run["name"], "seed": seed, "same_seed_as": kept,
                                      "reason": f"same seed ({seed}) as {kept}: not an independent sample"})
            logger.warning("%s left out of the comparison: same seed as %s", run["name"], kept)
            continue
        group["runs"].append(run["name"])
        group["seeds"].append(info.get("seed"))
        group["_metrics"].append(run["metrics"])
        if info.get("num_train_sentences") is not None:
            group["_train"].append(float(info["num_train_sentences"]))
    result = []
    for group in groups.values():
        metrics, train = group.pop("_metrics"), group.pop("_train")
        group["n"] = len(metrics)
        group["num_train_sentences"] = statistics.fmean(train) if train else None
        columns = [column for column in metrics[0] if all(column in m for m in metrics)]
        group["mean"] = {c: statistics.fmean(m[c] for m in metrics) for c in columns}
        # Sample standard deviation; None for a single run (no spread to report).
        group["std"] = {c: (statistics.stdev(m[c] for m in metrics) if len(metrics) > 1 else None) for c in columns}
        result.append(group)
    # Same label for different configs (e.g. two model paths behind one model_label): disambiguate.
    seen = Counter(group["label"] for group in result)
    for group in result:
        if seen[group["label"]] > 1:
            group["label"] += f" [{group['config'].get('model_name_or_path') or group['runs'][0]}]"
    return result


LEARNING_CURVE_METRICS = ((metric_name(BIO_VIEW.name, "macro"), "BIO-strict macro F1"),
                          (STRICT_MICRO_F1, "entity strict micro F1"))


def learning_curve(groups: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Points per series (model) when the groups span more than one training-set size."""
    sized = [g for g in groups if g["num_train_sentences"] is not None or g["config"].get("train_fraction") is not None]
    x_key = "num_train_sentences" if all(g["num_train_sentences"] is not None for g in sized) else "train_fraction"
    xs = {g["num_train_sentences"] if x_key == "num_train_sentences" else g["config"]["train_fraction"] for g in sized}
    if len(xs) < 2:
        return None
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for group in sized:
        x = group["num_train_sentences"] if x_key == "num_train_sentences" else group["config"]["train_fraction"]
        point = {"x": float(x), "train_fraction": group["config"].get("train_fraction"), "n": group["n"]}
        for metric, _ in LEARNING_CURVE_METRICS:
            point[metric] = group["mean"].get(metric)
            point[f"{metric}_std"] = group["std"].get(metric)
        series[group["series"]].append(point)
    for points in series.values():
        points.sort(key=lambda point: point["x"])
    if not any(len({point["x"] for point in points}) > 1 for points in series.values()):
        return None  # e.g. full vs efficient training of one model: separate series, one point each
    return {"x": x_key, "metrics": [m for m, _ in LEARNING_CURVE_METRICS], "series": dict(series)}


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _is_number(cell: Any) -> bool:
    return cell is None or isinstance(cell, (int, float)) or bool(re.fullmatch(r"[-+]?[\d.]+( ± [\d.]+)?", str(cell)))


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 3) -> str:
    # Numbers right-aligned, names left-aligned.
    align = ["---:" if rows and all(_is_number(row[i]) for row in rows) else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_fmt(cell, digits) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _scores_table(scores: Mapping[str, Any], first: str = "Type", digits: int = 3) -> str:
    rows = [[name, row["precision"], row["recall"], row["f1"], row["support"]]
            for name, row in scores["per_type"].items()]
    rows += [[f"**{average} avg**", scores[average]["precision"], scores[average]["recall"],
              scores[average]["f1"], scores[average]["support"]] for average in AVERAGES]
    if "accuracy" in scores:
        rows.append(["**accuracy**", None, None, scores["accuracy"], None])
    return _md_table([first, "P", "R", "F1", "Support"], rows, digits)


def _averages_table(named_scores: Sequence[tuple[str, Mapping[str, Any]]], digits: int = 3) -> str:
    rows = []
    for name, scores in named_scores:
        rows.append([f"*{ABLATION_TITLES.get(name, name)}*", None, None, None])
        for average in AVERAGES:
            rows.append([f"{average} avg", scores[average]["precision"], scores[average]["recall"],
                         scores[average]["f1"]])
    return _md_table(["Metrics", "P", "R", "F1"], rows, digits)


def render_run_markdown(name: str, report: Mapping[str, Any], run_info: Mapping[str, Any] | None = None,
                        digits: int = 3, confusion_png: str | None = None) -> str:
    info = run_info or {}
    parts = [f"## {name}", ""]
    if info.get("synthetic"):
        parts += [f"**Scored on {SYNTHETIC_SAMPLE}.**", ""]
    if info:
        parts.append(", ".join(f"{key}: {info[key]}" for key in
                               ("model_label", "model_name_or_path", "seed", "train_fraction",
                                "num_train_sentences", "efficient_training") if key in info))
        parts.append("")
    parts += [f"{report['num_sentences']} sentences, {report['num_words']} words scored.", ""]
    for mode, title in ENTITY_MODES:
        parts += [f"### {title}", "", _scores_table(report["entity"][mode], digits=digits), ""]
    for view in TAG_VIEWS:
        parts += [f"### {view.title}", "", _scores_table(report["tag"][view.name], "Tag", digits), ""]
    parts += ["### Ablations at token level (paper Table IV)", "",
              _averages_table([(n, a["scores"]) for n, a in report["ablations"].items()], digits), ""]
    parts += ["### Most frequent confusions (BIO tags; gold -> predicted)", ""]
    top = report["confusion"].get("top") or []
    parts.append(_md_table(["Gold", "Predicted", "Words"], [[c["gold"], c["pred"], c["count"]] for c in top])
                 if top else "No confusions.")
    if confusion_png:
        parts += ["", f"![confusion matrix]({confusion_png})"]
    parts += ["", *[f"> {note}" for note in report["notes"]], ""]
    return "\n".join(parts)


def render_brat_markdown(report: Mapping[str, Any], digits: int = 4) -> str:
    strict, lenient = report["strict"], report["lenient"]
    rows = []
    for entity_type in ordered_types(set(strict["per_type"]) | set(lenient["per_type"])):
        s, l = strict["per_type"].get(entity_type, zero_row()), lenient["per_type"].get(entity_type, zero_row())
        rows.append([entity_type, s["precision"], s["recall"], s["f1"], l["precision"], l["recall"], l["f1"],
                     s["support"]])
    rows += _average_rows(strict, lenient)
    headers = ["Type", "Strict P", "Strict R", "Strict F1", "Lenient P", "Lenient R", "Lenient F1", "Gold"]
    parts = ["# n2c2-2018 official-style entity scores", "",
             f"{report['num_documents']} documents; {report['num_gold_entities']} gold and "
             f"{report['num_pred_entities']} predicted entities.", "", _md_table(headers, rows, digits), ""]
    count_rows = [[t, c["tp"], c["fp"], c["fn"], lenient["per_type"][t]["tp"], lenient["per_type"][t]["fp"],
                   lenient["per_type"][t]["fn"]] for t, c in strict["per_type"].items()]
    count_rows.append(["**micro**", strict["micro"]["tp"], strict["micro"]["fp"], strict["micro"]["fn"],
                       lenient["micro"]["tp"], lenient["micro"]["fp"], lenient["micro"]["fn"]])
    parts += ["## Counts", "", _md_table(["Type", "Strict TP", "Strict FP", "Strict FN", "Lenient TP",
                                          "Lenient FP", "Lenient FN"], count_rows), ""]
    official = report.get("semantics") == "official"
    if report["missing_predictions"]:
        parts += ["Documents without a prediction file ("
                  + ("skipped, as the official script skips them" if official else "all their gold counted as missed")
                  + f"): {len(report['missing_predictions'])}.", ""]
    if report.get("skipped_prediction_files"):
        parts += [f"Prediction files that could not be read, skipped (their documents scored as no predictions): "
                  f"{len(report['skipped_prediction_files'])} (see {REPORT_JSON_FILE}).", ""]
    parts += _prediction_line_remarks(report)
    duplicates = report.get("duplicate_entities", {})
    if any(duplicates.values()):
        parts += ["Exact duplicate entities (same type, start and end in one note) "
                  + ("counted every time, as the official script counts them" if official else "counted once")
                  + f": {duplicates['gold']} gold, {duplicates['pred']} predicted.", ""]
    parts += [f"> {note}" for note in report["notes"]] + [""]
    if "relations" in report:  # only when the gold files have relations: entity-only reports stay as they were
        parts += [render_relations_markdown(report["relations"], digits)]
    return "\n".join(parts)


def _average_rows(strict: Mapping[str, Any], lenient: Mapping[str, Any]) -> list[list[Any]]:
    """The averages of a brat table: micro, the type macro (over the types either side has) and weighted, then the
    official script's macro, the mean over documents, under its own name."""
    rows = []
    for average in AVERAGES:
        s, l = strict[average], lenient[average]
        name = f"**Overall ({average}, {s['types']} types)**" if "types" in s else f"**Overall ({average})**"
        rows.append([name, s["precision"], s["recall"], s["f1"], l["precision"], l["recall"], l["f1"], s["support"]])
    if "per_document_macro" in strict:
        s, l = strict["per_document_macro"], lenient["per_document_macro"]
        rows.append([f"**Per-document macro (the official script's macro, {s['documents']} documents)**",
                     s["precision"], s["recall"], s["f1"], l["precision"], l["recall"], l["f1"], strict["micro"]["support"]])
    return rows


def _prediction_line_remarks(section: Mapping[str, Any]) -> list[str]:
    """What the prediction files' odd lines did to the scores: scored as written, one false positive each, a type no
    row has, or replaced by a later line with the same id (counts only: the lines are listed in the JSON)."""
    remarks = []
    malformed = section.get("malformed_pred_lines", {}).get("lines", [])
    if malformed:
        remarks.append(f"Malformed prediction lines scored as written (false positives unless they match): "
                       f"{len(malformed)}.")
    unparseable = section.get("unparseable_pred_lines", {}).get("count", 0)
    if unparseable:
        remarks.append(f"Prediction lines that could not be read, one false positive each in micro: {unparseable}.")
    stray = section.get("stray_pred_types", {})
    if stray:
        remarks.append("Predicted types outside the scored ones (false positives in micro, no row): "
                       + ", ".join(f"{name} {count}" for name, count in stray.items()) + ".")
    replaced = section.get("skipped_prediction_lines", [])
    if replaced:
        remarks.append(f"Prediction lines replaced by a later line with the same id (the last is scored, as in the "
                       f"official script): {len(replaced)}.")
    return [f"{remark} See {REPORT_JSON_FILE}." for remark in remarks] + ([""] if remarks else [])


def render_relations_markdown(relations: Mapping[str, Any], digits: int = 4) -> str:
    """The ``relations`` section of a brat report (:func:`score_relations`) as Markdown: scores and counts."""
    strict, lenient = relations["strict"], relations["lenient"]
    rows = []
    for relation_type in strict["per_type"]:  # the same types in both modes, in the official order
        s, l = strict["per_type"][relation_type], lenient["per_type"][relation_type]
        rows.append([relation_type, s["precision"], s["recall"], s["f1"], l["precision"], l["recall"], l["f1"],
                     s["support"]])
    rows += _average_rows(strict, lenient)
    headers = ["Relation", "Strict P", "Strict R", "Strict F1", "Lenient P", "Lenient R", "Lenient F1", "Gold"]
    count_rows = [[t, c["tp"], c["fp"], c["fn"], lenient["per_type"][t]["tp"], lenient["per_type"][t]["fp"],
                   lenient["per_type"][t]["fn"]] for t, c in strict["per_type"].items()]
    count_rows.append(["**micro**", strict["micro"]["tp"], strict["micro"]["fp"], strict["micro"]["fn"],
                       lenient["micro"]["tp"], lenient["micro"]["fp"], lenient["micro"]["fn"]])
    parts = [f"# n2c2-2018 official-style relation scores, {relations['setting_title']}", "",
             f"{relations['num_gold_relations']} gold and {relations['num_pred_relations']} predicted relations; "
             f"{relations['pred_relations_with_unmatched_argument']} predicted relations have an argument that "
             f"matches no gold entity (strict: same type, start and end).", "",
             _md_table(headers, rows, digits), "",
             "## Relation counts", "",
             _md_table(["Relation", "Strict TP", "Strict FP", "Strict FN", "Lenient TP", "Lenient FP",
                        "Lenient FN"], count_rows), ""]
    parts += _prediction_line_remarks(relations)
    duplicates = relations.get("duplicate_relations", {})
    if any(duplicates.values()):
        parts += ["Exact duplicate relations (same type and arguments in one note) "
                  + ("counted every time, as the official script counts them" if relations.get("semantics") == "official"
                     else "counted once")
                  + f": {duplicates['gold']} gold, {duplicates['pred']} predicted.", ""]
    invalid = relations.get("invalid_pred_relations", {}).get("by_kind", {})
    if invalid:
        parts += [f"Predicted relations that cannot be right, scored as false positives: {sum(invalid.values())} ("
                  + ", ".join(f"{kind} {count}" for kind, count in invalid.items()) + f"; see {REPORT_JSON_FILE}).", ""]
    parts += [f"> {note}" for note in relations["notes"]] + [""]
    return "\n".join(parts)


def _mean_std(group: Mapping[str, Any], column: str, digits: int) -> str:
    mean = group["mean"].get(column)
    if mean is None:
        return ""
    if group["std"].get(column) is not None:
        return f"{mean:.{digits}f} ± {group['std'][column]:.{digits}f}"
    return f"{mean:.{digits}f}"


def render_comparison_markdown(groups: Sequence[Mapping[str, Any]], ablation_names: Sequence[str],
                               digits: int = 3) -> str:
    def table(title: str, columns: Sequence[tuple[str, str]]) -> list[str]:
        headers = ["Model", "Train sentences", "Runs"] + [header for _, header in columns]
        rows = [[g["label"], "" if g["num_train_sentences"] is None else f"{g['num_train_sentences']:.0f}",
                 str(g["n"])] + [_mean_std(g, column, digits) for column, _ in columns] for g in groups]
        return [f"### {title}", "", _md_table(headers, rows, digits), ""]

    prf = [(short, short.upper()) for _, short in STATS]
    bio, token, strict = BIO_VIEW.name, TOKEN_VIEW.name, entity_view("strict")
    parts = ["## Comparison across runs", "",
             "Mean ± sample standard deviation over runs that differ only by seed.", ""]
    left_out = [item for g in groups for item in g["left_out"]]
    if left_out:
        parts += ["Left out of the means (only the first run given with a seed counts):", ""]
        parts += [f"- {item['run']}: {item['reason']}" for item in left_out] + [""]
    parts += table("BIO-strict macro average (paper Table II)", [(metric_name(bio, "macro", k), h) for k, h in prf])
    parts += table("BIO-strict weighted average (paper Table III)",
                   [(metric_name(bio, "weighted", k), h) for k, h in prf]
                   + [(BIO_VIEW.accuracy_name, "Accuracy (micro F1)")])
    parts += table("Token level (paper Figures 6-7)",
                   [(metric_name(token, "macro"), "Macro F1"), (metric_name(token, "weighted"), "Weighted F1"),
                    (TOKEN_VIEW.accuracy_name, "Accuracy"),
                    (metric_name(TOKEN_WITHOUT_O_VIEW.name, "macro"), "Macro F1 without O")])
    for name in ablation_names:
        parts += table(f"{ABLATION_TITLES.get(name, name)} (token level, paper Table IV)",
                       [(metric_name(name, a, k), f"{a} {h}") for a in AVERAGES for k, h in prf])
    parts += table("Entity level",
                   [(metric_name(strict, "micro", "p"), "Strict P"), (metric_name(strict, "micro", "r"), "Strict R"),
                    (STRICT_MICRO_F1, "Strict F1"), (STRICT_MACRO_F1, "Strict macro F1"),
                    (LENIENT_MICRO_F1, "Lenient F1")])
    return "\n".join(parts)


def render_learning_curve_markdown(curve: Mapping[str, Any], digits: int = 3) -> str:
    xs = sorted({point["x"] for points in curve["series"].values() for point in points})
    x_name = "training sentences" if curve["x"] == "num_train_sentences" else "training fraction"
    parts = ["## Learning curve", "",
             f"F1 by {x_name} (mean ± sd over seeds): where the lines cross is where pre-training "
             "stops paying off.", ""]
    for metric, title in LEARNING_CURVE_METRICS:
        rows = []
        for series, points in curve["series"].items():
            by_x = {point["x"]: point for point in points}
            cells = []
            for x in xs:
                point = by_x.get(x)
                if point is None or point.get(metric) is None:
                    cells.append("")
                elif point.get(f"{metric}_std") is not None:
                    cells.append(f"{point[metric]:.{digits}f} ± {point[f'{metric}_std']:.{digits}f}")
                else:
                    cells.append(f"{point[metric]:.{digits}f}")
            rows.append([series] + cells)
        parts += [f"### {title}", "", _md_table(["Model"] + [f"{x:g}" for x in xs], rows, digits), ""]
    return "\n".join(parts)


def write_comparison_csv(groups: Sequence[Mapping[str, Any]], path: Path) -> None:
    columns: list[str] = []
    for group in groups:
        columns += [c for c in group["mean"] if c not in columns]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", "model_name_or_path", "train_fraction", "efficient_training",
                         "num_train_sentences", "n_runs", "seeds", "runs"]
                        + [f"{c}_{stat}" for c in columns for stat in ("mean", "std")])
        for g in groups:
            config = g["config"]
            writer.writerow([g["label"], config.get("model_name_or_path"), config.get("train_fraction"),
                             config.get("efficient_training"), g["num_train_sentences"], g["n"],
                             " ".join("" if s is None else str(s) for s in g["seeds"]), " ".join(g["runs"])]
                            + [round(g[stat][c], 6) if g[stat].get(c) is not None else ""
                               for c in columns for stat in ("mean", "std")])


def write_confusion_csv(confusion: Mapping[str, Any], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["gold \\ predicted"] + list(confusion["labels"]))
        for label, row in zip(confusion["labels"], confusion["matrix"]):
            writer.writerow([label] + list(row))


def plot_confusion_matrix(confusion: Mapping[str, Any], path: Path, title: str = "") -> None:
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure
    import numpy as np

    labels = confusion["labels"]
    matrix = np.array(confusion["matrix"], dtype=float)
    size = max(4.0, 0.45 * len(labels) + 2)
    figure = Figure(figsize=(size + 1, size))
    axes = figure.add_subplot()
    # Log colours: O dominates by orders of magnitude; empty cells stay white.
    shown = np.ma.masked_where(matrix <= 0, matrix)
    image = axes.imshow(shown, cmap="Blues", norm=LogNorm(vmin=1, vmax=max(1.0, matrix.max())) if matrix.max() > 0 else None)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="words")
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    if len(labels) <= 25:
        threshold = math.sqrt(max(1.0, matrix.max()))
        for i in range(len(labels)):
            for j in range(len(labels)):
                if matrix[i, j]:
                    axes.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center", fontsize=5.5,
                              color="white" if matrix[i, j] > threshold else "black")
    axes.set_title(title or "Confusion matrix (words)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=150)


def plot_learning_curve(curve: Mapping[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    metrics = dict(LEARNING_CURVE_METRICS)
    figure = Figure(figsize=(5.5 * len(curve["metrics"]), 4.2))
    for index, metric in enumerate(curve["metrics"], start=1):
        axes = figure.add_subplot(1, len(curve["metrics"]), index)
        for series, points in curve["series"].items():
            points = [p for p in points if p.get(metric) is not None]
            if not points:
                continue
            axes.errorbar([p["x"] for p in points], [p[metric] for p in points],
                          yerr=[p[f"{metric}_std"] or 0.0 for p in points], marker="o", capsize=3, label=series)
        xs = [p["x"] for points in curve["series"].values() for p in points]
        if xs and min(xs) > 0 and max(xs) / min(xs) >= 20:
            axes.set_xscale("log")
        axes.set_xlabel("training sentences" if curve["x"] == "num_train_sentences" else "training fraction")
        axes.set_ylabel(metrics[metric])
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle("Learning curve: F1 against training data (mean ± sd over seeds)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=150)


def write_learning_curve_csv(curve: Mapping[str, Any], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["series", curve["x"], "train_fraction", "n_runs"]
                        + [f"{m}{suffix}" for m in curve["metrics"] for suffix in ("_mean", "_std")])
        for series, points in curve["series"].items():
            for p in points:
                writer.writerow([series, p["x"], p["train_fraction"], p["n"]]
                                + ["" if p.get(f"{m}{suffix}") is None else p[f"{m}{suffix}"]
                                   for m in curve["metrics"] for suffix in ("", "_std")])


def synthetic_status(run_infos: Iterable[Mapping[str, Any] | None]) -> bool | str:
    """``True`` when every run says ``"synthetic": true``, ``"mixed"`` when some do, else ``False``
    (a run without run_info counts as not synthetic: nothing says it is)."""
    flags = [bool((info or {}).get("synthetic")) for info in run_infos]
    return "mixed" if any(flags) and not all(flags) else any(flags)


def synthetic_banner(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The opening lines of a multi-run report: what of it comes from synthetic notes, if anything."""
    status = synthetic_status(run["run_info"] for run in runs)
    if status is True:
        return [f"**SYNTHETIC DATA: every number in this report comes from {SYNTHETIC_SAMPLE}.**", ""]
    if status == "mixed":
        names = ", ".join(run["name"] for run in runs if (run["run_info"] or {}).get("synthetic"))
        return [f"**SYNTHETIC DATA in part: the numbers of {names} come from {SYNTHETIC_SAMPLE}.**", ""]
    return []


def plot_label_distribution(stats: dict, path, synthetic: bool = False) -> None:
    """The paper's Figure 3: tag counts and all-O share of train before and after down-sampling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = stats["labels"]
    splits = [name for name in ("train", "train_downsampled") if name in stats["splits"]]
    figure, (tags_axis, share_axis) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / len(splits)
    for offset, name in enumerate(splits):
        counts = [max(stats["splits"][name]["tag_counts"][label], 0) for label in labels]
        positions = [index + offset * width for index in range(len(labels))]
        tags_axis.bar(positions, counts, width=width, label=name)
    tags_axis.set_xticks([index + width * (len(splits) - 1) / 2 for index in range(len(labels))])
    tags_axis.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    tags_axis.set_yscale("log")
    tags_axis.set_ylabel("tokens (log scale)")
    tags_axis.legend()
    tags_axis.set_title("Tag counts, train before / after down-sampling")
    for offset, name in enumerate(s for s in ("train", "train_downsampled", "validation", "validation_downsampled")
                                  if s in stats["splits"]):
        share = stats["splits"][name]["all_o_share"]
        share_axis.bar(offset, share, color="C0" if "downsampled" not in name else "C1")
        share_axis.text(offset, share, f"{share:.2f}", ha="center", va="bottom", fontsize=8)
    share_axis.axhline(stats["plain_ratio"], color="gray", linestyle="--", linewidth=1)
    names = [s for s in ("train", "train_downsampled", "validation", "validation_downsampled") if s in stats["splits"]]
    share_axis.set_xticks(range(len(names)))
    share_axis.set_xticklabels([n.replace("_downsampled", "\ndown-sampled") for n in names], fontsize=8)
    share_axis.set_ylim(0, 1)
    share_axis.set_title("All-O sentence share")
    if synthetic:
        figure.suptitle("SYNTHETIC data (not real patient notes)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def render_significance_markdown(comparison: Mapping[str, Any]) -> str:
    """The comparison of two systems: each micro-F1's difference, its 95% interval and p-value (no note text)."""
    lines = ["# Two systems compared on the same notes", "",
             f"`{comparison['system']}` minus `{comparison['reference']}`: the difference of micro-F1 in points, its "
             "paired-bootstrap 95% interval over documents, and the two-sided approximate-randomization p-value "
             "over documents.", "",
             "| Metric | Difference | 95% CI | p-value | Documents |", "|---|---|---|---|---|"]
    for metric, row in comparison["metrics"].items():
        low, high = row["ci95"]
        lines.append(f"| {metric} | {100 * row['difference']:+.2f} | [{100 * low:+.2f}, {100 * high:+.2f}] | "
                     f"{row['p_value']:.4f}{'' if not row['p_value_exact'] else ' (exact)'} | {row['documents']} |")
    return "\n".join(lines) + "\n"


def render_calibration_markdown(calibration: Mapping[str, Any], digits: int = 3, diagram: str | None = None) -> str:
    """Whether entity confidences are calibrated (``calibration.calibration_report``): ECE, the reliability table
    and the threshold table, before and, when the run has a temperature, after it."""
    before, after = calibration["uncalibrated"], calibration.get("calibrated")
    lines = ["### Entity confidence calibration", "",
             "An entity's confidence is the mean over its words of the probability of the predicted tag; it is "
             "correct when its type and words are exactly a gold entity's (strict). ECE (expected calibration "
             "error): the gap between mean confidence and share correct in 10 equal-width bins, weighted by their "
             "entities; 0 is perfectly calibrated.", ""]
    counts = (f"{before['num_entities']} predicted entities with a confidence ({before['num_correct']} correct), "
              f"{calibration['num_gold_entities']} gold entities")
    if calibration.get("num_without_confidence"):
        counts += f"; {calibration['num_without_confidence']} predicted entities without a confidence left out"
    lines += [counts + ".", ""]
    if before["ece"] is None:
        return "\n".join(lines + ["No predicted entity has a confidence: nothing to calibrate.", ""])
    ece = f"ECE {_fmt(before['ece'], digits)}"
    if after is not None:
        ece += (f"; after the temperature T = {calibration['temperature']:.4g} fitted on validation "
                f"(`calibration.json`; inference applies it): {_fmt(after['ece'], digits)}")
    lines += [ece + ".", ""]

    def share(row):
        return [row["count"], row["mean_confidence"], row["share_correct"]]

    headers = ["Confidence", "Entities", "Mean confidence", "Share correct"]
    if after is not None:
        headers += ["Entities (after T)", "Mean confidence (after T)", "Share correct (after T)"]
    rows = []
    for index, row in enumerate(before["reliability"]):
        closing = "]" if index == len(before["reliability"]) - 1 else ")"
        cells = [f"[{row['lower']:.1f}, {row['upper']:.1f}{closing}", *share(row)]
        if after is not None:
            cells += share(after["reliability"][index])
        rows.append(cells)
    lines += ["Reliability: in each confidence bin, how many entities, their mean confidence and the share of them "
              "that is correct (calibrated: the two agree).", "", _md_table(headers, rows, digits), ""]

    headers = ["Keep confidence ≥", "Kept", "Precision", "Recall"]
    if after is not None:
        headers += ["Kept (after T)", "Precision (after T)", "Recall (after T)"]
    rows = []
    for index, row in enumerate(before["thresholds"]):
        cells = [f"{row['threshold']:g}", row["kept"], row["precision"], row["recall"]]
        if after is not None:
            other = after["thresholds"][index]
            cells += [other["kept"], other["precision"], other["recall"]]
        rows.append(cells)
    lines += ["Thresholds (`--min_confidence`): the entities kept at each threshold, their precision, and the "
              "recall of all gold entities that remains.", "", _md_table(headers, rows, digits), ""]
    if diagram:
        lines += [f"![reliability diagram]({diagram})", ""]
    return "\n".join(lines)


def plot_reliability_diagram(calibration: Mapping[str, Any], path: Path, title: str = "") -> None:
    """Share correct against mean confidence per bin (the diagonal is perfect calibration), before and after the
    temperature, above the number of entities per bin."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 6.0))
    reliability_axes, count_axes = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    reliability_axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    series = [("uncalibrated", "as predicted")]
    if "calibrated" in calibration:
        series.append(("calibrated", f"after T = {calibration['temperature']:.3g}"))
    for offset, (key, label) in zip((-0.02, 0.02), series):
        rows = [row for row in calibration[key]["reliability"] if row["count"]]
        ece = calibration[key]["ece"]
        reliability_axes.plot([row["mean_confidence"] for row in rows], [row["share_correct"] for row in rows],
                              marker="o", label=f"{label} (ECE {ece:.3f})" if ece is not None else label)
        centres = [(row["lower"] + row["upper"]) / 2 + offset for row in calibration[key]["reliability"]]
        count_axes.bar(centres, [row["count"] for row in calibration[key]["reliability"]], width=0.04, label=label)
    reliability_axes.set_xlim(0, 1)
    reliability_axes.set_ylim(0, 1)
    reliability_axes.set_ylabel("share correct (strict)")
    reliability_axes.grid(alpha=0.3)
    reliability_axes.legend(fontsize=8, loc="upper left")
    reliability_axes.set_title(title or "Reliability of entity confidences", fontsize=10)
    count_axes.set_xlabel("entity confidence")
    count_axes.set_ylabel("entities")
    figure.tight_layout()
    figure.savefig(path, dpi=150)
