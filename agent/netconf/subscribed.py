"""Dynamic subscriptions (RFC 8639) over NETCONF (RFC 8640): establish-, modify-,
delete- and kill-subscription, the subscription state notifications, and the /streams
and /subscriptions operational state. What a subscription sends comes from its kind:
an event stream subscription (the NETCONF stream: the bus's notifications, with replay
from the replay log), here; a datastore subscription (RFC 8641 YANG-push, periodic or
on-change), in yangpush.py.

Lifecycle of a subscription:
1. establish-subscription checks every parameter (an error carries the RFC 8639/8641
   identity as error-app-tag, with the error-tag RFC 8640 gives it) and makes the
   subscription, with an id unique in this server; the reply carries the id; the
   subscription starts sending once the reply is out.
2. modify-subscription (its own session only) changes its filter, stop-time, period or
   dampening: the subscription restarts with the new terms (same id and counters) and
   subscription-modified is sent.
3. It ends with delete-subscription (its own session; nothing is sent), with
   kill-subscription (any session; subscription-terminated, reason
   no-such-subscription, is sent to its receiver first), at stop-time
   (nothing is sent: subscription-completed is for configured subscriptions), when its
   session ends, or when its receiver falls too far
   behind (its queue overflows: its session is ended, as for create-subscription).
Features: encode-xml, replay, subtree, xpath (and yang-push on-change); not configured
subscriptions (composer-push-deviations refuses them), dscp, qos, encode-json.
"""

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

from _libyang import ffi
from lxml import etree

from ..datastore.schema import schema_index
from ..datastore.tree import DataTree
from ..publish import Event, now, parse_time, rfc3339
from ..publish.render import NOTIFICATION_NS, notification_xml
from . import filters
from .errors import RpcError
from .messages import elements, qname
from .notifications import STREAM, STREAM_DESCRIPTION, Subscription as StreamBase

LOG = logging.getLogger(__name__)

SN = "ietf-subscribed-notifications"
YP = "ietf-yang-push"
SN_NS = "urn:ietf:params:xml:ns:yang:ietf-subscribed-notifications"
YP_NS = "urn:ietf:params:xml:ns:yang:ietf-yang-push"

# RFC 8640 section 4 (and RFC 8641 section 5): the error-tag of each error identity
ERROR_TAGS = {
    "dscp-unavailable": "invalid-value", "encoding-unsupported": "invalid-value",
    "filter-unsupported": "invalid-value", "insufficient-resources": "resource-denied",
    "no-such-subscription": "invalid-value", "replay-unsupported": "operation-not-supported",
    "stream-unavailable": "invalid-value", "filter-unavailable": "invalid-value",
    "cant-exclude": "operation-not-supported", "datastore-not-subscribable": "invalid-value",
    "on-change-unsupported": "operation-not-supported",
    "on-change-sync-unsupported": "operation-not-supported",
    "period-unsupported": "invalid-value", "update-too-big": "too-big",
    "sync-too-big": "too-big", "unchanging-selection": "operation-failed",
}
YP_ERRORS = ("cant-exclude", "datastore-not-subscribable", "on-change-unsupported",
             "on-change-sync-unsupported", "period-unsupported", "update-too-big",
             "sync-too-big", "unchanging-selection")


def subscription_error(identity: str, message: str, element: str | None = None) -> RpcError:
    """An rpc-error of an RFC 8639/8641 error identity (its error-app-tag)."""
    module = YP if identity in YP_ERRORS else SN
    info = (("bad-element", element),) if element else ()
    return RpcError(ERROR_TAGS[identity], message, error_type="application",
                    app_tag="%s:%s" % (module, identity), info=info)


def state_event(name: str, body: dict) -> Event:
    """A subscription state notification (sent to the subscription's receiver only)."""
    kind = "%s:%s" % (SN, name)
    return Event(kind, {kind: body})


