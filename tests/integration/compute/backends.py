"""The execution environments the compute conformance suite (test_conformance.py) runs
through: one Backend per driver, on the real daemons.

A new driver gets a Backend here (a subclass that says how to make its driver, a function
of its environment that runs a process, one whose create fails half-way, and how to break
an instance under the driver) and is added to BACKENDS; the suite then runs every test
against it, and skips them with the Backend's reason where the environment is absent.
"""

import dataclasses
import json
import os
import signal
from pathlib import Path

from drivers import netlink, watch
from drivers.compute.base import FunctionSpec
from drivers.compute.docker import DockerDriver
from drivers.compute import dpdk
from drivers.compute.dpdk import DPDKDriver
from drivers.compute.native import NativeDriver
from nsf import images
from tests import dockerlab, guest
from tests.resources import PREFIX

from .helpers import DAEMON, make_package, port, spec

# A multicast MAC, which the kernel refuses for a veth: a create given it on its last port
# fails once the namespace and the other ports are made.
REFUSED_MAC = "01:00:5e:00:00:01"


class Backend:
    """What the suite needs of one environment. Every method gets the driver under test."""

    name = ""

    def unavailable(self) -> str | None:
        """Why the environment cannot run here (the tests are skipped), or None."""
        return None

    def driver(self, lab, directory):
        """A fresh driver whose node is the lab's namespace lab.netns("n")."""
        raise NotImplementedError

    def reopen(self, driver):
        """A new driver on the same node and state: the agent after a restart."""
        raise NotImplementedError

    def spec(self, directory, instance: str, ports, labels=None):
        """A FunctionSpec of this environment whose start leaves a process running;
        ports as (port_id, vswitch_ifname); it takes 1 to 4 ports."""
        raise NotImplementedError

    def failing_spec(self, directory, instance: str, ports):
        """A FunctionSpec whose create fails after it has made something (its namespace,
        container or domain, its ports)."""
        raise NotImplementedError

    def lose_part(self, driver, instance: str) -> None:
        """Delete a part of a running instance under the driver (the driver must report
        LOST): a namespace, a container, a domain."""
        raise NotImplementedError

    def kill_process(self, driver, instance: str) -> None:
        """Kill the process a running instance runs (the driver must report EXITED)."""
        raise NotImplementedError

    def leftovers(self, driver, instance: str) -> list:
        """What of an instance is still on the node besides its ports (which the suite
        checks itself), one line each."""
        raise NotImplementedError

    def affinity(self, driver, instance: str) -> set:
        """The CPUs the processes of a running instance may run on (os.sched_getaffinity:
        a native function's processes, a container's, a VM's vCPU threads, a DPDK
        process's lcores), to check that FunctionSpec.cpu_cores binds them."""
        raise NotImplementedError


class NativeBackend(Backend):
    name = "native"

    def driver(self, lab, directory):
        return NativeDriver(str(directory / ("native-%s" % lab.tag)), netns=lab.netns("n"))

    def reopen(self, driver):
        return NativeDriver(str(driver.state_dir), netns=driver.netns)

    def spec(self, directory, instance, ports, labels=None):
        image = _package(directory, "daemon", DAEMON, min_ports=1, max_ports=4)
        return spec(instance, image, ports, labels=labels)

    def failing_spec(self, directory, instance, ports):
        image = _package(directory, "broken", {"create": "echo no >&2\nexit 3\n"},
                         min_ports=1, max_ports=4)
        return spec(instance, image, ports)

    def lose_part(self, driver, instance):
        netlink.netns_delete(instance)

    def kill_process(self, driver, instance):
        for pid in netlink.netns_pids(instance):
            identity = watch.process_identity(pid)
            if identity is not None and identity[2] != "sleep":
                os.kill(pid, signal.SIGKILL)

    def affinity(self, driver, instance):
        cpus = set()
        for pid in netlink.netns_pids(instance):
            cpus |= os.sched_getaffinity(pid)
        return cpus

    def leftovers(self, driver, instance):
        found = []
        if netlink.netns_exists(instance):
            found.append("namespace %s" % instance)
        if (driver.root / instance).exists():
            found.append("directory %s" % (driver.root / instance))
        return found


