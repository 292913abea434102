"""NETCONF users: <state>/users/<name>/authorized_keys and <state>/users/<name>/password.

There is no anonymous access and no default password. On the first start with no user
at all, the user admin is created with a fresh ed25519 key pair: the private key in
<state>/users/admin/id_ed25519 (mode 0600), its public key in id_ed25519.pub and in
authorized_keys. Passwords are stored only as salted scrypt hashes
(`composer-agent passwd <user>`); password authentication is off unless configured.
"""

import base64
import hashlib
import hmac
import logging
import os
from pathlib import Path

import asyncssh

from ..files import atomic_write

LOG = logging.getLogger(__name__)

ADMIN = "admin"
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")

# scrypt: RFC 7914; n=2^15, r=8, p=1 is the interactive-login strength (~32 MB, ~50 ms)
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 1 << 15, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024


class UserError(Exception):
    """A bad user name or password file."""


def valid_name(name: str) -> bool:
    return 0 < len(name) <= 32 and not name.startswith((".", "-")) and set(name) <= _NAME_CHARS


def hash_password(password: str) -> str:
    """A salted hash: scrypt$N$r$p$salt$hash (base64)."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R,
                            p=_SCRYPT_P, maxmem=_SCRYPT_MAXMEM, dklen=32)
    return "scrypt$%d$%d$%d$%s$%s" % (_SCRYPT_N, _SCRYPT_R, _SCRYPT_P,
                                      base64.b64encode(salt).decode(),
                                      base64.b64encode(digest).decode())


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.strip().split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                                r=int(r), p=int(p), maxmem=_SCRYPT_MAXMEM, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


class Users:
    """The users directory of the state dir."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def home(self, name: str) -> Path:
        if not valid_name(name):
            raise UserError("invalid user name %r (letters, digits, '.', '_', '-'; at most "
                            "32 characters)" % name)
        return self.directory / name

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir() if p.is_dir() and
                      valid_name(p.name))

    def authorized_keys(self, name: str):
        """The user's asyncssh.SSHAuthorizedKeys, or None (no such user, no key)."""
        try:
            path = self.home(name) / "authorized_keys"
            return asyncssh.read_authorized_keys(str(path))
        except (UserError, OSError):
            return None
        except (asyncssh.KeyImportError, ValueError) as exc:
            LOG.warning("cannot read %s: %s", path, exc)
            return None

    def check_password(self, name: str, password: str) -> bool:
        try:
            stored = (self.home(name) / "password").read_text()
        except (UserError, OSError):
            return False
        return verify_password(password, stored)

    def set_password(self, name: str, password: str) -> Path:
        if not password:
            raise UserError("empty password")
        home = self.home(name)
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = home / "password"
        atomic_write(path, (hash_password(password) + "\n").encode(), mode=0o600)
        return path

    def ensure_admin(self) -> Path | None:
        """On a first start (no user at all), create admin with a new ed25519 key pair;
        the private key's path, or None when users exist already."""
        if self.names():
            return None
        return self.create_key(ADMIN)

    def create_key(self, name: str) -> Path:
        """A new ed25519 key pair for the user (made if new), its public key authorized;
        the private key's path."""
        home = self.home(name)
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = asyncssh.generate_private_key("ssh-ed25519", comment="composer-agent %s" % name)
        private = home / "id_ed25519"
        atomic_write(private, key.export_private_key(), mode=0o600)
        public = key.export_public_key()
        atomic_write(home / "id_ed25519.pub", public, mode=0o644)
        atomic_write(home / "authorized_keys", public, mode=0o600)
        LOG.info("created user %s with the key %s", name, private)
        return private

    def admin_key(self) -> Path | None:
        path = self.directory / ADMIN / "id_ed25519"
        return path if path.exists() else None


def host_key(path: Path):
    """The SSH host key at path, generated (ed25519) and saved on first use."""
    path = Path(path)
    if path.exists():
        return asyncssh.read_private_key(str(path))
    key = asyncssh.generate_private_key("ssh-ed25519")
    atomic_write(path, key.export_private_key(), mode=0o600)
    atomic_write(path.with_name(path.name + ".pub"), key.export_public_key(), mode=0o644)
    LOG.info("generated the SSH host key %s", path)
    return key
