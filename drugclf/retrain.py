"""The retrain job protocol between the server and the training process it starts.

The server sends a ``JobSpec`` and the training process answers with events, each one msgspec
JSON message on a pipe: ``Validated`` as soon as the data is known good (so a bad upload is a
4xx before anything is trained), then ``Published`` or ``Failed``. Only msgspec here, so the
slim server can speak the protocol without importing the training stack.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from drugclf.artifact import Metrics, Params, ParitySummary

FailureCode = Literal["dataset_invalid", "dataset_unavailable", "parity_failed", "training_failed"]


class JobSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What one training process is asked to do: train, evaluate, export without promoting."""

    params: Params
    data_path: str
    """The CSV to train on when nothing is uploaded (the server's default dataset)."""
    runs_dir: str
    artifacts_dir: str
    datasets_dir: str
    parity_cases: int
    upload_path: str | None = None
    """An uploaded CSV waiting to be validated and stored as ``<datasets_dir>/<sha256>.csv``."""
    upload_name: str | None = None
    """How messages about the upload name it (the client's file name, never a server path)."""


class Validated(msgspec.Struct, frozen=True, tag="validated"):
    """The data passed the training validator; training starts."""

    data_sha256: str
    data_rows: int


class Published(msgspec.Struct, frozen=True, tag="published"):
    """A new version passed the parity gate and was published (not promoted)."""

    version: str
    run_id: str
    metrics: Metrics
    parity: ParitySummary


class Failed(msgspec.Struct, frozen=True, tag="failed"):
    """The job stopped; nothing was published. ``message`` is written for the client."""

    code: FailureCode
    message: str
    parity: ParitySummary | None = None


JobEvent = Validated | Published | Failed
