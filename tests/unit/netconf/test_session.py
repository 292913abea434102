"""A Session over an in-memory channel: hellos, framing choice, pipelined RPCs answered
in order, rpc-level errors, close-session, the end-of-session clean-up."""

import asyncio

from lxml import etree

from agent.datastore import Datastores
from agent.netconf.server import NetconfServer
from agent.netconf.session import Session
from agent.netconf.users import Users

from ..datastore.conftest import ctx  # noqa: F401 - the fixture

BASE = "urn:ietf:params:xml:ns:netconf:base:1.0"


class Channel:
    def __init__(self, incoming: bytes):
        self.incoming = [incoming]
        self.out = bytearray()
        self.closed = False

    async def read(self):
        await asyncio.sleep(0)
        return self.incoming.pop(0) if self.incoming else b""

    def write(self, data):
        self.out += data

    async def drain(self):
        pass

    def close(self):
        self.closed = True


def hello(base11=True):
    caps = "<capability>urn:ietf:params:netconf:base:1.0</capability>"
    if base11:
        caps += "<capability>urn:ietf:params:netconf:base:1.1</capability>"
    return ('<hello xmlns="%s"><capabilities>%s</capabilities></hello>]]>]]>'
            % (BASE, caps)).encode()


def run_session(ctx, incoming, tmp_path):
    async def main():
        datastores = Datastores(ctx)
        await datastores.start()
        server = NetconfServer(ctx, datastores, Users(tmp_path), tmp_path / "key", port=0)
        channel = Channel(incoming)
        session = Session(server, channel, "tester", "192.0.2.1")
        await session.run()
        return server, session, bytes(channel.out), channel.closed
    return asyncio.run(main())


def messages(out: bytes, chunked: bool):
    server_hello, _, rest = out.partition(b"]]>]]>")
    replies = []
    if chunked:
        while rest:
            assert rest.startswith(b"\n#")
            header, _, rest = rest[2:].partition(b"\n")
            size = int(header)
            replies.append(rest[:size])
            assert rest[size:size + 4] == b"\n##\n"
            rest = rest[size + 4:]
    else:
        replies = [m for m in rest.split(b"]]>]]>") if m]
    return etree.fromstring(server_hello), [etree.fromstring(r) for r in replies]


def rpc(message_id, body, chunked):
    message = ('<rpc xmlns="%s" message-id="%s" xmlns:x="urn:x" x:extra="kept">%s</rpc>'
               % (BASE, message_id, body)).encode()
    return b"\n#%d\n%s\n##\n" % (len(message), message) if chunked else message + b"]]>]]>"


def test_base10_client_gets_end_of_message_framing(ctx, tmp_path):
    incoming = hello(base11=False) + rpc(1, "<get-config><source><running/></source>"
                                           "</get-config>", False) + \
        rpc(2, "<close-session/>", False)
    server, session, out, closed = run_session(ctx, incoming, tmp_path)
    server_hello, replies = messages(out, chunked=False)
    assert server_hello.findtext("{%s}session-id" % BASE) == str(session.id)
    assert [r.get("message-id") for r in replies] == ["1", "2"]
    assert replies[0].get("{urn:x}extra") == "kept"          # rpc attributes come back
    assert replies[1].find("{%s}ok" % BASE) is not None
    assert closed and session.id not in server.sessions
    assert server.statistics.counters.in_rpcs == 2
    assert server.statistics.dropped_sessions == 0


def test_pipelined_rpcs_are_answered_in_order(ctx, tmp_path):
    incoming = hello() + b"".join(rpc(i, "<get-config><source><candidate/></source>"
                                         "</get-config>", True) for i in range(1, 6))
    _, _, out, _ = run_session(ctx, incoming, tmp_path)
    _, replies = messages(out, chunked=True)
    assert [r.get("message-id") for r in replies] == ["1", "2", "3", "4", "5"]


def test_rpc_level_errors_keep_the_session(ctx, tmp_path):
    incoming = hello() + b"\n#%d\n%s\n##\n" % (len(b'<rpc xmlns="%s"><get/></rpc>' % BASE.encode()),
                                               b'<rpc xmlns="%s"><get/></rpc>' % BASE.encode()) \
        + rpc(7, "<nope xmlns='urn:x'/>", True) + rpc(8, "<get/><get/>", True) \
        + rpc(9, "<get/>", True)
    server, _, out, _ = run_session(ctx, incoming, tmp_path)
    _, replies = messages(out, chunked=True)
    tags = [r.findtext("{%s}rpc-error/{%s}error-tag" % (BASE, BASE)) for r in replies]
    assert tags == ["missing-attribute", "operation-not-supported", "bad-element", None]
    assert server.statistics.counters.in_bad_rpcs == 2
    assert server.statistics.dropped_sessions == 1            # ended by the transport


def test_bad_hello_ends_the_session(ctx, tmp_path):
    server, _, out, closed = run_session(ctx, b"<rpc/>]]>]]>", tmp_path)
    assert closed and server.statistics.in_bad_hellos == 1
    assert out.count(b"]]>]]>") == 1                          # only the server hello


class CountingChannel(Channel):
    def __init__(self):
        super().__init__(b"")
        self.writes = []

    def write(self, data):
        self.writes.append(bytes(data))


def test_pushed_updates_are_written_together_once_no_rpc_is_answered(ctx, tmp_path):
    """YANG-push updates queued on a session (Session.push) wait while an RPC is answered,
    then go out in one write, in order; a reply flushes what is queued before it."""
    async def main():
        datastores = Datastores(ctx)
        await datastores.start()
        server = NetconfServer(ctx, datastores, Users(tmp_path), tmp_path / "key", port=0)
        channel = CountingChannel()
        session = Session(server, channel, "tester", "192.0.2.1")
        server.answering(1)                     # another session's commit, say
        assert all(session.push(b"<n>%d</n>" % i) for i in range(3))
        await asyncio.sleep(0.01)
        assert channel.writes == []             # not while the RPC is answered
        server.answering(-1)
        for _ in range(5):
            await asyncio.sleep(0)
        assert channel.writes == [b"<n>0</n>]]>]]><n>1</n>]]>]]><n>2</n>]]>]]>"]
        session.push(b"<n>3</n>")
        await session._send(b"<rpc-reply/>")    # a reply takes what waits with it
        assert channel.writes[1:] == [b"<n>3</n>]]>]]><rpc-reply/>]]>]]>"]
        assert session.info.counters.out_notifications == 4
    asyncio.run(main())


def test_a_session_that_does_not_read_its_updates_refuses_more(ctx, tmp_path):
    """The queue of pushed updates is bounded by notifications' queue-size: beyond it
    push() refuses (its subscription then ends the session) and queues nothing."""
    async def main():
        datastores = Datastores(ctx)
        await datastores.start()
        server = NetconfServer(ctx, datastores, Users(tmp_path), tmp_path / "key", port=0,
                               notification_queue=5)
        channel = CountingChannel()
        blocked = asyncio.get_running_loop().create_future()

        async def never_drains():
            await blocked
        channel.drain = never_drains
        session = Session(server, channel, "tester", "192.0.2.1")
        assert session.push(b"<n>0</n>")
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(channel.writes) == 1         # written, its drain never ends
        assert all(session.push(b"<n>%d</n>" % i) for i in range(1, 6))
        assert not session.push(b"<n>6</n>")
        assert len(session._outbox) == 5
        blocked.cancel()
    asyncio.run(main())
