"""YANG-push (RFC 8641): datastore subscriptions on running and operational, periodic
and on-change, over NETCONF (RFC 8640).

A snapshot is what <get-data> of the datastore with the subscription's filter returns
(agent/netconf/operations.py builds both), as a libyang tree of its own.

- Periodic: a push-update with the snapshot at anchor-time + k * period (anchor-time
  defaults to when the subscription started), until stop-time.
- On-change: driven by the events on the bus (agent/publish), never by polling. The
  subscription takes the events whose changes (Change(datastore, path) hints: a commit,
  a graph's or a function's status, free VLAN ids, capabilities, free cores, alarms)
  touch its datastore and overlap its filter; each one makes it take a new snapshot and
  send what differs from the last one as a push-change-update carrying a YANG patch
  (agent/datastore/patch.py), without the excluded change types. With sync-on-start
  (the default) a push-update with the first snapshot comes first. A dampening period
  keeps at least that much time between two updates: the changes of a burst are
  coalesced into one update at the end of the period. Events that arrive while a
  snapshot is being taken are folded into the next one; none is lost, as each
  snapshot is compared with the last one sent.
"""

import asyncio
import functools
import logging
import math
import time
from xml.sax.saxutils import escape

from ..datastore.patch import data_steps, edits as patch_edits
from ..publish import Closed, Overflowed, now, rfc3339
from ..publish.render import NOTIFICATION_NS
from .subscribed import YP_NS, Dynamic, envelope

LOG = logging.getLogger(__name__)


SAMPLED = (
    "/composer-sffg:service-graphs/service-graph/functions/function/ports/port/state/counters",
    "/composer-sffg:service-graphs/service-graph/saps/sap/state/counters",
    "/composer-sffg:service-graphs/service-graph/flow-rules/flow-rule/state/packets",
    "/composer-sffg:service-graphs/service-graph/flow-rules/flow-rule/state/bytes",
    "/composer-domain:domain/resources/state/cpu-load",
    "/composer-domain:domain/resources/state/memory-free",
)


@functools.lru_cache(maxsize=4096)
def _names(path: str):
    """The (module, name) steps of a path without predicates, or None when the path is
    not a plain location path (a union, a function, '//', an axis)."""
    if "//" in path or "|" in path:
        return None
    out, module = [], None      # (a tuple: the result is cached, shared)
    for step in data_steps(path):
        name = step.partition("[")[0]
        if not name or any(bad in name for bad in ("(", "..", "::", " ")):
            return None
        prefix, sep, local = name.partition(":")
        if sep:
            module, name = prefix, local
        out.append((module, name))
    return tuple(out)


def overlaps(selection: str, changed: str) -> bool:
    """Whether a filter selection and a changed subtree can share a node: one of the two
    paths lies below the other (predicates ignored: conservative)."""
    if changed == "/":
        return True
    a, b = _names(selection), _names(changed)
    if a is None or b is None:
        return True
    for (ma, na), (mb, nb) in zip(a, b):
        if "*" in (na, nb):
            continue
        if na != nb or (ma and mb and ma != mb):
            return False
    return True


def relevant(terms, event) -> bool:
    """Whether the event changed something of the datastore and filter of the terms."""
    datastore = terms.datastore
    selections = terms.filter.selections
    for change in event.changes:
        if change.datastore != datastore:
            continue
        if selections is None or any(overlaps(s, change.path) for s in selections):
            return True
    return False


class Snapshot:
    """One read of a datastore and filter, shared by the on-change subscriptions that take
    it: its version (unique in the server), its tree (read-only), and the YANG patches
    that lead to it from older snapshots, encoded once for every subscription with the
    same terms (patch()). Each holder calls release() once; the tree is freed with the
    last one."""

    __slots__ = ("version", "seq", "tree", "refs", "patches")

    def __init__(self, version: int, seq: int, tree):
        self.version = version
        self.seq = seq                  # the bus's sequence number when its read began
        self.tree = tree
        self.refs = 1
        self.patches: dict = {}

    def hold(self) -> "Snapshot":
        self.refs += 1
        return self

    def release(self) -> None:
        self.refs -= 1
        if self.refs == 0:
            self.patches.clear()
            if not self.tree.empty:
                self.tree.free()

    def patch(self, old: "Snapshot", excluded: tuple) -> tuple:
        """(eventTime, the YANG patch's edits as XML: b"" when nothing changed) from old
        to this snapshot without the excluded change types; the subscriptions that go
        from the same snapshot to this one share one diff and one encoding."""
        key = (old.version, excluded)
        found = self.patches.get(key)
        if found is None:
            edits = [] if old is self else patch_edits(old.tree, self.tree, excluded)
            found = self.patches[key] = (rfc3339(now()).encode(), encode_edits(edits))
        return found


