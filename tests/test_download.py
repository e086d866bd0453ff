"""eomatch.download with real servers: local HTTP (Range) and S3 (moto)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers_http import RangeServer, S3Server, build_scene, sha256_multihash

from eomatch.catalogue import MatchupCatalogue
from eomatch.download import download, parse_multihash
from eomatch.errors import DownloadError
from eomatch.model import Product
from eomatch.settings import Settings, load_settings


@pytest.fixture(scope="module")
def s3() -> S3Server:  # type: ignore[misc]
    server = S3Server().start()
    yield server
    server.stop()


def _settings(s3: S3Server | None = None, **download: object) -> Settings:
    values: dict[str, object] = {"parallel": 2, "retries": 1}
    if s3 is not None:
        values.update(s3.download_settings())
    values.update(download)
    return load_settings(overrides={"download": values}, environ={})


def _product_with(cat: MatchupCatalogue, pid: str, assets: dict) -> None:  # type: ignore[type-arg]
    from shapely.geometry import box

    cat.add_product(Product.create(id=pid, collection="P", platform="Sentinel-2A", geometry=box(0, 0, 1, 1),
                                   start="2022-05-21T10:00:00Z", assets=assets))  # fmt: skip


def test_http_and_s3_assets_download_verify_and_register(tmp_path, s3) -> None:  # type: ignore[no-untyped-def]
    with RangeServer(tmp_path / "data") as http:
        scene = build_scene(tmp_path / "cat", tmp_path / "data", http, s3, local_data=False)
        summary = download(_settings(s3), path=scene.root, quiet=True)
        assert summary.failures == []
        assert summary.files_downloaded == 2 and summary.products == 2
        assert summary.bytes_transferred == sum(p.stat().st_size for p in scene.product_files.values())
        cat = MatchupCatalogue.open(scene.root)
        for pid, source in scene.product_files.items():
            data = cat.get_product(pid)["assets"]["data"]
            local = Path(data["href"][len("file://"):])
            assert data["href"].startswith("file:///") and local.is_absolute()
            assert local.read_bytes() == source.read_bytes()
            assert data["file:size"] == source.stat().st_size
            assert data["file:checksum"] == sha256_multihash(source)
            assert not list(local.parent.glob("*.part"))
        assert "thumbnail" not in {a.get("eomatch:source_asset") for a in cat.get_product(pid)["assets"].values()}
        # a second run finds everything complete and transfers nothing
        sent = http.bytes_sent
        again = download(_settings(s3), path=scene.root, quiet=True)
        assert again.files_skipped == 2 and again.files_downloaded == 0 and again.bytes_transferred == 0
        assert http.bytes_sent == sent


def test_resumes_after_the_server_dies_mid_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    data.mkdir()
    blob = data / "big.bin"
    blob.write_bytes(hashlib.sha256(b"seed").digest() * (4 * 1024 * 1024 // 32))  # 4 MiB
    size = blob.stat().st_size
    server = RangeServer(data, chunk_bytes=64 * 1024, delay_s=0.01).start()
    port = server.port
    cat = MatchupCatalogue.create(tmp_path / "cat")
    _product_with(cat, "p1", {"red": {"href": server.url("big.bin"), "roles": ["data"], "file:size": size,
                                      "file:checksum": sha256_multihash(blob)}})  # fmt: skip
    cat.save()
    part = tmp_path / "products" / "P" / "p1" / "big.bin.part"
    result: dict[str, object] = {}
    worker = threading.Thread(target=lambda: result.update(s=download(
        _settings(retries=1), path=tmp_path / "cat", products_root=tmp_path / "products", quiet=True)))  # fmt: skip
    worker.start()
    deadline = time.monotonic() + 20
    while not (part.exists() and part.stat().st_size > size // 4) and time.monotonic() < deadline:
        time.sleep(0.02)
    server.stop()  # cuts the transfer
    worker.join(30)
    first = result["s"]
    assert len(first.failures) == 1 and "gave up" in first.failures[0].reason  # type: ignore[attr-defined]
    assert part.exists() and 0 < part.stat().st_size < size
    assert not (tmp_path / "products" / "P" / "p1" / "big.bin").exists()

    server = RangeServer(data, port=port).start()  # back on the same URL
    try:
        second = download(_settings(), path=tmp_path / "cat", products_root=tmp_path / "products", quiet=True)
    finally:
        server.stop()
    assert second.failures == []
    assert 0 < second.bytes_transferred < size
    assert any(rng and rng.startswith("bytes=") and rng != "bytes=0-" for _, rng in server.requests)
    final = tmp_path / "products" / "P" / "p1" / "big.bin"
    assert final.read_bytes() == blob.read_bytes()
    assert not part.exists()


def test_checksum_mismatch_is_reported_and_nothing_kept(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.tif").write_bytes(b"abc" * 1000)
    with RangeServer(data) as http:
        cat = MatchupCatalogue.create(tmp_path / "cat")
        _product_with(cat, "p1", {"red": {"href": http.url("a.tif"), "file:checksum": "1220" + "00" * 32}})
        cat.save()
        summary = download(_settings(), path=tmp_path / "cat", quiet=True)
    assert [f.item_id for f in summary.failures] == ["p1"]
    assert "checksum mismatch" in summary.failures[0].reason
    assert not list((tmp_path / "cat" / "products").rglob("a.tif*"))
    assert "data" not in MatchupCatalogue.open(tmp_path / "cat").get_product("p1")["assets"]


def test_bearer_token_and_missing_files(tmp_path, s3) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.tif").write_bytes(b"x" * 5000)
    with RangeServer(data) as http:
        http.bearer = "s3cret"
        cat = MatchupCatalogue.create(tmp_path / "cat")
        _product_with(cat, "p1", {"red": {"href": http.url("a.tif")}})
        _product_with(cat, "p2", {"red": {"href": f"s3://{s3.bucket}/no/such/key.tif"}})
        cat.save()
        denied = download(_settings(s3), path=tmp_path / "cat", quiet=True)
        reasons = {f.item_id: f.reason for f in denied.failures}
        assert "HTTP 401" in reasons["p1"] and "not found" in reasons["p2"]
        table = denied.failure_table()
        assert "p1" in table and "p2" in table and "HTTP 401" in table
        allowed = download(_settings(s3, bearer_token="s3cret"), path=tmp_path / "cat", quiet=True)
    assert [f.item_id for f in allowed.failures] == ["p2"]
    local = MatchupCatalogue.open(tmp_path / "cat").get_product("p1")["assets"]["data"]["href"]
    assert Path(local[len("file://"):]).read_bytes() == b"x" * 5000


def test_server_ignoring_range_restarts_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.bin").write_bytes(bytes(range(256)) * 100)
    with RangeServer(data) as http:
        http.ranges = False
        cat = MatchupCatalogue.create(tmp_path / "cat")
        _product_with(cat, "p1", {"red": {"href": http.url("a.bin")}})
        cat.save()
        part = tmp_path / "cat" / "products" / "P" / "p1" / "a.bin.part"
        part.parent.mkdir(parents=True)
        part.write_bytes(b"garbage that must not survive")
        summary = download(_settings(), path=tmp_path / "cat", quiet=True)
    assert summary.failures == []
    assert (part.parent / "a.bin").read_bytes() == bytes(range(256)) * 100


def test_parse_multihash() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    assert parse_multihash("1220" + digest) == ("sha256", digest)
    with pytest.raises(DownloadError):
        parse_multihash("1220abcd")
    with pytest.raises(DownloadError):
        parse_multihash("zz")


# --------------------------------------------------------------------------- auth, size, anonymous S3


def _one_file_catalogue(tmp_path: Path, href: str, **asset: object) -> Path:
    """A catalogue with one product ``p1`` whose ``red`` asset is ``href``."""
    cat = MatchupCatalogue.create(tmp_path / "cat")
    _product_with(cat, "p1", {"red": {"href": href, "roles": ["data"], **asset}})
    cat.save()
    cat.close()
    return tmp_path / "cat"


@contextmanager
def _served_one_file(tmp_path: Path, content: bytes, basic: tuple[str, str] | None = None,
                     **asset: object) -> Iterator[tuple[RangeServer, Path]]:
    """``a.tif`` holding ``content`` on a local range server (behind basic auth when
    ``basic``) and the root of a catalogue whose product ``p1`` points at it."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.tif").write_bytes(content)
    with RangeServer(data) as http:
        http.basic = basic
        yield http, _one_file_catalogue(tmp_path, http.url("a.tif"), **asset)


