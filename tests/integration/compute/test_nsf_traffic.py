"""The shipped native functions, run by the native driver, carry (and stop) real traffic.

Each function's ports end in a node namespace; hosts (namespaces) are joined to those ends
by Linux bridges standing in for the vSwitch.
"""

import pytest

from drivers import netlink
from drivers.errors import ScriptError

from .helpers import port, spec


def _fw(lab, native, nsf_packages, parameters):
    node = native.netns
    fw = lab.name("fw")
    native.create(spec(fw, nsf_packages["firewall"],
                       [("in", lab.name("fi")), ("out", lab.name("fo"))], parameters))
    a = lab.host("a", node, lab.name("fi"), "10.61.0.1/24")
    b = lab.host("b", node, lab.name("fo"), "10.61.0.2/24")
    return fw, a, b


def test_firewall_is_transparent_and_blocks_a_tcp_port(lab, native, nsf_packages):
    fw, a, b = _fw(lab, native, nsf_packages, ["block-tcp-dst=5023", "block-udp-dst=53"])
    assert not lab.ping(a, "10.61.0.2", count=1), "created but not started: no forwarding"
    lab.forget_neighbours(a)
    native.start(fw)
    assert native.status(fw) == "running"

    # Same subnet on both sides: the firewall is a bump in the wire.
    assert lab.ping(a, "10.61.0.2")
    assert lab.ping(b, "10.61.0.1")
    server = lab.serve_iperf3(b, 5201)
    assert lab.transfers(a, "10.61.0.2", 5201)
    assert lab.server_report(server)["end"]["sum_received"]["bytes"] > 0

    # The blocked port is really blocked, with a server listening behind it.
    blocked = lab.serve_iperf3(b, 5023)
    assert not lab.transfers(a, "10.61.0.2", 5023)
    assert not lab.tcp_connects(a, "10.61.0.2", 5023)
    blocked.kill()
    rules = lab.run(fw, "nft", "list", "ruleset").stdout
    assert "tcp dport 5023" in rules and "udp dport 53" in rules

    native.stop(fw)
    assert not lab.ping(a, "10.61.0.2", count=1)
    lab.forget_neighbours(a)
    native.start(fw)
    assert lab.ping(a, "10.61.0.2")


def test_firewall_default_drop_with_allow_rules(lab, native, nsf_packages):
    fw, a, b = _fw(lab, native, nsf_packages,
                   ["default=drop", "allow-icmp", "allow-tcp-dst=5201", "block-src=10.61.0.9"])
    native.start(fw)
    assert lab.ping(a, "10.61.0.2")
    server = lab.serve_iperf3(b, 5201)
    assert lab.transfers(a, "10.61.0.2", 5201)   # replies pass: stateful
    server.wait(timeout=10)
    other = lab.serve_iperf3(b, 5202)
    assert not lab.tcp_connects(a, "10.61.0.2", 5202)
    other.kill()
    # A blocked source is dropped even though ICMP is allowed.
    netlink.addr_flush("eth0", netns=a)
    netlink.addr_add("eth0", "10.61.0.9", 24, netns=a)
    assert not lab.ping(a, "10.61.0.2", count=2)


def test_firewall_update_replaces_its_table(lab, native, nsf_packages):
    fw, a, b = _fw(lab, native, nsf_packages, ["block-tcp-dst=5023"])
    native.start(fw)
    # the wan side moves to a new port (the firewall takes exactly two)
    native.update(fw, add_ports=(port("out2", lab.name("ft")),), remove_ports=("out",))
    b = lab.host("b2", native.netns, lab.name("ft"), "10.61.0.2/24")
    tables = lab.run(fw, "nft", "list", "tables").stdout.split("\n")
    assert [t for t in tables if t.strip()] == ["table inet composer_fw"]
    assert lab.run(fw, "nft", "list", "ruleset").stdout.count("tcp dport 5023") == 1
    assert lab.ping(a, "10.61.0.2")
    blocked = lab.serve_iperf3(b, 5023)
    assert not lab.tcp_connects(a, "10.61.0.2", 5023)
    blocked.kill()


def test_firewall_refuses_bad_parameters(lab, native, nsf_packages):
    with pytest.raises(ScriptError) as failure:
        native.create(spec(lab.name("fw"), nsf_packages["firewall"],
                           [("in", lab.name("fi")), ("out", lab.name("fo"))],
                           ["block-tcp-dst=23;flush ruleset"]))
    assert failure.value.status == 2
    assert "bad port" in failure.value.output
    assert not netlink.netns_exists(lab.name("fw"))


