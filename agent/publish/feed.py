"""The ZeroMQ feed (pyzmq): the node's domain description, RFC 7951 JSON of
/composer-domain:domain, published on an XPUB socket, the paper's DoubleDecker bus made
plain ZeroMQ. Off by default ([publish] zmq); loopback when on.

Every message has three frames: the topic, the sequence number (decimal ASCII; it grows
by one with each new message of the feed, whatever its topic), and the JSON body.
- composer/<node-id>/domain: the description, {"composer-domain:domain": {...}} as
  <get-data> of the operational datastore shows it, at start and whenever an event on
  the bus names a change of it (free VLAN ids, capabilities, free cores, a commit); a
  burst of events is one message, and a description that did not change is not sent
  again.
- composer/<node-id>/graph/<graph-id> (with [publish] zmq-graph-topics): each
  graph-status-change notification of that graph, as RFC 7951 JSON
  ({"ietf-restconf:notification": {"eventTime": ..., "composer-sffg:graph-status-change":
  {...}}}).
A subscriber that joins late gets the current description at once: the XPUB socket
hears its subscription and sends the last description again (the same sequence number:
a subscriber that has it already can tell it is no news).

Lifecycle: start() binds the socket (a bad or busy endpoint fails the agent's start with
the reason), subscribes to the bus and publishes the first description; stop() closes
them.
"""

import asyncio
import json
import logging

from _libyang import ffi, lib

from .bus import Closed, Overflowed
from .render import notification_json

LOG = logging.getLogger(__name__)

DOMAIN_PATH = "/composer-domain:domain"
GRAPH_EVENT = "composer-sffg:graph-status-change"


def _json(ctx, node) -> dict:
    buf = ffi.new("char **")
    if lib.lyd_print_mem(buf, node, lib.LYD_JSON, lib.LYD_PRINT_SHRINK) != lib.LY_SUCCESS:
        raise RuntimeError("libyang cannot print the domain description")
    try:
        return json.loads(ffi.string(buf[0])) if buf[0] != ffi.NULL else {}
    finally:
        lib.free(buf[0])


class FeedService:
    """See the module docstring. netconf: the NetconfService (its datastores build the
    description, as <get> does)."""

    def __init__(self, config, bus, netconf):
        settings = config.data["publish"]
        self.enabled = settings["zmq"]
        self.endpoint = settings["zmq-endpoint"]
        self.graph_topics = settings["zmq-graph-topics"]
        self.topic = ("composer/%s/domain" % config.node_id).encode()
        self.graph_prefix = "composer/%s/graph/" % config.node_id
        self.bus = bus
        self.netconf = netconf
        self.seq = 0
        self.last: list | None = None          # the frames of the last description sent
        self._context = None
        self._socket = None
        self._live = None
        self._tasks: list = []

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        if not self.enabled:
            return
        import zmq
        import zmq.asyncio
        self._context = zmq.asyncio.Context()
        self._socket = self._context.socket(zmq.XPUB)
        self._socket.setsockopt(zmq.XPUB_VERBOSE, 1)      # every subscription: a welcome
        self._socket.setsockopt(zmq.LINGER, 0)
        try:
            self._socket.bind(self.endpoint)
        except zmq.ZMQError as exc:
            self._close()
            raise RuntimeError("publish.zmq-endpoint %s: %s" % (self.endpoint, exc)) from None
        self._listen()
        await self._publish_domain()
        self._tasks = [asyncio.ensure_future(self._run()),
                       asyncio.ensure_future(self._welcome())]
        LOG.info("ZeroMQ feed on %s: topic %s", self.endpoint, self.topic.decode())

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping
                pass
        self._tasks = []
        if self._live is not None:
            self._live.close()
        self._close()

    def _close(self) -> None:
        if self._socket is not None:
            self._socket.close(0)
            self._socket = None
        if self._context is not None:
            self._context.term()
            self._context = None

    def banner(self) -> list[str]:
        if not self.enabled:
            return []
        return ["ZeroMQ feed on %s, topic %s" % (self.endpoint, self.topic.decode())]

    # -- what is published --------------------------------------------------------------
    def _listen(self) -> None:
        self._live = self.bus.subscribe("zmq feed", accept=self._wanted)

    def _wanted(self, event) -> bool:
        if self.graph_topics and event.kind == GRAPH_EVENT:
            return True
        return self._domain_changed(event)

    @staticmethod
    def _domain_changed(event) -> bool:
        return any(c.datastore == "operational" and (
            c.path == "/" or c.path == DOMAIN_PATH or c.path.startswith(DOMAIN_PATH + "/"))
            for c in event.changes)

    async def describe(self) -> dict:
        """The domain description now, RFC 7951 JSON (what <get-data> shows)."""
        datastores = self.netconf.datastores
        trees = await datastores.state_trees(lambda p: "composer-domain" in p.modules)
        try:
            for tree in trees:
                node = tree.find(DOMAIN_PATH)
                if node is not None:
                    return _json(self.netconf.ctx, node)
            return {}
        finally:
            for tree in trees:
                tree.free()

    async def _send(self, frames: list) -> None:
        await self._socket.send_multipart(frames)

    def _next(self) -> bytes:
        self.seq += 1
        return str(self.seq).encode()

    async def _publish_domain(self) -> None:
        body = json.dumps(await self.describe(), separators=(",", ":"),
                          sort_keys=True).encode()
        if self.last is not None and self.last[2] == body:
            return                                  # no change
        self.last = [self.topic, self._next(), body]
        await self._send(self.last)

    async def _run(self) -> None:
        while True:
            try:
                event = await self._live.get()
            except Overflowed:                      # fell behind: the next read covers it
                self._live.close()
                self._listen()
                await self._publish_domain()
                continue
            except Closed:
                return
            try:
                domain = False
                # what else waits is folded into one read of the description
                while event is not None:
                    domain = domain or self._domain_changed(event)
                    await self._graph_status(event)
                    event = self._live.get_nowait()
                if domain:
                    await self._publish_domain()
            except (Overflowed, Closed):
                continue
            except Exception:  # noqa: BLE001 - the feed goes on
                LOG.exception("the ZeroMQ feed failed to publish %r", event)

    async def _graph_status(self, event) -> None:
        if event.kind == GRAPH_EVENT and self.graph_topics:
            topic = self.graph_prefix + event.body.get("graph-id", "")
            await self._send([topic.encode(), self._next(),
                              notification_json(self.netconf.ctx, event)])

    async def _welcome(self) -> None:
        """A new subscriber whose subscription covers the domain topic gets the last
        description at once."""
        while True:
            message = await self._socket.recv()
            if message[:1] == b"\x01" and self.topic.startswith(message[1:]) and \
                    self.last is not None:
                await self._send(self.last)
