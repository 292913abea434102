"""The model refuses the graphs users get wrong, each with libyang's exact message and path."""

import pytest
from lxml import etree

from agent.model import ValidationError, create_context, parse_config

NS = "urn:composer-nc:yang:composer-sffg"
G = "/composer-sffg:service-graphs/service-graph[id='g1']"

BASE = """
<service-graphs xmlns="urn:composer-nc:yang:composer-sffg">
  <service-graph>
    <id>g1</id>
    <config><id>g1</id></config>
    <functions>
      <function>
        <id>fw</id>
        <config><id>fw</id><functional-capability>firewall</functional-capability></config>
        <ports>
          <port><id>in</id><config><id>in</id></config></port>
          <port><id>out</id><config><id>out</id></config></port>
        </ports>
      </function>
    </functions>
    <saps>
      <sap><id>lan</id><config><id>lan</id><interface><if-name>eth1</if-name></interface></config></sap>
      <sap><id>wan</id><config><id>wan</id><interface><if-name>eth2</if-name></interface></config></sap>
      <sap><id>v10</id><config><id>v10</id><vlan><if-name>eth1</if-name><vlan-id>10</vlan-id></vlan></config></sap>
    </saps>
    <flow-rules>
      <flow-rule>
        <id>r1</id>
        <config><id>r1</id><priority>10</priority></config>
        <match><config><in-sap>lan</in-sap></config></match>
        <actions>
          <action><index>0</index><config><index>0</index><output-function>fw</output-function><output-function-port>in</output-function-port></config></action>
        </actions>
      </flow-rule>
      <flow-rule>
        <id>r2</id>
        <config><id>r2</id><priority>10</priority></config>
        <match><config><in-function>fw</in-function><in-function-port>out</in-function-port></config></match>
        <actions>
          <action><index>0</index><config><index>0</index><output-sap>wan</output-sap></config></action>
        </actions>
      </flow-rule>
    </flow-rules>
  </service-graph>
</service-graphs>
"""


def _tree():
    return etree.fromstring(BASE.encode())


def _q(tree, path):
    """The single element at a path of local names below the graph, with [id] selectors."""
    nodes = tree.xpath(path, namespaces={"s": NS})
    assert len(nodes) == 1, path
    return nodes[0]


def _sub(parent, tag, text=None):
    el = etree.SubElement(parent, "{%s}%s" % (NS, tag))
    if text is not None:
        el.text = text
    return el


def _set(tree, path, text):
    _q(tree, path).text = text
    return tree


R1 = "//s:flow-rule[s:id='r1']"
R2 = "//s:flow-rule[s:id='r2']"


def output_to_missing_sap(t):
    _q(t, R2 + "//s:output-sap").text = "nosuch"


def in_port_of_missing_function_port(t):
    _q(t, R2 + "//s:in-function-port").text = "nosuch"


def output_to_own_in_port(t):
    _q(t, R2 + "//s:output-sap").getparent().getparent().getparent().getparent()
    rule = _q(t, R2)
    match = _q(rule, ".//s:match/s:config")
    for child in list(match):
        match.remove(child)
    _sub(match, "in-sap", "wan")


def output_to_own_function_in_port(t):
    config = _q(t, R2 + "//s:action/s:config")
    for child in list(config)[1:]:
        config.remove(child)
    _sub(config, "output-function", "fw")
    _sub(config, "output-function-port", "out")


def pop_vlan_without_vlan_match(t):
    action = _q(t, R1 + "//s:action")
    new = etree.fromstring(etree.tostring(action))
    new.find("{%s}index" % NS).text = "1"
    config = new.find("{%s}config" % NS)
    for child in list(config):
        config.remove(child)
    _sub(config, "index", "1")
    _sub(config, "pop-vlan")
    action.addnext(new)


def vlan_id_out_of_range(t):
    _q(t, "//s:sap[s:id='v10']//s:vlan-id").text = "4095"


def l4_port_without_ip_proto(t):
    match = _q(t, R1 + "//s:match/s:config")
    _sub(match, "ether-type", "ipv4")
    _sub(match, "l4-dst-port", "80")


def ipv4_match_without_ether_type(t):
    _sub(_q(t, R1 + "//s:match/s:config"), "ipv4-dst", "10.0.0.0/8")


def drop_with_an_output(t):
    action = _q(t, R1 + "//s:action")
    new = etree.fromstring(etree.tostring(action))
    new.find("{%s}index" % NS).text = "1"
    config = new.find("{%s}config" % NS)
    for child in list(config):
        config.remove(child)
    _sub(config, "index", "1")
    _sub(config, "drop")
    action.addnext(new)


