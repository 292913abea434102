"""A template and its image from an HTTP repository (repository.urls, a local http.server),
through NETCONF: the template is chosen (cheaper than the built-in one), its image
downloaded once in the fetch phase, verified and kept in the image store, the download's
progress in the function's state and the log; an image whose digest does not match is
refused, the commit fails naming it and nothing is kept."""

import hashlib
import json
import tempfile
import threading
from pathlib import Path

import pytest
from lxml import etree
from ncclient.operations.rpc import RPCError

from agent.tools.graphxml import config, delete_graph, firewall_chain
from nsf import packages
from tests.e2e.node import Node, resources_diff
from tests.httpserver import FileServer

BASE = "urn:ietf:params:xml:ns:netconf:base:1.0"
B = "{%s}" % BASE
SFFG = "urn:composer-nc:yang:composer-sffg"
S = "{%s}" % SFFG


@pytest.fixture(scope="module")
def served():
    """The repository: the firewall package as fw.tgz, two templates using it (one with a
    wrong digest)."""
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(packages.build(tmp, only=["firewall"])["firewall"]).read_bytes()
    sha = hashlib.sha256(image).hexdigest()
    base = json.loads((Path(packages.__file__).parent / "firewall" / "template.json")
                      .read_text())
    slow = image + bytes(60000)         # gzip skips the zeros after its stream
    index = {"templates": [
        dict(base, id="remote-firewall", cost=0, **{"image-uri": "fw.tgz", "image-sha256": sha}),
        dict(base, id="slow-firewall", cost=1, **{"image-uri": "slow.tgz",
                                                   "image-sha256": hashlib.sha256(slow)
                                                   .hexdigest()}),
        dict(base, id="corrupt-firewall", **{"functional-capability": "corrupt-firewall",
                                             "image-uri": "fw.tgz", "image-sha256": "0" * 64})]}
    with FileServer({"/index.json": json.dumps(index).encode(), "/fw.tgz": image,
                     "/slow.tgz": slow}) as server:
        server.pace["/slow.tgz"] = (4096, 0.1)
        server.sha, server.size = sha, len(image)
        yield server


@pytest.fixture(scope="module")
def node(session_tmp, served):
    with Node("rp", session_tmp, {"eth1": "10.44.0.1/24", "eth2": "10.44.0.2/24"},
              prefix_suffix="r", extra_config='[repository]\nurls = ["%s"]\nrefresh-seconds = 0\n' % served.url) as n:
        yield n


def _function_state(m, function="fw"):
    reply = m.get(filter=("subtree", '<service-graphs xmlns="%s"><service-graph><id>g1</id>'
                                     '<functions><function><id>%s</id><state/></function>'
                                     '</functions></service-graph></service-graphs>'
                          % (SFFG, function)))
    return etree.fromstring(reply.xml.encode()).find(".//%sfunction/%sstate" % (S, S))


def _images(node) -> list:
    root = node.dir / "state" / "images"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and p.name != "index.json")


def test_a_remote_template_and_its_image_are_fetched_once(node, served):
    empty = node.node_resources()
    h1, h2 = node.hosts["eth1"], node.hosts["eth2"]
    with node.netconf() as m:
        m.edit_config(target="candidate", config=config(firewall_chain("g1")))
        m.commit()
        state = _function_state(m)
        assert state.findtext(S + "implementation") == "remote-firewall"
        rejected = {r.findtext(S + "template"): r.findtext(S + "reason")
                    for r in state.iterfind("%sresolution/%srejected" % (S, S))}
        assert rejected["native-firewall"].startswith("usable, but costs 14.30, more than 0.00")
        image = state.find(S + "image")
        assert image.findtext(S + "status") == "stored"
        assert image.findtext(S + "sha256") == served.sha
        assert image.findtext(S + "uri") == served.url + "fw.tgz"
        assert int(image.findtext(S + "bytes-received")) == served.size
        assert int(image.findtext(S + "bytes-total")) == served.size
        assert h1.ping(h2.ip)
        assert _images(node) == [served.sha + "/fw.tgz"]
        assert "image fw.tgz: stored (%d bytes" % served.size in node.log_tail(400)
        m.edit_config(target="candidate", config=delete_graph("g1"))
        m.commit()
        m.edit_config(target="candidate", config=config(firewall_chain("g1")))
        m.commit()
        assert h1.ping(h2.ip)
        assert served.gets["/fw.tgz"] == 1                  # downloaded once
        m.edit_config(target="candidate", config=delete_graph("g1"))
        m.commit()
    actual = node.resources_once_settled(empty)
    assert actual == empty, resources_diff(empty, actual)


