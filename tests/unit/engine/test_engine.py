"""The engine on fake drivers: plans touch only what changed; any failure leaves no trace."""

import asyncio
import threading
import time

import pytest

from agent.compute.manager import ComputeManager
from agent.compute.repository import Repository
from agent.compute.scheduler import Scheduler
from agent.engine import EngineRefused
from agent.engine.engine import ComposerEngine
from agent.model import create_context, parse_config
from agent.network.manager import NetworkManager
from agent.network.naming import Naming
from drivers import registry
from agent.tools.graphxml import GraphXml, config
from tests.engines import failing_at
from tests.unit.engine.fakes import FakeCompute, FakeVSwitch

TEMPLATES = [{"id": "fw-native", "functional-capability": "firewall",
              "execution-environment": "native", "image-uri": "/nowhere/fw.tgz",
              "port-count": 2, "min-ports": 1, "max-ports": 4, "cpu": 0.5, "memory": 8,
              "dependencies": []},
             {"id": "nat-native", "functional-capability": "nat",
              "execution-environment": "native", "image-uri": "/nowhere/nat.tgz",
              "port-count": 2, "cpu": 0.5, "memory": 8, "dependencies": []}]

CTX = create_context()


def graph_xml(gid, functions, rules, saps=(("lan", "eth1"), ("wan", "eth2"))):
    g = GraphXml(gid)
    for fid, capability, ports in functions:
        g.function(fid, capability, *ports)
    for sid, nic in saps:
        g.sap_interface(sid, nic)
    for rid, priority, in_port, out in rules:
        g.rule(rid, in_port, out, priority=priority)
    return g.xml()


def running(*graphs):
    if not graphs:
        return None
    return parse_config(CTX, '<service-graphs xmlns="urn:composer-nc:yang:composer-sffg">%s'
                             '</service-graphs>' % "".join(graphs))


def chain(gid="g1", middle=None):
    functions = [("fw", "firewall", ("in", "out"))]
    rules = [("lan-fw", 10, "lan", "fw:in"), ("fw-lan", 10, "fw:in", "lan")]
    if middle:
        functions.append(("nat", "nat", ("in", "out")))
        rules += [("fw-nat", 10, "fw:out", "nat:in"), ("nat-fw", 10, "nat:in", "fw:out"),
                  ("nat-wan", 10, "nat:out", "wan"), ("wan-nat", 10, "wan", "nat:out")]
    else:
        rules += [("fw-wan", 10, "fw:out", "wan"), ("wan-fw", 10, "wan", "fw:out")]
    return graph_xml(gid, functions, rules)


@pytest.fixture
def node(tmp_path, monkeypatch):
    return make_node(tmp_path, monkeypatch)


class Node:
    """Fake drivers and an engine on them; the engine can be rebuilt as after a restart."""

    def __init__(self, state_dir, monkeypatch):
        self.vswitch, self.compute = FakeVSwitch(), FakeCompute()
        self.naming = Naming("ct")
        self.state_dir = state_dir
        monkeypatch.setattr(registry, "create", lambda kind, name, **kw: self.compute)
        self.engine = self.new_engine()

    def new_engine(self) -> ComposerEngine:
        network = NetworkManager(self.vswitch, self.naming, "lsi0", ("eth1", "eth2"))
        network.start()
        repository = Repository(self.state_dir / "nsf")
        repository.set_configured(TEMPLATES)
        manager = ComputeManager(["native"], {}, repository, Scheduler(cores=2))
        return ComposerEngine(network, manager, self.naming, self.state_dir, parallelism=4,
                              lsi0_interfaces=("eth1", "eth2"))

    def state(self):
        return self.vswitch.state(), self.compute.state()


def make_node(tmp_path, monkeypatch):
    return Node(tmp_path, monkeypatch)


def _with_templates(tree):
    return tree


def apply(node, tree):
    # templates come from running in real use; here they are set on the repository
    node.engine._plan_templates = TEMPLATES
    node.engine.apply(None, tree)


