"""Helpers for tests of what drivers watch: a watcher whose events land in a queue."""

import contextlib
import queue

from drivers.watch import Watcher
from tests.resources import PREFIX


@contextlib.contextmanager
def watching(driver):
    """A started Watcher whose events from driver.watch() go to the queue yielded."""
    watcher = Watcher("%s-watch" % PREFIX)
    watcher.start()
    found = queue.Queue()
    driver.watch(watcher, found.put)
    try:
        yield found
    finally:
        driver.unwatch()
        watcher.close()


def quiet(events, seconds: float = 0.4) -> None:
    """Fail if an event comes within seconds."""
    try:
        event = events.get(timeout=seconds)
    except queue.Empty:
        return
    raise AssertionError("unexpected event %s" % event)
