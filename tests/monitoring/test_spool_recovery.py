"""The prediction log's spool keeps records through what stops a writer: a restart, a dead
worker, a killed writer, a full disk bound, a flood faster than the database. Without HTTP;
SQLite and PostgreSQL where the database matters."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from serving.monitoring.predlog import log as log_module
from serving.monitoring.predlog import spool
from serving.monitoring.predlog.backends import Filters
from serving.monitoring.predlog.log import PredictionLog
from tests.support import ROOT

from .test_predlog import P1, P2, PROBS, batch, make_log, sample, wait_for_rows

# A writer that never writes: it reads its input until the worker closes it.
IDLE_WRITER = [sys.executable, "-c", "import sys; sys.stdin.buffer.read()"]


def spool_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def stored_ids(log: PredictionLog) -> list[str]:
    with log.backend.session() as conn:
        rows = conn.execute("SELECT request_id FROM predictions").fetchall()
    return [request_id for (request_id,) in rows]


def test_a_restart_writes_what_the_last_run_left_in_the_spool(
    log_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_module, "WRITER_COMMAND", IDLE_WRITER)
    first, registry = make_log(log_url, tmp_path / "spool")
    first.start()
    for i in range(300):
        first.record(f"r{i}", "v1", P1, ["DrugA"], PROBS, time.perf_counter())
    first.record("b", "v1", batch(P1, P2), ["DrugA", "DrugY"], np.repeat(PROBS, 2, axis=0), 0.0)
    first.stop()
    assert first.backend.count(Filters()) == (0, 0)
    assert sample(registry, "drugclf_prediction_log_dropped_total", reason="write_error") == 0
    monkeypatch.undo()
    second, registry = make_log(log_url, tmp_path / "spool")
    second.start()  # no traffic: it finds the backlog by itself
    try:
        assert wait_for_rows(second, 302)
        assert sorted(stored_ids(second)) == sorted([*(f"r{i}" for i in range(300)), "b", "b"])
        deadline = time.monotonic() + 10
        while spool_files(tmp_path / "spool") != [f"{second.owner}.lock"]:
            assert time.monotonic() < deadline, spool_files(tmp_path / "spool")
            time.sleep(0.05)  # the adopted segment and its lock are deleted once written
        assert sample(registry, "drugclf_prediction_log_written_total") == 302
    finally:
        second.stop()
    assert spool_files(tmp_path / "spool") == []


DEAD_WORKER = """
import os, sys, time
from pathlib import Path
from serving.monitoring.predlog import log as log_module
from tests.monitoring.test_predlog import make_log, P1, PROBS
log_module.WRITER_COMMAND = [sys.executable, "-c", "import sys; sys.stdin.buffer.read()"]
log, _ = make_log("sqlite:///" + sys.argv[1], Path(sys.argv[2]))
log.start()
for i in range(50):
    log.record(f"dead{i}", "v1", P1, ["DrugA"], PROBS, time.perf_counter())
while log._spooled_rows < 50:  # until the shipper has spooled them all
    time.sleep(0.01)
