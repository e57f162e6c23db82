"""The ``postgres`` fixture gives a real, password-protected, controllable PostgreSQL server."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import adbc_driver_postgresql.dbapi as pg
import pytest

from tests.integration.postgres import execute, external_server, fetch, with_password

if TYPE_CHECKING:
    from tests.integration.postgres import PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.integration]


def test_uri_names_a_password_protected_database(postgres: PostgresServer) -> None:
    parts = urlsplit(postgres.uri)
    assert parts.scheme == "postgresql"
    assert (parts.hostname, parts.port) == (postgres.host, postgres.port)
    assert parts.username == postgres.user
    assert postgres.password
    assert parts.password == quote(postgres.password, safe="")
    assert parts.path == f"/{postgres.dbname}"
    assert postgres.is_running()
    assert fetch(postgres.uri, "SELECT current_database(), current_user") == [
        (postgres.dbname, postgres.user)
    ]
    # Secrets stay out of reprs (pytest prints fixture values in failure reports).
    assert postgres.password not in repr(postgres)


def test_create_insert_select(postgres: PostgresServer) -> None:
    uri = postgres.new_database("fixture_crud")
    with pg.connect(uri) as conn:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE samples (id integer PRIMARY KEY, name text NOT NULL)")
            cur.execute("INSERT INTO samples VALUES (1, 'one'), (2, 'two'), (3, 'three')")
        conn.commit()
    assert fetch(uri, "SELECT id, name FROM samples ORDER BY id") == [
        (1, "one"),
        (2, "two"),
        (3, "three"),
    ]


def test_wrong_password_is_refused(postgres: PostgresServer) -> None:
    with pytest.raises(pg.Error) as refused, pg.connect(with_password(postgres.uri, "wrong")):
        pass
    assert "authentication" in str(refused.value)
    assert "password" in str(refused.value)


def test_new_database_is_empty_and_separate(postgres: PostgresServer) -> None:
    first = postgres.new_database()
    execute(first, "CREATE TABLE only_in_first (x integer)", "INSERT INTO only_in_first VALUES (7)")
    second = postgres.new_database()
    assert first != second
    tables = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    assert fetch(second, tables) == []
    assert fetch(first, tables) == [("only_in_first",)]
    assert fetch(first, "SELECT x FROM only_in_first") == [(7,)]
    # Asking for a name again gives a fresh, empty database.
    again = postgres.new_database(urlsplit(first).path.lstrip("/"))
    assert again == first
    assert fetch(again, tables) == []


def test_new_database_rejects_names_that_are_not_identifiers(postgres: PostgresServer) -> None:
    for bad in ('x"; DROP DATABASE postgres; --', "Upper", "1st", "a" * 64):
        with pytest.raises(ValueError, match="not a lower-case identifier"):
            postgres.new_database(bad)


def test_stop_refuses_connections_and_start_keeps_the_data(postgres: PostgresServer) -> None:
    if not postgres.controllable:
        pytest.skip("an external server (HYPRSTREAM_TEST_POSTGRES_URI) cannot be stopped")
    uri = postgres.new_database("fixture_restart")
    execute(uri, "CREATE TABLE kept (x integer)", "INSERT INTO kept VALUES (1), (2)")
    try:
        postgres.stop()
        assert not postgres.is_running()
        with pytest.raises(pg.Error), pg.connect(uri):
            pass
        postgres.stop()  # stopping a stopped server is a no-op
    finally:
        postgres.start()
    assert postgres.is_running()
    assert fetch(uri, "SELECT x FROM kept ORDER BY x") == [(1,), (2,)]
    postgres.start()  # starting a running server is a no-op
    assert fetch(postgres.uri, "SELECT 1") == [(1,)]


def test_an_external_server_is_used_but_not_controlled(postgres: PostgresServer) -> None:
    external = external_server(postgres.uri)
    assert (external.host, external.port, external.user, external.dbname) == (
        postgres.host,
        postgres.port,
        postgres.user,
        postgres.dbname,
    )
    assert external.password == postgres.password
    assert not external.controllable
    assert external.is_running()
    with pytest.raises(RuntimeError, match="cannot stop an external server"):
        external.stop()
    with pytest.raises(RuntimeError, match="cannot start an external server"):
        external.start()
    assert postgres.is_running()
    assert fetch(external.new_database("fixture_external"), "SELECT current_database()") == [
        ("fixture_external",)
    ]
