"""The read-load generator shared by ``external_load.py`` and ``replica_reads.py``.

ONE separate process pinned to one core (``os.sched_setaffinity``) runs asyncio readers
over ``concurrency`` keep-alive connections (gzip accepted, whole bodies read), so the
client cannot starve the servers of both cores. The readers cycle through a fixed list of
(kind, path) for ``duration_s`` seconds; the process sends back, per request kind and in
all, successful answers, errors, p50/p95 latency, plus the first error seen, the answers
with ``X-Cache-Status: HIT`` and the client's CPU share of its core. The HTTP library is
aiohttp or httpx (``--client``; see ``external_load.py`` for why it matters).

Also here: the private stack both benchmarks start (with new ports when one was taken
meanwhile) and the quantile and table helpers of their reports.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from eomatch.settings import Settings

REPO = Path(__file__).resolve().parents[1]
KINDS = ("landing", "collections", "items", "item", "search")
CLIENTS = ("aiohttp", "httpx")


def pct(values: list[float], q: float) -> float | None:
    """The q-quantile (nearest rank) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def fmt_ms(v: float | None) -> str:
    """A latency column of the report tables ("-" when there was no answer)."""
    return "      -" if v is None else f"{v:7.1f}"


class Client:
    """GETs over ``concurrency`` keep-alive connections, gzip accepted and decoded, the
    whole body read: with aiohttp or httpx."""

    def __init__(self, lib: str, concurrency: int) -> None:
        self.lib = lib
        self.concurrency = concurrency
        self.session: Any = None

    async def __aenter__(self) -> Client:
        headers = {"Accept-Encoding": "gzip"}
        if self.lib == "aiohttp":
            import aiohttp

            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency), headers=headers,
                timeout=aiohttp.ClientTimeout(total=30))
        else:
            import httpx

            limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            self.session = httpx.AsyncClient(timeout=30, limits=limits, headers=headers)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await (self.session.close() if self.lib == "aiohttp" else self.session.aclose())

    async def get(self, url: str) -> tuple[int, str | None, bytes]:
        """(status, X-Cache-Status, body)."""
        if self.lib == "aiohttp":
            async with self.session.get(url) as r:
                return r.status, r.headers.get("x-cache-status"), await r.read()
        r = await self.session.get(url)
        return r.status_code, r.headers.get("x-cache-status"), r.content


async def _read(base: str, paths: list[tuple[str, str]], concurrency: int, duration_s: float,
                client_lib: str) -> dict[str, Any]:
    """The readers themselves: raw latencies per kind, errors, hits, elapsed and CPU time."""
    times_ms: dict[str, list[float]] = {k: [] for k in KINDS}
    errors: dict[str, int] = {k: 0 for k in KINDS}
    hits = 0
    first_error: list[str] = []
    async with Client(client_lib, concurrency) as client:
        for _, path in paths[: 2 * len(KINDS)]:  # open the connections, nginx's upstreams, the app's pool
            await client.get(base + path)
        t_end = time.perf_counter() + duration_s

        async def reader(k: int) -> None:
            nonlocal hits
            i = k * 7919  # each reader starts elsewhere in the fixed mix
            while time.perf_counter() < t_end:
                kind, path = paths[i % len(paths)]
                i += 1
                t0 = time.perf_counter()
                try:
                    status, cache, body = await client.get(base + path)
                    ok = status == 200
                    if not ok and not first_error:
                        first_error.append(f"{path} -> {status}: {body[:200]!r}")
                except Exception as e:  # noqa: BLE001 - counted and reported, the load goes on
                    ok, cache = False, None
                    if not first_error:
                        first_error.append(f"{path} -> {type(e).__name__}: {e}")
                if ok:
                    times_ms[kind].append((time.perf_counter() - t0) * 1000)
                    hits += cache == "HIT"
                else:
                    errors[kind] += 1

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(reader(k) for k in range(concurrency)))
        elapsed_s = time.perf_counter() - t0
        cpu_s = time.process_time() - cpu0
    return {"times_ms": times_ms, "errors": errors, "elapsed_s": elapsed_s, "first_error": first_error,
            "hits": hits, "client_cpu": cpu_s / elapsed_s}


