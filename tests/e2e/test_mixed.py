"""One graph, three execution environments, through NETCONF on a real agent: a native
firewall, a docker firewall and a kvm forwarder (the TCG guest of nsf/guest.py) chained
between two hosts.

    h1 -- eth1 -- fw (native, blocks tcp/23) -- dfw (docker, blocks tcp/5202)
                  -- vm (kvm, bridges its two ports) -- eth2 -- h2

Traffic crosses all three (each rule leads to the next function only), each firewall's
own block shows it is in the path, and `<get>` names each function's environment. The
graph's deletion leaves no namespace, container, domain, tap or veth; kill -9 of the agent
at several points of the mixed deploy converges, after a restart, to what running holds,
with no orphan of any environment (recovery finds containers by label, domains by their
metadata).

The agent uses the session's dockerd (docker.mode existing, tests/dockerlab.py).
"""

import threading
import time
from pathlib import Path

import pytest
from lxml import etree

from agent.tools.graphxml import GraphXml, config, kvm_template
from tests import dockerlab, guest, resources
from tests.e2e.node import Node, eventually, resources_diff
from tests.e2e.test_deploy import SFFG, delete, graph_state, iperf_bits

pytestmark = [
    pytest.mark.skipif(dockerlab.unavailable() is not None,
                       reason=dockerlab.unavailable() or ""),
    pytest.mark.skipif(guest.unavailable() is not None, reason=guest.unavailable() or ""),
]

FUNCTIONS = {"fw": "native", "dfw": "docker", "vm": "kvm"}


@pytest.fixture(scope="module")
def node(session_tmp):
    hosts = {"eth1": "10.65.0.1/24", "eth2": "10.65.0.2/24"}
    extra = '[docker]\nmode = "existing"\nhost = "%s"\n' % dockerlab.host()
    with Node("x", session_tmp, hosts, prefix_suffix="x",
              environments=("native", "docker", "kvm"), extra_config=extra) as n:
        yield n


def _graph():
    g = GraphXml("g1")
    g.function("fw", "firewall", "lan", "wan", template="native-firewall",
               parameters=["block-tcp-dst=23"])
    g.function("dfw", "firewall", "lan", "wan", template="docker-firewall",
               parameters=["block-tcp-dst=5202"])
    g.function("vm", "vm-forwarder", "lan", "wan", template="test-vm")
    g.sap_interface("lan", "eth1").sap_interface("wan", "eth2")
    g.bidirectional("a", "lan", "fw:lan")
    g.bidirectional("b", "fw:wan", "dfw:lan")
    g.bidirectional("c", "dfw:wan", "vm:lan")
    g.bidirectional("d", "vm:wan", "wan")
    return g


def _config():
    text = config(_graph())
    head, _, tail = text.rpartition("</config>")
    return head + kvm_template("test-vm", "vm-forwarder", str(guest.path())) + \
        "</config>" + tail


def _containers(node) -> list:
    import docker
    client = docker.APIClient(base_url=dockerlab.host())
    try:
        return sorted(c["Names"][0].lstrip("/") for c in client.containers(
            all=True, filters={"label": "composer.prefix=%s" % node.resource_prefix}))
    finally:
        client.close()


def _processes(node) -> dict:
    """{container name: its Id, domain name: its QEMU's pid}: the same after a restart
    when the agent adopted them, other when it made them again."""
    import docker
    client = docker.APIClient(base_url=dockerlab.host())
    try:
        out = {name: client.inspect_container(name)["Id"] for name in _containers(node)}
    finally:
        client.close()
    for domain in guest.domain_names(node.resource_prefix, active=True):
        out[domain] = Path("/run/libvirt/qemu/%s.pid" % domain).read_text().strip()
    return out


def _relays(node) -> list:
    """The root-namespace links of the node's VM ports (a tap and a veth end per port)."""
    return sorted(n for n in resources.link_names() if n.startswith(node.resource_prefix))


def _everything(node) -> dict:
    """What the agent made on the node, in every environment."""
    return {"node": node.node_resources(), "containers": _containers(node),
            "domains": guest.domain_names(node.resource_prefix), "relays": _relays(node)}


@pytest.fixture
def clean(node):
    """The node before the test; the test must leave it so (its graph deleted)."""
    before = _everything(node)
    yield before
    with node.netconf(timeout=300) as m:
        m.discard_changes()
        running = etree.fromstring(m.get_config(source="running").xml.encode())
        for gid in running.xpath("//s:service-graph/s:id/text()", namespaces=SFFG):
            delete(m, gid)
    assert eventually(lambda: _everything(node) == before, 10, 0.05), \
        resources_diff(before, _everything(node))


