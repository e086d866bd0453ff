"""eomatch-query with ``query.parallel``: datetime windows paged at the same time write
exactly the serial search's items (boundary instants, range items over several windows),
a run stopped mid-way completes on a re-run, and ``parallel: 1`` is the one paged search."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import eomatch.query as query_mod
from eomatch.catalogue import MatchupCatalogue
from eomatch.errors import ConfigError, QueryError
from eomatch.query import QuerySummary, query, search_windows
from eomatch.settings import Settings, load_settings
from eomatch.times import format_datetime, to_utc

T0 = datetime(2023, 3, 1, tzinfo=UTC)
SPAN = timedelta(days=8)
PARALLEL = 2
"""The stack test's workers: 2 × 4 = 8 windows of one day each over SPAN."""


# --------------------------------------------------------------------------- windows (no stack)


def _bounds(window: str) -> tuple[datetime | None, datetime | None]:
    a, b = window.split("/")
    return (None if a == ".." else to_utc(a)), (None if b == ".." else to_utc(b))


def test_windows_cover_the_search_and_neighbours_share_only_their_boundary() -> None:
    first, last = T0, T0 + SPAN
    windows = search_windows(first, last, None, None, 8)
    assert windows is not None and len(windows) == 8
    assert windows[0].startswith("../") and windows[-1].endswith("/..")  # matches outside the probes still land
    edges = [_bounds(w) for w in windows]
    for (_, end), (start, _) in zip(edges, edges[1:], strict=False):
        assert end == start  # closed intervals meeting at one instant: no gap
    assert [e[1] for e in edges[:-1]] == [T0 + SPAN * i / 8 for i in range(1, 8)]

    # the search's own bounds are kept at the ends, the split stays within them
    start, end = T0 + timedelta(days=2), T0 + timedelta(days=4, microseconds=1)
    inner = search_windows(first, last, start, end, 4)
    assert inner is not None and _bounds(inner[0])[0] == start and _bounds(inner[-1])[1] == end
    assert _bounds(inner[1])[0] == start + (end - start) / 4


def test_an_instant_or_a_tiny_span_is_not_split() -> None:
    assert search_windows(T0, T0, None, None, 8) is None
    assert search_windows(T0, T0 + timedelta(microseconds=7), None, None, 8) is None
    assert search_windows(T0, T0 + SPAN, None, None, 1) is None


def test_query_parallel_setting_env_and_bad_values() -> None:
    assert load_settings(environ={}).query.parallel == 4
    assert load_settings(environ={"EOMATCH_QUERY__PARALLEL": "6"}).query.parallel == 6
    assert load_settings(overrides={"query": {"parallel": 1}}, environ={}).query.parallel == 1
    for bad in ("0", "-2", "many"):
        with pytest.raises(ConfigError) as exc:
            load_settings(environ={"EOMATCH_QUERY__PARALLEL": bad})
        assert "query.parallel" in str(exc.value) and "\n" not in str(exc.value)


