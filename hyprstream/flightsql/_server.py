"""The Arrow Flight / Flight SQL server: a thin shell around the service.

Each handler decodes the request with ``_protocol`` (pure), calls the service, and encodes
the answer. Errors are translated here and only here (spec/flightsql.md, FSQL-30): a
:class:`~hyprstream.errors.HyprstreamError` becomes the Flight status its ``status`` names,
and anything else is a bug, logged with its traceback and reported as INTERNAL without
internals.

Queries run at GetFlightInfo; the result waits under a random handle until the client's
DoGet collects it (or the result cache policy drops it). Ingest is ``DoPut`` on the path
descriptor ``["metrics"]``; each record batch is validated, written through and
acknowledged on its own, with a ``PutResult`` whose metadata is JSON
``{"accepted": n, "late": k}``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import secrets
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa
from pyarrow import flight

from hyprstream._version import __version__
from hyprstream.cachepolicy import CachePolicy, Entry, evictions, may_evict
from hyprstream.errors import (
    HyprstreamError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Status,
    Unsupported,
)
from hyprstream.flightsql import _metadata as md
from hyprstream.flightsql._auth import (
    MIDDLEWARE_KEY,
    AuthMiddlewareFactory,
    HandshakeHandler,
    principal_of,
)
from hyprstream.flightsql._credentials import Credentials
from hyprstream.flightsql._protocol import (
    Int32,
    SqlInfo,
    SqlInfoValue,
    pack,
    pb,
    sql_info_table,
    unpack,
)

__all__ = ["INGEST_PATH", "FlightSqlServer"]

log = logging.getLogger("hyprstream.flightsql")

INGEST_PATH = (b"metrics",)

#: Results wait this long for their DoGet, and at most this much memory is held for them.
RESULT_POLICY = CachePolicy(ttl_ns=300 * 10**9, max_bytes=2 * 1024**3, max_entries=10_000)
#: Prepared statements a client forgot to close are dropped after this long unused.
PREPARED_POLICY = CachePolicy(ttl_ns=None, max_entries=100_000)


class QueryShapeLike(Protocol):
    @property
    def schema(self) -> pa.Schema: ...
    @property
    def parameter_count(self) -> int: ...


class StatementLike(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def parameter_count(self) -> int: ...


class SqlService(Protocol):
    """What the server needs from the layer below it (the service satisfies it)."""

    def ingest_async(
        self, batch: pa.RecordBatch | pa.Table, batch_id: str | None = None
    ) -> Future[Any]: ...
    def query(self, sql: str, params: pa.RecordBatch | Sequence[Any] | None = None) -> pa.Table: ...
    def shape(self, sql: str) -> QueryShapeLike: ...
    def statement(self, sql: str) -> StatementLike: ...
    def update(self, sql: str, params: pa.RecordBatch | Sequence[Any] | None = None) -> int: ...
    def ingest_table(self, table: str, data: pa.Table, mode: str) -> int: ...
    def catalog(self) -> md.Catalog: ...
    def sql_keywords(self) -> list[str]: ...


@contextlib.contextmanager
def _flight_errors(what: str) -> Iterator[None]:
    """Translate hyprstream's errors into Flight statuses, once, at the boundary."""
    try:
        yield
    except flight.FlightError:
        raise
    except HyprstreamError as exc:
        raise _to_flight(exc) from None
    except Exception as exc:
        # Explicit limit: sys.tracebacklimit is 0 in the server (see FlightSqlServer).
        trace = "".join(traceback.format_exception(exc, limit=100))
        log.error("internal error while handling %s\n%s", what, trace)
        raise flight.FlightInternalError(
            f"internal error while handling {what}; the server logged the details"
        ) from None


