"""Health of the whole stack and freshness of the catalogue.

``collect_health`` is what ``GET /health`` (through nginx) and
``eomatch-stack status`` both report: each component's state, the newest item
``updated`` time, items per collection, and ``stale`` beyond a configured age.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from eomatch.settings import Settings


def component_urls(settings: Settings) -> dict[str, str]:
    """Where each HTTP component answers a cheap probe (local ports, or configured)."""
    if settings.stack.api.health_urls:
        return dict(settings.stack.api.health_urls)
    from eomatch.stack.probes import local_component_urls  # the APIs' unix sockets

    return local_component_urls(settings)


def catalogue_counts(dsn: str) -> tuple[dict[str, int], datetime | None]:
    """Items per collection and the newest ``updated``, straight from pgSTAC.

    This reads every item (``updated`` lives inside the item JSON), which is why
    ``/health`` caches it for ``stack.freshness_cache_s``.
    """
    import psycopg

    with psycopg.connect(dsn, connect_timeout=3) as conn:
        rows = conn.execute(
            "SELECT c.id, (SELECT count(*) FROM pgstac.items i WHERE i.collection = c.id),"
            # only RFC 3339-looking values are cast: one odd 'updated' must not read as "db down"
            " (SELECT max(CASE WHEN i.content->'properties'->>'updated'"
            "   ~ '^\\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])[Tt ]([01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(\\.\\d+)?(Z|z|[+-]\\d\\d:\\d\\d)$'"
            "   THEN (i.content->'properties'->>'updated')::timestamptz END)"
            "  FROM pgstac.items i WHERE i.collection = c.id)"
            " FROM pgstac.collections c ORDER BY c.id"
        ).fetchall()
    per_collection = {cid: int(n) for cid, n, _ in rows}
    newest = max((u for _, _, u in rows if u is not None), default=None)
    return per_collection, newest


def freshness_report(per_collection: dict[str, int], newest: datetime | None, stale_after_s: float) -> dict[str, Any]:
    """The ``catalogue`` part of the health report, aged to now."""
    age_s = (datetime.now(UTC) - newest).total_seconds() if newest else None
    return {
        "items_per_collection": per_collection,
        "items_total": sum(per_collection.values()),
        "newest_updated": newest.isoformat() if newest else None,
        "age_s": round(age_s, 1) if age_s is not None else None,
        "stale": age_s is None or age_s > stale_after_s,
    }


def catalogue_freshness(dsn: str, stale_after_s: float) -> dict[str, Any]:
    """Newest ``updated`` and item count per collection, straight from pgSTAC."""
    return freshness_report(*catalogue_counts(dsn), stale_after_s)


class FreshnessCache:
    """The last :func:`catalogue_counts`, reused for ``max_age_s`` (one per app)."""

    def __init__(self, max_age_s: float) -> None:
        self.max_age_s = max_age_s
        self._value: tuple[dict[str, int], datetime | None] | None = None
        self._at = 0.0
        self._lock = threading.Lock()

    def get(self, dsn: str) -> tuple[tuple[dict[str, int], datetime | None], float]:
        """(counts, seconds since they were read); reads again once they are too old."""
        with self._lock:
            now = time.monotonic()
            if self._value is None or now - self._at >= self.max_age_s:
                self._value, self._at = catalogue_counts(dsn), now
            else:
                _ping(dsn)  # a database that went down must still show as down
            return self._value, now - self._at


def _ping(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, connect_timeout=3) as conn:
        conn.execute("SELECT 1")


def collect_health(
    settings: Settings, dsn: str, timeout_s: float = 2.0, cache: FreshnessCache | None = None
) -> dict[str, Any]:
    """Probe db, both APIs and the browser; ``ok`` only when all are up."""
    components: dict[str, dict[str, Any]] = {}
    catalogue: dict[str, Any] | None = None
    t0 = time.perf_counter()
    try:
        if cache is None:
            catalogue = catalogue_freshness(dsn, settings.stack.stale_after_s)
        else:
            counts, read_s_ago = cache.get(dsn)
            catalogue = freshness_report(*counts, settings.stack.stale_after_s)
            catalogue["counted_s_ago"] = round(read_s_ago, 1)
        components["db"] = {"ok": True}
    except Exception as exc:  # any driver error means "down"
        components["db"] = {"ok": False, "error": str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}
    from eomatch.stack.probes import probe
    from eomatch.stack.replica import replica_state
    from eomatch.stack.supervision import supervision_report

    replication = {}
    for index in range(1, settings.stack.db.replicas + 1):
        state = replica_state(settings, index, dsn, timeout_s)
        name = state.pop("service")
        replication[name] = state
        components[name] = {"ok": state["ok"], **({"error": state["error"]} if "error" in state else {})}

    with httpx.Client(timeout=timeout_s) as client:
        for name, url in component_urls(settings).items():
            try:
                r = probe(client, url)
                components[name] = {"ok": r.status_code < 500, "status": r.status_code}
            except httpx.HTTPError as exc:
                components[name] = {"ok": False, "error": type(exc).__name__}
    ok = all(c["ok"] for c in components.values())
    return {
        "status": "ok" if ok else "degraded",
        "components": components,
        "catalogue": catalogue,
        "stale": bool(catalogue["stale"]) if catalogue else None,
        # each standby's state and lag (stack.db.replicas; {} without)
        "replication": replication,
        # local stack: restarts and last exits the supervisor recorded (None in Compose)
        "supervision": supervision_report(settings),
        "checked_in_ms": round((time.perf_counter() - t0) * 1000, 1),
    }


def public_health(report: dict[str, Any]) -> dict[str, Any]:
    """What anyone may see of a health report: overall status, ``ok`` per component,
    catalogue freshness. Error texts (database host and port, exception names) and
    probe status codes stay on the internal side."""
    return {
        "status": report["status"],
        "components": {name: {"ok": bool(c.get("ok"))} for name, c in report["components"].items()},
        "catalogue": report["catalogue"],
        "stale": report["stale"],
    }


class ReplicationCollector:
    """``/metrics`` gauges of each standby: up, lag in bytes and seconds (read at scrape)."""

    def __init__(self, settings: Settings, dsn: str) -> None:
        self.settings = settings
        self.dsn = dsn

    def describe(self) -> Iterator[Any]:
        """The families without samples: registering must not query the database."""
        yield from self._families()

    def _families(self) -> tuple[Any, Any, Any]:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("eomatch_db_replica_up", "1 when the standby answers and streams from the primary",
                               labels=["replica"])
        lag_b = GaugeMetricFamily("eomatch_db_replica_lag_bytes", "WAL the standby has not replayed yet",
                                  labels=["replica"])
        lag_s = GaugeMetricFamily("eomatch_db_replica_lag_seconds", "how far behind the standby is (0 when caught up)",
                                  labels=["replica"])
        return up, lag_b, lag_s

    def collect(self) -> Iterator[Any]:
        from eomatch.stack.replica import replica_state

        up, lag_b, lag_s = self._families()
        for index in range(1, self.settings.stack.db.replicas + 1):
            state = replica_state(self.settings, index, self.dsn)
            up.add_metric([state["service"]], 1.0 if state["ok"] else 0.0)
            if state.get("lag_bytes") is not None:
                lag_b.add_metric([state["service"]], float(state["lag_bytes"]))
            if state.get("lag_s") is not None:
                lag_s.add_metric([state["service"]], float(state["lag_s"]))
        yield from (up, lag_b, lag_s)


def add_replication_metrics(registry: Any, settings: Settings, dsn: str) -> None:
    """Register :class:`ReplicationCollector` on an app's registry when there are standbys."""
    if settings.stack.db.replicas:
        registry.register(ReplicationCollector(settings, dsn))


def add_health_routes(app: FastAPI, settings: Settings, audience: str) -> None:
    """Health on the internal app: ``/health`` with details (``/api/health`` through the
    proxy) and ``/health/public``, which the proxy serves as the public ``/health``."""
    if audience != "internal":
        return

    cache = FreshnessCache(settings.stack.freshness_cache_s)

    async def report() -> dict[str, Any]:
        return await run_in_threadpool(collect_health, settings, app.state.eomatch_health_dsn, 2.0, cache)

    @app.get("/health", include_in_schema=False)
    async def health() -> JSONResponse:
        full = await report()
        return JSONResponse(full, status_code=200 if full["status"] == "ok" else 503)

    @app.get("/health/public", include_in_schema=False)
    async def health_public() -> JSONResponse:
        full = await report()
        return JSONResponse(public_health(full), status_code=200 if full["status"] == "ok" else 503)
