"""The docker driver's pure parts: what it says when dockerd does not answer, its template
checks, how it attaches ports, and the container it asks dockerd for (the API faked at its
boundary: the docker SDK's APIClient)."""

import pytest

from drivers.compute.base import FunctionPort, FunctionSpec, PortAttachment
from drivers.compute.docker import DockerDriver, _check_name
from drivers.errors import DriverError, PrerequisiteError

TEMPLATE = {"id": "docker-firewall", "execution-environment": "docker",
            "port-technology": "veth", "image-uri": "composer-nsf/firewall:latest",
            "memory": 16, "cpu": 0.25, "sysctls": {"net.ipv4.ip_forward": "1"},
            "port-count": 2, "dependencies": []}


def test_a_dockerd_that_does_not_answer_is_named_with_advice(tmp_path):
    host = "unix://%s" % (tmp_path / "nosuch.sock")
    driver = DockerDriver(str(tmp_path), host=host)
    with pytest.raises(PrerequisiteError) as missing:
        driver.check()
    assert host in str(missing.value)
    assert "docker.io" in str(missing.value) and "docker.mode" in str(missing.value)


@pytest.mark.parametrize("change, problem", [
    ({"execution-environment": "composer-types:native"}, "execution environment "
                                                         "'composer-types:native' is not docker"),
    ({"port-technology": "tap"}, "port technology 'tap' is not supported (veth only)"),
    ({"image-uri": ""}, "the template names no image"),
    ({"image-uri": "/nowhere/firewall.docker.tar"},
     "image archive /nowhere/firewall.docker.tar is missing"),
])
def test_check_template_names_what_is_wrong(tmp_path, change, problem):
    driver = DockerDriver(str(tmp_path))
    assert driver.check_template(TEMPLATE) == []
    assert driver.check_template(dict(TEMPLATE, **change)) == [problem]


def test_ports_are_veth_ends_attached_as_they_are(tmp_path):
    driver = DockerDriver(str(tmp_path))
    ports = (FunctionPort("in", "cncpa"), FunctionPort("out", "cncpb"))
    assert driver.port_attachments(TEMPLATE, ports) == (PortAttachment("in", "cncpa"),
                                                        PortAttachment("out", "cncpb"))


@pytest.mark.parametrize("name", ["", "-x", ".x", None, 5])
def test_container_names_are_checked(name):
    with pytest.raises(DriverError):
        _check_name(name)


class FakeAPI:
    """The APIClient calls _create_container makes, recorded."""

    def __init__(self):
        self.calls = []

    def create_host_config(self, **kwargs):
        self.calls.append(("host_config", kwargs))
        return kwargs

    def create_container(self, image, **kwargs):
        self.calls.append(("create", image, kwargs))
        return {"Id": "c0ffee"}


def test_the_container_asked_for(tmp_path):
    driver = DockerDriver(str(tmp_path), prefix="cnc")
    api = FakeAPI()
    driver._local.client = api
    spec = FunctionSpec(instance="cncf1", template=TEMPLATE, image="", ports=(),
                        parameters=("block-tcp-dst=23", "default=drop"), cpu_cores=(2, 3),
                        labels={"composer-graph": "g1"})
    meta = {"instance": "cncf1", "dir": str(tmp_path / "docker" / "cncf1")}
    assert driver._create_container(meta, spec, "sha256:abc") == "c0ffee"
    (_, host_config), (_, image, create) = api.calls
    assert host_config == {
        "network_mode": "none", "ipc_mode": "none", "cap_add": ["NET_ADMIN", "NET_RAW"],
        "sysctls": {"net.ipv4.ip_forward": "1"},
        "binds": {str(tmp_path / "docker" / "cncf1" / "run"):
                  {"bind": "/composer/run", "mode": "rw"}},
        "log_config": {"type": "json-file", "config": {"max-size": "1m", "max-file": "1"}},
        "mem_limit": 16 * 1024 * 1024, "nano_cpus": 250_000_000, "cpuset_cpus": "2,3"}
    assert image == "sha256:abc"
    assert create["name"] == "cncf1"
    assert create["network_disabled"] is True       # no sandbox, no prestart hook
    assert create["command"] == ["block-tcp-dst=23", "default=drop"]
    assert create["labels"] == {"composer-graph": "g1", "composer.prefix": "cnc",
                                "composer.instance": "cncf1"}
    assert create["environment"] == {
        "COMPOSER_INSTANCE": "cncf1", "COMPOSER_CPU_CORES": "2 3",
        "COMPOSER_PARAM_BLOCK_TCP_DST": "23", "COMPOSER_PARAM_DEFAULT": "drop"}