@dataclass
class Terms:
    """What a dynamic subscription asks for, as checked (see parse_terms)."""
    stream: str | None = None               # an event stream subscription
    datastore: str | None = None            # or a datastore one: running, operational
    filter: filters.Filter = field(default_factory=lambda: filters.EVERYTHING)
    filter_element: object = None           # the filter as given (reported back)
    filter_ref: str | None = None           # a filter of /sn:filters, by name
    replay_start: datetime | None = None
    stop_time: datetime | None = None
    period: int | None = None               # centiseconds (periodic)
    anchor: datetime | None = None
    on_change: bool = False
    dampening: int = 0                      # centiseconds
    sync_on_start: bool = True
    excluded: tuple = ()


def _text(element) -> str:
    return (element.text or "").strip()


def _child(parent, ns, name):
    return parent.find("{%s}%s" % (ns, name)) if parent is not None else None


def _time(element, name: str) -> datetime | None:
    if element is None:
        return None
    try:
        return parse_time(_text(element))
    except ValueError:
        raise RpcError("invalid-value", "%s: %r is not a date-and-time" % (name, _text(element)),
                       error_type="application", info=(("bad-element", name),)) from None


def _uint(element, name: str, maximum: int = 2 ** 32 - 1, identity: str | None = None) -> int:
    """A uint32 parameter; identity: the RFC 8639/8641 error identity of a bad one."""
    text = _text(element)
    if not (text.isascii() and text.isdigit()) or int(text) > maximum:
        message = "%s: %r is not a number within 0..%d" % (name, text[:40], maximum)
        if identity is not None:
            raise subscription_error(identity, message, name)
        raise RpcError("invalid-value", message, error_type="application",
                       info=(("bad-element", name),))
    return int(text)


def _identity(element, name: str, module_ns: str, allowed, identity: str,
              why: str = "") -> str:
    """The local name of an identityref value whose prefix maps to module_ns; another
    is refused with the RFC 8639/8641 error identity given."""
    prefix, sep, local = _text(element).rpartition(":")
    if element.nsmap.get(prefix if sep else None) != module_ns or local not in allowed:
        raise subscription_error(identity, "%s: %r is not one of %s%s" % (
            name, _text(element)[:80], ", ".join(allowed), why), name)
    return local


SN_PARAMS = ("stream", "stream-filter-name", "stream-subtree-filter", "stream-xpath-filter",
             "replay-start-time", "stop-time", "encoding", "id")
YP_PARAMS = ("datastore", "selection-filter-ref", "datastore-subtree-filter",
             "datastore-xpath-filter", "periodic", "on-change")
DATASTORES_NS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
MAX_XPATH = 16384           # characters of a subscription's XPath filter


