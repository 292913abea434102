"""Prepared function slots: a few per graph, made while the node is idle.

Adding a port to a graph-LSI costs ovs-vswitchd full reconfigurations: one for the OVSDB
change and one for each link event of the new veths, each a pass over every port of the
node (on the userspace datapath, 90-250 ms at 3,000 ports). A commit that adds a function
waited for all of them. A slot is what a native function needs before its package runs:
its namespace, one veth pair per port, the node ends attached to the graph-LSI and tagged
composer-role=spare. A new function of the graph with as many ports takes a slot (the
planner decides, see Planner._claim_spares): its ports are retagged, which vswitchd does
not watch, and the vSwitch does not change at all. The same holds for the virtual links
the function's rules need: the pool keeps patch-port pairs under the next link names of
the graph (the planner numbers new links after the highest in use), and a link that gets
such a name is retagged instead of created.

Slots are not free: a graph's delete removes its spare ports from the datapath too, which
costs ovs-vswitchd some milliseconds per port. On a node with few ports a reconfiguration
is cheap and a slot saves little, so the pool fills only once the node's vSwitch has
min_ports ports (compute.spare-slots-min-ports).

The pool is a cache. It is filled after commits, in the background and one graph at a
time under the engine's lock. The slots and links of a removed graph are destroyed right
after the commit that removed it, also in the background (off the commit's path: a
graph's delete would otherwise wait for them), and at the latest when the agent stops.
At boot, recovery destroys every slot (they are in no snapshot) and the pool starts
empty. A commit that fails may leave a slot's ports gone (the undo of a removed graph-LSI
does not bring spare ports back): such slots are destroyed and made again.
"""

import logging
import threading
from dataclasses import dataclass

from drivers.errors import DriverError

from ..compute.manager import attachment_spec, spare_labels
from ..network.split import link_ports

LOG = logging.getLogger(__name__)

ENVIRONMENT = "native"


@dataclass(frozen=True)
class Spare:
    instance: str
    ports: tuple                  # the vSwitch port names, in order
    environment: str = ENVIRONMENT


