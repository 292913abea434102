"""NETCONF messages as XML: a parser that cannot be abused, and rpc-reply assembly.

RFC 6241 section 3 forbids document type declarations. libxml2 reads an external
parameter entity named in the internal subset even with entity resolution and DTD
loading off, so no byte of a DTD may ever reach it: the prolog (what comes before the
root element: the XML declaration, comments, processing instructions) is scanned
first, and any markup declaration there refuses the message with one and the same
message whatever it names. The parser is forced to UTF-8 (a declared or sniffed
UTF-16 or EBCDIC would hide a declaration from that scan), resolves nothing (entity
resolution, DTD loading and network off, and a resolver that refuses every URL), and
keeps libxml2's own limits (depth 256, text node size).

A message is also refused before it is parsed when it would build more elements than
Limits allows (memory amplification), and after when it nests too deep or an element
carries too many attributes. Leading whitespace and a UTF-8 byte order mark before the
XML declaration are skipped, as established servers do (scrapli-netconf sends
"\\n<?xml ...?>").

Replies are assembled as bytes: the <rpc-reply> start and end tags (carrying the rpc's
attributes as the client wrote them) around content that libyang printed (data) or
lxml built.
"""

import asyncio
import ctypes
import ctypes.util
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from lxml import etree

BASE_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
NOTIFICATION_NS = "urn:ietf:params:xml:ns:netconf:notification:1.0"
MONITORING_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
NMDA_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
WITH_DEFAULTS_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"
DATASTORES_NS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
YANG_LIBRARY_NS = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
XML_NS = "http://www.w3.org/XML/1998/namespace"

NO_DTD = "document type declarations are not allowed"


class MalformedMessage(Exception):
    """Not a well-formed, DTD-free UTF-8 XML document."""


class MessageTooBig(Exception):
    """A well-formed message beyond the configured limits (too-big)."""


@dataclass(frozen=True)
class Limits:
    """What one message may hold (libxml2 itself stops at a depth of 256), and how many
    distinct selections a filter in it may make."""
    max_elements: int = 500_000
    max_depth: int = 256
    max_attributes: int = 256          # per element
    max_selections: int = 10_000       # distinct selections of one filter


DEFAULT_LIMITS = Limits()


class _RefuseAll(etree.Resolver):
    """Never fetch anything: a URL reaching the resolver is an error."""

    def resolve(self, system_url, public_id, context):
        raise MalformedMessage(NO_DTD)


_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                collect_ids=False, remove_comments=True, remove_pis=True,
                dtd_validation=False, attribute_defaults=False, encoding="utf-8")
_SLICE = 64 * 1024
_SPACE = re.compile(rb"[ \t\r\n]*")      # XML's S production, skipped in the prolog
_BOM = b"\xef\xbb\xbf"


def parser(**options) -> etree.XMLParser:
    made = etree.XMLParser(**_OPTIONS, **options)
    made.resolvers.add(_RefuseAll())
    return made


def _skip_space(message: bytes, position: int) -> int:
    return _SPACE.match(message, position).end()


def start_of(message: bytes) -> int:
    """Where the document starts: after leading whitespace and UTF-8 byte order marks."""
    position = 0
    while True:
        position = _skip_space(message, position)
        if not message.startswith(_BOM, position):
            return position
        position += len(_BOM)


def check_prolog(message: bytes, position: int = 0) -> None:
    """Raise MalformedMessage if the prolog from position holds a markup declaration
    (<!DOCTYPE, or any <! that is not a comment). Linear in the prolog's length."""
    while True:
        position = _skip_space(message, position)
        if message.startswith(b"<?", position):
            end = message.find(b"?>", position + 2)
            if end < 0:
                return                        # not well-formed: the parser says so
            position = end + 2
        elif message.startswith(b"<!--", position):
            end = message.find(b"-->", position + 4)
            if end < 0:
                return
            position = end + 3
        elif message.startswith(b"<!", position):
            raise MalformedMessage(NO_DTD)
        else:
            return                            # the root element (or garbage)


def _most_elements(message: bytes) -> int:
    """An upper bound of the elements a message holds (every start or empty tag
    begins with '<' not followed by '/'), counted without parsing."""
    return message.count(b"<") - message.count(b"</")


def _count_streaming(message: bytes, limits: Limits, xml_parser_options: dict):
    """Parse while counting elements, stopping as soon as there are too many."""
    pull = etree.XMLPullParser(events=("start",), **_OPTIONS, **xml_parser_options)
    pull.resolvers.add(_RefuseAll())
    count = 0
    for position in range(0, len(message), _SLICE):
        pull.feed(message[position:position + _SLICE])
        for _ in pull.read_events():
            count += 1
        if count > limits.max_elements:
            raise MessageTooBig("more than %d elements" % limits.max_elements)
    return pull.close()


