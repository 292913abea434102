"""Start time of one function per execution environment (not a test; the paper's Table 8).

    sudo .venv/bin/python -m bench.start_time [--repeat 5]

One firewall between two interface SAPs, committed over NETCONF and deleted, --repeat
times per environment (template native-firewall, docker-firewall). Reported per run: the
commit (until the graph is running) and, from the engine's journal, the function's own
create + start steps. The bare process: the same package's create and start scripts run
directly (`sh create.sh && sh start.sh`) in a namespace whose two veths were made
beforehand, untimed: the function's own work with no environment around it.
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
from tests.e2e.node import Node
from tests.resources import PREFIX

from ..deploy.__main__ import commit, settle, timed
from ..deploy.graphs import personal_firewalls

ncclient.transport.session.TICK = 0.001

PACKAGE = Path(__file__).resolve().parents[2] / "nsf" / "firewall"


def function_steps(journal: Path) -> float:
    """Milliseconds of the last transaction's create-function and start-function steps."""
    events = [json.loads(line) for line in journal.read_text().splitlines() if line]
    txn = next(e["txn"] for e in reversed(events) if e["event"] == "begin")
    return sum(e["ms"] for e in events if e["txn"] == txn and e["event"] == "done"
               and e["step"].split()[0] in ("create-function", "start-function"))


def bare(node_netns: str, index: int) -> float:
    """Seconds of the firewall's create + start scripts in a ready namespace."""
    ns = "%sbare%d" % (PREFIX, index)
    setup = ["ip netns add %s" % ns]
    for k in (0, 1):
        setup += ["ip -n %s link add %sbv%d%d type veth peer name eth%d netns %s"
                  % (node_netns, PREFIX, index, k, k, ns),
                  "ip -n %s link set eth%d up" % (ns, k)]
    subprocess.run(["sh", "-ec", "; ".join(setup)], check=True)
    try:
        start = time.perf_counter()
        subprocess.run(["ip", "netns", "exec", ns, "env", "-C", str(PACKAGE),
                        "COMPOSER_PORTS=eth0 eth1", "sh", "-ec",
                        "COMPOSER_ACTION=create sh ./create.sh; "
                        "COMPOSER_ACTION=start sh ./start.sh"], check=True)
        return time.perf_counter() - start
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--output", default="bench/results/start-time.json")
    args = parser.parse_args(argv)
    results = {"bare": []}
    with tempfile.TemporaryDirectory(prefix="bs-") as tmp:
        with Node("bs", Path(tmp), {"eth1": "10.97.0.1/24", "eth2": "10.97.0.2/24"},
                  prefix_suffix="a", environments=("native", "docker")) as node:
            journal = node.dir / "state" / "engine" / "journal.log"
            with node.netconf() as m:
                for template in ("native-firewall", "docker-firewall"):
                    graph = config(personal_firewalls(1, template=template))
                    commit(m, graph)                    # warm-up (docker: the image loaded)
                    commit(m, delete_graph("pf"))
                    runs = results.setdefault(template, [])
                    for _ in range(args.repeat):
                        settle(node)
                        elapsed = timed(lambda: commit(m, graph))
                        runs.append({"commit": elapsed, "function": function_steps(journal) / 1000})
                        settle(node)
                        commit(m, delete_graph("pf"))
            for i in range(args.repeat):
                results["bare"].append({"function": bare(node.netns, i)})
    print("| environment | commit (ms, median) | create + start of the function (ms, median) |")
    print("|---|---|---|")
    for name, runs in results.items():
        commit_ms = ("%.0f" % (1000 * statistics.median(r["commit"] for r in runs))
                     if "commit" in runs[0] else "-")
        print("| %s | %s | %.0f |" % (name, commit_ms,
                                      1000 * statistics.median(r["function"] for r in runs)))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
