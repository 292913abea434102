"""<edit-config> semantics (RFC 6241 section 7.2, RFC 7950 sections 7.9 and 7.8.6) on
libyang trees.

An edit is the <config> content parsed by libyang (parse only, strict, no state data);
libyang keeps the nc:operation and yang:insert attributes as metadata on the nodes.
Applying an edit is two steps:

1. plan(): walk the edit against the target without changing it, into a list of
   actions (delete the node at this path, merge that edit subtree, move an ordered
   entry) and a list of problems (data-exists, data-missing, missing-instance). Whether
   a node exists is judged on the target as the edit leaves it: below a node that the
   edit replaces or creates nothing exists yet. Default nodes count as absent (RFC 6243
   basic mode explicit).
2. execute(): run the actions on a tree. Actions refer to paths and edit nodes, never to
   target nodes, so the same plan can be replayed on another tree with the same
   content (the datastores use this to keep candidate and running apart without
   copying the whole datastore).

An edit without any attribute and with default-operation merge (the common case) is one
libyang merge in C, plus the RFC 7950 choice rule (creating a node of one case deletes
the nodes of the other cases), which is checked only where the schema has choices.
"""

from dataclasses import dataclass, field

from _libyang import ffi, lib
from lxml import etree

from . import xpath
from .errors import EditError, Problem, data_exists, data_missing
from .schema import module_name_of, schema_index
from .tree import DataTree, children, is_default, key, node_path, siblings

NULL = ffi.NULL

OPERATIONS = ("merge", "replace", "create", "delete", "remove")
DEFAULT_OPERATIONS = ("merge", "replace", "none")
ERROR_OPTIONS = ("stop-on-error", "continue-on-error", "rollback-on-error")
INSERT_POSITIONS = ("first", "last", "before", "after")

NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
_OPERATION = "{%s}operation" % NC_NS


class Edit:
    """A parsed <config>: the libyang edit tree (owned), whether any element in it
    carries an attribute (then the edit is walked node by node), and the leaf deletes
    taken out of it before parsing (a leaf to delete usually comes without a value,
    which libyang would refuse for most types): (operation, data path, context) with
    context 'fresh' when an ancestor is created or replaced by the same edit, 'gone'
    when an ancestor is deleted, else 'normal'."""

    def __init__(self, tree: DataTree, annotated: bool, detached=()):
        self.tree = tree
        self.annotated = annotated
        self.detached = list(detached)

    @classmethod
    def parse(cls, ctx, xml: bytes, annotated: bool = True) -> "Edit":
        """Parse XML data (top-level nodes); raises agent.model.ValidationError."""
        return cls(DataTree.parse(ctx, xml, config_only=True, validate=False, strict=True),
                   annotated)

    @classmethod
    def from_xml(cls, ctx, config, default_operation: str = "merge") -> "Edit":
        """The children of an lxml <config> element (changed in place: value-less leaf
        deletes are taken out). Raises EditError for a bad nc:operation value and
        agent.model.ValidationError for data that does not fit the model."""
        annotated = bool(config.xpath("boolean(.//@*)"))
        detached = []
        index = schema_index(ctx)
        for child in config:
            namespace = etree.QName(child).namespace if isinstance(child.tag, str) else ""
            if namespace is None or (namespace and index.module_by_namespace(namespace) is None):
                raise EditError(Problem(
                    "unknown-namespace", "no YANG module has the namespace %s" % namespace,
                    error_type="application",
                    info=(("bad-element", etree_local(child)),
                          ("bad-namespace", namespace or ""))))
        if annotated:
            for element in config.iterdescendants():
                if not isinstance(element.tag, str):
                    continue
                op = element.get(_OPERATION)
                if op is None:
                    continue
                if op not in OPERATIONS:
                    raise EditError(Problem(
                        "bad-attribute", "invalid operation %r" % op, error_type="protocol",
                        info=(("bad-attribute", "operation"),
                              ("bad-element", etree_local(element)))))
                if op in ("delete", "remove") and len(element) == 0 and \
                        not (element.text or "").strip():
                    found = _leaf_path(index, config, element)
                    if found is not None:
                        detached.append((op, found, _context(config, element,
                                                             default_operation)))
            for op, (path, element), context in detached:
                element.getparent().remove(element)
            detached = [(op, path, context) for op, (path, _), context in detached]
        body = b"".join(etree.tostring(child) for child in config if isinstance(child.tag, str))
        return cls(DataTree.parse(ctx, body, config_only=True, validate=False, strict=True),
                   annotated, detached)

    def free(self) -> None:
        self.tree.free()


