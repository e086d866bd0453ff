"""STAC Browser on a large catalogue: root, collection and item pages timed in real Chromium.

Debian's Chromium (``/usr/bin/chromium``, headless, the launch options of
tests/stack/test_browser_offline.py; never ``playwright install``) opens the stack's
STAC Browser (which reads ``/external/``) through nginx. A page's time runs from the
start of the navigation to its main content being visible:

* root (``/``): the title of the first collection card (``.catalog-card .card-title``);
* collection (``/collections/{c}``): its heading and the title of the first card of its
  items list (``.item-card .card-title``), collections drawn from all of them (the
  product ones are the largest);
* item (``/collections/{c}/items/{id}``): its heading (``get_by_role("heading",
  name=<title or id>)``) and the first metadata card (``.metadata-card``), random items
  of every kind.

Each page kind is loaded once to warm the browser's cache of the app's own files (a
user's second page), then ``--loads`` times with a different collection or item each
time, one after another. Given several stacks (``search_scale.py --browser``: the 100k
and the 1M one side by side), each page is opened on every stack back to back, the
order reversed every other round, so the machine's load weighs on all alike. Prints the
median and worst per kind and where the time went, from the page's own Resource and
Navigation Timing: when the app's files were in (and how many came from the cache),
when its first API request left (the time to run the app's scripts), when the last API
answer came (how many requests, their summed time) and when the content was visible
(what follows the last answer is the browser's rendering); ends with ``ratio=<max
median page time / 2 s>`` (goal <= 1) of the last (largest) stack.

Run it on a stack that holds the catalogue: after ``search_scale.py`` (``--browser``,
the 1M stack), or here with ``--items N`` (a private stack, a realistic catalogue of N
items loaded the fast way, everything removed after) or ``--state-dir`` of a running one.

Measured on the 985,206-item stack (three runs, this VM shared with other jobs):
root 1.03-1.84 s, collection 1.88-3.35 s, item 1.71-2.76 s; ``ratio=`` 0.94, 1.68, 1.31.
Interleaved with the 100k stack (``search_scale.py --browser``, load average 1.5-3.5):
0.89 / 1.77 / 1.39 s at 1M against 1.00 / 1.63 / 1.47 s at 100k, ``ratio=0.88``.

    .venv/bin/python benchmarks/search_scale.py --sizes 100000,1000000 --browser
    .venv/bin/python benchmarks/browser_scale.py --items 20000
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_throughput import local_stack, scratch_dir  # noqa: E402

from eomatch.pgstac import stack_credentials  # noqa: E402
from eomatch.settings import Settings  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
GOAL_S = 2.0
TIMEOUT_MS = 60_000


def _targets(settings: Settings, n: int, seed: int) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """(collection id, title) of ``n`` collections and (collection, id, heading) of ``n`` items."""
    import psycopg

    rng = random.Random(seed)
    creds = stack_credentials(settings, "ingest")
    with psycopg.connect(creds.dsn, autocommit=True) as conn:
        cols = [(r[0], r[1] or r[0]) for r in conn.execute("SELECT id, content->>'title' FROM pgstac.collections")]
        total = int(conn.execute("SELECT count(*) FROM pgstac.items").fetchone()[0])  # type: ignore[index]
        pct = min(100.0, 100.0 * 50 * n / max(total, 1))
        rows = conn.execute(
            "SELECT collection, id, content->'properties'->>'title' FROM pgstac.items"
            f" TABLESAMPLE BERNOULLI ({pct}) REPEATABLE (%s) LIMIT %s",
            (rng.randint(0, 2**31), 50 * n),
        ).fetchall()
    rng.shuffle(cols)
    rng.shuffle(rows)
    cols = (cols * (n // max(len(cols), 1) + 1))[:n]
    items = [(c, i, t or i) for c, i, t in rows[:n]]
    return cols, items


# Where a load's time went, from the page's own Resource and Navigation Timing (ms since
# navigation start): the app's files (HTML, config.js, js/, css/) done; its first and last
# API request (/external/); the main content visible. Scripting is what lies between the
# files and the first request; rendering what follows the last answer.
BREAKDOWN_JS = """() => {
  const res = performance.getEntriesByType('resource');
  const nav = performance.getEntriesByType('navigation')[0];
  const app = res.filter(r => /\\/(js|css)\\/|\\/config\\.js/.test(new URL(r.name).pathname));
  const api = res.filter(r => new URL(r.name).pathname.startsWith('/external/'));
  const end = xs => xs.length ? Math.max(...xs.map(r => r.responseEnd)) : 0;
  return {
    files_done: Math.max(nav ? nav.responseEnd : 0, end(app)),
    files_kb: app.reduce((s, r) => s + r.transferSize, nav ? nav.transferSize : 0) / 1024,
    files_cached: app.filter(r => r.transferSize === 0).length,
    files: app.length,
    api_first: api.length ? Math.min(...api.map(r => r.startTime)) : 0,
    api_done: end(api),
    api_ms: api.reduce((s, r) => s + r.duration, 0),
    api_n: api.length,
    visible: performance.now(),
  };
}"""


@dataclass
class Load:
    """One page load: seconds to visible main content and the page's own timing split."""

    seconds: float
    split: dict[str, float]


