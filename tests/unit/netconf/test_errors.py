"""rpc-error construction and the mapping of libyang errors (RFC 7950 section 15)."""

import pytest
from lxml import etree

from agent.datastore.errors import Problem
from agent.model.errors import YangErrorItem
from agent.netconf.errors import RpcError, convert, from_yang

PREFIXES = {"nc-test": ("t", "urn:composer-nc:test:nc-test")}


def test_rpc_error_element():
    error = RpcError("data-exists", "the data already exists", path="/nc-test:top/item[name='a']",
                     info=(("bad-element", "item"),))
    xml = etree.tostring(error.element(PREFIXES.get)).decode()
    assert xml == (
        '<rpc-error xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">'
        "<error-type>application</error-type><error-tag>data-exists</error-tag>"
        "<error-severity>error</error-severity>"
        '<error-path xmlns:t="urn:composer-nc:test:nc-test">/t:top/t:item[t:name=\'a\']'
        "</error-path>"
        '<error-message xml:lang="en">the data already exists</error-message>'
        "<error-info><bad-element>item</bad-element></error-info></rpc-error>")


def test_error_types_follow_appendix_a():
    assert RpcError("lock-denied").error_type == "protocol"
    assert RpcError("data-missing", error_type="protocol").error_type == "application"
    assert RpcError("malformed-message").error_type == "rpc"
    assert RpcError("operation-failed", error_type="rpc").error_type == "rpc"
    with pytest.raises(ValueError):
        RpcError("not-a-tag")


@pytest.mark.parametrize("item,tag,app_tag", [
    (YangErrorItem("Invalid leafref value", app_tag="instance-required"), "data-missing",
     "instance-required"),
    (YangErrorItem('Mandatory node "x" instance does not exist.'), "data-missing", None),
    (YangErrorItem('Too few "x" instances.', app_tag="too-few-elements"), "operation-failed",
     "too-few-elements"),
    (YangErrorItem("seven is not allowed", app_tag="not-seven"), "operation-failed", "not-seven"),
    (YangErrorItem('When condition "../a" not satisfied.', path="/m:a/b"), "unknown-element",
     None),
    (YangErrorItem('Node "bogus" not found as a child of "top" node.'), "unknown-element", None),
    (YangErrorItem('No module with namespace "urn:x" in the context.'), "unknown-namespace",
     None),
    (YangErrorItem('Invalid type uint8 value "x".'), "invalid-value", None),
])
def test_from_yang(item, tag, app_tag):
    error = from_yang(item)
    assert (error.tag, error.app_tag) == (tag, app_tag)


def test_convert_problems():
    [error] = convert(__import__("agent.datastore", fromlist=["EditError"]).EditError(
        Problem("in-use", "locked", error_type="protocol", info=(("session-id", "3"),))))
    assert (error.tag, error.error_type, error.info) == ("in-use", "protocol",
                                                         (("session-id", "3"),))
    [error] = convert(RuntimeError("boom"))
    assert error.tag == "operation-failed" and "boom" in error.message
