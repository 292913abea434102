"""Flow <-> OpenFlow text, as ovs-ofctl reads and prints it (ovs-fields(7), ovs-actions(7)).

Flows name ports; ovs-ofctl gets OpenFlow port numbers. Three steps, each pure:
  1. canonical(flow): validate every value and put the flow in one canonical form
     (match in MATCH_FIELDS order, typed values, derived actions spelled one way);
  2. flow_mod(flow, ofports): the text of one flow for an `add` line of a bundle;
  3. parse_flows(text, names): the flows `ovs-ofctl dump-flows --no-names` prints, back
     to canonical Flows with their counters.

Prerequisites are not guessed: a match on an IPv4 field needs dl_type 0x0800 and so on, as
the YANG model demands. (ovs-ofctl silently drops a field whose prerequisite is missing,
which would widen the match: "normalization changed ofp_match".)
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import InvalidArgument, ResourceNotFound
from . import validate
from .base import Action, Flow

ETH_IPV4, ETH_ARP, ETH_IPV6 = 0x0800, 0x0806, 0x86DD
IP_TCP, IP_UDP, IP_SCTP = 6, 17, 132

MATCH_FIELDS = ("in_port", "dl_src", "dl_dst", "dl_type", "dl_vlan", "dl_vlan_pcp",
                "vlan_tci", "nw_src", "nw_dst", "ipv6_src", "ipv6_dst", "nw_proto", "ip_dscp",
                "tp_src", "tp_dst")
ACTION_KINDS = ("output", "in_port", "push_vlan", "pop_vlan", "set_eth_src", "set_eth_dst",
                "set_ipv4_src", "set_ipv4_dst", "dec_ttl", "drop")

# OpenFlow reserves the all-ones cookie in flow-mods.
MAX_COOKIE = (1 << 64) - 2
MAX_PRIORITY = 0xFFFF
OFPVID_PRESENT = 0x1000
LOCAL = "LOCAL"

# dl_type values each match field needs (its prerequisite).
_PREREQUISITES = {
    "nw_src": (ETH_IPV4, ETH_ARP),      # on ARP: the sender protocol address (arp_spa)
    "nw_dst": (ETH_IPV4, ETH_ARP),      # on ARP: the target protocol address (arp_tpa)
    "ipv6_src": (ETH_IPV6,),
    "ipv6_dst": (ETH_IPV6,),
    "nw_proto": (ETH_IPV4, ETH_IPV6),
    "ip_dscp": (ETH_IPV4, ETH_IPV6),
}


def _match_value(field: str, value):
    if field == "in_port":
        return validate.name(value, "in_port port name")
    if field in ("dl_src", "dl_dst"):
        return validate.mac_masked(value, field)
    if field == "dl_type":
        return validate.integer(value, 0x600, 0xFFFF, field)
    if field == "dl_vlan":
        return validate.integer(value, 0, 4095, field)
    if field == "dl_vlan_pcp":
        return validate.integer(value, 0, 7, field)
    if field == "vlan_tci":
        return _masked16(value, field)
    if field in ("nw_src", "nw_dst"):
        return validate.ipv4_prefix(value, field)
    if field in ("ipv6_src", "ipv6_dst"):
        return validate.ipv6_prefix(value, field)
    if field == "nw_proto":
        return validate.integer(value, 0, 255, field)
    if field == "ip_dscp":
        return validate.integer(value, 0, 63, field)
    if field in ("tp_src", "tp_dst"):
        return validate.integer(value, 0, 0xFFFF, field)
    raise InvalidArgument("unsupported match field %r (supported: %s)"
                          % (field, ", ".join(MATCH_FIELDS)))


def _masked16(value, what: str) -> str:
    """A 16-bit value with an optional mask, as '0xVVVV/0xMMMM'."""
    text = str(value)
    number, _, mask = text.partition("/")
    try:
        parsed = [int(part, 0) for part in ((number, mask) if mask else (number,))]
    except ValueError:
        raise InvalidArgument("%s must be a 16-bit value or value/mask, not %r"
                              % (what, value)) from None
    if any(not 0 <= part <= 0xFFFF for part in parsed):
        raise InvalidArgument("%s must be a 16-bit value or value/mask, not %r" % (what, value))
    return "/".join("0x%04x" % part for part in parsed)


def _tagged(match: dict) -> bool:
    """Whether the match only admits frames with a VLAN tag."""
    if "dl_vlan" in match:
        return True
    tci = match.get("vlan_tci")
    if tci is None:
        return False
    value, _, mask = tci.partition("/")
    mask_bits = int(mask, 16) if mask else 0xFFFF
    return bool(mask_bits & OFPVID_PRESENT and int(value, 16) & OFPVID_PRESENT)


def _action(action: Action, match: dict, tags: int = 0) -> Action:
    kind, arg = action.kind, action.arg
    if kind not in ACTION_KINDS:
        raise InvalidArgument("unsupported action %r (supported: %s)"
                              % (kind, ", ".join(ACTION_KINDS)))
    if kind == "output":
        port = validate.name(arg, "output port name")
        # OpenFlow never sends a packet back out of its ingress port with output:<port>;
        # that takes the in_port action.
        if match.get("in_port") == port:
            return Action("in_port")
        return Action("output", port)
    if kind == "push_vlan":
        return Action(kind, validate.integer(arg, 0, 4095, "push_vlan VLAN id"))
    if kind in ("set_eth_src", "set_eth_dst"):
        return Action(kind, validate.mac(arg, kind))
    if kind in ("set_ipv4_src", "set_ipv4_dst"):
        if match.get("dl_type") != ETH_IPV4:
            raise InvalidArgument("%s needs a match on dl_type 0x0800 (IPv4)" % kind)
        return Action(kind, validate.ipv4(arg, kind))
    if kind == "pop_vlan" and tags <= 0:
        raise InvalidArgument("pop_vlan needs a match on dl_vlan or a push_vlan before it")
    if arg is not None:
        raise InvalidArgument("action %s takes no argument (got %r)" % (kind, arg))
    return Action(kind)


def canonical(flow: Flow) -> Flow:
    """The flow validated and in canonical form; raises InvalidArgument.

    Canonical: match fields in MATCH_FIELDS order with int or normalised str values;
    output to the matched in_port becomes the in_port action; no actions becomes drop."""
    cookie = validate.integer(flow.cookie, 0, MAX_COOKIE, "cookie")
    priority = validate.integer(flow.priority, 0, MAX_PRIORITY, "priority")
    match = {}
    for item in flow.match:
        try:
            field, value = item
        except (TypeError, ValueError):
            raise InvalidArgument("match items are (field, value) pairs, not %r"
                                  % (item,)) from None
        if field in match:
            raise InvalidArgument("match field %s given twice" % field)
        match[field] = _match_value(field, value)
    dl_type = match.get("dl_type")
    for field, needs in _PREREQUISITES.items():
        if field in match and dl_type not in needs:
            raise InvalidArgument("match on %s needs dl_type %s" % (
                field, " or ".join("0x%04x" % t for t in needs)))
    for field in ("tp_src", "tp_dst"):
        if field in match and (dl_type not in (ETH_IPV4, ETH_IPV6)
                               or match.get("nw_proto") not in (IP_TCP, IP_UDP, IP_SCTP)):
            raise InvalidArgument("match on %s needs dl_type 0x0800 or 0x86dd and nw_proto "
                                  "6, 17 or 132" % field)
    if "dl_vlan_pcp" in match and "dl_vlan" not in match:
        raise InvalidArgument("match on dl_vlan_pcp needs a match on dl_vlan")
    if "dl_vlan" in match and "vlan_tci" in match:
        raise InvalidArgument("match on dl_vlan or on vlan_tci, not both")
    actions = []
    tags = 1 if _tagged(match) else 0     # VLAN tags on the frame as the actions run
    for action in flow.actions:
        if not isinstance(action, Action):
            raise InvalidArgument("actions are Action objects, not %r" % (action,))
        actions.append(_action(action, match, tags))
        if action.kind == "push_vlan":
            tags += 1
        elif action.kind == "pop_vlan":
            tags -= 1
    if any(a.kind == "drop" for a in actions):
        if len(actions) > 1:
            raise InvalidArgument("drop must be the only action")
    if not actions:
        actions = [Action("drop")]
    ordered = tuple((f, match[f]) for f in MATCH_FIELDS if f in match)
    return Flow(cookie=cookie, priority=priority, match=ordered, actions=tuple(actions))


def port_number(name: str, ofports: Mapping):
    """The OpenFlow port number of a port name (or LOCAL); ResourceNotFound when the
    LSI has no such port or it has no number yet."""
    try:
        number = ofports[name]
    except KeyError:
        raise ResourceNotFound("no port %s on this LSI" % name, resource=name) from None
    if number == LOCAL:
        return LOCAL
    if not isinstance(number, int) or number <= 0:
        raise ResourceNotFound("port %s has no OpenFlow port number (ofport %r)"
                               % (name, number), resource=name)
    return number


def _port_number(name: str, ofports: Mapping) -> str:
    return str(port_number(name, ofports))


def _match_text(field: str, value, ofports: Mapping) -> str:
    if field == "in_port":
        return "in_port=%s" % _port_number(value, ofports)
    if field == "dl_type":
        return "dl_type=0x%04x" % value
    return "%s=%s" % (field, value)


def _action_text(action: Action, ofports: Mapping) -> str:
    kind, arg = action.kind, action.arg
    if kind == "output":
        return "output:%s" % _port_number(arg, ofports)
    if kind == "push_vlan":
        return "push_vlan:0x8100,set_field:%d->vlan_vid" % (OFPVID_PRESENT | arg)
    if kind == "set_eth_src":
        return "set_field:%s->eth_src" % arg
    if kind == "set_eth_dst":
        return "set_field:%s->eth_dst" % arg
    if kind == "set_ipv4_src":
        return "set_field:%s->ip_src" % arg
    if kind == "set_ipv4_dst":
        return "set_field:%s->ip_dst" % arg
    return kind                         # in_port, pop_vlan, dec_ttl, drop


def flow_mod(flow: Flow, ofports: Mapping) -> str:
    """ovs-ofctl text of one flow (without the leading `add`), ports mapped by ofports
    (name -> OpenFlow port number, or LOCAL). Validates first."""
    flow = canonical(flow)
    parts = ["cookie=0x%x" % flow.cookie, "table=0", "priority=%d" % flow.priority]
    parts += [_match_text(f, v, ofports) for f, v in flow.match]
    actions = ",".join(_action_text(a, ofports) for a in flow.actions)
    return "%s,actions=%s" % (",".join(parts), actions)


def port_names(flows) -> set[str]:
    """The port names flows match on (in_port) or output to."""
    names = set()
    for flow in flows:
        names.update(value for field, value in flow.match if field == "in_port")
        names.update(a.arg for a in flow.actions if a.kind == "output")
    return names


def bundle_lines(add: list, remove_cookies: list, ofports: Mapping) -> list[str]:
    """The lines of one `ovs-ofctl --bundle add-flows` batch: removals first, then adds."""
    lines = ["delete cookie=0x%x/-1" % validate.integer(c, 0, MAX_COOKIE, "cookie")
             for c in remove_cookies]
    lines += ["add " + flow_mod(flow, ofports) for flow in add]
    return lines


# --- parsing what ovs-ofctl prints ---

@dataclass(frozen=True)
class FlowEntry:
    """A flow as dumped, with its counters."""
    flow: Flow
    table: int
    packets: int
    bytes: int


_INFO_KEYS = {"cookie", "duration", "table", "n_packets", "n_bytes", "idle_timeout",
              "hard_timeout", "idle_age", "hard_age", "importance", "send_flow_rem",
              "check_overlap", "reset_counts", "no_packet_counts", "no_byte_counts",
              "out_port", "out_group"}

# Protocol keywords ovs-ofctl prints instead of dl_type (and nw_proto).
_SHORTHANDS = {
    "ip": (ETH_IPV4, None), "ipv6": (ETH_IPV6, None), "arp": (ETH_ARP, None),
    "rarp": (0x8035, None), "mpls": (0x8847, None), "mplsm": (0x8848, None),
    "icmp": (ETH_IPV4, 1), "tcp": (ETH_IPV4, IP_TCP), "udp": (ETH_IPV4, IP_UDP),
    "sctp": (ETH_IPV4, IP_SCTP), "icmp6": (ETH_IPV6, 58), "tcp6": (ETH_IPV6, IP_TCP),
    "udp6": (ETH_IPV6, IP_UDP), "sctp6": (ETH_IPV6, IP_SCTP),
}
_RENAMED = {"arp_spa": "nw_src", "arp_tpa": "nw_dst", "arp_op": "nw_proto"}
_INT_FIELDS = {"dl_type", "dl_vlan", "dl_vlan_pcp", "nw_proto", "tp_src", "tp_dst"}


def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split at sep outside parentheses (actions such as ct(...) or learn(...) nest)."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in (p.strip() for p in parts) if p]


def _port_name(number: str, names: Mapping) -> str:
    key = int(number) if number.isdigit() else number
    return names.get(key, number)


def _parse_match(text: str, names: Mapping) -> tuple[int, tuple]:
    priority = 32768                    # ovs-ofctl omits the default priority
    match = {}
    for item in _split_top(text):
        field, _, value = item.partition("=")
        if not _:
            if field not in _SHORTHANDS:
                match[field] = ""
                continue
            dl_type, proto = _SHORTHANDS[field]
            match["dl_type"] = dl_type
            if proto is not None:
                match["nw_proto"] = proto
            continue
        if field == "priority":
            priority = int(value)
            continue
        field = _RENAMED.get(field, field)
        if field == "in_port":
            match[field] = _port_name(value, names)
        elif field == "nw_tos":
            match["ip_dscp"] = int(value, 0) >> 2
        elif field in _INT_FIELDS:
            match[field] = int(value, 0)
        else:
            match[field] = value
    ordered = [(f, match.pop(f)) for f in MATCH_FIELDS if f in match]
    ordered += sorted(match.items())    # fields this driver never writes, as printed
    return priority, tuple(ordered)


_SET_FIELD = re.compile(r"^set_field:(?P<value>[^>]+?)->(?P<field>\w+)$")
_SET_FIELD_KINDS = {"eth_src": "set_eth_src", "eth_dst": "set_eth_dst",
                    "ip_src": "set_ipv4_src", "nw_src": "set_ipv4_src",
                    "ip_dst": "set_ipv4_dst", "nw_dst": "set_ipv4_dst"}
_MOD_KINDS = {"mod_dl_src": "set_eth_src", "mod_dl_dst": "set_eth_dst",
              "mod_nw_src": "set_ipv4_src", "mod_nw_dst": "set_ipv4_dst"}


def _parse_actions(text: str, names: Mapping) -> tuple:
    tokens = _split_top(text)
    actions = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        key, _, arg = token.partition(":")
        if token == "drop":
            actions.append(Action("drop"))
        elif token == "IN_PORT" or token == "in_port":
            actions.append(Action("in_port"))
        elif token in ("pop_vlan", "strip_vlan"):
            actions.append(Action("pop_vlan"))
        elif token == "dec_ttl":
            actions.append(Action("dec_ttl"))
        elif key == "output":
            actions.append(Action("output", _port_name(arg, names)))
        elif token == LOCAL:
            actions.append(Action("output", _port_name(LOCAL, names)))
        elif token.isdigit():
            actions.append(Action("output", _port_name(token, names)))
        elif key == "push_vlan" and arg == "0x8100" and i < len(tokens) \
                and (m := _SET_FIELD.match(tokens[i])) and m["field"] == "vlan_vid":
            actions.append(Action("push_vlan", int(m["value"], 0) & 0xFFF))
            i += 1
        elif key in _MOD_KINDS:
            actions.append(Action(_MOD_KINDS[key], arg))
        elif (m := _SET_FIELD.match(token)) and m["field"] in _SET_FIELD_KINDS:
            actions.append(Action(_SET_FIELD_KINDS[m["field"]], m["value"]))
        else:
            actions.append(Action("raw", token))    # an action this driver never writes
    return tuple(actions)


def parse_flows(text: str, names: Mapping) -> list[FlowEntry]:
    """Parse `ovs-ofctl --no-names dump-flows` output; names maps port numbers (and LOCAL)
    back to port names (unknown numbers stay as printed)."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("cookie="):
            continue
        cut = line.rfind("actions=")
        head, actions = line[:cut].rstrip().rstrip(","), line[cut + len("actions="):]
        info, match_parts = {}, []
        for token in head.split(", "):
            key, _, value = token.partition("=")
            if key in _INFO_KEYS and not match_parts:
                info[key] = value
            else:
                match_parts.append(token)
        priority, match = _parse_match(",".join(match_parts), names)
        flow = Flow(cookie=int(info.get("cookie", "0"), 0), priority=priority, match=match,
                    actions=_parse_actions(actions, names))
        entries.append(FlowEntry(flow=flow, table=int(info.get("table", "0")),
                                 packets=int(info.get("n_packets", "0")),
                                 bytes=int(info.get("n_bytes", "0"))))
    return entries


_PORT_STATS = re.compile(
    r"port\s+(?P<port>[^:\s]+):\s*rx pkts=(?P<rx_packets>\d+|\?), bytes=(?P<rx_bytes>\d+|\?), "
    r"drop=(?P<rx_dropped>\d+|\?), errs=(?P<rx_errors>\d+|\?).*?"
    r"tx pkts=(?P<tx_packets>\d+|\?), bytes=(?P<tx_bytes>\d+|\?), "
    r"drop=(?P<tx_dropped>\d+|\?), errs=(?P<tx_errors>\d+|\?)", re.S)
PORT_COUNTERS = ("rx_packets", "rx_bytes", "rx_dropped", "rx_errors",
                 "tx_packets", "tx_bytes", "tx_dropped", "tx_errors")


def parse_port_stats(text: str, names: Mapping) -> dict[str, dict]:
    """Parse `ovs-ofctl --no-names dump-ports` output: counters per port name.

    A counter the port does not keep (printed '?') is None."""
    stats = {}
    for m in _PORT_STATS.finditer(text):
        name = _port_name(m["port"], names)
        stats[name] = {k: (None if m[k] == "?" else int(m[k])) for k in PORT_COUNTERS}
    return stats
