"""What a worker and its prediction-log writer process say to each other, over two pipes.

The records themselves go through the spool (``predlog.spool``): a spool frame's body is a
``list[LoggedRequest]``. On the writer's stdin the worker sends a ``WriterConfig`` frame, then
one byte after each spool append (a wake-up call) and, when it stops, the end of the pipe; the
writer answers ``Report`` frames on its stdout. A pipe frame is a 4-byte little-endian length
and a msgpack body. Only msgspec is needed on either side (no numpy in the writer).
"""

from __future__ import annotations

import os
import struct
from typing import Final, Literal

import msgspec

_HEADER: Final = struct.Struct("<I")


class WriterConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The writer's settings (sent on the pipe: a database password must not be in ``argv``)."""

    url: str
    spool_dir: str
    owner: str
    """The worker's name in the spool: its segments are this writer's to write."""
    record_inputs: bool
    max_age_s: float | None
    max_rows: int | None
    prune_interval: float
    niceness: int
    idle: bool
    """Run under Linux's SCHED_IDLE policy (elsewhere only the nice value applies)."""
    drain_s: float
    """When the worker stops: how long to go on writing its spool before leaving the rest on
    disk for the next writer."""


class LoggedRequest(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One answered request: its body, and a label and probabilities for each of its patients.

    Or a burst of requests one version predicted in one call (``request_ids``).
    """

    ts: float
    request_id: str | None
    version: str
    body: bytes
    """The request body as received: JSON, one patient or an array of them, which the worker's
    strict decoder accepted. The writer decodes it again (with the same contract), so the request
    path never copies the patients. Empty when inputs are not recorded."""
    labels: list[str]
    probabilities: bytes
    """float32, one row per patient, the classes in the contract's order."""
    latency_ms: float
    role: str = "primary"
    """primary, candidate or shadow (``serving.inference.service.Role``); defaulted, like the
    fields after it, so the frames an older worker spooled still decode."""
    request_ids: list[str | None] = msgspec.field(default_factory=list)
    """Empty for one request. Otherwise a burst: the answers of one model call over several
    requests (the shadows'), each request's id in order; ``request_id`` is then None, ``body``
    empty and ``latency_ms`` the call's, shared by every row."""
    batch_sizes: list[int] = msgspec.field(default_factory=list)
    """A burst: how many of ``labels`` (patients) belong to each of ``request_ids``."""


ReportKind = Literal[
    "committed",
    "failed",
    "recovered",
    "lost",
    "malformed",
    "adopted",
    "warning",
    "pruned",
    "prune_failed",
]


class Report(msgspec.Struct, array_like=True, frozen=True):
    """What the writer did, or noticed.

    ``committed``: ``rows`` of ``requests`` stored, and the database has ``segment`` up to
    ``position`` (also sent, with no rows, when a writer starts on its worker's segment: a
    writer that died may have committed more than it reported). ``failed``/``recovered``
    bracket a database outage; ``malformed`` counts rows that could not be expanded and
    ``lost`` rows a damaged segment held (neither is stored); ``adopted`` names segments of a
    worker that is gone, now this writer's; a ``warning`` is only logged. ``backlog_rows`` and
    ``oldest_ts``, in every report: what the adopted segments still hold (the worker counts its
    own).
    """

    kind: ReportKind
    requests: int = 0
    rows: int = 0
    message: str = ""
    segment: str = ""
    position: int = 0
    own: bool = True
    backlog_rows: int = 0
    oldest_ts: float | None = None


def write_frame(fd: int, body: bytes) -> None:
    """Write one frame to a pipe (blocks while the pipe is full).

    Raises:
        OSError: the other side is gone (``BrokenPipeError``).
    """
    view = memoryview(_HEADER.pack(len(body)) + body)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_frame(fd: int) -> bytes | None:
    """Read one frame from a pipe; None at end of file (the other side closed it)."""
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    body = _read_exactly(fd, size)
    if body is None:
        raise EOFError("the pipe closed in the middle of a frame")
    return body


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    missing = size
    while missing:
        chunk = os.read(fd, missing)
        if not chunk:
            if missing == size:
                return None
            raise EOFError("the pipe closed in the middle of a frame")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)
