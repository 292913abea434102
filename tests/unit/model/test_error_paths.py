"""Every error-path names the node at fault, in a datastore of several graphs: libyang
reports a missing mandatory node, choice or list entry by schema path only, and the data
path given to it must be that of the instance that lacks it, not the first instance of
its parent (which belongs to whichever graph comes first)."""

import pytest

from agent.model import ValidationError, create_context, parse_config
from agent.tools.graphxml import firewall_chain

CTX = create_context()
SFFG = "urn:composer-nc:yang:composer-sffg"
G1 = "/composer-sffg:service-graphs/service-graph[id='g1']"


def _document(g1_xml: str) -> str:
    """The valid graph chain first, then g1 (its text given), then another valid one."""
    return '<service-graphs xmlns="%s">%s%s%s</service-graphs>' % (
        SFFG, firewall_chain("chain").xml(), g1_xml, firewall_chain("z").xml())


def _sap(sid: str, body: str) -> str:
    return "<sap><id>%s</id><config><id>%s</id>%s</config></sap>" % (sid, sid, body)


def _g1(saps="", functions="", rules="") -> str:
    """g1: valid SAPs lan and wan first, then what the case adds."""
    return ("<service-graph><id>g1</id><config><id>g1</id></config>"
            "<functions>%s</functions><saps>%s%s%s</saps><flow-rules>%s</flow-rules>"
            "</service-graph>" % (
                functions, _sap("lan", "<interface><if-name>eth1</if-name></interface>"),
                _sap("wan", "<interface><if-name>eth2</if-name></interface>"), saps, rules))


FUNCTION_OK = ("<function><id>f0</id><config><id>f0</id><functional-capability>firewall"
               "</functional-capability></config></function>")
RULE_HEAD = "<flow-rule><id>r</id><config><id>r</id><priority>1</priority></config>"
IN_LAN = "<match><config><in-sap>lan</in-sap></config></match>"
TO_WAN = ("<actions><action><index>0</index><config><index>0</index>"
          "<output-sap>wan</output-sap></config></action></actions>")

CASES = [
    ("sap without a type", _g1(saps=_sap("s", "")),
     'Mandatory choice "type" data do not exist.', G1 + "/saps/sap[id='s']/config"),
    ("host-stack without addressing",
     _g1(saps=_sap("h", "<host-stack><mac-address>00:11:22:33:44:55</mac-address>"
                        "</host-stack>")),
     'Mandatory choice "addressing" data do not exist.',
     G1 + "/saps/sap[id='h']/config/host-stack"),
    ("vlan without its id", _g1(saps=_sap("v", "<vlan><if-name>eth1</if-name></vlan>")),
     'Mandatory node "vlan-id" instance does not exist.', G1 + "/saps/sap[id='v']/config/vlan"),
    ("gre without its key",
     _g1(saps=_sap("t", "<gre><local-ip>10.0.0.1</local-ip><remote-ip>10.0.0.2</remote-ip>"
                        "</gre>")),
     'Mandatory node "key" instance does not exist.', G1 + "/saps/sap[id='t']/config/gre"),
    ("function without capability",
     _g1(functions=FUNCTION_OK + "<function><id>f1</id><config><id>f1</id></config>"
                                 "</function>"),
     'Mandatory node "functional-capability" instance does not exist.',
     G1 + "/functions/function[id='f1']/config"),
    ("rule without actions", _g1(rules=RULE_HEAD + IN_LAN + "<actions/></flow-rule>"),
     'Too few "action" instances.', G1 + "/flow-rules/flow-rule[id='r']/actions"),
    ("match without an in-port", _g1(rules=RULE_HEAD + "<match><config><eth-src>"
                                     "00:11:22:33:44:55</eth-src></config></match>" + TO_WAN
                                     + "</flow-rule>"),
     'Mandatory choice "in-port" data do not exist.',
     G1 + "/flow-rules/flow-rule[id='r']/match/config"),
    ("action without an action", _g1(rules=RULE_HEAD + IN_LAN + "<actions><action><index>0"
                                     "</index><config><index>0</index></config></action>"
                                     "</actions></flow-rule>"),
     'Mandatory choice "action" data do not exist.',
     G1 + "/flow-rules/flow-rule[id='r']/actions/action[index='0']/config"),
]


@pytest.mark.parametrize("g1, message, path", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_the_error_path_is_the_instance_at_fault(g1, message, path):
    with pytest.raises(ValidationError) as refused:
        parse_config(CTX, _document(g1))
    first = refused.value.items[0]
    assert (first.message, first.path) == (message, path)


def test_the_documents_are_valid_without_the_fault():
    parse_config(CTX, _document(_g1(functions=FUNCTION_OK, rules=RULE_HEAD + IN_LAN + TO_WAN
                                    + "</flow-rule>")))
