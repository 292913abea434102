"""The native compute driver: a service function is a package of lifecycle scripts run in a
network namespace of its own.

What an instance is on the node (instance = FunctionSpec.instance, at most 64 characters of
letters, digits, '_', '.', '-'):
  /run/netns/<instance>                      the function's network namespace
  <node netns>: FunctionPort.vswitch_ifname  the vSwitch end of each port's veth pair
  <instance netns>: eth<N>                   the function's end of it; N is the lowest free
                                             number, so create gives eth0, eth1, ... in port
                                             order and a port keeps its name for its lifetime
  <state_dir>/native/<instance>/instance.json  metadata (labels, ports, parameters, state),
                                             written before anything else is made
  <state_dir>/native/<instance>/package/     the unpacked package, the scripts' working dir
  <state_dir>/native/<instance>/run/         scratch space for the scripts (pid files)
  <state_dir>/native/<instance>/logs/<step>.log  what each script printed, appended

Scripts (create, start, stop, update, destroy; optional pause, resume; a missing one means
nothing to do) run as `ip netns exec <instance> <script> <parameter>...` in the package
directory, in a new session, with a clean environment:
  PATH, LC_ALL=C
  COMPOSER_ACTION       the step: create, start, stop, pause, resume, update, destroy
  COMPOSER_INSTANCE     the instance name (also its namespace)
  COMPOSER_PACKAGE_DIR  the unpacked package; COMPOSER_RUN_DIR the scratch directory
  COMPOSER_PORTS        the in-function interface names in port order, e.g. "eth0 eth1"
  COMPOSER_PORT_<N>_ID, _IFNAME, _MAC, _IPV4 ("a.b.c.d/len", unset when none), _VSWITCH_IFNAME
                        for each port, N being the number in its interface name eth<N>
  COMPOSER_PARAM_<KEY>  the value of each "key=value" parameter (KEY upper-cased, other
                        characters than letters and digits made '_'; a key given several
                        times holds its values joined by newlines, in order)
  COMPOSER_CPU_CORES    the cores the instance is bound to, space-separated (may be empty)
  COMPOSER_PORTS_ADDED, COMPOSER_PORTS_REMOVED  (update only) interface names
The parameters are also the script's arguments, in order. Exit status 0 is success; any
other, or running past the timeout (the template's "timeout", else the driver's), raises
ScriptError with the step, the status and the tail of the output.

The processes of an instance are the processes in its network namespace (every script runs
there and its children stay there): pause sends them SIGSTOP (again until no new one
appears), resume SIGCONT, stop and destroy kill what is left with SIGKILL. A cgroup per
instance would be race-free, but moving each script into it costs 10-15 ms here (the cgroup
threadgroup lock waits for an RCU grace period), a third of a whole create. A function made
of kernel state only (bridge, nftables, routes) keeps forwarding while paused unless its
package has pause/resume scripts.

The package's own template.json decides the scripts, the timeout and the port counts it
accepts (port-count, or min-ports..max-ports); of FunctionSpec.template only the id is kept.
"""

import gzip
import json
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import tarfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlparse

from .. import netlink, watch
from ..errors import (DriverError, PrerequisiteError, ResourceExists, ResourceNotFound,
                      ScriptError)
from ..registry import register
from .base import ComputeDriver, FunctionPort, FunctionSpec, InstanceInfo

LOG = logging.getLogger(__name__)

STEPS = ("create", "start", "stop", "pause", "resume", "update", "destroy")
REQUIRED_BINARIES = {"ip": "iproute2", "nft": "nftables", "ethtool": "ethtool"}
INSTANCE_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}\Z")
METADATA = "instance.json"
OUTPUT_TAIL = 2000
TEARDOWN_WAIT = 2.0    # seconds to wait for the kernel to remove a deleted namespace's veths
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# States in the metadata; status() reports "failed" for an instance that is incomplete.
CREATING, CREATED, RUNNING, STOPPED, PAUSED, FAILED = (
    "creating", "created", "running", "stopped", "paused", "failed")
SPARE = "spare"        # a prepared slot: namespace and ports, no package yet

# Kernel features whose config symbol is not their module name upper-cased.
KERNEL_FEATURE_SYMBOLS = {
    "br_netfilter": "BRIDGE_NETFILTER",
    "8021q": "VLAN_8021Q",
    "ip_gre": "NET_IPGRE",
    "gre": "NET_IPGRE_DEMUX",
    "tun": "TUN",
    "nf_tables_bridge": "NF_TABLES_BRIDGE",
    "nf_tables_netdev": "NF_TABLES_NETDEV",
    "nf_tables_inet": "NF_TABLES_INET",
}


def _atomic_write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def param_env_name(key: str) -> str:
    """COMPOSER_PARAM_<KEY> for a parameter key."""
    return "COMPOSER_PARAM_" + re.sub(r"[^A-Za-z0-9]", "_", key).upper()


def script_environment(meta: dict, step: str, extra: dict | None = None,
                       path: str | None = None) -> dict:
    """The environment a lifecycle script runs with (see the module docstring)."""
    env = {
        "PATH": path or os.environ.get("PATH") or DEFAULT_PATH,
        "LC_ALL": "C",
        "COMPOSER_ACTION": step,
        "COMPOSER_INSTANCE": meta["instance"],
        "COMPOSER_PACKAGE_DIR": meta["package_dir"],
        "COMPOSER_RUN_DIR": meta["run_dir"],
        "COMPOSER_PORTS": " ".join(p["ifname"] for p in meta["ports"]),
        "COMPOSER_CPU_CORES": " ".join(str(c) for c in meta.get("cpu_cores", ())),
    }
    for port in meta["ports"]:
        n = port["ifname"][len("eth"):]
        env["COMPOSER_PORT_%s_ID" % n] = port["port_id"]
        env["COMPOSER_PORT_%s_IFNAME" % n] = port["ifname"]
        env["COMPOSER_PORT_%s_VSWITCH_IFNAME" % n] = port["vswitch_ifname"]
        if port.get("mac"):
            env["COMPOSER_PORT_%s_MAC" % n] = port["mac"]
        if port.get("ipv4_address"):
            env["COMPOSER_PORT_%s_IPV4" % n] = "%s/%d" % (port["ipv4_address"],
                                                          port["ipv4_prefix_length"])
    values = defaultdict(list)
    for parameter in meta.get("parameters", ()):
        if "=" in parameter:
            key, value = parameter.split("=", 1)
            if key:
                values[param_env_name(key)].append(value)
    for name, vals in values.items():
        env[name] = "\n".join(vals)
    env.update(extra or {})
    return env


