"""Reader sessions for the read-load benchmark, in their own process (so that their work
never holds the interpreter of the process that times the commits):

    python -m bench.read_load.readers PORT KEY COUNT

COUNT NETCONF sessions (asyncssh, base:1.0 framing, replies read but not parsed) each send
<get/> and wait for its reply, in a loop, until stdin closes. Prints "ready" once every
session has had its first reply, then the number of replies at the end.
"""

import asyncio
import sys

import asyncssh

EOM = b"]]>]]>"
HELLO = (b'<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities>'
         b"<capability>urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>"
         + EOM)
GET = (b'<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="%d"><get/></rpc>'
       + EOM)


async def reader(port: int, key: str, first: asyncio.Event, started: list, count: int,
                 done: list, stop: asyncio.Event) -> None:
    async with asyncssh.connect("127.0.0.1", port, username="admin", client_keys=[key],
                                known_hosts=None, agent_path=None) as conn:
        process = await conn.create_process(subsystem="netconf", encoding=None)
        process.stdin.write(HELLO)
        await process.stdout.readuntil(EOM)
        n = 0
        while not stop.is_set():
            n += 1
            process.stdin.write(GET % n)
            reply = await process.stdout.readuntil(EOM)
            if b"<rpc-error>" in reply:
                raise RuntimeError("get failed: %s" % reply[:500])
            done[0] += 1
            if n == 1:
                started.append(1)
                if len(started) == count:
                    first.set()
        process.stdin.write(b'<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" '
                            b'message-id="0"><close-session/></rpc>' + EOM)
        process.stdin.write_eof()


async def main(port: int, key: str, count: int) -> int:
    loop = asyncio.get_running_loop()
    first, stop, started, done = asyncio.Event(), asyncio.Event(), [], [0]
    tasks = [asyncio.create_task(reader(port, key, first, started, count, done, stop))
             for _ in range(count)]
    waiting = asyncio.create_task(first.wait())
    finished, _ = await asyncio.wait([waiting, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for task in finished:
        if task is not waiting:
            task.result()               # a session that ended before its first reply
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)     # until the parent closes stdin
    stop.set()
    await asyncio.gather(*tasks)
    print(done[0], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))))
