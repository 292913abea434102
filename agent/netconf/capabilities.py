"""The capabilities the server advertises in its <hello>.

Protocol capabilities (RFC 6241 section 8 and friends), the YANG library capabilities
(RFC 7950 5.6.4 yang-library:1.0 with module-set-id, RFC 8526 yang-library:1.1 with
content-id), and a module capability (RFC 6020 5.6.4 form) for each implemented YANG
1.0 module; YANG 1.1 modules are announced through the YANG library only. Which modules
are implemented: modules.py.
"""

import hashlib

BASE_1_0 = "urn:ietf:params:netconf:base:1.0"
BASE_1_1 = "urn:ietf:params:netconf:base:1.1"

CANDIDATE = "urn:ietf:params:netconf:capability:candidate:1.0"
CONFIRMED_COMMIT = "urn:ietf:params:netconf:capability:confirmed-commit:1.1"
ROLLBACK_ON_ERROR = "urn:ietf:params:netconf:capability:rollback-on-error:1.0"
VALIDATE = "urn:ietf:params:netconf:capability:validate:1.1"
STARTUP = "urn:ietf:params:netconf:capability:startup:1.0"
XPATH = "urn:ietf:params:netconf:capability:xpath:1.0"
WRITABLE_RUNNING = "urn:ietf:params:netconf:capability:writable-running:1.0"
NOTIFICATION = "urn:ietf:params:netconf:capability:notification:1.0"
INTERLEAVE = "urn:ietf:params:netconf:capability:interleave:1.0"
REPLAY = "urn:ietf:params:netconf:capability:replay:1.0"

WITH_DEFAULTS_BASIC_MODE = "explicit"
WITH_DEFAULTS_ALSO = ("report-all", "report-all-tagged", "trim")
WITH_DEFAULTS = ("urn:ietf:params:netconf:capability:with-defaults:1.0?basic-mode=%s"
                 "&also-supported=%s" % (WITH_DEFAULTS_BASIC_MODE, ",".join(WITH_DEFAULTS_ALSO)))

PROTOCOL = (BASE_1_0, BASE_1_1, WRITABLE_RUNNING, CANDIDATE, CONFIRMED_COMMIT,
            ROLLBACK_ON_ERROR, VALIDATE, STARTUP, XPATH, WITH_DEFAULTS, NOTIFICATION,
            INTERLEAVE)

YANG_LIBRARY_REVISION = "2019-01-04"


def content_id(modules) -> str:
    """An identifier of the module set (modules: served_modules()), changing whenever a
    module, revision, conformance, feature, deviation or submodule changes (yang-library
    module-set-id / content-id)."""
    described = [(m.name, m.revision, m.implemented, m.features, m.deviations,
                  [(s.name, s.revision) for s in m.submodules]) for m in modules]
    return hashlib.sha256(repr(described).encode()).hexdigest()[:16]


def server_capabilities(modules, replay: bool = False) -> list[str]:
    """The hello's capabilities; modules: served_modules(); replay: the NETCONF stream
    keeps a replay log (RFC 5277 :replay)."""
    caps = list(PROTOCOL) + ([REPLAY] if replay else [])
    cid = content_id(modules)
    caps.append("urn:ietf:params:netconf:capability:yang-library:1.0?revision=%s"
                "&module-set-id=%s" % (YANG_LIBRARY_REVISION, cid))
    caps.append("urn:ietf:params:netconf:capability:yang-library:1.1?revision=%s"
                "&content-id=%s" % (YANG_LIBRARY_REVISION, cid))
    for module in modules:
        if not module.implemented or module.yang_version >= 2:
            continue                    # YANG 1.1: through the YANG library only
        cap = "%s?module=%s" % (module.namespace, module.name)
        if module.revision:
            cap += "&revision=%s" % module.revision
        if module.features:
            cap += "&features=%s" % ",".join(module.features)
        if module.deviations:
            cap += "&deviations=%s" % ",".join(module.deviations)
        caps.append(cap)
    return caps
