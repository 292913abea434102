"""A private Docker daemon: its own dockerd (and the containerd it manages) under one
directory, for the docker compute driver.

Why private: the agent never touches a system dockerd, its images or its containers, and
`make run`, `make test` and several test nodes run side by side. dockerd runs with
`--iptables=false --bridge=none` (functions have network_mode none: their ports are veths
the driver moves in), its data root, exec root, socket and pidfile under the directory:

  <dir>/data/          images and containers (docker's --data-root)
  <dir>/docker.sock    the API socket (DockerDriver's host: unix://<dir>/docker.sock)
  <dir>/docker.pid     its pid; <dir>/dockerd.log what it printed
  exec root            <dir>/exec, or /run/composer-dockerd/<digest of dir> when that path
                       would be too long (containerd's socket lives there: 108 bytes)

Like the private OVS, dockerd runs detached (its own session): containers outlive an agent
that crashes, and a restarted agent finds and reuses the running daemon (with the options
it was started with).

The OCI runtime (runtime "auto", "crun" or "runc"): crun when installed ("auto"), else runc.
crun is registered whenever it is installed and runc is always there, so either can run a
container (docker run --runtime); the runtime chosen is dockerd's default. crun starts a
container in about 30 % less time and CPU than runc here (40 containers, 8 at a time:
0.059 -> 0.043 s each). On a host with hybrid cgroups (v1 hierarchies, and cgroup v2 at
/sys/fs/cgroup/unified with a controller enabled, as hugetlb is here) crun refuses to start
anything ("cgroups in hybrid mode not supported"): dockerd then runs in a mount namespace
of its own (mounts from the host propagate into it, none back) without that cgroup v2
mount, so that its runtimes see the v1 hierarchies alone, which is what docker uses on such
a host anyway.
"""

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from ..errors import CommandError, DriverError, PrerequisiteError

LOG = logging.getLogger(__name__)

MAX_EXEC_ROOT = 60         # <exec root>/containerd/containerd.sock.ttrpc fits in 108 bytes
RUNTIMES = ("auto", "crun", "runc")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _alive(pid: int) -> bool:
    try:
        stat = Path("/proc/%d/stat" % pid).read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


class PrivateDockerd:
    """dockerd with every file under directory.

    1. start(): start dockerd (or reuse a running one) and wait until it answers;
    2. host is the API address for DockerDriver (and `docker -H`);
    3. stop(): ask dockerd to exit (it stops its containers and its containerd), wait.
    """

    def __init__(self, directory, start_timeout: float = 60.0, runtime: str = "auto"):
        self.dir = Path(directory).resolve()
        self.start_timeout = start_timeout
        if runtime not in RUNTIMES:
            raise DriverError("unknown OCI runtime %r (%s)" % (runtime, ", ".join(RUNTIMES)))
        self.runtime = runtime

    def default_runtime(self) -> str:
        """The runtime dockerd is started with: "auto" is crun when it is installed."""
        if self.runtime == "auto":
            return "crun" if shutil.which("crun") else "runc"
        return self.runtime

    @property
    def socket(self) -> Path:
        return self.dir / "docker.sock"

    @property
    def host(self) -> str:
        return "unix://%s" % self.socket

    @property
    def pidfile(self) -> Path:
        return self.dir / "docker.pid"

    @property
    def exec_root(self) -> Path:
        own = self.dir / "exec"
        if len(str(own)) <= MAX_EXEC_ROOT:
            return own
        digest = hashlib.sha256(str(self.dir).encode()).hexdigest()[:12]
        return Path("/run/composer-dockerd") / digest

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None and self._answers()

    def _answers(self) -> bool:
        import docker
        try:
            client = docker.DockerClient(base_url=self.host, version="auto", timeout=5)
        except docker.errors.DockerException:
            return False
        try:
            return bool(client.ping())
        except Exception:  # noqa: BLE001 - not answering (yet), whatever the reason
            return False
        finally:
            client.close()

    @staticmethod
    def check() -> None:
        missing = [b for b in ("dockerd", "containerd", "runc") if shutil.which(b) is None]
        if missing:
            raise PrerequisiteError("Docker is not installed (missing %s); install the Debian "
                                    "package docker.io (make deps)" % ", ".join(missing))
        try:
            import docker  # noqa: F401
        except ImportError:
            raise PrerequisiteError("the docker SDK for Python is missing (make venv)") from None

    def start(self) -> None:
        """Start dockerd unless it runs already; return once it answers."""
        self.check()
        if self.pid() is not None:
            self._wait_ready()
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self.exec_root.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        runtime = self.default_runtime()
        crun = shutil.which("crun")
        if runtime == "crun" and crun is None:
            raise PrerequisiteError("the OCI runtime crun is not installed (install the Debian "
                                    "package crun, or set docker.runtime to runc)")
        argv = ["dockerd", "--data-root", str(self.dir / "data"),
                "--exec-root", str(self.exec_root), "--host", self.host,
                "--pidfile", str(self.pidfile),
                # no network of docker's own: functions have network_mode none
                "--bridge=none", "--iptables=false", "--ip6tables=false",
                "--ip-forward=false", "--ip-masq=false", "--userland-proxy=false",
                "--log-level=warn", "--default-runtime", runtime]
        if crun is not None:
            argv += ["--add-runtime", "crun=" + crun]
        if runtime == "crun" and hybrid_cgroup_controllers():
            argv = without_cgroup2_mount(argv)
        with open(self.dir / "dockerd.log", "ab") as log:
            subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True, close_fds=True)
        self._wait_ready()
        LOG.info("private dockerd in %s started", self.dir)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._answers():
                return
            time.sleep(0.1)
        raise CommandError("dockerd in %s did not answer within %.0f s (see %s)"
                           % (self.dir, self.start_timeout, self.dir / "dockerd.log"))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop dockerd (it stops its containers first) and wait for it."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            LOG.warning("dockerd %d did not exit; killing it", pid)
            os.kill(pid, signal.SIGKILL)
            while _alive(pid) and time.monotonic() < deadline + 5:
                time.sleep(0.05)
        if self.exec_root != self.dir / "exec":
            shutil.rmtree(self.exec_root, ignore_errors=True)
        LOG.info("private dockerd in %s stopped", self.dir)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def hybrid_cgroup_controllers(root: Path = CGROUP_ROOT) -> list[str]:
    """The controllers enabled in the cgroup v2 hierarchy of a hybrid host (cgroup v1
    hierarchies under root, v2 at root/unified); none on a pure v1 or pure v2 host."""
    if (root / "cgroup.controllers").exists():          # root is cgroup v2 itself
        return []
    try:
        return (root / "unified" / "cgroup.controllers").read_text().split()
    except OSError:
        return []


def without_cgroup2_mount(argv: list, root: Path = CGROUP_ROOT) -> list:
    """argv run in a mount namespace of its own (slave: the host's later mounts appear in it,
    its own stay in it) from which the hybrid host's cgroup v2 mount is gone."""
    # The script is a constant; argv reaches it as its positional parameters.
    return ["unshare", "--mount", "--propagation", "slave", "--",
            "sh", "-c", 'umount "$0" && exec "$@"', str(root / "unified"), *argv]
