"""register_analysis: versioned analysis assets, locally and pushed to the real stack."""

from __future__ import annotations

import hashlib
import multiprocessing
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from shapely.geometry import box

from eomatch import jsonio
from eomatch.add_asset import (
    FILE_EXTENSION_URL,
    ITEM_ASSETS_EXTENSION_URL,
    AddAssetError,
    date_from_name,
    list_analysis_versions,
    media_type_for,
    register_analysis,
)
from eomatch.catalogue import MatchupCatalogue
from eomatch.model import Matchup, MatchupEvent, Product

PAIR = "LANDSAT_C2L1-Landsat-9-vs-S2_MSI_L1C-S2A"


# --------------------------------------------------------------------------- helpers


def build_catalogue(root: Path) -> tuple[Path, str, str]:
    """A catalogue with one event, one matchup and its two products: (root, collection, matchup id)."""
    tag = uuid.uuid4().hex[:8]
    t0 = datetime(2022, 5, 21, 10, 30, tzinfo=UTC)
    s2 = Product.create(
        id=f"S2A_TEST_{tag}", collection="S2_MSI_L1C", platform="Sentinel-2A",
        geometry=box(10.0, 45.0, 11.0, 46.0), start=t0, instrument="MSI",
    )  # fmt: skip
    l9 = Product.create(
        id=f"LC09_TEST_{tag}", collection="LANDSAT_C2L1", platform="Landsat-9",
        geometry=box(10.5, 45.5, 11.5, 46.5), start="2022-05-21T10:40:00Z", instrument="OLI-2",
    )  # fmt: skip
    event = MatchupEvent.create(
        platform_a="Sentinel-2A", collection_a="S2_MSI_L1C",
        platform_b="Landsat-9", collection_b="LANDSAT_C2L1",
        start="2022-05-21T10:20:00Z", end="2022-05-21T10:50:00Z",
        region=box(10.0, 45.0, 11.5, 46.5), min_distance_km=5.0,
    )  # fmt: skip
    matchup = Matchup.create(event, s2, l9)
    with MatchupCatalogue.create(root) as cat:
        cat.add_event(event)
    return root, matchup.collection_id, matchup.id


def result_file(folder: Path, name: str, payload: bytes | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(payload if payload is not None else f"netcdf stand-in {name} {uuid.uuid4()}".encode())
    return path


def item_of(root: Path, collection: str, item_id: str) -> dict[str, Any]:
    cat = MatchupCatalogue.open(root)
    try:
        return cat.get_item(item_id, collection)
    finally:
        cat.close()


@pytest.fixture
def catalogue(tmp_path: Path) -> tuple[Path, str, str]:
    return build_catalogue(tmp_path / "cat")


# --------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("matchup-123_comparison_20260510.nc", date(2026, 5, 10)),
        ("/npl-data/analysis/2022/05/21/matchup-123_comparison_2026-01-15.nc", date(2026, 1, 15)),
        ("https://data.example.org/a/run_20250229_x.nc", None),  # not a real date
        ("matchup-a20260510b_comparison.nc", None),  # digits inside a hex id
        ("comparison.nc", None),
    ],
)
def test_date_from_name(name: str, expected: date | None) -> None:
    assert date_from_name(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("x.nc", "application/x-netcdf"),
        ("X.TIF", "image/tiff; application=geotiff"),
        ("a.tiff", "image/tiff; application=geotiff"),
        ("a.json", "application/json"),
        ("a.csv", "text/csv"),
        ("a.zarr", "application/vnd+zarr"),
        ("a.h5", "application/x-hdf5"),
        ("https://h/x/a.nc", "application/x-netcdf"),
        ("a.weird", "application/octet-stream"),
    ],
)
def test_media_type_for(name: str, expected: str) -> None:
    assert media_type_for(name) == expected


# --------------------------------------------------------------------------- local registration


