"""The kvm functions' test guest (nsf/guest.py) and libvirtd, for the tests that boot VMs.

The guest is built once into nsf/dist/guest (as `make guest` does; a rebuild only when its
inputs changed); libvirtd is started by scripts/start-libvirtd (`make test` runs it). Where
either is impossible the kvm tests are skipped with the reason.
"""

import subprocess
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUEST_DIR = ROOT / "nsf" / "dist" / "guest"
URI = "qemu:///system"


def path() -> Path:
    """The built guest's directory (its guest.json)."""
    return GUEST_DIR


@lru_cache(maxsize=None)
def unavailable() -> str | None:
    """Why VMs cannot run here (None: they can): libvirt-python, libvirtd, the guest."""
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return "libvirt-python is not installed (make venv)"
    started = subprocess.run([str(ROOT / "scripts" / "start-libvirtd")], capture_output=True,
                             text=True)
    if started.returncode != 0:
        return "libvirtd: %s" % started.stderr.strip()
    from nsf import guest
    try:
        guest.build(GUEST_DIR)
    except guest.GuestBuildError as exc:
        return "the test guest cannot be built: %s" % exc
    return None


def domain_names(prefix: str = "", active: bool = False) -> list[str]:
    """The libvirt domains (defined or running; active: running) whose names start with
    prefix."""
    try:
        import libvirt
    except ImportError:
        return []
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        conn = libvirt.open(URI)
    except libvirt.libvirtError:
        return []
    try:
        flags = libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE if active else 0
        return sorted(d.name() for d in conn.listAllDomains(flags)
                      if d.name().startswith(prefix))
    finally:
        conn.close()


def domain_exists(name: str) -> bool:
    return name in domain_names(name)


def domain_id(name: str) -> int:
    """The running domain's id (a new one each time it is started; -1 when it is off)."""
    import libvirt
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open(URI)
    try:
        return conn.lookupByName(name).ID()
    finally:
        conn.close()


def domain_xml(name: str) -> str:
    """The domain's XML as it runs."""
    import libvirt
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open(URI)
    try:
        return conn.lookupByName(name).XMLDesc(0)
    finally:
        conn.close()
