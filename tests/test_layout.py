"""The layout: the top level holds the commands and modeling_crf.py, the library folder everything they share.

No script imports a script (tests and bench/ neither: they call a command's ``main`` through ``command()``), there
is no import cycle, each library module imports only what it says, every module has its test file, and the
fact -> home table of docs/architecture.md is what the code imports.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

from conftest import LIBRARY, REPO_ROOT

# The commands a user runs (README "Commands"), and the model file that travels to the Hub alone.
COMMANDS = {"prepare_n2c2", "run_ner_crf", "evaluate_ablations", "run_re", "annotate_notes", "export_onnx",
            "pretrain_mlm", "parameter_table", "annotate_spark", "review_notes"}
MODEL_FILE = "modeling_crf"
LIBRARY_DIR = REPO_ROOT / LIBRARY
LIBRARY_MODULES = sorted(path.stem for path in LIBRARY_DIR.glob("*.py") if path.stem != "__init__")

# What a library module may import from outside the standard library and the project.
ALLOWED_THIRD_PARTY = {
    "tagging": {"tokenizers"},
    "windows": {"torch", "transformers", "tqdm"},  # copied beside every saved CRF model, with tagging.py
    "subwords": {"tokenizers", "transformers"},
    "relations": set(),  # no torch: bench/ uses it on its own
    "onnx_backend": {"numpy", "onnxruntime", "tqdm", "huggingface_hub"},  # serving without torch (a Hub id's export)
    "folder_safety": set(),  # every command uses it, --help included: standard library only
    # The same at import: transformers, torch and datasets only inside the functions of the training commands.
    "command_line": {"transformers", "torch"},
    "console": {"transformers", "datasets"},  # only once a command has imported them: --help stays light
    "files": set(),
    "documents": set(),
    "brat": {"tqdm"},  # progress bars
    "conll": set(),
    "label_maps": set(),
    "corpus_formats": set(),
    "prediction_records": set(),
    "significance": {"numpy"},  # counts in, an interval and a p-value out: a matrix product per batch of redraws
    "metrics": set(),
    "durable_jsonl": set(),
    "n2c2_scoring": set(),
    "token_metrics": {"seqeval", "numpy", "sklearn"},  # seqeval checks the strict entity scores
    "sentence_examples": set(),
    "sampling": {"datasets"},  # sample_documents takes a datasets.Dataset
    "synthetic_n2c2": set(),
    "hub_upload": {"huggingface_hub", "transformers"},
    "model_sources": {"huggingface_hub"},  # inside the functions: a local folder is checked without it
    "note_tables": {"pyarrow"},  # tables of notes; no model code
    "table_annotation": {"pyarrow", "tqdm"},
    "spark_annotation": {"pyarrow", "pyspark", "torch", "transformers"},  # the one module that imports pyspark
    "review_pages": set(),  # the review site: standard library only
}


def test_only_the_spark_module_and_command_import_pyspark():
    """pyspark is a requirement of annotate_spark.py alone (requirements-spark.txt): no other command or module
    imports it, at the top or inside a function."""
    files = [*python_files(REPO_ROOT), *python_files(LIBRARY_DIR)]
    importers = sorted(path.name for path in files if "pyspark" in imports_of(path))
    assert importers == ["annotate_spark.py", "spark_annotation.py"]


def python_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.py"))


def tracked_top_level_python() -> set[str]:
    listed = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO_ROOT, capture_output=True, text=True)
    if listed.returncode != 0:  # not a git checkout (a copied tree): what is on disk
        return {path.stem for path in python_files(REPO_ROOT)}
    return {Path(name).stem for name in listed.stdout.split() if "/" not in name}


def imports_of(path: Path) -> set[str]:
    """Project-level names of every module a file imports, at any depth (function-level imports too): a library
    module as ``clinical_ner_crf.NAME``, anything else by its top-level name."""
    in_library = path.parent == LIBRARY_DIR
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name if alias.name.startswith(LIBRARY + ".") else alias.name.split(".")[0]
                         for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 1 and in_library:
                base = f"{LIBRARY}.{node.module}" if node.module else LIBRARY
            elif node.level == 0:
                base = node.module
            else:
                continue
            if base == LIBRARY:  # from clinical_ner_crf import brat, files
                names.update(f"{LIBRARY}.{alias.name}" for alias in node.names)
            elif base.startswith(LIBRARY + "."):
                names.add(base)
            else:
                names.add(base.split(".")[0])
    return names


def module_name(path: Path) -> str:
    return f"{LIBRARY}.{path.stem}" if path.parent == LIBRARY_DIR else path.stem


def project_graph() -> dict[str, set[str]]:
    """Commands, modeling_crf and library modules -> the project modules each imports."""
    files = [REPO_ROOT / f"{name}.py" for name in sorted(COMMANDS | {MODEL_FILE})]
    files += [LIBRARY_DIR / f"{name}.py" for name in LIBRARY_MODULES]
    project = {module_name(path) for path in files}
    return {module_name(path): (imports_of(path) & project) - {module_name(path)} for path in files}


def test_the_top_level_holds_the_commands_and_the_model_file():
    assert tracked_top_level_python() == COMMANDS | {MODEL_FILE}
    assert (LIBRARY_DIR / "__init__.py").is_file() and not [path for path in LIBRARY_DIR.iterdir() if path.is_dir()
                                                              and path.name != "__pycache__"], "one flat folder"


def test_no_script_imports_a_script():
    """Commands, the library, tests, bench/ and the evaluate metric (metrics/n2c2/) import no command (tests and bench/
    run a command's main through conftest.command / common.command, or in a process of its own)."""
    offenders = []
    for folder in (REPO_ROOT, LIBRARY_DIR, REPO_ROOT / "tests", REPO_ROOT / "bench", REPO_ROOT / "metrics" / "n2c2"):
        for path in python_files(folder):
            if path.name == "test_layout.py":
                continue
            imported = imports_of(path) & COMMANDS - {path.stem}
            offenders += [f"{path.relative_to(REPO_ROOT)} imports {name}" for name in sorted(imported)]
    assert not offenders


def test_no_import_cycle():
    graph = project_graph()
    done, path = set(), []

    def visit(name):
        if name in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(name):] + [name]))
        if name in done:
            return
        path.append(name)
        for dependency in sorted(graph[name]):
            visit(dependency)
        path.pop()
        done.add(name)

    for name in graph:
        visit(name)


