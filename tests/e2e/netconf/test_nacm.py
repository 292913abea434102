"""NACM (RFC 8341) over NETCONF: what netopeer2's tests/test_nacm.c checks (default deny of
kill-session and delete-config, read filtering in get/get-config/get-data with and
without filters, write denial with error-path, exec rules, path rules with wildcards and
predicates, rule ordering, groups from the user's entry, the recovery session, counters),
on the in-process server with the shipped startup (admin is an operator)."""

from pathlib import Path

import itertools

import asyncssh
import pytest
from lxml import etree
from ncclient.operations.rpc import RPCError

from agent.files import atomic_write
from tests.e2e.netconf.conftest import BASE, NS, ServerThread, connect
from tests.resources import PREFIX

NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
NMDA = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
_count = itertools.count(1)


def make_user(server, name, groups=None) -> str:
    """A NETCONF user with a fresh key; groups: lines of its groups file."""
    home = Path(server.config.state_dir) / "users" / name
    home.mkdir(parents=True, exist_ok=True)
    key = asyncssh.generate_private_key("ssh-ed25519")
    atomic_write(home / "id_ed25519", key.export_private_key(), mode=0o600)
    atomic_write(home / "authorized_keys", key.export_public_key(), mode=0o600)
    if groups is not None:
        (home / "groups").write_text("".join(g + "\n" for g in groups))
    return str(home / "id_ed25519")


def as_user(server, name, key):
    return connect(server, username=name, key_filename=key)


def edit(m, body, target="running"):
    return m.edit_config(target=target, config='<config xmlns="%s">%s</config>' % (BASE, body))


def nacm_edit(m, body):
    edit(m, '<nacm xmlns="%s">%s</nacm>' % (NACM, body))


def rule(name, action, ops="*", module=None, rpc=None, path=None, notification=None):
    out = "<name>%s</name>" % name
    if module:
        out += "<module-name>%s</module-name>" % module
    if rpc:
        out += "<rpc-name>%s</rpc-name>" % rpc
    if notification:
        out += "<notification-name>%s</notification-name>" % notification
    if path:
        out += '<path xmlns:t="%s">%s</path>' % (NS, path)
    return "<rule>%s<access-operations>%s</access-operations><action>%s</action></rule>" % (
        out, ops, action)


def rule_list(name, group, *rules):
    return "<rule-list><name>%s</name><group>%s</group>%s</rule-list>" % (
        name, group, "".join(rules))


def group(name, *users):
    return "<groups><group><name>%s</name>%s</group></groups>" % (
        name, "".join("<user-name>%s</user-name>" % u for u in users))


def counters(m):
    data = m.get(filter=("subtree", '<nacm xmlns="%s"/>' % NACM)).data_ele
    node = data.find("{%s}nacm" % NACM)
    return {k: int(node.findtext("{%s}%s" % (NACM, k)))
            for k in ("denied-operations", "denied-data-writes", "denied-notifications")}


def error_of(exc_info):
    return exc_info.value


@pytest.fixture
def server(session_tmp):
    """A first start: the shipped startup (admin an operator), no recovery user but
    "recovery"."""
    srv = ServerThread(session_tmp / ("%s-nacm%d" % (PREFIX, next(_count))), nacm=True).start()
    yield srv
    srv.stop()


@pytest.fixture
def users(server):
    keys = {name: make_user(server, name) for name in ("alice", "bob")}
    return keys


def test_shipped_startup_makes_admin_an_operator(server, nc):
    data = nc.get_config(source="running", filter=("subtree", '<nacm xmlns="%s"/>' % NACM))
    groups = data.data_ele.find(".//{%s}group" % NACM)
    assert groups.findtext("{%s}name" % NACM) == "operators"
    assert [u.text for u in groups.iterfind("{%s}user-name" % NACM)] == ["admin"]
    # admin writes anything (the operators' permit-all), deletes startup
    edit(nc, '<top xmlns="%s"><name>x</name></top>' % NS)
    nc.delete_config(target="startup")


