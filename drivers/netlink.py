"""Small netlink helpers on pyroute2: namespaces, veth pairs, links, addresses, routes, sysctls.

Every helper takes an optional `netns`: the name of a network namespace under /run/netns to
act in; None is the namespace the process runs in. Interface names are at most 15
characters. Deletes are idempotent; a create that finds its resource raises ResourceExists.

How it works, and why:
  1. all pyroute2 requests run in one worker thread, so the synchronous pyroute2 API also
     works when the caller runs inside an asyncio loop (pyroute2 would try to run its own
     loop there and fail), and requests from several threads are serialised;
  2. the worker keeps one rtnetlink socket per namespace, opened on first use by a
     short-lived thread that setns() into the namespace (pyroute2's own netns support
     forks a process per socket, ~10 times slower); a new namespace is made the same way
     (unshare in a thread, bind-mounted under /run/netns);
  3. a socket opened in a namespace keeps the namespace alive after it is unmounted, with
     its interfaces: netns_delete() and release() close it first.
"""

import ctypes
import errno as _errno
import fcntl
import logging
import os
import shutil
import socket
import struct
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

from pyroute2 import IPRoute
from pyroute2 import netns as _pyr_netns
from pyroute2.ethtool.ioctl import IoctlEthtool, NoSuchDevice
from pyroute2.netlink.exceptions import NetlinkError as _PyrNetlinkError

from .errors import CommandError, NetlinkError, ResourceExists, ResourceNotFound

LOG = logging.getLogger(__name__)

NETNS_RUN_DIR = "/run/netns"
IFNAME_MAX = 15
CLONE_NEWNET = 0x40000000
IFF_UP, IFF_PROMISC = 0x1, 0x100          # <linux/if.h>

_libc = ctypes.CDLL(None, use_errno=True)


# --- names ---

def check_ifname(ifname: str) -> str:
    """Raise ValueError unless ifname is a valid interface name (1..15 chars, no '/', ':' or space)."""
    if (not isinstance(ifname, str) or not 0 < len(ifname) <= IFNAME_MAX or ifname in (".", "..")
            or any(c in ifname for c in "/: \t\n")):
        raise ValueError("invalid interface name %r (1..%d characters, no '/', ':' or blanks)"
                         % (ifname, IFNAME_MAX))
    return ifname


def check_netns_name(name: str) -> str:
    """Raise ValueError unless name can name a namespace under /run/netns."""
    if (not isinstance(name, str) or not 0 < len(name) <= 255 or name in (".", "..")
            or "/" in name or "\0" in name):
        raise ValueError("invalid network namespace name %r" % (name,))
    return name


# --- threads inside a namespace ---

def _setns(netns: str) -> None:
    fd = os.open(os.path.join(NETNS_RUN_DIR, netns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "setns(%s): %s" % (netns, os.strerror(err)))
    finally:
        os.close(fd)


def in_netns(netns: str | None, fn, *args, **kwargs):
    """fn(*args, **kwargs) in a short-lived thread inside netns; its result or its exception.

    Sockets made by fn stay in that namespace; files opened under /proc/sys/net are that
    namespace's.
    """
    if netns is None:
        return fn(*args, **kwargs)
    check_netns_name(netns)
    if not os.path.exists(os.path.join(NETNS_RUN_DIR, netns)):
        raise ResourceNotFound("no such network namespace", resource=netns)
    box = {}

    def run():
        try:
            _setns(netns)
            box["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=run, name="netns-%s" % netns)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")


# --- the worker that owns the sockets ---

class _Worker:
    """One thread running every pyroute2 request, with an IPRoute per namespace."""

    def __init__(self):
        self._pool = None
        self._ident = None
        self.routes: dict[str | None, IPRoute] = {}
        self._lock = threading.Lock()

    def _mark(self):
        self._ident = threading.get_ident()

    def call(self, fn, *args, **kwargs):
        if threading.get_ident() == self._ident:
            return fn(*args, **kwargs)
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netlink",
                                                initializer=self._mark)
        return self._pool.submit(fn, *args, **kwargs).result()

    def route(self, netns: str | None) -> IPRoute:
        """The IPRoute socket of netns (worker thread only)."""
        ipr = self.routes.get(netns)
        if ipr is None:
            if netns is None:
                ipr = IPRoute()
            else:
                fd = in_netns(netns, lambda: socket.socket(
                    socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE).detach())
                try:
                    ipr = IPRoute(fileno=fd)
                except Exception:
                    os.close(fd)
                    raise
            self.routes[netns] = ipr
        return ipr

    def release(self, netns: str | None) -> None:
        """Close the socket of netns (worker thread only)."""
        ipr = self.routes.pop(netns, None)
        if ipr is not None:
            try:
                ipr.close()
            except Exception:  # a socket whose namespace is gone may fail to close cleanly
                LOG.debug("closing the netlink socket of %s failed", netns, exc_info=True)


