"""OVS driver management on a real ovsdb-server + ovs-vswitchd: LSIs, ports, virtual links.

What the driver wrote is read back independently with ovs-vsctl; ports are real netdevs in
the node namespace.
"""

import logging
import subprocess
import threading
import time

import pytest
from pyroute2 import IPRoute

from drivers import registry
from drivers.errors import CommandError, ResourceExists, ResourceNotFound
from drivers.vswitch.base import LsiInfo, PortInfo, VirtualLink
from drivers.vswitch.ovs_process import PrivateOVS
from tests.resources import PREFIX

from .lab import in_ns

LOG = logging.getLogger(__name__)
OWNER = {"composer-owner": PREFIX}


def vsctl(ovs, *args) -> str:
    """ovs-vsctl's answer, without the quotes it puts around some strings."""
    out = subprocess.run(["ovs-vsctl", "--db=%s" % ovs.db_socket, "--timeout=5", *args],
                         capture_output=True, text=True, check=True).stdout.strip()
    return out.replace('"', "")


def test_check_and_info(driver):
    driver.check()
    info = driver.info()
    assert info["kind"] == "ovs"
    assert info["version"].startswith("3.")
    assert info["datapath_type"] == "netdev"
    assert set(info["port_technologies"]) == {"system", "internal", "tap", "patch", "gre"}
    assert info["sap_types"] == ["interface", "vlan", "gre", "host-stack"]
    assert info["max_name_length"] == 15


def test_lsi_lifecycle(driver, lab, private_ovs, node_netns):
    lsi0, nic1, nic2 = PREFIX + "ml0", PREFIX + "mn1", PREFIX + "mn2"
    lab.host(PREFIX + "mh1", node_netns, nic1)
    lab.host(PREFIX + "mh2", node_netns, nic2)

    info = driver.create_lsi(lsi0, ports=(nic1,), external_ids=OWNER)
    assert info.name == lsi0 and info.datapath_type == "netdev"
    assert len(info.datapath_id) == 16 and info.external_ids == OWNER
    # As ovs-vsctl sees it: secure, OpenFlow 1.3 + 1.4, tagged, and no flow at all.
    assert vsctl(private_ovs, "get", "Bridge", lsi0, "fail_mode") == "secure"
    assert vsctl(private_ovs, "get", "Bridge", lsi0, "protocols") == "[OpenFlow13, OpenFlow14]"
    assert vsctl(private_ovs, "get", "Bridge", lsi0, "datapath_type") == "netdev"
    for table, row in (("Bridge", lsi0), ("Port", lsi0), ("Port", nic1), ("Interface", nic1)):
        assert vsctl(private_ovs, "get", table, row, "external_ids:composer-owner") == PREFIX
    assert driver.dump_flows(lsi0) == []
    assert [p.name for p in driver.list_ports(lsi0)] == [nic1]

    with pytest.raises(ResourceExists):
        driver.create_lsi(lsi0, ports=(nic1,))
    # The boot path: reuse LSI-0 and add the interfaces it lacks.
    again = driver.create_lsi(lsi0, ports=(nic1, nic2), external_ids=OWNER, may_exist=True)
    assert again == info
    ports = driver.list_ports(lsi0)
    assert [(p.name, p.kind) for p in ports] == [(nic1, "system"), (nic2, "system")]
    assert all(p.ofport > 0 for p in ports)

    graph = driver.create_lsi(PREFIX + "mg1", external_ids={"composer-graph": "g1"})
    assert [i.name for i in driver.list_lsis(OWNER)] == [lsi0]
    assert driver.list_lsis({"composer-graph": "g1"}) == [graph]
    assert {i.name for i in driver.list_lsis()} >= {lsi0, graph.name}

    # Without a local port: no Port row and no netdev named like the LSI.
    bare = driver.create_lsi(PREFIX + "mg2", ports=[dict(name=PREFIX + "mgp", kind="internal")],
                             local_port=False)
    assert bare in driver.list_lsis()
    assert vsctl(private_ovs, "list-ports", bare.name) == PREFIX + "mgp"
    assert [p.name for p in driver.list_ports(bare.name)] == [PREFIX + "mgp"]
    assert vsctl(private_ovs, "--if-exists", "get", "Port", bare.name, "name") == ""
    assert in_ns(node_netns, "ip", "link", "show", "dev", bare.name,
                 check=False).returncode != 0

    driver.destroy_lsi(bare.name)
    driver.destroy_lsi(graph.name)
    driver.destroy_lsi(lsi0)
    assert driver.list_lsis(OWNER) == []
    with pytest.raises(ResourceNotFound):
        driver.destroy_lsi(lsi0)
    # The NICs are still there for the next LSI-0.
    assert nic1 in in_ns(node_netns, "ip", "-o", "link").stdout


