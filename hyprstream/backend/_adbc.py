"""The ADBC backend adapter: any ADBC driver, by package name or by shared-library path.

Built-in names: ``duckdb`` (the embedded default, DuckDB's own ADBC driver), ``sqlite`` and
``postgresql``. The stored table is created from the Arrow schema by the driver itself
(``adbc_ingest`` in create mode), so column types are the driver's own mapping; label
columns added later use the same mapping through sqlglot's dialects.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import adbc_driver_manager.dbapi as adbc_dbapi
import pyarrow as pa
from sqlglot import exp

from hyprstream._secrets import redact_text
from hyprstream.backend._types import duckdb_type
from hyprstream.errors import ConfigError, Unavailable
from hyprstream.model import METRIC_ID, TIMESTAMP, metrics_schema

__all__ = ["AdbcBackend", "DriverSpec", "resolve_driver"]


@dataclass(frozen=True, slots=True)
class DriverSpec:
    """How to load an ADBC driver and which SQL dialect its database speaks."""

    module: str | None  # a Python package exposing .dbapi.connect, or None with driver_path
    dialect: str  # sqlglot dialect name
    driver_path: str | None = None
    index: bool = True  # create the (metric_id, timestamp) index

    @property
    def name(self) -> str:
        return self.module or f"driver at {self.driver_path}"


_KNOWN = {
    "duckdb": DriverSpec("adbc_driver_duckdb", "duckdb", index=False),
    "adbc_driver_duckdb": DriverSpec("adbc_driver_duckdb", "duckdb", index=False),
    "sqlite": DriverSpec("adbc_driver_sqlite", "sqlite"),
    "adbc_driver_sqlite": DriverSpec("adbc_driver_sqlite", "sqlite"),
    "postgresql": DriverSpec("adbc_driver_postgresql", "postgres"),
    "postgres": DriverSpec("adbc_driver_postgresql", "postgres"),
    "adbc_driver_postgresql": DriverSpec("adbc_driver_postgresql", "postgres"),
}


def resolve_driver(
    uri: str, *, driver: str | None = None, driver_path: str | None = None
) -> DriverSpec:
    """Pick the driver from an explicit name, a shared-library path, or the URI's scheme."""
    if driver_path:
        scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
        dialect = _KNOWN[scheme].dialect if scheme in _KNOWN else "postgres"
        return DriverSpec(None, dialect, driver_path=driver_path)
    if driver:
        if driver in _KNOWN:
            return _KNOWN[driver]
        return DriverSpec(driver, "duckdb")
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    if scheme in ("postgresql", "postgres"):
        return _KNOWN["postgresql"]
    if scheme in ("sqlite", "file"):
        return _KNOWN["sqlite"]
    if scheme == "duckdb":
        return _KNOWN["duckdb"]
    raise ConfigError(
        "cannot tell which ADBC driver to use for this connection; use a postgresql://, "
        "sqlite:// or duckdb:// URI, or set --engine-options driver=<package> or driver_path=<file>"
    )


def _connect(spec: DriverSpec, uri: str, db_kwargs: Mapping[str, str]) -> Any:
    if spec.driver_path is not None:
        return adbc_dbapi.connect(
            driver=spec.driver_path, db_kwargs={"uri": uri, **db_kwargs}, autocommit=False
        )
    try:
        dbapi = importlib.import_module(f"{spec.module}.dbapi")
    except ImportError as exc:
        raise ConfigError(
            f"the ADBC driver package {spec.module!r} is not installed (pip install "
            f"{str(spec.module).replace('_', '-')})"
        ) from exc
    if spec.module == "adbc_driver_duckdb":
        path = (
            uri.removeprefix("duckdb://").removeprefix("/") if uri.startswith("duckdb://") else uri
        )
        return dbapi.connect(path or ":memory:")
    if spec.module == "adbc_driver_sqlite":
        path = uri.removeprefix("sqlite://") if uri.startswith("sqlite://") else uri
        return dbapi.connect(path, db_kwargs=dict(db_kwargs) or None, autocommit=False)
    return dbapi.connect(uri, db_kwargs=dict(db_kwargs) or None, autocommit=False)