@pytest.fixture(autouse=True)
def keep_templates(monkeypatch):
    import agent.engine.engine as engine_module
    monkeypatch.setattr(engine_module, "templates_from_tree", lambda root: TEMPLATES)


def test_deploy_then_delete_leaves_the_node_as_it_was(node):
    empty = node.state()
    node.engine.apply(None, running(chain()))
    vswitch, compute = node.state()
    lsi = node.naming.graph_lsi("g1")
    assert set(vswitch) == {"lsi0", lsi}
    assert [i["state"] for i in compute.values()] == ["running"]
    # 2 function ports + 2 links (fw:in, fw:out towards the graph; lan, wan towards LSI-0)
    assert len(vswitch[lsi]["ports"]) == 4
    assert len(vswitch["lsi0"]["flows"]) == 2 + 2   # two SAP rules + two link flows
    node.engine.apply(None, running())
    assert node.state() == empty


def test_deleting_a_graph_leaves_its_flows_to_go_with_its_lsi(node):
    node.engine.apply(None, running(chain()))
    node.vswitch.calls.clear()
    node.engine.apply(None, running())
    lsi = node.naming.graph_lsi("g1")
    flow_calls = [args for name, args in node.vswitch.calls if name == "apply_flows"]
    assert flow_calls == [("lsi0", 0, 4)]
    assert ("destroy_lsi", (lsi,)) in node.vswitch.calls
    assert "release-flows g1/%s  [-4 flows, with the LSI]" % lsi in "\n".join(
        node.engine.last_plan.lines())


def test_a_graphs_ports_and_links_change_in_one_step(node):
    node.engine.apply(None, running(chain()))
    lines = node.engine.last_plan.lines()
    assert not any("create-links" in line for line in lines)
    attach = [line for line in lines if "attach-ports" in line]
    assert len(attach) == 1 and "; links " in attach[0]
    node.engine.apply(None, running())
    lines = node.engine.last_plan.lines()
    assert not any("destroy-links" in line for line in lines)
    detach = [line for line in lines if "detach-ports" in line]
    assert len(detach) == 1 and "; links " in detach[0]


def test_an_unchanged_commit_does_nothing(node):
    node.engine.apply(None, running(chain()))
    node.vswitch.calls.clear()
    node.compute.calls.clear()
    node.engine.apply(None, running(chain()))
    assert node.vswitch.calls == [] and node.compute.calls == []


def test_editing_one_rule_reinstalls_one_flow(node):
    node.engine.apply(None, running(chain()))
    node.vswitch.calls.clear()
    node.compute.calls.clear()
    node.engine.apply(None, running(chain().replace("<priority>10</priority></config><match>"
                                                    "<config><in-sap>lan</in-sap>",
                                                    "<priority>20</priority></config><match>"
                                                    "<config><in-sap>lan</in-sap>")))
    assert node.compute.calls == []
    assert node.vswitch.calls == [("apply_flows", ("lsi0", 1, 1))]


def test_adding_a_function_in_the_middle_touches_only_it(node):
    node.engine.apply(None, running(chain()))
    fw = node.naming.function_instance("g1", "fw")
    node.vswitch.calls.clear()
    node.compute.calls.clear()
    node.engine.apply(None, running(chain(middle=True)))
    nat = node.naming.function_instance("g1", "nat")
    assert node.compute.calls == [("create", nat), ("start", nat)]
    assert fw not in {i for _, i in node.compute.calls}
    kinds = [c[0] for c in node.vswitch.calls]
    assert kinds.count("create_ports") == 1 and "destroy_lsi" not in kinds


def test_two_graphs_share_lsi0(node):
    node.engine.apply(None, running(chain("g1"), graph_xml("g2", [("fw", "firewall", ("a", "b"))], [
        ("x", 5, "lan", "fw:a")], saps=(("lan", "eth1"),))))
    vswitch, compute = node.state()
    assert len(compute) == 2 and len(vswitch) == 3


