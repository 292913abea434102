"""The docker driver on the session's own dockerd (tests/dockerlab.py): the shipped firewall
image carrying and blocking traffic, its ports inside the container, the template's limits
as docker sees them, a port added to a running container, recovery by labels, and a fault
at each step of create, start and update undone with nothing left behind. (The contract
itself: test_conformance.py, which runs the docker driver too.)
"""

import os
import resource
import time

import pytest

from drivers import netlink, registry
from drivers.compute import docker as docker_module
from drivers.compute.docker import INSTANCE_LABEL, PREFIX_LABEL, DockerDriver
from drivers.errors import DriverError, ResourceNotFound, ScriptError
from tests import dockerlab
from tests.resources import PREFIX

from .backends import DAEMON, docker_image, docker_spec
from .helpers import port

pytestmark = pytest.mark.skipif(dockerlab.unavailable() is not None,
                                reason=dockerlab.unavailable() or "")


@pytest.fixture
def docker(lab, tmp_path):
    driver = DockerDriver(str(tmp_path / "docker"), netns=lab.netns("n"),
                          host=dockerlab.host(), prefix=PREFIX)
    driver.check()
    yield driver
    for info in driver.list_instances():
        driver.destroy(info.instance)
    driver.settle(5)
    driver.close()


@pytest.fixture(scope="module")
def images():
    return dockerlab.built()


def _inside(lab, instance) -> list:
    """The interfaces of the instance's network namespace (the container's once started),
    lo and the firewall's bridge left out."""
    return sorted(n for n in netlink.link_names("", instance) if n not in ("lo", "br0"))


def _same_file(a, b) -> bool:
    one, two = os.stat(a), os.stat(b)
    return (one.st_dev, one.st_ino) == (two.st_dev, two.st_ino)


def _nothing_left(driver, instance, ifnames) -> None:
    assert driver.settle(5)
    left = [n for n in ifnames if netlink.link_exists(n, driver.netns)]
    assert not left, "veths left: %s" % left
    assert not netlink.netns_exists(instance)
    assert not (driver.root / instance).exists()
    assert not driver.api.containers(all=True, filters={"name": "^/%s$" % instance})
    with pytest.raises(ResourceNotFound):
        driver.status(instance)


def test_registered_as_the_docker_compute_driver(tmp_path):
    driver = registry.create("compute", "docker", state_dir=str(tmp_path),
                             host=dockerlab.host(), prefix=PREFIX)
    assert isinstance(driver, DockerDriver)
    assert driver.execution_environment == "docker"
    driver.close()


def test_firewall_container_carries_traffic_and_blocks_telnet(lab, docker, images):
    template = images["firewall"]
    assert template["execution-environment"] == "docker"
    assert template["functional-capability"] == "firewall"
    fw = lab.name("fw")
    docker.create(docker_spec(template, fw, [("in", lab.name("fi")), ("out", lab.name("fo"))],
                              ["block-tcp-dst=23"], labels={"composer-graph": "g1"}))
    a = lab.host("a", docker.netns, lab.name("fi"), "10.62.0.1/24")
    b = lab.host("b", docker.netns, lab.name("fo"), "10.62.0.2/24")
    assert not lab.ping(a, "10.62.0.2", count=1), "created but not started: no forwarding"
    lab.forget_neighbours(a)
    docker.start(fw)
    assert docker.status(fw) == "running"
    # the ports are in the container's network namespace, named as the function sees them
    pid = docker.api.inspect_container(fw)["State"]["Pid"]
    assert _same_file("/proc/%d/ns/net" % pid, os.path.join(netlink.NETNS_RUN_DIR, fw))
    assert _inside(lab, fw) == ["eth0", "eth1"]
    shown = docker.api.exec_start(docker.api.exec_create(fw, ["ip", "-o", "link"])["Id"])
    assert "eth0@" in shown.decode() and "eth1@" in shown.decode()
    # no network of docker's own, the labels recovery looks for
    found = docker.api.inspect_container(fw)
    assert found["HostConfig"]["NetworkMode"] == "none"
    assert found["Config"]["Labels"][PREFIX_LABEL] == PREFIX
    assert found["Config"]["Labels"][INSTANCE_LABEL] == fw
    assert found["Config"]["Labels"]["composer-graph"] == "g1"

    assert lab.ping(a, "10.62.0.2")
    server = lab.serve_iperf3(b, 5201)
    assert lab.transfers(a, "10.62.0.2", 5201)
    assert lab.server_report(server)["end"]["sum_received"]["bytes"] > 0
    telnet = lab.serve_iperf3(b, 23)
    assert not lab.tcp_connects(a, "10.62.0.2", 23)
    telnet.kill()

    # stopped, the container exits and the ports stay (held); started again, they move
    # into the new container
    docker.stop(fw)
    assert docker.status(fw) == "stopped"
    assert not docker.api.inspect_container(fw)["State"]["Running"]
    assert not lab.ping(a, "10.62.0.2", count=1)
    lab.forget_neighbours(a)
    docker.start(fw)
    assert _inside(lab, fw) == ["eth0", "eth1"]
    assert lab.ping(a, "10.62.0.2")
    docker.pause(fw)
    assert docker.api.inspect_container(fw)["State"]["Paused"]
    docker.resume(fw)
    assert lab.ping(a, "10.62.0.2")
    docker.pause(fw)                                    # a paused one goes as well
    docker.destroy(fw)
    _nothing_left(docker, fw, [lab.name("fi"), lab.name("fo")])


