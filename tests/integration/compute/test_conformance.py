"""The compute driver contract (drivers/compute/base.py), run against every execution
environment in backends.BACKENDS on the real node: the lifecycle of Table 5, the undo of
each step, a create that fails leaving nothing, list_instances for recovery (also from a
new driver, as after a restart), nothing left after destroy, and watching (a part deleted
under the driver: lost; its process killed: exited; what the driver does itself: nothing).
"""

import os
from dataclasses import replace

import pytest

from drivers import netlink
from drivers.compute.base import ATTACHMENT_KINDS, SYSTEM, TAP, ComputeDriver
from drivers.errors import DriverError, NotSupported, ResourceExists, ResourceNotFound
from drivers.watch import EXITED, FUNCTION, LOST
from tests.watching import quiet, watching

from .backends import BACKENDS

LABELS = {"composer-owner": "conformance", "composer-graph": "g1"}


@pytest.fixture(params=BACKENDS, ids=lambda backend: backend.name)
def backend(request):
    reason = request.param.unavailable()
    if reason:
        pytest.skip(reason)
    return request.param


@pytest.fixture
def driver(backend, lab, tmp_path):
    driver = backend.driver(lab, tmp_path)
    driver.check()
    yield driver
    for info in driver.list_instances():
        driver.destroy(info.instance)
    driver.settle(5)
    driver.close()


def _ports(lab, tag, count=2):
    return [("p%d" % n, lab.name("%s%d" % (tag, n))) for n in range(count)]


def _node_side(driver, attachments) -> list:
    """The node-side interfaces of the attachments that have one, present in the node."""
    netns = getattr(driver, "netns", None)
    return [a.name for a in attachments if a.kind in (SYSTEM, TAP)
            and netlink.link_exists(a.name, netns)]


def _gone(backend, driver, instance, port_names) -> None:
    """Nothing of the instance is left on the node."""
    assert driver.settle(5)
    netns = getattr(driver, "netns", None)
    left = [n for n in port_names if netlink.link_exists(n, netns)]
    left += backend.leftovers(driver, instance)
    assert not left, "left behind: %s" % ", ".join(left)
    assert instance not in [i.instance for i in driver.list_instances()]
    with pytest.raises(ResourceNotFound):
        driver.status(instance)


def test_a_driver_overrides_what_the_contract_requires(driver):
    for name in ("create", "start", "stop", "destroy", "list_instances", "status"):
        assert getattr(type(driver), name) is not getattr(ComputeDriver, name), name
    assert driver.execution_environment


def test_lifecycle(backend, driver, lab, tmp_path):
    instance = lab.name("l")
    ports = _ports(lab, "l")
    spec = backend.spec(tmp_path, instance, ports, LABELS)
    planned = driver.port_attachments(spec.template, spec.ports)
    attachments = driver.create(spec)
    assert tuple(attachments) == tuple(planned)
    assert [a.port_id for a in attachments] == [p for p, _ in ports]
    assert all(a.kind in ATTACHMENT_KINDS for a in attachments)
    assert _node_side(driver, attachments) == [a.name for a in attachments
                                               if a.kind in (SYSTEM, TAP)]
    assert driver.status(instance) == "created"
    driver.start(instance)
    assert driver.status(instance) == "running"
    assert driver.problems(instance) == []
    driver.start(instance)                          # asked twice: done once
    try:
        driver.pause(instance)
    except NotSupported:
        pass
    else:
        assert driver.status(instance) == "paused"
        assert driver.problems(instance) == []      # paused is not broken
        driver.pause(instance)
        driver.resume(instance)
        assert driver.status(instance) == "running"
    driver.stop(instance)
    assert driver.status(instance) == "stopped"
    driver.stop(instance)
    driver.start(instance)                          # stopped -> running again
    assert driver.status(instance) == "running"
    driver.destroy(instance)
    _gone(backend, driver, instance, [n for _, n in ports])


def test_undo_of_each_step(backend, driver, lab, tmp_path):
    """create <-> destroy, start <-> stop, update(add) <-> update(remove): each undo leaves
    the instance as the step found it."""
    instance = lab.name("u")
    ports = _ports(lab, "u")
    driver.create(backend.spec(tmp_path, instance, ports, LABELS))
    driver.destroy(instance)
    _gone(backend, driver, instance, [n for _, n in ports])
    # the same names again at once: nothing of the undone create is in the way
    driver.create(backend.spec(tmp_path, instance, ports, LABELS))
    driver.start(instance)
    driver.stop(instance)
    assert driver.status(instance) == "stopped"
    driver.start(instance)
    extra = backend.spec(tmp_path, instance, [("p9", lab.name("u9"))]).ports
    try:
        added = driver.update(instance, add_ports=extra)
    except NotSupported:
        added = None
    if added is not None:
        assert [a.port_id for a in added] == ["p0", "p1", "p9"]
        assert tuple(added)[-1] == driver.port_attachments({}, extra)[0]
        back = driver.update(instance, remove_ports=("p9",))
        assert [a.port_id for a in back] == ["p0", "p1"]
        assert not netlink.link_exists(lab.name("u9"), getattr(driver, "netns", None)) \
            or driver.settle(5)
        assert driver.status(instance) == "running"
    driver.destroy(instance)
    _gone(backend, driver, instance, [n for _, n in ports] + [lab.name("u9")])


def test_a_create_that_fails_leaves_nothing(backend, driver, lab, tmp_path):
    instance = lab.name("f")
    ports = _ports(lab, "f")
    with pytest.raises(DriverError):
        driver.create(backend.failing_spec(tmp_path, instance, ports))
    _gone(backend, driver, instance, [n for _, n in ports])