def test_conflicting_lsi0_rules_of_two_graphs_are_refused(node):
    with pytest.raises(EngineRefused) as refused:
        node.engine.apply(None, running(chain("g1"), graph_xml("g2", [("fw", "firewall", ("a",))], [
            ("x", 10, "lan", "fw:a")], saps=(("lan", "eth1"),))))
    assert refused.value.app_tag == "lsi0-conflict"
    assert refused.value.path == ("/composer-sffg:service-graphs/service-graph[id='g2']"
                                  "/flow-rules/flow-rule[id='x']")


def test_unknown_interface_is_refused_with_its_path(node):
    xml = chain().replace("<if-name>eth2</if-name>", "<if-name>eth9</if-name>")
    with pytest.raises(EngineRefused) as refused:
        node.engine.apply(None, running(xml))
    assert refused.value.path == ("/composer-sffg:service-graphs/service-graph[id='g1']/saps"
                                  "/sap[id='wan']/config/interface/if-name")
    assert node.vswitch.calls[-1][0] == "create_lsi"  # only LSI-0 at start


def test_unresolvable_function_is_refused_with_its_path(node):
    xml = chain().replace("<functional-capability>firewall", "<functional-capability>dpi")
    with pytest.raises(EngineRefused) as refused:
        node.engine.apply(None, running(xml))
    assert "no template provides the functional capability 'dpi'" in refused.value.message
    assert refused.value.path.endswith("/functions/function[id='fw']/config"
                                       "/functional-capability")


def test_a_function_naming_an_unknown_template_is_refused_at_its_template(node):
    xml = chain().replace("</functional-capability>",
                          "</functional-capability><template>fw-nosuch</template>", 1)
    with pytest.raises(EngineRefused) as refused:
        node.engine.apply(None, running(xml))
    assert "template 'fw-nosuch' does not exist" in refused.value.message
    assert refused.value.path.endswith("/functions/function[id='fw']/config/template")


def _every_step(node, before_tree, after_tree):
    """Names of the steps of the plan from before to after."""
    node.engine.apply(None, before_tree)
    return [str(s) for s in node.engine.dry_run(after_tree).steps()]


def commit(engine, tree):
    """As the datastores commit: read() before libyang validates, its check (which may
    begin the plan), then apply()."""
    engine.read(None, tree)()
    engine.apply(None, tree)


def deploy(engine, tree, through):
    (commit if through == "commit" else lambda e, t: e.apply(None, t))(engine, tree)


@pytest.mark.parametrize("through", ["apply", "commit"])
@pytest.mark.parametrize("scenario", ["deploy", "insert-middle", "delete"])
def test_a_failure_at_any_step_leaves_the_node_exactly_as_before(node, scenario, through):
    trees = {
        "deploy": (running(), running(chain("g1"), chain("g2").replace("eth1", "eth1").replace(
            "<priority>10</priority>", "<priority>11</priority>"))),
        "insert-middle": (running(chain()), running(chain(middle=True))),
        "delete": (running(chain(middle=True)), running()),
    }
    before, after = trees[scenario]
    steps = _every_step(node, before, after)
    assert steps
    for index in range(len(steps)):
        node.engine.apply(None, before)
        snapshot = node.state()
        deployed = dict(node.engine.deployed)
        target = steps[index]

        with failing_at(node.engine.executor, target):
            with pytest.raises(EngineRefused) as refused:
                deploy(node.engine, after, through)
        assert target in refused.value.message
        assert node.state() == snapshot, "after a failure at %s" % target
        assert node.engine.deployed == deployed
        assert not node.engine.spares.paused


class Crash(BaseException):
    """Stands for kill -9: no handler runs, no rollback, the journal stays open."""


def _restart(node):
    """A new engine on the same node and state directory, as after a restart. The old
    engine's snapshot writer is let finish first: a process that died writes nothing
    after its death, while here the thread would go on and could stage a file after
    the new engine's recovery looked."""
    node.engine._recorder.shutdown(wait=True)
    node.engine = node.new_engine()
    return node.engine


