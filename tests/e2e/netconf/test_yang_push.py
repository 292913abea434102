"""RFC 8639/8640/8641 through ncclient against the NETCONF server in this process:
establish-, modify-, delete- and kill-subscription, event stream subscriptions (with
replay), YANG-push periodic and on-change subscriptions (YANG patch, dampening,
excluded changes, sync-on-start), the errors with their identities, and the /streams
and /subscriptions state."""

import math
import time
from datetime import datetime, timedelta, timezone

import pytest
from lxml import etree
from ncclient.operations.rpc import RPCError

from agent.model import create_context
from .conftest import NS, config, connect
from .test_notifications import leaf_commit, stamp, take

SN = "urn:ietf:params:xml:ns:yang:ietf-subscribed-notifications"
YP = "urn:ietf:params:xml:ns:yang:ietf-yang-push"
DS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
NCN = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"
NMDA = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
TOP_FILTER = '<yp:datastore-subtree-filter><top xmlns="%s"/></yp:datastore-subtree-filter>' % NS


def establish(m, body: str) -> int:
    reply = m.dispatch(etree.fromstring(
        '<establish-subscription xmlns="%s" xmlns:yp="%s" xmlns:ds="%s">%s'
        '</establish-subscription>' % (SN, YP, DS, body)))
    return int(etree.fromstring(reply.xml.encode()).findtext(".//{%s}id" % SN))


def on_change(m, *, datastore="running", flt=TOP_FILTER, dampening=None, sync=None,
              excluded=()) -> int:
    policy = ""
    if dampening is not None:
        policy += "<yp:dampening-period>%d</yp:dampening-period>" % dampening
    if sync is not None:
        policy += "<yp:sync-on-start>%s</yp:sync-on-start>" % sync
    policy += "".join("<yp:excluded-change>%s</yp:excluded-change>" % c for c in excluded)
    return establish(m, "<yp:datastore>ds:%s</yp:datastore>%s<yp:on-change>%s</yp:on-change>"
                     % (datastore, flt, policy))


def rpc(m, name: str, ident: int, ns: str = SN):
    return m.dispatch(etree.fromstring('<%s xmlns="%s"><id>%d</id></%s>'
                                       % (name, ns, ident, name)))


def edits(update) -> list:
    return [(e.findtext("{%s}operation" % YP), e.findtext("{%s}target" % YP))
            for e in update.content.iterfind(
                "{%s}datastore-changes/{%s}yang-patch/{%s}edit" % (YP, YP, YP))]


def values(update) -> list:
    return [etree.tostring(e[0]) if len(e) else None for e in update.content.iterfind(
        "{%s}datastore-changes/{%s}yang-patch/{%s}edit/{%s}value" % (YP, YP, YP, YP))]


def test_on_change_sends_the_snapshot_then_a_yang_patch_per_commit(server):
    ctx = create_context(extra_dirs=[str(server.config.get("netconf", "extra-yang-dirs")[0])],
                         extra_modules=["nc-test", "nc-parts"])
    with connect(server) as watcher, connect(server) as maker:
        maker.edit_config(target="candidate", config=config("<name>n</name>"))
        leaf_commit(maker, 4)
        ident = on_change(watcher)
        sync = take(watcher, "push-update")
        assert sync is not None and sync.content.findtext("{%s}id" % YP) == str(ident)
        contents = sync.content.find("{%s}datastore-contents" % YP)
        assert contents.findtext("{%s}top/{%s}count" % (NS, NS)) == "4"
        # what was sent fits the model (libyang parses the notification)
        ctx.parse_op_mem("xml", etree.tostring(sync.content), dtype=_notif())
        replied = leaf_commit(maker, 5)
        update = take(watcher, "push-change-update")
        assert update is not None and update.arrived - replied < 1.0
        assert edits(update) == [("replace", "/nc-test:top/count")]
        assert values(update) == [b'<count xmlns="%s">5</count>' % NS.encode()]
        ctx.parse_op_mem("xml", etree.tostring(update.content), dtype=_notif())
        maker.edit_config(target="candidate", config=config(
            "<item><name>a b</name><value>1</value></item>"))
        maker.commit()
        update = take(watcher, "push-change-update")
        assert edits(update) == [("create", "/nc-test:top/item=a%20b")]
        maker.edit_config(target="candidate", config=config(
            '<item nc:operation="delete"><name>a b</name></item>'))
        maker.commit()
        assert edits(take(watcher, "push-change-update")) == [
            ("delete", "/nc-test:top/item=a%20b")]
        # a change outside the filter sends nothing
        maker.edit_config(target="candidate", config=(
            '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><parts xmlns='
            '"urn:composer-nc:test:nc-parts"><owner>x</owner></parts></config>'))
        maker.commit()
        assert take(watcher, "push-change-update", timeout=1.0) is None


