"""edit-config semantics on libyang trees: operations, default operations, choices,
ordered entries, error options, and replaying a plan on an equal tree."""

import pytest

from agent.datastore import EditError, execute, plan

from .conftest import NS, edit, text, top, tree

T = "/nc-test:top"


def apply(ctx, base_xml, edit_xml, default_operation="merge", error_option="rollback-on-error"):
    target = tree(ctx, base_xml) if base_xml else tree(ctx, "")
    e = edit(ctx, edit_xml, default_operation)
    p = plan(target, e, default_operation, error_option)
    if not p.problems or error_option == "continue-on-error":
        execute(target, p.actions)
    return target, p


def test_merge_creates_and_updates(ctx):
    t, p = apply(ctx, top("<name>a</name>"), top("<name>b</name><limited>2</limited>"))
    assert p.problems == []
    assert text(t) == '<top xmlns="%s"><name>b</name><limited>2</limited></top>' % NS


def test_merge_into_empty_datastore(ctx):
    t, p = apply(ctx, None, top("<item><name>x</name><value>1</value></item>"))
    assert t.find(T + "/item[name='x']/value") is not None


def test_create_existing_is_data_exists_with_path(ctx):
    t, p = apply(ctx, top("<item><name>x</name></item>"),
                 top('<item nc:operation="create"><name>x</name></item>'))
    assert [(x.tag, x.path) for x in p.problems] == [("data-exists", T + "/item[name='x']")]


def test_delete_missing_is_data_missing_remove_is_not(ctx):
    base = top("<name>a</name>")
    _, p = apply(ctx, base, top('<limited nc:operation="delete"/>'))
    assert [(x.tag, x.path) for x in p.problems] == [("data-missing", T + "/limited")]
    t, p = apply(ctx, base, top('<limited nc:operation="remove"/>'))
    assert p.problems == [] and p.actions == []


def test_delete_and_remove_existing(ctx):
    base = top("<name>a</name><item><name>x</name></item><item><name>y</name></item>")
    t, p = apply(ctx, base, top('<item nc:operation="delete"><name>x</name></item>'
                                '<name nc:operation="remove"/>'))
    assert p.problems == []
    assert t.find(T + "/item[name='x']") is None and t.find(T + "/name") is None
    assert t.find(T + "/item[name='y']") is not None


def test_replace_list_entry_drops_what_the_edit_does_not_hold(ctx):
    base = top("<item><name>x</name><value>1</value><ref>x</ref></item>")
    t, _ = apply(ctx, base, top('<item nc:operation="replace"><name>x</name><value>2</value></item>'))
    assert t.find(T + "/item[name='x']/ref") is None
    assert t.find(T + "/item[name='x']/value") is not None


def test_default_operation_replace_replaces_the_whole_datastore(ctx):
    base = top("<name>a</name>") + '<other xmlns="urn:composer-nc:test:nc-test"><x>1</x></other>'
    t, _ = apply(ctx, base, top("<limited>4</limited>"), default_operation="replace")
    assert t.find("/nc-test:other") is None
    assert t.find(T + "/name") is None and t.find(T + "/limited") is not None


def test_default_operation_none_deletes_without_creating_parents(ctx):
    base = '<other xmlns="urn:composer-nc:test:nc-test"><x>1</x></other>'
    t, p = apply(ctx, base, top('<name nc:operation="remove"/>'), default_operation="none")
    assert p.problems == [] and p.actions == [] and t.find(T + "/name") is None
    _, p = apply(ctx, base, top("<name>z</name>"), default_operation="none")
    assert [(x.tag, x.path) for x in p.problems] == [("data-missing", T + "/name")]


def test_default_operation_none_merge_below(ctx):
    t, p = apply(ctx, top("<name>a</name>"), top('<limited nc:operation="merge">5</limited>'),
                 default_operation="none")
    assert p.problems == [] and t.find(T + "/limited") is not None


def test_nested_operation_inside_replace(ctx):
    base = top("<item><name>x</name><value>1</value></item>")
    _, p = apply(ctx, base, top('<item nc:operation="replace"><name>x</name>'
                                '<ref nc:operation="delete">x</ref></item>'))
    # below a replaced node nothing exists any more
    assert [(x.tag, x.path) for x in p.problems] == [("data-missing", T + "/item[name='x']/ref")]


def test_default_nodes_count_as_absent(ctx):
    base = top("<name>a</name>")            # count=3 is a default node after validation
    t, p = apply(ctx, base, top('<count nc:operation="create">3</count>'))
    assert p.problems == []
    assert "<count>3</count>" in text(t)
    _, p = apply(ctx, base, top('<count nc:operation="delete">3</count>'))
    assert [x.tag for x in p.problems] == ["data-missing"]


