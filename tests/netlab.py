"""A small traffic lab for integration tests: host namespaces wired to interfaces of a node
namespace, ping and iperf3 between them, and a clean-up that leaves nothing behind.

A host is a namespace with one interface, eth0, joined inside the node namespace to a given
interface (say the vSwitch end of a function port) by a Linux bridge: the bridge stands in
for the vSwitch. Every name starts with the session's PREFIX.
"""

import json
import os
import signal
import subprocess
import sys
import time

from drivers import netlink
from tests.resources import PREFIX


class Lab:
    """Namespaces and hosts made by one test; close() removes them all."""

    def __init__(self, tag: str):
        self.tag = tag                     # short: names are PREFIX + tag + a few characters
        self.namespaces: list[str] = []
        self.node_links: list[tuple[str, str]] = []
        self.procs: list[subprocess.Popen] = []

    def name(self, suffix: str) -> str:
        name = "%s%s%s" % (PREFIX, self.tag, suffix)
        netlink.check_ifname(name)
        return name

    def netns(self, suffix: str) -> str:
        name = self.name(suffix)
        netlink.netns_add(name)
        self.namespaces.append(name)
        return name

    def host(self, suffix: str, node: str, attach_to: str, address: str,
             gateway: str | None = None, mac: str | None = None) -> str:
        """A host namespace whose eth0 (address 'a.b.c.d/len') reaches attach_to in node."""
        ns = self.netns(suffix)
        node_end, bridge = self.name(suffix + "v"), self.name(suffix + "b")
        netlink.veth_add(node_end, "eth0", netns=node, peer_netns=ns, peer_mac=mac)
        self.node_links += [(node, node_end), (node, bridge)]
        netlink.tx_checksum_off(node_end, netns=node)
        netlink.tx_checksum_off("eth0", netns=ns)
        netlink.bridge_add(bridge, node)
        netlink.link_set(node_end, node, master=bridge)
        netlink.link_set(attach_to, node, master=bridge, up=True)
        ip, plen = address.split("/")
        netlink.addr_add("eth0", ip, int(plen), netns=ns)
        if gateway:
            netlink.route_add("default", gateway=gateway, netns=ns)
        return ns

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for ns in self.namespaces:
            for pid in netlink.netns_pids(ns):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for node, link in self.node_links:
            if netlink.netns_exists(node):
                netlink.link_delete(link, node)
        for ns in reversed(self.namespaces):
            netlink.netns_delete(ns)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- traffic ---

    @staticmethod
    def run(ns: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True,
                              text=True, timeout=timeout)

    def ping(self, ns: str, address: str, count: int = 3) -> bool:
        """Whether address answers at least one of count pings from ns.

        An unanswered ping leaves ns's ARP lookup of address in progress (3 probes, 1 s
        apart): the next ping, sent once the path works, is queued on it and dropped as
        unreachable when the lookup gives up. A failed ping forgets ns's neighbours, so
        that the next one asks afresh."""
        answered = self.run(ns, "ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "2",
                            address).returncode == 0
        if not answered:
            self.run(ns, "ip", "neigh", "flush", "all")
        return answered

    def forget_neighbours(self, ns: str) -> None:
        """After a ping that was not answered: its failed ARP lookup would fail the pings of
        the next 3 s (the neighbour entry stays FAILED that long), however the path is now."""
        self.run(ns, "ip", "neigh", "flush", "all")

    def serve_iperf3(self, ns: str, port: int = 5201) -> subprocess.Popen:
        """A one-off iperf3 server in ns (JSON report on stdout), listening when returned."""
        proc = subprocess.Popen(["ip", "netns", "exec", ns, "iperf3", "-s", "-1", "-J",
                                 "-p", str(port)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        for _ in range(500):
            listening = self.run(ns, "ss", "-H", "-ltn", "sport = :%d" % port).stdout
            if listening.strip():
                return proc
            if proc.poll() is not None:
                break
            time.sleep(0.01)
        raise AssertionError("iperf3 server in %s did not listen on %d: %s"
                             % (ns, port, proc.stderr.read() if proc.poll() is not None else ""))

    def iperf3(self, ns: str, address: str, port: int = 5201, seconds: int = 1) -> dict:
        """An iperf3 TCP client run: its JSON report ("error" set when it failed; iperf3 -J
        exits 0 even then). Gives up connecting after 2 s."""
        result = self.run(ns, "iperf3", "-c", address, "-p", str(port), "-t", str(seconds),
                          "--connect-timeout", "2000", "-J", timeout=30)
        try:
            report = json.loads(result.stdout)
        except ValueError:
            report = {"error": result.stderr or result.stdout or "no output"}
        if result.returncode != 0:
            report.setdefault("error", "exit status %d" % result.returncode)
        return report

    def transfers(self, ns: str, address: str, port: int = 5201) -> bool:
        """Whether an iperf3 TCP run from ns to address:port moves data."""
        report = self.iperf3(ns, address, port)
        return "error" not in report and report["end"]["sum_received"]["bytes"] > 0

    @staticmethod
    def server_report(proc: subprocess.Popen, timeout: float = 15) -> dict:
        out, _ = proc.communicate(timeout=timeout)
        return json.loads(out)

    def tcp_connects(self, ns: str, address: str, port: int, timeout: float = 2) -> bool:
        """Whether a TCP connection from ns to address:port is established."""
        code = ("import socket,sys\n"
                "try:\n"
                "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=%s)\n"
                "except OSError:\n"
                "    sys.exit(1)\n" % timeout)
        return self.run(ns, sys.executable, "-c", code, address, str(port)).returncode == 0