_WORKER = _Worker()


def _on_worker(fn):
    """Run the decorated helper on the worker, translating pyroute2's errors."""

    def wrapper(*args, **kwargs):
        def body():
            try:
                return fn(*args, **kwargs)
            except _PyrNetlinkError as exc:
                raise _translate(exc, fn.__name__, args) from None
        return _WORKER.call(body)

    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
    wrapper.__wrapped__ = fn
    return wrapper


def _translate(exc: _PyrNetlinkError, op: str, args: tuple) -> Exception:
    code = exc.code
    resource = args[0] if args and isinstance(args[0], str) else None
    message = "%s failed: %s" % (op, os.strerror(code) if code else exc)
    if code == _errno.EEXIST:
        return ResourceExists(message, resource=resource)
    if code in (_errno.ENODEV, _errno.ENOENT, _errno.ESRCH):
        return ResourceNotFound(message, resource=resource)
    return NetlinkError(message, errno=code, resource=resource)


def _index(ipr: IPRoute, ifname: str, netns: str | None) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise ResourceNotFound("no such interface%s" % (" in %s" % netns if netns else ""),
                               resource=ifname)
    return found[0]


def _netns_fd(netns: str | None) -> int:
    """An open fd of netns, or of the worker's own namespace for None (close it after use)."""
    if netns is None:
        return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    check_netns_name(netns)
    try:
        return os.open(os.path.join(NETNS_RUN_DIR, netns), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ResourceNotFound("no such network namespace", resource=netns) from None


# --- namespaces ---

def netns_exists(name: str) -> bool:
    check_netns_name(name)
    return os.path.exists(os.path.join(NETNS_RUN_DIR, name))


NS_GET_NSTYPE = 0xB703                    # _IO(0xb7, 0x3), <linux/nsfs.h>


def netns_usable(name: str) -> bool:
    """Whether `ip netns exec name` can enter the namespace: /run/netns/name is a network
    namespace (a file left without its mount, or anything else, is not)."""
    check_netns_name(name)
    try:
        fd = os.open(os.path.join(NETNS_RUN_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE) == CLONE_NEWNET
    except OSError:
        return False
    finally:
        os.close(fd)


def netns_list(prefix: str = "") -> list[str]:
    """Names of the namespaces under /run/netns that start with prefix, sorted."""
    try:
        names = os.listdir(NETNS_RUN_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(prefix))


@_on_worker
def netns_add(name: str, *, loopback_up: bool = True) -> None:
    """Create the namespace `name` (as `ip netns add`), its loopback up."""
    check_netns_name(name)
    _WORKER.release(name)
    if os.path.exists(os.path.join(NETNS_RUN_DIR, name)):
        raise ResourceExists("network namespace exists", resource=name)

    def make():
        if _libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "unshare: %s" % os.strerror(err))
        try:
            _pyr_netns.attach(name, "thread-self")
        except FileExistsError:
            raise ResourceExists("network namespace exists", resource=name) from None
        except Exception:
            # the mount point may exist without a mount: leave nothing behind
            _pyr_netns.remove(name)
            raise
        return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE).detach()

    # A thread of its own: it ends after unshare, so nothing else ever runs in the namespace.
    box = {}

    def run():
        try:
            box["fd"] = make()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, name="netns-add-%s" % name)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    ipr = IPRoute(fileno=box["fd"])
    _WORKER.routes[name] = ipr
    if loopback_up:
        ipr.link("set", index=1, state="up")


