"""The service graph as plain, hashable Python values, read from a libyang config tree.

The engine plans on these values, not on libyang nodes: they can be compared field by
field (what changed?), kept after the tree is gone (what is deployed?), and written to the
engine's snapshot. Reading goes through libyang's JSON printer (C) and json (C), so a graph
of thousands of nodes converts in milliseconds.
"""

import json
from dataclasses import dataclass, field

SFFG = "composer-sffg:service-graphs"
TEMPLATES = "composer-templates:templates"

DEFAULT_PRIORITY = 32768
DEFAULT_PREFIX_LENGTH = 24

# YANG match leaf -> OpenFlow field (drivers/vswitch/base.py Flow.match names)
MATCH_FIELDS = (
    ("eth-src", "dl_src"),
    ("eth-dst", "dl_dst"),
    ("ether-type", "dl_type"),
    ("vlan-id", "dl_vlan"),
    ("vlan-pcp", "dl_vlan_pcp"),
    ("ipv4-src", "nw_src"),
    ("ipv4-dst", "nw_dst"),
    ("ipv6-src", "ipv6_src"),
    ("ipv6-dst", "ipv6_dst"),
    ("ip-proto", "nw_proto"),
    ("dscp", "ip_dscp"),
    ("l4-src-port", "tp_src"),
    ("l4-dst-port", "tp_dst"),
)

# ietf-ethertypes enumeration names for the values OpenFlow needs as numbers
ETHERTYPE_NAMES = {
    "ipv4": 0x0800, "arp": 0x0806, "wlan": 0x0842, "trill": 0x22F3, "srp": 0x22EA,
    "decnet": 0x6003, "rarp": 0x8035, "appletalk": 0x809B, "aarp": 0x80F3, "vlan": 0x8100,
    "ipx": 0x8137, "qnx": 0x8204, "ipv6": 0x86DD, "efc": 0x8808, "esp": 0x8809,
    "cobranet": 0x8819, "mpls-unicast": 0x8847, "mpls-multicast": 0x8848,
    "pppoe-discovery": 0x8863, "pppoe-session": 0x8864, "intel-ans": 0x886D,
    "jumbo-frames": 0x8870, "homeplug": 0x887B, "eap": 0x888E, "profinet": 0x8892,
    "hyperscsi": 0x889A, "aoe": 0x88A2, "ethercat": 0x88A4, "provider-bridging": 0x88A8,
    "ethernet-powerlink": 0x88AB, "goose": 0x88B8, "gse": 0x88B9, "sv": 0x88BA,
    "lldp": 0x88CC, "sercos": 0x88CD, "wsmp": 0x88DC, "homeplug-av-mme": 0x88E1,
    "mrp": 0x88E3, "macsec": 0x88E5, "pbb": 0x88E7, "cfm": 0x8902, "fcoe": 0x8906,
    "fcoe-ip": 0x8914, "roce": 0x8915, "tte": 0x891D, "hsr": 0x892F,
}


@dataclass(frozen=True)
class Endpoint:
    """Where traffic enters or leaves a graph: a SAP, or a port of a function."""
    sap: str | None = None
    function: str | None = None
    port: str | None = None

    def __str__(self) -> str:
        return "sap %s" % self.sap if self.sap else "port %s:%s" % (self.function, self.port)


@dataclass(frozen=True)
class Port:
    id: str
    name: str = ""
    mac: str | None = None
    ipv4: str | None = None
    prefix_length: int | None = None


@dataclass(frozen=True)
class Constraints:
    """What an implementation must satisfy to run a function (its config/constraints)."""
    environments: tuple = ()   # execution environments allowed (any when empty)
    memory: int | None = None  # MiB, at least
    cpu: float | None = None   # cores, at least

    def __bool__(self) -> bool:
        return bool(self.environments) or self.memory is not None or self.cpu is not None


@dataclass(frozen=True)
class Function:
    id: str
    capability: str
    name: str = ""
    template: str | None = None
    parameters: tuple = ()
    ports: tuple = ()          # Port, in configuration order
    constraints: Constraints = Constraints()

    def port_ids(self) -> tuple:
        return tuple(p.id for p in self.ports)


