"""A simulated node whose agent services run in this process (no NETCONF): the engine,
its recovery and its converger on the real drivers."""

import asyncio

from agent.compute.service import ComputeService
from agent.config import load
from agent.engine.service import EngineService
from agent.model import create_context, parse_config
from agent.network.service import VSwitchService
from agent.tools.graphxml import service_graphs
from tests.e2e.node import Node

CTX = create_context()


class InProcessNode(Node):
    """A node whose agent services run in this process (no NETCONF); overrides: more
    configuration (section -> settings)."""

    overrides: dict = {}

    def start_agent(self, timeout=60.0):
        self.config = load(overrides={
            "node": {"id": self.netns},
            "state": {"dir": str(self.dir / "state")},
            "ovs": {"mode": "private", "run-dir": str(self.dir / "ovs"), "netns": self.netns,
                    "datapath-type": "netdev"},
            "lsi0": {"interfaces": sorted(self.host_spec)},
            "resources": {"prefix": self.resource_prefix},
            "compute": {"spare-slots": self.spare_slots,
                        "spare-slots-min-ports": self.spare_slots_min_ports},
            **self.overrides,
        })
        self.vswitch = VSwitchService(self.config)
        self.compute = ComputeService(self.config)
        self.engine_service = EngineService(self.config, self.vswitch, self.compute)
        self.services = [self.vswitch, self.compute, self.engine_service]
        for service in self.services:
            asyncio.run(service.start())
        self.engine = self.engine_service.engine

    def stop_agent(self, *args, **kwargs):
        for service in reversed(getattr(self, "services", [])):
            asyncio.run(service.stop())
        self.services = []

    def apply(self, *graphs, extra: str = ""):
        """Make running the graphs (and the extra top-level XML, templates say)."""
        text = (service_graphs(*graphs) if graphs else "") + extra
        self.engine.apply(None, parse_config(CTX, text) if text else None)
