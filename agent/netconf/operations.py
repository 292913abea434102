"""The RPC operations: RFC 6241 (with :candidate, :confirmed-commit:1.1, :validate:1.1,
:startup, :xpath, :writable-running, :rollback-on-error), RFC 6243 with-defaults,
RFC 6022 get-schema, RFC 8526 get-data/edit-data, RFC 5277 create-subscription.

Each handler gets the session and the operation element and returns the content of
the <rpc-reply> (b"<ok/>" or a <data> element); it raises RpcError (or a datastore or
validation error, converted by the session) for an <rpc-error>. Handlers are found by
(namespace, name) in OPERATIONS; register() adds more (other parts of the agent).

A base operation and its parameters may come in no namespace (as netconfd accepts
them): that is unambiguous, no other module defines them. Every parameter value is
checked against the type of its leaf in the rpc's input (ietf-netconf and the other
protocol modules are in the libyang context) before it is used.
"""

import asyncio
import logging

from _libyang import ffi, lib
from lxml import etree

from ..datastore import DataTree, Edit
from ..datastore.schema import schema_index
from ..datastore.tree import children, is_default
from ..model.errors import collect
from ..publish import now, parse_time
from . import filters, subscribed
from .capabilities import WITH_DEFAULTS_ALSO, WITH_DEFAULTS_BASIC_MODE
from .errors import RpcError
from .messages import (BASE_NS, DATASTORES_NS, MONITORING_NS, NMDA_NS, NOTIFICATION_NS,
                       WITH_DEFAULTS_NS, described, elements, qname)

LOG = logging.getLogger(__name__)

OPERATIONS: dict = {}
WITH_DEFAULTS_MODES = (WITH_DEFAULTS_BASIC_MODE, *WITH_DEFAULTS_ALSO)
ORIGIN_NS = "urn:ietf:params:xml:ns:yang:ietf-origin"


def register(namespace: str, name: str):
    """Decorator: the handler of the RPC {namespace}name."""
    def decorate(handler):
        OPERATIONS[(namespace, name)] = handler
        return handler
    return decorate


OK = b"<ok/>"


def operation_key(op) -> tuple[str | None, str]:
    """(namespace, name) of an operation element; a base operation may be unqualified."""
    ns, name = qname(op)
    if ns is None and (BASE_NS, name) in OPERATIONS:
        return BASE_NS, name
    return ns, name


def unsupported(op) -> RpcError:
    """operation-not-supported for op, saying where operations of that name live."""
    ns, name = qname(op)
    elsewhere = sorted(n for n, local in OPERATIONS if local == name and n != ns)
    hint = (" (there is one in namespace %s)" % " and in namespace ".join(elsewhere)
            if elsewhere else "")
    return RpcError("operation-not-supported", "operation %s is not supported%s"
                    % (described(op), hint), error_type="protocol",
                    info=(("bad-element", name),))


# -- parameters ---------------------------------------------------------------------
_TYPED = (lib.LY_TYPE_BOOL, lib.LY_TYPE_EMPTY, lib.LY_TYPE_ENUM, lib.LY_TYPE_STRING,
          lib.LY_TYPE_UNION, lib.LY_TYPE_DEC64, lib.LY_TYPE_INT8, lib.LY_TYPE_INT16,
          lib.LY_TYPE_INT32, lib.LY_TYPE_INT64, lib.LY_TYPE_UINT8, lib.LY_TYPE_UINT16,
          lib.LY_TYPE_UINT32, lib.LY_TYPE_UINT64)
_input_leaves: dict = {}


def _input_leaf(ctx, op_ns, op_name, ns, name):
    """The leaf of the rpc's input that a parameter is, if its type can be checked
    without a context node (not identities: their prefixes are XML ones); else None."""
    cache_key = (id(ctx), op_ns, op_name, ns, name)
    if cache_key in _input_leaves:
        return _input_leaves[cache_key]
    index = schema_index(ctx)
    op_module, module = index.module_name(op_ns), index.module_name(ns)
    found = None
    if op_module and module:
        path = "/%s:%s/%s:%s" % (op_module, op_name, module, name)
        snode = lib.lys_find_path(ctx.cdata, ffi.NULL, path.encode(), 0)
        if snode != ffi.NULL and snode.nodetype & (lib.LYS_LEAF | lib.LYS_LEAFLIST) and \
                ffi.cast("struct lysc_node_leaf *", snode).type.basetype in _TYPED:
            found = snode
        collect(ctx)
    _input_leaves[cache_key] = found
    return found