@pytest.mark.parametrize("through", ["apply", "commit"])
def test_a_crash_at_any_step_converges_after_restart(tmp_path, monkeypatch, through):
    before, after = running(chain()), running(chain(middle=True), chain("g2").replace(
        "<priority>10</priority>", "<priority>11</priority>"))
    probe = make_node(tmp_path / "probe", monkeypatch)
    probe.engine.apply(None, before)
    steps = [str(s) for s in probe.engine.dry_run(after).steps()]
    assert len(steps) > 5
    clean_before = _fresh_state(tmp_path / "clean", before, monkeypatch)
    clean_after = _fresh_state(tmp_path / "clean2", after, monkeypatch)
    for index, target in enumerate(steps):
        state_dir = tmp_path / ("crash%d" % index)
        node = make_node(state_dir, monkeypatch)
        node.engine.apply(None, before)

        with failing_at(node.engine.executor, target, Crash), pytest.raises(Crash):
            deploy(node.engine, after, through)

        # Restart: the datastore's running is still `before` (the commit never finished).
        engine = _restart(node)
        engine.recover()
        engine.apply(None, before)
        # the same as a node that only ever deployed `before`
        assert node.state() == clean_before, "after a crash at %s" % target
        # and it can go on to `after`
        engine.apply(None, after)
        assert node.state() == clean_after, "after a crash at %s" % target


@pytest.mark.parametrize("died", ["before the snapshot", "before the commit line"])
def test_a_crash_after_the_executor_before_the_commit_line_converges_after_restart(
        tmp_path, monkeypatch, died):
    """A crash after the steps, before the journal's commit line (the snapshot in place
    or not): the transaction is unfinished in the journal, its graphs dirty."""
    before, after = running(chain()), running(chain(middle=True))
    clean_after = _fresh_state(tmp_path / "clean", after, monkeypatch)
    node = make_node(tmp_path / "node", monkeypatch)
    node.engine.apply(None, before)
    snapshot = node.engine.snapshot.path.read_bytes()
    if died == "before the snapshot":
        monkeypatch.setattr(node.engine, "_record", _crash)
    else:
        monkeypatch.setattr(node.engine.journal, "end", _crash)
    with pytest.raises(Crash):
        node.engine.apply(None, after)
    assert (node.engine.snapshot.path.read_bytes() == snapshot) == \
        (died == "before the snapshot")
    _restart(node)
    assert node.engine.journal.interrupted() == {"g1"}
    node.engine.recover()
    assert not list(node.engine.state_dir.glob(".deployed.json.*"))   # staged, never used
    node.engine.apply(None, after)
    assert node.state() == clean_after


def _crash(*args, **kwargs):
    raise Crash()


def _fresh_state(path, tree, monkeypatch):
    """What a node that only ever deployed tree looks like."""
    node = Node(path, monkeypatch)
    node.engine.apply(None, tree)
    return node.state()


def test_a_new_graph_conflicting_with_a_deployed_one_is_the_one_refused(node):
    node.engine.apply(None, running(chain("g1")))
    calls = len(node.vswitch.calls)
    with pytest.raises(EngineRefused) as refused:
        node.engine.apply(None, running(chain("g1"), graph_xml(
            "g2", [("fw", "firewall", ("a",))], [("x", 10, "lan", "fw:a")],
            saps=(("lan", "eth1"),))))
    assert refused.value.path.startswith("/composer-sffg:service-graphs/service-graph[id='g2']")
    assert len(node.vswitch.calls) == calls


def test_a_vlan_claimed_by_a_deployed_graph_is_refused_to_another(node):
    def vlan_graph(gid):
        g = GraphXml(gid)
        g.function("fw", "firewall", "a")
        g.sap_vlan("v", "eth1", 300)
        g.rule("in", "v", "fw:a", priority=20 if gid == "g1" else 30)
        return g.xml()
    node.engine.apply(None, running(vlan_graph("g1")))
    with pytest.raises(EngineRefused) as refused:
        node.engine.apply(None, running(vlan_graph("g1"), vlan_graph("g2")))
    assert refused.value.app_tag == "vlan-in-use"
    assert refused.value.path == ("/composer-sffg:service-graphs/service-graph[id='g2']"
                                  "/saps/sap[id='v']/config/vlan/vlan-id")


