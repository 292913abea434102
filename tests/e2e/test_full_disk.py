"""A full state disk (a small tmpfs as the agent's state directory): a commit that cannot
be made durable is refused with resource-denied and changes nothing on the node; after
kill -9 and a restart on the same full disk the node and running are the last
acknowledged ones. The disk filling while a commit deploys: whatever the commit answered,
the restart shows that."""

import os
import subprocess
import threading
import time
from contextlib import contextmanager

import pytest
from lxml import etree
from ncclient.operations.rpc import RPCError

from agent.tools.graphxml import config, firewall_chain
from tests.e2e.node import Node, eventually, resources_diff

SFFG = {"s": "urn:composer-nc:yang:composer-sffg"}
HOSTS = {"eth1": "10.41.0.1/24", "eth2": "10.41.0.2/24"}


@contextmanager
def tmpfs_node(session_tmp, tag, prefix_suffix):
    """A Node whose state directory is an 8 MiB tmpfs of its own (unmounted after)."""
    node = Node(tag, session_tmp, HOSTS, prefix_suffix=prefix_suffix)
    state = node.dir / "state"
    state.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(state)],
                   check=True)
    try:
        node.create()
        node.start_agent()
        yield node
    finally:
        node.destroy()
        subprocess.run(["umount", "--lazy", str(state)], check=True)


def fill(directory) -> None:
    """Write a file until the file system has no byte left."""
    with open(directory / "filler", "wb", buffering=0) as stream:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    stream.write(b"\0" * size)
            except OSError:
                pass


def free(directory) -> None:
    (directory / "filler").unlink()


def _graphs(m, source="running") -> list:
    reply = m.get_config(source=source) if source else m.get()
    return sorted(etree.fromstring(reply.xml.encode()).xpath(
        "//s:service-graph/s:id/text()", namespaces=SFFG))


def _two_graphs():
    return config(firewall_chain("g1"), firewall_chain("big", priority=11))


def _assert_unchanged(node, m, acknowledged, resources):
    actual = node.resources_once_settled(resources, port_names=True)
    assert actual == resources, resources_diff(resources, actual)
    assert m.get_config(source="running").data_xml == acknowledged
    assert _graphs(m, None) == ["g1"]         # <get>: no "big", failed or otherwise
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    assert h1.ping(h2.ip)


def test_a_commit_the_full_disk_refuses_changes_nothing_and_survives_kill_9(session_tmp):
    with tmpfs_node(session_tmp, "dk", "d") as node:
        state = node.dir / "state"
        with node.netconf() as m:
            m.edit_config(target="candidate", config=config(firewall_chain("g1")))
            m.commit()
            acknowledged = m.get_config(source="running").data_xml
            resources = node.node_resources(port_names=True)
            fill(state)
            m.edit_config(target="candidate", config=_two_graphs())
            with pytest.raises(RPCError) as refused:
                m.commit()
            assert (refused.value.tag, refused.value.type) == (
                "resource-denied", "application"), refused.value.message
            assert "No space left on device" in refused.value.message
            _assert_unchanged(node, m, acknowledged, resources)
        node.kill_agent()
        node.start_agent()                      # on the disk still full
        with node.netconf() as m:
            _assert_unchanged(node, m, acknowledged, resources)
            free(state)
            m.edit_config(target="candidate", config=_two_graphs())
            m.commit()
            acknowledged = m.get_config(source="running").data_xml
        resources = node.node_resources(port_names=True)
        node.kill_agent()
        node.start_agent()
        with node.netconf() as m:
            assert m.get_config(source="running").data_xml == acknowledged
            assert _graphs(m) == ["big", "g1"]
        actual = node.resources_once_settled(resources, port_names=True)
        assert actual == resources, resources_diff(resources, actual)


def test_the_disk_filling_during_a_commit_leaves_the_answer_true_after_kill_9(session_tmp):
    """The disk fills while the engine deploys: the files a commit needs were staged
    before, so it is most often answered <ok/>; its journal's commit line may still find
    no room, and then it is refused. Either way, a restart shows what was answered."""
    with tmpfs_node(session_tmp, "dl", "l") as node:
        state = node.dir / "state"
        journal = state / "engine" / "journal.log"
        with node.netconf() as m:
            m.edit_config(target="candidate", config=config(firewall_chain("g1")))
            m.commit()
            before = m.get_config(source="running").data_xml
            resources_before = node.node_resources(port_names=True)
            m.edit_config(target="candidate", config=_two_graphs())
            begins = journal.read_text().count('"event": "begin"')
            outcome = {}

            def commit():
                try:
                    m.commit()
                    outcome["ok"] = True
                except RPCError as exc:
                    outcome["error"] = exc
            worker = threading.Thread(target=commit)
            worker.start()
            # the transaction has begun: its files are staged, its steps run
            assert eventually(lambda: journal.read_text().count('"event": "begin"') > begins,
                              30, 0.005)
            fill(state)
            worker.join(120)
            if "error" in outcome:
                assert outcome["error"].tag == "resource-denied", outcome["error"]
                expected, graphs = before, ["g1"]
            else:
                expected, graphs = m.get_config(source="running").data_xml, ["big", "g1"]
            resources = node.node_resources(port_names=True) if "ok" in outcome \
                else resources_before
        node.kill_agent()
        node.start_agent()
        with node.netconf() as m:
            assert m.get_config(source="running").data_xml == expected
            assert _graphs(m) == graphs
            assert _graphs(m, None) == graphs
        actual = node.resources_once_settled(resources, port_names=True)
        assert actual == resources, resources_diff(resources, actual)
        free(state)
        print("commit while the disk filled:", "ok" if "ok" in outcome else "refused")
