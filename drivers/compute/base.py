"""The compute driver interface: the paper's Table 5, one driver per execution environment.

A driver runs service-function instances of one environment (native, docker, kvm, dpdk).
It registers by name (drivers/registry.py: @register("compute", "<environment>")), is
built with its options (ComputeService.driver_options), checks its prerequisites lazily
(check) and says exactly what is missing. It never imports the agent.

The caller (agent/compute/manager.py) names the instance and the node-side name of every
port, so that everything on the node carries the agent's prefix, and labels the instance
so that recovery finds it (list_instances). A new driver subclasses ComputeDriver and
implements the lifecycle; tests/integration/compute/test_conformance.py is the suite it
must pass (add a Backend for it in tests/integration/compute/backends.py).

Lifecycle of an instance (numbered where order matters):
  0. fetch(spec), optional and maybe never: the slow part that belongs to no instance (an
     image downloaded, imported, converted), run before the transaction that creates the
     instance, without the engine's lock, possibly at the same time as anything else and
     for a spec that is never created. Idempotent; no undo (the driver's image store is a
     cache). create() must work without it (and then does it itself).
  1. create(spec): allocate the instance (namespace, container, domain) and its ports;
     all or nothing: a create that fails leaves nothing behind. Returns how each port is
     attached to the vSwitch (PortAttachment), exactly what port_attachments(spec.template,
     spec.ports) said before anything was made (the planner plans with that);
  2. the caller attaches the ports to the graph-LSI, then start(instance): the function
     runs (its processes, or its VM booted) when start returns;
  3. stop / start, pause / resume as asked; update(...) adds or removes ports (all or
     nothing for the ports);
  4. destroy(instance): stop if needed and release everything create made, the node-side
     ports too. Nothing of the instance is left once destroy returns, except what
     settle() waits for (work the kernel finishes in the background).
Every step has an undo the engine runs when a later step of the same transaction fails:
create <-> destroy, start <-> stop, pause <-> resume, update(add, remove) <-> update(remove,
add). A step asked twice is done once: start of a running instance, stop of a stopped or
created one, pause of a paused one return at once.

Which operations a driver must implement: create, start, stop, destroy, list_instances,
status. pause, resume and update raise NotSupported unless the driver overrides them
(the commit that needs them fails with a clear error). Everything else has a default.

Optional capabilities beyond Table 5 are declared in `capabilities`:
  PREPARED_SLOTS: prepare / create_prepared / release (see PreparedSlotsDriver); the
    engine's pool of prepared slots (agent/engine/spares.py) uses only drivers that
    declare it.

Threads: operations on different instances may run at the same time (a commit creates and
starts its functions in parallel, `compute.parallel-starts`); a driver serialises those on
one instance. fetch and the read-only calls (status, list_instances, problems) may run at
any time.

Usage: usage(instance) says what a running (or paused) instance uses of the node now, a
drivers/compute/usage.Usage (CPU time so far, resident memory), or None when it is not
running or the driver does not measure it (the default). It is read-only and cheap (a few
/proc or cgroup files, one libvirt call): the agent samples it every alarms interval.

Watching (drivers/watch.py, and drivers/compute/watching.py for the common part): after
watch(watcher, sink) a driver calls sink(Event) on the watcher's thread when a running
instance breaks without the driver doing it: Event(FUNCTION, instance, LOST, detail) when
a part of it is gone (namespace, container, domain, the node side of a port: it must be
made again), Event(FUNCTION, instance, EXITED, detail) when a process it ran exited (it
must be started again). problems(instance) says the same on demand (the converger's check
and recovery's); a paused instance is not broken.
"""

from dataclasses import dataclass, field

from ..errors import NotSupported, ResourceNotFound

# --- how a port is attached to the vSwitch (PortAttachment.kind) ---------------------------

SYSTEM = "system"                    # a netdev in the node's namespace the vSwitch attaches as
                                     # it is: a veth end, or a tap a hypervisor holds open
TAP = "tap"                          # a tap device in the node's namespace that the vSwitch
                                     # opens itself (made persistent by the driver)
