"""The event path as an agent service: the bus and the replay log, up before every
producer and down after them.

1. start(): the replay log is read from <state>/notifications/replay.log, the bus
   numbers on from its last event, the log listens to the bus, the bus delivers on the
   running loop (what was published before waits until then);
2. stop(): what is still on its way to the loop is delivered, the bus closes, the log is
   written out.
"""

import asyncio

from ..config import AgentConfig
from .bus import Bus
from .replay import ReplayLog


class EventService:
    """The agent's Bus and ReplayLog (see agent/publish/__init__.py)."""

    def __init__(self, config: AgentConfig, bus: Bus | None = None):
        settings = config.data["notifications"]
        self.bus = bus if bus is not None else Bus()
        self.replay = ReplayLog(config.state_dir / "notifications" / "replay.log",
                                settings["replay-max-events"], settings["replay-max-age"])
        self.queue_size = settings["subscriber-queue"]
        self.state_dir = config.state_dir / "notifications"

    async def start(self) -> None:
        await asyncio.to_thread(self.replay.load)
        self.bus.seq = max(self.bus.seq, self.replay.last_seq)
        self.bus.add_listener(self.replay.append)
        self.bus.bind()

    async def stop(self) -> None:
        await asyncio.sleep(0.01)           # what producers published last reaches the loop
        self.bus.close()
        await asyncio.to_thread(self.replay.close)
