"""Structured libyang errors: message, data path, app tag, per error item.

libyang-python folds its errors into one string; the NETCONF layer needs each error with
its data path (error-path) and app tag (error-app-tag), so we read libyang's error items
ourselves. Path recording is switched on once, when this module is imported.
"""

import re
from dataclasses import dataclass, replace

import libyang
from _libyang import ffi, lib

# libyang only records the data path of an error when the log callback is set up with
# path=True; with no callback, errors are still only stored (LY_LOSTORE), never printed.
lib.ly_set_log_clb(ffi.NULL, True)

# libyang appends the location to its message as 'Data location "<path>"[, line number N].'
# or 'Schema location "<path>"...'; this is libyang's log text, not XML.
_LOCATION = re.compile(r'^(?P<kind>Data|Schema) location "(?P<path>.*)"(?:, line number (?P<line>\d+))?\.$',
                       re.DOTALL)

# LY_VECODE values (libyang/log.h)
VECODE_NAMES = {
    0: "success", 1: "syntax", 2: "syntax-yang", 3: "syntax-yin", 4: "reference", 5: "xpath",
    6: "semantics", 7: "syntax-xml", 8: "syntax-json", 9: "data", 10: "other",
}


@dataclass(frozen=True)
class YangErrorItem:
    """One validation error: libyang's message, the data path it concerns, and more."""
    message: str
    path: str | None = None          # data path (XPath) of the offending node
    schema_path: str | None = None
    app_tag: str | None = None       # error-app-tag: 'must-violation', 'instance-required', ...
    code: str = "data"               # LY_VECODE name
    line: int | None = None

    def __str__(self) -> str:
        return "%s (%s)" % (self.message, self.path) if self.path else self.message


class ModelError(Exception):
    """Root of the model layer's errors."""


class ValidationError(ModelError):
    """Data that does not satisfy the model; items hold each libyang error."""

    def __init__(self, items: list[YangErrorItem], context: str = "validation failed"):
        self.items = list(items) or [YangErrorItem(context)]
        super().__init__("%s: %s" % (context, "; ".join(str(i) for i in self.items)))


def _split_location(raw: str | None):
    if not raw:
        return None, None, None
    match = _LOCATION.match(raw.strip())
    if not match:
        return None, None, None
    line = int(match.group("line")) if match.group("line") else None
    if match.group("kind") == "Data":
        return match.group("path"), None, line
    return None, match.group("path"), line


def collect(ctx: libyang.Context) -> list[YangErrorItem]:
    """Take the errors libyang stored in ctx, oldest first, and clear them."""
    items = []
    err = lib.ly_err_first(ctx.cdata)
    while err:
        if err.level == lib.LY_LLERR:
            # libyang cuts long values in its messages at a byte, maybe inside a character
            message = ffi.string(err.msg).decode(errors="replace") if err.msg \
                else "unknown libyang error"
            raw_path = ffi.string(err.path).decode(errors="replace") if err.path else None
            path, schema_path, line = _split_location(raw_path)
            items.append(YangErrorItem(
                message=message, path=path, schema_path=schema_path,
                app_tag=ffi.string(err.apptag).decode(errors="replace") if err.apptag else None,
                code=VECODE_NAMES.get(err.vecode, str(err.vecode)), line=line))
        err = err.next
    lib.ly_err_clean(ctx.cdata, ffi.NULL)
    return items


def locate(root, item: YangErrorItem) -> YangErrorItem:
    """Give an error that libyang reported by schema path only (a missing mandatory node or
    choice, too few list entries) the data path of the instance at fault: the first
    instance of the missing node's data parent that lacks it (for a choice: lacks every
    node of all its cases; for a list: holds fewer entries than its min-elements)."""
    if item.path is not None or not item.schema_path or root is None:
        return item
    found = _schema_walk(root.context, item.schema_path)
    if found is None:
        return item
    missing, parent_path = found
    if not parent_path:
        return item                 # a top-level node: no instance to name
    names = _data_names(missing)
    least = _min_elements(missing)
    try:
        parents = list(root.find_all(parent_path))
    except Exception:  # noqa: BLE001 - a path libyang cannot search: keep the schema path
        return item
    for parent in parents:
        present = [c.name() for c in getattr(parent, "children", lambda: [])()]
        if sum(1 for name in present if name in names) < least:
            return replace(item, path=parent.path())
    return item


_SCHEMA_ONLY = lib.LYS_CHOICE | lib.LYS_CASE


def _schema_walk(ctx, schema_path: str):
    """(the compiled node at schema_path, the data path of its data parent) or None.
    libyang's schema paths name choices and cases, which data paths leave out."""
    parts = [p for p in schema_path.split("/") if p]
    node, data_parts = ffi.NULL, []
    for index, part in enumerate(parts):
        module, _, name = part.rpartition(":")
        if index == 0:
            mod = lib.ly_ctx_get_module_latest(ctx.cdata, module.encode())
            if mod == ffi.NULL or mod.compiled == ffi.NULL:
                return None
            child = _top_level(mod, name)
        else:
            child = lib.lysc_node_child(node)
            while child != ffi.NULL and not (
                    ffi.string(child.name).decode() == name and
                    (not module or ffi.string(child.module.name).decode() == module)):
                child = child.next
        if child == ffi.NULL:
            return None
        if index < len(parts) - 1 and not child.nodetype & _SCHEMA_ONLY:
            data_parts.append(part)
        node = child
    # choices and cases between the data parent and the missing node are not data
    return node, ("/" + "/".join(data_parts)) if data_parts else ""


def _top_level(mod, name: str):
    """The top-level node of a module by name, choices included (or NULL)."""
    options = lib.LYS_GETNEXT_WITHCHOICE | lib.LYS_GETNEXT_WITHCASE
    node = lib.lys_getnext(ffi.NULL, ffi.NULL, mod.compiled, options)
    while node != ffi.NULL and ffi.string(node.name).decode() != name:
        node = lib.lys_getnext(node, ffi.NULL, mod.compiled, options)
    return node


def _data_names(node) -> set:
    """The names of the data nodes whose presence satisfies node (a choice: any node of
    any of its cases)."""
    if not node.nodetype & _SCHEMA_ONLY:
        return {ffi.string(node.name).decode()}
    names, child = set(), lib.lysc_node_child(node)
    while child != ffi.NULL:
        names |= _data_names(child)
        child = child.next
    return names


def _min_elements(node) -> int:
    if node.nodetype == lib.LYS_LIST:
        return max(1, ffi.cast("struct lysc_node_list *", node).min)
    if node.nodetype == lib.LYS_LEAFLIST:
        return max(1, ffi.cast("struct lysc_node_leaflist *", node).min)
    return 1


def raise_from(ctx: libyang.Context, context: str, cause: Exception | None = None, root=None):
    """Raise ValidationError with the items stored in ctx (or the cause's text); root, the
    tree that failed validation, lets errors reported by schema path get a data path."""
    items = [locate(root, item) for item in collect(ctx)]
    if not items and cause is not None:
        items = [YangErrorItem(str(cause))]
    raise ValidationError(items, context) from cause
