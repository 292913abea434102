"""The image store and the remote repository against a local HTTP server: templates read
from its index, an image downloaded once and kept under its digest, a wrong digest or a
cut-off download refused with nothing kept, progress reported as the bytes come."""

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from agent.compute.images import ImageError, ImageMismatch, ImageStore
from agent.compute.repository import Repository
from tests.httpserver import FileServer as _Server

IMAGE = bytes(range(256)) * 4096            # 1 MiB
SHA = hashlib.sha256(IMAGE).hexdigest()


def _template(tid="remote-fw", image="fw.tgz", sha=SHA):
    return {"id": tid, "functional-capability": "firewall", "execution-environment": "native",
            "port-count": 2, "memory": 4, "cpu": 0.1, "image-uri": image,
            "image-sha256": sha}


def _stored(root: Path) -> list:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_an_image_is_downloaded_once_verified_and_kept_under_its_digest(tmp_path):
    with _Server({"/fw.tgz": IMAGE}) as server:
        store = ImageStore(tmp_path / "images", [server.url])
        template = dict(_template(), repository=server.url)
        assert store.wanted(template) and store.problems(template) == []
        seen = []
        path = store.fetch(template, lambda d: seen.append((d.status, d.received, d.total)))
        assert Path(path).read_bytes() == IMAGE
        assert path == str(tmp_path / "images" / SHA / "fw.tgz")
        assert seen[0] == ("downloading", 0, None)
        assert seen[-1] == ("stored", len(IMAGE), len(IMAGE))
        assert any(status == "downloading" and 0 < got < len(IMAGE)
                   for status, got, _ in seen)           # progress as the bytes come
        assert store.fetch(template) == path                 # once: no second GET
        assert server.gets == {"/fw.tgz": 1}
        assert not store.wanted(template)
        assert _stored(tmp_path / "images") == [SHA + "/fw.tgz"]


def test_a_wrong_digest_is_refused_and_nothing_is_kept(tmp_path):
    wrong = "0" * 64
    with _Server({"/fw.tgz": IMAGE}) as server:
        store = ImageStore(tmp_path / "images", [server.url])
        template = _template(sha=wrong)
        seen = []
        with pytest.raises(ImageMismatch) as refused:
            store.fetch(template, seen.append)
        assert str(refused.value) == "remote-fw: " + (
            "the image downloaded from %sfw.tgz has sha256 %s, not %s as its template says; "
            "it was not stored" % (server.url, SHA, wrong))
        assert seen[-1].status == "failed" and "remote-fw: " + seen[-1].error == \
            str(refused.value)
        assert _stored(tmp_path / "images") == []
        assert not Path(store.path(template)).exists()


def test_a_cut_off_download_is_refused_and_nothing_is_kept(tmp_path):
    with _Server({"/fw.tgz": (len(IMAGE) + 10, IMAGE)}) as server:
        store = ImageStore(tmp_path / "images", [server.url], timeout=2)
        with pytest.raises(ImageError) as refused:
            store.fetch(_template())
        assert "nothing was stored" in str(refused.value)
        assert _stored(tmp_path / "images") == []


def test_a_downloaded_image_needs_a_digest_and_a_source(tmp_path):
    store = ImageStore(tmp_path / "images", [])
    assert store.problems(dict(_template(sha=None), repository="http://r/")) == [
        "its image fw.tgz is downloaded, so its template needs an image-sha256"]
    assert store.problems(_template()) == [
        "its image fw.tgz is not in the image store, and no repository is configured "
        "(repository.urls)"]


def test_templates_come_from_the_repository_index(tmp_path):
    index = json.dumps({"templates": [dict(_template(), cost=0)]}).encode()
    with _Server({"/index.json": index, "/fw.tgz": IMAGE}) as server:
        repository = Repository(tmp_path / "nsf", tmp_path / "images", [server.url])
        assert repository.refresh(force=True)
        template = repository.get("remote-fw")
        assert template["source"] == template["repository"] == server.url
        assert repository.image_path(template) == str(tmp_path / "images" / SHA / "fw.tgz")
        # kept on disk: a restart without the repository still knows the template
        server.httpd.shutdown()
    again = Repository(tmp_path / "nsf", tmp_path / "images", [server.url])
    again._load_cached_index()
    assert again.get("remote-fw")["image-sha256"] == SHA


def test_a_local_image_is_checked_against_its_digest(tmp_path):
    image = tmp_path / "fw.tgz"
    image.write_bytes(IMAGE)
    store = ImageStore(tmp_path / "images")
    assert store.fetch({"id": "t", "image-uri": str(image), "image-sha256": SHA}) == str(image)
    image.write_bytes(IMAGE + b"changed")
    with pytest.raises(ImageError) as refused:
        store.fetch({"id": "t", "image-uri": str(image), "image-sha256": SHA})
    assert "not %s as its template says" % SHA in str(refused.value)
    assert _stored(tmp_path / "images") == []


def test_an_image_named_by_its_url_needs_no_repository(tmp_path):
    with _Server({"/images/fw.tgz": IMAGE}) as server:
        store = ImageStore(tmp_path / "images")          # no repository.urls
        template = _template(image=server.url + "images/fw.tgz")
        assert store.problems(template) == []
        assert store.fetch(template) == str(tmp_path / "images" / SHA / "fw.tgz")
        assert server.gets == {"/images/fw.tgz": 1}


def test_a_download_killed_half_way_is_removed_at_start(tmp_path):
    incoming = tmp_path / "images" / ".incoming"
    incoming.mkdir(parents=True)
    (incoming / ("%s.1234.part" % SHA)).write_bytes(IMAGE[:1000])
    repository = Repository(tmp_path / "nsf", tmp_path / "images")
    repository.load_builtin()
    assert not list(incoming.iterdir())


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for 127.0.0.1: (certificate, key)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_an_https_repository_is_verified_against_the_trusted_certificates(
        tmp_path, certificate, monkeypatch):
    with _Server({"/fw.tgz": IMAGE}, tls=certificate) as server:
        assert server.url.startswith("https://")
        store = ImageStore(tmp_path / "images", [server.url])
        # not trusted: refused, nothing kept
        with pytest.raises(ImageError) as refused:
            store.fetch(_template())
        assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
        assert _stored(tmp_path / "images") == []
        # trusted (the system's store, here through SSL_CERT_FILE): downloaded
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
        assert Path(store.fetch(_template())).read_bytes() == IMAGE


def test_a_bare_name_without_a_digest_is_the_driver_s():
    """dpdk-forwarder's image-uri "dpdk-testpmd" is a program, not an image to download."""
    from agent.compute.repository import DPDK_FORWARDER
    store = ImageStore("/nonexistent/images")
    assert store.problems(DPDK_FORWARDER) == []
    assert store.path(DPDK_FORWARDER) == "dpdk-testpmd"
    assert not store.wanted(DPDK_FORWARDER)
    # in a repository's template, a bare name is downloaded (and needs a digest)
    assert store.problems(dict(DPDK_FORWARDER, repository="http://r/")) == [
        "its image dpdk-testpmd is downloaded, so its template needs an image-sha256"]
