"""A simulated node for end-to-end tests: a network namespace whose interfaces lead to host
namespaces, and a real composer-agent (subprocess) driving its own private OVS inside it.

    with Node("n1", session_tmp, hosts={"eth1": "10.0.0.1/24", "eth2": "10.0.0.2/24"}) as node:
        with node.netconf() as m:       # an ncclient manager
            ...
        node.ping("eth1", "10.0.0.2")   # from the host behind eth1

Every name starts with the session prefix. The agent listens on 127.0.0.1 in the test's own
namespace (ovs.netns points it at the node), so ncclient reaches it directly.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests import resources
from tests.resources import PREFIX

AGENT = [sys.executable, "-m", "agent.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(*argv, check=True, timeout=60, **kw):
    return subprocess.run(list(argv), capture_output=True, text=True, check=check,
                          timeout=timeout, **kw)


def netns_exec(netns, *argv, check=True, timeout=60):
    return run("ip", "netns", "exec", netns, *argv, check=check, timeout=timeout)


class Host:
    """A namespace behind one node interface, with one veth and an address."""

    def __init__(self, name: str, address: str | None, mac: str | None = None):
        self.name = name
        self.address = address
        self.mac = mac

    @property
    def ip(self) -> str | None:
        return self.address.split("/")[0] if self.address else None

    def run(self, *argv, check=True, timeout=60):
        return netns_exec(self.name, *argv, check=check, timeout=timeout)

    def ping(self, address, count=3, check=False) -> bool:
        result = self.run("ping", "-c", str(count), "-i", "0.2", "-W", "1", address, check=check)
        return result.returncode == 0

    def iperf_server(self, port=5201):
        return subprocess.Popen(["ip", "netns", "exec", self.name, "iperf3", "-s", "-1", "-p",
                                 str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def iperf_client(self, server_ip, port=5201, seconds=2, check=False):
        return self.run("iperf3", "-c", server_ip, "-p", str(port), "-t", str(seconds), "-J",
                        "--connect-timeout", "3000", check=check, timeout=seconds + 30)


class Node:
    """A namespace with interfaces to hosts, and an agent managing it."""

    def __init__(self, tag: str, tmp: Path, hosts: dict, prefix_suffix: str = "",
                 extra_config: str = "", environments=("native",), underlay: dict | None = None,
                 spare_slots: int = 0, spare_slots_min_ports: int = 0, yang_dirs=(),
                 yang_modules=(), parallel_starts: int | None = None):
        self.tag = tag
        self.netns = "%s%s" % (PREFIX, tag)
        self.dir = Path(tmp) / tag
        self.hosts = {}
        self.host_spec = hosts           # node interface -> host address (or None)
        # node interface -> the node's own address on it (a tunnel endpoint); the interface
        # itself is made by the test (link_nodes) between create() and start_agent()
        self.underlay = dict(underlay or {})
        self.port = free_port()
        self.extra_config = extra_config
        self.spare_slots = spare_slots
        self.spare_slots_min_ports = spare_slots_min_ports
        self.parallel_starts = parallel_starts
        self.environments = environments
        self.yang_dirs, self.yang_modules = list(yang_dirs), list(yang_modules)
        self.agent = None
        self.log = self.dir / "agent.log"
        # the agent's resource prefix: the test prefix plus one letter per node, 1-4 chars
        self.resource_prefix = (PREFIX + prefix_suffix)[:4]

    # --- lifecycle ---

    def __enter__(self):
        try:
            self.create()
            self.start_agent()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc):
        self.destroy()
        return False

    def create(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        run("ip", "netns", "add", self.netns)
        netns_exec(self.netns, "ip", "link", "set", "lo", "up")
        for index, (ifname, address) in enumerate(sorted(self.host_spec.items()), 1):
            host = Host("%s%sh%d" % (PREFIX, self.tag, index), address,
                        "02:00:00:%02x:%02x:%02x" % (ord(self.tag[-1]) % 256, index, 1))
            run("ip", "netns", "add", host.name)
            netns_exec(host.name, "ip", "link", "set", "lo", "up")
            temp_a, temp_b = "%sv%s%da" % (PREFIX, self.tag, index), "%sv%s%db" % (PREFIX, self.tag, index)
            run("ip", "link", "add", temp_a, "type", "veth", "peer", "name", temp_b)
            run("ip", "link", "set", temp_a, "netns", self.netns)
            run("ip", "link", "set", temp_b, "netns", host.name)
            netns_exec(self.netns, "ip", "link", "set", temp_a, "name", ifname)
            netns_exec(self.netns, "ip", "link", "set", ifname, "up")
            netns_exec(host.name, "ip", "link", "set", temp_b, "name", "eth0")
            netns_exec(host.name, "ip", "link", "set", "eth0", "address", host.mac)
            netns_exec(host.name, "ip", "link", "set", "eth0", "up")
            # The userspace datapath does not fill in checksums: the far ends do not offload.
            netns_exec(host.name, "ethtool", "-K", "eth0", "tx", "off", check=False)
            netns_exec(self.netns, "ethtool", "-K", ifname, "tx", "off", check=False)
            if address:
                netns_exec(host.name, "ip", "addr", "add", address, "dev", "eth0")
            self.hosts[ifname] = host

    def config_text(self) -> str:
        interfaces = ", ".join('"%s"' % name for name in sorted(set(self.host_spec) |
                                                              set(self.underlay)))
        addresses = ", ".join('%s = "%s"' % item for item in sorted(self.underlay.items()))
        envs = ", ".join('"%s"' % e for e in self.environments)
        yang_dirs = ", ".join('"%s"' % d for d in self.yang_dirs)
        yang_modules = ", ".join('"%s"' % m for m in self.yang_modules)
        parallel = ("" if self.parallel_starts is None
                    else "parallel-starts = %d" % self.parallel_starts)
        return f"""
