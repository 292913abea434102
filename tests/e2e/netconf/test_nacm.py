"""NACM (RFC 8341) over NETCONF: what netopeer2's tests/test_nacm.c checks (default deny of
kill-session and delete-config, read filtering in get/get-config/get-data with and
without filters, write denial with error-path, exec rules, path rules with wildcards and
predicates, rule ordering, groups from the user's entry, the recovery session, counters),
on the in-process server with the shipped startup (admin is an operator)."""

from pathlib import Path

import asyncssh
import pytest
from lxml import etree
from ncclient.operations.rpc import RPCError

from agent.files import atomic_write
from tests.e2e.netconf.conftest import BASE, NS, connect

NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
NMDA = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"


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
        c = counters(nc)
        assert c["denied-operations"] == 2 and c["denied-data-writes"] == 1
