"""RFC 6241 operations through ncclient over real SSH, in both framings."""

import threading

import pytest
from lxml import etree
from ncclient.operations.rpc import RPCError

from agent.publish import Event

from .conftest import BASE, NS, config, connect

T = "{%s}" % NS
CAPS = ("urn:ietf:params:netconf:base:1.0", "urn:ietf:params:netconf:base:1.1",
        "urn:ietf:params:netconf:capability:writable-running:1.0",
        "urn:ietf:params:netconf:capability:candidate:1.0",
        "urn:ietf:params:netconf:capability:confirmed-commit:1.1",
        "urn:ietf:params:netconf:capability:rollback-on-error:1.0",
        "urn:ietf:params:netconf:capability:validate:1.1",
        "urn:ietf:params:netconf:capability:startup:1.0",
        "urn:ietf:params:netconf:capability:xpath:1.0",
        "urn:ietf:params:netconf:capability:notification:1.0",
        "urn:ietf:params:netconf:capability:interleave:1.0")


def values(reply, path):
    return [e.text for e in reply.data_ele.iterfind(path)]


@pytest.mark.parametrize("base10", [False, True], ids=["chunked", "end-of-message"])
def test_every_operation_in_both_framings(server, base10):
    with connect(server, base10=base10) as m:
        caps = set(m.server_capabilities)
        assert all(c in caps for c in CAPS)
        assert any(c.startswith("urn:ietf:params:netconf:capability:with-defaults:1.0"
                                "?basic-mode=explicit") for c in caps)
        assert any(c.startswith("urn:ietf:params:netconf:capability:yang-library:1.1?") for c in caps)
        assert m.session_id is not None
        m.lock("candidate")
        m.edit_config(target="candidate", config=config(
            "<name>n</name><item><name>a</name><value>1</value></item>"))
        m.validate(source="candidate")
        m.commit()
        m.unlock("candidate")
        assert values(m.get_config(source="running"), "%stop/%sname" % (T, T)) == ["n"]
        assert values(m.get(), "%stop/%sitem/%svalue" % (T, T, T)) == ["1"]
        m.edit_config(target="candidate", config=config("<name>discard-me</name>"))
        m.discard_changes()
        assert values(m.get_config(source="candidate"), "%stop/%sname" % (T, T)) == ["n"]
        m.copy_config(source="running", target="startup")
        assert values(m.get_config(source="startup"), "%stop/%sname" % (T, T)) == ["n"]
        m.delete_config(target="startup")
        assert len(m.get_config(source="startup").data_ele) == 0
        m.edit_config(target="running", config=config("<limited>3</limited>"))
        assert values(m.get_config(source="running"), "%stop/%slimited" % (T, T)) == ["3"]
        m.lock("running")
        m.unlock("running")


def test_edit_config_operations(nc):
    nc.edit_config(target="candidate", config=config(
        "<item><name>a</name><value>1</value></item><item><name>b</name><value>2</value></item>"
        "<tag>x</tag>"))
    nc.edit_config(target="candidate", config=config(
        '<item nc:operation="replace"><name>a</name><ref>a</ref></item>'
        '<item nc:operation="delete"><name>b</name></item>'
        '<tag nc:operation="remove">y</tag>'
        '<name nc:operation="create">made</name>'))
    nc.commit()
    reply = nc.get_config(source="running")
    assert values(reply, "%stop/%sitem/%sname" % (T, T, T)) == ["a"]
    assert values(reply, "%stop/%sitem/%sref" % (T, T, T)) == ["a"]
    assert values(reply, "%stop/%sitem/%svalue" % (T, T, T)) == []
    assert values(reply, "%stop/%sname" % (T, T)) == ["made"]
    with pytest.raises(RPCError) as caught:
        nc.edit_config(target="candidate", config=config('<name nc:operation="create">x</name>'))
    assert caught.value.tag == "data-exists"
    nc.edit_config(target="candidate", default_operation="none",
                   config=config('<name nc:operation="delete"/>'))
    nc.edit_config(target="candidate", default_operation="replace",
                   config=config("<limited>5</limited>"))
    nc.commit()
    reply = nc.get_config(source="running")
    assert values(reply, "%stop/%slimited" % (T, T)) == ["5"]
    assert values(reply, "%stop/%sitem/%sname" % (T, T, T)) == []


def test_test_option_and_error_option(nc):
    nc.edit_config(target="candidate", config=config("<name>a</name>"), test_option="test-only")
    assert len(nc.get_config(source="candidate").data_ele) == 0
    with pytest.raises(RPCError) as caught:
        nc.edit_config(target="candidate", error_option="continue-on-error", config=config(
            '<item nc:operation="delete"><name>nope</name></item><name>kept</name>'))
    assert caught.value.tag == "data-missing"
    assert values(nc.get_config(source="candidate"), "%stop/%sname" % (T, T)) == ["kept"]
    nc.discard_changes()
    with pytest.raises(RPCError):
        nc.edit_config(target="candidate", error_option="rollback-on-error", config=config(
            '<item nc:operation="delete"><name>nope</name></item><name>gone</name>'))
    assert len(nc.get_config(source="candidate").data_ele) == 0


def inline(body):
    return '<source xmlns="%s">%s</source>' % (BASE, config(body))


def test_copy_config_inline(nc):
    nc.copy_config(source=inline("<name>inline</name>"), target="candidate")
    nc.commit()
    assert values(nc.get_config(source="running"), "%stop/%sname" % (T, T)) == ["inline"]
    nc.copy_config(source=inline("<name>boot</name>"), target="startup")
    nc.copy_config(source="startup", target="running")
    assert values(nc.get_config(source="running"), "%stop/%sname" % (T, T)) == ["boot"]


