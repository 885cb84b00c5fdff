"""Micro-batching: single-patient requests that are waiting at the same moment share one model call.

An onnxruntime call has a fixed cost, most of it per-node overhead rather than the trees, that
dwarfs the cost of one more row (docs/serving.md, "Why it is fast"). Under concurrent load, several
``/predict`` requests of one worker are ready in the same event-loop iteration; each adds its
patient to a pending list, the first also schedules one flush with ``call_soon``. The flush
runs after every request already ready in that iteration has been queued, so a lone request
waits for nothing (one loop iteration) and a burst is answered by one ``session.run``.
Nothing here sleeps or waits for a timer. A request a traffic policy sends to another version
waits with that version's patients: one call never mixes versions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

from drugclf.contract import Patient
from serving.inference.model import DrugModel, Predictions

Answer = tuple[DrugModel, Predictions]

Key = TypeVar("Key", bound=Hashable | None)
Result = TypeVar("Result")


class LoopBatcher(Generic[Key, Result]):
    """Collect the single patients queued in one event-loop iteration into calls per key.

    Args:
        run: answers a key's patients in one call, one result per patient, in order.
        max_batch: most patients in one call; a bigger burst is split over several calls.
    """

    def __init__(
        self, run: Callable[[Key, list[Patient]], Sequence[Result]], max_batch: int = 256
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._pending: dict[Key, tuple[list[Patient], list[asyncio.Future[Result]]]] = {}
        self._scheduled = False

    async def submit(self, key: Key, patient: Patient) -> Result:
        """The patient's result, computed with the others queued for ``key`` meanwhile."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        waiting = self._pending.get(key)
        if waiting is None:
            waiting = self._pending[key] = ([], [])
        waiting[0].append(patient)
        waiting[1].append(future)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        for key, (patients, futures) in pending.items():
            for start in range(0, len(patients), self._max_batch):
                part = futures[start : start + self._max_batch]
                try:
                    results = self._run(key, patients[start : start + self._max_batch])
                except Exception as exc:  # every waiting request gets the error, the loop goes on
                    for future in part:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for future, result in zip(part, results, strict=True):
                    if not future.done():  # a client that went away cancelled its future
                        future.set_result(result)


class MicroBatcher:
    """Collect concurrent single-patient predictions of one event loop into one model call.

    Args:
        current_model: returns the model to use at flush time (the hot-reload holder's).
        max_batch: most patients in one call; a bigger burst is split over several calls.
    """

    def __init__(self, current_model: Callable[[], DrugModel], max_batch: int = 256) -> None:
        self._current_model = current_model
        # Waiting patients by the model chosen for them (None: the current one at flush time).
        self._batcher: LoopBatcher[DrugModel | None, Answer] = LoopBatcher(self._run, max_batch)

    async def predict(self, patient: Patient, model: DrugModel | None = None) -> Answer:
        """The model that answered and this patient's one-row ``Predictions``.

        ``model``: the version a traffic policy chose (None: the current model).
        """
        return await self._batcher.submit(model, patient)

    def _run(self, chosen: DrugModel | None, patients: list[Patient]) -> list[Answer]:
        model = chosen if chosen is not None else self._current_model()
        if len(patients) == 1:
            return [(model, model.predict_one(patients[0]))]
        batch = model.predict(patients)
        return [
            (model, Predictions(labels=[label], probabilities=batch.probabilities[i : i + 1]))
            for i, label in enumerate(batch.labels)
        ]
