"""Quicklooks: a small PNG per matchup and per event, drawn when ``eomatch-find`` writes them.

A researcher scanning STAC Browser's item cards wants to see at a glance where a pair
lies and how well it overlaps, without opening a map. A matchup's picture shows both
product footprints (two colours), their overlap (filled), the land of Natural Earth
1:110m (packaged, so nothing is fetched), a scale bar in km, the time difference and
short labels of the two products. An event's shows its collocation region (filled)
and the footprints of both platforms' products in it (their swaths along the ground
tracks; the event item itself carries no tracks).

Drawn with Pillow (a core dependency; matplotlib, tens of ms per figure, is not one):
measured on the demo's 90 figures, about 1 ms of CPU each once the land and fonts are
loaded, 2.6-5.5 KB of PNG.
The map is equirectangular around the item's centre, x scaled by cos(latitude), which
keeps a few hundred km true to within a percent; longitudes are unwrapped around the
item, so footprints across the antimeridian stay in one piece: each ring made continuous
(a ring round a pole closed along ±90), each part moved by the multiple of 360 that puts
it on the region or overlap already placed (an event's band can span over 180 degrees,
and footprints at its far end belong on it), the result made valid. The PNG is a
palette image: a few flat colours compress to a few KB.
"""

from __future__ import annotations

import functools
import io
import logging
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import shapely
from PIL import Image, ImageDraw, ImageFont
from shapely.geometry import Polygon, box, shape
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

from eomatch import jsonio
from eomatch.geometry import polygons
from eomatch.ids import product_label
from eomatch.items import format_time_diff

log = logging.getLogger(__name__)

MEDIA_TYPE = "image/png"
ASSET_KEY = "thumbnail"
"""The asset key and role STAC Browser looks for (cards and item pages)."""
SIZE_PX = 320
"""Width and height of a quicklook."""
KM_PER_DEG = 111.195
"""km per degree of latitude (and of longitude at the equator) on the mean sphere."""

PALETTE = (
    (223, 236, 245),  # sea
    (236, 231, 214),  # land
    (176, 166, 140),  # coast
    (31, 100, 200),  # product / platform a
    (215, 60, 40),  # product / platform b
    (250, 190, 60),  # overlap, collocation region
    (30, 30, 30),  # ink
    (255, 255, 255),  # label band
)
"""The figure's colours: drawn straight into a palette image (no quantizing: ~2 ms less
per figure), which PNG stores in a few KB."""
SEA, LAND, COAST, COLOUR_A, COLOUR_B, OVERLAP, INK, BAND = range(len(PALETTE))

_MARGIN = 0.18
"""Blank around the drawn shapes, as a fraction of their extent."""
_MIN_EXTENT_KM = 20.0
BAND_PX = 34
"""The label band at the top; the map's shapes are fitted below it."""


def thumbnail_asset(href: str, title: str = "Quicklook") -> dict[str, Any]:
    """The ``thumbnail`` asset of a quicklook file (``href`` relative to the item)."""
    return {"href": href, "type": MEDIA_TYPE, "roles": ["thumbnail"], "title": title}


# --------------------------------------------------------------------------- land


@functools.cache
def _land() -> tuple[STRtree, list[Polygon]]:
    """Natural Earth 1:110m land polygons (lon/lat) and an STRtree over them."""
    raw = resources.files("eomatch").joinpath("data/naturalearth/land_110m.json").read_bytes()
    polys = []
    for rings in orjson.loads(raw)["polygons"]:
        shell, *holes = (np.asarray(r, dtype=float).reshape(-1, 2) for r in rings)
        polys.append(Polygon(shell, holes))
    return STRtree(polys), polys


def land_in(west: float, south: float, east: float, north: float) -> Iterable[BaseGeometry]:
    """Land inside a box whose longitudes may run past ±180 (a view unwrapped around
    the antimeridian), clipped to it: drawing a continent's thousand vertices for a
    100 km view costs more than the rest of the figure."""
    tree, polys = _land()
    for k in (-1, 0, 1):
        shift = 360.0 * k
        for i in tree.query(box(west - shift, south, east - shift, north)).tolist():
            part = shapely.clip_by_rect(polys[i], west - shift, south, east - shift, north)
            if not part.is_empty:
                yield shapely.transform(part, lambda xy, s=shift: xy + (s, 0.0)) if k else part