def etree_local(element) -> str:
    return etree.QName(element).localname


def _context(config, element, default_operation) -> str:
    """How the ancestors of element in the same edit affect it."""
    context = "fresh" if default_operation == "replace" else "normal"
    ancestors = []
    parent = element.getparent()
    while parent is not None and parent is not config:
        ancestors.append(parent)
        parent = parent.getparent()
    for ancestor in reversed(ancestors):
        op = ancestor.get(_OPERATION)
        if op in ("delete", "remove"):
            return "gone"
        if op in ("create", "replace"):
            context = "fresh"
    return context


def _leaf_path(index, config, element):
    """(data path, element) when element is a non-key leaf of the model, else None."""
    chain = []
    node = element
    while node is not None and node is not config:
        chain.append(node)
        node = node.getparent()
    chain.reverse()
    snode, steps = None, []
    for item in chain:
        qname = etree.QName(item)
        found = index.child(snode, qname.namespace, qname.localname)
        if len(found) != 1:
            return None
        module = module_name_of(found[0])
        step = "/%s" % qname.localname if snode is not None and \
            module_name_of(snode) == module else "/%s:%s" % (module, qname.localname)
        snode = found[0]
        if snode.nodetype == lib.LYS_LIST:
            for key_name in index.keys(snode):
                values = [c.text or "" for c in item
                          if isinstance(c.tag, str) and etree.QName(c).localname == key_name]
                if len(values) != 1:
                    return None
                step += "[%s=%s]" % (key_name, xpath.quote(values[0]))
        elif item is not element and snode.nodetype != lib.LYS_CONTAINER:
            return None
        steps.append(step)
    if snode is None or snode.nodetype != lib.LYS_LEAF or snode.flags & lib.LYS_KEY:
        return None
    return "".join(steps), element


@dataclass
class Plan:
    """What an edit does to a target: actions to execute, problems found."""
    actions: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    edits: list = field(default_factory=list)     # the Edit objects the actions refer to

    @property
    def changes(self) -> bool:
        return bool(self.actions)


class _Stop(Exception):
    """stop-on-error / rollback-on-error: the first problem ends the walk."""


def _meta(node, module: bytes, name: bytes, ctx) -> str | None:
    meta = node.meta
    while meta != NULL:
        if ffi.string(meta.name) == name and ffi.string(meta.annotation.module.name) == module:
            return ffi.string(lib.lyd_value_get_canonical(ctx.cdata,
                                                          ffi.addressof(meta.value))).decode()
        meta = meta.next
    return None


def _is_key(node) -> bool:
    return bool(node.schema.flags & lib.LYS_KEY)


def _only_keys(node) -> bool:
    """An inner node with nothing but its keys in the edit."""
    if not node.schema.nodetype & (lib.LYS_CONTAINER | lib.LYS_LIST):
        return False
    return all(_is_key(child) for child in children(node))


def _step(node) -> str:
    """The path step naming a node's schema (with its module prefix)."""
    return "%s:%s" % (ffi.string(node.schema.module.name).decode(),
                      ffi.string(node.schema.name).decode())


