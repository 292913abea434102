"""The engine's records are durable before apply() returns: a disk that refuses the journal
or the snapshot makes the transaction fail with resource-denied and leaves the node, what
is deployed and the snapshot as they were; revert() undoes the last transaction."""

import errno
import json
import os

import pytest

from agent.engine import EngineRefused
from tests.unit.engine.test_engine import TEMPLATES, chain, commit, make_node, running


@pytest.fixture(autouse=True)
def keep_templates(monkeypatch):
    import agent.engine.engine as engine_module
    monkeypatch.setattr(engine_module, "templates_from_tree", lambda root: TEMPLATES)


@pytest.fixture
def node(tmp_path, monkeypatch):
    node = make_node(tmp_path / "node", monkeypatch)
    node.engine.apply(None, running(chain()))
    return node


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _journal(node) -> list:
    return [json.loads(line) for line in node.engine.journal.path.read_text().splitlines()]


def _as_before(node):
    """What must hold after a refused or reverted transaction: (node state, deployed,
    snapshot bytes, journal records) now."""
    return (node.state(), dict(node.engine.deployed), node.engine.snapshot.path.read_bytes())


APPLY = {"apply": lambda engine, tree: engine.apply(None, tree), "commit": commit}


def _journal_fails_at(node, monkeypatch, event):
    write = node.engine.journal._write

    def refusing(record, sync=False):
        if record["event"] == event:
            _no_space()
        write(record, sync)
    monkeypatch.setattr(node.engine.journal, "_write", refusing)


@pytest.mark.parametrize("through", APPLY)
@pytest.mark.parametrize("refused", ["journal begin", "snapshot", "journal commit"])
def test_a_disk_that_refuses_the_records_refuses_the_transaction(node, monkeypatch, refused,
                                                                  through):
    before = _as_before(node)
    with monkeypatch.context() as disk:
        if refused == "snapshot":
            disk.setattr(node.engine.snapshot, "stage", _no_space)
        else:
            _journal_fails_at(node, disk, refused.split()[1])
        with pytest.raises(EngineRefused) as caught:
            APPLY[through](node.engine, running(chain(middle=True)))
    assert caught.value.tag == "resource-denied"
    assert "No space left on device" in caught.value.message
    assert _as_before(node) == before
    assert node.engine.graph_status("g1") == ("running", "")
    assert not node.engine.journal.interrupted()
    assert not list(node.engine.snapshot.path.parent.glob(".deployed.json.*"))
    node.engine.apply(None, running(chain(middle=True)))
    assert node.engine.deployed["g1"].functions.keys() == {"fw", "nat"}


def test_apply_returns_with_the_snapshot_and_the_commit_line_synced(node, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink("/proc/self/fd/%d" % fd))
        real_fsync(fd)
    with monkeypatch.context() as disk:
        disk.setattr(os, "fsync", fsync)
        node.engine.apply(None, running(chain(middle=True)))
    state_dir = str(node.engine.state_dir)
    assert any(path.startswith(state_dir + "/.deployed.json.") for path in synced)
    assert state_dir in synced                               # the rename
    assert synced[-1] == str(node.engine.journal.path)       # the commit line, last
    assert _journal(node)[-1]["event"] == "commit"
    assert json.loads(node.engine.snapshot.path.read_bytes())["graphs"]["g1"]["functions"]\
        .keys() == {"fw", "nat"}


@pytest.mark.parametrize("through", APPLY)
def test_revert_undoes_the_last_transaction(node, through):
    before = _as_before(node)
    tree = running(chain(middle=True))
    APPLY[through](node.engine, tree)
    assert _as_before(node) != before
    node.engine.revert(None, tree)
    assert _as_before(node) == before
    assert [r["event"] for r in _journal(node)][-1] == "reverted"
    assert not node.engine.journal.interrupted()
    node.engine.apply(None, tree)                 # and it can be applied again
    assert node.engine.deployed["g1"].functions.keys() == {"fw", "nat"}


def test_a_revert_on_a_full_disk_puts_the_snapshot_back(node, monkeypatch):
    """No write can be done: the old snapshot comes back by a rename."""
    before = _as_before(node)
    tree = running(chain(middle=True))
    node.engine.apply(None, tree)
    with monkeypatch.context() as disk:
        disk.setattr(node.engine.journal, "_write", _no_space)
        disk.setattr("agent.files.StagedFile.__init__", _no_space)
        node.engine.revert(None, tree)
    assert _as_before(node) == before


def test_a_snapshot_that_cannot_be_put_back_is_removed(node, monkeypatch):
    """The node is back as before, but the snapshot of the reverted transaction must not
    stay: without one, a recovery redeploys running instead of adopting what it says."""
    before = node.state(), dict(node.engine.deployed)
    tree = running(chain(middle=True))
    node.engine.apply(None, tree)
    with monkeypatch.context() as disk:
        disk.setattr(node.engine.journal, "_write", _no_space)
        disk.setattr("agent.files.StagedFile.__init__", _no_space)
        disk.setattr(node.engine.snapshot, "restore_previous", _no_space)
        node.engine.revert(None, tree)
    assert (node.state(), node.engine.deployed) == before
    assert not node.engine.snapshot.path.exists()


def test_revert_of_another_configuration_plans_the_way_back(node):
    before = _as_before(node)[:2]
    node.engine.apply(None, running(chain(middle=True)))
    node.engine.revert(running(chain()), running(chain(middle=True)))   # not the same tree
    assert _as_before(node)[:2] == before


@pytest.mark.parametrize("cause, tag", [
    (OSError(errno.ENOSPC, "No space left on device"), "resource-denied"),
    (OSError(errno.EACCES, "Permission denied"), "operation-failed"),
    (RuntimeError("broken"), "operation-failed")])
def test_a_step_that_finds_no_room_on_the_disk_is_resource_denied(node, cause, tag):
    from drivers.errors import DriverError
    before = _as_before(node)
    target = "create-function g1/%s" % node.naming.function_instance("g1", "nat")

    def fault(step):
        if str(step) == target:
            try:
                raise cause
            except Exception as exc:
                raise DriverError("cannot unpack the package", resource="nat") from exc
    node.engine.executor.fault = fault
    with pytest.raises(EngineRefused) as caught:
        node.engine.apply(None, running(chain(middle=True)))
    assert caught.value.tag == tag
    assert _as_before(node) == before
