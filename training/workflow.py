"""The offline workflow: train a run, evaluate it, export it behind the parity gate, publish it.

The CLI and the server's retrain job both call these functions, so there is one way to make a
model.
"""

from __future__ import annotations

import logging
import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
from imblearn.pipeline import Pipeline as ImbPipeline
from sklearn.model_selection import train_test_split

from drugclf.artifact import (
    BACKGROUND_FILE,
    CELL_TABLE_FILE,
    CONFUSION_MATRIX_FILE,
    EXPLAINER_FILE,
    FORMAT_VERSION,
    LABEL_OUTPUT,
    MODEL_FILE,
    PROBABILITIES_OUTPUT,
    ArtifactMetadata,
    FeatureDistribution,
    Params,
    sha256_hex,
    write_metadata,
)
from drugclf.contract import CATEGORICAL_FEATURES, CLASSES, FIELDS, FIELDS_BY_NAME, NUMERIC_FEATURES
from drugclf.registry import Registry
from training.cell_table import (
    CellTableGateError,
    build_cell_table,
    cell_table_metadata,
    check_cell_table,
)
from training.dataset import Dataset, DatasetError, load_dataset, require_trainable
from training.evaluate import CV_FOLDS, evaluate, save_confusion_matrix
from training.explanations import (
    ExplanationGateError,
    ExplanationReport,
    build_explainer,
    check_explainer,
    explanations_metadata,
)
from training.features import Binner, bin_one_hot
from training.onnx_export import OPSET, input_specs, to_onnx
from training.parity import DEFAULT_RANDOM_CASES, ParityReport, check_parity, parity_groups
from training.pipeline import build_pipeline, inference_pipeline, smote_neighbours
from training.runs import RunRecord, RunStore

logger = logging.getLogger(__name__)

DISTRIBUTION_QUANTILES: Final = np.linspace(0.1, 0.9, 9)
_LIBRARIES: Final = (
    "scikit-learn",
    "imbalanced-learn",
    "skl2onnx",
    "onnx",
    "onnxruntime",
    "numpy",
    "pandas",
    "msgspec",
)


class ParityError(Exception):
    """ONNX and scikit-learn disagree: the model is not published."""

    def __init__(self, report: ParityReport) -> None:
        super().__init__(report.describe())
        self.report = report


@dataclass(frozen=True)
class TrainedRun:
    """A fitted run and the data it was fitted on."""

    record: RunRecord
    pipeline: ImbPipeline
    dataset: Dataset


@dataclass(frozen=True)
class ExportResult:
    """What export produced."""

    version: str
    path: Path
    parity: ParityReport
    promoted: bool
    metadata: ArtifactMetadata
    explanations: ExplanationReport | None = None
    """The explanation gate's report; None when the version has no explainer."""


def _split(dataset: Dataset, params: Params) -> tuple[pd.Index, pd.Index]:
    assert dataset.labels is not None
    train_idx, test_idx = train_test_split(
        dataset.features.index,
        test_size=params.test_size,
        stratify=dataset.labels,
        random_state=params.random_state,
    )
    return pd.Index(train_idx), pd.Index(test_idx)


