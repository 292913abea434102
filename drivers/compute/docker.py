"""The docker compute driver: a service function is a container (docker SDK for Python),
with no network of docker's own; each port is a veth whose function end the driver moves
into the container's network namespace.

What an instance is on the node (instance = FunctionSpec.instance, a docker container name):
  container <instance>                  network_mode none, CAP_NET_ADMIN, labels
                                        composer.prefix=<the driver's prefix> (what
                                        list_instances looks for), composer.instance and
                                        the spec's labels; memory and CPU limits from the
                                        template ("memory" MiB, "cpu" cores), cpuset_cpus
                                        from FunctionSpec.cpu_cores, the template's
                                        "sysctls"; its command: the parameters
  /run/netns/<instance>                 the instance's network namespace, held by the
                                        driver: the container's (attached from its init's
                                        pid), so that the ports outlive a stopped container
  <node netns>: vswitch_ifname          the vSwitch end of each port's veth pair
  <instance netns>: eth<N>              the function end (as native: eth0, eth1, ... in
                                        port order, a port keeps its name)
  <state_dir>/docker/<instance>/        instance.json (ports, state; written before
                                        anything else is made) and run/, bind-mounted at
                                        /composer/run: "ports" (the eth<N> names), "go"
                                        (a FIFO: a line once the ports are in), "state"
                                        (what the init says)

The image comes from the local store: FunctionSpec.image is a `docker load` archive
(nsf/images.py builds them; its image ID is read from the archive and loaded when dockerd
lacks it: the fetch phase) or a reference already in the store. There is no registry.

Lifecycle (see base.py for the contract):
  create   the metadata, the image (fetch), the container created and started: its init
           (nsf/init.sh) blocks on the FIFO "go" before it runs anything of the package;
           its namespace held, the veth pairs made with their function ends in it
  start    1. the container's init is the one create started, still waiting: nothing to
           do; else (a start after a stop, or after a failed start) docker start, and the
           function ends move from the held namespace into the new container's (by its
           init's pid; moving drops addresses and takes a link down: both are put back),
           /run/netns/<instance> naming the container's from then on;
           2. a line on "go": the init runs the package's create and start scripts and
           writes "running" or "failed <status>"
  stop     docker stop: the init runs stop, the container exits; the ports stay in the
           held namespace. A later start moves them into the new container's
  pause    docker pause / unpause (the freezer)
  update   veth pairs made or deleted in the held namespace; a running container runs
           its update script (docker exec `init --update`)
  destroy  docker rm -f, the namespace deleted (the kernel removes the veths, the reaper
           waits for the vSwitch ends as for native)

Watching: the docker events of the driver's containers (a thread reading the stream, the
reports made on the watcher's thread): a container that dies is EXITED, one removed
(or being removed) LOST; the vSwitch end of a port deleted is LOST (InstanceWatch).
"""

import logging
import math
import os
import shutil
import tarfile
import threading
import time
import json
import queue
import select
from collections import defaultdict
from pathlib import Path

from .. import netlink, watch
from ..errors import DriverError, PrerequisiteError, ResourceExists, ResourceNotFound, ScriptError
from ..registry import register
from . import packages
from .base import ComputeDriver, FunctionPort, FunctionSpec, InstanceInfo
from .instances import (CREATED, CREATING, FAILED, IN_PLACE, PAUSED, RUNNING, STOPPED,
                        InstanceAccess, InstanceStore, record_update)
from .plumbing import Plumbing, check_unique, validate_veth_port
from .usage import cgroup_usage_of, processes_usage
from .watching import InstanceWatch

LOG = logging.getLogger(__name__)

PREFIX_LABEL = "composer.prefix"
INSTANCE_LABEL = "composer.instance"
RUN_DIR = "/composer/run"          # where the container sees the instance's run/ directory
OUTPUT_TAIL = 2000


def _docker():
    try:
        import docker
    except ImportError:
        raise PrerequisiteError("the docker SDK for Python is missing (pip install docker; "
                                "make venv)") from None
    return docker


def archive_image_id(path: str) -> str:
    """The image ID of a `docker load` archive: the digest of its config (manifest.json)."""
    try:
        with tarfile.open(path, "r:*") as tar:
            member = tar.extractfile("manifest.json")
            manifest = json.loads(member.read()) if member is not None else None
    except (tarfile.TarError, KeyError, OSError, ValueError) as exc:
        raise DriverError("not a docker image archive", resource=path, detail=str(exc)) from None
    try:
        config = manifest[0]["Config"]
    except (TypeError, IndexError, KeyError):
        raise DriverError("the image archive has no config in manifest.json",
                          resource=path) from None
    return "sha256:" + os.path.basename(config).rsplit(".json", 1)[0]


