"""Over NETCONF, the error-path of a commit refused for a missing mandatory choice names the
node at fault in the new graph, not the first such node of the datastore (which belongs to
a graph committed before)."""

import pytest
from ncclient.operations.rpc import RPCError

from agent.tools.graphxml import config, firewall_chain

from .conftest import BASE

B = "{%s}" % BASE
SFFG = "urn:composer-nc:yang:composer-sffg"


@pytest.mark.parametrize("sap, path", [
    ("<sap><id>s</id><config><id>s</id></config></sap>",
     "/sffg:service-graphs/sffg:service-graph[sffg:id='g1']/sffg:saps/sffg:sap[sffg:id='s']"
     "/sffg:config"),
    ("<sap><id>h</id><config><id>h</id><host-stack><mac-address>02:00:00:00:00:01"
     "</mac-address></host-stack></config></sap>",
     "/sffg:service-graphs/sffg:service-graph[sffg:id='g1']/sffg:saps/sffg:sap[sffg:id='h']"
     "/sffg:config/sffg:host-stack")])
def test_a_missing_choice_in_a_new_graph_is_reported_at_that_graph(nc, sap, path):
    nc.edit_config(target="candidate", config=config(firewall_chain("chain")))
    nc.commit()
    g1 = ('<config xmlns="%s"><service-graphs xmlns="%s"><service-graph><id>g1</id>'
          "<config><id>g1</id></config><saps>%s</saps></service-graph></service-graphs>"
          "</config>" % (BASE, SFFG, sap))
    nc.edit_config(target="candidate", config=g1)
    with pytest.raises(RPCError) as refused:
        nc.commit()
    error = refused.value.xml
    assert error.findtext(B + "error-tag") == "data-missing"
    assert error.findtext(B + "error-path") == path
    assert error.find(B + "error-path").nsmap["sffg"] == SFFG
