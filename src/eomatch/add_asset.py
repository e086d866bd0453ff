"""Register analysis results as versioned assets on a catalogue item.

The processing pipeline writes a comparison file (e.g. a NetCDF on the shared
drive) and calls :func:`register_analysis`. The item gains two assets:

* ``comparison:YYYY-MM-DD`` - this run, kept forever so results can be
  reproduced against a specific analysis run;
* ``comparison:latest`` - a copy of the dated asset with the newest *date*, so
  registering an older run never moves it backwards.

The local item file is the source of truth and is written first (atomically,
under the item's cross-process lock, so concurrent registrations on one item
both survive). Everything is checked before anything is written: a bad input
leaves the file byte-identical. ``push=True`` then upserts that one item into
pgSTAC, either straight into the database (pypgstac, the ``ingest.*``
settings) or through the internal API's transactions endpoint with an API key.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

from eomatch import jsonio
from eomatch.errors import ConfigError, EomatchError, network_reason
from eomatch.hrefs import AssetHrefs, api_item_href, file_uri, file_uri_path
from eomatch.pgstac import connect, resolve_credentials, upsert
from eomatch.settings import Settings, api_key_variable

log = logging.getLogger(__name__)

FILE_EXTENSION_URL = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
ITEM_ASSETS_EXTENSION_URL = "https://stac-extensions.github.io/item-assets/v1.0.0/schema.json"
DEFAULT_KEY_PREFIX = "comparison"
DEFAULT_ROLES = ("data", "analysis")
LATEST = "latest"
DATE_FIELD = "matchup:analysis_date"
"""Asset field naming the analysis run date (on dated and latest assets)."""
SHA2_256_MULTIHASH_PREFIX = "1220"
"""Multihash header of sha2-256: function code 0x12, digest length 0x20."""
_CHUNK_BYTES = 4 * 1024 * 1024
_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_NAME_DATE_RE = re.compile(
    r"(?<![0-9A-Za-z])(\d{4})-?(\d{2})-?(\d{2})(?![0-9A-Za-z])"
)
_DATED_KEY_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})$")

MEDIA_TYPES: dict[str, str] = {
    ".nc": "application/x-netcdf",
    ".nc4": "application/x-netcdf",
    ".netcdf": "application/x-netcdf",
    ".cdf": "application/x-netcdf",
    ".tif": "image/tiff; application=geotiff",
    ".tiff": "image/tiff; application=geotiff",
    ".json": "application/json",
    ".geojson": "application/geo+json",
    ".csv": "text/csv",
    ".txt": "text/plain",
    ".zarr": "application/vnd+zarr",
    ".h5": "application/x-hdf5",
    ".hdf5": "application/x-hdf5",
    ".he5": "application/x-hdf5",
    ".hdf": "application/x-hdf",
    ".parquet": "application/vnd.apache.parquet",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
}
DEFAULT_MEDIA_TYPE = "application/octet-stream"


class AddAssetError(EomatchError):
    """An analysis result cannot be registered (bad input; nothing was written)."""


class PushError(EomatchError):
    """The local item was written but pushing it to the database or API failed.

    ``result`` holds what the local registration did; re-running with push is safe.
    Its own exit code (3) tells schedulers "written locally, not yet in the database".
    """

    exit_code = 3

    def __init__(self, message: str, result: RegisterResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class RegisterResult:
    """What one registration did; ``line()`` is the summary commands print."""

    collection_id: str
    item_id: str
    item_path: Path
    dated_key: str
    latest_key: str
    date: date
    href: str
    size_bytes: int | None
    checksum: str | None
    replaced: bool
    """The dated key existed already and was replaced."""
    latest_moved: bool
    """``latest`` changed (it now points at this run, or at a replaced entry)."""
    latest_date: date
    pushed: str | None = None
    """``"database"`` or ``"api"`` once pushed, else None."""
    push_target: str | None = None

    @property
    def keys_written(self) -> list[str]:
        return [self.dated_key, self.latest_key] if self.latest_moved else [self.dated_key]

    def line(self) -> str:
        verb = "replaced" if self.replaced else "added"
        if self.latest_date != self.date:
            latest = f"{self.latest_key} stays at the newer {self.latest_date.isoformat()}"
        elif self.latest_moved:
            latest = f"{self.latest_key} -> {self.latest_date.isoformat()}"
        else:
            latest = f"{self.latest_key} already {self.latest_date.isoformat()}"
        pushed = f"; pushed to {self.push_target}" if self.pushed else ""
        return f"{verb} {self.dated_key} on {self.collection_id}/{self.item_id}; {latest}{pushed}"


@dataclass(frozen=True)
class AnalysisVersion:
    """One dated analysis asset of an item, for ``--list``."""

    key: str
    date: date
    href: str
    size_bytes: int | None
    checksum: str | None
    is_latest: bool


# --------------------------------------------------------------------------- inputs


def media_type_for(name: str) -> str:
    """IANA media type from a file name's extension (``application/octet-stream`` if unknown)."""
    suffix = Path(urlparse(name).path if "://" in name else name).suffix.lower()
    return MEDIA_TYPES.get(suffix, DEFAULT_MEDIA_TYPE)