def test_an_image_with_the_wrong_digest_is_refused_and_not_kept(node, served):
    empty = node.node_resources()
    stored = _images(node)
    g = firewall_chain("g1", capability="corrupt-firewall")
    with node.netconf() as m:
        m.edit_config(target="candidate", config=config(g))
        with pytest.raises(RPCError) as refused:
            m.commit()
        m.discard_changes()
    error = refused.value.xml
    assert error.findtext(B + "error-tag") == "operation-failed"
    message = error.findtext(B + "error-message")
    assert ("the image downloaded from %sfw.tgz has sha256 %s, not %s as its template says; "
            "it was not stored" % (served.url, served.sha, "0" * 64)) in message, message
    assert _images(node) == stored
    assert not list((node.dir / "state" / "images" / ".incoming").iterdir())
    actual = node.resources_once_settled(empty)
    assert actual == empty, resources_diff(empty, actual)


def test_a_template_published_later_is_found_by_the_commit_that_asks_for_it(node, served):
    empty = node.node_resources()
    index = json.loads(served.files["/index.json"])
    late = dict(index["templates"][0], id="late-firewall",
                **{"functional-capability": "late-firewall"})
    g = firewall_chain("g1", capability="late-firewall")
    with node.netconf() as m:
        m.edit_config(target="candidate", config=config(g))
        with pytest.raises(RPCError) as refused:
            m.commit()
        assert "no template provides the functional capability 'late-firewall'" in \
            refused.value.xml.findtext(B + "error-message")
        served.files["/index.json"] = json.dumps(
            {"templates": index["templates"] + [late]}).encode()
        try:
            m.commit()
            assert _function_state(m).findtext(S + "implementation") == "late-firewall"
            assert node.hosts["eth1"].ping(node.hosts["eth2"].ip)
            m.edit_config(target="candidate", config=delete_graph("g1"))
            m.commit()
        finally:
            served.files["/index.json"] = json.dumps(index).encode()
    actual = node.resources_once_settled(empty)
    assert actual == empty, resources_diff(empty, actual)


def _while_committing(node, sample) -> list:
    """What sample() returns (when not None), again and again while another session
    commits the candidate. (A download's first report comes before the server has said
    its size: bytes-total is absent then.)"""
    done = threading.Event()

    def commit():
        try:
            with node.netconf() as other:
                other.commit()
        finally:
            done.set()
    worker = threading.Thread(target=commit)
    seen = []
    worker.start()
    try:
        while not done.is_set():
            found = sample()
            if found is not None:
                seen.append(found)
    finally:
        worker.join(60)
    return seen


def test_the_progress_of_a_download_is_in_the_function_s_state(node, served):
    """A running function moved to a template whose image comes slowly: while the commit
    downloads it, the function's state shows the bytes coming."""
    empty = node.node_resources()
    g = firewall_chain("g1", template="native-firewall")
    with node.netconf() as m:
        m.edit_config(target="candidate", config=config(g))
        m.commit()
        m.edit_config(target="candidate", config=config(g).replace(
            "<template>native-firewall</template>", "<template>slow-firewall</template>"))

        def sample():
            image = _function_state(m).find(S + "image")
            if image is not None and image.findtext(S + "status") == "downloading":
                return (int(image.findtext(S + "bytes-received")),
                        int(image.findtext(S + "bytes-total") or 0))
        seen = _while_committing(node, sample)
        assert any(0 < got < total for got, total in seen), seen
        state = _function_state(m)
        assert state.findtext(S + "implementation") == "slow-firewall"
        assert state.find(S + "image").findtext(S + "status") == "stored"
        assert node.hosts["eth1"].ping(node.hosts["eth2"].ip)
        m.edit_config(target="candidate", config=delete_graph("g1"))
        m.commit()
    actual = node.resources_once_settled(empty)
    assert actual == empty, resources_diff(empty, actual)


def test_a_new_graph_shows_its_downloads_before_it_is_deployed(node, served):
    """A graph whose function's image is being downloaded before its commit begins is
    pending in <get>, its function's image coming."""
    empty = node.node_resources()
    images = node.dir / "state" / "images"
    for stored in images.glob("*/slow.tgz"):        # downloaded by the test before
        stored.unlink()
    with node.netconf() as m:
        m.edit_config(target="candidate",
                      config=config(firewall_chain("g1", template="slow-firewall")))

        def sample():
            reply = m.get(filter=("subtree", '<service-graphs xmlns="%s"/>' % SFFG))
            graph = etree.fromstring(reply.xml.encode()).find(".//%sservice-graph" % S)
            image = graph.find(".//%sfunction/%sstate/%simage" % (S, S, S)) \
                if graph is not None else None
            if image is not None and image.findtext(S + "status") == "downloading":
                return (graph.findtext("%sstate/%sstatus" % (S, S)),
                        int(image.findtext(S + "bytes-received")),
                        int(image.findtext(S + "bytes-total") or 0))
        seen = _while_committing(node, sample)
        assert any(status.endswith(":pending") and 0 < got < total
                   for status, got, total in seen), seen
        assert _function_state(m).findtext(S + "implementation") == "slow-firewall"
        m.edit_config(target="candidate", config=delete_graph("g1"))
        m.commit()
    actual = node.resources_once_settled(empty)
    assert actual == empty, resources_diff(empty, actual)
