"""Operational state of the service graphs: status, implementation, cores, counters.

Built as composer-sffg JSON and parsed into the caller's libyang context. Each state
container repeats its config (OpenConfig style: the applied configuration) and adds what
the engine and the vSwitch know. Counters are read once per LSI per request.
"""

import json
import logging
import time

from ..model.data import parse
from ..model.decompose import SEP, expanded_rules
from ..model.errors import ValidationError
from ..network.split import PortMap

LOG = logging.getLogger(__name__)

STATUS = "composer-types:%s"


def _resolution(template: str, cost: float, reason: str, rejected) -> dict:
    out = {"template": template, "cost": "%.2f" % cost}
    if reason:
        out["reason"] = reason
    if rejected:
        out["rejected"] = [{"template": t, "reason": why} for t, why in rejected]
    return out


def _counters(stats: dict | None) -> dict:
    """The counters the port keeps (a port whose device is gone keeps none)."""
    stats = stats or {}
    out = {}
    for key in ("rx-packets", "rx-bytes", "tx-packets", "tx-bytes"):
        value = stats.get(key.replace("-", "_"), 0)
        if value is not None:
            out[key] = str(int(value))
    return out


def graph_status(engine, gid: str) -> dict:
    """The status leaves of a graph's state (status, last-error, status-reason), as <get>
    and the graph-status-change notification show them."""
    status, error = engine.graph_status(gid)
    leaves = {"status": STATUS % status}
    if error:
        leaves["last-error"] = error
    reason = engine.status_reason(gid)
    if reason:
        leaves["status-reason"] = reason
    return leaves


def graph_facts(engine, dg) -> dict:
    """What a deployed graph's state adds to its status (its LSI, links, repairs)."""
    facts = {"graph-lsi": dg.lsi, "virtual-links": len(dg.links),
             "repair-count": engine.health.repairs(dg.id)}
    if dg.deployed_at:
        facts["deployed-at"] = dg.deployed_at
    return facts


def function_state(engine, gid: str, deployed) -> dict:
    """A deployed function's (or part's) state beyond its configuration: status (and why),
    the chosen implementation and why, its environment and cores, its restarts, its last
    error, the download of its image."""
    status, reason = engine.health.function_status(
        gid, deployed.id, engine.compute.status.get(deployed.instance, deployed.status))
    state = {"status": STATUS % status, "implementation": deployed.template,
             "restart-count": engine.health.restarts(gid, deployed.id),
             "execution-environment": STATUS % deployed.environment,
             "cpu-core": list(deployed.cores)}
    usage = getattr(engine, "usage", None)
    if usage is not None:
        state.update(usage.state(gid, deployed.id))
    if reason:
        state["status-reason"] = reason
    if deployed.cores:
        state["cores-exclusive"] = deployed.exclusive
    if deployed.error:
        state["last-error"] = deployed.error
    if deployed.reason or deployed.rejected:
        state["resolution"] = _resolution(deployed.template, deployed.cost, deployed.reason,
                                          deployed.rejected)
    port_updates = getattr(engine.compute, "port_updates", None)
    updates = port_updates(deployed.environment, deployed.instance) if port_updates else None
    if updates:
        state["port-updates"] = {
            "method": updates["method"], "count": int(updates["count"]),
            "last-update": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(updates["last"]))}
    download = getattr(engine.compute, "downloads", {}).get((gid, deployed.id))
    if download is not None and (download.status == "downloading" or
                                 (download.sha256 and download.sha256 in deployed.image)):
        # one under way (for the commit that will replace the function), or the one that
        # brought its image (the store keeps an image under its digest)
        state["image"] = download.state()
    return state


_RANKS = ("running", "degraded", "failed")


def decomposed_state(engine, dg, fid: str) -> dict:
    """The state of a function its template decomposed: the template (and why), each part's
    state; its status is the worst of its parts', its status-reason theirs."""
    record = dg.decompositions[fid]
    parts = [dict(function_state(engine, dg.id, deployed), id=pid)
             for pid, deployed in sorted(dg.parts(fid).items())]
    worst = max((p["status"].split(":")[-1] for p in parts),
                key=lambda s: _RANKS.index(s) if s in _RANKS else 1, default="running")
    state = {"status": STATUS % worst, "implementation": record.template}
    reasons = ["%s: %s" % (p["id"], p["status-reason"]) for p in parts
               if p.get("status-reason")]
    if reasons:
        state["status-reason"] = "; ".join(reasons)
    if record.reason or record.rejected:
        state["resolution"] = _resolution(record.template, record.cost, record.reason,
                                          record.rejected)
    if parts:
        state["decomposition"] = {"part": parts}
    return state


