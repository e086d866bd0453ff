"""Move asset hrefs from one prefix to another (``eomatch-migrate-hrefs``).

The design's cloud migration path: ``file:///npl-data/...`` hrefs stay valid
while the share is mounted at the same path; when it moves (or is published
over HTTPS), this rewrites every asset href under the old prefix:

- in pgSTAC, in SQL and in one transaction: ``content->'assets'`` of items
  (pgSTAC stores items dehydrated, but an asset's ``href`` is always kept in
  the item's own content) and of collections;
- in the local catalogue files, item by item through
  :meth:`MatchupCatalogue.update_item` (per-item lock, atomic write), then
  ``collection.json`` files atomically.

A prefix matches on a path boundary: ``file:///npl-data`` matches
``file:///npl-data/x.tif`` but not ``file:///npl-data2/x.tif``. A ``file://``
prefix also matches the plain absolute path (``/npl-data/...``) that catalogue
files hold before ingest turns it into a ``file://`` URI. Re-running is safe:
nothing under the old prefix is left to match. ``dry_run`` counts only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import sql

from eomatch import jsonio
from eomatch.errors import ConfigError, IngestError
from eomatch.hrefs import file_uri_path, is_file_uri
from eomatch.pgstac import connect, resolve_credentials
from eomatch.progress import Progress
from eomatch.settings import Settings


@dataclass
class MigrateSummary:
    """Counts of one run; ``line()`` is the one-line summary the command prints."""

    from_prefix: str
    to_prefix: str
    dry_run: bool = False
    target: str | None = None
    db_items: int = 0
    db_item_assets: int = 0
    db_collections: int = 0
    db_collection_assets: int = 0
    catalogue: str | None = None
    files_scanned: int = 0
    files: int = 0
    file_assets: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        verb = "would move" if self.dry_run else "moved"
        parts = []
        if self.target is not None:
            parts.append(
                f"db {self.target}: {self.db_item_assets} assets in {self.db_items} items, "
                f"{self.db_collection_assets} assets in {self.db_collections} collections"
            )
        if self.catalogue is not None:
            parts.append(
                f"files {self.catalogue}: {self.file_assets} assets in {self.files} of "
                f"{self.files_scanned} files"
            )
        where = "; ".join(parts) if parts else "nothing (no database and no catalogue)"
        return f"{verb} hrefs {self.from_prefix} -> {self.to_prefix}: {where} ({self.seconds:.1f}s)"


# --------------------------------------------------------------------------- prefixes


def _clean_prefix(prefix: str, flag: str) -> str:
    value = prefix.strip()
    stripped = value.rstrip("/")
    if not stripped or stripped.endswith(":") or stripped.endswith(":/"):
        raise ConfigError(f"{flag} {prefix!r} is too broad: give a folder, e.g. file:///npl-data")
    if "://" not in stripped and not stripped.startswith("/"):
        raise ConfigError(f"{flag} {prefix!r} must be a URL (scheme://...) or an absolute path")
    return stripped


def prefix_forms(from_prefix: str) -> list[str]:
    """The spellings of ``from_prefix`` to match: itself, and for ``file://`` the bare path
    (unquoted, as :func:`eomatch.hrefs.file_uri` quotes it)."""
    forms = [from_prefix]
    if is_file_uri(from_prefix):
        path = file_uri_path(from_prefix)
        if path.startswith("/") and path not in forms:
            forms.append(path)
    return forms


def rewrite_href(href: str, forms: list[str], to_prefix: str) -> str | None:
    """The new href, or None when ``href`` is not under any of ``forms``."""
    for form in forms:
        if href == form or href.startswith(form + "/"):
            return to_prefix + href[len(form):]
    return None


def rewrite_assets(doc: dict[str, Any], forms: list[str], to_prefix: str) -> int:
    """Rewrite ``doc['assets']`` hrefs in place; returns how many changed."""
    assets = doc.get("assets")
    if not isinstance(assets, dict):
        return 0
    changed = 0
    for asset in assets.values():
        if isinstance(asset, dict) and isinstance(asset.get("href"), str):
            new = rewrite_href(asset["href"], forms, to_prefix)
            if new is not None:
                asset["href"] = new
                changed += 1
    return changed


# --------------------------------------------------------------------------- database


def _match_sql(href: sql.Composable, forms: list[str]) -> sql.Composable:
    return sql.SQL(" OR ").join(
        sql.SQL("({h} = {f} OR starts_with({h}, {fs}))").format(h=href, f=sql.Literal(f), fs=sql.Literal(f + "/"))
        for f in forms
    )


def _replace_sql(href: sql.Composable, forms: list[str], to_prefix: str) -> sql.Composable:
    whens = sql.SQL(" ").join(
        sql.SQL("WHEN {h} = {f} OR starts_with({h}, {fs}) THEN {to} || substr({h}, {n})").format(
            h=href, f=sql.Literal(f), fs=sql.Literal(f + "/"), to=sql.Literal(to_prefix), n=sql.Literal(len(f) + 1)
        )
        for f in forms
    )
    return sql.SQL("CASE {} ELSE {} END").format(whens, href)


_ASSETS = sql.SQL("(CASE WHEN jsonb_typeof(t.content->'assets') = 'object' THEN t.content->'assets' ELSE '{}'::jsonb END)")
_HREF = sql.SQL("(a.v->>'href')")
_IS_HREF = sql.SQL("jsonb_typeof(a.v) = 'object' AND jsonb_typeof(a.v->'href') = 'string'")


def migrate_table(conn: Any, table: str, key: str, forms: list[str], to_prefix: str, dry_run: bool) -> tuple[int, int]:
    """(rows, assets) under the prefix in ``pgstac.<table>``; rewritten unless ``dry_run``."""
    tbl = sql.Identifier("pgstac", table)
    match = _match_sql(_HREF, forms)
    count = sql.SQL(
        "SELECT count(DISTINCT {key}), count(*) FROM {tbl} t, jsonb_each({assets}) a(k, v) "
        "WHERE {is_href} AND ({match})"
    ).format(key=sql.SQL(key), tbl=tbl, assets=_ASSETS, is_href=_IS_HREF, match=match)
    row = conn.execute(count).fetchone()
    rows, assets = int(row[0]), int(row[1])
    if dry_run or rows == 0:
        return rows, assets
    content = sql.SQL(
        "jsonb_set(t.content, '{{assets}}', ("
        " SELECT jsonb_object_agg(a.k, CASE WHEN {is_href} AND ({match})"
        "   THEN jsonb_set(a.v, '{{href}}', to_jsonb({replace})) ELSE a.v END)"
        " FROM jsonb_each({assets}) a(k, v)))"
    ).format(is_href=_IS_HREF, match=match, replace=_replace_sql(_HREF, forms, to_prefix), assets=_ASSETS)
    if table == "items":
        # A moved href is a metadata update: 'eomatch-query --since last' must see it.
        now_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        content = sql.SQL("jsonb_set({c}, '{{properties,updated}}', to_jsonb({now}::text))").format(
            c=content, now=sql.Literal(now_iso)
        )
    update = sql.SQL(
        "UPDATE {tbl} t SET content = {content}"
        " WHERE EXISTS (SELECT 1 FROM jsonb_each({assets}) a(k, v) WHERE {is_href} AND ({match}))"
    ).format(tbl=tbl, content=content, is_href=_IS_HREF, match=match, assets=_ASSETS)
    updated = conn.execute(update).rowcount
    if updated != rows:
        raise IngestError(f"pgstac.{table}: expected to update {rows} rows, updated {updated}; rolled back")
    return rows, assets


def migrate_database(creds: Any, forms: list[str], to_prefix: str, dry_run: bool, summary: MigrateSummary) -> None:
    """Items and collections in one transaction: all hrefs move, or none."""
    import psycopg

    conn = connect(creds)
    try:
        with conn.transaction():
            conn.execute("SET LOCAL statement_timeout = 0")
            summary.db_items, summary.db_item_assets = migrate_table(
                conn, "items", "(t.collection, t.id)", forms, to_prefix, dry_run
            )
            summary.db_collections, summary.db_collection_assets = migrate_table(
                conn, "collections", "t.id", forms, to_prefix, dry_run
            )
    except psycopg.errors.InsufficientPrivilege as exc:
        raise IngestError(
            f"{creds.user} may not update pgSTAC in {creds.redacted()} ({str(exc).splitlines()[0]}); "
            "use a role in pgstac_ingest or the admin role (--db-user)"
        ) from None
    except psycopg.Error as exc:
        raise IngestError(f"href migration in {creds.redacted()} failed, nothing changed: {str(exc).splitlines()[0]}") from None
    finally:
        conn.close()


# --------------------------------------------------------------------------- files


def migrate_files(
    cat_path: str | Path,
    forms: list[str],
    to_prefix: str,
    dry_run: bool,
    summary: MigrateSummary,
    quiet: bool,
    progress: Progress | None = None,
) -> None:
    """Stream the catalogue's item files; rewrite the ones with an asset under the prefix.

    ``progress`` counts files scanned (its total is set when it has none); without
    one a status line is drawn unless ``quiet``.
    """
    from eomatch.catalogue import MatchupCatalogue

    cat = MatchupCatalogue.open(cat_path)
    summary.catalogue = str(cat.root)
    needles = [f.encode() for f in forms]

    def edit(item: dict[str, Any]) -> None:
        rewrite_assets(item, forms, to_prefix)

    own_progress = progress is None
    if progress is None:
        progress = Progress("migrating hrefs in files", total=cat.count(), unit="files", quiet=quiet)
    elif progress.total is None:
        progress.total = cat.count()
    try:
        for _, path in cat.iter_item_paths():
            summary.files_scanned += 1
            progress.update()
            raw = path.read_bytes()
            if not any(n in raw for n in needles):
                continue
            item = jsonio.read_json(path)
            if not isinstance(item, dict) or item.get("type") != "Feature":
                continue
            n = rewrite_assets(item, forms, to_prefix)
            if n == 0:
                continue
            summary.files += 1
            summary.file_assets += n
            if not dry_run:
                # Re-read and edit under the item's lock: a concurrent writer is not lost.
                cat.update_item(str(item["id"]), edit, collection=item.get("collection"))
        cat.save()
        for col_path in _collection_files(cat):
            doc = jsonio.read_json(col_path)
            n = rewrite_assets(doc, forms, to_prefix) if isinstance(doc, dict) else 0
            if n:
                summary.files += 1
                summary.file_assets += n
                if not dry_run:
                    jsonio.write_json_atomic(col_path, doc)
    finally:
        if own_progress:
            progress.close()
        cat.close()


def _collection_files(cat: Any) -> list[Path]:
    return [p for p in (d / "collection.json" for d in cat.collection_dirs().values()) if p.is_file()]


# --------------------------------------------------------------------------- entry point


def migrate_hrefs(
    settings: Settings,
    from_prefix: str,
    to_prefix: str,
    catalogue: str | Path | None = None,
    dry_run: bool = False,
    db: bool = True,
    db_host: str | None = None,
    db_port: int | None = None,
    db_name: str | None = None,
    db_user: str | None = None,
    db_password: str | None = None,
    quiet: bool = False,
    progress: Progress | None = None,
) -> MigrateSummary:
    """Rewrite asset hrefs under ``from_prefix`` to ``to_prefix`` in pgSTAC and/or files.

    The database target resolves like ``eomatch-ingest`` (flags, ``ingest.*``,
    then the local stack's ingest role, whose ``pgstac_ingest`` membership
    allows UPDATE on items and collections). ``catalogue`` defaults to
    ``matchup_catalogue.path``; with neither a catalogue nor ``db`` nothing runs.
    ``progress`` counts the catalogue's files scanned (see :func:`migrate_files`).
    """
    src = _clean_prefix(from_prefix, "--from")
    dst = _clean_prefix(to_prefix, "--to")
    if src == dst:
        raise ConfigError(f"--from and --to are the same prefix ({src})")
    forms = prefix_forms(src)
    if any(dst == f or dst.startswith(f + "/") for f in forms):
        raise ConfigError(f"--to {dst} lies under --from {src}: a re-run would move it again")
    summary = MigrateSummary(from_prefix=src, to_prefix=dst, dry_run=dry_run)
    t0 = time.monotonic()
    cat_path = catalogue or settings.matchup_catalogue.path
    if cat_path is not None:
        # Before the database changes: a wrong path must not leave the two half-moved.
        from eomatch.catalogue import MatchupCatalogue

        MatchupCatalogue.open(cat_path).close()
    if db:
        creds = resolve_credentials(settings, db_host, db_port, db_name, db_user, db_password)
        summary.target = creds.redacted()
        migrate_database(creds, forms, dst, dry_run, summary)
    if cat_path is not None:
        migrate_files(cat_path, forms, dst, dry_run, summary, quiet, progress)
    summary.seconds = time.monotonic() - t0
    return summary
