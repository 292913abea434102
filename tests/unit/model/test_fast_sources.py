"""Graph sources read one graph at a time, unchanged graphs reused: the same entries as
reading the whole tree (tree_to_dict), whatever the edit."""

import json

from agent.engine.engine import graph_sources
from agent.model.graph import SFFG, SourceReader, top_level, tree_to_dict
from agent.tools.graphxml import GraphXml
from tests.unit.engine.test_engine import running


def whole(root) -> dict:
    """What the engine read before: the whole service-graphs tree at once."""
    data = tree_to_dict(top_level(root, SFFG)).get(SFFG, {})
    return {g["id"]: g for g in data.get("service-graph", ())}


def firewalls(gid, count=3, parameter=None, priority=10, nic="eth1", mac_byte=1):
    g = GraphXml(gid)
    g.sap_interface("lan", nic).sap_interface("wan", "eth2")
    for i in range(count):
        fw = "fw%d" % i
        g.function(fw, "firewall", "lan", "wan",
                   parameters=[parameter] if parameter and i == 1 else ())
        mac = "02:00:00:00:%02x:%02x" % (mac_byte, i)
        g.rule("in%d" % i, "lan", fw + ":lan", priority=priority if i == 2 else 10,
               match={"eth-src": mac})
        g.rule("out%d" % i, fw + ":wan", "wan")
    return g.xml()


STEPS = [
    ("start", [firewalls("g1"), firewalls("g2", mac_byte=2)]),
    ("a function's parameter", [firewalls("g1", parameter="block-tcp-dst=22"),
                                firewalls("g2", mac_byte=2)]),
    ("a rule's priority", [firewalls("g1", parameter="block-tcp-dst=22", priority=20),
                           firewalls("g2", mac_byte=2)]),
    ("a SAP", [firewalls("g1", parameter="block-tcp-dst=22", priority=20),
               firewalls("g2", mac_byte=2, nic="eth3")]),
    ("a function more", [firewalls("g1", count=4, parameter="block-tcp-dst=22", priority=20),
                         firewalls("g2", mac_byte=2, nic="eth3")]),
    ("a graph added", [firewalls("g1", count=4, parameter="block-tcp-dst=22", priority=20),
                       firewalls("g2", mac_byte=2, nic="eth3"), firewalls("g3", mac_byte=3)]),
    ("a graph removed", [firewalls("g2", mac_byte=2, nic="eth3"),
                         firewalls("g3", mac_byte=3)]),
    ("all graphs removed", []),
    ("back", [firewalls("g1"), firewalls("g2", mac_byte=2)]),
]


def test_every_edit_reads_as_the_whole_tree_reads():
    reader = SourceReader()
    before: dict = {}
    for what, graphs in STEPS:
        tree = running(*graphs)
        read, expected = reader.read(tree), whole(tree)
        assert read == expected, what
        assert list(read) == list(expected), what
        # what the edit left alone is the entry of the previous read itself
        for gid, entry in read.items():
            if gid in before and json.dumps(before[gid]) == json.dumps(entry):
                assert entry is before[gid], (what, gid)
            else:
                assert all(entry is not old for old in before.values()), (what, gid)
        before = read


def test_a_changed_graph_is_a_new_entry_and_the_old_one_is_untouched():
    reader = SourceReader()
    first = reader.read(running(firewalls("g1")))["g1"]
    kept = json.dumps(first, sort_keys=True)
    second = reader.read(running(firewalls("g1", priority=30)))["g1"]
    assert second is not first and second != first
    assert json.dumps(first, sort_keys=True) == kept


def test_no_tree_and_no_graphs_read_as_nothing():
    reader = SourceReader()
    assert reader.read(None) == {}
    assert reader.read(running()) == {}


def test_the_engine_reads_through_a_reader():
    tree = running(firewalls("g1"), firewalls("g2", mac_byte=2))
    first = graph_sources(tree)
    assert first == whole(tree)
    again = graph_sources(running(firewalls("g1"), firewalls("g2", mac_byte=2)))
    assert all(again[gid] is first[gid] for gid in first)
