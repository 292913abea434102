"""The content of a datastore: a libyang data forest and the C operations on it.

Everything heavy (parse, duplicate, merge, find, validate, print) runs in libyang's C
code; Python only holds the pointer to the first top-level sibling, which libyang may
change when nodes are inserted or freed, so every change goes through DataTree.
"""

import libyang
from _libyang import ffi, lib

from ..model.data import parse as parse_data
from ..model.errors import raise_from, collect
from . import libyang_abi

NULL = ffi.NULL

# with-defaults retrieval modes (RFC 6243) -> libyang printer flags
WD_FLAGS = {
    "explicit": lib.LYD_PRINT_WD_EXPLICIT,
    "report-all": lib.LYD_PRINT_WD_ALL,
    "report-all-tagged": lib.LYD_PRINT_WD_ALL_TAG,
    "trim": lib.LYD_PRINT_WD_TRIM,
}

_DUP_SUBTREE = lib.LYD_DUP_RECURSIVE | lib.LYD_DUP_WITH_PARENTS | lib.LYD_DUP_NO_META
_DUP_NODE = lib.LYD_DUP_WITH_PARENTS | lib.LYD_DUP_NO_META


def node_path(node) -> str:
    """The data path of a node (libyang's: module-name prefixes, key predicates)."""
    raw = lib.lyd_path(node, lib.LYD_PATH_STD, NULL, 0)
    try:
        return ffi.string(raw).decode()
    finally:
        lib.free(raw)


def children(node):
    """The children of an inner node (nothing for terminal nodes)."""
    child = lib.lyd_child(node)
    while child != NULL:
        yield child
        child = child.next


def siblings(first):
    node = first
    while node != NULL:
        yield node
        node = node.next


def top_of(node):
    """The top-level ancestor of a node."""
    while node.parent != NULL:
        node = ffi.cast("struct lyd_node *", node.parent)
    return node


def is_default(node) -> bool:
    """A node libyang added as a default (not set by anyone)."""
    return bool(node.flags & lib.LYD_DEFAULT)


def key(node) -> int:
    """A hashable identity for a node pointer."""
    return int(ffi.cast("uintptr_t", node))


