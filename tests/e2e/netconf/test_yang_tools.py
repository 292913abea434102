"""Every module the server serves loads in the YANG tools its users have: yuma123's
yangdump (the parser behind yangcli), pyang and libyang's yanglint. The modules are
fetched with <get-schema> into a directory of their own, so the served set must also be
complete by itself (every import and include served)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .test_monitoring import schema_list

YANGDUMP = shutil.which("yangdump")
# the modules this project writes are held to pyang --lint; the published IETF ones as is
OURS = ("composer-", "nc-")


def fetch_all(m, directory: Path) -> list[Path]:
    """Every listed schema saved as name@revision.yang; the modules' files (the
    submodules are found through them)."""
    modules = []
    for name, version in sorted(schema_list(m)):
        text = m.get_schema(name, version=version or None).data
        path = directory / ("%s@%s.yang" % (name, version) if version else name + ".yang")
        path.write_text(text)
        if text.lstrip().startswith("module "):
            modules.append(path)
    return modules


@pytest.fixture
def fetched(nc, tmp_path):
    directory = tmp_path / "served"
    directory.mkdir()
    modules = fetch_all(nc, directory)
    assert len(modules) >= 15
    return directory, modules


@pytest.mark.skipif(YANGDUMP is None, reason="yangdump is not installed "
                    "(scripts/install-system-deps installs it)")
def test_yangdump_loads_every_served_module(fetched, tmp_path):
    directory, modules = fetched
    for module in modules:
        done = subprocess.run([YANGDUMP, "--modpath=%s" % directory, "--module=%s" % module,
                               "--output=%s" % tmp_path],
                              capture_output=True, text=True, timeout=60)
        out = done.stdout + done.stderr
        summary = re.search(r"\*\*\* (\d+) Errors, \d+ Warnings", out)
        assert done.returncode == 0 and summary and summary.group(1) == "0", \
            "%s:\n%s" % (module.name, out)


def test_pyang_loads_every_served_module_and_lints_ours(fetched):
    directory, modules = fetched
    argv = [sys.executable, "-m", "pyang", "-p", str(directory)]
    done = subprocess.run(argv + [str(p) for p in modules], capture_output=True, text=True)
    assert done.returncode == 0 and "error" not in done.stderr, done.stderr
    ours = [str(p) for p in modules if p.name.startswith(OURS)]
    done = subprocess.run(argv[:3] + ["--lint"] + argv[3:] + ours, capture_output=True,
                          text=True)
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


def test_yanglint_loads_every_served_module(fetched):
    directory, modules = fetched
    done = subprocess.run(["yanglint", "-p", str(directory), *map(str, modules)],
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr
