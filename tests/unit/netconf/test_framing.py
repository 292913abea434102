"""RFC 6242 framing: end-of-message and chunked, and every way to break them."""

import pytest

from agent.netconf.framing import Framer, FramingError, encode


def pop_all(framer):
    out = []
    while (message := framer.pop()) is not None:
        out.append(message)
    return out


def test_end_of_message_split_anywhere():
    framer = Framer(1000)
    stream = b"<a/>]]>]]><b/>]]>]]><c"
    for i in range(len(stream)):
        framer.feed(stream[i:i + 1])
    assert pop_all(framer) == [b"<a/>", b"<b/>"]
    framer.feed(b"/>]]>]]>")
    assert pop_all(framer) == [b"<c/>"]


def test_switch_to_chunked_after_the_hello():
    framer = Framer(1000)
    framer.feed(b"<hello/>]]>]]>\n#4\n<rpc\n#3\n/>x\n##\n")
    assert framer.pop() == b"<hello/>"
    framer.use_chunked()
    assert framer.pop() == b"<rpc/>x"
    assert framer.pop() is None


def test_chunked_byte_by_byte():
    framer = Framer(1000)
    framer.use_chunked()
    stream = encode(b"<rpc/>", chunked=True) * 2
    got = []
    for i in range(len(stream)):
        framer.feed(stream[i:i + 1])
        got += pop_all(framer)
    assert got == [b"<rpc/>", b"<rpc/>"]


@pytest.mark.parametrize("stream", [
    b"x\n#1\na\n##\n",           # not a chunk header
    b"\n#0\n\n##\n",             # chunk-size starts at 1
    b"\n#01\na\n##\n",           # no leading zero
    b"\n#a\nb\n##\n",            # not a number
    b"\n##\n",                   # end of chunks without a chunk
    b"\n#99999999999\n",         # above 4294967295
    b"\n#1\nab\n##\n",           # chunk longer than announced
])
def test_chunked_violations(stream):
    framer = Framer(1000)
    framer.use_chunked()
    framer.feed(stream)
    with pytest.raises(FramingError):
        pop_all(framer)


def test_size_limit_in_both_framings():
    framer = Framer(10)
    framer.feed(b"x" * 20)
    with pytest.raises(FramingError):
        framer.pop()
    framer = Framer(10)
    framer.use_chunked()
    framer.feed(b"\n#6\nxxxxxx\n#6\nxx")
    with pytest.raises(FramingError):
        pop_all(framer)


def test_encode():
    assert encode(b"<a/>", chunked=False) == b"<a/>]]>]]>"
    assert encode(b"<a/>", chunked=True) == b"\n#4\n<a/>\n##\n"


def test_chunk_count_limit():
    framer = Framer(1000, max_chunks=3)
    framer.use_chunked()
    framer.feed(b"\n#1\na\n#1\nb\n#1\nc\n##\n")
    assert framer.pop() == b"abc"
    framer.feed(b"\n#1\na\n#1\nb\n#1\nc\n#1\nd\n##\n")
    with pytest.raises(FramingError, match="more than 3 chunks"):
        framer.pop()


def test_tiny_chunks_cost_no_more_memory_than_their_payload():
    import tracemalloc
    payload = 2 * 90_000                  # in 90,000 chunks: below the default limit
    framer = Framer(64 * 1024 * 1024)
    framer.use_chunked()
    stream = b"\n#2\nab" * (payload // 2)
    tracemalloc.start()
    try:
        for i in range(0, len(stream), 64 * 1024):
            framer.feed(stream[i:i + 64 * 1024])
            assert framer.pop() is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert framer.pending >= payload
    # the message so far plus one read's worth of framed bytes, not an object per chunk
    assert peak < 3 * payload, peak
    framer.feed(b"\n##\n")
    assert framer.pop() == b"ab" * (payload // 2)


def test_whitespace_between_chunked_messages_is_skipped():
    framer = Framer(1000)
    framer.use_chunked()
    framer.feed(b"\n#3\nabc\n##\n\n\r\n \n#2\nde\n##\n\n")
    assert pop_all(framer) == [b"abc", b"de"]
    assert framer.pending == 0                   # a trailing newline is no message
    framer.feed(b" x")
    with pytest.raises(FramingError):
        framer.pop()