def _notif():
    from libyang import DataType
    return DataType.NOTIF_YANG


def test_excluded_changes_and_no_sync_on_start(server):
    with connect(server) as watcher, connect(server) as maker:
        leaf_commit(maker, 4)
        on_change(watcher, sync="false", excluded=("replace",))
        leaf_commit(maker, 5)                       # a replace: excluded
        maker.edit_config(target="candidate", config=config("<name>n</name>"))
        maker.commit()                              # a create
        first = take(watcher)
        assert first.name == "push-change-update"   # no push-update first
        assert edits(first) == [("create", "/nc-test:top/name")]


def test_periodic_updates_come_at_the_period(server):
    with connect(server) as m:
        anchor = datetime.now(timezone.utc) + timedelta(seconds=1)
        establish(m, "<yp:datastore>ds:operational</yp:datastore>%s<yp:periodic>"
                  "<yp:period>50</yp:period><yp:anchor-time>%s</yp:anchor-time></yp:periodic>"
                  % (TOP_FILTER, stamp(anchor)))
        arrivals = []
        for _ in range(7):
            update = take(m, "push-update", timeout=3)
            assert update is not None
            arrivals.append(update.arrived)
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
        assert all(0.45 <= gap <= 0.55 for gap in gaps), gaps
        # aligned on the anchor: each eventTime is a multiple of the period after it
        first = datetime.fromisoformat(update.event_time.replace("Z", "+00:00"))
        offset = (first - anchor).total_seconds() % 0.5
        assert min(offset, 0.5 - offset) < 0.05, offset


def test_dampening_coalesces_a_burst_of_commits(server):
    with connect(server) as watcher, connect(server) as maker:
        leaf_commit(maker, 1)
        on_change(watcher, dampening=50, sync="false")     # 0.5 s
        started = time.monotonic()
        for value in range(2, 22):                          # 20 commits
            leaf_commit(maker, value)
        burst = time.monotonic() - started
        updates = []
        while (update := take(watcher, "push-change-update", timeout=1.5)) is not None:
            updates.append(update)
        assert 1 <= len(updates) <= math.ceil(burst / 0.5) + 1, (len(updates), burst)
        assert len(updates) < 20
        assert values(updates[-1]) == [b'<count xmlns="%s">21</count>' % NS.encode()]
        # at least the dampening period apart (when they were sent: they are read after)
        times = [datetime.fromisoformat(u.event_time.replace("Z", "+00:00")) for u in updates]
        assert all((b - a).total_seconds() >= 0.49 for a, b in zip(times, times[1:])), times


def test_errors_carry_the_rfc_8639_and_8641_identities(server):
    def refused(m, body):
        with pytest.raises(RPCError) as caught:
            establish(m, body)
        return caught.value
    with connect(server) as m:
        error = refused(m, "<yp:datastore>ds:candidate</yp:datastore><yp:on-change/>")
        assert (error.tag, error.app_tag) == (
            "invalid-value", "ietf-yang-push:datastore-not-subscribable")
        error = refused(m, "<yp:datastore>ds:running</yp:datastore><yp:periodic>"
                        "<yp:period>1</yp:period></yp:periodic>")
        assert (error.tag, error.app_tag) == ("invalid-value", "ietf-yang-push:period-unsupported")
        error = refused(m, "<stream>nope</stream>")
        assert error.app_tag == "ietf-subscribed-notifications:stream-unavailable"
        error = refused(m, "<stream>NETCONF</stream><encoding>encode-json</encoding>")
        assert error.app_tag == "ietf-subscribed-notifications:encoding-unsupported"
        error = refused(m, "<yp:datastore>ds:running</yp:datastore>"
                        "<yp:datastore-xpath-filter>/nothing-here</yp:datastore-xpath-filter>"
                        "<yp:on-change/>")
        assert error.app_tag == "ietf-subscribed-notifications:filter-unsupported"
        error = refused(m, "<stream>NETCONF</stream><replay-start-time>%s</replay-start-time>"
                        % stamp(datetime.now(timezone.utc) + timedelta(hours=1)))
        assert (error.tag, error.app_tag) == (
            "operation-not-supported", "ietf-subscribed-notifications:replay-unsupported")
        error = refused(m, "<yp:datastore>ds:running</yp:datastore><yp:periodic>"
                        "<yp:period>100</yp:period></yp:periodic><yp:on-change/>")
        assert error.tag == "bad-element"
        for name in ("delete-subscription", "kill-subscription"):
            with pytest.raises(RPCError) as caught:
                rpc(m, name, 999)
            assert caught.value.app_tag == "ietf-subscribed-notifications:no-such-subscription"
        # configured subscriptions are refused (composer-push-deviations)
        m.edit_config(target="candidate", config=(
            '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><subscriptions xmlns='
            '"%s"><subscription><id>5</id><stream>NETCONF</stream><receivers><receiver>'
            '<name>r</name></receiver></receivers></subscription></subscriptions></config>'
            % SN))
        with pytest.raises(RPCError) as caught:
            m.commit()
        assert "configured subscriptions are not supported" in str(caught.value)
        m.discard_changes()


