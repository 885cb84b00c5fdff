"""The prediction log without HTTP: rows, batches, input recording, flush, queue full, retention.

Every test runs against SQLite and a real PostgreSQL server (the ``log_url`` fixture).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgspec
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from drugclf.contract import SAMPLE_PATIENT, Patient
from serving.monitoring.predlog import log as log_module
from serving.monitoring.predlog.backends import (
    Filters,
    PredictionLogError,
    SqliteBackend,
    open_backend,
)
from serving.monitoring.predlog.log import LogMetrics, PredictionLog
from serving.monitoring.predlog.wire import WriterConfig, write_frame
from tests.support import ROOT

# Request bodies, as /predict receives them: one patient, or an array (``batch``).
P1 = msgspec.json.encode(SAMPLE_PATIENT)
P2 = msgspec.json.encode(Patient(Age=61, Sex="F", BP="LOW", Cholesterol="HIGH", Na_to_K=25.4))
PROBS = np.array([[0.7, 0.1, 0.1, 0.05, 0.05]], dtype=np.float32)


def batch(*bodies: bytes) -> bytes:
    """The body of a batch of these patients."""
    return b"[" + b",".join(bodies) + b"]"


def make_log(
    url: str, spool_dir: Path, **options: object
) -> tuple[PredictionLog, CollectorRegistry]:
    """A log on ``url`` whose spool is ``spool_dir``."""
    registry = CollectorRegistry()
    values: dict[str, object] = {"flush_interval": 0.02}
    values.update(options)
    log = PredictionLog(open_backend(url), LogMetrics(registry), spool_dir=spool_dir, **values)  # type: ignore[arg-type]
    return log, registry


def wait_for_rows(log: PredictionLog, rows: int, timeout: float = 60.0) -> bool:
    """Wait until the database holds ``rows`` rows (a backlog another writer adopted)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.backend.count(Filters())[0] >= rows:
            return log.backend.count(Filters())[0] == rows
        time.sleep(0.1)
    return False


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_single_and_batch_become_one_row_per_patient(log_url: str, tmp_path: Path) -> None:
    log, registry = make_log(log_url, tmp_path / "spool")
    log.start()
    log.record("r1", "v1", P1, ["DrugA"], PROBS, time.perf_counter())
    log.record(
        "r2",
        "v1",
        batch(P1, P2),
        ["DrugA", "DrugY"],
        np.repeat(PROBS, 2, axis=0),
        time.perf_counter(),
    )
    assert log.flush()
    log.stop()
    rows = log.backend.recent(Filters(), 10, None)
    assert len(rows) == 3
    newest = rows[0]
    assert newest[1:8][1:6] == ("r2", 1, 2, "v1", "DrugY")
    assert newest[8:13] == (61, "F", "LOW", "HIGH", 25.4)
    assert newest[13] == pytest.approx(0.7)
    assert log.backend.count(Filters()) == (3, 2)
    assert sample(registry, "drugclf_prediction_log_written_total") == 3


def test_inputs_off_stores_no_inputs_or_probabilities(log_url: str, tmp_path: Path) -> None:
    log, _ = make_log(log_url, tmp_path / "spool", record_inputs=False)
    log.start()
    log.record(
        "r1",
        "v1",
        batch(P1, P2),
        ["DrugA", "DrugY"],
        np.repeat(PROBS, 2, axis=0),
        time.perf_counter(),
    )
    log.stop()
    rows = log.backend.recent(Filters(), 10, None)
    assert len(rows) == 2
    for row in rows:
        assert row[8:18] == (None,) * 10  # five inputs, five probabilities
        assert row[6] in {"DrugA", "DrugY"} and row[5] == "v1" and row[7] >= 0
    assert log.backend.inputs(Filters(), 10) == []


