"""NETCONF notifications: the NETCONF event stream of RFC 5277 and the events of RFC 6470.

The stream (Notifications):
1. The server's own events go to the bus (agent/publish) as RFC 6470 notifications:
   netconf-config-change (from the datastores' observer: the edit list and the session
   that made the change, or the server), netconf-confirmed-commit, netconf-session-start
   and -end (with the termination reason and who killed it), netconf-capability-change
   (at start, when the capabilities differ from the last run's).
2. create-subscription (subscribe()): a Subscription per session takes, at the same
   instant, the replayed notifications (from the replay log, when startTime is given)
   and a bus subscription for the live ones, so that none is missed or sent twice. Its
   task sends them in order: the replayed ones, replayComplete, then the live ones; at
   stopTime, notificationComplete ends it. A filter (subtree or XPath, the same code as
   <get>, agent/netconf/filters.py) keeps the notifications it selects something of.
3. A subscription whose queue overflows (the client does not read) ends its session
   (termination-reason other), with a log line; Notifications.overflows counts them. No
   other session waits for it: the bus never blocks.
4. /netconf/streams (nc-notifications) lists the NETCONF stream, with replaySupport and
   replayLogCreationTime.
"""

import asyncio
import json
import logging
import re
from pathlib import Path

from lxml import etree

from ..datastore.changes import ConfigChanged, ConfirmEvent
from ..datastore.tree import DataTree
from ..files import atomic_write
from ..publish import Change, Closed, Event, Overflowed, now, rfc3339
from ..publish.render import RenderError, notification_tree, notification_xml
from . import filters

LOG = logging.getLogger(__name__)

NC_NOTIFICATIONS = "ietf-netconf-notifications"
STREAMS_NS = "urn:ietf:params:xml:ns:netmod:notification"
STREAM = "NETCONF"
STREAM_DESCRIPTION = ("The agent's notifications: RFC 6470 (configuration changes, "
                      "sessions, confirmed commits, capabilities) and those of its own "
                      "modules (service graph and function status)")
REPLAY_COMPLETE = "nc-notifications:replayComplete"
NOTIFICATION_COMPLETE = "nc-notifications:notificationComplete"


def _kind(name: str) -> str:
    return "%s:%s" % (NC_NOTIFICATIONS, name)


def session_parms(info) -> dict:
    """RFC 6470 common-session-parms of a session (monitoring.SessionInfo)."""
    parms = {"username": info.username or "?", "session-id": info.session_id}
    if info.source_host:
        parms["source-host"] = info.source_host
    return parms