print(log.worker, flush=True)
os._exit(0)  # as SIGKILL would: no stop(), its segment and lock file stay
"""


def test_the_segments_of_a_worker_that_died_are_adopted(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    done = subprocess.run(
        [sys.executable, "-c", DEAD_WORKER, str(tmp_path / "p.db"), str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    dead = done.stdout.split()[-1]
    assert sorted(name.rsplit(".", 1)[-1] for name in spool_files(folder)) == ["lock", "spool"]
    log, registry = make_log(f"sqlite:///{tmp_path / 'p.db'}", folder)
    log.start()
    try:
        assert wait_for_rows(log, 50)
        with log.backend.session() as conn:
            workers = {w for (w,) in conn.execute("SELECT worker FROM predictions").fetchall()}
        assert workers == {dead}  # the rows name the worker that answered, not the adopter
    finally:
        log.stop()
    assert spool_files(folder) == []
    assert sample(registry, "drugclf_prediction_log_written_total") == 50


def test_a_cut_frame_left_by_a_killed_worker_is_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "spool"
    subprocess.run(
        [sys.executable, "-c", DEAD_WORKER, str(tmp_path / "p.db"), str(folder)],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=True,
    )
    (segment,) = folder.glob("*.spool")
    whole = segment.stat().st_size
    with segment.open("ab") as out:  # a last append the kill cut short: 7 rows, half a body
        out.write(spool.encode_frame(b"x" * 100, 7, 1, time.time())[:60])
    log, registry = make_log(f"sqlite:///{tmp_path / 'p.db'}", folder)
    log.start()
    try:
        assert wait_for_rows(log, 50)
        deadline = time.monotonic() + 10
        while sample(registry, "drugclf_prediction_log_dropped_total", reason="write_error") < 7:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        log.stop()
    assert f"60 bytes from byte {whole}" in caplog.text
    assert spool_files(folder) == []


@pytest.mark.parametrize("kills", [3])
def test_killing_the_writer_again_and_again_stores_each_row_once(
    log_url: str, tmp_path: Path, kills: int
) -> None:
    log, registry = make_log(log_url, tmp_path / "spool")
    log.start()
    stop = threading.Event()
    sent: list[str] = []

    def traffic() -> None:
        while not stop.is_set():
            request_id = f"r{len(sent)}"
            size = 1 if len(sent) % 10 else 300
            body = P1 if size == 1 else batch(*[P1] * size)
            log.record(
                request_id, "v1", body, ["DrugA"] * size, np.repeat(PROBS, size, axis=0), 0.0
            )
            sent.append(request_id)
            time.sleep(0.0005)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        killed: set[int] = set()
        for _ in range(kills):
            deadline = time.monotonic() + 10
            while log.writer_pid in (None, *killed):
                assert time.monotonic() < deadline, "no new writer"
                time.sleep(0.02)
            time.sleep(0.3)  # let it write a few transactions
            pid = log.writer_pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join()
    assert log.flush(timeout=60)
    log.stop()
    ids = stored_ids(log)
    expected_rows = sum(300 if int(i[1:]) % 10 == 0 else 1 for i in sent)
    assert len(ids) == expected_rows  # nothing lost, nothing twice
    assert set(ids) == set(sent)
    assert sample(registry, "drugclf_prediction_log_dropped_total", reason="write_error") == 0


def test_past_the_disk_bound_records_are_dropped_counted_and_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(log_module, "WRITER_COMMAND", IDLE_WRITER)  # the database never catches up
    bound = 20_000
    folder = tmp_path / "spool"
    log, registry = make_log(f"sqlite:///{tmp_path / 'p.db'}", folder, spool_max_bytes=bound)
    log.start()
    for i in range(400):  # about 300 bytes each: 120,000 bytes in all
        log.record(f"r{i}", "v1", P1, ["DrugA"], PROBS, time.perf_counter())
        if i % 50 == 0:
            time.sleep(0.05)  # several appends
    assert log.flush(timeout=0.5) is False  # kept, not written
    log.stop()
    dropped = sample(registry, "drugclf_prediction_log_dropped_total", reason="spool_full")
    assert 0 < dropped < 400
    assert spool.disk_use(folder) <= bound
    assert "dropping records (spool_full)" in caplog.text
    assert f"holds {bound} bytes" in caplog.text
    monkeypatch.undo()
    again, _ = make_log(f"sqlite:///{tmp_path / 'p.db'}", folder)
    again.start()
    try:
        assert wait_for_rows(again, 400 - int(dropped))
    finally:
        again.stop()


def test_a_flood_that_outruns_the_writer_drops_nothing_and_drains(
    log_url: str, tmp_path: Path
) -> None:
    # 1,000-patient batches far faster than a writer writes them: the old in-memory queue
    # (50,000 rows) overflowed; the spool takes the backlog.
    batches = 150
    log, registry = make_log(log_url, tmp_path / "spool", writer_niceness=19)
    log.start()
    body = batch(*[P1] * 1000)
    probabilities = np.repeat(PROBS, 1000, axis=0)
    deepest = 0
    started = time.monotonic()
    for i in range(batches):
        log.record(f"b{i}", "v1", body, ["DrugA"] * 1000, probabilities, time.perf_counter())
        deepest = max(deepest, log.depth)
        time.sleep(0.001)
    answered_in = time.monotonic() - started
    assert log.flush(timeout=180)
    drained_in = time.monotonic() - started - answered_in
    log.stop()
    assert deepest > 50_000  # more than the old queue held
    assert log.backend.count(Filters()) == (batches * 1000, batches)
    for reason in ("queue_full", "spool_full", "write_error"):
        assert sample(registry, "drugclf_prediction_log_dropped_total", reason=reason) == 0
    print(f"{batches} batches in {answered_in:.2f} s, drained {drained_in:.2f} s later")
