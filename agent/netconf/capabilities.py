"""The capabilities the server advertises in its <hello>.

Protocol capabilities (RFC 6241 section 8 and friends), the YANG library capabilities
(RFC 7950 5.6.4 yang-library:1.0 with module-set-id, RFC 8526 yang-library:1.1 with
content-id), and a module capability (RFC 6020 5.6.4 form) for each implemented YANG
1.0 module; YANG 1.1 modules are announced through the YANG library only.
"""

import hashlib

from _libyang import ffi
from libyang.util import ly_array_iter

from ..datastore.schema import schema_index

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

WITH_DEFAULTS_BASIC_MODE = "explicit"
WITH_DEFAULTS_ALSO = ("report-all", "report-all-tagged", "trim")
WITH_DEFAULTS = ("urn:ietf:params:netconf:capability:with-defaults:1.0?basic-mode=%s"
                 "&also-supported=%s" % (WITH_DEFAULTS_BASIC_MODE, ",".join(WITH_DEFAULTS_ALSO)))

PROTOCOL = (BASE_1_0, BASE_1_1, WRITABLE_RUNNING, CANDIDATE, CONFIRMED_COMMIT,
            ROLLBACK_ON_ERROR, VALIDATE, STARTUP, XPATH, WITH_DEFAULTS, NOTIFICATION,
            INTERLEAVE)

YANG_LIBRARY_REVISION = "2019-01-04"


def _text(pointer) -> str:
    return ffi.string(pointer).decode() if pointer != ffi.NULL else ""


def implemented_modules(ctx) -> list:
    """(name, revision, namespace, yang version, enabled features, deviation modules) of
    every implemented module, sorted by name."""
    out = []
    for module in schema_index(ctx).modules():
        if not module.implemented:
            continue
        name = _text(module.name)
        lymodule = ctx.get_module(name)
        features = sorted(f.name() for f in lymodule.features() if f.state())
        deviations = []
        if module.deviated_by != ffi.NULL:
            deviations = sorted(_text(m.name) for m in ly_array_iter(module.deviated_by))
        out.append((name, _text(module.revision), _text(module.ns),
                    module.parsed.version if module.parsed != ffi.NULL else 0,
                    features, deviations))
    return sorted(out)


def content_id(ctx) -> str:
    """An identifier of the module set, changing whenever a module, revision, feature or
    deviation changes (yang-library module-set-id / content-id)."""
    digest = hashlib.sha256(repr(implemented_modules(ctx)).encode()).hexdigest()
    return digest[:16]


def server_capabilities(ctx) -> list[str]:
    caps = list(PROTOCOL)
    cid = content_id(ctx)
    caps.append("urn:ietf:params:netconf:capability:yang-library:1.0?revision=%s"
                "&module-set-id=%s" % (YANG_LIBRARY_REVISION, cid))
    caps.append("urn:ietf:params:netconf:capability:yang-library:1.1?revision=%s"
                "&content-id=%s" % (YANG_LIBRARY_REVISION, cid))
    for name, revision, namespace, version, features, deviations in implemented_modules(ctx):
        if version >= 2:
            continue                    # YANG 1.1: through the YANG library only
        cap = "%s?module=%s" % (namespace, name)
        if revision:
            cap += "&revision=%s" % revision
        if features:
            cap += "&features=%s" % ",".join(features)
        if deviations:
            cap += "&deviations=%s" % ",".join(deviations)
        caps.append(cap)
    return caps
