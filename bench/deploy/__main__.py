"""Deploy benchmark (not a test): the paper's personal-firewall scenario.

    sudo .venv/bin/python -m bench.deploy [--sizes 0,1,10,50,100,500] [--repeat 1]
    sudo .venv/bin/python -m bench.deploy --environment docker --sizes 1,10,100

For each N: edit-config + commit of a graph with N native personal firewalls between two
interface SAPs until the commit returns (the graph is running), its deletion, and the same
resources made and removed by a sequential shell script, in the same run on the same node.
At the largest N, also the commit that adds one more firewall: as a one-function delta
(median of --add-repeat), and as the whole graph; the graph then goes back to N firewalls
(untimed), so that the timed delete removes N, as the script does. N = 0 is the empty graph.

--environment docker: the firewalls are containers (the graph names the template
docker-firewall; the agent runs its own dockerd), and the script makes each with
`docker run` + veths + ovs-vsctl, on the same dockerd (baseline.py).

The agent keeps --spare-slots prepared function slots per graph (compute.spare-slots; 0
turns them off) once its vSwitch has --spare-slots-min-ports ports (the agent's defaults
unless given). It fills them while the node is idle, so every measured agent commit
starts on a settled node: ovs-vswitchd has not reconfigured for a second (the filling is
done). The script's runs start on the same settled node.
"""

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import ncclient.transport.session

from agent.config import DEFAULTS
from agent.tools.graphxml import config, delete_graph
from drivers.vswitch.ovs_process import PrivateOVS
from tests.e2e.node import Node
from tests.resources import PREFIX

from .baseline import Baseline
from .graphs import one_more_firewall, personal_firewalls

ncclient.transport.session.TICK = 0.001     # ncclient's 0.1 s poll would dominate otherwise


def commit(m, text: str) -> None:
    m.edit_config(target="candidate", config=text)
    m.commit()


def settle(node: Node) -> None:
    """Until ovs-vswitchd has been quiet for a second: the agent starts filling its prepared
    slots 0.5 s after the last commit, and the filling reconfigures it."""
    time.sleep(0.6)
    node.settle(1.0)


def timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def run_script(text: str, env: dict) -> float:
    start = time.perf_counter()
    # the script on stdin: at 500 functions it is far longer than an argument may be
    result = subprocess.run(["bash", "-s"], input=text, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError("baseline script failed: %s" % result.stderr[-2000:])
    return elapsed


def first_traffic(host, address, peer, limit: float = 10.0):
    """Seconds after which a ping through firewall 0 is answered (None: not within limit).

    The personal-firewall graph steers frames to a host MAC, not broadcasts from the WAN
    side: both hosts forget their neighbours first, so that the LAN host's ARP request
    teaches the WAN host its address (as a first contact would)."""
    for h in (host, peer):
        h.run("ip", "neigh", "flush", "all")
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        if host.ping(address, count=1):
            return round(time.perf_counter() - start, 3)
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,1,10,50,100,500")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per size up to 10 functions (larger sizes run once)")
    parser.add_argument("--add-repeat", type=int, default=5,
                        help="commits adding one firewall at the largest N (median)")
    compute = DEFAULTS["compute"]
    parser.add_argument("--spare-slots", type=int, default=compute["spare-slots"],
                        help="the agent's prepared function slots per graph (0: none)")
    parser.add_argument("--spare-slots-min-ports", type=int,
                        default=compute["spare-slots-min-ports"],
                        help="the node's vSwitch ports from which the agent prepares slots")
    parser.add_argument("--parallel-starts", type=int, default=compute["parallel-starts"],
                        help="the agent's functions created and started at a time")
    parser.add_argument("--docker-runtime", choices=("auto", "crun", "runc"), default="auto",
                        help="the OCI runtime of the agent's dockerd (docker.runtime), which "
                             "the script's containers use as well")
    parser.add_argument("--environment", choices=("native", "docker"), default="native",
                        help="what the firewalls run in")
    parser.add_argument("--no-script", action="store_true",
                        help="the agent only (while iterating; the report then has no ratios)")
    parser.add_argument("--script-delete-up-to", type=int, default=None,
                        help="above this N the script's delete is not timed (its resources "
                             "are removed at once): docker's at 500 takes 20 minutes")
    parser.add_argument("--output", default=None,
                        help="default bench/results/deploy.json (deploy-docker.json)")
    args = parser.parse_args(argv)
    docker = args.environment == "docker"
    template = "docker-firewall" if docker else None
    output = args.output or ("bench/results/deploy-docker.json" if docker
                             else "bench/results/deploy.json")
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bd-") as tmp:
        # The agent's names start with the session's prefix and "a", the script's with "s":
        # neither touches the other's, nor another run's beside it.
        with Node("bd", Path(tmp), {"eth1": "10.99.0.1/24", "eth2": "10.99.0.2/24"},
                  prefix_suffix="a", spare_slots=args.spare_slots,
                  spare_slots_min_ports=args.spare_slots_min_ports,
                  parallel_starts=args.parallel_starts,
                  extra_config='[docker]\nruntime = "%s"\n' % args.docker_runtime,
                  environments=("native", "docker") if docker else ("native",)) as node:
            ovs = PrivateOVS(node.dir / "ovs", netns=node.netns)
            package = str(Path(__file__).resolve().parents[2] / "nsf" / "firewall")
            baseline = Baseline(ovs.env(), ovs.db_socket, ovs.bridge_mgmt, node.netns, package,
                                prefix=PREFIX + "s", docker=docker_of(node) if docker else None)
            run_script(baseline.setup(), ovs.env())
            h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
            try:
                # ncclient's default 120 s wait for a reply is shorter than a commit of
                # 500 docker functions on a loaded machine.
                with node.netconf(timeout=1800) as m:
                    # warm-up: the first commit of a fresh agent loads what later ones reuse
                    for text in (config(personal_firewalls(1, template=template)),
                                 delete_graph("pf")):
                        m.edit_config(target="candidate", config=text)
                        m.commit()
                    for n in sizes:
                        for _ in range(args.repeat if n <= 10 else 1):
                            graph = personal_firewalls(n, first_mac=h1.mac, template=template)

                            def deploy():
                                m.edit_config(target="candidate", config=config(graph))
                                m.commit()

                            def remove():
                                m.edit_config(target="candidate", config=delete_graph("pf"))
                                m.commit()

                            settle(node)
                            row = {"n": n, "agent_deploy": timed(deploy)}
                            if n:
                                row["traffic_after"] = first_traffic(h1, h2.ip, h2)
                            if n == max(sizes) and n > 0:
                                # Adding one firewall twice: as the one-function delta an
                                # orchestrator sends (merged), then as the whole graph again.
                                adds = []
                                for k in range(args.add_repeat):
                                    settle(node)
                                    one_more = one_more_firewall(n + k, template=template)
                                    adds.append(timed(lambda: commit(m, config(one_more))))
                                row["agent_add_one_all"] = [round(a, 4) for a in adds]
                                row["agent_add_one"] = statistics.median(adds)
                                bigger = personal_firewalls(n + args.add_repeat + 1,
                                                            first_mac=h1.mac, template=template)
                                settle(node)
                                row["agent_add_one_whole"] = timed(
                                    lambda: commit(m, config(bigger)))
                                # Back to the N firewalls (not timed; replace: a merge would
                                # keep the added ones): the delete below then removes N, as
                                # the script does, not N + add_repeat + 1.
                                commit(m, config(graph, operation="replace"))
                            settle(node)
                            row["agent_delete"] = timed(remove)
                            if not args.no_script:
                                settle(node)
                                row["script_deploy"] = run_script(baseline.deploy(n), ovs.env())
                                if args.script_delete_up_to is None or \
                                        n <= args.script_delete_up_to:
                                    row["script_delete"] = run_script(baseline.teardown(n),
                                                                      ovs.env())
                                else:
                                    run_script(baseline.quick_teardown(), ovs.env())
                            rows.append(row)
                            print(json.dumps(row), flush=True)
            finally:
                subprocess.run(["bash", "-s"], input=baseline.cleanup(), env=ovs.env(), text=True)
    report(rows, output)
    return 0


def docker_of(node: Node) -> tuple:
    """(the agent's dockerd, the docker firewall's image) for the script: the same."""
    from drivers.compute.dockerd import PrivateDockerd
    from nsf import images
    image = images.build(node.dir / "state" / "images", only=("firewall",))["firewall"]
    return PrivateDockerd(node.dir / "state" / "dockerd").host, image["image-id"]


def report(rows, output) -> None:
    by_n = {}
    for row in rows:
        by_n.setdefault(row["n"], []).append(row)
    print()
    print("| N | agent deploy (s) | script deploy (s) | ratio | agent delete (s) | "
          "script delete (s) | ratio |")
    print("|---|---|---|---|---|---|---|")
    for n, group in sorted(by_n.items()):
        med = {k: statistics.median(r[k] for r in group) if k in group[0] else None
               for k in ("agent_deploy", "script_deploy", "agent_delete", "script_delete")}
        print("| %d | %s | %s | %s | %s | %s | %s |" % (
            n, _figure(med["agent_deploy"]), _figure(med["script_deploy"]),
            _ratio(med["agent_deploy"], med["script_deploy"]), _figure(med["agent_delete"]),
            _figure(med["script_delete"]), _ratio(med["agent_delete"], med["script_delete"])))
    for row in rows:
        if "agent_add_one" in row:
            print("\nadding one firewall to the %d-firewall graph: %.0f ms (median, the "
                  "one-function delta merged); %.0f ms (the whole graph replaced)"
                  % (row["n"], row["agent_add_one"] * 1000, row["agent_add_one_whole"] * 1000))
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(json.dumps(rows, indent=1))


def _figure(value) -> str:
    return "-" if value is None else "%.3f" % value


def _ratio(agent, script) -> str:
    return "-" if agent is None or not script else "%.2f" % (agent / script)


if __name__ == "__main__":
    raise SystemExit(main())
