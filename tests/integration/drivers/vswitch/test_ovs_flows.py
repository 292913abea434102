"""Flows on real LSIs: atomic bundles, the rule split across virtual links, counters.

Traffic crosses what the driver built: hosts ping and run iperf3 through LSI-0, two
virtual links and a graph-LSI holding a router function.
"""

import pytest

from drivers.errors import CommandError, InvalidArgument, ResourceNotFound
from drivers.vswitch.base import Action, Flow
from drivers.vswitch.ofctl import OpenFlowClient
from tests.resources import PREFIX

from .lab import in_ns, iperf3, ping


def out(port):
    return (Action("output", port),)


def test_a_bad_flow_leaves_the_switch_unchanged(driver, private_ovs):
    lsi = PREFIX + "fb"
    a, b = PREFIX + "fba", PREFIX + "fbb"
    driver.create_lsi(lsi, ports=[dict(name=a, kind="internal"), dict(name=b, kind="internal")])
    first = [Flow(1, 10, (("in_port", a),), out(b)), Flow(1, 10, (("in_port", b),), out(a))]
    driver.apply_flows(lsi, add=first)
    installed = driver.dump_flows(lsi)
    assert sorted(installed, key=str) == sorted(first, key=str)

    replacement = [Flow(2, 20, (("in_port", a),), (Action("drop"),))]
    # Refused by the driver: an unknown port, a malformed value.
    with pytest.raises(ResourceNotFound):
        driver.apply_flows(lsi, add=replacement + [Flow(2, 20, (("in_port", "nowhere"),))],
                           remove_cookies=[1])
    with pytest.raises(InvalidArgument):
        driver.apply_flows(lsi, add=replacement + [Flow(2, 20, (("dl_vlan", 5000),))],
                           remove_cookies=[1])
    assert driver.dump_flows(lsi) == installed
    # Refused by the switch in the middle of the bundle (a group that does not exist):
    # the removal and the first add of the same bundle are rolled back.
    ofp = OpenFlowClient(str(private_ovs.run_dir), lsi)      # what apply_flows uses
    with pytest.raises(CommandError, match="ovs-ofctl add-flows failed") as err:
        ofp.bundle(["delete cookie=0x1/-1", "add cookie=0x2,priority=20,in_port=1,actions=drop",
                    "add cookie=0x2,priority=21,in_port=2,actions=group:99"])
    assert "OFPBAC_BAD_OUT_GROUP" in err.value.detail
    assert driver.dump_flows(lsi) == installed

    driver.apply_flows(lsi, add=replacement, remove_cookies=[1])
    assert driver.dump_flows(lsi) == replacement
    driver.apply_flows(lsi, remove_cookies=[2])
    assert driver.dump_flows(lsi) == []


def test_a_flow_names_only_ports_of_its_own_lsi_as_they_come_and_go(driver, private_ovs):
    one, two = PREFIX + "fm", PREFIX + "fn"
    a, b, c = PREFIX + "fma", PREFIX + "fmb", PREFIX + "fmc"
    driver.create_lsi(one, ports=[dict(name=a, kind="internal"), dict(name=b, kind="internal")])
    driver.create_lsi(two, ports=[dict(name=c, kind="internal")])
    try:
        to_c = [Flow(3, 10, (("in_port", a),), out(c))]
        with pytest.raises(ResourceNotFound, match=c):       # c is on the other LSI
            driver.apply_flows(one, add=to_c)
        # The LSIs' port sets change: what a flow may name follows at once.
        driver.destroy_ports(two, [c])
        driver.create_ports(one, [dict(name=c, kind="internal")])
        driver.apply_flows(one, add=to_c)
        assert driver.dump_flows(one) == to_c
        driver.destroy_ports(one, [c])
        with pytest.raises(ResourceNotFound, match=c):
            driver.apply_flows(one, add=[Flow(4, 10, (("in_port", b),), out(c))])
        driver.create_ports(two, [dict(name=c, kind="internal")])
        with pytest.raises(ResourceNotFound, match=c):
            driver.apply_flows(one, add=[Flow(4, 10, (("in_port", b),), out(c))])
    finally:
        driver.destroy_lsi(one)
        driver.destroy_lsi(two)


