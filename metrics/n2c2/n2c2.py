"""n2c2-2018 Track 2 scoring as a Hugging Face ``evaluate`` metric: ``evaluate.load("metrics/n2c2")``.

Each example is one note: ``predictions`` its predicted brat ``.ann`` text, ``references`` its gold ``.ann`` text;
``compute`` takes the notes' ``texts`` (offsets are read against them) and, optionally, their ``document_ids``. The
notes are written into a temporary pair of folders (``gold/ID.txt``, ``gold/ID.ann``, ``pred/ID.ann``) and scored
by ``clinical_ner_crf.n2c2_scoring.score_brat_folders``, the function behind ``evaluate_ablations.py --gold_brat
--pred_brat``: the numbers are those of its ``report.json``, by construction. README.md beside this file is the
metric card: what the result holds, and how the module finds the ``clinical_ner_crf`` library.

The library is imported inside functions, never by a line that starts with ``import``/``from``: evaluate reads such
lines before it runs the module and refuses any package that is not importable from where the user is.
"""

import inspect
import json
import os
import sys
import tempfile
from pathlib import Path

import datasets
import evaluate

LIBRARY = "clinical_ner_crf"

_DESCRIPTION = """\
n2c2-2018 Track 2 (medications and adverse drug events) entity and relation scores, as the official script scores
brat files: strict (same type, same start and end) and lenient (same type, any overlap), micro over all notes, per
type, and macro and weighted over types. Relations (R lines, Attribute-Drug) are scored when the references and the
predictions both have some. The numbers are those of `evaluate_ablations.py --gold_brat G --pred_brat P`
(clinical_ner_crf.n2c2_scoring.score_brat_folders), which this module calls on a temporary copy of the notes.
"""

_CITATION = """\
@article{henry2020n2c2,
  title   = {2018 n2c2 shared task on adverse drug events and medication extraction in electronic health records},
  author  = {Henry, Sam and Buchan, Kevin and Filannino, Michele and Stubbs, Amber and Uzuner, Ozlem},
  journal = {Journal of the American Medical Informatics Association},
  volume  = {27},
  number  = {1},
  pages   = {3--12},
  year    = {2020}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): each note's predicted brat `.ann` text (`""`: no predictions).
    references (`list` of `str`): each note's gold brat `.ann` text.
    texts (`list` of `str`): each note's text, required: offsets are read against it (`.txt`, exact characters).
    document_ids (`list` of `str`, optional): the notes' names (file stems); default `doc0000`, `doc0001`, ...
    **options: passed to `score_brat_folders`, those it takes: `entity_types` (score only these entity types),
        `relation_setting` (`end_to_end` or `gold_entities`: a label), `label_map`/`relation_map` (the gold's own
        types mapped), `per_document`, `official` (the official script's semantics, where the library has it):
        whatever its signature takes.
Returns:
    A flat dict: `entity_{strict,lenient}_{micro,macro,weighted}_{p,r,f1}`, `entity_{mode}_micro_{tp,fp,fn}`,
    per type `entity_{mode}_{Type}_{p,r,f1,tp,fp,fn}`, the official script's macro over notes
    `entity_{mode}_document_macro_{p,r,f1}` (where the library reports it), the same with `relation_` when relations
    are scored, `num_documents`, `num_gold_entities`, `num_pred_entities`, and `report`: the report of `report.json`
    (without `gold_dir` and `pred_dir`, a temporary folder).
Examples:
    >>> import evaluate
    >>> n2c2 = evaluate.load("metrics/n2c2")
    >>> text = "aspirin 81 mg PO daily\\n"
    >>> gold = "T1\\tDrug 0 7\\taspirin\\nT2\\tStrength 8 13\\t81 mg\\n"
    >>> pred = "T1\\tDrug 0 7\\taspirin\\nT2\\tStrength 8 10\\t81\\n"
    >>> results = n2c2.compute(predictions=[pred], references=[gold], texts=[text])
    >>> results["entity_strict_micro_f1"], results["entity_lenient_micro_f1"]
    (0.5, 1.0)
"""


