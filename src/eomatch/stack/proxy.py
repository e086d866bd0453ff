"""The proxy service: nginx in front of both APIs and the browser.

Two listeners: the public one (``stack.proxy.port``, and ``tls_port`` with a
certificate) and the internal one (``stack.proxy.internal_port``) that always
serves ``/api/``; see docs/operations.md.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from eomatch.errors import StackError
from eomatch.settings import Settings
from eomatch.stack.keys import ensure_keys_conf
from eomatch.stack.nginx import NginxInstance
from eomatch.stack.process import check_port_free
from eomatch.stack.render import render_proxy_conf, worker_user


class Proxy(NginxInstance):
    name = "proxy"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, "proxy")

    @property
    def port(self) -> int:
        return self.settings.stack.proxy.port

    def health_url(self) -> str:
        return f"http://{self.settings.stack.proxy.host}:{self.port}/_proxy/ping"

    @property
    def internal_url(self) -> str:
        """Base URL of the internal listener (``/api/`` always answers there)."""
        px = self.settings.stack.proxy
        return f"http://{px.internal_host}:{px.internal_port}"

    def start(self) -> None:
        if self.pid() is None:
            px = self.settings.stack.proxy
            check_port_free(px.internal_host, px.internal_port, self.name, "stack.proxy.internal_port")
        super().start()

    def prepare(self) -> str:
        ensure_keys_conf(self.paths)
        if self.settings.stack.proxy.read_auth == "basic":
            from eomatch.stack.users import ensure_users_file

            ensure_users_file(self.paths)
        root = self.settings.stack.proxy.assets_root
        if root is not None:
            check_assets_root(root, worker_user())
        return render_proxy_conf(self.settings, mode="local")


def check_assets_root(root: Path, user: str | None) -> None:
    """One line naming the problem when nginx could not serve ``root``: missing, not a
    folder, or closed to nginx's worker ``user`` (www-data when the stack runs as root)."""
    if not root.is_dir():
        raise StackError(f"stack.proxy.assets_root {root} is not a folder")
    if user is None:
        if not os.access(root, os.R_OK | os.X_OK):
            raise StackError(f"stack.proxy.assets_root {root} is not readable by this user")
        return
    pw = pwd.getpwnam(user)
    gids = set(os.getgrouplist(user, pw.pw_gid))
    real = root.resolve()
    for folder in (*reversed(real.parents), real):
        st = folder.stat()
        need = stat.S_IXOTH | (stat.S_IROTH if folder == real else 0)
        if st.st_uid == pw.pw_uid:
            ok = st.st_mode & (need << 6) == need << 6
        elif st.st_gid in gids:
            ok = st.st_mode & (need << 3) == need << 3
        else:
            ok = st.st_mode & need == need
        if not ok:
            raise StackError(
                f"stack.proxy.assets_root {root}: nginx's worker user {user} cannot "
                f"{'read' if folder == real else 'enter'} {folder} (mode {stat.S_IMODE(st.st_mode):04o}); "
                f"chmod o+rx, or give it to group {user}"
            )
