"""The datastores: boot from startup, commit through the engine, refusals, writable
running, copy/delete, locks, confirmed commit, and the candidate kept apart from
running without copies."""

import asyncio
import threading

import pytest

from agent.datastore import CommitError, DataTree, Datastores, EditError, LockError
from agent.datastore.errors import StateUnavailable
from agent.model import ValidationError
from tests.engines import FailingEngine, ReadingEngine, RecordingEngine

from .conftest import edit, run, text, top, tree

T = "/nc-test:top"


def store(ctx, tmp_path, engine=None, startup=None):
    path = tmp_path / "startup.xml"
    if startup is not None:
        path.write_text(startup)
    ds = Datastores(ctx, engine or RecordingEngine(), path)
    return ds


async def started(ds):
    await ds.start()
    return ds


def test_boot_without_startup(ctx, tmp_path):
    async def main():
        engine = RecordingEngine()
        ds = await started(store(ctx, tmp_path, engine))
        # nothing configured; running holds the default nodes only
        assert text(ds.running) == "" and not ds.candidate_dirty
        assert "<count>3</count>" in text(ds.running, "report-all")
        assert len(engine.applied) == 1 and engine.applied[0][0] is None
    run(main())


def test_boot_applies_startup_once(ctx, tmp_path):
    async def main():
        engine = RecordingEngine()
        ds = await started(store(ctx, tmp_path, engine, startup=top("<name>s</name>")))
        assert ds.running.find(T + "/name") is not None
        assert ds.candidate.find(T + "/name") is not None
        assert len(engine.applied) == 1 and engine.applied[0][0] is None
        assert "<name>s</name>" in engine.applied[0][1]
    run(main())


def test_boot_with_refused_startup_starts_empty(ctx, tmp_path):
    async def main():
        engine = FailingEngine("no way")
        engine.fail("no way")
        ds = await started(store(ctx, tmp_path, engine, startup=top("<name>s</name>")))
        assert text(ds.running) == "" and "no way" in ds.boot_problem
        assert (tmp_path / "startup.xml").read_text() == top("<name>s</name>")
    run(main())


def test_boot_with_invalid_startup_starts_empty(ctx, tmp_path):
    async def main():
        ds = await started(store(ctx, tmp_path, startup=top("<limited>7</limited>")))
        assert text(ds.running) == "" and "seven is not allowed" in ds.boot_problem
    run(main())


def test_commit_and_candidate_follow_running(ctx, tmp_path):
    async def main():
        engine = RecordingEngine()
        ds = await started(store(ctx, tmp_path, engine))
        for n in range(4):
            await ds.edit("candidate", edit(ctx, top("<item><name>i%d</name><value>%d</value>"
                                                  "</item><name>n%d</name>" % (n, n, n))))
            assert ds.candidate_dirty
            await ds.commit()
            assert not ds.candidate_dirty
            assert text(ds.running, "report-all") == text(ds.candidate, "report-all") or \
                text(ds.running) == text(ds.candidate)
        assert text(ds.running).count("<item>") == 4
        assert len(engine.applied) == 5
        old, new = engine.applied[-1]
        assert "<name>n2</name>" in old and "<name>n3</name>" in new
    run(main())


def test_a_commit_that_changes_nothing_has_the_engine_converge(ctx, tmp_path):
    """The node may have drifted from running: the engine repairs it, or the commit
    fails with what it says (not <ok/> over a broken node); running stays."""
    async def main():
        engine = FailingEngine()
        ds = await started(store(ctx, tmp_path, engine))
        await ds.edit("candidate", edit(ctx, top("<name>n</name>")))
        await ds.commit()
        assert engine.converged == 0
        await ds.commit()
        assert engine.converged == 1
        engine.fail("graph g1 is degraded", "/x", "node-degraded")
        with pytest.raises(CommitError) as refused:
            await ds.commit()
        problem, = refused.value.problems
        assert (problem.tag, problem.message, problem.app_tag) == (
            "operation-failed", "graph g1 is degraded", "node-degraded")
        assert "<name>n</name>" in text(ds.running)
        # a confirming commit confirms, whatever the node looks like
        engine.succeed()
        await ds.edit("candidate", edit(ctx, top("<name>m</name>")))
        await ds.commit(confirmed=True, timeout=60)
        engine.fail()
        await ds.commit()
        assert ds.confirmed_commit is None
    run(main())