class Notifications:
    """See the module docstring. One per NetconfServer."""

    def __init__(self, server, bus, replay, queue_size: int = 1000):
        self.server = server
        self.bus = bus
        self.replay = replay
        self.queue_size = queue_size
        self.overflows = 0              # subscriptions ended because they fell behind

    @property
    def replay_support(self) -> bool:
        return self.replay is not None and self.replay.enabled

    # -- producers ------------------------------------------------------------------
    def _changed_by(self, session_id: int) -> dict:
        session = self.server.sessions.get(session_id) if session_id else None
        if session is None:
            return {"server": [None]}
        return session_parms(session.info)

    def _publish(self, event, session_id: int = 0) -> None:
        """Publish an event a session's RPC raised once the RPC's reply is out (its eventTime
        is when it happened), so that 20 subscribers' notifications do not delay the
        reply; any other at once."""
        session = self.server.sessions.get(session_id) if session_id else None
        if session is not None and session.handling:
            session.after_reply.append(event)
        else:
            self.bus.publish(event)

    def datastore_changed(self, change) -> None:
        """The datastores' observer (agent/datastore/changes.py)."""
        if isinstance(change, ConfigChanged):
            self._config_change(change)
        elif isinstance(change, ConfirmEvent):
            body = {"confirm-event": change.event}
            if change.event != "timeout":
                session = self.server.sessions.get(change.session_id)
                if session is not None:
                    body.update(session_parms(session.info))
                else:
                    body.update({"username": "", "session-id": 0})
            if change.timeout is not None and change.event in ("start", "extend"):
                body["timeout"] = change.timeout
            self._publish(Event(_kind("netconf-confirmed-commit"),
                                {_kind("netconf-confirmed-commit"): body}, time=change.time),
                          change.session_id)

    def _config_change(self, change: ConfigChanged) -> None:
        changed_by = self._changed_by(change.session_id)
        operational = change.datastore == "running"

        def content():
            edits = [{"target": path, "operation": op} for path, op in change.edits()]
            body = {"changed-by": changed_by, "datastore": change.datastore}
            if edits:
                body["edit"] = edits
            return {_kind("netconf-config-change"): body}
        # The subtree hint needs the edit list only when it is made at once (the usual
        # case); a whole-tree change hints at the whole datastore.
        ready = change.known_edits
        paths = [path for path, _ in ready] if ready is not None else ["/"]
        hints = [Change(change.datastore, p) for p in paths]
        if operational:
            hints += [Change("operational", p) for p in paths]
        self._publish(Event(_kind("netconf-config-change"), content, hints, time=change.time),
                      change.session_id)

    def session_started(self, session) -> None:
        self.bus.publish(Event(_kind("netconf-session-start"),
                               {_kind("netconf-session-start"): session_parms(session.info)}))

    def session_ended(self, session, reason: str, killed_by: int | None) -> None:
        body = session_parms(session.info)
        body["termination-reason"] = reason
        if reason == "killed" and killed_by:
            body["killed-by"] = killed_by
        self.bus.publish(Event(_kind("netconf-session-end"),
                               {_kind("netconf-session-end"): body}))

    def capabilities_at_start(self, path: Path | None) -> None:
        """Publish netconf-capability-change when the capabilities differ from those the
        last run announced (kept in path)."""
        if path is None:
            return
        current = list(self.server.capabilities)
        try:
            before = json.loads(path.read_text())
        except (OSError, ValueError):
            before = None
        if before is not None and before != current:
            def base(cap):
                return cap.partition("?")[0]
            old = {base(c): c for c in before}
            new = {base(c): c for c in current}
            body = {"changed-by": {"server": [None]}}
            added = [c for b, c in new.items() if b not in old]
            deleted = [c for b, c in old.items() if b not in new]
            modified = [c for b, c in new.items() if b in old and old[b] != c]
            for name, values in (("added-capability", added),
                                 ("deleted-capability", deleted),
                                 ("modified-capability", modified)):
                if values:
                    body[name] = values
            self.bus.publish(Event(_kind("netconf-capability-change"),
                                   {_kind("netconf-capability-change"): body}))
        if before != current:
            try:
                atomic_write(path, json.dumps(current).encode(), sync=False)
            except OSError as exc:
                LOG.error("cannot write %s: %s", path, exc)

    # -- subscriptions ----------------------------------------------------------------
    def subscribe(self, session, flt, start=None, stop=None) -> "Subscription":
        subscription = Subscription(self, session, flt, start, stop)
        subscription.start()
        return subscription

    def streams_state(self) -> DataTree:
        """/nc-notifications:netconf/streams."""
        root = etree.Element("{%s}netconf" % STREAMS_NS, nsmap={None: STREAMS_NS})
        stream = etree.SubElement(etree.SubElement(root, "{%s}streams" % STREAMS_NS),
                                  "{%s}stream" % STREAMS_NS)
        for name, text in (("name", STREAM), ("description", STREAM_DESCRIPTION),
                           ("replaySupport", "true" if self.replay_support else "false")):
            etree.SubElement(stream, "{%s}%s" % (STREAMS_NS, name)).text = text
        if self.replay_support:
            etree.SubElement(stream, "{%s}replayLogCreationTime" % STREAMS_NS).text = \
                rfc3339(self.replay.created)
        return DataTree.parse(self.server.ctx, etree.tostring(root), config_only=False,
                              validate=False)


_NAME_ONLY = re.compile(r"/[A-Za-z_][\w.-]*:[A-Za-z_][\w.-]*")


