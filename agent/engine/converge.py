"""Convergence: the node is kept as the engine deployed it.

1. start(): the drivers' watches report to on_event (drivers/watch.py): functions (their
   namespace, vSwitch ends and processes), LSIs and ports removed from the database, the
   flows of every LSI (an OpenFlow flow monitor), the private OVS's daemons;
2. on_event, on the watcher's thread (it never blocks): the event is mapped to the graphs
   that own what it names; a fault the event proves shows at once in <get> (Health), and
   the graph is queued for a check; a vSwitch daemon that exited is queued for a restart;
3. the converger's thread restarts dead daemons without the engine's lock (a commit that
   waits for ovs-vswitchd goes on once it is back), then under the engine's lock puts back
   what a restarted ovs-vswitchd lost (LSI-0, tunnel endpoints, every LSI's flows); it
   checks each queued graph (repair.inspect) and repairs what it finds (repair.repair_plan,
   journaled like a commit: a crash in the middle leaves the graph dirty for recovery).
   A repair that fails, or that does not hold for `stable` seconds, is tried again after
   a backoff that doubles up to `backoff_max`; after `attempts` tries in a row the graph is
   failed and left alone until a commit asks again;
4. stop(): no more events, no more repairs.
Commits and repairs never overlap: both hold the engine's lock, and a repair waits while a
commit's check has begun a transaction (engine._open).
"""

import logging
import threading
import time
from dataclasses import dataclass

from drivers import watch
from drivers.errors import DriverError

from .health import FLOWS, FUNCTION, LINK, LSI, PORT, PROCESS, SAP, Fault
from .repair import flow_steps, inspect, repair_plan
from ..network.split import link_ports

LOG = logging.getLogger(__name__)

NODE = "node"                   # the work item of the node's daemons


@dataclass(frozen=True)
class Settings:
    attempts: int = 5           # repairs of a graph in a row before it is failed
    backoff: float = 0.5        # seconds before the second attempt; doubles after each
    backoff_max: float = 30.0
    stable: float = 60.0        # a repair that held this long starts the count again


