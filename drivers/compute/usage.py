"""What a running instance uses of the node (ComputeDriver.usage): its CPU time so far
and its resident memory now, read from /proc or from its cgroup (v2 or v1) by the drivers
that run processes (native, docker, dpdk); kvm asks libvirt. The caller turns two
readings into a CPU percentage (the CPU time is cumulative)."""

import os
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
CGROUP_ROOT = "/sys/fs/cgroup"


@dataclass(frozen=True)
class Usage:
    """cpu_seconds: CPU time (user + system) the instance's processes (or its cgroup, or
    its VM) used so far; it may drop when a process exits (the caller clamps). memory_bytes:
    its resident memory now."""
    cpu_seconds: float
    memory_bytes: int


def _stat_fields(pid: int) -> list | None:
    """/proc/<pid>/stat after the command name (field 3 onwards), None if gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rfind(b")") + 2:].split()


def processes_usage(pids) -> Usage:
    """The sum over pids (each with all its threads) of CPU time and resident memory;
    those already gone count nothing."""
    ticks = 0
    pages = 0
    for pid in set(pids):
        fields = _stat_fields(pid)
        if fields is None or len(fields) < 22:
            continue
        ticks += int(fields[11]) + int(fields[12])      # utime, stime
        pages += int(fields[21])                         # rss
    return Usage(ticks / _TICKS, pages * _PAGE)


def _cgroups(pid: int) -> dict:
    """/proc/<pid>/cgroup as {controller: path}; cgroup v2's under "" ({} when gone)."""
    out = {}
    try:
        with open("/proc/%d/cgroup" % pid) as f:
            for line in f:
                hierarchy, _, rest = line.rstrip("\n").partition(":")
                controllers, _, path = rest.partition(":")
                for controller in controllers.split(","):
                    if controller or hierarchy == "0":
                        out[controller] = path
    except OSError:
        return {}
    return out


def _keyed(path: str) -> dict:
    out = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                out[key] = int(value)
    return out


def _read_int(path: str) -> int:
    with open(path) as f:
        return int(f.read())


def cgroup_usage(directory: str) -> Usage | None:
    """A cgroup v2's CPU time (cpu.stat usage_usec) and memory (memory.current less the
    inactive file cache, as `docker stats` counts it); None when it cannot be read."""
    try:
        cpu = _keyed(os.path.join(directory, "cpu.stat")).get("usage_usec")
        memory = _read_int(os.path.join(directory, "memory.current"))
        inactive = _keyed(os.path.join(directory, "memory.stat")).get("inactive_file", 0)
    except (OSError, ValueError):
        return None
    if cpu is None:
        return None
    return Usage(cpu / 1e6, max(0, memory - inactive))


def cgroup_v1_usage(cpuacct: str, memory: str) -> Usage | None:
    """The same from cgroup v1's cpuacct (cpuacct.usage, ns) and memory controllers
    (memory.usage_in_bytes less total_inactive_file)."""
    try:
        cpu = _read_int(os.path.join(cpuacct, "cpuacct.usage"))
        used = _read_int(os.path.join(memory, "memory.usage_in_bytes"))
        inactive = _keyed(os.path.join(memory, "memory.stat")).get("total_inactive_file", 0)
    except (OSError, ValueError):
        return None
    return Usage(cpu / 1e9, max(0, used - inactive))


def cgroup_usage_of(pid: int) -> Usage | None:
    """What the cgroup of pid (a container's init) uses, v2 or v1; None when pid is gone,
    sits in a root cgroup (that would be the whole node's) or nothing can be read."""
    groups = _cgroups(pid)
    path = groups.get("")
    if path not in (None, "/"):
        found = cgroup_usage(os.path.join(CGROUP_ROOT, path.lstrip("/")))
        if found is not None:
            return found
    cpu, memory = groups.get("cpuacct"), groups.get("memory")
    if cpu in (None, "/") or memory in (None, "/"):
        return None
    for mount in ("cpuacct", "cpu,cpuacct", "cpuacct,cpu"):
        directory = os.path.join(CGROUP_ROOT, mount, cpu.lstrip("/"))
        if os.path.isdir(directory):
            return cgroup_v1_usage(directory,
                                   os.path.join(CGROUP_ROOT, "memory", memory.lstrip("/")))
    return None


__all__ = ["Usage", "cgroup_usage", "cgroup_usage_of", "cgroup_v1_usage", "processes_usage"]
