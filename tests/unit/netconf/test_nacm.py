"""NACM's compiled rules (agent/netconf/nacm/) on trees, without a server: path parsing,
the policy from /nacm, decisions, and the hot path's cost (what a read looks at)."""

from agent.netconf import nacm
from agent.netconf.nacm import Access, Counters, Policy, Rule, Step, parse_path

from ..datastore.conftest import NS, ctx, top, tree  # noqa: F401 - the fixture


def test_parse_path():
    assert parse_path("/") == ()
    assert parse_path("/nc-test:top/item[name='a b']/value") == (
        Step("nc-test", "top", ()), Step("nc-test", "item", (("name", "a b"),)),
        Step("nc-test", "value", ()))
    assert parse_path("/m:l[k1='x'][k2=\"y'z\"]") == (
        Step("m", "l", (("k1", "x"), ("k2", "y'z"))),)


def test_policy_from_json_and_rule_kinds():
    policy = Policy.from_json({"ietf-netconf-acm:nacm": {
        "enable-nacm": True, "read-default": "deny", "write-default": "permit",
        "groups": {"group": [{"name": "g", "user-name": ["u"]}]},
        "rule-list": [{"name": "l", "group": ["g"], "rule": [
            {"name": "r1", "module-name": "ietf-netconf", "rpc-name": "*",
             "access-operations": "exec", "action": "permit"},
            {"name": "r2", "path": "/nc-test:top", "access-operations": "read update",
             "action": "deny"},
            {"name": "r3", "notification-name": "n", "action": "permit"}]}]}})
    assert not policy.read_default and policy.write_default and policy.exec_default
    assert policy.groups == {"g": {"u"}}
    rules = policy.rule_lists[0][1]
    assert [(r.kind, r.target, r.ops, r.permit) for r in rules] == [
        ("rpc", None, nacm.EXEC, True),
        ("path", (Step("nc-test", "top", ()),), nacm.READ | nacm.UPDATE, False),
        ("notification", "n", nacm.ALL_OPS, True)]


def access(ctx, rules, **defaults):
    policy = Policy(**defaults)
    policy.rule_lists = [({"g"}, rules)]
    return Access(ctx, policy, "u", {"g"}, Counters())


def test_exec_defaults_and_first_match(ctx):
    a = access(ctx, [])
    assert a.may_exec("ietf-netconf", "get") and not a.may_exec("ietf-netconf", "kill-session")
    assert not a.may_exec("ietf-netconf", "delete-config")
    a = access(ctx, [Rule("x", None, "rpc", None, nacm.EXEC, False)])
    assert not a.may_exec("ietf-netconf", "get")
    assert a.may_exec("ietf-netconf", "close-session")


def test_read_filter_keeps_ancestors_of_permitted_nodes(ctx):
    data = tree(ctx, top("<name>n</name><item><name>a</name><value>1</value></item>"
                         "<item><name>b</name><value>2</value></item>"))
    a = access(ctx, [Rule("b", None, "path", parse_path("/nc-test:top/item[name='b']/value"),
                          nacm.READ, True)], read_default=False)
    a.filter_tree(data)
    assert data.print().decode() == (
        '<top xmlns="%s"><item><name>b</name><value>2</value></item></top>' % NS)


def test_a_read_looks_only_at_the_entries_rules_name(ctx, monkeypatch):
    """10,000 entries, 18 rules naming single entries by key: the read looks at the
    entries the rules name (hash look-ups), not at every entry for every rule."""
    body = "".join("<item><name>e%d</name><value>%d</value></item>" % (i, i)
                   for i in range(10000))
    data = tree(ctx, top(body))
    rules = [Rule("r%d" % i, None, "path", parse_path("/nc-test:top/item[name='e%d']/value"
                                                      % (i * 7)), nacm.READ, False)
             for i in range(18)]
    rules.append(Rule("rest", "nc-test", "any", None, nacm.ALL_OPS, True))
    a = access(ctx, rules)
    seen = []
    original = Access._advance

    def counting(self, node, info, state):
        seen.append(info[1])
        return original(self, node, info, state)
    monkeypatch.setattr(Access, "_advance", counting)
    a.filter_tree(data)
    assert len(seen) < 100, len(seen)
    values = data.xpath("/nc-test:top/item/value")
    assert len(values) == 10000 - 18


def test_a_shared_yang_patch_filtered_per_receiver(ctx):
    """The patch of one change, computed once, as each receiver may see it: an edit of a
    hidden entry dropped, a created entry's value without its hidden leaf."""
    from agent.datastore.patch import edits
    old = tree(ctx, top("<item><name>a</name><value>1</value></item>"))
    new = tree(ctx, top("<item><name>a</name><value>2</value></item>"
                        "<item><name>b</name><value>3</value><ref>a</ref></item>"))
    patch = edits(old, new)
    assert [(e.operation, e.target) for e in patch] == [
        ("replace", "/nc-test:top/item=a/value"), ("create", "/nc-test:top/item=b")]
    hide_a = access(ctx, [Rule("a", None, "path", parse_path("/nc-test:top/item[name='a']"),
                               nacm.READ, False)])
    assert [e.target for e in hide_a.filter_patch(patch)] == ["/nc-test:top/item=b"]
    hide_ref = access(ctx, [Rule("r", None, "path", parse_path("/nc-test:top/item/ref"),
                                 nacm.READ, False)])
    seen = hide_ref.filter_patch(patch)
    assert [e.target for e in seen] == [e.target for e in patch]
    assert b"<ref>" in patch[1].value and b"ref" not in seen[1].value
    assert b"<value>3</value>" in seen[1].value
    everything = access(ctx, [Rule("all", None, "any", None, nacm.ALL_OPS, True)])
    assert everything.filter_patch(patch) == patch