def encode_edits(found) -> bytes:
    """The <edit> elements of a YANG patch (RFC 8072) for the edits found."""
    parts = []
    for index, edit in enumerate(found, 1):
        value = b"<value>%s</value>" % edit.value if edit.value is not None else b""
        parts.append(b"<edit><edit-id>edit%d</edit-id><operation>%s</operation>"
                     b"<target>%s</target>%s</edit>" % (
                         index, edit.operation.encode(), escape(edit.target).encode(),
                         value))
    return b"".join(parts)


class _Shared:
    """One snapshot being read or read: the bus's sequence number when its read began
    (what every event up to it changed is in it), and the Snapshot (the future's
    result, held by this entry until a newer read replaces it and nobody waits for it)."""

    __slots__ = ("seq", "started", "future", "waiting", "stale", "released")

    def __init__(self, seq: int, future):
        self.seq = seq
        self.started = time.monotonic()
        self.future = future
        self.waiting = 0
        self.stale = False
        self.released = False


class SharedSnapshots:
    """Snapshots of one datastore and filter shared by the on-change subscriptions that
    need one at about the same time (100 subscriptions to the same data, one commit: one
    read of the operational state and one diff, not 100). A subscription may take a
    snapshot whose read began after every event it has consumed was published."""

    def __init__(self, bus):
        self.bus = bus
        self._entries: dict = {}
        self._versions = 0

    async def get(self, key, seen: int, make, not_before: float | None = None) -> Snapshot:
        """A Snapshot (held: the caller releases it) whose read began after event seen
        was published (and after not_before, a time.monotonic(), if given)."""
        entry = self._entries.get(key)
        fresh = entry is not None and entry.seq >= seen and (
            not_before is None or entry.started >= not_before)
        if fresh and entry.future.done() and not entry.future.cancelled() and \
                entry.future.exception() is None:
            return entry.future.result().hold()     # read already (20 subscriptions: 19)
        if not fresh:
            if entry is not None:
                entry.stale = True
                self._release(entry)
            seq = self.bus.seq
            entry = self._entries[key] = _Shared(seq, asyncio.ensure_future(
                self._read(make, seq)))
            entry.future.add_done_callback(lambda _: self._release(entry))
        entry.waiting += 1
        try:
            snapshot = await asyncio.shield(entry.future)
            return snapshot.hold()
        except BaseException:
            if self._entries.get(key) is entry and entry.future.done():
                del self._entries[key]          # a failed read is not kept
            raise
        finally:
            entry.waiting -= 1
            self._release(entry)

    async def _read(self, make, seq: int) -> Snapshot:
        tree = await make()
        self._versions += 1
        return Snapshot(self._versions, seq, tree)

    @staticmethod
    def _release(entry: _Shared) -> None:
        """A replaced entry's own hold on its snapshot goes once its read is over and
        nobody waits for it."""
        future = entry.future
        if entry.stale and not entry.waiting and future.done() and not entry.released:
            entry.released = True
            if not future.cancelled() and future.exception() is None:
                future.result().release()

    def clear(self) -> None:
        for entry in self._entries.values():
            entry.stale = True
            self._release(entry)
        self._entries.clear()


