"""The startup datastore on disk: XML, replaced atomically.

A write goes to a temporary file in the same directory, is flushed to the disk
(fsync), renamed over the old file, and the directory is synced, so that a crash
leaves either the old or the new startup, never a mix.
"""

import os
from pathlib import Path

from ..files import atomic_write

from .tree import DataTree


def save(path: Path, tree: DataTree, sync: bool = True) -> None:
    """Write a configuration tree (explicit values only) as the startup file: the
    top-level nodes as libyang prints them (what yanglint reads too)."""
    atomic_write(path, tree.print("explicit", pretty=True), sync=sync)


BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    """This boot of the machine (a reboot changes it)."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def tag_boot(path: Path) -> None:
    """Mark the running file of this process as belonging to this boot (once per start)."""
    atomic_write(path.with_name(path.name + ".boot"), boot_id().encode(), sync=False)


def save_running(path: Path, tree: DataTree) -> None:
    """The running configuration, for a restart of the agent within this boot."""
    write_running(path, print_running(tree))


def print_running(tree: DataTree) -> bytes:
    """The running configuration as save_running writes it."""
    return tree.print("explicit")


def write_running(path: Path, data: bytes) -> None:
    """Running as print_running printed it: replaced atomically but not synced (it only
    has to outlive the process). One writer at a time (the datastores' serial lock), so
    the temporary file has a fixed name."""
    path = Path(path)
    tmp = path.with_name("." + path.name + ".tmp")
    with open(tmp, "wb", opener=lambda name, flags: os.open(name, flags, 0o600)) as stream:
        stream.write(data)
    os.replace(tmp, path)


def load_running(path: Path, ctx) -> DataTree | None:
    """The running configuration an agent of this boot left, or None (none was left, or
    the machine rebooted since: then the node is empty and startup is what boots)."""
    if not Path(path).exists():
        return None
    try:
        tag = path.with_name(path.name + ".boot").read_text().strip()
    except OSError:
        tag = ""
    if tag != boot_id():
        return None
    return load(path, ctx)


def load(path: Path, ctx) -> DataTree:
    """The startup configuration saved at path (an empty tree when there is no file);
    raises agent.model.ValidationError when the file does not fit the model."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return DataTree(ctx)
    return DataTree.parse(ctx, raw, config_only=True, validate=True)