def parse_terms(server, op, modify: bool = False) -> tuple[int | None, Terms]:
    """(the id given, for modify) and the Terms of an establish- or modify-subscription;
    raises RpcError for what is wrong or unsupported."""
    ctx = server.ctx
    found: dict = {}
    for child in elements(op):
        ns, name = qname(child)
        known = (ns == SN_NS and name in SN_PARAMS) or (ns == YP_NS and name in YP_PARAMS)
        if not known or (name == "id" and not modify) or \
                (modify and name in ("stream", "replay-start-time", "encoding")) or \
                (name == "id" and ns != SN_NS):
            raise RpcError("unknown-element", "unexpected parameter %s (namespace %s) in %s"
                           % (name, ns, qname(op)[1]), error_type="application",
                           info=(("bad-element", name),))
        if name in found:
            raise RpcError("bad-element", "parameter %s given twice" % name,
                           error_type="application", info=(("bad-element", name),))
        found[name] = child
    terms = Terms()
    ident = None
    if modify:
        if "id" not in found:
            raise RpcError("missing-element", "missing parameter id", error_type="application",
                           info=(("bad-element", "id"),))
        ident = _uint(found["id"], "id")
    stream_side = [n for n in ("stream", "stream-filter-name", "stream-subtree-filter",
                               "stream-xpath-filter", "replay-start-time") if n in found]
    datastore_side = [n for n in YP_PARAMS if n in found]
    if stream_side and datastore_side:
        raise RpcError("bad-element", "%s and %s: a subscription is to an event stream or "
                       "to a datastore, not both" % (stream_side[0], datastore_side[0]),
                       error_type="application", info=(("bad-element", datastore_side[0]),))
    flts = [n for n in ("stream-filter-name", "stream-subtree-filter", "stream-xpath-filter",
                        "selection-filter-ref", "datastore-subtree-filter",
                        "datastore-xpath-filter") if n in found]
    if len(flts) > 1:
        raise RpcError("bad-element", "%s and %s: give one filter" % tuple(flts[:2]),
                       error_type="application", info=(("bad-element", flts[1]),))
    if "encoding" in found:
        _identity(found["encoding"], "encoding", SN_NS, ("encode-xml",), "encoding-unsupported",
                  " (NETCONF sends notifications as XML only)")
    terms.stop_time = _time(found.get("stop-time"), "stop-time")
    if datastore_side:
        if "datastore" not in found:
            raise RpcError("missing-element", "missing parameter datastore",
                           error_type="application", info=(("bad-element", "datastore"),))
        terms.datastore = _identity(found["datastore"], "datastore", DATASTORES_NS,
                                    ("running", "candidate", "startup", "intended",
                                     "operational"), "datastore-not-subscribable")
        if terms.datastore not in ("running", "operational"):
            raise subscription_error("datastore-not-subscribable", "datastore %s cannot be "
                                     "subscribed to (running and operational can)"
                                     % terms.datastore, "datastore")
        _update_policy(found, terms, modify)
    else:
        if not modify:
            if "stream" not in found:
                raise RpcError("missing-element", "missing parameter stream (or datastore)",
                               error_type="application", info=(("bad-element", "stream"),))
            terms.stream = _text(found["stream"])
            if terms.stream != STREAM:
                raise subscription_error("stream-unavailable", "no stream %s (there is %s)"
                                         % (terms.stream, STREAM), "stream")
        terms.replay_start = _time(found.get("replay-start-time"), "replay-start-time")
    if flts:
        terms.filter_element = found[flts[0]]
        if flts[0] in ("stream-filter-name", "selection-filter-ref"):
            terms.filter_ref = _text(found[flts[0]])       # resolved on the loop: named()
        else:
            terms.filter = _filter(ctx, terms.filter_element)
    return ident, terms


def _filter(ctx, element, given: str | None = None) -> filters.Filter:
    """The Filter of a stream or selection filter element (given: the parameter that
    named it, for the error)."""
    name = etree.QName(element).localname
    notifications = name.startswith("stream")
    try:
        if name.endswith("subtree-filter"):
            selections = filters.subtree_selections(elements(element), ctx, notifications)
            if not selections:
                # as an XPath filter that selects nothing: a subscription to nothing is
                # a mistake (a foreign namespace, a typo), not something to keep
                raise RpcError("invalid-value", "the subtree filter selects no node of any "
                               "module", error_type="application")
            return filters.Filter(selections)
        select = _text(element)
        if len(select) > MAX_XPATH:
            # evaluated at every change for as long as the subscription lives
            raise RpcError("invalid-value", "the XPath filter is %d characters long (at most "
                           "%d)" % (len(select), MAX_XPATH), error_type="application")
        return filters.Filter([filters.xpath_selection(select, _namespaces(ctx, element),
                                                       ctx, notifications)])
    except RpcError as exc:
        raise subscription_error("filter-unsupported", str(exc), given or name) from None


def _namespaces(ctx, element) -> dict:
    """RFC 8639/8641: an XPath filter's prefixes are the implemented modules' names, and
    the namespace declarations in scope on its element (which win)."""
    index = schema_index(ctx)
    found = {}
    for module in index.modules():
        if module.implemented:
            name, namespace = ffi.string(module.name).decode(), ffi.string(module.ns).decode()
            found[name] = namespace
    found.update({k: v for k, v in element.nsmap.items() if k})
    return found