@pytest.mark.parametrize("annotated", [False, True])
def test_new_case_deletes_the_other_case(ctx, annotated):
    base = top("<name>a</name><radius>4</radius>")
    attr = ' nc:operation="merge"' if annotated else ""
    t, p = apply(ctx, base, top("<side%s><length>2</length></side>" % attr))
    assert p.problems == []
    assert t.find(T + "/radius") is None
    assert t.find(T + "/side/length") is not None
    t.validate()
    # and back: a leaf of case round removes both nodes of case square
    t2, _ = apply(ctx, text(t), top("<corners>4</corners>"))
    assert t2.find(T + "/corners") is not None and t2.find(T + "/side/length") is not None
    t3, _ = apply(ctx, text(t2), top("<radius>1</radius>"))
    assert t3.find(T + "/corners") is None and t3.find(T + "/side") is None


def test_insert_in_user_ordered_leaf_list_and_list(ctx):
    base = top("<tag>a</tag><tag>b</tag><item><name>x</name></item><item><name>y</name></item>")
    t, p = apply(ctx, base, top('<tag yang:insert="first">c</tag>'
                                '<tag yang:insert="after" yang:value="a">d</tag>'
                                '<item yang:insert="before" yang:key="[t:name=\'x\']">'
                                '<name>z</name></item>'))
    assert p.problems == []
    out = text(t)
    assert out.index("<tag>c</tag>") < out.index("<tag>a</tag>") < out.index("<tag>d</tag>") \
        < out.index("<tag>b</tag>")
    assert out.index("<name>z</name>") < out.index("<name>x</name>") < out.index("<name>y</name>")


def test_insert_before_a_missing_instance_is_missing_instance(ctx):
    _, p = apply(ctx, top("<tag>a</tag>"), top('<tag yang:insert="before" yang:value="q">c</tag>'))
    assert [(x.tag, x.app_tag) for x in p.problems] == [("bad-attribute", "missing-instance")]


def test_error_options(ctx):
    # the edit is processed in schema order (name, ..., item, ..., radius)
    base = top("<item><name>x</name></item>")
    e = top('<radius nc:operation="merge">3</radius>'
            '<item nc:operation="create"><name>x</name></item>'
            '<name nc:operation="merge">n</name>')
    t, p = apply(ctx, base, e, error_option="stop-on-error")
    assert [x.tag for x in p.problems] == ["data-exists"]
    # the walk stopped there (nothing after it planned); the datastores apply nothing
    assert t.find(T + "/name") is None
    execute(t, p.actions)
    assert t.find(T + "/name") is not None and t.find(T + "/radius") is None
    t, p = apply(ctx, base, e, error_option="continue-on-error")
    assert [x.tag for x in p.problems] == ["data-exists"]
    assert t.find(T + "/name") is not None and t.find(T + "/radius") is not None
    t, p = apply(ctx, base, e, error_option="rollback-on-error")
    assert t.find(T + "/name") is None


def test_value_less_leaf_delete(ctx):
    base = top("<limited>4</limited><item><name>x</name><value>1</value></item>")
    t, p = apply(ctx, base, top('<limited nc:operation="delete"/>'
                                '<item><name>x</name><value nc:operation="delete"/></item>'))
    assert p.problems == []
    assert t.find(T + "/limited") is None and t.find(T + "/item[name='x']/value") is None
    _, p = apply(ctx, base, top('<item nc:operation="replace"><name>x</name>'
                                '<value nc:operation="delete"/></item>'))
    assert [(x.tag, x.path) for x in p.problems] == [("data-missing", T + "/item[name='x']/value")]


def test_bad_operation_value(ctx):
    with pytest.raises(EditError) as caught:
        edit(ctx, top('<name nc:operation="frobnicate">x</name>'))
    problem = caught.value.problems[0]
    assert (problem.tag, problem.info) == ("bad-attribute", (("bad-attribute", "operation"),
                                                             ("bad-element", "name")))


def test_duplicate_entries_in_an_edit(ctx):
    _, p = apply(ctx, None, top('<item nc:operation="create"><name>x</name></item>'
                                '<item><name>x</name></item>'))
    assert [x.tag for x in p.problems] == ["bad-element"]


@pytest.mark.parametrize("edit_xml", [
    top("<name>b</name><item><name>n</name><value>3</value></item><corners>2</corners>"),
    top('<item nc:operation="delete"><name>x</name></item><tag yang:insert="first">q</tag>'),
    top('<item nc:operation="replace"><name>y</name></item><side><length>1</length></side>'),
])
def test_a_plan_replays_identically_on_an_equal_tree(ctx, edit_xml):
    base = top("<name>a</name><tag>t</tag><item><name>x</name><value>1</value></item>"
               "<item><name>y</name><value>2</value></item><radius>5</radius>")
    first, second = tree(ctx, base), tree(ctx, base)
    p = plan(first, edit(ctx, edit_xml))
    assert p.problems == []
    execute(first, p.actions)
    execute(second, p.actions)
    assert text(first) == text(second)
