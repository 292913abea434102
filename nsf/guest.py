"""Build the tiny guest the kvm functions boot: a Debian cloud kernel and an initramfs.

The initramfs holds busybox-static (the shell and its applets), the kernel modules the
guest loads (virtio-net, the bridge and nftables, each with what it depends on), the
host's nft with its libraries and the firewall's ruleset (nsf/firewall/lib.sh) for the
firewall function, and nsf/guest/init,
which reads the kernel command line, bridges the ports and writes "composer: ready" on the
serial console (the driver waits for that line; see drivers/compute/kvm.py).

Everything comes from Debian packages: the kernel is `linux-image-cloud-amd64` (its
virtio drivers are modules), fetched with `apt-get download` into a cache beside the
output and unpacked with dpkg-deb, never installed; busybox-static is the
host's. The output is byte for byte the same for the same inputs: the cpio archive is
written here with sorted members, zero times and root owner, gzip without name or time.

    python -m nsf.guest <dest_dir>     # writes <dest_dir>/vmlinuz, initramfs.img, guest.json
"""

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from nsf.images import shared_libraries

SOURCE_DIR = Path(__file__).resolve().parent
KERNEL_PACKAGE = "linux-image-cloud-amd64"
# What the guest's init loads; their dependencies are added from the modules' own info.
MODULES = ("virtio_pci", "virtio_net", "bridge",
           # the firewall function: nftables on the bridged traffic, with conntrack
           "br_netfilter", "nf_tables", "nft_ct")
BUSYBOX = "/bin/busybox"
# Host binaries the guest carries (with their libraries): nft for the firewall function
# (busybox has no nftables nor iptables).
BINARIES = ("/usr/sbin/nft",)
# Package files the guest's functions use: the firewall's ruleset (the same parameters
# as the native and docker firewalls).
PACKAGE_FILES = {"composer/firewall/lib.sh": SOURCE_DIR / "firewall" / "lib.sh"}


class GuestBuildError(Exception):
    pass


def _run(argv, cwd=None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise GuestBuildError("%s is missing (scripts/install-system-deps)" % argv[0]) from None
    except subprocess.CalledProcessError as exc:
        raise GuestBuildError("%s failed: %s" % (" ".join(argv), exc.stderr.strip())) from None
    return done.stdout


# --- the kernel package ---------------------------------------------------------------------

def _download(package: str, cache: Path) -> Path:
    """The .deb of package in cache, fetched with apt-get download when not there yet
    (the version apt would install)."""
    version = _run(["apt-cache", "policy", package])
    candidate = [line.split(":", 1)[1].strip() for line in version.splitlines()
                 if line.strip().startswith("Candidate:")]
    if not candidate or candidate[0] == "(none)":
        raise GuestBuildError("Debian package %s is not known to apt (apt-get update)"
                              % package)
    epochless = candidate[0].split(":", 1)[-1]
    found = sorted(cache.glob("%s_%s_*.deb" % (package, epochless)))
    if found:
        return found[0]
    cache.mkdir(parents=True, exist_ok=True)
    os.chmod(cache, 0o755)   # apt's sandbox user writes there when it can
    _run(["apt-get", "download", "-q", "%s=%s" % (package, candidate[0])], cwd=cache)
    found = sorted(cache.glob("%s_%s_*.deb" % (package, epochless)))
    if not found:
        raise GuestBuildError("apt-get download %s left no .deb in %s" % (package, cache))
    return found[0]


def _kernel_deb(cache: Path) -> Path:
    """The versioned kernel package the meta package depends on."""
    meta = _download(KERNEL_PACKAGE, cache)
    depends = _run(["dpkg-deb", "-f", str(meta), "Depends"]).strip()
    name = depends.split(",")[0].split("(")[0].strip()
    if not name.startswith("linux-image-"):
        raise GuestBuildError("%s depends on %r, not a kernel" % (meta.name, depends))
    return _download(name, cache)


# --- modules --------------------------------------------------------------------------------

def _module_index(modules_root: Path) -> dict:
    """module name -> path of its .ko under modules_root (names with - and _ alike)."""
    index = {}
    for path in sorted(modules_root.rglob("*.ko")):
        index[path.name[:-3].replace("-", "_")] = path
    return index


def _module_closure(index: dict, wanted) -> list:
    """The wanted modules and everything they depend on, dependencies first."""
    order, seen = [], set()

    def visit(name):
        name = name.replace("-", "_")
        if name in seen:
            return
        seen.add(name)
        if name not in index:
            raise GuestBuildError("kernel module %s is not in the kernel package" % name)
        depends = _run(["modinfo", "-F", "depends", str(index[name])]).strip()
        for dep in filter(None, depends.split(",")):
            visit(dep)
        order.append(name)
    for name in wanted:
        visit(name)
    return order


# --- the archive ----------------------------------------------------------------------------

def _cpio(entries: dict) -> bytes:
    """A newc cpio archive of entries {path: (mode, data bytes | symlink target str | None
    for a directory)}, sorted, times zero, owner root."""
    out = io.BytesIO()
    ino = 0

    def header(name: str, mode: int, size: int, nlink: int) -> None:
        nonlocal ino
        ino += 1
        fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(name) + 1, 0]
        out.write(b"070701" + b"".join(b"%08X" % f for f in fields))
        out.write(name.encode() + b"\0")
        out.write(b"\0" * (-(110 + len(name) + 1) % 4))

    for name in sorted(entries):
        mode, data = entries[name]
        if data is None:
            header(name, 0o040000 | mode, 0, 2)
            continue
        body = data.encode() if isinstance(data, str) else data
        kind = 0o120000 if isinstance(data, str) else 0o100000
        header(name, kind | mode, len(body), 1)
        out.write(body)
        out.write(b"\0" * (-len(body) % 4))
    header("TRAILER!!!", 0, 0, 1)
    return out.getvalue()


