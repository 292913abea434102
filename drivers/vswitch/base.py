"""The vSwitch driver interface: the paper's Table 2 (management) and Table 3 (control).

The network manager names every resource it asks for (LSIs, ports, links) and tags it
with external_ids, so that recovery can find what the agent created. Ports are referred
to by name everywhere, in flows too; the driver maps names to OpenFlow port numbers.

Lifecycle of a driver:
  1. construct with options (database socket, node namespace, datapath type);
  2. check() once: raises PrerequisiteError naming what is missing;
  3. management and control calls, each one atomic on the switch (one OVSDB
     transaction, one OpenFlow bundle);
  4. close().
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LsiInfo:
    """A logical switch instance (an OVS bridge)."""
    name: str
    datapath_id: str = ""
    datapath_type: str = ""
    external_ids: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class PortInfo:
    """A port of an LSI."""
    lsi: str
    name: str
    ofport: int
    kind: str = ""          # "system" (veth, NIC), "internal", "patch", "gre", "tap", ...
    external_ids: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class VirtualLink:
    """A pair of patch ports that joins two LSIs."""
    name: str               # the link's name; the ports are derived from it
    lsi_a: str
    port_a: str
    lsi_b: str
    port_b: str


@dataclass(frozen=True)
class Action:
    """One OpenFlow action.

    kind is one of: output (arg: port name), in_port (send back where it came from),
    push_vlan (arg: VLAN id), pop_vlan, set_eth_src / set_eth_dst (arg: MAC),
    set_ipv4_src / set_ipv4_dst (arg: address), dec_ttl, drop.
    """
    kind: str
    arg: str | int | None = None


@dataclass(frozen=True)
class Flow:
    """One OpenFlow rule on one LSI.

    match holds (field, value) pairs with OVS field names (ovs-fields(7)): in_port (a port
    name), dl_src, dl_dst (value or value/mask), dl_type, dl_vlan, dl_vlan_pcp, nw_src, nw_dst,
    ipv6_src, ipv6_dst, nw_proto, ip_dscp, tp_src, tp_dst. The cookie identifies the flow for
    removal: flows with the same cookie on one LSI are removed together.
    """
    cookie: int
    priority: int
    match: tuple = ()
    actions: tuple = ()


class VSwitchDriver:
    """Base class with do-nothing hooks; a driver overrides what it supports."""

    driver_kind = "vswitch"
    driver_name = "base"

    def check(self) -> None:
        """Raise PrerequisiteError when the vSwitch cannot be driven here."""

    def close(self) -> None:
        """Release connections."""

    def info(self) -> dict:
        """Facts for the domain description: kind, version, datapath type, port technologies."""
        return {}

    # --- Management (Table 2) ---

    def create_lsi(self, name: str, *, external_ids: dict | None = None,
                   ports: tuple = (), may_exist: bool = False,
                   local_port: bool = True) -> LsiInfo:
        """Create an LSI, optionally with existing network interfaces as its first ports.

        may_exist: an LSI of that name is reused (and given the missing ports) instead of
        raising ResourceExists; the agent uses it for LSI-0 at boot.
        local_port: whether the LSI has its own port into the node's stack (a vSwitch's
        "LOCAL" port). A graph-LSI does not need one: nothing of a graph reaches the node
        through it (host-stack SAPs and tunnel endpoints have ports of their own)."""
        raise NotImplementedError

    def destroy_lsi(self, name: str) -> None:
        """Destroy an LSI and all its ports."""
        raise NotImplementedError

    def list_lsis(self, external_ids: dict | None = None) -> list[LsiInfo]:
        """The LSIs whose external_ids include the given ones (all when None)."""
        raise NotImplementedError

    def create_port(self, lsi: str, name: str, kind: str = "system", *,
                    options: dict | None = None, external_ids: dict | None = None,
                    ofport: int | None = None) -> PortInfo:
        """Attach a port of a given technology to an LSI.

        kind: "system" (an existing netdev: NIC, veth end, tap), "internal" (a port the
        vSwitch creates as a netdev of the node), "tap", "vhost-user", "dpdk", "gre".
        """
        raise NotImplementedError

    def destroy_port(self, lsi: str, name: str) -> None:
        raise NotImplementedError

    def create_ports(self, lsi: str, ports: list[dict]) -> list[PortInfo]:
        """Several ports in one transaction; each dict holds create_port's arguments
        (name, kind, options, external_ids, ofport). All or none are created."""
        return [self.create_port(lsi, **port) for port in ports]

    def destroy_ports(self, lsi: str, names: list[str]) -> None:
        """Several ports in one transaction."""
        for name in names:
            self.destroy_port(lsi, name)

    def list_ports(self, lsi: str) -> list[PortInfo]:
        raise NotImplementedError

    def tag_ports(self, lsi: str, external_ids: dict) -> None:
        """Replace the external_ids of ports of the LSI (name -> dict), in one change that
        does not reconfigure the datapath. All or none; ResourceNotFound if one is missing."""
        raise NotImplementedError

    @staticmethod
    def link_port_names(name: str) -> tuple[str, str]:
        """The patch ports of virtual link `name`: (<name>-a on lsi_a, <name>-b on lsi_b).
        Port names are netdev-like (15 characters), so link names have at most 13."""
        return name + "-a", name + "-b"

    def create_virtual_links(self, lsi_a: str, lsi_b: str, names: list[str], *,
                             external_ids: dict | None = None,
                             ofports: dict | None = None) -> list[VirtualLink]:
        """Connect two LSIs with one patch-port pair per name, in one transaction; ofports
        optionally requests OpenFlow port numbers by port name."""
        raise NotImplementedError

    def destroy_virtual_links(self, links: list[VirtualLink]) -> None:
        raise NotImplementedError

    def create_ports_and_links(self, lsi: str, ports: list[dict], lsi_a: str,
                               link_names: list[str], *, link_external_ids: dict | None = None,
                               link_ofports: dict | None = None) -> None:
        """create_ports(lsi, ports) and create_virtual_links(lsi_a, lsi, link_names) as one
        change where the vSwitch allows (a graph's new ports and links cost it one
        reconfiguration then). All or nothing."""
        self.create_ports(lsi, ports)
        try:
            self.create_virtual_links(lsi_a, lsi, link_names, external_ids=link_external_ids,
                                      ofports=link_ofports)
        except BaseException:
            self.destroy_ports(lsi, [port["name"] for port in ports])
            raise

    def destroy_ports_and_links(self, lsi: str, names: list[str],
                                links: list[VirtualLink]) -> None:
        """destroy_ports(lsi, names) and destroy_virtual_links(links) as one change where the
        vSwitch allows."""
        self.destroy_ports(lsi, names)
        self.destroy_virtual_links(links)

    def create_sap(self, lsi: str, name: str, sap_type: str, params: dict, *,
                   external_ids: dict | None = None) -> PortInfo | None:
        """Create the vSwitch side of a service access point.

        sap_type "gre": params local_ip, remote_ip, key, optional ttl; a tunnel port.
        sap_type "host-stack": params ipv4_address, prefix_length (or dhcp), mac_address;
        a port whose other side is the node's own IP stack, configured with that address.
        sap_type "interface" / "vlan": the interface is on LSI-0 already; returns its port.
        """
        raise NotImplementedError

    def destroy_sap(self, lsi: str, name: str, sap_type: str) -> None:
        raise NotImplementedError

    def restore_sap(self, lsi: str, name: str, sap_type: str, params: dict) -> None:
        """Put back what a restarted vSwitch forgets of a SAP made by create_sap with the
        same arguments (its port is there). Nothing by default."""

    # --- Control (Table 3) ---

    def apply_flows(self, lsi: str, add: list[Flow] = (), remove_cookies: list[int] = ()) -> None:
        """Remove the flows with the given cookies and add the given flows, atomically
        (one OpenFlow bundle): on error nothing changed."""
        raise NotImplementedError

    def dump_flows(self, lsi: str) -> list[Flow]:
        raise NotImplementedError

    def flow_stats(self, lsi: str) -> dict[int, tuple[int, int]]:
        """(packets, bytes) per cookie, summed over the flows that carry it."""
        raise NotImplementedError

    def port_stats(self, lsi: str) -> dict[str, dict]:
        """rx_packets, rx_bytes, tx_packets, tx_bytes per port name."""
        raise NotImplementedError
