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


def _firewalls(count, lan=None, wan=None, extra=()):
    """Personal firewalls between two SAPs, as the benchmark deploys them."""
    functions, rules = [], []
    for i in range(count):
        mac = "00:00:00:00:01:%02x" % i
        functions.append(fn("fw%d" % i, "lan", "wan"))
        rules += [rule("in%d" % i, S("lan"), P("fw%d" % i, "lan"), match=(("dl_src", mac),)),
                  rule("out%d" % i, P("fw%d" % i, "wan"), S("wan")),
                  rule("ret%d" % i, S("wan"), P("fw%d" % i, "wan"), match=(("dl_dst", mac),)),
                  rule("back%d" % i, P("fw%d" % i, "lan"), S("lan"))]
    return graph("g1", functions, [lan or sap_if("lan", "eth1"), wan or sap_if("wan", "eth2")],
                 rules + list(extra))


def test_a_split_that_keeps_what_did_not_change_equals_one_made_from_scratch():
    """split_graph(previous=...) keeps the flows of unchanged rules: whatever changes, the
    result is the one of compiling every rule."""
    base = _firewalls(4)
    changes = [
        _firewalls(5),                                          # a function added
        _firewalls(3),                                          # one removed
        _firewalls(4, wan=sap_vlan("wan", "eth2", 7)),          # a SAP becomes a vlan SAP
        _firewalls(4, lan=sap_if("lan", "eth3")),               # a SAP moves to another NIC
        _firewalls(4, extra=[rule("x", P("fw0", "lan"), P("fw1", "lan"), S("wan"),
                                  priority=20)]),               # a rule across both LSIs
        graph("g1", base.functions.values(), base.saps.values(),
              [r if r.id != "out1" else rule("out1", P("fw1", "wan"), S("lan"))
               for r in base.rules.values()]),                  # a rule changes its output
        graph("g1", base.functions.values(), base.saps.values(),
              [r for r in base.rules.values() if r.id not in ("in2", "ret2")]),  # links go
        graph("g1", [f for f in base.functions.values() if f.id != "fw0"], base.saps.values(),
              [r for r in base.rules.values() if not r.id.endswith("0")]),  # the first goes
    ]
    old = split_graph(base, N)
    for number, new in enumerate(changes):
        for function_ports in (None, {"fw1": {"lan": "ctwx1p0", "wan": "ctwx1p1"}}):
            scratch = split_graph(new, N, old.links, function_ports)
            kept = split_graph(new, N, old.links, function_ports,
                               previous=(base, None, old))
            assert kept == scratch, "change %d, function ports %s" % (number, function_ports)
            again = split_graph(new, N, kept.links, function_ports,
                                previous=(new, function_ports, kept))
            assert again == kept
            # without the previous assignment, links are assigned afresh: rules follow them
            fresh = split_graph(new, N, (), function_ports, previous=(base, None, old))
            assert fresh == split_graph(new, N, (), function_ports)
            # unchanged rules keep their very flow objects
            if function_ports is None and number == 0:
                cookie = N.rule_cookie("g1", "in0")
                assert kept.lsi0_flows[cookie] is old.lsi0_flows[cookie]


def test_a_kept_rule_whose_function_port_went_is_still_refused():
    base = _firewalls(3)
    old = split_graph(base, N)
    broken = graph("g1", [fn("fw1", "lan") if f.id == "fw1" else f
                          for f in base.functions.values()],
                   base.saps.values(), base.rules.values())
    for previous in (None, (base, None, old)):
        with pytest.raises(SplitError, match="fw1"):
            split_graph(broken, N, old.links, previous=previous)
