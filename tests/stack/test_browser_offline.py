"""STAC Browser works air-gapped (issue 12 item 3), in headless Chromium through the
proxy: no page asks another host (root, a collection, an item with its Source popover,
the search page), the item page's map is painted with the bundled Natural Earth
basemap, and the ``matchup:`` fields show with our labels and units.

Thumbnails are not tested here: the stack does not make them yet (another item)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import RunningStack
from helpers import Writer, make_collection, make_item, unique_id

pytestmark = [pytest.mark.stack, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
BASEMAPS_JS = Path(__file__).resolve().parents[2] / "src/eomatch/stack/browser_pkg/basemaps.config.js"
# An item on the Tyrrhenian coast of Italy: its map shows land and sea.
LON_DEG, LAT_DEG, SIZE_DEG = 12.0, 41.0, 1.5
TIME_DIFF_S = 750.0  # shown as 12.5 min
OVERLAP_FRACTION = 0.4213  # shown as 42.1 %
MAX_CLOUD_COVER = 17.5  # percent already
TIMEOUT_MS = 30_000


def _basemap_color(name: str) -> tuple[int, int, int]:
    """A colour of the basemap as the build has it (so the test follows a restyle)."""
    m = re.search(rf"{name}\s*=\s*'#([0-9a-fA-F]{{6}})'", BASEMAPS_JS.read_text())
    assert m, f"{name} not found in {BASEMAPS_JS}"
    h = m.group(1)
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


@pytest.fixture(scope="module")
def matchup(running_stack: RunningStack) -> Iterator[tuple[str, str]]:
    cid, iid = unique_id("offline"), unique_id("matchup")
    with Writer(running_stack) as w:
        w.collection(make_collection(cid, title=f"Offline browser {cid}", bbox=[LON_DEG, LAT_DEG, LON_DEG + SIZE_DEG, LAT_DEG + SIZE_DEG]))
        w.item(make_item(cid, iid, LON_DEG, LAT_DEG, size_deg=SIZE_DEG, properties={
            "matchup:type": "matchup",
            "matchup:time_diff_s": TIME_DIFF_S,
            "matchup:abs_time_diff_s": TIME_DIFF_S,
            "matchup:overlap_fraction": OVERLAP_FRACTION,
            "matchup:max_cloud_cover": MAX_CLOUD_COVER,
        }, assets={
            # a public provider href the external API keeps: the browser must not fetch it
            "data": {"href": "https://data.example.org/b.tif", "type": "image/tiff; application=geotiff",
                     "roles": ["data"], "title": "Provider band stack"},
        }))
    yield cid, iid
    with Writer(running_stack) as w:
        w.client.delete(f"{running_stack.internal}/collections/{cid}")


@pytest.fixture(scope="module")
def browser_context(running_stack: RunningStack):  # type: ignore[no-untyped-def]
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser.new_context(viewport={"width": 1280, "height": 900})
        finally:
            browser.close()


@pytest.fixture
def page(browser_context):  # type: ignore[no-untyped-def]
    page = browser_context.new_page()
    try:
        yield page
    finally:
        page.close()


def _foreign(urls: list[str], base_url: str) -> list[str]:
    """Every URL a page asked for that is not the stack's own origin (data:/blob: are local)."""
    ours = urlsplit(base_url)
    return [u for u in urls if urlsplit(u).scheme not in ("data", "blob")
            and (urlsplit(u).scheme, urlsplit(u).netloc) != (ours.scheme, ours.netloc)]


def _settle(page) -> None:  # type: ignore[no-untyped-def]
    """Wait until the page has asked for all it will (lazy chunks, map data)."""
    page.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)


