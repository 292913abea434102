"""A kvm function through NETCONF: a template and a graph committed, the VM (the test guest
of nsf/guest.py, a bridge between its two ports) forwards between two hosts through the
agent's OVS, and nothing of it is left once the graph is deleted."""

import json
import threading
import time

import pytest
from lxml import etree

from agent.tools.graphxml import GraphXml, config, delete_graph, kvm_template
from tests import guest, resources
from tests.e2e.node import Node

pytestmark = pytest.mark.skipif(guest.unavailable() is not None,
                                reason=guest.unavailable() or "")

SFFG = "urn:composer-nc:yang:composer-sffg"


def _graph():
    g = GraphXml("g1")
    g.function("vm", "vm-forwarder", "lan", "wan", template="test-vm")
    g.sap_interface("lan", "eth1").sap_interface("wan", "eth2")
    g.bidirectional("lan", "lan", "vm:lan")
    g.bidirectional("wan", "vm:wan", "wan")
    return g


def _config():
    text = config(_graph())
    head, _, tail = text.rpartition("</config>")
    return head + kvm_template("test-vm", "vm-forwarder", str(guest.path())) + \
        "</config>" + tail


def test_a_kvm_forwarder_between_two_hosts(session_tmp):
    with Node("k", session_tmp, {"eth1": "10.63.0.1/24", "eth2": "10.63.0.2/24"},
              prefix_suffix="k", environments=("native", "kvm")) as node:
        text = _config()
        h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
        with node.netconf(timeout=300) as m:
            m.edit_config(target="candidate", config=text)
            started = time.monotonic()
            m.commit()
            print("commit of a graph with one kvm function: %.0f ms"
                  % ((time.monotonic() - started) * 1000))
            state = etree.fromstring(m.get(filter=(
                "subtree", '<service-graphs xmlns="%s"/>' % SFFG)).data_xml.encode())
            statuses = [e.text.split(":")[-1] for e in state.iter("{%s}status" % SFFG)]
            assert statuses and set(statuses) == {"running"}, statuses
            domains = guest.domain_names(node.resource_prefix)
            assert len(domains) == 1, domains
            assert h1.ping(h2.ip), node.log_tail()
            assert h2.ping(h1.ip)
            server = h2.iperf_server()
            try:
                result = h1.iperf_client(h2.ip, seconds=2)
                assert result.returncode == 0, result.stdout[-500:]
                received = json.loads(result.stdout)["end"]["sum_received"]
                assert received["bytes"] > 0
                print("iperf3 through the TCG guest: %.1f Mbit/s"
                      % (received["bits_per_second"] / 1e6))
            finally:
                server.kill()
            m.edit_config(target="candidate", config=delete_graph("g1"))
            m.commit()
        assert guest.domain_names(node.resource_prefix) == []
        assert not h1.ping(h2.ip, count=1)


def _relays(prefix) -> list:
    """The root-namespace links of the node's VM ports (tap and veth end per port)."""
    return sorted(n for n in resources.link_names() if n.startswith(prefix))


def test_kill_9_while_the_vm_boots_leaves_no_orphan(session_tmp):
    """The agent killed while the commit waits for the guest to boot: the restarted agent
    converges (the graph running with one VM, traffic through it, or no graph and no VM)
    and after the graph's deletion no domain, tap or relay is left."""
    with Node("q", session_tmp, {"eth1": "10.64.0.1/24", "eth2": "10.64.0.2/24"},
              prefix_suffix="q", environments=("native", "kvm")) as node:
        prefix = node.resource_prefix
        h1, h2 = node.hosts["eth1"], node.hosts["eth2"]

        def commit():
            try:
                with node.netconf(timeout=300) as m:
                    m.edit_config(target="candidate", config=_config())
                    m.commit()
            except Exception:  # noqa: BLE001 - the agent is killed under it
                pass
        # ncclient may wait out its timeout on a session whose server was killed: not joined
        committing = threading.Thread(target=commit, daemon=True)
        committing.start()
        deadline = time.monotonic() + 120
        while not guest.domain_names(prefix, active=True):
            assert time.monotonic() < deadline, node.log_tail()
            time.sleep(0.05)
        node.kill_agent()                   # the domain running, its guest booting
        node.start_agent(timeout=300)
        with node.netconf(timeout=300) as m:
            running = m.get_config(source="running").data_xml
        deployed = "vm-forwarder" in running
        print("after the kill: the graph is %s" % ("deployed" if deployed else "gone"))
        domains = guest.domain_names(prefix)
        assert len(domains) == (1 if deployed else 0), (deployed, domains)
        assert len(_relays(prefix)) == (4 if deployed else 0), _relays(prefix)
        if deployed:
            deadline = time.monotonic() + 120
            while not h1.ping(h2.ip, count=1):
                assert time.monotonic() < deadline, node.log_tail()
            with node.netconf(timeout=300) as m:
                m.edit_config(target="candidate", config=delete_graph("g1"))
                m.commit()
        assert guest.domain_names(prefix) == []
        assert _relays(prefix) == []
