"""The DPDK compute driver: a service function is a DPDK application (dpdk-testpmd, Debian
package dpdk-dev) forwarding between its ports, busy-polling on the cores it is given.

Why af_packet vdevs on veths. The userspace OVS (netdev datapath, no OVS-DPDK here) has no
vhost-user or memif ports (OVS-DPDK has them, and has segfaulted here when a memif peer left
under load), so a DPDK function reaches the vSwitch through kernel interfaces: a veth pair
per port, its node end a "system" port of the graph-LSI (as native), its function end
opened by a DPDK vdev. Measured here (DPDK 22.11, two hosts' namespaces through a
graph-LSI, testpmd in io mode on one core, iperf3 TCP 3 s, three runs each, load average
8 to 10 on the 2 shared cores, so the spread is wide):
    path                      iperf3 Gbit/s          start (spawn -> forwarding)
    OVS alone (no function)   1.06 / 1.01 / 1.08     -
    net_af_packet             0.20 / 0.32 / 0.37     0.27 / 0.51 / 0.31 s
    net_af_xdp (generic XDP)  0.37 / 0.34 / 0.26     0.25 / 0.20 / 0.22 s
The two are even within the noise; af_packet is the default ("port-driver" option: af_xdp)
because it needs nothing more (af_xdp on a veth is generic XDP, no zero copy; it wants a
bpffs for libxdp's dispatcher and a umem of 4096 mbufs a queue, 22 MB instead of 4.5 MB,
and a testpmd killed -9 leaves its XDP program attached to the function's end; a restart
replaces it and forwards).
A forwarder that dies or is killed closes packet sockets only; the vSwitch sees a veth
whose far end is silent, so no DPDK failure reaches ovs-vswitchd (tested: kill -9 under
traffic, the daemons keep their pids and other graphs forward).

What an instance is on the node (instance = FunctionSpec.instance):
  /run/netns/<instance>                the instance's network namespace, holding eth<N>
  <node netns>: vswitch_ifname         the vSwitch end of each port's veth pair
  <state_dir>/dpdk/<instance>/         instance.json (written before anything is made:
                                       ports, state, the process's identity), output.log
  a process dpdk-testpmd ... --file-prefix=<instance>, in the instance's namespace, in a
                                       session of its own: its command line names the
                                       instance (recovery finds it without metadata)
  /var/run/dpdk/<instance>/            DPDK's runtime directory (removed at stop)
  <hugetlbfs>/<instance>map_*          hugepage files, only with hugepages (unlinked at once:
                                       --huge-unlink; removed at stop should any be left)

Memory: hugepages when enough are free on a mounted hugetlbfs at start (probed each start:
/proc/meminfo, /proc/mounts), else --no-huge (malloc'd memory); the "hugepages" option
forces either ("yes", "no"; "auto" by default). The state records which (meta "memory").

Cores: FunctionSpec.cpu_cores (the scheduler's binding). testpmd needs a main lcore besides
the forwarding ones; the main one sleeps, so with one core both lcores are pinned to it
(--lcores 0@C,1@C), with several the first is the main one (-l C0,C1,...). Without a
binding, the last core of the node.

Lifecycle (see base.py): create makes the metadata, the namespace and the veth pairs; start
spawns testpmd and returns once it forwards (its output says so) or fails, killing it;
stop sends SIGTERM (SIGKILL after stop_timeout); pause/resume SIGSTOP/SIGCONT; update adds
or removes veths and, on a running instance, restarts testpmd (a DPDK application cannot
take new ports while it runs: meta "update" says "restart", and so do its "updates"
(record_update: the function's state shows them), and the log);
destroy kills the process and deletes the namespace.

Watching: the process (a pidfd: EXITED), the vSwitch ends and the namespace's name (LOST,
InstanceWatch).
"""

import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import defaultdict
from pathlib import Path

from .. import netlink, watch
from ..errors import DriverError, PrerequisiteError, ResourceExists, ResourceNotFound, ScriptError
from ..registry import register
from . import packages
from .base import ComputeDriver, FunctionPort, FunctionSpec, InstanceInfo
from .instances import (CREATED, CREATING, FAILED, IN_PLACE, PAUSED, RESTART, RUNNING, STOPPED,
                        InstanceAccess, InstanceStore, record_update)
from .plumbing import Plumbing, check_unique, validate_veth_port
from .usage import processes_usage
from .watching import InstanceWatch

LOG = logging.getLogger(__name__)