def test_no_page_requests_another_host(
    running_stack: RunningStack, matchup: tuple[str, str], page, artifacts_dir: Path  # type: ignore[no-untyped-def]
) -> None:
    cid, iid = matchup
    requested: list[str] = []
    page.on("request", lambda req: requested.append(req.url))
    base = running_stack.base_url
    foreign: dict[str, list[str]] = {}

    def visited(name: str) -> None:
        _settle(page)
        leaks = _foreign(requested, base)
        if leaks:
            foreign[name] = sorted(set(leaks))
        seen.extend(requested)
        requested.clear()

    seen: list[str] = []
    page.goto(base + "/")
    page.get_by_text(f"Offline browser {cid}").first.wait_for(timeout=TIMEOUT_MS)
    visited("root")

    page.goto(f"{base}/collections/{cid}")
    page.get_by_text(iid).first.wait_for(timeout=TIMEOUT_MS)
    visited("collection")

    page.goto(f"{base}/collections/{cid}/items/{iid}")
    page.get_by_role("heading", name=iid).wait_for(timeout=TIMEOUT_MS)
    page.locator(".map canvas").first.wait_for(timeout=TIMEOUT_MS)
    visited("item")
    # the Source popover is where STAC Browser validates against remote schemas
    page.locator("#popover-link-btn").click()
    page.locator("#popover-link").wait_for(timeout=TIMEOUT_MS)
    visited("item's Source popover")
    page.screenshot(path=str(artifacts_dir / "browser-offline-item.png"))

    page.goto(f"{base}/validation/collections/{cid}/items/{iid}")  # validation is off: the item itself
    page.get_by_role("heading", name=iid).wait_for(timeout=TIMEOUT_MS)
    visited("validation page")

    page.goto(f"{base}/search")
    page.locator("form").first.wait_for(timeout=TIMEOUT_MS)
    visited("search")
    page.screenshot(path=str(artifacts_dir / "browser-offline-search.png"))

    assert any(u.startswith(running_stack.external + "/") for u in seen), "the pages never reached the API"
    assert not foreign, f"requests left the stack: {foreign}"


_COUNT_COLORS_JS = """([targets, tolerance]) => {
    const counts = targets.map(() => 0);
    let total = 0;
    for (const canvas of document.querySelectorAll('.map canvas')) {
        const ctx = canvas.getContext('2d', {willReadFrequently: true});
        if (!ctx || !canvas.width || !canvas.height) continue;
        const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 0; i < data.length; i += 4) {
            total += 1;
            targets.forEach(([r, g, b], k) => {
                if (Math.abs(data[i] - r) <= tolerance && Math.abs(data[i + 1] - g) <= tolerance
                    && Math.abs(data[i + 2] - b) <= tolerance && data[i + 3] > 200) counts[k] += 1;
            });
        }
    }
    return {total, counts};
}"""


def test_item_map_is_painted_with_the_bundled_basemap(
    running_stack: RunningStack, matchup: tuple[str, str], page, artifacts_dir: Path  # type: ignore[no-untyped-def]
) -> None:
    cid, iid = matchup
    sea, land = _basemap_color("SEA_COLOR"), _basemap_color("LAND_COLOR")
    page.goto(f"{running_stack.base_url}/collections/{cid}/items/{iid}")
    page.get_by_role("heading", name=iid).wait_for(timeout=TIMEOUT_MS)
    page.locator(".map canvas").first.wait_for(timeout=TIMEOUT_MS)
    _settle(page)

    # the basemap is drawn once its chunk is parsed: poll until both colours show
    result: dict = {}
    for _ in range(60):
        result = page.evaluate(_COUNT_COLORS_JS, [[list(sea), list(land)], 6])
        if result["total"] and min(result["counts"]) > 0.02 * result["total"]:
            break
        page.wait_for_timeout(500)
    page.locator(".map").first.screenshot(path=str(artifacts_dir / "browser-offline-map.png"))
    assert result["total"] > 10_000, f"no map canvas with pixels: {result}"
    sea_px, land_px = result["counts"]
    assert sea_px > 0.02 * result["total"], f"no sea painted on the coast of Italy: {result}"
    assert land_px > 0.02 * result["total"], f"no land painted on the coast of Italy: {result}"


def test_matchup_fields_have_labels_and_units(
    running_stack: RunningStack, matchup: tuple[str, str], page  # type: ignore[no-untyped-def]
) -> None:
    cid, iid = matchup
    page.goto(f"{running_stack.base_url}/collections/{cid}/items/{iid}")
    page.get_by_role("heading", name=iid).wait_for(timeout=TIMEOUT_MS)
    shown = {
        "Time difference (min)": f"{TIME_DIFF_S / 60:g}",
        "Overlap (%)": f"{OVERLAP_FRACTION * 100:.1f}",
        "Max cloud cover (%)": f"{MAX_CLOUD_COVER:g}",
    }
    for label, value in shown.items():
        cell = page.get_by_text(label, exact=True).first
        cell.wait_for(timeout=TIMEOUT_MS)
        # the label's row: the value next to it, in the units the label names
        row_text = cell.locator("xpath=ancestor::*[self::tr or contains(@class,'row')][1]").inner_text()
        assert value in row_text, f"{label}: expected {value} in {row_text!r}"
    shown_text = page.locator("body").inner_text()  # what a visitor reads (keys stay in tooltips)
    assert "matchup:time_diff_s" not in shown_text and "Time Diff S" not in shown_text