def test_register_writes_dated_and_latest_with_file_fields(catalogue: tuple[Path, str, str], tmp_path: Path) -> None:
    root, coll, mid = catalogue
    f = result_file(tmp_path / "npl-data", f"{mid}_comparison_20260510.nc")
    res = register_analysis(catalogue_path=root, collection_id=coll, item_id=mid, file_path=f)
    assert (res.dated_key, res.latest_key, res.date) == ("comparison:2026-05-10", "comparison:latest", date(2026, 5, 10))
    assert not res.replaced and res.latest_moved and res.pushed is None
    item = item_of(root, coll, mid)
    dated = item["assets"]["comparison:2026-05-10"]
    latest = item["assets"]["comparison:latest"]
    data = f.read_bytes()
    assert dated["href"] == f"file://{f}"
    assert dated["file:size"] == len(data)
    assert dated["file:checksum"] == "1220" + hashlib.sha256(data).hexdigest()
    assert dated["type"] == "application/x-netcdf"
    assert dated["roles"] == ["data", "analysis"]
    assert dated["title"] == "Spectral comparison"
    assert latest["href"] == dated["href"] and latest["title"] == "Spectral comparison (latest)"
    assert FILE_EXTENSION_URL in item["stac_extensions"]
    # the item is otherwise intact (links re-made by the catalogue, schema extension kept)
    assert any(lk["rel"] == "derived_from" for lk in item["links"])
    assert item["properties"]["matchup:type"] == "matchup"
    from eomatch.schema import iter_errors

    assert iter_errors(item) == []
    col = MatchupCatalogue.open(root).get_collection(coll)
    assert ITEM_ASSETS_EXTENSION_URL in col["stac_extensions"]
    assert col["item_assets"]["comparison:latest"]["type"] == "application/x-netcdf"
    assert "href" not in col["item_assets"]["comparison:latest"]


def test_latest_follows_the_newest_date_not_the_last_call(catalogue: tuple[Path, str, str], tmp_path: Path) -> None:
    root, coll, mid = catalogue
    may = result_file(tmp_path, "r_20260510.nc")
    jan = result_file(tmp_path, "r_20260115.nc")
    jun = result_file(tmp_path, "r_20260601.nc")
    register_analysis(catalogue_path=root, collection_id=coll, item_id=mid, file_path=may)
    older = register_analysis(catalogue_path=root, collection_id=coll, item_id=mid, file_path=jan)
    assert older.latest_date == date(2026, 5, 10) and not older.latest_moved
    assert item_of(root, coll, mid)["assets"]["comparison:latest"]["href"] == f"file://{may}"
    newer = register_analysis(catalogue_path=root, collection_id=coll, item_id=mid, file_path=jun)
    assert newer.latest_moved and newer.latest_date == date(2026, 6, 1)
    assets = item_of(root, coll, mid)["assets"]
    assert assets["comparison:latest"]["href"] == f"file://{jun}"
    assert {k for k in assets if k.startswith("comparison:")} == {
        "comparison:latest", "comparison:2026-01-15", "comparison:2026-05-10", "comparison:2026-06-01",
    }  # fmt: skip
    versions = list_analysis_versions(root, coll, mid)
    assert [v.date for v in versions] == [date(2026, 1, 15), date(2026, 5, 10), date(2026, 6, 1)]
    assert [v.is_latest for v in versions] == [False, False, True]
    assert versions[0].size_bytes == jan.stat().st_size


def test_same_date_replaces_that_entry(catalogue: tuple[Path, str, str], tmp_path: Path) -> None:
    root, coll, mid = catalogue
    first = result_file(tmp_path / "a", "r_20260510.nc", b"first run")
    second = result_file(tmp_path / "b", "r_20260510.nc", b"second, longer run")
    assert not register_analysis(catalogue_path=root, collection_id=coll, item_id=mid, file_path=first).replaced
    again = register_analysis(catalogue_path=root, collection_id=coll, item_id=mid, file_path=second)
    assert again.replaced and again.latest_moved
    assert "replaced comparison:2026-05-10" in again.line()
    assets = item_of(root, coll, mid)["assets"]
    assert assets["comparison:2026-05-10"]["file:size"] == len(b"second, longer run")
    assert assets["comparison:latest"]["href"] == f"file://{second}"
    assert len([k for k in assets if k.startswith("comparison:")]) == 2


def test_explicit_date_prefix_title_and_default_today(catalogue: tuple[Path, str, str], tmp_path: Path) -> None:
    root, coll, mid = catalogue
    f = result_file(tmp_path, "bias_map.tif")
    res = register_analysis(
        catalogue_path=root, collection_id=coll, item_id=mid, file_path=f,
        key_prefix="bias", title="Bias map", roles=["data"],
    )  # fmt: skip
    assert res.date == datetime.now(UTC).date()
    asset = item_of(root, coll, mid)["assets"][res.dated_key]
    assert res.dated_key.startswith("bias:") and asset["title"] == "Bias map"
    assert asset["type"] == "image/tiff; application=geotiff" and asset["roles"] == ["data"]
    res2 = register_analysis(catalogue_path=root, collection_id=coll, item_id=mid, file_path=f, date="2020-02-29")
    assert res2.dated_key == "comparison:2020-02-29"


