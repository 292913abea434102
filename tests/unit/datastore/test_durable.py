"""Durable before acknowledged: a change of running returns once the crash-restart copy is
on the disk; when the disk refuses, the change fails with resource-denied, the engine does
not apply it or reverts it, and running, the node and the files stay as they were."""

import asyncio
import errno

import pytest

from agent.datastore import CommitError, DatastoreError, Datastores, persistence
from agent.files import StagedFile
from tests.engines import RecordingEngine, ReadingEngine

from .conftest import edit, run, text, top


class RevertingEngine(ReadingEngine):
    """Records revert() calls (then reverts as the base engine does)."""

    def __init__(self):
        super().__init__()
        self.reverted = []

    def revert(self, old, new):
        self.reverted.append((self._xml(old), self._xml(new)))
        super().revert(old, new)


def _store(ctx, tmp_path, engine):
    return Datastores(ctx, engine, tmp_path / "startup.xml", tmp_path / "running.xml")


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _denied(caught) -> tuple:
    problem = caught.value.problems[0]
    return problem.tag, problem.error_type


async def _committed(ctx, tmp_path, engine):
    ds = _store(ctx, tmp_path, engine)
    await ds.start()
    await ds.edit("candidate", edit(ctx, top("<name>a</name>")))
    await ds.commit()
    return ds


@pytest.mark.parametrize("change", ["commit", "edit-running", "copy-running"])
def test_a_change_the_disk_refuses_fails_and_changes_nothing(ctx, tmp_path, monkeypatch,
                                                            change):
    async def main():
        engine = RevertingEngine()
        ds = await _committed(ctx, tmp_path, engine)
        before, saved = text(ds.running), (tmp_path / "running.xml").read_bytes()
        monkeypatch.setattr(persistence, "stage_running", _no_space)
        with pytest.raises(CommitError) as caught:
            if change == "commit":
                await ds.edit("candidate", edit(ctx, top("<name>b</name>")))
                await ds.commit()
            elif change == "edit-running":
                await ds.edit("running", edit(ctx, top("<name>b</name>")))
            else:
                await ds.copy(ds.tree("running").dup(), "candidate")
                await ds.edit("candidate", edit(ctx, top("<name>b</name>")))
                await ds.copy("candidate", "running")
        assert _denied(caught) == ("resource-denied", "application")
        assert "No space left on device" in caught.value.problems[0].message
        assert text(ds.running) == before
        assert (tmp_path / "running.xml").read_bytes() == saved
        # the engine did not apply b, or put a back right away
        assert engine.applied[-1][1] is None or "<name>a</name>" in engine.applied[-1][1]
        assert not list(tmp_path.glob(".running.xml.*"))
        monkeypatch.undo()
        await ds.edit("candidate", edit(ctx, top("<name>b</name>")))
        await ds.commit()
        assert b"<name>b</name>" in (tmp_path / "running.xml").read_bytes()
    run(main())


def _fail_rename(monkeypatch):
    install = StagedFile.install

    def fails(staged):
        if staged.path.name == "running.xml":
            staged.discard()
            raise OSError(errno.EIO, "Input/output error")
        install(staged)
    monkeypatch.setattr(StagedFile, "install", fails)


def _fail_directory_sync_once(monkeypatch):
    from agent import files
    sync, calls = files.sync_directory, []

    def fails_once(path):
        calls.append(path)
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error")
        sync(path)
    monkeypatch.setattr(files, "sync_directory", fails_once)


@pytest.mark.parametrize("fault", [_fail_rename, _fail_directory_sync_once],
                         ids=["rename", "directory sync after the rename"])
def test_a_copy_the_disk_refuses_after_the_engine_applied_is_reverted(ctx, tmp_path,
                                                                     monkeypatch, fault):
    """The disk fails between the engine's apply and the copy being in place, durably
    (before the rename, or syncing its directory after it): the engine reverts the change
    and the old copy is what a crash would restore."""
    async def main():
        engine = RevertingEngine()
        ds = await _committed(ctx, tmp_path, engine)
        saved = (tmp_path / "running.xml").read_bytes()
        fault(monkeypatch)
        await ds.edit("candidate", edit(ctx, top("<name>b</name>")))
        with pytest.raises(CommitError) as caught:
            await ds.commit()
        assert _denied(caught) == ("resource-denied", "application")
        assert len(engine.reverted) == 1
        old, new = engine.reverted[0]
        assert "<name>a</name>" in old and "<name>b</name>" in new
        assert "<name>a</name>" in engine.applied[-1][1]       # the default revert
        assert "<name>a</name>" in text(ds.running) and ds.candidate_dirty
        assert (tmp_path / "running.xml").read_bytes() == saved
        assert not list(tmp_path.glob(".running.xml.*"))
    run(main())


