"""Parse and validate data against the model, keeping libyang's structured errors.

libyang-python's own parse/validate calls fold errors into one string; these thin
wrappers call the same C functions and return ValidationError items instead.
"""

import libyang
from _libyang import ffi, lib
from libyang.data import parser_flags, validation_flags

from .errors import collect, raise_from

_FORMATS = {"xml": lib.LYD_XML, "json": lib.LYD_JSON}


def parse(ctx: libyang.Context, text: str | bytes, fmt: str = "xml", *, config_only: bool = True,
          validate: bool = True, strict: bool = True) -> libyang.DNode | None:
    """A data tree from XML or JSON text.

    config_only refuses state data; validate=False only parses (for an edit that is
    validated once merged); raises ValidationError with one item per libyang error.
    """
    if isinstance(text, str):
        text = text.encode()
    collect(ctx)  # drop errors an earlier call left behind
    pflags = parser_flags(no_state=config_only, parse_only=not validate, strict=strict)
    vflags = validation_flags(no_state=config_only, validate_present=False) if validate else 0
    node = ffi.new("struct lyd_node **")
    ret = lib.lyd_parse_data_mem(ctx.cdata, text, _FORMATS[fmt], pflags, vflags, node)
    if ret != lib.LY_SUCCESS:
        if node[0] != ffi.NULL:
            lib.lyd_free_all(node[0])
        raise_from(ctx, "invalid data")
    if node[0] == ffi.NULL:
        return None
    return libyang.DNode.new(ctx, node[0])


def validate(ctx: libyang.Context, root: libyang.DNode | None, *, config_only: bool = True):
    """Validate a whole tree in place (adding default nodes); returns the possibly new
    first sibling, raises ValidationError."""
    collect(ctx)
    tree = ffi.new("struct lyd_node **")
    tree[0] = root.cdata if root is not None else ffi.NULL
    flags = validation_flags(no_state=config_only)
    ret = lib.lyd_validate_all(tree, ctx.cdata, flags, ffi.NULL)
    if ret != lib.LY_SUCCESS:
        first = tree[0] if tree[0] != ffi.NULL else None
        raise_from(ctx, "validation failed",
                   root=libyang.DNode.new(ctx, first) if first is not None else None)
    if tree[0] == ffi.NULL:
        return None
    if root is not None and tree[0] == root.cdata:
        return root
    return libyang.DNode.new(ctx, tree[0])


def parse_config(ctx: libyang.Context, text: str | bytes, fmt: str = "xml") -> libyang.DNode | None:
    """A validated configuration tree; raises ValidationError.

    Parsed first and validated second, so that an error libyang reports by schema path
    (a missing mandatory node) can be located in the parsed tree."""
    root = parse(ctx, text, fmt, config_only=True, validate=False)
    try:
        return validate(ctx, root, config_only=True)
    except Exception:
        if root is not None:
            root.free()
        raise