@pytest.mark.parametrize("refused_in", ["apply", "check"])
def test_refused_commit_leaves_running(ctx, tmp_path, refused_in):
    """The engine refuses in apply(), or in the check read() returned (which runs while
    libyang validates)."""
    async def main():
        engine = FailingEngine() if refused_in == "apply" else ReadingEngine()
        ds = await started(crash_safe_store(ctx, tmp_path, engine))
        await ds.edit("candidate", edit(ctx, top("<name>a</name>")))
        await ds.commit()
        before, saved = text(ds.running), (tmp_path / "running.xml").read_bytes()
        await ds.edit("candidate", edit(ctx, top("<name>b</name>")))
        engine.fail("port eth9 does not exist", path=T + "/name", app_tag="no-port")
        engine.refuse_in_check = refused_in == "check"
        with pytest.raises(CommitError) as caught:
            await ds.commit()
        problem = caught.value.problems[0]
        assert (problem.tag, problem.message, problem.path, problem.app_tag) == \
            ("operation-failed", "port eth9 does not exist", T + "/name", "no-port")
        assert text(ds.running) == before
        assert (tmp_path / "running.xml").read_bytes() == saved
        assert ds.candidate_dirty and ds.candidate.find(T + "/name") is not None
        assert len(engine.applied) == 2        # boot and the first commit
        engine.succeed()
        engine.refuse_in_check = False
        await ds.commit()
        assert "<name>b</name>" in text(ds.running)
    run(main())


def test_invalid_candidate_is_refused_at_commit(ctx, tmp_path):
    async def main():
        ds = await started(store(ctx, tmp_path))
        # constraints of the candidate are checked at commit (RFC 7950 8.3.3)
        await ds.edit("candidate", edit(ctx, top("<item><name>a</name><ref>zz</ref></item>")))
        with pytest.raises(ValidationError) as caught:
            await ds.commit()
        assert caught.value.items[0].path == T + "/item[name='a']/ref"
        assert text(ds.running) == ""
    run(main())


def test_edit_running(ctx, tmp_path):
    async def main():
        engine = FailingEngine()
        ds = await started(store(ctx, tmp_path, engine))
        await ds.edit("running", edit(ctx, top("<name>r</name>")))
        assert ds.running.find(T + "/name") is not None
        assert ds.candidate.find(T + "/name") is not None and not ds.candidate_dirty
        engine.fail("no")
        with pytest.raises(CommitError):
            await ds.edit("running", edit(ctx, top("<name>q</name>")))
        assert "<name>r</name>" in text(ds.running) and "<name>r</name>" in text(ds.candidate)
        engine.succeed()
        with pytest.raises(ValidationError):
            await ds.edit("running", edit(ctx, top("<limited>7</limited>")))
        assert ds.running.find(T + "/limited") is None
        assert ds.candidate.find(T + "/limited") is None
        # a dirty candidate is left alone
        await ds.edit("candidate", edit(ctx, top("<limited>2</limited>")))
        await ds.edit("running", edit(ctx, top("<name>z</name>")))
        assert "<name>z</name>" in text(ds.running)
        assert "<name>r</name>" in text(ds.candidate) and ds.candidate_dirty
    run(main())


def test_test_only_changes_nothing(ctx, tmp_path):
    async def main():
        ds = await started(store(ctx, tmp_path))
        await ds.edit("candidate", edit(ctx, top("<name>a</name>")), test_option="test-only")
        assert not ds.candidate_dirty and ds.candidate.find(T + "/name") is None
        with pytest.raises(ValidationError):
            await ds.edit("candidate", edit(ctx, top("<limited>7</limited>")),
                          test_option="test-only")
    run(main())


def test_error_options_on_the_candidate(ctx, tmp_path):
    async def main():
        ds = await started(store(ctx, tmp_path))
        e = top('<item nc:operation="delete"><name>nope</name></item><name>n</name>')
        for option in ("rollback-on-error", "stop-on-error"):
            with pytest.raises(EditError):
                await ds.edit("candidate", edit(ctx, e), error_option=option)
            assert not ds.candidate_dirty
        with pytest.raises(EditError) as caught:
            await ds.edit("candidate", edit(ctx, e), error_option="continue-on-error")
        assert [p.tag for p in caught.value.problems] == ["data-missing"]
        assert ds.candidate.find(T + "/name") is not None
    run(main())