def _check_shape(root, message: bytes, limits: Limits) -> None:
    # both in libxml2's XPath engine (C), and only when the bytes allow a violation
    if limits.max_depth < 256 and root.xpath("boolean(/*%s)" % ("/*" * limits.max_depth)):
        raise MessageTooBig("elements nested deeper than %d" % limits.max_depth)
    if message.count(b"=") > limits.max_attributes and \
            root.xpath("boolean(//*[count(@*) > %d])" % limits.max_attributes):
        raise MessageTooBig("an element with more than %d attributes" % limits.max_attributes)


def parse(message: bytes, xml_parser: etree.XMLParser | None = None,
          limits: Limits = DEFAULT_LIMITS):
    """The root element of a message; raises MalformedMessage or MessageTooBig."""
    start = start_of(message)
    if start:
        message = message[start:]
    check_prolog(message)
    try:
        if _most_elements(message) > limits.max_elements:
            root = _count_streaming(message, limits, {})
        else:
            root = etree.fromstring(message, xml_parser or parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise MalformedMessage(str(exc)) from None
    except etree.LxmlError as exc:
        raise MalformedMessage(str(exc)) from None
    if root is None:
        raise MalformedMessage("no root element")
    _check_shape(root, message, limits)
    return root


# Messages from this size on are parsed in a worker thread: below it, the thread hop
# costs more than the parse (about 0.1 ms for a few kilobytes).
INLINE_PARSE = 16 * 1024
# Parsing (and the work on a large request alone) has its own threads: the datastores'
# worker threads are theirs.
_PARSING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="netconf-parse")


async def in_thread(function, *args):
    """function(*args) in one of the parsing threads."""
    return await asyncio.get_running_loop().run_in_executor(_PARSING, function, *args)


async def parse_in_thread(message: bytes, limits: Limits = DEFAULT_LIMITS):
    """parse() in a worker thread, with a parser of its own."""
    return await in_thread(parse, message, None, limits)


_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
# After a message of this size, freed memory is handed back to the system at once
RELEASE_AFTER = 1024 * 1024


def release_memory() -> None:
    """Give the heap's free pages back to the system (glibc keeps them otherwise, in
    each thread's arena: a 40 MB message left the agent 250 MB bigger)."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


def described(element) -> str:
    """An element's name for an error message: '"name" in namespace N' (or in none)."""
    namespace, name = qname(element)
    return ('"%s" in namespace %s' % (name, namespace) if namespace
            else '"%s" in no namespace' % name)


def qname(element) -> tuple[str | None, str]:
    q = etree.QName(element)
    return q.namespace, q.localname


def elements(parent):
    """The element children (no comments or processing instructions)."""
    return [child for child in parent if isinstance(child.tag, str)]


_REPLY_START = b'<rpc-reply xmlns="%s"' % BASE_NS.encode()
_REPLY_END = b"</rpc-reply>"


def _prefix_for(rpc, namespace: str) -> str:
    """The prefix the rpc element binds to namespace (attributes cannot use a default
    namespace, so one exists for every qualified attribute)."""
    if namespace == XML_NS:
        return "xml"
    for prefix, uri in rpc.nsmap.items():
        if uri == namespace and prefix:
            return prefix
    return "ns"


def reply_envelope(rpc=None) -> tuple[bytes, bytes]:
    """The start and end tags of the <rpc-reply> to rpc: its attributes copied as the
    client wrote them (a message-id qualified with a prefix stays qualified with it).
    Linear in the number of attributes."""
    if rpc is None or not len(rpc.attrib):
        return _REPLY_START + b">", _REPLY_END
    declared: dict[str, str] = {}
    parts = [_REPLY_START]
    # lxml's attrib.items() looks each value up by name (quadratic); XPath walks once
    for attribute in rpc.xpath("@*"):
        name, value = attribute.attrname, str(attribute)
        if name.startswith("{"):
            namespace, _, local = name[1:].partition("}")
            prefix = _prefix_for(rpc, namespace)
            if prefix != "xml" and prefix not in declared:
                declared[prefix] = namespace
                parts.append(b" xmlns:%s=%s" % (prefix.encode(), quoteattr(namespace).encode()))
            name = "%s:%s" % (prefix, local)
        parts.append(b" %s=%s" % (name.encode(), quoteattr(value).encode()))
    parts.append(b">")
    return b"".join(parts), _REPLY_END


def tostring(element) -> bytes:
    return etree.tostring(element)