def test_create_starts_the_container_with_the_ports_made_inside(lab, docker, images,
                                                                monkeypatch):
    """Create starts the container at once (its init waits on go) and makes each veth with
    its function end in the container's namespace: nothing is moved at start (a move costs
    the kernel a synchronize_net under the RTNL lock), and no namespace of the driver's own
    is made or deleted. Its network namespace comes from the runtime, not from a network
    sandbox of dockerd's (network disabled: no libnetwork-setkey prestart hook, which runs
    dockerd's binary again at each start)."""
    moved, made = [], []
    monkeypatch.setattr(netlink, "link_move", lambda *a, **k: moved.append(a))
    real_add = netlink.netns_add
    monkeypatch.setattr(netlink, "netns_add", lambda *a, **k: made.append(a) or real_add(*a, **k))
    fw = lab.name("e")
    docker.create(docker_spec(images["firewall"], fw, [("in", lab.name("ei")),
                                                       ("out", lab.name("eo"))]))
    found = docker.api.inspect_container(fw)
    assert found["State"]["Running"]
    assert found["Config"].get("NetworkDisabled") is True
    assert found["HostConfig"]["NetworkMode"] == "none"
    assert found["HostConfig"]["IpcMode"] == "none"             # no /dev/shm mounted
    pid = found["State"]["Pid"]
    assert _same_file("/proc/%d/ns/net" % pid, os.path.join(netlink.NETNS_RUN_DIR, fw))
    assert not _same_file("/proc/%d/ns/net" % pid, "/proc/self/ns/net")
    assert _inside(lab, fw) == ["eth0", "eth1"]
    assert netlink.link_info("lo", fw)["up"]
    assert not (docker.root / fw / "run" / "state").exists()    # the init waits on go
    assert docker.status(fw) == "created"
    docker.start(fw)
    assert docker.status(fw) == "running"
    assert docker.api.inspect_container(fw)["State"]["Pid"] == pid     # the same container
    assert moved == [] and made == []


def test_a_port_added_before_the_start_is_the_functions(lab, docker, images):
    """The init started at create reads its ports once it is told to go, not before."""
    fw = lab.name("b")
    docker.create(docker_spec(images["firewall"], fw, [("in", lab.name("bi")),
                                                       ("out", lab.name("bo"))]))
    docker.update(fw, add_ports=(port("dmz", lab.name("bd")),))
    docker.start(fw)
    shown = lab.run(fw, "ip", "-o", "link", "show", "master", "br0").stdout
    assert sorted(line.split(":")[1].strip().split("@")[0]
                  for line in shown.splitlines()) == ["eth0", "eth1", "eth2"]


def test_nat_container_masquerades_inside_hosts(lab, docker, images):
    """The ports' addresses (given by the caller) survive the move into the container."""
    nat = lab.name("nat")
    docker.create(docker_spec(images["nat"], nat,
                              [("inside", lab.name("ni"), "10.64.1.1/24"),
                               ("outside", lab.name("no"), "192.168.64.1/24")]))
    inside = lab.host("i", docker.netns, lab.name("ni"), "10.64.1.2/24", gateway="10.64.1.1")
    outside = lab.host("o", docker.netns, lab.name("no"), "192.168.64.2/24")
    docker.start(nat)
    assert "10.64.1.1/24" in lab.run(nat, "ip", "-o", "addr", "show", "eth0").stdout
    assert lab.ping(inside, "192.168.64.2")
    server = lab.serve_iperf3(outside, 5201)
    assert lab.transfers(inside, "192.168.64.2", 5201)
    assert lab.server_report(server)["start"]["connected"][0]["remote_host"] == "192.168.64.1"
    netlink.route_add("10.64.1.0/24", gateway="192.168.64.1", netns=outside)
    assert not lab.ping(outside, "10.64.1.2", count=2)      # nothing gets in uninvited