def time_pages(bases: dict[str, str], loads: int, cols: list[tuple[str, str]], items: list[tuple[str, str, str]],
               shots: Path | None = None) -> dict[str, dict[str, list[Load]]]:
    """Per stack (label: base URL) and page kind, each kept load (the first of each left out).

    Loads are interleaved: per round and kind the same page is opened on every stack back
    to back, the order reversed every other round, so the machine's load weighs on all
    stacks alike (each stack is its own origin, so its own browser cache)."""
    from playwright.sync_api import Page, sync_playwright

    kinds: dict[str, Callable[[int], tuple[str, Callable[[Page], list[Any]]]]] = {
        "root": lambda k: ("/", lambda p: [p.locator(".catalog-card .card-title").first]),
        "collection": lambda k: (f"/collections/{cols[k][0]}", lambda p: [
            p.get_by_role("heading", name=cols[k][1]).first, p.locator(".item-card .card-title").first]),
        "item": lambda k: (f"/collections/{items[k][0]}/items/{items[k][1]}", lambda p: [
            p.get_by_role("heading", name=items[k][2]).first, p.locator(".metadata-card").first]),
    }  # fmt: skip
    labels = list(bases)
    out: dict[str, dict[str, list[Load]]] = {label: {k: [] for k in kinds} for label in labels}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            for k in range(loads + 1):
                order = labels if k % 2 == 0 else labels[::-1]
                for kind, make in kinds.items():
                    path, locate = make(k)
                    for label in order:
                        page = context.new_page()
                        try:
                            t0 = time.perf_counter()
                            page.goto(bases[label] + path, wait_until="commit", timeout=TIMEOUT_MS)
                            for locator in locate(page):
                                locator.wait_for(state="visible", timeout=TIMEOUT_MS)
                            seconds = time.perf_counter() - t0
                            split = page.evaluate(BREAKDOWN_JS)
                            if shots is not None and k == loads:
                                safe = "".join(ch if ch.isalnum() else "-" for ch in label)
                                page.screenshot(path=str(shots / f"browser-scale-{safe}-{kind}.png"))
                        finally:
                            page.close()
                        if k:
                            out[label][kind].append(Load(seconds, split))
        finally:
            browser.close()
    return out


def _median(loads: list[Load], key: str) -> float:
    return statistics.median(ld.split[key] for ld in loads)