def resolve(session, terms: Terms) -> None:
    """On the event loop, once the terms are parsed: a named filter looked up in running's
    /filters, and the filter's size bounded as <get>'s."""
    from .operations import bounded         # operations registers these handlers
    if terms.filter_ref is not None:
        kind = etree.QName(terms.filter_element).localname
        terms.filter = _filter(session.server.ctx,
                               _filter_by_name(session.server, kind, terms.filter_ref), kind)
    bounded(session, terms.filter)


def _update_policy(found, terms: Terms, modify: bool = False) -> None:
    """The update trigger (periodic or on-change); modify: it may be left out, to keep
    the subscription's (RFC 8641 update-policy-modifiable)."""
    periodic, on_change = found.get("periodic"), found.get("on-change")
    if periodic is not None and on_change is not None:
        raise RpcError("bad-element", "periodic and on-change: give one", error_type="application",
                       info=(("bad-element", "on-change"),))
    if periodic is None and on_change is None and modify:
        return
    if periodic is None and on_change is None:
        raise RpcError("missing-element", "a datastore subscription needs periodic or on-change",
                       error_type="application", info=(("bad-element", "periodic"),))
    if periodic is not None:
        _only(periodic, ("period", "anchor-time"))
        period = _child(periodic, YP_NS, "period")
        if period is None:
            raise RpcError("missing-element", "periodic needs a period", error_type="application",
                           info=(("bad-element", "period"),))
        terms.period = _uint(period, "period", identity="period-unsupported")
        terms.anchor = _time(_child(periodic, YP_NS, "anchor-time"), "anchor-time")
    else:
        _only(on_change, ("dampening-period", "sync-on-start", "excluded-change"), ("excluded-change",))
        terms.on_change = True
        dampening = _child(on_change, YP_NS, "dampening-period")
        terms.dampening = _uint(dampening, "dampening-period", identity="period-unsupported") \
            if dampening is not None else 0
        sync = _child(on_change, YP_NS, "sync-on-start")
        if sync is not None:
            if _text(sync) not in ("true", "false"):
                raise RpcError("invalid-value", "sync-on-start is true or false",
                               error_type="application", info=(("bad-element", "sync-on-start"),))
            terms.sync_on_start = _text(sync) == "true"
        excluded = []
        for element in on_change.iterfind("{%s}excluded-change" % YP_NS):
            if _text(element) not in ("create", "delete", "insert", "move", "replace"):
                raise RpcError("invalid-value", "excluded-change %r is not a change type"
                               % _text(element)[:80], error_type="application",
                               info=(("bad-element", "excluded-change"),))
            excluded.append(_text(element))
        terms.excluded = tuple(dict.fromkeys(excluded))


def _only(parent, names, repeatable=()) -> None:
    seen = set()
    for child in elements(parent):
        ns, name = qname(child)
        if ns != YP_NS or name not in names:
            raise RpcError("unknown-element", "unexpected %s in %s" % (name, qname(parent)[1]),
                           error_type="application", info=(("bad-element", name),))
        if name in seen and name not in repeatable:
            raise RpcError("bad-element", "%s given twice" % name, error_type="application",
                           info=(("bad-element", name),))
        seen.add(name)


def _filter_by_name(server, kind: str, name: str):
    """The filter element of a named filter in running's /sn:filters."""
    if kind == "stream-filter-name":
        path = "/%s:filters/stream-filter[name='%s']" % (SN, name.replace("'", ""))
        wanted = ("stream-subtree-filter", "stream-xpath-filter")
    else:
        path = "/%s:filters/%s:selection-filter[filter-id='%s']" % (SN, YP,
                                                                    name.replace("'", ""))
        wanted = ("datastore-subtree-filter", "datastore-xpath-filter")
    running = server.datastores.running
    node = running.find(path)
    if node is None:
        raise subscription_error("filter-unavailable", "no filter %s in /filters" % name, kind)
    text = running.print("explicit", node=node)
    for child in elements(etree.fromstring(text)):
        if qname(child)[1] in wanted:
            return child
    raise subscription_error("filter-unavailable", "filter %s holds no filter" % name, kind)


