"""One patient's answer from the cell's answer, encoded once per version: the same bytes as ever.

``PredictionService.answer_json`` answers a single patient of a version with a cell table from
that cell's answer, encoded at the cell's first use, and the V2 infer route does the same with
the outputs asked for. Every answer and every logged row must be what the general path (the
table's lookup, then the encoder) gives for that very patient.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import msgspec
import numpy as np
import pytest
from tritonclient.http import InferRequestedOutput

from drugclf.contract import Patient
from drugclf.registry import Registry
from serving.http.metrics import ServerMetrics
from serving.inference import service as service_module
from serving.inference.codec import PatientCodec
from serving.inference.holder import ModelHolder
from serving.inference.service import PredictionService
from serving.settings import OrtThreads
from serving.v2.codec import TensorCodec
from serving.v2.service import Inference, OpenInference
from serving.v2.versions import VersionCache
from tests.v2.support import client_request, infer_inputs

from .conftest import Trained


class Recorded:
    """The prediction log's side of ``record``: what it would keep, as bytes."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, list[str], bytes]] = []

    def record(self, *args: Any) -> None:
        """``record(request_id, version, body, labels, probabilities, started, role)``."""
        _, version, _, labels, probabilities, *_ = args
        kept = (
            probabilities
            if isinstance(probabilities, bytes)
            else np.asarray(probabilities, dtype=np.float32).tobytes()
        )
        self.rows.append((version, list(labels), kept))

    def record_burst(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("no shadows here")


def _service(trained: Trained, *, cell_table: bool) -> tuple[PredictionService, Recorded]:
    holder = ModelHolder(Registry(trained.artifacts_dir), threads=OrtThreads(cell_table=cell_table))
    holder.load_current()
    recorded = Recorded()
    return PredictionService(holder, PatientCodec(1000), ServerMetrics(), recorded), recorded


def _patients(n: int) -> list[Patient]:
    """Patients across every field's range, each one several times (a cell's later uses)."""
    rng = random.Random(18)
    drawn = [
        Patient(
            Age=rng.randint(0, 120),
            Sex=rng.choice(["F", "M"]),
            BP=rng.choice(["HIGH", "LOW", "NORMAL"]),
            Cholesterol=rng.choice(["HIGH", "NORMAL"]),
            Na_to_K=round(rng.uniform(0.5, 60.0), rng.choice([1, 3, 6])),
        )
        for _ in range(n)
    ]
    return drawn + drawn[: n // 3]


async def _answers(service: PredictionService, bodies: list[bytes]) -> list[bytes]:
    return [(await service.answer_json(body, "id")).body for body in bodies]


def test_each_patient_gets_the_bytes_the_general_path_gives(trained: Trained) -> None:
    looked_up, looked_up_log = _service(trained, cell_table=True)
    assert looked_up.model.table is not None
    bodies = [msgspec.json.encode(p) for p in _patients(600)]

    answers = asyncio.run(_answers(looked_up, bodies))

    model, codec = looked_up.model, looked_up.codec
    for body, answer, (version, labels, probabilities) in zip(
        bodies, answers, looked_up_log.rows, strict=True
    ):
        patient = codec.decode(body)
        assert isinstance(patient, Patient)
        result = model.predict_one(patient)
        assert answer == codec.encode_one(result.labels[0], result.probabilities[0], version)
        assert (labels, probabilities) == (result.labels, result.probabilities.tobytes())
    # And the session, the table's source of truth, agrees on every label.
    session, _ = _service(trained, cell_table=False)
    from_session = asyncio.run(_answers(session, bodies))
    labels = [msgspec.json.decode(a)["prediction"] for a in answers]
    assert labels == [msgspec.json.decode(a)["prediction"] for a in from_session]


def test_the_kept_versions_are_bounded(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> None:
    """Versions come and go with reloads: the answers of at most CELL_ANSWER_VERSIONS are kept."""
    service, _ = _service(trained, cell_table=True)
    monkeypatch.setattr(service_module, "CELL_ANSWER_VERSIONS", 2)
    body = msgspec.json.encode(_patients(1)[0])
    model = service.model
    for version in ("a", "b", "c"):
        monkeypatch.setattr(model, "version", version)  # a version the service has not seen
        answer = asyncio.run(service.answer_json(body, None))
        assert answer.model_version == version
        assert msgspec.json.decode(answer.body)["model_version"] == version
    assert len(service._cell_answers) <= 2


def _open_inference(trained: Trained) -> tuple[OpenInference, Recorded]:
    service, recorded = _service(trained, cell_table=True)
    codec = TensorCodec(1000)
    return OpenInference(service, VersionCache(service.holder, 2), codec, "drugs"), recorded


@pytest.mark.parametrize("binary", [False, True])
def test_v2_answers_of_one_patient_are_the_general_path_s_bytes(
    trained: Trained, binary: bool
) -> None:
    """V2 answers a single patient from the same cells, encoded once per outputs asked for."""
    v2, recorded = _open_inference(trained)
    rng = random.Random(15)
    asked: list[tuple[Patient, bytes, str | None]] = []
    for patient in _patients(300):
        outputs = rng.choice(
            [
                None,
                [InferRequestedOutput("label", binary_data=binary)],
                [
                    InferRequestedOutput("probabilities", binary_data=binary),
                    InferRequestedOutput("label", binary_data=not binary),
                ],
            ]
        )
        request_id = rng.choice(["", "", f"r-{rng.randrange(1000)}"])  # "": no id sent
        asked.append(
            (patient, *client_request(infer_inputs([patient], binary=binary), outputs, request_id))
        )

    async def answer_all() -> list[Inference]:
        return [
            await v2.infer("drugs", None, body, header_length=header, headers=(), request_id="x")
            for _, body, header in asked
        ]

    answers = asyncio.run(answer_all())

    model = v2.predictions.model
    for (patient, body, header), answer, (version, labels, probabilities) in zip(
        asked, answers, recorded.rows, strict=True
    ):
        result = model.predict_one(patient)
        decoded = v2.codec.decode(body, header)
        expected = v2.codec.encode(decoded, result.labels, result.probabilities, "drugs", version)
        assert (answer.body, answer.header_length) == expected
        assert (labels, probabilities) == (result.labels, result.probabilities.tobytes())
    kept = [
        len(cell.encodings)
        for answers in v2.predictions._cell_answers.values()
        for cell in answers.values()
    ]
    assert kept and max(kept) <= 3  # one per outputs asked for, ids or not
