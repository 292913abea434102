"""RFC 5277 / RFC 6470 notifications through real clients (ncclient, netconf-console2, raw
SSH) from the NETCONF server in this process: configuration changes, sessions, confirmed
commits, filters, replay (also after a restart), the streams, a client that stops
reading, and 20 subscribers at once."""

import contextlib
import json
import os
import statistics
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from lxml import etree
from ncclient.operations.rpc import RPCError

from .conftest import BASE, NS, RawSession, ServerThread, config, connect
from .test_netconf_console import CONSOLE

ROOT = Path(__file__).resolve().parents[3]

NOTIF = "urn:ietf:params:xml:ns:netconf:notification:1.0"
NCN = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"
MANAGE = "urn:ietf:params:xml:ns:netmod:notification"


def stamp(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def subscribe(m, *, filter=None, start=None, stop=None):
    body = ""
    if filter is not None:
        body += filter
    if start is not None:
        body += "<startTime>%s</startTime>" % stamp(start)
    if stop is not None:
        body += "<stopTime>%s</stopTime>" % stamp(stop)
    reply = m.dispatch(etree.fromstring('<create-subscription xmlns="%s">%s'
                                        '</create-subscription>' % (NOTIF, body)))
    assert reply.ok


class Received:
    """A notification: its name, content element and eventTime, and when it arrived."""

    def __init__(self, notification):
        self.arrived = time.monotonic()
        root = notification.notification_ele
        self.root = root
        self.event_time = root.findtext("{%s}eventTime" % NOTIF)
        content = [e for e in root if etree.QName(e).localname != "eventTime"][0]
        self.name = etree.QName(content).localname
        self.content = content

    def text(self, path: str, ns: str = NCN) -> str | None:
        return self.content.findtext("/".join("{%s}%s" % (ns, p) for p in path.split("/")))

    def edits(self) -> list:
        return [(e.findtext("{%s}target" % NCN), e.findtext("{%s}operation" % NCN))
                for e in self.content.iterfind("{%s}edit" % NCN)]

    def __repr__(self):
        return "<%s %s>" % (self.name, self.event_time)


def take(m, name: str | None = None, timeout: float = 10.0) -> Received | None:
    """The next notification (named name, skipping others), None if none comes."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        notification = m.take_notification(timeout=left)
        if notification is None:
            return None
        got = Received(notification)
        if name is None or got.name == name:
            return got


def leaf_commit(m, value: int) -> float:
    """A commit of one leaf; when its reply came."""
    m.edit_config(target="candidate", config=config("<count>%d</count>" % value))
    m.commit()
    return time.monotonic()


def test_a_commit_is_announced_to_every_subscriber_within_a_second(server):
    with connect(server) as watcher, connect(server) as maker:
        subscribe(watcher)
        subscribe(maker)
        maker.edit_config(target="candidate", config=config(
            "<name>n</name><item><name>a</name><value>1</value></item>"))
        replied = leaf_commit(maker, 7)
        for m in (watcher, maker):      # the session that did not make it too
            change = take(m, "netconf-config-change")
            assert change is not None
            assert change.arrived - replied < 1.0
            assert change.text("changed-by/username") == "admin"
            assert change.text("changed-by/session-id") == str(maker.session_id)
            assert change.text("changed-by/source-host") == "127.0.0.1"
            assert change.text("datastore") == "running"
            assert sorted(change.edits()) == [
                ("/t:top/t:count", "create"), ("/t:top/t:item[t:name='a']", "create"),
                ("/t:top/t:name", "create")]
        maker.edit_config(target="candidate", config=config(
            '<name>m</name><item nc:operation="delete"><name>a</name></item>'))
        maker.commit()
        change = take(watcher, "netconf-config-change")
        assert sorted(change.edits()) == [("/t:top/t:item[t:name='a']", "delete"),
                                          ("/t:top/t:name", "replace")]
        # edit-config on running, and copy-config to startup (RFC 6470: both datastores)
        maker.edit_config(target="running", config=config("<count>8</count>"))
        change = take(watcher, "netconf-config-change")
        assert change.edits() == [("/t:top/t:count", "replace")]
        maker.copy_config(source="running", target="startup")
        change = take(watcher, "netconf-config-change")
        assert change.text("datastore") == "startup"
        assert change.edits() == [("/t:top", "create")]        # startup was empty
    stats = server.service.server.statistics.counters
    assert stats.out_notifications >= 8


def test_netconf_console2_receives_a_commit(server):
    proc = subprocess.Popen(
        [CONSOLE, "--host", "127.0.0.1", "--port", str(server.port), "-u", "admin",
         "--privKeyFile", server.key, "--ssh-config", "/dev/null",
         "--create-subscription", "NETCONF", "-x", "/netconf-config-change",
         "--sleep", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines: list = []
    reader = threading.Thread(target=lambda: lines.extend(
        (time.monotonic(), line) for line in proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while len(server.sessions()) < 1 or not any(
                s.subscribed for s in server.service.server.sessions.values()):
            assert time.monotonic() < deadline, "netconf-console2 did not subscribe"
            time.sleep(0.05)
        with connect(server) as m:
            m.edit_config(target="running", config=config("<name>console</name>"))
            replied = time.monotonic()
            m.edit_config(target="running", config=config("<count>3</count>"))
    finally:
        assert proc.wait(30) == 0, proc.stderr.read()
        reader.join(10)
    first = next(t for t, line in lines if b"netconf-config-change" in line)
    assert first - replied < 1.0
    out = b"".join(line for _, line in lines)
    assert out.count(b"<netconf-config-change") == 2       # nothing else passed the filter
    assert b"/t:top/t:name" in out and b"<operation>create</operation>" in out


def test_filters_on_the_content(server):
    with connect(server) as m:
        subscribe(m, filter='<filter type="subtree"><netconf-session-end xmlns="%s">'
                            '<termination-reason>killed</termination-reason>'
                            '</netconf-session-end></filter>' % NCN)
        with connect(server) as other:
            other.edit_config(target="running", config=config("<count>1</count>"))
            victim = connect(server)
            other.kill_session(victim.session_id)
        end = take(m)
        assert end.name == "netconf-session-end"
        assert end.text("termination-reason") == "killed"
        assert end.text("killed-by") == str(other.session_id)
        assert end.text("session-id") == str(victim.session_id)
        assert take(m, timeout=1.0) is None     # the closed one and the change: filtered out
    with connect(server) as m:
        subscribe(m, filter='<filter xmlns:n="%s" type="xpath" select="/n:netconf-config-'
                            'change/n:edit[n:operation=\'delete\']"/>' % NCN)
        m.edit_config(target="running", config=config("<name>x</name>"))
        m.edit_config(target="running", config=config('<name nc:operation="delete"/>'))
        change = take(m)
        assert change.edits() == [("/t:top/t:name", "delete")]
        with pytest.raises(RPCError) as caught:
            subscribe(m)
        assert caught.value.tag == "operation-failed"
    with connect(server) as m:
        with pytest.raises(RPCError) as caught:
            subscribe(m, filter='<filter type="xpath" select="/no-such-thing"/>')
        assert caught.value.tag == "invalid-value"


def test_session_start_and_end(server):
    with connect(server) as m:
        subscribe(m)
        other = connect(server)
        start = take(m, "netconf-session-start")
        assert start.text("session-id") == str(other.session_id)
        assert start.text("username") == "admin"
        other.close_session()
        end = take(m, "netconf-session-end")
        assert (end.text("session-id"), end.text("termination-reason")) == (
            str(other.session_id), "closed")
        raw = RawSession(server)
        assert take(m, "netconf-session-start") is not None
        raw.close()                         # the transport goes, without close-session
        end = take(m, "netconf-session-end")
        assert end.text("termination-reason") == "dropped"


def test_confirmed_commit_events_and_timeout(server):
    with connect(server) as m, connect(server) as watcher:
        subscribe(watcher)
        m.edit_config(target="candidate", config=config("<name>tentative</name>"))
        m.commit(confirmed=True, timeout="1")
        events = [take(watcher) for _ in range(2)]
        assert sorted(e.name for e in events) == ["netconf-config-change",
                                                  "netconf-confirmed-commit"]
        confirm = next(e for e in events if e.name == "netconf-confirmed-commit")
        assert (confirm.text("confirm-event"), confirm.text("timeout"),
                confirm.text("session-id")) == ("start", "1", str(m.session_id))
        timeout = take(watcher, "netconf-confirmed-commit", timeout=10)
        assert timeout.text("confirm-event") == "timeout"
        assert timeout.text("username") is None          # the server's doing
        rollback = take(watcher, "netconf-config-change")
        assert rollback.content.find("{%s}changed-by/{%s}server" % (NCN, NCN)) is not None
        assert rollback.edits() == [("/t:top", "delete")]          # empty again
        # extend, then complete
        m.edit_config(target="candidate", config=config("<name>kept</name>"))
        m.commit(confirmed=True, timeout="30")
        m.commit(confirmed=True, timeout="40")
        m.commit()
        seen = [take(watcher, "netconf-confirmed-commit") for _ in range(3)]
        assert [(e.text("confirm-event"), e.text("timeout")) for e in seen] == [
            ("start", "30"), ("extend", "40"), ("complete", None)]


def test_the_notification_modules_and_the_stream(server, nc):
    caps = set(nc.server_capabilities)
    assert "urn:ietf:params:netconf:capability:replay:1.0" in caps
    library = etree.fromstring(nc.get(filter=("subtree", '<yang-library xmlns="urn:ietf:'
                                                         'params:xml:ns:yang:ietf-yang-'
                                                         'library"/>')).xml.encode())
    names = {e.text for e in library.iter("{urn:ietf:params:xml:ns:yang:ietf-yang-library}name")}
    assert {"notifications", "nc-notifications", "ietf-netconf-notifications"} <= names
    assert "rpc create-subscription" in nc.get_schema("notifications").data
    assert "notification replayComplete" in nc.get_schema("nc-notifications").data
    assert "netconf-config-change" in nc.get_schema("ietf-netconf-notifications").data
    streams = etree.fromstring(nc.get(filter=("subtree", '<netconf xmlns="%s"/>' % MANAGE)
                                      ).xml.encode())
    stream = streams.find(".//{%s}stream" % MANAGE)
    assert stream.findtext("{%s}name" % MANAGE) == "NETCONF"
    assert stream.findtext("{%s}replaySupport" % MANAGE) == "true"
    created = stream.findtext("{%s}replayLogCreationTime" % MANAGE)
    assert created and created.startswith(str(datetime.now(timezone.utc).year))


def test_replay_then_live_also_after_a_restart(session_tmp):
    state = session_tmp / "pf-replay"
    server = ServerThread(state).start()
    try:
        before = datetime.now(timezone.utc) - timedelta(seconds=1)
        with connect(server) as m:
            for value in (1, 2, 3):
                m.edit_config(target="running", config=config("<count>%d</count>" % value))
        middle = datetime.now(timezone.utc)
        with connect(server) as m:
            m.edit_config(target="running", config=config("<count>4</count>"))
        with connect(server) as m:
            subscribe(m, start=before, stop=middle)
            got = [take(m)]
            while got[-1] is not None and got[-1].name != "notificationComplete":
                got.append(take(m))
            names = [g.name for g in got]
            assert names.count("netconf-config-change") == 3
            assert names[-2:] == ["replayComplete", "notificationComplete"]
            assert take(m, timeout=0.5) is None         # the subscription is over
            counts = [g.edits() for g in got if g.name == "netconf-config-change"]
            assert all(e == [("/t:top/t:count", "create" if i == 0 else "replace")]
                       for i, e in enumerate(counts))
        with pytest.raises(RPCError) as caught:
            with connect(server) as m:
                subscribe(m, start=datetime.now(timezone.utc) + timedelta(hours=1))
        assert caught.value.tag == "bad-element"
    finally:
        server.stop()
    server = ServerThread(state).start()          # a restart: the log is read back
    try:
        with connect(server) as m:
            subscribe(m, start=before)
            replayed = []
            while True:
                got = take(m)
                assert got is not None
                if got.name == "replayComplete":
                    break
                replayed.append(got)
            changes = [g for g in replayed if g.name == "netconf-config-change"]
            assert [c.edits()[0][0] for c in changes] == ["/t:top/t:count"] * 4
            assert [g.event_time for g in replayed] == sorted(g.event_time for g in replayed)
            with connect(server) as other:      # then live (running began empty again)
                other.edit_config(target="running", config=config("<count>9</count>"))
            assert take(m, "netconf-config-change").edits() == [("/t:top/t:count", "create")]
    finally:
        server.stop()


def test_a_subscriber_that_stops_reading_is_ended_and_blocks_nobody(session_tmp):
    server = ServerThread(session_tmp / "pf-slow", notifications={"subscriber-queue": 8}).start()
    try:
        with connect(server) as fast:
            subscribe(fast)
            slow = RawSession(server, window_size=4096)
            slow.rpc('<create-subscription xmlns="%s"/>' % NOTIF)
            slow_id = max(server.sessions())
            # the slow client reads nothing from here on; the other keeps changing running
            took = []
            deadline = time.monotonic() + 60
            while slow_id in server.sessions():
                assert time.monotonic() < deadline, "the slow subscriber was not ended"
                started = time.monotonic()
                fast.edit_config(target="running", config=config(
                    "<count>%d</count>" % (len(took) % 200)))
                took.append(time.monotonic() - started)
            assert max(took) < 2.0          # never held up by the one that does not read
            assert server.service.server.notifications.overflows == 1
            # the fast subscriber got every change, in order
            values = []
            while len(values) < len(took):
                change = take(fast, "netconf-config-change", timeout=10)
                assert change is not None, "%d of %d" % (len(values), len(took))
                values.append(change)
            assert [v.event_time for v in values] == sorted(v.event_time for v in values)
        assert slow.closed(10)
        slow.close()
    finally:
        server.stop()


def _cpu(pid: int) -> float:
    """CPU seconds a process used so far."""
    with open("/proc/%d/stat" % pid) as stream:
        fields = stream.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_kib(pid: int) -> int:
    with open("/proc/%d/status" % pid) as stream:
        return next(int(line.split()[1]) for line in stream if line.startswith("VmRSS:"))


@contextlib.contextmanager
def standalone_server(session_tmp, name: str):
    """The agent's NETCONF server as its own process (python -m agent.netconf, the nc-test
    module): (its Popen, port, admin's key file); terminated at the end."""
    import sys
    from tests.e2e.node import free_port
    from .conftest import TEST_YANG
    state, port = session_tmp / name, free_port()
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent.netconf", "--state-dir", str(state), "--address",
         "127.0.0.1", "--port", str(port), "--yang-dir", str(TEST_YANG), "--yang-module",
         "nc-test"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert b"NETCONF over SSH" in agent.stdout.readline()
        yield agent, port, str(state / "users" / "admin" / "id_ed25519")
    finally:
        agent.terminate()
        agent.wait(30)


def start_subscribers(port, key, count: int, expected: int, *mode):
    """tests.e2e.netconf.subscribers in its own process, READY. Subscribers are other
    machines: here they run at the lowest priority, so that what is measured is what they
    cost the node, not the two cores they share."""
    import sys
    subscribers = subprocess.Popen(
        ["nice", "-n", "19", sys.executable, "-m", "tests.e2e.netconf.subscribers",
         str(port), key, str(count), str(expected), *mode], cwd=ROOT, stdout=subprocess.PIPE,
        text=True)
    assert subscribers.stdout.readline().strip() == "READY"
    return subscribers


def commit_block(m, values) -> list:
    """Commit <count> to each of values in turn: the seconds each edit and commit took."""
    took = []
    for value in values:
        started = time.perf_counter()
        m.edit_config(target="candidate", config=config("<count>%d</count>" % value))
        m.commit()
        took.append(time.perf_counter() - started)
    return took


def test_twenty_subscribers_and_a_commit_loop(session_tmp):
    """The agent's NETCONF server as its own process (python -m agent.netconf), 20
    subscribers in another: each gets every configuration change, in order; the server's
    memory stays flat; a commit is not slower than with no subscriber (figures printed)."""
    subscribers = None
    with standalone_server(session_tmp, "pf-load") as (agent, port, key):
        try:
            m = connect(type("S", (), {"port": port, "key": key})())
            commits = 150

            def block(n, offset):
                return commit_block(m, [(offset + i) % 250 for i in range(n)])
            block(30, 0)                                     # warm-up
            cpu = _cpu(agent.pid)
            alone = block(commits, 30)
            cpu_alone = (_cpu(agent.pid) - cpu) / commits
            subscribers = start_subscribers(port, key, 20, 2 * commits)
            warm = block(commits, 1)
            rss_before = _rss_kib(agent.pid)
            cpu = _cpu(agent.pid)
            loaded = block(commits, 2)
            cpu_loaded = (_cpu(agent.pid) - cpu) / commits
            rss_after = _rss_kib(agent.pid)
            alone += block(commits, 3)                # with the subscribers gone from the loop?
            m.close_session()
            received = json.loads(subscribers.stdout.readline())
            assert subscribers.wait(60) == 0
        finally:
            if subscribers is not None and subscribers.poll() is None:
                subscribers.kill()
    assert len(received) == 20
    first = received[0]
    assert len(first) >= 2 * commits
    for times in received:                  # none lost, none reordered, the same for all
        assert times[:2 * commits] == first[:2 * commits]
        assert times == sorted(times)
    median = statistics.median
    slower = median(loaded) / median(alone) - 1
    print("\ncommit with 20 subscribers: median %.2f ms (p90 %.2f), alone %.2f ms "
          "(p90 %.2f): %+.1f %%; server RSS %d -> %d KiB over %d commits"
          "; server CPU per commit %.2f ms alone, %.2f ms with them"
          % (median(loaded) * 1000, sorted(loaded)[int(0.9 * len(loaded))] * 1000,
             median(alone) * 1000, sorted(alone)[int(0.9 * len(alone))] * 1000,
             slower * 100, rss_before, rss_after, commits, cpu_alone * 1000,
             cpu_loaded * 1000))
    assert rss_after - rss_before < 4096
    # What 20 subscribers cost the node per commit is one SSH message each (the
    # notification is made and filtered once): on this machine's two shared cores that
    # CPU shows in the commit's latency (reported above), so the bound is on the CPU.
    per_send = (cpu_loaded - cpu_alone) / 20
    assert per_send < 0.00025, "%.0f us of CPU per notification sent" % (per_send * 1e6)
    assert warm


def test_a_restart_with_other_capabilities_announces_them(session_tmp):
    state = session_tmp / "pf-caps"
    server = ServerThread(state).start()
    server.stop()
    since = datetime.now(timezone.utc)
    server = ServerThread(state, **{"extra-yang-modules": ["nc-test"]}).start()   # no nc-parts
    try:
        with connect(server) as m:
            subscribe(m, start=since)
            change = take(m, "netconf-capability-change")
            assert change is not None
            assert change.content.find("{%s}changed-by/{%s}server" % (NCN, NCN)) is not None
            modified = [e.text for e in change.content.iterfind(
                "{%s}modified-capability" % NCN)]
            assert any(c.startswith("urn:ietf:params:netconf:capability:yang-library:1.1?")
                       for c in modified), modified
    finally:
        server.stop()