class Dynamic:
    """What every dynamic subscription has: id, session, terms, counters, state."""

    kind = "dynamic"

    def __init__(self, registry: "Subscriptions", ident: int, session, terms: Terms):
        self.registry = registry
        self.id = ident
        self.session = session
        self.terms = terms
        self.sent = 0
        self.excluded = 0
        self.state = "active"

    async def prepare(self) -> None:
        """What must be done before the reply (the first snapshot of an on-change
        subscription)."""

    def begin(self) -> None:
        """Start sending (after the establish reply is out)."""

    def halt(self) -> None:
        """Stop sending, at once."""

    async def send_state(self, name: str, body: dict | None = None) -> None:
        """A subscription state notification, to this subscription's receiver."""
        content = {"id": self.id}
        content.update(body or {})
        await self.session.notify(notification_xml(self.registry.server.ctx,
                                                   state_event(name, content)))

    def describe(self, parent) -> None:
        """The subscription's terms under an lxml element (/subscriptions, -modified)."""
        terms = self.terms

        def sub(element, ns, name, text=None):
            child = etree.SubElement(element, "{%s}%s" % (ns, name))
            if text is not None:
                child.text = text
            return child
        if terms.datastore is not None:         # the ds prefix is declared above
            sub(parent, YP_NS, "datastore", "ds:%s" % terms.datastore)
        if terms.filter_element is not None:
            parent.append(_copy(terms.filter_element))
        if terms.stream is not None:
            sub(parent, SN_NS, "stream", terms.stream)
            if terms.replay_start is not None:
                sub(parent, SN_NS, "replay-start-time", rfc3339(terms.replay_start))
        if terms.stop_time is not None:
            sub(parent, SN_NS, "stop-time", rfc3339(terms.stop_time))
        sub(parent, SN_NS, "encoding", "sn:encode-xml")
        if terms.period is not None:
            periodic = sub(parent, YP_NS, "periodic")
            sub(periodic, YP_NS, "period", str(terms.period))
            if terms.anchor is not None:
                sub(periodic, YP_NS, "anchor-time", rfc3339(terms.anchor))
        if terms.on_change:
            on_change = sub(parent, YP_NS, "on-change")
            sub(on_change, YP_NS, "dampening-period", str(terms.dampening))
            sub(on_change, YP_NS, "sync-on-start", "true" if terms.sync_on_start else "false")
            for change in terms.excluded:
                sub(on_change, YP_NS, "excluded-change", change)


def _copy(element):
    copy = etree.fromstring(etree.tostring(element))
    copy.tail = None
    return copy


