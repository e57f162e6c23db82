"""The ADBC backend adapter: any ADBC driver, by package name or by shared-library path.

Built-in names: ``duckdb`` (the embedded default, DuckDB's own ADBC driver), ``sqlite`` and
``postgresql``. Tables are created from their Arrow schemas by the driver's own bulk-ingest
mapping (``adbc_ingest`` in create mode); label columns added later use the same types via
sqlglot's dialects.

Connection options that are hyprstream's, not the driver's, are taken out of the URI and the
options before the driver sees them (spec/backend.md, BE-7): ``pool_min`` and ``pool_max``
bound the connection pool, ``connect_timeout`` (seconds) bounds opening a connection and
``write_timeout`` (seconds) bounds a batch's write and commit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import adbc_driver_manager
import adbc_driver_manager.dbapi as adbc_dbapi
import pyarrow as pa
import sqlglot
from sqlglot import exp

from hyprstream._secrets import REDACTED, redact_text, redact_uri
from hyprstream.backend._port import (
    BATCH_SCHEMA,
    BATCHES_TABLE,
    METRICS_TABLE,
    WINDOWS_TABLE,
    BatchAck,
    DuplicateBatch,
    StoredBatch,
)
from hyprstream.backend._types import confine, duckdb_type
from hyprstream.backend._types import quote_identifier as _quote
from hyprstream.backend._watchdog import Watchdog
from hyprstream.errors import ConfigError, InvalidQuery, Unavailable
from hyprstream.model import METRIC_ID, RUNNING_COUNT, TIMESTAMP, as_instants, metrics_schema

__all__ = [
    "AdbcBackend",
    "ConnectionSettings",
    "DriverSpec",
    "connection_settings",
    "resolve_driver",
]

log = logging.getLogger("hyprstream.backend")

#: Options hyprstream consumes itself (BE-7), with their defaults.
POOL_MIN, POOL_MAX, CONNECT_TIMEOUT_S, WRITE_TIMEOUT_S = 1, 4, 10.0, 30.0
_OWN_OPTIONS = frozenset({"pool_min", "pool_max", "connect_timeout", "write_timeout"})


@dataclass(frozen=True, slots=True)
class DriverSpec:
    """How to load an ADBC driver and which SQL dialect its database speaks."""

    module: str | None  # a Python package with connect() -> AdbcDatabase, or None with driver_path
    dialect: str  # sqlglot dialect name
    driver_path: str | None = None
    index: bool = True  # create the (metric_id, timestamp) index

    @property
    def name(self) -> str:
        return self.module or f"driver at {self.driver_path}"


_KNOWN = {
    "duckdb": DriverSpec("adbc_driver_duckdb", "duckdb", index=False),
    "sqlite": DriverSpec("adbc_driver_sqlite", "sqlite"),
    "postgresql": DriverSpec("adbc_driver_postgresql", "postgres"),
}
_ALIASES = {
    "adbc_driver_duckdb": "duckdb",
    "adbc_driver_sqlite": "sqlite",
    "file": "sqlite",
    "postgres": "postgresql",
    "adbc_driver_postgresql": "postgresql",
}


def _known(name: str) -> DriverSpec | None:
    return _KNOWN.get(_ALIASES.get(name, name))


def _guess_dialect(package: str, scheme: str) -> str:
    """The SQL dialect of a driver package we do not know: from the URI's scheme if that is
    known, else from ``adbc_driver_<name>`` if sqlglot has a dialect ``<name>``, else
    PostgreSQL's (the most common ADBC dialect)."""
    spec = _known(scheme)
    if spec is not None:
        return spec.dialect
    name = package.removeprefix("adbc_driver_").lower()
    try:
        sqlglot.Dialect.get_or_raise(name)
    except ValueError:
        return "postgres"
    return name


