"""The compute service: the SF repository and the compute drivers of the enabled environments."""

import asyncio

from ..config import AgentConfig
from ..domain.description import memory_available
from .manager import ComputeManager
from .repository import Repository
from .scheduler import Scheduler


class ComputeService:
    def __init__(self, config: AgentConfig):
        self.config = config
        self.compute: ComputeManager | None = None

    def driver_options(self) -> dict:
        netns = self.config.get("ovs", "netns") or None
        state = str(self.config.state_dir)
        return {
            "native": {"state_dir": state, "netns": netns,
                       "script_timeout": float(self.config.get("compute", "script-timeout"))},
        }

    def _start(self) -> None:
        repository = Repository(self.config.state_dir / "nsf")
        repository.load_builtin()
        self.compute = ComputeManager(self.config.get("compute", "execution-environments"),
                                      self.driver_options(), repository, Scheduler(),
                                      memory_free=memory_available)

    def _stop(self) -> None:
        if self.compute is not None:
            self.compute.close()

    async def start(self) -> None:
        await asyncio.to_thread(self._start)

    async def stop(self) -> None:
        await asyncio.to_thread(self._stop)

    def banner(self) -> list[str]:
        envs = self.compute.usable_environments() if self.compute else []
        return ["compute: %s; %d templates (%s)" % (
            ", ".join(envs) or "no usable execution environment",
            len(self.compute.repository.templates()),
            ", ".join(sorted(self.compute.repository.capabilities())))]
