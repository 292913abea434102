"""The conventional datastores (running, candidate, startup), their locks, commit and
confirmed commit, and the sources of the operational datastore.

Lifecycle:
1. Datastores(ctx, engine, startup_path): nothing is read yet.
2. await start(): startup is read from its file into running, then engine.apply(None,
   running) runs once. If the file does not fit the model, or the engine refuses it,
   the agent starts with an empty running (logged; the file is left untouched, so the
   operator can fix it) -- the engine is not asked to apply anything else.
3. Reads: tree(name) gives the current tree of a datastore; use it before the next
   await, never keep it (a commit swaps trees).
4. Changes: edit(), copy(), delete(), commit(), cancel_commit(), discard_changes(),
   validate(). They run one at a time (one asyncio lock); each runs as its own task,
   so a caller that is cancelled (a killed session) never leaves one half done.
5. session_ended(session_id): releases the session's locks, discards the candidate if
   it held its lock (RFC 6241 8.3.5.2), rolls back its confirmed commit unless that
   one was given persist.
6. await stop(): cancels the confirmed-commit timer (the pending commit stays applied).

Observers (observe(callback)) hear of every change of running and startup and of every
confirmed-commit event, on the event loop, once the change is made (agent/datastore/
changes.py: ConfigChanged with its edit list, ConfirmEvent).

Every change of running goes through the same transaction: libyang validation of the
new tree, then engine.validate(old, new) and engine.apply(old, new) in the commit lane's
threads; EngineRefused leaves running as it was and becomes a CommitError
(operation-failed). A commit and an edit-config of running overlap the two checks: what
the engine reads of the new tree beforehand (engine.read) is checked in a worker thread
while libyang validates the tree in this one.

Durable before acknowledged: a change returns only once what a restart needs is on the
disk (synced): the new running as the crash-restart copy (<state>/running.xml: printed
and written beside it while the engine applies the change, renamed into place after),
and the engine's own records (its journal and snapshot, written by apply()). When the
disk refuses, the change fails with resource-denied and the engine reverts it (see
_transaction): the node, running and the files stay as they were. While a confirmed
commit waits for its confirmation, the copy is the configuration it would roll back to.

Keeping candidate and running apart without copying: while the candidate has no
changes it holds the same content as running. The edits made to it are kept (as
edit.Plan); on commit, the candidate tree *becomes* running and the same plans are
replayed on the old running tree, which becomes the candidate. A one-leaf commit thus
costs libyang's validation of the datastore plus work proportional to the change. When
the candidate was replaced wholesale (copy-config) or running changed under it, the
new candidate is a copy of running instead.
"""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..engine.interface import AcceptAllEngine, EngineRefused, StateProvider
from ..files import remove_stale
from ..model.errors import ValidationError
from . import persistence
from .changes import ConfigChanged, ConfirmEvent, diff_later, subtree_diff, touched_paths
from .edit import Edit, Plan, execute, plan
from .errors import (CommitError, DatastoreError, EditError, LockError, Problem,
                     StateUnavailable, lock_denied, state_unavailable)
from .locks import Locks
from .tree import NULL, DataTree, is_default

LOG = logging.getLogger(__name__)

CONVENTIONAL = ("running", "candidate", "startup")
DEFAULT_CONFIRM_TIMEOUT = 600
ROLLBACK_RETRY = 10         # seconds between tries of a rollback the disk refused
DEFAULT_CONCURRENT_READS = 1
READ_PATIENCE = 1.0         # seconds a read gives a change under way before it goes on
# The threads of a change of running: the engine's check (then its apply), the print and
# write of the new running meanwhile, and a release that may overlap the check it undoes.
COMMIT_THREADS = 3


@dataclass
class _Checked:
    """A change libyang has validated: the engine's check, running since before (None:
    the engine reads nothing early), and the new running staged on disk meanwhile; the
    same root objects go on to engine.apply."""
    old_root: object
    new_root: object
    future: asyncio.Future | None
    staging: asyncio.Future | None = None      # a persistence.StagedFile of new, meanwhile


def _not_durable(path, exc: OSError) -> Problem:
    return Problem("resource-denied", "cannot write %s (%s): the change was not made, on the "
                   "node or on the disk" % (path, exc.strerror or exc))


@dataclass
class PendingConfirm:
    """A confirmed commit waiting for its confirming commit (RFC 6241 8.4)."""
    session_id: int
    persist: str | None
    rollback: DataTree                 # running before the first confirmed commit
    timeout: int
    timer: asyncio.TimerHandle | None = None


