"""What the prediction log stores: one row per patient, expanded in the writer process.

Imports msgspec only: the writer process loads this module and must start fast.
"""

from __future__ import annotations

import operator
import struct
from typing import Any, Final, TypeAlias

import msgspec

from drugclf.contract import CLASSES, FEATURE_NAMES, Patient
from serving.monitoring.predlog.wire import LoggedRequest

INPUT_COLUMNS: Final = tuple(name.lower() for name in FEATURE_NAMES)
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
    "role",
)
REQUEST_COLUMNS: Final = (
    "ts",
    "request_id",
    "batch_size",
    "model_version",
    "latency_ms",
    "worker",
    "role",
)
"""The columns every row of one request shares (the rest differ from patient to patient)."""
_NO_INPUTS: Final = (None,) * (len(INPUT_COLUMNS) + len(PROBABILITY_COLUMNS))
_PATIENTS: Final = msgspec.json.Decoder(Patient | list[Patient])
_INPUTS: Final = operator.attrgetter(*FEATURE_NAMES)
"""A patient's inputs in the contract's order, as ``INPUT_COLUMNS`` stores them."""
_ONE_ROW: Final = struct.Struct(f"={len(CLASSES)}f")
"""One patient's probabilities: float32 in the worker's byte order (``ndarray.tobytes``)."""

Row: TypeAlias = tuple[Any, ...]


def expand(request: LoggedRequest, *, with_inputs: bool, worker: str) -> list[Row]:
    """The rows of one request, in batch order (runs in the writer process).

    Without inputs, the patient's fields and the probabilities are left NULL: only the time,
    ids, version, class and latency are kept. ``worker`` names the process (host:pid). A shadow's
    request comes without its body: its inputs are those of the answered row of the same request
    id, stored once.

    Raises:
        ValueError: the body is not the patients of the labels, or the probabilities are not one
            row of every class per patient.
    """
    ts, request_id, version = request.ts, request.request_id, request.version
    latency_ms, labels, role = request.latency_ms, request.labels, request.role
    size = len(labels)
    if not with_inputs or (role == "shadow" and not request.body):
        return [
            (ts, request_id, i, size, version, label, latency_ms, *_NO_INPUTS, worker, role)
            for i, label in enumerate(labels)
        ]
    try:
        decoded = _PATIENTS.decode(request.body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # ValidationError included
        raise ValueError(f"the request body is not patients: {exc}") from None
    if isinstance(decoded, Patient):
        # One patient: most requests, so no loop and no list of floats.
        if size != 1:
            raise ValueError(f"{size} labels for 1 patients")
        if len(request.probabilities) != _ONE_ROW.size:
            raise ValueError(f"{len(request.probabilities)} bytes of probabilities for 1 patient")
        return [
            (
                ts,
                request_id,
                0,
                1,
                version,
                labels[0],
                latency_ms,
                *_INPUTS(decoded),
                *_ONE_ROW.unpack(request.probabilities),
                worker,
                role,
            )
        ]
    patients = decoded
    if len(patients) != size:
        raise ValueError(f"{size} labels for {len(patients)} patients")
    k = len(CLASSES)
    flat = memoryview(request.probabilities).cast("f").tolist()
    if len(flat) != size * k:
        raise ValueError(f"{len(flat)} probabilities for {size} patients of {k} classes")
    return [
        (
            ts,
            request_id,
            i,
            size,
            version,
            label,
            latency_ms,
            *_INPUTS(p),
            *flat[i * k : i * k + k],
            worker,
            role,
        )
        for i, (p, label) in enumerate(zip(patients, labels, strict=True))
    ]


def expand_burst(request: LoggedRequest, *, worker: str) -> list[list[Row]]:
    """The rows of a burst (``request.request_ids``), one list per request, in order.

    A burst holds shadow answers: like a shadow's request, its rows keep the class, latency
    and request id, not the inputs (the answered row of the same request id has them) nor the
    probabilities.

    Raises:
        ValueError: the requests' sizes do not add up to the labels, or the probabilities are
            not one row of every class per patient.
    """
    ids, sizes, labels = request.request_ids, request.batch_sizes, request.labels
    if len(ids) != len(sizes) or sum(sizes) != len(labels) or min(sizes, default=0) < 0:
        raise ValueError(f"{len(labels)} labels for {len(ids)} requests of sizes {sizes}")
    if len(request.probabilities) != len(labels) * _ONE_ROW.size:
        raise ValueError(
            f"{len(request.probabilities)} bytes of probabilities for {len(labels)} patients"
        )
    ts, version, latency_ms, role = request.ts, request.version, request.latency_ms, request.role
    expanded: list[list[Row]] = []
    start = 0
    for request_id, size in zip(ids, sizes, strict=True):
        expanded.append(
            [
                (ts, request_id, i, size, version, label, latency_ms, *_NO_INPUTS, worker, role)
                for i, label in enumerate(labels[start : start + size])
            ]
        )
        start += size
    return expanded


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
    role: str = "primary"
    """Why this version predicted: ``primary`` or ``candidate`` (it answered; see the traffic
    policy) or ``shadow`` (it listened after the answer: never returned)."""
