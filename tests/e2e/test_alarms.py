"""Alarms from a real agent on a real node: a function whose process is killed raises
function-process-gone (a notification, and the /alarms state), and the agent's restart
of it clears the alarm (a second notification); a memory threshold raises memory-high; a
graph's monitoring expression is refused at its leaf when malformed and raises
monitoring-threshold naming the function when it holds (cleared with the graph); a
function port taken off its LSI raises port-down, cleared by the repair; per-function CPU
and memory are monitored; resources crossing a step are pushed on change."""

import os
import signal
import time

import ncclient.transport.session
import pytest
from lxml import etree
from ncclient.operations.rpc import RPCError

from agent.tools.graphxml import config, delete_graph
from tests.e2e.node import Node
from tests.e2e.test_faults import _instance, _relay_pid, commit, relay_chain
from tests.e2e.test_notifications import statuses
from tests.e2e.test_yang_push import next_update, on_change, patch

ncclient.transport.session.TICK = 0.001

NOTIF = "urn:ietf:params:xml:ns:netconf:notification:1.0"
ALARMS = "urn:composer-nc:yang:composer-alarms"
SFFG = "urn:composer-nc:yang:composer-sffg"
DOMAIN = "urn:composer-nc:yang:composer-domain"


@pytest.fixture(scope="module")
def node(session_tmp):
    extra = ("[repair]\nbackoff-ms = 100\nbackoff-max-ms = 1000\n"
             "[alarms]\nmemory-percent = 0.5\ninterval = 0.2\nresource-step = 0.01\n")
    with Node("a", session_tmp, {"eth1": "10.63.0.1/24", "eth2": "10.63.0.2/24"},
              prefix_suffix="a", extra_config=extra) as n:
        yield n


def _alarm(notification) -> dict:
    content = notification.notification_ele.find("{%s}alarm-notification" % ALARMS)
    return {e.tag.rpartition("}")[2]: e.text for e in content} if content is not None else {}


def alarm_notifications(m, until) -> list:
    return [a for a in statuses(m, lambda r: until([a for a in r if a]), make=_alarm) if a]


def listed(m) -> dict:
    reply = etree.fromstring(m.get(filter=("subtree", '<alarms xmlns="%s"/>' % ALARMS))
                             .xml.encode())
    return {a.findtext("{%s}id" % ALARMS): {e.tag.rpartition("}")[2]: e.text
                                           for e in a.find("{%s}state" % ALARMS)}
            for a in reply.iter("{%s}alarm" % ALARMS)}


def test_a_killed_function_process_raises_then_clears_an_alarm(node):
    with node.netconf() as m, node.netconf() as watcher:
        m.dispatch(etree.fromstring(
            '<create-subscription xmlns="%s"><filter type="subtree"><alarm-notification '
            'xmlns="%s"/></filter></create-subscription>' % (NOTIF, ALARMS)))
        # YANG-push on-change on the alarms of the functions
        on_change(watcher, '<alarms xmlns="%s"><alarm><state><type>function-process-gone'
                           '</type></state></alarm></alarms>' % ALARMS)
        next_update(watcher, "push-update")
        commit(node, relay_chain(), templates=True)
        pid = _relay_pid(node, _instance(node, "rl"))
        os.kill(pid, signal.SIGKILL)
        got = alarm_notifications(m, lambda r: any(
            a["type"] == "function-process-gone" and a["cleared"] == "true" for a in r))
        process = [a for a in got if a["type"] == "function-process-gone"]
        assert [a["cleared"] for a in process] == ["false", "true"], process
        raised = process[0]
        assert raised["severity"] == "major"
        assert "function[id='rl']" in raised["resource"]
        assert "exited" in raised["text"]
        pushed = []
        while not any(o == "create" for o, _, _ in pushed):
            _, content = next_update(watcher, "push-change-update")
            pushed += patch(content)
        assert any(b"function-process-gone" in etree.tostring(e) for _, _, e in pushed), pushed
        state = listed(m)[raised["id"]]
        assert state["cleared"] == "true" and state["raise-count"] == "1"
        assert state["cleared-at"] >= state["raised-at"]
        m.edit_config(target="candidate", config=delete_graph("g1"))
        m.commit()


def test_a_memory_threshold_raises_memory_high(node):
    with node.netconf() as m:
        alarms = listed(m)
        memory = [a for a in alarms.values() if a["type"] == "memory-high"]
        assert memory and memory[0]["cleared"] == "false"     # surely above 0.5 %
        assert memory[0]["severity"] == "warning"
        assert memory[0]["resource"] == "/composer-domain:domain/resources"


def test_the_monitoring_expression_raises_an_alarm_naming_the_function(node):
    with node.netconf() as m:
        m.dispatch(etree.fromstring(
            '<create-subscription xmlns="%s"><filter type="subtree"><alarm-notification '
            'xmlns="%s"/></filter></create-subscription>' % (NOTIF, ALARMS)))
        graph = relay_chain()
        graph.monitoring = "process-restarts > 0"
        commit(node, graph, templates=True)
        bad = relay_chain()
        bad.monitoring = "process-restarts > many"
        m.edit_config(target="candidate", config=config(bad))
        with pytest.raises(RPCError) as refused:
            m.commit()
        assert refused.value.tag == "invalid-value"
        assert refused.value.path.strip() == ("/sffg:service-graphs/sffg:service-graph"
                                              "[sffg:id='g1']/sffg:config/sffg:monitoring")
        m.discard_changes()
        os.kill(_relay_pid(node, _instance(node, "rl")), signal.SIGKILL)   # restarted: 1
        got = alarm_notifications(m, lambda r: any(
            a["type"] == "monitoring-threshold" for a in r))
        raised = [a for a in got if a["type"] == "monitoring-threshold"][0]
        assert raised["cleared"] == "false" and raised["severity"] == "warning"
        assert raised["resource"].endswith("function[id='rl'] process-restarts > 0")
        assert "process-restarts is 1" in raised["text"]
        assert listed(m)[raised["id"]]["cleared"] == "false"
        m.edit_config(target="candidate", config=delete_graph("g1"))
        m.commit()                                  # the graph is gone: the alarm clears
        alarm_notifications(m, lambda r: any(
            a["type"] == "monitoring-threshold" and a["cleared"] == "true" for a in r))
        assert listed(m)[raised["id"]]["cleared"] == "true"


