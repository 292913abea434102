"""The replay log: the notifications of the last while, kept in memory and on disk, for
RFC 5277 replay (startTime) and any channel that replays (RFC 8639).

Bounded by count (max_events) and age (max_age seconds): the oldest go first. On disk it
is a file of JSON lines (<state>/notifications/replay.log): its first line holds the
log's creation time, each other line one event. Appends are handed to a thread of its
own every FLUSH_AFTER seconds, which writes them in order, without fsync (a crash of the
agent may lose the last 0.2 s of them, a crash of the machine a little more); the file
is rewritten, atomically, once it holds twice the events kept. A log that cannot be read
is started anew (logged), with a new creation time, as RFC 5277 replayLogCreationTime
says.
"""

import asyncio
import json
import logging
import queue
import threading
from collections import deque
from datetime import datetime, timedelta
from pathlib import Path

from ..files import atomic_write
from .event import Event, now, parse_time, rfc3339

LOG = logging.getLogger(__name__)

FLUSH_AFTER = 0.2           # seconds an appended event may wait in the writer's buffer
KEEP_RENDERED = 100         # the newest events keep their renderings (the live fan-out)


class ReplayLog:
    """See the module docstring. append() and events() are called on the event loop."""

    def __init__(self, path: Path | None, max_events: int = 1000,
                 max_age: float = 7 * 86400):
        self.path = Path(path) if path is not None else None
        self.max_events = max_events
        self.max_age = max_age
        self.created: datetime = now()
        self.aged: datetime | None = None      # time of the newest event dropped for age/size
        self._events: deque = deque()
        self._lines = 0                         # event lines in the file
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._batch: list = []                  # appended, not yet handed to the writer

    @property
    def enabled(self) -> bool:
        return self.max_events > 0

    # -- lifecycle ------------------------------------------------------------------
    def load(self) -> None:
        """Read the file (blocking: call in a worker thread at start) and start the
        writer."""
        if self.path is not None and self.enabled:
            self._read()
            self._writer = threading.Thread(target=self._write_loop, name="replay-log",
                                            daemon=True)
            self._writer.start()

    def _read(self) -> None:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            self._rewrite()
            return
        except OSError as exc:
            LOG.error("cannot read the replay log %s (%s): starting a new one", self.path, exc)
            self._rewrite()
            return
        try:
            self.created = parse_time(json.loads(lines[0])["created"])
            events = [Event.from_dict(json.loads(line)) for line in lines[1:] if line.strip()]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            LOG.error("the replay log %s is damaged (%s): starting a new one", self.path, exc)
            self.created = now()
            self._rewrite()
            return
        self._events.extend(events)
        self._lines = len(events)
        self._trim()
        LOG.info("replay log: %d notifications since %s", len(self._events),
                 rfc3339(self.created))

    def close(self) -> None:
        """Write what is pending, stop the writer."""
        self._hand_over()
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join(30)
            self._writer = None

    def flush(self) -> None:
        """Wait until what was appended is on disk (tests)."""
        self._hand_over()
        if self._writer is not None:
            done = threading.Event()
            self._queue.put(done)
            done.wait(30)

    # -- use --------------------------------------------------------------------------
    def append(self, event: Event) -> None:
        """Keep a notification (a bus listener: on the loop; the file is written by the
        writer thread, which also makes a lazy content)."""
        if not self.enabled or not event.is_notification:
            return
        self._events.append(event)
        if len(self._events) > KEEP_RENDERED:
            # what the live subscribers sent is not needed again: the log keeps the content
            self._events[-KEEP_RENDERED - 1].cache.clear()
        self._trim()
        if self._writer is not None:
            # handed to the writer in batches: one wake-up of its thread per FLUSH_AFTER
            self._batch.append(event)
            if len(self._batch) == 1:
                try:
                    asyncio.get_running_loop().call_later(FLUSH_AFTER, self._hand_over)
                except RuntimeError:            # no loop (tests): at once
                    self._hand_over()

    def _hand_over(self) -> None:
        batch, self._batch = self._batch, []
        if batch:
            self._queue.put(batch)

    def events(self, start: datetime, stop: datetime | None = None) -> list:
        """The notifications whose eventTime is within [start, stop], in order."""
        self._trim()
        return [e for e in self._events if e.time >= start and (stop is None or e.time <= stop)]

    @property
    def last_seq(self) -> int:
        return self._events[-1].seq if self._events else 0

    @property
    def oldest(self) -> datetime | None:
        return self._events[0].time if self._events else None

    def _trim(self) -> None:
        limit = now() - timedelta(seconds=self.max_age) if self.max_age > 0 else None
        while self._events and (len(self._events) > self.max_events or
                                (limit is not None and self._events[0].time < limit)):
            self.aged = self._events.popleft().time

    # -- the writer thread -------------------------------------------------------------
    def _write_loop(self) -> None:
        stream = None
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                if isinstance(item, threading.Event):
                    item.set()
                    continue
                for event in item:
                    try:
                        if self._lines >= 2 * max(self.max_events, 1):
                            if stream is not None:
                                stream.close()
                                stream = None
                            self._rewrite(before=event)
                        if stream is None:
                            stream = open(self.path, "a", encoding="utf-8")
                        stream.write(json.dumps(event.to_dict(), separators=(",", ":"))
                                     + "\n")
                        self._lines += 1
                    except (OSError, TypeError, ValueError) as exc:
                        LOG.error("cannot write event #%d to the replay log %s: %s",
                                  event.seq, self.path, exc)
                if stream is not None:
                    stream.flush()
        finally:
            if stream is not None:
                stream.close()

    def _rewrite(self, before: Event | None = None) -> None:
        """The file anew: its header and the events kept (atomically); before: only
        those appended before that one (the later ones are still queued for writing)."""
        kept = list(self._events)        # one C call: atomic against the loop's appends
        if before is not None:
            index = next((i for i, e in enumerate(kept) if e is before), 0)
            kept = kept[:index]
        lines = [json.dumps({"created": rfc3339(self.created)})]
        lines += [json.dumps(e.to_dict(), separators=(",", ":")) for e in kept]
        try:
            atomic_write(self.path, ("\n".join(lines) + "\n").encode(), sync=False)
            self._lines = len(kept)
        except OSError as exc:
            LOG.error("cannot write the replay log %s: %s", self.path, exc)