def resolve_driver(
    uri: str, *, driver: str | None = None, driver_path: str | None = None
) -> DriverSpec:
    """Pick the driver from an explicit name, a shared-library path, or the URI's scheme."""
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    if driver_path:
        spec = _known(scheme)
        return DriverSpec(None, spec.dialect if spec else "postgres", driver_path=driver_path)
    if driver:
        return _known(driver) or DriverSpec(driver, _guess_dialect(driver, scheme))
    spec = _known(scheme)
    if spec is None:
        raise ConfigError(
            "cannot tell which ADBC driver to use for this connection; use a postgresql://, "
            "sqlite:// or duckdb:// URI, or set --engine-options driver=<package> or "
            "driver_path=<file>"
        )
    return spec


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionSettings:
    """A backend connection, ready for the driver; ``repr`` shows no secret."""

    uri: str = field(repr=False)  # credentials applied: never logged
    display: str
    spec: DriverSpec
    db_kwargs: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: Values redacted from driver errors (BE-5): the configured password.
    secrets: tuple[str, ...] = field(default=(), repr=False)
    pool_min: int = POOL_MIN
    pool_max: int = POOL_MAX
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    write_timeout_s: float = WRITE_TIMEOUT_S


def _number(own: Mapping[str, str], name: str, default: Any, kind: Callable[[str], Any]) -> Any:
    """Option ``name`` from ``own`` as a ``kind``, else ``default``; positive (pool_min: >= 0)."""
    if name not in own:
        return default
    text = own[name]
    try:
        value = kind(text)
    except ValueError:
        raise ConfigError(f"backend option {name} must be a number, got {text!r}") from None
    if value < 0 or (value == 0 and name != "pool_min"):
        raise ConfigError(f"backend option {name} must be positive, got {text!r}")
    return value


def connection_settings(
    uri: str,
    *,
    options: Mapping[str, str] | None = None,
    username: str | None = None,
    password: str | None = None,
    display: str | None = None,
) -> ConnectionSettings:
    """Split hyprstream's own options from the driver's and apply credentials (BE-7, CFG-4).

    ``username`` and ``password`` (already chosen by precedence: environment, then flags)
    replace any in the URI; without them the URI's own are used.
    """
    opts = dict(options or {})
    spec = resolve_driver(
        uri, driver=opts.pop("driver", None), driver_path=opts.pop("driver_path", None)
    )
    parts = urllib.parse.urlsplit(uri)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in query if k in _OWN_OPTIONS}
    own.update({k: opts.pop(k) for k in list(opts) if k in _OWN_OPTIONS})
    kept = urllib.parse.urlencode([(k, v) for k, v in query if k not in _OWN_OPTIONS])
    netloc = parts.netloc
    if username is not None or password is not None:
        host = netloc.rpartition("@")[2]
        user = username if username is not None else urllib.parse.unquote(parts.username or "")
        userinfo = urllib.parse.quote(user, safe="")
        if password is not None:
            userinfo += ":" + urllib.parse.quote(password, safe="")
        netloc = f"{userinfo}@{host}" if userinfo else host
    clean = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, kept, parts.fragment))
    if spec.module != "adbc_driver_postgresql" and spec.driver_path is None:
        # Drivers without URI credentials take the standard ADBC options.
        if username is not None:
            opts.setdefault("username", username)
        if password is not None:
            opts.setdefault("password", password)
    pool_min = _number(own, "pool_min", POOL_MIN, int)
    pool_max = _number(own, "pool_max", POOL_MAX, int)
    if pool_min > pool_max:
        raise ConfigError(f"backend option pool_min ({pool_min}) exceeds pool_max ({pool_max})")
    return ConnectionSettings(
        uri=clean,
        display=display or f"{spec.name} at {redact_uri(clean)}",
        spec=spec,
        db_kwargs=opts,
        secrets=(password,) if password else (),
        pool_min=pool_min,
        pool_max=pool_max,
        connect_timeout_s=_number(own, "connect_timeout", CONNECT_TIMEOUT_S, float),
        write_timeout_s=_number(own, "write_timeout", WRITE_TIMEOUT_S, float),
    )


