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


PARTS = "urn:composer-nc:test:nc-parts"


def schema_list(m) -> dict:
    """netconf-state/schemas: (identifier, version) -> {format: namespace}."""
    state = m.get(filter=("subtree", '<netconf-state xmlns="%s"><schemas/></netconf-state>'
                          % NCM)).data_ele
    out = {}
    for s in state.iter(M + "schema"):
        key = (s.findtext(M + "identifier"), s.findtext(M + "version"))
        out.setdefault(key, {})[s.findtext(M + "format").rpartition(":")[2]] = \
            s.findtext(M + "namespace")
    return out


def library(m):
    """<data> with yang-library and modules-state."""
    data = m.get(filter=("subtree", '<yang-library xmlns="%s"/>' % YL)).data_ele
    data.append(m.get(filter=("subtree", '<modules-state xmlns="%s"/>' % YL)).data_ele[0])
    return data


def test_a_submodule_is_listed_and_served_like_a_module(nc):
    """RFC 6022 lists submodules with the namespace of their module; get-schema serves
    them by name, by name and revision, as YANG and YIN; the YANG library lists them
    under their module."""
    listed = schema_list(nc)
    assert listed[("nc-parts-items", "2026-12-01")] == {"yang": PARTS, "yin": PARTS}
    assert listed[("nc-parts", "2026-12-01")] == {"yang": PARTS, "yin": PARTS}
    text = nc.get_schema("nc-parts-items").data
    assert text.startswith("submodule nc-parts-items {")
    assert nc.get_schema("nc-parts-items", version="2026-12-01").data == text
    yin = etree.fromstring(nc.get_schema("nc-parts-items", version="2026-12-01",
                                         format="yin").data.encode())
    assert yin.tag == "{urn:ietf:params:xml:ns:yang:yin:1}submodule"
    assert yin.get("name") == "nc-parts-items"
    with pytest.raises(RPCError) as caught:
        nc.get_schema("nc-parts-items", version="2020-01-01")
    assert caught.value.tag == "invalid-value"
    assert "nc-parts-items@2020-01-01" in caught.value.message

    data = library(nc)
    for container in ("yang-library/{%s}module-set" % YL, "modules-state"):
        parts = [m for m in data.find("{%s}%s" % (YL, container)).iter("{%s}module" % YL)
                 if m.findtext("{%s}name" % YL) == "nc-parts"]
        assert len(parts) == 1, container
        subs = [(s.findtext("{%s}name" % YL), s.findtext("{%s}revision" % YL))
                for s in parts[0].iter("{%s}submodule" % YL)]
        assert subs == [("nc-parts-items", "2026-12-01")], container


# What the server implements: its protocol modules, the YANG library and the datastore
# identities, the composer modules, and the test modules it was asked to load; what
# these import and nothing else is import-only.
IMPLEMENTED = {"ietf-netconf", "ietf-netconf-with-defaults", "ietf-netconf-monitoring",
               "ietf-netconf-nmda", "ietf-origin", "ietf-yang-library", "ietf-datastores",
               "ietf-netconf-acm",
               "composer-types", "composer-sffg", "composer-domain", "composer-templates",
               "composer-alarms",
               "nc-test", "nc-parts", "notifications", "nc-notifications",
               "ietf-netconf-notifications", "ietf-subscribed-notifications", "ietf-yang-push",
               "composer-push-deviations",
               # libyang implements what ietf-subscribed-notifications refers to (their
               # lists refuse configuration: composer-push-deviations)
               "ietf-interfaces", "ietf-ip", "ietf-network-instance"}
IMPORT_ONLY = {"ietf-inet-types", "ietf-yang-types", "ietf-yang-metadata", "ietf-ethertypes",
               "ietf-yang-patch", "ietf-restconf",
               # libyang loads it for itself, and ietf-network-instance imports it
               "ietf-yang-schema-mount"}


def test_hello_library_and_schemas_announce_what_is_implemented(nc):
    """Not libyang's own `yang` module, nor ietf-yang-structure-ext, which libyang loads
    for itself (ietf-yang-schema-mount, also libyang's, is imported by
    ietf-network-instance: import-only): the same module set in the
    hello, the YANG library, modules-state and netconf-state/schemas."""
    data = library(nc)
    module_set = data.find("{%s}yang-library/{%s}module-set" % (YL, YL))
    implemented = {m.findtext("{%s}name" % YL) for m in module_set.iter("{%s}module" % YL)}
    import_only = {m.findtext("{%s}name" % YL)
                   for m in module_set.iter("{%s}import-only-module" % YL)}
    assert implemented == IMPLEMENTED
    assert import_only == IMPORT_ONLY
    state = {m.findtext("{%s}name" % YL): m.findtext("{%s}conformance-type" % YL)
             for m in data.find("{%s}modules-state" % YL).iter("{%s}module" % YL)}
    assert state == {**{n: "implement" for n in IMPLEMENTED},
                     **{n: "import" for n in IMPORT_ONLY}}
    assert {name for name, _ in schema_list(nc)} == IMPLEMENTED | IMPORT_ONLY | {"nc-parts-items"}

    # the hello: a module capability for each implemented YANG 1.0 module, and no other
    in_hello = {c.partition("module=")[2].partition("&")[0] for c in nc.server_capabilities
                if "?module=" in c}
    assert in_hello == {"ietf-netconf", "ietf-netconf-with-defaults",
                        "ietf-netconf-monitoring", "notifications", "nc-notifications",
                        "ietf-netconf-notifications", "ietf-netconf-acm"}
    for name in ("yang", "ietf-yang-structure-ext"):
        with pytest.raises(RPCError) as caught:
            nc.get_schema(name)
        assert caught.value.tag == "invalid-value"


def test_every_announced_module_is_served_in_both_formats(nc):
    for (name, version), formats in sorted(schema_list(nc).items()):
        assert set(formats) == {"yang", "yin"}, name
        text = nc.get_schema(name, version=version or None).data
        assert text.startswith(("module %s {" % name, "submodule %s {" % name)), name
        yin = etree.fromstring(nc.get_schema(name, version=version or None,
                                             format="yin").data.encode())
        assert yin.get("name") == name


def test_get_data_takes_several_origin_filters(nc):
    """origin-filter is a leaf-list (RFC 8526): it may be given more than once."""
    nc.edit_config(target="candidate", config='<config xmlns="urn:ietf:params:xml:ns:netconf:'
                   'base:1.0"><top xmlns="%s"><name>o</name></top></config>' % NS)
    nc.commit()
    reply = get_data(nc, "operational", '<subtree-filter><top xmlns="%s"/></subtree-filter>'
                     '<origin-filter>or:intended</origin-filter>'
                     '<origin-filter>or:default</origin-filter>' % NS)
    assert reply.xpath("//t:top/t:name", namespaces={"t": NS})[0].text == "o"
