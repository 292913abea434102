"""Process-wide tuning of the agent's daemons, in one place.

Each knob changes the whole interpreter or a library's internals, for a measured gain;
none is needed for correctness. Only the daemons' entry points turn them on (enable():
`composer-agent`, `python -m agent.netconf`); the engine, the datastores and the NETCONF
server are plain code that works the same without them, and tests run without them unless
they opt in.

1. The thread switch interval, 0.5 ms instead of CPython's 5 ms. The event loop answers
   NETCONF while the agent's threads compute (the engine's check of a commit, the snapshot
   of the last one, the OVSDB IDL, the slot filler); at 5 ms each hand-back of the
   interpreter to the loop could wait that long, and a commit waits for many. Adding one
   firewall to a graph of 500: 236 ms median at 5 ms, 164-179 ms at 0.5 ms.
2. No empty SSH_MSG_IGNORE before every packet the server sends. asyncssh sends one as a
   countermeasure for CBC ciphers, which the server never negotiates (ENCRYPTION_ALGS in
   agent/netconf/server.py); it doubles the packets a client processes for each reply.
   asyncssh has no option for it: its send_packet is wrapped (CBC keeps the countermeasure).
   A small get-config round trip (asyncssh client, median of 1,000, five runs each way,
   alternating): 0.65 ms without the empty packets, 0.79 ms with them.
3. The heap. A node of a thousand ports keeps a few hundred thousand long-lived Python
   objects (the OVSDB replica, the deployed graphs, their sources); the cyclic collector
   walks all of them on every full collection (about 100 ms there), and a commit allocates
   enough to set one off nearly every time: a tenth of a second added to a commit, for
   objects that live on. So what lives on is frozen out of the collector's sight when the
   engine has settled (after recovery and after each commit: settle(), which the daemon
   hands the engine); reference counting still frees those objects, only a cycle among
   them waits for the sweep that a timer runs off the commits' path (sweep_forever()).
"""

import asyncio
import gc
import logging
import sys
import time

import asyncssh
from asyncssh.constants import MSG_IGNORE

LOG = logging.getLogger(__name__)

SWITCH_INTERVAL = 0.0005      # seconds (CPython's default: 0.005)
SWEEP_INTERVAL = 600.0        # seconds between full collections of the frozen objects
_EMPTY_STRING = b"\0\0\0\0"   # an SSH string of length 0

_enabled = False


def enable() -> None:
    """Turn every knob on, for this process (a daemon, before it serves)."""
    global _enabled
    sys.setswitchinterval(SWITCH_INTERVAL)
    skip_empty_ignore_packets()
    _enabled = True


def enabled() -> bool:
    return _enabled


# --- 2. asyncssh ---

def skip_empty_ignore_packets() -> None:
    """asyncssh's server connections send no empty SSH_MSG_IGNORE unless the cipher
    towards the client is CBC. Idempotent."""
    connection = asyncssh.SSHServerConnection
    if getattr(connection.send_packet, "skips_empty_ignore", False):
        return
    send_packet = connection.send_packet

    def send_packet_without_empty_ignore(self, pkttype, *args, handler=None):
        if pkttype == MSG_IGNORE and args == (_EMPTY_STRING,) and \
                not self._enc_alg_sc.endswith(b"-cbc"):
            return
        send_packet(self, pkttype, *args, handler=handler)
    send_packet_without_empty_ignore.skips_empty_ignore = True
    connection.send_packet = send_packet_without_empty_ignore


# --- 3. the heap ---

def settle() -> None:
    """What is alive now is long-lived: keep it out of the collections commits trigger
    (nothing unless enable() was called)."""
    if _enabled:
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
    """Sweep every interval seconds while the heap is frozen (returns at once otherwise)."""
    while _enabled:
        await asyncio.sleep(interval)
        sweep()