VHOST_USER = "dpdkvhostuser"         # vhost-user, the vSwitch serves the socket (OVS-DPDK)
VHOST_USER_CLIENT = "dpdkvhostuserclient"  # vhost-user, the function serves the socket at
                                     # options["vhost-server-path"] (OVS-DPDK)
MEMIF = "memif"                      # a DPDK memif: options "socket" (path), "id" (default
                                     # 0), "role" of the vSwitch ("server" default, "client")
ATTACHMENT_KINDS = (SYSTEM, TAP, VHOST_USER, VHOST_USER_CLIENT, MEMIF)

# --- optional capabilities (ComputeDriver.capabilities) ------------------------------------

PREPARED_SLOTS = "prepared-slots"


@dataclass(frozen=True)
class FunctionPort:
    """One port of a function: the caller picks the node-side interface name."""
    port_id: str
    vswitch_ifname: str          # node-side name, at most 15 characters
    mac_address: str | None = None
    ipv4_address: str | None = None
    ipv4_prefix_length: int | None = None
    technology: str = "veth"     # what the template asks for: veth, tap, vhost-user, memif


@dataclass(frozen=True)
class PortAttachment:
    """How a port of an instance is attached to the vSwitch: a port of that kind, that
    name and those options on the graph-LSI (VSwitchDriver.create_ports)."""
    port_id: str
    name: str                    # the vSwitch port: FunctionPort.vswitch_ifname
    kind: str = SYSTEM           # one of ATTACHMENT_KINDS
    options: tuple = ()          # (key, value) pairs, sorted: hashable, comparable

    def option_dict(self) -> dict:
        return dict(self.options)

    @classmethod
    def of(cls, port_id: str, name: str, kind: str = SYSTEM, options: dict | None = None):
        return cls(port_id, name, kind, tuple(sorted((options or {}).items())))


@dataclass(frozen=True)
class FunctionSpec:
    """What to run: an instance of a template with its ports and parameters."""
    instance: str                # unique on the node; carries the agent's prefix
    template: dict               # the template (see nsf/*/template.json for native)
    image: str                   # package path, image reference or disk image
    ports: tuple = ()            # FunctionPort, in order
    parameters: tuple = ()       # strings handed to the function
    # The CPUs the scheduler bound the function to (kernel CPU numbers; empty: any). Each
    # driver applies them its own way: native runs its scripts under taskset (what they
    # leave running inherits the affinity), docker sets cpuset_cpus, KVM pins each vCPU
    # (vcpupin), DPDK passes them as -l. Cores of a poll-mode template are the function's
    # alone: the scheduler places nothing else there.
    cpu_cores: tuple = ()
    labels: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class InstanceInfo:
    """An instance the driver finds on the node."""
    instance: str
    state: str                   # created, running, stopped, paused, failed (destroy it)
    labels: dict = field(default_factory=dict, compare=False, hash=False)
    ports: tuple = ()            # vswitch_ifname of each port


