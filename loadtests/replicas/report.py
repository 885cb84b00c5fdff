"""The replicas run as Markdown, and the invariants it must keep."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from loadtests.bench.stats import Spread, format_duration_us, format_rate, format_us
from loadtests.replicas.scenarios import (
    KillResult,
    LogCheck,
    PromoteResult,
    ThroughputRun,
    median,
)

# Requests a replica had taken when it was killed: one per connection of the traffic at most.
IN_FLIGHT_PER_THREAD = 1


@dataclass
class Run:
    """Everything one ``make replicas-test`` measured."""

    header: list[str]
    reload_interval: float
    traffic_threads: int
    throughput: list[ThroughputRun]
    promote: PromoteResult
    kill: KillResult
    log: LogCheck
    rss_mib: dict[str, float]


def violations(run: Run) -> list[str]:
    """The invariants the run broke (empty: all kept)."""
    broken = []
    for t in run.throughput:
        if t.failures:
            broken.append(f"throughput over {t.replicas} replicas: {t.failures} failed requests")
    p = run.promote
    if p.failures:
        broken.append(f"promote: {p.failures} failed requests (0 allowed)")
    for name, seconds in p.switched_after_s.items():
        if seconds > 2 * run.reload_interval:
            broken.append(
                f"promote: {name} answered the old version {seconds:.2f} s after the promotion "
                f"(> 2 reload intervals, {2 * run.reload_interval:.1f} s)"
            )
    if p.late_old_answers:
        broken.append(f"promote: {p.late_old_answers} old answers after two reload intervals")
    k = run.kill
    if k.failed_sent_after_kill:
        broken.append(f"kill: {k.failed_sent_after_kill} requests sent after the kill failed")
    if k.failures > run.traffic_threads * IN_FLIGHT_PER_THREAD:
        broken.append(f"kill: {k.failures} failed, more than the requests in flight")
    if k.back_after_s is None:
        broken.append(f"kill: {k.victim} never answered again after its restart")
    log = run.log
    if log.duplicated:
        broken.append(f"log: {len(log.duplicated)} request ids logged more than once")
    unexplained = len(log.missing) - log.missing_from_victim_before_kill
    if unexplained:
        broken.append(f"log: {unexplained} answered requests missing, not the killed replica's")
    return broken


def _spread(values: Sequence[float]) -> Spread:
    return Spread.of([v for v in values if not math.isnan(v)] or [math.nan])


def render(run: Run) -> str:
    """The report, in Markdown."""
    lines = ["# Replicas: one registry, one log, behind HAProxy", "", *run.header, ""]
    lines += [
        "## Throughput through the balancer",
        "",
        "wrk, 16 connections, single patients, runs over 1, 2 and 3 replicas interleaved; median "
        "(min–max). The machine has 2 cores for the replicas, HAProxy, wrk and the log writers: "
        "more replicas add processes, not cores, so this shows the balancer's and the replicas' "
        "overhead, not a speedup.",
        "",
        "| Replicas | Requests/s | p99 | Failed | CPU per request, each replica |",
        "|---|---|---|---|---|",
    ]
    for count in sorted({t.replicas for t in run.throughput}):
        mine = [t for t in run.throughput if t.replicas == count]
        names = sorted(mine[0].cpu_us_per_request)
        cpu = ", ".join(
            f"{n} {format_duration_us(median([t.cpu_us_per_request[n] for t in mine]))}"
            for n in names
        )
        lines.append(
            f"| {count} | {format_rate(_spread([t.requests_per_s for t in mine]))} "
            f"| {format_us(_spread([t.p99_us for t in mine]))} "
            f"| {sum(t.failures for t in mine)} / {sum(t.requests for t in mine):,} | {cpu} |"
        )
    p = run.promote
    switched = ", ".join(f"{n} {s:.2f} s" for n, s in sorted(p.switched_after_s.items()))
    lines += [
        "",
        "## Promote under load",
        "",
        f"`POST /models/{p.version_after}/promote` through {p.through} only, "
        f"{run.traffic_threads} client threads through the balancer; reload interval "
        f"{run.reload_interval:.1f} s.",
        "",
        f"- requests: {len(p.outcomes):,}, failed: **{p.failures}**; closed unanswered by the "
        f"balancer and sent again: {p.resent}",
        f"- last answer with the old version, after the promotion: {switched} "
        f"(limit: two reload intervals, {2 * run.reload_interval:.1f} s)",
        f"- old answers to requests sent after the limit: {p.late_old_answers}",
    ]
    k = run.kill
    back = f"{k.back_after_s:.2f} s" if k.back_after_s is not None else "never"
    lines += [
        "",
        "## SIGKILL one replica, then restart it",
        "",
        f"{k.victim} (its server, worker and log writer) killed with SIGKILL under the same "
        "traffic, started again on its port and data folder 2 s later.",
        "",
        f"- requests: {len(k.outcomes):,}, failed: **{k.failures}** "
        f"({k.failed_sent_before_kill} sent before its processes were all gone, "
        f"{k.failed_sent_after_kill} after; the kill took {k.dead_at - k.killed_at:.3f} s)",
        f"- closed unanswered by the balancer on a kept-alive connection and sent again by the "
        f"client, under a new id (HAProxy's way to ask for a retry): {k.resent} ("
        + (", ".join(f"{o.done - k.killed_at:+.3f} s" for o in k.outcomes if o.resent) or "none")
        + ")",
        f"- routed around: last failure {k.routed_around_s:.2f} s after the kill",
        "- failed answers (seconds after the kill, status, replica; status 0: the connection "
        "failed): "
        + (
            ", ".join(
                f"{o.done - k.killed_at:+.3f} s {o.status} {o.served_by or '-'}"
                for o in k.outcomes
                if o.failed
            )
            or "none"
        ),
        f"- restart to ready: {k.restart_ready_s:.2f} s; restart to its first answer through "
        f"the balancer: {back}",
    ]
    log = run.log
    lines += [
        "",
        "## The shared prediction log (PostgreSQL)",
        "",
        f"Every request id answered 200 by the balancer in the two runs above, against the "
        f"log's rows, after every replica's log caught up ({log.drain_s:.1f} s).",
        "",
        f"- answered: {log.answered:,}; logged exactly once: {log.logged_once:,}",
        f"- logged more than once: **{len(log.duplicated)}**",
        f"- missing: **{len(log.missing)}**, of which answered by {k.victim} before its kill "
        f"(records still in its memory, not yet in its spool): "
        f"{log.missing_from_victim_before_kill}",
        f"- failed for the client but logged (answered by a replica, lost on the way): "
        f"{log.logged_but_failed}",
        "",
        "## Memory",
        "",
        "Each replica's processes together (granian's main process, one worker, the log "
        "writer), RSS after the runs: "
        + ", ".join(f"{n} {mib:.0f} MiB" for n, mib in sorted(run.rss_mib.items())),
    ]
    broken = violations(run)
    lines += ["", "## Invariants", ""]
    lines += [f"- BROKEN: {b}" for b in broken] or ["- all kept"]
    return "\n".join(lines) + "\n"