def same_vlan_twice(t):
    sap = _q(t, "//s:sap[s:id='v10']")
    new = etree.fromstring(etree.tostring(sap).replace(b"v10", b"v10b"))
    sap.addnext(new)


def bad_mac_address(t):
    _sub(_q(t, R1 + "//s:match/s:config"), "eth-src", "00:11:22:33:44")


def function_without_capability(t):
    config = _q(t, "//s:function[s:id='fw']/s:config")
    config.remove(config.find("{%s}functional-capability" % NS))


def rule_without_actions(t):
    actions = _q(t, R2 + "/s:actions")
    actions.remove(actions[0])


CASES = [
    (output_to_missing_sap,
     'Invalid leafref value "nosuch" - no target instance "../../../../../../saps/sap/id" '
     'with the same value.',
     G + "/flow-rules/flow-rule[id='r2']/actions/action[index='0']/config/output-sap",
     "instance-required"),
    (in_port_of_missing_function_port,
     'Invalid leafref value "nosuch" - no target instance "../../../../../functions/function'
     '[id = current()/../in-function]/ports/port/id" with the same value.',
     G + "/flow-rules/flow-rule[id='r2']/match/config/in-function-port",
     "instance-required"),
    (output_to_own_in_port,
     "a flow rule cannot output to its own in-port",
     G + "/flow-rules/flow-rule[id='r2']/actions/action[index='0']/config/output-sap",
     "output-to-in-port"),
    (output_to_own_function_in_port,
     "a flow rule cannot output to its own in-port",
     G + "/flow-rules/flow-rule[id='r2']/actions/action[index='0']/config/output-function-port",
     "output-to-in-port"),
    (pop_vlan_without_vlan_match,
     "pop-vlan needs a match on vlan-id",
     G + "/flow-rules/flow-rule[id='r1']/actions/action[index='1']/config/pop-vlan",
     "pop-vlan-without-vlan-match"),
    (vlan_id_out_of_range,
     'Unsatisfied range - value "4095" is out of the allowed range.',
     G + "/saps/sap[id='v10']/config/vlan/vlan-id",
     None),
    (l4_port_without_ip_proto,
     "a transport port match needs ip-proto 6, 17 or 132",
     G + "/flow-rules/flow-rule[id='r1']/match/config/l4-dst-port",
     "l4-port-without-ip-proto"),
    (ipv4_match_without_ether_type,
     "an IPv4 address match needs ether-type ipv4",
     G + "/flow-rules/flow-rule[id='r1']/match/config/ipv4-dst",
     "ipv4-without-ether-type"),
    (drop_with_an_output,
     "drop must be the only action of its flow rule",
     G + "/flow-rules/flow-rule[id='r1']/actions/action[index='1']/config/drop",
     "drop-with-other-actions"),
    (same_vlan_twice,
     'Unique data leaf(s) "config/type/vlan/vlan/if-name config/type/vlan/vlan/vlan-id" not '
     "satisfied in \"%s/saps/sap[id='v10b']\" and \"%s/saps/sap[id='v10']\"." % (G, G),
     G + "/saps/sap[id='v10']",
     "data-not-unique"),
    (bad_mac_address,
     'Unsatisfied pattern - "00:11:22:33:44" does not conform to '
     '"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}".',
     G + "/flow-rules/flow-rule[id='r1']/match/config/eth-src",
     None),
    (function_without_capability,
     'Mandatory node "functional-capability" instance does not exist.',
     G + "/functions/function[id='fw']/config",
     None),
    (rule_without_actions,
     'Too few "action" instances.',
     G + "/flow-rules/flow-rule[id='r2']/actions",
     "too-few-elements"),
]


def test_the_base_graph_is_valid():
    assert parse_config(create_context(), BASE) is not None


@pytest.mark.parametrize("mutate, message, path, app_tag", CASES,
                         ids=[c[0].__name__ for c in CASES])
def test_broken_graph_is_refused_with_libyang_message_and_path(mutate, message, path, app_tag):
    tree = _tree()
    mutate(tree)
    with pytest.raises(ValidationError) as refused:
        parse_config(create_context(), etree.tostring(tree))
    first = refused.value.items[0]
    assert first.message == message
    assert (first.path or first.schema_path) is not None
    assert first.path == path, (first.path, first.schema_path)
    assert first.app_tag == app_tag
