"""JSON Schema of the ``matchup:`` fields, loaded from the package and checked offline."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from eomatch.errors import CatalogueError

SCHEMA_URL = "https://eomatch.example/schema/matchup/v1.0.0/schema.json"
"""Canonical ``$id`` of the schema; every item eomatch writes lists it in
``stac_extensions``. The host does not exist (``.example``): catalogue files are
written before any server is known, and the APIs answer with
:func:`served_schema_url` instead, a URL their own stack serves."""

SCHEMA_PATH = "/schemas/matchup/v1.0.0/schema.json"
"""Where a stack serves the schema, under its public base URL (both APIs' responses
point there, so validators can fetch it without reaching another host)."""


class SchemaValidationError(CatalogueError):
    """An item does not follow the ``matchup:`` schema."""


@functools.cache
def load_schema() -> dict[str, Any]:
    """The schema as a dict (read once from the installed package)."""
    text = resources.files(__package__).joinpath("matchup.json").read_text(encoding="utf-8")
    return json.loads(text)


def served_schema_url(base_url: str) -> str:
    """The schema's URL on a stack reached at ``base_url`` (``scheme://host[:port]``)."""
    return base_url.rstrip("/") + SCHEMA_PATH


def served_schema(base_url: str) -> dict[str, Any]:
    """The schema as a stack serves it: its ``$id`` is the URL it is served at, so a
    validator resolves its ``#/definitions`` refs against that URL, not the canonical one."""
    return {**load_schema(), "$id": served_schema_url(base_url)}


def register_with_pystac() -> None:
    """Let ``pystac``'s ``validate()`` check eomatch files offline: the canonical URL
    (whose host does not exist) answers from the packaged schema.

    Not done on import: building pystac's validator costs ~70 ms that most
    eomatch commands never need.
    """
    from pystac.validation import RegisteredValidator

    cache = getattr(RegisteredValidator.get_validator(), "schema_cache", None)
    if isinstance(cache, dict):
        cache.setdefault(SCHEMA_URL, load_schema())


def _inline_refs(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if len(node) == 1 and isinstance(ref, str) and ref.startswith("#/definitions/"):
            return _inline_refs(definitions[ref.rsplit("/", 1)[-1]], definitions)
        return {k: _inline_refs(v, definitions) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, definitions) for v in node]
    return node


@functools.cache
def _validator() -> Any:
    """Draft 7 validator over the schema with local $refs inlined (twice as fast)."""
    from jsonschema import Draft7Validator, FormatChecker

    schema = load_schema()
    Draft7Validator.check_schema(schema)
    defs = schema.get("definitions", {})
    flat = _inline_refs({k: v for k, v in schema.items() if k != "definitions"}, defs)
    return Draft7Validator(flat, format_checker=FormatChecker())


def iter_errors(item: dict[str, Any]) -> list[str]:
    """Every problem of ``item`` as ``path: message`` strings (empty when valid)."""
    out = []
    for err in sorted(_validator().iter_errors(item), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in err.absolute_path) or "(item)"
        out.append(f"{where}: {err.message}")
    return out


def validate_item(item: dict[str, Any]) -> None:
    """Raise :class:`SchemaValidationError` naming the item and its first problem."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator().iter_errors(item))
    if error is None:
        return
    where = ".".join(str(p) for p in error.absolute_path) or "(item)"
    item_id = item.get("id", "?") if isinstance(item, dict) else "?"
    raise SchemaValidationError(f"item {item_id!r} breaks the matchup schema at {where}: {error.message}")