def test_copy_and_delete_config(ctx, tmp_path):
    async def main():
        ds = await started(store(ctx, tmp_path))
        await ds.edit("running", edit(ctx, top("<name>r</name>")))
        await ds.copy("running", "startup")
        saved = (tmp_path / "startup.xml").read_text()
        assert "<name>r</name>" in saved
        assert DataTree.parse(ctx, saved).find(T + "/name") is not None
        await ds.copy(tree(ctx, top("<name>inline</name>"), validate=False), "candidate")
        assert ds.candidate_dirty and "inline" in text(ds.candidate)
        await ds.commit()
        assert "inline" in text(ds.running) and "inline" in text(ds.candidate)
        await ds.copy("startup", "running")
        assert "<name>r</name>" in text(ds.running) and "<name>r</name>" in text(ds.candidate)
        with pytest.raises(EditError):
            await ds.copy("running", "running")
        with pytest.raises(ValidationError):
            await ds.copy(tree(ctx, top("<limited>7</limited>"), validate=False), "startup")
        with pytest.raises(EditError):
            await ds.delete("running")
        await ds.delete("startup")
        assert ds.startup.empty and (tmp_path / "startup.xml").read_text() == ""
    run(main())


def test_locks(ctx, tmp_path):
    async def main():
        ds = await started(store(ctx, tmp_path))
        ds.lock("running", 1)
        with pytest.raises(LockError) as caught:
            ds.lock("running", 2)
        assert caught.value.problems[0].tag == "lock-denied"
        assert caught.value.problems[0].info == (("session-id", "1"),)
        with pytest.raises(LockError) as caught:
            await ds.edit("running", edit(ctx, top("<name>x</name>")), session_id=2)
        assert caught.value.problems[0].tag == "in-use"
        await ds.edit("running", edit(ctx, top("<name>x</name>")), session_id=1)
        with pytest.raises(LockError):
            await ds.unlock("running", 2)
        await ds.unlock("running", 1)
        # a dirty candidate cannot be locked; a candidate lock's changes go with it
        await ds.edit("candidate", edit(ctx, top("<limited>1</limited>")), session_id=3)
        with pytest.raises(LockError) as caught:
            ds.lock("candidate", 3)
        assert caught.value.problems[0].info == (("session-id", "0"),)
        await ds.discard_changes(3)
        ds.lock("candidate", 3)
        await ds.edit("candidate", edit(ctx, top("<limited>2</limited>")), session_id=3)
        await ds.session_ended(3)
        assert not ds.candidate_dirty and ds.locks.holder("candidate") is None
    run(main())


def test_confirmed_commit_rolls_back_on_timeout(ctx, tmp_path):
    async def main():
        engine = RecordingEngine()
        ds = await started(store(ctx, tmp_path, engine))
        await ds.edit("candidate", edit(ctx, top("<name>keep</name>")))
        await ds.commit()
        await ds.edit("candidate", edit(ctx, top("<name>try</name>")))
        await ds.commit(1, confirmed=True, timeout=1)
        assert "try" in text(ds.running)
        for _ in range(100):
            if ds.confirmed_commit is None:
                break
            await asyncio.sleep(0.05)
        assert ds.confirmed_commit is None
        assert "keep" in text(ds.running) and "keep" in text(ds.candidate)
        assert "keep" in engine.applied[-1][1]
    run(main())


def test_confirmed_commit_confirmed_and_session_end(ctx, tmp_path):
    async def main():
        ds = await started(store(ctx, tmp_path))
        await ds.edit("candidate", edit(ctx, top("<name>a</name>")))
        await ds.commit(1, confirmed=True, timeout=60)
        with pytest.raises(CommitError) as caught:
            await ds.commit(2)
        assert caught.value.problems[0].tag == "in-use"
        await ds.commit(1)                       # confirming commit
        assert ds.confirmed_commit is None and "<name>a</name>" in text(ds.running)
        await ds.edit("candidate", edit(ctx, top("<name>b</name>")))
        await ds.commit(1, confirmed=True, timeout=60)
        await ds.session_ended(1)
        assert ds.confirmed_commit is None and "<name>a</name>" in text(ds.running)
        await ds.stop()
    run(main())