class StreamSubscription(Dynamic):
    """An event stream subscription: the NETCONF stream's notifications (pub1's
    create-subscription machinery), with RFC 8639's replay-completed and
    subscription-completed, and counters."""

    kind = "stream"

    def __init__(self, registry, ident, session, terms):
        super().__init__(registry, ident, session, terms)
        self.worker: _StreamWorker | None = None

    def begin(self) -> None:
        self.worker = _StreamWorker(self)
        self.worker.start()

    def halt(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None


class _StreamWorker(StreamBase):
    """create-subscription's sender, speaking RFC 8639 for one dynamic subscription."""

    def __init__(self, owner: StreamSubscription):
        terms = owner.terms
        super().__init__(owner.registry.server.notifications, owner.session, terms.filter,
                         terms.replay_start, terms.stop_time)
        self.owner = owner

    async def _send(self, event) -> bool:
        sent = await super()._send(event)
        if sent:
            self.owner.sent += 1
        else:
            self.owner.excluded += 1
        return sent

    def _replay_done(self) -> Event:
        return state_event("replay-completed", {"id": self.owner.id})

    def _completed(self) -> None:
        return None         # subscription-completed is for configured subscriptions only

    def _finished(self) -> None:
        self.owner.registry.forget(self.owner)


class Subscriptions:
    """The server's dynamic subscriptions; see the module docstring."""

    def __init__(self, server, max_subscriptions: int = 100, min_period: int = 10):
        self.server = server
        self.max_subscriptions = max_subscriptions
        self.min_period = min_period            # centiseconds
        self.by_id: dict[int, Dynamic] = {}
        self._next = 0
        self._snapshots = None
        self._feeds: dict = {}                  # (datastore, filter) -> yangpush.ChangeFeed

    def shared_snapshots(self):
        """The snapshots the on-change subscriptions share (yangpush.SharedSnapshots)."""
        if self._snapshots is None:
            from .yangpush import SharedSnapshots
            self._snapshots = SharedSnapshots(self.server.bus)
        return self._snapshots

    def change_feed(self, subscription):
        """The ChangeFeed of the subscription's datastore and filter (made if need be)."""
        feed = self._feeds.get(subscription.key)
        if feed is None:
            from .yangpush import ChangeFeed
            feed = self._feeds[subscription.key] = ChangeFeed(self, subscription)
        return feed

    def feed_ended(self, feed) -> None:
        if self._feeds.get(feed.key) is feed:
            del self._feeds[feed.key]

    def _new_id(self) -> int:
        self._next += 1
        return self._next

    def make(self, session, terms: Terms, ident: int | None = None) -> Dynamic:
        from .yangpush import DatastoreSubscription
        if ident is None:
            if len(self.by_id) >= self.max_subscriptions:
                raise subscription_error("insufficient-resources", "%d subscriptions exist "
                                         "already (notifications.max-subscriptions)"
                                         % len(self.by_id))
            ident = self._new_id()
        if terms.datastore is not None:
            return DatastoreSubscription(self, ident, session, terms)
        return StreamSubscription(self, ident, session, terms)

    def check(self, terms: Terms) -> None:
        """What the terms ask that this server cannot do."""
        notifications = self.server.notifications
        if terms.replay_start is not None:
            if not notifications.replay_support:
                raise subscription_error("replay-unsupported", "the NETCONF stream keeps no "
                                         "replay log", "replay-start-time")
            if terms.replay_start >= now():
                raise subscription_error("replay-unsupported", "replay-start-time is not "
                                         "in the past", "replay-start-time")
        if terms.stop_time is not None:
            start = terms.replay_start or now()
            if terms.stop_time <= start:
                raise RpcError("invalid-value", "stop-time must be later than %s" % (
                    "replay-start-time" if terms.replay_start else "now"),
                    error_type="application", info=(("bad-element", "stop-time"),))
        if terms.period is not None and terms.period < self.min_period:
            raise subscription_error("period-unsupported", "the period is %d centiseconds: "
                                     "at least %d (notifications.push-min-period)"
                                     % (terms.period, self.min_period), "period")
        if terms.period == 0:
            raise subscription_error("period-unsupported", "a period of 0", "period")

    def replay_revision(self, terms: Terms):
        """The earliest time the replay log covers, when a replay asked for earlier
        (RFC 8639 replay-start-time-revision), else None."""
        replay = self.server.notifications.replay
        if terms.replay_start is None or replay is None:
            return None
        earliest = getattr(replay, "aged", None) or replay.created
        return earliest if terms.replay_start < earliest else None

    def add(self, subscription: Dynamic) -> None:
        self.by_id[subscription.id] = subscription

    def forget(self, subscription: Dynamic) -> None:
        if self.by_id.get(subscription.id) is subscription:
            del self.by_id[subscription.id]
            subscription.halt()
        if self._snapshots is not None and not any(
                s.terms.on_change for s in self.by_id.values()):
            self._snapshots.clear()             # nobody shares them any more

    def owned(self, session, ident: int, element: str = "id") -> Dynamic:
        found = self.by_id.get(ident)
        if found is None or found.session is not session:
            raise subscription_error("no-such-subscription", "no subscription %d of this "
                                     "session" % ident, element)
        return found

    def session_ended(self, session) -> None:
        for subscription in [s for s in self.by_id.values() if s.session is session]:
            self.forget(subscription)

    async def kill(self, ident: int) -> None:
        found = self.by_id.get(ident)
        if found is None:
            raise subscription_error("no-such-subscription", "no subscription %d" % ident, "id")
        self.forget(found)
        try:
            await found.send_state("subscription-terminated",
                                   {"reason": "%s:no-such-subscription" % SN})
        except (ConnectionError, OSError):
            pass

    # -- operational state ------------------------------------------------------------
    def state(self) -> DataTree:
        """/sn:streams and /sn:subscriptions."""
        notifications = self.server.notifications
        root = etree.Element("{%s}streams" % SN_NS, nsmap={None: SN_NS})
        stream = etree.SubElement(root, "{%s}stream" % SN_NS)
        etree.SubElement(stream, "{%s}name" % SN_NS).text = STREAM
        etree.SubElement(stream, "{%s}description" % SN_NS).text = STREAM_DESCRIPTION
        replay = notifications.replay if notifications.replay_support else None
        if replay is not None:
            etree.SubElement(stream, "{%s}replay-support" % SN_NS)
            etree.SubElement(stream, "{%s}replay-log-creation-time" % SN_NS).text = \
                rfc3339(replay.created)
            if getattr(replay, "aged", None) is not None:
                etree.SubElement(stream, "{%s}replay-log-aged-time" % SN_NS).text = \
                    rfc3339(replay.aged)
        texts = [etree.tostring(root)]
        if self.by_id:
            subs = etree.Element("{%s}subscriptions" % SN_NS,
                                 nsmap={None: SN_NS, "yp": YP_NS, "ds": DATASTORES_NS,
                                        "sn": SN_NS})
            for ident in sorted(self.by_id):
                subscription = self.by_id[ident]
                entry = etree.SubElement(subs, "{%s}subscription" % SN_NS)
                etree.SubElement(entry, "{%s}id" % SN_NS).text = str(ident)
                subscription.describe(entry)
                receiver = etree.SubElement(etree.SubElement(entry, "{%s}receivers" % SN_NS),
                                            "{%s}receiver" % SN_NS)
                etree.SubElement(receiver, "{%s}name" % SN_NS).text = \
                    "NETCONF session %d" % subscription.session.id
                etree.SubElement(receiver, "{%s}sent-event-records" % SN_NS).text = \
                    str(subscription.sent)
                etree.SubElement(receiver, "{%s}excluded-event-records" % SN_NS).text = \
                    str(subscription.excluded)
                etree.SubElement(receiver, "{%s}state" % SN_NS).text = subscription.state
            texts.append(etree.tostring(subs))
        return DataTree.parse(self.server.ctx, b"".join(texts), config_only=False,
                              validate=False)


# -- the RPCs ------------------------------------------------------------------------------
def _registry(session) -> Subscriptions:
    return session.server.subscriptions


# a parameter of the on-change or periodic choice -> its container (for error-path)
_UNDER = {"period": "periodic", "anchor-time": "periodic", "dampening-period": "on-change",
          "sync-on-start": "on-change", "excluded-change": "on-change"}


def _error_path(operation: str, exc: RpcError) -> str:
    """The error-path of an error of an operation's input: its bad-element's data path
    (the operation's own, for an element the model does not have there)."""
    base = "/%s:%s" % (SN, operation)
    bad = dict(exc.info).get("bad-element")
    if exc.tag == "unknown-element" or bad is None:
        return base
    if bad in SN_PARAMS:
        return "%s/%s" % (base, bad)
    if bad in YP_PARAMS:
        return "%s/%s:%s" % (base, YP, bad)
    if bad in _UNDER:
        return "%s/%s:%s/%s" % (base, YP, _UNDER[bad], bad)
    return base


def _located(operation: str):
    """Every rpc-error of the handler says where in the input it is (error-path)."""
    def wrap(handler):
        async def run(session, op):
            try:
                return await handler(session, op)
            except RpcError as exc:
                if exc.path is None:
                    exc.path = _error_path(operation, exc)
                raise
        run.__name__ = handler.__name__
        run.__doc__ = handler.__doc__
        return run
    return wrap


@_located("establish-subscription")
async def establish(session, op) -> bytes:
    registry = _registry(session)
    _, terms = await session.prepare(parse_terms, session.server, op)
    resolve(session, terms)
    registry.check(terms)
    subscription = registry.make(session, terms)
    try:
        await subscription.prepare()
    except BaseException:
        subscription.halt()
        raise
    registry.add(subscription)
    # it starts once the reply is out (its first notification follows the reply)
    session.after_reply_calls.append(subscription.begin)
    reply = b'<id xmlns="%s">%d</id>' % (SN_NS.encode(), subscription.id)
    revised = registry.replay_revision(terms)
    if revised is not None:
        reply += b'<replay-start-time-revision xmlns="%s">%s</replay-start-time-revision>' % (
            SN_NS.encode(), rfc3339(revised).encode())
    return reply


@_located("modify-subscription")
async def modify(session, op) -> bytes:
    registry = _registry(session)
    ident, terms = await session.prepare(parse_terms, session.server, op, True)
    resolve(session, terms)
    old = registry.owned(session, ident)
    if terms.filter_element is None:
        # no filter given (RFC 8639 2.4.3: what is not given is kept): the old one, and
        # the old target with it (a modify of the stop-time or the period alone)
        terms.filter, terms.filter_element, terms.filter_ref = (
            old.terms.filter, old.terms.filter_element, old.terms.filter_ref)
        if terms.datastore is None:
            terms.datastore = old.terms.datastore
    if (terms.datastore is None) != (old.terms.datastore is None) or \
            (terms.datastore is not None and terms.datastore != old.terms.datastore):
        raise RpcError("invalid-value", "a subscription keeps its %s" % (
            "datastore" if old.terms.datastore else "stream"), error_type="application",
            info=(("bad-element", "datastore"),))
    if terms.stream is None and old.terms.stream is not None:
        terms.stream = old.terms.stream
    if terms.datastore is not None and terms.period is None and not terms.on_change:
        terms.period, terms.anchor = old.terms.period, old.terms.anchor
        terms.on_change, terms.dampening = old.terms.on_change, old.terms.dampening
    if terms.datastore is not None:
        terms.sync_on_start, terms.excluded = old.terms.sync_on_start, old.terms.excluded
    registry.check(terms)
    new = registry.make(session, terms, ident)
    try:
        await new.prepare()
    except BaseException:
        new.halt()
        raise
    new.sent, new.excluded = old.sent, old.excluded
    old.halt()
    registry.by_id[ident] = new

    async def started():
        body = etree.Element("{%s}subscription-modified" % SN_NS,
                             nsmap={None: SN_NS, "yp": YP_NS, "ds": DATASTORES_NS,
                                    "sn": SN_NS})
        etree.SubElement(body, "{%s}id" % SN_NS).text = str(ident)
        new.describe(body)
        try:
            await session.notify(envelope(etree.tostring(body)))
        except (ConnectionError, OSError):
            return
        new.begin()
    session.after_reply_calls.append(lambda: asyncio.ensure_future(started()))
    return b"<ok/>"


def envelope(body: bytes, when: datetime | None = None) -> bytes:
    """A <notification> (RFC 5277) around body, with eventTime when (now by default)."""
    return b'<notification xmlns="%s"><eventTime>%s</eventTime>%s</notification>' % (
        NOTIFICATION_NS.encode(), rfc3339(when or now()).encode(), body)


def _id_param(session, op) -> int:
    from .operations import Params         # operations registers these handlers
    params = Params(op, [(SN_NS, "id")], session.server.ctx)
    params.require("id")
    return int(params.text("id"))


@_located("delete-subscription")
async def delete(session, op) -> bytes:
    registry = _registry(session)
    registry.forget(registry.owned(session, _id_param(session, op)))
    return b"<ok/>"


@_located("kill-subscription")
async def kill(session, op) -> bytes:
    await _registry(session).kill(_id_param(session, op))
    return b"<ok/>"


__all__ = ["Subscriptions", "Terms", "envelope", "subscription_error"]