def test_an_acknowledged_commit_is_on_the_disk(ctx, tmp_path, monkeypatch):
    """The copy was staged and synced (file and directory) before the commit returned."""
    import os
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink("/proc/self/fd/%d" % fd))
        real_fsync(fd)

    async def main():
        ds = _store(ctx, tmp_path, RecordingEngine())
        await ds.start()
        await ds.edit("candidate", edit(ctx, top("<name>a</name>")))
        monkeypatch.setattr(os, "fsync", fsync)
        await ds.commit()
        monkeypatch.undo()
        assert b"<name>a</name>" in (tmp_path / "running.xml").read_bytes()
        assert any("/.running.xml." in path for path in synced)
        assert str(tmp_path) in synced
    run(main())


def test_a_startup_write_the_disk_refuses_fails(ctx, tmp_path, monkeypatch):
    async def main():
        ds = await _committed(ctx, tmp_path, RecordingEngine())
        monkeypatch.setattr(persistence, "atomic_write", _no_space)
        with pytest.raises(DatastoreError) as caught:
            await ds.copy("running", "startup")
        assert _denied(caught) == ("resource-denied", "application")
        assert text(ds.startup) == "" and not (tmp_path / "startup.xml").exists()
    run(main())


def test_a_confirming_commit_the_disk_refuses_leaves_the_commit_pending(ctx, tmp_path,
                                                                       monkeypatch):
    async def main():
        ds = await _committed(ctx, tmp_path, RecordingEngine())
        await ds.edit("candidate", edit(ctx, top("<name>try</name>")))
        await ds.commit(1, confirmed=True, timeout=60)
        # a crash now restores what the confirmed commit would roll back to
        assert b"<name>a</name>" in (tmp_path / "running.xml").read_bytes()
        monkeypatch.setattr(persistence, "stage_running", _no_space)
        with pytest.raises(CommitError) as caught:
            await ds.commit(1)
        assert _denied(caught) == ("resource-denied", "application")
        assert ds.confirmed_commit is not None
        assert b"<name>a</name>" in (tmp_path / "running.xml").read_bytes()
        monkeypatch.undo()
        await ds.commit(1)
        assert ds.confirmed_commit is None
        assert b"<name>try</name>" in (tmp_path / "running.xml").read_bytes()
        await ds.stop()
    run(main())


def test_a_rollback_the_disk_refuses_is_tried_again(ctx, tmp_path, monkeypatch):
    """The engine cannot record the rollback of a confirmed commit: it stays pending and
    is retried until it succeeds."""
    from agent.datastore import store
    monkeypatch.setattr(store, "ROLLBACK_RETRY", 0.2)

    class Full(RecordingEngine):
        full = True

        def apply(self, old, new):
            from agent.engine import EngineRefused
            if self.full and "<name>keep</name>" in (self._xml(new) or ""):
                raise EngineRefused("no space for the journal", tag="resource-denied")
            super().apply(old, new)

    async def main():
        engine = Full()
        ds = _store(ctx, tmp_path, engine)
        await ds.start()
        await ds.edit("candidate", edit(ctx, top("<name>keep</name>")))
        engine.full = False
        await ds.commit()
        engine.full = True
        await ds.edit("candidate", edit(ctx, top("<name>try</name>")))
        await ds.commit(1, confirmed=True, timeout=0.1)
        await asyncio.sleep(0.5)
        assert ds.confirmed_commit is not None and "try" in text(ds.running)
        engine.full = False
        for _ in range(100):
            if ds.confirmed_commit is None:
                break
            await asyncio.sleep(0.05)
        assert ds.confirmed_commit is None and "keep" in text(ds.running)
        await ds.stop()
    run(main())


def test_what_a_crash_left_staged_is_removed_at_start(ctx, tmp_path):
    async def main():
        StagedFile(tmp_path / "running.xml", b"half")          # never installed
        assert list(tmp_path.glob(".running.xml.*"))
        ds = _store(ctx, tmp_path, RecordingEngine())
        await ds.start()
        assert not list(tmp_path.glob(".running.xml.*"))
    run(main())
