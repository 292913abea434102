"""Facts about a libyang context's schema that the datastores and filters ask for often:
namespace to module, child lookup by XML name, list keys, choice membership. Computed
once per schema node and cached per context (contexts are never changed once compiled).
"""

from _libyang import ffi, lib

NULL = ffi.NULL

DATA_NODES = (lib.LYS_CONTAINER | lib.LYS_LEAF | lib.LYS_LEAFLIST | lib.LYS_LIST
              | lib.LYS_ANYXML | lib.LYS_ANYDATA)


def _key(pointer) -> int:
    return int(ffi.cast("uintptr_t", pointer))


def name_of(snode) -> str:
    return ffi.string(snode.name).decode()


def module_name_of(snode) -> str:
    return ffi.string(snode.module.name).decode()


class SchemaIndex:
    """Cached schema lookups for one context."""

    def __init__(self, ctx):
        self.ctx = ctx
        self._modules = None
        self._cases = {}
        self._choice_below = {}
        self._keys = {}
        self._children = {}
        self._steps = {}

    # -- modules --------------------------------------------------------------------
    def _load_modules(self):
        by_ns, by_name = {}, {}
        index = ffi.new("uint32_t *")
        while True:
            module = lib.ly_ctx_get_module_iter(self.ctx.cdata, index)
            if module == NULL:
                break
            name = ffi.string(module.name).decode()
            namespace = ffi.string(module.ns).decode()
            if module.implemented or namespace not in by_ns:
                by_ns[namespace] = module
            by_name.setdefault(name, []).append(module)
            by_name[name].sort(key=lambda m: ffi.string(m.revision).decode()
                               if m.revision != NULL else "", reverse=True)
        self._modules = (by_ns, by_name)

    def module_by_namespace(self, namespace: str):
        """The lys_module with this XML namespace (the implemented one), or None."""
        if self._modules is None:
            self._load_modules()
        return self._modules[0].get(namespace)

    def module_name(self, namespace: str) -> str | None:
        module = self.module_by_namespace(namespace)
        return ffi.string(module.name).decode() if module is not None else None

    def prefix_and_namespace(self, module_name: str):
        """(prefix, namespace) of a module by name, or None."""
        if self._modules is None:
            self._load_modules()
        found = self._modules[1].get(module_name)
        if not found:
            return None
        return ffi.string(found[0].prefix).decode(), ffi.string(found[0].ns).decode()

    def modules(self):
        """Every module of the context (lys_module pointers)."""
        if self._modules is None:
            self._load_modules()
        return [m for found in self._modules[1].values() for m in found]

    # -- schema nodes ---------------------------------------------------------------
    def child(self, parent, namespace: str | None, name: str,
              notifications: bool = False) -> list:
        """The data schema nodes named name under parent (None: top level) in the module
        of namespace; any module when namespace is None (subtree filter wildcard).
        notifications: top-level notifications count (filters of notifications)."""
        k = (_key(parent) if parent is not None else 0, namespace, name, notifications)
        found = self._children.get(k)
        if found is None:
            kinds = DATA_NODES | (lib.LYS_NOTIF if notifications else 0)
            found = self._child(parent, namespace, name, kinds)
            if found:                   # names of the schema only: a bounded cache
                self._children[k] = found
        return found

    def step(self, snode) -> str:
        """'/module:name' for a schema node (a path step with its module prefix)."""
        k = _key(snode)
        found = self._steps.get(k)
        if found is None:
            found = self._steps[k] = "/%s:%s" % (module_name_of(snode), name_of(snode))
        return found

    def _child(self, parent, namespace, name, kinds=DATA_NODES) -> list:
        if namespace is not None:
            module = self.module_by_namespace(namespace)
            if module is None:
                return []
            found = lib.lys_find_child(parent if parent is not None else NULL, module,
                                       name.encode(), len(name.encode()), 0, 0)
            return [found] if found != NULL and found.nodetype & kinds else []
        if parent is not None:
            return [c for c in self.data_children(parent) if name_of(c) == name]
        matches = []
        for module in self.modules():
            if not module.implemented:
                continue
            found = lib.lys_find_child(NULL, module, name.encode(), len(name.encode()), 0, 0)
            if found != NULL and found.nodetype & kinds:
                matches.append(found)
        return matches

    @staticmethod
    def data_children(parent) -> list:
        out = []
        child = lib.lys_getnext(NULL, parent, NULL, 0)
        while child != NULL:
            out.append(child)
            child = lib.lys_getnext(child, parent, NULL, 0)
        return out

    def keys(self, snode) -> tuple:
        """The key leaf names of a list, in order."""
        k = _key(snode)
        found = self._keys.get(k)
        if found is None:
            found = self._keys[k] = tuple(
                name_of(c) for c in self.data_children(snode) if c.flags & lib.LYS_KEY)
        return found

    def cases(self, snode) -> tuple:
        """(choice, case) pointer keys between a data node's schema and its data parent."""
        k = _key(snode)
        found = self._cases.get(k)
        if found is None:
            pairs = []
            parent = snode.parent
            while parent != NULL and not parent.nodetype & DATA_NODES:
                if parent.nodetype == lib.LYS_CASE:
                    pairs.append((_key(parent.parent), _key(parent)))
                parent = parent.parent
            found = self._cases[k] = tuple(pairs)
        return found

    def choice_below(self, snode) -> bool:
        """Whether any data node under this schema node belongs to a choice."""
        k = _key(snode)
        found = self._choice_below.get(k)
        if found is None:
            self._choice_below[k] = False        # recursion guard
            found = any(self.cases(c) or self.choice_below(c) for c in self.data_children(snode))
            self._choice_below[k] = found
        return found


_INDEXES: dict = {}


def schema_index(ctx) -> SchemaIndex:
    """The SchemaIndex of a context (one per context, kept for the process lifetime)."""
    found = _INDEXES.get(id(ctx))
    if found is None or found.ctx is not ctx:
        found = _INDEXES[id(ctx)] = SchemaIndex(ctx)
    return found
