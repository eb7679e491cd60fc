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

.PHONY: quickstart test test-fast venv clean

# (Re)create the virtual environment when it is missing or a requirements file changed.
$(STAMP): requirements.txt requirements-dev.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-warn-script-location -r requirements-dev.txt 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import torch, transformers, datasets, torchcrf, seqeval, pytest"
	touch $(STAMP)

venv: $(STAMP)

# Synthetic sample -> tiny from-scratch TransformerCRF on CPU -> test predictions -> the paper's reports.
quickstart: $(STAMP)
	$(PY) prepare_n2c2.py --synthetic 120 --seed 42 --output_dir $(QUICKSTART_DIR)/data --overwrite
	rm -rf $(QUICKSTART_DIR)/model
	$(PY) run_ner_crf.py configs/quickstart.json
	$(PY) evaluate_ablations.py --predictions $(QUICKSTART_DIR)/model --output_dir $(QUICKSTART_DIR)/report
	@echo "Report (paper Tables II-IV, confusion matrix): $(QUICKSTART_DIR)/report/report.md"

# The suite CI runs: every test, the slow ones included.
test: $(STAMP)
	$(PY) -m pytest -q tests

# A quicker loop while developing: skips tests marked slow.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

clean:
	rm -rf $(VENV) outputs .pytest_cache