def test_config_file_sets_query_parallel(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("query:\n  parallel: 3\n", encoding="utf-8")
    assert load_settings(config, environ={}).query.parallel == 3
    config.write_text("query:\n  parallel: 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"query\.parallel"):
        load_settings(config, environ={})


# --------------------------------------------------------------------------- against the stack


def _iso(t: datetime) -> str:
    return format_datetime(t)


def _product(coll: str, item_id: str, props: dict[str, Any]) -> dict[str, Any]:
    lon, lat = 10.0, 45.0
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": coll,
        "geometry": {"type": "Polygon", "coordinates": [[[lon, lat], [lon + 1, lat], [lon + 1, lat + 1],
                                                         [lon, lat + 1], [lon, lat]]]},
        "bbox": [lon, lat, lon + 1, lat + 1],
        "properties": {"platform": "Sentinel-2A", "matchup:type": "product", **props},
        "links": [], "assets": {},
    }  # fmt: skip


@pytest.fixture(scope="module")
def timeline(running_stack) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Two product collections over SPAN: items every 90 minutes, an item on each of the
    8 window boundaries (to the microsecond), and range items that overlap 1 to 8 windows."""
    from pypgstac.db import PgstacDB
    from pypgstac.load import Loader, Methods

    tag = uuid.uuid4().hex[:6]
    colls = [f"PQA{tag}", f"PQB{tag}"]
    windows = search_windows(T0, T0 + SPAN, None, None, PARALLEL * 4)
    assert windows is not None
    boundaries = [T0] + [_bounds(w)[1] for w in windows[:-1]] + [T0 + SPAN]
    items: list[dict[str, Any]] = []
    for c, coll in enumerate(colls):
        t = T0 + timedelta(minutes=13 * c)
        n = 0
        while t <= T0 + SPAN:
            items.append(_product(coll, f"{coll}-every-{n}", {"datetime": _iso(t)}))
            t += timedelta(minutes=90)
            n += 1
        for b, when in enumerate(boundaries):
            assert when is not None
            items.append(_product(coll, f"{coll}-edge-{b}", {"datetime": _iso(when)}))
        for r, (days, hours) in enumerate(((0, 30), (1, 50), (3, 100), (0, 24 * 8))):
            start = T0 + timedelta(days=days, hours=5)
            end = min(start + timedelta(hours=hours), T0 + SPAN)
            props = {"datetime": _iso(start), "start_datetime": _iso(start), "end_datetime": _iso(end)}
            items.append(_product(coll, f"{coll}-range-{r}", props))
    collections = [
        {"type": "Collection", "id": c, "stac_version": "1.0.0", "description": c, "license": "proprietary",
         "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                    "temporal": {"interval": [[_iso(T0), _iso(T0 + SPAN)]]}},
         "links": []}
        for c in colls
    ]  # fmt: skip
    with PgstacDB(dsn=running_stack.credentials("ingest").dsn) as db:
        loader = Loader(db=db)
        loader.load_collections(iter(collections), insert_mode=Methods.upsert)
        loader.load_items(iter(items), insert_mode=Methods.upsert)
    return {"colls": colls, "ids": {(it["collection"], it["id"]) for it in items}}


def _settings(running_stack, parallel: int, page_size: int = 7) -> Settings:  # type: ignore[no-untyped-def]
    settings: Settings = running_stack.settings.model_copy(deep=True)
    settings.query.parallel = parallel
    settings.query.page_size = page_size  # several pages per window
    return settings


def _written(out: Path) -> list[tuple[str, str]]:
    """(collection, id) of every item file, duplicates kept."""
    cat = MatchupCatalogue.open(out)
    return sorted((it["collection"], it["id"]) for it in cat.iter_items())


def _api_ids(api: str, colls: list[str], window: str | None = None) -> set[tuple[str, str]]:
    """What plain pystac-client iteration of the same search returns."""
    from pystac_client import Client

    search = Client.open(api).search(collections=colls, datetime=window, limit=50)
    return {(it["collection"], it["id"]) for it in search.items_as_dicts()}


def _query_spied(settings: Settings, api: str, out: Path, colls: list[str]) -> tuple[QuerySummary, list[str]]:
    """Runs ``query`` and returns its summary with the ``datetime`` of every paged search it made."""
    asked: list[str] = []
    real_pages = query_mod._pages

    def spy(io: Any, url: str, params: dict[str, Any], counts: Any = None) -> Iterator[list[dict[str, Any]]]:
        asked.append(str(params.get("datetime")))
        return real_pages(io, url, params, counts)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(query_mod, "_pages", spy)
        summary = query(settings, api, out, collections=colls, quiet=True)
    return summary, asked


@pytest.mark.stack
def test_parallel_windows_write_exactly_the_serial_set(running_stack, timeline, tmp_path) -> None:  # type: ignore[no-untyped-def]
    colls = timeline["colls"]
    expected = _api_ids(running_stack.internal, colls)
    assert expected == timeline["ids"]

    serial = query(_settings(running_stack, 1), running_stack.internal, tmp_path / "serial", collections=colls, quiet=True)
    parallel, asked = _query_spied(_settings(running_stack, PARALLEL), running_stack.internal, tmp_path / "parallel",
                                   colls)  # fmt: skip
    # the first page (of the whole search) had a next link, so the search was split into its 8 windows
    assert asked[0] == "None" and len(set(asked[1:])) == PARALLEL * 4 and "None" not in asked[1:]
    for out, summary in ((tmp_path / "serial", serial), (tmp_path / "parallel", parallel)):
        written = _written(out)
        assert len(written) == len(set(written))  # no item twice
        assert set(written) == expected
        assert summary.searched == len(expected) and summary.written == len(expected)

    # a range item overlapping several windows, and an item on a window boundary, really came
    # from more than one window: the de-duplication is what kept them single
    windows = search_windows(T0, T0 + SPAN, None, None, PARALLEL * 4)
    assert windows is not None
    per_window = [_api_ids(running_stack.internal, colls, w) for w in windows]
    assert sum(len(w) for w in per_window) > len(expected)
    assert sum(1 for w in per_window if (colls[0], f"{colls[0]}-range-3") in w) == PARALLEL * 4
    assert sum(1 for w in per_window if (colls[0], f"{colls[0]}-edge-3") in w) == 2


@pytest.mark.stack
def test_parallel_with_a_datetime_cutting_through_range_items(running_stack, timeline, tmp_path) -> None:  # type: ignore[no-untyped-def]
    colls = timeline["colls"]
    start, end = T0 + timedelta(days=2, hours=3), T0 + timedelta(days=5, minutes=7)
    expected = _api_ids(running_stack.internal, colls, f"{_iso(start)}/{_iso(end)}")
    assert (colls[1], f"{colls[1]}-range-3") in expected  # starts before, ends after the search
    for parallel in (1, 3):
        out = tmp_path / f"p{parallel}"
        query(_settings(running_stack, parallel), running_stack.internal, out, collections=colls,
              start_time=start, end_time=end, quiet=True)  # fmt: skip
        written = _written(out)
        assert len(written) == len(set(written)) and set(written) == expected


@pytest.mark.stack
def test_a_parallel_run_stopped_mid_way_completes_on_a_rerun(running_stack, timeline, tmp_path) -> None:  # type: ignore[no-untyped-def]
    colls = timeline["colls"]
    out = tmp_path / "resumed"
    real_pages = query_mod._pages
    served = [0]

    def failing(io: Any, url: str, params: dict[str, Any], counts: Any = None) -> Iterator[list[dict[str, Any]]]:
        for page in real_pages(io, url, params, counts):
            served[0] += 1
            if served[0] > 6:
                raise QueryError(f"{url}: injected failure after 6 pages")
            yield page

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(query_mod, "_pages", failing)
        with pytest.raises(QueryError, match="injected failure.*running the same command again completes it"):
            query(_settings(running_stack, PARALLEL), running_stack.internal, out, collections=colls, quiet=True)
    partial = _written(out)
    assert 0 < len(partial) < len(timeline["ids"])  # stopped mid-way, what was written is whole
    summary = query(_settings(running_stack, PARALLEL), running_stack.internal, out, collections=colls, quiet=True)
    written = _written(out)
    assert len(written) == len(set(written)) and set(written) == timeline["ids"]
    assert summary.searched == len(timeline["ids"])


@pytest.mark.stack
def test_parallel_one_is_one_paged_search(running_stack, timeline, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Also a search that fits in one page is not split (no probes), whatever ``parallel`` says."""
    colls = timeline["colls"]
    searches: list[dict[str, Any]] = []
    real_pages = query_mod._pages
    probes: list[bool] = []
    real_probe = query_mod._probe_time

    def spy(io: Any, url: str, params: dict[str, Any], counts: Any = None) -> Iterator[list[dict[str, Any]]]:
        searches.append(params)
        return real_pages(io, url, params, counts)

    def probe_spy(io: Any, url: str, params: dict[str, Any], last: bool) -> datetime | None:
        probes.append(last)
        return real_probe(io, url, params, last)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(query_mod, "_pages", spy)
        mp.setattr(query_mod, "_probe_time", probe_spy)
        summary = query(_settings(running_stack, 1), running_stack.internal, tmp_path / "one", collections=colls,
                        quiet=True)  # fmt: skip
    assert probes == [] and len(searches) == 1 and "datetime" not in searches[0]
    assert summary.searched == len(timeline["ids"])

    searches.clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(query_mod, "_pages", spy)
        mp.setattr(query_mod, "_probe_time", probe_spy)
        summary = query(_settings(running_stack, 4, page_size=1000), running_stack.internal, tmp_path / "page",
                        collections=colls, quiet=True)  # fmt: skip
    assert probes == [] and len(searches) == 1 and "datetime" not in searches[0]
    assert summary.searched == len(timeline["ids"])


@pytest.mark.stack
def test_cli_parallel_flag(running_stack, timeline, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from eomatch.cli.query import main

    colls = ",".join(timeline["colls"])
    config = tmp_path / "run.yaml"
    config.write_text("query:\n  page_size: 7\n", encoding="utf-8")  # several pages: a search worth splitting
    seen: list[int] = []
    real_split = query_mod._split

    def split_spy(remote: Any, search: str, params: dict[str, Any], start: Any, end: Any, parallel: int,
                  matched: int | None = None) -> Any:  # fmt: skip
        seen.append(parallel)
        return real_split(remote, search, params, start, end, parallel, matched)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(query_mod, "_split", split_spy)
        code = main(["--api-url", running_stack.internal, "--output", str(tmp_path / "cli"), "--collections", colls,
                     "--parallel", "3", "--config", str(config), "-q"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0 and seen == [3], err
    assert f"{len(timeline['ids'])} items matched" in out
    assert len(_written(tmp_path / "cli")) == len(timeline["ids"])

    for bad in ("0", "-1"):
        code = main(["--api-url", running_stack.internal, "--output", str(tmp_path / "bad"), "--parallel", bad])
        out, err = capsys.readouterr()
        assert code == 2 and err.count("\n") == 1 and "query.parallel" in err, err
        assert "Traceback" not in err
    assert not (tmp_path / "bad").exists()


@pytest.mark.stack
def test_no_more_windows_than_pages_matched(running_stack, timeline, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Each request costs the server a fixed part: 284 matches in pages of 100 are 3 windows, not 8."""
    colls = timeline["colls"]
    summary, asked = _query_spied(_settings(running_stack, PARALLEL, page_size=100), running_stack.internal,
                                  tmp_path / "few", colls)  # fmt: skip
    pages = -(-len(timeline["ids"]) // 100)
    assert pages < PARALLEL * 4 and len(set(asked[1:])) == pages
    written = _written(tmp_path / "few")
    assert len(written) == len(set(written)) and set(written) == timeline["ids"] and summary.searched == len(written)
