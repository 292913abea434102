"""The modules the server announces and serves (agent/netconf/modules.py), without a
server: conformance, submodules, and the texts <get-schema> returns."""

from pathlib import Path

import pytest
from lxml import etree

from agent.model import create_context
from agent.netconf.capabilities import server_capabilities
from agent.netconf.errors import RpcError
from agent.netconf.modules import Schemas

TEST_YANG = Path(__file__).resolve().parents[2] / "yang"


@pytest.fixture(scope="module")
def schemas():
    return Schemas(create_context(extra_dirs=[TEST_YANG], extra_modules=["nc-parts"]))


def test_libyang_own_modules_are_not_announced(schemas):
    by_name = {m.name: m for m in schemas.modules}
    for name in ("yang", "ietf-yang-structure-ext"):
        assert name not in by_name
    # libyang's too, but imported by a served module (ietf-network-instance)
    assert not by_name["ietf-yang-schema-mount"].implemented
    assert by_name["ietf-yang-library"].implemented
    assert by_name["ietf-datastores"].implemented
    assert not by_name["ietf-inet-types"].implemented          # imported only
    assert not by_name["ietf-yang-metadata"].implemented
    caps = server_capabilities(schemas.modules)
    assert not [c for c in caps if "module=yang&" in c or "schema-mount" in c]
    assert "ietf-subscribed-notifications" in by_name["ietf-subscribed-notifications"].name
    assert by_name["ietf-subscribed-notifications"].features == (
        "encode-xml", "replay", "subtree", "xpath")          # not configured, qos, dscp...
    assert by_name["ietf-subscribed-notifications"].deviations == (
        "composer-push-deviations",)
    assert by_name["ietf-yang-push"].features == ("on-change",)


def test_a_submodule_belongs_to_its_module_and_is_served(schemas):
    parts = next(m for m in schemas.modules if m.name == "nc-parts")
    assert [(s.name, s.revision) for s in parts.submodules] == [("nc-parts-items",
                                                                  "2026-12-01")]
    assert schemas.get("nc-parts-items", "2026-12-01", "yang") == \
        (TEST_YANG / "nc-parts-items.yang").read_text()
    yin = etree.fromstring(schemas.get("nc-parts", None, "yin").encode())
    include = yin.find("{urn:ietf:params:xml:ns:yang:yin:1}include")
    assert include.get("module") == "nc-parts-items"
    with pytest.raises(RpcError) as caught:
        schemas.get("nc-parts-items", "1999-01-01", None)
    assert caught.value.tag == "invalid-value"
    with pytest.raises(RpcError) as caught:
        schemas.get("nc-parts", None, "xsd")
    assert caught.value.tag == "invalid-value"


def test_modules_libyang_holds_in_memory_are_printed(schemas):
    # ietf-yang-library is one of libyang's own: no file, printed by libyang
    text = schemas.get("ietf-yang-library", "2019-01-04", "yang")
    assert text.startswith("module ietf-yang-library {")
