"""The single-retrain lock shared by every worker process: ``fcntl.flock`` on one file.

The holder writes its job id into the file, so a refused request can name the running job. The
kernel drops the lock when its process dies, so a crashed worker never blocks retraining.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class JobLock:
    """An exclusive, non-blocking lock on ``path`` (one per worker; flock is per open file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self, job_id: str) -> bool:
        """Take the lock for ``job_id``; False when any process (this one included) holds it."""
        if self._fd is not None:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, job_id.encode(), 0)
        self._fd = fd
        return True

    def release(self) -> None:
        """Give the lock up (nothing happens when this worker does not hold it)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def holder(self) -> str | None:
        """The job id written by the current holder, if any."""
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return text or None

    def held_for(self, job_id: str) -> bool:
        """Whether some live process holds the lock for ``job_id``."""
        if self.holder() != job_id:
            return False
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops a lock we may have taken
        return False
