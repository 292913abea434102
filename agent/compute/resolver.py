"""The SF resolver: which implementation runs a function here.

The candidates are the templates that provide the function's capability (or the one it
names). A candidate is usable when:
  1. it understands the function's parameters (parameters.py); a decomposition, when every
     parameter names one of its parts and its graph can stand for the function
     (agent/model/decompose.py);
  2. it satisfies the function's constraints (config/constraints: the execution
     environments allowed, the least memory and CPU it must give);
  3. it takes as many ports as the function has;
  4. its execution environment is offered now (compute.execution-environments, and the
     driver's check()) and its dependencies exist (the driver's check_template);
  5. its image can be had (in the image store or from a repository, with its digest);
  6. the memory and CPU it needs fit what the node has free (the Allocation: what
     deployed functions hold, less what this transaction releases, plus what it has
     resolved already); a poll-mode one needs whole cores of its own;
  7. a decomposition: each of its parts resolves the same way (recursively).
Of the usable candidates the cheapest wins: its template's `cost`, else the cost of its
environment (ENVIRONMENT_COSTS: measured for native, estimated for the others) plus the
memory it needs (MiB) plus CPU_COST per core it needs; a decomposition costs what its parts cost. Ties go to the lighter
environment, then to the template id. The Resolution says why it won and why every other
candidate did not; the function's operational state shows it.
"""

from dataclasses import dataclass

from . import parameters
from ..model import decompose

# The footprint of one instance of each environment beyond the function's own memory, in
# MiB (the unit of a template's memory):
#   native  0.3: kernel memory (Slab, KernelStack, PageTables, Percpu) of a namespace, two
#           veth pairs, a bridge and an nftables table (the shipped firewall), measured by
#           bench/footprint as the growth of those /proc/meminfo counters: 0.41, 0.31 and
#           0.23 MiB per instance over 20, 40 and 40 instances (Debian 12, a 2-core VM
#           shared with other work, hence the spread);
#   docker  10: a containerd-shim-runc-v2 process and the container's namespaces;
#   kvm     160: a QEMU process and its device model, beyond the guest's memory;
#   dpdk    64: a DPDK process's own memory (EAL, mempools of --no-huge -m) beyond its
#           template's, and it owns its cores (see poll-mode).
# docker, kvm and dpdk are estimates until bench/footprint measures their drivers (it
# measures native only so far); compute.environment-costs overrides any of them, a
# template's cost overrides the whole figure.
ENVIRONMENT_COSTS = {"native": 0.3, "docker": 10.0, "kvm": 160.0, "dpdk": 64.0}
CPU_COST = 100.0        # a core's worth of CPU costs as much as 100 MiB of memory
# Lighter environments first when costs tie.
ENVIRONMENT_WEIGHT = {"native": 0, "dpdk": 1, "docker": 2, "kvm": 3}


@dataclass(frozen=True)
class Resolution:
    template_id: str
    environment: str             # "" for a decomposition
    image: str                   # the image as the driver gets it (a local path)
    template: dict
    cost: float = 0.0
    reason: str = ""
    rejected: tuple = ()         # (template id, why not)
    parts: tuple = ()            # a decomposition: (part Function, Resolution) per part
    memory: int = 0              # MiB it holds
    cpu: float = 0.0             # cores' worth it holds
    exclusive: bool = False      # poll mode: whole cores of its own

    @property
    def decomposed(self) -> bool:
        return self.template.get("decomposition") is not None

    def leaves(self, prefix: str = ""):
        """(part id, part Function, Resolution) of every function it runs (itself when not
        a decomposition: ("", None, self))."""
        if not self.decomposed:
            yield prefix, None, self
            return
        for part, resolution in self.parts:
            pid = prefix + decompose.SEP + part.id if prefix else part.id
            if resolution.decomposed:
                yield from resolution.leaves(pid)
            else:
                yield pid, part, resolution


def port_range(template: dict) -> tuple:
    """(fewest, most) ports an implementation takes: min-ports/max-ports when the template
    gives them, else exactly port-count (a decomposition: one per interface SAP)."""
    if template.get("decomposition") is not None:
        count = len(template["decomposition"].get("saps", {}).get("sap", ()))
        return count, count
    count = int(template.get("port-count", 1))
    return (int(template.get("min-ports", count)), int(template.get("max-ports", count)))


