"""``python -m training watch`` (``make watch``) for real: a watcher process over copied folders.

The watcher runs the small pipeline on each change of a copied data folder or of a code folder
of the test's own, prints one summary line per run, and keeps waiting after a bad CSV.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import ROOT, TEST_N_ESTIMATORS, bare_env

pytest.importorskip("watchfiles", reason="the watch extra is not installed (make install)")

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 120
SUMMARY = re.compile(
    r"full ok in [\d.]+ s: run \S+, test accuracy 0\.\d{3}, CV 0\.\d{3} ± 0\.\d{3}, "
    r"parity 0/[\d,]+ mismatches, version \d{8}-\d{6}-[0-9a-f]{6}"
)


@dataclass
class Watcher:
    """The watcher process and the lines it has printed so far."""

    process: subprocess.Popen[str]
    lines: queue.Queue[str]
    seen: list[str]

    def wait_for(self, pattern: str, timeout: float = RUN_TIMEOUT_S) -> str:
        """The next line matching ``pattern`` (a regular expression)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "\n".join(self.seen)
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.seen))


@pytest.fixture
def watcher(tmp_path: Path, data_path: Path) -> Iterator[tuple[Watcher, Path, Path]]:
    """A watcher over ``tmp/data`` and ``tmp/code``; yields it with those two folders."""
    data, code = tmp_path / "data", tmp_path / "code"
    data.mkdir()
    code.mkdir()
    shutil.copy(data_path, data / "drug200.csv")
    (code / "features.py").write_text("EDGES = 1\n", encoding="utf-8")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "training",
            "watch",
            "--data",
            str(data / "drug200.csv"),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--artifacts-dir",
            str(tmp_path / "artifacts"),
            "--code",
            str(code),
            "--debounce-ms",
            "300",
            "--",
            "--n-estimators",
            str(TEST_N_ESTIMATORS),
            "--parity-cases",
            "500",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=bare_env(PATH=os.environ.get("PATH", "/usr/bin:/bin"), PYTHONUNBUFFERED="1"),
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield Watcher(process, lines, []), data, code
    finally:
        # Ctrl-C, as a user stops it: the watcher exits cleanly (and coverage can record it).
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        reader.join(timeout=30)  # at the end of the output, once the whole group is gone
        assert process.stdout is not None
        process.stdout.close()


def test_a_bad_file_says_why_and_the_next_good_change_runs_the_pipeline(
    watcher: tuple[Watcher, Path, Path], data_path: Path
) -> None:
    watch, data, code = watcher
    watch.wait_for(r"^watching .*data.*code")

    # A half-written file: the validation message, and the watcher keeps waiting.
    good = data_path.read_text(encoding="utf-8").splitlines()
    bad = [good[0], good[1], "abc" + good[2][good[2].index(",") :], *good[3:]]
    (data / "drug200.csv").write_text("\n".join(bad) + "\n", encoding="utf-8")
    watch.wait_for(r"changed: drug200\.csv")
    watch.wait_for(r"full failed \(exit 2\)")
    watch.wait_for(r"line 3, column Age: 'abc' is not an integer")
    watch.wait_for(r"^waiting for the next change")
    assert watch.process.poll() is None

    # The file fixed: one summary line (accuracy, CV, parity, version).
    shutil.copy(data_path, data / "drug200.csv")
    assert SUMMARY.search(watch.wait_for(r"full ok in"))

    # A change to the training code runs it again; other files are ignored.
    (code / "notes.txt").write_text("not code\n", encoding="utf-8")
    (code / "features.py").write_text("EDGES = 2\n", encoding="utf-8")
    watch.wait_for(r"changed: features\.py$")
    assert SUMMARY.search(watch.wait_for(r"full ok in"))
    watch.wait_for(r"^waiting for the next change")
    watch.process.send_signal(signal.SIGINT)
    assert watch.process.wait(timeout=30) == 130  # Ctrl-C: "interrupted", as the CLI says


def test_a_folder_that_is_not_there_is_refused_not_watched_for_ever(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from training import cli

    dirs = ["--runs-dir", str(tmp_path / "runs"), "--artifacts-dir", str(tmp_path / "artifacts")]
    data = ["--data", str(tmp_path / "nodata" / "drug200.csv")]
    assert cli.main(["watch", *data, "--code", str(tmp_path / "nocode"), *dirs]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "error: watch: no such folder:" in err
    assert "nodata" in err and "nocode" in err
