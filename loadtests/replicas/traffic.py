"""Closed-loop traffic through the balancer, every request with its own id, every answer kept.

A few threads, each with one keep-alive connection, send single patients to ``POST /predict``
with an ``X-Request-ID`` of their own and record what came back: status (0 when the connection
failed), the model version, which replica answered (``X-Served-By``) and when. The prediction
log is then checked against these records, id by id.

When HAProxy forwards a request over a kept-alive connection to a replica that has just died,
the reset reaches it as a read error, which it does not retry itself: it closes the client's
kept-alive connection without a word, its documented way of asking the client to retry (what
browsers do, and Go's ``http.Transport`` for requests with an idempotency key). The traffic does
the same, once, on a new connection and under a new request id, so that the log check still
shows a request that the dead replica had logged before dying. The closed attempt is kept as an
outcome marked ``resent``.
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
    resent: bool = False
    """Closed without an answer on a kept-alive connection, and sent again under a new id."""

    @property
    def ok(self) -> bool:
        """Answered 200 with a prediction."""
        return self.status == 200 and self.version is not None

    @property
    def failed(self) -> bool:
        """Not answered, and not sent again either: a failure the client saw."""
        return not self.ok and not self.resent


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
        client = _Client(self.port)
        for n in itertools.count():
            if self._stop.is_set():
                break
            request_id = f"{self.prefix}-{index}-{n}"
            body = self.bodies[(index + n * len(self._threads)) % len(self.bodies)]
            outcome = client.send(request_id, body, may_resend=True)
            if outcome.resent:
                record(outcome)
                outcome = client.send(f"{request_id}-r1", body, may_resend=False)
            record(outcome)
        client.close()


class _Client:
    """One keep-alive connection to the balancer, opened again after a failure."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._connection: http.client.HTTPConnection | None = None
        self._answered = 0
        """Answers on the current connection: 0 for a new one."""

    def send(self, request_id: str, body: bytes, *, may_resend: bool) -> Outcome:
        """POST one patient; ``resent`` when a kept-alive connection closed unanswered."""
        sent = time.monotonic()
        status, version, served_by, closed_unanswered = 0, None, None, False
        try:
            if self._connection is None:
                self._connection = http.client.HTTPConnection(HOST, self.port, timeout=TIMEOUT_S)
                self._answered = 0
            self._connection.request(
                "POST",
                "/predict",
                body=body,
                headers={"Content-Type": "application/json", "X-Request-ID": request_id},
            )
            response = self._connection.getresponse()
            payload = response.read()
            self._answered += 1
            status, served_by = response.status, response.getheader(SERVED_BY)
            if status == 200:
                version = _decode(payload).model_version
            if response.will_close:
                self.close()
        except ConnectionResetError:  # http.client.RemoteDisconnected included
            closed_unanswered = self._answered > 0
            self.close()
        except (OSError, http.client.HTTPException, msgspec.DecodeError):
            self.close()
        resent = closed_unanswered and may_resend
        return Outcome(request_id, sent, time.monotonic(), status, version, served_by, resent)

    def close(self) -> None:
        """Close the connection; the next request opens a new one."""
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.close()
        self._connection = None
