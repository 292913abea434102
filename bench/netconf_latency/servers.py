"""The two servers under comparison, each started in a private directory and stopped
(with every process it started) at the end.

- composer-agent's NETCONF server: `python -m agent.netconf` (datastores, default engine,
  no vSwitch) on 127.0.0.1, port chosen by the OS, with the benchmark module loaded.
- yuma123 netconfd (Debian package netconfd) with the same module, --target=candidate
  and an existing --startup file, behind a private OpenSSH sshd on a loopback high port:
  `Subsystem netconf /usr/sbin/netconf-subsystem --ncxserver-sockname=<port>@<socket>`.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MODULE = "composer-bench"
NAMESPACE = "urn:composer-nc:yang:composer-bench"


class BenchError(Exception):
    """A server could not be started; the message says what is missing."""


def free_port() -> int:
    """A loopback TCP port the OS considers free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise BenchError("timed out waiting for %s" % what)


def _stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


class Composer:
    """composer-agent's NETCONF server in its own process."""

    name = "composer-agent"

    def __init__(self, workdir: Path):
        self.dir = workdir / "composer"
        self.process = None
        self.port = None
        self.key = None
        self.username = "admin"

    def start(self) -> None:
        self.dir.mkdir(parents=True)
        argv = [sys.executable, "-m", "agent.netconf", "--state-dir", str(self.dir / "state"),
                "--address", "127.0.0.1", "--port", "0", "--yang-dir", str(HERE),
                "--yang-module", MODULE]
        self.process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE,
                                        stderr=open(self.dir / "server.log", "wb"), text=True)
        line = self.process.stdout.readline()      # NETCONF over SSH on <addr> port <n>: ...
        if " port " not in line:
            raise BenchError("composer NETCONF server did not start: %s (see %s)"
                             % (line.strip(), self.dir / "server.log"))
        self.port = int(line.split(" port ")[1].split(":")[0])
        # The comparison with netconfd runs as the recovery user, NACM's bypass: its bulk
        # replace of the whole configuration leaves no /nacm, which would deny admin's
        # next edit (RFC 8341's defaults). bench.netconf_latency --nacm measures NACM.
        self.username = "recovery"
        self.key = str(self.user_key("recovery"))

    def user_key(self, name: str) -> Path:
        """A key pair of a NETCONF user of this server (made on first use)."""
        from agent.netconf.users import Users
        users = Users(self.dir / "state" / "users")
        path = users.directory / name / "id_ed25519"
        return path if path.exists() else users.create_key(name)

    def stop(self) -> None:
        _stop(self.process)


class Netconfd:
    """netconfd behind a private sshd."""

    name = "netconfd"

    def __init__(self, workdir: Path):
        self.dir = workdir / "netconfd"
        self.netconfd = None
        self.sshd = None
        self.port = None
        self.key = None
        self.username = "root"

    @staticmethod
    def check() -> None:
        missing = [p for p in ("/usr/sbin/netconfd", "/usr/sbin/netconf-subsystem",
                               "/usr/sbin/sshd", "/usr/bin/ssh-keygen") if not os.path.exists(p)]
        if missing:
            raise BenchError("missing %s: run scripts/install-system-deps (packages netconfd, "
                             "openssh-server)" % ", ".join(missing))
        if os.geteuid() != 0:
            raise BenchError("the netconfd side needs root (sshd, login as root)")

    def start(self) -> None:
        self.check()
        d = self.dir
        d.mkdir(parents=True)
        socket_path = d / "ncxserver.sock"
        startup = d / "startup.xml"
        startup.write_text('<?xml version="1.0" encoding="UTF-8"?>\n'
                           '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"/>\n')
        # netconfd refuses sessions that netconf-subsystem reports on a port not in --port
        self.port = free_port()
        self.netconfd = subprocess.Popen(
            ["/usr/sbin/netconfd", "--startup=%s" % startup, "--target=candidate",
             "--port=%d" % self.port,
             "--module=%s" % (HERE / ("%s.yang" % MODULE)), "--access-control=off",
             "--ncxserver-sockname=%s" % socket_path, "--log-level=%s" % os.environ.get("NCBENCH_NETCONFD_LOG", "error"),
             "--log=%s" % (d / "netconfd.log")],
            cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(socket_path.exists, 30, "netconfd's socket")
        for name in ("host_key", "client_key"):
            subprocess.run(["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            str(d / name)], check=True)
        shutil.copy(d / "client_key.pub", d / "authorized_keys")
        config = d / "sshd_config"
        config.write_text("\n".join([
            "Port %d" % self.port,
            "ListenAddress 127.0.0.1",
            "HostKey %s" % (d / "host_key"),
            "PidFile %s" % (d / "sshd.pid"),
            "AuthorizedKeysFile %s" % (d / "authorized_keys"),
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "Subsystem netconf /usr/sbin/netconf-subsystem --ncxserver-sockname=%d@%s"
            % (self.port, socket_path),
            ""]))
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)     # sshd's privilege separation
        self.sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(d / "sshd.log", "wb"))

        def listening():
            if self.sshd.poll() is not None:
                raise BenchError("sshd exited: see %s" % (d / "sshd.log"))
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", self.port)) == 0
        _wait_for(listening, 30, "sshd")
        self.key = str(d / "client_key")

    def stop(self) -> None:
        _stop(self.sshd)
        _stop(self.netconfd)
