"""STAC core and ``matchup:`` schema checks of items on their way into the database.

Items that break STAC core load into pgSTAC without complaint and then fail on
every API that serves them, so ``eomatch-ingest`` checks each item it sends:

* the official STAC 1.1.0 item schema with the GeoJSON schemas it refers to,
  from the copies pystac ships (no network: references outside them fail at
  compile time instead of being fetched);
* eomatch's ``matchup:`` schema, for items that list it in ``stac_extensions``
  (as STAC validators apply extension schemas). Other extensions are not checked:
  their schemas are not available offline.

The schemas are compiled once with jsonschema-rs: about 90,000 items/s here,
against 10,000 with fastjsonschema and 450 with jsonschema (5,000 synthetic
matchup items), so checking does not slow an ingest of ~10,000 items/s much.

Known defects of older eomatch catalogues are repaired first (:func:`repair_legacy`)
and the repairs named, so a run can count them.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

from eomatch.model import MatchupError, to_utc
from eomatch.schema import SCHEMA_URL, load_schema

STAC_VERSION = "1.1.0"
ITEM_SCHEMA_URL = f"https://schemas.stacspec.org/v{STAC_VERSION}/item-spec/json-schema/item.json"
_MAX_MESSAGE = 160
"""Characters of a schema message kept (some quote the whole offending value)."""


def repair_legacy(item: dict[str, Any]) -> list[str]:
    """Repair, in place, the defects eomatch 0.2 catalogues are known to have; what was done.

    * ``end_datetime`` without ``start_datetime`` (eomatch 0.2 matchups and events):
      STAC requires both or neither. The start is the item's ``datetime``.
    * ``stac_version`` 1.0.0: raised to 1.1.0 with pystac's migration (license
      ``various``/``proprietary`` become ``other``), as pystac does when it reads one.
    """
    done: list[str] = []
    props = item.get("properties")
    if isinstance(props, dict):
        start, end, when = props.get("start_datetime"), props.get("end_datetime"), props.get("datetime")
        if start is None and isinstance(end, str) and isinstance(when, str) and _not_after(when, end):
            props["start_datetime"] = when
            done.append("start_datetime added from datetime")
    if item.get("stac_version") == "1.0.0":
        item["stac_version"] = STAC_VERSION
        if isinstance(props, dict) and props.get("license") in ("various", "proprietary"):
            props["license"] = "other"
        done.append("stac_version 1.0.0 raised to 1.1.0")
    return done


def _not_after(a: str, b: str) -> bool:
    try:
        return to_utc(a) <= to_utc(b)
    except (ValueError, MatchupError):
        return False


def official_schemas() -> dict[str, dict[str, Any]]:
    """URL -> schema of STAC 1.1.0 and GeoJSON, from the copies pystac ships.

    The files are read where pystac installed them, under the URLs pystac's own
    ``get_local_schema_cache`` gives them, without importing pystac (0.2 s).
    """
    spec = importlib.util.find_spec("pystac")
    if spec is None or spec.origin is None:
        raise RuntimeError("pystac is not installed: its STAC schemas are needed")
    base = Path(spec.origin).parent / "validation" / "jsonschemas"
    out: dict[str, dict[str, Any]] = {}
    for path in sorted((base / "stac-spec" / f"v{STAC_VERSION}").glob("*.json")):
        name = path.stem
        kind = name if name in ("catalog", "collection", "item") else "item"
        out[f"https://schemas.stacspec.org/v{STAC_VERSION}/{kind}-spec/json-schema/{name}.json"] = json.loads(
            path.read_text(encoding="utf-8")
        )
    for path in sorted((base / "geojson").glob("*.json")):
        out[f"https://geojson.org/schema/{path.name}"] = json.loads(path.read_text(encoding="utf-8"))
    return out


class ItemValidator:
    """The compiled schemas; :meth:`problem` names the first rule an item breaks."""

    def __init__(self) -> None:
        import jsonschema_rs

        schemas = official_schemas()
        schemas[SCHEMA_URL] = load_schema()
        registry = jsonschema_rs.Registry(list(schemas.items()))

        def compile_(schema: dict[str, Any]) -> Any:
            return jsonschema_rs.Draft7Validator(schema, registry=registry, validate_formats=True, offline=True)

        self._core = compile_(schemas[ITEM_SCHEMA_URL])
        self._matchup = compile_(schemas[SCHEMA_URL])
        # Both in one pass for the common case (each call converts the whole item);
        # the matchup schema applies to items that list it, as for any extension.
        self._both = compile_(
            {
                "allOf": [
                    {"$ref": ITEM_SCHEMA_URL},
                    {
                        "if": {"properties": {"stac_extensions": {"type": "array", "contains": {"const": SCHEMA_URL}}}},
                        "then": {"$ref": SCHEMA_URL},
                    },
                ]
            }
        )

    def problem(self, item: dict[str, Any]) -> str | None:
        """The first rule ``item`` breaks, one line (``None`` when it is valid).

        ``item`` is checked as the APIs serve it: stac-fastapi adds the
        ``collection`` link the database copy lacks, so one is assumed here.
        """
        if item.get("stac_version") != STAC_VERSION:
            return f"stac_version {item.get('stac_version')!r}: only {STAC_VERSION} (or 1.0.0, raised) is accepted"
        links = item.get("links")
        stub = isinstance(links, list) and isinstance(item.get("collection"), str)
        if stub:
            links.append({"rel": "collection", "href": "collection.json"})  # type: ignore[union-attr]
        try:
            if not self._both.is_valid(item):
                if not self._core.is_valid(item):
                    return _describe(self._core, item, "STAC core")
                return _describe(self._matchup, item, "matchup schema")
        finally:
            if stub:
                links.pop()  # type: ignore[union-attr]
        return _datetime_order(item)


def _describe(validator: Any, item: dict[str, Any], which: str) -> str:
    error = next(iter(validator.iter_errors(item)), None)
    if error is None:  # is_valid and iter_errors disagree: never seen, but stay one line
        return f"breaks the {which}"
    where = "/".join(str(p) for p in error.instance_path) or "(item)"
    message = " ".join(str(error.message).split())
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return f"{which} at {where}: {message}"


def _datetime_order(item: dict[str, Any]) -> str | None:
    """A range that ends before it starts is valid JSON Schema but no search can find it."""
    props = item.get("properties") or {}
    start, end = props.get("start_datetime"), props.get("end_datetime")
    if not (isinstance(start, str) and isinstance(end, str)):
        return None
    if len(start) == len(end) and start[-1] == end[-1] == "Z":
        # Same RFC 3339 layout in UTC (the schema checked the format): text order is time order.
        return None if start <= end else f"start_datetime {start} is after end_datetime {end}"
    if not _not_after(start, end):
        return f"start_datetime {start} is after end_datetime {end}"
    return None


@functools.cache
def item_validator() -> ItemValidator:
    """One compiled validator per process."""
    return ItemValidator()
