"""The agent service that runs the datastores and the NETCONF server.

1. start(): the libyang context (composer modules, protocol modules, the configured
   extra modules); the datastores, booted from <state>/startup.xml through the engine;
   the users (admin created on a first start); the SSH listener.
2. stop(): the listener and every session, then the datastores' timers.

The engine is injected (AcceptAllEngine by default), or a callable that returns it at
start() (the agent's engine exists once its own service has started); state providers can
be passed at construction or registered later on .datastores. The event path (bus and
replay log, agent/publish) is the agent's; run alone, the service makes its own.
"""

import logging

from ..config import AgentConfig
from ..datastore import Datastores
from ..files import atomic_write
from ..model import create_context
from ..publish.service import EventService
from .logins import LoginThrottle
from .messages import Limits
from .nacm import default_policy
from .server import NetconfServer
from .users import ADMIN, Users

LOG = logging.getLogger(__name__)


class NetconfService:
    """Datastores plus NETCONF server, as one agent service."""

    def __init__(self, config: AgentConfig, engine=None, providers=None,
                 events: EventService | None = None):
        self.config = config
        self.events = events
        self._own_events = events is None
        self.engine = engine
        # Kept by reference: the engine service fills its list in when it starts.
        self.providers = providers if providers is not None else []
        self.ctx = None
        self.datastores: Datastores | None = None
        self.users: Users | None = None
        self.server: NetconfServer | None = None

    @property
    def startup_path(self):
        return self.config.state_dir / "startup.xml"

    async def start(self) -> None:
        netconf = self.config.data["netconf"]
        if self._own_events:
            self.events = EventService(self.config)
            await self.events.start()
        self.ctx = create_context(extra_dirs=netconf["extra-yang-dirs"],
                                  extra_modules=netconf["extra-yang-modules"])
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        engine = self.engine() if callable(self.engine) else self.engine
        self.datastores = Datastores(
            self.ctx, engine, self.startup_path, self.config.state_dir / "running.xml",
            concurrent_reads=self.config.get("datastore", "concurrent-reads"))
        for provider in self.providers:
            self.datastores.register_state_provider(provider)
        self.users = Users(self.config.state_dir / "users")
        if self.users.ensure_admin() is not None and not self.startup_path.exists():
            # a first start: the shipped access control (README: Access control)
            atomic_write(self.startup_path, default_policy([ADMIN]).encode(), mode=0o600)
        self.server = NetconfServer(
            self.ctx, self.datastores, self.users,
            self.config.state_dir / "ssh_host_ed25519_key",
            address=netconf["address"], port=netconf["port"],
            max_message_size=netconf["max-message-size"],
            password_authentication=netconf["password-authentication"],
            hello_timeout=netconf["hello-timeout"], idle_timeout=netconf["idle-timeout"],
            limits=Limits(max_elements=netconf["max-elements"], max_depth=netconf["max-depth"],
                          max_attributes=netconf["max-attributes"],
                          max_selections=netconf["max-filter-selections"]),
            max_chunks=netconf["max-chunks"], max_sessions=netconf["max-sessions"],
            max_sessions_per_user=netconf["max-sessions-per-user"],
            max_unauthenticated=netconf["max-unauthenticated"],
            login_timeout=netconf["login-timeout"],
            logins=LoginThrottle(delay=netconf["login-failure-delay"],
                                 limit=netconf["login-failure-limit"],
                                 block=netconf["login-block-time"]),
            bus=self.events.bus, replay=self.events.replay,
            notification_queue=self.events.queue_size,
            max_subscriptions=self.config.get("notifications", "max-subscriptions"),
            push_min_period=round(self.config.get("notifications", "push-min-period") * 100),
            nacm_recovery_user=netconf["nacm-recovery-user"])
        self.server.notifications.capabilities_at_start(
            self.events.state_dir / "capabilities.json")
        # after the server: it observes the datastores, whose boot is a change of running
        await self.datastores.start()
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        if self.datastores is not None:
            # A clean exit that empties the node (the default) starts from startup next time.
            await self.datastores.stop(forget_running=self.config.get("ovs", "stop-on-exit"))
        if self._own_events and self.events is not None:
            await self.events.stop()

    @property
    def port(self) -> int:
        return self.server.port if self.server is not None else self.config.get("netconf",
                                                                               "port")

    def banner(self) -> list[str]:
        """How to connect: address, port, user admin and its key."""
        address = self.config.get("netconf", "address")
        host = "127.0.0.1" if address in ("0.0.0.0", "::", "") else address
        key = self.users.admin_key() if self.users is not None else None
        lines = ["NETCONF over SSH on %s port %d: user %s%s"
                 % (address or "*", self.port, ADMIN, ", key %s" % key if key else "")]
        if key is not None:
            lines.append("  ssh -i %s -p %d -s %s@%s netconf" % (key, self.port, ADMIN, host))
        if self.datastores is not None and self.datastores.boot_problem:
            lines.append("  WARNING: %s; running is empty" % self.datastores.boot_problem)
        return lines
