"""CPUs available to the server: the CPU set capped by a cgroup quota, read from fake /proc trees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from serving import cpus
from serving.settings import Settings

AFFINITY = 8


@pytest.fixture(autouse=True)
def eight_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(AFFINITY)), raising=False)


def fake_proc(tmp_path: Path, cgroup: str, mounts: list[tuple[str, str, str, str]]) -> Path:
    """A /proc/self with these cgroup memberships and (root, mount point, fstype, options) mounts."""
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(cgroup)
    lines = [
        f"{30 + i} 25 0:{40 + i} {root} {point} rw,nosuid - {fstype} cgroup rw,{options}"
        for i, (root, point, fstype, options) in enumerate(mounts)
    ]
    (proc / "mountinfo").write_text("\n".join(["25 1 8:1 / / rw - ext4 /dev/vda rw", *lines]))
    return proc


def write(path: Path, text: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    for name, content in (line.split("=", 1) for line in text.split(";")):
        (path / name).write_text(content + "\n")


def test_v2_container_with_its_own_namespace(tmp_path: Path) -> None:
    # docker run --cpus 1.5: the container sees "0::/" and its cgroup at the mount's root.
    mount = tmp_path / "sys/fs/cgroup"
    write(mount, "cpu.max=150000 100000")
    proc = fake_proc(tmp_path, "0::/\n", [("/", str(mount), "cgroup2", "nsdelegate")])
    assert cpus.cgroup_cpu_quota(proc) == 1.5
    assert cpus.available_cpus(proc) == 1  # rounded down: no throttled second worker


def test_v2_nested_cgroups_take_the_tightest_quota(tmp_path: Path) -> None:
    mount = tmp_path / "sys/fs/cgroup"
    write(mount / "kubepods", "cpu.max=300000 100000")
    write(mount / "kubepods/pod1", "cpu.max=max 100000")
    write(mount / "kubepods/pod1/app", "cpu.max=max 100000")
    proc = fake_proc(tmp_path, "0::/kubepods/pod1/app\n", [("/", str(mount), "cgroup2", "")])
    assert cpus.cgroup_cpu_quota(proc) == 3.0
    assert cpus.available_cpus(proc) == 3


def test_v2_without_a_quota(tmp_path: Path) -> None:
    mount = tmp_path / "sys/fs/cgroup"
    write(mount, "cpu.max=max 100000")
    proc = fake_proc(tmp_path, "0::/\n", [("/", str(mount), "cgroup2", "")])
    assert cpus.cgroup_cpu_quota(proc) is None
    assert cpus.available_cpus(proc) == AFFINITY


def test_v1_cpu_controller_beside_a_v2_mount(tmp_path: Path) -> None:
    # A hybrid machine (this one): the cpu controller on v1, an empty v2 hierarchy beside it.
    v1, v2 = tmp_path / "sys/fs/cgroup/cpu,cpuacct", tmp_path / "sys/fs/cgroup/unified"
    write(v1 / "docker/abc", "cpu.cfs_quota_us=250000;cpu.cfs_period_us=100000")
    write(v1, "cpu.cfs_quota_us=-1;cpu.cfs_period_us=100000")
    v2.mkdir(parents=True)
    proc = fake_proc(
        tmp_path,
        "4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n0::/docker/abc\n",
        [("/", str(v1), "cgroup", "cpu,cpuacct"), ("/", str(v2), "cgroup2", "")],
    )
    assert cpus.cgroup_cpu_quota(proc) == 2.5
    assert cpus.available_cpus(proc) == 2


def test_v1_container_view_of_its_own_cgroup(tmp_path: Path) -> None:
    # Without a cgroup namespace the path names the host's cgroup; the mount is the container's.
    mount = tmp_path / "sys/fs/cgroup/cpu"
    write(mount, "cpu.cfs_quota_us=100000;cpu.cfs_period_us=100000")
    proc = fake_proc(
        tmp_path, "2:cpu:/docker/abc\n", [("/docker/abc", str(mount), "cgroup", "cpu")]
    )
    assert cpus.available_cpus(proc) == 1


def test_a_quota_above_the_cpu_set_changes_nothing(tmp_path: Path) -> None:
    mount = tmp_path / "cg"
    write(mount, "cpu.max=1600000 100000")
    proc = fake_proc(tmp_path, "0::/\n", [("/", str(mount), "cgroup2", "")])
    assert cpus.available_cpus(proc) == AFFINITY


@pytest.mark.parametrize("content", ["", "garbage", "150000", "0 100000", "abc 100000"])
def test_unreadable_quotas_are_ignored(tmp_path: Path, content: str) -> None:
    mount = tmp_path / "cg"
    mount.mkdir()
    (mount / "cpu.max").write_text(content)
    proc = fake_proc(tmp_path, "0::/\n", [("/", str(mount), "cgroup2", "")])
    assert cpus.available_cpus(proc) == AFFINITY


def test_no_proc_at_all(tmp_path: Path) -> None:
    assert cpus.cgroup_cpu_quota(tmp_path / "missing") is None
    assert cpus.available_cpus(tmp_path / "missing") == AFFINITY


def test_mount_points_with_spaces(tmp_path: Path) -> None:
    mount = tmp_path / "a dir"
    write(mount, "cpu.max=200000 100000")
    proc = fake_proc(tmp_path, "0::/\n", [("/", str(mount).replace(" ", "\\040"), "cgroup2", "")])
    assert cpus.available_cpus(proc) == 2


def test_the_setting_wins_and_zero_means_the_available_cpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("serving.settings.available_cpus", lambda: 3)
    assert Settings(workers=5).worker_count() == 5
    assert Settings(workers=0).worker_count() == 3
