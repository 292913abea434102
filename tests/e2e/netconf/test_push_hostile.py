"""Hostile RFC 8639/8641 parameters, as raw NETCONF through the real server: every
establish-, modify-, delete- and kill-subscription that asks for what is malformed,
unsupported or not the session's gets a proper rpc-error (error-type, error-tag, the
RFC 8639/8641 identity as error-app-tag where one applies, error-path and bad-element),
leaves no subscription behind, and the session and the server keep working; thousands
of establishes stay bounded and all end with their session."""

import gc
from datetime import datetime, timedelta, timezone

import pytest
from lxml import etree

from .conftest import BASE, NS, RawSession, ServerThread
from .test_hostile import rss_mb
from .test_notifications import stamp

B = "{%s}" % BASE
SN = "urn:ietf:params:xml:ns:yang:ietf-subscribed-notifications"
YP = "urn:ietf:params:xml:ns:yang:ietf-yang-push"
DS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
TOP = '<yp:datastore-subtree-filter><top xmlns="%s"/></yp:datastore-subtree-filter>' % NS
RUNNING = "<yp:datastore>ds:running</yp:datastore>" + TOP
SNI = "ietf-subscribed-notifications:"
YPI = "ietf-yang-push:"
FUTURE = stamp(datetime.now(timezone.utc) + timedelta(days=1))
PAST = stamp(datetime.now(timezone.utc) - timedelta(days=1))


def ask(session: RawSession, operation: str, body: str) -> etree._Element:
    """The rpc-reply (notifications that come before it are skipped)."""
    reply = etree.fromstring(session.rpc(
        '<%s xmlns="%s" xmlns:yp="%s" xmlns:ds="%s">%s</%s>'
        % (operation, SN, YP, DS, body, operation)))
    while reply.tag != B + "rpc-reply":
        reply = etree.fromstring(session.read_chunked())
    return reply


def establish(session: RawSession, body: str) -> int:
    reply = ask(session, "establish-subscription", body)
    ident = reply.findtext("{%s}id" % SN)
    assert ident is not None, etree.tostring(reply)
    return int(ident)


def error(reply) -> dict:
    found = reply.find(B + "rpc-error")
    assert found is not None, etree.tostring(reply)
    return {"type": found.findtext(B + "error-type"), "tag": found.findtext(B + "error-tag"),
            "app": found.findtext(B + "error-app-tag"),
            "path": found.findtext(B + "error-path"),
            "message": found.findtext(B + "error-message"),
            "bad": found.findtext(B + "error-info/" + B + "bad-element")}


def periodic(period: str, anchor: str = "") -> str:
    return RUNNING + "<yp:periodic><yp:period>%s</yp:period>%s</yp:periodic>" % (
        period, "<yp:anchor-time>%s</yp:anchor-time>" % anchor if anchor else "")


def on_change(dampening: str) -> str:
    return RUNNING + "<yp:on-change><yp:dampening-period>%s</yp:dampening-period>" \
        "</yp:on-change>" % dampening


PREDICATES = "/nc-test:top" + "".join("[count=%d]" % i for i in range(2000))
DEEP = "/nc-test:top" + "/nc-test:item" * 3000
NESTED = "/nc-test:top[" + "(" * 5000 + "count=1" + ")" * 5000 + "]"
HUGE = "/nc-test:top[" + " or ".join("count=%d" % i for i in range(60000)) + "]"

