"""Netlink work in the node's network namespace (pyroute2): where ovs-vswitchd runs and
where the netdevs of its ports live.

One short-lived rtnetlink socket per driver call, opened inside the namespace; never one
per port.
"""

import ipaddress
from contextlib import contextmanager
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ..errors import CommandError, PrerequisiteError, ResourceNotFound


class NodeNetlink:
    """rtnetlink in one network namespace (None: the agent's own)."""

    def __init__(self, netns: str | None = None):
        self.netns = netns

    def check(self) -> None:
        if self.netns and not Path("/run/netns", self.netns).exists():
            raise PrerequisiteError("network namespace %s does not exist (ip netns add %s, or "
                                    "fix ovs.netns in the configuration)"
                                    % (self.netns, self.netns))

    @contextmanager
    def _ipr(self):
        # flags=0: never create the namespace by accident; groups=0: no broadcasts to drain.
        try:
            ipr = IPRoute(netns=self.netns, flags=0, groups=0) if self.netns \
                else IPRoute(groups=0)
        except OSError as err:
            raise CommandError("cannot open netlink in namespace %s" % self.netns,
                               resource=self.netns, detail=str(err)) from None
        try:
            yield ipr
        finally:
            ipr.close()

    def link_names(self) -> set[str]:
        """Names of every network interface in the namespace."""
        with self._ipr() as ipr:
            return {link.get("ifname") for link in ipr.get_links()}

    def set_address(self, ifname: str, address: str, prefix_length: int) -> None:
        """Make address/prefix_length the only IPv4 address of ifname, and bring it up."""
        interface = ipaddress.IPv4Interface("%s/%d" % (address, prefix_length))
        with self._ipr() as ipr:
            index = self._index(ipr, ifname)
            try:
                for addr in ipr.get_addr(index=index, family=2):
                    if addr.get("address") != str(interface.ip) \
                            or addr["prefixlen"] != interface.network.prefixlen:
                        ipr.addr("del", index=index, address=addr.get("address"),
                                 prefixlen=addr["prefixlen"])
                if not any(a.get("address") == str(interface.ip)
                           for a in ipr.get_addr(index=index, family=2)):
                    ipr.addr("add", index=index, address=str(interface.ip),
                             prefixlen=interface.network.prefixlen,
                             broadcast=str(interface.network.broadcast_address))
                ipr.link("set", index=index, state="up")
            except NetlinkError as err:
                raise CommandError("cannot configure %s on %s" % (interface, ifname),
                                   resource=ifname, detail=str(err)) from None

    def _index(self, ipr, ifname: str) -> int:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            raise ResourceNotFound("no network interface %s%s"
                                   % (ifname, " in namespace %s" % self.netns
                                      if self.netns else ""), resource=ifname)
        return found[0]