def test_lock_contention_between_two_sessions(server):
    a = connect(server)
    with connect(server) as b:
        a.lock("running")
        with pytest.raises(RPCError) as caught:
            b.lock("running")
        assert caught.value.tag == "lock-denied"
        info = etree.fromstring(caught.value.info.encode()) if isinstance(caught.value.info, str) \
            else caught.value.info
        assert info.findtext("{%s}session-id" % BASE) == str(a.session_id)
        with pytest.raises(RPCError) as caught:
            b.edit_config(target="running", config=config("<name>b</name>"))
        assert caught.value.tag == "in-use"
        a.edit_config(target="running", config=config("<name>a</name>"))
        a.close_session()
        b.lock("running")                       # released with the session
        b.unlock("running")


def test_kill_session(server):
    b = connect(server)
    with connect(server) as a:
        b.lock("candidate")
        a.kill_session(b.session_id)
        a.lock("candidate")
        assert b.session_id not in server.sessions()
        with pytest.raises(RPCError) as caught:
            a.kill_session(a.session_id)
        assert caught.value.tag == "invalid-value"
        with pytest.raises(RPCError) as caught:
            a.kill_session("9999")
        assert caught.value.tag == "invalid-value"


def test_engine_refusal_keeps_running(server, nc):
    nc.edit_config(target="candidate", config=config("<name>ok</name>"))
    nc.commit()
    server.engine.fail("eth9 is not on this node", path="/nc-test:top/name",
                       app_tag="no-such-port")
    nc.edit_config(target="candidate", config=config("<name>refused</name>"))
    with pytest.raises(RPCError) as caught:
        nc.commit()
    error = caught.value
    assert (error.tag, error.type, error.message) == ("operation-failed", "application",
                                                      "eth9 is not on this node")
    path = error.xml.find("{%s}error-path" % BASE)
    assert path.text == "/t:top/t:name" and path.nsmap["t"] == NS
    assert error.xml.findtext("{%s}error-app-tag" % BASE) == "no-such-port"
    assert values(nc.get_config(source="running"), "%stop/%sname" % (T, T)) == ["ok"]
    with pytest.raises(RPCError):
        nc.edit_config(target="running", config=config("<name>refused</name>"))
    assert values(nc.get_config(source="running"), "%stop/%sname" % (T, T)) == ["ok"]
    server.engine.succeed()
    nc.commit()
    assert values(nc.get_config(source="running"), "%stop/%sname" % (T, T)) == ["refused"]


def test_with_defaults(nc):
    nc.edit_config(target="candidate", config=config("<name>n</name>"))
    nc.commit()
    count = "%stop/%scount" % (T, T)
    assert values(nc.get_config(source="running"), count) == []
    assert values(nc.get_config(source="running", with_defaults="report-all"), count) == ["3"]
    assert values(nc.get_config(source="candidate", with_defaults="report-all"), count) == ["3"]
    tagged = nc.get_config(source="running", with_defaults="report-all-tagged")
    leaf = tagged.data_ele.find(count)
    assert leaf.get("{urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults}default") == "true"
    nc.edit_config(target="candidate", config=config("<count>3</count>"))
    nc.commit()
    assert values(nc.get_config(source="running"), count) == ["3"]
    assert values(nc.get_config(source="running", with_defaults="trim"), count) == []


def test_unknown_rpc(nc):
    with pytest.raises(RPCError) as caught:
        nc.dispatch(etree.fromstring('<frobnicate xmlns="urn:example:x"/>'))
    assert (caught.value.tag, caught.value.type) == ("operation-not-supported", "protocol")


NOTIFICATION_NS = "urn:ietf:params:xml:ns:netconf:notification:1.0"


def notify(server, text):
    """An event of the test module, published on the agent's bus (from this thread, as
    any producer does)."""
    server.service.server.bus.publish(Event("nc-test:event", {"nc-test:event": {"text": text}}))


def received(m, timeout=10.0):
    """The text of the next test event the client receives, None if none comes."""
    while True:
        notification = m.take_notification(timeout=timeout)
        if notification is None:
            return None
        text = notification.notification_ele.findtext("{%s}event/{%s}text" % (NS, NS))
        if text is not None:
            return text         # (the commit's own netconf-config-change is not one)


def test_interleave_subscription(server, nc):
    with connect(server) as other:                # not subscribed: gets no notification
        reply = nc.dispatch(etree.fromstring('<create-subscription xmlns="%s"/>'
                                             % NOTIFICATION_NS))
        assert reply.ok
        notify(server, "first")
        assert received(nc) == "first"
        assert len(nc.get_config(source="running").data_ele) == 0   # still answers RPCs

        # A notification sent while the session waits for its commit comes before the reply.
        nc.edit_config(target="candidate", config=config("<name>n</name>"))
        server.engine.gate = threading.Event()
        server.engine.entered.clear()
        committed = []
        committer = threading.Thread(target=lambda: committed.append(nc.commit().ok))
        committer.start()
        try:
            assert server.engine.entered.wait(30)       # the engine is applying
            notify(server, "during the commit")
            assert received(nc) == "during the commit"
            assert committed == []
        finally:
            server.engine.gate.set()
            committer.join(30)
        assert committed == [True]
        assert received(other, timeout=0.5) is None
