"""The container images of the function packages (nsf/images.py): reproducible archives that
`docker load` reads, whose image ID the driver reads back, with the real tools in them."""

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from drivers.compute.docker import archive_image_id
from drivers.errors import DriverError
from nsf import images, packages

SHIPPED = ("firewall", "nat")


def _layer(path) -> tarfile.TarFile:
    outer = tarfile.open(path)
    manifest = json.loads(outer.extractfile("manifest.json").read())
    data = outer.extractfile(manifest[0]["Layers"][0]).read()
    return tarfile.open(fileobj=io.BytesIO(data))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return images.build(tmp_path_factory.mktemp("images"))


def test_build_is_reproducible_and_the_id_is_the_configs_digest(built, tmp_path):
    again = images.build(tmp_path)
    assert sorted(built) == list(SHIPPED)
    for name in SHIPPED:
        one, two = Path(built[name]["image-uri"]), Path(again[name]["image-uri"])
        assert one.name == "%s.docker.tar" % name
        assert one.read_bytes() == two.read_bytes(), name
        with tarfile.open(one) as tar:
            config = json.loads(tar.extractfile("manifest.json").read())[0]["Config"]
            digest = hashlib.sha256(tar.extractfile(config).read()).hexdigest()
        assert built[name]["image-id"] == "sha256:" + digest
        assert archive_image_id(str(one)) == built[name]["image-id"]


def test_templates_are_the_packages_in_docker(built):
    for name in SHIPPED:
        native = packages.load_template(packages.SOURCE_DIR / name)
        template = built[name]
        assert template["id"] == "docker-%s" % name
        assert template["execution-environment"] == "docker"
        assert template["functional-capability"] == native["functional-capability"]
        assert template["parameters"] == native["parameters"]
        # the binaries are in the image: only kernel features are needed of the node
        assert {d["kind"] for d in template["dependencies"]} == {"kernel-feature"}
        assert template["memory"] and template["cpu"]
        assert "scripts" not in template
    assert (built["firewall"]["min-ports"], built["firewall"]["max-ports"]) == (2, 4)


def test_the_image_runs_the_real_tools_under_dash(built):
    layer = _layer(built["firewall"]["image-uri"])
    members = {m.name: m for m in layer.getmembers()}
    # busybox's shell would run its own ip applet before /usr/sbin/ip
    assert members["bin/sh"].isfile()
    assert layer.extractfile("bin/sh").read() == Path("/bin/dash").resolve().read_bytes()
    assert members["usr/sbin/ip"].isfile() and members["usr/sbin/nft"].isfile()
    assert "bin/ip" not in members and "bin/nft" not in members
    assert members["bin/cat"].issym() and members["bin/cat"].linkname == "busybox"
    assert members["composer/init"].mode & 0o111
    assert members["composer/steps/create"].linkname == "../package/create.sh"
    assert all(m.mtime == 0 and m.uid == 0 for m in layer.getmembers())


def test_a_file_that_is_not_an_image_archive_is_refused(tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar")
    with pytest.raises(DriverError, match="not a docker image archive"):
        archive_image_id(str(bad))
