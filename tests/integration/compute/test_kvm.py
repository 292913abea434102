"""The kvm driver on the real libvirtd: the domain it defines (taps, offloads, pinning,
metadata), traffic through the guest, the domain type probed, recovery from libvirt alone,
and a failure at each step of create and start leaving nothing behind.

Every start boots the test guest (nsf/guest.py) under TCG here, about 8 s.
"""

import os
import time

import pytest
from lxml import etree

from drivers import netlink
from drivers.compute import kvm
from drivers.compute.base import FunctionSpec
from drivers.errors import DriverError, ResourceNotFound
from tests import guest

from .helpers import port

pytestmark = pytest.mark.skipif(guest.unavailable() is not None,
                                reason=guest.unavailable() or "")

LABELS = {"composer-owner": "kvm-tests", "composer-graph": "g1"}


@pytest.fixture
def driver(lab, tmp_path):
    driver = kvm.KvmDriver(str(tmp_path / "state"), netns=lab.netns("n"))
    driver.check()
    yield driver
    for info in driver.list_instances():
        driver.destroy(info.instance)
    driver.close()


def _spec(lab, name, nports=2, template=None, cores=(), labels=LABELS):
    return FunctionSpec(instance=lab.name(name), image=str(guest.path()),
                        template=dict({"id": "test-kvm", "memory": 160, "cpu": 1},
                                      **(template or {})),
                        ports=tuple(port("p%d" % n, lab.name("%s%d" % (name, n)))
                                    for n in range(nports)),
                        cpu_cores=tuple(cores), labels=labels)


def _xml(instance, inactive=False):
    import libvirt
    conn = libvirt.open(guest.URI)
    try:
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
        return etree.fromstring(conn.lookupByName(instance).XMLDesc(flags).encode())
    finally:
        conn.close()


def _nothing_left(driver, lab, instance, ports):
    assert not guest.domain_exists(instance)
    assert not (driver.root / instance).exists()
    for name in ports:
        assert not netlink.link_exists(name, driver.netns), name
        for relay in ("t", "r"):
            assert not netlink.link_exists(kvm._relay_name(name, relay)), (name, relay)


def test_the_domain_it_defines(driver, lab):
    spec = _spec(lab, "d", cores=(1,))
    driver.create(spec)
    root = _xml(spec.instance)
    assert root.get("type") == driver.resolved_domain_type(kvm.load_image(spec.image))
    assert root.findtext("memory") == str(160 * 1024)          # KiB
    assert root.findtext("vcpu") == "1"
    assert [(p.get("vcpu"), p.get("cpuset")) for p in root.iter("vcpupin")] == [("0", "1")]
    assert root.findtext("os/kernel").endswith("vmlinuz")
    assert "composer.ports=2" in root.findtext("os/cmdline")
    interfaces = root.findall("devices/interface")
    assert [i.get("type") for i in interfaces] == ["ethernet", "ethernet"]
    assert [i.find("target").get("dev") for i in interfaces] == [
        kvm._relay_name(lab.name("d0"), "t"), kvm._relay_name(lab.name("d1"), "t")]
    assert {i.find("target").get("managed") for i in interfaces} == {"no"}
    for interface in interfaces:
        host, guest_ = interface.find("driver/host"), interface.find("driver/guest")
        assert (host.get("csum"), host.get("tso4"), host.get("tso6")) == ("off",) * 3
        assert (guest_.get("csum"), guest_.get("tso4"), guest_.get("tso6")) == ("off",) * 3
    labels = {e.get("name"): e.get("value")
              for e in root.iter("{%s}label" % kvm.METADATA_NS)}
    assert labels == LABELS


