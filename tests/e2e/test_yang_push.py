"""YANG-push on-change from a real agent on a real node (private OVS, namespaces): what
the agent itself changes, not only configuration, is pushed: a graph's status when it is
deployed (within a second of the commit reply), the free VLAN ids of an interface when
a vlan SAP is committed."""

import time

import ncclient.transport.session
import pytest
from lxml import etree

from agent.tools.graphxml import GraphXml, config, delete_graph, firewall_chain
from tests.e2e.node import Node

ncclient.transport.session.TICK = 0.001

NOTIF = "urn:ietf:params:xml:ns:netconf:notification:1.0"
SN = "urn:ietf:params:xml:ns:yang:ietf-subscribed-notifications"
YP = "urn:ietf:params:xml:ns:yang:ietf-yang-push"
DS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
SFFG = "urn:composer-nc:yang:composer-sffg"
DOMAIN = "urn:composer-nc:yang:composer-domain"


@pytest.fixture(scope="module")
def node(session_tmp):
    with Node("y", session_tmp, {"eth1": "10.61.0.1/24", "eth2": "10.61.0.2/24"},
              prefix_suffix="y") as n:
        yield n


def on_change(m, subtree: str) -> int:
    reply = m.dispatch(etree.fromstring(
        '<establish-subscription xmlns="%s" xmlns:yp="%s" xmlns:ds="%s">'
        '<yp:datastore>ds:operational</yp:datastore><yp:datastore-subtree-filter>%s'
        '</yp:datastore-subtree-filter><yp:on-change/></establish-subscription>'
        % (SN, YP, DS, subtree)))
    return int(etree.fromstring(reply.xml.encode()).findtext(".//{%s}id" % SN))


def next_update(m, name: str, timeout: float = 10.0):
    """(when it arrived, its content) of the next notification named name."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "no %s" % name
        notification = m.take_notification(timeout=left)
        assert notification is not None, "no %s" % name
        arrived = time.monotonic()
        content = [e for e in notification.notification_ele
                   if etree.QName(e).localname != "eventTime"][0]
        if etree.QName(content).localname == name:
            return arrived, content


def patch(content) -> list:
    return [(e.findtext("{%s}operation" % YP), e.findtext("{%s}target" % YP), e)
            for e in content.iterfind(".//{%s}yang-patch/{%s}edit" % (YP, YP))]


def test_a_deploy_pushes_the_running_status_within_a_second(node):
    with node.netconf() as watcher, node.netconf() as c:
        on_change(watcher, '<service-graphs xmlns="%s"><service-graph><state/>'
                           '</service-graph></service-graphs>' % SFFG)
        next_update(watcher, "push-update")             # sync-on-start: nothing deployed
        c.edit_config(target="candidate", config=config(firewall_chain("g1")))
        c.commit()
        replied = time.monotonic()
        statuses, targets = [], []
        while "running" not in statuses:
            arrived, content = next_update(watcher, "push-change-update")
            for operation, target, edit in patch(content):
                targets.append((operation, target))
                for status in edit.iter("{%s}status" % SFFG):
                    statuses.append(status.text.rpartition(":")[2])
        assert arrived - replied < 1.0, arrived - replied
        # the graphs appeared (there was none: the container is created)
        assert targets[0][0] == "create" and targets[0][1] in (
            "/composer-sffg:service-graphs", "/composer-sffg:service-graphs/service-graph=g1"), \
            targets
        assert statuses[-1] == "running", statuses
        c.edit_config(target="candidate", config=delete_graph("g1"))
        c.commit()
        gone = []
        while not any(o == "delete" for o, _ in gone):
            _, content = next_update(watcher, "push-change-update")
            gone += [(o, t) for o, t, _ in patch(content)]
        assert gone[-1] in (("delete", "/composer-sffg:service-graphs"),
                            ("delete", "/composer-sffg:service-graphs/service-graph=g1")), gone


def test_a_vlan_sap_pushes_the_free_vlans_of_its_interface(node):
    g = GraphXml("gv")
    g.sap_vlan("v", "eth1", 42).sap_interface("wan", "eth2")
    g.bidirectional("r", "v", "wan")
    with node.netconf() as watcher, node.netconf() as c:
        on_change(watcher, '<domain xmlns="%s"><big-switch><endpoints><endpoint>'
                           '<name>eth1</name><free-vlans/></endpoint></endpoints>'
                           '</big-switch></domain>' % DOMAIN)
        _, sync = next_update(watcher, "push-update")
        firsts = [r.text for r in sync.iter("{%s}first" % DOMAIN)]
        assert firsts and "43" not in firsts        # all free: one range from 1 (or 0)
        c.edit_config(target="candidate", config=config(g))
        c.commit()
        replied = time.monotonic()
        arrived, content = next_update(watcher, "push-change-update")
        assert arrived - replied < 1.0
        edits = patch(content)
        assert all(t.startswith("/composer-domain:domain/big-switch/endpoints/endpoint=eth1/"
                                "free-vlans") for _, t, _ in edits), edits
        # 42 is taken: a range now starts at 43
        assert ("create", "/composer-domain:domain/big-switch/endpoints/endpoint=eth1/"
                "free-vlans/range=43") in [(o, t) for o, t, _ in edits], edits
        c.edit_config(target="candidate", config=delete_graph("gv"))
        c.commit()
        _, content = next_update(watcher, "push-change-update")
        assert ("delete", "/composer-domain:domain/big-switch/endpoints/endpoint=eth1/"
                "free-vlans/range=43") in [(o, t) for o, t, _ in patch(content)]


def test_counters_are_sampled_once_per_dampening_period(node):
    """No event says a counter moved: with a dampening period, an on-change subscription
    that selects counters re-reads them once per period and pushes what changed."""
    with node.netconf() as watcher, node.netconf() as c:
        c.edit_config(target="candidate", config=config(firewall_chain("gc")))
        c.commit()
        reply = watcher.dispatch(etree.fromstring(
            '<establish-subscription xmlns="%s" xmlns:yp="%s" xmlns:ds="%s">'
            '<yp:datastore>ds:operational</yp:datastore><yp:datastore-subtree-filter>'
            '<service-graphs xmlns="%s"><service-graph><id>gc</id><saps><sap><state>'
            '<counters/></state></sap></saps></service-graph></service-graphs>'
            '</yp:datastore-subtree-filter><yp:on-change><yp:dampening-period>50'
            '</yp:dampening-period></yp:on-change></establish-subscription>'
            % (SN, YP, DS, SFFG)))
        assert etree.fromstring(reply.xml.encode()).findtext(".//{%s}id" % SN)
        next_update(watcher, "push-update")
        assert node.hosts["eth1"].ping(node.hosts["eth2"].ip, count=3)
        _, content = next_update(watcher, "push-change-update", timeout=5)
        targets = [t for _, t, _ in patch(content)]
        assert targets and all("/saps/sap=" in t and "/state/counters" in t
                               for t in targets), targets
        c.edit_config(target="candidate", config=delete_graph("gc"))
        c.commit()


def rule_priority(graph_id: str, rule: str, priority: int) -> str:
    """A change of one flow rule's priority (the engine reinstalls it in OVS)."""
    return ('<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><service-graphs '
            'xmlns="%s"><service-graph><id>%s</id><flow-rules><flow-rule><id>%s</id><config>'
            '<id>%s</id><priority>%d</priority></config></flow-rule></flow-rules>'
            '</service-graph></service-graphs></config>' % (SFFG, graph_id, rule, rule,
                                                            priority))


