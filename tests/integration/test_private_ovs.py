"""The private Open vSwitch instance starts, switches inside its namespace, and stops clean."""

import os
import signal
import subprocess
import time

from drivers.vswitch.ovs_process import PrivateOVS
from tests import resources
from tests.integration.drivers.vswitch.lab import Lab, in_ns, ping
from tests.resources import PREFIX


def _vsctl(ovs, *args):
    return subprocess.run(["ovs-vsctl", "--db=%s" % ovs.db_socket, "--timeout=5", *args],
                          capture_output=True, text=True, check=True).stdout


def _ifindex(name: str) -> int | None:
    """The index of a link of this namespace, None when there is none of that name."""
    out = subprocess.run(["ip", "-o", "link", "show", "dev", name], capture_output=True,
                         text=True).stdout
    return int(out.split(":", 1)[0]) if out else None


def _in_netns(pid: int, netns: str) -> bool:
    return os.stat("/proc/%d/ns/net" % pid).st_ino == os.stat("/run/netns/%s" % netns).st_ino


def test_private_ovs_starts_reuses_and_stops_cleanly(session_tmp):
    netns = "%sovs1" % PREFIX
    bridge = "%sbr" % PREFIX
    subprocess.run(["ip", "netns", "add", netns], check=True)
    # An agent may run beside the tests, its OVS here with its own ovs-netdev: the session's
    # OVS must neither make one here nor take that one over.
    root_datapath = _ifindex("ovs-netdev")
    ovs = PrivateOVS(session_tmp / "ovs1", netns=netns)
    try:
        ovs.start()
        ovsdb_pid, vswitchd_pid = ovs.ovsdb_pid(), ovs.vswitchd_pid()
        assert ovsdb_pid and vswitchd_pid
        assert _in_netns(vswitchd_pid, netns)

        # A bridge works end to end: vswitchd picks it up, makes its userspace datapath
        # device in the node namespace (not here), and serves OpenFlow.
        _vsctl(ovs, "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev")
        flows = subprocess.run(["ovs-ofctl", "dump-flows", ovs.bridge_mgmt(bridge)],
                               capture_output=True, text=True, env=ovs.env())
        assert flows.returncode == 0, flows.stderr
        assert "actions=NORMAL" in flows.stdout
        assert "ovs-netdev" in resources.link_names(netns)
        assert _ifindex("ovs-netdev") == root_datapath

        # A second start reuses the running daemons.
        PrivateOVS(session_tmp / "ovs1", netns=netns).start()
        assert (ovs.ovsdb_pid(), ovs.vswitchd_pid()) == (ovsdb_pid, vswitchd_pid)

        ovs.stop()
        assert ovs.ovsdb_pid() is None and ovs.vswitchd_pid() is None
        assert resources.processes_mentioning(str(ovs.run_dir)) == []

        # The database survives: a restart finds the bridge again.
        ovs.start()
        assert bridge in _vsctl(ovs, "list-br").split()
        ovs.stop()
        assert resources.processes_mentioning(str(ovs.run_dir)) == []
    finally:
        ovs.stop()
        subprocess.run(["ip", "netns", "del", netns], check=False)


def test_session_ovs_runs_in_the_node_namespace(private_ovs, node_netns):
    assert private_ovs.running()
    assert _in_netns(private_ovs.vswitchd_pid(), node_netns)


def test_traffic_flows_when_a_restart_of_the_database_server_returns(session_tmp):
    """ovs-vswitchd does not forward (on the userspace datapath its main loop skips the
    bridges) while it has no database, and it reconnects to a new ovsdb-server after its
    own backoff, seconds later: restart() returns once it has, so that the node is not
    called healthy while traffic stands still."""
    lab = Lab()
    netns = lab.netns(PREFIX + "ovs2")
    ovs = PrivateOVS(session_tmp / "ovs2", netns=netns)
    try:
        ovs.start()
        bridge = PREFIX + "rb"
        h1 = lab.host(PREFIX + "rh1", netns, PREFIX + "rp1", "10.88.0.1/24")
        lab.host(PREFIX + "rh2", netns, PREFIX + "rp2", "10.88.0.2/24")
        _vsctl(ovs, "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev",
               "--", "add-port", bridge, PREFIX + "rp1", "--", "add-port", bridge,
               PREFIX + "rp2")
        assert ping(h1, "10.88.0.2")
        os.kill(ovs.ovsdb_pid(), signal.SIGKILL)
        # ovs-vswitchd tries the dead server meanwhile, and backs off for longer
        time.sleep(1.5)
        assert ovs.restart() == ["ovsdb-server"]
        answered = in_ns(h1, "ping", "-c", "1", "-W", "1", "10.88.0.2", check=False)
        assert answered.returncode == 0, answered.stdout
    finally:
        ovs.stop()
        lab.close()
