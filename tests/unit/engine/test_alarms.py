"""Alarms from Health's faults and from resource thresholds: raised once, cleared once,
raised again with a count; the /alarms state fits the model."""

from agent.engine.alarms import KIND, Alarms
from agent.engine.health import Fault, Health
from agent.model import create_context


class Engine:
    def __init__(self):
        self.health = Health()


def made():
    engine = Engine()
    events = []
    alarms = Alarms(engine, events.append)
    engine.health.on_change = alarms.check
    return engine, alarms, events


def bodies(events):
    return [(e.body["type"], e.body["cleared"]) for e in events]


def test_a_process_fault_raises_then_clears(tmp_path):
    engine, alarms, events = made()
    engine.health.report(Fault("g1", "process", "cnc-i1", "its process 42 (relay) exited",
                               "rl"))
    engine.health.report(Fault("g1", "process", "cnc-i1", "said otherwise", "rl"))
    assert bodies(events) == [("function-process-gone", False)]
    event = events[0]
    assert event.kind == KIND
    assert event.body["resource"] == \
        "/composer-sffg:service-graphs/service-graph[id='g1']/functions/function[id='rl']"
    assert event.changes[0].path.startswith("/composer-alarms:alarms/alarm[id=")
    engine.health.found("g1", [])                   # repaired
    assert bodies(events)[-1] == ("function-process-gone", True)
    engine.health.report(Fault("g1", "process", "cnc-i1", "exited again", "rl"))
    assert events[-1].body["raise-count"] == 2 and not events[-1].body["cleared"]


def test_port_and_node_faults():
    engine, alarms, events = made()
    engine.health.report(Fault("g1", "port", "cnc-p1", "it left its LSI", "fw"))
    engine.health.report(Fault("g1", "sap", "eth9", "it is gone"))
    engine.health.node_fault("ovs-vswitchd", "ovs-vswitchd exited")
    assert sorted(bodies(events)) == [("node-fault", False), ("port-down", False),
                                      ("port-down", False)]
    assert {e.body["severity"] for e in events} == {"major", "critical"}
    engine.health.node_ok("ovs-vswitchd")
    assert bodies(events)[-1] == ("node-fault", True)


def test_thresholds_and_the_state():
    engine = Engine()
    events = []
    samples = iter([(95.0, 10.0), (96.0, 10.0), (50.0, 99.0)])
    alarms = Alarms(engine, events.append, memory_percent=90, cpu_percent=80,
                    sample=lambda: next(samples))
    alarms.sample_once()
    alarms.sample_once()
    assert bodies(events) == [("memory-high", False)]
    alarms.sample_once()
    assert bodies(events) == [("memory-high", False), ("memory-high", True),
                              ("cpu-high", False)]
    ctx = create_context()
    node = alarms.build(ctx)
    try:
        text = node.print_mem("xml", with_siblings=True)
    finally:
        node.free()
    assert text.count("<alarm>") == 2 and "<cleared>true</cleared>" in text
    # the notification fits the model too
    from agent.publish.render import notification_xml
    assert b"<alarm-notification" in notification_xml(ctx, events[0])


class Deployed:
    def __init__(self, monitoring, functions):
        from agent.model.graph import Graph
        self.graph = Graph(id="g1", monitoring=monitoring)
        self.functions = dict.fromkeys(functions)


def test_the_monitoring_expression_raises_and_clears_per_function():
    engine, alarms, events = made()
    engine.deployed = {"g1": Deployed("process-restarts > 1", ("fw", "nat"))}
    engine.health.repaired("g1", ("fw",))
    assert events == []                              # 1 restart: not above 1
    engine.health.repaired("g1", ("fw",))
    assert bodies(events) == [("monitoring-threshold", False)]
    raised = events[0].body
    assert raised["resource"] == ("/composer-sffg:service-graphs/service-graph[id='g1']"
                                  "/functions/function[id='fw'] process-restarts > 1")
    assert raised["severity"] == "warning" and "process-restarts is 2" in raised["text"]
    engine.health.repaired("g1", ("fw",))            # still above: no news
    assert len(events) == 1
    state = alarms.build(create_context())           # fits the model
    assert state is not None
    engine.deployed = {}                             # the graph is gone
    engine.health.forget("g1", counts=True)
    alarms.check("g1")
    assert bodies(events)[-1] == ("monitoring-threshold", True)
