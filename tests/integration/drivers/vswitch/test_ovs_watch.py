"""What others change of what the OVS driver made is reported at once (OVSDB updates, an
OpenFlow 1.4 flow monitor, the daemons' pidfds); what the driver does itself is not."""

import os
import queue
import signal
import subprocess
import time

import pytest

from drivers.vswitch.base import Action, Flow
from drivers.vswitch.ovs_process import PrivateOVS
from drivers.watch import CHANGED, DAEMON, EXITED, FLOWS, LOST, LSI, PORT, Watcher
from tests.resources import PREFIX
from tests.watching import quiet, watching

BR = PREFIX + "wbr"


@pytest.fixture
def events(driver):
    with watching(driver) as found:
        yield found


def _vsctl(private_ovs, *argv):
    subprocess.run(["ovs-vsctl", "--db=%s" % private_ovs.db_socket, *argv], check=True)


def _bridge_with_flows(driver):
    driver.create_lsi(BR, local_port=False)
    driver.create_port(BR, BR + "p", "internal")
    flows = [Flow(0x10 + i, 100 + i, (("in_port", BR + "p"),), (Action("drop"),))
             for i in range(2)]
    driver.apply_flows(BR, add=flows)
    driver.watch_flows(BR)
    return flows


def test_a_flow_another_client_removes_is_reported_and_own_bundles_are_not(
        driver, events, private_ovs):
    flows = _bridge_with_flows(driver)
    driver.apply_flows(BR, add=[flows[0]], remove_cookies=[flows[0].cookie])
    quiet(events)
    subprocess.run(["ovs-ofctl", "-O", "OpenFlow14", "del-flows",
                    private_ovs.bridge_mgmt(BR), "cookie=0x11/-1"],
                   env=private_ovs.env(), check=True)
    event = events.get(timeout=2)
    assert (event.subject, event.name, event.what) == (FLOWS, BR, CHANGED)
    assert "cookie 0x11 priority 101 removed" in event.detail
    # still watched after a bundle of its own
    driver.apply_flows(BR, add=[flows[1]])
    quiet(events)
    subprocess.run(["ovs-ofctl", "-O", "OpenFlow14", "add-flow", private_ovs.bridge_mgmt(BR),
                    "cookie=0x99,priority=7,actions=drop"], env=private_ovs.env(), check=True)
    assert "cookie 0x99 priority 7 added" in events.get(timeout=2).detail


def test_ports_and_lsis_another_client_removes_are_reported(driver, events, private_ovs):
    _bridge_with_flows(driver)
    driver.create_port(BR, BR + "q", "internal")
    driver.destroy_port(BR, BR + "q")            # its own: not reported
    quiet(events)
    _vsctl(private_ovs, "del-port", BR, BR + "p")
    # (the switch also removes the flows that match on the port: a flows event may come)
    assert _seen(events, (PORT, BR + "p", LOST))
    _vsctl(private_ovs, "del-br", BR)
    assert _seen(events, (LSI, BR, LOST))


def _seen(events, wanted, seconds=2.0) -> bool:
    """Whether an event (subject, name, what) comes within seconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            event = events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return False
        if (event.subject, event.name, event.what) == wanted:
            return True
    return False


def test_destroying_its_own_lsi_is_not_reported(driver, events):
    _bridge_with_flows(driver)
    driver.destroy_lsi(BR)
    quiet(events)


def test_a_daemon_that_dies_is_reported_and_restarts(session_tmp):
    netns = PREFIX + "wdn"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    ovs = PrivateOVS(session_tmp / "wovs", netns=netns)
    watcher = Watcher(PREFIX + "-watch")
    watcher.start()
    try:
        ovs.start()
        found = queue.Queue()
        assert ovs.watch(watcher, found.put) == []
        pid = ovs.vswitchd_pid()
        os.kill(pid, signal.SIGKILL)
        event = found.get(timeout=2)
        assert (event.subject, event.name, event.what) == (DAEMON, "ovs-vswitchd", EXITED)
        assert ovs.restart() == ["ovs-vswitchd"]
        assert ovs.vswitchd_pid() not in (None, pid)
        assert ovs.watch(watcher, found.put) == []
        os.kill(ovs.ovsdb_pid(), signal.SIGKILL)
        assert found.get(timeout=2).name == "ovsdb-server"
        assert ovs.restart() == ["ovsdb-server"]
        assert ovs.running()
        ovs.unwatch(watcher)
    finally:
        watcher.close()
        ovs.stop()
        subprocess.run(["ip", "netns", "del", netns], check=False)
