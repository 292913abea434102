"""OpenFlow 1.4 bundles over a persistent connection to a bridge's management socket.

ovs-ofctl costs a process, a connection, the hello and four round trips to vswitchd per
bundle; on a userspace-datapath node of 3,000 ports each round trip waits for a pass of
vswitchd's main loop, and a one-flow bundle took 35-40 ms, a bare `ovs-ofctl probe` 22-29.
Here the connection stays open and a bundle is two round trips:

  1. OPEN, every flow-mod as a BUNDLE_ADD, BARRIER: sent at once; an error on any of them
     (the switch rejects a message it cannot decode, which a commit would otherwise leave
     out of the bundle) means DISCARD;
  2. COMMIT: the switch applies every flow-mod or none (flags ATOMIC | ORDERED), and
     answers COMMIT_REPLY or an error.

The messages are encoded here from canonical flows (openflow.canonical) as ovs-ofctl would
encode the text of openflow.flow_mod; encode_bundle returns None for a flow it does not
speak, and the caller uses ovs-ofctl for that bundle. A dead connection (the bridge was
deleted and made again, vswitchd restarted) is opened again once, before anything of the
bundle reached the switch or after it was discarded with the connection.

A watched connection (monitor()) also carries an OpenFlow 1.4 flow monitor: the switch
reports every flow another client adds, changes or removes on the bridge, and never the
connection's own bundles; a watcher's thread reads those reports while no bundle runs,
and a bundle hands the ones it reads on its way to the same listener.
"""

import ipaddress
import itertools
import logging
import os
import socket
import struct
import threading

from ..errors import CommandError
from . import openflow, validate
from .base import Flow

LOG = logging.getLogger(__name__)

OFP_VERSION = 0x05                       # OpenFlow 1.4: the first with bundles
OFPT_HELLO, OFPT_ERROR, OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY = 0, 1, 2, 3
OFPT_FLOW_MOD, OFPT_BARRIER_REQUEST, OFPT_BARRIER_REPLY = 14, 20, 21
OFPT_BUNDLE_CONTROL, OFPT_BUNDLE_ADD_MESSAGE = 33, 34
OFPT_MULTIPART_REQUEST, OFPT_MULTIPART_REPLY = 18, 19
OFPMP_FLOW_MONITOR = 16
OFPFMF_ADD, OFPFMF_REMOVED, OFPFMF_MODIFY = 2, 4, 8
OFPFMC_ADD = 0
# flow update events (ofp_flow_update_event)
_FLOW_EVENTS = {1: "added", 2: "removed", 3: "modified"}
OFPBCT_OPEN_REQUEST, OFPBCT_COMMIT_REQUEST, OFPBCT_COMMIT_REPLY = 0, 4, 5
OFPBCT_DISCARD_REQUEST = 6
OFPBF_ATOMIC, OFPBF_ORDERED = 1, 2
OFPFC_ADD, OFPFC_DELETE = 0, 3
OFPTT_ALL = 0xFF
OFPP_IN_PORT, OFPP_LOCAL, OFPP_ANY = 0xFFFFFFF8, 0xFFFFFFFE, 0xFFFFFFFF
OFPG_ANY = 0xFFFFFFFF
NO_BUFFER = 0xFFFFFFFF
OFPIT_APPLY_ACTIONS = 4
OFPAT_OUTPUT, OFPAT_PUSH_VLAN, OFPAT_POP_VLAN = 0, 17, 18
OFPAT_DEC_NW_TTL, OFPAT_SET_FIELD = 24, 25
ETH_8021Q = 0x8100
HEADER = struct.Struct("!BBHI")

