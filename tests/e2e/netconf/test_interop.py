"""What real clients send (issue 14, items 1, 2, 3 and 7): whitespace and a byte order
mark before the XML declaration, in both framings; a PTY requested on the netconf
channel (OpenSSH ssh -tt -s, paramiko get_pty) with bytes a line discipline would eat;
namespaces used loosely where it is unambiguous, and refusals that say what was
expected; unprefixed XPath filters resolved for every module."""

import select
import socket
import subprocess
import time

import paramiko
import pytest
from lxml import etree
from ncclient.operations import RPCError

from .conftest import BASE, NS, config, connect

B = "{%s}" % BASE
T = "{%s}" % NS
MON = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>'


def hello(base11: bool) -> bytes:
    caps = b"<capability>urn:ietf:params:netconf:base:1.0</capability>"
    if base11:
        caps += b"<capability>urn:ietf:params:netconf:base:1.1</capability>"
    return b'<hello xmlns="%s"><capabilities>%s</capabilities></hello>' % (BASE.encode(), caps)


def frame(message: bytes, chunked: bool) -> bytes:
    return b"\n#%d\n%s\n##\n" % (len(message), message) if chunked else message + b"]]>]]>"


class Stream:
    """Bytes to and from a byte pipe (an SSH channel or a process), with NETCONF
    framing on the reading side."""

    def __init__(self, send, recv):
        self.send, self.recv = send, recv
        self.buffer = b""

    def _more(self, deadline):
        data = self.recv(deadline)
        if not data:
            raise EOFError("closed by the server")
        self.buffer += data

    def read(self, chunked: bool, timeout: float = 30) -> bytes:
        deadline = time.monotonic() + timeout
        if not chunked:
            while b"]]>]]>" not in self.buffer:
                self._more(deadline)
            message, _, self.buffer = self.buffer.partition(b"]]>]]>")
            return message
        out = b""
        while True:
            while b"\n" not in self.buffer[2:]:
                self._more(deadline)
            assert self.buffer.startswith(b"\n#"), self.buffer[:40]
            if self.buffer.startswith(b"\n##\n"):
                self.buffer = self.buffer[4:]
                return out
            header, _, rest = self.buffer[2:].partition(b"\n")
            size = int(header)
            while len(rest) < size:
                self._more(deadline)
                header, _, rest = self.buffer[2:].partition(b"\n")
            out += rest[:size]
            self.buffer = rest[size:]

    def closed(self, timeout: float = 10) -> bool:
        """Whether the server ends the stream within timeout."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not self.recv(deadline):
                    return True
        except TimeoutError:
            return False
        return False


def paramiko_stream(server, pty: bool):
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=server.port, username="admin", key_filename=server.key,
                   look_for_keys=False, allow_agent=False, timeout=30)
    channel = client.get_transport().open_session()
    if pty:
        channel.get_pty()
    channel.invoke_subsystem("netconf")

    def recv(deadline):
        channel.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            return channel.recv(65536)
        except socket.timeout:
            raise TimeoutError from None
    return client, Stream(channel.sendall, recv)


def openssh_stream(server, tmp_path):
    """/usr/bin/ssh -tt -s netconf, as scrapli-netconf's system transport runs it."""
    argv = ["ssh", "-tt", "-e", "none", "-F", "/dev/null", "-i", server.key,
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-p", str(server.port),
            "-s", "admin@127.0.0.1", "netconf"]
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=open(tmp_path / "ssh.err", "wb"))

    def send(data):
        process.stdin.write(data)
        process.stdin.flush()

    def recv(deadline):
        ready, _, _ = select.select([process.stdout], [], [], max(0, deadline - time.monotonic()))
        if not ready:
            raise TimeoutError
        return process.stdout.read1(65536)
    return process, Stream(send, recv)


