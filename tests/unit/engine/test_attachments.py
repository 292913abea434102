"""The planner attaches each function port as its driver says (port_attachments, create),
not as a veth by assumption: the kind and options reach the vSwitch, the deployed record
and the snapshot, the teardown and its undo; a driver that makes its ports otherwise than
it announced fails the create, which is undone."""

import pytest

from agent.engine import EngineRefused
from drivers.compute.base import MEMIF, SYSTEM, TAP, PortAttachment
from tests.unit.engine.test_engine import chain, make_node, running

# autouse fixture of test_engine: the templates of every tree are its TEMPLATES
from tests.unit.engine.test_engine import keep_templates  # noqa: F401


@pytest.fixture
def node(tmp_path, monkeypatch):
    node = make_node(tmp_path, monkeypatch)
    # the first port a tap, the second a memif the vSwitch serves
    def attachments(template, ports):
        out = []
        for n, port in enumerate(ports):
            kind, options = [(TAP, {}), (MEMIF, {"socket": "/run/x/%s.sock" % port.vswitch_ifname,
                                                 "id": 0})][n] if n < 2 else (SYSTEM, {})
            out.append(PortAttachment.of(port.port_id, port.vswitch_ifname, kind, options))
        return tuple(out)
    node.compute.port_attachments = attachments
    return node


def _ports(node, step_kind):
    return [port for step in node.engine.last_plan.steps() if step.kind == step_kind
            for port in step.params["ports"]]


def test_the_ports_are_attached_as_the_driver_says(node):
    node.engine.apply(None, running(chain()))
    lsi = node.naming.graph_lsi("g1")
    attached = {p["name"]: (p["kind"], p.get("options")) for p in _ports(node, "attach-ports")}
    fw_in, fw_out = (node.naming.function_port("g1", "fw", pid) for pid in ("in", "out"))
    assert attached == {fw_in: (TAP, None),
                        fw_out: (MEMIF, {"socket": "/run/x/%s.sock" % fw_out, "id": 0})}
    assert node.vswitch.lsis[lsi]["ports"][fw_in] == TAP
    assert node.vswitch.lsis[lsi]["ports"][fw_out] == MEMIF
    fn = node.engine.deployed["g1"].functions["fw"]
    assert fn.attachment("in") == (TAP, {})
    # the record survives a restart (the snapshot), and the teardown detaches them as such
    node.engine = node.new_engine()
    node.engine.recover()
    assert node.engine.deployed["g1"].functions["fw"].attachments == fn.attachments
    node.engine.apply(None, running())
    detached = {p["name"]: p["kind"] for p in _ports(node, "detach-ports")}
    assert detached == {fw_in: TAP, fw_out: MEMIF}


def test_a_port_added_to_a_running_function_is_attached_as_the_driver_says(node):
    node.engine.apply(None, running(chain()))
    node.compute.port_attachments = lambda template, ports: tuple(
        PortAttachment.of(p.port_id, p.vswitch_ifname, TAP) for p in ports)
    from tests.unit.engine.test_engine import graph_xml
    three = graph_xml("g1", [("fw", "firewall", ("in", "out", "dmz"))],
                      [("lan-fw", 10, "lan", "fw:in"), ("fw-lan", 10, "fw:in", "lan"),
                       ("fw-wan", 10, "fw:out", "wan"), ("wan-fw", 10, "wan", "fw:out")])
    node.engine.apply(None, running(three))
    assert [(p["name"], p["kind"]) for p in _ports(node, "attach-ports")] == [
        (node.naming.function_port("g1", "fw", "dmz"), TAP)]
    fn = node.engine.deployed["g1"].functions["fw"]
    assert [a[:2] for a in fn.attachments] == [("in", TAP), ("out", MEMIF), ("dmz", TAP)]


def test_a_driver_that_makes_other_ports_than_it_announced_fails_the_create(node):
    empty = node.state()
    create = node.compute.create
    node.compute.create = lambda spec: tuple(
        PortAttachment(a.port_id, a.name) for a in create(spec))     # all "system"
    with pytest.raises(EngineRefused, match="made the ports .* not the .* it announced"):
        node.engine.apply(None, running(chain()))
    assert node.state() == empty
