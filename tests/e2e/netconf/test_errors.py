"""RFC conformance of every error-tag the server emits (RFC 6241 appendix A, RFC 7950
section 15): error-type, error-tag, error-severity, error-path with its namespace
declarations, error-app-tag and the error-info the appendix requires."""

import pytest
from lxml import etree
from ncclient.operations.rpc import RPCError

from .conftest import BASE, config, connect

B = "{%s}" % BASE


def error_of(call):
    with pytest.raises(RPCError) as caught:
        call()
    return caught.value.xml           # the <rpc-error> element


def check(error, error_type, tag, info=None, path=None, app_tag=None):
    assert error.findtext(B + "error-type") == error_type
    assert error.findtext(B + "error-tag") == tag
    assert error.findtext(B + "error-severity") == "error"
    if path is not None:
        element = error.find(B + "error-path")
        assert element.text == path
        for prefix in {p.split(":")[0] for p in path.replace("[", "/").split("/") if ":" in p}:
            assert element.nsmap[prefix]                     # every prefix is declared
    if app_tag is not None:
        assert error.findtext(B + "error-app-tag") == app_tag
    if info is not None:
        got = {child.tag.split("}")[1]: child.text for child in error.find(B + "error-info")}
        assert got == info


def raw_reply(raw_session, body):
    return etree.fromstring(raw_session.rpc(body))


def test_in_use(server):
    holder = connect(server)
    with connect(server) as other:
        holder.lock("running")
        error = error_of(lambda: other.edit_config(target="running", config=config("<name>x</name>")))
        check(error, "protocol", "in-use", {"session-id": str(holder.session_id)})
    holder.close_session()


def test_lock_denied(server):
    holder = connect(server)
    with connect(server) as other:
        holder.lock("candidate")
        check(error_of(lambda: other.lock("candidate")), "protocol", "lock-denied",
              {"session-id": str(holder.session_id)})
    holder.close_session()


def test_lock_denied_on_a_dirty_candidate(nc):
    nc.edit_config(target="candidate", config=config("<name>x</name>"))
    check(error_of(lambda: nc.lock("candidate")), "protocol", "lock-denied", {"session-id": "0"})


def test_invalid_value(nc):
    check(error_of(lambda: nc.edit_config(target="candidate", config=config("<limited>70</limited>"))),
          "application", "invalid-value", path="/t:top/t:limited")
    check(error_of(lambda: nc.delete_config(target="running")), "protocol", "invalid-value")
    check(error_of(lambda: nc.kill_session(str(nc.session_id))), "protocol", "invalid-value",
          {"bad-element": "session-id"})


def test_data_exists_and_data_missing(nc):
    nc.edit_config(target="candidate", config=config("<item><name>a</name></item>"))
    check(error_of(lambda: nc.edit_config(target="candidate", config=config(
        '<item nc:operation="create"><name>a</name></item>'))),
        "application", "data-exists", path="/t:top/t:item[t:name='a']")
    check(error_of(lambda: nc.edit_config(target="candidate", config=config(
        '<item nc:operation="delete"><name>zz</name></item>'))),
        "application", "data-missing", path="/t:top/t:item[t:name='zz']")


def test_validation_errors_at_commit(nc):
    # a missing mandatory leaf is reported by libyang by schema path: located in the data
    nc.edit_config(target="candidate", config=config("<entry><id>1</id></entry>"))
    check(error_of(nc.commit), "application", "data-missing", path="/t:top/t:entry[t:id='1']")
    nc.discard_changes()
    nc.edit_config(target="candidate", config=config("<item><name>a</name><ref>q</ref></item>"))
    check(error_of(nc.commit), "application", "data-missing",
          path="/t:top/t:item[t:name='a']/t:ref", app_tag="instance-required")
    nc.discard_changes()
    nc.edit_config(target="candidate", config=config("<limited>7</limited>"))
    error = error_of(nc.commit)
    check(error, "application", "operation-failed", path="/t:top/t:limited", app_tag="not-seven")
    assert error.findtext(B + "error-message") == "seven is not allowed"


