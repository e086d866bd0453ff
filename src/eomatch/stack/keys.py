"""Named API keys for writes through ``/api/``.

Keys live in ``conf/api-keys.json`` (mode 0600) and are rendered into an nginx
map that the proxy includes; add/revoke rewrite both and reload nginx
gracefully, so requests in flight are not dropped.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import orjson
from filelock import FileLock

from eomatch.errors import ConfigError, StackError
from eomatch.jsonio import write_bytes_atomic
from eomatch.stack.render import render_keys_conf
from eomatch.stack.state import StatePaths, new_secret

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def _load(paths: StatePaths) -> dict[str, dict[str, str]]:
    try:
        return dict(orjson.loads(paths.keys_file.read_bytes()))
    except FileNotFoundError:
        return {}
    except orjson.JSONDecodeError:
        raise StackError(f"keys file {paths.keys_file} is corrupt") from None


def _save(paths: StatePaths, keys: dict[str, dict[str, str]]) -> None:
    paths.conf.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(paths.keys_file, orjson.dumps(keys, option=orjson.OPT_INDENT_2), mode=0o600)
    _write_conf(paths, keys)


def _write_conf(paths: StatePaths, keys: dict[str, dict[str, str]]) -> None:
    conf = render_keys_conf({name: entry["key"] for name, entry in keys.items()})
    write_bytes_atomic(paths.nginx_keys_conf, conf.encode(), mode=0o600)


def ensure_keys_conf(paths: StatePaths) -> None:
    """Render the nginx map from the keys file, every time the proxy's config is
    written: a map rendered by an older eomatch (e.g. case-insensitive strings) is
    replaced rather than trusted."""
    paths.conf.mkdir(parents=True, exist_ok=True)
    with FileLock(str(paths.conf / ".keys.lock")):
        _write_conf(paths, _load(paths))


def add_key(paths: StatePaths, name: str) -> str:
    """Create a key named ``name`` and return it (shown once)."""
    if not NAME_RE.match(name):
        raise ConfigError(f"invalid key name '{name}': use letters, digits, '.', '_' or '-'")
    paths.conf.mkdir(parents=True, exist_ok=True)
    with FileLock(str(paths.conf / ".keys.lock")):
        keys = _load(paths)
        if name in keys:
            raise ConfigError(f"a key named '{name}' exists; revoke it first to rotate it")
        key = new_secret(32)
        keys[name] = {"key": key, "created": datetime.now(UTC).isoformat(timespec="seconds")}
        _save(paths, keys)
    return key


def revoke_key(paths: StatePaths, name: str) -> None:
    paths.conf.mkdir(parents=True, exist_ok=True)
    with FileLock(str(paths.conf / ".keys.lock")):
        keys = _load(paths)
        if name not in keys:
            raise ConfigError(f"no key named '{name}' (see 'eomatch-stack keys list')")
        del keys[name]
        _save(paths, keys)


def list_keys(paths: StatePaths) -> list[tuple[str, str]]:
    """(name, created) pairs; the keys themselves are never printed again."""
    return sorted((name, entry.get("created", "")) for name, entry in _load(paths).items())