def train(data_path: Path, params: Params, store: RunStore) -> TrainedRun:
    """Fit the pipeline on the training split and record the run."""
    dataset = load_dataset(data_path)
    require_trainable(dataset, CV_FOLDS)
    labels = dataset.labels
    assert labels is not None
    try:
        train_idx, test_idx = _split(dataset, params)
    except ValueError as exc:  # too few rows of a class to stratify
        raise DatasetError(f"{data_path}: cannot split for training: {exc}") from exc
    x_train, y_train = dataset.features.loc[train_idx], labels.loc[train_idx]
    pipeline = build_pipeline(params, smote_neighbours(y_train))
    logger.info("fitting %s on %d rows", params, len(train_idx))
    pipeline.fit(x_train, y_train)
    test_accuracy = float(
        (pipeline.predict(dataset.features.loc[test_idx]) == labels.loc[test_idx]).mean()
    )
    record = RunRecord(
        run_id=store.new_id(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        data_path=str(data_path),
        data_sha256=dataset.sha256,
        data_rows=dataset.rows,
        params=params,
        test_index=[int(i) for i in test_idx],
        test_accuracy=test_accuracy,
    )
    store.save(record, pipeline)
    logger.info("run %s: test accuracy %.3f", record.run_id, test_accuracy)
    return TrainedRun(record=record, pipeline=pipeline, dataset=dataset)


def reload(store: RunStore, run_id: str | None = None) -> TrainedRun:
    """A recorded run with its pipeline and its data, checking the data has not changed."""
    record = store.load(run_id)
    dataset = load_dataset(Path(record.data_path))
    if dataset.sha256 != record.data_sha256:
        raise DatasetError(
            f"{record.data_path} changed since run {record.run_id} was trained "
            f"(sha256 {dataset.sha256[:12]}, expected {record.data_sha256[:12]}): train again"
        )
    return TrainedRun(record=record, pipeline=store.load_pipeline(record.run_id), dataset=dataset)


def evaluate_run(run: TrainedRun, store: RunStore) -> TrainedRun:
    """Compute the full metrics of a run (test report, confusion matrix, CV) and record them."""
    labels = run.dataset.labels
    assert labels is not None
    test_idx = pd.Index(run.record.test_index)
    test = (run.dataset.features.loc[test_idx], labels.loc[test_idx])
    metrics = evaluate(
        inference_pipeline(run.pipeline),
        run.record.params,
        (run.dataset.features, labels),
        test,
        train_rows=run.dataset.rows - len(test_idx),
    )
    run.record.metrics = metrics
    store.save(run.record)
    return run


def training_distribution(features: pd.DataFrame) -> list[FeatureDistribution]:
    """Each input's distribution in the training rows, for drift monitoring at serving time."""
    result = []
    for name in NUMERIC_FEATURES:
        values = features[name].to_numpy(np.float64)
        edges = np.unique(np.quantile(values, DISTRIBUTION_QUANTILES))
        proportions = bin_one_hot(values, edges).mean(axis=0)
        result.append(
            FeatureDistribution(
                name=name,
                kind="numeric",
                edges=[float(e) for e in edges],
                proportions=[float(p) for p in proportions],
            )
        )
    for name in CATEGORICAL_FEATURES:
        allowed = list(FIELDS_BY_NAME[name].allowed or ())
        shares = features[name].value_counts(normalize=True)
        result.append(
            FeatureDistribution(
                name=name,
                kind="categorical",
                categories=allowed,
                proportions=[float(shares.get(value, 0.0)) for value in allowed],
            )
        )
    return result


def git_commit() -> str | None:
    """The commit the training code is at, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 (git from PATH is the point)
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def export_run(
    run: TrainedRun,
    store: RunStore,
    registry: Registry,
    *,
    random_cases: int = DEFAULT_RANDOM_CASES,
    promote: bool = True,
) -> ExportResult:
    """Convert to ONNX, prove parity, publish as a new version and (by default) promote it.

    The exact Shapley explainer is built over the training rows and gated beside the model
    (``training.explanations``), and so is the table of the model's answer per cell that
    serving looks up (``training.cell_table``); a model with too many cells is published
    without either.

    Raises:
        ParityError: ONNX and scikit-learn disagree; nothing is published.
        ExplanationGateError: the explainer does not match the model; nothing is published.
        CellTableGateError: the cell table does not answer as the model; nothing is published.
    """
    if run.record.metrics is None:
        run = evaluate_run(run, store)
    metrics = run.record.metrics
    assert metrics is not None
    pipeline = inference_pipeline(run.pipeline)
    model = to_onnx(pipeline)
    onnx_bytes = model.SerializeToString()
    groups = parity_groups(pipeline, run.dataset.features, random_cases)
    report = check_parity(pipeline, onnx_bytes, groups)
    run.record.parity = report.summary
    store.save(run.record)
    if not report.passed:
        raise ParityError(report)
    test_idx = set(run.record.test_index)
    train_rows = run.dataset.features.loc[
        [i for i in run.dataset.features.index if i not in test_idx]
    ]
    explainer = build_explainer(pipeline, model, train_rows)
    explained: ExplanationReport | None = None
    if not isinstance(explainer, str):
        explained = check_explainer(explainer, onnx_bytes, groups)
        if not explained.passed:
            raise ExplanationGateError(explained)
        table = build_cell_table(explainer.grid, onnx_bytes)
        table_bytes = table.to_bytes()
        tabled = check_cell_table(table, onnx_bytes, groups)
        if not tabled.passed:
            raise CellTableGateError(tabled)

    created = datetime.now(UTC)
    model_sha256 = sha256_hex(onnx_bytes)
    version = f"{created:%Y%m%d-%H%M%S}-{model_sha256[:6]}"
    binners = {
        name: step
        for name, step, _ in pipeline.named_steps["features"].transformers_
        if isinstance(step, Binner)
    }
    meta = ArtifactMetadata(
        format_version=FORMAT_VERSION,
        version=version,
        created_at=created.isoformat(timespec="seconds"),
        model_type="RandomForestClassifier",
        git_commit=git_commit(),
        data_sha256=run.record.data_sha256,
        data_rows=run.record.data_rows,
        params=run.record.params,
        metrics=metrics,
        classes=list(CLASSES),
        features=list(FIELDS),
        inputs=input_specs(),
        outputs=[LABEL_OUTPUT, PROBABILITIES_OUTPUT],
        bin_edges={
            name: [float(e) for e in b.edges_]
            for name, b in binners.items()
            if b.edges_ is not None
        },
        opset=dict(OPSET),
        library_versions=_library_versions(),
        parity=report.summary,
        training_distribution=training_distribution(train_rows),
        model_sha256=model_sha256,
        explanations=(
            None
            if isinstance(explainer, str) or explained is None
            else explanations_metadata(explainer, explained)
        ),
        explanations_skipped=explainer if isinstance(explainer, str) else None,
        cell_table=(
            None if isinstance(explainer, str) else cell_table_metadata(table, table_bytes, tabled)
        ),
    )
    staging = registry.staging_dir()
    try:
        (staging / MODEL_FILE).write_bytes(onnx_bytes)
        if not isinstance(explainer, str):
            (staging / EXPLAINER_FILE).write_bytes(explainer.onnx_bytes)
            (staging / BACKGROUND_FILE).write_bytes(explainer.background_csv)
            (staging / CELL_TABLE_FILE).write_bytes(table_bytes)
        save_confusion_matrix(
            metrics.confusion_matrix,
            staging / CONFUSION_MATRIX_FILE,
            f"{version} — test accuracy {metrics.test_accuracy:.1%}",
        )
        write_metadata(staging, meta)
        path = registry.publish(staging, version)
    except BaseException:
        registry.discard(staging)
        raise
    if promote:
        registry.promote(version)
    run.record.exported_version = version
    run.record.promoted = promote
    store.save(run.record)
    return ExportResult(
        version=version,
        path=path,
        parity=report,
        promoted=promote,
        metadata=meta,
        explanations=explained,
    )
