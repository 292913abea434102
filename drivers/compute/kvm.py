"""The kvm compute driver: a service function is a libvirt domain (QEMU), one tap per port.

What an instance is on the node (instance = FunctionSpec.instance, which carries the
agent's prefix; it is also the domain's name):
  the libvirt domain <instance>             persistent (defined), its XML built here
                                            (domain_xml); its <metadata> holds the labels
                                            and ports (namespace METADATA_NS), so that
                                            list_instances finds it from libvirt alone
  <node netns>: FunctionPort.vswitch_ifname a persistent tap per port, which QEMU opens
                                            (<interface type='ethernet'>, managed='no');
                                            attached to the graph-LSI as a "system" port
  <state_dir>/kvm/<instance>/instance.json  metadata (labels, ports, state), written before
                                            anything else is made (a crash leaves a trace)
  <state_dir>/kvm/<instance>/console.log    the guest's serial console

The image (FunctionSpec.image) is either a guest built by nsf/guest.py (its guest.json, or
the directory holding it: direct kernel boot of its kernel and initramfs, the function and
its parameters on the kernel command line) or a disk image (.qcow2, .raw, .img) booted by
its own boot loader. The template gives "memory" (MiB, at least MIN_MEMORY), "cpu" (vCPUs,
rounded up), optionally "machine" (the QEMU machine type), "ready-timeout" (seconds),
"guest-function" (what the guest of nsf/guest.py runs: bridge, the default, or firewall),
"ready-signal" (false: no readiness line is awaited) and "min-ports"/"max-ports" (what
update() accepts). Function parameters go on the guest's kernel command line, one
"composer.param=<parameter>" word each (no spaces, no quotes).

start returns once the guest says so: a guest of nsf/guest.py writes "composer: ready"
(or "composer: failed: <why>") on its serial console, which QEMU writes to console.log and
the driver reads as it grows. A disk image without that convention says "ready-signal":
false in its template: it is running once QEMU runs it.

Domain type: "kvm" where a KVM guest boots, else "qemu" (TCG, emulation). Whether it boots
is probed once per process (probe_domain_type): /dev/kvm must open, and a guest kernel
must reach its init under KVM within KVM_PROBE_TIMEOUT; on some hosts (nested
virtualisation without the CPU features the kernel wants) the BIOS runs and the kernel
never prints a line.

The node's namespace: libvirtd opens a managed='no' tap by name in its own (the root)
namespace. When the node is another namespace (netns), a port is relayed: its tap
(<vswitch_ifname[:13]>.t) and a veth end (<vswitch_ifname[:13]>.r) in the root namespace,
each redirecting what it receives to the other (tc mirred), and the veth's other end,
vswitch_ifname, in the node's namespace. A tap moved there instead would leave the vSwitch
reading a dead socket after every restart of the domain (a packet socket is unbound when
its device leaves the namespace).

Ports of a running domain (update()): a NIC is hot-plugged on a new tap (libvirt
attachDeviceFlags, VIR_DOMAIN_AFFECT_LIVE; PCI hot-plug on the pc machine's root bus is
ACPI's, hence <features><acpi/>), and the guest of nsf/guest.py bridges it and writes
"composer: port up <mac>", which the driver awaits; a removed port's NIC is unplugged
(detachDeviceFlags, until QEMU released it) before its tap goes. The domain's definition
is rewritten with the ports so that the next boot has them.

Offloads: checksum, TSO and UFO are off on both sides of each tap (<driver><host .../>
<guest .../>): the userspace datapath forwards frames with partial checksums as they are,
so TCP through it needs complete ones.
"""

import json
import logging
import math
import os
import random
import shutil
import subprocess
import threading
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

from lxml import etree

from .. import netlink, watch
from ..errors import DriverError, PrerequisiteError, ResourceExists, ResourceNotFound
from ..registry import register
from . import packages
from .base import ComputeDriver, FunctionPort, FunctionSpec, InstanceInfo, PortAttachment
from .instances import (CREATED, CREATING, FAILED, IN_PLACE, PAUSED, RUNNING, STOPPED,
                        InstanceAccess, InstanceStore, record_update)
from .plumbing import Plumbing, check_unique, port_record
from .usage import Usage
from .watching import InstanceWatch

LOG = logging.getLogger(__name__)

METADATA_NS = "urn:composer-nc:kvm:1"
READY_LINE = "composer: ready"
PORT_UP_LINE = "composer: port up %s"     # % the NIC's MAC: the guest bridges a new NIC
FAILED_LINE = "composer: failed:"
MIN_MEMORY = 128               # MiB: the Debian cloud kernel and the busybox initramfs
DEFAULT_MEMORY = 192
READY_TIMEOUT = 180.0          # seconds; TCG on a loaded machine takes 8-40 s to boot
KVM_PROBE_TIMEOUT = 10.0       # under KVM the guest is up in about 1 s
MAX_CMDLINE = 2000             # the x86 kernel's command line holds 2048 bytes
HOTPLUG_TIMEOUT = 60.0         # seconds for a guest to take a hot-plugged NIC ...
UNPLUG_TIMEOUT = 60.0          # ... and to release one
DISK_SUFFIXES = {".qcow2": "qcow2", ".raw": "raw", ".img": "raw"}
# QEMU's tap offloads, all off (see the module's docstring)
HOST_OFFLOADS = {"csum": "off", "gso": "off", "tso4": "off", "tso6": "off", "ecn": "off",
                 "ufo": "off"}