class _Planner:
    def __init__(self, target: DataTree, edit: Edit, default_operation: str, error_option: str):
        self.target = target
        self.edit = edit
        self.ctx = target.ctx
        self.default_operation = default_operation
        self.error_option = error_option
        self.info = schema_index(self.ctx)
        self.plan = Plan(edits=[edit])
        self.spine = set()
        self.cleaned = set()
        self.seen = set()

    # -- problems -------------------------------------------------------------------
    def problem(self, problem: Problem) -> None:
        self.plan.problems.append(problem)
        if self.error_option != "continue-on-error":
            raise _Stop()

    # -- the walk -------------------------------------------------------------------
    def run(self) -> Plan:
        inherited, fresh = self.default_operation, False
        if self.default_operation == "replace":
            self.plan.actions.append(("clear",))
            inherited, fresh = "replace", True
        first = self.edit.tree.first
        try:
            if not self.edit.annotated and self.default_operation != "none":
                if not fresh:
                    for node in siblings(first):
                        self.case_cleanup_subtree(node, exists=self.exists(node_path(node)))
                if first != NULL:
                    self.plan.actions.append(("merge-all", first))
                return self.plan
            if self.edit.annotated:
                for node in self.edit.tree.xpath("//*[@*]"):
                    while node != NULL:
                        if key(node) in self.spine:
                            break
                        self.spine.add(key(node))
                        node = ffi.cast("struct lyd_node *", node.parent)
            for node in siblings(first):
                self.walk(node, inherited, fresh)
            for op, path, context in self.edit.detached:
                self.detached(op, path, context)
        except _Stop:
            pass
        return self.plan

    def detached(self, op: str, path: str, context: str) -> None:
        if context == "gone":
            return
        existing = None if context == "fresh" else self.exists(path)
        if existing is None:
            if op == "delete":
                self.problem(data_missing(path))
            return
        self.plan.actions.append(("delete", path))

    def exists(self, path: str):
        node = self.target.find(path)
        if node is None or is_default(node):
            return None
        return node

    def walk(self, node, inherited: str, fresh: bool) -> None:
        if _is_key(node):
            return                      # keys identify their list entry
        op = _meta(node, b"ietf-netconf", b"operation", self.ctx) or inherited
        path = node_path(node)
        if path in self.seen and node.schema.nodetype & (lib.LYS_LIST | lib.LYS_LEAFLIST):
            self.problem(Problem("bad-element", "the edit holds this entry twice", path=path,
                                 info=(("bad-element", ffi.string(node.schema.name).decode()),)))
            return
        self.seen.add(path)
        existing = None if fresh else self.exists(path)
        if op in ("delete", "remove"):
            if existing is None:
                if op == "delete":
                    self.problem(data_missing(path))
                return
            self.plan.actions.append(("delete", path))
            return
        if op == "none":
            if existing is None and not any(not _is_key(c) for c in children(node)) and \
                    not any(d[1].startswith(path + "/") for d in self.edit.detached):
                self.problem(data_missing(path))
                return
            for child in children(node):
                self.walk(child, "none", fresh or existing is None)
            return
        # merge, replace, create
        if op == "create" and existing is not None:
            self.problem(data_exists(path))
            return
        if op == "replace" and existing is not None:
            self.plan.actions.append(("delete", path))
        if existing is None and not fresh:
            self.case_cleanup(node)
        below_fresh = fresh or existing is None or op in ("create", "replace")
        if op == "merge" and existing is not None and _only_keys(node) and \
                key(node) not in self.spine:
            return                      # nothing to merge into what exists
        if key(node) in self.spine:
            self.plan.actions.append(("merge", node, False))
            self.insert(node, path, existing)
            for child in children(node):
                self.walk(child, op, below_fresh)
        else:
            self.plan.actions.append(("merge", node, True))
            self.insert(node, path, existing)
            if not below_fresh:
                self.case_cleanup_subtree(node, exists=True, top_done=True)

    # -- RFC 7950 7.9: a node of one case deletes the other cases' nodes --------------
    def case_cleanup_subtree(self, node, exists, top_done: bool = False) -> None:
        """Case cleanup for the edit nodes of a subtree merged as a whole."""
        if not exists:
            if not top_done:
                self.case_cleanup(node)
            return                      # a new node: nothing below it exists
        if not self.info.choice_below(node.schema):
            return
        for child in children(node):
            if _is_key(child):
                continue
            if self.info.cases(child.schema) or self.info.choice_below(child.schema):
                path = node_path(child)
                existing = self.exists(path)
                if existing is None:
                    self.case_cleanup(child)
                else:
                    self.case_cleanup_subtree(child, exists=True, top_done=True)

    def case_cleanup(self, node) -> None:
        cases = self.info.cases(node.schema)
        if not cases:
            return
        if node.parent == NULL:
            parent_path, target_children = None, self.target.top_nodes()
        else:
            parent_path = node_path(ffi.cast("struct lyd_node *", node.parent))
            tparent = self.target.find(parent_path)
            if tparent is None:
                return
            target_children = list(children(tparent))
        for choice, case in cases:
            if (parent_path, choice) in self.cleaned:
                continue
            self.cleaned.add((parent_path, choice))
            for sibling in target_children:
                for choice2, case2 in self.info.cases(sibling.schema):
                    if choice2 == choice and case2 != case:
                        self.plan.actions.append(("delete", node_path(sibling)))
                        break

    # -- RFC 7950 7.8.6: insert into user-ordered lists and leaf-lists ----------------
    def insert(self, node, path: str, existing) -> None:
        where = _meta(node, b"yang", b"insert", self.ctx)
        if where is None:
            return
        schema = node.schema
        if not schema.flags & lib.LYS_ORDBY_USER:
            self.problem(Problem("bad-attribute", "insert applies only to ordered-by user "
                                 "lists and leaf-lists", path=path,
                                 info=(("bad-attribute", "insert"),
                                       ("bad-element", ffi.string(schema.name).decode()))))
            return
        parent = "" if node.parent == NULL else node_path(
            ffi.cast("struct lyd_node *", node.parent))
        anchor = None
        if where in ("before", "after"):
            if schema.nodetype == lib.LYS_LEAFLIST:
                value = _meta(node, b"yang", b"value", self.ctx)
                attribute = "value"
                anchor = None if value is None else "%s/%s[.=%s]" % (
                    parent, _step(node), xpath.quote(value))
            else:
                predicate = _meta(node, b"yang", b"key", self.ctx)
                attribute = "key"
                anchor = None if predicate is None else "%s/%s%s" % (
                    parent, _step(node), xpath.strip_prefixes(predicate))
            if anchor is None:
                self.problem(Problem("missing-attribute", "insert %s needs the %s attribute"
                                     % (where, attribute), path=path, error_type="protocol",
                                     info=(("bad-attribute", attribute),
                                           ("bad-element", ffi.string(schema.name).decode()))))
                return
            if self.exists(anchor) is None or anchor == path:
                self.problem(Problem("bad-attribute", "no instance %s to insert %s" %
                                     (anchor, where), path=path, app_tag="missing-instance",
                                     info=(("bad-attribute", attribute),
                                           ("bad-element", ffi.string(schema.name).decode()))))
                return
        self.plan.actions.append(("move", path, where, anchor))


