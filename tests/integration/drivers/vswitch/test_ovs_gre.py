"""A GRE tunnel between two nodes, each with its own userspace ovs-vswitchd.

    host1 -- graph-LSI(node1) ==gre key 77== graph-LSI(node2) -- host2
                    (tunnel endpoint on LSI-0, NIC) ---- veth ---- (NIC, LSI-0, endpoint)

Node 1 is the session's node with the session driver; node 2 gets its own namespace,
PrivateOVS and driver. The underlay veth carries MTU 1600 so that full-size host packets
fit in GRE (24 bytes of outer IP and GRE header with key, plus the inner Ethernet header).
"""

import os
import signal
import threading
import time

import pytest

from drivers import registry
from drivers.errors import ResourceNotFound
from drivers.vswitch.base import Action, Flow
from drivers.vswitch.ovs_process import PrivateOVS
from tests.resources import PREFIX, processes_mentioning

from .lab import Lab, iperf3, ping

KEY = 77
ENDPOINT_COOKIE, GRAPH_COOKIE = 0xE0, 0x77


@pytest.fixture
def node2(session_tmp):
    """A second node: its namespace, its private OVS (vswitchd inside) and its driver."""
    lab = Lab()
    netns = lab.netns(PREFIX + "node2")
    ovs = PrivateOVS(session_tmp / "ovs2", netns=netns)
    ovs.start()
    driver = registry.create("vswitch", "ovs", db_socket=ovs.db_socket, run_dir=str(ovs.run_dir),
                             netns=netns, datapath_type="netdev")
    try:
        driver.check()
        yield netns, driver
    finally:
        driver.close()
        ovs.stop()
        lab.close()


def out(port):
    return (Action("output", port),)


def build_node(driver, netns, lab, n, nic):
    """LSI-0 with the NIC and the tunnel endpoint; a graph-LSI with a host and a gre SAP."""
    lsi0, graph = "%sgl%d" % (PREFIX, n), "%sgg%d" % (PREFIX, n)
    host_port, tep, gre = "%sgp%d" % (PREFIX, n), "%sgt%d" % (PREFIX, n), "%sge%d" % (PREFIX, n)
    host = lab.host("%sgh%d" % (PREFIX, n), netns, host_port, "10.77.0.%d/24" % n)
    driver.create_lsi(lsi0, ports=(nic,), external_ids={"composer-role": "lsi0"})
    endpoint = driver.create_tunnel_endpoint(lsi0, tep, "192.168.77.%d" % n, 24, nic,
                                             cookie=ENDPOINT_COOKIE,
                                             external_ids={"composer-role": "tunnel"})
    driver.create_lsi(graph, ports=(host_port,))
    port = driver.create_sap(graph, gre, "gre", {"local-ip": "192.168.77.%d" % n,
                                                 "remote-ip": "192.168.77.%d" % (3 - n),
                                                 "key": KEY, "ttl": 64})
    assert (port.kind, port.ofport > 0) == ("gre", True)
    driver.apply_flows(graph, add=[Flow(GRAPH_COOKIE, 10, (("in_port", host_port),), out(gre)),
                                   Flow(GRAPH_COOKIE, 10, (("in_port", gre),), out(host_port))])
    return host, endpoint, lsi0, graph


