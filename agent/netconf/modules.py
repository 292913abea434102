"""The YANG modules the server announces and serves, in one list, so that the hello, the
YANG library (RFC 8525), netconf-state/schemas (RFC 6022) and <get-schema> tell the same
story.

libyang loads some modules into every context for its own use (its internal `yang`
module, ietf-yang-schema-mount, ietf-yang-structure-ext, ...) and marks some of them
implemented. The server implements only two of those: the YANG library itself, and the
datastore identities that the library and the NMDA operations use. So a module is
*implemented* when libyang implements it and it is either not one of libyang's own or one
of those two; a module that an announced module (or one of its submodules) imports,
directly or not, and that is not implemented is *import-only* (RFC 7950 5.6.5, RFC 8525
import-only-module). Nothing else is announced: the rest of libyang's own modules describe
nothing a client can use here.

Schemas serves their texts (RFC 6022 <get-schema>): YANG as the file each was loaded from
(libyang's printer for the modules libyang holds in memory), YIN translated from that
YANG by pyang. libyang 2.1's YIN printer is not used: it closes an include that has a
revision-date with "}", which is not XML (fixed in libyang 2.1.148).
"""

import io
import types
from dataclasses import dataclass
from pathlib import Path

from _libyang import ffi, lib
from libyang.util import ly_array_iter
from pyang import context as pyang_context, repository as pyang_repository
from pyang.translators import yin as pyang_yin

from ..datastore import libyang_abi
from .errors import RpcError

SCHEMA_FORMATS = ("yang", "yin")

# libyang's own modules that the server does implement
SERVED_INTERNAL = ("ietf-yang-library", "ietf-datastores")


def _text(pointer) -> str:
    return ffi.string(pointer).decode() if pointer != ffi.NULL else ""


def _key(module) -> int:
    return int(ffi.cast("uintptr_t", module))


@dataclass(frozen=True)
class Module:
    """A module as announced: conformance, features, deviations and submodules."""
    name: str
    revision: str                   # "" when the module has none
    namespace: str
    yang_version: int               # 1 (YANG 1.0) or 2 (YANG 1.1)
    implemented: bool
    features: tuple = ()            # enabled features of an implemented module
    deviations: tuple = ()          # names of the modules that deviate it
    submodules: tuple = ()          # libyang_abi.Submodule
    pointer: object = None          # the lys_module

    @property
    def filepath(self) -> str | None:
        return _text(self.pointer.filepath) or None


def _context_modules(ctx) -> list:
    """The lys_modules of a context in the order libyang loaded them."""
    out = []
    index = ffi.new("uint32_t *")
    module = lib.ly_ctx_get_module_iter(ctx.cdata, index)
    while module != ffi.NULL:
        out.append(module)
        module = lib.ly_ctx_get_module_iter(ctx.cdata, index)
    return out


def _imports(module, submodules) -> list:
    found = [i.module for i in ly_array_iter(module.parsed.imports)] \
        if module.parsed != ffi.NULL else []
    for submodule in submodules:
        found += submodule.imports
    return [m for m in found if m != ffi.NULL]


def served_modules(ctx) -> list[Module]:
    """The implemented and import-only modules of a compiled context, by name."""
    modules = _context_modules(ctx)
    internal = {_key(m) for m in modules[:libyang_abi.internal_modules_count(ctx)]}
    implemented = {_key(m) for m in modules if m.implemented and
                   (_key(m) not in internal or _text(m.name) in SERVED_INTERNAL)}
    announced = {}
    pending = [m for m in modules if _key(m) in implemented]
    while pending:
        module = pending.pop()
        if _key(module) in announced:
            continue
        submodules = tuple(libyang_abi.submodules(module))
        announced[_key(module)] = _describe(ctx, module, _key(module) in implemented,
                                            submodules)
        pending += _imports(module, submodules)
    return sorted(announced.values(), key=lambda m: (m.name, m.revision))