def test_operation_failed_from_the_engine(server, nc):
    server.engine.fail("cannot", path="/nc-test:top/name", app_tag="engine-says-no")
    nc.edit_config(target="candidate", config=config("<name>x</name>"))
    check(error_of(nc.commit), "application", "operation-failed", path="/t:top/t:name",
          app_tag="engine-says-no")


def test_bad_unknown_and_missing_attributes(nc, raw):
    check(error_of(lambda: nc.edit_config(target="candidate", config=config(
        '<name nc:operation="frobnicate">x</name>'))),
        "protocol", "bad-attribute", {"bad-attribute": "operation", "bad-element": "name"})
    error = error_of(lambda: nc.edit_config(target="candidate", config=config(
        '<name xmlns:f="urn:foo" f:bar="1">x</name>')))
    check(error, "application", "unknown-attribute")
    assert error.findtext(B + "error-info/" + B + "bad-attribute") == "bar"
    session = raw()
    message = b'<rpc xmlns="%s"><get/></rpc>' % BASE.encode()
    session.send(b"\n#%d\n%s\n##\n" % (len(message), message))
    reply = etree.fromstring(session.read_chunked())
    check(reply.find(B + "rpc-error"), "rpc", "missing-attribute",
          {"bad-attribute": "message-id", "bad-element": "rpc"})


def test_elements(nc, raw):
    session = raw()
    reply = raw_reply(session, "<edit-config><config/></edit-config>")
    check(reply.find(B + "rpc-error"), "protocol", "missing-element", {"bad-element": "target"})
    reply = raw_reply(session, "<get-config><source><running/></source><source><running/>"
                               "</source></get-config>")
    check(reply.find(B + "rpc-error"), "protocol", "bad-element", {"bad-element": "source"})
    reply = raw_reply(session, "<get-config><source><running/></source><bogus/></get-config>")
    check(reply.find(B + "rpc-error"), "protocol", "unknown-element", {"bad-element": "bogus"})
    check(error_of(lambda: nc.edit_config(target="candidate", config=config("<bogus/>"))),
          "application", "unknown-element", {"bad-element": "bogus"}, path="/t:top")
    check(error_of(lambda: nc.edit_config(target="candidate", config=config(
        "<item><value>1</value></item>"))), "application", "missing-element")
    error = error_of(lambda: nc.edit_config(target="candidate", config=(
        '<config xmlns="%s"><x xmlns="urn:nowhere"/></config>' % BASE)))
    check(error, "application", "unknown-namespace",
          {"bad-element": "x", "bad-namespace": "urn:nowhere"})


def test_when_false_is_unknown_element(nc):
    ns_sffg = "urn:composer-nc:yang:composer-sffg"
    body = ('<config xmlns="%s"><service-graphs xmlns="%s"><service-graph><id>g</id>'
            '<config><id>g</id></config><functions><function><id>f</id><config><id>f</id>'
            '<functional-capability>firewall</functional-capability></config><ports><port>'
            '<id>p</id><config><id>p</id><ipv4-prefix-length>8</ipv4-prefix-length></config>'
            '</port></ports></function></functions></service-graph></service-graphs></config>'
            % (BASE, ns_sffg))
    nc.edit_config(target="candidate", config=body)
    error = error_of(nc.commit)
    check(error, "application", "unknown-element", {"bad-element": "ipv4-prefix-length"})
    assert error.findtext(B + "error-path").endswith(":ipv4-prefix-length")


def test_operation_not_supported(nc):
    check(error_of(lambda: nc.dispatch(etree.fromstring('<frob xmlns="urn:x"/>'))),
          "protocol", "operation-not-supported")
    rpc = etree.fromstring('<copy-config xmlns="%s"><target><url>file:///x</url></target>'
                           '<source><running/></source></copy-config>' % BASE)
    check(error_of(lambda: nc.dispatch(rpc)), "protocol", "operation-not-supported")


def test_malformed_message_closes_the_session(server, raw):
    session = raw()
    session.send(b"\n#9\n<rpc><get\n##\n")
    reply = etree.fromstring(session.read_chunked())
    error = reply.find(B + "rpc-error")
    check(error, "rpc", "malformed-message")
    assert reply.get("message-id") is None
    assert session.closed()
    with connect(server) as m:                     # the server still serves others
        m.get_config(source="running")
