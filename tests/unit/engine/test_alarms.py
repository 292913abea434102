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


class _Function:
    def __init__(self, instance, environment="native"):
        self.instance, self.environment = instance, environment


class _Driver:
    def __init__(self):
        self.readings = {}          # instance -> Usage

    def usages(self, instances):
        return {i: self.readings.get(i) for i in instances}


class _Compute:
    def __init__(self):
        self.native = _Driver()

    def driver(self, environment):
        if environment != "native":
            raise RuntimeError("no %s driver" % environment)
        return self.native


def test_cpu_and_memory_per_function_are_sampled_shown_and_monitored():
    from drivers.compute.usage import Usage
    from agent.engine.operational import function_state
    from agent.engine.usage import FunctionUsage
    from agent.model.deployed import DeployedFunction
    engine, alarms, events = made()
    compute = _Compute()
    clock = [100.0]
    engine.usage = FunctionUsage(compute, clock=lambda: clock[0])
    graph = Deployed("cpu-percent > 50, memory-mb >= 100", ())
    graph.functions = {"fw": _Function("cnc-fw"), "vm": _Function("cnc-vm", "kvm")}
    engine.deployed = {"g1": graph}
    compute.native.readings["cnc-fw"] = Usage(10.0, 50 << 20)
    alarms.sample_once()
    # one sample: memory only (CPU needs two); nothing holds
    assert engine.usage.figures("g1", "fw") == {"memory-mb": 50.0}
    assert engine.usage.figures("g1", "vm") == {}        # its driver failed: nothing
    assert events == []
    clock[0] += 2.0
    compute.native.readings["cnc-fw"] = Usage(11.5, 150 << 20)     # 1.5 s of CPU in 2 s
    alarms.sample_once()
    assert engine.usage.figures("g1", "fw") == {"memory-mb": 150.0, "cpu-percent": 75.0}
    assert sorted(e.body["resource"].rsplit("] ", 1)[1] for e in events) == [
        "cpu-percent > 50", "memory-mb >= 100"]
    assert "cpu-percent is 75 (cpu-percent > 50)" in " ".join(e.body["text"] for e in events)
    # shown in the function's state, as composer-sffg decimal64 leaves
    deployed = DeployedFunction(id="fw", instance="cnc-fw", environment="native",
                                template="t", image="i")
    engine.compute = type("C", (), {"status": {}})()
    state = function_state(engine, "g1", deployed)
    assert (state["cpu-percent"], state["memory-mb"]) == ("75.0", "150.0")
    # the CPU calms down, the memory stays: the CPU alarm clears alone
    clock[0] += 2.0
    compute.native.readings["cnc-fw"] = Usage(11.6, 150 << 20)
    alarms.sample_once()
    assert bodies(events)[2:] == [("monitoring-threshold", True)]
    assert events[2].body["resource"].endswith("cpu-percent > 50")
    # a process that exited drops the CPU total: 0 %, never negative
    clock[0] += 2.0
    compute.native.readings["cnc-fw"] = Usage(1.0, 10 << 20)
    alarms.sample_once()
    assert engine.usage.figures("g1", "fw") == {"memory-mb": 10.0, "cpu-percent": 0.0}
    assert [b for b in bodies(events)[3:]] == [("monitoring-threshold", True)]
    # the function is gone: its figures too
    engine.deployed = {}
    alarms.sample_once()
    assert engine.usage.figures("g1", "fw") == {}


def test_resources_crossing_a_step_are_domain_changes():
    samples = iter([(41.0, 5.0), (45.0, 9.9), (50.5, 9.9), (50.5, 12.0), (39.0, 0.0),
                    (39.5, 0.5)])
    events = []
    alarms = Alarms(Engine(), events.append, sample=lambda: next(samples),
                    resource_step=10)
    leaves = []
    for _ in range(6):
        alarms.sample_once()
        leaves.append(sorted(c.path.rpartition("/")[2] for e in events for c in e.changes))
        del events[:]
    assert leaves == [[], [], ["memory-free"], ["cpu-load"], ["cpu-load", "memory-free"], []]
    quiet = Alarms(Engine(), events.append, sample=lambda: (90.0, 90.0))
    quiet.sample_once()
    quiet.sample_once()
    assert events == []                                  # no step, no threshold: nothing


def test_the_step_events_are_domain_events():
    samples = iter([(1.0, 1.0), (30.0, 1.0)])
    events = []
    alarms = Alarms(Engine(), events.append, sample=lambda: next(samples), resource_step=5)
    alarms.sample_once()
    alarms.sample_once()
    assert [(e.kind, [(c.datastore, c.path) for c in e.changes]) for e in events] == [
        ("composer-domain:domain",
         [("operational", "/composer-domain:domain/resources/state/memory-free")])]
