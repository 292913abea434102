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
    """Give an error that libyang reported by schema path (a missing mandatory node, too
    few list entries) the data path of the first parent instance that lacks the node."""
    if item.path is not None or not item.schema_path or root is None:
        return item
    parent_path, _, missing = item.schema_path.rpartition("/")
    missing = missing.split(":")[-1]
    if not parent_path:
        return item
    try:
        parents = list(root.find_all(parent_path))
    except Exception:  # noqa: BLE001 - a path libyang cannot search: keep the schema path
        return item
    for parent in parents:
        children = [c for c in getattr(parent, "children", lambda: [])() if c.name() == missing]
        if not children:
            return replace(item, path=parent.path())
    if parents:
        return replace(item, path=parents[0].path())
    return item


def raise_from(ctx: libyang.Context, context: str, cause: Exception | None = None, root=None):
    """Raise ValidationError with the items stored in ctx (or the cause's text); root, the
    tree that failed validation, lets errors reported by schema path get a data path."""
    items = [locate(root, item) for item in collect(ctx)]
    if not items and cause is not None:
        items = [YangErrorItem(str(cause))]
    raise ValidationError(items, context) from cause
