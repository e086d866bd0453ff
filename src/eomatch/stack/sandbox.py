"""Run a command as an unprivileged user with the home folders hidden (Linux, as root).

``python -I sandbox.py --user eomatch [--mask /root] [--ro PATH] [--rw PATH] -- ARGV``

The local APIs are started through this launcher when the stack runs as root. It
switches to ``--user`` (no supplementary groups, ``no_new_privs``, umask 027) and
``exec``s ``ARGV``, so the pid the stack recorded becomes the API itself.

Before that, in a private mount namespace, every ``--mask`` folder (``/root``,
``/home``) is replaced by an empty read-only tmpfs, into which only the ``--ro`` /
``--rw`` paths that live under it are bound back (as systemd's ``ProtectHome=tmpfs``
with ``BindReadOnlyPaths=``). The API then cannot read any home folder, yet runs
even when its Python or code sits in one that its user could not otherwise enter
(a pyenv interpreter under ``/root``, a checkout in ``/home/alice``).

Standard library only, run with ``python -I`` by path: nothing of eomatch is imported
while root.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import pwd
import sys

CLONE_NEWNS = 0x00020000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_NO_NEW_PRIVS = 38

_libc = ctypes.CDLL(None, use_errno=True)


class SandboxError(Exception):
    """A one-line reason the command was not started."""


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = [None if v is None else v.encode() for v in (source, target, fstype, data)]
    _check(_libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]), f"mount {target}")


def under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def outermost(paths: list[str]) -> list[str]:
    """The paths that no other path of the list contains (binding those covers all)."""
    result: list[str] = []
    for path in sorted(set(paths), key=len):
        if not any(under(path, kept) for kept in result):
            result.append(path)
    return result


def hide_homes(masks: list[str], ro: list[str], rw: list[str]) -> None:
    """Private mount namespace: each mask an empty tmpfs, the needed paths bound back."""
    masks = [m for m in masks if os.path.isdir(m)]
    if not masks:
        return
    wanted = [(p, False) for p in ro] + [(p, True) for p in rw]
    binds = [(p, writable) for p, writable in wanted if os.path.exists(p) and any(under(p, m) for m in masks)]
    if _libc.unshare(CLONE_NEWNS) != 0:
        if binds:
            raise SandboxError(
                f"cannot make a private mount namespace ({os.strerror(ctypes.get_errno())}) to reach "
                f"{binds[0][0]}; run the stack where the API user can reach its Python and code"
            )
        return  # nothing needed from the homes: run without hiding them
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Open what is to be bound back before the tmpfs hides it; bind through /proc/self/fd.
    keep = set(outermost([p for p, _ in binds]))
    fds = [(p, writable, os.open(p, os.O_PATH | os.O_CLOEXEC)) for p, writable in binds if p in keep]
    for mask in masks:
        _mount("tmpfs", mask, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
    for path, writable, fd in sorted(fds, key=lambda t: len(t[0])):
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(path, mode=0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            open(path, "a").close()
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        if not writable:
            _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.close(fd)
    for mask in masks:
        _mount(None, mask, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "mode=0755")


def become(user: str) -> None:
    """Drop root for good: the user's uid and gid, no other group, no new privileges."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise SandboxError(f"no system user '{user}'") from None
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(no_new_privs)")
    os.setgroups([])
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    os.umask(0o027)
    os.chdir("/")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="eomatch-sandbox")
    parser.add_argument("--user", required=True)
    parser.add_argument("--mask", action="append", default=[])
    parser.add_argument("--ro", action="append", default=[])
    parser.add_argument("--rw", action="append", default=[])
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    try:
        if os.geteuid() != 0:
            raise SandboxError("must be started as root")
        hide_homes(args.mask, args.ro, args.rw)
        become(args.user)
        os.execv(command[0], command)
    except (SandboxError, OSError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr, flush=True)
        return 126
    return 0  # not reached: execv replaced this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
