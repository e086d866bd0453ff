"""``eomatch-stack`` flag parsing: the common flags work before and after the subcommand."""

from __future__ import annotations

import pytest

from eomatch.cli.stack import _parser


@pytest.mark.parametrize(
    "argv",
    [
        ["-q", "--port", "9001", "--state-dir", "/srv/s", "up", "--demo"],
        ["up", "--demo", "-q", "--port", "9001", "--state-dir", "/srv/s"],
        ["--port", "9001", "up", "-q", "--state-dir", "/srv/s", "--demo"],
    ],
)
def test_common_flags_anywhere(argv: list[str]) -> None:
    args = _parser().parse_args(argv)
    assert (args.command, args.demo, args.quiet, args.port, args.state_dir) == ("up", True, True, 9001, "/srv/s")


def test_nested_keys_subcommand_takes_common_flags() -> None:
    args = _parser().parse_args(["keys", "revoke", "alice", "-q", "--config", "s.yaml"])
    assert (args.keys_command, args.name, args.quiet, args.config) == ("revoke", "alice", True, "s.yaml")


def test_flag_before_subcommand_is_kept_when_not_repeated() -> None:
    args = _parser().parse_args(["--config", "a.yaml", "status", "--json"])
    assert args.config == "a.yaml" and args.quiet is False and args.json is True


def test_an_output_path_that_is_a_file_is_one_line(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from eomatch.cli.stack import main

    blocker = tmp_path / "deploy"
    blocker.write_text("not a folder")
    code = main(["--state-dir", str(tmp_path / "state"), "render-deploy", "--out", str(blocker / "sub")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(blocker) in lines[0]
    assert blocker.read_text() == "not a folder"
