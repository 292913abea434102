"""The event bus: order, threads, bounded queues, overflow."""

import asyncio
import threading

import pytest

from agent.publish import Bus, Closed, Event, Overflowed


def event(n):
    return Event("nc-test:event", {"nc-test:event": {"text": str(n)}})


def texts(events):
    return [e.body["text"] for e in events]


def test_events_from_threads_arrive_in_publish_order_numbered():
    async def main():
        bus = Bus()
        bus.publish(event("early"))                 # before bind: waits, in order
        bus.bind()
        seen = []
        bus.add_listener(seen.append)
        subscription = bus.subscribe("s", size=1000)
        threads = [threading.Thread(target=lambda k=k: [bus.publish(event("%d-%d" % (k, i)))
                                                        for i in range(100)])
                   for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = [await subscription.get() for _ in range(401)]
        assert [e.seq for e in got] == list(range(1, 402))
        assert got[0].body["text"] == "early"
        assert [e.seq for e in seen] == [e.seq for e in got]
        for k in range(4):                          # each producer's own order kept
            mine = [t for t in texts(got) if t.startswith("%d-" % k)]
            assert mine == ["%d-%d" % (k, i) for i in range(100)]
    asyncio.run(main())


def test_a_full_queue_overflows_that_subscriber_only():
    async def main():
        bus = Bus()
        bus.bind()
        told = []
        slow = bus.subscribe("slow", size=2, on_overflow=told.append)
        fast = bus.subscribe("fast", size=100)
        picky = bus.subscribe("picky", size=1, accept=lambda e: e.body["text"] == "3")
        for n in range(5):
            bus.publish(event(n))
        await asyncio.sleep(0.01)
        assert told == [slow] and slow.overflowed and slow.lost == 3
        assert bus.overflows == 1
        assert texts([await slow.get(), await slow.get()]) == ["0", "1"]
        with pytest.raises(Overflowed):
            await slow.get()
        assert texts([await fast.get() for _ in range(5)]) == ["0", "1", "2", "3", "4"]
        assert texts([await picky.get()]) == ["3"] and not picky.overflowed
        waiting = asyncio.ensure_future(fast.get())
        await asyncio.sleep(0)
        bus.close()
        with pytest.raises(Closed):
            await waiting
    asyncio.run(main())


def test_content_made_once_on_first_use():
    made = []

    def content():
        made.append(1)
        return {"nc-test:event": {"text": "lazy"}}
    e = Event("nc-test:event", content)
    assert e.is_notification and made == []
    assert e.body == {"text": "lazy"} and e.content is e.content and made == [1]


def test_wait_ends_with_an_event_a_poke_or_the_close():
    """Subscription.wait(): a consumer that takes what is queued itself (the YANG-push
    change feed) waits for the next event, or for poke(), or for close()."""
    async def main():
        bus = Bus()
        bus.bind()
        live = bus.subscribe("feed")
        waiting = asyncio.ensure_future(live.wait())
        await asyncio.sleep(0)
        assert not waiting.done()
        bus.publish(Event("a", {}))
        await asyncio.wait_for(waiting, 1)
        assert live.get_nowait().kind == "a"
        waiting = asyncio.ensure_future(live.wait())
        await asyncio.sleep(0)
        live.poke()
        await asyncio.wait_for(waiting, 1)
        assert live.get_nowait() is None
        waiting = asyncio.ensure_future(live.wait())
        await asyncio.sleep(0)
        live.close()
        await asyncio.wait_for(waiting, 1)
        await live.wait()                       # closed: at once
    asyncio.run(main())