# OXM basic class fields: name -> (field number, value length).
OXM = {"in_port": (0, 4), "eth_dst": (3, 6), "eth_src": (4, 6), "eth_type": (5, 2),
       "vlan_vid": (6, 2), "vlan_pcp": (7, 1), "ip_dscp": (8, 1), "ip_proto": (10, 1),
       "ipv4_src": (11, 4), "ipv4_dst": (12, 4), "tcp_src": (13, 2), "tcp_dst": (14, 2),
       "udp_src": (15, 2), "udp_dst": (16, 2), "sctp_src": (17, 2), "sctp_dst": (18, 2),
       "arp_spa": (22, 4), "arp_tpa": (23, 4), "ipv6_src": (26, 16), "ipv6_dst": (27, 16)}
_L4 = {openflow.IP_TCP: "tcp", openflow.IP_UDP: "udp", openflow.IP_SCTP: "sctp"}

# Error types and the codes worth naming in a message (OpenFlow 1.4, 7.5.4).
_ERROR_TYPES = {0: "HELLO_FAILED", 1: "BAD_REQUEST", 2: "BAD_ACTION", 3: "BAD_INSTRUCTION",
                4: "BAD_MATCH", 5: "FLOW_MOD_FAILED", 17: "BUNDLE_FAILED"}
_ERROR_CODES = {(5, 1): "OFPFMFC_TABLE_FULL", (5, 2): "OFPFMFC_BAD_TABLE_ID",
                (5, 3): "OFPFMFC_OVERLAP", (2, 4): "OFPBAC_BAD_OUT_PORT",
                (2, 9): "OFPBAC_BAD_OUT_GROUP",
                (17, 11): "OFPBFC_MSG_CONFLICT", (17, 13): "OFPBFC_MSG_FAILED",
                (17, 14): "OFPBFC_TIMEOUT"}


# --- encoding ---

def _oxm(name: str, value: bytes, mask: bytes | None = None) -> bytes:
    field, length = OXM[name]
    if mask is not None and mask == b"\xff" * length:
        mask = None
    header = (0x8000 << 16) | (field << 9) | ((mask is not None) << 8) | (
        length * (2 if mask is not None else 1))
    return struct.pack("!I", header) + value + (mask or b"")


def _mac(text: str) -> tuple:
    value, _, mask = text.partition("/")
    return (bytes.fromhex(value.replace(":", "")),
            bytes.fromhex(mask.replace(":", "")) if mask else None)


def _prefix(text: str) -> tuple:
    network = ipaddress.ip_network(text, strict=False)
    return network.network_address.packed, network.netmask.packed


def _port(name, ofports) -> int:
    number = openflow.port_number(name, ofports)
    return OFPP_LOCAL if number == openflow.LOCAL else number


def _match(flow: Flow, ofports) -> bytes | None:
    """The OXM fields of a canonical flow's match, prerequisites first; None when a value
    is beyond what this encoder speaks."""
    match = dict(flow.match)
    dl_type = match.get("dl_type")
    fields = []
    if "in_port" in match:
        fields.append(_oxm("in_port", struct.pack("!I", _port(match["in_port"], ofports))))
    if "dl_type" in match:
        fields.append(_oxm("eth_type", struct.pack("!H", dl_type)))
    for field, oxm in (("dl_src", "eth_src"), ("dl_dst", "eth_dst")):
        if field in match:
            fields.append(_oxm(oxm, *_mac(match[field])))
    if "dl_vlan" in match:
        fields.append(_oxm("vlan_vid", struct.pack("!H", openflow.OFPVID_PRESENT
                                                   | match["dl_vlan"])))
    if "vlan_tci" in match:
        value, _, mask = match["vlan_tci"].partition("/")
        value, mask = int(value, 16), int(mask, 16) if mask else 0xFFFF
        if mask & ~0x1FFF:
            return None                   # the PCP bits: left to ovs-ofctl
        fields.append(_oxm("vlan_vid", struct.pack("!H", value & mask),
                           struct.pack("!H", mask)))
    if "dl_vlan_pcp" in match:
        fields.append(_oxm("vlan_pcp", struct.pack("!B", match["dl_vlan_pcp"])))
    if "ip_dscp" in match:
        fields.append(_oxm("ip_dscp", struct.pack("!B", match["ip_dscp"])))
    if "nw_proto" in match:
        fields.append(_oxm("ip_proto", struct.pack("!B", match["nw_proto"])))
    arp = dl_type == openflow.ETH_ARP
    for field, oxm in (("nw_src", "arp_spa" if arp else "ipv4_src"),
                       ("nw_dst", "arp_tpa" if arp else "ipv4_dst"),
                       ("ipv6_src", "ipv6_src"), ("ipv6_dst", "ipv6_dst")):
        if field in match:
            fields.append(_oxm(oxm, *_prefix(match[field])))
    for field, side in (("tp_src", "src"), ("tp_dst", "dst")):
        if field in match:
            fields.append(_oxm("%s_%s" % (_L4[match["nw_proto"]], side),
                               struct.pack("!H", match[field])))
    body = b"".join(fields)
    length = 4 + len(body)
    return struct.pack("!HH", 1, length) + body + b"\0" * (-length % 8)