BINARY = "dpdk-testpmd"
RUNTIME_DIR = Path("/var/run/dpdk")
PORT_DRIVERS = {"af_packet": "net_af_packet", "af_xdp": "net_af_xdp"}
FORWARD_MODES = ("io", "mac")
AF_XDP_MBUFS = 4096                     # ETH_AF_XDP_NUM_BUFFERS: a queue's umem
STARTED = b"start packet forwarding"
OUTPUT_TAIL = 2000
POLL = 0.01


def hugepages_free() -> int:
    """Bytes of free hugepages of the default size (0 when none are reserved)."""
    info = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                info[key] = value.split()
    except OSError:
        return 0
    try:
        return int(info["HugePages_Free"][0]) * int(info["Hugepagesize"][0]) * 1024
    except (KeyError, ValueError, IndexError):
        return 0


def hugetlbfs_mount() -> str | None:
    """A mounted hugetlbfs of the default page size, None when there is none."""
    try:
        with open("/proc/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 3 and fields[2] == "hugetlbfs" and \
                        "pagesize=1G" not in fields[3]:
                    return fields[1]
    except OSError:
        pass
    return None


def lcore_arguments(cores) -> list:
    """testpmd's lcores for the bound cores: a main lcore and at least one forwarding one."""
    cores = sorted(set(int(c) for c in cores))
    if len(cores) == 1:
        return ["--lcores", "0@%d,1@%d" % (cores[0], cores[0])]
    return ["-l", ",".join(str(c) for c in cores)]


def _cmdline(pid: int) -> list:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _file_prefix(argv: list) -> str | None:
    for arg in argv:
        if arg.startswith("--file-prefix="):
            return arg.split("=", 1)[1]
    return None


@register("compute", "dpdk")
class DPDKDriver(InstanceAccess, ComputeDriver):
    """DPDK forwarders on veth ports (see the module's docstring). prefix: the start of the
    instance names this driver owns (recovery of processes without metadata); memory: MiB
    per instance; port_driver: af_packet or af_xdp; hugepages: auto, yes or no."""

    execution_environment = "dpdk"

    def __init__(self, state_dir: str, netns: str | None = None, prefix: str = "cnc",
                 binary: str = BINARY, memory: int = 128, mbufs: int = 2048,
                 port_driver: str = "af_packet", hugepages: str = "auto",
                 start_timeout: float = 20.0, stop_timeout: float = 3.0):
        if port_driver not in PORT_DRIVERS:
            raise DriverError("unknown DPDK port driver %r (known: %s)"
                              % (port_driver, ", ".join(PORT_DRIVERS)))
        if hugepages not in ("auto", "yes", "no"):
            raise DriverError("hugepages must be auto, yes or no, not %r" % (hugepages,))
        self.state_dir = Path(state_dir)
        self.root = self.state_dir / "dpdk"
        self.store = InstanceStore(self.root, "dpdk")
        self.netns = netns
        self.prefix = prefix
        self.binary = binary
        self.memory = int(memory)
        self.mbufs = int(mbufs)
        self.port_driver = port_driver
        self.hugepages = hugepages
        self.start_timeout = float(start_timeout)
        self.stop_timeout = float(stop_timeout)
        self.plumbing = Plumbing(netns)
        self.watching = InstanceWatch(netns)
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()
        self._checked = False
        self._children: dict[str, subprocess.Popen] = {}

    # --- prerequisites ---

    def check(self) -> None:
        if shutil.which(self.binary) is None:
            raise PrerequisiteError("DPDK functions cannot run here: %s is missing (Debian "
                                    "package dpdk-dev; make deps)" % self.binary)
        pmds = [p for p in Path("/usr/lib").glob("*/dpdk/pmds-*/librte_%s.so*"
                                                  % PORT_DRIVERS[self.port_driver])]
        if not pmds:
            raise PrerequisiteError("DPDK functions cannot run here: the %s driver is "
                                    "missing (Debian package librte-net-%s23)"
                                    % (self.port_driver, self.port_driver.replace("_", "-")))
        if os.geteuid() != 0:
            raise PrerequisiteError("DPDK functions need root (namespaces, veth, packet "
                                    "sockets)")
        if self.hugepages == "yes" and not self._hugepages_usable():
            raise PrerequisiteError("no %d MiB of free hugepages on a mounted hugetlbfs "
                                    "(reserve them: /proc/sys/vm/nr_hugepages)" % self.memory)
        self._checked = True

    def _check_once(self) -> None:
        if not self._checked:
            self.check()

    def _hugepages_usable(self) -> bool:
        return hugetlbfs_mount() is not None and hugepages_free() >= self.memory << 20

    def check_template(self, template: dict) -> list[str]:
        problems = []
        environment = template.get("execution-environment")
        if environment and environment.split(":")[-1] != self.execution_environment:
            problems.append("execution environment '%s' is not dpdk" % environment)
        technology = template.get("port-technology")
        if technology and technology.split(":")[-1] != "veth":
            problems.append("port technology '%s' is not supported (veth only, through "
                            "%s)" % (technology, self.port_driver))
        return problems

    def close(self) -> None:
        self.plumbing.close()

    def settle(self, timeout: float | None = None) -> bool:
        return self.plumbing.settle(timeout)

    # --- metadata ---

    # --- lifecycle ---

    def create(self, spec: FunctionSpec) -> tuple:
        """The metadata, the namespace and a veth pair per port; all or nothing."""
        self._check_once()
        instance = spec.instance
        directory = self.store.dir(instance)
        ports = [validate_veth_port(p, "dpdk") for p in spec.ports]
        check_unique(ports)
        template = spec.template or {}
        mode = _forward_mode(spec.parameters, instance)
        with self._lock(instance):
            self._check_free(instance, directory, ports)
            meta = {
                "version": 1, "instance": instance, "template": template.get("id"),
                "node_netns": self.netns, "labels": dict(spec.labels),
                "parameters": list(spec.parameters), "cpu_cores": list(spec.cpu_cores),
                "forward_mode": mode, "ports": [], "state": CREATING, "dir": str(directory),
                "timeout": float(template.get("timeout", self.start_timeout)),
                "port_counts": {key: template[key] for key in ("port-count", "min-ports",
                                                               "max-ports") if key in template},
                "created": time.time(),
            }
            directory.mkdir(parents=True)
            try:
                self._save(meta)
                packages.check_port_count(template, len(ports), instance)
                self._make_netns(meta)
                self._add_ports(meta, ports)
                meta["state"] = CREATED
                self._save(meta)
            except BaseException:
                LOG.warning("creating %s failed; removing what was made", instance)
                self._teardown_quietly(meta)
                raise
        LOG.info("created DPDK function %s (%d ports)", instance, len(ports))
        return self._attachments(meta)

    def _make_netns(self, meta: dict) -> None:
        netlink.netns_add(meta["instance"])

    def _add_ports(self, meta: dict, ports, *, ifnames=None) -> None:
        self.plumbing.add_veths(meta["instance"], ports, meta["ports"], ifnames=ifnames)

    def _check_free(self, instance: str, directory: Path, ports) -> None:
        self.plumbing.reaper.wait(names=[port.vswitch_ifname for port in ports])
        if directory.exists():
            raise ResourceExists("DPDK function instance exists (destroy it first)",
                                 resource=instance)
        if netlink.netns_exists(instance):
            raise ResourceExists("a network namespace of that name exists", resource=instance)
        if self._processes(instance):
            raise ResourceExists("a DPDK process of that name runs", resource=instance)
        self.plumbing.check_free(port.vswitch_ifname for port in ports)

    # --- the process ---

    def command(self, meta: dict) -> list:
        """testpmd's argv for an instance (memory: hugepages or not, decided now)."""
        instance = meta["instance"]
        cores = meta.get("cpu_cores") or [max(0, (os.cpu_count() or 1) - 1)]
        use_huge = self.hugepages == "yes" or (self.hugepages == "auto"
                                               and self._hugepages_usable())
        meta["memory"] = "hugepages" if use_huge else "no-huge"
        memory = (["--huge-dir", hugetlbfs_mount() or "/dev/hugepages", "--huge-unlink"]
                  if use_huge else ["--no-huge"])
        vdevs = []
        for n, port in enumerate(meta["ports"]):
            vdevs += ["--vdev", "%s%d,iface=%s" % (PORT_DRIVERS[self.port_driver], n,
                                                   port["ifname"])]
        forwarding = len(set(cores)) - 1 if len(set(cores)) > 1 else 1
        mbufs = self.mbufs
        if self.port_driver == "af_xdp":
            # each af_xdp queue fills its umem with 4096 mbufs of the pool
            mbufs = max(mbufs, AF_XDP_MBUFS * len(meta["ports"]) + self.mbufs)
        return [self.binary, *lcore_arguments(cores), "-m", str(self.memory), *memory,
                "--no-pci", "--no-shconf", "--no-telemetry", "--file-prefix=%s" % instance,
                *vdevs, "--", "--forward-mode=%s" % meta.get("forward_mode", "io"),
                # no wait for the links: a port not yet on the vSwitch is down
                "--auto-start", "--disable-link-check", "--stats-period=86400",
                "--no-mlockall",
                "--total-num-mbufs=%d" % mbufs, "--nb-cores=%d" % forwarding]

    def start(self, instance: str) -> None:
        """created or stopped -> running: testpmd forwards when start returns; a failed
        start leaves no process."""
        with self._lock(instance):
            meta = self._load(instance)
            if meta["state"] == RUNNING:
                return
            if meta["state"] not in (CREATED, STOPPED):
                raise DriverError("cannot start an instance that is %s" % meta["state"],
                                  resource=instance)
            if not netlink.netns_exists(instance):
                raise DriverError("its network namespace is gone", resource=instance)
            started = time.monotonic()
            self._run(meta)
        LOG.info("started DPDK function %s (%s, %s) in %.3f s", instance, self.port_driver,
                 meta["memory"], time.monotonic() - started)

    def _spawn(self, meta: dict) -> subprocess.Popen:
        instance = meta["instance"]
        argv = self.command(meta)
        log = Path(meta["dir"]) / "output.log"
        with open(log, "wb") as out:
            # ip netns exec and stdbuf exec testpmd: the pid is testpmd's. Its output line
            # by line: start waits for what it says. A session of its own: a signal meant
            # for the agent does not reach it.
            proc = subprocess.Popen(["ip", "netns", "exec", instance, "stdbuf", "-oL", *argv],
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    close_fds=True)
        self._children[instance] = proc
        meta["pid"] = [proc.pid, None, ""]
        self._save(meta)        # before anything else: a crash leaves a pid to kill
        return proc

    def _wait_forwarding(self, meta: dict, proc: subprocess.Popen) -> None:
        """Until testpmd's output says it forwards; ScriptError when it exits first or the
        timeout passes."""
        log = Path(meta["dir"]) / "output.log"
        deadline = time.monotonic() + meta.get("timeout", self.start_timeout)
        while True:
            output = log.read_bytes()
            if proc.poll() is not None:
                raise ScriptError("%s exited while starting (status %s)"
                                  % (self.binary, proc.returncode), script="start",
                                  status=proc.returncode, output=_tail(output),
                                  resource=meta["instance"])
            if STARTED in output:
                identity = watch.process_identity(proc.pid)
                if identity is not None and identity[2] not in ("ip", "stdbuf"):
                    meta["pid"] = list(identity)
                    return
            if time.monotonic() > deadline:
                raise ScriptError("%s did not forward within %g s" % (self.binary, meta.get(
                    "timeout", self.start_timeout)), script="start", status=None,
                    output=_tail(output), timed_out=True, resource=meta["instance"])
            time.sleep(POLL)

    def usage(self, instance: str):
        """The DPDK process (its poll-mode threads keep its cores at 100 %)."""
        meta = self._load(instance)
        if meta.get("state") not in (RUNNING, PAUSED):
            return None
        pid = meta.get("pid")
        if pid and pid[1] is not None:
            if watch.process_identity(pid[0]) != tuple(pid):
                return None             # it exited: the watch reports it
            return processes_usage([pid[0]])
        return processes_usage(self._processes(instance))

    def _processes(self, instance: str) -> list:
        """The pids of DPDK processes of the instance (by the file prefix in their command
        line)."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                argv = _cmdline(int(entry))
                if argv and os.path.basename(argv[0]) == os.path.basename(self.binary) and \
                        _file_prefix(argv) == instance:
                    found.append(int(entry))
        return found

    def _kill(self, meta: dict) -> None:
        """The instance's process gone (SIGTERM, then SIGKILL), its runtime files too."""
        instance = meta["instance"]
        pids = set(self._processes(instance))
        proc = self._children.pop(instance, None)
        if proc is not None and proc.poll() is None:
            pids.add(proc.pid)
        for pid in pids:
            _signal(pid, signal.SIGCONT)
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(POLL)
        for pid in pids:
            if _alive(pid):
                _signal(pid, signal.SIGKILL)
        while any(_alive(pid) for pid in pids):
            time.sleep(POLL)
        if proc is not None:
            proc.wait()
        shutil.rmtree(RUNTIME_DIR / instance, ignore_errors=True)
        mount = hugetlbfs_mount()
        if mount:
            for leftover in Path(mount).glob("%smap_*" % instance):
                leftover.unlink(missing_ok=True)

    def stop(self, instance: str) -> None:
        with self._lock(instance):
            meta = self._load(instance)
            if meta["state"] in (CREATED, STOPPED):
                return
            if meta["state"] == CREATING:
                raise DriverError("cannot stop an instance whose creation did not finish",
                                  resource=instance)
            self.watching.remove(instance)
            self._kill(meta)
            meta["state"] = STOPPED
            self._save(meta)

    def pause(self, instance: str) -> None:
        self._signal_state(instance, RUNNING, PAUSED, signal.SIGSTOP)

    def resume(self, instance: str) -> None:
        self._signal_state(instance, PAUSED, RUNNING, signal.SIGCONT)

    def _signal_state(self, instance: str, before: str, after: str, sig) -> None:
        with self._lock(instance):
            meta = self._load(instance)
            if meta["state"] == after:
                return
            if meta["state"] != before:
                raise DriverError("cannot %s an instance that is %s"
                                  % ("pause" if after == PAUSED else "resume", meta["state"]),
                                  resource=instance)
            for pid in self._processes(instance):
                _signal(pid, sig)
            meta["state"] = after
            self._save(meta)

    def update(self, instance: str, add_ports: tuple = (), remove_ports: tuple = ()) -> tuple:
        """Ports added or removed (all or nothing); a running testpmd is restarted with them
        (it cannot take ports while it runs; meta "update": "restart")."""
        with self._lock(instance):
            meta = self._load(instance)
            if meta["state"] in (CREATING, FAILED):
                raise DriverError("cannot update an incomplete instance", resource=instance)
            add = [validate_veth_port(p, "dpdk") for p in add_ports]
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
            was = meta["state"]
            if was in (RUNNING, PAUSED):
                LOG.info("updating the ports of DPDK function %s: restarting it", instance)
                self.watching.remove(instance)
                self._kill(meta)
                meta["update"] = "restart"
            removed = [current[pid] for pid in remove_ports]
            for port in removed:
                self.plumbing.delete_veth(port, instance)
            meta["ports"] = kept
            before = len(kept)
            try:
                self._add_ports(meta, add)
            except BaseException:
                for port in meta["ports"][before:]:
                    self.plumbing.delete_veth(port, instance)
                del meta["ports"][before:]
                self.plumbing.restore_veths(instance, removed, meta["ports"])
                self._restart_after_update(meta, was)
                raise
            self._restart_after_update(meta, was)
            # said in the function's state (ComputeDriver.port_updates)
            record_update(meta, RESTART if was in (RUNNING, PAUSED) else IN_PLACE)
            self._save(meta)
            return self._attachments(meta)

    def _restart_after_update(self, meta: dict, was: str) -> None:
        """(holding the lock) testpmd again with the instance's ports, when it ran."""
        if was not in (RUNNING, PAUSED):
            self._save(meta)
            return
        meta["state"] = STOPPED
        self._save(meta)
        self._run(meta)

    def _run(self, meta: dict) -> None:
        """(holding the lock) testpmd spawned, forwarding, recorded as running and
        watched; or, whatever fails, no process and the state as it was."""
        was = meta["state"]
        # a forwarder a crash left behind (spawned, not recorded) would share the ports
        self._kill(meta)
        try:
            proc = self._spawn(meta)
            self._wait_forwarding(meta, proc)
            meta["state"] = RUNNING
            self._save(meta)
        except BaseException:
            meta["state"] = was
            self._kill(meta)
            raise
        self.watching.add(meta["instance"], [p["vswitch_ifname"] for p in meta["ports"]],
                          [tuple(meta["pid"])])

    def destroy(self, instance: str) -> None:
        directory = self.store.dir(instance)
        with self._lock(instance):
            try:
                meta = self._load(instance)
            except ResourceNotFound:
                if not netlink.netns_exists(instance) and not self._processes(instance):
                    raise
                LOG.warning("destroying DPDK function %s that has no metadata", instance)
                meta = {"instance": instance, "ports": [], "dir": str(directory),
                        "state": FAILED}
            self.watching.remove(instance)
            self._teardown(meta, wait=False)
        with self._locks_guard:
            self._locks.pop(instance, None)
        LOG.info("destroyed DPDK function %s", instance)

    def _teardown(self, meta: dict, wait: bool = True) -> None:
        """The process, the namespace (the kernel removes the veths; the reaper waits for
        the vSwitch ends), the directory; each part skipped when absent."""
        instance = meta["instance"]
        self._kill(meta)
        if netlink.netns_exists(instance):
            if not meta.get("ports"):
                # no metadata (a crash): the node ends are unknown; deleting the function
                # ends deletes the pairs at once
                for name in netlink.link_names("", instance):
                    if name != "lo":
                        netlink.link_delete(name, instance)
            netlink.netns_delete(instance)
        self.plumbing.forget([p["vswitch_ifname"] for p in meta.get("ports", ())], wait)
        shutil.rmtree(meta["dir"], ignore_errors=True)

    def _teardown_quietly(self, meta: dict) -> None:
        try:
            self._teardown(meta)
        except Exception:  # noqa: BLE001 - the original error is the one to report
            LOG.exception("removing what was made of %s failed", meta["instance"])

    # --- recovery and state ---

    def list_instances(self, labels: dict | None = None) -> list[InstanceInfo]:
        """Instances with metadata, and DPDK processes of this driver's prefix that have
        none (a crash: state failed)."""
        names = set(self.store.names())
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                argv = _cmdline(int(entry))
                if argv and os.path.basename(argv[0]) == os.path.basename(self.binary):
                    prefix = _file_prefix(argv)
                    if prefix and prefix.startswith(self.prefix):
                        names.add(prefix)
        out = []
        for name in sorted(names):
            try:
                meta = self._load(name)
            except (ResourceNotFound, ValueError, OSError):
                meta = None
            found_labels = (meta or {}).get("labels") or {}
            if labels and any(found_labels.get(k) != v for k, v in labels.items()):
                continue
            out.append(InstanceInfo(instance=name, state=self._state(meta),
                                    labels=found_labels,
                                    ports=tuple(p["vswitch_ifname"]
                                                for p in (meta or {}).get("ports", ()))))
        return out

    def status(self, instance: str) -> str:
        try:
            meta = self._load(instance)
        except ResourceNotFound:
            if self._processes(instance):
                return FAILED
            raise
        return self._state(meta)

    def _state(self, meta: dict | None) -> str:
        if meta is None or meta.get("state") in (CREATING, FAILED):
            return FAILED
        if not netlink.netns_usable(meta["instance"]):
            return FAILED
        if any(not netlink.link_exists(p["vswitch_ifname"], meta.get("node_netns"))
               for p in meta["ports"]):
            return FAILED
        return meta["state"]

    def _attachments(self, meta: dict) -> tuple:
        return self.port_attachments({}, tuple(FunctionPort(p["port_id"], p["vswitch_ifname"])
                                               for p in meta["ports"]))

    # --- watching ---

    def watch(self, watcher, sink) -> None:
        """The testpmd process of each running instance (EXITED) and the vSwitch ends of
        its ports (LOST); those running now are watched from here on."""
        self.watching.start(watcher, sink)
        watcher.watch_directory(netlink.NETNS_RUN_DIR, self.watching.namespace_gone)
        for name in self.store.names():
            try:
                with self._lock(name):
                    meta = self._load(name)
                    if meta.get("state") == RUNNING:
                        self.watching.add(name, [p["vswitch_ifname"] for p in meta["ports"]],
                                          [tuple(meta["pid"])])
            except (ResourceNotFound, ValueError, OSError):
                continue

    def unwatch(self) -> None:
        self.watching.stop()

    def problems(self, instance: str) -> list:
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
        missing = [p["vswitch_ifname"] for p in meta.get("ports", ())
                   if not netlink.link_exists(p["vswitch_ifname"], meta.get("node_netns"))]
        if missing:
            found.append(event(watch.LOST, "its ports %s are gone" % ", ".join(missing)))
        pid = meta.get("pid")
        if meta.get("state") in (RUNNING, PAUSED) and (not pid or pid[1] is None
                                                        or not watch.alive(tuple(pid))):
            found.append(event(watch.EXITED, "its %s process exited" % self.binary))
        return found


def _forward_mode(parameters, instance: str) -> str:
    """The forward-mode=<io|mac> parameter (io by default)."""
    mode = "io"
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name == "forward-mode":
            if value not in FORWARD_MODES:
                raise DriverError("forward-mode must be one of %s, not %r"
                                  % (", ".join(FORWARD_MODES), value), resource=instance)
            mode = value
    return mode


def _tail(output: bytes) -> str:
    return output.decode(errors="replace")[-OUTPUT_TAIL:]


def _signal(pid: int, sig) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    return watch.process_identity(pid) is not None
