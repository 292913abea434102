"""The event loop the agent runs on: uvloop when it is installed, else asyncio's own.

uvloop lowers the cost of every SSH packet the NETCONF server handles (measured with
bench/netconf_latency: a small get-config round trip 1.33 ms -> 1.17 ms, on par with
yuma123 netconfd behind OpenSSH).
"""

import asyncio
import sys

# How long a thread holding the interpreter runs before one that waits gets it (CPython's
# default is 5 ms). The event loop answers NETCONF while threads of the agent compute
# (the engine's check of a commit, the snapshot of the last one, the IDL, the slot
# filler): at 5 ms, each hand-back of the interpreter to the loop could wait that long,
# and a commit does many (at 500 firewalls, adding one took 236 ms median; at 0.5 ms,
# 164 ms).
SWITCH_INTERVAL = 0.0005

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is in requirements.txt
    uvloop = None


def new_event_loop() -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()


def run(coro):
    """asyncio.run(coro) on the agent's event loop."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coro)
