"""NACM's rules: the /nacm configuration compiled (Policy: groups, rule lists of Rules,
the defaults) and the node-instance-identifier paths of path rules as Steps."""

from dataclasses import dataclass, field

from _libyang import lib

NACM_MODULE = "ietf-netconf-acm"
NACM_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
READ, CREATE, UPDATE, DELETE, EXEC = 1, 2, 4, 8, 16
ALL_OPS = READ | CREATE | UPDATE | DELETE | EXEC
_OP_BITS = {"read": READ, "create": CREATE, "update": UPDATE, "delete": DELETE, "exec": EXEC}
OP_NAMES = {v: k for k, v in _OP_BITS.items()}
# RFC 8341 gives ietf-netconf's kill-session and delete-config nacm:default-deny-all
# (pyang's copy of ietf-netconf carries no NACM annotations, so they are named here)
DENY_ALL_RPCS = {("ietf-netconf", "kill-session"), ("ietf-netconf", "delete-config")}
ALWAYS_ALLOWED = {("ietf-netconf", "close-session")}
DATA_NODES = (lib.LYS_CONTAINER | lib.LYS_LEAF | lib.LYS_LEAFLIST | lib.LYS_LIST
              | lib.LYS_ANYXML | lib.LYS_ANYDATA)
TERMINAL = lib.LYS_LEAF | lib.LYS_LEAFLIST | lib.LYS_ANYXML | lib.LYS_ANYDATA
NO_EXT, DENY_WRITE, DENY_ALL = 0, 1, 2
CONFIG_CHANGE = "ietf-netconf-notifications:netconf-config-change"


@dataclass(frozen=True)
class Step:
    module: str | None             # unprefixed: inherited from the step before
    name: str
    predicates: tuple              # (leaf name or ".", value)


@dataclass
class Rule:
    name: str
    module: str | None             # None: any module ("*")
    kind: str                      # any, rpc, notification, path
    target: object = None          # rpc/notification name (None: "*"), or a tuple of Steps
    ops: int = ALL_OPS
    permit: bool = False


def parse_path(text: str) -> tuple:
    """The steps of a node-instance-identifier in libyang's canonical form
    (/module:name[key='value']/name...); "/" is no step (every node)."""
    steps = []
    i, n = 0, len(text)
    module = None
    while i < n:
        if text[i] != "/":
            raise ValueError("a path starts each step with /: %r" % text)
        i += 1
        if i >= n:
            break
        start = i
        while i < n and text[i] not in "/[":
            i += 1
        name = text[start:i]
        if ":" in name:
            module, name = name.split(":", 1)
        predicates = []
        while i < n and text[i] == "[":
            end = i + 1
            quote = None
            while end < n and (quote is not None or text[end] != "]"):
                if quote is not None and text[end] == quote:
                    quote = None
                elif quote is None and text[end] in "'\"":
                    quote = text[end]
                end += 1
            body = text[i + 1:end]
            left, _, right = body.partition("=")
            left = left.strip()
            if ":" in left:
                left = left.split(":", 1)[1]
            value = right.strip()
            if len(value) >= 2 and value[0] in "'\"" and value[-1] == value[0]:
                value = value[1:-1]
            predicates.append((left, value))
            i = end + 1
        steps.append(Step(module, name, tuple(predicates)))
    return tuple(steps)


@dataclass
class Policy:
    """The compiled /nacm configuration."""
    enabled: bool = True
    read_default: bool = True
    write_default: bool = False
    exec_default: bool = True
    external_groups: bool = True
    groups: dict = field(default_factory=dict)          # group -> set of users
    rule_lists: list = field(default_factory=list)      # (set of groups, [Rule])

    @classmethod
    def from_json(cls, data: dict) -> "Policy":
        nacm = data.get("%s:nacm" % NACM_MODULE, {})
        policy = cls(enabled=nacm.get("enable-nacm", True),
                     read_default=nacm.get("read-default", "permit") == "permit",
                     write_default=nacm.get("write-default", "deny") == "permit",
                     exec_default=nacm.get("exec-default", "permit") == "permit",
                     external_groups=nacm.get("enable-external-groups", True))
        for group in nacm.get("groups", {}).get("group", []):
            policy.groups[group["name"]] = set(group.get("user-name", []))
        for rule_list in nacm.get("rule-list", []):
            rules = []
            for rule in rule_list.get("rule", []):
                ops_text = rule.get("access-operations", "*")
                ops = ALL_OPS if ops_text == "*" else 0
                if ops_text != "*":
                    for word in str(ops_text).split():
                        ops |= _OP_BITS.get(word, 0)
                module = rule.get("module-name", "*")
                kind, target = "any", None
                if "rpc-name" in rule:
                    kind, target = "rpc", rule["rpc-name"]
                elif "notification-name" in rule:
                    kind, target = "notification", rule["notification-name"]
                elif "path" in rule:
                    kind, target = "path", parse_path(rule["path"])
                if kind in ("rpc", "notification") and target == "*":
                    target = None
                rules.append(Rule(rule["name"], None if module == "*" else module, kind,
                                  target, ops, rule.get("action") == "permit"))
            policy.rule_lists.append((set(rule_list.get("group", [])), rules))
        return policy
