"""The ZeroMQ feed of a real agent on a real node, read by pyzmq subscribers: the domain
description (RFC 7951 JSON) at once on subscribing, a new one with a higher sequence
number after a commit changes it (a vlan SAP takes a VLAN id), a graph's status on its
own topic, and a subscriber that joins late gets the current description without
waiting for a change."""

import json
import time

import pytest
import zmq

from agent.tools.graphxml import GraphXml, config, delete_graph
from tests.e2e.node import Node, free_port


@pytest.fixture(scope="module")
def node(session_tmp):
    port = free_port()
    extra = ('[publish]\nzmq = true\nzmq-endpoint = "tcp://127.0.0.1:%d"\n'
             'zmq-graph-topics = true\n' % port)
    with Node("z", session_tmp, {"eth1": "10.62.0.1/24", "eth2": "10.62.0.2/24"},
              prefix_suffix="z", extra_config=extra) as n:
        n.feed = "tcp://127.0.0.1:%d" % port
        yield n


class Subscriber:
    def __init__(self, endpoint: str, topic: bytes):
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self.socket.setsockopt(zmq.SUBSCRIBE, topic)

    def receive(self, timeout: float = 5.0):
        """(topic, seq, body) of the next message, None when none comes in time."""
        if not self.socket.poll(int(timeout * 1000)):
            return None
        topic, seq, body = self.socket.recv_multipart()
        return topic.decode(), int(seq), json.loads(body)

    def close(self):
        self.socket.close(0)
        self.context.term()


def free_vlans(description: dict, interface: str) -> list:
    endpoints = description["composer-domain:domain"]["big-switch"]["endpoints"]["endpoint"]
    ranges = next(e for e in endpoints if e["name"] == interface)["free-vlans"]["range"]
    return [(r["state"]["first"], r["state"]["last"]) for r in ranges]


def test_the_description_at_once_then_on_every_change(node):
    topic = "composer/%s/" % node.netns
    sub = Subscriber(node.feed, topic.encode())
    try:
        first = sub.receive()
        assert first is not None, "no welcome"
        assert first[0] == topic + "domain"
        assert free_vlans(first[2], "eth1") and all(
            not (a <= 42 <= b) or (a, b) for a, b in free_vlans(first[2], "eth1"))
        g = GraphXml("gz")
        g.sap_vlan("v", "eth1", 42).sap_interface("wan", "eth2")
        g.bidirectional("r", "v", "wan")
        with node.netconf() as c:
            c.edit_config(target="candidate", config=config(g))
            c.commit()
            replied = time.monotonic()
            received = []
            while not any(t.endswith("/domain") and s > first[1] for t, s, _ in received):
                message = sub.receive()
                assert message is not None, received
                received.append(message)
            assert time.monotonic() - replied < 2.0
            seqs = [s for _, s, _ in received]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
            domain = received[-1][2]
            assert not any(a <= 42 <= b for a, b in free_vlans(domain, "eth1"))
            statuses = [b["ietf-restconf:notification"]["composer-sffg:graph-status-change"]
                        ["status"] for t, _, b in received if t == topic + "graph/gz"]
            assert statuses and statuses[-1].endswith("running"), received

            # a late subscriber gets the current description at once
            late = Subscriber(node.feed, (topic + "domain").encode())
            try:
                welcome = late.receive(timeout=3)
                assert welcome is not None
                assert welcome[1] == received[-1][1] and welcome[2] == domain
            finally:
                late.close()
            c.edit_config(target="candidate", config=delete_graph("gz"))
            c.commit()
            while True:
                message = sub.receive()
                assert message is not None
                if message[0].endswith("/domain") and message[1] > received[-1][1]:
                    break
            assert any(a <= 42 <= b for a, b in free_vlans(message[2], "eth1"))
    finally:
        sub.close()