class AdbcBackend:
    """Writes each batch with ``adbc_ingest`` and commits it, one transaction per batch."""

    def __init__(
        self,
        uri: str,
        *,
        spec: DriverSpec,
        table: str = "metrics",
        db_kwargs: Mapping[str, str] | None = None,
        display: str | None = None,
    ) -> None:
        self._spec = spec
        self._table = table
        self._display = display or spec.name
        self._lock = threading.Lock()
        try:
            self._conn = _connect(spec, uri, db_kwargs or {})
        except ConfigError:
            raise
        except Exception as exc:
            raise Unavailable(
                f"cannot connect to the backend ({self._display}): {_clean(exc)}"
            ) from None
        self._schema = self._ensure_table()

    @property
    def description(self) -> str:
        return self._display

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    def _quote(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def _ensure_table(self) -> pa.Schema:
        with self._lock, self._translate("prepare the metrics table"):
            try:
                existing: pa.Schema = self._conn.adbc_get_table_schema(self._table)
            except Exception:
                self._conn.rollback()
                existing = None
            if existing is None:
                with self._conn.cursor() as cur:
                    cur.adbc_ingest(self._table, metrics_schema().empty_table(), mode="create")
                    if self._spec.index:
                        cur.execute(
                            f"CREATE INDEX IF NOT EXISTS {self._quote(self._table + '_metric_ts')} "
                            f"ON {self._quote(self._table)} ({METRIC_ID}, {self._quote(TIMESTAMP)})"
                        )
                self._conn.commit()
                existing = self._conn.adbc_get_table_schema(self._table)
            return existing

    @contextlib.contextmanager
    def _translate(self, what: str) -> Iterator[None]:
        try:
            yield
        except (Unavailable, ConfigError):
            raise
        except Exception as exc:
            raise Unavailable(
                f"backend ({self._display}) could not {what}: {_clean(exc)}"
            ) from None

    def label_fields(self) -> list[pa.Field]:
        core = set(metrics_schema().names)
        return [f for f in self._schema if f.name not in core]

    def add_labels(self, fields: list[pa.Field]) -> None:
        with self._lock, self._translate("add label columns"):
            with self._conn.cursor() as cur:
                for field in fields:
                    sql_type = exp.DataType.build(duckdb_type(field.type), dialect="duckdb").sql(
                        dialect=self._spec.dialect
                    )
                    table, column = self._quote(self._table), self._quote(field.name)
                    cur.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")
            self._conn.commit()
            self._schema = self._conn.adbc_get_table_schema(self._table)

    def write(self, rows: pa.Table) -> None:
        with self._lock:
            try:
                with self._conn.cursor() as cur:
                    cur.adbc_ingest(self._table, rows, mode="append")
                self._conn.commit()
            except Exception as exc:
                with contextlib.suppress(Exception):
                    self._conn.rollback()
                raise Unavailable(
                    f"backend ({self._display}) did not commit the batch, so it was not "
                    f"acknowledged: {_clean(exc)}"
                ) from None

    def scan(self, since_us: int | None) -> Iterator[pa.RecordBatch]:
        with self._lock, self._translate("read stored samples"):
            with self._conn.cursor() as cur:
                sql = f"SELECT * FROM {self._quote(self._table)}"
                if since_us is None:
                    cur.execute(sql)
                else:
                    since = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
                        microseconds=since_us
                    )
                    cur.execute(sql + f" WHERE {self._quote(TIMESTAMP)} >= ?", (since,))
                table = cur.fetch_arrow_table()
            self._conn.commit()
        yield from table.to_batches()

    def close(self) -> None:
        with self._lock, contextlib.suppress(Exception):
            self._conn.close()


def _clean(exc: BaseException) -> str:
    """A driver error as one line; drivers do not echo passwords, but URIs may carry them."""
    text = " ".join(str(exc).split())
    return redact_text(text)[:500]
