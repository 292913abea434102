"""The node side of function ports, for every compute driver: veth pairs, taps, and the
reaper of the ends a deleted namespace leaves to the kernel.

A function port is one of:
  - a veth pair: its vSwitch end (FunctionPort.vswitch_ifname) in the node's namespace, the
    other end in the function's namespace (a native function's own, a container's network
    namespace attached under /run/netns), named there by the driver (eth<N>: add_veths);
    a veth made elsewhere is moved in and renamed in one request (move_in);
  - a tap device in the node's namespace (add_tap), whose file side a hypervisor opens
    (a VM's port) or the vSwitch itself (attachment kind "tap").
The vSwitch end is what the planner attaches to the graph-LSI (PortAttachment, base.py).

A record (a dict, kept in the driver's metadata) describes a made port: port_id,
vswitch_ifname, ifname (the function-side name), mac, ipv4_address, ipv4_prefix_length,
technology.

Deleting a namespace destroys its veths, and their node-side peers, in the background
(40-60 ms here, RCU grace periods): forget(ends) hands those ends to the reaper, which
deletes any still there after TEARDOWN_WAIT; their names stay reserved until they are gone
(check_free and add_veths wait), and settle() waits for all of them.
"""

import logging
import threading
import time

from .. import netlink
from ..errors import DriverError, ResourceExists
from .base import FunctionPort

LOG = logging.getLogger(__name__)

TEARDOWN_WAIT = 2.0    # seconds to wait for the kernel to remove a deleted namespace's veths


def port_record(port: FunctionPort, ifname: str) -> dict:
    """The record of a port whose function side is called ifname."""
    return {
        "port_id": port.port_id,
        "vswitch_ifname": port.vswitch_ifname,
        "ifname": ifname,
        "mac": port.mac_address,
        "ipv4_address": port.ipv4_address,
        "ipv4_prefix_length": (port.ipv4_prefix_length or 24 if port.ipv4_address else None),
        "technology": port.technology,
    }


def free_ifname(records, prefix: str = "eth") -> str:
    """The lowest <prefix><N> no record uses: a port keeps its name for its lifetime."""
    used = {r["ifname"] for r in records}
    n = 0
    while "%s%d" % (prefix, n) in used:
        n += 1
    return "%s%d" % (prefix, n)


def validate_veth_port(port: FunctionPort, environment: str) -> FunctionPort:
    """port, when it is a FunctionPort of technology veth with a valid node-side name."""
    if not isinstance(port, FunctionPort):
        raise TypeError("a port is a FunctionPort, not %r" % (port,))
    if port.technology != "veth":
        raise DriverError("%s functions only have veth ports, not %s"
                          % (environment, port.technology), resource=port.port_id)
    netlink.check_ifname(port.vswitch_ifname)
    return port


def check_unique(ports) -> None:
    """DriverError when two ports have the same id or node-side name."""
    for attr in ("port_id", "vswitch_ifname"):
        seen = set()
        for port in ports:
            value = getattr(port, attr)
            if value in seen:
                raise DriverError("two ports with the same %s" % attr, resource=value)
            seen.add(value)


