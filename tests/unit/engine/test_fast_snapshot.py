"""The snapshot of a transaction's target is encoded while the executor runs: after a
success the file holds exactly what Snapshot.save writes; a failure leaves the old file."""

import threading

import pytest

from agent.engine import EngineRefused
from agent.engine.state import Encoding, Snapshot
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
        assert node.engine.snapshot.path.read_bytes() == _saved(node.engine,
                                                                tmp_path / "ref.json")


def test_the_snapshot_is_encoded_before_the_executor_finishes(node, monkeypatch):
    import agent.engine.state as state_module
    node.engine.apply(None, running(chain("g1")))
    encoding_started, overlapped = threading.Event(), []
    encode, run = state_module.encode, node.engine.executor.run

    def watched_encode(graphs, info):
        encoding_started.set()
        return encode(graphs, info)

    def watched_run(plan):
        # sequential encoding would only start after this returns
        overlapped.append(encoding_started.wait(5))
        run(plan)
    monkeypatch.setattr(state_module, "encode", watched_encode)
    node.engine.executor.run = watched_run
    node.engine.apply(None, running(chain("g1", middle=True)))
    assert overlapped == [True]


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


def test_an_encoding_keeps_the_state_it_was_given(node, tmp_path):
    node.engine.apply(None, running(chain("g1"), _second()))
    graphs = dict(node.engine.deployed)
    expected = _saved(node.engine, tmp_path / "ref.json")
    encoding = Encoding(graphs, {"lsi0": node.engine.network.lsi0})
    graphs.pop("g1")
    assert encoding.result() == expected


def test_an_encoding_error_is_raised_by_result():
    encoding = Encoding({"g": object()}, {})
    with pytest.raises(AttributeError):
        encoding.result()
