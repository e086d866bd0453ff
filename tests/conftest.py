"""Shared fixtures: one real local stack per test session, on free loopback ports.

The stack is the same code ``eomatch-stack up`` runs: a private PostgreSQL
cluster with PostGIS and pgSTAC, both stac-fastapi-pgstac apps under uvicorn,
STAC Browser on nginx, and the nginx proxy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from eomatch.settings import Settings, load_settings

if TYPE_CHECKING:
    from eomatch.stack import Stack

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"


def free_port() -> int:
    from eomatch.stack.process import free_port as _free

    return _free()


def make_state_dir(prefix: str = "eomatch-test-") -> Path:
    """A state folder PostgreSQL (run as ``postgres``) can reach: under /tmp, mode 0755."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(d, 0o755)
    return d


@contextmanager
def state_folder(prefix: str) -> Iterator[Path]:
    """A :func:`make_state_dir` folder for the block, removed after it whatever happens."""
    state_dir = make_state_dir(prefix)
    try:
        yield state_dir
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def stack_settings(state_dir: Path, **stack_overrides: object) -> Settings:
    """Settings of a test stack: every port free, browser build cached in the repo."""
    ports = {name: free_port() for name in ("db", "internal", "external", "browser", "proxy", "tls", "proxy_internal")}
    stack = {
        "state_dir": str(state_dir),
        "db": {"port": ports["db"]},
        # one external app process (the default is 2): test stacks start faster and lighter;
        # tests/stack/test_replicas.py runs two
        "api": {"internal_port": ports["internal"], "external_port": ports["external"], "external_replicas": 1},
        "proxy": {
            "port": ports["proxy"],
            "browser_port": ports["browser"],
            "tls_port": ports["tls"],
            "internal_port": ports["proxy_internal"],
            "external_rate_per_s": 1000,
            "external_burst": 2000,
            "internal_rate_per_s": 1000,
            "internal_burst": 2000,
            # tests read /external/ right after writing: no read cache (it has its own
            # proxies in tests/stack/test_proxy_cache.py)
            "external_cache_s": 0,
        },
        "browser": {"cache_dir": str(REPO / ".cache")},
        # tests read /health right after writing: no reuse of catalogue counts
        # (the cache itself is tested in tests/server/test_health.py)
        "freshness_cache_s": 0.0,
    }
    for key, value in stack_overrides.items():
        if isinstance(value, dict) and isinstance(stack.get(key), dict):
            stack[key].update(value)  # type: ignore[union-attr]
        else:
            stack[key] = value
    return load_settings(overrides={"stack": stack}, environ={})


@contextmanager
def private_stack(prefix: str, *, settings: Callable[[Path], Settings] | None = None, up: bool = True,
                  **stack_overrides: object) -> Iterator[Stack]:
    """A stack of its own in a new state folder (settings from ``settings(state_dir)``, by
    default :func:`stack_settings` with ``stack_overrides``), started unless ``up=False``.
    Whatever happens, even an ``up()`` that fails half-way, every process it started is
    stopped and the folder removed: nothing outlives the block to hold ports or disk."""
    from eomatch.stack import Stack

    with state_folder(prefix) as state_dir, ExitStack() as cleanup:
        stack = Stack(settings(state_dir) if settings else stack_settings(state_dir, **stack_overrides), quiet=True)
        cleanup.callback(stack.down)
        if up:
            stack.up()
        yield stack


@contextmanager
def private_database(prefix: str, **stack_overrides: object) -> Iterator[Settings]:
    """Only PostgreSQL+pgSTAC of a stack of its own (no APIs, no proxy), for tests that
    replace or tune the database; stopped and its folder removed whatever happens."""
    from eomatch.stack.db import Database
    from eomatch.stack.state import StatePaths

    with state_folder(prefix) as state_dir, ExitStack() as cleanup:
        settings = stack_settings(state_dir, **stack_overrides)
        StatePaths(state_dir).ensure()
        db = Database(settings)
        cleanup.callback(db.stop)
        db.start()
        yield settings


@dataclass
class RunningStack:
    settings: Settings
    base_url: str

    @property
    def internal(self) -> str:
        return self.base_url + "/api"

    @property
    def external(self) -> str:
        return self.base_url + "/external"

    @property
    def paths(self):  # type: ignore[no-untyped-def]
        from eomatch.stack.state import StatePaths

        return StatePaths(self.settings.stack.state_dir)

    def credentials(self, role: str):  # type: ignore[no-untyped-def]
        from eomatch.stack.db import stack_credentials

        return stack_credentials(self.settings, role)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--screenshots-dir", default=None,
                     help="where tests/stack/test_screenshots.py writes the guide's pictures "
                          "(default test-artifacts/screenshots; `make screenshots` gives docs/img/screenshots)")


@pytest.fixture(scope="session")
def running_stack() -> Iterator[RunningStack]:
    """The whole stack, started once for the session and stopped at the end."""
    with private_stack("eomatch-test-") as stack:
        yield RunningStack(stack.settings, f"http://127.0.0.1:{stack.settings.stack.proxy.port}")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
