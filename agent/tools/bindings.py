"""Generate, check and lint: the one command behind `make bindings`.

    python -m agent.tools.bindings generate   # rewrite bindings/ from yang/
    python -m agent.tools.bindings check      # fail if bindings/ is stale
    python -m agent.tools.bindings lint       # pyang --lint and yanglint, no warnings allowed
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyangbind

from agent.model import schema

BINDINGS_DIR = Path(__file__).resolve().parent.parent.parent / "bindings"

# One python module per YANG module with data nodes; composer-types only has identities.
GENERATED = {
    "composer-sffg": "composer_sffg.py",
    "composer-domain": "composer_domain.py",
    "composer-templates": "composer_templates.py",
}


def _pyang_argv(*args) -> list[str]:
    return [sys.executable, "-m", "pyang", *args]


def _search_path() -> str:
    return os.pathsep.join(str(d) for d in schema.search_dirs())


def render(module: str) -> str:
    """The pyangbind source for one module, as text."""
    plugin_dir = Path(pyangbind.__file__).parent / "plugin"
    path = schema.project_yang_dir() / (module + ".yang")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "binding.py"
        subprocess.run(
            _pyang_argv("--plugindir", str(plugin_dir), "-f", "pybind", "-p", _search_path(),
                        "-o", str(out), str(path)),
            check=True)
        return out.read_text()


def generate() -> None:
    for module, filename in GENERATED.items():
        (BINDINGS_DIR / filename).write_text(render(module))
        print("wrote", BINDINGS_DIR / filename)


def stale() -> list[str]:
    """The binding files that differ from what yang/ generates now."""
    out = []
    for module, filename in GENERATED.items():
        target = BINDINGS_DIR / filename
        if not target.exists() or target.read_text() != render(module):
            out.append(str(target))
    return out


def lint() -> list[str]:
    """Messages from pyang --lint and yanglint; empty when the modules are clean."""
    files = [str(p) for p in schema.module_files()]
    messages = []
    pyang = subprocess.run(_pyang_argv("--lint", "-p", _search_path(), *files),
                           capture_output=True, text=True)
    messages += [line for line in (pyang.stdout + pyang.stderr).splitlines() if line.strip()]
    if pyang.returncode != 0 and not messages:
        messages.append("pyang exited with %d" % pyang.returncode)
    yanglint_argv = ["yanglint"]
    for directory in schema.search_dirs():
        yanglint_argv += ["-p", str(directory)]
    yanglint = subprocess.run(yanglint_argv + files, capture_output=True, text=True)
    messages += [line for line in (yanglint.stdout + yanglint.stderr).splitlines() if line.strip()]
    if yanglint.returncode != 0 and not messages:
        messages.append("yanglint exited with %d" % yanglint.returncode)
    return messages


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("generate", "check", "lint"))
    args = parser.parse_args(argv)
    if args.command == "generate":
        generate()
        return 0
    if args.command == "check":
        files = stale()
        for name in files:
            print("stale:", name, "(run `make bindings`)")
        return 1 if files else 0
    messages = lint()
    for line in messages:
        print(line)
    return 1 if messages else 0


if __name__ == "__main__":
    sys.exit(main())
