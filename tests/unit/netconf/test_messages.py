"""The message parser: no DTD ever reaches libxml2 (whatever it names, one answer),
leading whitespace and a byte order mark are skipped, element, depth and attribute
limits hold before memory is spent, and the reply envelope echoes the rpc's attributes
as the client wrote them, in time linear in their number."""

import os
import threading
import time

import pytest
from lxml import etree

from agent.netconf import messages
from agent.netconf.messages import (NO_DTD, Limits, MalformedMessage, MessageTooBig, parse,
                                    reply_envelope)

BASE = "urn:ietf:params:xml:ns:netconf:base:1.0"
RPC = b'<rpc xmlns="%s" message-id="1"><get/></rpc>' % BASE.encode()


def refusal(message: bytes) -> str:
    with pytest.raises(MalformedMessage) as caught:
        parse(message)
    return str(caught.value)


def doctypes(url: str) -> list[bytes]:
    """Every way a document type declaration can name url."""
    u = url.encode()
    return [
        b'<!DOCTYPE rpc [<!ENTITY % p SYSTEM "' + u + b'"> %p;]>' + RPC,
        b'<!DOCTYPE rpc SYSTEM "' + u + b'">' + RPC,
        b'<!DOCTYPE rpc PUBLIC "-//x//y" "' + u + b'">' + RPC,
        b'<!DOCTYPE rpc [<!ENTITY e SYSTEM "' + u + b'">]>' + RPC.replace(b"<get/>", b"&e;"),
        b'<?xml version="1.0"?>\n<!-- c --><?pi x?>\n<!DOCTYPE rpc SYSTEM "' + u + b'">' + RPC,
        b'\n \xef\xbb\xbf<?xml version="1.0"?><!DOCTYPE rpc SYSTEM "' + u + b'">' + RPC,
        # UTF-16 would hide the declaration from a byte scan: the parser is UTF-8 only
        ('<!DOCTYPE rpc SYSTEM "%s">' % url).encode("utf-16") + RPC.decode().encode("utf-16")[2:],
    ]


def test_a_doctype_gets_one_answer_whatever_it_names(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    secret = tmp_path / "secret"
    secret.write_text("root:$6$salt$hash:19000:0:99999:7:::\n")
    fd = os.open(secret, os.O_RDONLY)
    answers = {}
    done = threading.Event()

    def attack():
        for url in ("file:///etc/shadow", "file://%s" % secret, "file:///proc/self/fd/%d" % fd,
                    "file://%s" % fifo, "file:///nonexistent", "http://192.0.2.1/x.dtd",
                    "/etc/passwd"):
            answers[url] = {refusal(m) for m in doctypes(url)}
        done.set()
    try:
        worker = threading.Thread(target=attack, daemon=True)
        worker.start()
        # reading the FIFO would block until someone writes to it
        assert done.wait(10), "the parser opened the FIFO"
    finally:
        os.close(fd)
        if not done.is_set():
            with open(fifo, "wb") as unblock:       # let the thread go
                unblock.write(b"x")
    assert len(answers) == 7
    for url, seen in answers.items():
        # the UTF-16 variant fails before any DTD is looked at (not UTF-8)
        assert NO_DTD in seen and len(seen - {NO_DTD}) <= 1, (url, seen)
        assert not any("shadow" in s or "secret" in s or "line 1" in s and "DOCTYPE" in s
                       for s in seen - {NO_DTD}), (url, seen)
    assert len({frozenset(s) for s in answers.values()}) == 1, answers


def test_no_resolver_is_ever_asked():
    class Spy(etree.Resolver):
        asked = []

        def resolve(self, url, public_id, context):
            self.asked.append(url)
    parser = messages.parser()
    parser.resolvers.add(Spy())
    for message in doctypes("file:///etc/passwd"):
        with pytest.raises(MalformedMessage):
            parse(message, parser)
    assert Spy.asked == []


def test_doctype_markup_inside_content_is_just_text_or_an_error():
    dtd = b'<!DOCTYPE x [<!ENTITY % p SYSTEM "file:///etc/shadow"> %p;]>'
    assert parse(b"<rpc><![CDATA[" + dtd + b"]]></rpc>").text.startswith("<!DOCTYPE")
    for message in (b"<rpc/>" + dtd, b"<rpc>" + dtd + b"</rpc>"):
        assert "shadow" not in refusal(message)


@pytest.mark.parametrize("lead", [b"\n", b"  \r\n\t", b"\xef\xbb\xbf", b"\xef\xbb\xbf\n",
                                  b"\n\xef\xbb\xbf"])
def test_leading_whitespace_and_bom_before_the_declaration(lead):
    root = parse(lead + b'<?xml version="1.0" encoding="UTF-8"?>\n' + RPC)
    assert root.tag == "{%s}rpc" % BASE


def test_element_limit_stops_before_building_the_tree():
    limits = Limits(max_elements=1000)
    parse(b"<r>" + b"<a/>" * 999 + b"</r>", limits=limits)
    with pytest.raises(MessageTooBig):
        parse(b"<r>" + b"<a/>" * 1000 + b"</r>", limits=limits)
    # '<' in CDATA is not an element: counted exactly when the quick bound is exceeded
    parse(b"<r><![CDATA[" + b"<" * 5000 + b"]]></r>", limits=limits)


def test_depth_and_attribute_limits():
    limits = Limits(max_depth=10, max_attributes=5)
    parse(b"<a>" * 10 + b"</a>" * 10, limits=limits)
    with pytest.raises(MessageTooBig):
        parse(b"<a>" * 11 + b"</a>" * 11, limits=limits)
    attrs = b" ".join(b'a%d="v"' % i for i in range(5))
    parse(b"<r><x %s/></r>" % attrs, limits=limits)
    with pytest.raises(MessageTooBig):
        parse(b'<r><x %s b="1"/></r>' % attrs, limits=limits)


def test_reply_envelope_echoes_a_qualified_message_id():
    rpc = parse(b'<nc:rpc xmlns:nc="%s" nc:message-id="42" xmlns:x="urn:x" x:tag="a&amp;b">'
                b'<nc:get/></nc:rpc>' % BASE.encode())
    head, tail = reply_envelope(rpc)
    reply = etree.fromstring(head + b"<ok/>" + tail)
    assert reply.get("{%s}message-id" % BASE) == "42"
    assert reply.get("{urn:x}tag") == "a&b"
    assert b"nc:message-id=" in head


def test_reply_envelope_is_linear_in_attributes():
    many = b" ".join(b'a%d="%d"' % (i, i) for i in range(40_000))
    rpc = parse(b'<rpc xmlns="%s" message-id="1" %s/>' % (BASE.encode(), many),
                limits=Limits(max_attributes=100_000))
    started = time.perf_counter()
    head, _ = reply_envelope(rpc)
    assert time.perf_counter() - started < 1.0          # was 24 s
    assert head.count(b'="') == 40_001 + 1               # + the xmlns