class DataTree:
    """A datastore's forest of top-level nodes, owned by this object until free()."""

    __slots__ = ("ctx", "first")

    def __init__(self, ctx: libyang.Context, first=NULL):
        self.ctx = ctx
        self.first = first if first is not None else NULL

    # -- construction ---------------------------------------------------------------
    @classmethod
    def parse(cls, ctx, text: bytes | str, *, config_only: bool = True, validate: bool = True,
              strict: bool = True) -> "DataTree":
        """Parse XML data; raises ValidationError (from agent.model)."""
        root = parse_data(ctx, text, "xml", config_only=config_only, validate=validate,
                          strict=strict)
        return cls(ctx, root.cdata if root is not None else NULL)

    def dup(self) -> "DataTree":
        if self.first == NULL:
            return DataTree(self.ctx)
        out = ffi.new("struct lyd_node **")
        if lib.lyd_dup_siblings(self.first, NULL, lib.LYD_DUP_RECURSIVE | lib.LYD_DUP_WITH_FLAGS,
                                out) != lib.LY_SUCCESS:
            raise_from(self.ctx, "cannot copy the datastore")
        return DataTree(self.ctx, out[0])

    def free(self) -> None:
        if self.first != NULL:
            lib.lyd_free_all(self.first)
        self.first = NULL

    def take(self) -> "DataTree":
        """Move the content into a new DataTree, leaving this one empty."""
        moved = DataTree(self.ctx, self.first)
        self.first = NULL
        return moved

    # -- reading --------------------------------------------------------------------
    @property
    def empty(self) -> bool:
        return self.first == NULL

    def root(self) -> libyang.DNode | None:
        """The first top-level node as a libyang DNode (what the engine gets), or None."""
        if self.first == NULL:
            return None
        return libyang.DNode.new(self.ctx, self.first)

    def top_nodes(self) -> list:
        return list(siblings(self.first))

    def find(self, path: str):
        """The node at a data path, or None."""
        if self.first == NULL:
            return None
        out = ffi.new("struct lyd_node **")
        ret = lib.lyd_find_path(self.first, path.encode(), False, out)
        if ret != lib.LY_SUCCESS:
            collect(self.ctx)
            return None
        return out[0]

    def xpath(self, expr: str) -> list:
        """The nodes an XPath expression (module-name prefixes) selects; raises
        ValidationError when the expression is invalid or not a node-set."""
        out = ffi.new("struct ly_set **")
        collect(self.ctx)
        if self.first == NULL:
            # nothing to select, but a bad expression is still an error
            if lib.lys_find_xpath(self.ctx.cdata, NULL, expr.encode(), 0, out) != lib.LY_SUCCESS:
                raise_from(self.ctx, "invalid XPath expression")
            lib.ly_set_free(out[0], NULL)
            return []
        if lib.lyd_find_xpath(self.first, expr.encode(), out) != lib.LY_SUCCESS:
            raise_from(self.ctx, "invalid XPath expression")
        try:
            return [out[0].dnodes[i] for i in range(out[0].count)]
        finally:
            lib.ly_set_free(out[0], NULL)

    def print(self, with_defaults: str = "explicit", node=None, pretty: bool = False,
              keep_empty: bool = False) -> bytes:
        """XML of all top-level nodes (or of one subtree); keep_empty prints empty
        non-presence containers too."""
        start = self.first if node is None else node
        if start == NULL:
            return b""
        flags = WD_FLAGS[with_defaults] | (0 if pretty else lib.LYD_PRINT_SHRINK)
        if keep_empty:
            flags |= lib.LYD_PRINT_KEEPEMPTYCONT
        if node is None:
            flags |= lib.LYD_PRINT_WITHSIBLINGS
        buf = ffi.new("char **")
        if lib.lyd_print_mem(buf, start, lib.LYD_XML, flags) != lib.LY_SUCCESS:
            raise_from(self.ctx, "cannot print data")
        if buf[0] == NULL:
            return b""
        try:
            return ffi.string(buf[0])
        finally:
            lib.free(buf[0])

    # -- changing -------------------------------------------------------------------
    def delete(self, node) -> None:
        """Free one node and its subtree."""
        if node == self.first:
            self.first = node.next if node.next != NULL else NULL
        lib.lyd_free_tree(node)

    def clear(self) -> None:
        self.free()

    def merge_forest(self, source_first, destruct: bool = False) -> None:
        """Merge a forest of top-level nodes (libyang merge: leaves take the source value,
        missing nodes are created)."""
        if source_first == NULL:
            return
        target = ffi.new("struct lyd_node **")
        target[0] = self.first
        flags = lib.LYD_MERGE_DESTRUCT if destruct else 0
        if lib.lyd_merge_siblings(target, source_first, flags) != lib.LY_SUCCESS:
            raise_from(self.ctx, "cannot merge data")
        self.first = target[0]

    def merge_node(self, node, recursive: bool = True, keep_flags: bool = False) -> None:
        """Merge one node of another tree (with its subtree when recursive), creating its
        ancestors here as needed; metadata (edit attributes) is not copied; keep_flags
        keeps libyang's node flags (which nodes are defaults)."""
        out = ffi.new("struct lyd_node **")
        flags = _DUP_SUBTREE if recursive else _DUP_NODE
        if keep_flags:
            flags |= lib.LYD_DUP_WITH_FLAGS
        if lib.lyd_dup_single(node, NULL, flags, out) != lib.LY_SUCCESS:
            raise_from(self.ctx, "cannot copy data")
        self.merge_forest(top_of(out[0]), destruct=True)

    def move(self, node, anchor, before: bool) -> bool:
        """Move a user-ordered instance before or after another instance."""
        if before:
            return libyang_abi.insert_before(anchor, node) == 0
        return libyang_abi.insert_after(anchor, node) == 0

    def validate(self, config_only: bool = True) -> None:
        """Validate in place (adding default nodes); raises ValidationError with data
        paths (errors reported by schema path are located in this tree)."""
        collect(self.ctx)
        tree = ffi.new("struct lyd_node **")
        tree[0] = self.first
        flags = lib.LYD_VALIDATE_NO_STATE if config_only else 0
        ret = lib.lyd_validate_all(tree, self.ctx.cdata, flags, NULL)
        self.first = lib.lyd_first_sibling(tree[0]) if tree[0] != NULL else NULL
        if ret != lib.LY_SUCCESS:
            raise_from(self.ctx, "validation failed", root=self.root())

    def add_defaults(self) -> None:
        """Add the default nodes that are missing (for with-defaults report-all)."""
        tree = ffi.new("struct lyd_node **")
        tree[0] = self.first
        if lib.lyd_new_implicit_all(tree, self.ctx.cdata, lib.LYD_IMPLICIT_NO_STATE,
                                    NULL) != lib.LY_SUCCESS:
            raise_from(self.ctx, "cannot add default nodes")
        self.first = tree[0]
