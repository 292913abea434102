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

Every port is a veth pair attached to the vSwitch as a "system" port (the default of
ComputeDriver.port_attachments). The parts: packages.py (the package format and its
scripts), plumbing.py (the veth pairs and the reaper, shared with the other drivers),
watching.py (what is reported when an instance breaks), slots.py (prepared slots, an
optional capability only this driver has); this module is the driver.
"""

import logging
import os
import shutil
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

from .. import netlink, watch
from ..errors import DriverError, PrerequisiteError, ResourceExists, ResourceNotFound
from ..registry import register
from . import packages
from .base import FunctionPort, FunctionSpec, InstanceInfo
from .instances import (CREATED, CREATING, FAILED, IN_PLACE, PAUSED, RUNNING, STOPPED,
                        InstanceAccess, InstanceStore, record_update)
from .plumbing import Plumbing, check_unique, validate_veth_port
from .slots import PreparedSlots
from .usage import processes_usage
from .watching import InstanceWatch

LOG = logging.getLogger(__name__)

REQUIRED_BINARIES = {"ip": "iproute2", "nft": "nftables", "ethtool": "ethtool",
                     "taskset": "util-linux"}   # taskset: the scheduler's cores


@register("compute", "native")
class NativeDriver(InstanceAccess, PreparedSlots):
    """Native functions: lifecycle scripts in a namespace per instance, veth ports.

    netns is the node's namespace, where the vSwitch end of every port is made (None: the
    agent's own). Operations on different instances may run in parallel threads; operations
    on one instance are serialised.
    """

    execution_environment = "native"

    def __init__(self, state_dir: str, netns: str | None = None, script_timeout: float = 30.0):
        self.state_dir = Path(state_dir)
        self.root = self.state_dir / "native"
        self.store = InstanceStore(self.root)
        self.netns = netns
        self.script_timeout = float(script_timeout)
        self.plumbing = Plumbing(netns)
        self.watching = InstanceWatch(netns)
        self.dependencies = packages.Dependencies()
        self._checked = False
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()

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
        self.plumbing.close()

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
        return problems + self.dependencies.problems(template)

    def kernel_feature_available(self, name: str) -> bool:
        return self.dependencies.kernel_feature_available(name)

    # --- paths and metadata ---

    # --- lifecycle ---

    def create(self, spec: FunctionSpec) -> tuple:
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
            return self._attachments(meta)

    def _remove_after_failure(self, meta: dict, doing: str) -> None:
        LOG.warning("%s %s failed; removing what was made", doing, meta["instance"])
        try:
            self._teardown(meta)
        except Exception:  # the original error is the one to report
            LOG.exception("removing what %s %s made failed", doing, meta["instance"])

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

    def update(self, instance: str, add_ports: tuple = (), remove_ports: tuple = ()) -> tuple:
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

    def _update(self, meta: dict, add_ports: tuple, remove_ports: tuple) -> tuple:
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
        template = packages.package_template(Path(meta["package_dir"]), instance)
        packages.check_port_count(template, len(kept) + len(add), instance)
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
            record_update(meta, IN_PLACE)
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
        return self._attachments(meta)

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
        return self.plumbing.settle(timeout)

    def list_instances(self, labels: dict | None = None) -> list[InstanceInfo]:
        """Every instance with metadata under the state directory whose labels include
        `labels`; state "failed" when its namespace or a node-side port is gone, or its
        creation did not finish (destroy it)."""
        found = []
        node_links = {}
        for name in self.store.names():
            try:
                meta = self._load(name)
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

    def usage(self, instance: str):
        """The processes in the instance's namespace: what its scripts left running."""
        return self.usages([instance], strict=True)[instance]

    def usages(self, instances, strict: bool = False) -> dict:
        """usage() of many instances with one pass over /proc (strict: ResourceNotFound
        for an unknown instance, else None)."""
        running = []
        out = {}
        for instance in instances:
            try:
                state = self._load(instance).get("state")
            except ResourceNotFound:
                if strict:
                    raise
                state = None
            out[instance] = None
            if state in (RUNNING, PAUSED):
                running.append(instance)
        for instance, pids in netlink.netns_pids_of(running).items():
            out[instance] = processes_usage(pids)
        return out

    def instance_ports(self, instance: str) -> list[dict]:
        """The ports of an instance as stored: port_id, vswitch_ifname, ifname, mac, ipv4."""
        return [dict(p) for p in self._load(instance)["ports"]]

    # --- ports ---

    def _attachments(self, meta: dict) -> tuple:
        """The attachment of each port the instance has (port_attachments: system)."""
        return self.port_attachments({}, tuple(FunctionPort(p["port_id"], p["vswitch_ifname"])
                                               for p in meta["ports"]))

    @staticmethod
    def _validate_port(port: FunctionPort) -> FunctionPort:
        return validate_veth_port(port, "native")

    @staticmethod
    def _check_unique(ports) -> None:
        check_unique(ports)

    def _check_free(self, instance: str, directory: Path, ports) -> None:
        self.plumbing.reaper.wait(names=[port.vswitch_ifname for port in ports])
        if directory.exists():
            raise ResourceExists("native function instance exists (destroy it first)",
                                 resource=instance)
        if netlink.netns_exists(instance):
            raise ResourceExists("a network namespace of that name exists", resource=instance)
        self.plumbing.check_free(port.vswitch_ifname for port in ports)

    def _add_ports(self, meta: dict, ports, *, ifnames=None) -> None:
        """Make the veth pair of each port and append its record to meta["ports"]."""
        self.plumbing.add_veths(meta["instance"], ports, meta["ports"], ifnames=ifnames)

    def _delete_port(self, meta: dict, port: dict) -> None:
        self.plumbing.delete_veth(port, meta["instance"])

    def _restore_ports(self, meta: dict, removed: list[dict]) -> None:
        self.plumbing.restore_veths(meta["instance"], removed, meta["ports"])

    # --- scripts ---

    def _install_package(self, meta: dict, port_count: int) -> None:
        """Unpack the package into the instance directory; its scripts, timeout and template
        id go into meta."""
        directory = Path(meta["dir"])
        package_dir = Path(meta["package_dir"])
        packages.unpack(meta["image"], package_dir)
        (directory / "run").mkdir()
        (directory / "logs").mkdir()
        template = packages.package_template(package_dir, meta["instance"])
        packages.check_port_count(template, port_count, meta["instance"])
        meta["scripts"] = packages.scripts(template, package_dir)
        meta["timeout"] = float(template.get("timeout", self.script_timeout))
        meta["package_template"] = template.get("id")

    def _run_script(self, meta: dict, step: str, extra_env: dict | None = None) -> None:
        packages.run_script(meta, step, self.script_timeout, extra_env)

    def _run_script_logged(self, meta: dict, step: str) -> None:
        packages.run_script_logged(meta, step, self.script_timeout)

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
        self.plumbing.forget([p["vswitch_ifname"] for p in meta.get("ports", ())], wait)
        shutil.rmtree(meta["dir"], ignore_errors=True)

    # --- watching ---

    def watch(self, watcher, sink) -> None:
        """Report (sink(Event)) what breaks a running instance without this driver doing it:
        its namespace deleted, the vSwitch end of a port deleted ("lost"), a process it was
        running after `start` exited ("exited"). Instances running now are watched from
        here on; one whose process is gone already is reported at once."""
        self.watching.start(watcher, sink)
        watcher.watch_directory(netlink.NETNS_RUN_DIR, self.watching.namespace_gone)
        for info in self.list_instances():
            try:
                with self._lock(info.instance):
                    meta = self._load(info.instance)
                    if meta.get("state") == RUNNING:
                        self._watch(meta)
            except (ResourceNotFound, ValueError, OSError):
                continue

    def unwatch(self) -> None:
        self.watching.stop()

    @staticmethod
    def _processes(instance: str) -> list:
        """What the instance's `start` left running: the processes of its namespace whose
        parent is not (their own children come and go)."""
        return [list(identity) for identity in watch.daemons(netlink.netns_pids(instance))]

    def _watch(self, meta: dict) -> None:
        """(holding the instance's lock) watch a running instance."""
        self.watching.add(meta["instance"], [p["vswitch_ifname"] for p in meta.get("ports", ())],
                          [tuple(identity) for identity in meta.get("processes", ())])

    def _unwatch(self, instance: str) -> None:
        """Stop watching an instance (before the driver itself stops or changes it)."""
        self.watching.remove(instance)

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