def test_a_vm_forwards_between_two_hosts(driver, lab):
    spec = _spec(lab, "v")
    driver.create(spec)
    macs = {"a": "02:00:00:62:00:01", "b": "02:00:00:62:00:02"}
    a = lab.host("a", driver.netns, lab.name("v0"), "10.62.0.1/24", mac=macs["a"])
    b = lab.host("b", driver.netns, lab.name("v1"), "10.62.0.2/24", mac=macs["b"])
    assert not lab.ping(a, "10.62.0.2", count=1), "created, not started: no path"
    # each host knows the other's MAC: the first frame after the start is the echo itself
    for ns, peer, ip in ((a, "b", "10.62.0.2"), (b, "a", "10.62.0.1")):
        lab.run(ns, "ip", "neigh", "replace", ip, "lladdr", macs[peer], "dev", "eth0",
                "nud", "permanent")
    started = time.monotonic()
    driver.start(spec.instance)
    print("kvm start to readiness: %.0f ms" % ((time.monotonic() - started) * 1000))
    assert driver.status(spec.instance) == "running"
    # ready means forwarding: one echo, sent at once, is answered (fails when the guest
    # says ready before its bridge ports forward: that echo is dropped in the guest)
    assert lab.run(a, "ping", "-n", "-c", "1", "-W", "1", "10.62.0.2").returncode == 0
    assert lab.ping(a, "10.62.0.2")
    # the tap's offloads are off on QEMU's side too: what it hands over is complete
    tap = kvm._relay_name(lab.name("v0"), "t")
    assert not netlink.tx_checksum_enabled(tap)
    driver.stop(spec.instance)
    assert not lab.ping(a, "10.62.0.2", count=1)
    driver.start(spec.instance)               # the same ports carry traffic again
    assert lab.ping(a, "10.62.0.2")


def test_the_domain_type_is_probed(driver, lab, monkeypatch):
    image = kvm.load_image(str(guest.path()))
    probed = driver.resolved_domain_type(image)      # what every test here boots with
    assert probed in ("kvm", "qemu")
    if kvm.kvm_usable() is None:
        # a KVM guest that does not reach its init in time (here it never does) means TCG
        monkeypatch.setattr(kvm, "KVM_PROBE_TIMEOUT", 0.01)
        assert driver.probe_domain_type(image) == "qemu"
        # this process's probe only: another test session's agent may be probing meanwhile
        ours = kvm.PROBE_PREFIX + str(os.getpid())
        assert ours not in guest.domain_names(kvm.PROBE_PREFIX)
        # the probe of an agent killed while probing is removed by the next probe
        import libvirt
        conn = libvirt.open(guest.URI)
        try:
            stale = kvm.domain_xml(kvm.PROBE_PREFIX + "999999999", domain_type="qemu",
                                   image=image, memory_mib=kvm.MIN_MEMORY, vcpus=1, taps=[],
                                   console=str(driver.state_dir / "stale.log"))
            driver.state_dir.mkdir(parents=True, exist_ok=True)
            conn.createXML(stale, 0)
        finally:
            conn.close()
        stale = kvm.PROBE_PREFIX + "999999999"
        assert stale in guest.domain_names(kvm.PROBE_PREFIX)
        driver.probe_domain_type(image)
        assert not {stale, ours} & set(guest.domain_names(kvm.PROBE_PREFIX))
    monkeypatch.setattr(kvm, "kvm_usable", lambda: "/dev/kvm: no such device")
    assert driver.resolved_domain_type(image) == "qemu"        # no probe without /dev/kvm
    forced = kvm.KvmDriver(str(driver.state_dir), netns=driver.netns, domain_type="qemu")
    assert forced.resolved_domain_type(image) == "qemu"
    forced.close()