def test_fetch_loads_the_image_once_and_create_then_loads_nothing(lab, docker, tmp_path,
                                                                  monkeypatch):
    """The fetch phase (run by the agent before a commit takes its locks) puts the image in
    dockerd's store; the create that follows only uses it."""
    template = docker_image(tmp_path, "fetched", DAEMON, min_ports=1, max_ports=4)
    image_id = template["image-id"]
    with pytest.raises(Exception):
        docker.api.inspect_image(image_id)          # a fresh image: not in the store yet
    loads = []
    real = type(docker.api).load_image

    def counted(api, data, *args, **kwargs):
        loads.append(image_id)
        return real(api, data, *args, **kwargs)
    monkeypatch.setattr(type(docker.api), "load_image", counted)
    spec = docker_spec(template, "", ())
    docker.fetch(spec)
    assert loads == [image_id]
    assert docker.api.inspect_image(image_id)["Id"] == image_id
    docker.fetch(spec)                              # idempotent
    instance = lab.name("i")
    docker.create(docker_spec(template, instance, [("p0", lab.name("i0"))]))
    assert loads == [image_id]
    # a new driver (the agent restarted) finds the image in the store: no load either
    again = DockerDriver(str(docker.state_dir), netns=docker.netns, host=docker.host,
                         prefix=PREFIX)
    again.fetch(spec)
    again.close()
    assert loads == [image_id]


def test_an_image_that_is_neither_an_archive_nor_in_the_store_is_refused(lab, docker,
                                                                        tmp_path):
    template = dict(docker_image(tmp_path, "daemon", DAEMON, min_ports=1, max_ports=4))
    spec = docker_spec(dict(template, **{"image-uri": "composer-nsf/nosuch:1"}),
                       lab.name("q"), [("p0", lab.name("q0"))])
    spec = type(spec)(**dict(spec.__dict__, image="composer-nsf/nosuch:1"))
    with pytest.raises(ResourceNotFound, match="not in the local image store"):
        docker.create(spec)
    _nothing_left(docker, lab.name("q"), [lab.name("q0")])


def test_limits_of_the_template_are_the_containers(lab, docker, tmp_path):
    template = dict(docker_image(tmp_path, "daemon", DAEMON, min_ports=1, max_ports=4),
                    memory=48, cpu=0.25)
    instance = lab.name("m")
    spec = docker_spec(template, instance, [("p0", lab.name("m0"))])
    spec = type(spec)(**dict(spec.__dict__, cpu_cores=(0,)))
    docker.create(spec)
    docker.start(instance)
    host_config = docker.api.inspect_container(instance)["HostConfig"]
    assert host_config["Memory"] == 48 * 1024 * 1024
    assert host_config["NanoCpus"] == 250_000_000
    assert host_config["CpusetCpus"] == "0"


def test_the_init_waits_for_go_before_create_and_start(lab, docker, images, monkeypatch):
    """The ports in and up is not enough: the init runs create and start once the driver
    writes to the FIFO go (it used to poll for the ports, burning the container's 0.1 CPU,
    and could start before the driver had them up)."""
    fw = lab.name("g")
    docker.create(docker_spec(images["firewall"], fw, [("in", lab.name("gi")),
                                                       ("out", lab.name("go"))]))
    run = docker.root / fw / "run"
    real = DockerDriver._move_ports_in
    seen = {}

    def slow(self, meta, pid):
        real(self, meta, pid)
        time.sleep(1.0)                                 # the ports are in, no go yet
        seen["state"] = (run / "state").exists()
        seen["inside"] = _inside(lab, fw)
    monkeypatch.setattr(DockerDriver, "_move_ports_in", slow)
    docker.start(fw)
    assert seen == {"state": False, "inside": ["eth0", "eth1"]}
    assert docker.status(fw) == "running"
    assert (run / "state").read_text().split() == ["running"]