def _module_folders() -> list[Path]:
    """The folders this module's source came from, the most exact first.

    evaluate imports a copy of this file from its module cache (``__file__`` is the copy). While ``evaluate.load``
    imports it, the path it was given is on the stack; evaluate also records the path of the first file with this
    content in ``n2c2.json`` beside the copy (a second checkout with the same file finds the first one's path
    there, which is why the stack comes first); imported directly, ``__file__`` is the source itself.
    """
    folders = []
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_name == "load" and frame.f_globals.get("__name__") == "evaluate.loading":
            given = frame.f_locals.get("path")
            if isinstance(given, (str, os.PathLike)):
                given = Path(given).resolve()
                folders.append(given.parent if given.is_file() else given)
            break
        frame = frame.f_back
    record = Path(__file__).with_suffix(".json")
    try:
        folders.append(Path(json.loads(record.read_text(encoding="utf-8"))["original file path"]).resolve().parent)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    folders.append(Path(__file__).resolve().parent)
    return folders


def _library_root() -> Path | None:
    """The folder holding the ``clinical_ner_crf`` this module belongs to, or None when none is found."""
    for folder in _module_folders():
        # The repository (REPOSITORY/metrics/n2c2/n2c2.py), or a metric Space with the library copied beside the file.
        for root in (folder.parent.parent, folder):
            if (root / LIBRARY / "n2c2_scoring.py").is_file():
                return root
    return None


def _check_one_library(root: Path | None, module) -> None:
    """A process holds one ``clinical_ner_crf``: this metric's repository must be the one it was imported from."""
    imported_from = Path(module.__file__).resolve().parent.parent if getattr(module, "__file__", None) else None
    if root is not None and imported_from is not None and imported_from != root.resolve():
        raise ImportError(
            f"{LIBRARY} is already imported from {imported_from}, but this metric belongs to {root}: one process "
            f"holds one {LIBRARY}. Load {imported_from / 'metrics' / 'n2c2'} instead, or load this one in a "
            f"fresh process.")


def _import_scoring():
    """``clinical_ner_crf.n2c2_scoring`` of this module's repository, put first on ``sys.path``; without one, whatever
    ``clinical_ner_crf`` Python finds (``PYTHONPATH``, the working folder)."""
    root = _library_root()
    loaded = sys.modules.get(LIBRARY)
    if loaded is not None:
        _check_one_library(root, loaded)
    elif root is not None and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        import clinical_ner_crf.n2c2_scoring as scoring
    except ImportError as error:
        raise ImportError(
            f"the n2c2 metric needs the {LIBRARY} library ({error}): load it from the repository "
            f"(evaluate.load('PATH/TO/REPOSITORY/metrics/n2c2')), put the repository on PYTHONPATH, or copy "
            f"{LIBRARY}/ beside n2c2.py") from None
    return scoring


scoring = _import_scoring()


def _scoring_options() -> set[str]:
    """The keyword options ``score_brat_folders`` takes (the folders aside): what ``compute`` passes through."""
    parameters = inspect.signature(scoring.score_brat_folders).parameters
    return {name for name, parameter in parameters.items() if name not in ("gold_dir", "pred_dir")
            and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)}


def _check_column(name: str, values) -> list:
    """A list of strings; a message names the position and the type, never the text."""
    if values is None or isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise ValueError(f"{name} must be a list of strings, one per note, not {type(values).__name__}")
    values = list(values)
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise ValueError(f"{name}[{index}] must be a string, not {type(value).__name__}")
    return values


def _check_pair(predictions, references) -> None:
    predictions = _check_column("predictions", predictions)
    references = _check_column("references", references)
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references: one .ann text of each "
                         f"per note")


def _document_ids(document_ids, count: int) -> list[str]:
    if document_ids is None:
        width = max(4, len(str(count - 1)))
        return [f"doc{index:0{width}d}" for index in range(count)]
    document_ids = _check_column("document_ids", document_ids)
    if len(document_ids) != count:
        raise ValueError(f"{len(document_ids)} document_ids for {count} notes")
    for index, doc_id in enumerate(document_ids):
        if not doc_id or doc_id in (".", "..") or any(c in doc_id for c in ("/", "\\", "\0", os.sep)):
            raise ValueError(f"document_ids[{index}] {doc_id!r} cannot be a file name")
    repeated = sorted({doc_id for doc_id in document_ids if document_ids.count(doc_id) > 1})
    if repeated:
        raise ValueError(f"document_ids repeat: {', '.join(repeated[:5])}")
    return document_ids


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:  # exact characters: CRLF stays two
        handle.write(text)


def _inputs_named(error, gold: Path, ids: dict[str, int]):
    """A BratFormatError about a temporary file, said about the input it holds (``references[3] (doc0003)``)."""
    path = Path(error.path)
    column = "texts" if path.suffix == ".txt" else "references" if path.parent == gold else "predictions"
    index = ids.get(path.stem)
    where = f"{column}[{index}] ({path.stem})" if index is not None else column
    return type(error)(where, error.line, error.reason, error.kind, error.skipped)


