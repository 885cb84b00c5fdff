"""``scripts.sched_waits``: what ran on a core while a worker waited for it."""

from __future__ import annotations

import pytest

from scripts.sched_waits import OTHER_WORKER, SAME_WORKER, WRK, long_waits, main

# perf sched timehist lines: time, [cpu], task[tid/pid], wait, sch delay, run time (ms).
# Workers 100 (threads 100, 101) and 400, writer 200. On cpu 0 the writer runs from 10.000 to
# 10.003, and worker thread 101 waits from 10.0005 until it. On cpu 1 the worker's main thread
# waits from 10.0005 to 10.002 while wrk (until 10.001), its own thread 101 and worker 400 run;
# its later wait is too short to count.
TIMEHIST = """\
           time    cpu  task name                       wait time  sch delay   run time
                        [tid/pid]                          (msec)     (msec)     (msec)
--------------- ------  ------------------------------  ---------  ---------  ---------
   10.003000 [0000]  python[200]                       250.000      0.100      3.000
   10.003500 [0000]  tokio-rt-worker[101/100]            0.100      2.500      0.500
   10.001000 [0001]  wrk[300/299]                        0.000      0.000      1.000
   10.001300 [0001]  tokio-rt-worker[101/100]            0.000      0.000      0.300
   10.001800 [0001]  python[400]                         0.000      0.000      0.500
   10.002300 [0001]  python[100]                         0.300      1.500      0.300
   10.002600 [0001]  python[100]                         0.000      0.200      0.100
"""


def test_long_waits_add_up_who_had_the_core_meanwhile() -> None:
    waits = long_waits(TIMEHIST.splitlines(), workers={100, 400}, writers={200})
    assert waits.long_waits_ms == pytest.approx(2.5 + 1.5)
    assert waits.writer_within_ms == pytest.approx(2.5)
    assert waits.writer_cpu_ms == pytest.approx(3.0)
    # wrk ran 10.000-10.001: 0.5 ms of it inside the wait that began at 10.0005.
    assert waits.held_ms[WRK] == pytest.approx(0.5)
    assert waits.held_ms[SAME_WORKER] == pytest.approx(0.3)
    assert waits.held_ms[OTHER_WORKER] == pytest.approx(0.5)


def test_without_a_writer_nothing_is_held_against_it() -> None:
    waits = long_waits(TIMEHIST.splitlines(), workers={100, 400}, writers=set())
    assert waits.long_waits_ms == pytest.approx(4.0)
    assert waits.writer_within_ms == 0.0
    assert waits.writer_cpu_ms == 0.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--setting", "a", "--setting", "b", "NOEQUALS"],
            "--setting b: NOEQUALS is not KEY=VALUE",
        ),
        (["--setting", "a"], "name at least two --setting to compare"),
    ],
)
def test_bad_settings_are_refused_by_name_before_any_server_starts(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str
) -> None:
    monkeypatch.setattr("sys.argv", ["sched_waits", "artifacts", *argv])
    with pytest.raises(SystemExit) as refused:
        main()
    assert str(refused.value) == message
