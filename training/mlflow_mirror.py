"""A mirror of our runs and model versions in MLflow (tracking and Model Registry).

``runs/`` and ``artifacts/`` stay the source of truth: serving reads the registry and never
needs MLflow. This module copies what they record to a tracking server, where teams look:

- a run per training run, named after our run id (tag ``drugclf.run_id``): params, metrics,
  tags (data sha256, git commit, binning), the confusion matrix and, once exported,
  ``metadata.json`` and the ONNX model (``onnx`` flavour, signature, input example);
- export registers the model as a version of ``drug-classifier`` (tag ``drugclf.version``);
  the alias ``champion`` follows our ``current``;
- ``optimize`` is a parent run with one nested child run per combination.

It needs the ``mlflow`` extra and is imported only when a tracking URI is configured. An MLflow
that cannot be reached, or that refuses a call, is a warning naming the URI: training never
fails because of its mirror.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec

from drugclf import routing
from drugclf.artifact import (
    CONFUSION_MATRIX_FILE,
    LABEL_OUTPUT,
    METADATA_FILE,
    MODEL_FILE,
    PROBABILITIES_OUTPUT,
    read_metadata,
)
from drugclf.contract import CLASSES, SAMPLE_PATIENT
from drugclf.registry import Registry
from training.onnx_export import input_specs
from training.runs import RunRecord

# Fail fast on an unreachable server: MLflow's defaults retry for minutes. Set before mlflow is
# imported (it reads them at import); an operator's own values win. MLflow itself is imported
# only once the server has answered: an unreachable one costs the probe, not seconds of imports.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
# MLflow writes each run's URL on stdout, inside our CLI's output: the CLI says what it mirrored.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

MODEL_NAME: Final = "drug-classifier"
EXPERIMENT: Final = "drug-classifier"
CHAMPION: Final = "champion"
CHALLENGER: Final = "challenger"
RUN_ID_TAG: Final = "drugclf.run_id"
VERSION_TAG: Final = "drugclf.version"
PROBE_TIMEOUT_S: Final = 3.0
_NUMPY_TYPES: Final = {"int64": "int64", "double": "float64", "string": "str"}


def traffic_candidates(registry: Registry) -> list[str]:
    """The traffic policy's candidates, heaviest weight first (they get ``challenger``).

    A policy that cannot be read names no challenger (and says so): the mirror never stops a
    promotion over it.
    """
    try:
        policy = routing.read(registry)
    except routing.PolicyError as exc:
        logger.warning("%s is not a policy (%s): no challenger", routing.policy_path(registry), exc)
        return []
    if policy is None:
        return []
    return [c.version for c in sorted(policy.candidates, key=lambda c: -c.weight)]


def reachable(uri: str) -> str | None:
    """None when the tracking server answers, else why not (an HTTP server is asked /health)."""
    if not uri.startswith(("http://", "https://")):
        return None  # a local store (sqlite:, file:): its own calls will say what is wrong
    try:
        with urllib.request.urlopen(  # noqa: S310 (http(s) only, checked above)
            f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT_S
        ):
            return None
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


class Mirror:
    """Copies runs, versions and the champion alias to the MLflow at ``uri``."""

    def __init__(self, uri: str) -> None:
        import mlflow  # noqa: PLC0415

        # uv's venvs have no pip: MLflow would warn on every logged model that it cannot pin
        # pip's version in the model's conda.yaml, which the model does not need anyway.
        logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
        self.uri = uri
        # The client first: a URI it refuses leaves MLflow's process-wide URIs as they were.
        self.client: MlflowClient = mlflow.MlflowClient(uri, uri)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        self._experiment_id: str | None = None

    @classmethod
    def connect(cls, uri: str) -> Mirror | None:
        """A mirror, or None (with a warning naming the URI) when MLflow cannot be reached."""
        problem = reachable(uri)
        if problem is not None:
            logger.warning("MLflow at %s cannot be reached (%s): not mirrored", uri, problem)
            return None
        try:
            return cls(uri)
        except Exception as exc:  # a URI MLflow refuses (an unknown scheme): the run stands
            logger.warning("MLflow refuses %s (%s): not mirrored", uri, exc)
            return None

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        # Any failure of the mirror (network, server, a refused value) is MLflow's problem, not
        # the training run's: say so and carry on.
        try:
            yield
        except Exception as exc:
            logger.warning("MLflow at %s: %s not mirrored: %s", self.uri, what, exc)

    @property
    def experiment_id(self) -> str:
        """Our experiment's id, created on first use."""
        if self._experiment_id is None:
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
            found = self.client.get_experiment_by_name(name)
            self._experiment_id = (
                found.experiment_id if found else self.client.create_experiment(name)
            )
        return self._experiment_id

    def _run_of(self, record: RunRecord) -> str:
        """The MLflow run of one of our runs, created on first use."""
        runs = self.client.search_runs(
            [self.experiment_id], f"tags.`{RUN_ID_TAG}` = '{record.run_id}'", max_results=1
        )
        if runs:
            return str(runs[0].info.run_id)
        created = self.client.create_run(
            self.experiment_id, run_name=record.run_id, tags={RUN_ID_TAG: record.run_id}
        )
        return str(created.info.run_id)

    def record(self, record: RunRecord, git_commit: str | None) -> None:
        """Log a run as far as it has got: params and tags, test accuracy, the full metrics."""
        from mlflow.entities import Metric, Param, RunTag  # noqa: PLC0415

        with self._guard(f"run {record.run_id}"):
            run_id = self._run_of(record)
            now = int(time.time() * 1000)
            metrics = [Metric(k, v, now, 0) for k, v in _metrics(record).items()]
            tags = {
                "data_sha256": record.data_sha256,
                "git_commit": git_commit or "unknown",
                "binning": record.params.binning,
                "data_path": record.data_path,
            }
            self.client.log_batch(
                run_id,
                metrics=metrics,
                params=[Param(k, str(v)) for k, v in _params(record).items()],
                tags=[RunTag(k, v) for k, v in tags.items()],
            )
            if record.metrics is not None:
                self._log_confusion_matrix(run_id, record)
            self.client.set_terminated(run_id)
            logger.info("mirrored run %s to %s", record.run_id, self.uri)

    def _log_confusion_matrix(self, run_id: str, record: RunRecord) -> None:
        from training.evaluate import save_confusion_matrix  # noqa: PLC0415 (matplotlib)

        assert record.metrics is not None
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / CONFUSION_MATRIX_FILE
            save_confusion_matrix(record.metrics.confusion_matrix, path, f"run {record.run_id}")
            self.client.log_artifact(run_id, str(path))

    def export(self, record: RunRecord, version_dir: Path, promoted: bool) -> None:
        """Log an exported version: its files, the ONNX model, a registered model version."""
        version = version_dir.name
        with self._guard(f"version {version}"):
            run_id = self._run_of(record)
            self._log_version(run_id, version_dir)
            if promoted:
                self._alias(CHAMPION, version)

    def _log_version(self, run_id: str, version_dir: Path) -> str:
        """Log a version's files and model under ``run_id``; returns the registered version."""
        import mlflow  # noqa: PLC0415
        import onnx  # noqa: PLC0415
        from mlflow.entities import Metric, RunTag  # noqa: PLC0415

        version = version_dir.name
        meta = read_metadata(version_dir)
        self.client.log_artifact(run_id, str(version_dir / METADATA_FILE))
        self.client.log_artifact(run_id, str(version_dir / CONFUSION_MATRIX_FILE))
        parity = {
            "parity_cases": float(meta.parity.cases),
            "parity_mismatches": float(meta.parity.mismatches),
            "parity_max_abs_prob_diff": meta.parity.max_abs_prob_diff,
        }
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in parity.items()],
            tags=[RunTag(VERSION_TAG, version), RunTag("model_sha256", meta.model_sha256 or "")],
        )
        with mlflow.start_run(run_id=run_id):
            info = mlflow.onnx.log_model(
                onnx.load(str(version_dir / MODEL_FILE)),
                name="model",
                signature=_signature(),
                input_example=_input_example(),
                registered_model_name=MODEL_NAME,
                onnx_execution_providers=["CPUExecutionProvider"],
                # What the model needs to run, not the project (uv export would give msgspec).
                pip_requirements=[f"onnxruntime=={_version('onnxruntime')}", "numpy"],
            )
        registered = str(info.registered_model_version)
        self.client.set_model_version_tag(MODEL_NAME, registered, VERSION_TAG, version)
        self.client.set_model_version_tag(MODEL_NAME, registered, "data_sha256", meta.data_sha256)
        logger.info("registered %s as %s version %s", version, MODEL_NAME, registered)
        return registered

    def _registered(self, version: str) -> str | None:
        """The registered model version that mirrors one of our versions, if any."""
        found = self.client.search_model_versions(
            f"name = '{MODEL_NAME}' and tags.`{VERSION_TAG}` = '{version}'"
        )
        return str(found[0].version) if found else None

    def _alias(self, alias: str, version: str) -> bool:
        registered = self._registered(version)
        if registered is None:
            logger.warning(
                "MLflow at %s has no model version for %s (exported without MLflow): "
                "`python -m training mlflow sync` registers it",
                self.uri,
                version,
            )
            return False
        self.client.set_registered_model_alias(MODEL_NAME, alias, registered)
        logger.info("%s -> %s (%s version %s)", alias, version, MODEL_NAME, registered)
        return True

    def point_aliases(self, champion: str | None, challengers: Sequence[str] = ()) -> None:
        """``champion`` on our current version; ``challenger``, ``challenger-2``… on candidates."""
        with self._guard("aliases"):
            self._move_aliases(champion, challengers)

    def _move_aliases(self, champion: str | None, challengers: Sequence[str]) -> None:
        if champion is not None:
            self._alias(CHAMPION, champion)
        wanted = {
            CHALLENGER if rank == 1 else f"{CHALLENGER}-{rank}": version
            for rank, version in enumerate(challengers, start=1)
        }
        for alias, version in wanted.items():
            self._alias(alias, version)
        # A candidate the policy no longer names is no challenger any more.
        for alias in self.client.get_registered_model(MODEL_NAME).aliases:
            if alias.startswith(CHALLENGER) and alias not in wanted:
                self.client.delete_registered_model_alias(MODEL_NAME, alias)

    def sync(self, registry: Registry, records: Sequence[RunRecord]) -> list[str]:
        """Register every published version MLflow lacks, then move the aliases; returns those.

        A version is logged under the MLflow run of the run that exported it, or under a run
        named after the version when that run is gone from ``runs/``.
        """
        by_version = {r.exported_version: r for r in records if r.exported_version}
        added = []
        for version in registry.versions():
            if self._registered(version) is not None:
                continue
            record = by_version.get(version)
            if record is not None:
                run_id = self._run_of(record)
            else:
                run_id = self.client.create_run(self.experiment_id, run_name=version).info.run_id
            self._log_version(run_id, registry.root / version)
            self.client.set_terminated(run_id)
            added.append(version)
        self._move_aliases(registry.current_version(), traffic_candidates(registry))
        return added

    def optimize(self, rows: Sequence[Mapping[Any, Any]], data_sha256: str, out: Path) -> None:
        """A parent run for the search, a nested child run per combination."""
        from mlflow.entities import Metric, Param  # noqa: PLC0415

        with self._guard("optimize search"):
            parent = self.client.create_run(
                self.experiment_id,
                run_name=f"optimize-{time.strftime('%Y%m%d-%H%M%S')}",
                tags={"data_sha256": data_sha256, "drugclf.kind": "optimize"},
            ).info.run_id
            now = int(time.time() * 1000)
            for row in rows:
                name = "-".join(f"{row[k]}" for k in ("binning", "smote", "n_estimators"))
                child = self.client.create_run(
                    self.experiment_id,
                    run_name=f"{name}-{row['max_leaf_nodes']}",
                    tags={"mlflow.parentRunId": parent, "binning": str(row["binning"])},
                ).info.run_id
                params = ("binning", "smote", "n_estimators", "max_leaf_nodes")
                self.client.log_batch(
                    child,
                    metrics=[Metric(k, float(v), now, 0) for k, v in row.items() if k[:3] == "cv_"],
                    params=[Param(k, str(row[k])) for k in params],
                )
                self.client.set_terminated(child)
            best = rows[0]
            self.client.log_batch(
                parent,
                metrics=[
                    Metric(f"best_{k}", float(best[k]), now, 0) for k in ("cv_mean", "cv_std")
                ],
                params=[Param("combinations", str(len(rows)))],
            )
            for path in sorted(out.iterdir()):
                self.client.log_artifact(parent, str(path))
            self.client.set_terminated(parent)