def _write_netrc(path: Path, password: str) -> None:
    """A netrc giving user ``bob`` ``password`` on the loopback host, private as netrc must be."""
    path.write_text(f"machine 127.0.0.1\n  login bob\n  password {password}\n")
    path.chmod(0o600)


def _assert_not_kept(root: Path, name: str, pid: str = "p1") -> None:
    """Nothing under the final name, no empty ``.part`` or folder left, no local asset registered."""
    folder = root / "products" / "P" / pid
    assert not (folder / name).exists()
    assert not (folder / f"{name}.part").exists()
    assert not folder.exists() or any(folder.iterdir())
    assets = MatchupCatalogue.open(root).get_product(pid)["assets"]
    assert "data" not in assets and "data:red" not in assets


def test_basic_auth_from_settings(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """download.username/password go out as HTTP basic auth; a wrong password is a 401 failure."""
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))  # a real ~/.netrc must not interfere
    with _served_one_file(tmp_path, b"basic" * 1000, basic=("alice", "pa:ss w0rd")) as (http, root):
        wrong = download(_settings(username="alice", password="nope"), path=root, quiet=True)
        assert [(f.item_id, f.asset_key) for f in wrong.failures] == [("p1", "red")]
        assert "HTTP 401" in wrong.failures[0].reason and "HTTP 401" in wrong.failure_table()
        assert wrong.files_downloaded == 0
        _assert_not_kept(root, "a.tif")
        right = download(_settings(username="alice", password="pa:ss w0rd"), path=root, quiet=True)
    assert right.failures == [] and right.files_downloaded == 1
    assert (root / "products" / "P" / "p1" / "a.tif").read_bytes() == b"basic" * 1000
    assert http.authorizations[-1] is not None and http.authorizations[-1].startswith("Basic ")