def _to_flight(exc: HyprstreamError) -> BaseException:
    message = exc.message
    result: BaseException
    match exc.status:
        case Status.INVALID_ARGUMENT:
            result = pa.ArrowInvalid(message)
        case Status.NOT_FOUND:
            result = pa.ArrowKeyError(message)
        case Status.UNIMPLEMENTED:
            result = pa.ArrowNotImplementedError(message)
        case Status.UNAUTHENTICATED:
            result = flight.FlightUnauthenticatedError(message)
        case Status.UNAUTHORIZED:
            result = flight.FlightUnauthorizedError(message)
        case Status.UNAVAILABLE:
            result = flight.FlightUnavailableError(message)
        case Status.DEADLINE_EXCEEDED:
            result = flight.FlightTimedOutError(message)
        case Status.RESOURCE_EXHAUSTED:
            # pyarrow.flight offers no way to send RESOURCE_EXHAUSTED from Python: the
            # client sees UNKNOWN, with this message.
            result = flight.FlightServerError(message)
        case _:
            result = flight.FlightInternalError(message)
    return result


@dataclass(slots=True)
class _Held:
    value: Any
    size: int
    created_ns: int
    last_used_ns: int


class _Registry:
    """Values under random handles, trimmed by a cache policy (results, prepared statements)."""

    def __init__(self, policy: CachePolicy, kind: str) -> None:
        self._policy = policy
        self._kind = kind
        self._items: dict[bytes, _Held] = {}  # in creation order
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, value: Any, size: int = 0) -> bytes:
        handle = secrets.token_bytes(16)
        now = time.monotonic_ns()
        with self._lock:
            self._items[handle] = _Held(value, size, now, now)
            self._bytes += size
            if self._may_evict(now):
                self._trim(now)
        return handle

    def _may_evict(self, now: int) -> bool:
        """Whether the policy could drop anything (else asking it is a pass over every entry
        for nothing). Entries are in creation order: the first is the oldest."""
        oldest = next(iter(self._items.values()), None)
        return may_evict(
            self._policy,
            entries=len(self._items),
            total_bytes=self._bytes,
            oldest_created_ns=None if oldest is None else oldest.created_ns,
            now=now,
        )

    def get(self, handle: bytes) -> Any:
        with self._lock:
            held = self._items.get(handle)
            if held is None:
                raise NotFound(f"unknown or expired {self._kind} handle")
            held.last_used_ns = time.monotonic_ns()
            return held.value

    def pop(self, handle: bytes) -> Any:
        with self._lock:
            held = self._items.pop(handle, None)
            if held is not None:
                self._bytes -= held.size
        if held is None:
            raise NotFound(f"unknown or expired {self._kind} handle")
        return held.value

    def discard(self, handle: bytes) -> None:
        with self._lock:
            held = self._items.pop(handle, None)
            if held is not None:
                self._bytes -= held.size

    def _trim(self, now: int) -> None:
        entries = [
            Entry(key=k, size=h.size, created_ns=h.created_ns, last_used_ns=h.last_used_ns)
            for k, h in self._items.items()
        ]
        for key in evictions(entries, now, self._policy):
            assert isinstance(key, bytes)
            self._bytes -= self._items.pop(key).size

    def __len__(self) -> int:
        return len(self._items)


@dataclass(slots=True)
class _Prepared:
    query: str
    schema: pa.Schema | None
    parameter_count: int
    is_update: bool
    #: The bound parameter rows (one execution per row), as the client sent them.
    parameters: pa.RecordBatch | None = None


def _batch_id(metadata: pa.Buffer | None, prefix: str | None, index: int) -> str | None:
    """A client's batch id: ``{"batch_id": "..."}`` in the batch's app metadata, or the
    descriptor's prefix and the batch's position in the stream (ING-10)."""
    if metadata is not None and metadata.size:
        try:
            value = json.loads(metadata.to_pybytes())
        except ValueError:
            raise InvalidInput('batch app metadata must be JSON like {"batch_id": "..."}') from None
        if not isinstance(value, dict) or not isinstance(value.get("batch_id"), str):
            raise InvalidInput('batch app metadata must be JSON like {"batch_id": "..."}')
        return str(value["batch_id"])
    if prefix is not None:
        return f"{prefix}:{index}"
    return None


