"""Matchups as a table: one row per matchup, written as GeoParquet, CSV or GeoJSON.

Researchers filter and plot matchups with pandas, geopandas or duckdb; a table file is
what those tools read fastest. Rows are built by streaming the catalogue's index
(:meth:`MatchupCatalogue.iter_ids`) and written in batches, so memory stays flat
whatever the catalogue's size; files are written to a temporary name and renamed
when complete, so an interrupted export never leaves a half file under the name.

pyarrow (GeoParquet) and geopandas (:func:`to_geodataframe`) come with the
``export`` extra: ``pip install "eomatch[export]"``.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import orjson
import shapely
from shapely.geometry import shape

from eomatch import jsonio
from eomatch.errors import CatalogueError, ConfigError
from eomatch.items import Matchup, Product
from eomatch.progress import format_bytes
from eomatch.times import format_datetime

if TYPE_CHECKING:
    from eomatch.catalogue import MatchupCatalogue
    from eomatch.progress import Progress

FORMATS = ("parquet", "csv", "geojson")
"""What ``--format`` takes."""

SUFFIXES = {".parquet": "parquet", ".geoparquet": "parquet", ".csv": "csv", ".geojson": "geojson", ".json": "geojson"}
"""Output file suffixes that name their format when ``--format`` is not given."""

COLUMNS: tuple[str, ...] = (
    "id",
    "title",
    "collection",
    "event_id",
    "product_a_id",
    "product_b_id",
    "platform_a",
    "platform_b",
    "collection_a",
    "collection_b",
    "acquisition_time_a",
    "acquisition_time_b",
    "time_diff_s",
    "abs_time_diff_s",
    "overlap_km2",
    "overlap_fraction",
    "max_cloud_cover_pct",
    "cloud_cover_a_pct",
    "cloud_cover_b_pct",
    "sites",
    "geometry",
)
"""The columns of every format, in order (``geometry`` is the GeoJSON feature's geometry)."""

TIME_COLUMNS = ("acquisition_time_a", "acquisition_time_b")
FLOAT_COLUMNS = (
    "time_diff_s", "abs_time_diff_s", "overlap_km2", "overlap_fraction",
    "max_cloud_cover_pct", "cloud_cover_a_pct", "cloud_cover_b_pct",
)  # fmt: skip
SITES_PROPERTY = "matchup:sites"
"""Where a matchup names its validation sites (a list of names); the column is null until items carry it."""

BATCH_ROWS = 10_000
"""Rows per Parquet row group (and per in-memory batch)."""

PRODUCT_CACHE = 4096
"""Product summaries kept: a product is in many matchups of one event, read once."""

EXTRA_HINT = 'install the export extra: pip install "eomatch[export]"'


def _require(module: str) -> Any:
    """Import an optional dependency, or a one-line error naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{module.split('.')[0]} is needed for this export: {EXTRA_HINT}") from None


def format_for(output: str | os.PathLike[str], fmt: str | None) -> str:
    """The format asked for, else the one the output's suffix names (ConfigError if neither)."""
    if fmt:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(output).suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(f"cannot tell the format of {os.fspath(output)!r}: pass --format {'|'.join(FORMATS)}")
    return SUFFIXES[suffix]


# ---------------------------------------------------------------------------- rows


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _sites(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return None


def _read_item(root: str, relpath: str) -> Any:
    """An item file by its root-relative path.

    Joined as plain strings: pathlib interns every path part it parses, and an intern
    table that holds a name per item file would grow with the catalogue. A file gone
    since the index saw it is jsonio's one-line CatalogueError.
    """
    path = os.path.join(root, relpath)
    try:
        with open(path, "rb") as fh:
            return orjson.loads(fh.read())
    except (OSError, orjson.JSONDecodeError):
        return jsonio.read_json(path)  # the same error, worded as everywhere else


class _Products:
    """(acquisition time, cloud cover) of products by id, read from their files once, bounded."""

    def __init__(self, catalogue: MatchupCatalogue, size: int | None = None) -> None:
        self._catalogue = catalogue
        self._root = str(catalogue.root)
        self._size = size or PRODUCT_CACHE
        self._cache: OrderedDict[str, tuple[datetime | None, float | None] | None] = OrderedDict()

    def get(self, product_id: str | None) -> tuple[datetime | None, float | None] | None:
        """None when the catalogue does not hold the product."""
        if not product_id:
            return None
        if product_id in self._cache:
            self._cache.move_to_end(product_id)
            return self._cache[product_id]
        ref = self._catalogue.lookup(product_id)
        found: tuple[datetime | None, float | None] | None = None
        if ref is not None and ref.kind == "product":
            product = Product(_read_item(self._root, ref.relpath))
            try:
                when: datetime | None = product.acquisition_time
            except Exception:  # a product without any time: the column is null, the row stays
                when = None
            found = (when, _number(product.properties.get("eo:cloud_cover")))
        self._cache[product_id] = found
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return found


@dataclass
class RowStats:
    """What the rows so far hold, for the summary and the GeoParquet metadata."""

    rows: int = 0
    missing_products: int = 0
    """Rows with a product the catalogue does not hold (its columns are null)."""


def matchup_row(item: dict[str, Any], products: _Products, stats: RowStats) -> dict[str, Any]:
    """One table row of a matchup item (geometry as the item's GeoJSON dict)."""
    m = Matchup(item)
    props = m.properties
    ids = (m.product_ids + [None, None])[:2]
    platforms = (m.platforms + [None, None])[:2]
    collections = (m.collections + [None, None])[:2]
    found = [products.get(pid) for pid in ids]
    if any(f is None for f in found):
        stats.missing_products += 1
    times = [f[0] if f else None for f in found]
    covers = [f[1] if f else None for f in found]
    max_cover = _number(props.get("matchup:max_cloud_cover"))
    if max_cover is None and any(c is not None for c in covers):
        max_cover = max(c for c in covers if c is not None)
    stats.rows += 1
    return {
        "id": m.id,
        "title": props.get("title"),
        "collection": item.get("collection"),
        "event_id": m.event_id,
        "product_a_id": ids[0],
        "product_b_id": ids[1],
        "platform_a": platforms[0],
        "platform_b": platforms[1],
        "collection_a": collections[0],
        "collection_b": collections[1],
        "acquisition_time_a": times[0],
        "acquisition_time_b": times[1],
        "time_diff_s": _number(m.time_diff_s),
        "abs_time_diff_s": _number(m.abs_time_diff_s),
        "overlap_km2": _number(m.overlap_km2),
        "overlap_fraction": _number(m.overlap_fraction),
        "max_cloud_cover_pct": max_cover,
        "cloud_cover_a_pct": covers[0],
        "cloud_cover_b_pct": covers[1],
        "sites": _sites(props.get(SITES_PROPERTY)),
        "geometry": item.get("geometry"),
    }


def iter_matchup_rows(
    catalogue: MatchupCatalogue,
    collection: str | None = None,
    progress: Progress | None = None,
    stats: RowStats | None = None,
) -> Iterator[dict[str, Any]]:
    """Every matchup of the catalogue (optionally of one collection) as a row, streamed.

    Matchups come from the index in (collection, id) order; each one's two products
    are read (through a bounded cache) for their acquisition times and cloud covers.
    """
    stats = stats if stats is not None else RowStats()
    products = _Products(catalogue)
    root = str(catalogue.root)
    for ref in catalogue.iter_ids(kind="matchup", collection=collection):
        yield matchup_row(_read_item(root, ref.relpath), products, stats)
        if progress is not None:
            progress.update()


def _batches(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# ---------------------------------------------------------------------------- arrow


def arrow_schema() -> Any:
    """The Arrow schema of a batch (``geometry`` as WKB)."""
    pa = _require("pyarrow")
    types = {c: pa.string() for c in COLUMNS}
    types.update({c: pa.timestamp("us", tz="UTC") for c in TIME_COLUMNS})
    types.update({c: pa.float64() for c in FLOAT_COLUMNS})
    types["sites"] = pa.list_(pa.string())
    types["geometry"] = pa.binary()
    return pa.schema([(c, types[c]) for c in COLUMNS])


class _GeoStats:
    """Geometry types and bounds of everything written, for the ``geo`` metadata."""

    def __init__(self) -> None:
        self.types: set[str] = set()
        self.bounds: list[float] | None = None

    def add(self, geoms: Any) -> None:
        valid = geoms[~shapely.is_missing(geoms)]
        if not len(valid):
            return
        self.types.update(g.geom_type for g in valid)
        b = shapely.total_bounds(valid).tolist()
        if self.bounds is None:
            self.bounds = b
        else:
            self.bounds = [min(self.bounds[0], b[0]), min(self.bounds[1], b[1]),
                           max(self.bounds[2], b[2]), max(self.bounds[3], b[3])]  # fmt: skip


def _geometries(batch: Sequence[dict[str, Any]]) -> Any:
    import numpy as np

    return np.array([shape(r["geometry"]) if r["geometry"] else None for r in batch], dtype=object)


def arrow_table(batch: Sequence[dict[str, Any]], geo: _GeoStats | None = None) -> Any:
    """One batch of rows as an Arrow table (geometry as WKB)."""
    pa = _require("pyarrow")
    geoms = _geometries(batch)
    if geo is not None:
        geo.add(geoms)
    wkb = shapely.to_wkb(geoms)
    data: dict[str, list[Any]] = {c: [r[c] for r in batch] for c in COLUMNS if c != "geometry"}
    data["geometry"] = list(wkb)
    return pa.table(data, schema=arrow_schema())


def geo_metadata(geo: _GeoStats) -> dict[str, Any]:
    """GeoParquet 1.1 file metadata: WKB geometry in EPSG:4326 (lon/lat order, as WKB always is)."""
    from pyproj import CRS

    column: dict[str, Any] = {
        "encoding": "WKB",
        "geometry_types": sorted(geo.types),
        "crs": CRS.from_epsg(4326).to_json_dict(),
    }
    if geo.bounds is not None:
        column["bbox"] = geo.bounds
    return {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": column}}


# ---------------------------------------------------------------------------- writers


def _write_parquet(tmp: Path, rows: Iterator[dict[str, Any]], batch_rows: int) -> None:
    pq = _require("pyarrow.parquet")
    geo = _GeoStats()
    # The Arrow schema is not stored: the reader then takes the file's key-value metadata
    # (with ``geo``, added once every geometry is known) as the schema's metadata.
    writer = pq.ParquetWriter(str(tmp), arrow_schema(), store_schema=False)
    try:
        for batch in _batches(rows, batch_rows):
            writer.write_table(arrow_table(batch, geo), row_group_size=batch_rows)
        writer.add_key_value_metadata({"geo": json.dumps(geo_metadata(geo))})
    finally:
        writer.close()


def _text_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, list):
        return ";".join(value)
    return value


def _write_csv(out: TextIO, rows: Iterator[dict[str, Any]], batch_rows: int) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for batch in _batches(rows, batch_rows):
        wkt = shapely.to_wkt(_geometries(batch), rounding_precision=-1)
        for row, geom in zip(batch, wkt, strict=True):
            writer.writerow([_text_value(row[c]) for c in COLUMNS[:-1]] + [geom or ""])


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_datetime(value)
    raise TypeError(type(value).__name__)


def _write_geojson(out: Any, rows: Iterator[dict[str, Any]]) -> None:
    out.write(b'{"type":"FeatureCollection","features":[')
    first = True
    for row in rows:
        props = {c: row[c] for c in COLUMNS if c not in ("id", "geometry")}
        feature = {"type": "Feature", "id": row["id"], "geometry": row["geometry"], "properties": props}
        out.write((b"" if first else b",\n") + orjson.dumps(feature, default=_json_default))
        first = False
    out.write(b"]}\n")


@dataclass
class ExportSummary:
    """What an export wrote."""

    output: Path
    format: str
    rows: int
    bytes: int
    missing_products: int = 0

    def line(self) -> str:
        """One line that says what the output file holds."""
        what = {
            "parquet": "GeoParquet, WKB geometry in EPSG:4326",
            "csv": "CSV, WKT geometry in EPSG:4326",
            "geojson": "GeoJSON FeatureCollection",
        }[self.format]
        text = (
            f"{self.output} holds {self.rows:,} matchups, one row each "
            f"({what}; {len(COLUMNS)} columns; {format_bytes(self.bytes)})"
        )
        if self.missing_products:
            text += f"; {self.missing_products:,} with a product not in the catalogue (its columns are null)"
        return text


def export_matchups(
    catalogue: MatchupCatalogue,
    output: str | os.PathLike[str],
    fmt: str | None = None,
    collection: str | None = None,
    progress: Progress | None = None,
    batch_rows: int = BATCH_ROWS,
) -> ExportSummary:
    """Write every matchup of ``catalogue`` as one row of ``output`` (parquet, csv or geojson).

    ``fmt`` defaults to what the output's suffix names. The file is written under a
    temporary name beside ``output`` and renamed when complete (re-runs replace it).
    """
    fmt = format_for(output, fmt)
    if fmt == "parquet":
        _require("pyarrow.parquet")  # before anything is read
    out = Path(output).expanduser()
    if out.is_dir():
        raise ConfigError(f"output {out} is a folder, not a file")
    if not out.parent.is_dir():
        raise ConfigError(f"output folder {out.parent} does not exist")
    if collection is not None and collection not in catalogue.collection_dirs():
        raise CatalogueError(f"unknown collection {collection!r} in catalogue {catalogue.root}")
    stats = RowStats()
    rows = iter_matchup_rows(catalogue, collection, progress, stats)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    tmp = Path(name)
    try:
        if fmt == "parquet":
            os.close(fd)
            _write_parquet(tmp, rows, batch_rows)
        elif fmt == "csv":
            with open(fd, "w", encoding="utf-8", newline="") as fh:
                _write_csv(fh, rows, batch_rows)
        else:
            with open(fd, "wb") as fb:
                _write_geojson(fb, rows)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ExportSummary(out, fmt, stats.rows, out.stat().st_size, stats.missing_products)


def to_geodataframe(catalogue: MatchupCatalogue, collection: str | None = None) -> Any:
    """Every matchup as a row of a ``geopandas.GeoDataFrame`` (CRS EPSG:4326), indexed by nothing.

    The frame is in memory by nature; rows are converted in batches through Arrow, so
    only the frame itself grows with the catalogue. For catalogues too large for that,
    export to GeoParquet and read it with duckdb.
    """
    gpd = _require("geopandas")
    pa = _require("pyarrow")
    tables = [arrow_table(batch) for batch in _batches(iter_matchup_rows(catalogue, collection), BATCH_ROWS)]
    table = pa.concat_tables(tables) if tables else arrow_schema().empty_table()
    frame = table.drop_columns(["geometry"]).to_pandas()
    geometry = gpd.GeoSeries.from_wkb(table.column("geometry").to_pylist(), crs="EPSG:4326")
    return gpd.GeoDataFrame(frame, geometry=geometry, crs="EPSG:4326")