def function_states(engine, dg) -> dict:
    """function id as configured -> its state (function_state, or decomposed_state for a
    function made of parts, whose parts are not functions of the configuration)."""
    out = {fid: function_state(engine, dg.id, deployed)
           for fid, deployed in dg.functions.items() if SEP not in fid}
    for fid in dg.decompositions:
        out[fid] = decomposed_state(engine, dg, fid)
    return out


def _downloading(engine, gid: str, listed) -> dict:
    """The functions of a graph, not in listed, whose image a commit is downloading before
    it creates them (a part's download shows under its function)."""
    out: dict = {}
    for (graph, fid), download in list(getattr(engine.compute, "downloads", {}).items()):
        outer = fid.split(SEP, 1)[0] if fid else fid
        if graph == gid and outer and outer not in listed and outer not in out and \
                download.status == "downloading":
            out[outer] = {"id": outer, "state": {"id": outer, "image": download.state()}}
    return {"functions": {"function": [out[f] for f in sorted(out)]}} if out else {}


class GraphState:
    """A StateProvider for /service-graphs (see agent/engine/interface.py)."""

    def __init__(self, engine):
        self.engine = engine

    def _stats(self, reader, lsi):
        if self.engine.health.node_faults():
            return {}       # a vSwitch daemon is being restarted: no counters to wait for
        try:
            return reader(lsi)
        except Exception as exc:  # noqa: BLE001 - counters are best effort
            LOG.debug("cannot read counters of %s: %s", lsi, exc)
            return {}

    def document(self) -> dict:
        engine = self.engine
        driver = engine.network.driver
        lsi0 = engine.network.lsi0
        graphs = []
        lsi0_ports = self._stats(driver.port_stats, lsi0)
        lsi0_flows = self._stats(driver.flow_stats, lsi0)
        # What is deployed (running's graphs), and what a transaction is changing now:
        # a graph a refused commit would have added is in neither.
        # ... and the graphs whose images a commit is fetching before it begins (pending).
        known = set(engine.deployed) | set(engine.in_progress) | \
            set(getattr(engine, "fetching", ()))
        for gid in sorted(known):
            leaves = graph_status(engine, gid)
            dg = engine.deployed.get(gid)
            entry = {"id": gid, "state": dict(leaves, id=gid)}
            error = leaves.get("last-error", "")
            graphs.append(entry)
            if dg is None:
                entry.update(_downloading(engine, gid, ()))
                continue
            try:
                state, parts = self._graph(dg, leaves["status"], lsi0_ports, lsi0_flows)
                entry["state"].update(state)
                entry.update(parts)
            except Exception as exc:  # noqa: BLE001 - one graph must not hide the others
                LOG.exception("the operational state of graph %s cannot be read", gid)
                entry["state"]["last-error"] = "; ".join(filter(None, (
                    error, "its operational state cannot be read: %s: %s"
                    % (type(exc).__name__, exc))))
        return {"composer-sffg:service-graphs": {"service-graph": graphs}} if graphs else {}

    def _graph(self, dg, status, lsi0_ports, lsi0_flows) -> tuple:
        """What a deployed graph's entry adds to its state, and its functions, SAPs and
        rules."""
        driver = self.engine.network.driver
        source = dg.source
        state = {k: v for k, v in source.get("config", {}).items()}
        state["status"] = status
        state.update(graph_facts(self.engine, dg))
        port_stats = self._stats(driver.port_stats, dg.lsi)
        flow_stats = self._stats(driver.flow_stats, dg.lsi)
        parts = self._functions(dg, source, port_stats)
        parts.update(self._saps(dg, source, port_stats, lsi0_ports))
        parts.update(self._rules(dg, source, flow_stats, lsi0_flows))
        return state, parts

    def _functions(self, dg, source, port_stats) -> dict:
        out = []
        for fn in source.get("functions", {}).get("function", ()):
            fid = fn["id"]
            deployed = dg.functions.get(fid)
            state = dict(fn.get("config", {}))
            if deployed is not None:
                state.update(function_state(self.engine, dg.id, deployed))
            elif fid in dg.decompositions:
                state.update(decomposed_state(self.engine, dg, fid))
            ports = []
            port_map = deployed.port_map() if deployed else {}
            for port in fn.get("ports", {}).get("port", ()):
                pstate = dict(port.get("config", {}))
                ifname = port_map.get(port["id"])
                if ifname:
                    pstate.update({"vswitch-port": ifname, "technology": "composer-types:veth",
                                   "counters": _counters(port_stats.get(ifname))})
                ports.append({"id": port["id"], "state": pstate})
            item = {"id": fid, "state": state}
            if ports:
                item["ports"] = {"port": ports}
            out.append(item)
        listed = {item["id"] for item in out}
        out += _downloading(self.engine, dg.id, listed).get("functions", {}).get("function", [])
        return {"functions": {"function": out}} if out else {}

    def _saps(self, dg, source, port_stats, lsi0_ports) -> dict:
        out = []
        for sap_entry in source.get("saps", {}).get("sap", ()):
            sid = sap_entry["id"]
            sap = dg.graph.saps[sid]
            state = json.loads(json.dumps(sap_entry.get("config", {})))
            status, reason = self.engine.health.part_status(
                dg.id, [dg.sap_ports.get(sid, sap.if_name)])
            state.update({"status": STATUS % status, "sap-type": STATUS % sap.type})
            if reason:
                state["status-reason"] = reason
            if sap.on_lsi0:
                state["vswitch-port"] = sap.if_name
                state["counters"] = _counters(lsi0_ports.get(sap.if_name))
            elif sid in dg.sap_ports:
                state["vswitch-port"] = dg.sap_ports[sid]
                state["counters"] = _counters(port_stats.get(dg.sap_ports[sid]))
            out.append({"id": sid, "state": state})
        return {"saps": {"sap": out}} if out else {}

    def _rules(self, dg, source, flow_stats, lsi0_flows) -> dict:
        naming = self.engine.naming
        ports = PortMap(dg.graph, naming, dg.function_ports())
        out = []
        lsi0 = self.engine.network.lsi0
        for rule_entry in source.get("flow-rules", {}).get("flow-rule", ()):
            rid = rule_entry["id"]
            # A rule from a port of a decomposed function is as many rules as the parts'
            # exits to that port (none when their matches exclude its own): their sum.
            installed, total, parts = [], [0, 0], []
            for rule in expanded_rules(dg.graph, rid):
                on_lsi0 = ports.on_lsi0(rule.in_port)
                counts = (lsi0_flows if on_lsi0 else flow_stats).get(
                    naming.rule_cookie(dg.id, rule.id), (0, 0))
                total = [total[0] + counts[0], total[1] + counts[1]]
                where = [lsi0 if on_lsi0 else dg.lsi]
                if any(ports.on_lsi0(o) != on_lsi0 for o in rule.outputs()):
                    where.append(dg.lsi if on_lsi0 else lsi0)     # it crosses
                installed += [w for w in where if w not in installed]
                parts += [ports.port(e) for e in (rule.in_port, *rule.outputs())]
            state = dict(rule_entry.get("config", {}))
            state.update({"packets": str(total[0]), "bytes": str(total[1])})
            if installed:
                state["installed-on"] = installed
            status, reason = self.engine.health.part_status(dg.id, installed + parts)
            state["status"] = STATUS % status
            if reason:
                state["status-reason"] = reason
            out.append({"id": rid, "state": state})
        return {"flow-rules": {"flow-rule": out}} if out else {}

    def build(self, ctx):
        document = self.document()
        if not document:
            return None
        try:
            return parse(ctx, json.dumps(document), "json", config_only=False, validate=False)
        except ValidationError as exc:
            # Some graph's state holds what the model refuses: find it, and show it by its
            # status alone, so that it does not hide the others' state.
            graphs = document["composer-sffg:service-graphs"]["service-graph"]
            for index, entry in enumerate(graphs):
                try:
                    parse(ctx, json.dumps({"composer-sffg:service-graphs": {
                        "service-graph": [entry]}}), "json", config_only=False,
                        validate=False).free()
                except ValidationError as bad:
                    LOG.error("the operational state of graph %s is invalid: %s",
                              entry["id"], bad)
                    state = entry["state"]
                    graphs[index] = {"id": entry["id"], "state": {
                        "id": entry["id"], "status": state["status"],
                        "last-error": "its operational state cannot be built: %s" % bad}}
            LOG.debug("operational state of the graphs rebuilt after: %s", exc)
            return parse(ctx, json.dumps(document), "json", config_only=False,
                         validate=False)
