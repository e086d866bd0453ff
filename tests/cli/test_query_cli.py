"""``eomatch-query`` as a user runs it: exit codes and one-line errors, no traceback."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from helpers_http import RangeServer

from eomatch.cli.query import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def fake_stac(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A static STAC API: landing page, one collection, a one-item search."""
    root = tmp_path / "site"
    (root / "collections" / "P").mkdir(parents=True)
    landing = {"type": "Catalog", "id": "fake", "stac_version": "1.0.0", "description": "d",
               "conformsTo": ["https://api.stacspec.org/v1.0.0/item-search"],
               "links": [{"rel": "search", "href": "search", "method": "GET"}]}  # fmt: skip
    (root / "index.json").write_text(json.dumps(landing))
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "p1", "collection": "P",
            "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]},
            "bbox": [0, 0, 1, 1], "properties": {"datetime": "2022-01-01T00:00:00Z"}, "links": [], "assets": {}}  # fmt: skip
    (root / "search").write_text(json.dumps({"type": "FeatureCollection", "features": [item], "links": []}))
    (root / "collections" / "P" / "index.json").write_text(json.dumps(
        {"type": "Collection", "id": "P", "stac_version": "1.0.0", "description": "p", "license": "x",
         "extent": {"spatial": {"bbox": [[0, 0, 1, 1]]}, "temporal": {"interval": [[None, None]]}}, "links": []}))  # fmt: skip
    (root / "html").mkdir()
    (root / "html" / "index.json").write_text("<html>not json</html>")
    (root / "plain").mkdir()
    (root / "plain" / "index.json").write_text(json.dumps({"hello": "world"}))
    with RangeServer(root) as server:
        yield server


def test_success_prints_summary_and_writes_catalogue(capsys, fake_stac, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, "--api-url", fake_stac.base_url + "/", "--output", str(out), "-q")
    assert code == 0, err
    assert "1 items matched" in stdout
    assert (out / "P" / "2022" / "01" / "01" / "p1.json").is_file()


def test_retries_5xx_then_succeeds(capsys, fake_stac, tmp_path) -> None:  # type: ignore[no-untyped-def]
    fake_stac.fail_first["/search"] = 2
    code, stdout, err = _run(capsys, "--api-url", fake_stac.base_url, "--output", str(tmp_path / "o"), "-q")
    assert code == 0, err
    assert sum(1 for path, _ in fake_stac.requests if path.startswith("/search")) == 3


def test_persistent_5xx_is_one_line(capsys, fake_stac, tmp_path) -> None:  # type: ignore[no-untyped-def]
    fake_stac.fail_first["/search"] = 100
    cfg = tmp_path / "c.yaml"
    cfg.write_text("query:\n  retries: 1\n  backoff_s: 0.01\n")
    code, _, err = _run(capsys, "--config", str(cfg), "--api-url", fake_stac.base_url, "--output", str(tmp_path / "o"), "-q")
    assert code != 0
    _one_line_error(err, "HTTP 503", "after 2 attempts")
    assert not (tmp_path / "o").exists()


def test_unreachable_url(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"http://127.0.0.1:{_closed_port()}/api/"
    code, _, err = _run(capsys, "--api-url", url, "--output", str(tmp_path / "o"))
    assert code != 0
    _one_line_error(err, "cannot reach", url)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("sub", ["html/", "plain/"])
def test_not_a_stac_server(capsys, fake_stac, tmp_path, sub) -> None:  # type: ignore[no-untyped-def]
    code, _, err = _run(capsys, "--api-url", fake_stac.url(sub), "--output", str(tmp_path / "o"))
    assert code != 0
    _one_line_error(err, "not a STAC API")
    assert not (tmp_path / "o").exists()


def test_unknown_collection_is_a_4xx_error(capsys, fake_stac, tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = _run(capsys, "--api-url", fake_stac.base_url, "--output", str(tmp_path / "o"), "--collections", "NOPE")
    assert code != 0
    _one_line_error(err, "collection 'NOPE' does not exist")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--start-time", "2022-13-45"], "start time"),
        (["--end-time", "yesterday"], "end time"),
        (["--start-time", "2022-06-01", "--end-time", "2022-05-01"], "before start time"),
        (["--bbox", "10", "50", "20", "40"], "south"),
        (["--bbox", "200", "0", "10", "10"], "longitudes"),
        (["--bbox", "a", "0", "10", "10"], "numbers"),
        (["--api-url", "ftp://x/"], "http(s) URL"),
    ],
)
def test_bad_inputs_fail_before_any_request(capsys, fake_stac, tmp_path, args, needle) -> None:  # type: ignore[no-untyped-def]
    argv = ["--api-url", fake_stac.base_url, "--output", str(tmp_path / "o"), *args]
    code, _, err = _run(capsys, *argv)
    assert code != 0
    _one_line_error(err, needle)
    assert fake_stac.requests == []
    assert not (tmp_path / "o").exists()