# (what, operation body, error-type, error-tag, error-app-tag, bad-element)
ESTABLISH = [
    ("periodic without a period", RUNNING + "<yp:periodic/>",
     "application", "missing-element", None, "period"),
    ("a period of zero", periodic("0"), "application", "invalid-value",
     YPI + "period-unsupported", "period"),
    ("a period below the minimum", periodic("9"), "application", "invalid-value",
     YPI + "period-unsupported", "period"),
    ("a negative period", periodic("-100"), "application", "invalid-value",
     YPI + "period-unsupported", "period"),
    ("a period beyond uint32", periodic("99999999999999999999"), "application",
     "invalid-value", YPI + "period-unsupported", "period"),
    ("a period that is no number", periodic("ten"), "application", "invalid-value",
     YPI + "period-unsupported", "period"),
    ("a malformed anchor-time", periodic("100", "tomorrow at noon"), "application",
     "invalid-value", None, "anchor-time"),
    ("an anchor-time out of range", periodic("100", "2024-13-45T99:99:99Z"), "application",
     "invalid-value", None, "anchor-time"),
    ("a negative dampening-period", on_change("-1"), "application", "invalid-value",
     YPI + "period-unsupported", "dampening-period"),
    ("a dampening-period beyond uint32", on_change("4294967296"), "application",
     "invalid-value", YPI + "period-unsupported", "dampening-period"),
    ("an unknown datastore", "<yp:datastore>ds:nowhere</yp:datastore>" + TOP
     + "<yp:on-change/>", "application", "invalid-value", YPI + "datastore-not-subscribable",
     "datastore"),
    ("a datastore identity of a foreign module",
     '<yp:datastore xmlns:x="urn:x">x:running</yp:datastore><yp:on-change/>',
     "application", "invalid-value", YPI + "datastore-not-subscribable", "datastore"),
    ("a datastore with an undeclared prefix",
     "<yp:datastore>nope:running</yp:datastore><yp:on-change/>",
     "application", "invalid-value", YPI + "datastore-not-subscribable", "datastore"),
    ("the candidate datastore", "<yp:datastore>ds:candidate</yp:datastore><yp:on-change/>",
     "application", "invalid-value", YPI + "datastore-not-subscribable", "datastore"),
    ("an unknown stream", "<stream>nope</stream>", "application", "invalid-value",
     SNI + "stream-unavailable", "stream"),
    ("a malformed XPath filter", "<yp:datastore>ds:running</yp:datastore><yp:datastore-"
     "xpath-filter>/nc-test:top[[</yp:datastore-xpath-filter><yp:on-change/>",
     "application", "invalid-value", SNI + "filter-unsupported", "datastore-xpath-filter"),
    ("an XPath filter with an unknown prefix", "<yp:datastore>ds:running</yp:datastore>"
     "<yp:datastore-xpath-filter>/zz:top</yp:datastore-xpath-filter><yp:on-change/>",
     "application", "invalid-value", SNI + "filter-unsupported", "datastore-xpath-filter"),
    ("an XPath filter with 2000 predicates", "<yp:datastore>ds:running</yp:datastore>"
     "<yp:datastore-xpath-filter>%s</yp:datastore-xpath-filter><yp:on-change/>" % PREDICATES,
     "application", "invalid-value", SNI + "filter-unsupported", "datastore-xpath-filter"),
    ("an XPath filter 3000 steps deep", "<yp:datastore>ds:running</yp:datastore>"
     "<yp:datastore-xpath-filter>%s</yp:datastore-xpath-filter><yp:on-change/>" % DEEP,
     "application", "invalid-value", SNI + "filter-unsupported", "datastore-xpath-filter"),
    ("an XPath filter nested 5000 deep", "<yp:datastore>ds:running</yp:datastore>"
     "<yp:datastore-xpath-filter>%s</yp:datastore-xpath-filter><yp:on-change/>" % NESTED,
     "application", "invalid-value", SNI + "filter-unsupported", "datastore-xpath-filter"),
    ("a huge XPath filter", "<yp:datastore>ds:running</yp:datastore>"
     "<yp:datastore-xpath-filter>%s</yp:datastore-xpath-filter><yp:on-change/>" % HUGE,
     "application", "invalid-value", SNI + "filter-unsupported", "datastore-xpath-filter"),
    ("a stream XPath filter nested 5000 deep", "<stream>NETCONF</stream>"
     "<stream-xpath-filter>%s</stream-xpath-filter>" % NESTED.replace("nc-test:top", "x"),
     "application", "invalid-value", SNI + "filter-unsupported", "stream-xpath-filter"),
    ("a subtree filter of a foreign namespace", "<yp:datastore>ds:running</yp:datastore>"
     '<yp:datastore-subtree-filter><top xmlns="urn:elsewhere"/></yp:datastore-subtree-filter>'
     "<yp:on-change/>", "application", "invalid-value", SNI + "filter-unsupported",
     "datastore-subtree-filter"),
    ("a stream subtree filter of a foreign namespace", "<stream>NETCONF</stream>"
     '<stream-subtree-filter><alien xmlns="urn:elsewhere"/></stream-subtree-filter>',
     "application", "invalid-value", SNI + "filter-unsupported", "stream-subtree-filter"),
    ("an unknown named filter", "<stream>NETCONF</stream><stream-filter-name>none"
     "</stream-filter-name>", "application", "invalid-value", SNI + "filter-unavailable",
     "stream-filter-name"),
    ("a stop-time in the past", "<stream>NETCONF</stream><stop-time>%s</stop-time>" % PAST,
     "application", "invalid-value", None, "stop-time"),
    ("a stop-time in the past, periodic", periodic("100") + "<stop-time>%s</stop-time>"
     % PAST, "application", "invalid-value", None, "stop-time"),
    ("a replay-start-time in the future", "<stream>NETCONF</stream><replay-start-time>%s"
     "</replay-start-time>" % FUTURE, "application", "operation-not-supported",
     SNI + "replay-unsupported", "replay-start-time"),
    ("encode-json", "<stream>NETCONF</stream><encoding>sn:encode-json</encoding>",
     "application", "invalid-value", SNI + "encoding-unsupported", "encoding"),
    ("an encoding that is no identity", "<stream>NETCONF</stream><encoding>morse</encoding>",
     "application", "invalid-value", SNI + "encoding-unsupported", "encoding"),
    ("an encode-xml of a foreign module", '<stream>NETCONF</stream><encoding xmlns:x="urn:x">'
     "x:encode-xml</encoding>", "application", "invalid-value", SNI + "encoding-unsupported",
     "encoding"),
    ("a dscp", "<stream>NETCONF</stream><dscp>10</dscp>", "application", "unknown-element",
     None, "dscp"),
    ("periodic and on-change", RUNNING + "<yp:periodic><yp:period>100</yp:period>"
     "</yp:periodic><yp:on-change/>", "application", "bad-element", None, "on-change"),
    ("a stream and a datastore", "<stream>NETCONF</stream><yp:datastore>ds:running"
     "</yp:datastore><yp:on-change/>", "application", "bad-element", None, "datastore"),
    ("an excluded change that is none", RUNNING + "<yp:on-change><yp:excluded-change>"
     "explode</yp:excluded-change></yp:on-change>", "application", "invalid-value", None,
     "excluded-change"),
    ("an id in establish", "<id>5</id><stream>NETCONF</stream>", "application",
     "unknown-element", None, "id"),
]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = ServerThread(tmp_path_factory.mktemp("push-hostile"),
                          notifications={"max-subscriptions": 20}).start()
    yield server
    server.stop()


