"""The rule split of COMPOSER (paper, section 5.4.1): one graph's flow rules, compiled into
OpenFlow flows on LSI-0 and on the graph-LSI, with the virtual links between them.

- A rule whose in-port and outputs are all on LSI-0 (interface/vlan SAPs) goes to LSI-0;
  all on the graph-LSI (function ports, gre and host-stack SAPs) goes to the graph-LSI.
- A rule that crosses gets, for each distinct output port on the other side, a virtual link:
  towards the graph-LSI, LSI-0 holds "original match -> actions, output to the link" and the
  graph-LSI "in from the link -> output to the port"; towards LSI-0 the roles swap. A link
  carries one graph-LSI target in one direction and one LSI-0 target in the other, so the
  number of links is the larger of the two counts.
- vlan SAPs: the tag is popped on LSI-0 as traffic enters and pushed as it leaves, so
  functions never see it; only that VLAN's traffic enters. An interface SAP, unless the rule
  matches a vlan-id, takes untagged traffic only, so that it never swallows a vlan SAP's.

Link assignment is stable: a target keeps its link while some rule needs it, so adding or
removing a rule never rewires traffic of unrelated rules.
"""

from dataclasses import dataclass

from drivers.vswitch.base import Action, Flow, VSwitchDriver

from ..model.deployed import Link
from ..model.graph import Endpoint, Graph
from .naming import Naming

LINK_FLOW_PRIORITY = 65000
UNTAGGED = ("vlan_tci", "0x0000/0x1000")


@dataclass(frozen=True)
class Split:
    """The compiled graph: links, and the flows of each LSI by cookie."""
    links: tuple
    lsi0_flows: dict     # cookie -> Flow
    graph_flows: dict    # cookie -> Flow

    def link_ports(self, link: Link) -> tuple:
        return link_ports(link.name)


def link_ports(link_name: str) -> tuple:
    """(LSI-0 side, graph-LSI side) patch port names of a link: links are created with
    LSI-0 as their first LSI."""
    return VSwitchDriver.link_port_names(link_name)


class SplitError(Exception):
    """The graph cannot be compiled (a reference the model does not catch)."""

    def __init__(self, message: str, rule_id: str | None = None):
        super().__init__(message)
        self.rule_id = rule_id


class PortMap:
    """Where each endpoint of a graph is on the vSwitch."""

    def __init__(self, graph: Graph, naming: Naming, function_ports=None):
        """function_ports: function id -> {port id: vSwitch port}, for functions whose ports
        are not named after the ids (those made in a prepared slot)."""
        self.graph = graph
        self.naming = naming
        self.function_ports = function_ports or {}

    def on_lsi0(self, endpoint: Endpoint) -> bool:
        return endpoint.sap is not None and self.graph.saps[endpoint.sap].on_lsi0

    def port(self, endpoint: Endpoint) -> str:
        """The vSwitch port of an endpoint (the NIC for interface and vlan SAPs)."""
        if endpoint.sap is not None:
            sap = self.graph.saps[endpoint.sap]
            if sap.on_lsi0:
                return sap.if_name
            return self.naming.sap_port(self.graph.id, sap.id, sap.type)
        named = self.function_ports.get(endpoint.function)
        if named is not None and endpoint.port in named:
            return named[endpoint.port]
        return self.naming.function_port(self.graph.id, endpoint.function, endpoint.port)

    def vlan(self, endpoint: Endpoint) -> int | None:
        if endpoint.sap is None:
            return None
        sap = self.graph.saps[endpoint.sap]
        return sap.vlan_id if sap.type == "vlan" else None


def assign_links(graph: Graph, ports: PortMap, naming: Naming, previous=()) -> tuple:
    """The graph's links: previous assignments kept, new targets in free slots."""
    to_graph, to_lsi0 = set(), set()
    for rule in graph.rules.values():
        in_lsi0 = ports.on_lsi0(rule.in_port)
        for out in rule.outputs():
            out_lsi0 = ports.on_lsi0(out)
            if in_lsi0 and not out_lsi0:
                to_graph.add(out)
            elif not in_lsi0 and out_lsi0:
                to_lsi0.add(out)

    slots: dict[int, list] = {}
    for link in previous:
        keep_graph = link.graph_target if link.graph_target in to_graph else None
        keep_lsi0 = link.lsi0_target if link.lsi0_target in to_lsi0 else None
        slots[link.index] = [keep_graph, keep_lsi0]
    placed_graph = {s[0] for s in slots.values() if s[0] is not None}
    placed_lsi0 = {s[1] for s in slots.values() if s[1] is not None}

    def place(targets, side):
        for target in sorted(targets, key=str):
            index = next((i for i in sorted(slots) if slots[i][side] is None), None)
            if index is None:
                index = max(slots, default=-1) + 1
                slots[index] = [None, None]
            slots[index][side] = target

    place(to_graph - placed_graph, 0)
    place(to_lsi0 - placed_lsi0, 1)
    kept = {link.index: link for link in previous}
    links = []
    for i, (g, l) in sorted(slots.items()):
        if g is None and l is None:
            continue
        link = kept.get(i)
        if link is None or link.graph_target != g or link.lsi0_target != l:
            link = Link(i, naming.virtual_link(graph.id, i), g, l)
        links.append(link)
    return tuple(links)


