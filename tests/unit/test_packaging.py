"""What the project declares it needs is what its code uses: no dead dependency."""

import ast
import configparser
import importlib.metadata
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "drivers", "nsf", "dpdk_ext", "bindings")

# Declared, and used other than by an import in the code.
NOT_IMPORTED = {
    "pyang": "run as `python -m pyang` (agent/tools/bindings.py); its IETF modules are "
             "read from its install directory (agent/model/schema.py)",
    "pyzmq": "the ZeroMQ feed of the node's events (issue 16) is not built yet",
}
# Pinned in requirements.txt for a reproducible .venv, imported by no file of ours.
PINNED_ONLY = {
    "setuptools": "builds the editable install",
    "wheel": "builds the editable install",
    "cryptography": "asyncssh's and paramiko's, pinned to a release that builds here",
    "netconf-console2": "a client the e2e tests run as a command",
    "six": "netconf-console2 imports it without declaring it",
    "scrapli": "scrapli-netconf's own, pinned to the release it was tested with",
    "pytest-timeout": "a pytest plugin (setup.cfg: timeout)",
}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()          # PEP 503


def _name(requirement: str) -> str:
    return _normal(re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0])


def _modules_of() -> dict:
    """distribution name -> its top-level import names."""
    out: dict = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            out.setdefault(_normal(dist), set()).add(module)
    return out


def _imports(dirs) -> set:
    found = set()
    for directory in dirs:
        for path in (ROOT / directory).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found


def install_requires() -> list:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return [_name(line) for line in parser["options"]["install_requires"].splitlines()
            if line.strip()]


def test_every_declared_dependency_is_imported_by_the_package():
    modules, used = _modules_of(), _imports(PACKAGES)
    unused = [name for name in install_requires()
              if name not in NOT_IMPORTED and not modules.get(name, set()) & used]
    assert unused == []


def test_every_pinned_requirement_is_used():
    modules, used = _modules_of(), _imports(PACKAGES + ("tests", "bench"))
    declared = set(install_requires())
    lines = [line for line in (ROOT / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    unused = [name for name in map(_name, lines)
              if name not in declared and name not in PINNED_ONLY
              and not modules.get(name, set()) & used]
    assert unused == []
