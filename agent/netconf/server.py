"""The NETCONF server: SSH (asyncssh, subsystem netconf), authentication, sessions.

Lifecycle:
1. NetconfServer(ctx, datastores, users, host_key_path, ...): nothing listens yet.
2. await start(): the host key is read or generated, the listener bound (port 0: the
   OS picks one; see .port).
3. Each SSH connection that authenticates (public key from the user's authorized_keys,
   or password when enabled) and opens the netconf subsystem becomes a Session; other
   channel requests (shell, exec, other subsystems, forwarding) are refused. A PTY
   request is granted and ignored (ssh -tt, scrapli-netconf): no line discipline or
   echo touches the bytes. Failed logins are logged and slowed down per source
   (logins.LoginThrottle); connections still authenticating, and sessions in total and
   per user, are limited: a connection or session beyond a limit is closed at once.
4. await stop(): stops listening and ends every session (which releases their locks).
Notifications (agent/netconf/notifications.py) come from the agent's event bus; the
server publishes its own (configuration changes, sessions, confirmed commits) there.
"""

import asyncio
import logging
import time
from pathlib import Path

import asyncssh

from ..datastore.schema import schema_index
from ..publish import Bus
from . import monitoring
from .capabilities import content_id, server_capabilities
from .logins import LoginThrottle
from .messages import DEFAULT_LIMITS, Limits
from .nacm import Nacm
from .modules import Schemas
from .notifications import Notifications
from .session import Session
from .subscribed import Subscriptions
from .users import Users, host_key, valid_name

LOG = logging.getLogger(__name__)

SUBSYSTEM = "netconf"
READ_SIZE = 256 * 1024


class _Channel:
    """A Session's view of an asyncssh subsystem process (bytes in, bytes out)."""

    def __init__(self, process):
        self.process = process

    async def read(self) -> bytes:
        """The next bytes; b"" when the client is gone."""
        try:
            return await self.process.stdin.read(READ_SIZE)
        except (asyncssh.Error, asyncssh.BreakReceived, asyncssh.SignalReceived,
                asyncssh.TerminalSizeChanged):
            return b""

    def write(self, data: bytes) -> None:
        try:
            self.process.stdout.write(data)
        except asyncssh.Error as exc:
            raise ConnectionError(str(exc)) from None

    async def drain(self) -> None:
        try:
            await self.process.stdout.drain()
        except asyncssh.Error as exc:
            raise ConnectionError(str(exc)) from None

    def close(self) -> None:
        self.process.exit(0)


# asyncssh's defaults without the CBC modes (which asyncssh does not enable either) and
# without chacha20-poly1305@openssh.com, which every client would choose first (the client's
# order decides, RFC 4253 7.1): asyncssh builds three cipher contexts per packet for it,
# 100 us of CPU per packet sent here against 34 us with aes256-gcm (one context per key),
# and a node sends a packet per notification per subscriber. Every SSH client the
# project meets speaks AES-GCM or AES-CTR (paramiko, hence ncclient: CTR only).
ENCRYPTION_ALGS = ("aes256-gcm@openssh.com", "aes128-gcm@openssh.com", "aes256-ctr",
                   "aes192-ctr", "aes128-ctr")
PUSH_INTERVAL = 0.05    # seconds between two rounds of YANG-push writes (_push())
PUSH_HOLD = 0.05        # seconds they may wait for the RPCs
# A round waits this long for a quiet server to stay quiet (the next RPC of a client that
# commits in a loop comes within about a millisecond), then writes at once
PUSH_QUIET = 0.004


class _SSHServer(asyncssh.SSHServer):
    """Authentication callbacks of one SSH connection."""

    def __init__(self, netconf: "NetconfServer"):
        self._netconf = netconf
        self._conn = None
        self._source = "?"
        self._authenticating = False

    def connection_made(self, conn):
        netconf = self._netconf
        self._conn = conn
        peer = conn.get_extra_info("peername")
        self._source = peer[0] if peer else "?"
        netconf.connections.add(conn)
        if netconf.logins.blocked(self._source):
            LOG.warning("connection from %s refused: too many failed logins from there",
                        self._source)
            conn.close()
        elif netconf.authenticating >= netconf.max_unauthenticated:
            LOG.warning("connection from %s refused: %d connections are authenticating "
                        "already", self._source, netconf.authenticating)
            conn.close()
        else:
            self._authenticating = True
            netconf.authenticating += 1

    def _authenticated_or_gone(self):
        if self._authenticating:
            self._authenticating = False
            self._netconf.authenticating -= 1

    def connection_lost(self, exc):
        self._netconf.connections.discard(self._conn)
        self._authenticated_or_gone()

    def auth_completed(self):
        self._authenticated_or_gone()
        self._netconf.logins.succeeded(self._source)

    def begin_auth(self, username: str) -> bool:
        if valid_name(username):
            keys = self._netconf.users.authorized_keys(username)
            if keys is not None:
                self._conn.set_authorized_keys(keys)
        return True                      # authentication is always required

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key) -> bool:
        # asyncssh asks only about keys that are not in the user's authorized_keys
        await asyncio.sleep(self._netconf.logins.failed(self._source, username, "publickey"))
        return False

    def password_auth_supported(self) -> bool:
        return self._netconf.password_authentication

    async def validate_password(self, username: str, password: str) -> bool:
        if self._netconf.password_authentication and valid_name(username) and \
                await asyncio.to_thread(self._netconf.users.check_password, username,
                                        password):
            return True
        await asyncio.sleep(self._netconf.logins.failed(self._source, username, "password"))
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False