# --------------------------------------------------------------------------- the view


def _continuous(ring: np.ndarray) -> np.ndarray:
    """A ring's longitudes made continuous: no step of more than 180 degrees, so a ring
    that jumps at ±180 or spans more than half the globe keeps its shape. A ring that
    goes once round a pole (its longitudes end 360 from where they start: a footprint
    or region containing the pole) is closed along that pole's latitude, ±90."""
    out = ring.copy()
    steps = (np.diff(out[:, 0]) + 180.0) % 360.0 - 180.0
    out[1:, 0] = out[0, 0] + np.cumsum(steps)
    if len(out) > 2 and abs(out[-1, 0] - out[0, 0]) > 180.0:
        pole_lat = 90.0 if out[:, 1].mean() >= 0.0 else -90.0
        out = np.vstack([out, [(out[-1, 0], pole_lat), (out[0, 0], pole_lat), out[0]]])
    return out


def _parts(geom: BaseGeometry) -> list[Polygon]:
    """``geom``'s polygons, each with continuous longitudes (holes next to their shell)."""
    parts = []
    for p in polygons(geom):
        shell = _continuous(np.asarray(p.exterior.coords))
        middle = (shell[:, 0].min() + shell[:, 0].max()) / 2.0
        holes = [_shifted(_continuous(np.asarray(r.coords)), middle) for r in p.interiors]
        parts.extend(polygons(shapely.make_valid(Polygon(shell, holes))))
    return parts


def _shifted(ring: np.ndarray, ref_lon: float) -> np.ndarray:
    """``ring`` moved by the multiple of 360 that brings its middle nearest ``ref_lon``."""
    middle = (ring[:, 0].min() + ring[:, 0].max()) / 2.0
    return ring + (360.0 * round((ref_lon - middle) / 360.0), 0.0)


def _moved(part: Polygon, dlon: float) -> Polygon:
    return shapely.transform(part, lambda xy: xy + (dlon, 0.0)) if dlon else part


def _placed(part: Polygon, anchor: BaseGeometry, ref_lon: float) -> Polygon:
    """``part`` moved by the multiple of 360 that puts it on (or nearest) ``anchor``, the
    shapes already placed; the copy whose middle is nearest ``ref_lon`` when none is
    nearer. A footprint 170 degrees from the view's first vertex still lands inside a
    long event region reaching it, not on the other side of the globe."""
    west, _, east, _ = part.bounds
    k0 = round((ref_lon - (west + east) / 2.0) / 360.0)
    if anchor.is_empty:
        return _moved(part, 360.0 * k0)
    candidates = [_moved(part, 360.0 * k) for k in (k0 - 1, k0, k0 + 1)]
    gaps = [float(shapely.distance(c, anchor)) for c in candidates]
    best = min(range(3), key=lambda i: (round(gaps[i], 9), abs(i - 1)))
    return candidates[best]


_PLAIN_LON = 170.0
"""Shapes whose longitudes all stay within this of 0 need no unwrapping."""


def _plain(geom: BaseGeometry, ref_lon: float, anchor: BaseGeometry | None) -> bool:
    """Most figures: one valid polygon, it, the view's reference and the shapes already
    placed well away from ±180, no ring jumping across it. Nothing to move or repair,
    and the checks cost a fraction of the general path (a third of a figure's time)."""
    if not isinstance(geom, Polygon) or geom.is_empty or abs(ref_lon) >= _PLAIN_LON:
        return False
    west, _, east, _ = geom.bounds
    if west <= -_PLAIN_LON or east >= _PLAIN_LON:
        return False
    if anchor is not None and not anchor.is_empty:
        a_west, _, a_east, _ = anchor.bounds
        if a_west <= -_PLAIN_LON or a_east >= _PLAIN_LON:
            return False
    for ring in (geom.exterior, *geom.interiors):
        if np.abs(np.diff(np.asarray(ring.coords)[:, 0])).max(initial=0.0) > 180.0:
            return False
    return bool(geom.is_valid)


