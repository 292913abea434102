"""Prepared function slots (compute.spare-slots) on the real daemon, over NETCONF: a function
added to a running graph takes a slot, the vSwitch is not reconfigured, traffic flows; a
failed commit leaves the slot as it was; deleting the graph leaves nothing behind.
"""

import pytest

from agent.network.naming import Naming
from agent.tools.graphxml import config, delete_graph, firewall_bridge_chain, firewall_chain
from tests.e2e.node import Node, eventually, resources_diff


@pytest.fixture(scope="module")
def node(session_tmp):
    fault_file = session_tmp / "p-fault"
    with Node("p", session_tmp, {"eth1": "10.12.0.1/24", "eth2": "10.12.0.2/24"},
              prefix_suffix="p", spare_slots=1,
              extra_config='[debug]\nfault-file = "%s"\n' % fault_file) as n:
        n.fault_file = fault_file
        yield n


def commit(m, graph):
    m.edit_config(target="candidate", config=config(graph, operation="replace"))
    m.commit()


def slots(node) -> list:
    return [n for n in node.node_resources()["netns"]
            if n.startswith(node.resource_prefix + "w")]


def test_an_added_function_takes_a_slot_and_a_failed_one_leaves_it(node):
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    empty = node.node_resources()
    lsi = Naming(node.resource_prefix).graph_lsi("g1")
    with node.netconf() as m:
        commit(m, firewall_chain("g1"))
        assert h1.ping(h2.ip)
        # the agent prepares the graph's slot when the commits pause
        assert eventually(lambda: len(slots(node)) == 1, 15), node.node_resources()["netns"]
        count = node.settle()
        before = node.node_resources()

        # A failure after the bridge took the slot: the slot is as it was.
        m.edit_config(target="candidate",
                      config=config(firewall_bridge_chain(), operation="replace"))
        node.fault_file.write_text("start-function g1/%s" % slots(node)[0])
        try:
            with pytest.raises(Exception, match="rolled back"):
                m.commit()
        finally:
            node.fault_file.unlink()
        actual = node.node_resources()
        assert actual == before, resources_diff(before, actual)
        assert h1.ping(h2.ip)

        count = node.settle()
        m.commit()
        # the bridge runs in the slot: the vSwitch saw tags and flows change, nothing else
        assert node.reconfigurations() == count
        assert h1.ping(h2.ip)
        ports = node.node_resources()["bridges"][lsi]["ports"]
        assert any(p.startswith(node.resource_prefix + "w") for p in ports)

        m.edit_config(target="candidate", config=delete_graph("g1"))
        m.commit()
    assert eventually(lambda: node.node_resources() == empty, 15), resources_diff(
        empty, node.node_resources())


def test_kill_9_with_slots_prepared_then_a_restart_converges(node):
    """Slots are in no snapshot: after kill -9 the restarted agent removes them (their
    namespaces and their ports on the adopted graph-LSI), adopts the graph, and prepares
    them again."""
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    empty = node.node_resources(port_names=True)
    with node.netconf() as m:
        commit(m, firewall_chain("g1"))
    assert eventually(lambda: len(slots(node)) == 1, 15)
    node.settle()
    prepared = node.node_resources(port_names=True)
    slot = slots(node)[0]
    log_offset = node.log.stat().st_size

    node.kill_agent()
    node.start_agent()
    try:
        log = node.log.read_bytes()[log_offset:].decode(errors="replace")
        assert "recovery: destroy orphan instance %s" % slot in log
        assert "recovery: remove the spare ports of" in log
        assert h1.ping(h2.ip)
        # recovery removed the slot; the filler makes it again under the same names
        assert eventually(lambda: len(slots(node)) == 1, 15)
        node.settle()
        actual = node.node_resources(port_names=True)
        assert actual == prepared, resources_diff(prepared, actual)
        assert h1.ping(h2.ip)
    finally:
        with node.netconf() as m:
            m.edit_config(target="candidate", config=delete_graph("g1"))
            m.commit()
    assert eventually(lambda: node.node_resources(port_names=True) == empty, 15), resources_diff(
        empty, node.node_resources(port_names=True))