@pytest.mark.parametrize("via", ["NETRC", "HOME"])
def test_netrc_credentials(tmp_path, monkeypatch, via: str) -> None:  # type: ignore[no-untyped-def]
    """With download.use_netrc the host's netrc entry is used ($NETRC, else ~/.netrc); off, it is not."""
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    _write_netrc(netrc, "hunter2")
    if via == "NETRC":
        monkeypatch.setenv("NETRC", str(netrc))
        monkeypatch.setenv("HOME", str(tmp_path / "elsewhere"))
    else:
        monkeypatch.delenv("NETRC", raising=False)
        monkeypatch.setenv("HOME", str(home))
    with _served_one_file(tmp_path, b"netrc" * 1000, basic=("bob", "hunter2")) as (_, root):
        off = download(_settings(use_netrc=False), path=root, quiet=True)
        assert len(off.failures) == 1 and "HTTP 401" in off.failures[0].reason
        _assert_not_kept(root, "a.tif")
        on = download(_settings(), path=root, quiet=True)  # use_netrc defaults to true
        assert on.failures == [] and on.files_downloaded == 1
        _write_netrc(netrc, "wrong")
        (root / "products" / "P" / "p1" / "a.tif").unlink()
        stale = download(_settings(), path=root, quiet=True)
    assert len(stale.failures) == 1 and "HTTP 401" in stale.failures[0].reason
    assert not (root / "products" / "P" / "p1" / "a.tif").exists()


