"""The YANG patch of two snapshots (RFC 8641 push-change-update): one edit per node
created, deleted or changed, targets as RFC 8040 resource identifiers, values the nodes'
XML; excluded change types left out."""

from agent.datastore.patch import PatchEdit, edits, resource_identifier

from .conftest import top, tree

NS = b"urn:composer-nc:test:nc-test"


def test_resource_identifiers():
    assert resource_identifier("/nc-test:top/item[name='a b']/value") == \
        "/nc-test:top/item=a%20b/value"
    assert resource_identifier("/m:a/b[k1='x'][k2=\"y/z\"]/c") == "/m:a/b=x,y%2Fz/c"
    assert resource_identifier("/m:a/tag[.='v,w']") == "/m:a/tag=v%2Cw"
    assert resource_identifier("/m:a/other:b") == "/m:a/other:b"


def test_created_deleted_and_replaced_nodes(ctx):
    old = tree(ctx, top("<name>n</name><count>1</count><tag>a</tag>"
                        "<item><name>x</name><value>1</value></item>"))
    new = tree(ctx, top("<count>2</count><tag>a</tag><tag>b</tag>"
                        "<item><name>y</name><value>2</value></item>"))
    found = edits(old, new)
    assert sorted(found, key=lambda e: e.target) == sorted([
        PatchEdit("delete", "/nc-test:top/name", None),
        PatchEdit("replace", "/nc-test:top/count", b'<count xmlns="%s">2</count>' % NS),
        PatchEdit("create", "/nc-test:top/tag=b", b'<tag xmlns="%s">b</tag>' % NS),
        PatchEdit("delete", "/nc-test:top/item=x", None),
        PatchEdit("create", "/nc-test:top/item=y",
                  b'<item xmlns="%s"><name>y</name><value>2</value></item>' % NS),
    ], key=lambda e: e.target)
    assert [e.operation for e in edits(old, new, ("delete", "replace"))] == ["create"] * 2
    assert edits(old, old) == []


def test_from_nothing_and_to_nothing(ctx):
    new = tree(ctx, top("<name>n</name>"))
    assert edits(tree(ctx, ""), new) == [
        PatchEdit("create", "/nc-test:top", b'<top xmlns="%s"><name>n</name></top>' % NS)]
    assert edits(new, tree(ctx, "")) == [PatchEdit("delete", "/nc-test:top", None)]
