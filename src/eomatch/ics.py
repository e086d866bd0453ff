"""Campaign planning: site pairs as an iCalendar (RFC 5545) file for a field team.

One VEVENT per site pair (a pass of each satellite over one site within the time
threshold): SUMMARY names the site and both satellites, DTSTART/DTEND span both pass
times, DESCRIPTION gives both times and the time difference, LOCATION and GEO the
site. The UID is derived from the site, the platforms and the pass time (see
:attr:`~eomatch.orbits.site_passes.SitePair.uid`), so importing a newer prediction
updates the calendar's events instead of adding copies. The ``icalendar`` library
writes the file (CRLF lines, folding at 75 octets, escaping).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from icalendar import Calendar, Event, vGeo

from eomatch.orbits.propagate import from_unix_s
from eomatch.orbits.site_passes import SitePair

PRODID = "-//eomatch//calibration site passes//EN"


def _iso(t_s: float) -> str:
    return from_unix_s(t_s).isoformat().replace("+00:00", "Z")


def site_pair_event(pair: SitePair, site_lat_lon: tuple[float, float] | None, stamp: datetime) -> Event:
    """The VEVENT of one site pair (``stamp``: when the calendar is written, DTSTAMP)."""
    first, last = sorted((pair.time_a_s, pair.time_b_s))
    minutes = abs(pair.time_diff_s) / 60.0
    ev = Event()
    ev.add("uid", pair.uid)
    ev.add("dtstamp", stamp)
    ev.add("dtstart", from_unix_s(first))
    ev.add("dtend", from_unix_s(last) if last > first else from_unix_s(last) + timedelta(seconds=1))
    ev.add("summary", f"{pair.site}: {pair.platform_a} × {pair.platform_b} (Δt {minutes:.0f} min)")
    ev.add("description", "\n".join([
        f"{pair.platform_a} over {pair.site} at {_iso(pair.time_a_s)} "
        f"(nadir {pair.distance_a_km:.1f} km from the site, sun {pair.solar_elevation_a_deg:.1f}° high)",
        f"{pair.platform_b} over {pair.site} at {_iso(pair.time_b_s)} "
        f"(nadir {pair.distance_b_km:.1f} km from the site, sun {pair.solar_elevation_b_deg:.1f}° high)",
        f"Time difference: {pair.time_diff_s:+.0f} s ({pair.platform_b} after {pair.platform_a})",
        "Predicted by eomatch-find from TLEs: refresh them (eomatch-tle fetch) and re-import before the day.",
    ]))  # fmt: skip
    ev.add("location", pair.site)
    if site_lat_lon is not None:
        ev.add("geo", vGeo(site_lat_lon))
    ev.add("categories", ["Calibration", pair.site])
    ev.add("transp", "TRANSPARENT")
    return ev


def site_pairs_calendar(
    pairs: Iterable[SitePair],
    site_positions: dict[str, tuple[float, float]] | None = None,
    now: datetime | None = None,
) -> Calendar:
    """A calendar of site pairs (a pair reported twice is written once, by UID).

    ``site_positions``: ``{name: (lat, lon)}`` for GEO; ``now`` is DTSTAMP (default: the
    current time, as RFC 5545 asks).
    """
    stamp = now or datetime.now(UTC)
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", "eomatch calibration site passes")
    seen: set[str] = set()
    for pair in sorted(pairs, key=lambda p: (p.time_a_s, p.site)):
        if pair.uid in seen:
            continue
        seen.add(pair.uid)
        pos = (site_positions or {}).get(pair.site)
        cal.add_component(site_pair_event(pair, pos, stamp))
    return cal
