"""No "internal error" is reachable from input: every operation, its parameters mangled
at random (odd values and digits, elements removed, added or moved to another namespace,
stray attributes), gets a reply whose errors are the client's."""

import random

import pytest
from lxml import etree

from .test_session import BASE, hello, messages, run_session
from ..datastore.conftest import NS, ctx  # noqa: F401 - the fixture

NMDA = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
MON = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
WD = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"
DS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
TOP = "<top xmlns='%s'><name>x</name><count>3</count></top>" % NS
BODIES = [
    "<get><filter type='subtree'><top xmlns='%s'><name>x</name></top></filter></get>" % NS,
    "<get><filter type='xpath' select='/top/name'/></get>",
    "<get-config><source><running/></source><with-defaults xmlns='%s'>report-all"
    "</with-defaults></get-config>" % WD,
    "<edit-config><target><candidate/></target><default-operation>merge</default-operation>"
    "<test-option>set</test-option><error-option>stop-on-error</error-option>"
    "<config>%s</config></edit-config>" % TOP,
    "<copy-config><target><candidate/></target><source><config>%s</config></source>"
    "</copy-config>" % TOP,
    "<delete-config><target><startup/></target></delete-config>",
    "<lock><target><candidate/></target></lock>",
    "<unlock><target><candidate/></target></unlock>",
    "<kill-session><session-id>5</session-id></kill-session>",
    "<commit><confirmed/><confirm-timeout>10</confirm-timeout><persist>p</persist></commit>",
    "<cancel-commit><persist-id>p</persist-id></cancel-commit>",
    "<discard-changes/>",
    "<validate><source><candidate/></source></validate>",
    "<get-schema xmlns='%s'><identifier>nc-test</identifier><version>2026-11-24</version>"
    "<format>yang</format></get-schema>" % MON,
    "<get-data xmlns='%s' xmlns:ds='%s'><datastore>ds:operational</datastore>"
    "<xpath-filter>/top</xpath-filter><config-filter>true</config-filter>"
    "<max-depth>2</max-depth><with-defaults>report-all</with-defaults></get-data>" % (NMDA, DS),
    "<edit-data xmlns='%s' xmlns:ds='%s'><datastore>ds:candidate</datastore>"
    "<default-operation>merge</default-operation><config>%s</config></edit-data>"
    % (NMDA, DS, TOP),
]
ODD = ["", " ", "\u00b2", "\u0661", "-1", "0", "99999999999999999999", "x:y", "a'b\"c",
       "\u00a0", "\U0001F600", "ds:nope", "/", "//", "[", "unbounded", "true", "running"]
ATTRIBUTES = ["type", "select", "{%s}operation" % BASE, "{urn:ietf:params:xml:ns:yang:1}key",
              "{urn:ietf:params:xml:ns:yang:1}insert"]


def mangle(body: str, rnd: random.Random) -> str:
    root = etree.fromstring("<w xmlns='%s'>%s</w>" % (BASE, body))
    for _ in range(rnd.randint(1, 3)):
        element = rnd.choice(list(root.iter())[1:])
        local = etree.QName(element).localname
        choice = rnd.random()
        if choice < 0.4:
            element.text = rnd.choice(ODD)
        elif choice < 0.55 and element.getparent() is not root:
            element.getparent().remove(element)
        elif choice < 0.7:
            element.append(etree.Element(rnd.choice(["{%s}x" % BASE, "y", element.tag])))
        elif choice < 0.8:
            element.set(rnd.choice(ATTRIBUTES), rnd.choice(ODD + ["xpath", "delete", "first"]))
        else:
            element.tag = rnd.choice(["{%s}%s" % (BASE, local), local, "{urn:q}%s" % local])
    return "".join(etree.tostring(child).decode() for child in root)


def every_odd_value(body: str) -> list[str]:
    """body with the text of one of its elements replaced by one odd value, every way."""
    out = []
    count = len(list(etree.fromstring("<w xmlns='%s'>%s</w>" % (BASE, body)).iter())) - 1
    for index in range(count):
        for value in ODD:
            root = etree.fromstring("<w xmlns='%s'>%s</w>" % (BASE, body))
            list(root.iter())[index + 1].text = value
            out.append("".join(etree.tostring(child).decode() for child in root))
    return out


@pytest.mark.parametrize("body", BODIES, ids=lambda b: b[1:b.index(" ") if " " in b[:20]
                                                           else b.index(">")])
def test_no_internal_error_from_odd_values(ctx, tmp_path, body):  # noqa: F811
    answer(ctx, tmp_path, every_odd_value(body))


@pytest.mark.parametrize("seed", range(8))
def test_no_internal_error_from_mangled_requests(ctx, tmp_path, seed):  # noqa: F811
    rnd = random.Random(seed)
    answer(ctx, tmp_path, [mangle(rnd.choice(BODIES), rnd) for _ in range(25)])


def answer(ctx, tmp_path, bodies):  # noqa: F811
    incoming = hello()
    for i, body in enumerate(bodies):
        message = ('<rpc xmlns="%s" message-id="%d">%s</rpc>' % (BASE, i, body)).encode()
        incoming += b"\n#%d\n%s\n##\n" % (len(message), message)
    _, _, out, _ = run_session(ctx, incoming, tmp_path)
    _, replies = messages(out, chunked=True)
    assert len(replies) == len(bodies)
    for reply in replies:
        message = reply.findtext("{%s}rpc-error/{%s}error-message" % (BASE, BASE)) or ""
        assert "internal error" not in message, (message, bodies[int(reply.get("message-id"))])