def report(stacks: list[tuple[str, Settings]], loads: int = 5, seed: int = 1, shots: Path | None = None) -> str:
    """Page times on these stacks (label, settings; smallest catalogue first, whose items
    and collections every stack must hold), one table each; the last line is ``ratio=``
    of the last stack."""
    if not CHROMIUM.exists():
        raise SystemExit(f"needs Debian's chromium at {CHROMIUM}")
    cols, items = _targets(stacks[0][1], loads + 1, seed)
    bases = {label: f"http://127.0.0.1:{st.stack.proxy.port}" for label, st in stacks}
    times = time_pages(bases, loads, cols, items, shots)
    what = {"root": ".catalog-card .card-title", "collection": "heading, .item-card .card-title",
            "item": "heading, .metadata-card"}  # fmt: skip
    lines = [f"STAC Browser, {loads} loads per page kind after one warm-up (Chromium, headless"
             + (", stacks interleaved" if len(stacks) > 1 else "") + "); medians of the page's own timing, ms "
             "since navigation: app files done (KiB over the wire, from cache), first API request, "
             "last API answer (requests, summed ms), visible"]  # fmt: skip
    for label, by_kind in times.items():
        lines.append(f"[{label}]")
        lines.append(f"{'page':12s} {'median s':>9s} {'max s':>7s}  {'files':>16s} {'1st API':>8s} "
                     f"{'API done':>15s} {'visible':>8s}  main content")  # fmt: skip
        for kind, got in by_kind.items():
            secs = [ld.seconds for ld in got]
            files = (f"{_median(got, 'files_done'):5.0f} ({_median(got, 'files_kb'):4.0f}, "
                     f"{_median(got, 'files_cached'):.0f}/{_median(got, 'files'):.0f})")  # fmt: skip
            api = f"{_median(got, 'api_done'):5.0f} ({_median(got, 'api_n'):.0f}, {_median(got, 'api_ms'):4.0f})"
            lines.append(f"{kind:12s} {statistics.median(secs):9.2f} {max(secs):7.2f}  {files:>16s} "
                         f"{_median(got, 'api_first'):8.0f} {api:>15s} {_median(got, 'visible'):8.0f}  "
                         f"{what[kind]}")  # fmt: skip
    if len(stacks) > 1:
        small, large = times[stacks[0][0]], times[stacks[-1][0]]
        pairs = {kind: statistics.median(b.seconds / a.seconds for a, b in zip(small[kind], large[kind], strict=True))
                 for kind in small}  # fmt: skip
        lines.append("median of per-pair ratios (same page, last / first stack): "
                     + ", ".join(f"{k} {v:.2f}" for k, v in pairs.items()))  # fmt: skip
    worst = max(statistics.median(ld.seconds for ld in got) for got in times[stacks[-1][0]].values())
    lines.append(f"ratio={worst / GOAL_S:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=20000, help="catalogue size for a private stack (default 20000)")
    ap.add_argument("--use", type=Path, help="an already written catalogue to load instead of writing one")
    ap.add_argument("--state-dir", help="a running stack that already holds the catalogue (with its ports:)")
    ap.add_argument("--proxy-port", type=int, help="its nginx port")
    ap.add_argument("--db-port", type=int, help="its database port")
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--screenshots", type=Path, help="save the last load of each page kind here")
    args = ap.parse_args(argv)
    if args.use is not None and not (args.use / "catalog.json").is_file():
        ap.error(f"--use {args.use}: no catalog.json there")
    if args.loads < 1:
        ap.error("--loads must be at least 1")
    if args.state_dir:
        from eomatch.settings import load_settings

        stack: dict[str, Any] = {"state_dir": args.state_dir}
        if args.proxy_port:
            stack["proxy"] = {"port": args.proxy_port}
        if args.db_port:
            stack["db"] = {"port": args.db_port}
        settings = load_settings(overrides={"stack": stack}, environ={})
        print(report([("stack", settings)], args.loads, args.seed, args.screenshots))
        return 0
    import _synth
    from search_scale import load

    work = scratch_dir("eomatch-browser-scale-")
    try:
        with local_stack() as settings:
            root = args.use
            if root is None:
                root = work / "catalogue"
                _synth.generate(root, args.items, seed=args.seed, shape="realistic")
            seconds, count = load(settings, root, work, settings.ingest.partition_trunc)
            print(f"loaded in {seconds:.0f} s: the database holds {count:,} items", flush=True)
            print(report([("stack", settings)], args.loads, args.seed, args.screenshots))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
