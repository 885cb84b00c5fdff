"""What ``make replicas-test`` does to the replicas, and what it measures each time.

- throughput: wrk through the balancer over 1, 2 and 3 replicas, interleaved;
- promote: a new version promoted through one replica while traffic runs;
- kill: one replica SIGKILLed under traffic, then started again;
- the log: every answered request id in the shared PostgreSQL log exactly once.
"""

from __future__ import annotations

import http.client
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from loadtests.bench.http_bench import PREDICT_EXPECT, wait_for_log
from loadtests.bench.server import HOST
from loadtests.bench.wrk import run_wrk
from loadtests.replicas.balancer import Balancer
from loadtests.replicas.cluster import Cluster
from loadtests.replicas.traffic import Outcome, Traffic

WRK_CONNECTIONS = 16
# Traffic before and after each event, so that the event happens under steady load.
STEADY_S = 2.0


@dataclass
class ThroughputRun:
    """One wrk run through the pool of the first ``replicas`` replicas."""

    replicas: int
    requests_per_s: float
    p99_us: float
    failures: int
    requests: int
    cpu_us_per_request: dict[str, float]


def throughput(
    cluster: Cluster, balancer: Balancer, bodies: Sequence[bytes], duration_s: float, repeats: int
) -> list[ThroughputRun]:
    """Load from wrk at 16 connections over 1, 2 and 3 replicas, ``repeats`` times interleaved.

    CPU per request counts each replica's processes (worker, main, log writer) and includes
    its log catching up after the run.
    """
    runs = []
    for _ in range(repeats):
        for count in range(1, len(cluster.replicas) + 1):
            pool = cluster.replicas[:count]
            cpu_before = [r.server.cpu_seconds() for r in pool]
            answered_before = _answered(balancer, count)
            result = run_wrk(
                f"http://{HOST}:{balancer.port(count)}/predict",
                connections=WRK_CONNECTIONS,
                duration_s=duration_s,
                method="POST",
                bodies=bodies,
                expect=PREDICT_EXPECT,
            )
            for replica in pool:
                wait_for_log(replica.port)
            answered = _answered(balancer, count)
            cpu = {}
            for replica, before in zip(pool, cpu_before, strict=True):
                served = answered[replica.name] - answered_before[replica.name]
                spent = replica.server.cpu_seconds() - before
                cpu[replica.name] = spent / served * 1e6 if served else float("nan")
            runs.append(
                ThroughputRun(
                    count,
                    result.requests_per_s,
                    result.p99_us,
                    result.failures,
                    result.requests,
                    cpu,
                )
            )
    return runs


def _answered(balancer: Balancer, replicas: int) -> dict[str, int]:
    return {name: int(s["hrsp_2xx"] or 0) for name, s in balancer.servers(replicas).items()}


class _Answered:
    """What a scenario's traffic saw, counted from its outcomes."""

    outcomes: list[Outcome]

    @property
    def failures(self) -> int:
        """Requests the client saw fail (not answered 200 with a prediction, not resent)."""
        return sum(o.failed for o in self.outcomes)

    @property
    def resent(self) -> int:
        """Requests the balancer closed unanswered on a kept-alive connection, sent again."""
        return sum(o.resent for o in self.outcomes)


@dataclass
class PromoteResult(_Answered):
    """Traffic around a promotion made through one replica."""

    version_before: str
    version_after: str
    through: str
    outcomes: list[Outcome]
    promoted_at: float
    switched_after_s: dict[str, float] = field(default_factory=dict)
    """Per replica: how long after the promotion it still answered with the old version."""
    late_old_answers: int = 0
    """Answers with the old version to requests sent after two reload intervals."""


def promote(
    cluster: Cluster,
    balancer: Balancer,
    bodies: Sequence[bytes],
    version: str,
    *,
    token: str,
    threads: int,
) -> PromoteResult:
    """Promote ``version`` through the second replica's admin endpoint while traffic runs."""
    traffic = Traffic(balancer.port(len(cluster.replicas)), bodies, threads).start()
    time.sleep(STEADY_S)
    through = cluster.replicas[1 % len(cluster.replicas)]
    status, before = _post(through.port, f"/models/{version}/promote", token)
    if status != 200:
        traffic.stop()
        raise RuntimeError(f"promote through {through.name} answered {status}: {before}")
    promoted_at = time.monotonic()
    reload_interval = float(cluster.env["DRUGCLF_RELOAD_INTERVAL"])
    time.sleep(2 * reload_interval + STEADY_S)
    outcomes = traffic.stop()
    old = [o for o in outcomes if o.ok and o.version != version and o.sent >= promoted_at]
    result = PromoteResult(
        version_before=(old[0].version or "") if old else "",
        version_after=version,
        through=through.name,
        outcomes=outcomes,
        promoted_at=promoted_at,
    )
    for replica in cluster.replicas:
        mine = [o.done - promoted_at for o in old if o.served_by == replica.name]
        result.switched_after_s[replica.name] = max(mine, default=0.0)
    deadline = promoted_at + 2 * reload_interval
    result.late_old_answers = sum(o.sent > deadline for o in old)
    return result