def test_published_url_needs_no_local_file(catalogue: tuple[Path, str, str]) -> None:
    root, coll, mid = catalogue
    url = "https://data.example.org/analysis/matchup_comparison_20260510.nc"
    res = register_analysis(catalogue_path=root, collection_id=coll, item_id=mid, file_path=url)
    asset = item_of(root, coll, mid)["assets"]["comparison:2026-05-10"]
    assert res.href == url == asset["href"]
    assert "file:size" not in asset and "file:checksum" not in asset


def test_href_override_keeps_local_size_and_checksum(catalogue: tuple[Path, str, str], tmp_path: Path) -> None:
    root, coll, mid = catalogue
    f = result_file(tmp_path, "r_20260510.nc", b"abc")
    url = "https://data.example.org/analysis/r_20260510.nc"
    register_analysis(catalogue_path=root, collection_id=coll, item_id=mid, file_path=f, href=url)
    asset = item_of(root, coll, mid)["assets"]["comparison:latest"]
    assert asset["href"] == url
    assert asset["file:checksum"] == "1220" + hashlib.sha256(b"abc").hexdigest()


def test_bad_input_writes_nothing(catalogue: tuple[Path, str, str], tmp_path: Path) -> None:
    root, coll, mid = catalogue
    path = MatchupCatalogue.open(root).path_of(mid, coll)
    col_path = root / coll / "collection.json"
    before, col_before = path.read_bytes(), col_path.read_bytes()
    with pytest.raises(AddAssetError, match="not found"):
        register_analysis(catalogue_path=root, collection_id=coll, item_id=mid, file_path=tmp_path / "nope.nc")
    with pytest.raises(AddAssetError, match="not a date"):
        register_analysis(
            catalogue_path=root, collection_id=coll, item_id=mid, file_path=result_file(tmp_path, "x.nc"), date="May"
        )
    with pytest.raises(AddAssetError, match="key prefix"):
        register_analysis(
            catalogue_path=root, collection_id=coll, item_id=mid, file_path=result_file(tmp_path, "y.nc"),
            key_prefix="a:b",
        )  # fmt: skip
    (tmp_path / "www").mkdir()
    with pytest.raises(AddAssetError, match="is a folder, not a result file"):
        register_analysis(catalogue_path=root, collection_id=coll, item_id=mid, file_path=tmp_path / "www")
    assert path.read_bytes() == before and col_path.read_bytes() == col_before
    # a Zarr store is one dataset: accepted, with its total size
    store = tmp_path / "cmp_20260301.zarr"
    store.mkdir()
    (store / "zarr.json").write_text("{}")
    res = register_analysis(catalogue_path=root, collection_id=coll, item_id=mid, file_path=store)
    assert res.size_bytes == 2 and res.checksum is None


# --------------------------------------------------------------------------- concurrency


def _register_in_child(root: str, coll: str, mid: str, file_path: str, barrier: Any) -> None:
    barrier.wait()
    register_analysis(catalogue_path=root, collection_id=coll, item_id=mid, file_path=file_path)