@_on_worker
def netns_attach(name: str, pid: int) -> None:
    """Name the network namespace of process pid `name` (as `ip netns attach`): a bind
    mount under /run/netns that keeps the namespace, and its interfaces, alive after the
    process is gone (a container's, across its restarts)."""
    check_netns_name(name)
    _WORKER.release(name)
    path = os.path.join(NETNS_RUN_DIR, name)
    if os.path.exists(path):
        raise ResourceExists("network namespace exists", resource=name)
    try:
        _pyr_netns.attach(name, int(pid))
    except BaseException as exc:
        if os.path.exists(path):            # the mount point, without its mount
            _pyr_netns.remove(name)
        if isinstance(exc, FileNotFoundError):
            raise ResourceNotFound("no such process", resource=str(pid)) from None
        raise


@_on_worker
def netns_delete(name: str) -> bool:
    """Remove the namespace `name` if it exists; True when it did.

    The kernel frees it once no process and no socket uses it any more: processes still
    running in it keep its interfaces alive.
    """
    check_netns_name(name)
    _WORKER.release(name)
    path = os.path.join(NETNS_RUN_DIR, name)
    if not os.path.exists(path):
        return False
    try:
        _pyr_netns.remove(name)
    except FileNotFoundError:
        return False
    return True


def netns_pids(name: str) -> list[int]:
    """The processes whose network namespace is `name`."""
    return netns_pids_of([name])[name]


def netns_pids_of(names) -> dict:
    """name -> the processes whose network namespace it is, for every one of names, in
    one pass over /proc (a namespace that does not exist has none)."""
    wanted = {}
    out = {}
    for name in names:
        check_netns_name(name)
        out[name] = []
        try:
            st = os.stat(os.path.join(NETNS_RUN_DIR, name))
        except FileNotFoundError:
            continue
        wanted.setdefault((st.st_dev, st.st_ino), []).append(name)
    if not wanted:
        return out
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ns = os.stat("/proc/%s/ns/net" % entry)
        except OSError:
            continue
        for name in wanted.get((ns.st_dev, ns.st_ino), ()):
            out[name].append(int(entry))
    return out


@_on_worker
def release(netns: str | None) -> None:
    """Close the cached socket of netns (call it when done with a namespace you keep)."""
    _WORKER.release(netns)


# --- links ---

@_on_worker
def link_exists(ifname: str, netns: str | None = None) -> bool:
    return bool(_WORKER.route(netns).link_lookup(ifname=check_ifname(ifname)))


@_on_worker
def link_names(prefix: str = "", netns: str | None = None) -> list[str]:
    """Names of the interfaces in netns that start with prefix, sorted."""
    names = (msg.get("ifname") for msg in _WORKER.route(netns).get_links())
    return sorted(n for n in names if n and n.startswith(prefix))


@_on_worker
def link_info(ifname: str, netns: str | None = None) -> dict:
    """{'index', 'ifname', 'mac', 'up', 'kind', 'master', 'mtu'} of one interface."""
    ipr = _WORKER.route(netns)
    msg = ipr.get_links(_index(ipr, check_ifname(ifname), netns))[0]
    linkinfo = msg.get("IFLA_LINKINFO")
    return {
        "index": msg["index"],
        "ifname": msg.get("ifname"),
        "mac": msg.get("address"),
        "up": bool(msg["flags"] & 1),
        "kind": linkinfo.get("IFLA_INFO_KIND") if linkinfo else None,
        "master": msg.get("IFLA_MASTER"),
        "mtu": msg.get("mtu"),
    }


