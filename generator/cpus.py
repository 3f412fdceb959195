"""How many CPUs this process may really use: the default of ``--jobs``.

The CPUs it may run on (its affinity) are not enough in a container: a pod limited to
2 CPUs on a 64-CPU node still sees 64, and 64 worker processes sharing 2 CPUs' worth of
time only add memory (each holds its own read buffers) until the pod is OOM-killed. A
CPU limit is a CFS quota on the container's cgroup, so the quota counts too, rounded
up: ``min(affinity, ceil(quota / period))``, at least 1. This is what the JDK
(``-XX:+UseContainerSupport``) and Go's automaxprocs do.

Where the quota is written (the kernel's cgroup documentation):

* cgroup v2: ``cpu.max`` of the process's cgroup, "$MAX $PERIOD", "max" for none
  (Documentation/admin-guide/cgroup-v2.rst, "CPU Interface Files");
* cgroup v1: ``cpu.cfs_quota_us`` (-1 for none) and ``cpu.cfs_period_us`` of its
  cgroup in the hierarchy the ``cpu`` controller is mounted on
  (Documentation/scheduler/sched-bwc.rst).

The process's cgroup comes from /proc/self/cgroup, where it is mounted from
/proc/self/mountinfo (proc(5)); inside a container's cgroup namespace both say "/",
and the mount is the container's own cgroup. Every cgroup from the process's own up to
the mount's root is read, the smallest quota winning: a limit may be set on a parent
(a pod's cgroup above its containers'). Anything unreadable or odd means "no limit
known": the affinity alone, as before.
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def available_cpus(proc: Path = Path("/proc")) -> int:
    """The CPUs this process may use: its affinity, capped by its cgroup's CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(proc)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def cgroup_cpu_quota(proc: Path = Path("/proc")) -> float | None:
    """The CPU time per wall second the process's cgroups allow (1.5 = a CPU and a
    half), the smallest along its cgroup's ancestry; None when none is set or known."""
    try:
        cgroups = (proc / "self" / "cgroup").read_text()
        mounts = (proc / "self" / "mountinfo").read_text()
    except OSError:
        return None
    limits = [limit for directory, version in _cpu_cgroup_dirs(cgroups, mounts)
              for limit in _limits_up_to_mount(directory, version)]
    return min(limits) if limits else None


def _cpu_cgroup_dirs(cgroups: str, mounts: str) -> list[tuple[tuple[Path, ...], int]]:
    """(the cgroup's directory and its ancestors up to the mount, version) for the
    hierarchies that can hold a CPU quota: v1's with the cpu controller, and v2's."""
    v1_path = v2_path = None
    for line in cgroups.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2_path = path
        elif "cpu" in controllers.split(","):
            v1_path = path
    found = []
    for line in mounts.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if dash < 5 or len(fields) < dash + 4:
            continue
        root, mount_point, fstype = fields[3], _unescape(fields[4]), fields[dash + 1]
        if fstype == "cgroup2" and v2_path is not None:
            chain = _chain(mount_point, _unescape(root), v2_path)
            if chain:
                found.append((chain, 2))
        elif (fstype == "cgroup" and v1_path is not None
              and "cpu" in fields[dash + 3].split(",")):
            chain = _chain(mount_point, _unescape(root), v1_path)
            if chain:
                found.append((chain, 1))
    return found


def _chain(mount_point: str, root: str, path: str) -> tuple[Path, ...]:
    """The directories of cgroup ``path`` and of its ancestors within a mount of
    ``root`` at ``mount_point``; empty when the cgroup is not inside that mount."""
    root = root.rstrip("/") or "/"
    if path != root and not path.startswith(root.rstrip("/") + "/"):
        return ()
    relative = [p for p in path[len(root.rstrip("/")):].split("/") if p]
    if ".." in relative:
        return ()
    dirs = [Path(mount_point, *relative[:n]) for n in range(len(relative), -1, -1)]
    return tuple(dirs)


def _limits_up_to_mount(directories: tuple[Path, ...], version: int) -> list[float]:
    limits = []
    for d in directories:
        limit = _v2_limit(d) if version == 2 else _v1_limit(d)
        if limit is not None:
            limits.append(limit)
    return limits


def _v2_limit(directory: Path) -> float | None:
    try:
        fields = (directory / "cpu.max").read_text().split()
    except OSError:
        return None
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _ratio(fields[0], fields[1])


def _v1_limit(directory: Path) -> float | None:
    try:
        quota = (directory / "cpu.cfs_quota_us").read_text().strip()
        period = (directory / "cpu.cfs_period_us").read_text().strip()
    except OSError:
        return None
    return _ratio(quota, period)


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040 ...)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
