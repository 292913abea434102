"""A NETCONF server (datastores + engine, no vSwitch) running in this process on a
background event loop thread, on 127.0.0.1 and a port the OS picks, and clients for it:
ncclient managers and raw SSH channels for the robustness tests."""

import asyncio
import itertools
import socket
import threading
from pathlib import Path

import paramiko
import pytest
from ncclient import manager
from ncclient.devices.default import DefaultDeviceHandler
import ncclient.transport.session

from agent import eventloop
from agent.config import load
from agent.netconf import NetconfService
from tests.engines import FailingEngine
from tests.resources import PREFIX

# ncclient polls its socket every TICK seconds (0.1 by default)
ncclient.transport.session.TICK = 0.001

TEST_YANG = Path(__file__).resolve().parents[2] / "yang"
NS = "urn:composer-nc:test:nc-test"
BASE = "urn:ietf:params:xml:ns:netconf:base:1.0"
_count = itertools.count(1)


class ServerThread:
    """NetconfService on its own event loop in a thread."""

    def __init__(self, state_dir: Path, engine=None, notifications=None, nacm=False,
                 **netconf):
        settings = {"address": "127.0.0.1", "port": 0, "extra-yang-dirs": [str(TEST_YANG)],
                    "extra-yang-modules": ["nc-test", "nc-parts"]}
        if not nacm:
            # The protocol tests start from empty datastores with an unrestricted admin
            # (the recovery user); nacm=True: the shipped first start (test_nacm.py).
            state_dir.mkdir(parents=True, exist_ok=True)
            startup = state_dir / "startup.xml"
            if not startup.exists():
                startup.write_text("")
            settings["nacm-recovery-user"] = "admin"
        settings.update(netconf)
        self.config = load(None, {"state": {"dir": str(state_dir)}, "netconf": settings,
                                  "notifications": notifications or {}})
        self.engine = engine if engine is not None else FailingEngine()
        self.service = NetconfService(self.config, self.engine)
        self.loop = eventloop.new_event_loop()      # the agent's loop (uvloop)
        self.thread = threading.Thread(target=self.loop.run_forever, name="%s-netconf" % PREFIX,
                                       daemon=True)

    def start(self):
        self.thread.start()
        self.call(self.service.start())
        return self

    def call(self, coro, timeout=60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self):
        try:
            self.call(self.service.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    @property
    def port(self) -> int:
        return self.service.port

    @property
    def key(self) -> str:
        return str(self.service.users.admin_key())

    @property
    def datastores(self):
        return self.service.datastores

    def sessions(self):
        return dict(self.service.server.sessions)


@pytest.fixture
def server(session_tmp):
    srv = ServerThread(session_tmp / ("%s-srv%d" % (PREFIX, next(_count)))).start()
    yield srv
    srv.stop()


class Base10Handler(DefaultDeviceHandler):
    """A client that only speaks base:1.0 (end-of-message framing)."""

    def get_capabilities(self):
        return [c for c in super().get_capabilities() if "base:1.1" not in c]


def connect(srv, base10=False, **kw):
    params = dict(host="127.0.0.1", port=srv.port, username="admin", key_filename=srv.key,
                  hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=30)
    if base10:
        params["device_params"] = {"handler": Base10Handler}
    params.update(kw)
    return manager.connect(**params)


@pytest.fixture
def nc(server):
    m = connect(server)
    yield m
    if m.connected:
        m.close_session()


class RawSession:
    """The netconf subsystem over paramiko, bytes in and out (robustness tests)."""

    def __init__(self, srv, hello=True, base11=True, window_size=None):
        self.client = paramiko.SSHClient()
        self.client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        self.client.connect("127.0.0.1", port=srv.port, username="admin",
                            key_filename=srv.key, look_for_keys=False, allow_agent=False,
                            timeout=30)
        self.channel = self.client.get_transport().open_session(window_size=window_size)
        self.channel.settimeout(30)
        self.channel.invoke_subsystem("netconf")
        self.buffer = b""
        self.server_hello = self.read_eom()
        if hello:
            caps = "<capability>urn:ietf:params:netconf:base:1.0</capability>"
            if base11:
                caps += "<capability>urn:ietf:params:netconf:base:1.1</capability>"
            self.send(b'<hello xmlns="%s"><capabilities>%s</capabilities></hello>]]>]]>'
                      % (BASE.encode(), caps.encode()))

    def send(self, data: bytes):
        self.channel.sendall(data)

    def _more(self) -> bool:
        data = self.channel.recv(65536)
        if not data:
            return False
        self.buffer += data
        return True

    def read_eom(self) -> bytes:
        while b"]]>]]>" not in self.buffer:
            if not self._more():
                raise EOFError("closed")
        message, _, self.buffer = self.buffer.partition(b"]]>]]>")
        return message

    def read_chunked(self) -> bytes:
        chunks = []
        while True:
            while b"\n" not in self.buffer[2:] or len(self.buffer) < 4:
                if not self._more():
                    raise EOFError("closed")
            assert self.buffer.startswith(b"\n#"), self.buffer[:20]
            if self.buffer.startswith(b"\n##\n"):
                self.buffer = self.buffer[4:]
                return b"".join(chunks)
            header, _, rest = self.buffer[2:].partition(b"\n")
            size = int(header)
            while len(rest) < size:
                if not self._more():
                    raise EOFError("closed")
                header, _, rest = self.buffer[2:].partition(b"\n")
            chunks.append(rest[:size])
            self.buffer = rest[size:]

    def rpc(self, body: str, message_id="1") -> bytes:
        message = ('<rpc xmlns="%s" message-id="%s">%s</rpc>' % (BASE, message_id, body)).encode()
        self.send(b"\n#%d\n%s\n##\n" % (len(message), message))
        return self.read_chunked()

    def closed(self, timeout: float = 10.0) -> bool:
        """Whether the server closes the channel within timeout seconds (reads until EOF;
        what it sends before is kept in buffer). False when it is still open then."""
        self.channel.settimeout(timeout)
        try:
            while self._more():
                pass
        except socket.timeout:
            return False
        except OSError:                     # reset: closed too
            return True
        finally:
            self.channel.settimeout(30)
        return True

    def close(self):
        self.client.close()


@pytest.fixture
def raw(server):
    sessions = []

    def make(**kw):
        s = RawSession(server, **kw)
        sessions.append(s)
        return s
    yield make
    for s in sessions:
        s.close()


def config(body: str, attrs: str = "") -> str:
    """An edit-config <config> around the test module's top container."""
    return ('<config xmlns="%s"><top xmlns="%s" xmlns:nc="%s"%s>%s</top></config>'
            % (BASE, NS, BASE, attrs, body))
