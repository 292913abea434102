"""The OVSDB rows of each port kind a function port may be attached as (the attachment
kinds of drivers/compute/base.py), and the refusal, naming the datapath, of a kind the
LSI's datapath does not offer. The rows are checked exactly here; the userspace datapath
test (integration) passes traffic through a tap port, and OVS-DPDK, which vhost-user and
memif ports need, is not installed on the test machines."""

from types import SimpleNamespace

import pytest

from drivers.errors import NotSupported
from drivers.vswitch.ovs import OVSDriver, _port_spec


class _Row(SimpleNamespace):
    pass


class _Txn:
    """Records the rows a transaction inserts, column by column."""

    def __init__(self):
        self.rows = []

    def insert(self, table):
        row = _Row()
        self.rows.append((table, row))
        return row


class _Tables:
    def __init__(self, datapath="netdev", iface_types=()):
        self.root = SimpleNamespace(iface_types=list(iface_types))
        self.bridge = SimpleNamespace(name="br", datapath_type=datapath)

    def table(self, name):
        return name

    def find(self, table, name):
        return self.bridge if (table, name) == ("Bridge", "br") else None


def rows(**port):
    txn = _Txn()
    OVSDriver._insert_port(txn, _Tables(), _port_spec(**port))
    return [(table, vars(row)) for table, row in txn.rows if table == "Interface"]


def test_a_tap_port():
    assert rows(name="t1", kind="tap", external_ids={"k": "v"}) == [
        ("Interface", {"name": "t1", "type": "tap", "external_ids": {"k": "v"}})]


def test_a_vhost_user_port_the_vswitch_serves():
    assert rows(name="v1", kind="dpdkvhostuser") == [
        ("Interface", {"name": "v1", "type": "dpdkvhostuser", "external_ids": {}})]


def test_a_vhost_user_port_the_function_serves():
    assert rows(name="v2", kind="dpdkvhostuserclient",
                options={"vhost-server-path": "/run/x/v2.sock", "n_rxq": 2}) == [
        ("Interface", {"name": "v2", "type": "dpdkvhostuserclient", "external_ids": {},
                       "options": {"vhost-server-path": "/run/x/v2.sock", "n_rxq": "2"}})]


def test_a_memif_port_is_a_dpdk_device_with_its_socket_in_the_file_system():
    assert rows(name="m1", kind="memif", options={"socket": "/run/x/m1.sock", "id": 3}) == [
        ("Interface", {"name": "m1", "type": "dpdk", "external_ids": {},
                       "options": {"dpdk-devargs": "net_memif_m1,role=server,id=3,"
                                                   "socket=/run/x/m1.sock,socket-abstract=no",
                                   "n_rxq": "2"}})]
    client = rows(name="m2", kind="memif", options={"socket": "/s", "role": "client",
                                                    "n_rxq": 1})[0][1]["options"]
    assert client == {"dpdk-devargs": "net_memif_m2,role=client,id=0,socket=/s,"
                                      "socket-abstract=no", "n_rxq": "1"}


DPDK_TYPES = ("dpdk", "dpdkvhostuser", "dpdkvhostuserclient", "tap", "internal", "patch")


@pytest.mark.parametrize("kind, options", [
    ("dpdkvhostuser", {}),
    ("dpdkvhostuserclient", {"vhost-server-path": "/s"}),
    ("memif", {"socket": "/s"}),
])
def test_dpdk_kinds_are_refused_naming_the_datapath(kind, options):
    placed = [("br", _port_spec("p1", kind, options))]
    with pytest.raises(NotSupported, match="p1: %s ports need OVS-DPDK, on the netdev "
                       "datapath; LSI br has the system datapath" % kind):
        OVSDriver._check_kinds(_Tables("system", DPDK_TYPES), placed)
    # netdev, but this ovs-vswitchd was built without DPDK
    with pytest.raises(NotSupported, match="offers no .* interfaces on the netdev datapath "
                       "of LSI br .*install openvswitch-switch-dpdk"):
        OVSDriver._check_kinds(_Tables("netdev", ("tap", "internal", "patch")), placed)
    OVSDriver._check_kinds(_Tables("netdev", DPDK_TYPES), placed)


def test_a_tap_port_on_either_datapath_that_offers_taps():
    placed = [("br", _port_spec("t1", "tap"))]
    for datapath in ("netdev", "system"):
        OVSDriver._check_kinds(_Tables(datapath, ("tap",)), placed)
    with pytest.raises(NotSupported, match="offers no tap interfaces"):
        OVSDriver._check_kinds(_Tables("netdev", ("internal",)), placed)
