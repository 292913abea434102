"""The SF resolver: which implementation runs a function here.

Keeps the templates that provide the function's capability (or the one it names), that
understand its parameters, whose execution environment is enabled and usable, whose
dependencies exist and whose ports and memory fit; picks the cheapest footprint (memory,
then CPU, then environment weight).
"""

from dataclasses import dataclass

from . import parameters

# Lighter environments first when footprints tie.
ENVIRONMENT_WEIGHT = {"native": 0, "dpdk": 1, "docker": 2, "kvm": 3}


@dataclass(frozen=True)
class Resolution:
    template_id: str
    environment: str
    image: str
    template: dict


def port_range(template: dict) -> tuple:
    """(fewest, most) ports an implementation takes: min-ports/max-ports when the template
    gives them, else exactly port-count."""
    count = int(template.get("port-count", 1))
    return (int(template.get("min-ports", count)), int(template.get("max-ports", count)))


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
    def __init__(self, repository, availability, memory_free=None):
        self.repository = repository
        # availability(template) -> list of reasons it cannot run ([] = it can)
        self.availability = availability
        self.memory_free = memory_free    # callable() -> bytes, or None

    def candidates(self, function) -> list:
        return [t for t in self.repository.templates()
                if t["functional-capability"] == function.capability
                and (function.template is None or t["id"] == function.template)]

    def resolve(self, function) -> Resolution:
        candidates = self.candidates(function)
        if not candidates:
            if function.template is not None:
                template = self.repository.get(function.template)
                if template is None:
                    raise ResolveError("template %r does not exist in the repository"
                                       % function.template, leaf="template")
                raise ResolveError("template %r provides %r, not %r"
                                   % (function.template, template["functional-capability"],
                                      function.capability), leaf="template")
            raise ResolveError("no template provides the functional capability %r (known: %s)"
                               % (function.capability,
                                  ", ".join(sorted(self.repository.capabilities())) or "none"),
                               leaf="functional-capability")
        usable, reasons, refused = [], [], None
        for template in candidates:
            try:
                parameters.check(template, function.parameters)
            except parameters.ParameterError as exc:
                refused = refused or exc
                reasons.append("%s: %s" % (template["id"], exc))
                continue
            why = self.why_not(template, function)
            if why:
                reasons.append("%s: %s" % (template["id"], "; ".join(why)))
            else:
                usable.append(template)
        if not usable and refused is not None:
            message = ("parameter %r of function %s: %s" % (refused.parameter, function.id,
                                                             refused.why)
                       if len(candidates) == 1 else
                       "no implementation of %r takes the parameters of function %s (%s)"
                       % (function.capability, function.id, " | ".join(reasons)))
            raise ResolveError(message, reasons, parameter=refused.parameter)
        if not usable:
            raise ResolveError("no implementation of %r can run here (%s)"
                               % (function.capability, " | ".join(reasons)), reasons)
        best = min(usable, key=lambda t: (t.get("memory", 0), t.get("cpu", 0),
                                          ENVIRONMENT_WEIGHT.get(t.get("execution-environment"), 9),
                                          t["id"]))
        return Resolution(template_id=best["id"], environment=best["execution-environment"],
                          image=best.get("image-uri") or "", template=best)

    def why_not(self, template, function) -> list:
        reasons = []
        if template.get("decomposition") is not None or not template.get("execution-environment"):
            return ["decomposition templates are not deployable yet"]
        ports = len(function.ports)
        low, high = port_range(template)
        if not low <= ports <= high:
            reasons.append("takes %s ports, the function has %d"
                           % (low if low == high else "%d to %d" % (low, high), ports))
        reasons += self.availability(template)
        if self.memory_free is not None:
            need = int(template.get("memory", 0)) * 1024 * 1024
            free = self.memory_free()
            if need > free:
                reasons.append("needs %d MiB of memory, %d MiB free" % (need >> 20, free >> 20))
        return reasons
