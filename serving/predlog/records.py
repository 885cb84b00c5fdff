"""What the prediction log stores: one pending object per request, one row per patient.

The request path enqueues a plain tuple (``Pending``) built from objects it already holds (the
decoded patients, the label list, the probability matrix); the writer thread expands it into
rows. Nothing here runs per row on the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, TypeAlias

import msgspec
import numpy as np
import numpy.typing as npt

from drugclf.contract import CLASSES, Patient

# (unix time, request id, model version, patients (one or a list), labels, probabilities [N, 5],
# latency in ms). A tuple, not an object: it is the only allocation the request path pays.
Pending: TypeAlias = tuple[
    float,
    str | None,
    str,
    Patient | Sequence[Patient],
    Sequence[str],
    npt.NDArray[np.float32],
    float,
]

INPUT_COLUMNS: Final = ("age", "sex", "bp", "cholesterol", "na_to_k")
PROBABILITY_COLUMNS: Final = tuple("p_" + name.lower() for name in CLASSES)
# Column order of a stored row (the table also has an ``id`` the database assigns).
COLUMNS: Final = (
    "ts",
    "request_id",
    "batch_index",
    "batch_size",
    "model_version",
    "predicted",
    "latency_ms",
    *INPUT_COLUMNS,
    *PROBABILITY_COLUMNS,
    "worker",
)
_NO_INPUTS: Final = (None,) * (len(INPUT_COLUMNS) + len(PROBABILITY_COLUMNS))

Row: TypeAlias = tuple[Any, ...]


def expand(pending: Pending, *, with_inputs: bool, worker: str) -> list[Row]:
    """The rows of one request, in batch order (runs in the writer thread).

    Without inputs, the patient's fields and the probabilities are left NULL: only the time,
    ids, version, class and latency are kept. ``worker`` names the process (host:pid).
    """
    ts, request_id, version, patients, labels, probabilities, latency_ms = pending
    batch = [patients] if isinstance(patients, Patient) else patients
    size = len(batch)
    if not with_inputs:
        return [
            (ts, request_id, i, size, version, label, latency_ms, *_NO_INPUTS, worker)
            for i, label in enumerate(labels)
        ]
    rows = probabilities.tolist()
    return [
        (
            ts,
            request_id,
            i,
            size,
            version,
            label,
            latency_ms,
            p.Age,
            p.Sex,
            p.BP,
            p.Cholesterol,
            p.Na_to_K,
            *probs,
            worker,
        )
        for i, (p, label, probs) in enumerate(zip(batch, labels, rows, strict=True))
    ]


class RecordedInputs(msgspec.Struct, frozen=True):
    """The patient as it was sent (the feature contract's field names)."""

    Age: int
    Sex: str
    BP: str
    Cholesterol: str
    Na_to_K: float


class PredictionRecord(msgspec.Struct, frozen=True):
    """One stored prediction: one patient of one request.

    ``inputs`` and ``probabilities`` are null when input recording is off.
    """

    id: int
    time: str
    """When the answer was produced, ISO 8601 in UTC."""
    request_id: str | None
    batch_index: int
    """Position of the patient in its request (0 for a single patient)."""
    batch_size: int
    model_version: str
    prediction: str
    latency_ms: float
    """Time the request spent in the handler (decode, model, encode), shared by its batch."""
    inputs: RecordedInputs | None
    probabilities: dict[str, float] | None
    worker: str | None
    """The process that answered (host:pid)."""
