"""NETCONF access control (RFC 8341, ietf-netconf-acm) on operations, reads, writes and
notifications.

The /nacm configuration lives in running like any data. It is compiled once per change
of it (Nacm.invalidate() on every change of running that touches it) into a Policy:
the groups, and the rule lists in order. A user's view (Access) is made once per policy
and user: the rules of the rule lists whose groups hold the user, in order, split by
access operation. Then:

- an operation is checked against the exec rules (rpc-name, or no rule-type), the
  defaults of RFC 8341 (kill-session and delete-config are default-deny-all, close-session
  is always allowed) and exec-default;
- a data node is checked against the rules matching its module (where the node is
  defined) and the path rules that match it or one of its ancestors, then the node's
  nacm:default-deny-all / default-deny-write, then read-default or write-default.
  Path rules are matched step by step while a tree is walked from the top (a small state
  machine per rule: no XPath evaluation over the datastore); a subtree whose decision
  cannot change below its root (no path rule partly matched, no node of another module
  or with a NACM extension below it in the schema) is decided at its root and not walked.
  A user whose first applicable rule matches everything (operators) costs one look-up.

Reads drop the denied nodes silently (a denied node with a permitted descendant stays as
its ancestor, with its list keys). Writes are checked before anything changes, on the
edit's plan (an edit) or on the two trees (commit, copy-config, delete-config):
access-denied with the path of the first denied node.

Bypass: NACM off (enable-nacm false), and the recovery session: the NETCONF user named
by netconf.nacm-recovery-user (default "recovery"; its key is in
<state>/users/recovery/authorized_keys, which only root on the node can write).
Groups: /nacm/groups, and with enable-external-groups the lines of
<state>/users/<name>/groups.
"""

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote

from _libyang import ffi, lib
from lxml import etree

from ..datastore import libyang_abi
from ..datastore.errors import EditError, Problem
from ..datastore.schema import schema_index
from ..datastore.tree import NULL, DataTree, children, is_default, node_path, siblings
from ..publish import Event

LOG = logging.getLogger(__name__)

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
_TERMINAL = lib.LYS_LEAF | lib.LYS_LEAFLIST | lib.LYS_ANYXML | lib.LYS_ANYDATA
NO_EXT, DENY_WRITE, DENY_ALL = 0, 1, 2
CONFIG_CHANGE = "ietf-netconf-notifications:netconf-config-change"


def access_denied(message: str, path: str | None = None,
                  error_type: str = "application") -> Problem:
    return Problem("access-denied", message, path=path, error_type=error_type)


class AccessDenied(EditError):
    """A write NACM refuses (access-denied, error-path of the first denied node)."""


# -- rules ------------------------------------------------------------------------------
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


# -- schema facts -------------------------------------------------------------------------
class _Schema:
    """Per schema node: module name, name, NACM extension, and whether a node below it in
    the schema is of another module or carries a NACM extension (cached per context)."""

    def __init__(self):
        self.info: dict = {}
        self.below: dict = {}
        self.paths: dict = {}
        self.kids: dict = {}
        self.lookups: dict = {}

    def of(self, snode):
        k = int(ffi.cast("uintptr_t", snode))
        found = self.info.get(k)
        if found is None:
            found = (ffi.string(snode.module.name).decode(), ffi.string(snode.name).decode(),
                     _extension(snode), bool(snode.nodetype & _TERMINAL),
                     bool(snode.flags & lib.LYS_KEY))
            self.info[k] = found
        return found

    def data_children(self, snode) -> list:
        """The data node children of snode (through choices and cases), cached."""
        k = int(ffi.cast("uintptr_t", snode))
        found = self.kids.get(k)
        if found is None:
            found = []
            stack = [lib.lysc_node_child(snode)]
            while stack:
                child = stack.pop()
                while child != NULL:
                    if child.nodetype & (lib.LYS_CHOICE | lib.LYS_CASE):
                        stack.append(lib.lysc_node_child(child))
                    elif child.nodetype & DATA_NODES:
                        found.append(child)
                    child = child.next
            self.kids[k] = found
        return found

    def key_names(self, snode) -> list:
        """The key leaves' names of a list (none for other nodes)."""
        keys = []
        if snode.nodetype == lib.LYS_LIST:
            child = lib.lysc_node_child(snode)
            while child != NULL and child.flags & lib.LYS_KEY:
                keys.append(ffi.string(child.name).decode())
                child = child.next
        return keys

    def key_lookup(self, snode, step) -> str | None:
        """The relative path that finds the instance of a list a rule's step names by
        all of its keys (hash look-up), or None: the step needs every instance looked at
        (no predicate, a predicate on a non-key, a leaf-list value...)."""
        cache_key = (int(ffi.cast("uintptr_t", snode)), step)
        if cache_key in self.lookups:
            return self.lookups[cache_key]
        found = None
        if snode.nodetype == lib.LYS_LIST and step.predicates and step.name != "*":
            keys = self.key_names(snode)
            given = dict(step.predicates)
            if sorted(given) == sorted(keys) and len(given) == len(step.predicates):
                found = "%s:%s%s" % (ffi.string(snode.module.name).decode(), step.name,
                                     "".join("[%s=%s]" % (k, _quote(given[k])) for k in keys))
        self.lookups[cache_key] = found
        return found

    def find(self, ctx, schema_path: str):
        found = self.paths.get(schema_path, False)
        if found is False:
            snode = lib.lys_find_path(ctx.cdata, NULL, schema_path.encode(), 0)
            found = self.paths[schema_path] = snode if snode != NULL else None
        return found

    def mixed_below(self, snode) -> bool:
        k = int(ffi.cast("uintptr_t", snode))
        found = self.below.get(k)
        if found is None:
            self.below[k] = False          # a recursion guard (schemas are trees)
            module = snode.module
            found = False
            child = lib.lysc_node_child(snode)
            while child != NULL:
                if child.nodetype & (lib.LYS_CHOICE | lib.LYS_CASE):
                    if child.module != module or _extension(child) or self.mixed_below(child):
                        found = True
                elif child.module != module or _extension(child) or self.mixed_below(child):
                    found = True
                if found:
                    break
                child = child.next
            self.below[k] = found
        return found


