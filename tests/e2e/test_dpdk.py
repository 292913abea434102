"""DPDK functions through NETCONF: a graph whose forwarder is dpdk-testpmd (the template
dpdk-forwarder) between two hosts, ping and iperf3 across, the core the scheduler gave it
as its affinity; killed -9, it is started again by the agent while the vSwitch keeps its
daemons; nothing left after the delete (no process, namespace, port or runtime file).

Runs are short: testpmd busy-polls a core of a machine shared with others.
"""

import os
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

from agent.tools.graphxml import GraphXml
from drivers.compute import dpdk
from tests.e2e.node import Node, eventually
from tests.e2e.test_deploy import SFFG, commit, delete, graph_state, iperf_bits
from tests.integration.compute.backends import DPDKBackend

pytestmark = pytest.mark.skipif(DPDKBackend().unavailable() is not None,
                                reason=DPDKBackend().unavailable() or "")


@pytest.fixture(scope="module")
def node(session_tmp):
    hosts = {"eth1": "10.13.0.1/24", "eth2": "10.13.0.2/24"}
    with Node("k", session_tmp, hosts, prefix_suffix="k",
              environments=("native", "dpdk")) as n:
        yield n


def _forwarders(node) -> dict:
    """instance -> pid of the testpmd processes of the node's agent."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            argv = dpdk._cmdline(int(entry))
            prefix = dpdk._file_prefix(argv) if argv else None
            if prefix and prefix.startswith(node.resource_prefix) and \
                    os.path.basename(argv[0]) == dpdk.BINARY:
                found[prefix] = int(entry)
    return found


def _graph(graph_id, out="out"):
    g = GraphXml(graph_id)
    g.function("fwd", "forwarder", "in", out, template="dpdk-forwarder",
               parameters=["forward-mode=io"])
    g.sap_interface("lan", "eth1").sap_interface("wan", "eth2")
    g.bidirectional("lan", "lan", "fwd:in")
    g.bidirectional("wan", "wan", "fwd:" + out)
    return g


def _function(m, leaf):
    return graph_state(m, "g1").xpath(
        "//s:function[s:id='fwd']/s:state/s:%s/text()" % leaf, namespaces=SFFG)


def _status_and_restarts(m):
    state = graph_state(m, "g1")
    status = state.xpath("//s:service-graph/s:state/s:status/text()", namespaces=SFFG)
    restarts = _function(m, "restart-count")
    return status[0].split(":")[-1], int(restarts[0]) if restarts else 0


def test_a_dpdk_forwarder_between_two_hosts_through_netconf(node):
    from drivers.vswitch.ovs_process import PrivateOVS
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    before = node.node_resources()
    ovs = PrivateOVS(node.dir / "ovs", netns=node.netns)
    daemons = ovs.daemons()
    with node.netconf() as m:
        commit(m, _graph("g1"))
        assert _function(m, "implementation") == ["dpdk-forwarder"]
        assert _function(m, "execution-environment")[0].endswith("dpdk")
        [(instance, pid)] = _forwarders(node).items()
        cores = {int(c) for c in _function(m, "cpu-core")}
        assert cores and os.sched_getaffinity(pid) == cores     # the scheduler's binding
        assert h1.ping(h2.ip)
        assert iperf_bits(h1, h2, 5201) > 1e6
        # killed -9: reported, started again by the agent; the vSwitch untouched
        os.kill(pid, signal.SIGKILL)
        assert eventually(lambda: _status_and_restarts(m) == ("running", 1)
                          and list(_forwarders(node)) == [instance], 30, 0.1), \
            (_status_and_restarts(m), node.log_tail(30))
        assert _forwarders(node)[instance] != pid
        assert ovs.daemons() == daemons
        assert h1.ping(h2.ip)
        delete(m, "g1")
    assert _forwarders(node) == {}
    assert not h1.ping(h2.ip, count=1)
    assert node.resources_once_settled(before) == before
    assert not (dpdk.RUNTIME_DIR / instance).exists()
    assert not Path(node.dir / "state" / "dpdk" / instance).exists()


def test_a_port_change_restarts_the_forwarder_and_its_state_says_so(node):
    """A graph edit moving the forwarder's second port ("out" gone, "new" added): a running
    testpmd cannot take a port, so the driver restarts it with the new set, and <get> says
    so in the function's state: port-updates method restart, count 1, when."""
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    with node.netconf() as m:
        commit(m, _graph("g1"))
        assert _function(m, "port-updates/s:method") == []          # none yet
        [(instance, pid)] = _forwarders(node).items()
        commit(m, _graph("g1", out="new"), replace=True)
        assert _function(m, "port-updates/s:method") == ["restart"]
        assert _function(m, "port-updates/s:count") == ["1"]
        [when] = _function(m, "port-updates/s:last-update")
        assert abs(datetime.fromisoformat(when).timestamp() - time.time()) < 120, when
        assert _forwarders(node)[instance] != pid                      # restarted
        assert _status_and_restarts(m) == ("running", 0)   # not counted as a repair
        assert h1.ping(h2.ip)
        delete(m, "g1")
    assert _forwarders(node) == {}


@pytest.fixture(scope="module")
def faulty(session_tmp):
    hosts = {"eth1": "10.14.0.1/24", "eth2": "10.14.0.2/24"}
    fault_file = session_tmp / "k-fault"
    with Node("j", session_tmp, hosts, prefix_suffix="j", environments=("native", "dpdk"),
              extra_config='[debug]\nfault-file = "%s"\n' % fault_file) as n:
        n.fault_file = fault_file
        yield n


@pytest.mark.parametrize("kind", ["create-function", "attach-ports", "start-function",
                                  "apply-flows"])
def test_a_fault_at_each_step_of_a_dpdk_deploy_is_rolled_back(faulty, kind):
    """The commit fails at that step (debug.fault-file) and is undone: no testpmd, no
    namespace, port, flow or runtime file left; the same commit then works."""
    from ncclient.operations.rpc import RPCError
    from agent.network.naming import Naming
    from agent.tools.graphxml import config
    node = faulty
    before = node.node_resources()
    naming = Naming(node.resource_prefix)
    instance, lsi = naming.function_instance("g1", "fwd"), naming.graph_lsi("g1")
    step = {"create-function": "create-function g1/" + instance,
            "attach-ports": "attach-ports g1/" + lsi,
            "start-function": "start-function g1/" + instance,
            "apply-flows": "apply-flows " + lsi}[kind]
    with node.netconf() as m:
        m.edit_config(target="candidate", config=config(_graph("g1")))
        node.fault_file.write_text(step)
        try:
            with pytest.raises(RPCError) as refused:
                m.commit()
        finally:
            node.fault_file.unlink()
        assert refused.value.message.startswith("deployment failed at step ")
        assert node.resources_once_settled(before) == before
        assert _forwarders(node) == {}
        assert not (dpdk.RUNTIME_DIR / instance).exists()
        m.commit()
        assert node.hosts["eth1"].ping(node.hosts["eth2"].ip)
        delete(m, "g1")
    assert _forwarders(node) == {}
    assert node.resources_once_settled(before) == before
