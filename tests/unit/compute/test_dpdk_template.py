"""The shipped DPDK forwarder in the repository (when the dpdk environment is enabled):
the capability "forwarder" resolves to it, its forward-mode parameter is checked, and it
asks for a whole core (the scheduler binds it; testpmd busy-polls)."""

import pytest

from agent.compute.repository import Repository
from agent.compute.resolver import Resolver, ResolveError
from agent.model.graph import Function, Port


@pytest.fixture
def repository(tmp_path):
    repository = Repository(tmp_path / "nsf")
    repository.load_builtin_dpdk(memory=64)
    return repository


def _forwarder(*parameters, ports=("in", "out")):
    return Function("f", "forwarder", parameters=tuple(parameters),
                    ports=tuple(Port(p) for p in ports))


def test_the_forwarder_capability_resolves_to_testpmd(repository):
    resolution = Resolver(repository, lambda t: []).resolve(_forwarder("forward-mode=mac"))
    assert (resolution.template_id, resolution.environment) == ("dpdk-forwarder", "dpdk")
    assert resolution.template["memory"] == 64 and resolution.template["cpu"] == 1
    assert resolution.template["source"] == "built-in"


def test_bad_parameters_and_port_counts_are_refused(repository):
    resolver = Resolver(repository, lambda t: [])
    with pytest.raises(ResolveError) as refused:
        resolver.resolve(_forwarder("forward-mode=csum"))
    assert refused.value.parameter == "forward-mode=csum"
    with pytest.raises(ResolveError, match="takes 2 ports, the function has 3"):
        resolver.resolve(_forwarder(ports=("a", "b", "c")))


def test_the_environment_missing_is_named(repository):
    resolver = Resolver(repository, lambda t: ["dpdk-testpmd is missing"])
    with pytest.raises(ResolveError, match="dpdk-forwarder: dpdk-testpmd is missing"):
        resolver.resolve(_forwarder())
