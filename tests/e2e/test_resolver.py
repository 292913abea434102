"""The resolver and the scheduler through NETCONF, on a real node offering native functions:
the `firewall` capability resolved to native (with the others' reasons in <get>); a template
asking too much memory rejected with its reason, in the state when another one fits and in
the rpc-error when none does; the function's constraints; the cores in the state are the
affinity of the function's running process."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from lxml import etree
from ncclient.operations.rpc import RPCError

from agent.network.naming import Naming
from agent.tools.graphxml import GraphXml, config, firewall_chain, native_template
from nsf import packages
from tests.e2e.node import Node, eventually, resources_diff

BASE = "urn:ietf:params:xml:ns:netconf:base:1.0"
SFFG = "urn:composer-nc:yang:composer-sffg"
B = "{%s}" % BASE
S = "{%s}" % SFFG
RELAY = str(Path(__file__).resolve().parents[1] / "packages" / "relay")
FIREWALL = str(Path(packages.__file__).resolve().parent / "firewall")
HUGE = 100000000            # MiB: no node has that


@pytest.fixture(scope="module")
def node(session_tmp):
    fault_file = session_tmp / "rv-fault"
    with Node("rv", session_tmp, {"eth1": "10.43.0.1/24", "eth2": "10.43.0.2/24"},
              prefix_suffix="v", extra_config='[debug]\nfault-file = "%s"\n' % fault_file) as n:
        n.fault_file = fault_file
        yield n


def _commit(m, *graphs, templates=""):
    text = config(*graphs)
    if templates:
        head, _, tail = text.rpartition("</config>")
        text = head + templates + "</config>" + tail
    m.edit_config(target="candidate", config=text)
    m.commit()


def _function_state(m, function="fw", graph="g1"):
    reply = m.get(filter=("subtree", '<service-graphs xmlns="%s"><service-graph><id>%s</id>'
                                     '<functions><function><id>%s</id><state/></function>'
                                     '</functions></service-graph></service-graphs>'
                          % (SFFG, graph, function)))
    root = etree.fromstring(reply.xml.encode())
    return root.find(".//%sfunction/%sstate" % (S, S))


def _rejected(state) -> dict:
    return {r.findtext(S + "template"): r.findtext(S + "reason")
            for r in state.iterfind("%sresolution/%srejected" % (S, S))}


def _cleanup(node, m, empty):
    m.discard_changes()
    m.edit_config(target="candidate", config=(
        '<config xmlns="%s" xmlns:nc="%s"><service-graphs xmlns="%s" nc:operation="remove"/>'
        '<templates xmlns="urn:composer-nc:yang:composer-templates" nc:operation="remove"/>'
        '</config>' % (BASE, BASE, SFFG)))
    m.commit()
    actual = node.resources_once_settled(empty)
    assert actual == empty, resources_diff(empty, actual)


def test_firewall_resolves_to_native_and_a_hungry_template_is_rejected(node):
    empty = node.node_resources()
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    # the same package, asking for more memory than the node has, and cheaper on paper
    huge = native_template("huge-firewall", "firewall", FIREWALL, memory=HUGE, cost=0)
    with node.netconf() as m:
        try:
            _commit(m, firewall_chain("g1"), templates=huge)
            state = _function_state(m)
            assert state.findtext(S + "implementation") == "native-firewall"
            assert state.findtext(S + "execution-environment").endswith(":native")
            assert state.findtext("%sresolution/%stemplate" % (S, S)) == "native-firewall"
            assert state.findtext("%sresolution/%sreason" % (S, S)).startswith(
                "the only usable implementation")
            why = _rejected(state)["huge-firewall"]
            assert why.startswith("needs %d MiB of memory, " % HUGE) and why.endswith(
                " MiB free"), why
            assert len(state.findall(S + "cpu-core")) == 1
            assert state.findtext(S + "cores-exclusive") == "false"
            assert h1.ping(h2.ip)

            # asked for by name, nothing fits: the rpc-error names it and its reason
            g = GraphXml("g2")
            g.function("fw2", "firewall", "lan", "wan", template="huge-firewall")
            deployed = node.node_resources()
            m.edit_config(target="candidate", config=config(g))
            with pytest.raises(RPCError) as refused:
                m.commit()
            error = refused.value.xml
            assert error.findtext(B + "error-tag") == "operation-failed"
            assert error.findtext(B + "error-app-tag") == "no-implementation"
            message = error.findtext(B + "error-message")
            assert "huge-firewall: needs %d MiB of memory, " % HUGE in message, message
            assert error.findtext(B + "error-path").endswith(
                "sffg:function[sffg:id='fw2']/sffg:config")
            assert node.node_resources() == deployed
        finally:
            _cleanup(node, m, empty)


def test_constraints_of_the_function_filter_the_templates(node):
    empty = node.node_resources()
    with node.netconf() as m:
        try:
            m.edit_config(target="candidate", config=config(
                firewall_chain("g1", constraints={"memory": 64})))
            with pytest.raises(RPCError) as refused:
                m.commit()
            message = refused.value.xml.findtext(B + "error-message")
            assert ("native-firewall: gives 4 MiB of memory; the function's constraints "
                    "ask for 64") in message, message
            m.discard_changes()
            _commit(m, firewall_chain("g1", constraints={"execution-environment": ["native"],
                                                         "memory": 4}))
            assert _function_state(m).findtext(S + "implementation") == "native-firewall"
        finally:
            _cleanup(node, m, empty)


def test_the_bound_cores_are_the_affinity_of_the_running_process(node):
    empty = node.node_resources()
    g = firewall_chain("g1", capability="relay")
    with node.netconf() as m:
        try:
            _commit(m, g, templates=native_template("test-relay", "relay", RELAY))
            state = _function_state(m)
            cores = {int(c.text) for c in state.findall(S + "cpu-core")}
            assert len(cores) == 1
            deployed = json.loads((node.dir / "state" / "engine" / "deployed.json").read_text())
            instance = deployed["graphs"]["g1"]["functions"]["fw"]["instance"]
            meta = json.loads((node.dir / "state" / "native" / instance / "instance.json")
                              .read_text())
            pid, = [identity[0] for identity in meta["processes"]]
            assert os.sched_getaffinity(pid) == cores
            assert len(os.sched_getaffinity(0)) == 1 or os.sched_getaffinity(pid) != \
                os.sched_getaffinity(0)
        finally:
            _cleanup(node, m, empty)


def _iperf(h1, h2, port, seconds=2):
    """(client's JSON report, server's JSON report or None) of an iperf3 run h1 -> h2."""
    server = subprocess.Popen(["ip", "netns", "exec", h2.name, "iperf3", "-s", "-1", "-J",
                               "-p", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        client = json.loads(h1.iperf_client(h2.ip, port, seconds=seconds).stdout)
        if "error" in client:
            return client, None
        report, _ = server.communicate(timeout=30)
        return client, json.loads(report)
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()


def _netns_id(node, function, graph="g1"):
    """The identity of a function's network namespace (it changes when it is made again)."""
    deployed = json.loads((node.dir / "state" / "engine" / "deployed.json").read_text())
    instance = deployed["graphs"][graph]["functions"][function]["instance"]
    return os.stat("/run/netns/" + instance).st_ino


