"""The few variables read outside ``EOMATCH_*`` settings are read in settings.py, from a
mapping the caller may give (so tests and services need not touch os.environ)."""

from __future__ import annotations

from pathlib import Path

from eomatch.settings import api_key_variable, default_netrc_file, service_environment


def test_service_environment_reads_the_log_file_and_the_libpq_variables_set() -> None:
    env = service_environment({"EOMATCH_LOG_FILE": "/var/log/x/api.log", "PGUSER": "reader", "PGPASSWORD": "pw",
                               "PGHOST": "db", "PGPORT": "", "HOME": "/root"})  # fmt: skip
    assert env.log_file == Path("/var/log/x/api.log")
    assert env.pg == {"PGUSER": "reader", "PGPASSWORD": "pw", "PGHOST": "db"}  # empty PGPORT: not set
    assert service_environment({}).log_file is None and service_environment({}).pg == {}


def test_api_key_variable_and_netrc_default() -> None:
    assert api_key_variable({"EOMATCH_API_KEY": "k"}) == "k"
    assert api_key_variable({"EOMATCH_API_KEY": ""}) is None and api_key_variable({}) is None
    assert default_netrc_file({"NETRC": "/etc/eomatch/netrc"}) == Path("/etc/eomatch/netrc")
    assert default_netrc_file({}) == Path.home() / ".netrc"
