"""ComputeDriver.usage: the /proc and cgroup v2 readings (drivers/compute/usage.py) on real
processes and a cgroup directory laid out as the kernel does, and each driver's usage()
with its boundary faked (the instance's metadata, libvirt's domain)."""

import os
import subprocess
import sys
import time

import pytest

from drivers import watch
from drivers.compute import docker, dpdk, kvm, native, usage
from drivers.compute.usage import Usage, cgroup_usage, processes_usage
from drivers.errors import ResourceNotFound

BURN = "import time\nend = time.process_time() + %s\nwhile time.process_time() < end: pass\n" \
       "blob = bytearray(%d)\nblob[::4096] = b'x' * len(blob[::4096])\nprint('ok', flush=True)\n" \
       "time.sleep(60)\n"


@pytest.fixture
def burner():
    """A real process that burns 0.3 s of CPU, then holds 64 MiB and sleeps."""
    proc = subprocess.Popen([sys.executable, "-c", BURN % (0.3, 64 << 20)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ok"
    yield proc
    proc.kill()
    proc.wait()


def test_processes_usage_counts_cpu_time_and_resident_memory(burner):
    found = processes_usage([burner.pid])
    assert found.cpu_seconds >= 0.25
    assert found.memory_bytes >= 64 << 20
    both = processes_usage([burner.pid, os.getpid(), burner.pid])       # each once
    assert both.cpu_seconds > found.cpu_seconds
    assert both.memory_bytes > found.memory_bytes
    assert processes_usage([2 ** 22 + 1]) == Usage(0, 0)                # gone: nothing


def _cgroup(directory, usec=2_500_000, current=50 << 20, inactive=10 << 20):
    directory.mkdir(exist_ok=True)
    (directory / "cpu.stat").write_text("usage_usec %d\nuser_usec 1\nsystem_usec 2\n" % usec)
    (directory / "memory.current").write_text("%d\n" % current)
    (directory / "memory.stat").write_text("anon 1\ninactive_file %d\nactive_file 3\n"
                                           % inactive)
    return directory


def test_cgroup_usage_is_docker_stats_figures(tmp_path):
    assert cgroup_usage(str(_cgroup(tmp_path / "c"))) == Usage(2.5, 40 << 20)
    assert cgroup_usage(str(tmp_path / "none")) is None
    (tmp_path / "c" / "memory.current").write_text("max\n")
    assert cgroup_usage(str(tmp_path / "c")) is None


def test_cgroup_v1_usage(tmp_path):
    (tmp_path / "cpuacct").mkdir()
    (tmp_path / "cpuacct" / "cpuacct.usage").write_text("1500000000\n")
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.usage_in_bytes").write_text("%d\n" % (20 << 20))
    (tmp_path / "memory" / "memory.stat").write_text("cache 5\ntotal_inactive_file %d\n"
                                                     % (4 << 20))
    assert usage.cgroup_v1_usage(str(tmp_path / "cpuacct"), str(tmp_path / "memory")) == \
        Usage(1.5, 16 << 20)
    assert usage.cgroup_v1_usage(str(tmp_path / "x"), str(tmp_path / "memory")) is None


@pytest.mark.parametrize("lines, layout, expected", [
    # v2: the container's own directory
    ("0::/docker/c1\n", {"docker/c1": "v2"}, Usage(2.5, 40 << 20)),
    # v1 (this machine's kind): cpuacct and memory controllers, maybe mounted together
    ("4:memory:/docker/c1\n2:cpu,cpuacct:/docker/c1\n0::/\n",
     {"cpu,cpuacct/docker/c1": "cpuacct", "memory/docker/c1": "memory"}, Usage(1.5, 16 << 20)),
    # a root cgroup is the whole node's: not the instance's
    ("0::/\n", {"": "v2"}, None),
    ("4:memory:/\n2:cpuacct:/\n", {"cpuacct": "cpuacct", "memory": "memory"}, None),
])
def test_cgroup_usage_of_a_process(tmp_path, monkeypatch, lines, layout, expected):
    for where, kind in layout.items():
        directory = tmp_path / "cg" / where
        directory.mkdir(parents=True, exist_ok=True)
        if kind == "v2":
            _cgroup(directory)
        elif kind == "cpuacct":
            (directory / "cpuacct.usage").write_text("1500000000\n")
        else:
            (directory / "memory.usage_in_bytes").write_text("%d\n" % (20 << 20))
            (directory / "memory.stat").write_text("total_inactive_file %d\n" % (4 << 20))
    monkeypatch.setattr(usage, "CGROUP_ROOT", str(tmp_path / "cg"))
    real_open = open

    def fake_open(path, *args, **kw):
        return real_open(tmp_path / "proc-cgroup", *args, **kw) \
            if path == "/proc/42/cgroup" else real_open(path, *args, **kw)
    (tmp_path / "proc-cgroup").write_text(lines)
    monkeypatch.setattr("builtins.open", fake_open)
    assert usage.cgroup_usage_of(42) == expected


def test_cgroup_usage_of_a_real_process():
    assert usage.cgroup_usage_of(2 ** 22 + 1) is None          # gone
    usage.cgroup_usage_of(os.getpid())                          # reads without failing


def _meta(store, instance, **fields):
    directory = store.dir(instance)
    directory.mkdir(parents=True)
    meta = dict({"instance": instance, "dir": str(directory), "ports": [], "labels": {}},
                **fields)
    store.save(meta)
    return meta


def test_dpdk_usage_is_its_process(tmp_path, burner):
    driver = dpdk.DPDKDriver(str(tmp_path))
    _meta(driver.store, "cnc-d1", state="running",
          pid=list(watch.process_identity(burner.pid)))
    assert driver.usage("cnc-d1").cpu_seconds >= 0.25
    _meta(driver.store, "cnc-d2", state="stopped", pid=None)
    assert driver.usage("cnc-d2") is None
    _meta(driver.store, "cnc-d3", state="running", pid=[burner.pid, 1, "other"])   # reused pid
    assert driver.usage("cnc-d3") is None
    with pytest.raises(ResourceNotFound):
        driver.usage("cnc-none")


def test_docker_usage_reads_the_container_cgroup(tmp_path, burner, monkeypatch):
    driver = docker.DockerDriver(str(tmp_path))
    _meta(driver.store, "cnc-c1", state="running",
          pid=list(watch.process_identity(burner.pid)))
    asked = []
    monkeypatch.setattr(docker, "cgroup_usage_of",
                        lambda pid: asked.append(pid) or Usage(7.0, 30 << 20))
    assert driver.usage("cnc-c1") == Usage(7.0, 30 << 20)
    assert asked == [burner.pid]
    # no cgroup to read: the processes of its namespace (none here: it has no namespace)
    monkeypatch.setattr(docker, "cgroup_usage_of", lambda pid: None)
    assert driver.usage("cnc-c1") == Usage(0, 0)
    _meta(driver.store, "cnc-c2", state="created", pid=None)
    assert driver.usage("cnc-c2") is None
    _meta(driver.store, "cnc-c3", state="running", pid=[2 ** 22 + 1, 5, "gone"])
    assert driver.usage("cnc-c3") is None


def test_native_usage_is_the_processes_of_its_namespace(tmp_path, monkeypatch, burner):
    driver = native.NativeDriver(str(tmp_path))
    _meta(driver.store, "cnc-n1", state="running")
    scans = []
    monkeypatch.setattr(native.netlink, "netns_pids_of", lambda names: scans.append(
        list(names)) or {n: [burner.pid] if n == "cnc-n1" else [] for n in names})
    found = driver.usage("cnc-n1")
    assert found.cpu_seconds >= 0.25 and found.memory_bytes >= 64 << 20
    _meta(driver.store, "cnc-n2", state="stopped")
    _meta(driver.store, "cnc-n3", state="running")
    assert driver.usage("cnc-n2") is None
    with pytest.raises(ResourceNotFound):
        driver.usage("cnc-none")
    # many at once: one pass over /proc for the running ones, None for the others
    del scans[:]
    many = driver.usages(["cnc-n1", "cnc-n2", "cnc-n3", "cnc-none"])
    assert scans == [["cnc-n1", "cnc-n3"]]
    assert many["cnc-n1"] == found or many["cnc-n1"].memory_bytes >= 64 << 20
    assert (many["cnc-n2"], many["cnc-n3"], many["cnc-none"]) == (None, Usage(0, 0), None)


def test_netns_pids_of_many_namespaces_in_one_pass(tmp_path, monkeypatch):
    from drivers import netlink
    monkeypatch.setattr(netlink, "NETNS_RUN_DIR", str(tmp_path))
    (tmp_path / "mine").symlink_to("/proc/self/ns/net")
    found = netlink.netns_pids_of(["mine", "absent"])
    assert os.getpid() in found["mine"] and found["absent"] == []
    assert netlink.netns_pids("mine") == found["mine"] or os.getpid() in \
        netlink.netns_pids("mine")
    with pytest.raises(Exception):
        netlink.netns_pids_of(["../etc"])


class _Domain:
    def __init__(self, stats):
        self.stats = stats

    def info(self):
        return [1, 1048576, 524288, 2, 3_250_000_000]      # state, max, memory KiB, vcpus, ns

    def memoryStats(self):
        return self.stats


def test_kvm_usage_is_libvirts_figures(tmp_path, monkeypatch):
    pytest.importorskip("libvirt")
    driver = kvm.KvmDriver(str(tmp_path))
    _meta(driver.store, "cnc-k1", state="running")
    domains = {"cnc-k1": _Domain({"rss": 204800, "actual": 524288})}
    monkeypatch.setattr(kvm.KvmDriver, "_domain", lambda self, name: domains.get(name))
    assert driver.usage("cnc-k1") == Usage(3.25, 204800 * 1024)
    domains["cnc-k1"] = _Domain({})                          # no rss: what it was given
    assert driver.usage("cnc-k1") == Usage(3.25, 524288 * 1024)
    del domains["cnc-k1"]
    assert driver.usage("cnc-k1") is None
    _meta(driver.store, "cnc-k2", state="paused")
    domains["cnc-k2"] = _Domain({"rss": 1})
    assert driver.usage("cnc-k2") == Usage(3.25, 1024)


def test_the_default_measures_nothing():
    from drivers.compute.base import ComputeDriver
    assert ComputeDriver().usage("x") is None


def test_a_burning_process_shows_in_two_readings(burner):
    """What the agent does with two readings: CPU percent = the CPU time between them
    over the wall time between them."""
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        first, start = processes_usage([spin.pid]), time.monotonic()
        time.sleep(0.5)
        second, end = processes_usage([spin.pid]), time.monotonic()
        percent = (second.cpu_seconds - first.cpu_seconds) / (end - start) * 100
        assert percent > 30, percent          # one core, shared with the other helpers
    finally:
        spin.kill()
        spin.wait()
