"""YANG-push latency (not a test): from a commit's reply to the on-change notification at
its subscribers.

    sudo .venv/bin/python -m bench.push [--subscribers 1,10,100] [--commits 100]

A real agent (private OVS in its own namespace) holds one service graph. For each level,
that many NETCONF sessions (in a child process: subscribers.py) hold an on-change
subscription on the operational datastore, filter
/service-graphs/service-graph/config/description; this process then makes --commits
commits, each changing the graph's description, one at a time, and notes when each
reply came. Reported per level: the median and 99th percentile, over every commit and
subscriber, of the time from the reply to the push-change-update's arrival, and the
median commit. Results also go to bench/results/push.json.

    sudo .venv/bin/python -m bench.push --slowdown [--rounds 9] [--commits 20] [--repeat 2]

What 20 subscribers cost a commit instead: 20 on-change subscriptions to the running
datastore's service graphs (tests/e2e/netconf/subscribers.py, push-graphs: each checks
that it got every value, in order) against none, in rounds interleaved A B B A A B ...,
for two commits on the same node: a one-leaf commit (the graph's description: nothing
reaches OVS) and a flow rule's priority (the engine reinstalls the rule in OVS).
Reported per kind: the median commit alone and loaded (medians of the rounds' medians),
the slowdown (median of the rounds' ratios), the agent's CPU per commit alone and
loaded; --repeat runs it again (the machine is shared). Results go to
bench/results/push-slowdown.json.
"""

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import ncclient.transport.session

from agent.tools.graphxml import GraphXml, config
from tests.e2e.node import Node

ncclient.transport.session.TICK = 0.001     # ncclient's 0.1 s poll would dominate otherwise

ROOT = Path(__file__).resolve().parents[2]
SFFG = "urn:composer-nc:yang:composer-sffg"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SUBTREE = ('<service-graphs xmlns="%s"><service-graph><config><description/></config>'
           '</service-graph></service-graphs>' % SFFG)


def describe(graph_id: str, text: str) -> str:
    return ('<config xmlns="%s"><service-graphs xmlns="%s"><service-graph><id>%s</id>'
            '<config><id>%s</id><description>%s</description></config></service-graph>'
            '</service-graphs></config>' % (NC, SFFG, graph_id, graph_id, text))


class PushNode(Node):
    """A node that takes as many sessions as the largest level needs."""

    def config_text(self) -> str:
        return super().config_text().replace(
            "[netconf]\n", "[netconf]\nmax-sessions = 256\nmax-sessions-per-user = 256\n", 1)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def run_level(node, m, count: int, commits: int, serial: list) -> dict:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.push.subscribers", str(node.port), str(node.key_file),
         str(count), SUBTREE], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True)
    line = process.stdout.readline().strip()
    if line != "ready":
        raise RuntimeError("the subscribers did not start (%r)" % line)
    replies, durations = [], []
    arrivals: dict = {i: [] for i in range(count)}

    def read():
        for text in process.stdout:
            index, when = text.split()
            arrivals[int(index)].append(float(when))
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    for _ in range(commits):
        serial[0] += 1
        m.edit_config(target="candidate", config=describe("gp", "commit %d" % serial[0]))
        start = time.monotonic()
        m.commit()
        replies.append(time.monotonic())
        durations.append(replies[-1] - start)
        # the next commit once every subscriber has this one (or 5 s passed)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(
                len(a) < len(replies) for a in arrivals.values()):
            time.sleep(0.001)
    process.stdin.close()
    process.wait(60)
    reader.join(5)
    latencies, lost = [], 0
    for got in arrivals.values():
        lost += max(0, len(replies) - len(got))
        latencies += [arrived - replied for arrived, replied in zip(got, replies)]
    return {"subscribers": count, "commits": commits,
            "median_ms": statistics.median(latencies) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "max_ms": max(latencies) * 1000, "lost": lost,
            "commit_median_ms": statistics.median(durations) * 1000}