class Params:
    """The parameters (child elements) of an operation, checked against the allowed
    (namespace, name) pairs: unknown ones are unknown-element, repeated ones
    bad-element (but the leaf-lists named in repeatable), missing mandatory ones
    missing-element; with ctx, text() checks a value against its leaf's type
    (invalid-value). A parameter of a base operation may be unqualified."""

    def __init__(self, op, allowed, ctx=None, repeatable=()):
        self.op = op
        self.ctx = ctx
        self.found = {}
        self.namespaces = {}
        self.op_key = operation_key(op)
        allowed = list(allowed)
        for child in elements(op):
            ns, name = qname(child)
            if ns is None and self.op_key[0] == BASE_NS and (BASE_NS, name) in allowed:
                ns = BASE_NS
            if (ns, name) not in allowed:
                raise RpcError("unknown-element", "unexpected parameter %s in %s (expected %s)"
                               % (described(child), self.op_key[1], _expected(allowed)),
                               error_type="protocol", info=(("bad-element", name),))
            if name in self.found and name not in repeatable:
                raise RpcError("bad-element", "parameter %s given twice" % name,
                               error_type="protocol", info=(("bad-element", name),))
            self.found[name] = child
            self.namespaces[name] = ns

    def get(self, name):
        return self.found.get(name)

    def require(self, name):
        element = self.found.get(name)
        if element is None:
            raise RpcError("missing-element", "missing parameter %s" % name,
                           error_type="protocol", info=(("bad-element", name),))
        return element

    def text(self, name, default=None):
        element = self.found.get(name)
        if element is None:
            return default
        text = (element.text or "").strip()
        if self.ctx is not None:
            leaf = _input_leaf(self.ctx, *self.op_key, self.namespaces[name], name)
            if leaf is not None:
                _check_value(self.ctx, leaf, name, text)
        return text


def _expected(allowed) -> str:
    if not allowed:
        return "no parameter"
    by_ns: dict = {}
    for ns, name in allowed:
        by_ns.setdefault(ns, []).append(name)
    return "; ".join("%s in namespace %s" % (", ".join(names), ns)
                     for ns, names in by_ns.items())


def _check_value(ctx, leaf, name, text) -> None:
    value = text.encode()
    if lib.lyd_value_validate(ctx.cdata, leaf, value, len(value), ffi.NULL, ffi.NULL,
                              ffi.NULL) != lib.LY_SUCCESS:
        problems = collect(ctx)
        raise RpcError("invalid-value", "%s: %s" % (
            name, problems[0].message if problems else "invalid value %r" % text),
            error_type="protocol", info=(("bad-element", name),))


def _base(*names):
    return [(BASE_NS, n) for n in names]


def datastore_name(element, allowed=("running", "candidate", "startup"), inline=False):
    """The datastore a <target>/<source> names, or the inline <config> element."""
    kids = elements(element)
    ename = qname(element)[1]
    if len(kids) != 1:
        raise RpcError("missing-element" if not kids else "bad-element",
                       "%s must name exactly one datastore" % ename, error_type="protocol",
                       info=(("bad-element", ename),))
    ns, name = qname(kids[0])
    if ns is None:
        ns = BASE_NS                   # a base parameter's content, unqualified
    if ns == BASE_NS and name == "url":
        raise RpcError("operation-not-supported", "the :url capability is not supported",
                       error_type="protocol")
    if ns == BASE_NS and name == "config" and inline:
        return kids[0]
    if ns != BASE_NS or name not in allowed:
        raise RpcError("invalid-value" if ns == BASE_NS else "unknown-element",
                       "%s is not a valid %s here (expected %s%s in namespace %s)"
                       % (described(kids[0]), ename, " or ".join(allowed),
                          " or config" if inline else "", BASE_NS),
                       error_type="protocol", info=(("bad-element", name),))
    return name


