"""The default of --jobs: the CPUs the process may use, its cgroup's CPU quota included.

The layouts of /proc/self/cgroup and /proc/self/mountinfo are written as a kernel
shows them to a container (cgroup namespace) and to a process on a node; then, as root,
a real cgroup with a CPU quota is made and a real process in it is asked."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from generator.cpus import available_cpus, cgroup_cpu_quota

ROOT = Path(__file__).resolve().parents[2]
AFFINITY = len(os.sched_getaffinity(0))


def fake_proc(tmp_path: Path, cgroup: str, mountinfo: list[str]) -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text(cgroup)
    (proc / "self" / "mountinfo").write_text("\n".join(mountinfo) + "\n")
    return proc


def write(path: Path, **files: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name.replace("_", ".", 1)).write_text(text + "\n")


def v2_mount(at: Path, root: str = "/") -> str:
    return (f"30 23 0:26 {root} {at} rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 "
            "cgroup2 rw,nsdelegate,memory_recursiveprot")


def v1_cpu_mount(at: Path, root: str = "/") -> str:
    return (f"32 31 0:29 {root} {at} rw,nosuid,nodev,noexec,relatime shared:9 - cgroup "
            "cgroup rw,cpu,cpuacct")


def test_v2_in_a_container_reads_its_own_cgroup(tmp_path: Path) -> None:
    fs = tmp_path / "sys" / "fs" / "cgroup"
    write(fs, cpu_max="200000 100000")
    proc = fake_proc(tmp_path, "0::/\n", [v2_mount(fs)])
    assert cgroup_cpu_quota(proc) == 2.0
    assert available_cpus(proc) == min(AFFINITY, 2)


def test_v2_on_a_node_takes_the_smallest_quota_up_the_tree(tmp_path: Path) -> None:
    fs = tmp_path / "cgroup"
    write(fs / "kubepods.slice" / "pod1", cpu_max="150000 100000")
    write(fs / "kubepods.slice" / "pod1" / "ctr", cpu_max="max 100000")
    proc = fake_proc(tmp_path, "0::/kubepods.slice/pod1/ctr\n", [v2_mount(fs)])
    assert cgroup_cpu_quota(proc) == 1.5
    assert available_cpus(proc) == min(AFFINITY, 2)  # rounded up


def test_v1_cpu_controller_with_its_mount_root(tmp_path: Path) -> None:
    fs = tmp_path / "cpu,cpuacct"
    write(fs / "ctr", cpu_cfs_quota_us="50000", cpu_cfs_period_us="100000")
    write(fs, cpu_cfs_quota_us="-1", cpu_cfs_period_us="100000")
    # mounted from /kubepods/pod1: the process's cgroup path is under that root
    proc = fake_proc(tmp_path, "11:memory:/kubepods/pod1/ctr\n4:cpu,cpuacct:/kubepods/pod1/ctr\n",
                     [v1_cpu_mount(fs, "/kubepods/pod1")])
    assert cgroup_cpu_quota(proc) == 0.5
    assert available_cpus(proc) == 1  # never below one


@pytest.mark.parametrize("cpu_max", ["max 100000", "0 100000", "garbage", "", "1 2 3"])
def test_no_quota_or_an_odd_one_is_the_affinity(tmp_path: Path, cpu_max: str) -> None:
    fs = tmp_path / "cgroup"
    write(fs, cpu_max=cpu_max)
    proc = fake_proc(tmp_path, "0::/\n", [v2_mount(fs)])
    assert cgroup_cpu_quota(proc) is None
    assert available_cpus(proc) == AFFINITY


def test_unreadable_or_unrelated_is_the_affinity(tmp_path: Path) -> None:
    assert cgroup_cpu_quota(tmp_path / "nothing") is None
    fs = tmp_path / "cgroup"
    write(fs / "other", cpu_max="100000 100000")
    # the cgroup is outside the mount's root, a malformed line, a ".." path
    proc = fake_proc(tmp_path, "0::/elsewhere\nbroken\n",
                     [v2_mount(fs, "/other"), "garbage - line", ""])
    assert cgroup_cpu_quota(proc) is None
    proc = fake_proc(tmp_path / "b", "0::/../other\n", [v2_mount(fs)])
    assert cgroup_cpu_quota(proc) is None


def test_a_mount_point_with_a_space(tmp_path: Path) -> None:
    fs = tmp_path / "cg root"
    write(fs, cpu_max="300000 100000")
    proc = fake_proc(tmp_path, "0::/\n", [v2_mount(Path(str(fs).replace(" ", "\\040")))])
    assert cgroup_cpu_quota(proc) == 3.0


def _cpu_hierarchy() -> tuple[Path, int] | None:
    """A cgroup directory this machine lets root make children with a CPU quota in."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        dash = fields.index("-")
        fstype, options = fields[dash + 1], fields[dash + 3].split(",")
        if fstype == "cgroup" and "cpu" in options:
            return Path(fields[4]), 1
        if fstype == "cgroup2" and "cpu" in (Path(fields[4]) / "cgroup.controllers"
                                             ).read_text().split():
            return Path(fields[4]), 2
    return None


def test_a_real_cgroup_with_a_cpu_quota(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but not root: cannot make a cgroup")
        pytest.skip("needs root (makes a cgroup with a CPU quota)")
    found = _cpu_hierarchy()
    if found is None:
        pytest.skip("no cgroup hierarchy with the cpu controller is mounted here")
    base, version = found
    group = base / f"flowpol-test-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        for quota, expected in ((100000, 1), (150000, min(AFFINITY, 2))):
            if version == 1:
                (group / "cpu.cfs_period_us").write_text("100000")
                (group / "cpu.cfs_quota_us").write_text(str(quota))
            else:
                (group / "cpu.max").write_text(f"{quota} 100000")
            # the child joins the cgroup before Python starts, then reports its default
            code = ("from generator.cli.common import jobs; print(jobs(None))")
            run = subprocess.run(
                ["/bin/sh", "-c", f'echo $$ > "{group}/cgroup.procs" && exec "$0" -c "$1"',
                 sys.executable, code], cwd=ROOT, capture_output=True, text=True, timeout=60)
            assert run.returncode == 0, run.stderr
            assert int(run.stdout) == expected, (quota, run.stdout)
    finally:
        group.rmdir()
