"""The journal: whole lines only, whatever a crash or a full disk did to the last one."""

import errno
import json
import os

import pytest

from agent.engine.journal import Journal


def _events(path) -> list:
    return [json.loads(line)["event"] for line in path.read_text().splitlines()]


def test_a_journal_reopened_after_a_crash_in_a_line_writes_whole_lines(tmp_path):
    path = tmp_path / "journal.log"
    first = Journal(path)
    first.begin({"g1"}, ["create-lsi g1"])
    with open(path, "a") as stream:
        stream.write('{"txn": 1, "event": "do')            # the process died here
    again = Journal(path)
    assert again.interrupted() == {"g1"}
    again.begin({"g2"}, ["create-lsi g2"])                  # the first write after a start
    again.end("commit")
    lines = path.read_text().splitlines()
    assert lines[1] == '{"txn": 1, "event": "do'
    assert [json.loads(line)["event"] for line in lines[2:]] == ["begin", "commit"]
    assert again.interrupted() == {"g1"}


def test_a_record_the_disk_refuses_leaves_no_part_of_it(tmp_path, monkeypatch):
    path = tmp_path / "journal.log"
    journal = Journal(path)
    journal.begin({"g1"}, [])
    real_write = os.write

    def half(fd, data):
        real_write(fd, data[:5])
        raise OSError(errno.ENOSPC, "No space left on device")
    with monkeypatch.context() as disk:
        disk.setattr(os, "write", half)
        with pytest.raises(OSError):
            journal.end("commit")
        journal.step("create-lsi g1")                       # best effort: no error
    journal.end("commit")
    assert _events(path) == ["begin", "commit"]
    assert not journal.interrupted()
