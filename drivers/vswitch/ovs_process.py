"""A private Open vSwitch instance: its own ovsdb-server and ovs-vswitchd under one directory.

The agent's embedded default is a private instance under its state directory, so that it
never fights a distribution OVS for sockets. ovs-vswitchd can run inside a network namespace
(a simulated node): with the userspace datapath two vswitchd in one namespace collide on
the `ovs-netdev` tap device.

Both daemons run detached with pidfiles: the dataplane outlives an agent that crashes, and
a restarted agent finds and reuses a running instance.
"""

import json
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .. import watch
from ..errors import CommandError, PrerequisiteError

LOG = logging.getLogger(__name__)

SCHEMA_CANDIDATES = (
    "/usr/share/openvswitch/vswitch.ovsschema",
    "/usr/local/share/openvswitch/vswitch.ovsschema",
)

DATABASE = "Open_vSwitch"

REQUIRED_BINARIES = ("ovsdb-server", "ovsdb-tool", "ovsdb-client", "ovs-vswitchd", "ovs-vsctl",
                     "ovs-appctl", "ovs-ofctl")

# Unix socket paths are limited to 108 bytes; the bridge management sockets
# (<run_dir>/<bridge>.mgmt) are the longest the instance creates.
MAX_RUN_DIR_LENGTH = 80


def kernel_datapath_available() -> bool:
    """Whether the openvswitch kernel module is loaded or can be loaded."""
    if Path("/sys/module/openvswitch").exists():
        return True
    modprobe = shutil.which("modprobe")
    if modprobe is None:
        return False
    return subprocess.run([modprobe, "-q", "openvswitch"], capture_output=True).returncode == 0


def default_datapath_type() -> str:
    """'system' where the kernel module exists, else the userspace 'netdev' datapath."""
    return "system" if kernel_datapath_available() else "netdev"


def check_binaries() -> None:
    missing = [name for name in REQUIRED_BINARIES if shutil.which(name) is None]
    if missing:
        raise PrerequisiteError(
            "Open vSwitch is not installed (missing %s); install the Debian packages "
            "openvswitch-switch and openvswitch-common (make deps)" % ", ".join(missing))