def test_kill_session_and_delete_config_denied_by_default(server, nc, users):
    with as_user(server, "alice", users["alice"]) as alice:
        with pytest.raises(RPCError) as err:
            alice.delete_config(target="startup")
        assert err.value.tag == "access-denied"
        with pytest.raises(RPCError) as err:
            alice.kill_session(session_id=nc.session_id)
        assert err.value.tag == "access-denied"
        # other operations are exec-default permit; writes write-default deny
        alice.get_config(source="running")
        with pytest.raises(RPCError) as err:
            edit(alice, '<top xmlns="%s"><name>x</name></top>' % NS)
        assert err.value.tag == "access-denied"
        assert err.value.path and "top" in err.value.path
        # kill-subscription: nacm:default-deny-all in ietf-subscribed-notifications itself
        from tests.e2e.netconf.test_yang_push import SN, establish
        victim = establish(nc, "<yp:datastore>ds:running</yp:datastore><yp:on-change/>")
        kill = etree.fromstring('<kill-subscription xmlns="%s"><id>%d</id>'
                                '</kill-subscription>' % (SN, victim))
        with pytest.raises(RPCError) as err:
            alice.dispatch(kill)
        assert err.value.tag == "access-denied"
        c = counters(nc)
        assert c["denied-operations"] == 3 and c["denied-data-writes"] == 1
    nc.dispatch(kill)                        # the operators' permit-all rule names it


def items(m, names_values):
    edit(m, '<top xmlns="%s">%s</top>' % (NS, "".join(
        "<item><name>%s</name><value>%d</value></item>" % nv for nv in names_values)))


def item_names(tree):
    return sorted(e.text for e in tree.iter("{%s}name" % NS)
                  if e.getparent().tag == "{%s}item" % NS)


def test_read_filtering_in_get_get_config_get_data_with_and_without_filters(server, nc, users):
    """A path rule with a predicate hides one entry (silently), a list without a key
    (every entry: the wildcard) hides a leaf of all; the rest reads as before."""
    items(nc, [("public", 1), ("secret", 2)])
    edit(nc, '<top xmlns="%s"><name>n</name></top>' % NS)
    nacm_edit(nc, group("staff", "alice") + rule_list(
        "staff", "staff",
        rule("hide-secret", "deny", "read", path="/t:top/t:item[t:name='secret']"),
        rule("hide-values", "deny", "read", path="/t:top/t:item/t:value")))
    with as_user(server, "alice", users["alice"]) as alice:
        for reply in (alice.get_config(source="running").data_ele,
                      alice.get().data_ele,
                      alice.get_config(source="running", filter=(
                          "subtree", '<top xmlns="%s"/>' % NS)).data_ele,
                      alice.get(filter=("subtree", '<top xmlns="%s"><item/></top>'
                                        % NS)).data_ele):
            assert item_names(reply) == ["public"], etree.tostring(reply)
            assert not list(reply.iter("{%s}value" % NS))
        # the XPath filter and get-data
        xp = alice.get_config(source="running", filter=("xpath", "/top/item")).data_ele
        assert item_names(xp) == ["public"]
        rpc = ('<get-data xmlns="%s" xmlns:ds="urn:ietf:params:xml:ns:yang:ietf-datastores">'
               '<datastore>ds:running</datastore></get-data>' % NMDA)
        data = etree.fromstring(alice.dispatch(etree.fromstring(rpc)).xml.encode())
        assert item_names(data) == ["public"]
        assert data.find(".//{%s}top/{%s}name" % (NS, NS)).text == "n"
        # a filter selecting only the hidden entry: an empty reply, not an error
        one = alice.get_config(source="running", filter=(
            "subtree", '<top xmlns="%s"><item><name>secret</name></item></top>' % NS)).data_ele
        assert item_names(one) == []
        # NACM itself is default-deny-all: no rule of alice's permits reading it
        assert alice.get_config(source="running").data_ele.find(
            "{%s}nacm" % NACM) is None
    # admin (operators) sees everything
    assert item_names(nc.get_config(source="running").data_ele) == ["public", "secret"]


