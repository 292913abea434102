"""Netlink work in the node's network namespace: where ovs-vswitchd runs and where the
netdevs of its ports live.

Built on drivers.netlink, whose sockets are opened by a thread that enters the namespace
(setns). Never pyroute2's IPRoute(netns=...): it forks a child and ends it with SIGTERM, and
a child forked from the agent shares the event loop's signal wakeup descriptor, so the
agent itself would read that SIGTERM as its own and stop.
"""

import ipaddress
from pathlib import Path

from .. import netlink
from ..errors import PrerequisiteError


class NodeNetlink:
    """rtnetlink in one network namespace (None: the agent's own)."""

    def __init__(self, netns: str | None = None):
        self.netns = netns

    def check(self) -> None:
        if self.netns and not Path("/run/netns", self.netns).exists():
            raise PrerequisiteError("network namespace %s does not exist (ip netns add %s, or "
                                    "fix ovs.netns in the configuration)"
                                    % (self.netns, self.netns))

    def missing_links(self, names) -> list[str]:
        """Those of names that are no network interface in the namespace.

        One lookup per name, not a dump: a node with a thousand function ports has
        thousands of interfaces, and decoding them all costs a second."""
        return [n for n in names if not netlink.link_exists(n, self.netns)]

    def set_address(self, ifname: str, address: str, prefix_length: int) -> None:
        """Make address/prefix_length the only IPv4 address of ifname, and bring it up."""
        interface = ipaddress.IPv4Interface("%s/%d" % (address, prefix_length))
        wanted = "%s/%d" % (interface.ip, interface.network.prefixlen)
        if netlink.addr_list(ifname, netns=self.netns) != [wanted]:
            netlink.addr_flush(ifname, netns=self.netns)
            netlink.addr_add(ifname, str(interface.ip), interface.network.prefixlen,
                             netns=self.netns)
        netlink.link_set(ifname, netns=self.netns, up=True)