def test_too_many_subscriptions(session_tmp):
    from .conftest import ServerThread
    srv = ServerThread(session_tmp / "pb-few", notifications={"max-subscriptions": 2}).start()
    try:
        with connect(srv) as m:
            establish(m, "<stream>NETCONF</stream>")
            establish(m, "<stream>NETCONF</stream>")
            with pytest.raises(RPCError) as caught:
                establish(m, "<stream>NETCONF</stream>")
            assert (caught.value.tag, caught.value.app_tag) == (
                "resource-denied", "ietf-subscribed-notifications:insufficient-resources")
    finally:
        srv.stop()


def state(m, ident: int):
    data = etree.fromstring(m.dispatch(etree.fromstring(
        '<get-data xmlns="%s" xmlns:ds="%s"><datastore>ds:operational</datastore>'
        '<subtree-filter><subscriptions xmlns="%s"/><streams xmlns="%s"/></subtree-filter>'
        '</get-data>' % (NMDA, DS, SN, SN))).xml.encode())
    entry = [s for s in data.iterfind(".//{%s}subscription" % SN)
             if s.findtext("{%s}id" % SN) == str(ident)]
    return data, entry[0] if entry else None


def test_modify_delete_kill_and_the_subscriptions_state(server):
    with connect(server) as watcher, connect(server) as other, connect(server) as maker:
        ident = on_change(watcher, sync="false")
        leaf_commit(maker, 6)
        assert take(watcher, "push-change-update") is not None
        data, entry = state(other, ident)
        stream = data.find(".//{%s}streams/{%s}stream" % (SN, SN))
        assert stream.findtext("{%s}name" % SN) == "NETCONF"
        assert stream.find("{%s}replay-support" % SN) is not None
        assert entry.findtext("{%s}datastore" % YP).endswith(":running")
        assert entry.find("{%s}on-change" % YP) is not None
        receiver = entry.find("{%s}receivers/{%s}receiver" % (SN, SN))
        assert receiver.findtext("{%s}sent-event-records" % SN) == "1"
        assert receiver.findtext("{%s}state" % SN) == "active"
        # modify: on-change becomes periodic, with the same id
        watcher.dispatch(etree.fromstring(
            '<modify-subscription xmlns="%s" xmlns:yp="%s" xmlns:ds="%s"><id>%d</id>'
            '<yp:datastore>ds:running</yp:datastore>%s<yp:periodic><yp:period>20</yp:period>'
            '</yp:periodic></modify-subscription>' % (SN, YP, DS, ident, TOP_FILTER)))
        modified = take(watcher, "subscription-modified")
        assert modified.content.findtext("{%s}id" % SN) == str(ident)
        modules = create_context(extra_dirs=server.config.get("netconf", "extra-yang-dirs"),
                                 extra_modules=["nc-test", "nc-parts"])
        modules.parse_op_mem("xml", etree.tostring(modified.content), dtype=_notif())
        assert modified.content.findtext("{%s}periodic/{%s}period" % (YP, YP)) == "20"
        assert take(watcher, "push-update", timeout=2) is not None
        # another session can neither modify nor delete it
        with pytest.raises(RPCError) as caught:
            rpc(other, "delete-subscription", ident)
        assert caught.value.app_tag == "ietf-subscribed-notifications:no-such-subscription"
        # but kill it: its receiver is told
        rpc(other, "kill-subscription", ident)
        terminated = take(watcher, "subscription-terminated")
        assert terminated.content.findtext("{%s}reason" % SN).endswith(":no-such-subscription")
        assert state(other, ident)[1] is None
        while take(watcher, "push-update", timeout=0.5) is not None:
            pass
        assert take(watcher, timeout=0.5) is None           # nothing more comes
        # delete-subscription by its own session
        second = on_change(watcher, sync="false")
        rpc(watcher, "delete-subscription", second)
        leaf_commit(maker, 9)
        assert take(watcher, timeout=1.0) is None
        assert state(other, second)[1] is None


