"""Explanations of predictions: decode, predict and explain with one model, encode.

The served model and its explainer come from the same ``DrugModel`` object, taken once per
request, so a hot reload never pairs one version's values with another's probabilities.
Bodies are decoded by the ``/predict`` codec: the same validation and errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from drugclf.contract import FEATURE_NAMES, Patient
from serving.explain.schemas import ClassValues, ExplanationResponse, ExplanationsInfo, InputValues
from serving.http.errors import ErrorExample, ModelUnavailableError, ServingError
from serving.inference.codec import PatientCodec
from serving.inference.explainer import Explainer
from serving.inference.holder import ModelHolder
from serving.inference.model import DrugModel, Predictions, columns
from serving.inference.schemas import Probabilities
from serving.inference.service import Answer

METHOD = "exact interventional Shapley values over the training rows (before SMOTE)"


class ExplanationsUnavailableError(ServingError):
    """The served model was published without explanations (``message`` says why).

    Predictions still work; export the model again to explain them.
    """

    status_code = 409
    code = "explanations_unavailable"
    example: ClassVar[ErrorExample] = ErrorExample(
        "model 20261127-101500-3f9a2c has no explanations: it was exported before they "
        "existed; export it again (POST /predict still answers)"
    )


@dataclass(frozen=True, slots=True)
class Explained:
    """Predictions and their Shapley values, made by one model version."""

    model: DrugModel
    predictions: Predictions
    values: npt.NDArray[np.float64]
    """Shape [patients, inputs, classes]."""
    base_values: npt.NDArray[np.float64]
    """Shape [classes]."""


class ExplanationService:
    """Answers explanation requests with the model the holder serves now."""

    def __init__(self, holder: ModelHolder, codec: PatientCodec) -> None:
        self.holder = holder
        self.codec = codec
        self._info: dict[str, bytes] = {}

    def _explained(self) -> tuple[DrugModel, Explainer]:
        model = self.holder.model
        if model is None:
            raise ModelUnavailableError("no model is loaded yet")
        if model.explainer is None:
            why = model.metadata.explanations_skipped or (
                "it was exported before they existed; export it again"
            )
            raise ExplanationsUnavailableError(
                f"model {model.version} has no explanations: {why} (POST /predict still answers)"
            )
        return model, model.explainer

    def explain(self, patients: Patient | list[Patient]) -> Explained:
        """Predictions and Shapley values, from one model.

        Raises:
            ModelUnavailableError: no model is loaded.
            ExplanationsUnavailableError: the served model has no explainer.
        """
        model, explainer = self._explained()
        batch = [patients] if isinstance(patients, Patient) else patients
        predictions = (
            model.predict_one(patients) if isinstance(patients, Patient) else model.predict(batch)
        )
        return Explained(
            model, predictions, explainer.values(columns(batch)), explainer.base_values
        )

    def answer_json(self, body: bytes) -> Answer:
        """The JSON answer to a ``/predict``-shaped body: one explanation per patient.

        Raises:
            MalformedBodyError, BatchSizeError, InvalidInputError: the body is refused.
            ModelUnavailableError, ExplanationsUnavailableError: nothing to explain with.
        """
        patients = self.codec.decode(body)
        explained = self.explain(patients)
        version = explained.model.version
        base = ClassValues(*explained.base_values.tolist())
        answers = [
            ExplanationResponse(
                prediction=label,
                probabilities=Probabilities(*probabilities),
                base_values=base,
                values=InputValues(*(ClassValues(*row) for row in rows)),
                model_version=version,
            )
            for label, probabilities, rows in zip(
                explained.predictions.labels,
                explained.predictions.probabilities.tolist(),
                explained.values.tolist(),
                strict=True,
            )
        ]
        encoded = self.codec.encode(answers[0] if isinstance(patients, Patient) else answers)
        return Answer(encoded, version)

    def info(self) -> bytes:
        """The encoded ``/model/explanations`` answer of the served model (once per version).

        Raises:
            ModelUnavailableError, ExplanationsUnavailableError: nothing to describe.
        """
        model, explainer = self._explained()
        body = self._info.get(model.version)
        if body is None:
            e = explainer.explanations
            body = self._info[model.version] = self.codec.encode(
                ExplanationsInfo(
                    model_version=model.version,
                    method=METHOD,
                    players=list(FEATURE_NAMES),
                    background_rows=e.background_rows,
                    background_sha256=e.background_sha256,
                    explainer_sha256=e.explainer_sha256,
                    cells=e.cells,
                    cells_per_input=e.cells_per_input,
                    base_values=e.base_values,
                    importance=e.importance,
                    gate=e.gate,
                    gate_passed=e.gate.passed,
                )
            )
        return body
