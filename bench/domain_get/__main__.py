"""The domain description's cost as the node fills (not a test): `<get>` of the whole
/composer-domain:domain with no graph deployed, then with --graphs graphs deployed.

    sudo .venv/bin/python -m bench.domain_get [--graphs 100] [--repeat 50]

A real agent (private OVS in its own namespace). Each graph is one native personal
firewall between the two interface SAPs (its own host MAC on LSI-0, bench/deploy's
graph), all committed at once. Per level: --repeat gets, one at a time over one session,
after a warm-up; reported: the median, p90 and max time from request to reply, the
reply's size, and the floor (the median get of /netconf-state/statistics, same session). Results also go to bench/results/domain_get.json.
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import ncclient.transport.session

from agent.tools.graphxml import config
from bench.deploy.graphs import host_mac, personal_firewalls
from tests.e2e.node import Node

ncclient.transport.session.TICK = 0.001     # ncclient's 0.1 s poll would dominate otherwise

DOMAIN = ("subtree", '<domain xmlns="urn:composer-nc:yang:composer-domain"/>')
# the floor: a small get of the protocol's own state, through the same session
FLOOR = ("subtree", '<netconf-state xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring">'
         '<statistics/></netconf-state>')
STATUS = ('<service-graphs xmlns="urn:composer-nc:yang:composer-sffg"><service-graph><state>'
          '<status/></state></service-graph></service-graphs>')


def timed_gets(m, flt, repeat: int):
    """(the seconds each get took, the last reply's size), after a warm-up."""
    for _ in range(5):
        m.get(filter=flt)
    took, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        reply = m.get(filter=flt)
        took.append(time.perf_counter() - started)
        size = len(reply.xml)
    return took, size


def measure(m, graphs: int, repeat: int) -> dict:
    took, size = timed_gets(m, DOMAIN, repeat)
    floor, _ = timed_gets(m, FLOOR, repeat)
    ordered = sorted(took)
    return {"graphs": graphs, "median_ms": statistics.median(took) * 1000,
            "p90_ms": ordered[int(0.9 * (len(ordered) - 1))] * 1000,
            "max_ms": ordered[-1] * 1000, "reply_bytes": size, "repeat": repeat,
            "floor_median_ms": statistics.median(floor) * 1000}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--output", default="bench/results/domain_get.json")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="domain-get-") as tmp:
        with Node("dg", Path(tmp), {"eth1": "10.96.0.1/24", "eth2": "10.96.0.2/24"}) as node:
            with node.netconf(timeout=1800) as m:
                rows.append(measure(m, 0, args.repeat))
                print(json.dumps(rows[-1]), flush=True)
                graphs = [personal_firewalls(1, "pf%d" % i, first_mac=host_mac(i))
                          for i in range(args.graphs)]
                started = time.perf_counter()
                m.edit_config(target="candidate", config=config(*graphs))
                m.commit()
                deployed = time.perf_counter() - started
                state = m.get(filter=("subtree", STATUS)).xml
                running = state.count("running</")
                if running != args.graphs:
                    raise SystemExit("%d of %d graphs running" % (running, args.graphs))
                rows.append(dict(measure(m, args.graphs, args.repeat),
                                 deploy_s=round(deployed, 1)))
                print(json.dumps(rows[-1]), flush=True)
                m.edit_config(target="candidate", config=config(operation="delete"))
                m.commit()
    print()
    print("| graphs | median (ms) | p90 (ms) | max (ms) | reply (bytes) | floor (ms) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| %d | %.1f | %.1f | %.1f | %d | %.1f |" % (
            row["graphs"], row["median_ms"], row["p90_ms"], row["max_ms"],
            row["reply_bytes"], row["floor_median_ms"]))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