class Converger:
    """See the module docstring."""

    def __init__(self, engine, watcher=None, ovs=None, settings: Settings = Settings()):
        self.engine = engine
        self.health = engine.health
        self.watcher = watcher
        self.ovs = ovs                      # a PrivateOVS whose daemons it restarts
        self.settings = settings
        self._cond = threading.Condition()
        self._due: dict = {}                # graph id (or NODE) -> (when, check flows)
        self._attempts: dict = {}           # graph id (or NODE) -> attempts in a row
        self._held: dict = {}               # graph id -> when its last repair was made
        self._errors: dict = {}             # graph id -> why its last repair failed
        self._index_key = None
        self._index: tuple = ({}, {}, {})
        self._thread = None
        self._stopping = False

    # --- lifecycle ---

    def start(self) -> None:
        engine = self.engine
        engine.converger = self
        if self.watcher is not None:
            self.watcher.start()
            engine.network.driver.watch(self.watcher, self.on_event)
            engine.compute.watch(self.watcher, self.on_event)
            if self.ovs is not None:
                for name in self.ovs.watch(self.watcher, self.on_event):
                    self._daemon_down(name, "%s is not running" % name)
            self._watch_flows(list(engine.deployed.values()))
        self._thread = threading.Thread(target=self._run, name="converger", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """No more events and repairs (a repair under way finishes first)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(60)
        engine = self.engine
        if self.watcher is not None:
            engine.network.driver.unwatch()
            engine.compute.unwatch()
            if self.ovs is not None:
                self.ovs.unwatch(self.watcher)
            self.watcher.close()
        engine.converger = None

    def _watch_flows(self, graphs) -> None:
        driver = self.engine.network.driver
        for lsi in [self.engine.network.lsi0] + [dg.lsi for dg in graphs]:
            try:
                driver.watch_flows(lsi)
            except DriverError as exc:
                LOG.warning("cannot watch the flows of %s: %s", lsi, exc)

    # --- events (the watcher's thread) ---

    def on_event(self, event) -> None:
        LOG.info("watch: %s", event)
        if event.subject == watch.DAEMON:
            self._daemon_down(event.name, event.detail or "%s exited" % event.name)
            return
        if event.subject == watch.NODE:
            for gid in list(self.engine.deployed):
                self._queue(gid, flows=True)
            return
        functions, ports, lsis = self._resources()
        engine = self.engine
        if event.subject == watch.FUNCTION and event.name in functions:
            gid, fid = functions[event.name]
            kind = PROCESS if event.what == watch.EXITED else FUNCTION
            self._suspect(Fault(gid, kind, event.name, event.detail, fid))
        elif event.subject == watch.PORT and event.name in ports:
            gid, kind, resource, fid = ports[event.name]
            self._suspect(Fault(gid, kind, resource, "its port %s was %s" % (
                event.name, event.detail or "removed"), fid))
        elif event.subject == watch.LSI and event.name == engine.network.lsi0:
            self._daemon_down("lsi0", "LSI-0 was removed from the vSwitch", "making it again")
        elif event.subject == watch.LSI and event.name in lsis:
            gid = lsis[event.name]
            self._suspect(Fault(gid, LSI, event.name, "its graph-LSI %s was %s"
                                % (event.name, event.detail or "removed")))
        elif event.subject == watch.FLOWS and event.name == engine.network.lsi0:
            # LSI-0 is shared: the cookies say whose flows changed.
            graphs = list(engine.deployed)
            owners = {engine.naming.graph_of_cookie(c, graphs) for c in event.cookies}
            for gid in sorted(owners - {None}):
                self._suspect(Fault(gid, FLOWS, event.name, event.detail), flows=True)
            if set(event.cookies) & engine.network.endpoint_cookies():
                self._daemon_down("lsi0", "the flows of a tunnel endpoint were changed",
                                  "installing them again")
        elif event.subject == watch.FLOWS and event.name in lsis:
            self._suspect(Fault(lsis[event.name], FLOWS, event.name, event.detail),
                          flows=True)

    def _suspect(self, fault: Fault, flows: bool = False) -> None:
        """A fault an event proves: shown now unless a commit is changing the graph (its
        own doing, most likely), and checked soon either way (flows: its flows too)."""
        if fault.graph not in self.engine.in_progress:
            self.health.report(fault)
        self._queue(fault.graph, flows=flows)

    def _daemon_down(self, name: str, reason: str, doing: str = "restarting it") -> None:
        self.health.node_fault(name, "%s; %s" % (reason, doing))
        self._queue(NODE, flows=True)

    def _resources(self) -> tuple:
        """(instance -> (graph, function), vSwitch port -> (graph, fault kind, resource,
        function), graph-LSI -> graph) of what is deployed, remade when that changes."""
        engine = self.engine
        deployed = engine.deployed
        key = (id(deployed), engine._generation)
        if key == self._index_key:
            return self._index
        functions, ports, lsis = {}, {}, {}
        for gid, dg in list(deployed.items()):
            lsis[dg.lsi] = gid
            for fid, fn in dg.functions.items():
                functions[fn.instance] = (gid, fid)
                for _, ifname in fn.ports:
                    ports[ifname] = (gid, PORT, ifname, fid)
            for name in dg.sap_ports.values():
                ports[name] = (gid, SAP, name, "")
            for link in dg.links:
                for end in link_ports(link.name):
                    ports[end] = (gid, LINK, link.name, "")
        self._index, self._index_key = (functions, ports, lsis), key
        return self._index

    # --- the queue ---

    def _queue(self, item: str, flows: bool, when: float | None = None) -> None:
        when = time.monotonic() if when is None else when
        with self._cond:
            due = self._due.get(item)
            if due is not None:
                when, flows = min(when, due[0]), flows or due[1]
            self._due[item] = (when, flows)
            self._cond.notify_all()

    def _take(self) -> list:
        """Wait for the items that are due; [] when stopping."""
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                ready = [(item, flows) for item, (when, flows) in self._due.items()
                         if when <= now]
                if ready:
                    for item, _ in ready:
                        del self._due[item]
                    # the node first: graphs cannot be whole while a daemon is down
                    return sorted(ready, key=lambda r: (r[0] != NODE, r[0]))
                wait = min((when for when, _ in self._due.values()), default=now + 3600)
                self._cond.wait(max(0.0, wait - now))
            return []

    def _run(self) -> None:
        while True:
            ready = self._take()
            if not ready:
                return
            for item, flows in ready:
                try:
                    if item == NODE:
                        self._node()
                    else:
                        with self.engine._lock:
                            self._graph(item, flows)
                except Exception:  # noqa: BLE001 - the thread must go on
                    LOG.exception("converging %s failed", item)
                    self._queue(item, flows, time.monotonic() + self.settings.backoff_max)

    def _backoff(self, item: str) -> float:
        attempts = self._attempts.get(item, 0)
        return min(self.settings.backoff * 2 ** max(0, attempts - 1), self.settings.backoff_max)

    # --- the node ---

    def _node(self) -> None:
        """Restart what is dead, then put back what a restarted ovs-vswitchd forgot."""
        if self.ovs is not None:
            try:
                started = self.ovs.restart()
            except Exception as exc:  # noqa: BLE001 - tried again after the backoff
                self._attempts[NODE] = self._attempts.get(NODE, 0) + 1
                delay = self._backoff(NODE)
                LOG.error("restarting the vSwitch failed (%s); again in %.1f s", exc, delay)
                for name, pid in self.ovs.daemons().items():
                    if pid is None:
                        self.health.node_fault(name, "%s is down: restarting it failed: %s"
                                               % (name, exc))
                self._queue(NODE, True, time.monotonic() + delay)
                return
            if self.watcher is not None:
                self.ovs.watch(self.watcher, self.on_event)
            if "ovsdb-server" in started:
                self.engine.network.driver.reconnect()
        with self.engine._lock:
            if self.engine._open is not None:
                self._queue(NODE, True, time.monotonic() + 0.05)
                return
            self._restore_node()
        self._attempts.pop(NODE, None)
        for name in list(self.health.node_faults()):
            self.health.node_ok(name)
        for gid in list(self.engine.deployed):
            self._queue(gid, flows=False)

    def _restore_node(self) -> None:
        """(holding the engine's lock) LSI-0 and its tunnel endpoints as configured, and
        every LSI's flows as deployed: what ovs-vswitchd keeps in memory only."""
        engine = self.engine
        engine.network.start()
        graphs = list(engine.deployed.values())
        steps = [step for dg in graphs for step in flow_steps(engine, dg)]
        for step in steps:
            engine.executor.handlers[step.kind](step)
        for dg in graphs:
            engine.network.restore_saps(dg)
        self._watch_flows(graphs)
        LOG.info("the vSwitch is back: LSI-0 and the flows of %d graphs installed again",
                 len(graphs))

    # --- graphs ---

    def _graph(self, gid: str, flows: bool, force: bool = False) -> list:
        """(holding the engine's lock) check a graph and repair it; its faults left."""
        engine = self.engine
        dg = engine.deployed.get(gid)
        if dg is None:
            self.health.forget(gid)
            self._forget(gid)
            return []
        if engine._open is not None or gid in engine.in_progress:
            self._queue(gid, flows, time.monotonic() + 0.05)
            return self.health.faults(gid)
        faults = inspect(engine, dg, flows=flows)
        self.health.found(gid, faults)
        if not faults:
            self.health.retry(gid)
            return []
        if self.health.node_faults():
            return faults               # the node first: it is queued
        if self.health.given_up(gid) and not force:
            return faults
        held = self._held.pop(gid, None)
        if held is not None and time.monotonic() - held >= self.settings.stable:
            self._attempts.pop(gid, None)           # the last repair held: a new count
        attempts = self._attempts.get(gid, 0)
        if attempts >= self.settings.attempts and not force:
            self._give_up(gid, faults, "repaired %d times in a row, and broken again"
                          % attempts)
            return faults
        self._attempts[gid] = attempts + 1
        try:
            self._repair(dg, faults)
        except Exception as exc:  # noqa: BLE001 - counted, tried again after the backoff
            LOG.error("repairing graph %s failed (attempt %d): %s", gid, attempts + 1, exc)
            self._errors[gid] = str(exc)
            left = inspect(engine, engine.deployed.get(gid, dg), flows=True)
            self.health.found(gid, left)
            if attempts + 1 >= self.settings.attempts and not force:
                self._give_up(gid, left, "its repair failed %d times in a row: %s"
                              % (attempts + 1, exc))
            else:
                self._queue(gid, True, time.monotonic() + self._backoff(gid))
            return left
        self._errors.pop(gid, None)
        left = inspect(engine, engine.deployed.get(gid, dg), flows=True)
        self.health.found(gid, left)
        self._held[gid] = time.monotonic()
        if left:
            self._queue(gid, True, time.monotonic() + self._backoff(gid))
        else:
            self.health.retry(gid)
            LOG.info("graph %s repaired (%s)", gid, "; ".join(str(f) for f in faults))
        return left

    def _give_up(self, gid: str, faults, why: str) -> None:
        reason = "%s: %s" % (why, "; ".join(str(f) for f in faults))
        LOG.error("graph %s failed: %s", gid, reason)
        self.health.give_up(gid, reason)

    def _repair(self, dg, faults) -> None:
        engine = self.engine
        if any(f.kind == LSI for f in faults):
            engine.redeploy(dg.id, "its graph-LSI was gone")
            self.health.repaired(dg.id, dg.functions)
            self._watch_flows([engine.deployed[dg.id]])
            return
        steps, functions = repair_plan(engine, dg, faults)
        engine.run_repair(dg.id, steps, "; ".join(str(f) for f in faults))
        self.health.repaired(dg.id, functions)

    # --- commits (the caller holds the engine's lock) ---

    def committed(self, touched) -> None:
        """A commit changed these graphs: a broken one is checked again (a new version of
        it deserves new attempts), a removed one is forgotten."""
        broken = self.health.broken()
        for gid in touched:
            if gid not in self.engine.deployed:
                self.health.forget(gid, counts=True)
                self._forget(gid)
            elif gid in broken:
                self.health.retry(gid)
                self._forget(gid)
                self._queue(gid, flows=True)
        self._watch_flows([self.engine.deployed[gid] for gid in touched
                           if gid in self.engine.deployed and gid not in broken])

    def _forget(self, gid: str) -> None:
        for table in (self._attempts, self._held, self._errors):
            table.pop(gid, None)

    def converge_now(self) -> dict:
        """Check and repair now every graph known broken or queued, the failed ones too;
        graph id -> what is still broken."""
        with self._cond:
            queued = {item: flows for item, (_, flows) in self._due.items() if item != NODE}
        left = {}
        for gid in sorted(self.health.broken() | set(queued)):
            faults = self._graph(gid, True, force=True)
            if faults:
                left[gid] = "; ".join(str(f) for f in faults)
                if gid in self._errors:
                    left[gid] += " (its repair failed: %s)" % self._errors[gid]
        for name, reason in self.health.node_faults().items():
            left.setdefault("", reason)
        return left
