"""STAC Browser through the proxy, in headless Chromium: the landing page lists our
collection by title, and an item page renders. Screenshots go to test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RunningStack
from helpers import make_collection, make_item, unique_id, written_collection
from helpers_browser import chromium_context, recorded_requests

pytestmark = [pytest.mark.stack, pytest.mark.browser]

TITLE = "Browser Demo Matchups Landsat-9 x Sentinel-2A"


@pytest.fixture(scope="module")
def demo(running_stack: RunningStack) -> Iterator[tuple[str, str]]:
    cid, iid = unique_id("browser"), "LC09_S2A_20220601_matchup"
    item = make_item(cid, iid, 101, 0.2, size_deg=0.5, assets={
        "data": {"href": "https://data.example.org/a.tif", "type": "image/tiff", "roles": ["data"], "title": "Band stack"},
        "local": {"href": "/npl-data/a.tif", "type": "image/tiff", "roles": ["data"], "title": "Local copy"},
    })
    with written_collection(running_stack, make_collection(cid, title=TITLE, bbox=[100, 0, 105, 1]), [item]):
        yield cid, iid


@pytest.fixture(scope="module")
def page(running_stack: RunningStack):  # type: ignore[no-untyped-def]
    with chromium_context() as context:
        yield context.new_page()


def test_landing_and_item_pages_render(
    running_stack: RunningStack, demo: tuple[str, str], page, artifacts_dir: Path  # type: ignore[no-untyped-def]
) -> None:
    cid, iid = demo
    requested = recorded_requests(page)

    page.goto(running_stack.base_url + "/")
    card = page.get_by_text(TITLE).first
    card.wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts_dir / "browser-landing.png"))

    card.click()
    page.wait_for_url(f"**/collections/{cid}*", timeout=30_000)
    page.get_by_text(iid).first.wait_for(timeout=30_000)
    page.get_by_text(iid).first.click()
    page.wait_for_url(f"**/collections/{cid}/items/{iid}*", timeout=30_000)
    page.get_by_role("heading", name=iid).wait_for(timeout=30_000)
    page.get_by_text("Band stack").first.wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts_dir / "browser-item.png"))

    content = page.content()
    assert "Local copy" not in content, "the browser shows an asset the external API must hide"
    assert "/npl-data" not in content
    ours = [u for u in requested if u.startswith(running_stack.base_url)]
    assert any(u.startswith(running_stack.external + "/") for u in ours)
    assert not [u for u in ours if u.startswith(running_stack.internal + "/")], "browser used the internal API"
    for name in ("browser-landing.png", "browser-item.png"):
        assert (artifacts_dir / name).stat().st_size > 10_000


def test_demo_catalogue_in_the_browser(running_stack: RunningStack, page, artifacts_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """What ``eomatch-stack up --demo`` loads is what a visitor sees: the demo matchup
    collection by its title, and one of its matchups (from find's own catalogue)."""
    from eomatch.catalogue import MatchupCatalogue
    from eomatch.demo import demo_dir, load_demo

    load_demo(running_stack.settings, quiet=True)  # idempotent: the stack may have it already
    pair = "LANDSAT_C2L1-Landsat-9-vs-S2_MSI_L1C-S2A"
    matchup = next(MatchupCatalogue.open(demo_dir(running_stack.settings) / "catalogue").iter_items(pair))

    page.goto(f"{running_stack.base_url}/")
    page.get_by_text("Matchups Landsat-9 × Sentinel-2A").first.wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts_dir / "browser-demo-landing.png"))
    page.goto(f"{running_stack.base_url}/collections/{pair}/items/{matchup['id']}")  # the browser's route
    # STAC Browser heads an item with its title (matchups have one since issue 12 item 1)
    heading = matchup["properties"].get("title") or matchup["id"]
    page.get_by_role("heading", name=heading).wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts_dir / "browser-demo-matchup.png"))
    assert "file://" not in page.content()
