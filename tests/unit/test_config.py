"""The agent's configuration: the commented example holds every NETCONF setting with its
default, and the limits are checked."""

from pathlib import Path

import pytest

from agent.config import DEFAULTS, ConfigError, load

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "composer-agent.toml"


def test_the_example_names_every_netconf_setting_with_its_default():
    example = load(EXAMPLE).data["netconf"]
    for key, default in DEFAULTS["netconf"].items():
        assert key in EXAMPLE.read_text(), key
        if key not in ("address", "port"):
            assert example[key] == default, key


@pytest.mark.parametrize("setting, value", [
    ("max-elements", 0), ("max-depth", 257), ("max-attributes", 0), ("max-chunks", 0),
    ("max-sessions", 0), ("max-sessions-per-user", -1), ("max-unauthenticated", 0),
    ("login-timeout", 0), ("login-failure-delay", -1.0), ("login-failure-delay", "1"),
    ("login-failure-delay", True), ("login-block-time", -5), ("max-filter-selections", 0),
])
def test_netconf_limits_are_checked(setting, value):
    with pytest.raises(ConfigError, match="netconf.%s" % setting):
        load(overrides={"netconf": {setting: value}})


def test_a_whole_number_is_a_valid_delay():
    assert load(overrides={"netconf": {"login-failure-delay": 2}}).get(
        "netconf", "login-failure-delay") == 2


def test_repair_defaults():
    repair = load().data["repair"]
    assert repair == {"enabled": True, "attempts": 5, "backoff-ms": 500,
                      "backoff-max-ms": 30000, "stable-seconds": 60}
    assert load(EXAMPLE).data["repair"] == repair


@pytest.mark.parametrize("bad, message", [
    ({"attempts": 0}, "repair.attempts"),
    ({"backoff-ms": 0}, "repair.backoff-ms"),
    ({"backoff-ms": 5000, "backoff-max-ms": 1000}, "repair.backoff-ms"),
    ({"stable-seconds": -1}, "repair.stable-seconds"),
    ({"enabled": "yes"}, "repair.enabled must be true or false"),
    ({"restarts": 3}, "unknown setting repair.restarts"),
])
def test_bad_repair_settings_are_refused(bad, message):
    with pytest.raises(ConfigError) as refused:
        load(overrides={"repair": bad})
    assert message in str(refused.value)


def test_docker_defaults_and_the_example():
    docker = load().data["docker"]
    assert docker == {"mode": "private", "host": "unix:///run/docker.sock", "run-dir": "",
                      "runtime": "auto"}
    assert load(EXAMPLE).data["docker"] == docker
    assert load().docker_run_dir == Path("/var/lib/composer-agent/dockerd")


@pytest.mark.parametrize("bad, message", [
    ({"mode": "shared"}, "docker.mode must be 'private' or 'existing'"),
    ({"runtime": "kata"}, "docker.runtime must be 'auto', 'crun' or 'runc'"),
    ({"host": 5}, "docker.host must be a string"),
    ({"socket": "x"}, "unknown setting docker.socket"),
])
def test_bad_docker_settings_are_refused(bad, message):
    with pytest.raises(ConfigError) as refused:
        load(overrides={"docker": bad})
    assert message in str(refused.value)


def test_dpdk_defaults_and_the_example():
    dpdk = load().data["dpdk"]
    assert dpdk == {"port-driver": "af_packet", "hugepages": "auto", "memory": 128}
    assert load(EXAMPLE).data["dpdk"] == dpdk


@pytest.mark.parametrize("bad, message", [
    ({"port-driver": "memif"}, "dpdk.port-driver must be 'af_packet' or 'af_xdp'"),
    ({"hugepages": "maybe"}, "dpdk.hugepages must be 'auto', 'yes' or 'no'"),
    ({"memory": 8}, "dpdk.memory must be within 16..65536"),
    ({"memory": "lots"}, "dpdk.memory must be"),
])
def test_bad_dpdk_settings_are_refused(bad, message):
    with pytest.raises(ConfigError) as refused:
        load(overrides={"dpdk": bad})
    assert message in str(refused.value)


def test_resolver_and_repository_defaults_are_in_the_example():
    example = load(EXAMPLE).data
    for section, keys in (("compute", ("reserved-memory", "cpu-allocation-ratio",
                                       "environment-costs")),
                          ("repository", ("urls", "timeout", "refresh-seconds"))):
        for key in keys:
            assert example[section][key] == DEFAULTS[section][key], (section, key)
    assert load(overrides={"compute": {"environment-costs": {"docker": 5}}}).get(
        "compute", "environment-costs") == {"docker": 5}


@pytest.mark.parametrize("section, bad, message", [
    ("compute", {"reserved-memory": -1}, "compute.reserved-memory"),
    ("compute", {"cpu-allocation-ratio": 0}, "compute.cpu-allocation-ratio"),
    ("compute", {"environment-costs": {"lxc": 3}}, "compute.environment-costs: 'lxc'"),
    ("compute", {"environment-costs": {"docker": -1}}, "compute.environment-costs: 'docker'"),
    ("repository", {"urls": ["ftp://x/"]}, "repository.urls: 'ftp://x/'"),
    ("repository", {"timeout": 0}, "repository.timeout"),
    ("repository", {"refresh-seconds": -1}, "repository.refresh-seconds"),
])
def test_bad_resolver_and_repository_settings_are_refused(section, bad, message):
    with pytest.raises(ConfigError) as refused:
        load(overrides={section: bad})
    assert message in str(refused.value)


@pytest.mark.parametrize("section, setting, value", [
    ("publish", "zmq-endpoint", "127.0.0.1:5556"), ("publish", "zmq", "yes"),
    ("notifications", "max-subscriptions", -1), ("notifications", "push-min-period", 0),
    ("alarms", "memory-percent", 101), ("alarms", "interval", 0.0),
    ("alarms", "resource-step", -1),
])
def test_publishing_settings_are_checked(section, setting, value):
    with pytest.raises(ConfigError, match="%s.%s" % (section, setting)):
        load(overrides={section: {setting: value}})


def test_the_example_has_the_publishing_settings():
    import tomllib
    example = tomllib.loads(EXAMPLE.read_text())
    assert example["publish"] == DEFAULTS["publish"]
    assert example["alarms"] == DEFAULTS["alarms"]
    for key in ("max-subscriptions", "push-min-period"):
        assert example["notifications"][key] == DEFAULTS["notifications"][key]