def test_netrc_file_setting_names_the_netrc(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """download.netrc_file is read instead of $NETRC / ~/.netrc (settings, not the environment)."""
    netrc = tmp_path / "creds" / "netrc"
    netrc.parent.mkdir()
    _write_netrc(netrc, "hunter2")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path / "elsewhere"))
    with _served_one_file(tmp_path, b"netrc" * 1000, basic=("bob", "hunter2")) as (_, root):
        got = download(_settings(netrc_file=str(netrc)), path=root, quiet=True)
    assert got.failures == [] and got.files_downloaded == 1


@pytest.mark.parametrize("delta", [-1, 1, 4000])
def test_size_mismatch_is_reported_and_nothing_kept(tmp_path, delta: int) -> None:  # type: ignore[no-untyped-def]
    """An asset whose file:size differs from what the server sends is not kept, and says why."""
    with _served_one_file(tmp_path, b"s" * 3000, **{"file:size": 3000 + delta}) as (_, root):
        summary = download(_settings(), path=root, quiet=True)
        again = download(_settings(), path=root, quiet=True)  # not mistaken for complete the second time
    assert [f.item_id for f in summary.failures] == ["p1"]
    assert "file:size" in summary.failures[0].reason and str(3000 + delta) in summary.failures[0].reason
    assert summary.files_downloaded == 0 and summary.files_skipped == 0
    assert [f.item_id for f in again.failures] == ["p1"] and again.files_skipped == 0
    assert not list((root / "products").rglob("a.tif*"))
    _assert_not_kept(root, "a.tif")


def test_anonymous_s3_reads_public_objects_unsigned(tmp_path, s3) -> None:  # type: ignore[no-untyped-def]
    """download.s3_anonymous (the default) reads a public object with unsigned requests;
    a private object in the same bucket is an "access denied" failure, nothing kept."""
    blob = tmp_path / "anon.bin"
    blob.write_bytes(hashlib.sha256(b"anon").digest() * 4096)
    public_key, private_key = f"anon/{tmp_path.name}/anon.bin", f"anon/{tmp_path.name}/private/secret.bin"
    public = s3.put(public_key, blob, acl="public-read")
    private = s3.put(private_key, blob)
    # the recorder does see signatures: the uploads were signed
    assert any(m == "PUT" and p.endswith(public_key) and (a or "").startswith("AWS4-HMAC-SHA256") for m, p, a in s3.requests)
    cat = MatchupCatalogue.create(tmp_path / "cat")
    fields = {"roles": ["data"], "file:size": blob.stat().st_size, "file:checksum": sha256_multihash(blob)}
    _product_with(cat, "p1", {"red": {"href": public, **fields}})
    _product_with(cat, "p2", {"red": {"href": private, **fields}})
    cat.save()
    cat.close()
    settings = _settings(s3_endpoint_url=s3.endpoint)
    assert settings.download.s3_anonymous and settings.download.s3_access_key_id is None
    seen = len(s3.requests)
    summary = download(settings, path=tmp_path / "cat", quiet=True)
    assert [(f.item_id, f.href) for f in summary.failures] == [("p2", private)]
    assert "access denied" in summary.failures[0].reason
    assert summary.files_downloaded == 1
    assert (tmp_path / "cat" / "products" / "P" / "p1" / "anon.bin").read_bytes() == blob.read_bytes()
    _assert_not_kept(tmp_path / "cat", "secret.bin", pid="p2")
    reads = [(m, p, a) for m, p, a in s3.requests[seen:] if p.endswith((public_key, private_key))]
    assert {p.rsplit("/", 1)[-1] for _, p, _ in reads} == {"anon.bin", "secret.bin"}
    assert all(a is None for _, _, a in reads), reads


