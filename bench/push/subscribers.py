"""YANG-push subscribers for the push benchmark, in their own process (their reading never
holds the interpreter of the process that times the commits):

    python -m bench.push.subscribers PORT KEY COUNT SUBTREE

COUNT NETCONF sessions (asyncssh, base:1.0 framing) each establish an on-change
subscription (operational datastore, the subtree filter SUBTREE, no sync-on-start, no
dampening). Prints "ready" once all are established, then, for each push-change-update
a session receives, one line "SESSION MONOTONIC-TIME" (CLOCK_MONOTONIC is the same clock
in every process), until stdin closes.
"""

import asyncio
import sys
import time

import asyncssh

EOM = b"]]>]]>"
HELLO = (b'<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities>'
         b"<capability>urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>"
         + EOM)
ESTABLISH = (
    '<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="1">'
    '<establish-subscription xmlns="urn:ietf:params:xml:ns:yang:ietf-subscribed-notifications"'
    ' xmlns:yp="urn:ietf:params:xml:ns:yang:ietf-yang-push"'
    ' xmlns:ds="urn:ietf:params:xml:ns:yang:ietf-datastores">'
    '<yp:datastore>ds:operational</yp:datastore>'
    '<yp:datastore-subtree-filter>%s</yp:datastore-subtree-filter>'
    '<yp:on-change><yp:sync-on-start>false</yp:sync-on-start></yp:on-change>'
    '</establish-subscription></rpc>')


CONNECTING = 16         # at once (the agent takes netconf.max-unauthenticated)


async def subscriber(index: int, port: int, key: str, subtree: str, ready: list,
                     count: int, all_ready: asyncio.Event, stop: asyncio.Event,
                     connecting: asyncio.Semaphore) -> None:
    async with connecting:
        conn = await asyncssh.connect("127.0.0.1", port, username="admin", client_keys=[key],
                                      known_hosts=None, agent_path=None)
    async with conn:
        process = await conn.create_process(subsystem="netconf", encoding=None)
        process.stdin.write(HELLO)
        await process.stdout.readuntil(EOM)
        process.stdin.write((ESTABLISH % subtree).encode() + EOM)
        reply = await process.stdout.readuntil(EOM)
        if b"<rpc-error>" in reply:
            raise RuntimeError("establish-subscription failed: %s" % reply[:500])
        ready.append(index)
        if len(ready) == count:
            all_ready.set()
        reading = asyncio.ensure_future(process.stdout.readuntil(EOM))
        stopping = asyncio.ensure_future(stop.wait())
        while True:
            done, _ = await asyncio.wait([reading, stopping],
                                         return_when=asyncio.FIRST_COMPLETED)
            if reading in done:
                message = reading.result()
                if b"push-change-update" in message:
                    print("%d %.6f" % (index, time.monotonic()), flush=True)
                reading = asyncio.ensure_future(process.stdout.readuntil(EOM))
            if stopping in done:
                reading.cancel()
                break


async def main(port: int, key: str, count: int, subtree: str) -> int:
    loop = asyncio.get_running_loop()
    all_ready, stop, ready = asyncio.Event(), asyncio.Event(), []
    connecting = asyncio.Semaphore(CONNECTING)
    tasks = [asyncio.create_task(subscriber(i, port, key, subtree, ready, count, all_ready,
                                            stop, connecting)) for i in range(count)]
    waiting = asyncio.create_task(all_ready.wait())
    finished, _ = await asyncio.wait([waiting, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for task in finished:
        if task is not waiting:
            task.result()
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4])))
