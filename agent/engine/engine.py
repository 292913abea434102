"""The COMPOSER transaction engine: a change of running becomes a plan, run with undo.

apply(old, new):
  1. read the graphs and templates of new (libyang JSON -> values);
  2. plan against what is deployed (not against old: the node is the truth);
  3. journal the intent, run the plan; every step records its undo (a commit may have run
     the plan's first steps already, while libyang validated: see read()); the snapshot
     of the plan's target is written and synced beside the old one meanwhile (a writer
     thread);
  4. success: the snapshot is renamed into place, then the journal's commit line is
     written and synced, and only then does the transaction count (deployed := the
     plan's target) and apply() return: a crash before the commit line leaves the
     transaction unfinished in the journal, which recovery treats as dirty;
     failure: the executor has undone every step, EngineRefused names the step, the
     resource and the driver's message; deployed and the snapshot are unchanged. A disk
     that refuses the journal or the snapshot (no space, an I/O error) is a failure too:
     the steps are undone and EngineRefused has tag resource-denied.
  5. until the next transaction, revert() can still undo the last one (the datastores
     could not write running's own copy).
"""

import errno
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from drivers.errors import DriverError

from ..files import remove_stale
from ..model.decompose import outer_function
from ..model.deployed import with_status
from ..model.graph import SourceReader, graph_from_dict, templates_from_tree
from ..model.plan import Plan
from .executor import Executor, StepFailed, Stopped
from .health import Health
from .repair import inspect
from .interface import EngineRefused, TransactionEngine
from .journal import Journal
from .planner import Planner, PlanningError, function_path, graph_path, sap_path
from .spares import SparePool
from .usage import FunctionUsage
from .state import Snapshot, encode

LOG = logging.getLogger(__name__)


_SOURCES = SourceReader()

# Steps that no traffic sees until a flow leads to what they made: a new graph-LSI (fail
# mode secure: no flow, no forwarding), new ports and links (a packet enters or leaves an
# LSI only by a flow), functions created and started in their own namespaces behind such
# ports, and new tags on prepared ports (OVSDB metadata). A commit runs the leading steps
# of its plan that are all of these kinds while libyang still validates the configuration
# (see read()); every step that changes where traffic goes waits for the validation.
UNSEEN_BY_TRAFFIC = frozenset({"create-lsi", "create-links", "attach-ports", "tag-ports",
                               "create-function", "start-function"})


@dataclass
class _Transaction:
    """A transaction under way: its journal is open, the undo of what it did is stacked."""
    tree: object                  # the configuration it deploys (by identity)
    generation: int               # what was deployed when it was planned
    templates: list
    result: object                # the PlanResult
    configured: list              # the repository's templates before it
    started: float
    rest: Plan                    # what apply() still has to run
    undo: list
    snapshot: object = None       # Future: the StagedFile of the target's snapshot


@dataclass
class _Applied:
    """The last transaction applied, which revert() can still undo."""
    tree: object                  # the configuration it deployed (by identity)
    generation: int               # what was deployed after it
    previous: dict                # what was deployed before it
    configured: list              # the repository's templates before it
    touched: set
    undo: list
    spares: object                # the pool's checkpoint before it
    recorded: bool                # it wrote a snapshot


class _NotRecorded(Exception):
    """The disk refused the transaction's snapshot or journal end."""


def _failed_already(future) -> bool:
    """The snapshot's write failed on the disk already (before the steps that remain)."""
    return future is not None and future.done() and isinstance(future.exception(), OSError)


