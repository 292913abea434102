"""A native function instance on disk: its directory under <state_dir>/native/, its
metadata (instance.json, replaced atomically) and the states it records.

The metadata is written before anything else of an instance is made, so that a crash
leaves a trace list_instances finds (state "creating": destroy it).
"""

import json
import os
import re
import threading
import time
from pathlib import Path

from ..errors import ResourceNotFound

INSTANCE_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}\Z")
METADATA = "instance.json"

# States in the metadata; status() reports "failed" for an instance that is incomplete.
CREATING, CREATED, RUNNING, STOPPED, PAUSED, FAILED = (
    "creating", "created", "running", "stopped", "paused", "failed")
SPARE = "spare"        # a prepared slot: namespace and ports, no package yet

# How an instance took a change of its ports (update()), in its metadata's "updates"
IN_PLACE = "in-place"  # the running function took them (veths moved, NICs hot-plugged)
RESTART = "restart"    # its process was restarted with them (a DPDK application)


def record_update(meta: dict, method: str) -> None:
    """Count a port update of the instance in its metadata (saved by the caller): how it
    was made (IN_PLACE, RESTART), how many so far, when the last (Unix time)."""
    updates = meta.get("updates") or {}
    meta["updates"] = {"method": method, "count": int(updates.get("count", 0)) + 1,
                       "last": time.time()}


def atomic_write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


class InstanceStore:
    """The instances' directories under root, one per instance name."""

    def __init__(self, root: Path, kind: str = "native"):
        self.root = Path(root)
        self.kind = kind

    def dir(self, instance: str) -> Path:
        if not isinstance(instance, str) or not INSTANCE_RE.match(instance):
            raise ValueError("invalid instance name %r (1..64 letters, digits, '_', '.', '-', "
                             "not starting with '.' or '-')" % (instance,))
        return self.root / instance

    def load(self, instance: str) -> dict:
        try:
            with open(self.dir(instance) / METADATA) as f:
                return json.load(f)
        except FileNotFoundError:
            raise ResourceNotFound("no %s function instance" % self.kind,
                                   resource=instance) from None

    @staticmethod
    def save(meta: dict) -> None:
        atomic_write_json(Path(meta["dir"]) / METADATA, meta)

    def names(self) -> list:
        """The instances with metadata, sorted."""
        if not self.root.is_dir():
            return []
        return [entry.name for entry in sorted(self.root.iterdir())
                if INSTANCE_RE.match(entry.name) and (entry / METADATA).is_file()]


class InstanceAccess:
    """What every driver does with its instances, through self.store (an InstanceStore),
    self._locks (a defaultdict of locks, one per instance) and self._locks_guard."""

    def _dir(self, instance: str) -> Path:
        return self.store.dir(instance)

    def _lock(self, instance: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks[instance]

    def _load(self, instance: str) -> dict:
        return self.store.load(instance)

    def _save(self, meta: dict) -> None:
        self.store.save(meta)

    def port_updates(self, instance: str) -> dict | None:
        """See ComputeDriver.port_updates: the metadata's record_update."""
        try:
            return self.store.load(instance).get("updates")
        except ResourceNotFound:
            return None