def _wait(proc: subprocess.Popen, timeout: float) -> int | None:
    """The exit status of proc, or None when it runs past timeout (without polling)."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(max(0, int(timeout * 1000))):
            return None
    finally:
        os.close(pidfd)
    return proc.wait()


def _wait_group_gone(pgid: int, timeout: float) -> None:
    """Until no process of group pgid runs (a killed script's children die after it, and
    the caller says they are gone; their zombies may wait for init a while)."""
    deadline = time.monotonic() + timeout
    while watch.group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.002)


def _read_kernel_config() -> dict[str, str]:
    text = ""
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            text = f.read()
    except OSError:
        try:
            text = Path("/boot/config-%s" % os.uname().release).read_text()
        except OSError:
            pass
    config = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, value = line.split("=", 1)
            config[key] = value
    return config


@register("compute", "native")
class NativeDriver(ComputeDriver):
    """Native functions: lifecycle scripts in a namespace per instance, veth ports.

    netns is the node's namespace, where the vSwitch end of every port is made (None: the
    agent's own). Operations on different instances may run in parallel threads; operations
    on one instance are serialised.
    """

    execution_environment = "native"

    def __init__(self, state_dir: str, netns: str | None = None, script_timeout: float = 30.0):
        self._reaper = _Reaper()
        self.state_dir = Path(state_dir)
        self.root = self.state_dir / "native"
        self.netns = netns
        self.script_timeout = float(script_timeout)
        self._checked = False
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()
        self._kernel_config = None
        # Watching (watch()): the running instances, their vSwitch ends and processes.
        self._watcher = None
        self._sink = None
        self._watch_guard = threading.Lock()
        self._watched: dict[str, dict] = {}      # instance -> {"ends": [...], "pids": [...]}
        self._ends: dict[str, str] = {}          # vSwitch end -> instance

    # --- prerequisites ---

    def check(self) -> None:
        missing = [name for name in REQUIRED_BINARIES if shutil.which(name) is None]
        problems = []
        if missing:
            problems.append("missing %s (install the Debian packages %s)" % (
                ", ".join(missing), ", ".join(sorted({REQUIRED_BINARIES[m] for m in missing}))))
        if os.geteuid() != 0:
            problems.append("native functions need root (namespaces, veth, nftables)")
        if problems:
            raise PrerequisiteError("native functions cannot run here: %s" % "; ".join(problems))
        self._checked = True

    def close(self) -> None:
        """Wait for what destroyed instances left to the kernel, then close the netlink
        socket kept in the node namespace (reopened when needed)."""
        self.settle()
        if self.netns is not None:
            netlink.release(self.netns)

    def _check_once(self) -> None:
        if not self._checked:
            self.check()

    def check_template(self, template: dict) -> list[str]:
        """What the template needs that the node lacks, one line each (empty: it can run).

        Lines look like "missing binary 'nft'", "missing kernel feature 'nf_tables'",
        "missing file '/etc/x'", or name a template field this driver cannot honour.
        """
        problems = []
        environment = template.get("execution-environment")
        if environment and environment.split(":")[-1] != self.execution_environment:
            problems.append("execution environment '%s' is not native" % environment)
        technology = template.get("port-technology")
        if technology and technology.split(":")[-1] != "veth":
            problems.append("port technology '%s' is not supported (veth only)" % technology)
        for dep in template.get("dependencies", ()):
            name, kind = dep.get("name", ""), dep.get("kind", "binary")
            if kind == "binary":
                if shutil.which(name) is None:
                    problems.append("missing binary '%s'" % name)
            elif kind == "kernel-feature":
                if not self.kernel_feature_available(name):
                    problems.append("missing kernel feature '%s'" % name)
            elif kind == "file":
                if not os.path.exists(name):
                    problems.append("missing file '%s'" % name)
            else:
                problems.append("unknown dependency kind '%s' for '%s'" % (kind, name))
        return problems

    def kernel_feature_available(self, name: str) -> bool:
        """A loaded module, a config symbol set to y or m, or a module modprobe can find."""
        module = name.replace("-", "_")
        if os.path.exists("/sys/module/%s" % module):
            return True
        if self._kernel_config is None:
            self._kernel_config = _read_kernel_config()
        symbol = name if name.startswith("CONFIG_") else "CONFIG_" + KERNEL_FEATURE_SYMBOLS.get(
            module, module.upper())
        if self._kernel_config.get(symbol) in ("y", "m"):
            return True
        modprobe = shutil.which("modprobe")
        if modprobe and os.path.isdir("/lib/modules/%s" % os.uname().release):
            return subprocess.run([modprobe, "-n", "-q", module],
                                  capture_output=True).returncode == 0
        return False

    # --- paths and metadata ---

    def _dir(self, instance: str) -> Path:
        if not isinstance(instance, str) or not INSTANCE_RE.match(instance):
            raise ValueError("invalid instance name %r (1..64 letters, digits, '_', '.', '-', "
                             "not starting with '.' or '-')" % (instance,))
        return self.root / instance

    def _lock(self, instance: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks[instance]

    def _load(self, instance: str) -> dict:
        try:
            with open(self._dir(instance) / METADATA) as f:
                return json.load(f)
        except FileNotFoundError:
            raise ResourceNotFound("no native function instance", resource=instance) from None

    def _save(self, meta: dict) -> None:
        _atomic_write_json(Path(meta["dir"]) / METADATA, meta)

    # --- lifecycle ---

    def create(self, spec: FunctionSpec) -> dict[str, str]:
        """Make the namespace, the ports and the package, then run `create`; all or nothing.

        1. write the metadata (state "creating"), so that a crash leaves a findable trace;
        2. unpack the package, make the namespace;
        3. make a veth pair per port: vswitch_ifname in the node namespace, eth<N> in the
           function's, MAC and IPv4 set, both up, tx checksum offload off on both;
        4. run the `create` script; state "created".
        If a step fails, what the earlier steps made is removed before the error is raised.
        """
        self._check_once()
        instance = spec.instance
        directory = self._dir(instance)
        ports = [self._validate_port(p) for p in spec.ports]
        self._check_unique(ports)
        if spec.prepared:
            return self._create_prepared(spec, ports)
        with self._lock(instance):
            self._check_free(instance, directory, ports)
            meta = {
                "version": 1,
                "instance": instance,
                "template": spec.template.get("id") if spec.template else None,
                "image": spec.image,
                "node_netns": self.netns,
                "labels": dict(spec.labels),
                "parameters": list(spec.parameters),
                "cpu_cores": list(spec.cpu_cores),
                "ports": [],
                "state": CREATING,
                "dir": str(directory),
                "package_dir": str(directory / "package"),
                "run_dir": str(directory / "run"),
                "created": time.time(),
            }
            directory.mkdir(parents=True)
            try:
                self._save(meta)
                self._install_package(meta, len(ports))
                netlink.netns_add(instance)
                self._add_ports(meta, ports)
                self._save(meta)
                self._run_script(meta, "create")
                meta["state"] = CREATED
                self._save(meta)
            except BaseException:
                self._remove_after_failure(meta, "creating")
                raise
            finally:
                netlink.release(instance)
            LOG.info("created native function %s (%d ports)", instance, len(ports))
            return {p["port_id"]: p["vswitch_ifname"] for p in meta["ports"]}

    def prepare(self, instance: str, vswitch_ifnames: tuple, labels: dict | None = None) -> None:
        """The namespace and a veth pair per name (eth0, eth1, ... inside), both ends up and
        the node ends ready for the vSwitch, as create() makes them; state "spare"."""
        self._check_once()
        directory = self._dir(instance)
        ports = [self._validate_port(FunctionPort("port%d" % n, name))
                 for n, name in enumerate(vswitch_ifnames)]
        self._check_unique(ports)
        with self._lock(instance):
            self._check_free(instance, directory, ports)
            meta = {"version": 1, "instance": instance, "node_netns": self.netns,
                    "labels": dict(labels or {}), "ports": [], "state": CREATING,
                    "dir": str(directory), "created": time.time()}
            directory.mkdir(parents=True)
            try:
                self._save(meta)
                netlink.netns_add(instance)
                self._add_ports(meta, ports)
                meta["spare_ports"] = [dict(p) for p in meta["ports"]]
                meta["state"] = SPARE
                self._save(meta)
            except BaseException:
                self._remove_after_failure(meta, "preparing")
                raise
            finally:
                netlink.release(instance)
        LOG.debug("prepared native slot %s (%d ports)", instance, len(ports))

    def _create_prepared(self, spec: FunctionSpec, ports: list) -> dict[str, str]:
        """create() in a slot of prepare(): the ports get their ids, MACs and addresses, the
        package is unpacked and `create` runs. The vSwitch ends are not touched, so the node
        namespace sees no link change. On failure the slot is emptied (_empty_slot)."""
        instance = spec.instance
        with self._lock(instance):
            meta = self._load(instance)
            if meta.get("state") != SPARE:
                raise ResourceExists("native function instance %s is not a prepared slot"
                                     % instance, resource=instance)
            spare_ports = meta["spare_ports"]
            if [p.vswitch_ifname for p in ports] != [p["vswitch_ifname"] for p in spare_ports]:
                raise DriverError("the prepared slot has the ports %s, not %s" % (
                    ", ".join(p["vswitch_ifname"] for p in spare_ports),
                    ", ".join(p.vswitch_ifname for p in ports)), resource=instance)
            directory = Path(meta["dir"])
            meta["spare_labels"] = meta["labels"]
            meta.update({
                "template": spec.template.get("id") if spec.template else None,
                "image": spec.image, "labels": dict(spec.labels),
                "parameters": list(spec.parameters), "cpu_cores": list(spec.cpu_cores),
                "state": CREATING, "package_dir": str(directory / "package"),
                "run_dir": str(directory / "run")})
            failure = None
            try:
                self._save(meta)
                self._install_package(meta, len(ports))
                for record, port in zip(meta["ports"], ports):
                    self._fill_port(instance, record, port)
                self._save(meta)
                self._run_script(meta, "create")
                meta["state"] = CREATED
                self._save(meta)
            except BaseException as exc:
                LOG.warning("creating %s in its prepared slot failed; emptying the slot",
                            instance)
                failure = exc
                self._empty_slot_or_remove(meta)
            finally:
                netlink.release(instance)
        if failure is not None:
            raise failure
        LOG.info("created native function %s in a prepared slot (%d ports)", instance,
                 len(ports))
        return {p["port_id"]: p["vswitch_ifname"] for p in meta["ports"]}

    def release(self, instance: str) -> None:
        """The function made in a prepared slot goes and the slot is left as prepare() made
        it (the undo of create(prepared=True)): stop, `destroy`, then _empty_slot."""
        with self._lock(instance):
            meta = self._load(instance)
            if "spare_ports" not in meta:
                raise DriverError("%s was not made in a prepared slot" % instance,
                                  resource=instance)
            if meta["state"] == SPARE:
                return
            self._unwatch(instance)
            try:
                self._thaw(meta)
                if meta["state"] in (RUNNING, PAUSED):
                    self._run_script_logged(meta, "stop")
                if meta["state"] != CREATING and meta.get("scripts"):
                    self._run_script_logged(meta, "destroy")
                self._empty_slot(meta)
            finally:
                netlink.release(instance)
        LOG.info("released native function %s; its slot is prepared again", instance)

    def _install_package(self, meta: dict, port_count: int) -> None:
        """Unpack the package into the instance directory; its scripts, timeout and template
        id go into meta."""
        directory = Path(meta["dir"])
        self._unpack(meta["image"], Path(meta["package_dir"]))
        (directory / "run").mkdir()
        (directory / "logs").mkdir()
        template = self._package_template(meta)
        self._check_port_count(template, port_count, meta["instance"])
        meta["scripts"] = self._scripts(template, Path(meta["package_dir"]))
        meta["timeout"] = float(template.get("timeout", self.script_timeout))
        meta["package_template"] = template.get("id")

    def _remove_after_failure(self, meta: dict, doing: str) -> None:
        LOG.warning("%s %s failed; removing what was made", doing, meta["instance"])
        try:
            self._teardown(meta)
        except Exception:  # the original error is the one to report
            LOG.exception("removing what %s %s made failed", doing, meta["instance"])

    def _empty_slot_or_remove(self, meta: dict) -> None:
        try:
            self._empty_slot(meta)
        except Exception:  # noqa: BLE001 - a slot is a cache: losing it costs speed only
            LOG.exception("emptying the slot %s failed; removing it", meta["instance"])
            try:
                self._teardown(meta)
            except Exception:  # the original error is the one to report
                LOG.exception("removing the slot %s failed", meta["instance"])

    def _empty_slot(self, meta: dict) -> None:
        """Back to what prepare() made: every process killed, a fresh namespace, the same
        function-side ends (moved out to a parking namespace and back, MACs as prepared),
        no package. The vSwitch ends are never deleted: the vSwitch holds them (a veth
        made again under the same name is not opened again by the userspace datapath)."""
        instance = meta["instance"]
        spare_ports = meta["spare_ports"]
        self._thaw(meta)
        self._kill_processes(meta)
        parking = instance + "-x"
        netlink.netns_add(parking, loopback_up=False)
        try:
            for port in spare_ports:
                netlink.link_move(port["ifname"], parking, netns=instance)
            netlink.netns_delete(instance)
            netlink.release(instance)
            netlink.netns_add(instance)
            for port in spare_ports:
                netlink.link_move(port["ifname"], instance, netns=parking)
                netlink.link_set(port["ifname"], instance, mac=port["mac"], up=True)
            netlink.tx_checksum_off(*(p["ifname"] for p in spare_ports), netns=instance)
        finally:
            netlink.netns_delete(parking)
            netlink.release(parking)
        directory = Path(meta["dir"])
        for part in ("package", "run", "logs"):
            shutil.rmtree(directory / part, ignore_errors=True)
        spare = {"version": 1, "instance": instance, "node_netns": meta.get("node_netns"),
                 "labels": meta.get("spare_labels", meta["labels"]),
                 "ports": [dict(p) for p in spare_ports], "spare_ports": spare_ports,
                 "state": SPARE, "dir": meta["dir"], "created": meta.get("created")}
        meta.clear()
        meta.update(spare)
        self._save(meta)

    @staticmethod
    def _fill_port(instance: str, record: dict, port: FunctionPort) -> None:
        """A prepared port becomes the function's: id, MAC, IPv4 address."""
        record.update({"port_id": port.port_id, "technology": port.technology,
                       "ipv4_address": port.ipv4_address,
                       "ipv4_prefix_length": (port.ipv4_prefix_length or 24
                                              if port.ipv4_address else None)})
        if port.mac_address and port.mac_address.lower() != record["mac"].lower():
            netlink.link_set(record["ifname"], instance, mac=port.mac_address)
            record["mac"] = port.mac_address
        if port.ipv4_address:
            netlink.addr_add(record["ifname"], port.ipv4_address, record["ipv4_prefix_length"],
                             netns=instance)

    def start(self, instance: str) -> None:
        """Run `start`: created or stopped -> running; running is left as is."""
        with self._lock(instance):
            meta = self._load(instance)
            state = meta["state"]
            if state == RUNNING:
                return
            if state not in (CREATED, STOPPED):
                raise DriverError("cannot start an instance that is %s" % state,
                                  resource=instance)
            self._run_script(meta, "start")
            meta["state"] = RUNNING
            meta["processes"] = self._processes(instance)
            self._save(meta)
            self._watch(meta)

    def stop(self, instance: str) -> None:
        """Thaw if paused, run `stop`, kill what is left of its processes: -> stopped.

        An instance whose namespace is gone (deleted under the agent) has nothing left to
        stop: it becomes stopped without its script. With neither metadata nor namespace
        the instance is unknown (ResourceNotFound)."""
        with self._lock(instance):
            meta = self._load(instance)
            if meta["state"] in (CREATED, STOPPED):
                return
            if meta["state"] == CREATING:
                raise DriverError("cannot stop an instance whose creation did not finish",
                                  resource=instance)
            self._unwatch(instance)
            if netlink.netns_usable(instance):
                self._thaw(meta)
                try:
                    self._run_script(meta, "stop")
                finally:
                    self._kill_processes(meta)
            else:
                LOG.warning("%s: its namespace is gone; nothing left to stop", instance)
            meta["state"] = STOPPED
            self._save(meta)

    def pause(self, instance: str) -> None:
        """Run `pause` (if the package has one), then freeze the processes: running -> paused."""
        with self._lock(instance):
            meta = self._load(instance)
            if meta["state"] == PAUSED:
                return
            if meta["state"] != RUNNING:
                raise DriverError("cannot pause an instance that is %s" % meta["state"],
                                  resource=instance)
            self._run_script(meta, "pause")
            self._freeze(meta)
            meta["state"] = PAUSED
            self._save(meta)

    def resume(self, instance: str) -> None:
        """Thaw the processes, then run `resume` (if any): paused -> running."""
        with self._lock(instance):
            meta = self._load(instance)
            if meta["state"] == RUNNING:
                return
            if meta["state"] != PAUSED:
                raise DriverError("cannot resume an instance that is %s" % meta["state"],
                                  resource=instance)
            self._thaw(meta)
            meta["state"] = RUNNING
            self._save(meta)
            self._run_script(meta, "resume")

    def update(self, instance: str, add_ports: tuple = (), remove_ports: tuple = ()) -> dict[str, str]:
        """Remove ports (by id), add ports (FunctionPort), then run `update`.

        The port changes are all or nothing: if adding a port fails, the added ones are
        deleted and the removed ones made again (same names, MAC, address). A failing
        `update` script raises ScriptError with the ports already changed.
        """
        with self._lock(instance):
            meta = self._load(instance)
            if meta["state"] in (CREATING, FAILED):
                raise DriverError("cannot update an incomplete instance", resource=instance)
            self._unwatch(instance)
            try:
                return self._update(meta, add_ports, remove_ports)
            finally:
                if meta["state"] == RUNNING:
                    meta["processes"] = self._processes(instance)   # `update` may start some
                    self._save(meta)
                    self._watch(meta)

    def _update(self, meta: dict, add_ports: tuple, remove_ports: tuple) -> dict[str, str]:
        """update() holding the instance's lock."""
        instance = meta["instance"]
        add = [self._validate_port(p) for p in add_ports]
        remove = list(remove_ports)
        current = {p["port_id"]: p for p in meta["ports"]}
        unknown = [pid for pid in remove if pid not in current]
        if unknown:
            raise ResourceNotFound("no port %s" % ", ".join(map(repr, unknown)),
                                   resource=instance)
        kept = [p for p in meta["ports"] if p["port_id"] not in remove]
        self._check_unique([FunctionPort(p["port_id"], p["vswitch_ifname"]) for p in kept]
                           + add)
        template = self._package_template(meta)
        self._check_port_count(template, len(kept) + len(add), instance)
        for port in add:
            if (netlink.link_exists(port.vswitch_ifname, self.netns)
                    and port.vswitch_ifname not in {current[r]["vswitch_ifname"]
                                                    for r in remove}):
                raise ResourceExists("interface exists in the node namespace",
                                     resource=port.vswitch_ifname)
        removed = [current[pid] for pid in remove]
        try:
            for port in removed:
                self._delete_port(meta, port)
                meta["ports"].remove(port)
            before = len(meta["ports"])
            try:
                self._add_ports(meta, add)
            except BaseException:
                for port in meta["ports"][before:]:
                    self._delete_port(meta, port)
                del meta["ports"][before:]
                self._restore_ports(meta, removed)
                raise
            added = meta["ports"][before:]
            self._save(meta)
            try:
                self._run_script(meta, "update", {
                    "COMPOSER_PORTS_ADDED": " ".join(p["ifname"] for p in added),
                    "COMPOSER_PORTS_REMOVED": " ".join(p["ifname"] for p in removed),
                })
            finally:
                if meta["state"] == PAUSED:
                    self._freeze(meta)  # what the script started stays paused too
        finally:
            self._save(meta)
            netlink.release(instance)
        return {p["port_id"]: p["vswitch_ifname"] for p in meta["ports"]}

    def destroy(self, instance: str) -> None:
        """Stop, run `destroy`, kill every process, delete the namespace and the instance
        directory: nothing is left.

        The kernel removes the namespace's veths, and their vSwitch ends, in the background
        (40-60 ms here, RCU grace periods): destroy returns without waiting for it, as
        `ip netns delete` does. The vSwitch ends' names stay reserved until they are gone
        (create and prepare wait for them), ends still there after TEARDOWN_WAIT are
        deleted, and settle() waits for all of it.

        Failing stop/destroy scripts are logged and do not stop the clean-up. Raises
        ResourceNotFound when there is neither metadata nor namespace of that name.
        """
        directory = self._dir(instance)
        with self._lock(instance):
            try:
                meta = self._load(instance)
            except ResourceNotFound:
                if not netlink.netns_exists(instance):
                    raise
                LOG.warning("destroying namespace %s that has no metadata", instance)
                meta = {"instance": instance, "ports": [], "dir": str(directory),
                        "node_netns": self.netns, "state": FAILED}
                self._teardown(meta, wait=False)
                return
            self._unwatch(instance)
            if netlink.netns_usable(instance):
                self._thaw(meta)
                if meta["state"] in (RUNNING, PAUSED):
                    self._run_script_logged(meta, "stop")
                if meta["state"] != CREATING and meta.get("scripts"):
                    self._run_script_logged(meta, "destroy")
            else:
                LOG.warning("%s: its namespace is gone; destroying what is left", instance)
            self._teardown(meta, wait=False)
        with self._locks_guard:
            self._locks.pop(instance, None)
        LOG.info("destroyed native function %s", instance)

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until the kernel has removed what destroyed instances left (their vSwitch
        ends); False if some are still there after timeout seconds."""
        return self._reaper.wait(timeout=timeout)

    def list_instances(self, labels: dict | None = None) -> list[InstanceInfo]:
        """Every instance with metadata under the state directory whose labels include
        `labels`; state "failed" when its namespace or a node-side port is gone, or its
        creation did not finish (destroy it)."""
        found = []
        if not self.root.is_dir():
            return found
        node_links = {}
        for entry in sorted(self.root.iterdir()):
            if not INSTANCE_RE.match(entry.name) or not (entry / METADATA).is_file():
                continue
            try:
                meta = self._load(entry.name)
            except (ResourceNotFound, ValueError, OSError):
                continue
            meta_labels = meta.get("labels") or {}
            if labels and any(meta_labels.get(k) != v for k, v in labels.items()):
                continue
            found.append(InstanceInfo(
                instance=meta["instance"], state=self._state(meta, node_links),
                labels=meta_labels,
                ports=tuple(p["vswitch_ifname"] for p in meta["ports"])))
        return found

    def status(self, instance: str) -> str:
        """created, running, stopped, paused, or failed (incomplete: destroy it)."""
        return self._state(self._load(instance), {})

    def instance_ports(self, instance: str) -> list[dict]:
        """The ports of an instance as stored: port_id, vswitch_ifname, ifname, mac, ipv4."""
        return [dict(p) for p in self._load(instance)["ports"]]

    # --- ports ---

    @staticmethod
    def _validate_port(port: FunctionPort) -> FunctionPort:
        if not isinstance(port, FunctionPort):
            raise TypeError("a port is a FunctionPort, not %r" % (port,))
        if port.technology != "veth":
            raise DriverError("native functions only have veth ports, not %s" % port.technology,
                              resource=port.port_id)
        netlink.check_ifname(port.vswitch_ifname)
        return port

    @staticmethod
    def _check_unique(ports) -> None:
        for attr in ("port_id", "vswitch_ifname"):
            seen = set()
            for port in ports:
                value = getattr(port, attr)
                if value in seen:
                    raise DriverError("two ports with the same %s" % attr, resource=value)
                seen.add(value)

    @staticmethod
    def _check_port_count(template: dict, count: int, instance: str) -> None:
        nominal = int(template.get("port-count", 2))
        low = int(template.get("min-ports", nominal))
        high = int(template.get("max-ports", nominal))
        if not low <= count <= high:
            raise DriverError("the package takes %s ports, not %d"
                              % (low if low == high else "%d to %d" % (low, high), count),
                              resource=instance)

    def _check_free(self, instance: str, directory: Path, ports) -> None:
        self._reaper.wait(names=[port.vswitch_ifname for port in ports])
        if directory.exists():
            raise ResourceExists("native function instance exists (destroy it first)",
                                 resource=instance)
        if netlink.netns_exists(instance):
            raise ResourceExists("a network namespace of that name exists", resource=instance)
        for port in ports:
            if netlink.link_exists(port.vswitch_ifname, self.netns):
                raise ResourceExists("interface exists in the node namespace",
                                     resource=port.vswitch_ifname)

    @staticmethod
    def _free_ifname(meta: dict) -> str:
        used = {p["ifname"] for p in meta["ports"]}
        n = 0
        while "eth%d" % n in used:
            n += 1
        return "eth%d" % n

    def _add_ports(self, meta: dict, ports, *, ifnames=None) -> None:
        """Make the veth pair of each port and append its record to meta["ports"]."""
        instance, node = meta["instance"], meta.get("node_netns")
        self._reaper.wait(names=[port.vswitch_ifname for port in ports])
        records = []
        for i, port in enumerate(ports):
            ifname = ifnames[i] if ifnames else self._free_ifname(meta)
            # No IPv6 on the vSwitch end: its link-local address and routes would make
            # every route change cost ovs-vswitchd a walk over all of them (it re-reads the
            # whole routing table on each), which at a thousand ports is most of a commit.
            # Promiscuous from the start: the userspace datapath turns it on when the port
            # is attached, and that link event would cost ovs-vswitchd one more pass over
            # every port while the commit's flows wait behind it.
            netlink.veth_add(port.vswitch_ifname, ifname, netns=node, peer_netns=instance,
                             peer_mac=port.mac_address, ipv6=False, promisc=True)
            record = {
                "port_id": port.port_id,
                "vswitch_ifname": port.vswitch_ifname,
                "ifname": ifname,
                "mac": port.mac_address,
                "ipv4_address": port.ipv4_address,
                "ipv4_prefix_length": (port.ipv4_prefix_length or 24
                                       if port.ipv4_address else None),
                "technology": port.technology,
            }
            meta["ports"].append(record)
            records.append(record)
            if port.ipv4_address:
                netlink.addr_add(ifname, port.ipv4_address, record["ipv4_prefix_length"],
                                 netns=instance)
            if not port.mac_address:
                record["mac"] = netlink.link_info(ifname, netns=instance)["mac"]
        if records:
            # Only the function's end: what enters the userspace datapath must carry full
            # checksums, and ovs-vswitchd sends complete frames out of its own end. Changing
            # a feature of a netdev in its namespace would cost ovs-vswitchd a reconfiguration
            # of every port for nothing.
            netlink.tx_checksum_off(*(r["ifname"] for r in records), netns=instance)

    def _delete_port(self, meta: dict, port: dict) -> None:
        """Delete a port's veth pair from whichever end is still there (if any)."""
        node = meta.get("node_netns")
        if (node is None or netlink.netns_exists(node)) and \
                netlink.link_delete(port["vswitch_ifname"], node):
            return
        if netlink.netns_exists(meta["instance"]):
            netlink.link_delete(port["ifname"], meta["instance"])

    def _restore_ports(self, meta: dict, removed: list[dict]) -> None:
        ports = [FunctionPort(p["port_id"], p["vswitch_ifname"], p["mac"], p["ipv4_address"],
                              p["ipv4_prefix_length"]) for p in removed]
        try:
            self._add_ports(meta, ports, ifnames=[p["ifname"] for p in removed])
        except Exception:
            LOG.exception("could not restore the removed ports of %s", meta["instance"])

    # --- packages and scripts ---

    @staticmethod
    def _unpack(image: str, dest: Path) -> None:
        path = Path(urlparse(image).path if image.startswith("file://") else image)
        if path.is_dir():
            shutil.copytree(path, dest, symlinks=False)
            return
        if not path.is_file():
            raise ResourceNotFound("native function package not found", resource=str(path))
        dest.mkdir()
        try:
            with tarfile.open(path, "r:*") as tar:
                tar.extractall(dest, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise DriverError("cannot unpack the package", resource=str(path),
                              detail=str(exc)) from None

    @staticmethod
    def _package_template(meta: dict) -> dict:
        path = Path(meta["package_dir"]) / "template.json"
        try:
            with open(path) as f:
                return json.load(f)
        except FileNotFoundError:
            raise DriverError("the package has no template.json",
                              resource=meta["instance"]) from None
        except ValueError as exc:
            raise DriverError("the package's template.json is not valid JSON",
                              resource=meta["instance"], detail=str(exc)) from None

    @staticmethod
    def _scripts(template: dict, package_dir: Path) -> dict[str, str]:
        """{step: path relative to the package} from the template's "scripts", else the
        files named <step> or <step>.sh at the package's top."""
        declared = template.get("scripts")
        scripts = {}
        for step in STEPS:
            if declared is not None:
                rel = declared.get(step)
            else:
                rel = next((c for c in (step, step + ".sh") if (package_dir / c).is_file()), None)
            if not rel:
                continue
            full = (package_dir / rel).resolve()
            if package_dir.resolve() not in full.parents:
                raise DriverError("script %s is outside the package" % rel)
            scripts[step] = rel
        return scripts

    def _run_script(self, meta: dict, step: str, extra_env: dict | None = None) -> None:
        """Run one lifecycle script in the function's namespace; ScriptError unless it exits 0."""
        rel = (meta.get("scripts") or {}).get(step)
        if not rel:
            return
        instance = meta["instance"]
        script = Path(meta["package_dir"]) / rel
        if not script.is_file():
            raise ScriptError("%s script %s is missing from the package" % (step, rel),
                              script=step, status=None, resource=instance)
        argv = ["ip", "netns", "exec", instance, str(script)] + list(meta.get("parameters", ()))
        env = script_environment(meta, step, extra_env)
        log_path = Path(meta["dir"]) / "logs" / ("%s.log" % step)
        timeout = meta.get("timeout", self.script_timeout)
        started = time.monotonic()
        with open(log_path, "ab") as log:
            log.write(b"=== %s %s\n" % (step.encode(), time.strftime("%Y-%m-%dT%H:%M:%S").encode()))
            log.flush()
            offset = log.tell()
            proc = subprocess.Popen(argv, cwd=meta["package_dir"], env=env,
                                    stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        status = _wait(proc, timeout)
        timed_out = status is None
        if timed_out:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            _wait_group_gone(proc.pid, 2.0)
        output = self._tail(log_path, offset)
        elapsed = time.monotonic() - started
        if timed_out:
            LOG.warning("%s %s: killed after %.1f s timeout", instance, step, timeout)
            raise ScriptError("%s script did not finish within %g s and was killed"
                              % (step, timeout), script=step, status=None, output=output,
                              timed_out=True, resource=instance)
        LOG.debug("%s %s: exit %d in %.3f s%s", instance, step, status, elapsed,
                  "\n" + output if output else "")
        if status != 0:
            raise ScriptError("%s script failed with exit status %d" % (step, status),
                              script=step, status=status, output=output, resource=instance)

    def _run_script_logged(self, meta: dict, step: str) -> None:
        try:
            self._run_script(meta, step)
        except DriverError as exc:
            LOG.warning("%s: %s (cleaning up anyway)", meta["instance"], exc)

    @staticmethod
    def _tail(path: Path, offset: int) -> str:
        with open(path, "rb") as f:
            f.seek(max(offset, os.path.getsize(path) - OUTPUT_TAIL))
            return f.read().decode(errors="replace").strip()

    # --- processes: the ones in the instance's namespace ---

    @staticmethod
    def _signal_all(instance: str, sig: int, until_empty: bool = False,
                    timeout: float = 10.0) -> None:
        """Send sig to every process in the namespace, again for processes that appear
        meanwhile; with until_empty, until none is left."""
        done = set()
        deadline = time.monotonic() + timeout
        while True:
            pids = set(netlink.netns_pids(instance))
            todo = pids if until_empty else pids - done
            if not todo:
                return
            for pid in todo:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            done |= todo
            if time.monotonic() > deadline:
                raise DriverError("processes %s in the namespace did not %s"
                                  % (sorted(pids), "exit" if until_empty else "stop"),
                                  resource=instance)
            if until_empty:
                time.sleep(0.002)

    def _freeze(self, meta: dict) -> None:
        self._signal_all(meta["instance"], signal.SIGSTOP)

    def _thaw(self, meta: dict) -> None:
        if meta.get("state") == PAUSED and netlink.netns_exists(meta["instance"]):
            self._signal_all(meta["instance"], signal.SIGCONT)

    def _kill_processes(self, meta: dict) -> None:
        """Kill every process of the instance and wait until they are gone; the recorded
        ones too (a namespace deleted under them leaves them running, unreachable by it)."""
        if netlink.netns_exists(meta["instance"]):
            self._signal_all(meta["instance"], signal.SIGKILL, until_empty=True)
        for identity in meta.get("processes", ()):
            if watch.alive(identity):
                try:
                    os.kill(identity[0], signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _teardown(self, meta: dict, wait: bool = True) -> None:
        """Release everything an instance may hold; each part is skipped when absent.
        wait=False: the vSwitch ends the kernel is removing are left to the reaper."""
        instance = meta["instance"]
        try:
            self._thaw(meta)
        except (OSError, DriverError):
            LOG.debug("thawing %s failed", instance, exc_info=True)
        self._kill_processes(meta)
        # Deleting the namespace destroys its veths, and their node-side peers, in one batch
        # in the background: cheaper than deleting each pair (~20-30 ms apiece, an RCU grace
        # period each). Wait for the peers, then delete any a lingering reference kept.
        netlink.netns_delete(instance)
        if netlink.netns_exists(instance + "-x"):      # see _empty_slot
            netlink.netns_delete(instance + "-x")
        node = meta.get("node_netns")
        ends = [p["vswitch_ifname"] for p in meta.get("ports", ())]
        if ends and (node is None or netlink.netns_exists(node)):
            self._reaper.add(node, ends)
            if wait:
                self._reaper.wait(names=ends)
        shutil.rmtree(meta["dir"], ignore_errors=True)

    # --- watching ---

    def watch(self, watcher, sink) -> None:
        """Report (sink(Event)) what breaks a running instance without this driver doing it:
        its namespace deleted, the vSwitch end of a port deleted ("lost"), a process it was
        running after `start` exited ("exited"). Instances running now are watched from
        here on; one whose process is gone already is reported at once."""
        self._watcher, self._sink = watcher, sink
        watcher.watch_directory(netlink.NETNS_RUN_DIR, self._namespace_gone)
        netlink.watch_links(watcher, self.netns, self._end_gone)
        for info in self.list_instances():
            try:
                with self._lock(info.instance):
                    meta = self._load(info.instance)
                    if meta.get("state") == RUNNING:
                        self._watch(meta)
            except (ResourceNotFound, ValueError, OSError):
                continue

    def unwatch(self) -> None:
        with self._watch_guard:
            watcher, self._watcher, self._sink = self._watcher, None, None
            instances = list(self._watched)
        for instance in instances:
            self._unwatch(instance, watcher)

    @staticmethod
    def _processes(instance: str) -> list:
        """What the instance's `start` left running: the processes of its namespace whose
        parent is not (their own children come and go)."""
        return [list(identity) for identity in watch.daemons(netlink.netns_pids(instance))]

    def _watch(self, meta: dict) -> None:
        """(holding the instance's lock) watch a running instance."""
        with self._watch_guard:
            watcher = self._watcher
            if watcher is None:
                return
            instance = meta["instance"]
            ends = [p["vswitch_ifname"] for p in meta.get("ports", ())]
            pids = [identity[0] for identity in meta.get("processes", ())]
            self._watched[instance] = {"ends": ends, "pids": pids}
            for end in ends:
                self._ends[end] = instance
        for identity in meta.get("processes", ()):
            pid, _, name = identity
            detail = "its process %d (%s) exited" % (pid, name)
            if not watch.alive(identity) or not watcher.watch_process(
                    pid, lambda i=instance, d=detail: self._report(i, watch.EXITED, d)):
                self._report(instance, watch.EXITED, detail)

    def _unwatch(self, instance: str, watcher=None) -> None:
        """Stop watching an instance (before the driver itself stops or changes it)."""
        with self._watch_guard:
            watched = self._watched.pop(instance, None)
            watcher = watcher or self._watcher
            if watched is None:
                return
            for end in watched["ends"]:
                if self._ends.get(end) == instance:
                    del self._ends[end]
        if watcher is not None:
            for pid in watched["pids"]:
                watcher.unwatch_process(pid)

    def _report(self, instance: str, what: str, detail: str) -> None:
        with self._watch_guard:
            sink = self._sink if instance in self._watched else None
        if sink is not None:
            sink(watch.Event(watch.FUNCTION, instance, what, detail))

    def _namespace_gone(self, name: str | None) -> None:
        if name is None:
            for instance in list(self._watched):
                if not netlink.netns_usable(instance):
                    self._report(instance, watch.LOST, "its network namespace was deleted")
            return
        self._report(name, watch.LOST, "its network namespace was deleted")

    def _end_gone(self, ifname: str | None) -> None:
        if ifname is None:
            with self._watch_guard:
                sink = self._sink
            if sink is not None:
                sink(watch.Event(watch.NODE, self.netns or "", watch.RESYNC,
                                 "link events were lost"))
            return
        instance = self._ends.get(ifname)
        if instance is not None:
            self._report(instance, watch.LOST, "its port %s was deleted" % ifname)

    def problems(self, instance: str) -> list:
        """What is wrong with a running instance, as Events: lost when its namespace cannot
        be entered or the vSwitch end of a port is gone, exited when a process it ran
        after `start` is not running."""
        def event(what, detail):
            return watch.Event(watch.FUNCTION, instance, what, detail)
        try:
            meta = self._load(instance)
        except (ResourceNotFound, ValueError, OSError):
            return [event(watch.LOST, "it is gone (no metadata)")]
        found = []
        if meta.get("state") not in (RUNNING, PAUSED):
            found.append(event(watch.LOST, "it is %s, not running" % meta.get("state")))
        if not netlink.netns_usable(instance):
            found.append(event(watch.LOST, "its network namespace is gone"))
        node = meta.get("node_netns")
        missing = [p["vswitch_ifname"] for p in meta.get("ports", ())
                   if not netlink.link_exists(p["vswitch_ifname"], node)]
        if missing:
            found.append(event(watch.LOST, "its ports %s are gone" % ", ".join(missing)))
        dead = ["%d (%s)" % (i[0], i[2]) for i in meta.get("processes", ())
                if not watch.alive(i)]
        if dead:
            found.append(event(watch.EXITED, "its processes %s are not running"
                               % ", ".join(dead)))
        return found

    # --- state ---

    def _state(self, meta: dict, node_links: dict) -> str:
        state = meta.get("state")
        if state in (CREATING, FAILED) or not netlink.netns_exists(meta["instance"]):
            return FAILED
        node = meta.get("node_netns")
        if node not in node_links:
            try:
                node_links[node] = set(netlink.link_names("", node))
            except ResourceNotFound:
                node_links[node] = set()
        if any(p["vswitch_ifname"] not in node_links[node] for p in meta["ports"]):
            return FAILED
        return state


class _Reaper:
    """The vSwitch ends of destroyed instances, until the kernel has removed them.

    One background thread checks them every 2 ms and deletes those still there after
    TEARDOWN_WAIT. A name in here is reserved: wait(names) returns once none of them is.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._pending: dict[int, tuple] = {}     # token -> (node netns, ends, deadline)
        self._next = 0
        self._thread = None

    def add(self, node: str | None, ends: list) -> None:
        with self._cond:
            self._pending[self._next] = (node, list(ends), time.monotonic() + TEARDOWN_WAIT)
            self._next += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="native-reaper",
                                                daemon=True)
                self._thread.start()

    def _busy(self, names) -> bool:
        if names is None:
            return bool(self._pending)
        wanted = set(names)
        return any(wanted.intersection(ends) for _, ends, _ in self._pending.values())

    def wait(self, names=None, timeout: float | None = None) -> bool:
        """Until none of names (None: nothing at all) is pending; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy(names), timeout=timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._thread = None
                    return
                pending = dict(self._pending)
            done = {}
            for token, (node, ends, deadline) in pending.items():
                try:
                    if node is not None and not netlink.netns_exists(node):
                        left = []
                    else:
                        left = [end for end in ends if netlink.link_exists(end, node)]
                        if left and time.monotonic() > deadline:
                            LOG.warning("deleting %s: a reference kept its namespace",
                                        ", ".join(left))
                            for end in left:
                                netlink.link_delete(end, node)
                            left = []
                except Exception:  # noqa: BLE001 - the thread must go on; the names are freed
                    LOG.exception("removing the ends %s failed", ", ".join(ends))
                    left = []
                done[token] = left
            with self._cond:
                for token, left in done.items():
                    if left:
                        node, _, deadline = self._pending[token]
                        self._pending[token] = (node, left, deadline)
                    else:
                        del self._pending[token]
                self._cond.notify_all()
            time.sleep(0.002)
