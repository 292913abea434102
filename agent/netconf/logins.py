"""Failed logins, per source address: logged, slowed down, then refused for a while.

1. Every rejected credential (a key that is not authorized, a wrong password) is
   logged with the user name and the source address, and counted for that source.
2. The answer to a rejected credential waits delay * 2**(n-1) seconds (n: failures of
   the source so far, capped at max_delay): guessing within one connection gets slow.
3. A source with `limit` failures has its new connections closed before they can
   authenticate, until `block` seconds have passed since its last failure: guessing
   over many parallel connections stops too.
4. A successful login forgets the source's failures; so does `block` seconds without any.
Other sources are never affected.
"""

import logging
import time
from dataclasses import dataclass, field

LOG = logging.getLogger(__name__)


@dataclass
class _Source:
    failures: int = 0
    last: float = field(default_factory=time.monotonic)


class LoginThrottle:
    """The failed-login record of a server."""

    def __init__(self, delay: float = 1.0, max_delay: float = 16.0, limit: int = 10,
                 block: float = 300.0, clock=time.monotonic):
        self.delay = delay
        self.max_delay = max_delay
        self.limit = limit
        self.block = block
        self._clock = clock
        self._sources: dict[str, _Source] = {}

    def _current(self, source: str) -> _Source | None:
        record = self._sources.get(source)
        if record is not None and self._clock() - record.last > self.block:
            del self._sources[source]
            return None
        return record

    def failed(self, source: str, user: str, method: str) -> float:
        """Record a rejected credential; the seconds to wait before saying so."""
        record = self._current(source)
        if record is None:
            record = self._sources[source] = _Source()
        record.failures += 1
        record.last = self._clock()
        LOG.warning("authentication failed: user %r from %s (%s), failure %d from there",
                    user, source, method, record.failures)
        if len(self._sources) > 10000:        # bounded memory under a spread attack
            self._forget_old()
        return min(self.max_delay, self.delay * 2 ** (record.failures - 1))

    def succeeded(self, source: str) -> None:
        self._sources.pop(source, None)

    def blocked(self, source: str) -> bool:
        """Whether new connections from source are refused now."""
        record = self._current(source)
        return record is not None and self.limit > 0 and record.failures >= self.limit

    def _forget_old(self) -> None:
        now = self._clock()
        for source in [s for s, r in self._sources.items() if now - r.last > self.block]:
            del self._sources[source]