def _journal_plan(node) -> list:
    """The kinds of steps of each transaction in the journal."""
    plans = []
    for line in (node.dir / "state" / "engine" / "journal.log").read_text().splitlines():
        entry = json.loads(line)
        if "plan" in entry:
            plans.append([step.split()[1] for step in entry["plan"]
                          if "-" in step.split()[1]])   # not a group's heading
    return plans


def _secure_gateway(parameters):
    g = GraphXml("g1")
    g.function("gw", "secure-gateway", "lan", "wan", parameters=parameters, port_config={
        "wan": {"ipv4-address": "203.0.113.1", "ipv4-prefix-length": 24}})
    g.sap_interface("lan", "eth1").sap_interface("wan", "eth2")
    g.bidirectional("in", "lan", "gw:lan")
    g.bidirectional("out", "gw:wan", "wan")
    return g


@pytest.fixture
def nat_addresses(node):
    """h1 behind the LAN (its gateway 192.168.62.1), h2 on the WAN (203.0.113.2)."""
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    h1.run("ip", "addr", "flush", "dev", "eth0")
    h1.run("ip", "addr", "add", "192.168.62.10/24", "dev", "eth0")
    h1.run("ip", "route", "add", "default", "via", "192.168.62.1")
    h2.run("ip", "addr", "flush", "dev", "eth0")
    h2.run("ip", "addr", "add", "203.0.113.2/24", "dev", "eth0")
    h2.address = "203.0.113.2/24"
    yield h1, h2
    for host, address in ((h1, "10.43.0.1/24"), (h2, "10.43.0.2/24")):
        host.run("ip", "addr", "flush", "dev", "eth0")
        host.run("ip", "addr", "add", address, "dev", "eth0")
        host.address = address


