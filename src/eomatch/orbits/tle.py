"""TLE files: read them, pick the element set nearest in time, fetch fresh ones.

A satellite's orbit over a year is described by many element sets (several a
day); propagating each time with the set whose epoch is nearest keeps errors at
the kilometre level. Files are matched to satellites by the NORAD id on line 1,
so their names do not matter and one file may hold several satellites.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sgp4.api import Satrec

from eomatch.errors import ConfigError, EomatchError, network_reason
from eomatch.platforms import find_platform

if TYPE_CHECKING:
    from eomatch.settings import SatelliteSpec, Settings

log = logging.getLogger(__name__)

JD_UNIX_EPOCH = 2440587.5
"""Julian date of 1970-01-01T00:00:00 UTC."""
TLE_SUFFIXES = (".tle", ".txt", ".3le", ".2le")
PACKAGED_TLE_DIR = Path(__file__).resolve().parent.parent / "data" / "tle"


class TleError(EomatchError):
    """A TLE file is malformed or element sets could not be fetched."""


@dataclass(frozen=True)
class ElementSet:
    """One two-line element set (with its optional name line)."""

    norad_id: int
    epoch_s: float
    """Epoch as UNIX seconds (UTC)."""
    line1: str
    line2: str
    name: str = ""

    @property
    def epoch(self) -> datetime:
        return datetime.fromtimestamp(self.epoch_s, tz=UTC)

    def text(self) -> str:
        """Three-line (or two-line when unnamed) text, newline-terminated."""
        head = f"{self.name}\n" if self.name else ""
        return f"{head}{self.line1}\n{self.line2}\n"


def _checksum_ok(line: str) -> bool:
    if len(line) < 69 or not line[68].isdigit():
        return True  # some sources strip checksums; sgp4 still parses the line
    head = line[:68]
    total = sum(map(int, filter(str.isdigit, head))) + head.count("-")
    return total % 10 == int(line[68])


def parse_tle_text(text: str, source: str = "<text>") -> list[ElementSet]:
    """Parse two- or three-line element sets; a malformed set names file and line."""
    sets: list[ElementSet] = []
    lines = [ln.rstrip() for ln in text.splitlines()]
    i = 0
    name = ""
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if line.startswith("1 ") and i + 1 < len(lines) and lines[i + 1].startswith("2 "):
            line1, line2 = line, lines[i + 1]
            lineno = i + 1
            if not (_checksum_ok(line1) and _checksum_ok(line2)):
                raise TleError(f"bad TLE checksum in {source} line {lineno}")
            try:
                sat = Satrec.twoline2rv(line1, line2)
            except (ValueError, IndexError) as exc:
                raise TleError(f"malformed TLE in {source} line {lineno}: {exc}") from None
            try:
                norad = int(line1[2:7])
            except ValueError:
                norad = int(sat.satnum)
            epoch_s = ((sat.jdsatepoch - JD_UNIX_EPOCH) + sat.jdsatepochF) * 86400.0
            sets.append(ElementSet(norad, float(epoch_s), line1, line2, name))
            name = ""
            i += 2
            continue
        if line.startswith(("1 ", "2 ")):
            raise TleError(
                f"malformed TLE in {source} line {i + 1}: line 1 and line 2 must follow each other"
            )
        name = line.strip()
        if name.startswith("0 "):
            name = name[2:].strip()
        i += 1
    return sets


def read_tle_file(path: str | Path) -> list[ElementSet]:
    """Element sets of one file, in file order."""
    p = Path(path)
    try:
        text = p.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise TleError(f"cannot read TLE file {p}: {exc.strerror}") from None
    return parse_tle_text(text, str(p))


def iter_tle_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files named directly, and TLE-looking files inside folders (recursively, sorted).

    A file reached twice (a folder and a file in it, or repeated paths) is read once.
    """
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_file():
            candidates = [p]
        elif p.is_dir():
            candidates = [
                c for c in sorted(p.rglob("*")) if c.is_file() and c.suffix.lower() in TLE_SUFFIXES
            ]
        else:
            candidates = []
        for c in candidates:
            key = c.resolve()
            if key not in seen:
                seen.add(key)
                yield c