def date_from_name(name: str) -> date | None:
    """The run date written in a file name (``..._20260510.nc`` or ``..._2026-05-10.nc``).

    The last valid date delimited by non-alphanumerics wins; hex ids such as
    ``matchup-<sha1>`` never match because their digit runs touch letters.
    """
    base = Path(urlparse(name).path if "://" in name else name).name
    found: date | None = None
    for m in _NAME_DATE_RE.finditer(base):
        try:
            candidate = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            continue
        if 1900 <= candidate.year <= 2999:
            found = candidate
    return found


def _as_date(value: date | datetime | str) -> date:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        if len(text) == 8 and text.isdigit():
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        return date.fromisoformat(text[:10])
    except ValueError:
        raise AddAssetError(f"not a date: {value!r} (use YYYY-MM-DD)") from None


def multihash_sha256(path: Path) -> tuple[int, str]:
    """(size in bytes, sha2-256 multihash hex) of a file, streamed in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return size, SHA2_256_MULTIHASH_PREFIX + digest.hexdigest()


def _dir_size(path: Path) -> int:
    total = 0
    stack = [path]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat().st_size
    return total


@dataclass(frozen=True)
class _Source:
    href: str
    name: str
    size_bytes: int | None
    checksum: str | None


def _is_zarr_store(path: Path) -> bool:
    """A folder that is one dataset (Zarr v2 or v3), not just any folder."""
    return path.suffix == ".zarr" or any((path / n).is_file() for n in ("zarr.json", ".zgroup", ".zarray"))


def _describe_source(file_path: str | os.PathLike[str], href: str | None) -> _Source:
    """Check the result file and measure it, before anything is written.

    A local path (or ``file://`` URI) must exist: its size and sha2-256 are
    recorded. An ``http(s)://`` URL is taken as already published (nothing to
    measure). ``href`` replaces the recorded href of a local file, e.g. the URL
    the shared drive is served at.
    """
    text = os.fspath(file_path)
    if not text:
        raise AddAssetError("no file given")
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("http", "https"):
        if href is not None:
            raise AddAssetError("give either an http(s) file URL or --href, not both")
        return _Source(href=text, name=text, size_bytes=None, checksum=None)
    if scheme == "file":
        text = file_uri_path(text)
    elif scheme:
        raise AddAssetError(f"unsupported file URL scheme {scheme!r} in {text} (use a path, file:// or http(s)://)")
    path = Path(os.path.abspath(os.path.expanduser(text)))
    if href is not None and urlparse(href).scheme.lower() not in ("http", "https", "file", "s3"):
        raise AddAssetError(f"--href must be a URL (http(s)://, file://, s3://), got {href!r}")
    try:
        if path.is_dir():  # a Zarr store: total size, no single checksum
            if not _is_zarr_store(path):
                raise AddAssetError(f"{path} is a folder, not a result file (a Zarr store ends in .zarr)")
            size, checksum = _dir_size(path), None
        elif path.is_file():
            size, checksum = multihash_sha256(path)
        else:
            raise AddAssetError(f"result file not found: {path}")
    except OSError as exc:
        raise AddAssetError(f"cannot read result file {path}: {exc.strerror}") from None
    return _Source(
        href=href or file_uri(path), name=path.name, size_bytes=size, checksum=checksum
    )


# --------------------------------------------------------------------------- assets


def _dated_date(key: str, prefix: str) -> date | None:
    head = f"{prefix}:"
    if not key.startswith(head):
        return None
    m = _DATED_KEY_RE.match(key[len(head) :])
    if not m:
        return None
    try:
        return date.fromisoformat(m.group(1))
    except ValueError:
        return None


def _latest_asset(dated: Mapping[str, Any], title: str | None) -> dict[str, Any]:
    latest = copy.deepcopy(dict(dated))
    base = title or latest.get("title")
    if base:
        latest["title"] = f"{base} (latest)"
    return latest


def _default_title(prefix: str) -> str:
    if prefix == DEFAULT_KEY_PREFIX:
        return "Spectral comparison"
    return prefix.replace("_", " ").replace("-", " ").capitalize()


def _apply(
    item: dict[str, Any],
    prefix: str,
    run_date: date,
    asset: dict[str, Any],
    title: str,
    now_iso: str,
) -> tuple[bool, bool, date]:
    """Put the dated asset on ``item`` and re-point latest: (replaced, latest moved, latest date)."""
    assets = item.setdefault("assets", {})
    dated_key = f"{prefix}:{run_date.isoformat()}"
    latest_key = f"{prefix}:{LATEST}"
    replaced = dated_key in assets
    assets[dated_key] = asset
    versions = {d: k for k, d in ((k, _dated_date(k, prefix)) for k in assets) if d is not None}
    newest = max(versions)
    new_latest = _latest_asset(assets[versions[newest]], title if newest == run_date else None)
    old_latest = assets.get(latest_key)
    moved = old_latest != new_latest
    assets[latest_key] = new_latest
    exts = list(item.get("stac_extensions") or [])
    if FILE_EXTENSION_URL not in exts:
        exts.append(FILE_EXTENSION_URL)
    item["stac_extensions"] = exts
    item.setdefault("properties", {})["updated"] = now_iso
    return replaced, moved, newest


def _item_assets_entry(asset: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """How the collection describes ``{prefix}:latest`` (item_assets never carry hrefs)."""
    out: dict[str, Any] = {"title": asset.get("title") or f"{_default_title(prefix)} (latest)"}
    for key in ("type", "roles", "description"):
        if asset.get(key) is not None:
            out[key] = asset[key]
    return out


def _update_collection(cat: Any, collection_id: str, entry_key: str, entry: dict[str, Any]) -> bool:
    """Add ``item_assets[entry_key]`` and the item-assets extension; True if the file changed."""
    from eomatch.catalogue import MatchupCatalogue

    assert isinstance(cat, MatchupCatalogue)
    with cat.lock_collection(collection_id):  # the lock save() merges under, so writers never overwrite each other
        path = cat.root / collection_id / "collection.json"
        col = jsonio.read_json(path)
        before = copy.deepcopy(col)
        item_assets = col.setdefault("item_assets", {})
        item_assets[entry_key] = {**(item_assets.get(entry_key) or {}), **entry}
        exts = list(col.get("stac_extensions") or [])
        if ITEM_ASSETS_EXTENSION_URL not in exts:
            exts.append(ITEM_ASSETS_EXTENSION_URL)
        col["stac_extensions"] = exts
        if col == before:
            return False
        jsonio.write_json_atomic(path, col)
        return True


# --------------------------------------------------------------------------- push targets


@dataclass
class _PushPlan:
    kind: str  # "database" | "api"
    target: str
    creds: Any = None
    api_url: str | None = None
    api_key: str | None = None


def read_api_key_file(path: str | os.PathLike[str]) -> str:
    """The write key kept in a file (alone on its line): unlike ``--api-key KEY``, it is
    not shown to every user of the machine by ``ps`` or ``/proc/*/cmdline``."""
    where = Path(path).expanduser()
    try:
        text = where.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"API key file {where} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read API key file {where}: {getattr(exc, 'strerror', None) or exc}") from None
    key = text.strip()
    if not key or any(c.isspace() for c in key):
        raise ConfigError(f"API key file {where} must hold the key alone, on one line")
    return key


def api_key_from(settings: Settings) -> str | None:
    """The write key the settings point at: ``api_key_file`` (``--api-key-file``,
    ``EOMATCH_API_KEY_FILE``), else ``api_key`` (``EOMATCH_API_KEY``)."""
    if settings.api_key_file is not None:
        return read_api_key_file(settings.api_key_file)
    if settings.api_key is not None:
        return settings.api_key.get_secret_value()
    # Python callers whose settings were loaded without the environment (environ={})
    # still find the key where the command line does.
    return api_key_variable()


def _plan_push(settings: Settings, api_url: str | None, api_key: str | None) -> _PushPlan:
    """Resolve and check the push target before anything local is written."""
    if api_url:
        if not api_key:
            raise ConfigError(
                "pushing through --api-url needs an API key: --api-key-file PATH, "
                "EOMATCH_API_KEY_FILE or EOMATCH_API_KEY"
            )
        if urlparse(api_url).scheme not in ("http", "https"):
            raise ConfigError(f"--api-url must be an http(s) URL, got {api_url!r}")
        base = api_url.rstrip("/")
        _check_api(base, api_key)
        return _PushPlan("api", base, api_url=base, api_key=api_key)
    if api_key:
        raise ConfigError("--api-key needs --api-url (without it the push goes straight to the database)")
    creds = resolve_credentials(settings)
    connect(creds).close()  # one-line IngestError when the database is down or refuses us
    return _PushPlan("database", creds.redacted(), creds=creds)


def _api_client(api_key: str) -> Any:
    import httpx

    return httpx.Client(headers={"Authorization": f"Bearer {api_key}"}, timeout=30.0)


def _describe_http_error(exc: Exception, url: str) -> str:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return f"{url} did not answer in time"
    reason = network_reason(exc)
    if isinstance(exc, httpx.ConnectError):
        hint = " (is the API running?)" if reason == "connection refused" else ""
        return f"cannot reach {url}: {reason}{hint}"
    return f"request to {url} failed: {reason}"


def _refusal(resp: Any) -> str:
    try:
        body = resp.json()
        detail = body.get("description") or body.get("detail") or body.get("code") or ""
    except Exception:
        detail = resp.text
    detail = " ".join(str(detail).split())[:200]
    what = f"{resp.request.method} {resp.request.url} -> {resp.status_code}"
    if resp.status_code in (401, 403):
        return f"the API refused the key ({what}: {detail or 'unauthorized'})"
    return f"{what}: {detail}" if detail else what


def _check_api(base: str, api_key: str) -> None:
    """Is the API reachable and the key accepted? Probed with a write that cannot succeed.

    The proxy checks the key on every write method; an invalid body then fails
    validation in the API (4xx other than 401/403), so nothing is created.
    """
    import httpx

    url = f"{base}/collections"
    with _api_client(api_key) as client:
        try:
            resp = client.post(url, json={"type": "eomatch-key-check"})
        except httpx.HTTPError as exc:
            raise AddAssetError(_describe_http_error(exc, url)) from None
    if resp.status_code in (401, 403):
        raise AddAssetError(_refusal(resp))
    if resp.status_code in (404, 405) or resp.status_code >= 500:
        raise AddAssetError(f"{base} does not accept writes: {_refusal(resp)}")


def _db_documents(cat: Any, collection_id: str, item_id: str, settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """The collection and item as the database holds them (ingest's own transforms)."""
    from eomatch.ingest import transform_collection, transform_item

    rewriter = AssetHrefs(cat.root, settings.ingest.assets_base_url)
    now_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = cat.path_of(item_id, collection_id)
    item = transform_item(jsonio.read_json(path), path, rewriter, now_iso)
    col = transform_collection(cat.get_collection(collection_id), cat.root / collection_id, rewriter)
    return col, item


def _push_database(plan: _PushPlan, collection: dict[str, Any], item: dict[str, Any]) -> None:
    upsert(plan.creds, [collection], [item])


def _push_api(plan: _PushPlan, collection: dict[str, Any], item: dict[str, Any]) -> None:
    """PUT the collection and item (POST when absent) through the transactions endpoint."""
    import httpx

    base = plan.api_url
    cid = quote(str(collection["id"]), safe="")
    with _api_client(str(plan.api_key)) as client:
        for put_url, post_url, doc in (
            (f"{base}/collections/{cid}", f"{base}/collections", collection),
            (f"{base}/{api_item_href(str(collection['id']), str(item['id']))}", f"{base}/collections/{cid}/items", item),
        ):
            try:
                resp = client.put(put_url, json=doc)
                if resp.status_code == 404:
                    resp = client.post(post_url, json=doc)
            except httpx.HTTPError as exc:
                raise EomatchError(_describe_http_error(exc, put_url)) from None
            if resp.status_code >= 300:
                raise EomatchError(_refusal(resp))


# --------------------------------------------------------------------------- public API


def default_settings() -> Settings:
    """What :func:`register_analysis` pushes with when the caller passes no settings: the
    config file and ``EOMATCH_*`` like the commands, ``PGPASSWORD`` as ``ingest.db_password``.

    The one place this module loads settings: register_analysis is a top-level convenience
    for pipeline scripts (``eomatch-add-asset`` passes the settings it loaded).
    """
    from eomatch.settings import load_settings, pgpassword

    return load_settings(overrides={"ingest": {"db_password": pgpassword()}})


def register_analysis(
    catalogue_path: str | os.PathLike[str],
    collection_id: str,
    item_id: str,
    file_path: str | os.PathLike[str],
    push: bool = False,
    *,
    key_prefix: str = DEFAULT_KEY_PREFIX,
    date: date | datetime | str | None = None,
    title: str | None = None,
    media_type: str | None = None,
    roles: Sequence[str] | None = None,
    href: str | None = None,
    settings: Settings | None = None,
    api_url: str | None = None,
    api_key: str | None = None,
) -> RegisterResult:
    """Add ``{key_prefix}:YYYY-MM-DD`` for ``file_path`` to an item and re-point ``:latest``.

    ``date`` defaults to the date in the file name, else today (UTC).
    ``file_path`` is a local path (size and sha2-256 recorded, href ``file://``)
    or an ``http(s)://`` URL of an already published file; ``href`` records a
    public URL for a local file instead of its ``file://`` URI. With ``push``,
    the item (and its collection) is upserted into pgSTAC: through
    ``api_url`` with ``api_key`` if given, else straight into the database of
    the ``ingest.*`` settings (the local stack's ingest role when none are set);
    ``api_key`` defaults to the file ``settings.api_key_file`` (``EOMATCH_API_KEY_FILE``),
    else ``EOMATCH_API_KEY``. ``settings`` are only read for a push; without them,
    :func:`default_settings`.
    Raises :class:`AddAssetError` (nothing written) or :class:`PushError`
    (written locally, push failed; ``push=True`` again is safe).
    """
    from eomatch.catalogue import MatchupCatalogue

    if not _PREFIX_RE.match(key_prefix or ""):
        raise AddAssetError(
            f"invalid key prefix {key_prefix!r}: letters, digits, '.', '_' or '-' (no ':')"
        )
    if (api_url or api_key) and not push:
        raise ConfigError("an API URL or key was given without push=True (--push)")
    run_date_given = _as_date(date) if date is not None else None
    cat = MatchupCatalogue.open(catalogue_path)
    try:
        cat.get_collection(collection_id)
        item_path = cat.path_of(item_id, collection_id)
        source = _describe_source(file_path, href)
        run_date = run_date_given or date_from_name(source.name) or datetime.now(UTC).date()
        run_title = title or _default_title(key_prefix)
        asset: dict[str, Any] = {
            "href": source.href,
            "type": media_type or media_type_for(source.name),
            "title": run_title,
            "roles": list(roles) if roles is not None else list(DEFAULT_ROLES),
            DATE_FIELD: run_date.isoformat(),
        }
        if source.size_bytes is not None:
            asset["file:size"] = source.size_bytes
        if source.checksum is not None:
            asset["file:checksum"] = source.checksum
        plan: _PushPlan | None = None
        if push:
            if settings is None:
                settings = default_settings()
            if api_url and api_key is None:
                api_key = api_key_from(settings)
            plan = _plan_push(settings, api_url, api_key)

        now_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        outcome: dict[str, Any] = {}

        def edit(item: dict[str, Any]) -> None:
            outcome["replaced"], outcome["moved"], outcome["latest"] = _apply(
                item, key_prefix, run_date, copy.deepcopy(asset), run_title, now_iso
            )
            outcome["latest_asset"] = item["assets"][f"{key_prefix}:{LATEST}"]

        cat.update_item(item_id, edit, collection=collection_id)
        latest_key = f"{key_prefix}:{LATEST}"
        _update_collection(cat, collection_id, latest_key, _item_assets_entry(outcome["latest_asset"], key_prefix))
        result = RegisterResult(
            collection_id=collection_id,
            item_id=item_id,
            item_path=item_path,
            dated_key=f"{key_prefix}:{run_date.isoformat()}",
            latest_key=latest_key,
            date=run_date,
            href=source.href,
            size_bytes=source.size_bytes,
            checksum=source.checksum,
            replaced=outcome["replaced"],
            latest_moved=outcome["moved"],
            latest_date=outcome["latest"],
        )
        log.info("%s", result.line())
        if plan is not None:
            assert settings is not None
            try:
                collection, item = _db_documents(cat, collection_id, item_id, settings)
                if plan.kind == "api":
                    _push_api(plan, collection, item)
                else:
                    _push_database(plan, collection, item)
            except EomatchError as exc:
                raise PushError(
                    f"registered {result.dated_key} on {item_id} locally ({item_path}), but the push to "
                    f"{plan.target} failed: {exc}; retry with --push (safe to repeat)",
                    result,
                ) from None
            result.pushed, result.push_target = plan.kind, plan.target
        return result
    finally:
        cat.close()


def list_analysis_versions(
    catalogue_path: str | os.PathLike[str],
    collection_id: str,
    item_id: str,
    key_prefix: str = DEFAULT_KEY_PREFIX,
) -> list[AnalysisVersion]:
    """The dated ``{key_prefix}:`` assets of an item, oldest first, with the latest marked."""
    from eomatch.catalogue import MatchupCatalogue

    cat = MatchupCatalogue.open(catalogue_path)
    try:
        cat.get_collection(collection_id)
        item = cat.get_item(item_id, collection_id)
    finally:
        cat.close()
    assets = item.get("assets") or {}
    latest = assets.get(f"{key_prefix}:{LATEST}") or {}
    out = []
    for key, asset in assets.items():
        run_date = _dated_date(key, key_prefix)
        if run_date is None or not isinstance(asset, dict):
            continue
        if latest.get(DATE_FIELD):
            is_latest = latest.get(DATE_FIELD) == run_date.isoformat()
        else:
            is_latest = bool(latest) and latest.get("href") == asset.get("href")
        out.append(
            AnalysisVersion(
                key=key,
                date=run_date,
                href=str(asset.get("href", "")),
                size_bytes=asset.get("file:size"),
                checksum=asset.get("file:checksum"),
                is_latest=is_latest,
            )
        )
    out.sort(key=lambda v: v.date)
    return out
