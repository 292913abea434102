"""The node's CPU topology, as the scheduler sees it: which CPUs functions may use and how
far apart they are.

Read from sysfs (/sys/devices/system/cpu/cpu<N>/topology) for the CPUs the agent may run
on (its own affinity), or made up for tests (Topology.synthetic: 8- and 16-core layouts on
a 2-core machine). Distance: 0 the same CPU, 1 SMT siblings (one physical core), 2 plus
how far apart their numbers are within one package (neighbouring cores share the most),
100 across packages.
"""

import os
from dataclasses import dataclass
from pathlib import Path

SYSFS = Path("/sys/devices/system/cpu")


@dataclass(frozen=True)
class Cpu:
    id: int                 # the number the kernel uses (affinity masks, cpuset, -l, vcpupin)
    package: int = 0        # physical package (socket)
    core: int = 0           # physical core within the package (SMT siblings share it)


class Topology:
    def __init__(self, cpus):
        self.cpus = tuple(sorted(cpus, key=lambda c: c.id))
        if not self.cpus:
            raise ValueError("a topology needs at least one CPU")
        self.by_id = {c.id: c for c in self.cpus}
        self._rank = {c.id: n for n, c in enumerate(self.cpus)}

    @property
    def ids(self) -> tuple:
        return tuple(c.id for c in self.cpus)

    def __len__(self) -> int:
        return len(self.cpus)

    def distance(self, a: int, b: int) -> int:
        if a == b:
            return 0
        ca, cb = self.by_id.get(a), self.by_id.get(b)
        if ca is None or cb is None or ca.package != cb.package:
            return 100
        if ca.core == cb.core:
            return 1
        return 2 + abs(self._rank[a] - self._rank[b])

    @classmethod
    def synthetic(cls, cores: int, threads: int = 1, packages: int = 1) -> "Topology":
        """packages x cores x threads CPUs numbered as Linux does on x86: the first thread
        of every core first, then the second threads (cpu N and N + cores*packages are
        siblings)."""
        cpus = []
        physical = cores * packages
        for thread in range(threads):
            for package in range(packages):
                for core in range(cores):
                    cpus.append(Cpu(thread * physical + package * cores + core, package, core))
        return cls(cpus)

    @classmethod
    def detect(cls, allowed=None, sysfs: Path = SYSFS) -> "Topology":
        """The CPUs this process may run on (or allowed), with their sysfs topology."""
        ids = sorted(allowed if allowed is not None else os.sched_getaffinity(0))
        cpus = []
        for cpu in ids:
            base = sysfs / ("cpu%d" % cpu) / "topology"
            cpus.append(Cpu(cpu, _read_int(base / "physical_package_id", 0),
                            _read_int(base / "core_id", cpu)))
        return cls(cpus)


def _read_int(path: Path, default: int) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return default