def _extension(snode) -> int:
    exts = snode.exts
    if exts == NULL:
        return NO_EXT
    count = ffi.cast("uint64_t *", exts)[-1]
    found = NO_EXT
    for i in range(count):
        definition = exts[i].__getattribute__("def")
        if ffi.string(definition.module.name) != NACM_MODULE.encode():
            continue
        name = ffi.string(definition.name)
        if name == b"default-deny-all":
            return DENY_ALL
        if name == b"default-deny-write":
            found = DENY_WRITE
    return found


_SCHEMAS: dict = {}


def _schema(ctx) -> _Schema:
    found = _SCHEMAS.get(id(ctx))
    if found is None:
        found = _SCHEMAS[id(ctx)] = _Schema()
    return found


def _quote(value: str) -> str:
    return "'%s'" % value if "'" not in value else '"%s"' % value


def _value(node) -> str:
    raw = lib.lyd_get_value(node)
    return ffi.string(raw).decode() if raw != NULL else ""


# -- one user's view ----------------------------------------------------------------------
class Access:
    """What one user may do under one Policy."""

    def __init__(self, ctx, policy: Policy, user: str, groups: set, counters: "Counters"):
        self.ctx = ctx
        self.user = user
        self.policy = policy
        self.counters = counters
        self.schema = _schema(ctx)
        rules = []
        if groups:
            for list_groups, list_rules in policy.rule_lists:
                if "*" in list_groups or list_groups & groups:
                    rules.extend(list_rules)
        self.rules = rules
        self.paths = [r.target for r in rules if r.kind == "path"]
        self.path_index = {id(r): i for i, r in enumerate(r for r in rules if r.kind == "path")}
        self.data = {}
        for op in (READ, CREATE, UPDATE, DELETE):
            self.data[op] = [(self.path_index.get(id(r)), r) for r in rules
                             if r.ops & op and r.kind in ("any", "path")]
        self.default = {READ: policy.read_default, CREATE: policy.write_default,
                        UPDATE: policy.write_default, DELETE: policy.write_default}
        self._decisions: dict = {}
        # every path rule at its first step; a rule of path "/" matches everything
        self.root = (tuple((i, 0) for i, steps in enumerate(self.paths) if steps),
                     frozenset(i for i, steps in enumerate(self.paths) if not steps))

    # -- operations ---------------------------------------------------------------
    def may_exec(self, module: str, name: str) -> bool:
        if (module, name) in ALWAYS_ALLOWED:
            return True
        for rule in self.rules:
            if not rule.ops & EXEC or rule.kind in ("notification", "path"):
                continue
            if rule.module is not None and rule.module != module:
                continue
            if rule.kind == "rpc" and rule.target not in (None, name):
                continue
            return rule.permit
        if (module, name) in DENY_ALL_RPCS:
            return False
        return self.policy.exec_default

    def may_receive(self, module: str, name: str) -> bool:
        """A notification by its name (RFC 8341 3.4.6)."""
        for rule in self.rules:
            if not rule.ops & READ or rule.kind in ("rpc", "path"):
                continue
            if rule.module is not None and rule.module != module:
                continue
            if rule.kind == "notification" and rule.target not in (None, name):
                continue
            return rule.permit
        return self.policy.read_default

    # -- data ---------------------------------------------------------------------
    def blanket(self, op: int) -> bool | None:
        """The decision for every data node when the first rule for op matches them all."""
        rules = self.data[op]
        if rules and rules[0][1].kind == "any" and rules[0][1].module is None:
            return rules[0][1].permit
        return None

    def decide(self, op: int, module: str, ext: int, active: frozenset) -> bool:
        cache_key = (op, module, ext, active)
        found = self._decisions.get(cache_key)
        if found is not None:
            return found
        found = None
        for index, rule in self.data[op]:
            if rule.module is not None and rule.module != module:
                continue
            if index is not None and index not in active:
                continue
            found = rule.permit
            break
        if found is None:
            if ext == DENY_ALL or (ext == DENY_WRITE and op != READ):
                found = False
            else:
                found = self.default[op]
        self._decisions[cache_key] = found
        return found

    def _advance(self, node, info, state):
        partials, active = state
        if not partials:
            return state
        module, name = info[0], info[1]
        left = []
        added = None
        for index, at in partials:
            step = self.paths[index][at]
            if step.name != name and step.name != "*":
                continue
            if step.module is not None and step.module != module:
                continue
            if step.predicates and not self._predicates(node, step.predicates):
                continue
            if at + 1 == len(self.paths[index]):
                added = (added or set())
                added.add(index)
            else:
                left.append((index, at + 1))
        if added:
            active = active | added
        return tuple(left), active

    @staticmethod
    def _predicates(node, predicates) -> bool:
        for leaf, value in predicates:
            if leaf == ".":
                if _value(node) != value:
                    return False
                continue
            for child in children(node):
                if ffi.string(child.schema.name).decode() == leaf:
                    if _value(child) == value:
                        break
            else:
                return False
        return True

    def state_of(self, node):
        """The path-matching state at node (from its ancestors), and node's facts."""
        chain = []
        while node != NULL:
            chain.append(node)
            node = ffi.cast("struct lyd_node *", node.parent) if node.parent != NULL else NULL
        state = self.root
        info = None
        for n in reversed(chain):
            info = self.schema.of(n.schema)
            state = self._advance(n, info, state)
        return state, info

    def permitted(self, op: int, node) -> bool:
        if self.blanket(op) is not None:
            return self.blanket(op)
        state, info = self.state_of(node)
        return self.decide(op, info[0], info[2], state[1])

    # reads
    def _read(self, node, state, delete) -> bool:
        """Whether node stays in a read; its denied descendants deleted (delete(node))."""
        info = self.schema.of(node.schema)
        state = self._advance(node, info, state)
        permit = self.decide(READ, info[0], info[2], state[1])
        if info[3] or (not state[0] and not self.schema.mixed_below(node.schema)):
            return permit
        return self._read_children(node, state, delete) or permit

    def _read_children(self, node, state, delete) -> bool:
        """The children of node read (denied ones deleted); whether one stays. Per child
        schema node: the instances no path rule can single out share one decision, made
        once; when that keeps them whole, only the instances a rule names by their keys
        (found by libyang's hash look-up) are looked at, not the thousands of others."""
        partials, active = state
        kept = False
        for snode in self.schema.data_children(node.schema):
            info = self.schema.of(snode)
            if info[4]:
                continue
            first = lib.lyd_child(node)         # (the first child may have been deleted)
            if first == NULL:
                break
            named, free = [], False
            for index, at in partials:
                step = self.paths[index][at]
                if step.name in (info[1], "*") and step.module in (None, info[0]):
                    lookup = self.schema.key_lookup(snode, step)
                    if lookup is None:
                        free = True
                    else:
                        named.append(lookup)
            whole = not free and self.decide(READ, info[0], info[2], active) and \
                (info[3] or not self.schema.mixed_below(snode))
            if whole:
                if libyang_abi.find_sibling_val(first, snode) is None:
                    continue
                kept = True
                for lookup in dict.fromkeys(named):
                    out = ffi.new("struct lyd_node **")
                    if lib.lyd_find_path(node, lookup.encode(), 0, out) == lib.LY_SUCCESS and \
                            out[0] != NULL and not self._read(out[0], state, delete):
                        delete(out[0])
                continue
            instance = libyang_abi.find_sibling_val(first, snode)
            while instance is not None and instance != NULL and instance.schema == snode:
                following = instance.next
                if self._read(instance, state, delete):
                    kept = True
                else:
                    delete(instance)
                instance = following if following != NULL else None
        return kept

    def _untouched(self, node) -> bool:
        """node's whole subtree is readable (a walk that stops at the first denial)."""
        def denied(node):
            raise _Denied(node)
        try:
            return self._read(node, self.root, denied)
        except _Denied:
            return False

    def filter_tree(self, tree: DataTree) -> None:
        """Delete from tree (the caller's) what the user may not read."""
        if self.blanket(READ) is True:
            return
        for top in tree.top_nodes():
            if self.blanket(READ) is False or not self._read(top, self.root, tree.delete):
                tree.delete(top)

    def filter_selected(self, selected) -> None:
        """A filters.Selected pruned: a borrowed top-level node the user may not read
        whole is copied into selected.copies, then the copies are pruned."""
        if self.blanket(READ) is True:
            return
        keep = []
        out = ffi.new("struct lyd_node **")
        for tree, node in selected.borrowed:
            if self.blanket(READ) is None and self._untouched(node):
                keep.append((tree, node))
            elif lib.lyd_dup_single(node, NULL, lib.LYD_DUP_RECURSIVE | lib.LYD_DUP_WITH_FLAGS,
                                    out) == lib.LY_SUCCESS:
                selected.copies.merge_forest(out[0], destruct=True)
        selected.borrowed = keep
        self.filter_tree(selected.copies)

    def check_readable(self, tree: DataTree) -> None:
        """copy-config from a datastore: the user must be able to read all of it (what it
        may not read would be copied unseen); AccessDenied at the first node it may not."""
        if self.blanket(READ) is True:
            return

        def denied(node):
            raise _Denied(node)
        try:
            for top in tree.top_nodes():
                if not self._read(top, self.root, denied):
                    raise _Denied(top)
        except _Denied as exc:
            self.counters.denied_data_writes += 1
            path = node_path(exc.args[0])
            raise AccessDenied(access_denied("access denied: user %s may not read %s"
                                             % (self.user, path), path)) from None

    def readable_path(self, path: str) -> bool:
        """The user may read the node at a libyang data path (which need not exist: a
        deleted node's path in a change notification). Keys are the path's predicates."""
        if self.blanket(READ) is not None:
            return self.blanket(READ)
        found = self._path_state(path)
        if found is None:
            return False
        state, info, _ = found
        if info is None:
            return True
        return self.decide(READ, info[0], info[2], state[1])

    def _path_state(self, path: str, stop: int = 0):
        """(state, facts, schema path) at a data path's node (stop: that many steps before
        it), or None when the path is not of the schema."""
        try:
            steps = parse_path(path)
        except ValueError:
            return None
        state, info, schema_path, module = self.root, None, "", None
        for step in steps[:len(steps) - stop]:
            module = step.module or module
            schema_path += "/%s:%s" % (module, step.name)
            snode = self.schema.find(self.ctx, schema_path)
            if snode is None:
                return None
            info = self.schema.of(snode)
            state = self._advance_virtual(info, dict(step.predicates), state)
        return state, info, schema_path

    # a YANG patch (RFC 8641 push-change-update) per receiver
    def data_path(self, target: str) -> str | None:
        """An RFC 8040 data resource identifier (/m:list=k1,k2/leaf) as a libyang data
        path (/m:list[a='k1'][b='k2']/leaf), the keys named from the schema."""
        out, schema_path, module = "", "", None
        for step in target.strip("/").split("/"):
            name, has_values, values = step.partition("=")
            if ":" in name:
                module, name = name.split(":", 1)
            schema_path += "/%s:%s" % (module, name)
            snode = self.schema.find(self.ctx, schema_path)
            if snode is None:
                return None
            out += "/%s:%s" % (module, name)
            if has_values:
                given = [unquote(v) for v in values.split(",")]
                if snode.nodetype == lib.LYS_LEAFLIST:
                    out += "[.=%s]" % _quote(given[0])
                else:
                    keys = self.schema.key_names(snode)
                    if len(keys) != len(given):
                        return None
                    out += "".join("[%s=%s]" % (k, _quote(v)) for k, v in zip(keys, given))
        return out

    def filter_patch(self, edits) -> list:
        """The edits of a YANG patch (agent/datastore/patch.PatchEdit) this user may see:
        an edit of a node it may not read is dropped, an edit's value loses the nodes it
        may not read below. Computed per receiver from one shared patch."""
        if self.blanket(READ) is True:
            return list(edits)
        if self.blanket(READ) is False:
            return []
        kept = []
        for edit in edits:
            path = self.data_path(edit.target)
            if path is None or not self.readable_path(path):
                continue
            if edit.value is not None:
                value = self._filter_value(path, edit.value)
                if value is None:
                    continue
                if value is not edit.value:
                    edit = replace(edit, value=value)
            kept.append(edit)
        return kept

    def _filter_value(self, path: str, value: bytes):
        """A patch value (the XML of the node at path) without what may not be read;
        the same bytes when nothing goes, None when nothing stays."""
        found = self._path_state(path, stop=1)
        if found is None:
            return None
        state, _, parent_schema = found
        element = etree.fromstring(value)
        pruned: list = []
        if not self._element(element, parent_schema, state, pruned):
            return None
        return etree.tostring(element) if pruned else value

    def _element(self, element, parent_schema: str, state, pruned: list) -> bool:
        """Like _read, on an lxml element of a patch value (keys from its children)."""
        index = schema_index(self.ctx)
        qname = etree.QName(element)
        module = index.module_name(qname.namespace) if qname.namespace else None
        schema_path = "%s/%s:%s" % (parent_schema, module, qname.localname)
        snode = self.schema.find(self.ctx, schema_path) if module else None
        if snode is None:
            return False
        info = self.schema.of(snode)
        if info[3]:
            values = {".": element.text or ""}
        else:
            values = {etree.QName(c).localname: c.text or "" for c in element
                      if isinstance(c.tag, str)}
        state = self._advance_virtual(info, values, state)
        permit = self.decide(READ, info[0], info[2], state[1])
        if info[3] or (not state[0] and not self.schema.mixed_below(snode)):
            return permit
        kept = False
        keys = set(self.schema.key_names(snode))
        for child in list(element):
            if not isinstance(child.tag, str) or etree.QName(child).localname in keys:
                continue
            if self._element(child, schema_path, state, pruned):
                kept = True
            else:
                element.remove(child)
                pruned.append(child)
        return permit or kept

    def _advance_virtual(self, info, values, state):
        partials, active = state
        left, added = [], set()
        for index, at in partials:
            step = self.paths[index][at]
            if step.name not in (info[1], "*") or step.module not in (None, info[0]):
                continue
            if any(values.get(leaf) != value for leaf, value in step.predicates):
                continue
            if at + 1 == len(self.paths[index]):
                added.add(index)
            else:
                left.append((index, at + 1))
        return tuple(left), (active | added) if added else active

    def notification(self, event):
        """The event as this user may receive it: itself, a copy without what the user
        may not read (a netconf-config-change's edits), or None (not to be sent: its
        name is denied, or a subtree it is about is not readable)."""
        found = event.cache.get(("nacm", id(self)))
        if found is not None:
            return found or None
        found = self._notification(event)
        event.cache[("nacm", id(self))] = found if found is not None else False
        return found

    def _notification(self, event):
        module, _, name = event.kind.partition(":")
        if not self.may_receive(module, name):
            return None
        if event.kind == CONFIG_CHANGE and event.is_notification:
            content = event.content
            body = dict(content.get(CONFIG_CHANGE, {}))
            edits = body.get("edit", [])
            kept = [e for e in edits if self.readable_path(e["target"])]
            if edits and not kept:
                return None
            if len(kept) == len(edits):
                return event
            body["edit"] = kept
            copy = Event(event.kind, {CONFIG_CHANGE: body},
                         [c for c in event.changes if self.readable_path(c.path)],
                         time=event.time)
            copy.seq = event.seq
            return copy
        if any(c.path != "/" and not self.readable_path(c.path) for c in event.changes):
            return None
        return event

    def readable(self, node) -> bool:
        """The user may read node (its ancestors' paths considered)."""
        return self.permitted(READ, node)

    # writes
    def _first_denied(self, op, node, state):
        """The first node of node's subtree (node first) op is denied on, or None."""
        info = self.schema.of(node.schema)
        state = self._advance(node, info, state)
        if not self.decide(op, info[0], info[2], state[1]):
            return node
        if info[3] or (not state[0] and not self.schema.mixed_below(node.schema)):
            return None
        for child in children(node):
            if self.schema.of(child.schema)[4]:
                continue
            found = self._first_denied(op, child, state)
            if found is not None:
                return found
        return None

    def _deny(self, op, node):
        self.counters.denied_data_writes += 1
        path = node_path(node)
        raise AccessDenied(access_denied("access denied: user %s may not %s %s"
                                         % (self.user, OP_NAMES[op], path), path))

    def _check_subtree(self, op, node, state):
        if info_np(node):
            # a non-presence container is no data of its own: what it holds is checked
            for child in children(node):
                self._check_subtree(op, child, self._advance(node, self.schema.of(node.schema),
                                                             state))
            return
        found = self._first_denied(op, node, state)
        if found is not None:
            self._deny(op, found)

    def _check_update(self, node, state):
        info = self.schema.of(node.schema)
        state = self._advance(node, info, state)
        if not self.decide(UPDATE, info[0], info[2], state[1]):
            self._deny(UPDATE, node)

    def write_blanket(self) -> bool:
        return all(self.blanket(op) is True for op in (CREATE, UPDATE, DELETE))

    def compare(self, old_first, new_first, state, merge=False):
        """Check the change from the siblings old_first to new_first (same parent);
        merge: new_first is merged into old_first (nothing of old goes)."""
        for node in list(siblings(new_first)):
            info = self.schema.of(node.schema)
            if info[4]:
                continue
            match = _find(old_first, node)
            if match is None or is_default(match) and not is_default(node):
                self._check_subtree(CREATE, node, state)
            elif info[3]:
                if node.schema.nodetype == lib.LYS_LEAF and _value(node) != _value(match):
                    self._check_update(node, state)
            else:
                inner = self._advance(node, info, state)
                self.compare(lib.lyd_child(match), lib.lyd_child(node), inner, merge)
        if merge:
            return
        for node in list(siblings(old_first)):
            info = self.schema.of(node.schema)
            if info[4] or is_default(node):
                continue
            if _find(new_first, node) is None:
                self._check_subtree(DELETE, node, state)

    def check_trees(self, old: DataTree | None, new: DataTree | None, paths=None) -> None:
        """The change from old to new (whole, or only the subtrees at data paths)."""
        if self.write_blanket():
            return
        if paths is None:
            self.compare(old.first if old is not None else NULL,
                         new.first if new is not None else NULL, self.root)
            return
        for path in paths:
            path = path.lstrip("\x01\x02")
            first, second = (old.find(path) if old is not None else None,
                             new.find(path) if new is not None else None)
            anchor = second if second is not None else first
            if anchor is None:
                continue
            parent = ffi.cast("struct lyd_node *", anchor.parent)
            state = self.state_of(parent)[0] if parent != NULL else self.root
            self._compare_one(first, second, state)

    def _compare_one(self, first, second, state, merge=False):
        if second is None:
            self._check_subtree(DELETE, first, state)
        elif first is None:
            self._check_subtree(CREATE, second, state)
        elif self.schema.of(second.schema)[3]:
            if _value(first) != _value(second):
                self._check_update(second, state)
        else:
            inner = self._advance(second, self.schema.of(second.schema), state)
            self.compare(lib.lyd_child(first), lib.lyd_child(second), inner, merge)

    def check_plan(self, target: DataTree, plan) -> None:
        """An edit's plan (agent/datastore/edit.py) against its target, before it runs."""
        if self.write_blanket():
            return
        if any(action[0] == "clear" for action in plan.actions):
            from ..datastore.edit import execute
            work = target.dup()
            try:
                execute(work, plan.actions)
                self.check_trees(target, work)
            finally:
                work.free()
            return
        for action in plan.actions:
            kind = action[0]
            if kind in ("merge", "merge-all"):
                nodes = siblings(action[1]) if kind == "merge-all" else (action[1],)
                recursive = kind == "merge-all" or action[2]
                for node in nodes:
                    parent = ffi.cast("struct lyd_node *", node.parent)
                    state = self.state_of(parent)[0] if parent != NULL else self.root
                    existing = target.find(node_path(node))
                    if existing is not None and is_default(existing):
                        existing = None
                    if existing is None:
                        if recursive:
                            self._check_subtree(CREATE, node, state)
                        elif not info_np(node):
                            info = self.schema.of(node.schema)
                            inner = self._advance(node, info, state)
                            if not self.decide(CREATE, info[0], info[2], inner[1]):
                                self._deny(CREATE, node)
                    elif recursive:
                        self._compare_one(existing, node, state, merge=True)
            elif kind in ("delete", "move"):
                existing = target.find(action[1])
                if existing is None:
                    continue
                parent = ffi.cast("struct lyd_node *", existing.parent)
                state = self.state_of(parent)[0] if parent != NULL else self.root
                if kind == "delete":
                    self._check_subtree(DELETE, existing, state)
                else:
                    self._check_update(existing, state)


