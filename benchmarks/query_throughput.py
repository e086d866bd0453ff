"""eomatch-query vs plain pystac-client iteration of the same search.

Loads N items (events, matchups and their products, 1:1:2, with the links the
closure follows, over ~N/4 × 97 minutes) straight into pgSTAC with pypgstac, then times
``eomatch.query.query`` with ``query.parallel`` = ``--parallel`` (windows paged at once)
into an empty folder (which writes every item to disk) against plain serial
``pystac_client`` ``items_as_dicts()`` over the same search (no writing), page size
1000 for both, on the same stack in the same run. Best of ``--repeat`` runs each.
eomatch-query with ``parallel: 1`` (one paged search, written) and its paging layer
alone (``eomatch.query.ApiIO``, no writing) are timed too.

For each phase the CPU seconds of the stack (PostgreSQL, uvicorn, nginx: every
process whose command line names the stack's state folder, and their children), of
this process (the client: pystac-client or eomatch-query) and of the whole machine
are printed as cores busy (CPU s ÷ wall s), to show what limits the pace on this
machine: the API server is the serial pace's bottleneck, and on 2 cores the parallel
one shares them with the client that parses and writes.

With ``--rtt-ms R`` (default 0: straight to the stack on loopback) both clients reach
the stack through a delaying TCP proxy on loopback (``benchmarks/_delay_proxy.py``)
that adds R ms to every request/response round trip, as for a researcher on another
network: the case parallel windows are for. The stack started here then has its
``stack.public_url`` at the proxy, so the API's ``next`` links (and every other link)
lead back through it; the run checks that the landing page's search link does. The
proxy is a separate process (it never takes the client's GIL) that only moves bytes with
asyncio in one thread, sleeping in its event loop: it is I/O only and cannot starve the
server of CPU; its CPU is measured and printed as a ``proxy`` column beside the others
(and left out of the ceiling, which is about the stack and the client).

    python benchmarks/query_throughput.py --items 20000 --parallel 4 --api-workers 2
    python benchmarks/query_throughput.py --items 20000 --parallel 8 --rtt-ms 50
    python benchmarks/query_throughput.py --items 20000 --state-dir /tmp/eomatch-x --base-url http://127.0.0.1:8000

Each eomatch-query run writes into a new folder of its own, and all are removed only
after the last run. Measured on this VM's disk (ext4 without a journal): creating a file
within a minute or so of many deletions costs the kernel a scan past the recently
deleted inodes (``recently_deleted`` in ``ext4_create``, seen with ``perf``), so
deleting the parallel=1 output just before the parallel=N run (as this script did)
added ~0.3-0.4 ms of system CPU per item to the parallel run alone: the apparent
"doubling" of the client's CPU per item with windows. Other jobs deleting files on the
same disk cost the same way, unpredictably, so by default the outputs go to a temp
folder on tmpfs (``/dev/shm`` when it exists), which keeps the disk out of the figures
(the client's CPU per item is then what eomatch-query itself costs); ``--workdir``
chooses a folder on a disk to measure it with the disk.

Prints ``ratio=<eomatch-query (parallel) items/s ÷ pystac-client items/s>`` last (issue 15 goal ≥ 3).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def _href(collection: str, item_id: str) -> str:
    return f"collections/{collection}/items/{item_id}"


def make_items(n_items: int, tag: str) -> tuple[list[dict[str, Any]], Iterator[dict[str, Any]]]:
    """Collections and a stream of ``n_items`` items: per group 1 event, 1 matchup, 2 products."""
    s2, ls = f"S2B{tag}", f"LSB{tag}"
    pair = f"{ls}-Landsat-9-vs-{s2}-S2A"
    events = f"matchup-events-{pair}"
    collections = [
        {"type": "Collection", "id": c, "stac_version": "1.0.0", "description": c, "license": "proprietary",
         "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [["2022-01-01T00:00:00Z", None]]}},
         "links": []}
        for c in (s2, ls, pair, events)
    ]  # fmt: skip
    t0 = datetime(2022, 1, 1, tzinfo=UTC)

    def poly(lon: float, lat: float, size: float) -> dict[str, Any]:
        w, s, e, n = lon, lat, lon + size, lat + size
        return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}

    def iso(t: datetime) -> str:
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")

    def item(coll: str, iid: str, t: datetime, lon: float, lat: float, size: float, props: dict[str, Any],
             links: list[dict[str, Any]], assets: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        return {
            "type": "Feature", "stac_version": "1.0.0", "id": iid, "collection": coll,
            "geometry": poly(lon, lat, size), "bbox": [lon, lat, lon + size, lat + size],
            "properties": {"datetime": iso(t), "updated": iso(datetime.now(UTC)), **props},
            "links": links, "assets": assets,
        }  # fmt: skip

    def stream() -> Iterator[dict[str, Any]]:
        for g in range(n_items // 4):
            t = t0 + timedelta(minutes=97 * g)
            lon, lat = -170 + (g * 7.3) % 340, -60 + (g * 3.1) % 120
            pa, pb, mid, eid = f"S2A_{tag}_{g}", f"LC09_{tag}_{g}", f"matchup-{tag}-{g}", f"event-{tag}-{g}"
            data = {"type": "image/tiff; application=geotiff", "roles": ["data"]}
            yield item(s2, pa, t, lon, lat, 1.0, {"platform": "Sentinel-2A", "matchup:type": "product"}, [],
                       {"red": {"href": f"https://example.org/{pa}/B04.tif", **data}})  # fmt: skip
            yield item(ls, pb, t + timedelta(minutes=8), lon + 0.3, lat + 0.3, 1.0,
                       {"platform": "Landsat-9", "matchup:type": "product"}, [],
                       {"red": {"href": f"s3://usgs-landsat/{pb}/B4.TIF", **data}})  # fmt: skip
            yield item(pair, mid, t + timedelta(minutes=4), lon + 0.3, lat + 0.3, 0.7,
                       {"matchup:type": "matchup", "matchup:products": [pb, pa], "matchup:event_id": eid,
                        "matchup:platforms": ["Landsat-9", "Sentinel-2A"], "matchup:collections": [ls, s2],
                        "matchup:time_diff_s": -480.0, "matchup:abs_time_diff_s": 480.0},
                       [{"rel": "derived_from", "href": _href(ls, pb), "type": "application/json"},
                        {"rel": "derived_from", "href": _href(s2, pa), "type": "application/json"},
                        {"rel": "related", "href": _href(events, eid), "type": "application/json", "matchup:role": "event"}],
                       {})  # fmt: skip
            yield item(events, eid, t + timedelta(minutes=4), lon - 1, lat - 1, 3.0,
                       {"matchup:type": "event", "start_datetime": iso(t - timedelta(minutes=10)),
                        "end_datetime": iso(t + timedelta(minutes=20)),
                        "matchup:platforms": ["Landsat-9", "Sentinel-2A"], "matchup:collections": [ls, s2]},
                       [{"rel": "related", "href": _href(pair, mid), "type": "application/json", "matchup:role": "matchup"}],
                       {})  # fmt: skip

    return collections, stream()


class CpuMeter:
    """CPU seconds of the stack's processes, of this process, of the delaying proxy (when
    ``proxy_pid`` is given) and of the machine over one phase."""

    def __init__(self, state_dir: Path | None, proxy_pid: int | None = None) -> None:
        self.state_dir = str(state_dir) if state_dir else None
        self.proxy_pid = proxy_pid
        self.tick_s = 1.0 / os.sysconf("SC_CLK_TCK")
        self.cores = os.cpu_count() or 1

    def _stack_ticks(self) -> dict[tuple[int, int], int]:
        """(pid, start) -> utime+stime ticks of the stack's processes and their children."""
        if not self.state_dir:
            return {}
        stats: dict[int, list[str]] = {}
        roots: list[int] = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            stats[int(entry)] = stat
            if self.state_dir.encode() in cmd and int(entry) != os.getpid():
                roots.append(int(entry))
        children: dict[int, list[int]] = {}
        for pid, stat in stats.items():
            children.setdefault(int(stat[1]), []).append(pid)
        found: dict[tuple[int, int], int] = {}
        todo = list(roots)
        while todo:
            pid = todo.pop()
            stat = stats.get(pid)
            if stat is None or (pid, int(stat[19])) in found:
                continue
            found[(pid, int(stat[19]))] = int(stat[11]) + int(stat[12])
            todo.extend(children.get(pid, []))
        return found

    @staticmethod
    def _machine() -> tuple[int, int]:
        """(busy, total) ticks of all cores."""
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields) - idle, sum(fields)

    def _proxy_ticks(self) -> int:
        """utime+stime ticks of the delaying proxy (0 without one)."""
        if self.proxy_pid is None:
            return 0
        stat = Path(f"/proc/{self.proxy_pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(stat[11]) + int(stat[12])

    def start(self) -> None:
        self._t = time.perf_counter()
        self._stack = self._stack_ticks()
        self._proxy = self._proxy_ticks()
        self._self = self._own()
        self._mach = self._machine()

    @staticmethod
    def _own() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def stop(self, items: int) -> Phase:
        wall = time.perf_counter() - self._t
        stack = sum(t - self._stack.get(k, 0) for k, t in self._stack_ticks().items()) * self.tick_s
        own = self._own() - self._self
        proxy = (self._proxy_ticks() - self._proxy) * self.tick_s if self.proxy_pid is not None else None
        busy, total = self._machine()
        machine = (busy - self._mach[0]) / max(1, total - self._mach[1]) * self.cores
        return Phase(items, wall, stack, own, machine, self.cores, proxy)


class Phase:
    """One timed phase: items, wall seconds, CPU seconds of the stack, of the client and
    (with ``--rtt-ms``) of the delaying proxy."""

    def __init__(self, items: int, wall_s: float, stack_s: float, client_s: float, machine: float, cores: int,
                 proxy_s: float | None = None) -> None:  # fmt: skip
        self.items, self.wall_s, self.stack_s, self.client_s = items, wall_s, stack_s, client_s
        self.machine, self.cores, self.proxy_s = machine, cores, proxy_s

    def cpu_ms_per_item(self) -> float:
        return (self.stack_s + self.client_s) / max(1, self.items) * 1000

    def __str__(self) -> str:
        per = 1000 / max(1, self.items)
        busy = per_item = ""
        if self.proxy_s is not None:
            busy, per_item = f", proxy {self.proxy_s / self.wall_s:.2f}", f", proxy {self.proxy_s * per:.3f} ms"
        return (f"{self.items} items in {self.wall_s:.2f}s ({self.items / self.wall_s:,.0f}/s); cores busy: stack "
                f"{self.stack_s / self.wall_s:.2f}, client {self.client_s / self.wall_s:.2f}{busy}, machine "
                f"{self.machine:.2f} of {self.cores}; CPU per item: stack {self.stack_s * per:.3f} ms, client "
                f"{self.client_s * per:.3f} ms{per_item}")  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_delay_proxy(listen_port: int, upstream_port: int, rtt_ms: float) -> subprocess.Popen[str]:
    """``benchmarks/_delay_proxy.py`` in its own process, returned once it listens."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("_delay_proxy.py")), "--listen-port", str(listen_port),
         "--upstream-port", str(upstream_port), "--rtt-ms", str(rtt_ms)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("listening on"):
        proc.kill()
        raise SystemExit(f"error: the delaying proxy did not start (it said {line.strip()!r})")
    return proc


def check_links_through(api: str, base: str) -> None:
    """Stop unless the API's search link leads back through ``base`` (the delaying proxy)."""
    import requests

    landing = requests.get(api, timeout=30).json()
    search = next((lk["href"] for lk in landing.get("links", []) if lk.get("rel") == "search"), "")
    if not search.startswith(base + "/"):
        raise SystemExit(f"error: the API's search link {search!r} does not go through the delaying proxy {base}")


def time_pystac(api: str, collections: list[str], page: int) -> tuple[int, float]:
    from pystac_client import Client

    t = time.perf_counter()
    client = Client.open(api)
    n = sum(1 for _ in client.search(collections=collections, limit=page).items_as_dicts())
    return n, time.perf_counter() - t


def time_paging(settings: Any, api: str, collections: list[str], page: int) -> tuple[int, float]:
    from eomatch.query import ApiIO

    t = time.perf_counter()
    io = ApiIO(settings.query, reached=True, search=True)
    params = {"collections": ",".join(collections), "limit": page}
    n = sum(len(p["features"]) for p in io.get_pages(f"{api}search", "GET", params))
    io.close()
    return n, time.perf_counter() - t


def time_eomatch(settings: Any, api: str, collections: list[str], out: Path, parallel: int) -> tuple[int, float, Any]:
    from eomatch.query import query

    settings = settings.model_copy(deep=True)
    settings.query.parallel = parallel
    t = time.perf_counter()
    summary = query(settings, api, out, collections=collections, quiet=True)
    return summary.searched, time.perf_counter() - t, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=4, help="query.parallel of the timed eomatch-query")
    parser.add_argument("--api-workers", type=int, default=2, help="stack.api.workers of the stack started here")
    parser.add_argument("--base-url", help="reuse a running stack at this proxy URL (needs --state-dir)")
    parser.add_argument("--state-dir", help="state folder of the running stack (for its ingest credentials)")
    parser.add_argument("--db-port", type=int, help="database port of the running stack (stack.db.port)")
    parser.add_argument("--rtt-ms", type=float, default=0.0,
                        help="round trip (ms) a delaying proxy adds to every request (0: none)")
    parser.add_argument("--workdir", help="where the output catalogues go (default: a temp folder on tmpfs, "
                        "/dev/shm, which keeps this machine's shared disk out of the figures; a disk "
                        "folder measures the disk too)")
    args = parser.parse_args()
    if args.rtt_ms < 0:
        parser.error(f"--rtt-ms must be >= 0, got {args.rtt_ms}")
    if args.rtt_ms and args.base_url:
        parser.error("--rtt-ms needs the stack started here (its stack.public_url is set to the delaying proxy)")

    from conftest import make_state_dir, stack_settings

    from eomatch.settings import load_settings
    from eomatch.stack.db import stack_credentials

    stack = None
    if args.base_url:
        if not args.state_dir:
            parser.error("--base-url needs --state-dir")
        stack_over: dict[str, Any] = {"state_dir": args.state_dir}
        if args.db_port:
            stack_over["db"] = {"port": args.db_port}
        settings = load_settings(overrides={"stack": stack_over}, environ={})
        base = args.base_url.rstrip("/")
    else:
        from eomatch.stack import Stack

        over: dict[str, Any] = {"api": {"workers": args.api_workers}}
        delay_port = free_port() if args.rtt_ms else None
        if delay_port is not None:
            # links the API writes (next pages, search) lead back through the proxy too
            over["public_url"] = f"http://127.0.0.1:{delay_port}"
        settings = stack_settings(make_state_dir("eomatch-bench-"), **over)
        stack = Stack(settings, quiet=True)
        base = f"http://127.0.0.1:{delay_port or settings.stack.proxy.port}"
    settings.query.page_size = args.page_size
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    work = Path(args.workdir or tempfile.mkdtemp(prefix="eomatch-qbench-", dir=shm))
    proxy: subprocess.Popen[str] | None = None
    outputs: list[Path] = []
    try:
        if args.rtt_ms:
            proxy = start_delay_proxy(int(base.rsplit(":", 1)[1]), settings.stack.proxy.port, args.rtt_ms)
        if stack is not None:  # inside the try: a stack that fails to come up is stopped too
            print("starting a stack…", flush=True)
            stack.up()
        from pypgstac.db import PgstacDB
        from pypgstac.load import Loader, Methods

        tag = uuid.uuid4().hex[:6]
        cols, items = make_items(args.items, tag)
        t = time.perf_counter()
        with PgstacDB(dsn=stack_credentials(settings, "ingest").dsn) as db:
            loader = Loader(db=db)
            loader.load_collections(iter(cols), insert_mode=Methods.upsert)
            loader.load_items(items, insert_mode=Methods.upsert)
        print(f"loaded {args.items} items in {time.perf_counter() - t:.1f}s", flush=True)
        api = f"{base}/api/"
        coll_ids = [c["id"] for c in cols]
        meter = CpuMeter(settings.stack.state_dir, proxy.pid if proxy else None)
        rtt = ""
        if proxy is not None:
            check_links_through(api, base)
            rtt = f"; clients through a proxy adding {args.rtt_ms:g} ms per round trip"
        print(f"stack: stack.api.workers={settings.stack.api.workers}, {meter.cores} cores; "
              f"page size {args.page_size}; eomatch-query parallel={args.parallel}, writing to {work}{rtt}", flush=True)  # fmt: skip
        best_p = best_e = best_1 = best_g = float("inf")
        for r in range(args.repeat):
            meter.start()
            n_p, s_p = time_pystac(api, coll_ids, args.page_size)
            cpu_p = meter.stop(n_p)
            meter.start()
            n_g, s_g = time_paging(settings, api, coll_ids, args.page_size)
            cpu_g = meter.stop(n_g)
            best_g = min(best_g, s_g)
            # Each run writes into a folder of its own, all removed after the last run: see
            # the docstring (deleting one run's files makes the next one's cost more here).
            out_1, out = work / f"out-{r}-p1", work / f"out-{r}-p{args.parallel}"
            outputs += [out_1, out]
            meter.start()
            n_1, s_1, _ = time_eomatch(settings, api, coll_ids, out_1, 1)
            cpu_1 = meter.stop(n_1)
            meter.start()
            n_e, s_e, summary = time_eomatch(settings, api, coll_ids, out, args.parallel)
            cpu_e = meter.stop(n_e)
            written = sum(1 for p in out.rglob("*.json")
                          if p.name not in ("catalog.json", "collection.json") and ".eomatch" not in p.parts)  # fmt: skip
            print(f"run {r}: pystac-client serial: {cpu_p}\n"
                  f"       paging only:           {cpu_g}\n"
                  f"       eomatch parallel=1:    {cpu_1}\n"
                  f"       eomatch parallel={args.parallel}:    {cpu_e} "
                  f"[{written} files, {summary.closure} linked, {summary.relinked} relinked]", flush=True)  # fmt: skip
            # What the CPU work allows: a serial pace cannot use more than one core at a time,
            # the parallel one at best every core; so with the CPU each needs per item the
            # ratio cannot exceed cores × serial CPU per item ÷ parallel CPU per item.
            bound = meter.cores * cpu_p.cpu_ms_per_item() / cpu_e.cpu_ms_per_item()
            print(f"       ceiling on {meter.cores} cores from CPU per item (stack + client): "
                  f"{meter.cores} × {cpu_p.cpu_ms_per_item():.3f} ms ÷ {cpu_e.cpu_ms_per_item():.3f} ms "
                  f"= ratio ≤ {bound:.2f} (when nothing else runs)", flush=True)  # fmt: skip
            if len({n_p, n_g, n_1, n_e, written, args.items // 4 * 4}) != 1:
                print(f"error: counts differ (pystac {n_p}, paging {n_g}, eomatch parallel=1 {n_1}, "
                      f"parallel={args.parallel} {n_e}, files {written})", file=sys.stderr)  # fmt: skip
                return 1
            best_p, best_e, best_1 = min(best_p, s_p), min(best_e, s_e), min(best_1, s_1)
        rate_p, rate_e = n_p / best_p, n_e / best_e
        print(f"pystac-client items_as_dicts:     {rate_p:,.0f} items/s (best of {args.repeat})")
        print(f"eomatch-query paging only:        {n_e / best_g:,.0f} items/s (best of {args.repeat})")
        print(f"eomatch-query to disk, parallel=1: {n_e / best_1:,.0f} items/s (best of {args.repeat})")
        print(f"eomatch-query to disk, parallel={args.parallel}: {rate_e:,.0f} items/s (best of {args.repeat})")
        print(f"ratio={rate_e / rate_p:.3f}")
    finally:
        for out in outputs:
            shutil.rmtree(out, ignore_errors=True)
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
        if stack is not None:
            stack.down()
            shutil.rmtree(settings.stack.state_dir, ignore_errors=True)
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