def test_write_denial_with_error_path_and_nothing_changes(server, nc, users):
    items(nc, [("a", 1), ("b", 2)])
    nacm_edit(nc, group("staff", "alice") + rule_list(
        "staff", "staff",
        rule("not-b", "deny", "create update delete", path="/t:top/t:item[t:name='b']"),
        rule("items", "permit", "create update delete", path="/t:top/t:item")))
    before = nc.get_config(source="running").data_ele
    with as_user(server, "alice", users["alice"]) as alice:
        items(alice, [("a", 10)])                  # update permitted
        with pytest.raises(RPCError) as err:
            items(alice, [("a", 11), ("b", 20)])   # one denied node: nothing changes
        assert err.value.tag == "access-denied"
        assert err.value.path.endswith("item[t:name='b']/t:value") or \
            "item[" in err.value.path and "'b'" in err.value.path, err.value.path
        with pytest.raises(RPCError) as err:
            edit(alice, '<top xmlns="%s"><item xmlns:nc="%s" nc:operation="delete">'
                 '<name>b</name></item></top>' % (NS, BASE))
        assert err.value.tag == "access-denied"
        with pytest.raises(RPCError) as err:   # outside every path rule: write-default deny
            edit(alice, '<top xmlns="%s"><name>z</name></top>' % NS)
        assert err.value.path.endswith("top/t:name")
        items(alice, [("c", 3)])                    # create of another entry permitted
    after = nc.get_config(source="running").data_ele
    values = {i.findtext("{%s}name" % NS): i.findtext("{%s}value" % NS)
              for i in after.iter("{%s}item" % NS)}
    assert values == {"a": "10", "b": "2", "c": "3"}, etree.tostring(before)
    assert counters(nc)["denied-data-writes"] == 3


def test_rule_order_first_match_wins(server, nc, users):
    items(nc, [("a", 1)])
    deny_first = rule_list("one", "staff", rule("deny-items", "deny", "read",
                                                path="/t:top/t:item"),
                           rule("permit-all", "permit", "read", module="nc-test"))
    nacm_edit(nc, group("staff", "alice") + deny_first)
    with as_user(server, "alice", users["alice"]) as alice:
        assert item_names(alice.get_config(source="running").data_ele) == []
    # the same rules the other way round: the module permit matches first
    nc.edit_config(target="running", config='<config xmlns="%s"><nacm xmlns="%s">'
                   '<rule-list xmlns:nc="%s" nc:operation="delete"><name>one</name>'
                   '</rule-list></nacm></config>' % (BASE, NACM, BASE))
    nacm_edit(nc, rule_list("two", "staff",
                            rule("permit-all", "permit", "read", module="nc-test"),
                            rule("deny-items", "deny", "read", path="/t:top/t:item")))
    with as_user(server, "alice", users["alice"]) as alice:
        assert item_names(alice.get_config(source="running").data_ele) == ["a"]


def test_exec_rules_and_wildcards(server, nc, users):
    nacm_edit(nc, group("staff", "alice", "bob") + rule_list(
        "staff", "staff",
        rule("no-get-config", "deny", "exec", module="ietf-netconf", rpc="get-config"),
        rule("may-kill", "permit", "exec", module="*", rpc="kill-session")))
    with as_user(server, "alice", users["alice"]) as alice:
        with pytest.raises(RPCError) as err:
            alice.get_config(source="running")
        assert err.value.tag == "access-denied" and err.value.type.name.lower() == "protocol" \
            if hasattr(err.value.type, "name") else err.value.tag == "access-denied"
        alice.get()
        bob = as_user(server, "bob", users["bob"])
        alice.kill_session(session_id=bob.session_id)           # permitted explicitly
    # rpc-name "*" with module-name "*": every operation but close-session
    nacm_edit(nc, rule_list("staff", "staff", rule("nothing", "deny", "exec", module="*",
                                                   rpc="*")))
    alice = as_user(server, "alice", users["alice"])
    with pytest.raises(RPCError):
        alice.get()
    alice.close_session()                   # always allowed (RFC 8341 3.2.4)


def test_groups_from_the_user_entry(server, nc):
    key = make_user(server, "carol", groups=["staff"])
    nacm_edit(nc, rule_list("staff", "staff", rule("write", "permit", module="nc-test")))
    with as_user(server, "carol", key) as carol:
        edit(carol, '<top xmlns="%s"><name>carol</name></top>' % NS)
    edit(nc, '<nacm xmlns="%s"><enable-external-groups>false</enable-external-groups></nacm>'
         % NACM)
    with as_user(server, "carol", key) as carol:
        with pytest.raises(RPCError) as err:
            edit(carol, '<top xmlns="%s"><name>again</name></top>' % NS)
        assert err.value.tag == "access-denied"