def test_modules_depend_only_on_what_they_say():
    graph = project_graph()
    assert graph[MODEL_FILE] == set(), "modeling_crf.py travels to the Hub alone"
    assert graph[f"{LIBRARY}.tagging"] == set()
    assert graph[f"{LIBRARY}.windows"] == {f"{LIBRARY}.tagging"}, "windows.py travels with tagging.py alone"
    assert graph[f"{LIBRARY}.command_line"] == set()
    assert graph[f"{LIBRARY}.folder_safety"] == {f"{LIBRARY}.command_line"}
    for name in LIBRARY_MODULES:
        assert not graph[f"{LIBRARY}.{name}"] & COMMANDS, f"{name} imports a command"
    for name, allowed in ALLOWED_THIRD_PARTY.items():
        third_party = {module for module in imports_of(LIBRARY_DIR / f"{name}.py")
                       if module not in sys.stdlib_module_names and not module.startswith(LIBRARY)
                       and module not in ("__future__", MODEL_FILE)}
        assert third_party <= allowed, f"{name}.py imports {sorted(third_party - allowed)}"


def test_every_library_module_and_command_has_its_test_file():
    tests = {path.stem for path in python_files(REPO_ROOT / "tests")}
    missing = sorted(f"test_{name}.py" for name in [*LIBRARY_MODULES, *COMMANDS, MODEL_FILE]
                     if f"test_{name}" not in tests)
    assert not missing