def test_event_stream_subscription_with_filter_and_replay(server):
    with connect(server) as watcher, connect(server) as maker:
        before = datetime.now(timezone.utc) - timedelta(days=1)     # before the log began
        leaf_commit(maker, 3)
        reply = etree.fromstring(watcher.dispatch(etree.fromstring(
            '<establish-subscription xmlns="%s"><stream>NETCONF</stream><stream-subtree-filter>'
            '<netconf-config-change xmlns="%s"/></stream-subtree-filter>'
            '<replay-start-time>%s</replay-start-time></establish-subscription>'
            % (SN, NCN, stamp(before)))).xml.encode())
        ident = int(reply.findtext(".//{%s}id" % SN))
        revised = reply.findtext(".//{%s}replay-start-time-revision" % SN)
        assert revised is not None and revised > stamp(before)
        replayed = take(watcher, "netconf-config-change")
        assert replayed is not None
        done = take(watcher, "replay-completed")
        assert done.content.findtext("{%s}id" % SN) == str(ident)
        replied = leaf_commit(maker, 4)
        live = take(watcher, "netconf-config-change")
        assert live is not None and live.arrived - replied < 1.0
        _, entry = state(maker, ident)
        receiver = entry.find("{%s}receivers/{%s}receiver" % (SN, SN))
        assert int(receiver.findtext("{%s}sent-event-records" % SN)) >= 2
        assert int(receiver.findtext("{%s}excluded-event-records" % SN)) >= 1   # sessions


def test_stop_time_ends_the_subscription(server):
    with connect(server) as m:
        stop = datetime.now(timezone.utc) + timedelta(seconds=1)
        ident = establish(m, "<yp:datastore>ds:running</yp:datastore>%s<yp:periodic>"
                          "<yp:period>30</yp:period></yp:periodic><stop-time>%s</stop-time>"
                          % (TOP_FILTER, stamp(stop)))
        updates = 0
        while (update := take(m, timeout=1.0)) is not None:
            assert update.name == "push-update"
            assert update.event_time <= stamp(stop)
            updates += 1
        assert 2 <= updates <= 4
        assert state(m, ident)[1] is None           # gone from /subscriptions


def test_subscriptions_to_the_same_data_share_one_read_per_change(server, monkeypatch):
    from agent.netconf import yangpush
    reads = []
    real = yangpush.DatastoreSubscription.read

    async def counted(self):
        reads.append(self.id)
        return await real(self)
    monkeypatch.setattr(yangpush.DatastoreSubscription, "read", counted)
    with connect(server) as watcher, connect(server) as maker:
        for _ in range(5):
            on_change(watcher, datastore="operational", sync="false")
        del reads[:]
        leaf_commit(maker, 7)
        updates = [take(watcher, "push-change-update") for _ in range(5)]
        assert [edits(u) for u in updates] == [[("create", "/nc-test:top")]] * 5
        assert len(reads) == 1, reads


def test_subscriptions_with_the_same_terms_share_one_diff_per_change(server, monkeypatch):
    """One YANG patch computed per change for the subscriptions whose terms differ only
    in their id; one with other excluded change types gets its own."""
    from agent.netconf import yangpush
    diffs = []
    real = yangpush.patch_edits

    def counted(old, new, excluded=()):
        diffs.append(excluded)
        return real(old, new, excluded)
    monkeypatch.setattr(yangpush, "patch_edits", counted)
    with connect(server) as watcher, connect(server) as maker:
        leaf_commit(maker, 3)
        idents = [on_change(watcher, sync="false") for _ in range(5)]
        other = on_change(watcher, sync="false", excluded=("create",))
        del diffs[:]
        leaf_commit(maker, 4)
        updates = [take(watcher, "push-change-update") for _ in range(6)]
        got = {int(u.content.findtext("{%s}id" % YP)): u for u in updates}
        assert sorted(got) == sorted(idents + [other])
        for ident in idents + [other]:
            assert edits(got[ident]) == [("replace", "/nc-test:top/count")]
            assert got[ident].content.findtext(".//{%s}patch-id" % YP) == "%d-1" % ident
        assert sorted(diffs) == [(), ("create",)], diffs


