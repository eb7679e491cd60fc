"""The README's code blocks run as written.

Every ``bash`` and ``python`` block of README.md carries a marker on the line before it, an HTML comment that the
rendered page hides and the source shows: ``<!-- readme-test: run -->`` (runs in a fresh folder),
``<!-- readme-test: after-quickstart -->`` (runs there once the quickstart's models exist) or
``<!-- readme-test: skip: REASON -->``. The slow test copies the commands into a fresh folder, writes the user's
folders the README names (``my_notes/``, ``my_corpus/``, ``n2c2/``, ``my_predictions/``) from synthetic notes, runs
the Makefile's quickstart recipe with tiny training, then every runnable bash block in README order with
``bash -euo pipefail``, then every python block (the README's and the model cards' the blocks wrote) in a fresh
process and at the interactive prompt; and git ignores everything the blocks wrote.

Tiny training means the blocks' scores mean nothing here: what the quickstart models print is checked by hand
(README "Then NER, relations and a medication list in one call").
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import LIBRARY, REPO_ROOT

README = REPO_ROOT / "README.md"
MARKER = re.compile(r"^<!-- readme-test: (.*) -->$")
RUN, AFTER_QUICKSTART, SKIP = "run", "after-quickstart", "skip"
QUICKSTART_DIR = "outputs/quickstart"

# Tiny training for the blocks' training commands (a later flag wins; added before a trailing comment): the test
# checks that each block runs, not what it scores. The real settings run in `make quickstart` and in
# test_user_paths' end-to-end test.
TINY_OVERRIDES = {
    # 24 notes, not 120: still a train, validation and test split, and a tokenizer to train
    ("prepare_n2c2.py", "--synthetic"): ["--synthetic", "24"],
    # two optimiser steps (the quickstart config trains 6 epochs; the self-pretraining example 3)
    ("run_ner_crf.py",): ["--max_steps", "2", "--max_eval_samples", "16", "--max_predict_samples", "16"],
    # two steps: no --min_train_steps (600) floor
    ("run_re.py",): ["--min_train_steps", "0", "--max_steps", "2"],
    # 20,000 steps of a distilbert-base-sized encoder, made two of a one-layer, 32-wide one
    ("pretrain_mlm.py",): ["--max_steps", "2", "--config_overrides", "dim=32,n_layers=1,n_heads=2,hidden_dim=64",
                           "--tokenizer_vocab_size", "400", "--per_device_train_batch_size", "8"],
}
# A README path that stands for a folder of the user's: the test's folder of that kind.
PLACEHOLDERS = {"/path/to/unlabelled_notes": "my_notes"}
# How the cards name the folder they sit in.
CARD_PLACEHOLDERS = {"REPO_OR_PATH": "{folder}", "THIS_FOLDER": "{folder}", "THIS_MODEL": "{folder}",
                     "NER_MODEL": f"{QUICKSTART_DIR}/model"}  # (the relation card's: the NER model it was trained with)
# Quickstart recipe commands the blocks do not need (no block reads the annotated test notes or the reports).
QUICKSTART_NOT_RUN = ("annotate_notes.py", "evaluate_ablations.py", "review_notes.py")


@dataclass
class Block:
    language: str
    code: str
    line: int  # of the opening fence, 1-based
    marker: str | None  # the marker comment's text, None when the line before is not one

    @property
    def kind(self) -> str | None:
        if self.marker in (RUN, AFTER_QUICKSTART):
            return self.marker
        return SKIP if self.marker is not None and self.marker.startswith(f"{SKIP}:") else None

    @property
    def skip_reason(self) -> str:
        return self.marker.split(":", 1)[1].strip() if self.kind == SKIP else ""

    def __str__(self):
        return f"README.md:{self.line} ({self.language})"


def code_blocks(markdown: str) -> list[Block]:
    """Every fenced block of ``markdown``, with the marker comment on the line before it, if any."""
    lines = markdown.splitlines()
    blocks, index = [], 0
    while index < len(lines):
        if lines[index].startswith("```"):
            end = next(i for i in range(index + 1, len(lines)) if lines[i].rstrip() == "```")
            marker = MARKER.match(lines[index - 1]) if index else None
            blocks.append(Block(lines[index][3:].strip(), "\n".join(lines[index + 1:end]) + "\n", index + 1,
                                marker.group(1).strip() if marker else None))
            index = end
        index += 1
    return blocks


def readme_blocks() -> list[Block]:
    return [block for block in code_blocks(README.read_text(encoding="utf-8")) if block.language in ("bash", "python")]


def test_every_bash_and_python_block_is_run_or_skipped_with_a_reason():
    markdown = README.read_text(encoding="utf-8")
    blocks = readme_blocks()
    assert not [str(block) for block in blocks if block.marker is None], "a block with no readme-test marker"
    assert not [f"{block}: {block.marker!r}" for block in blocks if block.kind is None], "an unknown marker"
    assert not [str(block) for block in blocks if block.kind == SKIP and not block.skip_reason], "a skip, no reason"
    # A skip that says another test runs the block names a test file that is there.
    assert not [f"{block}: {name}" for block in blocks for name in re.findall(r"tests/\w+\.py", block.skip_reason)
                if not (REPO_ROOT / name).is_file()], "a skip names a test file that does not exist"
    # A marker sits right before the block it is for: none is left behind by a block that moved or went.
    marked = {block.line - 1 for block in code_blocks(markdown) if block.marker is not None}
    stray = [number for number, line in enumerate(markdown.splitlines(), 1) if MARKER.match(line)
             and number not in marked]
    assert not stray, f"README.md lines {stray}: a marker with no block after it"
    # "after-quickstart" is what reads the quickstart's folder: a block marked "run" runs without it.
    assert not [str(block) for block in blocks if (block.kind == AFTER_QUICKSTART) != (QUICKSTART_DIR in block.code)
                and block.kind != SKIP], "after-quickstart marks the blocks that read outputs/quickstart/, only those"
    assert {block.kind for block in blocks} == {RUN, AFTER_QUICKSTART, SKIP}


def test_markers_are_read_and_overrides_go_before_a_trailing_comment():
    """The parser and the overrides on a small README."""
    blocks = code_blocks("text\n<!-- readme-test: skip: needs a GPU -->\n```bash\nrun.sh\n```\n```python\nx = 1\n```\n")
    assert [(block.language, block.kind, block.skip_reason, block.line) for block in blocks] == \
        [("bash", SKIP, "needs a GPU", 3), ("python", None, "", 6)]
    assert with_overrides("python run_re.py --a 1 \\\n    --b 2   # a comment\necho done\n") == \
        "python run_re.py --a 1 --b 2 " + shlex.join(TINY_OVERRIDES[("run_re.py",)]) + "\necho done\n"


def with_overrides(bash: str) -> str:
    """A bash block with each command's continuation lines joined, and the tiny overrides and placeholders applied
    to the commands that take them (those lines lose their trailing comment; the others stay as written)."""
    for placeholder, folder in PLACEHOLDERS.items():
        bash = bash.replace(placeholder, folder)
    lines = []
    for line in bash.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        extra = [flag for keys, flags in TINY_OVERRIDES.items() if all(key in words for key in keys) for flag in flags]
        lines.append(shlex.join(words + extra) if extra else line)
    return "\n".join(lines) + "\n"


def quickstart_commands() -> list[str]:
    """The Makefile's ``quickstart`` recipe as shell commands, its make variables resolved, without the commands
    that write what no block reads."""
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    variables = dict(re.findall(r"^([A-Z_]+) :?= (.*)$", makefile, flags=re.M))
    recipe = re.search(r"^quickstart:.*\n((?:\t.*\n)+)", makefile, flags=re.M).group(1)
    commands = []
    for line in recipe.splitlines():
        line = line.strip()
        while "$(" in line:
            line = re.sub(r"\$\((\w+)\)", lambda match: variables[match.group(1)], line)
        if not line.startswith("@") and not any(script in line for script in QUICKSTART_NOT_RUN):
            commands.append(line)
    return commands


def files_under(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file() or path.is_symlink()}


def write_my_notes(folder: Path) -> None:
    """Notes to annotate: a few synthetic notes' text."""
    from clinical_ner_crf.synthetic_n2c2 import generate_notes

    folder.mkdir()
    for note in generate_notes(3, seed=7, split="test"):
        (folder / f"{note.doc_id}.txt").write_text(note.text, encoding="utf-8")