def fast_tests(path: Path) -> list[str]:
    """The test functions of a file that ``make test-fast`` runs: not marked slow (on the function or the module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module_slow = any(isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pytestmark" for t in node.targets)
                      and "slow" in ast.unparse(node.value) for node in tree.body)
    return [] if module_slow else [
        node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        and not any("slow" in ast.unparse(decorator) for decorator in node.decorator_list)]


def test_the_fast_tier_covers_every_module_and_command():
    missing = [name for name in [*LIBRARY_MODULES, *COMMANDS, MODEL_FILE]
               if (REPO_ROOT / "tests" / f"test_{name}.py").is_file()
               and not fast_tests(REPO_ROOT / "tests" / f"test_{name}.py")]
    assert not missing, f"only slow tests: {missing}"


def test_every_module_imports_on_its_own():
    """Each module imports with none of the others imported before it (one process; the project's modules
    are forgotten between imports, third-party ones are kept to spare the time)."""
    modules = sorted(project_graph())
    code = (
        "import importlib, sys\n"
        f"modules = {modules!r}\n"
        "for module in modules:\n"
        f"    for name in [name for name in sys.modules if name in modules or name.startswith({LIBRARY!r})]:\n"
        "        sys.modules.pop(name, None)\n"
        "    importlib.import_module(module)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_preparing_data_does_not_import_the_deep_learning_stack():
    """prepare_n2c2 (and the word splitter, the readers) import in milliseconds: no torch, transformers or datasets."""
    code = (f"import sys, prepare_n2c2, {LIBRARY}.tagging, {LIBRARY}.brat, {LIBRARY}.command_line\n"
            "print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def architecture_table() -> list[tuple[str, str, str]]:
    """(fact, home, imported by) rows of docs/architecture.md's fact -> home table."""
    text = (REPO_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text[text.index("| fact | home | imported by |"):].split("\n\n")[0].splitlines()[2:]
    rows = []
    for line in table:
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        assert len(cells) == 3, line
        rows.append((cells[0], cells[1], cells[2]))
    return rows


def importers() -> dict[str, list[str]]:
    """Project module -> the commands and library modules that import it, as the table writes them."""
    by = {}
    for module, imported in project_graph().items():
        for name in imported:
            by.setdefault(name, []).append(module.removeprefix(LIBRARY + "."))
    return {name: sorted(modules, key=lambda module: (module not in COMMANDS, module)) for name, modules in by.items()}


def test_the_architecture_table_names_every_module_once_and_says_who_imports_it():
    """Each row's home is one module; every library module (and modeling_crf.py) is a home; the "imported by" column
    is exactly the commands and library modules that import the home (tests and bench/ not counted)."""
    rows = architecture_table()
    homes = [re.fullmatch(r"`([\w/]+)\.py`", home).group(1) for _, home, _ in rows]
    assert sorted(homes) == sorted([f"{LIBRARY}/{name}" for name in LIBRARY_MODULES if name != "__init__"]
                                   + [MODEL_FILE])
    expected = importers()
    wrong = []
    for (_, _, stated), home in zip(rows, homes):
        module = home.replace("/", ".")
        want = ", ".join(f"`{name}`" for name in expected.get(module, [])) or "—"
        if stated != want:
            wrong.append(f"{home}: table says {stated!r}, the code: {want!r}")
    assert not wrong, "\n".join(wrong)


if __name__ == "__main__":  # python tests/test_layout.py: rewrite the "imported by" column from the code
    path = REPO_ROOT / "docs" / "architecture.md"
    text = path.read_text(encoding="utf-8")
    by = importers()
    for fact, home, stated in architecture_table():
        module = re.fullmatch(r"`([\w/]+)\.py`", home).group(1).replace("/", ".")
        column = ", ".join(f"`{name}`" for name in by.get(module, [])) or "—"
        text = text.replace(f"| {fact} | {home} | {stated} |", f"| {fact} | {home} | {column} |")
    path.write_text(text, encoding="utf-8")