def test_twenty_subscribers_do_not_slow_a_nodes_commits(node):
    """The issue's load: 20 YANG-push on-change subscribers (running datastore, the
    service graphs; another process) on a node while a commit loop changes a deployed
    graph's flow rule (reinstalled in OVS): each subscriber gets every priority in the
    order committed, the agent's RSS stays flat, and a commit is not more than 10 %
    slower than with no subscriber (the median of the rounds' ratios of median commits,
    rounds alone and loaded interleaved). The machine is shared: a measure above the
    bound is taken again once, and the bound holds for the better of the two. Before the
    updates were shared, batched and written between the commits: +60 to +120 %."""
    from tests.e2e.netconf.test_notifications import start_subscribers
    from tests.e2e.netconf.test_yang_push import describe_slowdown, interleaved_commits
    g = GraphXml("gl")
    g.sap_interface("lan", "eth1").sap_interface("wan", "eth2")
    g.bidirectional("r", "lan", "wan")
    measures = []
    with node.netconf() as m:
        m.edit_config(target="candidate", config=config(g))
        m.commit()
        try:
            def commit(value):
                m.edit_config(target="candidate", config=rule_priority("gl", "r-fwd", value))
                m.commit()
            while len(measures) < 2 and (not measures or measures[-1]["slowdown"] >= 0.10):
                out = interleaved_commits(
                    m, commit, lambda expected: start_subscribers(
                        node.port, str(node.key_file), 20, expected, "push-graphs"),
                    rounds=9, commits=20, pid=node.agent.pid)
                measures.append(out)
                print("\n%s; agent RSS per round %s KiB; agent CPU per commit %.2f ms "
                      "alone, %.2f ms with them" % (
                          describe_slowdown("flow-rule commit", out), out["rss"],
                          out["cpu_alone"] * 1000, out["cpu_loaded"] * 1000))
                flows = str(node.node_resources()["bridges"])
                assert "priority=%d," % out["last"] in flows, flows     # it reached OVS
                assert out["rss"][-1] - out["rss"][1] < 4096, out["rss"]
        finally:
            m.edit_config(target="candidate", config=delete_graph("gl"))
            m.commit()
    best = min(measures, key=lambda out: out["slowdown"])
    assert best["slowdown"] < 0.10, describe_slowdown("flow-rule commit", best)