def test_error_leaves_previous_output_intact(capsys, fake_stac, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "o"
    assert _run(capsys, "--api-url", fake_stac.base_url, "--output", str(out), "-q")[0] == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".eomatch" not in p.parts}
    fake_stac.fail_first["/search"] = 100
    cfg = tmp_path / "c.yaml"
    cfg.write_text("query:\n  retries: 0\n")
    code, _, err = _run(capsys, "--config", str(cfg), "--api-url", fake_stac.base_url, "--output", str(out), "-q")
    assert code != 0
    _one_line_error(err, "HTTP 503")
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".eomatch" not in p.parts}
    assert after == before


def test_failure_on_a_later_page_keeps_a_consistent_catalogue_and_rerun_completes(capsys, fake_stac, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pystac

    root = Path(fake_stac.root)
    search = json.loads((root / "search").read_text())
    second = json.loads(json.dumps(search["features"][0]))
    second["id"], second["properties"]["datetime"] = "p2", "2022-01-02T00:00:00Z"
    search["links"] = [{"rel": "next", "href": "page2"}]
    (root / "search").write_text(json.dumps(search))
    (root / "page2").write_text(json.dumps({"type": "FeatureCollection", "features": [second], "links": []}))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("query:\n  retries: 0\n")
    out = tmp_path / "out"

    fake_stac.fail_first["/page2"] = 100
    code, _, err = _run(capsys, "--config", str(cfg), "--api-url", fake_stac.base_url, "--output", str(out), "-q")
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert code != 0 and "Traceback" not in err and len(errors) == 1, err
    assert "page2" in err and "stopped after 1 items" in err and "again completes it" in err
    # What was written is a readable catalogue: the page-1 item is linked, not orphaned.
    cat = pystac.Catalog.from_file(str(out / "catalog.json"))
    assert [i.id for i in cat.get_items(recursive=True)] == ["p1"]

    fake_stac.fail_first.clear()
    code, _, err = _run(capsys, "--config", str(cfg), "--api-url", fake_stac.base_url, "--output", str(out), "-q")
    assert code == 0, err
    cat = pystac.Catalog.from_file(str(out / "catalog.json"))
    assert sorted(i.id for i in cat.get_items(recursive=True)) == ["p1", "p2"]


def _search_params(fake_stac) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from urllib.parse import parse_qsl, urlsplit

    (path,) = [p for p, _ in fake_stac.requests if p.startswith("/search")]
    return dict(parse_qsl(urlsplit(path).query))


def test_a_date_alone_ends_at_the_last_microsecond_of_that_day(capsys, fake_stac, tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = _run(capsys, "--api-url", fake_stac.base_url, "--output", str(tmp_path / "o"),
                          "--start-time", "2022-01-01", "--end-time", "2022-12-31", "-q")  # fmt: skip
    assert code == 0, err
    assert _search_params(fake_stac)["datetime"] == "2022-01-01T00:00:00Z/2022-12-31T23:59:59.999999Z"
    assert "datetime 2022-01-01T00:00:00Z/2022-12-31T23:59:59.999999Z" in out


def test_config_values_are_the_search_and_flags_override_them(capsys, fake_stac, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "run.yaml"
    cfg.write_text("start_time: 2022-05-01\nend_time: 2022-05-31\nmin_lat: 10\nmax_lat: 20\nmin_lon: 170\n"
                   "max_lon: -170\nplatforms: [S2A, LANDSAT_9]\n")  # fmt: skip
    code, _, err = _run(capsys, "--config", str(cfg), "--api-url", fake_stac.base_url,
                        "--output", str(tmp_path / "o"), "-q")  # fmt: skip
    assert code == 0, err
    params = _search_params(fake_stac)
    assert params["datetime"] == "2022-05-01T00:00:00Z/2022-05-31T23:59:59.999999Z"
    assert params["bbox"] == "170.0,10.0,-170.0,20.0"  # min_lon > max_lon: across the antimeridian
    assert "'Sentinel-2A'" in params["filter"] and "'Landsat-9'" in params["filter"]
    assert "'Sentinel-3A'" not in params["filter"] and params["filter-lang"] == "cql2-text"

    fake_stac.requests.clear()
    code, _, err = _run(capsys, "--config", str(cfg), "--api-url", fake_stac.base_url, "--output", str(tmp_path / "p"),
                        "--end-time", "2022-05-02T12:00:00Z", "--bbox", "0", "0", "1", "1", "--platforms", "S3A,S3B", "-q")  # fmt: skip
    assert code == 0, err
    params = _search_params(fake_stac)
    assert params["datetime"] == "2022-05-01T00:00:00Z/2022-05-02T12:00:00Z" and params["bbox"] == "0.0,0.0,1.0,1.0"
    assert "'Sentinel-3A'" in params["filter"] and "'Sentinel-3B'" in params["filter"] and "'Landsat-9'" not in params["filter"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--platforms", "Landsat9"], "unknown platform 'Landsat9'"),
        (["--collections", "../x"], "not a collection id"),
    ],
)
def test_bad_filters_fail_before_any_request(capsys, fake_stac, tmp_path, args, needle) -> None:  # type: ignore[no-untyped-def]
    code, _, err = _run(capsys, "--api-url", fake_stac.base_url, "--output", str(tmp_path / "o"), *args)
    assert code == 2
    _one_line_error(err, needle)
    assert fake_stac.requests == []


def test_product_collections_search_the_pairs_between_them(capsys, httpserver, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A product collection also asks for the matchup and events collections between the
    given product collections that the API lists (so pgSTAC searches only those), and
    the filter keeps exactly the pairs of those product collections."""
    landing = {"type": "Catalog", "id": "fake", "stac_version": "1.1.0", "description": "d",
               "conformsTo": ["https://api.stacspec.org/v1.0.0/item-search"],
               "links": [{"rel": "search", "href": "search", "method": "GET"}]}  # fmt: skip
    listed = ["P", "Q", "P-S2A-vs-Q-Landsat-9", "matchup-events-P-S2A-vs-Q-Landsat-9", "P-S2A-vs-R-S3A", "PX-S2A-vs-Q-L9"]
    httpserver.expect_request("/").respond_with_json(landing)
    httpserver.expect_request("/collections").respond_with_json({"collections": [{"id": c} for c in listed], "links": []})
    for cid in ("P", "Q"):
        httpserver.expect_request(f"/collections/{cid}").respond_with_json(
            {"type": "Collection", "id": cid, "matchup:type": "product", "links": []})  # fmt: skip
    httpserver.expect_request("/search").respond_with_json({"type": "FeatureCollection", "features": [], "links": []})
    code, _, err = _run(capsys, "--api-url", httpserver.url_for("/"), "--output", str(tmp_path / "o"),
                        "--collections", "P,Q", "-q")  # fmt: skip
    assert code == 0, err
    (search,) = [req for req, _ in httpserver.log if req.path == "/search"]
    assert search.args["collections"].split(",") == ["P", "Q", "P-S2A-vs-Q-Landsat-9", "matchup-events-P-S2A-vs-Q-Landsat-9"]
    assert search.args["filter"] == "(collection IN ('P', 'Q') OR A_CONTAINED_BY(\"matchup:collections\", ('P', 'Q')))"
