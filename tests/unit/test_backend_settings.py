"""BE-2, BE-7, CFG-4, CFG-6: choosing the ADBC driver and its SQL dialect, hyprstream's own
backend options taken out of the URI, and credentials applied without leaking."""

from __future__ import annotations

import pytest

from hyprstream.backend._adbc import connection_settings, resolve_driver
from hyprstream.errors import ConfigError


@pytest.mark.parametrize(
    ("uri", "driver", "module", "dialect"),
    [
        ("postgresql://h/db", None, "adbc_driver_postgresql", "postgres"),
        ("postgres://h/db", None, "adbc_driver_postgresql", "postgres"),
        ("sqlite:///tmp/x.db", None, "adbc_driver_sqlite", "sqlite"),
        ("file:/tmp/x.db", None, "adbc_driver_sqlite", "sqlite"),
        ("duckdb:///tmp/x.duckdb", None, "adbc_driver_duckdb", "duckdb"),
        ("anything", "postgresql", "adbc_driver_postgresql", "postgres"),
        # Unknown packages: the dialect comes from the scheme, the package name, or PostgreSQL.
        ("postgresql://h/db", "my_pg_fork", "my_pg_fork", "postgres"),
        ("snow://account", "adbc_driver_snowflake", "adbc_driver_snowflake", "snowflake"),
        ("grpc://h:1", "adbc_driver_flightsql", "adbc_driver_flightsql", "postgres"),
    ],
)
def test_driver_and_dialect(uri: str, driver: str | None, module: str, dialect: str) -> None:
    spec = resolve_driver(uri, driver=driver)
    assert (spec.module, spec.dialect) == (module, dialect)


def test_an_unrecognised_uri_names_the_ways_to_choose() -> None:
    with pytest.raises(ConfigError, match="driver=<package>"):
        resolve_driver("mysql://h/db")


def test_own_options_leave_the_uri_and_engine_options_win() -> None:
    s = connection_settings(
        "postgresql://me:pw@h/db?sslmode=require&pool_max=8&connect_timeout=3",
        options={"pool_max": "2", "write_timeout": "5"},
    )
    assert "pool_max" not in s.uri
    assert "connect_timeout" not in s.uri
    assert "sslmode=require" in s.uri
    assert (s.pool_min, s.pool_max, s.connect_timeout_s, s.write_timeout_s) == (1, 2, 3.0, 5.0)


def test_credentials_replace_those_of_the_uri_and_stay_out_of_text() -> None:
    s = connection_settings("postgresql://old:oldpw@h/db", username="new", password="n3w:p@ss")
    assert s.uri == "postgresql://new:n3w%3Ap%40ss@h/db"
    for text in (s.display, repr(s)):
        assert "n3w" not in text
        assert "oldpw" not in text


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"pool_max": "many"}, "pool_max must be a number"),
        ({"pool_max": "0"}, "pool_max must be positive"),
        ({"connect_timeout": "-1"}, "connect_timeout must be positive"),
        ({"pool_min": "5", "pool_max": "2"}, r"pool_min \(5\) exceeds pool_max \(2\)"),
    ],
)
def test_bad_options_are_refused(options: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        connection_settings("postgresql://h/db", options=options)
