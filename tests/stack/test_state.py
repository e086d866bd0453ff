"""Generated secrets can follow a flag on a command line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from eomatch.stack import state
from eomatch.stack.keys import add_key
from eomatch.stack.state import StatePaths, new_secret
from eomatch.stack.users import add_user


def test_new_secret_never_starts_with_a_dash() -> None:
    # token_urlsafe starts with '-' once in 64 draws: 5,000 draws all miss it by chance
    # with a probability of about 1e-34
    tokens = [new_secret(32) for _ in range(5000)]
    assert not [t for t in tokens if t.startswith("-")]
    assert len(set(tokens)) == len(tokens)


@pytest.fixture
def dashes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """``token_urlsafe`` answers two values starting with '-' before a usable one."""
    draws = iter(["-first-draw-of-the-key", "-second-draw-of-the-key", "usable-draw-of-the-key"])
    monkeypatch.setattr(state.secrets, "token_urlsafe", lambda nbytes: next(draws))


@pytest.mark.usefixtures("dashes_first")
def test_a_new_key_is_drawn_again_until_it_can_follow_api_key(tmp_path: Path) -> None:
    key = add_key(StatePaths(tmp_path), "ci")
    assert key == "usable-draw-of-the-key"
    parser = argparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--api-key")
    assert parser.parse_args(["--api-key", key]).api_key == key


@pytest.mark.usefixtures("dashes_first")
def test_a_generated_password_is_drawn_again(tmp_path: Path) -> None:
    assert add_user(StatePaths(tmp_path), "reader") == "usable-draw-of-the-key"
