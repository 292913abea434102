"""What is broken in a deployed graph (inspect), and the steps that make it whole again
(repair_plan): the same step kinds, handlers and names as a commit's plan, so that a
repaired graph is exactly what its commit made.

Repairs, by fault (agent/engine/health.py):
  PROCESS   the function is restarted: stop (kills what is left), start;
  FUNCTION  the function is made again: what is left of it goes (stop, detach its ports,
            destroy: each tolerates what is gone), then create, attach, start;
  PORT      the port is detached (if a dead row is left) and attached again;
  LINK      what is left of the link goes, both ends are made again;
  SAP       the SAP's port is made again;
  FLOWS     the graph's flows on that LSI are installed again, in one bundle;
  LSI       the graph is deployed again (redeploy: its teardown, then its deployment).
Every repair but FLOWS also installs the graph's flows again on both LSIs: a port made
again may have a new OpenFlow number, and flows name ports by number in the switch.
"""

from types import SimpleNamespace

from drivers import watch
from drivers.errors import DriverError, ResourceNotFound

from ..model.plan import Step
from ..network.split import deployed_split, link_ports
from .health import FLOWS, FUNCTION, LINK, LSI, PORT, PROCESS, SAP, Fault


def inspect(engine, dg, flows: bool = False) -> list:
    """The faults of deployed graph dg on the node now (flows: compare its flows too,
    which costs a dump of both LSIs)."""
    network, naming = engine.network, engine.naming
    driver = network.driver
    gid = dg.id
    try:
        present = {p.name for p in driver.list_ports(dg.lsi)}
    except ResourceNotFound:
        return [Fault(gid, LSI, dg.lsi, "its graph-LSI %s is gone" % dg.lsi)]
    faults = []
    for fid, fn in sorted(dg.functions.items()):
        found = _function_problems(engine, fn)
        lost = [e.detail for e in found if e.what == watch.LOST]
        exited = [e.detail for e in found if e.what == watch.EXITED]
        if lost:
            faults.append(Fault(gid, FUNCTION, fn.instance, "; ".join(lost), fid))
        elif exited:
            faults.append(Fault(gid, PROCESS, fn.instance, "; ".join(exited), fid))
        if not lost:
            for _, ifname in fn.ports:
                if ifname not in present:
                    faults.append(Fault(gid, PORT, ifname, "its port %s left LSI %s"
                                        % (ifname, dg.lsi), fid))
    for sid, name in sorted(dg.sap_ports.items()):
        if name not in present:
            faults.append(Fault(gid, SAP, name, "the port %s of SAP %s is gone" % (name, sid)))
    if dg.links:
        lsi0_ports = {p.name for p in driver.list_ports(network.lsi0)}
        for link in dg.links:
            lsi0_side, graph_side = link_ports(link.name)
            gone = [p for p, there in ((lsi0_side, lsi0_ports), (graph_side, present))
                    if p not in there]
            if gone:
                faults.append(Fault(gid, LINK, link.name, "virtual link %s lost %s"
                                    % (link.name, " and ".join(gone))))
    if flows:
        split = deployed_split(dg, naming)
        for lsi, expected in ((dg.lsi, split.graph_flows), (network.lsi0, split.lsi0_flows)):
            differ = _flows_differ(driver, naming, lsi, gid, expected)
            if differ:
                faults.append(Fault(gid, FLOWS, lsi, differ))
    return faults


def _function_problems(engine, fn) -> list:
    try:
        return engine.compute.driver(fn.environment).problems(fn.instance)
    except DriverError as exc:
        return [watch.Event(watch.FUNCTION, fn.instance, watch.LOST, str(exc))]


def _flows_differ(driver, naming, lsi: str, gid: str, expected: dict) -> str:
    """What differs between the graph's flows on lsi and what it compiles to ("": none)."""
    from drivers.vswitch.openflow import canonical
    mine: dict = {}
    for flow in driver.dump_flows(lsi):
        if _graphs(naming, flow.cookie, gid):
            mine.setdefault(flow.cookie, []).append(flow)
    missing = [c for c, f in expected.items() if mine.get(c) != [canonical(f)]]
    extra = [c for c in mine if c not in expected]
    parts = []
    if missing:
        parts.append("%d missing or changed" % len(missing))
    if extra:
        parts.append("%d not the graph's" % len(extra))
    return ", ".join(parts)


