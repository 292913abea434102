"""Build the container images of the service function packages, for the docker driver.

A package of nsf/ that has a docker.json is also a container image: a root file system
made from the node's own binaries (dash for /bin/sh, busybox-static for the other tools,
plus each binary docker.json names, e.g. nft and ip, with the shared libraries they load), the
package's scripts under /composer/package and the image's init (nsf/init.sh, see there:
it runs the package's lifecycle scripts with the native driver's environment). There is
no registry here: build() writes each image as an archive that `docker load` reads (the
format `docker save` writes: manifest.json, the image config, one layer tar), byte for byte
the same for the same sources and host binaries (sorted members, zero times, root owner,
a fixed creation date), so that the image ID (the digest of its config) identifies it.

build() also returns the image's template: the package's template.json overlaid with
docker.json ("execution-environment" docker, its own id, memory and cpu), the package's
parameters unchanged, the dependencies reduced to kernel features (the binaries are in
the image), and "image-uri" the archive.

    python -m nsf.images <dest_dir>      # builds every image, prints name, path, image ID
"""

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from drivers.compute import packages as scripts_of

from . import packages

SOURCE_DIR = packages.SOURCE_DIR
INIT = Path(__file__).resolve().parent / "init.sh"
BUSYBOX = "busybox"
EPOCH = "1970-01-01T00:00:00Z"
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# Applets busybox must not provide: the image ships the real tool (its options differ).
NOT_FROM_BUSYBOX = {"ip", "nft", "tc", "sh"}
# The shell of the scripts. Not busybox's: Debian builds it "standalone", so that its
# applets win over every binary in PATH (the package's `ip` would be busybox's).
SHELL = "dash"


class ImageError(Exception):
    """An image cannot be built here (a binary missing, a bad docker.json)."""


def names(source_dir=SOURCE_DIR) -> list[str]:
    """The packages of source_dir that are also images (they have a docker.json)."""
    return [name for name in packages.names(source_dir)
            if (Path(source_dir) / name / "docker.json").is_file()]


def _which(binary: str) -> Path:
    found = shutil.which(binary, path=os.environ.get("PATH", "") + ":" + PATH)
    if found is None:
        hint = " (install busybox-static)" if binary == BUSYBOX else ""
        raise ImageError("the image needs '%s', which is not installed%s" % (binary, hint))
    return Path(found)


