"""The agent's long-lived objects and Python's cyclic garbage collector.

A node of a thousand ports keeps a few hundred thousand long-lived Python objects: the
OVSDB replica, the deployed graphs, their sources. The cyclic collector walks all of them
on every full collection (about 100 ms there), and a commit allocates enough to set one
off nearly every time: a tenth of a second added to a commit, for objects that live on.

So what lives on is moved out of the collector's sight when it settles, after boot and
after each commit (gc.freeze). Reference counting still frees those objects as usual; only
a cycle among them would wait, and a sweep on a timer, off the commits' path, unfreezes,
collects and freezes again.
"""

import asyncio
import gc
import logging
import time

LOG = logging.getLogger(__name__)

SWEEP_INTERVAL = 600.0        # seconds between full collections of the frozen objects


def settle() -> None:
    """What is alive now is long-lived: keep it out of the collections commits trigger."""
    gc.freeze()


def sweep() -> int:
    """A full collection of everything, frozen or not; returns what it freed."""
    started = time.perf_counter()
    gc.unfreeze()
    freed = gc.collect()
    gc.freeze()
    LOG.debug("heap sweep: %d objects freed in %.0f ms", freed,
              (time.perf_counter() - started) * 1000)
    return freed


async def sweep_forever(interval: float = SWEEP_INTERVAL) -> None:
    while True:
        await asyncio.sleep(interval)
        sweep()