@dataclass(frozen=True)
class Sap:
    id: str
    type: str                  # interface, vlan, gre, host-stack
    name: str = ""
    if_name: str | None = None
    vlan_id: int | None = None
    local_ip: str | None = None
    remote_ip: str | None = None
    key: int | None = None
    ttl: int | None = None
    ipv4: str | None = None
    prefix_length: int | None = None
    dhcp: bool = False
    mac: str | None = None

    @property
    def on_lsi0(self) -> bool:
        """interface and vlan SAPs live on LSI-0; gre and host-stack on the graph-LSI."""
        return self.type in ("interface", "vlan")


@dataclass(frozen=True)
class Rule:
    id: str
    priority: int
    in_port: Endpoint
    match: tuple = ()          # (OpenFlow field, value) pairs, in MATCH_FIELDS order
    actions: tuple = ()        # (kind, arg); output's arg is an Endpoint
    description: str = ""

    def outputs(self) -> list:
        return [arg for kind, arg in self.actions if kind == "output"]

    def match_key(self) -> tuple:
        """What OpenFlow sees as identical: same key, same flow slot."""
        return (self.priority, self.in_port, self.match)


@dataclass(frozen=True)
class Graph:
    id: str
    name: str = ""
    description: str = ""
    monitoring: str = ""
    functions: dict = field(default_factory=dict)   # id -> Function
    saps: dict = field(default_factory=dict)        # id -> Sap
    rules: dict = field(default_factory=dict)       # id -> Rule

    def endpoint_exists(self, endpoint: Endpoint) -> bool:
        if endpoint.sap is not None:
            return endpoint.sap in self.saps
        function = self.functions.get(endpoint.function)
        return function is not None and endpoint.port in function.port_ids()

    def __hash__(self):
        return hash(self.id)


# --- conversion ------------------------------------------------------------------

def _ethertype(value) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return ETHERTYPE_NAMES[value]


def _endpoint(config: dict, sap_key: str, function_key: str, port_key: str) -> Endpoint:
    if sap_key in config:
        return Endpoint(sap=config[sap_key])
    return Endpoint(function=config[function_key], port=config[port_key])


def _action(config: dict) -> tuple:
    if "output-sap" in config:
        return ("output", Endpoint(sap=config["output-sap"]))
    if "output-function" in config:
        return ("output", Endpoint(function=config["output-function"],
                                   port=config["output-function-port"]))
    if "push-vlan" in config:
        return ("push_vlan", int(config["push-vlan"]))
    if "pop-vlan" in config:
        return ("pop_vlan", None)
    for leaf, kind in (("set-eth-src", "set_eth_src"), ("set-eth-dst", "set_eth_dst"),
                       ("set-ipv4-src", "set_ipv4_src"), ("set-ipv4-dst", "set_ipv4_dst")):
        if leaf in config:
            return (kind, config[leaf])
    if "dec-ttl" in config:
        return ("dec_ttl", None)
    if "drop" in config:
        return ("drop", None)
    raise ValueError("unknown action %r" % config)


def _match(config: dict) -> tuple:
    pairs = []
    for leaf, of_field in MATCH_FIELDS:
        if leaf not in config:
            continue
        value = config[leaf]
        if leaf in ("eth-src", "eth-dst"):
            mask = config.get(leaf + "-mask")
            value = value.lower() + ("/" + mask.lower() if mask else "")
        elif leaf == "ether-type":
            value = _ethertype(value)
        elif leaf in ("vlan-id", "vlan-pcp", "ip-proto", "dscp", "l4-src-port", "l4-dst-port"):
            value = int(value)
        pairs.append((of_field, value))
    return tuple(pairs)


