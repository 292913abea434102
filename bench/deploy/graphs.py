"""The paper's scenario: N personal firewalls (one per host MAC) between two interface SAPs."""

from agent.tools.graphxml import GraphXml


def host_mac(index: int) -> str:
    return "02:aa:00:00:%02x:%02x" % (index >> 8, index & 0xFF)


def personal_firewalls(count: int, graph_id: str = "pf", first_mac: str | None = None,
                       template: str | None = None) -> GraphXml:
    """lan --[eth-src MAC_i]--> fw_i --> wan, and back by eth-dst MAC_i.

    first_mac replaces host_mac(0), so that a real host's traffic crosses firewall 0;
    template: the firewalls' explicit template (docker-firewall), else the resolver's."""
    g = GraphXml(graph_id)
    g.sap_interface("lan", "eth1").sap_interface("wan", "eth2")
    for i in range(count):
        _add_firewall(g, i, first_mac if (i == 0 and first_mac) else host_mac(i), template)
    return g


def one_more_firewall(index: int, graph_id: str = "pf", template: str | None = None) -> GraphXml:
    """Firewall `index` and its four rules alone: merged into a personal-firewall graph, the
    delta an orchestrator sends to add one host."""
    return _add_firewall(GraphXml(graph_id), index, host_mac(index), template)


def _add_firewall(g: GraphXml, i: int, mac: str, template: str | None = None) -> GraphXml:
    fw = "fw%d" % i
    g.function(fw, "firewall", "lan", "wan", template=template)
    g.rule("in%d" % i, "lan", fw + ":lan", match={"eth-src": mac})
    g.rule("out%d" % i, fw + ":wan", "wan")
    g.rule("ret%d" % i, "wan", fw + ":wan", match={"eth-dst": mac})
    g.rule("back%d" % i, fw + ":lan", "lan")
    return g
