"""The find pipeline against real providers (a static catalogue; a STAC API over HTTP)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from helpers_sim import BBOX, END, GEOD, START, scenario_archive
from pytest_httpserver import HTTPServer
from shapely.geometry import box, shape
from test_providers import MiniStacApi, archive_items

from eomatch.catalogue import MatchupCatalogue
from eomatch.errors import ConfigError
from eomatch.find import find, find_events
from eomatch.model import to_utc
from eomatch.settings import Settings, load_settings
from eomatch.simulate import simulated_providers


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scenario_archive(tmp_path_factory.mktemp("sim"), ["S2A", "L9"])


def run_settings(catalogue: Path, archive: Path | None, **over: Any) -> Settings:
    w, s, e, n = BBOX
    base: dict[str, Any] = {
        "platforms": ["S2A", "LS9"],  # aliases: canonicalised everywhere
        "start_time": START, "end_time": END,
        "min_lat": s, "max_lat": n, "min_lon": w, "max_lon": e,
        "matchup_catalogue": {"path": str(catalogue)},
        "stack": {"state_dir": str(catalogue.parent / "state")},
    }
    base.update(over)
    settings = load_settings(overrides=base, environ={})
    if archive is not None and "providers" not in over:
        settings = settings.model_copy(update={"providers": simulated_providers(settings, archive, ["S2A", "L9"])})
    return settings


def _area_km2(geom: Any) -> float:
    return abs(GEOD.geometry_area_perimeter(geom)[0]) / 1e6


def _expected_pairs(items: list[dict], event: Any, settings: Settings) -> set[frozenset[str]]:
    """Brute force: every overlapping L9 x S2A pair found in the event's region and windows."""
    region = shape(event.to_dict()["geometry"]).intersection(box(*BBOX))
    windows = event.properties["matchup:time_windows"]
    margin = settings.search_margin_s
    per_platform: dict[str, list[dict]] = {}
    for name, coll, (w0, w1) in zip(event.platforms, ["landsat-c2l1", "sentinel-2-l1c"], windows, strict=True):
        t0, t1 = to_utc(w0).timestamp() - margin, to_utc(w1).timestamp() + margin
        per_platform[name] = [
            i for i in items
            if i["collection"] == coll
            and to_utc(i["properties"]["end_datetime"]).timestamp() >= t0
            and to_utc(i["properties"]["start_datetime"]).timestamp() <= t1
            and shape(i["geometry"]).intersects(region)
        ]
    out = set()
    for a, b in itertools.product(*per_platform.values()):
        ga, gb = shape(a["geometry"]), shape(b["geometry"])
        overlap = ga.intersection(gb)
        if overlap.area <= 0:
            continue
        km2 = _area_km2(overlap)
        frac = km2 / min(_area_km2(ga), _area_km2(gb))
        dt = abs((to_utc(a["properties"]["datetime"]) - to_utc(b["properties"]["datetime"])).total_seconds())
        if km2 >= settings.min_overlap_km2 and frac >= settings.min_overlap_fraction - 1e-9 and dt <= settings.time_diff_threshold:
            out.add(frozenset((a["id"], b["id"])))
    return out


def test_matchups_are_exactly_the_overlapping_pairs_of_each_event(tmp_path: Path, archive: Path) -> None:
    settings = run_settings(tmp_path / "cat", archive)
    summary = find(settings, quiet=True)
    assert summary.ok and summary.events >= 2 and summary.matchups > 0
    assert summary.searches == 2 * summary.events
    items = archive_items(archive)
    cat = MatchupCatalogue.open(tmp_path / "cat")
    events = list(cat.get_events())
    assert len(events) == summary.events_written
    total = 0
    for event in events:
        assert event.platforms == ["Landsat-9", "Sentinel-2A"]
        got = set()
        for m in event.matchup_set:
            a, b = m.products()
            assert a["properties"]["platform"] == "Landsat-9" and b["properties"]["platform"] == "Sentinel-2A"
            assert a["collection"] == "LANDSAT_C2L1" and b["collection"] == "S2_MSI_L1C"
            overlap = shape(a["geometry"]).intersection(shape(b["geometry"]))
            assert m.overlap_km2 == pytest.approx(_area_km2(overlap), rel=1e-3)
            got.add(frozenset(m.product_ids))
        assert got == _expected_pairs(items, event, settings)
        total += len(got)
    assert total == summary.matchups
    # every item find wrote follows the matchup: schema
    from eomatch.schema import iter_errors

    problems = {it["id"]: iter_errors(it) for it in cat.iter_items()}
    assert len(problems) == summary.new_items and not any(problems.values()), {k: v for k, v in problems.items() if v}
    coll = cat.get_collection("LANDSAT_C2L1-Landsat-9-vs-S2_MSI_L1C-S2A")
    assert coll["title"] == "Matchups Landsat-9 × Sentinel-2A"


def test_overlap_thresholds_are_respected(tmp_path: Path, archive: Path) -> None:
    loose = find(run_settings(tmp_path / "loose", archive), quiet=True)
    strict_settings = run_settings(tmp_path / "strict", archive, min_overlap_km2=4000.0, min_overlap_fraction=0.5)
    strict = find(strict_settings, quiet=True)
    assert 0 < strict.matchups < loose.matchups
    cat = MatchupCatalogue.open(tmp_path / "strict")
    items = archive_items(archive)
    for event in cat.get_events():
        assert {frozenset(m.product_ids) for m in event.matchup_set} == _expected_pairs(items, event, strict_settings)
        for m in event.matchup_set:
            assert m.overlap_km2 >= 4000.0 and m.overlap_fraction >= 0.5


