"""The protocol's own state: ietf-netconf-monitoring (RFC 6022: capabilities, datastores
and their locks, schemas, sessions, statistics) and ietf-yang-library (RFC 8525), both
from the list of served modules (modules.py, which also serves <get-schema>).

Both are built as libyang trees so that they are filtered and printed like any other
operational state. Module locations are left out of the YANG library (they would be
file paths on the agent's host); every module is retrievable with <get-schema>.
"""

from dataclasses import dataclass, field
from datetime import datetime, timezone

from lxml import etree

from ..datastore.tree import DataTree
from .messages import DATASTORES_NS, MONITORING_NS, YANG_LIBRARY_NS
from .modules import SCHEMA_FORMATS



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


def netconf_state(ctx, modules, capabilities, locks: dict, sessions,
                  statistics: ServerStatistics) -> DataTree:
    """/ietf-netconf-monitoring:netconf-state. modules: served_modules(); locks: datastore
    -> Lock or None."""
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
    for identifier, version, namespace in schemas(modules):
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


def schemas(modules) -> list[tuple]:
    """(identifier, version, namespace) of every module and submodule served, a submodule
    with the namespace of the module it belongs to (RFC 6022 schema list)."""
    out = []
    for module in modules:
        out.append((module.name, module.revision, module.namespace))
        out += [(s.name, s.revision, module.namespace) for s in module.submodules]
    return sorted(out)


def _yl(parent, name, text=None):
    el = etree.SubElement(parent, "{%s}%s" % (YANG_LIBRARY_NS, name))
    if text is not None:
        el.text = text
    return el


def yang_library(ctx, modules, content_id: str) -> DataTree:
    """/ietf-yang-library:yang-library and the deprecated modules-state (modules:
    served_modules()), with the four NMDA datastores sharing one schema, and without file
    locations (they would be paths on the agent's host)."""
    root = etree.Element("{%s}yang-library" % YANG_LIBRARY_NS,
                         nsmap={None: YANG_LIBRARY_NS, "ds": DATASTORES_NS})
    module_set = _yl(root, "module-set")
    _yl(module_set, "name", "complete")
    for module in modules:
        entry = _yl(module_set, "module" if module.implemented else "import-only-module")
        _yl(entry, "name", module.name)
        if module.revision or not module.implemented:       # a key of import-only-module
            _yl(entry, "revision", module.revision)
        _yl(entry, "namespace", module.namespace)
        for submodule in module.submodules:
            sub = _yl(entry, "submodule")
            _yl(sub, "name", submodule.name)
            if submodule.revision:
                _yl(sub, "revision", submodule.revision)
        for feature in module.features:
            _yl(entry, "feature", feature)
        for deviation in module.deviations:
            _yl(entry, "deviation", deviation)
    schema = _yl(root, "schema")
    _yl(schema, "name", "complete")
    _yl(schema, "module-set", "complete")
    for name in ("running", "candidate", "startup", "operational"):
        store = _yl(root, "datastore")
        _yl(store, "name", "ds:" + name)
        _yl(store, "schema", "complete")
    _yl(root, "content-id", content_id)

    revisions = {m.name: m.revision for m in modules if m.implemented}
    state = etree.Element("{%s}modules-state" % YANG_LIBRARY_NS, nsmap={None: YANG_LIBRARY_NS})
    _yl(state, "module-set-id", content_id)
    for module in modules:
        entry = _yl(state, "module")
        _yl(entry, "name", module.name)
        _yl(entry, "revision", module.revision)
        _yl(entry, "namespace", module.namespace)
        for feature in module.features:
            _yl(entry, "feature", feature)
        for deviation in module.deviations:
            dev = _yl(entry, "deviation")
            _yl(dev, "name", deviation)
            _yl(dev, "revision", revisions.get(deviation, ""))
        _yl(entry, "conformance-type", "implement" if module.implemented else "import")
        for submodule in module.submodules:
            sub = _yl(entry, "submodule")
            _yl(sub, "name", submodule.name)
            _yl(sub, "revision", submodule.revision)
    return DataTree.parse(ctx, etree.tostring(root) + etree.tostring(state), config_only=False,
                          validate=False)
