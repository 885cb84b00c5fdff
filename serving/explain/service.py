"""Explanations of predictions: decode, predict and explain with one model, encode.

The served model and its explainer come from the same ``DrugModel`` object, taken once per
request, so a hot reload never pairs one version's values with another's probabilities.
Bodies are decoded by the ``/predict`` codec: the same validation and errors.
"""

from __future__ import annotations

from typing import ClassVar, Final, cast

from drugclf.contract import FEATURE_NAMES, Patient
from serving.explain.batching import CellBatcher
from serving.explain.schemas import ClassValues, ExplanationResponse, ExplanationsInfo, InputValues
from serving.http.errors import ErrorExample, ModelUnavailableError, ServingError
from serving.inference.codec import PatientCodec
from serving.inference.explainer import Explainer
from serving.inference.holder import ModelHolder
from serving.inference.model import DrugModel, columns
from serving.inference.schemas import Probabilities
from serving.inference.service import Answer

METHOD = "exact interventional Shapley values over the training rows (before SMOTE)"
ANSWER_CACHE_SIZE: Final = 4096
"""Encoded single-patient explanations kept per worker (emptied when full, like /predict's)."""


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


class ExplanationService:
    """Answers explanation requests with the model the holder serves now."""

    def __init__(self, holder: ModelHolder, codec: PatientCodec) -> None:
        self.holder = holder
        self.codec = codec
        self._info: dict[str, bytes] = {}
        self._answers: dict[int, bytes] = {}
        """Encoded answers by cell, for ``_answers_version``."""
        self._answers_version: str | None = None
        self._batcher = CellBatcher()

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

    async def answer_json(self, body: bytes) -> Answer:
        """The JSON answer to a ``/predict``-shaped body: one explanation per patient.

        Raises:
            MalformedBodyError, BatchSizeError, InvalidInputError: the body is refused.
            ModelUnavailableError, ExplanationsUnavailableError: nothing to explain with.
        """
        patients = self.codec.decode(body)
        model, explainer = self._explained()
        # The model answers the same for every patient of a cell (that is what makes the values
        # exact), so an encoded answer serves its whole cell: a request whose cell was answered
        # before costs a share of one explainer run (cells only) and no run of the forest.
        # The cache is this version's, taken before any await: a hot reload meanwhile starts
        # another one, and never hands this request an answer of another grid.
        cache = self._cache(model.version)
        if isinstance(patients, Patient):
            cell = await self._batcher.cell(explainer, patients)
            answer = cache.get(cell) or self._encode(model, explainer, [patients], cache)[0]
            return Answer(answer, model.version)
        cached = [cache.get(cell) for cell in explainer.cells(columns(patients))]
        answers = (
            self._encode(model, explainer, patients, cache)
            if None in cached
            else cast("list[bytes]", cached)
        )
        return Answer(b"[" + b",".join(answers) + b"]", model.version)

    def _cache(self, version: str) -> dict[int, bytes]:
        """The encoded answers by cell of ``version`` (a new, empty one for a new version)."""
        if version != self._answers_version:
            self._answers = {}
            self._answers_version = version
        return self._answers

    def _encode(
        self,
        model: DrugModel,
        explainer: Explainer,
        patients: list[Patient],
        cache: dict[int, bytes],
    ) -> list[bytes]:
        """Predict, explain and encode each patient, keeping the answers in ``cache`` by cell."""
        predictions = (
            model.predict_one(patients[0]) if len(patients) == 1 else model.predict(patients)
        )
        values, cells = explainer.explain(columns(patients))
        base = ClassValues(*explainer.base_values.tolist())
        encoded = []
        for i, cell in enumerate(cells):
            answer = cache.get(cell)
            if answer is None:
                if len(cache) >= ANSWER_CACHE_SIZE:
                    cache.clear()
                answer = cache[cell] = self.codec.encode(
                    ExplanationResponse(
                        prediction=predictions.labels[i],
                        probabilities=Probabilities(*predictions.probabilities[i].tolist()),
                        base_values=base,
                        values=InputValues(*(ClassValues(*row) for row in values[i].tolist())),
                        model_version=model.version,
                    )
                )
            encoded.append(answer)
        return encoded

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
