"""What the datastores tell their observers after each transaction, and the edit list of a
change of configuration (RFC 6470 netconf-config-change: target and operation per changed
node), from libyang's diff of the old and new trees.

Observers (Datastores.observe(callback)) are called on the event loop, after the change
is done (running replaced, the engine has applied it), with one of:
- ConfigChanged: running or startup changed (commit, edit-config or copy-config of
  running, a confirmed commit rolled back, the boot, copy-config or delete-config of
  startup); edits() gives [(data path, operation)], operation one of create, delete,
  replace;
- ConfirmEvent: a confirmed commit started, was extended, confirmed (complete),
  cancelled or timed out.
session_id 0 means the server itself (boot, a timeout, the end of a session).

An edit list longer than MAX_EDITS is given per top-level node (operation replace).
The edit list costs what the change costs: a commit whose edits are known (the plans of
its edit-configs) diffs only the subtrees they touched (libyang's lyd_diff_tree), at
once. A change of the whole tree (copy-config, a rollback, an edit with default-operation
replace) is diffed whole in a worker thread after the change, on copies the observer's
edits() waits for: libyang 2.1's diff of a list grows with the square of its entries.
"""

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from _libyang import ffi, lib

from ..model.errors import collect
from .tree import NULL, DataTree, children, node_path

OPERATIONS = {"create": "create", "delete": "delete", "replace": "replace"}
# An edit list longer than this is given per top-level node instead (its subtree
# replaced): a notification of 10,000 edits serves nobody, and costs every subscriber.
MAX_EDITS = 200
_DIFFS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="config-diff")


@dataclass
class ConfigChanged:
    """running or startup changed; see the module docstring."""
    datastore: str                  # "running" or "startup"
    session_id: int                 # 0: the server itself
    cause: str                      # commit, edit-config, copy-config, rollback, boot, ...
    time: datetime
    _edits: object = field(default=None, repr=False)    # list, or a Future of one

    @property
    def known_edits(self) -> list | None:
        """The edit list if it is made already (None while a whole-tree diff runs)."""
        return self._edits if isinstance(self._edits, list) else None

    def edits(self, timeout: float | None = 60) -> list:
        """[(data path, operation)] of the change (waits for a whole-tree diff)."""
        edits = self._edits
        if isinstance(edits, Future):
            return edits.result(timeout)
        return edits or []


@dataclass
class ConfirmEvent:
    """RFC 6470 confirm-event of a confirmed commit."""
    event: str                      # start, extend, complete, cancel, timeout
    session_id: int                 # 0: the server itself (timeout)
    time: datetime
    timeout: int | None = None      # seconds left, for start and extend


# -- the edit list ----------------------------------------------------------------------
def _operation(ctx, node) -> str | None:
    meta = node.meta
    while meta != NULL:
        if ffi.string(meta.name) == b"operation" and \
                ffi.string(meta.annotation.module.name) == b"yang":
            return ffi.string(lib.lyd_value_get_canonical(
                ctx.cdata, ffi.addressof(meta.value))).decode()
        meta = meta.next
    return None


class _TooMany(Exception):
    """The edit list is longer than MAX_EDITS."""


def _collect(ctx, diff_first, out: list, moves: bool = True) -> None:
    """(path, operation) of every node of a libyang diff whose operation is not none;
    below a created or deleted node nothing more. moves: report an entry of a
    user-ordered list that moved (replace); a diff of one entry alone cannot tell."""
    stack = []
    node = diff_first
    while node != NULL:
        stack.append(node)
        node = node.next
    stack.reverse()
    while stack:
        node = stack.pop()
        op = _operation(ctx, node)
        terminal = node.schema.nodetype & (lib.LYS_LEAF | lib.LYS_LEAFLIST)
        if op == "replace" and not moves and not node.schema.nodetype & lib.LYS_LEAF:
            op = None
        if op in OPERATIONS:
            if len(out) >= MAX_EDITS:
                raise _TooMany()
            out.append((node_path(node), OPERATIONS[op]))
            if op != "replace" or terminal:
                continue
        kids = [c for c in children(node) if not c.schema.flags & lib.LYS_KEY]
        stack.extend(reversed(kids))