def _add_file(entries: dict, name: str, source, mode: int | None = None) -> None:
    source = Path(source)
    parent = Path(name).parent
    while str(parent) not in (".", "/", ""):
        entries.setdefault(str(parent), (0o755, None))
        parent = parent.parent
    if mode is None:
        mode = 0o755 if os.access(source, os.X_OK) else 0o644
    entries[name] = (mode, source.read_bytes())


def _add_symlink(entries: dict, name: str, target: str) -> None:
    entries.setdefault(str(Path(name).parent), (0o755, None))
    entries[name] = (0o777, target)


def build(dest_dir, cache_dir=None) -> dict:
    """Build vmlinuz and initramfs.img into dest_dir (skipped when guest.json says they are
    built from the same inputs); returns the contents of guest.json."""
    dest = Path(dest_dir)
    cache = Path(cache_dir) if cache_dir else dest / "debs"
    deb = _kernel_deb(cache)
    binaries = [Path(b) for b in BINARIES]
    for binary in binaries:
        if not binary.is_file():
            raise GuestBuildError("%s is missing (Debian package %s)"
                                  % (binary, binary.name.replace("nft", "nftables")))
    libraries = sorted({lib for b in binaries for lib in shared_libraries(b)})
    sources = [SOURCE_DIR / "guest" / "init", Path(BUSYBOX), Path(__file__), *binaries,
               *(lib.resolve() for lib in libraries), *PACKAGE_FILES.values()]
    inputs = hashlib.sha256(deb.name.encode())
    for path in sources:
        inputs.update(path.read_bytes())
    key = inputs.hexdigest()
    manifest_path = dest / "guest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("inputs") == key and all(
                (dest / manifest[f]).is_file() for f in ("kernel", "initrd")):
            return manifest
    except (OSError, ValueError, KeyError):
        pass
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="guest-") as tmp:
        root = Path(tmp) / "kernel"
        _run(["dpkg-deb", "-x", str(deb), str(root)])
        kernels = sorted((root / "boot").glob("vmlinuz-*"))
        if not kernels:
            raise GuestBuildError("%s holds no kernel" % deb.name)
        release = kernels[0].name[len("vmlinuz-"):]
        modules_root = root / "lib" / "modules" / release
        index = _module_index(modules_root)
        order = _module_closure(index, MODULES)

        entries = {d: (0o755, None) for d in ("bin", "dev", "proc", "sys", "run", "tmp",
                                              "sbin", "usr", "usr/bin", "usr/sbin", "etc")}
        _add_file(entries, "init", SOURCE_DIR / "guest" / "init", 0o755)
        _add_file(entries, "bin/busybox", BUSYBOX, 0o755)
        _add_symlink(entries, "bin/sh", "busybox")
        for binary in binaries:
            _add_file(entries, str(binary).lstrip("/"), binary, 0o755)
        for library in libraries:
            _add_file(entries, str(library).lstrip("/"), library.resolve(), 0o755)
        for name, source in sorted(PACKAGE_FILES.items()):
            _add_file(entries, name, source, 0o644)
        depmod = []
        for name in order:
            relative = index[name].relative_to(modules_root).as_posix()
            _add_file(entries, "lib/modules/%s/%s" % (release, relative), index[name], 0o644)
            depends = _run(["modinfo", "-F", "depends", str(index[name])]).strip()
            deps = [index[d.replace("-", "_")].relative_to(modules_root).as_posix()
                    for d in filter(None, depends.split(","))]
            depmod.append("%s: %s" % (relative, " ".join(_transitive(deps, index,
                                                                      modules_root))))
        entries["lib/modules/%s/modules.dep" % release] = (
            0o644, ("\n".join(depmod) + "\n").encode())
        archive = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=archive, mtime=0,
                           compresslevel=9) as gz:
            gz.write(_cpio(entries))
        _write(dest / "initramfs.img", archive.getvalue())
        _write(dest / "vmlinuz", kernels[0].read_bytes())
    manifest = {"kernel": "vmlinuz", "initrd": "initramfs.img", "release": release,
                "kernel-package": deb.name, "modules": order, "inputs": key,
                "sha256": {f: hashlib.sha256((dest / f).read_bytes()).hexdigest()
                           for f in ("vmlinuz", "initramfs.img")}}
    _write(manifest_path, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    return manifest


def _transitive(deps: list, index: dict, modules_root: Path) -> list:
    """modules.dep lists every module a module needs, not only the direct ones, each
    before those it needs: busybox's modprobe loads them from the end of the line."""
    out, seen = [], set()
    by_path = {p.relative_to(modules_root).as_posix(): n for n, p in index.items()}

    def visit(path):
        if path in seen:
            return
        seen.add(path)
        depends = _run(["modinfo", "-F", "depends", str(modules_root / path)]).strip()
        for dep in filter(None, depends.split(",")):
            visit(index[dep.replace("-", "_")].relative_to(modules_root).as_posix())
        out.append(path)                # after its dependencies
    for path in deps:
        if path in by_path:
            visit(path)
    # as depmod writes it: a module before what it needs (loaded from the end of the line)
    return out[::-1]


def _write(path: Path, data: bytes) -> None:
    try:
        if path.read_bytes() == data:
            return
    except FileNotFoundError:
        pass
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# What a kvm template takes from its package's template.json; the rest (scripts,
# dependencies, a timeout) is the native driver's: the guest carries what it runs.
FROM_PACKAGE = ("functional-capability", "port-count", "parameters")


def templates(guest_dir) -> list:
    """The kvm templates of the shipped packages: each nsf/<name>/kvm.json (its id, what
    the guest runs as "guest-function", ports, memory, cpu) over the package's template,
    booting the guest in guest_dir (built by build())."""
    out = []
    for path in sorted(SOURCE_DIR.glob("*/kvm.json")):
        package = json.loads((path.parent / "template.json").read_text())
        template = {key: package[key] for key in FROM_PACKAGE if key in package}
        template.update(json.loads(path.read_text()))
        template.update({"execution-environment": "kvm",
                         "image-uri": str(Path(guest_dir).absolute())})
        out.append(template)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m nsf.guest <dest_dir>", file=sys.stderr)
        return 2
    try:
        manifest = build(args[0])
    except GuestBuildError as exc:
        print("guest build failed: %s" % exc, file=sys.stderr)
        return 1
    print("%s: kernel %s, initramfs %s (%s)" % (args[0], manifest["kernel"],
                                                 manifest["initrd"], manifest["release"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
