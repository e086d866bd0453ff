"""Quicklooks (issue 12 item 2): what the PNGs show, and that eomatch-find writes them.

The pictures are checked by their pixels: each product's outline colour, the overlap's
fill and the land colour are found where the geometry says they must be, whatever the
projection's details (the outlines' boxes are measured in the image itself).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from shapely.geometry import box, mapping

from eomatch.catalogue import MatchupCatalogue
from eomatch.find import find
from eomatch.geometry import geojson, normalize_geometry
from eomatch.quicklook import (
    BAND_PX,
    COLOUR_A,
    COLOUR_B,
    LAND,
    OVERLAP,
    PALETTE,
    SIZE_PX,
    QuicklookWriter,
    event_quicklook,
    matchup_quicklook,
)
from eomatch.settings import Settings, load_settings
from eomatch.simulate import simulate_archive, simulated_providers

START = "2022-05-21T14:00:00Z"
END = "2022-05-21T20:00:00Z"
BBOX = (-125.0, 30.0, -70.0, 45.0)


def _product(pid: str, platform: str, geom: Any) -> dict[str, Any]:
    return {"id": pid, "collection": "c", "geometry": geojson(normalize_geometry(geom)), "properties": {"platform": platform}}


def _matchup(a: Any, b: Any, diff_s: float = 1260.0) -> bytes:
    overlap = normalize_geometry(a).intersection(normalize_geometry(b))
    item = {"geometry": geojson(overlap), "properties": {"matchup:abs_time_diff_s": diff_s}}
    return matchup_quicklook(item, _product("LC09_L1TP_044034_20220521_20220521_02_T1", "Landsat-9", a),
                             _product("S2A_MSIL1C_20220521T184921_N0400_R113_T10SEG_20220521T221624", "Sentinel-2A", b))  # fmt: skip


def _pixels(png: bytes) -> np.ndarray:
    """The map's pixels (below the label band, whose legend swatches share the colours)."""
    img = Image.open(io.BytesIO(png)).convert("RGB")
    assert img.size == (SIZE_PX, SIZE_PX)
    return np.asarray(img)[BAND_PX:]


def _mask(rgb: np.ndarray, index: int) -> np.ndarray:
    return np.all(rgb == np.array(PALETTE[index]), axis=-1)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 of a mask's pixels (inclusive)."""
    ys, xs = np.nonzero(mask)
    assert xs.size, "colour not drawn"
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def test_png_is_small_and_square() -> None:
    png = _matchup(box(-122.9, 37.0, -121.0, 38.7), box(-122.2, 37.5, -120.9, 38.5))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert 500 < len(png) < 60_000, len(png)
    assert Image.open(io.BytesIO(png)).size == (SIZE_PX, SIZE_PX)


@pytest.mark.parametrize(
    ("b_box", "where"),
    [((1.0, 41.0, 3.0, 43.0), "upper right"), ((-1.0, 39.0, 1.0, 41.0), "lower left")],
)
def test_overlap_is_filled_exactly_where_the_footprints_overlap(b_box: tuple[float, ...], where: str) -> None:
    # over the open Atlantic west of Portugal: no land in the way
    shift = -30.0
    a = box(0.0 + shift, 40.0, 2.0 + shift, 42.0)
    b = box(b_box[0] + shift, b_box[1], b_box[2] + shift, b_box[3])
    rgb = _pixels(_matchup(a, b))
    ax0, ay0, ax1, ay1 = _bbox(_mask(rgb, COLOUR_A))
    bx0, by0, bx1, by1 = _bbox(_mask(rgb, COLOUR_B))
    # where the two outlines' boxes intersect (outline width 2 px: a pixel of slack)
    ix0, iy0, ix1, iy1 = max(ax0, bx0), max(ay0, by0), min(ax1, bx1), min(ay1, by1)
    fill = _mask(rgb, OVERLAP)
    fx0, fy0, fx1, fy1 = _bbox(fill)
    for got, want in ((fx0, ix0), (fy0, iy0), (fx1, ix1), (fy1, iy1)):
        assert abs(got - want) <= 3, (where, (fx0, fy0, fx1, fy1), (ix0, iy0, ix1, iy1))
    inside = fill[iy0 + 3 : iy1 - 2, ix0 + 3 : ix1 - 2]
    assert inside.mean() > 0.95, f"{where}: overlap not filled ({inside.mean():.2f})"
    # the overlap lies in the named corner of product a's box
    centre_x, centre_y = (fx0 + fx1) / 2, (fy0 + fy1) / 2
    a_cx, a_cy = (ax0 + ax1) / 2, (ay0 + ay1) / 2
    assert (centre_x > a_cx and centre_y < a_cy) if where == "upper right" else (centre_x < a_cx and centre_y > a_cy)
    # the rest of each footprint is not filled, and no land is drawn out at sea
    assert fill.sum() < 0.5 * (ax1 - ax0) * (ay1 - ay0)
    assert not _mask(rgb, LAND).any()


