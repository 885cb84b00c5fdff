"""Exact interventional Shapley values of the exported model, for every cell of its input grid.

The exported model sees Age and Na_to_K only through comparisons with fixed values: its bin
edges (``fixed``, ``learned``) or the forest's split thresholds (``none``). Its output is
therefore constant on the cells of a finite grid (one axis per input: the intervals between
those values for the numbers, the categories for the rest), and so is every Shapley value.

The players are the five raw inputs and the background is the training rows (before SMOTE):
``v(S)(x) = mean over background rows b of f(x on S, b elsewhere)``. Since ``f`` depends on
cells only, ``v(S)`` is a contraction of the model's table over the grid with the background's
cell distribution, computed once per coalition (2^5 of them) for every cell at once.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from numpy.typing import NDArray
from sklearn.pipeline import Pipeline

from drugclf.artifact import PROBABILITIES_OUTPUT
from drugclf.contract import FEATURE_NAMES, FIELDS_BY_NAME, NUMERIC_FEATURES
from training.features import Binner
from training.parity import onnx_feeds

# The model's probabilities are capped at 1 when served (a unanimous forest's float32 votes
# can add up to 1.0000001); the explained values are those served ones.
PROBABILITY_CAP: Final = np.float32(1.0)
_LEQ: Final = b"BRANCH_LEQ"


@dataclass(frozen=True)
class NumericAxis:
    """How the model sees one number: ``cell = count(value > edge)``.

    ``float32``: the comparison happens after a cast to float32 (the forest's split thresholds
    of an unbinned feature); otherwise in float64 (the bin edges, as the exported binner does).
    """

    name: str
    edges: NDArray[np.float64]
    float32: bool

    @property
    def cells(self) -> int:
        """Number of cells on this axis."""
        return len(self.edges) + 1

    def cell_of(self, values: NDArray[np.float64]) -> NDArray[np.int64]:
        """The cell index of each value, compared as the model compares it."""
        column = values.astype(np.float32) if self.float32 else values.astype(np.float64)
        edges = self.edges.astype(np.float32) if self.float32 else self.edges
        counts: NDArray[np.int64] = (column.reshape(-1, 1) > edges.reshape(1, -1)).sum(axis=1)
        return counts.astype(np.int64)

    def representatives(self) -> NDArray[np.float64]:
        """One valid value inside each cell.

        A cell's upper edge (cells are right-closed), and for the top cell a value just above
        the last edge (for Age, whose edges are whole numbers, the edge + 1).
        """
        spec = FIELDS_BY_NAME[self.name]
        if spec.type == "integer":
            top = self.edges[-1] + 1 if len(self.edges) else float(spec.minimum or 0)
            return np.concatenate((self.edges, [top]))
        step_type = np.float32 if self.float32 else np.float64
        top = (
            float(np.nextafter(step_type(self.edges[-1]), step_type(np.inf)))
            if len(self.edges)
            else float(spec.maximum or 1.0)
        )
        # The smallest valid Na_to_K is above 0; an edge at 0 itself only happens with float32
        # thresholds, where the tiniest positive float64 rounds to 0.0 and so sits in cell 0.
        lows = np.where(self.edges > 0, self.edges, np.nextafter(0.0, 1.0))
        return np.concatenate((lows, [top]))


@dataclass(frozen=True)
class CellGrid:
    """The grid on which the model is constant: one axis per input, in the contract's order."""

    numeric: dict[str, NumericAxis]
    categories: dict[str, tuple[str, ...]]

    @property
    def shape(self) -> tuple[int, ...]:
        """Cells per input, in ``FEATURE_NAMES`` order."""
        return tuple(self.axis_size(name) for name in FEATURE_NAMES)

    @property
    def cells(self) -> int:
        """Number of cells."""
        return math.prod(self.shape)

    def axis_size(self, name: str) -> int:
        """Cells along one input's axis."""
        if name in self.numeric:
            return self.numeric[name].cells
        return len(self.categories[name])

    def cell_indices(self, frame: pd.DataFrame) -> NDArray[np.int64]:
        """Each row's index on every axis, shape [rows, inputs]."""
        columns = []
        for name in FEATURE_NAMES:
            values = frame[name].to_numpy()
            if name in self.numeric:
                columns.append(self.numeric[name].cell_of(values.astype(np.float64)))
            else:
                lookup = {value: i for i, value in enumerate(self.categories[name])}
                columns.append(np.fromiter((lookup[v] for v in values), np.int64, len(values)))
        return np.stack(columns, axis=1)

    def flat_indices(self, frame: pd.DataFrame) -> NDArray[np.int64]:
        """Each row's cell as one index into the grid flattened in C order."""
        indices = self.cell_indices(frame)
        flat: NDArray[np.int64] = np.ravel_multi_index(tuple(indices.T), self.shape)
        return flat

    def representatives(self) -> pd.DataFrame:
        """One patient per cell, in flat (C) order."""
        axes = [
            self.numeric[name].representatives()
            if name in self.numeric
            else np.asarray(self.categories[name], dtype=object)
            for name in FEATURE_NAMES
        ]
        mesh = np.meshgrid(*[np.arange(len(a)) for a in axes], indexing="ij")
        frame = pd.DataFrame(
            {
                name: axis[m.reshape(-1)]
                for name, axis, m in zip(FEATURE_NAMES, axes, mesh, strict=True)
            }
        )
        frame["Age"] = frame["Age"].astype(np.int64)
        frame["Na_to_K"] = frame["Na_to_K"].astype(np.float64)
        return frame


