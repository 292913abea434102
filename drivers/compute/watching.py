"""What a compute driver watches of its running instances, and how it reports what breaks
them (the watching part of ComputeDriver's contract, base.py).

Every driver reports the same two things, as drivers/watch.py Events with subject
FUNCTION and the instance as name:
  - LOST: a part of the instance is gone (its namespace, container or domain, the node
    side of a port): it must be made again;
  - EXITED: a process it runs exited (a native function's daemon, a container's init, a
    VM's hypervisor, a DPDK application): it must be started again.
Only what the driver did not do itself: a driver stops watching an instance (remove)
before it stops, changes or destroys it, and watches it again (add) once it runs.

InstanceWatch does the common part: the node-side ends of each instance's ports (a link
deleted in the node's namespace: LOST), the processes each one left running (a pidfd:
EXITED), and the sink. A driver adds what is its own (native: /run/netns, a namespace
deleted) and calls report() for it.
"""

import threading

from .. import netlink, watch


class InstanceWatch:
    """The watched instances of one driver: their node-side port ends and processes."""

    def __init__(self, node_netns: str | None = None):
        self.node_netns = node_netns
        self._guard = threading.Lock()
        self._watcher = None
        self._sink = None
        self._watched: dict[str, dict] = {}      # instance -> {"ends": [...], "pids": [...]}
        self._ends: dict[str, str] = {}          # node-side end -> instance

    @property
    def watcher(self):
        return self._watcher

    def start(self, watcher, sink) -> None:
        """From now on, report to sink; link deletions in the node's namespace are watched."""
        self._watcher, self._sink = watcher, sink
        netlink.watch_links(watcher, self.node_netns, self._end_gone)

    def stop(self) -> None:
        """Stop reporting; forget every instance."""
        with self._guard:
            watcher, self._watcher, self._sink = self._watcher, None, None
            instances = list(self._watched)
        for instance in instances:
            self.remove(instance, watcher)

    def instances(self) -> list:
        with self._guard:
            return list(self._watched)

    def add(self, instance: str, ends, processes=()) -> None:
        """Watch a running instance: its port ends, and its processes given as
        watch.process_identity() tuples. A process gone already is reported at once."""
        with self._guard:
            watcher = self._watcher
            if watcher is None:
                return
            ends = list(ends)
            self._watched[instance] = {"ends": ends,
                                       "pids": [identity[0] for identity in processes]}
            for end in ends:
                self._ends[end] = instance
        for identity in processes:
            pid, _, name = identity
            detail = "its process %d (%s) exited" % (pid, name)
            if not watch.alive(identity) or not watcher.watch_process(
                    pid, lambda i=instance, d=detail: self.report(i, watch.EXITED, d)):
                self.report(instance, watch.EXITED, detail)

    def remove(self, instance: str, watcher=None) -> None:
        """Stop watching an instance (before the driver itself stops or changes it)."""
        with self._guard:
            watched = self._watched.pop(instance, None)
            watcher = watcher or self._watcher
            if watched is None:
                return
            for end in watched["ends"]:
                if self._ends.get(end) == instance:
                    del self._ends[end]
        if watcher is not None:
            for pid in watched["pids"]:
                watcher.unwatch_process(pid)

    def report(self, instance: str, what: str, detail: str) -> None:
        """sink(Event(FUNCTION, instance, what, detail)) if the instance is watched."""
        with self._guard:
            sink = self._sink if instance in self._watched else None
        if sink is not None:
            sink(watch.Event(watch.FUNCTION, instance, what, detail))

    def namespace_gone(self, name: str | None) -> None:
        """A watcher.watch_directory(NETNS_RUN_DIR) callback, for drivers whose instances
        live in a namespace named after them: a deleted one is LOST (None: look at all)."""
        if name is None:
            for instance in self.instances():
                if not netlink.netns_usable(instance):
                    self.report(instance, watch.LOST, "its network namespace was deleted")
            return
        self.report(name, watch.LOST, "its network namespace was deleted")

    def _end_gone(self, ifname: str | None) -> None:
        if ifname is None:
            with self._guard:
                sink = self._sink
            if sink is not None:
                sink(watch.Event(watch.NODE, self.node_netns or "", watch.RESYNC,
                                 "link events were lost"))
            return
        instance = self._ends.get(ifname)
        if instance is not None:
            self.report(instance, watch.LOST, "its port %s was deleted" % ifname)
