"""From what is deployed and what running asks for, the plan: only what changed.

Phases, across all graphs of one transaction:
  A. tear down what is replaced in place (a function whose template or parameters
     changed keeps its names, so the old one goes first);
  B. create: graph-LSIs, functions (in parallel), their ports on the graph-LSI, SAP ports,
     virtual links, port updates of functions that gained or lost ports;
  C. start the new functions (in parallel);
  D. flows: one atomic bundle per LSI, removals and additions together (LSI-0 once); the
     flows of a graph-LSI that goes are not removed (they go with it), only kept for undo;
  E. tear down what is gone: functions, SAP ports, links, graph-LSIs.
A new function takes a prepared slot of its graph when one fits (agent/engine/spares.py):
its namespace and ports exist and are on the graph-LSI already, so the vSwitch does not
change; the plan retags the ports (and prepared links) instead of attaching them.
Editing one rule is one flow change in one or two bundles; adding one function to a graph
of 500 creates that function, its ports, its links and its rules' flows, nothing else.
"""

import time
from dataclasses import dataclass, field, replace

from ..model.decompose import COMBINED, SEP, Decomposition, expand, outer_function
from ..model.deployed import DeployedFunction, DeployedGraph, with_source
from ..model.graph import Graph, graph_from_dict
from ..model.monitoring import MonitoringError
from ..model.monitoring import parse as parse_monitoring
from ..model.paths import (PlanningError, function_path, graph_path, leaf_list_path,
                           rule_path, sap_path)
from ..model.plan import Group, Plan, Step
from ..network.naming import Naming
from ..network.split import PortMap, deployed_split, link_ports, split_graph



@dataclass
class PlanResult:
    plan: Plan
    deployed: dict                      # graph id -> DeployedGraph after the plan
    touched: set = field(default_factory=set)
    summary: dict = field(default_factory=dict)
    claimed: set = field(default_factory=set)   # prepared slots and links the plan takes


def _needs_replacement(old, new) -> bool:
    """A change the function cannot absorb in place (only adding/removing ports can be)."""
    if (old.capability, old.template, old.parameters) != (new.capability, new.template,
                                                         new.parameters):
        return True
    old_ports = {p.id: p for p in old.ports}
    for port in new.ports:
        if port.id in old_ports and old_ports[port.id] != port:
            return True
    return False


@dataclass
class _Draft:
    """A plan being made: the steps of each phase (A-E, see the module's docstring) and
    what the transaction will have deployed."""
    a: list = field(default_factory=list)            # replaced in place: the old go
    b_lsi: list = field(default_factory=list)        # graph-LSIs created
    b_functions: list = field(default_factory=list)  # functions created (in parallel)
    b_tags: list = field(default_factory=list)       # prepared ports and links retagged
    b_rest: list = field(default_factory=list)       # ports, SAPs, links, port updates
    c: list = field(default_factory=list)            # functions started (in parallel)
    e_stop: list = field(default_factory=list)       # functions stopped (in parallel)
    e_rest: list = field(default_factory=list)       # ports, SAPs and links gone
    e_destroy: list = field(default_factory=list)    # functions and graph-LSIs destroyed
    flow_changes: dict = field(default_factory=dict) # lsi -> (add, remove cookies, removed)
    released: dict = field(default_factory=dict)     # lsi -> release-flows step (LSI goes)
    deployed: dict = field(default_factory=dict)
    touched: set = field(default_factory=set)
    claimed: set = field(default_factory=set)
    summary: dict = field(default_factory=lambda: {
        "graphs-added": 0, "graphs-removed": 0, "graphs-changed": 0, "functions-created": 0,
        "functions-destroyed": 0, "flows-added": 0, "flows-removed": 0})

    def flows_of(self, lsi: str) -> tuple:
        return self.flow_changes.setdefault(lsi, ([], [], []))


@dataclass
class _Inputs:
    """What planning one changed graph reads beyond the graph itself."""
    resolutions: dict           # (graph id, function id) -> resolution made while claiming
    claims: dict                # function id -> the prepared slot it takes
    placements: dict            # (graph id, function id) -> cores
    spare_links: frozenset      # prepared link names the graph may take
    stamp: str                  # deployed-at
    declared: Graph | None = None   # the graph as configured (not expanded)
    decompositions: dict = field(default_factory=dict)   # function id -> Decomposition


