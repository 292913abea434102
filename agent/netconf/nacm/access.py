"""One user's view of the policy (Access): what it may run, read, write and receive."""

from dataclasses import replace
from urllib.parse import unquote

from _libyang import ffi, lib
from lxml import etree

from ...datastore import libyang_abi
from ...datastore.errors import EditError, Problem
from ...datastore.schema import schema_index
from ...datastore.tree import NULL, DataTree, children, is_default, node_path, siblings
from ...publish import Event
from .rules import (ALWAYS_ALLOWED, CONFIG_CHANGE, CREATE, DELETE, DENY_ALL, DENY_ALL_RPCS,
                    DENY_WRITE, EXEC, OP_NAMES, READ, UPDATE, Policy, parse_path)
from .schema import (extension_of, find_instance, non_presence, quote, schema_facts,
                     value_of)


def access_denied(message: str, path: str | None = None,
                  error_type: str = "application") -> Problem:
    return Problem("access-denied", message, path=path, error_type=error_type)


class AccessDenied(EditError):
    """A write NACM refuses (access-denied, error-path of the first denied node)."""


class Access:
    """What one user may do under one Policy."""

    def __init__(self, ctx, policy: Policy, user: str, groups: set, counters):
        self.ctx = ctx
        self.user = user
        self.policy = policy
        self.counters = counters
        self.schema = schema_facts(ctx)
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
        found = self._named(EXEC, "rpc", module, name)
        if found is not None:
            return found
        if (module, name) in DENY_ALL_RPCS or self._schema_denies_all(module, name):
            return False
        return self.policy.exec_default

    def _schema_denies_all(self, module: str, name: str) -> bool:
        """The operation's own nacm:default-deny-all (e.g. ietf-subscribed-notifications'
        kill-subscription), which only a rule naming it overrides (RFC 8341 3.4.4)."""
        snode = self.schema.find(self.ctx, "/%s:%s" % (module, name))
        return snode is not None and extension_of(snode) == DENY_ALL

    def may_receive(self, module: str, name: str) -> bool:
        """A notification by its name (RFC 8341 3.4.6)."""
        found = self._named(READ, "notification", module, name)
        return self.policy.read_default if found is None else found

    def _named(self, op: int, kind: str, module: str, name: str) -> bool | None:
        """The action of the first rule for op matching an operation or a notification
        (a rule of that kind naming it or "*", or a rule with no rule type), or None."""
        for rule in self.rules:
            if not rule.ops & op or rule.kind not in (kind, "any"):
                continue
            if rule.module is not None and rule.module != module:
                continue
            if rule.kind == kind and rule.target not in (None, name):
                continue
            return rule.permit
        return None

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
                if value_of(node) != value:
                    return False
                continue
            for child in children(node):
                if ffi.string(child.schema.name).decode() == leaf:
                    if value_of(child) == value:
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
                    out += "[.=%s]" % quote(given[0])
                else:
                    keys = self.schema.key_names(snode)
                    if len(keys) != len(given):
                        return None
                    out += "".join("[%s=%s]" % (k, quote(v)) for k, v in zip(keys, given))
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
        if non_presence(node):
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
            match = find_instance(old_first, node)
            if match is None or is_default(match) and not is_default(node):
                self._check_subtree(CREATE, node, state)
            elif info[3]:
                if node.schema.nodetype == lib.LYS_LEAF and value_of(node) != value_of(match):
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
            if find_instance(new_first, node) is None:
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
            if value_of(first) != value_of(second):
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
                        elif not non_presence(node):
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
