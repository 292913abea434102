"""Operational state: graph status and counters, and the domain description, as libyang data."""

import json

from agent.config import load
from agent.domain.description import DomainDescription, vlan_ranges
from agent.engine.operational import GraphState
from agent.model import create_context
from agent.model.binding import to_xml
from agent.model.data import parse
from tests.unit.engine.test_engine import CTX, chain, keep_templates, node, running  # noqa: F401


def test_graph_state_parses_and_reports_status_implementation_and_counters(node):
    node.engine.apply(None, running(chain()))
    tree = GraphState(node.engine).build(CTX)
    data = json.loads(tree.print_mem("json", with_siblings=True))
    graph = data["composer-sffg:service-graphs"]["service-graph"][0]
    assert graph["state"]["status"] == "composer-types:running"
    assert graph["state"]["graph-lsi"] == node.naming.graph_lsi("g1")
    assert graph["state"]["virtual-links"] == 2
    fw = graph["functions"]["function"][0]
    assert fw["state"]["implementation"] == "fw-native"
    assert fw["state"]["execution-environment"] == "composer-types:native"
    assert fw["ports"]["port"][0]["state"]["counters"]["rx-packets"] == "3"
    rule = {r["id"]: r for r in graph["flow-rules"]["flow-rule"]}["lan-fw"]
    assert rule["state"]["packets"] == "7"
    assert rule["state"]["installed-on"] == ["lsi0", node.naming.graph_lsi("g1")]


def test_domain_description_parses(node, tmp_path):
    node.engine.apply(None, running(chain()))
    config = load(overrides={"state": {"dir": str(tmp_path)}, "lsi0": {"interfaces": ["eth1", "eth2"]},
                             "node": {"id": "edge-7"}})
    description = DomainDescription(config, node.engine.network, node.engine.compute, node.engine)
    tree = description.build(CTX)
    data = json.loads(tree.print_mem("json", with_siblings=True))["composer-domain:domain"]
    assert data["state"]["node-id"] == "edge-7"
    endpoints = {e["name"]: e for e in data["big-switch"]["endpoints"]["endpoint"]}
    assert set(endpoints) == {"eth1", "eth2"}
    assert endpoints["eth1"]["free-vlans"]["range"][0]["state"] == {"first": 1, "last": 4094}
    caps = {c["name"]: c for c in data["functional-capabilities"]["functional-capability"]}
    assert set(caps) == {"firewall", "nat"}
    assert data["infrastructure-capabilities"]["state"]["execution-environment"] == [
        "composer-types:native"]
    assert data["resources"]["state"]["cpu-cores-total"] == 2


def test_vlan_ranges():
    assert vlan_ranges({1, 100, 4094}) == [(2, 99), (101, 4093)]
    assert vlan_ranges(set()) == [(1, 4094)]


def test_identityref_leaf_lists_reach_libyang_with_their_module():
    from bindings import composer_domain
    model = composer_domain()
    model.domain.infrastructure_capabilities.state.execution_environment.append("native")
    model.domain.infrastructure_capabilities.state._set_vswitch("ovs")
    tree = parse(create_context(), to_xml(model), "xml", config_only=False, validate=False)
    state = json.loads(tree.print_mem("json"))["composer-domain:domain"][
        "infrastructure-capabilities"]["state"]
    assert state == {"execution-environment": ["composer-types:native"],
                     "vswitch": "composer-types:ovs"}


def _graphs(tree):
    data = json.loads(tree.print_mem("json", with_siblings=True))
    return {g["id"]: g for g in data["composer-sffg:service-graphs"]["service-graph"]}


def test_counters_a_port_does_not_keep_are_left_out(node, monkeypatch):
    """A port whose device is gone reads None counters: its state has no such counter
    (it made the whole provider fail: int() of None)."""
    node.engine.apply(None, running(chain()))
    monkeypatch.setattr(node.vswitch, "port_stats", lambda lsi: {
        name: {"rx_packets": None, "rx_bytes": 10, "tx_packets": None, "tx_bytes": None}
        for name in node.vswitch.lsis[lsi]["ports"]})
    graph = _graphs(GraphState(node.engine).build(CTX))["g1"]
    assert graph["functions"]["function"][0]["ports"]["port"][0]["state"]["counters"] == {
        "rx-bytes": "10"}


def test_a_graph_whose_state_cannot_be_read_does_not_hide_the_others(node, monkeypatch):
    node.engine.apply(None, running(chain("g1"), chain("g2").replace(
        "<priority>10</priority>", "<priority>11</priority>")))
    lsi = node.engine.deployed["g1"].lsi
    real = node.vswitch.flow_stats

    def flow_stats(name):
        if name == lsi:
            raise TypeError("unreadable")
        return real(name)
    monkeypatch.setattr(node.vswitch, "flow_stats", flow_stats)
    monkeypatch.setattr(GraphState, "_stats", lambda self, reader, lsi: reader(lsi))
    graphs = _graphs(GraphState(node.engine).build(CTX))
    assert graphs["g2"]["state"]["status"] == "composer-types:running"
    assert "flow-rules" in graphs["g2"]
    assert graphs["g1"]["state"]["status"] == "composer-types:running"
    assert "its operational state cannot be read: TypeError: unreadable" in \
        graphs["g1"]["state"]["last-error"]


