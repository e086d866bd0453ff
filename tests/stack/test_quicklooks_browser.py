"""Quicklooks on the demo as ``eomatch-stack up --demo`` serves them (issue 12 items 2-3):
the external API shows each matchup's and event's ``thumbnail`` as an http URL under the
proxy's ``/assets/``, which answers with the PNG beside the item in the demo catalogue;
STAC Browser, in real headless Chromium, shows them on the collection page's item cards
and in the item page's Thumbnails tab (not stretched over the map: ``displayPreview`` is
off), loaded from the stack itself, with no request leaving the stack.

A stack of its own: ``up --demo`` points ``stack.proxy.assets_root`` at the demo
catalogue (:func:`eomatch.demo.demo_stack_settings`), which the session stack has not.
The pictures go to ``test-artifacts/``; with ``--screenshots-dir docs/img/screenshots``
(``make screenshots``) the guide's ``browser-quicklooks*.png`` are refreshed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import RunningStack, private_stack, stack_settings
from helpers_browser import TIMEOUT_MS, chromium_context, foreign, recorded_requests, settle

pytestmark = [pytest.mark.stack, pytest.mark.browser]

PAIR = "LANDSAT_C2L1-Landsat-9-vs-S2_MSI_L1C-S2A"
EVENTS = f"matchup-events-{PAIR}"

_IMAGES_JS = """(selector) => Array.from(document.querySelectorAll(selector)).map(
    img => ({src: img.currentSrc || img.src, complete: img.complete, width: img.naturalWidth}))"""


@pytest.fixture(scope="module")
def demo_stack() -> Iterator[RunningStack]:
    from eomatch.demo import demo_stack_settings, load_demo

    with private_stack("eomatch-quicklooks-", settings=lambda state: demo_stack_settings(stack_settings(state))) as stack:
        settings = stack.settings
        load_demo(settings, quiet=True)
        yield RunningStack(settings, f"http://127.0.0.1:{settings.stack.proxy.port}")


def _catalogue(stack: RunningStack):  # type: ignore[no-untyped-def]
    from eomatch.catalogue import MatchupCatalogue
    from eomatch.demo import demo_dir

    return MatchupCatalogue.open(demo_dir(stack.settings) / "catalogue")


def test_external_api_serves_the_demo_quicklooks_under_assets(demo_stack: RunningStack) -> None:
    cat = _catalogue(demo_stack)
    checked = 0
    with httpx.Client(timeout=30) as client:
        for kind, collection in (("matchup", PAIR), ("event", EVENTS)):
            refs = sorted(cat.iter_ids(kind=kind, collection=collection), key=lambda r: r.id)
            assert refs, f"the demo has no {kind}"
            for ref in refs[:3]:
                local = cat.root / Path(ref.relpath).parent / f"{ref.id}.png"
                want = f"{demo_stack.base_url}/assets/{Path(ref.relpath).parent.as_posix()}/{ref.id}.png"
                for api in (demo_stack.external, demo_stack.internal):
                    r = client.get(f"{api}/collections/{collection}/items/{ref.id}")
                    assert r.status_code == 200, (api, ref.id, r.status_code)
                    thumb = r.json()["assets"]["thumbnail"]
                    assert thumb["href"] == want and thumb["roles"] == ["thumbnail"] and thumb["type"] == "image/png"
                png = client.get(want)
                assert png.status_code == 200, (want, png.status_code)
                assert png.headers["content-type"] == "image/png"
                assert png.content == local.read_bytes()
                checked += 1
    assert checked == 6


def _loaded_thumbnails(page, base: str) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    """The page's <img> of our quicklooks once they have loaded (polls: cards load lazily)."""
    images: list[dict] = []  # type: ignore[type-arg]
    for _ in range(60):
        images = [i for i in page.evaluate(_IMAGES_JS, "img") if "/assets/" in i["src"]]
        if images and all(i["complete"] for i in images) and any(i["width"] > 0 for i in images):
            break
        page.wait_for_timeout(500)
    assert images, "no quicklook <img> on the page"
    assert all(i["src"].startswith(base + "/assets/") for i in images), images
    return images


@pytest.fixture
def shots_dir(request: pytest.FixtureRequest, artifacts_dir: Path) -> Path:
    chosen = request.config.getoption("--screenshots-dir")
    out = Path(chosen) if chosen else artifacts_dir
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_browser_shows_quicklooks_on_cards_and_item_pages(demo_stack: RunningStack, shots_dir: Path) -> None:
    base = demo_stack.base_url
    cat = _catalogue(demo_stack)
    matchup = min(cat.iter_ids(kind="matchup", collection=PAIR), key=lambda r: r.id)
    event = min(cat.iter_ids(kind="event", collection=EVENTS), key=lambda r: r.id)
    with chromium_context(width=1280, height=900) as context:
        page = context.new_page()
        requested = recorded_requests(page)

        page.goto(f"{base}/collections/{PAIR}")
        cards = _loaded_thumbnails(page, base)
        settle(page)
        assert all(i["width"] > 0 for i in cards), f"a card's quicklook did not load: {cards}"
        page.screenshot(path=str(shots_dir / "browser-quicklooks.png"))

        for collection, ref, shot in ((PAIR, matchup, "browser-quicklook-matchup.png"), (EVENTS, event, None)):
            page.goto(f"{base}/collections/{collection}/items/{ref.id}")
            # the item page shows thumbnails in their tab beside the map, not over it
            page.get_by_role("tab", name="Thumbnails").click(timeout=TIMEOUT_MS)
            shown = _loaded_thumbnails(page, base)
            settle(page)
            mine = [i for i in shown if i["src"].endswith(f"/{ref.id}.png")]
            assert mine and all(i["width"] > 0 for i in mine), f"{ref.id}: quicklook not shown: {shown}"
            if shot:
                page.screenshot(path=str(shots_dir / shot))
        page.close()

    assert any(u.startswith(base + "/assets/") for u in requested)
    assert not foreign(requested, base), f"requests left the stack: {sorted(set(foreign(requested, base)))}"
