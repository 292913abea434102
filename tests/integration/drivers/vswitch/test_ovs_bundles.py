"""Bundles over the driver's persistent OpenFlow connection (ofconn.py), on the real switch.

The connection encodes flow-mods itself: every match field and action the driver speaks
must land in the switch exactly as the ovs-ofctl text of the same flow does, a bundle the
switch refuses must leave every flow as it was, and a connection that died with its bridge
must be opened again."""

import re
import struct
import subprocess

import pytest

from drivers.errors import CommandError
from drivers.vswitch import ofconn, openflow
from drivers.vswitch.base import Action, Flow
from drivers.vswitch.ofctl import OpenFlowClient
from tests.resources import PREFIX

PORTS = ("pa", "pb", "pc")
EVERY_FIELD_AND_ACTION = [
    Flow(0x1, 10, (("in_port", "pa"),), (Action("output", "pb"),)),
    Flow(0x2, 11, (("in_port", "pa"), ("vlan_tci", "0x0000/0x1000")),
         (Action("push_vlan", 20), Action("output", "pb"), Action("pop_vlan"),
          Action("output", "pc"))),
    Flow(0x3, 12, (("in_port", "pb"), ("dl_vlan", 7), ("dl_vlan_pcp", 5)),
         (Action("pop_vlan"), Action("output", "pa"))),
    Flow(2**64 - 2, 0, (("in_port", "pc"), ("dl_src", "aa:bb:cc:00:00:01"),
                        ("dl_dst", "01:00:5e:00:00:00/ff:ff:ff:80:00:00"),
                        ("dl_type", 0x0800), ("nw_src", "10.0.0.0/24"), ("nw_dst", "10.1.2.3"),
                        ("nw_proto", 6), ("ip_dscp", 46), ("tp_src", 1024), ("tp_dst", 443)),
         (Action("set_eth_src", "02:00:00:00:00:01"), Action("set_eth_dst", "02:00:00:00:00:02"),
          Action("set_ipv4_src", "1.2.3.4"), Action("set_ipv4_dst", "5.6.7.8"),
          Action("dec_ttl"), Action("output", "pa"))),
    Flow(0x5, 13, (("dl_type", 0x86DD), ("ipv6_src", "2001:db8::/32"),
                   ("ipv6_dst", "2001:db8::1"), ("nw_proto", 17), ("tp_dst", 53)),
         (Action("in_port"),)),
    Flow(0x6, 14, (("dl_type", 0x0806), ("nw_src", "10.0.0.1"), ("nw_dst", "10.0.0.0/8")),
         (Action("output", "LSI"),)),
    Flow(0x7, 15, (("dl_type", 0x0800), ("nw_proto", 132), ("tp_src", 9)), (Action("drop"),)),
    Flow(0x8, 16, (("in_port", "pa"), ("dl_type", 0x0800), ("nw_proto", 17), ("tp_src", 68)),
         (Action("output", "pa"),)),            # back out of its in-port: the in_port action
]


def _lsi(driver, tag):
    name = PREFIX + tag
    driver.create_lsi(name, ports=[dict(name=name + p, kind="internal", ofport=n + 1)
                                   for n, p in enumerate(PORTS)])
    return name


def _flows(flows, lsi):
    """The flows with this LSI's port names."""
    def port(name):
        return lsi if name == "LSI" else lsi + name
    return [Flow(f.cookie, f.priority,
                 tuple((k, port(v)) if k == "in_port" else (k, v) for k, v in f.match),
                 tuple(Action(a.kind, port(a.arg)) if a.kind == "output" else a
                       for a in f.actions)) for f in flows]


def _dump(private_ovs, lsi) -> list[str]:
    """dump-flows without counters and ages, sorted."""
    text = subprocess.run(["ovs-ofctl", "-O", "OpenFlow14", "--no-names", "dump-flows",
                           "unix:%s/%s.mgmt" % (private_ovs.run_dir, lsi)],
                          capture_output=True, text=True, check=True).stdout
    lines = [re.sub(r" (duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*,", "", line)
             for line in text.splitlines()[1:]]
    return sorted(line.strip() for line in lines)


def _no_ofctl(monkeypatch):
    def refuse(self, lines):
        raise AssertionError("ovs-ofctl was used for a bundle")
    monkeypatch.setattr(OpenFlowClient, "bundle", refuse)


