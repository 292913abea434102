"""Subtree filters become libyang XPath selections (RFC 6241 section 6)."""

from lxml import etree

from agent.netconf.filters import subtree_selections

from ..datastore.conftest import NS, ctx  # noqa: F401 - the fixture

T = "/nc-test:top"


def selections(ctx, body):
    element = etree.fromstring(("<filter>%s</filter>" % body).encode())
    return subtree_selections(list(element), ctx)


def test_selection_and_containment(ctx):
    assert selections(ctx, '<top xmlns="%s"/>' % NS) == [T]
    assert selections(ctx, '<top xmlns="%s"><item/><name/></top>' % NS) == \
        [T + "/nc-test:item", T + "/nc-test:name"]


def test_content_match(ctx):
    assert selections(ctx, '<top xmlns="%s"><item><name>a</name></item></top>' % NS) == \
        [T + "/nc-test:item[nc-test:name='a']"]
    assert selections(ctx, '<top xmlns="%s"><item><name>a</name><value/></item></top>' % NS) == \
        [T + "/nc-test:item[nc-test:name='a']/nc-test:name",
         T + "/nc-test:item[nc-test:name='a']/nc-test:value"]
    assert selections(ctx, '<top xmlns="%s"><tag>q</tag><name/></top>' % NS) == \
        [T + "[nc-test:tag='q']/nc-test:tag[.='q']", T + "[nc-test:tag='q']/nc-test:name"]


def test_identity_values_and_quotes(ctx):
    assert selections(ctx, '<t:top xmlns:t="%s"><t:kind>t:big</t:kind></t:top>' % NS) == \
        [T + "[nc-test:kind='nc-test:big']"]
    assert selections(ctx, '<top xmlns="%s"><name>it\'s</name></top>' % NS) == \
        [T + "[nc-test:name=\"it's\"]"]


def test_wildcard_namespace_and_unknown_names(ctx):
    assert selections(ctx, "<top><name/></top>") == [T + "/nc-test:name"]
    assert selections(ctx, '<nothing xmlns="%s"/>' % NS) == []
    assert selections(ctx, '<top xmlns="%s"><item><nope>1</nope></item></top>' % NS) == []