def _diff(ctx, first, second, siblings: bool, room: int = MAX_EDITS) -> tuple:
    """(the edit list, the top-level nodes it is under) of libyang's diff of two sibling
    lists (siblings) or subtrees; the list is None when it would be longer than room."""
    out = ffi.new("struct lyd_node **")
    call = lib.lyd_diff_siblings if siblings else lib.lyd_diff_tree
    if call(first, second, 0, out) != lib.LY_SUCCESS:
        collect(ctx)
        return [], []
    edits: list = []
    tops: list = []
    try:
        try:
            _collect(ctx, out[0], edits, moves=siblings)
        except _TooMany:
            edits = None
        if edits is None or len(edits) > room:
            edits = None
            node = out[0]
            while node != NULL:
                tops.append((node_path(node), OPERATIONS.get(_operation(ctx, node),
                                                             "replace")))
                node = node.next
    finally:
        if out[0] != NULL:
            lib.lyd_free_all(out[0])
    return edits, tops


def _coarse(edits, tops) -> list:
    """edits, or, when there are too many (None), one per top-level node changed."""
    return edits if edits is not None else list(dict.fromkeys(tops))


def whole_diff(old: DataTree | None, new: DataTree | None) -> list:
    """The edit list of two whole trees (blocking; linear only for small lists)."""
    ctx = (old or new).ctx
    return _coarse(*_diff(ctx, old.first if old is not None else NULL,
                          new.first if new is not None else NULL, siblings=True))


def _frontier(node, out: list) -> None:
    """The paths below which an edit node's subtree changes: each list entry, leaf and
    leaf-list value it holds (a container is descended into)."""
    if node.schema.nodetype == lib.LYS_CONTAINER:
        kids = list(children(node))
        if kids:
            for kid in kids:
                _frontier(kid, out)
            return
    if not node.schema.flags & lib.LYS_KEY:
        out.append(node_path(node))


SHALLOW, MOVED = "\x01", "\x02"


def touched_paths(plans) -> list | None:
    """The data paths the actions of edit plans touched (SHALLOW + path: that node, not
    its subtree), or None when one of them replaced the whole tree."""
    paths: list = []
    for done in plans:
        for action in done.actions:
            kind = action[0]
            if kind == "clear":
                return None
            if kind == "merge" and action[2]:
                _frontier(action[1], paths)
            elif kind == "merge":
                # an inner node of the edit merged alone (its children have their own
                # actions): only its creation is a change of its own
                paths.append(SHALLOW + node_path(action[1]))
            elif kind == "merge-all":
                node = action[1]
                while node != NULL:
                    _frontier(node, paths)
                    node = node.next
            elif kind == "delete":
                paths.append(action[1])
            elif kind == "move":
                paths.append(MOVED + action[1])
    return paths


def _outermost(paths) -> list:
    """paths without those below another of them. Sorted with "/" first, a path's
    descendants follow it at once."""
    out: list = []
    for path in sorted(set(paths), key=lambda p: p.replace("/", "\x00")):
        if out and path.startswith(out[-1] + "/"):
            continue
        out.append(path)
    return out


def subtree_diff(old: DataTree, new: DataTree, paths) -> list:
    """The edit list of a change known to touch only the subtrees at paths."""
    edits: list = []
    seen = set()
    deep = [p for p in paths if not p.startswith((SHALLOW, MOVED))]
    for path in {p[1:] for p in paths if p.startswith(SHALLOW)} - set(deep):
        if old.find(path) is None and new.find(path) is not None:
            seen.add((path, "create"))
            edits.append((path, "create"))
    for path in {p[1:] for p in paths if p.startswith(MOVED)}:
        if old.find(path) is not None and (path, "create") not in seen:
            seen.add((path, "replace"))         # moved within its user-ordered list
            edits.append((path, "replace"))
    for path in _outermost(deep):
        first, second = old.find(path), new.find(path)
        if first is None and second is None:
            continue
        found, _ = _diff(old.ctx, first if first is not None else NULL,
                         second if second is not None else NULL, siblings=False,
                         room=MAX_EDITS - len(edits))
        if found is None:
            # too many: each top-level node the change touched, replaced
            return list(dict.fromkeys((_top(p), "replace") for p in
                                      [e[0] for e in edits] + deep))
        for edit in found:
            if edit not in seen:
                seen.add(edit)
                edits.append(edit)
    return edits


def _top(path: str) -> str:
    """The first step of a data path (a top-level node, with its keys)."""
    quote = None
    for index, char in enumerate(path):
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "/" and index > 0:
            return path[:index]
    return path


def diff_later(old: DataTree | None, new: DataTree) -> Future:
    """The whole-tree edit list, made in a worker thread; the Future owns (and frees)
    both trees."""
    def run():
        try:
            return whole_diff(old, new)
        finally:
            if old is not None:
                old.free()
            new.free()
    return _DIFFS.submit(run)


__all__ = ["ConfigChanged", "ConfirmEvent", "diff_later", "subtree_diff", "touched_paths",
           "whole_diff"]
