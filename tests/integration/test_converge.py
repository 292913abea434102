"""The converger on the real drivers, in process: each fault is seen at once (the graph is
degraded, with the reason) and repaired (running again, traffic flows), within bounds."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent.network.split import deployed_split
from agent.tools.graphxml import GraphXml, firewall_chain, native_template
from tests.e2e.node import eventually, resources_diff
from tests.integration.inprocess import InProcessNode

RELAY = str(Path(__file__).resolve().parents[1] / "packages" / "relay")
DETECT = 1.0            # seconds from a fault to the graph shown degraded
REPAIR = 10.0           # ... to running again


class FastNode(InProcessNode):
    overrides = {"repair": {"attempts": 3, "backoff-ms": 100, "backoff-max-ms": 400,
                            "stable-seconds": 5}}


@pytest.fixture(scope="module")
def node(session_tmp):
    with FastNode("c", session_tmp, {"eth1": "10.23.0.1/24", "eth2": "10.23.0.2/24"},
                  prefix_suffix="c") as n:
        yield n


def relay_chain(graph_id="g1"):
    g = GraphXml(graph_id)
    g.function("rl", "relay", "a", "b")
    g.sap_interface("lan", "eth1").sap_interface("wan", "eth2")
    g.bidirectional("lan", "lan", "rl:a")
    g.bidirectional("wan", "rl:b", "wan")
    return g


TEMPLATE = native_template("test-relay", "relay", RELAY)


@pytest.fixture
def deployed(node):
    """g1 (lan -- firewall -- wan), running with traffic; the node as it was after."""
    empty = node.node_resources()
    node.apply(firewall_chain("g1"))
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    assert h1.ping(h2.ip)
    yield node.engine.deployed["g1"]
    node.apply()
    actual = node.resources_once_settled(empty)
    assert actual == empty, resources_diff(empty, actual)


def ofctl(node, command, lsi, *args):
    from drivers.vswitch.ovs_process import PrivateOVS
    ovs = PrivateOVS(node.dir / "ovs", netns=node.netns)
    subprocess.run(["ovs-ofctl", "-O", "OpenFlow14", command, ovs.bridge_mgmt(lsi), *args],
                   env=ovs.env(), check=True, capture_output=True)


def _status(node, gid="g1"):
    return node.engine.graph_status(gid)[0]


def _degraded_then_running(node, fault, gid="g1"):
    """(seconds until degraded, seconds until running again) after fault()."""
    started = time.monotonic()
    fault()
    assert eventually(lambda: _status(node, gid) != "running", DETECT, 0.005), \
        "still running %.1f s after the fault" % DETECT
    seen = time.monotonic() - started
    assert eventually(lambda: _status(node, gid) == "running", REPAIR, 0.02), \
        "not repaired: %s" % (node.engine.status_reason(gid),)
    return seen, time.monotonic() - started


def _traffic(node):
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    return h1.ping(h2.ip)


def test_a_deleted_namespace_is_made_again(node, deployed):
    fn = deployed.functions["fw"]
    seen, repaired = _degraded_then_running(
        node, lambda: subprocess.run(["ip", "netns", "del", fn.instance], check=True))
    assert _traffic(node)
    assert node.engine.health.restarts("g1", "fw") == 1
    print("namespace: degraded after %.3f s, running after %.3f s" % (seen, repaired))


def test_a_port_deleted_by_hand_is_put_back(node, deployed):
    port = deployed.functions["fw"].ports[0][1]
    seen, repaired = _degraded_then_running(
        node, lambda: node.ovs("ovs-vsctl", "del-port", deployed.lsi, port))
    assert _traffic(node)
    print("port: degraded after %.3f s, running after %.3f s" % (seen, repaired))


def test_a_link_end_deleted_by_hand_is_put_back(node, deployed):
    end = deployed.links[0].name + "-a"
    seen, repaired = _degraded_then_running(
        node, lambda: node.ovs("ovs-vsctl", "del-port", node.engine.network.lsi0, end))
    assert _traffic(node)


def test_a_flow_deleted_by_hand_is_put_back(node, deployed):
    before = node.node_resources()
    ofctl(node, "del-flows", deployed.lsi)
    assert eventually(lambda: node.node_resources() == before, REPAIR, 0.05), \
        resources_diff(before, node.node_resources())
    assert _traffic(node)
    assert _status(node) == "running"


def test_a_deleted_graph_lsi_is_deployed_again(node, deployed):
    seen, repaired = _degraded_then_running(
        node, lambda: node.ovs("ovs-vsctl", "del-br", deployed.lsi))
    assert _traffic(node)


def test_a_dead_process_is_restarted(node):
    empty = node.node_resources()
    try:
        node.apply(relay_chain(), extra=TEMPLATE)
        assert _traffic(node)
        fn = node.engine.deployed["g1"].functions["rl"]
        pid, = [identity[0] for identity in _meta_processes(node, fn.instance)]
        seen, repaired = _degraded_then_running(node, lambda: os.kill(pid, signal.SIGKILL))
        assert _traffic(node)
        assert node.engine.health.restarts("g1", "rl") == 1
        print("process: degraded after %.3f s, running after %.3f s" % (seen, repaired))
    finally:
        node.apply()
    actual = node.resources_once_settled(empty)
    assert actual == empty, resources_diff(empty, actual)


def test_a_function_that_keeps_dying_is_failed_after_the_attempts(node):
    empty = node.node_resources()
    try:
        node.apply(relay_chain(), extra=TEMPLATE)
        instance = node.engine.deployed["g1"].functions["rl"].instance

        def kill_all():
            for identity in _meta_processes(node, instance):
                try:
                    os.kill(identity[0], signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return _status(node) == "failed"
        assert eventually(kill_all, 30, 0.05), node.engine.status_reason("g1")
        assert "repaired 3 times in a row" in node.engine.status_reason("g1")
        assert node.engine.health.restarts("g1", "rl") == 3
    finally:
        node.apply()
    actual = node.resources_once_settled(empty)
    assert actual == empty, resources_diff(empty, actual)


def _meta_processes(node, instance):
    import json
    meta = json.loads((node.dir / "state" / "native" / instance / "instance.json").read_text())
    return meta.get("processes", [])


def test_ovs_vswitchd_killed_is_restarted_and_its_flows_installed_again(node, deployed):
    pid = node.vswitch.ovs.vswitchd_pid()
    seen, repaired = _degraded_then_running(node, lambda: os.kill(pid, signal.SIGKILL))
    assert node.vswitch.ovs.vswitchd_pid() not in (None, pid)
    assert eventually(lambda: _traffic(node), 5, 0.1)
    print("vswitchd: degraded after %.3f s, running after %.3f s" % (seen, repaired))


def test_ovsdb_server_killed_is_restarted(node, deployed):
    pid = node.vswitch.ovs.ovsdb_pid()
    seen, repaired = _degraded_then_running(node, lambda: os.kill(pid, signal.SIGKILL))
    assert node.vswitch.ovs.ovsdb_pid() not in (None, pid)
    assert _traffic(node)
    # the driver talks to the new server
    node.apply(firewall_chain("g1", parameters=["block-tcp-dst=5999"]))
    assert _traffic(node)


def test_a_commit_that_changes_nothing_repairs_or_says_it_cannot(node, deployed):
    from agent.engine.interface import EngineRefused
    from tests.engines import failing_at
    fn = deployed.functions["fw"]
    with failing_at(node.engine.executor, "create-function g1/%s" % fn.instance):
        subprocess.run(["ip", "netns", "del", fn.instance], check=True)
        assert eventually(lambda: _status(node) == "failed", 20, 0.05), \
            node.engine.status_reason("g1")
        assert not _traffic(node)
        with pytest.raises(EngineRefused) as refused:
            node.engine.converge()
        assert refused.value.app_tag == "node-degraded"
        assert refused.value.path == "/composer-sffg:service-graphs/service-graph[id='g1']"
        assert "graph g1: function fw: " in refused.value.message
        assert "its repair failed: injected at create-function" in refused.value.message
        assert _status(node) == "failed"
    node.engine.converge()          # the cause is gone: the commit repairs
    assert _status(node) == "running"
    assert _traffic(node)


def test_a_graph_flow_deleted_from_lsi0_is_put_back(node, deployed):
    before = node.node_resources()
    lsi0 = node.engine.network.lsi0
    cookie = next(iter(deployed_split(deployed, node.engine.naming).lsi0_flows))
    ofctl(node, "del-flows", lsi0, "cookie=0x%x/-1" % cookie)
    assert eventually(lambda: node.node_resources() == before, REPAIR, 0.05), \
        resources_diff(before, node.node_resources())
    assert node.engine.health.repairs("g1") == 1
    assert _traffic(node)


def test_what_commits_do_is_not_repaired(node, deployed):
    node.apply(firewall_chain("g1", parameters=["block-tcp-dst=5999"]))
    node.apply(firewall_chain("g1"))
    time.sleep(0.5)
    assert node.engine.health.repairs("g1") == 0
    assert node.engine.health.broken() == set()
    assert _status(node) == "running"
