"""The plan a commit would run, computed offline: `composer-agent plan graph.xml`.

Reads the configuration file's graphs and the engine's snapshot of what is deployed, and
plans as the engine would, without touching the node. Implementations are resolved from
the repository without checking the node's prerequisites (that needs the drivers).
"""

import tempfile
from pathlib import Path

from drivers import registry

from ..compute.manager import ComputeManager
from ..compute.repository import Repository
from ..compute.scheduler import Scheduler
from ..compute.service import ComputeService
from ..config import AgentConfig
from ..model import create_context
from ..model.data import parse_config
from ..network.naming import Naming
from .engine import graph_sources
from ..model.graph import templates_from_tree
from ..model.plan import Plan
from .planner import Planner
from .state import Snapshot


class _OfflineCompute(ComputeManager):
    def availability(self, template: dict) -> list:
        return []

    def driver(self, environment: str):
        """The driver, unchecked: only asked how it would attach ports."""
        return registry.create("compute", environment,
                               **self.driver_options.get(environment, {}))


def offline_plan(config: AgentConfig, text: str | bytes) -> Plan:
    """The plan that committing the configuration in text would run now."""
    netconf = config.data["netconf"]
    ctx = create_context(extra_dirs=netconf["extra-yang-dirs"],
                         extra_modules=netconf["extra-yang-modules"])
    tree = parse_config(ctx, text)
    deployed, _ = Snapshot(config.state_dir / "engine" / "deployed.json").load()
    with tempfile.TemporaryDirectory(prefix="composer-plan-") as packages:
        repository = Repository(Path(packages))
        repository.load_builtin()
        repository.set_configured(templates_from_tree(tree))
        compute = _OfflineCompute(config.get("compute", "execution-environments"),
                                  ComputeService(config).driver_options(), repository,
                                  Scheduler())
        addresses = config.get("lsi0", "addresses")
        planner = Planner(Naming(config.prefix), compute, config.get("lsi0", "name"),
                          config.get("lsi0", "interfaces"),
                          [a.partition("/")[0] for a in addresses.values()])
        return planner.plan(graph_sources(tree), deployed).plan