def test_ports_in_batches_all_or_none(driver, lab, private_ovs, node_netns):
    lsi = PREFIX + "mp"
    driver.create_lsi(lsi)
    lab.host(PREFIX + "mph", node_netns, PREFIX + "mpv")
    made = driver.create_ports(lsi, [
        dict(name=PREFIX + "mpv", kind="system", external_ids={"composer-sf": "fw"}),
        dict(name=PREFIX + "mpi", kind="internal", options={"mac": "02:00:00:00:aa:01"},
             ofport=40),
        dict(name=PREFIX + "mpt", kind="tap")])
    assert [(p.name, p.kind) for p in made] == [
        (PREFIX + "mpv", "system"), (PREFIX + "mpi", "internal"), (PREFIX + "mpt", "tap")]
    assert made[1].ofport == 40
    assert made[0].external_ids == {"composer-sf": "fw"}
    assert vsctl(private_ovs, "get", "Interface", PREFIX + "mpv",
                 "external_ids:composer-sf") == "fw"
    # Internal and tap ports are netdevs of the node namespace, with the MAC asked for.
    with IPRoute(netns=node_netns, flags=0) as ipr:
        link = ipr.get_links(ifname=PREFIX + "mpi")[0]
        assert link.get("IFLA_ADDRESS") == "02:00:00:00:aa:01"
        assert ipr.link_lookup(ifname=PREFIX + "mpt")

    before = driver.list_ports(lsi)
    # A missing netdev: nothing of the batch is created.
    with pytest.raises(ResourceNotFound, match="no network interface %snope" % PREFIX):
        driver.create_ports(lsi, [dict(name=PREFIX + "mpj", kind="internal"),
                                  dict(name=PREFIX + "nope", kind="system")])
    # A name already in use anywhere on the switch: nothing either.
    with pytest.raises(ResourceExists, match="port %smpi exists already" % PREFIX):
        driver.create_ports(lsi, [dict(name=PREFIX + "mpj", kind="internal"),
                                  dict(name=PREFIX + "mpi", kind="internal")])
    # A port vswitchd refuses (a patch port peered with itself): the whole batch is undone.
    with pytest.raises(CommandError, match="could not add"):
        driver.create_ports(lsi, [dict(name=PREFIX + "mpj", kind="internal"),
                                  dict(name=PREFIX + "mpk", kind="patch",
                                       options={"peer": PREFIX + "mpk"})])
    assert driver.list_ports(lsi) == before

    driver.destroy_ports(lsi, [PREFIX + "mpi", PREFIX + "mpt"])
    assert [p.name for p in driver.list_ports(lsi)] == [PREFIX + "mpv"]
    with pytest.raises(ResourceNotFound):
        driver.destroy_ports(lsi, [PREFIX + "mpv", PREFIX + "mpi"])
    assert [p.name for p in driver.list_ports(lsi)] == [PREFIX + "mpv"]
    driver.destroy_port(lsi, PREFIX + "mpv")
    assert driver.list_ports(lsi) == []


