"""Explanations at export: build the exact Shapley explainer and gate it like the model.

The gate refuses to publish unless, on every dataset row, every cell of the grid, every value
on and beside every edge and the random patients of the parity gate:

- efficiency holds: base value + sum of the values = the probability the model serves, per
  class, within ``TOLERANCE``;
- the values onnxruntime gathers through ``explainer.onnx`` are the ones computed here in
  Python, bit for bit, in the same cell.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from sklearn.pipeline import Pipeline

from drugclf.artifact import (
    BASE_VALUES_OUTPUT,
    CELL_OUTPUT,
    PROBABILITIES_OUTPUT,
    VALUES_OUTPUT,
    ExplanationGate,
    Explanations,
    sha256_hex,
)
from drugclf.contract import CLASSES, FEATURE_NAMES
from training.explainer_onnx import explainer_model
from training.gates import GateError, GateReport
from training.parity import onnx_feeds
from training.shapley import (
    PROBABILITY_CAP,
    CellGrid,
    ShapleyTables,
    background_distribution,
    cell_grid,
    model_table,
    shapley_tables,
)

logger = logging.getLogger(__name__)

TOLERANCE: Final = 1e-6
MAX_CELLS: Final = 500_000
"""Most cells an explainer precomputes: its table holds cells x 25 float64 values (100 MB at
this cap). Above it the version is published without explanations (docs/explanations.md)."""


ExplanationReport = GateReport[ExplanationGate]


class ExplanationGateError(GateError[ExplanationGate]):
    """The explainer does not match the model: the version is not published."""

    gate_name = "explanation"


@dataclass(frozen=True)
class Explainer:
    """An explainer built for one exported model, with what it was built from."""

    grid: CellGrid
    tables: ShapleyTables
    onnx_bytes: bytes
    background_csv: bytes
    background_rows: int
    importance: dict[str, dict[str, float]]


def build_explainer(
    pipeline: Pipeline, model: onnx.ModelProto, background: pd.DataFrame
) -> Explainer | str:
    """The explainer of an exported model, or why it is not built (too many cells)."""
    grid = cell_grid(pipeline, model)
    if grid.cells > MAX_CELLS:
        reason = (
            f"{grid.cells:,} cells ({' x '.join(map(str, grid.shape))} over "
            f"{', '.join(FEATURE_NAMES)}) are more than the {MAX_CELLS:,} an explainer precomputes"
        )
        logger.warning("no explanations: %s", reason)
        return reason
    rows = background[list(FEATURE_NAMES)].reset_index(drop=True)
    tables = shapley_tables(
        model_table(model.SerializeToString(), grid), background_distribution(grid, rows)
    )
    at_background = tables.values.reshape(grid.cells, len(FEATURE_NAMES), -1)[
        grid.flat_indices(rows)
    ]
    mean_abs = np.abs(at_background).mean(axis=0)
    importance = {
        name: {label: float(mean_abs[i, c]) for c, label in enumerate(CLASSES)}
        for i, name in enumerate(FEATURE_NAMES)
    }
    logger.info("explainer: %d cells %s", grid.cells, grid.shape)
    return Explainer(
        grid=grid,
        tables=tables,
        onnx_bytes=explainer_model(grid, tables).SerializeToString(),
        background_csv=rows.to_csv(index=False, lineterminator="\n").encode(),
        background_rows=len(rows),
        importance=importance,
    )


def check_explainer(
    explainer: Explainer,
    model_bytes: bytes,
    groups: dict[str, pd.DataFrame],
    tolerance: float = TOLERANCE,
) -> ExplanationReport:
    """The gate: efficiency and onnxruntime against Python on every case of every group.

    ``groups`` are the parity gate's; every cell of the grid (one patient in each) is added.
    """
    groups = {**groups, "cells": explainer.grid.representatives()}
    cases = pd.concat(groups.values(), ignore_index=True)
    group_of = np.concatenate([[name] * len(frame) for name, frame in groups.items()])
    feeds = onnx_feeds(cases)
    model = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    (probabilities,) = model.run([PROBABILITIES_OUTPUT], feeds)
    served = np.minimum(probabilities, PROBABILITY_CAP).astype(np.float64)
    session = ort.InferenceSession(explainer.onnx_bytes, providers=["CPUExecutionProvider"])
    values, base, cells = session.run([VALUES_OUTPUT, BASE_VALUES_OUTPUT, CELL_OUTPUT], feeds)
    efficiency = np.abs(base + values.sum(axis=1) - served).max(axis=1)
    grid = explainer.grid
    python_cells = grid.flat_indices(cases)
    python_values = explainer.tables.values.reshape(grid.cells, len(FEATURE_NAMES), -1)[
        python_cells
    ]
    python_diff = np.abs(values - python_values).max(axis=(1, 2))
    efficiency_bad = efficiency > tolerance
    python_bad = (python_diff > 0) | (cells.reshape(-1) != python_cells)
    bad = efficiency_bad | python_bad
    first = cases[bad].head(10).copy()
    first.insert(0, "group", group_of[bad][:10])
    first["efficiency_error"] = efficiency[bad][:10]
    first["python_diff"] = python_diff[bad][:10]
    gate = ExplanationGate(
        cases=len(cases),
        groups={name: len(frame) for name, frame in groups.items()},
        efficiency_failures=int(efficiency_bad.sum()),
        max_efficiency_error=float(efficiency.max()),
        python_mismatches=int(python_bad.sum()),
        max_python_diff=float(python_diff.max()),
        tolerance=tolerance,
    )
    line = (
        f"explanations: {gate.efficiency_failures} efficiency failures and "
        f"{gate.python_mismatches} onnxruntime/Python mismatches over {gate.cases} cases "
        f"(max |base + sum - p| {gate.max_efficiency_error:.2e}, tolerance {gate.tolerance:g})"
    )
    report = ExplanationReport(gate=gate, line=line, first_failures=first)
    logger.info(report.describe().splitlines()[0])
    return report


def explanations_metadata(explainer: Explainer, report: ExplanationReport) -> Explanations:
    """What the metadata records of a gated explainer (its files bound by sha256)."""
    grid = explainer.grid
    return Explanations(
        explainer_sha256=sha256_hex(explainer.onnx_bytes),
        background_rows=explainer.background_rows,
        background_sha256=sha256_hex(explainer.background_csv),
        cells=grid.cells,
        cells_per_input={name: grid.axis_size(name) for name in FEATURE_NAMES},
        base_values={
            label: float(value)
            for label, value in zip(CLASSES, explainer.tables.base_values, strict=True)
        },
        importance=explainer.importance,
        gate=report.gate,
    )
