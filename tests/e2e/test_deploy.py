"""Commit deploys for real: graphs over NETCONF (ncclient), traffic between host namespaces
through native functions in OVS, and a node left exactly as before when graphs go away.
"""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from lxml import etree

from tests.e2e.node import Node
from agent.tools.graphxml import (GraphXml, config, delete_graph, firewall_bridge_chain,
                                  firewall_chain)

SFFG = {"s": "urn:composer-nc:yang:composer-sffg"}


@pytest.fixture(scope="module")
def node(session_tmp):
    hosts = {"eth1": "10.10.0.1/24", "eth2": "10.10.0.2/24",
             "eth3": "10.10.0.3/24", "eth4": "10.10.0.4/24"}
    fault_file = session_tmp / "a-fault"
    with Node("a", session_tmp, hosts, prefix_suffix="a",
              extra_config='[debug]\nfault-file = "%s"\n' % fault_file) as n:
        n.fault_file = fault_file
        yield n


def commit(m, *graphs, replace=False):
    m.edit_config(target="candidate",
                  config=config(*graphs, operation="replace" if replace else None))
    m.commit()


def delete(m, graph_id):
    m.edit_config(target="candidate", config=delete_graph(graph_id))
    m.commit()


def graph_state(m, graph_id):
    reply = m.get(filter=("subtree", '<service-graphs xmlns="%s"><service-graph><id>%s</id>'
                                     "</service-graph></service-graphs>" % (SFFG["s"], graph_id)))
    root = etree.fromstring(reply.xml.encode())
    return root


def iperf_bits(host, server_host, port):
    server = server_host.iperf_server(port)
    try:
        time.sleep(0.3)
        result = host.iperf_client(server_host.ip, port, seconds=2)
    finally:
        server.kill()
        server.wait()
    if result.returncode != 0:
        return 0.0
    data = json.loads(result.stdout)
    if "error" in data:          # iperf3 -J exits 0 when it could not connect
        return 0.0
    return data["end"]["sum_received"]["bits_per_second"]


@pytest.fixture
def clean(node):
    """The node's resources before the test; the test must leave them so."""
    before = node.node_resources()
    yield before
    with node.netconf() as m:
        m.discard_changes()
        running = etree.fromstring(m.get_config(source="running").xml.encode())
        for gid in running.xpath("//s:service-graph/s:id/text()", namespaces=SFFG):
            delete(m, gid)
    assert node.resources_once_settled(before) == before


def test_firewall_between_two_hosts_passes_traffic_and_blocks_a_port(node, clean):
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    assert not h1.ping(h2.ip, count=1)
    with node.netconf() as m:
        commit(m, firewall_chain("g1", parameters=["block-tcp-dst=5202"]))
        assert h1.ping(h2.ip)
        assert iperf_bits(h1, h2, 5201) > 1e6
        assert iperf_bits(h1, h2, 5202) == 0.0
        state = graph_state(m, "g1")
        assert state.xpath("//s:service-graph/s:state/s:status/text()", namespaces=SFFG) == [
            "composer-types:running"] or state.xpath(
            "//s:service-graph/s:state/s:status/text()", namespaces=SFFG)[0].endswith("running")
        rule_packets = state.xpath("//s:flow-rule[s:id='lan-fwd']/s:state/s:packets/text()",
                                   namespaces=SFFG)
        assert int(rule_packets[0]) > 0
        delete(m, "g1")
    assert not h1.ping(h2.ip, count=1)


def test_two_graphs_at_once_are_isolated(node, clean):
    h1, h2, h3, h4 = (node.hosts[i] for i in ("eth1", "eth2", "eth3", "eth4"))
    with node.netconf() as m:
        commit(m, firewall_chain("ga", "eth1", "eth2"), firewall_chain("gb", "eth3", "eth4"))
        assert h1.ping(h2.ip) and h3.ping(h4.ip)
        assert not h1.ping(h3.ip, count=2) and not h1.ping(h4.ip, count=2)
        assert not h2.ping(h3.ip, count=2)


def _continuous_ping(host, target, stop, results):
    while not stop.is_set():
        results.append(host.ping(target, count=1))


def test_updating_a_running_graph_does_not_interrupt_unrelated_flows(node, clean):
    h1, h2, h3, h4 = (node.hosts[i] for i in ("eth1", "eth2", "eth3", "eth4"))
    main = firewall_chain("g1", "eth1", "eth2")
    other = firewall_chain("g2", "eth3", "eth4")
    with node.netconf() as m:
        commit(m, main, other)
        assert h3.ping(h4.ip)
        stop, results = threading.Event(), []
        pinger = threading.Thread(target=_continuous_ping, args=(h3, h4.ip, stop, results))
        pinger.start()
        try:
            # add a function in the middle of g1's chain: lan -- fw -- br -- wan
            commit(m, firewall_bridge_chain("g1"), other, replace=True)
            assert h1.ping(h2.ip)
            # change a rule: block ICMP by pointing lan at nothing but drop
            dropping = GraphXml("g1")
            dropping.function("fw", "firewall", "lan", "wan")
            dropping.function("br", "bridge", "a", "b")
            dropping.sap_interface("lan", "eth1").sap_interface("wan", "eth2")
            dropping.rule("lan-fwd", "lan", actions=[("drop", None)])
            dropping.rule("lan-rev", "fw:lan", "lan")
            dropping.bidirectional("mid", "fw:wan", "br:a")
            dropping.bidirectional("wan", "br:b", "wan")
            commit(m, dropping, other, replace=True)
            assert not h1.ping(h2.ip, count=2)
            # remove the function again
            commit(m, main, other, replace=True)
            assert h1.ping(h2.ip)
        finally:
            stop.set()
            pinger.join()
        assert results and all(results), "unrelated graph lost %d of %d pings" % (
            results.count(False), len(results))


