"""Expanding a decomposed function into its parts: ids, parameters, addresses, the rules of
the template and of the graph joined; what a template must be to stand for a function; the
deployed record keeps what the expansion needs."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from agent.model import decompose
from agent.model.decompose import Decomposition, DecompositionError, expand
from agent.model.deployed import DeployedFunction, DeployedGraph, from_json, to_json
from agent.model.graph import Constraints, Endpoint, Function, Graph, Port, Rule
from nsf import packages

SECURE = json.loads((Path(packages.__file__).parent / "decompositions" / "secure-gateway.json")
                    .read_text())


def _f(fid, port): return Endpoint(function=fid, port=port)          # noqa: E704
def _s(sid): return Endpoint(sap=sid)                                 # noqa: E704


def _graph(parameters=("fw.block-tcp-dst=23", "nat.inside-ip=192.168.1.1/24"),
           constraints=Constraints()):
    gw = Function("gw", "secure-gateway", parameters=tuple(parameters),
                  ports=(Port("lan"), Port("wan", ipv4="203.0.113.1", prefix_length=24)),
                  constraints=constraints)
    rules = {
        "in": Rule("in", 10, _s("lan"), (), (("output", _f("gw", "lan")),)),
        "back": Rule("back", 10, _f("gw", "lan"), (), (("output", _s("lan")),)),
        "web": Rule("web", 20, _f("gw", "wan"), (("tcp_dst", 80),), (("output", _s("wan")),)),
    }
    return Graph(id="g1", functions={"gw": gw}, rules=rules)


RECORD = Decomposition("secure-gateway", SECURE["decomposition"])


def test_the_parts_replace_the_function_with_their_parameters_and_addresses():
    expanded = expand(_graph(constraints=Constraints(environments=("native",))), {"gw": RECORD})
    assert sorted(expanded.functions) == ["gw/fw", "gw/nat"]
    fw, nat = expanded.functions["gw/fw"], expanded.functions["gw/nat"]
    assert fw.capability == "firewall" and fw.parameters == ("block-tcp-dst=23",)
    assert nat.parameters == ("inside-ip=192.168.1.1/24",)
    # the address of the function's wan port goes to the part port it leads to
    assert [(p.id, p.ipv4) for p in nat.ports] == [("inside", None), ("outside", "203.0.113.1")]
    assert fw.constraints.environments == nat.constraints.environments == ("native",)


def test_the_rules_of_the_graph_and_of_the_template_are_joined():
    rules = expand(_graph(), {"gw": RECORD}).rules
    # into the function: to the part its SAP leads to
    assert rules["in"].actions == (("output", _f("gw/fw", "lan")),)
    # out of the function: from the part port that outputs to the SAP, both matches
    assert rules["back"].in_port == _f("gw/fw", "lan") and rules["back"].match == ()
    assert rules["web"].in_port == _f("gw/nat", "outside")
    assert rules["web"].match == (("tcp_dst", 80),) and rules["web"].priority == 20
    # the template's rules between parts, named after the function
    assert rules["gw/mid-fwd"].in_port == _f("gw/fw", "wan")
    assert rules["gw/mid-fwd"].actions == (("output", _f("gw/nat", "inside")),)
    assert sorted(r for r in rules if r.startswith("gw/")) == ["gw/mid-fwd", "gw/mid-rev"]


@pytest.mark.parametrize("function, why", [
    (Function("gw", "secure-gateway", parameters=("block-icmp",),
              ports=(Port("a"), Port("b"))),
     "the parameter 'block-icmp' names none of its parts (fw, nat): give them as "
     "'<part>.<key>=<value>'"),
    (Function("gw", "secure-gateway", ports=(Port("a"),)),
     "it has 2 ports (interface SAPs), the function has 1"),
])
def test_a_template_that_cannot_stand_for_the_function_says_why(function, why):
    with pytest.raises(DecompositionError) as refused:
        decompose.parts_of(function, "secure-gateway", SECURE["decomposition"])
    assert str(refused.value) == why


def test_the_deployed_record_keeps_the_decomposition():
    graph = _graph()
    source = {"id": "g1"}
    dg = DeployedGraph(id="g1", source=source, lsi="lsi-g1", functions={
        "gw/fw": DeployedFunction("gw/fw", "i1", "native", "native-firewall", "/x.tgz",
                                  memory=4, cpu=0.1, cost=14.65, reason="the cheapest",
                                  rejected=(("docker-firewall", "costs more"),)),
        "gw/nat": DeployedFunction("gw/nat", "i2", "native", "native-nat", "/y.tgz")},
        decompositions={"gw": replace(RECORD, cost=29.3, reason="the only one")},
        _declared=graph)
    assert sorted(dg.parts("gw")) == ["gw/fw", "gw/nat"]
    assert sorted(dg.graph.functions) == ["gw/fw", "gw/nat"]
    back, _ = from_json(json.loads(json.dumps(to_json({"g1": dg}, {}))))
    again = back["g1"]
    assert again.decompositions["gw"].template == "secure-gateway"
    assert again.decompositions["gw"].reason == "the only one"
    assert again.functions["gw/fw"].rejected == (("docker-firewall", "costs more"),)
    assert again.functions["gw/fw"].memory == 4