def test_the_resolver_honours_a_template_port_range(node):
    from agent.compute.resolver import ResolveError
    from agent.model.graph import Function, Port
    resolver = node.engine.compute.resolver
    node.engine.compute.repository.set_configured(TEMPLATES + [{
        "id": "br", "functional-capability": "bridge", "execution-environment": "native",
        "port-count": 2, "min-ports": 2, "max-ports": 64, "memory": 4, "cpu": 0.1}])
    three = Function(id="b", capability="bridge", ports=tuple(Port(p) for p in "xyz"))
    assert resolver.resolve(three).template_id == "br"
    one = Function(id="b", capability="bridge", ports=(Port("x"),))
    with pytest.raises(ResolveError) as refused:
        resolver.resolve(one)
    assert "br: takes 2 to 64 ports, the function has 1" in refused.value.message


def test_apply_after_validate_reuses_the_plan(node, monkeypatch):
    tree = running(chain())
    node.engine.validate(None, tree)
    calls = []
    monkeypatch.setattr(node.engine.planner, "plan",
                        lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(AssertionError))
    node.engine.apply(None, tree)                 # no second planning
    assert calls == [] and node.engine.deployed
    other = running(chain("g2"))
    with pytest.raises(AssertionError):
        node.engine.apply(None, other)            # another tree: planned again


def test_apply_after_the_check_read_returned_reuses_its_plan(node, monkeypatch):
    tree = running(chain())
    check = node.engine.read(None, tree)
    monkeypatch.setattr("agent.engine.engine.graph_sources",
                        lambda root: (_ for _ in ()).throw(AssertionError("tree read again")))
    check()                                       # from what read() took, not the tree
    calls = []
    monkeypatch.setattr(node.engine.planner, "plan",
                        lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(AssertionError))
    node.engine.apply(None, tree)
    assert calls == [] and node.engine.deployed


def test_templates_count_once_applied(node, monkeypatch):
    repository = node.engine.compute.repository
    extra = dict(TEMPLATES[0], id="fw-new")
    monkeypatch.setattr("agent.engine.engine.templates_from_tree",
                        lambda root: TEMPLATES + [extra])
    node.engine.validate(None, running(chain()))
    checked = running(chain())
    node.engine.read(None, checked)()
    node.engine.release(checked)
    node.engine.dry_run(running(chain()))
    assert repository.get("fw-new") is None       # checked only: nothing changed
    with failing_at(node.engine.executor, "start-function g1/%s"
                    % node.naming.function_instance("g1", "fw")):
        with pytest.raises(EngineRefused):
            node.engine.apply(None, running(chain()))
    assert repository.get("fw-new") is None       # refused
    node.engine.apply(None, running(chain()))
    assert repository.get("fw-new") == extra


# --- a commit's check begins what no traffic sees; apply() or release() ends it ---

def _journal(node) -> list:
    import json
    return [json.loads(line) for line in node.engine.journal.path.read_text().splitlines()]


def _lsi_flows(node, lsi):
    return node.vswitch.lsis.get(lsi, {}).get("flows", {})


def test_the_check_begins_the_steps_no_traffic_sees_and_apply_runs_the_rest(node):
    tree = running(chain())
    lsi = node.naming.graph_lsi("g1")
    instance = node.naming.function_instance("g1", "fw")
    node.engine.read(None, tree)()
    # the graph-LSI, the function's ports and links, the function made and started...
    assert node.compute.instances[instance]["state"] == "running"
    assert len(node.vswitch.lsis[lsi]["ports"]) == 4
    # ...and no flow that would lead traffic to them
    assert not _lsi_flows(node, lsi) and not _lsi_flows(node, "lsi0")
    assert node.engine.graph_status("g1") == ("deploying", "")
    node.engine.apply(None, tree)
    assert _lsi_flows(node, lsi) and _lsi_flows(node, "lsi0")
    assert node.engine.graph_status("g1") == ("running", "")
    # one transaction in the journal, each step of the plan done once
    records = _journal(node)
    assert [r["event"] for r in records if r["event"] != "done"] == ["begin", "commit"]
    done = sorted(r["step"] for r in records if r["event"] == "done")
    assert done == sorted(str(s) for s in node.engine.last_plan.steps())