[node]
id = "{self.netns}"
[netconf]
address = "127.0.0.1"
port = {self.port}
extra-yang-dirs = [{yang_dirs}]
extra-yang-modules = [{yang_modules}]
[state]
dir = "{self.dir / 'state'}"
[ovs]
mode = "private"
run-dir = "{self.dir / 'ovs'}"
netns = "{self.netns}"
datapath-type = "netdev"
[lsi0]
interfaces = [{interfaces}]
addresses = {{ {addresses} }}
[compute]
execution-environments = [{envs}]
spare-slots = {self.spare_slots}
spare-slots-min-ports = {self.spare_slots_min_ports}
{parallel}
[resources]
prefix = "{self.resource_prefix}"
[logging]
level = "debug"
{self.extra_config}
"""

    def start_agent(self, timeout: float = 60.0) -> None:
        config = self.dir / "agent.toml"
        config.write_text(self.config_text())
        offset = self.log.stat().st_size if self.log.exists() else 0
        self._log_stream = open(self.log, "ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.agent = subprocess.Popen(AGENT + ["--config", str(config)], stdout=self._log_stream,
                                      stderr=subprocess.STDOUT, env=env,
                                      cwd=Path(__file__).resolve().parents[2])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.agent.poll() is not None:
                raise RuntimeError("agent exited with %s:\n%s" % (self.agent.returncode,
                                                                 self.log_tail()))
            if b"Ctrl-C stops the agent" in self.log.read_bytes()[offset:]:
                return
            time.sleep(0.1)
        raise RuntimeError("agent did not come up in %.0f s:\n%s" % (timeout, self.log_tail()))

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop_agent(self, sig=signal.SIGINT, timeout: float = 60.0) -> int | None:
        if self.agent is None:
            return None
        if self.agent.poll() is None:
            self.agent.send_signal(sig)
            try:
                self.agent.wait(timeout)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait()
        code = self.agent.returncode
        self.agent = None
        self._log_stream.close()
        return code

    def kill_agent(self) -> None:
        """kill -9: nothing of the agent runs after this."""
        self.stop_agent(signal.SIGKILL)

    def destroy(self) -> None:
        self.stop_agent()
        # A killed agent leaves its private OVS: stop it through its pidfiles.
        from drivers.vswitch.ovs_process import PrivateOVS
        ovs_dir = self.dir / "ovs"
        if ovs_dir.exists():
            PrivateOVS(ovs_dir, netns=self.netns).stop()
        # ... and its private dockerd (docker.mode private), with the containers in it
        docker_dir = self.dir / "state" / "dockerd"
        if docker_dir.exists():
            from drivers.compute.dockerd import PrivateDockerd
            PrivateDockerd(docker_dir).stop()
        for host in self.hosts.values():
            run("ip", "netns", "del", host.name, check=False)
        own = {self.netns} | {host.name for host in self.hosts.values()}
        for name in resources.netns_names():
            if name.startswith(self.resource_prefix) and name not in own:
                # a function namespace left by a killed agent
                run("ip", "netns", "del", name, check=False)
        run("ip", "netns", "del", self.netns, check=False)
        # and the VMs of a killed agent, with the relays of their ports in the root namespace
        from tests import guest
        for domain in guest.domain_names(self.resource_prefix):
            run("virsh", "-c", guest.URI, "destroy", domain, check=False)
            run("virsh", "-c", guest.URI, "undefine", domain, check=False)
        for link in resources.link_names():
            if link.startswith(self.resource_prefix):
                run("ip", "link", "del", link, check=False)

    # --- clients ---

    @property
    def key_file(self) -> Path:
        return self.dir / "state" / "users" / "admin" / "id_ed25519"

    def netconf(self, timeout: int = 120):
        from ncclient import manager
        return manager.connect(host="127.0.0.1", port=self.port, username="admin",
                               key_filename=str(self.key_file), hostkey_verify=False,
                               allow_agent=False, look_for_keys=False, timeout=timeout)

    def ovs(self, *argv) -> str:
        """An ovs-vsctl / ovs-ofctl command against the node's private OVS."""
        from drivers.vswitch.ovs_process import PrivateOVS
        ovs = PrivateOVS(self.dir / "ovs", netns=self.netns)
        tool, *rest = argv
        if tool == "ovs-vsctl":
            rest = ["--db=%s" % ovs.db_socket, *rest]
        elif tool == "ovs-ofctl" and len(rest) > 1:
            rest = [rest[0], ovs.bridge_mgmt(rest[1]), *rest[2:]]
        return run(tool, *rest, env=ovs.env()).stdout

    def reconfigurations(self) -> int:
        """How many full bridge reconfigurations ovs-vswitchd has made (a coverage counter)."""
        from drivers.vswitch.ovs_process import PrivateOVS
        ctl = PrivateOVS(self.dir / "ovs", netns=self.netns).vswitchd_ctl
        out = run("ovs-appctl", "-t", str(ctl), "coverage/read-counter", "bridge_reconfigure")
        return int(out.stdout)

    def settle(self, quiet: float = 1.0, limit: float = 60.0) -> int:
        """Wait until ovs-vswitchd has not reconfigured for `quiet` seconds (the agent's
        background work on prepared slots is over); the count then."""
        deadline = time.monotonic() + limit
        count = self.reconfigurations()
        while time.monotonic() < deadline:
            time.sleep(quiet)
            again = self.reconfigurations()
            if again == count:
                break
            count = again
        return count

    def node_resources(self, port_names: bool = False) -> dict:
        """What the agent's prefix names on the node: for before/after comparisons.
        port_names: flows name their ports instead of numbering them (for comparing nodes
        that made the same ports in a different order)."""
        from drivers.vswitch.ovs_process import PrivateOVS
        ovs = PrivateOVS(self.dir / "ovs", netns=self.netns)
        bridges = run("ovs-vsctl", "--db=%s" % ovs.db_socket, "list-br").stdout.split()
        own = {self.netns} | {host.name for host in self.hosts.values()}
        out = {"bridges": {}, "netns": sorted(n for n in resources.netns_names()
                                              if n.startswith(self.resource_prefix)
                                              and n not in own),
               "links": sorted(resources.link_names(self.netns))}
        for bridge in bridges:
            ports = run("ovs-vsctl", "--db=%s" % ovs.db_socket, "list-ports", bridge).stdout.split()
            flows = run("ovs-ofctl", "-O", "OpenFlow14", "--no-stats",
                        "--names" if port_names else "--no-names", "dump-flows",
                        ovs.bridge_mgmt(bridge), env=ovs.env()).stdout.splitlines()
            out["bridges"][bridge] = {"ports": sorted(ports),
                                      "flows": sorted(line.strip() for line in flows
                                                      if "cookie" in line or "priority" in line)}
        out["processes"] = sorted(p.split(":", 1)[1] for p in resources.processes_mentioning(
            str(self.dir / "state")))
        return out


    def resources_once_settled(self, expected: dict, seconds: float = 5.0,
                               port_names: bool = False) -> dict:
        """node_resources() as soon as it equals expected, else after `seconds`: the kernel
        removes a destroyed function's vSwitch ends in the background, shortly after the
        commit that deleted it has answered (a leak stays, and fails the comparison)."""
        eventually(lambda: self.node_resources(port_names) == expected, seconds, 0.02)
        return self.node_resources(port_names)


