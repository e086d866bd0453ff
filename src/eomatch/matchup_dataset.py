"""Read the two products of a matchup into one ``xarray.DataTree``.

Each product is read from its local ``data`` asset (a ``file://`` href: the
shared drive for internal users, or what ``eomatch-download`` fetched), and is
downloaded first when it only has remote hrefs. Rasters are read with rioxarray
(GeoTIFF / COG, JP2 where GDAL has a driver) and cropped to the collocation
region (the matchup geometry, reprojected to each raster's CRS). The tree has
one node per sensor, named by platform, each a Dataset with the raster
(``data``: band, y, x), its CRS (rioxarray ``spatial_ref``) and attributes
(platform, collection, product id, acquisition time). ``reproject=True`` puts
both on one common grid (the first product's CRS; ``resolution`` in its units).

This module sits below the catalogue and the item views (``Matchup.return_matchup_dataset``
calls it): it reads products as dicts, and what fetches a missing product is passed
in (``fetch``); batches over a catalogue are :class:`eomatch.dataset.BuildMUDT`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from eomatch.errors import DatasetError, DownloadError, EomatchError, first_line
from eomatch.geometry import normalize_geometry
from eomatch.times import format_datetime, item_times, to_utc

if TYPE_CHECKING:
    import xarray as xr

    from eomatch.catalogue import MatchupCatalogue
    from eomatch.items import Matchup
    from eomatch.settings import Settings

ProductFetcher = Callable[["MatchupCatalogue", str], None]
"""Makes one product of a catalogue local (registers its ``data`` asset); raises
:class:`~eomatch.errors.DownloadError` with the reason when it cannot."""

DATA_VAR = "data"


def local_data_path(product: Mapping[str, Any]) -> Path | None:
    """The file of a product's ``data`` asset (``file://`` or an absolute path), if it is local."""
    asset = (product.get("assets") or {}).get("data")
    if not isinstance(asset, dict) or not isinstance(asset.get("href"), str):
        return None
    href = asset["href"]
    if href.startswith("file://"):
        return Path(unquote(urlparse(href).path))
    if "://" not in href:
        return Path(href) if os.path.isabs(href) else None
    return None


def _ensure_local(
    matchup: Matchup,
    product: dict[str, Any],
    download_missing: bool,
    settings: Settings | None,
    fetch: ProductFetcher | None,
) -> tuple[dict[str, Any], Path]:
    pid = product.get("id")
    path = local_data_path(product)
    if path is not None and path.is_file():
        return product, path
    if path is not None and not download_missing:
        raise DatasetError(f"product {pid}: data file {path} is missing")
    if not download_missing:
        raise DatasetError(f"product {pid}: no local data asset (run eomatch-download, or pass download_missing=True)")
    cat = matchup.catalogue
    if cat is None:
        raise DatasetError(f"product {pid}: no local data and no catalogue to download it into")
    if fetch is None:
        fetch = default_fetcher(settings)
    try:
        fetch(cat, str(pid))
    except DownloadError as exc:
        raise DatasetError(f"product {pid}: download failed: {exc}") from None
    product = cat.get_product(str(pid))
    path = local_data_path(product)
    if path is None or not path.is_file():
        raise DatasetError(f"product {pid}: no downloadable data asset")
    return product, path


def default_fetcher(settings: Settings | None = None) -> ProductFetcher:
    """What fetches missing products when the caller passes no ``fetch``: eomatch-download's
    transfers with ``settings``, which default to :func:`~eomatch.settings.load_settings`
    (the config file and ``EOMATCH_*``): matchup datasets are a top-level convenience
    for researchers' scripts, which need not build settings first."""
    from eomatch.settings import load_settings
    from eomatch.transfer import product_fetcher

    return product_fetcher(settings if settings is not None else load_settings())