class _Acknowledger:
    """Writes one PutResult per ingested batch, in the order the batches arrived (ING-2),
    from whichever thread completes them: a batch answered at once (a duplicate, an empty
    batch) waits for the acknowledgements of the batches before it. Writes are serialised,
    so the writer is never used by two threads at once."""

    def __init__(self, writer: flight.FlightMetadataWriter) -> None:
        self._writer = writer
        self._cond = threading.Condition()
        self._completed: dict[int, Future[Any]] = {}  # done, waiting for earlier ones
        self._next = 0  # the next batch to acknowledge
        self._finished = 0
        self._batches = 0
        self._rows = 0
        self._failure: BaseException | None = None

    def track(self, index: int, future: Future[Any]) -> None:
        """Acknowledge ``future`` (the ``index``-th batch of the stream) once it is done."""
        future.add_done_callback(functools.partial(self._done, index))

    def _done(self, index: int, future: Future[Any]) -> None:
        with self._cond:
            self._completed[index] = future
            while self._next in self._completed:
                self._acknowledge(self._completed.pop(self._next))
                self._next += 1
            self._finished += 1
            self._cond.notify_all()

    def _acknowledge(self, future: Future[Any]) -> None:
        error = future.exception()
        if error is not None:
            self._failure = self._failure or error
            return
        if self._failure is not None:
            return  # acknowledgements stay in order: none after a failed batch
        result = future.result()
        answer = {"accepted": result.accepted, "late": result.late}
        if result.duplicate:
            answer["duplicate"] = True
        try:
            self._writer.write(pa.py_buffer(json.dumps(answer).encode()))
        except Exception:  # the client went away; its stream fails on its side
            log.debug("could not write an ingest acknowledgement", exc_info=True)
        self._batches += 1
        self._rows += result.accepted

    def wait(self, count: int) -> tuple[int, int, BaseException | None]:
        """Wait until ``count`` batches are done; returns (acknowledged, rows, failure)."""
        with self._cond:
            self._cond.wait_for(lambda: self._finished >= count)
        return self._batches, self._rows, self._failure


def _sql_info(server: FlightSqlServer) -> Mapping[int, SqlInfoValue]:
    return {
        SqlInfo.FLIGHT_SQL_SERVER_NAME: "hyprstream",
        SqlInfo.FLIGHT_SQL_SERVER_VERSION: __version__,
        SqlInfo.FLIGHT_SQL_SERVER_ARROW_VERSION: pa.__version__,
        SqlInfo.FLIGHT_SQL_SERVER_READ_ONLY: False,
        SqlInfo.FLIGHT_SQL_SERVER_SQL: True,
        SqlInfo.FLIGHT_SQL_SERVER_SUBSTRAIT: False,
        SqlInfo.FLIGHT_SQL_SERVER_TRANSACTION: Int32(0),  # none: every statement stands alone
        SqlInfo.FLIGHT_SQL_SERVER_CANCEL: False,
        SqlInfo.FLIGHT_SQL_SERVER_BULK_INGESTION: True,
        SqlInfo.FLIGHT_SQL_SERVER_INGEST_TRANSACTIONS_SUPPORTED: False,
        SqlInfo.FLIGHT_SQL_SERVER_STATEMENT_TIMEOUT: Int32(0),
        SqlInfo.FLIGHT_SQL_SERVER_TRANSACTION_TIMEOUT: Int32(0),
        SqlInfo.SQL_DDL_CATALOG: False,
        SqlInfo.SQL_DDL_SCHEMA: False,
        SqlInfo.SQL_DDL_TABLE: True,
        SqlInfo.SQL_IDENTIFIER_CASE: Int32(1),  # case insensitive, as DuckDB
        SqlInfo.SQL_IDENTIFIER_QUOTE_CHAR: '"',
        SqlInfo.SQL_QUOTED_IDENTIFIER_CASE: Int32(1),
        SqlInfo.SQL_NULL_ORDERING: Int32(3),  # nulls sorted at the end
        SqlInfo.SQL_KEYWORDS: server.service.sql_keywords(),
        SqlInfo.SQL_SEARCH_STRING_ESCAPE: md.LIKE_ESCAPE,
        SqlInfo.SQL_EXTRA_NAME_CHARACTERS: "",
        SqlInfo.SQL_ALL_TABLES_ARE_SELECTABLE: True,
        SqlInfo.SQL_SUPPORTS_COLUMN_ALIASING: True,
        SqlInfo.SQL_NULL_PLUS_NULL_IS_NULL: True,
        SqlInfo.SQL_TRANSACTIONS_SUPPORTED: False,
    }


