"""The compute driver interface: the paper's Table 5.

One driver per execution environment (native, docker, kvm, dpdk). The caller names the
instance and the node-side interface of every port (so that all node resources carry the
agent's prefix), and tags the instance with labels so that recovery can find it.

Lifecycle of an instance:
  1. create(spec): allocate (namespace, container, domain), fetch the image, make the ports;
     returns the node-side port of each function port, ready to attach to an LSI;
  2. start(instance) once its ports are attached;
  3. stop / start, pause / resume as asked; update(...) adds or removes ports;
  4. destroy(instance): stop if needed and release everything create made.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FunctionPort:
    """One port of a function: the caller picks the node-side interface name."""
    port_id: str
    vswitch_ifname: str          # node-side name, at most 15 characters
    mac_address: str | None = None
    ipv4_address: str | None = None
    ipv4_prefix_length: int | None = None
    technology: str = "veth"     # veth, tap, vhost-user, dpdk-port


@dataclass(frozen=True)
class FunctionSpec:
    """What to run: an instance of a template with its ports and parameters."""
    instance: str                # unique on the node; carries the agent's prefix
    template: dict               # the template (see nsf/*/template.json for native)
    image: str                   # package path, image reference or disk image
    ports: tuple = ()            # FunctionPort, in order
    parameters: tuple = ()       # strings handed to the function
    cpu_cores: tuple = ()        # cores to bind to
    labels: dict = field(default_factory=dict, compare=False, hash=False)
    prepared: bool = False       # create in the slot prepare() made under this instance name


@dataclass(frozen=True)
class InstanceInfo:
    """An instance the driver finds on the node."""
    instance: str
    state: str                   # created, running, stopped, paused
    labels: dict = field(default_factory=dict, compare=False, hash=False)
    ports: tuple = ()            # vswitch_ifname of each port


class ComputeDriver:
    """Base class with do-nothing hooks; a driver overrides what it supports."""

    driver_kind = "compute"
    driver_name = "base"
    execution_environment = ""   # identity in composer-types: native, docker, kvm, dpdk

    def check(self) -> None:
        """Raise PrerequisiteError when this environment cannot run here."""

    def close(self) -> None:
        """Release connections."""

    def settle(self, timeout: float | None = None) -> bool:
        """Wait for clean-up a destroy left to run in the background; False if it was not
        over after timeout seconds."""
        return True

    def check_template(self, template: dict) -> list[str]:
        """What the template needs that the node lacks (empty when it can run)."""
        return []

    def create(self, spec: FunctionSpec) -> dict[str, str]:
        """Allocate the instance and its ports; return {port_id: vswitch_ifname}."""
        raise NotImplementedError

    def prepare(self, instance: str, vswitch_ifnames: tuple, labels: dict | None = None) -> None:
        """An empty slot: whatever create() would make before running anything (for native
        functions the namespace and one port per name, node ends ready to attach), so that
        create(spec with prepared=True) later only has to fill it. A failed create of a
        prepared slot leaves the slot as it was. destroy() removes a slot."""
        raise NotImplementedError("%s functions cannot be prepared in advance"
                                  % self.execution_environment)

    def release(self, instance: str) -> None:
        """Undo a create(prepared=True): the function goes, its slot stays as prepared."""
        raise NotImplementedError("%s functions cannot be prepared in advance"
                                  % self.execution_environment)

    def start(self, instance: str) -> None:
        raise NotImplementedError

    def stop(self, instance: str) -> None:
        raise NotImplementedError

    def pause(self, instance: str) -> None:
        raise NotImplementedError

    def resume(self, instance: str) -> None:
        raise NotImplementedError

    def update(self, instance: str, add_ports: tuple = (), remove_ports: tuple = ()) -> dict[str, str]:
        """Add ports (FunctionPort) and remove ports (port ids); return the new port map."""
        raise NotImplementedError

    def destroy(self, instance: str) -> None:
        raise NotImplementedError

    def list_instances(self, labels: dict | None = None) -> list[InstanceInfo]:
        """The instances on the node whose labels include the given ones."""
        raise NotImplementedError

    def status(self, instance: str) -> str:
        raise NotImplementedError

    # --- watching (drivers/watch.py) ---

    def watch(self, watcher, sink) -> None:
        """From now on, call sink(Event) (on the watcher's thread) when a running instance
        breaks without the driver doing it: subject "function", what "lost" (a part of it
        is gone) or "exited" (its process exited). Nothing by default."""

    def unwatch(self) -> None:
        """Stop reporting."""

    def problems(self, instance: str) -> list:
        """What is wrong with a running instance, as Events ([]: nothing found): "lost",
        it must be made again; "exited", it must be restarted."""
        return []