def test_a_graph_whose_state_the_model_refuses_does_not_hide_the_others(node, monkeypatch):
    node.engine.apply(None, running(chain("g1"), chain("g2").replace(
        "<priority>10</priority>", "<priority>11</priority>")))
    real = GraphState._graph

    def graph(self, dg, *args):
        state, parts = real(self, dg, *args)
        if dg.id == "g1":
            state["virtual-links"] = "many"
        return state, parts
    monkeypatch.setattr(GraphState, "_graph", graph)
    graphs = _graphs(GraphState(node.engine).build(CTX))
    assert "flow-rules" in graphs["g2"] and "flow-rules" not in graphs["g1"]
    assert graphs["g1"]["state"]["status"] == "composer-types:running"
    assert "its operational state cannot be built" in graphs["g1"]["state"]["last-error"]


def test_a_graph_a_refused_commit_would_have_added_is_not_shown(node):
    """Operational state is what is deployed: a refused new graph is in neither running
    nor the node; a refused change of a deployed graph leaves it running, with the error."""
    from tests.engines import failing_at
    import pytest
    from agent.engine import EngineRefused
    node.engine.apply(None, running(chain("g1")))
    big = chain("big").replace("<priority>10</priority>", "<priority>11</priority>")
    lsi = "create-lsi big/%s" % node.naming.graph_lsi("big")
    with failing_at(node.engine.executor, lsi), pytest.raises(EngineRefused):
        node.engine.apply(None, running(chain("g1"), big))
    assert set(_graphs(GraphState(node.engine).build(CTX))) == {"g1"}
    fw = "start-function g1/%s" % node.naming.function_instance("g1", "nat")
    with failing_at(node.engine.executor, fw), pytest.raises(EngineRefused):
        node.engine.apply(None, running(chain("g1", middle=True)))
    state = _graphs(GraphState(node.engine).build(CTX))["g1"]["state"]
    assert state["status"] == "composer-types:running"
    assert "injected at %s" % fw in state["last-error"]


def _part(fid, capability):
    return {"id": fid, "config": {"id": fid, "functional-capability": capability},
            "ports": {"port": [{"id": p, "config": {"id": p}} for p in ("in", "out")]}}


def _exit(rid, part, sap):
    return {"id": rid, "config": {"id": rid, "priority": 10},
            "match": {"config": {"in-function": part, "in-function-port": "out"}},
            "actions": {"action": [{"index": 0, "config": {"index": 0, "output-sap": sap}}]}}


# Two parts side by side: traffic into port p1 goes to both, both leave by port p2.
PAIR = {"id": "pair", "functional-capability": "pair", "decomposition": {
    "functions": {"function": [_part("a", "firewall"), _part("b", "nat")]},
    "saps": {"sap": [{"id": s, "config": {"id": s, "interface": {"if-name": s}}}
                     for s in ("p1", "p2")]},
    "flow-rules": {"flow-rule": [
        {"id": "in", "config": {"id": "in", "priority": 10}, "match": {"config": {"in-sap": "p1"}},
         "actions": {"action": [{"index": 0, "config": {"index": 0, "output-function": "a",
                                                         "output-function-port": "in"}},
                                {"index": 1, "config": {"index": 1, "output-function": "b",
                                                         "output-function-port": "in"}}]}},
        _exit("a-out", "a", "p2"), _exit("b-out", "b", "p2")]}}}


def test_a_rule_from_a_decomposed_function_counts_the_rules_it_became(node, monkeypatch):
    import agent.engine.engine as engine_module
    from tests.unit.engine.test_engine import TEMPLATES, graph_xml
    monkeypatch.setattr(engine_module, "templates_from_tree", lambda root: TEMPLATES + [PAIR])
    node.engine.apply(None, running(graph_xml(
        "g1", [("x", "pair", ("p1", "p2"))],
        [("lan-x", 10, "lan", "x:p1"), ("x-wan", 10, "x:p2", "wan")])))
    assert sorted(node.engine.deployed["g1"].functions) == ["x/a", "x/b"]
    assert sorted(node.engine.deployed["g1"].graph.rules) == [
        "lan-x", "x-wan+a-out", "x-wan+b-out"]
    tree = GraphState(node.engine).build(CTX)
    graph = json.loads(tree.print_mem("json", with_siblings=True))[
        "composer-sffg:service-graphs"]["service-graph"][0]
    rules = {r["id"]: r["state"] for r in graph["flow-rules"]["flow-rule"]}
    assert rules["x-wan"]["installed-on"] == [node.naming.graph_lsi("g1"), "lsi0"]
    assert int(rules["x-wan"]["packets"]) == 2 * int(rules["lan-x"]["packets"])
    x = graph["functions"]["function"][0]["state"]
    assert x["implementation"] == "pair"
    assert [p["id"] for p in x["decomposition"]["part"]] == ["x/a", "x/b"]


def test_a_conflict_of_rules_a_decomposition_combined_names_the_configured_rule(node,
                                                                                monkeypatch):
    import pytest
    import agent.engine.engine as engine_module
    from agent.engine.interface import EngineRefused
    from tests.unit.engine.test_engine import TEMPLATES, graph_xml
    monkeypatch.setattr(engine_module, "templates_from_tree", lambda root: TEMPLATES + [PAIR])
    # x-wan and y (the same priority and match, from port p2 of x) each become one rule
    # per part leaving by p2: the duplicate is y+a-out, the rule at fault y
    with pytest.raises(EngineRefused) as refused:
        node.engine.apply(None, running(graph_xml(
            "g1", [("x", "pair", ("p1", "p2"))],
            [("lan-x", 10, "lan", "x:p1"), ("x-wan", 10, "x:p2", "wan"),
             ("y", 10, "x:p2", "lan")])))
    assert refused.value.path == ("/composer-sffg:service-graphs/service-graph[id='g1']"
                                  "/flow-rules/flow-rule[id='y']")
