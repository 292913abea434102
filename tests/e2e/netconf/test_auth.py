"""SSH access: public keys per user, optional salted passwords, no anonymous access,
the netconf subsystem only, the admin bootstrap and a persistent host key."""

import stat

import asyncssh
import paramiko
import pytest
from ncclient.transport.errors import AuthenticationError, SSHError

from agent.netconf.users import Users

from .conftest import ServerThread, connect


def test_admin_bootstrap_files(server):
    key = server.service.users.admin_key()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (key.parent / "authorized_keys").read_text().startswith("ssh-ed25519 ")
    assert not (key.parent / "password").exists()


def test_unknown_key_and_unknown_user_are_refused(server, tmp_path):
    stranger = tmp_path / "stranger"
    stranger.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    with pytest.raises((AuthenticationError, SSHError)):
        connect(server, key_filename=str(stranger))
    with pytest.raises((AuthenticationError, SSHError)):
        connect(server, username="nobody")
    with pytest.raises((AuthenticationError, SSHError)):
        connect(server, username="../admin")


def test_no_anonymous_access(server):
    transport = paramiko.Transport(("127.0.0.1", server.port))
    try:
        transport.start_client(timeout=30)
        with pytest.raises(paramiko.BadAuthenticationType) as caught:
            transport.auth_none("admin")
        assert caught.value.allowed_types == ["publickey"]
    finally:
        transport.close()


def test_passwords_only_when_enabled(session_tmp):
    state = session_tmp / "nc-auth-pw"
    Users(state / "users").ensure_admin()
    Users(state / "users").set_password("alice", "s3cret word")
    assert "s3cret" not in (state / "users" / "alice" / "password").read_text()
    off = ServerThread(state).start()
    try:
        with pytest.raises((AuthenticationError, SSHError)):
            connect(off, username="alice", password="s3cret word", key_filename=None)
    finally:
        off.stop()
    on = ServerThread(state, **{"password-authentication": True}).start()
    try:
        with connect(on, username="alice", password="s3cret word", key_filename=None) as m:
            assert m.session_id is not None
        with pytest.raises((AuthenticationError, SSHError)):
            connect(on, username="alice", password="wrong", key_filename=None)
    finally:
        on.stop()


def test_only_the_netconf_subsystem(server):
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=server.port, username="admin", key_filename=server.key,
                   look_for_keys=False, allow_agent=False)
    try:
        _, stdout, _ = client.exec_command("id", timeout=30)
        assert stdout.channel.recv_exit_status() != 0
        assert b"uid=" not in stdout.read()
        channel = client.get_transport().open_session()
        try:
            channel.invoke_subsystem("sftp")
            assert channel.recv_exit_status() != 0
        except paramiko.SSHException:
            pass                          # refused outright
    finally:
        client.close()


def test_host_key_persists(session_tmp):
    state = session_tmp / "nc-auth-hostkey"
    fingerprints = []
    for _ in range(2):
        srv = ServerThread(state).start()
        try:
            transport = paramiko.Transport(("127.0.0.1", srv.port))
            transport.start_client(timeout=30)
            fingerprints.append(transport.get_remote_server_key().get_fingerprint())
            transport.close()
        finally:
            srv.stop()
    assert fingerprints[0] == fingerprints[1]
    key = state / "ssh_host_ed25519_key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_the_ciphers_offered(server):
    """AES-GCM (and AES-CTR for paramiko, hence ncclient), not chacha20-poly1305, which
    clients pick first and which costs asyncssh three times the CPU per packet (each
    notification to each subscriber is one)."""
    import asyncio

    async def negotiated(algs):
        chosen = {"encryption_algs": algs} if algs else {}
        async with asyncssh.connect(
                "127.0.0.1", server.port, username="admin", known_hosts=None,
                agent_path=None, client_keys=[str(server.service.users.admin_key())],
                **chosen) as conn:
            return conn.get_extra_info("send_cipher")
    assert asyncio.run(negotiated(None)) == "aes256-gcm@openssh.com"   # asyncssh's order
    # no common cipher: the client or the server hangs up first (either may say it)
    with pytest.raises(asyncssh.DisconnectError):
        asyncio.run(negotiated(["chacha20-poly1305@openssh.com"]))
    with connect(server) as m:                                       # paramiko: CTR
        assert m._session._transport.local_cipher.endswith("-ctr")