def _set_field(name: str, value: bytes) -> bytes:
    oxm = _oxm(name, value)
    length = 4 + len(oxm)
    return struct.pack("!HH", OFPAT_SET_FIELD, length + (-length % 8)) + oxm + \
        b"\0" * (-length % 8)


def _output(port: int) -> bytes:
    return struct.pack("!HHIH6x", OFPAT_OUTPUT, 16, port, 0)


def _actions(flow: Flow, ofports) -> bytes:
    out = []
    for action in flow.actions:
        kind, arg = action.kind, action.arg
        if kind == "output":
            out.append(_output(_port(arg, ofports)))
        elif kind == "in_port":
            out.append(_output(OFPP_IN_PORT))
        elif kind == "push_vlan":
            out.append(struct.pack("!HHH2x", OFPAT_PUSH_VLAN, 8, ETH_8021Q))
            out.append(_set_field("vlan_vid", struct.pack("!H", openflow.OFPVID_PRESENT | arg)))
        elif kind == "pop_vlan":
            out.append(struct.pack("!HH4x", OFPAT_POP_VLAN, 8))
        elif kind == "dec_ttl":
            out.append(struct.pack("!HH4x", OFPAT_DEC_NW_TTL, 8))
        elif kind in ("set_eth_src", "set_eth_dst"):
            out.append(_set_field(kind[4:], _mac(arg)[0]))
        elif kind in ("set_ipv4_src", "set_ipv4_dst"):
            out.append(_set_field(kind[4:], ipaddress.IPv4Address(arg).packed))
        # drop: no action at all
    return b"".join(out)


def _message(kind: int, xid: int, body: bytes) -> bytes:
    return HEADER.pack(OFP_VERSION, kind, HEADER.size + len(body), xid) + body


def flow_mod_add(flow: Flow, ofports, xid: int) -> bytes | None:
    """OFPT_FLOW_MOD adding a flow (validated, made canonical, ports mapped), as ovs-ofctl
    encodes `add <openflow.flow_mod text>`; None when beyond this encoder."""
    flow = openflow.canonical(flow)
    match = _match(flow, ofports)
    if match is None:
        return None
    actions = _actions(flow, ofports)
    instructions = struct.pack("!HH4x", OFPIT_APPLY_ACTIONS, 8 + len(actions)) + actions \
        if actions else b""
    body = struct.pack("!QQBBHHHIIIHH", flow.cookie, 0, 0, OFPFC_ADD, 0, 0, flow.priority,
                       NO_BUFFER, OFPP_ANY, OFPG_ANY, 0, 0)
    return _message(OFPT_FLOW_MOD, xid, body + match + instructions)


def flow_mod_delete_cookie(cookie: int, xid: int) -> bytes:
    """OFPT_FLOW_MOD deleting every flow of any table with exactly this cookie
    (`delete cookie=0x../-1`)."""
    body = struct.pack("!QQBBHHHIIIHH", cookie, 0xFFFFFFFFFFFFFFFF, OFPTT_ALL, OFPFC_DELETE,
                       0, 0, 0, NO_BUFFER, OFPP_ANY, OFPG_ANY, 0, 0)
    return _message(OFPT_FLOW_MOD, xid, body + struct.pack("!HH4x", 1, 4))