def test_a_file_another_download_is_writing_is_left_alone(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two downloads of the same file never write one .part together: the second
    reports the lock, and the first one's partial bytes stay as they were."""
    import fcntl
    import os

    with _served_one_file(tmp_path, b"x" * 5000) as (_, root):
        folder = root / "products" / "P" / "p1"
        folder.mkdir(parents=True)
        part = folder / "a.tif.part"
        part.write_bytes(b"x" * 1000)  # what the other run has so far
        fd = os.open(part, os.O_WRONLY)
        fcntl.flock(fd, fcntl.LOCK_EX)  # the other run holds it
        try:
            busy = download(_settings(), path=root, quiet=True)
        finally:
            os.close(fd)
        assert len(busy.failures) == 1 and "another download" in busy.failures[0].reason
        assert part.read_bytes() == b"x" * 1000 and not (folder / "a.tif").exists()
        done = download(_settings(), path=root, quiet=True)  # once it is free: resumes
    assert done.failures == [] and (folder / "a.tif").read_bytes() == b"x" * 5000
    assert done.bytes_transferred == 4000


def _hand_written_product(cat_root: Path, item_id: str, assets: dict) -> None:  # type: ignore[type-arg]
    """A product file as an older eomatch-query (or anyone) could have written it:
    the catalogue's own writer refuses such ids, so it goes on disk directly."""
    import json

    from shapely.geometry import box

    item = Product.create(id="placeholder", collection="P", platform="Sentinel-2A", geometry=box(0, 0, 1, 1),
                          start="2022-05-21T10:00:00Z", assets=assets).to_dict()  # fmt: skip
    item["id"] = item_id
    folder = cat_root / "P" / "2022" / "05" / "21"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hand-written.json").write_text(json.dumps(item))


def test_unsafe_item_ids_asset_keys_and_file_names_stay_under_the_products_root(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A product id ../../../../outside/PWNED, an asset key that climbs out and an href
    whose file name is hidden: nothing is written outside the products root; the unsafe
    ones are refused (listed as failures) and the rest is downloaded."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.tif").write_bytes(b"a" * 100)
    (data / ".bashrc").write_bytes(b"echo pwned")
    (data / "index.json").write_bytes(b"{}")  # what the server answers for the bare URL
    root = tmp_path / "x" / "y" / "z" / "products"
    with RangeServer(data) as http:
        cat = MatchupCatalogue.create(tmp_path / "cat")
        _product_with(cat, "p1", {
            "red": {"href": http.url("a.tif"), "roles": ["data"]},
            "meta": {"href": http.url(".bashrc"), "roles": ["data"]},  # the key names it instead
            "../../../../escape": {"href": http.url(""), "roles": ["data"]},  # neither is a file name
        })  # fmt: skip
        cat.save()
        _hand_written_product(cat.root, "../../../../outside/PWNED", {"red": {"href": http.url("a.tif")}})
        MatchupCatalogue.open(cat.root).reindex()
        summary = download(_settings(), path=tmp_path / "cat", products_root=root, quiet=True)
    assert not [p for p in tmp_path.rglob("*") if "PWNED" in p.name or "escape" in p.name or p.name == ".bashrc"
                and p.parent != data]  # fmt: skip
    assert not (tmp_path / "x" / "outside").exists()
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == ["P/p1/a.tif", "P/p1/meta"]
    assert (root / "P" / "p1" / "meta").read_bytes() == b"echo pwned"
    reasons = {(f.item_id, f.asset_key): f.reason for f in summary.failures}
    assert set(reasons) == {("p1", "../../../../escape"), ("../../../../outside/PWNED", "-")}
    assert "no safe file name" in reasons[("p1", "../../../../escape")]
    assert "refused: item id '../../../../outside/PWNED' is not a safe file name" in reasons[("../../../../outside/PWNED", "-")]
    assert summary.files_downloaded == 2 and summary.products == 2