class DatastoreSubscription(Dynamic):
    """A YANG-push subscription; see the module docstring."""

    kind = "datastore"

    def __init__(self, registry, ident, session, terms):
        super().__init__(registry, ident, session, terms)
        self.task: asyncio.Task | None = None
        self.live = None
        self.first: Snapshot | None = None      # the first snapshot (on-change)
        self.seen = 0                           # the last event it consumed (bus seq)
        self.updates = 0
        self._key = None                        # of its snapshots (SharedSnapshots)
        self.feed: ChangeFeed | None = None

    # -- lifecycle --------------------------------------------------------------------
    async def prepare(self) -> None:
        """Before the reply: an on-change subscription takes its first snapshot and
        listens to the bus now, so that a change made once the client has the reply is
        measured against what was there before it."""
        if self.terms.on_change:
            self._listen()
            self.seen = self.registry.server.bus.seq
            self.first = await self.snapshot()

    @property
    def fed(self) -> bool:
        """Whether a ChangeFeed sends its updates: on-change with no dampening period
        and no stop-time (every change its own update, computed with the others)."""
        terms = self.terms
        return terms.on_change and not terms.dampening and terms.stop_time is None

    def begin(self) -> None:
        if not self.fed:
            self.task = asyncio.ensure_future(self._run())
            return
        try:
            if self.terms.sync_on_start:
                self._push_update(self.first.tree)
        except Closed:
            return
        first, self.first = self.first, None
        self.registry.change_feed(self).join(self, first)

    def halt(self) -> None:
        if self.feed is not None:
            self.feed.leave(self)
        if self.live is not None:
            self.live.close()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        elif self.task is None and self.first is not None:
            self.first.release()                # never begun
            self.first = None

    def _listen(self) -> None:
        server = self.registry.server
        self.live = server.bus.subscribe("yang-push %d" % self.id,
                                         server.notifications.queue_size,
                                         accept=self._relevant)

    def _relevant(self, event) -> bool:
        return relevant(self.terms, event)

    # -- snapshots --------------------------------------------------------------------
    @property
    def key(self) -> tuple:
        """The datastore, the filter and the user: what the subscriptions that share reads
        share. The user, because a read is what the user may see of the data (NACM,
        read()): another user's snapshot and patches may hold what this one may not
        read, or miss what it may."""
        if self._key is None:
            self._key = (self.terms.datastore, None if self.terms.filter.selections
                         is None else tuple(self.terms.filter.selections),
                         self.session.username)
        return self._key

    async def snapshot(self, not_before: float | None = None) -> Snapshot:
        """The subscribed data as it is at least since the last event this subscription
        consumed (and not_before), a Snapshot the caller releases; on-change
        subscriptions to the same data share the reads."""
        key = self.key
        return await self.registry.shared_snapshots().get(key, self.seen, self.read,
                                                          not_before)

    async def read(self):
        """The subscribed data now as the user may read it (NACM, with the policy of the
        moment: a change of it shows in the next update), as a tree of its own (the
        caller frees it)."""
        from .operations import materialise, operational_sources, select
        server = self.registry.server
        owned = []
        if self.terms.datastore == "operational":
            sources, owned = await operational_sources(self.session, self.terms.filter)
        else:
            sources = [(server.datastores.running, None)]
        try:
            selected = select(self.session, sources, self.terms.filter)
            try:
                return materialise(selected)
            finally:
                selected.release()
        finally:
            for tree in owned:
                tree.free()

    def _push_update(self, tree) -> None:
        body = b'<push-update xmlns="%s"><id>%d</id><datastore-contents>%s' \
               b'</datastore-contents></push-update>' % (
                   YP_NS.encode(), self.id, tree.print("explicit"))
        self._send(envelope(body))

    def _push_change(self, when: bytes, edits: bytes) -> None:
        """A push-change-update: the edits (shared by the subscriptions with the same
        terms) in this subscription's id and patch-id."""
        self.updates += 1
        self._send(b'<notification xmlns="%s"><eventTime>%s</eventTime>'
                   b'<push-change-update xmlns="%s"><id>%d</id><datastore-changes>'
                   b'<yang-patch><patch-id>%d-%d</patch-id>%s</yang-patch>'
                   b'</datastore-changes></push-change-update></notification>' % (
                       NOTIFICATION_NS.encode(), when, YP_NS.encode(), self.id, self.id,
                       self.updates, edits))

    def _send(self, message: bytes) -> None:
        """Queue the update on the session without waiting for it to be written (the
        next change is read meanwhile, so that none is folded into another); a receiver
        that falls queue-size updates behind ends its session, as create-subscription's."""
        if self.session.push(message):
            self.sent += 1
            return
        server = self.registry.server
        server.notifications.overflows += 1
        LOG.warning("session %d: subscription %d fell %d updates behind (the client does "
                    "not read them): ending the session", self.session.id, self.id,
                    server.notifications.queue_size)
        self.registry.forget(self)
        asyncio.ensure_future(self.session.terminate(reason="other"))
        raise Closed("subscription %d" % self.id)

    # -- the senders ------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            if self.terms.on_change:
                await self._on_change()
            else:
                await self._periodic()
            # stop-time reached: it ends (RFC 8639 sends subscription-completed to the
            # receivers of configured subscriptions only)
            self.registry.forget(self)
        except (Closed, asyncio.CancelledError):
            return
        except (ConnectionError, OSError) as exc:
            LOG.info("subscription %d: stopped (%s)", self.id, exc)
        except Exception:  # noqa: BLE001 - the session goes on without it
            LOG.exception("subscription %d failed", self.id)
            self.registry.forget(self)

    def _left(self) -> float | None:
        """Seconds until stop-time (None: no stop-time)."""
        stop = self.terms.stop_time
        return None if stop is None else (stop - now()).total_seconds()

    async def _periodic(self) -> None:
        period = self.terms.period / 100.0
        anchor = self.terms.anchor or now()
        done = -1                               # the last multiple of the period sent
        while True:
            current = now()
            elapsed = (current - anchor).total_seconds()
            # the next multiple of the period from the anchor (the anchor itself if ahead);
            # never the one just sent (the loop's timers may fire a little early)
            steps = 0 if elapsed < 0 else math.floor(elapsed / period) + 1
            steps = max(steps, done + 1)
            done = steps
            wait = steps * period - elapsed
            left = self._left()
            if left is not None and wait > left:
                await asyncio.sleep(max(0.0, left))
                return
            await asyncio.sleep(wait)
            tree = await self.read()
            try:
                self._push_update(tree)
            finally:
                tree.free()

    @property
    def sampled(self) -> bool:
        """Whether its data holds what no event announces (SAMPLED), re-read once per
        dampening period."""
        terms = self.terms
        if not terms.dampening or terms.datastore != "operational":
            return False
        selections = terms.filter.selections
        return selections is None or any(overlaps(s, p) for s in selections for p in SAMPLED)

    async def _on_change(self) -> None:
        dampening = self.terms.dampening / 100.0
        sampled = self.sampled
        last, self.first = self.first, None
        if last is None:
            last = await self.snapshot()
        try:
            last_sent = -math.inf
            if self.terms.sync_on_start:
                self._push_update(last.tree)
                last_sent = time.monotonic()
            while True:
                left = self._left()
                if left is not None and left <= 0:
                    return
                timeout = left
                if sampled:
                    since = time.monotonic() - last_sent
                    timeout = max(0.0, dampening - since) if left is None else \
                        min(left, max(0.0, dampening - since))
                fresh = None
                try:
                    await asyncio.wait_for(self._next_change(), timeout)
                except asyncio.TimeoutError:
                    if not sampled or (self._left() is not None and self._left() <= 0):
                        return
                    fresh = time.monotonic()        # a sample: a read of now
                wait = last_sent + dampening - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)       # a burst's changes coalesce
                self._drain()
                snapshot = await self.snapshot(fresh)
                when, edits = snapshot.patch(last, self.terms.excluded)
                last.release()
                last = snapshot
                if edits:
                    self._push_change(when, edits)
                    last_sent = time.monotonic()
                elif sampled:
                    last_sent = time.monotonic()    # sampled: the next read a period on
        finally:
            last.release()

    async def _next_change(self) -> None:
        try:
            event = await self.live.get()
            self.seen = max(self.seen, event.seq)
        except Overflowed:
            # events were lost for it, not changes: the next snapshot has them all
            self.seen = self.registry.server.bus.seq
            self.live.close()
            self._listen()

    def _drain(self) -> None:
        """What is queued is covered by the snapshot about to be taken."""
        try:
            while (event := self.live.get_nowait()) is not None:
                self.seen = max(self.seen, event.seq)
        except Overflowed:
            self.seen = self.registry.server.bus.seq
            self.live.close()
            self._listen()


