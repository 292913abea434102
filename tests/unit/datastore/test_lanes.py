"""Reads must not starve commits: changes of running have threads of their own, state
reads build a bounded number at a time, in order, and one whose turn comes during a change
waits for that change."""

import asyncio
import threading

from agent.datastore import DataTree, Datastores
from agent.engine import StateProvider
from tests.engines import FailingEngine, RecordingEngine

from .conftest import edit, run, top


def counters(ctx):
    return DataTree.parse(ctx, top("<counters><hits>5</hits></counters>"), config_only=False,
                          validate=False).root()


class SlowProvider:
    """A state provider whose builds block until released, counting how many run at once."""

    def __init__(self):
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.calls = 0

    def build(self, ctx):
        with self.lock:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)
        try:
            self.release.wait(30)
            return counters(ctx)
        finally:
            with self.lock:
                self.running -= 1


async def _reads(ds, count):
    async def one():
        for tree in await ds.state_trees():
            tree.free()
    return [asyncio.ensure_future(one()) for _ in range(count)]


async def _commit_held_in_apply(ctx, tmp_path, build):
    """Datastores with a state provider, and a commit under way that waits in the engine's
    apply() until engine.gate is set: (datastores, engine, the commit's future)."""
    engine = FailingEngine()
    ds = Datastores(ctx, engine, tmp_path / "startup.xml")
    await ds.start()
    ds.register_state_provider(StateProvider("state", build))
    await ds.edit("candidate", edit(ctx, top("<name>a</name>")))
    engine.gate = threading.Event()
    engine.entered.clear()
    commit = asyncio.ensure_future(ds.commit())
    while not engine.entered.is_set():
        await asyncio.sleep(0.01)
    return ds, engine, commit


def test_a_commit_does_not_wait_for_the_reads_under_way(ctx, tmp_path):
    """More blocked reads than any shared pool has threads: the commit still goes through
    (it waited for them all when commits and reads shared asyncio's default threads)."""
    async def main():
        ds = Datastores(ctx, RecordingEngine(), tmp_path / "startup.xml",
                        tmp_path / "running.xml", concurrent_reads=40)
        await ds.start()
        slow = SlowProvider()
        ds.register_state_provider(StateProvider("slow", slow.build))
        reads = await _reads(ds, 40)
        await asyncio.sleep(0.2)
        assert slow.running > 0
        await ds.edit("candidate", edit(ctx, top("<name>a</name>")))
        await asyncio.wait_for(ds.commit(), 10)
        assert "<name>a</name>" in (tmp_path / "running.xml").read_text()
        slow.release.set()
        await asyncio.gather(*reads)
        await ds.stop()
    run(main())


def test_reads_build_state_a_bounded_number_at_a_time(ctx, tmp_path):
    async def main():
        ds = Datastores(ctx, RecordingEngine(), tmp_path / "startup.xml",
                        concurrent_reads=2)
        await ds.start()
        slow = SlowProvider()
        ds.register_state_provider(StateProvider("slow", slow.build))
        reads = await _reads(ds, 10)
        await asyncio.sleep(0.2)
        assert slow.running == 2
        slow.release.set()
        await asyncio.gather(*reads)
        assert slow.most == 2 and slow.calls == 10
        await ds.stop()
    run(main())


def test_a_read_whose_turn_comes_during_a_commit_waits_for_it(ctx, tmp_path):
    async def main():
        calls = []
        ds, engine, commit = await _commit_held_in_apply(
            ctx, tmp_path, lambda c: calls.append(1) or counters(c))
        reads = await _reads(ds, 3)
        await asyncio.sleep(0.3)
        assert calls == [] and not any(r.done() for r in reads)
        engine.gate.set()
        await commit
        await asyncio.gather(*reads)
        assert len(calls) == 3
        await ds.stop()
    run(main())


def test_a_read_gives_a_long_change_a_bounded_time(ctx, tmp_path, monkeypatch):
    """A deploy that takes minutes is watched while it runs: the read goes on after
    READ_PATIENCE."""
    from agent.datastore import store
    monkeypatch.setattr(store, "READ_PATIENCE", 0.2)

    async def main():
        ds, engine, commit = await _commit_held_in_apply(ctx, tmp_path, counters)
        reads = await _reads(ds, 2)
        await asyncio.wait_for(asyncio.gather(*reads), 5)
        assert not commit.done()
        engine.gate.set()
        await commit
        await ds.stop()
    run(main())
