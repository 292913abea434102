"""`composer-agent demo` (`make demo`): a node to try the agent on, on any Linux box.

The demo makes three network namespaces, `<prefix>-node` (the simulated node, where the
agent's private OVS runs) and two hosts, `<prefix>-h1` (10.0.0.1/24) and `<prefix>-h2`
(10.0.0.2/24), each joined to the node by a veth whose node end (eth1, eth2) is one of
LSI-0's interfaces. It then runs the agent with NETCONF on 127.0.0.1 (port 830 unless
told otherwise), its state in /run/composer-demo (it holds the admin key the README's
snippets use; /run is root's and emptied at boot) and its resources named with the prefix,
so the demo neither touches the real node's state nor collides with an agent of `make
run`. Ctrl-C stops the agent (graphs torn down, private OVS stopped) and the demo removes
its namespaces, and with them their links.

Lifecycle:
  1. check the namespaces are free (a stale one, with no process in it, is removed);
  2. make the namespaces and links;
  3. run the agent until SIGINT/SIGTERM;
  4. remove the namespaces, whatever happened in 2 or 3.
"""

import logging
from pathlib import Path

from drivers import netlink

from .config import AgentConfig

LOG = logging.getLogger(__name__)

DEFAULT_PREFIX = "demo"
DEFAULT_STATE_DIR = "/run/composer-demo"
DEFAULT_PORT = 830
# node interface -> (host suffix, host address)
HOSTS = {"eth1": ("h1", "10.0.0.1/24"), "eth2": ("h2", "10.0.0.2/24")}


class DemoError(Exception):
    """The demo network cannot be made."""


class DemoNetwork:
    """The node and host namespaces of the demo, and the veths between them."""

    def __init__(self, prefix: str = DEFAULT_PREFIX):
        self.prefix = prefix
        self.node = "%s-node" % prefix
        self.hosts = {ifname: ("%s-%s" % (prefix, suffix), address)
                      for ifname, (suffix, address) in HOSTS.items()}
        self.created = []                   # the namespaces this demo made

    @property
    def namespaces(self) -> list[str]:
        return [self.node] + [name for name, _ in self.hosts.values()]

    def overrides(self, state_dir: str, port: int) -> dict:
        """The settings that make the agent run this demo node."""
        return {
            "node": {"id": self.node},
            "netconf": {"address": "127.0.0.1", "port": port},
            "state": {"dir": state_dir},
            "ovs": {"mode": "private", "netns": self.node},
            "lsi0": {"interfaces": sorted(self.hosts)},
            "resources": {"prefix": self.prefix},
        }

    def create(self) -> None:
        for name in self.namespaces:
            if netlink.netns_exists(name):
                pids = netlink.netns_pids(name)
                if pids:
                    raise DemoError(
                        "network namespace %s exists with processes in it (%s): another demo "
                        "runs, or a killed one left them; stop them, or choose another "
                        "--prefix" % (name, ", ".join(map(str, sorted(pids)))))
                LOG.info("removing the stale namespace %s", name)
                netlink.netns_delete(name)
        try:
            self._netns_add(self.node)
            for ifname, (host, address) in sorted(self.hosts.items()):
                self._netns_add(host)
                netlink.veth_add(ifname, "eth0", netns=self.node, peer_netns=host)
                ip, length = address.split("/")
                netlink.addr_add("eth0", ip, int(length), netns=host)
                # The userspace datapath fills in no checksums: neither end offloads them.
                netlink.tx_checksum_off("eth0", netns=host)
                netlink.tx_checksum_off(ifname, netns=self.node)
        except BaseException:
            self.destroy()
            raise

    def _netns_add(self, name: str) -> None:
        netlink.netns_add(name)
        self.created.append(name)

    def destroy(self) -> None:
        """Remove the namespaces the demo made (their veths go with them)."""
        while self.created:
            name = self.created.pop()
            try:
                netlink.netns_delete(name)
            except Exception:  # noqa: BLE001 - remove the others all the same
                LOG.exception("cannot remove the namespace %s", name)

    def banner(self, config: AgentConfig) -> list[str]:
        key = Path(config.state_dir) / "users" / "admin" / "id_ed25519"
        lines = ["demo: node namespace %s; LSI-0's %s lead to the hosts:"
                 % (self.node, " and ".join(sorted(self.hosts)))]
        for ifname, (host, address) in sorted(self.hosts.items()):
            lines.append("  %s -> host %s, %s  (ip netns exec %s ...)"
                         % (ifname, host, address, host))
        lines.append("demo: README.md, \"Try it\", deploys a firewall between them; the "
                     "admin key is %s" % key)
        return lines
