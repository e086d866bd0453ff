"""eomatch.download with real servers: local HTTP (Range) and S3 (moto)."""

from __future__ import annotations

import hashlib
import threading
import time
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