def shared_libraries(binary: Path) -> list[Path]:
    """The shared libraries binary loads (ldd), the loader included; none if static."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    found = []
    for line in out.stdout.splitlines():
        line = line.strip()
        path = line.split("=>", 1)[1] if "=>" in line else line
        path = path.split("(")[0].strip()
        if path.startswith("/"):
            found.append(Path(path))
    return found


class _Layer:
    """A root file system, built in memory as one reproducible tar."""

    def __init__(self):
        self.entries: dict[str, tuple] = {}       # path in the image -> (kind, data, mode)

    def directory(self, path: str) -> None:
        parts = Path(path.strip("/")).parts
        for n in range(1, len(parts) + 1):
            self.entries.setdefault("/".join(parts[:n]), ("dir", None, 0o755))

    def file(self, path: str, data: bytes, mode: int) -> None:
        path = path.strip("/")
        if "/" in path:
            self.directory(str(Path(path).parent))
        self.entries[path] = ("file", data, mode)

    def symlink(self, path: str, target: str) -> None:
        path = path.strip("/")
        self.directory(str(Path(path).parent))
        self.entries.setdefault(path, ("symlink", target, 0o777))

    def copy(self, source: Path, path: str | None = None) -> None:
        """A host file at path (default: where it is on the host), its content followed."""
        mode = 0o755 if os.access(source, os.X_OK) else 0o644
        self.file(path or str(source), Path(source).read_bytes(), mode)

    def tar(self) -> bytes:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(self.entries):
                kind, data, mode = self.entries[path]
                info = tarfile.TarInfo(path)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                info.mode = mode
                if kind == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif kind == "symlink":
                    info.type, info.linkname = tarfile.SYMTYPE, data
                    tar.addfile(info)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return raw.getvalue()


def load_spec(package_dir: Path) -> tuple[dict, dict]:
    """(the package's template, its docker.json)."""
    template = packages.load_template(package_dir)
    try:
        spec = json.loads((package_dir / "docker.json").read_text())
    except ValueError as exc:
        raise ImageError("%s/docker.json: not valid JSON: %s" % (package_dir, exc)) from None
    if not isinstance(spec, dict) or not spec.get("id"):
        raise ImageError("%s/docker.json: no id" % package_dir)
    return template, spec


def root_filesystem(package_dir: Path, template: dict, spec: dict) -> _Layer:
    """The image's files: busybox and its applets, the binaries and their libraries, the
    package under /composer/package, its lifecycle scripts as /composer/steps/<step>."""
    layer = _Layer()
    for directory in ("proc", "sys", "dev", "tmp", "run", "etc", "composer/run"):
        layer.directory(directory)
    busybox = _which(BUSYBOX)
    layer.copy(busybox, "bin/busybox")
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        if applet not in NOT_FROM_BUSYBOX and applet != "busybox":
            layer.symlink("bin/" + applet, "busybox")
    shell = _which(SHELL)
    layer.copy(shell, "bin/sh")
    libraries = set(shared_libraries(shell))
    for binary in spec.get("binaries", ()):
        path = _which(binary)
        layer.copy(path, "usr/sbin/" + binary)
        libraries.update(shared_libraries(path))
    for library in sorted(libraries):
        layer.copy(library.resolve(), str(library))
    layer.file("etc/passwd", b"root:x:0:0:root:/:/bin/sh\n", 0o644)
    layer.file("etc/group", b"root:x:0:\n", 0o644)
    layer.copy(INIT, "composer/init")
    for path in sorted(package_dir.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.name != "docker.json":
            layer.copy(path, "composer/package/" + path.relative_to(package_dir).as_posix())
    for step, script in sorted(scripts_of.scripts(template, package_dir).items()):
        layer.symlink("composer/steps/" + step, "../package/" + script)
    return layer


def archive(layer_tar: bytes, tag: str, labels: dict) -> tuple[bytes, str]:
    """A `docker load` archive of one layer: (its bytes, the image ID)."""
    diff_id = hashlib.sha256(layer_tar).hexdigest()
    config = {
        "architecture": "amd64" if os.uname().machine == "x86_64" else os.uname().machine,
        "os": "linux",
        "created": EPOCH,
        "config": {"Env": ["PATH=" + PATH], "Entrypoint": ["/composer/init"],
                   "WorkingDir": "/composer/package", "Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id]},
        "history": [{"created": EPOCH, "created_by": "nsf.images"}],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    image_id = hashlib.sha256(config_bytes).hexdigest()
    manifest = [{"Config": "%s.json" % image_id, "RepoTags": [tag],
                 "Layers": ["%s/layer.tar" % diff_id]}]
    members = [
        ("%s.json" % image_id, config_bytes),
        ("%s/VERSION" % diff_id, b"1.0"),
        ("%s/layer.tar" % diff_id, layer_tar),
        ("manifest.json", json.dumps(manifest, sort_keys=True).encode()),
    ]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_dir_info(diff_id))
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.mode, info.size = 0, 0, 0, 0o644, len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue(), "sha256:" + image_id


def _dir_info(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
    return info


def image_template(template: dict, spec: dict, path: str, image_id: str) -> dict:
    """The docker template: the package's, overlaid with docker.json (see the docstring)."""
    out = {key: value for key, value in template.items() if key not in ("scripts", "id")}
    out["dependencies"] = [d for d in template.get("dependencies", ())
                           if d.get("kind") == "kernel-feature"]
    out.update({key: value for key, value in spec.items() if key != "binaries"})
    out["execution-environment"] = "docker"
    out["image-uri"] = path
    out["image-id"] = image_id
    return out


def write_if_changed(path: Path, data: bytes) -> None:
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except FileNotFoundError:
        pass
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def build(dest_dir, source_dir=SOURCE_DIR, only=None) -> dict[str, dict]:
    """Build the image of every package with a docker.json (or those in only) into
    dest_dir/<name>.docker.tar: {name: its template} (see the module's docstring)."""
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    built = {}
    for name in names(source_dir):
        if only is not None and name not in only:
            continue
        package_dir = Path(source_dir) / name
        template, spec = load_spec(package_dir)
        layer = root_filesystem(package_dir, template, spec).tar()
        data, image_id = archive(layer, "composer-nsf/%s:latest" % name,
                                 {"composer.package": name, "composer.template": spec["id"]})
        path = dest / ("%s.docker.tar" % name)
        write_if_changed(path, data)
        built[name] = image_template(template, spec, str(path), image_id)
    return built


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m nsf.images <dest_dir>", file=sys.stderr)
        return 2
    try:
        for name, template in build(args[0]).items():
            print("%s %s %s" % (name, template["image-uri"], template["image-id"]))
    except ImageError as exc:
        print("nsf.images: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
