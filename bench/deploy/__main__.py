"""Deploy benchmark (not a test): the paper's personal-firewall scenario.

    sudo .venv/bin/python -m bench.deploy [--sizes 0,1,10,50,100,500] [--repeat 1]

For each N: edit-config + commit of a graph with N native personal firewalls between two
interface SAPs until the commit returns (the graph is running), its deletion, and the same
resources made and removed by a sequential shell script, in the same run on the same node.
At the largest N, also the commit that adds one more firewall. N = 0 is the empty graph.
"""

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import ncclient.transport.session

from agent.tools.graphxml import config, delete_graph
from drivers.vswitch.ovs_process import PrivateOVS
from tests.e2e.node import Node

from .baseline import Baseline
from .graphs import personal_firewalls

ncclient.transport.session.TICK = 0.001     # ncclient's 0.1 s poll would dominate otherwise


def timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def run_script(text: str, env: dict) -> float:
    start = time.perf_counter()
    result = subprocess.run(["bash", "-c", text], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError("baseline script failed: %s" % result.stderr[-2000:])
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,1,10,50,100,500")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--output", default="bench/results/deploy.json")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bd-") as tmp:
        with Node("bd", Path(tmp), {"eth1": "10.99.0.1/24", "eth2": "10.99.0.2/24"},
                  prefix_suffix="") as node:
            ovs = PrivateOVS(node.dir / "ovs", netns=node.netns)
            package = str(Path(__file__).resolve().parents[2] / "nsf" / "firewall")
            baseline = Baseline(ovs.env(), ovs.db_socket, ovs.bridge_mgmt, node.netns, package)
            run_script(baseline.setup(), ovs.env())
            h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
            try:
                with node.netconf() as m:
                    for n in sizes:
                        for _ in range(args.repeat):
                            graph = personal_firewalls(n, first_mac=h1.mac)

                            def deploy():
                                m.edit_config(target="candidate", config=config(graph))
                                m.commit()

                            def remove():
                                m.edit_config(target="candidate", config=delete_graph("pf"))
                                m.commit()

                            row = {"n": n, "agent_deploy": timed(deploy)}
                            row["traffic"] = h1.ping(h2.ip, count=2) if n else None
                            if n == max(sizes) and n > 0:
                                bigger = personal_firewalls(n + 1, first_mac=h1.mac)

                                def add_one():
                                    m.edit_config(target="candidate", config=config(bigger))
                                    m.commit()
                                row["agent_add_one"] = timed(add_one)
                            row["agent_delete"] = timed(remove)
                            row["script_deploy"] = run_script(baseline.deploy(n), ovs.env())
                            row["script_delete"] = run_script(baseline.teardown(n), ovs.env())
                            rows.append(row)
                            print(json.dumps(row), flush=True)
            finally:
                subprocess.run(["bash", "-c", baseline.cleanup()], env=ovs.env())
    report(rows, args.output)
    return 0


def report(rows, output) -> None:
    by_n = {}
    for row in rows:
        by_n.setdefault(row["n"], []).append(row)
    print()
    print("| N | agent deploy (s) | script deploy (s) | ratio | agent delete (s) | "
          "script delete (s) | ratio |")
    print("|---|---|---|---|---|---|---|")
    for n, group in sorted(by_n.items()):
        med = {k: statistics.median(r[k] for r in group)
               for k in ("agent_deploy", "script_deploy", "agent_delete", "script_delete")}
        print("| %d | %.3f | %.3f | %.2f | %.3f | %.3f | %.2f |" % (
            n, med["agent_deploy"], med["script_deploy"],
            med["agent_deploy"] / med["script_deploy"], med["agent_delete"],
            med["script_delete"], med["agent_delete"] / med["script_delete"]))
    for row in rows:
        if "agent_add_one" in row:
            print("\nadding one firewall to the %d-firewall graph: %.0f ms"
                  % (row["n"], row["agent_add_one"] * 1000))
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