def registry(srv):
    return srv.service.server.subscriptions


@pytest.fixture
def raw(srv):
    session = RawSession(srv)
    yield session
    session.close()


def alive(session: RawSession) -> None:
    """The session still answers, and can still subscribe (then lets it go)."""
    reply = ask(session, "establish-subscription", periodic("100"))
    ident = int(reply.findtext("{%s}id" % SN))
    assert ask(session, "delete-subscription", "<id>%d</id>" % ident).find(B + "ok") is not None


@pytest.mark.parametrize("what, body, etype, tag, app, bad", ESTABLISH,
                         ids=[case[0] for case in ESTABLISH])
def test_establish_refuses_with_the_rfc_error_and_keeps_nothing(srv, raw, what, body, etype,
                                                                tag, app, bad):
    before = set(registry(srv).by_id)
    got = error(ask(raw, "establish-subscription", body))
    assert (got["type"], got["tag"], got["app"], got["bad"]) == (etype, tag, app, bad), got
    assert got["message"], got
    assert got["path"] and got["path"].startswith("/sn:establish-subscription"), got
    assert set(registry(srv).by_id) == before
    alive(raw)


def test_modify_delete_and_kill_refuse_what_is_not_theirs_or_malformed(srv, raw):
    other = RawSession(srv)
    try:
        mine = establish(raw, periodic("100"))
        theirs = establish(other, on_change("10"))
        before = {i: s.terms for i, s in registry(srv).by_id.items()}
        cases = [
            ("modify-subscription", "<id>%d</id>" % theirs + periodic("200"), "invalid-value",
             SNI + "no-such-subscription", "id"),
            ("modify-subscription", "<id>424242</id>" + periodic("200"), "invalid-value",
             SNI + "no-such-subscription", "id"),
            ("modify-subscription", "<id>%d</id>" % mine + periodic("0"), "invalid-value",
             YPI + "period-unsupported", "period"),
            ("modify-subscription", "<id>%d</id>" % mine + periodic("-5"), "invalid-value",
             YPI + "period-unsupported", "period"),
            ("modify-subscription", "<id>%d</id>" % mine + "<yp:datastore>ds:running"
             "</yp:datastore><yp:datastore-xpath-filter>%s</yp:datastore-xpath-filter>"
             % NESTED, "invalid-value", SNI + "filter-unsupported", "datastore-xpath-filter"),
            ("modify-subscription", "<id>%d</id>" % mine + "<stop-time>%s</stop-time>" % PAST,
             "invalid-value", None, "stop-time"),
            ("modify-subscription", "<id>-1</id>" + periodic("200"), "invalid-value", None, "id"),
            ("modify-subscription", periodic("200"), "missing-element", None, "id"),
            ("delete-subscription", "<id>%d</id>" % theirs, "invalid-value",
             SNI + "no-such-subscription", "id"),
            ("delete-subscription", "<id>424242</id>", "invalid-value",
             SNI + "no-such-subscription", "id"),
            ("delete-subscription", "<id>abc</id>", "invalid-value", None, "id"),
            ("delete-subscription", "", "missing-element", None, "id"),
            ("kill-subscription", "<id>424242</id>", "invalid-value",
             SNI + "no-such-subscription", "id"),
            ("kill-subscription", "<id>99999999999999999999999</id>", "invalid-value", None,
             "id"),
        ]
        for operation, body, tag, app, bad in cases:
            got = error(ask(raw, operation, body))
            assert (got["tag"], got["app"], got["bad"]) == (tag, app, bad), (operation, body,
                                                                             got)
            assert got["path"] and got["path"].startswith("/sn:%s" % operation), got
        # nothing changed: both still there with their terms, both sessions answer
        assert {i: s.terms for i, s in registry(srv).by_id.items()} == before
        alive(raw)
        alive(other)
        # a modify of the filter alone keeps the period (RFC 8641: the trigger is optional)
        reply = ask(raw, "modify-subscription", "<id>%d</id><yp:datastore>ds:running"
                    "</yp:datastore><yp:datastore-xpath-filter>/nc-test:top/nc-test:count"
                    "</yp:datastore-xpath-filter>" % mine)
        assert reply.find(B + "ok") is not None, etree.tostring(reply)
        assert registry(srv).by_id[mine].terms.period == 100
        ask(raw, "delete-subscription", "<id>%d</id>" % mine)
    finally:
        other.close()
    _wait(lambda: theirs not in registry(srv).by_id)        # ended with its session


