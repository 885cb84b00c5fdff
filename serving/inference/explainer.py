"""The explainer shipped beside a model: exact Shapley values per input and class, looked up.

``explainer.onnx`` takes the model's raw inputs, finds each patient's cell of the grid on which
the model is constant (with the model's own comparisons) and gathers the values computed at
export (``training/shapley.py``, docs/explanations.md). It is loaded with its model and checked
as strictly, so a hot reload swaps both at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from drugclf.artifact import (
    BASE_VALUES_OUTPUT,
    CELL_OUTPUT,
    EXPLAINER_FILE,
    VALUES_OUTPUT,
    ArtifactError,
    ArtifactMetadata,
)
from drugclf.contract import FEATURE_NAMES

# The values gathered from the table are the ones the export gate proved; these only catch an
# explainer that belongs to another model (its base values or efficiency would be off).
_BASE_TOLERANCE = 1e-12
EFFICIENCY_TOLERANCE = 1e-6


class Explainer:
    """One version's explainer session; immutable once loaded."""

    def __init__(self, session: ort.InferenceSession, metadata: ArtifactMetadata) -> None:
        explanations = metadata.explanations
        assert explanations is not None  # only built for versions that have one
        self.session = session
        self.explanations = explanations
        self._outputs = [VALUES_OUTPUT, CELL_OUTPUT]
        self._cell_output = [CELL_OUTPUT]
        self.base_values: npt.NDArray[np.float64] = np.asarray(
            [explanations.base_values[label] for label in metadata.classes], dtype=np.float64
        )

    def cells(self, feeds: dict[str, npt.NDArray[Any]]) -> list[int]:
        """Each patient's cell of the grid the model is constant on."""
        (cells,) = self.session.run(self._cell_output, feeds)
        found: list[int] = cells.reshape(-1).tolist()
        return found

    def explain(
        self, feeds: dict[str, npt.NDArray[Any]]
    ) -> tuple[npt.NDArray[np.float64], list[int]]:
        """Shapley values [patients, inputs, classes] and each patient's cell.

        The model answers the same for every patient of one cell.
        """
        values, cells = self.session.run(self._outputs, feeds)
        return values, cells.reshape(-1).tolist()

    def check(
        self,
        feeds: dict[str, npt.NDArray[Any]],
        probabilities: npt.NDArray[np.float32],
        where: Path,
    ) -> None:
        """Refuse an explainer that does not explain these served probabilities.

        Raises:
            ArtifactError: wrong outputs, base values other than the metadata's, or values
                that do not add up to the probabilities.
        """
        path = where / EXPLAINER_FILE
        try:
            values, base = self.session.run([VALUES_OUTPUT, BASE_VALUES_OUTPUT], feeds)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ArtifactError(f"{path} cannot explain a patient: {exc}") from exc
        expected = (len(probabilities), len(FEATURE_NAMES), len(self.base_values))
        if values.shape != expected or values.dtype != np.float64:
            raise ArtifactError(
                f"{path}: values are {values.dtype}{list(values.shape)}, "
                f"expected float64{list(expected)}"
            )
        if np.abs(base - self.base_values).max() > _BASE_TOLERANCE:
            raise ArtifactError(f"{path}: its base values are not the ones its metadata records")
        error = np.abs(base + values.sum(axis=1) - probabilities.astype(np.float64)).max()
        if error > EFFICIENCY_TOLERANCE:
            raise ArtifactError(
                f"{path}: base + values differ from the model's probabilities by {error:.2e}; "
                "it explains another model"
            )