def _unwrap(geom: BaseGeometry, ref_lon: float, anchor: BaseGeometry | None = None) -> BaseGeometry:
    """Each polygon with continuous longitudes, moved by multiples of 360 onto ``anchor``
    (the shapes already unwrapped), else onto ``geom``'s own parts placed so far, the
    first one next to ``ref_lon``: parts split at ±180 meet again, one outline, no seam.
    Made valid (a ring round a pole, a part crossing itself) so unions never fail."""
    if _plain(geom, ref_lon, anchor):
        return geom
    placed: list[Polygon] = []
    for part in sorted(_parts(geom), key=lambda p: -p.area):
        near = anchor if anchor is not None and not anchor.is_empty else shapely.union_all(placed)
        placed.append(_placed(part, near, ref_lon))
    if len(placed) < 2:
        return placed[0] if placed else Polygon()
    # on a 1e-9 degree grid: the halves of a part split at ±180 (179.99999999999997 and
    # 180 once moved) merge into one outline, without a seam
    return shapely.make_valid(shapely.union_all(placed, grid_size=1e-9))


def _first_lon(geoms: Sequence[BaseGeometry]) -> float:
    """The middle longitude of the largest polygon of the first geometry that has one:
    where the view is unwrapped around."""
    for g in geoms:
        parts = _parts(g)
        if parts:
            west, _, east, _ = max(parts, key=lambda p: p.area).bounds
            return (west + east) / 2.0
    return 0.0


def _centred(geoms: Sequence[BaseGeometry]) -> list[BaseGeometry]:
    """``geoms`` moved together by the multiple of 360 that brings their middle into
    [-180, 180]: the view's land (:func:`land_in`) is looked up one globe either side."""
    bounds = [g.bounds for g in geoms if not g.is_empty]
    if not bounds:
        return list(geoms)
    middle = (min(b[0] for b in bounds) + max(b[2] for b in bounds)) / 2.0
    dlon = -360.0 * round(middle / 360.0)
    return [shapely.transform(g, lambda xy: xy + (dlon, 0.0)) if dlon else g for g in geoms]


class _View:
    """Lon/lat -> pixels for a set of unwrapped shapes, fitted below the label band."""

    def __init__(self, geoms: Sequence[BaseGeometry]) -> None:
        bounds = np.array([g.bounds for g in geoms if not g.is_empty] or [(-1.0, -1.0, 1.0, 1.0)])
        west, south = bounds[:, 0].min(), bounds[:, 1].min()
        east, north = bounds[:, 2].max(), bounds[:, 3].max()
        self.lon0, self.lat0 = (west + east) / 2.0, (south + north) / 2.0
        self.kx = max(math.cos(math.radians(self.lat0)), 0.05)
        width_km = max((east - west) * self.kx * KM_PER_DEG, _MIN_EXTENT_KM) * (1 + 2 * _MARGIN)
        height_km = max((north - south) * KM_PER_DEG, _MIN_EXTENT_KM) * (1 + 2 * _MARGIN)
        map_h = SIZE_PX - BAND_PX
        self.px_per_km = min(SIZE_PX / width_km, map_h / height_km)
        self.cx, self.cy = SIZE_PX / 2.0, BAND_PX + map_h / 2.0
        # land is clipped to this box a few px beyond the picture: the clip's edge, drawn
        # in the coast colour, must not flicker in and out at the picture's side
        half_w_deg = (SIZE_PX / 2.0 + 4.0) / self.px_per_km / KM_PER_DEG / self.kx
        half_h_deg = SIZE_PX / self.px_per_km / KM_PER_DEG
        self.box = (self.lon0 - half_w_deg, self.lat0 - half_h_deg, self.lon0 + half_w_deg, self.lat0 + half_h_deg)

    def px(self, lonlat: np.ndarray) -> list[float]:
        """Flat [x0, y0, x1, y1, ...] pixel coordinates, as ImageDraw takes them."""
        s = self.px_per_km * KM_PER_DEG
        out = np.empty_like(lonlat, dtype=float)
        out[:, 0] = self.cx + (lonlat[:, 0] - self.lon0) * self.kx * s
        out[:, 1] = self.cy - (lonlat[:, 1] - self.lat0) * s
        return out.ravel().tolist()  # type: ignore[no-any-return]


