"""Tenants on a real node (agent subprocess, private OVS, host namespaces): an operator
deploys two graphs, `composer-agent tenant add` gives one to alice; alice's ncclient
session sees only her graph in get, get-config and get-data, never the node's management
address, edits her graph, and is access-denied when she touches the other one, which keeps
running untouched (same OVS resources, traffic through it)."""

import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree
from ncclient import manager
from ncclient.operations.rpc import RPCError

from agent.tools.graphxml import config, delete_graph, firewall_chain
from tests.e2e.node import Node

SFFG = "urn:composer-nc:yang:composer-sffg"
DOMAIN = "urn:composer-nc:yang:composer-domain"
NMDA = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
BASE = "urn:ietf:params:xml:ns:netconf:base:1.0"


@pytest.fixture(scope="module")
def node(session_tmp):
    hosts = {"eth1": "10.12.0.1/24", "eth2": "10.12.0.2/24",
             "eth3": "10.12.0.3/24", "eth4": "10.12.0.4/24"}
    with Node("t", session_tmp, hosts, prefix_suffix="t") as n:
        yield n


def graph_ids(tree) -> set:
    return {g.findtext("{%s}id" % SFFG) for g in tree.iter("{%s}service-graph" % SFFG)}


def test_a_tenant_sees_and_changes_only_its_graph(node):
    h1, h2, h3, h4 = (node.hosts[i] for i in ("eth1", "eth2", "eth3", "eth4"))
    with node.netconf() as admin:
        admin.edit_config(target="candidate", config=config(
            firewall_chain("ta", "eth1", "eth2"), firewall_chain("tb", "eth3", "eth4")))
        admin.commit()
        admin.edit_config(target="running", config=(
            '<config xmlns="%s"><domain xmlns="%s"><config><management-address>192.0.2.77'
            '</management-address></config></domain></config>' % (BASE, DOMAIN)))
        assert h1.ping(h2.ip) and h3.ping(h4.ip)
        out = subprocess.run([sys.executable, "-m", "agent.cli", "--config",
                              str(node.dir / "agent.toml"), "tenant", "add", "alice", "ta"],
                             capture_output=True, text=True, timeout=60,
                             cwd=Path(__file__).resolve().parents[2])
        assert out.returncode == 0, out.stderr
        key = node.dir / "state" / "users" / "alice" / "id_ed25519"
        assert str(key) in out.stdout
        before = node.node_resources()
        with manager.connect(host="127.0.0.1", port=node.port, username="alice",
                             key_filename=str(key), hostkey_verify=False, allow_agent=False,
                             look_for_keys=False, timeout=120) as alice:
            rpc = ('<get-data xmlns="%s" xmlns:ds="urn:ietf:params:xml:ns:yang:ietf-datastores">'
                   '<datastore>ds:operational</datastore></get-data>' % NMDA)
            replies = [alice.get().data_ele, alice.get_config(source="running").data_ele,
                       etree.fromstring(alice.dispatch(etree.fromstring(rpc)).xml.encode())]
            for reply in replies:
                assert graph_ids(reply) == {"ta"}, etree.tostring(reply)[:2000]
                assert b"192.0.2.77" not in etree.tostring(reply)
            # the domain description is there (functional capabilities, the big switch)
            assert replies[0].find("{%s}domain" % DOMAIN) is not None
            # her graph's running state, read as an operator would
            status = replies[0].findtext(".//{%s}service-graph/{%s}state/{%s}status"
                                         % (SFFG, SFFG, SFFG))
            assert status and status.endswith("running")
            for bad in (delete_graph("tb"), config(firewall_chain("tb", "eth3", "eth4",
                                                                  priority=20))):
                with pytest.raises(RPCError) as err:
                    alice.edit_config(target="candidate", config=bad)
                    alice.commit()
                assert err.value.tag == "access-denied"
                assert "service-graph[" in err.value.path and "tb" in err.value.path
            alice.discard_changes()
            # nothing changed on the node: bridges, ports, flows, namespaces
            assert node.node_resources() == before
            # what she may do: change her own graph
            alice.edit_config(target="candidate", config=config(firewall_chain(
                "ta", "eth1", "eth2", parameters=["block-tcp-dst=5202"])))
            alice.commit()
        # the other graph: unchanged, on the node too
        running = admin.get_config(source="running").data_ele
        assert graph_ids(running) == {"ta", "tb"}
        assert b"<priority>20</priority>" not in etree.tostring(running)
        assert h3.ping(h4.ip) and h1.ping(h2.ip)
        for gid in ("ta", "tb"):
            admin.edit_config(target="candidate", config=delete_graph(gid))
        admin.commit()