def encode_bundle(add: list, remove_cookies: list, ofports, xids) -> list | None:
    """The flow-mods of one bundle, removals first (openflow.bundle_lines' order), each
    with the next xid of xids; None when some flow is beyond this encoder."""
    messages = [flow_mod_delete_cookie(validate.integer(
        c, 0, openflow.MAX_COOKIE, "cookie"), next(xids)) for c in remove_cookies]
    for flow in add:
        message = flow_mod_add(flow, ofports, next(xids))
        if message is None:
            return None
        messages.append(message)
    return messages


def _bundle_control(kind: int, bundle_id: int, xid: int) -> bytes:
    return _message(OFPT_BUNDLE_CONTROL, xid,
                    struct.pack("!IHH", bundle_id, kind, OFPBF_ATOMIC | OFPBF_ORDERED))


def _bundle_add(bundle_id: int, inner: bytes) -> bytes:
    # The inner message's xid is the BUNDLE_ADD's own (the switch checks it).
    xid = HEADER.unpack_from(inner)[3]
    return _message(OFPT_BUNDLE_ADD_MESSAGE, xid,
                    struct.pack("!IHH", bundle_id, 0, OFPBF_ATOMIC | OFPBF_ORDERED) + inner)


def flow_monitor_request(xid: int, monitor_id: int = 1) -> bytes:
    """OFPMP_FLOW_MONITOR: every flow of every table that another client adds, changes or
    removes, with its cookie."""
    request = struct.pack("!IIIHBB", monitor_id, OFPP_ANY, OFPG_ANY,
                          OFPFMF_ADD | OFPFMF_REMOVED | OFPFMF_MODIFY, OFPTT_ALL, OFPFMC_ADD)
    return _message(OFPT_MULTIPART_REQUEST, xid, struct.pack("!HH4x", OFPMP_FLOW_MONITOR, 0)
                    + request + struct.pack("!HH4x", 1, 4))


def flow_updates(body: bytes) -> list[tuple]:
    """(event, priority, cookie) of each full update in a flow monitor reply's body (the
    multipart header included); event is added, removed or modified."""
    kind, = struct.unpack_from("!H", body)
    if kind != OFPMP_FLOW_MONITOR:
        return []
    out = []
    offset = 8
    while offset + 4 <= len(body):
        length, event = struct.unpack_from("!HH", body, offset)
        if length < 4:
            break
        if event in _FLOW_EVENTS and offset + 24 <= len(body):
            priority, = struct.unpack_from("!H", body, offset + 10)
            cookie, = struct.unpack_from("!Q", body, offset + 16)
            out.append((_FLOW_EVENTS[event], priority, cookie))
        offset += length
    return out


def describe_error(body: bytes) -> str:
    kind, code = struct.unpack_from("!HH", body)
    name = _ERROR_CODES.get((kind, code))
    return name or "OpenFlow error type %s code %d" % (_ERROR_TYPES.get(kind, kind), code)


# --- the connection ---

class _Reset(Exception):
    """The connection died: nothing of what was sent is in effect."""


