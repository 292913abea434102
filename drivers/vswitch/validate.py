"""Strict checks of the values a vSwitch driver passes on to OVSDB, netlink and ovs-ofctl.

Values come from YANG-typed data, but nothing here trusts that: every check returns the
value in one canonical form or raises InvalidArgument, so that no text reaches a tool
unless it is exactly what the driver meant to write.
"""

import ipaddress
import re

from ..errors import InvalidArgument

# Linux interface names are at most 15 bytes (IFNAMSIZ - 1); OpenFlow port names are cut
# at 15 too. Every LSI, port and link end the driver names obeys the same rule, patch ports
# included, so that names survive into `ovs-ofctl show` and the kernel unchanged.
MAX_NAME_LENGTH = 15
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,%d}$" % (MAX_NAME_LENGTH - 1))
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
# external_ids keys and values end up in OVSDB only; keep them printable and bounded.
_EXTERNAL_ID = re.compile(r"^[\x20-\x7e]{1,255}$")


def name(value, what: str = "name") -> str:
    """A name of an LSI, a port or a link: 1 to 15 of [A-Za-z0-9_.-], not starting with [_.-]."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidArgument("bad %s %r: use 1 to %d characters of A-Z a-z 0-9 _ . - "
                              "starting with a letter or digit" % (what, value, MAX_NAME_LENGTH))
    return value


def integer(value, low: int, high: int, what: str) -> int:
    """An integer in [low, high]; accepts int or a decimal or 0x-hex string, not bool."""
    if isinstance(value, bool):
        raise InvalidArgument("bad %s %r: not an integer" % (what, value))
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            value = int(text, 16) if text.startswith("0x") else int(text, 10)
        except ValueError:
            raise InvalidArgument("bad %s %r: not an integer" % (what, value)) from None
    if not isinstance(value, int):
        raise InvalidArgument("bad %s %r: not an integer" % (what, value))
    if not low <= value <= high:
        raise InvalidArgument("bad %s %d: out of range %d..%d" % (what, value, low, high))
    return value


def mac(value, what: str = "MAC address") -> str:
    """A unicast or multicast Ethernet address, lower case, colon separated."""
    text = value.strip().lower() if isinstance(value, str) else None
    if text is None or not _MAC.match(text):
        raise InvalidArgument("bad %s %r" % (what, value))
    return text


def mac_masked(value, what: str = "MAC address") -> str:
    """A MAC address or MAC/mask."""
    if isinstance(value, str) and "/" in value:
        address, mask = value.split("/", 1)
        return "%s/%s" % (mac(address, what), mac(mask, what + " mask"))
    return mac(value, what)


def ipv4(value, what: str = "IPv4 address") -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except (ipaddress.AddressValueError, ValueError, TypeError):
        raise InvalidArgument("bad %s %r" % (what, value)) from None


def ipv4_prefix(value, what: str = "IPv4 prefix") -> str:
    """An address, address/length or address/netmask, in canonical form (RFC 6991: host
    bits cleared): 'a.b.c.d' for a host match and 'a.b.c.d/n' otherwise, as ovs-ofctl prints."""
    try:
        network = ipaddress.IPv4Network(value, strict=False)
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError, TypeError):
        raise InvalidArgument("bad %s %r" % (what, value)) from None
    if network.prefixlen == 32:
        return str(network.network_address)
    return str(network)


def ipv6_prefix(value, what: str = "IPv6 prefix") -> str:
    """Like ipv4_prefix, for IPv6 (compressed text)."""
    try:
        network = ipaddress.IPv6Network(value, strict=False)
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError, TypeError):
        raise InvalidArgument("bad %s %r" % (what, value)) from None
    if network.prefixlen == 128:
        return str(network.network_address)
    return str(network)


def external_ids(value) -> dict:
    """A str -> str mapping for OVSDB external_ids columns."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument("external_ids must be a mapping, not %r" % (value,))
    for key, item in value.items():
        if not isinstance(key, str) or not _EXTERNAL_ID.match(key) \
                or not isinstance(item, str) or not _EXTERNAL_ID.match(item):
            raise InvalidArgument("bad external_ids entry %r: %r (printable strings only)"
                                  % (key, item))
    return dict(value)