def _rings(geom: BaseGeometry) -> Iterable[list[np.ndarray]]:
    for p in polygons(geom):
        yield [np.asarray(p.exterior.coords)] + [np.asarray(r.coords) for r in p.interiors]


def _fill(draw: ImageDraw.ImageDraw, view: _View, rings: list[np.ndarray], colour: int,
          hole: int, outline: int | None = None) -> None:
    if len(rings[0]) < 3:
        return
    draw.polygon(view.px(rings[0]), fill=colour, outline=outline)
    for r in rings[1:]:
        if len(r) >= 3:
            draw.polygon(view.px(r), fill=hole, outline=outline)


def _outline(draw: ImageDraw.ImageDraw, view: _View, geom: BaseGeometry, colour: int) -> None:
    for rings in _rings(geom):
        for r in rings:
            pts = view.px(r)
            draw.line(pts + pts[:2], fill=colour, width=2, joint="curve")


@functools.cache
def _font(size_px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size_px)


@functools.lru_cache(maxsize=1024)
def _text(text: str, size_px: int, width_px: float | None = None) -> tuple[Image.Image, float]:
    """``text`` (cut with … to ``width_px``) as a 1-bit mask, and its width: laying out
    text was a third of a figure's cost, and scale labels, time differences and product
    names repeat from figure to figure."""
    font = _font(size_px)
    if width_px is not None and font.getlength(text) > width_px:
        while text and font.getlength(text + "…") > width_px:
            text = text[:-1]
        text += "…"
    _, _, right, bottom = font.getbbox(text)
    width = float(font.getlength(text))
    mask = Image.new("1", (int(max(right, width)) + size_px, int(bottom) + 2), 0)  # room for the last glyph
    scratch = ImageDraw.Draw(mask)
    scratch.fontmode = "1"
    scratch.text((0, 0), text, fill=1, font=font)
    inked = mask.getbbox()  # 1-bit glyphs can reach past getlength()
    return mask, float(inked[2]) if inked else width


def _draw_text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, size_px: int,
               colour: int, width_px: float | None = None) -> None:
    mask, _ = _text(text, size_px, width_px)
    draw.bitmap((int(xy[0]), int(xy[1])), mask, fill=colour)


def _nice_km(limit_km: float) -> float:
    """The largest 1, 2 or 5 x 10^k km not above ``limit_km``."""
    exp = math.floor(math.log10(max(limit_km, 1e-3)))
    for m in (5, 2, 1):
        if m * 10**exp <= limit_km:
            return float(m * 10**exp)
    return float(10**exp)


def _scale_bar(draw: ImageDraw.ImageDraw, view: _View) -> None:
    km = _nice_km(0.3 * SIZE_PX / view.px_per_km)
    length = km * view.px_per_km
    x0, y = 10.0, SIZE_PX - 12.0
    label = f"{km:g} km"
    tw = _text(label, 11)[1]
    draw.rectangle((x0 - 4, y - 17, x0 + max(length, tw) + 4, y + 5), fill=BAND)
    draw.line((x0, y, x0 + length, y), fill=INK, width=2)
    for x in (x0, x0 + length):
        draw.line((x, y - 4, x, y + 3), fill=INK, width=1)
    _draw_text(draw, (x0, y - 16), label, 11, INK)


def _labels(draw: ImageDraw.ImageDraw, lines: Sequence[tuple[str, int]], corner: str) -> None:
    """The top band with one or two coloured labels, and ``corner`` at the bottom right."""
    draw.rectangle((0, 0, SIZE_PX, BAND_PX - 1), fill=BAND)
    for i, (text, colour) in enumerate(lines[:2]):
        draw.rectangle((6, 6 + 14 * i, 14, 14 + 14 * i), fill=colour)
        _draw_text(draw, (19, 3 + 14 * i), text, 12, INK, width_px=SIZE_PX - 24)
    if corner:
        tw = _text(corner, 13)[1]
        x, y = SIZE_PX - tw - 10, SIZE_PX - 22
        draw.rectangle((x - 4, y - 2, SIZE_PX - 6, y + 16), fill=BAND)
        _draw_text(draw, (x, y), corner, 13, INK)