@_on_worker
def veth_add(ifname: str, peer: str, *, netns: str | None = None, peer_netns: str | None = None,
             mac: str | None = None, peer_mac: str | None = None, up: bool = True,
             ipv6: bool = True, promisc: bool = False) -> None:
    """A veth pair: `ifname` in netns, `peer` in peer_netns, with the given MACs, both up.

    One request makes both ends in place (the peer directly in its namespace), so nothing is
    ever renamed or moved. ipv6=False: `ifname` gets no IPv6 (so neither an address nor
    routes) before it comes up; promisc: `ifname` comes up promiscuous. Both suit a vSwitch
    port: a switch that turns promiscuity on itself makes one more link event.
    """
    check_ifname(ifname)
    check_ifname(peer)
    ipr = _WORKER.route(netns)
    peer_spec = {"ifname": peer}
    if peer_mac:
        peer_spec["address"] = peer_mac
    fd = None
    if peer_netns != netns:
        fd = _netns_fd(peer_netns)
        peer_spec["net_ns_fd"] = fd
    spec = {"ifname": ifname, "kind": "veth", "peer": peer_spec}
    if mac:
        spec["address"] = mac
    flags = (IFF_UP if up else 0) | (IFF_PROMISC if promisc else 0)
    # Up (and promiscuous) in one request after the IPv6 sysctl, when there is one.
    later = bool(flags) and (not ipv6 or promisc)
    if up and not later:
        spec["state"] = "up"      # the peer's flags cannot ride along: set below
    try:
        ipr.link("add", **spec)
    finally:
        if fd is not None:
            os.close(fd)
    if not ipv6:
        _disable_ipv6(ifname, netns)
    if later:
        ipr.link("set", index=_index(ipr, ifname, netns), flags=flags, change=flags)
    if up:
        _WORKER.route(peer_netns).link("set", ifname=peer, state="up")


TUNSETIFF, TUNSETPERSIST = 0x400454CA, 0x400454CB      # <linux/if_tun.h>
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000


def tap_add(ifname: str, *, netns: str | None = None, mac: str | None = None,
            up: bool = True, ipv6: bool = True) -> None:
    """A persistent tap device `ifname` in netns (as `ip tuntap add mode tap`): nobody holds
    its file side until a hypervisor or the vSwitch opens it by name. link_delete removes it."""
    check_ifname(ifname)
    if link_exists(ifname, netns):
        raise ResourceExists("interface exists", resource=ifname)

    def make():
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        try:
            request = struct.pack("16sH22x", ifname.encode(), IFF_TAP | IFF_NO_PI)
            fcntl.ioctl(fd, TUNSETIFF, request)
            fcntl.ioctl(fd, TUNSETPERSIST, 1)
        finally:
            os.close(fd)

    try:
        in_netns(netns, make)
    except OSError as exc:
        raise NetlinkError("cannot make the tap device: %s" % exc.strerror, errno=exc.errno,
                           resource=ifname) from None
    if not ipv6:
        _disable_ipv6(ifname, netns)
    if mac is not None or up:
        link_set(ifname, netns, mac=mac, up=True if up else None)


def _disable_ipv6(ifname: str, netns: str | None) -> None:
    """No IPv6 on ifname (nothing to do on a kernel without IPv6)."""
    try:
        sysctl_set("net/ipv6/conf/%s/disable_ipv6" % ifname, 1, netns)
    except ResourceNotFound:
        pass


@_on_worker
def bridge_add(ifname: str, netns: str | None = None, *, up: bool = True) -> None:
    """A Linux bridge."""
    ipr = _WORKER.route(netns)
    ipr.link("add", ifname=check_ifname(ifname), kind="bridge")
    if up:
        ipr.link("set", index=_index(ipr, ifname, netns), state="up")


@_on_worker
def link_delete(ifname: str, netns: str | None = None) -> bool:
    """Delete the interface if it exists (a veth takes its peer along); True when it did."""
    ipr = _WORKER.route(netns)
    found = ipr.link_lookup(ifname=check_ifname(ifname))
    if not found:
        return False
    try:
        ipr.link("del", index=found[0])
    except _PyrNetlinkError as exc:
        if exc.code == _errno.ENODEV:
            return False
        raise
    return True


@_on_worker
def link_set(ifname: str, netns: str | None = None, *, up: bool | None = None,
             mac: str | None = None, mtu: int | None = None, master: str | None = None,
             nomaster: bool = False) -> None:
    """Change an interface: state, MAC, MTU, bridge master (by name) or no master."""
    ipr = _WORKER.route(netns)
    index = _index(ipr, check_ifname(ifname), netns)
    changes = {}
    if mac is not None:
        changes["address"] = mac
    if mtu is not None:
        changes["mtu"] = mtu
    if master is not None:
        changes["master"] = _index(ipr, check_ifname(master), netns)
    elif nomaster:
        changes["master"] = 0
    if changes:
        ipr.link("set", index=index, **changes)
    if up is not None:
        ipr.link("set", index=index, state="up" if up else "down")


