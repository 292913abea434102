"""Commit latency under read load (not a test): reads must not starve commits.

    sudo .venv/bin/python -m bench.read_load [--levels 0,10,50] [--firewalls 10] [--repeat 9]

A real agent (private OVS in its own namespace, native functions) runs a graph of
--firewalls personal firewalls. For each level of the same run, that many NETCONF sessions
loop <get> (the whole operational state, in a separate process: see readers.py) while
this process times --repeat one-parameter commits: edit-config of one firewall's
parameter on the candidate, then commit (the firewall is replaced). Reported: the median
commit, its ratio to the idle median (target: at most 2), and the reads answered per
second meanwhile. Results also go to bench/results/read_load.json.
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ncclient.transport.session

from agent.tools.graphxml import config
from tests.e2e.node import Node

from bench.deploy.graphs import personal_firewalls

ncclient.transport.session.TICK = 0.001     # ncclient's 0.1 s poll would dominate otherwise

ROOT = Path(__file__).resolve().parents[2]
SFFG = "urn:composer-nc:yang:composer-sffg"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


def one_parameter(graph_id: str, function: str, value: int) -> str:
    """fw's config replaced by the same capability with one new parameter."""
    return ('<config xmlns="%s" xmlns:nc="%s"><service-graphs xmlns="%s"><service-graph>'
            "<id>%s</id><functions><function><id>%s</id><config nc:operation=\"replace\">"
            "<id>%s</id><functional-capability>firewall</functional-capability>"
            "<parameter>block-tcp-dst=%d</parameter></config></function></functions>"
            "</service-graph></service-graphs></config>"
            % (NC, NC, SFFG, graph_id, function, function, value))


def engine_times(node: Node, offset: int) -> list:
    """The engine's own time of each commit logged after offset ("deployed in N ms")."""
    text = node.log.read_bytes()[offset:].decode(errors="replace")
    return [int(ms) / 1000 for ms in re.findall(r"deployed in (\d+) ms", text)]


class Readers:
    """count reader sessions in a child process, looping <get> until stopped."""

    def __init__(self, node: Node, count: int):
        self.count = count
        self.process = None
        self.started = None
        if count:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.read_load.readers", str(node.port),
                 str(node.key_file), str(count)], cwd=ROOT, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True)
            line = self.process.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError("the readers did not start (%r)" % line)
        self.started = time.perf_counter()

    def stop(self) -> float:
        """Reads answered per second while they ran."""
        if self.process is None:
            return 0.0
        self.process.stdin.close()
        replies = int(self.process.stdout.readline().strip() or 0)
        elapsed = time.perf_counter() - self.started
        self.process.wait(60)
        return replies / elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="0,10,50", help="concurrent readers per level")
    parser.add_argument("--firewalls", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5, help="commits timed per level and round")
    parser.add_argument("--rounds", type=int, default=2,
                        help="passes over the levels, in alternating order (the machine's "
                             "other load drifts)")
    parser.add_argument("--concurrent-reads", type=int, default=None,
                        help="the agent's datastore.concurrent-reads (its default unless given)")
    parser.add_argument("--output", default="bench/results/read_load.json")
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.levels.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="rl-") as tmp:
        extra = ("[datastore]\nconcurrent-reads = %d\n" % args.concurrent_reads
                 if args.concurrent_reads is not None else "")
        with Node("rl", Path(tmp), {"eth1": "10.98.0.1/24", "eth2": "10.98.0.2/24"},
                  extra_config=extra) as node:
            with node.netconf() as m:
                m.edit_config(target="candidate", config=config(personal_firewalls(
                    args.firewalls)))
                m.commit()
                value = 1000
                samples = {level: {"commits": [], "engine": [], "reads": []}
                           for level in levels}
                for round_ in range(args.rounds):
                    for level in levels if round_ % 2 == 0 else list(reversed(levels)):
                        offset = node.log.stat().st_size
                        readers = Readers(node, level)
                        try:
                            for _ in range(args.repeat):
                                value += 1
                                time.sleep(0.2)
                                start = time.perf_counter()
                                m.edit_config(target="candidate",
                                              config=one_parameter("pf", "fw0", value))
                                m.commit()
                                samples[level]["commits"].append(time.perf_counter() - start)
                        finally:
                            samples[level]["reads"].append(readers.stop())
                        samples[level]["engine"] += engine_times(node, offset)
                        print("readers %d: %s" % (level, json.dumps(
                            [round(s, 3) for s in samples[level]["commits"]])), flush=True)
                for level in levels:
                    got = samples[level]
                    rows.append({"readers": level,
                                 "commit_median": statistics.median(got["commits"]),
                                 "engine_median": statistics.median(got["engine"])
                                 if got["engine"] else None,
                                 "commits": [round(s, 4) for s in got["commits"]],
                                 "reads_per_second": round(statistics.mean(got["reads"]), 1)})
    idle = next((r["commit_median"] for r in rows if r["readers"] == 0), None)
    print()
    print("| readers | commit (median, ms) | x idle | engine (median, ms) | reads/s |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| %d | %.0f | %s | %s | %.0f |" % (
            row["readers"], row["commit_median"] * 1000,
            "%.2f" % (row["commit_median"] / idle) if idle else "-",
            "%.0f" % (row["engine_median"] * 1000) if row["engine_median"] else "-",
            row["reads_per_second"]))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
