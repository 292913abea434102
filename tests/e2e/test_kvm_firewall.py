"""The firewall capability on a node that offers only kvm, through NETCONF: the resolver
picks the built-in kvm-firewall (the firewall package's nftables ruleset in the test
guest of nsf/guest.py), traffic the rules allow passes and traffic they deny is dropped.
Then a graph edit adds a port to the running function: the agent hot-plugs a NIC into the
VM (the domain is not restarted: same domain id) and traffic crosses the new port; an edit
removing it unplugs it. One VM for all of it (a TCG boot takes 5-12 s here)."""

import time

import pytest

from agent.tools.graphxml import GraphXml
from tests import guest
from tests.e2e.node import Node
from tests.e2e.test_deploy import SFFG, commit, delete, graph_state

pytestmark = pytest.mark.skipif(guest.unavailable() is not None,
                                reason=guest.unavailable() or "")

HOSTS = {"eth1": "10.65.0.1/24", "eth2": "10.65.0.2/24", "eth3": "10.65.0.3/24"}
SAPS = {"lan": "eth1", "wan": "eth2", "dmz": "eth3"}


def _graph(*ports):
    g = GraphXml("g1")
    g.function("fw", "firewall", *ports, parameters=["block-tcp-dst=5202"])
    for pid in ports:
        g.sap_interface(pid, SAPS[pid])
        g.bidirectional(pid, pid, "fw:" + pid)
    return g


def _state(m, path):
    return graph_state(m, "g1").xpath("//s:function[s:id='fw']/s:state/" + path,
                                      namespaces=SFFG)


def _tcp(client, server, port) -> bool:
    """Whether a TCP connection (iperf3, 1 s) from client to server's port gets through."""
    listening = server.iperf_server(port)
    try:
        time.sleep(0.3)
        # (not iperf_client: with -J iperf3 exits 0 when it cannot connect)
        return client.run("iperf3", "-c", server.ip, "-p", str(port), "-t", "1",
                          "--connect-timeout", "3000", check=False).returncode == 0
    finally:
        listening.kill()
        listening.wait()


def test_firewall_resolved_to_kvm_and_a_port_hot_plugged(session_tmp):
    with Node("w", session_tmp, HOSTS, prefix_suffix="w", environments=("kvm",)) as node:
        h1, h2, h3 = (node.hosts[i] for i in ("eth1", "eth2", "eth3"))
        with node.netconf(timeout=300) as m:
            commit(m, _graph("lan", "wan"))
            assert _state(m, "s:implementation/text()") == ["kvm-firewall"]
            assert _state(m, "s:execution-environment/text()")[0].endswith("kvm")
            rejected = dict(zip(_state(m, "s:resolution/s:rejected/s:template/text()"),
                                _state(m, "s:resolution/s:rejected/s:reason/text()")))
            assert "native-firewall" in rejected, rejected      # native is not offered
            [domain] = guest.domain_names(node.resource_prefix)
            booted = guest.domain_id(domain)
            cmdline = guest.domain_xml(domain)
            assert "composer.function=firewall" in cmdline, cmdline
            assert "composer.param=block-tcp-dst=5202" in cmdline, cmdline
            # the rules (block-tcp-dst=5202): ping and TCP to 5201 pass, TCP to 5202 not
            assert h1.ping(h2.ip), node.log_tail()
            assert _tcp(h1, h2, 5201)
            assert not _tcp(h1, h2, 5202), "the firewall let denied traffic through"

            # a third port, added to the running function: hot-plugged, no reboot
            started = time.monotonic()
            commit(m, _graph("lan", "wan", "dmz"))
            print("commit adding a port to a kvm function: %.0f ms"
                  % ((time.monotonic() - started) * 1000))
            assert guest.domain_id(domain) == booted, "the VM was restarted"
            assert h1.ping(h3.ip), "no traffic through the hot-plugged port"
            assert h3.ping(h2.ip)
            assert not _tcp(h3, h2, 5202)                   # the rules hold on it too
            assert _state(m, "s:port-updates/s:method/text()") == ["in-place"]
            assert _state(m, "s:port-updates/s:count/text()") == ["1"]

            commit(m, _graph("lan", "wan"), replace=True)   # and removed again
            assert guest.domain_id(domain) == booted
            assert not h1.ping(h3.ip, count=1)
            assert h1.ping(h2.ip)
            assert _state(m, "s:port-updates/s:count/text()") == ["2"]
            delete(m, "g1")
        assert guest.domain_names(node.resource_prefix) == []
