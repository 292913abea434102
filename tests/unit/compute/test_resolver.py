"""The resolver's decisions: constraints, environments, dependencies, resources, cost, and
why each template was not chosen; decompositions resolved part by part."""

import hashlib
import json

import pytest

from agent.compute.allocation import Allocation
from agent.compute.manager import ComputeManager
from agent.compute.repository import Repository
from agent.compute.scheduler import Scheduler
from agent.config import DEFAULTS
from agent.compute.resolver import ResolveError, Resolver, template_cost
from agent.model.graph import Constraints, Function, Port
from tests.httpserver import FileServer


class _Repository:
    def __init__(self, *templates):
        self._templates = list(templates)

    def templates(self):
        return list(self._templates)

    def get(self, template_id):
        return next((t for t in self._templates if t["id"] == template_id), None)

    def capabilities(self):
        out = {}
        for t in self._templates:
            out.setdefault(t["functional-capability"], []).append(t)
        return out


def _template(tid, env="native", memory=4, cpu=0.1, capability="firewall", **kw):
    return dict({"id": tid, "functional-capability": capability, "execution-environment": env,
                 "port-count": 2, "memory": memory, "cpu": cpu, "image-uri": "/img/" + tid},
                **kw)


NATIVE = _template("native-firewall")
DOCKER = _template("docker-firewall", env="docker", memory=16)
KVM = _template("kvm-firewall", env="kvm", memory=128, cpu=1)


def _function(fid="fw", capability="firewall", ports=2, **constraints):
    return Function(fid, capability, ports=tuple(Port("p%d" % n) for n in range(ports)),
                    constraints=Constraints(**constraints))


def _offered(*environments):
    return lambda t: [] if t["execution-environment"] in environments else \
        ["execution environment %s is not enabled on this node" % t["execution-environment"]]


def _allocation(memory=1024, cores=2, ratio=16.0):
    return Allocation(cores=range(cores), memory_capacity=memory, allocation_ratio=ratio)


def test_the_cheapest_usable_template_wins_and_the_others_say_why_not():
    resolver = Resolver(_Repository(KVM, DOCKER, NATIVE), _offered("native", "docker"))
    chosen = resolver.resolve(_function())
    assert chosen.template_id == "native-firewall"
    assert chosen.environment == "native"
    assert chosen.cost == template_cost(NATIVE) == 0.3 + 4 + 10.0
    assert chosen.reason == "the cheapest of 2 usable implementations (cost 14.30)"
    assert dict(chosen.rejected) == {
        "docker-firewall": "usable, but costs 36.00, more than 14.30 (native-firewall)",
        "kvm-firewall": "execution environment kvm is not enabled on this node"}


def test_the_same_capability_goes_where_the_node_can_run_it():
    resolver = Resolver(_Repository(KVM, DOCKER, NATIVE), _offered("docker", "kvm"))
    assert resolver.resolve(_function()).template_id == "docker-firewall"
    resolver = Resolver(_Repository(KVM, DOCKER, NATIVE), _offered("kvm"))
    assert resolver.resolve(_function()).template_id == "kvm-firewall"


def test_a_template_cost_overrides_the_measured_one():
    cheap_kvm = dict(KVM, cost=1)
    resolver = Resolver(_Repository(cheap_kvm, NATIVE), _offered("native", "kvm"))
    assert resolver.resolve(_function()).template_id == "kvm-firewall"
    # so does a configured cost per environment
    resolver = Resolver(_Repository(DOCKER, NATIVE), _offered("native", "docker"),
                        environment_costs={"native": 100})
    assert resolver.resolve(_function()).template_id == "docker-firewall"


def test_the_function_constraints_filter_the_templates():
    resolver = Resolver(_Repository(KVM, DOCKER, NATIVE), _offered("native", "docker", "kvm"))
    chosen = resolver.resolve(_function(environments=("docker", "kvm")))
    assert chosen.template_id == "docker-firewall"
    assert dict(chosen.rejected)["native-firewall"] == \
        "runs in native; the function's constraints allow docker, kvm"
    chosen = resolver.resolve(_function(memory=64))
    assert chosen.template_id == "kvm-firewall"
    assert dict(chosen.rejected)["docker-firewall"] == \
        "gives 16 MiB of memory; the function's constraints ask for 64"
    with pytest.raises(ResolveError) as refused:
        resolver.resolve(_function(ports=3))
    assert refused.value.message.startswith("no implementation of 'firewall' can run "
                                            "function fw here: ")
    assert dict(refused.value.reasons)["native-firewall"] == "takes 2 ports, the function has 3"


def test_a_template_asking_too_much_memory_is_rejected_with_its_reason():
    big = _template("big-firewall", memory=4096, cost=0)
    resolver = Resolver(_Repository(big, NATIVE), _offered("native"))
    allocation = _allocation(memory=1024)
    chosen = resolver.resolve(_function(), allocation)
    assert chosen.template_id == "native-firewall"
    assert dict(chosen.rejected) == {"big-firewall": "needs 4096 MiB of memory, 1024 MiB free"}
    assert allocation.memory == 4          # what the chosen one holds is reserved
    with pytest.raises(ResolveError) as refused:
        Resolver(_Repository(big), _offered("native")).resolve(_function(), allocation)
    assert refused.value.message == ("no implementation of 'firewall' can run function fw "
                                     "here: big-firewall: needs 4096 MiB of memory, "
                                     "1020 MiB free")


