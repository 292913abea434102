"""Function parameters over NETCONF, on a real node with the native firewall and NAT: one
their template does not understand is refused at commit with invalid-value, the error-path
at that parameter and bad-element in error-info, and the node stays as it was; the ones
they understand deploy and take effect on the traffic."""

import pytest
from lxml import etree
from ncclient.operations.rpc import RPCError

from agent.tools.graphxml import GraphXml, config, delete_graph, firewall_chain
from tests.e2e.node import Node, resources_diff

BASE = "urn:ietf:params:xml:ns:netconf:base:1.0"
SFFG = "urn:composer-nc:yang:composer-sffg"
B = "{%s}" % BASE


@pytest.fixture(scope="module")
def node(session_tmp):
    with Node("pm", session_tmp, {"eth1": "10.42.0.1/24", "eth2": "10.42.0.2/24"},
              prefix_suffix="m") as n:
        yield n


def _nat_graph(parameters):
    g = GraphXml("g1")
    g.function("nat", "nat", "in", "out", parameters=parameters)
    g.sap_interface("lan", "eth1").sap_interface("wan", "eth2")
    g.bidirectional("a", "lan", "nat:in")
    g.bidirectional("b", "nat:out", "wan")
    return g


def _path(function, value):
    return ("/sffg:service-graphs/sffg:service-graph[sffg:id='g1']/sffg:functions"
            "/sffg:function[sffg:id='%s']/sffg:config/sffg:parameter[.='%s']"
            % (function, value))


@pytest.mark.parametrize("graph, function, bad", [
    (firewall_chain("g1", parameters=["block-tcp-dst=23", "block-icmp=; flush ruleset"]),
     "fw", "block-icmp=; flush ruleset"),
    (firewall_chain("g1", parameters=["shutdown"]), "fw", "shutdown"),
    (_nat_graph(["inside=eth0", "outside=eth1 && reboot"]), "nat", "outside=eth1 && reboot")])
def test_a_parameter_the_function_does_not_understand_is_refused(node, graph, function, bad):
    clean = node.node_resources(port_names=True)
    with node.netconf() as m:
        m.edit_config(target="candidate", config=config(graph))
        with pytest.raises(RPCError) as refused:
            m.commit()
        error = refused.value.xml
        assert error.findtext(B + "error-type") == "application"
        assert error.findtext(B + "error-tag") == "invalid-value"
        assert error.findtext(B + "error-app-tag") == "unknown-parameter"
        assert error.findtext(B + "error-path") == _path(function, bad)
        assert error.find(B + "error-path").nsmap["sffg"] == SFFG
        assert error.findtext("%serror-info/%sbad-element" % (B, B)) == "parameter"
        assert bad in error.findtext(B + "error-message")
        running = etree.fromstring(m.get_config(source="running").xml.encode())
        assert not running.xpath("//s:service-graph", namespaces={"s": SFFG})
        m.discard_changes()
    actual = node.node_resources(port_names=True)
    assert actual == clean, resources_diff(clean, actual)


def test_parameters_the_firewall_understands_take_effect(node):
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    with node.netconf() as m:
        m.edit_config(target="candidate",
                      config=config(firewall_chain("g1", parameters=["block-icmp"])))
        m.commit()
        assert not h1.ping(h2.ip, count=2)
        m.edit_config(target="candidate", config=config(
            firewall_chain("g1", parameters=["allow-icmp", "block-tcp-dst=23"]),
            operation="replace"))
        m.commit()
        assert h1.ping(h2.ip)
        m.edit_config(target="candidate", config=delete_graph("g1"))
        m.commit()
