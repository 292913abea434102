"""Docker functions through NETCONF: a graph whose firewall is a container (the template
docker-firewall, named in the graph) between two hosts, ping and iperf3 across, telnet
blocked; a port added to the running container by a commit; the same capability resolved
to native when the graph names no template (native is cheaper); nothing left after.

The agent uses the session's dockerd (docker.mode existing, tests/dockerlab.py): its
containers carry the agent's resource prefix in their names and labels.
"""

import pytest
from lxml import etree

from agent.tools.graphxml import GraphXml, firewall_chain
from tests import dockerlab
from tests.e2e.node import Node
from tests.e2e.test_deploy import SFFG, commit, delete, graph_state, iperf_bits

pytestmark = pytest.mark.skipif(dockerlab.unavailable() is not None,
                                reason=dockerlab.unavailable() or "")


@pytest.fixture(scope="module")
def node(session_tmp):
    hosts = {"eth1": "10.11.0.1/24", "eth2": "10.11.0.2/24", "eth3": "10.11.0.3/24"}
    fault_file = session_tmp / "d-fault"
    extra = ('[docker]\nmode = "existing"\nhost = "%s"\n[debug]\nfault-file = "%s"\n'
             % (dockerlab.host(), fault_file))
    with Node("d", session_tmp, hosts, prefix_suffix="d", environments=("native", "docker"),
              extra_config=extra) as n:
        n.fault_file = fault_file
        yield n


def _containers(node) -> list:
    import docker
    client = docker.APIClient(base_url=dockerlab.host())
    try:
        return [c["Names"][0].lstrip("/") for c in client.containers(
            all=True, filters={"label": "composer.prefix=%s" % node.resource_prefix})]
    finally:
        client.close()


def _function(m, graph_id, leaf):
    return graph_state(m, graph_id).xpath(
        "//s:function[s:id='fw']/s:state/s:%s/text()" % leaf, namespaces=SFFG)


@pytest.fixture
def clean(node):
    before = node.node_resources()
    yield before
    with node.netconf() as m:
        m.discard_changes()
        running = etree.fromstring(m.get_config(source="running").xml.encode())
        for gid in running.xpath("//s:service-graph/s:id/text()", namespaces=SFFG):
            delete(m, gid)
    assert node.resources_once_settled(before) == before
    assert _containers(node) == []


def _docker_firewall(graph_id, *extra_ports):
    g = GraphXml(graph_id)
    g.function("fw", "firewall", "lan", "wan", *extra_ports, template="docker-firewall",
               parameters=["block-tcp-dst=23"])
    g.sap_interface("lan", "eth1").sap_interface("wan", "eth2")
    g.bidirectional("lan", "lan", "fw:lan")
    g.bidirectional("wan", "wan", "fw:wan")
    return g


def test_a_docker_firewall_between_two_hosts(node, clean):
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    with node.netconf() as m:
        commit(m, _docker_firewall("g1"))
        assert _function(m, "g1", "implementation") == ["docker-firewall"]
        assert _function(m, "g1", "execution-environment")[0].endswith("docker")
        assert len(_containers(node)) == 1
        assert h1.ping(h2.ip)
        assert iperf_bits(h1, h2, 5201) > 1e6
        assert iperf_bits(h1, h2, 23) == 0.0            # telnet blocked
        delete(m, "g1")
    assert _containers(node) == []
    assert not h1.ping(h2.ip, count=1)


@pytest.mark.parametrize("kind", ["create-function", "attach-ports", "start-function",
                                  "apply-flows"])
def test_a_fault_at_each_step_of_a_docker_deploy_is_rolled_back(node, clean, kind):
    """The commit fails at that step (debug.fault-file) and is undone: no container, no
    namespace, port or flow left, running unchanged; the same commit then works."""
    from ncclient.operations.rpc import RPCError
    from agent.network.naming import Naming
    from agent.tools.graphxml import config
    naming = Naming(node.resource_prefix)
    instance, lsi = naming.function_instance("g1", "fw"), naming.graph_lsi("g1")
    step = {"create-function": "create-function g1/" + instance,
            "attach-ports": "attach-ports g1/" + lsi,
            "start-function": "start-function g1/" + instance,
            "apply-flows": "apply-flows " + lsi}[kind]
    with node.netconf() as m:
        m.edit_config(target="candidate", config=config(_docker_firewall("g1")))
        node.fault_file.write_text(step)
        try:
            with pytest.raises(RPCError) as refused:
                m.commit()
        finally:
            node.fault_file.unlink()
        assert refused.value.message.startswith("deployment failed at step ")
        assert "%s: injected fault" % step in refused.value.message \
            or "'%s': " % step in refused.value.message
        assert node.resources_once_settled(clean) == clean
        assert _containers(node) == []
        m.commit()
        assert node.hosts["eth1"].ping(node.hosts["eth2"].ip)


