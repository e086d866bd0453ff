"""The test helper every private stack goes through (tests/conftest.py ``private_stack``):
an ``up()`` that fails half-way must leave no process and no state folder behind, or the
next tests find their ports held and /tmp filling up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import private_stack, stack_settings

from eomatch.errors import StackError
from eomatch.settings import Settings
from eomatch.stack.process import port_in_use, wait_until

pytestmark = pytest.mark.stack


@pytest.mark.skipif(os.geteuid() != 0, reason="stack.api.run_as is only checked when 'up' runs as root")
def test_an_up_failing_after_the_database_started_leaves_nothing_running_or_on_disk() -> None:
    made: list[Settings] = []

    def settings(state_dir: Path) -> Settings:
        # 'up' starts PostgreSQL, then refuses to run the APIs as root: a failure half-way
        made.append(stack_settings(state_dir, api={"run_as": "root"}))
        return made[0]

    with pytest.raises(StackError, match="is root"), private_stack("eomatch-private-fail-", settings=settings):
        pytest.fail("the block ran although 'up' failed")
    db = made[0].stack.db
    assert not made[0].stack.state_dir.exists()
    assert wait_until(lambda: not port_in_use(db.host, db.port), 10, 0.2), "the database 'up' started still listens"
