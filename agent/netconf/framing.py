"""RFC 6242 message framing: end-of-message (base:1.0) and chunked (base:1.1).

A Framer holds what a session has received and hands out complete messages one at a
time, so that the session can switch from end-of-message to chunked framing right
after the hellos. Any framing violation or a message above the size limit raises
FramingError; the session is then closed (RFC 6242 section 4.2).
"""

EOM = b"]]>]]>"
MAX_CHUNK = 4294967295


class FramingError(Exception):
    """The peer broke the framing rules or sent a message that is too big."""


class Framer:
    """Splits a session's byte stream into messages."""

    def __init__(self, max_message_size: int):
        self.max_message_size = max_message_size
        self.chunked = False
        self._buffer = bytearray()
        self._scan = 0                 # where to resume looking for ]]>]]>
        self._chunks: list[bytes] = []
        self._size = 0                 # size of the chunks of the current message

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

    def _pop_chunked(self) -> bytes | None:
        buffer = self._buffer
        while True:
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
                message = b"".join(self._chunks)
                self._chunks, self._size = [], 0
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
            if self._size + size > self.max_message_size:
                raise FramingError("message larger than %d bytes" % self.max_message_size)
            if len(buffer) < end + 1 + size:
                return None
            self._chunks.append(bytes(buffer[end + 1:end + 1 + size]))
            self._size += size
            del buffer[:end + 1 + size]

    @property
    def pending(self) -> int:
        """Bytes received and not yet handed out."""
        return len(self._buffer) + self._size


def encode(message: bytes, chunked: bool) -> bytes:
    if chunked:
        return b"\n#%d\n%s\n##\n" % (len(message), message)
    return message + EOM
