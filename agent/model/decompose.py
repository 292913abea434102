"""Recursive decomposition: a function whose template is itself a graph becomes that graph's
functions (its parts) inside the graph that holds it.

A decomposition template (composer-templates, "decomposition") is a graph of functions,
service access points and flow rules. Its SAPs, all of type interface, stand for the
ports of the decomposed function, in order. Expanding function F of graph G by template T:
  1. each function X of T becomes the part "F/X" of G (ids hold no '/', so a part never
     collides with a function of G); F's parameters of the form "X.key=value" go to X as
     "key=value", after X's own; the constraints on the execution environment go to every
     part; the MAC and IPv4 address configured on a port of F go to the one part port
     that the SAP standing for it leads to;
  2. the rules of T between parts become rules of G, named "F/<rule>";
  3. a rule of G that outputs to a port of F outputs instead to where T's rule from the
     SAP standing for that port leads (such a rule has no match and only outputs to parts);
  4. a rule of G from a port of F becomes, for each rule of T that outputs to the SAP
     standing for that port (whose only action is that output), a rule from that rule's
     part port, matching both matches, with G's rule's priority and actions: named like
     G's rule when there is one such rule of T, "<rule>+<T's rule>" otherwise.
A part that is decomposed itself is expanded the same way first (its own parts are then
"F/X/Y"). Expanding is a pure function of the graph and the decomposition records
(Decomposition), which the deployed-graph record keeps: the same expanded graph comes out
after a restart, without resolving anything again.
"""

from dataclasses import dataclass, field, replace

from .graph import MATCH_FIELDS, Constraints, Endpoint, Function, Graph, Rule, graph_from_dict

SEP = "/"            # part ids: function, SEP, inner function
COMBINED = "+"       # a rule of the graph combined with an exit rule of the template
MAX_DEPTH = 8


class DecompositionError(ValueError):
    """A decomposition template cannot stand for the function (why, for people)."""


@dataclass(frozen=True)
class Decomposition:
    """What a decomposed function became: its template, the template's graph (libyang
    JSON, as configured or shipped) and the decompositions of its parts that are
    decomposed themselves (inner function id -> Decomposition)."""
    template: str
    entry: dict = field(hash=False)
    nested: dict = field(default_factory=dict, hash=False)
    # How the resolver chose the template: its cost, why, (template, why not) of others.
    cost: float = 0.0
    reason: str = ""
    rejected: tuple = ()

    def to_json(self) -> dict:
        out = {"template": self.template, "decomposition": self.entry}
        if self.nested:
            out["nested"] = {fid: d.to_json() for fid, d in self.nested.items()}
        if self.reason or self.rejected:
            out["resolution"] = {"cost": self.cost, "reason": self.reason,
                                 "rejected": [list(r) for r in self.rejected]}
        return out

    @classmethod
    def from_json(cls, data: dict) -> "Decomposition":
        resolution = data.get("resolution", {})
        return cls(data["template"], data["decomposition"],
                   {fid: cls.from_json(d) for fid, d in data.get("nested", {}).items()},
                   float(resolution.get("cost", 0)), resolution.get("reason", ""),
                   tuple(tuple(r) for r in resolution.get("rejected", ())))


def inner_graph(template_id: str, entry: dict) -> Graph:
    """The graph of a decomposition template (its "decomposition" entry)."""
    return graph_from_dict(dict(entry, id=template_id))


def route_parameters(parameters, part_ids) -> tuple:
    """({part id: [parameters for it]}, [parameters that name no part]): "X.key=value"
    goes to part X as "key=value" (X: the longest part id that fits)."""
    routed: dict = {pid: [] for pid in part_ids}
    unrouted = []
    by_length = sorted(part_ids, key=len, reverse=True)
    for parameter in parameters:
        key = parameter.split("=", 1)[0]
        part = next((pid for pid in by_length if key.startswith(pid + ".")
                     and len(key) > len(pid) + 1), None)
        if part is None:
            unrouted.append(parameter)
        else:
            routed[part].append(parameter[len(part) + 1:])
    return routed, unrouted


def parts_of(function: Function, template_id: str, entry: dict) -> dict:
    """inner function id -> the part as it will run (its own parameters, then those of
    function routed to it; the environment constraints of function), before nesting.
    DecompositionError when the template cannot stand for the function."""
    inner = inner_graph(template_id, entry)
    check(inner, function)
    routed, _ = route_parameters(function.parameters, list(inner.functions))
    constraints = Constraints(environments=function.constraints.environments)
    return {fid: replace(f, parameters=f.parameters + tuple(routed[fid]),
                         constraints=_merged(f.constraints, constraints))
            for fid, f in inner.functions.items()}


def _merged(own: Constraints, outer: Constraints) -> Constraints:
    if not outer.environments:
        return own
    environments = tuple(e for e in (own.environments or outer.environments)
                         if e in outer.environments)
    return replace(own, environments=environments or ("none",))