class _Denied(Exception):
    """A read would leave something out."""


def info_np(node) -> bool:
    """A non-presence container."""
    return node.schema.nodetype == lib.LYS_CONTAINER and \
        not node.schema.flags & lib.LYS_PRESENCE


def _find(first, node):
    """The instance of node among the siblings from first (by schema and keys/value)."""
    if first == NULL:
        return None
    if node.schema.nodetype & (lib.LYS_LIST | lib.LYS_LEAFLIST):
        return libyang_abi.find_sibling_first(first, node)
    # a single-instance node, whatever its value (find_sibling_first compares values)
    return libyang_abi.find_sibling_val(first, node.schema)


# -- the server's part ------------------------------------------------------------------
@dataclass
class Counters:
    denied_operations: int = 0
    denied_data_writes: int = 0
    denied_notifications: int = 0


class Nacm:
    """The policy of a server: compiled from running on demand, per-user views cached."""

    def __init__(self, ctx, datastores, users_dir: Path | None = None,
                 recovery_user: str = "recovery"):
        self.ctx = ctx
        self.datastores = datastores
        self.users_dir = Path(users_dir) if users_dir is not None else None
        self.recovery_user = recovery_user
        self.counters = Counters()
        self._policy: Policy | None = None
        self._views: dict = {}

    def invalidate(self) -> None:
        self._policy = None
        self._views = {}

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = self._compile(self.datastores.running)
        return self._policy

    def _compile(self, running: DataTree) -> Policy:
        node = running.find("/%s:nacm" % NACM_MODULE) if not running.empty else None
        if node is None:
            return Policy()
        buf = ffi.new("char **")
        if lib.lyd_print_mem(buf, node, lib.LYD_JSON, lib.LYD_PRINT_WD_ALL) != lib.LY_SUCCESS \
                or buf[0] == NULL:
            return Policy()
        try:
            return Policy.from_json(json.loads(ffi.string(buf[0]).decode()))
        finally:
            lib.free(buf[0])

    def _groups_file(self, user: str) -> Path | None:
        return self.users_dir / user / "groups" if self.users_dir is not None else None

    def external_groups(self, user: str) -> set:
        path = self._groups_file(user)
        if path is None:
            return set()
        try:
            text = path.read_text()
        except (OSError, ValueError):
            return set()
        return {line.strip() for line in text.splitlines()
                if line.strip() and not line.strip().startswith("#")}

    def _groups_stamp(self, user: str):
        """What tells a changed groups file (its mtime and size), None without one."""
        path = self._groups_file(user)
        try:
            found = path.stat() if path is not None else None
        except OSError:
            return None
        return (found.st_mtime_ns, found.st_size) if found is not None else None

    def access(self, user: str) -> Access | None:
        """The user's view, or None when NACM does not apply (off, recovery session).
        Made once per policy and user (and again when the user's groups file changes)."""
        policy = self.policy
        if not policy.enabled or (self.recovery_user and user == self.recovery_user):
            return None
        stamp = self._groups_stamp(user) if policy.external_groups else None
        cached = self._views.get(user)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        groups = {g for g, users in policy.groups.items() if user in users}
        if policy.external_groups:
            groups |= self.external_groups(user)
        view = Access(self.ctx, policy, user, groups, self.counters)
        self._views[user] = (stamp, view)
        return view

    def changed(self, change) -> None:
        """A datastore observer: a change of running that may touch /nacm recompiles."""
        if getattr(change, "datastore", None) != "running":
            return
        edits = change.known_edits
        if edits is None or any(path.startswith("/%s:" % NACM_MODULE) for path, _ in edits):
            self.invalidate()

    def state(self) -> DataTree:
        """/nacm's counters (config false), to merge with running's /nacm."""
        c = self.counters
        xml = ("<nacm xmlns='%s'><denied-operations>%d</denied-operations>"
               "<denied-data-writes>%d</denied-data-writes><denied-notifications>%d"
               "</denied-notifications></nacm>" % (NACM_NS, c.denied_operations,
                                                   c.denied_data_writes,
                                                   c.denied_notifications))
        return DataTree.parse(self.ctx, xml, config_only=False, validate=False)


