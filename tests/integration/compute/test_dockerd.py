"""The private dockerd (drivers/compute/dockerd.py) the agent runs in docker.mode private:
started under its directory, reused by a second start (the agent after a crash), stopped
with nothing left running; its exec root moves under /run when the directory's path is too
long for containerd's socket."""

import pytest

from drivers.compute import dockerd as dockerd_module
from drivers.compute.dockerd import PrivateDockerd
from tests import dockerlab, resources
from tests.resources import PREFIX

pytestmark = pytest.mark.skipif(dockerlab.unavailable() is not None,
                                reason=dockerlab.unavailable() or "")


def test_started_reused_and_stopped(session_tmp):
    directory = session_tmp / "own-dockerd"
    first = PrivateDockerd(directory)
    first.start()
    try:
        pid = first.pid()
        assert pid and first.running()
        again = PrivateDockerd(directory)
        again.start()                         # a restarted agent finds it running
        assert again.pid() == pid
    finally:
        first.stop()
    assert first.pid() is None
    assert resources.processes_mentioning(str(directory)) == []


def test_a_long_directory_gets_a_short_exec_root(tmp_path):
    long = tmp_path / ("x" * 80)
    root = PrivateDockerd(long).exec_root
    assert len(str(root)) <= dockerd_module.MAX_EXEC_ROOT + 20
    assert str(root).startswith("/run/composer-dockerd/")
    assert PrivateDockerd(long).exec_root == root           # the same one each time
    short = resources.TMP_ROOT / ("%s-d" % PREFIX)
    assert PrivateDockerd(short).exec_root == short.resolve() / "exec"