def test_an_on_change_subscriber_that_stops_reading_is_ended_and_blocks_nobody(session_tmp):
    """A YANG-push receiver whose client reads nothing more: its updates wait on its
    session (never for the others, never for the commits) up to subscriber-queue, then
    its session is ended and counted; the subscriber that reads gets every change in
    order."""
    from .conftest import RawSession, ServerThread
    server = ServerThread(session_tmp / "yp-slow", notifications={"subscriber-queue": 8}).start()
    try:
        with connect(server) as fast, connect(server) as maker:
            leaf_commit(maker, 0)
            fast_id = on_change(fast, sync="false")
            slow = RawSession(server, window_size=4096)
            reply = slow.rpc('<establish-subscription xmlns="%s" xmlns:yp="%s" xmlns:ds="%s">'
                             '<yp:datastore>ds:running</yp:datastore>%s<yp:on-change>'
                             '<yp:sync-on-start>false</yp:sync-on-start></yp:on-change>'
                             '</establish-subscription>' % (SN, YP, DS, TOP_FILTER))
            assert b"<id" in reply, reply
            slow_id = max(server.sessions())
            took, deadline = [], time.monotonic() + 60
            while slow_id in server.sessions():
                assert time.monotonic() < deadline, "the slow receiver was not ended"
                took.append(leaf_commit(maker, len(took) % 200 + 1))
            assert server.service.server.notifications.overflows == 1
            for index in range(len(took)):
                update = take(fast, "push-change-update", timeout=10)
                assert update is not None, "%d of %d" % (index, len(took))
                assert int(update.content.findtext("{%s}id" % YP)) == fast_id
                assert values(update) == [b'<count xmlns="%s">%d</count>'
                                          % (NS.encode(), index % 200 + 1)]
        assert slow.closed(10)
        slow.close()
    finally:
        server.stop()


def test_named_filters_of_the_configuration(server):
    with connect(server) as watcher, connect(server) as maker:
        with pytest.raises(RPCError) as caught:
            establish(watcher, "<stream>NETCONF</stream><stream-filter-name>none"
                               "</stream-filter-name>")
        assert caught.value.app_tag == "ietf-subscribed-notifications:filter-unavailable"
        maker.edit_config(target="candidate", config=(
            '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><filters xmlns="%s" '
            'xmlns:yp="%s"><stream-filter><name>changes</name><stream-subtree-filter>'
            '<netconf-config-change xmlns="%s"/></stream-subtree-filter></stream-filter>'
            # (a subtree filter's empty container would be lost: libyang keeps anydata as
            # data, and an empty non-presence container is no data)
            '<yp:selection-filter><yp:filter-id>top</yp:filter-id>'
            '<yp:datastore-xpath-filter xmlns:t="%s">/t:top</yp:datastore-xpath-filter>'
            '</yp:selection-filter></filters></config>' % (SN, YP, NCN, NS)))
        maker.commit()
        establish(watcher, "<stream>NETCONF</stream><stream-filter-name>changes"
                           "</stream-filter-name>")
        establish(watcher, "<yp:datastore>ds:running</yp:datastore><yp:selection-filter-ref>"
                           "top</yp:selection-filter-ref><yp:on-change><yp:sync-on-start>"
                           "false</yp:sync-on-start></yp:on-change>")
        leaf_commit(maker, 2)
        got = {getattr(take(watcher), "name", None), getattr(take(watcher), "name", None)}
        assert got == {"netconf-config-change", "push-change-update"}
        assert take(watcher, timeout=1.0) is None       # sessions etc. filtered out
        # in establish-subscription, module names are prefixes too (RFC 8641)
        establish(watcher, "<yp:datastore>ds:running</yp:datastore><yp:datastore-xpath-filter>"
                           "/nc-test:top/nc-test:name</yp:datastore-xpath-filter>"
                           "<yp:on-change><yp:sync-on-start>false</yp:sync-on-start>"
                           "</yp:on-change>")
        maker.edit_config(target="candidate", config=config("<name>z</name>"))
        maker.commit()
        names = sorted(getattr(take(watcher), "name", None) for _ in range(3))
        assert names == ["netconf-config-change", "push-change-update", "push-change-update"]