def _port(entry: dict) -> Port:
    config = entry.get("config", {})
    ipv4 = config.get("ipv4-address")
    return Port(id=entry["id"], name=config.get("name", ""),
                mac=config.get("mac-address", "").lower() or None, ipv4=ipv4,
                prefix_length=int(config.get("ipv4-prefix-length", DEFAULT_PREFIX_LENGTH))
                if ipv4 else None)


def _constraints(config: dict) -> Constraints:
    if not config:
        return Constraints()
    return Constraints(
        environments=tuple(e.split(":")[-1] for e in config.get("execution-environment", ())),
        memory=int(config["memory"]) if "memory" in config else None,
        cpu=float(config["cpu"]) if "cpu" in config else None)


def _function(entry: dict) -> Function:
    config = entry["config"]
    return Function(id=entry["id"], capability=config["functional-capability"],
                    name=config.get("name", ""), template=config.get("template"),
                    parameters=tuple(config.get("parameter", ())),
                    ports=tuple(_port(p) for p in entry.get("ports", {}).get("port", ())),
                    constraints=_constraints(config.get("constraints")))


def _sap(entry: dict) -> Sap:
    config = entry["config"]
    common = dict(id=entry["id"], name=config.get("name", ""))
    if "interface" in config:
        return Sap(type="interface", if_name=config["interface"]["if-name"], **common)
    if "vlan" in config:
        vlan = config["vlan"]
        return Sap(type="vlan", if_name=vlan["if-name"], vlan_id=int(vlan["vlan-id"]), **common)
    if "gre" in config:
        gre = config["gre"]
        return Sap(type="gre", local_ip=gre["local-ip"], remote_ip=gre["remote-ip"],
                   key=int(gre["key"]), ttl=int(gre["ttl"]) if "ttl" in gre else None, **common)
    host = config["host-stack"]
    ipv4 = host.get("ipv4-address")
    return Sap(type="host-stack", ipv4=ipv4,
               prefix_length=int(host.get("prefix-length", DEFAULT_PREFIX_LENGTH)) if ipv4 else None,
               dhcp="dhcp" in host, mac=host.get("mac-address", "").lower() or None, **common)


def _rule(entry: dict) -> Rule:
    config = entry["config"]
    match = entry.get("match", {}).get("config", {})
    actions = sorted(entry.get("actions", {}).get("action", ()), key=lambda a: int(a["index"]))
    return Rule(id=entry["id"], priority=int(config.get("priority", DEFAULT_PRIORITY)),
                in_port=_endpoint(match, "in-sap", "in-function", "in-function-port"),
                match=_match(match), actions=tuple(_action(a["config"]) for a in actions),
                description=config.get("description", ""))


def graph_from_dict(entry: dict, previous: tuple | None = None) -> Graph:
    """One service-graph list entry, as libyang prints it in JSON.

    previous: (entry, Graph) of an earlier version of the graph; its functions, SAPs and
    rules whose entries are unchanged are reused instead of read again (a commit that adds
    one function to a graph of 500 reads that function and its rules only)."""
    config = entry.get("config", {})
    old_entry, old_graph = previous if previous is not None else ({}, None)

    def read(container, item, parse, old_objects):
        entries = entry.get(container, {}).get(item, ())
        if old_graph is None:
            return {e["id"]: parse(e) for e in entries}
        old_entries = {e["id"]: e for e in old_entry.get(container, {}).get(item, ())}
        return {e["id"]: old_objects[e["id"]] if old_entries.get(e["id"]) == e
                and e["id"] in old_objects else parse(e) for e in entries}

    return Graph(
        id=entry["id"], name=config.get("name", ""), description=config.get("description", ""),
        monitoring=config.get("monitoring", ""),
        functions=read("functions", "function", _function,
                       old_graph.functions if old_graph else {}),
        saps=read("saps", "sap", _sap, old_graph.saps if old_graph else {}),
        rules=read("flow-rules", "flow-rule", _rule, old_graph.rules if old_graph else {}))


def top_level(root, name: str):
    """The top-level sibling called name ('module:node') in a data tree, or None."""
    if root is None:
        return None
    module, _, node = name.partition(":")
    for sibling in root.first_sibling().siblings(include_self=True):
        if sibling.name() == node and sibling.module().name() == module:
            return sibling
    return None