__all__ = ["Access", "AccessDenied", "Nacm", "Policy", "parse_path"]


# -- the shipped policy -------------------------------------------------------------------
SFFG_MODULE = "composer-sffg"
DOMAIN_MODULE = "composer-domain"
# what a tenant may read besides its graphs: the domain description (but the node's
# management address) and what a NETCONF client needs to know the server
TENANT_READABLE = (DOMAIN_MODULE, "ietf-yang-library", "ietf-netconf-monitoring",
                   "ietf-subscribed-notifications", "nc-notifications")
# the notifications a tenant receives (those about data it may not read are not sent)
TENANT_NOTIFICATIONS = ((SFFG_MODULE, "*"),
                        ("ietf-netconf-notifications", "netconf-config-change"),
                        ("ietf-yang-push", "*"), ("ietf-subscribed-notifications", "*"),
                        ("nc-notifications", "*"))
OPERATOR_ONLY_PATHS = ("/composer-domain:domain/config/management-address",
                       "/composer-domain:domain/state/management-address")


def _rule(name, action, ops="*", module=None, path=None, extra="") -> str:
    body = "<name>%s</name>" % name
    if module is not None:
        body += "<module-name>%s</module-name>" % module
    if path is not None:
        module_name = path.split(":", 1)[0].strip("/")
        body += "<path xmlns:%s='urn:composer-nc:yang:%s'>%s</path>" % (
            module_name, module_name, _prefixed(path, module_name))
    return "<rule>%s<access-operations>%s</access-operations><action>%s</action>%s</rule>" \
        % (body, ops, action, extra)


