"""The edit list of a change (RFC 6470): from the subtrees the edits touched, the same as
libyang's diff of the whole trees; the observers hear of every change of running and
startup."""

import pytest

from agent.datastore import Datastores
from agent.datastore.changes import (ConfigChanged, ConfirmEvent, subtree_diff,
                                     touched_paths, whole_diff)
from agent.datastore.edit import execute, plan

from .conftest import edit, run, top, tree

BEFORE = top("<name>n</name><count>1</count><tag>a</tag><tag>b</tag>"
             "<item><name>x</name><value>1</value></item>"
             "<item><name>y</name><value>2</value></item>")

EDITS = [
    top('<item yang:insert="first"><name>y</name></item>'),         # a move
    top("<count>2</count>"),                                        # un-annotated merge
    top("<item><name>z</name><value>3</value></item><tag>c</tag>"),
    top('<item nc:operation="delete"><name>x</name></item>'),
    top('<item nc:operation="replace"><name>y</name><value>5</value></item>'),
    top('<name nc:operation="remove"/><count nc:operation="create">3</count>', ),
]


@pytest.mark.parametrize("xml", EDITS)
def test_the_touched_subtrees_give_the_whole_diff(ctx, xml):
    old = tree(ctx, BEFORE)
    new = old.dup()
    if "operation=\"create\">3" in xml:
        new.delete(new.find("/nc-test:top/count"))
        old.delete(old.find("/nc-test:top/count"))
    the_plan = plan(new, edit(ctx, xml))
    assert not the_plan.problems
    execute(new, the_plan.actions)
    paths = touched_paths([the_plan])
    assert paths is not None
    assert sorted(subtree_diff(old, new, paths)) == sorted(whole_diff(old, new))
    assert whole_diff(old, new)


def test_a_replace_of_everything_is_diffed_whole(ctx):
    old = tree(ctx, BEFORE)
    the_plan = plan(old.dup(), edit(ctx, top("<name>m</name>")), "replace")
    assert touched_paths([the_plan]) is None


def test_observers_hear_every_change(ctx):
    heard = []

    async def main():
        stores = Datastores(ctx)
        stores.observe(heard.append)
        await stores.start()
        await stores.edit("candidate", edit(ctx, top("<name>a</name>")), session_id=3)
        await stores.commit(3)
        await stores.edit("running", edit(ctx, top("<name>b</name>")), session_id=4)
        await stores.copy("running", "startup", 4)
        await stores.edit("candidate", edit(ctx, top("<count>7</count>")), session_id=3)
        await stores.commit(3, confirmed=True, timeout=60)
        await stores.cancel_commit(3)
        await stores.stop()
    run(main())
    changes = [(c.datastore, c.session_id, c.cause, c.edits()) if isinstance(c, ConfigChanged)
               else (c.event, c.session_id) for c in heard]
    assert changes == [
        ("running", 3, "commit", [("/nc-test:top/name", "create")]),
        ("running", 4, "edit-config", [("/nc-test:top/name", "replace")]),
        ("startup", 4, "copy-config", [("/nc-test:top", "create")]),
        ("running", 3, "commit", [("/nc-test:top/count", "create")]),
        ("start", 3),
        ("cancel", 3),
        ("running", 0, "rollback", [("/nc-test:top/count", "delete")]),
    ]
    assert all(isinstance(c, (ConfigChanged, ConfirmEvent)) for c in heard)


def test_a_long_edit_list_is_given_per_top_level_node(ctx):
    items = "".join("<item><name>i%d</name><value>%%d</value></item>" % n for n in range(250))
    old = tree(ctx, top(items.replace("%d", "1")))
    new = tree(ctx, top(items.replace("%d", "2")))
    assert whole_diff(old, new) == [("/nc-test:top", "replace")]
    the_plan = plan(old.dup(), edit(ctx, top(items.replace("%d", "2"))))
    assert subtree_diff(old, new, touched_paths([the_plan])) == [("/nc-test:top", "replace")]
    few = tree(ctx, top(items.replace("%d", "1").replace("i7</name><value>1", "i7</name><value>5")))
    assert whole_diff(old, few) == [("/nc-test:top/item[name='i7']/value", "replace")]
