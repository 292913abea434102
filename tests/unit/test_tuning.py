"""The daemon's process-wide knobs: off unless a daemon turns them on, and each does what
it says when on."""

import gc
import sys
import weakref

import asyncssh
from asyncssh.constants import MSG_CHANNEL_DATA, MSG_IGNORE

from agent import tuning


class Node:
    def __init__(self):
        self.other = None


def test_a_process_that_is_not_a_daemon_runs_untuned():
    """The tests themselves: the engine and the server run here without any knob."""
    assert not tuning.enabled()
    assert sys.getswitchinterval() == 0.005
    assert not getattr(asyncssh.SSHServerConnection.send_packet, "skips_empty_ignore", False)


def test_the_engine_leaves_the_heap_alone_unless_tuned(tmp_path, monkeypatch):
    from tests.unit.engine.test_engine import TEMPLATES, chain, make_node, running
    import agent.engine.engine as engine_module
    monkeypatch.setattr(engine_module, "templates_from_tree", lambda root: TEMPLATES)
    gc.unfreeze()
    node = make_node(tmp_path, monkeypatch)
    node.engine.on_settled = tuning.settle         # as the daemon wires it
    node.engine.apply(None, running(chain()))
    assert gc.get_freeze_count() == 0
    monkeypatch.setattr(tuning, "_enabled", True)
    try:
        node.engine.apply(None, running())
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_settle_freezes_and_sweep_collects_frozen_cycles(monkeypatch):
    monkeypatch.setattr(tuning, "_enabled", True)
    gc.collect()
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        tuning.settle()
        assert gc.get_freeze_count() > 0
        del a, b
        gc.collect()                    # a commit's collections do not see frozen objects
        assert gone() is not None
        tuning.sweep()
        assert gone() is None
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


class _Connection:
    """What the wrapped send_packet reads of a connection: its cipher to the client."""

    def __init__(self, cipher: bytes):
        self._enc_alg_sc = cipher


def test_no_empty_ignore_packet_unless_the_cipher_is_cbc(monkeypatch):
    sent = []
    monkeypatch.setattr(asyncssh.SSHServerConnection, "send_packet",
                        lambda self, pkttype, *args, handler=None: sent.append(pkttype))
    tuning.skip_empty_ignore_packets()
    tuning.skip_empty_ignore_packets()           # idempotent: wrapped once
    send = asyncssh.SSHServerConnection.send_packet
    empty = b"\0\0\0\0"
    send(_Connection(b"chacha20-poly1305@openssh.com"), MSG_IGNORE, empty)
    send(_Connection(b"aes256-ctr"), MSG_CHANNEL_DATA, b"data")
    send(_Connection(b"aes256-ctr"), MSG_IGNORE, b"\0\0\0\1x")     # not empty: sent
    send(_Connection(b"aes128-cbc"), MSG_IGNORE, empty)           # CBC: the countermeasure
    assert sent == [MSG_CHANNEL_DATA, MSG_IGNORE, MSG_IGNORE]