def _render(
    shapes: Sequence[BaseGeometry],
    filled: BaseGeometry,
    outlines: Sequence[tuple[BaseGeometry, int]],
    lines: Sequence[tuple[str, int]],
    corner: str,
) -> bytes:
    """Land, the filled region, coloured outlines, labels and a scale bar, as PNG bytes."""
    view = _View([*shapes, filled])
    img = Image.new("P", (SIZE_PX, SIZE_PX), SEA)
    img.putpalette([c for rgb in PALETTE for c in rgb])
    draw = ImageDraw.Draw(img)
    for part in land_in(*view.box):
        for rings in _rings(part):
            _fill(draw, view, rings, LAND, SEA, outline=COAST)
    for rings in _rings(filled):
        _fill(draw, view, rings, OVERLAP, SEA)
    for geom, colour in outlines:
        _outline(draw, view, geom, colour)
    _scale_bar(draw, view)
    _labels(draw, lines, corner)
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=3)  # 6 costs ~2x the time for ~5 % fewer bytes
    return out.getvalue()


def _geom(item: Mapping[str, Any]) -> BaseGeometry:
    geom = item.get("geometry")
    return shape(geom) if geom else Polygon()


def _name(product: Mapping[str, Any]) -> str:
    props = product.get("properties") or {}
    platform = props.get("platform") or product.get("collection") or ""
    return f"{platform} {product_label(str(product.get('id', '')))}".strip()


def matchup_quicklook(matchup: Mapping[str, Any], product_a: Mapping[str, Any], product_b: Mapping[str, Any]) -> bytes:
    """PNG of a matchup: both footprints, their overlap (the matchup's geometry) filled,
    land, a scale bar, the time difference and the two products' short names."""
    a, b, overlap = _geom(product_a), _geom(product_b), _geom(matchup)
    ref = _first_lon([overlap, a, b])
    overlap = _unwrap(overlap, ref)
    a = _unwrap(a, ref, overlap)
    b = _unwrap(b, ref, overlap if not overlap.is_empty else a)
    a, b, overlap = _centred([a, b, overlap])
    props = matchup.get("properties") or {}
    diff = props.get("matchup:abs_time_diff_s")
    corner = f"{format_time_diff(float(diff))} apart" if isinstance(diff, (int, float)) else ""
    return _render([a, b], overlap, [(a, COLOUR_A), (b, COLOUR_B)],
                   [(_name(product_a), COLOUR_A), (_name(product_b), COLOUR_B)], corner)  # fmt: skip


def event_quicklook(
    event: Mapping[str, Any],
    products_a: Sequence[Mapping[str, Any]] = (),
    products_b: Sequence[Mapping[str, Any]] = (),
) -> bytes:
    """PNG of an event: its collocation region filled and, when given, the footprints of
    both platforms' products found in it (outlined in the platforms' colours)."""
    region = _geom(event)
    ref = _first_lon([region])
    region = _unwrap(region, ref)
    # each footprint placed onto the region (not just near ref): a region may span more
    # than 180 degrees, and a footprint at its far end belongs there, not 360 away
    unions = [
        shapely.union_all([_unwrap(_geom(p), ref, region) for p in prods]) if prods else Polygon()
        for prods in (products_a, products_b)
    ]
    *unions, region = _centred([*unions, region])
    sides = list(zip(unions, (COLOUR_A, COLOUR_B), strict=True))
    props = event.get("properties") or {}
    names = list(props.get("matchup:platforms") or ["", ""])
    diff = props.get("matchup:time_diff_s")
    corner = f"{format_time_diff(abs(float(diff)))} apart" if isinstance(diff, (int, float)) else ""
    drawn = [g for g, _ in sides if not g.is_empty]
    lines = [(str(n), c) for n, (_, c) in zip(names, sides, strict=False)]
    return _render(drawn, region, [(g, c) for g, c in sides if not g.is_empty], lines, corner)


# --------------------------------------------------------------------------- writing


def draw(item: Mapping[str, Any], products: Sequence[Sequence[Mapping[str, Any]]] | Sequence[Mapping[str, Any]]) -> bytes:
    """The quicklook of an event (``products``: its platforms' two product lists) or of a
    matchup (``products``: its two product items)."""
    if (item.get("properties") or {}).get("matchup:type") == "event":
        side_a, side_b = products if products else ((), ())
        return event_quicklook(item, side_a, side_b)  # type: ignore[arg-type]
    product_a, product_b = products
    return matchup_quicklook(item, product_a, product_b)  # type: ignore[arg-type]


