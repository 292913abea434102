"""What each deployed function uses of the node: its CPU percent over the last sampling
interval and its memory, from its compute driver's usage() (drivers/compute/usage.py),
sampled by the alarms' thread every [alarms] interval. <get> shows the last sample in the
function's state (cpu-percent, memory-mb); a graph's monitoring expression compares them.

CPU is cumulative at the driver: the percent is the CPU time between two samples of the
same instance over the wall time between them (of one core: 250 is two and a half), so it
appears from the second sample on. A function made again (a new instance) starts over.
"""

import logging
import threading
import time

LOG = logging.getLogger(__name__)

MIB = 1024 * 1024


class FunctionUsage:
    """See the module docstring. compute: the ComputeManager (its driver(environment))."""

    def __init__(self, compute, clock=time.monotonic):
        self.compute = compute
        self.clock = clock
        self._lock = threading.Lock()
        self._last: dict = {}       # instance -> (cpu seconds, when)
        self._figures: dict = {}    # (graph, function) -> {"cpu-percent": .., "memory-mb": ..}

    def sample(self, deployed: dict) -> None:
        """One reading of every function of the deployed graphs (graph id -> DeployedGraph):
        each environment's driver reads all of its instances at once."""
        by_environment: dict = {}
        for gid, graph in sorted(deployed.items()):
            for fid, function in sorted(graph.functions.items()):
                by_environment.setdefault(function.environment, []).append((gid, fid, function))
        figures, last = {}, {}
        for environment, functions in by_environment.items():
            readings = self._read(environment, [f.instance for _, _, f in functions])
            now = self.clock()
            for gid, fid, function in functions:
                reading = readings.get(function.instance)
                if reading is None:
                    continue
                leaves = {"memory-mb": reading.memory_bytes / MIB}
                before = self._last.get(function.instance)
                if before is not None and now > before[1]:
                    used = max(0.0, reading.cpu_seconds - before[0])
                    leaves["cpu-percent"] = used / (now - before[1]) * 100
                last[function.instance] = (reading.cpu_seconds, now)
                figures[(gid, fid)] = leaves
        with self._lock:
            self._last, self._figures = last, figures

    def _read(self, environment: str, instances: list) -> dict:
        try:
            return self.compute.driver(environment).usages(instances)
        except Exception as exc:  # noqa: BLE001 - one environment's failure must not stop the rest
            LOG.debug("usage of the %s functions: %s", environment, exc)
            return {}

    def figures(self, graph: str, function: str) -> dict:
        """The last sample of a function: cpu-percent, memory-mb ({} when none)."""
        with self._lock:
            return dict(self._figures.get((graph, function), {}))

    def state(self, graph: str, function: str) -> dict:
        """The figures as composer-sffg leaves (decimal64, one fraction digit)."""
        return {name: "%.1f" % value for name, value in self.figures(graph, function).items()}


__all__ = ["FunctionUsage"]
