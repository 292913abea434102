"""Build the native function packages and read their templates.

Each directory under nsf/ that holds a template.json is a package source: the template plus
the lifecycle scripts it names. build() packs each into <dest>/<name>.tgz, byte for byte the
same for the same sources (sorted members, zero times, root owner, normalised modes, gzip
without name or time), so that a package's digest identifies its content.

    python -m nsf.packages <dest_dir>      # builds every package, prints name and path
"""

import gzip
import io
import json
import os
import sys
import tarfile
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent


def names(source_dir: str | os.PathLike = SOURCE_DIR) -> list[str]:
    """The packages found in source_dir: its subdirectories that hold a template.json."""
    source = Path(source_dir)
    return sorted(d.name for d in source.iterdir() if (d / "template.json").is_file())


def _members(package_dir: Path):
    for path in sorted(package_dir.rglob("*")):
        if "__pycache__" in path.parts or path.name.endswith((".pyc", "~")):
            continue
        if path.is_symlink():
            raise ValueError("%s: packages hold no symlinks" % path)
        yield path


def _tarinfo(path: Path, arcname: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(arcname)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if path.is_dir():
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = path.stat().st_size
        info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
    return info


def pack(package_dir: str | os.PathLike, dest: str | os.PathLike) -> str:
    """Pack one package directory into the .tgz dest (reproducibly); return dest."""
    package_dir = Path(package_dir)
    dest = Path(dest)
    if not (package_dir / "template.json").is_file():
        raise ValueError("%s has no template.json" % package_dir)
    load_template_text((package_dir / "template.json").read_text(), str(package_dir))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _members(package_dir):
            info = _tarinfo(path, path.relative_to(package_dir).as_posix())
            if info.isdir():
                tar.addfile(info)
            else:
                with open(path, "rb") as f:
                    tar.addfile(info, f)
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    try:
        if dest.read_bytes() == packed.getvalue():
            return str(dest)        # built before: an agent's start writes nothing then
    except FileNotFoundError:
        pass
    tmp = dest.with_name(dest.name + ".tmp")
    try:
        tmp.write_bytes(packed.getvalue())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return str(dest)


def build(dest_dir: str | os.PathLike, source_dir: str | os.PathLike = SOURCE_DIR,
          only: list[str] | None = None) -> dict[str, str]:
    """Pack every package of source_dir (or those in only) into dest_dir: {name: path}."""
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    built = {}
    for name in names(source_dir):
        if only is not None and name not in only:
            continue
        built[name] = pack(Path(source_dir) / name, dest / ("%s.tgz" % name))
    if only is not None:
        unknown = sorted(set(only) - set(built))
        if unknown:
            raise ValueError("no package %s in %s" % (", ".join(unknown), source_dir))
    return built


def load_template_text(text: str, origin: str = "template.json") -> dict:
    try:
        template = json.loads(text)
    except ValueError as exc:
        raise ValueError("%s: not valid JSON: %s" % (origin, exc)) from None
    for key in ("id", "functional-capability", "execution-environment"):
        if not template.get(key):
            raise ValueError("%s: no %s" % (origin, key))
    return template


def decompositions(source_dir: str | os.PathLike = SOURCE_DIR) -> list[dict]:
    """The decomposition templates shipped in <source_dir>/decompositions/*.json: templates
    whose "decomposition" is a graph of other functions (libyang JSON, as composer-templates
    holds it), with no package of their own."""
    out = []
    for path in sorted((Path(source_dir) / "decompositions").glob("*.json")):
        try:
            template = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError("%s: not valid JSON: %s" % (path, exc)) from None
        for key in ("id", "functional-capability", "decomposition"):
            if not template.get(key):
                raise ValueError("%s: no %s" % (path, key))
        out.append(template)
    return out


def load_template(path: str | os.PathLike) -> dict:
    """The template.json of a package (.tgz), or of a package source directory."""
    path = Path(path)
    if path.is_dir():
        return load_template_text((path / "template.json").read_text(), str(path))
    with tarfile.open(path, "r:*") as tar:
        for name in ("template.json", "./template.json"):
            try:
                member = tar.getmember(name)
            except KeyError:
                continue
            data = tar.extractfile(member)
            if data is None:
                break
            return load_template_text(data.read().decode(), "%s:template.json" % path)
    raise ValueError("%s has no template.json" % path)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m nsf.packages <dest_dir>", file=sys.stderr)
        return 2
    for name, path in build(args[0]).items():
        print("%s %s" % (name, path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