def test_recovery_finds_domains_by_their_metadata(driver, lab):
    spec = _spec(lab, "r", nports=1)
    driver.create(spec)
    driver.start(spec.instance)
    # another agent's driver (its own state directory) neither lists nor removes it
    other = kvm.KvmDriver(str(driver.state_dir) + "-other", netns=driver.netns)
    try:
        assert other.list_instances() == []
        with pytest.raises(ResourceNotFound):
            other.destroy(spec.instance)
    finally:
        other.close()
    # the agent killed, its state directory lost: libvirt alone knows the domain
    import shutil
    shutil.rmtree(driver.root / spec.instance)
    again = kvm.KvmDriver(str(driver.state_dir), netns=driver.netns)
    try:
        found = again.list_instances(LABELS)
        assert [(i.instance, i.state, i.ports) for i in found] == [
            (spec.instance, "failed", (lab.name("r0"),))]
        assert found[0].labels == LABELS
        assert again.list_instances({"composer-owner": "someone-else"}) == []
        again.destroy(spec.instance)
    finally:
        again.close()
    _nothing_left(driver, lab, spec.instance, [lab.name("r0")])


def _fail_at(monkeypatch, target, name, after=0):
    """Make target.name raise a DriverError on its call number after+1."""
    original = getattr(target, name)
    calls = []

    def failing(*args, **kwargs):
        calls.append(args)
        if len(calls) == after + 1:
            raise DriverError("injected failure in %s" % name)
        return original(*args, **kwargs)
    monkeypatch.setattr(target, name, failing)


def test_a_crash_while_create_makes_the_ports_leaves_a_trace(driver, lab, monkeypatch):
    """The agent killed while create makes the second port: nothing of create's own undo
    runs, and the driver of the restarted agent finds the instance and destroys it whole,
    with the first port's tap, relay and vSwitch end (fails when a port is recorded on
    disk only once every port is made: recovery then knows of no port to delete)."""
    spec = _spec(lab, "k")
    _fail_at(monkeypatch, kvm, "_redirect", after=2)       # in the second port's relay
    # a kill -9 runs no undo: create's cleanup does nothing
    monkeypatch.setattr(driver, "_destroy", lambda instance, meta: None)
    with pytest.raises(DriverError):
        driver.create(spec)
    monkeypatch.undo()
    assert netlink.link_exists(lab.name("k0"), driver.netns)   # what the crash left
    again = kvm.KvmDriver(str(driver.state_dir), netns=driver.netns)
    try:
        assert [i.instance for i in again.list_instances(LABELS)] == [spec.instance]
        again.destroy(spec.instance)
    finally:
        again.close()
    _nothing_left(driver, lab, spec.instance, [lab.name("k0"), lab.name("k1")])


@pytest.mark.parametrize("step", ["tap", "second-tap", "relay", "redirect", "parameter",
                                  "define", "save"])
def test_a_failure_at_each_step_of_create_leaves_nothing(driver, lab, monkeypatch, step):
    spec = _spec(lab, "c")
    if step == "tap":
        _fail_at(monkeypatch, kvm.netlink, "tap_add")
    elif step == "second-tap":
        _fail_at(monkeypatch, kvm.netlink, "tap_add", after=1)
    elif step == "relay":
        _fail_at(monkeypatch, kvm.netlink, "veth_add", after=1)
    elif step == "redirect":
        _fail_at(monkeypatch, kvm, "_redirect", after=3)
    elif step == "parameter":
        # a parameter is a word of the guest's kernel command line: no space, no quote
        from dataclasses import replace
        spec = replace(spec, parameters=("block-src=10.0.0.1", "two words"))
    elif step == "define":
        spec = _spec(lab, "c", template={"machine": "no-such-pc"})
    else:
        _fail_at(monkeypatch, driver.store, "save", after=3)    # after the domain is defined
    with pytest.raises(DriverError):
        driver.create(spec)
    monkeypatch.undo()
    _nothing_left(driver, lab, spec.instance, [lab.name("c0"), lab.name("c1")])
    assert driver.list_instances() == []