def _package(directory, name, scripts, **template) -> str:
    """A test package, made once per directory."""
    where = directory / ("pkg-%s" % name)
    path = where / ("%s.tgz" % name)
    if path.exists():
        return str(path)
    return make_package(where, name, scripts, **template)


class DockerBackend(Backend):
    """Containers of the session's own dockerd (tests/dockerlab.py)."""

    name = "docker"

    def unavailable(self):
        return dockerlab.unavailable()

    def driver(self, lab, directory):
        return DockerDriver(str(directory / ("docker-%s" % lab.tag)), netns=lab.netns("n"),
                            host=dockerlab.host(), prefix=PREFIX)

    def reopen(self, driver):
        return DockerDriver(str(driver.state_dir), netns=driver.netns, host=driver.host,
                            prefix=driver.prefix)

    def spec(self, directory, instance, ports, labels=None):
        template = docker_image(directory, "daemon", DAEMON, min_ports=1, max_ports=4)
        return docker_spec(template, instance, ports, labels=labels)

    def failing_spec(self, directory, instance, ports):
        # dockerd refuses to create a container with less than 6 MB: after the image is
        # loaded, the namespace and the ports made
        template = dict(docker_image(directory, "daemon", DAEMON, min_ports=1, max_ports=4),
                        memory=1)
        return docker_spec(template, instance, ports)

    def lose_part(self, driver, instance):
        driver.api.remove_container(instance, force=True)

    def kill_process(self, driver, instance):
        os.kill(driver.api.inspect_container(instance)["State"]["Pid"], signal.SIGKILL)

    def affinity(self, driver, instance):
        return os.sched_getaffinity(driver.api.inspect_container(instance)["State"]["Pid"])

    def leftovers(self, driver, instance):
        found = []
        if netlink.netns_exists(instance):
            found.append("namespace %s" % instance)
        if (driver.root / instance).exists():
            found.append("directory %s" % (driver.root / instance))
        if driver.api.containers(all=True, filters={"name": "^/%s$" % instance}):
            found.append("container %s" % instance)
        return found


def docker_image(directory, name, scripts, **template) -> dict:
    """The docker template of a test package's image (nsf/images.py), built once per
    directory; template: its template.json fields (docker.json: memory 32 MiB)."""
    where = directory / ("img-%s" % name)
    if not where.exists():
        make_package(where, name, scripts, **template)
        (where / name / "docker.json").write_text(json.dumps(
            {"id": "docker-%s" % name, "memory": 32, "cpu": 0.5}))
    return images.build(where / "images", source_dir=where)[name]


def docker_spec(template: dict, instance: str, ports, parameters=(), labels=None):
    """A FunctionSpec of a docker template; ports as helpers.spec takes them."""
    return FunctionSpec(instance=instance, template=template, image=template["image-uri"],
                        ports=tuple(port(*p) for p in ports), parameters=tuple(parameters),
                        labels=labels or {})