class OpenFlowConnection:
    """One bridge's management socket, kept open; bundle() is thread-safe."""

    def __init__(self, run_dir: str, bridge: str, timeout: float = 60.0):
        self.bridge = bridge
        self.path = os.path.join(run_dir, "%s.mgmt" % bridge)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._lock = threading.Lock()
        self._xids = itertools.count(1)
        self._watcher = None           # monitor(): reads the flow monitor's reports
        self._listener = None          # listener(bridge, [(event, priority, cookie)])
        self._monitored = False        # the switch monitors flows for this socket

    def close(self) -> None:
        with self._lock:
            self._drop()
            self._watcher = self._listener = None

    def _drop(self) -> None:
        if self._sock is not None:
            if self._watcher is not None:
                self._watcher.discard(self._sock.fileno())
            self._sock.close()
        self._sock, self._buffer, self._monitored = None, b"", False

    # --- the flow monitor ---

    def monitor(self, watcher, listener, connect: bool = True) -> None:
        """From now on, listener(bridge, updates) on the watcher's thread whenever another
        client changes flows of the bridge (updates: (event, priority, cookie) each). The
        connection is opened now if it is not (CommandError when the bridge is not there),
        or with connect=False by the next bundle."""
        with self._lock:
            self._watcher, self._listener = watcher, listener
            if self._sock is None:
                if not connect:
                    return
                self._connect()
            elif not self._monitored:
                self._send(flow_monitor_request(self._xid()))
                self._monitored = True
            self._watch()

    def unmonitor(self) -> None:
        """No more reports (the switch's are dropped from now on)."""
        with self._lock:
            if self._watcher is not None and self._sock is not None:
                self._watcher.discard(self._sock.fileno())
            self._watcher = self._listener = None

    def _watch(self) -> None:
        if self._watcher is not None and self._sock is not None:
            self._watcher.add(self._sock.fileno(), self._readable)

    def _readable(self) -> None:
        """On the watcher's thread: what the switch sent while no bundle runs."""
        if not self._lock.acquire(blocking=False):
            return                      # a bundle runs: it reads (its fd is not watched)
        try:
            if self._sock is None:
                return
            self._sock.setblocking(False)
            try:
                while True:
                    try:
                        chunk = self._sock.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        chunk = b""
                    if not chunk:
                        LOG.info("the OpenFlow connection to %s was closed", self.bridge)
                        self._drop()
                        return
                    self._buffer += chunk
            finally:
                if self._sock is not None:
                    self._sock.settimeout(self.timeout)
            self._unsolicited()
        except _Reset:
            pass                        # dropped: the next bundle connects again
        finally:
            self._lock.release()

    def _unsolicited(self) -> None:
        """Handle the complete messages in the buffer: flow monitor reports go to the
        listener, echo requests are answered, the rest (late answers) is dropped."""
        if self._sock is None:
            self._buffer = b""
            return
        while len(self._buffer) >= HEADER.size and \
                len(self._buffer) >= HEADER.unpack_from(self._buffer)[2]:
            header = HEADER.unpack_from(self._buffer)
            body = self._buffer[HEADER.size:header[2]]
            self._buffer = self._buffer[header[2]:]
            if header[1] == OFPT_ECHO_REQUEST:
                self._send(_message(OFPT_ECHO_REPLY, header[3], body))
            else:
                self._report(header, body)

    def _report(self, header, body) -> None:
        if header[1] != OFPT_MULTIPART_REPLY or self._listener is None:
            return
        updates = flow_updates(body)
        if updates:
            self._listener(self.bridge, updates)

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise CommandError("cannot connect to %s: %s" % (self.path, exc),
                               resource=self.bridge) from None
        self._sock, self._buffer = sock, b""
        # version bitmap hello element: OpenFlow 1.4 only
        self._send(_message(OFPT_HELLO, self._xid(), struct.pack("!HHI", 1, 8, 1 << OFP_VERSION)))
        version, kind, _, _ = self._receive()[0]
        if kind != OFPT_HELLO:
            raise CommandError("%s answered the hello with message type %d"
                               % (self.path, kind), resource=self.bridge)
        if self._watcher is not None:
            self._send(flow_monitor_request(self._xid()))
            self._monitored = True

    def _xid(self) -> int:
        return next(self._xids) & 0xFFFFFFFF or next(self._xids)

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self._drop()
            raise _Reset(str(exc)) from None

    def _receive(self) -> tuple:
        """The next message but echo requests (answered): ((version, type, length, xid),
        body)."""
        while True:
            while len(self._buffer) < HEADER.size or \
                    len(self._buffer) < HEADER.unpack_from(self._buffer)[2]:
                try:
                    chunk = self._sock.recv(65536)
                except socket.timeout:
                    self._drop()
                    raise CommandError("%s did not answer within %g s"
                                       % (self.path, self.timeout), resource=self.bridge)
                except OSError as exc:
                    self._drop()
                    raise _Reset(str(exc)) from None
                if not chunk:
                    self._drop()
                    raise _Reset("closed by the switch")
                self._buffer += chunk
            header = HEADER.unpack_from(self._buffer)
            body = self._buffer[HEADER.size:header[2]]
            self._buffer = self._buffer[header[2]:]
            if header[1] == OFPT_ECHO_REQUEST:
                self._send(_message(OFPT_ECHO_REPLY, header[3], body))
                continue
            return header, body

    def _until(self, xid: int, errors: list) -> tuple:
        """Messages up to the answer to xid; OFPT_ERRORs on the way go to errors, flow
        monitor reports to the listener."""
        while True:
            header, body = self._receive()
            if header[1] == OFPT_ERROR:
                errors.append(describe_error(body))
                if header[3] == xid:
                    return header, body
            elif header[3] == xid:
                return header, body
            else:
                self._report(header, body)

    def bundle(self, messages: list[bytes]) -> None:
        """Apply flow-mods (encoded with xids from next_xids) as one atomic bundle; raises
        CommandError with the switch's errors, nothing applied."""
        if not messages:
            return
        with self._lock:
            # The watcher's thread must not wake for what this thread reads meanwhile.
            if self._watcher is not None and self._sock is not None:
                self._watcher.discard(self._sock.fileno())
            try:
                for attempt in (1, 2):
                    try:
                        return self._bundle(messages)
                    except _Reset as exc:
                        if attempt == 2:
                            raise CommandError("the OpenFlow connection to %s failed: %s"
                                               % (self.path, exc), resource=self.bridge) \
                                from None
                        LOG.info("OpenFlow connection to %s lost (%s); connecting again",
                                 self.bridge, exc)
            finally:
                self._after_bundle()

    def _after_bundle(self) -> None:
        """(holding the lock) the reports read past the bundle's answer; watched again."""
        try:
            self._unsolicited()
        except _Reset:
            return
        self._watch()

    def next_xids(self):
        """The xids for encode_bundle."""
        return (self._xid() for _ in itertools.count())

    def _bundle(self, messages: list[bytes]) -> None:
        if self._sock is None:
            self._connect()
        bundle_id = self._xid()
        errors: list = []
        barrier = self._xid()
        self._send(b"".join([_bundle_control(OFPBCT_OPEN_REQUEST, bundle_id, self._xid())]
                            + [_bundle_add(bundle_id, m) for m in messages]
                            + [_message(OFPT_BARRIER_REQUEST, barrier, b"")]))
        self._until(barrier, errors)
        if errors:
            self._finish(OFPBCT_DISCARD_REQUEST, bundle_id, [])
            raise CommandError("the switch refused the bundle on %s" % self.bridge,
                               resource=self.bridge, detail="; ".join(errors))
        commit_errors: list = []
        header, body = self._finish(OFPBCT_COMMIT_REQUEST, bundle_id, commit_errors)
        if header[1] == OFPT_ERROR or commit_errors:
            raise CommandError("the switch refused the bundle on %s" % self.bridge,
                               resource=self.bridge, detail="; ".join(commit_errors))
        if struct.unpack_from("!IH", body)[1] != OFPBCT_COMMIT_REPLY:
            raise CommandError("unexpected answer to the bundle commit on %s" % self.bridge,
                               resource=self.bridge)

    def _finish(self, kind: int, bundle_id: int, errors: list) -> tuple:
        xid = self._xid()
        self._send(_bundle_control(kind, bundle_id, xid))
        return self._until(xid, errors)