def test_second_run_adds_nothing(tmp_path: Path, archive: Path) -> None:
    settings = run_settings(tmp_path / "cat", archive)
    first = find(settings, quiet=True)
    files = sorted(p.relative_to(tmp_path) for p in (tmp_path / "cat").rglob("*.json"))
    second = find(settings, quiet=True)
    assert first.new_items > 0 and second.new_items == 0
    assert second.matchups == first.matchups
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "cat").rglob("*.json")) == files


def test_events_only_writes_events_and_needs_no_provider(tmp_path: Path) -> None:
    settings = run_settings(tmp_path / "cat", None)  # default providers: on the internet, never called
    summary = find(settings, events_only=True, quiet=True)
    cat = MatchupCatalogue.open(tmp_path / "cat")
    assert summary.events == summary.events_written == cat.count("event") > 0
    assert cat.count("matchup") == 0 and cat.count("product") == 0
    assert len(list(find_events(settings))) == summary.events
    from eomatch.schema import iter_errors

    assert all(iter_errors(it) == [] for it in cat.iter_items())


def test_bad_config_fails_before_writing(tmp_path: Path, archive: Path) -> None:
    with pytest.raises(ConfigError, match="unknown platform 'Nope-1'"):
        find(run_settings(tmp_path / "cat", archive, platforms=["S2A", "Nope-1"]), quiet=True)
    with pytest.raises(ConfigError, match="at least two"):
        find(run_settings(tmp_path / "cat", archive, platforms=["S2A", "Sentinel-2A"]), quiet=True)
    # every default satellite has packaged TLEs: a registered one without any
    from eomatch.settings import _default_satellites

    sats = [s.model_dump() for s in _default_satellites()]
    sats.append({"name": "Sentinel-3C", "norad_id": 99999, "swath_km": 1270, "instrument": "OLCI",
                 "collections": ["S3_OLCI_L1B"]})  # fmt: skip
    with pytest.raises(ConfigError, match="no TLE for platform Sentinel-3C"):
        find(run_settings(tmp_path / "cat", archive, platforms=["S2A", "Sentinel-3C"], satellites=sats), quiet=True)
    assert not (tmp_path / "cat").exists()


def test_a_provider_failing_for_one_event_loses_only_that_event(
    tmp_path: Path, archive: Path, httpserver: HTTPServer
) -> None:
    reference = run_settings(tmp_path / "ref", archive)
    find(reference, quiet=True)
    ref_events = {e.id: {m.id for m in e.matchup_set} for e in MatchupCatalogue.open(tmp_path / "ref").get_events()}
    assert len(ref_events) >= 2
    doomed = sorted(ref_events)[1]
    doomed_start = MatchupCatalogue.open(tmp_path / "ref").get_event(doomed).start

    api = MiniStacApi(httpserver, archive_items(archive))

    def fails(body: dict) -> bool:  # every S2 search around the doomed event's window
        t0, t1 = (to_utc(v) for v in body["datetime"].split("/"))
        return "sentinel-2-l1c" in body["collections"] and t0 <= doomed_start + (t1 - t0) and t1 >= doomed_start

    api.fail_if = fails
    providers = simulated_providers(reference, archive, ["L9"])
    providers["S2_MSI_L1C"] = providers["S2_MSI_L1C"].model_copy(update={"url": api.base})
    settings = run_settings(tmp_path / "cat", archive, provider_retries=1, provider_backoff_s=0.0)
    settings = settings.model_copy(update={"providers": providers})
    summary = find(settings, quiet=True)
    assert len(summary.failures) == 1
    assert doomed in summary.failures[0] and api.base in summary.failures[0]
    got = {e.id: {m.id for m in e.matchup_set} for e in MatchupCatalogue.open(tmp_path / "cat").get_events()}
    assert got == {k: v for k, v in ref_events.items() if k != doomed}


def test_a_provider_down_for_the_whole_run_is_one_warning_and_one_digest_line(
    tmp_path: Path, archive: Path, httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    api = MiniStacApi(httpserver, archive_items(archive))
    api.fail_if = lambda body: "sentinel-2-l1c" in body["collections"]
    reference = run_settings(tmp_path / "ref", archive)
    providers = simulated_providers(reference, archive, ["L9"])
    providers["S2_MSI_L1C"] = providers["S2_MSI_L1C"].model_copy(update={"url": api.base})
    settings = run_settings(tmp_path / "cat", archive, provider_retries=0, provider_backoff_s=0.0)
    settings = settings.model_copy(update={"providers": providers})
    with caplog.at_level("WARNING", logger="eomatch.find"):
        summary = find(settings, quiet=True)
    assert len(summary.failures) >= 2 and not summary.ok
    warnings = [r for r in caplog.records if r.name == "eomatch.find" and "event" in r.getMessage()]
    assert len(warnings) == 1
    digest = summary.failure_digest(examples=1)
    assert len(digest) == 1
    n = len(summary.failures)
    first_id = summary.failures[0].split(": ")[0].removeprefix("event ")
    assert digest[0].startswith(f"{n} events ({first_id} and {n - 1} more): ")
    assert api.base in digest[0]
