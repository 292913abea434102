"""A commit that libyang refuses after the engine's check began deploying it, on the real
daemon over NETCONF: what the check began is undone before the error is answered.

The engine's check of a commit runs while libyang validates the configuration, and begins
the deployment with the steps no traffic sees (a new function created, started, its ports
attached). Here libyang takes over a second to refuse (a fixture module whose `must`
compares every entry of a list with every other, and which the engine never reads), so the
check has begun by then. The node must be left exactly as it was: the same namespaces,
vSwitch ports, bridges, flows and processes, the journal's transaction closed, the graph's
status unchanged, the prepared-slot filler running; and the next commit works.
"""

import json
from pathlib import Path

import ncclient.transport.session
import pytest
from lxml import etree
from ncclient.operations.rpc import RPCError

from agent.engine.journal import Journal
from agent.tools.graphxml import NC_NS, config, firewall_chain, service_graphs
from tests.e2e.node import Node, eventually, resources_diff

TEST_YANG = Path(__file__).resolve().parents[1] / "yang"
SLOW_NS = "urn:composer-nc:test:nc-slow-check"
SFFG = {"s": "urn:composer-nc:yang:composer-sffg"}
# Entries of the slow list: libyang's check costs about 2 us per pair (800: over a second).
ENTRIES = 800


@pytest.fixture(scope="module")
def node(session_tmp):
    with Node("r", session_tmp, {"eth1": "10.14.0.1/24", "eth2": "10.14.0.2/24"},
              prefix_suffix="r", spare_slots=1, yang_dirs=[TEST_YANG],
              yang_modules=["nc-slow-check"]) as n:
        yield n


@pytest.fixture(autouse=True)
def fast_client(monkeypatch):
    # ncclient polls its socket every 0.1 s: the last test needs its requests back to back.
    monkeypatch.setattr(ncclient.transport.session, "TICK", 0.001)


def slow_list(duplicate: bool) -> str:
    """The slow list; with duplicate, its last two entries have the same value (refused)."""
    values = [min(i, ENTRIES - 2) if duplicate else i for i in range(ENTRIES)]
    return '<slow xmlns="%s">%s</slow>' % (SLOW_NS, "".join(
        "<entry><name>e%d</name><value>%d</value></entry>" % (i, v)
        for i, v in enumerate(values)))


def edit(*graphs, extra: str = "") -> str:
    return '<config xmlns="%s">%s%s</config>' % (NC_NS, service_graphs(*graphs), extra)


def chain_with(*functions):
    """g1: lan -- fw -- wan, plus unconnected functions (id, capability, port count)."""
    graph = firewall_chain("g1")
    for fid, capability, ports in functions:
        graph.function(fid, capability, *("p%d" % i for i in range(ports)))
    return graph


def status(m, graph_id="g1") -> str:
    reply = m.get(filter=("subtree", '<service-graphs xmlns="%s"><service-graph><id>%s</id>'
                                     "</service-graph></service-graphs>" % (SFFG["s"], graph_id)))
    found = etree.fromstring(reply.xml.encode()).xpath(
        "//s:service-graph/s:state/s:status/text()", namespaces=SFFG)
    return found[0].split(":")[-1] if found else ""


def last_transaction(node) -> list:
    """The journal's records of its last transaction."""
    lines = (node.dir / "state" / "engine" / "journal.log").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    txn = [r for r in records if r["event"] == "begin"][-1]["txn"]
    return [r for r in records if r["txn"] == txn]


def slots(node) -> list:
    """The prepared slots: their ports are tagged spare (a function that took a slot keeps
    its namespace's name, but its ports are retagged)."""
    ports = node.ovs("ovs-vsctl", "--bare", "--columns=name", "find", "Port",
                     "external_ids:composer-role=spare").split()
    return sorted({name.rsplit("p", 1)[0] for name in ports
                   if name.startswith(node.resource_prefix + "w")})


def refuse(m, node) -> None:
    """Commit the candidate and expect libyang's refusal, after the engine's check began."""
    with pytest.raises(RPCError, match="two entries have the same value"):
        m.commit()
    records = last_transaction(node)
    assert records[-1]["event"] == "rolled-back", records
    done = [r["step"] for r in records if r["event"] == "done"]
    # the check had begun the deployment when libyang refused (else this test proves nothing)
    assert any(step.startswith("create-function") for step in done), records


def test_a_commit_libyang_refuses_leaves_the_node_as_it_was(node):
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    journal = Journal(node.dir / "state" / "engine" / "journal.log")
    with node.netconf() as m:
        m.edit_config(target="candidate", config=config(firewall_chain("g1")))
        m.commit()
        # g1's prepared slot (2 ports) is made once the commits pause; then nothing moves
        assert eventually(lambda: len(slots(node)) == 1, 15), node.node_resources()["netns"]
        node.settle()
        before = node.node_resources()
        assert status(m) == "running"
        assert h1.ping(h2.ip)

        # a 3-port bridge does not fit the slot: the check creates and starts it
        m.edit_config(target="candidate",
                      config=edit(chain_with(("br", "bridge", 3)), extra=slow_list(True)))
        refuse(m, node)
        actual = node.resources_once_settled(before)
        assert actual == before, resources_diff(before, actual)
        assert journal.interrupted() == set()
        assert status(m) == "running"
        assert h1.ping(h2.ip)

        # the next commit works: the bridge is deployed
        m.discard_changes()
        m.edit_config(target="candidate", config=edit(chain_with(("br", "bridge", 3)),
                                                      extra=slow_list(False)))
        m.commit()
        assert status(m) == "running"
        assert journal.interrupted() == set()
        assert h1.ping(h2.ip)
        assert len(node.node_resources()["netns"]) == len(before["netns"]) + 1


def test_the_slot_filler_runs_again_after_a_refused_commit(node):
    """The check pauses the filler (a slot its plan takes must stay until apply()); the
    refusal resumes it: a slot taken by the commit before is made again."""
    with node.netconf() as m:
        m.edit_config(target="candidate", config=config(firewall_chain("g1"), operation="replace"))
        m.commit()
        assert eventually(lambda: len(slots(node)) == 1, 15)
        node.settle()
        # The candidate: fw2 (it takes the slot), a 3-port bridge and the refused list.
        m.edit_config(target="candidate",
                      config=edit(chain_with(("fw2", "firewall", 2), ("br", "bridge", 3)),
                                  extra=slow_list(True)))
        # Running gets fw2 alone, which takes the slot: the filler makes another 0.5 s
        # after this commit, unless the refused commit's check pauses it first.
        m.edit_config(target="running", config=edit(chain_with(("fw2", "firewall", 2))))
        refuse(m, node)
        assert slots(node) == [], "the filler ran before the refused commit began"
        assert eventually(lambda: len(slots(node)) == 1, 15), \
            "no slot is prepared after the refused commit: the filler stays paused"
        m.discard_changes()
