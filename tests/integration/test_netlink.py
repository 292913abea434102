"""The netlink helpers make, change and delete real namespaces and links."""

import asyncio
import subprocess

import pytest

from drivers import netlink
from drivers.errors import ResourceExists, ResourceNotFound
from tests import resources
from tests.netlab import Lab
from tests.resources import PREFIX


@pytest.fixture
def lab():
    with Lab("nl") as lab:
        yield lab


def _ip(*argv):
    return subprocess.run(["ip", *argv], capture_output=True, text=True, check=True).stdout


def test_namespaces_are_made_listed_and_deleted_idempotently():
    name = PREFIX + "nlns1"
    netlink.netns_add(name)
    try:
        assert name in resources.netns_names()
        assert netlink.netns_exists(name)
        assert name in netlink.netns_list(PREFIX + "nl")
        assert "UP" in _ip("-n", name, "link", "show", "lo")
        with pytest.raises(ResourceExists):
            netlink.netns_add(name)
    finally:
        assert netlink.netns_delete(name) is True
    assert netlink.netns_delete(name) is False
    assert name not in resources.netns_names()
    assert not netlink.netns_exists(name)


def test_veth_pair_across_namespaces_with_names_macs_up_and_no_tx_checksum(lab):
    a, b = lab.netns("a"), lab.netns("b")
    netlink.veth_add(PREFIX + "nlva", "eth3", netns=a, peer_netns=b,
                     mac="02:00:00:00:aa:01", peer_mac="02:00:00:00:aa:02")
    info = netlink.link_info(PREFIX + "nlva", a)
    peer = netlink.link_info("eth3", b)
    assert (info["mac"], info["up"], info["kind"]) == ("02:00:00:00:aa:01", True, "veth")
    assert (peer["mac"], peer["up"]) == ("02:00:00:00:aa:02", True)
    assert netlink.link_names(PREFIX, a) == [PREFIX + "nlva"]
    assert netlink.link_exists("eth3", b) and not netlink.link_exists("eth3", a)

    assert netlink.tx_checksum_enabled("eth3", b)
    netlink.tx_checksum_off(PREFIX + "nlva", netns=a)
    netlink.tx_checksum_off("eth3", netns=b)
    assert not netlink.tx_checksum_enabled("eth3", b)
    features = subprocess.run(["ip", "netns", "exec", a, "ethtool", "-k", PREFIX + "nlva"],
                              capture_output=True, text=True, check=True).stdout
    assert "tx-checksumming: off" in features
    with pytest.raises(ResourceNotFound):
        netlink.tx_checksum_off("nosuch0", netns=a)

    with pytest.raises(ResourceExists):
        netlink.veth_add(PREFIX + "nlva", "eth4", netns=a, peer_netns=b)
    # The failed add made nothing.
    assert not netlink.link_exists("eth4", b)

    assert netlink.link_delete("eth3", b) is True
    assert not netlink.link_exists(PREFIX + "nlva", a)  # the peer went with it
    assert netlink.link_delete("eth3", b) is False


def test_veth_end_without_ipv6_has_no_ipv6_address_or_route(lab):
    a, b = lab.netns("a"), lab.netns("b")
    netlink.veth_add(PREFIX + "nl6", "eth0", netns=a, peer_netns=b, ipv6=False, promisc=True)
    assert netlink.link_info(PREFIX + "nl6", a)["up"] and netlink.link_info("eth0", b)["up"]
    assert "PROMISC" in _ip("-n", a, "link", "show", PREFIX + "nl6")
    assert "PROMISC" not in _ip("-n", b, "link", "show", "eth0")
    assert netlink.sysctl_get("net/ipv6/conf/%s/disable_ipv6" % (PREFIX + "nl6"), a) == "1"
    assert netlink.sysctl_get("net/ipv6/conf/eth0/disable_ipv6", b) == "0"
    assert PREFIX + "nl6" not in _ip("-n", a, "-6", "route", "show", "table", "all")
    assert PREFIX + "nl6" not in _ip("-n", a, "-6", "address")


