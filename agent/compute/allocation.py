"""What the node has left for functions while one transaction is planned: the resolver's
and the scheduler's accounts.

Memory: the functions may hold `memory_capacity` MiB (the node's memory less what it keeps
for itself, compute.reserved-memory), and never more than the kernel says is available
now. CPU: the cores not owned by a poll-mode function are time-shared; their functions may
ask for `allocation_ratio` times their number in cores (compute.cpu-allocation-ratio,
32 by default: most functions idle most of the time, and the paper's 500 personal
firewalls of 0.1 core each must fit a 2-core node). A poll-mode (DPDK) function needs whole cores that nothing else runs on.

An Allocation starts from what is deployed (each deployed function's memory, cpu, cores
and whether they are its own, as its record keeps them, summed per graph once and cached
on the graph's record: planning a change of one graph reads the others' sums only), then
the plan releases what it removes and reserves what it creates. Per core, `load` is the
CPU the shared functions bound to it need; `owner` the poll-mode function that owns it.
"""

import math


def graph_accounts(dg) -> tuple:
    """(memory, shared cpu, {core: load}, {core: function id} of owned cores) of a deployed
    graph, computed once per record."""
    cached = getattr(dg, "_accounts", None)
    if cached is not None and cached[0] is dg.functions:
        return cached[1]
    memory, cpu, load, owned = 0, 0.0, {}, {}
    for fid, fn in dg.functions.items():
        memory += fn.memory
        if fn.exclusive:
            for core in fn.cores:
                owned[core] = (dg.id, fid)
            continue
        cpu += fn.cpu
        for core in fn.cores:
            load[core] = load.get(core, 0.0) + _share(fn)
    accounts = (memory, cpu, load, owned)
    try:
        object.__setattr__(dg, "_accounts", (dg.functions, accounts))
    except AttributeError:
        pass
    return accounts


def _share(fn) -> float:
    """The load a shared function puts on each of its cores."""
    return max(fn.cpu, 0.01) / max(1, len(fn.cores))


class Allocation:
    def __init__(self, cores, memory_capacity: int, memory_available=None,
                 allocation_ratio: float = 32.0):
        self.cores = tuple(cores)                 # CPU ids functions may use
        self.memory_capacity = int(memory_capacity)   # MiB
        self.memory_available = memory_available      # callable() -> MiB now, or None
        self.allocation_ratio = float(allocation_ratio)
        self.memory = 0                           # MiB held
        self.cpu = 0.0                            # shared cores' worth held
        self.load = {core: 0.0 for core in self.cores}
        self.owner: dict = {}                     # core -> (graph, function) owning it
        self.exclusive_pending = 0                # whole cores promised, not yet placed

    @classmethod
    def of(cls, deployed: dict, **kw) -> "Allocation":
        alloc = cls(**kw)
        for dg in deployed.values():
            memory, cpu, load, owned = graph_accounts(dg)
            alloc.memory += memory
            alloc.cpu += cpu
            for core, value in load.items():
                alloc.load[core] = alloc.load.get(core, 0.0) + value
            alloc.owner.update(owned)
        return alloc

    # --- what is free ---

    def memory_free(self) -> int:
        free = self.memory_capacity - self.memory
        if self.memory_available is not None:
            free = min(free, self.memory_available())
        return free

    def shared_cores(self) -> list:
        return [c for c in self.cores if c not in self.owner]

    def cpu_free(self) -> float:
        shared = len(self.shared_cores()) - self.exclusive_pending
        return shared * self.allocation_ratio - self.cpu

    def idle_cores(self) -> list:
        """Cores no function is bound to: a poll-mode function may have them."""
        return [c for c in self.cores if c not in self.owner and self.load.get(c, 0.0) <= 0]

    def why_not(self, memory: int, cpu: float, exclusive: bool) -> list:
        """Why a function needing that does not fit ([]: it does)."""
        reasons = []
        free = self.memory_free()
        if memory > free:
            reasons.append("needs %d MiB of memory, %d MiB free" % (memory, max(0, free)))
        if exclusive:
            need = whole_cores(cpu)
            idle = len(self.idle_cores()) - self.exclusive_pending
            if need > idle:
                reasons.append("needs %d core%s of its own, %d %s free of other functions"
                               % (need, "s" if need > 1 else "", max(0, idle),
                                  "is" if idle == 1 else "are"))
        else:
            if cpu > len(self.shared_cores()):
                reasons.append("needs %.2f cores, the node shares %d"
                               % (cpu, len(self.shared_cores())))
            elif cpu > self.cpu_free() + 1e-9:
                reasons.append("needs %.2f cores of CPU, %.2f free (%d shared cores x "
                               "cpu-allocation-ratio %g, less what functions hold)"
                               % (cpu, max(0.0, self.cpu_free()), len(self.shared_cores()),
                                  self.allocation_ratio))
        return reasons

    # --- changes ---

    def reserve(self, memory: int, cpu: float, exclusive: bool) -> None:
        """A function is resolved (its cores come later, from the scheduler)."""
        self.memory += memory
        if exclusive:
            self.exclusive_pending += whole_cores(cpu)
        else:
            self.cpu += cpu

    def unreserve(self, memory: int, cpu: float, exclusive: bool) -> None:
        self.memory -= memory
        if exclusive:
            self.exclusive_pending -= whole_cores(cpu)
        else:
            self.cpu -= cpu

    def bind(self, owner, cores, cpu: float, exclusive: bool) -> None:
        """A resolved function is placed on cores."""
        if exclusive:
            self.exclusive_pending -= whole_cores(cpu)
            for core in cores:
                self.owner[core] = owner
            return
        share = max(cpu, 0.01) / max(1, len(cores))
        for core in cores:
            self.load[core] = self.load.get(core, 0.0) + share

    def release(self, fn, owner=None) -> None:
        """A deployed function goes (DeployedFunction)."""
        self.memory -= fn.memory
        if fn.exclusive:
            for core in fn.cores:
                self.owner.pop(core, None)
            return
        self.cpu -= fn.cpu
        for core in fn.cores:
            if core in self.load:
                self.load[core] = max(0.0, self.load[core] - _share(fn))

    def checkpoint(self) -> tuple:
        return (self.memory, self.cpu, self.exclusive_pending)

    def restore(self, checkpoint: tuple) -> None:
        self.memory, self.cpu, self.exclusive_pending = checkpoint


def whole_cores(cpu: float) -> int:
    return max(1, math.ceil(cpu - 1e-9))