class Datastores:
    """running, candidate and startup, with locks, commit and confirmed commit."""

    def __init__(self, ctx, engine=None, startup_path: Path | None = None,
                 running_path: Path | None = None,
                 concurrent_reads: int = DEFAULT_CONCURRENT_READS):
        self.ctx = ctx
        self.engine = engine if engine is not None else AcceptAllEngine()
        self.startup_path = Path(startup_path) if startup_path is not None else None
        # running as the node last had it, for a restart after a crash (see start())
        self.running_path = Path(running_path) if running_path is not None else None
        self.running = DataTree(ctx)
        self.candidate = DataTree(ctx)
        self.startup = DataTree(ctx)
        self.locks = Locks()
        self.providers: list[StateProvider] = []
        self.boot_problem: str | None = None
        self._journal: list[Plan] | None = []    # plans applied to candidate since it was running
        self._dirty = False
        self._candidate_in_flight = False        # candidate is being turned into running
        self._in_transaction = False             # the engine is reading trees in a thread
        self._serial = asyncio.Lock()
        self._confirm: PendingConfirm | None = None
        self._tasks: set[asyncio.Task] = set()
        # Two lanes of threads: changes of running never queue behind state reads (which
        # call the vSwitch and can be slow and many), and at most concurrent_reads reads
        # build their state at once, the others waiting their turn in order.
        self._commit_lane = ThreadPoolExecutor(COMMIT_THREADS, thread_name_prefix="commit")
        self._read_lane = ThreadPoolExecutor(4 * max(1, concurrent_reads),
                                             thread_name_prefix="state")
        self._read_slots = asyncio.Semaphore(max(1, concurrent_reads))
        self._changing: asyncio.Future | None = None    # the change under way; done at its end
        self.observers: list = []
        # guard(session_id) -> None (anything goes) or a checker with check_plan(target,
        # plan) and check_trees(old, new, paths): the NETCONF layer's access control,
        # asked before any change is made; it raises (EditError) to refuse one
        self.guard = None

    # -- observers ------------------------------------------------------------------
    def observe(self, callback) -> None:
        """callback(ConfigChanged | ConfirmEvent) after each change (see changes.py)."""
        self.observers.append(callback)

    def _tell(self, change) -> None:
        for callback in list(self.observers):
            try:
                callback(change)
            except Exception:  # noqa: BLE001 - an observer must not undo a change
                LOG.exception("datastore observer %r failed", callback)

    def _changed(self, datastore: str, session_id: int, cause: str, old, new,
                 plans=None, take_old: bool = False) -> bool:
        """Tell the observers that datastore went from old to new (DataTrees; old None:
        empty). plans: the edit plans that made new from old, when known (the edit list
        is then made at once, from the subtrees they touched); otherwise both trees are
        diffed whole in a worker thread, on copies (take_old: old is the caller's to
        give away, not copied). Returns whether old was taken."""
        if not self.observers:
            return False
        when = datetime.now(timezone.utc)
        paths = touched_paths(plans) if plans is not None and old is not None else None
        took = False
        if paths is not None:
            edits = subtree_diff(old, new, paths)
        else:
            took = take_old and old is not None
            edits = diff_later(old if took or old is None else old.dup(), new.dup())
        self._tell(ConfigChanged(datastore, session_id, cause, when, edits))
        return took

    def _confirm_event(self, event: str, session_id: int, timeout=None) -> None:
        if self.observers:
            self._tell(ConfirmEvent(event, session_id, datetime.now(timezone.utc), timeout))

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        """Boot: running from startup, through the engine. After a crash of the agent within
        this boot of the machine, running is what the crashed run had instead: a process
        that died is not a device that rebooted, and the node still carries that running.
        A confirmed commit pending at the crash is not in it (RFC 6241 8.4)."""
        for path in (self.running_path, self.startup_path):
            if path is not None:
                remove_stale(path)
        if await self._restore_running():
            # The copy restored is on disk, tagged with this boot already.
            await self._boot_startup_file()
            return
        await self._boot_startup_file()
        running = self.startup.dup()
        running.validate()          # valid already; this adds the default nodes
        try:
            await self._transaction(None, running)
        except CommitError as exc:
            running.free()
            running = DataTree(self.ctx)
            running.validate()
            self.boot_problem = "the engine refused the startup configuration: %s" % exc
            LOG.error("%s; starting with an empty configuration", self.boot_problem)
        self.running = running
        self.candidate = running.dup()
        if any(not is_default(node) for node in running.top_nodes()):
            self._changed("running", 0, "boot", None, running)
        try:
            # Not acknowledged to anyone: when the disk refuses, the copy a crash would
            # restore stays the last one written (what the last run acknowledged).
            await self._save_restart_copy(running)
            if self.running_path is not None:
                await self._in_lane(persistence.tag_boot, self.running_path)
        except (CommitError, OSError) as exc:
            LOG.error("cannot keep the running configuration on disk: %s", exc)

    async def _restore_running(self) -> bool:
        """Running from the file the last run of this boot left, through the engine."""
        if self.running_path is None:
            return False
        try:
            crashed = await self._in_lane(persistence.load_running, self.running_path,
                                          self.ctx)
        except ValidationError as exc:
            LOG.error("the running configuration left by the last run is invalid (%s); "
                      "booting from startup", exc)
            return False
        if crashed is None:
            return False
        LOG.warning("the last run did not stop cleanly: restoring its running configuration "
                    "from %s", self.running_path)
        crashed.validate()
        try:
            await self._transaction(None, crashed)
        except CommitError as exc:
            crashed.free()
            LOG.error("the engine refused the running configuration of the last run (%s); "
                      "booting from startup", exc)
            return False
        self.running = crashed
        self.candidate = crashed.dup()
        return True

    async def _boot_startup_file(self) -> None:
        if self.startup_path is not None:
            try:
                self.startup = await self._in_lane(persistence.load, self.startup_path,
                                                   self.ctx)
            except ValidationError as exc:
                self.boot_problem = "startup datastore %s is invalid: %s" % (self.startup_path,
                                                                            exc)
                LOG.error("%s; starting with an empty configuration (the file is left as "
                          "it is)", self.boot_problem)

    async def stop(self, forget_running: bool = False) -> None:
        """forget_running: the node is being emptied (a clean exit that removes the graphs),
        so the next start boots from startup."""
        if self._confirm is not None and self._confirm.timer is not None:
            self._confirm.timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        if forget_running and self.running_path is not None:
            persistence.forget_running(self.running_path)

    def _stage(self, tree: DataTree):
        """tree printed and written, synced, beside the crash-restart copy (a StagedFile)."""
        return persistence.stage_running(self.running_path, persistence.print_running(tree))

    async def _save_restart_copy(self, tree: DataTree) -> None:
        """tree becomes the crash-restart copy, durably; CommitError (resource-denied) when
        it cannot."""
        if self.running_path is None:
            return
        try:
            staged = await self._in_lane(self._stage, tree)
            await self._in_lane(staged.install)
        except OSError as exc:
            raise CommitError(_not_durable(self.running_path, exc)) from exc

    def _in_lane(self, func, *args) -> asyncio.Future:
        """func(*args) in a thread of the commit lane (see __init__)."""
        return asyncio.get_running_loop().run_in_executor(self._commit_lane, func, *args)

    # -- reading --------------------------------------------------------------------
    def tree(self, name: str) -> DataTree:
        """The tree of a conventional datastore, to read before the next await."""
        if name == "running":
            return self.running
        if name == "candidate":
            # while a clean candidate carries an edit of running being applied, it
            # holds that change already: show running, which it equals otherwise
            return self.running if self._candidate_in_flight else self.candidate
        if name == "startup":
            return self.startup
        raise ValueError("unknown datastore %r" % name)

    @property
    def candidate_dirty(self) -> bool:
        return self._dirty

    def candidate_with_defaults(self) -> DataTree:
        """The candidate with its default nodes (edits add none until the candidate is
        validated), for with-defaults report-all."""
        tree = self.tree("candidate")
        if not self._in_transaction:
            tree.add_defaults()
        return tree

    @property
    def confirmed_commit(self) -> PendingConfirm | None:
        return self._confirm

    def register_state_provider(self, provider: StateProvider) -> None:
        """Add a source of operational state (see agent.engine.interface)."""
        self.providers.append(provider)

    def unregister_state_provider(self, name: str) -> None:
        self.providers = [p for p in self.providers if p.name != name]

    async def state_trees(self, wanted=None) -> list[DataTree]:
        """The trees of the state providers (those for which wanted(provider) holds; all
        without it), built in the read lane's threads once this read's turn has come; the
        caller owns (and frees) them. A provider that fails fails the read
        (StateUnavailable, with its reason): a reply without its part would tell the client
        that part is not there."""
        providers = [p for p in self.providers if wanted is None or wanted(p)]
        if not providers:
            return []
        loop = asyncio.get_running_loop()

        async def build(provider):
            node = await loop.run_in_executor(self._read_lane, provider.build, self.ctx)
            if node is None:
                return None
            from _libyang import lib
            return DataTree(self.ctx, lib.lyd_first_sibling(node.cdata))
        async with self._read_slots:
            # A change of running under way goes first: the vSwitch and the interpreter are
            # its alone but for the reads already building. Only that one change, and for
            # READ_PATIENCE at most: a long deploy is watched while it runs.
            if self._changing is not None:
                await asyncio.wait([self._changing], timeout=READ_PATIENCE)
            results = await asyncio.gather(*(build(p) for p in providers),
                                           return_exceptions=True)
        trees = [r for r in results if isinstance(r, DataTree)]
        failed = [(p, r) for p, r in zip(providers, results) if isinstance(r, BaseException)]
        if failed:
            for tree in trees:
                tree.free()
            for provider, error in failed:
                LOG.warning("state provider %s failed: %s", provider.name, error)
            raise StateUnavailable([state_unavailable(p.name, str(e)) for p, e in failed])
        return trees

    # -- locks ----------------------------------------------------------------------
    def lock(self, name: str, session_id: int) -> None:
        """Take the global lock of a datastore (RFC 6241 7.5)."""
        self._check_name(name)
        held = self.locks.holder(name)
        if held is None and name == "candidate" and self._dirty:
            raise LockError(lock_denied("the candidate has uncommitted changes", 0))
        if held is None and name == "running" and self._confirm is not None and \
                self._confirm.session_id != session_id:
            raise LockError(lock_denied("a confirmed commit of session %d is pending"
                                        % self._confirm.session_id, self._confirm.session_id))
        self.locks.acquire(name, session_id)

    async def unlock(self, name: str, session_id: int) -> None:
        self._check_name(name)
        self.locks.release(name, session_id)
        if name == "candidate" and self._dirty:
            await self.discard_changes(session_id)

    async def session_ended(self, session_id: int) -> None:
        """Release what a finished session held (locks, candidate changes under its
        lock, its non-persistent confirmed commit)."""
        released = self.locks.release_all(session_id)
        if "candidate" in released and self._dirty:
            await self.discard_changes(session_id)
        pending = self._confirm
        if pending is not None and pending.persist is None and pending.session_id == session_id:
            LOG.info("session %d ended before confirming its commit: rolling back", session_id)
            await self._run(self._rollback(quiet=True, event="cancel", session_id=session_id))

    # -- changes --------------------------------------------------------------------
    async def _run(self, coro):
        """Run a change as its own task, one at a time, shielded from the caller's
        cancellation. A read whose turn comes meanwhile waits for it (see state_trees)."""
        async def serial():
            async with self._serial:
                done = self._changing = asyncio.get_running_loop().create_future()
                try:
                    return await coro
                finally:
                    self._changing = None
                    done.set_result(None)
        task = self._spawn(serial())
        return await asyncio.shield(task)

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(finished):
            self._tasks.discard(finished)
            if not finished.cancelled():
                finished.exception()        # retrieved here; the awaiting caller re-raises
        task.add_done_callback(done)
        return task

    async def edit(self, target: str, edit: Edit, *, default_operation: str = "merge",
                   error_option: str = "stop-on-error", test_option: str = "test-then-set",
                   session_id: int = 0) -> None:
        """<edit-config> on running or candidate. The datastores own edit from now on.

        stop-on-error (the default) and rollback-on-error stop at the first problem and
        change nothing; continue-on-error applies every node without a problem and
        reports them all. Raises EditError, ValidationError, LockError or CommitError."""
        if target not in ("running", "candidate"):
            edit.free()
            raise EditError(Problem("invalid-value", "edit-config targets running or "
                                    "candidate, not %s" % target, error_type="protocol"))
        try:
            self.locks.check(target, session_id)
            if target == "running" and test_option != "test-only":
                await self._prefetch(edit.tree)
        except BaseException:
            edit.free()
            raise
        return await self._run(self._edit(target, edit, default_operation, error_option,
                                          test_option, session_id))

    async def _edit(self, target, edit, default_operation, error_option, test_option,
                    session_id):
        try:
            self.locks.check(target, session_id)
            source = self.candidate if target == "candidate" else self.running
            the_plan = plan(source, edit, default_operation, error_option)
        except BaseException:
            edit.free()
            raise
        problems = the_plan.problems
        if problems and error_option != "continue-on-error":
            edit.free()
            raise EditError(problems)
        checker = self._checker(session_id)
        if checker is not None:
            try:
                checker.check_plan(source, the_plan)
            except BaseException:
                edit.free()
                raise
        if test_option == "test-only":
            work = source.dup()
            try:
                execute(work, the_plan.actions)
                work.validate()
                if target == "running":
                    await self._transaction(self.running, work, apply=False)
            finally:
                work.free()
                edit.free()
            if problems:
                raise EditError(problems)
            return
        if not the_plan.actions:
            edit.free()
        elif target == "candidate":
            execute(self.candidate, the_plan.actions)
            self._record(the_plan)
        else:
            await self._edit_running(the_plan, session_id)
        if problems:
            raise EditError(problems)

    async def _edit_running(self, the_plan: Plan, session_id: int = 0) -> None:
        clean = not self._dirty
        work = self.candidate if clean else self.running.dup()
        if clean:
            self._candidate_in_flight = True
        try:
            execute(work, the_plan.actions)
            # While a confirmed commit is pending, a crash restores what it would roll
            # back to: that copy stays.
            persist = self._confirm is None
            checked = await self._validate(self.running, work, persist=persist)
            await self._transaction(self.running, work, checked=checked, persist=persist)
        except BaseException:
            if clean:
                self.candidate.free()
                self.candidate = self.running.dup()
            else:
                work.free()
            self._free_plan(the_plan)
            raise
        finally:
            self._candidate_in_flight = False
        old = self.running
        self.running = work
        self._changed("running", session_id, "edit-config", old, work, plans=[the_plan])
        if clean:
            execute(old, the_plan.actions)
            self.candidate = old
        else:
            old.free()
            self._journal_lost()
        self._free_plan(the_plan)

    async def copy(self, source, target: str, session_id: int = 0) -> None:
        """<copy-config>: source is a datastore name or a DataTree (taken over)."""
        if isinstance(source, str):
            self._check_name(source)
        self._check_name(target)
        if source == target:
            raise EditError(Problem("invalid-value", "source and target are the same "
                                    "datastore", error_type="protocol"))
        try:
            self.locks.check(target, session_id)
            if target == "running":
                await self._prefetch(source if isinstance(source, DataTree)
                                     else self.tree(source))
        except BaseException:
            if isinstance(source, DataTree):
                source.free()
            raise
        await self._run(self._copy(source, target, session_id))

    async def _copy(self, source, target, session_id):
        new = self.tree(source).dup() if isinstance(source, str) else source
        try:
            self.locks.check(target, session_id)
            checker = self._checker(session_id)
            if checker is not None:
                checker.check_trees(self.tree(target), new)
            if target == "candidate":
                self.candidate.free()
                self.candidate = new
                if source == "running":
                    self._clear_journal()
                else:
                    self._journal_lost()
                return
            new.validate()
            if target == "running":
                await self._transaction(self.running, new, persist=self._confirm is None)
                self._replace_running(new, session_id, "copy-config")
            else:
                await self._save_startup(new, session_id, "copy-config")
        except BaseException:
            if new is not self.candidate and new is not self.running and new is not self.startup:
                new.free()
            raise

    async def delete(self, target: str, session_id: int = 0) -> None:
        """<delete-config>: only startup can be deleted (RFC 6241 7.4)."""
        if target != "startup":
            raise EditError(Problem("invalid-value", "the %s datastore cannot be deleted"
                                    % target, error_type="protocol"))
        self.locks.check(target, session_id)
        checker = self._checker(session_id)
        if checker is not None:
            checker.check_trees(self.startup, None)
        await self._run(self._save_startup(DataTree(self.ctx), session_id, "delete-config"))

    async def _save_startup(self, new: DataTree, session_id: int = 0,
                            cause: str = "copy-config") -> None:
        if self.startup_path is not None:
            try:
                await self._in_lane(persistence.save, self.startup_path, new)
            except OSError as exc:
                raise DatastoreError(_not_durable(self.startup_path, exc)) from exc
        old, self.startup = self.startup, new
        if not self._changed("startup", session_id, cause, old, new, take_old=True):
            old.free()

    async def discard_changes(self, session_id: int = 0) -> None:
        """<discard-changes>: candidate := running."""
        self.locks.check("candidate", session_id)
        await self._run(self._discard())

    async def _discard(self):
        if not self._dirty:
            return
        self.candidate.free()
        self.candidate = self.running.dup()
        self._clear_journal()

    async def validate(self, source, session_id: int = 0) -> None:
        """<validate>: source is a datastore name or a DataTree (taken over)."""
        if isinstance(source, DataTree):
            try:
                source.validate()
            finally:
                source.free()
            return
        self._check_name(source)
        if source != "candidate":
            return                      # running and startup are valid by construction
        await self._run(self._validate_candidate())

    async def _validate_candidate(self):
        if not self._dirty:
            return
        self.candidate.validate()
        await self._transaction(self.running, self.candidate, apply=False)

    # -- commit ---------------------------------------------------------------------
    async def commit(self, session_id: int = 0, *, confirmed: bool = False,
                     timeout: int = DEFAULT_CONFIRM_TIMEOUT, persist: str | None = None,
                     persist_id: str | None = None) -> None:
        """<commit> (RFC 6241 8.3 and 8.4): candidate becomes running.

        With confirmed, running goes back to what it was unless a confirming commit
        comes within timeout seconds (from the same session, or from any session with
        persist_id when persist was given)."""
        self.locks.check("running", session_id)
        self.locks.check("candidate", session_id)
        if self._dirty:
            await self._prefetch(self.candidate)
        await self._run(self._commit(session_id, confirmed, timeout, persist, persist_id))

    def _check_confirm(self, session_id, persist_id):
        pending = self._confirm
        if pending is None:
            if persist_id is not None:
                raise CommitError(Problem("invalid-value", "no confirmed commit with this "
                                          "persist-id is pending", error_type="protocol"))
            return None
        if pending.persist is not None:
            if persist_id != pending.persist:
                raise CommitError(Problem(
                    "invalid-value", "a persistent confirmed commit is pending; "
                    "give its persist-id" if persist_id is None else
                    "persist-id does not match the pending confirmed commit",
                    error_type="protocol"))
        elif persist_id is not None:
            raise CommitError(Problem("invalid-value", "the pending confirmed commit has no "
                                      "persist-id", error_type="protocol"))
        elif pending.session_id != session_id:
            raise CommitError(Problem("in-use", "a confirmed commit of session %d is pending"
                                      % pending.session_id, error_type="protocol",
                                      info=(("session-id", str(pending.session_id)),)))
        return pending

    async def _commit(self, session_id, confirmed, timeout, persist, persist_id):
        self.locks.check("running", session_id)
        pending = self._check_confirm(session_id, persist_id)
        snapshot = None
        if confirmed and pending is None:
            snapshot = self.running.dup()
        try:
            # A confirmed commit leaves the crash-restart copy as it is (what it would
            # roll back to); any other makes the new running that copy before its <ok/>.
            committed = await self._commit_candidate(
                persist=not confirmed, converge=pending is None and not confirmed,
                session_id=session_id)
            if not committed and not confirmed and pending is not None:
                await self._save_restart_copy(self.running)     # confirming, no change
        except BaseException:
            if snapshot is not None:
                snapshot.free()
            raise
        if confirmed:
            if pending is None:
                pending = self._confirm = PendingConfirm(session_id, persist, snapshot, timeout)
                self._confirm_event("start", session_id, timeout)
            else:
                pending.persist = persist
                pending.session_id = session_id
                pending.timeout = timeout
                self._confirm_event("extend", session_id, timeout)
            self._arm(pending)
        elif pending is not None:
            self._finish_confirm()
            self._confirm_event("complete", session_id)

    async def _commit_candidate(self, persist: bool = False, converge: bool = False,
                                session_id: int = 0) -> bool:
        """The candidate becomes running (persist: and the crash-restart copy); False when
        it had no changes. converge: a candidate without changes has the engine make the
        node match running again (or say it cannot)."""
        if not self._dirty:
            if converge:
                try:
                    await self._in_lane(self.engine.converge)
                except EngineRefused as exc:
                    raise _refused(exc) from exc
            return False
        candidate = self.candidate
        checker = self._checker(session_id)
        if checker is not None:
            paths = touched_paths(self._journal) if self._journal is not None else None
            checker.check_trees(self.running, candidate, paths)
        checked = await self._validate(self.running, candidate, persist=persist)
        await self._transaction(self.running, candidate, checked=checked, persist=persist)
        old, self.running = self.running, candidate
        taken = self._changed("running", session_id, "commit", old, candidate,
                              plans=self._journal, take_old=True)
        if self._journal is not None and not taken:
            for done in self._journal:
                execute(old, done.actions)
            self.candidate = old
        else:
            if not taken:
                old.free()
            self.candidate = self.running.dup()
        self._clear_journal()
        return True

    async def cancel_commit(self, session_id: int = 0, persist_id: str | None = None) -> None:
        """<cancel-commit>: roll a pending confirmed commit back now."""
        await self._run(self._cancel(session_id, persist_id))

    async def _cancel(self, session_id, persist_id):
        if self._confirm is None:
            raise CommitError(Problem("operation-failed", "no confirmed commit is pending",
                                      error_type="protocol"))
        self._check_confirm(session_id, persist_id)
        await self._rollback(event="cancel", session_id=session_id)

    def _arm(self, pending: PendingConfirm, delay: float | None = None) -> None:
        """Roll back pending after its timeout (or after delay: a retry)."""
        if pending.timer is not None:
            pending.timer.cancel()
        loop = asyncio.get_running_loop()

        def expired():
            if delay is None:
                LOG.warning("confirmed commit not confirmed within %d s: rolling back",
                            pending.timeout)
            self._spawn(self._run(self._rollback(pending, quiet=True, event="timeout")))
        pending.timer = loop.call_later(pending.timeout if delay is None else delay, expired)

    def _finish_confirm(self) -> None:
        pending, self._confirm = self._confirm, None
        if pending.timer is not None:
            pending.timer.cancel()
        pending.rollback.free()

    async def _rollback(self, expected: PendingConfirm | None = None, quiet: bool = False,
                        event: str = "cancel", session_id: int = 0):
        pending = self._confirm
        if pending is None or (expected is not None and pending is not expected):
            return
        self._confirm = None
        if pending.timer is not None:
            pending.timer.cancel()
        target = pending.rollback
        try:
            # The crash-restart copy holds target already (see _commit).
            await self._transaction(self.running, target)
        except CommitError as exc:
            if any(p.tag == "resource-denied" for p in exc.problems):
                # Not durable (the disk): the confirmed commit stays pending, and its
                # rollback is tried again until it can be done.
                LOG.error("the rollback of the confirmed commit cannot be made durable "
                          "(%s); trying again in %d s", exc, ROLLBACK_RETRY)
                self._confirm = pending
                self._arm(pending, ROLLBACK_RETRY)
            else:
                LOG.error("the engine refused the rollback of the confirmed commit (%s); "
                          "running stays as committed", exc)
                target.free()
            if quiet:
                return
            raise
        self._confirm_event(event, session_id if event == "cancel" else 0)
        self._replace_running(target, 0, "rollback")

    # -- internals ------------------------------------------------------------------
    def _checker(self, session_id: int):
        """The access control of a session's change (None: none; the server's own
        changes, session 0, are not checked)."""
        if self.guard is None or not session_id:
            return None
        return self.guard(session_id)

    async def _prefetch(self, tree: DataTree) -> None:
        """Before a change of running waits for its turn: the engine fetches what it will
        need (engine.prefetch: images), holding no lock, so that a slow fetch for this
        change does not hold up the others. A failure is logged: the change does it again
        under its lock, and reports it."""
        try:
            fetch = self.engine.prefetch(tree.root()) if tree is not None else None
        except Exception:  # noqa: BLE001 - a hint only
            LOG.exception("the engine could not read what to fetch")
            return
        if fetch is None:
            return
        try:
            await asyncio.to_thread(fetch)
        except Exception:  # noqa: BLE001 - a hint only
            LOG.exception("fetching ahead of a change failed")

    def _replace_running(self, new: DataTree, session_id: int = 0,
                         cause: str = "copy-config") -> None:
        """new (applied by the engine already) becomes running; a clean candidate follows
        it, a dirty one keeps its edits but loses its journal."""
        old, self.running = self.running, new
        if not self._changed("running", session_id, cause, old, new, take_old=True):
            old.free()
        if not self._dirty:
            self.candidate.free()
            self.candidate = self.running.dup()
        else:
            self._journal_lost()

    async def _validate(self, old: DataTree | None, new: DataTree,
                        persist: bool = False) -> "_Checked | None":
        """libyang validation of new and the engine's validate at once: what the engine
        reads of new first (engine.read, before the default nodes are added) is checked in
        a worker thread while libyang validates new here. libyang runs in this thread, so
        no reader of the datastores sees new while it changes; it holds no Python lock
        meanwhile. A ValidationError wins over the engine's refusal, as when the two run
        one after the other. None: the engine reads nothing early (validate runs in
        _transaction). persist: once valid, new is printed and staged as the crash-restart
        copy while the engine still checks it (see _transaction)."""
        old_root = old.root() if old is not None else None
        new_root = new.root()
        try:
            check = self.engine.read(old_root, new_root)
        except Exception:  # noqa: BLE001 - validate() in _transaction reports it
            LOG.exception("the engine could not read the new configuration early")
            check = None
        if check is None:
            new.validate()
            return _Checked(old_root, new_root, None, self._staging(new, persist))
        future = self._in_lane(check)
        try:
            new.validate()
        except BaseException:
            # What the check began for new is undone before the error is answered.
            releasing = self._in_lane(self.engine.release, new_root)
            await asyncio.gather(future, releasing, return_exceptions=True)
            if releasing.exception() is not None:
                LOG.error("the engine could not undo what it began for a refused "
                          "configuration: %s", releasing.exception())
            raise
        return _Checked(old_root, new_root, future, self._staging(new, persist))

    def _staging(self, new: DataTree, persist: bool) -> asyncio.Future | None:
        """new staged as the crash-restart copy in the commit lane, or None."""
        if not persist or self.running_path is None:
            return None
        return self._in_lane(self._stage, new)

    async def _transaction(self, old: DataTree | None, new: DataTree, apply: bool = True,
                           checked: "_Checked | None" = None, persist: bool = False) -> None:
        """engine.validate (unless checked: the engine's check _validate started) then
        engine.apply, in the commit lane; EngineRefused becomes CommitError with the
        engine's tag (operation-failed, or resource-denied when it could not make its own
        records durable), message, path and app tag.

        persist: new becomes the crash-restart copy, durably, before this returns: staged
        (printed, written and synced beside it) while the engine works, renamed into place
        once the engine has applied it. When the disk refuses (no space, an I/O error, a
        read-only file system) the engine does not apply new, or reverts it if it has, and
        CommitError is resource-denied: nothing changed, on the node or on the disk."""
        if checked is not None:
            old_root, new_root = checked.old_root, checked.new_root
        else:
            old_root = old.root() if old is not None else None
            new_root = new.root()
        engine = self.engine
        persist = persist and apply and self.running_path is not None

        def run():
            if checked is None or checked.future is None:
                engine.validate(old_root, new_root)
            if apply:
                engine.apply(old_root, new_root)
        self._in_transaction = True
        staging = checked.staging if checked is not None else None
        applied = False
        try:
            if checked is not None and checked.future is not None:
                try:
                    await checked.future
                except BaseException:
                    await self._in_lane(engine.release, new_root)
                    raise
            if staging is None and persist:
                staging = self._staging(new, persist)
            if staging is not None and staging.done() and \
                    isinstance(staging.exception(), OSError):
                # The disk refused already: the node is not touched.
                if checked is not None and checked.future is not None:
                    await self._in_lane(engine.release, new_root)
                raise CommitError(_not_durable(self.running_path, staging.exception()))
            await self._in_lane(run)
            applied = True
        except (CommitError, asyncio.CancelledError):
            raise
        except EngineRefused as exc:
            raise _refused(exc) from exc
        except Exception as exc:  # noqa: BLE001 - an engine bug must not take the server down
            LOG.exception("the transaction engine failed")
            raise CommitError(Problem("operation-failed", "the transaction engine failed: %s"
                                      % exc)) from exc
        finally:
            if staging is not None:
                # new may be freed once this returns: its print must be over.
                await asyncio.gather(staging, return_exceptions=True)
                if not applied and not staging.cancelled() and staging.exception() is None:
                    staging.result().discard()
            self._in_transaction = False
        if persist:
            await self._install(staging, old, new, old_root, new_root)

    async def _install(self, staging, old: DataTree | None, new: DataTree, old_root,
                       new_root) -> None:
        """The staged crash-restart copy goes into place; when it cannot, the engine
        reverts what it applied and CommitError is resource-denied."""
        staged = None
        try:
            if staging.exception() is not None and \
                    not isinstance(staging.exception(), OSError):
                LOG.error("printing the new running configuration failed (%s); printing "
                          "it again", staging.exception())
                staged = await self._in_lane(self._stage, new)
            else:
                staged = staging.result()
            await self._in_lane(staged.install)
        except OSError as exc:
            if staged is not None and staged.installed and old is not None:
                # renamed, but its directory could not be synced: the old copy goes back
                try:
                    await self._in_lane(persistence.save_running, self.running_path, old)
                except OSError as again:
                    LOG.error("cannot put the old %s back: %s", self.running_path, again)
            problem = _not_durable(self.running_path, exc)
            try:
                await self._in_lane(self.engine.revert, old_root, new_root)
            except Exception as undo:  # noqa: BLE001 - reported in the rpc-error
                LOG.error("reverting the configuration that could not be made durable "
                          "failed: %s", undo)
                problem = Problem("resource-denied", "%s; reverting the node failed too: %s"
                                  % (problem.message, undo))
            raise CommitError(problem) from exc

    def _record(self, done: Plan) -> None:
        self._dirty = True
        if self._journal is not None:
            self._journal.append(done)
        else:
            self._free_plan(done)

    def _clear_journal(self) -> None:
        for done in self._journal or ():
            self._free_plan(done)
        self._journal = []
        self._dirty = False

    def _journal_lost(self) -> None:
        """The candidate no longer derives from running by the recorded edits."""
        for done in self._journal or ():
            self._free_plan(done)
        self._journal = None
        self._dirty = True

    @staticmethod
    def _free_plan(done: Plan) -> None:
        for edit in done.edits:
            edit.free()
        done.edits = []

    @staticmethod
    def _check_name(name) -> None:
        if name not in CONVENTIONAL:
            raise EditError(Problem("invalid-value", "unknown datastore %r" % (name,),
                                    error_type="protocol"))


__all__ = ["CONVENTIONAL", "Datastores", "PendingConfirm", "NULL"]


def _refused(exc: EngineRefused) -> CommitError:
    return CommitError(Problem(exc.tag, exc.message, path=exc.path,
                               app_tag=exc.app_tag,
                               info=tuple((k, str(v)) for k, v in exc.info.items())))
