"""The MLflow mirror against a real tracking server, read back with ``MlflowClient``.

One ``mlflow server`` (SQLite backend, artifacts in a temporary folder, a free loopback port)
serves the whole module: it takes seconds to start. The CLI mirrors into it as a user would;
what MLflow holds afterwards is read back with MLflow's own client.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from drugclf import routing
from drugclf.contract import CLASSES
from drugclf.registry import Registry
from drugclf.routing import Candidate, RoutingPolicy
from loadtests.bench.server import free_port, stop_group
from tests.support import PATIENT, TEST_N_ESTIMATORS, TEST_PARITY_CASES
from tests.support import training_cli as _cli
from training import cli
from training.runs import RunStore

mlflow = pytest.importorskip(
    "mlflow", reason="the mlflow extra is not installed (make install installs every extra)"
)
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Run  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    # MLflow warns about type hints in its own code when a model is logged in this process.
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred:UserWarning"),
]

MODEL = "drug-classifier"
STARTUP_S = 120


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server for this module, stopped with its process group."""
    base = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    # Its background job runner (a dozen huey consumers) is of no use to these tests.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    with (base / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{base / 'mlflow.db'}",
                "--artifacts-destination",
                str(base / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            assert server.poll() is None, (base / "server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "mlflow server did not start"
                time.sleep(0.5)
        # MLflow's model loader finds the registry through the process-wide URI, which
        # MLflow also writes to the environment: put the environment back afterwards.
        with pytest.MonkeyPatch.context() as patch:
            for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
                patch.delenv(name, raising=False)
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            yield uri
    finally:
        stop_group(server, timeout=20)


def _small(data_path: Path) -> list[str]:
    return [
        "--data",
        str(data_path),
        "--n-estimators",
        str(TEST_N_ESTIMATORS),
        "--parity-cases",
        str(TEST_PARITY_CASES),
    ]


def _champion(client: MlflowClient) -> str:
    """Our version the ``champion`` alias points at."""
    return str(client.get_model_version_by_alias(MODEL, "champion").tags["drugclf.version"])


def test_full_mirrors_the_run_its_artifacts_and_the_registered_version(
    tracking_uri: str, tmp_path: Path, data_path: Path
) -> None:
    out = _cli(tmp_path, "full", *_small(data_path), "--mlflow", tracking_uri)
    assert out.returncode == 0, out.stderr
    assert "View run" not in out.stdout  # MLflow's own chatter stays out of our output
    assert f"mirroring to MLflow at {tracking_uri}" in out.stdout
    record = RunStore(tmp_path / "runs").load()
    assert record.metrics is not None and record.exported_version is not None

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(MODEL)
    assert experiment is not None
    [run] = client.search_runs(
        [experiment.experiment_id], f"attributes.run_name = '{record.run_id}'"
    )
    assert run.info.status == "FINISHED"
    assert run.data.params["n_estimators"] == str(TEST_N_ESTIMATORS)
    assert run.data.params["binning"] == "learned" and run.data.params["smote"] == "True"
    metrics = run.data.metrics
    assert metrics["test_accuracy"] == pytest.approx(record.metrics.test_accuracy)
    assert metrics["cv_accuracy_mean"] == pytest.approx(record.metrics.cv_accuracy_mean)
    assert metrics["cv_accuracy_std"] == pytest.approx(record.metrics.cv_accuracy_std)
    for name in CLASSES:
        assert metrics[f"f1_{name}"] == pytest.approx(record.metrics.per_class[name].f1)
    assert metrics["parity_mismatches"] == 0
    tags = run.data.tags
    assert tags["data_sha256"] == record.data_sha256
    assert tags["binning"] == "learned"
    assert len(tags["git_commit"]) in (40, len("unknown"))
    assert tags["drugclf.version"] == record.exported_version
    files = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"confusion_matrix.png", "metadata.json"} <= files

    [version] = client.search_model_versions(f"name = '{MODEL}' and run_id = '{run.info.run_id}'")
    assert version.tags["drugclf.version"] == record.exported_version
    assert _champion(client) == record.exported_version
    # The registered model is the exported ONNX file, with its signature and input example,
    # and it answers like our model.
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    inputs = [spec.name for spec in model.metadata.get_input_schema().inputs]
    assert inputs == ["Age", "Sex", "BP", "Cholesterol", "Na_to_K"]
    assert model.metadata.saved_input_example_info is not None
    assert model.metadata.flavors.keys() >= {"onnx", "python_function"}
    feed = {name: np.array([[value]]) for name, value in PATIENT.items()}
    mirrored = model.predict(feed)
    exported = Registry(tmp_path / "artifacts").resolve_current() / "model.onnx"
    ours = ort.InferenceSession(str(exported)).run(None, feed)
    assert mirrored["label"].tolist() == ours[0].tolist()
    np.testing.assert_array_equal(mirrored["probabilities"], ours[1])


def test_train_evaluate_export_one_by_one_fill_one_run(
    tracking_uri: str, tmp_path: Path, data_path: Path
) -> None:
    dirs = ["--runs-dir", str(tmp_path / "runs"), "--artifacts-dir", str(tmp_path / "artifacts")]
    mirror = ["--mlflow", tracking_uri]
    train = ["train", "--data", str(data_path), "--n-estimators", str(TEST_N_ESTIMATORS)]
    assert cli.main([*train, *dirs, *mirror]) == 0
    run_id = RunStore(tmp_path / "runs").load().run_id
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(MODEL)
    assert experiment is not None

    def mirrored() -> Run:
        [run] = client.search_runs([experiment.experiment_id], f"attributes.run_name = '{run_id}'")
        return run

    assert set(mirrored().data.metrics) == {"test_accuracy"}  # evaluated later
    assert cli.main(["evaluate", *dirs, *mirror]) == 0
    run = mirrored()
    assert {"cv_accuracy_mean", "cv_accuracy_std", "f1_DrugY"} <= set(run.data.metrics)
    assert "confusion_matrix.png" in {a.path for a in client.list_artifacts(run.info.run_id)}
    assert cli.main(["export", "--parity-cases", str(TEST_PARITY_CASES), *dirs, *mirror]) == 0
    version = RunStore(tmp_path / "runs").load().exported_version
    assert mirrored().data.tags["drugclf.version"] == version
    assert _champion(client) == version


def test_promote_rollback_sync_and_the_policy_move_the_aliases(
    tracking_uri: str, tmp_path: Path, data_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = MlflowClient(tracking_uri)
    mirror = ["--mlflow", tracking_uri]
    dirs = ["--runs-dir", str(tmp_path / "runs"), "--artifacts-dir", str(tmp_path / "artifacts")]
    # A first version exported without MLflow (an empty URI turns the mirror off, even with
    # MLFLOW_TRACKING_URI set): MLflow does not know it.
    assert cli.main(["full", *_small(data_path), *dirs, "--mlflow", ""]) == 0
    registry = Registry(tmp_path / "artifacts")
    first = registry.current_version()
    assert cli.main(["full", *_small(data_path), "--binning", "fixed", *dirs, *mirror]) == 0
    second = registry.current_version()
    assert first and second and first != second
    assert _champion(client) == second

    # Rolling back onto a version MLflow never saw: a warning, our registry still moves.
    assert cli.main(["rollback", *dirs, *mirror]) == 0
    assert registry.current_version() == first
    assert _champion(client) == second

    # sync registers what MLflow lacks and points champion at current.
    assert cli.main(["mlflow", "sync", *dirs, *mirror]) == 0
    assert _champion(client) == first
    versions = client.search_model_versions(f"name = '{MODEL}'")
    assert {first, second} <= {v.tags.get("drugclf.version") for v in versions}

    assert cli.main(["promote", second, *dirs, *mirror]) == 0
    assert _champion(client) == second
    # MLFLOW_TRACKING_URI alone turns the mirror on, as --mlflow does.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    assert cli.main(["rollback", *dirs]) == 0
    assert _champion(client) == first

    # The traffic policy's candidate is the challenger, until the policy names none.
    policy = RoutingPolicy(primary=first, candidates=[Candidate(version=second, weight=0.1)])
    routing.write(registry, policy)
    assert cli.main(["mlflow", "sync", *dirs]) == 0
    challenger = client.get_model_version_by_alias(MODEL, "challenger")
    assert challenger.tags["drugclf.version"] == second
    routing.clear(registry)
    assert cli.main(["mlflow", "sync", *dirs]) == 0
    assert "challenger" not in client.get_registered_model(MODEL).aliases
    assert _champion(client) == first


def test_optimize_is_a_parent_run_with_one_child_per_combination(
    tracking_uri: str, tmp_path: Path, data_path: Path
) -> None:
    out = tmp_path / "optimize"
    args = ["optimize", "--data", str(data_path), "--output", str(out), "--mlflow", tracking_uri]
    grid = ["--grid-n-estimators", "10", "--grid-max-leaf-nodes", "10", "20"]
    assert cli.main([*args, *grid, "--grid-binning", "fixed", "--runs-dir", str(tmp_path)]) == 0

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(MODEL)
    assert experiment is not None
    [parent] = client.search_runs([experiment.experiment_id], "tags.`drugclf.kind` = 'optimize'")
    children = client.search_runs(
        [experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    combos = {(c.data.params["max_leaf_nodes"], c.data.params["smote"]) for c in children}
    assert combos == {("10", "True"), ("10", "False"), ("20", "True"), ("20", "False")}
    assert all("cv_mean" in c.data.metrics for c in children)
    assert parent.data.metrics["best_cv_mean"] == max(c.data.metrics["cv_mean"] for c in children)
    files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"optimize.csv", "optimize.png", "best_params.json"} <= files


def test_an_unreachable_mlflow_is_a_warning_naming_it_never_a_failed_run(
    tmp_path: Path, data_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    out = _cli(
        tmp_path, "train", "--data", str(data_path), "--n-estimators", "10", "--mlflow", closed
    )
    elapsed = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    assert f"MLflow at {closed} cannot be reached" in out.stderr
    assert RunStore(tmp_path / "runs").ids()  # the run is recorded all the same
    assert elapsed < 60  # no minutes of retries (the CLI itself takes a few seconds)

    out = _cli(tmp_path, "mlflow", "sync", "--mlflow", closed)
    assert out.returncode == cli.EXIT_USER_ERROR
    assert f"error: MLflow at {closed} is not available" in out.stderr
    out = _cli(tmp_path, "mlflow", "sync")
    assert out.returncode == cli.EXIT_USER_ERROR and "MLFLOW_TRACKING_URI" in out.stderr


def test_a_uri_mlflow_refuses_is_a_warning_never_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from training.mlflow_mirror import Mirror

    before = mlflow.get_tracking_uri()
    with caplog.at_level(logging.WARNING, "training.mlflow_mirror"):
        assert Mirror.connect("bogus://nowhere") is None
    assert "MLflow refuses bogus://nowhere" in caplog.text
    assert "not mirrored" in caplog.text
    assert mlflow.get_tracking_uri() == before
