"""NETCONF latency, composer-agent against yuma123 netconfd, side by side in one run.

    .venv/bin/python -m bench.netconf_latency [--sizes 10,1000,10000] [--repeat 15]
    .venv/bin/python -m bench.netconf_latency --nacm [--sizes 10000] [--repeat 15]

For each datastore size (entries of one list, same YANG module in both servers), the
median over the repetitions of:
  get-config            the whole running datastore
  get (subtree)         one entry selected by its key (content-match node)
  edit+commit (bulk)    edit-config replacing all N entries on the candidate, then commit
  edit+commit (1 leaf)  edit-config merging one leaf of one entry, then commit
Clients are ncclient with ncclient.transport.session.TICK = 0.001 (its default 0.1 s
poll would dominate). Results are also written to bench/results/netconf_latency.json.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ncclient.transport.session
from ncclient import manager

from .servers import NAMESPACE, ROOT, BenchError, Composer, Netconfd

ncclient.transport.session.TICK = 0.001

BASE = "urn:ietf:params:xml:ns:netconf:base:1.0"
OPERATIONS = ("get-config", "get (subtree)", "edit+commit (bulk)", "edit+commit (1 leaf)")


def entries_config(n: int, offset: int) -> str:
    body = "".join("<entry><name>e%d</name><value>%d</value><description>entry %d"
                   "</description></entry>" % (i, i + offset, i) for i in range(n))
    return '<config xmlns="%s"><entries xmlns="%s">%s</entries></config>' % (BASE, NAMESPACE,
                                                                               body)


def one_leaf(n: int, value: int) -> str:
    return ('<config xmlns="%s"><entries xmlns="%s"><entry><name>e%d</name><value>%d</value>'
            '</entry></entries></config>' % (BASE, NAMESPACE, n // 2, value))


def connect(server):
    return manager.connect(host="127.0.0.1", port=server.port, username=server.username,
                           key_filename=server.key, hostkey_verify=False, look_for_keys=False,
                           allow_agent=False, timeout=3600)


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _actions(m, n):
    flt = '<entries xmlns="%s"><entry><name>e%d</name></entry></entries>' % (NAMESPACE, n // 2)
    return {
        "get-config": lambda i: m.get_config(source="running"),
        "get (subtree)": lambda i: m.get(filter=("subtree", flt)),
        "edit+commit (1 leaf)": lambda i: (
            m.edit_config(target="candidate", config=one_leaf(n, 1000000 + i)), m.commit()),
        "edit+commit (bulk)": lambda i: (
            m.edit_config(target="candidate", config=entries_config(n, i + 1),
                          default_operation="replace"), m.commit()),
    }, flt


def measure(servers, sizes, repeat_for) -> dict:
    """{server name: {size: {operation: median seconds}}}. The servers are measured
    turn about, round by round (the order alternating), so that they see the same load
    on the machine; each operation runs its rounds back to back, after a warm-up round
    for the sizes up to 1,000."""
    managers = {server.name: connect(server) for server in servers}
    results = {name: {} for name in managers}
    try:
        for n in sizes:
            repeat = repeat_for(n)
            rounds = range(repeat + 1) if n <= 1000 else range(1, repeat + 1)
            actions = {}
            for name, m in managers.items():
                m.timeout = 3600
                m.edit_config(target="candidate", config=entries_config(n, 0),
                              default_operation="replace")
                m.commit()
                actions[name] = _actions(m, n)
            for op in OPERATIONS:
                samples = {name: [] for name in managers}
                for i in rounds:
                    order = list(managers) if i % 2 else list(reversed(managers))
                    for name in order:
                        samples[name].append(timed(lambda: actions[name][0][op](i)))
                for name in managers:
                    values = samples[name][1:] if n <= 1000 else samples[name]
                    results[name].setdefault(n, {})[op] = statistics.median(values)
                print("  %d entries: %s done (%d rounds)" % (n, op, repeat), file=sys.stderr,
                      flush=True)
            for name, m in managers.items():
                reply = m.get(filter=("subtree", actions[name][1]))
                assert "<name>e%d</name>" % (n // 2) in reply.xml, reply.xml[:500]
    finally:
        for m in managers.values():
            m.close_session()
    return results


# -- NACM on against off ---------------------------------------------------------------
NACM_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
NACM_OPERATIONS = ("get-config", "edit+commit (1 leaf)")


def nacm_rules() -> str:
    """20 rules for the user bencher, as an operator would write them: 18 path rules on
    single entries (none of them exists: the reply is the same size), a module rule, and
    the permit of the benchmark module that decides the rest."""
    rules = "".join(
        "<rule><name>hide-%d</name><path xmlns:cb='%s'>/cb:entries/cb:entry[cb:name='secret%d']"
        "</path><access-operations>read update delete</access-operations><action>deny"
        "</action></rule>" % (i, NAMESPACE, i) for i in range(18))
    rules += ("<rule><name>no-templates</name><module-name>composer-templates</module-name>"
              "<access-operations>*</access-operations><action>deny</action></rule>"
              "<rule><name>bench</name><module-name>%s</module-name><access-operations>*"
              "</access-operations><action>permit</action></rule>" % "composer-bench")
    return ('<config xmlns="%s"><nacm xmlns="%s"><groups><group><name>bench</name>'
            '<user-name>bencher</user-name></group></groups><rule-list><name>bench</name>'
            '<group>bench</group>%s</rule-list></nacm></config>' % (BASE, NACM_NS, rules))


def measure_nacm(server, sizes, repeat) -> dict:
    """{size: {operation: {"off": s, "on": s}}}: the same server, the recovery user (NACM
    bypassed, as with enable-nacm false) and bencher (20 rules), turn about."""
    users = {"off": "recovery", "on": "bencher"}
    keys = {mode: str(server.user_key(name)) for mode, name in users.items()}
    managers = {mode: manager.connect(
        host="127.0.0.1", port=server.port, username=users[mode], key_filename=keys[mode],
        hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=3600)
        for mode in users}
    results = {}
    try:
        setup = managers["off"]
        for n in sizes:
            setup.edit_config(target="candidate", config=entries_config(n, 0),
                              default_operation="replace")
            setup.commit()
            setup.edit_config(target="running", config=nacm_rules())
            actions = {mode: _actions(m, n)[0] for mode, m in managers.items()}
            for op in NACM_OPERATIONS:
                samples = {mode: [] for mode in managers}
                for i in range(repeat + 1):
                    order = list(managers) if i % 2 else list(reversed(managers))
                    for mode in order:
                        samples[mode].append(timed(lambda: actions[mode][op](i)))
                results.setdefault(n, {})[op] = {
                    mode: statistics.median(values[1:]) for mode, values in samples.items()}
                print("  %d entries: %s done" % (n, op), file=sys.stderr, flush=True)
            reply = managers["on"].get_config(source="running").xml
            assert "<name>e%d</name>" % (n // 2) in reply and "nacm" not in reply
    finally:
        for m in managers.values():
            m.close_session()
    return results


def nacm_table(results) -> str:
    lines = ["%-22s %7s %12s %12s %7s" % ("operation", "entries", "NACM off", "NACM on",
                                           "on/off"), "-" * 64]
    for op in NACM_OPERATIONS:
        for n, by_op in results.items():
            off, on = by_op[op]["off"], by_op[op]["on"]
            lines.append("%-22s %7d %9.1f ms %9.1f ms %6.2fx" % (op, n, off * 1000, on * 1000,
                                                                  on / off))
    return "\n".join(lines)


def table(sizes, ours, theirs) -> str:
    lines = ["%-22s %7s %14s %14s %14s" % ("operation", "entries", "composer-agent",
                                           "netconfd", "netconfd/ours"),
             "-" * 75]
    for op in OPERATIONS:
        for n in sizes:
            a = ours[n][op]
            b = theirs.get(n, {}).get(op) if theirs else None
            lines.append("%-22s %7d %11.1f ms %s %14s" % (
                op, n, a * 1000, ("%11.1f ms" % (b * 1000)) if b is not None else "%14s" % "-",
                ("%.1fx" % (b / a)) if b is not None else "-"))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.netconf_latency",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,1000,10000")
    parser.add_argument("--repeat", type=int, default=31,
                        help="measured rounds per size up to 1,000 entries")
    parser.add_argument("--repeat-large", type=int, default=3,
                        help="measured rounds per size above 1,000 entries (netconfd takes "
                             "tens of seconds per commit there)")
    parser.add_argument("--no-netconfd", action="store_true", help="only composer-agent")
    parser.add_argument("--nacm", action="store_true",
                        help="composer-agent only: get-config and a one-leaf edit+commit "
                        "with NACM on (a user with 20 rules) against off, same server")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.nacm:
        return main_nacm(sizes, args.repeat)

    def repeat_for(n):
        return args.repeat if n <= 1000 else args.repeat_large

    workdir = Path(tempfile.mkdtemp(prefix="ncbench-"))
    servers = [Composer(workdir)] + ([] if args.no_netconfd else [Netconfd(workdir)])
    try:
        for server in servers:
            print("starting %s" % server.name, file=sys.stderr, flush=True)
            server.start()
        results = measure(servers, sizes, repeat_for)
    except BenchError as exc:
        print("bench: %s" % exc, file=sys.stderr)
        return 1
    finally:
        for server in servers:
            server.stop()
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)
    print(table(sizes, results["composer-agent"], results.get("netconfd")))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "netconf_latency.json").write_text(json.dumps(
        {name: {str(n): r for n, r in res.items()} for name, res in results.items()}, indent=1))
    return 0


def main_nacm(sizes, repeat) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="ncbench-"))
    server = Composer(workdir)
    try:
        server.start()
        results = measure_nacm(server, sizes, repeat)
    except BenchError as exc:
        print("bench: %s" % exc, file=sys.stderr)
        return 1
    finally:
        server.stop()
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)
    print(nacm_table(results))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "netconf_latency_nacm.json").write_text(json.dumps(
        {str(n): r for n, r in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
