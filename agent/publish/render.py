"""An event's notification as the channels send it, made by libyang from its RFC 7951 JSON
content (so that what goes out fits the model): a libyang tree (for filters), XML (the
NETCONF <notification>, RFC 5277) and JSON (RFC 7951, with eventTime as RFC 8040's
ietf-restconf:notification does). The XML and JSON texts are made once per event and
context, and kept in the event (event.cache).
"""

import json
import logging

from _libyang import ffi, lib

from ..datastore.tree import DataTree
from ..model.errors import raise_from, collect

LOG = logging.getLogger(__name__)

NOTIFICATION_NS = "urn:ietf:params:xml:ns:netconf:notification:1.0"


class RenderError(Exception):
    """The event's content does not fit the model."""


def notification_tree(ctx, event) -> DataTree:
    """The notification instance as a libyang tree (the caller frees it)."""
    content = event.content
    if not content:
        raise RenderError("event %r is not a notification" % event)
    text = json.dumps(content).encode()
    collect(ctx)
    data = ffi.new("struct ly_in **")
    if lib.ly_in_new_memory(text, data) != lib.LY_SUCCESS:
        raise RenderError("cannot read the content of %r" % event)
    tree = ffi.new("struct lyd_node **")
    try:
        if lib.lyd_parse_op(ctx.cdata, ffi.NULL, data[0], lib.LYD_JSON,
                            lib.LYD_TYPE_NOTIF_YANG, tree, ffi.NULL) != lib.LY_SUCCESS:
            if tree[0] != ffi.NULL:
                lib.lyd_free_all(tree[0])
            try:
                raise_from(ctx, "invalid notification")
            except Exception as exc:  # noqa: BLE001 - one type for the channels
                raise RenderError("%s: %s" % (event.kind, exc)) from None
    finally:
        lib.ly_in_free(data[0], 0)
    return DataTree(ctx, tree[0])


def _cached(ctx, event, fmt: str, make) -> bytes:
    key = (id(ctx), fmt)
    found = event.cache.get(key)
    if found is None:
        found = event.cache[key] = make()
    return found


def notification_xml(ctx, event) -> bytes:
    """<notification><eventTime/>content</notification> (RFC 5277)."""
    def make():
        tree = notification_tree(ctx, event)
        try:
            body = tree.print("explicit")
        finally:
            tree.free()
        return b'<notification xmlns="%s"><eventTime>%s</eventTime>%s</notification>' % (
            NOTIFICATION_NS.encode(), event.event_time.encode(), body)
    return _cached(ctx, event, "xml", make)


def notification_json(ctx, event) -> bytes:
    """{"ietf-restconf:notification": {"eventTime": ..., "module:name": {...}}}, the
    content as libyang prints it (RFC 7951)."""
    def make():
        tree = notification_tree(ctx, event)
        try:
            buf = ffi.new("char **")
            if lib.lyd_print_mem(buf, tree.first, lib.LYD_JSON,
                                 lib.LYD_PRINT_SHRINK) != lib.LY_SUCCESS:
                raise RenderError("cannot print %r" % event)
            try:
                content = json.loads(ffi.string(buf[0]))
            finally:
                lib.free(buf[0])
        finally:
            tree.free()
        document = {"eventTime": event.event_time}
        document.update(content)
        return json.dumps({"ietf-restconf:notification": document},
                          separators=(",", ":")).encode()
    return _cached(ctx, event, "json", make)
