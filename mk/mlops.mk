# MLOps: the MLflow mirror's UI, the pipeline watcher and the machine check (docs/mlops.md).
# WATCH_TARGET: the command make watch reruns (full or train); TRAIN_ARGS go to it.
WATCH_TARGET ?= full
# The local MLflow store: make mlflow-ui serves it; MLFLOW_TRACKING_URI=http://127.0.0.1:5000
# (or this sqlite: URI directly) makes the training commands mirror into it.
MLFLOW_STORE ?= sqlite:///mlflow.db
MLFLOW_ARTIFACTS ?= mlartifacts
MLFLOW_PORT ?= 5000

.PHONY: watch
watch: ## Rerun the pipeline when data/*.csv or the training code changes (WATCH_TARGET=train)
	$(PY) -m training watch --target $(WATCH_TARGET) --data $(DATA) --artifacts-dir $(ARTIFACTS) -- $(TRAIN_ARGS)

# Falls back to the system's Python when there is no venv yet: the doctor then says so.
.PHONY: doctor
doctor: ## Check this machine (Python, venv, extras, a model that loads, the port, tools) and say how to fix it
	@if [ -x $(PY) ]; then $(PY) -m training.doctor --artifacts-dir $(ARTIFACTS) --port $(PORT); else $(PYTHON) -m training.doctor --artifacts-dir $(ARTIFACTS) --port $(PORT); fi

# No background job runner: the UI and the mirror need none, and it starts a dozen processes.
.PHONY: mlflow-ui
mlflow-ui: ## MLflow's UI and tracking server over the local store (MLFLOW_STORE=, MLFLOW_PORT=5000)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow server --backend-store-uri $(MLFLOW_STORE) --artifacts-destination $(MLFLOW_ARTIFACTS) --host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1
