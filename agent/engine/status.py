"""Status events: graph-status-change and function-status-change (composer-sffg), published
when what <get> shows of a graph's or a function's status changes, by whoever changed it.

The engine calls check() after each of its own changes (a transaction begun, applied or
failed, a graph deployed again, recovery), in its thread; Health calls it (through its
on_change hook) when a watch reports a fault or the converger finds, repairs or gives up
on one, in the watcher's or the converger's thread. check() compares each graph's status
leaves (status, status-reason, last-error) and each function's (the same, plus its
implementation) with the last it published, and publishes the differences, in order per
graph (one lock). The content is the state <get> shows (agent/engine/operational.py), with
the previous status and a message. A graph or function that is gone reports "removed".
"""

import logging
import threading

from ..publish import Change, Event
from .operational import STATUS, function_states, graph_facts, graph_status

LOG = logging.getLogger(__name__)

GRAPH_EVENT = "composer-sffg:graph-status-change"
FUNCTION_EVENT = "composer-sffg:function-status-change"
GRAPH_PATH = "/composer-sffg:service-graphs/service-graph[id='%s']"
FUNCTION_PATH = GRAPH_PATH + "/functions/function[id='%s']"
REMOVED = STATUS % "removed"


def _short(identity: str | None) -> str:
    return (identity or "").rpartition(":")[2]


class StatusEvents:
    """See the module docstring. publish: a callable taking an Event (Bus.publish)."""

    def __init__(self, engine, publish):
        self.engine = engine
        self.publish = publish
        self._lock = threading.RLock()
        self._graphs: dict = {}         # graph id -> (status, reason, error)
        self._functions: dict = {}      # (graph id, function id) -> (status, reason, error, impl)

    def baseline(self) -> None:
        """Take the statuses as they are now without publishing them (after recovery: a
        restart of the agent is no change of the graphs)."""
        publish, self.publish = self.publish, lambda event: None
        try:
            self.check()
        finally:
            self.publish = publish

    def check(self, graphs=None) -> None:
        """Publish what changed for these graphs (None: every graph, a node-wide change)."""
        engine = self.engine
        with self._lock:
            known = set(engine.deployed) | set(engine.in_progress) | set(engine.failures)
            if graphs is None:
                graphs = known | {g for g in self._graphs}
            for gid in sorted(set(graphs)):
                try:
                    self._check_graph(gid, gid in known)
                except Exception:  # noqa: BLE001 - an event lost must not fail a commit
                    LOG.exception("status events of graph %s failed", gid)

    def _check_graph(self, gid: str, known: bool) -> None:
        engine = self.engine
        dg = engine.deployed.get(gid) if known else None
        if known:
            self._graph_event(gid, graph_status(engine, gid), dg)
        functions = function_states(engine, dg) if dg is not None and \
            gid not in engine.in_progress else {}
        for fid, state in functions.items():
            self._function_event(gid, fid, state)
        if gid not in engine.in_progress:
            for key in [k for k in self._functions if k[0] == gid and k[1] not in functions]:
                self._function_event(gid, key[1], {"status": REMOVED})
        if not known and gid in self._graphs:        # its functions went first
            self._graph_event(gid, {"status": REMOVED}, None)
            self._graphs.pop(gid, None)

    def _graph_event(self, gid: str, leaves: dict, dg) -> None:
        now = (leaves["status"], leaves.get("status-reason"), leaves.get("last-error"))
        before = self._graphs.get(gid)
        if now == before:
            return
        self._graphs[gid] = now
        body = {"graph-id": gid}
        body.update(leaves)
        if dg is not None:
            body.update(graph_facts(self.engine, dg))
        if before is not None:
            body["previous-status"] = before[0]
        body["message"] = "graph %s %s%s" % (
            gid, _short(now[0]), ": %s" % (now[1] or now[2]) if now[1] or now[2] else "")
        self.publish(Event(GRAPH_EVENT, {GRAPH_EVENT: body},
                           [Change("operational", GRAPH_PATH % gid + "/state")]))

    def _function_event(self, gid: str, fid: str, state: dict) -> None:
        now = (state["status"], state.get("status-reason"), state.get("last-error"),
               state.get("implementation"))
        before = self._functions.get((gid, fid))
        if now == before:
            return
        if state["status"] == REMOVED:
            self._functions.pop((gid, fid), None)
        else:
            self._functions[(gid, fid)] = now
        body = {"graph-id": gid, "function-id": fid}
        body.update(state)
        if before is not None:
            body["previous-status"] = before[0]
        body["message"] = "function %s of graph %s %s%s" % (
            fid, gid, _short(now[0]), " (%s)" % now[3] if now[3] else "") + (
            ": %s" % (now[1] or now[2]) if now[1] or now[2] else "")
        self.publish(Event(FUNCTION_EVENT, {FUNCTION_EVENT: body},
                           [Change("operational", FUNCTION_PATH % (gid, fid) + "/state")]))
