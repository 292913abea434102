"""The agent keeps its long-lived objects out of the collector's way, and still collects
cycles among them on a sweep."""

import gc
import weakref

from agent import heap


class Node:
    def __init__(self):
        self.other = None


def test_settle_freezes_and_sweep_collects_frozen_cycles():
    gc.collect()
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        heap.settle()
        assert gc.get_freeze_count() > 0
        del a, b
        gc.collect()                    # a commit's collections do not see frozen objects
        assert gone() is not None
        heap.sweep()
        assert gone() is None
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
