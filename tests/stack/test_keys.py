"""Named API keys: ``eomatch-stack keys add/list/revoke`` on a running proxy."""

from __future__ import annotations

import stat

import httpx
import pytest
from conftest import RunningStack
from helpers import bearer, make_collection, unique_id

from eomatch.cli.stack import main
from eomatch.errors import ConfigError
from eomatch.stack.keys import add_key, list_keys, revoke_key
from eomatch.stack.process import wait_until
from eomatch.stack.proxy import Proxy

pytestmark = pytest.mark.stack


def _cli(stack: RunningStack, *argv: str) -> int:
    config = stack.paths.conf / "settings.yaml"  # the settings the stack was started with
    return main(["--config", str(config), *argv])


def _create(stack: RunningStack, key: str, cid: str) -> int:
    r = httpx.post(stack.internal + "/collections", json=make_collection(cid), headers=bearer(key), timeout=30)
    return r.status_code


def test_cli_add_list_revoke_without_restart(running_stack: RunningStack, capsys: pytest.CaptureFixture[str]) -> None:
    proxy = Proxy(running_stack.settings)
    master_before = proxy.pid()
    name = unique_id("cli")

    assert _cli(running_stack, "keys", "add", name) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert len(key) >= 32
    assert _create(running_stack, key, unique_id("k")) == 201  # in force at once

    assert _cli(running_stack, "keys", "list") == 0
    listed = capsys.readouterr().out
    assert name in listed and key not in listed

    assert _cli(running_stack, "keys", "revoke", name) == 0
    assert "revoked" in capsys.readouterr().out
    r = httpx.post(running_stack.internal + "/collections", json=make_collection(unique_id("k")),
                   headers=bearer(key), timeout=30)
    assert r.status_code == 401
    assert r.json()["description"] == "invalid or revoked API key"
    assert proxy.pid() == master_before, "the proxy was restarted rather than reloaded"
    assert name not in dict(list_keys(running_stack.paths))


def test_cli_errors_are_one_line(running_stack: RunningStack, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(running_stack, "keys", "revoke", unique_id("nobody")) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no key named") and "\n" not in err
    assert _cli(running_stack, "keys", "add", "bad name!") != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: invalid key name") and "\n" not in err


def test_library_add_twice_and_revoke_unknown(running_stack: RunningStack) -> None:
    name = unique_id("lib")
    add_key(running_stack.paths, name)
    with pytest.raises(ConfigError, match="exists"):
        add_key(running_stack.paths, name)
    revoke_key(running_stack.paths, name)
    with pytest.raises(ConfigError, match="no key named"):
        revoke_key(running_stack.paths, name)


def test_key_files_are_private_and_logs_name_the_key_not_show_it(running_stack: RunningStack) -> None:
    paths = running_stack.paths
    name = unique_id("logged")
    key = add_key(paths, name)
    Proxy(running_stack.settings).reload()
    for f in (paths.keys_file, paths.nginx_keys_conf):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    cid = unique_id("logged")
    assert _create(running_stack, key, cid) == 201

    def logged() -> list[str]:
        access = (paths.logs / "proxy-access.log").read_text(errors="replace")
        return [ln for ln in access.splitlines() if f"key={name}" in ln]

    # nginx writes a request's log line when it frees the request, after the client has
    # its answer: wait for the line rather than read the file once
    assert wait_until(lambda: logged() != [], 10, 0.05)
    lines = logged()
    assert '"POST /api/collections" 201' in lines[-1]
    access = (paths.logs / "proxy-access.log").read_text(errors="replace")
    assert key not in access