def test_recovery_session_bypasses_nacm_and_enable_nacm_false(server, nc, users):
    key = make_user(server, "recovery")
    # lock everyone out, even the operators
    nc.edit_config(target="running", config='<config xmlns="%s"><nacm xmlns="%s" '
                   'xmlns:nc="%s" nc:operation="replace"><write-default>deny</write-default>'
                   '</nacm></config>' % (BASE, NACM, BASE))
    with pytest.raises(RPCError):
        edit(nc, '<top xmlns="%s"><name>x</name></top>' % NS)
    with as_user(server, "recovery", key) as rec:
        edit(rec, '<top xmlns="%s"><name>x</name></top>' % NS)
        rec.delete_config(target="startup")
        edit(rec, '<nacm xmlns="%s"><enable-nacm>false</enable-nacm></nacm>' % NACM)
    with as_user(server, "alice", users["alice"]) as alice:
        edit(alice, '<top xmlns="%s"><name>y</name></top>' % NS)
        alice.delete_config(target="startup")


def test_commit_of_candidate_holding_denied_changes(server, nc, users):
    nacm_edit(nc, group("staff", "alice") + rule_list(
        "staff", "staff", rule("items", "permit", "create update delete",
                               path="/t:top/t:item")))
    edit(nc, '<top xmlns="%s"><name>by-admin</name></top>' % NS, target="candidate")
    with as_user(server, "alice", users["alice"]) as alice:
        edit(alice, '<top xmlns="%s"><item><name>mine</name></item></top>' % NS,
            target="candidate")
        with pytest.raises(RPCError) as err:
            alice.commit()
        assert err.value.tag == "access-denied" and err.value.path.endswith("t:name")
    running = nc.get_config(source="running").data_ele
    assert running.find(".//{%s}top" % NS) is None
    nc.commit()
    assert nc.get_config(source="running").data_ele.find(
        ".//{%s}top/{%s}name" % (NS, NS)).text == "by-admin"


def test_counters_count(server, nc, users):
    with as_user(server, "alice", users["alice"]) as alice:
        for _ in range(3):
            with pytest.raises(RPCError):
                alice.delete_config(target="startup")
        for _ in range(2):
            with pytest.raises(RPCError):
                edit(alice, '<top xmlns="%s"><name>x</name></top>' % NS)
    c = counters(nc)
    assert c["denied-operations"] == 3 and c["denied-data-writes"] == 2


SFFG = "urn:composer-nc:yang:composer-sffg"
DOMAIN = "urn:composer-nc:yang:composer-domain"


def graph(graph_id, name):
    return ("<service-graph><id>%s</id><config><id>%s</id><name>%s</name></config>"
            "</service-graph>" % (graph_id, graph_id, name))


def graph_names(tree):
    return {g.findtext("{%s}id" % SFFG): g.findtext("{%s}config/{%s}name" % (SFFG, SFFG))
            for g in tree.iter("{%s}service-graph" % SFFG)}


def test_tenant_reads_and_edits_only_its_graphs(server, nc):
    """composer-agent tenant add: alice owns graph a; she sees it alone (get-config, get,
    get-data), edits it, cannot touch graph b, create another graph, read NACM or the
    node's management address (operator-only), and nothing of b changes."""
    from agent.config import load
    from agent.netconf.tenants import add_tenant
    edit(nc, '<service-graphs xmlns="%s">%s%s</service-graphs>' % (
        SFFG, graph("a", "alice's"), graph("b", "bob's")))
    edit(nc, '<domain xmlns="%s"><config><name>node</name><management-address>192.0.2.9'
         '</management-address></config></domain>' % DOMAIN)
    config = load(None, {"state": {"dir": str(server.config.state_dir)},
                         "netconf": {"port": server.port}})
    message = add_tenant(config, "alice", ["a"])
    assert message.startswith("alice is a tenant of a")
    key = Path(server.config.state_dir) / "users" / "alice" / "id_ed25519"
    with as_user(server, "alice", str(key)) as alice:
        rpc = ('<get-data xmlns="%s" xmlns:ds="urn:ietf:params:xml:ns:yang:ietf-datastores">'
               '<datastore>ds:operational</datastore></get-data>' % NMDA)
        for reply in (alice.get_config(source="running").data_ele, alice.get().data_ele,
                      etree.fromstring(alice.dispatch(etree.fromstring(rpc)).xml.encode()),
                      alice.get(filter=("subtree", '<service-graphs xmlns="%s"/>'
                                        % SFFG)).data_ele):
            assert graph_names(reply) == {"a": "alice's"}, etree.tostring(reply)
            text = etree.tostring(reply)
            assert b"192.0.2.9" not in text and b"bob's" not in text
            assert reply.find(".//{%s}nacm" % NACM) is None
        domain = alice.get_config(source="running").data_ele.find("{%s}domain" % DOMAIN)
        assert domain.findtext("{%s}config/{%s}name" % (DOMAIN, DOMAIN)) == "node"
        # an XPath filter naming the hidden leaf: nothing
        hidden = alice.get(filter=("xpath", "/domain/config/management-address")).data_ele
        assert b"192.0.2.9" not in etree.tostring(hidden)
        edit(alice, '<service-graphs xmlns="%s">%s</service-graphs>' % (SFFG,
                                                                       graph("a", "mine")))
        for body in (graph("b", "taken"), graph("c", "new")):
            with pytest.raises(RPCError) as err:
                edit(alice, '<service-graphs xmlns="%s">%s</service-graphs>' % (SFFG, body))
            assert err.value.tag == "access-denied"
            assert "service-graph[" in err.value.path, err.value.path
        with pytest.raises(RPCError) as err:
            edit(alice, '<nacm xmlns="%s"><enable-nacm>false</enable-nacm></nacm>' % NACM)
        assert err.value.tag == "access-denied"
    assert graph_names(nc.get_config(source="running").data_ele) == {"a": "mine", "b": "bob's"}


