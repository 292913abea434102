"""Reading service graphs from libyang JSON: an earlier version's unchanged parts are reused."""

import copy

from agent.engine.engine import graph_sources
from agent.model.graph import graph_from_dict
from tests.unit.engine.test_engine import chain, running


def test_unchanged_functions_rules_and_saps_are_reused():
    old_source = graph_sources(running(chain()))["g1"]
    old = graph_from_dict(old_source)
    new_source = graph_sources(running(chain(middle=True)))["g1"]
    new = graph_from_dict(new_source, (old_source, old))
    assert new == graph_from_dict(new_source)
    assert new.functions["fw"] is old.functions["fw"]
    assert new.rules["lan-fw"] is old.rules["lan-fw"]
    assert new.saps["wan"] is old.saps["wan"]
    assert "nat" in new.functions and "fw-wan" not in new.rules

    # A changed entry is read again.
    edited = copy.deepcopy(old_source)
    rule = next(r for r in edited["flow-rules"]["flow-rule"] if r["id"] == "lan-fw")
    rule["config"]["priority"] = 20
    again = graph_from_dict(edited, (old_source, old))
    assert again.rules["lan-fw"] is not old.rules["lan-fw"]
    assert again.rules["lan-fw"].priority == 20
    assert again.rules["fw-lan"] is old.rules["fw-lan"]
