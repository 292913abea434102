"""What is broken on the node, per deployed graph: the status <get> shows over the engine's
(degraded or failed, with the reason), and the counts of repairs and restarts.

The watches (agent/engine/converge.py) report Faults as soon as a driver sees one; the
converger's checks replace a graph's faults with what they find, and clear them once the
graph is whole again. A graph is
  degraded  while it has faults, or while the node has one (a vSwitch daemon down): the
            agent is repairing it;
  failed    when the agent gave up repairing it (too many attempts in a row);
and its own status otherwise. Thread-safe: the watcher's thread reports, the converger
repairs, <get> reads. on_change(graph) is called after each change (graph None: a change
of the node, which every graph shows), outside the lock: the status events
(agent/engine/status.py) hang there.
"""

import threading
from dataclasses import dataclass

FUNCTION, PROCESS, PORT, LINK, SAP, LSI, FLOWS = (
    "function", "process", "port", "link", "sap", "lsi", "flows")
MAX_REASON = 400


@dataclass(frozen=True)
class Fault:
    """One broken part of a deployed graph.

    kind: FUNCTION (gone or incomplete: made again), PROCESS (its process exited:
    restarted), PORT (a function port left its LSI), LINK (a virtual link lost an end),
    SAP (a SAP's port is gone), LSI (the graph-LSI is gone: the graph is deployed again),
    FLOWS (an LSI's flows of the graph differ from what the graph compiles to)."""
    graph: str
    kind: str
    resource: str               # the instance, port, link or LSI
    reason: str
    function: str = ""          # the function's id (FUNCTION, PROCESS, PORT)

    @property
    def key(self) -> tuple:
        return self.kind, self.resource

    def __str__(self) -> str:
        what = "function %s" % self.function if self.function and self.kind in (
            FUNCTION, PROCESS) else "flows on %s" % self.resource if self.kind == FLOWS \
            else "%s %s" % (self.kind, self.resource)
        return "%s: %s" % (what, self.reason)


def _reason(parts) -> str:
    text = "; ".join(parts)
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 3] + "..."


class Health:
    """See the module docstring."""

    def __init__(self, on_change=None):
        self.on_change = on_change
        self._lock = threading.Lock()
        self._faults: dict[str, dict] = {}      # graph -> key -> Fault
        self._node: dict[str, str] = {}         # node-wide problem -> reason
        self._failed: dict[str, str] = {}       # graph -> why the agent gave up
        self._repairs: dict[str, int] = {}      # graph -> repairs made
        self._restarts: dict[tuple, int] = {}   # (graph, function) -> restarts

    # --- what is broken ---

    def _changed(self, graph: str | None) -> None:
        if self.on_change is not None:
            self.on_change(graph)

    def report(self, fault: Fault) -> None:
        with self._lock:
            self._faults.setdefault(fault.graph, {})[fault.key] = fault
        self._changed(fault.graph)

    def found(self, graph: str, faults) -> None:
        """What a check of the graph found: its faults from now on."""
        with self._lock:
            if faults:
                self._faults[graph] = {f.key: f for f in faults}
            else:
                self._faults.pop(graph, None)
        self._changed(graph)

    def faults(self, graph: str) -> list:
        with self._lock:
            return list(self._faults.get(graph, {}).values())

    def broken(self) -> set:
        """The graphs with faults, or given up."""
        with self._lock:
            return set(self._faults) | set(self._failed)

    def node_fault(self, name: str, reason: str) -> None:
        with self._lock:
            self._node[name] = reason
        self._changed(None)

    def node_ok(self, name: str) -> None:
        with self._lock:
            self._node.pop(name, None)
        self._changed(None)

    def node_faults(self) -> dict:
        with self._lock:
            return dict(self._node)

    def give_up(self, graph: str, reason: str) -> None:
        with self._lock:
            self._failed[graph] = reason
        self._changed(graph)

    def given_up(self, graph: str) -> str | None:
        with self._lock:
            return self._failed.get(graph)

    def retry(self, graph: str) -> None:
        """Repair the graph again (a commit asks for it)."""
        with self._lock:
            self._failed.pop(graph, None)
        self._changed(graph)

    def forget(self, graph: str, counts: bool = False) -> None:
        """The graph is gone (or new): its faults go; with counts, its counts too."""
        with self._lock:
            self._faults.pop(graph, None)
            self._failed.pop(graph, None)
            if counts:
                self._repairs.pop(graph, None)
                for key in [k for k in self._restarts if k[0] == graph]:
                    del self._restarts[key]

    # --- counts ---

    def repaired(self, graph: str, functions=()) -> None:
        """One repair of the graph, restarting or making again the given functions."""
        with self._lock:
            self._repairs[graph] = self._repairs.get(graph, 0) + 1
            for fid in functions:
                self._restarts[(graph, fid)] = self._restarts.get((graph, fid), 0) + 1
        self._changed(graph)

    def repairs(self, graph: str) -> int:
        with self._lock:
            return self._repairs.get(graph, 0)

    def restarts(self, graph: str, function: str) -> int:
        with self._lock:
            return self._restarts.get((graph, function), 0)

    # --- status, for <get> ---

    def graph_status(self, graph: str, status: str) -> tuple:
        """(status, reason) of a deployed graph whose own status is status."""
        with self._lock:
            if graph in self._failed:
                return "failed", self._failed[graph]
            parts = list(self._node.values())
            parts += [str(f) for f in self._faults.get(graph, {}).values()]
        if parts:
            return "degraded", _reason(parts)
        return status, ""

    def function_status(self, graph: str, function: str, status: str) -> tuple:
        """(status, reason) of a deployed function whose driver says status."""
        with self._lock:
            mine = [str(f) for f in self._faults.get(graph, {}).values()
                    if f.function == function]
            failed = graph in self._failed
            node = list(self._node.values())
        if mine:
            return ("failed" if failed else "degraded"), _reason(mine)
        if node:
            return "degraded", _reason(node)
        return status, ""

    def part_status(self, graph: str, resources) -> tuple:
        """(status, reason) of a SAP or rule that needs the given ports, links or LSIs."""
        wanted = set(resources)
        with self._lock:
            mine = [str(f) for f in self._faults.get(graph, {}).values()
                    if f.resource in wanted or f.kind == LSI]
            node = list(self._node.values())
        if mine or node:
            return "degraded", _reason(mine + node)
        return "running", ""
