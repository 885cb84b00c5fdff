"""The cell table: the exported model's answer in every cell of the grid it is constant on.

The model sees Age and Na_to_K only through comparisons with fixed values (its bin edges, or an
unbinned forest's float32 thresholds) and the categories by name, so its output is constant on
the cells of a finite grid (``training/shapley.py``). Export runs ``model.onnx`` once in every
cell and keeps the answers here (``cells.npz``); the export gate proves, bit for bit, that a
lookup answers what ``model.onnx`` answers (``training/cell_table.py``), and serving checks it
again at load. A lookup is a few comparisons, where a forest walks a hundred trees.

``cell = count(value > edge)`` per number (after a cast to float32 for float32 edges, as the
forest compares), the category's position per category, flattened in C order over the inputs
in the contract's order.
"""

from __future__ import annotations

import io
import math
import zipfile
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from drugclf.contract import CLASSES, FEATURE_NAMES, FIELDS_BY_NAME, NUMERIC_FEATURES, Patient


class CellTableError(Exception):
    """A cell table file is unreadable or inconsistent."""


@dataclass(frozen=True)
class NumericEdges:
    """How the model compares one number: ``cell = count(value > edge)``."""

    edges: npt.NDArray[np.float64]
    """Sorted, unique; for a float32 axis, float32 values held exactly in float64."""
    float32: bool

    @property
    def cells(self) -> int:
        """Cells on this axis."""
        return len(self.edges) + 1

    def representatives(self) -> npt.NDArray[np.float64]:
        """One value in each cell: its upper edge, and just above the last edge for the top."""
        if not len(self.edges):
            return np.zeros(1)
        last = self.edges[-1]
        top = (
            float(np.nextafter(np.float32(last), np.float32(np.inf)))
            if self.float32
            else float(np.nextafter(last, np.inf))
        )
        return np.concatenate((self.edges, [top]))


_SUFFIX_EDGES: Final = "__edges"
_SUFFIX_FLOAT32: Final = "__float32"
_SUFFIX_CATEGORIES: Final = "__categories"


