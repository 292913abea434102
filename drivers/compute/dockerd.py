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
that crashes, and a restarted agent finds and reuses the running daemon.
"""

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from ..errors import CommandError, PrerequisiteError

LOG = logging.getLogger(__name__)

MAX_EXEC_ROOT = 60         # <exec root>/containerd/containerd.sock.ttrpc fits in 108 bytes


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

    def __init__(self, directory, start_timeout: float = 60.0):
        self.dir = Path(directory).resolve()
        self.start_timeout = start_timeout

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
        argv = ["dockerd", "--data-root", str(self.dir / "data"),
                "--exec-root", str(self.exec_root), "--host", self.host,
                "--pidfile", str(self.pidfile),
                # no network of docker's own: functions have network_mode none
                "--bridge=none", "--iptables=false", "--ip6tables=false",
                "--ip-forward=false", "--ip-masq=false", "--userland-proxy=false",
                "--log-level=warn"]
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
