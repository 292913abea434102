"""The scheduler's decisions on synthetic topologies: neighbours on the same or the next
cores, poll-mode functions on cores of their own that nothing else shares."""

import pytest

from agent.compute.allocation import Allocation
from agent.compute.scheduler import PlacementError, Scheduler, adjacency
from agent.compute.topology import Topology
from agent.model.graph import Endpoint, Function, Graph, Port, Rule


def _chain(*fids) -> Graph:
    """f0 -- f1 -- f2 ... each pair joined by a rule both ways."""
    functions = {fid: Function(fid, "x", ports=(Port("a"), Port("b"))) for fid in fids}
    rules = {}
    for left, right in zip(fids, fids[1:]):
        rules["%s>%s" % (left, right)] = Rule("%s>%s" % (left, right), 10,
                                              Endpoint(function=left, port="b"), (),
                                              (("output", Endpoint(function=right, port="a")),))
        rules["%s<%s" % (left, right)] = Rule("%s<%s" % (left, right), 10,
                                              Endpoint(function=right, port="a"), (),
                                              (("output", Endpoint(function=left, port="b")),))
    return Graph(id="g", functions=functions, rules=rules)


def _allocation(topology, ratio=16.0):
    return Allocation(cores=topology.ids, memory_capacity=1 << 20, allocation_ratio=ratio)


def test_adjacency():
    assert adjacency(_chain("a", "b", "c")) == {"a": {"b"}, "b": {"a", "c"}, "c": {"b"}}


def test_neighbours_share_a_core_while_it_has_room():
    topology = Topology.synthetic(8)
    scheduler = Scheduler(topology)
    allocation = _allocation(topology)
    placed = scheduler.place_graph(allocation, "g", _chain("a", "b", "c"),
                                   {"a": (0.3, False), "b": (0.3, False), "c": (0.3, False)}, {})
    assert placed == {"a": (0,), "b": (0,), "c": (0,)}


def test_a_full_core_sends_the_neighbour_to_the_next_core():
    topology = Topology.synthetic(8)
    scheduler = Scheduler(topology)
    allocation = _allocation(topology)
    allocation.bind(("other", "x"), (5,), 0.3, False)    # some load elsewhere
    placed = scheduler.place_graph(allocation, "g", _chain("a", "b", "c"),
                                   {"a": (0.6, False), "b": (0.6, False), "c": (0.6, False)}, {})
    # a fills core 5 (the fullest where it fits); b beside a, c beside b: the chain on
    # three consecutive cores
    assert placed["a"] == (5,)
    assert abs(placed["b"][0] - placed["a"][0]) == 1
    assert abs(placed["c"][0] - placed["b"][0]) == 1
    cores = sorted(c for cores in placed.values() for c in cores)
    assert cores == list(range(cores[0], cores[0] + 3))


def test_a_new_function_joins_its_placed_neighbour():
    topology = Topology.synthetic(16)
    scheduler = Scheduler(topology)
    allocation = _allocation(topology)
    allocation.bind(("g", "a"), (9,), 0.2, False)
    placed = scheduler.place_graph(allocation, "g", _chain("a", "b"), {"b": (0.2, False)},
                                   {"a": (9,)})
    assert placed == {"b": (9,)}


def test_smt_siblings_are_closer_than_other_cores():
    topology = Topology.synthetic(4, threads=2)    # cpu n and n+4 are siblings
    assert topology.distance(1, 5) == 1 and topology.distance(1, 2) == 3


def test_a_poll_mode_function_owns_its_cores_and_nothing_shares_them():
    topology = Topology.synthetic(4)
    scheduler = Scheduler(topology)
    allocation = _allocation(topology)
    placed = scheduler.place_graph(allocation, "g", _chain("a", "dp", "b"),
                                   {"a": (0.2, False), "dp": (2, True), "b": (0.2, False)}, {})
    owned = set(placed["dp"])
    assert len(owned) == 2
    assert not owned & set(placed["a"]) and not owned & set(placed["b"])
    # later functions never land there, even when the shared cores are full
    for n in range(6):
        cores = scheduler.place(allocation, 0.9, False)
        allocation.bind(("h", str(n)), cores, 0.9, False)
        assert not owned & set(cores)
    # and a second poll-mode function finds no idle core
    with pytest.raises(PlacementError):
        scheduler.place(allocation, 1, True)