def test_the_same_capability_without_a_template_is_native(node, clean):
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    with node.netconf() as m:
        commit(m, firewall_chain("g1"))
        assert _function(m, "g1", "implementation") == ["native-firewall"]
        assert h1.ping(h2.ip)
    assert _containers(node) == []


def test_a_port_added_to_a_running_docker_firewall(node, clean):
    h1, h2, h3 = node.hosts["eth1"], node.hosts["eth2"], node.hosts["eth3"]
    with node.netconf() as m:
        commit(m, _docker_firewall("g1"))
        assert h1.ping(h2.ip)
        [container] = _containers(node)
        started = _started_at(container)
        # the firewall gets a third port, towards eth3, while it runs
        bigger = _docker_firewall("g1", "dmz")
        bigger.sap_interface("dmz", "eth3")
        bigger.bidirectional("dmz", "dmz", "fw:dmz")
        commit(m, bigger, replace=True)
        assert _containers(node) == [container]
        assert _started_at(container) == started        # the same container, not restarted
        assert h3.ping(h1.ip) and h3.ping(h2.ip)
        assert iperf_bits(h3, h2, 5201) > 1e6
        assert iperf_bits(h3, h2, 23) == 0.0
        # and goes again
        commit(m, _docker_firewall("g1"), replace=True)
        assert _started_at(container) == started
        assert not h3.ping(h1.ip, count=1)
        assert h1.ping(h2.ip)


def _started_at(container: str) -> str:
    import docker
    client = docker.APIClient(base_url=dockerlab.host())
    try:
        return client.inspect_container(container)["State"]["StartedAt"]
    finally:
        client.close()


def test_own_dockerd_and_recovery_after_kill_9(session_tmp):
    """docker.mode private: the agent runs its own dockerd; after kill -9 the restarted
    agent finds it, adopts the graph's container by its labels, removes an orphan one (a
    crash in the middle of a create leaves such), and a clean exit stops dockerd."""
    from drivers.compute.dockerd import PrivateDockerd
    from tests import resources
    hosts = {"eth1": "10.12.0.1/24", "eth2": "10.12.0.2/24"}
    with Node("q", session_tmp, hosts, prefix_suffix="q",
              environments=("native", "docker")) as node:
        dockerd = PrivateDockerd(node.dir / "state" / "dockerd")
        assert dockerd.running()
        h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
        with node.netconf() as m:
            commit(m, _docker_firewall("g1"))
        assert h1.ping(h2.ip)
        import docker
        client = docker.APIClient(base_url=dockerd.host)
        try:
            ours = {"label": "composer.prefix=%s" % node.resource_prefix}
            [container] = client.containers(filters=ours)
            node.kill_agent()
            assert dockerd.running()                     # containers outlive the agent
            orphan = node.resource_prefix + "orphan"
            client.create_container(container["ImageID"], name=orphan, labels={
                "composer.prefix": node.resource_prefix, "composer.instance": orphan})
            node.start_agent()
            assert [c["Id"] for c in client.containers(all=True, filters=ours)] == [
                container["Id"]]
            assert h1.ping(h2.ip)
            with node.netconf() as m:
                assert _function(m, "g1", "implementation") == ["docker-firewall"]
            node.stop_agent()                            # Ctrl-C: graphs go, dockerd too
        finally:
            client.close()
        assert not dockerd.running()
        assert resources.processes_mentioning(str(dockerd.dir)) == []


def _status_and_restarts(m):
    state = graph_state(m, "g1")
    status = state.xpath("//s:service-graph/s:state/s:status/text()", namespaces=SFFG)
    restarts = state.xpath("//s:function[s:id='fw']/s:state/s:restart-count/text()",
                           namespaces=SFFG)
    return status[0].split(":")[-1], int(restarts[0]) if restarts else 0


def test_a_docker_function_that_dies_or_is_removed_is_repaired(node, clean):
    """The agent watches its containers (docker events): one whose init is killed is
    started again (restart-count 1), one removed by hand is made again."""
    import os
    import signal
    import docker
    from tests.e2e.node import eventually
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    client = docker.APIClient(base_url=dockerlab.host())
    try:
        with node.netconf() as m:
            commit(m, _docker_firewall("g1"))
            [name] = _containers(node)
            os.kill(client.inspect_container(name)["State"]["Pid"], signal.SIGKILL)
            assert eventually(lambda: client.inspect_container(name)["State"]["Running"]
                              and _status_and_restarts(m) == ("running", 1), 30, 0.1), \
                (_status_and_restarts(m), node.log_tail(30))
            assert h1.ping(h2.ip)
            assert iperf_bits(h1, h2, 23) == 0.0
            before = client.inspect_container(name)["Id"]
            client.remove_container(name, force=True)
            assert eventually(lambda: _containers(node) == [name]
                              and client.inspect_container(name)["Id"] != before
                              and client.inspect_container(name)["State"]["Running"]
                              and _status_and_restarts(m)[0] == "running", 30, 0.1), \
                node.log_tail(30)
            assert h1.ping(h2.ip)
    finally:
        client.close()


