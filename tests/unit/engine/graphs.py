"""Small graphs for unit tests, built as Graph values directly."""

from agent.model.graph import Endpoint, Function, Graph, Port, Rule, Sap


def fn(fid, *ports, capability="firewall", **kw):
    return Function(id=fid, capability=capability, ports=tuple(Port(p) for p in ports), **kw)


def sap_if(sid, nic):
    return Sap(id=sid, type="interface", if_name=nic)


def sap_vlan(sid, nic, vid):
    return Sap(id=sid, type="vlan", if_name=nic, vlan_id=vid)


def sap_gre(sid, local="10.0.0.1", remote="10.0.0.2", key=5):
    return Sap(id=sid, type="gre", local_ip=local, remote_ip=remote, key=key)


def sap_host(sid, ip="192.0.2.1"):
    return Sap(id=sid, type="host-stack", ipv4=ip, prefix_length=24)


def S(sid):
    return Endpoint(sap=sid)


def P(fid, pid):
    return Endpoint(function=fid, port=pid)


def rule(rid, in_port, *outputs, priority=10, match=(), actions=None):
    acts = tuple(actions) if actions is not None else tuple(("output", o) for o in outputs)
    return Rule(id=rid, priority=priority, in_port=in_port, match=tuple(match), actions=acts)


def graph(gid, functions=(), saps=(), rules=()):
    return Graph(id=gid, functions={f.id: f for f in functions}, saps={s.id: s for s in saps},
                 rules={r.id: r for r in rules})


def chain(gid="g1"):
    """host1 -- eth1 -- fw -- eth2 -- host2, both directions."""
    return graph(gid, [fn("fw", "in", "out")], [sap_if("lan", "eth1"), sap_if("wan", "eth2")], [
        rule("lan-fw", S("lan"), P("fw", "in")),
        rule("fw-wan", P("fw", "out"), S("wan")),
        rule("wan-fw", S("wan"), P("fw", "out")),
        rule("fw-lan", P("fw", "in"), S("lan")),
    ])
