"""What happened on the node, as one value every channel can use: an Event.

An event is made where the thing happens (the datastores' observer, a session, the engine,
the converger, a watcher) and carries:
- kind: what happened. For a YANG notification it is the notification's qualified name,
  "module:name" as RFC 7951 writes it ("ietf-netconf-notifications:netconf-config-change",
  "composer-sffg:graph-status-change"); other events (a change of state with no
  notification of its own) use a name of the same form ("composer-domain:domain").
- time: when it happened (UTC, stamped at the source, not at delivery); event_time is
  the RFC 3339 text of it (the notification's eventTime).
- content: the notification instance as RFC 7951 JSON, {"module:name": {...}}, or None
  for an event that is not a notification. It may be given as a callable, called once
  (in whichever thread first asks), so that a producer on a hot path (a commit) pays
  only for what someone reads.
- changes: a hint of the datastore subtrees the event changed, Change(datastore, path),
  path a data path in libyang's form (module-name prefixes, key predicates):
  ("operational", "/composer-sffg:service-graphs/service-graph[id='g1']/state"). An
  on-change consumer re-reads those subtrees instead of everything.
- seq: the bus's sequence number, set when it is published (0 before).
"""

import threading
from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True)
class Change:
    """A subtree an event changed: datastore is "running", "startup" or "operational"."""
    datastore: str
    path: str


def now() -> datetime:
    return datetime.now(timezone.utc)


def rfc3339(when: datetime) -> str:
    """yang:date-and-time in UTC with microseconds."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """A yang:date-and-time (any offset, 'Z', fractions of a second) as an aware datetime."""
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    if "." in text:                 # Python takes at most 6 digits of a fraction
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        text = head + "." + (digits[:6].ljust(6, "0")) + rest[len(digits):]
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when


class Event:
    """See the module docstring. Immutable once published, but for the caches below."""

    __slots__ = ("kind", "time", "changes", "seq", "_content", "_lock", "cache")

    def __init__(self, kind: str, content=None, changes=(), time: datetime | None = None):
        self.kind = kind
        self.time = time if time is not None else now()
        self.changes = tuple(changes)
        self.seq = 0
        self._content = content
        self._lock = threading.Lock()
        self.cache: dict = {}           # renderings, per channel (see render.py)

    @property
    def is_notification(self) -> bool:
        return self._content is not None

    @property
    def content(self) -> dict | None:
        """The notification instance (RFC 7951 JSON), made on first use."""
        content = self._content
        if callable(content):
            with self._lock:
                if callable(self._content):
                    self._content = self._content()
                content = self._content
        return content

    @property
    def event_time(self) -> str:
        return rfc3339(self.time)

    @property
    def body(self) -> dict:
        """What is under the notification's own node ({} when there is none)."""
        content = self.content or {}
        return content.get(self.kind, {}) if isinstance(content, dict) else {}

    def summary(self) -> str:
        """One line for the log."""
        body = self.body
        parts = ["%s=%s" % (k, v) for k, v in body.items()
                 if isinstance(v, (str, int, float, bool)) and k != "message"]
        if self.changes and not parts:
            parts = [c.path for c in self.changes[:3]]
        return " ".join(parts)[:300]

    def __repr__(self) -> str:
        return "Event(#%d %s at %s)" % (self.seq, self.kind, self.event_time)

    # -- persistence (the replay log) ---------------------------------------------
    def to_dict(self) -> dict:
        return {"seq": self.seq, "time": self.event_time, "kind": self.kind,
                "content": self.content,
                "changes": [[c.datastore, c.path] for c in self.changes]}

    @classmethod
    def from_dict(cls, data: dict) -> "Event":
        event = cls(data["kind"], data.get("content"),
                    [Change(d, p) for d, p in data.get("changes", ())],
                    parse_time(data["time"]))
        event.seq = int(data.get("seq", 0))
        return event