class KvmBackend(Backend):
    """QEMU domains through libvirtd (TCG here: every start boots the test guest, ~8 s)."""

    name = "kvm"

    def unavailable(self):
        return guest.unavailable()

    def driver(self, lab, directory):
        from drivers.compute.kvm import KvmDriver
        return KvmDriver(str(directory / ("kvm-%s" % lab.tag)), netns=lab.netns("n"))

    def reopen(self, driver):
        from drivers.compute.kvm import KvmDriver
        return KvmDriver(str(driver.state_dir), netns=driver.netns)

    def spec(self, directory, instance, ports, labels=None, template=None):
        return FunctionSpec(instance=instance, image=str(guest.path()),
                            template=dict({"id": "test-kvm", "memory": 160, "cpu": 1},
                                          **(template or {})),
                            ports=tuple(port(*p) for p in ports), labels=labels or {})

    def failing_spec(self, directory, instance, ports):
        # libvirt refuses the domain (an unknown machine type) after the taps are made
        return self.spec(directory, instance, ports, template={"machine": "no-such-pc"})

    def lose_part(self, driver, instance):
        netlink.link_delete(driver.list_instances()[0].ports[0], driver.netns)

    def kill_process(self, driver, instance):
        pid = int(Path("/run/libvirt/qemu/%s.pid" % instance).read_text())
        os.kill(pid, signal.SIGKILL)

    def affinity(self, driver, instance):
        """The CPUs of the guest's vCPU threads (QEMU names them "CPU <n>/KVM" or /TCG)."""
        pid = int(Path("/run/libvirt/qemu/%s.pid" % instance).read_text())
        cpus = set()
        for task in Path("/proc/%d/task" % pid).iterdir():
            if (task / "comm").read_text().startswith("CPU "):
                cpus |= os.sched_getaffinity(int(task.name))
        return cpus

    def leftovers(self, driver, instance):
        found = []
        if guest.domain_exists(instance):
            found.append("domain %s" % instance)
        if (driver.root / instance).exists():
            found.append("directory %s" % (driver.root / instance))
        return found


class DPDKBackend(Backend):
    """dpdk-testpmd forwarding between af_packet vdevs on the function ends of veths, one
    lcore (the machine's cores are shared), --no-huge unless hugepages are free."""

    name = "dpdk"

    def unavailable(self):
        try:
            DPDKDriver("/nonexistent").check()
        except Exception as exc:  # noqa: BLE001 - the reason to skip
            return str(exc)
        return None

    def driver(self, lab, directory):
        return DPDKDriver(str(directory / ("dpdk-%s" % lab.tag)), netns=lab.netns("n"),
                          prefix=PREFIX)

    def reopen(self, driver):
        return DPDKDriver(str(driver.state_dir), netns=driver.netns, prefix=driver.prefix)

    def spec(self, directory, instance, ports, labels=None):
        return dpdk_spec(instance, ports, labels=labels)

    def failing_spec(self, directory, instance, ports):
        made = dpdk_spec(instance, ports)
        last = made.ports[-1]
        return dataclasses.replace(made, ports=made.ports[:-1] + (dataclasses.replace(
            last, mac_address=REFUSED_MAC),))

    def lose_part(self, driver, instance):
        netlink.netns_delete(instance)

    def kill_process(self, driver, instance):
        os.kill(driver._load(instance)["pid"][0], signal.SIGKILL)

    def affinity(self, driver, instance):
        """The CPUs of testpmd's main thread: it runs the first lcore, pinned by -l."""
        pid = driver._load(instance)["pid"][0]
        return os.sched_getaffinity(pid)

    def leftovers(self, driver, instance):
        found = []
        if netlink.netns_exists(instance):
            found.append("namespace %s" % instance)
        if (driver.root / instance).exists():
            found.append("directory %s" % (driver.root / instance))
        found += ["process %d" % pid for pid in driver._processes(instance)]
        if (dpdk.RUNTIME_DIR / instance).exists():
            found.append("runtime directory %s" % (dpdk.RUNTIME_DIR / instance))
        mount = dpdk.hugetlbfs_mount()
        if mount:
            found += [str(p) for p in Path(mount).glob("%smap_*" % instance)]
        return found


DPDK_TEMPLATE = {"id": "dpdk-test", "functional-capability": "forwarder",
                 "execution-environment": "dpdk", "min-ports": 1, "max-ports": 4,
                 "port-technology": "veth", "cpu": 1, "memory": 128}


def dpdk_spec(instance: str, ports, parameters=(), labels=None, cores=()) -> FunctionSpec:
    """A FunctionSpec of a testpmd forwarder; ports as helpers.spec takes them."""
    return FunctionSpec(instance=instance, template=DPDK_TEMPLATE, image="dpdk-testpmd",
                        ports=tuple(port(*p) for p in ports), parameters=tuple(parameters),
                        cpu_cores=tuple(cores), labels=labels or {})


BACKENDS = [NativeBackend(), DockerBackend(), KvmBackend(), DPDKBackend()]