class Planner:
    """Plans transactions for one node."""

    def __init__(self, naming: Naming, compute, lsi0: str, lsi0_interfaces=(), tunnel_ips=()):
        self.naming = naming
        self.compute = compute          # resolve(graph_id, function) and place(...)
        self.lsi0 = lsi0
        self.lsi0_interfaces = set(lsi0_interfaces)
        self.tunnel_ips = set(tunnel_ips)

    # --- checks beyond the YANG model ---

    def check(self, desired: dict, deployed: dict | None = None, changed=None,
              function_ports=None) -> dict:
        """Per graph, the compiled Split; raises PlanningError for what cannot be deployed.

        Graphs not in changed are deployed as they are: their checks passed when they were
        deployed and their split is reused; only their LSI-0 rules and VLANs are compared
        with the changed graphs'."""
        deployed = deployed or {}
        changed = set(desired) if changed is None else set(changed)
        splits = {}
        lsi0_slots: dict = {}
        vlan_owner: dict = {}
        # Deployed graphs first: a conflict is the changed graph's fault.
        for graph in sorted(desired.values(), key=lambda g: (g.id in changed, g.id)):
            old = deployed.get(graph.id)
            if graph.id not in changed and old is not None:
                splits[graph.id] = deployed_split(old, self.naming)
                self._check_graph(graph, vlan_owner, rules=False)
                continue
            self._check_graph(graph, vlan_owner)
            try:
                split = split_graph(
                    graph, self.naming, old.links if old is not None else (),
                    (function_ports or {}).get(graph.id),
                    previous=(old.graph, old.function_ports(), deployed_split(old, self.naming))
                    if old is not None else None)
            except Exception as exc:  # SplitError
                rule_id = getattr(exc, "rule_id", None)
                raise PlanningError(str(exc), _rule_path(graph.id, rule_id) if rule_id else
                                    graph_path(graph.id), "unsupported-rule") from None
            splits[graph.id] = split
        # LSI-0 is shared: two graphs' rules in the same flow slot would replace each other.
        for gid in sorted(desired, key=lambda g: (g in changed, g)):
            graph = desired[gid]
            ports = PortMap(graph, self.naming, (function_ports or {}).get(gid))
            lsi0_flows = splits[gid].lsi0_flows
            for rule in graph.rules.values():
                if not ports.on_lsi0(rule.in_port):
                    continue
                flow = lsi0_flows[self.naming.rule_cookie(gid, rule.id)]
                slot = (flow.priority, flow.match)
                other = lsi0_slots.get(slot)
                if other is not None and other[0] != gid:
                    raise PlanningError(
                        "rule %s of graph %s has the same priority and match on LSI-0 as rule "
                        "%s of graph %s; one would replace the other"
                        % (rule.id, gid, other[1], other[0]),
                        _rule_path(gid, rule.id), "lsi0-conflict")
                lsi0_slots[slot] = (gid, rule.id)
        return splits

    def _check_graph(self, graph: Graph, vlan_owner: dict, rules: bool = True) -> None:
        if rules:
            try:
                parse_monitoring(graph.monitoring)
            except MonitoringError as exc:
                raise PlanningError(str(exc), graph_path(graph.id) + "/config/monitoring",
                                    "invalid-monitoring", tag="invalid-value") from None
        seen: dict = {}
        for rule in sorted(graph.rules.values(), key=lambda r: r.id) if rules else ():
            key = rule.match_key()
            if key in seen:
                raise PlanningError(
                    "rules %s and %s have the same priority and the same match; the vSwitch "
                    "would keep only one of them" % (seen[key], rule.id),
                    _rule_path(graph.id, rule.id), "duplicate-match")
            seen[key] = rule.id
        for sap in graph.saps.values():
            if rules and sap.on_lsi0 and self.lsi0_interfaces is not None and \
                    sap.if_name not in self.lsi0_interfaces:
                raise PlanningError(
                    "SAP %s uses interface %s, which is not an interface of LSI-0 (%s)"
                    % (sap.id, sap.if_name, ", ".join(sorted(self.lsi0_interfaces)) or "none"),
                    sap_path(graph.id, sap.id) + "/config/%s/if-name" % sap.type,
                    "unknown-interface")
            if rules and sap.type == "gre" and sap.local_ip not in self.tunnel_ips:
                raise PlanningError(
                    "GRE SAP %s: %s is not a tunnel endpoint of this node (lsi0.addresses: %s)"
                    % (sap.id, sap.local_ip, ", ".join(sorted(self.tunnel_ips)) or "none"),
                    sap_path(graph.id, sap.id) + "/config/gre/local-ip", "unknown-local-ip")
            if sap.type == "vlan":
                key = (sap.if_name, sap.vlan_id)
                owner = vlan_owner.get(key)
                if owner is not None and owner[0] != graph.id:
                    raise PlanningError(
                        "VLAN %d on %s is already the SAP %s of graph %s"
                        % (sap.vlan_id, sap.if_name, owner[1], owner[0]),
                        sap_path(graph.id, sap.id) + "/config/vlan/vlan-id", "vlan-in-use")
                vlan_owner[key] = (graph.id, sap.id)

    # --- planning ---

    def plan(self, sources: dict, deployed: dict, spares=None, spare_links=None) -> PlanResult:
        """sources: graph id -> libyang JSON entry of the graph wanted in running;
        spares: graph id -> the prepared slots (Spare) new functions may take;
        spare_links: graph id -> names of prepared virtual links the graph may take.

        1. the graphs wanted, as configured (declared), and those that change;
        2. the allocation: what deployed functions hold, less what the change removes;
        3. each function to create is resolved against it; a decomposed one is expanded
           into its parts (the graphs the rest plans with are the expanded ones);
        4. the new functions are placed on cores (neighbours close);
        5. the steps (phases A-E)."""
        declared, changed = self._desired(sources, deployed)
        allocation = self._allocation(deployed, declared, changed)
        desired, resolutions, decompositions = self._resolve(declared, changed, deployed,
                                                             allocation)
        claims = {gid: self._claim_spares(desired[gid], deployed.get(gid),
                                          (spares or {}).get(gid, ()), resolutions)
                  for gid in changed}
        function_ports = {gid: self._function_ports(desired[gid], deployed.get(gid), claims[gid])
                          for gid in changed}
        splits = self.check(desired, deployed, changed, function_ports)
        draft = _Draft()
        for gid in sorted(set(deployed) - set(desired)):
            self._remove_graph(draft, deployed[gid])
        placements = self._place(desired, changed, deployed, resolutions, allocation)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for gid in sorted(desired):
            old = deployed.get(gid)
            if gid not in changed:
                draft.deployed[gid] = with_source(old, sources[gid])
                continue
            self._change_graph(draft, desired[gid], old, sources[gid], splits[gid],
                               _Inputs(resolutions, claims[gid], placements,
                                       (spare_links or {}).get(gid, ()), stamp,
                                       declared[gid], decompositions[gid]))
        return self._assemble(draft)

    def _desired(self, sources: dict, deployed: dict) -> tuple:
        """(graph id -> Graph wanted, the ids of the graphs that change): a graph running
        from the same source is kept as deployed (expanded); the others as configured."""
        desired, changed = {}, set()
        for gid, src in sources.items():
            old = deployed.get(gid)
            if old is not None and old.source == src and old.status == "running":
                desired[gid] = old.graph
            else:
                desired[gid] = graph_from_dict(
                    src, (old.source, old.declared) if old is not None else None)
                changed.add(gid)
        return desired, changed

    @staticmethod
    def _to_resolve(graph: Graph, old) -> list:
        """The functions of a changed graph (as configured) that are resolved again: new
        ones, and those that change beyond ports (a decomposed one: any change)."""
        if old is None:
            return sorted(graph.functions)
        before, records = old.declared.functions, old.decompositions
        out = []
        for fid in sorted(graph.functions):
            previous = before.get(fid)
            function = graph.functions[fid]
            if previous is not None and (previous == function or (
                    fid not in records and not _needs_replacement(previous, function))):
                continue
            out.append(fid)
        return out

    def _allocation(self, deployed: dict, declared: dict, changed: set):
        """What deployed functions hold, less those of the functions that go or are
        resolved again (None when the compute manager keeps no accounts)."""
        make = getattr(self.compute, "allocation", None)
        if make is None:
            return None
        allocation = make(deployed)
        for gid, old in deployed.items():
            if gid not in declared:
                going = list(old.functions.values())
            elif gid in changed:
                graph = declared[gid]
                fids = set(old.declared.functions) - set(graph.functions)
                fids.update(fid for fid in self._to_resolve(graph, old)
                            if fid in old.declared.functions)
                going = [f for fid in fids for f in old.parts(fid).values()]
            else:
                continue
            for fn in going:
                allocation.release(fn)
        return allocation

    def _resolve(self, declared: dict, changed: set, deployed: dict, allocation) -> tuple:
        """(graph id -> the graph as deployed: decomposed functions expanded,
        (graph id, function or part id) -> Resolution of each function resolved,
        graph id -> {function id: Decomposition} of each changed graph)."""
        desired, resolutions, decompositions = {}, {}, {}
        for gid in sorted(declared):
            graph = declared[gid]
            if gid not in changed:
                desired[gid] = graph
                continue
            old = deployed.get(gid)
            records = {fid: record for fid, record in (old.decompositions if old else {}).items()
                       if fid in graph.functions}
            for fid in self._to_resolve(graph, old):
                records.pop(fid, None)
                resolution = self.compute.resolve(gid, graph.functions[fid], allocation)
                if not resolution.decomposed:
                    resolutions[(gid, fid)] = resolution
                    continue
                records[fid] = decomposition_record(resolution)
                for pid, _, leaf in resolution.leaves(fid):
                    resolutions[(gid, pid)] = leaf
            decompositions[gid] = records
            desired[gid] = expand(graph, records)
        return desired, resolutions, decompositions

    def _remove_graph(self, draft: "_Draft", old) -> None:
        """A removed graph: everything goes."""
        gid = old.id
        draft.touched.add(gid)
        draft.summary["graphs-removed"] += 1
        old_split = deployed_split(old, self.naming)
        self._teardown_functions(old, old.functions.keys(), draft.e_stop, draft.e_rest,
                                 draft.e_destroy)
        for sid in sorted(old.sap_ports):
            draft.e_rest.append(self._destroy_sap_step(old, sid))
        if old.links:
            draft.e_rest.append(self._links_step("destroy-links", old, old.links))
        _, remove, removed = draft.flows_of(self.lsi0)
        for cookie, flow in old_split.lsi0_flows.items():
            remove.append(cookie)
            removed.append(flow)
        # The graph-LSI's flows go with the LSI: no bundle removes them first. The step
        # only keeps them for an undo, which re-installs them once the ports are back.
        if old_split.graph_flows:
            draft.released[old.lsi] = Step("release-flows", gid, old.lsi, {
                "lsi": old.lsi, "removed": list(old_split.graph_flows.values())})
        draft.e_destroy.append(Step("destroy-lsi", gid, old.lsi,
                                    {"external_ids": self._lsi_ids(gid)}))

    def _change_graph(self, draft: "_Draft", graph: Graph, old, source, split,
                      inputs: "_Inputs") -> None:
        """A new or changed graph: its LSI, functions, SAPs, links and flows."""
        gid = graph.id
        draft.touched.add(gid)
        lsi = old.lsi if old is not None else self.naming.graph_lsi(gid)
        if old is None:
            draft.summary["graphs-added"] += 1
            draft.b_lsi.append(Step("create-lsi", gid, lsi, {"external_ids": self._lsi_ids(gid)}))
        else:
            draft.summary["graphs-changed"] += 1
        recreated_ports: set = set()
        functions, ports_to_tag = self._change_functions(draft, graph, old, lsi, inputs,
                                                         recreated_ports)
        sap_ports = self._change_saps(draft, graph, old, lsi, recreated_ports)
        self._change_links_and_flows(draft, graph, old, lsi, split, inputs.spare_links,
                                     ports_to_tag, recreated_ports)
        draft.deployed[gid] = DeployedGraph(
            id=gid, source=source, lsi=lsi, functions=functions, sap_ports=sap_ports,
            links=split.links, status="running", error="", deployed_at=inputs.stamp,
            decompositions=inputs.decompositions, _graph=graph, _split=split,
            _declared=inputs.declared)

    def _change_functions(self, draft: "_Draft", graph: Graph, old, lsi: str,
                          inputs: "_Inputs", recreated_ports: set) -> tuple:
        """Functions gone, kept, updated in place (ports added or removed), replaced and
        new; their ports attached or detached. Returns (function id -> DeployedFunction,
        the port specs of the prepared slots taken, to retag); adds the vSwitch ports of
        replaced functions to recreated_ports."""
        gid = graph.id
        old_graph = old.graph if old is not None else Graph(id=gid)
        old_functions = old.functions if old is not None else {}
        functions = {}
        to_attach, to_detach, to_tag = [], [], []
        gone = set(old_graph.functions) - set(graph.functions)
        if gone:
            self._teardown_functions(old, gone, draft.e_stop, draft.e_rest, draft.e_destroy)
            draft.summary["functions-destroyed"] += len(gone)
        for fid in sorted(graph.functions):
            function = graph.functions[fid]
            previous = old_graph.functions.get(fid)
            if previous is not None and function == previous:
                functions[fid] = old_functions[fid]
                continue
            if previous is not None and not _needs_replacement(previous, function):
                functions[fid], attach, detach = self._update_ports(
                    graph, lsi, previous, function, old_functions[fid], draft.b_rest)
                to_attach += attach
                to_detach += detach
                continue
            if previous is not None:
                self._teardown_functions(old, [fid], draft.a, draft.a, draft.a)
                recreated_ports.update(old_functions[fid].port_map().values())
                draft.summary["functions-destroyed"] += 1
            functions[fid] = self._new_function(draft, gid, function, inputs, to_attach,
                                                to_tag)
        if to_attach:
            draft.b_rest.append(Step("attach-ports", gid, lsi, {"lsi": lsi, "ports": to_attach}))
        if to_detach:
            draft.e_rest.append(Step("detach-ports", gid, lsi, {"lsi": lsi, "ports": to_detach}))
        return functions, to_tag

    def _new_function(self, draft: "_Draft", gid: str, function, inputs: "_Inputs",
                      to_attach: list, to_tag: list) -> DeployedFunction:
        """Create and start a function, in a prepared slot when the graph claimed one (its
        ports go to to_tag) or afresh (to to_attach)."""
        fid = function.id
        resolution = inputs.resolutions.get((gid, fid)) or self.compute.resolve(gid, function)
        spare = inputs.claims.get(fid)
        ports = tuple(zip(function.port_ids(), spare.ports)) if spare else \
            tuple((p.id, self.naming.function_port(gid, fid, p.id)) for p in function.ports)
        deployed_fn = DeployedFunction(
            id=fid, instance=spare.instance if spare else
            self.naming.function_instance(gid, fid),
            environment=resolution.environment, template=resolution.template_id,
            image=resolution.image, ports=ports,
            cores=tuple(inputs.placements.get((gid, fid), ())),
            attachments=self._attachments(resolution.environment, resolution.template,
                                          function, ports),
            memory=resolution.memory, cpu=resolution.cpu, exclusive=resolution.exclusive,
            cost=resolution.cost, reason=resolution.reason, rejected=resolution.rejected)
        draft.summary["functions-created"] += 1
        draft.b_functions.append(self._create_function_step(gid, function, deployed_fn,
                                                            resolution, spare))
        specs = self.function_port_specs(gid, deployed_fn)
        if spare:
            draft.claimed.add(spare.instance)
            to_tag += specs
        else:
            to_attach += specs
        draft.c.append(Step("start-function", gid, deployed_fn.instance,
                            {"environment": deployed_fn.environment}))
        return deployed_fn

    def _change_saps(self, draft: "_Draft", graph: Graph, old, lsi: str,
                     recreated_ports: set) -> dict:
        """The SAPs on the graph-LSI (gre, host-stack): created, replaced, destroyed.
        Returns SAP id -> vSwitch port."""
        gid = graph.id
        old_graph = old.graph if old is not None else Graph(id=gid)
        old_sap_ports = old.sap_ports if old is not None else {}
        sap_ports = {}
        for sid, sap in sorted(graph.saps.items()):
            if sap.on_lsi0:
                continue
            previous = old_graph.saps.get(sid)
            if previous == sap and sid in old_sap_ports:
                sap_ports[sid] = old_sap_ports[sid]
                continue
            name = self.naming.sap_port(gid, sid, sap.type)
            if previous is not None and sid in old_sap_ports:
                draft.a.append(self._destroy_sap_step(old, sid))
                recreated_ports.add(name)
            sap_ports[sid] = name
            draft.b_rest.append(self._create_sap_step(gid, lsi, sap, name))
        for sid in sorted(set(old_sap_ports) - set(sap_ports)):
            if sid not in graph.saps or graph.saps[sid].on_lsi0:
                draft.e_rest.append(self._destroy_sap_step(old, sid))
        return sap_ports

    def _change_links_and_flows(self, draft: "_Draft", graph: Graph, old, lsi: str, split,
                                spare_links, ports_to_tag: list, recreated_ports: set) -> None:
        """Virtual links created, taken from the prepared ones (retagged, with the ports
        of claimed slots) or destroyed; the flows that changed on LSI-0 and the graph-LSI
        (and those that reference a recreated port)."""
        gid = graph.id
        old_links = old.links if old is not None else ()
        old_split = deployed_split(old, self.naming) if old is not None else None
        # A link is its patch-port pair: what it carries may change (its flows change
        # then), the ports only come and go with the name.
        old_names = {l.name for l in old_links}
        new_names = {l.name for l in split.links}
        new_links = [l for l in split.links if l.name not in old_names]
        dead_links = [l for l in old_links if l.name not in new_names]
        links_to_tag = [l for l in new_links if l.name in spare_links]
        new_links = [l for l in new_links if l.name not in spare_links]
        if ports_to_tag or links_to_tag:
            draft.b_tags.append(self._tag_step(gid, lsi, ports_to_tag, links_to_tag))
            draft.claimed.update(l.name for l in links_to_tag)
        if new_links:
            draft.b_rest.append(self._links_step("create-links", None, new_links, gid, lsi))
        if dead_links:
            draft.e_rest.append(self._links_step("destroy-links", old, dead_links))
        for target_lsi, new_flows, old_flows in (
                (self.lsi0, split.lsi0_flows, old_split.lsi0_flows if old_split else {}),
                (lsi, split.graph_flows, old_split.graph_flows if old_split else {})):
            add, remove, removed = draft.flows_of(target_lsi)
            for cookie, flow in old_flows.items():
                stale = new_flows.get(cookie) != flow or _references(flow, recreated_ports)
                if stale:
                    remove.append(cookie)
                    removed.append(flow)
            for cookie, flow in new_flows.items():
                if old_flows.get(cookie) != flow or _references(flow, recreated_ports):
                    add.append(flow)

    def _assemble(self, draft: "_Draft") -> PlanResult:
        """The phases in order (A to E, see the module's docstring), as one plan."""
        summary = draft.summary
        # A graph's ports and links change in one step: one vSwitch reconfiguration.
        b_rest = _links_with_ports(draft.b_rest, "attach-ports", "create-links")
        e_rest = _links_with_ports(draft.e_rest, "detach-ports", "destroy-links")
        plan = Plan()
        plan.extend(draft.a)
        plan.extend(draft.b_lsi)
        # Retagging prepared ports is OVSDB metadata that no function step reads: it runs
        # alongside the creates.
        if draft.b_functions or draft.b_tags:
            plan.add(Group("create functions" + (", tag prepared ports" if draft.b_tags else ""),
                           tuple(draft.b_functions + draft.b_tags)))
        plan.extend(b_rest)
        if draft.c:
            plan.add(Group("start functions", tuple(draft.c)))
        flow_steps = []
        for lsi in sorted(draft.flow_changes, key=lambda name: (name != self.lsi0, name)):
            add, remove, removed = draft.flow_changes[lsi]
            if not add and not remove:
                continue
            summary["flows-added"] += len(add)
            summary["flows-removed"] += len(remove)
            flow_steps.append(Step("apply-flows", "", lsi, {"lsi": lsi, "add": add,
                                                            "remove": remove,
                                                            "removed": removed}))
        for lsi in sorted(draft.released):
            summary["flows-removed"] += len(draft.released[lsi].params["removed"])
            flow_steps.append(draft.released[lsi])
        # One bundle per LSI; bundles of different LSIs are independent of each other.
        if len(flow_steps) > 1:
            plan.add(Group("apply flows", tuple(flow_steps)))
        else:
            plan.extend(flow_steps)
        if draft.e_stop:
            plan.add(Group("stop functions", tuple(draft.e_stop)))
        plan.extend(e_rest)
        if draft.e_destroy:
            # Functions and graph-LSIs go together: by now nothing joins them any more (ports
            # and links are gone), and their undos (recreate) come before the re-attaching.
            if len(draft.e_destroy) > 1:
                plan.add(Group("destroy functions and LSIs", tuple(draft.e_destroy)))
            else:
                plan.extend(draft.e_destroy)
        return PlanResult(plan=plan, deployed=draft.deployed, touched=draft.touched,
                          summary=summary, claimed=draft.claimed)

    # --- step builders ---

    def _lsi_ids(self, gid: str) -> dict:
        return {"composer-owner": self.naming.prefix, "composer-graph": gid}

    def _port_spec(self, gid, fid, pid, ifname, kind: str = "system",
                   options: dict | None = None) -> dict:
        spec = {"name": ifname, "kind": kind,
                "external_ids": {"composer-owner": self.naming.prefix, "composer-graph": gid,
                                 "composer-function": fid, "composer-port": pid}}
        if options:
            spec["options"] = dict(options)
        return spec

    def function_port_specs(self, gid, deployed_fn, pids=None) -> list:
        """The vSwitch ports of a function (those of pids, else all), attached as its
        driver said (DeployedFunction.attachments)."""
        specs = []
        for pid, ifname in deployed_fn.ports:
            if pids is None or pid in pids:
                kind, options = deployed_fn.attachment(pid)
                specs.append(self._port_spec(gid, deployed_fn.id, pid, ifname, kind, options))
        return specs

    def _attachments(self, environment, template, function, ports) -> tuple:
        """What DeployedFunction.attachments holds for a function's ports."""
        attachments = getattr(self.compute, "attachments", None)
        if attachments is None:
            return ()
        return attachments(environment, template, function, ports)

    def _tag_step(self, gid, lsi, port_specs, links) -> Step:
        """Prepared ports and links become the graph's: their tags change."""
        spare = {"composer-owner": self.naming.prefix, "composer-graph": gid,
                 "composer-role": "spare"}
        link_ids = self._links_step("create-links", None, links, gid, lsi).params["external_ids"]
        tags: dict = {}
        for spec in port_specs:
            tags.setdefault(lsi, {})[spec["name"]] = spec["external_ids"]
        for link in links:
            lsi0_side, graph_side = link_ports(link.name)
            tags.setdefault(self.lsi0, {})[lsi0_side] = link_ids
            tags.setdefault(lsi, {})[graph_side] = link_ids
        previous = {where: {name: spare for name in ports} for where, ports in tags.items()}
        what = "%d ports, %d links" % (len(port_specs), len(links))
        return Step("tag-ports", gid, what, {"tags": tags, "previous": previous})

    def _create_function_step(self, gid, function, deployed_fn, resolution, spare=None) -> Step:
        params = {
            "environment": deployed_fn.environment, "template": resolution.template,
            "image": resolution.image, "function": function, "ports": deployed_fn.ports,
            "cores": deployed_fn.cores, "attachments": deployed_fn.planned_attachments(),
            "labels": {"composer-owner": self.naming.prefix, "composer-graph": gid,
                       "composer-function": function.id}}
        if spare is not None:
            params["spare"] = True
        return Step("create-function", gid, deployed_fn.instance, params)

    def _claim_spares(self, graph, old, spares, resolutions) -> dict:
        """function id -> the Spare a new function of the graph takes. A slot fits a native
        function with as many ports; functions being replaced keep their own names."""
        if not spares:
            return {}
        free = list(spares)
        old_functions = old.graph.functions if old is not None else {}
        claims = {}
        for fid in sorted(graph.functions):
            if fid in old_functions or not free:
                continue
            function = graph.functions[fid]
            resolution = resolutions.get((graph.id, fid))
            if resolution is None:
                resolution = resolutions[(graph.id, fid)] = self.compute.resolve(graph.id,
                                                                                 function)
            spare = next((s for s in free if s.environment == resolution.environment
                          and len(s.ports) == len(function.ports)), None)
            if spare is not None:
                free.remove(spare)
                claims[fid] = spare
        return claims

    def _function_ports(self, graph, old, claims) -> dict:
        """function id -> {port id: vSwitch port} of the functions not named after their ids:
        those kept or updated from old (as deployed), and those taking a spare slot."""
        out = {}
        if old is not None:
            for fid, function in graph.functions.items():
                previous = old.graph.functions.get(fid)
                if previous is not None and (previous == function or
                                             not _needs_replacement(previous, function)):
                    out[fid] = old.functions[fid].port_map()
        for fid, spare in claims.items():
            out[fid] = dict(zip(graph.functions[fid].port_ids(), spare.ports))
        return out

    def _teardown_functions(self, old, fids, stop_list, detach_list, destroy_list) -> None:
        """Stop, detach and destroy functions of a deployed graph, into the given lists
        (which may be the same list: the order is then stop, detach, destroy)."""
        graph = old.graph
        stops, destroys, detach = [], [], []
        for fid in sorted(fids):
            deployed_fn = old.functions[fid]
            stops.append(Step("stop-function", old.id, deployed_fn.instance,
                              {"environment": deployed_fn.environment}))
            detach += self.function_port_specs(old.id, deployed_fn)
            destroys.append(Step("destroy-function", old.id, deployed_fn.instance, {
                "environment": deployed_fn.environment, "template": {"id": deployed_fn.template},
                "image": deployed_fn.image, "function": graph.functions[fid],
                "ports": deployed_fn.ports, "cores": deployed_fn.cores,
                "labels": {"composer-owner": self.naming.prefix, "composer-graph": old.id,
                           "composer-function": fid}}))
        stop_list.extend(stops)
        if detach:
            detach_list.append(Step("detach-ports", old.id, old.lsi, {"lsi": old.lsi, "ports": detach}))
        destroy_list.extend(destroys)

    def _update_ports(self, graph, lsi, previous, function, deployed_fn, steps):
        gid, fid = graph.id, function.id
        old_ids = set(previous.port_ids())
        new_ids = set(function.port_ids())
        added = [p for p in function.ports if p.id not in old_ids]
        removed = [pid for pid in previous.port_ids() if pid not in new_ids]
        named = deployed_fn.port_map()
        ports = tuple((p.id, named.get(p.id) or self.naming.function_port(gid, fid, p.id))
                      for p in function.ports)
        new_ports = tuple((p.id, self.naming.function_port(gid, fid, p.id)) for p in added)
        kept = tuple(a for a in deployed_fn.attachments if a[0] not in removed)
        updated = replace(deployed_fn, ports=ports, attachments=kept + (self._attachments(
            deployed_fn.environment, deployed_fn.template, function, new_ports)
            if new_ports else ()))
        attach = self.function_port_specs(gid, updated, {p.id for p in added})
        detach = self.function_port_specs(gid, deployed_fn, set(removed))
        if added or removed:
            steps.append(Step("update-function", gid, deployed_fn.instance, {
                "environment": deployed_fn.environment, "add": tuple(added),
                "add_ifnames": {p.id: self.naming.function_port(gid, fid, p.id) for p in added},
                "remove": tuple(removed), "removed_ports": tuple(
                    p for p in previous.ports if p.id in removed),
                "removed_ifnames": {pid: deployed_fn.port_map()[pid] for pid in removed}}))
        return updated, attach, detach

    def _create_sap_step(self, gid, lsi, sap, name) -> Step:
        return Step("create-sap", gid, name, {"lsi": lsi, "sap": sap, "lsi0": self.lsi0,
                                               "external_ids": {
                                                   "composer-owner": self.naming.prefix,
                                                   "composer-graph": gid,
                                                   "composer-sap": sap.id}})

    def _destroy_sap_step(self, old, sid) -> Step:
        sap = old.graph.saps[sid]
        return Step("destroy-sap", old.id, old.sap_ports[sid], {
            "lsi": old.lsi, "sap": sap, "lsi0": self.lsi0,
            "external_ids": {"composer-owner": self.naming.prefix, "composer-graph": old.id,
                             "composer-sap": sid}})

    def _links_step(self, kind, old, links, gid=None, lsi=None) -> Step:
        gid = gid or old.id
        lsi = lsi or old.lsi
        return Step(kind, gid, "%d links" % len(links), {
            "lsi0": self.lsi0, "lsi": lsi, "names": [l.name for l in links],
            "external_ids": {"composer-owner": self.naming.prefix, "composer-graph": gid}})

    def _place(self, desired: dict, changed: set, deployed: dict, resolutions: dict,
               allocation) -> dict:
        """(graph id, function id) -> cores of each function a changed graph creates (the
        others keep theirs). Without an allocation: none."""
        if allocation is None:
            return {}
        out = {}
        for gid in sorted(changed):
            graph, old = desired[gid], deployed.get(gid)
            created = _created(graph, old)
            new = {}
            for fid in created:
                resolution = resolutions.get((gid, fid))
                if resolution is None:
                    resolution = resolutions[(gid, fid)] = self.compute.resolve(
                        gid, graph.functions[fid], allocation)
                new[fid] = (resolution.cpu, resolution.exclusive)
            placed = {fid: old.functions[fid].cores for fid in graph.functions
                      if old is not None and fid not in created and fid in old.functions}
            for fid, cores in self.compute.place(allocation, gid, graph, new, placed).items():
                out[(gid, fid)] = cores
        return out


