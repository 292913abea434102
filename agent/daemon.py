"""The agent process: brings its services up in order and down in reverse.

Services are objects with async start() and stop(); each one owns one concern
(the vSwitch, the datastores, the engine, the NETCONF server, the publishers).
"""

import asyncio
import logging
import signal

from . import tuning
from .config import AgentConfig

LOG = logging.getLogger(__name__)


class Agent:
    """The composer agent: a list of services started in order and stopped in reverse."""

    def __init__(self, config: AgentConfig, banner=()):
        self.config = config
        self.extra_banner = list(banner)       # lines printed after the services' own
        self.services = []
        self._stopping = asyncio.Event()

    def build_services(self) -> list:
        """The services, in start order. Imported here so that a unit test can build
        an Agent without the daemons behind the services."""
        from .compute.service import ComputeService
        from .engine.service import EngineService
        from .netconf import NetconfService
        from .network.service import VSwitchService
        from .publish.feed import FeedService
        from .publish.service import EventService
        # The event path first: every other service publishes on its bus.
        events = EventService(self.config)
        vswitch = VSwitchService(self.config)
        compute = ComputeService(self.config)
        # (tuning.settle freezes the heap after recovery and each commit, once tuned)
        engine = EngineService(self.config, vswitch, compute, on_settled=tuning.settle,
                               bus=events.bus)
        # The datastores boot running through the engine, so they start after it, and take
        # the engine (made when its service starts) then.
        netconf = NetconfService(self.config, engine=engine.transaction_engine,
                                 providers=engine.providers, events=events)
        # The feed reads the description as <get> does: after the datastores.
        feed = FeedService(self.config, events.bus, netconf)
        return [events, vswitch, compute, engine, netconf, feed]

    async def start(self) -> None:
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self.config.state_dir.chmod(0o700)
        for service in self.build_services():
            LOG.debug("starting %s", type(service).__name__)
            await service.start()
            self.services.append(service)
        # A service that fails to start cleans up after itself; the ones started before it
        # are stopped by run() (or the caller) through stop().

    async def stop(self) -> None:
        while self.services:
            service = self.services.pop()
            try:
                await service.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                LOG.exception("stopping %s failed", type(service).__name__)

    def request_stop(self, signum: int | None = None) -> None:
        if signum is not None:
            LOG.info("received %s", signal.Signals(signum).name)
        self._stopping.set()

    async def run(self) -> None:
        """Start, wait for SIGINT/SIGTERM, stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop, sig)
        sweeper = None
        try:
            await self.start()
            for line in self.banner():
                print(line, flush=True)
            sweeper = asyncio.create_task(tuning.sweep_forever())
            await self._stopping.wait()
            LOG.info("stopping")
        finally:
            if sweeper is not None:
                sweeper.cancel()
            await self.stop()

    def banner(self) -> list[str]:
        lines = ["composer-agent %s: node %s is up (state in %s)"
                 % (__import__("agent").__version__, self.config.node_id, self.config.state_dir)]
        for service in self.services:
            lines += getattr(service, "banner", lambda: [])()
        lines += self.extra_banner
        lines.append("Ctrl-C stops the agent.")
        return lines
