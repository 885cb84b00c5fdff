"""Concurrent single-patient explanations share one run of the explainer graph.

As ``/predict``'s micro-batching (``serving.inference.batching``): requests ready in the same
event-loop iteration queue their patient, the first schedules one flush with ``call_soon``, and
the flush finds every queued patient's cell in one ``session.run``. A lone request waits one
loop iteration; nothing sleeps. Patients are grouped by explainer, so one run never mixes
model versions.
"""

from __future__ import annotations

from drugclf.contract import Patient
from serving.inference.batching import LoopBatcher
from serving.inference.explainer import Explainer
from serving.inference.model import columns


class CellBatcher:
    """Find the cells of concurrent single patients with one explainer call per burst."""

    def __init__(self) -> None:
        self._batcher: LoopBatcher[Explainer, int] = LoopBatcher(_cells)

    async def cell(self, explainer: Explainer, patient: Patient) -> int:
        """The patient's cell of ``explainer``'s grid."""
        return await self._batcher.submit(explainer, patient)


def _cells(explainer: Explainer, patients: list[Patient]) -> list[int]:
    return explainer.cells(columns(patients))
