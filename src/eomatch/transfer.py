"""Fetch the data assets of products into local files and register them on the items.

The engine of ``eomatch-download`` (:func:`eomatch.download.download` opens the
catalogue and calls :func:`download_products`) and of matchup datasets that
fetch missing products (:func:`product_fetcher`). It works on a catalogue that
is already open and never opens one itself, so the modules below the catalogue
(:mod:`eomatch.matchup_dataset`) can use it.

Each product item's remote data assets (``http(s)://`` with bearer / basic /
netrc auth, ``s3://`` through s3fs, anonymous or with credentials, requester
pays, custom endpoint) are fetched into
``{products_root}/{collection}/{item_id}/{file name}``. Files grow as
``*.part`` and only take their final name once complete and verified against
``file:size`` / ``file:checksum`` (multihash), so an interrupted run resumes
with a Range request where it stopped. Finished files are registered on the
product item as a ``data`` asset with an absolute ``file://`` href (plus
``file:size`` and ``file:checksum``) through :meth:`MatchupCatalogue.update_item`,
which is atomic and safe against other writers.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import urllib3

from eomatch import jsonio
from eomatch.errors import ConfigError, DownloadError, first_line, network_reason
from eomatch.hrefs import file_uri, local_path
from eomatch.progress import Progress, format_bytes
from eomatch.safe_names import UnsafeNameError, ensure_under, is_safe_name, unsafe_reason
from eomatch.settings import DownloadSettings, Settings, default_netrc_file

if TYPE_CHECKING:
    from eomatch.catalogue import MatchupCatalogue

log = logging.getLogger(__name__)

REMOTE_SCHEMES = ("http", "https", "s3")
_SKIP_ROLES = {"thumbnail", "overview", "metadata", "visual"}
_SKIP_KEYS = {"thumbnail", "overview", "metadata", "preview", "rendered_preview", "tilejson", "info"}
# multihash codes -> (hashlib name, digest bytes)
_MULTIHASH = {0x12: ("sha256", 32), 0x13: ("sha512", 64), 0x11: ("sha1", 20), 0xD5: ("md5", 16)}


@dataclass
class DownloadTask:
    """One remote asset of one product."""

    collection: str
    item_id: str
    asset_key: str
    href: str
    dest: Path
    size: int | None = None
    checksum: str | None = None
    media_type: str | None = None
    primary: bool = False


@dataclass
class DownloadFailure:
    item_id: str
    asset_key: str
    href: str
    reason: str


@dataclass
class DownloadSummary:
    """What one run did; ``line()`` and ``failure_table()`` are what the command prints."""

    catalogue: str
    products_root: str
    products: int = 0
    files_downloaded: int = 0
    files_skipped: int = 0
    bytes_transferred: int = 0
    seconds: float = 0.0
    failures: list[DownloadFailure] = field(default_factory=list)

    def line(self) -> str:
        rate = self.bytes_transferred / self.seconds if self.seconds > 0 else 0.0
        return (
            f"downloaded {self.files_downloaded} files ({self.bytes_transferred / 1e6:,.1f} MB, "
            f"{rate / 1e6:,.1f} MB/s) for {self.products} products into {self.products_root}; "
            f"{self.files_skipped} already complete, {len(self.failures)} failed"
        )

    def failure_table(self) -> str:
        if not self.failures:
            return ""
        rows = [("product", "asset", "reason", "href")] + [
            (f.item_id, f.asset_key, f.reason, f.href) for f in self.failures
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
        return "\n".join(lines)


# --------------------------------------------------------------------------- checksums


def multihash_sha256(digest: bytes) -> str:
    """``1220`` + hex: the ``file:checksum`` form of a SHA2-256 digest."""
    return "1220" + digest.hex()


def parse_multihash(value: str) -> tuple[str, str]:
    """(hashlib name, hex digest) of a ``file:checksum`` multihash string."""
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise DownloadError(f"file:checksum {value!r} is not hex") from None
    if len(raw) < 2 or raw[0] not in _MULTIHASH:
        raise DownloadError(f"file:checksum {value!r}: unsupported multihash code")
    name, length = _MULTIHASH[raw[0]]
    if raw[1] != length or len(raw) != 2 + length:
        raise DownloadError(f"file:checksum {value!r}: wrong digest length")
    return name, raw[2:].hex()


def _hash_file(path: Path, name: str = "sha256", chunk: int = 4 << 20) -> Any:
    h = hashlib.new(name)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h


# --------------------------------------------------------------------------- selection


def _scheme(href: str) -> str:
    return href.split("://", 1)[0].lower() if "://" in href else ""


def data_assets(item: dict[str, Any], keys: Iterable[str] = ()) -> list[tuple[str, dict[str, Any]]]:
    """The remote assets of a product worth downloading, in item order.

    ``keys`` picks them by name; otherwise assets with role ``data`` (or no roles)
    and an http(s)/s3 href, minus thumbnails, overviews and metadata.
    """
    wanted = list(keys)
    out = []
    for key, asset in (item.get("assets") or {}).items():
        if not isinstance(asset, dict) or not isinstance(asset.get("href"), str):
            continue
        if _scheme(asset["href"]) not in REMOTE_SCHEMES:
            continue
        if wanted:
            if key in wanted:
                out.append((key, asset))
            continue
        roles = set(asset.get("roles") or [])
        if key in _SKIP_KEYS or key == "data" or key.startswith(("data:", "comparison:")):
            continue
        if roles and ("data" not in roles or roles & _SKIP_ROLES - {"data"}):
            continue
        out.append((key, asset))
    return out


def _local_path(asset: dict[str, Any] | None) -> Path | None:
    return local_path(asset.get("href")) if asset else None


def _file_name(href: str, key: str) -> str:
    """The local file name of an asset: the last segment of the href's path, else
    the asset key; both come from the provider, so only a safe file name is used
    (:class:`UnsafeNameError` when neither is one)."""
    name = unquote(urlparse(href).path.rstrip("/").rsplit("/", 1)[-1])
    for candidate in (name, key):
        if is_safe_name(candidate):
            return candidate
    raise UnsafeNameError(
        f"no safe file name for asset {key!r}: neither its href's file name {name!r} nor its key is one"
        f" ({unsafe_reason(name) if name else 'empty'})"
    )


def _tasks_of(
    item: dict[str, Any], coll: str, root: Path, keys: list[str]
) -> tuple[list[DownloadTask], list[DownloadFailure]]:
    """The files of one product, and the assets refused because no safe path under
    ``root`` could be made for them (the provider chose the names)."""
    chosen = data_assets(item, keys)
    tasks = []
    refused: list[DownloadFailure] = []
    used: set[str] = set()
    folder = root / coll / str(item["id"])
    for i, (key, asset) in enumerate(chosen):
        try:
            name = _file_name(asset["href"], key)
            if name in used:
                name = f"{key}-{name}" if is_safe_name(f"{key}-{name}") else f"{i}-{name}"
            dest = ensure_under(root, folder / name)
        except UnsafeNameError as exc:
            refused.append(DownloadFailure(str(item["id"]), key, asset["href"], str(exc)))
            continue
        used.add(name)
        size = asset.get("file:size")
        tasks.append(
            DownloadTask(
                collection=coll,
                item_id=str(item["id"]),
                asset_key=key,
                href=asset["href"],
                dest=dest,
                size=int(size) if isinstance(size, int | float) else None,
                checksum=asset.get("file:checksum") if isinstance(asset.get("file:checksum"), str) else None,
                media_type=asset.get("type"),
                primary=i == 0,
            )
        )
    return tasks, refused


# --------------------------------------------------------------------------- transports


class _Fetcher:
    """Opens byte streams for http(s) and s3 hrefs, resuming at an offset.

    HTTP goes through urllib3: its ``http.client`` reads stream files about twice
    as fast as httpx's pure-Python parser, which is what keeps pace with curl.
    """

    def __init__(self, cfg: DownloadSettings) -> None:
        import urllib3

        self.cfg = cfg
        self._headers: dict[str, str] = {"User-Agent": "eomatch-download"}
        if cfg.bearer_token:
            self._headers["Authorization"] = f"Bearer {cfg.bearer_token}"
        elif cfg.username and cfg.password is not None:
            self._headers.update(urllib3.make_headers(basic_auth=f"{cfg.username}:{cfg.password}"))
        self._netrc: Any = None
        netrc_path = cfg.netrc_file or default_netrc_file()
        if cfg.use_netrc and "Authorization" not in self._headers and netrc_path.is_file():
            import netrc

            try:
                self._netrc = netrc.netrc(str(netrc_path))
            except (netrc.NetrcParseError, OSError) as exc:
                raise ConfigError(f"cannot read {netrc_path}: {exc}") from None
        self.http = urllib3.PoolManager(
            num_pools=16,
            maxsize=max(4, cfg.parallel),
            timeout=urllib3.Timeout(connect=min(10.0, cfg.timeout_s), read=cfg.timeout_s),
            retries=urllib3.Retry(total=10, connect=0, read=0, status=0, other=0, redirect=10),
        )
        self._s3: Any = None
        self._s3_lock = threading.Lock()

    def close(self) -> None:
        self.http.clear()

    def s3(self) -> Any:
        with self._s3_lock:
            if self._s3 is None:
                import s3fs

                kwargs: dict[str, Any] = {"anon": self.cfg.s3_anonymous and not self.cfg.s3_access_key_id}
                if self.cfg.s3_access_key_id:
                    kwargs["key"] = self.cfg.s3_access_key_id
                    kwargs["secret"] = self.cfg.s3_secret_access_key
                if self.cfg.s3_requester_pays:
                    kwargs["requester_pays"] = True
                if self.cfg.s3_endpoint_url:
                    kwargs["client_kwargs"] = {"endpoint_url": self.cfg.s3_endpoint_url}
                self._s3 = s3fs.S3FileSystem(skip_instance_cache=True, **kwargs)
            return self._s3

    def fetch(self, href: str, offset: int, write: Callable[[bytes], None]) -> tuple[int, int | None]:
        """Stream ``href`` from ``offset`` into ``write``; returns (start offset used, total size)."""
        scheme = _scheme(href)
        if scheme in ("http", "https"):
            return self._fetch_http(href, offset, write)
        if scheme == "s3":
            return self._fetch_s3(href, offset, write)
        raise DownloadError(f"unsupported href scheme {scheme or '(none)'!r}")

    def _headers_for(self, href: str) -> dict[str, str]:
        headers = dict(self._headers)
        if self._netrc is not None:
            found = self._netrc.authenticators(urlparse(href).hostname or "")
            if found and found[2] is not None:
                import urllib3

                headers.update(urllib3.make_headers(basic_auth=f"{found[0]}:{found[2]}"))
        return headers

    def _fetch_http(self, href: str, offset: int, write: Callable[[bytes], None]) -> tuple[int, int | None]:
        headers = self._headers_for(href)
        if offset:
            headers["Range"] = f"bytes={offset}-"
        resp = self.http.request("GET", href, headers=headers, preload_content=False)
        try:
            if resp.status == 416 and offset:
                total = _total_from_content_range(resp.headers.get("Content-Range"))
                if total == offset:
                    return offset, total
                raise _Retry(f"HTTP 416 at offset {offset}")
            if resp.status >= 500 or resp.status == 429:
                raise _Retry(f"HTTP {resp.status}")
            if resp.status >= 400:
                raise DownloadError(f"HTTP {resp.status}")
            if resp.status == 206:
                start = _start_from_content_range(resp.headers.get("Content-Range"))
                total = _total_from_content_range(resp.headers.get("Content-Range"))
            else:
                start, length = 0, resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            if start != offset and start != 0:
                raise _Retry(f"server resumed at {start}, not {offset}")
            if start == 0 and offset:
                raise _Restart()
            for chunk in resp.stream(self.cfg.chunk_bytes):
                write(chunk)
        except BaseException:
            resp.close()  # never hand a half-read connection back to the pool
            raise
        resp.release_conn()
        return start, total

    def _fetch_s3(self, href: str, offset: int, write: Callable[[bytes], None]) -> tuple[int, int | None]:
        fs = self.s3()
        path = href[len("s3://") :]
        try:
            with fs.open(path, "rb", block_size=self.cfg.chunk_bytes, cache_type="none") as fh:
                total = int(fh.size)
                if offset:
                    fh.seek(offset)
                while block := fh.read(self.cfg.chunk_bytes):
                    write(block)
        except FileNotFoundError:
            raise DownloadError("not found on S3") from None
        except PermissionError as exc:
            raise DownloadError(f"S3 access denied: {first_line(exc, 'forbidden')}") from None
        return offset, total


class _Retry(Exception):
    """A transient failure: retry, resuming from what is on disk."""


class _Restart(Exception):
    """The server ignored the Range header: start the file again."""


def _start_from_content_range(value: str | None) -> int:
    try:
        return int(str(value).split(" ", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return 0


def _total_from_content_range(value: str | None) -> int | None:
    try:
        total = str(value).rsplit("/", 1)[1]
    except IndexError:
        return None
    return int(total) if total.isdigit() else None


# --------------------------------------------------------------------------- one file


def _verify(task: DownloadTask, path: Path, digest: str | None) -> None:
    size = path.stat().st_size
    if task.size is not None and size != task.size:
        raise DownloadError(f"size {size} B does not match file:size {task.size} B")
    if task.checksum:
        name, expected = parse_multihash(task.checksum)
        got = digest if (name == "sha256" and digest) else _hash_file(path, name).hexdigest()
        if got != expected:
            raise DownloadError(f"{name} checksum mismatch (expected {expected[:12]}…, got {got[:12]}…)")


def fetch_file(task: DownloadTask, fetcher: _Fetcher, retries: int, on_bytes: Callable[[int], None]) -> tuple[int, str]:
    """Download one asset to ``task.dest`` (resuming ``.part``); returns (bytes transferred, sha256 hex).

    The SHA2-256 is computed while writing (a resumed file hashes its part first),
    so verifying costs no second read of the file.
    """
    import fcntl

    dest = task.dest
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # One writer per file: a second download of the same file (another run, another
    # user) must not append to this .part; it fails at once and leaves it alone. The lock
    # is a non-blocking flock on the .part itself (no lock file to leave behind; the OS
    # drops it with the process): 1.0 us per refused try vs 51 us with
    # filelock.FileLock(timeout=0) (benchmarks/locks.py, same run, ratio=48.65).
    lock_fd = os.open(part, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DownloadError(f"another download of {dest} is running (its {part.name} is locked)") from None
        try:
            return _fetch_into(task, part, fetcher, retries, on_bytes)
        except BaseException:
            # Keep a partial file to resume from; an empty one (refused before any byte)
            # and the folder made for it are only litter.
            with contextlib.suppress(OSError):
                if part.stat().st_size == 0:
                    part.unlink()
            with contextlib.suppress(OSError):
                dest.parent.rmdir()  # only if empty
            raise
    finally:
        os.close(lock_fd)


def _fetch_into(
    task: DownloadTask, part: Path, fetcher: _Fetcher, retries: int, on_bytes: Callable[[int], None]
) -> tuple[int, str]:
    dest = task.dest
    transferred = 0
    delay = 0.5
    for attempt in range(retries + 1):
        offset = part.stat().st_size if part.exists() else 0
        if task.size is not None and offset > task.size:
            os.truncate(part, 0)  # not unlink: the lock is on this file
            offset = 0
        hasher = _hash_file(part) if offset else hashlib.sha256()
        try:
            with open(part, "ab") as fh:

                def write(chunk: bytes, fh: Any = fh, hasher: Any = hasher) -> None:
                    nonlocal transferred
                    fh.write(chunk)
                    hasher.update(chunk)
                    transferred += len(chunk)
                    on_bytes(len(chunk))

                _, total = fetcher.fetch(task.href, offset, write)
            if total is not None and part.stat().st_size != total:
                raise _Retry(f"got {part.stat().st_size} of {total} bytes")
            break
        except _Restart:
            os.truncate(part, 0)
            continue
        except (_Retry, urllib3.exceptions.HTTPError, OSError) as exc:
            if isinstance(exc, FileNotFoundError | PermissionError):
                raise DownloadError(first_line(exc)) from None
            if attempt == retries:
                reason = first_line(exc) if isinstance(exc, _Retry) else network_reason(exc)
                raise DownloadError(f"gave up after {retries + 1} attempts: {reason}") from None
            log.debug("retrying %s in %.1fs: %s", task.href, delay, exc)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
    else:
        raise DownloadError(f"gave up after {retries + 1} attempts: the server kept ignoring Range requests")
    digest = hasher.hexdigest()
    try:
        _verify(task, part, digest)
    except DownloadError:
        part.unlink(missing_ok=True)  # corrupt: the next run starts it again
        raise
    os.replace(part, dest)
    return transferred, digest


def _complete(task: DownloadTask, registered: dict[str, Any] | None) -> str | None:
    """sha256 hex of an already complete destination file, else None.

    A file this tool registered (same path and size) is trusted without re-reading;
    an unregistered one is verified first.
    """
    if not task.dest.is_file():
        return None
    checksum = (registered or {}).get("file:checksum")
    if (
        _local_path(registered) == task.dest.resolve()
        and registered.get("file:size") == task.dest.stat().st_size  # type: ignore[union-attr]
        and isinstance(checksum, str)
        and checksum.startswith("1220")
    ):
        return checksum[4:]
    if task.size is not None and task.dest.stat().st_size != task.size:
        return None
    digest = _hash_file(task.dest).hexdigest()
    try:
        _verify(task, task.dest, digest)
    except DownloadError:
        return None
    return digest


def _file_uri(path: Path) -> str:
    return file_uri(path.resolve())


def _register(cat: MatchupCatalogue, task: DownloadTask, digest: str) -> None:
    size = task.dest.stat().st_size
    asset = {
        "href": _file_uri(task.dest),
        "roles": ["data"],
        "title": f"local copy of {task.asset_key}",
        "file:size": size,
        "file:checksum": "1220" + digest,
        "eomatch:source_asset": task.asset_key,
    }
    if task.media_type:
        asset["type"] = task.media_type

    def edit(item: dict[str, Any]) -> None:
        assets = item.setdefault("assets", {})
        assets[f"data:{task.asset_key}"] = asset
        if task.primary or "data" not in assets:
            assets["data"] = dict(asset)

    cat.update_item(task.item_id, edit, collection=task.collection)


# --------------------------------------------------------------------------- run


def _iter_products(cat: MatchupCatalogue, product_ids: Iterable[str] | None) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(collection, id, item) of the products asked for, else of every product, streamed."""
    if product_ids is not None:
        for pid in product_ids:
            ref = cat.require(pid, kind="product")
            yield ref.collection, pid, jsonio.read_json(cat.root / ref.relpath)
        return
    for ref in cat.iter_ids(kind="product"):
        yield ref.collection, ref.id, jsonio.read_json(cat.root / ref.relpath)


