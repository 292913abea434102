"""The one event path: producers publish Events from any thread, the bus fans them out on
the event loop to its listeners and subscribers.

Lifecycle:
1. Bus(): events published before bind() wait in order (the engine's recovery runs
   before the loop's services are up).
2. bind(loop): from now on each publish() hands the event to the loop
   (call_soon_threadsafe: never blocks the producer); what waited is delivered first.
3. On the loop, in publish order, each event goes
   - to every listener (add_listener: a callable on the loop that must not block; the
     replay log is one), then
   - to every subscription whose accept(event) holds, into its bounded queue. A queue
     that is full does not block anyone: the subscription is marked overflowed, stops
     receiving, its on_overflow callback runs once (so that its channel ends it with the
     right reason), and bus.overflows counts it.
4. close(): no more deliveries; waiting subscribers get Closed.
Every event is also logged (logger agent.publish.bus, INFO) by publish(), in the
producer's thread.
"""

import asyncio
import logging
import threading
from collections import deque

from .event import Event

LOG = logging.getLogger(__name__)

DEFAULT_QUEUE = 1000


class Overflowed(Exception):
    """The subscription's queue overflowed: events were lost for it."""


class Closed(Exception):
    """The subscription (or the bus) was closed."""


class Subscription:
    """A bounded queue of events for one consumer, on the bus's event loop."""

    def __init__(self, bus: "Bus", name: str, size: int, accept=None, on_overflow=None):
        self.bus = bus
        self.name = name
        self.size = size
        self.accept = accept
        self.on_overflow = on_overflow
        self.queue: deque = deque()
        self.delivered = 0              # events queued for it
        self.lost = 0                   # events it did not get, once overflowed
        self.overflowed = False
        self.closed = False
        self._waiter: asyncio.Future | None = None

    def _offer(self, event: Event) -> None:
        if self.closed:
            return
        if self.accept is not None and not self.accept(event):
            return
        if self.overflowed:
            self.lost += 1
            return
        if len(self.queue) >= self.size:
            self.overflowed = True
            self.lost += 1
            self.bus.overflows += 1
            LOG.warning("subscriber %s fell %d events behind: its queue overflowed "
                        "(event #%d %s lost for it)", self.name, self.size, event.seq,
                        event.kind)
            self._wake()
            if self.on_overflow is not None:
                try:
                    self.on_overflow(self)
                except Exception:  # noqa: BLE001 - one consumer must not stop the bus
                    LOG.exception("overflow handler of %s failed", self.name)
            return
        self.queue.append(event)
        self.delivered += 1
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> Event | None:
        """The next queued event, None if there is none (Overflowed, Closed once the
        queue is empty and the subscription overflowed or closed)."""
        if self.queue:
            return self.queue.popleft()
        if self.overflowed:
            raise Overflowed(self.name)
        if self.closed:
            raise Closed(self.name)
        return None

    async def get(self) -> Event:
        """The next event, waiting for it; raises Overflowed or Closed (after what was
        queued before)."""
        while True:
            event = self.get_nowait()
            if event is not None:
                return event
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def wait(self) -> None:
        """Until an event is queued, the subscription overflowed or closed, or poke()."""
        if self.queue or self.overflowed or self.closed:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def poke(self) -> None:
        """End a wait() (its consumer has something else to do)."""
        self._wake()

    def close(self) -> None:
        """Stop receiving (idempotent); a waiting get() raises Closed."""
        if not self.closed:
            self.closed = True
            self.bus._subscriptions.discard(self)
            self._wake()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Bus:
    """See the module docstring."""

    def __init__(self):
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._early: list = []          # published before bind()
        self._listeners: list = []
        self._subscriptions: set = set()
        self._closed = False
        self.seq = 0
        self.published = 0
        self.overflows = 0

    # -- lifecycle ------------------------------------------------------------------
    def bind(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Deliver on loop (the running one by default) from now on."""
        loop = loop or asyncio.get_running_loop()
        with self._lock:
            self._loop = loop
            self._loop_thread = threading.get_ident() if loop.is_running() else None
            early, self._early = self._early, []
            for event in early:
                loop.call_soon_threadsafe(self._deliver, event)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        for subscription in list(self._subscriptions):
            subscription.close()

    # -- producers (any thread) -----------------------------------------------------
    def publish(self, event: Event) -> Event:
        """Number the event and hand it to the loop; never blocks. Returns it."""
        with self._lock:
            if self._closed:
                return event
            self.seq += 1
            event.seq = self.seq
            self.published += 1
            if self._loop is None:
                self._early.append(event)
            elif threading.get_ident() == self._loop_thread:
                self._loop.call_soon(self._deliver, event)     # no wake-up needed
            else:
                try:
                    self._loop.call_soon_threadsafe(self._deliver, event)
                except RuntimeError:        # the loop is closed: the agent is stopping
                    pass
        if LOG.isEnabledFor(logging.INFO):
            LOG.info("event #%d %s at %s: %s", event.seq, event.kind, event.event_time,
                     event.summary())
        return event

    # -- consumers (the loop) -------------------------------------------------------
    def add_listener(self, listener) -> None:
        """listener(event), on the loop, for every event; it must not block."""
        self._listeners.append(listener)

    def remove_listener(self, listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def subscribe(self, name: str, size: int = DEFAULT_QUEUE, accept=None,
                  on_overflow=None) -> Subscription:
        """A subscription to the events published from now on (those accept(event)
        takes), queued up to size. Call on the loop."""
        subscription = Subscription(self, name, max(1, size), accept, on_overflow)
        self._subscriptions.add(subscription)
        return subscription

    @property
    def subscriptions(self) -> list:
        return list(self._subscriptions)

    def _deliver(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - one consumer must not stop the others
                LOG.exception("event listener %r failed on %r", listener, event)
        for subscription in list(self._subscriptions):
            subscription._offer(event)