def _function_state(m, fid="rl") -> dict:
    reply = etree.fromstring(m.get(filter=("subtree", (
        '<service-graphs xmlns="%s"><service-graph><id>g1</id><functions><function><id>%s'
        '</id><state/></function></functions></service-graph></service-graphs>'
        % (SFFG, fid)))).xml.encode())
    state = reply.find(".//{%s}function/{%s}state" % (SFFG, SFFG))
    return {e.tag.rpartition("}")[2]: e.text for e in state} if state is not None else {}


def test_cpu_and_memory_of_a_function_are_shown_and_monitored(node):
    """A real native function whose package spins a core and holds 96 MiB: <get> shows its
    cpu-percent and memory-mb, its graph's expression on them raises monitoring-threshold
    for each, and the function replaced by a calm one clears both."""
    expression = "cpu-percent > 20, memory-mb > 60"
    with node.netconf() as m:
        m.dispatch(etree.fromstring(
            '<create-subscription xmlns="%s"><filter type="subtree"><alarm-notification '
            'xmlns="%s"/></filter></create-subscription>' % (NOTIF, ALARMS)))
        busy = relay_chain(parameters=("burn", "hold-mb=96"))
        busy.monitoring = expression
        commit(node, busy, templates=True)

        def thresholds(received, cleared):
            return {a["resource"].rpartition("] ")[2] for a in received
                    if a["type"] == "monitoring-threshold" and a["cleared"] == cleared}
        conditions = {"cpu-percent > 20", "memory-mb > 60"}
        got = alarm_notifications(m, lambda r: thresholds(r, "false") == conditions)
        raised = [a for a in got if a["type"] == "monitoring-threshold"]
        assert all(a["resource"].startswith("/composer-sffg:service-graphs/service-graph"
                                            "[id='g1']/functions/function[id='rl'] ")
                   for a in raised), raised
        assert any("cpu-percent is" in a["text"] for a in raised)
        state = _function_state(m)
        assert float(state["cpu-percent"]) > 20, state
        assert 96 <= float(state["memory-mb"]) < 400, state
        calm = relay_chain()
        calm.monitoring = expression
        # the function made again without burn and hold-mb (a merge would keep them)
        m.edit_config(target="candidate", config=delete_graph("g1"))
        commit(node, calm, templates=True)
        alarm_notifications(m, lambda r: thresholds(r, "true") == conditions)
        deadline = time.monotonic() + 10
        while "memory-mb" not in (state := _function_state(m)):   # the new one's sample
            assert time.monotonic() < deadline, state
            time.sleep(0.1)
        assert float(state["memory-mb"]) < 60, state
        assert not [a for a in listed(m).values() if a["type"] == "monitoring-threshold"
                    and a["cleared"] == "false"]
        m.edit_config(target="candidate", config=delete_graph("g1"))
        m.commit()


def test_resources_crossing_a_step_are_pushed_on_change(node):
    """With resource-step 0.01 % every sample of the node's memory in use or CPU load
    crosses a step: an on-change subscription to them gets push-change-updates with no
    commit and no dampening (nothing re-reads them otherwise)."""
    with node.netconf() as watcher:
        on_change(watcher, '<domain xmlns="%s"><resources><state><memory-free/><cpu-load/>'
                           '</state></resources></domain>' % DOMAIN)
        next_update(watcher, "push-update")
        targets = set()
        for _ in range(2):
            _, content = next_update(watcher, "push-change-update", timeout=10)
            targets |= {t.rpartition("/")[2] for _, t, _ in patch(content)}
        assert targets and targets <= {"memory-free", "cpu-load"}, targets


def test_a_function_port_taken_off_its_lsi_raises_then_clears_port_down(node):
    import json
    with node.netconf() as m:
        m.dispatch(etree.fromstring(
            '<create-subscription xmlns="%s"><filter type="subtree"><alarm-notification '
            'xmlns="%s"/></filter></create-subscription>' % (NOTIF, ALARMS)))
        commit(node, relay_chain(), templates=True)
        state = json.loads((node.dir / "state" / "engine" / "deployed.json").read_text())
        graph = state["graphs"]["g1"]
        _, ifname = graph["functions"]["rl"]["ports"][0]
        node.ovs("ovs-vsctl", "del-port", graph["lsi"], ifname)
        got = alarm_notifications(m, lambda r: any(
            a["type"] == "port-down" and a["cleared"] == "true" for a in r))
        down = [a for a in got if a["type"] == "port-down"]
        assert [a["cleared"] for a in down] == ["false", "true"], down
        assert down[0]["severity"] == "major"
        assert down[0]["resource"].endswith("function[id='rl'] port %s" % ifname), down[0]
        m.edit_config(target="candidate", config=delete_graph("g1"))
        m.commit()