def write_my_notes_table(path: Path) -> None:
    """A table of notes (README "Many notes in a table"): a few synthetic notes with an id and a department."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from clinical_ner_crf.synthetic_n2c2 import generate_notes

    notes = generate_notes(4, seed=8, split="test")
    pq.write_table(pa.table({"note_id": [note.doc_id for note in notes], "text": [note.text for note in notes],
                             "department": ["cardiology", "oncology", "cardiology", "renal"]}), path)


def write_my_corpus(folder: Path) -> None:
    """A brat corpus in a scheme of its own (README "Your own corpus": Medication, Dose, ..., MODIFY relations)."""
    from test_user_paths import write_own_scheme_corpus  # (imports the training stack: only when a block needs it)

    write_own_scheme_corpus(folder, {"train": 10, "test": 3})


def write_n2c2(folder: Path) -> None:
    """n2c2-format brat, standing for the real corpus (its data-use agreement keeps it out of the repository)."""
    from clinical_ner_crf.synthetic_n2c2 import write_synthetic_corpus

    write_synthetic_corpus(folder, num_train=12, num_test=3, seed=5)


def write_my_predictions(folder: Path) -> None:
    """A system's brat output for n2c2/test (README "Scoring brat output", which names both): a perfect one, the gold
    .ann files."""
    folder.mkdir()
    for gold in (folder.parent / "n2c2" / "test").glob("*.ann"):
        shutil.copyfile(gold, folder / gold.name)


# The folders of a user's that the README's commands read, in the order to write them: the test writes those that a
# block it runs names.
USER_FOLDERS = {"my_notes": write_my_notes, "my_notes.parquet": write_my_notes_table, "my_corpus": write_my_corpus,
                "n2c2": write_n2c2, "my_predictions": write_my_predictions}


def user_folders_named(bash: str) -> list[str]:
    return [name for name in USER_FOLDERS if re.search(rf"(?<![\w/.-]){re.escape(name)}(?![\w.])", bash)]


def run_bash(script: str, work: Path, env: dict, what: str) -> None:
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env, capture_output=True,
                            text=True, timeout=600, stdin=subprocess.DEVNULL)
    output = (result.stdout + result.stderr)[-4000:]
    assert result.returncode == 0, f"{what} exited {result.returncode}:\n{script}\n{output}"


# Feeds each block to the interactive prompt line by line, as pasted, one prompt (namespace) per block; exits with
# the number of blocks that raised or did not compile. One process for all: each block already ran alone in a
# fresh one, and this form checks the prompt's rules (a blank line ends a compound statement, none may be missing).
REPL_DRIVER = r"""
import code, json, sys

