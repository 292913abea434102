"""Docker for the tests: the session's own dockerd and the images it needs, made on demand.

`make test` needs no dockerd running beforehand: the first test that needs Docker starts a
private one (drivers/compute/dockerd.py: `--iptables=false --bridge=none`, every file under
the session's temporary directory, so sessions side by side never share containers or
images), and the end of the session stops it. The images are built locally (nsf/images.py:
a busybox-static root file system plus nft and ip from the host; there is no registry),
each once per session; building them again gives the same archive and image ID.
COMPOSER_TEST_DOCKER_HOST uses an existing dockerd instead (its containers carry the
session's prefix in their names and labels).
"""

import os
import shutil
import threading
from pathlib import Path

from drivers.compute.dockerd import PrivateDockerd
from drivers.errors import DriverError
from nsf import images
from tests import resources
from tests.resources import PREFIX

_lock = threading.Lock()
_dockerd: PrivateDockerd | None = None
_host: str | None = None
_images: dict | None = None


def _root() -> Path:
    return resources.TMP_ROOT / ("%s-docker" % PREFIX)


def unavailable() -> str | None:
    """Why Docker cannot run here (tests are skipped), or None."""
    if os.environ.get("COMPOSER_TEST_DOCKER_HOST"):
        return None
    try:
        PrivateDockerd.check()
    except DriverError as exc:
        return str(exc)
    return None


def host() -> str:
    """The API address of the session's dockerd, started on first use."""
    global _dockerd, _host
    with _lock:
        if _host is None:
            existing = os.environ.get("COMPOSER_TEST_DOCKER_HOST")
            if existing:
                _host = existing
            else:
                _dockerd = PrivateDockerd(_root() / "dockerd")
                _dockerd.start()
                _host = _dockerd.host
        return _host


def built() -> dict:
    """{package name: its docker template} of the shipped packages' images (nsf/images.py)."""
    global _images
    with _lock:
        if _images is None:
            _images = images.build(_root() / "images")
        return _images


def leaks() -> list[str]:
    """The session's containers still on its dockerd (names start with PREFIX), if it ran."""
    if _host is None:
        return []
    import docker
    client = docker.APIClient(base_url=_host, version="auto")
    try:
        names = [c["Names"][0].lstrip("/") for c in client.containers(all=True)]
    finally:
        client.close()
    return ["container %s" % n for n in sorted(names) if n.startswith(PREFIX)]


def stop() -> None:
    """Stop the session's dockerd (its containers go with it) and remove its files."""
    global _dockerd, _host, _images
    with _lock:
        if _dockerd is not None:
            _dockerd.stop()
        _dockerd = _host = _images = None
        shutil.rmtree(_root(), ignore_errors=True)
