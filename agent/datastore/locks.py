"""Global datastore locks (RFC 6241 section 7.5): at most one holder session each."""

from dataclasses import dataclass
from datetime import datetime, timezone

from .errors import LockError, Problem, in_use, lock_denied


@dataclass(frozen=True)
class Lock:
    session_id: int
    since: datetime


class Locks:
    """Who holds the lock of each datastore. Session id 0 is never a holder."""

    def __init__(self):
        self._held: dict[str, Lock] = {}

    def holder(self, datastore: str) -> Lock | None:
        return self._held.get(datastore)

    def acquire(self, datastore: str, session_id: int) -> None:
        held = self._held.get(datastore)
        if held is not None:
            raise LockError(lock_denied("the %s datastore is already locked by session %d"
                                        % (datastore, held.session_id), held.session_id))
        self._held[datastore] = Lock(session_id, datetime.now(timezone.utc))

    def release(self, datastore: str, session_id: int) -> None:
        held = self._held.get(datastore)
        if held is None or held.session_id != session_id:
            raise LockError(Problem("operation-failed", "this session does not hold the lock "
                                    "of the %s datastore" % datastore, error_type="protocol"))
        del self._held[datastore]

    def release_all(self, session_id: int) -> list[str]:
        mine = [name for name, held in self._held.items() if held.session_id == session_id]
        for name in mine:
            del self._held[name]
        return mine

    def check(self, datastore: str, session_id: int) -> None:
        """Raise in-use when another session holds the lock of datastore."""
        held = self._held.get(datastore)
        if held is not None and held.session_id != session_id:
            raise LockError(in_use(datastore, held.session_id))