def test_veth_in_the_callers_namespace_and_move_with_rename(lab):
    b = lab.netns("b")
    left, right = PREFIX + "nlmv1", PREFIX + "nlmv2"
    netlink.veth_add(left, right)
    try:
        assert {left, right} <= set(resources.link_names())
        netlink.link_move(right, b, new_name="eth7", up=True)
        assert right not in resources.link_names()
        assert netlink.link_info("eth7", b)["up"]
        netlink.link_move("eth7", None, netns=b, new_name=right)
        assert right in resources.link_names()
    finally:
        netlink.link_delete(left)
    assert left not in resources.link_names() and right not in resources.link_names()


def test_addresses_routes_sysctl_and_traffic(lab):
    a, b = lab.netns("a"), lab.netns("b")
    netlink.veth_add("eth0", "eth0", netns=a, peer_netns=b)
    netlink.tx_checksum_off("eth0", netns=a)
    netlink.tx_checksum_off("eth0", netns=b)
    netlink.addr_add("eth0", "10.77.0.1", 24, netns=a)
    netlink.addr_add("eth0", "10.77.0.1", 24, netns=a)   # again: not an error
    netlink.addr_add("eth0", "10.77.0.2", 24, netns=b)
    assert netlink.addr_list("eth0", a) == ["10.77.0.1/24"]
    netlink.route_add("10.78.0.0/16", gateway="10.77.0.2", netns=a)
    netlink.route_add("default", gateway="10.77.0.2", netns=a)
    routes = _ip("-n", a, "route")
    assert "10.78.0.0/16 via 10.77.0.2 dev eth0" in routes
    assert "default via 10.77.0.2 dev eth0" in routes
    assert netlink.route_delete("10.78.0.0/16", netns=a) is True
    assert netlink.route_delete("10.78.0.0/16", netns=a) is False

    root_forwarding = netlink.sysctl_get("net.ipv4.ip_forward")
    netlink.sysctl_set("net.ipv4.ip_forward", 1, netns=b)
    assert netlink.sysctl_get("net.ipv4.ip_forward", netns=b) == "1"
    assert netlink.sysctl_get("net.ipv4.ip_forward") == root_forwarding
    assert netlink.sysctl_get("net/ipv4/conf/eth0/forwarding", netns=b) == "1"
    with pytest.raises(ResourceNotFound):
        netlink.sysctl_get("net.ipv4.no_such_thing", netns=b)

    assert lab.ping(a, "10.77.0.2")
    server = lab.serve_iperf3(b)
    assert lab.transfers(a, "10.77.0.2")
    assert lab.server_report(server)["end"]["sum_received"]["bytes"] > 0

    netlink.addr_flush("eth0", netns=a)
    assert netlink.addr_list("eth0", a) == []


def test_bridge_and_master(lab):
    a = lab.netns("a")
    netlink.bridge_add("br9", a)
    netlink.veth_add("x0", "x1", netns=a, peer_netns=a)
    netlink.link_set("x0", a, master="br9")
    assert netlink.link_info("x0", a)["master"] == netlink.link_info("br9", a)["index"]
    netlink.link_set("x0", a, nomaster=True)
    assert not netlink.link_info("x0", a)["master"]
    assert netlink.link_info("br9", a)["kind"] == "bridge"


def test_helpers_work_inside_a_running_asyncio_loop(lab):
    a = lab.netns("a")

    async def inside_loop():
        netlink.veth_add("y0", "y1", netns=a, peer_netns=a)
        return netlink.link_names("y", a)

    assert asyncio.run(inside_loop()) == ["y0", "y1"]


def test_names_are_checked():
    with pytest.raises(ValueError):
        netlink.veth_add("a" * 16, "b")
    with pytest.raises(ValueError):
        netlink.netns_add("../etc")
    with pytest.raises(ResourceNotFound):
        netlink.link_exists("x", netns=PREFIX + "nlnosuch")


def test_deleting_a_namespace_releases_its_socket_and_links(lab):
    """A cached socket would keep a deleted namespace, and the peers of its veths, alive."""
    node = lab.netns("n")
    fn = PREFIX + "nlfn"
    netlink.netns_add(fn)
    netlink.veth_add(PREFIX + "nlx", "eth0", netns=node, peer_netns=fn)
    assert netlink.link_exists("eth0", fn)   # opens and caches a socket in fn
    netlink.link_delete(PREFIX + "nlx", node)
    netlink.netns_delete(fn)
    assert fn not in resources.netns_names()
    assert netlink.link_names(PREFIX, node) == []