def with_defaults(params, name="with-defaults") -> str:
    mode = params.text(name)
    if mode is None:
        return WITH_DEFAULTS_BASIC_MODE
    if mode not in WITH_DEFAULTS_MODES:
        raise RpcError("invalid-value", "with-defaults mode %s is not supported" % mode,
                       error_type="protocol", info=(("bad-element", name),))
    return mode


def _enum(params, name, values, default):
    value = params.text(name, default)
    if value not in values:
        raise RpcError("invalid-value", "%s must be one of %s" % (name, ", ".join(values)),
                       error_type="protocol", info=(("bad-element", name),))
    return value


def _inline_tree(session, config) -> DataTree:
    """An inline <config> as a tree (no validation yet, attributes dropped)."""
    ctx = session.server.ctx
    body = b"".join(etree.tostring(c) for c in elements(config))
    tree = DataTree.parse(ctx, body, config_only=True, validate=False)
    if config.xpath("boolean(.//@*)") and not tree.empty:
        clean = DataTree(ctx)
        for node in tree.top_nodes():
            clean.merge_node(node, recursive=True)
        tree.free()
        tree = clean
    return tree


# -- retrieval ------------------------------------------------------------------------
def bounded(session, flt):
    """flt, unless it has more selections than allowed: each is searched for in the
    datastores on the event loop (their trees may change at the next await)."""
    limit = session.server.limits.max_selections
    if flt.selections is not None and len(flt.selections) > limit:
        raise RpcError("too-big", "the filter selects %d different things (at most %d)"
                       % (len(flt.selections), limit), error_type="application",
                       info=(("bad-element", "filter"),))
    return flt


def _data(content: bytes, namespace: str | None = None) -> bytes:
    if namespace:
        return b'<data xmlns="%s">%s</data>' % (namespace.encode(), content)
    return b"<data>" + content + b"</data>"


def _touches(flt, module: str) -> bool:
    if flt.selections is None:
        return True
    return any(("%s:" % module) in s or not s.startswith("/") or s.startswith("//")
               for s in flt.selections)


async def operational_sources(session, flt):
    """(select sources, trees to free) for the operational state: running, the state
    providers' trees and the protocol's own state."""
    server = session.server
    # Only the providers of what the filter can select are asked (one that fails fails
    # the read; one the filter does not touch neither costs nor fails it).
    owned = await server.datastores.state_trees(
        lambda provider: not provider.modules or any(_touches(flt, m) for m in provider.modules))
    # running is taken after the last await: a commit may swap trees while we wait, and
    # from here until the reply is printed nothing yields to the event loop
    trees = [server.datastores.running] + owned
    if _touches(flt, "ietf-netconf-monitoring"):
        state = server.netconf_state()
        owned.append(state)
        trees.append(state)
    if _touches(flt, "ietf-yang-library"):
        trees.append(server.yang_library)
    if _touches(flt, "nc-notifications"):
        streams = server.notifications.streams_state()
        owned.append(streams)
        trees.append(streams)
    if _touches(flt, "ietf-netconf-acm"):
        counters = server.nacm.state()
        owned.append(counters)
        trees.append(counters)
    if _touches(flt, "ietf-subscribed-notifications"):
        subscriptions = server.subscriptions.state()
        owned.append(subscriptions)
        trees.append(subscriptions)
    sources, merged = filters.merged_sources(server.ctx, trees)
    if merged is not None:
        owned.append(merged)
    return sources, owned


def select(session, sources, flt) -> filters.Selected:
    """filters.select, then what the session's user may not read taken out (NACM)."""
    selected = filters.select(session.server.ctx, sources, flt)
    access = session.server.access(session)
    if access is not None:
        try:
            access.filter_selected(selected)
        except BaseException:
            selected.release()
            raise
    return selected


