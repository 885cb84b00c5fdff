"""Run wrk against the local server and read its result, answers checked by a Lua hook."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import msgspec

SCRIPT: Final = Path(__file__).with_name("wrk_bodies.lua")
RESULT_PREFIX: Final = "WRK_RESULT "
# A request slower than this is a failure, not a latency figure.
TIMEOUT: Final = "5s"
# The longest a run tied to another process (``until``) may last.
UNTIL_CEILING_S: Final = 600


class WrkError(Exception):
    """wrk is missing, failed, or printed no result."""


class WrkResult(msgspec.Struct, frozen=True):
    """One wrk run, as printed by the Lua ``done`` hook (durations in µs)."""

    requests: int
    duration_us: int
    answers: int
    bad: int
    connect_errors: int
    read_errors: int
    write_errors: int
    status_errors: int
    timeouts: int
    p50_us: float
    p90_us: float
    p99_us: float
    max_us: float
    mean_us: float

    @property
    def requests_per_s(self) -> float:
        """Completed requests per second."""
        return self.requests / (self.duration_us / 1e6) if self.duration_us else 0.0

    @property
    def failures(self) -> int:
        """Wrong answers (non-200 or unexpected body) plus socket errors and timeouts."""
        socket_errors = self.connect_errors + self.read_errors + self.write_errors + self.timeouts
        return self.bad + socket_errors


def wrk_path() -> str:
    """The wrk binary, or a clear error saying how to install it."""
    found = shutil.which("wrk")
    if found is None:
        raise WrkError("wrk is not installed: apt-get install -y wrk")
    return found


def parse_output(stdout: str) -> WrkResult:
    """The result line the Lua script printed."""
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return msgspec.json.decode(line[len(RESULT_PREFIX) :], type=WrkResult)
    raise WrkError(f"wrk printed no result line:\n{stdout[-2000:]}")


def write_bodies(
    bodies: Sequence[bytes],
    folder: Path,
    headers: Sequence[Mapping[str, str]] | None = None,
) -> tuple[Path, bool]:
    """The bodies as the Lua script reads them, and whether they are hex-encoded.

    One JSON body per line; bodies with a line break (binary data) or headers of their own are
    written one per line as ``Name: value<TAB>...<TAB><hex of the body>`` instead.
    """
    path = folder / f"bodies-{len(bodies)}-{os.getpid()}-{id(bodies)}.jsonl"
    encoded = headers is not None or any(b"\n" in body for body in bodies)
    with path.open("wb") as handle:
        for index, body in enumerate(bodies):
            if not encoded:
                handle.write(body + b"\n")
                continue
            extra = headers[index] if headers is not None else {}
            fields = [f"{name}: {value}" for name, value in extra.items()]
            handle.write("\t".join([*fields, body.hex()]).encode() + b"\n")
    return path, encoded


def run_wrk(
    url: str,
    *,
    connections: int,
    duration_s: float,
    threads: int = 1,
    method: str = "GET",
    bodies: Sequence[bytes] = (),
    body_headers: Sequence[Mapping[str, str]] | None = None,
    expect: str | None = None,
    until: Callable[[], object] | None = None,
) -> WrkResult:
    """Run wrk once and return its checked result.

    Args:
        url: base URL with path, e.g. ``http://127.0.0.1:8000/predict`` (loopback only).
        connections: open connections, each with one request in flight.
        duration_s: seconds to run (rounded to whole seconds, at least 1: wrk takes no less).
        threads: wrk threads (at most ``connections``).
        method: GET or POST.
        bodies: request bodies, cycled through (POST).
        body_headers: more headers for each body (e.g. the binary tensor data's
            ``Inference-Header-Content-Length``), in the order of ``bodies``.
        expect: text every answer must contain to count as right.
        until: run while this call blocks (e.g. a retrain) instead; ``duration_s`` becomes
            the minimum. wrk is then stopped with SIGINT, on which it still reports.
    """
    if not url.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise WrkError(f"refusing to send load anywhere but loopback: {url}")
    path = urlsplit(url).path or "/"
    with tempfile.TemporaryDirectory(prefix="drugclf-wrk-") as tmp:
        env = {**os.environ, "WRK_METHOD": method, "WRK_PATH": path, "WRK_EXPECT": expect or ""}
        if bodies:
            body_file, encoded = write_bodies(bodies, Path(tmp), body_headers)
            env["WRK_BODY_FILE"] = str(body_file)
            env["WRK_BODY_HEX"] = "1" if encoded else ""
        command = [
            wrk_path(),
            f"-t{max(1, min(threads, connections))}",
            f"-c{connections}",
            # wrk takes whole seconds only; with `until`, a ceiling SIGINT cuts short.
            f"-d{UNTIL_CEILING_S if until else max(1, round(duration_s))}s",
            f"--timeout={TIMEOUT}",
            "--latency",
            "-s",
            str(SCRIPT),
            url,
        ]
        process = subprocess.Popen(  # noqa: S603
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            if until is not None:
                started = time.monotonic()
                until()
                time.sleep(max(0.0, duration_s - (time.monotonic() - started)))
                process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=duration_s + 60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    if process.returncode != 0:
        output = (stderr.strip() or stdout.strip())[-2000:]
        raise WrkError(f"wrk exited {process.returncode}: {output}")
    return parse_output(stdout)