@_on_worker
def link_move(ifname: str, to_netns: str | None, *, netns: str | None = None,
              new_name: str | None = None, up: bool = False, to_pid: int | None = None) -> None:
    """Move an interface from netns to to_netns (or to the network namespace of process
    to_pid, a container's, then to_netns names it for up), renamed to new_name in the same
    request.

    Moving takes an interface down and drops its addresses; up=True brings it up again.
    """
    ipr = _WORKER.route(netns)
    index = _index(ipr, check_ifname(ifname), netns)
    fd = _netns_fd(to_netns) if to_pid is None else None
    try:
        spec = {"net_ns_fd": fd} if fd is not None else {"net_ns_pid": int(to_pid)}
        if new_name:
            spec["ifname"] = check_ifname(new_name)
        ipr.link("set", index=index, **spec)
    finally:
        if fd is not None:
            os.close(fd)
    if up:
        target = _WORKER.route(to_netns)
        target.link("set", index=_index(target, new_name or ifname, to_netns), state="up")


@_on_worker
def link_rename(ifname: str, new_name: str, netns: str | None = None) -> None:
    """Rename an interface (it must be down)."""
    ipr = _WORKER.route(netns)
    ipr.link("set", index=_index(ipr, check_ifname(ifname), netns), ifname=check_ifname(new_name))


# --- addresses and routes ---

@_on_worker
def addr_add(ifname: str, address: str, prefixlen: int, netns: str | None = None) -> None:
    """Add an IPv4 address; adding one the interface already has is not an error."""
    ipr = _WORKER.route(netns)
    index = _index(ipr, check_ifname(ifname), netns)
    try:
        ipr.addr("add", index=index, address=address, prefixlen=int(prefixlen))
    except _PyrNetlinkError as exc:
        if exc.code != _errno.EEXIST:
            raise


@_on_worker
def addr_flush(ifname: str, netns: str | None = None) -> None:
    """Remove every IPv4 address of an interface."""
    ipr = _WORKER.route(netns)
    index = _index(ipr, check_ifname(ifname), netns)
    for msg in ipr.get_addr(index=index, family=socket.AF_INET):
        ipr.addr("del", index=index, address=msg.get("address"), prefixlen=msg["prefixlen"])


@_on_worker
def addr_list(ifname: str, netns: str | None = None) -> list[str]:
    """The IPv4 addresses of an interface as 'a.b.c.d/len'."""
    ipr = _WORKER.route(netns)
    index = _index(ipr, check_ifname(ifname), netns)
    return ["%s/%d" % (m.get("address"), m["prefixlen"])
            for m in ipr.get_addr(index=index, family=socket.AF_INET)]


@_on_worker
def route_add(dst: str, *, gateway: str | None = None, ifname: str | None = None,
              netns: str | None = None) -> None:
    """Add or replace an IPv4 route to dst ('a.b.c.d/len' or 'default') via gateway and/or ifname."""
    if gateway is None and ifname is None:
        raise ValueError("a route needs a gateway or an interface")
    ipr = _WORKER.route(netns)
    spec = {"dst": "0.0.0.0/0" if dst == "default" else dst}
    if gateway:
        spec["gateway"] = gateway
    if ifname:
        spec["oif"] = _index(ipr, check_ifname(ifname), netns)
    ipr.route("replace", **spec)


@_on_worker
def route_delete(dst: str, *, netns: str | None = None) -> bool:
    """Delete the IPv4 route to dst if there is one; True when it did."""
    ipr = _WORKER.route(netns)
    try:
        ipr.route("del", dst="0.0.0.0/0" if dst == "default" else dst)
    except _PyrNetlinkError as exc:
        if exc.code == _errno.ESRCH:
            return False
        raise
    return True


# --- sysctl and offloads ---

def _sysctl_path(key: str) -> str:
    parts = key.split("/") if "/" in key else key.split(".")
    if not parts or any(p in ("", ".", "..") for p in parts):
        raise ValueError("invalid sysctl key %r" % (key,))
    return os.path.join("/proc/sys", *parts)


def sysctl_set(key: str, value, netns: str | None = None) -> None:
    """Write a sysctl ('net.ipv4.ip_forward', or with '/' when a part holds a dot) in netns."""
    path = _sysctl_path(key)

    def write():
        with open(path, "w") as f:
            f.write(str(value))

    try:
        in_netns(netns, write)
    except FileNotFoundError:
        raise ResourceNotFound("no such sysctl", resource=key) from None