def test_release_undoes_what_the_check_began(node):
    node.engine.apply(None, running(chain()))
    before, deployed = node.state(), dict(node.engine.deployed)
    tree = running(chain(middle=True))
    node.engine.read(None, tree)()
    assert node.state() != before and node.engine.spares.paused
    node.engine.release(tree)
    assert node.state() == before and node.engine.deployed == deployed
    # refused before it was applied: the graph runs on, and did not fail
    assert node.engine.graph_status("g1") == ("running", "")
    assert _journal(node)[-1]["event"] == "rolled-back"
    assert not node.engine.journal.interrupted()
    assert not node.engine.spares.paused
    node.engine.release(tree)                     # twice: nothing more to undo
    commit(node.engine, tree)                     # and it can still be committed
    assert node.engine.deployed["g1"].functions.keys() == {"fw", "nat"}


def test_release_while_the_check_runs_stops_it_before_its_next_step(node):
    empty = node.state()
    tree = running(chain(middle=True))
    handlers = node.engine.executor.handlers
    create, ran = handlers["create-function"], []
    gate, entered = threading.Event(), threading.Event()

    def slow_create(step):
        entered.set()
        assert gate.wait(10)
        return create(step)
    handlers["create-function"] = slow_create
    for kind in ("start-function", "attach-ports"):
        handlers[kind] = (lambda original: lambda step: ran.append(step.kind) or
                          original(step))(handlers[kind])
    check, outcome = node.engine.read(None, tree), []

    def run_check():
        try:
            check()
        except EngineRefused as exc:
            outcome.append(exc)
    checking = threading.Thread(target=run_check)
    checking.start()
    assert entered.wait(10)
    stop = node.engine._reading[1]
    releasing = threading.Thread(target=node.engine.release, args=(tree,))
    releasing.start()
    assert _wait_until(stop.is_set)
    gate.set()
    checking.join(10)
    releasing.join(10)
    assert outcome and "stopped before" in outcome[0].message
    assert ran == []                              # nothing after the creates ran
    assert node.state() == empty
    assert node.engine.graph_status("g1") == ("pending", "")


