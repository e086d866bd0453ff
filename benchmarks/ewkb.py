"""Item geometry -> EWKB hex for pgSTAC rows: eomatch's encoder vs shapely.

``eomatch.pgstac.ewkb_hex`` packs GeoJSON coordinates straight into EWKB; shapely
writes the same bytes with ``to_wkb(shape(geometry), hex=True, include_srid=True)``
after building a GEOS geometry (SRID 4326 set with ``set_srid``). Both encode the
geometries of the same synthetic catalogue items (events, matchups, products, as
``benchmarks/_synth.py`` makes them); the outputs are checked to be the same bytes.
Shapely is also timed on its vectorised path (all geometries in one call), which
ingest could only use per batch.

    .venv/bin/python benchmarks/ewkb.py --items 30000

Prints ``ratio=<eomatch items/s ÷ shapely's faster path, items/s>`` last (> 1: eomatch's is faster).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import shapely  # noqa: E402
from _synth import ITEMS_PER_GROUP, _group  # noqa: E402
from shapely.geometry import shape  # noqa: E402

from eomatch.model import _default_satellites  # noqa: E402
from eomatch.pgstac import ewkb_hex  # noqa: E402


def geometries(n_items: int, seed: int = 1) -> list[dict[str, Any]]:
    sats = _default_satellites()
    groups = max(1, n_items // ITEMS_PER_GROUP)
    out: list[dict[str, Any]] = []
    for i in range(groups):
        out += [item["geometry"] for item in _group(i, groups, random.Random(seed * 1_000_003 + i), sats)]
    return out


def with_shapely(geoms: list[dict[str, Any]]) -> list[str]:
    out = []
    for g in geoms:
        out.append(shapely.to_wkb(shapely.set_srid(shape(g), 4326), hex=True, include_srid=True, byte_order=1))
    return out


def with_shapely_vectorised(geoms: list[dict[str, Any]]) -> list[str]:
    arr = shapely.set_srid(shapely.from_geojson([_dumps(g) for g in geoms]), 4326)
    return list(shapely.to_wkb(arr, hex=True, include_srid=True, byte_order=1))


def _dumps(g: dict[str, Any]) -> str:
    import orjson

    return orjson.dumps(g).decode()


def best_of(fn: Any, arg: Any, repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn(arg)
        best = min(best, time.perf_counter() - t)
    return best, result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=30000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    geoms = geometries(args.items)
    kinds: dict[str, int] = {}
    for g in geoms:
        kinds[g["type"]] = kinds.get(g["type"], 0) + 1
    print(f"{len(geoms)} item geometries: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))

    t_own, own = best_of(lambda gs: [ewkb_hex(g) for g in gs], geoms, args.repeat)
    t_shp, shp = best_of(with_shapely, geoms, args.repeat)
    t_vec, vec = best_of(with_shapely_vectorised, geoms, args.repeat)
    same = sum(a is not None and a.lower() == b.lower() for a, b in zip(own, shp, strict=True))
    same_vec = sum(a.lower() == b.lower() for a, b in zip(shp, vec, strict=True))
    if same != len(geoms) or same_vec != len(geoms):
        print(f"error: outputs differ ({len(geoms) - same} eomatch vs shapely, {len(geoms) - same_vec} vectorised)",
              file=sys.stderr)  # fmt: skip
        return 1
    n = len(geoms)
    print(f"eomatch ewkb_hex:              {n / t_own:,.0f} items/s")
    print(f"shapely shape() + to_wkb:      {n / t_shp:,.0f} items/s")
    print(f"shapely from_geojson (arrays): {n / t_vec:,.0f} items/s")
    print(f"ratio={min(t_shp, t_vec) / t_own:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
