"""One NETCONF session: hellos, framing, RPCs in order, replies, notifications.

Lifecycle:
1. The server sends its <hello> (capabilities, session-id) as soon as the session opens.
2. The client's <hello> must arrive within hello-timeout, carry base:1.0 or base:1.1 and
   no session-id; chunked framing is used from then on when both sides speak base:1.1.
3. RPCs are handled one at a time, replies sent in order. A framing error, a message
   above max-message-size or a message that is not XML closes this session only (for
   a base:1.1 session a malformed-message rpc-error is sent first), with a log line.
   A well-formed message beyond the element, depth or attribute limits gets a too-big
   rpc-error and the session goes on. Messages above a few kilobytes are parsed in a
   worker thread (lxml lets go of the interpreter while it parses), so that a big
   message delays other sessions by no more than its share.
4. When the session ends (close-session, kill-session, idle timeout, transport closed)
   the datastores release what it held (locks, candidate changes under its lock, its
   confirmed commit unless persisted).
netconf-session-start is published once the hellos are exchanged, netconf-session-end
(with the termination reason) when it ends (agent/netconf/notifications.py); a
subscription (create-subscription) sends its notifications from a task of its own,
between the replies (interleave).
"""

import asyncio
import logging
from datetime import datetime, timezone

from lxml import etree

from . import messages
from .capabilities import BASE_1_0, BASE_1_1
from .errors import RpcError, convert
from .framing import Framer, FramingError, encode
from .messages import BASE_NS, MalformedMessage, MessageTooBig, described, elements, qname
from .monitoring import SessionInfo
from .operations import OPERATIONS, operation_key, unsupported

LOG = logging.getLogger(__name__)


_MESSAGE_ID = "{%s}message-id" % BASE_NS


class _Close(Exception):
    """End the session after what was sent."""