def _out_of_room(exc) -> bool:
    """A step failed for want of room on a disk (its own error or the one it wraps)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def graph_sources(root) -> dict:
    """graph id -> the libyang JSON entry of that graph (unchanged graphs: the same entry
    object as the last time)."""
    return _SOURCES.read(root)


class ComposerEngine(TransactionEngine):
    """Deploys service graphs through the network and compute managers."""

    def __init__(self, network, compute, naming, state_dir, parallelism: int = 8,
                 lsi0_interfaces=(), spare_slots: int = 0, spare_slot_ports: int = 2,
                 spare_slots_min_ports: int = 0, on_settled=None):
        self.network = network
        self.compute = compute
        self.naming = naming
        self.state_dir = Path(state_dir)
        self.planner = Planner(naming, compute, network.lsi0, lsi0_interfaces,
                               network.tunnel_ips())
        self.journal = Journal(self.state_dir / "journal.log")
        self.snapshot = Snapshot(self.state_dir / "deployed.json")
        handlers = {}
        handlers.update(network.handlers())
        handlers.update(compute.handlers())
        self.executor = Executor(handlers, self.journal, parallelism)
        self.spares = SparePool(naming, compute, network, spare_slots, spare_slot_ports,
                                min_ports=spare_slots_min_ports)
        self.deployed: dict = {}
        self.in_progress: dict = {}      # graph id -> "deploying" / "removing"
        # graph id -> prefetches under way for it (its state shows their downloads)
        self.fetching: dict = {}
        self.failures: dict = {}         # graph id -> last error message
        self.last_plan: Plan | None = None
        self.last_summary: dict = {}
        # What broke since it was deployed (the watches and the converger keep it).
        self.health = Health()
        # What each function uses (cpu-percent, memory-mb), sampled by the alarms' thread.
        self.usage = FunctionUsage(compute)
        self.converger = None          # agent/engine/converge.py, when it runs
        self._lock = threading.Lock()
        self._generation = 0           # bumped whenever what is deployed changes
        self._validated = None         # (tree, generation, templates, PlanResult): last check
        self._reading = None           # (tree, threading.Event): the last read(), and its stop
        self._open: _Transaction | None = None   # begun by a check, for apply() to finish
        self._applied: _Applied | None = None    # the last transaction, for revert()
        self._recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot")
        # Called (holding the lock) once what lives on is made: after recovery and after
        # each commit (the daemon freezes its heap then, see agent/tuning.py).
        self.on_settled = on_settled or (lambda: None)
        # Called (in the engine's thread, holding the lock) after each change of what is
        # deployed or being deployed, with the graphs it touched (None: any): the status
        # and domain events (agent/engine/status.py, agent/domain/events.py).
        self.observers: list = []

    def _changed(self, graphs=None) -> None:
        for observer in self.observers:
            observer(graphs)

    # --- TransactionEngine ---

    def validate(self, old, new) -> None:
        with self._lock:
            # The datastores call apply(old, new) right after validate(old, new) with the same
            # tree object: keep the plan for it, valid while nothing is deployed in between.
            # The object itself is held, so no later tree can take its identity.
            self._validated = (new, self._generation, *self._plan(new))

    def read(self, old, new):
        # Printing the graphs is the only part of planning that needs the tree; the rest
        # (their JSON read too) runs in the datastores' worker thread while libyang
        # validates new, which adds default nodes only: the graphs print (explicit values)
        # the same before and after. The check then begins the deployment with the steps
        # no traffic sees (UNSEEN_BY_TRAFFIC), so that they overlap the validation too;
        # apply() runs the rest, release() undoes them when new turns out invalid.
        texts, templates = _SOURCES.texts(new), templates_from_tree(new)
        stop = threading.Event()
        self._reading = (new, stop)

        def check():
            with self._lock:
                result = self._plan_from(_SOURCES.entries(texts), templates)
                if stop.is_set():
                    return              # released meanwhile: nothing to keep or begin
                self._validated = (new, self._generation, templates, result)
                # A slot the plan takes must still be there when apply() runs.
                self.spares.paused = True
                self._prepare(new, templates, result, stop)
        return check

    def _prepare(self, new, templates, result, stop) -> None:
        head, rest = result.plan.split(UNSEEN_BY_TRAFFIC)
        if not head:
            return
        transaction = self._begin(new, templates, result)
        try:
            self.executor.run(head, transaction.undo, stop)
        except StepFailed as failure:
            self._validated = None
            self.spares.paused = False
            self._failed(transaction, failure)
        transaction.rest = rest
        self._open = transaction

    def prefetch(self, new):
        """The images of the functions new would create, fetched without the engine's lock
        (ComputeDriver.fetch: an image pulled, imported or converted takes seconds to
        minutes, and commits of other graphs go on meanwhile). Nothing to do unless an
        enabled driver has a fetch phase. new may be an edit (partial graphs): what cannot
        be read or resolved is left to the transaction."""
        if new is None or not self.compute.fetching():
            return None
        texts, templates = _SOURCES.texts(new), templates_from_tree(new)

        def fetch():
            sources = SourceReader().entries(texts)
            self._refresh_for(sources)
            with self._lock:          # briefly: what is deployed, the repository's templates
                wanted = self._to_fetch(sources, templates)
            graphs = {gid for gid, _, _ in wanted}
            for gid in graphs:
                self.fetching[gid] = self.fetching.get(gid, 0) + 1
            try:
                self.compute.prefetch(wanted)
            finally:
                for gid in graphs:
                    left = self.fetching.pop(gid, 1) - 1
                    if left:
                        self.fetching[gid] = left
        return fetch

    def _refresh_for(self, sources: dict) -> None:
        """The repositories' indexes read again when a function of sources asks for what
        no template provides (a template published since; Repository.refresh limits how
        often). Without the engine's lock: it waits for the network."""
        repository = self.compute.repository
        if not repository.urls:
            return
        for entry in sources.values():
            try:
                graph = graph_from_dict(entry)
            except (KeyError, TypeError, ValueError):
                continue                # a partial graph of an edit
            if not all(repository.knows(f) for f in graph.functions.values()):
                repository.refresh()
                return

    def _to_fetch(self, sources: dict, templates: list) -> list:
        """(graph id, function, resolution) of each function in sources that is not
        deployed as it is, resolved with the templates configured and those given."""
        repository = self.compute.repository
        configured = repository.configured_templates()
        merged = {t["id"]: t for t in configured}
        merged.update((t["id"], t) for t in templates)
        repository.set_configured(list(merged.values()))
        wanted = []
        try:
            for gid, entry in sources.items():
                try:
                    graph = graph_from_dict(entry)
                except (KeyError, TypeError, ValueError):
                    continue                # a partial graph of an edit
                old = self.deployed.get(gid)
                for fid, function in sorted(graph.functions.items()):
                    if old is not None and old.declared.functions.get(fid) == function:
                        continue
                    try:
                        wanted.append((gid, function, self.compute.resolver.resolve(function)))
                    except Exception:  # noqa: BLE001 - the transaction reports it
                        continue
        finally:
            repository.set_configured(configured)
        return wanted

    def release(self, new) -> None:
        reading = self._reading
        if reading is not None and reading[0] is new:
            reading[1].set()            # a check still preparing stops before its next step
        with self._lock:
            if self._reading is reading:
                self._reading = None
            if self._validated is not None and self._validated[0] is new:
                self._validated = None
            if self._open is not None and self._open.tree is new:
                transaction, self._open = self._open, None
                self._abandon(transaction, "the configuration was refused before it was "
                                           "applied")
            self.spares.paused = False
            self.spares.wake()

    def apply(self, old, new) -> None:
        with self._lock:
            self._reading = None
            self._applied = None
            self.spares.paused = False
            transaction, self._open = self._open, None
            cached, self._validated = self._validated, None
            if transaction is not None and (transaction.tree is not new or
                                            transaction.generation != self._generation):
                # Begun for another configuration (the datastores never do this): undo it.
                self._abandon(transaction, "another configuration is applied")
                transaction = None
            if transaction is not None:
                templates, result = transaction.templates, transaction.result
            else:
                if cached is not None and new is not None and cached[0] is new \
                        and cached[1] == self._generation:
                    templates, result = cached[2], cached[3]
                else:
                    templates, result = self._plan(new)
            self.last_plan, self.last_summary = result.plan, result.summary
            repository = self.compute.repository
            if not result.plan:
                configured = repository.configured_templates()
                repository.set_configured(templates)
                previous, self.deployed = self.deployed, result.deployed
                self._generation += 1
                self._applied = _Applied(new, self._generation, previous, configured, set(),
                                         [], self.spares.checkpoint(), False)
                self._changed(set())
                return
            if transaction is None:
                transaction = self._begin(new, templates, result)
            try:
                if _failed_already(transaction.snapshot):
                    raise _NotRecorded(transaction.snapshot.exception())
                self.executor.run(transaction.rest, transaction.undo)
                self._record(transaction)
            except StepFailed as failure:
                self._failed(transaction, failure)
            except _NotRecorded as refused:
                self._abandon(transaction, "the disk refused its records: %s" % refused)
                raise EngineRefused(
                    "cannot record the deployment in %s (%s); the node was rolled back"
                    % (self.state_dir, refused), tag="resource-denied") from None
            except Exception as exc:  # noqa: BLE001 - the snapshot could not be made
                self._abandon(transaction, "recording it failed: %s" % exc)
                raise
            for gid in result.touched:
                self.in_progress.pop(gid, None)
            previous, self.deployed = self.deployed, result.deployed
            self._generation += 1
            for gid in result.touched:
                self.failures.pop(gid, None)
            checkpoint = self.spares.checkpoint()
            self.spares.committed(result.claimed, self.deployed)
            if self.converger is not None:
                self.converger.committed(result.touched)
            self._applied = _Applied(new, self._generation, previous, transaction.configured,
                                     set(result.touched), transaction.undo, checkpoint, True)
            self._changed(result.touched)
            self.on_settled()
            LOG.info("deployed in %.0f ms: %s", (time.monotonic() - transaction.started) * 1000,
                     ", ".join("%s %d" % (k, v) for k, v in result.summary.items() if v))

    def converge(self) -> None:
        with self._lock:
            self._converge_now()

    def _converge_now(self) -> None:
        """A commit that changes nothing repairs what is broken, or says it could not:
        an <ok/> would tell that the node is as running says."""
        if self.converger is None or not (self.health.broken() or
                                          self.health.node_faults()):
            return
        left = self.converger.converge_now()
        if left:
            gid = sorted(left)[0]
            what = "; ".join("graph %s: %s" % (g, r) if g else r
                             for g, r in sorted(left.items()))
            raise EngineRefused("nothing to change, but the node is not as running says, and "
                                "could not be repaired: %s" % what,
                                path=graph_path(gid) if gid else None,
                                app_tag="node-degraded")

    # --- repairs (agent/engine/converge.py; the caller holds the lock) ---

    def run_repair(self, gid: str, steps: list, why: str) -> None:
        """Run a graph's repair steps, journaled as a transaction. No undo: a repair that
        fails leaves the graph as far as it got (broken either way; its transaction ends
        repair-failed, and recovery checks the graph as any other). A crash in the middle
        leaves the transaction open: recovery then deploys the graph again; so does a
        journal that cannot be written (OSError)."""
        self._applied = None
        self.journal.begin({gid}, ["repair: %s" % why] + ["%3d. %s" % (n, s) for n, s in
                                                         enumerate(steps, 1)])
        try:
            for step in steps:
                self.executor.run_step(step)
        except Exception as exc:
            self.journal.end("repair-failed", "%s" % exc)
            raise
        finally:
            self.compute.settle(timeout=5.0)
        self._close_repair("repaired: %s" % why)

    def _close_repair(self, message: str) -> None:
        """A repair is done on the node: its commit line, when the disk takes it (without
        one, a recovery deploys the graph again: the safe side)."""
        try:
            self.journal.end("commit", message)
        except OSError as exc:
            LOG.warning("cannot end the repair in the journal (%s): a recovery would deploy "
                        "the graph again", exc)

    def redeploy(self, gid: str, why: str) -> None:
        """Deploy a graph again from scratch: what is left of it goes, then all of it is
        made (a plan of its own, undone if it fails)."""
        dg = self.deployed[gid]
        removal = self.planner.plan({}, {gid: dg})
        self.run_repair(gid, removal.plan.steps(), "%s; removing what is left" % why)
        result = self.planner.plan({gid: dg.source}, {})
        self.journal.begin({gid}, ["redeploy: %s" % why] + result.plan.lines())
        undo: list = []
        try:
            self.executor.run(result.plan, undo)
        except StepFailed as failure:
            self.compute.settle(timeout=5.0)
            self.journal.end("repair-failed", str(failure))
            self.spares.failed({gid}, self.deployed)
            raise
        self.deployed = dict(self.deployed, **{gid: result.deployed[gid]})
        self._generation += 1
        self.spares.failed({gid}, self.deployed)
        self._save_snapshot(self.deployed)
        self._close_repair("deployed again: %s" % why)
        self._changed({gid})
        LOG.info("graph %s deployed again (%s)", gid, why)

    # --- a transaction's beginning and unhappy ends (the caller holds the lock) ---

    def _begin(self, new, templates, result) -> _Transaction:
        self._applied = None
        try:
            self.journal.begin(result.touched, result.plan.lines())
        except OSError as exc:
            raise EngineRefused("cannot write the journal %s (%s): nothing was changed"
                                % (self.journal.path, exc.strerror or exc),
                                tag="resource-denied") from None
        repository = self.compute.repository
        configured = repository.configured_templates()
        repository.set_configured(templates)
        for gid in result.touched:
            self.in_progress[gid] = "deploying" if gid in result.deployed else "removing"
        self._changed(result.touched)
        started = time.monotonic()
        snapshot = self._recorder.submit(self.snapshot.stage, result.deployed,
                                         {"lsi0": self.network.lsi0})
        return _Transaction(new, self._generation, templates, result, configured, started,
                            result.plan, [], snapshot)

    def _record(self, transaction: _Transaction) -> None:
        """The transaction counts: its snapshot goes into place, then the journal's commit
        line is written and synced. _NotRecorded (the disk refused) leaves the snapshot as
        it was (or none at all, when even the old one cannot be put back)."""
        try:
            self.snapshot.install(transaction.snapshot.result())
        except OSError as exc:
            raise _NotRecorded(exc) from None
        try:
            self.journal.end("commit")
        except OSError as exc:
            self._restore_snapshot(self.deployed)
            raise _NotRecorded(exc) from None

    def _restore_snapshot(self, graphs: dict) -> None:
        """The snapshot of graphs, replaced by the last install, goes back in place."""
        try:
            self.snapshot.restore_previous()
        except OSError as exc:
            LOG.error("cannot put the snapshot back (%s): writing it again", exc)
            self._save_snapshot(graphs)

    def _save_snapshot(self, graphs: dict) -> None:
        """Write the snapshot of graphs; when the disk refuses, remove the snapshot (see
        Snapshot.forget): one that describes something else must not stay."""
        try:
            self.snapshot.save(graphs, {"lsi0": self.network.lsi0})
        except OSError as exc:
            LOG.error("cannot write the snapshot %s (%s): removing it; a recovery would "
                      "redeploy every graph", self.snapshot.path, exc)
            self.snapshot.forget()

    def _failed(self, transaction: _Transaction, failure: StepFailed):
        """The executor has undone everything: close the transaction, raise EngineRefused."""
        # A failed commit leaves the node exactly as it was when it answers: the functions
        # its undo destroyed must be gone, not only going.
        self.compute.settle(timeout=5.0)
        self.journal.end("rollback-failed" if failure.rollback_errors else "rolled-back",
                         str(failure))
        # Stopped: the configuration was refused meanwhile; the graphs did not fail.
        refused = isinstance(failure.cause, Stopped)
        self._close_failed(transaction, None if refused else str(failure))
        raise EngineRefused(self._message(failure), path=self._path(failure.step),
                            app_tag="deployment-failed", info={"step": str(failure.step)},
                            tag="resource-denied" if _out_of_room(failure.cause)
                            else "operation-failed") from None

    def _abandon(self, transaction: _Transaction, why: str) -> None:
        """Undo what a begun transaction did, and close it."""
        errors = self.executor.rollback(transaction.undo)
        self.compute.settle(timeout=5.0)
        if errors:
            LOG.error("undoing the steps of a transaction not applied failed: %s",
                      "; ".join(errors))
        self.journal.end("rollback-failed" if errors else "rolled-back", why)
        self._close_failed(transaction, None)

    def _close_failed(self, transaction: _Transaction, error: str | None) -> None:
        touched = transaction.result.touched
        for gid in touched:
            self.in_progress.pop(gid, None)
            # The error stays with a graph that runs on as it was (its last-error); a graph
            # the transaction would have added is not deployed, nor in running.
            if error is not None and gid in self.deployed:
                self.failures[gid] = error
            elif gid not in self.deployed:
                self.failures.pop(gid, None)
        self.spares.failed(touched, self.deployed)
        self.compute.repository.set_configured(transaction.configured)
        if transaction.snapshot is not None:
            try:
                transaction.snapshot.result().discard()
            except OSError:
                pass                    # nothing was written
        self._changed(touched)

    def revert(self, old, new) -> None:
        """Undo the last transaction, which deployed new: the datastores could not write
        running's own copy. Its undo steps run (as when one of its steps had failed), and
        what was deployed before, with its snapshot, is back."""
        with self._lock:
            applied, self._applied = self._applied, None
            if applied is not None and applied.tree is new and \
                    applied.generation == self._generation:
                self._revert(applied)
                return
        # Not the last transaction (the datastores never do this): plan the way back.
        self.apply(new, old)

    def _revert(self, applied: _Applied) -> None:
        try:
            self.journal.begin(applied.touched, ["revert the last transaction"])
            begun = True
        except OSError:
            begun = False
        errors = self.executor.rollback(list(applied.undo))
        self.compute.settle(timeout=5.0)
        self.deployed = applied.previous
        self._generation += 1
        self.compute.repository.set_configured(applied.configured)
        self.spares.restore(applied.spares)
        self.spares.failed(applied.touched, self.deployed)
        self._changed(applied.touched)
        if self.converger is not None:
            self.converger.committed(applied.touched)
        if applied.recorded:
            self._restore_snapshot(self.deployed)
        if begun:
            self.journal.end("rollback-failed" if errors else "reverted")
        if errors:
            raise EngineRefused("undoing the last transaction failed: %s" % "; ".join(errors),
                                tag="rollback-failed")

    # --- planning ---

    def _plan(self, new) -> tuple:
        """(the templates of new, the PlanResult for new)."""
        templates = templates_from_tree(new)
        return templates, self._plan_from(graph_sources(new), templates)

    def _plan_from(self, sources: dict, templates: list):
        """Plan with the given templates; the repository keeps its own until apply()
        deploys them (a refused or only validated configuration changes nothing)."""
        repository = self.compute.repository
        configured = repository.configured_templates()
        repository.set_configured(templates)
        try:
            return self.planner.plan(sources, self.deployed, self.spares.available(),
                                     self.spares.available_links())
        except PlanningError as exc:
            raise EngineRefused(exc.message, path=exc.path, app_tag=exc.app_tag, tag=exc.tag,
                                info=exc.info) from None
        finally:
            repository.set_configured(configured)

    def dry_run(self, new) -> Plan:
        """The plan apply(new) would run now, without running it."""
        with self._lock:
            return self._plan(new)[1].plan

    # --- failures ---

    @staticmethod
    def _message(failure: StepFailed) -> str:
        cause = failure.cause
        text = str(cause) if isinstance(cause, DriverError) else "%s: %s" % (
            type(cause).__name__, cause)
        message = "deployment failed at step '%s': %s; the node was rolled back" % (
            failure.step, text)
        if failure.rollback_errors:
            message += " (undo errors: %s)" % "; ".join(failure.rollback_errors)
        return message

    @staticmethod
    def _path(step) -> str | None:
        if not getattr(step, "graph", ""):
            return None
        params = step.params or {}
        if "function" in params and hasattr(params["function"], "id"):
            # a part of a decomposed function: the function of the graph
            return function_path(step.graph, outer_function(params["function"].id))
        if "sap" in params and hasattr(params["sap"], "id"):
            return sap_path(step.graph, params["sap"].id)
        return graph_path(step.graph)

    # --- status, for the operational state ---

    def graph_status(self, graph_id: str) -> tuple:
        """(status, last error) of a graph the engine knows."""
        if graph_id in self.in_progress:
            return self.in_progress[graph_id], self.failures.get(graph_id, "")
        if graph_id in self.deployed:
            dg = self.deployed[graph_id]
            status, _ = self.health.graph_status(graph_id, dg.status)
            return status, self.failures.get(graph_id, dg.error)
        if graph_id in self.failures:
            return "failed", self.failures[graph_id]
        return "pending", ""

    def status_reason(self, graph_id: str) -> str:
        """Why a deployed graph is not running ("" when it is, or is being changed)."""
        if graph_id in self.in_progress or graph_id not in self.deployed:
            return ""
        return self.health.graph_status(graph_id, self.deployed[graph_id].status)[1]

    def recover(self) -> list:
        """Reconcile the node with the snapshot at boot (see Recovery); returns the report.
        The caller applies running afterwards."""
        with self._lock:
            self._applied = None
            recovery = Recovery(self)
            recovery.run()
            self._changed(None)
            # The agent starts on a node without orphans, not one still losing them.
            self.compute.settle(timeout=5.0)
            self.spares.clear()
            self.on_settled()
            return recovery.report

    def start_spares(self) -> None:
        """Fill the prepared function slots in the background from now on."""
        self.spares.start(self._lock, lambda: self.deployed)

    def stop_spares(self) -> None:
        """Stop filling; destroy what removed graphs left."""
        self.spares.stop(self._lock)

    def fill_spares(self) -> int:
        """Drain, then fill the prepared slots of every running graph now (when the node
        has ports enough); how many were made."""
        with self._lock:
            self.spares.drain()
            if not self.spares.worth_filling(self.deployed):
                return 0
            return sum(self.spares.fill(gid, dg) for gid, dg in sorted(self.deployed.items()))

    def drain_spares(self) -> None:
        with self._lock:
            self.spares.drain()

    def mark(self, graph_id: str, status: str, error: str = "") -> None:
        if graph_id in self.deployed:
            self.deployed[graph_id] = with_status(self.deployed[graph_id], status, error)
            self._changed({graph_id})


