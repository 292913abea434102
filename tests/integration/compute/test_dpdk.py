"""The DPDK driver on the session's private OVS (userspace datapath): dpdk-testpmd between
two hosts' namespaces through a graph-LSI (ping, iperf3), its death under traffic reported
and harmless to the vSwitch (another graph-LSI keeps forwarding, ovs-vswitchd keeps its
pid), and a fault at each step of create and start undone with no process, veth, runtime
or hugepage file left. (The contract itself: test_conformance.py, which runs it too.)

Keep runs short: testpmd busy-polls a core, and the machine's cores are shared.
"""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from drivers import netlink, registry
from drivers.compute import dpdk
from drivers.compute.dpdk import DPDKDriver
from drivers.errors import DriverError, ResourceNotFound
from drivers.vswitch.base import Action, Flow
from drivers.watch import EXITED, FUNCTION
from tests.integration.drivers.vswitch.lab import Lab, in_ns, iperf3, ping
from tests.resources import PREFIX
from tests.watching import quiet, watching

from .backends import DPDKBackend, dpdk_spec

pytestmark = pytest.mark.skipif(DPDKBackend().unavailable() is not None,
                                reason=DPDKBackend().unavailable() or "")

CORE = [max(0, (os.cpu_count() or 1) - 1)]


@pytest.fixture(scope="module")
def ovs(private_ovs, node_netns):
    driver = registry.create("vswitch", "ovs", db_socket=private_ovs.db_socket,
                             run_dir=str(private_ovs.run_dir), netns=node_netns,
                             datapath_type="netdev")
    driver.check()
    yield driver
    driver.close()


@pytest.fixture
def vlab():
    lab = Lab()
    yield lab
    lab.close()


@pytest.fixture
def fwd(node_netns, tmp_path, ovs):
    driver = DPDKDriver(str(tmp_path / "dpdk"), netns=node_netns, prefix=PREFIX)
    driver.check()
    yield driver
    for info in driver.list_instances():
        driver.destroy(info.instance)
    driver.settle(5)
    driver.close()
    for lsi in ovs.list_lsis():
        if lsi.name.startswith(PREFIX + "d"):
            ovs.destroy_lsi(lsi.name)


def out(port):
    return (Action("output", port),)


def _chain(ovs, vlab, node_netns, tag: str, net: str, through=None):
    """A graph-LSI between two hosts (<tag>a, <tag>b at net.1, net.2): through the
    function ports (p0, p1) when given, else straight. Returns the hosts."""
    lsi = PREFIX + "d" + tag
    a_end, b_end = PREFIX + tag + "an", PREFIX + tag + "bn"
    a = vlab.host(PREFIX + tag + "a", node_netns, a_end, net + ".1/24")
    b = vlab.host(PREFIX + tag + "b", node_netns, b_end, net + ".2/24")
    if through is None:
        ovs.create_lsi(lsi, ports=(a_end, b_end), local_port=False)
        flows = [Flow(1, 100, (("in_port", a_end),), out(b_end)),
                 Flow(1, 100, (("in_port", b_end),), out(a_end))]
    else:
        p0, p1 = through
        ovs.create_lsi(lsi, ports=(a_end, b_end, p0, p1), local_port=False)
        flows = [Flow(1, 100, (("in_port", a_end),), out(p0)),
                 Flow(1, 100, (("in_port", p0),), out(a_end)),
                 Flow(1, 100, (("in_port", b_end),), out(p1)),
                 Flow(1, 100, (("in_port", p1),), out(b_end))]
    ovs.apply_flows(lsi, add=flows)
    return a, b


def _leftovers(driver, instance, ports) -> list:
    assert driver.settle(5)
    left = ["veth %s" % n for n in ports if netlink.link_exists(n, driver.netns)]
    return left + DPDKBackend().leftovers(driver, instance)


def test_registered_as_the_dpdk_compute_driver(tmp_path):
    driver = registry.create("compute", "dpdk", state_dir=str(tmp_path))
    assert isinstance(driver, DPDKDriver)
    assert driver.execution_environment == "dpdk"


