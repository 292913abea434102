"""Files the agent keeps in its state directory, replaced atomically and durably.

Used by every layer (the datastores, the engine), so it belongs to none of them.

A replacement has two halves: stage() writes the new content beside the file and syncs it
(the half that needs room on the disk, and fails with ENOSPC when there is none); install()
renames it over the file and syncs the directory (no new room needed). Between the two a
caller can do what must happen before the new content counts, and discard() instead leaves
the file as it was.
"""

import os
import tempfile
from pathlib import Path


class StagedFile:
    """New content for path, written and synced to a temporary file in its directory."""

    def __init__(self, path: Path, data: bytes, mode: int = 0o600, sync: bool = True):
        self.path = Path(path)
        self.sync = sync
        self.installed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.temporary = tempfile.mkstemp(prefix=".%s." % self.path.name,
                                              dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as stream:
                os.fchmod(stream.fileno(), mode)
                stream.write(data)
                stream.flush()
                if sync:
                    os.fsync(stream.fileno())
        except BaseException:
            self.discard()
            raise

    def install(self) -> None:
        """Rename over path, then sync the directory (the rename itself is durable). An
        OSError from the sync leaves the file renamed (installed) but maybe not durable."""
        try:
            os.rename(self.temporary, self.path)
        except BaseException:
            self.discard()
            raise
        self.temporary = None
        self.installed = True
        if self.sync:
            sync_directory(self.path.parent)

    def discard(self) -> None:
        if self.temporary is None:
            return
        try:
            os.unlink(self.temporary)
        except FileNotFoundError:
            pass
        self.temporary = None


def remove_stale(path: Path) -> None:
    """Remove what staging path left when its process died before install or discard."""
    path = Path(path)
    for stale in path.parent.glob(".%s.*" % path.name):
        try:
            stale.unlink()
        except OSError:
            pass


def sync_directory(path: Path) -> None:
    """fsync a directory: the names created, renamed or removed in it are on the disk."""
    dirfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600, sync: bool = True) -> None:
    """Replace path with data: temp file, fsync, rename, fsync of the directory. Raises
    OSError (the file is then as it was).

    sync=False skips both fsyncs: the rename is still atomic for any process crash (the
    kernel keeps what was written); only a machine crash could lose the new content."""
    StagedFile(path, data, mode, sync).install()