def check(inner: Graph, function: Function) -> None:
    """DecompositionError unless the template's graph can stand for the function: its SAPs
    are interfaces, one per port of the function; its rules from a SAP have no match and
    only output to parts; its rules to a SAP have that output as their only action;
    every parameter of the function names a part."""
    wrong = sorted(s.id for s in inner.saps.values() if s.type != "interface")
    if wrong:
        raise DecompositionError("its service access points stand for the function's ports "
                                 "and must be of type interface (%s is not)" % ", ".join(wrong))
    if len(inner.saps) != len(function.ports):
        raise DecompositionError("it has %d ports (interface SAPs), the function has %d"
                                 % (len(inner.saps), len(function.ports)))
    if not inner.functions:
        raise DecompositionError("it has no functions")
    for rule in inner.rules.values():
        to_saps = [o for o in rule.outputs() if o.sap]
        if rule.in_port.sap and (rule.match or to_saps or
                                 any(kind != "output" for kind, _ in rule.actions)):
            raise DecompositionError("its rule %s from a port of the function must only "
                                     "output to parts, without a match" % rule.id)
        if not rule.in_port.sap and to_saps and len(rule.actions) != 1:
            raise DecompositionError("its rule %s to a port of the function must have that "
                                     "output as its only action" % rule.id)
    _, unrouted = route_parameters(function.parameters, list(inner.functions))
    if unrouted:
        raise DecompositionError(
            "the parameter %r names none of its parts (%s): give them as "
            "'<part>.<key>=<value>'" % (unrouted[0], ", ".join(sorted(inner.functions))))


def expand(graph: Graph, decompositions: dict, depth: int = 0) -> Graph:
    """graph with each function of decompositions (function id -> Decomposition)
    replaced by its parts (see the module's docstring)."""
    if not decompositions:
        return graph
    if depth > MAX_DEPTH:
        raise DecompositionError("decompositions nest more than %d deep" % MAX_DEPTH)
    for fid in sorted(decompositions):
        function = graph.functions.get(fid)
        if function is None:
            continue
        record = decompositions[fid]
        parts = parts_of(function, record.template, record.entry)
        inner = inner_graph(record.template, record.entry)
        inner = expand(replace(inner, functions=parts), record.nested, depth + 1)
        graph = _merge(graph, function, inner)
    return graph


def _rename(prefix: str, endpoint: Endpoint) -> Endpoint:
    if endpoint.sap is not None:
        return endpoint
    return Endpoint(function=prefix + endpoint.function, port=endpoint.port)


def _merge(graph: Graph, function: Function, inner: Graph) -> Graph:
    prefix = function.id + SEP
    port_of = dict(zip(inner.saps, function.port_ids()))
    sap_of = {port: sap for sap, port in port_of.items()}
    entries: dict = {}          # port of function -> the part ports its traffic goes to
    exits: dict = {}            # SAP -> the rules of parts that output to it (renamed)
    rules: dict = {}
    for rule in inner.rules.values():
        if rule.in_port.sap:
            entries.setdefault(port_of[rule.in_port.sap], []).extend(
                _rename(prefix, o) for o in rule.outputs())
            continue
        renamed = replace(rule, id=prefix + rule.id, in_port=_rename(prefix, rule.in_port),
                          actions=tuple((kind, _rename(prefix, arg) if kind == "output"
                                         else arg) for kind, arg in rule.actions))
        to_saps = [o.sap for o in rule.outputs() if o.sap]
        if to_saps:
            exits.setdefault(to_saps[0], []).append(renamed)
        else:
            rules[renamed.id] = renamed
    functions = {fid: f for fid, f in graph.functions.items() if fid != function.id}
    ports = {p.id: p for p in function.ports}
    for fid, part in inner.functions.items():
        functions[prefix + fid] = replace(part, id=prefix + fid, ports=tuple(
            _configured(ports, entries, prefix + fid, p) for p in part.ports))
    for rule in graph.rules.values():
        actions = []
        for kind, arg in rule.actions:
            if kind == "output" and arg.function == function.id:
                actions.extend(("output", target) for target in entries.get(arg.port, ()))
            else:
                actions.append((kind, arg))
        actions = tuple(actions)
        if rule.in_port.function != function.id:
            rules[rule.id] = rule if actions == rule.actions else replace(rule, actions=actions)
            continue
        outs = sorted(exits.get(sap_of.get(rule.in_port.port), ()), key=lambda r: r.id)
        for exit_rule in outs:
            match = _conjoin(exit_rule.match, rule.match)
            if match is None:
                continue                # the two matches exclude each other
            rid = rule.id if len(outs) == 1 else "%s%s%s" % (rule.id, COMBINED,
                                                            exit_rule.id[len(prefix):])
            rules[rid] = Rule(rid, rule.priority, exit_rule.in_port, match, actions,
                              rule.description)
    return replace(graph, functions=functions, rules=rules)


def _configured(ports: dict, entries: dict, part_id: str, port):
    """A part's port with the MAC and address of the function's port whose traffic goes to
    it (and to it alone)."""
    for outer_id, targets in entries.items():
        outer = ports.get(outer_id)
        if outer is None or targets != [Endpoint(function=part_id, port=port.id)]:
            continue
        if outer.mac or outer.ipv4:
            return replace(port, mac=outer.mac or port.mac, ipv4=outer.ipv4 or port.ipv4,
                           prefix_length=outer.prefix_length if outer.ipv4
                           else port.prefix_length)
    return port


_ORDER = {name: index for index, (_, name) in enumerate(MATCH_FIELDS)}


def _conjoin(a: tuple, b: tuple):
    """The match of both (None when they exclude each other)."""
    merged = dict(a)
    for name, value in b:
        if name in merged and merged[name] != value:
            return None
        merged[name] = value
    return tuple(sorted(merged.items(), key=lambda item: _ORDER.get(item[0], 99)))


def outer_function(part_id: str) -> str:
    """The function of the graph a part belongs to (itself when it is not a part)."""
    return part_id.split(SEP, 1)[0]


def expanded_rules(graph: Graph, rule_id: str) -> list:
    """The rules of an expanded graph that a rule of the declared graph became."""
    if rule_id in graph.rules:
        return [graph.rules[rule_id]]
    head = rule_id + COMBINED
    return [r for rid, r in graph.rules.items() if rid.startswith(head)]
