"""The image store: the files functions run from (native packages, docker image archives,
VM kernels, initramfs and disks), each under its SHA-256, and their download from HTTP(S)
repositories.

Where a template's image comes from (its image-uri):
  - an absolute path or a file:// URL: used where it is (checked against image-sha256 when
    the template gives one, once per version of the file);
  - an http:// or https:// URL: downloaded into <state>/images/<sha256>/<name>;
  - a bare name ("firewall-1.2.tgz") with an image-sha256, or in a repository's
    template: from the image store when it is there, else downloaded from the repository
    that served the template, or from each of repository.urls in turn (<url>/<name>);
  - anything else (a bare name without a digest: a program, a docker image name) is the
    driver's to read as it is.
A downloaded image needs the template's image-sha256. It is written to a temporary file
beside the store while its digest is computed, and renamed into place only when the
download is complete and the digest matches: a mismatch, a server that stops sending or
closes early, a timeout, leave nothing in the store and raise ImageError saying which.
An image in the store is never downloaded again. Progress (bytes received of the size the
server announced) is kept in a Download, which the function's operational state shows,
and logged about once a second.
"""

import hashlib
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from drivers.errors import DriverError

from ..files import sync_directory

LOG = logging.getLogger(__name__)

CHUNK = 256 * 1024
LOG_EVERY = 1.0          # seconds between two progress lines in the log


class ImageError(DriverError):
    """An image cannot be had: not found, not downloaded, or not what its digest says."""


class ImageMismatch(ImageError):
    """What was downloaded is not what the template's digest says."""


@dataclass
class Download:
    """One image being fetched, for people: the function's state and the log."""
    uri: str
    sha256: str = ""
    status: str = "downloading"      # downloading, stored, failed
    received: int = 0
    total: int | None = None
    error: str = ""
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None

    def state(self) -> dict:
        out = {"uri": self.uri, "status": self.status, "bytes-received": str(self.received)}
        if self.sha256:
            out["sha256"] = self.sha256
        if self.total is not None:
            out["bytes-total"] = str(self.total)
        if self.error:
            out["error"] = self.error
        return out


