"""The layout: every module imports, no import cycle, and each module depends only on what it says."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT


MODULES = sorted(path.stem for path in REPO_ROOT.glob("*.py"))
# What each shared module may import from outside the standard library (docs/architecture.md).
ALLOWED_THIRD_PARTY = {
    "tagging": {"tokenizers"},
    "corpus_io": {"tqdm"},  # progress bars
    "windows": {"torch", "transformers", "tqdm"},
    "modeling_crf": {"torch", "torchcrf", "transformers"},
    "subwords": {"tokenizers", "transformers"},
    "run_folders": {"torch", "transformers", "datasets", "huggingface_hub"},  # the allow-listed upload
    "relations": set(),  # no torch: bench/ uses it on its own
    "onnx_backend": {"numpy", "onnxruntime", "tqdm"},  # serving without torch
    "folder_safety": set(),  # every script uses it, --help included: standard library only
    "command_line": set(),
    "significance": set(),  # the paired bootstrap: counts in, an interval out
}


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module a file imports, at any depth (function-level imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            names.add(node.module.split(".")[0])  # `from .tagging import` inside a saved model folder
    return names


def project_graph() -> dict[str, set[str]]:
    return {name: imported_modules(REPO_ROOT / f"{name}.py") & set(MODULES) - {name} for name in MODULES}


def test_the_expected_modules_exist():
    assert {"tagging", "corpus_io", "windows", "modeling_crf", "prepare_n2c2", "run_ner_crf", "evaluate_ablations",
            "annotate_notes", "synthetic_n2c2", "parameter_table", "subwords", "run_folders", "pretrain_mlm", "relations", "run_re", "folder_safety", "command_line"} <= set(MODULES)


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

    for name in MODULES:
        visit(name)


def test_modules_depend_only_on_what_they_say():
    graph = project_graph()
    assert graph["modeling_crf"] == set(), "modeling_crf.py travels to the Hub alone"
    assert graph["tagging"] == set()
    assert graph["corpus_io"] == {"tagging", "folder_safety"}
    assert graph["folder_safety"] == {"command_line"} and graph["command_line"] == set()
    assert graph["windows"] == {"tagging"}
    assert graph["relations"] == {"tagging", "corpus_io"}
    assert "run_ner_crf" not in graph["run_re"], "the relation script stands beside the NER one, not on it"
    assert "run_ner_crf" not in graph["annotate_notes"] and "prepare_n2c2" not in graph["annotate_notes"]
    for name, allowed in ALLOWED_THIRD_PARTY.items():
        third_party = {module for module in imported_modules(REPO_ROOT / f"{name}.py")
                       if module not in sys.stdlib_module_names and module not in MODULES and module != "__future__"}
        assert third_party <= allowed, f"{name}.py imports {sorted(third_party - allowed)}"


def test_every_module_imports_on_its_own():
    """Each module imports with none of the others imported before it (one process; the project's modules
    are forgotten between imports, third-party ones are kept to spare the time)."""
    code = (
        "import importlib, sys\n"
        f"modules = {MODULES!r}\n"
        "for module in modules:\n"
        "    for name in modules:\n"
        "        sys.modules.pop(name, None)\n"
        "    importlib.import_module(module)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_preparing_data_does_not_import_the_deep_learning_stack():
    """prepare_n2c2 (and the word splitter) import in milliseconds: no torch, transformers or datasets at import."""
    code = ("import sys, prepare_n2c2, tagging, corpus_io\n"
            "print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_readme_says_which_files_each_script_needs():
    """The README's table equals what each script imports, directly or through another project file."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| script | needs |"):].split("\n\n")[0].splitlines()[2:]
    stated = {}
    for row in table:
        script, needs = (cell.strip() for cell in row.strip("|").split("|"))
        stated[script.strip("`").removesuffix(".py")] = {name.strip(" `").removesuffix(".py")
                                                         for name in needs.split(",")}
    graph = project_graph()

    def closure(name, seen=None):
        seen = set() if seen is None else seen
        for dependency in graph[name]:
            if dependency not in seen:
                seen.add(dependency)
                closure(dependency, seen)
        return seen

    scripts = {"prepare_n2c2", "run_ner_crf", "evaluate_ablations", "annotate_notes", "parameter_table", "synthetic_n2c2",
               "pretrain_mlm", "run_re", "export_onnx"}
    assert set(stated) == scripts
    for script in scripts:
        assert stated[script] == closure(script), script
