"""The rule split: the paper's cases, link counting, VLAN handling, stable link assignment."""

import pytest

from agent.network.naming import Naming
from agent.network.split import LINK_FLOW_PRIORITY, SplitError, link_ports, split_graph
from drivers.vswitch.base import Action
from tests.unit.engine.graphs import (P, S, chain, fn, graph, rule, sap_gre, sap_host, sap_if,
                                      sap_vlan)

N = Naming("ct")


def port(gid, fid, pid):
    return N.function_port(gid, fid, pid)


def flows_by_rule(flows, gid, rid):
    return flows[N.rule_cookie(gid, rid)]


def test_interface_to_function_and_back_crosses_through_one_link_per_target():
    split = split_graph(chain(), N)
    # towards the graph: fw:in and fw:out; towards LSI-0: lan and wan -> 2 links
    assert len(split.links) == 2
    by_graph_target = {l.graph_target: l for l in split.links}
    by_lsi0_target = {l.lsi0_target: l for l in split.links}
    link_in = link_ports(by_graph_target[P("fw", "in")].name)
    lan_fw = flows_by_rule(split.lsi0_flows, "g1", "lan-fw")
    assert lan_fw.priority == 10
    assert lan_fw.match == (("in_port", "eth1"), ("vlan_tci", "0x0000/0x1000"))
    assert lan_fw.actions == (Action("output", link_in[0]),)
    # graph side of that link forwards to the function port
    link_flow = split.graph_flows[N.link_cookie("g1", by_graph_target[P("fw", "in")].name)]
    assert link_flow.match == (("in_port", link_in[1]),)
    assert link_flow.actions == (Action("output", port("g1", "fw", "in")),)
    assert link_flow.priority == LINK_FLOW_PRIORITY
    # towards LSI-0: the graph-LSI sends to the link, LSI-0 forwards to the NIC
    link_wan = link_ports(by_lsi0_target[S("wan")].name)
    fw_wan = flows_by_rule(split.graph_flows, "g1", "fw-wan")
    assert fw_wan.match == (("in_port", port("g1", "fw", "out")),)
    assert fw_wan.actions == (Action("output", link_wan[1]),)
    back = split.lsi0_flows[N.link_cookie("g1", by_lsi0_target[S("wan")].name)]
    assert back.match == (("in_port", link_wan[0]),)
    assert back.actions == (Action("output", "eth2"),)


def test_function_to_function_stays_on_the_graph_lsi():
    g = graph("g1", [fn("a", "o"), fn("b", "i")], [], [rule("ab", P("a", "o"), P("b", "i"))])
    split = split_graph(g, N)
    assert split.links == () and split.lsi0_flows == {}
    assert flows_by_rule(split.graph_flows, "g1", "ab").actions == (
        Action("output", port("g1", "b", "i")),)


def test_interface_to_interface_is_on_lsi0_only():
    g = graph("g1", [], [sap_if("a", "eth1"), sap_if("b", "eth2")],
              [rule("ab", S("a"), S("b"), match=(("dl_type", 0x0800),))])
    split = split_graph(g, N)
    assert split.links == () and split.graph_flows == {}
    flow = flows_by_rule(split.lsi0_flows, "g1", "ab")
    assert flow.match == (("in_port", "eth1"), ("vlan_tci", "0x0000/0x1000"), ("dl_type", 0x0800))
    assert flow.actions == (Action("output", "eth2"),)


def test_vlan_sap_pops_on_entry_and_pushes_on_exit():
    g = graph("g1", [fn("fw", "p")], [sap_vlan("v", "eth1", 100)],
              [rule("in", S("v"), P("fw", "p")), rule("out", P("fw", "p"), S("v"))])
    split = split_graph(g, N)
    entry = flows_by_rule(split.lsi0_flows, "g1", "in")
    assert entry.match == (("in_port", "eth1"), ("dl_vlan", 100))
    assert entry.actions[0] == Action("pop_vlan")
    exit_link = next(l for l in split.links if l.lsi0_target == S("v"))
    leave = split.lsi0_flows[N.link_cookie("g1", exit_link.name)]
    assert leave.actions == (Action("push_vlan", 100), Action("output", "eth1"))


def test_vlan_to_vlan_on_the_same_nic_uses_in_port_and_restores_the_tag_state():
    g = graph("g1", [], [sap_vlan("a", "eth1", 10), sap_vlan("b", "eth1", 20), sap_if("c", "eth2")],
              [rule("r", S("a"), S("b"), S("c"))])
    flow = flows_by_rule(split_graph(g, N).lsi0_flows, "g1", "r")
    assert flow.actions == (Action("pop_vlan"), Action("push_vlan", 20), Action("in_port"),
                            Action("pop_vlan"), Action("output", "eth2"))


