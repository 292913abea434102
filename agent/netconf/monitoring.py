"""The protocol's own state: ietf-netconf-monitoring (RFC 6022: capabilities, datastores
and their locks, schemas, sessions, statistics; <get-schema>) and ietf-yang-library
(RFC 8525, from libyang's description of its context).

Both are built as libyang trees so that they are filtered and printed like any other
operational state. Module locations are left out of the YANG library (they would be
file paths on the agent's host); every module is retrievable with <get-schema>.
"""

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from _libyang import ffi, lib
from lxml import etree

from ..datastore.schema import schema_index
from ..datastore.tree import DataTree
from .errors import RpcError
from .messages import DATASTORES_NS, MONITORING_NS, YANG_LIBRARY_NS

SCHEMA_FORMATS = ("yang", "yin")


def timestamp(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Counters:
    """RFC 6022 statistics (per session, and for the server)."""
    in_rpcs: int = 0
    in_bad_rpcs: int = 0
    out_rpc_errors: int = 0
    out_notifications: int = 0


@dataclass
class SessionInfo:
    session_id: int
    username: str
    source_host: str
    login_time: datetime
    counters: Counters = field(default_factory=Counters)


@dataclass
class ServerStatistics:
    start_time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    in_bad_hellos: int = 0
    in_sessions: int = 0
    dropped_sessions: int = 0
    counters: Counters = field(default_factory=Counters)


def _sub(parent, name, text=None):
    el = etree.SubElement(parent, "{%s}%s" % (MONITORING_NS, name))
    if text is not None:
        el.text = str(text)
    return el


def _counters(parent, counters: Counters):
    _sub(parent, "in-rpcs", counters.in_rpcs)
    _sub(parent, "in-bad-rpcs", counters.in_bad_rpcs)
    _sub(parent, "out-rpc-errors", counters.out_rpc_errors)
    _sub(parent, "out-notifications", counters.out_notifications)


def schemas(ctx) -> list[tuple]:
    """(identifier, version, namespace) of every module in the context."""
    out = []
    for module in schema_index(ctx).modules():
        revision = ffi.string(module.revision).decode() if module.revision != ffi.NULL else ""
        out.append((ffi.string(module.name).decode(), revision,
                    ffi.string(module.ns).decode()))
    return sorted(out)


def netconf_state(ctx, capabilities, locks: dict, sessions, statistics: ServerStatistics
                  ) -> DataTree:
    """/ietf-netconf-monitoring:netconf-state. locks: datastore -> Lock or None."""
    root = etree.Element("{%s}netconf-state" % MONITORING_NS, nsmap={None: MONITORING_NS})
    caps = _sub(root, "capabilities")
    for cap in capabilities:
        _sub(caps, "capability", cap)
    stores = _sub(root, "datastores")
    for name, lock in locks.items():
        store = _sub(stores, "datastore")
        _sub(store, "name", name)
        if lock is not None:
            global_lock = _sub(_sub(store, "locks"), "global-lock")
            _sub(global_lock, "locked-by-session", lock.session_id)
            _sub(global_lock, "locked-time", timestamp(lock.since))
    listing = _sub(root, "schemas")
    for identifier, version, namespace in schemas(ctx):
        for fmt in SCHEMA_FORMATS:
            schema = _sub(listing, "schema")
            _sub(schema, "identifier", identifier)
            _sub(schema, "version", version)
            _sub(schema, "format", fmt)
            _sub(schema, "namespace", namespace)
            _sub(schema, "location", "NETCONF")
    active = _sub(root, "sessions")
    for info in sessions:
        session = _sub(active, "session")
        _sub(session, "session-id", info.session_id)
        _sub(session, "transport", "netconf-ssh")
        _sub(session, "username", info.username)
        if info.source_host:
            _sub(session, "source-host", info.source_host)
        _sub(session, "login-time", timestamp(info.login_time))
        _counters(session, info.counters)
    stats = _sub(root, "statistics")
    _sub(stats, "netconf-start-time", timestamp(statistics.start_time))
    _sub(stats, "in-bad-hellos", statistics.in_bad_hellos)
    _sub(stats, "in-sessions", statistics.in_sessions)
    _sub(stats, "dropped-sessions", statistics.dropped_sessions)
    _counters(stats, statistics.counters)
    return DataTree.parse(ctx, etree.tostring(root), config_only=False, validate=False)


def yang_library(ctx, content_id: str) -> DataTree:
    """/ietf-yang-library:yang-library and the deprecated modules-state, with the four
    NMDA datastores sharing one schema, and without file locations."""
    out = ffi.new("struct lyd_node **")
    if lib.ly_ctx_get_yanglib_data(ctx.cdata, out, content_id.replace("%", "%%").encode()) \
            != lib.LY_SUCCESS:
        raise RuntimeError("libyang cannot describe its context")
    tree = DataTree(ctx, out[0])
    for path in ("//ietf-yang-library:location", "/ietf-yang-library:modules-state/module/schema",
                 "/ietf-yang-library:modules-state/module/submodule/schema"):
        for node in tree.xpath(path):
            tree.delete(node)
    datastores = "".join("<datastore><name>ds:%s</name><schema>complete</schema></datastore>"
                         % name for name in ("running", "candidate", "startup", "operational"))
    extra = DataTree.parse(ctx, '<yang-library xmlns="%s" xmlns:ds="%s">%s</yang-library>'
                           % (YANG_LIBRARY_NS, DATASTORES_NS, datastores),
                           config_only=False, validate=False)
    tree.merge_forest(extra.first, destruct=True)
    return tree


def get_schema(ctx, identifier: str, version: str | None, fmt: str | None) -> str:
    """The text of a module (RFC 6022 <get-schema>): the file it was loaded from for YANG,
    libyang's printer for YIN and for libyang's built-in modules."""
    fmt = fmt or "yang"
    if fmt not in SCHEMA_FORMATS:
        raise RpcError("invalid-value", "schema format %s is not supported (yang, yin)" % fmt,
                       error_type="protocol")
    candidates = [m for m in schema_index(ctx).modules()
                  if ffi.string(m.name).decode() == identifier]
    if version:
        candidates = [m for m in candidates if m.revision != ffi.NULL and
                      ffi.string(m.revision).decode() == version]
    if not candidates:
        raise RpcError("invalid-value", "no schema %s%s" % (identifier, "@" + version
                                                              if version else ""),
                       error_type="protocol")
    if len(candidates) > 1:
        raise RpcError("operation-failed", "several revisions of %s: give a version"
                       % identifier, error_type="protocol", app_tag="data-not-unique")
    module = candidates[0]
    path = ffi.string(module.filepath).decode() if module.filepath != ffi.NULL else None
    if fmt == "yang" and path and path.endswith(".yang"):
        return Path(path).read_text()
    buf = ffi.new("char **")
    out_format = lib.LYS_OUT_YANG if fmt == "yang" else lib.LYS_OUT_YIN
    if lib.lys_print_mem(buf, module, out_format, 0) != lib.LY_SUCCESS:
        raise RpcError("operation-failed", "cannot print schema %s" % identifier)
    try:
        return ffi.string(buf[0]).decode()
    finally:
        lib.free(buf[0])
