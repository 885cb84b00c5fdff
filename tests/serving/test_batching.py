"""Micro-batching: concurrent single-patient requests share one model call, answers stay apart."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from drugclf.contract import Patient
from drugclf.registry import Registry
from serving.inference.batching import MicroBatcher
from serving.inference.model import DrugModel, Predictions
from serving.settings import OrtThreads

from .conftest import Trained


class CountingModel:
    """Wraps a real model and records the size of every call."""

    def __init__(self, model: DrugModel) -> None:
        self.model = model
        self.calls: list[int] = []

    def predict(self, patients: list[Patient]) -> Predictions:
        self.calls.append(len(patients))
        return self.model.predict(patients)

    def predict_one(self, patient: Patient) -> Predictions:
        self.calls.append(1)
        return self.model.predict_one(patient)


@pytest.fixture(scope="module")
def model(trained: Trained) -> DrugModel:
    # The session answers: a version's cell table needs no batching (the service skips it).
    return DrugModel.load(
        Registry(trained.artifacts_dir).resolve_current(), threads=OrtThreads(cell_table=False)
    )


def patients(n: int) -> list[Patient]:
    return [
        Patient(
            Age=20 + i % 60,
            Sex=("F", "M")[i % 2],
            BP=("HIGH", "LOW", "NORMAL")[i % 3],
            Cholesterol=("HIGH", "NORMAL")[i % 2],
            Na_to_K=6.0 + i % 30,
        )
        for i in range(n)
    ]


def test_concurrent_requests_share_one_call_and_get_their_own_answer(model: DrugModel) -> None:
    counting = CountingModel(model)
    batcher = MicroBatcher(lambda: counting, max_batch=8)  # type: ignore[arg-type, return-value]
    group = patients(20)

    async def scenario() -> list[tuple[object, Predictions]]:
        return await asyncio.gather(*[batcher.predict(p) for p in group])

    answers = asyncio.run(scenario())
    assert counting.calls == [8, 8, 4]  # one burst, split at max_batch
    expected = model.predict(group)
    for (_, got), label, row in zip(answers, expected.labels, expected.probabilities, strict=True):
        assert got.labels == [label]
        assert np.array_equal(got.probabilities[0], row)


def test_a_lone_request_is_answered_alone(model: DrugModel) -> None:
    counting = CountingModel(model)
    batcher = MicroBatcher(lambda: counting)  # type: ignore[arg-type, return-value]

    async def scenario() -> None:
        for p in patients(3):
            _, answer = await batcher.predict(p)
            assert answer.labels == model.predict_one(p).labels

    asyncio.run(scenario())
    assert counting.calls == [1, 1, 1]


def test_an_error_reaches_every_waiting_request() -> None:
    def broken() -> DrugModel:
        raise RuntimeError("boom")

    batcher = MicroBatcher(broken)

    async def scenario() -> list[object]:
        return await asyncio.gather(
            *[batcher.predict(p) for p in patients(3)], return_exceptions=True
        )

    results = asyncio.run(scenario())
    assert all(isinstance(r, RuntimeError) for r in results)
