"""The vSwitch service: the private OVS (or an existing one), the driver, LSI-0."""

import asyncio
import logging

from drivers import registry
from drivers.vswitch.ovs_process import PrivateOVS, default_datapath_type

from ..config import AgentConfig
from .manager import NetworkManager
from .naming import Naming

LOG = logging.getLogger(__name__)


class VSwitchService:
    """Starts the vSwitch the configuration asks for and the network manager on it.

    1. private mode: start (or reuse) ovsdb-server and ovs-vswitchd under the state dir;
    2. connect the vSwitch driver and check it;
    3. create (or reuse) LSI-0 with the configured interfaces.
    """

    def __init__(self, config: AgentConfig):
        self.config = config
        self.ovs: PrivateOVS | None = None
        self.driver = None
        self.network: NetworkManager | None = None
        self.naming = Naming(config.prefix)

    @property
    def datapath_type(self) -> str:
        configured = self.config.get("ovs", "datapath-type")
        return default_datapath_type() if configured == "auto" else configured

    def _start(self) -> None:
        try:
            self._bring_up()
        except BaseException:
            # Not in the daemon's list of started services yet: undo here.
            self._stop()
            raise

    def _bring_up(self) -> None:
        ovs = self.config.data["ovs"]
        netns = ovs["netns"] or None
        if ovs["mode"] == "private":
            self.ovs = PrivateOVS(self.config.ovs_run_dir, netns=netns)
            self.ovs.start()
            db_socket, run_dir = self.ovs.db_socket, str(self.ovs.run_dir)
        else:
            db_socket, run_dir = ovs["db-socket"], ovs["run-dir"] or None
        self.driver = registry.create("vswitch", "ovs", db_socket=db_socket, run_dir=run_dir,
                                      netns=netns, datapath_type=self.datapath_type)
        self.driver.check()
        self.network = NetworkManager(self.driver, self.naming, self.config.get("lsi0", "name"),
                                      self.config.get("lsi0", "interfaces"),
                                      self.config.get("lsi0", "addresses"))
        self.network.start()

    def _stop(self) -> None:
        if self.driver is not None:
            self.driver.close()
        if self.ovs is not None and self.config.get("ovs", "stop-on-exit"):
            self.ovs.stop()

    async def start(self) -> None:
        await asyncio.to_thread(self._start)

    async def stop(self) -> None:
        await asyncio.to_thread(self._stop)

    def banner(self) -> list[str]:
        where = ("private OVS in %s" % self.ovs.run_dir) if self.ovs else \
            "OVS at %s" % self.config.get("ovs", "db-socket")
        interfaces = ", ".join(self.config.get("lsi0", "interfaces")) or "no interfaces yet"
        return ["vSwitch: %s, datapath %s; LSI-0 '%s' with %s"
                % (where, self.datapath_type, self.config.get("lsi0", "name"), interfaces)]
