"""How many CPUs this process may use: its CPU set, capped by a cgroup CPU quota.

A container limited with ``docker run --cpus 2`` (or a Kubernetes CPU limit) still sees every
core of the host in its CPU set: the limit is a CFS quota in its cgroup. One worker per host
core there would mean dozens of workers, each with its own model and libraries in memory,
sharing two CPUs' worth of time, and throttling whenever they are busy together. So the quota,
where there is one, caps the count.

Both cgroup versions are read, from the mounts ``/proc/self/mountinfo`` lists (a machine can
mount the v1 ``cpu`` controller and a v2 hierarchy side by side), for this process's cgroup and
each of its ancestors: the tightest quota wins. Anything unreadable means "no quota known".
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Final

PROC_SELF: Final = Path("/proc/self")
_V2: Final = ""  # the controllers field of a cgroup v2 line in /proc/self/cgroup


def available_cpus(proc: Path = PROC_SELF) -> int:
    """The CPUs of this process's CPU set, at most its cgroup quota rounded down (at least 1).

    Rounded down: 1.5 CPUs of quota run one worker at full speed rather than two that the
    kernel throttles for the rest of each period once they have used it up.
    """
    if hasattr(os, "sched_getaffinity"):
        cpus = len(os.sched_getaffinity(0)) or 1
    else:  # pragma: no cover - platforms without sched_getaffinity
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(proc)
    if quota is not None and quota < cpus:
        cpus = max(1, math.floor(quota))
    return cpus


def cgroup_cpu_quota(proc: Path = PROC_SELF) -> float | None:
    """The tightest CPU quota over this process's cgroups, in CPUs; None when there is none."""
    try:
        memberships = _memberships((proc / "cgroup").read_text())
        mounts = (proc / "mountinfo").read_text()
    except OSError:
        return None  # not Linux, or no /proc: no quota known
    quotas: list[float] = []
    for mount_root, mount_point, version in _cgroup_mounts(mounts):
        path = memberships.get(_V2 if version == 2 else "cpu")
        if path is None:
            continue
        for directory in _cgroup_dirs(mount_root, mount_point, path):
            quota = _v2_quota(directory) if version == 2 else _v1_quota(directory)
            if quota is not None:
                quotas.append(quota)
    return min(quotas, default=None)


def _memberships(text: str) -> dict[str, str]:
    """Controller -> this process's cgroup path, from ``/proc/self/cgroup``.

    ``0::/path`` is the v2 hierarchy (key ""); ``4:cpu,cpuacct:/path`` names v1 controllers.
    """
    memberships: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            memberships[_V2] = path
        for controller in controllers.split(","):
            if controller:
                memberships[controller] = path
    return memberships


def _cgroup_mounts(text: str) -> Iterator[tuple[str, Path, int]]:
    r"""(root of the mount in its hierarchy, mount point, cgroup version) of the CPU controllers.

    A ``/proc/self/mountinfo`` line: ``id parent dev root mountpoint options [tags] - fstype
    source superoptions``; spaces in paths are written ``\040``.
    """
    for line in text.splitlines():
        before, separator, after = line.partition(" - ")
        if not separator:
            continue
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, mount_point = _unescape(fields[3]), Path(_unescape(fields[4]))
        fstype, super_options = tail[0], tail[2].split(",")
        if fstype == "cgroup2":
            yield root, mount_point, 2
        elif fstype == "cgroup" and "cpu" in super_options:
            yield root, mount_point, 1


def _cgroup_dirs(mount_root: str, mount_point: Path, path: str) -> Iterator[Path]:
    """The folders of this cgroup and its ancestors that the mount shows, deepest first.

    In a container with its own cgroup namespace the path is ``/`` and the mount's root is the
    container's cgroup; on a host, or without a namespace, the path starts with the mount's root.
    """
    root, member = PurePosixPath(mount_root), PurePosixPath(path)
    try:
        relative = member.relative_to(root)
    except ValueError:
        yield mount_point  # the mount is the cgroup itself (a container's view)
        return
    directory = mount_point / relative
    while True:
        yield directory
        if directory == mount_point or mount_point not in directory.parents:
            return
        directory = directory.parent


def _v2_quota(directory: Path) -> float | None:
    """``cpu.max`` holds ``$MAX $PERIOD`` (microseconds) or ``max $PERIOD`` (no quota)."""
    try:
        quota, period = (directory / "cpu.max").read_text().split()
        return None if quota == "max" else _ratio(quota, period)
    except (OSError, ValueError):
        return None


def _v1_quota(directory: Path) -> float | None:
    """``cpu.cfs_quota_us`` (-1: no quota) over ``cpu.cfs_period_us``."""
    try:
        quota = (directory / "cpu.cfs_quota_us").read_text().strip()
        period = (directory / "cpu.cfs_period_us").read_text().strip()
        return _ratio(quota, period)
    except (OSError, ValueError):
        return None


def _ratio(quota: str, period: str) -> float | None:
    quota_us, period_us = int(quota), int(period)
    if quota_us <= 0 or period_us <= 0:
        return None  # -1 is "no quota" in v1
    return quota_us / period_us


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
