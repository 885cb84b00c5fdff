"""Closed-loop traffic through the balancer, every request with its own id, every answer kept.

A few threads, each with one keep-alive connection, send single patients to ``POST /predict``
with an ``X-Request-ID`` of their own and record what came back: status (0 when the connection
failed), the model version, which replica answered (``X-Served-By``) and when. The prediction
log is then checked against these records, id by id.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

from loadtests.bench.server import HOST
from loadtests.replicas.balancer import SERVED_BY

TIMEOUT_S: Final = 10.0


@dataclass(frozen=True)
class Outcome:
    """One request: its id, when it was sent and answered, and the answer."""

    request_id: str
    sent: float
    done: float
    status: int
    version: str | None
    served_by: str | None

    @property
    def ok(self) -> bool:
        """Answered 200 with a prediction."""
        return self.status == 200 and self.version is not None


class _Answer(msgspec.Struct):
    model_version: str


_decode = msgspec.json.Decoder(_Answer).decode


class Traffic:
    """Send predictions through ``port`` from ``threads`` threads until stopped."""

    def __init__(self, port: int, bodies: Sequence[bytes], threads: int = 4) -> None:
        self.port = port
        self.bodies = bodies
        self.prefix = uuid.uuid4().hex[:8]
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]
        self._outcomes: list[list[Outcome]] = [[] for _ in range(threads)]

    def start(self) -> Traffic:
        """Start sending."""
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[Outcome]:
        """Stop, wait for the requests in flight; every outcome, in the order sent."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return sorted(itertools.chain.from_iterable(self._outcomes), key=lambda o: o.sent)

    def _run(self, index: int) -> None:
        record = self._outcomes[index].append
        connection: http.client.HTTPConnection | None = None
        for n in itertools.count():
            if self._stop.is_set():
                break
            request_id = f"{self.prefix}-{index}-{n}"
            body = self.bodies[(index + n * len(self._threads)) % len(self.bodies)]
            sent = time.monotonic()
            status, version, served_by = 0, None, None
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(HOST, self.port, timeout=TIMEOUT_S)
                connection.request(
                    "POST",
                    "/predict",
                    body=body,
                    headers={"Content-Type": "application/json", "X-Request-ID": request_id},
                )
                response = connection.getresponse()
                payload = response.read()
                status, served_by = response.status, response.getheader(SERVED_BY)
                if status == 200:
                    version = _decode(payload).model_version
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException, msgspec.DecodeError):
                if connection is not None:
                    connection.close()
                connection = None
            record(Outcome(request_id, sent, time.monotonic(), status, version, served_by))
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.close()
