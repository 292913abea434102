"""kill -9 during a deploy, at 20 random points: after a restart the node converges to
running, with no orphan (bridge, port, flow, namespace, link or process). Each kill is
timed from the moment the deploy's transaction begins (its journal record), at a random
point within one and a half times what a deploy takes; the journal then shows where the
kill landed: a good share must land in the middle of the transaction (begun, not ended),
or the test would prove nothing about recovery."""

import json
import random
import threading
import time

from ncclient.operations.rpc import RPCError
from lxml import etree

from agent.engine.journal import Journal
from agent.tools.graphxml import GraphXml, config, delete_graph
from tests.e2e.node import Node, resources_diff

SFFG = {"s": "urn:composer-nc:yang:composer-sffg"}
ATTEMPTS = 20
# Kills that must land in the middle of the deploy's transaction (begun, not ended).
MID_DEPLOY = ATTEMPTS // 4


def _graph():
    g = GraphXml("g1")
    for i in range(4):
        g.function("fw%d" % i, "firewall", "lan", "wan")
    g.sap_interface("lan", "eth1").sap_interface("wan", "eth2")
    g.bidirectional("a", "lan", "fw0:lan")
    for i in range(3):
        g.bidirectional("m%d" % i, "fw%d:wan" % i, "fw%d:lan" % (i + 1))
    g.bidirectional("z", "fw3:wan", "wan")
    return g


def _running_graphs(m):
    running = etree.fromstring(m.get_config(source="running").xml.encode())
    return running.xpath("//s:service-graph/s:id/text()", namespaces=SFFG)


def _records(path) -> list:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _begun(path) -> list:
    """The journal's begin records, in order."""
    return [r for r in _records(path) if r["event"] == "begin"]


def _wait_for_begin(path, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(_begun(path)) <= count:
        assert time.monotonic() < deadline, "the deploy never began"
        time.sleep(0.005)


def _commit_quietly(node, text, done):
    try:
        with node.netconf(timeout=60) as m:
            m.edit_config(target="candidate", config=text)
            m.commit()
    except Exception:   # the agent is killed under it: any error is expected
        pass
    finally:
        done.set()


def test_kill_9_at_random_points_of_a_deploy_converges(session_tmp):
    rng = random.Random(20261124)
    with Node("k", session_tmp, {"eth1": "10.40.0.1/24", "eth2": "10.40.0.2/24"},
              prefix_suffix="k") as node:
        h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
        clean = node.node_resources(port_names=True)
        path = node.dir / "state" / "engine" / "journal.log"
        # a clean deploy: how long its transaction takes (begin to end in the journal), and
        # what the node looks like with the graph
        with node.netconf() as m:
            m.edit_config(target="candidate", config=config(_graph()))
            m.commit()
            node.settle()
            begin = _begun(path)[-1]
            end = [r for r in _records(path) if r["txn"] == begin["txn"]][-1]
            assert end["event"] == "commit"
            duration = end["time"] - begin["time"]
            deployed = node.node_resources(port_names=True)
            assert h1.ping(h2.ip)
            m.edit_config(target="candidate", config=delete_graph("g1"))
            m.commit()
        assert node.resources_once_settled(clean, port_names=True) == clean

        journal = Journal(path)
        outcomes, mid_deploy = [], 0
        for attempt in range(ATTEMPTS):
            done = threading.Event()
            worker = threading.Thread(target=_commit_quietly,
                                      args=(node, config(_graph()), done))
            begun = len(_begun(path))
            worker.start()
            _wait_for_begin(path, begun)
            time.sleep(rng.uniform(0, duration * 1.5))
            node.kill_agent()
            worker.join(60)
            interrupted = journal.interrupted()
            assert interrupted <= {"g1"}
            mid_deploy += bool(interrupted)
            node.start_agent()
            with node.netconf() as m:
                graphs = _running_graphs(m)
                # the kernel removes the vSwitch ends of the namespaces a recovery deleted
                # in the background
                actual = node.resources_once_settled(deployed if graphs == ["g1"] else clean,
                                                     port_names=True)
                if graphs == ["g1"]:
                    assert actual == deployed, "attempt %d:\n%s" % (
                        attempt, resources_diff(deployed, actual))
                    assert h1.ping(h2.ip), "attempt %d: no traffic after recovery" % attempt
                    outcomes.append("deployed" + (" (killed mid-deploy)" if interrupted else ""))
                    m.edit_config(target="candidate", config=delete_graph("g1"))
                    m.commit()
                else:
                    assert graphs == []
                    assert actual == clean, "attempt %d:\n%s" % (
                        attempt, resources_diff(clean, actual))
                    outcomes.append("empty" + (" (killed mid-deploy)" if interrupted else ""))
                try:
                    m.discard_changes()
                except RPCError:
                    pass
            assert node.resources_once_settled(clean, port_names=True) == clean, \
                "attempt %d" % attempt
        print("a deploy takes %.2f s; outcomes after kill -9:" % duration, outcomes)
        assert mid_deploy >= MID_DEPLOY, outcomes
