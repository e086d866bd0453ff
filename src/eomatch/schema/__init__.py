"""JSON Schema of the ``matchup:`` fields, loaded from the package and checked offline."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from eomatch.errors import CatalogueError

SCHEMA_URL = "https://eomatch.example/schema/matchup/v1.0.0/schema.json"
"""``$id`` of the schema; every eomatch item lists it in ``stac_extensions``."""


class SchemaValidationError(CatalogueError):
    """An item does not follow the ``matchup:`` schema."""


@functools.cache
def load_schema() -> dict[str, Any]:
    """The schema as a dict (read once from the installed package)."""
    text = resources.files(__package__).joinpath("matchup.json").read_text(encoding="utf-8")
    return json.loads(text)


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
