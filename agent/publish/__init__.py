"""The agent's one event path: every channel (RFC 5277/6470 NETCONF notifications, YANG-push,
the ZeroMQ feed, alarms, the log) consumes the events the producers publish here.

For producers (any thread; publish() never blocks):

    from agent.publish import Change, Event
    bus.publish(Event("composer-sffg:graph-status-change",
                      {"composer-sffg:graph-status-change": {"graph-id": "g1", ...}},
                      changes=[Change("operational", "/composer-sffg:service-graphs/"
                                      "service-graph[id='g1']/state")]))

- kind: the notification's "module:name" (RFC 7951), or a name of that form for a change
  of state with no notification of its own (content None);
- content: the notification instance as RFC 7951 JSON, or a callable made once on first
  use (keep it off a hot path); it must fit the model (render.py checks it with libyang);
- changes: the subtrees the event changed, Change(datastore, data path), for on-change
  consumers ("/" for a whole datastore: a copy-config, a rollback); a change of running
  names running and operational; time: when it happened (now by default: stamp it where
  it happens).
The agent has one Bus (Agent.bus; the services get it); events it publishes now:
ietf-netconf-notifications:netconf-config-change (running and startup, with the edit
list and who made it), -session-start, -session-end, -confirmed-commit,
-capability-change; composer-sffg:graph-status-change and function-status-change (the
engine and the converger; the same status, reason and counts as <get>);
composer-domain:domain (no content: free VLAN ids, functional capabilities, free cores
changed; changes names the subtrees).

For consumers (on the event loop):

    subscription = bus.subscribe("yang-push 7", size=1000, accept=lambda e: ...,
                                 on_overflow=lambda s: ...)
    event = await subscription.get()      # raises Overflowed once it fell behind, Closed
    subscription.close()

A subscription gets the events published after subscribe(), in publish order, each once;
its queue is bounded: a consumer that falls behind loses the rest (on_overflow runs once,
then get() raises Overflowed after what was queued) and never slows the producers or the
other consumers. bus.add_listener(callable) sees every event synchronously on the loop
(the replay log). render.notification_xml / notification_json / notification_tree give
the notification as XML (RFC 5277 envelope), RFC 7951 JSON, or a libyang tree for
filtering; replay.ReplayLog keeps the last notifications (persisted) for replay.
"""

from .bus import DEFAULT_QUEUE, Bus, Closed, Overflowed, Subscription
from .event import Change, Event, now, parse_time, rfc3339
from .replay import ReplayLog

__all__ = ["Bus", "Change", "Closed", "DEFAULT_QUEUE", "Event", "Overflowed", "ReplayLog",
           "Subscription", "now", "parse_time", "rfc3339"]
