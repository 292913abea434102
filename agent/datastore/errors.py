"""Errors of the datastore layer, each carrying what an rpc-error needs.

The tags are RFC 6241 appendix A error-tags, because the datastore semantics that fail
(an edit that creates what exists, a lock held by another session) are defined there;
the NETCONF layer turns every Problem into one <rpc-error>. Errors libyang finds in the
data itself arrive as agent.model.ValidationError and are mapped by the NETCONF layer.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    """One error: RFC 6241 error-tag and error-type, message, data path, app tag, info."""
    tag: str
    message: str
    path: str | None = None
    app_tag: str | None = None
    error_type: str = "application"
    info: tuple = field(default=())          # (name, value) pairs for <error-info>


class DatastoreError(Exception):
    """Root of the datastore errors: one or more Problems."""

    def __init__(self, problems):
        if isinstance(problems, Problem):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("; ".join(p.message for p in self.problems))


class EditError(DatastoreError):
    """An edit that cannot be applied (data-exists, data-missing, bad-attribute...)."""


class LockError(DatastoreError):
    """A lock that cannot be taken or released, or a datastore locked by someone else."""


class StateUnavailable(DatastoreError):
    """Operational state that a read asks for cannot be built (a state provider failed)."""


class CommitError(DatastoreError):
    """A commit (or any change of running) refused by the transaction engine, or a
    confirmed-commit request that does not fit the pending one."""


def data_exists(path: str) -> Problem:
    return Problem("data-exists", "the data already exists", path=path)


def data_missing(path: str) -> Problem:
    return Problem("data-missing", "the data does not exist", path=path)


def in_use(datastore: str, holder: int) -> Problem:
    return Problem("in-use", "the %s datastore is locked by session %d" % (datastore, holder),
                   error_type="protocol", info=(("session-id", str(holder)),))


def lock_denied(message: str, holder: int) -> Problem:
    return Problem("lock-denied", message, error_type="protocol",
                   info=(("session-id", str(holder)),))


def state_unavailable(provider: str, reason: str) -> Problem:
    return Problem("operation-failed", "the operational state of %s cannot be read: %s"
                   % (provider, reason), app_tag="state-unavailable")