def test_rule_split_across_virtual_links(driver, lab, node_netns):
    """host1 -> LSI-0 -> link1 -> graph-LSI -> router -> graph-LSI -> link2 -> LSI-0 -> host2.

    The graph's rules (sap1 <-> sf port 1, sap2 <-> sf port 2) are split as DESIGN.md says:
    each output port that needs crossing gets its own link, and a link carries both ways."""
    lsi0, graph = PREFIX + "rl0", PREFIX + "rg"
    nic1, nic2, sf1, sf2 = PREFIX + "rn1", PREFIX + "rn2", PREFIX + "rs1", PREFIX + "rs2"
    h1 = lab.host(PREFIX + "rh1", node_netns, nic1, "10.71.1.1/24", gateway="10.71.1.254")
    h2 = lab.host(PREFIX + "rh2", node_netns, nic2, "10.71.2.1/24", gateway="10.71.2.254")
    router = lab.netns(PREFIX + "rsf")
    for node_end, address in ((sf1, "10.71.1.254/24"), (sf2, "10.71.2.254/24")):
        lab.veth(node_end + "e", router, node_end, node_netns, tx_off=(node_end + "e",))
        in_ns(router, "ip", "addr", "add", address, "dev", node_end + "e")
    in_ns(router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")

    driver.create_lsi(lsi0, ports=(nic1, nic2), external_ids={"composer-role": "lsi0"})
    # As the agent makes a graph-LSI: without a port of its own into the node's stack.
    driver.create_lsi(graph, ports=(sf1, sf2), external_ids={"composer-graph": "g1"},
                      local_port=False)
    assert in_ns(node_netns, "ip", "link", "show", "dev", graph, check=False).returncode != 0
    link1, link2 = driver.create_virtual_links(lsi0, graph, [PREFIX + "rk1", PREFIX + "rk2"])
    cookie = 0x71
    driver.apply_flows(lsi0, add=[
        Flow(cookie, 100, (("in_port", nic1),), out(link1.port_a)),
        Flow(cookie, 100, (("in_port", link1.port_a),), out(nic1)),
        Flow(cookie, 100, (("in_port", nic2),), out(link2.port_a)),
        Flow(cookie, 100, (("in_port", link2.port_a),), out(nic2))])
    driver.apply_flows(graph, add=[
        Flow(cookie, 100, (("in_port", link1.port_b),), out(sf1)),
        Flow(cookie, 100, (("in_port", sf1),), out(link1.port_b)),
        Flow(cookie, 100, (("in_port", link2.port_b),), out(sf2)),
        Flow(cookie, 100, (("in_port", sf2),), out(link2.port_b))])

    assert ping(h1, "10.71.2.1")
    end = iperf3(h2, "10.71.2.1", h1)
    assert end["sum_received"]["bytes"] > 1_000_000

    packets, octets = driver.flow_stats(lsi0)[cookie]
    assert packets > 100 and octets > 1_000_000
    assert driver.flow_stats(graph)[cookie][1] > 1_000_000
    stats = driver.port_stats(lsi0)
    assert set(stats) == {nic1, nic2, link1.port_a, link2.port_a}
    assert stats[nic1]["rx_bytes"] > 1_000_000 and stats[nic2]["tx_bytes"] > 1_000_000
    assert driver.port_stats(graph)[sf1]["tx_bytes"] > 1_000_000

    # Without LSI-0's half of the rules nothing crosses.
    driver.apply_flows(lsi0, remove_cookies=[cookie])
    assert driver.dump_flows(lsi0) == []
    assert in_ns(h1, "ping", "-c", "1", "-W", "1", "10.71.2.1", check=False).returncode != 0
