"""The compute service: the SF repository and the compute drivers of the enabled environments."""

import asyncio
import logging

from drivers.errors import DriverError

from ..config import AgentConfig
from ..domain.description import memory_available, memory_total
from .manager import ComputeManager
from .repository import Repository
from .scheduler import Scheduler

LOG = logging.getLogger(__name__)


class ComputeService:
    def __init__(self, config: AgentConfig):
        self.config = config
        self.compute: ComputeManager | None = None
        self.dockerd = None

    @property
    def docker_enabled(self) -> bool:
        return "docker" in self.config.get("compute", "execution-environments")

    def docker_host(self) -> str:
        if self.dockerd is not None:
            return self.dockerd.host
        if self.config.get("docker", "mode") == "private":
            from drivers.compute.dockerd import PrivateDockerd
            return PrivateDockerd(self.config.docker_run_dir).host
        return self.config.get("docker", "host")

    def driver_options(self) -> dict:
        netns = self.config.get("ovs", "netns") or None
        state = str(self.config.state_dir)
        return {
            "native": {"state_dir": state, "netns": netns,
                       "script_timeout": float(self.config.get("compute", "script-timeout"))},
            "docker": {"state_dir": state, "netns": netns, "host": self.docker_host(),
                       "prefix": self.config.prefix,
                       "start_timeout": float(self.config.get("compute", "script-timeout"))},
            "kvm": {"state_dir": state, "netns": netns},
            "dpdk": {"state_dir": state, "netns": netns, "prefix": self.config.prefix,
                     "port_driver": self.config.get("dpdk", "port-driver"),
                     "hugepages": self.config.get("dpdk", "hugepages"),
                     "memory": int(self.config.get("dpdk", "memory"))},
        }

    def _start_dockerd(self) -> None:
        """docker.mode private: the agent's own dockerd (or the one a crashed run left).
        When it cannot start, docker functions cannot run and the resolver says why."""
        from drivers.compute.dockerd import PrivateDockerd
        dockerd = PrivateDockerd(self.config.docker_run_dir,
                                 runtime=self.config.get("docker", "runtime"))
        try:
            dockerd.start()
        except DriverError as exc:
            LOG.warning("docker functions cannot run: %s", exc)
            return
        self.dockerd = dockerd

    def _start(self) -> None:
        if self.docker_enabled and self.config.get("docker", "mode") == "private":
            self._start_dockerd()
        images = self.config.state_dir / "images"
        repository = Repository(self.config.state_dir / "nsf", images,
                                self.config.get("repository", "urls"),
                                float(self.config.get("repository", "timeout")),
                                float(self.config.get("repository", "refresh-seconds")))
        repository.load_builtin()
        if self.docker_enabled:
            repository.load_builtin_images(images)
        if "kvm" in self.config.get("compute", "execution-environments"):
            repository.load_builtin_guest(self.config.kvm_guest_dir)
        if "dpdk" in self.config.get("compute", "execution-environments"):
            repository.load_builtin_dpdk(int(self.config.get("dpdk", "memory")))
        repository.refresh(force=True)
        compute = self.config.data["compute"]
        self.compute = ComputeManager(compute["execution-environments"],
                                      self.driver_options(), repository, Scheduler(),
                                      memory_free=memory_available, memory_total=memory_total,
                                      reserved_memory=compute["reserved-memory"],
                                      cpu_allocation_ratio=compute["cpu-allocation-ratio"],
                                      environment_costs=compute["environment-costs"])

    def _stop(self) -> None:
        if self.compute is not None:
            self.compute.close()
        if self.dockerd is not None and self.config.get("ovs", "stop-on-exit"):
            # the graphs are torn down (agent/engine/service.py): no container is left
            self.dockerd.stop()

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