def template_cost(template: dict, environment_costs: dict | None = None) -> float:
    """What the resolver compares (see the module's docstring)."""
    if template.get("cost") is not None:
        return float(template["cost"])
    costs = dict(ENVIRONMENT_COSTS, **(environment_costs or {}))
    env = template.get("execution-environment") or ""
    return round(costs.get(env, 0.0) + float(template.get("memory", 0))
                 + CPU_COST * float(template.get("cpu", 0)), 2)


class ResolveError(Exception):
    """No implementation can run the function; reasons says why, per template. leaf: the
    function's leaf at fault (template, functional-capability), or parameter: the
    parameter no implementation understands."""

    def __init__(self, message: str, reasons=(), leaf: str | None = None,
                 parameter: str | None = None):
        super().__init__(message)
        self.message = message
        self.reasons = list(reasons)
        self.leaf = leaf
        self.parameter = parameter


class Resolver:
    def __init__(self, repository, availability, memory_free=None,
                 environment_costs: dict | None = None, image_problems=None):
        self.repository = repository
        # availability(template) -> list of reasons it cannot run ([] = it can)
        self.availability = availability
        self.memory_free = memory_free    # callable() -> bytes, or None (no Allocation)
        self.environment_costs = dict(environment_costs or {})
        # image_problems(template) -> why its image cannot be had ([]: it can), and
        # image_path(template) -> the image as the driver gets it
        self.image_problems = image_problems or (lambda template: [])
        self.image_path = getattr(repository, "image_path", None) or \
            (lambda template: template.get("image-uri") or "")

    def candidates(self, function) -> list:
        return [t for t in self.repository.templates()
                if t["functional-capability"] == function.capability
                and (function.template is None or t["id"] == function.template)]

    def resolve(self, function, allocation=None, _stack: tuple = ()) -> Resolution:
        """The implementation that runs function (see the module's docstring); with an
        allocation, what it holds is reserved there."""
        candidates = self.candidates(function)
        if not candidates:
            raise self._nothing_provides(function)
        usable, reasons, refused = [], [], None
        for template in candidates:
            try:
                found = self._evaluate(template, function, allocation, _stack)
            except parameters.ParameterError as exc:
                refused = refused or exc
                reasons.append((template["id"], str(exc)))
                continue
            if isinstance(found, Resolution):
                usable.append(found)
            else:
                reasons.append((template["id"], "; ".join(found)))
        if not usable and refused is not None:
            message = ("parameter %r of function %s: %s" % (refused.parameter, function.id,
                                                             refused.why)
                       if len(candidates) == 1 else
                       "no implementation of %r takes the parameters of function %s (%s)"
                       % (function.capability, function.id, _listed(reasons)))
            raise ResolveError(message, reasons, parameter=refused.parameter)
        if not usable:
            raise ResolveError("no implementation of %r can run function %s here: %s"
                               % (function.capability, function.id, _listed(reasons)),
                               reasons)
        usable.sort(key=lambda r: (r.cost, ENVIRONMENT_WEIGHT.get(r.environment, 9),
                                   r.template_id))
        best = usable[0]
        rejected = [(r.template_id, "usable, but costs %.2f, more than %.2f (%s)"
                     % (r.cost, best.cost, best.template_id)) for r in usable[1:]]
        reason = ("the only usable implementation (cost %.2f)" % best.cost
                  if len(usable) == 1 else
                  "the cheapest of %d usable implementations (cost %.2f)"
                  % (len(usable), best.cost))
        chosen = Resolution(best.template_id, best.environment, best.image, best.template,
                            best.cost, reason, tuple(sorted(rejected + reasons)), best.parts,
                            best.memory, best.cpu, best.exclusive)
        if allocation is not None:
            for _, _, leaf in chosen.leaves():
                allocation.reserve(leaf.memory, leaf.cpu, leaf.exclusive)
        return chosen

    def _nothing_provides(self, function) -> ResolveError:
        if function.template is not None:
            template = self.repository.get(function.template)
            if template is None:
                return ResolveError("template %r does not exist in the repository"
                                    % function.template, leaf="template")
            return ResolveError("template %r provides %r, not %r"
                                % (function.template, template["functional-capability"],
                                   function.capability), leaf="template")
        return ResolveError("no template provides the functional capability %r (known: %s)"
                            % (function.capability,
                               ", ".join(sorted(self.repository.capabilities())) or "none"),
                            leaf="functional-capability")

    def _evaluate(self, template, function, allocation, stack):
        """A Resolution when template can run function now (nothing reserved), else the
        reasons it cannot. ParameterError when it does not take the parameters."""
        if template.get("decomposition") is not None:
            return self._evaluate_decomposition(template, function, allocation, stack)
        if not template.get("execution-environment"):
            return ["it has neither an execution environment nor a decomposition"]
        parameters.check(template, function.parameters)
        reasons = self.why_not(template, function, allocation)
        if reasons:
            return reasons
        return Resolution(template["id"], template["execution-environment"],
                          self.image_path(template), template,
                          template_cost(template, self.environment_costs),
                          memory=int(template.get("memory", 0)),
                          cpu=float(template.get("cpu", 0)),
                          exclusive=bool(template.get("poll-mode")))

    def why_not(self, template, function, allocation=None) -> list:
        """Why a (non-decomposition) template cannot run function now ([]: it can)."""
        reasons = []
        env = template.get("execution-environment")
        constraints = function.constraints
        if constraints.environments and env not in constraints.environments:
            reasons.append("runs in %s; the function's constraints allow %s"
                           % (env, ", ".join(constraints.environments)))
        memory = int(template.get("memory", 0))
        cpu = float(template.get("cpu", 0))
        if constraints.memory is not None and memory < constraints.memory:
            reasons.append("gives %d MiB of memory; the function's constraints ask for %d"
                           % (memory, constraints.memory))
        if constraints.cpu is not None and cpu + 1e-9 < constraints.cpu:
            reasons.append("gives %.2f cores; the function's constraints ask for %.2f"
                           % (cpu, constraints.cpu))
        low, high = port_range(template)
        ports = len(function.ports)
        if not low <= ports <= high:
            reasons.append("takes %s ports, the function has %d"
                           % (low if low == high else "%d to %d" % (low, high), ports))
        reasons += self.availability(template)
        reasons += self.image_problems(template)
        if allocation is not None:
            reasons += allocation.why_not(memory, cpu, bool(template.get("poll-mode")))
        elif self.memory_free is not None:
            free = self.memory_free()
            if memory * 1024 * 1024 > free:
                reasons.append("needs %d MiB of memory, %d MiB free" % (memory, free >> 20))
        return reasons

    def _evaluate_decomposition(self, template, function, allocation, stack):
        if template["id"] in stack:
            return ["it would contain itself (%s)" % " -> ".join(stack + (template["id"],))]
        if len(stack) >= decompose.MAX_DEPTH:
            return ["decompositions nest more than %d deep" % decompose.MAX_DEPTH]
        try:
            parts = decompose.parts_of(function, template["id"], template["decomposition"])
        except decompose.DecompositionError as exc:
            return [str(exc)]
        checkpoint = allocation.checkpoint() if allocation is not None else None
        resolved, reasons = [], []
        try:
            for pid in sorted(parts):
                try:
                    resolved.append((parts[pid], self.resolve(parts[pid], allocation,
                                                              stack + (template["id"],))))
                except ResolveError as exc:
                    reasons.append("its part %s: %s" % (pid, exc.message))
        finally:
            if allocation is not None:
                allocation.restore(checkpoint)
        if reasons:
            return reasons
        memory = sum(r.memory for _, r in resolved)
        cpu = sum(r.cpu for _, r in resolved)
        constraints = function.constraints
        if constraints.memory is not None and memory < constraints.memory:
            return ["its parts give %d MiB of memory; the function's constraints ask for %d"
                    % (memory, constraints.memory)]
        if constraints.cpu is not None and cpu + 1e-9 < constraints.cpu:
            return ["its parts give %.2f cores; the function's constraints ask for %.2f"
                    % (cpu, constraints.cpu)]
        cost = template.get("cost")
        cost = float(cost) if cost is not None else round(sum(r.cost for _, r in resolved), 2)
        return Resolution(template["id"], "", "", template, cost, parts=tuple(resolved),
                          memory=memory, cpu=cpu)


def _listed(reasons) -> str:
    return "; ".join("%s: %s" % (tid, why) for tid, why in reasons)
