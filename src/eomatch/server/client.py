"""The pgSTAC core client of both APIs: stac-fastapi-pgstac's, with 3D bboxes answered.

pgSTAC 0.10 fails on a 6-number bbox ("Unknown geometry type: PolyhedralSurface");
the STAC API spec allows one, and items have no height, so a 3D bbox is answered
by its horizontal extent. Done once, on the parsed search request that GET
``/search``, POST ``/search`` and ``/collections/{id}/items`` all end in, rather
than by rewriting query strings and bodies on the way in.
"""

from __future__ import annotations

from collections.abc import Sequence


def flatten_bbox(values: Sequence[float]) -> list[float]:
    """A 3D bbox [w, s, zmin, e, n, zmax] as the 2D one the catalogue is indexed on."""
    if len(values) == 6:
        return [values[0], values[1], values[3], values[4]]
    return list(values)


def client_class() -> type:
    """stac-fastapi-pgstac's ``CoreCrudClient`` with :func:`flatten_bbox` on every search
    (imported late: the server extra is only needed where the APIs run)."""
    from stac_fastapi.pgstac.core import CoreCrudClient

    class EomatchCrudClient(CoreCrudClient):  # type: ignore[misc]
        """pgSTAC client that answers 3D bbox searches by their 2D footprint."""

        async def _search_base(self, search_request, request):  # type: ignore[no-untyped-def]
            bbox = getattr(search_request, "bbox", None)
            if bbox is not None and len(bbox) == 6:
                search_request = search_request.model_copy(update={"bbox": tuple(flatten_bbox(list(bbox)))})
            return await super()._search_base(search_request, request)

    return EomatchCrudClient
