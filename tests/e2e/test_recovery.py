"""kill -9 during a deploy, at 20 random points: after a restart the node converges to
running, with no orphan (bridge, port, flow, namespace, link or process)."""

import random
import threading
import time

from ncclient.operations.rpc import RPCError
from lxml import etree

from agent.tools.graphxml import GraphXml, config, delete_graph
from tests.e2e.node import Node, resources_diff

SFFG = {"s": "urn:composer-nc:yang:composer-sffg"}


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
        # a clean deploy: how long it takes, and what the node looks like with the graph
        with node.netconf() as m:
            started = time.monotonic()
            m.edit_config(target="candidate", config=config(_graph()))
            m.commit()
            duration = time.monotonic() - started
            deployed = node.node_resources(port_names=True)
            assert h1.ping(h2.ip)
            m.edit_config(target="candidate", config=delete_graph("g1"))
            m.commit()
        assert node.resources_once_settled(clean, port_names=True) == clean

        outcomes = []
        for attempt in range(20):
            done = threading.Event()
            worker = threading.Thread(target=_commit_quietly,
                                      args=(node, config(_graph()), done))
            worker.start()
            time.sleep(rng.uniform(0.05, duration * 1.2 + 0.3))
            node.kill_agent()
            worker.join(60)
            node.start_agent()
            with node.netconf() as m:
                graphs = _running_graphs(m)
                actual = node.node_resources(port_names=True)
                if graphs == ["g1"]:
                    assert actual == deployed, "attempt %d:\n%s" % (
                        attempt, resources_diff(deployed, actual))
                    assert h1.ping(h2.ip), "attempt %d: no traffic after recovery" % attempt
                    outcomes.append("deployed")
                    m.edit_config(target="candidate", config=delete_graph("g1"))
                    m.commit()
                else:
                    assert graphs == []
                    assert actual == clean, "attempt %d:\n%s" % (
                        attempt, resources_diff(clean, actual))
                    outcomes.append("empty")
                try:
                    m.discard_changes()
                except RPCError:
                    pass
            assert node.resources_once_settled(clean, port_names=True) == clean, \
                "attempt %d" % attempt
        print("outcomes after kill -9:", outcomes)
