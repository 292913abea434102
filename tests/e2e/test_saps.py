"""SAPs end to end over NETCONF: a vlan SAP whose tag never reaches the function, and a
gre SAP between two agents on two nodes with traffic through the tunnel."""

import json
import time

import pytest

from agent.tools.graphxml import GraphXml, config, delete_graph
from tests.e2e.node import Node, link_nodes
from tests.integration.drivers.vswitch.lab import icmp_echo, packet_socket, receive_icmp


def test_vlan_sap_only_its_tagged_traffic_enters_untagged(session_tmp):
    with Node("v", session_tmp, {"eth1": None, "eth2": "10.61.0.2/24"},
              prefix_suffix="v") as node:
        h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
        # h1 speaks raw 802.1Q frames (no 8021q module here); h2 is a plain host that
        # knows h1's MAC, so it can answer without ARP.
        h2.run("ip", "neigh", "add", "10.61.0.1", "lladdr", h1.mac, "dev", "eth0")
        g = GraphXml("vg")
        g.function("br", "bridge", "a", "b")
        g.sap_vlan("v100", "eth1", 100).sap_interface("lan2", "eth2")
        g.bidirectional("v", "v100", "br:a")
        g.bidirectional("l", "lan2", "br:b")
        with node.netconf() as m:
            m.edit_config(target="candidate", config=config(g))
            m.commit()
            h1_sock = packet_socket(h1.name, "eth0")
            h2_sock = packet_socket(h2.name, "eth0")
            try:
                for ident, vlan in ((200, 200), (1, None), (100, 100)):
                    h1_sock.send(icmp_echo(h1.mac, h2.mac, "10.61.0.1", "10.61.0.2", ident, vlan))
                seen = []
                while (got := receive_icmp(h2_sock)) is not None:
                    if got[0] == 8:
                        seen.append(got)
                    if got[1] == 100:
                        break
                # only VLAN 100 crossed the function, and without its tag
                assert seen == [(8, 100, None)]
                replies = []
                while (got := receive_icmp(h1_sock)) is not None:
                    replies.append(got)
                    if got[1] == 100:
                        break
                # the reply went back into VLAN 100
                assert replies == [(0, 100, 100)]
            finally:
                h1_sock.close()
                h2_sock.close()
            m.edit_config(target="candidate", config=delete_graph("vg"))
            m.commit()


def _gre_graph(local, remote):
    g = GraphXml("tun")
    g.function("fw", "firewall", "lan", "wan")
    g.sap_interface("lan", "eth1").sap_gre("dc", local, remote, 4242)
    g.bidirectional("lan", "lan", "fw:lan")
    g.bidirectional("wan", "fw:wan", "dc")
    return g


def test_gre_sap_between_two_agents(session_tmp):
    a = Node("ga", session_tmp, {"eth1": "10.30.0.1/24"}, prefix_suffix="g",
             underlay={"eth9": "192.0.2.1/24"})
    b = Node("gb", session_tmp, {"eth1": "10.30.0.2/24"}, prefix_suffix="h",
             underlay={"eth9": "192.0.2.2/24"})
    try:
        a.create()
        b.create()
        link_nodes(a, "eth9", b, "eth9")
        a.start_agent()
        b.start_agent()
        with a.netconf() as ma, b.netconf() as mb:
            ma.edit_config(target="candidate", config=config(_gre_graph("192.0.2.1", "192.0.2.2")))
            ma.commit()
            mb.edit_config(target="candidate", config=config(_gre_graph("192.0.2.2", "192.0.2.1")))
            mb.commit()
            h1, h2 = a.hosts["eth1"], b.hosts["eth1"]
            # the first packets may go while OVS resolves the tunnel neighbour
            deadline = time.monotonic() + 20
            while not h1.ping(h2.ip, count=1) and time.monotonic() < deadline:
                pass
            assert h1.ping(h2.ip)
            server = h2.iperf_server(5201)
            try:
                time.sleep(0.3)
                result = h1.iperf_client(h2.ip, 5201, seconds=2)
            finally:
                server.kill()
                server.wait()
            data = json.loads(result.stdout)
            assert "error" not in data, data.get("error")
            assert data["end"]["sum_received"]["bits_per_second"] > 1e6
            for m in (ma, mb):
                m.edit_config(target="candidate", config=delete_graph("tun"))
                m.commit()
            assert not h1.ping(h2.ip, count=1)
    finally:
        a.destroy()
        b.destroy()


def test_gre_sap_with_an_unknown_local_ip_is_refused_with_its_path(session_tmp):
    with Node("gc", session_tmp, {"eth1": None}, prefix_suffix="c") as node:
        with node.netconf() as m:
            from ncclient.operations.rpc import RPCError
            m.edit_config(target="candidate", config=config(_gre_graph("192.0.2.9", "192.0.2.2")))
            with pytest.raises(RPCError) as refused:
                m.commit()
            assert refused.value.tag == "operation-failed"
            assert refused.value.path.strip() == (
                "/sffg:service-graphs/sffg:service-graph[sffg:id='tun']/sffg:saps"
                "/sffg:sap[sffg:id='dc']/sffg:config/sffg:gre/sffg:local-ip")
            assert refused.value.message == ("GRE SAP dc: 192.0.2.9 is not a tunnel endpoint "
                                             "of this node (lsi0.addresses: none)")
            m.discard_changes()


def test_host_stack_sap_reaches_the_nodes_own_stack(session_tmp):
    with Node("hs", session_tmp, {"eth1": "10.52.0.1/24"}, prefix_suffix="s") as node:
        g = GraphXml("hs")
        g.function("fw", "firewall", "lan", "me", parameters=["block-tcp-dst=5202"])
        g.sap_interface("lan", "eth1").sap_host_stack("stack", "10.52.0.100", 24,
                                                      mac="02:00:00:52:00:64")
        g.bidirectional("lan", "lan", "fw:lan")
        g.bidirectional("me", "fw:me", "stack")
        h1 = node.hosts["eth1"]
        with node.netconf() as m:
            m.edit_config(target="candidate", config=config(g))
            m.commit()
            # the node's own stack answers through the firewall
            assert h1.ping("10.52.0.100")
            m.edit_config(target="candidate", config=delete_graph("hs"))
            m.commit()
            assert not h1.ping("10.52.0.100", count=1)
