"""Model: collection ids, deterministic ids, matchup geometry/time maths, links, pystac edge."""

from __future__ import annotations

import math
import posixpath
from datetime import UTC, datetime, timedelta

import pytest
from shapely.geometry import MultiPolygon, Polygon, box

from eomatch import Matchup, MatchupEvent
from eomatch.model import (
    MatchupError,
    Product,
    default_relpath,
    event_id,
    events_collection_id,
    geodesic_area_km2,
    infer_item_type,
    item_relpath,
    matchup_collection_id,
    matchup_id,
    normalize_geometry,
    pair_key,
    platform_token,
)
from eomatch.schema import validate_item

T0 = datetime(2022, 5, 21, 8, 30, tzinfo=UTC)


def _spherical_box_km2(west: float, south: float, east: float, north: float) -> float:
    """Area of a lon/lat box on a sphere of the authalic radius (independent of pyproj)."""
    r_km = 6371.0072
    return r_km**2 * math.radians(east - west) * (math.sin(math.radians(north)) - math.sin(math.radians(south)))


def _event(**kw) -> MatchupEvent:
    args = dict(
        platform_a="Sentinel-2A", collection_a="S2_MSI_L1C", platform_b="Landsat-9",
        collection_b="LANDSAT_C2L1", start=T0, end=T0 + timedelta(minutes=40), region=box(30, 40, 40, 50),
    )  # fmt: skip
    args.update(kw)
    return MatchupEvent.create(**args)


def _s2(pid: str = "S2A_A", geom=None, t: datetime = T0) -> dict:
    return Product.create(id=pid, collection="S2_MSI_L1C", platform="Sentinel-2A", instrument="MSI",
                          geometry=geom if geom is not None else box(34, 45, 36, 47), start=t).to_dict()  # fmt: skip


def _l9(pid: str = "LC09_A", geom=None, t: datetime = T0 + timedelta(minutes=20)) -> dict:
    return Product.create(id=pid, collection="LANDSAT_C2L1", platform="Landsat-9", instrument="OLI-2",
                          geometry=geom if geom is not None else box(35, 46, 37, 48), start=t).to_dict()  # fmt: skip


def test_collection_ids_are_canonical_whatever_the_pair_order() -> None:
    ab = matchup_collection_id("LANDSAT_C2L1", "Landsat-9", "S2_MSI_L1C", "S2A")
    ba = matchup_collection_id("S2_MSI_L1C", "S2A", "LANDSAT_C2L1", "Landsat-9")
    assert ab == ba == "LANDSAT_C2L1-Landsat-9-vs-S2_MSI_L1C-S2A"
    assert events_collection_id("S2_MSI_L1C", "S2A", "LANDSAT_C2L1", "Landsat-9") == (
        "matchup-events-LANDSAT_C2L1-Landsat-9-vs-S2_MSI_L1C-S2A"
    )
    assert pair_key("A", "x", "A", "w") == "A-w-vs-A-x"


def test_platform_tokens_come_from_the_satellite_registry() -> None:
    assert platform_token("Sentinel-2A") == "S2A"
    assert platform_token("sentinel-2a") == "S2A"
    assert platform_token("LANDSAT_9") == "Landsat-9"
    assert platform_token("Unknown-Sat") == "Unknown-Sat"


def test_event_ids_are_deterministic_and_ignore_sub_second_jitter() -> None:
    key = pair_key("LANDSAT_C2L1", "Landsat-9", "S2_MSI_L1C", "S2A")
    assert event_id(key, T0) == event_id(key, T0 + timedelta(milliseconds=300))
    assert event_id(key, T0) != event_id(key, T0 + timedelta(seconds=1))
    assert event_id(key, T0) != event_id(pair_key("LANDSAT_C2L1", "Landsat-8", "S2_MSI_L1C", "S2A"), T0)
    assert event_id(key, T0).startswith("event-20220521T083000-")


