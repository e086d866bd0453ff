"""Matchups as a table (eomatch.export): each format read back by the tools researchers use."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import shapely
from catalogue_factory import build_catalogue
from shapely.geometry import shape

from eomatch.catalogue import MatchupCatalogue
from eomatch.errors import CatalogueError, ConfigError
from eomatch.export import COLUMNS, export_matchups, format_for
from eomatch.times import to_utc

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

SITES = ["Gobabeb", "La Crau"]


def _set(cat: MatchupCatalogue, item_id: str, **props: Any) -> None:
    def edit(item: dict[str, Any]) -> None:
        item["properties"].update(props)

    cat.update_item(item_id, edit)


@pytest.fixture
def cat(tmp_path: Path) -> MatchupCatalogue:
    """Three matchups: cloud covers on both products and sites (no max property: it is
    derived), covers and a max property, and nothing at all (null columns)."""
    c = build_catalogue(tmp_path / f"cat-{tmp_path.name}", n_events=3)
    matchups = sorted(ref.id for ref in c.iter_ids(kind="matchup"))
    first, second = (c.get_matchup(m) for m in matchups[:2])
    a, b = first.product_ids
    _set(c, a, **{"eo:cloud_cover": 12.5})
    _set(c, b, **{"eo:cloud_cover": 40.0})
    _set(c, first.id, **{"matchup:sites": SITES})
    a, b = second.product_ids
    _set(c, a, **{"eo:cloud_cover": 5.0})
    _set(c, b, **{"eo:cloud_cover": 7.0})
    _set(c, second.id, **{"matchup:max_cloud_cover": 7.0})
    c.save()
    return c


def expected(cat: MatchupCatalogue) -> dict[str, dict[str, Any]]:
    """What each row must hold, read from the item files by another path (full walk)."""
    out = {}
    for item in cat.iter_items():
        props = item["properties"]
        if props.get("matchup:type") != "matchup":
            continue
        pa_, pb_ = (cat.get_product(pid) for pid in props["matchup:products"])
        covers = [p["properties"].get("eo:cloud_cover") for p in (pa_, pb_)]
        known = [c for c in covers if c is not None]
        out[item["id"]] = {
            "title": props.get("title"),
            "collection": item["collection"],
            "event_id": props["matchup:event_id"],
            "product_a_id": pa_["id"],
            "product_b_id": pb_["id"],
            "platform_a": props["matchup:platforms"][0],
            "platform_b": props["matchup:platforms"][1],
            "collection_a": pa_["collection"],
            "collection_b": pb_["collection"],
            "acquisition_time_a": to_utc(pa_["properties"]["datetime"]),
            "acquisition_time_b": to_utc(pb_["properties"]["datetime"]),
            "time_diff_s": props["matchup:time_diff_s"],
            "abs_time_diff_s": props["matchup:abs_time_diff_s"],
            "overlap_km2": props["matchup:overlap_km2"],
            "overlap_fraction": props["matchup:overlap_fraction"],
            "max_cloud_cover_pct": props.get("matchup:max_cloud_cover", max(known) if known else None),
            "cloud_cover_a_pct": covers[0],
            "cloud_cover_b_pct": covers[1],
            "sites": props.get("matchup:sites"),
            "geometry": shape(item["geometry"]),
        }
    return out


def _same(row: dict[str, Any], want: dict[str, Any]) -> None:
    for key, value in want.items():
        got = row[key]
        if key == "geometry":
            assert shapely.equals(got, value), key
        elif isinstance(value, float):
            assert got == pytest.approx(value), key
        else:
            assert got == value, key


def test_geoparquet_rows_columns_values_and_geo_metadata(cat: MatchupCatalogue, tmp_path: Path) -> None:
    out = tmp_path / "m.parquet"
    summary = export_matchups(cat, out, "parquet", batch_rows=2)  # two row groups
    want = expected(cat)
    assert summary.rows == len(want) == 3
    assert f"{out} holds 3 matchups" in summary.line() and "GeoParquet" in summary.line()
    meta = pq.read_metadata(out)
    assert meta.num_rows == 3 and meta.num_row_groups == 2
    table = pq.read_table(out)
    assert table.column_names == list(COLUMNS)
    assert table.schema.field("acquisition_time_a").type == pa.timestamp("us", tz="UTC")
    geo = json.loads(table.schema.metadata[b"geo"])
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
    col = geo["columns"]["geometry"]
    assert col["encoding"] == "WKB"
    assert col["geometry_types"] == sorted({g.geom_type for g in (w["geometry"] for w in want.values())})
    assert col["crs"]["id"] == {"authority": "EPSG", "code": 4326}
    bounds = shapely.total_bounds([w["geometry"] for w in want.values()]).tolist()
    assert col["bbox"] == pytest.approx(bounds)
    rows = table.to_pylist()
    for row in rows:
        row["geometry"] = shapely.from_wkb(row["geometry"])
        _same(row, want[row["id"]])
    assert sum(1 for r in rows if r["sites"] == SITES) == 1
    assert sum(1 for r in rows if r["max_cloud_cover_pct"] is None) == 1


def test_geopandas_reads_the_geoparquet_with_its_crs(cat: MatchupCatalogue, tmp_path: Path) -> None:
    gpd = pytest.importorskip("geopandas")
    out = tmp_path / "m.parquet"
    export_matchups(cat, out)  # the format from the suffix
    frame = gpd.read_parquet(out)
    assert frame.crs.to_epsg() == 4326
    want = expected(cat)
    assert sorted(frame["id"]) == sorted(want)
    for _, row in frame.iterrows():
        assert shapely.equals(row.geometry, want[row["id"]]["geometry"])


def test_duckdb_queries_the_geoparquet(cat: MatchupCatalogue, tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    out = tmp_path / "m.parquet"
    export_matchups(cat, out, "parquet")
    want = expected(cat)
    con = duckdb.connect()
    count, mean_abs = con.execute(f"SELECT count(*), avg(abs_time_diff_s) FROM '{out}'").fetchone()
    assert count == len(want)
    assert mean_abs == pytest.approx(sum(w["abs_time_diff_s"] for w in want.values()) / len(want))
    cloudy = con.execute(f"SELECT id FROM '{out}' WHERE max_cloud_cover_pct > 20").fetchall()
    assert [r[0] for r in cloudy] == [k for k, w in want.items() if (w["max_cloud_cover_pct"] or 0) > 20]


def test_csv_has_wkt_geometry_and_empty_nulls(cat: MatchupCatalogue, tmp_path: Path) -> None:
    out = tmp_path / "m.csv"
    summary = export_matchups(cat, out, "csv")
    assert "CSV, WKT geometry" in summary.line()
    with open(out, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        rows = list(reader)
    want = expected(cat)
    assert len(rows) == len(want)
    for row in rows:
        w = want[row["id"]]
        assert shapely.equals(shapely.from_wkt(row["geometry"]), w["geometry"])
        assert to_utc(row["acquisition_time_a"]) == w["acquisition_time_a"]
        assert to_utc(row["acquisition_time_b"]) == w["acquisition_time_b"]
        assert float(row["time_diff_s"]) == pytest.approx(w["time_diff_s"])
        assert float(row["overlap_km2"]) == pytest.approx(w["overlap_km2"])
        assert row["event_id"] == w["event_id"] and row["product_b_id"] == w["product_b_id"]
        assert row["sites"] == (";".join(w["sites"]) if w["sites"] else "")
        cover = w["max_cloud_cover_pct"]
        assert row["max_cloud_cover_pct"] == ("" if cover is None else str(cover))


def test_geojson_is_one_feature_collection(cat: MatchupCatalogue, tmp_path: Path) -> None:
    out = tmp_path / "m.geojson"
    export_matchups(cat, out, "geojson")
    doc = json.loads(out.read_bytes())
    assert doc["type"] == "FeatureCollection"
    want = expected(cat)
    assert len(doc["features"]) == len(want)
    for feature in doc["features"]:
        w = want[feature["id"]]
        assert set(feature["properties"]) == set(COLUMNS) - {"id", "geometry"}
        assert shapely.equals(shape(feature["geometry"]), w["geometry"])
        props = feature["properties"]
        assert to_utc(props["acquisition_time_a"]) == w["acquisition_time_a"]
        assert props["sites"] == w["sites"] and props["cloud_cover_a_pct"] == w["cloud_cover_a_pct"]


def test_to_geodataframe(cat: MatchupCatalogue) -> None:
    pytest.importorskip("geopandas")
    frame = cat.to_geodataframe()
    assert frame.crs.to_epsg() == 4326
    assert list(frame.columns) == list(COLUMNS)
    want = expected(cat)
    assert len(frame) == len(want)
    for _, row in frame.iterrows():
        w = want[row["id"]]
        assert shapely.equals(row.geometry, w["geometry"])
        assert row["acquisition_time_b"].to_pydatetime() == w["acquisition_time_b"]
        assert row["overlap_fraction"] == pytest.approx(w["overlap_fraction"])


def test_empty_catalogue_writes_an_empty_table(tmp_path: Path) -> None:
    cat = MatchupCatalogue.create(tmp_path / "empty")
    out = tmp_path / "m.parquet"
    summary = export_matchups(cat, out)
    assert summary.rows == 0 and "holds 0 matchups" in summary.line()
    table = pq.read_table(out)
    assert table.num_rows == 0 and table.column_names == list(COLUMNS)
    assert json.loads(table.schema.metadata[b"geo"])["columns"]["geometry"]["geometry_types"] == []


def test_a_missing_product_leaves_its_columns_null(cat: MatchupCatalogue, tmp_path: Path) -> None:
    ref = next(cat.iter_ids(kind="matchup"))
    gone = cat.get_matchup(ref.id).product_ids[1]
    cat.path_of(gone).unlink()
    cat.reindex()
    summary = export_matchups(cat, tmp_path / "m.parquet")
    assert summary.rows == 3 and summary.missing_products == 1
    assert "1 with a product not in the catalogue" in summary.line()
    row = next(r for r in pq.read_table(tmp_path / "m.parquet").to_pylist() if r["id"] == ref.id)
    assert row["product_b_id"] == gone
    assert row["acquisition_time_b"] is None and row["cloud_cover_b_pct"] is None
    assert row["acquisition_time_a"] is not None


@pytest.mark.parametrize("fmt", ["parquet", "csv", "geojson"])
def test_a_failed_export_keeps_the_old_file_and_leaves_no_temp(cat: MatchupCatalogue, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"m.{fmt}"
    out.write_text("previous export")
    refs = list(cat.iter_ids(kind="matchup"))
    (cat.root / refs[-1].relpath).unlink()  # the index still lists it: the export fails on the last row
    with pytest.raises(CatalogueError, match=f"file not found: .*{refs[-1].id}.json"):
        export_matchups(cat, out, fmt, batch_rows=1)
    assert out.read_text() == "previous export"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".m.")) == []


def test_format_from_the_suffix_or_a_clear_error() -> None:
    assert format_for("x.parquet", None) == "parquet"
    assert format_for("x.GEOJSON", None) == "geojson"
    assert format_for("x.txt", "csv") == "csv"
    with pytest.raises(ConfigError, match="cannot tell the format of 'x.txt'"):
        format_for("x.txt", None)
    with pytest.raises(ConfigError, match="unknown export format 'xlsx'"):
        format_for("x.parquet", "xlsx")


def test_missing_pyarrow_is_one_line_naming_the_extra(cat: MatchupCatalogue, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # import fails as when not installed
    with pytest.raises(ConfigError, match=r'pyarrow is needed for this export: install the export extra: pip install "eomatch\[export\]"'):
        export_matchups(cat, tmp_path / "m.parquet")
    assert not (tmp_path / "m.parquet").exists()
    export_matchups(cat, tmp_path / "m.csv")  # CSV needs no extra
    assert (tmp_path / "m.csv").is_file()


def test_unknown_collection_and_bad_output_are_errors(cat: MatchupCatalogue, tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="unknown collection 'nope'"):
        export_matchups(cat, tmp_path / "m.csv", collection="nope")
    with pytest.raises(ConfigError, match="does not exist"):
        export_matchups(cat, tmp_path / "no" / "m.csv")
    with pytest.raises(ConfigError, match="is a folder"):
        export_matchups(cat, tmp_path, "csv")


def test_one_collection_only(cat: MatchupCatalogue, tmp_path: Path) -> None:
    coll = next(cat.iter_ids(kind="matchup")).collection
    summary = export_matchups(cat, tmp_path / "m.csv", collection=coll)
    assert summary.rows == cat.count(kind="matchup", collection=coll)


def test_memory_stays_flat_as_the_catalogue_grows(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Loose, no timing: the traced peak of a 10x larger export stays well under 10x (it
    streams; a whole-catalogue list of rows would make it ~10x). benchmarks/export_memory.py
    measures 2k vs 20k matchups."""
    import tracemalloc

    from eomatch import export

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from _synth import ITEMS_PER_GROUP, generate

    monkeypatch.setattr(export, "PRODUCT_CACHE", 32)  # the cache's bound is not what is measured
    peaks = []
    for matchups in (300, 3000):
        root = tmp_path / f"cat-{matchups}"
        generate(root, matchups * ITEMS_PER_GROUP // 2)
        with MatchupCatalogue.open(root) as cat:
            assert cat.count(kind="matchup") == matchups
            export_matchups(cat, tmp_path / "warm.csv", "csv", batch_rows=50)  # first-use imports
            tracemalloc.start()
            summary = export_matchups(cat, tmp_path / f"m{matchups}.csv", "csv", batch_rows=50)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        assert summary.rows == matchups
    assert peaks[1] < 2 * peaks[0], peaks


def test_a_legacy_catalogue_exports_from_its_links(tmp_path: Path) -> None:
    """Catalogues of the original tool: product ids from derived_from links, the event from
    its related link, the old abs_time_diff_s name."""
    from catalogue_factory import build_legacy_catalogue

    event_id, matchup_id = build_legacy_catalogue(tmp_path / "legacy")
    cat = MatchupCatalogue.open(tmp_path / "legacy")
    summary = export_matchups(cat, tmp_path / "m.geojson")
    assert summary.rows == 1 and summary.missing_products == 0
    (feature,) = json.loads((tmp_path / "m.geojson").read_bytes())["features"]
    props = feature["properties"]
    assert feature["id"] == matchup_id and props["event_id"] == event_id
    links = cat.get_item(matchup_id)["links"]
    assert {props["product_a_id"], props["product_b_id"]} == {
        Path(lk["href"]).stem for lk in links if lk["rel"] == "derived_from"
    }
    assert props["abs_time_diff_s"] == cat.get_item(matchup_id)["properties"]["matchup:time_diff_abs"]
    assert props["acquisition_time_a"] is not None
