"""Service access points on real LSIs: interface, vlan and host-stack, with traffic.

There is no 8021q module here: the VLAN test writes tagged frames with a packet socket and
reads the tag back from the kernel's packet auxdata.
"""

import pytest
from pyroute2 import IPRoute

from drivers.errors import ResourceNotFound
from drivers.vswitch.base import Action, Flow
from tests.resources import PREFIX

from .lab import icmp_echo, in_ns, iperf3, packet_socket, ping, receive_icmp

HOST_MAC, SF_MAC = "02:00:00:61:00:01", "02:00:00:61:00:02"


def out(port):
    return (Action("output", port),)


def test_vlan_sap_tags_stay_on_lsi0(driver, lab, node_netns):
    lsi0, graph = PREFIX + "ql0", PREFIX + "qg"
    nic, sf = PREFIX + "qn1", PREFIX + "qs1"
    host = lab.host(PREFIX + "qh", node_netns, nic, mac=HOST_MAC)
    function = lab.host(PREFIX + "qsf", node_netns, sf, "10.61.0.2/24", mac=SF_MAC)
    in_ns(function, "ip", "neigh", "add", "10.61.0.1", "lladdr", HOST_MAC, "dev",
          function + "e")
    driver.create_lsi(lsi0, ports=(nic,))
    driver.create_lsi(graph, ports=(sf,))

    port = driver.create_sap(lsi0, "v100", "vlan", {"if-name": nic, "vlan-id": 100})
    assert (port.lsi, port.name, port.kind) == (lsi0, nic, "system")
    assert driver.create_sap(lsi0, "lan", "interface", {"if_name": nic}) == port
    with pytest.raises(ResourceNotFound):
        driver.create_sap(lsi0, "v9", "vlan", {"if_name": PREFIX + "none", "vlan_id": 9})

    # The split a vlan SAP gets: pop and push on LSI-0, plain forwarding on the graph-LSI.
    link, = driver.create_virtual_links(lsi0, graph, [PREFIX + "qk1"])
    driver.apply_flows(lsi0, add=[
        Flow(0x100, 100, (("in_port", nic), ("dl_vlan", 100)),
             (Action("pop_vlan"), Action("output", link.port_a))),
        Flow(0x100, 100, (("in_port", link.port_a),),
             (Action("push_vlan", 100), Action("output", nic)))])
    driver.apply_flows(graph, add=[Flow(0x200, 100, (("in_port", link.port_b),), out(sf)),
                                   Flow(0x200, 100, (("in_port", sf),), out(link.port_b))])

    host_sock = packet_socket(host, host + "e")
    sf_sock = packet_socket(function, function + "e")
    try:
        # VLAN 200 and untagged first, VLAN 100 last: frames of one port keep their order
        # through the switch, so whatever of the first two got through arrives before it.
        for ident, vlan in ((200, 200), (1, None), (100, 100)):
            host_sock.send(icmp_echo(HOST_MAC, SF_MAC, "10.61.0.1", "10.61.0.2", ident, vlan))
        seen = []
        while (got := receive_icmp(sf_sock)) is not None:
            seen.append(got)
            if got[1] == 100:
                break
        # Only VLAN 100 reached the function, and untagged.
        assert seen == [(8, 100, None)]
        replies = []
        while (got := receive_icmp(host_sock)) is not None:
            replies.append(got)
            if got[1] == 100:
                break
        # The function's reply left the node tagged with 100.
        assert replies == [(0, 100, 100)]
    finally:
        host_sock.close()
        sf_sock.close()
    assert driver.flow_stats(lsi0)[0x100][0] == 2
    assert driver.port_stats(lsi0)[nic]["rx_packets"] >= 3


def test_host_stack_sap(driver, lab, node_netns):
    graph, host_port, sap = PREFIX + "sg", PREFIX + "sp", PREFIX + "ss"
    host = lab.host(PREFIX + "sh", node_netns, host_port, "10.88.0.2/24")
    driver.create_lsi(graph, ports=(host_port,))
    port = driver.create_sap(graph, sap, "host-stack",
                             {"ipv4-address": "10.88.0.1", "prefix-length": 24,
                              "mac-address": "02:00:00:88:00:01"},
                             external_ids={"composer-sap": "node"})
    assert (port.name, port.kind, port.external_ids) == \
        (sap, "internal", {"composer-sap": "node"})
    with IPRoute(netns=node_netns, flags=0) as ipr:
        link = ipr.get_links(ifname=sap)[0]
        assert link.get("IFLA_ADDRESS") == "02:00:00:88:00:01"
        assert link.get("IFLA_OPERSTATE") in ("UP", "UNKNOWN")
        assert [(a.get("IFA_ADDRESS"), a["prefixlen"])
                for a in ipr.get_addr(index=link["index"], family=2)] == [("10.88.0.1", 24)]

    driver.apply_flows(graph, add=[Flow(1, 10, (("in_port", host_port),), out(sap)),
                                   Flow(1, 10, (("in_port", sap),), out(host_port))])
    assert ping(node_netns, "10.88.0.2")
    assert ping(host, "10.88.0.1")
    end = iperf3(host, "10.88.0.2", node_netns)
    assert end["sum_received"]["bytes"] > 1_000_000
    assert driver.port_stats(graph)[sap]["rx_bytes"] > 1_000_000

    driver.destroy_sap(graph, sap, "host-stack")
    assert [p.name for p in driver.list_ports(graph)] == [host_port]
    with IPRoute(netns=node_netns, flags=0) as ipr:
        assert ipr.link_lookup(ifname=sap) == []
    # interface and vlan SAPs own nothing: destroying them leaves the NIC.
    driver.destroy_sap(graph, "lan", "interface")
    assert [p.name for p in driver.list_ports(graph)] == [host_port]