def _retrieve(session, sources, flt, mode) -> bytes:
    selected = select(session, sources, flt)
    try:
        return selected.print(mode)
    finally:
        selected.release()


@register(BASE_NS, "get")
async def op_get(session, op):
    params = Params(op, _base("filter") + [(WITH_DEFAULTS_NS, "with-defaults")],
                    session.server.ctx)
    flt = bounded(session, await session.prepare(filters.parse, params.get("filter"),
                                                  session.server.ctx))
    mode = with_defaults(params)
    sources, owned = await operational_sources(session, flt)
    try:
        return _data(_retrieve(session, sources, flt, mode))
    finally:
        for tree in owned:
            tree.free()


def _conventional(session, name, mode) -> DataTree:
    if mode in ("report-all", "report-all-tagged") and name == "candidate":
        return session.server.datastores.candidate_with_defaults()
    return session.server.datastores.tree(name)


@register(BASE_NS, "get-config")
async def op_get_config(session, op):
    params = Params(op, _base("source", "filter") + [(WITH_DEFAULTS_NS, "with-defaults")],
                    session.server.ctx)
    source = datastore_name(params.require("source"))
    flt = bounded(session, await session.prepare(filters.parse, params.get("filter"),
                                                  session.server.ctx))
    mode = with_defaults(params)
    tree = _conventional(session, source, mode)
    return _data(_retrieve(session, [(tree, None)], flt, mode))


# -- changes --------------------------------------------------------------------------
@register(BASE_NS, "edit-config")
async def op_edit_config(session, op):
    params = Params(op, _base("target", "default-operation", "test-option", "error-option",
                              "config", "url"), session.server.ctx)
    target = datastore_name(params.require("target"), ("running", "candidate"))
    default_operation = _enum(params, "default-operation", ("merge", "replace", "none"),
                              "merge")
    test_option = _enum(params, "test-option", ("test-then-set", "set", "test-only"),
                        "test-then-set")
    error_option = _enum(params, "error-option", ("stop-on-error", "continue-on-error",
                                                  "rollback-on-error"), "stop-on-error")
    if params.get("url") is not None:
        raise RpcError("operation-not-supported", "the :url capability is not supported",
                       error_type="protocol")
    config = params.require("config")
    edit = await session.prepare(Edit.from_xml, session.server.ctx, config, default_operation)
    await session.server.datastores.edit(
        target, edit, default_operation=default_operation, error_option=error_option,
        test_option=test_option, session_id=session.id)
    return OK


@register(BASE_NS, "copy-config")
async def op_copy_config(session, op):
    params = Params(op, _base("target", "source") + [(WITH_DEFAULTS_NS, "with-defaults")],
                    session.server.ctx)
    target = datastore_name(params.require("target"))
    source = datastore_name(params.require("source"), inline=True)
    if not isinstance(source, str):
        source = await session.prepare(_inline_tree, session, source)
    else:
        access = session.server.access(session)
        if access is not None and source != target:
            access.check_readable(session.server.datastores.tree(source))
    await session.server.datastores.copy(source, target, session.id)
    return OK


@register(BASE_NS, "delete-config")
async def op_delete_config(session, op):
    params = Params(op, _base("target"), session.server.ctx)
    target = datastore_name(params.require("target"))
    await session.server.datastores.delete(target, session.id)
    return OK


@register(BASE_NS, "lock")
async def op_lock(session, op):
    params = Params(op, _base("target"), session.server.ctx)
    session.server.datastores.lock(datastore_name(params.require("target")), session.id)
    return OK


@register(BASE_NS, "unlock")
async def op_unlock(session, op):
    params = Params(op, _base("target"), session.server.ctx)
    await session.server.datastores.unlock(datastore_name(params.require("target")),
                                           session.id)
    return OK


@register(BASE_NS, "close-session")
async def op_close_session(session, op):
    Params(op, [], session.server.ctx)
    session.close_after_reply = True
    return OK


