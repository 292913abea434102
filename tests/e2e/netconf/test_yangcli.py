"""yuma123's yangcli, scripted (--batch-mode --run-script), as a user drives it: connect
with the admin key, load every module the server announces (its automatic schema
loading fetches those it lacks with <get-schema>), get, edit the candidate, commit, and
fetch every schema by name and revision."""

import re
import shutil
import subprocess

import pytest

from .conftest import NS, connect
from .test_monitoring import schema_list
from .test_yang_tools import YUMA_CANNOT, unexpected_yuma_errors

YANGCLI = shutil.which("yangcli")
pytestmark = pytest.mark.skipif(YANGCLI is None, reason="yangcli is not installed "
                                "(scripts/install-system-deps installs it)")


def yangcli(server, script: str, tmp_path, *options) -> str:
    """yangcli's output for a script; fails on a non-zero exit."""
    path = tmp_path / "script.yangcli"
    path.write_text(script)
    argv = [YANGCLI, "--server=127.0.0.1", "--ncport=%d" % server.port, "--user=admin",
            "--private-key=%s" % server.key, "--public-key=%s.pub" % server.key,
            "--batch-mode", "--run-script=%s" % path, "--autohistory=false",
            "--autoaliases=false", "--autouservars=false", "--timeout=60", *options]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    return out


def problems(out: str) -> list[str]:
    """yangcli's error lines: its own errors, a module's parse errors, an rpc-error; but
    yuma123's known limits (it cannot parse RFC 8639's module: test_yang_tools.py)."""
    found = [line for line in out.splitlines()
             if re.search(r"^\s*Error:|: error\(\d+\)|RPC Error Reply|^\s*rpc-error", line)]
    unexpected = set(unexpected_yuma_errors("\n".join(found)))
    return [line for line in found if line.strip() in unexpected]


def test_yangcli_session(server, tmp_path):
    with connect(server) as m:
        listed = sorted(schema_list(m))
    script = "\n".join([
        "xget /top",
        "merge /top/name value=from-yangcli",
        "merge /parts/item[name='bolt']/weight value=12",
        "commit",
        "sget-config /top source=running",
        "sget-config /parts source=running",
        *("get-schema identifier=%s version=%s format=yang" % key for key in listed),
    ]) + "\n"
    out = yangcli(server, script, tmp_path, "--log-level=debug")
    assert problems(out) == []
    assert "NETCONF session established for admin" in out
    # automatic schema loading: every module the server has and yangcli does not was
    # fetched and loaded, the submodule with its module
    fetched = set(re.findall(r"Got autoload reply for '([\w.-]+)'", out))
    assert {"composer-sffg", "composer-domain", "composer-templates", "composer-types",
            "nc-test", "nc-parts", "nc-parts-items"} <= fetched
    failed = re.findall(r"Auto-load for module '([\w-]+)' failed", out)
    assert set(failed) <= set(YUMA_CANNOT), failed        # yuma123's known limits only
    # the get, the commit, and the configuration read back
    assert re.search(r"top \{\s+name from-yangcli\s+\}", out), out
    assert re.search(r"item bolt \{\s+name bolt\s+weight 12\s+\}", out), out
    with connect(server) as m:
        running = m.get_config(source="running").data_ele
        assert running.findtext("{%s}top/{%s}name" % (NS, NS)) == "from-yangcli"
    # every schema, by name and revision
    for name, version in listed:
        kind = "module|submodule"
        assert re.search(r"data '(%s) %s \{" % (kind, re.escape(name)), out), name
