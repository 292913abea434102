"""What breaks a running native function without the driver doing it is reported, at once;
what the driver does itself is not."""

import os
import signal
import subprocess

import pytest

from drivers import netlink
from drivers.watch import EXITED, FUNCTION, LOST
from tests.watching import quiet, watching

from .helpers import DAEMON, make_package, spec


@pytest.fixture
def events(native):
    with watching(native) as found:
        yield found


def _running(native, lab, tmp_path, scripts=DAEMON):
    image = make_package(tmp_path, "daemon", scripts)
    inst = lab.name("d")
    native.create(spec(inst, image, [("a", lab.name("da")), ("b", lab.name("db"))]))
    native.start(inst)
    return inst



def test_the_daemon_start_left_is_watched_and_its_exit_reported(native, lab, tmp_path,
                                                                 events):
    inst = _running(native, lab, tmp_path)
    daemon = [p for p in netlink.netns_pids(inst)
              if not os.path.basename(open("/proc/%d/cmdline" % p).read()).startswith(
                  "sleep")]
    assert len(daemon) == 1         # the loop (its sleeps are its children)
    assert native.problems(inst) == []
    quiet(events)                  # the loop's sleeps come and go: not the function's
    os.kill(daemon[0], signal.SIGKILL)
    event = events.get(timeout=2)
    assert (event.subject, event.name, event.what) == (FUNCTION, inst, EXITED)
    assert "process %d" % daemon[0] in event.detail
    assert [e.what for e in native.problems(inst)] == [EXITED]
    # a restart (what the agent does) runs it again, and watches the new one
    native.stop(inst)
    native.start(inst)
    assert native.problems(inst) == []
    quiet(events)


def test_a_deleted_namespace_is_reported_and_stop_destroy_still_work(native, lab, tmp_path,
                                                                     events):
    inst = _running(native, lab, tmp_path)
    subprocess.run(["ip", "netns", "del", inst], check=True)
    # (the daemon keeps the namespace, and so its ports, alive: one event)
    assert events.get(timeout=2).detail == "its network namespace was deleted"
    problems = {e.detail for e in native.problems(inst)}
    assert "its network namespace is gone" in problems
    # the daemon lives on in the namespace nobody can enter any more: stop kills it
    native.stop(inst)
    assert native.problems(inst) != []
    native.destroy(inst)
    assert native.settle(5)
    assert not any("daemon" in p for p in _commands(str(tmp_path)))
    quiet(events)


def test_a_deleted_vswitch_end_is_reported(native, lab, tmp_path, events):
    inst = _running(native, lab, tmp_path)
    netlink.link_delete(lab.name("da"), native.netns)
    event = events.get(timeout=2)
    assert (event.what, event.detail) == (LOST, "its port %s was deleted" % lab.name("da"))


def test_what_the_driver_does_itself_is_not_reported(native, lab, tmp_path, events):
    inst = _running(native, lab, tmp_path)
    native.stop(inst)
    native.start(inst)
    native.destroy(inst)
    assert native.settle(5)
    quiet(events)


def _commands(text):
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = open("/proc/%s/cmdline" % pid, "rb").read().replace(b"\0", b" ")
            except OSError:
                continue
            if text.encode() in cmdline:
                out.append(cmdline.decode(errors="replace"))
    return out