def _tenant(server, nc):
    from agent.config import load
    from agent.netconf.tenants import add_tenant
    edit(nc, '<service-graphs xmlns="%s">%s%s</service-graphs>' % (
        SFFG, graph("a", "alice's"), graph("b", "bob's")))
    config = load(None, {"state": {"dir": str(server.config.state_dir)},
                         "netconf": {"port": server.port}})
    add_tenant(config, "alice", ["a"])
    return str(Path(server.config.state_dir) / "users" / "alice" / "id_ed25519")


def test_notifications_filtered_per_receiver(server, nc):
    """Operator and tenant subscribed to the NETCONF stream: a config change of both graphs
    reaches the tenant with its own graph's edit only; a change of the other graph, a
    status notification of it and a session start do not reach it at all (counted); the
    operator gets everything."""
    from tests.e2e.netconf.test_notifications import take
    from agent.publish import Change, Event
    key = _tenant(server, nc)
    with as_user(server, "alice", key) as alice, connect(server) as admin:
        alice.create_subscription()
        admin.create_subscription()
        before = counters(nc)["denied-notifications"]
        edit(nc, '<service-graphs xmlns="%s">%s%s</service-graphs>' % (
            SFFG, graph("a", "a2"), graph("b", "b2")))
        got = take(alice, "netconf-config-change")
        assert [t for t, _ in got.edits()] and all("'a'" in t for t, _ in got.edits()), \
            got.edits()
        seen = take(admin, "netconf-config-change")
        assert any("'b'" in t for t, _ in seen.edits())
        edit(nc, '<service-graphs xmlns="%s">%s</service-graphs>' % (SFFG, graph("b", "b3")))
        assert take(admin, "netconf-config-change") is not None
        status = "composer-sffg:graph-status-change"
        for gid in ("b", "a"):
            server.loop.call_soon_threadsafe(server.service.server.bus.publish, Event(
                status, {status: {"graph-id": gid}},
                [Change("operational", "/composer-sffg:service-graphs/service-graph"
                        "[id='%s']/state" % gid)]))
        assert take(admin, "graph-status-change").content.findtext(
            "{%s}graph-id" % SFFG) == "b"
        # the first alice gets after her own graph's change: a's status, nothing of b's
        nxt = take(alice, timeout=5)
        assert nxt.name == "graph-status-change", nxt
        assert nxt.content.findtext("{%s}graph-id" % SFFG) == "a"
        with connect(server):
            assert take(admin, "netconf-session-start") is not None
        assert take(alice, timeout=1) is None
        # b's config change, b's status, the session start and end
        assert counters(nc)["denied-notifications"] - before >= 3