def test_deleting_the_graph_leaves_nothing(node):
    before = node.node_resources()
    with node.netconf() as m:
        commit(m, firewall_chain("g1"))
        during = node.node_resources()
        assert during != before
        assert len(during["netns"]) == len(before["netns"]) + 1
        delete(m, "g1")
    assert node.resources_once_settled(before) == before


def test_the_readme_example_deploys_with_netconf_console2(node, clean):
    """README.md: netconf-console2 --edit-config examples/firewall-chain.xml --commit."""
    console = Path(sys.executable).with_name("netconf-console2")
    example = Path(__file__).resolve().parents[2] / "examples" / "firewall-chain.xml"
    argv = [str(console), "--host", "127.0.0.1", "--port", str(node.port), "-u", "admin",
            "--privKeyFile", str(node.key_file), "--ssh-config", "/dev/null",
            "--db", "candidate", "--edit-config", str(example), "--commit"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    assert h1.ping(h2.ip)
    assert iperf_bits(h1, h2, 5201) > 1e6
    assert iperf_bits(h1, h2, 23) == 0.0          # block-tcp-dst=23


def test_a_chain_firewall_then_nat(node, clean):
    """lan host -> firewall -> NAT -> wan host: the wan host sees the NAT's address."""
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    h1.run("ip", "addr", "flush", "dev", "eth0")
    h1.run("ip", "addr", "add", "192.168.61.10/24", "dev", "eth0")
    h1.run("ip", "route", "add", "default", "via", "192.168.61.1")
    h2.run("ip", "addr", "flush", "dev", "eth0")
    h2.run("ip", "addr", "add", "203.0.113.2/24", "dev", "eth0")
    try:
        g = GraphXml("chain")
        g.function("fw", "firewall", "lan", "wan", parameters=["block-tcp-dst=5202"])
        g.function("nat", "nat", "inside", "outside", port_config={
            "inside": {"ipv4-address": "192.168.61.1", "ipv4-prefix-length": 24},
            "outside": {"ipv4-address": "203.0.113.1", "ipv4-prefix-length": 24}})
        g.sap_interface("lan", "eth1").sap_interface("wan", "eth2")
        g.bidirectional("lan", "lan", "fw:lan")
        g.bidirectional("mid", "fw:wan", "nat:inside")
        g.bidirectional("wan", "nat:outside", "wan")
        with node.netconf() as m:
            commit(m, g)
            assert h1.ping("203.0.113.2")
            server = subprocess.Popen(["ip", "netns", "exec", h2.name, "iperf3", "-s", "-1",
                                       "-J", "-p", "5201"], stdout=subprocess.PIPE, text=True)
            try:
                time.sleep(0.3)
                client = h1.iperf_client("203.0.113.2", 5201, seconds=2)
                report, _ = server.communicate(timeout=30)
            finally:
                if server.poll() is None:
                    server.kill()
                    server.wait()
            assert "error" not in json.loads(client.stdout)
            assert json.loads(report)["start"]["connected"][0]["remote_host"] == "203.0.113.1"
            # the firewall in front of the NAT still blocks its port
            blocked = subprocess.Popen(["ip", "netns", "exec", h2.name, "iperf3", "-s", "-1",
                                        "-p", "5202"], stdout=subprocess.DEVNULL)
            try:
                time.sleep(0.3)
                attempt = h1.iperf_client("203.0.113.2", 5202, seconds=1)
            finally:
                blocked.kill()
                blocked.wait()
            assert "error" in json.loads(attempt.stdout)
            delete(m, "chain")
    finally:
        for host, address in ((h1, "10.10.0.1/24"), (h2, "10.10.0.2/24")):
            host.run("ip", "addr", "flush", "dev", "eth0")
            host.run("ip", "addr", "add", address, "dev", "eth0")


def test_a_failed_step_is_an_rpc_error_and_the_node_is_untouched(node, clean):
    """The real daemon, a fault injected into one step of the deploy (debug.fault-file)."""
    from ncclient.operations.rpc import RPCError
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    before = node.node_resources()
    instance = "%sf" % node.resource_prefix
    with node.netconf() as m:
        m.edit_config(target="candidate", config=config(firewall_chain("g1")))
        node.fault_file.write_text("attach-ports g1/%s" % node_graph_lsi(node, "g1"))
        try:
            with pytest.raises(RPCError) as refused:
                m.commit()
        finally:
            node.fault_file.unlink()
        error = refused.value
        assert error.tag == "operation-failed"
        assert error.message.startswith("deployment failed at step 'attach-ports g1/")
        assert "injected fault" in error.message and "rolled back" in error.message
        assert error.path.strip() == "/sffg:service-graphs/sffg:service-graph[sffg:id='g1']"
        assert node.node_resources() == before
        assert not any(n.startswith(instance) for n in node.node_resources()["netns"])
        # running did not change; the candidate still holds the graph: commit it for real
        m.commit()
        assert h1.ping(h2.ip)


def node_graph_lsi(node, graph_id):
    from agent.network.naming import Naming
    return Naming(node.resource_prefix).graph_lsi(graph_id)