def _load_process(base: str, paths: list[tuple[str, str]], concurrency: int, duration_s: float,
                  core: int, client_lib: str, out: Any) -> None:
    """Child process: pinned to ``core``, runs the readers, sends a summary back (not the
    raw latencies: a few numbers per kind cross the process boundary)."""
    os.sched_setaffinity(0, {core})
    raw = asyncio.run(_read(base, paths, concurrency, duration_s, client_lib))
    summary: dict[str, Any] = {k: raw[k] for k in ("elapsed_s", "first_error", "hits", "client_cpu")}
    summary["kinds"] = {}
    all_ms: list[float] = []
    for kind in KINDS:
        v = raw["times_ms"][kind]
        all_ms.extend(v)
        summary["kinds"][kind] = {"ok": len(v), "errors": raw["errors"][kind], "p50_ms": pct(v, 0.5), "p95_ms": pct(v, 0.95)}
    summary["kinds"]["all"] = {"ok": len(all_ms), "errors": sum(raw["errors"].values()),
                               "p50_ms": pct(all_ms, 0.5), "p95_ms": pct(all_ms, 0.95)}
    out.put(summary)


class LoadRun:
    """The readers running in their own process on the last core; :meth:`result` waits
    for their summary. Started apart from waiting so a caller can start other work (a
    concurrent ingest) while the child warms up."""

    def __init__(self, base: str, paths: list[tuple[str, str]], concurrency: int, duration_s: float,
                 client_lib: str) -> None:
        core = sorted(os.sched_getaffinity(0))[-1]
        ctx = multiprocessing.get_context("spawn")
        self._queue = ctx.Queue()
        self._duration_s = duration_s
        self._proc = ctx.Process(target=_load_process,
                                 args=(base, paths, concurrency, duration_s, core, client_lib, self._queue))
        self._proc.start()

    def result(self) -> dict[str, Any]:
        """The summary (see :func:`_load_process`); the child is gone afterwards, also on failure."""
        try:
            return dict(self._queue.get(timeout=self._duration_s + 300))
        finally:
            self._proc.join(timeout=30)
            if self._proc.is_alive():
                self._proc.kill()


def run_load(base: str, paths: list[tuple[str, str]], concurrency: int, duration_s: float,
             client_lib: str) -> dict[str, Any]:
    """The readers in their own process on the last core; their summary."""
    return LoadRun(base, paths, concurrency, duration_s, client_lib).result()


def print_kinds(label: str, width: int, r: dict[str, Any]) -> float:
    """One report row per request kind and one for all of them; returns all's req/s."""
    rate = 0.0
    for kind in (*KINDS, "all"):
        k = r["kinds"][kind]
        rate = k["ok"] / r["elapsed_s"]
        print(f"{label:<{width}}{kind:<12}{k['ok']:>7}{k['errors']:>8}{rate:>9.1f}"
              f"  {fmt_ms(k['p50_ms'])}  {fmt_ms(k['p95_ms'])}")
    return rate


@contextmanager
def started_stack(prefix: str, make_settings: Callable[[Path], Settings], retry_on: tuple[str, ...],
                  note: str = "") -> Iterator[Any]:
    """A running private stack (settings from ``make_settings(state_dir)``) for the block,
    then stopped and its folder removed; started afresh, up to three times, when
    ``stack.up()`` fails with a message containing one of ``retry_on`` (a port taken
    meanwhile: other programs on this machine start servers too)."""
    from eomatch.errors import StackError

    sys.path.insert(0, str(REPO / "tests"))
    from conftest import private_stack  # type: ignore[import-not-found]

    for attempt in range(3):
        with ExitStack() as held:
            try:  # a failed 'up' is cleaned up by private_stack before it gets here
                stack = held.enter_context(private_stack(prefix, settings=make_settings))
            except StackError as e:
                if not any(s in str(e) for s in retry_on) or attempt == 2:
                    raise
                print(f"  {note}{e}; again", flush=True)
                continue
            yield stack
            return
    raise AssertionError("unreachable")


def db_port_for_standbys(replicas: int) -> int:
    """A free PostgreSQL port whose next ``replicas`` ports are free too: standby N of a
    local stack listens on ``stack.db.port + N``."""
    from eomatch.errors import EomatchError
    from eomatch.stack.process import check_port_free, free_port

    while True:
        candidate = free_port()
        try:
            for n in range(1, replicas + 1):
                check_port_free("127.0.0.1", candidate + n, f"db-replica-{n}", "stack.db.port")
        except EomatchError:  # taken: try another
            continue
        return candidate


def failed_requests(results: Iterable[dict[str, Any]]) -> int:
    """Requests of all the runs that got no successful answer."""
    return sum(r["kinds"]["all"]["errors"] for r in results)


def finish(errors: int, ratio: float) -> int:
    """The report's last line (``ratio=``, read by scripts) and the exit status: 1 when
    any request failed, since req/s then counts successful answers only."""
    if errors:
        print(f"{errors} requests failed: req/s counts successful answers only", file=sys.stderr)
    print(f"ratio={ratio:.3f}")
    return 1 if errors else 0