def test_persistent_confirmed_commit(ctx, tmp_path):
    async def main():
        ds = await started(store(ctx, tmp_path))
        await ds.edit("candidate", edit(ctx, top("<name>p</name>")))
        await ds.commit(1, confirmed=True, timeout=60, persist="tok")
        await ds.session_ended(1)
        assert ds.confirmed_commit is not None
        with pytest.raises(CommitError) as caught:
            await ds.commit(2, persist_id="wrong")
        assert caught.value.problems[0].tag == "invalid-value"
        await ds.commit(2, persist_id="tok")
        assert ds.confirmed_commit is None and "<name>p</name>" in text(ds.running)
        await ds.edit("candidate", edit(ctx, top("<name>q</name>")))
        await ds.commit(2, confirmed=True, timeout=60, persist="t2")
        with pytest.raises(CommitError):
            await ds.cancel_commit(3)
        await ds.cancel_commit(3, persist_id="t2")
        assert "<name>p</name>" in text(ds.running)
        with pytest.raises(CommitError):
            await ds.cancel_commit(3)
    run(main())


def test_state_providers(ctx, tmp_path):
    from agent.engine import StateProvider

    def good(c):
        return DataTree.parse(c, top("<counters><hits>5</hits></counters>"), config_only=False,
                              validate=False).root()

    def bad(c):
        raise RuntimeError("broken")

    async def main():
        ds = await started(store(ctx, tmp_path))
        ds.register_state_provider(StateProvider("good", good, ("nc-test",)))
        ds.register_state_provider(StateProvider("bad", bad, ("other",)))
        # a provider that fails fails the read, with its reason
        with pytest.raises(StateUnavailable) as caught:
            await ds.state_trees()
        problem, = caught.value.problems
        assert (problem.tag, problem.app_tag) == ("operation-failed", "state-unavailable")
        assert "state of bad cannot be read: broken" in problem.message
        # ... and does not hide the state of a read that does not ask for it
        trees = await ds.state_trees(lambda p: "nc-test" in p.modules)
        assert len(trees) == 1 and "<hits>5</hits>" in text(trees[0])
        for t in trees:
            t.free()
    run(main())


def crash_safe_store(ctx, tmp_path, engine=None, startup=None):
    path = tmp_path / "startup.xml"
    if startup is not None:
        path.write_text(startup)
    return Datastores(ctx, engine or RecordingEngine(), path, tmp_path / "running.xml")


def test_after_a_crash_running_is_restored_not_startup(ctx, tmp_path):
    async def main():
        ds = await started(crash_safe_store(ctx, tmp_path, startup=top("<name>boot</name>")))
        await ds.edit("candidate", edit(ctx, top("<name>committed</name>")))
        await ds.commit()
        # no stop(): the process died; a new one starts on the same files
        engine = RecordingEngine()
        again = await started(crash_safe_store(ctx, tmp_path, engine))
        assert "committed" in text(again.running) and "committed" in text(again.candidate)
        assert "boot" in text(again.startup)
        assert len(engine.applied) == 1 and "committed" in engine.applied[0][1]
    run(main())


def test_a_clean_stop_that_empties_the_node_boots_from_startup(ctx, tmp_path):
    async def main():
        ds = await started(crash_safe_store(ctx, tmp_path, startup=top("<name>boot</name>")))
        await ds.edit("candidate", edit(ctx, top("<name>committed</name>")))
        await ds.commit()
        await ds.stop(forget_running=True)
        again = await started(crash_safe_store(ctx, tmp_path))
        assert "boot" in text(again.running)
    run(main())


def test_a_crash_during_a_pending_confirmed_commit_restores_the_rollback(ctx, tmp_path):
    async def main():
        ds = await started(crash_safe_store(ctx, tmp_path))
        await ds.edit("candidate", edit(ctx, top("<name>keep</name>")))
        await ds.commit()
        await ds.edit("candidate", edit(ctx, top("<name>try</name>")))
        await ds.commit(1, confirmed=True, timeout=600)
        assert "try" in text(ds.running)
        again = await started(crash_safe_store(ctx, tmp_path))
        assert "keep" in text(again.running) and "try" not in text(again.running)
        await ds.stop()
    run(main())


