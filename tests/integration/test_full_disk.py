"""The disk fills between the engine's apply and the write of running's crash-restart
copy, on a real file system (a small tmpfs as the state directory): the commit fails with
resource-denied and the engine reverts it, with nothing to write for that (the old
snapshot comes back by a rename). The datastores and the engine are the agent's; the
drivers are the unit tests' in-memory fakes (the disk is what this test is about)."""

import asyncio
import subprocess

import pytest
from lxml import etree

from agent.datastore import CommitError, Datastores, Edit
from tests.e2e.test_full_disk import fill, free
from tests.unit.engine.test_engine import CTX, TEMPLATES, chain, make_node

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


@pytest.fixture
def state(session_tmp):
    path = session_tmp / "full-disk-state"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)], check=True)
    yield path
    # lazily: the journal of the engine under test may still be open
    subprocess.run(["umount", "--lazy", str(path)], check=True)


def _edit(*graphs):
    """The candidate replaced by these graphs."""
    xml = ('<config xmlns="%s"><service-graphs xmlns="urn:composer-nc:yang:composer-sffg">%s'
           "</service-graphs></config>" % (NC, "".join(graphs)))
    return Edit.from_xml(CTX, etree.fromstring(xml.encode()), "replace")


def test_the_disk_filling_after_the_engine_applied_reverts_the_commit(state, monkeypatch):
    import agent.engine.engine as engine_module
    monkeypatch.setattr(engine_module, "templates_from_tree", lambda root: TEMPLATES)
    node = make_node(state / "engine", monkeypatch)

    async def main():
        ds = Datastores(CTX, node.engine, state / "startup.xml", state / "running.xml")
        await ds.start()
        await ds.edit("candidate", _edit(chain()), default_operation="replace")
        await ds.commit()
        before = (node.state(), dict(node.engine.deployed),
                  node.engine.snapshot.path.read_bytes(), (state / "running.xml").read_bytes())

        applied = asyncio.Event()
        loop = asyncio.get_running_loop()
        apply, stage = node.engine.apply, ds._stage

        def apply_then_say(old, new):
            apply(old, new)
            loop.call_soon_threadsafe(applied.set)

        def stage_on_a_full_disk(tree):
            asyncio.run_coroutine_threadsafe(applied.wait(), loop).result(10)
            fill(state)
            return stage(tree)
        monkeypatch.setattr(node.engine, "apply", apply_then_say)
        monkeypatch.setattr(ds, "_stage", stage_on_a_full_disk)
        await ds.edit("candidate", _edit(chain(middle=True)), default_operation="replace")
        with pytest.raises(CommitError) as refused:
            await ds.commit()
        problem = refused.value.problems[0]
        assert (problem.tag, problem.error_type) == ("resource-denied", "application"), \
            problem.message
        assert "No space left on device" in problem.message
        assert (node.state(), node.engine.deployed, node.engine.snapshot.path.read_bytes(),
                (state / "running.xml").read_bytes()) == before
        assert not node.engine.journal.interrupted()
        assert not list(state.glob(".running.xml.*"))
        assert not list((state / "engine").glob(".deployed.json.*"))

        free(state)
        monkeypatch.setattr(ds, "_stage", stage)
        await ds.commit()
        assert node.engine.deployed["g1"].functions.keys() == {"fw", "nat"}
        assert b"nat" in (state / "running.xml").read_bytes()
        await ds.stop()
    asyncio.run(main())