def test_event_is_the_same_whichever_platform_comes_first() -> None:
    e1 = _event()
    e2 = _event(platform_a="Landsat-9", collection_a="LANDSAT_C2L1", platform_b="Sentinel-2A", collection_b="S2_MSI_L1C")
    assert e1.id == e2.id
    assert e1.collection_id == e2.collection_id == "matchup-events-LANDSAT_C2L1-Landsat-9-vs-S2_MSI_L1C-S2A"
    assert e1.platforms == ["Landsat-9", "Sentinel-2A"]
    assert e1.collections == ["LANDSAT_C2L1", "S2_MSI_L1C"]
    assert e1.datetime == T0 + timedelta(minutes=20)
    assert (e1.start, e1.end) == (T0, T0 + timedelta(minutes=40))
    validate_item(e1.to_dict())


def test_event_rejects_end_before_start() -> None:
    with pytest.raises(MatchupError):
        _event(end=T0 - timedelta(seconds=1))


def test_matchup_properties_and_order_independence() -> None:
    ev1, ev2 = _event(), _event()
    m1 = Matchup.create(ev1, _s2(), _l9())
    m2 = Matchup.create(ev2, _l9(), _s2())
    assert m1.id == m2.id == matchup_id("S2A_A", "LC09_A")
    assert m1.collection_id == "LANDSAT_C2L1-Landsat-9-vs-S2_MSI_L1C-S2A"
    # canonical order is LANDSAT first: b (S2, 08:30) minus a (L9, 08:50) = -1200 s
    assert m1.product_ids == ["LC09_A", "S2A_A"]
    assert m1.time_diff_s == m2.time_diff_s == -1200.0
    assert m1.abs_time_diff_s == 1200.0
    assert m1.platforms == ["Landsat-9", "Sentinel-2A"]
    assert m1.datetime == T0 + timedelta(minutes=10)
    assert m1.start == T0 and m1.end == T0 + timedelta(minutes=20)
    assert m1.geometry.equals(box(35, 46, 36, 47))
    expected = _spherical_box_km2(35, 46, 36, 47)
    assert m1.overlap_km2 == pytest.approx(expected, rel=0.01)
    # the smaller footprint is Landsat's (2x2 deg, further north)
    smaller = min(_spherical_box_km2(34, 45, 36, 47), _spherical_box_km2(35, 46, 37, 48))
    assert smaller == _spherical_box_km2(35, 46, 37, 48)
    assert m1.overlap_fraction == pytest.approx(expected / smaller, rel=0.005)
    assert m1.event_id == ev1.id
    validate_item(m1.to_dict())


def test_contained_footprint_gives_fraction_one_and_disjoint_ones_fail() -> None:
    m = Matchup.create(None, _s2(geom=box(30, 40, 40, 50)), _l9(geom=box(31, 41, 32, 42)))
    assert m.overlap_fraction == pytest.approx(1.0)
    assert "matchup:event_id" not in m.properties
    with pytest.raises(MatchupError, match="do not overlap"):
        Matchup.create(None, _s2(geom=box(0, 0, 1, 1)), _l9(geom=box(10, 10, 11, 11)))
    with pytest.raises(MatchupError):
        Matchup.create(None, _s2(), _s2())


def test_antimeridian_footprints_in_any_spelling_intersect_correctly() -> None:
    # a: written with a jump 179 -> -179; b: already split at 180 (STAC convention)
    a = Polygon([(178, -10), (-178, -10), (-178, -5), (178, -5)])
    b = MultiPolygon([box(179, -12, 180, -8), box(-180, -12, -179, -8)])
    norm = normalize_geometry(a)
    assert isinstance(norm, MultiPolygon)
    assert norm.bounds[0] >= -180 and norm.bounds[2] <= 180
    assert geodesic_area_km2(norm) == pytest.approx(_spherical_box_km2(178, -10, 182, -5), rel=0.01)
    # c: longitudes past 180
    c = box(179.5, -9, 181.5, -7)
    assert geodesic_area_km2(normalize_geometry(c)) == pytest.approx(_spherical_box_km2(179.5, -9, 181.5, -7), rel=0.01)
    m = Matchup.create(None, _s2(geom=a), _l9(geom=b))
    assert m.overlap_km2 == pytest.approx(_spherical_box_km2(179, -10, 181, -8), rel=0.01)
    assert -180 <= m.bbox[0] and m.bbox[2] <= 180
    validate_item(m.to_dict())