def test_item_across_the_antimeridian_draws_like_the_same_item_elsewhere() -> None:
    """Footprints split at ±180 (the STAC form) are drawn whole, as the same shapes 20° west."""
    def shapes(lon0: float) -> tuple[Any, Any]:
        return box(lon0 - 1.0, -17.5, lon0 + 1.0, -16.0), box(lon0 - 0.5, -17.2, lon0 + 1.5, -15.5)

    across = _pixels(_matchup(*shapes(180.0)))
    elsewhere = _pixels(_matchup(*shapes(160.0)))
    a = normalize_geometry(shapes(180.0)[0])
    assert a.geom_type == "MultiPolygon"  # the input really is split
    for colour in (COLOUR_A, COLOUR_B, OVERLAP):
        got, want = _bbox(_mask(across, colour)), _bbox(_mask(elsewhere, colour))
        assert all(abs(g - w) <= 1 for g, w in zip(got, want, strict=True)), (colour, got, want)
    # no seam: the overlap is one filled block, as elsewhere
    x0, y0, x1, y1 = _bbox(_mask(across, OVERLAP))
    assert _mask(across, OVERLAP)[y0 + 2 : y1 - 1, x0 + 2 : x1 - 1].all()


def test_land_is_drawn_from_the_packaged_natural_earth() -> None:
    sea_only = _pixels(_matchup(box(-31.0, 40.0, -29.0, 42.0), box(-30.5, 40.5, -28.5, 42.5)))
    # Italy's coast at Rome: land to the east, sea to the west
    coast = _pixels(_matchup(box(11.5, 41.2, 12.9, 42.3), box(11.8, 41.4, 13.2, 42.5)))
    assert not _mask(sea_only, LAND).any()
    land = _mask(coast, LAND)
    assert 0.1 < land.mean() < 0.9, land.mean()
    half = SIZE_PX // 2
    assert land[:, half:].mean() > land[:, :half].mean()


def test_event_quicklook_fills_the_region_and_outlines_both_platforms() -> None:
    region = box(-125.0, 30.0, -118.0, 45.0)
    event = {"geometry": mapping(region),
             "properties": {"matchup:platforms": ["Landsat-9", "Sentinel-2A"], "matchup:time_diff_s": -1100.0}}  # fmt: skip
    pa = _product("LC09_L1TP_044034_20220521_20220521_02_T1", "Landsat-9", box(-123.0, 37.0, -121.0, 39.0))
    pb = _product("S2A_MSIL1C_20220521T184921_N0400_R113_T10SEG_20220521T221624", "Sentinel-2A", box(-122.5, 37.5, -120.5, 39.5))
    rgb = _pixels(event_quicklook(event, [pa], [pb]))
    rx0, ry0, rx1, ry1 = _bbox(_mask(rgb, OVERLAP))
    assert (ry1 - ry0) > 1.5 * (rx1 - rx0)  # 15° of latitude by 7° of longitude
    for colour in (COLOUR_A, COLOUR_B):
        x0, y0, x1, y1 = _bbox(_mask(rgb, colour))
        assert rx0 <= x0 and x1 <= rx1 + 2 and y1 - y0 < (ry1 - ry0) / 3
    # without products (events-only runs): the region alone
    alone = _pixels(event_quicklook(event))
    assert _mask(alone, OVERLAP).any() and not _mask(alone, COLOUR_A).any()


# --------------------------------------------------------------------------- through eomatch-find


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate_archive(tmp_path_factory.mktemp("sim"), ["S2A", "L9"], START, END, bbox=BBOX)


def _settings(catalogue: Path, archive: Path, **find_over: Any) -> Settings:
    w, s, e, n = BBOX
    settings = load_settings(overrides={
        "find": {"platforms": ["S2A", "L9"], "start_time": START, "end_time": END,
                 "min_lat": s, "max_lat": n, "min_lon": w, "max_lon": e, **find_over},
        "matchup_catalogue": {"path": str(catalogue)},
    }, environ={})  # fmt: skip
    return settings.model_copy(update={"providers": simulated_providers(settings, archive, ["S2A", "L9"])})


