"""The COMPOSER transaction engine: a change of running becomes a plan, run with undo.

apply(old, new):
  1. read the graphs and templates of new (libyang JSON -> values);
  2. plan against what is deployed (not against old: the node is the truth);
  3. journal the intent, run the plan; every step records its undo;
  4. success: deployed := the plan's target, snapshot written, journal closed;
     failure: the executor has undone every step, EngineRefused names the step, the
     resource and the driver's message; deployed and the snapshot are unchanged.
"""

import logging
import threading
import time
from pathlib import Path

from drivers.errors import DriverError

from .executor import Executor, StepFailed
from .graph import SFFG, graphs_from_tree, templates_from_tree, top_level, tree_to_dict
from .interface import EngineRefused, TransactionEngine
from .journal import Journal
from .plan import Plan
from .planner import Planner, PlanningError, function_path, graph_path, sap_path
from .state import Snapshot, with_status

LOG = logging.getLogger(__name__)


def graph_sources(root) -> dict:
    """graph id -> the libyang JSON entry of that graph."""
    data = tree_to_dict(top_level(root, SFFG)).get(SFFG, {})
    return {g["id"]: g for g in data.get("service-graph", ())}


class ComposerEngine(TransactionEngine):
    """Deploys service graphs through the network and compute managers."""

    def __init__(self, network, compute, naming, state_dir, parallelism: int = 8,
                 lsi0_interfaces=()):
        self.network = network
        self.compute = compute
        self.naming = naming
        self.state_dir = Path(state_dir)
        self.planner = Planner(naming, compute, network.lsi0, lsi0_interfaces)
        self.journal = Journal(self.state_dir / "journal.log")
        self.snapshot = Snapshot(self.state_dir / "deployed.json")
        handlers = {}
        handlers.update(network.handlers())
        handlers.update(compute.handlers())
        self.executor = Executor(handlers, self.journal, parallelism)
        self.deployed: dict = {}
        self.in_progress: dict = {}      # graph id -> "deploying" / "removing"
        self.failures: dict = {}         # graph id -> last error message
        self.last_plan: Plan | None = None
        self.last_summary: dict = {}
        self._lock = threading.Lock()

    # --- TransactionEngine ---

    def validate(self, old, new) -> None:
        self._plan(new)

    def apply(self, old, new) -> None:
        with self._lock:
            result = self._plan(new)
            self.last_plan, self.last_summary = result.plan, result.summary
            if not result.plan:
                self.deployed = result.deployed
                return
            for gid in result.touched:
                self.in_progress[gid] = "deploying" if gid in result.deployed else "removing"
            started = time.monotonic()
            self.journal.begin(result.touched, result.plan.lines())
            try:
                self.executor.run(result.plan)
            except StepFailed as failure:
                self.journal.end("rollback-failed" if failure.rollback_errors else "rolled-back",
                                 str(failure))
                for gid in result.touched:
                    self.failures[gid] = str(failure)
                raise EngineRefused(self._message(failure), path=self._path(failure.step),
                                    app_tag="deployment-failed",
                                    info={"step": str(failure.step)}) from None
            finally:
                for gid in result.touched:
                    self.in_progress.pop(gid, None)
            self.deployed = result.deployed
            for gid in result.touched:
                self.failures.pop(gid, None)
            self.snapshot.save(self.deployed, {"lsi0": self.network.lsi0})
            self.journal.end("commit")
            LOG.info("deployed in %.0f ms: %s", (time.monotonic() - started) * 1000,
                     ", ".join("%s %d" % (k, v) for k, v in result.summary.items() if v))

    # --- planning ---

    def _plan(self, new):
        try:
            self.compute.repository.set_configured(templates_from_tree(new))
            return self.planner.plan(graph_sources(new), self.deployed)
        except PlanningError as exc:
            raise EngineRefused(exc.message, path=exc.path, app_tag=exc.app_tag) from None

    def dry_run(self, new) -> Plan:
        """The plan apply(new) would run now, without running it."""
        with self._lock:
            return self._plan(new).plan

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
            return function_path(step.graph, params["function"].id)
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
            return dg.status, self.failures.get(graph_id, dg.error)
        if graph_id in self.failures:
            return "failed", self.failures[graph_id]
        return "pending", ""

    def mark(self, graph_id: str, status: str, error: str = "") -> None:
        if graph_id in self.deployed:
            self.deployed[graph_id] = with_status(self.deployed[graph_id], status, error)