def _open_database(settings: ConnectionSettings) -> adbc_driver_manager.AdbcDatabase:
    spec = settings.spec
    kwargs = dict(settings.db_kwargs)
    if spec.driver_path is not None:
        return adbc_driver_manager.AdbcDatabase(driver=spec.driver_path, uri=settings.uri, **kwargs)
    try:
        module = importlib.import_module(str(spec.module))
    except ImportError as exc:
        raise ConfigError(
            f"the ADBC driver package {spec.module!r} is not installed (pip install "
            f"{str(spec.module).replace('_', '-')})"
        ) from exc
    uri = settings.uri
    if spec.module == "adbc_driver_duckdb":
        path = (
            uri.removeprefix("duckdb://").removeprefix("/") if uri.startswith("duckdb://") else uri
        )
        return module.connect(path or ":memory:", **kwargs)  # type: ignore[no-any-return]
    if spec.module == "adbc_driver_sqlite":
        # sqlite:///abs/path (or sqlite:/abs/path once normalised) names a file; file: URIs
        # go to SQLite as they are.
        path = uri.removeprefix("sqlite:").removeprefix("//") if uri.startswith("sqlite:") else uri
        path = path or ":memory:"
        if not kwargs:  # its connect() takes the URI alone
            return module.connect(path)  # type: ignore[no-any-return]
        return adbc_driver_manager.AdbcDatabase(driver=module._driver_path(), uri=path, **kwargs)
    return module.connect(uri, db_kwargs=kwargs or None)  # type: ignore[no-any-return]


def _with_instants(table: pa.Table, names: Sequence[str]) -> pa.Table:
    """``table`` with the instants among ``names`` as ``timestamp[us, tz=UTC]``."""
    for name in names:
        if name in table.column_names:
            index = table.schema.get_field_index(name)
            table = table.set_column(index, name, as_instants(table[name]))
    return table


