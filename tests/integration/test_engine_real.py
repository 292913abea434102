"""The engine on the real drivers: a private OVS in a node namespace, native functions,
host namespaces with traffic. Every step of a deploy plan is made to fail in turn; after
each failure the node (OVSDB rows, flows, namespaces, links, processes) is as before.
"""

import pytest

from agent.engine.executor import StepFailed  # noqa: F401 - documents what apply wraps
from agent.engine.interface import EngineRefused
from agent.model import create_context, parse_config
from tests.e2e.node import resources_diff
from tests.integration.inprocess import InProcessNode
from tests.engines import failing_at
from agent.tools.graphxml import firewall_bridge_chain, firewall_chain, service_graphs

CTX = create_context()


@pytest.fixture(scope="module")
def node(session_tmp):
    with InProcessNode("e", session_tmp, {"eth1": "10.20.0.1/24", "eth2": "10.20.0.2/24"},
                       prefix_suffix="e") as n:
        yield n


def test_deploy_passes_traffic_and_delete_restores_the_node(node):
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    before = node.node_resources()
    node.apply(firewall_chain("g1", parameters=["block-icmp"]))
    assert not h1.ping(h2.ip, count=2)
    node.apply(firewall_chain("g1"))
    assert h1.ping(h2.ip)
    node.apply()
    assert not h1.ping(h2.ip, count=1)
    assert node.resources_once_settled(before) == before


@pytest.mark.parametrize("scenario", ["deploy", "insert", "delete"])
def test_a_failure_at_every_step_leaves_the_node_as_before(node, scenario):
    before_graphs, after_graphs = {
        "deploy": ((), (firewall_chain("g1"),)),
        "insert": ((firewall_chain("g1"),), (firewall_bridge_chain(),)),
        "delete": ((firewall_bridge_chain(),), ()),
    }[scenario]
    after_tree = parse_config(CTX, service_graphs(*after_graphs)) if after_graphs else None
    node.apply(*before_graphs)
    steps = [str(s) for s in node.engine.dry_run(after_tree).steps()]
    assert steps
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    try:
        for target in steps:
            node.apply(*before_graphs)
            expected = node.node_resources()

            with failing_at(node.engine.executor, target):
                with pytest.raises(EngineRefused) as refused:
                    node.engine.apply(None, after_tree)
            assert target in refused.value.message
            actual = node.node_resources()
            assert actual == expected, "after a failure at %s:\n%s" % (
                target, resources_diff(expected, actual))
            if before_graphs:
                assert h1.ping(h2.ip, count=2), "traffic broken after a failure at %s" % target
        # and without a fault the change goes through
        node.engine.apply(None, after_tree)
        assert h1.ping(h2.ip, count=2) == bool(after_graphs)
    finally:
        node.apply()


def test_what_a_check_begins_carries_no_traffic_and_release_undoes_it(node):
    """A commit's check runs the steps no traffic sees while libyang validates: a running
    graph's traffic keeps its path and none reaches the new function; when libyang refuses,
    release() restores the node exactly; apply() finishes what the check began."""
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    after_tree = parse_config(CTX, service_graphs(firewall_bridge_chain()))
    try:
        node.apply(firewall_chain("g1"))
        running = node.node_resources()
        lsi = node.engine.deployed["g1"].lsi

        node.engine.read(None, after_tree)()
        bridge = node.engine._open.result.deployed["g1"].functions["br"]
        assert bridge.instance in node.node_resources()["netns"]
        assert node.node_resources() != running
        assert h1.ping(h2.ip, count=3)                # the old path, unchanged
        # (what the vSwitch sent to a port: the function's own packets, IPv6 neighbour
        # discovery, come the other way, and no flow takes them anywhere)
        stats = node.engine.network.driver.port_stats(lsi)
        assert all(stats[ifname]["tx_packets"] == 0 for _, ifname in bridge.ports), \
            "traffic reached the function begun"

        node.engine.release(after_tree)
        actual = node.node_resources()
        assert actual == running, resources_diff(running, actual)
        assert h1.ping(h2.ip, count=2)

        node.engine.read(None, after_tree)()
        node.engine.apply(None, after_tree)
        assert h1.ping(h2.ip, count=2)
        stats = node.engine.network.driver.port_stats(lsi)
        assert all(stats[ifname]["tx_packets"] > 0 for _, ifname in bridge.ports)
    finally:
        node.apply()


@pytest.fixture(scope="module")
def spare_node(session_tmp):
    """A node that keeps one prepared function slot per graph."""
    with InProcessNode("s", session_tmp, {"eth1": "10.21.0.1/24", "eth2": "10.21.0.2/24"},
                       prefix_suffix="s", spare_slots=1) as n:
        yield n


def test_a_function_added_to_a_running_graph_takes_a_prepared_slot(spare_node):
    node = spare_node
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    empty = node.node_resources()
    try:
        node.apply(firewall_chain("g1"))
        assert node.engine.fill_spares() == 3          # one slot, two links
        slot = node.engine.spares.available()["g1"][0]
        assert slot.instance.startswith(node.resource_prefix + "w")
        count = node.settle(0.5)

        node.apply(firewall_bridge_chain())
        # The bridge is in the slot, its ports and links were there: the vSwitch did not
        # change, only tags and flows did.
        assert node.engine.deployed["g1"].functions["br"].instance == slot.instance
        assert node.reconfigurations() == count
        # (the bridge's rules reuse the links the firewall's wan side no longer needs)
        assert node.engine.spares.count("g1") == (0, 2)
        assert h1.ping(h2.ip)

        node.engine.fill_spares()
        assert node.engine.spares.count("g1") == (1, 2)
        node.apply(firewall_chain("g1"))              # the bridge goes like any function
        assert h1.ping(h2.ip)
    finally:
        node.apply()
    # the graph's slots and links go right after it
    node.engine.drain_spares()
    actual = node.resources_once_settled(empty)
    assert actual == empty, resources_diff(empty, actual)


def test_a_failure_at_every_step_of_a_slot_taking_change_leaves_the_node_as_before(
        spare_node):
    node = spare_node
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    after_tree = parse_config(CTX, service_graphs(firewall_bridge_chain()))
    try:
        node.apply(firewall_chain("g1"))
        node.engine.fill_spares()
        steps = [str(s) for s in node.engine.dry_run(after_tree).steps()]
        assert any(s.startswith("tag-ports") for s in steps), steps
        for target in steps:
            node.apply(firewall_chain("g1"))
            node.engine.fill_spares()
            expected = node.node_resources()

            with failing_at(node.engine.executor, target):
                with pytest.raises(EngineRefused):
                    node.engine.apply(None, after_tree)
            actual = node.node_resources()
            assert actual == expected, "after a failure at %s:\n%s" % (
                target, resources_diff(expected, actual))
            assert node.engine.spares.count("g1") == (1, 2)
            assert h1.ping(h2.ip, count=2), "traffic broken after a failure at %s" % target
        node.engine.apply(None, after_tree)
        assert h1.ping(h2.ip, count=2)
    finally:
        node.apply()
