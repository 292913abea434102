"""The startup datastore on disk: XML, replaced atomically.

A write goes to a temporary file in the same directory, is flushed to the disk
(fsync), renamed over the old file, and the directory is synced, so that a crash
leaves either the old or the new startup, never a mix.
"""

import os
import tempfile
from pathlib import Path

from .tree import DataTree


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace path with data: temp file, fsync, rename, fsync of the directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % path.name, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            os.fchmod(stream.fileno(), mode)
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dirfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def save(path: Path, tree: DataTree) -> None:
    """Write a configuration tree (explicit values only) as the startup file: the
    top-level nodes as libyang prints them (what yanglint reads too)."""
    atomic_write(path, tree.print("explicit", pretty=True))


def load(path: Path, ctx) -> DataTree:
    """The startup configuration saved at path (an empty tree when there is no file);
    raises agent.model.ValidationError when the file does not fit the model."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return DataTree(ctx)
    return DataTree.parse(ctx, raw, config_only=True, validate=True)
