"""The snapshot after a transaction: the file holds exactly what Snapshot.save writes,
graph sources spliced in as libyang printed them; a failure leaves the old file."""

import dataclasses

import pytest

from agent.engine import EngineRefused
from agent.engine.state import Snapshot
from tests.unit.engine.test_engine import TEMPLATES, chain, make_node, running


@pytest.fixture(autouse=True)
def keep_templates(monkeypatch):
    import agent.engine.engine as engine_module
    monkeypatch.setattr(engine_module, "templates_from_tree", lambda root: TEMPLATES)


@pytest.fixture
def node(tmp_path, monkeypatch):
    return make_node(tmp_path / "node", monkeypatch)


def _second(gid="g2"):
    """A chain that can run next to chain("g1") (its SAP rules have another priority)."""
    return chain(gid).replace("<priority>10</priority>", "<priority>11</priority>")


def _saved(engine, path) -> bytes:
    """What Snapshot.save writes for what the engine has deployed now."""
    reference = Snapshot(path)
    reference.save(engine.deployed, {"lsi0": engine.network.lsi0})
    return reference.path.read_bytes()


def test_the_snapshot_after_a_success_is_what_save_writes(node, tmp_path):
    for tree in (running(chain("g1")), running(chain("g1", middle=True), _second()),
                 running(_second())):
        node.engine.apply(None, tree)
        expected = _saved(node.engine, tmp_path / "ref.json")
        assert node.engine.snapshot.path.read_bytes() == expected


def test_a_failed_transaction_leaves_the_old_snapshot(node):
    node.engine.apply(None, running(chain("g1")))
    before = node.engine.snapshot.path.read_bytes()
    steps = [str(s) for s in node.engine.dry_run(running(chain("g1", middle=True))).steps()]

    def fault(step):
        if str(step) == steps[-1]:
            raise RuntimeError("injected")
    node.engine.executor.fault = fault
    with pytest.raises(EngineRefused):
        node.engine.apply(None, running(chain("g1", middle=True)))
    assert node.engine.snapshot.path.read_bytes() == before


def test_the_snapshot_loads_back_as_what_was_deployed(node):
    node.engine.apply(None, running(chain("g1", middle=True), _second()))
    graphs, info = node.engine.snapshot.load()
    assert info == {"lsi0": node.engine.network.lsi0}
    assert graphs == node.engine.deployed


def test_a_source_read_with_its_text_is_written_as_that_text(node, tmp_path):
    import json
    from agent.model.graph import GraphEntry
    from agent.engine.state import encode
    from agent.model.deployed import from_json, to_json
    node.engine.apply(None, running(chain("g1"), _second()))
    deployed = node.engine.deployed
    assert all(isinstance(dg.source, GraphEntry) for dg in deployed.values())
    fast = encode(deployed, {"lsi0": "lsi0"})
    plain = {gid: dataclasses.replace(dg, source=dict(dg.source))
             for gid, dg in deployed.items()}
    reference = encode(plain, {"lsi0": "lsi0"})
    assert fast != reference                    # not json.dumps of the entries...
    assert json.loads(fast) == json.loads(reference) == to_json(plain, {"lsi0": "lsi0"})
    graphs, info = from_json(json.loads(fast))  # ...but read back the same
    assert info == {"lsi0": "lsi0"} and set(graphs) == {"g1", "g2"}
    assert all(graphs[g].source == deployed[g].source and graphs[g].functions ==
               deployed[g].functions and graphs[g].links == deployed[g].links for g in graphs)


def test_a_graph_left_alone_takes_the_source_with_its_text(node):
    from agent.model.graph import GraphEntry
    from agent.model.deployed import from_json
    import json
    node.engine.apply(None, running(chain("g1"), _second()))
    # as after a restart: the deployed state comes back from the snapshot, plain dicts
    graphs, _ = from_json(json.loads(node.engine.snapshot.path.read_bytes()))
    node.engine.deployed = graphs
    node.engine.apply(None, running(chain("g1"), _second()))
    assert not node.engine.last_plan           # nothing to do...
    assert all(isinstance(dg.source, GraphEntry)  # ...but the texts are kept
               for dg in node.engine.deployed.values())
