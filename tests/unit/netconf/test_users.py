"""Users: names, salted password hashes, the admin bootstrap, `composer-agent passwd`."""

import io
import stat

import asyncssh
import pytest

from agent import cli
from agent.netconf.users import (UserError, Users, hash_password, valid_name,
                                 verify_password)


def test_names():
    assert valid_name("admin") and valid_name("ops.team_1")
    for bad in ("", "../admin", ".hidden", "-x", "a/b", "x" * 33, "sp ace"):
        assert not valid_name(bad)


def test_password_hashes_are_salted():
    # Not a string base64 can produce ("pw" alone was once found in a random salt).
    password = "my pw!"
    first, second = hash_password(password), hash_password(password)
    assert first != second and password not in first
    assert verify_password(password, first) and not verify_password("nope", first)
    assert not verify_password(password, "garbage")


def test_admin_bootstrap(tmp_path):
    users = Users(tmp_path / "users")
    private = users.ensure_admin()
    assert private == tmp_path / "users" / "admin" / "id_ed25519"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key = asyncssh.read_private_key(str(private))
    keys = users.authorized_keys("admin")
    assert keys is not None
    assert (tmp_path / "users" / "admin" / "authorized_keys").read_text().strip() == \
        key.export_public_key().decode().strip()
    assert users.ensure_admin() is None          # users exist: nothing created
    assert users.authorized_keys("nobody") is None
    with pytest.raises(UserError):
        users.set_password("../x", "pw")


def test_passwd_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse\n"))
    assert cli.main(["passwd", "bob", "--state-dir", str(tmp_path), "--stdin"]) == 0
    stored = (tmp_path / "users" / "bob" / "password").read_text()
    assert verify_password("correct horse", stored)
    assert stat.S_IMODE((tmp_path / "users" / "bob" / "password").stat().st_mode) == 0o600
    assert "password authentication is off" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert cli.main(["--state-dir", str(tmp_path), "passwd", "bob", "--stdin"]) == 1
