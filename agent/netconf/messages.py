"""NETCONF messages as XML: a parser that cannot be abused, and rpc-reply assembly.

Messages are parsed with lxml with entity resolution, DTD loading and network access
off; a message with a document type declaration is refused (RFC 6241 section 3 forbids
them) as soon as its root element starts, which also rules out entity expansion
(billion laughs) and external entities (XXE). libxml2's own limits (depth, text node
size) stay on (huge_tree off).

Replies are assembled as bytes: the <rpc-reply> start and end tags (carrying the rpc's
attributes, message-id first) around content that libyang printed (data) or lxml built.
"""

import uuid
from xml.sax.saxutils import quoteattr

from lxml import etree

BASE_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
NOTIFICATION_NS = "urn:ietf:params:xml:ns:netconf:notification:1.0"
MONITORING_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
NMDA_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
WITH_DEFAULTS_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"
DATASTORES_NS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
YANG_LIBRARY_NS = "urn:ietf:params:xml:ns:yang:ietf-yang-library"


class MalformedMessage(Exception):
    """Not a well-formed, DTD-free UTF-8 XML document."""


_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                collect_ids=False, remove_comments=True, remove_pis=True)
_PROLOG_SLICE = 4096


def parser() -> etree.XMLParser:
    return etree.XMLParser(dtd_validation=False, **_OPTIONS)


def parse(message: bytes, xml_parser: etree.XMLParser | None = None):
    """The root element of a message; raises MalformedMessage.

    The document type declaration, if any, sits before the root element: the message
    is fed to a pull parser until the root element starts, and refused there if it has
    one, before any entity in the content could be expanded."""
    if b"<!" not in message:
        # no document type declaration (nor comment or CDATA): parse in one go
        try:
            root = etree.fromstring(message, xml_parser or parser())
        except (etree.XMLSyntaxError, ValueError) as exc:
            raise MalformedMessage(str(exc)) from None
        info = root.getroottree().docinfo
        if info.encoding and info.encoding.upper() not in ("UTF-8", "UTF8"):
            raise MalformedMessage("messages must be UTF-8, not %s" % info.encoding)
        return root
    pull = etree.XMLPullParser(events=("start",), **_OPTIONS)
    try:
        position, started = 0, False
        while not started and position < len(message):
            pull.feed(message[position:position + _PROLOG_SLICE])
            position += _PROLOG_SLICE
            for _, element in pull.read_events():
                info = element.getroottree().docinfo
                if info.doctype or info.internalDTD is not None:
                    raise MalformedMessage("document type declarations are not allowed")
                if info.encoding and info.encoding.upper() not in ("UTF-8", "UTF8"):
                    raise MalformedMessage("messages must be UTF-8, not %s" % info.encoding)
                started = True
                break
        if position < len(message):
            pull.feed(message[position:])
        root = pull.close()
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise MalformedMessage(str(exc)) from None
    return root


def qname(element) -> tuple[str | None, str]:
    q = etree.QName(element)
    return q.namespace, q.localname


def elements(parent):
    """The element children (no comments or processing instructions)."""
    return [child for child in parent if isinstance(child.tag, str)]


_REPLY_START = b'<rpc-reply xmlns="%s"' % BASE_NS.encode()
_REPLY_END = b"</rpc-reply>"


def reply_envelope(rpc=None) -> tuple[bytes, bytes]:
    """The start and end tags of the <rpc-reply> to rpc (its attributes copied)."""
    if rpc is not None and len(rpc.attrib) == 1 and "message-id" in rpc.attrib:
        # the common case, without building an element
        return (_REPLY_START + b" message-id=" + quoteattr(rpc.get("message-id")).encode()
                + b">", _REPLY_END)
    reply = etree.Element("{%s}rpc-reply" % BASE_NS, nsmap={None: BASE_NS})
    if rpc is not None:
        for name, value in rpc.attrib.items():
            reply.set(name, value)
    marker = uuid.uuid4().hex
    reply.text = marker
    head, tail = etree.tostring(reply).split(marker.encode())
    return head, tail


def tostring(element) -> bytes:
    return etree.tostring(element)