class ComputeDriver:
    """Base class with do-nothing hooks; a driver overrides what it supports (see the
    module's docstring for the contract)."""

    driver_kind = "compute"
    driver_name = "base"
    execution_environment = ""   # identity in composer-types: native, docker, kvm, dpdk
    capabilities: frozenset = frozenset()

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities

    # --- prerequisites and templates ---

    def check(self) -> None:
        """Raise PrerequisiteError when this environment cannot run here, saying what to
        install or configure."""

    def check_template(self, template: dict) -> list[str]:
        """What the template needs that the node lacks, one line each (empty: it can run)."""
        return []

    def close(self) -> None:
        """Release connections (after settle)."""

    def settle(self, timeout: float | None = None) -> bool:
        """Wait for clean-up a destroy left to run in the background; False if it was not
        over after timeout seconds."""
        return True

    # --- ports ---

    def port_attachments(self, template: dict, ports: tuple) -> tuple:
        """How create (or update) will attach each of ports (FunctionPort) to the vSwitch,
        without making anything: a PortAttachment per port, in order. The default: a
        "system" port named vswitch_ifname (a veth end, or a tap a hypervisor holds)."""
        return tuple(PortAttachment(p.port_id, p.vswitch_ifname) for p in ports)

    # --- the lifecycle (Table 5) ---

    def fetch(self, spec: FunctionSpec) -> None:
        """Step 0 (optional): make the shared, slow part of create(spec) ready. Nothing by
        default."""

    def create(self, spec: FunctionSpec) -> tuple:
        """Allocate the instance and its ports; returns port_attachments(spec.template,
        spec.ports)."""
        raise NotImplementedError

    def start(self, instance: str) -> None:
        raise NotImplementedError

    def stop(self, instance: str) -> None:
        """Stop a running or paused instance; a created or stopped one is left as it is.
        ResourceNotFound when the instance is unknown."""
        raise NotImplementedError

    def pause(self, instance: str) -> None:
        raise NotSupported("%s functions cannot be paused" % self._environment_name(),
                           resource=instance)

    def resume(self, instance: str) -> None:
        raise NotSupported("%s functions cannot be paused" % self._environment_name(),
                           resource=instance)

    def update(self, instance: str, add_ports: tuple = (), remove_ports: tuple = ()) -> tuple:
        """Remove ports (port ids) and add ports (FunctionPort); return the attachments of
        every port the instance has now, in order (those added as port_attachments said)."""
        raise NotSupported("%s functions cannot change their ports while they exist"
                           % self._environment_name(), resource=instance)

    def port_updates(self, instance: str) -> dict | None:
        """How the instance took the port updates it had: {"method": "in-place" (the
        running function took them) or "restart" (it was restarted with them), "count",
        "last" (Unix time)}; None when it had none (or the driver keeps no record)."""
        return None

    def destroy(self, instance: str) -> None:
        """Release everything create made. ResourceNotFound when nothing of the instance
        is there."""
        raise NotImplementedError

    def list_instances(self, labels: dict | None = None) -> list[InstanceInfo]:
        """The instances on the node whose labels include the given ones (for recovery:
        those left by a crash included, state "failed" when incomplete)."""
        raise NotImplementedError

    def status(self, instance: str) -> str:
        """created, running, stopped, paused, or failed; ResourceNotFound when unknown."""
        raise NotImplementedError

    # --- usage (see the module's docstring) ---

    def usage(self, instance: str):
        """A drivers/compute/usage.Usage of a running or paused instance; None when it is
        not running or nothing is measured. ResourceNotFound when the instance is unknown."""
        return None

    def usages(self, instances) -> dict:
        """instance -> usage(instance) for each of instances (None for an unknown one); a
        driver overrides it when it can read many at once for less."""
        out = {}
        for instance in instances:
            try:
                out[instance] = self.usage(instance)
            except ResourceNotFound:
                out[instance] = None
        return out

    # --- watching (see the module's docstring) ---

    def watch(self, watcher, sink) -> None:
        """From now on, call sink(Event) (on the watcher's thread) when a running instance
        breaks without the driver doing it. Nothing by default."""

    def unwatch(self) -> None:
        """Stop reporting."""

    def problems(self, instance: str) -> list:
        """What is wrong with a running instance, as Events ([]: nothing found): LOST, it
        must be made again; EXITED, it must be restarted."""
        return []

    def _environment_name(self) -> str:
        return self.execution_environment or self.driver_name


class PreparedSlotsDriver(ComputeDriver):
    """A driver with the PREPARED_SLOTS capability: empty slots made in advance, so that a
    create later only fills one (for native functions: the namespace and the veths exist,
    their node ends on the graph-LSI already, and the vSwitch does not change)."""

    capabilities = frozenset({PREPARED_SLOTS})

    def prepare(self, instance: str, vswitch_ifnames: tuple, labels: dict | None = None) -> None:
        """An empty slot: whatever create() makes before running anything, one port per
        name, node ends ready to attach. destroy() removes a slot."""
        raise NotImplementedError

    def create_prepared(self, spec: FunctionSpec) -> tuple:
        """create(spec) in the slot prepare() made under spec.instance, with the same port
        names; a failure leaves the slot as it was."""
        raise NotImplementedError

    def release(self, instance: str) -> None:
        """Undo of create_prepared: the function goes, the slot stays as prepared."""
        raise NotImplementedError