class SparePool:
    """size slots of `ports` ports per running graph (size 0: no pool; the agent's
    configuration has 2 by default, compute.spare-slots)."""

    def __init__(self, naming, compute, network, size: int = 0, ports: int = 2,
                 delay: float = 0.5, min_ports: int = 0):
        self.naming = naming
        self.compute = compute
        self.network = network
        self.size = max(0, int(size))
        self.ports = int(ports)
        self.links = self.size * self.ports     # a link per port of every slot, at most
        self.delay = delay
        self.min_ports = int(min_ports)
        self._slots: dict = {}            # graph id -> [Spare]
        self._links: dict = {}            # graph id -> {link index: link name}
        self._doomed: list = []           # (slots, link names) of removed graphs
        # Set by the engine (under its lock) while a checked plan waits for apply(): the
        # slots and link names it took must stay as they are until then.
        self.paused = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        """Slots need a driver with the prepared-slots capability (drivers/compute/base.py)."""
        return (self.size > 0 and ENVIRONMENT in getattr(self.compute, "environments", ())
                and self.compute.has_slots(ENVIRONMENT))

    # --- what the planner sees ---

    def available(self) -> dict:
        """graph id -> the slots a plan may take (a copy)."""
        return {gid: tuple(slots) for gid, slots in self._slots.items() if slots}

    def available_links(self) -> dict:
        """graph id -> the names of the prepared links a plan may take."""
        return {gid: frozenset(links.values()) for gid, links in self._links.items() if links}

    # --- after a transaction (the caller holds the engine's lock) ---

    def committed(self, claimed, deployed: dict) -> None:
        """Forget the slots and links the plan took; destroy those of graphs no longer
        deployed (their graph-LSI went with its ports; the rest goes now)."""
        for gid in set(self._slots) | set(self._links):
            if gid not in deployed:
                self._doomed.append((self._slots.pop(gid, []),
                                     list(self._links.pop(gid, {}).values())))
                continue
            self._slots[gid] = [s for s in self._slots.get(gid, []) if s.instance not in claimed]
            self._links[gid] = {i: n for i, n in self._links.get(gid, {}).items()
                                if n not in claimed}
        self.wake()

    def checkpoint(self):
        """What the pool holds, for restore() (taken before committed())."""
        return ({gid: list(slots) for gid, slots in self._slots.items()},
                {gid: dict(links) for gid, links in self._links.items()}, list(self._doomed))

    def restore(self, checkpoint) -> None:
        """After the transaction was reverted (the caller holds the lock): the pool holds
        again what it held before it; its undo gave back the slots and links it took, and
        the graphs it removed are back. Slots of theirs the filler destroyed meanwhile are
        found by failed(), which the caller runs next."""
        slots, links, doomed = checkpoint
        self._doomed = [entry for entry in self._doomed if any(entry is d for d in doomed)]
        self._slots, self._links = slots, links
        self.wake()

    def drain(self) -> None:
        """Destroy the slots and links of removed graphs now (caller holds the lock)."""
        while self._doomed:
            slots, links = self._doomed.pop(0)
            for spare in slots:
                self._destroy(spare)
            self._destroy_links(links, None)

    def failed(self, touched, deployed: dict) -> None:
        """After a rolled-back transaction: destroy the slots of touched graphs whose ports
        are no longer on their graph-LSI."""
        for gid in touched:
            slots, links = self._slots.get(gid, []), self._links.get(gid, {})
            if not slots and not links:
                continue
            dg = deployed.get(gid)
            on_lsi, on_lsi0 = set(), set()
            if dg is not None:
                on_lsi = self._port_names(dg.lsi)
                on_lsi0 = self._port_names(self.network.lsi0) if links else set()
            keep = []
            for spare in slots:
                if set(spare.ports) <= on_lsi:
                    keep.append(spare)
                else:
                    self._destroy(spare, ports_on=dg.lsi if dg is not None else None)
            self._slots[gid] = keep
            broken = [n for n in links.values()
                      if link_ports(n)[0] not in on_lsi0 or link_ports(n)[1] not in on_lsi]
            self._destroy_links(broken, dg.lsi if dg is not None else None)
            self._links[gid] = {i: n for i, n in links.items() if n not in broken}
        self.wake()

    def _port_names(self, lsi: str) -> set:
        try:
            return {p.name for p in self.network.driver.list_ports(lsi)}
        except DriverError:
            return set()

    def clear(self) -> None:
        """At boot, after recovery destroyed every slot (they are in no snapshot)."""
        self._slots.clear()
        self._links.clear()

    # --- filling ---

    def node_ports(self, deployed: dict) -> int:
        """The vSwitch ports the deployed graphs hold (functions, SAPs, both ends of links,
        prepared slots and links) and LSI-0's interfaces."""
        count = len(getattr(self.network, "lsi0_interfaces", ()))
        for dg in deployed.values():
            count += sum(len(f.ports) for f in dg.functions.values())
            count += len(dg.sap_ports) + 2 * len(dg.links)
        count += sum(len(s.ports) for slots in self._slots.values() for s in slots)
        count += 2 * sum(len(links) for links in self._links.values())
        return count

    def worth_filling(self, deployed: dict) -> bool:
        return self.size > 0 and self.node_ports(deployed) >= self.min_ports

    def fill(self, gid: str, dg) -> int:
        """Make the missing slots and links of one graph, the vSwitch side in one change;
        returns how many slots and links were made."""
        slots = self._slots.setdefault(gid, [])
        links = self._links.setdefault(gid, {})
        if dg.status != "running":
            return 0
        # The planner numbers a graph's new links after the highest in use: prepared links
        # must follow the highest of the graph's and of those prepared before.
        next_index = max([l.index for l in dg.links] + list(links), default=-1) + 1
        new_links = {i: self.naming.virtual_link(gid, i)
                     for i in range(next_index, next_index + self.links - len(links))}
        missing = self.size - len(slots)
        if missing <= 0 and not new_links:
            return 0
        used = {f.instance for f in dg.functions.values()} | {s.instance for s in slots}
        made, attachments, index = [], [], 0
        owner = self.naming.prefix
        ids = spare_labels(owner, gid)
        try:
            while len(made) < missing:
                instance = self.naming.spare_instance(gid, index)
                index += 1
                if instance in used:
                    continue
                ports = tuple(self.naming.spare_port(instance, n) for n in range(self.ports))
                attachments += self.compute.prepare_spare(ENVIRONMENT, instance, ports, owner,
                                                          gid)
                made.append(Spare(instance, ports))
            self.network.driver.create_ports_and_links(
                dg.lsi, [attachment_spec(a, dict(ids)) for a in attachments],
                self.network.lsi0, list(new_links.values()), link_external_ids=dict(ids))
        except Exception as exc:  # noqa: BLE001 - a slot is a cache: log, clean, go on
            LOG.warning("preparing function slots for graph %s failed: %s", gid, exc)
            for spare in made:
                self._destroy(spare)
            return 0
        slots.extend(made)
        links.update(new_links)
        LOG.debug("graph %s: %d prepared slots, %d prepared links", gid, len(slots),
                  len(links))
        return len(made) + len(new_links)

    def _destroy_links(self, names, lsi: str | None) -> None:
        """Remove whichever patch ports of the links are still there."""
        names = list(names)
        if not names:
            return
        driver = self.network.driver
        for where, side in ((self.network.lsi0, 0), (lsi, 1)):
            if where is None:
                continue
            present = self._port_names(where)
            gone = [link_ports(n)[side] for n in names if link_ports(n)[side] in present]
            if gone:
                try:
                    driver.destroy_ports(where, gone)
                except DriverError as exc:
                    LOG.warning("removing prepared links of %s failed: %s", where, exc)
    def _destroy(self, spare: Spare, ports_on: str | None = None) -> None:
        try:
            if ports_on is not None:
                on_lsi = {p.name for p in self.network.driver.list_ports(ports_on)}
                gone = [name for name in spare.ports if name in on_lsi]
                if gone:
                    self.network.driver.destroy_ports(ports_on, gone)
            self.compute.driver(spare.environment).destroy(spare.instance)
        except DriverError as exc:
            LOG.warning("removing the prepared slot %s failed: %s", spare.instance, exc)

    # --- the background filler ---

    def start(self, lock, deployed) -> None:
        """Fill in a thread: `delay` seconds after the last wake(), one graph at a time
        under lock; deployed() gives the engine's current graphs."""
        if not self.enabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, args=(lock, deployed),
                                        name="spare-slots", daemon=True)
        self._thread.start()
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, lock=None) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if lock is not None:
            with lock:
                self.drain()

    def _run(self, lock, deployed) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._doomed:
                with lock:
                    self.drain()
            # Wait until no commit has come for `delay` seconds: a burst of commits is not
            # slowed by filling between them.
            while self._wake.is_set() and not self._stop.is_set():
                self._wake.clear()
                self._stop.wait(self.delay)
            if self._stop.is_set():
                return
            for gid in sorted(deployed()):
                if self._stop.is_set() or self._wake.is_set():
                    break
                with lock:
                    if self.paused:
                        break               # apply() or release() wakes the filler again
                    graphs = deployed()
                    if gid in graphs and self.worth_filling(graphs):
                        self.fill(gid, graphs[gid])

    # --- for the operational state and tests ---

    def count(self, gid: str) -> tuple:
        """(slots, links) prepared for a graph."""
        return len(self._slots.get(gid, ())), len(self._links.get(gid, {}))
