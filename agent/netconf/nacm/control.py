"""The policy of a server: compiled from running's /nacm on demand (again after each change
of it), the users' views cached, the groups from the users' entries, the counters."""

import json
from dataclasses import dataclass
from pathlib import Path

from _libyang import ffi, lib

from ...datastore.tree import NULL, DataTree
from .access import Access
from .rules import NACM_MODULE, NACM_NS, Policy


@dataclass
class Counters:
    denied_operations: int = 0
    denied_data_writes: int = 0
    denied_notifications: int = 0


class Nacm:
    """The policy of a server: compiled from running on demand, per-user views cached."""

    def __init__(self, ctx, datastores, users_dir: Path | None = None,
                 recovery_user: str = "recovery"):
        self.ctx = ctx
        self.datastores = datastores
        self.users_dir = Path(users_dir) if users_dir is not None else None
        self.recovery_user = recovery_user
        self.counters = Counters()
        self._policy: Policy | None = None
        self._views: dict = {}

    def invalidate(self) -> None:
        self._policy = None
        self._views = {}

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = self._compile(self.datastores.running)
        return self._policy

    def _compile(self, running: DataTree) -> Policy:
        node = running.find("/%s:nacm" % NACM_MODULE) if not running.empty else None
        if node is None:
            return Policy()
        buf = ffi.new("char **")
        if lib.lyd_print_mem(buf, node, lib.LYD_JSON, lib.LYD_PRINT_WD_ALL) != lib.LY_SUCCESS \
                or buf[0] == NULL:
            return Policy()
        try:
            return Policy.from_json(json.loads(ffi.string(buf[0]).decode()))
        finally:
            lib.free(buf[0])

    def _groups_file(self, user: str) -> Path | None:
        return self.users_dir / user / "groups" if self.users_dir is not None else None

    def external_groups(self, user: str) -> set:
        path = self._groups_file(user)
        if path is None:
            return set()
        try:
            text = path.read_text()
        except (OSError, ValueError):
            return set()
        return {line.strip() for line in text.splitlines()
                if line.strip() and not line.strip().startswith("#")}

    def _groups_stamp(self, user: str):
        """What tells a changed groups file (its mtime and size), None without one."""
        path = self._groups_file(user)
        try:
            found = path.stat() if path is not None else None
        except OSError:
            return None
        return (found.st_mtime_ns, found.st_size) if found is not None else None

    def access(self, user: str) -> Access | None:
        """The user's view, or None when NACM does not apply (off, recovery session).
        Made once per policy and user (and again when the user's groups file changes)."""
        policy = self.policy
        if not policy.enabled or (self.recovery_user and user == self.recovery_user):
            return None
        stamp = self._groups_stamp(user) if policy.external_groups else None
        cached = self._views.get(user)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        groups = {g for g, users in policy.groups.items() if user in users}
        if policy.external_groups:
            groups |= self.external_groups(user)
        view = Access(self.ctx, policy, user, groups, self.counters)
        self._views[user] = (stamp, view)
        return view

    def changed(self, change) -> None:
        """A datastore observer: a change of running that may touch /nacm recompiles."""
        if getattr(change, "datastore", None) != "running":
            return
        edits = change.known_edits
        if edits is None or any(path.startswith("/%s:" % NACM_MODULE) for path, _ in edits):
            self.invalidate()

    def state(self) -> DataTree:
        """/nacm's counters (config false), to merge with running's /nacm."""
        c = self.counters
        xml = ("<nacm xmlns='%s'><denied-operations>%d</denied-operations>"
               "<denied-data-writes>%d</denied-data-writes><denied-notifications>%d"
               "</denied-notifications></nacm>" % (NACM_NS, c.denied_operations,
                                                   c.denied_data_writes,
                                                   c.denied_notifications))
        return DataTree.parse(self.ctx, xml, config_only=False, validate=False)


