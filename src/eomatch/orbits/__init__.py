"""Orbits: TLEs, SGP4 ground tracks, crossover events, solar elevation.

Step 1 of ``eomatch-find``: ``find_crossovers(settings, "S2A", "L9")`` yields
:class:`Crossover` events; ``events_to_rows`` flattens them for CSV/JSON.
"""

from eomatch.orbits.crossovers import (
    EVENT_COLUMNS,
    Crossover,
    CrossoverParams,
    events_to_rows,
    find_crossovers,
    search_constellation,
    search_pair,
)
from eomatch.orbits.propagate import GroundTrack, TrackGrid, ground_track
from eomatch.orbits.sun import solar_elevation_deg
from eomatch.orbits.tle import (
    ElementSet,
    TleError,
    TleSet,
    default_tle_cache_dir,
    fetch_tles,
    find_satellite,
    load_tles,
    load_tles_for,
    tle_search_paths,
)

OrbitEvent = Crossover
"""Alias: the issue calls an event both names."""

__all__ = [
    "EVENT_COLUMNS",
    "Crossover",
    "CrossoverParams",
    "ElementSet",
    "GroundTrack",
    "OrbitEvent",
    "TleError",
    "TleSet",
    "TrackGrid",
    "default_tle_cache_dir",
    "events_to_rows",
    "fetch_tles",
    "find_crossovers",
    "find_satellite",
    "ground_track",
    "load_tles",
    "load_tles_for",
    "search_constellation",
    "search_pair",
    "solar_elevation_deg",
    "tle_search_paths",
]
