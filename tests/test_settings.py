"""Settings: one typed model read from YAML, then ``EOMATCH_*`` env, then CLI flags."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from eomatch.errors import ConfigError
from eomatch.settings import Settings, load_settings


def _yaml(tmp_path: Path) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(
        "space_diff_threshold: 50\n"
        "time_diff_threshold: 900\n"
        "stack:\n  proxy:\n    port: 8100\n  db:\n    port: 55500\n"
        "ingest:\n  db_host: yaml-host\n"
    )
    return path


def test_yaml_then_env_then_flags(tmp_path: Path) -> None:
    cfg = _yaml(tmp_path)
    only_yaml = load_settings(cfg, environ={})
    assert (only_yaml.space_diff_threshold, only_yaml.stack.proxy.port, only_yaml.stack.db.port) == (50, 8100, 55500)

    env = {"EOMATCH_STACK__PROXY__PORT": "8200", "EOMATCH_TIME_DIFF_THRESHOLD": "600"}
    with_env = load_settings(cfg, environ=env)
    assert (with_env.stack.proxy.port, with_env.time_diff_threshold) == (8200, 600)
    assert with_env.stack.db.port == 55500 and with_env.space_diff_threshold == 50  # YAML keeps the rest

    flags = {"stack": {"proxy": {"port": 8300}, "db": {"port": None}}, "ingest": {"db_host": "flag-host"}}
    with_flags = load_settings(cfg, flags, environ=env)
    assert with_flags.stack.proxy.port == 8300  # the flag beats env and YAML
    assert with_flags.stack.db.port == 55500  # a flag not given (None) masks nothing
    assert with_flags.ingest.db_host == "flag-host" and with_flags.time_diff_threshold == 600


def test_config_file_from_env_and_an_explicit_environ_is_all_there_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _yaml(tmp_path)
    assert load_settings(environ={"EOMATCH_CONFIG": str(cfg)}).stack.proxy.port == 8100
    # environ={} means defaults only, whatever the process environment says
    monkeypatch.setenv("EOMATCH_STACK__PROXY__PORT", "8999")
    monkeypatch.setenv("EOMATCH_CONFIG", str(cfg))
    assert load_settings(environ={}).stack.proxy.port == 8000
    assert load_settings().stack.proxy.port == 8999  # the process environment, when not replaced


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("stack:\n  proxy:\n    port: not-a-port\n", "stack.proxy.port"),
        ("start_time: 2022-05-02\nend_time: 2022-05-01\n", "end_time must be after start_time"),
        ("stack: [unclosed\n", "cannot read config"),
        ("stack:\n  db:\n    prot: 1\n", "stack.db.prot"),  # a typo in a nested block is no silent default
        ("matchup_catalogue:\n  pth: /x\n", "matchup_catalogue.pth"),
        ("- platforms\n- S2A\n", "must be a mapping"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_settings(tmp_path / "nope.yaml", environ={})


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"min_lat": 95}, "min_lat"),
        ({"min_lat": 50, "max_lat": 10}, "north of max_lat"),
        ({"space_diff_threshold": -5}, "space_diff_threshold"),
        ({"time_diff_threshold": 0}, "time_diff_threshold"),
        ({"min_overlap_fraction": 1.5}, "min_overlap_fraction"),
        ({"download": {"parallel": 0}}, "download.parallel"),
        ({"query": {"page_size": 0}}, "query.page_size"),
    ],
)
def test_values_out_of_range_are_refused(overrides: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(overrides=overrides, environ={})
    assert needle in str(err.value)


def test_a_site_across_the_antimeridian_is_allowed() -> None:
    s = load_settings(overrides={"min_lon": 170, "max_lon": -170, "min_lat": 0, "max_lat": 0}, environ={})
    assert (s.min_lon, s.max_lon, s.min_lat, s.max_lat) == (170, -170, 0, 0)  # 0 is a valid bound


def test_a_providers_block_changes_the_default_table_entry_by_entry(tmp_path: Path) -> None:
    defaults = load_settings(None, environ={}).providers
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "providers:\n"
        "  S2_MSI_L1C: {url: /data/s2-mirror}\n"  # only the URL changes
        "  MY_L2A: {url: 'https://stac.example/api', collection: my-l2a}\n"  # a new collection
        "  S3_OLCI_L1B: null\n"  # removed
    )
    providers = load_settings(cfg, environ={}).providers
    assert providers["S2_MSI_L1C"].url == "/data/s2-mirror"
    assert providers["S2_MSI_L1C"].collection == defaults["S2_MSI_L1C"].collection
    assert providers["S2_MSI_L1C"].platform_values == defaults["S2_MSI_L1C"].platform_values
    assert providers["MY_L2A"].collection == "my-l2a"
    assert providers["LANDSAT_C2L1"] == defaults["LANDSAT_C2L1"]
    assert "S3_OLCI_L1B" not in providers
    # env on top of the file, the same way
    env = {"EOMATCH_PROVIDERS__LANDSAT_C2L1__URL": "/data/landsat"}
    both = load_settings(cfg, environ=env).providers
    assert both["LANDSAT_C2L1"].url == "/data/landsat" and both["S2_MSI_L1C"].url == "/data/s2-mirror"
    assert both["LANDSAT_C2L1"].collection == defaults["LANDSAT_C2L1"].collection
    # a new collection still needs what has no default
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers:\n  MY_L2A: {url: 'https://stac.example/api'}\n")
    with pytest.raises(ConfigError, match=r"providers\.MY_L2A\.collection"):
        load_settings(bad, environ={})


def test_find_section_from_yaml_env_and_overrides(tmp_path: Path) -> None:
    """``find:`` is a typed section: YAML, ``EOMATCH_FIND__*`` and nested overrides, in that order."""
    cfg = tmp_path / "run.yaml"
    cfg.write_text("find:\n  start_time: 2022-05-01\n  end_time: 2022-05-02\n  platforms: [S2A, LS9]\n  min_lat: 10\n")
    s = load_settings(cfg, environ={"EOMATCH_FIND__MIN_LAT": "20"}, warn=False)
    assert s.find.platforms == ["S2A", "LS9"] and s.find.min_lat == 20
    assert s.find.start_time == datetime(2022, 5, 1, tzinfo=UTC)
    assert s.deprecations == []
    flagged = load_settings(cfg, {"find": {"max_cloud_cover": 30.0}}, environ={}, warn=False)
    assert flagged.find.max_cloud_cover == 30.0 and flagged.find.min_lat == 10  # the rest of find: stays


def test_flat_yaml_find_keys_move_under_find_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("start_time: 2022-05-01\nend_time: 2022-05-02\nstack:\n  proxy:\n    port: 8100\n")
    with caplog.at_level(logging.WARNING, logger="eomatch.settings"):
        s = load_settings(cfg, environ={})
    assert s.find.start_time == datetime(2022, 5, 1, tzinfo=UTC) and s.stack.proxy.port == 8100
    expected = [
        "'start_time' at the top level of run.yaml is deprecated; put it under 'find:'",
        "'end_time' at the top level of run.yaml is deprecated; put it under 'find:'",
    ]
    assert s.deprecations == expected
    assert [r.getMessage() for r in caplog.records if r.name == "eomatch.settings"] == expected


def test_a_command_prints_the_deprecation_as_one_warning_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from eomatch.cli import base_parser, settings_from_args

    cfg = tmp_path / "run.yaml"
    cfg.write_text("start_time: 2022-05-01\n")
    args = base_parser("eomatch-x", "test").parse_args(["--config", str(cfg)])
    settings = settings_from_args(args)
    assert settings.find.start_time == datetime(2022, 5, 1, tzinfo=UTC)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["warning: 'start_time' at the top level of run.yaml is deprecated; put it under 'find:'"]


def test_flat_env_and_overrides_move_under_find_with_a_warning() -> None:
    s = load_settings(overrides={"platforms": ["S2A", "LS9"]}, environ={"EOMATCH_START_TIME": "2022-05-01"}, warn=False)
    assert s.find.platforms == ["S2A", "LS9"] and s.find.start_time == datetime(2022, 5, 1, tzinfo=UTC)
    assert s.deprecations == [
        "EOMATCH_START_TIME is deprecated; use EOMATCH_FIND__START_TIME",
        "'platforms' at the top level of the overrides is deprecated; put it under 'find'",
    ]
    # Python callers that build or read settings the old way keep working
    built = Settings(min_lat=5.0)  # type: ignore[call-arg]
    assert built.find.min_lat == 5.0 and built.min_lat == 5.0


def test_a_higher_source_nested_beats_a_lower_source_flat(tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("start_time: 2022-05-01\n")
    s = load_settings(cfg, environ={"EOMATCH_FIND__START_TIME": "2022-06-01"}, warn=False)
    assert s.find.start_time == datetime(2022, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("yaml_text", "environ", "overrides", "needle"),
    [
        ("start_time: 2022-05-01\nfind:\n  start_time: 2022-05-02\n", {}, None, "'start_time' is given both"),
        ("", {"EOMATCH_END_TIME": "2022-05-01", "EOMATCH_FIND__END_TIME": "2022-05-02"}, None, "EOMATCH_END_TIME and EOMATCH_FIND__END_TIME"),
        ("", {}, {"min_lat": 1.0, "find": {"min_lat": 2.0}}, "'min_lat' is given both"),
    ],
)
def test_a_find_key_both_flat_and_nested_is_a_one_line_error(
    tmp_path: Path, yaml_text: str, environ: dict[str, str], overrides: dict | None, needle: str
) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml_text or "stack: {}\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, overrides, environ=environ, warn=False)
    assert needle in str(exc.value) and "\n" not in str(exc.value)