@pytest.mark.parametrize("step", ["domain-start", "guest-fails", "not-ready"])
def test_a_start_that_fails_leaves_the_domain_off(driver, lab, monkeypatch, step):
    template = {"guest-function": "nosuch"} if step == "guest-fails" else \
        {"ready-timeout": 0.5} if step == "not-ready" else {}
    spec = _spec(lab, "s", template=template)
    driver.create(spec)
    if step == "domain-start":
        # QEMU refuses to run: the tap it must open is gone
        netlink.link_delete(kvm._relay_name(lab.name("s1"), "t"))
    with pytest.raises(DriverError) as failed:
        driver.start(spec.instance)
    if step == "guest-fails":
        assert "unknown function 'nosuch'" in str(failed.value)
    assert driver.status(spec.instance) == "created"
    assert not _active(spec.instance)
    driver.destroy(spec.instance)
    _nothing_left(driver, lab, spec.instance, [lab.name("s0"), lab.name("s1")])


def _active(instance) -> bool:
    import libvirt
    conn = libvirt.open(guest.URI)
    try:
        return bool(conn.lookupByName(instance).isActive())
    finally:
        conn.close()


def _qemu_started(instance) -> float:
    """When the instance's QEMU started, in seconds of CLOCK_BOOTTIME (/proc's clock)."""
    import os
    from pathlib import Path
    pid = int(Path("/run/libvirt/qemu/%s.pid" % instance).read_text())
    ticks = int(Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[19])
    return ticks / os.sysconf("SC_CLK_TCK")