class CellTable:
    """Labels and probabilities per cell, and the comparisons that find a patient's cell.

    Immutable: the probabilities array is read-only, so an answer's row can be handed out as a
    view (a write to it raises instead of changing later answers).
    """

    def __init__(
        self,
        numeric: dict[str, NumericEdges],
        categories: dict[str, tuple[str, ...]],
        labels: npt.NDArray[np.int64],
        probabilities: npt.NDArray[np.float32],
    ) -> None:
        if set(numeric) != set(NUMERIC_FEATURES) or set(numeric) | set(categories) != set(
            FEATURE_NAMES
        ):
            raise CellTableError(
                f"the table's inputs {sorted(numeric)} + {sorted(categories)} are not the "
                f"contract's {list(FEATURE_NAMES)}"
            )
        for name, axis in numeric.items():
            if len(axis.edges) and not bool(np.all(np.diff(axis.edges) > 0)):
                raise CellTableError(f"the {name} edges are not sorted and unique")
        for name, values in categories.items():
            if sorted(values) != sorted(FIELDS_BY_NAME[name].allowed or ()):
                raise CellTableError(f"the {name} categories {list(values)} are not the contract's")
        self.numeric = numeric
        self.categories = categories
        self.shape: tuple[int, ...] = tuple(
            numeric[name].cells if name in numeric else len(categories[name])
            for name in FEATURE_NAMES
        )
        self.cells = math.prod(self.shape)
        if probabilities.shape != (self.cells, len(CLASSES)) or probabilities.dtype != np.float32:
            raise CellTableError(
                f"probabilities are {probabilities.dtype}{list(probabilities.shape)}, expected "
                f"float32{[self.cells, len(CLASSES)]}"
            )
        if (
            labels.shape != (self.cells,)
            or labels.dtype.kind not in "iu"
            or not bool(np.all((labels >= 0) & (labels < len(CLASSES))))
        ):
            raise CellTableError(f"labels must be {self.cells} whole class indices")
        if not bool(np.all((probabilities >= 0) & (probabilities <= 1))):
            raise CellTableError("probabilities must be numbers from 0 to 1")
        self.probabilities = np.array(probabilities, dtype=np.float32)
        self.probabilities.setflags(write=False)
        self.label_indices = np.array(labels, dtype=np.int64)
        self.label_indices.setflags(write=False)
        self._labels: list[str] = [CLASSES[i] for i in self.label_indices.tolist()]
        self._class_names = np.asarray(CLASSES, dtype=object)
        # What the hot path needs, worked out once: each axis's stride in the flat index, the
        # edges as Python floats, each category's offset (its position times its stride).
        strides: dict[str, int] = dict(
            zip(FEATURE_NAMES, np.cumprod((*self.shape[1:], 1)[::-1])[::-1].tolist(), strict=True)
        )
        self._strides: dict[str, int] = strides
        self._age: tuple[list[float], bool] = (
            self.numeric["Age"].edges.tolist(),
            self.numeric["Age"].float32,
        )
        self._na_to_k: tuple[list[float], bool] = (
            self.numeric["Na_to_K"].edges.tolist(),
            self.numeric["Na_to_K"].float32,
        )
        self._age_stride: int = strides["Age"]
        self._na_to_k_stride: int = strides["Na_to_K"]
        self._offsets: dict[str, dict[str, int]] = {
            name: {value: i * strides[name] for i, value in enumerate(values)}
            for name, values in categories.items()
        }
        self._sex, self._bp, self._cholesterol = (
            self._offsets["Sex"],
            self._offsets["BP"],
            self._offsets["Cholesterol"],
        )
        # The batch path compares in the axis's own precision, as the model does.
        self._batch_edges = {
            name: axis.edges.astype(np.float32 if axis.float32 else np.float64)
            for name, axis in numeric.items()
        }

    def cell_of(self, patient: Patient) -> int:
        """The flat cell of one patient."""
        age_edges, age32 = self._age
        na_edges, na32 = self._na_to_k
        age: float = patient.Age
        na_to_k = patient.Na_to_K
        if age32:
            age = float(np.float32(age))
        if na32:
            na_to_k = float(np.float32(na_to_k))
        # bisect_left counts the edges strictly below the value: count(value > edge).
        return (
            bisect_left(age_edges, age) * self._age_stride
            + self._sex[patient.Sex]
            + self._bp[patient.BP]
            + self._cholesterol[patient.Cholesterol]
            + bisect_left(na_edges, na_to_k) * self._na_to_k_stride
        )

    def cells_of(self, columns: dict[str, npt.NDArray[Any]]) -> npt.NDArray[np.int64]:
        """The flat cell of every patient of a batch given as [N, 1] input columns."""
        flat = np.zeros(len(columns[FEATURE_NAMES[0]]), dtype=np.int64)
        for name, column in columns.items():
            values = column.reshape(-1)
            edges = self._batch_edges.get(name)
            if edges is not None:
                index = np.searchsorted(edges, values.astype(edges.dtype), side="left")
                flat += index * self._strides[name]
            else:
                offsets = self._offsets[name]
                flat += np.fromiter((offsets[v] for v in values), np.int64, len(values))
        return flat

    def predict_one(self, patient: Patient) -> tuple[list[str], npt.NDArray[np.float32]]:
        """One patient's label and its probabilities row ([1, classes], a read-only view)."""
        cell = self.cell_of(patient)
        return [self._labels[cell]], self.probabilities[cell : cell + 1]

    def predict(self, patients: Sequence[Patient]) -> tuple[list[str], npt.NDArray[np.float32]]:
        """Labels and probabilities of a batch, in its order."""
        cells = [self.cell_of(p) for p in patients]
        labels = self._labels
        return [labels[c] for c in cells], self.probabilities[cells]

    def predict_columns(
        self, columns: dict[str, npt.NDArray[Any]]
    ) -> tuple[npt.NDArray[Any], npt.NDArray[np.float32]]:
        """Labels (object array) and probabilities of a batch given as input columns."""
        cells = self.cells_of(columns)
        return self._class_names[self.label_indices[cells]], self.probabilities[cells]

    def representative_columns(self, cells: npt.NDArray[np.int64]) -> dict[str, npt.NDArray[Any]]:
        """Model inputs ([N, 1] columns) for one patient inside each of ``cells``."""
        indices = np.unravel_index(cells, self.shape)
        out: dict[str, npt.NDArray[Any]] = {}
        for name, index in zip(FEATURE_NAMES, indices, strict=True):
            if name in self.numeric:
                values = self.numeric[name].representatives()[index]
                if FIELDS_BY_NAME[name].type == "integer":
                    out[name] = np.ceil(values).astype(np.int64).reshape(-1, 1)
                else:
                    out[name] = values.astype(np.float64).reshape(-1, 1)
            else:
                names = np.asarray(self.categories[name], dtype=object)
                out[name] = names[index].reshape(-1, 1)
        return out

    def to_bytes(self) -> bytes:
        """The table as ``cells.npz`` (numpy arrays only: loading it runs no pickle)."""
        arrays: dict[str, npt.NDArray[Any]] = {
            "classes": np.asarray(CLASSES),
            "labels": self.label_indices,
            "probabilities": self.probabilities,
        }
        for name, axis in self.numeric.items():
            arrays[name + _SUFFIX_EDGES] = axis.edges
            arrays[name + _SUFFIX_FLOAT32] = np.asarray(axis.float32)
        for name, values in self.categories.items():
            arrays[name + _SUFFIX_CATEGORIES] = np.asarray(values)
        buffer = io.BytesIO()
        np.savez(buffer, allow_pickle=False, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> CellTable:
        """Read ``cells.npz``.

        Raises:
            CellTableError: not a table file, or one that does not fit the contract.
        """
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise CellTableError(f"not a cell table: {exc}") from exc
        try:
            if tuple(arrays["classes"].tolist()) != CLASSES:
                raise CellTableError(
                    f"its classes {arrays['classes'].tolist()} are not the contract's"
                )
            numeric = {
                name: NumericEdges(
                    np.asarray(arrays[name + _SUFFIX_EDGES], dtype=np.float64),
                    bool(arrays[name + _SUFFIX_FLOAT32]),
                )
                for name in NUMERIC_FEATURES
            }
            categories = {
                name: tuple(str(v) for v in arrays[name + _SUFFIX_CATEGORIES].tolist())
                for name in FEATURE_NAMES
                if name not in NUMERIC_FEATURES
            }
            return cls(numeric, categories, arrays["labels"], arrays["probabilities"])
        except KeyError as exc:
            raise CellTableError(f"it lacks the array {exc.args[0]}") from exc
