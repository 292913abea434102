"""The DPDK driver's command line: lcores from the scheduler's cores, memory as probed,
one af_packet (or af_xdp) vdev per port in port order, the instance in --file-prefix (what
recovery looks for)."""

import pytest

from drivers.compute import dpdk
from drivers.compute.dpdk import DPDKDriver, lcore_arguments
from drivers.errors import DriverError


def _meta(cores=(), mode="io"):
    return {"instance": "cncfw1", "cpu_cores": list(cores), "forward_mode": mode,
            "ports": [{"ifname": "eth0"}, {"ifname": "eth1"}]}


def test_one_core_carries_the_main_and_the_forwarding_lcore():
    assert lcore_arguments([1]) == ["--lcores", "0@1,1@1"]
    assert lcore_arguments([3, 2]) == ["-l", "2,3"]


def test_command_without_hugepages(tmp_path, monkeypatch):
    monkeypatch.setattr(dpdk, "hugepages_free", lambda: 0)
    meta = _meta(cores=[1], mode="mac")
    argv = DPDKDriver(str(tmp_path), memory=64).command(meta)
    assert meta["memory"] == "no-huge"
    assert argv == [
        "dpdk-testpmd", "--lcores", "0@1,1@1", "-m", "64", "--no-huge", "--no-pci",
        "--no-shconf", "--no-telemetry", "--file-prefix=cncfw1",
        "--vdev", "net_af_packet0,iface=eth0", "--vdev", "net_af_packet1,iface=eth1",
        "--", "--forward-mode=mac", "--auto-start", "--disable-link-check",
        "--stats-period=86400", "--no-mlockall", "--total-num-mbufs=2048", "--nb-cores=1"]


def test_command_with_free_hugepages_and_af_xdp(tmp_path, monkeypatch):
    monkeypatch.setattr(dpdk, "hugepages_free", lambda: 1 << 30)
    monkeypatch.setattr(dpdk, "hugetlbfs_mount", lambda: "/mnt/huge")
    meta = _meta(cores=[0, 1])
    argv = DPDKDriver(str(tmp_path), port_driver="af_xdp").command(meta)
    assert meta["memory"] == "hugepages"
    assert argv[1:7] == ["-l", "0,1", "-m", "128", "--huge-dir", "/mnt/huge"]
    assert "--huge-unlink" in argv and "--no-huge" not in argv
    assert "net_af_xdp1,iface=eth1" in argv
    assert argv[-2:] == ["--total-num-mbufs=10240", "--nb-cores=1"]


def test_hugepages_too_few_means_no_huge(tmp_path, monkeypatch):
    monkeypatch.setattr(dpdk, "hugepages_free", lambda: 64 << 20)
    monkeypatch.setattr(dpdk, "hugetlbfs_mount", lambda: "/mnt/huge")
    assert "--no-huge" in DPDKDriver(str(tmp_path), memory=128).command(_meta())


def test_bad_options_and_parameters_are_refused(tmp_path):
    with pytest.raises(DriverError, match="port driver"):
        DPDKDriver(str(tmp_path), port_driver="memif")
    with pytest.raises(DriverError, match="hugepages"):
        DPDKDriver(str(tmp_path), hugepages="maybe")
    with pytest.raises(DriverError, match="forward-mode"):
        dpdk._forward_mode(["forward-mode=csum"], "x")
    assert dpdk._forward_mode(["forward-mode=mac"], "x") == "mac"