_BATCH_BYTES = 4 * 1024**2

#: The result of an update or DDL statement run as a query (ADBC's execute() does that).
UPDATE_RESULT_SCHEMA = pa.schema([pa.field("rows_affected", pa.int64(), nullable=False)])

#: adbc_ingest modes from CommandStatementIngest's table definition options.
_INGEST_MODES = {
    (1, 1): "create",  # (CREATE, FAIL)
    (2, 2): "append",  # (FAIL, APPEND)
    (1, 3): "replace",  # (CREATE, REPLACE)
    (1, 2): "create_append",  # (CREATE, APPEND)
}

_METADATA: dict[type[Any], Callable[[md.Catalog, Any], pa.Table]] = {
    pb.CommandGetCatalogs: lambda c, cmd: md.get_catalogs(c),
    pb.CommandGetDbSchemas: md.get_db_schemas,
    pb.CommandGetTables: md.get_tables,
    pb.CommandGetTableTypes: lambda c, cmd: md.get_table_types(c),
    pb.CommandGetPrimaryKeys: md.get_primary_keys,
    pb.CommandGetExportedKeys: md.get_exported_keys,
    pb.CommandGetImportedKeys: md.get_imported_keys,
    pb.CommandGetCrossReference: md.get_cross_reference,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsFiles:
    """PEM contents: the server's certificate chain and key, and (for mutual TLS) the CA
    that client certificates must chain to."""

    cert: bytes
    key: bytes = field(repr=False)
    client_ca: bytes | None = None


class FlightSqlServer(flight.FlightServerBase):  # type: ignore[misc]
    """Serves ingest (Arrow Flight DoPut) and SQL (Flight SQL) for one service."""

    def __init__(
        self,
        service: SqlService,
        location: str,
        *,
        credentials: Credentials | None = None,
        tls: TlsFiles | None = None,
        **kwargs: Any,
    ) -> None:
        # Without this, pyarrow appends the handler's Python traceback to the message of
        # every INVALID_ARGUMENT / NOT_FOUND / UNIMPLEMENTED error it sends to clients.
        sys.tracebacklimit = 0
        options: dict[str, Any] = {}
        if credentials is not None:
            # Without credentials every caller is anonymous (``principal_of``), and no
            # middleware runs: it costs three Python callbacks on every call.
            options["middleware"] = {MIDDLEWARE_KEY: AuthMiddlewareFactory(credentials)}
            options["auth_handler"] = HandshakeHandler()
        if tls is not None:
            options["tls_certificates"] = [flight.CertKeyPair(tls.cert, tls.key)]
            if tls.client_ca is not None:
                options["verify_client"] = True
                options["root_certificates"] = tls.client_ca
        super().__init__(location, **options, **kwargs)
        self.service = service
        self._results = _Registry(RESULT_POLICY, "result")
        self._prepared = _Registry(PREPARED_POLICY, "prepared statement")
        self._info = _sql_info(self)

    # -- queries -----------------------------------------------------------------------------

    def get_flight_info(
        self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor
    ) -> flight.FlightInfo:
        with _flight_errors("GetFlightInfo"):
            command = self._command(descriptor)
            table = self._execute(context, command)
            handle = self._results.put(table, table.nbytes)
            ticket = flight.Ticket(pack(pb.TicketStatementQuery(statement_handle=handle)))
            return flight.FlightInfo(
                table.schema, descriptor, [flight.FlightEndpoint(ticket, [])], table.num_rows, -1
            )

    def get_schema(
        self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor
    ) -> flight.SchemaResult:
        with _flight_errors("GetSchema"):
            command = self._command(descriptor)
            if isinstance(command, pb.CommandStatementQuery):
                return flight.SchemaResult(self._statement_schema(command.query))
            if isinstance(command, pb.CommandPreparedStatementQuery):
                prepared: _Prepared = self._prepared.get(command.prepared_statement_handle)
                if prepared.is_update:
                    return flight.SchemaResult(UPDATE_RESULT_SCHEMA)
                schema = prepared.schema or self.service.shape(prepared.query).schema
                return flight.SchemaResult(schema)
            if type(command) in md.SCHEMAS:  # SqlInfo, XDBC types and the other metadata
                return flight.SchemaResult(md.result_schema(command))
            raise Unsupported(f"GetSchema of {type(command).__name__} is not supported")

    def _statement_schema(self, sql: str) -> pa.Schema:
        if self.service.statement(sql).kind != "query":
            return UPDATE_RESULT_SCHEMA
        return self.service.shape(sql).schema

    def do_get(
        self, context: flight.ServerCallContext, ticket: flight.Ticket
    ) -> flight.RecordBatchStream:
        with _flight_errors("DoGet"):
            message = unpack(ticket.ticket, expect=pb.TicketStatementQuery)
            assert isinstance(message, pb.TicketStatementQuery)
            table: pa.Table = self._results.pop(message.statement_handle)
            # Batches small enough for every client's default message limit (Go: 16 MiB).
            rows = (
                max(1, int(_BATCH_BYTES * table.num_rows / table.nbytes))
                if table.nbytes
                else 65_536
            )
            batches = [b for b in table.to_batches(max_chunksize=min(rows, 65_536)) if b.num_rows]
            return flight.RecordBatchStream(pa.Table.from_batches(batches, schema=table.schema))

    def _command(self, descriptor: flight.FlightDescriptor) -> Any:
        if descriptor.descriptor_type != flight.DescriptorType.CMD:
            raise InvalidInput(
                "expected a command descriptor holding a Flight SQL command; "
                "path descriptors are only used for ingest (DoPut on ['metrics'])"
            )
        return unpack(descriptor.command)

    def _run(self, context: Any, sql: str, params: pa.RecordBatch | None = None) -> pa.Table:
        """A query, or an update run as a query (its result is the rows affected)."""
        statement = self.service.statement(sql)
        if statement.kind == "query":
            return self.service.query(sql, params)
        _require_write(context, f"{statement.kind} statements")
        count = self.service.update(sql, params)
        return pa.table([pa.array([count], pa.int64())], schema=UPDATE_RESULT_SCHEMA)

    def _execute(self, context: Any, command: Any) -> pa.Table:
        if isinstance(command, pb.CommandStatementQuery):
            _no_transaction(command)
            return self._run(context, command.query)
        if isinstance(command, pb.CommandPreparedStatementQuery):
            prepared: _Prepared = self._prepared.get(command.prepared_statement_handle)
            if not prepared.parameter_count:
                return self._run(context, prepared.query)
            if prepared.parameters is None:
                raise InvalidInput(
                    f"the prepared statement takes {prepared.parameter_count} parameter(s); "
                    "bind them (DoPut) before executing it"
                )
            batch = prepared.parameters
            tables = [
                self._run(context, prepared.query, batch.slice(i, 1)) for i in range(batch.num_rows)
            ]
            return tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        if isinstance(command, pb.CommandGetSqlInfo):
            return sql_info_table(self._info, list(command.info))
        if isinstance(command, pb.CommandGetXdbcTypeInfo):
            return md.get_xdbc_type_info(command)
        builder = _METADATA.get(type(command))
        if builder is not None:
            return builder(self.service.catalog(), command)
        raise Unsupported(f"{type(command).__name__} is not supported by hyprstream")

    # -- ingest, updates and parameter binding --------------------------------------------------

    def do_put(
        self,
        context: flight.ServerCallContext,
        descriptor: flight.FlightDescriptor,
        reader: flight.MetadataRecordBatchReader,
        writer: flight.FlightMetadataWriter,
    ) -> None:
        with _flight_errors("DoPut"):
            if descriptor.descriptor_type == flight.DescriptorType.PATH:
                _require_write(context, "ingest")
                self._ingest(descriptor, reader, writer)
                return
            command = self._command(descriptor)
            if isinstance(command, pb.CommandPreparedStatementQuery):
                self._bind(command, reader, writer)
                return
            if isinstance(command, pb.CommandStatementUpdate):
                _no_transaction(command)
                # ADBC's executescript sends no schema: do not touch the stream.
                _require_write(context, "updates")
                count = self.service.update(command.query)
            elif isinstance(command, pb.CommandPreparedStatementUpdate):
                _require_write(context, "updates")
                prepared: _Prepared = self._prepared.get(command.prepared_statement_handle)
                params = _read_parameters(reader, prepared.parameter_count)
                count = self.service.update(prepared.query, params)
            elif isinstance(command, pb.CommandStatementIngest):
                _require_write(context, "ingest")
                count = self._ingest_table(command, reader)
            else:
                raise Unsupported(
                    f"DoPut with {type(command).__name__} is not supported by hyprstream"
                )
            writer.write(pa.py_buffer(pb.DoPutUpdateResult(record_count=count).SerializeToString()))

    def _ingest_table(self, command: pb.CommandStatementIngest, reader: Any) -> int:
        _no_transaction(command)
        if command.temporary:
            raise Unsupported("temporary tables are not supported: ingest into a durable table")
        options = command.table_definition_options
        mode = _INGEST_MODES.get((options.if_not_exist, options.if_exists))
        if mode is None:
            raise InvalidInput(
                f"unsupported table definition options (if_not_exist={options.if_not_exist}, "
                f"if_exists={options.if_exists}); use one of adbc_ingest's modes"
            )
        if command.HasField("schema") and command.schema not in ("", "main"):
            raise NotFound(f"no database schema named {command.schema!r}: tables live in 'main'")
        data = reader.read_all()
        return self.service.ingest_table(command.table, data, mode)

    def _ingest(
        self,
        descriptor: flight.FlightDescriptor,
        reader: flight.MetadataRecordBatchReader,
        writer: flight.FlightMetadataWriter,
    ) -> None:
        path = tuple(descriptor.path)
        if path[:1] != INGEST_PATH or len(path) > 2:
            shown = [p.decode("utf-8", "replace") for p in path]
            raise NotFound(
                f"unknown ingest path {shown}: send samples to ['metrics'] (or "
                "['metrics', '<batch id prefix>'])"
            )
        prefix = path[1].decode("utf-8", "replace") if len(path) == 2 else None
        # Acknowledgements are written as each batch's append completes (on the appender's
        # thread, in order), so a client that waits for each one before sending the next is
        # answered while this thread is already waiting for that next batch. The handler
        # returns only after every callback has finished: the writer dies with the call.
        acks = _Acknowledger(writer)
        pending = 0
        try:
            while True:
                try:
                    chunk = reader.read_chunk()
                except StopIteration:
                    break
                if chunk.data is None:
                    continue
                batch_id = _batch_id(chunk.app_metadata, prefix, pending)
                future = self.service.ingest_async(chunk.data, batch_id)
                acks.track(pending, future)
                pending += 1
        except HyprstreamError as exc:
            batches, rows, _ = acks.wait(pending)
            if batches:
                exc.message = (
                    f"{exc.message} (record batch {batches} of this stream; the {batches} "
                    f"before it were acknowledged, {rows} rows)"
                )
            raise
        except BaseException:
            acks.wait(pending)  # no callback may write after this handler has returned
            raise
        _, _, failure = acks.wait(pending)
        if failure is not None:
            raise failure

    def _bind(
        self,
        command: pb.CommandPreparedStatementQuery,
        reader: flight.MetadataRecordBatchReader,
        writer: flight.FlightMetadataWriter,
    ) -> None:
        prepared: _Prepared = self._prepared.get(command.prepared_statement_handle)
        prepared.parameters = _read_parameters(reader, prepared.parameter_count)
        result = pb.DoPutPreparedStatementResult(
            prepared_statement_handle=command.prepared_statement_handle
        )
        writer.write(pa.py_buffer(result.SerializeToString()))

    # -- actions --------------------------------------------------------------------------------

    def list_actions(self, context: flight.ServerCallContext) -> list[tuple[str, str]]:
        return [
            ("CreatePreparedStatement", "Prepare a SQL statement"),
            ("ClosePreparedStatement", "Release a prepared statement"),
            ("CloseSession", "End the session (hyprstream keeps no session state)"),
        ]

    def do_action(
        self, context: flight.ServerCallContext, action: flight.Action
    ) -> Iterator[bytes]:
        with _flight_errors(f"action {action.type}"):
            body = action.body.to_pybytes() if action.body is not None else b""
            if action.type == "CreatePreparedStatement":
                request = unpack(body, expect=pb.ActionCreatePreparedStatementRequest)
                assert isinstance(request, pb.ActionCreatePreparedStatementRequest)
                _no_transaction(request)
                return iter([pack(self._create_prepared(request.query))])
            if action.type == "ClosePreparedStatement":
                request = unpack(body, expect=pb.ActionClosePreparedStatementRequest)
                assert isinstance(request, pb.ActionClosePreparedStatementRequest)
                self._prepared.discard(request.prepared_statement_handle)
                return iter([])
            if action.type == "CloseSession":
                closed = pb.CloseSessionResult(status=pb.CloseSessionResult.CLOSED)
                return iter([closed.SerializeToString()])
            if action.type in (
                "BeginTransaction",
                "EndTransaction",
                "BeginSavepoint",
                "EndSavepoint",
            ):
                raise Unsupported(
                    "transactions are not supported: every statement and ingest commits on its own "
                    "(connect with autocommit on)"
                )
            raise Unsupported(f"action {action.type!r} is not supported by hyprstream")

    def _create_prepared(self, query: str) -> pb.ActionCreatePreparedStatementResult:
        statement = self.service.statement(query)
        is_update = statement.kind != "query"
        schema = UPDATE_RESULT_SCHEMA if is_update else self.service.shape(query).schema
        count = statement.parameter_count
        handle = self._prepared.put(_Prepared(query, schema, count, is_update))
        parameters = pa.schema([pa.field(f"${i + 1}", pa.null()) for i in range(count)])
        return pb.ActionCreatePreparedStatementResult(
            prepared_statement_handle=handle,
            dataset_schema=b"" if is_update else schema.serialize().to_pybytes(),
            parameter_schema=parameters.serialize().to_pybytes(),
            is_update=is_update,
        )


def _require_write(context: Any, what: str) -> None:
    principal = principal_of(context)
    if not principal.can_write:
        raise PermissionDenied(f"{principal.name!r} is read-only: {what} need the write role")


def _no_transaction(command: Any) -> None:
    if command.HasField("transaction_id"):
        raise Unsupported("transactions are not supported: connect with autocommit on")


def _read_parameters(reader: Any, expected: int) -> pa.RecordBatch | None:
    """The bound parameter rows of a DoPut, checked against the statement's count."""
    table = reader.read_all()
    if table.num_columns != expected:
        raise InvalidInput(
            f"the prepared statement takes {expected} parameter(s), got {table.num_columns}"
        )
    if not table.num_rows:
        return None
    batch: pa.RecordBatch = table.combine_chunks().to_batches()[0]
    return batch
