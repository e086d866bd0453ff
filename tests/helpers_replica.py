"""A private stack with one hot standby, and who reads from which server: shared by the
replica tests (tests/stack/test_db_replica.py, test_replica_start.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from conftest import private_stack

from eomatch.stack import Stack
from eomatch.stack.process import free_port, port_in_use
from eomatch.stack.replica import replica_credentials


def db_port_with_a_free_next() -> int:
    """A free port whose successor is free too (the standby listens on port + 1)."""
    for _ in range(50):
        port = free_port()
        if not port_in_use("127.0.0.1", port + 1):
            return port
    raise RuntimeError("no two consecutive free ports")


@contextmanager
def replica_stack(prefix: str) -> Iterator[Stack]:
    """A stack with ``stack.db.replicas: 1`` on free ports, up for the block, then removed."""
    with private_stack(prefix, db={"port": db_port_with_a_free_next(), "replicas": 1}) as st:
        yield st


def read_sessions(stack: Stack, port: int) -> int:
    """Sessions of the read-only role on the server at ``port`` (seen by the admin)."""
    admin = replica_credentials(stack.settings, 1, "admin")
    with psycopg.connect(admin.dsn.replace(f":{admin.port}/", f":{port}/"), connect_timeout=5) as conn:
        (n,) = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND pid <> pg_backend_pid()",
                            (stack.settings.stack.db.read_user,)).fetchone()  # type: ignore[misc]
    return int(n)