def _wait_until(condition, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def _only_libyang_refuses():
    """A graph the engine would deploy but YANG refuses (an IPv4 match needs ether-type
    ipv4, a must of the model the engine does not check itself)."""
    g = GraphXml("g1")
    g.function("fw", "firewall", "in", "out")
    g.sap_interface("lan", "eth1").sap_interface("wan", "eth2")
    g.rule("lan-fw", "lan", "fw:in", match={"ipv4-src": "10.0.0.1/32"})
    g.rule("fw-wan", "fw:out", "wan")
    return config(g)


def test_a_commit_libyang_refuses_leaves_nothing_of_what_the_check_began(
        node, tmp_path, monkeypatch):
    from lxml import etree

    from agent.datastore import DataTree, Datastores, Edit
    from agent.model import ValidationError

    async def main():
        ds = Datastores(CTX, node.engine, tmp_path / "startup.xml")
        await ds.start()
        empty, began = node.state(), []
        validate = DataTree.validate

        def slow_validate(tree, *args, **kwargs):
            # libyang answers only once the check has made and started the function
            began.append(_wait_until(lambda: any(
                i["state"] == "running" for i in node.compute.instances.values())))
            return validate(tree, *args, **kwargs)
        monkeypatch.setattr(DataTree, "validate", slow_validate)
        xml = etree.fromstring(_only_libyang_refuses().encode())
        await ds.edit("candidate", Edit.from_xml(CTX, xml, "merge"))
        with pytest.raises(ValidationError) as refused:
            await ds.commit()
        assert began == [True]
        assert "ether-type ipv4" in str(refused.value)
        assert node.state() == empty
        assert node.engine.graph_status("g1") == ("pending", "")
        assert _journal(node)[-1]["event"] == "rolled-back"
        assert not node.engine.spares.paused
        await ds.stop()
    asyncio.run(main())


# --- prepared function slots ---

def _spare_node(tmp_path, monkeypatch, size=1):
    node = make_node(tmp_path, monkeypatch)
    node.engine.spares.size, node.engine.spares.links = size, size * 2
    return node


def _spare_ids():
    return {"composer-owner": "ct", "composer-graph": "g1", "composer-role": "spare"}


def test_a_new_function_takes_a_prepared_slot_and_the_vswitch_is_not_changed(
        tmp_path, monkeypatch):
    node = _spare_node(tmp_path, monkeypatch)
    node.engine.apply(None, running(chain()))
    assert node.engine.fill_spares() == 3            # a slot of two ports, two links
    slot = node.engine.spares.available()["g1"][0]
    lsi = node.naming.graph_lsi("g1")
    assert node.vswitch.port_ids[(lsi, slot.ports[0])] == _spare_ids()
    node.vswitch.calls.clear()

    node.engine.apply(None, running(chain(middle=True)))
    steps = [s.kind for s in node.engine.last_plan.steps()]
    assert "attach-ports" not in steps and "create-links" not in steps
    assert "tag-ports" in steps
    changes = {name for name, _ in node.vswitch.calls}
    assert changes == {"tag_ports", "apply_flows"}
    middle = [f for f in node.engine.deployed["g1"].functions.values()
              if f.instance == slot.instance]
    assert len(middle) == 1 and middle[0].ports == tuple(zip(("in", "out"), slot.ports))
    assert node.vswitch.port_ids[(lsi, slot.ports[0])]["composer-function"] == middle[0].id
    assert node.compute.instances[slot.instance]["state"] == "running"
    assert node.engine.spares.count("g1")[0] == 0
    # its ports are in the flows under the slot's names
    flows = node.vswitch.lsis[lsi]["flows"].values()
    assert any(("in_port", slot.ports[0]) in f.match for f in flows)


def test_a_failure_at_any_step_of_a_slot_taking_change_restores_slot_and_tags(
        tmp_path, monkeypatch):
    node = _spare_node(tmp_path, monkeypatch)
    before, after = running(chain()), running(chain(middle=True))
    node.engine.apply(None, before)
    node.engine.fill_spares()
    steps = [str(s) for s in node.engine.dry_run(after).steps()]
    assert any(s.startswith("tag-ports") for s in steps)
    for target in steps:
        snapshot, tags = node.state(), dict(node.vswitch.port_ids)
        spares = node.engine.spares.available()

        with failing_at(node.engine.executor, target):
            with pytest.raises(EngineRefused):
                node.engine.apply(None, after)
        assert node.state() == snapshot, "after a failure at %s" % target
        assert node.vswitch.port_ids == tags, "tags after a failure at %s" % target
        assert node.engine.spares.available() == spares


def test_deleting_a_graph_removes_its_slots_and_links(tmp_path, monkeypatch):
    node = _spare_node(tmp_path, monkeypatch, size=2)
    empty = node.state()
    node.engine.apply(None, running(chain()))
    assert node.engine.fill_spares() == 6
    node.engine.apply(None, running())
    assert node.engine.spares.available() == {}
    node.engine.drain_spares()        # the filler does it right after the commit
    assert node.state() == empty


def test_recovery_removes_slots_and_the_pool_starts_empty(tmp_path, monkeypatch):
    node = _spare_node(tmp_path, monkeypatch)
    node.engine.apply(None, running(chain()))
    node.engine.fill_spares()
    with_slots = node.state()
    engine = _restart(node)
    engine.spares.size, engine.spares.links = 1, 2
    engine.recover()
    vswitch, compute = node.state()
    lsi = node.naming.graph_lsi("g1")
    assert not [i for i, s in compute.items() if s["state"] == "spare"]
    assert not [p for p in vswitch[lsi]["ports"]
                if node.vswitch.port_ids.get((lsi, p), {}).get("composer-role") == "spare"]
    assert engine.spares.available() == {}
    engine.apply(None, running(chain()))
    assert engine.fill_spares() == 3
    assert node.state() == with_slots


def test_a_crash_at_any_step_of_a_slot_taking_change_converges_after_restart(
        tmp_path, monkeypatch):
    before, after = running(chain()), running(chain(middle=True))
    probe = _spare_node(tmp_path / "probe", monkeypatch)
    probe.engine.apply(None, before)
    probe.engine.fill_spares()
    steps = [str(s) for s in probe.engine.dry_run(after).steps()]
    assert any(s.startswith("tag-ports") for s in steps)
    clean_before = _fresh_state(tmp_path / "clean", before, monkeypatch)
    for index, target in enumerate(steps):
        node = _spare_node(tmp_path / ("crash%d" % index), monkeypatch)
        node.engine.apply(None, before)
        node.engine.fill_spares()

        with failing_at(node.engine.executor, target, Crash), pytest.raises(Crash):
            node.engine.apply(None, after)

        engine = _restart(node)
        engine.spares.size, engine.spares.links = 1, 2
        engine.recover()
        engine.apply(None, before)
        # no slot, no spare port left: the node of a fresh agent without slots
        assert node.state() == clean_before, "after a crash at %s" % target
        assert engine.fill_spares() == 3
        engine.apply(None, after)
        assert any(f.instance.startswith("ctw")
                   for f in engine.deployed["g1"].functions.values())


def test_the_filler_leaves_the_slots_alone_while_a_checked_plan_waits(tmp_path, monkeypatch):
    node = _spare_node(tmp_path, monkeypatch)
    node.engine.apply(None, running(chain()))
    spares = node.engine.spares
    spares.delay = 0.01
    tree = running(chain(middle=True))
    node.engine.read(None, tree)()               # the plan may take slots and link names
    node.engine.start_spares()
    try:
        time.sleep(0.3)
        assert spares.count("g1") == (0, 0)
        node.engine.apply(None, tree)
        assert _wait_until(lambda: spares.count("g1") == (1, 2), 5)
    finally:
        node.engine.stop_spares()


def test_slots_wait_until_the_node_has_ports_enough(tmp_path, monkeypatch):
    node = _spare_node(tmp_path, monkeypatch)
    node.engine.spares.min_ports = 12
    node.engine.apply(None, running(chain()))
    # LSI-0's two interfaces, the firewall's two ports, two links of two ports: 8
    assert node.engine.spares.node_ports(node.engine.deployed) == 8
    assert node.engine.fill_spares() == 0
    node.engine.apply(None, running(chain(), chain("g2").replace(
        "<priority>10</priority>", "<priority>11</priority>")))
    assert node.engine.spares.node_ports(node.engine.deployed) == 14
    assert node.engine.fill_spares() == 6


def with_monitoring(xml, expression):
    return xml.replace("<config><id>g1</id></config>",
                       "<config><id>g1</id><monitoring>%s</monitoring></config>" % expression, 1)


def test_a_malformed_monitoring_expression_is_refused_at_its_leaf(node):
    with pytest.raises(EngineRefused) as refused:
        node.engine.apply(None, running(with_monitoring(chain(), "process-restarts &gt; lots")))
    assert refused.value.path == ("/composer-sffg:service-graphs/service-graph[id='g1']"
                                  "/config/monitoring")
    assert refused.value.tag == "invalid-value"
    assert "'<metric> <operator> <number>'" in refused.value.message
    assert node.vswitch.calls[-1][0] == "create_lsi"  # nothing deployed


def test_a_valid_monitoring_expression_is_deployed_and_kept(node):
    apply(node, running(with_monitoring(chain(), "process-restarts &gt; 3")))
    assert node.engine.deployed["g1"].graph.monitoring == "process-restarts > 3"