def _pid_alive(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    # A daemon that exited but whose new parent (a subreaper) has not reaped it yet
    # still answers kill(0): it is a zombie, and as good as gone.
    try:
        stat = Path("/proc/%d/stat" % pid).read_text()
    except OSError:
        return None
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return None
    return pid


class PrivateOVS:
    """ovsdb-server + ovs-vswitchd with every file under run_dir.

    1. start(): create the database if needed, start both daemons (or reuse running ones)
       and wait until ovs-vswitchd answers;
    2. use db_socket for OVSDB clients and env() for ovs-ofctl/ovs-appctl;
    3. stop(): ask both daemons to exit, and wait for them.
    """

    def __init__(self, run_dir, netns: str | None = None, start_timeout: float = 20.0):
        self.run_dir = Path(run_dir).resolve()
        if len(str(self.run_dir)) > MAX_RUN_DIR_LENGTH:
            raise ValueError("OVS run directory %s is too long for unix sockets (max %d chars)"
                             % (self.run_dir, MAX_RUN_DIR_LENGTH))
        self.netns = netns
        self.start_timeout = start_timeout

    # --- paths ---

    @property
    def db_path(self) -> Path:
        return self.run_dir / "conf.db"

    @property
    def db_socket(self) -> str:
        return "unix:%s" % (self.run_dir / "db.sock")

    @property
    def vswitchd_ctl(self) -> Path:
        return self.run_dir / "ovs-vswitchd.ctl"

    @property
    def ovsdb_ctl(self) -> Path:
        return self.run_dir / "ovsdb-server.ctl"

    def bridge_mgmt(self, bridge: str) -> str:
        """The OpenFlow management socket of a bridge, for ovs-ofctl."""
        return "unix:%s" % (self.run_dir / ("%s.mgmt" % bridge))

    def env(self) -> dict:
        """Environment for OVS tools so that they find this instance's sockets."""
        env = dict(os.environ)
        env.update(OVS_RUNDIR=str(self.run_dir), OVS_DBDIR=str(self.run_dir),
                   OVS_LOGDIR=str(self.run_dir), OVS_SYSCONFDIR=str(self.run_dir))
        return env

    def _in_netns(self, argv: list[str]) -> list[str]:
        if self.netns:
            return ["ip", "netns", "exec", self.netns, *argv]
        return argv

    def _run(self, argv: list[str], *, netns: bool = False, check: bool = True):
        full = self._in_netns(argv) if netns else argv
        result = subprocess.run(full, env=self.env(), capture_output=True, text=True)
        if check and result.returncode != 0:
            raise CommandError("%s failed" % argv[0], resource=str(self.run_dir),
                               detail=result.stderr or result.stdout)
        return result

    # --- lifecycle ---

    def ovsdb_pid(self) -> int | None:
        return _pid_alive(self.run_dir / "ovsdb-server.pid")

    def vswitchd_pid(self) -> int | None:
        return _pid_alive(self.run_dir / "ovs-vswitchd.pid")

    def running(self) -> bool:
        return self.ovsdb_pid() is not None and self.vswitchd_pid() is not None

    # --- watching (drivers/watch.py) ---

    def daemons(self) -> dict:
        """daemon name -> its pid, or None when it is not running."""
        return {"ovsdb-server": self.ovsdb_pid(), "ovs-vswitchd": self.vswitchd_pid()}

    def watch(self, watcher, sink) -> list[str]:
        """sink(Event(daemon, name, exited)) on the watcher's thread when a daemon running
        now exits (watch again after restart()); the names of those not running now."""
        down = []
        for name, pid in self.daemons().items():
            def exited(name=name, pid=pid):
                sink(watch.Event(watch.DAEMON, name, watch.EXITED,
                                 "%s (pid %d) exited" % (name, pid)))
            if pid is None or not watcher.watch_process(pid, exited):
                down.append(name)
        return down

    def unwatch(self, watcher) -> None:
        for pid in self.daemons().values():
            if pid is not None:
                watcher.unwatch_process(pid)

    def restart(self) -> list[str]:
        """Start the daemons that are not running and wait until both answer; the names
        of those started. The database keeps the bridges and ports; a restarted
        ovs-vswitchd has no flow, no tunnel route, no address on its internal ports."""
        down = [name for name, pid in self.daemons().items() if pid is None]
        if down:
            LOG.warning("restarting %s in %s", " and ".join(down), self.run_dir)
            self.start()
        return down

    def start(self) -> None:
        check_binaries()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.db_path.exists():
            schema = next((s for s in SCHEMA_CANDIDATES if Path(s).exists()), None)
            if schema is None:
                raise PrerequisiteError("the OVS database schema vswitch.ovsschema is missing; "
                                        "install openvswitch-common")
            self._run(["ovsdb-tool", "create", str(self.db_path), schema])
        else:
            self._upgrade_db()
        common = ["--no-chdir", "--detach", "--overwrite-pidfile"]
        started = self.ovsdb_pid() is None or self.vswitchd_pid() is None
        if self.ovsdb_pid() is None:
            self._run(["ovsdb-server", str(self.db_path),
                       "--remote=punix:%s" % (self.run_dir / "db.sock"),
                       "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                       "--pidfile=%s" % (self.run_dir / "ovsdb-server.pid"),
                       "--unixctl=%s" % self.ovsdb_ctl,
                       "--log-file=%s" % (self.run_dir / "ovsdb-server.log"),
                       *common])
            self._run(["ovs-vsctl", "--db=%s" % self.db_socket, "--no-wait", "init"])
        if self.vswitchd_pid() is None:
            self._run(["ovs-vswitchd", self.db_socket,
                       "--pidfile=%s" % (self.run_dir / "ovs-vswitchd.pid"),
                       "--unixctl=%s" % self.vswitchd_ctl,
                       "--log-file=%s" % (self.run_dir / "ovs-vswitchd.log"),
                       *common], netns=True)
        self._wait_ready()
        if started:
            self._wait_applied()
        LOG.info("private OVS running in %s%s", self.run_dir,
                 " (namespace %s)" % self.netns if self.netns else "")

    def _upgrade_db(self) -> None:
        """Convert an existing database to the installed schema when they differ."""
        schema = next((s for s in SCHEMA_CANDIDATES if Path(s).exists()), None)
        if schema is None or self.ovsdb_pid() is not None:
            return
        need = self._run(["ovsdb-tool", "needs-conversion", str(self.db_path), schema],
                         check=False)
        if need.stdout.strip() == "yes":
            self._run(["ovsdb-tool", "convert", str(self.db_path), schema])

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            result = self._run(["ovs-vsctl", "--db=%s" % self.db_socket, "--timeout=2",
                                "get", "Open_vSwitch", ".", "cur_cfg"], check=False)
            ctl = self._run(["ovs-appctl", "-t", str(self.vswitchd_ctl), "version"],
                            check=False)
            if result.returncode == 0 and ctl.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise CommandError("Open vSwitch did not come up within %.0f s"
                                   % self.start_timeout, resource=str(self.run_dir),
                                   detail=(result.stderr or "") + (ctl.stderr or ""))
            time.sleep(0.05)

    def _wait_applied(self) -> None:
        """Until ovs-vswitchd has read the database and applied it: next_cfg raised by one,
        until cur_cfg, which ovs-vswitchd writes when done, reaches it (what ovs-vsctl does
        after a change). A new ovs-vswitchd answers unixctl before it has made its bridges;
        a running one reconnects to a new ovsdb-server only after its backoff (up to 8 s),
        and until then its main loop skips the bridges: on the userspace datapath it
        forwards nothing."""
        bump = [DATABASE, {"op": "mutate", "table": "Open_vSwitch", "where": [],
                           "mutations": [["next_cfg", "+=", 1]]},
                {"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg"]}]
        reply = self._run(["ovsdb-client", "transact", self.db_socket, json.dumps(bump)])
        try:
            next_cfg = json.loads(reply.stdout)[1]["rows"][0]["next_cfg"]
        except (ValueError, LookupError, TypeError):
            raise CommandError("raising next_cfg failed", resource=str(self.run_dir),
                               detail=reply.stdout) from None
        self._run(["ovs-vsctl", "--db=%s" % self.db_socket,
                   "--timeout=%d" % max(1, round(self.start_timeout)),
                   "wait-until", "Open_vSwitch", ".", "cur_cfg>=%d" % next_cfg])

    def stop(self, timeout: float = 10.0) -> None:
        """Stop both daemons; vswitchd first, releasing its datapath resources."""
        for pid_of, ctl, args in ((self.vswitchd_pid, self.vswitchd_ctl, ["exit", "--cleanup"]),
                                  (self.ovsdb_pid, self.ovsdb_ctl, ["exit"])):
            pid = pid_of()
            if pid is None:
                continue
            self._run(["ovs-appctl", "-t", str(ctl), *args], check=False)
            deadline = time.monotonic() + timeout
            while pid_of() is not None and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid_of() is not None:
                LOG.warning("OVS daemon %d did not exit; killing it", pid)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                while pid_of() is not None and time.monotonic() < deadline + 5:
                    time.sleep(0.05)
        LOG.info("private OVS in %s stopped", self.run_dir)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