def flat_scores(report: dict) -> dict:
    """The flat numbers of a ``score_brat_folders`` report, named as ``clinical_ner_crf.metrics`` names them."""
    from clinical_ner_crf.metrics import AVERAGES, STATS, entity_view, metric_name, relation_view

    flat = {}
    sections = [(entity_view, report)]
    if "relations" in report:
        sections.append((relation_view, report["relations"]))
    for view_of, section in sections:
        for mode in ("strict", "lenient"):
            view, scores = view_of(mode), section[mode]
            for average in AVERAGES:
                flat.update({metric_name(view, average, short): scores[average][key] for key, short in STATS})
            flat.update({f"{view}_micro_{key}": scores["micro"][key] for key in ("tp", "fp", "fn")})
            for name, row in scores["per_type"].items():
                flat.update({f"{view}_{name}_{short}": row[key] for key, short in STATS})
                flat.update({f"{view}_{name}_{key}": row[key] for key in ("tp", "fp", "fn")})
            if "per_document_macro" in scores:  # the official script's macro: the mean over notes
                flat.update({f"{view}_document_macro_{short}": scores["per_document_macro"][key]
                             for key, short in STATS})
    flat.update({key: report[key] for key in ("num_documents", "num_gold_entities", "num_pred_entities")})
    return flat


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class N2c2(evaluate.Metric):
    """n2c2-2018 Track 2 entity and relation scores of brat ``.ann`` texts (``score_brat_folders``)."""

    def __init__(self, *args, **kwargs):
        # evaluate imports a file once per process and content: loaded again from another checkout with the same
        # n2c2.py, this module (and its library) would be the first one's.
        _check_one_library(_library_root(), sys.modules[LIBRARY])
        # The inputs hold corpus text (an .ann line quotes its entity): in one process they stay in memory, not in
        # evaluate's cache files on disk. Several processes (num_process > 1) need those files.
        if kwargs.get("num_process", 1) == 1:
            kwargs["keep_in_memory"] = True
        super().__init__(*args, **kwargs)

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
            reference_urls=["https://portal.dbmi.hms.harvard.edu/projects/n2c2-2018-t2/",
                            "https://doi.org/10.1093/jamia/ocz166"],
        )

    # evaluate's own format errors quote the inputs (corpus text): the inputs are checked first, by position and type.
    # (Each needs a docstring: evaluate appends the inputs' description to it.)
    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add notes: their predicted and gold ``.ann`` texts (``texts`` go to ``compute``)."""
        _check_pair(predictions, references)
        return super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one note: its predicted and gold ``.ann`` texts (``texts`` go to ``compute``)."""
        _check_pair([prediction], [reference])
        return super().add(prediction=prediction, reference=reference, **kwargs)

    def _compute(self, predictions, references, texts=None, document_ids=None, **options):
        _check_pair(predictions, references)
        if texts is None:
            raise ValueError("texts is required: each note's text, in the order of the references (offsets are "
                             "read against it)")
        texts = _check_column("texts", texts)
        if len(texts) != len(references):
            raise ValueError(f"{len(texts)} texts for {len(references)} notes")
        ids = _document_ids(document_ids, len(references))
        unknown = sorted(set(options) - _scoring_options())
        if unknown:
            raise ValueError(f"unknown option {', '.join(unknown)}: score_brat_folders takes "
                             f"{', '.join(sorted(_scoring_options()))}")
        from clinical_ner_crf.documents import BratFormatError

        with tempfile.TemporaryDirectory(prefix="n2c2-metric-") as folder:  # readable by its owner only
            gold, pred = Path(folder, "gold"), Path(folder, "pred")
            gold.mkdir()
            pred.mkdir()
            for doc_id, text, reference, prediction in zip(ids, texts, references, predictions):
                _write(gold / f"{doc_id}.txt", text)
                _write(gold / f"{doc_id}.ann", reference)
                _write(pred / f"{doc_id}.ann", prediction)
            try:
                report = scoring.score_brat_folders(gold, pred, **options)
            except BratFormatError as error:
                raise _inputs_named(error, gold, {doc_id: index for index, doc_id in enumerate(ids)}) from None
        del report["gold_dir"], report["pred_dir"]  # a temporary folder, gone now
        return {**flat_scores(report), "report": report}
