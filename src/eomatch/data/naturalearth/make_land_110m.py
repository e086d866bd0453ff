"""Regenerate ``land_110m.json`` from world-atlas's ``land-110m.json`` (TopoJSON).

Run once by hand (``python make_land_110m.py path/to/world-atlas/land-110m.json``);
eomatch only reads the output. TopoJSON arcs are delta-encoded integers under a
``transform``; each polygon ring is the concatenation of its arcs (a negative index
``~i`` is arc ``i`` reversed), each arc after the first without its first point.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DECIMALS = 3
"""0.001 degree (~100 m) is far below 1:110m's detail (~1 km)."""


def decode_arcs(topology: dict) -> list[list[tuple[float, float]]]:
    (sx, sy), (tx, ty) = topology["transform"]["scale"], topology["transform"]["translate"]
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        pts = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            pts.append((x * sx + tx, y * sy + ty))
        arcs.append(pts)
    return arcs


def ring(indices: list[int], arcs: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    """One ring, unwrapped: longitudes continue past ±180 instead of jumping (world-atlas is
    drawn on the sphere, so rings cross the antimeridian and Antarctica circles the pole)."""
    pts: list[tuple[float, float]] = []
    for i in indices:
        arc = arcs[i] if i >= 0 else arcs[~i][::-1]
        pts.extend(arc if not pts else arc[1:])
    out = [pts[0]]
    for lon, lat in pts[1:]:
        prev = out[-1][0]
        out.append((prev + (lon - prev + 180.0) % 360.0 - 180.0, lat))
    turn = out[-1][0] - out[0][0]
    if abs(turn) > 180.0:  # circles a pole: close the ring along it
        pole = -90.0 if sum(lat for _, lat in out) < 0 else 90.0
        out += [(out[-1][0], pole), (out[0][0], pole), out[0]]
    return out


def split_at_antimeridian(rings: list[list[tuple[float, float]]]) -> list[list[list[float]]]:
    """Planar polygons inside [-180, 180] (flat rounded rings) of one unwrapped polygon."""
    import shapely
    from shapely import affinity
    from shapely.geometry import Polygon, box

    poly = shapely.make_valid(Polygon(rings[0], rings[1:]))
    out = []
    for k in (-2, -1, 0, 1, 2):
        piece = poly.intersection(box(-180.0 + 360.0 * k, -90.0, 180.0 + 360.0 * k, 90.0))
        piece = affinity.translate(piece, xoff=-360.0 * k)
        for part in getattr(piece, "geoms", [piece]):
            if isinstance(part, Polygon) and part.area > 0:
                out.append([[round(v, DECIMALS) for xy in r.coords for v in xy] for r in (part.exterior, *part.interiors)])
    return out


def convert(src: Path, dst: Path) -> None:
    topo = json.loads(src.read_text())
    arcs = decode_arcs(topo)
    polygons = []
    for geom in topo["objects"]["land"]["geometries"]:
        polys = geom["arcs"] if geom["type"] == "MultiPolygon" else [geom["arcs"]]
        for poly in polys:
            polygons.extend(split_at_antimeridian([ring(r, arcs) for r in poly]))
    out = {
        "source": "Natural Earth 4.1.0 1:110m land (public domain) via npm world-atlas 2.0.2 land-110m.json",
        "format": "polygons: [[ring, hole, ...], ...]; a ring is a flat [lon, lat, lon, lat, ...] list",
        "polygons": polygons,
    }
    dst.write_text(json.dumps(out, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    convert(Path(sys.argv[1]), Path(__file__).with_name("land_110m.json"))
