"""The NETCONF clients users have, each through its own transport: ncclient (paramiko),
netconf-console2 (paramiko, interactive), scrapli-netconf with its default "system"
transport (/usr/bin/ssh with a forced PTY, hello after a newline) and with its asyncssh
transport. Each connects, gets, edits the candidate, commits, and fetches every schema
the server lists in netconf-state/schemas."""

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree
from scrapli_netconf.driver import AsyncNetconfDriver, NetconfDriver

from .conftest import NS, config, connect

MON = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
CONSOLE = str(Path(sys.executable).with_name("netconf-console2"))
SCHEMAS = '<netconf-state xmlns="%s"><schemas/></netconf-state>' % MON


def listed_schemas(server) -> list[tuple[str, str, str]]:
    with connect(server) as m:
        data = m.get(filter=("subtree", SCHEMAS)).data_ele
    found = []
    for schema in data.iter("{%s}schema" % MON):
        fmt = schema.findtext("{%s}format" % MON)
        found.append((schema.findtext("{%s}identifier" % MON),
                      schema.findtext("{%s}version" % MON) or "",
                      fmt.rpartition(":")[2]))
    assert len(found) > 10
    return found


def looks_like_schema(text: str, identifier: str, fmt: str) -> bool:
    if fmt == "yin":
        root = etree.fromstring(text.strip().encode())
        return root.get("name") == identifier
    return text.lstrip().startswith(("module %s" % identifier, "submodule %s" % identifier))


def committed_name(server) -> str:
    with connect(server) as m:
        return m.get_config(source="running").data_ele.findtext("{%s}top/{%s}name" % (NS, NS))


def get_schema_rpc(identifier, version, fmt) -> str:
    return ('<get-schema xmlns="%s"><identifier>%s</identifier><version>%s</version>'
            '<format>%s</format></get-schema>' % (MON, identifier, version, fmt))


def schema_text(reply_xml: str) -> str:
    reply = etree.fromstring(reply_xml.encode())
    data = reply.find("{%s}data" % MON)
    assert data is not None, reply_xml[:500]
    return data.text


def test_ncclient(server):
    schemas = listed_schemas(server)
    with connect(server) as m:
        assert m.get().data_ele is not None
        m.edit_config(target="candidate", config=config("<name>ncclient</name>"))
        m.commit()
        for identifier, version, fmt in schemas:
            text = m.get_schema(identifier, version, fmt).data
            assert looks_like_schema(text, identifier, fmt), (identifier, fmt)
    assert committed_name(server) == "ncclient"


def test_netconf_console2(server, tmp_path):
    schemas = listed_schemas(server)
    edit = tmp_path / "edit.xml"
    edit.write_text('<top xmlns="%s"><name>netconf-console2</name></top>' % NS)
    argv = [CONSOLE, "--host", "127.0.0.1", "--port", str(server.port), "-u", "admin",
            "--privKeyFile", server.key, "--ssh-config", "/dev/null"]
    done = subprocess.run(argv + ["--db", "candidate", "--edit-config", str(edit), "--commit"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert committed_name(server) == "netconf-console2"
    # interactive: one session for the get and every schema (the console asks for YANG)
    identifiers = sorted({s[0] for s in schemas})
    commands = ["get -x /netconf-state/schemas"] + ["get-schema %s" % i for i in identifiers]
    done = subprocess.run(argv + ["-i"], input="\n".join(commands) + "\n",
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "<rpc-error" not in done.stdout, done.stdout[:2000]
    assert done.stdout.count("<identifier>") == len(schemas)
    for identifier in identifiers:
        assert "module %s {" % identifier in done.stdout, identifier


def _scrapli_args(server, transport):
    args = dict(host="127.0.0.1", port=server.port, auth_username="admin",
                auth_private_key=server.key, auth_strict_key=False, transport=transport,
                timeout_socket=30, timeout_transport=30, timeout_ops=60)
    if transport == "system":
        args["ssh_config_file"] = False     # not the user's ~/.ssh/config
    return args


def test_scrapli_system_transport_with_its_pty(server):
    """/usr/bin/ssh -tt -s netconf: the PTY is granted and the bytes stay as they are;
    scrapli's hello starts with a newline before the XML declaration."""
    schemas = listed_schemas(server)
    conn = NetconfDriver(**_scrapli_args(server, "system"))
    conn.open()
    try:
        assert "urn:ietf:params:netconf:base:1.1" in conn.server_capabilities
        reply = conn.get(filter_=SCHEMAS, filter_type="subtree")
        assert not reply.failed and "<schemas>" in reply.result
        reply = conn.edit_config(config=config("<name>scrapli-system</name>"),
                                 target="candidate")
        assert not reply.failed, reply.result
        assert not conn.commit().failed
        for schema in schemas:
            reply = conn.rpc(filter_=get_schema_rpc(*schema))
            assert not reply.failed, (schema, reply.result[:500])
            assert looks_like_schema(schema_text(reply.result), schema[0], schema[2]), schema
    finally:
        conn.close()
    assert committed_name(server) == "scrapli-system"


def test_scrapli_asyncssh_transport(server):
    schemas = listed_schemas(server)

    async def run():
        conn = AsyncNetconfDriver(**_scrapli_args(server, "asyncssh"))
        await conn.open()
        try:
            reply = await conn.get(filter_=SCHEMAS, filter_type="subtree")
            assert not reply.failed and "<schemas>" in reply.result
            reply = await conn.edit_config(config=config("<name>scrapli-asyncssh</name>"),
                                           target="candidate")
            assert not reply.failed, reply.result
            assert not (await conn.commit()).failed
            for schema in schemas:
                reply = await conn.rpc(filter_=get_schema_rpc(*schema))
                assert not reply.failed, (schema, reply.result[:500])
                assert looks_like_schema(schema_text(reply.result), schema[0], schema[2])
        finally:
            await conn.close()
    asyncio.run(run())
    assert committed_name(server) == "scrapli-asyncssh"


@pytest.mark.parametrize("base11", [False, True])
def test_scrapli_hello_of_either_base(server, base11):
    """scrapli picks base:1.0 when asked to (strip the 1.1 capability of its hello)."""
    conn = NetconfDriver(**_scrapli_args(server, "system"),
                         preferred_netconf_version="1.1" if base11 else "1.0")
    conn.open()
    try:
        assert not conn.get_config(source="running").failed
    finally:
        conn.close()
