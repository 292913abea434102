"""The engine's accounts of memory and cores on fake drivers: what a transaction removes is
free for what it creates, a function that does not fit is refused naming its template and
reason, the cores bound are handed to the driver and kept in the deployed record."""

import pytest

from agent.compute.manager import ComputeManager
from agent.compute.repository import Repository
from agent.compute.scheduler import Scheduler
from agent.engine.engine import ComposerEngine
from agent.engine.interface import EngineRefused
from tests.unit.engine import test_engine
from tests.unit.engine.test_engine import TEMPLATES, chain, graph_xml, running


@pytest.fixture(autouse=True)
def keep_templates(monkeypatch):
    import agent.engine.engine as engine_module
    monkeypatch.setattr(engine_module, "templates_from_tree", lambda root: TEMPLATES)


@pytest.fixture
def node(tmp_path, monkeypatch):
    """A node whose functions may hold 20 MiB (each template needs 8) on 4 cores."""
    node = test_engine.make_node(tmp_path, monkeypatch)

    def new_engine():
        from agent.network.manager import NetworkManager
        network = NetworkManager(node.vswitch, node.naming, "lsi0", ("eth1", "eth2"))
        network.start()
        repository = Repository(node.state_dir / "nsf")
        repository.set_configured(TEMPLATES)
        manager = ComputeManager(["native"], {}, repository, Scheduler(cores=4),
                                 memory_total=lambda: (20 + 256) << 20, reserved_memory=256)
        return ComposerEngine(network, manager, node.naming, node.state_dir, parallelism=4,
                              lsi0_interfaces=("eth1", "eth2"))
    node.engine = new_engine()
    return node


def _three(gid="g1"):
    return graph_xml(gid, [("a", "firewall", ("in", "out")), ("b", "firewall", ("in", "out")),
                           ("c", "firewall", ("in", "out"))],
                     [("lan-a", 10, "lan", "a:in")])


def test_a_function_that_does_not_fit_is_refused_with_its_reason(node):
    empty = node.state()
    with pytest.raises(EngineRefused) as refused:
        node.engine.apply(None, running(_three()))
    assert "fw-native: needs 8 MiB of memory, 4 MiB free" in str(refused.value)
    assert node.state() == empty


def test_what_a_transaction_removes_is_free_for_what_it_creates(node):
    node.engine.apply(None, running(chain("g1", middle=True)))      # 16 of 20 MiB
    # g1 goes and g2 (16 MiB) comes in one transaction: it fits only with g1's memory
    node.engine.apply(None, running(chain("g2", middle=True)))
    assert set(node.engine.deployed) == {"g2"}


def test_the_cores_bound_reach_the_driver_and_the_record(node):
    node.engine.apply(None, running(chain("g1", middle=True)))
    functions = node.engine.deployed["g1"].functions
    assert functions["fw"].cores and functions["fw"].cores == functions["nat"].cores
    assert functions["fw"].memory == 8 and functions["fw"].cpu == 0.5
    handed = {i["labels"]["composer-function"]: tuple(i["cpu_cores"])
              for i in node.compute.instances.values()}
    assert handed == {"fw": functions["fw"].cores, "nat": functions["nat"].cores}
