"""Read logins (``stack.proxy.read_auth: basic``): an htpasswd-style users file that
nginx's ``auth_basic_user_file`` reads.

Hashes are ``{SSHA}`` (salted SHA-1, base64 of digest+salt): nginx checks them
itself (no libc crypt needed, so the alpine image behaves as Debian's), and Python's
``hashlib`` writes them, so no extra dependency (``passlib``/``bcrypt`` are not
installed; stdlib has no apr1). Measured here: Debian's nginx 1.22 does accept bcrypt
``$2b$`` through libc crypt, but it checks the hash on *every* request, in its event
loop, with no cache: bcrypt cost 12 took 179 ms per check on this machine against
0.3 us for SSHA, and STAC Browser sends dozens of requests per page. Generated
passwords are 32 random URL-safe characters (192 bits), so a fast hash is no weakness;
given ones must have at least 12 characters.
The file is 0640 and, when run as root, group www-data (nginx's worker reads it);
it is rewritten atomically and nginx reloads after a change, like API keys.
"""

from __future__ import annotations

import base64
import grp
import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock

from eomatch.errors import ConfigError, StackError
from eomatch.jsonio import write_bytes_atomic
from eomatch.stack.keys import NAME_RE
from eomatch.stack.state import StatePaths, new_secret

SALT_BYTES = 8
MIN_PASSWORD_CHARS = 12


def ssha_hash(password: str, salt: bytes | None = None) -> str:
    """``{SSHA}base64(sha1(password+salt)+salt)``, the form nginx's auth_basic checks."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _entries(path: Path) -> Iterator[tuple[str, str]]:
    try:
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if not line or line.startswith("#"):
                    continue
                name, sep, hashed = line.partition(":")
                if not sep or not NAME_RE.match(name):
                    raise StackError(f"users file {path} line {n} is not 'name:hash'")
                yield name, hashed
    except FileNotFoundError:
        return


def _write(path: Path, entries: dict[str, str]) -> None:
    text = "".join(f"{name}:{hashed}\n" for name, hashed in sorted(entries.items()))
    write_bytes_atomic(path, text.encode(), mode=0o640)
    if os.geteuid() == 0:
        try:
            os.chown(path, 0, grp.getgrnam("www-data").gr_gid)
        except KeyError:
            raise StackError("group www-data does not exist: nginx's worker could not read the users file") from None


def ensure_users_file(paths: StatePaths) -> None:
    """An (empty) users file before nginx starts with read_auth basic: a missing file
    would answer 500, an empty one refuses every login (401)."""
    paths.conf.mkdir(parents=True, exist_ok=True)
    with FileLock(str(paths.conf / ".users.lock")):
        _write(paths.users_file, dict(_entries(paths.users_file)))


def add_user(paths: StatePaths, name: str, password: str | None = None) -> str:
    """Add ``name`` with ``password`` (or a generated one) and return the password."""
    if not NAME_RE.match(name):
        raise ConfigError(f"invalid user name '{name}': use letters, digits, '.', '_' or '-'")
    if password is None:
        password = new_secret(24)
    elif len(password) < MIN_PASSWORD_CHARS or any(c in password for c in "\r\n"):
        raise ConfigError(f"the password must be at least {MIN_PASSWORD_CHARS} characters on one line")
    paths.conf.mkdir(parents=True, exist_ok=True)
    with FileLock(str(paths.conf / ".users.lock")):
        entries = dict(_entries(paths.users_file))
        if name in entries:
            raise ConfigError(f"a user named '{name}' exists; revoke it first to change the password")
        entries[name] = ssha_hash(password)
        _write(paths.users_file, entries)
    return password


def revoke_user(paths: StatePaths, name: str) -> None:
    paths.conf.mkdir(parents=True, exist_ok=True)
    with FileLock(str(paths.conf / ".users.lock")):
        entries = dict(_entries(paths.users_file))
        if name not in entries:
            raise ConfigError(f"no user named '{name}' (see 'eomatch-stack users list')")
        del entries[name]
        _write(paths.users_file, entries)


def list_users(paths: StatePaths) -> list[str]:
    """Names only; hashes are never printed."""
    return sorted(name for name, _ in _entries(paths.users_file))