class NetconfServer:
    """SSH listener and sessions over the datastores."""

    def __init__(self, ctx, datastores, users: Users, host_key_path: Path, *,
                 address: str = "0.0.0.0", port: int = 830,
                 max_message_size: int = 64 * 1024 * 1024,
                 password_authentication: bool = False, hello_timeout: float = 30,
                 idle_timeout: float = 0, limits: Limits = DEFAULT_LIMITS,
                 max_chunks: int = 100_000, max_sessions: int = 256,
                 max_sessions_per_user: int = 64, max_unauthenticated: int = 32,
                 login_timeout: float = 60, logins: LoginThrottle | None = None,
                 bus: Bus | None = None, replay=None, notification_queue: int = 1000,
                 max_subscriptions: int = 100, push_min_period: int = 10,
                 nacm_recovery_user: str = "recovery"):
        self.ctx = ctx
        self.datastores = datastores
        self.users = users
        self.host_key_path = Path(host_key_path)
        self.address = address
        self.port = port
        self.max_message_size = max_message_size
        self.password_authentication = password_authentication
        self.hello_timeout = hello_timeout
        self.idle_timeout = idle_timeout
        self.limits = limits
        self.max_chunks = max_chunks
        self.max_sessions = max_sessions
        self.max_sessions_per_user = max_sessions_per_user
        self.max_unauthenticated = max_unauthenticated
        self.login_timeout = login_timeout
        self.logins = logins if logins is not None else LoginThrottle()
        self.authenticating = 0          # connections that have not authenticated yet
        self.schemas = Schemas(ctx)
        self.modules = self.schemas.modules
        self.bus = bus if bus is not None else Bus()
        self.notifications = Notifications(self, self.bus, replay, notification_queue)
        self.subscriptions = Subscriptions(self, max_subscriptions, push_min_period)
        self.capabilities = server_capabilities(self.modules,
                                                replay=self.notifications.replay_support)
        # access control: compiled from running's /nacm, recompiled when that changes
        # (observing before the notifications: their filtering uses the new policy)
        self.nacm = Nacm(ctx, datastores, users.directory, nacm_recovery_user)
        datastores.observe(self.nacm.changed)
        datastores.guard = self._write_access
        datastores.observe(self.notifications.datastore_changed)
        self.statistics = monitoring.ServerStatistics()
        self.sessions: dict[int, Session] = {}
        self.connections: set = set()
        self.yang_library = monitoring.yang_library(ctx, self.modules, content_id(self.modules))
        self._next_id = 0
        self._listener = None
        self._index = schema_index(ctx)
        self._tasks: set = set()
        self._answering = 0             # sessions answering an RPC now
        self._quiet: asyncio.Event | None = None
        self._busy: asyncio.Event | None = None   # set when an RPC begins
        self._push_ready: dict = {}     # sessions with updates queued (an ordered set)
        self._pusher: asyncio.Task | None = None
        self._pushed_at = -PUSH_INTERVAL   # when the last round of writes began

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        key = await asyncio.to_thread(host_key, self.host_key_path)
        loop = asyncio.get_running_loop()
        options = await asyncssh.SSHServerConnectionOptions.construct(
            None, host=self.address, port=self.port, server_factory=lambda: _SSHServer(self),
            server_host_keys=[key], process_factory=self._process, encoding=None,
            allow_scp=False, sftp_factory=None, agent_forwarding=False, x11_forwarding=False,
            allow_pty=True, line_editor=False, keepalive_interval=60,
            login_timeout=self.login_timeout,
            encryption_algs=ENCRYPTION_ALGS, server_version="composer-agent")
        self._listener = await loop.create_server(lambda: asyncssh.SSHServerConnection(loop, options),
                                                  self.address, self.port, backlog=100,
                                                  reuse_address=True)
        sockets = self._listener.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]
        LOG.info("NETCONF over SSH on %s port %d", self.address, self.port)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None
        for session in list(self.sessions.values()):
            await session.terminate(reason="other")
        for conn in list(self.connections):
            conn.close()
        self.yang_library.free()

    async def _process(self, process) -> None:
        if process.subsystem != SUBSYSTEM:
            process.stderr.write(b"composer-agent: only the netconf subsystem is available\n")
            process.exit(1)
            return
        peer = process.get_extra_info("peername")
        username = process.get_extra_info("username") or ""
        refused = self._session_refused(username)
        if refused:
            LOG.warning("netconf session of %s from %s refused: %s", username,
                        peer[0] if peer else "?", refused)
            process.stderr.write(b"composer-agent: %s\n" % refused.encode())
            process.exit(1)
            return
        session = Session(self, _Channel(process), username, peer[0] if peer else "")
        await session.run()

    # -- sessions -------------------------------------------------------------------
    def _session_refused(self, username: str) -> str | None:
        if len(self.sessions) >= self.max_sessions:
            return "too many NETCONF sessions (netconf.max-sessions = %d)" % self.max_sessions
        if sum(1 for s in self.sessions.values() if s.username == username) >= \
                self.max_sessions_per_user:
            return ("too many NETCONF sessions of user %s (netconf.max-sessions-per-user = %d)"
                    % (username, self.max_sessions_per_user))
        return None

    def access(self, session):
        """The NACM view of a session's user (None: not restricted)."""
        return self.nacm.access(session.username)

    def _write_access(self, session_id: int):
        session = self.sessions.get(session_id)
        if session is None:
            return None
        return self.nacm.access(session.username)

    # -- YANG-push updates wait for the RPCs --------------------------------------------
    def answering(self, delta: int) -> None:
        """A session began (+1) or finished (-1) answering an RPC."""
        self._answering += delta
        if self._quiet is None:
            self._quiet, self._busy = asyncio.Event(), asyncio.Event()
        if self._answering:
            self._quiet.clear()
            self._busy.set()
        else:
            self._quiet.set()

    def push_ready(self, session) -> None:
        """The session has YANG-push updates queued (Session.push): the pusher has it
        write them."""
        self._push_ready[session] = None
        if self._pusher is None:
            self._pusher = asyncio.ensure_future(self._push())

    async def _push(self) -> None:
        """Has the sessions write their queued updates: a round at most every
        PUSH_INTERVAL seconds (the first at once), each session once no session answers
        an RPC (or PUSH_HOLD seconds passed), one session per turn of the event loop.
        Each update costs its session a write, its encryption and a system call (about
        40 us; 20 subscribers: nearly a millisecond per commit): a burst's updates are
        written together (one write per session and round, not one per update), the
        writes take the loop and the interpreter when the RPCs do not need them, and the
        next RPC's bytes are read between two sessions' writes. The hold bounds their
        delay under a stream of RPCs. A session's write and drain run in a task of its
        own: a client that does not read holds only its own session."""
        try:
            while self._push_ready:
                await self._round_due()
                self._pushed_at = time.monotonic()
                ready = list(self._push_ready)
                self._push_ready.clear()
                for session in ready:
                    hold = self._pushed_at + PUSH_HOLD - time.monotonic()
                    if self._answering and hold > 0:
                        try:
                            await asyncio.wait_for(self._quiet.wait(), hold)
                        except asyncio.TimeoutError:
                            pass
                    task = asyncio.ensure_future(session.flush_pushed())
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                    await asyncio.sleep(0)
        finally:
            self._pusher = None

    async def _round_due(self) -> None:
        """Until the next round may begin: PUSH_INTERVAL after the last one at the
        latest, and before that as soon as the server has answered its RPCs and stayed
        quiet for PUSH_QUIET. Under a stream of RPCs a round's updates are batched; when
        nobody asks anything they go out at once (the interval alone made each update
        of a commit-then-wait client wait ~40 ms)."""
        deadline = self._pushed_at + PUSH_INTERVAL
        if self._quiet is None:
            self.answering(0)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._answering:
                event = self._quiet
            else:
                self._busy.clear()
                event, left = self._busy, min(left, PUSH_QUIET)
            try:
                await asyncio.wait_for(event.wait(), left)
            except asyncio.TimeoutError:
                return                  # quiet for PUSH_QUIET, or the interval is over
            # an RPC began (keep batching) or the RPCs were answered (see if it stays so)

    def new_session_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def kill(self, session_id: int, by: int | None = None) -> bool:
        session = self.sessions.get(session_id)
        if session is None:
            return False
        await session.terminate(reason="killed", killed_by=by)
        return True

    # -- protocol state -------------------------------------------------------------
    def module_of_namespace(self, namespace: str | None) -> str | None:
        return self._index.module_name(namespace) if namespace else None

    def prefix_of_module(self, module: str):
        return self._index.prefix_and_namespace(module)

    def netconf_state(self):
        locks = {name: self.datastores.locks.holder(name)
                 for name in ("running", "candidate", "startup")}
        return monitoring.netconf_state(self.ctx, self.modules, self.capabilities, locks,
                                        [s.info for s in self.sessions.values()],
                                        self.statistics)
