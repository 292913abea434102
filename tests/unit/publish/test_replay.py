"""The replay log: kept, bounded, persisted, read back."""

from datetime import timedelta

from agent.publish import Event, ReplayLog, now


def event(n, seq, when=None):
    e = Event("nc-test:event", {"nc-test:event": {"text": str(n)}}, time=when)
    e.seq = seq
    return e


def test_kept_bounded_persisted_and_read_back(tmp_path):
    path = tmp_path / "notifications" / "replay.log"
    log = ReplayLog(path, max_events=3, max_age=3600)
    log.load()
    start = now()
    for n in range(5):
        log.append(event(n, n + 1))
    log.append(Event("composer-domain:domain"))             # not a notification: not kept
    assert [e.body["text"] for e in log.events(start)] == ["2", "3", "4"]
    log.flush()
    log.close()
    again = ReplayLog(path, max_events=3, max_age=3600)
    again.load()
    assert again.created == log.created
    assert [(e.seq, e.body["text"]) for e in again.events(start)] == [(3, "2"), (4, "3"),
                                                                      (5, "4")]
    assert again.last_seq == 5
    again.close()
    lines = path.read_text().splitlines()
    assert len(lines) <= 1 + 2 * 3                  # rewritten once twice too long


def test_old_events_age_out_and_a_damaged_log_starts_anew(tmp_path):
    path = tmp_path / "replay.log"
    log = ReplayLog(path, max_events=10, max_age=60)
    log.load()
    log.append(event("old", 1, now() - timedelta(seconds=120)))
    log.append(event("new", 2))
    assert [e.body["text"] for e in log.events(now() - timedelta(days=1))] == ["new"]
    log.close()
    path.write_text("not json\n")
    fresh = ReplayLog(path)
    fresh.load()
    assert fresh.events(now() - timedelta(days=1)) == []
    assert fresh.created > log.created
    fresh.close()
