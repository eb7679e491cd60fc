#!/usr/bin/env python
"""Score NER predictions the way the paper and the n2c2-2018 shared task do.

It turns the word-level predictions of one or more runs into the paper's tables (BIO-strict and
token-level tag scores, the Table IV ablations, the confusion matrix), entity-level strict and
lenient scores, a comparison across runs and a learning curve; or it scores brat folders the way the
n2c2-2018 Track 2 official script does: entities, and relations (``R`` lines) when the gold files
have them (:func:`score_relations`, also callable on documents without files).

    python evaluate_ablations.py --predictions outputs/bert-crf --output_dir reports/bert-crf
    python evaluate_ablations.py --predictions outputs/*-seed* --output_dir reports/compare
    python evaluate_ablations.py --gold_brat n2c2/test --pred_brat outputs/bert-crf/predictions/brat \
        --output_dir reports/brat
    python evaluate_ablations.py --gold_brat n2c2/test --pred_brat runs/relations/predictions/brat \
        --relation_setting gold_entities --output_dir reports/relations

Reports never contain corpus text: tag names, document ids and counts only.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from clinical_ner_crf import reports
from clinical_ner_crf.command_line import SHARED_FLAG_HELP, UsageError, parse_command, run_main
from clinical_ner_crf.console import configure_output, percent, print_outputs
from clinical_ner_crf.documents import BratFormatError
from clinical_ner_crf.files import (
    COMPARISON_FILE, PREDICTIONS_DIRNAME, REPORT_JSON_FILE, REPORT_MARKDOWN_FILE, RUN_INFO_FILE, TEST_PREDICTIONS_FILE,
    check_output_dir, run_predictions_path, write_folder_atomically, write_json_atomically,
)
from clinical_ner_crf.folder_safety import FolderLock, check_output_apart
from clinical_ner_crf.label_maps import load_label_map, load_relation_map
from clinical_ner_crf.n2c2_scoring import DEFAULT_RELATION_SETTING, RELATION_SETTINGS, score_brat_folders
from clinical_ner_crf.prediction_records import PredictionFormatError, read_predictions
from clinical_ner_crf.reports import (
    aggregate_runs, flat_metrics, learning_curve, render_brat_markdown, render_comparison_markdown,
    render_learning_curve_markdown, render_run_markdown, render_significance_markdown, run_title, synthetic_banner,
    synthetic_status,
    write_comparison_csv, write_confusion_csv, write_learning_curve_csv,
)
from clinical_ner_crf.significance import compare_per_document
from clinical_ner_crf.tagging import entity_types_of
from clinical_ner_crf.token_metrics import BIO_VIEW, entity_counts_by_document, evaluate_run, paper_ablations

logger = logging.getLogger(__name__)
SCRIPT = "evaluate_ablations.py"
DATA_ERRORS = (BratFormatError, PredictionFormatError)  # file:line: reason (a missing folder: a usage error)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


@dataclass
class EvaluationArguments:
    """What to score and where the report goes."""

    output_dir: str = field(metadata={
        "help": f"Folder for {REPORT_JSON_FILE}, {REPORT_MARKDOWN_FILE}, CSV tables and PNG figures."})
    predictions: Optional[list[str]] = field(default=None, metadata={
        "help": f"Run folders (RUN_DIR/{PREDICTIONS_DIRNAME}/{TEST_PREDICTIONS_FILE} + RUN_DIR/{RUN_INFO_FILE}) or "
                "prediction JSONL files; several give a comparison table and, across train fractions, "
                "a learning curve."})
    gold_brat: Optional[str] = field(default=None, metadata={"help": "Gold brat folder (.txt + .ann)."})
    pred_brat: Optional[str] = field(default=None, metadata={"help": "System brat folder (.ann; any types)."})
    compare_brat: Optional[str] = field(default=None, metadata={
        "help": "Brat mode: a second system's brat folder, compared with --pred_brat on the same gold notes: the "
                "difference of each micro-F1 (--pred_brat minus this), its paired-bootstrap 95%% interval and an "
                "approximate-randomization p-value over documents, in comparison.json and report.md."})
    compare_predictions: Optional[str] = field(default=None, metadata={
        "help": "Predictions mode: a second run folder (or prediction JSONL) compared with the one run of "
                "--predictions on the same test notes: the difference of entity micro-F1 and of each type's F1, "
                "strict and lenient, with its paired-bootstrap 95%% interval and approximate-randomization p-value "
                "over documents, in comparison.json and report.md."})
    seed: int = field(default=0, metadata={
        "help": "Seed of the bootstrap and the randomization (--compare_brat, --compare_predictions)."})
    exclude_labels: list[str] = field(default_factory=list, metadata={
        "help": "Labels or types for a custom token-level ablation, e.g. O ADE Reason."})
    merge: list[str] = field(default_factory=list, metadata={
        "help": "Type merges SRC=DST for a custom token-level ablation, e.g. ADE=Reason."})
    no_paper_ablations: bool = field(default=False, metadata={
        "help": "Skip the paper's Table IV ablations (they run by default)."})
    label_map: Optional[str] = field(default=None, metadata={
        "help": "Brat mode, the gold's types as prepare_n2c2.py maps them. " + SHARED_FLAG_HELP["label_map"]})
    relation_map: Optional[str] = field(default=None, metadata={
        "help": "Brat mode, the gold's relations as prepare_n2c2.py maps them. " + SHARED_FLAG_HELP["relation_map"]})
    brat_entity_types: Optional[list[str]] = field(default=None, metadata={
        "help": "Score only these types in brat mode (default: every type in the files); relations are not "
                "filtered."})
    relation_setting: str = field(default=DEFAULT_RELATION_SETTING, metadata={
        "choices": list(RELATION_SETTINGS),
        "help": "Brat mode, when the gold files have relations (R lines): where the predicted relations' entities "
                "came from, end_to_end (the system's own) or gold_entities (the gold ones). It only labels the "
                "report's relations section; the scoring is the same."})
    top_confusions: int = field(default=15, metadata={"help": "How many confusions to list."})
    digits: int = field(default=3, metadata={"help": "Decimals in Markdown tables."})
    official: bool = field(default=False, metadata={
        "help": "Brat mode: score exactly as the n2c2-2018 official script (Track2-evaluate-ver4.py) where the "
                "default differs: a gold note without a prediction file is skipped (by default its gold counts as "
                "missed) and every copy of an exact duplicate counts (by default once). The report names the "
                "semantics it used."})
    overwrite: bool = field(default=False, metadata={"help": SHARED_FLAG_HELP["overwrite"]})


# What a report writes into --output_dir (--overwrite removes these and nothing else).
def _parse_merge(items: Sequence[str]) -> dict[str, str]:
    merge = {}
    for item in items:
        source, separator, target = item.partition("=")
        if not separator or not source or not target:
            raise ValueError(f"--merge expects SRC=DST, got {item!r}")
        merge[source] = target
    return merge


def resolve_run(path: str | Path) -> tuple[Path, dict[str, Any] | None, str]:
    """``(predictions file, run_info or None, run name)`` for a run folder or a JSONL file."""
    path = Path(path)
    if path.is_dir():
        candidates = [run_predictions_path(path), path / TEST_PREDICTIONS_FILE]
        predictions = next((c for c in candidates if c.is_file()), None)
        if predictions is None:
            raise FileNotFoundError(f"{path}: run folder without {PREDICTIONS_DIRNAME}/{TEST_PREDICTIONS_FILE} "
                                    f"(nor {TEST_PREDICTIONS_FILE}); run_ner_crf.py --do_predict writes it")
    elif path.is_file():
        predictions = path
    else:
        raise FileNotFoundError(f"{path}: does not exist (expected a run folder with "
                                f"{PREDICTIONS_DIRNAME}/{TEST_PREDICTIONS_FILE}, or a predictions JSONL file)")
    run_dir = predictions.parent.parent if predictions.parent.name == PREDICTIONS_DIRNAME else predictions.parent
    run_info = None
    for candidate in (run_dir / RUN_INFO_FILE, predictions.parent / RUN_INFO_FILE):
        if candidate.is_file():
            run_info = json.loads(candidate.read_text(encoding="utf-8"))
            break
    if run_info is None:
        logger.warning("%s: no %s; the run is compared by its folder name only", path, RUN_INFO_FILE)
    name = run_dir.resolve().name if path.is_dir() or predictions.parent.name == PREDICTIONS_DIRNAME else predictions.stem
    return predictions, run_info, name


def resolve_runs(paths: Sequence[str | Path]) -> list[tuple[Path, dict[str, Any] | None, str]]:
    """:func:`resolve_run` of every path; one ``FileNotFoundError`` naming all the missing ones."""
    resolved, missing = [], []
    for path in paths:
        try:
            resolved.append(resolve_run(path))
        except FileNotFoundError as error:
            missing.append(str(error))
    if missing:
        raise FileNotFoundError("; ".join(missing))
    return resolved


def _unique(name: str, taken: set[str]) -> str:
    candidate, index = name, 2
    while candidate in taken:
        candidate, index = f"{name}-{index}", index + 1
    taken.add(candidate)
    return candidate


def evaluate_predictions(args: EvaluationArguments, output_dir: Path,
                         resolved: Sequence[tuple[Path, dict[str, Any] | None, str]]) -> dict[str, Any]:
    """Score the runs of :func:`resolve_runs` and write the report into ``output_dir``."""
    # Here, not at the top: an entity's confidence comes from windows.py, which imports torch (--help stays light).
    from clinical_ner_crf.calibration import calibration_report, read_temperature, record_outcomes

    custom = None
    if args.exclude_labels or args.merge:
        merge = _parse_merge(args.merge)
        # A name that is also a clean CSV column prefix, e.g. custom_exclude_O_Drug_merge_ADE_into_Reason.
        name = "_".join(["custom"] + ["exclude"] * bool(args.exclude_labels) + list(args.exclude_labels)
                        + ["merge"] * bool(merge) + [f"{k}_into_{v}" for k, v in merge.items()])
        custom = (name, tuple(args.exclude_labels), merge or None)

    runs, taken = [], set()
    for predictions, run_info, name in resolved:
        name = _unique(name, taken)
        rows = read_predictions(predictions)
        types = entity_types_of(tag for row in rows for key in ("gold_tags", "pred_tags") for tag in row.get(key) or ())
        ablations = [] if args.no_paper_ablations else paper_ablations(types)
        if custom:
            ablations.append(custom)
        report = evaluate_run(rows, ablations=ablations, top_k=args.top_confusions)
        report["predictions_file"] = str(predictions)
        report["run_info"] = run_info
        outcomes = record_outcomes(rows)  # None without gold tags or confidences
        if outcomes is not None:  # with the temperature of the run folder's calibration.json, if it has one
            folder = predictions.parent.parent if predictions.parent.name == PREDICTIONS_DIRNAME else predictions.parent
            report["calibration"] = calibration_report(outcomes, read_temperature(folder))
        run_dir = output_dir / "runs" / name
        run_dir.mkdir(parents=True, exist_ok=True)
        write_confusion_csv(report["confusion"], run_dir / "confusion_matrix.csv")
        reports.plot_confusion_matrix(report["confusion"], run_dir / "confusion_matrix.png",
                              f"{run_title(name, run_info)}: BIO tags, words (rows gold, columns predicted)")
        markdown = render_run_markdown(name, report, run_info, args.digits, "confusion_matrix.png")
        if "calibration" in report:
            diagram = None
            if report["calibration"]["uncalibrated"]["num_entities"]:
                diagram = "reliability_diagram.png"
                reports.plot_reliability_diagram(report["calibration"], run_dir / diagram,
                                                 f"{run_title(name, run_info)}: entity confidences")
            markdown += "\n" + reports.render_calibration_markdown(report["calibration"], args.digits, diagram)
        (run_dir / REPORT_MARKDOWN_FILE).write_text(markdown, encoding="utf-8")
        runs.append({"name": name, "run_info": run_info, "report": report, "metrics": flat_metrics(report),
                     "markdown": markdown})
        logger.info("%s: entity strict micro F1 %.4f, BIO-strict macro F1 %.4f", name,
                    report["entity"]["strict"]["micro"]["f1"], report["tag"][BIO_VIEW.name]["macro"]["f1"])

    groups = aggregate_runs(runs)
    ablation_names = list(dict.fromkeys(n for run in runs for n in run["report"]["ablations"]))
    comparison_md = render_comparison_markdown(groups, ablation_names, args.digits)
    banner = synthetic_banner(runs)
    (output_dir / "comparison.md").write_text("\n".join(banner + [comparison_md, ""]), encoding="utf-8")
    write_comparison_csv(groups, output_dir / "comparison.csv")
    curve = learning_curve(groups)
    if curve:
        reports.plot_learning_curve(curve, output_dir / "learning_curve.png")
        write_learning_curve_csv(curve, output_dir / "learning_curve.csv")

    markdown = banner + ["# Evaluation report", "", comparison_md, ""]
    if curve:
        markdown += [render_learning_curve_markdown(curve, args.digits), "![learning curve](learning_curve.png)", ""]
    for run in runs:
        markdown += [run["markdown"].replace("](confusion_matrix.png)", f"](runs/{run['name']}/confusion_matrix.png)")
                     .replace("](reliability_diagram.png)", f"](runs/{run['name']}/reliability_diagram.png)"), ""]
    (output_dir / REPORT_MARKDOWN_FILE).write_text("\n".join(markdown), encoding="utf-8")
    return {
        "mode": "predictions",
        "synthetic": synthetic_status(run["run_info"] for run in runs),
        "runs": {run["name"]: run["report"] for run in runs},
        "comparison": list(groups),
        "learning_curve": curve,
    }


def compare_runs(system, reference, seed: int) -> dict[str, Any]:
    """Two resolved runs (:func:`resolve_run`) compared on their test notes, note by note: each entity micro-F1 and
    each type's F1, strict and lenient (``significance.compare_per_document``)."""
    counts = [entity_counts_by_document(read_predictions(path)) for path, _, _ in (system, reference)]
    try:
        metrics = compare_per_document(*counts, seed=seed)
    except ValueError as error:
        raise PredictionFormatError(f"{system[0]} and {reference[0]}: {error}") from None
    return {"system": str(system[0]), "reference": str(reference[0]), "metrics": metrics}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    (args,) = parse_command(SCRIPT, (EvaluationArguments,), argv, description=__doc__.split("\n\n")[0])
    configure_output(logger)

    brat = args.gold_brat is not None or args.pred_brat is not None
    if brat and (args.gold_brat is None or args.pred_brat is None):
        raise UsageError("--gold_brat and --pred_brat go together")
    if brat == bool(args.predictions):
        raise UsageError("give either --predictions or --gold_brat/--pred_brat")
    if args.compare_brat and not brat:
        raise UsageError("--compare_brat compares two brat folders on --gold_brat: give --gold_brat/--pred_brat")
    if args.compare_predictions and (brat or len(args.predictions or ()) != 1):
        raise UsageError("--compare_predictions compares two runs: give one run with --predictions and the other "
                         "with --compare_predictions")
    if args.official and not brat:
        raise UsageError("--official scores brat folders as the official n2c2 script does: give --gold_brat/--pred_brat")
    if (args.label_map or args.relation_map) and not brat:
        raise UsageError("--label_map and --relation_map map the gold of --gold_brat: give --gold_brat/--pred_brat")
    if not brat:
        # Every path first: a typo in the last run folder must not cost the scoring of the others
        # nor leave half a report behind.
        try:
            resolved = resolve_runs(args.predictions)
        except FileNotFoundError as error:
            raise UsageError(f"--predictions {error}") from None
        if args.compare_predictions:
            try:
                resolved += resolve_runs([args.compare_predictions])
            except FileNotFoundError as error:
                raise UsageError(f"--compare_predictions {error}") from None
    # The same rule as training: an earlier report is replaced only when asked, checked before scoring; the report
    # is never written where its inputs are, one command writes it at a time, and it appears whole or not at all.
    output_dir = Path(args.output_dir)
    check_output_apart(output_dir, {"--predictions": args.predictions, "--gold_brat": args.gold_brat,
                                    "--pred_brat": args.pred_brat, "--compare_brat": args.compare_brat,
                                    "--compare_predictions": args.compare_predictions})
    with FolderLock(output_dir, SCRIPT):
        try:
            check_output_dir(output_dir, args.overwrite)
        except FileExistsError as error:
            raise UsageError(f"--output_dir {output_dir} exists and is not empty; pass --overwrite to replace the "
                             "earlier report, or give another folder" if output_dir.is_dir()
                             else f"--output_dir {error}") from None
        report = _write_report(args, output_dir, resolved if not brat else None)
    _print_outputs(report, output_dir)
    return report


