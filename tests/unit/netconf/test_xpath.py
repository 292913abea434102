"""XPath between XML prefixes and libyang's module-name prefixes."""

import pytest

from agent.datastore import xpath

MODULES = {"urn:a": "mod-a", "urn:b": "mod-b"}
PREFIXES = {"mod-a": ("a", "urn:a"), "mod-b": ("b", "urn:b"), "other": ("a", "urn:other")}


def to_libyang(expr, nsmap):
    return xpath.to_libyang(expr, nsmap, MODULES.get)


def test_name_tests_get_module_names():
    assert to_libyang("/x:top/x:item[x:name='n' and y:v > 2]/x:*", {"x": "urn:a", "y": "urn:b"}) \
        == "/mod-a:top/mod-a:item[mod-a:name='n' and mod-b:v > 2]/mod-a:*"


def test_functions_axes_and_operators_are_left_alone():
    expr = "count(/x:a/child::x:b) > 1 and not(x:c) or x:d mod 2 = 0 | //x:e/@x:f"
    assert to_libyang(expr, {"x": "urn:a"}) == \
        "count(/mod-a:a/child::mod-a:b) > 1 and not(mod-a:c) or mod-a:d mod 2 = 0 | " \
        "//mod-a:e/@mod-a:f"


def test_identity_literals():
    assert to_libyang("/x:t[x:kind='x:big']", {"x": "urn:a"}) == "/mod-a:t[mod-a:kind='mod-a:big']"
    assert to_libyang("/x:t[x:s='no:prefix']", {"x": "urn:a"}) == "/mod-a:t[mod-a:s='no:prefix']"


@pytest.mark.parametrize("expr", ["/q:a", "/x:a[", "/x:a['open]", "/x:a!b"])
def test_errors(expr):
    with pytest.raises(xpath.XPathSyntaxError):
        to_libyang(expr, {"x": "urn:nope"} if expr == "/x:a[" else {})


def test_libyang_paths_to_xml():
    path, nsmap = xpath.to_xml("/mod-a:top/item[name='x:y']/mod-b:aug/leaf[.='v']",
                               PREFIXES.get)
    assert path == "/a:top/a:item[a:name='x:y']/b:aug/b:leaf[.='v']"
    assert nsmap == {"a": "urn:a", "b": "urn:b"}
    path, nsmap = xpath.to_xml("/mod-a:x/other:y", PREFIXES.get)
    assert path == "/a:x/a2:y" and nsmap == {"a": "urn:a", "a2": "urn:other"}


def test_helpers():
    assert xpath.strip_prefixes("[p:k1='a'][p:k2=\"b\"]") == "[k1='a'][k2=\"b\"]"
    assert xpath.quote("it's") == '"it\'s"'
    assert xpath.quote("a'b\"c") == "concat('a', \"'\", 'b\"c')"


def test_unprefixed_top_level_names_get_their_module():
    from agent.datastore.xpath import qualify_top_level
    tops = {"netconf-state": ["ietf-netconf-monitoring"], "top": ["nc-test"],
            "twice": ["a", "b"]}

    def modules_of(name):
        return tops.get(name, [])
    assert qualify_top_level("/netconf-state/sessions", modules_of) == \
        "/ietf-netconf-monitoring:netconf-state/sessions"
    assert qualify_top_level("/top/item[name='a'] | /netconf-state", modules_of) == \
        "/nc-test:top/item[name='a'] | /ietf-netconf-monitoring:netconf-state"
    assert qualify_top_level("/top[/netconf-state/x = 1]", modules_of) == \
        "/nc-test:top[/ietf-netconf-monitoring:netconf-state/x = 1]"
    # prefixed, relative, descendant and wildcard steps are left as they are
    for expr in ("/nc-test:top", "top/name", "//sessions", "/*", "count(item)"):
        assert qualify_top_level(expr, modules_of) == expr
    with pytest.raises(xpath.XPathSyntaxError, match="no module has a top-level node nothing"):
        qualify_top_level("/nothing", modules_of)
    with pytest.raises(xpath.XPathSyntaxError, match="modules a, b"):
        qualify_top_level("/twice", modules_of)


def test_only_ascii_digits_make_numbers():
    assert [t.kind for t in xpath.tokens("x[. = 12]")] == \
        ["name", "operator", "operator", "operator", "number", "operator"]
    for odd in ("²", "١", "٣٤"):
        assert "number" not in [t.kind for t in xpath.tokens("x[. = %s]" % odd)]
