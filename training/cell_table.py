"""The cell table at export: ``model.onnx``'s answer in every cell, gated bit for bit.

Serving answers from the table instead of walking the forest (``drugclf/cells.py``), so the
table must answer exactly what ``model.onnx`` answers when serving runs it: one thread per call,
probabilities capped at 1. The gate refuses to publish unless, on every case of the parity
gate's groups (dataset rows, values on and beside every edge crossed with the categories,
random patients) and in every cell, the label is the same and every probability has the same
float32 bits, with the model run over the whole batch and, for the cells and the edges, one
patient at a time.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pandas as pd

from drugclf.artifact import (
    LABEL_OUTPUT,
    PROBABILITIES_OUTPUT,
    CellTableGate,
    CellTableInfo,
    sha256_hex,
)
from drugclf.cells import CellTable, NumericEdges
from drugclf.contract import CLASSES, FEATURE_NAMES
from training.gates import GateError, GateReport
from training.parity import onnx_feeds
from training.shapley import PROBABILITY_CAP, CellGrid

logger = logging.getLogger(__name__)

ONE_AT_A_TIME_GROUPS: Final = ("cells", "edges")
"""Groups also run one patient per model call, as serving runs a single patient."""
MAX_ONE_AT_A_TIME: Final = 20_000
"""Most cases run one per call (about 20 µs each); a grid with more cells is sampled."""


CellTableReport = GateReport[CellTableGate]


class CellTableGateError(GateError[CellTableGate]):
    """The cell table does not answer as the model does: the version is not published."""

    gate_name = "cell table"


def _serving_session(model_bytes: bytes) -> ort.InferenceSession:
    """``model.onnx`` as serving runs it: one thread, sequential (the bits depend on it)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(
        model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
    )


def _answers(
    session: ort.InferenceSession, feeds: dict[str, npt.NDArray[Any]]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Class indices and capped probabilities of one model call."""
    labels, probabilities = session.run([LABEL_OUTPUT, PROBABILITIES_OUTPUT], feeds)
    position = {label: i for i, label in enumerate(CLASSES)}
    indices = np.fromiter((position[str(v)] for v in labels.reshape(-1)), np.int64, len(labels))
    capped: npt.NDArray[np.float32] = np.minimum(probabilities, PROBABILITY_CAP)
    return indices, capped


def build_cell_table(grid: CellGrid, model_bytes: bytes) -> CellTable:
    """Run the model once in every cell of ``grid`` and keep its answers."""
    numeric = {
        name: NumericEdges(np.asarray(axis.edges, dtype=np.float64), axis.float32)
        for name, axis in grid.numeric.items()
    }
    shell = CellTable(
        numeric,
        dict(grid.categories),
        np.zeros(grid.cells, np.int64),
        np.zeros((grid.cells, len(CLASSES)), np.float32),
    )
    feeds = shell.representative_columns(np.arange(grid.cells))
    labels, probabilities = _answers(_serving_session(model_bytes), feeds)
    logger.info("cell table: %d cells %s", grid.cells, grid.shape)
    return CellTable(numeric, dict(grid.categories), labels, probabilities)


def check_cell_table(
    table: CellTable, model_bytes: bytes, groups: dict[str, pd.DataFrame], seed: int = 0
) -> CellTableReport:
    """The gate: the table against ``model.onnx`` on every case, bit for bit."""
    cells = table.representative_columns(np.arange(table.cells))
    groups = {**groups, "cells": pd.DataFrame({k: v.reshape(-1) for k, v in cells.items()})}
    cases = pd.concat(groups.values(), ignore_index=True)[list(FEATURE_NAMES)]
    group_of = np.concatenate([[name] * len(frame) for name, frame in groups.items()])
    feeds = onnx_feeds(cases)
    session = _serving_session(model_bytes)
    labels, probabilities = _answers(session, feeds)
    looked_up = table.cells_of(feeds)
    bad = (table.label_indices[looked_up] != labels) | np.any(
        table.probabilities[looked_up].view(np.uint32) != probabilities.view(np.uint32), axis=1
    )

    single = np.flatnonzero(np.isin(group_of, ONE_AT_A_TIME_GROUPS))
    if len(single) > MAX_ONE_AT_A_TIME:
        single = np.sort(
            np.random.default_rng(seed).choice(single, MAX_ONE_AT_A_TIME, replace=False)
        )
    single_bad = np.zeros(len(cases), dtype=bool)
    for row in single:
        one = {name: column[row : row + 1] for name, column in feeds.items()}
        label, probability = _answers(session, one)
        cell = looked_up[row]
        single_bad[row] = bool(
            table.label_indices[cell] != label[0]
            or np.any(table.probabilities[cell].view(np.uint32) != probability[0].view(np.uint32))
        )
    failed = bad | single_bad
    first = cases[failed].head(10).copy()
    first.insert(0, "group", group_of[failed][:10])
    first["table"] = [CLASSES[i] for i in table.label_indices[looked_up[failed][:10]]]
    first["model"] = [CLASSES[i] for i in labels[failed][:10]]
    gate = CellTableGate(
        cases=len(cases),
        groups={name: len(frame) for name, frame in groups.items()},
        mismatches=int(bad.sum()),
        single_cases=len(single),
        single_mismatches=int(single_bad.sum()),
    )
    line = (
        f"cell table: {gate.mismatches} mismatches over {gate.cases} cases in batch and "
        f"{gate.single_mismatches} over {gate.single_cases} one at a time (bit for bit)"
    )
    report = CellTableReport(gate=gate, line=line, first_failures=first)
    logger.info(report.describe().splitlines()[0])
    return report


def cell_table_metadata(table: CellTable, data: bytes, report: CellTableReport) -> CellTableInfo:
    """What the metadata records of a gated table (its file bound by sha256)."""
    return CellTableInfo(
        sha256=sha256_hex(data),
        cells=table.cells,
        cells_per_input=dict(zip(FEATURE_NAMES, table.shape, strict=True)),
        gate=report.gate,
    )
