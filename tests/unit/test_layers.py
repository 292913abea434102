"""Imports run one way (STYLE.md 2): the engine uses the managers and the model, the
managers use the model, nothing below imports what is above it, and drivers never import
the agent. Read from the source (every import statement, those inside functions too),
followed through the modules each one imports."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package -> the packages it must not reach, directly or through what it imports
FORBIDDEN = {
    "agent.model": ("agent.engine", "agent.network", "agent.compute", "agent.datastore",
                    "agent.netconf"),
    "agent.network": ("agent.engine", "agent.datastore", "agent.netconf"),
    "agent.compute": ("agent.engine", "agent.datastore", "agent.netconf"),
    "drivers": ("agent",),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set:
    return imports_in(path.read_text(), module_name(path), path.name == "__init__.py")


def imports_in(source: str, name: str, is_package: bool = False) -> set:
    """The absolute names of what a module imports (relative imports resolved)."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            # "from package import module" imports the module too
            found.update("%s.%s" % (target, alias.name) for alias in node.names)
    return found


def graph() -> dict:
    modules = {}
    for top in ("agent", "drivers"):
        for path in sorted((ROOT / top).rglob("*.py")):
            modules[module_name(path)] = imports_of(path)
    return modules


def reach(start: str, edges: dict) -> dict:
    """module -> the import chain from start that reaches it."""
    chains = {start: (start,)}
    todo = [start]
    while todo:
        here = todo.pop()
        for target in edges.get(here, ()):
            # importing a.b.c runs a/__init__ and a/b/__init__ first
            parts = target.split(".")
            for n in range(1, len(parts) + 1):
                step = ".".join(parts[:n])
                if step in edges and step not in chains:
                    chains[step] = chains[here] + (step,)
                    todo.append(step)
    return chains


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


EDGES = graph()


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_nothing_below_imports_what_is_above(package):
    members = [name for name in EDGES if within(name, package)]
    assert members, "no module found in %s" % package
    problems = []
    for name in members:
        for reached, chain in reach(name, EDGES).items():
            if any(within(reached, bad) for bad in FORBIDDEN[package]):
                problems.append(" -> ".join(chain))
    assert not problems, "upward imports:\n" + "\n".join(sorted(set(problems)))


def test_the_check_sees_an_upward_import():
    """A lazy import inside a function, relative, two levels up, is found and followed."""
    source = "def f():\n    from ..engine.planner import Planner\n"
    found = imports_in(source, "agent.compute.probe")
    assert "agent.engine.planner" in found
    edges = dict(EDGES, **{"agent.compute.probe": found})
    assert "agent.engine.planner" in reach("agent.compute.probe", edges)