def interleaved_commits(m, commit, start, rounds: int, commits: int, pid=None) -> dict:
    """Blocks of commits alone and with 20 subscribers, interleaved A B B A A B ... so that
    what else runs on the machine weighs on both alike: commit(value) makes one edit and
    commit; start(expected) starts the subscribers (READY). Each subscriber must get every
    value committed while it listened, in order (none lost, reordered or extra). Returns
    the median commit of each block (seconds), the last value, the slowdown (the median of
    the rounds' ratios loaded / alone, minus 1), and, given the server's pid, its RSS
    after each round (KiB) and CPU per commit (seconds) alone and loaded."""
    import itertools
    import json
    import statistics
    from .test_notifications import _cpu, _rss_kib
    values = (n % 250 + 1 for n in itertools.count())     # never the same twice in a row
    out = {"alone": [], "loaded": [], "rss": [], "cpu_alone": 0.0, "cpu_loaded": 0.0}

    def block(chosen, kind):
        began, took = _cpu(pid) if pid else 0.0, []
        for value in chosen:
            started = time.perf_counter()
            commit(value)
            took.append(time.perf_counter() - started)
            out["last"] = value
        if kind:
            out[kind].append(statistics.median(took))
            out["cpu_" + kind] += (_cpu(pid) - began) / rounds / commits if pid else 0.0

    def loaded():
        subscribers = start(commits)
        try:
            committed = [next(values) for _ in range(commits)]
            block(committed, "loaded")
            received = json.loads(subscribers.stdout.readline())
            assert subscribers.wait(60) == 0
        finally:
            if subscribers.poll() is None:
                subscribers.kill()
        assert len(received) == 20
        for got in received:
            assert got == [str(v) for v in committed]
    block(itertools.islice(values, 20), None)             # warm-up
    for index in range(rounds):
        if index % 2:
            loaded()
        block(itertools.islice(values, commits), "alone")
        if not index % 2:
            loaded()
        if pid:
            out["rss"].append(_rss_kib(pid))
    out["slowdown"] = statistics.median(
        b / a for a, b in zip(out["alone"], out["loaded"])) - 1
    return out


def describe_slowdown(what: str, out: dict) -> str:
    return ("%s with 20 on-change subscribers: medians per round %s ms, alone %s ms: %+.1f %%"
            % (what, " ".join("%.2f" % (t * 1000) for t in out["loaded"]),
               " ".join("%.2f" % (t * 1000) for t in out["alone"]), out["slowdown"] * 100))


def test_twenty_on_change_subscribers_and_a_commit_loop(session_tmp):
    """20 YANG-push on-change subscribers (another process) on the agent's NETCONF server
    (its own process) while one-leaf commits change /top/count: each subscriber gets every
    value, in the order committed; the server's RSS stays flat from round to round; the
    server's CPU per update sent stays under 100 us (one diff per change for all of them,
    updates written in rounds, AES-GCM: about 50 us here; 195 us with a diff per
    subscription, a write per update and chacha20-poly1305). The commit's slowdown is
    printed, not bounded: this commit is a few milliseconds of the server's own, so the
    updates' writes (about 35 us each in asyncssh) weigh on it on two shared cores
    however they are scheduled; the issue's bound is on a node's commit
    (tests/e2e/test_yang_push.py)."""
    from .test_notifications import commit_block, standalone_server, start_subscribers
    rounds, commits = 7, 40
    with standalone_server(session_tmp, "push-load") as (agent, port, key):
        m = connect(type("S", (), {"port": port, "key": key})())
        out = interleaved_commits(
            m, lambda value: commit_block(m, [value]),
            lambda expected: start_subscribers(port, key, 20, expected, "push"),
            rounds, commits, agent.pid)
        m.close_session()
    per_update = (out["cpu_loaded"] - out["cpu_alone"]) / 20
    print("\n%s; server RSS per round %s KiB; server CPU per commit %.2f ms alone, %.2f ms "
          "with them (%.0f us per update)" % (
              describe_slowdown("one-leaf commit", out), out["rss"], out["cpu_alone"] * 1000,
              out["cpu_loaded"] * 1000, per_update * 1e6))
    rss = out["rss"]
    assert rss[-1] - rss[1] < 4096, rss         # the first round sets the level
    assert per_update < 0.0001, "%.0f us of CPU per update sent" % (per_update * 1e6)
