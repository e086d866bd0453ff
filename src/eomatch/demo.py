"""``eomatch-stack up --demo``: a small matchup catalogue from a simulated archive, ingested.

Sentinel-2A x Landsat-9 over the contiguous US around 2022-05-21, when the two
flew nearly the same ground track ~17-21 minutes apart: a few events, tens of
matchups. Steps, all re-run safe (deterministic ids, upserts):

1. :func:`eomatch.simulate.simulate_archive` writes provider-like items along the
   real 2022 ground tracks to ``<state_dir>/demo/archive``;
2. :func:`eomatch.find.find` runs with the providers pointed at that archive,
   into ``<state_dir>/demo/catalogue``;
3. :func:`eomatch.ingest.ingest` pushes the catalogue into the running stack; with the
   proxy's ``/assets/`` over the catalogue (:func:`demo_stack_settings`), the
   quicklooks' relative hrefs become URLs there, which the external API shows.
"""

from __future__ import annotations

from pathlib import Path

from eomatch.errors import EomatchError
from eomatch.settings import Settings

DEMO_PLATFORMS = ("Sentinel-2A", "Landsat-9")
DEMO_START = "2022-05-20T00:00:00Z"
DEMO_END = "2022-05-23T00:00:00Z"
DEMO_BBOX = (-125.0, 32.0, -70.0, 42.0)
"""west, south, east, north: a band across the contiguous US."""
DEMO_MIN_OVERLAP_FRACTION = 0.25


class DemoError(EomatchError):
    """The demo catalogue could not be built."""


def demo_dir(settings: Settings) -> Path:
    return Path(settings.stack.state_dir) / "demo"


def demo_stack_settings(settings: Settings) -> Settings:
    """``settings`` for ``eomatch-stack up --demo``: without a ``stack.proxy.assets_root``,
    the demo catalogue's folder (created, world-readable for nginx's worker) becomes it, so
    its quicklooks are served at ``/assets/``; a configured one is kept as it is."""
    if settings.stack.proxy.assets_root is not None:
        return settings
    catalogue = demo_dir(settings) / "catalogue"
    for folder in (settings.stack.state_dir, demo_dir(settings), catalogue):
        Path(folder).mkdir(parents=True, exist_ok=True)
        Path(folder).chmod(0o755)
    proxy = settings.stack.proxy.model_copy(update={"assets_root": catalogue})
    return settings.model_copy(update={"stack": settings.stack.model_copy(update={"proxy": proxy})})


def demo_assets_base_url(settings: Settings, catalogue: Path) -> str | None:
    """Where the proxy serves ``catalogue``'s files: ``{public URL}/assets/{path under
    stack.proxy.assets_root}``, or None when the assets root does not hold it."""
    root = settings.stack.proxy.assets_root
    if root is None:
        return None
    try:
        rel = catalogue.resolve().relative_to(Path(root).resolve())
    except ValueError:
        return None
    proxy = settings.stack.proxy
    base = (settings.stack.public_url or f"http://{proxy.host}:{proxy.port}").rstrip("/")
    return f"{base}/assets/{rel.as_posix()}/".replace("/./", "/")


def demo_settings(settings: Settings, archive: str | Path, catalogue: str | Path) -> Settings:
    """A copy of ``settings`` with the demo's search keys and providers on the simulated archive."""
    from eomatch.simulate import simulated_providers

    west, south, east, north = DEMO_BBOX
    find = {
        **settings.find.model_dump(mode="json"),
        "platforms": list(DEMO_PLATFORMS),
        "pairs": [],
        "collections": [],
        "start_time": DEMO_START,
        "end_time": DEMO_END,
        "min_lat": south,
        "max_lat": north,
        "min_lon": west,
        "max_lon": east,
        "min_overlap_fraction": DEMO_MIN_OVERLAP_FRACTION,
    }
    update = {
        "find": find,
        "matchup_catalogue": {**settings.matchup_catalogue.model_dump(), "path": str(catalogue),
                              "title": "eomatch demo: simulated Sentinel-2A x Landsat-9 matchups"},
    }
    data = settings.model_dump(mode="json", exclude={"config_file"})
    data.update(update)
    out = Settings.model_validate(data)
    return out.model_copy(update={"providers": simulated_providers(out, archive, DEMO_PLATFORMS)})


def load_demo(settings: Settings, quiet: bool = False) -> str:
    """Simulate, find and ingest the demo into the running stack; a one-line summary back."""
    from eomatch.find import find
    from eomatch.ingest import ingest
    from eomatch.simulate import simulate_archive

    root = demo_dir(settings)
    west, south, east, north = DEMO_BBOX
    archive = simulate_archive(
        root / "archive", DEMO_PLATFORMS, DEMO_START, DEMO_END,
        bbox=(west, south, east, north), settings=settings, quiet=quiet,
    )
    run = demo_settings(settings, archive, root / "catalogue")
    found = find(run, quiet=quiet)
    if found.failures:
        raise DemoError(f"demo search failed: {found.failures[0]}")
    pushed = ingest(
        run, catalogue=root / "catalogue", quiet=quiet,
        assets_base_url=demo_assets_base_url(settings, root / "catalogue"),
    )
    return f"demo: {found.line()}; {pushed.line()}"
