"""The cloud path end to end: shared-drive files moved to object storage (moto on loopback).

A catalogue with ``file://`` product assets is ingested into the real stack, the
files are uploaded to an S3 bucket, ``eomatch-migrate-hrefs`` moves the hrefs to
``s3://bucket/...``; then ``/api/`` serves the ``s3://`` hrefs, ``/external/``
hides them (``stack.api.public_schemes`` is http/https: an ``s3://`` URI is not a
URL a browser or a STAC client can open without an S3 SDK and credentials), and
``eomatch-query`` + ``eomatch-download`` fetch the objects byte-exact from the bucket.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from catalogue_factory import build_catalogue
from conftest import RunningStack
from helpers_http import S3Server

from eomatch import jsonio
from eomatch.catalogue import MatchupCatalogue
from eomatch.ingest import ingest
from eomatch.server.external_policy import policy_from_settings

BIN = Path(sys.executable).parent


@pytest.fixture()
def s3() -> Iterator[S3Server]:
    server = S3Server(bucket=f"eomatch-{uuid.uuid4().hex[:8]}").start()
    try:
        yield server
    finally:
        server.stop()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_s3_assets_are_served_internally_hidden_externally_and_download_byte_exact(
    running_stack: RunningStack, s3: S3Server, tmp_path: Path
) -> None:
    prefix = f"/npl-data-{uuid.uuid4().hex[:8]}"
    start = datetime(2020, 1 + uuid.uuid4().int % 12, 1 + uuid.uuid4().int % 27, 9, 0, tzinfo=UTC)
    cat = build_catalogue(tmp_path / "cat", n_events=2, internal_prefix=prefix, start=start)
    ingest(running_stack.settings, catalogue=cat.root, quiet=True)

    # The shared drive's files, uploaded to the bucket under a key prefix of their own
    # (not under /npl-data, so /external/ can only hide them for their scheme).
    key_root = f"shared-{uuid.uuid4().hex[:8]}"
    s3_prefix = f"s3://{s3.bucket}/{key_root}"
    products = {it["id"]: it["collection"] for it in cat.iter_items() if "nfs" in it.get("assets", {})}
    assert len(products) == 4
    sources: dict[str, bytes] = {}
    for item_id in products:
        href = cat.get_product(item_id)["assets"]["nfs"]["href"]
        rel = href.removeprefix("file://").removeprefix(prefix + "/")
        body = hashlib.sha256(item_id.encode()).digest() * (1000 + len(sources))  # distinct, ~32 KB
        local = tmp_path / "share" / rel
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(body)
        s3.put(f"{key_root}/{rel}", local)
        sources[item_id] = body

    _run(
        "eomatch-migrate-hrefs", "--from", f"file://{prefix}", "--to", s3_prefix, "--catalogue", str(cat.root),
        "--state-dir", str(running_stack.settings.stack.state_dir), "-q",
    )  # fmt: skip

    with httpx.Client(timeout=30) as client:
        for item_id, collection in products.items():
            internal = client.get(f"{running_stack.internal}/collections/{collection}/items/{item_id}")
            assert internal.status_code == 200, internal.text
            assert internal.json()["assets"]["nfs"]["href"].startswith(s3_prefix + "/products/")
            external = client.get(f"{running_stack.external}/collections/{collection}/items/{item_id}")
            assert external.status_code == 200, external.text
            assets = external.json()["assets"]
            assert "nfs" not in assets, assets  # s3:// is not a public scheme
            assert "s3://" not in external.text
            # public https assets are still shown next to it
            assert any(a["href"].startswith("https://example.com/") for a in assets.values()), assets

    # A researcher's path: pull the items from /api/ into a folder, download the s3 assets.
    config = tmp_path / "cloud.yaml"
    config.write_text(yaml.safe_dump({"download": {**s3.download_settings(), "parallel": 2, "retries": 1}}))
    local_cat = tmp_path / "pulled"
    _run(
        "eomatch-query", "--config", str(config), "--api-url", running_stack.internal + "/",
        "--output", str(local_cat), "--ids", ",".join(products), "-q",
    )  # fmt: skip
    seen = len(s3.requests)
    proc = _run("eomatch-download", "--config", str(config), "--path", str(local_cat), "--assets", "nfs", "-q")
    reads = [p for m, p, _ in s3.requests[seen:] if m == "GET" and key_root in p]
    assert len({p for p in reads}) == 4, (reads, proc.stdout)
    pulled = MatchupCatalogue.open(local_cat)
    for item_id, body in sources.items():
        assets = pulled.get_product(item_id)["assets"]
        copy = assets["data:nfs"]  # the local copy download registers next to the s3 asset
        assert copy["eomatch:source_asset"] == "nfs"
        assert Path(copy["href"].removeprefix("file://")).read_bytes() == body
        assert copy["file:size"] == len(body)
        assert assets["nfs"]["href"].startswith(s3_prefix + "/")
    # The source catalogue's files hold the s3:// hrefs too.
    doc = jsonio.read_json(cat.path_of(next(iter(products))))
    assert doc["assets"]["nfs"]["href"].startswith(s3_prefix + "/products/")


def test_external_policy_hides_s3_unless_listed_as_public() -> None:
    """The documented decision: s3:// stays internal by default; a site whose external
    users all have S3 tools can list it in stack.api.public_schemes."""
    href = "s3://bucket/shared/products/a.tif"
    assert not policy_from_settings(["http", "https"], ["/npl-data"]).is_public_href(href)
    assert policy_from_settings(["http", "https", "s3"], ["/npl-data"]).is_public_href(href)
    # an s3 key that repeats an internal prefix stays hidden even then
    assert not policy_from_settings(["s3"], ["/npl-data"]).is_public_href("s3://bucket/npl-data/a.tif")