def plan(target: DataTree, edit: Edit, default_operation: str = "merge",
         error_option: str = "rollback-on-error") -> Plan:
    """The actions and problems of applying edit to target (target is not changed).

    rollback-on-error and stop-on-error end the walk at the first problem (the
    datastores then apply nothing); continue-on-error skips the node in error and goes
    on, the walk following libyang's order of the edit (schema order, instances of a
    list in document order)."""
    if default_operation not in DEFAULT_OPERATIONS:
        raise ValueError("default-operation %r" % default_operation)
    return _Planner(target, edit, default_operation, error_option).run()


def execute(tree: DataTree, actions) -> None:
    """Run a plan's actions on a tree."""
    for action in actions:
        kind = action[0]
        if kind == "merge":
            tree.merge_node(action[1], recursive=action[2])
        elif kind == "delete":
            node = tree.find(action[1])
            if node is not None:
                tree.delete(node)
        elif kind == "merge-all":
            tree.merge_forest(action[1])
        elif kind == "clear":
            tree.free()
        elif kind == "move":
            _move(tree, *action[1:])
        else:
            raise ValueError("unknown edit action %r" % (kind,))


def _move(tree: DataTree, path: str, where: str, anchor_path: str | None) -> None:
    node = tree.find(path)
    if node is None:
        return
    if where in ("before", "after"):
        anchor = tree.find(anchor_path)
        if anchor is not None and anchor != node:
            tree.move(node, anchor, before=where == "before")
        return
    instances = [n for n in (siblings(tree.first) if node.parent == NULL
                             else children(ffi.cast("struct lyd_node *", node.parent)))
                 if n.schema == node.schema]
    if where == "first" and instances[0] != node:
        tree.move(node, instances[0], before=True)
    elif where == "last" and instances[-1] != node:
        tree.move(node, instances[-1], before=False)