def _post(port: int, path: str, token: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("POST", path, headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@dataclass
class KillResult(_Answered):
    """Traffic around a replica's SIGKILL and its restart."""

    victim: str
    outcomes: list[Outcome]
    killed_at: float
    dead_at: float
    """When every process of the replica was gone (a request sent before may fail)."""
    restarted_at: float
    restart_ready_s: float
    failed_sent_before_kill: int = 0
    failed_sent_after_kill: int = 0
    routed_around_s: float = 0.0
    """From the kill to the last failed answer (0: none failed)."""
    back_after_s: float | None = None
    """From the restart to the restarted replica's first answer through the balancer."""


def kill_and_restart(
    cluster: Cluster, balancer: Balancer, bodies: Sequence[bytes], *, victim: int, threads: int
) -> KillResult:
    """SIGKILL replica ``victim`` under traffic, then start it again on its port."""
    traffic = Traffic(balancer.port(len(cluster.replicas)), bodies, threads).start()
    time.sleep(STEADY_S)
    killed_at = time.monotonic()
    cluster.kill(victim)
    dead_at = time.monotonic()
    time.sleep(STEADY_S)
    restarted_at = time.monotonic()
    ready_s = cluster.restart(victim)
    time.sleep(STEADY_S)
    outcomes = traffic.stop()
    name = cluster.replicas[victim].name
    failed = [o for o in outcomes if o.failed]
    back = [o.done - restarted_at for o in outcomes if o.ok and o.served_by == name]
    back = [b for b in back if b > 0]
    return KillResult(
        victim=name,
        outcomes=outcomes,
        killed_at=killed_at,
        dead_at=dead_at,
        restarted_at=restarted_at,
        restart_ready_s=ready_s,
        failed_sent_before_kill=sum(o.sent <= dead_at for o in failed),
        failed_sent_after_kill=sum(o.sent > dead_at for o in failed),
        routed_around_s=max((o.done - killed_at for o in failed), default=0.0),
        back_after_s=min(back, default=None),
    )


@dataclass
class LogCheck:
    """The shared log against the answers the balancer gave, request id by request id."""

    answered: int
    logged_once: int
    duplicated: list[str]
    missing: list[Outcome]
    missing_from_victim_before_kill: int
    logged_but_failed: int
    drain_s: float


def check_log(
    cluster: Cluster, log_url: str, outcomes: Sequence[Outcome], kill: KillResult
) -> LogCheck:
    """Wait for every replica's log to catch up, then count the log's rows per request id."""
    import psycopg  # noqa: PLC0415 (the postgres extra)

    started = time.monotonic()
    for replica in cluster.replicas:
        wait_for_log(replica.port)
    drain_s = time.monotonic() - started
    prefixes = sorted({o.request_id.split("-", 1)[0] for o in outcomes})
    with psycopg.connect(log_url) as connection:
        rows = connection.execute(
            "SELECT request_id, COUNT(*) FROM predictions "
            "WHERE split_part(request_id, '-', 1) = ANY(%s) GROUP BY request_id",
            (prefixes,),
        ).fetchall()
    counts = Counter({str(request_id): int(n) for request_id, n in rows})
    answered = [o for o in outcomes if o.ok]
    missing = [o for o in answered if counts[o.request_id] == 0]
    failed_ids = {o.request_id for o in outcomes if not o.ok}
    return LogCheck(
        answered=len(answered),
        logged_once=sum(counts[o.request_id] == 1 for o in answered),
        duplicated=sorted(rid for rid, n in counts.items() if n > 1),
        missing=missing,
        missing_from_victim_before_kill=sum(
            o.served_by == kill.victim and o.done <= kill.dead_at for o in missing
        ),
        logged_but_failed=sum(counts[rid] > 0 for rid in failed_ids),
        drain_s=drain_s,
    )


def median(values: Sequence[float]) -> float:
    """The median, NaN for none."""
    return statistics.median(values) if values else float("nan")
