"""What is deployed on the node, per graph: the engine's record, the planner's input.

The record of a graph keeps the JSON entry libyang printed (its source), what each
function became on the node (instance, environment, vSwitch ports), the graph's SAP
ports and virtual links. to_json/from_json are its form in the engine's snapshot.
"""

from dataclasses import dataclass, field, replace

from .decompose import Decomposition, expand
from .graph import Endpoint, Graph, graph_from_dict


@dataclass(frozen=True)
class DeployedFunction:
    id: str
    instance: str
    environment: str
    template: str
    image: str
    ports: tuple = ()            # (port id, vSwitch interface) in order
    cores: tuple = ()
    status: str = "running"
    error: str = ""
    # How ports are attached to the vSwitch where not as "system" ports (a veth end): (port
    # id, kind, options as sorted (key, value) pairs), see drivers/compute/base.py.
    attachments: tuple = ()
    # What it holds of the node (the resolver's and the scheduler's accounts): MiB of
    # memory, cores' worth of CPU, and whether its cores are its own (poll mode).
    memory: int = 0
    cpu: float = 0.0
    exclusive: bool = False
    # How the resolver chose: its cost, why, and (template, why not) of the others.
    cost: float = 0.0
    reason: str = ""
    rejected: tuple = ()

    def port_map(self) -> dict:
        return dict(self.ports)

    def attachment(self, port_id: str) -> tuple:
        """(kind, options dict) of a port."""
        for pid, kind, options in self.attachments:
            if pid == port_id:
                return kind, dict(options)
        return "system", {}

    def planned_attachments(self) -> tuple:
        """(port id, vSwitch port, kind, options) of every port, in order."""
        out = []
        for pid, name in self.ports:
            kind, options = self.attachment(pid)
            out.append((pid, name, kind, tuple(sorted(options.items()))))
        return tuple(out)


@dataclass(frozen=True)
class Link:
    """One virtual link of a graph and what it carries."""
    index: int
    name: str
    graph_target: Endpoint | None = None    # towards the graph-LSI: output here
    lsi0_target: Endpoint | None = None     # towards LSI-0: output here


@dataclass
class DeployedGraph:
    id: str
    source: dict                 # the service-graph entry as libyang prints it (JSON)
    lsi: str
    functions: dict = field(default_factory=dict)   # id -> DeployedFunction
    sap_ports: dict = field(default_factory=dict)   # sap id -> vSwitch port (graph-LSI SAPs)
    links: tuple = ()                               # Link
    status: str = "running"
    error: str = ""
    deployed_at: str = ""
    # function id -> Decomposition: the functions its template decomposed into parts
    # (agent/model/decompose.py); functions holds the parts, not these functions.
    decompositions: dict = field(default_factory=dict)
    # The graph as deployed: source's graph, its decomposed functions expanded.
    _graph: Graph | None = field(default=None, repr=False, compare=False)
    # The compiled flows and links (agent/network/split.py, deployed_split), kept with
    # the record once computed.
    _split: object = field(default=None, repr=False, compare=False)
    # source's graph as configured (decomposed functions not expanded).
    _declared: Graph | None = field(default=None, repr=False, compare=False)

    @property
    def graph(self) -> Graph:
        if self._graph is None:
            self._graph = expand(self.declared, self.decompositions)
        return self._graph

    @property
    def declared(self) -> Graph:
        if self._declared is None:
            self._declared = self._graph if self._graph is not None and \
                not self.decompositions else graph_from_dict(self.source)
        return self._declared

    def parts(self, function_id: str) -> dict:
        """The deployed parts of a decomposed function (id -> DeployedFunction), or the
        function itself."""
        if function_id not in self.decompositions:
            found = self.functions.get(function_id)
            return {function_id: found} if found is not None else {}
        head = function_id + "/"
        return {fid: f for fid, f in self.functions.items() if fid.startswith(head)}

    def function_ports(self) -> dict:
        """function id -> {port id: vSwitch port}, as deployed."""
        return {fid: f.port_map() for fid, f in self.functions.items()}


def _endpoint_out(endpoint: Endpoint | None):
    if endpoint is None:
        return None
    return {"sap": endpoint.sap} if endpoint.sap else {"function": endpoint.function,
                                                       "port": endpoint.port}