class Session:
    """A session over a channel: async read() -> bytes (b'' at the end), write(bytes),
    async drain(), close()."""

    def __init__(self, server, channel, username: str, peer: str = ""):
        self.server = server
        self.channel = channel
        self.id = server.new_session_id()
        self.username = username
        self.info = SessionInfo(self.id, username, peer, datetime.now(timezone.utc))
        self.framer = Framer(server.max_message_size, server.max_chunks)
        self.chunked = False
        self.close_after_reply = False
        self.subscription = None         # notifications.Subscription
        self.task: asyncio.Task | None = None
        self.finished = asyncio.Event()
        self.killed = False
        self.end_reason: str | None = None   # RFC 6470 termination-reason, once known
        self.killed_by: int | None = None
        self.started = False                 # the hellos were exchanged
        self.handling = False                # an RPC is being answered
        self.after_reply: list = []          # events its RPC raised, published after the reply
        self.after_reply_calls: list = []    # callables its RPC left to run after the reply
        self._parser = messages.parser()
        self._large = False            # the request being handled is large
        self._write = asyncio.Lock()
        self._outbox: list = []              # framed messages not yet written, in order
        self._pushed = 0                     # of which queued by push()

    # -- lifecycle ------------------------------------------------------------------
    async def run(self) -> None:
        self.task = asyncio.current_task()
        server = self.server
        server.sessions[self.id] = self
        server.statistics.in_sessions += 1
        clean = False
        try:
            await self._send(self._hello(), chunked=False)
            hello = await asyncio.wait_for(self._receive(), server.hello_timeout or None)
            if hello is None or not await self._accept_hello(hello):
                server.statistics.in_bad_hellos += 1
                self.end_reason = "bad-hello" if hello is not None else "dropped"
                return
            self.started = True
            server.notifications.session_started(self)
            LOG.info("session %d: %s from %s, %s framing", self.id, self.username,
                     self.info.source_host or "?", "chunked" if self.chunked else "EOM")
            while True:
                if server.idle_timeout:
                    message = await asyncio.wait_for(self._receive(), server.idle_timeout)
                else:
                    message = await self._receive()
                if message is None:
                    if self.framer.pending:
                        LOG.warning("session %d: closed in the middle of a message", self.id)
                    self.end_reason = self.end_reason or "dropped"
                    break
                self.handling = True
                server.answering(1)
                try:
                    await self._handle(message)
                finally:
                    self.handling = False
                    server.answering(-1)
                    self._after_reply()
                if len(message) >= messages.RELEASE_AFTER:
                    del message
                    await messages.in_thread(messages.release_memory)
                if self.close_after_reply:
                    clean = True
                    self.end_reason = "closed"
                    break
        except _Close:
            pass
        except FramingError as exc:
            LOG.warning("session %d: framing error (%s): closing it", self.id, str(exc))
        except asyncio.TimeoutError:
            LOG.info("session %d: no message in time: closing it", self.id)
            self.end_reason = "timeout"
        except asyncio.CancelledError:
            if not self.killed:
                raise
        except (ConnectionError, OSError, EOFError) as exc:
            LOG.info("session %d: transport closed (%s)", self.id, exc)
            self.end_reason = self.end_reason or "dropped"
        except Exception:  # noqa: BLE001 - one broken session must not affect the others
            LOG.exception("session %d failed", self.id)
        finally:
            await asyncio.shield(self._end(clean))

    async def _end(self, clean: bool) -> None:
        server = self.server
        self._outbox.clear()
        if self.subscription is not None:
            self.subscription.stop()
        server.subscriptions.session_ended(self)
        server.sessions.pop(self.id, None)
        if not clean:
            server.statistics.dropped_sessions += 1
        try:
            await server.datastores.session_ended(self.id)
        except Exception:  # noqa: BLE001
            LOG.exception("session %d: releasing its datastore state failed", self.id)
        try:
            self.channel.close()
        except Exception:  # noqa: BLE001
            pass
        reason = self.end_reason or "other"
        LOG.info("session %d ended (%s)", self.id, reason)
        if self.started or reason in ("bad-hello", "timeout"):
            server.notifications.session_ended(self, reason, self.killed_by)
        self.finished.set()

    async def terminate(self, reason: str = "killed", killed_by: int | None = None) -> None:
        """kill-session (or the server): abort what the session does and end it."""
        self.killed = True
        if self.end_reason is None:
            self.end_reason = reason
            self.killed_by = killed_by
        if self.task is not None and not self.task.done():
            self.task.cancel()
        await self.finished.wait()

    def _after_reply(self) -> None:
        """Publish what this session's last RPC raised, now that its reply is out: the
        other subscribers' notifications are sent after it, not before."""
        held, self.after_reply = self.after_reply, []
        for event in held:
            self.server.bus.publish(event)
        calls, self.after_reply_calls = self.after_reply_calls, []
        for call in calls:
            call()

    # -- I/O ------------------------------------------------------------------------
    async def _receive(self) -> bytes | None:
        while True:
            message = self.framer.pop()
            if message is not None:
                return message
            data = await self.channel.read()
            if not data:
                return None
            self.framer.feed(data)

    async def _send(self, message: bytes, chunked: bool | None = None) -> None:
        """Write message now, after what is queued before it (in the same write)."""
        self._outbox.append(encode(message, self.chunked if chunked is None else chunked))
        await self._flush()

    async def _flush(self) -> None:
        """Write what is queued, in one write: one SSH packet for several messages when
        they fit (each packet costs its encryption and a system call); returns once it
        is written (drained)."""
        async with self._write:
            if self._outbox:
                data = b"".join(self._outbox) if len(self._outbox) > 1 else self._outbox[0]
                self._outbox.clear()
                self._pushed = 0
                self.channel.write(data)
                await self.channel.drain()

    def push(self, notification: bytes) -> bool:
        """Queue a notification without waiting (YANG-push updates); the server's pusher
        has the session write what is queued in one go (server.push_ready), sooner with
        a reply or another notification. False, and nothing queued, when queue-size of
        them wait while a write waits for the client to read: it does not read them
        (those that only wait for the pusher's next round are not its fault)."""
        if self._pushed >= self.server.notifications.queue_size and self._write.locked():
            return False
        self.info.counters.out_notifications += 1
        self.server.statistics.counters.out_notifications += 1
        self._outbox.append(encode(notification, self.chunked))
        self._pushed += 1
        if self._pushed == 1:
            self.server.push_ready(self)
        return True

    async def flush_pushed(self) -> None:
        """Write what push() queued (the server's pusher calls this in a task)."""
        try:
            await self._flush()
        except (ConnectionError, OSError) as exc:
            LOG.info("session %d: updates not sent (%s)", self.id, exc)

    @property
    def subscribed(self) -> bool:
        return self.subscription is not None

    async def notify(self, notification: bytes) -> None:
        """Send a <notification> (RFC 5277; its subscription calls this), after those
        queued by push(), and wait until it is written."""
        self.info.counters.out_notifications += 1
        self.server.statistics.counters.out_notifications += 1
        await self._send(notification)

    # -- hellos ---------------------------------------------------------------------
    def _hello(self) -> bytes:
        hello = etree.Element("{%s}hello" % BASE_NS, nsmap={None: BASE_NS})
        caps = etree.SubElement(hello, "{%s}capabilities" % BASE_NS)
        for cap in self.server.capabilities:
            etree.SubElement(caps, "{%s}capability" % BASE_NS).text = cap
        etree.SubElement(hello, "{%s}session-id" % BASE_NS).text = str(self.id)
        return etree.tostring(hello, xml_declaration=True, encoding="UTF-8")

    async def _parse(self, message: bytes):
        self._large = len(message) >= messages.INLINE_PARSE
        if not self._large:
            return messages.parse(message, self._parser, self.server.limits)
        return await messages.parse_in_thread(message, self.server.limits)

    async def prepare(self, function, *args):
        """function(*args): work on the request alone (a filter's selections, an edit's
        checks), in a worker thread when the request is large, so that it does not hold
        the event loop that every other session needs."""
        if not self._large:
            return function(*args)
        return await messages.in_thread(function, *args)

    async def _accept_hello(self, message: bytes) -> bool:
        try:
            root = await self._parse(message)
        except (MalformedMessage, MessageTooBig) as exc:
            LOG.warning("session %d: the client hello is not XML (%s): closing", self.id, str(exc))
            return False
        if qname(root) != (BASE_NS, "hello"):
            LOG.warning("session %d: expected a hello in namespace %s, got %s: closing",
                        self.id, BASE_NS, described(root))
            return False
        if root.find("{%s}session-id" % BASE_NS) is not None:
            LOG.warning("session %d: the client hello has a session-id: closing", self.id)
            return False
        caps = {(c.text or "").strip() for c in root.iterfind(
            "{%s}capabilities/{%s}capability" % (BASE_NS, BASE_NS))}
        if BASE_1_1 in caps:
            self.chunked = True
            self.framer.use_chunked()
        elif BASE_1_0 not in caps:
            LOG.warning("session %d: the client supports neither base:1.0 nor base:1.1: "
                        "closing", self.id)
            return False
        return True

    # -- RPCs -----------------------------------------------------------------------
    async def _error_reply(self, errors, rpc=None) -> None:
        head, tail = messages.reply_envelope(rpc)
        self.info.counters.out_rpc_errors += 1
        self.server.statistics.counters.out_rpc_errors += 1
        body = b"".join(etree.tostring(e.element(self.server.prefix_of_module)) for e in errors)
        await self._send(head + body + tail)

    def _bad_rpc(self) -> None:
        self.info.counters.in_bad_rpcs += 1
        self.server.statistics.counters.in_bad_rpcs += 1

    def _exec_denied(self, op) -> RpcError | None:
        """NACM's exec check of an operation (RFC 8341 3.4.4): access-denied or None."""
        access = self.server.access(self)
        if access is None:
            return None
        ns, name = operation_key(op)
        module = self.server.module_of_namespace(ns)
        if module is None or access.may_exec(module, name):
            return None
        self.server.nacm.counters.denied_operations += 1
        return RpcError("access-denied", "access denied: user %s may not run %s"
                        % (self.username, name), error_type="protocol")

    async def _handle(self, message: bytes) -> None:
        try:
            root = await self._parse(message)
        except MessageTooBig as exc:
            self._bad_rpc()
            # The text, not the exception: a record is kept as long as a handler wants
            # (a buffering one, pytest's capture), and the exception's traceback holds
            # the frames that hold the whole message (one 40 MB bomb each).
            LOG.warning("session %d: message refused: %s", self.id, str(exc))
            await self._error_reply([RpcError("too-big", "the message holds %s" % exc,
                                              error_type="rpc")])
            return
        except MalformedMessage as exc:
            self._bad_rpc()
            LOG.warning("session %d: message is not well-formed XML (%s): closing it",
                        self.id, str(exc))
            if self.chunked:
                await self._error_reply([RpcError("malformed-message", str(exc),
                                                  error_type="rpc")])
            raise _Close() from None
        # Lenient where it is unambiguous: an rpc (and its operation, if a base one) in
        # no namespace, a message-id qualified with the base namespace.
        if qname(root) not in ((BASE_NS, "rpc"), (None, "rpc")):
            name = qname(root)[1]
            self._bad_rpc()
            await self._error_reply([RpcError(
                "unknown-element", "expected an rpc element in namespace %s, got %s"
                % (BASE_NS, described(root)), error_type="rpc",
                info=(("bad-element", name),))])
            return
        if root.get("message-id") is None and root.get(_MESSAGE_ID) is None:
            self._bad_rpc()
            await self._error_reply([RpcError(
                "missing-attribute", "the rpc has no message-id attribute (expected "
                "message-id, unqualified or in namespace %s)" % BASE_NS, error_type="rpc",
                info=(("bad-attribute", "message-id"), ("bad-element", "rpc")))], root)
            return
        operations = elements(root)
        if len(operations) != 1:
            self._bad_rpc()
            await self._error_reply([RpcError(
                "missing-element" if not operations else "bad-element",
                "an rpc holds exactly one operation element, not %d" % len(operations),
                error_type="rpc", info=(("bad-element", "rpc"),))], root)
            return
        op = operations[0]
        self.info.counters.in_rpcs += 1
        self.server.statistics.counters.in_rpcs += 1
        handler = OPERATIONS.get(operation_key(op))
        if handler is None:
            await self._error_reply([unsupported(op)], root)
            return
        denied = self._exec_denied(op)
        if denied is not None:
            await self._error_reply([denied], root)
            return
        try:
            content = await handler(self, op)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes rpc-errors
            errors = convert(exc)
            if len(errors) == 1 and errors[0].message and \
                    errors[0].message.startswith("internal error"):
                LOG.exception("session %d: %s failed", self.id, etree.QName(op).localname)
            await self._error_reply(errors, root)
            return
        head, tail = messages.reply_envelope(root)
        await self._send(head + content + tail)