def test_nat_masquerades_inside_hosts_behind_its_outside_address(lab, native, nsf_packages):
    node = native.netns
    nat = lab.name("nat")
    native.create(spec(nat, nsf_packages["nat"], [("inside", lab.name("ni"), "10.62.1.1/24"),
                                                   ("outside", lab.name("no"), "192.168.62.1/24")]))
    inside = lab.host("i", node, lab.name("ni"), "10.62.1.2/24", gateway="10.62.1.1")
    outside = lab.host("o", node, lab.name("no"), "192.168.62.2/24")   # no route back
    native.start(nat)

    assert lab.ping(inside, "192.168.62.2")
    server = lab.serve_iperf3(outside, 5201)
    assert lab.transfers(inside, "192.168.62.2", 5201)
    report = lab.server_report(server)
    assert report["start"]["connected"][0]["remote_host"] == "192.168.62.1"

    # Nothing gets in uninvited, even with a route to the inside.
    netlink.route_add("10.62.1.0/24", gateway="192.168.62.1", netns=outside)
    assert not lab.ping(outside, "10.62.1.2", count=2)

    native.stop(nat)
    assert not lab.ping(inside, "192.168.62.2", count=1)


def test_router_forwards_between_subnets_along_its_static_routes(lab, native, nsf_packages):
    node = native.netns
    router = lab.name("rt")
    native.create(spec(router, nsf_packages["router"],
                       [("a", lab.name("ra"), "10.63.1.1/24"), ("b", lab.name("rb"), "10.63.9.1/24")],
                       ["route=10.63.2.0/24,via=10.63.9.2", "route=10.63.3.0/24,dev=eth1"]))
    h1 = lab.host("h", node, lab.name("ra"), "10.63.1.2/24", gateway="10.63.1.1")
    h2 = lab.host("k", node, lab.name("rb"), "10.63.9.2/24", gateway="10.63.9.1")
    # h2 also owns 10.63.2.2, reachable only through the router's static route.
    netlink.addr_add("lo", "10.63.2.2", 32, netns=h2)
    routes = lab.run(router, "ip", "route").stdout
    assert "10.63.2.0/24 via 10.63.9.2 dev eth1" in routes
    assert "10.63.3.0/24 dev eth1" in routes
    assert not lab.ping(h1, "10.63.9.2", count=1), "not started: not forwarding"
    lab.forget_neighbours(h1)

    native.start(router)
    assert lab.ping(h1, "10.63.9.2")
    assert lab.ping(h1, "10.63.2.2")
    server = lab.serve_iperf3(h2, 5201)
    assert lab.transfers(h1, "10.63.2.2", 5201)
    assert lab.server_report(server)["start"]["connected"][0]["remote_host"] == "10.63.1.2"


def test_bridge_switches_between_three_ports(lab, native, nsf_packages):
    node = native.netns
    br = lab.name("br")
    ports = [("p%d" % i, lab.name("b%d" % i)) for i in range(3)]
    native.create(spec(br, nsf_packages["bridge"], ports))
    hosts = [lab.host("h%d" % i, node, ports[i][1], "10.64.0.%d/24" % (i + 1)) for i in range(3)]
    native.start(br)
    for i, src in enumerate(hosts):
        for j in range(3):
            if i != j:
                assert lab.ping(src, "10.64.0.%d" % (j + 1), count=2), (i, j)
    server = lab.serve_iperf3(hosts[2], 5201)
    assert lab.transfers(hosts[0], "10.64.0.3", 5201)
    server.wait(timeout=10)


def test_update_adds_a_port_that_carries_traffic_and_removes_one(lab, native, nsf_packages):
    node = native.netns
    br = lab.name("br")
    native.create(spec(br, nsf_packages["bridge"], [("p0", lab.name("b0")), ("p1", lab.name("b1"))]))
    h0 = lab.host("h0", node, lab.name("b0"), "10.65.0.1/24")
    h1 = lab.host("h1", node, lab.name("b1"), "10.65.0.2/24")
    native.start(br)
    assert lab.ping(h0, "10.65.0.2")

    ports = native.update(br, add_ports=(port("p2", lab.name("b2")),))
    assert {a.port_id: a.name for a in ports} == {"p0": lab.name("b0"), "p1": lab.name("b1"), "p2": lab.name("b2")}
    assert [p["ifname"] for p in native.instance_ports(br)] == ["eth0", "eth1", "eth2"]
    h2 = lab.host("h2", node, lab.name("b2"), "10.65.0.3/24")
    assert lab.ping(h0, "10.65.0.3")
    server = lab.serve_iperf3(h2, 5201)
    assert lab.transfers(h0, "10.65.0.3", 5201)
    server.wait(timeout=10)

    ports = native.update(br, remove_ports=("p1",))
    assert {a.port_id: a.name for a in ports} == {"p0": lab.name("b0"), "p2": lab.name("b2")}
    assert not netlink.link_exists(lab.name("b1"), node)
    assert not netlink.link_exists("eth1", br)
    assert not lab.ping(h0, "10.65.0.2", count=1)
    assert lab.ping(h0, "10.65.0.3")

    # A new port takes the lowest free in-function name.
    native.update(br, add_ports=(port("p3", lab.name("b3")),))
    assert {p["port_id"]: p["ifname"] for p in native.instance_ports(br)} == {
        "p0": "eth0", "p2": "eth2", "p3": "eth1"}
    assert native.status(br) == "running"