def is_remote(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https")


def is_name(uri: str) -> bool:
    """A bare image name (looked up in the store and the repositories)."""
    return bool(uri) and not uri.startswith("/") and "://" not in uri


def downloaded(template: dict) -> bool:
    """Whether the template's image comes from the image store or a repository: an
    http(s) URL, or a bare name given with a digest or by a repository's template. Any
    other image-uri is the driver's to read as it is (a path, a program or image name)."""
    uri = template.get("image-uri") or ""
    if is_remote(uri):
        return True
    return is_name(uri) and bool(template.get("image-sha256") or template.get("repository"))


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ImageStore:
    def __init__(self, root, urls=(), timeout: float = 30.0):
        self.root = Path(root)
        self.urls = [u.rstrip("/") + "/" for u in urls]
        self.timeout = float(timeout)
        self.downloads: dict = {}        # sha256 -> the Download under way or last made
        self._locks: dict = {}
        self._guard = threading.Lock()
        self._verified: dict = {}        # local path -> (size, mtime_ns, sha256) checked

    def remove_incomplete(self) -> int:
        """Remove the downloads a previous run left half-done (killed mid-download); how
        many. At start, before any download."""
        removed = 0
        for stale in (self.root / ".incoming").glob("*.part"):
            try:
                stale.unlink()
                removed += 1
            except OSError:
                pass
        if removed:
            LOG.info("image store: removed %d incomplete downloads", removed)
        return removed

    # --- where an image is ---

    @staticmethod
    def _name(uri: str) -> str:
        name = Path(urlparse(uri).path).name if is_remote(uri) else Path(uri).name
        return name or "image"

    def path(self, template: dict) -> str:
        """The image as the driver gets it: a path on the node (maybe not there yet)."""
        uri = template.get("image-uri") or ""
        sha = template.get("image-sha256")
        if downloaded(template) and sha:
            return str(self.root / sha / self._name(uri))
        if uri.startswith("file://"):
            return urlparse(uri).path
        return uri

    def stored(self, template: dict) -> bool:
        uri = template.get("image-uri") or ""
        return bool(uri) and os.path.isfile(self.path(template))

    def sources(self, template: dict) -> list:
        uri = template.get("image-uri") or ""
        if is_remote(uri):
            return [uri]
        if not is_name(uri):
            return []
        bases = ([template["repository"]] if template.get("repository") else []) + \
            [u for u in self.urls if u != template.get("repository")]
        return [base + uri for base in bases]

    def problems(self, template: dict) -> list:
        """Why the template's image cannot be had ([]: it is stored, local, or can be
        downloaded)."""
        uri = template.get("image-uri") or ""
        if not downloaded(template):
            return []
        if not template.get("image-sha256"):
            return ["its image %s is downloaded, so its template needs an image-sha256" % uri]
        if self.stored(template):
            return []
        if not self.sources(template):
            return ["its image %s is not in the image store, and no repository is "
                    "configured (repository.urls)" % uri]
        return []

    def wanted(self, template: dict) -> bool:
        """Whether fetch(template) would download (a prefetch is worth it)."""
        uri = template.get("image-uri") or ""
        return downloaded(template) and bool(template.get("image-sha256")) \
            and not self.stored(template)

    # --- getting it ---

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def fetch(self, template: dict, progress=None) -> str:
        """The image of template on the node: downloaded into the store when it is not
        there, verified. progress(Download) is called as the download goes (and once
        with the Download when it starts). ImageError when it cannot be had."""
        uri = template.get("image-uri") or ""
        sha = template.get("image-sha256") or ""
        path = self.path(template)
        if not downloaded(template):
            if sha and path and os.path.isfile(path):
                self._verify_local(path, sha)
            return path
        problems = self.problems(template)
        if problems:
            raise ImageError(problems[0], resource=template.get("id"))
        with self._lock(sha):
            if os.path.isfile(path):
                return path
            errors, kind = [], ImageError
            for url in self.sources(template):
                try:
                    self._download(url, sha, Path(path), progress)
                    return path
                except ImageError as exc:
                    errors.append(str(exc))
                    if isinstance(exc, ImageMismatch):
                        kind = ImageMismatch
                        break           # the template's digest and the image disagree
            raise kind("; ".join(errors), resource=template.get("id"))

    def _verify_local(self, path: str, sha: str) -> None:
        st = os.stat(path)
        known = self._verified.get(path)
        if known is not None and known[:2] == (st.st_size, st.st_mtime_ns) and known[2] == sha:
            return
        actual = sha256_of(path)
        if actual != sha:
            raise ImageError("the image %s has sha256 %s, not %s as its template says"
                             % (path, actual, sha))
        self._verified[path] = (st.st_size, st.st_mtime_ns, sha)

    def _download(self, url: str, sha: str, dest: Path, progress) -> None:
        record = Download(url, sha)
        self.downloads[sha] = record
        incoming = self.root / ".incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        tmp = incoming / ("%s.%d.part" % (sha, threading.get_ident()))
        LOG.info("image %s: downloading from %s", dest.name, url)
        if progress:
            progress(record)
        try:
            digest = hashlib.sha256()
            last_log = time.monotonic()
            try:
                request = urllib.request.Request(url, headers={"User-Agent": "composer-agent"})
                with urllib.request.urlopen(request, timeout=self.timeout) as response, \
                        open(tmp, "wb") as out:
                    length = response.headers.get("Content-Length")
                    record.total = int(length) if length and length.isdigit() else None
                    while True:
                        block = response.read1(CHUNK)   # what has come: progress as it comes
                        if not block:
                            break
                        out.write(block)
                        digest.update(block)
                        record.received += len(block)
                        if progress:
                            progress(record)
                        if time.monotonic() - last_log >= LOG_EVERY:
                            last_log = time.monotonic()
                            LOG.info("image %s: %s", dest.name, _progress(record))
                    out.flush()
                    os.fsync(out.fileno())
            except urllib.error.HTTPError as exc:
                raise ImageError("cannot download %s: the server answered %d %s"
                                 % (url, exc.code, exc.reason)) from None
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise ImageError("the download of %s failed after %d%s bytes: %s; nothing "
                                 "was stored" % (url, record.received, _of(record), reason)) \
                    from None
            if record.total is not None and record.received != record.total:
                raise ImageError("the download of %s was cut off after %d of %d bytes; "
                                 "nothing was stored" % (url, record.received, record.total))
            actual = digest.hexdigest()
            if actual != sha:
                raise ImageMismatch("the image downloaded from %s has sha256 %s, not %s as "
                                    "its template says; it was not stored"
                                    % (url, actual, sha))
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
            sync_directory(dest.parent)
        except ImageError as exc:
            record.status, record.error, record.ended = "failed", str(exc), time.monotonic()
            LOG.error("image %s: %s", dest.name, exc)
            if progress:
                progress(record)
            raise
        finally:
            tmp.unlink(missing_ok=True)
        record.status, record.ended = "stored", time.monotonic()
        LOG.info("image %s: stored (%d bytes in %.1f s, sha256 verified)", dest.name,
                 record.received, record.ended - record.started)
        if progress:
            progress(record)


def _of(record: Download) -> str:
    return " of %d" % record.total if record.total is not None else ""


def _progress(record: Download) -> str:
    if record.total:
        return "%.1f of %.1f MiB (%d%%)" % (record.received / 2**20, record.total / 2**20,
                                           100 * record.received // record.total)
    return "%.1f MiB" % (record.received / 2**20)
