"""The OVS driver is found by name and refuses bad arguments before it touches any daemon.

The driver here points at a database socket that does not exist: every call below must
fail on its arguments alone (or, for check(), say clearly that the database is missing).
"""

import pytest

from drivers import registry
from drivers.errors import InvalidArgument, PrerequisiteError
from drivers.vswitch.ovs import OVSDriver


@pytest.fixture
def driver(tmp_path):
    d = registry.create("vswitch", "ovs", db_socket="unix:%s" % (tmp_path / "no.sock"),
                        run_dir=str(tmp_path), netns=None, datapath_type="netdev")
    yield d
    d.close()


def test_registered_as_ovs(driver):
    assert isinstance(driver, OVSDriver)
    assert registry.lookup("vswitch", "ovs") is OVSDriver
    assert "ovs" in registry.names("vswitch")


def test_check_names_the_missing_database(driver, tmp_path):
    with pytest.raises(PrerequisiteError, match="cannot reach the OVS database at unix:%s"
                       % (tmp_path / "no.sock")):
        driver.check()


@pytest.mark.parametrize("port, message", [
    (dict(name="eth0", kind="vhost-user"), "vhost-user ports are dpdkvhostuser or"),
    (dict(name="p", kind="dpdkvhostuserclient"), "needs options vhost-server-path"),
    (dict(name="p", kind="dpdkvhostuserclient", options={"vhost-server-path": "x.sock"}),
     "bad vhost-server-path .x.sock."),
    (dict(name="p", kind="memif"), "a memif port needs options socket"),
    (dict(name="p", kind="memif", options={"socket": "/s,role=client"}), "bad memif socket"),
    (dict(name="p", kind="memif", options={"socket": "/s", "role": "master"}),
     "bad memif role .master."),
    (dict(name="p", kind="memif", options={"socket": "/s", "rsize": 4}),
     "options rsize are not supported for memif ports"),
    (dict(name="p", kind="dpdkvhostuser", options={"n_rxq": 0}), "bad n_rxq 0"),
    (dict(name="eth0", kind="vxlan"), "port kind 'vxlan' is not supported"),
    (dict(name="this-is-16-chars"), "bad port name 'this-is-16-chars'"),
    (dict(name="-eth0"), "bad port name"),
    (dict(name="eth 0"), "bad port name"),
    (dict(name="p", ofport=0), "bad ofport 0"),
    (dict(name="p", ofport=65280), "bad ofport 65280"),
    (dict(name="p", kind="internal", options={"mac": "02:00:00:00:00:0g"}), "bad mac of port"),
    (dict(name="p", kind="system", options={"mac": "02:00:00:00:00:01"}),
     "options mac are not supported for system ports"),
    (dict(name="p", kind="patch"), "bad patch peer None"),
    (dict(name="p", kind="gre", options={"key": 1}), "a gre port needs options remote_ip"),
    (dict(name="p", kind="gre", options={"remote_ip": "10.0.0.300"}), "bad remote_ip"),
    (dict(name="p", kind="gre", options={"remote_ip": "10.0.0.1", "key": 2**32}),
     "bad GRE key 4294967296"),
    (dict(name="p", kind="gre", options={"remote_ip": "10.0.0.1", "ttl": 0}), "bad ttl 0"),
    (dict(name="p", kind="gre", options={"remote_ip": "10.0.0.1", "csum": "true"}),
     "options csum are not supported for gre ports"),
    (dict(name="p", external_ids={"k": 1}), "bad external_ids entry 'k': 1"),
    (dict(name="p", external_ids={"k": "a\nb"}), "bad external_ids entry"),
])
def test_bad_ports_are_refused(driver, port, message):
    with pytest.raises(InvalidArgument, match=message):
        driver.create_ports("lsi", [port])


@pytest.mark.parametrize("sap_type, params, message", [
    ("interface", {}, "bad if_name None"),
    ("vlan", {"if-name": "eth1", "vlan-id": 4095}, "bad vlan_id 4095"),
    ("gre", {"local_ip": "10.0.0.1", "remote_ip": "10.0.0.2"}, "a gre SAP needs key"),
    ("gre", {"local_ip": "10.0.0.1", "remote_ip": "10.0.0.2", "key": -1}, "bad GRE key -1"),
    ("host-stack", {"dhcp": True}, "dhcp is not supported"),
    ("host-stack", {"ipv4-address": "10.0.0.1", "prefix-length": 33}, "bad prefix_length 33"),
    ("host-stack", {"ipv4_address": "10.0.0.1", "mac_address": "xx"}, "bad mac of port"),
    ("mpls", {}, "unknown SAP type 'mpls'"),
])
def test_bad_saps_are_refused(driver, sap_type, params, message):
    with pytest.raises(InvalidArgument, match=message):
        driver.create_sap("lsi", "sap1", sap_type, params)


def test_bad_port_descriptions_are_refused(driver):
    with pytest.raises(InvalidArgument, match="bad port description"):
        driver.create_ports("lsi", [dict(name="p", kinds="internal")])
    with pytest.raises(InvalidArgument, match="described by a dict"):
        driver.create_ports("lsi", ["p"])
    with pytest.raises(InvalidArgument, match="bad port description"):
        driver.create_lsi("lsi", ports=[dict(nam="p")])


def test_bad_lsis_links_and_endpoints_are_refused(driver):
    with pytest.raises(InvalidArgument, match="bad LSI name"):
        driver.create_lsi("br/0")
    with pytest.raises(InvalidArgument, match="at most 13 characters"):
        driver.create_virtual_links("a", "b", ["fourteen-chars"])
    with pytest.raises(InvalidArgument, match="two different LSIs"):
        driver.create_virtual_links("a", "a", ["l1"])
    with pytest.raises(InvalidArgument, match="bad tunnel endpoint address"):
        driver.create_tunnel_endpoint("lsi0", "tep", "10.0.0", 24, "eth0", cookie=1)
    with pytest.raises(InvalidArgument, match="bad cookie"):
        driver.create_tunnel_endpoint("lsi0", "tep", "10.0.0.1", 24, "eth0", cookie=2**64)


def test_link_port_names():
    assert OVSDriver.link_port_names("cnc-g1-l3") == ("cnc-g1-l3-a", "cnc-g1-l3-b")