def test_a_container_that_dies_while_starting_fails_the_start_at_once(lab, docker, images,
                                                                      monkeypatch):
    """The start waits on the init's pidfd: its death ends the wait, not the timeout."""
    fw = lab.name("k")
    docker.create(docker_spec(images["firewall"], fw, [("in", lab.name("ki")),
                                                       ("out", lab.name("ko"))]))
    real = DockerDriver._move_ports_in

    def killed(self, meta, pid):
        real(self, meta, pid)
        self.api.kill(meta["instance"])
    monkeypatch.setattr(DockerDriver, "_move_ports_in", killed)
    begun = time.monotonic()
    with pytest.raises(ScriptError, match="exited while starting"):
        docker.start(fw)
    assert time.monotonic() - begun < 10                # the start timeout is 30 s
    monkeypatch.setattr(DockerDriver, "_move_ports_in", real)
    assert docker.status(fw) == "created"
    docker.start(fw)
    assert docker.status(fw) == "running"


def test_a_start_with_descriptors_above_1024(lab, docker, images):
    """An agent running hundreds of functions has descriptors above select()'s 1024: the
    start's wait on the init must still work (it failed at the 500-docker benchmark)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1200:
        pytest.skip("the descriptor limit is %d" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    filler = []
    try:
        while not filler or filler[-1] < 1030:
            filler.append(os.open("/dev/null", os.O_RDONLY))
        fw = lab.name("d")
        docker.create(docker_spec(images["firewall"], fw, [("in", lab.name("di")),
                                                           ("out", lab.name("do"))]))
        docker.start(fw)
        assert docker.status(fw) == "running"
    finally:
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_port_added_to_a_running_firewall_carries_traffic(lab, docker, images):
    fw = lab.name("fw")
    docker.create(docker_spec(images["firewall"], fw,
                              [("in", lab.name("fi")), ("out", lab.name("fo"))],
                              ["block-tcp-dst=23"]))
    a = lab.host("a", docker.netns, lab.name("fi"), "10.63.0.1/24")
    lab.host("b", docker.netns, lab.name("fo"), "10.63.0.2/24")
    docker.start(fw)
    assert lab.ping(a, "10.63.0.2")
    attachments = docker.update(fw, add_ports=(port("dmz", lab.name("fd")),))
    assert [(x.port_id, x.name) for x in attachments] == [
        ("in", lab.name("fi")), ("out", lab.name("fo")), ("dmz", lab.name("fd"))]
    assert _inside(lab, fw) == ["eth0", "eth1", "eth2"]
    c = lab.host("c", docker.netns, lab.name("fd"), "10.63.0.3/24")
    assert lab.ping(a, "10.63.0.3")
    assert lab.ping(c, "10.63.0.2")
    server = lab.serve_iperf3(c, 23)
    assert not lab.tcp_connects(a, "10.63.0.3", 23)        # the rules hold on the new port
    server.kill()
    # and it goes again; the others keep their names
    docker.update(fw, remove_ports=("dmz",))
    assert _inside(lab, fw) == ["eth0", "eth1"]
    assert lab.ping(a, "10.63.0.2")
    assert docker.status(fw) == "running"


def test_instances_are_found_by_their_labels_after_a_restart(lab, docker, tmp_path):
    one, two = lab.name("r1"), lab.name("r2")
    labels = {"composer-owner": "test", "composer-graph": "g1"}
    docker.create(docker_spec(docker_image(tmp_path, "daemon", DAEMON, min_ports=1,
                                           max_ports=4), one, [("p0", lab.name("a0"))], labels=labels))
    docker.create(docker_spec(docker_image(tmp_path, "daemon", DAEMON, min_ports=1,
                                           max_ports=4), two, [("p0", lab.name("b0"))], labels=labels))
    docker.start(two)
    # a container of another agent (another prefix) on the same dockerd is not ours
    image = docker.api.inspect_container(one)["Image"]
    other = "%sother%s" % (PREFIX, lab.tag)
    docker.api.create_container(image, name=other, labels={PREFIX_LABEL: "zz" + PREFIX,
                                                           INSTANCE_LABEL: other})
    try:
        # the agent crashed before it wrote anything about `one` but its container
        (docker.root / one / "instance.json").unlink()
        (docker.root / one).rmdir() if not any((docker.root / one).iterdir()) else None
        again = DockerDriver(str(docker.state_dir), netns=docker.netns, host=docker.host,
                             prefix=PREFIX)
        found = {i.instance: i for i in again.list_instances()}
        assert set(found) == {one, two}
        assert found[two].state == "running" and found[two].labels == labels
        assert found[two].ports == (lab.name("b0"),)
        assert found[one].state == "failed"            # incomplete: destroy it
        for instance in (one, two):
            again.destroy(instance)
        assert again.settle(5)
        again.close()
        for instance, ifname in ((one, lab.name("a0")), (two, lab.name("b0"))):
            _nothing_left(docker, instance, [ifname])
    finally:
        docker.api.remove_container(other, force=True)


CREATE_STEPS = ["_image", "_make_netns", "_add_ports", "_create_container"]
START_STEPS = ["_start_container", "_move_ports_in", "_wait_running"]


@pytest.mark.parametrize("step", CREATE_STEPS + ["_save"])
def test_a_fault_at_each_step_of_create_leaves_nothing(lab, docker, tmp_path, monkeypatch,
                                                       step):
    template = docker_image(tmp_path, "daemon", DAEMON, min_ports=1, max_ports=4)
    instance = lab.name("c")
    ports = [("p0", lab.name("c0")), ("p1", lab.name("c1"))]
    real = getattr(DockerDriver, step)
    calls = []

    def broken(self, *args, **kwargs):
        calls.append(step)
        # _save fails at its last call (the instance is all made), the others at once
        if step != "_save" or args[0].get("state") == "created":
            raise DriverError("injected fault in %s" % step)
        return real(self, *args, **kwargs)
    monkeypatch.setattr(DockerDriver, step, broken)
    with pytest.raises(DriverError, match="injected"):
        docker.create(docker_spec(template, instance, ports))
    assert calls
    monkeypatch.setattr(DockerDriver, step, real)
    _nothing_left(docker, instance, [n for _, n in ports])


@pytest.mark.parametrize("step", START_STEPS)
def test_a_fault_at_each_step_of_start_leaves_it_created(lab, docker, tmp_path, monkeypatch,
                                                         step):
    template = docker_image(tmp_path, "daemon", DAEMON, min_ports=1, max_ports=4)
    instance = lab.name("s")
    ports = [("p0", lab.name("s0")), ("p1", lab.name("s1"))]
    docker.create(docker_spec(template, instance, ports))
    real = getattr(DockerDriver, step)

    def broken(self, meta, *args):
        if step != "_start_container":
            real(self, meta, *args)                     # half-way: the step did its work
        raise DriverError("injected fault in %s" % step)
    monkeypatch.setattr(DockerDriver, step, broken)
    with pytest.raises(DriverError, match="injected"):
        docker.start(instance)
    monkeypatch.setattr(DockerDriver, step, real)
    assert docker.status(instance) == "created"
    assert not docker.api.inspect_container(instance)["State"]["Running"]
    assert all(netlink.link_exists(n, docker.netns) for _, n in ports)
    docker.start(instance)                              # it can start after all
    assert docker.status(instance) == "running"
    assert _inside(lab, instance) == ["eth0", "eth1"]
    docker.destroy(instance)
    _nothing_left(docker, instance, [n for _, n in ports])


def test_a_fault_while_adding_ports_leaves_them_as_they_were(lab, docker, tmp_path,
                                                             monkeypatch):
    template = docker_image(tmp_path, "daemon", DAEMON, min_ports=1, max_ports=4)
    instance = lab.name("v")
    docker.create(docker_spec(template, instance, [("p0", lab.name("v0")),
                                                   ("p1", lab.name("v1"))]))
    docker.start(instance)
    real = docker_module.Plumbing.add_veths
    made = []

    def broken(self, netns, ports, records, **kwargs):
        if made:                                         # the undo puts p1 back
            return real(self, netns, ports, records, **kwargs)
        real(self, netns, ports[:1], records, **kwargs)  # the first port is made
        made.append(ports[0].vswitch_ifname)
        raise DriverError("injected fault adding ports")
    monkeypatch.setattr(docker_module.Plumbing, "add_veths", broken)
    with pytest.raises(DriverError, match="injected"):
        docker.update(instance, add_ports=(port("p2", lab.name("v2")),
                                           port("p3", lab.name("v3"))),
                      remove_ports=("p1",))
    monkeypatch.setattr(docker_module.Plumbing, "add_veths", real)
    assert made == [lab.name("v2")]
    assert docker.settle(5)
    assert [n for n in (lab.name(x) for x in ("v0", "v1", "v2", "v3"))
            if netlink.link_exists(n, docker.netns)] == [lab.name("v0"), lab.name("v1")]
    assert _inside(lab, instance) == ["eth0", "eth1"]
    assert docker.status(instance) == "running"
    assert docker.problems(instance) == []
    docker.destroy(instance)
    _nothing_left(docker, instance, [lab.name("v0"), lab.name("v1")])