def _describe(ctx, module, implemented: bool, submodules: tuple) -> Module:
    name = _text(module.name)
    features, deviations = (), ()
    if implemented:
        features = tuple(sorted(f.name() for f in ctx.get_module(name).features() if f.state()))
        if module.deviated_by != ffi.NULL:
            deviations = tuple(sorted(_text(m.name) for m in ly_array_iter(module.deviated_by)))
    version = module.parsed.version if module.parsed != ffi.NULL else 1
    return Module(name=name, revision=_text(module.revision), namespace=_text(module.ns),
                  yang_version=2 if version >= 2 else 1, implemented=implemented,
                  features=features, deviations=deviations, submodules=submodules,
                  pointer=module)


class Schemas:
    """The served modules and submodules, and their texts for <get-schema>. The YANG
    texts are read when the server starts; a YIN text is made on first demand, in
    whatever thread asks (pyang only: no libyang call), and kept."""

    def __init__(self, ctx):
        self.modules = served_modules(ctx)
        self.entries = [e for m in self.modules for e in (m, *m.submodules)]
        self._yang = {(e.name, e.revision): _yang_text(e) for e in self.entries}
        self._yin = {}

    def find(self, identifier: str, version: str | None = None):
        """The module or submodule of that name (and revision, if given)."""
        found = [e for e in self.entries
                 if e.name == identifier and (not version or e.revision == version)]
        if not found:
            raise RpcError("invalid-value", "no schema %s%s" % (
                identifier, "@" + version if version else ""), error_type="protocol")
        if len(found) > 1:
            raise RpcError("operation-failed", "several revisions of %s: give a version"
                           % identifier, error_type="protocol", app_tag="data-not-unique")
        return found[0]

    def get(self, identifier: str, version: str | None, fmt: str | None) -> str:
        """The text of a schema in a format (RFC 6022 <get-schema>; yang by default)."""
        fmt = fmt or "yang"
        if fmt not in SCHEMA_FORMATS:
            raise RpcError("invalid-value", "schema format %s is not supported (yang, yin)"
                           % fmt, error_type="protocol")
        key = (entry := self.find(identifier, version)).name, entry.revision
        if fmt == "yang":
            return self._yang[key]
        text = self._yin.get(key)
        if text is None:
            text = self._yin[key] = self._translate(entry)
        return text

    def _translate(self, entry) -> str:
        """YIN from the YANG text, by pyang, resolving imports among the served modules."""
        ctx = pyang_context.Context(_Repository(self._yang))
        ctx.opts = types.SimpleNamespace(yin_canonical=False, yin_pretty_strings=False)
        module = ctx.add_module(entry.name, self._yang[(entry.name, entry.revision)],
                                in_format="yang", primary_module=True)
        if module is None:
            raise RpcError("operation-failed", "cannot translate %s to YIN" % entry.name)
        ctx.validate()
        out = io.StringIO()
        pyang_yin.emit_yin(ctx, module, out)
        return out.getvalue()


class _Repository(pyang_repository.Repository):
    """pyang's view of the served YANG texts."""

    def __init__(self, texts: dict):
        self.texts = texts

    def get_modules_and_revisions(self, ctx):
        return [(name, revision, ("served", name, revision)) for name, revision in self.texts]

    def get_module_from_handle(self, handle):
        _, name, revision = handle
        return name, "yang", self.texts[(name, revision)]


def _yang_text(entry) -> str:
    if entry.filepath and entry.filepath.endswith(".yang"):
        return Path(entry.filepath).read_text()
    if isinstance(entry, libyang_abi.Submodule):
        return entry.print_yang()
    buf = ffi.new("char **")
    if lib.lys_print_mem(buf, entry.pointer, lib.LYS_OUT_YANG, 0) != lib.LY_SUCCESS:
        raise RuntimeError("libyang cannot print module %s" % entry.name)
    try:
        return ffi.string(buf[0]).decode()
    finally:
        lib.free(buf[0])