def test_missing_dependencies_and_cpu_are_reasons():
    def availability(template):
        return ["binary nft is missing"] if template["id"] == "native-firewall" else []
    resolver = Resolver(_Repository(NATIVE, DOCKER), availability)
    chosen = resolver.resolve(_function())
    assert chosen.template_id == "docker-firewall"
    assert dict(chosen.rejected) == {"native-firewall": "binary nft is missing"}
    hungry = _template("hungry", cpu=40)
    with pytest.raises(ResolveError) as refused:
        Resolver(_Repository(hungry), _offered("native")).resolve(
            _function(), _allocation(cores=2, ratio=16))
    assert dict(refused.value.reasons) == {"hungry": "needs 40.00 cores, the node shares 2"}


def test_a_poll_mode_template_needs_cores_of_its_own():
    dpdk = _template("dpdk-fwd", env="dpdk", cpu=1, capability="forwarder", **{"poll-mode": True})
    resolver = Resolver(_Repository(dpdk), _offered("dpdk"))
    allocation = _allocation(cores=2)
    assert resolver.resolve(_function(capability="forwarder"), allocation).exclusive
    assert resolver.resolve(_function("f2", capability="forwarder"), allocation).exclusive
    with pytest.raises(ResolveError) as refused:
        resolver.resolve(_function("f3", capability="forwarder"), allocation)
    assert dict(refused.value.reasons) == {
        "dpdk-fwd": "needs 1 core of its own, 0 are free of other functions"}


NAT = _template("native-nat", capability="nat", memory=4)
SECURE = {"id": "secure-gateway", "functional-capability": "secure-gateway",
          "decomposition": {
              "functions": {"function": [
                  {"id": "fw", "config": {"id": "fw", "functional-capability": "firewall"},
                   "ports": {"port": [{"id": "a", "config": {"id": "a"}},
                                      {"id": "b", "config": {"id": "b"}}]}},
                  {"id": "nat", "config": {"id": "nat", "functional-capability": "nat"},
                   "ports": {"port": [{"id": "inside", "config": {"id": "inside"}},
                                      {"id": "outside", "config": {"id": "outside"}}]}}]},
              "saps": {"sap": [{"id": "lan", "config": {"id": "lan", "interface": {"if-name": "lan"}}},
                               {"id": "wan", "config": {"id": "wan", "interface": {"if-name": "wan"}}}]},
              "flow-rules": {"flow-rule": []}}}


def test_a_decomposition_resolves_each_part():
    resolver = Resolver(_Repository(SECURE, NATIVE, NAT, DOCKER), _offered("native", "docker"))
    chosen = resolver.resolve(_function("gw", capability="secure-gateway"))
    assert chosen.decomposed and chosen.template_id == "secure-gateway"
    leaves = {pid: r.template_id for pid, _, r in chosen.leaves("gw")}
    assert leaves == {"gw/fw": "native-firewall", "gw/nat": "native-nat"}
    assert chosen.cost == round(template_cost(NATIVE) + template_cost(NAT), 2)
    # a part that cannot run makes the decomposition unusable, saying which and why
    resolver = Resolver(_Repository(SECURE, NATIVE), _offered("native"))
    with pytest.raises(ResolveError) as refused:
        resolver.resolve(_function("gw", capability="secure-gateway"))
    assert "its part nat: no template provides the functional capability 'nat'" in \
        dict(refused.value.reasons)["secure-gateway"]


def test_a_remote_template_resolves_to_its_image_in_the_store(tmp_path):
    image = b"image" * 1000
    sha = hashlib.sha256(image).hexdigest()
    remote = _template("remote-firewall", cost=0, **{"image-uri": "fw.tgz",
                                                     "image-sha256": sha})
    index = json.dumps({"templates": [remote]}).encode()
    with FileServer({"/index.json": index, "/fw.tgz": image}) as server:
        repository = Repository(tmp_path / "nsf", tmp_path / "images", [server.url])
        repository.refresh(force=True)
        resolver = Resolver(repository, _offered("native"),
                            image_problems=repository.image_problems)
        chosen = resolver.resolve(_function())
        assert chosen.template_id == "remote-firewall"
        assert chosen.image == str(tmp_path / "images" / sha / "fw.tgz")
    # without a repository to download it from, and not in the store: not usable
    repository = Repository(tmp_path / "nsf", tmp_path / "other", [])
    repository.remote = {"remote-firewall": dict(remote, repository=None)}
    resolver = Resolver(repository, _offered("native"), image_problems=repository.image_problems)
    with pytest.raises(ResolveError) as refused:
        resolver.resolve(_function())
    assert dict(refused.value.reasons) == {"remote-firewall": (
        "its image fw.tgz is not in the image store, and no repository is configured "
        "(repository.urls)")}


def test_the_paper_s_500_personal_firewalls_fit_a_2_core_node_by_default(tmp_path):
    manager = ComputeManager(["native"], {}, Repository(tmp_path), Scheduler(cores=2),
                             cpu_allocation_ratio=DEFAULTS["compute"]["cpu-allocation-ratio"])
    resolver = Resolver(_Repository(NATIVE), _offered("native"))
    allocation = manager.allocation({})
    for n in range(500):
        resolver.resolve(_function("fw%d" % n), allocation)
    assert allocation.cpu == pytest.approx(50.0)