def _output(ports: PortMap, target: Endpoint, in_port: str, lsi0: bool, links_to) -> list:
    """Actions that send the packet to target from the given LSI."""
    if ports.on_lsi0(target) == lsi0:
        port = ports.port(target)
        out = [Action("in_port")] if port == in_port else [Action("output", port)]
        vlan = ports.vlan(target)
        if vlan is not None:
            return [Action("push_vlan", vlan), *out]
        return out
    return [Action("output", links_to[target])]


def _rule_flow(graph: Graph, rule, ports: PortMap, naming: Naming, links_to) -> tuple:
    """(on LSI-0?, Flow) for one rule, on the LSI of its in-port."""
    in_lsi0 = ports.on_lsi0(rule.in_port)
    in_port = ports.port(rule.in_port)
    match = [("in_port", in_port)]
    actions: list = []
    in_vlan = ports.vlan(rule.in_port)
    user_vlan = any(f == "dl_vlan" for f, _ in rule.match)
    if in_vlan is not None:
        if user_vlan:
            raise SplitError("rule %s matches vlan-id on vlan SAP %s, whose tag the node "
                             "removes; match the VLAN with an interface SAP instead"
                             % (rule.id, rule.in_port.sap), rule.id)
        match.append(("dl_vlan", in_vlan))
        actions.append(Action("pop_vlan"))
    elif in_lsi0 and not user_vlan:
        match.append(UNTAGGED)
    match.extend(rule.match)

    # A vlan push for one output must not leak into the next: pop it again.
    tagged_by_output = False
    for kind, arg in rule.actions:
        if tagged_by_output:
            actions.append(Action("pop_vlan"))
            tagged_by_output = False
        if kind == "output":
            out = _output(ports, arg, in_port, in_lsi0, links_to)
            tagged_by_output = out[0].kind == "push_vlan"
            actions.extend(out)
        elif kind == "drop":
            actions = [Action("drop")]
            break
        else:
            actions.append(Action(kind, arg))
    flow = Flow(cookie=naming.rule_cookie(graph.id, rule.id), priority=rule.priority,
                match=tuple(match), actions=tuple(actions))
    return in_lsi0, flow


def split_graph(graph: Graph, naming: Naming, previous_links=(), function_ports=None,
                previous: "tuple | None" = None) -> Split:
    """Compile a graph into LSI-0 flows, graph-LSI flows and virtual links (function_ports:
    see PortMap).

    previous: (graph, function_ports, Split) of the graph as deployed, whose links are
    previous_links. A rule that did not change, whose endpoints are on the same ports and
    whose outputs keep their links, keeps its flow: a graph of 2,000 rules is changed one
    function at a time, and compiling every rule again is most of planning the change."""
    ports = PortMap(graph, naming, function_ports)
    reuse = _Reuse(graph, ports, previous, naming) if previous is not None else None
    for rule in graph.rules.values():
        if reuse is not None and reuse.untouched(rule):
            reuse.kept.add(rule.id)
            continue
        for endpoint in (rule.in_port, *rule.outputs()):
            if not graph.endpoint_exists(endpoint):
                raise SplitError("rule %s refers to %s, which the graph does not have"
                                 % (rule.id, endpoint), rule.id)
    links = assign_links(graph, ports, naming, previous_links)
    if reuse is not None:
        reuse.relinked(links)
    lsi0_port, graph_port = {}, {}
    to_graph_link, to_lsi0_link = {}, {}
    for link in links:
        lsi0_side, graph_side = link_ports(link.name)
        if link.graph_target is not None:
            to_graph_link[link.graph_target] = lsi0_side
        if link.lsi0_target is not None:
            to_lsi0_link[link.lsi0_target] = graph_side
        lsi0_port[link.name], graph_port[link.name] = lsi0_side, graph_side

    lsi0_flows, graph_flows = {}, {}
    for rule in graph.rules.values():
        kept = reuse.rule_flow(rule) if reuse is not None else None
        if kept is not None:
            (lsi0_flows if kept[0] else graph_flows)[kept[1].cookie] = kept[1]
            continue
        in_lsi0 = ports.on_lsi0(rule.in_port)
        on_lsi0, flow = _rule_flow(graph, rule, ports, naming,
                                   to_graph_link if in_lsi0 else to_lsi0_link)
        (lsi0_flows if on_lsi0 else graph_flows)[flow.cookie] = flow

    for link in links:
        kept = reuse.link_flows(link) if reuse is not None else None
        if kept is not None:
            for on_lsi0, flow in kept:
                (lsi0_flows if on_lsi0 else graph_flows)[flow.cookie] = flow
            continue
        cookie = naming.link_cookie(graph.id, link.name)
        if link.graph_target is not None:
            graph_flows[cookie] = Flow(
                cookie=cookie, priority=LINK_FLOW_PRIORITY,
                match=(("in_port", graph_port[link.name]),),
                actions=(Action("output", ports.port(link.graph_target)),))
        if link.lsi0_target is not None:
            out = [Action("output", ports.port(link.lsi0_target))]
            vlan = ports.vlan(link.lsi0_target)
            if vlan is not None:
                out.insert(0, Action("push_vlan", vlan))
            lsi0_flows[cookie] = Flow(
                cookie=cookie, priority=LINK_FLOW_PRIORITY,
                match=(("in_port", lsi0_port[link.name]),), actions=tuple(out))
    return Split(links=links, lsi0_flows=lsi0_flows, graph_flows=graph_flows)


