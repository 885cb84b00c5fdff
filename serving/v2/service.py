"""The Open Inference Protocol's answers, on the one data plane (``PredictionService``).

An inference request is decoded into the contract's patients (``TensorCodec``), answered by the
same service as ``/predict`` (micro-batching, class counts, the prediction log with the request's
id, the traffic policy), and encoded as the protocol's tensors. Only the translation differs, so
a V2 answer is bit for bit the ``/predict`` answer for the same patients.
"""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import msgspec
import numpy as np
import numpy.typing as npt

from drugclf.contract import Patient
from serving.http.errors import ModelNotFoundError
from serving.http.validation import shown
from serving.inference.model import DrugModel
from serving.inference.service import CellAnswer, Choice, Headers, PredictionService, Role
from serving.v2.codec import Decoded, TensorCodec, input_metadata, output_metadata
from serving.v2.schemas import (
    LiveResponse,
    ModelMetadataResponse,
    ModelReadyResponse,
    ReadyResponse,
    ServerMetadataResponse,
)
from serving.v2.versions import VersionCache

PLATFORM: Final = "onnx_onnxv1"
EXTENSIONS: Final = ["binary_tensor_data"]
"""Protocol extensions this server speaks (Triton's name for the binary tensor data one)."""


def _server_version() -> str:
    try:
        return importlib.metadata.version("drug-classifier")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a bare tree
        return "0"


@dataclass(frozen=True, slots=True)
class Inference:
    """An encoded inference answer and the version that answered.

    ``header_length`` is the JSON header's length when binary outputs follow it, else None.
    """

    body: bytes
    header_length: int | None
    model_version: str


class OpenInference:
    """The V2 routes' service: metadata, readiness and inference for one model name.

    Args:
        predictions: the data plane ``/predict`` uses.
        versions: the other published versions a request may name.
        codec: tensors to patients and predictions to tensors.
        model_name: the name this server answers to (``DRUGCLF_MODEL_NAME``).
    """

    def __init__(
        self,
        predictions: PredictionService,
        versions: VersionCache,
        codec: TensorCodec,
        model_name: str,
    ) -> None:
        self.predictions = predictions
        self.versions = versions
        self.codec = codec
        self.model_name = model_name
        self._server = codec.encode_value(
            ServerMetadataResponse(model_name, _server_version(), EXTENSIONS)
        )
        self._live = codec.encode_value(LiveResponse(live=True))

    def check_name(self, name: str) -> None:
        """Refuse a model name this server does not serve.

        Raises:
            ModelNotFoundError: any other name.
        """
        if name != self.model_name:
            raise ModelNotFoundError(
                f"unknown model {shown(name)} (this server serves '{self.model_name}')",
                field="model_name",
            )

    def server_metadata(self) -> bytes:
        """``GET /v2``."""
        return self._server

    def live(self) -> bytes:
        """``GET /v2/health/live``."""
        return self._live

    def ready(self) -> tuple[bytes, bool]:
        """``GET /v2/health/ready``: whether the served model is loaded."""
        ready = self.predictions.holder.model is not None
        return self.codec.encode_value(ReadyResponse(ready=ready)), ready

    async def model_ready(self, name: str, version: str | None) -> bytes:
        """``GET .../ready``: the model (or that version) can answer; loads the version.

        Raises:
            ModelNotFoundError, VersionNotFoundError: no such model or servable version.
            ModelUnavailableError: no model is loaded yet.
        """
        self.check_name(name)
        model = await self.versions.get(version) if version else self.predictions.model
        return self.codec.encode_value(ModelReadyResponse(name, True, model.version))

    async def model_metadata(self, name: str, version: str | None) -> bytes:
        """``GET /v2/models/{name}[/versions/{version}]``: versions, platform, tensors.

        Raises:
            ModelNotFoundError, VersionNotFoundError: no such model or servable version.
        """
        self.check_name(name)
        if version is not None:
            await self.versions.get(version)
        return self.codec.encode_value(
            ModelMetadataResponse(
                name=name,
                versions=self.versions.servable(),
                platform=PLATFORM,
                inputs=input_metadata(),
                outputs=output_metadata(),
            )
        )

    async def answering(
        self, version: str | None, headers: Headers
    ) -> tuple[DrugModel | None, Choice | None]:
        """Which model answers a request: the one decision, in one place.

        A version in the path is that version. Without one, the traffic policy chooses, as for
        ``/predict`` (None: the served model).
        """
        if version is not None:
            return await self.versions.get(version), None
        choice = self.predictions.choose(headers)
        return (choice.model if choice is not None else None), choice

    async def infer(
        self,
        name: str,
        version: str | None,
        body: bytes,
        *,
        header_length: str | None,
        headers: Headers,
        request_id: str | None,
    ) -> Inference:
        """Decode, choose, predict, count, record, encode: one inference request.

        Raises:
            ModelNotFoundError, VersionNotFoundError: no such model or servable version.
            MalformedBodyError, InferenceHeaderError, InvalidTensorError: the body is refused.
            ModelUnavailableError: no model is loaded.
        """
        started = time.perf_counter()
        self.check_name(name)
        decoded = self.codec.decode(body, header_length)
        chosen, choice = await self.answering(version, headers)
        patients: Patient | list[Patient] = (
            decoded.patients[0] if len(decoded.patients) == 1 else decoded.patients
        )
        service = self.predictions
        labels: Sequence[str]
        probabilities: npt.NDArray[np.float32] | bytes
        model = chosen or service.model
        cell = service.cell_answer(model, patients) if isinstance(patients, Patient) else None
        if cell is not None:
            labels, probabilities = cell.labels, cell.probabilities
            encoded, length = self._cell_encoded(cell, decoded, name, model.version)
        else:
            model, result = await service.predict(patients, chosen)
            labels, probabilities = result.labels, result.probabilities
            encoded, length = self.codec.encode(
                decoded, labels, result.probabilities, name, model.version
            )
        # The log and the metrics see the request as /predict would have received it.
        role: Role = choice.role if choice is not None else "primary"
        service.metrics.observe_version(
            model.version, role, len(labels), time.perf_counter() - started
        )
        if service.recorder is not None:
            service.recorder.record(
                request_id,
                model.version,
                msgspec.json.encode(patients),
                labels,
                probabilities,
                started,
                role,
            )
        service.answered(choice, patients, request_id)
        return Inference(encoded, length, model.version)

    def _cell_encoded(
        self, cell: CellAnswer, decoded: Decoded, name: str, version: str
    ) -> tuple[bytes, int | None]:
        """A cell's answer in the outputs asked for, encoded once per outputs (no request id).

        A request id is echoed in the answer, so such a request is encoded for itself.
        """
        if decoded.request_id is None and (kept := cell.encodings.get(decoded.outputs)):
            return kept
        row = np.frombuffer(cell.probabilities, dtype=np.float32).reshape(1, -1)
        encoded = self.codec.encode(decoded, cell.labels, row, name, version)
        if decoded.request_id is None:
            cell.encodings[decoded.outputs] = encoded
        return encoded
