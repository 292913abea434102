"""The scheduler: binds functions to CPU cores, keeping neighbours close.

A function's neighbours are the functions its flow rules exchange traffic with. A new
function goes on the core of an already placed neighbour when that core has room for it,
else on the least loaded core. Placements of running functions never move.
"""

import math
import os


def neighbours(graph) -> dict:
    """function id -> ids of the functions directly connected to it by a rule."""
    out: dict = {fid: set() for fid in graph.functions}
    for rule in graph.rules.values():
        src = rule.in_port.function
        for target in rule.outputs():
            dst = target.function
            if src and dst and src != dst:
                out[src].add(dst)
                out[dst].add(src)
    return out


class Scheduler:
    def __init__(self, cores: int | None = None, capacity: float = 1.0):
        self.cores = cores or os.cpu_count() or 1
        self.capacity = capacity

    def place(self, desired: dict, deployed: dict, cpu_need) -> dict:
        """{(graph id, function id): (core, ...)} for every desired function.

        cpu_need(graph id, function) -> cores the function needs (may be fractional)."""
        load = [0.0] * self.cores
        placement: dict = {}
        for gid, dg in deployed.items():
            if gid not in desired:
                continue
            for fid, fn in dg.functions.items():
                if fid in desired[gid].functions and fn.cores:
                    placement[(gid, fid)] = tuple(fn.cores)
                    share = 1.0 / len(fn.cores)
                    for core in fn.cores:
                        if core < self.cores:
                            load[core] += share
        for gid in sorted(desired):
            graph = desired[gid]
            near = neighbours(graph)
            for fid in sorted(graph.functions):
                if (gid, fid) in placement:
                    continue
                need = max(0.01, float(cpu_need(gid, graph.functions[fid])))
                count = max(1, min(self.cores, math.ceil(need)))
                chosen = []
                for other in sorted(near.get(fid, ())):
                    for core in placement.get((gid, other), ()):
                        if core not in chosen and load[core] + need / count <= self.capacity:
                            chosen.append(core)
                        if len(chosen) == count:
                            break
                    if len(chosen) == count:
                        break
                for core in sorted(range(self.cores), key=lambda c: (load[c], c)):
                    if len(chosen) == count:
                        break
                    if core not in chosen:
                        chosen.append(core)
                for core in chosen:
                    load[core] += need / count
                placement[(gid, fid)] = tuple(sorted(chosen))
        return placement

    def free_cores(self, deployed: dict) -> int:
        used = set()
        for dg in deployed.values():
            for fn in dg.functions.values():
                used.update(fn.cores)
        return max(0, self.cores - len(used))