def test_virtual_links(driver, private_ovs):
    lsi0, graph = PREFIX + "vl0", PREFIX + "vg1"
    driver.create_lsi(lsi0)
    driver.create_lsi(graph)
    links = driver.create_virtual_links(lsi0, graph, [PREFIX + "vk1", PREFIX + "vk2"],
                                        external_ids={"composer-graph": "g1"})
    assert links == [VirtualLink(PREFIX + "vk1", lsi0, PREFIX + "vk1-a", graph, PREFIX + "vk1-b"),
                     VirtualLink(PREFIX + "vk2", lsi0, PREFIX + "vk2-a", graph, PREFIX + "vk2-b")]
    assert vsctl(private_ovs, "get", "Interface", PREFIX + "vk1-a", "options:peer") == \
        PREFIX + "vk1-b"
    assert [(p.name, p.kind) for p in driver.list_ports(graph)] == [
        (PREFIX + "vk1-b", "patch"), (PREFIX + "vk2-b", "patch")]
    assert all(p.ofport > 0 for p in driver.list_ports(lsi0))
    assert driver.list_virtual_links({"composer-graph": "g1"}) == links
    with pytest.raises(ResourceExists):
        driver.create_virtual_links(lsi0, graph, [PREFIX + "vk3", PREFIX + "vk1"])
    assert len(driver.list_ports(lsi0)) == 2

    # A patch port whose peer comes later (here on another LSI, in a later call).
    half = driver.create_port(lsi0, PREFIX + "vh-a", "patch", options={"peer": PREFIX + "vh-b"})
    assert half.ofport > 0
    driver.create_port(graph, PREFIX + "vh-b", "patch", options={"peer": PREFIX + "vh-a"})
    assert vsctl(private_ovs, "get", "Interface", PREFIX + "vh-a", "error") == "[]"
    driver.destroy_port(lsi0, PREFIX + "vh-a")
    driver.destroy_port(graph, PREFIX + "vh-b")

    driver.destroy_virtual_links(links[:1])
    assert [p.name for p in driver.list_ports(lsi0)] == [PREFIX + "vk2-a"]
    assert [p.name for p in driver.list_ports(graph)] == [PREFIX + "vk2-b"]
    with pytest.raises(ResourceNotFound):
        driver.destroy_virtual_links(links)
    driver.destroy_virtual_links(links[1:])
    assert driver.list_ports(lsi0) == [] and driver.list_ports(graph) == []


def reconfigurations(driver) -> int:
    """How many times ovs-vswitchd has reconfigured itself (its coverage counter)."""
    return int(driver.appctl("coverage/read-counter", "bridge_reconfigure"))


def test_ports_and_links_in_one_change(driver, lab, node_netns):
    lsi0, graph = PREFIX + "cl0", PREFIX + "cg1"
    driver.create_lsi(lsi0)
    driver.create_lsi(graph)
    lab.host(PREFIX + "clh", node_netns, PREFIX + "clv")
    names = [PREFIX + "ck1", PREFIX + "ck2"]
    ports = [dict(name=PREFIX + "clv", kind="system", external_ids={"composer-sf": "fw"})]
    # A port vswitchd refuses: neither the ports nor the links are left.
    with pytest.raises(CommandError, match="could not add"):
        driver.create_ports_and_links(graph, ports + [dict(name=PREFIX + "clk", kind="patch",
                                                           options={"peer": PREFIX + "clk"})],
                                      lsi0, names)
    assert driver.list_ports(lsi0) == [] and driver.list_ports(graph) == []

    time.sleep(0.5)             # the veth's own link events are behind vswitchd
    before = reconfigurations(driver)
    driver.create_ports_and_links(graph, ports, lsi0, names,
                                  link_external_ids={"composer-graph": "g1"},
                                  link_ofports={PREFIX + "ck1-a": 71})
    time.sleep(0.5)
    # One transaction for the port and both links, and one more for the veth's link event
    # (vswitchd puts it in promiscuous mode).
    assert reconfigurations(driver) - before == 2
    assert [p.name for p in driver.list_ports(graph)] == [PREFIX + "ck1-b", PREFIX + "ck2-b",
                                                         PREFIX + "clv"]
    assert [(p.name, p.ofport) for p in driver.list_ports(lsi0)][0] == (PREFIX + "ck1-a", 71)
    links = driver.list_virtual_links({"composer-graph": "g1"})
    assert [l.name for l in links] == names

    # A missing port: nothing is removed.
    with pytest.raises(ResourceNotFound):
        driver.destroy_ports_and_links(graph, [PREFIX + "clv", PREFIX + "nope"], links)
    assert len(driver.list_ports(graph)) == 3
    before = reconfigurations(driver)
    driver.destroy_ports_and_links(graph, [PREFIX + "clv"], links)
    time.sleep(0.5)
    assert reconfigurations(driver) - before == 2
    assert driver.list_ports(lsi0) == [] and driver.list_ports(graph) == []