@register(BASE_NS, "kill-session")
async def op_kill_session(session, op):
    params = Params(op, _base("session-id"), session.server.ctx)
    params.require("session-id")
    target = int(params.text("session-id"))     # typed: uint32, 1..max
    if target == session.id:
        raise RpcError("invalid-value", "use close-session to end this session",
                       error_type="protocol", info=(("bad-element", "session-id"),))
    if not await session.server.kill(target, by=session.id):
        raise RpcError("invalid-value", "no session %d" % target, error_type="protocol",
                       info=(("bad-element", "session-id"),))
    return OK


@register(BASE_NS, "commit")
async def op_commit(session, op):
    params = Params(op, _base("confirmed", "confirm-timeout", "persist", "persist-id"),
                    session.server.ctx)
    confirmed = params.get("confirmed") is not None
    timeout_text = params.text("confirm-timeout")
    timeout = 600
    if timeout_text is not None:
        timeout = int(timeout_text)              # typed: uint32, 1..max
    persist = params.text("persist")
    persist_id = params.text("persist-id")
    if not confirmed and (timeout_text is not None or persist is not None):
        raise RpcError("invalid-value", "confirm-timeout and persist need confirmed",
                       error_type="protocol",
                       info=(("bad-element", "confirm-timeout" if timeout_text else "persist"),))
    await session.server.datastores.commit(session.id, confirmed=confirmed, timeout=timeout,
                                           persist=persist, persist_id=persist_id)
    return OK


@register(BASE_NS, "discard-changes")
async def op_discard_changes(session, op):
    Params(op, [], session.server.ctx)
    await session.server.datastores.discard_changes(session.id)
    return OK


@register(BASE_NS, "cancel-commit")
async def op_cancel_commit(session, op):
    params = Params(op, _base("persist-id"), session.server.ctx)
    await session.server.datastores.cancel_commit(session.id, params.text("persist-id"))
    return OK


@register(BASE_NS, "validate")
async def op_validate(session, op):
    params = Params(op, _base("source"), session.server.ctx)
    source = datastore_name(params.require("source"), inline=True)
    if not isinstance(source, str):
        source = await session.prepare(_inline_tree, session, source)
    await session.server.datastores.validate(source, session.id)
    return OK


# -- monitoring -----------------------------------------------------------------------
def _local_identity(text: str | None) -> str | None:
    return text.rpartition(":")[2] if text else text


@register(MONITORING_NS, "get-schema")
async def op_get_schema(session, op):
    params = Params(op, [(MONITORING_NS, n) for n in ("identifier", "version", "format")],
                    session.server.ctx)
    identifier = params.text("identifier")
    if not identifier:
        params.require("identifier")
        raise RpcError("invalid-value", "identifier is empty", error_type="protocol")
    # a YIN text is translated by pyang on first demand (up to ~0.3 s): off the loop
    text = await asyncio.to_thread(session.server.schemas.get, identifier,
                                   params.text("version") or None,
                                   _local_identity(params.text("format")))
    data = etree.Element("{%s}data" % MONITORING_NS, nsmap={None: MONITORING_NS})
    data.text = text
    return etree.tostring(data)


# -- NMDA -------------------------------------------------------------------------------
def _datastore_identity(element) -> str:
    text = (element.text or "").strip()
    prefix, sep, local = text.rpartition(":")
    namespace = element.nsmap.get(prefix if sep else None)
    if namespace != DATASTORES_NS or local not in ("running", "candidate", "startup",
                                                   "operational"):
        raise RpcError("invalid-value", "unknown datastore %s" % text, error_type="protocol",
                       info=(("bad-element", "datastore"),))
    return local


