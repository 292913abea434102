"""Status and domain events from the engine on fake drivers: what <get> shows, published
when it changes, by the change itself."""

import time

from agent.domain.events import DomainEvents
from agent.engine.health import FUNCTION, Fault
from agent.engine.status import StatusEvents
from agent.tools.graphxml import GraphXml

from .test_engine import apply, chain, keep_templates, make_node, running  # noqa: F401


def watched(node):
    published = []
    engine = node.engine
    statuses = StatusEvents(engine, published.append)
    domain = DomainEvents(engine, published.append)
    statuses.baseline()
    domain.check()
    engine.observers += [statuses.check, lambda graphs: domain.check()]
    engine.health.on_change = lambda graph: statuses.check(None if graph is None else {graph})
    return published


def steps(published):
    out = []
    for event in published:
        body = event.body
        if event.kind.endswith("graph-status-change"):
            out.append(("graph", body["graph-id"], body["status"].split(":")[1]))
        elif event.kind.endswith("function-status-change"):
            out.append((body["function-id"], body["status"].split(":")[1]))
        else:
            out.append(("domain",) + tuple(sorted(c.path.rsplit("/", 1)[1] for c in event.changes)))
    return out


def test_deploy_fault_repair_and_removal(tmp_path, monkeypatch):
    node = make_node(tmp_path, monkeypatch)
    published = watched(node)
    apply(node, running(chain("g1")))
    assert steps(published) == [("graph", "g1", "deploying"), ("graph", "g1", "running"),
                                ("fw", "running"), ("domain", "cpu-cores-free")]
    running_event = published[1].body
    assert running_event["previous-status"] == "composer-types:deploying"
    assert running_event["graph-lsi"] and "repair-count" in running_event
    function = published[2].body
    assert (function["implementation"], function["execution-environment"]) == (
        "fw-native", "composer-types:native")
    assert published[1].changes[0].path == "/composer-sffg:service-graphs/service-graph" \
                                           "[id='g1']/state"
    del published[:]
    health = node.engine.health
    health.report(Fault("g1", FUNCTION, "x", "its namespace was deleted", "fw"))
    health.repaired("g1", ["fw"])
    health.found("g1", [])
    assert steps(published) == [("graph", "g1", "degraded"), ("fw", "degraded"),
                                ("graph", "g1", "running"), ("fw", "running")]
    assert published[0].body["status-reason"] == "function fw: its namespace was deleted"
    assert published[2].body["repair-count"] == 1
    del published[:]
    node.engine.apply(None, None)
    assert steps(published) == [("graph", "g1", "removing"), ("fw", "removed"),
                                ("graph", "g1", "removed"), ("domain", "cpu-cores-free")]


def test_a_vlan_sap_changes_the_free_vlans_and_costs_little(tmp_path, monkeypatch):
    node = make_node(tmp_path, monkeypatch)
    published = watched(node)
    g = GraphXml("gv")
    g.sap_vlan("v", "eth1", 42).sap_interface("wan", "eth2")
    g.bidirectional("r", "v", "wan")
    apply(node, running(g.xml()))
    domain = [e for e in published if e.kind == "composer-domain:domain"]
    assert [c.path for c in domain[0].changes] == [
        "/composer-domain:domain/big-switch/endpoints/endpoint[name='eth1']/free-vlans"]
    assert domain[0].content is None and not domain[0].is_notification
    # what the events cost a commit that changes one graph of ten functions
    functions = [("f%d" % i, "firewall", ("in", "out")) for i in range(10)]
    g = GraphXml("big")
    for fid, capability, ports in functions:
        g.function(fid, capability, *ports)
    g.sap_interface("lan", "eth1")
    apply(node, running(g.xml()))
    started = time.perf_counter()
    for _ in range(50):
        for observer in node.engine.observers:
            observer({"big"})
    cost = (time.perf_counter() - started) / 50
    print("status and domain events of a 10-function graph: %.3f ms" % (cost * 1000))
    assert cost < 0.002


def test_a_decomposed_function_has_its_events_not_its_parts(tmp_path, monkeypatch):
    """Its parts are not functions of the configuration (their ids are not object-ids):
    the function's event carries their state under its decomposition."""
    import agent.engine.engine as engine_module
    from tests.unit.engine.test_engine import TEMPLATES, graph_xml
    from tests.unit.engine.test_operational import PAIR
    monkeypatch.setattr(engine_module, "templates_from_tree", lambda root: TEMPLATES + [PAIR])
    node = make_node(tmp_path, monkeypatch)
    published = watched(node)
    node.engine.apply(None, running(graph_xml(
        "g1", [("x", "pair", ("p1", "p2"))],
        [("lan-x", 10, "lan", "x:p1"), ("x-wan", 10, "x:p2", "wan")])))
    assert ("x", "running") in steps(published)
    assert not [s for s in steps(published) if "/" in s[0]]
    event = next(e.body for e in published if e.body.get("function-id") == "x")
    assert event["implementation"] == "pair"
    assert [p["id"] for p in event["decomposition"]["part"]] == ["x/a", "x/b"]
    # the model takes it as a notification
    from agent.model import create_context
    from agent.publish.render import notification_xml
    rendered = next(e for e in published if e.body.get("function-id") == "x")
    assert b"<part><id>x/a</id>" in notification_xml(create_context(), rendered)
    del published[:]
    node.engine.apply(None, None)
    assert ("x", "removed") in steps(published)


def test_a_template_configured_changes_the_functional_capabilities():
    """DomainEvents on its own, with the engine faked at its edges: a new implementation
    of a capability (templates configured) is a change of functional-capabilities, and
    nothing else is said to change."""
    from types import SimpleNamespace
    capabilities = {"firewall": [{"id": "fw-native"}]}
    compute = SimpleNamespace(
        repository=SimpleNamespace(capabilities=lambda: capabilities),
        scheduler=SimpleNamespace(free_cores=lambda deployed: 4))
    published = []
    domain = DomainEvents(SimpleNamespace(compute=compute, deployed={}), published.append)
    domain.check()
    domain.check()
    assert published == []                                  # the baseline, then no change
    capabilities["firewall"] = [{"id": "fw-native"}, {"id": "fw-docker"}]
    domain.check()
    capabilities["nat"] = [{"id": "nat-native"}]
    domain.check()
    assert [[(c.datastore, c.path) for c in e.changes] for e in published] == [
        [("operational", "/composer-domain:domain/functional-capabilities")]] * 2