def _endpoint_in(data) -> Endpoint | None:
    if data is None:
        return None
    return Endpoint(sap=data.get("sap"), function=data.get("function"), port=data.get("port"))


def to_json(graphs: dict, node: dict) -> dict:
    out = {"version": 1, "node": node, "graphs": {}}
    for gid, dg in graphs.items():
        out["graphs"][gid] = {
            "source": dg.source, "lsi": dg.lsi, "status": dg.status, "error": dg.error,
            "deployed_at": dg.deployed_at, "sap_ports": dg.sap_ports,
            "functions": {fid: {"instance": f.instance, "environment": f.environment,
                                "template": f.template, "image": f.image,
                                "ports": [list(p) for p in f.ports], "cores": list(f.cores),
                                "status": f.status, "error": f.error,
                                **({"attachments": [[pid, kind, dict(options)]
                                                    for pid, kind, options in f.attachments]}
                                   if f.attachments else {}),
                                **_accounts_out(f)}
                          for fid, f in dg.functions.items()},
            **({"decompositions": {fid: d.to_json() for fid, d in dg.decompositions.items()}}
               if dg.decompositions else {}),
            "links": [{"index": l.index, "name": l.name,
                       "graph_target": _endpoint_out(l.graph_target),
                       "lsi0_target": _endpoint_out(l.lsi0_target)} for l in dg.links],
        }
    return out


def from_json(data: dict):
    """(graphs, node) from a snapshot."""
    graphs = {}
    for gid, g in data.get("graphs", {}).items():
        graphs[gid] = DeployedGraph(
            id=gid, source=g["source"], lsi=g["lsi"], status=g.get("status", "running"),
            error=g.get("error", ""), deployed_at=g.get("deployed_at", ""),
            sap_ports=dict(g.get("sap_ports", {})),
            functions={fid: DeployedFunction(id=fid, instance=f["instance"],
                                             environment=f["environment"],
                                             template=f["template"], image=f["image"],
                                             ports=tuple(tuple(p) for p in f["ports"]),
                                             cores=tuple(f.get("cores", ())),
                                             status=f.get("status", "running"),
                                             error=f.get("error", ""),
                                             attachments=tuple(
                                                 (pid, kind, tuple(sorted(options.items())))
                                                 for pid, kind, options
                                                 in f.get("attachments", ())),
                                             **_accounts_in(f))
                       for fid, f in g.get("functions", {}).items()},
            decompositions={fid: Decomposition.from_json(d)
                            for fid, d in g.get("decompositions", {}).items()},
            links=tuple(Link(l["index"], l["name"], _endpoint_in(l["graph_target"]),
                             _endpoint_in(l["lsi0_target"])) for l in g.get("links", ())))
    return graphs, data.get("node", {})



def _accounts_out(f: DeployedFunction) -> dict:
    out = {}
    if f.memory or f.cpu or f.exclusive:
        out["accounts"] = {"memory": f.memory, "cpu": f.cpu, "exclusive": f.exclusive}
    if f.reason or f.rejected:
        out["resolution"] = {"cost": f.cost, "reason": f.reason,
                             "rejected": [list(r) for r in f.rejected]}
    return out


def _accounts_in(f: dict) -> dict:
    accounts = f.get("accounts", {})
    resolution = f.get("resolution", {})
    return {"memory": int(accounts.get("memory", 0)), "cpu": float(accounts.get("cpu", 0)),
            "exclusive": bool(accounts.get("exclusive", False)),
            "cost": float(resolution.get("cost", 0)), "reason": resolution.get("reason", ""),
            "rejected": tuple(tuple(r) for r in resolution.get("rejected", ()))}


def with_status(dg: DeployedGraph, status: str, error: str = "") -> DeployedGraph:
    return replace(dg, status=status, error=error, _graph=dg._graph, _split=dg._split,
                   _declared=dg._declared)


def with_source(dg: DeployedGraph, source: dict) -> DeployedGraph:
    """dg with an equal source object (the one just read, which carries its text)."""
    if dg.source is source:
        return dg
    return replace(dg, source=source, _graph=dg._graph, _split=dg._split,
                   _declared=dg._declared)