@register("compute", "docker")
class DockerDriver(InstanceAccess, ComputeDriver):
    """Containers with veth ports moved into their network namespace (see the module's
    docstring). host: dockerd's API (a private dockerd's socket, see dockerd.py); prefix:
    the label value that marks this driver's containers; netns: the node's namespace."""

    execution_environment = "docker"

    def __init__(self, state_dir: str, netns: str | None = None,
                 host: str = "unix:///run/docker.sock", prefix: str = "cnc",
                 start_timeout: float = 30.0, stop_timeout: float = 5.0,
                 api_timeout: float = 120.0):
        self.state_dir = Path(state_dir)
        self.root = self.state_dir / "docker"
        self.store = InstanceStore(self.root, "docker")
        self.netns = netns
        self.host = host
        self.prefix = prefix
        self.start_timeout = float(start_timeout)
        self.stop_timeout = float(stop_timeout)
        self.api_timeout = float(api_timeout)
        self.plumbing = Plumbing(netns)
        self.watching = InstanceWatch(netns)
        self.dependencies = packages.Dependencies()
        self._local = threading.local()
        self._version = None
        self._checked = False
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()
        self._images: dict = {}                # (archive, mtime, size) -> image id
        self._present: set = set()             # image ids dockerd has (seen once)
        self._image_locks: dict = defaultdict(threading.Lock)
        self._events = None

    # --- the API ---

    @property
    def api(self):
        """A docker APIClient of this thread (requests sessions are not shared)."""
        client = getattr(self._local, "client", None)
        if client is None:
            docker = _docker()
            try:
                client = docker.APIClient(base_url=self.host, version=self._version or "auto",
                                          timeout=self.api_timeout)
            except docker.errors.DockerException as exc:
                raise PrerequisiteError("dockerd at %s does not answer: %s" % (self.host, exc))
            self._version = client.api_version
            self._local.client = client
        return client

    def _call(self, what: str, fn, *args, resource=None, **kwargs):
        """fn(*args, **kwargs) of the API; its errors as DriverError (ResourceNotFound for
        404)."""
        docker = _docker()
        try:
            return fn(*args, **kwargs)
        except docker.errors.NotFound as exc:
            raise ResourceNotFound("%s: %s" % (what, _explanation(exc)), resource=resource) \
                from None
        except docker.errors.APIError as exc:
            raise DriverError("%s failed: %s" % (what, _explanation(exc)),
                              resource=resource) from None
        except docker.errors.DockerException as exc:
            raise DriverError("%s failed: %s" % (what, exc), resource=resource) from None

    def _container(self, instance: str) -> dict | None:
        """docker inspect of the instance's container, None when there is none."""
        try:
            return self._call("inspect", self.api.inspect_container, instance, resource=instance)
        except ResourceNotFound:
            return None

    # --- prerequisites ---

    def check(self) -> None:
        _docker()
        try:
            self.api.ping()
        except Exception as exc:  # noqa: BLE001 - whatever it is, dockerd is not usable
            raise PrerequisiteError(
                "docker functions cannot run here: dockerd at %s does not answer (%s); "
                "install docker.io (make deps) and set docker.mode = \"private\" for the "
                "agent's own dockerd" % (self.host, exc)) from None
        if os.geteuid() != 0:
            raise PrerequisiteError("docker functions need root (namespaces, veth)")
        self._checked = True

    def _check_once(self) -> None:
        if not self._checked:
            self.check()

    def check_template(self, template: dict) -> list[str]:
        problems = []
        environment = template.get("execution-environment")
        if environment and environment.split(":")[-1] != self.execution_environment:
            problems.append("execution environment '%s' is not docker" % environment)
        technology = template.get("port-technology")
        if technology and technology.split(":")[-1] != "veth":
            problems.append("port technology '%s' is not supported (veth only)" % technology)
        image = template.get("image-uri") or ""
        if not image:
            problems.append("the template names no image")
        elif image.startswith("/") and not os.path.isfile(image):
            problems.append("image archive %s is missing" % image)
        kernel = [d for d in template.get("dependencies", ())
                  if d.get("kind") == "kernel-feature"]
        return problems + self.dependencies.problems({"dependencies": kernel})

    def close(self) -> None:
        self.plumbing.close()
        client = getattr(self._local, "client", None)
        if client is not None:
            client.close()
            self._local.client = None

    def settle(self, timeout: float | None = None) -> bool:
        return self.plumbing.settle(timeout)

    # --- the image (fetch phase) ---

    def fetch(self, spec: FunctionSpec) -> None:
        """The image of spec in dockerd's store: its archive loaded when dockerd lacks it."""
        self._image(spec)

    def _image(self, spec: FunctionSpec) -> str:
        image = spec.image or (spec.template or {}).get("image-uri") or ""
        if not image:
            raise DriverError("the function names no image", resource=spec.instance or None)
        if not os.path.isfile(image):
            # a reference: it must be in the local store already
            try:
                return self._call("inspect the image", self.api.inspect_image, image,
                                  resource=image)["Id"]
            except ResourceNotFound:
                raise ResourceNotFound("image %s is not in the local image store (there is "
                                       "no registry: load it with docker load)" % image,
                                       resource=image) from None
        stat = os.stat(image)
        key = (image, stat.st_mtime_ns, stat.st_size)
        image_id = self._images.get(key) or archive_image_id(image)
        self._images[key] = image_id
        if image_id in self._present:
            return image_id
        with self._image_locks[image_id]:
            if image_id in self._present:
                return image_id
            try:
                self._call("inspect the image", self.api.inspect_image, image_id)
            except ResourceNotFound:
                started = time.monotonic()
                with open(image, "rb") as data:
                    self._call("docker load", self.api.load_image, data, resource=image)
                self._call("inspect the loaded image", self.api.inspect_image, image_id,
                           resource=image)
                LOG.info("loaded image %s (%s) in %.2f s", image, image_id[:19],
                         time.monotonic() - started)
            self._present.add(image_id)
        return image_id

    # --- paths, locks, metadata ---

    @staticmethod
    def _run_dir(meta: dict) -> Path:
        return Path(meta["dir"]) / "run"

    # --- lifecycle ---

    def create(self, spec: FunctionSpec) -> tuple:
        """The metadata, the image, the container (started, its init waiting), its network
        namespace with a veth pair per port; all or nothing (see the module's docstring)."""
        self._check_once()
        instance = spec.instance
        _check_name(instance)
        directory = self._dir(instance)
        ports = [self._validate_port(p) for p in spec.ports]
        check_unique(ports)
        with self._lock(instance):
            self._check_free(instance, directory, ports)
            template = spec.template or {}
            meta = {
                "version": 1, "instance": instance, "template": template.get("id"),
                "image": spec.image, "node_netns": self.netns, "labels": dict(spec.labels),
                "parameters": list(spec.parameters), "cpu_cores": list(spec.cpu_cores),
                "ports": [], "state": CREATING, "dir": str(directory),
                "timeout": float(template.get("timeout", self.start_timeout)),
                "port_counts": {key: template[key] for key in ("port-count", "min-ports",
                                                               "max-ports") if key in template},
                "created": time.time(),
            }
            directory.mkdir(parents=True)
            try:
                self._save(meta)
                (directory / "run").mkdir()
                image_id = self._image(spec)
                packages.check_port_count(template, len(ports), instance)
                meta["container"] = self._create_container(meta, spec, image_id)
                self._make_netns(meta)
                self._add_ports(meta, ports)
                meta["state"] = CREATED
                self._save(meta)
            except BaseException:
                self._remove_after_failure(meta, "creating")
                raise
            LOG.info("created docker function %s (%d ports)", instance, len(ports))
            return self._attachments(meta)

    def _make_netns(self, meta: dict) -> None:
        """The namespace that holds the ports: the container's own, started now (its init
        waits on "go" before it runs anything of the package), named under /run/netns.

        Why started at create: the function ends of the veths are then made in the
        container's namespace directly. Made in a namespace of their own and moved in at
        start, each move costs the kernel a synchronize_net() under the RTNL lock (about
        20 ms here, serialised across all starts: 20 s at 500 functions), and the namespace
        left empty is one more to build and tear down."""
        os.mkfifo(self._run_dir(meta) / "go", 0o600)
        pid = self._run_container(meta)
        netlink.netns_attach(meta["instance"], pid)

    def _add_ports(self, meta: dict, ports, *, ifnames=None) -> None:
        self.plumbing.add_veths(meta["instance"], ports, meta["ports"], ifnames=ifnames)
        self._write_ports(meta)

    def _create_container(self, meta: dict, spec: FunctionSpec, image_id: str) -> str:
        template = spec.template or {}
        api = self.api
        limits = {}
        if template.get("memory"):
            limits["mem_limit"] = int(float(template["memory"]) * 1024 * 1024)
        if template.get("cpu"):
            limits["nano_cpus"] = int(float(template["cpu"]) * 1e9)
        if spec.cpu_cores:
            limits["cpuset_cpus"] = ",".join(str(c) for c in spec.cpu_cores)
        host_config = api.create_host_config(
            # ipc none: an IPC namespace without a /dev/shm of its own, which no function
            # here uses and the runtime would mount for each container
            network_mode="none", ipc_mode="none", cap_add=["NET_ADMIN", "NET_RAW"],
            sysctls=dict(template.get("sysctls") or {}) or None,
            binds={str(self._run_dir(meta)): {"bind": RUN_DIR, "mode": "rw"}},
            log_config={"type": "json-file", "config": {"max-size": "1m", "max-file": "1"}},
            **limits)
        environment = {"COMPOSER_INSTANCE": meta["instance"],
                       "COMPOSER_CPU_CORES": " ".join(str(c) for c in spec.cpu_cores)}
        environment.update(packages.parameter_environment(spec.parameters))
        labels = {key: str(value) for key, value in spec.labels.items()}
        labels.update({PREFIX_LABEL: self.prefix, INSTANCE_LABEL: meta["instance"]})
        # network_disabled: the runtime still gives the container a network namespace of
        # its own (docker's default spec has one), but dockerd makes no network sandbox
        # for it: without it, every start runs dockerd's binary again as a prestart hook
        # (libnetwork-setkey) that calls back into dockerd, half of a start's cost here.
        created = self._call("docker create", api.create_container, image_id,
                             command=list(spec.parameters), name=meta["instance"],
                             environment=environment, labels=labels, host_config=host_config,
                             network_disabled=True, stop_signal="SIGTERM",
                             resource=meta["instance"])
        return created["Id"]

    def _remove_after_failure(self, meta: dict, doing: str) -> None:
        LOG.warning("%s %s failed; removing what was made", doing, meta["instance"])
        try:
            self._teardown(meta)
        except Exception:  # noqa: BLE001 - the original error is the one to report
            LOG.exception("removing what %s %s made failed", doing, meta["instance"])

    def start(self, instance: str) -> None:
        """created or stopped -> running (see the module's docstring); a start that fails
        leaves the container stopped and the ports in the held namespace."""
        with self._lock(instance):
            meta = self._load(instance)
            state = meta["state"]
            if state == RUNNING:
                return
            if state not in (CREATED, STOPPED):
                raise DriverError("cannot start an instance that is %s" % state,
                                  resource=instance)
            run = self._run_dir(meta)
            (run / "state").unlink(missing_ok=True)
            # "go" is a FIFO the init blocks on (no polling: a loop in a container of 0.1
            # CPU spends its quota and is throttled) until the ports are in and up. The
            # one create made stays: the init started then may be blocked opening it. (A
            # FIFO keeps no data once nobody has it open: nothing of an earlier start is
            # left in it.)
            if not (run / "go").exists():
                os.mkfifo(run / "go", 0o600)
            self._write_ports(meta)
            go = None
            try:
                pid = self._start_container(meta)
                self._move_ports_in(meta, pid)
                # Read-write: the open does not wait for the reader, and the line stays in
                # the pipe while go is open, whenever the init opens its end.
                go = os.open(run / "go", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
                os.write(go, b"go\n")
                self._wait_running(meta, pid)
            except BaseException:
                self._kill_quietly(meta)
                raise
            finally:
                if go is not None:
                    os.close(go)
            meta["state"] = RUNNING
            meta["pid"] = list(watch.process_identity(pid) or (pid, None, ""))
            self._save(meta)
            self._watch(meta)

    def _start_container(self, meta: dict) -> int:
        """The pid of the container's init: the one create started if it still runs
        (waiting on "go"), else the container started again (docker start)."""
        instance = meta["instance"]
        state = self._call("inspect", self.api.inspect_container, instance,
                           resource=instance)["State"]
        if state.get("Running") and not state.get("Paused") and state.get("Pid"):
            return state["Pid"]
        return self._run_container(meta)

    def _run_container(self, meta: dict) -> int:
        """docker start; the pid of the container's init."""
        instance = meta["instance"]
        self._call("docker start", self.api.start, instance, resource=instance)
        pid = self._call("inspect", self.api.inspect_container, instance,
                         resource=instance)["State"]["Pid"]
        if not pid:
            raise DriverError("the container exited as it started%s" % self._logs(meta),
                              resource=instance)
        return pid

    def _move_ports_in(self, meta: dict, pid: int) -> None:
        """The ports from the held namespace into the network namespace of pid, which the
        held name names from then on; each port up with its address again."""
        instance = meta["instance"]
        target = os.stat("/proc/%d/ns/net" % pid)
        try:
            held = os.stat(os.path.join(netlink.NETNS_RUN_DIR, instance))
        except FileNotFoundError:
            raise DriverError("its network namespace is gone", resource=instance) from None
        if (held.st_dev, held.st_ino) == (target.st_dev, target.st_ino):
            return
        for port in meta["ports"]:
            netlink.link_move(port["ifname"], None, netns=instance, to_pid=pid)
        netlink.netns_delete(instance)
        netlink.netns_attach(instance, pid)
        for port in meta["ports"]:
            netlink.link_set(port["ifname"], instance, up=True)
            if port.get("ipv4_address"):
                netlink.addr_add(port["ifname"], port["ipv4_address"],
                                 port["ipv4_prefix_length"], netns=instance)

    def _wait_running(self, meta: dict, pid: int) -> None:
        """Until the init says "running"; ScriptError when it says "failed <status>", the
        container exits first, or the template's timeout passes."""
        instance = meta["instance"]
        state_file = self._run_dir(meta) / "state"
        deadline = time.monotonic() + meta.get("timeout", self.start_timeout)
        # Woken by the init's rename of state.tmp to state (inotify) or its exit (pidfd),
        # not by polling: 8 threads polling every few ms cost a core at 500 starts.
        changes = watch.inotify_open(str(state_file.parent), watch.IN_MOVED_TO)
        try:
            exits = os.pidfd_open(pid)
        except ProcessLookupError:
            exits = None
        try:
            self._wait_said(meta, state_file, changes, exits, deadline)
        finally:
            os.close(changes)
            if exits is not None:
                os.close(exits)

    def _wait_said(self, meta: dict, state_file: Path, changes: int, exits: int | None,
                   deadline: float) -> None:
        instance = meta["instance"]
        # poll, not select: with hundreds of functions the descriptors are above 1024
        waiting = select.poll()
        waiting.register(changes, select.POLLIN)
        if exits is not None:
            waiting.register(exits, select.POLLIN)
        while True:
            watch.drain(changes)
            try:
                said = state_file.read_text().split()
            except FileNotFoundError:
                said = None
            if said:
                if said[0] == "running":
                    return
                status = int(said[1]) if len(said) > 1 and said[1].isdigit() else None
                raise ScriptError("the function's start failed with exit status %s"
                                  % status, script="start", status=status,
                                  output=self._logs(meta, raw=True), resource=instance)
            if exits is None or _readable(exits):
                raise ScriptError("the container exited while starting", script="start",
                                  status=None, output=self._logs(meta, raw=True),
                                  resource=instance)
            left = deadline - time.monotonic()
            if left <= 0:
                raise ScriptError("the function did not start within %g s"
                                  % meta.get("timeout", self.start_timeout), script="start",
                                  status=None, output=self._logs(meta, raw=True),
                                  timed_out=True, resource=instance)
            waiting.poll(left * 1000)

    def _logs(self, meta: dict, raw: bool = False) -> str:
        try:
            text = self.api.logs(meta["instance"], tail=40).decode(errors="replace").strip()
        except Exception:  # noqa: BLE001 - only a hint for the error message
            text = ""
        text = text[-OUTPUT_TAIL:]
        return text if raw else (": " + text if text else "")

    def _kill_quietly(self, meta: dict) -> None:
        """After a failed start: the container stopped (its ports stay held)."""
        try:
            self.api.stop(meta["instance"], timeout=0)
        except Exception:  # noqa: BLE001 - the caller reports the start's error
            LOG.debug("stopping %s after a failed start failed", meta["instance"],
                      exc_info=True)

    def stop(self, instance: str) -> None:
        """docker stop (the init runs the package's stop): -> stopped; created and stopped
        are left as they are. A container removed under the agent has nothing to stop."""
        with self._lock(instance):
            meta = self._load(instance)
            if meta["state"] in (CREATED, STOPPED):
                return
            if meta["state"] == CREATING:
                raise DriverError("cannot stop an instance whose creation did not finish",
                                  resource=instance)
            self._unwatch(instance)
            try:
                if meta["state"] == PAUSED:
                    self._call("docker unpause", self.api.unpause, instance, resource=instance)
                self._call("docker stop", self.api.stop, instance, timeout=math.ceil(self.stop_timeout),
                           resource=instance)
            except ResourceNotFound:
                LOG.warning("%s: its container is gone; nothing left to stop", instance)
            meta["state"] = STOPPED
            self._save(meta)

    def pause(self, instance: str) -> None:
        with self._lock(instance):
            meta = self._load(instance)
            if meta["state"] == PAUSED:
                return
            if meta["state"] != RUNNING:
                raise DriverError("cannot pause an instance that is %s" % meta["state"],
                                  resource=instance)
            self._call("docker pause", self.api.pause, instance, resource=instance)
            meta["state"] = PAUSED
            self._save(meta)

    def resume(self, instance: str) -> None:
        with self._lock(instance):
            meta = self._load(instance)
            if meta["state"] == RUNNING:
                return
            if meta["state"] != PAUSED:
                raise DriverError("cannot resume an instance that is %s" % meta["state"],
                                  resource=instance)
            self._call("docker unpause", self.api.unpause, instance, resource=instance)
            meta["state"] = RUNNING
            self._save(meta)

    def update(self, instance: str, add_ports: tuple = (), remove_ports: tuple = ()) -> tuple:
        """Remove ports (by id), add ports (FunctionPort) in the instance's namespace (the
        running container's), then, when it runs, its update script. The port changes are
        all or nothing; a failing update script raises ScriptError with the ports changed."""
        with self._lock(instance):
            meta = self._load(instance)
            if meta["state"] in (CREATING, FAILED):
                raise DriverError("cannot update an incomplete instance", resource=instance)
            add = [self._validate_port(p) for p in add_ports]
            current = {p["port_id"]: p for p in meta["ports"]}
            unknown = [pid for pid in remove_ports if pid not in current]
            if unknown:
                raise ResourceNotFound("no port %s" % ", ".join(map(repr, unknown)),
                                       resource=instance)
            kept = [p for p in meta["ports"] if p["port_id"] not in remove_ports]
            check_unique([FunctionPort(p["port_id"], p["vswitch_ifname"]) for p in kept] + add)
            packages.check_port_count(meta.get("port_counts") or {}, len(kept) + len(add),
                                      instance)
            self.plumbing.check_free(p.vswitch_ifname for p in add)
            self._unwatch(instance)
            try:
                removed = [current[pid] for pid in remove_ports]
                for port in removed:
                    self.plumbing.delete_veth(port, instance)
                meta["ports"] = kept
                before = len(meta["ports"])
                try:
                    self._add_ports(meta, add)
                except BaseException:
                    for port in meta["ports"][before:]:
                        self.plumbing.delete_veth(port, instance)
                    del meta["ports"][before:]
                    self.plumbing.restore_veths(instance, removed, meta["ports"])
                    self._write_ports(meta)
                    raise
                added = meta["ports"][before:]
                record_update(meta, IN_PLACE)
                self._save(meta)
                if meta["state"] in (RUNNING, PAUSED):
                    self._run_update(meta, added, removed)
            finally:
                self._save(meta)
                if meta["state"] in (RUNNING, PAUSED):
                    self._watch(meta)
            return self._attachments(meta)

    def _run_update(self, meta: dict, added: list, removed: list) -> None:
        """The update script in the running container (docker exec), paused or not."""
        instance = meta["instance"]
        paused = meta["state"] == PAUSED
        if paused:
            self._call("docker unpause", self.api.unpause, instance, resource=instance)
        try:
            environment = {"COMPOSER_PORTS_ADDED": " ".join(p["ifname"] for p in added),
                           "COMPOSER_PORTS_REMOVED": " ".join(p["ifname"] for p in removed)}
            run = self._call("docker exec", self.api.exec_create, instance,
                             ["/composer/init", "--update", *meta.get("parameters", ())],
                             environment=environment, resource=instance)
            output = self._call("docker exec", self.api.exec_start, run["Id"],
                                resource=instance)
            status = self._call("docker exec", self.api.exec_inspect, run["Id"],
                                resource=instance)["ExitCode"]
        finally:
            if paused:
                self._call("docker pause", self.api.pause, instance, resource=instance)
        if status != 0:
            raise ScriptError("update script failed with exit status %s" % status,
                              script="update", status=status,
                              output=output.decode(errors="replace")[-OUTPUT_TAIL:],
                              resource=instance)

    def destroy(self, instance: str) -> None:
        """docker rm -f, the namespace deleted, the instance directory removed: nothing is
        left (the vSwitch ends go with the namespace; settle() waits for them)."""
        _check_name(instance)
        directory = self._dir(instance)
        with self._lock(instance):
            try:
                meta = self._load(instance)
            except ResourceNotFound:
                if self._container(instance) is None and not netlink.netns_exists(instance):
                    raise
                LOG.warning("destroying docker function %s that has no metadata", instance)
                meta = {"instance": instance, "ports": [], "dir": str(directory),
                        "state": FAILED}
            self._unwatch(instance)
            self._teardown(meta, wait=False)
        with self._locks_guard:
            self._locks.pop(instance, None)
        LOG.info("destroyed docker function %s", instance)

    def _teardown(self, meta: dict, wait: bool = True) -> None:
        """Release whatever an instance holds; each part is skipped when absent."""
        instance = meta["instance"]
        try:
            self._call("docker rm", self.api.remove_container, instance, force=True, v=True,
                       resource=instance)
        except ResourceNotFound:
            pass
        if netlink.netns_exists(instance):
            netlink.netns_delete(instance)
        self.plumbing.forget([p["vswitch_ifname"] for p in meta.get("ports", ())], wait)
        shutil.rmtree(meta["dir"], ignore_errors=True)

    # --- recovery and state ---

    def list_instances(self, labels: dict | None = None) -> list[InstanceInfo]:
        """The instances of this driver (containers labelled with its prefix, metadata left
        by a create that did not finish) whose labels include `labels`."""
        containers = {}
        for found in self._call("docker ps", self.api.containers, all=True,
                                filters={"label": "%s=%s" % (PREFIX_LABEL, self.prefix)}):
            name = (found.get("Labels") or {}).get(INSTANCE_LABEL)
            if name:
                containers[name] = found
        out = []
        node_links = None
        for name in sorted(set(containers) | set(self.store.names())):
            try:
                meta = self._load(name)
            except (ResourceNotFound, ValueError, OSError):
                meta = None
            container = containers.get(name)
            if meta is not None:
                found_labels = meta.get("labels") or {}
            else:
                found_labels = {k: v for k, v in (container.get("Labels") or {}).items()
                                if not k.startswith("composer.")}
            if labels and any(found_labels.get(k) != v for k, v in labels.items()):
                continue
            if node_links is None:
                node_links = set(netlink.link_names("", self.netns))
            state = self._state(meta, container is not None, node_links)
            out.append(InstanceInfo(instance=name, state=state, labels=found_labels,
                                    ports=tuple(p["vswitch_ifname"]
                                                for p in (meta or {}).get("ports", ()))))
        return out

    def status(self, instance: str) -> str:
        _check_name(instance)
        try:
            meta = self._load(instance)
        except ResourceNotFound:
            if self._container(instance) is None:
                raise
            return FAILED
        exists = self._container(instance) is not None
        return self._state(meta, exists, set(netlink.link_names("", self.netns)))

    def usage(self, instance: str):
        """The container's cgroup (what `docker stats` reads, without asking dockerd),
        else the processes in its network namespace."""
        _check_name(instance)
        meta = self._load(instance)
        pid = meta.get("pid")
        if meta.get("state") not in (RUNNING, PAUSED) or not pid:
            return None
        if watch.process_identity(pid[0]) != tuple(pid):
            return None                 # its init exited: the watch reports it
        found = cgroup_usage_of(pid[0])
        return found or processes_usage(netlink.netns_pids(instance))

    def _state(self, meta: dict | None, container: bool, node_links: set) -> str:
        if meta is None or not container or meta.get("state") in (CREATING, FAILED):
            return FAILED
        if not netlink.netns_usable(meta["instance"]):
            return FAILED
        if any(p["vswitch_ifname"] not in node_links for p in meta["ports"]):
            return FAILED
        return meta["state"]

    # --- ports ---

    def _attachments(self, meta: dict) -> tuple:
        return self.port_attachments({}, tuple(FunctionPort(p["port_id"], p["vswitch_ifname"])
                                               for p in meta["ports"]))

    @staticmethod
    def _validate_port(port: FunctionPort) -> FunctionPort:
        return validate_veth_port(port, "docker")

    def _check_free(self, instance: str, directory: Path, ports) -> None:
        self.plumbing.reaper.wait(names=[port.vswitch_ifname for port in ports])
        if directory.exists():
            raise ResourceExists("docker function instance exists (destroy it first)",
                                 resource=instance)
        if netlink.netns_exists(instance):
            raise ResourceExists("a network namespace of that name exists", resource=instance)
        if self._container(instance) is not None:
            raise ResourceExists("a container of that name exists", resource=instance)
        self.plumbing.check_free(port.vswitch_ifname for port in ports)

    def _write_ports(self, meta: dict) -> None:
        """run/ports: the in-container names of the ports, one a line (for the init)."""
        run = self._run_dir(meta)
        if run.is_dir():
            tmp = run / "ports.tmp"
            tmp.write_text("".join(p["ifname"] + "\n" for p in meta["ports"]))
            os.replace(tmp, run / "ports")

    # --- watching ---

    def watch(self, watcher, sink) -> None:
        """Report what breaks a running instance without this driver doing it: its
        container dies (exited) or is removed (lost), the vSwitch end of a port is deleted
        (lost). Instances running now are watched from here on."""
        self.watching.start(watcher, sink)
        self._events = _EventStream(self, watcher)
        self._events.start()
        for name in self.store.names():
            try:
                with self._lock(name):
                    meta = self._load(name)
                    if meta.get("state") == RUNNING:
                        self._watch(meta, since=0)
            except (ResourceNotFound, ValueError, OSError):
                continue

    def unwatch(self) -> None:
        events, self._events = self._events, None
        if events is not None:
            events.stop()
        self.watching.stop()

    def _watch(self, meta: dict, since: int | None = None) -> None:
        """(holding the instance's lock) watch a running instance; container events older
        than now (those of the driver's own stop) are not about it."""
        if self._events is not None:
            self._events.since[meta["instance"]] = time.time_ns() if since is None else since
        self.watching.add(meta["instance"], [p["vswitch_ifname"] for p in meta["ports"]])
        if since == 0 and self._events is not None:
            # watched after a restart: a container that died meanwhile is reported now
            for event in self.problems(meta["instance"]):
                self.watching.report(event.name, event.what, event.detail)

    def _unwatch(self, instance: str) -> None:
        if self._events is not None:
            self._events.since.pop(instance, None)
        self.watching.remove(instance)

    def container_event(self, event: dict) -> None:
        """(on the watcher's thread) one docker event of a container of this driver."""
        attributes = (event.get("Actor") or {}).get("Attributes") or {}
        instance = attributes.get(INSTANCE_LABEL)
        events = self._events
        if instance is None or events is None:
            return
        since = events.since.get(instance)
        if since is None or int(event.get("timeNano", 0)) < since:
            return
        action = event.get("Action") or event.get("status")
        if action == "destroy":
            self.watching.report(instance, watch.LOST, "its container was removed")
        elif action == "die":
            found = self._container(instance)
            if found is None or found["State"].get("Status") in ("removing", "dead"):
                self.watching.report(instance, watch.LOST, "its container was removed")
            else:
                self.watching.report(instance, watch.EXITED, "its container exited (status %s)"
                                     % attributes.get("exitCode", "?"))

    def problems(self, instance: str) -> list:
        """What is wrong with a running instance, as Events: lost when its container, its
        namespace or the vSwitch end of a port is gone, exited when its container is not
        running."""
        def event(what, detail):
            return watch.Event(watch.FUNCTION, instance, what, detail)
        try:
            meta = self._load(instance)
        except (ResourceNotFound, ValueError, OSError):
            return [event(watch.LOST, "it is gone (no metadata)")]
        found = []
        if meta.get("state") not in (RUNNING, PAUSED):
            found.append(event(watch.LOST, "it is %s, not running" % meta.get("state")))
        container = self._container(instance)
        status = container["State"].get("Status") if container else None
        if container is None or status in ("removing", "dead"):
            found.append(event(watch.LOST, "its container is gone"))
        elif status not in ("running", "paused"):
            found.append(event(watch.EXITED, "its container is %s (exit status %s)"
                               % (status, container["State"].get("ExitCode"))))
        if not netlink.netns_usable(instance):
            found.append(event(watch.LOST, "its network namespace is gone"))
        node = meta.get("node_netns")
        missing = [p["vswitch_ifname"] for p in meta.get("ports", ())
                   if not netlink.link_exists(p["vswitch_ifname"], node)]
        if missing:
            found.append(event(watch.LOST, "its ports %s are gone" % ", ".join(missing)))
        return found


class _EventStream:
    """The docker events of the driver's containers (die, destroy), read by a thread of
    its own and handed to the watcher's thread (a pipe the watcher watches)."""

    def __init__(self, driver: DockerDriver, watcher):
        self.driver = driver
        self.watcher = watcher
        self.since: dict = {}                   # instance -> events before this are old
        self._queue = queue.Queue()
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stream = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="docker-events", daemon=True)

    def start(self) -> None:
        self.watcher.own(self._read, self._deliver)
        # the stream is open before watch() returns: nothing that follows is missed
        self._open(int(time.time()))
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        stream = self._stream
        if stream is not None:
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - closing a broken stream
                pass
        self._thread.join(5)
        self.watcher.discard(self._read)
        os.close(self._write)

    def _open(self, since: int) -> None:
        client = _docker().APIClient(base_url=self.driver.host, version=self.driver._version
                                     or "auto", timeout=None)
        self._stream = client.events(
            since=since, decode=True,
            filters={"type": "container", "event": ["die", "destroy"],
                     "label": "%s=%s" % (PREFIX_LABEL, self.driver.prefix)})

    def _run(self) -> None:
        last = int(time.time())
        while not self._stopped.is_set():
            try:
                if self._stream is None:
                    self._open(last)
                for event in self._stream:
                    last = int(event.get("time", last))
                    self._queue.put(event)
                    try:
                        os.write(self._write, b"x")
                    except BlockingIOError:
                        pass
                if self._stopped.is_set():
                    return
                raise ConnectionError("the event stream ended")
            except Exception as exc:  # noqa: BLE001 - dockerd restarted: read again from last
                if self._stopped.is_set():
                    return
                LOG.warning("docker events: %s; reading them again", exc)
                self._stream = None
                self._stopped.wait(1.0)

    def _deliver(self) -> None:
        try:
            while os.read(self._read, 4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                return
            self.driver.container_event(event)


def _readable(fd: int) -> bool:
    """Whether fd is readable now (a pidfd: its process has exited)."""
    now = select.poll()
    now.register(fd, select.POLLIN)
    return bool(now.poll(0))


def _check_name(instance: str) -> None:
    """A docker container name: [A-Za-z0-9][A-Za-z0-9_.-]*."""
    if not isinstance(instance, str) or not instance[:1].isalnum():
        raise DriverError("invalid instance name %r for a container" % (instance,))


def _explanation(exc) -> str:
    return str(getattr(exc, "explanation", None) or exc)