def tree_to_dict(node) -> dict:
    if node is None:
        return {}
    # Not pretty: the indentation would triple the text libyang prints and json reads
    # (graph of 500 functions: 1.6 MB -> 0.5 MB, about half the time).
    return json.loads(node.print_mem("json", with_siblings=False, pretty=False))


class GraphEntry(dict):
    """A service-graph entry as read from libyang's JSON, with that JSON text (the
    snapshot writes the text instead of encoding the entry again)."""
    __slots__ = ("text",)

    def __init__(self, entry: dict, text: str):
        super().__init__(entry)
        self.text = text


class SourceReader:
    """graph id -> the libyang JSON entry of each service graph of a config tree.

    Each graph is printed on its own, and the entries of the last tree read are kept by
    their printed text: a graph that prints the same as last time is the same entry, not
    parsed again. The planner then finds old.source == src by identity for every graph the
    commit left alone (no deep comparison of graphs of hundreds of functions); a changed
    graph is read whole, as tree_to_dict would read it."""

    LIST = SFFG.partition(":")[0] + ":service-graph"

    def __init__(self):
        self._last: dict = {}       # printed JSON of a graph -> its entry

    def read(self, root) -> dict:
        return self.entries(self.texts(root))

    @staticmethod
    def texts(root) -> list:
        """What read() needs of the tree: each graph printed (libyang, no Python object
        built), so that entries() can run while the tree changes."""
        top = top_level(root, SFFG)
        return [node.print_mem("json", with_siblings=False, pretty=False)
                for node in (top.children() if top is not None else ())]

    def entries(self, texts: list) -> dict:
        """graph id -> entry, from what texts() printed."""
        last, seen, out = self._last, {}, {}
        for text in texts:
            entry = last.get(text)
            if entry is None:
                entry = json.loads(text)[self.LIST][0]
                inner = self._inner(text)
                if inner is not None:
                    entry = GraphEntry(entry, inner)
            seen[text] = entry
            out[entry["id"]] = entry
        self._last = seen           # one swap: a concurrent reader only misses the cache
        return out

    def _inner(self, text: str) -> str | None:
        """The entry's own text in the printed list of one ('{"list":[ENTRY]}')."""
        head, tail = '{"%s":[' % self.LIST, "]}"
        if text.startswith(head) and text.endswith(tail):
            return text[len(head):-len(tail)]
        return None


def graphs_from_tree(root) -> dict:
    """{graph id: Graph} from a config tree (None: no graphs)."""
    data = tree_to_dict(top_level(root, SFFG)).get(SFFG, {})
    return {g["id"]: graph_from_dict(g) for g in data.get("service-graph", ())}


def templates_from_tree(root) -> list:
    """The templates configured in the repository, as dicts shaped like template.json."""
    data = tree_to_dict(top_level(root, TEMPLATES)).get(TEMPLATES, {})
    out = []
    for entry in data.get("template", ()):
        config = entry["config"]
        env = config.get("execution-environment")
        out.append({
            "id": entry["id"],
            "description": config.get("description", ""),
            "functional-capability": config["functional-capability"],
            "execution-environment": env.split(":")[-1] if env else None,
            "image-uri": config.get("image-uri"),
            "port-count": int(config.get("port-count", 2)),
            "port-technology": config.get("port-technology", "").split(":")[-1] or None,
            "cpu": float(config.get("cpu", 1)),
            "memory": int(config.get("memory", 16)),
            **({"image-sha256": config["image-sha256"]} if "image-sha256" in config else {}),
            **({"cost": float(config["cost"])} if "cost" in config else {}),
            "poll-mode": bool(config.get("poll-mode", False)),
            "dependencies": [{"name": d["name"], "kind": d.get("config", {}).get("kind", "binary")}
                             for d in entry.get("dependencies", {}).get("dependency", ())],
            "decomposition": entry.get("decomposition"),
            "source": "configuration",
        })
    return out
