"""The scheduler: binds functions to CPU cores, keeping neighbours close.

A function's neighbours are the functions its graph's flow rules pass traffic between
(either way). Placing a function that needs `cpu` cores' worth on ceil(cpu) cores:
  - a poll-mode function (its template's poll-mode flag, DPDK) gets cores of its own:
    cores no other function is bound to, nearest to its neighbours' cores; once it has
    them, nothing else is placed there;
  - any other function shares cores: among those not owned by a poll-mode function, the
    nearest to its neighbours' cores (the same core first, then an SMT sibling, then the
    next cores of the package: Topology.distance) where it still fits (the functions
    bound to a core need at most `capacity` cores' worth); without neighbours placed
    yet, the fullest core it still fits on, so that functions pack onto few cores and
    whole cores stay free for poll-mode functions; when it fits nowhere, the least
    loaded cores.
Placements of running functions never move. The topology is injectable (Topology.synthetic
for 8- or 16-core layouts in tests). Only the functions a transaction creates are placed,
against the loads of the Allocation (agent/compute/allocation.py): O(change).

What a binding means per environment: the native driver sets the affinity of the
function's processes (children inherit it), docker's cpuset_cpus, KVM's vcpupin, DPDK's
-l: each driver reads FunctionSpec.cpu_cores.
"""

from .allocation import whole_cores
from .topology import Topology


def adjacency(graph) -> dict:
    """function id -> its neighbours, for every function of graph (one pass over rules)."""
    out: dict = {fid: set() for fid in graph.functions}
    for rule in graph.rules.values():
        src = rule.in_port.function
        for target in rule.outputs():
            dst = target.function
            if src and dst and src != dst:
                out.setdefault(src, set()).add(dst)
                out.setdefault(dst, set()).add(src)
    return out


class PlacementError(Exception):
    """A function cannot have the cores it needs (function: its id, when known)."""

    def __init__(self, message: str, function: str | None = None):
        super().__init__(message)
        self.function = function


class Scheduler:
    def __init__(self, topology: Topology | None = None, capacity: float = 1.0,
                 cores: int | None = None):
        """topology: the CPUs functions may use (default: those the agent may run on);
        cores: a synthetic topology of that many cores instead (tests)."""
        self.topology = topology or (Topology.synthetic(cores) if cores else Topology.detect())
        self.capacity = capacity

    @property
    def cores(self) -> int:
        return len(self.topology)

    def place_graph(self, allocation, graph_id: str, graph, new: dict, placed: dict) -> dict:
        """Cores for the functions of graph in new (function id -> (cpu, exclusive)),
        given the cores of those placed already (function id -> cores); binds them in the
        allocation. Returns function id -> cores (sorted tuple)."""
        if not new:
            return {}
        near = adjacency(graph)
        placed = dict(placed)
        out = {}
        for fid in _order(new, near, placed):
            cpu, exclusive = new[fid]
            around = [core for other in sorted(near.get(fid, ())) for core in
                      placed.get(other, ())]
            try:
                cores = self.place(allocation, cpu, exclusive, around)
            except PlacementError as exc:
                raise PlacementError("%s: %s" % (fid, exc), fid) from None
            allocation.bind((graph_id, fid), cores, cpu, exclusive)
            placed[fid] = out[fid] = cores
        return out

    def place(self, allocation, cpu: float, exclusive: bool, around=()) -> tuple:
        """ceil(cpu) cores for one function near the cores in around (see the module)."""
        topology = self.topology
        count = whole_cores(cpu)
        around = [c for c in around if c in topology.by_id]

        def closeness(core, chosen):
            anchors = list(around) + chosen
            return min((topology.distance(core, a) for a in anchors), default=0)

        if exclusive:
            idle = allocation.idle_cores()
            if len(idle) < count:
                raise PlacementError("%d cores of its own wanted, %d free" % (count, len(idle)))
            chosen = []
            for _ in range(count):
                # near the neighbours; else from the top, leaving low cores to the others
                best = min((c for c in idle if c not in chosen),
                           key=lambda c: (closeness(c, chosen), -c))
                chosen.append(best)
            return tuple(sorted(chosen))
        shared = allocation.shared_cores()
        if not shared:
            raise PlacementError("every core is owned by a poll-mode function")
        count = min(count, len(shared))
        share = max(cpu, 0.01) / count
        chosen = []
        for _ in range(count):
            rest = [c for c in shared if c not in chosen]
            fits = [c for c in rest if allocation.load.get(c, 0.0) + share
                    <= self.capacity + 1e-9]
            if fits and (around or chosen):
                best = min(fits, key=lambda c: (closeness(c, chosen),
                                                -allocation.load.get(c, 0.0), c))
            elif fits:
                best = min(fits, key=lambda c: (-allocation.load.get(c, 0.0), c))
            else:
                best = min(rest, key=lambda c: (allocation.load.get(c, 0.0),
                                                closeness(c, chosen), c))
            chosen.append(best)
        return tuple(sorted(chosen))

    def free_cores(self, deployed: dict) -> int:
        """Cores no deployed function is bound to."""
        used = set()
        for dg in deployed.values():
            for fn in dg.functions.values():
                used.update(fn.cores)
        return max(0, self.cores - len(used & set(self.topology.ids)))


def _order(new: dict, near: dict, placed: dict) -> list:
    """The new functions in the order they are placed: breadth first along the graph's
    chains from the functions placed already, so that each comes next to a neighbour."""
    from collections import deque
    order, seen = [], set()
    queue = deque(sorted(f for f in new if near.get(f, set()) & placed.keys()))
    seen.update(queue)
    rest = iter(sorted(new))
    while len(order) < len(new):
        if not queue:
            fid = next(f for f in rest if f not in seen)
            queue.append(fid)
            seen.add(fid)
        fid = queue.popleft()
        order.append(fid)
        for other in sorted(near.get(fid, ())):
            if other in new and other not in seen:
                seen.add(other)
                queue.append(other)
    return order