def _pngs(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_find_writes_a_thumbnail_beside_every_matchup_and_event(tmp_path: Path, archive: Path) -> None:
    root = tmp_path / "cat"
    summary = find(_settings(root, archive), quiet=True)
    assert summary.ok and summary.matchups > 0
    cat = MatchupCatalogue.open(root)
    kinds: dict[str, int] = {}
    for ref in cat.iter_ids():
        item = cat.get_item(ref.id, ref.collection)
        thumb = item["assets"].get("thumbnail")
        if ref.kind == "product":
            # providers' own assets are kept, none of ours added
            assert thumb is None or thumb["href"].startswith("https://"), thumb
            continue
        kinds[ref.kind] = kinds.get(ref.kind, 0) + 1
        assert thumb == {"href": f"./{ref.id}.png", "type": "image/png", "roles": ["thumbnail"], "title": "Quicklook"}
        png = (root / ref.relpath).parent / f"{ref.id}.png"
        assert png.read_bytes().startswith(b"\x89PNG"), png
    assert kinds == {"matchup": summary.matchups, "event": summary.events_written}
    assert not list(root.rglob("*.tmp")), "temp files left behind"


def test_rerun_rewrites_the_same_pictures_and_adds_nothing(tmp_path: Path, archive: Path) -> None:
    root = tmp_path / "cat"
    settings = _settings(root, archive)
    find(settings, quiet=True)
    first = _pngs(root)
    again = find(settings, quiet=True)
    assert again.new_items == 0
    assert _pngs(root) == first and len(first) == again.matchups + again.events_written
    assert not list(root.rglob("*.tmp"))


def test_rerun_redraws_a_picture_a_killed_run_left_out(tmp_path: Path, archive: Path) -> None:
    root = tmp_path / "cat"
    settings = _settings(root, archive)
    find(settings, quiet=True)
    first = _pngs(root)
    lost = next(iter(first))
    (root / lost).unlink()
    find(settings, quiet=True)
    assert _pngs(root) == first


def test_quicklooks_off_writes_no_pictures(tmp_path: Path, archive: Path) -> None:
    root = tmp_path / "cat"
    summary = find(_settings(root, archive, quicklooks=False), quiet=True)
    assert summary.matchups > 0
    assert not _pngs(root)
    cat = MatchupCatalogue.open(root)
    assert all("thumbnail" not in it["assets"] for it in cat.iter_items() if it["properties"]["matchup:type"] != "product")


def test_writer_draws_in_a_worker_and_raises_write_errors_at_close(tmp_path: Path) -> None:
    a, b = box(10.0, 40.0, 12.0, 42.0), box(11.0, 41.0, 13.0, 43.0)
    overlap = {"geometry": mapping(a.intersection(b)), "properties": {"matchup:abs_time_diff_s": 60.0}}
    products = (_product("pa", "Landsat-9", a), _product("pb", "Sentinel-2A", b))
    with QuicklookWriter(workers=1, batch=2, backlog=1) as writer:
        for i in range(5):
            writer.submit(tmp_path / f"m{i}.png", overlap, products)
    assert writer.written == 5 and writer.bytes == sum(p.stat().st_size for p in tmp_path.glob("m*.png"))
    assert {p.read_bytes() for p in tmp_path.glob("m*.png")} == {_matchup_bytes(overlap, products)}

    # a figure that cannot be drawn is a blank one (the asset still names a PNG)...
    with QuicklookWriter(workers=1, batch=1) as writer:
        writer.submit(tmp_path / "odd.png", overlap, products[:1])  # a matchup needs two products
    odd = (tmp_path / "odd.png").read_bytes()
    assert odd.startswith(b"\x89PNG") and odd != _matchup_bytes(overlap, products)
    assert not _mask(_pixels(odd), OVERLAP).any()
    # ...but a file that cannot be written fails the run, when the writer closes
    (tmp_path / "not-a-folder").write_text("")
    broken = QuicklookWriter(workers=1, batch=1)
    broken.submit(tmp_path / "not-a-folder" / "m.png", overlap, products)
    with pytest.raises(OSError):
        broken.close()


def _matchup_bytes(item: dict[str, Any], products: tuple[dict[str, Any], dict[str, Any]]) -> bytes:
    return matchup_quicklook(item, *products)


def test_event_region_longer_than_half_the_globe_is_one_band() -> None:
    """A half-orbit event (vertices every degree, 270 degrees of longitude) is not folded
    into ±180 of its first vertex."""
    import shapely

    region = shapely.segmentize(box(-170.0, 30.0, 100.0, 45.0), 1.0)
    rgb = _pixels(event_quicklook({"geometry": mapping(region), "properties": {}}))
    band = _mask(rgb, OVERLAP)
    x0, y0, x1, y1 = _bbox(band)
    assert (x1 - x0) > 10 * (y1 - y0) * 0.5  # 270 x 15 degrees at 37° N: ~14:1
    assert band[(y0 + y1) // 2, x0 + 1 : x1].all(), "the band is broken"


# --------------------------------------------------------------------------- antimeridian and poles

# A Landsat-9 x Sentinel-2A event of the simulated archive of 2022-06-13 (global run):
# a 190-degree band from the Gulf of Guinea over the Arctic to the Pacific, split at
# ±180 (simplified to 0.01 degree). Its first polygon is the small Pacific piece, and
# the unwrapping around it once raised a GEOS TopologyException (at lon -184), then
# put the footprints at the band's African end 360 degrees away from the band.
_POLAR_EVENT_REGION = {"type": "MultiPolygon", "coordinates": [
    [[[-174.0, -0.25], [-180.0, 25.13], [-180.0, 32.41], [-172.69, 0.04], [-174.0, -0.25]]],
    [[[172.13, 49.23], [166.43, 59.55], [156.24, 69.55], [158.11, 69.89], [136.93, 77.12], [116.04, 80.03],
      [88.42, 80.98], [59.74, 79.59], [36.74, 75.28], [25.15, 70.73], [14.18, 59.57], [8.85, 50.1],
      [3.63, 36.43], [-5.04, -0.05], [-6.54, 0.4], [3.21, 40.66], [12.23, 61.52], [18.06, 68.47],
      [25.11, 73.51], [34.04, 77.18], [45.49, 79.79], [70.82, 82.22], [118.59, 81.69], [148.99, 76.38],
      [160.1, 70.66], [164.58, 66.67], [174.45, 50.04], [180.0, 32.41], [180.0, 25.13], [177.16, 35.21],
      [172.13, 49.23]]],
]}  # fmt: skip
_POLAR_EVENT_LANDSAT = [[3.38, 35.04], [3.86, 36.61], [1.84, 37.0], [1.4, 35.42], [3.38, 35.04]]  # WRS 196/035
_POLAR_EVENT_S2A = [  # T59VJK (Kamchatka) and T30NSB (Gulf of Guinea): both ends of the band
    [[166.8, 62.8], [167.52, 61.86], [169.52, 62.18], [168.86, 63.12], [166.8, 62.8]],
    [[-5.57, 0.59], [-5.36, 1.55], [-6.33, 1.77], [-6.54, 0.8], [-5.57, 0.59]],
]


def test_event_across_the_antimeridian_near_the_pole_is_drawn_with_its_footprints_on_it() -> None:
    event = {"geometry": _POLAR_EVENT_REGION, "properties": {"matchup:type": "event", "matchup:time_diff_s": 923.0,
                                                              "matchup:platforms": ["Landsat-9", "Sentinel-2A"]}}
    landsat = [{"id": "LC09_L1TP_196035_20220613_20220613_02_T1_SIM", "collection": "c",
                "geometry": {"type": "Polygon", "coordinates": [_POLAR_EVENT_LANDSAT]}, "properties": {}}]
    s2a = [{"id": f"S2A_{i}", "collection": "c", "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {}} for i, ring in enumerate(_POLAR_EVENT_S2A)]  # fmt: skip
    rgb = _pixels(event_quicklook(event, landsat, s2a))  # raised GEOSException once; a blank fallback has no region
    region = _mask(rgb, OVERLAP)
    rx0, ry0, rx1, ry1 = _bbox(region)
    # one band across the picture: the view is the band's, not two globes side by side
    assert rx1 - rx0 > 0.6 * SIZE_PX, (rx0, rx1)
    for colour in (COLOUR_A, COLOUR_B):
        x0, y0, x1, y1 = _bbox(_mask(rgb, colour))
        assert rx0 - 4 <= x0 and x1 <= rx1 + 4 and ry0 - 4 <= y0 and y1 <= ry1 + 4, (colour, (x0, y0, x1, y1))
    # the S2A tiles at both ends: one at the band's west end, one at its east end
    xs = np.nonzero(_mask(rgb, COLOUR_B).any(axis=0))[0]
    assert xs.min() < rx0 + 0.2 * (rx1 - rx0) and xs.max() > rx1 - 0.2 * (rx1 - rx0), (xs.min(), xs.max())


def test_region_around_the_pole_is_filled() -> None:
    """A ring that goes once round the north pole (vertices every 45 degrees along
    80° N, no vertex at the pole) is a filled cap up to 90° N, not a zero-area ring."""
    ring = [[lon, 80.0] for lon in range(-180, 180, 45)] + [[-180.0, 80.0]]
    cap = {"type": "Polygon", "coordinates": [ring]}
    region = _mask(_pixels(event_quicklook({"geometry": cap, "properties": {}})), OVERLAP)
    x0, y0, x1, y1 = _bbox(region)
    assert x1 - x0 > 0.6 * SIZE_PX and y1 - y0 > 0.1 * SIZE_PX, (x0, y0, x1, y1)
    assert region[(y0 + y1) // 2, x0 + 2 : x1 - 1].all(), "the cap is broken"
