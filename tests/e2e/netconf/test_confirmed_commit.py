"""Confirmed commit (RFC 6241 8.4, :confirmed-commit:1.1) through ncclient: timeout,
confirmation, a dropped session, persist/persist-id, cancel-commit."""

import time

import pytest
from ncclient.operations.rpc import RPCError

from tests.e2e.node import eventually

from .conftest import NS, config, connect

NAME = "{%s}top/{%s}name" % (NS, NS)


def running_name(m):
    return m.get_config(source="running").data_ele.findtext(NAME)


def committed(m, name):
    m.edit_config(target="candidate", config=config("<name>%s</name>" % name))


def test_confirm_timeout_rolls_back(nc):
    committed(nc, "stable")
    nc.commit()
    committed(nc, "trial")
    nc.commit(confirmed=True, timeout="1")
    assert running_name(nc) == "trial"
    assert eventually(lambda: running_name(nc) == "stable")
    assert nc.get_config(source="candidate").data_ele.findtext(NAME) == "stable"


def test_confirming_commit_keeps_it(nc):
    committed(nc, "trial")
    nc.commit(confirmed=True, timeout="2")
    nc.commit()
    time.sleep(2.5)                 # past the confirm-timeout: nothing must roll back
    assert running_name(nc) == "trial"


def test_dropped_session_rolls_back(server):
    watcher = connect(server)
    try:
        committer = connect(server)
        committed(committer, "trial")
        committer.commit(confirmed=True, timeout="600")
        assert running_name(watcher) == "trial"
        other = connect(server)
        with pytest.raises(RPCError) as caught:
            other.commit()            # only the same session may confirm
        assert caught.value.tag == "in-use"
        other.close_session()
        committer.close_session()
        assert eventually(lambda: running_name(watcher) is None)
    finally:
        watcher.close_session()


def test_persist_survives_the_session(server):
    first = connect(server)
    committed(first, "persisted")
    first.commit(confirmed=True, timeout="600", persist="token-1")
    first.close_session()
    with connect(server) as second:
        assert running_name(second) == "persisted"
        with pytest.raises(RPCError) as caught:
            second.commit(persist_id="wrong")
        assert caught.value.tag == "invalid-value"
        second.commit(persist_id="token-1")
        assert running_name(second) == "persisted"
        committed(second, "again")
        second.commit(confirmed=True, persist="token-2")
        second.cancel_commit(persist_id="token-2")
        assert running_name(second) == "persisted"
        with pytest.raises(RPCError):
            second.cancel_commit()
