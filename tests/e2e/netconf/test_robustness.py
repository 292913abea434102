"""Hostile or broken clients close their own session only: truncated chunks, bad
chunk headers, a 100 MB message, an XML bomb, invalid UTF-8, a client that never
reads; and 50 sessions reading while another edits and commits."""

import threading

import ncclient.transport.session
from lxml import etree

from .conftest import BASE, NS, config, connect

T = "{%s}" % NS


def still_serving(server):
    with connect(server) as m:
        m.edit_config(target="candidate", config=config("<name>alive</name>"))
        m.discard_changes()
        return m.get_config(source="running") is not None


def test_truncated_chunk(server, raw):
    session = raw()
    session.send(b"\n#500\n<rpc xmlns='%s' message-id='1'><get/>" % BASE.encode())
    session.close()                                      # gone in the middle of a chunk
    bad = raw()
    bad.send(b"\n#zz\n<rpc/>\n##\n")                     # not a chunk header
    assert bad.closed()
    assert still_serving(server)


def test_100_mb_message(server, raw):
    session = raw()
    body = b"<name>" + b"x" * (1024 * 1024) + b"</name>"
    chunk = b"\n#%d\n%s" % (len(body), body)
    session.send(b"\n#%d\n<rpc xmlns='%s' message-id='1'><edit-config><target><candidate/>"
                 b"</target><config><top xmlns='%s'>" % (
                     len(b"<rpc xmlns='%s' message-id='1'><edit-config><target><candidate/>"
                         b"</target><config><top xmlns='%s'>" % (BASE.encode(), NS.encode())),
                     BASE.encode(), NS.encode()))
    sent = 0
    try:
        while sent < 100 * 1024 * 1024:
            session.send(chunk)
            sent += len(body)
    except OSError:
        pass                                             # closed above max-message-size
    assert session.closed()
    assert still_serving(server)


def test_xml_bomb(server, raw):
    session = raw()
    bomb = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                       for i in range(1, 10))
            + b']><rpc xmlns="%s" message-id="1"><get><filter><top xmlns="%s"><name>&lol9;</name>'
            b'</top></filter></get></rpc>' % (BASE.encode(), NS.encode()))
    session.send(b"\n#%d\n%s\n##\n" % (len(bomb), bomb))
    reply = etree.fromstring(session.read_chunked())
    assert reply.findtext("{%s}rpc-error/{%s}error-tag" % (BASE, BASE)) == "malformed-message"
    assert session.closed()
    external = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                b'<rpc xmlns="%s" message-id="1"><get/></rpc>' % BASE.encode())
    session = raw()
    session.send(b"\n#%d\n%s\n##\n" % (len(external), external))
    assert b"root:" not in session.read_chunked()
    assert session.closed()
    assert still_serving(server)


def test_invalid_utf8(server, raw):
    session = raw()
    message = b'<rpc xmlns="%s" message-id="1"><get><filter><top xmlns="%s"><name>\xff\xfe' \
              b'</name></top></filter></get></rpc>' % (BASE.encode(), NS.encode())
    session.send(b"\n#%d\n%s\n##\n" % (len(message), message))
    reply = etree.fromstring(session.read_chunked())
    assert reply.findtext("{%s}rpc-error/{%s}error-tag" % (BASE, BASE)) == "malformed-message"
    assert session.closed()
    assert still_serving(server)


def test_bad_hellos(server, raw):
    no_base = raw(hello=False)
    no_base.send(b'<hello xmlns="%s"><capabilities><capability>urn:x</capability>'
                 b'</capabilities></hello>]]>]]>' % BASE.encode())
    assert no_base.closed()
    with_id = raw(hello=False)
    with_id.send(b'<hello xmlns="%s"><capabilities><capability>urn:ietf:params:netconf:base:1.0'
                 b'</capability></capabilities><session-id>4</session-id></hello>]]>]]>'
                 % BASE.encode())
    assert with_id.closed()
    not_xml = raw(hello=False)
    not_xml.send(b"hello?]]>]]>")
    assert not_xml.closed()
    assert still_serving(server)


