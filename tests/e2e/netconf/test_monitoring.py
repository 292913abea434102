"""ietf-netconf-monitoring (RFC 6022), get-schema for every module, the YANG library
(RFC 8525), and NMDA get-data / edit-data (RFC 8526)."""

import pytest
from lxml import etree
from ncclient.operations.rpc import RPCError

from .conftest import NS, connect

NCM = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
YL = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
NMDA = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
DS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
OR = "urn:ietf:params:xml:ns:yang:ietf-origin"
M = "{%s}" % NCM


def test_every_listed_schema_can_be_fetched(nc):
    state = nc.get(filter=("subtree", '<netconf-state xmlns="%s"><schemas/></netconf-state>'
                           % NCM)).data_ele
    schemas = {(s.findtext(M + "identifier"), s.findtext(M + "version"))
               for s in state.iter(M + "schema")}
    names = {name for name, _ in schemas}
    assert {"nc-test", "composer-sffg", "composer-domain", "ietf-netconf", "ietf-yang-library",
            "ietf-inet-types", "ietf-netconf-monitoring"} <= names
    for name, version in sorted(schemas):
        text = nc.get_schema(name, version=version or None).data
        assert text.lstrip().startswith(("module %s" % name, "submodule %s" % name)), name
    yin = nc.get_schema("nc-test", format="yin").data
    assert '<module name="nc-test"' in yin
    with pytest.raises(RPCError) as caught:
        nc.get_schema("no-such-module")
    assert caught.value.tag == "invalid-value"


def test_sessions_locks_and_statistics(server):
    with connect(server) as a, connect(server) as b:
        a.lock("candidate")
        state = b.get(filter=("subtree", '<netconf-state xmlns="%s"/>' % NCM)).data_ele \
            .find(M + "netconf-state")
        sessions = {s.findtext(M + "session-id"): s for s in state.iter(M + "session")}
        assert set(sessions) == {str(a.session_id), str(b.session_id)}
        assert sessions[str(a.session_id)].findtext(M + "username") == "admin"
        assert int(sessions[str(a.session_id)].findtext(M + "in-rpcs")) >= 1
        locks = {d.findtext(M + "name"): d.findtext("%slocks/%sglobal-lock/%slocked-by-session"
                                                     % (M, M, M))
                 for d in state.iter(M + "datastore")}
        assert locks == {"running": None, "candidate": str(a.session_id), "startup": None}
        assert int(state.findtext("%sstatistics/%sin-sessions" % (M, M))) >= 2
        caps = [c.text for c in state.iter(M + "capability")]
        assert "urn:ietf:params:netconf:capability:candidate:1.0" in caps


def test_yang_library(nc):
    data = nc.get(filter=("subtree", '<yang-library xmlns="%s"/>' % YL)).data_ele
    library = data.find("{%s}yang-library" % YL)
    modules = {m.findtext("{%s}name" % YL): m
               for m in library.iter("{%s}module" % YL)}
    assert "nc-test" in modules and "composer-sffg" in modules
    features = {f.text for f in modules["ietf-netconf"].iter("{%s}feature" % YL)}
    assert {"candidate", "confirmed-commit", "validate", "startup", "xpath",
            "writable-running", "rollback-on-error"} <= features
    assert library.find("{%s}location" % YL) is None
    stores = [d.findtext("{%s}name" % YL) for d in library.iter("{%s}datastore" % YL)]
    assert [s.split(":")[-1] for s in stores] == ["running", "candidate", "startup", "operational"]
    content_id = library.findtext("{%s}content-id" % YL)
    assert any(c.endswith("content-id=" + content_id) for c in nc.server_capabilities)


def get_data(m, datastore, extra=""):
    rpc = etree.fromstring('<get-data xmlns="%s" xmlns:ds="%s" xmlns:or="%s"><datastore>ds:%s'
                           '</datastore>%s</get-data>' % (NMDA, DS, OR, datastore, extra))
    return etree.fromstring(m.dispatch(rpc).xml.encode())


def test_get_data_and_edit_data(nc):
    edit = etree.fromstring('<edit-data xmlns="%s" xmlns:ds="%s"><datastore>ds:candidate'
                            '</datastore><config><top xmlns="%s"><name>nmda</name>'
                            '<item><name>a</name></item></top></config></edit-data>'
                            % (NMDA, DS, NS))
    nc.dispatch(edit)
    reply = get_data(nc, "candidate")
    data = reply.xpath("//nmda:data", namespaces={"nmda": NMDA})[0]
    assert data.findtext("{%s}top/{%s}name" % (NS, NS)) == "nmda"
    assert len(get_data(nc, "running").xpath("//t:top", namespaces={"t": NS})) == 0
    nc.commit()
    reply = get_data(nc, "operational", '<subtree-filter><top xmlns="%s"/></subtree-filter>'
                     '<with-origin/><with-defaults>report-all</with-defaults>' % NS)
    top = reply.xpath("//t:top", namespaces={"t": NS})[0]
    assert top.get("{%s}origin" % OR) == "or:intended"
    assert top.find("{%s}count" % NS).get("{%s}origin" % OR) == "or:default"
    reply = get_data(nc, "operational", '<xpath-filter xmlns:t="%s">/t:top/t:item</xpath-filter>'
                     '<config-filter>true</config-filter>' % NS)
    assert [e.text for e in reply.xpath("//t:item/t:name", namespaces={"t": NS})] == ["a"]
    reply = get_data(nc, "operational", "<max-depth>1</max-depth>")
    assert reply.xpath("//t:top", namespaces={"t": NS})
    assert not reply.xpath("//t:top/t:name", namespaces={"t": NS})
    with pytest.raises(RPCError) as caught:
        get_data(nc, "nowhere")
    assert caught.value.tag == "invalid-value"