def selects(ctx, flt, event) -> bool:
    """Whether a filter selects something of the event's notification. A filter that
    names notifications only is decided by the event's kind; another is evaluated once
    per event for all the subscriptions that have it."""
    if flt.selections is None:
        return True
    if all(_NAME_ONLY.fullmatch(s) for s in flt.selections):
        return "/" + event.kind in flt.selections
    key = ("filter", tuple(flt.selections))
    found = event.cache.get(key)
    if found is None:
        tree = notification_tree(ctx, event)
        try:
            selected = filters.select(ctx, [(tree, None)], flt)
            try:
                found = bool(selected.borrowed) or not selected.copies.empty
            finally:
                selected.release()
        finally:
            tree.free()
        event.cache[key] = found
    return found


def _special(name: str) -> Event:
    return Event(name, {name: {}})


class Subscription:
    """One session's create-subscription; see the module docstring."""

    def __init__(self, stream: Notifications, session, flt, start, stop):
        self.stream = stream
        self.session = session
        self.filter = flt
        self.start_time = start
        self.stop_time = stop
        self.task: asyncio.Task | None = None
        self.live = None
        self.replayed: list = []

    def start(self) -> None:
        """Take the replayed notifications and the live subscription at once (no await
        between them: nothing is published meanwhile), then send them in a task."""
        stream = self.stream
        if self.start_time is not None and stream.replay_support:
            self.replayed = stream.replay.events(self.start_time, self.stop_time)
        self.live = stream.bus.subscribe(
            "NETCONF session %d" % self.session.id, stream.queue_size,
            accept=lambda event: event.is_notification and event.kind not in (
                REPLAY_COMPLETE, NOTIFICATION_COMPLETE),
            on_overflow=self._overflowed)
        self.task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self.live is not None:
            self.live.close()
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def _overflowed(self, live) -> None:
        session = self.session
        self.stream.overflows += 1
        LOG.warning("session %d: its subscription fell %d notifications behind (the client "
                    "does not read them): ending the session", session.id, live.size)
        self.stop()
        asyncio.ensure_future(session.terminate(reason="other"))

    def _wanted(self, event) -> bool:
        return selects(self.stream.server.ctx, self.filter, event)

    async def _send(self, event) -> bool:
        """Send the event if the filter selects it; whether it did."""
        try:
            if not self._wanted(event):
                return False
            access = self.session.server.access(self.session)
            if access is not None:
                # NACM (RFC 8341 3.4.6): by name, then what it is about, per receiver
                event = access.notification(event)
                if event is None:
                    access.counters.denied_notifications += 1
                    return False
            message = notification_xml(self.stream.server.ctx, event)
        except RenderError as exc:
            LOG.error("notification %r cannot be sent: %s", event, exc)
            return False
        await self.session.notify(message)
        return True

    # what RFC 5277 sends at the end of a replay and at stopTime (RFC 8639: its own)
    def _replay_done(self) -> Event:
        return _special(REPLAY_COMPLETE)

    def _completed(self) -> Event | None:
        return _special(NOTIFICATION_COMPLETE)

    def _finished(self) -> None:
        """The subscription is over (stopTime): the session may subscribe again."""
        if self.session.subscription is self:
            self.session.subscription = None

    async def _run(self) -> None:
        session = self.session
        stop = self.stop_time
        try:
            for event in self.replayed:
                await self._send(event)
            self.replayed = []
            if self.start_time is not None:
                await self.session.notify(notification_xml(session.server.ctx,
                                                           self._replay_done()))
            while True:
                timeout = None
                if stop is not None:
                    timeout = (stop - now()).total_seconds()
                    if timeout <= 0:
                        break
                try:
                    event = await asyncio.wait_for(self.live.get(), timeout)
                except asyncio.TimeoutError:
                    break
                if stop is not None and event.time > stop:
                    break
                await self._send(event)
            completed = self._completed()
            if completed is not None:
                await self.session.notify(notification_xml(session.server.ctx, completed))
        except (Overflowed, Closed, asyncio.CancelledError):
            return
        except (ConnectionError, OSError) as exc:
            LOG.info("session %d: notifications stopped (%s)", session.id, exc)
            return
        except Exception:  # noqa: BLE001 - the session goes on without it
            LOG.exception("session %d: the notification subscription failed", session.id)
        finally:
            if self.live is not None:
                self.live.close()
        self._finished()
