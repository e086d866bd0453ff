"""STAC Browser works air-gapped (issue 12 item 3), in headless Chromium through the
proxy: no page asks another host (root, a collection, an item with its Source popover,
the search page), the item page's map is painted with the bundled Natural Earth
basemap, and the ``matchup:`` fields show with our labels and units.

Thumbnails (quicklooks) are tested on the demo: tests/stack/test_quicklooks_browser.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RunningStack
from helpers import make_collection, make_item, unique_id, written_collection
from helpers_browser import (
    TIMEOUT_MS,
    basemap_pixels,
    chromium_context,
    foreign,
    recorded_requests,
    settle,
)

pytestmark = [pytest.mark.stack, pytest.mark.browser]

# An item on the Tyrrhenian coast of Italy: its map shows land and sea.
LON_DEG, LAT_DEG, SIZE_DEG = 12.0, 41.0, 1.5
TIME_DIFF_S = 750.0  # shown as 12.5 min
OVERLAP_FRACTION = 0.4213  # shown as 42.1 %
MAX_CLOUD_COVER = 17.5  # percent already
SITE = "Libya-4"


@pytest.fixture(scope="module")
def matchup(running_stack: RunningStack) -> Iterator[tuple[str, str]]:
    cid, iid = unique_id("offline"), unique_id("matchup")
    collection = make_collection(cid, title=f"Offline browser {cid}", bbox=[LON_DEG, LAT_DEG, LON_DEG + SIZE_DEG, LAT_DEG + SIZE_DEG])
    item = make_item(cid, iid, LON_DEG, LAT_DEG, size_deg=SIZE_DEG, properties={
        "matchup:type": "matchup",
        "matchup:time_diff_s": TIME_DIFF_S,
        "matchup:abs_time_diff_s": TIME_DIFF_S,
        "matchup:overlap_fraction": OVERLAP_FRACTION,
        "matchup:max_cloud_cover": MAX_CLOUD_COVER,
        "matchup:sites": [SITE],
    }, assets={
        # a public provider href the external API keeps: the browser must not fetch it
        "data": {"href": "https://data.example.org/b.tif", "type": "image/tiff; application=geotiff",
                 "roles": ["data"], "title": "Provider band stack"},
    })
    with written_collection(running_stack, collection, [item]):
        yield cid, iid


@pytest.fixture(scope="module")
def browser_context(running_stack: RunningStack):  # type: ignore[no-untyped-def]
    with chromium_context() as context:
        yield context


@pytest.fixture
def page(browser_context):  # type: ignore[no-untyped-def]
    page = browser_context.new_page()
    try:
        yield page
    finally:
        page.close()


def test_no_page_requests_another_host(
    running_stack: RunningStack, matchup: tuple[str, str], page, artifacts_dir: Path  # type: ignore[no-untyped-def]
) -> None:
    cid, iid = matchup
    requested = recorded_requests(page)
    base = running_stack.base_url
    leaks_by_page: dict[str, list[str]] = {}

    def visited(name: str) -> None:
        settle(page)
        leaks = foreign(requested, base)
        if leaks:
            leaks_by_page[name] = sorted(set(leaks))
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
    assert not leaks_by_page, f"requests left the stack: {leaks_by_page}"


def test_item_map_is_painted_with_the_bundled_basemap(
    running_stack: RunningStack, matchup: tuple[str, str], page, artifacts_dir: Path  # type: ignore[no-untyped-def]
) -> None:
    cid, iid = matchup
    page.goto(f"{running_stack.base_url}/collections/{cid}/items/{iid}")
    page.get_by_role("heading", name=iid).wait_for(timeout=TIMEOUT_MS)
    page.locator(".map canvas").first.wait_for(timeout=TIMEOUT_MS)
    settle(page)

    result = basemap_pixels(page)  # polls: the basemap is drawn once its chunk is parsed
    page.locator(".map").first.screenshot(path=str(artifacts_dir / "browser-offline-map.png"))
    assert result["total"] > 10_000, f"no map canvas with pixels: {result}"
    assert result["sea"] > 0.02 * result["total"], f"no sea painted on the coast of Italy: {result}"
    assert result["land"] > 0.02 * result["total"], f"no land painted on the coast of Italy: {result}"


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
        "Calibration sites": SITE,
    }
    for label, value in shown.items():
        cell = page.get_by_text(label, exact=True).first
        cell.wait_for(timeout=TIMEOUT_MS)
        # the label's row: the value next to it, in the units the label names
        row_text = cell.locator("xpath=ancestor::*[self::tr or contains(@class,'row')][1]").inner_text()
        assert value in row_text, f"{label}: expected {value} in {row_text!r}"
    shown_text = page.locator("body").inner_text()  # what a visitor reads (keys stay in tooltips)
    assert "matchup:time_diff_s" not in shown_text and "Time Diff S" not in shown_text
