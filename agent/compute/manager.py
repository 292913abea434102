"""The compute manager: compute drivers per execution environment, and the step handlers
that create, start, stop, update and destroy functions through them.
"""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from drivers import registry
from drivers.compute.base import PREPARED_SLOTS, ComputeDriver, FunctionPort, FunctionSpec
from drivers.errors import DriverError, NotSupported, ResourceNotFound

from .allocation import Allocation
from .repository import Repository
from .resolver import Resolution, Resolver, ResolveError
from .scheduler import PlacementError, Scheduler
from ..model import decompose
from ..model.paths import PlanningError, function_path, leaf_list_path
from ..model.plan import Step

LOG = logging.getLogger(__name__)


def attachment_spec(attachment, external_ids: dict) -> dict:
    """A port for VSwitchDriver.create_ports from a PortAttachment (drivers/compute/base.py)."""
    spec = {"name": attachment.name, "kind": attachment.kind, "external_ids": external_ids}
    if attachment.options:
        spec["options"] = attachment.option_dict()
    return spec


def spare_labels(owner: str, graph_id: str) -> dict:
    """The labels of a prepared slot of a graph (see agent/compute/spares.py)."""
    return {"composer-owner": owner, "composer-graph": graph_id, "composer-role": "spare"}


class ComputeManager:
    """Owns the compute drivers of the enabled environments and the SF repository."""

    def __init__(self, environments, driver_options: dict, repository: Repository,
                 scheduler: Scheduler | None = None, memory_free=None, memory_total=None,
                 reserved_memory: int = 0, cpu_allocation_ratio: float = 32.0,
                 environment_costs: dict | None = None):
        self.environments = list(environments)
        self.driver_options = driver_options      # env -> kwargs for the driver constructor
        self.repository = repository
        self.scheduler = scheduler or Scheduler()
        # memory_free/memory_total: callable() -> bytes (None: not accounted); what the
        # functions may hold is memory_total less reserved_memory (MiB), see allocation.py
        self.memory_free = memory_free
        self.memory_total = memory_total
        self.reserved_memory = int(reserved_memory)
        self.cpu_allocation_ratio = float(cpu_allocation_ratio)
        self.resolver = Resolver(repository, self.availability, memory_free,
                                 environment_costs,
                                 image_problems=getattr(repository, "image_problems", None))
        self._drivers: dict = {}
        self._driver_errors: dict = {}
        self._lock = threading.Lock()
        self.status: dict = {}                    # instance -> status
        self.fetch_parallelism = 4
        self._fetching: dict = {}                 # (environment, image) -> _Fetch under way
        # (graph id, function id) -> the Download of its image (images.py), last one made
        self.downloads: dict = {}

    # --- drivers ---

    def driver(self, environment: str):
        """The driver of an environment, created and checked once."""
        with self._lock:
            if environment in self._drivers:
                return self._drivers[environment]
            if environment in self._driver_errors:
                raise self._driver_errors[environment]
            if environment not in self.environments:
                error = DriverError("execution environment %s is not enabled on this node "
                                    "(compute.execution-environments)" % environment)
                self._driver_errors[environment] = error
                raise error
            try:
                driver = registry.create("compute", environment,
                                         **self.driver_options.get(environment, {}))
                driver.check()
            except DriverError as exc:
                self._driver_errors[environment] = exc
                raise
            self._drivers[environment] = driver
            return driver

    def port_updates(self, environment: str, instance: str) -> dict | None:
        """How a function took its port updates (ComputeDriver.port_updates), for its
        state; None when it had none. Reads what the driver recorded; makes no driver."""
        with self._lock:
            driver = self._drivers.get(environment)
        if driver is None:
            return None
        try:
            return driver.port_updates(instance)
        except (DriverError, OSError, ValueError) as exc:
            LOG.debug("port updates of %s: %s", instance, exc)
            return None

    def usable_environments(self) -> list:
        out = []
        for env in self.environments:
            try:
                self.driver(env)
                out.append(env)
            except DriverError:
                pass
        return out

    def availability(self, template: dict) -> list:
        """Why a template cannot run here ([] when it can)."""
        env = template.get("execution-environment")
        try:
            driver = self.driver(env)
        except DriverError as exc:
            return [str(exc)]
        return list(driver.check_template(template))

    def watch(self, watcher, sink) -> None:
        """The drivers of every usable environment report what breaks (ComputeDriver.watch)."""
        for environment in self.usable_environments():
            self.driver(environment).watch(watcher, sink)

    def unwatch(self) -> None:
        with self._lock:
            drivers = list(self._drivers.values())
        for driver in drivers:
            driver.unwatch()

    def settle(self, timeout: float | None = None) -> bool:
        """Wait for what destroyed functions left to the background (see ComputeDriver)."""
        return all([driver.settle(timeout) for driver in list(self._drivers.values())])

    def close(self) -> None:
        for driver in self._drivers.values():
            try:
                driver.close()
            except Exception:  # noqa: BLE001
                LOG.exception("closing compute driver failed")

    # --- fetching (ComputeDriver.fetch: the slow part of a create, outside transactions) ---

    def fetching(self) -> bool:
        """Whether a commit may have something to fetch: an enabled driver has a fetch
        phase, or templates' images come from repositories (prefetching is worth it)."""
        if self.repository.images.urls or any(
                self.repository.images.wanted(t) for t in self.repository.templates()):
            return True
        return any(type(self.driver(env)).fetch is not ComputeDriver.fetch
                   for env in self.usable_environments())

    def prefetch(self, wanted) -> None:
        """Fetch, in parallel, for each (graph id, function, Resolution) of wanted (every
        part of a decomposed one): its image when it is downloaded, then the driver's
        fetch phase; failures are logged (the create reports them)."""
        specs = []
        for gid, function, resolution in wanted:
            for pid, part, leaf in resolution.leaves(function.id):
                try:
                    driver = self.driver(leaf.environment)
                except DriverError:
                    continue
                if type(driver).fetch is ComputeDriver.fetch and \
                        not self.repository.images.wanted(leaf.template):
                    continue
                specs.append((driver, FunctionSpec(
                    instance="", template=leaf.template, image=leaf.image,
                    parameters=tuple((part or function).parameters),
                    labels={"composer-graph": gid, "composer-function": pid})))
        if not specs:
            return

        def one(item):
            driver, spec = item
            try:
                self._fetch(driver, spec)
            except Exception as exc:  # noqa: BLE001 - a hint: the create fetches again
                LOG.warning("fetching %s for %s failed: %s", spec.image,
                            spec.labels.get("composer-function"), exc)
        with ThreadPoolExecutor(max_workers=min(self.fetch_parallelism, len(specs)),
                                thread_name_prefix="fetch") as pool:
            list(pool.map(one, specs))

    def _fetch(self, driver, spec: FunctionSpec) -> None:
        """driver.fetch(spec), once at a time per image: a fetch of the same image under
        way (a prefetch, another create) is waited for instead of started again."""
        key = (driver.execution_environment, spec.image)
        with self._lock:
            running = self._fetching.get(key)
            if running is None:
                running = self._fetching[key] = _Fetch()
                mine = True
            else:
                mine = False
        if not mine:
            running.done.wait()
            if running.error is None:
                return
            # it failed there: try here (this caller reports its own error)
            return self._fetch(driver, spec)
        try:
            self._download(spec)
            driver.fetch(spec)
        except BaseException as exc:
            running.error = exc
            raise
        finally:
            with self._lock:
                self._fetching.pop(key, None)
            running.done.set()

    def _download(self, spec: FunctionSpec) -> None:
        """The image of spec's template into the image store, when it is downloaded from a
        repository (images.py; its progress shows in the function's state), or checked
        against its digest when it is local and the template gives one."""
        images = self.repository.images
        if not spec.template.get("image-sha256"):
            return
        key = (spec.labels.get("composer-graph"), spec.labels.get("composer-function"))

        def progress(download):
            self.downloads[key] = download
        images.fetch(spec.template, progress)

    # --- planning ---

    def allocation(self, deployed: dict) -> Allocation:
        """What the node has left for functions, given what is deployed (allocation.py)."""
        if self.memory_total is not None:
            capacity = (self.memory_total() >> 20) - self.reserved_memory
        else:
            capacity = 1 << 40          # not accounted
        available = None
        if self.memory_free is not None:
            memory_free = self.memory_free
            available = lambda: memory_free() >> 20   # noqa: E731
        return Allocation.of(deployed, cores=self.scheduler.topology.ids,
                             memory_capacity=capacity, memory_available=available,
                             allocation_ratio=self.cpu_allocation_ratio)

    def resolve(self, graph_id: str, function, allocation: Allocation | None = None
                ) -> Resolution:
        """The implementation of a function of the graph (a part of a decomposed function:
        the error names the function of the graph); with an allocation, what it holds is
        reserved there. PlanningError when nothing can run it."""
        try:
            return self.resolver.resolve(function, allocation)
        except ResolveError as exc:
            config = function_path(graph_id, decompose.outer_function(function.id)) + "/config"
            if exc.parameter is not None:
                raise PlanningError(exc.message, leaf_list_path(config + "/parameter",
                                                                exc.parameter),
                                    "unknown-parameter", tag="invalid-value",
                                    info={"bad-element": "parameter"}) from None
            raise PlanningError(exc.message, config + ("/" + exc.leaf if exc.leaf else ""),
                                "no-implementation") from None

    def place(self, allocation: Allocation, graph_id: str, graph, new: dict,
              placed: dict) -> dict:
        """Cores for the new functions of a graph (Scheduler.place_graph): function id ->
        cores. PlanningError when a function cannot have the cores it needs."""
        try:
            return self.scheduler.place_graph(allocation, graph_id, graph, new, placed)
        except PlacementError as exc:
            raise PlanningError("no cores for a function of graph %s: %s" % (graph_id, exc),
                                function_path(graph_id, decompose.outer_function(
                                    exc.function)) if exc.function else None,
                                "no-cores") from None

    # --- step handlers ---

    def handlers(self) -> dict:
        return {
            "create-function": self.create_function,
            "destroy-function": self.destroy_function,
            "start-function": self.start_function,
            "stop-function": self.stop_function,
            "update-function": self.update_function,
            "unclaim-function": self.unclaim_function,
        }

    def _spec(self, step: Step) -> FunctionSpec:
        params = step.params
        function = params["function"]
        template = params["template"]
        if set(template) == {"id"}:
            template = self.repository.get(template["id"]) or template
        ports = _function_ports(function, params["ports"])
        return FunctionSpec(instance=step.resource, template=template, image=params["image"],
                            ports=ports, parameters=tuple(function.parameters),
                            cpu_cores=tuple(params.get("cores", ())), labels=params["labels"])

    def create_function(self, step: Step) -> list:
        driver = self.driver(step.params["environment"])
        spec = self._spec(step)
        self._fetch(driver, spec)
        if step.params.get("spare"):
            attachments = self._slots(driver).create_prepared(spec)
        else:
            attachments = driver.create(spec)
        self.status[step.resource] = "stopped"
        undo = Step("unclaim-function" if step.params.get("spare") else "destroy-function",
                    step.graph, step.resource, step.params)
        planned = step.params.get("attachments")
        made = tuple((a.port_id, a.name, a.kind, a.options) for a in attachments)
        if planned is not None and made != tuple(planned):
            # The plan attaches the ports as port_attachments said: a driver that makes
            # them otherwise would have them attached wrong.
            self._undo_quietly(undo)
            raise DriverError("the %s driver made the ports %s, not the %s it announced"
                              % (driver.driver_name, _kinds(made), _kinds(planned)),
                              resource=step.resource)
        return [undo]

    def _undo_quietly(self, step: Step) -> None:
        try:
            self.handlers()[step.kind](step)
        except Exception:  # noqa: BLE001 - the error to report is the caller's
            LOG.exception("undoing %s failed", step)

    @staticmethod
    def _slots(driver):
        """The driver, when it has prepared slots (drivers/compute/base.py PREPARED_SLOTS)."""
        if not driver.supports(PREPARED_SLOTS):
            raise NotSupported("%s functions have no prepared slots"
                               % driver.execution_environment)
        return driver

    def unclaim_function(self, step: Step) -> list:
        """Undo of a create in a prepared slot: the function goes, the slot stays as it was
        prepared (its vSwitch ports stay on the graph-LSI)."""
        self._slots(self.driver(step.params["environment"])).release(step.resource)
        self.status.pop(step.resource, None)
        return []

    def prepare_spare(self, environment: str, instance: str, ifnames: tuple,
                      owner: str, graph_id: str) -> tuple:
        """A prepared slot; the attachments of its ports (to attach them to the graph-LSI)."""
        driver = self._slots(self.driver(environment))
        driver.prepare(instance, tuple(ifnames), spare_labels(owner, graph_id))
        return driver.port_attachments({}, tuple(FunctionPort("port%d" % n, name)
                                                 for n, name in enumerate(ifnames)))

    def has_slots(self, environment: str) -> bool:
        """Whether the environment's driver offers prepared slots."""
        try:
            return self.driver(environment).supports(PREPARED_SLOTS)
        except DriverError:
            return False

    def attachments(self, environment: str, template, function, ports) -> tuple:
        """How the environment's driver will attach the ports ((port id, vSwitch port) of
        the function) to the vSwitch: (port id, kind, options) of each port it does not
        attach as a "system" port (the planner plans with it; create checks it).
        template: the template, or its id."""
        if isinstance(template, str):
            template = self.repository.get(template) or {"id": template}
        elif set(template) == {"id"}:
            template = self.repository.get(template["id"]) or template
        made = self.driver(environment).port_attachments(
            template, _function_ports(function, ports))
        return tuple((a.port_id, a.kind, a.options) for a in made if a.kind != "system")

    def destroy_function(self, step: Step) -> list:
        driver = self.driver(step.params["environment"])
        try:
            driver.destroy(step.resource)
        except ResourceNotFound:
            # Gone already (removed under the agent): what was left of it is gone now.
            LOG.warning("function %s was gone already", step.resource)
        self.status.pop(step.resource, None)
        return [Step("create-function", step.graph, step.resource, step.params)]

    def start_function(self, step: Step) -> list:
        self.driver(step.params["environment"]).start(step.resource)
        self.status[step.resource] = "running"
        return [Step("stop-function", step.graph, step.resource, step.params)]

    def stop_function(self, step: Step) -> list:
        try:
            self.driver(step.params["environment"]).stop(step.resource)
        except ResourceNotFound:
            LOG.warning("function %s was gone already; nothing to stop", step.resource)
        self.status[step.resource] = "stopped"
        return [Step("start-function", step.graph, step.resource, step.params)]

    def update_function(self, step: Step) -> list:
        params = step.params
        add = tuple(FunctionPort(port_id=p.id, vswitch_ifname=params["add_ifnames"][p.id],
                                 mac_address=p.mac, ipv4_address=p.ipv4,
                                 ipv4_prefix_length=p.prefix_length) for p in params["add"])
        self.driver(params["environment"]).update(step.resource, add_ports=add,
                                                  remove_ports=tuple(params["remove"]))
        reverse = dict(params)
        reverse.update(add=tuple(params["removed_ports"]), add_ifnames=params["removed_ifnames"],
                       remove=tuple(p.id for p in params["add"]), removed_ports=tuple(params["add"]),
                       removed_ifnames=params["add_ifnames"])
        return [Step("update-function", step.graph, step.resource, reverse)]

    # --- recovery ---

    def instances(self) -> list:
        """(environment, InstanceInfo) of every instance the drivers find with our prefix."""
        out = []
        for env in self.environments:
            try:
                driver = self.driver(env)
            except DriverError:
                continue
            for info in driver.list_instances():
                out.append((env, info))
        return out


def _kinds(attachments) -> str:
    """(port id, name, kind, options) tuples, for people."""
    return ", ".join("%s (%s)" % (name, kind) for _, name, kind, _ in attachments) or "none"


def _function_ports(function, ports) -> tuple:
    """FunctionPort of each (port id, vSwitch port) of a function (agent/model Function)."""
    by_id = {p.id: p for p in function.ports}
    return tuple(FunctionPort(port_id=pid, vswitch_ifname=ifname,
                              mac_address=by_id[pid].mac if pid in by_id else None,
                              ipv4_address=by_id[pid].ipv4 if pid in by_id else None,
                              ipv4_prefix_length=by_id[pid].prefix_length
                              if pid in by_id else None)
                 for pid, ifname in ports)


class _Fetch:
    """A driver.fetch under way: done once it has returned or failed (error)."""

    def __init__(self):
        self.done = threading.Event()
        self.error = None
