"""Names of the node resources the agent creates for a graph.

Every name starts with the agent's prefix (so that cleanup and recovery can find it) and
fits the 15-character limit of Linux interface names where the resource is a netdev.
Names derive from the graph and object ids through a hash, so they are stable across
restarts; the ids themselves are kept in the resources' tags (external_ids, labels). The
exceptions are numbered: virtual links, and prepared function slots (a function made in a
slot keeps the slot's names, which the deployed state records).
"""

import functools
import hashlib

IFNAME_MAX = 15
LINK_NAME_MAX = IFNAME_MAX - 2       # the patch ports add "-a" / "-b"
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def base36(number: int) -> str:
    out = ""
    while True:
        number, digit = divmod(number, 36)
        out = _BASE36[digit] + out
        if number == 0:
            return out


def spare_port_name(instance: str, number: int) -> str:
    return "%sp%d" % (instance, number)


@functools.lru_cache(maxsize=1 << 16)
def digest(*parts: str, length: int = 8) -> str:
    # Cached: planning a graph of 500 functions names its ports, rules and links again on
    # every commit, and the names never change.
    text = "\0".join(parts).encode()
    return hashlib.blake2s(text, digest_size=16).hexdigest()[:length]


class Naming:
    """Names and cookies for one agent (one prefix)."""

    def __init__(self, prefix: str):
        if not 1 <= len(prefix) <= 4:
            raise ValueError("prefix must be 1 to 4 characters")
        self.prefix = prefix
        # The top 16 bits of every cookie the agent installs: one prefix, one marker.
        self.cookie_base = (0xCA00 | (int(digest(prefix, length=2), 16))) << 48

    # --- netdevs (15 characters) ---

    def graph_lsi(self, graph_id: str) -> str:
        return "%sg%s" % (self.prefix, digest(graph_id, length=10 - len(self.prefix) + 4))

    def function_port(self, graph_id: str, function_id: str, port_id: str) -> str:
        return "%sp%s" % (self.prefix,
                          digest(graph_id, function_id, port_id, length=IFNAME_MAX - len(self.prefix) - 1))

    def sap_port(self, graph_id: str, sap_id: str, sap_type: str) -> str:
        letter = {"gre": "t", "host-stack": "h"}.get(sap_type, "s")
        return "%s%s%s" % (self.prefix, letter,
                           digest(graph_id, sap_id, length=IFNAME_MAX - len(self.prefix) - 1))

    def tunnel_endpoint(self, local_ip: str) -> str:
        return "%se%s" % (self.prefix, digest(local_ip, length=IFNAME_MAX - len(self.prefix) - 1))

    # --- other resources ---

    def function_instance(self, graph_id: str, function_id: str) -> str:
        """The compute instance (namespace, container, domain) of a function."""
        return "%sf%s" % (self.prefix, digest(graph_id, function_id, length=12))

    def spare_instance(self, graph_id: str, index: int) -> str:
        """A prepared function slot of a graph (see agent/compute/spares.py): prefix, 'w',
        the graph in 4 base-36 characters, the index in base 36. Its ports are
        spare_port(instance, n), so the whole slot is named before any function takes it."""
        name = "%sw%s%s" % (self.prefix, self._graph36(graph_id), base36(index))
        if len(spare_port_name(name, 9)) > IFNAME_MAX:
            raise ValueError("graph %s has too many spare slots" % graph_id)
        return name

    @staticmethod
    def spare_port(instance: str, number: int) -> str:
        return spare_port_name(instance, number)

    @staticmethod
    def _graph36(graph_id: str) -> str:
        return base36(int(digest(graph_id, length=8), 16))[-4:].rjust(4, "0")

    def virtual_link(self, graph_id: str, index: int) -> str:
        """A patch-port pair: prefix, 'l', the graph in 4 base-36 characters, the index in
        base 36 (at most 13 characters up to 36^4 links per graph)."""
        name = "%sl%s%s" % (self.prefix, self._graph36(graph_id), base36(index))
        if len(name) > LINK_NAME_MAX:
            raise ValueError("graph %s has too many virtual links" % graph_id)
        return name

    # --- cookies ---

    def graph_cookie_bits(self, graph_id: str) -> int:
        return int(digest("graph", graph_id, length=4), 16) << 32

    def rule_cookie(self, graph_id: str, rule_id: str) -> int:
        return self.cookie_base | self.graph_cookie_bits(graph_id) | int(digest("rule", rule_id), 16)

    def link_cookie(self, graph_id: str, link_name: str) -> int:
        return self.cookie_base | self.graph_cookie_bits(graph_id) | int(digest("link", link_name), 16)

    def endpoint_cookie(self, name: str) -> int:
        """Flows that belong to the node rather than to a graph (tunnel endpoints)."""
        return self.cookie_base | int(digest("endpoint", name, length=12), 16)

    GRAPH_MASK = 0xFFFF_FFFF_0000_0000
    AGENT_MASK = 0xFFFF_0000_0000_0000

    def owns_cookie(self, cookie: int) -> bool:
        return cookie & self.AGENT_MASK == self.cookie_base

    def graph_of_cookie(self, cookie: int, graph_ids) -> str | None:
        bits = cookie & 0x0000_FFFF_0000_0000
        for graph_id in graph_ids:
            if self.graph_cookie_bits(graph_id) == bits:
                return graph_id
        return None
