"""Logging setup: one JSON object per line (or plain text), with structured extra fields.

Library code logs through named loggers and passes fields as ``extra={...}``; this module
decides how they are written. Only ``python -m serving`` (or a test) calls ``configure``.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Final

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


def configure(level: str = "INFO", fmt: str = "json") -> None:
    """Send all logs to stderr in the chosen format (replaces earlier handlers)."""
    handler = logging.StreamHandler(sys.stderr)
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