def _clean(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    """A driver error as one line, with URI passwords and known secrets redacted."""
    text = " ".join(str(exc).split())
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return redact_text(text)[:500]


def _within(
    call: Callable[[], Any], settings: ConnectionSettings, *, close: Callable[[Any], None]
) -> Any:
    """``call()`` (which connects) within connect_timeout, on a helper thread that the caller
    abandons when it takes longer; whatever it returns late is closed."""
    box: dict[str, Any] = {}
    done = threading.Event()
    abandoned = threading.Event()

    def run() -> None:
        try:
            value = call()
        except BaseException as exc:
            box["error"] = exc
        else:
            if abandoned.is_set():
                with contextlib.suppress(Exception):
                    close(value)
            else:
                box["value"] = value
        finally:
            done.set()

    threading.Thread(target=run, name="hyprstream-backend-connect", daemon=True).start()
    timeout = settings.connect_timeout_s
    if not done.wait(timeout):
        abandoned.set()
        raise Unavailable(
            f"backend ({settings.display}) did not accept a connection within {timeout:g} s "
            "(connect_timeout)"
        )
    if "error" in box:
        error = box["error"]
        if isinstance(error, ConfigError | Unavailable):
            raise error
        raise Unavailable(
            f"cannot connect to the backend ({settings.display}): {_clean(error, settings.secrets)}"
        ) from None
    return box["value"]


class _Pool:
    """A bounded pool of ADBC connections to one database, opened with a timeout."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self._settings = settings
        self._cond = threading.Condition()
        self._idle: list[adbc_dbapi.Connection] = []
        self._size = 0
        self._closed = False
        database = _within(lambda: _open_database(settings), settings, close=lambda d: d.close())
        self._db = adbc_dbapi._SharedDatabase(database)

    def _open(self) -> adbc_dbapi.Connection:
        """Open a connection within connect_timeout."""

        def connect() -> adbc_dbapi.Connection:
            handle = adbc_driver_manager.AdbcConnection(self._db._db)
            # Connection takes its own reference to the shared database (and gives it up on
            # close): one more here would keep the database open after the pool closes, and
            # with it the lock on an embedded DuckDB file.
            return adbc_dbapi.Connection(self._db, handle, autocommit=False)

        conn: adbc_dbapi.Connection = _within(connect, self._settings, close=lambda c: c.close())
        return conn

    def warm(self) -> None:
        for _ in range(self._settings.pool_min):
            conn = self._open()
            with self._cond:
                self._size += 1
                self._idle.append(conn)

    @contextlib.contextmanager
    def connection(self) -> Iterator[adbc_dbapi.Connection]:
        """A connection for the duration of the block; broken connections are discarded."""
        conn = self._acquire()
        broken = False
        try:
            yield conn
        except BaseException:
            broken = True
            raise
        finally:
            self._release(conn, broken)

    def _acquire(self) -> adbc_dbapi.Connection:
        deadline = time.monotonic() + self._settings.connect_timeout_s
        with self._cond:
            while True:
                if self._closed:
                    raise Unavailable("the backend connection pool is closed")
                if self._idle:
                    return self._idle.pop()
                if self._size < self._settings.pool_max:
                    self._size += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Unavailable(
                        f"no backend connection free within {self._settings.connect_timeout_s:g} s "
                        f"(pool_max={self._settings.pool_max})"
                    )
                self._cond.wait(remaining)
        try:
            return self._open()
        except BaseException:
            with self._cond:
                self._size -= 1
                self._cond.notify()
            raise

    def _release(self, conn: adbc_dbapi.Connection, broken: bool) -> None:
        with self._cond:
            if not (broken or self._closed):
                self._idle.append(conn)
                self._cond.notify()
                return
        # Discarded: closed before its place is given up, so pool_max bounds open connections.
        if broken:
            with contextlib.suppress(Exception):
                conn.rollback()
        with contextlib.suppress(Exception):
            conn.close()
        with self._cond:
            self._size -= 1
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._size -= len(idle)
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()
        with contextlib.suppress(Exception):
            self._db.close()


def _timestamp(us: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)


class AdbcBackend:
    """Writes each batch with ``adbc_ingest`` in one transaction on a pooled connection."""

    def __init__(self, settings: ConnectionSettings, *, window_schema: pa.Schema) -> None:
        self._settings = settings
        self._spec = settings.spec
        self._window_schema = window_schema
        #: The bind parameter in the driver's syntax (libpq numbers them).
        self._param = "$1" if self._spec.dialect == "postgres" else "?"
        self._schema_lock = threading.Lock()
        self._pool = _Pool(settings)
        try:
            self._pool.warm()
            self._schema = self._ensure_tables()
            if self._spec.dialect == "duckdb":
                self._confine_duckdb()
        except BaseException:
            self._pool.close()
            raise
        self._watchdog = Watchdog("hyprstream-backend-watchdog")

    def _confine_duckdb(self) -> None:
        """Client statements reach an embedded DuckDB backend (client tables): give it the
        hot cache's confinement (FSQL-20): no files, no extensions, no settings changes.

        Before locking, one setting of our own: checkpoints once the write-ahead log reaches
        32 MB rather than 16 MB. Every acknowledged batch is in the log either way (a commit
        syncs it). A checkpoint runs inside the commit that crosses the threshold, and later
        commits wait for it, so its size is a stall of ingest: about 0.25 s at 32 MB. At
        256 MB (the setting before) it was about 1 s, and sustained ingest was slower, not
        faster (20M samples: 0.90M samples/s with 2 s stalls, against 1.01M with 0.28 s;
        only a burst too short to reach a checkpoint gained). A restart replays at most that
        much log."""
        with self._translate("lock its configuration"), self._pool.connection() as conn:
            with conn.cursor() as cur:
                confine(cur, "checkpoint_threshold = '32MB'")
            conn.commit()

    @property
    def description(self) -> str:
        return self._settings.display

    @property
    def dialect(self) -> str:
        return self._spec.dialect

    @contextlib.contextmanager
    def _translate(
        self,
        what: str,
        *,
        refused: str | None = None,
        refusals: tuple[type[Exception], ...] = (
            adbc_dbapi.ProgrammingError,
            adbc_dbapi.IntegrityError,
        ),
        refused_words: tuple[str, ...] = (),
    ) -> Iterator[None]:
        """Driver errors as ``Unavailable`` ("could not <what>"). Given ``refused``, errors
        that are the statement's fault (one of ``refusals``, or a message with one of
        ``refused_words``) as ``InvalidQuery`` ("refused the <refused>")."""
        try:
            yield
        except (Unavailable, ConfigError, DuplicateBatch, InvalidQuery):
            raise
        except Exception as exc:
            text = _clean(exc, self._settings.secrets)
            if refused is not None and (
                isinstance(exc, refusals) or any(w in text.lower() for w in refused_words)
            ):
                raise InvalidQuery(f"the backend refused the {refused}: {text}") from None
            raise Unavailable(
                f"backend ({self._settings.display}) could not {what}: {text}"
            ) from None

    def _table_schema(self, conn: adbc_dbapi.Connection, table: str) -> pa.Schema | None:
        try:
            schema: pa.Schema = conn.adbc_get_table_schema(table)
        except adbc_dbapi.Error:
            conn.rollback()
            return None
        return schema

    def _metrics_schema(self, conn: adbc_dbapi.Connection) -> pa.Schema:
        schema = self._table_schema(conn, METRICS_TABLE)
        conn.commit()
        if schema is None:
            raise Unavailable(f"backend ({self._settings.display}) lost its metrics table")
        return schema

    def _ensure_tables(self) -> pa.Schema:
        metrics_index = (
            f"CREATE INDEX IF NOT EXISTS {_quote(METRICS_TABLE + '_metric_ts')} "
            f"ON {_quote(METRICS_TABLE)} ({METRIC_ID}, {_quote(TIMESTAMP)})"
        )
        batches_index = (
            f"CREATE UNIQUE INDEX IF NOT EXISTS {_quote(BATCHES_TABLE + '_id')} "
            f"ON {_quote(BATCHES_TABLE)} (batch_id)"
        )
        tables = (
            (METRICS_TABLE, metrics_schema(), metrics_index if self._spec.index else None),
            (BATCHES_TABLE, BATCH_SCHEMA, batches_index),
            (WINDOWS_TABLE, self._window_schema, None),
        )
        # Each table in its own transaction: a failed existence check rolls back.
        with (
            self._schema_lock,
            self._translate("prepare its tables"),
            self._pool.connection() as conn,
        ):
            for table, schema, index in tables:
                if self._table_schema(conn, table) is None:
                    with conn.cursor() as cur:
                        cur.adbc_ingest(table, schema.empty_table(), mode="create")
                        if index is not None:
                            cur.execute(index)
                    conn.commit()
            return self._metrics_schema(conn)

    def label_fields(self) -> list[pa.Field]:
        core = set(metrics_schema().names)
        return [f for f in self._schema if f.name not in core]

    def add_labels(self, fields: list[pa.Field]) -> None:
        with (
            self._schema_lock,
            self._translate("add label columns"),
            self._pool.connection() as conn,
        ):
            with conn.cursor() as cur:
                for f in fields:
                    sql_type = exp.DataType.build(duckdb_type(f.type), dialect="duckdb").sql(
                        dialect=self._spec.dialect
                    )
                    column = f"{_quote(f.name)} {sql_type}"
                    cur.execute(f"ALTER TABLE {_quote(METRICS_TABLE)} ADD COLUMN {column}")
            conn.commit()
            self._schema = self._metrics_schema(conn)

    def write(self, batch: StoredBatch) -> None:
        """Commit the batch, its closed windows and its id in one transaction (BE-1, BE-6);
        past write_timeout the statement is cancelled (BE-9)."""
        timeout = self._settings.write_timeout_s
        fired = threading.Event()
        try:
            with self._pool.connection() as conn, conn.cursor() as cur:

                def expire() -> None:
                    fired.set()
                    _cancel(cur)

                with self._watchdog.deadline(timeout, expire):
                    self._write(cur, batch)
                    conn.commit()
        except Unavailable:
            raise
        except Exception as exc:
            if batch.batch_id is not None and _is_unique_violation(exc):
                # Only a stored id makes this a duplicate: any other constraint failure
                # must not be acknowledged as if the batch were already committed.
                first = self.batch_ack(batch.batch_id)
                if first is not None:
                    raise DuplicateBatch(batch.batch_id, first) from None
            reason = (
                f"timed out after {timeout:g} s (write_timeout)"
                if fired.is_set()
                else _clean(exc, self._settings.secrets)
            )
            raise Unavailable(
                f"backend ({self._settings.display}) did not commit the batch, so it was not "
                f"acknowledged: {reason}"
            ) from None

    @staticmethod
    def _write(cur: adbc_dbapi.Cursor, batch: StoredBatch) -> None:
        if batch.rows.num_rows:
            cur.adbc_ingest(METRICS_TABLE, batch.rows, mode="append")
        if batch.windows is not None and batch.windows.num_rows:
            cur.adbc_ingest(WINDOWS_TABLE, batch.windows, mode="append")
        if batch.batch_id is not None:
            ack = batch.ack or BatchAck(batch.rows.num_rows, 0)
            marker = pa.table(
                [
                    pa.array([batch.batch_id], pa.utf8()),
                    pa.array([ack.accepted], pa.int64()),
                    pa.array([ack.late], pa.int64()),
                    pa.array([batch.committed_at_us], pa.timestamp("us", tz="UTC")),
                ],
                schema=BATCH_SCHEMA,
            )
            cur.adbc_ingest(BATCHES_TABLE, marker, mode="append")

    def _select(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            table: pa.Table = cur.fetch_arrow_table()
            conn.commit()
            return table

    def _select_since(self, sql: str, condition: str, since_us: int | None) -> pa.Table:
        """``sql``, with ``WHERE <condition> <the instant since_us>`` unless that is None."""
        if since_us is None:
            return self._select(sql)
        return self._select(f"{sql} WHERE {condition} {self._param}", [_timestamp(since_us)])

    def _select_instant(self, sql: str) -> int | None:
        """The timestamp that ``sql`` selects, in microseconds (None for NULL)."""
        column = as_instants(self._select(sql).column(0))
        value = column.cast(pa.int64())[0].as_py()
        return None if value is None else int(value)

    def scan(self, since_us: int | None) -> Iterator[pa.RecordBatch]:
        """The stored samples, streamed: memory holds one of the driver's batches at a time,
        not the table (a restart may read many millions of rows)."""
        sql = f"SELECT * FROM {_quote(METRICS_TABLE)}"
        params = None
        if since_us is not None:
            sql = f"{sql} WHERE {_quote(TIMESTAMP)} >= {self._param}"
            params = [_timestamp(since_us)]
        what = "read stored samples"
        # The connection is held until the last batch is read. A generator closed before its
        # end discards it (the pool treats the GeneratorExit as a failure): a half-read
        # result never goes back to the pool.
        with contextlib.ExitStack() as held:
            with self._translate(what):
                conn = held.enter_context(self._pool.connection())
                cur = held.enter_context(conn.cursor())
                cur.execute(sql, params)
                reader = cur.fetch_record_batch()
            while True:
                with self._translate(what):
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        break
                if batch.num_rows:
                    table = _with_instants(pa.Table.from_batches([batch]), (TIMESTAMP,))
                    yield from table.to_batches()
            with self._translate(what):
                conn.commit()

    def scan_windows(self, since_end_us: int | None) -> Iterator[pa.RecordBatch]:
        with self._translate("read stored windows"):
            table = self._select_since(
                f"SELECT * FROM {_quote(WINDOWS_TABLE)}", "window_end >", since_end_us
            )
        names = ("window_start", "window_end", "first_timestamp", "last_timestamp")
        yield from _with_instants(table, names).to_batches()

    def stream_time(self) -> int | None:
        with self._translate("read stream time"):
            return self._select_instant(
                f"SELECT max({_quote(TIMESTAMP)}) AS t FROM {_quote(METRICS_TABLE)} "
                f"WHERE {RUNNING_COUNT} IS NOT NULL"
            )

    def oldest_sample(self) -> int | None:
        with self._translate("read its oldest sample"):
            return self._select_instant(
                f"SELECT min({_quote(TIMESTAMP)}) AS t FROM {_quote(METRICS_TABLE)}"
            )

    @property
    def queryable(self) -> bool:
        return True

    def batch_acks(self, since_us: int | None) -> dict[str, BatchAck]:
        with self._translate("read batch ids"):
            table = self._select_since(
                f"SELECT batch_id, accepted, late FROM {_quote(BATCHES_TABLE)}",
                "committed_at >=",
                since_us,
            )
        return {
            r["batch_id"]: BatchAck(int(r["accepted"]), int(r["late"])) for r in table.to_pylist()
        }

    def batch_ack(self, batch_id: str) -> BatchAck | None:
        with self._translate("read a batch id"):
            table = self._select(
                f"SELECT accepted, late FROM {_quote(BATCHES_TABLE)} "
                f"WHERE batch_id = {self._param}",
                [batch_id],
            )
        rows = table.to_pylist()
        return BatchAck(int(rows[0]["accepted"]), int(rows[0]["late"])) if rows else None

    def tables(self) -> set[str]:
        with self._translate("list its tables"), self._pool.connection() as conn:
            objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
            conn.commit()
        names: set[str] = set()
        for catalog in objects:
            for schema in catalog.get("catalog_db_schemas") or []:
                if schema.get("db_schema_name") in ("information_schema", "pg_catalog"):
                    continue
                for table in schema.get("db_schema_tables") or []:
                    names.add(table["table_name"])
        return names - {BATCHES_TABLE, WINDOWS_TABLE}

    def query(self, sql: str, params: pa.RecordBatch | Sequence[Any] | None = None) -> pa.Table:
        with self._translate(
            "run the query", refused="query", refusals=(adbc_dbapi.ProgrammingError,)
        ):
            return self._select(sql, params)

    def execute(self, sql: str, params: pa.RecordBatch | Sequence[Any] | None = None) -> int:
        """Run an update or DDL statement in its own transaction; rows affected or -1."""
        with (
            self._translate("run the statement", refused="statement"),
            self._pool.connection() as conn,
            conn.cursor() as cur,
        ):
            if isinstance(params, pa.RecordBatch) and params.num_rows > 1:
                # One execution per row, in one transaction (not every driver binds
                # several rows at once).
                count = 0
                for i in range(params.num_rows):
                    cur.execute(sql, params.slice(i, 1))
                    count += max(cur.rowcount or 0, 0)
            else:
                cur.execute(sql, params)
                count = cur.rowcount
            conn.commit()
        return int(count) if count is not None else -1

    def ingest(self, table: str, data: pa.Table, mode: str) -> int:
        """``adbc_ingest`` into a client table in one transaction; returns the rows written."""
        with (
            self._translate(
                f"ingest into {table!r}",
                refused="ingest",
                refused_words=("already exists", "does not exist"),
            ),
            self._pool.connection() as conn,
            conn.cursor() as cur,
        ):
            cur.adbc_ingest(table, data, mode=mode)  # type: ignore[arg-type]
            conn.commit()
        return int(data.num_rows)

    def table_schema(self, table: str) -> pa.Schema | None:
        with self._translate("read a table schema"), self._pool.connection() as conn:
            schema = self._table_schema(conn, table)
            conn.commit()
            return schema

    def close(self) -> None:
        self._watchdog.close()
        self._pool.close()


def _cancel(cursor: adbc_dbapi.Cursor) -> None:
    with contextlib.suppress(Exception):
        cursor.adbc_cancel()


def _is_unique_violation(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, adbc_dbapi.IntegrityError) or "unique" in text or "duplicate key" in text
