"""Exact Shapley explanations at export: the definition, shap, the gate and the shipped files."""

from __future__ import annotations

import dataclasses
import itertools
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pandas as pd
import pytest

from drugclf.artifact import (
    BACKGROUND_FILE,
    EXPLAINER_FILE,
    PROBABILITIES_OUTPUT,
    ArtifactError,
    BinningStrategy,
    Params,
    read_explainer,
    read_metadata,
)
from drugclf.contract import CATEGORICAL_FEATURES, CLASSES, FEATURE_NAMES, FIELDS_BY_NAME
from drugclf.registry import Registry
from training import explanations
from training.explain_csv import explain_csv
from training.explainer_onnx import explainer_model
from training.explanations import build_explainer, check_explainer
from training.onnx_export import to_onnx
from training.parity import onnx_feeds, parity_groups
from training.pipeline import inference_pipeline
from training.runs import RunStore
from training.shapley import ShapleyTables
from training.workflow import export_run, train

from .conftest import Exported

Model = Callable[[pd.DataFrame], npt.NDArray[np.float64]]


def _served(exported: Exported) -> Model:
    session = ort.InferenceSession(
        str(exported.result.path / "model.onnx"), providers=["CPUExecutionProvider"]
    )

    def probabilities(frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        (p,) = session.run([PROBABILITIES_OUTPUT], onnx_feeds(frame))
        capped: npt.NDArray[np.float64] = np.minimum(p, np.float32(1.0)).astype(np.float64)
        return capped

    return probabilities


def _background(exported: Exported) -> pd.DataFrame:
    frame = pd.read_csv(exported.result.path / BACKGROUND_FILE)
    frame["Age"] = frame["Age"].astype(np.int64)
    return frame


def _explain(exported: Exported, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(
        str(exported.result.path / EXPLAINER_FILE), providers=["CPUExecutionProvider"]
    )
    values, base = session.run(["values", "base_values"], onnx_feeds(frame))
    return values, base


def _by_definition(model: Model, background: pd.DataFrame, row: pd.Series) -> np.ndarray:
    """Interventional Shapley values straight from the definition (2^5 coalitions)."""
    players = len(FEATURE_NAMES)
    worth = {}
    for mask in itertools.product((False, True), repeat=players):
        frame = background.copy()
        for name, kept in zip(FEATURE_NAMES, mask, strict=True):
            if kept:
                frame[name] = row[name]
        worth[mask] = model(frame).mean(axis=0)
    phi = np.zeros((players, len(CLASSES)))
    for mask, value in worth.items():
        size = sum(mask)
        for i in range(players):
            if mask[i]:
                continue
            weight = math.factorial(size) * math.factorial(players - size - 1)
            with_i = tuple(True if j == i else m for j, m in enumerate(mask))
            phi[i] += weight / math.factorial(players) * (worth[with_i] - value)
    return phi


def test_export_ships_a_gated_explainer_bound_to_the_metadata(exported: Exported) -> None:
    meta = read_metadata(exported.result.path)
    explained = meta.explanations
    assert explained is not None and meta.explanations_skipped is None
    assert explained.gate.passed and explained.gate.max_efficiency_error < 1e-12
    groups = explained.gate.groups
    assert groups["dataset"] == 200 and groups["random"] == 5_000
    assert groups["cells"] == explained.cells == math.prod(explained.cells_per_input.values())
    assert explained.gate.cases == sum(groups.values())
    # The background is the training split, before SMOTE.
    assert explained.background_rows == meta.metrics.train_rows == len(_background(exported))
    assert read_explainer(exported.result.path, meta) is not None
    assert set(explained.importance) == set(FEATURE_NAMES)
    # Na_to_K decides DrugY on this data: it matters most for that class.
    drug_y = {name: by_class["DrugY"] for name, by_class in explained.importance.items()}
    assert max(drug_y, key=drug_y.__getitem__) == "Na_to_K"


def test_values_are_the_shapley_values_by_definition(exported: Exported) -> None:
    model, background = _served(exported), _background(exported)
    rows = pd.read_csv(exported.run.dataset.path)[list(FEATURE_NAMES)].iloc[::40]
    values, base = _explain(exported, rows)
    for k, (_, row) in enumerate(rows.iterrows()):
        assert np.abs(values[k] - _by_definition(model, background, row)).max() < 1e-12
    assert np.abs(base - model(background).mean(axis=0)).max() < 1e-12


def test_values_match_the_shap_package(exported: Exported) -> None:
    shap = pytest.importorskip("shap")
    model, background = _served(exported), _background(exported)
    # shap's maskers need numbers: the categories travel as their index in the contract.
    allowed = {name: list(FIELDS_BY_NAME[name].allowed or ()) for name in CATEGORICAL_FEATURES}

    def encode(frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        coded = frame[list(FEATURE_NAMES)].copy()
        for name, values in allowed.items():
            coded[name] = coded[name].map(values.index)
        return coded.to_numpy(np.float64)

    def decode(array: npt.NDArray[np.float64]) -> pd.DataFrame:
        frame = pd.DataFrame(array, columns=list(FEATURE_NAMES))
        frame["Age"] = frame["Age"].round().astype(np.int64)
        for name, values in allowed.items():
            frame[name] = [values[int(i)] for i in frame[name]]
        return frame

    # Its default keeps only 100 background rows: hold all of them, as the export does.
    masker = shap.maskers.Independent(encode(background), max_samples=len(background))
    explainer = shap.explainers.Exact(lambda array: model(decode(array)), masker)
    sample = pd.read_csv(exported.run.dataset.path)[list(FEATURE_NAMES)].iloc[::25]
    expected = explainer(encode(sample))
    values, base = _explain(exported, sample)
    assert np.abs(values - expected.values).max() < 1e-6
    assert np.abs(base - expected.base_values).max() < 1e-6


@pytest.mark.parametrize("strategy", ["fixed", "none"])
def test_every_binning_strategy_gets_an_exact_explainer(
    strategy: BinningStrategy, data_path: Path, tmp_path: Path
) -> None:
    run = train(data_path, Params(n_estimators=10, binning=strategy), RunStore(tmp_path))
    pipeline = inference_pipeline(run.pipeline)
    model = to_onnx(pipeline)
    explainer = build_explainer(pipeline, model, run.dataset.features)
    assert not isinstance(explainer, str)
    groups = parity_groups(pipeline, run.dataset.features, 1_000)
    report = check_explainer(explainer, model.SerializeToString(), groups)
    assert report.passed, report.describe()
    if strategy == "none":  # the forest's thresholds make the grid: many more cells
        assert explainer.grid.cells > 1_000
        assert explainer.grid.numeric["Na_to_K"].float32


def test_the_gate_refuses_values_that_do_not_add_up(exported: Exported) -> None:
    run = exported.run
    pipeline = inference_pipeline(run.pipeline)
    model = to_onnx(pipeline)
    explainer = build_explainer(pipeline, model, run.dataset.features)
    assert not isinstance(explainer, str)
    values = explainer.tables.values.copy()
    values[0, ..., 0, 0] += 1e-5  # every patient in the first Age cell: efficiency breaks
    broken = ShapleyTables(base_values=explainer.tables.base_values, values=values)
    tampered = dataclasses.replace(
        explainer, onnx_bytes=explainer_model(explainer.grid, broken).SerializeToString()
    )
    groups = parity_groups(pipeline, run.dataset.features, 500)
    report = check_explainer(tampered, model.SerializeToString(), groups)
    assert not report.passed
    assert report.gate.efficiency_failures > 0 and report.gate.python_mismatches > 0
    assert "first failures" in report.describe()


def test_too_many_cells_publishes_without_explanations(
    exported: Exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(explanations, "MAX_CELLS", 10)
    registry = Registry(tmp_path / "artifacts")
    result = export_run(exported.run, exported.store, registry, random_cases=100, promote=False)
    assert result.explanations is None
    assert result.metadata.explanations is None
    assert "more than the 10 an explainer precomputes" in (
        result.metadata.explanations_skipped or ""
    )
    assert not (result.path / EXPLAINER_FILE).exists()
    out = tmp_path / "x.csv"
    with pytest.raises(ArtifactError, match=r"has no explanations: .* cells"):
        explain_csv(result.path, exported.run.dataset.path, out)
    assert not out.exists()


@pytest.mark.parametrize("damage", ["explainer", "background", "rows"])
def test_damaged_explainer_files_are_refused(
    exported: Exported, tmp_path: Path, damage: str
) -> None:
    folder = tmp_path / exported.result.version
    shutil.copytree(exported.result.path, folder)
    if damage == "explainer":
        (folder / EXPLAINER_FILE).write_bytes(b"not onnx")
    elif damage == "background":
        (folder / BACKGROUND_FILE).unlink()
    else:
        lines = (folder / BACKGROUND_FILE).read_bytes().splitlines(keepends=True)
        (folder / BACKGROUND_FILE).write_bytes(b"".join(lines[:-1]))
    with pytest.raises(ArtifactError, match=r"explainer|background"):
        read_explainer(folder, read_metadata(folder))


def test_cli_explain_writes_values_that_add_up(exported: Exported, tmp_path: Path) -> None:
    from training import cli  # the CLI imports every command's stack

    out = tmp_path / "explained.csv"
    code = cli.main(
        [
            "explain",
            "--artifacts-dir",
            str(exported.registry.root),
            "--input",
            str(exported.run.dataset.path),
            "--output",
            str(out),
        ]
    )
    assert code == 0
    frame = pd.read_csv(out)
    assert len(frame) == 200 and (frame["model_version"] == exported.result.version).all()
    for label in CLASSES:
        total = frame[f"base_{label}"] + sum(
            frame[f"value_{name}_{label}"] for name in FEATURE_NAMES
        )
        assert (total - frame[f"p_{label}"]).abs().max() < 1e-12
