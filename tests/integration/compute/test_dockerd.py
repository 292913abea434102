"""The private dockerd (drivers/compute/dockerd.py) the agent runs in docker.mode private:
started under its directory, reused by a second start (the agent after a crash), stopped
with nothing left running; its exec root moves under /run when the directory's path is too
long for containerd's socket."""

import os
import shutil
from pathlib import Path

import docker
import pytest

from drivers.compute import dockerd as dockerd_module
from drivers.compute.dockerd import PrivateDockerd
from drivers.errors import DriverError
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


@pytest.mark.skipif(shutil.which("crun") is None, reason="crun is not installed (make deps)")
def test_crun_is_the_default_runtime_and_runc_still_runs(session_tmp):
    """runtime auto: crun when installed; runc stays registered. On a host with hybrid
    cgroups (crun refuses v2 controllers beside v1) dockerd's mounts lack cgroup v2."""
    host = dockerlab.host()                 # the session's dockerd: PrivateDockerd, auto
    template = dockerlab.built()["firewall"]
    image = template["image-id"]
    api = docker.APIClient(base_url=host, version="auto")
    names = []
    try:
        with open(template["image-uri"], "rb") as archive:
            api.load_image(archive)
        assert api.info()["DefaultRuntime"] == "crun"
        for runtime in (None, "runc", "crun"):
            name = "%srt%s" % (PREFIX, runtime or "default")
            api.create_container(image, name=name, entrypoint=["/bin/sh"],
                                 command=["-c", "sleep 60"], network_disabled=True,
                                 host_config=api.create_host_config(network_mode="none",
                                                                    runtime=runtime))
            names.append(name)
            api.start(name)
            found = api.inspect_container(name)
            assert found["State"]["Running"]
            assert found["HostConfig"]["Runtime"] == (runtime or "crun")
        pid = PrivateDockerd(dockerlab._root() / "dockerd").pid()
        mounts = Path("/proc/%d/mountinfo" % pid).read_text()
        if dockerd_module.hybrid_cgroup_controllers():
            assert " /sys/fs/cgroup/unified " not in mounts
            assert os.readlink("/proc/%d/ns/mnt" % pid) != os.readlink("/proc/self/ns/mnt")
    finally:
        for name in names:
            api.remove_container(name, force=True)
        api.close()


def test_the_cgroup_v2_controllers_of_a_hybrid_host(tmp_path):
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    assert dockerd_module.hybrid_cgroup_controllers(v1) == []
    hybrid = tmp_path / "hybrid"
    (hybrid / "unified").mkdir(parents=True)
    (hybrid / "unified" / "cgroup.controllers").write_text("\n")
    assert dockerd_module.hybrid_cgroup_controllers(hybrid) == []
    (hybrid / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    assert dockerd_module.hybrid_cgroup_controllers(hybrid) == ["hugetlb"]
    unified = tmp_path / "unified"
    (unified / "unified").mkdir(parents=True)
    (unified / "cgroup.controllers").write_text("cpu memory\n")
    (unified / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    assert dockerd_module.hybrid_cgroup_controllers(unified) == []
    argv = dockerd_module.without_cgroup2_mount(["dockerd", "--x"], hybrid)
    assert argv[:4] == ["unshare", "--mount", "--propagation", "slave"]
    assert argv[-3:] == [str(hybrid / "unified"), "dockerd", "--x"]


def test_an_unknown_runtime_is_refused(tmp_path):
    with pytest.raises(DriverError, match="unknown OCI runtime"):
        PrivateDockerd(tmp_path, runtime="kata")
