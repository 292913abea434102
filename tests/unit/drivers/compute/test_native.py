"""The native driver's pure parts: script environment, script discovery, port counts,
prerequisite and template checks (the node faked at its boundary: PATH, files, kernel)."""

import json

import pytest

from drivers.compute import instances
from drivers.compute import native as native_module
from drivers.compute import packages
from drivers.compute.native import NativeDriver
from drivers.compute.packages import param_env_name, script_environment
from drivers.errors import DriverError, PrerequisiteError, ScriptError

META = {
    "instance": "nfx1",
    "package_dir": "/s/native/nfx1/package",
    "run_dir": "/s/native/nfx1/run",
    "cpu_cores": [2, 3],
    "parameters": ["block-tcp-dst=23", "route=a", "route=b", "flag", "=odd"],
    "ports": [
        {"port_id": "in", "vswitch_ifname": "nfx1i", "ifname": "eth0", "mac": "02:00:00:00:00:01",
         "ipv4_address": "10.0.0.1", "ipv4_prefix_length": 24},
        {"port_id": "out", "vswitch_ifname": "nfx1o", "ifname": "eth2", "mac": "02:00:00:00:00:02",
         "ipv4_address": None, "ipv4_prefix_length": None},
    ],
}


def test_script_environment_is_exactly_the_documented_one():
    env = script_environment(META, "update", {"COMPOSER_PORTS_ADDED": "eth2"}, path="/bin")
    assert env == {
        "PATH": "/bin",
        "LC_ALL": "C",
        "COMPOSER_ACTION": "update",
        "COMPOSER_INSTANCE": "nfx1",
        "COMPOSER_PACKAGE_DIR": "/s/native/nfx1/package",
        "COMPOSER_RUN_DIR": "/s/native/nfx1/run",
        "COMPOSER_PORTS": "eth0 eth2",
        "COMPOSER_CPU_CORES": "2 3",
        "COMPOSER_PORT_0_ID": "in",
        "COMPOSER_PORT_0_IFNAME": "eth0",
        "COMPOSER_PORT_0_VSWITCH_IFNAME": "nfx1i",
        "COMPOSER_PORT_0_MAC": "02:00:00:00:00:01",
        "COMPOSER_PORT_0_IPV4": "10.0.0.1/24",
        "COMPOSER_PORT_2_ID": "out",
        "COMPOSER_PORT_2_IFNAME": "eth2",
        "COMPOSER_PORT_2_VSWITCH_IFNAME": "nfx1o",
        "COMPOSER_PORT_2_MAC": "02:00:00:00:00:02",
        "COMPOSER_PARAM_BLOCK_TCP_DST": "23",
        "COMPOSER_PARAM_ROUTE": "a\nb",
        "COMPOSER_PORTS_ADDED": "eth2",
    }


def test_param_env_names():
    assert param_env_name("block-tcp-dst") == "COMPOSER_PARAM_BLOCK_TCP_DST"
    assert param_env_name("a.b c") == "COMPOSER_PARAM_A_B_C"


def test_scripts_declared_or_found_by_name(tmp_path):
    (tmp_path / "create").write_text("")
    (tmp_path / "start.sh").write_text("")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "stop").write_text("")
    assert packages.scripts({}, tmp_path) == {"create": "create", "start": "start.sh"}
    declared = {"scripts": {"stop": "bin/stop", "start": ""}}
    assert packages.scripts(declared, tmp_path) == {"stop": "bin/stop"}
    with pytest.raises(DriverError, match="outside the package"):
        packages.scripts({"scripts": {"create": "../x"}}, tmp_path)


@pytest.mark.parametrize("template, count, ok", [
    ({}, 2, True),
    ({}, 3, False),
    ({"port-count": 1}, 1, True),
    ({"port-count": 2, "min-ports": 2, "max-ports": 64}, 9, True),
    ({"port-count": 2, "min-ports": 2, "max-ports": 64}, 1, False),
])
def test_port_count_limits(template, count, ok):
    if ok:
        packages.check_port_count(template, count, "nfx")
    else:
        with pytest.raises(DriverError, match="takes"):
            packages.check_port_count(template, count, "nfx")


@pytest.mark.parametrize("instance", ["", ".x", "-x", "a/b", "a" * 65, "a b", "ab\n"])
def test_instance_names_are_checked(tmp_path, instance):
    with pytest.raises(ValueError):
        NativeDriver(str(tmp_path))._dir(instance)


def test_check_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(native_module.shutil, "which", lambda name: None if name == "nft" else "/x")
    monkeypatch.setattr(native_module.os, "geteuid", lambda: 0)
    with pytest.raises(PrerequisiteError) as error:
        NativeDriver(str(tmp_path)).check()
    assert "missing nft (install the Debian packages nftables)" in str(error.value)


def test_check_template_with_a_faked_node(tmp_path, monkeypatch):
    monkeypatch.setattr(packages.shutil, "which",
                        lambda name: "/usr/sbin/nft" if name == "nft" else None)
    monkeypatch.setattr(packages, "_read_kernel_config",
                        lambda: {"CONFIG_NF_TABLES": "y", "CONFIG_BRIDGE_NETFILTER": "m",
                                 "CONFIG_VETH": "n"})
    monkeypatch.setattr(packages.os.path, "exists", lambda path: path == "/etc/present")
    template = {
        "execution-environment": "composer-types:native",
        "port-technology": "tap",
        "dependencies": [
            {"name": "nft", "kind": "binary"},
            {"name": "ip"},
            {"name": "nf_tables", "kind": "kernel-feature"},
            {"name": "br_netfilter", "kind": "kernel-feature"},
            {"name": "veth", "kind": "kernel-feature"},
            {"name": "CONFIG_NF_TABLES", "kind": "kernel-feature"},
            {"name": "/etc/present", "kind": "file"},
            {"name": "/etc/absent", "kind": "file"},
            {"name": "x", "kind": "magic"},
        ],
    }
    assert NativeDriver(str(tmp_path)).check_template(template) == [
        "port technology 'tap' is not supported (veth only)",
        "missing binary 'ip'",
        "missing kernel feature 'veth'",
        "missing file '/etc/absent'",
        "unknown dependency kind 'magic' for 'x'",
    ]


def test_script_error_carries_its_fields():
    error = ScriptError("create script failed with exit status 3", script="create", status=3,
                        output="no widget", resource="nfx1")
    assert (error.script, error.status, error.output, error.timed_out) == ("create", 3, "no widget", False)
    assert str(error) == "nfx1: create script failed with exit status 3 (no widget)"


def test_list_instances_of_an_empty_state_dir(tmp_path):
    assert NativeDriver(str(tmp_path)).list_instances() == []


def test_metadata_is_written_atomically(tmp_path):
    target = tmp_path / "instance.json"
    instances.atomic_write_json(target, {"b": 1, "a": [1]})
    assert json.loads(target.read_text()) == {"a": [1], "b": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["instance.json"]
