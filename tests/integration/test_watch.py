"""The watcher's sources on the real kernel: a process exit, a namespace deleted, a link
deleted in a namespace, each reported within milliseconds and without polling."""

import queue
import subprocess
import time

import pytest

from drivers import netlink
from drivers.watch import Watcher, alive, process_identity
from tests.resources import PREFIX


@pytest.fixture
def watcher():
    w = Watcher("%s-watch" % PREFIX)
    w.start()
    yield w
    w.close()


def _next(events, seconds=2.0):
    started = time.monotonic()
    item = events.get(timeout=seconds)
    return item, time.monotonic() - started


def test_a_watched_process_exit_is_reported(watcher):
    events = queue.Queue()
    proc = subprocess.Popen(["sleep", "30"])
    identity = process_identity(proc.pid)
    assert identity[2] == "sleep" and alive(identity)
    assert watcher.watch_process(proc.pid, lambda: events.put(proc.pid))
    time.sleep(0.05)
    assert events.empty()
    proc.kill()
    proc.wait()
    assert _next(events)[0] == proc.pid
    assert not alive(identity)
    assert not watcher.watch_process(proc.pid, lambda: None)


def test_an_unwatched_process_exit_is_not_reported(watcher):
    events = queue.Queue()
    proc = subprocess.Popen(["sleep", "30"])
    watcher.watch_process(proc.pid, lambda: events.put(proc.pid))
    watcher.unwatch_process(proc.pid)
    proc.kill()
    proc.wait()
    with pytest.raises(queue.Empty):
        events.get(timeout=0.3)


def test_a_deleted_namespace_is_reported(watcher):
    events = queue.Queue()
    name = "%swatchns" % PREFIX
    netlink.netns_add(name)
    try:
        watcher.watch_directory(netlink.NETNS_RUN_DIR, events.put)
        subprocess.run(["ip", "netns", "del", name], check=True)
        assert _next(events)[0] == name
    finally:
        netlink.netns_delete(name)


def test_a_deleted_link_in_a_namespace_is_reported(watcher):
    events = queue.Queue()
    node = "%swatchnode" % PREFIX
    netlink.netns_add(node)
    try:
        netlink.veth_add("%swa" % PREFIX, "%swb" % PREFIX, netns=node, peer_netns=node)
        netlink.watch_links(watcher, node, events.put)
        subprocess.run(["ip", "-n", node, "link", "del", "%swa" % PREFIX], check=True)
        seen = {_next(events)[0], _next(events)[0]}
        assert seen == {"%swa" % PREFIX, "%swb" % PREFIX}
    finally:
        netlink.release(node)
        netlink.netns_delete(node)
