"""The client matrix (FSQL-*): the tools users already have, against a real server process, with
authentication off and on, and over TLS for the ADBC client."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from adbc_driver_flightsql import DatabaseOptions
from pyarrow import flight

from conformance.process import ServerProcess, spawn_server
from hyprstream.flightsql._protocol import pack, pb

pytestmark = pytest.mark.integration

TS = pa.timestamp("us", tz="UTC")
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
# "reader:r-secret1" is 16 bytes: its base64 form ends in "==" padding (see the auth test).
WRITER, READER = ("writer", "w-secret"), ("reader", "r-secret1")


def sample_table(n: int = 5, metric: str = "cpu") -> pa.Table:
    return pa.table(
        {
            "metric_id": [metric] * n,
            "timestamp": pa.array([NOW - dt.timedelta(seconds=10 * i) for i in range(n)], TS),
            "value": [float(i) for i in range(n)],
        }
    )


@dataclass
class Served:
    proc: ServerProcess
    auth: bool = False
    tls_root: bytes | None = None

    @property
    def uri(self) -> str:
        scheme = "grpc+tls" if self.tls_root else "grpc"
        return f"{scheme}://localhost:{self.proc.port}"

    def adbc(self, user: tuple[str, str] | None = None, **kwargs: object) -> flightsql.Connection:
        db_kwargs: dict[str, str] = {}
        if self.auth:
            name, password = user or WRITER
            db_kwargs.update({"username": name, "password": password})
        if self.tls_root:
            db_kwargs[DatabaseOptions.TLS_ROOT_CERTS.value] = self.tls_root.decode()
        db_kwargs.update({k: str(v) for k, v in kwargs.items()})
        return flightsql.connect(self.uri, db_kwargs=db_kwargs, autocommit=True)

    def flight(self, user: tuple[str, str] | None = None) -> tuple[flight.FlightClient, flight.FlightCallOptions]:
        client = flight.connect(self.uri, tls_root_certs=self.tls_root) if self.tls_root else flight.connect(self.uri)
        headers: list[tuple[bytes, bytes]] = []
        if self.auth:
            name, password = user or WRITER
            headers.append(client.authenticate_basic_token(name, password))
        return client, flight.FlightCallOptions(headers=headers)


@pytest.fixture(scope="module", params=["auth off", "auth on"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("clients")
    args: list[str] = []
    auth = request.param == "auth on"
    if auth:
        users = data / "users"
        users.write_text(f"{WRITER[0]}:{WRITER[1]}:write\n{READER[0]}:{READER[1]}:read\n")
        args += ["--auth", "basic", "--auth-users", str(users)]
    with spawn_server(args=args, data_dir=data / "store") as proc:
        yield Served(proc, auth=auth)


# -- ADBC DB-API ------------------------------------------------------------------------------


def test_adbc_query_with_parameters(served: Served) -> None:
    with served.adbc() as conn, conn.cursor() as cur:
        cur.adbc_ingest("metrics", sample_table(metric="adbc_q"), mode="append")
        cur.execute("SELECT count(*) AS n, max(value) AS m FROM metrics WHERE metric_id = ?", ["adbc_q"])
        assert cur.fetchall() == [(5, 4.0)]
        cur.execute("SELECT ? + 1 AS x", [41])
        assert cur.fetch_arrow_table().column("x").to_pylist() == [42]


def test_adbc_ingest_modes_on_client_tables(served: Served) -> None:
    table = pa.table({"host": ["a", "b"], "cores": pa.array([4, 8], pa.int64())})
    with served.adbc() as conn, conn.cursor() as cur:
        assert cur.adbc_ingest("hosts_modes", table, mode="create") == 2
        with pytest.raises(adbc_driver_manager.Error):
            cur.adbc_ingest("hosts_modes", table, mode="create")  # exists
        assert cur.adbc_ingest("hosts_modes", table, mode="append") == 2
        with pytest.raises(adbc_driver_manager.Error):
            cur.adbc_ingest("no_such_table", table, mode="append")
        cur.execute("SELECT count(*) FROM hosts_modes")
        assert cur.fetchall() == [(4,)]
        assert cur.adbc_ingest("hosts_modes", table.slice(0, 1), mode="replace") == 1
        cur.execute("SELECT count(*) FROM hosts_modes")
        assert cur.fetchall() == [(1,)]
        assert cur.adbc_ingest("hosts_modes", table, mode="create_append") == 2
        assert cur.adbc_ingest("hosts_created", table, mode="create_append") == 2
        cur.execute("SELECT host, cores FROM hosts_modes ORDER BY host, cores")
        assert cur.fetchall() == [("a", 4), ("a", 4), ("b", 8)]


def test_adbc_ingest_into_metrics_takes_the_validated_path(served: Served) -> None:
    with served.adbc() as conn, conn.cursor() as cur:
        assert cur.adbc_ingest("metrics", sample_table(metric="via_ingest"), mode="append") == 5
        cur.execute("SELECT count FROM metrics_1h WHERE metric_id = 'via_ingest'")
        assert sum(r[0] for r in cur.fetchall()) == 5
        bad = sample_table(metric="bad_ingest").set_column(2, "value", pa.array([1.0, None, 2.0, 3.0, 4.0]))
        with pytest.raises(adbc_driver_manager.Error, match=r"column 'value'.*row 1"):
            cur.adbc_ingest("metrics", bad, mode="append")
        with pytest.raises(adbc_driver_manager.Error, match="maintained by hyprstream"):
            cur.adbc_ingest("metrics", sample_table(), mode="replace")
        cur.execute("SELECT count(*) FROM metrics WHERE metric_id = 'bad_ingest'")
        assert cur.fetchall() == [(0,)]


def test_adbc_execute_update_and_executemany(served: Served) -> None:
    with served.adbc() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE notes (id INTEGER, body VARCHAR)")
        cur.executemany("INSERT INTO notes VALUES (?, ?)", [(1, "a"), (2, "b"), (3, "c")])
        cur.execute("UPDATE notes SET body = 'z' WHERE id >= ?", [2])
        cur.execute("SELECT id, body FROM notes ORDER BY id")
        assert cur.fetchall() == [(1, "a"), (2, "z"), (3, "z")]
        cur.execute("DELETE FROM notes WHERE id = 1")
        cur.execute("SELECT count(*) FROM notes")
        assert cur.fetchall() == [(2,)]
        with pytest.raises(adbc_driver_manager.Error, match="may not touch metrics"):
            cur.execute("DELETE FROM metrics")
        with pytest.raises(adbc_driver_manager.Error, match="may not touch metric_windows"):
            cur.execute("DROP VIEW metric_windows")
        cur.execute("DROP TABLE notes")


def test_adbc_get_objects_lists_everything_with_types(served: Served) -> None:
    with served.adbc() as conn:
        with conn.cursor() as cur:
            cur.adbc_ingest("metrics", sample_table(metric="objects"), mode="append")
            cur.adbc_ingest("objects_client", pa.table({"a": [1]}), mode="create_append")
        for depth in ("catalogs", "db_schemas", "tables", "columns", "all"):
            objects = conn.adbc_get_objects(depth=depth).read_all().to_pylist()
            assert objects, depth
            assert objects[0]["catalog_name"] == "memory"
        objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
        tables = {
            t["table_name"]: t
            for c in objects
            for s in c["catalog_db_schemas"] or []
            for t in s["db_schema_tables"] or []
        }
        for name in ("metrics", "metric_windows", "metrics_5m", "metrics_30m", "metrics_1h", "metrics_1d", "objects_client"):
            assert name in tables, name
        assert not any(n.startswith("_hyprstream") for n in tables)
        columns = {c["column_name"]: c for c in tables["metrics"]["table_columns"]}
        assert columns["metric_id"]["xdbc_type_name"] == "VARCHAR"
        assert columns["timestamp"]["xdbc_type_name"] == "TIMESTAMP WITH TIME ZONE"
        assert columns["value"]["xdbc_type_name"] == "DOUBLE"
        assert columns["value_running_window_count"]["xdbc_type_name"] == "BIGINT"
        windows = {c["column_name"]: c["xdbc_type_name"] for c in tables["metrics_5m"]["table_columns"]}
        assert windows["p99"] == "DOUBLE"
        assert windows["window_start"] == "TIMESTAMP WITH TIME ZONE"
        assert {t["table_type"] for t in tables.values()} >= {"TABLE", "VIEW"}
        schema = conn.adbc_get_table_schema("metrics")
        assert schema.field("timestamp").type == TS
        assert schema.field("metric_id").type == pa.utf8()
        assert set(conn.adbc_get_table_types()) >= {"TABLE", "VIEW"}
        info = conn.adbc_get_info()
        assert info["vendor_name"] == "hyprstream"


def test_adbc_low_level_statement(served: Served) -> None:
    with served.adbc() as conn:
        stmt = adbc_driver_manager.AdbcStatement(conn.adbc_connection)
        try:
            stmt.set_sql_query("SELECT 7 AS seven")
            handle, _ = stmt.execute_query()
            table = pa.RecordBatchReader._import_from_c(handle.address).read_all()
            assert table.to_pylist() == [{"seven": 7}]
        finally:
            stmt.close()


def test_adbc_prepared_statement_sees_current_data(served: Served) -> None:
    with served.adbc() as conn, conn.cursor() as cur:
        sql = "SELECT count(*) FROM metrics WHERE metric_id = ?"
        cur.execute(sql, ["prepared_rerun"])
        assert cur.fetchall() == [(0,)]
        cur.adbc_ingest("metrics", sample_table(metric="prepared_rerun"), mode="append")
        cur.execute(sql, ["prepared_rerun"])
        assert cur.fetchall() == [(5,)]


# -- pandas and polars through ADBC ----------------------------------------------------------


def test_pandas_and_polars(served: Served) -> None:
    with served.adbc() as conn:
        with conn.cursor() as cur:
            cur.adbc_ingest("metrics", sample_table(metric="frames"), mode="append")
        sql = "SELECT metric_id, value FROM metrics WHERE metric_id = 'frames' ORDER BY value"
        frame = pd.read_sql(sql, conn)
        assert frame["value"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
        polars_frame = pl.read_database(sql, connection=conn)
        assert polars_frame["value"].to_list() == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert polars_frame.schema["metric_id"] == pl.String


# -- pyarrow.flight, raw --------------------------------------------------------------------


def test_raw_flight_sql_calls(served: Served) -> None:
    client, options = served.flight()
    descriptor = flight.FlightDescriptor.for_command(
        pack(pb.CommandGetTables(table_name_filter_pattern="metrics\\_%", include_schema=True))
    )
    info = client.get_flight_info(descriptor, options)
    tables = client.do_get(info.endpoints[0].ticket, options).read_all()
    names = tables.column("table_name").to_pylist()
    assert names == sorted(names)
    assert "metrics_5m" in names
    assert "metrics" not in names
    schema = pa.ipc.read_schema(pa.py_buffer(tables.column("table_schema")[0].as_py()))
    assert schema.field("metric_id").metadata[b"ARROW:FLIGHT:SQL:TYPE_NAME"] == b"VARCHAR"
    update = flight.FlightDescriptor.for_command(pack(pb.CommandStatementUpdate(query="CREATE TABLE raw_t (x INTEGER)")))
    writer, reader = client.do_put(update, pa.schema([]), options)
    writer.done_writing()
    result = pb.DoPutUpdateResult()
    result.ParseFromString(reader.read().to_pybytes())
    writer.close()
    assert result.record_count in (-1, 0)  # DDL: no rows affected (or unknown)
    # The update took effect: the new, empty table can be queried.
    created = flight.FlightDescriptor.for_command(pack(pb.CommandStatementQuery(query="SELECT count(*) AS n FROM raw_t")))
    info = client.get_flight_info(created, options)
    assert client.do_get(info.endpoints[0].ticket, options).read_all().to_pylist() == [{"n": 0}]
    closed = list(client.do_action(flight.Action("CloseSession", b""), options))
    assert len(closed) == 1
    with pytest.raises(pa.ArrowNotImplementedError, match="transactions are not supported"):
        list(client.do_action(flight.Action("BeginTransaction", pack(pb.ActionBeginTransactionRequest())), options))


# -- flightsql-dbapi and its SQLAlchemy dialect ----------------------------------------------


def test_flightsql_dbapi_and_sqlalchemy(served: Served) -> None:
    import sqlalchemy
    from flightsql import FlightSQLClient, connect

    user, password = WRITER if served.auth else (None, None)
    client = FlightSQLClient(host="localhost", port=served.proc.port, insecure=True, user=user, password=password)
    conn = connect(client)
    cursor = conn.cursor()
    cursor.execute("SELECT 40 + 2 AS answer")
    assert [tuple(r) for r in cursor.fetchall()] == [(42,)]
    cursor.close()
    conn.close()
    login = f"{WRITER[0]}:{WRITER[1]}@" if served.auth else ""
    url = f"datafusion://{login}localhost:{served.proc.port}?insecure=True"
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as c:
        rows = c.execute(sqlalchemy.text("SELECT 'ok' AS status")).fetchall()
    assert rows == [("ok",)]
    engine.dispose()


# -- authentication (only meaningful with auth on) --------------------------------------------


def test_authentication_and_roles(served: Served) -> None:
    if not served.auth:  # with authentication off, everyone is the anonymous writer
        client, options = served.flight()
        info = client.get_flight_info(
            flight.FlightDescriptor.for_command(pack(pb.CommandStatementQuery(query="SELECT 1"))), options
        )
        assert client.do_get(info.endpoints[0].ticket, options).read_all().num_rows == 1
        return
    # No credentials, or wrong ones: UNAUTHENTICATED.
    bare = flight.connect(served.uri)
    query = flight.FlightDescriptor.for_command(pack(pb.CommandStatementQuery(query="SELECT 1")))
    with pytest.raises(flight.FlightUnauthenticatedError, match="authentication required"):
        bare.get_flight_info(query)
    with pytest.raises(flight.FlightUnauthenticatedError, match="invalid user name or password"):
        bare.authenticate_basic_token(WRITER[0], "wrong")
    with pytest.raises(adbc_driver_manager.Error, match=r"UNAUTHENTICATED|invalid user name"):
        served.adbc(user=(WRITER[0], "wrong")).close()
    # Unpadded base64 Basic credentials (as Go clients send them) work, and return a token.
    padded = base64.b64encode(f"{READER[0]}:{READER[1]}".encode()).decode()
    assert padded.endswith("=")  # so stripping the padding changes what is sent
    unpadded = padded.rstrip("=")
    options = flight.FlightCallOptions(headers=[(b"authorization", f"Basic {unpadded}".encode())])
    info = bare.get_flight_info(query, options)
    assert bare.do_get(info.endpoints[0].ticket, options).read_all().num_rows == 1
    # A bearer token from a login works for later calls; a made-up one does not.
    key, value = bare.authenticate_basic_token(READER[0], READER[1])
    assert value.startswith(b"Bearer ")
    bearer = flight.FlightCallOptions(headers=[(key, value)])
    info = bare.get_flight_info(query, bearer)
    assert bare.do_get(info.endpoints[0].ticket, bearer).read_all().num_rows == 1
    with pytest.raises(flight.FlightUnauthenticatedError, match="invalid or expired bearer token"):
        bare.get_flight_info(query, flight.FlightCallOptions(headers=[(b"authorization", b"Bearer nope")]))
    # The read-only principal may query but not ingest, update or run DDL.
    with served.adbc(user=READER) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM metrics WHERE metric_id = 'reader'")
        assert cur.fetchall() == [(0,)]
        with pytest.raises(adbc_driver_manager.Error, match="read-only"):
            cur.adbc_ingest("metrics", sample_table(metric="reader"), mode="append")
        cur.execute("SELECT count(*) FROM metrics WHERE metric_id = 'reader'")
        assert cur.fetchall() == [(0,)]  # nothing of the refused ingest was stored
        with pytest.raises(adbc_driver_manager.Error, match="read-only"):
            cur.execute("CREATE TABLE reader_t (x INTEGER)")
        with pytest.raises(adbc_driver_manager.Error, match="read-only"):
            cur.adbc_ingest("reader_t2", pa.table({"x": [1]}), mode="create")
    client, options = served.flight(READER)
    writer, _ = client.do_put(flight.FlightDescriptor.for_path("metrics"), sample_table().schema, options)
    with pytest.raises(flight.FlightUnauthorizedError, match="read-only"):
        writer.write_table(sample_table())
        writer.close()
    # The writer may ingest through DoPut with its token.
    client, options = served.flight(WRITER)
    writer, reader = client.do_put(flight.FlightDescriptor.for_path("metrics"), sample_table().schema, options)
    writer.write_table(sample_table(metric="writer_put"))
    assert json.loads(reader.read().to_pybytes())["accepted"] == 5
    writer.close()


# -- TLS ------------------------------------------------------------------------------------


def _certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for localhost and a client certificate, all made here."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def write(path: Path, data: bytes) -> Path:
        path.write_bytes(data)
        return path

    now = dt.datetime.now(dt.UTC)
    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hyprstream test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def issue(name: str, san: list[x509.GeneralName] | None) -> tuple[bytes, bytes]:
        k = key()
        builder = (
            x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(k.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return (
            cert.public_bytes(serialization.Encoding.PEM),
            k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        )

    server_cert, server_key = issue("localhost", [x509.DNSName("localhost")])
    client_cert, client_key = issue("hyprstream test client", None)
    return {
        "ca": write(directory / "ca.pem", ca.public_bytes(serialization.Encoding.PEM)),
        "server_cert": write(directory / "server.pem", server_cert),
        "server_key": write(directory / "server.key", server_key),
        "client_cert": write(directory / "client.pem", client_cert),
        "client_key": write(directory / "client.key", client_key),
    }


def test_adbc_over_tls_and_mutual_tls(tmp_path: Path) -> None:
    certs = _certificates(tmp_path)
    ca = certs["ca"].read_bytes()
    with spawn_server(
        args=["--tls-cert", str(certs["server_cert"]), "--tls-key", str(certs["server_key"])],
        data_dir=tmp_path / "tls",
    ) as proc:
        assert "listening on grpc+tls://" in proc.text()
        served = Served(proc, tls_root=ca)
        with served.adbc() as conn, conn.cursor() as cur:
            cur.adbc_ingest("metrics", sample_table(metric="tls"), mode="append")
            cur.execute("SELECT count(*) FROM metrics WHERE metric_id = 'tls'")
            assert cur.fetchall() == [(5,)]
        # A client that does not trust the server's CA is refused.
        with pytest.raises(adbc_driver_manager.Error), flightsql.connect(served.uri, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
    with spawn_server(
        args=["--tls-cert", str(certs["server_cert"]), "--tls-key", str(certs["server_key"]),
              "--tls-client-ca", str(certs["ca"])],
        data_dir=tmp_path / "mtls",
    ) as mutual:
        served = Served(mutual, tls_root=ca)
        with served.adbc(**{
            DatabaseOptions.MTLS_CERT_CHAIN.value: certs["client_cert"].read_text(),
            DatabaseOptions.MTLS_PRIVATE_KEY.value: certs["client_key"].read_text(),
        }) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 AS one")
            assert cur.fetchall() == [(1,)]
        with pytest.raises(adbc_driver_manager.Error), served.adbc() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")  # no client certificate
