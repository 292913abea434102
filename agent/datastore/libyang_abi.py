"""The few libyang C functions and structures the pinned python binding (libyang 2.8.0)
does not declare.

The binding's cffi module is compiled with a fixed list of declarations; these are called
through a second, ABI-mode cffi handle on the same shared library (libyang.so.2, already
loaded by the binding), so pointers pass between the two as plain addresses. The structures
are declared field for field as libyang 2.1 defines them (tree_schema.h); pointers the agent
does not follow are void *.
"""

import cffi
from _libyang import ffi as binding_ffi, lib as binding_lib

_ffi = cffi.FFI()
_ffi.cdef("""
int lyd_insert_before(void *sibling, void *node);
int lyd_insert_after(void *sibling, void *node);
int lyd_new_implicit_tree(void *tree, uint32_t implicit_options, void **diff);
int lyd_find_sibling_first(const void *siblings, const void *target, void **match);
int lyd_find_sibling_val(const void *first, const void *schema, const char *key_or_value,
                         size_t val_len, void **match);

uint32_t ly_ctx_internal_modules_count(const void *ctx);

struct lysp_revision {
    char date[11];
    const char *dsc;
    const char *ref;
    void *exts;
};
struct lysp_include {
    struct lysp_submodule *submodule;
    const char *name;
    const char *dsc;
    const char *ref;
    void *exts;
    char rev[11];
    uint8_t injected;
};
struct lysp_submodule {
    void *mod;
    struct lysp_revision *revs;
    void *imports, *includes, *extensions, *features, *identities, *typedefs, *groupings,
         *data, *augments, *rpcs, *notifs, *deviations, *exts;
    uint8_t version;
    uint8_t flags;              /* parsing:1, is_submod:1, latest_revision:2 */
    const char *name;
    const char *filepath;
    const char *prefix;
    const char *org;
    const char *contact;
    const char *dsc;
    const char *ref;
};

int ly_out_new_memory(char **strp, size_t size, void **out);
void ly_out_free(void *out, void *clb_arg_destructor, uint8_t destroy);
int lys_print_submodule(void *out, const struct lysp_submodule *submodule, int format,
                        size_t line_length, uint32_t options);
void free(void *ptr);
""")
_lib = _ffi.dlopen("libyang.so.2")
_libc = _ffi.dlopen(None)


def _ptr(cdata):
    return _ffi.cast("void *", int(binding_ffi.cast("uintptr_t", cdata)))


def _text(pointer) -> str:
    return _ffi.string(pointer).decode() if pointer != _ffi.NULL else ""


def _count(array) -> int:
    """The length of a libyang sized array (its count sits just before its first item)."""
    if array == _ffi.NULL:
        return 0
    return _ffi.cast("uint64_t *", array)[-1]


def insert_before(sibling, node) -> int:
    """Move node (a list or leaf-list instance) just before sibling; 0 on success."""
    return _lib.lyd_insert_before(_ptr(sibling), _ptr(node))


def insert_after(sibling, node) -> int:
    """Move node just after sibling; 0 on success."""
    return _lib.lyd_insert_after(_ptr(sibling), _ptr(node))


def new_implicit_tree(node, options: int = 0) -> int:
    """Add the default nodes missing below node (not its siblings); 0 on success."""
    return _lib.lyd_new_implicit_tree(_ptr(node), options, _ffi.NULL)


def find_sibling_first(first, node):
    """The instance of node (same schema, keys or value) among the siblings from first
    (libyang's hash look-up), or None."""
    match = _ffi.new("void **")
    if _lib.lyd_find_sibling_first(_ptr(first), _ptr(node), match) != 0 or \
            match[0] == _ffi.NULL:
        return None
    return binding_ffi.cast("struct lyd_node *", int(_ffi.cast("uintptr_t", match[0])))


def find_sibling_val(first, snode):
    """The first instance of the schema node snode among the siblings from first, or
    None."""
    match = _ffi.new("void **")
    if _lib.lyd_find_sibling_val(_ptr(first), _ptr(snode), _ffi.NULL, 0, match) != 0 or \
            match[0] == _ffi.NULL:
        return None
    return binding_ffi.cast("struct lyd_node *", int(_ffi.cast("uintptr_t", match[0])))


def internal_modules_count(ctx) -> int:
    """How many modules libyang loaded into the context for itself (they come first)."""
    return _lib.ly_ctx_internal_modules_count(_ptr(ctx.cdata))


class Submodule:
    """A parsed submodule: name, newest revision ('' if none), the file it was read from."""

    def __init__(self, pointer):
        self._pointer = pointer
        self.name = _text(pointer.name)
        self.revision = (_ffi.string(pointer.revs[0].date).decode()
                         if _count(pointer.revs) else "")
        self.filepath = _text(pointer.filepath) or None
        imports = binding_ffi.cast("struct lysp_import *",
                                   int(_ffi.cast("uintptr_t", pointer.imports)))
        # the modules it imports (lys_module pointers of the binding)
        self.imports = [imports[i].module for i in range(_count(pointer.imports))]

    def print_yang(self) -> str:
        """The submodule as libyang prints it in YANG."""
        text = _ffi.new("char **")
        out = _ffi.new("void **")
        if _lib.ly_out_new_memory(text, 0, out) != 0:
            raise MemoryError("libyang cannot make an output buffer")
        try:
            if _lib.lys_print_submodule(out[0], self._pointer, binding_lib.LYS_OUT_YANG, 0,
                                        0) != 0:
                raise RuntimeError("libyang cannot print submodule %s" % self.name)
        finally:
            _lib.ly_out_free(out[0], _ffi.NULL, 0)
        try:
            return _ffi.string(text[0]).decode()
        finally:
            _libc.free(text[0])


def submodules(module) -> list[Submodule]:
    """The submodules of a module (lys_module), in the order it includes them; YANG 1.0
    submodules that only other submodules include are there too (libyang adds them)."""
    if module.parsed == binding_ffi.NULL:
        return []
    includes = _ffi.cast("struct lysp_include *", _ptr(module.parsed.includes))
    found = {}
    for i in range(_count(includes)):
        pointer = includes[i].submodule
        if pointer != _ffi.NULL:
            found.setdefault(_text(pointer.name), Submodule(pointer))
    return list(found.values())
