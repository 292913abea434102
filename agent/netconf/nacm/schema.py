"""Facts NACM asks of the schema and the data, cached per context: each schema node's
module, name and NACM extension, whether anything below it could be decided differently,
its data children and list keys; a node's value, its instance among siblings."""

from _libyang import ffi, lib

from ...datastore import libyang_abi
from ...datastore.tree import NULL
from .rules import DATA_NODES, DENY_ALL, DENY_WRITE, NACM_MODULE, NO_EXT, TERMINAL


class SchemaFacts:
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
                     extension_of(snode), bool(snode.nodetype & TERMINAL),
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
                                     "".join("[%s=%s]" % (k, quote(given[k])) for k in keys))
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
                    if child.module != module or extension_of(child) or self.mixed_below(child):
                        found = True
                elif child.module != module or extension_of(child) or self.mixed_below(child):
                    found = True
                if found:
                    break
                child = child.next
            self.below[k] = found
        return found


def extension_of(snode) -> int:
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


_FACTS: dict = {}


def schema_facts(ctx) -> SchemaFacts:
    found = _FACTS.get(id(ctx))
    if found is None:
        found = _FACTS[id(ctx)] = SchemaFacts()
    return found


def quote(value: str) -> str:
    return "'%s'" % value if "'" not in value else '"%s"' % value


def value_of(node) -> str:
    raw = lib.lyd_get_value(node)
    return ffi.string(raw).decode() if raw != NULL else ""


def non_presence(node) -> bool:
    """A non-presence container."""
    return node.schema.nodetype == lib.LYS_CONTAINER and \
        not node.schema.flags & lib.LYS_PRESENCE


def find_instance(first, node):
    """The instance of node among the siblings from first (by schema and keys/value)."""
    if first == NULL:
        return None
    if node.schema.nodetype & (lib.LYS_LIST | lib.LYS_LEAFLIST):
        return libyang_abi.find_sibling_first(first, node)
    # a single-instance node, whatever its value (find_sibling_first compares values)
    return libyang_abi.find_sibling_val(first, node.schema)