GUEST_OFFLOADS = {"csum": "off", "tso4": "off", "tso6": "off", "ecn": "off", "ufo": "off"}

PROBE_PREFIX = "composer-kvm-probe-"   # + the agent's pid: the probe's transient domain
_PROBED: dict = {}             # libvirt uri -> "kvm" | "qemu", once per process
_PROBE_LOCK = threading.Lock()


def _libvirt():
    try:
        import libvirt
    except ImportError:
        raise PrerequisiteError("kvm functions need libvirt-python (pip install "
                                "libvirt-python; Debian libvirt-dev to build it)") from None
    # libvirt prints every error on stderr unless told otherwise: they are raised instead
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


# --- the image -----------------------------------------------------------------------------

def load_image(image: str) -> dict:
    """{"kernel", "initrd"} paths of a guest built by nsf/guest.py (guest.json or its
    directory), or {"disk", "format"} of a disk image. DriverError when it is not there."""
    path = Path(image).absolute()           # libvirt wants absolute paths
    if path.is_dir():
        path = path / "guest.json"
    if path.name.endswith(".json"):
        try:
            manifest = json.loads(path.read_text())
            found = {"kernel": str(path.parent / manifest["kernel"]),
                     "initrd": str(path.parent / manifest["initrd"])}
        except (OSError, ValueError, KeyError) as exc:
            raise DriverError("not a guest built by nsf/guest.py: %s" % exc,
                              resource=image) from None
        for key in ("kernel", "initrd"):
            if not os.path.isfile(found[key]):
                raise DriverError("the guest's %s %s is missing" % (key, found[key]),
                                  resource=image)
        return found
    kind = DISK_SUFFIXES.get(path.suffix)
    if kind is None or not path.is_file():
        raise DriverError("no guest image (a guest.json of nsf/guest.py, or a disk image "
                          "%s)" % ", ".join(sorted(DISK_SUFFIXES)), resource=image)
    return {"disk": str(path), "format": kind}


def _template_int(template: dict, key: str, default) -> int:
    value = template.get(key)
    return default if value in (None, "") else int(math.ceil(float(value)))


# --- the domain XML ------------------------------------------------------------------------

def _sub(parent, tag, text=None, **attrs):
    element = etree.SubElement(parent, tag, {k: str(v) for k, v in attrs.items()})
    if text is not None:
        element.text = str(text)
    return element


