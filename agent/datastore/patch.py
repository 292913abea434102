"""What changed between two snapshots of the same selection, as the edits of a YANG patch
(RFC 8072), for YANG-push on-change updates (RFC 8641 push-change-update).

edits(old, new) diffs the two trees with libyang (lyd_diff_siblings) and walks the diff:
a node created is one "create" edit carrying the new subtree, a node deleted one
"delete" edit, a leaf whose value changed (or an entry of a user-ordered list that
moved) one "replace" edit carrying the new node; below a created or deleted node
nothing more. Each edit's target is the node's data resource identifier (RFC 8040
3.5.3: "/module:list=key1,key2/leaf"), its value the XML of the node itself, the form
RFC 8641's examples use.
"""

from dataclasses import dataclass
from urllib.parse import quote

from _libyang import ffi, lib

from ..model.errors import collect
from .tree import NULL, DataTree, children, node_path

CHANGE_TYPES = ("create", "delete", "insert", "move", "replace")


@dataclass(frozen=True)
class PatchEdit:
    operation: str          # create, delete, replace
    target: str             # RFC 8040 data resource identifier
    value: bytes | None     # the node's XML (None for delete)


def _operation(ctx, node) -> str | None:
    meta = node.meta
    while meta != NULL:
        if ffi.string(meta.name) == b"operation" and \
                ffi.string(meta.annotation.module.name) == b"yang":
            return ffi.string(lib.lyd_value_get_canonical(
                ctx.cdata, ffi.addressof(meta.value))).decode()
        meta = meta.next
    return None


def data_steps(path: str) -> list[str]:
    """The steps of a libyang data path (split on '/' outside predicates)."""
    steps, current, quote_char, depth = [], [], None, 0
    for char in path:
        if quote_char is not None:
            current.append(char)
            if char == quote_char:
                quote_char = None
            continue
        if char in "'\"" and depth:
            quote_char = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "/" and not depth:
            if current:
                steps.append("".join(current))
            current = []
            continue
        current.append(char)
    if current:
        steps.append("".join(current))
    return steps


def _predicates(step: str) -> tuple[str, list[str]]:
    """(name, [key values]) of a step such as list[k1='a'][k2="b"] or leaf-list[.='v']."""
    name, _, rest = step.partition("[")
    values = []
    rest = "[" + rest if rest else ""
    index = 0
    while index < len(rest):
        if rest[index] != "[":
            break
        end_eq = rest.index("=", index)
        quote_char = rest[end_eq + 1]
        if quote_char in "'\"":
            close = rest.index(quote_char, end_eq + 2)
            values.append(rest[end_eq + 2:close])
            index = close + 2                   # past the quote and ']'
        else:                                   # a position, [1]
            close = rest.index("]", index)
            values.append(rest[index + 1:close])
            index = close + 1
    return name, values


def resource_identifier(path: str) -> str:
    """A libyang data path as an RFC 8040 data resource identifier:
    /m:a/b[k='x y'] -> /m:a/b=x%20y; several keys are joined with ','."""
    out = []
    for step in data_steps(path):
        name, values = _predicates(step)
        if values:
            name += "=" + ",".join(quote(v, safe="") for v in values)
        out.append(name)
    return "/" + "/".join(out)


def _print_node(ctx, node) -> bytes:
    """The XML of one node and its subtree, without the diff's metadata."""
    out = ffi.new("struct lyd_node **")
    if lib.lyd_dup_single(node, NULL, lib.LYD_DUP_RECURSIVE | lib.LYD_DUP_NO_META,
                          out) != lib.LY_SUCCESS:
        collect(ctx)
        return b""
    copy = DataTree(ctx, out[0])
    try:
        return copy.print("explicit", node=out[0])
    finally:
        copy.free()


def edits(old: DataTree, new: DataTree, excluded=()) -> list[PatchEdit]:
    """The YANG patch edits that turn old into new (both of the same context), without
    the change types in excluded (RFC 8641 excluded-change)."""
    ctx = (old if old is not None else new).ctx
    out = ffi.new("struct lyd_node **")
    if lib.lyd_diff_siblings(old.first if old is not None else NULL,
                             new.first if new is not None else NULL, 0, out) != lib.LY_SUCCESS:
        collect(ctx)
        raise RuntimeError("libyang cannot compare the two snapshots")
    found: list[PatchEdit] = []
    try:
        stack = []
        node = out[0]
        while node != NULL:
            stack.append(node)
            node = node.next
        stack.reverse()
        while stack:
            node = stack.pop()
            operation = _operation(ctx, node)
            terminal = node.schema.nodetype & (lib.LYS_LEAF | lib.LYS_LEAFLIST)
            if operation in ("create", "delete") or (operation == "replace" and (
                    terminal or node.schema.nodetype == lib.LYS_LIST)):
                # a list entry "replaced" moved within its user-ordered list: its new
                # place and content are given whole
                kind = operation if operation != "replace" or terminal else "move"
                if kind not in excluded:
                    path = node_path(node)
                    value = None
                    if operation != "delete":
                        current = new.find(path) if new is not None else None
                        value = _print_node(ctx, current if current is not None else node)
                    found.append(PatchEdit("replace" if kind == "move" else kind,
                                           resource_identifier(path), value))
                continue
            kids = [c for c in children(node) if not c.schema.flags & lib.LYS_KEY]
            stack.extend(reversed(kids))
    finally:
        if out[0] != NULL:
            lib.lyd_free_all(out[0])
    return found


__all__ = ["CHANGE_TYPES", "PatchEdit", "data_steps", "edits", "resource_identifier"]