def test_yang_push_filtered_per_receiver(server, nc):
    from tests.e2e.netconf.test_yang_push import establish, edits
    from tests.e2e.netconf.test_notifications import take
    key = _tenant(server, nc)
    with as_user(server, "alice", key) as alice:
        establish(alice, "<yp:datastore>ds:running</yp:datastore><yp:on-change>"
                  "<yp:sync-on-start>true</yp:sync-on-start></yp:on-change>")
        sync = take(alice, "push-update")
        text = etree.tostring(sync.content)
        assert b"alice's" in text and b"bob's" not in text and b"nacm" not in text
        edit(nc, '<service-graphs xmlns="%s">%s</service-graphs>' % (SFFG, graph("b", "b2")))
        edit(nc, '<service-graphs xmlns="%s">%s</service-graphs>' % (SFFG, graph("a", "a2")))
        update = take(alice, "push-change-update")
        assert edits(update) == [
            ("replace", "/composer-sffg:service-graphs/service-graph=a/config/name")]
        assert take(alice, "push-change-update", timeout=1) is None


def test_yang_push_reads_are_shared_by_one_user_only(server, nc):
    """Subscriptions with the same terms share reads and patches (one diff per change),
    but only those of one user: an operator's subscription made first must not hand a
    tenant its reads, nor its patches of the other tenant's graph."""
    from tests.e2e.netconf.test_yang_push import establish, edits
    from tests.e2e.netconf.test_notifications import take
    key = _tenant(server, nc)
    terms = "<yp:datastore>ds:running</yp:datastore><yp:on-change/>"
    with connect(server) as operator, as_user(server, "alice", key) as alice:
        establish(operator, terms)
        establish(alice, terms)
        edit(nc, '<service-graphs xmlns="%s">%s</service-graphs>' % (SFFG, graph("b", "b3")))
        edit(nc, '<service-graphs xmlns="%s">%s</service-graphs>' % (SFFG, graph("a", "a3")))
        seen = [edits(take(operator, "push-change-update")) for _ in range(2)]
        assert seen == [
            [("replace", "/composer-sffg:service-graphs/service-graph=b/config/name")],
            [("replace", "/composer-sffg:service-graphs/service-graph=a/config/name")]]
        assert edits(take(alice, "push-change-update")) == [
            ("replace", "/composer-sffg:service-graphs/service-graph=a/config/name")]
        assert take(alice, "push-change-update", timeout=1) is None


# -- what netopeer2's tests/test_nacm.c checks, one by one -----------------------------
def staff(nc, *rules, **settings):
    extra = "".join("<%s>%s</%s>" % (k.replace("_", "-"), v, k.replace("_", "-"))
                    for k, v in settings.items())
    nacm_edit(nc, extra + group("staff", "alice") + rule_list("staff", "staff", *rules))


def test_read_default_deny_and_a_permitted_path(server, nc, users):
    edit(nc, '<top xmlns="%s"><name>first</name><item><name>i</name></item></top>' % NS)
    staff(nc, read_default="deny")
    with as_user(server, "alice", users["alice"]) as alice:
        assert len(alice.get_config(source="running").data_ele) == 0
        assert len(alice.get().data_ele) == 0
    staff(nc, rule("allow-name", "permit", "read", path="/t:top/t:name"), read_default="deny")
    with as_user(server, "alice", users["alice"]) as alice:
        data = alice.get_config(source="running").data_ele
        # the permitted leaf, with its (denied) ancestor as the way to it, nothing else
        assert etree.tostring(data.find("{%s}top" % NS)) == (
            '<top xmlns="%s"><name>first</name></top>' % NS).encode()
        assert len(data) == 1


def test_xpath_filter_on_a_denied_leaf_and_a_denied_key_list_leaf(server, nc, users):
    items(nc, [("john", 75), ("thomas", 100), ("arnold", 110)])
    staff(nc, rule("no-value", "deny", "read", path="/t:top/t:item/t:value"))
    with as_user(server, "alice", users["alice"]) as alice:
        # the filter is evaluated on the data, then what alice may not read is left out
        data = alice.get_config(source="running",
                                filter=("xpath", "/top/item[value>100]")).data_ele
        assert etree.tostring(data.find("{%s}top" % NS)) == (
            '<top xmlns="%s"><item><name>arnold</name></item></top>' % NS).encode()
    staff(nc, rule("no-value-arnold", "deny", "read",
                   path="/t:top/t:item[t:name='arnold']/t:value"))
    nc.edit_config(target="running", config='<config xmlns="%s"><nacm xmlns="%s"><rule-list>'
                   '<name>staff</name><rule xmlns:nc="%s" nc:operation="delete"><name>no-value'
                   '</name></rule></rule-list></nacm></config>' % (BASE, NACM, BASE))
    with as_user(server, "alice", users["alice"]) as alice:
        data = alice.get_config(source="running").data_ele
        found = {i.findtext("{%s}name" % NS): i.findtext("{%s}value" % NS)
                 for i in data.iter("{%s}item" % NS)}
        assert found == {"john": "75", "thomas": "100", "arnold": None}