def domain_xml(name: str, *, domain_type: str, image: dict, memory_mib: int, vcpus: int,
               taps: list, console: str, cmdline: str = "", cpu_cores=(), labels=None,
               machine: str | None = None, owner: str = "") -> str:
    """The libvirt domain of an instance. taps: [(port_id, tap name, mac or None, the
    port's node-side name (vswitch_ifname))]; owner:
    the state directory of the driver that made it (another agent's domains are not
    ours to recover or remove)."""
    domain = etree.Element("domain", type=domain_type)
    _sub(domain, "name", name)
    metadata = _sub(domain, "metadata")
    function = etree.SubElement(metadata, "{%s}function" % METADATA_NS, owner=owner,
                                nsmap={"composer": METADATA_NS})
    for key, value in sorted((labels or {}).items()):
        etree.SubElement(function, "{%s}label" % METADATA_NS, name=key, value=str(value))
    for port_id, tap, _, node_side in taps:
        function.append(port_element(port_id, node_side, tap))
    _sub(domain, "memory", memory_mib, unit="MiB")
    _sub(domain, "vcpu", vcpus, placement="static")
    if cpu_cores:
        cputune = _sub(domain, "cputune")
        for vcpu in range(vcpus):
            _sub(cputune, "vcpupin", vcpu=vcpu,
                 cpuset=",".join(str(c) for c in cpu_cores))
    os_ = _sub(domain, "os")
    _sub(os_, "type", "hvm", **({"machine": machine} if machine else {}))
    if "kernel" in image:
        _sub(os_, "kernel", image["kernel"])
        _sub(os_, "initrd", image["initrd"])
        _sub(os_, "cmdline", cmdline)
    else:
        _sub(os_, "boot", dev="hd")
    # ACPI: QEMU's PCI hot-plug on the root bus of the pc machine is ACPI's (update())
    features = _sub(domain, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    _sub(domain, "on_poweroff", "destroy")
    _sub(domain, "on_reboot", "destroy")
    _sub(domain, "on_crash", "destroy")
    devices = _sub(domain, "devices")
    if "disk" in image:
        disk = _sub(devices, "disk", type="file", device="disk")
        # the image is shared by every instance of the template: never written
        _sub(disk, "driver", name="qemu", type=image["format"])
        _sub(disk, "source", file=image["disk"])
        _sub(disk, "target", dev="vda", bus="virtio")
        _sub(disk, "readonly")
        _sub(disk, "transient")
    for _, tap, mac, _ in taps:
        devices.append(interface_element(tap, mac))
    serial = _sub(devices, "serial", type="file")
    _sub(serial, "source", path=console)
    _sub(serial, "target", port=0)
    _sub(devices, "memballoon", model="none")
    # QEMU runs as root and nothing is relabelled: the kernel, the image and the console
    # live in the agent's state directory, which only root may enter.
    seclabel = _sub(domain, "seclabel", type="static", model="dac", relabel="no")
    _sub(seclabel, "label", "+0:+0")
    return etree.tostring(domain, pretty_print=True).decode()


def interface_element(tap: str, mac: str | None = None):
    """The <interface> of a port: QEMU opens the tap (managed='no'), virtio, the offloads
    off (see the module's docstring). In the domain's XML, and hot-plugged alone."""
    interface = etree.Element("interface", type="ethernet")
    if mac:
        _sub(interface, "mac", address=mac)
    _sub(interface, "target", dev=tap, managed="no")
    _sub(interface, "model", type="virtio")
    driver = _sub(interface, "driver", name="qemu")
    _sub(driver, "host", **HOST_OFFLOADS)
    _sub(driver, "guest", **GUEST_OFFLOADS)
    return interface


def port_element(port_id: str, node_side: str, tap: str):
    """A port in the domain's <metadata> (what recovery reads when the state is lost)."""
    return etree.Element("{%s}port" % METADATA_NS, id=port_id, ifname=node_side, tap=tap,
                         nsmap={"composer": METADATA_NS})


def parse_metadata(xml: str) -> dict | None:
    """{"owner", "labels", "ports"} of a domain a kvm driver defined, None for another
    domain's."""
    root = etree.fromstring(xml.encode())
    function = root.find("metadata/{%s}function" % METADATA_NS)
    if function is None:
        return None
    return {"owner": function.get("owner", ""),
            "labels": {e.get("name"): e.get("value")
                       for e in function.findall("{%s}label" % METADATA_NS)},
            "ports": [e.get("ifname") for e in function.findall("{%s}port" % METADATA_NS)]}


# --- the domain type -----------------------------------------------------------------------

def kvm_usable() -> str | None:
    """Why /dev/kvm cannot be used (None: it opens read-write)."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return "/dev/kvm: %s" % exc.strerror
    os.close(fd)
    return None


@register("compute", "kvm")
class KvmDriver(InstanceAccess, ComputeDriver):
    """KVM/QEMU functions through libvirt: a domain per instance, a tap per port.

    netns is the node's namespace (None: the agent's own); uri the libvirt connection;
    domain_type "auto" (probed), "kvm" or "qemu". Operations on different instances may
    run in parallel threads; operations on one instance are serialised.
    """

    execution_environment = "kvm"

    def __init__(self, state_dir: str, netns: str | None = None, uri: str = "qemu:///system",
                 domain_type: str = "auto", ready_timeout: float = READY_TIMEOUT):
        if domain_type not in ("auto", "kvm", "qemu"):
            raise ValueError("domain_type must be auto, kvm or qemu, not %r" % domain_type)
        self.state_dir = Path(state_dir)
        self.root = self.state_dir / "kvm"
        self.store = InstanceStore(self.root)
        self.netns = netns
        self.uri = uri
        self.domain_type = domain_type
        self.ready_timeout = float(ready_timeout)
        self.plumbing = Plumbing(netns)
        self.watching = InstanceWatch(netns)
        self._conn = None
        self._conn_guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()

    # --- prerequisites and the connection ---

    def check(self) -> None:
        if os.geteuid() != 0:
            raise PrerequisiteError("kvm functions need root (taps, libvirt's system "
                                    "connection)")
        self._connection()

    def _connection(self):
        libvirt = _libvirt()
        with self._conn_guard:
            if self._conn is not None and self._conn.isAlive():
                return self._conn
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                raise PrerequisiteError(
                    "kvm functions need libvirtd on %s: %s (scripts/start-libvirtd starts it; "
                    "Debian packages libvirt-daemon-system, qemu-system-x86)"
                    % (self.uri, exc.get_error_message())) from None
            return self._conn

    def close(self) -> None:
        self.plumbing.close()
        with self._conn_guard:
            if self._conn is not None:
                try:
                    self._conn.close()
                except Exception:  # noqa: BLE001 - a dead connection closes anyway
                    pass
                self._conn = None

    def settle(self, timeout: float | None = None) -> bool:
        return self.plumbing.settle(timeout)

    def check_template(self, template: dict) -> list[str]:
        problems = []
        environment = template.get("execution-environment")
        if environment and environment.split(":")[-1] != self.execution_environment:
            problems.append("execution environment '%s' is not kvm" % environment)
        technology = template.get("port-technology")
        if technology and technology.split(":")[-1] not in ("tap", "veth", "virtio"):
            problems.append("port technology '%s' is not supported (tap)" % technology)
        return problems

    def resolved_domain_type(self, image: dict | None = None) -> str:
        """The domain type instances get: the configured one, or the probed one. Whether a
        KVM guest boots is a property of the host, probed once per libvirt connection with
        the first guest kernel at hand; a disk image cannot be probed quickly and takes
        that answer, or KVM when nothing was probed yet and /dev/kvm opens."""
        if self.domain_type != "auto":
            return self.domain_type
        if kvm_usable() is not None:
            return "qemu"
        with _PROBE_LOCK:
            if self.uri not in _PROBED:
                if image is None or "kernel" not in image:
                    return "kvm"
                _PROBED[self.uri] = self.probe_domain_type(image)
                LOG.info("kvm functions run as %s domains (probed)", _PROBED[self.uri])
            return _PROBED[self.uri]

    def probe_domain_type(self, image: dict) -> str:
        """"kvm" if the guest kernel reaches its init under KVM in KVM_PROBE_TIMEOUT, else
        "qemu": a throw-away domain without ports, destroyed at once."""
        conn = self._connection()
        libvirt = _libvirt()
        self._remove_stale_probes(conn)
        name = "%s%d" % (PROBE_PREFIX, os.getpid())
        probe_dir = self.root / ".probe"
        probe_dir.mkdir(parents=True, exist_ok=True)
        console = probe_dir / "console.log"
        console.write_bytes(b"")
        xml = domain_xml(name, domain_type="kvm", image=image, memory_mib=MIN_MEMORY, vcpus=1,
                         taps=[], console=str(console),
                         cmdline="console=ttyS0 quiet panic=-1 composer.function=probe")
        try:
            domain = conn.createXML(xml, 0)       # transient: gone once destroyed
        except libvirt.libvirtError as exc:
            LOG.info("no KVM domain here (%s): TCG", exc.get_error_message())
            return "qemu"
        try:
            ready = self._wait_console(console, 0, KVM_PROBE_TIMEOUT, lambda: domain.isActive())
        except DriverError:
            ready = False
        finally:
            try:
                domain.destroy()
            except libvirt.libvirtError:
                pass
            shutil.rmtree(probe_dir, ignore_errors=True)
        return "kvm" if ready else "qemu"

    @staticmethod
    def _remove_stale_probes(conn) -> None:
        """Probe domains whose agent died during the probe (transient: destroyed, gone)."""
        libvirt = _libvirt()
        for domain in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            name = domain.name()
            pid = name[len(PROBE_PREFIX):]
            if name.startswith(PROBE_PREFIX) and pid.isdigit() and \
                    watch.process_identity(int(pid)) is None:
                try:
                    domain.destroy()
                except libvirt.libvirtError:
                    pass                        # gone meanwhile

    # --- helpers ---

    def _load(self, instance: str) -> dict:
        try:
            return self.store.load(instance)
        except ResourceNotFound:
            raise ResourceNotFound("no kvm function instance", resource=instance) from None

    def usage(self, instance: str):
        """libvirt's figures of the domain: the CPU time of its vCPUs, the resident memory
        of its qemu process (memoryStats rss; the memory it was given when unknown)."""
        meta = self._load(instance)
        if meta.get("state") not in (RUNNING, PAUSED):
            return None
        domain = self._domain(instance)
        if domain is None:
            return None
        libvirt = _libvirt()
        try:
            _, _, memory_kib, _, cpu_ns = domain.info()
            rss_kib = domain.memoryStats().get("rss", memory_kib)
        except libvirt.libvirtError:
            return None                 # gone meanwhile
        return Usage(cpu_ns / 1e9, int(rss_kib) * 1024)

    def _domain(self, instance: str):
        """The libvirt domain of instance, None when there is none."""
        libvirt = _libvirt()
        try:
            return self._connection().lookupByName(instance)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise DriverError("libvirt: %s" % exc.get_error_message(),
                              resource=instance) from None

    def _own_domain(self, instance: str) -> tuple:
        """(domain, its metadata) when the domain named instance is one this driver's
        state directory made, else (None, None): another agent's is left alone."""
        domain = self._domain(instance)
        if domain is None:
            return None, None
        libvirt = _libvirt()
        try:
            found = parse_metadata(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        except libvirt.libvirtError:
            return None, None                   # undefined meanwhile
        if found is None or found["owner"] != str(self.state_dir):
            return None, None
        return domain, found

    def _ifnames(self, meta: dict) -> list:
        return [p["vswitch_ifname"] for p in meta["ports"]]

    def _tap(self, vswitch_ifname: str) -> str:
        """The name of a port's tap, which QEMU opens in the root namespace."""
        return vswitch_ifname if self.netns is None else _relay_name(vswitch_ifname, "t")

    def _add_port(self, vswitch_ifname: str) -> None:
        """The node side of a port: a tap, relayed into the node's namespace if need be."""
        if self.netns is None:
            self.plumbing.add_tap(vswitch_ifname)
            return
        tap, relay = _relay_name(vswitch_ifname, "t"), _relay_name(vswitch_ifname, "r")
        netlink.tap_add(tap, ipv6=False)
        try:
            self.plumbing.reaper.wait(names=[vswitch_ifname])
            # the node's end is the vSwitch port: no IPv6, promiscuous (see plumbing.py)
            netlink.veth_add(vswitch_ifname, relay, netns=self.netns, peer_netns=None,
                             ipv6=False, promisc=True)
            netlink.tx_checksum_off(relay)
            _redirect(tap, relay)
            _redirect(relay, tap)
        except BaseException:
            netlink.link_delete(tap)
            netlink.link_delete(relay)
            raise

    def _delete_ports(self, names) -> None:
        for name in names:
            if self.netns is not None:
                netlink.link_delete(_relay_name(name, "t"))
                netlink.link_delete(_relay_name(name, "r"))    # and its end in the node
            self.plumbing.delete_link(name)

    # --- the lifecycle ---

    def fetch(self, spec: FunctionSpec) -> None:
        """The image is local; the domain type is probed here, outside any transaction,
        the first time (it boots a throw-away guest under KVM when /dev/kvm opens)."""
        self.resolved_domain_type(load_image(spec.image))

    def create(self, spec: FunctionSpec) -> tuple:
        instance = spec.instance
        directory = self.store.dir(instance)
        libvirt = _libvirt()
        with self._lock(instance):
            if directory.exists() or self._domain(instance) is not None:
                raise ResourceExists("kvm function instance exists", resource=instance)
            image = load_image(spec.image)
            template = spec.template or {}
            memory = max(MIN_MEMORY, _template_int(template, "memory", DEFAULT_MEMORY))
            vcpus = max(1, _template_int(template, "cpu", 1))
            domain_type = self.resolved_domain_type(image)
            self._check_free(spec.ports)
            directory.mkdir(parents=True)
            meta = {"instance": instance, "dir": str(directory), "state": CREATING,
                    "labels": dict(spec.labels), "image": spec.image, "ports": [],
                    "template": template.get("id"), "domain_type": domain_type,
                    "port_counts": {key: template[key] for key in ("port-count", "min-ports",
                                                                   "max-ports") if key in template},
                    "ready_signal": bool(template.get("ready-signal", True)),
                    "ready_timeout": float(template.get("ready-timeout",
                                                        self.ready_timeout))}
            self.store.save(meta)
            try:
                for port in spec.ports:
                    # recorded first, on disk too: a failure half-way removes what it made,
                    # and so does the recovery after a crash half-way (a tap and its relay
                    # are not in a namespace whose deletion would take them along)
                    meta["ports"].append(port_record(port, self._tap(port.vswitch_ifname)))
                    self.store.save(meta)
                    self._add_port(port.vswitch_ifname)
                words = ["console=ttyS0", "quiet", "panic=-1",
                         "composer.ports=%d" % len(spec.ports),
                         "composer.function=%s" % template.get("guest-function", "bridge")]
                words += ["composer.param=%s" % p for p in spec.parameters]
                bad = [w for w in words if not w.isprintable() or " " in w or '"' in w]
                if bad:
                    raise DriverError("a guest-function or parameter holds a space, a quote or "
                                      "a control character: %r" % bad[0], resource=instance)
                if len(" ".join(words)) > MAX_CMDLINE:
                    raise DriverError("the parameters do not fit on the guest's kernel "
                                      "command line (%d characters)" % MAX_CMDLINE,
                                      resource=instance)
                xml = domain_xml(
                    instance, domain_type=domain_type, image=image, memory_mib=memory,
                    vcpus=vcpus, console=str(directory / "console.log"),
                    taps=[(p.port_id, self._tap(p.vswitch_ifname), p.mac_address,
                           p.vswitch_ifname) for p in spec.ports],
                    cmdline=" ".join(words), cpu_cores=tuple(spec.cpu_cores),
                    labels=spec.labels, machine=template.get("machine"),
                    owner=str(self.state_dir))
                try:
                    self._connection().defineXML(xml)
                except libvirt.libvirtError as exc:
                    raise DriverError("libvirt refused the domain: %s"
                                      % exc.get_error_message(), resource=instance) from None
                meta["state"] = CREATED
                self.store.save(meta)
            except BaseException:
                self._destroy(instance, meta)
                raise
        return self.port_attachments(template, spec.ports)

    def _check_free(self, ports) -> None:
        """ResourceExists when the node-side name of one of ports (FunctionPort) is taken,
        or, with a node namespace, the name of its relay in the root namespace."""
        self.plumbing.check_free(p.vswitch_ifname for p in ports)
        if self.netns is not None:
            for name in [_relay_name(p.vswitch_ifname, k) for p in ports for k in ("t", "r")]:
                if netlink.link_exists(name):
                    raise ResourceExists("interface exists in the root namespace",
                                         resource=name)

    def update(self, instance: str, add_ports: tuple = (), remove_ports: tuple = ()) -> tuple:
        """Ports removed (by id), then added (FunctionPort), all or nothing:
          1. (removed) on a running domain, its NIC unplugged (libvirt detachDeviceFlags,
             VIR_DOMAIN_AFFECT_LIVE; returns once QEMU released it), then its tap and relay
             deleted;
          2. (added) recorded on disk, its tap (and relay) made, then on a running domain a
             virtio NIC on that tap hot-plugged (attachDeviceFlags, AFFECT_LIVE), and, with
             the ready signal, "composer: port up <mac>" awaited on the console (the guest
             of nsf/guest.py bridges every NIC that appears);
          3. the domain's definition rewritten with the ports (interfaces, metadata, the
             guest's port count), so that the next boot has them.
        A paused domain is resumed for the update (its guest must answer the hot-plug)
        and paused again. A failure undoes the steps done, in reverse order: no tap, relay
        or NIC of an added port is left, a removed one is back."""
        libvirt = _libvirt()
        with self._lock(instance):
            meta = self._load(instance)
            if meta["state"] in (CREATING, FAILED):
                raise DriverError("cannot update an incomplete instance", resource=instance)
            add = list(add_ports)
            current = {p["port_id"]: p for p in meta["ports"]}
            unknown = [pid for pid in remove_ports if pid not in current]
            if unknown:
                raise ResourceNotFound("no port %s" % ", ".join(map(repr, unknown)),
                                       resource=instance)
            kept = [p for p in meta["ports"] if p["port_id"] not in remove_ports]
            check_unique([FunctionPort(p["port_id"], p["vswitch_ifname"]) for p in kept] + add)
            if meta.get("port_counts"):
                packages.check_port_count(meta["port_counts"], len(kept) + len(add), instance)
            self._check_free(add)
            domain = self._domain(instance)
            if domain is None:
                raise ResourceNotFound("the kvm function's domain is gone", resource=instance)
            live = meta["state"] in (RUNNING, PAUSED)
            if live and not domain.isActive():
                raise DriverError("its QEMU is not running", resource=instance)
            try:
                definition = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE |
                                            libvirt.VIR_DOMAIN_XML_SECURE)
            except libvirt.libvirtError as exc:
                raise DriverError("libvirt: %s" % exc.get_error_message(),
                                  resource=instance) from None
            before = list(meta["ports"])
            paused = meta["state"] == PAUSED
            undo = []
            self.watching.remove(instance)
            try:
                if paused:
                    self._libvirt_call(instance, "resume")
                for pid in remove_ports:
                    record = current[pid]
                    if live:
                        # its address, for the undo to plug the same NIC back
                        record = dict(record, guest_mac=self._live_mac(domain, record["ifname"])
                                      or record.get("guest_mac"))
                        self._unplug(domain, record)
                        undo.append(partial(self._plug, domain, meta, record))
                    self._delete_ports([record["vswitch_ifname"]])
                    undo.append(partial(self._add_port, record["vswitch_ifname"]))
                meta["ports"] = kept
                for port in add:
                    record = dict(port_record(port, self._tap(port.vswitch_ifname)),
                                  guest_mac=(port.mac_address or _random_mac()).lower())
                    meta["ports"].append(record)
                    self.store.save(meta)       # recorded before it is made (as in create)
                    undo.append(partial(self._delete_ports, [port.vswitch_ifname]))
                    self._add_port(port.vswitch_ifname)
                    if live:
                        self._plug(domain, meta, record)
                        undo.append(partial(self._unplug, domain, record))
                self._define(instance, with_ports(definition, meta["ports"]))
                undo.append(partial(self._define, instance, definition))
                record_update(meta, IN_PLACE)
                self.store.save(meta)
            except BaseException:
                for step in reversed(undo):
                    try:
                        step()
                    except Exception as exc:  # noqa: BLE001 - the others still run
                        LOG.warning("kvm function %s: undo of a port update: %s",
                                    instance, exc)
                meta["ports"] = before
                self.store.save(meta)
                raise
            finally:
                if paused:
                    self._libvirt_call(instance, "suspend")
                if live:
                    self._watch(instance, meta)
            return tuple(PortAttachment(p["port_id"], p["vswitch_ifname"])
                         for p in meta["ports"])

    def _define(self, instance: str, xml: str) -> None:
        libvirt = _libvirt()
        try:
            self._connection().defineXML(xml)
        except libvirt.libvirtError as exc:
            raise DriverError("libvirt refused the domain: %s" % exc.get_error_message(),
                              resource=instance) from None

    def _plug(self, domain, meta: dict, record: dict) -> None:
        """A virtio NIC on the port's tap hot-plugged into the running guest; with the
        ready signal, returns once the guest says it bridges it (else unplugs it and
        raises)."""
        libvirt = _libvirt()
        console = Path(meta["dir"]) / "console.log"
        offset = console.stat().st_size if console.exists() else 0
        mac = record.get("guest_mac") or self._live_mac(domain, record["ifname"])
        if self.netns is not None:
            # libvirt clears the tap's qdiscs when it unplugs a NIC: a NIC plugged back
            # (the undo of a remove) needs the relay's redirect again
            tap = _relay_name(record["vswitch_ifname"], "t")
            if not _redirects(tap):
                _redirect(tap, _relay_name(record["vswitch_ifname"], "r"))
        element = interface_element(record["ifname"], mac)
        try:
            domain.attachDeviceFlags(etree.tostring(element).decode(),
                                     libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except libvirt.libvirtError as exc:
            raise DriverError("cannot hot-plug the port's NIC: %s" % exc.get_error_message(),
                              resource=record["vswitch_ifname"]) from None
        if not meta.get("ready_signal", True) or not console.exists():
            return
        try:
            if not self._wait_console(console, offset, HOTPLUG_TIMEOUT, domain.isActive,
                                      line=PORT_UP_LINE % mac):
                raise DriverError("the guest did not take the hot-plugged NIC %s in %d s"
                                  % (mac, HOTPLUG_TIMEOUT), resource=record["vswitch_ifname"],
                                  detail=_tail(console))
        except BaseException:
            self._unplug(domain, record)
            raise

    @staticmethod
    def _live_interface(domain, tap: str):
        """The <interface> of the running domain on tap, None when it has none."""
        libvirt = _libvirt()
        try:
            root = etree.fromstring(domain.XMLDesc(0).encode())
        except libvirt.libvirtError as exc:
            raise DriverError("libvirt: %s" % exc.get_error_message(),
                              resource=tap) from None
        for interface in root.iterfind("devices/interface"):
            target = interface.find("target")
            if target is not None and target.get("dev") == tap:
                return interface
        return None

    def _live_mac(self, domain, tap: str) -> str | None:
        interface = self._live_interface(domain, tap)
        found = interface.find("mac") if interface is not None else None
        return found.get("address").lower() if found is not None else None

    def _unplug(self, domain, record: dict) -> None:
        """The NIC on the port's tap unplugged from the running guest; returns once QEMU
        released it (libvirt drops it from the live definition when the guest answered
        the unplug), DriverError after HOTPLUG_TIMEOUT."""
        libvirt = _libvirt()
        tap = record["ifname"]
        interface = self._live_interface(domain, tap)
        if interface is None:
            return
        try:
            domain.detachDeviceFlags(etree.tostring(interface).decode(),
                                     libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except libvirt.libvirtError as exc:
            raise DriverError("cannot unplug the port's NIC: %s" % exc.get_error_message(),
                              resource=record["vswitch_ifname"]) from None
        deadline = time.monotonic() + UNPLUG_TIMEOUT
        while self._live_interface(domain, tap) is not None:
            if time.monotonic() > deadline:
                raise DriverError("the guest did not release the port's NIC in %d s"
                                  % UNPLUG_TIMEOUT, resource=record["vswitch_ifname"])
            time.sleep(0.05)

    def start(self, instance: str) -> None:
        libvirt = _libvirt()
        with self._lock(instance):
            meta = self._load(instance)
            domain = self._domain(instance)
            if domain is None:
                raise ResourceNotFound("the kvm function's domain is gone", resource=instance)
            if meta["state"] == RUNNING and domain.isActive():
                return
            if meta["state"] == PAUSED:
                raise DriverError("paused: resume it", resource=instance)
            console = Path(meta["dir"]) / "console.log"
            console.write_bytes(b"")
            try:
                try:
                    domain.create()
                except libvirt.libvirtError as exc:
                    raise DriverError("the domain did not start: %s"
                                      % exc.get_error_message(), resource=instance) from None
                if meta.get("ready_signal", True):
                    timeout = meta.get("ready_timeout", self.ready_timeout)
                    if not self._wait_console(console, 0, timeout, domain.isActive):
                        raise DriverError("the guest did not say it is ready in %d s"
                                          % timeout, resource=instance,
                                          detail=_tail(console))
            except BaseException:
                self._power_off(domain)
                raise
            meta["state"] = RUNNING
            self.store.save(meta)
            self._watch(instance, meta)

    def _wait_console(self, console: Path, offset: int, timeout: float, active,
                      line: str = READY_LINE) -> bool:
        """Until the guest writes line (READY_LINE: its boot is over) on its console after
        offset (True); DriverError when it writes FAILED_LINE or its QEMU exits; False
        after timeout seconds. The file is read as it grows, every 20 ms."""
        deadline = time.monotonic() + timeout
        seen = b""
        with open(console, "rb") as stream:
            stream.seek(offset)
            while True:
                chunk = stream.read()
                if chunk:
                    seen = seen[-4096:] + chunk
                    text = seen.decode("utf-8", "replace")
                    if line in text:
                        return True
                    if FAILED_LINE in text:
                        why = text.split(FAILED_LINE, 1)[1].splitlines()[0].strip()
                        raise DriverError("the guest failed: %s" % why)
                    continue
                if not active():
                    raise DriverError("the guest stopped",
                                      detail=seen[-500:].decode("utf-8", "replace"))
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.02)

    def _power_off(self, domain) -> None:
        libvirt = _libvirt()
        try:
            if domain.isActive():
                domain.destroy()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:   # not running
                raise DriverError("cannot stop the domain: %s" % exc.get_error_message(),
                                  resource=domain.name()) from None

    def stop(self, instance: str) -> None:
        with self._lock(instance):
            meta = self._load(instance)
            if meta["state"] not in (RUNNING, PAUSED):
                return
            self.watching.remove(instance)
            domain = self._domain(instance)
            if domain is not None:
                self._power_off(domain)
            meta["state"] = STOPPED
            self.store.save(meta)

    def pause(self, instance: str) -> None:
        with self._lock(instance):
            meta = self._load(instance)
            if meta["state"] == PAUSED:
                return
            if meta["state"] != RUNNING:
                raise DriverError("not running", resource=instance)
            self._libvirt_call(instance, "suspend")
            meta["state"] = PAUSED
            self.store.save(meta)

    def resume(self, instance: str) -> None:
        with self._lock(instance):
            meta = self._load(instance)
            if meta["state"] != PAUSED:
                return
            self._libvirt_call(instance, "resume")
            meta["state"] = RUNNING
            self.store.save(meta)

    def _libvirt_call(self, instance: str, method: str) -> None:
        libvirt = _libvirt()
        domain = self._domain(instance)
        if domain is None:
            raise ResourceNotFound("the kvm function's domain is gone", resource=instance)
        try:
            getattr(domain, method)()
        except libvirt.libvirtError as exc:
            raise DriverError("%s: %s" % (method, exc.get_error_message()),
                              resource=instance) from None

    def destroy(self, instance: str) -> None:
        with self._lock(instance):
            try:
                meta = self.store.load(instance)
            except ResourceNotFound:
                meta = None
            domain, found = self._own_domain(instance)
            if meta is None and domain is None:
                raise ResourceNotFound("no kvm function instance", resource=instance)
            if meta is None:
                meta = {"dir": str(self.store.dir(instance)),
                        "ports": [{"vswitch_ifname": n} for n in found["ports"]]}
            self._destroy(instance, meta)

    def _destroy(self, instance: str, meta: dict) -> None:
        """Everything of the instance goes: the watch, the domain (powered off, undefined),
        the taps, the directory."""
        libvirt = _libvirt()
        self.watching.remove(instance)
        domain, _ = self._own_domain(instance)
        if domain is not None:
            self._power_off(domain)
            try:
                domain.undefine()
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise DriverError("cannot undefine the domain: %s"
                                      % exc.get_error_message(), resource=instance) from None
        self._delete_ports(self._ifnames(meta))
        shutil.rmtree(meta["dir"], ignore_errors=True)

    def list_instances(self, labels: dict | None = None) -> list[InstanceInfo]:
        libvirt = _libvirt()
        wanted = labels or {}
        found = {}
        domains = {}
        for domain in self._connection().listAllDomains(0):
            try:
                meta = parse_metadata(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            except libvirt.libvirtError:
                continue            # undefined meanwhile
            if meta is not None and meta["owner"] == str(self.state_dir):
                domains[domain.name()] = (domain, meta)
        for name in sorted(set(self.store.names()) | set(domains)):
            try:
                meta = self.store.load(name)
            except ResourceNotFound:
                meta = None
            domain, dmeta = domains.get(name, (None, None))
            labels_of = meta["labels"] if meta else dmeta["labels"]
            if any(labels_of.get(k) != v for k, v in wanted.items()):
                continue
            ports = tuple(self._ifnames(meta)) if meta else tuple(dmeta["ports"])
            state = self._state(meta, domain)
            found[name] = InstanceInfo(name, state, labels=dict(labels_of), ports=ports)
        return list(found.values())

    def _state(self, meta: dict | None, domain) -> str:
        libvirt = _libvirt()
        if meta is None or domain is None or meta["state"] in (CREATING, FAILED):
            return FAILED
        try:
            state = domain.state()[0]
        except libvirt.libvirtError:
            return FAILED
        if meta["state"] == PAUSED and state == libvirt.VIR_DOMAIN_PAUSED:
            return PAUSED
        if meta["state"] == RUNNING:
            return RUNNING if state == libvirt.VIR_DOMAIN_RUNNING else FAILED
        return meta["state"] if state == libvirt.VIR_DOMAIN_SHUTOFF else FAILED

    def status(self, instance: str) -> str:
        meta = self._load(instance)
        return self._state(meta, self._domain(instance))

    # --- watching ---

    def watch(self, watcher, sink) -> None:
        self.watching.start(watcher, sink)
        for info in self.list_instances():
            if info.state == RUNNING:
                self._watch(info.instance, self._load(info.instance))

    def unwatch(self) -> None:
        self.watching.stop()

    def _qemu(self, instance: str) -> tuple | None:
        """process_identity() of the instance's QEMU (libvirt's pid file), None if none."""
        try:
            pid = int(Path("/run/libvirt/qemu/%s.pid" % instance).read_text().strip())
        except (OSError, ValueError):
            return None
        return watch.process_identity(pid)

    def _watch(self, instance: str, meta: dict) -> None:
        if self.watching.watcher is None:
            return
        identity = self._qemu(instance)
        self.watching.add(instance, self._ifnames(meta), [identity] if identity else [])

    def problems(self, instance: str) -> list:
        meta = self._load(instance)
        if meta["state"] != RUNNING:
            return []
        domain = self._domain(instance)
        if domain is None:
            return [watch.Event(watch.FUNCTION, instance, watch.LOST, "its domain is gone")]
        found = [watch.Event(watch.FUNCTION, instance, watch.LOST,
                             "its port %s was deleted" % name)
                 for name in self._ifnames(meta)
                 if not netlink.link_exists(name, self.netns)]
        if not domain.isActive():
            found.append(watch.Event(watch.FUNCTION, instance, watch.EXITED,
                                     "its QEMU exited"))
        return found


def _relay_name(vswitch_ifname: str, kind: str) -> str:
    """The root-namespace tap ("t") or veth end ("r") relaying a port (see the module's
    docstring): the port's name, cut to 13 characters, and '.t' or '.r'."""
    return "%s.%s" % (vswitch_ifname[:13], kind)


def _redirect(source: str, target: str) -> None:
    """Everything source receives leaves by target (tc ingress, u32 match all, mirred)."""
    for argv in (["tc", "qdisc", "replace", "dev", source, "ingress"],
                 ["tc", "filter", "add", "dev", source, "parent", "ffff:", "protocol", "all",
                  "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect",
                  "dev", target]):
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise DriverError("cannot relay %s to %s: %s" % (source, target,
                                                              done.stderr.strip()),
                              resource=source)


def _redirects(source: str) -> bool:
    """Whether source has an ingress filter (the relay's redirect of _redirect)."""
    done = subprocess.run(["tc", "filter", "show", "dev", source, "ingress"],
                          capture_output=True, text=True)
    return done.returncode == 0 and bool(done.stdout.strip())


def _random_mac() -> str:
    """A MAC in QEMU's range, as libvirt picks one; chosen by the driver for a hot-plugged
    NIC so that the running guest and the next boot see the same address."""
    return "52:54:00:%02x:%02x:%02x" % tuple(random.randrange(256) for _ in range(3))


def with_ports(xml: str, ports: list) -> str:
    """A domain's definition (XML) with the given ports (records of the instance's
    metadata) instead of its own: <interface>s on the others' taps removed, on the new
    taps added, the <metadata> ports and the guest's composer.ports rewritten."""
    root = etree.fromstring(xml.encode())
    taps = [p["ifname"] for p in ports]
    devices = root.find("devices")
    present = set()
    for interface in devices.findall("interface"):
        target = interface.find("target")
        dev = target.get("dev") if target is not None else None
        if dev in taps:
            present.add(dev)
        else:
            devices.remove(interface)
    existing = devices.findall("interface")
    anchor = existing[-1] if existing else None
    for port in ports:
        if port["ifname"] in present:
            continue
        element = interface_element(port["ifname"], port.get("guest_mac") or port.get("mac"))
        if anchor is None:
            devices.insert(0, element)
        else:
            anchor.addnext(element)
        anchor = element
    function = root.find("metadata/{%s}function" % METADATA_NS)
    if function is not None:
        for element in function.findall("{%s}port" % METADATA_NS):
            function.remove(element)
        for port in ports:
            function.append(port_element(port["port_id"], port["vswitch_ifname"],
                                         port["ifname"]))
    cmdline = root.find("os/cmdline")
    if cmdline is not None and cmdline.text:
        cmdline.text = " ".join("composer.ports=%d" % len(ports)
                                if w.startswith("composer.ports=") else w
                                for w in cmdline.text.split())
    return etree.tostring(root).decode()


def _tail(path: Path, size: int = 800) -> str:
    try:
        data = path.read_bytes()[-size:]
    except OSError:
        return ""
    return data.decode("utf-8", "replace")

