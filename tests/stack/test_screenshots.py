"""The researchers' guide's pictures of STAC Browser are taken here, on the demo that
``make demo`` loads, in real headless Chromium through the proxy, so they show what a
visitor sees today: collections and matchups by their titles, the matchup's fields
with labels and units, and its map on the bundled basemap, with no request leaving
the stack.

Every run writes them to ``test-artifacts/screenshots/``; ``make screenshots`` runs
this file with ``--screenshots-dir docs/img/screenshots`` to refresh the guide's copies.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, RunningStack
from helpers_browser import TIMEOUT_MS, basemap_pixels, chromium_context, foreign, settle

pytestmark = [pytest.mark.stack, pytest.mark.browser]

PAIR = "LANDSAT_C2L1-Landsat-9-vs-S2_MSI_L1C-S2A"
GUIDE = REPO / "docs/researchers.md"
SHOTS = ("browser-catalogue.png", "browser-matchups.png", "browser-matchup.png", "browser-search.png")
QUICKLOOK_SHOTS = ("browser-quicklooks.png", "browser-quicklook-matchup.png")
"""Taken by test_quicklooks_browser.py (on a demo stack whose /assets/ serves the quicklooks)."""


@pytest.fixture(scope="module")
def demo_matchup(running_stack: RunningStack) -> dict:  # type: ignore[type-arg]
    """The demo in the stack (idempotent) and the matchup with the largest overlap."""
    from eomatch.catalogue import MatchupCatalogue
    from eomatch.demo import demo_dir, load_demo

    load_demo(running_stack.settings, quiet=True)
    cat = MatchupCatalogue.open(demo_dir(running_stack.settings) / "catalogue")
    return max(cat.iter_items(PAIR), key=lambda m: (m["properties"]["matchup:overlap_fraction"], m["id"]))


@pytest.fixture(scope="module")
def shots_dir(request: pytest.FixtureRequest, artifacts_dir: Path) -> Path:
    chosen = request.config.getoption("--screenshots-dir")
    out = Path(chosen) if chosen else artifacts_dir / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def page(running_stack: RunningStack) -> Iterator:  # type: ignore[type-arg]
    with chromium_context(width=1280, height=860) as context:
        page = context.new_page()
        yield page


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_guide_screenshots(
    running_stack: RunningStack, demo_matchup: dict, page, shots_dir: Path  # type: ignore[no-untyped-def,type-arg]
) -> None:
    base = running_stack.base_url
    requested: list[str] = []
    page.on("request", lambda req: requested.append(req.url))
    title = demo_matchup["properties"]["title"]
    assert "×" in title and "Δt" in title, title  # a readable title, not the id

    page.goto(base + "/")
    page.get_by_text("Matchups Landsat-9 × Sentinel-2A").first.wait_for(timeout=TIMEOUT_MS)
    settle(page)
    page.screenshot(path=str(shots_dir / "browser-catalogue.png"))

    page.goto(f"{base}/collections/{PAIR}")
    # item cards are headed by titles: at least one matchup shows as "… × … · Δt …"
    page.get_by_text(re.compile(r"×.*Δt \d+ min")).first.wait_for(timeout=TIMEOUT_MS)
    settle(page)
    page.screenshot(path=str(shots_dir / "browser-matchups.png"))

    page.goto(f"{base}/collections/{PAIR}/items/{demo_matchup['id']}")
    page.get_by_role("heading", name=title).wait_for(timeout=TIMEOUT_MS)
    page.get_by_text("Time difference (min)", exact=True).first.wait_for(timeout=TIMEOUT_MS)
    page.locator(".map canvas").first.wait_for(timeout=TIMEOUT_MS)
    settle(page)
    pixels = basemap_pixels(page)
    page.screenshot(path=str(shots_dir / "browser-matchup.png"), full_page=True)
    assert pixels["total"] > 10_000 and pixels["land"] > 0.02 * pixels["total"], f"no basemap land: {pixels}"

    page.goto(f"{base}/search")
    page.locator("form").first.wait_for(timeout=TIMEOUT_MS)
    settle(page)
    page.screenshot(path=str(shots_dir / "browser-search.png"))

    assert not foreign(requested, base), f"requests left the stack: {sorted(set(foreign(requested, base)))}"
    for name in SHOTS:
        assert _is_png(shots_dir / name), f"{name} is not a picture of a page"


def test_the_guide_shows_the_screenshots_taken_here() -> None:
    """Every picture the guide shows is one this file (or the quicklooks' test) takes, and
    each one taken is shown."""
    shown = set(re.findall(r"\(img/screenshots/([\w.-]+\.png)\)", GUIDE.read_text()))
    assert shown == set(SHOTS) | set(QUICKLOOK_SHOTS)
    for name in (*SHOTS, *QUICKLOOK_SHOTS):
        assert _is_png(REPO / "docs/img/screenshots" / name), f"docs/img/screenshots/{name}: run `make screenshots`"
