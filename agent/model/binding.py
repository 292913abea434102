"""Bridge between the pyangbind classes (bindings/) and libyang trees.

pyangbind's IETF JSON encoder writes a leafref list key as a string even when it refers to
a number, which libyang rightly refuses, so the bindings reach libyang as XML. Its XML
encoder in turn cannot name the module of an identityref leaf-list (it looks for the
identity table on the list instead of on its items, and leaves the items unprefixed); our
namespace function and serialiser look at the items.
"""

from lxml import etree
from pyangbind.lib.serialise import (SerialisedTypedList, XmlYangDataSerialiser,
                                     make_generate_ietf_tree, pybindIETFXMLEncoder)


def _identity_namespaces(element) -> list:
    values = list(element) if element._yang_type == "identityref" and hasattr(element, "_list") \
        else [element]
    out = []
    for value in values:
        table = getattr(value, "_enumeration_dict", None) or getattr(element, "_enumeration_dict", {})
        entry = table.get(value) if table else None
        if entry and (entry["@module"], entry["@namespace"]) not in out:
            out.append((entry["@module"], entry["@namespace"]))
    return out


def _yname_ns(parent_namespace, element, yname):
    ns_map = [(None, element._namespace)]
    if element._yang_type == "identityref" and element._changed():
        ns_map += _identity_namespaces(element)
    return yname, tuple(ns_map)


_generate_tree = make_generate_ietf_tree(_yname_ns)


class _Serialiser(XmlYangDataSerialiser):
    def yangt_typed_list(self, obj):
        items = []
        for item in obj:
            entry = (getattr(item, "_enumeration_dict", None) or {}).get(item)
            if entry and entry["@module"] != getattr(obj, "_defining_module", None):
                items.append("%s:%s" % (entry["@module"], item))
            else:
                items.append(self.default(item))
        return SerialisedTypedList(items)


def to_xml(binding) -> bytes:
    """The top-level nodes of a binding object as XML (several roots, no wrapper)."""
    tree = _generate_tree(binding, flt=True)
    preprocessed = _Serialiser().preprocess_element(tree)
    document = pybindIETFXMLEncoder.generate_xml_tree(binding._yang_name,
                                                      binding._yang_namespace, preprocessed)
    # objectify elements iterate over same-tag siblings; iterchildren() gives the children
    return b"".join(etree.tostring(child) for child in document.iterchildren())
