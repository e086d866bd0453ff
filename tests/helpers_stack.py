"""A second nginx in front of a running stack's apps, with other proxy settings: shared by
the proxy, cache, auth, read-auth, TLS, link and log tests (tests/stack/), which each
had their own copy of starting one and cleaning up after it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from conftest import free_port, state_folder
from helpers import derive_settings

from eomatch.settings import Settings
from eomatch.stack.proxy import Proxy


@contextmanager
def second_proxy(settings: Settings, prefix: str, *, start: bool = True,
                 stack: dict[str, Any] | Callable[[Path], dict[str, Any]] | None = None,
                 **proxy: Any) -> Iterator[Proxy]:
    """Another nginx, in a state folder of its own (``prefix``) on a free port, in front of
    the apps of ``settings``' stack. ``proxy`` changes its ``stack.proxy`` settings;
    ``stack`` other ``stack`` settings, or a function of the state folder giving them (for
    files made in it first, e.g. a TLS certificate).
    Started unless ``start=False`` (for keys or logins added first); whatever happens,
    stopped and its folder removed, so no nginx outlives the block."""
    with state_folder(prefix) as state, ExitStack() as cleanup:
        changes = (stack(state) if callable(stack) else stack) or {}
        own_proxy = {"port": free_port(), **changes.get("proxy", {}), **proxy}
        instance = Proxy(derive_settings(settings, {**changes, "state_dir": str(state), "proxy": own_proxy}))
        instance.paths.ensure()
        cleanup.callback(instance.stop)
        if start:
            instance.start()
        yield instance


def loopback_url(proxy: Proxy) -> str:
    """The public listener of a proxy started on loopback."""
    return f"http://127.0.0.1:{proxy.settings.stack.proxy.port}"