@dataclass
class TleSet:
    """All element sets of one satellite, sorted by epoch, duplicates removed.

    ``nearest`` picks, for each time, the set whose epoch is nearest; when that is
    more than ``max_age_days`` away a warning is logged once per gap.
    """

    satellite: SatelliteSpec
    element_sets: list[ElementSet]
    sources: list[Path] = field(default_factory=list)
    max_age_days: float = 3.0
    epochs_s: np.ndarray = field(init=False, repr=False)
    satrecs: list[Satrec] = field(init=False, repr=False)
    _midpoints: np.ndarray = field(init=False, repr=False)
    _warned: set[tuple[int, int]] = field(init=False, repr=False, default_factory=set)

    def __post_init__(self) -> None:
        # Same epoch twice: keep the set read last (files are read in path order).
        by_epoch: dict[float, ElementSet] = {}
        for es in self.element_sets:
            by_epoch[es.epoch_s] = es
        self.element_sets = [by_epoch[k] for k in sorted(by_epoch)]
        if not self.element_sets:
            raise ConfigError(f"no element sets for {self.satellite.name}")
        self.epochs_s = np.array([es.epoch_s for es in self.element_sets], dtype=np.float64)
        self.satrecs = [Satrec.twoline2rv(es.line1, es.line2) for es in self.element_sets]
        self._midpoints = 0.5 * (self.epochs_s[1:] + self.epochs_s[:-1])

    @property
    def name(self) -> str:
        return self.satellite.name

    @property
    def norad_id(self) -> int:
        return self.satellite.norad_id

    @property
    def mean_motion_rev_per_day(self) -> float:
        return float(self.satrecs[len(self.satrecs) // 2].no_kozai * 1440.0 / (2 * np.pi))

    @property
    def period_s(self) -> float:
        """Orbital period, for scaling gaps between overpasses."""
        return 86400.0 / self.mean_motion_rev_per_day

    def nearest(self, times_s: np.ndarray, warn: bool = True) -> np.ndarray:
        """Index of the nearest-epoch element set for each time (vectorised)."""
        t = np.asarray(times_s, dtype=np.float64)
        idx = np.searchsorted(self._midpoints, t, side="left")
        if warn:
            self._warn_stale(t, idx)
        return idx

    def _warn_stale(self, t: np.ndarray, idx: np.ndarray) -> None:
        if t.size == 0:
            return
        age_s = t - self.epochs_s[idx]
        stale = np.abs(age_s) > self.max_age_days * 86400.0
        if not stale.any():
            return
        # A gap is identified by the pair of epochs around it (-1/len for the ends).
        lower = np.where(age_s >= 0, idx, idx - 1)
        keys = np.unique(lower[stale])
        n = len(self.epochs_s)
        for k in keys.tolist():
            key = (self.norad_id, k)
            if key in self._warned:
                continue
            self._warned.add(key)
            sel = stale & (lower == k)
            worst_days = float(np.abs(age_s[sel]).max() / 86400.0)
            t0 = datetime.fromtimestamp(float(t[sel].min()), tz=UTC).isoformat()
            t1 = datetime.fromtimestamp(float(t[sel].max()), tz=UTC).isoformat()
            before = self.element_sets[k].epoch.isoformat() if k >= 0 else "none"
            after = self.element_sets[k + 1].epoch.isoformat() if k + 1 < n else "none"
            log.warning(
                "%s (NORAD %d): nearest TLE is %.1f days away for %s..%s "
                "(epochs around the gap: %s, %s; limit %.1f days)",
                self.name,
                self.norad_id,
                worst_days,
                t0,
                t1,
                before,
                after,
                self.max_age_days,
            )

    def covers(self, start_s: float, end_s: float) -> bool:
        """True when no time in [start, end] is farther than the age limit from an epoch."""
        probe = np.linspace(start_s, end_s, num=max(2, int((end_s - start_s) // 3600) + 2))
        idx = self.nearest(probe, warn=False)
        return bool((np.abs(probe - self.epochs_s[idx]) <= self.max_age_days * 86400.0).all())


def find_satellite(name: str, satellites: Sequence[SatelliteSpec]) -> SatelliteSpec:
    """Registry lookup by canonical name or alias, case-insensitive (ConfigError if unknown)."""
    sat = find_platform(name, satellites)
    if sat is not None:
        return sat
    known = ", ".join(s.name for s in satellites) or "(none)"
    raise ConfigError(f"unknown platform '{name}'; known platforms: {known}")


def default_tle_cache_dir(settings: Settings) -> Path:
    """Where ``eomatch-tle fetch`` writes: ``tle_cache_dir`` or ``<state_dir>/tle``."""
    if settings.tle_cache_dir is not None:
        return Path(settings.tle_cache_dir).expanduser()
    return Path(settings.stack.state_dir) / "tle"


def tle_search_paths(settings: Settings) -> list[Path]:
    """Configured paths, then the fetch cache, then the packaged 2022 histories."""
    paths = [Path(p).expanduser() for p in settings.tle_paths]
    cache = default_tle_cache_dir(settings)
    if cache.is_dir():
        paths.append(cache)
    paths.append(PACKAGED_TLE_DIR)
    return paths


def load_tles(
    paths: Iterable[str | Path],
    satellites: Sequence[SatelliteSpec],
    platforms: Iterable[str] | None = None,
    max_age_days: float = 3.0,
) -> dict[str, TleSet]:
    """Read TLE files/folders and group their sets by registry satellite.

    Returns ``{canonical name: TleSet}`` for every registry satellite found, or
    only for ``platforms`` when given; each of those must resolve in the registry
    and have at least one set, else :class:`ConfigError`. Sets of other NORAD ids
    are ignored.
    """
    path_list = [Path(p).expanduser() for p in paths]
    by_norad = {s.norad_id: s for s in satellites}
    wanted = [find_satellite(p, satellites) for p in platforms or ()]
    if platforms is not None:
        by_norad = {s.norad_id: s for s in wanted}
    found: dict[int, list[ElementSet]] = {}
    sources: dict[int, list[Path]] = {}
    named_files = {p.resolve() for p in path_list if p.is_file()}
    for f in iter_tle_files(path_list):
        element_sets = read_tle_file(f)
        if not element_sets and f.resolve() in named_files:
            # A file named on purpose that holds no TLE is a mistake (wrong file, an
            # HTML error page saved as .tle); silently using other TLEs would hide it.
            raise TleError(f"{f} holds no two-line element sets")
        for es in element_sets:
            if es.norad_id not in by_norad:
                continue
            found.setdefault(es.norad_id, []).append(es)
            src = sources.setdefault(es.norad_id, [])
            if not src or src[-1] != f:
                src.append(f)
    out = {
        by_norad[norad].name: TleSet(by_norad[norad], sets, sources[norad], max_age_days)
        for norad, sets in found.items()
    }
    for sat in wanted:
        if sat.name not in out:
            searched = ", ".join(str(p) for p in path_list) or "(no paths)"
            raise ConfigError(
                f"no TLE for platform {sat.name} (NORAD {sat.norad_id}) in: {searched}"
            )
    return out


def load_tles_for(settings: Settings, platforms: Iterable[str]) -> dict[str, TleSet]:
    """``load_tles`` with the settings' search paths, registry and age limit."""
    return load_tles(
        tle_search_paths(settings), settings.satellites, platforms, settings.tle_max_age_days
    )


# --- fetching -----------------------------------------------------------------


@dataclass(frozen=True)
class FetchResult:
    norad_id: int
    path: Path
    new_sets: int
    total_sets: int


def merge_element_sets(existing: list[ElementSet], new: list[ElementSet]) -> list[ElementSet]:
    """Existing sets plus new ones not already present (same line 1 or same epoch), by epoch."""
    seen_lines = {es.line1 for es in existing}
    seen_epochs = {(es.norad_id, es.epoch_s) for es in existing}
    merged = list(existing)
    for es in new:
        if es.line1 in seen_lines or (es.norad_id, es.epoch_s) in seen_epochs:
            continue
        merged.append(es)
        seen_lines.add(es.line1)
        seen_epochs.add((es.norad_id, es.epoch_s))
    merged.sort(key=lambda es: (es.norad_id, es.epoch_s))
    return merged


def fetch_tles(
    norad_ids: Iterable[int],
    out_dir: str | Path,
    url: str,
    timeout_s: float = 30.0,
    retries: int = 3,
    backoff_s: float = 0.5,
) -> list[FetchResult]:
    """Download current element sets from CelesTrak's GP service into ``out_dir``.

    Each NORAD id has one file ``<id>.tle``; new sets are appended (deduplicated)
    and the file is replaced atomically, so re-runs are safe. Requests follow
    eomatch's retry policy (:func:`eomatch.http.retry_policy`: 429/5xx and dropped
    connections are retried ``retries`` times); a host that cannot be reached at
    all fails at once.
    """
    import requests
    from filelock import FileLock

    from eomatch.http import RETRY_STATUSES, mount_retries, retry_policy, session_with_retries
    from eomatch.jsonio import write_bytes_atomic

    out = Path(out_dir).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TleError(f"cannot create TLE cache {out}: {exc.strerror}") from None
    results: list[FetchResult] = []
    reached = False
    with session_with_retries(retry_policy(retries, backoff_s, connect=False)) as session:
        for norad in norad_ids:
            try:
                resp = session.get(url, params={"CATNR": str(norad), "FORMAT": "TLE"}, timeout=timeout_s)
            except requests.RequestException as exc:
                raise TleError(f"cannot reach {url} for NORAD {norad}: {network_reason(exc)}") from None
            if not reached:  # it answered: from now on dropped connections are retried too
                mount_retries(session, retry_policy(retries, backoff_s))
                reached = True
            if resp.status_code != 200:
                tries = f" after {retries + 1} attempts" if retries > 0 and resp.status_code in RETRY_STATUSES else ""
                raise TleError(f"{url} answered HTTP {resp.status_code}{tries} for NORAD {norad}")
            try:
                new = parse_tle_text(resp.text, f"{url}?CATNR={norad}")
            except TleError as exc:
                raise TleError(f"bad answer from {url} for NORAD {norad}: {exc}") from None
            new = [es for es in new if es.norad_id == norad]
            if not new:
                first = resp.text.strip().splitlines()[0][:80] if resp.text.strip() else "empty"
                raise TleError(f"no element set for NORAD {norad} from {url} ({first})")
            path = out / f"{norad}.tle"
            with FileLock(str(path) + ".lock"):
                existing = read_tle_file(path) if path.exists() else []
                merged = merge_element_sets(existing, new)
                added = len(merged) - len(existing)
                if added:
                    data = "".join(es.text() for es in merged).encode("ascii")
                    write_bytes_atomic(path, data)
            results.append(FetchResult(norad, path, added, len(merged)))
    return results