def write_quicklook(path: str | Path, item: Mapping[str, Any], products: Sequence[Any]) -> int:
    """Draw and write a quicklook atomically (temp file + rename); its size in bytes.

    A figure that cannot be drawn (a geometry no footprint should have) becomes a blank
    one naming the problem, with a warning: the item's asset still names a PNG, and one
    odd item does not fail a long ``eomatch-find`` at its end."""
    try:
        png = draw(item, products)
    except Exception as exc:  # any drawing failure: shapely, Pillow, malformed items
        reason = f"{type(exc).__name__}: {exc}"
        log.warning("quicklook of %s not drawn (%s); a blank one is written", item.get("id"), reason)
        png = _render([], Polygon(), [], [("no quicklook: " + reason, INK)], "")
    jsonio.write_bytes_atomic(path, png)
    return len(png)


def write_quicklooks(jobs: Sequence[tuple[str, Mapping[str, Any], Sequence[Any]]]) -> list[int]:
    """:func:`write_quicklook` for each (path, item, products): a worker's unit of work."""
    return [write_quicklook(path, item, products) for path, item, products in jobs]


class QuicklookWriter:
    """Draws and writes quicklooks in a worker process while the caller goes on.

    ``eomatch-find`` spends its time in orbit propagation and provider searches on one
    core; drawing there too made the demo's find ~1.5-3x slower (benchmarks/
    quicklook_cost.py), drawing beside it costs little. Figures go to the worker in
    batches of ``batch``: one task per figure cost the caller ~6 ms each (every submit
    wakes the pool's manager thread, and the caller then waits for the GIL), more than
    drawing. At most ``backlog`` batches are queued (the caller waits for the oldest
    beyond that), so memory stays bounded on bulk runs; :meth:`close` sends the last
    batch, waits for all and raises a worker's error. With ``workers=0`` everything is
    drawn in the calling process.
    """

    def __init__(self, workers: int = 1, batch: int = 16, backlog: int = 8) -> None:
        self.workers = workers
        self.batch = batch
        self.backlog = backlog
        self.written = 0
        self.bytes = 0
        self._pool: ProcessPoolExecutor | None = None
        self._jobs: list[tuple[str, Mapping[str, Any], Sequence[Any]]] = []
        self._pending: deque[Future[list[int]]] = deque()

    def __enter__(self) -> QuicklookWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.close(wait_for_all=exc_type is None)

    def start(self) -> None:
        """Start the worker now (it loads the land file while the caller works)."""
        if self.workers > 0 and self._pool is None:
            import multiprocessing

            # fork: the worker starts with eomatch already imported (spawn re-imports
            # numpy, shapely and Pillow: ~0.5 s, as long as the whole demo's find)
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork"))
            self._pending.append(self._pool.submit(_warm))

    def submit(self, path: str | Path, item: Mapping[str, Any], products: Sequence[Any]) -> None:
        """Draw ``item``'s quicklook into ``path`` (now, or soon in the worker)."""
        if self.workers <= 0:
            self._count([write_quicklook(path, item, products)])
            return
        self._jobs.append((str(path), item, products))
        if len(self._jobs) >= self.batch:
            self._send()

    def _send(self) -> None:
        if not self._jobs:
            return
        self.start()
        assert self._pool is not None
        self._pending.append(self._pool.submit(write_quicklooks, self._jobs))
        self._jobs = []
        while len(self._pending) > self.backlog:
            self._count(self._pending.popleft().result())

    def _count(self, sizes: list[int]) -> None:
        self.written += len(sizes)
        self.bytes += sum(sizes)

    def close(self, wait_for_all: bool = True) -> None:
        """Send the last batch, wait for every figure (re-raising a worker's error), stop."""
        try:
            if wait_for_all:
                self._send()
            while wait_for_all and self._pending:
                self._count(self._pending.popleft().result())
        finally:
            self._jobs = []
            self._pending.clear()
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None


def _warm() -> list[int]:
    """The worker's first task: load the land file before the first figure needs it."""
    _land()
    return []
