"""Where the YANG modules are, and the libyang context the agent validates with.

The composer modules live in the project's yang/ directory (or, installed, in
<prefix>/share/composer-nc/yang); the IETF modules they import are the ones pyang
installs under <prefix>/share/yang/modules, used in place and never copied.
"""

import os
import sys
from pathlib import Path

import libyang
from _libyang import ffi, lib

COMPOSER_MODULES = (
    "composer-types",
    "composer-sffg",
    "composer-domain",
    "composer-templates",
    "composer-alarms",
)

# The NETCONF protocol modules the server implements, with the features it supports.
PROTOCOL_MODULES = (
    ("ietf-netconf", ("candidate", "confirmed-commit", "rollback-on-error", "validate",
                      "startup", "xpath", "writable-running")),
    ("ietf-netconf-with-defaults", ()),
    ("ietf-netconf-monitoring", ()),
    ("ietf-netconf-nmda", ("origin", "with-defaults")),
    ("ietf-origin", ()),
    ("ietf-netconf-acm", ()),               # RFC 8341 (agent/netconf/nacm/)
    ("notifications", ()),                  # RFC 5277 create-subscription (yang/)
    ("nc-notifications", ()),               # RFC 5277 streams, replayComplete (yang/)
    ("ietf-netconf-notifications", ()),     # RFC 6470
    # RFC 8639/8640 dynamic subscriptions (no configured ones) and RFC 8641 YANG-push
    ("ietf-subscribed-notifications", ("encode-xml", "replay", "subtree", "xpath")),
    ("ietf-yang-push", ("on-change",)),
    ("composer-push-deviations", ()),       # configured subscriptions refused (yang/)
)


def project_yang_dir() -> Path:
    """The directory that holds the composer modules."""
    source_tree = Path(__file__).resolve().parent.parent.parent / "yang"
    if (source_tree / "composer-sffg.yang").exists():
        return source_tree
    return Path(sys.prefix) / "share" / "composer-nc" / "yang"


def ietf_yang_dirs() -> list[Path]:
    """The directories where pyang installed the IETF and IANA modules."""
    base = Path(sys.prefix) / "share" / "yang" / "modules"
    dirs = [base / "ietf", base / "iana"]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        raise FileNotFoundError(
            "pyang's YANG module directories are missing (%s); install pyang in this "
            "environment (make venv)" % ", ".join(missing))
    return dirs


def search_dirs(extra_dirs=()) -> list[Path]:
    return [project_yang_dir(), *ietf_yang_dirs(), *(Path(d) for d in extra_dirs)]


def create_context(extra_dirs=(), extra_modules=(), protocol=True) -> libyang.Context:
    """A libyang context with the composer modules (and, by default, the NETCONF protocol
    modules) loaded and implemented; extra_modules are names found in extra_dirs."""
    search_path = ":".join(str(d) for d in search_dirs(extra_dirs))
    # Compiled once at the end. A module's features are given all at once: libyang's
    # lys_set_implemented() (behind Module.feature_enable) replaces the enabled set, so
    # enabling them one by one would leave only the last.
    ctx = libyang.Context(search_path, disable_searchdir_cwd=True, explicit_compile=True)
    if protocol:
        for name, features in PROTOCOL_MODULES:
            _load_with_features(ctx, name, features)
    for name in COMPOSER_MODULES:
        ctx.load_module(name)
    for name in extra_modules:
        ctx.load_module(name)
    ctx.compile_schema()
    return ctx


def _load_with_features(ctx: libyang.Context, name: str, features) -> None:
    keep = [ffi.new("char[]", f.encode()) for f in features]
    array = ffi.new("char *[]", [*keep, ffi.NULL])
    if lib.ly_ctx_load_module(ctx.cdata, name.encode(), ffi.NULL, array) == ffi.NULL:
        raise ctx.error("cannot load module %s" % name)


def module_files() -> list[Path]:
    """The composer module files, in dependency order."""
    return [project_yang_dir() / (name + ".yang") for name in COMPOSER_MODULES]


def ietf_search_path() -> str:
    return os.pathsep.join(str(d) for d in ietf_yang_dirs())
