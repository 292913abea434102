"""The engine service: the transaction engine, its boot-time recovery, its state providers."""

import asyncio
import logging
import time

from drivers.watch import Watcher

from ..config import AgentConfig
from ..domain.description import DomainDescription
from ..domain.events import DomainEvents
from .alarms import Alarms
from .converge import Converger, Settings
from .engine import ComposerEngine
from .executor import FaultFile
from .interface import StateProvider, TransactionEngine
from .operational import GraphState
from .status import StatusEvents

LOG = logging.getLogger(__name__)


class EngineService:
    """1. build the engine on the network and compute managers;
    2. recover: reconcile the node with the last snapshot (the datastores then apply
       running through the engine, which converges the node);
    3. offer the graph state and the domain description as operational state;
    4. publish, on the agent's bus, the status changes of graphs and functions and the
       changes of the domain description (agent/engine/status.py, agent/domain/events.py)
       from then on."""

    def __init__(self, config: AgentConfig, vswitch, compute, on_settled=None, bus=None):
        self.config = config
        self.on_settled = on_settled    # for the engine (see ComposerEngine)
        self.vswitch = vswitch
        self.compute_service = compute
        self.engine: ComposerEngine | None = None
        self.providers: list = []
        self.recovery_report: list = []
        self.converger: Converger | None = None
        self.started = time.time()
        self.bus = bus
        self.alarms: Alarms | None = None

    def _start(self) -> None:
        network = self.vswitch.network
        compute = self.compute_service.compute
        self.engine = ComposerEngine(
            network, compute, self.vswitch.naming, self.config.state_dir / "engine",
            parallelism=int(self.config.get("compute", "parallel-starts")),
            lsi0_interfaces=self.config.get("lsi0", "interfaces"),
            spare_slots=int(self.config.get("compute", "spare-slots")),
            spare_slot_ports=int(self.config.get("compute", "spare-slot-ports")),
            spare_slots_min_ports=int(self.config.get("compute", "spare-slots-min-ports")),
            on_settled=self.on_settled)
        fault_file = self.config.get("debug", "fault-file")
        if fault_file:
            LOG.warning("fault injection is on (debug.fault-file = %s)", fault_file)
            self.engine.executor.fault = FaultFile(fault_file)
        self.recovery_report = self.engine.recover()
        settings = self.config.data["alarms"]
        self.alarms = Alarms(self.engine, self.bus.publish if self.bus else lambda e: None,
                             memory_percent=settings["memory-percent"],
                             cpu_percent=settings["cpu-percent"],
                             interval=settings["interval"],
                             resource_step=settings["resource-step"])
        if self.bus is not None:
            self._publish(self.engine, self.bus, self.alarms)
        self.engine.start_spares()
        repair = self.config.data["repair"]
        if repair["enabled"]:
            self.converger = Converger(
                self.engine, Watcher("watcher"), self.vswitch.ovs,
                Settings(attempts=repair["attempts"], backoff=repair["backoff-ms"] / 1000,
                         backoff_max=repair["backoff-max-ms"] / 1000,
                         stable=repair["stable-seconds"]))
            self.converger.start()
        description = DomainDescription(self.config, network, compute, self.engine, self.started)
        # In place: the NETCONF service holds this list from before the engine existed.
        self.providers[:] = [StateProvider("service-graphs", GraphState(self.engine).build,
                                           ("composer-sffg",)),
                             StateProvider("domain", description.build, ("composer-domain",)),
                             StateProvider("alarms", self.alarms.build, ("composer-alarms",))]
        self.alarms.start()

    @staticmethod
    def _publish(engine, bus, alarms) -> None:
        """Status, domain and alarm events from now on (what recovery found is the
        baseline)."""
        statuses = StatusEvents(engine, bus.publish)
        domain = DomainEvents(engine, bus.publish)
        statuses.baseline()
        domain.check()
        # alarms.check after a commit too: a graph's monitoring expression changed or the
        # graph is gone (its alarms clear)
        engine.observers += [statuses.check, lambda graphs: domain.check(),
                             lambda graphs: alarms.check()]
        alarms.check()

        def health_changed(graph):
            statuses.check(None if graph is None else {graph})
            alarms.check(graph)
        engine.health.on_change = health_changed

    def transaction_engine(self) -> TransactionEngine:
        """The engine, for the datastores: they start after this service and take it then
        (no stand-in forwards to it, so none can miss a method)."""
        if self.engine is None:
            raise RuntimeError("the engine service has not started")
        return self.engine

    def teardown(self) -> None:
        """On a clean exit: remove every deployed graph, so the node is left as found."""
        if self.engine is None:
            return
        try:
            self.engine.apply(None, None)
        except Exception as exc:  # noqa: BLE001 - report and go on stopping
            LOG.error("removing the deployed graphs failed: %s", exc)

    async def start(self) -> None:
        await asyncio.to_thread(self._start)

    async def stop(self) -> None:
        if self.alarms is not None:
            await asyncio.to_thread(self.alarms.stop)
        if self.converger is not None:
            # What the teardown removes is not to be repaired.
            await asyncio.to_thread(self.converger.stop)
            self.converger = None
        if self.config.get("ovs", "stop-on-exit"):
            await asyncio.to_thread(self.teardown)
        if self.engine is not None:
            await asyncio.to_thread(self.engine.stop_spares)

    def banner(self) -> list[str]:
        graphs = len(self.engine.deployed) if self.engine else 0
        return ["engine: %d graphs adopted after recovery" % graphs]
