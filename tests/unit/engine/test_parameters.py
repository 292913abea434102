"""A commit whose function has a parameter its template does not understand is refused with
invalid-value, the error-path at that parameter, and nothing deployed."""

from pathlib import Path

import pytest

from agent.engine import EngineRefused
from agent.tools.graphxml import GraphXml
from nsf import packages
from tests.unit.engine.test_engine import make_node, running

NSF = Path(packages.__file__).resolve().parent


def _native(name):
    template = packages.load_template_text((NSF / name / "template.json").read_text())
    return dict(template, **{"image-uri": "/nowhere/%s.tgz" % name})


@pytest.fixture
def node(tmp_path, monkeypatch):
    import agent.engine.engine as engine_module
    templates = [_native("firewall"), _native("nat")]
    monkeypatch.setattr(engine_module, "templates_from_tree", lambda root: templates)
    return make_node(tmp_path, monkeypatch)


def _graph(fw=(), nat=()):
    g = GraphXml("g1")
    g.function("fw", "firewall", "lan", "wan", parameters=fw)
    g.function("nat", "nat", "in", "out", parameters=nat)
    g.sap_interface("lan", "eth1").sap_interface("wan", "eth2")
    g.bidirectional("a", "lan", "fw:lan")
    g.bidirectional("b", "fw:wan", "nat:in")
    g.bidirectional("c", "nat:out", "wan")
    return g.xml()


FUNCTION = "/composer-sffg:service-graphs/service-graph[id='g1']/functions/function[id='%s']"


@pytest.mark.parametrize("fw, nat, path", [
    (["block-icmp=; flush ruleset"], [],
     FUNCTION % "fw" + "/config/parameter[.='block-icmp=; flush ruleset']"),
    (["block-tcp-dst=23"], ["inside=eth0", "outside=eth1; reboot"],
     FUNCTION % "nat" + "/config/parameter[.='outside=eth1; reboot']"),
    (["block-src=it's"], [], FUNCTION % "fw" + "/config/parameter[.=\"block-src=it's\"]")])
def test_a_parameter_the_function_does_not_understand_refuses_the_commit(node, fw, nat, path):
    empty = node.state()
    with pytest.raises(EngineRefused) as refused:
        node.engine.apply(None, running(_graph(fw, nat)))
    assert (refused.value.tag, refused.value.path, refused.value.app_tag) == (
        "invalid-value", path, "unknown-parameter")
    assert refused.value.info == {"bad-element": "parameter"}
    assert node.state() == empty and not node.engine.deployed


def test_parameters_the_functions_understand_deploy(node):
    node.engine.apply(None, running(_graph(["default=drop", "allow-icmp"],
                                           ["inside=eth0", "gateway=192.0.2.1"])))
    assert node.engine.deployed["g1"].functions.keys() == {"fw", "nat"}
