"""Watching what the drivers made, without polling: one thread waits on file descriptors and
each driver turns what they say into Events for a sink.

What wakes the thread: a pidfd per watched process (readable when it exits), an inotify
descriptor per watched directory (/run/netns: a namespace deleted), a netlink socket per
watched network namespace (a link deleted), the OpenFlow connections of the vSwitch driver
(a flow monitor: flows changed by another client). Nothing is read on a timer.

Lifecycle:
  1. Watcher(); start();
  2. drivers register descriptors (add, watch_process, watch_directory) with a callback
     that runs on the watcher's thread when the descriptor is readable; callbacks are
     short (read, decode, hand an Event to the sink) and never block;
  3. close(): the thread ends and every descriptor the watcher opened is closed.
A driver reports only what it did not do itself: its own deletions are not events.
"""

import ctypes
import errno
import logging
import os
import selectors
import struct
import threading
from dataclasses import dataclass

LOG = logging.getLogger(__name__)

# What an Event is about, and what happened to it.
FUNCTION, PORT, LSI, FLOWS, DAEMON, NODE = "function", "port", "lsi", "flows", "daemon", "node"
LOST, EXITED, CHANGED, RESYNC = "lost", "exited", "changed", "resync"


@dataclass(frozen=True)
class Event:
    """Something happened to a resource a driver made, and the driver did not do it.

    subject: FUNCTION (name: the instance), PORT (a vSwitch port), LSI, FLOWS (name: the
    LSI whose flows changed), DAEMON (a vSwitch daemon) or NODE (events may have been lost:
    check everything). what: LOST (it is gone), EXITED (a process of it exited), CHANGED
    (look at it), RESYNC. detail says what was seen, for people; cookies, for FLOWS, those
    of the flows that changed."""
    subject: str
    name: str
    what: str
    detail: str = ""
    cookies: tuple = ()     # FLOWS: the cookies of the flows that changed

    def __str__(self) -> str:
        return "%s %s %s%s" % (self.subject, self.name, self.what,
                               ": %s" % self.detail if self.detail else "")


# --- processes ---

def _stat(pid: int) -> tuple | None:
    """(command name, the fields after it) of /proc/<pid>/stat; None without a live
    process."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as stream:
            stat = stream.read().decode(errors="replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return stat[stat.find("(") + 1:stat.rfind(")")], fields


def process_identity(pid: int) -> tuple | None:
    """(pid, start time in clock ticks since boot, command name) of a live process, None
    when there is none: a pid alone may name another process after a reuse."""
    stat = _stat(pid)
    return None if stat is None else (pid, int(stat[1][19]), stat[0])


def daemons(pids) -> list:
    """The process_identity() of those of pids whose parent is not one of pids: in a
    function's namespace after its `start`, the processes it left running (a daemon's
    short-lived children are not among them)."""
    group = set(pids)
    out = []
    for pid in sorted(group):
        stat = _stat(pid)
        if stat is not None and int(stat[1][1]) not in group:
            out.append((pid, int(stat[1][19]), stat[0]))
    return out


def group_alive(pgid: int) -> bool:
    """Whether a live process (a zombie is not) of process group pgid is left."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None and int(stat[1][2]) == pgid:
                return True
    return False


def alive(identity) -> bool:
    """Whether the process of a process_identity() still runs (the same one)."""
    pid, started = identity[0], identity[1]
    now = process_identity(pid)
    return now is not None and now[1] == started


# --- inotify ---

IN_MOVED_FROM, IN_DELETE, IN_DELETE_SELF = 0x40, 0x200, 0x400
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
_INOTIFY_EVENT = struct.Struct("iIII")
_libc = ctypes.CDLL(None, use_errno=True)