def test_two_processes_registering_at_once_both_survive(catalogue: tuple[Path, str, str], tmp_path: Path) -> None:
    root, coll, mid = catalogue
    older = result_file(tmp_path, "r_20260115.nc")
    newer = result_file(tmp_path, "r_20260510.nc")
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no inherited locks or sqlite handles
    barrier = ctx.Barrier(2)
    procs = [
        ctx.Process(target=_register_in_child, args=(str(root), coll, mid, str(f), barrier)) for f in (newer, older)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assets = item_of(root, coll, mid)["assets"]
    assert "comparison:2026-01-15" in assets and "comparison:2026-05-10" in assets
    assert assets["comparison:latest"]["href"] == f"file://{newer}"
    jsonio.read_json(root / coll / "collection.json")  # still valid JSON


# --------------------------------------------------------------------------- the real stack


def _api_item(base: str, coll: str, mid: str) -> dict[str, Any]:
    r = httpx.get(f"{base}/collections/{coll}/items/{mid}", timeout=30)
    assert r.status_code == 200, r.text[:300]
    return dict(r.json())


@pytest.mark.stack
def test_push_end_to_end(running_stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import api_key

    from eomatch.ingest import ingest

    root, coll, mid = build_catalogue(tmp_path / "cat")
    ingest(running_stack.settings, catalogue=root, quiet=True)
    assert "comparison:latest" not in _api_item(running_stack.internal, coll, mid)["assets"]

    may = result_file(tmp_path / "npl", "r_20260510.nc")
    res = register_analysis(
        catalogue_path=root, collection_id=coll, item_id=mid, file_path=may, push=True,
        settings=running_stack.settings,
    )  # fmt: skip
    assert res.pushed == "database"
    internal = _api_item(running_stack.internal, coll, mid)
    assert internal["assets"]["comparison:2026-05-10"]["href"] == f"file://{may}"
    assert internal["assets"]["comparison:latest"]["file:checksum"].startswith("1220")
    col = httpx.get(f"{running_stack.internal}/collections/{coll}", timeout=30).json()
    assert "comparison:latest" in col["item_assets"]
    external = _api_item(running_stack.external, coll, mid)
    assert not any(k.startswith("comparison:") for k in external["assets"])

    jan = result_file(tmp_path / "npl", "r_20260115.nc")
    register_analysis(
        catalogue_path=root, collection_id=coll, item_id=mid, file_path=jan, push=True,
        settings=running_stack.settings,
    )  # fmt: skip
    internal = _api_item(running_stack.internal, coll, mid)
    assert internal["assets"]["comparison:latest"]["href"] == f"file://{may}"
    assert "comparison:2026-01-15" in internal["assets"]

    url = f"https://data.example.org/analysis/{mid}_comparison_20260601.nc"
    monkeypatch.setenv("EOMATCH_API_KEY", api_key(running_stack))  # the key from the environment, as for the CLI
    res = register_analysis(
        catalogue_path=root, collection_id=coll, item_id=mid, file_path=url, push=True,
        settings=running_stack.settings, api_url=running_stack.internal,
    )  # fmt: skip
    assert res.pushed == "api" and res.latest_moved
    internal = _api_item(running_stack.internal, coll, mid)
    assert internal["assets"]["comparison:latest"]["href"] == url
    assert {"comparison:2026-01-15", "comparison:2026-05-10", "comparison:2026-06-01"} <= set(internal["assets"])
    external = _api_item(running_stack.external, coll, mid)
    shown = {k: a["href"] for k, a in external["assets"].items() if k.startswith("comparison:")}
    assert shown == {"comparison:latest": url, "comparison:2026-06-01": url}


@pytest.mark.stack
@pytest.mark.browser
def test_browser_item_page_shows_only_public_comparison(running_stack: Any, tmp_path: Path, artifacts_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    from eomatch.ingest import ingest

    root, coll, mid = build_catalogue(tmp_path / "cat")
    private = result_file(tmp_path / "npl", "r_20260115.nc")
    register_analysis(catalogue_path=root, collection_id=coll, item_id=mid, file_path=private)
    url = f"https://data.example.org/analysis/{mid}_comparison_20260510.nc"
    register_analysis(catalogue_path=root, collection_id=coll, item_id=mid, file_path=url)
    ingest(running_stack.settings, catalogue=root, quiet=True)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            # STAC Browser (catalogUrl = /external/) routes paths relative to the API root:
            # the item /external/collections/{c}/items/{id} is the page /collections/{c}/items/{id}.
            page.goto(f"{running_stack.base_url}/collections/{coll}/items/{mid}")
            page.get_by_text("Spectral comparison (latest)").first.wait_for(timeout=30_000)
            page.wait_for_load_state("networkidle")
            page.get_by_text("Spectral comparison (latest)").first.click()  # open it: href visible
            page.wait_for_timeout(500)
            hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
            html = page.content()
            titles = page.get_by_text("Spectral comparison").all_inner_texts()
            page.screenshot(path=str(artifacts_dir / "add-asset-browser-item.png"), full_page=True)
        finally:
            browser.close()
    assert url in hrefs
    assert sorted(t.strip() for t in titles) == ["Spectral comparison", "Spectral comparison (latest)"]
    assert "file://" not in html
    assert str(private) not in html


def test_media_type_override_is_recorded(catalogue: tuple[Path, str, str], tmp_path: Path) -> None:
    """media_type= replaces the type guessed from the extension, on the dated and latest assets
    and the collection's item_assets; without it the guess comes back."""
    root, coll, mid = catalogue
    f = result_file(tmp_path, "r_20260510.nc")
    custom = "application/x-netcdf; profile=cf-1.10"
    assert media_type_for(f.name) != custom
    res = register_analysis(catalogue_path=root, collection_id=coll, item_id=mid, file_path=f, media_type=custom)
    assets = item_of(root, coll, mid)["assets"]
    assert assets[res.dated_key]["type"] == custom
    assert assets[res.latest_key]["type"] == custom
    col = MatchupCatalogue.open(root).get_collection(coll)
    assert col["item_assets"][res.latest_key]["type"] == custom
    again = register_analysis(catalogue_path=root, collection_id=coll, item_id=mid, file_path=f)
    assert item_of(root, coll, mid)["assets"][again.dated_key]["type"] == media_type_for(f.name)