@register(NMDA_NS, "get-data")
async def op_get_data(session, op):
    params = Params(op, [(NMDA_NS, n) for n in (
        "datastore", "subtree-filter", "xpath-filter", "config-filter", "max-depth",
        "origin-filter", "negated-origin-filter", "with-origin", "with-defaults")],
        session.server.ctx, repeatable=("origin-filter", "negated-origin-filter"))
    server = session.server
    datastore = _datastore_identity(params.require("datastore"))
    if params.get("subtree-filter") is not None and params.get("xpath-filter") is not None:
        raise RpcError("bad-element", "give subtree-filter or xpath-filter, not both",
                       error_type="protocol", info=(("bad-element", "xpath-filter"),))
    if params.get("subtree-filter") is not None:
        flt = bounded(session, filters.Filter(await session.prepare(
            filters.subtree_selections, elements(params.get("subtree-filter")), server.ctx)))
    elif params.get("xpath-filter") is not None:
        element = params.get("xpath-filter")
        flt = filters.Filter([filters.xpath_selection((element.text or "").strip(),
                                                      element.nsmap, server.ctx)])
    else:
        flt = filters.EVERYTHING
    config_filter = params.text("config-filter")
    if config_filter not in (None, "true", "false"):
        raise RpcError("invalid-value", "config-filter is true or false", error_type="protocol",
                       info=(("bad-element", "config-filter"),))
    max_depth = params.text("max-depth", "unbounded")       # typed: unbounded or 1..65535
    if max_depth != "unbounded":
        max_depth = str(int(max_depth))
    origins = [_origin_identity(e) for n in ("origin-filter", "negated-origin-filter")
               for e in op.iterchildren("{%s}%s" % (NMDA_NS, n))]
    negated = any(True for _ in op.iterchildren("{%s}negated-origin-filter" % NMDA_NS))
    with_origin = params.get("with-origin") is not None
    if (origins or with_origin) and datastore != "operational":
        raise RpcError("invalid-value", "origin applies to the operational datastore only",
                       error_type="protocol", info=(("bad-element", "with-origin"),))
    mode = with_defaults(params)
    owned = []
    if datastore == "operational":
        sources, owned = await operational_sources(session, flt)
    else:
        sources = [(_conventional(session, datastore, mode), None)]
    try:
        selected = select(session, sources, flt)
        try:
            if config_filter is None and max_depth == "unbounded" and not origins and \
                    not with_origin:
                return _data(selected.print(mode), NMDA_NS)
            tree = materialise(selected)
            try:
                _prune(tree, config_filter, max_depth, origins, negated, with_origin,
                       datastore == "operational")
                return _data(tree.print(mode, keep_empty=max_depth != "unbounded"), NMDA_NS)
            finally:
                tree.free()
        finally:
            selected.release()
    finally:
        for tree in owned:
            tree.free()


def _origin_identity(element) -> str:
    text = (element.text or "").strip()
    prefix, sep, local = text.rpartition(":")
    if element.nsmap.get(prefix if sep else None) != ORIGIN_NS:
        raise RpcError("invalid-value", "unknown origin %s" % text, error_type="protocol",
                       info=(("bad-element", qname(element)[1]),))
    return local


def materialise(selected) -> DataTree:
    """A tree of its own holding everything a selection holds."""
    tree = DataTree(selected.ctx)
    for _, node in selected.borrowed:
        tree.merge_node(node, recursive=True, keep_flags=True)
    if not selected.copies.empty:
        tree.merge_forest(selected.copies.take().first, destruct=True)
    return tree


def _prune(tree, config_filter, max_depth, origins, negated, with_origin, operational):
    """get-data's config-filter, max-depth, origin-filter and with-origin (RFC 8526) on a
    tree of its own. In the operational datastore, configuration comes from running
    (origin intended) or is a default (origin default); state carries no origin."""
    depth_limit = None if max_depth == "unbounded" else int(max_depth)
    ctx = tree.ctx

    def keep(node, depth, parent_origin):
        """Prune below node; whether node itself stays."""
        if node.schema.flags & lib.LYS_KEY:
            return True
        if depth_limit is not None and depth > depth_limit:
            return False
        config = bool(node.schema.flags & lib.LYS_CONFIG_W)
        mine = ("default" if is_default(node) else "intended") if config and operational \
            else None
        kept_child = False
        for child in list(children(node)):
            if child.schema.flags & lib.LYS_KEY:
                continue
            if keep(child, depth + 1, mine or parent_origin):
                kept_child = True
            else:
                tree.delete(child)
        if config_filter == "true" and not config:
            return False
        if config_filter == "false" and config and not kept_child:
            return False
        if origins and config and ((mine in origins) == negated) and not kept_child:
            return False
        if with_origin and mine is not None and mine != parent_origin:
            if lib.lyd_new_meta(ctx.cdata, node, ffi.NULL, b"ietf-origin:origin",
                                ("ietf-origin:%s" % mine).encode(), 0, ffi.NULL) \
                    != lib.LY_SUCCESS:
                collect(ctx)
        return True

    for node in tree.top_nodes():
        if not keep(node, 1, None):
            tree.delete(node)


