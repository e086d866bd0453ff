"""Least privilege on the session stack: the APIs listen on unix sockets only the
proxy can reach, run as an unprivileged user, and hold only their own role's password.

Before: both APIs listened on loopback TCP ports, so any local user could
``curl -X POST http://127.0.0.1:<internal_port>/collections`` past the proxy's key
check (201), and they ran as root with every database password readable.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import RunningStack
from helpers import api_key, bearer, make_collection, unique_id

from eomatch.stack import Stack
from eomatch.stack.api import ApiService
from eomatch.stack.state import api_socket_dir, load_secrets

pytestmark = pytest.mark.stack

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="user switching needs root")

# Run by another local user: connect to the socket and POST a collection without a key.
POST_AS_OTHER_USER = r"""
import json, socket, sys
body = json.dumps({"id": sys.argv[2], "type": "Collection"}).encode()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print(type(exc).__name__, exc.errno)
    sys.exit(3)
s.sendall(b"POST /collections HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
print(s.recv(100).decode(errors="replace").splitlines()[0])
"""


def _apis(running_stack: RunningStack) -> list[ApiService]:
    return Stack(running_stack.settings, quiet=True).apis


def _status_field(pid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name} in /proc/{pid}/status")


def _tcp_listeners(pid: int) -> list[str]:
    """Local addresses of the TCP sockets ``pid`` listens on (its fds vs /proc/net/tcp*)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                found.append(fields[1])
    return found


def test_the_apis_listen_on_their_unix_socket_only(running_stack: RunningStack) -> None:
    for svc in _apis(running_stack):
        pid = svc.pid()
        assert pid is not None
        assert _tcp_listeners(pid) == [], svc.name
        assert svc.socket.is_socket(), svc.socket
        with svc.client() as client:
            assert client.get("/_mgmt/ping").status_code == 200


@root_only
def test_another_local_user_cannot_post_to_an_api_directly(running_stack: RunningStack) -> None:
    for svc in _apis(running_stack):
        cid = unique_id("bypass")
        proc = subprocess.run(
            ["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", POST_AS_OTHER_USER, str(svc.socket), cid],
            capture_output=True, text=True, timeout=30,
        )
        assert proc.returncode == 3, (svc.name, proc.stdout, proc.stderr)
        assert proc.stdout.split() == ["PermissionError", "13"], proc.stdout
        assert httpx.get(f"{running_stack.internal}/collections/{cid}", timeout=10).status_code == 404
    # ... while the proxy still reaches both, and a key still opens writes.
    cid = unique_id("via-proxy")
    r = httpx.post(f"{running_stack.internal}/collections", json=make_collection(cid),
                   headers=bearer(api_key(running_stack)), timeout=30)
    assert r.status_code == 201, r.text
    assert httpx.get(f"{running_stack.external}/collections/{cid}", timeout=10).status_code == 200


@root_only
def test_socket_folder_admits_only_the_api_user_and_the_proxy_workers(running_stack: RunningStack) -> None:
    import grp
    import pwd

    folder = api_socket_dir(running_stack.settings)
    st = folder.stat()
    assert stat.S_IMODE(st.st_mode) == 0o750
    assert pwd.getpwuid(st.st_uid).pw_name == running_stack.settings.stack.api.run_as
    assert grp.getgrgid(st.st_gid).gr_name == "www-data"  # nginx's workers


@root_only
def test_api_processes_run_unprivileged(running_stack: RunningStack) -> None:
    import pwd

    user = pwd.getpwnam(running_stack.settings.stack.api.run_as)
    assert user.pw_uid != 0
    for svc in _apis(running_stack):
        pid = svc.pid()
        assert pid is not None
        uids = [int(v) for v in _status_field(pid, "Uid").split()]
        gids = [int(v) for v in _status_field(pid, "Gid").split()]
        assert uids == [user.pw_uid] * 4, (svc.name, uids)  # real, effective, saved, filesystem
        assert gids == [user.pw_gid] * 4, (svc.name, gids)
        assert _status_field(pid, "Groups") == ""  # no supplementary group (not www-data, not root)
        assert _status_field(pid, "NoNewPrivs") == "1"
        assert svc.status()["user"] == user.pw_name
        # The home folders are an empty tmpfs for it: /root and /home hold nothing of ours.
        mounts = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
        assert any(ln.split()[4] == "/root" and " tmpfs " in ln for ln in mounts), svc.name


@root_only
def test_api_user_cannot_read_the_stack_secrets(running_stack: RunningStack) -> None:
    user = running_stack.settings.stack.api.run_as
    secrets_file = running_stack.paths.secrets_file
    proc = subprocess.run(["runuser", "-u", user, "--", "/usr/bin/python3", "-c",
                           f"open({str(secrets_file)!r}).read()"], capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "PermissionError" in proc.stderr
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600


def test_each_api_holds_only_its_own_role_password(running_stack: RunningStack) -> None:
    secrets = load_secrets(running_stack.paths)
    own = {"internal": "api_password", "external": "read_password"}
    for svc in _apis(running_stack):
        pid = svc.pid()
        assert pid is not None
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        env = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
        assert env["PGPASSWORD"] == secrets[own[svc.audience]]
        others = {v for k, v in secrets.items() if k != own[svc.audience]}
        assert not any(value in "\n".join(env.values()) for value in others), svc.name
