"""Removing a graph that drifted: whatever was broken or removed by hand under the agent,
deleting the graph (or changing it) removes what is left of it, and leaves no orphan."""

import subprocess

import pytest

from tests.e2e.node import resources_diff
from tests.integration.inprocess import InProcessNode
from agent.tools.graphxml import firewall_bridge_chain, firewall_chain


class NoRepairNode(InProcessNode):
    # What is broken stays broken until the commit under test: no converger.
    overrides = {"repair": {"enabled": False}}


@pytest.fixture(scope="module")
def node(session_tmp):
    with NoRepairNode("t", session_tmp, {"eth1": "10.22.0.1/24", "eth2": "10.22.0.2/24"},
                      prefix_suffix="t") as n:
        yield n


def _function(node, gid="g1", fid="fw"):
    return node.engine.deployed[gid].functions[fid]


def _break_namespace(node):
    subprocess.run(["ip", "netns", "del", _function(node).instance], check=True)


def _break_port(node):
    dg = node.engine.deployed["g1"]
    node.ovs("ovs-vsctl", "del-port", dg.lsi, _function(node).ports[0][1])


def _break_link(node):
    dg = node.engine.deployed["g1"]
    node.ovs("ovs-vsctl", "del-port", dg.links[0].name + "-b")


def _break_lsi(node):
    node.ovs("ovs-vsctl", "del-br", node.engine.deployed["g1"].lsi)


def _break_instance(node):
    """The function's metadata and namespace both gone (a wiped state directory)."""
    instance = _function(node).instance
    subprocess.run(["ip", "netns", "del", instance], check=True)
    subprocess.run(["rm", "-rf", str(node.dir / "state" / "native" / instance)], check=True)


BREAKS = {"namespace": _break_namespace, "port": _break_port, "link": _break_link,
          "lsi": _break_lsi, "instance": _break_instance}


@pytest.mark.parametrize("how", sorted(BREAKS))
def test_deleting_a_broken_graph_removes_what_is_left(node, how):
    empty = node.node_resources()
    node.apply(firewall_chain("g1"))
    BREAKS[how](node)
    node.apply()
    assert node.engine.deployed == {}
    actual = node.resources_once_settled(empty)
    assert actual == empty, resources_diff(empty, actual)


@pytest.mark.parametrize("how", ["namespace", "port"])
def test_changing_a_broken_graph_replaces_the_broken_function(node, how):
    """A new version of the broken function's graph goes through (the old function is
    torn down as far as it exists), and traffic flows again."""
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    empty = node.node_resources()
    try:
        node.apply(firewall_chain("g1"))
        BREAKS[how](node)
        node.apply(firewall_chain("g1", parameters=["block-tcp-dst=5999"]))
        assert h1.ping(h2.ip)
        node.apply(firewall_bridge_chain("g1"))
        assert h1.ping(h2.ip)
    finally:
        node.apply()
    actual = node.resources_once_settled(empty)
    assert actual == empty, resources_diff(empty, actual)
