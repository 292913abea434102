"""Slow work does not hold up other graphs' commits, and a deploy runs its functions'
creates and starts in parallel across environments.

A driver's fetch phase (ComputeDriver.fetch: an image downloaded or imported) runs before
the change takes the datastores' commit lock and the engine's lock (engine.prefetch): a
commit of graph B completes while graph A's slow image is still being fetched, and A's
commit then completes with the image in place."""

import asyncio
import threading
import time

import pytest
from lxml import etree

import agent.engine.engine as engine_module
from agent.compute.manager import ComputeManager
from agent.compute.repository import Repository
from agent.compute.scheduler import Scheduler
from agent.datastore import Datastores, Edit
from agent.engine.engine import ComposerEngine
from agent.network.manager import NetworkManager
from agent.network.naming import Naming
from agent.tools.graphxml import GraphXml, config
from drivers import registry
from tests.unit.engine.fakes import FakeCompute, FakeVSwitch
from tests.unit.engine.test_engine import CTX, TEMPLATES

VM_TEMPLATE = {"id": "fw-vm", "functional-capability": "vm-firewall",
               "execution-environment": "kvm", "image-uri": "/images/fw.qcow2",
               "port-count": 2, "cpu": 1, "memory": 8, "dependencies": []}


class SlowCompute(FakeCompute):
    """A VM-like environment: fetching its image waits for the test's gate."""
    execution_environment = "kvm"

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()
        self.fetching = threading.Event()
        self.fetches = []              # (image, whether the image was there already)
        self.store = set()
        self.barrier = None            # starts and creates wait for each other on it

    def fetch(self, spec):
        self.fetches.append((spec.image, spec.image in self.store))
        if spec.image in self.store:
            return
        self.fetching.set()
        assert self.gate.wait(10), "the test never opened the gate"
        self.store.add(spec.image)

    def create(self, spec, prepared=False):
        assert spec.image in self.store, "create without its image"
        if self.barrier is not None:
            self.barrier.wait()
        return super().create(spec, prepared)

    def start(self, instance):
        if self.barrier is not None:
            self.barrier.wait()
        super().start(instance)


class Barriered(FakeCompute):
    def __init__(self):
        super().__init__()
        self.barrier = None

    def create(self, spec, prepared=False):
        if self.barrier is not None:
            self.barrier.wait()
        return super().create(spec, prepared)

    def start(self, instance):
        if self.barrier is not None:
            self.barrier.wait()
        super().start(instance)


@pytest.fixture
def node(tmp_path, monkeypatch):
    vswitch, native, vm = FakeVSwitch(), Barriered(), SlowCompute()
    drivers = {"native": native, "kvm": vm}
    monkeypatch.setattr(registry, "create", lambda kind, name, **kw: drivers[name])
    monkeypatch.setattr(engine_module, "templates_from_tree",
                        lambda root: TEMPLATES + [VM_TEMPLATE])
    naming = Naming("ct")
    network = NetworkManager(vswitch, naming, "lsi0", ("eth1", "eth2"))
    network.start()
    repository = Repository(tmp_path / "nsf")
    repository.set_configured(TEMPLATES + [VM_TEMPLATE])
    compute = ComputeManager(["native", "kvm"], {}, repository, Scheduler(cores=2))
    engine = ComposerEngine(network, compute, naming, tmp_path, parallelism=8,
                            lsi0_interfaces=("eth1", "eth2"))
    return engine, native, vm


def graph(gid, capability, nic_a="eth1", nic_b="eth2", functions=1):
    g = GraphXml(gid)
    for n in range(functions):
        g.function("f%d" % n, capability, "a", "b")
    g.sap_interface("lan", nic_a).sap_interface("wan", nic_b)
    g.rule("in", "lan", "f0:a", match={"eth-src": "02:00:00:00:00:%02x" % len(gid)})
    return g


def edit(*graphs) -> Edit:
    return Edit.from_xml(CTX, etree.fromstring(config(*graphs).encode()), "merge")


async def eventually(predicate, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_commit_of_another_graph_completes_while_a_slow_image_is_fetched(node, tmp_path):
    engine, native, vm = node

    async def main():
        ds = Datastores(CTX, engine, tmp_path / "startup.xml")
        await ds.start()
        try:
            slow = asyncio.ensure_future(ds.edit("running", edit(graph("ga", "vm-firewall"))))
            await eventually(vm.fetching.is_set)
            # graph B, native, is committed while A's image is still coming
            await asyncio.wait_for(ds.edit("running", edit(graph("gbb", "firewall"))), 5)
            assert set(engine.deployed) == {"gbb"}
            assert not slow.done()
            vm.gate.set()
            await asyncio.wait_for(slow, 5)
            assert set(engine.deployed) == {"ga", "gbb"}
            # fetched ahead, then found in place by the create
            assert vm.fetches == [("/images/fw.qcow2", False), ("/images/fw.qcow2", True)]
        finally:
            vm.gate.set()
            await ds.stop()
    asyncio.run(main())


def test_a_deploy_creates_and_starts_its_functions_in_parallel_across_environments(node):
    engine, native, vm = node
    vm.gate.set()
    barrier = threading.Barrier(4, timeout=5)
    native.barrier = vm.barrier = barrier
    g = GraphXml("g1")
    for fid, capability in (("n0", "firewall"), ("n1", "firewall"), ("v0", "vm-firewall"),
                            ("v1", "vm-firewall")):
        g.function(fid, capability, "a", "b")
    g.sap_interface("lan", "eth1")
    g.rule("in", "lan", "n0:a")
    from agent.model import parse_config
    tree = parse_config(CTX, "".join(config(g).split(">", 1)[1].rsplit("<", 1)[:1]))
    # the four creates meet at the barrier, then the four starts: all at once, or never
    engine.apply(None, tree)
    assert not barrier.broken
    assert sorted(i["state"] for i in native.instances.values()) == ["running"] * 2
    assert sorted(i["state"] for i in vm.instances.values()) == ["running"] * 2
