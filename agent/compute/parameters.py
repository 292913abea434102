"""The parameters a template declares, and the check of a function's parameters against them.

A function's parameters are strings, 'name=value' or a bare 'name' (a flag), in order; a
name may repeat where its declaration says so. A template lists what it understands:

    "parameters": [
      {"name": "default", "type": "enumeration", "values": ["accept", "drop"]},
      {"name": "block-src", "type": "ipv4-prefix", "repeatable": true},
      {"name": "block-icmp", "type": "flag"},
      ...]

Types: flag (no value), enumeration (values), uint (optional range [low, high]),
ipv4-address, ipv4-prefix (an address, or one with /len), ipv4-interface (an address with
/len), port-range (a port or low-high), ifname (an interface name), ipv4-route (dst,
via=gateway and/or dev=ifname: what `ip route` takes, dst a prefix or default). Each may
carry a description for people. A template that declares no parameters (one configured
through composer-templates) is not checked: its function's parameters go to it as they are.
"""

import ipaddress
import re

TYPES = ("flag", "enumeration", "uint", "ipv4-address", "ipv4-prefix", "ipv4-interface",
         "port-range", "ifname", "ipv4-route")

_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}\Z")
_UINT = re.compile(r"[0-9]{1,10}\Z")
_DOTTED = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}\Z")


class ParameterError(Exception):
    """A parameter the template does not understand: which one, and why."""

    def __init__(self, parameter: str, why: str):
        super().__init__("parameter %r: %s" % (parameter, why))
        self.parameter = parameter
        self.why = why


def check_declarations(template: dict) -> None:
    """Raise ValueError when a template's parameter declarations are malformed."""
    declared = template.get("parameters")
    if declared is None:
        return
    if not isinstance(declared, list):
        raise ValueError("%s: parameters must be a list of declarations" % template.get("id"))
    seen = set()
    for item in declared:
        name, kind = item.get("name"), item.get("type")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9-]*", name):
            raise ValueError("%s: bad parameter name %r" % (template.get("id"), name))
        if name in seen:
            raise ValueError("%s: parameter %s declared twice" % (template.get("id"), name))
        seen.add(name)
        if kind not in TYPES:
            raise ValueError("%s: parameter %s has unknown type %r (known: %s)"
                             % (template.get("id"), name, kind, ", ".join(TYPES)))
        if kind == "enumeration" and not item.get("values"):
            raise ValueError("%s: enumeration %s has no values" % (template.get("id"), name))


def check(template: dict, parameters) -> None:
    """Raise ParameterError for the first parameter the template does not understand
    (an unknown name, a value that does not fit its type, a repeat it does not allow)."""
    declared = template.get("parameters")
    if declared is None:
        return
    by_name = {item["name"]: item for item in declared}
    seen = set()
    for parameter in parameters:
        name, has_value, value = parameter.partition("=")
        item = by_name.get(name)
        if item is None:
            raise ParameterError(parameter, "%s understands no parameter %r (it takes: %s)"
                                 % (template["id"], name, ", ".join(sorted(by_name))
                                    or "none"))
        if name in seen and not item.get("repeatable"):
            raise ParameterError(parameter, "%s is given more than once" % name)
        seen.add(name)
        if item["type"] == "flag":
            if has_value:
                raise ParameterError(parameter, "%s is a flag: it takes no value" % name)
            continue
        if not has_value:
            raise ParameterError(parameter, "%s needs a value (%s=...)" % (name, name))
        why = _why_not(item, value)
        if why:
            raise ParameterError(parameter, "%s: %s" % (name, why))


def _why_not(item: dict, value: str) -> str | None:
    """Why value does not fit the declaration (None: it does)."""
    kind = item["type"]
    if kind == "enumeration":
        values = item["values"]
        return None if value in values else "must be one of %s" % ", ".join(values)
    if kind == "uint":
        if not _UINT.match(value):
            return "must be a non-negative integer"
        low, high = item.get("range", (0, 2 ** 32 - 1))
        return None if low <= int(value) <= high else "must be within %d..%d" % (low, high)
    if kind == "port-range":
        low, _, high = value.partition("-")
        ports = [low, high] if high else [low]
        if not all(_UINT.match(p) and int(p) <= 65535 for p in ports) or \
                (high and int(low) > int(high)):
            return "must be a port or a range low-high (0..65535)"
        return None
    if kind == "ifname":
        return None if _IFNAME.match(value) else "must be an interface name"
    if kind == "ipv4-route":
        return _why_not_route(value)
    return _why_not_ipv4(kind, value)


def _why_not_ipv4(kind: str, value: str) -> str | None:
    address, slash, length = value.partition("/")
    want = {"ipv4-address": "an IPv4 address", "ipv4-prefix": "an IPv4 address or prefix",
            "ipv4-interface": "an IPv4 address with its prefix length"}[kind]
    if (slash and kind == "ipv4-address") or (not slash and kind == "ipv4-interface"):
        return "must be %s" % want
    if not _DOTTED.match(address):
        return "must be %s" % want
    try:
        if not slash:
            ipaddress.IPv4Address(address)
        elif not _UINT.match(length):
            raise ValueError(length)
        elif kind == "ipv4-prefix":
            ipaddress.IPv4Network(value, strict=True)       # no host bits
        else:
            ipaddress.IPv4Interface(value)
    except ValueError:
        return "must be %s" % want
    return None


def _why_not_route(value: str) -> str | None:
    destination, *options = value.split(",")
    if destination != "default" and _why_not_ipv4("ipv4-prefix", destination):
        return "the destination must be an IPv4 prefix or default"
    seen = {}
    for option in options:
        key, _, item = option.partition("=")
        if key not in ("via", "dev") or key in seen:
            return "options are via=<gateway> and dev=<interface>, once each"
        seen[key] = item
    if not seen:
        return "a route needs via=<gateway> or dev=<interface>"
    if "via" in seen and _why_not_ipv4("ipv4-address", seen["via"]):
        return "the gateway must be an IPv4 address"
    if "dev" in seen and not _IFNAME.match(seen["dev"]):
        return "dev must be an interface name"
    return None
