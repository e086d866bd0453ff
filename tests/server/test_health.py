"""/health's catalogue counts are cached (they read every item); liveness is not."""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import RunningStack, free_port
from helpers import Writer, make_collection, make_item, unique_id

from eomatch.server.health import FreshnessCache, collect_health, public_health


def test_counts_are_reused_until_too_old_but_the_database_is_pinged(running_stack: RunningStack) -> None:
    settings = running_stack.settings
    dsn = running_stack.credentials("read").dsn
    cache = FreshnessCache(3600.0)
    with Writer(running_stack) as w:  # the catalogue is not empty
        base = unique_id("health-base")
        w.collection(make_collection(base))
        w.item(make_item(base, "b", 1.0, 2.0, properties={"updated": "2026-01-01T00:00:00Z"}))
        w.item(make_item(base, "odd", 1.0, 2.0))
    # an 'updated' that is no timestamp (the API refuses one; a bulk load does not) is
    # skipped, not taken for a database failure
    import psycopg

    from eomatch.stack.db import stack_credentials

    with psycopg.connect(stack_credentials(settings, "admin").dsn) as conn:
        conn.execute(
            "UPDATE pgstac.items SET content = jsonb_set(content, '{properties,updated}', '\"not a time\"')"
            " WHERE id = 'odd' AND collection = %s",
            (base,),
        )
    first = collect_health(settings, dsn, cache=cache)
    assert first["components"]["db"]["ok"], first["components"]["db"]
    assert first["catalogue"]["counted_s_ago"] == 0.0
    assert first["catalogue"]["items_per_collection"][base] == 2

    cid = unique_id("health-cache")
    with Writer(running_stack) as w:
        w.collection(make_collection(cid))
        w.item(make_item(cid, "one", 1.0, 2.0))
    cached = collect_health(settings, dsn, cache=cache)
    assert cid not in cached["catalogue"]["items_per_collection"]  # reused, not re-read
    assert cached["catalogue"]["counted_s_ago"] > 0
    assert cached["catalogue"]["age_s"] >= first["catalogue"]["age_s"]  # aged to now all the same

    # a database that goes away shows as down even while counts are cached
    down = dsn.replace(f":{settings.stack.db.port}/", f":{free_port()}/")
    assert down != dsn
    assert collect_health(settings, down, cache=cache)["components"]["db"]["ok"] is False

    cache.max_age_s = 0.0
    fresh = collect_health(settings, dsn, cache=cache)
    assert fresh["catalogue"]["items_per_collection"][cid] == 1


def test_the_public_view_keeps_status_per_component_and_nothing_else(running_stack: RunningStack) -> None:
    """A database error names its host and port: only the internal side may see it."""
    settings = running_stack.settings
    dsn = running_stack.credentials("read").dsn
    port = free_port()
    down = dsn.replace(f":{settings.stack.db.port}/", f":{port}/")
    full = collect_health(settings, down)
    assert full["components"]["db"]["ok"] is False and str(port) in full["components"]["db"]["error"]
    public = public_health(full)
    assert str(port) not in json.dumps(public) and settings.stack.db.host not in json.dumps(public)
    assert public["components"] == {name: {"ok": c["ok"]} for name, c in full["components"].items()}
    assert public["status"] == full["status"] == "degraded"


@pytest.mark.stack
def test_public_health_has_no_details_and_api_health_has_them(running_stack: RunningStack) -> None:
    with httpx.Client(timeout=30) as client:
        public = client.get(running_stack.base_url + "/health")
        internal = client.get(running_stack.internal + "/health")
    assert public.status_code == internal.status_code == 200, (public.text, internal.text)
    pub, full = public.json(), internal.json()
    assert set(pub["components"]) == set(full["components"]) >= {"db", "api-internal", "api-external"}
    assert all(c == {"ok": True} for c in pub["components"].values()), pub
    assert full["components"]["api-external"]["status"] == 200  # the details stay internal
    assert pub["catalogue"]["items_total"] >= 0 and "stale" in pub
