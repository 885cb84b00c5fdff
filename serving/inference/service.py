"""The data plane: decode, choose the model, predict, count, record, encode.

Every protocol that answers predictions (the REST ``/predict`` route today, others later) calls
``PredictionService``; routes only translate HTTP to these calls and back. The service knows no
HTTP: it is built and tested without a server.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterable, Sequence
from typing import Final, Literal, Protocol

import numpy as np
import numpy.typing as npt

from drugclf.cells import CellTable
from drugclf.contract import Patient
from serving.http.errors import ModelUnavailableError
from serving.http.metrics import ServerMetrics
from serving.inference.batching import MicroBatcher
from serving.inference.codec import PatientCodec
from serving.inference.holder import ModelHolder
from serving.inference.model import DrugModel, Predictions
from serving.inference.schemas import HealthResponse, ModelInfoResponse, ReadyResponse

Role = Literal["primary", "candidate", "shadow"]
"""Why a version predicted: it answered as the primary or as a candidate, or listened."""
Headers = Iterable[tuple[bytes, bytes]]


class PredictionRecorder(Protocol):
    """Where answered requests go (the prediction log); inference does not depend on it."""

    def record(  # noqa: PLR0917 - the log's hot-path signature
        self,
        request_id: str | None,
        version: str,
        body: bytes,
        labels: Sequence[str],
        probabilities: npt.NDArray[np.float32] | bytes,
        started: float,
        role: Role = "primary",
    ) -> None:
        """Keep one request's answers (``body`` is the JSON the codec accepted).

        ``probabilities`` may come as the float32 bytes ``ndarray.tobytes()`` would give.
        """

    def record_burst(  # noqa: PLR0917 - the same order as record()
        self,
        version: str,
        request_ids: list[str | None],
        batch_sizes: list[int],
        labels: Sequence[str],
        probabilities: npt.NDArray[np.float32],
        seconds: float,
        role: Role = "shadow",
    ) -> None:
        """Keep the answers of one model call over several requests, without their inputs.

        ``batch_sizes[i]`` of the answers, in order, are request ``request_ids[i]``'s; called
        from any thread (the shadows' own), once per call rather than once per request.
        """


class Choice:
    """The version a traffic policy chose for one request, and what listens after the answer."""

    __slots__ = ("model", "role", "shadows")

    def __init__(self, model: DrugModel, role: Role, shadows: tuple[DrugModel, ...] = ()) -> None:
        self.model = model
        self.role = role
        self.shadows = shadows


class ModelChooser(Protocol):
    """Which model answers a request: the traffic policy (``serving.experiments``) plugs in here."""

    def choose(self, headers: Headers) -> Choice | None:
        """The version for a request with these headers (None: the served model, no policy)."""

    def after_answer(
        self,
        choice: Choice,
        patients: Patient | list[Patient],
        request_id: str | None,
    ) -> None:
        """Queue the request for ``choice.shadows`` once it is answered (never blocks)."""


class CellAnswer:
    """One version's answer for every patient in one cell of its table, encoded once.

    A version answers a single patient from its table's cell (``drugclf.cells``): the label,
    the probabilities and so the encoded answer are the same for every patient of the cell.
    """

    __slots__ = ("encoded", "encodings", "labels", "probabilities")

    def __init__(self, labels: list[str], probabilities: bytes, encoded: bytes) -> None:
        self.labels = labels
        self.probabilities = probabilities
        """The float32 row as ``ndarray.tobytes()`` gives it (what the log keeps)."""
        self.encoded = encoded
        """The ``/predict`` answer."""
        self.encodings: dict[Hashable, tuple[bytes, int | None]] = {}
        """Other protocols' answers, by what shapes them (the V2 outputs asked for), filled by
        those protocols: they go when the version's answers go."""


CELL_ANSWER_VERSIONS: Final = 16
"""Versions whose cell answers are kept (those in use at once are far fewer)."""


class Answer:
    """An encoded answer and the version of the model that produced it."""

    __slots__ = ("body", "model_version")

    def __init__(self, body: bytes, model_version: str) -> None:
        self.body = body
        self.model_version = model_version

    @property
    def version_bytes(self) -> bytes:
        """The version as a header value."""
        return self.model_version.encode()


def model_info(model: DrugModel, refused: str | None = None) -> ModelInfoResponse:
    """The ``/model/info`` answer for a model (``refused``: the version it was not replaced by)."""
    meta = model.metadata
    return ModelInfoResponse(
        model_type=meta.model_type,
        model_version=meta.version,
        n_estimators=meta.params.n_estimators,
        max_leaf_nodes=meta.params.max_leaf_nodes,
        binning=meta.params.binning,
        smote=meta.params.smote,
        classes=list(meta.classes),
        features=list(meta.features),
        metrics=meta.metrics,
        created_at=meta.created_at,
        data_sha256=meta.data_sha256,
        data_rows=meta.data_rows,
        git_commit=meta.git_commit,
        parity=meta.parity,
        parity_passed=meta.parity.passed,
        library_versions=meta.library_versions,
        opset=meta.opset,
        model_sha256=meta.model_sha256,
        current_version=refused or meta.version,
        reload_refused=refused is not None,
    )


class PredictionService:
    """Answers prediction requests with the model the holder serves now.

    Args:
        holder: the worker's model holder (hot reload swaps its model).
        codec: strict decoding of patients, fast encoding of answers.
        metrics: predictions are counted by class.
        recorder: the prediction log, or None when it is off.
        micro_batching: let concurrent single-patient requests share one model call.
        chooser: the traffic policy that picks a version per request (None: always the served
            model).
    """

    def __init__(
        self,
        holder: ModelHolder,
        codec: PatientCodec,
        metrics: ServerMetrics,
        recorder: PredictionRecorder | None = None,
        *,
        micro_batching: bool = True,
        chooser: ModelChooser | None = None,
    ) -> None:
        self.holder = holder
        self.codec = codec
        self.metrics = metrics
        self.recorder = recorder
        self.chooser = chooser
        self._batcher = MicroBatcher(lambda: self.model) if micro_batching else None
        self._info: dict[tuple[str, str | None], bytes] = {}
        self._cell_answers: dict[str, dict[int, CellAnswer]] = {}

    @property
    def model(self) -> DrugModel:
        """The model answering now.

        Raises:
            ModelUnavailableError: none is loaded (only while starting or stopping).
        """
        model = self.holder.model
        if model is None:
            raise ModelUnavailableError("no model is loaded yet")
        return model

    def choose(self, headers: Headers) -> Choice | None:
        """The version the traffic policy picks for a request (None: the served model)."""
        return self.chooser.choose(headers) if self.chooser is not None else None

    async def predict(
        self, patients: Patient | list[Patient], chosen: DrugModel | None = None
    ) -> tuple[DrugModel, Predictions]:
        """Predict one patient (micro-batched) or a batch, and count the predicted classes.

        ``chosen``: the version ``choose`` picked (None: the served model). A batch goes to one
        version, and the micro-batcher never mixes versions in one call.
        """
        if isinstance(patients, Patient):
            model = chosen or self.model
            # A lookup costs the same alone or in a burst: only a session gains from sharing.
            if self._batcher is not None and model.table is None:
                model, result = await self._batcher.predict(patients, chosen)
            else:
                result = model.predict_one(patients)
            self.metrics.observe_prediction(result.labels[0])
        else:
            model = chosen or self.model
            result = model.predict(patients)
            self.metrics.observe_predictions(result.labels)
        return model, result

    def answered(
        self,
        choice: Choice | None,
        patients: Patient | list[Patient],
        request_id: str | None,
    ) -> None:
        """After an answer: queue it for the policy's shadows (any protocol calls this)."""
        if choice is not None and choice.shadows and self.chooser is not None:
            self.chooser.after_answer(choice, patients, request_id)

    async def answer_json(
        self, body: bytes, request_id: str | None, headers: Headers = ()
    ) -> Answer:
        """The JSON answer to a JSON request body (one patient or an array), logged.

        ``headers`` carry the traffic policy's sticky key, if it has one.

        Raises:
            MalformedBodyError, BatchSizeError, InvalidInputError: the body is refused.
            ModelUnavailableError: no model is loaded.
        """
        started = time.perf_counter()
        patients = self.codec.decode(body)
        choice = self.choose(headers) if self.chooser is not None else None
        chosen = choice.model if choice is not None else None
        labels: Sequence[str]
        probabilities: npt.NDArray[np.float32] | bytes
        model = chosen or self.model
        cell = self.cell_answer(model, patients) if isinstance(patients, Patient) else None
        if cell is not None:
            encoded, labels, probabilities = cell.encoded, cell.labels, cell.probabilities
        else:
            model, result = await self.predict(patients, chosen)
            labels, probabilities = result.labels, result.probabilities
            if isinstance(patients, Patient):
                encoded = self.codec.encode_one(labels[0], result.probabilities[0], model.version)
            else:
                encoded = self.codec.encode_many(labels, result.probabilities, model.version)
        role: Role = choice.role if choice is not None else "primary"
        self.metrics.observe_version(
            model.version, role, len(labels), time.perf_counter() - started
        )
        if self.recorder is not None:
            self.recorder.record(
                request_id, model.version, body, labels, probabilities, started, role
            )
        if choice is not None and choice.shadows:
            self.answered(choice, patients, request_id)
        return Answer(encoded, model.version)

    def cell_answer(self, model: DrugModel, patient: Patient) -> CellAnswer | None:
        """``model``'s answer for one patient from its table, counted (None: it has no table).

        Most requests: one patient, a version with a table. The cell's answer is encoded once
        per version; the micro-batcher has nothing to gain (see ``predict``).
        """
        table = model.table
        if table is None:
            return None
        cell = self._cell_answer(model, table, patient)
        self.metrics.observe_prediction(cell.labels[0])
        return cell

    def _cell_answer(self, model: DrugModel, table: CellTable, patient: Patient) -> CellAnswer:
        """``model``'s answer for ``patient``'s cell of ``table``, encoded at the cell's first use.

        A miss asks the model itself (``predict_one``, which reads the same table), so what the
        model answers and what the cache keeps cannot part.
        """
        cell = table.cell_of(patient)
        answers = self._cell_answers.get(model.version)
        if answers is None:
            if len(self._cell_answers) >= CELL_ANSWER_VERSIONS:
                self._cell_answers.clear()  # versions come and go with reloads: start again
            answers = self._cell_answers[model.version] = {}
        answer = answers.get(cell)
        if answer is None:
            result = model.predict_one(patient)
            labels = result.labels
            probabilities = np.asarray(result.probabilities, dtype=np.float32)
            answer = answers[cell] = CellAnswer(
                labels,
                probabilities.tobytes(),
                self.codec.encode_one(labels[0], probabilities[0], model.version),
            )
        return answer

    def model_info(self) -> bytes:
        """The encoded ``/model/info`` answer of the served model (encoded once per version)."""
        model = self.model
        key = (model.version, self.holder.refused)
        body = self._info.get(key)
        if body is None:
            body = self._info[key] = self.codec.encode(model_info(model, self.holder.refused))
        return body

    def health(self) -> bytes:
        """The encoded liveness answer: whether and which model is loaded."""
        holder = self.holder
        model = holder.model
        return self.codec.encode(
            HealthResponse(
                status="healthy",
                model_loaded=model is not None,
                model_version=model.version if model is not None else None,
                current_version=holder.current_version,
                reload_refused=holder.refused is not None,
            )
        )

    def readiness(self) -> tuple[bytes, bool]:
        """The encoded readiness answer, and whether a model can answer."""
        model = self.holder.model
        body = ReadyResponse(
            status="ready" if model else "not_ready",
            model_version=model.version if model else None,
        )
        return self.codec.encode(body), model is not None
