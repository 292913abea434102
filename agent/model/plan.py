"""Plans are data: an ordered list of steps, printable, testable and fault-injectable.

A step names what to do (kind), for which graph and resource, with plain parameters. The
managers register a handler per kind; a handler does the step and returns the steps that
undo it (computed from what it actually did). A Group runs its steps in parallel.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Step:
    kind: str                     # e.g. "create-lsi", "create-function", "apply-flows"
    graph: str = ""               # the graph the step serves ("" for node-wide steps)
    resource: str = ""            # the resource it acts on (LSI, instance, port, link)
    params: dict = field(default_factory=dict, compare=False, hash=False)

    def __str__(self) -> str:
        where = "%s/%s" % (self.graph, self.resource) if self.graph else self.resource
        return "%s %s" % (self.kind, where)


@dataclass(frozen=True)
class Group:
    """Independent steps run in parallel (bounded); all or nothing."""
    name: str
    steps: tuple

    def __str__(self) -> str:
        return "%s (%d in parallel)" % (self.name, len(self.steps))


@dataclass
class Plan:
    items: list = field(default_factory=list)    # Step or Group, in order

    def add(self, step) -> None:
        self.items.append(step)

    def extend(self, steps) -> None:
        self.items.extend(steps)

    def steps(self) -> list:
        """Every step, groups flattened, in order."""
        out = []
        for item in self.items:
            out.extend(_steps_of(item))
        return out

    def split(self, kinds) -> tuple["Plan", "Plan"]:
        """(the leading items whose steps are all of the given kinds, the other items)."""
        head = 0
        for item in self.items:
            if not all(step.kind in kinds for step in _steps_of(item)):
                break
            head += 1
        return Plan(self.items[:head]), Plan(self.items[head:])

    def __len__(self) -> int:
        return len(self.steps())

    def __bool__(self) -> bool:
        return bool(self.items)

    def lines(self) -> list[str]:
        out = []
        for number, item in enumerate(self.items, 1):
            if isinstance(item, Group):
                out.append("%3d. %s" % (number, item))
                out.extend("       - %s%s" % (s, detail(s)) for s in item.steps)
            else:
                out.append("%3d. %s%s" % (number, item, detail(item)))
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines()) or "(nothing to do)"


def _steps_of(item) -> tuple:
    return item.steps if isinstance(item, Group) else (item,)


def detail(step: Step) -> str:
    """What a step carries, for people reading a plan (not part of its identity)."""
    p = step.params or {}
    if step.kind in ("create-function", "destroy-function"):
        template = p.get("template") or {}
        return "  [%s, %s, %d ports]" % (template.get("id", "?"), p.get("environment", "?"),
                                         len(p.get("ports", ())))
    if step.kind in ("attach-ports", "detach-ports"):
        links = p.get("links")
        return "  [%s%s]" % (", ".join(port["name"] for port in p.get("ports", ())),
                             "; links %s" % ", ".join(links["names"]) if links else "")
    if step.kind in ("create-links", "destroy-links"):
        return "  [%s]" % ", ".join(p.get("names", ()))
    if step.kind in ("create-sap", "destroy-sap"):
        sap = p.get("sap")
        return "  [%s SAP %s]" % (getattr(sap, "type", "?"), getattr(sap, "id", "?"))
    if step.kind == "release-flows":
        return "  [-%d flows, with the LSI]" % len(p.get("removed", ()))
    if step.kind == "apply-flows":
        return "  [+%d flows, -%d]" % (len(p.get("add", ())), len(p.get("remove", ())))
    return ""
