# drug-classifier: `make` (or `make help`) lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV ?= $(shell command -v uv 2>/dev/null || echo $(PYTHON) -m uv)
DATA ?= data/drug200.csv
ARTIFACTS ?= artifacts
TRAIN_ARGS ?=
export DRUGCLF_ARTIFACTS_DIR ?= $(ARTIFACTS)
# Never let uv download an interpreter: use the one on the machine.
export UV_PYTHON_DOWNLOADS := never

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: install
install: ## Install everything (all extras + dev tools) into .venv from uv.lock
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install -q uv
	$(UV) sync --frozen --all-extras --compile-bytecode
	@$(MAKE) --no-print-directory bytecode

# Python still reads .pyc files when PYTHONDONTWRITEBYTECODE is set (it is on this machine), but
# never writes them: without this, every server process compiled Litestar and our modules from
# source before it was ready (measured in docs/loadtesting.md, "What was done about them").
.PHONY: bytecode
bytecode: ## Byte-compile the project's packages (install does it; serve and bench refresh it)
	@$(PY) -m compileall -q drugclf training serving loadtests

.PHONY: explore
explore: ## Describe the dataset (shape, types, missing values, classes)
	$(PY) -m training explore --data $(DATA)

.PHONY: train
train: ## Fit the pipeline on the data and record the run (runs/)
	$(PY) -m training train --data $(DATA) $(TRAIN_ARGS)

.PHONY: evaluate
evaluate: ## Evaluate the last trained run (accuracy, per-class report, confusion matrix, 5-fold CV)
	$(PY) -m training evaluate

.PHONY: export
export: ## Export the last run to ONNX, prove parity, publish and promote it (artifacts/)
	$(PY) -m training export --artifacts-dir $(ARTIFACTS)

.PHONY: pipeline
pipeline: ## Everything offline: train, evaluate, export (parity-gated) and promote
	$(PY) -m training full --data $(DATA) --artifacts-dir $(ARTIFACTS) $(TRAIN_ARGS)

.PHONY: optimize
optimize: ## Cross-validated search over n_estimators, max_leaf_nodes, binning and SMOTE
	$(PY) -m training optimize --data $(DATA)

.PHONY: runs
runs: ## List past training runs with their params and metrics
	$(PY) -m training runs

# One run of the suite gives both verdicts: the tests, and the share of drugclf/, training/ and
# serving/ they ran, counted in the processes they start too (pyproject: [tool.coverage.*]).
.PHONY: test
test: ## Run the whole test suite under coverage; fails on a failed test or below the coverage floor
	@$(PY) -m coverage erase
	$(PY) -m coverage run -m pytest
	@$(PY) -m coverage combine --quiet
	$(PY) -m coverage report

.PHONY: coverage
coverage: test ## make test, then an HTML report of the lines no test runs (reports/coverage/)
	$(PY) -m coverage html --quiet --directory reports/coverage
	@echo "reports/coverage/index.html"

.PHONY: test-fast
test-fast: ## The tests not marked slow: no real server, browser, Locust, wrk or training CLI runs
	$(PY) -m pytest -m "not slow"

.PHONY: lint
lint: ## ruff, ruff format --check, mypy (strict) and hadolint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(MAKE) --no-print-directory hadolint

.PHONY: format
format: ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

.PHONY: clean
clean: ## Remove generated models, runs, reports, the local MLflow store and caches (keeps .venv)
	find $(ARTIFACTS) -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
	rm -rf runs reports test-artifacts .pytest_cache .mypy_cache .ruff_cache .hypothesis build
	rm -rf mlflow.db mlartifacts mlruns
	rm -f .coverage .coverage.*
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +

-include mk/*.mk