def _usable_edges(name: str, edges: NDArray[np.float64], float32: bool) -> NDArray[np.float64]:
    """The edges that split valid values, in the form the explainer compares them.

    An integer input is above ``e`` exactly when it is above ``floor(e)``, so Age's edges become
    whole numbers (every cell then holds at least one age). Edges that every valid value is
    above, or none is, split nothing and are dropped: each cell of the grid can be reached.
    """
    spec = FIELDS_BY_NAME[name]
    low, high = float(spec.minimum or 0.0), float(spec.maximum or 0.0)
    values = np.asarray(edges, dtype=np.float32 if float32 else np.float64).astype(np.float64)
    if spec.type == "integer":
        values = np.floor(values)
        keep = (values >= low) & (values < high)
    else:
        # Na_to_K > 0: an edge below 0 is below every value; float32 can round a tiny value to 0.
        keep = (values >= low if float32 else values > low) & (values < high)
    return np.unique(values[keep])


def forest_thresholds(model: onnx.ModelProto, column: int) -> NDArray[np.float64]:
    """The float32 split thresholds the exported forest uses on one of its input columns."""
    for node in model.graph.node:
        if node.op_type != "TreeEnsembleClassifier":
            continue
        attributes = {a.name: a for a in node.attribute}
        modes = list(attributes["nodes_modes"].strings)
        features = np.asarray(attributes["nodes_featureids"].ints)
        values = np.asarray(attributes["nodes_values"].floats, dtype=np.float32)
        branch = np.asarray([m != b"LEAF" for m in modes])
        if any(m not in (_LEQ, b"LEAF") for m in modes):
            raise ValueError("the forest uses a split mode other than BRANCH_LEQ")
        return np.unique(values[branch & (features == column)]).astype(np.float64)
    raise ValueError("the exported model has no TreeEnsembleClassifier")


def cell_grid(pipeline: Pipeline, model: onnx.ModelProto) -> CellGrid:
    """The grid of the exported model: its bin edges, or its forest's thresholds (``none``)."""
    features = pipeline.named_steps["features"]
    binners = {name: step for name, step, _ in features.transformers_ if isinstance(step, Binner)}
    names = list(features.get_feature_names_out())
    numeric = {}
    for name in NUMERIC_FEATURES:
        binner = binners[name]
        if binner.edges_ is not None:
            edges, float32 = np.asarray(binner.edges_, dtype=np.float64), False
        else:
            edges, float32 = forest_thresholds(model, names.index(f"{name}__{name}")), True
        numeric[name] = NumericAxis(name, _usable_edges(name, edges, float32), float32)
    categories = {
        name: tuple(FIELDS_BY_NAME[name].allowed or ())
        for name in FEATURE_NAMES
        if name not in numeric
    }
    return CellGrid(numeric=numeric, categories=categories)


def model_table(model_bytes: bytes, grid: CellGrid) -> NDArray[np.float64]:
    """The served probabilities in every cell, shape ``grid.shape + (classes,)``."""
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    (probabilities,) = session.run([PROBABILITIES_OUTPUT], onnx_feeds(grid.representatives()))
    capped: NDArray[np.float64] = np.minimum(probabilities, PROBABILITY_CAP).astype(np.float64)
    return capped.reshape(*grid.shape, -1)


def background_distribution(grid: CellGrid, background: pd.DataFrame) -> NDArray[np.float64]:
    """The share of background rows in each cell, shape ``grid.shape``."""
    counts = np.bincount(grid.flat_indices(background), minlength=grid.cells)
    shares: NDArray[np.float64] = (counts / len(background)).reshape(grid.shape)
    return shares


@dataclass(frozen=True)
class ShapleyTables:
    """Base values per class and Shapley values per cell, input and class."""

    base_values: NDArray[np.float64]
    """Shape [classes]: the mean served probability over the background."""
    values: NDArray[np.float64]
    """Shape ``grid.shape + (inputs, classes)``."""


def _weight(size: int, players: int) -> float:
    return math.factorial(size) * math.factorial(players - size - 1) / math.factorial(players)


def shapley_tables(table: NDArray[np.float64], background: NDArray[np.float64]) -> ShapleyTables:
    """Exact interventional Shapley values for every cell at once.

    ``v(S)(x_S) = sum over y of P(y on the other axes) * f(x on S, y elsewhere)``, with P the
    background's marginal on the axes outside S: one tensor contraction per coalition. Each
    value is then ``sum over S not holding i of w(|S|) * (v(S + i) - v(S))``, broadcast to the
    whole grid.
    """
    players = background.ndim
    letters = "abcdefghij"[:players]
    axes = range(players)
    coalition_values: dict[frozenset[int], NDArray[np.float64]] = {}
    for size in range(players + 1):
        for members in itertools.combinations(axes, size):
            inside = frozenset(members)
            outside = tuple(a for a in axes if a not in inside)
            marginal = background.sum(axis=members) if members else background
            kept = "".join(letters[a] for a in members)
            rest = "".join(letters[a] for a in outside)
            value = np.einsum(f"{letters}z,{rest}->{kept}z", table, marginal)
            # Back to the grid's full shape: size 1 on the axes the coalition does not hold.
            coalition_values[inside] = value.reshape(
                *[table.shape[a] if a in inside else 1 for a in axes], table.shape[-1]
            )
    values = np.zeros((*table.shape[:-1], players, table.shape[-1]), dtype=np.float64)
    for player in axes:
        others = [a for a in axes if a != player]
        for size in range(players):
            weight = _weight(size, players)
            for members in itertools.combinations(others, size):
                inside = frozenset(members)
                values[..., player, :] += weight * (
                    coalition_values[inside | {player}] - coalition_values[inside]
                )
    base = coalition_values[frozenset()].reshape(-1)
    return ShapleyTables(base_values=base, values=values)