def test_calls_from_several_threads(driver):
    lsi = PREFIX + "mt"
    driver.create_lsi(lsi)
    errors = []

    def work(n):
        try:
            driver.create_ports(lsi, [dict(name="%smt%d-%d" % (PREFIX, n, i), kind="internal")
                                      for i in range(10)])
            driver.list_ports(lsi)
            driver.destroy_ports(lsi, ["%smt%d-%d" % (PREFIX, n, i) for i in range(5)])
        except Exception as err:            # reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    ports = driver.list_ports(lsi)
    assert len(ports) == 20
    assert len({p.ofport for p in ports}) == 20


def test_a_hundred_veth_ends_in_one_call(driver, node_netns):
    """Measures create_ports/destroy_ports of 100 system ports (printed, not asserted)."""
    lsi = PREFIX + "m100"
    driver.create_lsi(lsi)
    names = ["%sh%03d" % (PREFIX, i) for i in range(100)]
    with IPRoute(netns=node_netns, flags=0) as ipr:
        for name in names:
            ipr.link("add", ifname=name, kind="veth", peer=name + "p")
    try:
        start = time.monotonic()
        ports = driver.create_ports(lsi, [dict(name=n) for n in names])
        created = time.monotonic() - start
        assert len(ports) == 100 and all(p.ofport > 0 for p in ports)
        start = time.monotonic()
        driver.destroy_ports(lsi, names)
        destroyed = time.monotonic() - start
        print("\ncreate_ports(100 veth ends): %.2f s; destroy_ports(100): %.2f s"
              % (created, destroyed))
        LOG.info("create_ports(100 veth ends): %.2f s; destroy_ports(100): %.2f s",
                 created, destroyed)
        assert driver.list_ports(lsi) == []
    finally:
        with IPRoute(netns=node_netns, flags=0) as ipr:
            for name in names:
                for index in ipr.link_lookup(ifname=name):
                    ipr.link("del", index=index)


def test_unknown_lsi(driver):
    with pytest.raises(ResourceNotFound, match="no LSI %snone" % PREFIX):
        driver.list_ports(PREFIX + "none")
    with pytest.raises(ResourceNotFound):
        driver.create_ports(PREFIX + "none", [dict(name=PREFIX + "x", kind="internal")])
    assert isinstance(driver.create_lsi(PREFIX + "mu"), LsiInfo)
    assert isinstance(driver.create_port(PREFIX + "mu", PREFIX + "mu1", "internal"), PortInfo)


def test_survives_an_ovsdb_server_restart(session_tmp, lab):
    """The IDL reconnects by itself; a call made meanwhile waits for it and succeeds."""
    netns = lab.netns(PREFIX + "rc")
    ovs = PrivateOVS(session_tmp / "ovs-rc", netns=netns)
    ovs.start()
    driver = registry.create("vswitch", "ovs", db_socket=ovs.db_socket,
                             run_dir=str(ovs.run_dir), netns=netns)
    try:
        driver.check()
        driver.create_lsi(PREFIX + "rc0")
        subprocess.run(["ovs-appctl", "-t", str(ovs.ovsdb_ctl), "exit"], check=True)
        while ovs.ovsdb_pid() is not None:
            time.sleep(0.05)
        ovs.start()                     # a new ovsdb-server; vswitchd kept running
        port = driver.create_port(PREFIX + "rc0", PREFIX + "rc1", "internal")
        assert port.ofport > 0
        assert [p.name for p in driver.list_ports(PREFIX + "rc0")] == [PREFIX + "rc1"]
    finally:
        driver.close()
        ovs.stop()
