"""In-process timings: onnxruntime, the scikit-learn pipeline and the version's cell table.

The cell table (the answer per cell that serving looks up) is timed when the version has one.
Every side gets the same patients, already in the form they take (column tensors for
onnxruntime, a typed DataFrame for scikit-learn), so the figures compare the models, not the
input conversion. onnxruntime runs with serving's own session options (one thread, no spinning).
The scikit-learn side is the fitted pipeline training kept in its run folder (``pipeline.pkl``,
SMOTE dropped as at export), or, when that run is not on this machine, the same pipeline refitted
on the dataset with the artifact's parameters: the forest's shape, which sets the cost, is the same.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np
import onnxruntime as ort
import pandas as pd

from drugclf.artifact import (
    LABEL_OUTPUT,
    MODEL_FILE,
    PROBABILITIES_OUTPUT,
    ArtifactMetadata,
    read_cell_table,
)
from drugclf.cells import CellTable
from drugclf.contract import FEATURE_NAMES, Patient
from loadtests.bench.stats import Spread, percentile
from loadtests.patients import PatientSource, load_dataset

logger = logging.getLogger(__name__)

BATCH_SIZES: Final = (1, 100, 10_000)


class LatencyFigures(msgspec.Struct, frozen=True):
    """One-row latency of one side, in µs, over the repeats."""

    p50_us: Spread
    p99_us: Spread


class InProcessResult(msgspec.Struct, frozen=True):
    """ONNX against scikit-learn, in one process, in one run."""

    onnx_latency: LatencyFigures
    sklearn_latency: LatencyFigures
    onnx_rows_per_s: dict[int, Spread]
    sklearn_rows_per_s: dict[int, Spread]
    sklearn_source: str
    table_latency: LatencyFigures | None = None
    """The cell table's lookup of one patient (``CellTable.predict_one``, as serving answers a
    single patient); None: the version has none."""
    table_rows_per_s: dict[int, Spread] | None = None

    @property
    def latency_ratio(self) -> float:
        """How many times lower the ONNX one-row p50 is (median of repeats)."""
        return self.sklearn_latency.p50_us.median / self.onnx_latency.p50_us.median


def frame(patients: list[dict[str, Any]]) -> pd.DataFrame:
    """Patients as the typed DataFrame the scikit-learn pipeline was fitted on."""
    data = pd.DataFrame(patients, columns=list(FEATURE_NAMES))
    data["Age"] = data["Age"].astype(np.int64)
    data["Na_to_K"] = data["Na_to_K"].astype(np.float64)
    return data


def onnx_feeds(data: pd.DataFrame) -> dict[str, np.ndarray[Any, Any]]:
    """Column tensors ``[N, 1]`` typed as the graph's inputs (as serving builds them)."""
    feeds: dict[str, np.ndarray[Any, Any]] = {
        "Age": data["Age"].to_numpy(np.int64).reshape(-1, 1),
        "Na_to_K": data["Na_to_K"].to_numpy(np.float64).reshape(-1, 1),
    }
    for name in ("Sex", "BP", "Cholesterol"):
        feeds[name] = data[name].to_numpy(object).reshape(-1, 1)
    return feeds


def load_session(version_dir: Path) -> ort.InferenceSession:
    """The exported model with serving's session options."""
    from serving.inference.model import session_options  # noqa: PLC0415 (serving is optional here)

    return ort.InferenceSession(
        str(version_dir / MODEL_FILE),
        sess_options=session_options(1),
        providers=["CPUExecutionProvider"],
    )


def load_sklearn(metadata: ArtifactMetadata, runs_dir: Path, data_path: Path) -> tuple[Any, str]:
    """The fitted inference pipeline behind ``metadata``, and where it came from."""
    from training.pipeline import (  # noqa: PLC0415 (training is heavy: import on use)
        build_pipeline,
        inference_pipeline,
        smote_neighbours,
    )
    from training.runs import RunError, RunStore  # noqa: PLC0415

    store = RunStore(runs_dir)
    try:
        for record in reversed(store.all()):
            if record.exported_version == metadata.version:
                pipeline = inference_pipeline(store.load_pipeline(record.run_id))
                return pipeline, f"run {record.run_id} ({runs_dir}/{record.run_id}/pipeline.pkl)"
    except RunError as exc:
        logger.warning("cannot read runs in %s: %s", runs_dir, exc)
    from training.dataset import load_dataset as load_training_data  # noqa: PLC0415

    dataset = load_training_data(data_path)
    assert dataset.labels is not None
    fitted = build_pipeline(metadata.params, smote_neighbours(dataset.labels))
    fitted.fit(dataset.features, dataset.labels)
    return inference_pipeline(fitted), f"refitted on {data_path} with the artifact's params"