def _functions(m) -> dict:
    """{function id: (status, implementation, environment)} from <get>."""
    state = graph_state(m, "g1")
    out = {}
    for function in state.iter("{%s}function" % SFFG["s"]):
        fid = function.findtext("{%s}id" % SFFG["s"])
        leaf = lambda name: (function.findtext("{%s}state/{%s}%s" % (SFFG["s"], SFFG["s"], name))
                             or "").split(":")[-1]
        out[fid] = (leaf("status"), leaf("implementation"), leaf("execution-environment"))
    return out


def _graph_status(m) -> str:
    return graph_state(m, "g1").xpath("//s:service-graph/s:state/s:status/text()",
                                      namespaces=SFFG)[0].split(":")[-1]


def _assert_mixed_graph_runs(node, m):
    """Every function running in its environment, one of each kind of resource, and
    traffic through all three."""
    assert _graph_status(m) == "running"
    assert _functions(m) == {
        "fw": ("running", "native-firewall", "native"),
        "dfw": ("running", "docker-firewall", "docker"),
        "vm": ("running", "test-vm", "kvm")}, _functions(m)
    assert len(_containers(node)) == 1
    assert len(guest.domain_names(node.resource_prefix, active=True)) == 1
    assert len(_relays(node)) == 4                   # a tap and a veth end per VM port
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    assert h1.ping(h2.ip), node.log_tail()
    assert h2.ping(h1.ip)
    bits = iperf_bits(h1, h2, 5201)
    print("iperf3 through native, docker and kvm: %.1f Mbit/s" % (bits / 1e6))
    assert bits > 1e6
    assert iperf_bits(h1, h2, 23) == 0.0             # the native firewall's block
    assert iperf_bits(h1, h2, 5202) == 0.0           # the docker firewall's block


def test_native_docker_and_kvm_in_one_graph(node, clean):
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    assert not h1.ping(h2.ip, count=1)
    with node.netconf(timeout=300) as m:
        m.edit_config(target="candidate", config=_config())
        started = time.monotonic()
        m.commit()
        print("commit of a native + docker + kvm graph: %.0f ms"
              % ((time.monotonic() - started) * 1000))
        _assert_mixed_graph_runs(node, m)
        delete(m, "g1")
    assert eventually(lambda: _everything(node) == clean, 10, 0.05), \
        resources_diff(clean, _everything(node))
    assert not h1.ping(h2.ip, count=1)


def _kill_point(node, point):
    """A check that is true once the deploy has reached the point where the agent is
    killed."""
    prefix = node.resource_prefix
    return {
        # the first container of the deploy exists (the VM may not yet)
        "container-made": lambda: bool(_containers(node)),
        # the kvm function's first port (a tap and its relay) is made, its domain not yet
        "vm-ports-made": lambda: bool(_relays(node)),
        # the domain runs, its guest is booting: the commit waits for its ready line
        "vm-booting": lambda: bool(guest.domain_names(prefix, active=True)),
    }[point]


@pytest.mark.parametrize("point", ["container-made", "vm-ports-made", "vm-booting",
                                   "acknowledged"])
def test_kill_9_during_a_mixed_deploy_converges(node, clean, point):
    """kill -9 of the agent at that point of the deploy; restarted, it converges to what
    running holds: the graph (when the commit was acknowledged, it must be there) running
    with exactly one namespace, container and domain of it and traffic through all three,
    or nothing of the graph at all. After the graph's deletion nothing is left."""
    acknowledged = threading.Event()

    def deploy():
        try:
            with node.netconf(timeout=300) as m:
                m.edit_config(target="candidate", config=_config())
                m.commit()
                acknowledged.set()
        except Exception:  # noqa: BLE001 - the agent is killed under it
            pass
    # ncclient may wait out its timeout on a session whose server was killed: not joined
    committing = threading.Thread(target=deploy, daemon=True)
    committing.start()
    reached = acknowledged.is_set if point == "acknowledged" else _kill_point(node, point)
    deadline = time.monotonic() + 300
    while not reached():
        assert time.monotonic() < deadline and committing.is_alive() or reached(), \
            node.log_tail()
        time.sleep(0.02)
    node.kill_agent()
    before = _processes(node)
    print("killed at %s: %d container(s), %d domain(s)" % (
        point, len(_containers(node)), len(guest.domain_names(node.resource_prefix))))
    node.start_agent(timeout=300)
    with node.netconf(timeout=300) as m:
        running = m.get_config(source="running").data_xml
        deployed = "<id>g1</id>" in running
        print("after the restart: the graph is %s" % ("deployed" if deployed else "gone"))
        if acknowledged.is_set():
            # acknowledged: running holds it, and recovery adopted what runs, whole (found
            # by the container's labels and the domain's metadata), nothing made again
            assert deployed
            assert _processes(node) == before
        if deployed:
            _assert_mixed_graph_runs(node, m)
            # exactly one of each: the native and the docker function's namespaces
            assert len(_everything(node)["node"]["netns"]) == \
                len(clean["node"]["netns"]) + 2
        else:
            assert eventually(lambda: _everything(node) == clean, 10, 0.05), \
                resources_diff(clean, _everything(node))
