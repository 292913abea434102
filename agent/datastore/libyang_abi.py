"""The few libyang C functions the pinned python binding (libyang 2.8.0) does not declare.

The binding's cffi module is compiled with a fixed list of declarations; these are called
through a second, ABI-mode cffi handle on the same shared library (libyang.so.2, already
loaded by the binding), so pointers pass between the two as plain addresses.
"""

import cffi
from _libyang import ffi as binding_ffi

_ffi = cffi.FFI()
_ffi.cdef("""
int lyd_insert_before(void *sibling, void *node);
int lyd_insert_after(void *sibling, void *node);
int lyd_new_implicit_tree(void *tree, uint32_t implicit_options, void **diff);
""")
_lib = _ffi.dlopen("libyang.so.2")


def _ptr(cdata):
    return _ffi.cast("void *", int(binding_ffi.cast("uintptr_t", cdata)))


def insert_before(sibling, node) -> int:
    """Move node (a list or leaf-list instance) just before sibling; 0 on success."""
    return _lib.lyd_insert_before(_ptr(sibling), _ptr(node))


def insert_after(sibling, node) -> int:
    """Move node just after sibling; 0 on success."""
    return _lib.lyd_insert_after(_ptr(sibling), _ptr(node))


def new_implicit_tree(node, options: int = 0) -> int:
    """Add the default nodes missing below node (not its siblings); 0 on success."""
    return _lib.lyd_new_implicit_tree(_ptr(node), options, _ffi.NULL)
