"""What the datastores ask of the engine, and how managers contribute operational state.

The datastore layer calls, for every change of running (commit, edit-config on running,
copy-config to running, a confirmed-commit rollback, and at boot with old=None):

    engine.validate(old, new)   # optional checks beyond YANG; no side effect
    engine.apply(old, new)      # make the node match new; all or nothing; durable
    engine.revert(old, new)     # rarely: the caller could not make new durable

and engine.converge() for a commit that changes nothing (the node drifted, maybe).

Before a change of running takes the commit lock, the datastores call engine.prefetch(new)
(new: the candidate of a commit, the edit of an edit-config, the source of a copy-config):
when it returns a callable, they run it in a worker thread, without any lock, and take
the lock after it: slow work that belongs to no transaction (an image downloaded or
imported) is done then, while other changes go on. It is a hint: apply() does what it
missed.

A commit may instead call engine.read(old, new) before new has been YANG-validated: when
it returns a callable, that callable does validate's checks from what read() took of the
tree, in a worker thread while libyang validates new, and validate() is not called. The
callable may also begin the deployment with steps that no traffic sees; when libyang then
refuses new, the caller calls engine.release(new), which undoes them, instead of apply().

Both take libyang config trees (the first top-level sibling, or None for an empty datastore)
and must not modify or keep them: convert what you need before returning. apply() runs in
a worker thread; the caller holds the commit lock, so applies never overlap. Refusal is
EngineRefused; the node must then be exactly as it was before the call. When apply()
returns, what the engine needs after a restart (its own records) is on the disk; when it
cannot be, apply() undoes the change and refuses with tag resource-denied. The caller then
writes running's own copy; if that fails it calls revert(old, new) right away.
"""

from dataclasses import dataclass, field


class EngineRefused(Exception):
    """The engine cannot make the node match the new configuration.

    message is for the operator; path is the data path of the configuration node at fault
    (error-path); app_tag an error-app-tag; info extra (name, value) pairs for error-info;
    tag the RFC 6241 error-tag: operation-failed, or resource-denied when the node or its
    disk lacks a resource (no space to record the change).
    """

    def __init__(self, message: str, *, path: str | None = None, app_tag: str | None = None,
                 info: dict | None = None, tag: str = "operation-failed"):
        super().__init__(message)
        self.tag = tag
        self.message = message
        self.path = path
        self.app_tag = app_tag
        self.info = dict(info or {})


class TransactionEngine:
    """Base engine: accepts every change and does nothing."""

    def validate(self, old, new) -> None:
        """Raise EngineRefused when new cannot be deployed (checks beyond the YANG model)."""

    def read(self, old, new):
        """Optional: take from new now what validate needs, and return a callable that
        runs validate's checks on that alone (raising EngineRefused), never touching the
        trees, which libyang is changing meanwhile (new has no default nodes yet). None:
        validate(old, new) runs after libyang's validation instead."""
        return None

    def prefetch(self, new):
        """Optional: take from new (read only, now) what its change will need fetched, and
        return a callable that fetches it (in a worker thread, holding no lock); None when
        there is nothing to fetch. Errors of the callable are the change's to report: it
        logs them and returns."""
        return None

    def release(self, new) -> None:
        """new, read() earlier, will not be applied: undo what its check began (it may still
        be running: it stops). Blocks; called in a worker thread."""

    def apply(self, old, new) -> None:
        """Make the node match new; on failure undo everything and raise EngineRefused."""

    def converge(self) -> None:
        """A commit that changes nothing: make the node match running again where it
        drifted, or raise EngineRefused saying what is still broken. Blocks; called in a
        worker thread, holding the commit lock."""

    def revert(self, old, new) -> None:
        """new, just applied, could not be made durable by the caller: make the node match
        old again. By default a transaction back to old."""
        self.apply(new, old)


class AcceptAllEngine(TransactionEngine):
    """The default until a real engine is configured: every commit succeeds."""


@dataclass
class StateProvider:
    """A source of operational state: a callable that, given the libyang context, returns
    a data tree (config false nodes, possibly with the keys of config lists) to merge into
    the operational datastore for get/get-data. Called, in a worker thread, on every read
    whose filter can select data of `modules` (every read when empty); when it raises, the
    read fails with an rpc-error that gives its reason."""
    name: str
    build: object = field(repr=False)     # callable(ctx) -> libyang.DNode | None
    modules: tuple = ()                   # the YANG modules whose data it builds
