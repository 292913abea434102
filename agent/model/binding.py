"""Bridge between the pyangbind classes (bindings/) and libyang trees.

pyangbind's IETF JSON encoder writes a leafref list key as a string even when it refers to
a number, which libyang rightly refuses; its XML encoder has no such ambiguity, so the
bindings reach libyang as XML.
"""

from lxml import etree
from pyangbind.lib.serialise import pybindIETFXMLEncoder


def to_xml(binding) -> bytes:
    """The top-level nodes of a binding object as XML (several roots, no wrapper)."""
    document = pybindIETFXMLEncoder.encode(binding)
    # objectify elements iterate over same-tag siblings; iterchildren() gives the children
    return b"".join(etree.tostring(child) for child in document.iterchildren())