def _params(record: RunRecord) -> dict[str, object]:
    """Every field of ``Params`` (a new one is mirrored without a change here), and the rows."""
    return {**msgspec.structs.asdict(record.params), "data_rows": record.data_rows}


def _metrics(record: RunRecord) -> dict[str, float]:
    values = {"test_accuracy": record.test_accuracy}
    m = record.metrics
    if m is not None:
        values |= {
            "cv_accuracy_mean": m.cv_accuracy_mean,
            "cv_accuracy_std": m.cv_accuracy_std,
            "macro_f1": m.macro_f1,
            "weighted_f1": m.weighted_f1,
        }
        for name, report in m.per_class.items():
            values |= {
                f"f1_{name}": report.f1,
                f"precision_{name}": report.precision,
                f"recall_{name}": report.recall,
            }
    return values


def _version(distribution: str) -> str:
    from importlib.metadata import version  # noqa: PLC0415

    return version(distribution)


def _input_example() -> dict[str, Any]:
    """The contract's sample patient as the model's feed: one [1, 1] array per input."""
    import numpy as np  # noqa: PLC0415

    return {
        spec.name: np.array(
            [[getattr(SAMPLE_PATIENT, spec.name)]], dtype=_NUMPY_TYPES[spec.element_type]
        )
        for spec in input_specs()
    }


def _signature() -> Any:
    """Tensor inputs as the ONNX graph names them; the label and the class probabilities."""
    import numpy as np  # noqa: PLC0415
    from mlflow.models import ModelSignature  # noqa: PLC0415
    from mlflow.types import ColSpec, Schema, TensorSpec  # noqa: PLC0415

    inputs: list[ColSpec | TensorSpec] = [
        TensorSpec(np.dtype(_NUMPY_TYPES[s.element_type]), (-1, 1), s.name) for s in input_specs()
    ]
    outputs: list[ColSpec | TensorSpec] = [
        TensorSpec(np.dtype("str"), (-1,), LABEL_OUTPUT),
        TensorSpec(np.dtype("float32"), (-1, len(CLASSES)), PROBABILITIES_OUTPUT),
    ]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))