def test_matching_a_vlan_id_on_a_vlan_sap_is_refused():
    g = graph("g1", [fn("f", "p")], [sap_vlan("v", "eth1", 10)],
              [rule("r", S("v"), P("f", "p"), match=(("dl_vlan", 10),))])
    with pytest.raises(SplitError) as refused:
        split_graph(g, N)
    assert refused.value.rule_id == "r"


def test_gre_and_host_stack_saps_are_graph_lsi_ports():
    g = graph("g1", [fn("f", "a", "b")], [sap_gre("t"), sap_host("h")],
              [rule("t-f", S("t"), P("f", "a")), rule("f-h", P("f", "b"), S("h"))])
    split = split_graph(g, N)
    assert split.links == () and split.lsi0_flows == {}
    assert flows_by_rule(split.graph_flows, "g1", "t-f").match == (
        ("in_port", N.sap_port("g1", "t", "gre")),)
    assert flows_by_rule(split.graph_flows, "g1", "f-h").actions == (
        Action("output", N.sap_port("g1", "h", "host-stack")),)


def test_link_count_is_the_larger_direction():
    # 3 graph targets from LSI-0, 1 LSI-0 target from the graph -> 3 links
    g = graph("g1", [fn("a", "p"), fn("b", "p"), fn("c", "p")], [sap_if("s", "eth1")], [
        rule("r1", S("s"), P("a", "p"), match=(("dl_src", "00:00:00:00:00:01"),)),
        rule("r2", S("s"), P("b", "p"), match=(("dl_src", "00:00:00:00:00:02"),)),
        rule("r3", S("s"), P("c", "p"), match=(("dl_src", "00:00:00:00:00:03"),)),
        rule("r4", P("a", "p"), S("s")), rule("r5", P("b", "p"), S("s")),
    ])
    split = split_graph(g, N)
    assert len(split.links) == 3
    assert sum(1 for l in split.links if l.lsi0_target is not None) == 1


def test_multiple_outputs_and_other_actions_keep_their_order():
    g = graph("g1", [fn("f", "p")], [sap_if("a", "eth1"), sap_if("b", "eth2")], [
        rule("r", S("a"), actions=[("set_eth_dst", "02:00:00:00:00:09"), ("output", S("b")),
                                   ("dec_ttl", None), ("output", P("f", "p"))])])
    split = split_graph(g, N)
    link = link_ports(split.links[0].name)
    assert flows_by_rule(split.lsi0_flows, "g1", "r").actions == (
        Action("set_eth_dst", "02:00:00:00:00:09"), Action("output", "eth2"),
        Action("dec_ttl"), Action("output", link[0]))


def test_drop():
    g = graph("g1", [], [sap_if("a", "eth1")], [rule("r", S("a"), actions=[("drop", None)])])
    assert flows_by_rule(split_graph(g, N).lsi0_flows, "g1", "r").actions == (Action("drop"),)


def test_link_assignment_is_stable_when_rules_come_and_go():
    g = graph("g1", [fn("a", "p"), fn("b", "p")], [sap_if("s", "eth1")], [
        rule("ra", S("s"), P("a", "p"), match=(("dl_src", "00:00:00:00:00:01"),)),
        rule("rb", S("s"), P("b", "p"), match=(("dl_src", "00:00:00:00:00:02"),))])
    first = split_graph(g, N)
    link_b = next(l for l in first.links if l.graph_target == P("b", "p"))
    # remove ra: b keeps its link
    g2 = graph("g1", [fn("b", "p")], [sap_if("s", "eth1")], [g.rules["rb"]])
    second = split_graph(g2, N, first.links)
    assert second.links == (link_b,)
    # add a new target: it takes the free slot, b still unchanged
    g3 = graph("g1", [fn("b", "p"), fn("c", "p")], [sap_if("s", "eth1")], [
        g.rules["rb"], rule("rc", S("s"), P("c", "p"), match=(("dl_src", "00:00:00:00:00:03"),))])
    third = split_graph(g3, N, second.links)
    assert link_b in third.links
    assert len(third.links) == 2


def test_rule_cookies_do_not_depend_on_other_rules():
    one = split_graph(chain(), N)
    g = chain()
    g.rules.pop("fw-lan")
    two = split_graph(g, N, one.links)
    cookie = N.rule_cookie("g1", "lan-fw")
    assert one.lsi0_flows[cookie] == two.lsi0_flows[cookie]
