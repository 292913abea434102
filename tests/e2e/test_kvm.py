"""A kvm function through NETCONF: a template and a graph committed, the VM (the test guest
of nsf/guest.py, a bridge between its two ports) forwards between two hosts through the
agent's OVS, and nothing of it is left once the graph is deleted."""

import json
import time

import pytest
from lxml import etree

from agent.tools.graphxml import GraphXml, config, delete_graph, kvm_template
from tests import guest
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


def test_a_kvm_forwarder_between_two_hosts(session_tmp):
    with Node("k", session_tmp, {"eth1": "10.63.0.1/24", "eth2": "10.63.0.2/24"},
              prefix_suffix="k", environments=("native", "kvm")) as node:
        text = config(_graph())
        head, _, tail = text.rpartition("</config>")
        text = head + kvm_template("test-vm", "vm-forwarder", str(guest.path())) + \
            "</config>" + tail
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