class Watcher:
    """One thread with one selector; see the module docstring."""

    def __init__(self, name: str = "watcher"):
        self.name = name
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._owned: set = set()             # descriptors the watcher opened and closes
        self._pids: dict = {}                # pid -> its pidfd
        self._thread = None
        self._closed = False

    # --- lifecycle ---

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        os.write(self._wake_w, b"x")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        with self._lock:
            for fd in list(self._owned):
                self._forget(fd)
            self._pids.clear()
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _run(self) -> None:
        while not self._closed:
            try:
                ready = self._selector.select()
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            for key, _ in ready:
                if key.data is None:
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass
                    continue
                if self._closed:
                    return
                try:
                    key.data()
                except Exception:  # noqa: BLE001 - one source must not stop the others
                    LOG.exception("watching %s failed", getattr(key.data, "__name__", key.fd))

    # --- descriptors ---

    def add(self, fd: int, callback) -> None:
        """callback() on this thread whenever fd is readable (replaces an earlier one)."""
        with self._lock:
            if self._closed:
                return
            try:
                self._selector.modify(fd, selectors.EVENT_READ, callback)
            except KeyError:
                self._selector.register(fd, selectors.EVENT_READ, callback)

    def discard(self, fd: int) -> None:
        """Stop watching fd (the caller closes it, unless the watcher opened it)."""
        with self._lock:
            self._forget(fd) if fd in self._owned else self._unregister(fd)

    def _unregister(self, fd: int) -> None:
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError, OSError):
            pass

    def _forget(self, fd: int) -> None:
        """(holding the lock) unregister and close a descriptor the watcher opened."""
        self._unregister(fd)
        self._owned.discard(fd)
        try:
            os.close(fd)
        except OSError:
            pass

    def own(self, fd: int, callback) -> None:
        """add(fd, callback); the watcher closes fd when it is discarded or closed."""
        with self._lock:
            if self._closed:
                os.close(fd)
                return
            self._owned.add(fd)
        self.add(fd, callback)

    # --- processes ---

    def watch_process(self, pid: int, callback) -> bool:
        """callback() once, on this thread, when process pid exits; False (and no call)
        when there is no such process."""
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return False

        def exited():
            with self._lock:
                if self._pids.get(pid) != fd:
                    return                  # unwatched meanwhile
                del self._pids[pid]
                self._forget(fd)
            callback()
        exited.__name__ = "process %d" % pid
        with self._lock:
            previous = self._pids.pop(pid, None)
            if previous is not None:
                self._forget(previous)
            self._pids[pid] = fd
        self.own(fd, exited)
        return True

    def unwatch_process(self, pid: int) -> None:
        with self._lock:
            fd = self._pids.pop(pid, None)
            if fd is not None:
                self._forget(fd)

    # --- directories ---

    def watch_directory(self, path: str, callback) -> None:
        """callback(name) on this thread for each entry of directory path deleted or moved
        away; callback(None) when the directory itself goes or events were lost."""
        fd = inotify_open(path, IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF)

        def readable():
            for mask, name in _inotify_events(fd):
                if mask & IN_DELETE_SELF or mask & 0x4000:     # IN_Q_OVERFLOW
                    callback(None)
                elif name:
                    callback(name)
        readable.__name__ = "directory %s" % path
        self.own(fd, readable)


IN_CLOSE_WRITE, IN_MOVED_TO = 0x8, 0x80


def inotify_open(path: str, mask: int) -> int:
    """A non-blocking inotify descriptor watching path for mask (the caller closes it)."""
    fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1: %s" % os.strerror(ctypes.get_errno()))
    if _libc.inotify_add_watch(fd, os.fsencode(path), mask) < 0:
        err = ctypes.get_errno()
        os.close(fd)
        raise OSError(err, "inotify_add_watch(%s): %s" % (path, os.strerror(err)))
    return fd


def drain(fd: int) -> None:
    """Read away what waits on a non-blocking descriptor."""
    for _ in _inotify_events(fd):
        pass


def _inotify_events(fd: int):
    """(mask, name) of every inotify event waiting on fd."""
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            return
        offset = 0
        while offset + _INOTIFY_EVENT.size <= len(data):
            _, mask, _, length = _INOTIFY_EVENT.unpack_from(data, offset)
            offset += _INOTIFY_EVENT.size
            name = data[offset:offset + length].rstrip(b"\0").decode(errors="replace")
            offset += length
            yield mask, name
