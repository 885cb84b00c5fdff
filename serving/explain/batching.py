"""Concurrent single-patient explanations share one run of the explainer graph.

As ``/predict``'s micro-batching (``serving.inference.batching``): requests ready in the same
event-loop iteration queue their patient, the first schedules one flush with ``call_soon``, and
the flush finds every queued patient's cell in one ``session.run``. A lone request waits one
loop iteration; nothing sleeps. Patients are grouped by explainer, so one run never mixes
model versions.
"""

from __future__ import annotations

import asyncio
from typing import Final

from drugclf.contract import Patient
from serving.inference.explainer import Explainer
from serving.inference.model import columns

MAX_BATCH: Final = 256


class CellBatcher:
    """Find the cells of concurrent single patients with one explainer call per burst."""

    def __init__(self) -> None:
        self._pending: dict[Explainer, tuple[list[Patient], list[asyncio.Future[int]]]] = {}
        self._scheduled = False

    async def cell(self, explainer: Explainer, patient: Patient) -> int:
        """The patient's cell of ``explainer``'s grid."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        waiting = self._pending.setdefault(explainer, ([], []))
        waiting[0].append(patient)
        waiting[1].append(future)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        for explainer, (patients, futures) in pending.items():
            for start in range(0, len(patients), MAX_BATCH):
                part = futures[start : start + MAX_BATCH]
                try:
                    cells = explainer.cells(columns(patients[start : start + MAX_BATCH]))
                except Exception as exc:  # every waiting request gets the error, the loop goes on
                    for future in part:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for future, cell in zip(part, cells, strict=True):
                    if not future.done():  # a client that went away cancelled its future
                        future.set_result(cell)