def test_gre_tunnel_between_two_nodes(driver, lab, node_netns, node2, private_ovs):
    netns2, driver2 = node2
    nic1, nic2 = PREFIX + "gn1", PREFIX + "gn2"
    lab.veth(nic1, node_netns, nic2, netns2, mtu=1600)
    host1, ep1, lsi0_1, graph1 = build_node(driver, node_netns, lab, 1, nic1)
    host2, ep2, lsi0_2, graph2 = build_node(driver2, netns2, lab, 2, nic2)

    assert (ep1.ip, ep1.prefix_length, ep1.nic, ep1.cookie) == \
        ("192.168.77.1", 24, nic1, ENDPOINT_COOKIE)
    assert driver.list_tunnel_endpoints() == [ep1]
    # The endpoint's LSI-0 flows, installed by the driver under the caller's cookie.
    assert sorted(driver.dump_flows(lsi0_1), key=str) == sorted([
        Flow(ENDPOINT_COOKIE, 65535, (("in_port", ep1.name),), out(nic1)),
        Flow(ENDPOINT_COOKIE, 65535, (("in_port", nic1), ("dl_type", 0x0806),
                                      ("nw_dst", "192.168.77.1")), out(ep1.name)),
        Flow(ENDPOINT_COOKIE, 65535, (("in_port", nic1), ("dl_type", 0x0800),
                                      ("nw_dst", "192.168.77.1")), out(ep1.name))], key=str)
    # Re-applying an endpoint (what recovery does after a vswitchd restart) is harmless.
    assert driver.create_tunnel_endpoint(lsi0_1, ep1.name, "192.168.77.1", 24, nic1,
                                         cookie=ENDPOINT_COOKIE, may_exist=True) == ep1

    # The OVS route that lets tunnel ports find the endpoint.
    assert "User: 192.168.77.0/24 dev %s SRC 192.168.77.1" % ep1.name in \
        driver.appctl("ovs/route/show")

    assert ping(host1, "10.77.0.2")
    end = iperf3(host2, "10.77.0.2", host1)
    assert end["sum_received"]["bytes"] > 1_000_000

    # Traffic went through the graph-LSIs' gre ports and the endpoints' LSI-0 flows.
    assert driver.flow_stats(graph1)[GRAPH_COOKIE][1] > 1_000_000
    assert driver2.flow_stats(lsi0_2)[ENDPOINT_COOKIE][1] > 1_000_000
    assert driver.port_stats(lsi0_1)[nic1]["tx_bytes"] > 1_000_000

    # A gre SAP needs an endpoint with its local address.
    with pytest.raises(ResourceNotFound, match="no tunnel endpoint has the address 192.168.78.1"):
        driver.create_sap(graph1, PREFIX + "gx", "gre", {"local_ip": "192.168.78.1",
                                                         "remote_ip": "192.168.78.2", "key": 1})

    driver.destroy_sap(graph1, PREFIX + "ge1", "gre")
    driver.destroy_tunnel_endpoint(lsi0_1, ep1.name)
    assert driver.list_tunnel_endpoints() == []
    assert driver.dump_flows(lsi0_1) == []
    assert [p.name for p in driver.list_ports(lsi0_1)] == [nic1]
    user_routes = [line for line in driver.appctl("ovs/route/show").splitlines()
                   if line.startswith("User:")]
    assert user_routes == []
    # Destroying LSI-0 takes its endpoints along, OVS route included.
    driver2.destroy_lsi(lsi0_2)
    assert driver2.list_tunnel_endpoints() == []
    assert "User:" not in driver2.appctl("ovs/route/show")
    driver2.destroy_lsi(graph2)


def _release_when_appctl_waits(pid: int, ctl: str) -> None:
    """SIGCONT pid once an ovs-appctl towards ctl has had time to send its request."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
            "ovs-appctl" in p and ctl in p for p in processes_mentioning(ctl)):
        time.sleep(0.005)
    time.sleep(0.2)
    os.kill(pid, signal.SIGCONT)


def test_an_endpoint_made_while_vswitchd_is_busy_gets_its_route(driver, lab, node_netns,
                                                                private_ovs, monkeypatch):
    """ovs-vswitchd reads its rtnetlink news (the endpoint's new address) after the unixctl
    requests of the same main-loop round: a route added while it was busy elsewhere used to
    meet a stale address cache ("Error while inserting route"). Here it is stopped while
    the address is set, and resumed once the driver's ovs-appctl waits on its socket."""
    nic = PREFIX + "gb1"
    lab.veth(nic, node_netns, PREFIX + "gb2", node_netns)
    lsi0 = PREFIX + "gbl"
    driver.create_lsi(lsi0, ports=(nic,))
    pid = private_ovs.vswitchd_pid()
    set_address = driver.netlink.set_address

    def set_address_while_busy(*args):
        os.kill(pid, signal.SIGSTOP)
        try:
            set_address(*args)
        finally:
            threading.Thread(target=_release_when_appctl_waits,
                             args=(pid, str(private_ovs.vswitchd_ctl))).start()

    monkeypatch.setattr(driver.netlink, "set_address", set_address_while_busy)
    try:
        endpoint = driver.create_tunnel_endpoint(lsi0, PREFIX + "gbt", "192.168.76.1", 24, nic,
                                                 cookie=ENDPOINT_COOKIE)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert "User: 192.168.76.0/24 dev %s SRC 192.168.76.1" % endpoint.name in \
        driver.appctl("ovs/route/show")
