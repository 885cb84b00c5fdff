"""Logging setup: one JSON object per line (or plain text), with structured extra fields.

Library code logs through named loggers and passes fields as ``extra={...}``; this module
decides how they are written. Only ``python -m serving`` (or a test) calls ``configure``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from typing import Any, Final, TextIO

import msgspec

# Attributes every LogRecord has; anything else came in through `extra=` and is a field.
_STANDARD: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)
_encoder = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Encode the record; exceptions go in ``exc_info`` as text (server side only)."""
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return _encoder.encode(entry).decode()


class TextFormatter(logging.Formatter):
    """Human-readable line: time level logger message key=value ..."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The standard line followed by the extra fields."""
        line = super().format(record)
        extras = " ".join(
            f"{k}={v}"
            for k, v in record.__dict__.items()
            if k not in _STANDARD and not k.startswith("_")
        )
        return f"{line} {extras}" if extras else line


def configure(level: str = "INFO", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Send all logs to ``stream`` (stderr) in the chosen format (replaces earlier handlers)."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Neither format writes thread or process names; not collecting them makes every record
    # (one per request with access logs on) cheaper. See "Optimization" in the logging HOWTO.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def dict_config(level: str = "INFO", fmt: str = "json") -> dict[str, Any]:
    """``configure``'s setup as a ``logging.config`` dictionary, for servers that take one.

    granian configures logging itself from such a dictionary; without it, its own lines (a
    worker that died, a crash loop) would be plain text among the JSON ones.
    """
    formatter = JsonFormatter if fmt == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"drugclf": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "drugclf",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "_granian": {"handlers": ["stderr"], "propagate": False},
            "granian.access": {"handlers": ["stderr"], "propagate": False},
        },
    }


class AccessLine(msgspec.Struct):
    """One access-log line, with the same keys the JSON formatter writes."""

    ts: str
    level: str
    logger: str
    message: str
    request_id: str
    method: str
    route: str
    path: str
    status: int
    latency_ms: float
    model_version: str | None


ACCESS_LOGGER: Final = "serving.access"


class AccessLog:
    """Where the per-request access lines go.

    When the server's own JSON logging is in place (``configure(fmt="json")``), a line is
    encoded from a Struct and written to the log stream with one ``os.write``: a tenth of the
    CPU of building, formatting and emitting a ``LogRecord``, which at thousands of requests a
    second is most of a request's cost. Otherwise (text format, tests, an embedding app with
    its own handlers) it goes through ``logging`` like every other line.
    """

    def __init__(self) -> None:
        self._logger = logging.getLogger(ACCESS_LOGGER)
        self._fd = _json_stream_fd(self._logger)
        self._encoder = msgspec.json.Encoder()
        self._second = -1
        self._prefix = ""

    def write(  # noqa: PLR0917 - positional on purpose: called once per request
        self,
        request_id: str,
        method: str,
        route: str,
        path: str,
        status: int,
        seconds: float,
        model_version: str | None,
    ) -> None:
        """Record one answered request."""
        if not self._logger.isEnabledFor(logging.INFO):  # cached by logging: cheap
            return
        latency_ms = round(seconds * 1000, 3)
        message = f"{method} {path} {status} {latency_ms:.2f}ms"
        if self._fd is None:
            self._logger.handle(
                self._logger.makeRecord(
                    ACCESS_LOGGER,
                    logging.INFO,
                    __file__,
                    0,
                    message,
                    (),
                    None,
                    extra={
                        "request_id": request_id,
                        "method": method,
                        "route": route,
                        "path": path,
                        "status": status,
                        "latency_ms": latency_ms,
                        "model_version": model_version,
                    },
                )
            )
            return
        now = time.time()
        second = int(now)
        if second != self._second:  # the date part changes once a second
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        line = AccessLine(
            ts=f"{self._prefix}.{int((now - second) * 1000):03d}Z",
            level="INFO",
            logger=ACCESS_LOGGER,
            message=message,
            request_id=request_id,
            method=method,
            route=route,
            path=path,
            status=status,
            latency_ms=latency_ms,
            model_version=model_version,
        )
        with contextlib.suppress(OSError):  # a closed or full stream must not fail a request
            os.write(self._fd, self._encoder.encode(line) + b"\n")


def _json_stream_fd(access_logger: logging.Logger) -> int | None:
    """The file descriptor of the JSON stream ``configure`` installed, if that is all there is."""
    if access_logger.handlers or not access_logger.propagate:
        return None
    handlers = logging.getLogger().handlers
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if not isinstance(handler, logging.StreamHandler) or not isinstance(
        handler.formatter, JsonFormatter
    ):
        return None
    try:
        return int(handler.stream.fileno())
    except (AttributeError, OSError, ValueError):  # e.g. a StringIO
        return None
