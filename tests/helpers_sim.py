"""The simulated scenario the find and simulate tests share: six hours of 2022-05-21 over
the USA, where Sentinel-2A and Landsat-9 pass close enough for matchups, and the archive
:func:`eomatch.simulate.simulate_archive` makes for it."""

from __future__ import annotations

from pathlib import Path

from pyproj import Geod

from eomatch.simulate import simulate_archive

START = "2022-05-21T14:00:00Z"
END = "2022-05-21T20:00:00Z"
BBOX = (-125.0, 30.0, -70.0, 45.0)
GEOD = Geod(ellps="WGS84")


def scenario_archive(folder: Path, platforms: list[str]) -> Path:
    """The simulated provider archive of ``platforms`` (names or aliases) over the scenario."""
    return simulate_archive(folder, platforms, START, END, bbox=BBOX)
