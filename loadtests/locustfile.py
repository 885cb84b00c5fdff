"""Locust scenarios for the prediction server.

Run it with ``make loadtest`` (headless, reports in ``reports/loadtest/``) or see
``docs/loadtesting.md`` for the web UI. Run Locust as ``python -m locust`` from the repository root
so ``loadtests`` and ``drugclf`` import.

Users:

``ClinicUser`` behaves like a real client (a clinic's software asking for advice). Task weights,
per 100 tasks:

====  ====================================================================================
 70   ``POST /predict`` with one patient (the common case: one patient at the desk)
 20   ``POST /predict`` with a batch, size log-uniform in 1..max (so 1-10, 10-100 and
      100-1,000 are equally likely: mostly small, large batches still exercised)
  5   ``GET /model/info`` (a client showing which model answered)
  5   ``GET /health`` (a client's own liveness probe)
====  ====================================================================================

Half the patients are rows of the dataset, half are drawn across the contract's valid ranges
(edges included). Every answer is checked (status 200, a known drug, probabilities summing to 1,
the most probable drug named, a model version, one prediction per patient), so a wrong answer is a
failure, not only an HTTP error. Think time: 0.1 to 1 s between tasks.

``BadTrafficUser`` (always exactly one) sends invalid payloads: wrong types, out-of-range values,
non-finite numbers, unknown and missing fields, broken JSON, empty and oversized batches. Any answer
that is not a 4xx is a failure, and Locust exits non-zero when a run has a failure.

Environment: ``LOADTEST_MAX_BATCH`` (default 1000, the server's maximum batch size),
``LOADTEST_SEED`` (default: random) to replay the same traffic, and ``LOADTEST_THINK`` (seconds
between a client's tasks as ``min-max``, default ``0.1-1.0``; ``0`` for none, to find where Locust
itself saturates). Tasks carry tags (``single``, ``batch``, ``predict``, ``info``, ``health``,
``bad``) for ``--tags`` / ``--exclude-tags``.
"""

from __future__ import annotations

import os
import random
from typing import Any, Final, cast

import msgspec
from locust import between, tag, task
from locust.contrib.fasthttp import FastHttpUser

from loadtests.checks import (
    WrongAnswerError,
    check_client_error,
    check_predict_body,
    check_status,
)
from loadtests.patients import (
    PatientSource,
    bad_request,
    batch_size,
    load_dataset,
    oversized_batch,
)

MAX_BATCH: Final = int(os.environ.get("LOADTEST_MAX_BATCH", "1000"))
_SEED = os.environ.get("LOADTEST_SEED")
JSON_HEADERS: Final = {"Content-Type": "application/json"}
DATASET: Final = load_dataset()


def _think_time() -> Any:
    low, _, high = os.environ.get("LOADTEST_THINK", "0.1-1.0").partition("-")
    return between(float(low), float(high or low))


def _body(encoded: bytes) -> str:
    """``encoded`` as the ``data=`` of a Locust request, unchanged.

    Locust's annotation says ``str``, but its docstring and geventhttpclient take bytes, and
    sending the bytes spares an encode per request: the cast only satisfies the annotation.
    """
    return cast("str", encoded)


def _rng() -> random.Random:
    # One generator per user: reproducible with LOADTEST_SEED, independent between users.
    return random.Random(None if _SEED is None else f"{_SEED}-{random.random()}")


class ClinicUser(FastHttpUser):
    """A client asking for predictions, one patient or a batch at a time."""

    weight = 10
    wait_time = _think_time()

    def on_start(self) -> None:
        """Each user draws its own patients."""
        self.rng = _rng()
        self.patients = PatientSource(self.rng, DATASET, dataset_share=0.5)

    def _predict(self, payload: Any, expected: int | None, name: str) -> None:
        body = msgspec.json.encode(payload)
        with self.client.post(
            "/predict", data=_body(body), headers=JSON_HEADERS, name=name, catch_response=True
        ) as response:
            try:
                check_status(response.status_code)
                check_predict_body(response.content, expected)
            except WrongAnswerError as exc:
                response.failure(str(exc))
            else:
                response.success()

    @tag("predict", "single")
    @task(70)
    def predict_one(self) -> None:
        """One patient as a JSON object."""
        self._predict(self.patients.one(), None, "/predict [1]")

    @tag("predict", "batch")
    @task(20)
    def predict_batch(self) -> None:
        """A batch as a JSON array; statistics grouped by size decade."""
        size = batch_size(self.rng, MAX_BATCH)
        label = "1-9" if size < 10 else "10-99" if size < 100 else "100+"
        self._predict(self.patients.many(size), size, f"/predict [batch {label}]")

    @tag("info")
    @task(5)
    def model_info(self) -> None:
        """Which model is serving."""
        with self.client.get("/model/info", catch_response=True) as response:
            try:
                check_status(response.status_code)
                info = msgspec.json.decode(response.content or b"")
                if not isinstance(info, dict) or not info.get("model_version"):
                    raise WrongAnswerError("/model/info names no version")
            except (WrongAnswerError, msgspec.DecodeError) as exc:
                response.failure(str(exc))
            else:
                response.success()

    @tag("health")
    @task(5)
    def health(self) -> None:
        """Liveness."""
        self.client.get("/health")


class BadTrafficUser(FastHttpUser):
    """Sends only invalid requests; every answer must be a 4xx."""

    fixed_count = 1
    wait_time = between(0.2, 1.0)

    def on_start(self) -> None:
        """Bad requests are built from valid patients, then broken in one place."""
        self.rng = _rng()
        self.patients = PatientSource(self.rng, DATASET)

    def _send(self, label: str, body: bytes) -> None:
        with self.client.post(
            "/predict",
            data=_body(body),
            headers=JSON_HEADERS,
            name=f"/predict [bad: {label}]",
            catch_response=True,
        ) as response:
            try:
                check_client_error(response.status_code)
            except WrongAnswerError as exc:
                response.failure(str(exc))
            else:
                response.success()

    @tag("bad")
    @task(20)
    def invalid_payload(self) -> None:
        """Wrong types, out-of-range values, unknown or missing fields, broken JSON."""
        self._send(*bad_request(self.rng, self.patients))

    @tag("bad")
    @task(1)
    def oversized(self) -> None:
        """One patient over the maximum batch size."""
        self._send("oversized batch", oversized_batch(self.patients, MAX_BATCH))
