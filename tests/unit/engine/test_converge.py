"""The converger on fake drivers: an event shows the graph degraded at once, the repair
runs the commit's steps under the engine's lock, a function that keeps breaking makes its
graph failed after the attempts, and a commit that changes nothing repairs or refuses."""

import pytest

from agent.engine import EngineRefused
from agent.engine.converge import Converger, Settings
from agent.engine.health import Fault, Health
from drivers.watch import EXITED, FUNCTION, LOST, Event
from tests.e2e.node import eventually
from tests.unit.engine.test_engine import chain, keep_templates, node, running  # noqa: F401


@pytest.fixture
def converger(node):
    node.engine.apply(None, running(chain()))
    converger = Converger(node.engine, settings=Settings(attempts=2, backoff=0.01,
                                                        backoff_max=0.02, stable=60))
    converger.start()
    yield converger
    converger.stop()


def _fw(node):
    return node.engine.deployed["g1"].functions["fw"].instance


def test_a_lost_function_shows_at_once_and_is_made_again(node, converger):
    instance = _fw(node)
    node.compute.broken[instance] = LOST
    node.compute.calls.clear()
    with node.engine._lock:         # the repair waits for the lock; the status does not
        converger.on_event(Event(FUNCTION, instance, LOST, "its namespace was deleted"))
        status, reason = node.engine.health.graph_status("g1", "running")
        assert (status, reason) == ("degraded", "function fw: its namespace was deleted")
        assert node.engine.graph_status("g1")[0] == "degraded"
    assert eventually(lambda: node.engine.graph_status("g1")[0] == "running", 5, 0.01)
    assert [c[0] for c in node.compute.calls] == ["stop", "destroy", "create", "start"]
    assert node.engine.health.restarts("g1", "fw") == 1
    assert node.engine.health.repairs("g1") == 1


def test_an_exited_function_is_restarted(node, converger):
    instance = _fw(node)
    node.compute.broken[instance] = EXITED
    node.compute.calls.clear()
    converger.on_event(Event(FUNCTION, instance, EXITED, "its process 7 exited"))
    assert eventually(lambda: node.engine.graph_status("g1")[0] == "running", 5, 0.01)
    assert [c[0] for c in node.compute.calls] == ["stop", "start"]


def test_a_function_that_keeps_breaking_fails_its_graph(node, converger):
    instance = _fw(node)
    node.compute.broken[instance] = EXITED
    node.compute.keep_breaking = True
    converger.on_event(Event(FUNCTION, instance, EXITED, "its process 7 exited"))
    assert eventually(lambda: node.engine.graph_status("g1")[0] == "failed", 5, 0.01)
    assert "repaired 2 times in a row" in node.engine.status_reason("g1")
    with pytest.raises(EngineRefused) as refused:
        node.engine.converge()
    assert refused.value.app_tag == "node-degraded"
    node.compute.keep_breaking = False
    node.engine.converge()              # the cause is gone: the commit repairs
    assert node.engine.graph_status("g1")[0] == "running"


def test_events_about_what_is_not_deployed_are_ignored(node, converger):
    converger.on_event(Event(FUNCTION, "someone-else", LOST, "gone"))
    assert node.engine.health.broken() == set()


def test_health_statuses():
    health = Health()
    assert health.graph_status("g", "running") == ("running", "")
    health.report(Fault("g", "function", "i1", "its namespace was deleted", "fw"))
    assert health.graph_status("g", "running") == (
        "degraded", "function fw: its namespace was deleted")
    assert health.function_status("g", "fw", "running")[0] == "degraded"
    assert health.function_status("g", "nat", "running") == ("running", "")
    health.node_fault("ovs-vswitchd", "ovs-vswitchd exited; restarting it")
    assert health.function_status("g", "nat", "running")[0] == "degraded"
    assert health.part_status("h", ["p"]) == ("degraded", "ovs-vswitchd exited; restarting it")
    health.node_ok("ovs-vswitchd")
    health.give_up("g", "too many")
    assert health.graph_status("g", "running") == ("failed", "too many")
    health.found("g", [])
    health.retry("g")
    assert health.graph_status("g", "running") == ("running", "")