GATEWAY = ["fw.block-tcp-dst=5202", "nat.inside-ip=192.168.62.1/24"]


def test_a_failed_part_rolls_the_whole_function_back(node, nat_addresses):
    """A fault injected into the start of the NAT part: the commit fails and nothing of
    either part is left."""
    empty = node.node_resources()
    instance = Naming(node.resource_prefix).function_instance("g1", "gw/nat")
    with node.netconf() as m:
        try:
            m.edit_config(target="candidate", config=config(_secure_gateway(GATEWAY)))
            node.fault_file.write_text("start-function g1/%s" % instance)
            try:
                with pytest.raises(RPCError) as refused:
                    m.commit()
            finally:
                node.fault_file.unlink()
            error = refused.value.xml
            assert error.findtext(B + "error-tag") == "operation-failed"
            assert "start-function g1/%s" % instance in error.findtext(B + "error-message")
            assert node.node_resources() == empty
        finally:
            _cleanup(node, m, empty)


def test_a_decomposed_function_is_recovered_after_kill_9(node, nat_addresses):
    h1, h2 = nat_addresses
    empty = node.node_resources()
    with node.netconf() as m:
        _commit(m, _secure_gateway(GATEWAY))
    node.settle()
    deployed = node.node_resources(port_names=True)
    node.kill_agent()
    node.start_agent()
    with node.netconf() as m:
        try:
            actual = node.node_resources(port_names=True)
            assert actual == deployed, resources_diff(deployed, actual)
            state = _function_state(m, "gw")
            assert state.findtext(S + "status").endswith(":running")
            assert len(state.findall("%sdecomposition/%spart" % (S, S))) == 2
            assert h1.ping("203.0.113.2")
        finally:
            _cleanup(node, m, empty)


def test_the_secure_gateway_decomposes_into_a_firewall_and_a_nat(node, nat_addresses):
    """secure-gateway (nsf/decompositions) = firewall + NAT: each part resolved and run as
    a function of the graph, the template's inner rules on the graph-LSI; traffic from the
    LAN host leaves NATed, the firewall's port stays blocked; a parameter change replaces
    the part it goes to only; removing the graph leaves nothing."""
    empty = node.node_resources()
    h1, h2 = nat_addresses
    with node.netconf() as m:
        try:
            _commit(m, _secure_gateway(GATEWAY))
            state = _function_state(m, "gw")
            assert state.findtext(S + "status").endswith(":running")
            assert state.findtext(S + "implementation") == "secure-gateway"
            parts = {p.findtext(S + "id"): p for p in
                     state.iterfind("%sdecomposition/%spart" % (S, S))}
            assert sorted(parts) == ["gw/fw", "gw/nat"]
            assert parts["gw/fw"].findtext(S + "implementation") == "native-firewall"
            assert parts["gw/nat"].findtext(S + "implementation") == "native-nat"
            for part in parts.values():
                assert part.findtext(S + "status").endswith(":running")
                assert part.findall(S + "cpu-core")
            # neighbours in the graph: the firewall and the NAT on the same core
            assert [c.text for c in parts["gw/fw"].findall(S + "cpu-core")] == \
                [c.text for c in parts["gw/nat"].findall(S + "cpu-core")]

            assert h1.ping("203.0.113.2")
            client, server = _iperf(h1, h2, 5201)
            assert "error" not in client and server is not None
            assert server["start"]["connected"][0]["remote_host"] == "203.0.113.1"
            assert client["end"]["sum_received"]["bits_per_second"] > 1e6
            client, _ = _iperf(h1, h2, 5202, seconds=1)
            assert "error" in client                  # the firewall part blocks it

            # a parameter of one part: that part is made again, the other stays
            nat_ns = _netns_id(node, "gw/nat")
            m.edit_config(target="candidate", config=config(_secure_gateway(
                ["fw.block-tcp-dst=5203", "nat.inside-ip=192.168.62.1/24"]),
                operation="replace"))
            m.commit()
            assert _journal_plan(node)[-1] == [
                "stop-function", "detach-ports", "destroy-function", "create-function",
                "attach-ports", "start-function", "apply-flows"]
            assert _netns_id(node, "gw/nat") == nat_ns
            client, _ = _iperf(h1, h2, 5202, seconds=1)
            assert "error" not in client              # unblocked now
            client, _ = _iperf(h1, h2, 5203, seconds=1)
            assert "error" in client
        finally:
            _cleanup(node, m, empty)


