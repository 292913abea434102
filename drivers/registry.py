"""Drivers register by name and are chosen at run time.

    @register("vswitch", "ovs")
    class OVSDriver(VSwitchDriver): ...

    driver = create("vswitch", "ovs", **options)

Importing a driver module registers it; `create` imports the built-in modules of a kind
on first use, so no driver is imported before it is asked for.
"""

import importlib

from .errors import UnknownDriver

_REGISTRY: dict[tuple[str, str], type] = {}

# Built-in driver modules per kind, imported lazily by `create` and `names`.
BUILTIN_MODULES = {
    "vswitch": ("drivers.vswitch.ovs",),
    "compute": ("drivers.compute.native", "drivers.compute.docker", "drivers.compute.kvm",
                "drivers.compute.dpdk"),
}


def register(kind: str, name: str):
    """Class decorator: make the class the driver `name` of `kind`."""

    def decorate(cls):
        _REGISTRY[(kind, name)] = cls
        cls.driver_kind = kind
        cls.driver_name = name
        return cls

    return decorate


def _import_builtins(kind: str) -> None:
    for module in BUILTIN_MODULES.get(kind, ()):
        try:
            importlib.import_module(module)
        except ImportError:
            # A built-in driver whose module is absent simply is not offered.
            pass


def lookup(kind: str, name: str) -> type:
    if (kind, name) not in _REGISTRY:
        _import_builtins(kind)
    try:
        return _REGISTRY[(kind, name)]
    except KeyError:
        raise UnknownDriver("no %s driver named %r (known: %s)"
                            % (kind, name, ", ".join(names(kind)) or "none")) from None


def create(kind: str, name: str, **options):
    """A new driver instance of `kind` registered as `name`."""
    return lookup(kind, name)(**options)


def names(kind: str) -> list[str]:
    _import_builtins(kind)
    return sorted(n for (k, n) in _REGISTRY if k == kind)