@pytest.mark.parametrize("port_driver", ["af_packet", "af_xdp"])
def test_testpmd_forwards_ping_and_iperf3_through_the_graph_lsi(fwd, ovs, vlab, node_netns,
                                                                 port_driver):
    fwd.port_driver = port_driver
    instance = PREFIX + "dfw"
    p0, p1 = PREFIX + "dfw0", PREFIX + "dfw1"
    fwd.create(dpdk_spec(instance, [("in", p0), ("out", p1)], cores=CORE))
    a, b = _chain(ovs, vlab, node_netns, "f", "10.81.0", through=(p0, p1))
    assert in_ns(a, "ping", "-c", "1", "-W", "1", "10.81.0.2", check=False).returncode != 0, \
        "created but not started: nothing forwards"
    started = time.monotonic()
    fwd.start(instance)
    took = time.monotonic() - started
    assert fwd.status(instance) == "running"
    # the process: testpmd, in the instance's namespace, on the given core, named by it
    pid = fwd._load(instance)["pid"][0]
    argv = Path("/proc/%d/cmdline" % pid).read_bytes().split(b"\0")
    assert os.path.basename(argv[0]) == b"dpdk-testpmd"
    assert ("--file-prefix=%s" % instance).encode() in argv
    assert os.sched_getaffinity(pid) == set(CORE)
    assert os.stat("/proc/%d/ns/net" % pid).st_ino == \
        os.stat(os.path.join(netlink.NETNS_RUN_DIR, instance)).st_ino
    assert fwd._load(instance)["memory"] == ("hugepages" if fwd._hugepages_usable()
                                             else "no-huge")
    assert ping(a, "10.81.0.2")
    end = iperf3(b, "10.81.0.2", a, seconds=2)
    assert end["sum_received"]["bytes"] > 1_000_000
    print("\nDPDK %s forwarder: started in %.3f s, iperf3 %.2f Gbit/s"
          % (fwd.port_driver, took, end["sum_received"]["bits_per_second"] / 1e9))
    fwd.stop(instance)
    assert in_ns(a, "ping", "-c", "1", "-W", "1", "10.81.0.2", check=False).returncode != 0
    fwd.destroy(instance)
    assert not _leftovers(fwd, instance, [p0, p1])