def test_rule_list_for_every_group(server, nc, users):
    edit(nc, '<top xmlns="%s"><name>n</name></top>' % NS)
    nacm_edit(nc, "<read-default>deny</read-default>" + group("staff", "alice") +
              rule_list("all", "*", rule("allow-name", "permit", "read", path="/t:top/t:name")))
    with as_user(server, "alice", users["alice"]) as alice:
        assert alice.get_config(source="running").data_ele.findtext(
            "{%s}top/{%s}name" % (NS, NS)) == "n"


def test_create_and_update_are_separate_permissions(server, nc, users):
    staff(nc, rule("update-name", "permit", "update", path="/t:top/t:name"))
    with as_user(server, "alice", users["alice"]) as alice:
        with pytest.raises(RPCError) as err:
            edit(alice, '<top xmlns="%s"><name>new</name></top>' % NS)
        assert err.value.tag == "access-denied"
        edit(nc, '<top xmlns="%s"><name>old</name></top>' % NS)
        edit(alice, '<top xmlns="%s"><name>changed</name></top>' % NS)
    assert nc.get_config(source="running").data_ele.findtext(
        "{%s}top/{%s}name" % (NS, NS)) == "changed"


def test_create_below_an_entry_delete_of_the_entry(server, nc, users):
    """netopeer2's edit_config_subtree: creating below an existing entry is permitted,
    creating another entry is not, removing the entry is."""
    edit(nc, '<top xmlns="%s"><item><name>area</name></item></top>' % NS)
    staff(nc, rule("create-values", "permit", "create", path="/t:top/t:item/t:value"),
          rule("delete-items", "permit", "delete", path="/t:top/t:item"))
    with as_user(server, "alice", users["alice"]) as alice:
        items(alice, [("area", 5)])
        with pytest.raises(RPCError) as err:
            edit(alice, '<top xmlns="%s"><item><name>other</name></item></top>' % NS)
        assert err.value.tag == "access-denied"
        edit(alice, '<top xmlns="%s"><item xmlns:nc="%s" nc:operation="remove"><name>area'
             '</name></item></top>' % (NS, BASE))
    assert item_names(nc.get_config(source="running").data_ele) == []


def test_copy_config_of_what_the_user_may_not_read(server, nc, users):
    staff(nc, rule("no-name", "deny", "read", path="/t:top/t:name"),
          rule("write", "permit", "create update delete", module="nc-test"),
          rule("see-nacm", "permit", "read", module="ietf-netconf-acm"))
    edit(nc, '<top xmlns="%s"><name>secret</name></top>' % NS, target="candidate")
    with as_user(server, "alice", users["alice"]) as alice:
        with pytest.raises(RPCError) as err:
            alice.copy_config(source="candidate", target="running")
        assert err.value.tag == "access-denied" and err.value.path.endswith("t:name")
    assert nc.get_config(source="running").data_ele.find("{%s}top" % NS) is None


def test_delete_config_when_permitted_and_discard_changes_without_rights(server, nc, users):
    staff(nc, rule("allow-delete", "permit", "exec", module="ietf-netconf",
                   rpc="delete-config"),
          rule("allow-delete-all", "permit", "delete", module="*"))
    nc.copy_config(source="running", target="startup")
    edit(nc, '<top xmlns="%s"><name>pending</name></top>' % NS, target="candidate")
    with as_user(server, "alice", users["alice"]) as alice:
        alice.delete_config(target="startup")
        alice.discard_changes()          # no rule is needed for it (it is no write)
    assert len(nc.get_config(source="startup").data_ele) == 0
    assert nc.get_config(source="candidate").data_ele.find("{%s}top" % NS) is None


def test_a_changed_groups_file_takes_effect(server, nc):
    key = make_user(server, "dave")
    nacm_edit(nc, rule_list("staff", "staff", rule("write", "permit", module="nc-test")))
    with as_user(server, "dave", key) as dave:
        with pytest.raises(RPCError):
            edit(dave, '<top xmlns="%s"><name>d</name></top>' % NS)
        (Path(server.config.state_dir) / "users" / "dave" / "groups").write_text("staff\n")
        edit(dave, '<top xmlns="%s"><name>d</name></top>' % NS)