def _write_report(args: EvaluationArguments, output_dir: Path, resolved) -> dict[str, Any]:
    """Score, then write the report folder atomically (a temporary sibling moved into place when complete)."""
    brat = resolved is None
    if brat:
        # Scoring only reads, so every input problem surfaces here (file:line: reason, never the note's text),
        # before anything is removed or written.
        scoring = dict(entity_types=args.brat_entity_types, relation_setting=args.relation_setting,
                       label_map=load_label_map(args.label_map) if args.label_map else None,
                       relation_map=load_relation_map(args.relation_map) if args.relation_map else None,
                       per_document=bool(args.compare_brat), official=args.official)
        report = score_brat_folders(args.gold_brat, args.pred_brat, **scoring)
        if args.compare_brat:
            other = score_brat_folders(args.gold_brat, args.compare_brat, **scoring)
            report["comparison"] = {
                "system": args.pred_brat, "reference": args.compare_brat,
                "reference_scores": {"entity_strict_micro_f1": other["strict"]["micro"]["f1"],
                                     "entity_lenient_micro_f1": other["lenient"]["micro"]["f1"],
                                     **({"relation_strict_micro_f1": other["relations"]["strict"]["micro"]["f1"],
                                         "relation_lenient_micro_f1": other["relations"]["lenient"]["micro"]["f1"]}
                                        if "relations" in other else {})},
                "metrics": compare_per_document(report["per_document"], other["per_document"], seed=args.seed)}
            report.pop("per_document")  # counts per note: the comparison's input, not a result

    def write(folder: Path) -> None:
        nonlocal report
        if brat:
            markdown = render_brat_markdown(report, max(args.digits, 4))
            if "comparison" in report:
                markdown += "\n" + render_significance_markdown(report["comparison"])
                write_json_atomically(folder / COMPARISON_FILE, report["comparison"])
            (folder / REPORT_MARKDOWN_FILE).write_text(markdown, encoding="utf-8")
        else:
            report = evaluate_predictions(args, folder, resolved)
            if args.compare_predictions:
                # "comparison" holds the runs' table here; the test of the two runs goes beside it.
                report["significance"] = compare_runs(resolved[0], resolved[1], args.seed)
                write_json_atomically(folder / COMPARISON_FILE, report["significance"])
                with (folder / REPORT_MARKDOWN_FILE).open("a", encoding="utf-8") as handle:
                    handle.write("\n" + render_significance_markdown(report["significance"]))
        with (folder / REPORT_JSON_FILE).open("w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)

    if not brat:
        report = None
    write_folder_atomically(output_dir, args.overwrite, write)  # a PredictionFormatError: file:line: reason
    if brat:
        logger.info("strict micro F1 %.4f, lenient micro F1 %.4f over %d documents (%d prediction files skipped)",
                    report["strict"]["micro"]["f1"], report["lenient"]["micro"]["f1"], report["num_documents"],
                    len(report["skipped_prediction_files"]))
        if "relations" in report:
            relations = report["relations"]
            logger.info("relations (%s): strict micro F1 %.4f, lenient micro F1 %.4f; %d of %d predicted relations "
                        "have an argument that matches no gold entity", relations["setting"],
                        relations["strict"]["micro"]["f1"], relations["lenient"]["micro"]["f1"],
                        relations["pred_relations_with_unmatched_argument"], relations["num_pred_relations"])
    logger.info("Report written to %s", output_dir)
    return report


def _print_outputs(report: dict[str, Any], output_dir: Path) -> None:
    rows = [("report", output_dir / REPORT_MARKDOWN_FILE, ""), ("every number", output_dir / REPORT_JSON_FILE, "")]
    if report.get("mode") == "brat":
        # What the F1 is quoted with: the notes without a (readable) prediction file, and how they were counted.
        notes, unreadable = report["num_gold_documents"], len(report["skipped_prediction_files"])
        missing, unparseable = report["num_missing_predictions"], report["unparseable_pred_lines"]["count"]
        if report["semantics"] == "official":
            remarks = ["the official script's semantics"] + [
                f"{missing} of {notes} notes without a prediction file skipped"] * bool(missing) + [
                f"{unreadable} unreadable prediction files: their gold counted as missed"] * bool(unreadable)
        else:
            remarks = [f"{missing + unreadable} of {notes} notes without a readable prediction file: all their gold "
                       "counted as missed; the official script would skip them"] * bool(missing + unreadable)
        remarks += [f"{unparseable} unparseable prediction lines counted as false positives"] * bool(unparseable)
        rows[0] = ("report", rows[0][1], f"entity strict micro-F1 {percent(report['strict']['micro']['f1'])}, "
                                         f"lenient {percent(report['lenient']['micro']['f1'])}"
                   + (f" ({'; '.join(remarks)})" if remarks else ""))
        if "relations" in report:
            relations = report["relations"]
            rows.insert(1, ("", "", f"relation strict micro-F1 {percent(relations['strict']['micro']['f1'])}, "
                                    f"lenient {percent(relations['lenient']['micro']['f1'])} ({relations['setting']})"))
        elif "relations_not_scored" in report:
            rows.insert(1, ("", "", f"relations not scored: {report['relations_not_scored']}"))
    else:
        rows[0] = ("report", rows[0][1], f"{len(report.get('runs', []))} run(s): paper tables, ablations, confusions")
    tested = report.get("significance") or (report.get("comparison") if report.get("mode") == "brat" else None)
    if tested:
        strict = tested["metrics"]["entity_strict_micro_f1"]
        rows.append(("comparison", output_dir / COMPARISON_FILE,
                     f"entity strict micro-F1 {100 * strict['difference']:+.2f} points, 95% CI "
                     f"[{100 * strict['ci95'][0]:+.2f}, {100 * strict['ci95'][1]:+.2f}], "
                     f"p = {strict['p_value']:.4f}"))
    print_outputs(f"{SCRIPT} wrote:", rows)


if __name__ == "__main__":
    run_main(main, SCRIPT, data_errors=DATA_ERRORS)
