"""The YANG modules: lint-clean, bindings fresh, examples valid (yanglint and libyang)."""

import subprocess
from pathlib import Path

import pytest

from agent.model import create_context, parse_config, schema
from agent.tools import bindings as binding_tool

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples").glob("*.xml"))


def test_pyang_lint_and_yanglint_report_nothing():
    assert binding_tool.lint() == []


def test_committed_bindings_match_the_modules():
    assert binding_tool.stale() == [], "run `make bindings`"


def test_every_module_has_a_revision_and_a_version():
    ctx = create_context()
    for name in schema.COMPOSER_MODULES:
        module = ctx.get_module(name)
        assert list(module.revisions()), name
        text = (schema.project_yang_dir() / (name + ".yang")).read_text()
        assert 'ctypes:module-version "' in text, name


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_with_yanglint(example):
    argv = ["yanglint", "-t", "config"]
    for directory in schema.search_dirs():
        argv += ["-p", str(directory)]
    result = subprocess.run(argv + [str(p) for p in schema.module_files()] + [str(example)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_with_libyang(example):
    tree = parse_config(create_context(), example.read_text())
    assert tree is not None


def test_bindings_build_a_graph_that_libyang_accepts():
    from agent.model.binding import to_xml
    from bindings import composer_sffg

    model = composer_sffg()
    graph = model.service_graphs.service_graph.add("g1")
    graph.config.id = "g1"
    function = graph.functions.function.add("fw")
    function.config.id = "fw"
    function.config.functional_capability = "firewall"
    for port in ("in", "out"):
        function.ports.port.add(port).config.id = port
    sap = graph.saps.sap.add("lan")
    sap.config.id = "lan"
    sap.config.interface.if_name = "eth1"
    rule = graph.flow_rules.flow_rule.add("r1")
    rule.config.id = "r1"
    rule.config.priority = 10
    rule.match.config.in_sap = "lan"
    action = rule.actions.action.add(0)
    action.config.index = 0
    action.config.output_function = "fw"
    action.config.output_function_port = "in"
    tree = parse_config(create_context(), to_xml(model))
    assert tree.find_path("/composer-sffg:service-graphs/service-graph[id='g1']"
                          "/flow-rules/flow-rule[id='r1']/actions/action[index='0']"
                          "/config/output-function-port").value() == "in"
