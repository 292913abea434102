"""Subtree (RFC 6241 section 6) and XPath filters, on get-config and get."""

import pytest
from ncclient.operations.rpc import RPCError

from .conftest import NS, config

T = "{%s}" % NS
DATA = ("<name>n</name><kind>big</kind><tag>x</tag><tag>y</tag>"
        "<item><name>a</name><value>1</value></item>"
        "<item><name>b</name><value>2</value><ref>a</ref></item>"
        "<item><name>c</name><value>2</value></item>")


@pytest.fixture
def loaded(nc):
    nc.edit_config(target="candidate", config=config(DATA))
    nc.commit()
    return nc


def subtree(m, body, source="running"):
    flt = ("subtree", body)
    reply = m.get_config(source=source, filter=flt) if source else m.get(filter=flt)
    return reply.data_ele


def names(data):
    return [e.text for e in data.iterfind("%stop/%sitem/%sname" % (T, T, T))]


def test_selection_node_selects_the_subtree(loaded):
    data = subtree(loaded, '<top xmlns="%s"><item/></top>' % NS)
    assert names(data) == ["a", "b", "c"]
    assert data.find("%stop/%sname" % (T, T)) is None


def test_content_match_on_a_key_returns_the_whole_entry(loaded):
    data = subtree(loaded, '<top xmlns="%s"><item><name>b</name></item></top>' % NS)
    assert names(data) == ["b"]
    assert data.findtext("%stop/%sitem/%sref" % (T, T, T)) == "a"


def test_content_match_with_selection_siblings(loaded):
    data = subtree(loaded, '<top xmlns="%s"><item><value>2</value><ref/></item></top>' % NS)
    entries = data.findall("%stop/%sitem" % (T, T))
    assert [e.findtext(T + "name") for e in entries] == ["b", "c"]
    # the content match node and the selected node, with the key
    assert entries[0].findtext(T + "value") == "2" and entries[0].findtext(T + "ref") == "a"
    assert entries[1].find(T + "ref") is None


def test_content_match_that_fails_selects_nothing(loaded):
    data = subtree(loaded, '<top xmlns="%s"><item><name>zz</name></item></top>' % NS)
    assert len(data) == 0


def test_leaf_list_content_match(loaded):
    # only content match nodes in the sibling set: the whole sibling set (RFC 6241 6.2.5)
    data = subtree(loaded, '<top xmlns="%s"><tag>y</tag></top>' % NS)
    assert [e.text for e in data.iterfind("%stop/%stag" % (T, T))] == ["x", "y"]
    assert names(data) == ["a", "b", "c"]
    # with a selection sibling: the matching instance and the selected node
    data = subtree(loaded, '<top xmlns="%s"><tag>y</tag><name/></top>' % NS)
    assert [e.text for e in data.iterfind("%stop/%stag" % (T, T))] == ["y"]
    assert data.findtext("%stop/%sname" % (T, T)) == "n" and names(data) == []
    assert len(subtree(loaded, '<top xmlns="%s"><tag>q</tag><name/></top>' % NS)) == 0


def test_identityref_content_match_with_prefixes(loaded):
    # (ncclient drops a prefix declaration that repeats the default namespace)
    data = subtree(loaded, '<q:top xmlns:q="%s"><q:kind>q:big</q:kind></q:top>' % NS)
    assert data.findtext("%stop/%skind" % (T, T)).endswith(":big")


def test_namespace_wildcard(loaded):
    data = subtree(loaded, '<top xmlns=""><name/></top>')
    assert data.findtext("%stop/%sname" % (T, T)) == "n"


def test_empty_filter_selects_nothing(loaded):
    empty = '<filter xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" type="subtree"/>'
    assert len(loaded.get_config(source="running", filter=empty).data_ele) == 0


def test_unknown_names_select_nothing(loaded):
    assert len(subtree(loaded, '<nothing xmlns="urn:nowhere"/>')) == 0


def test_filter_on_get_with_state(loaded):
    data = subtree(loaded, '<netconf-state xmlns="urn:ietf:params:xml:ns:yang:'
                   'ietf-netconf-monitoring"><datastores/></netconf-state>', source=None)
    got = [e.text for e in data.iter("{urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring}name")]
    assert got == ["running", "candidate", "startup"]
    data = subtree(loaded, '<top xmlns="%s"><item><name>a</name></item></top>' % NS, source=None)
    assert names(data) == ["a"]


def test_xpath_filter(loaded):
    reply = loaded.get_config(source="running", filter=(
        "xpath", ({"q": NS}, "/q:top/q:item[q:value=2]/q:name")))
    assert names(reply.data_ele) == ["b", "c"]
    reply = loaded.get(filter=("xpath", ({"q": NS}, "/q:top/q:item[q:name='a']")))
    assert names(reply.data_ele) == ["a"]
    reply = loaded.get(filter=("xpath", ({"q": NS}, "//q:ref")))
    assert reply.data_ele.findtext("%stop/%sitem/%sref" % (T, T, T)) == "a"


def test_bad_xpath_is_invalid_value(loaded):
    with pytest.raises(RPCError) as caught:
        loaded.get_config(source="running", filter=("xpath", ({"q": NS}, "/q:top[")))
    assert caught.value.tag == "invalid-value"
    with pytest.raises(RPCError) as caught:
        loaded.get_config(source="running", filter=("xpath", "/zz:top"))
    assert caught.value.tag == "invalid-value"


def test_state_from_a_provider_merged_with_running(server, loaded):
    from agent.datastore import DataTree
    from agent.engine import StateProvider

    def counters(ctx):
        tree = DataTree.parse(ctx, '<top xmlns="%s"><counters><hits>42</hits></counters></top>'
                              % NS, config_only=False, validate=False)
        return tree.root()
    server.datastores.register_state_provider(StateProvider("counters", counters))
    data = loaded.get().data_ele
    tops = data.findall(T + "top")
    assert len(tops) == 1                               # one container, both sources
    assert tops[0].findtext(T + "name") == "n"
    assert tops[0].findtext("%scounters/%shits" % (T, T)) == "42"
    # a content match on configuration selecting state
    data = subtree(loaded, '<top xmlns="%s"><name>n</name><counters/></top>' % NS, source=None)
    assert data.findtext("%stop/%scounters/%shits" % (T, T, T)) == "42"
    data = subtree(loaded, '<top xmlns="%s"><name>zz</name><counters/></top>' % NS, source=None)
    assert len(data) == 0
    # get-config shows no state
    assert loaded.get_config(source="running").data_ele.find("%stop/%scounters" % (T, T)) is None


def test_a_failing_state_provider_fails_the_reads_of_its_data_only(server, loaded):
    """<get> of what a broken provider builds is an rpc-error with its reason, never data
    without it; a <get> of other data is answered."""
    from agent.engine import StateProvider

    def broken(ctx):
        raise RuntimeError("the vSwitch does not answer")
    server.datastores.register_state_provider(
        StateProvider("graphs", broken, ("composer-sffg",)))
    with pytest.raises(RPCError) as caught:
        loaded.get()
    assert caught.value.tag == "operation-failed"
    assert "state of graphs cannot be read: the vSwitch does not answer" in caught.value.message
    with pytest.raises(RPCError):
        loaded.get(filter=("subtree", '<service-graphs xmlns="urn:composer-nc:yang:'
                                      'composer-sffg"/>'))
    data = subtree(loaded, '<top xmlns="%s"/>' % NS, source=None)
    assert data.findtext("%stop/%sname" % (T, T)) == "n"
