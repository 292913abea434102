"""netconf-console2, as README.md shows it: hello, get, get-config, edit-config from a
file, commit, get-schema."""

import subprocess
import sys
from pathlib import Path

from lxml import etree

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "firewall-nat.xml"
CONSOLE = str(Path(sys.executable).with_name("netconf-console2"))
SFFG = "urn:composer-nc:yang:composer-sffg"


def console(server, *args):
    # --ssh-config /dev/null: without it netconf-console2 sends the password "admin" as
    # the key's passphrase, and paramiko refuses to load an unencrypted key with one
    argv = [CONSOLE, "--host", "127.0.0.1", "--port", str(server.port), "-u", "admin",
            "--privKeyFile", server.key, "--ssh-config", "/dev/null", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_hello(server):
    out = console(server, "--hello")
    assert "urn:ietf:params:netconf:capability:candidate:1.0" in out


def test_edit_config_from_a_file_commit_get_config_get(server):
    console(server, "--db", "candidate", "--edit-config", str(EXAMPLE), "--commit")
    out = console(server, "--get-config")
    data = etree.fromstring(out.encode())
    graph = data.find(".//{%s}service-graph" % SFFG)
    assert graph.findtext("{%s}id" % SFFG) == "branch-1"
    assert len(graph.findall(".//{%s}flow-rule" % SFFG)) == 10
    out = console(server, "--get", "-x", "/service-graphs/service-graph/config/name")
    assert "Branch office 1" in out
    assert "<flow-rule>" not in out


def test_get_schema(server):
    out = console(server, "--get-schema", "composer-sffg")
    assert "module composer-sffg" in out
    assert "grouping sap-config" in out