def test_two_vms_boot_at_the_same_time(driver, lab):
    """The engine starts a deploy's functions in parallel (compute.parallel-starts): the
    driver serialises operations per instance only, so two guests boot side by side."""
    import threading
    specs = [_spec(lab, "p", nports=1), _spec(lab, "q", nports=1)]
    for spec in specs:
        driver.create(spec)
    ready, errors = {}, []

    def start(instance):
        try:
            driver.start(instance)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        ready[instance] = time.clock_gettime(time.CLOCK_BOOTTIME)
    threads = [threading.Thread(target=start, args=(s.instance,)) for s in specs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    one, two = (s.instance for s in specs)
    # each QEMU was started before the other guest was ready: the boots overlapped
    spans = {i: (_qemu_started(i), ready[i]) for i in (one, two)}
    assert spans[one][0] < spans[two][1] and spans[two][0] < spans[one][1], spans
    assert [driver.status(s.instance) for s in specs] == ["running", "running"]


def _interfaces(instance, inactive=False) -> list:
    """The taps of the domain's <interface>s: running (live) or as defined."""
    root = _xml(instance, inactive)
    return sorted(i.find("target").get("dev") for i in root.iterfind("devices/interface"))


def _domain_id(instance) -> int:
    import libvirt
    conn = libvirt.open(guest.URI)
    try:
        return conn.lookupByName(instance).ID()
    finally:
        conn.close()


def _tap(lab, name):
    return kvm._relay_name(lab.name(name), "t")


def _check_ports(driver, lab, instance, names):
    """The instance has exactly the ports named (lab suffixes): live and defined NICs,
    taps and relays, node-side ends, its metadata, the guest's port count."""
    taps = sorted(_tap(lab, n) for n in names)
    assert _interfaces(instance) == taps
    assert _interfaces(instance, inactive=True) == taps
    assert [p["vswitch_ifname"] for p in driver._load(instance)["ports"]] == \
        [lab.name(n) for n in names]
    found = [i for i in driver.list_instances() if i.instance == instance]
    assert found and found[0].ports == tuple(lab.name(n) for n in names)
    assert "composer.ports=%d" % len(names) in _xml(instance, inactive=True).findtext(
        "os/cmdline")                                    # as the next boot has it
    for suffix in ("h0", "h1", "h2", "h3"):
        present = suffix in names
        assert netlink.link_exists(lab.name(suffix), driver.netns) == present, suffix
        for relay in ("t", "r"):
            assert netlink.link_exists(kvm._relay_name(lab.name(suffix), relay)) == present


def test_ports_hot_plugged_into_a_running_vm(driver, lab, monkeypatch):
    """update() on a running domain: a third port hot-plugged (its tap made, a virtio NIC
    attached live, the guest bridges it) carries traffic at once, without a reboot; removed,
    its NIC, tap and relay are gone. A failure at each step of an add or a remove leaves
    the ports as they were (fails without the undo: a tap, a relay or a NIC is left)."""
    spec = _spec(lab, "h")
    driver.create(spec)
    a = lab.host("a", driver.netns, lab.name("h0"), "10.66.0.1/24")
    lab.host("b", driver.netns, lab.name("h1"), "10.66.0.2/24")
    driver.start(spec.instance)
    booted = _domain_id(spec.instance)
    assert lab.ping(a, "10.66.0.2")
    new = port("p2", lab.name("h2"))

    # a failure at each step of an add: nothing of the new port is left
    faults = {
        "tap": lambda: _fail_at(monkeypatch, kvm.netlink, "tap_add"),
        "redirect": lambda: _fail_at(monkeypatch, kvm, "_redirect", after=1),
        "plug": lambda: _fail_at(monkeypatch, driver, "_plug"),
        "guest": lambda: (monkeypatch.setattr(kvm, "PORT_UP_LINE", "composer: never %s"),
                          monkeypatch.setattr(kvm, "HOTPLUG_TIMEOUT", 1)),
        "define": lambda: _fail_at(monkeypatch, driver, "_define"),
        "save": lambda: _fail_at(monkeypatch, driver.store, "save", after=1),
    }
    for step, inject in faults.items():
        inject()
        with pytest.raises(DriverError, match="injected|did not take") as failed:
            driver.update(spec.instance, add_ports=(new,))
        monkeypatch.undo()
        print("add, %s failed: rolled back" % step)
        _check_ports(driver, lab, spec.instance, ["h0", "h1"])
    assert _domain_id(spec.instance) == booted

    started = time.monotonic()
    attachments = driver.update(spec.instance, add_ports=(new,))
    print("kvm hot-plug of a port, to the guest bridging it: %.0f ms"
          % ((time.monotonic() - started) * 1000))
    assert [(x.port_id, x.name, x.kind) for x in attachments] == [
        ("p0", lab.name("h0"), "system"), ("p1", lab.name("h1"), "system"),
        ("p2", lab.name("h2"), "system")]
    _check_ports(driver, lab, spec.instance, ["h0", "h1", "h2"])
    assert _domain_id(spec.instance) == booted                 # not restarted
    c = lab.host("c", driver.netns, lab.name("h2"), "10.66.0.3/24")
    assert lab.ping(a, "10.66.0.3"), "no traffic through the hot-plugged port"
    assert lab.ping(c, "10.66.0.2")

    # a failure at each step of a remove: the port is still there and forwards
    faults = {
        "unplug": lambda: _fail_at(monkeypatch, driver, "_unplug"),
        "delete": lambda: _fail_at(monkeypatch, driver, "_delete_ports"),
        "define": lambda: _fail_at(monkeypatch, driver, "_define"),
    }
    for step, inject in faults.items():
        inject()
        with pytest.raises(DriverError, match="injected"):
            driver.update(spec.instance, remove_ports=("p2",))
        monkeypatch.undo()
        print("remove, %s failed: rolled back" % step)
        _check_ports(driver, lab, spec.instance, ["h0", "h1", "h2"])
        # the host's link in the node: a port made again must join its bridge again (as
        # the vSwitch opens a port of that name again)
        netlink.link_set(lab.name("h2"), driver.netns, master=lab.name("cb"), up=True)
        assert lab.ping(a, "10.66.0.3"), "the port put back after %s does not forward" % step

    attachments = driver.update(spec.instance, remove_ports=("p2",))
    assert [x.port_id for x in attachments] == ["p0", "p1"]
    _check_ports(driver, lab, spec.instance, ["h0", "h1"])
    assert _domain_id(spec.instance) == booted
    assert not lab.ping(a, "10.66.0.3", count=1)
    assert lab.ping(a, "10.66.0.2")
    # the next boot has the ports the domain has now
    driver.stop(spec.instance)
    driver.start(spec.instance)
    assert lab.ping(a, "10.66.0.2")