def sysctl_get(key: str, netns: str | None = None) -> str:
    """Read a sysctl in netns."""
    path = _sysctl_path(key)

    def read():
        with open(path) as f:
            return f.read().strip()

    try:
        return in_netns(netns, read)
    except FileNotFoundError:
        raise ResourceNotFound("no such sysctl", resource=key) from None


def tx_checksum_off(*ifnames: str, netns: str | None = None) -> None:
    """Turn tx checksum offload off (as `ethtool -K <if> tx off`, which also drops TSO).

    TCP through a veth into a userspace vSwitch needs it: packets would leave with partial
    checksums. Uses the ethtool ioctl from a socket in netns; falls back to running ethtool.
    """
    for ifname in ifnames:
        check_ifname(ifname)

    def ioctl():
        failed = []
        ethtool = IoctlEthtool()
        try:
            for ifname in ifnames:
                try:
                    ethtool.change_ifname(ifname)
                    ethtool.set_offload_flag("tx-checksumming", 0)
                except NoSuchDevice:
                    failed.append((ifname, None))
                except Exception as exc:  # EOPNOTSUPP and the like: try the ethtool binary
                    failed.append((ifname, exc))
        finally:
            ethtool.close()
        return failed

    for ifname, exc in in_netns(netns, ioctl):
        if exc is None:
            raise ResourceNotFound("no such interface%s" % (" in %s" % netns if netns else ""),
                                   resource=ifname)
        LOG.debug("ethtool ioctl on %s failed (%s); running ethtool", ifname, exc)
        _ethtool_tx_off(ifname, netns)


def _ethtool_tx_off(ifname: str, netns: str | None) -> None:
    ethtool = shutil.which("ethtool")
    if ethtool is None:
        raise CommandError("cannot turn tx checksum offload off: ethtool is not installed "
                           "(Debian package ethtool)", resource=ifname)
    argv = [ethtool, "-K", ifname, "tx", "off"]
    if netns:
        argv = ["ip", "netns", "exec", netns] + argv
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise CommandError("ethtool -K %s tx off failed" % ifname, resource=ifname,
                           detail=result.stderr)


def tx_checksum_enabled(ifname: str, netns: str | None = None) -> bool:
    """Whether tx checksum offload is on (for tests and diagnostics)."""
    check_ifname(ifname)

    def get():
        ethtool = IoctlEthtool(ifname)
        try:
            return bool(ethtool.get_offload_flags().get("tx-checksumming"))
        finally:
            ethtool.close()

    return in_netns(netns, get)


# --- link events ---

RTMGRP_LINK = 1
RTM_DELLINK = 17
IFLA_IFNAME = 3
_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_RTATTR = struct.Struct("=HH")


def watch_links(watcher, netns: str | None, callback) -> None:
    """callback(ifname) on the watcher's thread for each interface deleted in netns (None:
    the agent's own); callback(None) when the kernel dropped events (ENOBUFS)."""
    def make():
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        sock.bind((0, RTMGRP_LINK))
        sock.setblocking(False)
        return sock.detach()
    fd = in_netns(netns, make)

    def readable():
        for name in _deleted_links(fd):
            callback(name)
    readable.__name__ = "links of %s" % (netns or "the agent's namespace")
    watcher.own(fd, readable)


def _deleted_links(fd: int):
    """The names of the interfaces in the RTM_DELLINK messages waiting on fd; None when
    the kernel dropped some."""
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == _errno.ENOBUFS:
                yield None
                continue
            return
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, offset)
            if length < _NLMSGHDR.size:
                break
            if kind == RTM_DELLINK:
                yield _ifname(data[offset + _NLMSGHDR.size + _IFINFOMSG.size:offset + length])
            offset += (length + 3) & ~3


def _ifname(attributes: bytes) -> str | None:
    offset = 0
    while offset + _RTATTR.size <= len(attributes):
        length, kind = _RTATTR.unpack_from(attributes, offset)
        if length < _RTATTR.size:
            return None
        if kind == IFLA_IFNAME:
            return attributes[offset + 4:offset + length].rstrip(b"\0").decode(errors="replace")
        offset += (length + 3) & ~3
    return None
