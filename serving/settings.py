"""Typed server settings, read once from ``DRUGCLF_*`` environment variables and passed in.

Nothing here is cached globally: ``Settings.from_env()`` builds a fresh object, so tests build
their own with ``Settings(artifacts_dir=tmp_path, ...)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import msgspec

from drugclf.artifact import DEFAULT_PARITY_CASES, ParityCases
from serving.cpus import available_cpus

ENV_PREFIX: Final = "DRUGCLF_"

LogFormat = Literal["json", "text"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
AsgiServer = Literal["granian", "uvicorn"]
EventLoop = Literal["uvloop", "asyncio"]


@dataclass(frozen=True, slots=True)
class OrtThreads:
    """How a model call runs: its threads, and whether a cell table answers instead.

    ``per_call`` onnxruntime threads for every call. A batch of at least ``large_batch_rows``
    patients is cut into ``large_batch`` slices that run at once, one per thread: a large batch
    spends most of its time in the forest, which the slices share out, while a single patient
    gains nothing. Measured in docs/serving.md. Built from the ``ort_*`` settings.
    """

    per_call: int = 1
    large_batch: int = 1
    large_batch_rows: int = 128
    cell_table: bool = True
    """Answer from a version's cell table when it has one (False: always run the session)."""


class SettingsError(Exception):
    """An environment variable does not hold a valid setting."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the server can be told, each field from ``DRUGCLF_<FIELD NAME IN CAPITALS>``."""

    artifacts_dir: Path = Path("artifacts")
    """Registry root; the server serves ``<artifacts_dir>/current``."""
    host: str = "127.0.0.1"
    """Address to bind (``0.0.0.0`` inside a container)."""
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    """TCP port to bind."""
    workers: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Worker processes; 0 means one per CPU this process may use (see ``worker_count``)."""
    server: AsgiServer = "granian"
    """ASGI server that ``python -m serving`` runs (granian measured faster, see docs)."""
    event_loop: EventLoop = "uvloop"
    """The workers' asyncio event loop: ``uvloop`` (libuv, in C) or the standard library's."""
    log_level: LogLevel = "INFO"
    """Root log level."""
    log_format: LogFormat = "json"
    """``json`` (one object per line, for machines) or ``text`` (for people)."""
    access_log: bool = True
    """Log one line per request (route, status, latency, model version, request id)."""
    keep_alive_timeout: Annotated[float, msgspec.Meta(ge=0.1, le=3600)] = 30.0
    """Seconds an idle keep-alive connection (or a client still sending its headers) is kept
    open; behind a load balancer, set it above the balancer's own idle timeout."""
    max_batch_size: Annotated[int, msgspec.Meta(ge=1)] = 1000
    """Most patients accepted in one ``POST /predict`` array."""
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1)] = 1_048_576
    """Largest request body accepted, in bytes (413 above it)."""
    reload_interval: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    """Seconds between checks of ``artifacts/current`` for a new model (0 disables hot reload)."""
    shadow_queue_size: Annotated[int, msgspec.Meta(ge=1)] = 1000
    """Answered requests a worker holds for the traffic policy's shadow versions; beyond it a
    request is not shadowed (counted in ``drugclf_shadow_skipped_total``). The policy file is
    checked every ``reload_interval`` seconds too."""
    ort_intra_op_threads: Annotated[int, msgspec.Meta(ge=1)] = 1
    """onnxruntime intra-op threads per session; 1 because each core already runs a worker."""
    ort_large_batch_threads: Annotated[int, msgspec.Meta(ge=1)] = 2
    """Slices a batch of at least ``ort_large_batch_rows`` patients is cut into, run at once on
    as many threads (1 turns it off): a large batch finishes sooner while another core is idle.
    Each patient's answer stays bit for bit the one it gets alone."""
    ort_large_batch_rows: Annotated[int, msgspec.Meta(ge=1)] = 128
    """The batch size from which ``ort_large_batch_threads`` apply."""
    micro_batching: bool = True
    """Answer single-patient requests waiting at the same moment with one model call (a
    version answered from its cell table looks each patient up at once instead)."""
    cell_table: bool = True
    """Answer from a version's cell table (``cells.npz``, proved bit for bit at export) when it
    has one; false always runs ``model.onnx`` (to compare the two)."""
    model_name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")] = (
        "drug-classifier"
    )
    """The model's name on the Open Inference Protocol (V2) routes: ``/v2/models/<name>/...``."""
    model_versions_kept: Annotated[int, msgspec.Meta(ge=1, le=16)] = 2
    """Published versions other than the served one that a worker keeps loaded for
    ``/v2/models/<name>/versions/<version>/...`` (least recently used first out)."""
    admin_token: str | None = None
    """Bearer token for the admin endpoints (model management); None disables them."""
    read_token: str | None = None
    """Bearer token for reading recorded patient inputs (``GET /predictions``) without admin
    rights; the admin token reads them too. With neither, they are closed (but in dev mode)."""
    app_factory: Annotated[str, msgspec.Meta(pattern=r"^[\w.]+:\w+$")] = (
        "serving.app:create_app_from_env"
    )
    """The app factory each worker calls, as ``module:function``; ``make bench`` serves its own,
    which adds the model-free route it compares ``/predict`` with."""
    prediction_log: bool = True
    """Record every prediction in the prediction log (false turns the log off entirely)."""
    prediction_log_url: str | None = None
    """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``postgresql://...``; None means
    SQLite at ``<data_dir>/predictions.db``."""
    data_dir: Path | None = None
    """Writable folder for the server's own data (the default SQLite log, the log's spool);
    None means ``<artifacts_dir>/../var``."""
    prediction_log_inputs: bool = True
    """Store the patients' inputs and probabilities (health data); false keeps only the class,
    model version, time, latency and request id."""
    prediction_log_max_age_days: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    """Delete log rows older than this many days (0 keeps them forever)."""
    prediction_log_max_rows: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Keep at most this many log rows, newest first (0 means no limit)."""
    prediction_log_queue_size: Annotated[int, msgspec.Meta(ge=1)] = 50_000
    """Rows (patients) a worker holds in memory for the log until its next spool append; beyond
    it, new records are dropped (counted). Bounds the worker's memory if the disk stalls."""
    prediction_log_flush_interval: Annotated[float, msgspec.Meta(gt=0)] = 0.25
    """Seconds between two appends of a worker's records to the log's spool (on disk): the
    records a killed worker can lose are those of its last interval."""
    prediction_log_spool_max_bytes: Annotated[int, msgspec.Meta(ge=1)] = 1 << 30
    """Disk the log's spool may take (``<data_dir>/prediction-log-spool``: records every worker
    answered that the database does not have yet); past it, new records are dropped (counted
    and logged). A database that falls behind or is down fills it."""
    prediction_log_writer_niceness: Annotated[int, msgspec.Meta(ge=0, le=19)] = 10
    """Added to the nice value of each worker's prediction-log writer process (0 leaves it):
    when the cores are busy, answers go first and the log catches up."""
    prediction_log_writer_idle: bool = False
    """Run the writer processes under Linux's SCHED_IDLE policy: they get a core only when
    nothing else wants it. Answers of large batches come faster, but under sustained load the
    writer falls behind and the backlog grows in the spool (up to
    ``prediction_log_spool_max_bytes``). Off by default (measured in docs/monitoring.md,
    "Capacity")."""
    dev_mode: bool = False
    """Local development (``make serve``): with no admin token, open admin endpoints to loopback."""
    data: Path = Path("data/drug200.csv")
    """Dataset ``POST /retrain`` trains on when no CSV is uploaded (as the training CLI)."""
    runs_dir: Path = Path("runs")
    """Where retrain jobs record their training runs (as the training CLI)."""
    datasets_dir: Path | None = None
    """Uploaded CSVs, stored as ``<sha256>.csv``; None means ``<artifacts_dir>/datasets``."""
    retrain_timeout: Annotated[float, msgspec.Meta(gt=0)] = 900.0
    """Seconds a retrain job may run before it is killed and reported failed."""
    retrain_parity_cases: ParityCases = DEFAULT_PARITY_CASES
    """Random patients in a retrain's parity gate (the training default)."""
    retrain_cv_tolerance: float = 0.02
    """How much lower a new model's CV accuracy may be than the current one's and still promote."""
    retrain_max_upload_bytes: int = 10_485_760
    """Largest ``POST /retrain`` body (CSV upload included), in bytes (413 above it)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``DRUGCLF_*`` variables (``environ`` defaults to ``os.environ``).

        Raises:
            SettingsError: a variable cannot be converted to its field's type.
        """
        env = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for name in cls.__struct_fields__:
            value = env.get(ENV_PREFIX + name.upper())
            if value is not None and value != "":
                raw[name] = value
        raw.update(overrides)
        try:
            # Environment values are strings: lax conversion turns "2" into 2 and "1" into True.
            return msgspec.convert(raw, cls, strict=False, dec_hook=_dec_hook)
        except msgspec.ValidationError as exc:
            raise SettingsError(f"invalid setting: {_env_message(exc)}") from exc

    def data_folder(self) -> Path:
        """The server's own data folder: ``data_dir``, or ``<artifacts_dir>/../var``."""
        return self.data_dir if self.data_dir is not None else self.artifacts_dir.parent / "var"

    def prediction_log_location(self) -> str:
        """The prediction log's database URL (the setting, or SQLite in the data folder)."""
        if self.prediction_log_url:
            return self.prediction_log_url
        return f"sqlite:///{self.data_folder() / 'predictions.db'}"

    def ort_threads(self) -> OrtThreads:
        """How a model call runs: onnxruntime threads, and whether cell tables answer."""
        return OrtThreads(
            per_call=self.ort_intra_op_threads,
            large_batch=self.ort_large_batch_threads,
            large_batch_rows=self.ort_large_batch_rows,
            cell_table=self.cell_table,
        )

    def worker_count(self) -> int:
        """Workers to start: the setting, or one per CPU this process may use.

        Those are the cores of its CPU set (a container's, a taskset's), not the host's, capped
        by a cgroup CPU quota (``docker run --cpus``, a Kubernetes limit): see ``serving.cpus``.
        """
        if self.workers > 0:
            return self.workers
        return available_cpus()


def _dec_hook(type_: type, value: Any) -> Any:
    if type_ is Path:
        return Path(value)
    raise NotImplementedError  # pragma: no cover


def _env_message(exc: msgspec.ValidationError) -> str:
    message = str(exc)
    if " - at `$." in message:
        message, field = message.rsplit(" - at `$.", 1)
        return f"{ENV_PREFIX}{field.rstrip('`').upper()}: {message}"
    return message