def exchange(stream: Stream, base11: bool):
    """hello after a newline; an edit whose value holds DEL and a CR LF inside the
    message; a get-config reading it back; a message with ^C and ^D inside."""
    server_hello = stream.read(chunked=False)
    assert b"<session-id>" in server_hello
    stream.send(frame(b"\n" + DECLARATION + b"\n" + hello(base11), False))
    edit = (DECLARATION + b'\r\n<rpc xmlns="%s" message-id="1">\r\n<edit-config><target>'
            b'<candidate/></target><config><top xmlns="%s"><name>a\x7fb\r\nc</name></top>'
            b'</config></edit-config></rpc>' % (BASE.encode(), NS.encode()))
    stream.send(frame(edit, base11))
    assert b"<ok/>" in stream.read(base11)
    get = b'<rpc xmlns="%s" message-id="2"><get-config><source><candidate/></source>' \
          b'</get-config></rpc>' % BASE.encode()
    stream.send(frame(get, base11))
    reply = etree.fromstring(stream.read(base11))
    # XML turns CR LF into LF; DEL stays (a line discipline would have erased the 'a')
    assert reply.findtext("%sdata/%stop/%sname" % (B, T, T)) == "a\x7fb\nc"
    if base11:
        # ^C (VINTR) and ^D (VEOF) reach the parser, which refuses them as XML
        stream.send(frame(b'<rpc xmlns="%s" message-id="3"><get/>\x03\x04</rpc>'
                          % BASE.encode(), True))
        error = etree.fromstring(stream.read(True)).find(B + "rpc-error")
        assert error.findtext(B + "error-tag") == "malformed-message"
        assert "0x3" in error.findtext(B + "error-message") or \
            "value 3" in error.findtext(B + "error-message")
        assert stream.closed()


@pytest.mark.parametrize("base11", [False, True])
def test_openssh_client_with_a_pty(server, tmp_path, base11):
    process, stream = openssh_stream(server, tmp_path)
    try:
        exchange(stream, base11)
    finally:
        process.kill()
        process.wait(10)
    assert b"PTY allocation request failed" not in (tmp_path / "ssh.err").read_bytes()


@pytest.mark.parametrize("base11", [False, True])
@pytest.mark.parametrize("pty", [False, True])
def test_paramiko_with_and_without_a_pty(server, base11, pty):
    client, stream = paramiko_stream(server, pty)
    try:
        exchange(stream, base11)
    finally:
        client.close()


@pytest.mark.parametrize("lead", [b"\n", b"\r\n  \t", b"\xef\xbb\xbf", b"\xef\xbb\xbf\n"])
@pytest.mark.parametrize("base11", [False, True])
def test_whitespace_and_bom_before_the_declaration(server, base11, lead):
    client, stream = paramiko_stream(server, pty=False)
    try:
        stream.read(chunked=False)
        stream.send(frame(lead + DECLARATION + b"\n" + hello(base11), False))
        for n in range(2):
            rpc = b'<rpc xmlns="%s" message-id="%d"><get/></rpc>' % (BASE.encode(), n)
            stream.send(frame(lead + DECLARATION + b"\n" + rpc, base11))
            assert b"<data" in stream.read(base11)
    finally:
        client.close()


def test_hello_and_a_chunked_rpc_in_one_write(server):
    """As yuma123's netconf-1dot1 test sends them: a hello after a newline and, without
    waiting, a chunk whose data starts with an XML declaration."""
    client, stream = paramiko_stream(server, pty=False)
    try:
        stream.read(chunked=False)
        rpc = (DECLARATION + b'\n<rpc message-id="1"\n  xmlns="%s">\n  <get xmlns="%s">\n'
               b'  </get>\n</rpc>' % (BASE.encode(), BASE.encode()))
        stream.send(b"\n" + DECLARATION + b"\n" + hello(True) + b"]]>]]>" + frame(rpc, True))
        reply = etree.fromstring(stream.read(True))
        assert reply.get("message-id") == "1" and reply.find(B + "data") is not None
    finally:
        client.close()