@contextlib.contextmanager
def graph_node(subscriptions: int):
    """A node holding graph gp (two interface SAPs, rules r-fwd and r-rev) that takes
    that many subscriptions, and a NETCONF session to it: (node, manager)."""
    with tempfile.TemporaryDirectory(prefix="push-") as tmp:
        with PushNode("ps", Path(tmp), {"eth1": "10.97.0.1/24", "eth2": "10.97.0.2/24"},
                      extra_config="[notifications]\nmax-subscriptions = %d\n"
                      % (subscriptions + 16)) as node:
            g = GraphXml("gp")
            g.sap_interface("lan", "eth1").sap_interface("wan", "eth2")
            g.bidirectional("r", "lan", "wan")
            with node.netconf() as m:
                m.edit_config(target="candidate", config=config(g))
                m.commit()
                yield node, m


def rule_priority(graph_id: str, rule: str, priority: int) -> str:
    return ('<config xmlns="%s"><service-graphs xmlns="%s"><service-graph><id>%s</id>'
            '<flow-rules><flow-rule><id>%s</id><config><id>%s</id><priority>%d</priority>'
            '</config></flow-rule></flow-rules></service-graph></service-graphs></config>'
            % (NC, SFFG, graph_id, rule, rule, priority))


def slowdown(args) -> int:
    from tests.e2e.netconf.test_notifications import start_subscribers
    from tests.e2e.netconf.test_yang_push import interleaved_commits
    kinds = {"one leaf (description)": lambda value: describe("gp", str(value)),
             "flow rule (reaches OVS)": lambda value: rule_priority("gp", "r-fwd", value)}
    rows = []
    with graph_node(20) as (node, m):
        for repeat in range(args.repeat):
            for kind, edit in kinds.items():
                def commit(value, edit=edit):
                    m.edit_config(target="candidate", config=edit(value))
                    m.commit()
                out = interleaved_commits(
                    m, commit, lambda expected: start_subscribers(
                        node.port, str(node.key_file), 20, expected, "push-graphs"),
                    args.rounds, args.commits, node.agent.pid)
                row = {"kind": kind, "repeat": repeat,
                       "alone_ms": statistics.median(out["alone"]) * 1000,
                       "loaded_ms": statistics.median(out["loaded"]) * 1000,
                       "slowdown": out["slowdown"],
                       "cpu_alone_ms": out["cpu_alone"] * 1000,
                       "cpu_loaded_ms": out["cpu_loaded"] * 1000,
                       "rounds_alone_ms": [t * 1000 for t in out["alone"]],
                       "rounds_loaded_ms": [t * 1000 for t in out["loaded"]]}
                rows.append(row)
                print(json.dumps(row), flush=True)
    print()
    print("| commit | alone (ms) | 20 subscribers (ms) | slowdown | agent CPU per commit "
          "alone / loaded (ms) |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| %s | %.1f | %.1f | %+.1f %% | %.2f / %.2f |" % (
            row["kind"], row["alone_ms"], row["loaded_ms"], row["slowdown"] * 100,
            row["cpu_alone_ms"], row["cpu_loaded_ms"]))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(rows, indent=1))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", default="1,10,100")
    parser.add_argument("--commits", type=int, default=None)
    parser.add_argument("--output", default=None)
    parser.add_argument("--slowdown", action="store_true",
                        help="commit time with 20 subscribers against none")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    if args.slowdown:
        args.commits = args.commits or 20
        args.output = args.output or "bench/results/push-slowdown.json"
        return slowdown(args)
    args.commits = args.commits or 100
    args.output = args.output or "bench/results/push.json"
    levels = [int(n) for n in args.subscribers.split(",")]
    rows = []
    with graph_node(max(levels)) as (node, m):
        serial = [0]
        for count in levels:
            row = run_level(node, m, count, args.commits, serial)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print("| subscribers | median (ms) | p99 (ms) | max (ms) | lost | commit median (ms) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| %d | %.1f | %.1f | %.1f | %d | %.1f |" % (
            row["subscribers"], row["median_ms"], row["p99_ms"], row["max_ms"], row["lost"],
            row["commit_median_ms"]))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