def test_more_than_allowed_then_all_end_with_the_session(srv):
    session = RawSession(srv)
    idents = [establish(session, periodic("100000")) for _ in range(20)]
    got = error(ask(session, "establish-subscription", periodic("100")))
    assert (got["tag"], got["app"]) == ("resource-denied", SNI + "insufficient-resources")
    assert len(registry(srv).by_id) == 20
    other = RawSession(srv)         # the server answers everyone else
    try:
        got = error(ask(other, "establish-subscription", "<stream>NETCONF</stream>"))
        assert got["app"] == SNI + "insufficient-resources"
    finally:
        other.close()
    session.close()
    _wait(lambda: not registry(srv).by_id)
    assert set(idents).isdisjoint(registry(srv).by_id)


def _wait(condition, timeout=10.0):
    import time
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within %.0f s" % timeout
        time.sleep(0.05)


def test_thousands_of_establishes_stay_bounded_and_end_with_the_session(srv):
    session = RawSession(srv)
    kinds = [periodic("100000"), on_change("100"), "<stream>NETCONF</stream>"]

    def churn(count):
        for number in range(count):
            ident = establish(session, kinds[number % 3])
            if number % 5:
                reply = ask(session, "delete-subscription", "<id>%d</id>" % ident)
                assert reply.find(B + "ok") is not None
            if len(registry(srv).by_id) >= 15:
                for left in list(registry(srv).by_id):
                    ask(session, "delete-subscription", "<id>%d</id>" % left)
    churn(300)                      # warm up the caches
    gc.collect()
    before = rss_mb()
    churn(2000)
    gc.collect()
    grown = rss_mb() - before
    assert grown < 20, "RSS grew %.1f MB over 2000 establishes" % grown
    for _ in range(10):             # some still open when the session goes
        establish(session, kinds[1])
    session.close()
    _wait(lambda: not registry(srv).by_id)
    snapshots = registry(srv)._snapshots
    assert snapshots is None or not getattr(snapshots, "_by_key", {})
