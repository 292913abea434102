"""The OVS command-line tools the driver needs besides OVSDB: ovs-ofctl and ovs-appctl.

One process per call, never per flow or per port: a batch of flow changes is one
`ovs-ofctl --bundle add-flows` reading its lines from stdin, so it commits atomically
(OpenFlow 1.4 bundle, flags atomic+ordered) or not at all. Both tools reach vswitchd
through unix sockets, which are not tied to a network namespace.
"""

import logging
import os
import subprocess

from ..errors import CommandError

LOG = logging.getLogger(__name__)

OPENFLOW_VERSION = "OpenFlow14"        # bundles need 1.4
DEFAULT_TIMEOUT = 60


def system_run_dir() -> str:
    """Where a distribution OVS keeps its sockets (OVS_RUNDIR overrides, as for the tools)."""
    return os.environ.get("OVS_RUNDIR", "/var/run/openvswitch")


def _run(argv: list[str], *, what: str, resource: str, stdin: str | None = None,
         timeout: float = DEFAULT_TIMEOUT) -> str:
    try:
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                                timeout=timeout)
    except FileNotFoundError:
        raise CommandError("%s is not installed (openvswitch-switch)" % argv[0],
                           resource=resource) from None
    except subprocess.TimeoutExpired:
        raise CommandError("%s did not finish within %d s" % (what, timeout),
                           resource=resource) from None
    if result.returncode != 0:
        raise CommandError("%s failed" % what, resource=resource,
                           detail=result.stderr or result.stdout)
    return result.stdout


class OpenFlowClient:
    """ovs-ofctl against one bridge's management socket (unix:<run_dir>/<bridge>.mgmt)."""

    def __init__(self, run_dir: str, bridge: str, timeout: float = DEFAULT_TIMEOUT):
        self.bridge = bridge
        self.target = "unix:%s" % os.path.join(run_dir, "%s.mgmt" % bridge)
        self.timeout = timeout

    def _ofctl(self, options: list[str], command: str, *args: str,
               stdin: str | None = None) -> str:
        argv = ["ovs-ofctl", "-O", OPENFLOW_VERSION, "--timeout=%d" % self.timeout, *options,
                command, self.target, *args]
        return _run(argv, what="ovs-ofctl %s" % command, resource=self.bridge, stdin=stdin,
                    timeout=self.timeout + 5)

    def bundle(self, lines: list[str]) -> None:
        """Apply flow-mod lines ('add ...', 'delete ...') in one atomic bundle."""
        if not lines:
            return
        LOG.debug("bundle on %s: %d flow-mods", self.bridge, len(lines))
        # The lines carry port numbers: --no-names spares ovs-ofctl fetching every port's
        # name first, which costs more than the bundle itself on a bridge of 1,000 ports.
        self._ofctl(["--bundle", "--no-names"], "add-flows", "-",
                    stdin="\n".join(lines) + "\n")

    def dump_flows(self) -> str:
        return self._ofctl(["--no-names"], "dump-flows")

    def dump_ports(self) -> str:
        return self._ofctl(["--no-names"], "dump-ports")


class AppCtl:
    """ovs-appctl towards one ovs-vswitchd (its unixctl socket, or the system daemon)."""

    def __init__(self, run_dir: str | None, timeout: float = DEFAULT_TIMEOUT):
        self.target = os.path.join(run_dir, "ovs-vswitchd.ctl") if run_dir else "ovs-vswitchd"
        self.timeout = timeout

    def __call__(self, *args: str) -> str:
        return _run(["ovs-appctl", "--timeout=%d" % self.timeout, "-t", self.target, *args],
                    what="ovs-appctl %s" % args[0], resource=self.target,
                    timeout=self.timeout + 5)
