"""The kvm driver's domain XML and metadata, built by code (no libvirtd needed)."""

import pytest
from lxml import etree

from drivers.compute import kvm
from drivers.errors import DriverError

IMAGE = {"kernel": "/s/vmlinuz", "initrd": "/s/initramfs.img"}


def _domain(**kw):
    args = dict(domain_type="qemu", image=IMAGE, memory_mib=160, vcpus=2,
                taps=[("lan", "cnc1a.t", "02:00:00:00:00:01", "cnc1a"),
                      ("wan", "cnc1b.t", None, "cnc1b")],
                console="/s/console.log", cmdline="console=ttyS0 composer.ports=2",
                cpu_cores=(2, 3), labels={"composer-graph": "g1"}, owner="/var/lib/x")
    args.update(kw)
    return etree.fromstring(kvm.domain_xml("cnc-g1-vm", **args).encode())


def test_a_kernel_booted_domain():
    root = _domain()
    assert root.get("type") == "qemu"
    assert root.findtext("name") == "cnc-g1-vm"
    assert (root.findtext("memory"), root.find("memory").get("unit")) == ("160", "MiB")
    assert root.findtext("vcpu") == "2"
    assert [(p.get("vcpu"), p.get("cpuset")) for p in root.iter("vcpupin")] == [
        ("0", "2,3"), ("1", "2,3")]
    assert (root.findtext("os/kernel"), root.findtext("os/initrd")) == (
        "/s/vmlinuz", "/s/initramfs.img")
    assert root.findtext("os/cmdline") == "console=ttyS0 composer.ports=2"
    assert root.find("devices/disk") is None
    assert root.find("devices/serial/source").get("path") == "/s/console.log"


def test_one_ethernet_interface_per_port_with_offloads_off():
    interfaces = _domain().findall("devices/interface")
    assert [(i.get("type"), i.find("target").get("dev"), i.find("target").get("managed"))
            for i in interfaces] == [("ethernet", "cnc1a.t", "no"),
                                     ("ethernet", "cnc1b.t", "no")]
    assert interfaces[0].find("mac").get("address") == "02:00:00:00:00:01"
    assert interfaces[1].find("mac") is None
    for interface in interfaces:
        assert interface.find("model").get("type") == "virtio"
        assert dict(interface.find("driver/host").attrib) == kvm.HOST_OFFLOADS
        assert dict(interface.find("driver/guest").attrib) == kvm.GUEST_OFFLOADS
        assert set(kvm.HOST_OFFLOADS.values()) == {"off"}
        assert {"csum", "tso4", "tso6"} <= set(kvm.GUEST_OFFLOADS)


def test_no_pinning_without_cores_and_a_disk_image():
    root = _domain(cpu_cores=(), image={"disk": "/s/fw.qcow2", "format": "qcow2"})
    assert root.find("cputune") is None
    assert root.find("os/kernel") is None and root.find("os/boot").get("dev") == "hd"
    disk = root.find("devices/disk")
    assert disk.find("source").get("file") == "/s/fw.qcow2"
    assert disk.find("driver").get("type") == "qcow2"
    assert disk.find("readonly") is not None


def test_metadata_says_whose_domain_it_is():
    xml = etree.tostring(_domain()).decode()
    assert kvm.parse_metadata(xml) == {"owner": "/var/lib/x",
                                       "labels": {"composer-graph": "g1"},
                                       "ports": ["cnc1a", "cnc1b"]}
    assert kvm.parse_metadata("<domain type='kvm'><name>other</name></domain>") is None


def test_relay_names_fit_an_interface_name():
    assert kvm._relay_name("cnc0123456789ab", "t") == "cnc0123456789.t"
    assert len(kvm._relay_name("cnc0123456789ab", "r")) == 15


def test_images_by_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "guest.json").write_text('{"kernel": "k", "initrd": "i"}')
    (tmp_path / "g" / "k").write_bytes(b"")
    (tmp_path / "g" / "i").write_bytes(b"")
    (tmp_path / "fw.qcow2").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert kvm.load_image("g") == {"kernel": str(tmp_path / "g" / "k"),
                                   "initrd": str(tmp_path / "g" / "i")}
    assert kvm.load_image("g/guest.json")["kernel"] == str(tmp_path / "g" / "k")
    assert kvm.load_image("fw.qcow2") == {"disk": str(tmp_path / "fw.qcow2"),
                                          "format": "qcow2"}
    (tmp_path / "g" / "i").unlink()
    with pytest.raises(DriverError, match="initrd"):
        kvm.load_image("g")
    with pytest.raises(DriverError, match="no guest image"):
        kvm.load_image("nothing.iso")


def test_the_domain_type_is_probed_once_for_every_image(monkeypatch, tmp_path):
    monkeypatch.setattr(kvm, "_PROBED", {})
    monkeypatch.setattr(kvm, "kvm_usable", lambda: None)
    probes = []
    monkeypatch.setattr(kvm.KvmDriver, "probe_domain_type",
                        lambda self, image: probes.append(image) or "qemu")
    driver = kvm.KvmDriver(str(tmp_path))
    disk = {"disk": "/s/fw.qcow2", "format": "qcow2"}
    assert driver.resolved_domain_type(disk) == "kvm"          # nothing probed yet
    assert driver.resolved_domain_type(IMAGE) == "qemu"
    assert driver.resolved_domain_type(disk) == "qemu"         # the host's answer
    assert driver.resolved_domain_type({"kernel": "/t/k", "initrd": "/t/i"}) == "qemu"
    assert probes == [IMAGE]
    monkeypatch.setattr(kvm, "kvm_usable", lambda: "/dev/kvm: No such file or directory")
    assert driver.resolved_domain_type(IMAGE) == "qemu"
    assert kvm.KvmDriver(str(tmp_path), domain_type="kvm").resolved_domain_type(IMAGE) == \
        "kvm"


def _record(port_id, node_side, mac=None):
    return {"port_id": port_id, "vswitch_ifname": node_side, "ifname": node_side + ".t",
            "guest_mac": mac}


def test_with_ports_rewrites_interfaces_metadata_and_the_port_count():
    """The definition update() writes: the NIC of a removed port gone, one for an added
    port (its MAC, offloads off), the metadata's ports and composer.ports as they are now;
    the other NICs untouched."""
    xml = etree.tostring(_domain()).decode()
    ports = [_record("lan", "cnc1a"), _record("dmz", "cnc1c", "52:54:00:00:00:09")]
    root = etree.fromstring(kvm.with_ports(xml, ports).encode())
    interfaces = root.findall("devices/interface")
    assert [i.find("target").get("dev") for i in interfaces] == ["cnc1a.t", "cnc1c.t"]
    assert interfaces[0].find("mac").get("address") == "02:00:00:00:00:01"   # kept as is
    assert interfaces[1].find("mac").get("address") == "52:54:00:00:00:09"
    assert dict(interfaces[1].find("driver/host").attrib) == kvm.HOST_OFFLOADS
    assert kvm.parse_metadata(etree.tostring(root).decode())["ports"] == ["cnc1a", "cnc1c"]
    assert root.findtext("os/cmdline") == "console=ttyS0 composer.ports=2"
    three = kvm.with_ports(xml, ports + [_record("x", "cnc1d")])
    assert etree.fromstring(three.encode()).findtext("os/cmdline") == \
        "console=ttyS0 composer.ports=3"


def test_acpi_for_the_hot_plug():
    """PCI hot-plug on the pc machine's root bus is ACPI's: without it QEMU refuses
    device_add ("Bus 'pci.0' does not support hotplugging")."""
    assert _domain().find("features/acpi") is not None
