"""The Open vSwitch driver: an LSI is an OVS bridge, a port an OVS port, a flow OpenFlow.

Management goes through one OVSDB connection (the `ovs` IDL, see ovsdb.py): every call is
one transaction, and returns once ovs-vswitchd has applied it, so ofport numbers are
known. Control is OpenFlow 1.4: every apply_flows is one bundle, sent over a connection
to the bridge's management socket that stays open (ofconn.py), or through ovs-ofctl for a
flow that connection does not encode; dumps and counters use ovs-ofctl. Netlink
work (addresses, interface checks) happens in the node's namespace (netlink.py).

Names: every LSI, port and link end is 1 to 15 characters of [A-Za-z0-9_.-]; a virtual
link <name> has the patch ports <name>-a and <name>-b, so link names are at most 13.

Tunnel endpoints (userspace datapath): a GRE port on a graph-LSI sends through the node's
endpoint address. The endpoint is an internal port on LSI-0 carrying that address, plus
LSI-0 flows that pass ARP and IP for the address between the NIC and that port; see
create_tunnel_endpoint.
"""

import logging
import shutil
import threading
import time
from dataclasses import dataclass

from ..errors import (CommandError, DriverError, InvalidArgument, NotSupported,
                      PrerequisiteError, ResourceExists, ResourceNotFound)
from ..registry import register
from .. import watch
from . import openflow, validate
from .base import Action, Flow, LsiInfo, PortInfo, VirtualLink, VSwitchDriver
from .netlink import NodeNetlink
from .ofconn import OpenFlowConnection, encode_bundle
from .ofctl import AppCtl, OpenFlowClient, system_run_dir
from .ovsdb import OvsdbConnection

LOG = logging.getLogger(__name__)

# Port kinds this driver creates, and the OVS Interface type of each (the kinds of a
# function port are drivers/compute/base.py's attachment kinds).
PORT_KINDS = {"system": "", "internal": "internal", "tap": "tap", "patch": "patch",
              "gre": "gre", "dpdkvhostuser": "dpdkvhostuser",
              "dpdkvhostuserclient": "dpdkvhostuserclient", "memif": "dpdk"}
_KIND_OF_TYPE = {"": "system", "system": "system", "internal": "internal", "tap": "tap",
                 "patch": "patch", "gre": "gre", "dpdkvhostuser": "dpdkvhostuser",
                 "dpdkvhostuserclient": "dpdkvhostuserclient", "dpdk": "memif"}
# Kinds only OVS-DPDK has: ovs-vswitchd with DPDK initialised, on a netdev-datapath LSI.
DPDK_KINDS = ("dpdkvhostuser", "dpdkvhostuserclient", "memif")
DPDK_ADVICE = ("install openvswitch-switch-dpdk and set other_config:dpdk-init=true on "
               "the Open_vSwitch row (ovs.datapath-type netdev)")
SOCKET_PATH_MAX = 107           # sun_path, less its terminating NUL
# DESIGN.md (measured here): OVS-DPDK memif ports need two rx queues.
MEMIF_RX_QUEUES = 2
SAP_TYPES = ("interface", "vlan", "gre", "host-stack")
PROTOCOLS = ["OpenFlow13", "OpenFlow14"]
MAX_OFPORT = 0xFEFF                     # OFPP_MAX - 1

# external_ids the driver adds to what the caller gives, to find its own objects again.
TAG_LINK = "composer-link"
TAG_TUNNEL_ADDRESS = "composer-tunnel-address"      # "<ip>/<prefix length>"
TAG_TUNNEL_NIC = "composer-tunnel-nic"
TAG_TUNNEL_COOKIE = "composer-tunnel-cookie"
TAG_TUNNEL_PRIORITY = "composer-tunnel-priority"

TUNNEL_PRIORITY = 65535
_GRE_OPTIONS = ("remote_ip", "local_ip", "key", "ttl")


@dataclass(frozen=True)
class TunnelEndpoint:
    """The node's tunnel address: an internal port on LSI-0 and the LSI-0 flows it needs."""
    lsi: str
    name: str
    ip: str
    prefix_length: int
    nic: str
    cookie: int
    priority: int
    ofport: int


@dataclass
class _PortSpec:
    name: str
    kind: str
    options: dict
    external_ids: dict
    ofport: int | None = None
    mac: str | None = None


def _scalar(value, default=None):
    """An optional OVSDB column reads as [] or [x]."""
    if isinstance(value, list):
        return value[0] if value else default
    return value


def _params(params: dict) -> dict:
    """SAP parameters with YANG leaf names accepted too (prefix-length -> prefix_length)."""
    return {str(k).replace("-", "_"): v for k, v in (params or {}).items()}