class Console(code.InteractiveConsole):
    failed = False

    def showsyntaxerror(self, *args, **kwargs):
        self.failed = True
        super().showsyntaxerror(*args, **kwargs)

    def showtraceback(self, *args, **kwargs):
        self.failed = True
        super().showtraceback(*args, **kwargs)

failed = []
for name, source in json.load(sys.stdin):
    print(f">>> {name}", file=sys.stderr, flush=True)
    console = Console({"__name__": "__console__"})
    for line in source.splitlines() + [""]:  # the last Enter ends a block's final statement
        console.push(line)
    if console.failed or console.buffer:  # (a buffer left: the block ends inside a statement)
        failed.append(name)
print(f"failed at the prompt: {failed}", file=sys.stderr)
sys.exit(len(failed))
"""


def card_snippets(work: Path, new_files: set[str]) -> dict[str, str]:
    """The python blocks of the cards (README.md) the commands wrote into the quickstart's model folders (its NER and
    relation models, and the ONNX export a block makes of it), with the folder for the card's placeholder. (Every kind
    of card's snippet, the self-pretrained encoder's included, also runs in test_model_cards.py.)"""
    snippets = {}
    cards = sorted(name for name in new_files if name.startswith(f"{QUICKSTART_DIR}/") and name.endswith("/README.md"))
    for card in cards:
        for block in code_blocks((work / card).read_text(encoding="utf-8")):
            if block.language == "python":
                source = block.code
                for placeholder, value in CARD_PLACEHOLDERS.items():
                    source = source.replace(placeholder, value.format(folder=Path(card).parent.as_posix()))
                snippets[f"{card}:{block.line}"] = source
    return snippets


@pytest.mark.slow
def test_the_readme_blocks_run_as_written(tmp_path):
    work = tmp_path / "repository"  # a copy: nothing the blocks write reaches the repository
    work.mkdir()
    for path in REPO_ROOT.glob("*.py"):
        shutil.copyfile(path, work / path.name)
    for folder in (LIBRARY, "configs"):
        shutil.copytree(REPO_ROOT / folder, work / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (work / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)  # the venv running the tests
    blocks = readme_blocks()
    runnable_bash = [block for block in blocks if block.language == "bash" and block.kind in (RUN, AFTER_QUICKSTART)]
    named = {name for block in runnable_bash for name in user_folders_named(with_overrides(block.code))}
    for name, write in USER_FOLDERS.items():
        if name in named:
            write(work / name)
    before = files_under(work)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(PATH=f"{work / '.venv' / 'bin'}{os.pathsep}{env['PATH']}", HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               HF_HOME=str(tmp_path / "hf_home"))  # trust_remote_code's module cache and accelerate's config: fresh

    # The quickstart's own models, trained as `make quickstart` trains them: the README's examples show what they
    # print (the blocks below get tiny training instead).
    run_bash("\n".join(quickstart_commands()) + "\n", work, env, "the quickstart recipe")
    for name in ("model", "relations", "brat", "data"):
        assert (work / QUICKSTART_DIR / name).is_dir(), name

    for block in runnable_bash:
        run_bash(with_overrides(block.code), work, env, str(block))
    new_files = files_under(work) - before

    python_blocks = {str(block): block.code for block in blocks
                     if block.language == "python" and block.kind in (RUN, AFTER_QUICKSTART)}
    snippets = card_snippets(work, new_files)
    assert f"{QUICKSTART_DIR}/model/README.md:" in " ".join(snippets), "the NER model card's snippet runs"
    python = str(work / ".venv" / "bin" / "python")  # what `python` is in the README's examples
    # The README's blocks in fresh processes, as written; the cards' snippets run that way in test_model_cards.py
    # (each kind of card): here, with the README's, at the interactive prompt.
    for name, source in python_blocks.items():
        result = subprocess.run([python, "-"], input=source, cwd=work, env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, f"{name} in a fresh process:\n{source}\n{result.stderr[-4000:]}"
        assert "[y/N]" not in result.stdout + result.stderr, f"{name} stops to ask a question"
        # What a block says it prints (its "# " lines after the last statement, as in the medication example), it
        # prints, with the quickstart's models.
        shown = [line[2:] for line in source.splitlines() if line.startswith("# ")]
        if name in python_blocks and "annotator.medications(" in source:
            assert result.stdout.splitlines() == shown, f"{name} printed:\n{result.stdout}"
        if "annotator(\"Started metoprolol" in source:  # the first example: its sentence's entities, as the text says
            assert [line.split()[:2] for line in result.stdout.splitlines()] == [
                ["Drug", "8"], ["Strength", "19"], ["Route", "25"], ["Frequency", "28"], ["Reason", "36"]], result.stdout
    result = subprocess.run([python, "-c", REPL_DRIVER], input=json.dumps(list({**python_blocks,
                            **snippets}.items())), cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"at the interactive prompt:\n{result.stderr[-4000:]}"

    # Everything the blocks wrote (models, predictions with note text, reports) is ignored by git.
    written = files_under(work) - before
    ignored = subprocess.run(["git", "-C", str(REPO_ROOT), "check-ignore", "--stdin"], capture_output=True, text=True,
                             input="\n".join(sorted(written))).stdout.split("\n")
    not_ignored = sorted(written - set(ignored))
    assert not not_ignored, f"{len(not_ignored)} files written by the blocks are not ignored, e.g. {not_ignored[:5]}"
