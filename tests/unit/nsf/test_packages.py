"""The native function packages: reproducible archives, complete templates, and the rules
and routes their scripts derive from parameters (pure sh, no root needed)."""

import hashlib
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from nsf import packages

SHIPPED = ("bridge", "firewall", "nat", "router")
TEMPLATE_KEYS = {"id", "description", "functional-capability", "execution-environment",
                 "port-count", "port-technology", "cpu", "memory", "dependencies", "scripts",
                 "timeout"}


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_build_is_reproducible(tmp_path):
    first = packages.build(tmp_path / "a")
    second = packages.build(tmp_path / "b")
    assert sorted(first) == list(SHIPPED)
    for name in SHIPPED:
        assert Path(first[name]).name == "%s.tgz" % name
        assert _digest(first[name]) == _digest(second[name]), name


def test_a_build_of_unchanged_sources_writes_nothing(tmp_path, monkeypatch):
    """An agent starting on a full state disk finds its packages there, unchanged."""
    built = packages.build(tmp_path)

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Path, "write_bytes", no_space)
    assert packages.build(tmp_path) == built
    assert sorted(p.name for p in tmp_path.iterdir()) == ["%s.tgz" % n for n in SHIPPED]


def test_only_builds_the_named_packages(tmp_path):
    assert list(packages.build(tmp_path, only=["nat"])) == ["nat"]
    with pytest.raises(ValueError, match="no package nosuch"):
        packages.build(tmp_path, only=["nosuch"])


@pytest.mark.parametrize("name", SHIPPED)
def test_archive_members_and_template(tmp_path, name):
    path = packages.build(tmp_path, only=[name])[name]
    template = packages.load_template(path)
    source = json.loads((packages.SOURCE_DIR / name / "template.json").read_text())
    assert template == source
    assert TEMPLATE_KEYS <= set(template)
    assert template["execution-environment"] == "native"
    assert template["port-technology"] == "veth"
    assert template["functional-capability"] == name
    assert all(set(d) == {"name", "kind"} for d in template["dependencies"])
    with tarfile.open(path) as tar:
        members = {m.name: m for m in tar.getmembers()}
    for member in members.values():
        assert (member.uid, member.gid, member.mtime, member.uname) == (0, 0, 0, "")
        assert not member.name.startswith(("/", "..")) and member.isfile()
    assert "template.json" in members
    for step, script in template["scripts"].items():
        assert step in ("create", "start", "stop", "update", "destroy", "pause", "resume")
        assert members[script].mode == 0o755, script


def test_load_template_reads_a_source_directory_too():
    assert packages.load_template(packages.SOURCE_DIR / "nat")["id"] == "native-nat"


def test_pack_refuses_a_directory_without_template(tmp_path):
    with pytest.raises(ValueError, match="no template.json"):
        packages.pack(tmp_path, tmp_path / "x.tgz")
    (tmp_path / "template.json").write_text('{"id": "x"}')
    with pytest.raises(ValueError, match="no functional-capability"):
        packages.pack(tmp_path, tmp_path / "x.tgz")


def test_main_builds_into_a_directory(tmp_path, capsys):
    assert packages.main([str(tmp_path)]) == 0
    assert sorted(line.split()[0] for line in capsys.readouterr().out.splitlines()) == list(SHIPPED)
    assert packages.main([]) == 2


def _sh(package: str, function: str, *params: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", '. ./lib.sh; %s "$@"' % function, "sh", *params],
                          cwd=packages.SOURCE_DIR / package, capture_output=True, text=True)


def test_firewall_ruleset_from_parameters():
    result = _sh("firewall", "ruleset", "default=drop", "block-src=10.0.0.5",
                 "block-tcp-dst=23", "allow-tcp-dst=80", "allow-udp-dst=1000-2000",
                 "allow-icmp", "block-udp-src=53", "allow-dst=10.1.0.0/16")
    assert result.returncode == 0, result.stderr
    assert result.stdout == """\
table inet composer_fw {
    chain forward {
        type filter hook forward priority filter; policy drop;
        ip saddr 10.0.0.5 counter drop
        tcp dport 23 counter drop
        udp sport 53 counter drop
        ct state established,related accept
        tcp dport 80 counter accept
        udp dport 1000-2000 counter accept
        ip protocol icmp counter accept
        ip daddr 10.1.0.0/16 counter accept
    }
}
"""


def test_firewall_update_replaces_the_table_in_one_transaction():
    result = _sh("firewall", "replacing", "table inet composer_fw { }")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("table inet composer_fw\ndelete table inet composer_fw\n"
                             "table inet composer_fw { }\n")


def test_firewall_default_is_accept_without_rules():
    result = _sh("firewall", "ruleset")
    assert "policy accept;\n        ct state established,related accept\n    }" in result.stdout


@pytest.mark.parametrize("param, message", [
    ("block-tcp-dst=23;flush ruleset", "bad port"),
    ("block-tcp-dst=", "bad port"),
    ("allow-udp-dst=1-2-3", "bad port"),
    ("block-src=10.0.0.1 drop", "bad IPv4"),
    ("default=reject", "default must be accept or drop"),
    ("block-http", "unknown parameter"),
])
def test_firewall_refuses_bad_parameters(param, message):
    result = _sh("firewall", "ruleset", param)
    assert result.returncode == 2
    assert message in result.stderr


def test_router_routes_from_parameters():
    result = _sh("router", "routes", "route=10.2.0.0/24,via=10.1.0.2",
                 "route=default,via=10.1.0.254,dev=eth1", "route=10.3.0.0/16,dev=eth2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "route replace 10.2.0.0/24 via 10.1.0.2",
        "route replace default via 10.1.0.254 dev eth1",
        "route replace 10.3.0.0/16 dev eth2",
    ]


@pytest.mark.parametrize("param, message", [
    ("route=10.2.0.0/24", "needs via= or dev="),
    ("route=10.2.0.0/24,gw=1.2.3.4", "bad route option"),
    ("route=10.2.0.0/24,via=1.2.3.4;reboot", "bad gateway"),
    ("route=a.b,via=1.2.3.4", "bad destination"),
    ("gateway=1.2.3.4", "unknown parameter"),
])
def test_router_refuses_bad_routes(param, message):
    result = _sh("router", "routes", param)
    assert result.returncode == 2
    assert message in result.stderr
