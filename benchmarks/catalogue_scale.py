"""How MatchupCatalogue lookups scale: index lookups vs a pystac scan per lookup.

Writes N items (events + matchups + products) into a fresh catalogue, then times
``get_item`` on random ids and ``get_events`` streaming, against the naive way
(``pystac.Catalog.from_file(...).get_items(id)`` for each lookup, on a sample).
The last line is ``ratio=<naive s/lookup / eomatch s/lookup>``.

    .venv/bin/python benchmarks/catalogue_scale.py --items 6000
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pystac
from shapely.geometry import box

from eomatch import Matchup, MatchupCatalogue, MatchupEvent
from eomatch.model import Product
from eomatch.progress import Progress

T0 = datetime(2022, 1, 1, tzinfo=UTC)
ITEMS_PER_GROUP = 6  # 1 event, 2 matchups, 3 products


def _group(i: int, rng: random.Random) -> MatchupEvent:
    t = T0 + timedelta(hours=7 * i, seconds=rng.randint(0, 3000))
    lon, lat = rng.uniform(-175, 170), rng.uniform(-70, 65)
    ev = MatchupEvent.create(
        platform_a="Sentinel-2A", collection_a="S2_MSI_L1C", platform_b="Landsat-9",
        collection_b="LANDSAT_C2L1", start=t, end=t + timedelta(minutes=20),
        region=box(lon, lat, lon + 4, lat + 4), min_distance_km=rng.uniform(0, 100),
    )  # fmt: skip
    s2 = Product.create(id=f"S2A_{i:07d}", collection="S2_MSI_L1C", platform="Sentinel-2A",
                        geometry=box(lon, lat, lon + 2, lat + 2), start=t).to_dict()  # fmt: skip
    for j in range(2):
        ls = Product.create(id=f"LC09_{i:07d}_{j}", collection="LANDSAT_C2L1", platform="Landsat-9",
                            geometry=box(lon + 0.5 + j, lat + 0.5, lon + 2.5 + j, lat + 2.5),
                            start=t + timedelta(minutes=5 + j)).to_dict()  # fmt: skip
        Matchup.create(ev, s2, ls)
    return ev


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=3000, help="items to write (default 3000)")
    ap.add_argument("--lookups", type=int, default=2000, help="random get_item lookups to time")
    ap.add_argument("--naive-sample", type=int, default=3, help="naive pystac lookups to time")
    ap.add_argument("--path", type=Path, default=None, help="catalogue folder (default: temporary)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    tmp = None
    if args.path is None:
        tmp = tempfile.mkdtemp(prefix="eomatch-bench-")
        args.path = Path(tmp) / "catalogue"
    try:
        groups = max(1, args.items // ITEMS_PER_GROUP)
        cat = MatchupCatalogue.create(args.path)
        ids: list[str] = []
        with Progress("write", total=groups * ITEMS_PER_GROUP, quiet=args.quiet) as prog:
            t_write = time.perf_counter()
            for i in range(groups):
                ev = _group(i, rng)
                cat.add_event(ev)
                ids.append(ev.id)
                for m in ev.matchup_set:
                    ids.append(m.id)
                    ids.extend(p["id"] for p in m.products())
                prog.update(ITEMS_PER_GROUP)
            cat.save()
            write_s = time.perf_counter() - t_write
        ids = sorted(set(ids))
        n_items = len(ids)
        cat.close()
        print(f"items={n_items} write_s={write_s:.2f} write_items_per_s={n_items / write_s:,.0f}")

        # eomatch: fresh open, random ids through the index
        t_open = time.perf_counter()
        cat = MatchupCatalogue.open(args.path)
        cat.count()
        open_s = time.perf_counter() - t_open
        sample = [rng.choice(ids) for _ in range(args.lookups)]
        t0 = time.perf_counter()
        for item_id in sample:
            assert cat.get_item(item_id)["id"] == item_id
        ours_per_lookup = (time.perf_counter() - t0) / len(sample)
        print(f"eomatch open_s={open_s:.3f} get_item_ms={ours_per_lookup * 1e3:.3f} (n={len(sample)})")

        t0 = time.perf_counter()
        n_events = n_matchups = 0
        for ev in cat.get_events():
            n_events += 1
            n_matchups += len(ev.matchup_set)
        events_s = time.perf_counter() - t0
        print(f"eomatch get_events all: events={n_events} matchups={n_matchups} s={events_s:.3f} "
              f"events_per_s={n_events / max(events_s, 1e-9):,.0f}")  # fmt: skip
        window = (T0 + timedelta(days=30), T0 + timedelta(days=37))
        t0 = time.perf_counter()
        n_window = sum(1 for _ in cat.get_events(start_time=window[0], stop_time=window[1]))
        window_s = time.perf_counter() - t0
        print(f"eomatch get_events one week: events={n_window} s={window_s:.4f}")

        # naive: pystac scan per lookup, on a sample
        naive_ids = [rng.choice(ids) for _ in range(args.naive_sample)]
        t0 = time.perf_counter()
        for item_id in naive_ids:
            root = pystac.Catalog.from_file(str(args.path / "catalog.json"))
            found = next(root.get_items(item_id, recursive=True), None)
            assert found is not None and found.id == item_id
        naive_per_lookup = (time.perf_counter() - t0) / len(naive_ids)
        print(f"naive pystac get_items(id) s_per_lookup={naive_per_lookup:.3f} (n={len(naive_ids)})")
        t0 = time.perf_counter()
        root = pystac.Catalog.from_file(str(args.path / "catalog.json"))
        naive_events = sum(1 for it in root.get_items(recursive=True) if it.properties.get("matchup:type") == "event")
        naive_events_s = time.perf_counter() - t0
        print(f"naive pystac event scan: events={naive_events} s={naive_events_s:.3f} "
              f"(vs eomatch {events_s:.3f} with matchups loaded)")  # fmt: skip
        cat.close()
        print(f"ratio={naive_per_lookup / ours_per_lookup:.0f}")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
