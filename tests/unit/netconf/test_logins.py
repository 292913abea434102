"""Failed logins per source: logged, answered ever more slowly, then refused for a while;
other sources never affected."""

import logging

from agent.netconf.logins import LoginThrottle


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


def test_delays_double_then_the_source_is_blocked_for_a_while(caplog):
    clock = Clock()
    throttle = LoginThrottle(delay=0.5, max_delay=4, limit=5, block=60, clock=clock)
    caplog.set_level(logging.WARNING)
    delays = [throttle.failed("192.0.2.1", "admin", "publickey") for _ in range(6)]
    assert delays == [0.5, 1, 2, 4, 4, 4]
    assert len([r for r in caplog.records if "192.0.2.1" in r.getMessage()
                and "'admin'" in r.getMessage()]) == 6
    assert throttle.blocked("192.0.2.1")
    assert not throttle.blocked("192.0.2.2")
    assert throttle.failed("192.0.2.2", "x", "password") == 0.5
    clock.now += 59
    assert throttle.blocked("192.0.2.1")
    clock.now += 2
    assert not throttle.blocked("192.0.2.1")
    assert throttle.failed("192.0.2.1", "admin", "publickey") == 0.5


def test_a_successful_login_clears_the_source():
    throttle = LoginThrottle(delay=1, limit=3, clock=Clock())
    for _ in range(2):
        throttle.failed("192.0.2.1", "admin", "password")
    throttle.succeeded("192.0.2.1")
    assert throttle.failed("192.0.2.1", "admin", "password") == 1


def test_limit_zero_never_blocks():
    throttle = LoginThrottle(delay=0, limit=0, clock=Clock())
    for _ in range(100):
        assert throttle.failed("192.0.2.1", "admin", "password") == 0
    assert not throttle.blocked("192.0.2.1")
