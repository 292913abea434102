"""RFC 6242 message framing: end-of-message (base:1.0) and chunked (base:1.1).

A Framer holds what a session has received and hands out complete messages one at a
time, so that the session can switch from end-of-message to chunked framing right
after the hellos. Any framing violation, a message above the size limit or one cut in
more chunks than allowed raises FramingError; the session is then closed (RFC 6242
section 4.2). A chunked message is assembled in one buffer as its chunks arrive, so
that many tiny chunks cost no more memory than one big chunk (and the chunk limit
bounds the work per message).
"""

EOM = b"]]>]]>"
_BLANK = b" \t\r\n"
MAX_CHUNK = 4294967295


class FramingError(Exception):
    """The peer broke the framing rules or sent a message that is too big."""


class Framer:
    """Splits a session's byte stream into messages."""

    def __init__(self, max_message_size: int, max_chunks: int = 100_000):
        self.max_message_size = max_message_size
        self.max_chunks = max_chunks
        self.chunked = False
        self._buffer = bytearray()
        self._scan = 0                 # where to resume looking for ]]>]]>
        self._message = bytearray()    # the chunks of the current message, joined
        self._chunks = 0               # how many

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def use_chunked(self) -> None:
        self.chunked = True

    def pop(self) -> bytes | None:
        """The next complete message, or None until more bytes arrive."""
        return self._pop_chunked() if self.chunked else self._pop_eom()

    def _pop_eom(self) -> bytes | None:
        buffer = self._buffer
        index = buffer.find(EOM, self._scan)
        if index < 0:
            if len(buffer) > self.max_message_size + len(EOM):
                raise FramingError("message larger than %d bytes" % self.max_message_size)
            self._scan = max(0, len(buffer) - len(EOM) + 1)
            return None
        if index > self.max_message_size:
            raise FramingError("message larger than %d bytes" % self.max_message_size)
        message = bytes(buffer[:index])
        del buffer[:index + len(EOM)]
        self._scan = 0
        return message

    def _skip_blank_between_messages(self) -> None:
        """Whitespace between two chunked messages (scrapli-netconf sends a newline
        after its last one) is not a framing error: drop it, up to the '\n' of a
        chunk header that may follow."""
        buffer = self._buffer
        if self._chunks or not buffer or buffer[0] not in _BLANK or buffer.startswith(b"\n#"):
            return
        blank = len(buffer) - len(buffer.lstrip(_BLANK))
        if buffer[blank - 1:blank] == b"\n" and buffer[blank:blank + 1] in (b"#", b""):
            blank -= 1                 # keep what is (or may be) a header's own newline
        del buffer[:blank]

    def _pop_chunked(self) -> bytes | None:
        buffer = self._buffer
        while True:
            self._skip_blank_between_messages()
            if len(buffer) < 4:
                if buffer and not b"\n#".startswith(bytes(buffer[:2])):
                    raise FramingError("expected a chunk header")
                return None
            if buffer[0:2] != b"\n#":
                raise FramingError("expected a chunk header")
            if buffer[2:4] == b"#\n":
                if not self._chunks:
                    raise FramingError("end of chunks before any chunk")
                del buffer[:4]
                message = bytes(self._message)
                self._message, self._chunks = bytearray(), 0
                return message
            end = buffer.find(b"\n", 2, 2 + 11)
            if end < 0:
                if len(buffer) >= 2 + 11:
                    raise FramingError("chunk size too long")
                return None
            digits = bytes(buffer[2:end])
            if not digits.isdigit() or digits[:1] == b"0":
                raise FramingError("bad chunk size %r" % digits[:12])
            size = int(digits)
            if size > MAX_CHUNK:
                raise FramingError("chunk size above 4294967295")
            if len(self._message) + size > self.max_message_size:
                raise FramingError("message larger than %d bytes" % self.max_message_size)
            if self._chunks >= self.max_chunks:
                raise FramingError("message in more than %d chunks" % self.max_chunks)
            if len(buffer) < end + 1 + size:
                return None
            self._message += memoryview(buffer)[end + 1:end + 1 + size]
            self._chunks += 1
            del buffer[:end + 1 + size]

    @property
    def pending(self) -> int:
        """Bytes received and not yet handed out (whitespace after the last message
        aside)."""
        if not self._message and not self._buffer.strip(_BLANK):
            return 0
        return len(self._buffer) + len(self._message)


def encode(message: bytes, chunked: bool) -> bytes:
    if chunked:
        return b"\n#%d\n%s\n##\n" % (len(message), message)
    return message + EOM