def _docker_chain(graph_id, count):
    """lan -- fw0 -- fw1 ... -- wan, each firewall a container."""
    g = GraphXml(graph_id)
    g.sap_interface("lan", "eth1").sap_interface("wan", "eth2")
    previous = "lan"
    for i in range(count):
        g.function("fw%d" % i, "firewall", "lan", "wan", template="docker-firewall")
        g.bidirectional("r%d" % i, previous, "fw%d:lan" % i)
        previous = "fw%d:wan" % i
    g.bidirectional("r%d" % count, previous, "wan")
    return g


def test_kill_9_in_the_middle_of_a_docker_deploy_leaves_no_orphan(node, clean):
    """The agent is killed while it creates and starts four containers; restarted, it
    keeps exactly the containers of what running holds (the commit was not acknowledged:
    none), found by their labels."""
    import threading
    from agent.tools.graphxml import config
    from tests.e2e.node import eventually

    def deploy():
        try:
            with node.netconf() as m:
                m.edit_config(target="candidate", config=config(_docker_chain("g1", 4)))
                m.commit()
        except Exception:  # noqa: BLE001 - the agent is killed under it
            pass
    committing = threading.Thread(target=deploy)
    committing.start()
    assert eventually(lambda: len(_containers(node)) >= 1, 30, 0.01)
    node.kill_agent()
    committing.join(30)
    left = _containers(node)
    assert left                                      # something to recover from
    node.start_agent()
    with node.netconf() as m:
        running = etree.fromstring(m.get_config(source="running").xml.encode())
        functions = running.xpath("//s:service-graph[s:id='g1']//s:function/s:id/text()",
                                  namespaces=SFFG)
    assert len(_containers(node)) == len(functions)
    if functions:
        assert node.hosts["eth1"].ping(node.hosts["eth2"].ip)
    else:   # nothing of the unacknowledged commit: no namespace, port, flow either
        assert node.resources_once_settled(clean) == clean


@pytest.mark.parametrize("kind", ["update-function", "attach-ports", "apply-flows"])
def test_a_fault_while_adding_a_port_to_a_running_docker_function(node, clean, kind):
    """The commit adding a port fails at that step; undone, the running container has its
    two ports again (the update's undo removes the new one) and the node is as before."""
    from ncclient.operations.rpc import RPCError
    from agent.network.naming import Naming
    from agent.tools.graphxml import config
    from tests.e2e.node import run
    naming = Naming(node.resource_prefix)
    instance, lsi = naming.function_instance("g1", "fw"), naming.graph_lsi("g1")
    step = {"update-function": "update-function g1/" + instance,
            "attach-ports": "attach-ports g1/" + lsi,
            "apply-flows": "apply-flows " + lsi}[kind]
    bigger = _docker_firewall("g1", "dmz")
    bigger.sap_interface("dmz", "eth3")
    bigger.bidirectional("dmz", "dmz", "fw:dmz")

    def inside():
        return sorted(line.split(":")[1].strip().split("@")[0] for line in run(
            "ip", "-n", instance, "-o", "link").stdout.splitlines()
            if "@" in line.split(":")[1])
    with node.netconf() as m:
        commit(m, _docker_firewall("g1"))
        deployed = node.node_resources()
        assert inside() == ["eth0", "eth1"]
        [container] = _containers(node)
        started = _started_at(container)
        m.edit_config(target="candidate", config=config(bigger, operation="replace"))
        node.fault_file.write_text(step)
        try:
            with pytest.raises(RPCError) as refused:
                m.commit()
        finally:
            node.fault_file.unlink()
        assert "injected fault" in refused.value.message
        assert inside() == ["eth0", "eth1"]
        assert _started_at(container) == started
        assert node.resources_once_settled(deployed) == deployed
        assert node.hosts["eth1"].ping(node.hosts["eth2"].ip)
        m.commit()                                       # now for real
        assert inside() == ["eth0", "eth1", "eth2"]
        assert node.hosts["eth3"].ping(node.hosts["eth2"].ip)
