"""eomatch-ingest vs ``pypgstac load items``: throughput and memory on a realistic catalogue.

For each size N: write a catalogue of N items (events, matchups, products with
links and assets) with ``_synth.py``; pre-serialise the same items, transformed
exactly as ingest sends them, to ndjson; then, each into its own fresh pgSTAC
database (collections already loaded), time ``eomatch.ingest.ingest`` (quiet)
and ``pypgstac``'s ``Loader.load_items(ndjson, insert_mode=upsert)``, each in a
fresh child process that also reports its peak RSS and CPU seconds (user + system
of the client; PostgreSQL's are not counted). The last line is
``ratio=<eomatch items/s / pypgstac items/s>`` at the largest size.

    .venv/bin/python benchmarks/ingest_throughput.py --sizes 10000,100000
    .venv/bin/python benchmarks/ingest_throughput.py --items 20000 --state-dir S --db-port P
    .venv/bin/python benchmarks/ingest_throughput.py --catalogue /dev/shm/cat100k

Measured (this shared 2-core VM, 99,304 items of ``_synth.py --items 100000``, the
same catalogue before and after the row formatter of ``eomatch.pgstac.RowFormatter``,
the direct file reads and the cached link folders; load average 7 and 10-13):

========  ==================  ==================  =====  ============================
run       eomatch             pypgstac            ratio  client CPU eomatch / pypgstac
========  ==================  ==================  =====  ============================
before    32.1 s, 3,091/s     41.5 s, 2,391/s     1.29   13.0 s (131 us/item) / 5 s
after     38.7 s, 2,563/s     43.8 s, 2,266/s     1.13   11.9 s (120 us/item) / 6 s
========  ==================  ==================  =====  ============================

The wall-clock ratios move with the load (the second run had twice the load); CPU
is the steadier figure. At 1M (985,206 items, ``--catalogue /dev/shm/cat1m``): before,
0.65 and 0.45 with 142 s of client CPU against 52 s (load 4-12); after, 1.01 (eomatch
187.8 s, pypgstac 190.5 s), client CPU 91.2 s (93 us/item) against 42.9 s, peak RSS
175 vs 262 MiB (load 3-6, one run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synth  # noqa: E402

from eomatch.catalogue import MatchupCatalogue  # noqa: E402
from eomatch.ingest import HrefRewriter, transform_collection  # noqa: E402
from eomatch.settings import Settings, load_settings  # noqa: E402
from eomatch.stack.db import DbCredentials, setup_database, stack_credentials  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def scratch_dir(prefix: str) -> Path:
    """A fast scratch folder: tmpfs when there is one (creating files on this VM's disk
    costs ~1 ms each, which would make generating 100k items take minutes)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


@contextmanager
def local_stack(state_dir: str | None = None, db_port: int | None = None) -> Iterator[Settings]:
    """The settings of a running stack: the given one, else a new one started (and stopped) here."""
    if state_dir:
        overrides: dict[str, Any] = {"stack": {"state_dir": state_dir}}
        if db_port:
            overrides["stack"]["db"] = {"port": db_port}
        yield load_settings(overrides=overrides, environ={})
        return
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import private_stack  # type: ignore[import-not-found]

    with private_stack("eomatch-bench-") as stack:
        yield stack.settings