def deployed_split(dg, naming: Naming) -> Split:
    """The compiled flows and links of a graph as deployed (a DeployedGraph); computed
    once and kept with the record."""
    if dg._split is None:
        dg._split = split_graph(dg.graph, naming, dg.links, dg.function_ports())
    return dg._split


class _Reuse:
    """What split_graph may keep of the previous split (see its docstring).

    What a rule's flow depends on besides the rule is where its endpoints are: the SAPs'
    settings, the functions' ports and their vSwitch names, and the links of its outputs.
    Those that changed are found once per graph; a rule that touches none of them keeps
    its flow, with no work per rule beyond that test."""

    def __init__(self, graph: Graph, ports: PortMap, previous, naming: Naming):
        self.graph, self.naming = graph, naming
        self.kept = set()               # ids of the rules untouched() before the links
        self.links_moved = False
        self.old_graph, old_function_ports, self.old = previous
        old_ports = PortMap(self.old_graph, naming, old_function_ports)
        saps, old_saps = graph.saps, self.old_graph.saps
        self.saps = {sid for sid in saps.keys() | old_saps.keys()
                     if saps.get(sid) is not old_saps.get(sid)
                     and saps.get(sid) != old_saps.get(sid)}
        functions, old_functions = graph.functions, self.old_graph.functions
        self.functions = set()
        for fid in functions.keys() | old_functions.keys():
            new, old = functions.get(fid), old_functions.get(fid)
            if new is None or old is None or (new is not old and new.ports != old.ports):
                self.functions.add(fid)
                continue
            names = ports.function_ports.get(fid)
            if names is None or names != old_ports.function_ports.get(fid):
                endpoints = [Endpoint(function=fid, port=pid) for pid in new.port_ids()]
                if [ports.port(e) for e in endpoints] != [old_ports.port(e) for e in endpoints]:
                    self.functions.add(fid)

    def relinked(self, links) -> None:
        """Count as moved the targets whose link is not the one they had."""
        old_links = {link.index: link for link in self.old.links}
        new_links = {link.index: link for link in links}
        for index in old_links.keys() | new_links.keys():
            new, old = new_links.get(index), old_links.get(index)
            if new is old or new == old:
                continue
            for link in (new, old):
                if link is not None:
                    for target in (link.graph_target, link.lsi0_target):
                        if target is not None:
                            self._moved(target)
                            self.links_moved = True
        self.old_links = old_links

    def _moved(self, endpoint: Endpoint) -> None:
        if endpoint.sap is not None:
            self.saps.add(endpoint.sap)
        else:
            self.functions.add(endpoint.function)

    def _stays(self, endpoint: Endpoint) -> bool:
        if endpoint.sap is not None:
            return endpoint.sap not in self.saps
        return endpoint.function not in self.functions

    def untouched(self, rule) -> bool:
        """The rule and where its endpoints are did not change (before links are known:
        then its endpoints exist, as they did)."""
        old = self.old_graph.rules.get(rule.id)
        if old is None or (old is not rule and old != rule):
            return False
        return self._stays(rule.in_port) and all(self._stays(o) for o in rule.outputs())

    def rule_flow(self, rule) -> tuple | None:
        """(on LSI-0?, Flow) of an untouched rule as it was, or None: compile it."""
        if rule.id not in self.kept or (self.links_moved and not self.untouched(rule)):
            return None
        cookie = self.naming.rule_cookie(self.graph.id, rule.id)
        flow = self.old.lsi0_flows.get(cookie)
        if flow is not None:
            return True, flow
        flow = self.old.graph_flows.get(cookie)
        return None if flow is None else (False, flow)

    def link_flows(self, link: Link) -> list | None:
        """[(on LSI-0?, Flow)] of a link that carries what it carried, to the same ports."""
        old = self.old_links.get(link.index)
        if old is not link and old != link:
            return None
        kept = []
        cookie = self.naming.link_cookie(self.graph.id, link.name)
        for target, on_lsi0, flows in ((link.graph_target, False, self.old.graph_flows),
                                       (link.lsi0_target, True, self.old.lsi0_flows)):
            if target is None:
                continue
            flow = flows.get(cookie)
            if flow is None or not self._stays(target):
                return None
            kept.append((on_lsi0, flow))
        return kept
