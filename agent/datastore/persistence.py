"""The datastores on disk: startup, and running's crash-restart copy; XML, replaced
atomically and durably.

A write goes to a temporary file in the same directory, is flushed to the disk (fsync),
renamed over the old file, and the directory is synced, so that a crash leaves either the
old or the new file, never a mix, and a change reported done is on the disk. A write that
cannot be done (no space, an I/O error, a read-only file system) raises OSError.
"""

from pathlib import Path

from ..files import StagedFile, atomic_write

from .tree import DataTree


def save(path: Path, tree: DataTree) -> None:
    """Write a configuration tree (explicit values only) as the startup file, durably: the
    top-level nodes as libyang prints them (what yanglint reads too). Raises OSError."""
    atomic_write(path, tree.print("explicit", pretty=True))


BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    """This boot of the machine (a reboot changes it)."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def tag_boot(path: Path) -> None:
    """Mark the running file of this process as belonging to this boot (once per start;
    a restart within the same boot finds the tag there already and writes nothing). Not
    synced: a machine crash changes the boot anyway."""
    tag = path.with_name(path.name + ".boot")
    try:
        if tag.read_text().strip() == boot_id():
            return
    except OSError:
        pass
    atomic_write(tag, boot_id().encode(), sync=False)


def print_running(tree: DataTree) -> bytes:
    """The running configuration as the crash-restart copy holds it."""
    return tree.print("explicit")


def stage_running(path: Path, data: bytes) -> StagedFile:
    """Running as print_running printed it, written and synced beside path; install()
    makes it the crash-restart copy. Raises OSError (ENOSPC, EIO...)."""
    return StagedFile(path, data)


def save_running(path: Path, tree: DataTree) -> None:
    """The running configuration, for a restart of the agent within this boot, durably."""
    stage_running(path, print_running(tree)).install()


def forget_running(path: Path) -> None:
    """No crash-restart copy: the next start boots from startup."""
    for name in (path, path.with_name(path.name + ".boot")):
        try:
            name.unlink()
        except FileNotFoundError:
            pass


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