def test_stop_flushes_everything_accepted(log_url: str, tmp_path: Path) -> None:
    log, _ = make_log(
        log_url, tmp_path / "spool", flush_interval=60.0
    )  # the writer would not wake by itself
    log.start()
    for i in range(500):
        log.record(f"r{i}", "v1", P1, ["DrugA"], PROBS, time.perf_counter())
    log.stop()
    assert log.backend.count(Filters()) == (500, 500)


def test_full_queue_drops_new_records_and_counts_them(
    log_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log, registry = make_log(log_url, tmp_path / "spool", queue_size=3, flush_interval=60.0)
    log.start()
    for _ in range(3):
        log.record(None, "v1", P1, ["DrugA"], PROBS, time.perf_counter())
    log.record(
        None,
        "v1",
        batch(P1, P2),
        ["DrugA", "DrugB"],
        np.repeat(PROBS, 2, axis=0),
        time.perf_counter(),
    )
    log.stop()
    assert sample(registry, "drugclf_prediction_log_dropped_total", reason="queue_full") == 2
    assert log.backend.count(Filters()) == (3, 3)
    assert "dropping records (queue_full)" in caplog.text


def test_filters_and_keyset_pages(log_url: str, tmp_path: Path) -> None:
    log, _ = make_log(log_url, tmp_path / "spool")
    log.start()
    for i in range(5):
        log.record(f"a{i}", "v1", P1, ["DrugA"], PROBS, time.perf_counter())
    for i in range(3):
        log.record(f"b{i}", "v2", P2, ["DrugY"], PROBS, time.perf_counter())
    log.stop()
    backend = log.backend
    assert backend.count(Filters(model_version="v2")) == (3, 3)
    assert backend.count(Filters(predicted="DrugA")) == (5, 5)
    first = backend.recent(Filters(), 4, None)
    second = backend.recent(Filters(), 4, first[-1][0])
    ids = [r[0] for r in first + second]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 8
    assert backend.count(Filters(since=time.time() + 60)) == (0, 0)
    assert backend.class_mix(Filters()) == [("v1", "DrugA", 5), ("v2", "DrugY", 3)]
    assert sum(n for _, n in backend.hourly(Filters())) == 8


def test_retention_keeps_newest_rows_and_drops_old_ones(log_url: str, tmp_path: Path) -> None:
    log, _ = make_log(log_url, tmp_path / "spool")
    log.start()
    for i in range(10):
        log.record(f"r{i}", "v1", P1, ["DrugA"], PROBS, time.perf_counter())
    log.stop()
    backend = log.backend
    with backend.session() as conn:
        assert backend.prune(conn, older_than=None, max_rows=4) == 6
    assert [r[2] for r in backend.recent(Filters(), 10, None)] == ["r9", "r8", "r7", "r6"]
    with backend.session() as conn:
        backend.prune(conn, older_than=time.time() + 1, max_rows=None)
    assert backend.count(Filters()) == (0, 0)


def test_retention_runs_at_start(log_url: str, tmp_path: Path) -> None:
    log, _ = make_log(log_url, tmp_path / "spool")
    log.start()
    for i in range(6):
        log.record(f"r{i}", "v1", P1, ["DrugA"], PROBS, time.perf_counter())
    log.stop()
    again, _ = make_log(log_url, tmp_path / "spool", max_rows=2)
    again.start()
    again.stop()
    assert again.backend.count(Filters()) == (2, 2)


def test_a_write_failure_is_logged_and_the_rows_wait_in_the_spool(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log, registry = make_log(f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "spool")
    log.start()
    backend = log.backend
    assert isinstance(backend, SqliteBackend)
    with backend.session() as conn:
        conn.execute("DROP TABLE predictions")
        conn.commit()
    log.record("r1", "v1", P1, ["DrugA"], PROBS, time.perf_counter())
    log.stop()
    assert sample(registry, "drugclf_prediction_log_dropped_total", reason="write_error") == 0
    assert "write failed" in caplog.text
    assert "1 rows left in the spool" in caplog.text
    again, _ = make_log(f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "spool")
    again.start()  # creates the table again, and writes what the spool holds
    assert wait_for_rows(again, 1)
    again.stop()


def test_bad_location_fails_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    log, _ = make_log(f"sqlite:///{blocker / 'sub' / 'p.db'}", tmp_path / "spool")
    with pytest.raises(PredictionLogError):
        log.start()
    with pytest.raises(PredictionLogError, match="unsupported"):
        open_backend("mysql://x")


def test_password_is_not_in_the_description() -> None:
    backend = open_backend("postgresql://user:secret@db:5432/log")
    assert "secret" not in backend.description


def _indexes(url: str) -> set[str]:
    backend = open_backend(url)
    if isinstance(backend, SqliteBackend):
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'predictions'"
    else:
        sql = "SELECT indexname FROM pg_indexes WHERE tablename = 'predictions'"
    with backend.session() as conn:
        return {name for (name,) in conn.execute(sql).fetchall()}


def test_only_the_time_index_is_kept(log_url: str, tmp_path: Path) -> None:
    # A log created by an earlier version also had a (model_version, ts) index: every row paid
    # for it. Starting the log drops it and keeps the data.
    backend = open_backend(log_url)
    backend.create_schema()
    with backend.session() as conn:
        conn.execute("CREATE INDEX predictions_version_ts ON predictions (model_version, ts)")
        conn.commit()
    assert "predictions_version_ts" in _indexes(log_url)
    log, _ = make_log(log_url, tmp_path / "spool")
    log.start()
    log.record("r1", "v1", P1, ["DrugA"], PROBS, time.perf_counter())
    log.stop()
    indexes = _indexes(log_url)
    assert "predictions_ts" in indexes
    assert "predictions_version_ts" not in indexes
    assert log.backend.count(Filters(model_version="v1")) == (1, 1)


@pytest.mark.parametrize("idle", [False, True])
def test_the_writer_process_yields_the_cores_to_the_worker(tmp_path: Path, idle: bool) -> None:
    log, _ = make_log(
        f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "spool", writer_niceness=7, writer_idle=idle
    )
    base = os.getpriority(os.PRIO_PROCESS, 0)
    log.start()
    try:
        log.record("r1", "v1", P1, ["DrugA"], PROBS, time.perf_counter())
        assert log.flush()  # the writer has written: it set its priority before that
        pid = log.writer_pid
        assert pid is not None and pid != os.getpid()
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(base + 7, 19)
        if hasattr(os, "SCHED_IDLE"):
            expected = os.SCHED_IDLE if idle else os.sched_getscheduler(0)
            assert os.sched_getscheduler(pid) == expected
        assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the worker is untouched
    finally:
        log.stop()


def test_the_writer_process_freezes_what_its_setup_made(tmp_path: Path) -> None:
    # Its full collections must not walk every imported module's objects (docs/serving.md).
    config = WriterConfig(
        url=f"sqlite:///{tmp_path / 'p.db'}",
        spool_dir=str(tmp_path / "spool"),
        owner="test",
        record_inputs=True,
        max_age_s=None,
        max_rows=None,
        prune_interval=300.0,
        niceness=0,
        idle=False,
        drain_s=1.0,
    )
    script = (
        "import gc, sys\n"
        "from serving.monitoring.predlog import writer\n"
        "writer.main()\n"
        "print(gc.get_freeze_count(), file=sys.stderr)\n"
    )
    read_end, write_end = os.pipe()
    write_frame(write_end, msgspec.msgpack.encode(config))
    os.close(write_end)  # the worker is gone at once: the writer writes nothing and returns
    with os.fdopen(read_end, "rb") as inbox:
        done = subprocess.run(
            [sys.executable, "-c", script],
            stdin=inbox,
            capture_output=True,
            cwd=ROOT,
            timeout=60,
            check=True,
        )
    assert int(done.stderr.split()[-1]) > 1000


def test_a_killed_writer_is_replaced_and_nothing_acknowledged_is_lost(tmp_path: Path) -> None:
    log, registry = make_log(f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "spool")
    log.start()
    try:
        for i in range(5):
            log.record(f"a{i}", "v1", P1, ["DrugA"], PROBS, time.perf_counter())
        assert log.flush()
        first = log.writer_pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        for i in range(5):
            log.record(f"b{i}", "v1", P2, ["DrugY"], PROBS, time.perf_counter())
        assert log.flush()
        assert log.writer_pid not in (None, first)
    finally:
        log.stop()
    assert log.backend.count(Filters()) == (10, 10)
    assert sample(registry, "drugclf_prediction_log_dropped_total", reason="write_error") == 0


def test_the_writer_outlives_a_sigterm_to_the_group_until_the_worker_stops(
    tmp_path: Path,
) -> None:
    # `kill` of the process group (docker stop, Ctrl-C) reaches the writer too: it must keep
    # running until the worker has shipped its last frames.
    log, _ = make_log(f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "spool", flush_interval=60.0)
    log.start()
    assert log.writer_pid is None  # it starts with the first frame, not with the worker
    log.record("first", "v1", P1, ["DrugA"], PROBS, time.perf_counter())
    assert log.flush()
    pid = log.writer_pid
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGINT)
    for i in range(300):
        log.record(f"r{i}", "v1", P1, ["DrugA"], PROBS, time.perf_counter())
    log.stop()
    assert log.writer_pid is None
    assert log.backend.count(Filters()) == (301, 301)


def test_a_large_batch_is_stored_row_for_row(log_url: str, tmp_path: Path) -> None:
    # More rows than one INSERT statement takes, and a remainder: every row in its place.
    n = 450
    patients = [
        Patient(Age=20 + i % 60, Sex="F", BP="LOW", Cholesterol="HIGH", Na_to_K=5.0 + i / 10)
        for i in range(n)
    ]
    probabilities = np.zeros((n, 5), dtype=np.float32)
    probabilities[np.arange(n), np.arange(n) % 5] = 1.0
    labels = [("DrugA", "DrugB", "DrugC", "DrugX", "DrugY")[i % 5] for i in range(n)]
    log, _ = make_log(log_url, tmp_path / "spool")
    log.start()
    body = msgspec.json.encode(patients)
    log.record("big", "v1", body, labels, probabilities, time.perf_counter())
    log.stop()
    rows = sorted(log.backend.recent(Filters(), 1000, None), key=lambda row: row[3])
    assert [row[3] for row in rows] == list(range(n))  # batch_index
    for i, row in enumerate(rows):
        assert row[4] == n and row[6] == labels[i]
        assert row[8] == 20 + i % 60 and row[12] == pytest.approx(5.0 + i / 10)
        assert row[13 + i % 5] == 1.0


def test_the_queue_bound_counts_patients_not_requests(tmp_path: Path) -> None:
    # A worker holds every queued patient (encoded): ten requests of 1,000 patients must not
    # fit where ten single patients do.
    log, registry = make_log(
        f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "spool", queue_size=10, flush_interval=60.0
    )
    log.start()
    eight = np.repeat(PROBS, 8, axis=0)
    log.record("r1", "v1", batch(*[P1] * 8), ["DrugA"] * 8, eight, time.perf_counter())
    log.record(
        "r2", "v1", batch(*[P2] * 3), ["DrugY"] * 3, eight[:3], time.perf_counter()
    )  # 11 > 10
    log.record("r3", "v1", P2, ["DrugY"], PROBS, time.perf_counter())  # 9 <= 10
    assert log.flush()
    # Written rows no longer count: the queue takes 10 more.
    log.record("r4", "v1", batch(*[P1] * 8), ["DrugA"] * 8, eight, time.perf_counter())
    log.stop()
    assert sample(registry, "drugclf_prediction_log_dropped_total", reason="queue_full") == 3
    assert log.backend.count(Filters()) == (17, 3)


def test_a_burst_is_stored_as_the_rows_of_each_of_its_requests(
    log_url: str, tmp_path: Path
) -> None:
    # The shadows' path: one record for a model call over several requests, handed over from
    # their own thread; each patient of each request is one row, role shadow, no inputs.
    log, registry = make_log(log_url, tmp_path / "spool")
    log.start()
    log.record("r1", "v1", P1, ["DrugA"], PROBS, time.perf_counter())
    log.record("r2", "v1", batch(P1, P2), ["DrugA", "DrugY"], np.repeat(PROBS, 2, axis=0), 0.0)
    labels = ["DrugA", "DrugB", "DrugY", "DrugC"]
    burst = threading.Thread(
        target=log.record_burst,
        args=("v2", ["r1", "r2", None], [1, 2, 1], labels, np.repeat(PROBS, 4, axis=0), 0.004),
    )
    burst.start()
    burst.join()
    assert log.flush()
    log.stop()
    rows = log.backend.recent(Filters(), 10, None)
    shadows = sorted(
        (row[2] or "", row[3], row[4], row[5], row[6], row[7])
        for row in rows
        if row[19] == "shadow"
    )
    assert shadows == [
        ("", 0, 1, "v2", "DrugC", pytest.approx(4.0)),
        ("r1", 0, 1, "v2", "DrugA", pytest.approx(4.0)),
        ("r2", 0, 2, "v2", "DrugB", pytest.approx(4.0)),
        ("r2", 1, 2, "v2", "DrugY", pytest.approx(4.0)),
    ]
    assert all(v is None for row in rows if row[19] == "shadow" for v in row[8:18])
    assert sum(row[19] == "primary" for row in rows) == 3
    assert sample(registry, "drugclf_prediction_log_written_total") == 7


def test_bursts_from_a_thread_and_records_on_the_loop_are_all_counted(tmp_path: Path) -> None:
    # record() (the event loop) and record_burst() (the shadow thread) each keep their own
    # count of accepted rows: flush() waits for both, and the depth comes back to 0.
    log, registry = make_log(f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "spool")
    log.start()

    def shadows() -> None:
        for i in range(200):
            ids: list[str | None] = [f"r{i}a", f"r{i}b", f"r{i}c"]
            log.record_burst("v2", ids, [1, 1, 1], ["DrugA"] * 3, np.repeat(PROBS, 3, axis=0), 0)

    thread = threading.Thread(target=shadows)
    thread.start()
    for i in range(600):
        log.record(f"r{i}", "v1", P1, ["DrugA"], PROBS, time.perf_counter())
    thread.join()
    assert log.flush()
    assert log.depth == 0
    log.stop()
    assert log.backend.count(Filters()) == (1200, 1200)
    assert sample(registry, "drugclf_prediction_log_written_total") == 1200


def test_a_burst_over_the_bound_is_dropped_whole_and_counted(tmp_path: Path) -> None:
    log, registry = make_log(
        f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "spool", queue_size=5, flush_interval=60.0
    )
    log.start()
    log.record("r1", "v1", P1, ["DrugA"], PROBS, time.perf_counter())
    log.record("r2", "v1", P1, ["DrugA"], PROBS, time.perf_counter())
    four = np.repeat(PROBS, 4, axis=0)
    log.record_burst("v2", ["r1", "r2"], [2, 2], ["DrugB"] * 4, four, 0.001)  # 6 > 5
    log.record_burst("v2", ["r1", "r2"], [1, 2], ["DrugB"] * 3, four[:3], 0.001)  # 5 <= 5
    log.stop()
    assert sample(registry, "drugclf_prediction_log_dropped_total", reason="queue_full") == 4
    assert log.backend.count(Filters()) == (5, 4)


def test_a_request_the_writer_cannot_expand_is_counted_and_the_rest_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A bug in the worker (a body that does not hold the labelled patients) must cost only that
    # request's rows, counted and logged, never the frame it came in.
    log, registry = make_log(f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "spool")
    log.start()
    log.record("ok1", "v1", P1, ["DrugA"], PROBS, time.perf_counter())
    log.record(
        "two", "v1", P1, ["DrugA", "DrugY"], np.repeat(PROBS, 2, axis=0), time.perf_counter()
    )
    log.record("junk", "v1", b"{not json", ["DrugA"], PROBS, time.perf_counter())
    log.record("ok2", "v1", P2, ["DrugY"], PROBS, time.perf_counter())
    assert log.flush()
    log.stop()
    assert sorted(row[2] for row in log.backend.recent(Filters(), 10, None)) == ["ok1", "ok2"]
    assert sample(registry, "drugclf_prediction_log_dropped_total", reason="write_error") == 3
    assert "2 labels for 1 patients" in caplog.text
    assert "the request body is not patients" in caplog.text


def test_a_writer_that_cannot_run_costs_neither_records_nor_the_shutdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A writer that exits at once (a broken install, say): the answers go on, the records wait
    # in the spool, and stop() returns instead of restarting it forever.
    monkeypatch.setattr(log_module, "WRITER_COMMAND", [sys.executable, "-c", "raise SystemExit(3)"])
    log, registry = make_log(f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "spool")
    log.start()
    for i in range(4):
        log.record(f"r{i}", "v1", P1, ["DrugA"], PROBS, time.perf_counter())
    started = time.monotonic()
    log.stop()
    assert time.monotonic() - started < 10
    assert sample(registry, "drugclf_prediction_log_dropped_total", reason="write_error") == 0
    assert log.backend.count(Filters()) == (0, 0)
    assert "writer exited (status 3)" in caplog.text
    assert "4 rows left in the spool" in caplog.text
    monkeypatch.undo()
    again, _ = make_log(f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "spool")
    again.start()
    assert wait_for_rows(again, 4)
    again.stop()


def test_stop_is_prompt_when_the_database_fails(tmp_path: Path) -> None:
    # The writer retries its first transaction. stop() must still end quickly, lose no row and
    # leave no writer behind: the rows wait in the spool for the next start.
    log, registry = make_log(f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "spool")
    log.start()
    backend = log.backend
    with backend.session() as conn:
        conn.execute("DROP TABLE predictions")
        conn.commit()
    many = np.repeat(PROBS, 1000, axis=0)
    for i in range(6):
        log.record(f"r{i}", "v1", batch(*[P1] * 1000), ["DrugA"] * 1000, many, time.perf_counter())
    time.sleep(1.0)  # the writer has failed and waits to try again
    pid = log.writer_pid
    assert pid is not None
    started = time.monotonic()
    log.stop(timeout=20.0)
    assert time.monotonic() - started < 10
    assert sample(registry, "drugclf_prediction_log_dropped_total", reason="write_error") == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    again, _ = make_log(f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "spool")
    again.start()
    assert wait_for_rows(again, 6000)
    again.stop()


ORPHAN_SCRIPT = """
import sys, os, time
from pathlib import Path
from tests.monitoring.test_predlog import make_log, P1, PROBS
log, _ = make_log("sqlite:///" + sys.argv[1], Path(sys.argv[1]).parent / "spool")
log.start()
with log.backend.session() as conn:
    conn.execute("DROP TABLE predictions")
    conn.commit()
log.record("r", "v1", P1, ["DrugA"], PROBS, time.perf_counter())
time.sleep(1.0)
print(log.writer_pid, flush=True)
os._exit(0)
"""


@pytest.mark.slow  # waits seconds for the orphaned writer to give up
def test_a_writer_left_retrying_by_a_dead_worker_exits(tmp_path: Path) -> None:
    # The worker dies (SIGKILL, OOM) while the writer retries a failing database: the writer
    # notices its new parent, makes a last attempt and exits instead of retrying forever.
    done = subprocess.run(
        [sys.executable, "-c", ORPHAN_SCRIPT, str(tmp_path / "p.db")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pid = int(done.stdout.split()[-1])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    pytest.fail("the writer was still retrying 15 s after its worker died")
