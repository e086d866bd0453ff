"""Real headless Chromium for the browser tests: one launch recipe, one notion of
"left the stack", one pixel counter for the map canvas."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
BASEMAPS_JS = Path(__file__).resolve().parents[1] / "src/eomatch/stack/browser_pkg/basemaps.config.js"
TIMEOUT_MS = 30_000


@contextmanager
def chromium_context(width: int = 1280, height: int = 900) -> Iterator:  # type: ignore[type-arg]
    """A browser context in Debian's Chromium (never a downloaded one), closed afterwards."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_context(viewport={"width": width, "height": height})
        finally:
            browser.close()


def recorded_requests(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Every URL ``page`` asks for from now on, appended as it goes (for :func:`foreign`)."""
    requested: list[str] = []
    page.on("request", lambda req: requested.append(req.url))
    return requested


def foreign(urls: list[str], base_url: str) -> list[str]:
    """Every URL a page asked for that is not the stack's own origin (data:/blob: are local)."""
    ours = urlsplit(base_url)
    return [u for u in urls if urlsplit(u).scheme not in ("data", "blob")
            and (urlsplit(u).scheme, urlsplit(u).netloc) != (ours.scheme, ours.netloc)]


def settle(page) -> None:  # type: ignore[no-untyped-def]
    """Wait until the page has asked for all it will (lazy chunks, map data)."""
    page.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)


def basemap_color(name: str) -> tuple[int, int, int]:
    """A colour of the basemap as the build has it (so the tests follow a restyle)."""
    m = re.search(rf"{name}\s*=\s*'#([0-9a-fA-F]{{6}})'", BASEMAPS_JS.read_text())
    assert m, f"{name} not found in {BASEMAPS_JS}"
    h = m.group(1)
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


COUNT_COLORS_JS = """([targets, tolerance]) => {
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


def basemap_pixels(page, min_share: float = 0.02, tries: int = 60) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """Sea and land pixel counts on the page's map canvases, polled until both show
    (the basemap is drawn once its chunk is parsed)."""
    sea, land = basemap_color("SEA_COLOR"), basemap_color("LAND_COLOR")
    result: dict = {}  # type: ignore[type-arg]
    for _ in range(tries):
        result = page.evaluate(COUNT_COLORS_JS, [[list(sea), list(land)], 6])
        if result["total"] and min(result["counts"]) > min_share * result["total"]:
            break
        page.wait_for_timeout(500)
    return {"total": result.get("total", 0), "sea": result.get("counts", [0, 0])[0],
            "land": result.get("counts", [0, 0])[1]}