class ChangeFeed:
    """The on-change subscriptions without dampening or stop-time to one datastore and
    filter (DatastoreSubscription.fed), served by one task: one wake-up, one read and one
    diff per change for all of them (per set of excluded change types), each member's
    update queued on its session in turn.

    1. join(): a member comes with its first snapshot and its own bus subscription,
       listening since that snapshot was read; if an event came meanwhile, the feed
       reads again at once, so that the member gets it.
    2. Each relevant event (those queued together at once): a snapshot whose read began
       after the last one (SharedSnapshots), and for each member the patch from its last
       snapshot to it (Snapshot.patch: shared by the members that were at the same one).
    3. leave(): the member's last snapshot is released; the last member ends the feed.
    """

    def __init__(self, registry, member: DatastoreSubscription):
        server = registry.server
        self.registry = registry
        self.key = member.key
        self.terms = member.terms
        self.members: dict = {}                 # member -> its last Snapshot
        self.seen = server.bus.seq
        self.live = server.bus.subscribe("yang-push feed", server.notifications.queue_size,
                                         accept=lambda event: relevant(self.terms, event))
        self._kicked = False
        self.task = asyncio.ensure_future(self._run())

    def join(self, member: DatastoreSubscription, first: Snapshot) -> None:
        member.feed = self
        self.members[member] = first
        own = member.live
        member.live = None
        if own is not None:
            try:
                while (event := own.get_nowait()) is not None:
                    self.seen = max(self.seen, event.seq)
                    self._kicked = True
            except (Overflowed, Closed):
                self.seen = self.registry.server.bus.seq
                self._kicked = True
            own.close()
        if self._kicked:
            self.live.poke()

    def leave(self, member: DatastoreSubscription) -> None:
        member.feed = None
        last = self.members.pop(member, None)
        if last is not None:
            last.release()
        if not self.members:
            self.live.close()
            self.task.cancel()
            self.registry.feed_ended(self)

    async def _run(self) -> None:
        try:
            while self.members:
                while not self._kicked and not self.live.queue:
                    await self.live.wait()
                    if self.live.closed and not self.live.overflowed:
                        return                  # its last member left
                    if self.live.overflowed:
                        break
                self._kicked = False
                self._drain()
                await self._update()
        except asyncio.CancelledError:
            return
        except Exception:  # noqa: BLE001 - the sessions go on without them
            LOG.exception("the on-change subscriptions to %s failed", self.key)
            for member in list(self.members):
                self.registry.forget(member)

    def _drain(self) -> None:
        """What is queued is covered by the snapshot about to be taken."""
        try:
            while (event := self.live.get_nowait()) is not None:
                self.seen = max(self.seen, event.seq)
        except Overflowed:
            # events were lost for it, not changes: the next snapshot has them all
            self.seen = self.registry.server.bus.seq
            self.live.close()
            server = self.registry.server
            self.live = server.bus.subscribe(
                "yang-push feed", server.notifications.queue_size,
                accept=lambda event: relevant(self.terms, event))

    async def _update(self) -> None:
        if not self.members:
            return
        reader = next(iter(self.members))
        snapshot = await self.registry.shared_snapshots().get(self.key, self.seen,
                                                              reader.read)
        try:
            for member in list(self.members):
                last = self.members.get(member)
                if last is None or last.seq > snapshot.seq:
                    continue                    # it left, or joined with a newer one
                when, edits = snapshot.patch(last, member.terms.excluded)
                self.members[member] = snapshot.hold()
                last.release()
                if edits:
                    try:
                        member._push_change(when, edits)
                    except Closed:
                        pass                    # it ended (its client does not read)
        finally:
            snapshot.release()


__all__ = ["ChangeFeed", "DatastoreSubscription", "overlaps"]