def test_a_forwarder_killed_under_traffic_is_reported_and_harms_no_vswitch(
        fwd, ovs, vlab, node_netns, private_ovs):
    instance = PREFIX + "dkf"
    p0, p1 = PREFIX + "dkf0", PREFIX + "dkf1"
    fwd.create(dpdk_spec(instance, [("in", p0), ("out", p1)], cores=CORE))
    a, b = _chain(ovs, vlab, node_netns, "k", "10.82.0", through=(p0, p1))
    c, d = _chain(ovs, vlab, node_netns, "o", "10.83.0")      # another graph, no DPDK
    fwd.start(instance)
    assert ping(a, "10.82.0.2") and ping(c, "10.83.0.2")
    daemons = private_ovs.daemons()
    with watching(fwd) as events:
        quiet(events)
        # traffic through the forwarder while it is killed
        flood = subprocess.Popen(["ip", "netns", "exec", a, "ping", "-f", "-w", "3",
                                  "10.82.0.2"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        os.kill(fwd._load(instance)["pid"][0], signal.SIGKILL)
        event = events.get(timeout=5)
        assert (event.subject, event.name, event.what) == (FUNCTION, instance, EXITED)
        flood.wait(10)
        assert [e.what for e in fwd.problems(instance)] == [EXITED]
        # the vSwitch: the same daemons, the other graph forwards, the ports are there
        assert private_ovs.daemons() == daemons
        assert ping(c, "10.83.0.2")
        assert {p0, p1} <= set(ovs.port_stats(PREFIX + "dk"))
        assert in_ns(a, "ping", "-c", "1", "-W", "1", "10.82.0.2",
                     check=False).returncode != 0
        # what the agent does: start it again; it forwards again
        fwd.stop(instance)
        fwd.start(instance)
        assert fwd.problems(instance) == []
        assert ping(a, "10.82.0.2")
        # started while watched, it is watched too
        os.kill(fwd._load(instance)["pid"][0], signal.SIGKILL)
        event = events.get(timeout=5)
        assert (event.subject, event.name, event.what) == (FUNCTION, instance, EXITED)
        fwd.destroy(instance)
        quiet(events)
    assert private_ovs.daemons() == daemons
    assert not _leftovers(fwd, instance, [p0, p1])


@pytest.mark.parametrize("step", ["_make_netns", "_add_ports"])
def test_a_fault_at_each_step_of_create_leaves_nothing(fwd, monkeypatch, step):
    instance = PREFIX + "dc" + step[1]
    ports = [("in", PREFIX + "dc%s0" % step[1]), ("out", PREFIX + "dc%s1" % step[1])]
    real = getattr(DPDKDriver, step)

    def fault(self, meta, *args, **kwargs):
        real(self, meta, *args, **kwargs)            # made, then failed
        raise DriverError("injected fault in %s" % step)
    monkeypatch.setattr(DPDKDriver, step, fault)
    with pytest.raises(DriverError, match="injected"):
        fwd.create(dpdk_spec(instance, ports, cores=CORE))
    assert not _leftovers(fwd, instance, [n for _, n in ports])
    with pytest.raises(ResourceNotFound):
        fwd.status(instance)
    monkeypatch.undo()
    fwd.create(dpdk_spec(instance, ports, cores=CORE))      # the same names again
    fwd.destroy(instance)
    assert not _leftovers(fwd, instance, [n for _, n in ports])


@pytest.mark.parametrize("step", ["_spawn", "_wait_forwarding", "watching"])
def test_a_fault_at_each_step_of_start_leaves_it_created(fwd, monkeypatch, step):
    instance = PREFIX + "ds" + step[1]
    ports = [("in", PREFIX + "ds%s0" % step[1]), ("out", PREFIX + "ds%s1" % step[1])]
    fwd.create(dpdk_spec(instance, ports, cores=CORE))
    if step == "watching":
        # the process runs and forwards; recording it fails
        monkeypatch.setattr(fwd, "_save", _fail_on_state(fwd._save, dpdk.RUNNING))
    else:
        real = getattr(DPDKDriver, step)

        def fault(self, *args, **kwargs):
            real(self, *args, **kwargs)
            raise DriverError("injected fault in %s" % step)
        monkeypatch.setattr(DPDKDriver, step, fault)
    with pytest.raises(DriverError, match="injected"):
        fwd.start(instance)
    monkeypatch.undo()
    assert fwd._processes(instance) == []
    assert not (dpdk.RUNTIME_DIR / instance).exists()
    assert fwd.status(instance) == "created"
    fwd.start(instance)                                 # it can start
    assert fwd.status(instance) == "running"
    fwd.destroy(instance)
    assert not _leftovers(fwd, instance, [n for _, n in ports])


def _fail_on_state(save, state):
    def failing(meta):
        if meta.get("state") == state:
            raise DriverError("injected fault saving %s" % state)
        return save(meta)
    return failing


def test_recovery_finds_a_forwarder_without_metadata_by_its_command_line(fwd):
    """A crash between spawning testpmd and recording it: the process names the instance."""
    instance = PREFIX + "dr"
    ports = [("in", PREFIX + "dr0"), ("out", PREFIX + "dr1")]
    fwd.create(dpdk_spec(instance, ports, cores=CORE))
    fwd.start(instance)
    shutil.rmtree(fwd.root / instance)                 # the metadata is gone
    again = DPDKDriver(str(fwd.state_dir), netns=fwd.netns, prefix=PREFIX)
    assert [(i.instance, i.state) for i in again.list_instances()] == [(instance, "failed")]
    other = DPDKDriver(str(fwd.state_dir), netns=fwd.netns, prefix="zz")
    assert other.list_instances() == []                 # another agent's prefix: not ours
    again.destroy(instance)
    assert not _leftovers(again, instance, [n for _, n in ports])


@pytest.fixture
def hugepages(tmp_path):
    """64 more 2 MiB hugepages reserved and a hugetlbfs mounted for the test, or a skip
    saying why they cannot be; both undone after."""
    nr = Path("/proc/sys/vm/nr_hugepages")
    before = int(nr.read_text())
    free = dpdk.hugepages_free()
    mount = tmp_path / "huge"
    mount.mkdir()
    try:
        nr.write_text(str(before + 64))
    except OSError as exc:
        pytest.skip("hugepages cannot be reserved here: %s" % exc)
    mounted = False
    try:
        if dpdk.hugepages_free() - free < 64 << 20:
            pytest.skip("hugepages cannot be reserved here (the kernel gave %d MiB)"
                        % ((dpdk.hugepages_free() - free) >> 20))
        if dpdk.hugetlbfs_mount() is None:
            subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "nodev",
                            str(mount)], check=True)
            mounted = True
        yield dpdk.hugetlbfs_mount()
    finally:
        if mounted:
            subprocess.run(["umount", str(mount)], check=False)
        nr.write_text(str(before))