def _notification_rule(module, name) -> str:
    return ("<rule><name>notify-%s-%s</name><module-name>%s</module-name>"
            "<notification-name>%s</notification-name><access-operations>read"
            "</access-operations><action>permit</action></rule>"
            % (module, "all" if name == "*" else name, module, name))


def _prefixed(path: str, module: str) -> str:
    """A canonical path (/module:a/b[k='v']) with every step prefixed, as XML wants."""
    steps = parse_path(path)
    out = []
    for step in steps:
        text = "/%s:%s" % (module, step.name)
        for leaf, value in step.predicates:
            text += "[%s:%s='%s']" % (module, leaf, value) if leaf != "." else "[.='%s']" % value
        out.append(text)
    return "".join(out)


def default_policy(operators=("admin",)) -> str:
    """The /nacm of the startup made on a first start: group operators (full access),
    and the rule list of group tenants (read the domain description but the management
    address; nothing else of the data; every operation but the default-deny-all ones).
    Each tenant's own graphs are a rule list of its own (tenant_policy), placed first."""
    tenant_rules = "".join(
        _rule("hide-%s" % path.split("/")[-2], "deny", "read", path=path)
        for path in OPERATOR_ONLY_PATHS)
    tenant_rules += "".join(_rule("read-%s" % module, "permit", "read", module=module)
                            for module in TENANT_READABLE)
    tenant_rules += "".join(_notification_rule(module, name) for module, name in
                            TENANT_NOTIFICATIONS)
    tenant_rules += _rule("no-other-data", "deny", "read create update delete", module="*")
    return ("<nacm xmlns='%s'><enable-nacm>true</enable-nacm>"
            "<read-default>permit</read-default><write-default>deny</write-default>"
            "<exec-default>permit</exec-default>"
            "<groups><group><name>operators</name>%s</group>"
            "<group><name>tenants</name></group></groups>"
            "<rule-list><name>operators</name><group>operators</group>%s</rule-list>"
            "<rule-list><name>tenants</name><group>tenants</group>%s</rule-list></nacm>"
            % (NACM_NS, "".join("<user-name>%s</user-name>" % u for u in operators),
               _rule("permit-all", "permit", module="*"), tenant_rules))


def tenant_policy(user: str, graphs) -> str:
    """The edit that makes user a tenant owning graphs: in group tenants, and a rule list
    tenant-<user> (first of all: before the tenants' denials) permitting everything on
    those service graphs (names checked by the caller: no quotes)."""
    rules = "".join(_rule("graph-%s" % graph, "permit",
                          path="/%s:service-graphs/service-graph[id='%s']" % (SFFG_MODULE,
                                                                              graph))
                    for graph in graphs)
    return ("<nacm xmlns='%s' xmlns:yang='urn:ietf:params:xml:ns:yang:1'>"
            "<groups><group><name>tenants</name><user-name>%s</user-name></group>"
            "<group><name>tenant-%s</name><user-name>%s</user-name></group></groups>"
            "<rule-list yang:insert='first'><name>tenant-%s</name><group>tenant-%s</group>"
            "%s</rule-list></nacm>" % (NACM_NS, user, user, user, user, user, rules))