def _call_times_us(call: Callable[[Any], object], inputs: list[Any], calls: int) -> list[float]:
    """Time ``calls`` calls of ``call``, cycling through ``inputs``; µs per call."""
    times = []
    for i in range(calls):
        argument = inputs[i % len(inputs)]
        start = time.perf_counter_ns()
        call(argument)
        times.append((time.perf_counter_ns() - start) / 1000)
    return times


def _latency(
    calls_by_repeat: list[list[float]],
) -> LatencyFigures:
    return LatencyFigures(
        p50_us=Spread.of([percentile(t, 50) for t in calls_by_repeat]),
        p99_us=Spread.of([percentile(t, 99) for t in calls_by_repeat]),
    )


def run_inprocess(
    version_dir: Path,
    metadata: ArtifactMetadata,
    *,
    runs_dir: Path,
    data_path: Path,
    repeats: int,
    quick: bool = False,
    seed: int = 0,
) -> InProcessResult:
    """Measure every side, interleaved repeat by repeat so noise hits them alike."""
    session = load_session(version_dir)
    table_bytes = read_cell_table(version_dir, metadata)
    table = CellTable.from_bytes(table_bytes) if table_bytes is not None else None
    sklearn_pipeline, source = load_sklearn(metadata, runs_dir, data_path)
    patients = PatientSource(random.Random(seed), load_dataset(data_path))
    outputs = [LABEL_OUTPUT, PROBABILITIES_OUTPUT]

    one_patients = [patients.one() for _ in range(64)]
    one_rows = [frame([patient]) for patient in one_patients]
    one_feeds = [onnx_feeds(f) for f in one_rows]
    # Serving looks one patient up from its fields (no arrays), a batch from column tensors.
    one_structs = [msgspec.convert(patient, Patient) for patient in one_patients]
    batches = {size: frame(patients.many(size)) for size in BATCH_SIZES}
    batch_feeds = {size: onnx_feeds(f) for size, f in batches.items()}
    onnx_calls, sklearn_calls = (200, 10) if quick else (3000, 120)

    # Warm up both (first calls allocate and fill caches).
    for i in range(20):
        session.run(outputs, one_feeds[i % len(one_feeds)])
    for i in range(3):
        sklearn_pipeline.predict_proba(one_rows[i])

    onnx_repeats: list[list[float]] = []
    sklearn_repeats: list[list[float]] = []
    onnx_rates: dict[int, list[float]] = {size: [] for size in BATCH_SIZES}
    sklearn_rates: dict[int, list[float]] = {size: [] for size in BATCH_SIZES}
    table_repeats: list[list[float]] = []
    table_rates: dict[int, list[float]] = {size: [] for size in BATCH_SIZES}

    def run_onnx(feeds: dict[str, Any]) -> object:
        return session.run(outputs, feeds)

    predict_sklearn = sklearn_pipeline.predict_proba
    for _ in range(repeats):
        onnx_repeats.append(_call_times_us(run_onnx, one_feeds, onnx_calls))
        sklearn_repeats.append(_call_times_us(predict_sklearn, one_rows, sklearn_calls))
        for size in BATCH_SIZES:
            # Fewer calls for big batches: enough for a stable median, seconds not minutes.
            calls = 3 if quick else max(3, min(200, 20_000 // size))
            onnx_time = percentile(_call_times_us(run_onnx, [batch_feeds[size]], calls), 50)
            calls = 2 if quick else max(3, min(30, 2_000 // size))
            sk_time = percentile(_call_times_us(predict_sklearn, [batches[size]], calls), 50)
            onnx_rates[size].append(size / (onnx_time / 1e6))
            sklearn_rates[size].append(size / (sk_time / 1e6))
        if table is not None:
            look_up = table.predict_columns
            table_repeats.append(_call_times_us(table.predict_one, one_structs, onnx_calls))
            for size in BATCH_SIZES:
                calls = 3 if quick else max(3, min(200, 20_000 // size))
                table_time = percentile(_call_times_us(look_up, [batch_feeds[size]], calls), 50)
                table_rates[size].append(size / (table_time / 1e6))

    return InProcessResult(
        onnx_latency=_latency(onnx_repeats),
        sklearn_latency=_latency(sklearn_repeats),
        onnx_rows_per_s={s: Spread.of(v) for s, v in onnx_rates.items()},
        sklearn_rows_per_s={s: Spread.of(v) for s, v in sklearn_rates.items()},
        sklearn_source=source,
        table_latency=_latency(table_repeats) if table is not None else None,
        table_rows_per_s=(
            {s: Spread.of(v) for s, v in table_rates.items()} if table is not None else None
        ),
    )
