"""Many NETCONF subscribers in one process (asyncssh, base:1.0 framing), for the load test:

    python -m tests.e2e.netconf.subscribers PORT KEY COUNT EXPECTED [push|push-graphs]

Opens COUNT sessions, each subscribing to netconf-config-change, prints READY, then reads
until each has EXPECTED of them (or 120 s passed) and prints one JSON line: for each
session, the eventTimes it received, in the order it received them.
With push, each session establishes a YANG-push on-change subscription to the running
datastore's nc-test /top instead (no sync-on-start) and what it records of each
push-change-update is the values its YANG patch gives /top/count, in order. With
push-graphs, the subscription is to the running datastore's service graphs
(composer-sffg) and what it records is the values its edits give a flow rule's priority
or a graph's description.
"""

import asyncio
import json
import sys

import asyncssh
from lxml import etree

BASE = "urn:ietf:params:xml:ns:netconf:base:1.0"
NOTIF = "urn:ietf:params:xml:ns:netconf:notification:1.0"
NCN = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"
SN = "urn:ietf:params:xml:ns:yang:ietf-subscribed-notifications"
YP = "urn:ietf:params:xml:ns:yang:ietf-yang-push"
DS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
TEST = "urn:composer-nc:test:nc-test"
SUBSCRIBE = {
    False: b'<create-subscription xmlns="%s"><filter type="subtree"><netconf-config-change '
           b'xmlns="%s"/></filter></create-subscription>' % (NOTIF.encode(), NCN.encode()),
    True: b'<establish-subscription xmlns="%s" xmlns:yp="%s" xmlns:ds="%s"><yp:datastore>'
          b'ds:running</yp:datastore><yp:datastore-subtree-filter><top xmlns="%s"/>'
          b'</yp:datastore-subtree-filter><yp:on-change><yp:sync-on-start>false'
          b'</yp:sync-on-start></yp:on-change></establish-subscription>'
          % (SN.encode(), YP.encode(), DS.encode(), TEST.encode())}
SFFG = "urn:composer-nc:yang:composer-sffg"
SUBSCRIBE["push-graphs"] = (
    b'<establish-subscription xmlns="%s" xmlns:yp="%s" xmlns:ds="%s"><yp:datastore>'
    b'ds:running</yp:datastore><yp:datastore-subtree-filter><service-graphs xmlns="%s"/>'
    b'</yp:datastore-subtree-filter><yp:on-change><yp:sync-on-start>false'
    b'</yp:sync-on-start></yp:on-change></establish-subscription>'
    % (SN.encode(), YP.encode(), DS.encode(), SFFG.encode()))
RECORDED = {True: ("/nc-test:top/count",),     # the ends of the edits' targets
            "push-graphs": ("/config/priority", "/config/description")}
EOM = b"]]>]]>"


class Subscriber:
    def __init__(self, port, key, push=False):
        self.port, self.key, self.push = port, key, push
        self.times: list = []
        self.buffer = b""

    async def _message(self, reader) -> bytes:
        while EOM not in self.buffer:
            data = await reader.read(65536)
            if not data:
                raise EOFError("closed")
            self.buffer += data
        message, _, self.buffer = self.buffer.partition(EOM)
        return message

    async def open(self):
        self.conn = await asyncssh.connect("127.0.0.1", self.port, username="admin",
                                           client_keys=[self.key], known_hosts=None)
        self.writer, self.reader, _ = await self.conn.open_session(subsystem="netconf",
                                                                   encoding=None)
        await self._message(self.reader)                    # the server's hello
        self.writer.write(b'<hello xmlns="%s"><capabilities><capability>urn:ietf:params:'
                          b'netconf:base:1.0</capability></capabilities></hello>' % BASE.encode()
                          + EOM)
        self.writer.write(b'<rpc xmlns="%s" message-id="1">%s</rpc>'
                          % (BASE.encode(), SUBSCRIBE[self.push]) + EOM)
        reply = etree.fromstring(await self._message(self.reader))
        assert reply.find("{%s}ok" % BASE) is not None or \
            reply.find("{%s}id" % SN) is not None, etree.tostring(reply)

    async def read(self, expected):
        while len(self.times) < expected:
            root = etree.fromstring(await self._message(self.reader))
            if self.push:
                for edit in root.iterfind("{%s}push-change-update//{%s}edit" % (YP, YP)):
                    if edit.findtext("{%s}target" % YP).endswith(RECORDED[self.push]):
                        self.times.append("".join(edit.find("{%s}value" % YP).itertext()))
            elif root.find("{%s}netconf-config-change" % NCN) is not None:
                self.times.append(root.findtext("{%s}eventTime" % NOTIF))
        self.conn.close()


async def main(port, key, count, expected, push=False):
    subscribers = [Subscriber(port, key, push) for _ in range(count)]
    await asyncio.gather(*(s.open() for s in subscribers))
    print("READY", flush=True)
    try:
        await asyncio.wait_for(asyncio.gather(*(s.read(expected) for s in subscribers)), 120)
    except asyncio.TimeoutError:
        pass
    print(json.dumps([s.times for s in subscribers]), flush=True)


if __name__ == "__main__":
    mode = sys.argv[5] if len(sys.argv) > 5 else False
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                     True if mode == "push" else mode))