# --- repairs ---

def repair_plan(engine, dg, faults) -> tuple:
    """(steps in order, ids of the functions restarted or made again) that repair the
    faults of dg; LSI faults are not repaired here (see redeploy)."""
    planner = engine.planner
    gid, lsi = dg.id, dg.lsi
    kinds = {f.kind for f in faults}
    remade = sorted({f.function for f in faults if f.kind == FUNCTION})
    restarted = sorted({f.function for f in faults if f.kind == PROCESS} - set(remade))
    steps = []
    if remade:
        stops, detach, destroys = [], [], []
        planner._teardown_functions(dg, remade, stops, detach, destroys)
        steps += stops + detach + destroys
        starts, attach = [], []
        for fid in remade:
            fn = dg.functions[fid]
            resolution = SimpleNamespace(template={"id": fn.template}, image=fn.image)
            steps.append(planner._create_function_step(gid, dg.graph.functions[fid], fn,
                                                       resolution))
            attach += planner.function_port_specs(gid, fn)
            starts.append(Step("start-function", gid, fn.instance,
                               {"environment": fn.environment}))
        steps.append(Step("attach-ports", gid, lsi, {"lsi": lsi, "ports": attach}))
        steps += starts
    for fid in restarted:
        fn = dg.functions[fid]
        steps += [Step("stop-function", gid, fn.instance, {"environment": fn.environment}),
                  Step("start-function", gid, fn.instance, {"environment": fn.environment})]
    ports = [f for f in faults if f.kind == PORT and f.function not in remade]
    if ports:
        specs = []
        for fault in ports:
            fn = dg.functions[fault.function]
            pid = next(p for p, name in fn.ports if name == fault.resource)
            specs += planner.function_port_specs(gid, fn, {pid})
        steps += [Step("detach-ports", gid, lsi, {"lsi": lsi, "ports": specs}),
                  Step("attach-ports", gid, lsi, {"lsi": lsi, "ports": specs})]
    links = [l for l in dg.links if l.name in {f.resource for f in faults if f.kind == LINK}]
    if links:
        steps += [planner._links_step("destroy-links", dg, links),
                  planner._links_step("create-links", dg, links)]
    for fault in faults:
        if fault.kind == SAP:
            sid = next(s for s, name in dg.sap_ports.items() if name == fault.resource)
            destroy = planner._destroy_sap_step(dg, sid)
            steps += [destroy, Step("create-sap", gid, fault.resource, destroy.params)]
    if kinds - {PROCESS}:
        steps += flow_steps(engine, dg, everywhere=bool(kinds - {FLOWS, PROCESS}),
                            lsis={f.resource for f in faults if f.kind == FLOWS})
    return steps, remade + restarted


def flow_steps(engine, dg, everywhere: bool = True, lsis=()) -> list:
    """Steps installing the graph's flows again (on both LSIs, or on lsis): one bundle
    per LSI that removes the graph's cookies there and adds its flows."""
    network, naming = engine.network, engine.naming
    split = deployed_split(dg, naming)
    steps = []
    for lsi, expected in ((network.lsi0, split.lsi0_flows), (dg.lsi, split.graph_flows)):
        if not everywhere and lsi not in lsis:
            continue
        stale = sorted(set(expected) | _graph_cookies(network.driver, naming, lsi, dg.id))
        if expected or stale:
            steps.append(Step("apply-flows", dg.id, lsi, {
                "lsi": lsi, "add": list(expected.values()), "remove": stale, "removed": []}))
    return steps


def _graph_cookies(driver, naming, lsi: str, gid: str) -> set:
    try:
        flows = driver.dump_flows(lsi)
    except DriverError:
        return set()
    return {f.cookie for f in flows if _graphs(naming, f.cookie, gid)}


def _graphs(naming, cookie: int, gid: str) -> bool:
    """Whether a cookie is one of the graph's (its rules' and links' flows)."""
    return cookie & naming.GRAPH_MASK == naming.cookie_base | naming.graph_cookie_bits(gid)
