"""Function ports of the kinds a compute driver may attach (drivers/compute/base.py), on the
session's private OVS (userspace datapath): a tap made as `ip tuntap` makes it, attached
as a tap port that ovs-vswitchd opens itself, carries traffic; vhost-user and memif ports,
which need OVS-DPDK, are refused naming the datapath, and nothing is added."""

import pytest

from drivers import netlink
from drivers.compute.plumbing import Plumbing
from drivers.errors import NotSupported
from drivers.vswitch.base import Action, Flow
from tests.resources import PREFIX

from .lab import in_ns, ping


def _cross(lsi, a, b):
    return [Flow(1, 100, (("in_port", a),), (Action("output", b),)),
            Flow(2, 100, (("in_port", b),), (Action("output", a),))]


def test_a_tap_port_passes_traffic(driver, lab, node_netns):
    lsi, tap, end = PREFIX + "tl0", PREFIX + "tt1", PREFIX + "tv1"
    host = PREFIX + "th1"
    plumbing = Plumbing(node_netns)
    driver.create_lsi(lsi)
    plumbing.add_tap(tap)
    try:
        # The tap's kernel side is the node's own stack here (a VM's would be the guest).
        netlink.addr_add(tap, "10.77.0.1", 24, netns=node_netns)
        lab.host(host, node_netns, end, "10.77.0.2/24")
        driver.create_ports(lsi, [dict(name=tap, kind="tap", external_ids={"k": "t"}),
                                  dict(name=end, kind="system")])
        assert {p.name: p.kind for p in driver.list_ports(lsi)} == {tap: "tap", end: "system"}
        # ovs-vswitchd holds the tap open: its carrier is up
        assert "LOWER_UP" in in_ns(node_netns, "ip", "link", "show", tap).stdout
        driver.apply_flows(lsi, _cross(lsi, tap, end))
        assert ping(host, "10.77.0.1")
        counters = driver.port_stats(lsi)[tap]
        assert counters["rx_packets"] > 0 and counters["tx_packets"] > 0
        driver.destroy_ports(lsi, [tap])
    finally:
        driver.destroy_lsi(lsi)
        plumbing.delete_link(tap)
    assert not netlink.link_exists(tap, node_netns)


@pytest.mark.parametrize("kind, options", [
    ("dpdkvhostuser", {}),
    ("dpdkvhostuserclient", {"vhost-server-path": "/run/%s-v.sock" % PREFIX}),
    ("memif", {"socket": "/run/%s-m.sock" % PREFIX}),
])
def test_dpdk_ports_are_refused_without_ovs_dpdk(driver, kind, options):
    lsi = PREFIX + "tl1"
    driver.create_lsi(lsi)
    try:
        with pytest.raises(NotSupported, match="%s ports|offers no" % kind):
            driver.create_ports(lsi, [dict(name=PREFIX + "tp1", kind=kind, options=options)])
        assert driver.list_ports(lsi) == []
    finally:
        driver.destroy_lsi(lsi)