def _rule_path(graph_id: str, rule_id: str) -> str:
    """The configuration node at fault for a rule of the expanded graph: the rule a
    combined rule came from, the decomposed function an inner rule of its template
    belongs to (configured ids hold neither SEP nor COMBINED: composer-types object-id)."""
    if SEP in rule_id:
        return function_path(graph_id, outer_function(rule_id))
    return rule_path(graph_id, rule_id.split(COMBINED, 1)[0])


def _created(graph: Graph, old) -> list:
    """The functions of a changed graph (expanded) that the plan creates: new ones and
    those replaced."""
    before = old.graph.functions if old is not None else {}
    return [fid for fid in sorted(graph.functions)
            if fid not in before or (before[fid] != graph.functions[fid]
                                     and _needs_replacement(before[fid], graph.functions[fid]))]


def decomposition_record(resolution) -> Decomposition:
    """The record the deployed graph keeps of a decomposed function's resolution."""
    return Decomposition(resolution.template_id, resolution.template["decomposition"],
                         {part.id: decomposition_record(r) for part, r in resolution.parts
                          if r.decomposed}, resolution.cost, resolution.reason,
                         resolution.rejected)


def _links_with_ports(steps: list, ports_kind: str, links_kind: str) -> list:
    """Where a graph has one ports step and one links step, the links join the ports step
    (at its place): they are created or destroyed in the same vSwitch change."""
    def single(kind):
        found: dict = {}
        for step in steps:
            if step.kind == kind:
                found[step.graph] = None if step.graph in found else step
        return {graph: step for graph, step in found.items() if step is not None}

    ports, links = single(ports_kind), single(links_kind)
    merged = {graph: replace(ports[graph], params=dict(ports[graph].params,
                                                       links=links[graph].params))
              for graph in ports.keys() & links.keys()}
    out = []
    for step in steps:
        if step.graph in merged and step.kind == links_kind:
            continue
        out.append(merged[step.graph] if step.graph in merged and step.kind == ports_kind
                   else step)
    return out


def _references(flow, ports: set) -> bool:
    if not ports:
        return False
    for field_name, value in flow.match:
        if field_name == "in_port" and value in ports:
            return True
    return any(a.kind == "output" and a.arg in ports for a in flow.actions)


__all__ = ["PlanResult", "Planner", "PlanningError", "function_path", "graph_path",
           "leaf_list_path", "link_ports", "rule_path", "sap_path"]