def _socket_path(value, what: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or \
            len(value.encode()) > SOCKET_PATH_MAX or any(c in value for c in ",=\0\n"):
        raise InvalidArgument("bad %s %r (an absolute path of at most %d bytes, without ',' "
                              "or '=')" % (what, value, SOCKET_PATH_MAX))
    return value


def _dpdk_options(name: str, kind: str, options: dict) -> dict:
    """The Interface options of a vhost-user or memif port (options: what is left of the
    caller's is refused by _port_spec)."""
    out = {}
    if "n_rxq" in options:
        out["n_rxq"] = str(validate.integer(options.pop("n_rxq"), 1, 1024, "n_rxq"))
    if kind == "dpdkvhostuserclient":
        if "vhost-server-path" not in options:
            raise InvalidArgument("a dpdkvhostuserclient port needs options vhost-server-path",
                                  resource=name)
        out["vhost-server-path"] = _socket_path(options.pop("vhost-server-path"),
                                                "vhost-server-path")
    if kind == "memif":
        if "socket" not in options:
            raise InvalidArgument("a memif port needs options socket", resource=name)
        socket = _socket_path(options.pop("socket"), "memif socket")
        memif_id = validate.integer(options.pop("id", 0), 0, 0xFFFFFFFF, "memif id")
        role = options.pop("role", "server")
        if role not in ("server", "client"):
            raise InvalidArgument("bad memif role %r (server or client: the vSwitch's)"
                                  % (role,), resource=name)
        # A DPDK virtual device of the memif driver (its name starts with the driver's),
        # one per port; a socket in the file system, not DPDK's default abstract one.
        out["dpdk-devargs"] = "net_memif_%s,role=%s,id=%d,socket=%s,socket-abstract=no" % (
            name, role, memif_id, socket)
        out.setdefault("n_rxq", str(MEMIF_RX_QUEUES))
    return out


def _port_spec(name, kind="system", options=None, external_ids=None, ofport=None) -> _PortSpec:
    name = validate.name(name, "port name")
    if kind not in PORT_KINDS:
        hint = " (vhost-user ports are dpdkvhostuser or dpdkvhostuserclient)" \
            if kind in ("vhost-user", "dpdk") else ""
        raise InvalidArgument("port kind %r is not supported by the ovs driver%s; supported: %s"
                              % (kind, hint, ", ".join(PORT_KINDS)), resource=name)
    options = dict(options or {})
    spec = _PortSpec(name=name, kind=kind, options={},
                     external_ids=validate.external_ids(external_ids))
    if ofport is not None:
        spec.ofport = validate.integer(ofport, 1, MAX_OFPORT, "ofport")
    if kind in ("internal", "tap") and "mac" in options:
        spec.mac = validate.mac(options.pop("mac"), "mac of port %s" % name)
    if kind == "patch":
        spec.options["peer"] = validate.name(options.pop("peer", None), "patch peer")
    if kind == "gre":
        if "remote_ip" not in options:
            raise InvalidArgument("a gre port needs options remote_ip", resource=name)
        spec.options["remote_ip"] = validate.ipv4(options.pop("remote_ip"), "remote_ip")
        if "local_ip" in options:
            spec.options["local_ip"] = validate.ipv4(options.pop("local_ip"), "local_ip")
        if "key" in options:
            spec.options["key"] = str(validate.integer(options.pop("key"), 0, 0xFFFFFFFF,
                                                       "GRE key"))
        if options.get("ttl") is not None:
            spec.options["ttl"] = str(validate.integer(options.pop("ttl"), 1, 255, "ttl"))
        options.pop("ttl", None)
    if kind in DPDK_KINDS:
        spec.options.update(_dpdk_options(name, kind, options))
    if options:
        raise InvalidArgument("options %s are not supported for %s ports"
                              % (", ".join(sorted(options)), kind), resource=name)
    return spec


@register("vswitch", "ovs")
class OVSDriver(VSwitchDriver):
    """Open vSwitch through OVSDB (IDL) and OpenFlow (ovs-ofctl bundles).

    Port kinds: system (an existing netdev in the node namespace: NIC, veth end, tap made
    by someone else), internal, tap (a tap device OVS opens, made if absent), patch, gre;
    with OVS-DPDK (netdev datapath, dpdk-init) also dpdkvhostuser (OVS serves the socket in
    its vhost directory), dpdkvhostuserclient (options vhost-server-path: the function
    serves it) and memif (options socket, id, role: a DPDK memif device, OVS type dpdk).
    A kind the LSI's datapath does not offer is refused before anything changes.
    """

    def __init__(self, db_socket: str, run_dir: str | None = None, netns: str | None = None,
                 datapath_type: str = "netdev", timeout: float = 30.0):
        self.db_socket = db_socket
        self.run_dir = str(run_dir) if run_dir else None
        self.netns = netns or None
        self.datapath_type = datapath_type
        self.timeout = timeout
        self.netlink = NodeNetlink(self.netns)
        self.appctl = AppCtl(self.run_dir)
        self._db: OvsdbConnection | None = None
        self._connect_lock = threading.Lock()
        self._checked = False
        self._bundlers: dict[str, OpenFlowConnection] = {}    # LSI name -> connection
        # watch(): where changes made by others are reported, and the rows this driver is
        # deleting itself meanwhile (name -> how many deletions of it are under way)
        self._watcher = None
        self._sink = None
        self._removing: dict[str, int] = {}
        self._removing_lock = threading.Lock()

    # --- lifecycle ---

    @property
    def db(self) -> OvsdbConnection:
        """The OVSDB connection, opened on first use."""
        if self._db is None:
            with self._connect_lock:
                if self._db is None:
                    db = OvsdbConnection(self.db_socket, timeout=self.timeout)
                    db.connect()
                    self._db = db
        return self._db

    def check(self) -> None:
        if self._checked:
            return
        missing = [b for b in ("ovs-ofctl", "ovs-appctl") if shutil.which(b) is None]
        if self.netns and shutil.which("ip") is None:
            missing.append("ip")
        if missing:
            raise PrerequisiteError("Open vSwitch tools are missing (%s); install the Debian "
                                    "packages openvswitch-switch and openvswitch-common "
                                    "(make deps)" % ", ".join(missing))
        self.netlink.check()
        db = self.db
        try:
            self.appctl("version")
        except CommandError as err:
            raise PrerequisiteError("ovs-vswitchd does not answer at %s; start it (the agent's "
                                    "private mode does)" % self.appctl.target,
                                    detail=err.detail) from None
        datapath_types = db.read(lambda t: list(t.root.datapath_types))
        if self.datapath_type not in datapath_types:
            raise PrerequisiteError(
                "ovs-vswitchd does not offer datapath type %r (it offers: %s)%s"
                % (self.datapath_type, ", ".join(datapath_types) or "none",
                   "; without the openvswitch kernel module use 'netdev'"
                   if self.datapath_type == "system" else ""))
        self._checked = True

    # --- watching (drivers/watch.py) ---

    def watch(self, watcher, sink) -> None:
        """From now on, report what others change of what this driver made, as Events:
        an LSI or a port removed from the database (lost), flows of an LSI added, changed
        or removed by another OpenFlow client (an OpenFlow 1.4 flow monitor on the LSI's
        connection; flows this driver changes are never reported)."""
        self._watcher, self._sink = watcher, sink
        self.db.idl.listener = self._row_gone
        with self._connect_lock:
            connections = list(self._bundlers.values())
        for connection in connections:
            try:
                connection.monitor(watcher, self._flows_changed)
            except CommandError as err:
                LOG.warning("cannot watch the flows of %s: %s", connection.bridge, err)

    def unwatch(self) -> None:
        self._sink = None
        if self._db is not None:
            self._db.idl.listener = None
        with self._connect_lock:
            connections = list(self._bundlers.values())
        for connection in connections:
            connection.unmonitor()
        self._watcher = None

    def watch_flows(self, lsi: str) -> None:
        """Watch the flows of lsi from now on (its connection opens now)."""
        if self._watcher is not None:
            self._bundler(lsi).monitor(self._watcher, self._flows_changed)

    def reconnect(self) -> None:
        """The database server was restarted: connect to it again now."""
        if self._db is not None:
            self._db.reconnect()

    def _row_gone(self, table: str, name: str) -> None:
        with self._removing_lock:
            if self._removing.get(name):
                return
        sink = self._sink
        if sink is not None:
            subject = watch.LSI if table == "Bridge" else watch.PORT
            sink(watch.Event(subject, name, watch.LOST,
                             "removed from the vSwitch by another client"))

    def _flows_changed(self, lsi: str, updates: list) -> None:
        sink = self._sink
        if sink is not None:
            detail = ", ".join("cookie 0x%x priority %d %s" % (cookie, priority, event)
                               for event, priority, cookie in updates[:3])
            if len(updates) > 3:
                detail += " and %d more" % (len(updates) - 3)
            sink(watch.Event(watch.FLOWS, lsi, watch.CHANGED,
                             "flows changed by another OpenFlow client: " + detail,
                             tuple(sorted({cookie for _, _, cookie in updates}))))

    def _removal(self, names, delta: int) -> None:
        """Count the rows this driver is about to delete (delta 1), or has (-1)."""
        with self._removing_lock:
            for name in names:
                count = self._removing.get(name, 0) + delta
                if count > 0:
                    self._removing[name] = count
                else:
                    self._removing.pop(name, None)

    def close(self) -> None:
        with self._connect_lock:
            bundlers, self._bundlers = self._bundlers, {}
        for connection in bundlers.values():
            connection.close()
        if self._db is not None:
            self._db.close()
            self._db = None

    def info(self) -> dict:
        def read(t):
            root = t.root
            return (_scalar(root.ovs_version, ""), sorted(root.datapath_types),
                    set(root.iface_types))
        version, datapath_types, iface_types = self.db.read(read)
        if not version:
            # ovs_version is written by the distribution's start script, not by vswitchd.
            first = self.appctl("version").splitlines()[0]
            version = first.rsplit(" ", 1)[-1]
        kinds = [k for k, type_ in PORT_KINDS.items() if k == "system" or type_ in iface_types]
        return {"kind": "ovs", "version": version, "datapath_type": self.datapath_type,
                "datapath_types": datapath_types, "port_technologies": kinds,
                "sap_types": list(SAP_TYPES), "tunnel_types": ["gre"] if "gre" in kinds else [],
                "max_name_length": validate.MAX_NAME_LENGTH}

    # --- helpers on the replica ---

    @staticmethod
    def _bridge(tables, name: str):
        bridge = tables.find("Bridge", name)
        if bridge is None:
            raise ResourceNotFound("no LSI %s" % name, resource=name)
        return bridge

    @staticmethod
    def _lsi_info(bridge) -> LsiInfo:
        return LsiInfo(name=bridge.name, datapath_id=_scalar(bridge.datapath_id, ""),
                       datapath_type=bridge.datapath_type,
                       external_ids=dict(bridge.external_ids))

    @staticmethod
    def _port_info(lsi: str, port) -> PortInfo:
        iface = port.interfaces[0] if port.interfaces else None
        ofport = _scalar(iface.ofport, -1) if iface is not None else -1
        kind = _KIND_OF_TYPE.get(iface.type, iface.type) if iface is not None else ""
        return PortInfo(lsi=lsi, name=port.name, ofport=ofport, kind=kind,
                        external_ids=dict(port.external_ids))

    def _ofports(self, lsi: str, names=None, timeout: float | None = None) -> dict:
        """name -> OpenFlow port number of the LSI's ports (its own: LOCAL): of all of
        them, or of those of names that are on the LSI (cheaper on a big LSI)."""
        def read(t):
            if names is None:
                ports = list(self._bridge(t, lsi).ports)
            else:
                ports = [p for p in self._named_ports(t, lsi, names) if p is not None]
            numbers = {lsi: openflow.LOCAL}
            for port in ports:
                if port.name != lsi and port.interfaces:
                    numbers[port.name] = _scalar(port.interfaces[0].ofport, -1)
            return numbers
        return self.db.read(read, timeout)

    @staticmethod
    def _insert_port(txn, tables, spec: _PortSpec):
        iface = txn.insert(tables.table("Interface"))
        iface.name = spec.name
        iface.type = PORT_KINDS[spec.kind]
        if spec.options:
            iface.options = spec.options
        if spec.ofport is not None:
            iface.ofport_request = spec.ofport
        if spec.mac is not None:
            iface.mac = spec.mac
        iface.external_ids = spec.external_ids
        port = txn.insert(tables.table("Port"))
        port.name = spec.name
        port.interfaces = [iface]
        port.external_ids = spec.external_ids
        return port

    @staticmethod
    def _spec_of(port) -> _PortSpec:
        """A port description (create_port's arguments as a dict), checked."""
        if not isinstance(port, dict):
            raise InvalidArgument("a port is described by a dict of create_port's arguments, "
                                  "not %r" % (port,))
        try:
            return _port_spec(**port)
        except TypeError:
            raise InvalidArgument("bad port description %r (keys: name, kind, options, "
                                  "external_ids, ofport)" % (port,)) from None

    def _check_netdevs(self, specs: list) -> None:
        wanted = [s.name for s in specs if s.kind == "system"]
        if not wanted:
            return
        missing = self.netlink.missing_links(wanted)
        if missing:
            raise ResourceNotFound("no network interface %s%s" % (
                ", ".join(missing), " in namespace %s" % self.netns if self.netns else ""),
                resource=missing[0])

    def _interface_errors(self, names: list) -> list[str]:
        """Problems vswitchd reported for freshly created interfaces."""
        def read(t):
            problems = []
            for name in names:
                iface = t.find("Interface", name)
                if iface is None:
                    problems.append("%s: gone" % name)
                    continue
                error = _scalar(iface.error)
                ofport = _scalar(iface.ofport, -1)
                if iface.type == "patch" and error and error.startswith("No usable peer"):
                    error = None        # the peer may come in a later call; it has its ofport
                if error or ofport is None or ofport <= 0:
                    problems.append("%s: %s" % (name, error or "no OpenFlow port number"))
            return problems
        return self.db.read(read)

    def _add_ports(self, lsi: str, specs: list, what: str) -> list[PortInfo]:
        """Create ports in one transaction; all or none (verified after vswitchd applied)."""
        self._add_placed([(lsi, spec) for spec in specs], what)
        return self._read_ports(lsi, [s.name for s in specs])

    def _add_placed(self, placed: list, what: str) -> None:
        """(lsi, spec) pairs, all in one transaction: vswitchd reconfigures once. All or
        none: if vswitchd rejects an interface, every port is removed again."""
        names = [spec.name for _, spec in placed]
        if len(set(names)) != len(names):
            raise InvalidArgument("port names repeat in one batch", resource=placed[0][0])
        self._check_netdevs([spec for _, spec in placed])
        if any(spec.kind not in ("system", "patch", "internal") for _, spec in placed):
            self.db.read(lambda t: self._check_kinds(t, placed))

        def build(txn, t):
            bridges = {lsi: self._bridge(t, lsi) for lsi, _ in placed}
            self._check_free(t, names)
            for lsi, spec in placed:
                bridges[lsi].addvalue("ports", self._insert_port(txn, t, spec))

        self.db.transact(build, what=what)
        problems = self._interface_errors(names)
        if problems:
            doomed: dict = {}
            for lsi, spec in placed:
                doomed.setdefault(lsi, []).append(spec.name)
            try:
                self._remove_placed(doomed, "undo " + what)
            except DriverError as err:
                LOG.error("could not remove ports after a failed %s: %s", what, err)
            raise CommandError("ovs-vswitchd could not add %s" % ", ".join(names),
                               resource=placed[0][0], detail="; ".join(problems))

    @classmethod
    def _check_kinds(cls, tables, placed: list) -> None:
        """NotSupported, naming the datapath, for a port kind the LSI's datapath or this
        ovs-vswitchd does not offer (a vhost-user or memif port without OVS-DPDK)."""
        offered = set(tables.root.iface_types)
        for lsi, spec in placed:
            datapath = cls._bridge(tables, lsi).datapath_type or "system"
            type_ = PORT_KINDS[spec.kind]
            if spec.kind in DPDK_KINDS and datapath != "netdev":
                raise NotSupported(
                    "port %s: %s ports need OVS-DPDK, on the netdev datapath; LSI %s has the "
                    "%s datapath" % (spec.name, spec.kind, lsi, datapath), resource=spec.name)
            if type_ and type_ not in offered:
                advice = "; %s" % DPDK_ADVICE if spec.kind in DPDK_KINDS else ""
                raise NotSupported(
                    "port %s: ovs-vswitchd offers no %s interfaces on the %s datapath of LSI "
                    "%s (it offers: %s)%s" % (spec.name, type_, datapath, lsi,
                                              ", ".join(sorted(offered)) or "none", advice),
                    resource=spec.name)

    def _read_ports(self, lsi: str, names: list) -> list[PortInfo]:
        def read(t):
            return [self._port_info(lsi, port) for port in self._ports_on(t, lsi, names)]
        return self.db.read(read)

    @staticmethod
    def _check_free(tables, names: list) -> None:
        """Port and Interface names are unique in OVSDB: refuse one that is taken."""
        clash = [n for n in names if tables.exists("Port", n) or tables.exists("Interface", n)]
        if clash:
            raise ResourceExists("port %s exists already" % ", ".join(clash),
                                 resource=clash[0])

    def _named_ports(self, tables, lsi: str, names) -> list:
        """The Port row called each of names, or None where the LSI has no such port."""
        bridge = self._bridge(tables, lsi)
        ports = [tables.find("Port", n) for n in names]
        if any(p is not None for p in ports):
            members = tables.port_uuids(bridge)
            ports = [p if p is not None and p.uuid in members else None for p in ports]
        return ports

    def _ports_on(self, tables, lsi: str, names) -> list:
        """The Port rows called names on the LSI, in order; ResourceNotFound if one is not."""
        ports = self._named_ports(tables, lsi, names)
        missing = [n for n, p in zip(names, ports) if p is None]
        if missing:
            raise ResourceNotFound("no port %s on LSI %s" % (", ".join(missing), lsi),
                                   resource=missing[0])
        return ports

    def _remove_ports(self, lsi: str, names: list, what: str) -> None:
        self._remove_placed({lsi: names}, what)

    def _remove_placed(self, doomed: dict, what: str) -> None:
        """lsi -> port names, all removed in one transaction; nothing if one is missing."""
        for lsi, names in doomed.items():
            if lsi in names:
                raise InvalidArgument("the LSI's own port %s goes with destroy_lsi" % lsi,
                                      resource=lsi)

        def build(txn, t):
            for lsi, names in doomed.items():
                bridge = self._bridge(t, lsi)
                for port in self._ports_on(t, lsi, list(names)):
                    bridge.delvalue("ports", port)
                    for iface in port.interfaces:
                        iface.delete()
                    port.delete()

        names = [name for names in doomed.values() for name in names]
        self._removal(names, 1)
        try:
            self.db.transact(build, what=what)
        finally:
            self._removal(names, -1)

    # --- LSIs ---

    def create_lsi(self, name: str, *, external_ids: dict | None = None,
                   ports: tuple = (), may_exist: bool = False,
                   local_port: bool = True) -> LsiInfo:
        """An OVS bridge: datapath_type as configured, OpenFlow13+14, fail_mode secure (no
        flow at all until apply_flows). ports: names of existing netdevs (system ports), or
        dicts of create_port arguments. may_exist: reuse the bridge, add the missing ports,
        merge external_ids; existing flows are left alone. local_port=False: no internal
        port named like the bridge (OVS makes one only because `add-br` asks for it)."""
        name = validate.name(name, "LSI name")
        ext = validate.external_ids(external_ids)
        specs = [_port_spec(p, "system", external_ids=ext) if isinstance(p, str)
                 else self._spec_of({"external_ids": ext, **p}) for p in ports]
        self._check_netdevs(specs)
        outcome = {}

        def build(txn, t):
            bridge = t.find("Bridge", name)
            if bridge is not None and not may_exist:
                raise ResourceExists("LSI %s exists already" % name, resource=name)
            outcome["created"] = bridge is None
            if bridge is None:
                if t.exists("Port", name):
                    raise ResourceExists("a port named %s exists already" % name, resource=name)
                bridge = txn.insert(t.table("Bridge"))
                bridge.name = name
                if local_port:
                    bridge.ports = [self._insert_port(txn, t,
                                                      _PortSpec(name, "internal", {}, ext))]
                bridge.external_ids = ext
                bridge.datapath_type = self.datapath_type
                bridge.protocols = PROTOCOLS
                bridge.fail_mode = "secure"
                bridge.other_config = {"disable-in-band": "true"}
                root = t.root
                root.verify("bridges")
                root.bridges = list(root.bridges) + [bridge]
                have = set()
            else:
                have = {p.name for p in bridge.ports}
                if ext:
                    bridge.external_ids = {**bridge.external_ids, **ext}
                if bridge.datapath_type != self.datapath_type:
                    bridge.datapath_type = self.datapath_type
                if list(bridge.protocols) != PROTOCOLS:
                    bridge.protocols = PROTOCOLS
                if _scalar(bridge.fail_mode) != "secure":
                    bridge.fail_mode = "secure"
                if dict(bridge.other_config).get("disable-in-band") != "true":
                    bridge.other_config = {**bridge.other_config, "disable-in-band": "true"}
            new = []
            for spec in specs:
                if spec.name in have:
                    continue
                if t.exists("Port", spec.name):
                    raise ResourceExists("port %s is on another LSI" % spec.name,
                                         resource=spec.name)
                new.append(self._insert_port(txn, t, spec))
            for port in new:
                bridge.addvalue("ports", port)
            outcome["added"] = [s.name for s in specs if s.name not in have]

        self.db.transact(build, what="create LSI %s" % name)
        local = [name] if outcome["created"] and local_port else []
        problems = self._interface_errors(local + outcome["added"])
        if problems:
            try:
                if outcome["created"]:
                    self.destroy_lsi(name)
                elif outcome["added"]:
                    self._remove_ports(name, outcome["added"], "undo create LSI %s" % name)
            except DriverError as err:
                LOG.error("could not undo a failed create_lsi %s: %s", name, err)
            raise CommandError("ovs-vswitchd could not set up LSI %s" % name, resource=name,
                               detail="; ".join(problems))
        return self.db.read(lambda t: self._lsi_info(self._bridge(t, name)))

    def destroy_lsi(self, name: str) -> None:
        """Remove the bridge with all its ports (and the OVS routes of tunnel endpoints on
        it; its flows go with it)."""
        endpoints = self.list_tunnel_endpoints(name)
        removing = set()

        def build(txn, t):
            bridge = self._bridge(t, name)
            rows = {name} | {port.name for port in bridge.ports}
            self._removal(rows - removing, 1)
            removing.update(rows)
            root = t.root
            root.verify("bridges")
            root.bridges = [b for b in root.bridges if b.name != name]
            for port in bridge.ports:
                for iface in port.interfaces:
                    iface.delete()
                port.delete()
            bridge.delete()

        with self._connect_lock:
            connection = self._bundlers.get(name)
        if connection is not None:
            connection.unmonitor()      # the bridge's flows go with it: not an event
        try:
            self.db.transact(build, what="destroy LSI %s" % name)
        except BaseException:
            if connection is not None and self._watcher is not None:
                connection.monitor(self._watcher, self._flows_changed, connect=False)
            raise
        finally:
            self._removal(removing, -1)
        with self._connect_lock:
            connection = self._bundlers.pop(name, None)
        if connection is not None:
            connection.close()
        for endpoint in endpoints:
            self._route(endpoint, add=False)

    def list_lsis(self, external_ids: dict | None = None) -> list[LsiInfo]:
        wanted = dict(external_ids or {})

        def read(t):
            return sorted((self._lsi_info(b) for b in t.rows("Bridge")
                           if wanted.items() <= dict(b.external_ids).items()),
                          key=lambda info: info.name)
        return self.db.read(read)

    # --- ports ---

    def create_port(self, lsi: str, name: str, kind: str = "system", *,
                    options: dict | None = None, external_ids: dict | None = None,
                    ofport: int | None = None) -> PortInfo:
        """See create_ports. options: internal/tap {"mac"}; patch {"peer"}; gre {"remote_ip",
        "local_ip", "key", "ttl"}. ofport: the OpenFlow port number to ask for."""
        return self.create_ports(lsi, [dict(name=name, kind=kind, options=options,
                                            external_ids=external_ids, ofport=ofport)])[0]

    def create_ports(self, lsi: str, ports: list[dict]) -> list[PortInfo]:
        """One OVSDB transaction; a system port's netdev must exist in the node namespace.
        If vswitchd rejects any interface, all are removed again and CommandError says why."""
        specs = [self._spec_of(port) for port in ports]
        if not specs:
            return []
        return self._add_ports(lsi, specs, "create %d port(s) on %s" % (len(specs), lsi))

    def destroy_port(self, lsi: str, name: str) -> None:
        self.destroy_ports(lsi, [name])

    def destroy_ports(self, lsi: str, names: list[str]) -> None:
        """One transaction; ResourceNotFound (and nothing removed) if one is missing."""
        if names:
            self._remove_ports(lsi, list(names), "destroy %d port(s) on %s" % (len(names), lsi))

    def list_ports(self, lsi: str) -> list[PortInfo]:
        """The LSI's ports, without its own (LOCAL) port, by name."""
        def read(t):
            return sorted((self._port_info(lsi, p) for p in self._bridge(t, lsi).ports
                           if p.name != lsi), key=lambda info: info.name)
        return self.db.read(read)

    def tag_ports(self, lsi: str, external_ids: dict) -> None:
        """Port and Interface external_ids: ovs-vswitchd does not monitor them, so the
        change is not waited for and costs it no reconfiguration (measured)."""
        if not external_ids:
            return
        names = list(external_ids)

        def build(t, tables):
            # By name only: port names are unique in the database, and reading the LSI's
            # port set to check membership costs ~10 ms per thousand ports.
            self._bridge(tables, lsi)
            for name in names:
                port = tables.find("Port", name)
                if port is None:
                    raise ResourceNotFound("no port %s on LSI %s" % (name, lsi), resource=name)
                ids = dict(external_ids[name])
                port.external_ids = ids
                for iface in port.interfaces:
                    iface.external_ids = ids
        self.db.transact(build, wait_applied=False,
                         what="tag %d port(s) on %s" % (len(names), lsi))

    # --- virtual links ---

    @staticmethod
    def link_port_names(name: str) -> tuple[str, str]:
        """The patch ports of virtual link `name`: (<name>-a on lsi_a, <name>-b on lsi_b)."""
        validate.name(name + "-a", "virtual link name %r (at most 13 characters)" % name)
        return name + "-a", name + "-b"

    def create_virtual_links(self, lsi_a: str, lsi_b: str, names: list[str], *,
                             external_ids: dict | None = None,
                             ofports: dict | None = None) -> list[VirtualLink]:
        """One patch-port pair per name, all in one transaction. ofports: port name ->
        OpenFlow port number to request (to recreate links exactly as they were)."""
        links, placed = self._link_ports(lsi_a, lsi_b, names, external_ids, ofports)
        if links:
            self._add_placed(placed, "create %d virtual link(s) %s-%s"
                             % (len(links), lsi_a, lsi_b))
        return links

    def _link_ports(self, lsi_a, lsi_b, names, external_ids, ofports) -> tuple:
        """The links named, and the (lsi, spec) of each of their patch ports."""
        ofports = dict(ofports or {})
        if lsi_a == lsi_b:
            raise InvalidArgument("a virtual link joins two different LSIs", resource=lsi_a)
        ext = validate.external_ids(external_ids)
        links, placed = [], []
        for name in names:
            port_a, port_b = self.link_port_names(name)
            links.append(VirtualLink(name=name, lsi_a=lsi_a, port_a=port_a, lsi_b=lsi_b,
                                     port_b=port_b))
            tags = {**ext, TAG_LINK: name}
            placed.append((lsi_a, _port_spec(port_a, "patch", {"peer": port_b}, tags,
                                             ofports.get(port_a))))
            placed.append((lsi_b, _port_spec(port_b, "patch", {"peer": port_a}, tags,
                                             ofports.get(port_b))))
        return links, placed

    def destroy_virtual_links(self, links: list[VirtualLink]) -> None:
        """Both ports of every link, in one transaction; nothing if one is missing."""
        if links:
            self._remove_placed(self._link_doomed(links),
                                "destroy %d virtual link(s)" % len(links))

    @staticmethod
    def _link_doomed(links, doomed: dict | None = None) -> dict:
        doomed = {} if doomed is None else doomed
        for link in links:
            for lsi, port in ((link.lsi_a, link.port_a), (link.lsi_b, link.port_b)):
                doomed.setdefault(lsi, []).append(port)
        return doomed

    def create_ports_and_links(self, lsi: str, ports: list[dict], lsi_a: str,
                               link_names: list[str], *, link_external_ids: dict | None = None,
                               link_ofports: dict | None = None) -> None:
        """create_ports and create_virtual_links in one transaction: one reconfiguration of
        ovs-vswitchd instead of two (each costs it a pass over every port)."""
        _, placed = self._link_ports(lsi_a, lsi, link_names, link_external_ids, link_ofports)
        placed = [(lsi, self._spec_of(port)) for port in ports] + placed
        if placed:
            self._add_placed(placed, "create %d port(s) and %d virtual link(s) on %s"
                             % (len(ports), len(link_names), lsi))

    def destroy_ports_and_links(self, lsi: str, names: list[str],
                                links: list[VirtualLink]) -> None:
        """destroy_ports and destroy_virtual_links in one transaction."""
        doomed = self._link_doomed(links, {lsi: list(names)} if names else {})
        if doomed:
            self._remove_placed(doomed, "destroy %d port(s) and %d virtual link(s) on %s"
                                % (len(names), len(links), lsi))

    def list_virtual_links(self, external_ids: dict | None = None) -> list[VirtualLink]:
        """The virtual links this driver made (found by their tags), for recovery."""
        wanted = dict(external_ids or {})

        def read(t):
            ends = {}
            for bridge in t.rows("Bridge"):
                for port in bridge.ports:
                    ext = dict(port.external_ids)
                    if TAG_LINK in ext and wanted.items() <= ext.items():
                        ends[port.name] = bridge.name
            links = []
            for port, lsi in sorted(ends.items()):
                if port.endswith("-a") and port[:-2] + "-b" in ends:
                    links.append(VirtualLink(name=port[:-2], lsi_a=lsi, port_a=port,
                                             lsi_b=ends[port[:-2] + "-b"],
                                             port_b=port[:-2] + "-b"))
            return links
        return self.db.read(read)

    # --- service access points ---

    def create_sap(self, lsi: str, name: str, sap_type: str, params: dict, *,
                   external_ids: dict | None = None) -> PortInfo | None:
        """interface / vlan (params if_name, vlan_id): the NIC's port on LSI-0 (lsi), nothing
        created; the VLAN tag is pushed and popped by the caller's flows on LSI-0.
        gre (local_ip, remote_ip, key, ttl): a gre port on lsi; local_ip must be the address
        of a tunnel endpoint made by create_tunnel_endpoint.
        host-stack (ipv4_address, prefix_length, mac_address): an internal port `name` on
        lsi, a netdev of the node namespace with that address and MAC. dhcp is refused.
        gre and host-stack accept ofport: the OpenFlow port number to request."""
        p = _params(params)
        if sap_type in ("interface", "vlan"):
            if_name = validate.name(p.get("if_name"), "if_name")
            if sap_type == "vlan":
                validate.integer(p.get("vlan_id"), 1, 4094, "vlan_id")
            ports = {info.name: info for info in self.list_ports(lsi)}
            if if_name not in ports:
                raise ResourceNotFound("interface %s is not a port of LSI %s" % (if_name, lsi),
                                       resource=if_name)
            return ports[if_name]
        if sap_type == "gre":
            options = {k: p[k] for k in _GRE_OPTIONS if p.get(k) is not None}
            for required in ("local_ip", "remote_ip", "key"):
                if required not in options:
                    raise InvalidArgument("a gre SAP needs %s" % required, resource=name)
            spec = _port_spec(name, "gre", options, external_ids, p.get("ofport"))
            local_ip = spec.options["local_ip"]
            if not any(ep.ip == local_ip for ep in self.list_tunnel_endpoints()):
                raise ResourceNotFound("no tunnel endpoint has the address %s; "
                                       "create_tunnel_endpoint first" % local_ip,
                                       resource=name)
            return self._add_ports(lsi, [spec], "create gre SAP %s" % name)[0]
        if sap_type == "host-stack":
            if p.get("dhcp"):
                raise InvalidArgument("host-stack SAP %s: dhcp is not supported by the ovs "
                                      "driver; give ipv4_address and prefix_length" % name,
                                      resource=name)
            address = validate.ipv4(p.get("ipv4_address"), "ipv4_address")
            prefix_length = validate.integer(p.get("prefix_length", 24), 0, 32,
                                             "prefix_length")
            options = {}
            if p.get("mac_address"):
                options["mac"] = p["mac_address"]
            spec = _port_spec(name, "internal", options, external_ids, p.get("ofport"))
            info = self._add_ports(lsi, [spec], "create host-stack SAP %s" % name)[0]
            try:
                self.netlink.set_address(name, address, prefix_length)
            except DriverError:
                self._remove_ports(lsi, [name], "undo host-stack SAP %s" % name)
                raise
            return info
        raise InvalidArgument("unknown SAP type %r (known: %s)" % (sap_type,
                                                                    ", ".join(SAP_TYPES)),
                              resource=name)

    def restore_sap(self, lsi: str, name: str, sap_type: str, params: dict) -> None:
        """host-stack: the internal port's address (ovs-vswitchd makes the port's netdev
        again, without it, when it restarts)."""
        if sap_type == "host-stack":
            p = _params(params)
            self.netlink.set_address(name, validate.ipv4(p.get("ipv4_address"),
                                                         "ipv4_address"),
                                     validate.integer(p.get("prefix_length", 24), 0, 32,
                                                      "prefix_length"))

    def destroy_sap(self, lsi: str, name: str, sap_type: str) -> None:
        """gre and host-stack: remove the port (the address goes with it); interface and
        vlan: nothing (the NIC stays on LSI-0; the caller removes its flows)."""
        if sap_type in ("interface", "vlan"):
            return
        if sap_type in ("gre", "host-stack"):
            self._remove_ports(lsi, [name], "destroy %s SAP %s" % (sap_type, name))
            return
        raise InvalidArgument("unknown SAP type %r" % sap_type, resource=name)

    # --- tunnel endpoints ---

    def create_tunnel_endpoint(self, lsi: str, name: str, ip: str, prefix_length: int,
                               nic: str, *, cookie: int, priority: int = TUNNEL_PRIORITY,
                               mac: str | None = None, external_ids: dict | None = None,
                               may_exist: bool = False) -> TunnelEndpoint:
        """Give the node the tunnel address ip/prefix_length, reached through nic.

        1. an internal port `name` on lsi (LSI-0) with that address, in the node namespace;
        2. the OVS route ip-network/prefix_length via that port (ovs/route/add), so that
           tunnel ports find it; ovs-vswitchd answers and learns ARP through it;
        3. on lsi, with `cookie` and `priority`, one bundle of three flows:
           in_port=name -> output:nic; in_port=nic,arp,arp_tpa=ip -> output:name;
           in_port=nic,ip,nw_dst=ip -> output:name.
        Keep `cookie` for this endpoint alone on lsi. may_exist: re-apply 1-3 on an existing
        endpoint (after an ovs-vswitchd restart the address, route and flows are gone)."""
        name = validate.name(name, "tunnel endpoint name")
        nic = validate.name(nic, "nic")
        ip = validate.ipv4(ip, "tunnel endpoint address")
        prefix_length = validate.integer(prefix_length, 1, 32, "prefix_length")
        cookie = validate.integer(cookie, 0, openflow.MAX_COOKIE, "cookie")
        priority = validate.integer(priority, 1, openflow.MAX_PRIORITY, "priority")
        tags = {**validate.external_ids(external_ids),
                TAG_TUNNEL_ADDRESS: "%s/%d" % (ip, prefix_length), TAG_TUNNEL_NIC: nic,
                TAG_TUNNEL_COOKIE: "0x%x" % cookie, TAG_TUNNEL_PRIORITY: str(priority)}
        ports = {p.name: p for p in self.list_ports(lsi)}
        if nic not in ports:
            raise ResourceNotFound("%s is not a port of LSI %s" % (nic, lsi), resource=nic)
        created = False
        if name in ports:
            if not may_exist:
                raise ResourceExists("port %s exists already" % name, resource=name)
            if ports[name].kind != "internal":
                raise ResourceExists("port %s exists and is not internal" % name, resource=name)
        else:
            options = {"mac": mac} if mac else {}
            self._add_ports(lsi, [_port_spec(name, "internal", options, tags)],
                            "create tunnel endpoint %s" % name)
            created = True
        endpoint = TunnelEndpoint(lsi=lsi, name=name, ip=ip, prefix_length=prefix_length,
                                  nic=nic, cookie=cookie, priority=priority,
                                  ofport=self._ofports(lsi)[name])
        try:
            if not created:
                self._set_port_tags(lsi, name, tags)
            self.netlink.set_address(name, ip, prefix_length)
            self._route(endpoint, add=True)
            self.apply_flows(lsi, add=self._endpoint_flows(endpoint), remove_cookies=[cookie])
        except DriverError:
            if created:
                self._undo_endpoint(endpoint)
            raise
        return endpoint

    def destroy_tunnel_endpoint(self, lsi: str, name: str) -> None:
        """Remove the endpoint's flows (its cookie), its OVS route and its port."""
        endpoint = next((ep for ep in self.list_tunnel_endpoints(lsi) if ep.name == name), None)
        if endpoint is None:
            raise ResourceNotFound("no tunnel endpoint %s on LSI %s" % (name, lsi),
                                   resource=name)
        self.apply_flows(lsi, remove_cookies=[endpoint.cookie])
        self._route(endpoint, add=False)
        self._remove_ports(lsi, [name], "destroy tunnel endpoint %s" % name)

    def list_tunnel_endpoints(self, lsi: str | None = None) -> list[TunnelEndpoint]:
        def read(t):
            found = []
            for bridge in t.rows("Bridge"):
                if lsi is not None and bridge.name != lsi:
                    continue
                for port in bridge.ports:
                    ext = dict(port.external_ids)
                    if TAG_TUNNEL_ADDRESS not in ext:
                        continue
                    ip, _, plen = ext[TAG_TUNNEL_ADDRESS].partition("/")
                    found.append(TunnelEndpoint(
                        lsi=bridge.name, name=port.name, ip=ip, prefix_length=int(plen),
                        nic=ext.get(TAG_TUNNEL_NIC, ""),
                        cookie=int(ext.get(TAG_TUNNEL_COOKIE, "0"), 0),
                        priority=int(ext.get(TAG_TUNNEL_PRIORITY, str(TUNNEL_PRIORITY))),
                        ofport=_scalar(port.interfaces[0].ofport, -1)
                        if port.interfaces else -1))
            return sorted(found, key=lambda ep: (ep.lsi, ep.name))
        return self.db.read(read)

    @staticmethod
    def _endpoint_flows(ep: TunnelEndpoint) -> list[Flow]:
        return [
            Flow(ep.cookie, ep.priority, (("in_port", ep.name),),
                 (Action("output", ep.nic),)),
            Flow(ep.cookie, ep.priority, (("in_port", ep.nic), ("dl_type", openflow.ETH_ARP),
                                          ("nw_dst", ep.ip)),
                 (Action("output", ep.name),)),
            Flow(ep.cookie, ep.priority, (("in_port", ep.nic), ("dl_type", openflow.ETH_IPV4),
                                          ("nw_dst", ep.ip)),
                 (Action("output", ep.name),)),
        ]

    def _route(self, ep: TunnelEndpoint, *, add: bool) -> None:
        network = validate.ipv4_prefix("%s/%d" % (ep.ip, ep.prefix_length))
        if "/" not in network:
            network += "/32"
        if add:
            self._wait_address_seen(ep)
            self.appctl("ovs/route/add", network, ep.name)
        else:
            try:
                self.appctl("ovs/route/del", network)
            except CommandError as err:
                LOG.warning("OVS route %s of tunnel endpoint %s: %s", network, ep.name, err)

    def _wait_address_seen(self, ep: TunnelEndpoint) -> None:
        """Until ovs-vswitchd has read the endpoint's new address from rtnetlink (its local
        route is in `ovs/route/show`), for at most self.timeout.

        A route's source address comes from a cache of the interfaces' addresses that this
        news refreshes, and ovs-vswitchd reads the news in its main loop after the unixctl
        requests of the same round: while it is busy (a bridge reconfiguration, a loaded
        machine), a route added right after the address is refused ("Error while
        inserting route")."""
        local = "Cached: %s/32 dev %s SRC %s local" % (ep.ip, ep.name, ep.ip)
        deadline = time.monotonic() + self.timeout
        while local not in (line.strip() for line in
                            self.appctl("ovs/route/show").splitlines()):
            if time.monotonic() > deadline:
                LOG.warning("ovs-vswitchd has not seen the address %s of %s after %g s",
                            ep.ip, ep.name, self.timeout)
                return
            time.sleep(0.005)

    def _set_port_tags(self, lsi: str, name: str, tags: dict) -> None:
        def build(txn, t):
            port, = self._ports_on(t, lsi, [name])
            port.external_ids = {**port.external_ids, **tags}
        self.db.transact(build, wait_applied=False, what="tag %s" % name)

    def _undo_endpoint(self, ep: TunnelEndpoint) -> None:
        for step in (lambda: self.apply_flows(ep.lsi, remove_cookies=[ep.cookie]),
                     lambda: self._route(ep, add=False),
                     lambda: self._remove_ports(ep.lsi, [ep.name], "undo endpoint")):
            try:
                step()
            except DriverError as err:
                LOG.error("undo of tunnel endpoint %s: %s", ep.name, err)

    # --- control ---

    def _openflow(self, lsi: str) -> OpenFlowClient:
        return OpenFlowClient(self.run_dir or system_run_dir(), lsi)

    def apply_flows(self, lsi: str, add: list[Flow] = (), remove_cookies: list[int] = ()) -> None:
        """One OpenFlow bundle: delete every flow with each cookie (full mask), then add.
        Every flow is validated and its port names mapped before anything is sent; the
        switch commits all or nothing."""
        if not add and not remove_cookies:
            return
        add = list(add)
        ofports = self._ofports(lsi, openflow.port_names(add))
        connection = self._bundler(lsi)
        messages = encode_bundle(add, list(remove_cookies), ofports, connection.next_xids())
        if messages is not None:
            connection.bundle(messages)
            return
        lines = openflow.bundle_lines(add, list(remove_cookies), ofports)
        self._openflow(lsi).bundle(lines)

    def _bundler(self, lsi: str) -> OpenFlowConnection:
        with self._connect_lock:
            connection = self._bundlers.get(lsi)
            if connection is None:
                connection = self._bundlers[lsi] = OpenFlowConnection(
                    self.run_dir or system_run_dir(), lsi, timeout=60.0)
                if self._watcher is not None:
                    connection.monitor(self._watcher, self._flows_changed, connect=False)
            return connection

    # Counters are read for <get>, which must answer while a transaction waits for a
    # restarted database server: without the port names for this long, they fail.
    COUNTERS_WAIT = 0.2

    def _names(self, lsi: str, timeout: float | None = None) -> dict:
        return {number: name for name, number in self._ofports(lsi, timeout=timeout).items()}

    def dump_flows(self, lsi: str) -> list[Flow]:
        """The LSI's flows in canonical form (openflow.canonical), ports by name."""
        names = self._names(lsi)
        return [e.flow for e in openflow.parse_flows(self._openflow(lsi).dump_flows(), names)]

    def flow_stats(self, lsi: str) -> dict[int, tuple[int, int]]:
        names = self._names(lsi, self.COUNTERS_WAIT)
        stats: dict[int, tuple[int, int]] = {}
        for entry in openflow.parse_flows(self._openflow(lsi).dump_flows(), names):
            packets, octets = stats.get(entry.flow.cookie, (0, 0))
            stats[entry.flow.cookie] = (packets + entry.packets, octets + entry.bytes)
        return stats

    def port_stats(self, lsi: str) -> dict[str, dict]:
        """Live OpenFlow port counters (rx/tx packets, bytes, dropped, errors) per port name,
        without the LSI's own port; a counter the port does not keep is None."""
        names = self._names(lsi, self.COUNTERS_WAIT)
        stats = openflow.parse_port_stats(self._openflow(lsi).dump_ports(), names)
        stats.pop(lsi, None)
        return stats