def _read(product: Mapping[str, Any], path: Path, region: Any) -> xr.DataArray:
    import rioxarray  # noqa: F401  (registers .rio)
    from rasterio.errors import RasterioIOError
    from rioxarray.exceptions import NoDataInBounds, OneDimensionalRaster

    pid = product.get("id")
    try:
        da = rioxarray.open_rasterio(path, masked=True)
    except (RasterioIOError, OSError, ValueError) as exc:
        raise DatasetError(f"product {pid}: cannot read {path}: {first_line(exc)}") from None
    if isinstance(da, list) or not hasattr(da, "rio"):
        raise DatasetError(f"product {pid}: {path} holds several subdatasets; expected one raster")
    if da.rio.crs is None:
        raise DatasetError(f"product {pid}: {path} has no CRS")
    if da.rio.nodata is None:  # mark pixels outside the region as missing, not 0
        import numpy as np

        if not np.issubdtype(da.dtype, np.floating):
            da = da.astype("float32")
        da = da.rio.write_nodata(np.nan, encoded=False)
    try:
        return da.rio.clip([region], crs="EPSG:4326", all_touched=True, from_disk=True, drop=True)
    except (NoDataInBounds, OneDimensionalRaster):
        raise DatasetError(f"product {pid}: the collocation region does not intersect {path}") from None


def _node_names(platforms: Sequence[str]) -> list[str]:
    names = [(p or "sensor").replace("/", "_") for p in platforms]
    if len(names) == 2 and names[0] == names[1]:
        names = [f"{names[0]}_a", f"{names[1]}_b"]
    return names


def _attrs(product: Mapping[str, Any], path: Path) -> dict[str, Any]:
    props = product.get("properties") or {}
    instruments = props.get("instruments")
    attrs = {
        "platform": str(props.get("platform") or ""),
        "collection": str(product.get("collection") or ""),
        "product_id": str(product["id"]),
        "acquisition_time": format_datetime(item_times(product)[0]),
        "source_file": str(path),
    }
    if instruments:
        attrs["instrument"] = str(instruments[0])
    return attrs


def return_matchup_dataset(
    matchup: Matchup,
    reproject: bool = False,
    resolution: float | tuple[float, float] | None = None,
    download_missing: bool = True,
    settings: Settings | None = None,
    fetch: ProductFetcher | None = None,
) -> xr.DataTree:
    """Both products of ``matchup``, cropped to its collocation region, as one DataTree.

    ``reproject``: resample the second product onto the first one's grid (or a grid
    of ``resolution`` in the first product's CRS units). ``download_missing``: fetch
    products that have no local ``data`` file, with ``fetch`` (default:
    :func:`default_fetcher` of ``settings``, i.e. eomatch-download's transfers).
    Raises a one-line :class:`DatasetError` naming the product on bad input.
    """
    import xarray as xr

    try:
        products = matchup.products()
    except EomatchError as exc:
        raise DatasetError(f"matchup {matchup.id}: {exc}") from None
    region = normalize_geometry(matchup.to_dict().get("geometry") or {})
    if region.is_empty:
        raise DatasetError(f"matchup {matchup.id} has an empty collocation region")
    arrays = []
    metas = []
    for product in products:
        product, path = _ensure_local(matchup, dict(product), download_missing, settings, fetch)
        arrays.append(_read(product, path, region))
        metas.append(_attrs(product, path))
    if reproject:
        from rasterio.enums import Resampling

        first = arrays[0]
        if resolution is not None:
            first = first.rio.reproject(first.rio.crs, resolution=resolution, resampling=Resampling.bilinear)
        arrays = [first, arrays[1].rio.reproject_match(first, resampling=Resampling.bilinear)]
    names = _node_names([m["platform"] for m in metas])
    nodes: dict[str, xr.Dataset] = {}
    for name, da, meta in zip(names, arrays, metas, strict=True):
        da = da.rename(DATA_VAR)
        da.attrs = {k: v for k, v in da.attrs.items() if k in ("scale_factor", "add_offset", "units", "long_name")}
        ds = da.to_dataset()
        ds.attrs = meta
        nodes[f"/{name}"] = ds
    root = xr.Dataset(attrs=_matchup_attrs(matchup, reproject))
    return xr.DataTree.from_dict({"/": root, **nodes})


def _matchup_attrs(matchup: Matchup, reproject: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "matchup_id": matchup.id,
        "collection": matchup.collection_id,
        "datetime": format_datetime(matchup.datetime),
        "common_grid": int(reproject),
    }
    for key, value in (
        ("event_id", matchup.event_id),
        ("time_diff_s", matchup.time_diff_s),
        ("overlap_km2", matchup.overlap_km2),
        ("overlap_fraction", matchup.overlap_fraction),
    ):
        if value is not None:
            attrs[key] = value
    return attrs


def acquisition_times(tree: xr.DataTree) -> dict[str, datetime]:
    """Node name -> acquisition time, read back from a tree's attributes."""
    return {name: to_utc(node.attrs["acquisition_time"]) for name, node in tree.children.items()}