@register(NMDA_NS, "edit-data")
async def op_edit_data(session, op):
    params = Params(op, [(NMDA_NS, n) for n in ("datastore", "default-operation", "config",
                                                "url")], session.server.ctx)
    datastore = _datastore_identity(params.require("datastore"))
    if datastore not in ("running", "candidate"):
        raise RpcError("invalid-value", "edit-data targets running or candidate",
                       error_type="protocol", info=(("bad-element", "datastore"),))
    if params.get("url") is not None:
        raise RpcError("operation-not-supported", "the :url capability is not supported",
                       error_type="protocol")
    default_operation = _enum(params, "default-operation", ("merge", "replace", "none"),
                              "merge")
    edit = await session.prepare(Edit.from_xml, session.server.ctx, params.require("config"),
                                 default_operation)
    await session.server.datastores.edit(datastore, edit, default_operation=default_operation,
                                         error_option="rollback-on-error",
                                         session_id=session.id)
    return OK


# -- notifications ------------------------------------------------------------------------
@register(NOTIFICATION_NS, "create-subscription")
async def op_create_subscription(session, op):
    """RFC 5277: the NETCONF stream, with a filter (as <get>'s, on the notifications'
    content), and replay from startTime (to stopTime) out of the replay log."""
    server = session.server
    params = Params(op, [(NOTIFICATION_NS, n) for n in ("stream", "filter", "startTime",
                                                        "stopTime")], server.ctx)
    stream = params.text("stream", "NETCONF")
    if stream != "NETCONF":
        raise RpcError("invalid-value", "no stream %s (there is NETCONF)" % stream,
                       error_type="protocol", info=(("bad-element", "stream"),))
    start, stop = _time(params, "startTime"), _time(params, "stopTime")
    if stop is not None and start is None:
        raise RpcError("missing-element", "stopTime needs startTime", error_type="protocol",
                       info=(("bad-element", "startTime"),))
    if start is not None:
        if not server.notifications.replay_support:
            raise RpcError("operation-failed", "the NETCONF stream keeps no replay log "
                           "(notifications.replay-max-events = 0)", error_type="protocol",
                           info=(("bad-element", "startTime"),))
        if start > now():
            raise RpcError("bad-element", "startTime is in the future",
                           error_type="protocol", info=(("bad-element", "startTime"),))
        if stop is not None and stop < start:
            raise RpcError("bad-element", "stopTime is earlier than startTime",
                           error_type="protocol", info=(("bad-element", "stopTime"),))
    flt = bounded(session, await session.prepare(
        filters.parse, params.get("filter"), server.ctx, True, True))
    if session.subscription is not None:
        raise RpcError("operation-failed", "this session already has a subscription",
                       error_type="protocol")
    session.subscription = server.notifications.subscribe(session, flt, start, stop)
    return OK


# -- dynamic subscriptions (RFC 8639, 8641; agent/netconf/subscribed.py) ---------------
for _name, _handler in (("establish-subscription", subscribed.establish),
                        ("modify-subscription", subscribed.modify),
                        ("delete-subscription", subscribed.delete),
                        ("kill-subscription", subscribed.kill)):
    register(subscribed.SN_NS, _name)(_handler)


def _time(params, name):
    text = params.text(name)          # typed: yang:date-and-time
    return parse_time(text) if text is not None else None


__all__ = ["OPERATIONS", "Params", "register"]
