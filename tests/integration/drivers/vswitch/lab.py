"""A small network lab for the vSwitch tests: namespaces as hosts, veth pairs, traffic.

Every namespace and link is named by the test (all start with the session PREFIX) and is
created directly in its namespace, never in the root one. Lab.close() deletes the
namespaces, which takes their veth ends (and so the peers) with them.
"""

import json
import select
import socket
import struct
import subprocess
import threading
import time

from pyroute2.netns import setns

from tests.resources import PREFIX

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 1 << 4


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check)


def in_ns(netns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return run("ip", "netns", "exec", netns, *argv, check=check)


class Lab:
    """Namespaces and veth pairs of one test."""

    def __init__(self):
        self.namespaces: list[str] = []

    def netns(self, name: str) -> str:
        assert name.startswith(PREFIX), name
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")
        # No IPv6 chatter (router/neighbour solicitations) in captures and counters.
        in_ns(name, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1")
        in_ns(name, "sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1")
        return name

    def veth(self, name_a: str, ns_a: str, name_b: str, ns_b: str, *,
             mtu: int | None = None, tx_off: tuple = ()) -> None:
        """A veth pair with each end in its namespace, both up. tx_off: the ends that send
        TCP into the userspace datapath (`ethtool -K tx off`, see DESIGN.md)."""
        assert name_a.startswith(PREFIX) and name_b.startswith(PREFIX)
        run("ip", "link", "add", name_a, "netns", ns_a, "type", "veth",
            "peer", "name", name_b, "netns", ns_b)
        for name, ns in ((name_a, ns_a), (name_b, ns_b)):
            if mtu:
                run("ip", "-n", ns, "link", "set", name, "mtu", str(mtu))
            run("ip", "-n", ns, "link", "set", name, "up")
            if name in tx_off:
                in_ns(ns, "ethtool", "-K", name, "tx", "off")

    def host(self, name: str, node_ns: str, node_end: str, address: str | None = None, *,
             gateway: str | None = None, mac: str | None = None) -> str:
        """A host namespace `name` whose interface <name>e is wired to node_end in node_ns."""
        self.netns(name)
        ifname = name + "e"
        self.veth(ifname, name, node_end, node_ns, tx_off=(ifname,))
        if mac:
            run("ip", "-n", name, "link", "set", ifname, "address", mac)
        if address:
            run("ip", "-n", name, "addr", "add", address, "dev", ifname)
        if gateway:
            run("ip", "-n", name, "route", "add", "default", "via", gateway)
        return name

    def close(self) -> None:
        for name in reversed(self.namespaces):
            run("ip", "netns", "del", name, check=False)
        self.namespaces.clear()


# --- traffic ---

def ping(netns: str, address: str, count: int = 3) -> bool:
    """count pings, all answered (after up to 10 tries for the first, while ARP and the
    datapath learn)."""
    for _ in range(10):
        if in_ns(netns, "ping", "-c", "1", "-W", "1", address, check=False).returncode == 0:
            break
    result = in_ns(netns, "ping", "-c", str(count), "-i", "0.2", "-W", "2", address,
                   check=False)
    return result.returncode == 0 and (" %d received" % count) in result.stdout


def iperf3(server_ns: str, server_ip: str, client_ns: str, seconds: int = 1) -> dict:
    """One TCP iperf3 run; returns the client's JSON end summary."""
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1",
                               "-B", server_ip], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            listening = in_ns(server_ns, "ss", "-Hltn", "sport = :5201", check=False).stdout
            if listening.strip():
                break
            time.sleep(0.05)
        result = in_ns(client_ns, "iperf3", "-c", server_ip, "-t", str(seconds), "-J",
                       "--connect-timeout", "5000", check=False)
        report = json.loads(result.stdout or "{}")
        assert "error" not in report, report.get("error")
        server.wait(timeout=30)
        return report["end"]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


# --- raw Ethernet frames (VLAN tags without the 8021q module) ---

def packet_socket(netns: str, ifname: str) -> socket.socket:
    """An AF_PACKET socket bound to ifname in netns, with VLAN auxdata on.

    setns() moves only the calling thread, so the socket is opened in a short-lived thread;
    it stays in that namespace afterwards."""
    out = {}

    def open_there():
        try:
            setns(netns, flags=0)
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            sock.bind((ifname, 0))
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            out["sock"] = sock
        except BaseException as err:       # re-raised in the caller
            out["error"] = err

    thread = threading.Thread(target=open_there)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["sock"]


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _mac(text: str) -> bytes:
    return bytes(int(x, 16) for x in text.split(":"))


def icmp_echo(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, ident: int,
              vlan: int | None = None) -> bytes:
    """An Ethernet frame with an ICMP echo request, 802.1Q-tagged when vlan is given."""
    icmp = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"composer" * 4
    icmp = icmp[:2] + struct.pack("!H", _checksum(icmp)) + icmp[4:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), ident, 0, 64, 1, 0,
                         socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    eth = _mac(dst_mac) + _mac(src_mac)
    if vlan is not None:
        eth += struct.pack("!HH", 0x8100, vlan)
    return eth + struct.pack("!H", 0x0800) + header + icmp


def receive_icmp(sock: socket.socket, timeout: float = 5.0):
    """The next ICMP frame that arrived on sock: (type, ident, vlan or None).

    The kernel takes the 802.1Q tag out of a received frame and hands it over as auxdata;
    a tag still inside the frame is read too. None when nothing came within timeout."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([sock], [], [], remaining)[0]:
            return None
        data, ancillary, _flags, address = sock.recvmsg(65535, socket.CMSG_SPACE(32))
        if address[2] == PACKET_OUTGOING:
            continue
        vlan = None
        for level, kind, payload in ancillary:
            if level == SOL_PACKET and kind == PACKET_AUXDATA:
                status, _, _, _, _, tci, _tpid = struct.unpack("IIIHHHH", payload[:20])
                if status & TP_STATUS_VLAN_VALID:
                    vlan = tci & 0x0FFF
        ethertype, offset = struct.unpack("!H", data[12:14])[0], 14
        if ethertype == 0x8100:
            vlan = struct.unpack("!H", data[14:16])[0] & 0x0FFF
            ethertype, offset = struct.unpack("!H", data[16:18])[0], 18
        if ethertype != 0x0800 or data[offset + 9] != 1:
            continue
        icmp = offset + (data[offset] & 0x0F) * 4
        kind, = struct.unpack("!B", data[icmp:icmp + 1])
        ident, = struct.unpack("!H", data[icmp + 4:icmp + 6])
        return kind, ident, vlan