def test_flows_land_as_the_ovs_ofctl_text_would(driver, private_ovs, monkeypatch):
    by_text, by_connection = _lsi(driver, "bt"), _lsi(driver, "bc")
    ofports = driver._ofports(by_text)
    OpenFlowClient(str(private_ovs.run_dir), by_text).bundle(
        openflow.bundle_lines(_flows(EVERY_FIELD_AND_ACTION, by_text), [], ofports))
    _no_ofctl(monkeypatch)
    driver.apply_flows(by_connection, add=_flows(EVERY_FIELD_AND_ACTION, by_connection))
    expected = _dump(private_ovs, by_text)
    assert len(expected) == len(EVERY_FIELD_AND_ACTION)
    assert _dump(private_ovs, by_connection) == expected
    assert sorted(driver.dump_flows(by_connection), key=str) == sorted(
        map(openflow.canonical, _flows(EVERY_FIELD_AND_ACTION, by_connection)), key=str)
    # removal by cookie, from every table, in the same bundle as an add
    driver.apply_flows(by_connection, add=_flows(EVERY_FIELD_AND_ACTION[:1], by_connection),
                       remove_cookies=[f.cookie for f in EVERY_FIELD_AND_ACTION])
    assert _dump(private_ovs, by_connection) == [
        line for line in expected if line.startswith("cookie=0x1,")]


def test_a_refused_bundle_changes_nothing(driver, private_ovs, monkeypatch):
    lsi = _lsi(driver, "br")
    first = _flows(EVERY_FIELD_AND_ACTION[:2], lsi)
    driver.apply_flows(lsi, add=first)
    before = _dump(private_ovs, lsi)
    _no_ofctl(monkeypatch)
    # Refused at commit: the table holds 3 flows at most.
    subprocess.run(["ovs-vsctl", "--db=%s" % private_ovs.db_socket, "--",
                    "--id=@t", "create", "Flow_Table", "flow_limit=3", "overflow_policy=refuse",
                    "--", "set", "Bridge", lsi, "flow_tables:0=@t"], check=True)
    with pytest.raises(CommandError) as refused:
        driver.apply_flows(lsi, add=_flows(EVERY_FIELD_AND_ACTION[2:], lsi), remove_cookies=[1])
    assert "OFPFMFC_TABLE_FULL" in refused.value.detail
    assert _dump(private_ovs, lsi) == before
    # Refused as it is added (an action the switch rejects): discarded, not committed.
    connection = driver._bundler(lsi)
    xids = connection.next_xids()
    good = ofconn.encode_bundle([], [1], driver._ofports(lsi), xids)
    group = struct.pack("!HHI", 22, 8, 99)                 # OFPAT_GROUP to no group
    bad = ofconn._message(ofconn.OFPT_FLOW_MOD, next(xids), struct.pack(
        "!QQBBHHHIIIHH", 9, 0, 0, ofconn.OFPFC_ADD, 0, 0, 1, ofconn.NO_BUFFER,
        ofconn.OFPP_ANY, ofconn.OFPG_ANY, 0, 0) + struct.pack("!HH4x", 1, 4)
        + struct.pack("!HH4x", ofconn.OFPIT_APPLY_ACTIONS, 16) + group)
    with pytest.raises(CommandError) as refused:
        connection.bundle(good + [bad])
    assert "OFPBAC_BAD_OUT_GROUP" in refused.value.detail
    assert _dump(private_ovs, lsi) == before
    # the connection is still good
    driver.apply_flows(lsi, remove_cookies=[2])
    assert [line for line in _dump(private_ovs, lsi) if "cookie=0x2," in line] == []


def test_a_bridge_made_again_gets_a_new_connection(driver, private_ovs, monkeypatch, caplog):
    caplog.set_level("INFO", logger="drivers.vswitch.ofconn")
    lsi = _lsi(driver, "bn")
    flows = _flows(EVERY_FIELD_AND_ACTION[:1], lsi)
    driver.apply_flows(lsi, add=flows)
    _no_ofctl(monkeypatch)
    vsctl = ["ovs-vsctl", "--db=%s" % private_ovs.db_socket]
    # behind the driver's back: the old connection dies with the bridge
    subprocess.run(vsctl + ["del-br", lsi], check=True)
    subprocess.run(vsctl + ["add-br", lsi, "--", "set", "Bridge", lsi,
                            "datapath_type=netdev", "fail_mode=secure",
                            "protocols=OpenFlow13,OpenFlow14"] + sum(
        (["--", "add-port", lsi, lsi + p, "--", "set", "Interface", lsi + p, "type=internal",
          "ofport_request=%d" % (n + 1)] for n, p in enumerate(PORTS)), []), check=True)
    driver.apply_flows(lsi, add=flows)
    assert "connecting again" in caplog.text
    assert driver.dump_flows(lsi) == [openflow.canonical(f) for f in flows]
    # and through the driver
    driver.destroy_lsi(lsi)
    lsi = _lsi(driver, "bn")
    driver.apply_flows(lsi, add=flows)
    assert driver.dump_flows(lsi) == [openflow.canonical(f) for f in flows]