class Plumbing:
    """Makes and removes the node side of function ports in the node's namespace
    (node_netns; None: the agent's own). Thread-safe; one per driver."""

    def __init__(self, node_netns: str | None = None):
        self.node_netns = node_netns
        self.reaper = Reaper()

    # --- names ---

    def check_free(self, names) -> None:
        """ResourceExists when one of names is an interface of the node's namespace (after
        the reaper let go of those it holds)."""
        names = list(names)
        self.reaper.wait(names=names)
        for name in names:
            if netlink.link_exists(name, self.node_netns):
                raise ResourceExists("interface exists in the node namespace", resource=name)

    # --- veth pairs ---

    def add_veths(self, netns: str, ports, records: list, *, ifnames=None) -> list:
        """A veth pair per port: its vswitch_ifname in the node's namespace, eth<N> (or the
        given ifnames) in netns, MAC and IPv4 set there, both up; each record is appended
        to records as it is made (so that a failure leaves records of what exists).
        Returns the new records."""
        node = self.node_netns
        self.reaper.wait(names=[port.vswitch_ifname for port in ports])
        made = []
        for i, port in enumerate(ports):
            ifname = ifnames[i] if ifnames else free_ifname(records)
            # No IPv6 on the vSwitch end: its link-local address and routes would make
            # every route change cost ovs-vswitchd a walk over all of them (it re-reads the
            # whole routing table on each), which at a thousand ports is most of a commit.
            # Promiscuous from the start: the userspace datapath turns it on when the port
            # is attached, and that link event would cost ovs-vswitchd one more pass over
            # every port while the commit's flows wait behind it.
            netlink.veth_add(port.vswitch_ifname, ifname, netns=node, peer_netns=netns,
                             peer_mac=port.mac_address, ipv6=False, promisc=True)
            record = port_record(port, ifname)
            records.append(record)
            made.append(record)
            if port.ipv4_address:
                netlink.addr_add(ifname, port.ipv4_address, record["ipv4_prefix_length"],
                                 netns=netns)
            if not port.mac_address:
                record["mac"] = netlink.link_info(ifname, netns=netns)["mac"]
        if made:
            # Only the function's end: what enters the userspace datapath must carry full
            # checksums, and ovs-vswitchd sends complete frames out of its own end. Changing
            # a feature of a netdev in its namespace would cost ovs-vswitchd a reconfiguration
            # of every port for nothing.
            netlink.tx_checksum_off(*(r["ifname"] for r in made), netns=netns)
        return made

    def delete_veth(self, record: dict, netns: str) -> None:
        """Delete a port's veth pair from whichever end is still there (if any)."""
        node = self.node_netns
        if (node is None or netlink.netns_exists(node)) and \
                netlink.link_delete(record["vswitch_ifname"], node):
            return
        if netlink.netns_exists(netns):
            netlink.link_delete(record["ifname"], netns)

    def restore_veths(self, netns: str, removed: list, records: list) -> None:
        """Make the veths of removed records again (same names, MAC, address), logging a
        failure: the undo of a port removal that a later step of the same change undid."""
        ports = [FunctionPort(r["port_id"], r["vswitch_ifname"], r["mac"], r["ipv4_address"],
                              r["ipv4_prefix_length"]) for r in removed]
        try:
            self.add_veths(netns, ports, records, ifnames=[r["ifname"] for r in removed])
        except Exception:
            LOG.exception("could not restore the removed ports in %s", netns)

    @staticmethod
    def move_in(ifname: str, netns: str, new_name: str, *, from_netns: str | None = None,
                up: bool = True) -> None:
        """Move an interface (a veth end made in from_netns) into netns (a container's
        namespace attached under /run/netns) and rename it there, in one request."""
        netlink.link_move(ifname, netns, netns=from_netns, new_name=new_name, up=up)

    # --- taps ---

    def add_tap(self, name: str, *, mac: str | None = None) -> None:
        """A persistent tap device in the node's namespace, up, without IPv6 (see
        add_veths), tx checksum offload off; for a hypervisor or the vSwitch to open."""
        self.reaper.wait(names=[name])
        netlink.tap_add(name, netns=self.node_netns, mac=mac, ipv6=False)

    def delete_link(self, name: str) -> bool:
        """Delete a node-side interface (a tap, a veth end) if it is there."""
        node = self.node_netns
        if node is not None and not netlink.netns_exists(node):
            return False
        return netlink.link_delete(name, node)

    # --- ends a deleted namespace leaves behind ---

    def forget(self, ends, wait: bool = True) -> None:
        """The node-side ends of a namespace just deleted: the kernel removes them; the
        reaper deletes those it did not within TEARDOWN_WAIT. wait: until they are gone."""
        node = self.node_netns
        ends = list(ends)
        if ends and (node is None or netlink.netns_exists(node)):
            self.reaper.add(node, ends)
            if wait:
                self.reaper.wait(names=ends)

    def settle(self, timeout: float | None = None) -> bool:
        """Until every forgotten end is gone; False if some are still there after timeout."""
        return self.reaper.wait(timeout=timeout)

    def close(self) -> None:
        """Wait for the reaper; close the netlink socket kept in the node's namespace."""
        self.settle()
        if self.node_netns is not None:
            netlink.release(self.node_netns)


class Reaper:
    """Node-side ends of deleted namespaces, until the kernel has removed them.

    One background thread checks them every 2 ms and deletes those still there after
    TEARDOWN_WAIT. A name in here is reserved: wait(names) returns once none of them is.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._pending: dict[int, tuple] = {}     # token -> (node netns, ends, deadline)
        self._next = 0
        self._thread = None

    def add(self, node: str | None, ends: list) -> None:
        with self._cond:
            self._pending[self._next] = (node, list(ends), time.monotonic() + TEARDOWN_WAIT)
            self._next += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="port-reaper",
                                                daemon=True)
                self._thread.start()

    def _busy(self, names) -> bool:
        if names is None:
            return bool(self._pending)
        wanted = set(names)
        return any(wanted.intersection(ends) for _, ends, _ in self._pending.values())

    def wait(self, names=None, timeout: float | None = None) -> bool:
        """Until none of names (None: nothing at all) is pending; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy(names), timeout=timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._thread = None
                    return
                pending = dict(self._pending)
            done = {}
            for token, (node, ends, deadline) in pending.items():
                try:
                    if node is not None and not netlink.netns_exists(node):
                        left = []
                    else:
                        left = [end for end in ends if netlink.link_exists(end, node)]
                        if left and time.monotonic() > deadline:
                            LOG.warning("deleting %s: a reference kept its namespace",
                                        ", ".join(left))
                            for end in left:
                                netlink.link_delete(end, node)
                            left = []
                except Exception:  # noqa: BLE001 - the thread must go on; the names are freed
                    LOG.exception("removing the ends %s failed", ", ".join(ends))
                    left = []
                done[token] = left
            with self._cond:
                for token, left in done.items():
                    if left:
                        node, _, deadline = self._pending[token]
                        self._pending[token] = (node, left, deadline)
                    else:
                        del self._pending[token]
                self._cond.notify_all()
            time.sleep(0.002)
