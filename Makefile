# FairLens Monitor — the two commands a new user needs are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
CONFIG ?= config.yaml
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check --quiet

.PHONY: help run test test-long lint check bench clean

help:
	@echo "make run    create .venv, install requirements.txt, migrate, start the daemon ($(CONFIG))"
	@echo "make test   install the test tools too and run the whole suite"
	@echo "make test-long  the soak-style tests (pytest -m long) that make test skips"
	@echo "make lint   ruff (rules and format), mypy (strict) and the import-layer contracts"
	@echo "make check  lint + test (what CI runs)"
	@echo "make bench  the benchmarks in benchmarks/ (not part of make test)"
	@echo "make clean  remove .venv and the demo database and keys in var/"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required (PYTHON=$(PYTHON))")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt pyproject.toml | $(BIN)/python
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps -e .
	@touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(PIP) install -r requirements-dev.txt
	@touch $@

run: $(VENV)/.runtime
	$(BIN)/fairlens-monitor --config $(CONFIG) db upgrade
	$(BIN)/fairlens-monitor --config $(CONFIG) run

test: $(VENV)/.dev
	$(BIN)/python -m pytest

test-long: $(VENV)/.dev
	$(BIN)/python -m pytest -m long

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint test

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/viewer_scale.py
	$(BIN)/python benchmarks/drift_chart.py
	$(BIN)/python benchmarks/fairlearn_compare.py
	$(BIN)/python benchmarks/cycle_overhead.py
	$(BIN)/python benchmarks/chain_verify.py
	$(BIN)/python benchmarks/daemon_memory.py
	$(BIN)/python benchmarks/sources_scale.py
	$(BIN)/python benchmarks/measure_csv.py
	$(BIN)/python benchmarks/sql_pushdown.py
	$(BIN)/python benchmarks/ground_truth_coverage.py
	$(BIN)/python benchmarks/report_pack.py
	$(BIN)/python benchmarks/metrics_scrape.py
	$(BIN)/python benchmarks/error_rates.py

clean:
	rm -rf $(VENV) var/ .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache
