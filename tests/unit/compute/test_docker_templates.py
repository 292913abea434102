"""The shipped docker templates beside the native ones in the repository: one capability,
two implementations; the resolver takes native while it can run (cheaper), docker when
native cannot or when the graph names the docker template (agent/compute)."""

import pytest

from agent.compute.repository import Repository
from agent.compute.resolver import Resolver, ResolveError
from agent.model.graph import Function, Port


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    where = tmp_path_factory.mktemp("repository")
    repository = Repository(where / "nsf")
    repository.load_builtin()
    repository.load_builtin_images(where / "images")
    return repository


def _function(capability, *ports, template=None, parameters=()):
    return Function("f", capability, template=template, parameters=tuple(parameters),
                    ports=tuple(Port(p) for p in ports))


def test_firewall_and_nat_come_in_both_environments(repository):
    by_capability = {c: sorted(t["id"] for t in ts)
                     for c, ts in repository.capabilities().items()}
    assert by_capability["firewall"] == ["docker-firewall", "native-firewall"]
    assert by_capability["nat"] == ["docker-nat", "native-nat"]
    docker = repository.get("docker-firewall")
    assert docker["execution-environment"] == "docker" and docker["source"] == "built-in"
    assert docker["image-uri"].endswith("firewall.docker.tar")


def test_native_while_it_can_run_docker_when_it_cannot(repository):
    fw = _function("firewall", "lan", "wan", parameters=["block-tcp-dst=23"])
    assert Resolver(repository, lambda t: []).resolve(fw).template_id == "native-firewall"

    def no_nft(template):
        return ["binary nft is missing"] if template["execution-environment"] == "native" \
            else []
    chosen = Resolver(repository, no_nft).resolve(fw)
    assert (chosen.template_id, chosen.environment) == ("docker-firewall", "docker")
    assert chosen.image.endswith("firewall.docker.tar")


def test_a_graph_can_name_the_docker_template(repository):
    fw = _function("firewall", "lan", "wan", template="docker-firewall")
    assert Resolver(repository, lambda t: []).resolve(fw).environment == "docker"


def test_three_ports_only_the_docker_firewall_takes(repository):
    fw = _function("firewall", "lan", "wan", "dmz")
    assert Resolver(repository, lambda t: []).resolve(fw).template_id == "docker-firewall"


def test_docker_not_offered_names_why(repository):
    fw = _function("firewall", "lan", "wan", template="docker-firewall")

    def no_docker(template):
        return ["execution environment docker is not enabled on this node"] \
            if template["execution-environment"] == "docker" else []
    with pytest.raises(ResolveError) as refused:
        Resolver(repository, no_docker).resolve(fw)
    assert "docker-firewall: execution environment docker is not enabled" in \
        refused.value.message