class Recovery:
    """Boot-time reconciliation of the node with the snapshot and running.

    1. load the snapshot (what the last successful transaction deployed) and the journal's
       interrupted transactions (graphs that may be half-changed: dirty);
    2. scan the node for everything carrying the agent's prefix: graph-LSIs, LSI-0 ports
       and flows, compute instances;
    3. adopt a graph when it is clean and whole (repair.inspect: each function's
       namespace can be entered and its processes run, each port and link is on its LSI);
       its flows are re-installed atomically (one bundle per LSI), so its traffic never
       stops, and what a restarted vSwitch forgot of its SAPs is put back;
    4. remove everything else the scan found (orphans of crashes and of dirty graphs);
    5. the caller then applies running: what is missing is created, what changed converges.
    """

    def __init__(self, engine: ComposerEngine):
        self.engine = engine
        self.report: list = []

    def run(self) -> dict:
        engine = self.engine
        network, compute, naming = engine.network, engine.compute, engine.naming
        snapshot_graphs, _ = engine.snapshot.load()
        remove_stale(engine.snapshot.path)
        dirty = engine.journal.interrupted()
        driver = network.driver
        owner = {"composer-owner": naming.prefix}

        lsis = {info.name: info for info in driver.list_lsis(owner)
                if info.external_ids.get("composer-role") != "lsi0" and info.name != network.lsi0}
        instances = {info.instance: (env, info) for env, info in compute.instances()
                     if info.labels.get("composer-owner", naming.prefix) == naming.prefix}

        adopted = {}
        for gid, dg in snapshot_graphs.items():
            reason = None
            if gid in dirty:
                reason = "an interrupted transaction touched it"
            elif dg.lsi not in lsis:
                reason = "its LSI %s is gone" % dg.lsi
            else:
                missing = [f.instance for f in dg.functions.values() if f.instance not in instances]
                if missing:
                    reason = "functions %s are gone" % ", ".join(missing)
                else:
                    # Whole, not only there: each namespace can be entered, each process
                    # runs, each port and link is on its LSI (the flows are installed
                    # again below anyway).
                    faults = inspect(engine, dg)
                    if faults:
                        reason = "; ".join(str(f) for f in faults)
            if reason is None:
                adopted[gid] = dg
            else:
                self.report.append("graph %s not adopted: %s (it is deployed again)"
                                   % (gid, reason))

        keep_lsis = {dg.lsi for dg in adopted.values()}
        keep_instances = {f.instance for dg in adopted.values() for f in dg.functions.values()}
        for name in sorted(set(lsis) - keep_lsis):
            self._try("destroy orphan LSI %s" % name, driver.destroy_lsi, name)
        for instance in sorted(set(instances) - keep_instances):
            env, _ = instances[instance]
            self._try("destroy orphan instance %s" % instance,
                      compute.driver(env).destroy, instance)
        # Prepared slots are in no snapshot: their instances went above, their ports go here.
        for dg in adopted.values():
            spare_ports = [p.name for p in driver.list_ports(dg.lsi)
                           if p.external_ids.get("composer-role") == "spare"]
            if spare_ports:
                self._try("remove the spare ports of %s" % dg.lsi, driver.destroy_ports,
                          dg.lsi, spare_ports)

        from ..network.split import deployed_split, link_ports
        keep_lsi0_ports = set(network.lsi0_interfaces)
        expected_lsi0 = {}
        for dg in adopted.values():
            split = deployed_split(dg, naming)
            keep_lsi0_ports |= {link_ports(l.name)[0] for l in dg.links}
            expected_lsi0.update(split.lsi0_flows)
            graph_cookies = [f.cookie for f in driver.dump_flows(dg.lsi)
                             if naming.owns_cookie(f.cookie)]
            self._try("re-install flows of %s" % dg.lsi, driver.apply_flows, dg.lsi,
                      list(split.graph_flows.values()), graph_cookies)
            self._try("restore the SAPs of %s" % dg.lsi, network.restore_saps, dg)
        for port in driver.list_ports(network.lsi0):
            if port.external_ids.get("composer-owner") == naming.prefix and \
                    port.name not in keep_lsi0_ports and \
                    port.external_ids.get("composer-role") not in ("lsi0", "tunnel-endpoint"):
                self._try("remove orphan port %s" % port.name, driver.destroy_port,
                          network.lsi0, port.name)
        ours = [f.cookie for f in driver.dump_flows(network.lsi0) if naming.owns_cookie(f.cookie)
                and not self._is_endpoint_cookie(f.cookie)]
        self._try("re-install LSI-0 flows", driver.apply_flows, network.lsi0,
                  list(expected_lsi0.values()), sorted(set(ours)))

        engine.deployed = adopted
        engine._generation += 1
        # Written only when it changed: a restart on a full disk that adopts every graph
        # needs to write nothing.
        if engine.snapshot.read_bytes() != encode(adopted, {"lsi0": network.lsi0}):
            engine._save_snapshot(adopted)
        engine.journal.mark_recovered()
        for line in self.report:
            routine = line.startswith(("re-install", "restore")) and " failed: " not in line
            LOG.log(logging.INFO if routine else logging.WARNING, "recovery: %s", line)
        LOG.info("recovery: adopted %d graphs (%s)", len(adopted), ", ".join(sorted(adopted)))
        return adopted

    def _is_endpoint_cookie(self, cookie: int) -> bool:
        endpoints = getattr(self.engine.network, "endpoint_cookies", None)
        return bool(endpoints) and cookie in endpoints()

    def _try(self, what, func, *args) -> None:
        try:
            func(*args)
            self.report.append(what)
        except Exception as exc:  # noqa: BLE001 - recovery keeps going, and says so
            LOG.error("recovery: %s failed: %s", what, exc)
            self.report.append("%s failed: %s" % (what, exc))
