"""The native driver's lifecycle on real namespaces, veth pairs and processes."""

import os
import time
from pathlib import Path

import pytest

from drivers import netlink, registry
from drivers.compute import plumbing
from drivers.compute.base import FunctionPort, FunctionSpec, PortAttachment
from drivers.compute.native import NativeDriver
from drivers.errors import DriverError, ResourceExists, ResourceNotFound, ScriptError
from nsf import packages
from tests import resources

from .helpers import DAEMON, make_package, port, spec

# A function with a process: start runs a daemon (a shell loop from the package, so its
# command line names the session directory and the leak check would see it).

# Records what a script sees: its arguments and the COMPOSER_ environment.
RECORD = ('{ printf "%s\\n" "$@"; env | grep ^COMPOSER_ | sort; } '
          '> "$COMPOSER_RUN_DIR/$COMPOSER_ACTION.seen"\n')


def _state(pid: int) -> str:
    return Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[-1].split()[0]


def _stopped(pids, seconds: float = 5.0) -> bool:
    """Whether every process stops: SIGSTOP takes effect when a process is next scheduled
    (T); a shell waiting in vfork for a child stopped before its exec stays in D, and runs
    nothing either."""
    def stopped(pid):
        try:
            return _state(pid) in ("T", "D")
        except FileNotFoundError:           # gone (the loop's sleep, just before)
            return True
    deadline = time.monotonic() + seconds
    while not all(stopped(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _nothing_left(driver, instance, vswitch_ifnames):
    # destroy() leaves the removal of the vSwitch ends to the kernel and the reaper
    assert driver.settle(timeout=5.0)
    assert not netlink.netns_exists(instance)
    assert instance not in resources.netns_names()
    node_links = netlink.link_names("", driver.netns)
    assert not set(vswitch_ifnames) & set(node_links)
    assert not (Path(driver.state_dir) / "native" / instance).exists()
    assert instance not in [i.instance for i in driver.list_instances()]


def test_registered_as_the_native_compute_driver(tmp_path):
    driver = registry.create("compute", "native", state_dir=str(tmp_path))
    assert isinstance(driver, NativeDriver)
    assert driver.execution_environment == "native"
    assert "native" in registry.names("compute")
    driver.check()


def test_lifecycle_of_a_function_with_a_process(lab, native, tmp_path):
    image = make_package(tmp_path, "daemon", DAEMON)
    inst = lab.name("d")
    ports = native.create(spec(inst, image, [("a", lab.name("da")), ("b", lab.name("db"))]))
    assert ports == (PortAttachment("a", lab.name("da"), "system"),
                     PortAttachment("b", lab.name("db"), "system"))
    assert native.status(inst) == "created"
    # The vSwitch ends carry no IPv6: no link-local routes for ovs-vswitchd to re-read.
    assert netlink.sysctl_get("net/ipv6/conf/%s/disable_ipv6" % lab.name("da"),
                              native.netns) == "1"
    assert netlink.netns_pids(inst) == []

    native.start(inst)
    native.start(inst)  # again: nothing to do
    pids = netlink.netns_pids(inst)
    assert pids and native.status(inst) == "running"   # the loop, and its sleep at times

    # (all() of no process is true: each check first needs the processes to be there)
    native.pause(inst)
    assert native.status(inst) == "paused"
    pids = netlink.netns_pids(inst)
    assert pids and _stopped(pids)
    native.resume(inst)
    assert native.status(inst) == "running"
    pids = netlink.netns_pids(inst)
    assert pids and all(_state(pid) != "T" for pid in pids)

    native.pause(inst)
    native.stop(inst)    # from paused: thawed, stopped, nothing left running
    assert native.status(inst) == "stopped"
    assert netlink.netns_pids(inst) == []
    with pytest.raises(DriverError):
        native.pause(inst)

    native.start(inst)
    pids += netlink.netns_pids(inst)
    native.destroy(inst)
    _nothing_left(native, inst, [a.name for a in ports])
    assert not [p for p in pids if Path("/proc/%d" % p).exists() and _state(p) != "Z"]
    with pytest.raises(ResourceNotFound):
        native.destroy(inst)
    with pytest.raises(ResourceNotFound):
        native.status(inst)


def test_destroy_kills_processes_the_stop_script_forgot(lab, native, tmp_path):
    image = make_package(tmp_path, "sloppy", {"daemon": DAEMON["daemon"], "start": DAEMON["start"]})
    inst = lab.name("s")
    native.create(spec(inst, image, [("a", lab.name("sa"))]))
    native.start(inst)
    pids = netlink.netns_pids(inst)
    assert pids
    native.destroy(inst)
    assert not [p for p in pids if Path("/proc/%d" % p).exists() and _state(p) != "Z"]
    _nothing_left(native, inst, [lab.name("sa")])


def test_destroy_does_not_wait_for_the_kernel_but_keeps_the_names_reserved(
        lab, native, tmp_path):
    image = make_package(tmp_path, "daemon", DAEMON)
    inst = lab.name("r")
    names = [("a", lab.name("ra")), ("b", lab.name("rb"))]
    for _ in range(3):
        # The same instance again right away: create waits until the ends are gone.
        native.create(spec(inst, image, names))
        native.start(inst)
        native.destroy(inst)
        assert not netlink.netns_exists(inst)
    _nothing_left(native, inst, [n for _, n in names])


def test_the_reaper_deletes_ends_a_lingering_reference_keeps(lab, native, tmp_path,
                                                             monkeypatch):
    monkeypatch.setattr(plumbing, "TEARDOWN_WAIT", 0.3)
    image = make_package(tmp_path, "daemon", DAEMON)
    inst = lab.name("k")
    native.create(spec(inst, image, [("a", lab.name("ka"))]))
    # An open file of the namespace keeps it, and the veth in it, alive after the delete.
    held = os.open("/run/netns/%s" % inst, os.O_RDONLY)
    try:
        native.destroy(inst)
        assert netlink.link_exists(lab.name("ka"), native.netns)
        assert native.settle(timeout=5.0)
        assert not netlink.link_exists(lab.name("ka"), native.netns)
    finally:
        os.close(held)
    _nothing_left(native, inst, [lab.name("ka")])


def test_ports_and_script_environment(lab, native, tmp_path):
    image = make_package(tmp_path, "record", {
        "create": RECORD + 'printf "%s" "$COMPOSER_PARAM_ROUTE" > "$COMPOSER_RUN_DIR/route"\n',
        "start": RECORD})
    inst = lab.name("r")
    native.create(spec(inst, image, [
        ("in", lab.name("ri"), "10.70.0.1/24"),
        ("out", lab.name("ro")),
    ], parameters=["mode=fast", "route=a", "route=b", "plain"]))

    # In the function: eth0, eth1 in port order, with the address; MACs as recorded.
    stored = native.instance_ports(inst)
    assert [(p["port_id"], p["ifname"]) for p in stored] == [("in", "eth0"), ("out", "eth1")]
    assert netlink.addr_list("eth0", inst) == ["10.70.0.1/24"]
    assert netlink.link_info("eth0", inst)["mac"] == stored[0]["mac"]
    assert netlink.link_info("eth0", inst)["up"] and netlink.link_info(lab.name("ri"), native.netns)["up"]
    # The function's ends send into the userspace datapath: no partial checksums there.
    # The vSwitch end is left alone (touching it would make vswitchd reconfigure).
    for ifname in ("eth0", "eth1"):
        assert not netlink.tx_checksum_enabled(ifname, inst)
    assert netlink.tx_checksum_enabled(lab.name("ri"), native.netns)

    run_dir = Path(native.state_dir) / "native" / inst / "run"
    seen = (run_dir / "create.seen").read_text().splitlines()
    assert seen[:4] == ["mode=fast", "route=a", "route=b", "plain"]
    env = dict(line.split("=", 1) for line in seen[4:] if "=" in line and line.startswith("COMPOSER_"))
    assert env["COMPOSER_ACTION"] == "create"
    assert env["COMPOSER_INSTANCE"] == inst
    assert env["COMPOSER_PORTS"] == "eth0 eth1"
    assert env["COMPOSER_PORT_0_ID"] == "in"
    assert env["COMPOSER_PORT_0_IFNAME"] == "eth0"
    assert env["COMPOSER_PORT_0_IPV4"] == "10.70.0.1/24"
    assert env["COMPOSER_PORT_0_MAC"] == stored[0]["mac"]
    assert env["COMPOSER_PORT_1_VSWITCH_IFNAME"] == lab.name("ro")
    assert "COMPOSER_PORT_1_IPV4" not in env
    assert env["COMPOSER_PARAM_MODE"] == "fast"
    assert (run_dir / "route").read_text() == "a\nb"    # a repeated key: one value per line
    assert env["COMPOSER_PACKAGE_DIR"].endswith("/%s/package" % inst)
    native.start(inst)
    assert (run_dir / "start.seen").read_text().count("COMPOSER_ACTION=start") == 1


def test_mac_addresses_given_by_the_caller_are_used(lab, native, tmp_path):
    image = make_package(tmp_path, "plain", {})
    inst = lab.name("m")
    native.create(FunctionSpec(instance=inst, template={}, image=image,
                               ports=(port("a", lab.name("ma"), mac="02:00:00:0a:0b:0c"),)))
    assert netlink.link_info("eth0", inst)["mac"] == "02:00:00:0a:0b:0c"


def test_a_failing_create_script_leaves_nothing_behind(lab, native, tmp_path):
    image = make_package(tmp_path, "broken", {
        "daemon": DAEMON["daemon"],
        "create": '"$COMPOSER_PACKAGE_DIR/daemon" > /dev/null 2>&1 &\n'
                  'echo "the widget is missing" >&2\nexit 3\n',
    })
    inst = lab.name("x")
    with pytest.raises(ScriptError) as failure:
        native.create(spec(inst, image, [("a", lab.name("xa")), ("b", lab.name("xb"))]))
    error = failure.value
    assert (error.script, error.status, error.timed_out) == ("create", 3, False)
    assert "the widget is missing" in error.output
    assert error.resource == inst
    assert "exit status 3" in str(error)
    _nothing_left(native, inst, [lab.name("xa"), lab.name("xb")])


def test_a_create_that_fails_half_way_undoes_its_ports(lab, native, tmp_path):
    image = make_package(tmp_path, "plain", {})
    inst = lab.name("h")
    taken = lab.name("hb")
    netlink.veth_add(taken, lab.name("hz"), netns=native.netns, peer_netns=native.netns)
    with pytest.raises(ResourceExists):
        native.create(spec(inst, image, [("a", lab.name("ha")), ("b", taken)]))
    _nothing_left(native, inst, [lab.name("ha")])
    netlink.link_delete(taken, native.netns)


def test_a_hanging_script_is_killed_at_the_timeout(lab, native, tmp_path):
    image = make_package(tmp_path, "hang", {"start": "sleep 60\n"})
    impatient = NativeDriver(native.state_dir, netns=native.netns, script_timeout=1)
    inst = lab.name("w")
    impatient.create(spec(inst, image, [("a", lab.name("wa"))]))
    with pytest.raises(ScriptError) as failure:
        impatient.start(inst)
    assert failure.value.timed_out and failure.value.status is None
    assert failure.value.script == "start"
    assert netlink.netns_pids(inst) == []      # the sleep went with its process group
    assert impatient.status(inst) == "created"


def test_a_hanging_create_is_killed_and_undone(lab, native, tmp_path):
    image = make_package(tmp_path, "hangc", {"create": "sleep 60\n"}, timeout=0.5)
    inst = lab.name("v")
    with pytest.raises(ScriptError) as failure:
        native.create(spec(inst, image, [("a", lab.name("va"))]))
    assert failure.value.timed_out
    _nothing_left(native, inst, [lab.name("va")])


def test_instances_are_found_again_by_a_new_driver(lab, native, tmp_path, nsf_packages):
    image = make_package(tmp_path, "daemon", DAEMON)
    one, two = lab.name("i1"), lab.name("i2")
    native.create(spec(one, image, [("a", lab.name("1a"))], labels={"graph": "g1", "fn": "a"}))
    native.create(spec(two, nsf_packages["bridge"], [("a", lab.name("2a")), ("b", lab.name("2b"))],
                       labels={"graph": "g2"}))
    native.start(one)

    # The agent restarts: a new driver on the same state directory and node.
    again = NativeDriver(native.state_dir, netns=native.netns)
    found = {i.instance: i for i in again.list_instances()}
    assert set(found) == {one, two}
    assert found[one].state == "running" and found[two].state == "created"
    assert found[one].labels == {"graph": "g1", "fn": "a"}
    assert found[two].ports == (lab.name("2a"), lab.name("2b"))
    assert [i.instance for i in again.list_instances({"graph": "g1"})] == [one]
    assert again.list_instances({"graph": "g3"}) == []

    again.pause(one)
    again.destroy(one)
    again.destroy(two)
    assert again.list_instances() == []
    _nothing_left(again, one, [lab.name("1a")])


def test_an_instance_whose_namespace_vanished_is_failed_and_destroyable(lab, native, tmp_path):
    image = make_package(tmp_path, "plain", {})
    inst = lab.name("g")
    native.create(spec(inst, image, [("a", lab.name("ga"))]))
    netlink.link_delete(lab.name("ga"), native.netns)
    assert native.status(inst) == "failed"
    netlink.netns_delete(inst)
    assert native.list_instances()[0].state == "failed"
    native.destroy(inst)
    _nothing_left(native, inst, [lab.name("ga")])


def test_create_refuses_what_exists_and_what_it_cannot_run(lab, native, tmp_path):
    image = make_package(tmp_path, "two", {}, port_count=2, min_ports=2, max_ports=2)
    inst = lab.name("e")
    native.create(spec(inst, image, [("a", lab.name("ea")), ("b", lab.name("eb"))]))
    with pytest.raises(ResourceExists):
        native.create(spec(inst, image, [("a", lab.name("ec")), ("b", lab.name("ed"))]))
    assert native.status(inst) == "created"
    assert not netlink.link_exists(lab.name("ec"), native.netns)

    other = lab.name("f")
    with pytest.raises(DriverError, match="takes 2 ports, not 1"):
        native.create(spec(other, image, [("a", lab.name("fa"))]))
    with pytest.raises(DriverError, match="veth"):
        native.create(FunctionSpec(instance=other, template={}, image=image, ports=(
            FunctionPort("a", lab.name("fa"), technology="tap"), port("b", lab.name("fb")))))
    with pytest.raises(ResourceNotFound):
        native.create(FunctionSpec(instance=other, template={}, image=str(tmp_path / "no.tgz")))
    with pytest.raises(ValueError):
        native.create(FunctionSpec(instance="../x", template={}, image=image))
    with pytest.raises(DriverError):
        native.update(inst, add_ports=(port("c", lab.name("ec")),))   # max 2 ports
    with pytest.raises(ResourceNotFound):
        native.update(inst, remove_ports=("nosuch",))
    _nothing_left(native, other, [lab.name("fa"), lab.name("fb")])


def test_update_is_all_or_nothing_for_ports(lab, native, tmp_path):
    image = make_package(tmp_path, "flex", {"update": RECORD})
    inst = lab.name("u")
    native.create(spec(inst, image, [("a", lab.name("ua"), "10.71.0.1/24"), ("b", lab.name("ub"))]))
    taken = lab.name("uz")
    netlink.veth_add(taken, lab.name("uy"), netns=native.netns, peer_netns=native.netns)
    # Removing b and adding c and a port on a taken name: refused before anything changes.
    with pytest.raises(ResourceExists):
        native.update(inst, add_ports=(port("c", lab.name("uc")), port("d", taken)),
                      remove_ports=("b",))
    assert [p["port_id"] for p in native.instance_ports(inst)] == ["a", "b"]
    assert netlink.link_exists(lab.name("ub"), native.netns)
    netlink.link_delete(taken, native.netns)

    native.update(inst, add_ports=(port("c", lab.name("uc"), "10.71.1.1/24"),), remove_ports=("a",))
    stored = {p["port_id"]: p["ifname"] for p in native.instance_ports(inst)}
    assert stored == {"b": "eth1", "c": "eth0"}     # c takes the name a freed
    assert netlink.addr_list("eth0", inst) == ["10.71.1.1/24"]
    seen = (Path(native.state_dir) / "native" / inst / "run" / "update.seen").read_text()
    assert "COMPOSER_PORTS_ADDED=eth0" in seen and "COMPOSER_PORTS_REMOVED=eth0" in seen
    assert "COMPOSER_PORTS=eth1 eth0" in seen


def test_check_template_names_what_is_missing(native, nsf_packages):
    for name, path in nsf_packages.items():
        assert native.check_template(packages.load_template(path)) == [], name
    template = dict(packages.load_template(nsf_packages["firewall"]))
    template["dependencies"] = template["dependencies"] + [
        {"name": "no-such-binary-x", "kind": "binary"},
        {"name": "no_such_feature_x", "kind": "kernel-feature"},
        {"name": "/no/such/file", "kind": "file"},
        {"name": "sh", "kind": "binary"},
        {"name": "/bin/sh", "kind": "file"},
    ]
    assert native.check_template(template) == [
        "missing binary 'no-such-binary-x'",
        "missing kernel feature 'no_such_feature_x'",
        "missing file '/no/such/file'",
    ]
    assert native.check_template({"execution-environment": "docker"}) == [
        "execution environment 'docker' is not native"]
    assert os.geteuid() == 0


def test_destroy_works_when_the_node_namespace_is_gone(lab, session_tmp, tmp_path):
    node = lab.netns("q")
    driver = NativeDriver(str(session_tmp / ("native-%sq" % lab.tag)), netns=node)
    image = make_package(tmp_path, "plain", {})
    inst = lab.name("qq")
    driver.create(spec(inst, image, [("a", lab.name("qa"))]))
    netlink.netns_delete(node)
    assert driver.status(inst) == "failed"
    driver.destroy(inst)
    assert not netlink.netns_exists(inst)
    assert driver.list_instances() == []


def _prepared_spec(inst, image, names, **kw):
    return spec(inst, image, list(zip(("a", "b"), names)), **kw)


def test_a_prepared_slot_becomes_the_function_without_touching_its_vswitch_ends(
        lab, native, tmp_path):
    image = make_package(tmp_path, "daemon", dict(DAEMON, create=RECORD))
    inst = lab.name("p")
    names = [lab.name("pa"), lab.name("pb")]
    native.prepare(inst, tuple(names), {"composer-role": "spare"})
    assert native.status(inst) == "spare"
    assert [i.labels for i in native.list_instances() if i.instance == inst] == \
        [{"composer-role": "spare"}]
    ends = {n: netlink.link_info(n, native.netns) for n in names}
    assert netlink.sysctl_get("net/ipv6/conf/%s/disable_ipv6" % names[0], native.netns) == "1"

    ports = native.create_prepared(_prepared_spec(
        inst, image, names, labels={"composer-function": "f"}))
    assert {a.port_id: a.name for a in ports} == {"a": names[0], "b": names[1]}
    assert native.status(inst) == "created"
    # the same vSwitch ends (same interface index): nothing was made or moved in the node
    assert {n: netlink.link_info(n, native.netns)["index"] for n in names} == \
        {n: info["index"] for n, info in ends.items()}
    seen = (Path(native.state_dir) / "native" / inst / "run" / "create.seen").read_text()
    assert "COMPOSER_PORTS=eth0 eth1" in seen and "COMPOSER_PORT_0_ID=a" in seen
    assert "COMPOSER_PORT_1_VSWITCH_IFNAME=%s" % names[1] in seen
    native.start(inst)
    assert native.status(inst) == "running"
    native.destroy(inst)
    _nothing_left(native, inst, names)


def test_a_prepared_port_takes_the_callers_mac_and_address(lab, native, tmp_path):
    image = make_package(tmp_path, "plain", {})
    inst = lab.name("q")
    names = (lab.name("qa"),)
    native.prepare(inst, names)
    native.create_prepared(FunctionSpec(instance=inst, template={}, image=image,
                               ports=(port("a", names[0], "10.9.8.7/24",
                                           mac="02:00:00:0a:0b:0d"),)))
    assert netlink.link_info("eth0", inst)["mac"] == "02:00:00:0a:0b:0d"
    assert "10.9.8.7/24" in netlink.addr_list("eth0", inst)


def test_a_failed_create_in_a_prepared_slot_makes_the_slot_again(lab, native, tmp_path):
    image = make_package(tmp_path, "broken", {"create": "echo no >&2\nexit 4\n"})
    inst = lab.name("r")
    names = (lab.name("ra"), lab.name("rb"))
    native.prepare(inst, names, {"composer-role": "spare"})
    ends = {n: netlink.link_info(n, native.netns)["index"] for n in names}
    with pytest.raises(ScriptError):
        native.create_prepared(_prepared_spec(inst, image, names))
    assert native.status(inst) == "spare"
    # the vSwitch ends were kept (a vSwitch would hold them)
    assert {n: netlink.link_info(n, native.netns)["index"] for n in names} == ends
    assert [i.labels for i in native.list_instances() if i.instance == inst] == \
        [{"composer-role": "spare"}]
    assert all(netlink.link_exists(n, native.netns) for n in names)
    assert netlink.link_names("eth", inst) == ["eth0", "eth1"]
    # the slot still works
    good = make_package(tmp_path, "plain", {})
    native.create_prepared(_prepared_spec(inst, good, names))
    native.destroy(inst)
    _nothing_left(native, inst, names)


def test_create_in_a_slot_refuses_what_is_not_that_slot(lab, native, tmp_path):
    image = make_package(tmp_path, "plain", {})
    inst = lab.name("s")
    names = (lab.name("sa"), lab.name("sb"))
    with pytest.raises(ResourceNotFound):
        native.create_prepared(_prepared_spec(inst, image, names))      # no slot at all
    native.prepare(inst, names)
    with pytest.raises(ResourceExists):
        native.prepare(inst, names)                           # the slot exists
    with pytest.raises(DriverError, match="prepared slot has the ports"):
        native.create_prepared(_prepared_spec(inst, image, (names[1], names[0])))
    assert native.status(inst) == "spare"
    native.create_prepared(_prepared_spec(inst, image, names))
    with pytest.raises(ResourceExists, match="not a prepared slot"):
        native.create_prepared(_prepared_spec(inst, image, names))     # taken already
    native.destroy(inst)
    _nothing_left(native, inst, names)


def test_release_empties_the_slot_and_keeps_the_vswitch_ends(lab, native, tmp_path):
    # create leaves a bridge and a process in the namespace: the slot must come back empty
    image = make_package(tmp_path, "messy", dict(
        DAEMON, create="ip link add br7 type bridge\n"))
    inst = lab.name("u")
    names = (lab.name("ua"), lab.name("ub"))
    native.prepare(inst, names, {"composer-role": "spare"})
    macs = {n: netlink.link_info(n, inst)["mac"] for n in ("eth0", "eth1")}
    ends = {n: netlink.link_info(n, native.netns)["index"] for n in names}
    native.create_prepared(_prepared_spec(inst, image, names, labels={"composer-function": "f"}))
    netlink.link_set("eth0", inst, mac="02:00:00:00:00:77")
    native.start(inst)
    assert netlink.netns_pids(inst)

    native.release(inst)
    assert native.status(inst) == "spare"
    assert [i.labels for i in native.list_instances() if i.instance == inst] == \
        [{"composer-role": "spare"}]
    assert netlink.netns_pids(inst) == []
    assert sorted(netlink.link_names("", inst)) == ["eth0", "eth1", "lo"]   # no br7
    assert {n: netlink.link_info(n, inst)["mac"] for n in ("eth0", "eth1")} == macs
    assert {n: netlink.link_info(n, native.netns)["index"] for n in names} == ends
    assert not netlink.tx_checksum_enabled("eth0", inst)
    assert not netlink.netns_exists(inst + "-x")
    native.create_prepared(_prepared_spec(inst, image, names))       # and it can be taken again
    native.destroy(inst)
    _nothing_left(native, inst, names)
