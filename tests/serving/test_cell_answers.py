"""One patient's answer from the cell's answer, encoded once per version: the same bytes as ever.

``PredictionService.answer_json`` answers a single patient of a version with a cell table from
that cell's answer, encoded at the cell's first use. Every answer and every logged row must be
what the general path (the table's lookup, then the encoder) gives for that very patient.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import msgspec
import numpy as np
import pytest

from drugclf.contract import Patient
from drugclf.registry import Registry
from serving.http.metrics import ServerMetrics
from serving.inference import service as service_module
from serving.inference.codec import PatientCodec
from serving.inference.holder import ModelHolder
from serving.inference.service import PredictionService
from serving.settings import OrtThreads

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