def test_a_client_that_never_reads_blocks_nobody(server, raw):
    with connect(server) as m:
        items = "".join("<item><name>item-%04d</name><value>%d</value></item>" % (i, i)
                        for i in range(2000))
        m.edit_config(target="candidate", config=config(items))
        m.commit()
    slow = raw()
    request = b"<rpc xmlns='%s' message-id='1'><get-config><source><running/></source>" \
              b"</get-config></rpc>" % BASE.encode()
    for _ in range(100):                       # ~10 MB of replies it never reads
        slow.send(b"\n#%d\n%s\n##\n" % (len(request), request))
    with connect(server) as m:
        for _ in range(5):
            assert len(m.get_config(source="running").data_ele.findall(
                "%stop/%sitem" % (T, T))) == 2000


def test_50_readers_and_one_writer(server, monkeypatch):
    # 50 client threads polling every millisecond would starve this process's server
    # thread of the GIL; they poll every 20 ms here
    monkeypatch.setattr(ncclient.transport.session, "TICK", 0.02)
    with connect(server) as m:
        m.edit_config(target="candidate", config=config(
            "".join("<item><name>i%d</name><value>0</value></item>" % i for i in range(50))))
        m.commit()
    errors = []
    done = threading.Event()

    def reader():
        try:
            with connect(server) as r:
                while not done.is_set():
                    data = r.get(filter=("subtree", '<top xmlns="%s"/>' % NS)).data_ele
                    values = {e.text for e in data.iterfind("%stop/%sitem/%svalue" % (T, T, T))}
                    # a commit is all or nothing: every item has the same value
                    if len(values) != 1 or len(data.findall("%stop/%sitem" % (T, T))) != 50:
                        errors.append("inconsistent read: %s" % sorted(values))
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))

    threads = [threading.Thread(target=reader) for _ in range(50)]
    for t in threads:
        t.start()
    try:
        with connect(server) as w:
            for round_ in range(1, 11):
                w.edit_config(target="candidate", config=config(
                    "".join("<item><name>i%d</name><value>%d</value></item>" % (i, round_)
                            for i in range(50))))
                w.commit()
    finally:
        done.set()
        for t in threads:
            t.join(120)
    assert errors == []
    with connect(server) as m:
        values = {e.text for e in m.get_config(source="running").data_ele.iterfind(
            "%stop/%sitem/%svalue" % (T, T, T))}
        assert values == {"10"}


def test_reads_during_a_commit_see_the_old_running(server):
    with connect(server) as m:
        m.edit_config(target="candidate", config=config("<name>old</name>"))
        m.commit()
        m.edit_config(target="candidate", config=config("<name>new</name>"))
    server.engine.gate = threading.Event()
    server.engine.entered.clear()
    committed = []

    def commit():
        with connect(server) as c:
            c.commit()
            committed.append(True)
    committer = threading.Thread(target=commit)
    committer.start()
    try:
        assert server.engine.entered.wait(60)        # the engine is applying
        with connect(server) as reader:
            name = "%stop/%sname" % (T, T)
            assert reader.get_config(source="running").data_ele.findtext(name) == "old"
            assert reader.get(filter=("subtree", '<top xmlns="%s"/>' % NS)) \
                .data_ele.findtext(name) == "old"
    finally:
        server.engine.gate.set()
        committer.join(60)
    assert committed == [True]
    with connect(server) as m:
        assert m.get_config(source="running").data_ele.findtext("%stop/%sname" % (T, T)) == "new"


def test_closed_tells_an_open_session_from_a_closed_one(raw):
    """The check the tests above rely on: a session the server keeps is not closed()."""
    session = raw()
    assert not session.closed(timeout=1)
    session.send(b"\n#zz\n<rpc/>\n##\n")
    assert session.closed()
