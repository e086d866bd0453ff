"""Matchup datasets end to end: the internal and external researcher workflows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
from helpers_http import RangeServer, build_scene
from shapely.geometry import box, mapping

from eomatch.catalogue import MatchupCatalogue
from eomatch.dataset import BuildMUDT, return_matchup_dataset
from eomatch.download import download
from eomatch.errors import DatasetError
from eomatch.ingest import ingest
from eomatch.model import Matchup
from eomatch.query import query


def _check_values_match_source(tree: xr.DataTree) -> None:
    """Every non-missing pixel equals the source raster at the same coordinates."""
    for node in tree.children.values():
        da = node["data"]
        with rasterio.open(node.attrs["source_file"]) as src:
            full = src.read(1)
            inv = ~src.transform
            cols = np.floor([(inv @ (x, da.y.values[0]))[0] for x in da.x.values]).astype(int)
            rows = np.floor([(inv @ (da.x.values[0], y))[1] for y in da.y.values]).astype(int)
        window = full[np.ix_(rows, cols)]
        values = da.values[0]
        keep = ~np.isnan(values)
        assert keep.sum() > 100
        np.testing.assert_array_equal(values[keep], window[keep])


def _check_inside_region(tree: xr.DataTree, matchup: Matchup) -> None:
    from pyproj import Transformer

    w, s, e, n = matchup.geometry.bounds
    for node in tree.children.values():
        da = node["data"]
        to_ll = Transformer.from_crs(da.rio.crs, "EPSG:4326", always_xy=True)
        lon, lat = to_ll.transform(*np.meshgrid(da.x.values, da.y.values))
        valid = ~np.isnan(da.values[0])
        pad = 0.01  # a pixel or so: all_touched keeps the edge pixels
        assert lon[valid].min() >= w - pad and lon[valid].max() <= e + pad
        assert lat[valid].min() >= s - pad and lat[valid].max() <= n + pad


@pytest.mark.stack
def test_internal_workflow_reads_shared_files_without_download(running_stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    scene = build_scene(tmp_path / "central", tmp_path / "nfs", days=("2022-05-21", "2022-06-02"))
    ingest(running_stack.settings, catalogue=scene.root, quiet=True)
    query(running_stack.settings, running_stack.internal, tmp_path / "mine",
          start_time="2022-01-01", end_time="2022-12-31", collections=scene.matchup_collection, quiet=True)  # fmt: skip
    cat = MatchupCatalogue.open(tmp_path / "mine" / "catalog.json")
    trees = []
    for event in cat.get_events():
        for matchup in event.matchup_set:
            tree = matchup.return_matchup_dataset(download_missing=False)
            assert set(tree.children) == {"Sentinel-2A", "Landsat-9"}
            s2, ls = tree["Sentinel-2A"], tree["Landsat-9"]
            assert s2["data"].rio.crs.to_epsg() == 32630 and ls["data"].rio.crs.to_epsg() == 4326
            assert s2.attrs["product_id"] in scene.product_files and s2.attrs["acquisition_time"].endswith("11:00:00Z")
            assert Path(s2.attrs["source_file"]).parent == tmp_path / "nfs"  # read in place, not copied
            assert tree.attrs["matchup_id"] == matchup.id
            _check_values_match_source(tree)
            _check_inside_region(tree, matchup)
            trees.append(tree)
    assert len(trees) == 2
    assert not (tmp_path / "mine" / "products").exists()

    # NetCDF round trip
    nc = tmp_path / "m.nc"
    trees[0].to_netcdf(nc)
    back = xr.open_datatree(nc, decode_coords="all")  # spatial_ref back as a coordinate
    for name in ("Sentinel-2A", "Landsat-9"):
        xr.testing.assert_allclose(back[name]["data"].load(), trees[0][name]["data"])
        assert back[name].attrs == trees[0][name].attrs
        assert back[name]["data"].rio.crs == trees[0][name]["data"].rio.crs
    assert back.attrs["matchup_id"] == trees[0].attrs["matchup_id"]


@pytest.mark.stack
def test_external_workflow_query_download_then_dataset(running_stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with RangeServer(tmp_path / "provider") as http:
        scene = build_scene(tmp_path / "central", tmp_path / "provider", http, days=("2022-07-01",), landsat_remote="http")
        ingest(running_stack.settings, catalogue=scene.root, quiet=True)
        out = tmp_path / "my_catalogue"
        query(running_stack.settings, running_stack.external, out, collections=scene.matchup_collection, quiet=True)
        assert b"file://" not in b"".join(p.read_bytes() for p in out.rglob("*.json"))
        summary = download(running_stack.settings, path=out, quiet=True)
        assert summary.failures == [] and summary.files_downloaded == 2
        cat = MatchupCatalogue.open(out / "catalog.json")
        (event,) = list(cat.get_events())
        tree = event.matchup_set[0].return_matchup_dataset(reproject=True)
    for node in tree.children.values():
        assert Path(node.attrs["source_file"]).is_relative_to(out / "products")
    s2, ls = tree["Sentinel-2A"]["data"], tree["Landsat-9"]["data"]
    assert s2.shape == ls.shape
    np.testing.assert_array_equal(s2.x.values, ls.x.values)
    np.testing.assert_array_equal(s2.y.values, ls.y.values)
    assert s2.rio.crs == ls.rio.crs


def test_download_missing_fetches_then_reads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with RangeServer(tmp_path / "provider") as http:
        scene = build_scene(tmp_path / "cat", tmp_path / "provider", http, local_data=False, landsat_remote="http")
        builder = BuildMUDT(scene.root, reproject=True, resolution=200.0)
        (pair,) = list(builder.iter_datasets())
    matchup, tree = pair
    assert matchup.id == scene.matchup_ids[0]
    assert tree.attrs["common_grid"] == 1
    res = tree["Sentinel-2A"]["data"].rio.resolution()
    assert abs(res[0]) == pytest.approx(200.0)
    assert tree["Landsat-9"]["data"].shape == tree["Sentinel-2A"]["data"].shape
    # now local: the builder works from the registered files without the server
    again = BuildMUDT(scene.root).for_matchup(matchup.id)
    _check_values_match_source(again)


def test_bad_inputs_name_the_product(tmp_path) -> None:  # type: ignore[no-untyped-def]
    scene = build_scene(tmp_path / "cat", tmp_path / "data")
    cat = MatchupCatalogue.open(scene.root)
    matchup = cat.get_matchup(scene.matchup_ids[0])
    s2_id = next(p for p in scene.product_files if p.startswith("S2A"))
    ls_id = next(p for p in scene.product_files if p.startswith("LC09"))

    scene.product_files[s2_id].unlink()
    with pytest.raises(DatasetError, match=f"product {s2_id}: data file .* is missing"):
        return_matchup_dataset(matchup, download_missing=False)
    with pytest.raises(DatasetError, match=f"product {s2_id}: no downloadable data asset"):
        return_matchup_dataset(matchup)  # no remote asset to fetch either

    scene.product_files[s2_id].write_bytes(b"this is not a GeoTIFF")
    with pytest.raises(DatasetError, match=f"product {s2_id}: cannot read"):
        return_matchup_dataset(matchup, download_missing=False)

    # a region far from both rasters: empty intersection
    item = dict(matchup.to_dict())
    item["geometry"] = mapping(box(100, 10, 101, 11))
    scene.product_files[s2_id].unlink()
    far = Matchup(item, cat)
    with pytest.raises(DatasetError, match="does not intersect") as err:
        return_matchup_dataset(far, download_missing=False)
    assert ls_id in str(err.value) or s2_id in str(err.value)
    assert "\n" not in str(err.value)