def test_links_point_at_the_default_layout_and_are_not_duplicated() -> None:
    ev = _event()
    s2, l9 = _s2(), _l9()
    m = Matchup.create(ev, s2, l9)
    Matchup.create(ev, s2, l9)  # same pair again: no second matchup, no second link
    assert [x.id for x in ev.matchup_set] == [m.id]
    assert ev.matchup_ids == [m.id]
    m_rel = default_relpath(m.to_dict())
    assert m_rel == item_relpath(m.collection_id, m.id, "2022-05-21T08:40:00Z")
    derived = [lk["href"] for lk in m.links if lk["rel"] == "derived_from"]
    resolved = sorted(posixpath.normpath(posixpath.join(posixpath.dirname(m_rel), h)) for h in derived)
    assert resolved == sorted([default_relpath(s2), default_relpath(l9)])
    to_event = [lk for lk in m.links if lk["rel"] == "related"]
    assert len(to_event) == 1 and to_event[0]["matchup:role"] == "event"
    assert to_event[0]["href"].endswith(f"/{ev.id}.json")
    to_matchup = [lk for lk in ev.links if lk["rel"] == "related"]
    assert len(to_matchup) == 1 and to_matchup[0]["matchup:role"] == "matchup"


def test_products_come_from_create_and_need_a_catalogue_otherwise() -> None:
    s2, l9 = _s2(), _l9()
    m = Matchup.create(None, s2, l9)
    assert [p["id"] for p in m.products()] == ["LC09_A", "S2A_A"]
    bare = Matchup(dict(m.to_dict()))
    with pytest.raises(MatchupError, match="no catalogue"):
        bare.products()


def test_to_dict_is_cheap_and_to_pystac_round_trips() -> None:
    m = Matchup.create(_event(), _s2(), _l9())
    assert m.to_dict() is m.to_dict()
    item = m.to_pystac()
    assert item.id == m.id
    assert item.collection_id == m.collection_id
    assert item.properties["matchup:overlap_km2"] == m.overlap_km2
    assert {lk.rel for lk in item.links} >= {"derived_from", "related"}
    assert item.to_dict(include_self_link=False)["id"] == m.id


def test_product_accessors_and_provider_items() -> None:
    p = Product(_s2())
    assert (p.platform, p.instrument, p.collection_id) == ("Sentinel-2A", "MSI", "S2_MSI_L1C")
    provider = {"type": "Feature", "id": "X", "collection": "S2_MSI_L1C", "geometry": None,
                "properties": {"datetime": "2022-01-01T00:00:00Z"}, "links": [], "assets": {}}  # fmt: skip
    view = Product.from_item(provider)
    assert view.properties["matchup:type"] == "product"
    assert view.acquisition_time == datetime(2022, 1, 1, tzinfo=UTC)


def test_item_type_inference_for_legacy_items() -> None:
    assert infer_item_type({"collection": "matchup-events-A-x-vs-B-y", "properties": {}}) == "event"
    assert infer_item_type({"collection": "A-x-vs-B-y", "properties": {}, "links": []}) == "matchup"
    assert infer_item_type({"collection": "Z", "properties": {}, "links": [{"rel": "derived_from", "href": "a.json"}]}) == "matchup"
    assert infer_item_type({"collection": "S2_MSI_L1C", "properties": {}}) == "product"
    assert infer_item_type({"collection": "S2_MSI_L1C", "properties": {"matchup:type": "event"}}) == "event"


def test_wide_region_without_a_jump_is_not_split() -> None:
    """A half-orbit region 194 degrees wide (around a pole) is not an antimeridian jump."""
    import numpy as np
    from shapely.geometry import Polygon

    from eomatch.model import normalize_geometry

    lons = np.linspace(-100.0, 94.0, 50)
    ring = [(x, 70.0) for x in lons] + [(x, 60.0) for x in lons[::-1]]
    out = normalize_geometry(Polygon(ring))
    assert out.geom_type == "Polygon"
    assert out.bounds == (-100.0, 60.0, 94.0, 70.0)