def test_a_refused_crash_configuration_falls_back_to_startup(ctx, tmp_path):
    async def main():
        ds = await started(crash_safe_store(ctx, tmp_path, startup=top("<name>boot</name>")))
        await ds.edit("candidate", edit(ctx, top("<name>committed</name>")))
        await ds.commit()
        engine = FailingEngine("not that one")
        engine.when = "committed"
        again = await started(crash_safe_store(ctx, tmp_path, engine))
        assert "boot" in text(again.running)
    run(main())


def test_after_a_machine_reboot_running_comes_from_startup(ctx, tmp_path, monkeypatch):
    from agent.datastore import persistence

    async def main():
        ds = await started(crash_safe_store(ctx, tmp_path, startup=top("<name>boot</name>")))
        await ds.edit("candidate", edit(ctx, top("<name>committed</name>")))
        await ds.commit()
        monkeypatch.setattr(persistence, "boot_id", lambda: "another-boot")
        again = await started(crash_safe_store(ctx, tmp_path))
        assert "boot" in text(again.running) and "committed" not in text(again.running)
    run(main())


# --- the engine's check runs while libyang validates --------------------------------------

def _validation_waiting_for(engine, monkeypatch, validated):
    """libyang validation that first waits (up to 10 s) for the engine's check to start:
    sequential checks would make it wait in vain."""
    original = DataTree.validate

    def validate(tree, *args, **kwargs):
        validated.append(engine.check_started.wait(10))
        return original(tree, *args, **kwargs)
    monkeypatch.setattr(DataTree, "validate", validate)


def test_a_commit_checks_with_the_engine_while_libyang_validates(ctx, tmp_path, monkeypatch):
    async def main():
        engine = ReadingEngine()
        ds = await started(crash_safe_store(ctx, tmp_path, engine))
        validated, at_boot = [], engine.validated
        _validation_waiting_for(engine, monkeypatch, validated)
        await ds.edit("candidate", edit(ctx, top("<name>a</name>")))
        await ds.commit()
        assert validated == [True]
        assert "<name>a</name>" in engine.read_xml[-1]
        tree, thread = engine.checked[-1]
        assert thread != threading.get_ident() and engine.validated == at_boot
        assert "<name>a</name>" in engine.applied[-1][1]
        # the crash-restart copy, printed while the engine applied, is running
        assert (tmp_path / "running.xml").read_bytes() == ds.running.print("explicit")
        # and so for edit-config on running
        engine.check_started.clear()
        await ds.edit("running", edit(ctx, top("<name>b</name>")))
        assert validated == [True, True] and engine.validated == at_boot
        assert (tmp_path / "running.xml").read_bytes() == ds.running.print("explicit")
        assert "<name>b</name>" in text(ds.running)
    run(main())


def test_libyangs_error_wins_over_the_engines_refusal(ctx, tmp_path):
    async def main():
        engine = ReadingEngine()
        ds = await started(store(ctx, tmp_path, engine))
        engine.refuse_in_check = True
        await ds.edit("candidate", edit(ctx, top("<item><name>a</name><ref>zz</ref></item>")))
        with pytest.raises(ValidationError) as caught:
            await ds.commit()
        assert caught.value.items[0].path == T + "/item[name='a']/ref"
        assert engine.checked and text(ds.running) == ""
    run(main())


def test_a_failed_print_of_running_is_done_again_after_the_commit(ctx, tmp_path, monkeypatch):
    from agent.datastore import persistence
    async def main():
        ds = await started(crash_safe_store(ctx, tmp_path, ReadingEngine()))

        original, calls = persistence.print_running, []

        def fails_once(tree):
            calls.append(tree)
            if len(calls) == 1:
                raise MemoryError("no room to print")
            return original(tree)
        monkeypatch.setattr(persistence, "print_running", fails_once)
        await ds.edit("candidate", edit(ctx, top("<name>a</name>")))
        await ds.commit()                  # committed all the same
        assert len(calls) == 2 and "<name>a</name>" in text(ds.running)
        assert "<name>a</name>" in (tmp_path / "running.xml").read_text()
    run(main())