def test_hugepages_when_they_are_free(fwd, ovs, vlab, node_netns, hugepages):
    """With hugepages free on a hugetlbfs, testpmd takes them (none left over after: the
    files are unlinked at once and every page is free again once it is gone)."""
    fwd.memory = 64
    free = dpdk.hugepages_free()
    instance = PREFIX + "dhp"
    p0, p1 = PREFIX + "dhp0", PREFIX + "dhp1"
    fwd.create(dpdk_spec(instance, [("in", p0), ("out", p1)], cores=CORE))
    a, b = _chain(ovs, vlab, node_netns, "h", "10.84.0", through=(p0, p1))
    fwd.start(instance)
    assert fwd._load(instance)["memory"] == "hugepages"
    argv = dpdk._cmdline(fwd._load(instance)["pid"][0])
    assert "--no-huge" not in argv and argv[argv.index("--huge-dir") + 1] == hugepages
    assert dpdk.hugepages_free() < free                   # it holds some
    assert ping(a, "10.84.0.2")
    fwd.destroy(instance)
    assert not _leftovers(fwd, instance, [p0, p1])
    assert list(Path(hugepages).iterdir()) == []
    assert dpdk.hugepages_free() == free


def test_ports_changed_on_a_running_forwarder_restart_it(fwd, ovs, vlab, node_netns):
    """update() cannot hand a port to a running testpmd: it restarts it with the new set
    (said in its metadata), and it forwards through the new port."""
    instance = PREFIX + "du"
    p0, p1, p2 = PREFIX + "du0", PREFIX + "du1", PREFIX + "du2"
    fwd.create(dpdk_spec(instance, [("in", p0), ("out", p1)], cores=CORE))
    fwd.start(instance)
    first = fwd._load(instance)["pid"]
    # "out" goes, "new" comes: the hosts are wired to in and new
    attachments = fwd.update(instance, add_ports=dpdk_spec(instance, [("new", p2)]).ports,
                             remove_ports=("out",))
    assert [(a.port_id, a.name) for a in attachments] == [("in", p0), ("new", p2)]
    meta = fwd._load(instance)
    assert meta["update"] == "restart" and meta["pid"] != first
    assert fwd.status(instance) == "running" and fwd.problems(instance) == []
    assert "iface=eth1" in " ".join(dpdk._cmdline(meta["pid"][0]))
    a, b = _chain(ovs, vlab, node_netns, "u", "10.86.0", through=(p0, p2))
    assert ping(a, "10.86.0.2")
    fwd.destroy(instance)
    assert not _leftovers(fwd, instance, [p0, p1, p2])


def test_a_start_after_a_crash_that_left_testpmd_running_kills_it_first(fwd):
    """The agent crashed between spawning testpmd and recording it running: the
    instance is "created" on disk, its forwarder runs; a start leaves one forwarder."""
    instance = PREFIX + "dz"
    ports = [("in", PREFIX + "dz0"), ("out", PREFIX + "dz1")]
    fwd.create(dpdk_spec(instance, ports, cores=CORE))
    fwd.start(instance)
    meta = fwd._load(instance)
    left = meta["pid"][0]
    meta["state"] = dpdk.CREATED
    fwd._save(meta)
    again = DPDKDriver(str(fwd.state_dir), netns=fwd.netns, prefix=PREFIX)
    again.start(instance)
    assert again._processes(instance) == [again._load(instance)["pid"][0]] != [left]
    again.destroy(instance)
    assert not _leftovers(again, instance, [n for _, n in ports])