# -- namespaces -----------------------------------------------------------------------------
def rpc_reply(server, message: bytes):
    client, stream = paramiko_stream(server, pty=False)
    try:
        stream.read(chunked=False)
        stream.send(frame(hello(True), False))
        stream.send(frame(message, True))
        return etree.fromstring(stream.read(True))
    finally:
        client.close()


def test_a_qualified_message_id_is_accepted_and_echoed_as_sent(server):
    reply = rpc_reply(server, b'<nc:rpc xmlns:nc="%s" nc:message-id="m-7"><nc:get/></nc:rpc>'
                      % BASE.encode())
    assert reply.get(B + "message-id") == "m-7"
    assert reply.find(B + "data") is not None


def test_base_operations_and_parameters_in_no_namespace(server):
    # an unqualified rpc and operation
    reply = rpc_reply(server, b'<rpc message-id="1"><get-config><source><running/></source>'
                      b'</get-config></rpc>')
    assert reply.get("message-id") == "1" and reply.find(B + "data") is not None
    # operations and parameters in no namespace inside a base-namespace rpc
    edit = (b'<nc:rpc xmlns:nc="%s" message-id="2"><edit-config><target><candidate/></target>'
            b'<config><top xmlns="%s"><name>bare</name></top></config></edit-config></nc:rpc>'
            % (BASE.encode(), NS.encode()))
    assert rpc_reply(server, edit).find(B + "ok") is not None
    commit = b'<nc:rpc xmlns:nc="%s" message-id="3"><commit/></nc:rpc>' % BASE.encode()
    assert rpc_reply(server, commit).find(B + "ok") is not None
    with connect(server) as m:
        assert m.get_config(source="running").data_ele.findtext(
            "%stop/%sname" % (T, T)) == "bare"


@pytest.mark.parametrize("body, tag, words", [
    (b'<rpc xmlns="urn:other" message-id="1"><get/></rpc>', "unknown-element",
     ['"rpc" in namespace urn:other', BASE]),
    (b'<rpc xmlns="%s" message-id="1"><get xmlns="urn:other"/></rpc>' % BASE.encode(),
     "operation-not-supported", ['"get" in namespace urn:other', "namespace " + BASE]),
    (b'<rpc xmlns="%s" message-id="1"><commit><confirmed xmlns="urn:x"/></commit></rpc>'
     % BASE.encode(), "unknown-element",
     ['"confirmed" in namespace urn:x', "confirm-timeout", "namespace " + BASE]),
    (b'<rpc xmlns="%s"><get/></rpc>' % BASE.encode(), "missing-attribute",
     ["message-id", BASE]),
    (b'<rpc xmlns="%s" message-id="1"><get-config><source><candidate xmlns="urn:x"/>'
     b'</source></get-config></rpc>' % BASE.encode(), "unknown-element",
     ['"candidate" in namespace urn:x', "running or candidate or startup", BASE]),
])
def test_refusals_say_what_was_expected(server, body, tag, words):
    error = rpc_reply(server, body).find(B + "rpc-error")
    assert error.findtext(B + "error-tag") == tag
    message = error.findtext(B + "error-message")
    for word in words:
        assert word in message, (word, message)


# -- XPath ----------------------------------------------------------------------------------
def test_unprefixed_xpath_resolves_in_every_module(server):
    with connect(server) as m:
        m.edit_config(target="candidate", config=config("<name>x</name>"))
        m.commit()
        sessions = m.get(filter=("xpath", "/netconf-state/sessions")).data_ele
        assert len(list(sessions.iter("{%s}session" % MON))) >= 1
        top = m.get_config(source="running", filter=("xpath", "/top/name")).data_ele
        assert top.findtext("%stop/%sname" % (T, T)) == "x"
        for nothing in ("/netconf-statez", "/netconf-state/nothing", "/top/nothing"):
            with pytest.raises(RPCError) as caught:
                m.get(filter=("xpath", nothing))
            assert caught.value.tag == "invalid-value"
            assert "no" in caught.value.message
