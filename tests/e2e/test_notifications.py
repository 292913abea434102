"""Notifications from a real agent on a real node (private OVS, namespaces, traffic): a
graph's deployment (deploying, then running, its function running with the chosen
implementation), a fault the agent repairs (degraded, then running again), its removal;
the domain events of a vlan SAP (in the agent's log: they carry no notification)."""

import subprocess
import time

import ncclient.transport.session
import pytest
from lxml import etree

from agent.tools.graphxml import GraphXml, config, delete_graph, firewall_chain
from tests.e2e.node import Node, eventually
from tests.e2e.test_faults import _instance

ncclient.transport.session.TICK = 0.001

NOTIF = "urn:ietf:params:xml:ns:netconf:notification:1.0"
SFFG = "urn:composer-nc:yang:composer-sffg"


@pytest.fixture(scope="module")
def node(session_tmp):
    extra = "[repair]\nbackoff-ms = 100\nbackoff-max-ms = 1000\n"
    with Node("n", session_tmp, {"eth1": "10.60.0.1/24", "eth2": "10.60.0.2/24"},
              prefix_suffix="n", extra_config=extra) as n:
        yield n


class Status:
    def __init__(self, notification):
        self.arrived = time.monotonic()
        content = [e for e in notification.notification_ele
                   if etree.QName(e).localname != "eventTime"][0]
        self.name = etree.QName(content).localname
        self.content = content

    def get(self, leaf):
        text = self.content.findtext("{%s}%s" % (SFFG, leaf))
        return text.rpartition(":")[2] if leaf.endswith(("status", "environment")) and text \
            else text

    def __repr__(self):
        return "<%s %s %s>" % (self.name, self.get("function-id") or self.get("graph-id"),
                               self.get("status"))


def subscribed(node):
    m = node.netconf()
    m.dispatch(etree.fromstring(
        '<create-subscription xmlns="%s"><filter type="subtree">'
        '<graph-status-change xmlns="%s"/><function-status-change xmlns="%s"/>'
        '</filter></create-subscription>' % (NOTIF, SFFG, SFFG)))
    return m


def statuses(m, until, timeout=30.0, make=Status) -> list:
    """The status notifications received until until(received) holds (each as make
    makes it of the notification)."""
    out: list = []
    deadline = time.monotonic() + timeout
    while not until(out):
        left = deadline - time.monotonic()
        assert left > 0, "only %s" % out
        notification = m.take_notification(timeout=left)
        assert notification is not None, "only %s" % out
        out.append(make(notification))
    return out


def graph_steps(received, gid="g1"):
    return [s.get("status") for s in received
            if s.name == "graph-status-change" and s.get("graph-id") == gid]


def function_steps(received, fid="fw"):
    return [s.get("status") for s in received
            if s.name == "function-status-change" and s.get("function-id") == fid]


def test_deploy_fault_repair_and_removal_are_notified(node):
    with subscribed(node) as m, node.netconf() as c:
        c.edit_config(target="candidate", config=config(firewall_chain("g1")))
        c.commit()
        replied = time.monotonic()
        got = statuses(m, lambda r: "running" in graph_steps(r) and any(
            s.name == "function-status-change" for s in r))
        assert graph_steps(got) == ["deploying", "running"]
        running = next(s for s in got if s.get("status") == "running"
                       and s.name == "graph-status-change")
        assert running.arrived - replied < 1.0
        assert running.get("previous-status") == "deploying"
        assert running.get("graph-lsi") and running.get("deployed-at")
        function = next(s for s in got if s.name == "function-status-change")
        assert (function.get("function-id"), function.get("status"),
                function.get("implementation"), function.get("execution-environment")) == (
            "fw", "running", "native-firewall", "native")
        assert node.hosts["eth1"].ping(node.hosts["eth2"].ip)

        # a fault the converger repairs: degraded with the reason, then running again
        subprocess.run(["ip", "netns", "del", _instance(node)], check=True)
        got = statuses(m, lambda r: graph_steps(r)[-1:] == ["running"] and
                       function_steps(r)[-1:] == ["running"])
        steps = graph_steps(got)
        assert steps[0] == "degraded" and steps[-1] == "running", got
        degraded = next(s for s in got if s.name == "graph-status-change")
        assert "function fw" in degraded.get("status-reason")
        repaired = [s for s in got if s.name == "graph-status-change"][-1]
        assert repaired.get("repair-count") == "1"
        assert function_steps(got)[0] == "degraded"
        # what <get> shows then is what the last notification said
        reply = etree.fromstring(c.get(filter=("subtree", '<service-graphs xmlns="%s"/>'
                                               % SFFG)).xml.encode())
        assert reply.findtext(".//{%s}service-graph/{%s}state/{%s}repair-count"
                              % (SFFG, SFFG, SFFG)) == "1"
        assert node.hosts["eth1"].ping(node.hosts["eth2"].ip)

        c.edit_config(target="candidate", config=delete_graph("g1"))
        c.commit()
        got = statuses(m, lambda r: "removed" in graph_steps(r))
        assert graph_steps(got) == ["removing", "removed"]
        assert [(s.get("function-id"), s.get("status")) for s in got
                if s.name == "function-status-change"] == [("fw", "removed")]


def test_a_vlan_sap_changes_the_free_vlans_of_its_interface(node):
    g = GraphXml("gv")
    g.sap_vlan("v", "eth1", 42).sap_interface("wan", "eth2")
    g.bidirectional("r", "v", "wan")
    mark = node.log.stat().st_size
    with node.netconf() as c:
        c.edit_config(target="candidate", config=config(g))
        c.commit()
        hint = "endpoint[name='eth1']/free-vlans"
        assert eventually(lambda: hint in node.log.read_text()[mark:], 5)
        line = next(line for line in node.log.read_text()[mark:].splitlines()
                    if hint in line)
        assert "composer-domain:domain" in line
        mark = node.log.stat().st_size
        c.edit_config(target="candidate", config=delete_graph("gv"))
        c.commit()
        assert eventually(lambda: hint in node.log.read_text()[mark:], 5)