def test_a_create_over_an_existing_instance_is_refused(backend, driver, lab, tmp_path):
    instance = lab.name("x")
    driver.create(backend.spec(tmp_path, instance, _ports(lab, "x"), LABELS))
    with pytest.raises(ResourceExists):
        driver.create(backend.spec(tmp_path, instance, _ports(lab, "y"), LABELS))
    assert driver.status(instance) == "created"
    assert not netlink.link_exists(lab.name("y0"), getattr(driver, "netns", None))


def test_unknown_instances(driver, lab):
    for call in (driver.status, driver.destroy, driver.stop):
        with pytest.raises(ResourceNotFound):
            call(lab.name("nosuch"))


def test_list_instances_finds_them_for_recovery(backend, driver, lab, tmp_path):
    one, two, other = lab.name("r1"), lab.name("r2"), lab.name("r3")
    driver.create(backend.spec(tmp_path, one, _ports(lab, "a"), LABELS))
    driver.create(backend.spec(tmp_path, two, _ports(lab, "b", 1), LABELS))
    driver.start(two)
    driver.create(backend.spec(tmp_path, other, _ports(lab, "c", 1),
                               {"composer-owner": "someone-else"}))
    found = {i.instance: i for i in driver.list_instances(LABELS)}
    assert set(found) == {one, two}
    assert (found[one].state, found[two].state) == ("created", "running")
    assert found[one].ports == (lab.name("a0"), lab.name("a1"))
    assert found[two].labels == LABELS
    # the agent after a restart: a new driver finds them, and destroys them
    again = backend.reopen(driver)
    try:
        assert {i.instance: i.state for i in again.list_instances(LABELS)} == {
            one: "created", two: "running"}
        for instance in (one, two):
            again.destroy(instance)
        assert again.settle(5)
    finally:
        again.close()
    _gone(backend, driver, one, [lab.name("a0"), lab.name("a1")])
    _gone(backend, driver, two, [lab.name("b0")])
    assert [i.instance for i in driver.list_instances()] == [other]


def test_watching_reports_a_lost_part(backend, driver, lab, tmp_path):
    instance = lab.name("w")
    driver.create(backend.spec(tmp_path, instance, _ports(lab, "w"), LABELS))
    driver.start(instance)
    with watching(driver) as events:
        backend.lose_part(driver, instance)
        event = events.get(timeout=5)
        assert (event.subject, event.name, event.what) == (FUNCTION, instance, LOST)
    assert LOST in [e.what for e in driver.problems(instance)]
    driver.destroy(instance)
    _gone(backend, driver, instance, [lab.name("w0"), lab.name("w1")])


def test_watching_reports_an_exited_process(backend, driver, lab, tmp_path):
    instance = lab.name("k")
    driver.create(backend.spec(tmp_path, instance, _ports(lab, "k"), LABELS))
    driver.start(instance)
    with watching(driver) as events:
        quiet(events)
        backend.kill_process(driver, instance)
        event = events.get(timeout=5)
        assert (event.subject, event.name, event.what) == (FUNCTION, instance, EXITED)
        assert [e.what for e in driver.problems(instance)] == [EXITED]
        # what the driver does itself is not reported: a restart, a destroy
        driver.stop(instance)
        driver.start(instance)
        assert driver.problems(instance) == []
        driver.destroy(instance)
        quiet(events)
    _gone(backend, driver, instance, [lab.name("k0"), lab.name("k1")])


def test_the_cores_of_the_spec_bind_the_running_instance(backend, driver, lab, tmp_path):
    """FunctionSpec.cpu_cores (the scheduler's binding) is what the instance's processes
    may run on: one CPU of those this process may use, not all of them."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("one CPU: a binding cannot be told from none")
    instance = lab.name("c")
    spec = replace(backend.spec(tmp_path, instance, _ports(lab, "c"), LABELS),
                   cpu_cores=(cpus[-1],))
    driver.create(spec)
    try:
        driver.start(instance)
        try:
            affinity = backend.affinity(driver, instance)
        except NotImplementedError:
            pytest.skip("the %s backend cannot read an instance's affinity" % backend.name)
        assert affinity == {cpus[-1]}
    finally:
        driver.stop(instance)
        driver.destroy(instance)


def test_usage_of_a_running_instance(backend, driver, lab, tmp_path):
    """usage(): what the running instance's processes (container, VM) use, growing CPU
    time; None once stopped; ResourceNotFound for an unknown instance."""
    from drivers.compute.usage import Usage
    instance = lab.name("m")
    driver.create(backend.spec(tmp_path, instance, _ports(lab, "m"), LABELS))
    assert driver.usage(instance) is None               # created, not running
    driver.start(instance)
    first = driver.usage(instance)
    assert isinstance(first, Usage), first
    assert first.memory_bytes > 100 << 10, first         # a process holds 100 KiB at least
    assert first.cpu_seconds >= 0
    if backend.name == "docker":    # read from the container's cgroup, not dockerd's API
        from drivers.compute.usage import cgroup_usage_of
        pid = driver._load(instance)["pid"][0]
        assert cgroup_usage_of(pid) is not None
    many = driver.usages([instance, lab.name("none")])
    assert many[lab.name("none")] is None and many[instance].memory_bytes > 100 << 10
    driver.stop(instance)
    assert driver.usage(instance) is None
    with pytest.raises(ResourceNotFound):
        driver.usage(lab.name("none"))
    driver.destroy(instance)