def _check_products_root(root: Path) -> None:
    """Refuse a products root that cannot hold files, once and before any transfer
    (otherwise every file fails with the same error). Nothing is created here: a
    run with nothing to fetch leaves no empty folders behind."""
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"products root {root}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"products root {root}: {probe} is not writable")


def download_products(
    cat: MatchupCatalogue,
    settings: Settings,
    products_root: str | Path | None = None,
    product_ids: Iterable[str] | None = None,
    asset_keys: Iterable[str] | None = None,
    parallel: int | None = None,
    quiet: bool = False,
    progress: Progress | None = None,
) -> DownloadSummary:
    """Download the remote data assets of an open catalogue's products and register the copies.

    ``products_root`` default ``download.products_root``, else ``<catalogue>/products``.
    ``progress`` counts products finished (its total is set when it has none); without
    one a status line is drawn unless ``quiet``. Failures are collected in the summary
    (``failures``), not raised, so one bad file does not stop the others. Pending
    collection updates are saved; the catalogue stays open (the caller's).
    """
    cfg = settings.download
    root = Path(products_root or cfg.products_root or cat.root / "products").expanduser().resolve()
    _check_products_root(root)
    workers = max(1, int(parallel or cfg.parallel))
    keys = list(asset_keys or cfg.data_asset_keys)
    summary = DownloadSummary(catalogue=str(cat.root), products_root=str(root))
    t0 = time.monotonic()
    if product_ids is not None:
        product_ids = list(product_ids)
    n_products = len(product_ids) if product_ids is not None else cat.count(kind="product")
    # Progress counts products finished (what the ETA can rest on: sizes are often
    # unknown before the transfer); the bytes and their rate ride along.
    bytes_now = [0]

    def transfer_note() -> str:
        rate = bytes_now[0] / max(progress.elapsed_s(), 1e-9)
        return f"{summary.files_downloaded} files, {format_bytes(bytes_now[0])} at {format_bytes(rate)}/s"

    own_progress = progress is None
    if progress is None:
        progress = Progress("download", total=n_products, unit="products", quiet=quiet, note=transfer_note)
    elif progress.total is None:
        progress.total = n_products
    lock = threading.Lock()
    open_tasks: dict[str, int] = {}  # product id -> files in flight (+1 while still being queued)

    def on_bytes(n: int) -> None:
        with lock:
            bytes_now[0] += n
            progress.update(0)

    def task_finished(item_id: str) -> None:
        open_tasks[item_id] -= 1
        if open_tasks[item_id] == 0:
            del open_tasks[item_id]
            with lock:
                progress.update(1)

    fetcher = _Fetcher(cfg.model_copy(update={"parallel": workers}))
    pending: dict[Future[tuple[int, str]], DownloadTask] = {}

    def settle(fut: Future[tuple[int, str]], task: DownloadTask) -> None:
        try:
            transferred, digest = fut.result()
        except DownloadError as exc:
            summary.failures.append(DownloadFailure(task.item_id, task.asset_key, task.href, str(exc)))
            return
        except Exception as exc:  # a library error we did not foresee: report, keep going
            reason = f"{type(exc).__name__}: {first_line(exc, '')}"
            summary.failures.append(DownloadFailure(task.item_id, task.asset_key, task.href, reason))
            return
        summary.bytes_transferred += transferred
        summary.files_downloaded += 1
        _register(cat, task, digest)

    def drain(block_until: int) -> None:
        while len(pending) > block_until:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                task = pending.pop(fut)
                try:
                    settle(fut, task)
                finally:
                    task_finished(task.item_id)

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for coll, pid, item in _iter_products(cat, product_ids):
                summary.products += 1
                open_tasks[pid] = open_tasks.get(pid, 0) + 1  # held until its files are queued
                try:
                    assets = item.get("assets") or {}
                    provided = _local_path(assets.get("data"))
                    if provided is not None and provided.is_file() and not any(k.startswith("data:") for k in assets):
                        summary.files_skipped += 1  # already on the shared drive (internal catalogue)
                        continue
                    unsafe = next((f"{what} {name!r} is not a safe file name ({unsafe_reason(name)})"
                                   for what, name in (("collection id", coll), ("item id", pid))
                                   if not is_safe_name(name)), None)  # fmt: skip
                    if unsafe is not None:
                        # its files would go outside the products root: refuse it, go on
                        summary.failures.append(DownloadFailure(pid, "-", "-", f"refused: {unsafe}"))
                        continue
                    tasks, refused = _tasks_of(item, coll, root, keys)
                    summary.failures.extend(refused)
                    for task in tasks:
                        registered = (item.get("assets") or {}).get(f"data:{task.asset_key}")
                        digest = _complete(task, registered)
                        if digest is not None:
                            summary.files_skipped += 1
                            if _local_path(registered) != task.dest.resolve():
                                _register(cat, task, digest)
                            continue
                        fut = pool.submit(fetch_file, task, fetcher, cfg.retries, on_bytes)
                        pending[fut] = task
                        open_tasks[pid] += 1
                        drain(workers * 4)
                finally:
                    task_finished(pid)
            drain(0)
        cat.save()
    finally:
        if own_progress:
            progress.close()
        fetcher.close()
    summary.seconds = time.monotonic() - t0
    return summary


def product_fetcher(settings: Settings) -> Callable[[MatchupCatalogue, str], None]:
    """A function that downloads one product of a catalogue into its products root.

    What matchup datasets call for a product with no local file. It works on its
    own handle of the catalogue folder (:meth:`MatchupCatalogue.reopen`), so the
    caller's handle keeps its own pending changes; raises :class:`DownloadError`
    with the first failure's reason.
    """

    def fetch(cat: MatchupCatalogue, product_id: str) -> None:
        own = cat.reopen()
        try:
            summary = download_products(own, settings, product_ids=[product_id], quiet=True)
        finally:
            own.close()
        if summary.failures:
            raise DownloadError(summary.failures[0].reason)

    return fetch
