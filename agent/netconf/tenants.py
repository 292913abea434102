"""`composer-agent tenant add <user> <graph>...`: make a NETCONF user a tenant owning
service graphs, by an edit-config of running's /nacm sent to the running agent as admin
(agent/netconf/nacm/shipped.py tenant_policy: group tenants, and a rule list of its own). The
user gets a key pair in <state>/users/<user>/ when it has no authorized_keys yet."""

import asyncio
import re

import asyncssh
from lxml import etree

from .messages import BASE_NS
from .nacm import tenant_policy
from .users import ADMIN, UserError, Users, valid_name

_GRAPH_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_EOM = b"]]>]]>"


class TenantError(Exception):
    """The tenant could not be added (the reason, for the operator)."""


def _hello() -> bytes:
    return (b'<hello xmlns="%s"><capabilities><capability>urn:ietf:params:netconf:base:1.0'
            b'</capability></capabilities></hello>' % BASE_NS.encode()) + _EOM


async def _exchange(host, port, user, key_path, rpc: bytes) -> bytes:
    async with asyncssh.connect(host, port=port, username=user, client_keys=[str(key_path)],
                                known_hosts=None, agent_path=None) as conn:
        writer, reader, _ = await conn.open_session(subsystem="netconf", encoding=None)
        buffer = b""
        while _EOM not in buffer:
            chunk = await reader.read(65536)
            if not chunk:
                raise TenantError("the agent closed the session")
            buffer += chunk
        writer.write(_hello() + rpc + _EOM)
        buffer = buffer.split(_EOM, 1)[1]
        while _EOM not in buffer:
            chunk = await reader.read(65536)
            if not chunk:
                raise TenantError("the agent closed the session")
            buffer += chunk
        writer.close()
        return buffer.split(_EOM, 1)[0]


def add_tenant(config, user: str, graphs, host: str = "127.0.0.1") -> str:
    """Send the edit; the message for the operator. Raises TenantError."""
    if not valid_name(user):
        raise TenantError("invalid user name %r" % user)
    bad = [g for g in graphs if not _GRAPH_ID.match(g)]
    if bad or not graphs:
        raise TenantError("invalid graph id %r (letters, digits, '.', '_', '-')"
                          % (bad[0] if bad else ""))
    users = Users(config.state_dir / "users")
    admin_key = users.admin_key()
    if admin_key is None:
        raise TenantError("no key of %s in %s" % (ADMIN, users.directory))
    made = None
    try:
        if users.authorized_keys(user) is None:
            made = users.create_key(user)
    except (UserError, OSError) as exc:
        raise TenantError(str(exc)) from None
    rpc = ('<rpc xmlns="%s" message-id="1"><edit-config><target><running/></target>'
           '<config>%s</config></edit-config></rpc>' % (BASE_NS, tenant_policy(user, graphs)))
    try:
        reply = asyncio.run(_exchange(host, config.get("netconf", "port"), ADMIN, admin_key,
                                      rpc.encode()))
    except (OSError, asyncssh.Error) as exc:
        raise TenantError("cannot reach the agent on port %d: %s"
                          % (config.get("netconf", "port"), exc)) from None
    root = etree.fromstring(reply)
    error = root.find("{%s}rpc-error" % BASE_NS)
    if error is not None:
        raise TenantError("the agent refused: %s" % (
            error.findtext("{%s}error-message" % BASE_NS) or error.findtext(
                "{%s}error-tag" % BASE_NS)))
    lines = ["%s is a tenant of %s" % (user, ", ".join(graphs))]
    if made is not None:
        lines.append("its key: %s" % made)
    return "\n".join(lines)