def eventually(check, seconds: float = 30, interval: float = 0.1) -> bool:
    """Poll until check() is true (what the agent does in the background decides when)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return bool(check())


def link_nodes(a: Node, a_ifname: str, b: Node, b_ifname: str, mtu: int = 1600) -> None:
    """A veth between two nodes (their underlay), with room for GRE's overhead."""
    temp_a, temp_b = "%su%sa" % (PREFIX, a.tag), "%su%sb" % (PREFIX, b.tag)
    run("ip", "link", "add", temp_a, "mtu", str(mtu), "type", "veth", "peer", "name", temp_b,
        "mtu", str(mtu))
    run("ip", "link", "set", temp_a, "netns", a.netns)
    run("ip", "link", "set", temp_b, "netns", b.netns)
    for node, temp, ifname in ((a, temp_a, a_ifname), (b, temp_b, b_ifname)):
        netns_exec(node.netns, "ip", "link", "set", temp, "name", ifname)
        netns_exec(node.netns, "ip", "link", "set", ifname, "up")
        netns_exec(node.netns, "ethtool", "-K", ifname, "tx", "off", check=False)


def resources_diff(expected: dict, actual: dict) -> str:
    """A unified diff of two node_resources() results, for assertion messages."""
    import difflib
    import json
    a = json.dumps(expected, indent=1, sort_keys=True).splitlines()
    b = json.dumps(actual, indent=1, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(a, b, "expected", "actual", lineterm="", n=1))
