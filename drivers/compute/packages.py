"""Native function packages: the package format, its lifecycle scripts and how they run.

A package is a directory or tar archive with a template.json and lifecycle scripts
(create, start, stop, update, destroy; optional pause, resume; a missing one means
nothing to do), named in the template's "scripts" or found as <step> or <step>.sh at its
top. A script runs as `ip netns exec <instance> <script> <parameter>...` in the package
directory (under `taskset --cpu-list <cores>` when the function is bound to cores), in a
new session, with a clean environment (script_environment; the variables
are listed in native.py's docstring). Exit status 0 is success; any other, or running
past the timeout, raises ScriptError with the step, the status and the tail of the output.

The template's dependencies (binaries, kernel features, files) are checked by
Dependencies.problems().
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
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlparse

from .. import watch
from ..errors import DriverError, ResourceNotFound, ScriptError

LOG = logging.getLogger(__name__)

STEPS = ("create", "start", "stop", "pause", "resume", "update", "destroy")
OUTPUT_TAIL = 2000
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

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
    env.update(parameter_environment(meta.get("parameters", ())))
    env.update(extra or {})
    return env


def parameter_environment(parameters) -> dict:
    """COMPOSER_PARAM_<KEY> of each "key=value" parameter (a key given several times holds
    its values joined by newlines, in order)."""
    values = defaultdict(list)
    for parameter in parameters:
        if "=" in parameter:
            key, value = parameter.split("=", 1)
            if key:
                values[param_env_name(key)].append(value)
    return {name: "\n".join(vals) for name, vals in values.items()}


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



class Dependencies:
    """Whether the node has what a template's "dependencies" name (read once, cached)."""

    def __init__(self):
        self._kernel_config = None

    def problems(self, template: dict) -> list[str]:
        """One line per missing dependency: "missing binary 'nft'", "missing kernel
        feature 'nf_tables'", "missing file '/etc/x'"."""
        problems = []
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


def unpack(image: str, dest: Path) -> None:
    """The package (a directory, or a tar archive, path or file:// URL) into dest."""
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


def package_template(package_dir: Path, instance: str) -> dict:
    """The unpacked package's template.json."""
    path = Path(package_dir) / "template.json"
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise DriverError("the package has no template.json", resource=instance) from None
    except ValueError as exc:
        raise DriverError("the package's template.json is not valid JSON",
                          resource=instance, detail=str(exc)) from None


def scripts(template: dict, package_dir: Path) -> dict[str, str]:
    """{step: path relative to the package} from the template's "scripts", else the
    files named <step> or <step>.sh at the package's top."""
    declared = template.get("scripts")
    found = {}
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
        found[step] = rel
    return found


def check_port_count(template: dict, count: int, instance: str) -> None:
    """DriverError unless the package takes count ports (port-count, or min..max-ports)."""
    nominal = int(template.get("port-count", 2))
    low = int(template.get("min-ports", nominal))
    high = int(template.get("max-ports", nominal))
    if not low <= count <= high:
        raise DriverError("the package takes %s ports, not %d"
                          % (low if low == high else "%d to %d" % (low, high), count),
                          resource=instance)


def run_script(meta: dict, step: str, default_timeout: float,
               extra_env: dict | None = None) -> None:
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
    cores = meta.get("cpu_cores") or ()
    if cores:
        # Bound to the function's cores: the script and all it leaves running inherit it.
        argv = ["taskset", "--cpu-list", ",".join(str(int(c)) for c in cores)] + argv
    env = script_environment(meta, step, extra_env)
    log_path = Path(meta["dir"]) / "logs" / ("%s.log" % step)
    timeout = meta.get("timeout", default_timeout)
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
    output = _tail(log_path, offset)
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


def run_script_logged(meta: dict, step: str, default_timeout: float) -> None:
    """run_script, its failure logged only (clean-up goes on)."""
    try:
        run_script(meta, step, default_timeout)
    except DriverError as exc:
        LOG.warning("%s: %s (cleaning up anyway)", meta["instance"], exc)


def _tail(path: Path, offset: int) -> str:
    with open(path, "rb") as f:
        f.seek(max(offset, os.path.getsize(path) - OUTPUT_TAIL))
        return f.read().decode(errors="replace").strip()

