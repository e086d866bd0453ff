"""TLE files: parsing, nearest-epoch choice, staleness warnings, registry, fetching."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import numpy as np
import pytest

from eomatch.errors import ConfigError
from eomatch.orbits.tle import (
    PACKAGED_TLE_DIR,
    TleError,
    TleSet,
    fetch_tles,
    find_satellite,
    load_tles,
    parse_tle_text,
    read_tle_file,
)
from eomatch.settings import SatelliteSpec, load_settings

SATS = load_settings(None, {}, environ={}).satellites
S2A_FILE = PACKAGED_TLE_DIR / "sentinel-2a-2022.tle"
L9_FILE = PACKAGED_TLE_DIR / "landsat-9-2022.tle"


def _raw_sets(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text().splitlines()
    return [(lines[i + 1], lines[i + 2]) for i in range(0, len(lines) - 2, 3)]


def test_parse_reads_every_set_with_its_norad_id_and_epoch() -> None:
    sets = read_tle_file(S2A_FILE)
    raw = _raw_sets(S2A_FILE)
    assert len(sets) == len(raw)
    assert {s.norad_id for s in sets} == {40697}
    first = sets[0]
    assert first.name == "SENTINEL-2A"
    # Epoch field 22001.13061007 = 2022-01-01 + 0.13061007 days.
    assert first.epoch.isoformat().startswith("2022-01-01T03:08:04")
    assert first.line1 == raw[0][0]


def test_duplicate_epochs_are_removed_keeping_the_last_read() -> None:
    sets = read_tle_file(L9_FILE)
    epochs = [s.epoch_s for s in sets]
    assert len(set(epochs)) < len(epochs), "the 2022 Landsat-9 file has duplicate epochs"
    ts = TleSet(find_satellite("L9", SATS), sets)
    assert len(ts.element_sets) == len(set(epochs))
    assert np.all(np.diff(ts.epochs_s) > 0)
    last_by_epoch = {s.epoch_s: s.line1 for s in sets}
    assert all(es.line1 == last_by_epoch[es.epoch_s] for es in ts.element_sets)


def test_nearest_matches_brute_force_argmin() -> None:
    ts = TleSet(find_satellite("S2A", SATS), read_tle_file(S2A_FILE))
    rng = np.random.default_rng(1)
    times = rng.uniform(ts.epochs_s[0] - 86400, ts.epochs_s[-1] + 86400, 5000)
    times = np.concatenate(
        (times, ts.epochs_s[:50], 0.5 * (ts.epochs_s[1:50] + ts.epochs_s[:49]) + 1e-3)
    )
    got = ts.nearest(times, warn=False)
    want = np.argmin(np.abs(times[:, None] - ts.epochs_s[None, :]), axis=1)
    assert np.array_equal(np.abs(times - ts.epochs_s[got]), np.abs(times - ts.epochs_s[want]))


def test_stale_sets_warn_once_per_gap(caplog: pytest.LogCaptureFixture) -> None:
    ts = TleSet(find_satellite("S2A", SATS), read_tle_file(S2A_FILE), max_age_days=3.0)
    inside = np.linspace(ts.epochs_s[10], ts.epochs_s[20], 100)
    after = ts.epochs_s[-1] + np.linspace(4, 9, 50) * 86400
    before = ts.epochs_s[0] - np.linspace(4, 9, 50) * 86400
    with caplog.at_level(logging.WARNING, logger="eomatch.orbits.tle"):
        ts.nearest(inside)
        assert caplog.records == []
        ts.nearest(after)
        ts.nearest(after[:10])
        assert len(caplog.records) == 1
        msg = caplog.records[0].getMessage()
        assert "Sentinel-2A" in msg and "40697" in msg and "9.0 days" in msg
        ts.nearest(before)
        assert len(caplog.records) == 2


def test_registry_lookup_by_alias_any_case() -> None:
    assert find_satellite("s2a", SATS).name == "Sentinel-2A"
    assert find_satellite("LANDSAT_9", SATS).name == "Landsat-9"
    assert find_satellite("landsat-9", SATS).norad_id == 49260
    with pytest.raises(ConfigError) as err:
        find_satellite("Sentinel-9Z", SATS)
    assert "Sentinel-9Z" in str(err.value) and "Landsat-8" in str(err.value)


def test_load_tles_groups_by_norad_id_not_by_file_name(tmp_path: Path) -> None:
    mixed = tmp_path / "whatever.txt"
    lines = S2A_FILE.read_text().splitlines()[:6] + L9_FILE.read_text().splitlines()[:6]
    mixed.write_text("\n".join(lines) + "\n")
    tles = load_tles([tmp_path], SATS, ["S2A", "L9"])
    assert set(tles) == {"Sentinel-2A", "Landsat-9"}
    assert tles["Landsat-9"].norad_id == 49260
    assert tles["Sentinel-2A"].sources == [mixed]


def test_missing_platform_names_norad_id_and_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_tles([S2A_FILE, tmp_path], SATS, ["S2A", "LS8"])
    msg = str(err.value)
    assert "Landsat-8" in msg and "39084" in msg and str(tmp_path) in msg


def test_malformed_tle_names_file_and_line(tmp_path: Path) -> None:
    text = S2A_FILE.read_text().splitlines()
    digit = "1" if text[4][20] != "1" else "2"
    bad = text[4][:20] + digit + text[4][21:]  # corrupt line 1 of the second set
    path = tmp_path / "bad.tle"
    path.write_text("\n".join(text[:4] + [bad] + text[5:9]) + "\n")
    with pytest.raises(TleError) as err:
        read_tle_file(path)
    assert str(path) in str(err.value) and "line 5" in str(err.value)


def test_unknown_norad_ids_are_ignored() -> None:
    spec = [SatelliteSpec(name="Landsat-9", norad_id=49260, swath_km=185, instrument="OLI-2")]
    tles = load_tles([PACKAGED_TLE_DIR], spec)
    assert list(tles) == ["Landsat-9"]


# --- fetch ------------------------------------------------------------------------------

S2A_SETS = S2A_FILE.read_text().splitlines()


def _serve(httpserver, text: str, norad: int) -> str:
    httpserver.expect_request(
        "/gp.php", query_string={"CATNR": str(norad), "FORMAT": "TLE"}
    ).respond_with_data(text, content_type="text/plain")
    return httpserver.url_for("/gp.php")


def test_fetch_writes_then_appends_without_duplicates(httpserver, tmp_path: Path) -> None:
    url = _serve(httpserver, "\n".join(S2A_SETS[0:3]) + "\n", 40697)
    [res] = fetch_tles([40697], tmp_path, url)
    assert res.new_sets == 1 and res.total_sets == 1
    assert res.path == tmp_path / "40697.tle"
    again = fetch_tles([40697], tmp_path, url)
    assert again[0].new_sets == 0
    assert len(read_tle_file(res.path)) == 1
    httpserver.clear()
    url = _serve(httpserver, "\n".join(S2A_SETS[3:6]) + "\n", 40697)
    [res] = fetch_tles([40697], tmp_path, url)
    assert res.new_sets == 1 and res.total_sets == 2
    sets = read_tle_file(res.path)
    assert [s.line1 for s in sets] == [S2A_SETS[1], S2A_SETS[4]]
    assert not list(tmp_path.glob(".*.tmp"))


def test_fetch_no_data_is_an_error(httpserver, tmp_path: Path) -> None:
    url = _serve(httpserver, "No GP data found\n", 99999)
    with pytest.raises(TleError) as err:
        fetch_tles([99999], tmp_path, url)
    assert "99999" in str(err.value) and "No GP data found" in str(err.value)
    assert not (tmp_path / "99999.tle").exists()


def test_fetch_unreachable_is_one_line_error(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(TleError) as err:
        fetch_tles([40697], tmp_path, f"http://127.0.0.1:{port}/gp.php", timeout_s=5)
    assert "cannot reach" in str(err.value) and "\n" not in str(err.value)


def test_parse_two_line_sets_without_names() -> None:
    text = "\n".join(S2A_SETS[1:3] + S2A_SETS[4:6])
    sets = parse_tle_text(text)
    assert [s.name for s in sets] == ["", ""]
    assert sets[1].epoch_s > sets[0].epoch_s


def test_fetch_retries_a_busy_server_then_succeeds(httpserver, tmp_path: Path) -> None:
    """CelesTrak answering 503 twice is retried (eomatch.http's policy), not a failed fetch."""
    from werkzeug import Response

    answers = iter([Response("busy", status=503), Response("busy", status=503)])
    body = "\n".join(S2A_SETS[0:3]) + "\n"
    httpserver.expect_request("/gp.php").respond_with_handler(
        lambda request: next(answers, None) or Response(body, content_type="text/plain")
    )
    [res] = fetch_tles([40697], tmp_path, httpserver.url_for("/gp.php"), retries=2, backoff_s=0.0)
    assert res.new_sets == 1
    assert len(httpserver.log) == 3


def test_fetch_gives_up_after_the_retries_with_one_line(httpserver, tmp_path: Path) -> None:
    httpserver.expect_request("/gp.php").respond_with_data("busy", status=503)
    with pytest.raises(TleError) as err:
        fetch_tles([40697], tmp_path, httpserver.url_for("/gp.php"), retries=1, backoff_s=0.0)
    assert "HTTP 503 after 2 attempts" in str(err.value) and "\n" not in str(err.value)
    assert len(httpserver.log) == 2