def test_a_broken_part_is_repaired(node, nat_addresses):
    """The NAT part's namespace deleted under the agent: the agent makes the part again
    (its restart-count in the function's decomposition) and traffic passes again."""
    h1, _ = nat_addresses
    empty = node.node_resources()
    with node.netconf() as m:
        try:
            _commit(m, _secure_gateway(GATEWAY))
            instance = Naming(node.resource_prefix).function_instance("g1", "gw/nat")
            subprocess.run(["ip", "netns", "del", instance], check=True)

            def part_state():
                state = _function_state(m, "gw")
                part = next(p for p in state.iterfind("%sdecomposition/%spart" % (S, S))
                            if p.findtext(S + "id") == "gw/nat")
                return state, part
            assert eventually(lambda: part_state()[1].findtext(S + "restart-count") == "1"
                              and part_state()[0].findtext(S + "status").endswith(":running"),
                              30, 0.2), node.log_tail(40)
            assert h1.ping("203.0.113.2")
        finally:
            _cleanup(node, m, empty)


def test_a_poll_mode_function_has_a_core_of_its_own(node):
    """A poll-mode template (here the relay, declared so) gets an idle core, which the
    shared functions beside it never get; its process runs there."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: no core can be a function's own")
    empty = node.node_resources()
    g = GraphXml("g1")
    g.function("fw", "firewall", "lan", "wan")
    g.function("pmd", "relay", "a", "b")
    g.function("fw2", "firewall", "lan", "wan")
    g.sap_interface("lan", "eth1").sap_interface("wan", "eth2")
    g.bidirectional("in", "lan", "fw:lan")
    g.bidirectional("mid", "fw:wan", "pmd:a")
    g.bidirectional("mid2", "pmd:b", "fw2:lan")
    g.bidirectional("out", "fw2:wan", "wan")
    pmd = native_template("pmd-relay", "relay", RELAY, cpu=1, poll_mode="true")
    with node.netconf() as m:
        try:
            _commit(m, g, templates=pmd)
            cores = {}
            for fid in ("fw", "pmd", "fw2"):
                state = _function_state(m, fid)
                cores[fid] = {int(c.text) for c in state.findall(S + "cpu-core")}
                assert state.findtext(S + "cores-exclusive") == (
                    "true" if fid == "pmd" else "false"), fid
            assert len(cores["pmd"]) == 1
            assert not cores["pmd"] & (cores["fw"] | cores["fw2"])
            assert node.hosts["eth1"].ping(node.hosts["eth2"].ip)
            deployed = json.loads((node.dir / "state" / "engine" / "deployed.json").read_text())
            instance = deployed["graphs"]["g1"]["functions"]["pmd"]["instance"]
            meta = json.loads((node.dir / "state" / "native" / instance / "instance.json")
                              .read_text())
            pid, = [identity[0] for identity in meta["processes"]]
            assert os.sched_getaffinity(pid) == cores["pmd"]
        finally:
            _cleanup(node, m, empty)