def fresh_database(settings: Settings, name: str) -> DbCredentials:
    """Drop and recreate database ``name`` with pgSTAC; credentials of the stack's ingest role."""
    import psycopg
    from psycopg import sql

    admin = stack_credentials(settings, "admin")
    ingest = stack_credentials(settings, "ingest")
    maint = DbCredentials(admin.host, admin.port, "postgres", admin.user, admin.password)
    with psycopg.connect(maint.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    setup_database(admin, name, {ingest.user: ingest.password}, {})
    return DbCredentials(ingest.host, ingest.port, name, ingest.user, ingest.password)


def drop_database(settings: Settings, name: str) -> None:
    import psycopg
    from psycopg import sql

    admin = stack_credentials(settings, "admin")
    maint = DbCredentials(admin.host, admin.port, "postgres", admin.user, admin.password)
    with psycopg.connect(maint.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def item_counts(creds: DbCredentials) -> dict[str, int]:
    import psycopg

    with psycopg.connect(creds.dsn) as conn:
        rows = conn.execute("SELECT collection, count(*) FROM pgstac.items GROUP BY collection").fetchall()
    return {c: int(n) for c, n in rows}


def run_child(code: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it reads ``ARGS`` and sets ``RESULT`` (a dict).

    The child adds its own peak RSS (``VmHWM`` of ``/proc/self/status``: not ``ru_maxrss``,
    which Linux carries over ``exec`` from the forked copy of this process, so a child
    of a parent that read a 1M-item catalogue showed the parent's 448 MiB) and CPU
    seconds (user + system), so each figure belongs to one run only.
    """
    wrapper = (
        "import json, resource, sys\n"
        "ARGS = json.loads(sys.argv[1])\n"
        "RESULT = {}\n"
        f"{code}\n"
        "RESULT['peak_rss_mib'] = [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0] / 1024\n"
        "RESULT['cpu_s'] = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])\n"
        "print('RESULT=' + json.dumps(RESULT))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, json.dumps(args)], capture_output=True, text=True, cwd=REPO
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT="):
            return dict(json.loads(line[len("RESULT=") :]))
    raise RuntimeError(f"child printed no result: {proc.stdout[-500:]}")


EOMATCH_CHILD = """
import time
from eomatch.ingest import ingest
from eomatch.settings import load_settings
settings = load_settings(environ={})
t = time.perf_counter()
summary = ingest(settings, catalogue=ARGS["catalogue"], db_host=ARGS["host"], db_port=ARGS["port"],
                 db_name=ARGS["dbname"], db_user=ARGS["user"], db_password=ARGS["password"],
                 quiet=True, batch_size=ARGS["batch"], since=ARGS.get("since"))
RESULT.update(seconds=time.perf_counter() - t, new=summary.new, updated=summary.updated,
              unchanged=summary.unchanged, scanned=summary.scanned, line=summary.line())
"""

PYPGSTAC_CHILD = """
import time
from pypgstac.db import PgstacDB
from pypgstac.load import Loader, Methods
t = time.perf_counter()
with PgstacDB(dsn=ARGS["dsn"]) as db:
    Loader(db=db).load_items(ARGS["ndjson"], insert_mode=Methods.upsert)
RESULT.update(seconds=time.perf_counter() - t)
"""


def write_db_form(root: Path, items_path: Path) -> list[dict[str, Any]]:
    """The items as ingest sends them (same transform), one JSON per line; returns collections."""
    from eomatch.ingest import _read_items

    cat = MatchupCatalogue.open(root)
    rewriter = HrefRewriter(cat.root, None)
    with open(items_path, "wb") as fh:
        for fi in _read_items(cat.iter_item_paths(), rewriter, b"bench"):
            fh.write(orjson.dumps(fi.item) + b"\n")
    return [transform_collection(c, cat.root / c["id"], rewriter) for c in cat.iter_collections()]


def count_lines(path: Path) -> int:
    """Items in an ndjson file (streamed)."""
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


def load_collections(creds: DbCredentials, collections: list[dict[str, Any]]) -> None:
    from pypgstac.db import PgstacDB
    from pypgstac.load import Loader, Methods

    with PgstacDB(dsn=creds.dsn) as db:
        Loader(db=db).load_collections(iter(collections), insert_mode=Methods.upsert)


def eomatch_child(creds: DbCredentials, catalogue: Path, batch: int | None, since: str | None = None) -> dict[str, Any]:
    return run_child(
        EOMATCH_CHILD,
        {"catalogue": str(catalogue), "host": creds.host, "port": creds.port, "dbname": creds.dbname,
         "user": creds.user, "password": creds.password, "batch": batch, "since": since},
    )  # fmt: skip


def measure(
    settings: Settings,
    n_items: int,
    work: Path,
    batch: int | None,
    seed: int,
    existing: Path | None = None,
    existing_ndjson: Path | None = None,
) -> dict[str, Any]:
    """One size: generate (or take ``existing``, kept), pre-serialise (or take
    ``existing_ndjson``, written from it before), load both ways into fresh databases, compare."""
    if existing is not None:
        root = existing
        for state in (root / ".eomatch").glob("ingest-*"):  # the eomatch load starts with no memory
            state.unlink()
        n_generated = None
    else:
        root = work / f"catalogue-{n_items}"
        synth = _synth.generate(root, n_items, seed=seed)
        print(f"[{n_items}] wrote {synth.items} items in {synth.seconds:.1f}s", file=sys.stderr)
        if synth.items <= 20000:
            _synth.verify(synth)
        n_generated = synth.items
    ndjson = existing_ndjson or work / f"items-{n_items}.ndjson"
    if existing_ndjson is None:
        collections = write_db_form(root, ndjson)
    else:
        rewriter = HrefRewriter(root, None)
        cat = MatchupCatalogue.open(root)
        collections = [transform_collection(c, cat.root / c["id"], rewriter) for c in cat.iter_collections()]
    n_files = count_lines(ndjson)  # the item files: what both loads must end with
    if n_generated is not None and n_files != n_generated:  # ids made twice: the later file replaced the earlier
        print(f"[{n_items}] {n_generated} items generated, {n_files} item files (repeated ids)", file=sys.stderr)
    db_e = fresh_database(settings, f"bench_eomatch_{n_items}")
    db_p = fresh_database(settings, f"bench_pypgstac_{n_items}")
    try:
        load_collections(db_e, collections)
        load_collections(db_p, collections)
        eo = eomatch_child(db_e, root, batch)
        print(f"[{n_items}] eomatch: {eo['line']}; peak RSS {eo['peak_rss_mib']:.0f} MiB, CPU {eo['cpu_s']:.0f}s",
              file=sys.stderr)  # fmt: skip
        pg = run_child(PYPGSTAC_CHILD, {"dsn": db_p.dsn, "ndjson": str(ndjson)})
        print(f"[{n_items}] pypgstac: {pg['seconds']:.1f}s; peak RSS {pg['peak_rss_mib']:.0f} MiB, CPU {pg['cpu_s']:.0f}s",
              file=sys.stderr)  # fmt: skip
        counts_e, counts_p = item_counts(db_e), item_counts(db_p)
        if counts_e != counts_p or sum(counts_e.values()) != n_files:
            raise SystemExit(f"databases differ: eomatch {counts_e} pypgstac {counts_p} expected {n_files}")
    finally:
        drop_database(settings, db_e.dbname)
        drop_database(settings, db_p.dbname)
        if existing is None:
            shutil.rmtree(root, ignore_errors=True)
        if existing_ndjson is None:
            ndjson.unlink(missing_ok=True)
    out = {
        "items": n_files,
        "eomatch_s": eo["seconds"],
        "eomatch_rss_mib": eo["peak_rss_mib"],
        "pypgstac_s": pg["seconds"],
        "pypgstac_rss_mib": pg["peak_rss_mib"],
        "eomatch_cpu_s": eo["cpu_s"],
        "pypgstac_cpu_s": pg["cpu_s"],
    }
    out["eomatch_items_s"] = n_files / out["eomatch_s"]
    out["pypgstac_items_s"] = n_files / out["pypgstac_s"]
    out["ratio"] = out["eomatch_items_s"] / out["pypgstac_items_s"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000, help="catalogue size (default 100000)")
    ap.add_argument("--sizes", help="comma-separated sizes, e.g. 10000,100000 (overrides --items)")
    ap.add_argument("--batch-size", type=int, default=None, help="ingest batch size (default: settings)")
    ap.add_argument("--state-dir", help="use this running stack instead of starting one")
    ap.add_argument("--db-port", type=int, help="its database port")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--catalogue", type=Path, help="an existing catalogue instead of generating one (kept)")
    ap.add_argument("--ndjson", type=Path, help="with --catalogue: its items as this script wrote them (kept)")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [args.items]
    work = scratch_dir("eomatch-ingest-bench-")
    results = []
    try:
        with local_stack(args.state_dir, args.db_port) as settings:
            for n in sizes:
                r = measure(settings, n, work, args.batch_size, args.seed, args.catalogue, args.ndjson)
                results.append(r)
                print(
                    f"N={r['items']}: eomatch {r['eomatch_s']:.1f}s ({r['eomatch_items_s']:,.0f} items/s, "
                    f"peak RSS {r['eomatch_rss_mib']:.0f} MiB) | pypgstac {r['pypgstac_s']:.1f}s "
                    f"({r['pypgstac_items_s']:,.0f} items/s, peak RSS {r['pypgstac_rss_mib']:.0f} MiB) "
                    f"| CPU eomatch {r['eomatch_cpu_s']:.1f}s ({r['eomatch_cpu_s'] / r['items'] * 1e6:.0f} us/item), "
                    f"pypgstac {r['pypgstac_cpu_s']:.1f}s | ratio {r['ratio']:.2f}",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if len(results) > 1:
        first, last = results[0], results[-1]
        per_first = first["eomatch_s"] / first["items"] * 1e6
        per_last = last["eomatch_s"] / last["items"] * 1e6
        print(
            f"growth: eomatch {per_first:.0f} us/item at {first['items']} vs {per_last:.0f} us/item at "
            f"{last['items']} (x{per_last / per_first:.2f} per item for x{last['items'] / first['items']:.0f} items); "
            f"peak RSS {first['eomatch_rss_mib']:.0f} -> {last['eomatch_rss_mib']:.0f} MiB"
        )
    final = results[-1]
    print(f"peak_rss_mib={final['eomatch_rss_mib']:.0f} (target <= 1024)")
    print(f"ratio={final['ratio']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
